"""The Dask sequence driver: hidden Markov models over the sequences of a ``dask.array.Array``.

X is rechunked once so that each row block holds whole sequences (consecutive sequences up to
the largest of X's block sizes, or one longer sequence alone: that block is held by one worker).
Every pass is one task per block, running the local
:class:`~fastem.drivers.sequences.SequenceDriver` on the worker; statistics come back as one
small vector per block and are added pairwise in block order by the fixed tree of
:mod:`fastem.drivers.dask`, so a fit is the same whatever the number of workers and equals the
local fit up to the order of the additions (rounding). The M-step runs on the client.
Posteriors and states are computed on the workers and gathered block by block (into an array
or a ``.npy`` file given by ``out=``).
"""
import dask
import numpy as np

from .. import data
from .dask import (
    BlockStats,
    _check_known_chunks,
    _lost_work,
    _merge_stats,
    _shared,
    _tree,
    dask_labels,
)
from .local import check_options
from .sequences import SequenceDriver


class DaskSequenceDriver:
    """A dask array cut into sequences by ``lengths``, for :mod:`fastem.estimators.hmm`."""

    def __init__(self, X, lengths, chunk_size=None, n_threads=None, progress=None):
        """``n_threads=None``: one kernel thread per task, as for the Dask driver's block tasks;
        ``progress`` is ignored (the Dask dashboard shows the tasks)."""
        _check_known_chunks(X, "X")
        self.dtype = data.working_dtype(X.dtype)
        self.n_samples, self.n_features = (int(n) for n in X.shape)
        self.lengths = data.check_lengths(lengths, self.n_samples)
        runs = list(data.sequence_runs(self.lengths, max(X.chunks[0])))
        self.X = X.rechunk({0: tuple(stop - start for start, stop, _ in runs), 1: -1})
        self.starts = [start for start, _, _ in runs]
        self.block_lengths = [np.diff(bounds) for _, _, bounds in runs]
        self.chunk_size, self.n_threads = check_options(chunk_size,
                                                        1 if n_threads is None else n_threads)
        self.n_omitted = 0
        self.filler = None
        self.marginal = False  # nan_policy="marginalize" (see SequenceDriver.mark_missing)
        self.labels = None  # partial labels, an int dask array with X's blocks

    def set_labels(self, y, n_components):
        """Partial labels, checked and blocked as X (see :func:`fastem.drivers.dask.
        dask_labels`); each block's go to its task."""
        self.labels = dask_labels(y, self.n_samples, n_components, self.X.chunks[0])

    def _map(self, task, *args):
        """``task(local driver, start, *args)`` on every block, delayed, in block order."""
        job = _shared((self.chunk_size, self.n_threads, self.filler, self.marginal) + args)
        call = dask.delayed(_on_block, pure=True)
        labels = ([None] * len(self.starts) if self.labels is None
                  else self.labels.to_delayed().ravel())
        return [call(task, block, lengths, given, start, job) for block, lengths, given, start
                in zip(self.X.to_delayed().ravel(), self.block_lengths, labels, self.starts)]

    @staticmethod
    def _compute(parts):
        with _lost_work():
            return dask.compute(parts)[0]

    def check_finite(self, family=None):
        """ValueError at the first row holding NaN or infinity, or outside the ``family``'s
        support (global row numbers, the first of all blocks)."""
        for error in self._compute(self._map(_first_error, family)):
            if error is not None:
                raise error

    def check_missing(self, family=None):
        """As :meth:`SequenceDriver.check_missing`, on the workers."""
        results = self._compute(self._map(_missing, family))
        for result in results:
            if isinstance(result, Exception):
                raise result
        self.n_omitted = sum(count for count, _ in results)
        fillers = [filler for _, filler in results if filler is not None]
        if not fillers:
            raise ValueError("X: every row is missing (all NaN): nothing to fit or score")
        self.filler = fillers[0]

    def mark_missing(self, family=None, every_column=True):
        """As :meth:`SequenceDriver.mark_missing`, on the workers (errors name global rows)."""
        results = self._compute(self._map(_marginal, family))
        for result in results:
            if isinstance(result, Exception):
                raise result
        if every_column:
            data.check_observed(np.sum([observed for _, observed in results], axis=0))
        self.n_omitted = sum(count for count, _ in results)
        self.marginal = True
        return self.n_omitted

    def accumulate(self, family, packed):
        """One E-step pass on the cluster: the statistics vector and [lowest sequence
        log-likelihood, its first row]."""
        result = self._compute(_tree(self._map(_accumulate, family, packed), _merge_stats))
        return result.stats, result.worst

    def score(self, family, packed):
        """log p(X) of each sequence."""
        return np.concatenate(self._compute(self._map(_score, family, packed)))

    def posteriors(self, family, packed, consume):
        """Log-likelihood of each sequence; ``consume(start, posteriors)`` receives each
        block's posteriors, computed on the workers."""
        results = self._compute(self._map(_posteriors, family, packed))
        for start, (_, gamma) in zip(self.starts, results):
            consume(start, gamma)
        return np.concatenate([seq_ll for seq_ll, _ in results])

    def viterbi(self, family, packed, states):
        """Summed log p(x, best path); the most likely state of each row into ``states``."""
        total = 0.0
        for start, (best, path) in zip(self.starts,
                                       self._compute(self._map(_viterbi, family, packed))):
            states[start:start + path.size] = path
            total += best
        return total


# ---------------------------------------------------------------- run on the workers
def _on_block(task, block, lengths, labels, start, job):
    chunk_size, n_threads, filler, marginal, *args = job
    data.working_dtype(block.dtype, name=f"X (block from row {start})")
    driver = SequenceDriver(np.asarray(block), lengths, chunk_size, n_threads)
    driver.filler, driver.marginal = filler, marginal
    driver.labels = None if labels is None else np.asarray(labels)
    return task(driver, start, *args)


def _first_error(driver, start, family):
    """The ValueError for the block's first bad row (global numbering), or None."""
    try:
        for offset, block, _ in data.iter_blocks(driver.X, data.BLOCK_ROWS, driver.dtype):
            data.screen(block, start + offset, family)
    except ValueError as error:
        return error
    return None


def _missing(driver, start, family):
    try:
        return data.check_missing(driver.X, driver.dtype, family=family, offset=start,
                                  required=False)
    except ValueError as error:
        return error


def _marginal(driver, start, family):
    """(rows with no observed entry, observed entries per column), or the first bad row's
    ValueError (global numbering)."""
    observed = np.zeros(driver.n_features, dtype=np.int64)
    try:
        count = sum(int(empty.sum()) for _, empty in data.missing_rows(
            driver.X, driver.dtype, observed, family=family, offset=start))
    except ValueError as error:
        return error
    return count, observed


def _accumulate(driver, start, family, packed):
    stats, worst = driver.accumulate(family, packed)
    if worst[1] >= 0:
        worst[1] += start
    return BlockStats(stats, worst)


def _score(driver, start, family, packed):
    return driver.score(family, packed)


def _posteriors(driver, start, family, packed):
    gamma = np.empty((driver.n_samples, packed.log_norm.shape[0]))

    def write(offset, rows):
        gamma[offset:offset + rows.shape[0]] = rows
    return driver.posteriors(family, packed, write), gamma


def _viterbi(driver, start, family, packed):
    states = np.empty(driver.n_samples, dtype=np.intp)
    return driver.viterbi(family, packed, states), states
