"""Compare fastem's GaussianMixture with scikit-learn's (and daal4py's EM, when importable).

Both libraries fit the same synthetic data (``benchmarks/benchmarks/bench_gaussian.py``) from
the same given parameters (``weights_init``, ``means_init``, ``precisions_init``) with
``tol=0``, so a fit with ``max_iter=m`` is exactly ``m`` EM iterations with no initialisation.
The time per iteration is the difference of a ``(1 + m)``-iteration fit and a 1-iteration fit,
divided by ``m``, for every library alike: what a fit does once (input validation, and for
scikit-learn the E-step after the loop that computes the final labels) cancels out.

Peak memory is measured in a fresh process per fit: its resident high-water mark (``VmHWM``)
during the fit minus its resident size just before the fit, when the data, the libraries and a
small warm-up fit are already in memory; i.e. the memory a fit needs above the data.

Run ``python benchmarks/compare_sklearn.py --help`` for the options; it prints a markdown table.
"""
import argparse
import concurrent.futures
import ctypes
import gc
import multiprocessing
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmarks.bench_gaussian import initial_parameters, make_data  # noqa: E402

DAAL_STORAGE = {"full": "full", "diag": "diagonal"}  # daal4py has no tied or spherical model
WARMUP_SAMPLES = 4096
MIB = 1 << 20


@dataclass(frozen=True)
class Config:
    """Problem size and run settings shared by every case."""

    n_samples: int
    n_features: int
    n_components: int
    iters: int
    sklearn_iters: int
    seed: int


@dataclass(frozen=True)
class Case:
    """One row of the table."""

    covariance_type: str
    dtype: str
    n_threads: int

    def __str__(self):
        return f"{self.covariance_type}, {self.dtype}, {self.n_threads} thread(s)"


# ------------------------------------------------------------------------------ fitting
def silenced(fn, *args, **kwargs):
    """Call ``fn`` with every library's ConvergenceWarning (and others like it) ignored."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def make_estimator(library, case, inits, max_iter, seed):
    """An unfitted estimator of ``library`` that runs exactly ``max_iter`` iterations."""
    common = dict(
        n_components=inits["means_init"].shape[0],
        covariance_type=case.covariance_type,
        max_iter=max_iter,
        tol=0.0,
        random_state=seed,
        **inits,
    )
    if library == "fastem":
        import fastem

        return fastem.GaussianMixture(n_threads=case.n_threads, **common)
    import sklearn.mixture

    return sklearn.mixture.GaussianMixture(**common)


def fit(library, case, X, inits, max_iter, seed):
    """Fit ``library``'s estimator; scikit-learn's BLAS is limited to the case's threads."""
    from threadpoolctl import threadpool_limits

    model = make_estimator(library, case, inits, max_iter, seed)
    limit = None if library == "fastem" else case.n_threads
    with threadpool_limits(limits=limit):
        return silenced(model.fit, X)


def small_problem(case, config):
    """A few rows and their initial parameters, for warm-up fits."""
    X = make_data(WARMUP_SAMPLES, config.n_features, config.n_components, case.dtype, config.seed)
    return X, initial_parameters(X, config.n_components, case.covariance_type, config.seed)


def warm_up(library, case, config):
    """A one-iteration fit on a few rows: imports, first-call and thread-pool costs paid here."""
    fit(library, case, *small_problem(case, config), 1, config.seed)


def timed(fn, *args):
    """``(result, seconds)`` of one call."""
    tic = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - tic


def ms_per_iteration(fit_iterations, iters):
    """Milliseconds per EM iteration: ``fit_iterations(1 + iters)`` minus
    ``fit_iterations(1)``, over ``iters``; returns it with the longer fit's result."""
    result, long = timed(fit_iterations, 1 + iters)
    _, short = timed(fit_iterations, 1)
    return 1e3 * (long - short) / iters, result


def daal4py_module():
    """The ``daal4py`` module, or None when it cannot be imported."""
    try:
        import daal4py
    except Exception:  # ImportError, or a build that does not match the installed libraries
        return None
    return daal4py


def fit_daal4py(d4p, case, X, inits, max_iter):
    """daal4py's batch EM for a GMM from ``inits`` (covariances = inverse precisions)."""
    storage = DAAL_STORAGE[case.covariance_type]
    precisions = inits["precisions_init"]
    if storage == "full":
        covariances = [np.linalg.inv(p) for p in precisions]
    else:
        covariances = [(1.0 / p)[None, :] for p in precisions]
    d4p.daalinit(case.n_threads)
    algorithm = d4p.em_gmm(
        inits["means_init"].shape[0],
        fptype="float" if X.dtype == np.float32 else "double",
        maxIterations=max_iter,
        accuracyThreshold=0.0,
        regularizationFactor=1e-6,
        covarianceStorage=storage,
    )
    weights = inits["weights_init"][None, :].astype(X.dtype)
    return algorithm.compute(X, weights, inits["means_init"].astype(X.dtype),
                             [c.astype(X.dtype) for c in covariances])


# ------------------------------------------------------------------------------ memory
def proc_status_kib(field):
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``); Linux only."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def release_free_heap():
    """Give the C heap's free pages back to the OS (glibc), so they are not counted as in use
    before the fit and then silently reused by it."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak_rss():
    """Reset the process's resident high-water mark to its current size (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def fit_peak_above_data_mib(library, case, config, max_iter):
    """Peak resident memory of one fit above what was resident before it, in MiB.

    Meant for a fresh process: a tiny warm-up fit first loads every module and thread pool, then
    the data and parameters are built and the high-water mark is reset, so that only the fit's
    own allocations count.
    """
    warm_up(library, case, config)
    X = make_data(config.n_samples, config.n_features, config.n_components, case.dtype, config.seed)
    inits = initial_parameters(X, config.n_components, case.covariance_type, config.seed)
    gc.collect()
    release_free_heap()
    before_kib = proc_status_kib("VmRSS")
    if not reset_peak_rss() and proc_status_kib("VmHWM") > before_kib:
        return float("nan")  # an earlier peak would hide the fit's
    fit(library, case, X, inits, max_iter, config.seed)
    return (proc_status_kib("VmHWM") - before_kib) / 1024


def in_fresh_process(fn, *args):
    """Run ``fn(*args)`` in a new interpreter (multiprocessing 'spawn') and return its result."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()


# ------------------------------------------------------------------------------ one case
def measure_case(case, config, X, d4p):
    """The table row of ``case`` as a dict of measurements."""
    inits = initial_parameters(X, config.n_components, case.covariance_type, config.seed)
    row = {"case": str(case)}

    def iterations(library):
        return lambda max_iter: fit(library, case, X, inits, max_iter, config.seed)

    fit("fastem", case, X, inits, 1, config.seed)  # warm-up on the data themselves
    row["fastem_ms"], _ = ms_per_iteration(iterations("fastem"), config.iters)

    warm_up("sklearn", case, config)
    row["sklearn_ms"], sk_model = ms_per_iteration(iterations("sklearn"), config.sklearn_iters)
    row["speedup"] = row["sklearn_ms"] / row["fastem_ms"]

    same_iters = fit("fastem", case, X, inits, 1 + config.sklearn_iters, config.seed)
    row["rel_diff"] = abs(same_iters.lower_bound_ - sk_model.lower_bound_) / abs(sk_model.lower_bound_)

    row["fastem_mem"] = in_fresh_process(fit_peak_above_data_mib, "fastem", case, config, config.iters)
    row["sklearn_mem"] = in_fresh_process(fit_peak_above_data_mib, "sklearn", case, config, 1)

    if d4p is not None:
        row["daal4py_ms"] = daal4py_ms_per_iter(d4p, case, config, X, inits)
    return row


def daal4py_ms_per_iter(d4p, case, config, X, inits):
    """daal4py's ms per EM iteration (after a warm-up on a few rows); NaN for tied, spherical."""
    if case.covariance_type not in DAAL_STORAGE:
        return float("nan")
    fit_daal4py(d4p, case, *small_problem(case, config), 1)
    return ms_per_iteration(lambda max_iter: fit_daal4py(d4p, case, X, inits, max_iter),
                            config.iters)[0]


# ------------------------------------------------------------------------------ output
COLUMNS = [
    ("case", "case", "{}"),
    ("fastem_ms", "fastem ms/iter", "{:.1f}"),
    ("sklearn_ms", "sklearn ms/iter", "{:.1f}"),
    ("speedup", "speed-up (×)", "{:.1f}"),
    ("fastem_mem", "fastem peak above data (MB)", "{:.1f}"),
    ("sklearn_mem", "sklearn peak above data (MB)", "{:.1f}"),
    ("rel_diff", "rel. diff of lower_bound_", "{:.1e}"),
    ("daal4py_ms", "daal4py ms/iter", "{:.1f}"),
]


def format_cell(value, fmt):
    """A table cell; NaN (not measured) prints as a dash."""
    if isinstance(value, float) and np.isnan(value):
        return "–"
    return fmt.format(value)


def markdown_table(rows):
    """The rows as a markdown table, with the daal4py column only when it was measured."""
    columns = [c for c in COLUMNS if any(c[0] in row for row in rows)]
    lines = ["| " + " | ".join(title for _, title, _ in columns) + " |",
             "|" + "|".join("---" if key == "case" else "---:" for key, _, _ in columns) + "|"]
    for row in rows:
        cells = [format_cell(row.get(key, float("nan")), fmt) for key, _, fmt in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def describe_setup(config, d4p):
    """A short description of the problem, machine and library versions."""
    import sklearn

    import fastem

    data_mb = config.n_samples * config.n_features * 8 / MIB
    versions = f"fastem {fastem.__version__}, scikit-learn {sklearn.__version__}, numpy {np.__version__}"
    if d4p is not None:
        versions += ", daal4py"
    return (
        f"N = {config.n_samples:_} rows, D = {config.n_features}, K = {config.n_components}; "
        f"data {data_mb:.0f} MiB in float64. ms/iter = (fit of 1 + m iterations - fit of 1) "
        f"/ m, m = {config.iters} for fastem and daal4py, {config.sklearn_iters} for "
        f"scikit-learn; same initial parameters, tol=0.\nPython {platform.python_version()}, {versions}; {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}). MB = MiB."
    )


# ------------------------------------------------------------------------------ main
def comma_list(kind):
    """An argparse type: a comma-separated list of ``kind``."""
    return lambda text: [kind(item) for item in text.split(",") if item.strip()]


def parse_args(argv=None):
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--n-components", type=int, default=16)
    parser.add_argument("--covariance-types", type=comma_list(str), default="diag,full",
                        help="comma-separated, among diag, full, tied, spherical")
    parser.add_argument("--dtypes", type=comma_list(str), default="float64",
                        help="comma-separated, among float64, float32")
    parser.add_argument("--threads", type=comma_list(int), default="2",
                        help="comma-separated thread counts (fastem n_threads, sklearn BLAS)")
    parser.add_argument("--iters", type=int, default=5, help="EM iterations timed for fastem")
    parser.add_argument("--sklearn-iters", type=int, default=2,
                        help="EM iterations timed for scikit-learn (slow)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    """Measure every case and print the markdown table."""
    args = parse_args(argv)
    config = Config(args.n_samples, args.n_features, args.n_components, args.iters,
                    args.sklearn_iters, args.seed)
    d4p = daal4py_module()
    print(describe_setup(config, d4p), flush=True)
    rows = []
    for dtype in args.dtypes:
        X = make_data(config.n_samples, config.n_features, config.n_components, dtype, config.seed)
        for covariance_type in args.covariance_types:
            for n_threads in args.threads:
                case = Case(covariance_type, dtype, n_threads)
                print(f"measuring {case} ...", file=sys.stderr, flush=True)
                rows.append(measure_case(case, config, X, d4p))
        del X
    print()
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
