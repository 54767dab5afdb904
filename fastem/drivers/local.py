"""The local driver: runs a family's kernels over a data source, block by block, on threads.

Blocks are consecutive row ranges of ``chunks_per_block * chunk_size`` rows; the kernel splits
each block into chunks over threads and adds their statistics in chunk order. Results are
therefore bitwise identical for any ``n_threads`` (and any block size) at a given
``chunk_size``.
"""
import os

import numpy as np

from .. import data, sampling
from .._config import positive_int, resolve_n_threads, single_threaded_blas
from ..online import block_bounds

SLOT_BUDGET_BYTES = 8 << 20  # per-block buffer of chunk statistics
PREDICT_CHUNKS = 64  # chunks per block of a predict pass (no statistics slots to bound)


def default_chunk_size(n_features, n_components):
    """Rows per chunk: a chunk's widest scratch, the (rows, D*K) projection of the exact full
    kernel or the (rows, D + D(D+1)/2 + K) features of the exponential-family one, in about
    8 MiB, as a power of two in [64, 1024], less 16 rows from 256 up. Measured on 2 threads
    (benchmarks/README.md): larger chunks let each per-chunk GEMM run nearer BLAS's peak,
    which outweighed staying in L2; D=16, K=16 gets 1008 rows (full 362 -> 290 ms/iteration
    at 1024 against 128 rows), D=64, K=32 gets 240 (1652 -> 1320 ms at 256 against 64).

    The 16 rows: the full kinds store t(x) feature-major, a feature's n values in one run, and
    their register tiles read a block of features at once. With n * itemsize a multiple of 4 KB
    (1024 rows of float32, 512 or 1024 of float64) or 2 KB, those features' cache lines fall in
    one or two sets of L1 and evict each other: float32 log-densities at D = K = 16 took 14 %
    longer at 1024 rows than at 1008, float64 ones at D = 64, K = 32 5-9 % longer at 256 rows
    than at 240 (benchmarks/full_kernels.c)."""
    d, k = n_features, n_components
    rows = (8 << 20) // 8 // max(d * k, d + d * (d + 1) // 2 + k)
    rows = int(min(1024, max(64, 1 << max(0, rows.bit_length() - 1))))
    return rows - 16 if rows >= 256 else rows


def check_options(chunk_size, n_threads):
    """``chunk_size`` (a positive integer or None) and ``n_threads`` resolved: checked once,
    here, for every driver."""
    if chunk_size is not None:  # integers only, as n_threads: 2.5 is refused, not truncated
        chunk_size = positive_int(chunk_size, "chunk_size")
    return chunk_size, resolve_n_threads(n_threads)


class LocalDriver:
    """A data source prepared for repeated passes (validated once, never copied whole),
    following the driver contract of :mod:`fastem.drivers`."""

    def __init__(self, X, sample_weight=None, chunk_size=None, n_threads=None, progress=None):
        """``progress(desc, total)``, when given, makes a tqdm-like bar for each pass."""
        self.X = X
        self.progress = progress
        self.dtype = data.working_dtype(X.dtype)
        self.n_samples, self.n_features = X.shape
        self.sample_weight = data.check_sample_weight(sample_weight, self.n_samples)
        self.chunk_size, self.n_threads = check_options(chunk_size, n_threads)
        self.n_omitted = 0
        self.labels = None  # (n,) ints, -1 unlabelled: rows clamped to a component (see
                            # set_labels), read block by block as the weights are

    def set_labels(self, y, n_components):
        """Clamp the rows that ``y`` labels in every later pass (:func:`fastem.data.
        check_labels`: ValueError naming a bad ``y``; None or a target without -1: none)."""
        self.labels = data.check_labels(y, self.n_samples, n_components)

    def block_bounds(self, batch_size):
        """(start, stop) of the blocks of online EM: consecutive runs of ``batch_size`` rows."""
        return block_bounds(self.n_samples, batch_size)

    def block(self, start, stop):
        """A driver with the same options over rows [start, stop) (a view of the source where
        it gives one; row numbers in its errors and ``rows`` count from ``start``)."""
        weights = None if self.sample_weight is None else self.sample_weight[start:stop]
        driver = LocalDriver(self.X[start:stop], weights, self.chunk_size, self.n_threads,
                             self.progress)
        driver.labels = None if self.labels is None else self.labels[start:stop]
        return driver

    def check_finite(self, family=None):
        """Raise ValueError naming the first row that holds NaN or infinity or, given a
        ``family``, a value outside its support (e.g. a negative count); one pass."""
        with self.bar("check") as bar:
            data.check_finite(self.X, self.dtype, family=family, bar=bar)

    def omit_nonfinite(self, family=None):
        """Give rows holding NaN or infinity zero weight (the kernels then skip them); returns
        how many there are. The same pass raises ValueError at a finite row outside the
        ``family``'s support, when one is given."""
        weights = None if self.sample_weight is None else self.sample_weight.copy()  # not the user's
        count = 0
        with self.bar("check") as bar:
            for start, bad in data.nonfinite_rows(self.X, self.dtype, family=family, bar=bar):
                if weights is None:
                    weights = np.ones(self.n_samples)
                weights[start:start + bad.size][bad] = 0.0
                count += int(bad.sum())
        self.sample_weight, self.n_omitted = weights, count
        return count

    def mark_missing(self, family=None):
        """``nan_policy="marginalize"``: one pass that raises ValueError at a row holding
        infinity (or, given a ``family``, a value outside its support), gives rows with no
        observed entry zero weight and checks that every column is observed in some row of
        positive weight; returns (and stores in ``n_omitted``) how many rows were left out."""
        weights = None if self.sample_weight is None else self.sample_weight.copy()
        observed = np.zeros(self.n_features, dtype=np.int64)
        count = 0
        with self.bar("check") as bar:
            for start, empty in data.missing_rows(self.X, self.dtype, observed,
                                                  self.sample_weight, family, bar):
                if weights is None:
                    weights = np.ones(self.n_samples)
                weights[start:start + empty.size][empty] = 0.0
                count += int(empty.sum())
        data.check_observed(observed)
        self.sample_weight, self.n_omitted = weights, count
        return count

    def _chunk(self, n_components):
        """Rows per chunk, at most the rows there are (buffers are sized by chunks)."""
        chunk = self.chunk_size or default_chunk_size(self.n_features, n_components)
        return max(1, min(chunk, self.n_samples))

    def _chunks_per_block(self, stats_size, dtype):
        """Chunks per block, within SLOT_BUDGET_BYTES of per-chunk statistics. Threads idle
        for about half a chunk at the end of each block, and for the Python between blocks,
        so blocks of an in-memory array that the kernels read in place span up to 1024
        chunks (2 threads, D = K = 16, full: busy 1.95 -> 1.98 of 2 cores). A memory-mapped
        file of the pass's dtype is read in place too, but its blocks stay at 256 chunks:
        per-block buffers (the initialisation's responsibilities) are the process's own
        memory there, not the data's (README demo: peak RssAnon 97, 111 and 146 MB at 64, 256
        and 1024 chunks; a 5e6 x 8 float32 file, diag, K = 8: benchmarks/README.md). Blocks
        that are converted copies stay at 64 chunks, bounding their memory. Large statistics
        (D = 64, K = 32, full: 549 KB a chunk) leave few chunks per block: their count is
        rounded down to a multiple of the threads, so that no thread idles for a whole chunk
        at the end of each block (15 chunks on 2 threads took the time of 16). Block
        boundaries never change results: the chunks' statistics are added in chunk order
        across blocks."""
        in_place = (isinstance(self.X, np.ndarray) and self.X.dtype == dtype
                    and self.X.flags.c_contiguous)
        most = (1024 if type(self.X) is np.ndarray else 256) if in_place else 64
        chunks = int(np.clip(SLOT_BUDGET_BYTES // (8 * stats_size), 4, most))
        return max(chunks - chunks % self.n_threads, min(chunks, self.n_threads))

    def accumulate(self, family, packed, with_stats=True, resp_fn=None, nan_policy=None):
        """One pass: summed statistics vector and [lowest log p(x_i), its row].

        ``resp_fn(start, block)``, when given, supplies the responsibilities of each block
        (initialisation) instead of the E-step; labelled rows (``labels``) get one-hot rows
        either way. ``nan_policy`` checks rows on the way (see :mod:`fastem.drivers`).
        """
        k = packed.log_norm.shape[0]
        chunk = self._chunk(k)
        stats = np.zeros(family.stats_size(packed))
        worst = np.array([np.inf, -1.0])
        per_block = self._chunks_per_block(stats.size, packed.dtype)
        work = family.workspace(packed, chunk, self.n_threads, per_block)
        omitted = 0
        with single_threaded_blas(), self.bar("E-step" if resp_fn is None else "init") as bar:
            for start, block, weights in data.iter_blocks(self.X, per_block * chunk, packed.dtype,
                                                          self.sample_weight, bar):
                bad = self._screen(block, start, family, nan_policy)
                if bad is not None:
                    weights = data.without_rows(weights, bad)
                    omitted += int(bad.sum())
                labels = data.block_labels(self.labels, start, block.shape[0])
                resp = None if resp_fn is None else clamped(resp_fn(start, block), labels)
                family.fit_block(packed, block, weights, resp, with_stats, chunk,
                                 self.n_threads, work, stats, worst, start, labels=labels)
        if nan_policy is not None:
            self.n_omitted = omitted
        return stats, worst

    def accumulate_many(self, jobs, resp_fns=None):
        """One pass serving several fits (``fastem.lockstep``): for each ``(family, packed)`` of
        ``jobs``, the summed statistics and [lowest log p(x_i), its row] that
        :meth:`accumulate` gives, computed block by block while the block is in cache. Each
        job keeps its own chunk size, and chunks are added in the same order, so each result
        equals its own pass's. ``resp_fns``, when given, holds each job's ``resp_fn`` (or
        None for the E-step), as :meth:`accumulate` takes it."""
        resp_fns = resp_fns or [None] * len(jobs)
        chunks = [self._chunk(packed.log_norm.shape[0]) for _, packed in jobs]
        stats = [np.zeros(family.stats_size(packed)) for family, packed in jobs]
        worsts = [np.array([np.inf, -1.0]) for _ in jobs]
        rows = self._shared_block_rows(chunks, [s.size for s in stats],
                                       [packed.dtype for _, packed in jobs])
        works = [family.workspace(packed, chunk, self.n_threads, rows // chunk)
                 for (family, packed), chunk in zip(jobs, chunks)]
        with single_threaded_blas(), self.bar(f"E-step x{len(jobs)}") as bar:
            for start, blocks, weights in self._shared_blocks(jobs, rows, bar):
                for (family, packed), resp_fn, chunk, work, s, worst in zip(
                        jobs, resp_fns, chunks, works, stats, worsts):
                    block = blocks[np.dtype(packed.dtype)]
                    resp = None if resp_fn is None else resp_fn(start, block)
                    family.fit_block(packed, block, weights, resp, True, chunk, self.n_threads,
                                     work, s, worst, start)
        return list(zip(stats, worsts))

    def _shared_block_rows(self, chunks, stats_sizes, dtypes):
        """Rows per block of a pass serving several fits: a multiple of every job's chunk
        (default chunks are powers of two, so of the largest) within every job's budget of
        chunk statistics (:meth:`_chunks_per_block`)."""
        largest = max(chunks)
        rows = min(self._chunks_per_block(size, dtype) * chunk
                   for chunk, size, dtype in zip(chunks, stats_sizes, dtypes))
        return max(largest, rows // largest * largest)

    def _shared_blocks(self, jobs, rows, bar):
        """``(start, {dtype: block}, weights)`` over the source: each block read once and
        converted once to every dtype the jobs' packings compute in (a packing may run in
        float64 on float32 data, see ``fastem.families.gaussian``)."""
        dtypes = {np.dtype(packed.dtype) for _, packed in jobs}
        for start, block, weights in data.iter_blocks(self.X, rows, self.dtype,
                                                      self.sample_weight, bar):
            yield start, {dtype: np.ascontiguousarray(block, dtype=dtype)
                          for dtype in dtypes}, weights

    def score_many(self, jobs):
        """One pass: for each ``(family, packed)`` of ``jobs``, ``[sum_i w_i log p(x_i),
        sum_i w_i H(r_i)]`` with H(r_i) = -sum_k r_ik log r_ik the entropy of row i's
        posteriors (for ICL), as a list of arrays, one per job. Posteriors exist one block at a
        time, never for all rows; rows of zero weight (omitted) are left out. A family that
        scores blocks itself (``score_block``, e.g. :class:`fastem.grid.GridJob`, many
        candidates at once) gives its own array."""
        chunks = [self._chunk(packed.log_norm.shape[0]) for _, packed in jobs]
        works = [family.workspace(packed, chunk, self.n_threads, 0)
                 for (family, packed), chunk in zip(jobs, chunks)]
        totals = [0.0] * len(jobs)
        with single_threaded_blas(), self.bar(f"score x{len(jobs)}") as bar:
            for _, blocks, weights in self._shared_blocks(jobs, 64 * max(chunks), bar):
                for j, ((family, packed), chunk, work) in enumerate(zip(jobs, chunks, works)):
                    block = blocks[np.dtype(packed.dtype)]
                    if hasattr(family, "score_block"):
                        totals[j] = totals[j] + family.score_block(packed, block, weights, chunk,
                                                                   self.n_threads, work)
                        continue
                    log_prob = np.empty(block.shape[0])
                    resp = np.empty((block.shape[0], packed.log_norm.shape[0]))
                    family.predict_block(packed, block, chunk, self.n_threads, work, log_prob,
                                         resp, None)
                    totals[j] = totals[j] + block_score(log_prob, resp, weights)
        return totals

    def predict(self, family, packed, outputs, nan_policy=None):
        """Per-row outputs over the whole source, in one pass: ``outputs`` maps names of
        :data:`fastem.data.PER_ROW` to None (a new array), a path (a new ``.npy`` file,
        memory-mapped) or an array to fill; returns the filled arrays by name."""
        k = packed.log_norm.shape[0]
        with data.NewFiles() as files:  # paths: written under temporary names, renamed at the end
            targets = {what: data.output_array(out, *data.per_row_output(what, self.n_samples, k),
                                               files=files, inputs=(self.X,))
                       for what, out in outputs.items()}
            chunk = self._chunk(k)
            work = family.workspace(packed, chunk, self.n_threads, 0)
            omitted = 0
            with single_threaded_blas(), self.bar("predict") as bar:
                for start, block, _ in data.iter_blocks(self.X, PREDICT_CHUNKS * chunk,
                                                        packed.dtype, bar=bar):
                    bad = self._screen(block, start, family, nan_policy)
                    rows = slice(start, start + block.shape[0])
                    views = [targets[what][rows] if what in targets else None
                             for what in ("log_prob", "resp", "labels")]
                    family.predict_block(packed, block, chunk, self.n_threads, work, *views)
                    if bad is not None:
                        mark_omitted(bad, *views)
                        omitted += int(bad.sum())
            for target in targets.values():
                if isinstance(target, np.memmap):
                    target.flush()
        if nan_policy is not None:
            self.n_omitted = omitted
        return {what: np.load(os.fspath(outputs[what]), mmap_mode="r+")
                if isinstance(outputs[what], (str, os.PathLike)) else target
                for what, target in targets.items()}

    def impute(self, family, packed, params, out=None):
        """The source with each NaN entry replaced by its conditional mean given its row's
        observed entries under ``params`` (``family.impute_block``, the marginal family;
        rows with no observed entry: the mixture's mean); one pass, written to ``out`` as
        :meth:`predict` writes its outputs (None, a path for a new ``.npy`` file, or an
        (n, D) float64 array). Infinity raises."""
        k = packed.log_norm.shape[0]
        with data.NewFiles() as files:
            target = data.output_array(out, (self.n_samples, self.n_features), np.float64,
                                       files=files, inputs=(self.X,))
            chunk = self._chunk(k)
            work = family.workspace(packed, chunk, self.n_threads, 0)
            with single_threaded_blas(), self.bar("impute") as bar:
                for start, block, _ in data.iter_blocks(self.X, PREDICT_CHUNKS * chunk,
                                                        packed.dtype, bar=bar):
                    data.screen_missing(block, start, family)
                    rows = target[start:start + block.shape[0]]
                    if (block != block).any():
                        family.impute_block(packed, params, block, chunk, self.n_threads, work,
                                            rows)
                    else:
                        rows[:] = block
            if isinstance(target, np.memmap):
                target.flush()
        if isinstance(out, (str, os.PathLike)):
            return np.load(os.fspath(out), mmap_mode="r+")
        return target

    @staticmethod
    def _screen(block, start, family, nan_policy):
        """The rows of a block to leave out under ``nan_policy`` (None: not checked here)."""
        if nan_policy is None:
            return None
        if nan_policy == "marginalize":
            return data.screen_missing(block, start, family)
        return data.screen(block, start, family, omit=nan_policy == "omit")

    def column_max(self):
        """The largest finite value of each column (-inf where there is none), in one pass."""
        top = np.full(self.n_features, -np.inf)
        with self.bar("count") as bar:
            for _, block, _ in data.iter_blocks(self.X, data.BLOCK_ROWS, self.dtype, bar=bar):
                top = np.maximum(top, data.column_max(block))
        return top

    def bar(self, desc):
        """A progress bar named ``desc`` over the rows of one pass (a no-op without
        ``progress``); passes hand it to :func:`fastem.data.iter_blocks`."""
        if self.progress is None:
            return _NoBar()
        return self.progress(desc, self.n_samples)

    def sample_rows(self, rng, size):
        """At most ``size`` rows (float64), their weights and indices: see
        :func:`fastem.sampling.sample_rows`."""
        with self.bar("sample") as bar:
            return sampling.sample_rows(self.X, self.sample_weight, rng, size, bar)

    def rows(self, indices):
        """Rows of the source as float64, in the order given, repeats allowed.

        Each distinct row is read once, in increasing order: one fancy index where the source
        takes it (a memmap then reads only those rows; h5py refuses repeated or unsorted
        indices), else one slice per row for sources that take only slices.
        """
        unique, inverse = np.unique(np.asarray(indices, dtype=np.intp), return_inverse=True)
        data.size_check(self.X)()
        try:
            picked = self.X[unique]
        except Exception:  # refused index arrays; a real read error recurs in the slices below
            picked = np.concatenate([self.X[i:i + 1] for i in unique])
        return np.asarray(picked, dtype=np.float64)[inverse]


def clamped(resp, labels):
    """Given responsibilities (n, K) with each labelled row (``labels[i] >= 0``) one-hot on
    its label; ``resp`` itself without labels."""
    if labels is None or not (labels >= 0).any():
        return resp
    rows = np.flatnonzero(labels >= 0)
    resp = np.array(resp, dtype=np.float64)
    resp[rows] = 0.0
    resp[rows, labels[rows]] = 1.0
    return resp


def block_score(log_prob, resp, weights):
    """``[sum_i w_i log p(x_i), sum_i w_i H(r_i)]`` of one block, rows of zero weight left
    out (their values may be NaN); 0 log 0 counts as 0."""
    entropy = -np.einsum("ij,ij->i", resp, np.log(np.maximum(resp, np.finfo(np.float64).tiny)))
    if weights is None:
        return np.array([log_prob.sum(), entropy.sum()])
    w = np.asarray(weights, dtype=np.float64)
    keep = w > 0
    return np.array([w[keep] @ log_prob[keep], w[keep] @ entropy[keep]])


def mark_omitted(bad, log_prob, resp, labels):
    """Omitted rows get NaN log-likelihood and posteriors, and label -1."""
    for out, value in ((log_prob, np.nan), (resp, np.nan), (labels, -1)):
        if out is not None:
            out[bad] = value


class _NoBar:
    """Stands in for a progress bar when none is wanted."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        pass
