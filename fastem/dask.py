"""The Dask driver: the local kernels mapped over the row blocks of a ``dask.array.Array``.

Every pass is one task per block of rows. On the worker the block and its weights go to a
:class:`~fastem.driver.LocalDriver`, so they meet the same compiled kernels, chunk size,
sub-blocking and single-threaded BLAS as on one machine; the task returns a zeroed-then-filled
statistics vector and the block's worst-fit row. Those small vectors are added pairwise in block
order by a fixed tree of tasks on the cluster, so for a given blocking the result is the same
whatever the number of workers, and it equals the local driver's up to the order of the
additions (rounding). The parameters of a pass travel once, as one task that every block task
depends on; the M-step runs on the client; data blocks are read where they live and never
gathered (the client receives one statistics vector per pass, and at most ``size`` rows when
initialisation samples rows).

Differences from the local driver, all documented for users:

* ``n_threads=None`` means one kernel thread per task: Dask's workers and threads already run
  blocks in parallel. A number gives each task that many threads.
* Seeding samples rows per block with a generator seeded from the estimator's ``random_state``
  and the block's index, and ``init_params="random"`` draws each block's responsibilities from
  its own copy of the estimator's generator (a shared generator's state cannot follow the blocks
  around a cluster); both are deterministic for a fixed blocking but differ from a local fit.
* ``progress`` bars are not drawn: the Dask dashboard shows the tasks.
* ``sample_weight`` given as a numpy array and the weights made by ``nan_policy="omit"`` are
  persisted on the cluster (sent once); a ``client.restart()`` drops them, and the next pass
  then fails with a clear error.
"""
import concurrent.futures
import contextlib
import os
import uuid
from typing import Any, NamedTuple

import cloudpickle
import dask
import dask.array as da
import numpy as np

from . import data, init
from .driver import LocalDriver, is_dask_array


class Pass(NamedTuple):
    """What every block task of one pass needs; it travels once per pass, as one shared task."""

    family: Any
    packed: Any
    chunk_size: Any
    n_threads: int
    with_stats: bool = True
    resp_fn: bytes = None  # cloudpickled, so that each block unpickles its own copy
    what: str = None  # per-row output of a prediction pass
    omitting: bool = False


class DaskDriver:
    """A dask array prepared for repeated passes on the current Dask scheduler (the default
    ``distributed`` client when there is one), following the driver contract of
    :class:`~fastem.driver.LocalDriver`. Per-row outputs are lazy dask arrays (``lazy``)."""

    lazy = True

    def __init__(self, X, sample_weight=None, chunk_size=None, n_threads=None, progress=None):
        """Check that ``X`` has known chunk sizes and numeric dtype; align ``sample_weight`` (a
        dask or numpy array) with its row blocks. ``progress`` is ignored (see the module)."""
        _check_known_chunks(X, "X")
        self.dtype = data.working_dtype(X.dtype)
        self.X = X if X.numblocks[1] == 1 else X.rechunk({1: -1})  # whole rows in each block
        self.n_samples, self.n_features = (int(n) for n in X.shape)
        local = LocalDriver(np.empty((0, self.n_features)), None, chunk_size,
                            1 if n_threads is None else n_threads)  # validates both as locally
        self.chunk_size, self.n_threads = local.chunk_size, local.n_threads
        self.starts = np.cumsum((0,) + self.X.chunks[0][:-1])
        self.sample_weight = self._aligned_weights(sample_weight)
        self.omitting, self.n_omitted = False, 0

    def _aligned_weights(self, sample_weight):
        """Weights as a float64 dask array with X's row blocks, checked on the workers as the
        local driver checks them; numpy weights are checked here and persisted (sent once)."""
        row_chunks = (self.X.chunks[0],)
        if sample_weight is None:
            return None
        if not is_dask_array(sample_weight):
            w = data.check_sample_weight(sample_weight, self.n_samples)
            with _lost_work():
                return da.from_array(w, chunks=row_chunks).persist()
        _check_known_chunks(sample_weight, "sample_weight")
        data.working_dtype(sample_weight.dtype, name="sample_weight")
        if sample_weight.shape != (self.n_samples,):
            raise ValueError(f"sample_weight.shape == {sample_weight.shape}, expected "
                             f"({self.n_samples},) to match X")
        w = sample_weight.astype(np.float64).rechunk(row_chunks)
        return w.map_blocks(_checked_weights, dtype=np.float64)

    def check_finite(self, family=None):
        """Raise ValueError naming the first row that holds NaN or infinity or, given a
        ``family``, a value outside its support (one pass; a small answer per block)."""
        first_invalid = dask.delayed(_first_invalid, pure=True)
        job = _shared(family)
        parts = [first_invalid(block, start, self.dtype, job) for block, _, start in self._blocks()]
        with _lost_work():
            found, = dask.compute(parts)
        nonfinite = [row for row, _ in found if row >= 0]
        if nonfinite:
            raise ValueError(f"X contains NaN or infinity (first at row {nonfinite[0]}); remove "
                             "or impute it, or pass nan_policy='omit'")
        unsupported = [where for _, where in found if where is not None]
        if unsupported:
            raise data.unsupported_error(family, "X", *unsupported[0])

    def omit_nonfinite(self, family=None):
        """Give rows holding NaN or infinity zero weight and make predictions mark them; the
        new weights are persisted on the cluster. Returns how many rows there are. Given a
        ``family`` that checks its support, the same pass raises ValueError at the first finite
        row outside it, as the local driver does."""
        bad = self._nonfinite()
        base = self.sample_weight
        if base is None:
            base = da.ones(self.n_samples, chunks=(self.X.chunks[0],))
        first_unsupported = dask.delayed(_first_unsupported, pure=True)
        job = _shared(family)
        checks = [] if family is None or not family.checks_support else [
            first_unsupported(block, start, self.dtype, job) for block, _, start in self._blocks()]
        with _lost_work():
            weights, count, checks = dask.persist(da.where(bad, 0.0, base), bad.sum(), checks)
            found = [where for where in dask.compute(*checks) if where is not None]
            if found:
                raise data.unsupported_error(family, "X", *found[0])
            self.n_omitted = int(count.compute())
        self.sample_weight, self.omitting = weights, True
        return self.n_omitted

    def _nonfinite(self):
        return self.X.map_blocks(_nonfinite_rows, dtype=bool, drop_axis=1)

    def accumulate(self, family, packed, with_stats=True, resp_fn=None):
        """One pass on the cluster: summed statistics vector and [lowest log p(x_i), its row].

        ``resp_fn(start, block)``, when given, supplies each block's responsibilities on the
        worker (initialisation), with ``start`` the block's global first row.
        """
        job = _shared(Pass(family, packed, self.chunk_size, self.n_threads, with_stats,
                           None if resp_fn is None else cloudpickle.dumps(resp_fn)))
        block_stats = dask.delayed(_block_stats, pure=True)
        parts = [block_stats(block, weights, start, job)
                 for block, weights, start in self._blocks()]
        with _lost_work():
            (stats, worst), = dask.compute(_tree(parts, _merge_stats))
        return stats, worst

    def _blocks(self):
        """(delayed block, delayed weights or None, first row) for each row block."""
        blocks = self.X.to_delayed().ravel()
        weights = ([None] * len(blocks) if self.sample_weight is None
                   else self.sample_weight.to_delayed().ravel())
        return zip(blocks, weights, self.starts.tolist())

    def predict(self, family, packed, log_prob=None, resp=None, labels=None):
        """Not available: Dask input gets lazy outputs from :meth:`predict_lazy`."""
        raise NotImplementedError("Dask input: per-row outputs come from predict_lazy")

    def predict_lazy(self, family, packed, what):
        """Lazy per-row ``what`` ("labels", "resp" or "log_prob"), block by block as X."""
        job = _shared(Pass(family, packed, self.chunk_size, self.n_threads, what=what,
                           omitting=self.omitting))
        if what == "resp":
            chunks = (self.X.chunks[0], (packed.log_norm.shape[0],))
            return self.X.map_blocks(_predict_block, job, dtype=np.float64, chunks=chunks)
        dtype = np.intp if what == "labels" else np.float64
        return self.X.map_blocks(_predict_block, job, dtype=dtype, drop_axis=1)

    def rows(self, indices):
        """Rows of X as float64, in the order given (only the blocks holding them are read)."""
        indices = np.asarray(indices, dtype=np.intp)
        with _lost_work():
            picked = self.X[indices].compute()
        return np.asarray(picked, dtype=np.float64).reshape(indices.size, self.n_features)

    def sample_rows(self, rng, size):
        """At most ``size`` rows (float64), their weights and indices, as init.sample_rows: a
        weighted reservoir in each block on its worker, merged by the same fixed tree. Data of
        at most ``size`` rows are read whole, as locally."""
        if self.n_samples <= size:
            with _lost_work():
                X, w = dask.compute(self.X, self.sample_weight)
            return init.sample_rows(LocalDriver(X, w, n_threads=1), rng, size)
        seed = int(rng.randint(0, 2**31 - 1))
        block_sample = dask.delayed(_block_sample, pure=True)
        parts = [block_sample(block, weights, start, seed, index, size)
                 for index, (block, weights, start) in enumerate(self._blocks())]
        with _lost_work():
            sample, = dask.compute(_tree(parts, init.keep_largest, size))
        return init.sample_from_keys(*sample)


def from_npy(path, block_rows="auto"):
    """A dask array over a ``.npy`` file that each task memory-maps by path on its worker.

    ``da.from_array(np.load(path, mmap_mode="r"))`` works too, but a memmap pickles as its
    contents, so every task graph sent to a distributed cluster would carry the whole file; here
    only the path travels. The file must be readable at that path on the workers (the local disk
    of a ``LocalCluster``, or shared storage).
    """
    return da.from_array(NpyFile(path), chunks=(block_rows, -1))


class NpyFile:
    """A 2-D ``.npy`` file as a row-sliceable array-like that pickles as its path."""

    def __init__(self, path):
        self.path = os.fspath(path)
        opened = data.open_source(self.path)
        self.shape, self.dtype, self.ndim = opened.shape, opened.dtype, opened.ndim

    def __getitem__(self, index):
        return np.load(self.path, mmap_mode="r", allow_pickle=False)[index]


def _check_known_chunks(array, name):
    if any(np.isnan(size) for sizes in array.chunks for size in sizes):
        raise ValueError(f"{name} has unknown chunk sizes (e.g. after boolean indexing); call "
                         f"{name}.compute_chunk_sizes() first")


@contextlib.contextmanager
def _lost_work():
    """Turn Dask's cancellation of a pass (``client.restart()``, lost persisted data) into a
    clear error; lost workers are recomputed by Dask itself and never get here."""
    try:
        yield
    except concurrent.futures.CancelledError as exc:
        raise RuntimeError(
            f"the Dask cluster cancelled a pass over the data ({exc}); the estimator was not "
            "updated by it. Fit again once the cluster is back (a restart drops persisted "
            "arrays, such as persisted inputs)"
        ) from exc


def _shared(job):
    """One task holding ``job`` that every block task of a pass depends on: sent once."""
    return dask.delayed(job, traverse=False, name=f"fastem-pass-{uuid.uuid4().hex}")


def _tree(parts, merge, *args):
    """Merge delayed ``parts`` pairwise, neighbours first, into one: a fixed order of additions
    however the tasks are scheduled."""
    merge = dask.delayed(merge, pure=True)
    while len(parts) > 1:
        parts = [merge(*args, *parts[i:i + 2]) if i + 1 < len(parts) else parts[i]
                 for i in range(0, len(parts), 2)]
    return parts[0]


# ---------------------------------------------------------------- run on the workers
def _local(block, weights, job, start):
    """A local driver over one block, after checking that the block holds numbers."""
    return LocalDriver(_numeric(block, start), weights, job.chunk_size, job.n_threads)


def _block_stats(block, weights, start, job):
    """A block's statistics vector and [lowest log p, its global row], by the local driver."""
    resp_fn = None
    if job.resp_fn is not None:
        given = cloudpickle.loads(job.resp_fn)

        def resp_fn(offset, rows):
            return given(start + offset, rows)

    stats, worst = _local(block, weights, job, start).accumulate(
        job.family, job.packed, job.with_stats, resp_fn)
    if worst[1] >= 0:
        worst[1] += start
    return stats, worst


def _merge_stats(a, b):
    """Sum of two blocks' statistics; the worst row of the earlier block wins ties."""
    return a[0] + b[0], (a[1] if a[1][0] <= b[1][0] else b[1])


def _block_sample(block, weights, start, seed, index, size):
    """The weighted reservoir (keys, global indices, rows) of one block, from its own seed."""
    blocks = ((start + offset, rows, w) for offset, rows, w
              in data.iter_blocks(_numeric(block, start), 1 << 16, np.float64, weights))
    return init.reservoir(blocks, np.random.default_rng([seed, index]), size, block.shape[1])


def _predict_block(block, job, block_info=None):
    """Per-row output ``job.what`` of one block, by the local driver."""
    start = block_info[0]["array-location"][0][0] if block_info else 0
    local = _local(block, None, job, start)
    local.omitting = job.omitting
    k, n = job.packed.log_norm.shape[0], block.shape[0]
    shape, dtype = {"labels": ((n,), np.intp), "resp": ((n, k), np.float64),
                    "log_prob": ((n,), np.float64)}[job.what]
    out = np.empty(shape, dtype=dtype)
    local.predict(job.family, job.packed, **{job.what: out})
    return out


def _numeric(block, start):
    """The block, after checking that it holds numbers (its dtype, not just the array's)."""
    data.working_dtype(block.dtype, name=f"X (block from row {start})")
    return block


def _nonfinite_rows(block, block_info=None):
    """Which rows of a block hold NaN or infinity."""
    start = block_info[0]["array-location"][0][0] if block_info else 0
    return ~data.finite_rows(_numeric(block, start))


def _first_invalid(block, start, dtype, family):
    """(first global row holding NaN or infinity, or -1; (first row outside the family's
    support, its first values) or None) of one block, checked as the local driver does."""
    block = np.ascontiguousarray(_numeric(block, start), dtype=dtype)
    bad = ~data.finite_rows(block)
    if bad.any():
        return start + int(np.argmax(bad)), None
    return -1, None if family is None else _first_unsupported(block, start, dtype, family)


def _first_unsupported(block, start, dtype, family):
    """(first global row of a block that is finite but outside the family's support, its
    first values), or None."""
    block = np.ascontiguousarray(_numeric(block, start), dtype=dtype)
    bad = data.finite_rows(block) & family.invalid_rows(block)
    if not bad.any():
        return None
    row = int(np.argmax(bad))
    return start + row, block[row].tolist()[:10]


def _checked_weights(block):
    """A block of weights, checked as the local driver checks them."""
    return data.check_sample_weight(block, block.shape[0])
