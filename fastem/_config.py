"""The one place that decides how many threads fastem uses, and keeps BLAS to one thread.

Kernels spread chunks over their own OpenMP threads and call BLAS inside those threads, so a
multi-threaded BLAS underneath would oversubscribe the cores (measured 3-10x slower). Every pass
over the data therefore runs inside :func:`single_threaded_blas`.
"""
import contextlib
import operator
import os
import threading

_controller = None
_lock = threading.Lock()
_users = 0  # blocks of single_threaded_blas running now, in any thread
_limit = None  # their threadpoolctl limiter, set by the first to enter


def _cgroup_cpu_limit():
    """CPUs allowed by a cgroup CPU quota (v2 ``cpu.max`` or v1 ``cfs_quota``), or None."""
    candidates = [
        ("/sys/fs/cgroup/cpu.max", None),
        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
    ]
    for quota_path, period_path in candidates:
        try:
            with open(quota_path) as f:
                fields = f.read().split()
            if period_path is None:
                quota, period = fields[0], fields[1]
            else:
                with open(period_path) as f:
                    quota, period = fields[0], f.read().split()[0]
        except (OSError, IndexError):
            continue
        if quota in ("max", "-1"):
            return None
        return max(1, int(int(quota) // int(period)))
    return None


def available_cpus():
    """CPUs this process may use: affinity mask, capped by any cgroup quota."""
    if hasattr(os, "sched_getaffinity"):
        n = len(os.sched_getaffinity(0))
    else:
        n = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    return min(n, limit) if limit else n


def resolve_n_threads(n_threads=None):
    """Threads for a pass: ``n_threads`` if given, else ``OMP_NUM_THREADS``, else the usable CPUs;
    never more than the usable CPUs, as each thread has its own buffers (results are the same
    for any thread count, so more threads than cores would only cost memory)."""
    if n_threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
        if env.isdigit() and int(env) > 0:
            return min(int(env), available_cpus())
        return available_cpus()
    return min(positive_int(n_threads, "n_threads"), available_cpus())


def positive_int(value, name):
    """``value`` as an int when it is a positive integer (1.5, 2.5 and True are refused, not
    truncated); otherwise a ValueError naming ``name``."""
    try:
        number = operator.index(value)
    except TypeError:
        number = 0
    if isinstance(value, bool) or number < 1:
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    return number


@contextlib.contextmanager
def single_threaded_blas():
    """Limit BLAS to one thread for the duration of the block, restoring it even on error.

    Blocks may overlap (fits in several threads): the first to enter limits BLAS and the last
    to leave restores it, so overlapping fits never leave BLAS at one thread for good (each
    restoring what the other had set)."""
    global _controller, _limit, _users
    with _lock:
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            from ._kernels import gaussian  # noqa: F401  (loads scipy's BLAS before we inspect)

            _controller = ThreadpoolController()
        _users += 1
        if _users == 1:
            try:
                _limit = _controller.limit(limits=1, user_api="blas")
            except BaseException:
                _users -= 1
                raise
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                _limit.restore_original_limits()
                _limit = None
