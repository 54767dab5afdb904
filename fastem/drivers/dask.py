"""The Dask driver: the local kernels mapped over the row blocks of a ``dask.array.Array``.

On its worker each block and its weights go to a :class:`~fastem.drivers.local.LocalDriver`,
so they meet the same compiled kernels, chunk size, sub-blocking and single-threaded BLAS as on
one machine, and give a zeroed-then-filled statistics vector and the block's worst-fit row.
Those small vectors are added in block order by a fixed tree (each node folds up to ``FAN_IN``
neighbours), so for a given blocking the result is the same whatever the number of workers, and
it equals the local driver's up to the order of the additions (rounding). The M-step runs on
the client; data blocks are read where they live and never gathered (the client receives
statistics vectors, and at most ``size`` rows when initialisation samples rows). A statistics
pass runs in one of two ways:

* Data persisted on a distributed cluster (every block of X, and of the weights and labels
  there are, held by a future): one task per worker, over the blocks that worker holds, in
  block order; the client adds the blocks' vectors. A pass then costs the scheduler and the
  client a few tasks whatever the number of blocks, and no block moves (benchmarks/README.md:
  issue 18).
* Otherwise (blocks read from storage or computed, e.g. ``from_zarr``): one task per block,
  the parameters sent once as a task every block task depends on, the vectors added by fold
  tasks on the cluster.

Differences from the local driver, all documented for users:

* ``n_threads=None`` means one kernel thread per block task: Dask's workers and threads
  already run blocks in parallel. A pass over persisted data runs one task per worker, which
  gets ``TASK_THREADS`` kernel threads per thread of its worker (at most the CPUs it may use):
  the worker's threads serve its blocks, and a worker whose blocks end first leaves its cores to
  the others' threads on the same machine, as the local driver's threads share chunks (no block
  moves). A number gives each task that many threads.
* Seeding samples rows per block with a generator seeded from the estimator's ``random_state``
  and the block's index, and ``init_params="random"`` draws each block's responsibilities from
  its own copy of the estimator's generator (a shared generator's state cannot follow the blocks
  around a cluster); both are deterministic for a fixed blocking but differ from a local fit.
* ``progress`` bars are not drawn: the Dask dashboard shows the tasks.
* Per-row outputs (and ``impute``'s) are lazy dask arrays. Given a ``nan_policy``, :meth:`DaskDriver.predict`
  therefore checks the rows in an eager pass first, so that a bad row or the count of omitted
  rows surfaces at the call, not when the user computes the array; ``out=`` is refused.
* ``sample_weight`` given as a numpy array and the weights made by ``nan_policy="omit"`` are
  persisted on the cluster (sent once); a ``client.restart()`` drops them, and the next pass
  then fails with a clear error.
"""
import concurrent.futures
import contextlib
import functools
import sys
import uuid
from typing import Any, NamedTuple

import cloudpickle
import dask
import dask.array as da
import numpy as np

from .. import data, sampling
from ..online import block_bounds
from .local import LocalDriver, check_options

FAN_IN = 32  # block results folded per merge task: one level up to 32 blocks, two to 1,024
TASK_THREADS = 2  # kernel threads per worker thread of a one-task-per-worker pass (see above):
# the OS then shares a machine's cores among its workers' threads until the last block ends


class Pass(NamedTuple):
    """What every block task of one pass needs; it travels once per pass, as one shared task."""

    family: Any
    packed: Any
    chunk_size: Any
    n_threads: int
    with_stats: bool = True
    resp_fn: Any = None  # cloudpickled (one per job of a pass serving several fits), so that
    # each block unpickles its own copy
    what: str = None  # per-row output of a prediction pass
    nan_policy: str = None  # rows checked on the workers (see fastem.drivers)
    jobs: tuple = None  # the (family, packed) pairs of a pass serving several fits


class BlockStats(NamedTuple):
    """What a block of a statistics pass returns: merged in block order on the cluster."""

    stats: Any
    worst: Any  # [lowest log p(x_i), its global row]
    omitted: int = 0
    error: Exception = None  # a bad row's ValueError; the client raises the first block's


class DaskDriver:
    """A dask array prepared for repeated passes on the current Dask scheduler (the default
    ``distributed`` client when there is one), following the driver contract of
    :mod:`fastem.drivers`."""

    def __init__(self, X, sample_weight=None, chunk_size=None, n_threads=None, progress=None):
        """Check that ``X`` has known chunk sizes and numeric dtype; align ``sample_weight`` (a
        dask or numpy array) with its row blocks. ``progress`` is ignored (see the module)."""
        _check_known_chunks(X, "X")
        self.dtype = data.working_dtype(X.dtype)
        self.X = X if X.numblocks[1] == 1 else X.rechunk({1: -1})  # whole rows in each block
        self.n_samples, self.n_features = (int(n) for n in X.shape)
        self.chunk_size, self.n_threads = check_options(chunk_size,
                                                        1 if n_threads is None else n_threads)
        self.threads_given = n_threads is not None
        self.starts = np.cumsum((0,) + self.X.chunks[0][:-1])
        self.sample_weight = self._aligned_weights(sample_weight)
        self.n_omitted = 0
        self.labels = None  # partial labels, an int dask array with X's row blocks

    def set_labels(self, y, n_components):
        """Partial labels as a dask array with X's row blocks (see :func:`dask_labels`)."""
        self.labels = dask_labels(y, self.n_samples, n_components, self.X.chunks[0])

    def _aligned_weights(self, sample_weight):
        """Weights as a float64 dask array with X's row blocks, checked on the workers as the
        local driver checks them; numpy weights are checked here and persisted (sent once)."""
        row_chunks = (self.X.chunks[0],)
        if sample_weight is None:
            return None
        if not isinstance(sample_weight, da.Array):
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

    def block_bounds(self, batch_size):
        """(start, stop) of the blocks of online EM: consecutive runs of ``batch_size`` rows."""
        return block_bounds(self.n_samples, batch_size)

    def block(self, start, stop):
        """A driver with the same options over rows [start, stop) (lazy slices of X and the
        weights; row numbers in its errors and ``rows`` count from ``start``)."""
        weights = None if self.sample_weight is None else self.sample_weight[start:stop]
        driver = DaskDriver(self.X[start:stop], weights, self.chunk_size,
                            self.n_threads if self.threads_given else None)
        driver.labels = None if self.labels is None else self.labels[start:stop]
        return driver

    def check_finite(self, family=None):
        """Raise ValueError at the first row holding NaN or infinity or, given a ``family``, a
        value outside its support, as locally (one pass; a small answer per block)."""
        self._raise_first(self._errors_per_block(family, "raise"))

    def omit_nonfinite(self, family=None):
        """Give rows holding NaN or infinity zero weight; the new weights are persisted on the
        cluster. Returns how many rows there are. Given a ``family`` that checks its support,
        the same pass raises ValueError at the first finite row outside it, as locally."""
        bad = self._nonfinite()
        base = self.sample_weight
        if base is None:
            base = da.ones(self.n_samples, chunks=(self.X.chunks[0],))
        checks = ([] if family is None or not family.checks_support
                  else self._errors_per_block(family, "omit"))
        with _lost_work():
            weights, count, checks = dask.persist(da.where(bad, 0.0, base), bad.sum(), checks)
            self._raise_first(checks)
            self.n_omitted = int(count.compute())
        self.sample_weight = weights
        return self.n_omitted

    def mark_missing(self, family=None):
        """``nan_policy="marginalize"``, as :meth:`LocalDriver.mark_missing
        <fastem.drivers.local.LocalDriver.mark_missing>` on the workers (one pass): rows with
        no observed entry get zero weight (the weights are persisted), the first row holding
        infinity (or outside the ``family``'s support) of all blocks and a column never
        observed raise. Returns the number of rows left out."""
        empty = self.X.map_blocks(_empty_rows, dtype=bool, drop_axis=1)
        base = self.sample_weight
        if base is None:
            base = da.ones(self.n_samples, chunks=(self.X.chunks[0],))
        observed = dask.delayed(_observed, pure=True)
        job = _shared(family)
        checks = [observed(block, weights, start, self.dtype, job)
                  for block, weights, start in self._blocks()]
        with _lost_work():
            weights, count, checks = dask.persist(da.where(empty, 0.0, base), empty.sum(),
                                                  checks)
            checks, = dask.compute(checks)
            for check in checks:
                if isinstance(check, Exception):
                    raise check
            data.check_observed(np.sum(checks, axis=0))
            self.n_omitted = int(count.compute())
        self.sample_weight = weights
        return self.n_omitted

    def _errors_per_block(self, family, nan_policy):
        """Delayed per block: the ValueError for its first bad row under ``nan_policy`` (see
        :func:`fastem.data.screen`, :func:`fastem.data.screen_missing`), or None."""
        first_invalid = dask.delayed(_first_invalid, pure=True)
        job = _shared(family)
        return [first_invalid(block, start, self.dtype, job, nan_policy)
                for block, _, start in self._blocks()]

    @staticmethod
    def _raise_first(errors):
        """Raise the first of the blocks' errors (delayed or computed), in block order."""
        with _lost_work():
            errors, = dask.compute(errors)
        for error in errors:
            if error is not None:
                raise error

    def _nonfinite(self):
        return self.X.map_blocks(_nonfinite_rows, dtype=bool, drop_axis=1)

    def accumulate(self, family, packed, with_stats=True, resp_fn=None, nan_policy=None):
        """One pass on the cluster: summed statistics vector and [lowest log p(x_i), its row].

        ``resp_fn(start, block)``, when given, supplies each block's responsibilities on the
        worker (initialisation), with ``start`` the block's global first row. ``nan_policy``
        checks rows on the workers, in the same pass; the first bad row of all blocks is named.
        """
        job = Pass(family, packed, self.chunk_size, self.n_threads, with_stats,
                   None if resp_fn is None else cloudpickle.dumps(resp_fn),
                   nan_policy=nan_policy)
        result = self._run(_block_stats, job, _merge_stats, with_labels=True)
        if result.error is not None:
            raise result.error
        if nan_policy is not None:
            self.n_omitted = int(result.omitted)
        return result.stats, result.worst

    def accumulate_many(self, jobs, resp_fns=None):
        """One pass serving several fits: each block's task runs the local driver's
        :meth:`~fastem.drivers.local.LocalDriver.accumulate_many` on its worker, and the
        per-job results are merged by the same fixed tree, job by job. ``resp_fns`` are
        given to each block as :meth:`accumulate` gives its ``resp_fn``."""
        pickled = None if resp_fns is None else tuple(
            None if fn is None else cloudpickle.dumps(fn) for fn in resp_fns)
        parts = self._per_block(_block_stats_many, jobs, _merge_many, resp_fn=pickled)
        return [(part.stats, part.worst) for part in parts]

    def score_many(self, jobs):
        """One pass: the local driver's :meth:`~fastem.drivers.local.LocalDriver.score_many`
        on every block, added in block order."""
        return self._per_block(_block_score_many, jobs, np.add)

    def _per_block(self, task, jobs, merge, resp_fn=None):
        """``task(block, weights, start, pass)`` over every block, merged by ``merge``."""
        job = Pass(None, None, self.chunk_size, self.n_threads, resp_fn=resp_fn,
                   jobs=tuple(jobs))
        return self._run(task, job, merge)

    def _run(self, task, job, merge, with_labels=False):
        """``task(block, weights[, labels], start, job)`` over every row block, the results
        merged in block order by ``merge``. Data persisted on a distributed cluster run as one
        task per worker over the blocks it holds (:func:`_per_worker`); others as a graph of
        one task per block, ``job`` sent once (:func:`_shared`), merged on the cluster."""
        resident = self._resident(with_labels)
        with _lost_work():
            if resident is not None:
                job = job if self.threads_given else job._replace(n_threads=None)
                return _tree(_per_worker(task, resident, self.X.chunks[0], job), merge,
                             fold=_fold)
            job = _shared(job)
            block_task = dask.delayed(task, pure=True)
            labels = [(labels,) if with_labels else () for labels in self._labels()]
            parts = [block_task(block, weights, *extra, start, job)
                     for (block, weights, start), extra in zip(self._blocks(), labels)]
            result, = dask.compute(_tree(parts, merge))
        return result

    def _resident(self, with_labels):
        """The arguments (block, weights[, labels], start) of each row block as futures, when
        X, the weights and the labels (those there are) are persisted on a distributed
        cluster; else None."""
        arrays = [self.X, self.sample_weight] + ([self.labels] if with_labels else [])
        columns = [[None] * len(self.starts) if array is None else _futures(array)
                   for array in arrays]
        if any(column is None for column in columns):
            return None
        return list(zip(*columns, self.starts.tolist()))

    def _labels(self):
        """The delayed labels of each row block (None without labels)."""
        if self.labels is None:
            return [None] * len(self.starts)
        return self.labels.to_delayed().ravel()

    def _blocks(self):
        """(delayed block, delayed weights or None, first row) for each row block."""
        blocks = self.X.to_delayed().ravel()
        weights = ([None] * len(blocks) if self.sample_weight is None
                   else self.sample_weight.to_delayed().ravel())
        return zip(blocks, weights, self.starts.tolist())

    def predict(self, family, packed, outputs, nan_policy=None):
        """Lazy per-row outputs by name (``fastem.data.PER_ROW``), blocked as X; ``outputs``
        must map each name to None (a dask array is stored by the user, e.g. ``.to_zarr``).
        ``nan_policy`` checks the rows in an eager pass first (see the module)."""
        if any(out is not None for out in outputs.values()):
            raise ValueError("out= is not supported for Dask input; store the returned "
                             "Dask array instead (e.g. with .to_zarr)")
        if nan_policy == "raise":
            self.check_finite(family)
        elif nan_policy == "omit":
            self.omit_nonfinite(family)
        elif nan_policy == "marginalize":
            self._raise_first(self._errors_per_block(family, nan_policy))
            with _lost_work():
                self.n_omitted = int(self.X.map_blocks(_empty_rows, dtype=bool,
                                                       drop_axis=1).sum().compute())
        return {what: self._predict_lazy(family, packed, what, nan_policy) for what in outputs}

    def _predict_lazy(self, family, packed, what, nan_policy):
        """Lazy per-row ``what``; the rows that ``nan_policy`` leaves out ("omit": rows
        holding NaN or infinity; "marginalize": rows with no observed entry) are marked."""
        marked = nan_policy if nan_policy in ("omit", "marginalize") else None
        job = _shared(Pass(family, packed, self.chunk_size, self.n_threads, what=what,
                           nan_policy=marked))
        k = packed.log_norm.shape[0]
        shape, dtype = data.per_row_output(what, self.n_samples, k)
        if len(shape) == 2:
            return self.X.map_blocks(_predict_block, job, dtype=dtype,
                                     chunks=(self.X.chunks[0], (k,)))
        return self.X.map_blocks(_predict_block, job, dtype=dtype, drop_axis=1)

    def impute(self, family, packed, params, out=None):
        """Lazy: X with each NaN entry replaced by its conditional mean (the local driver's
        :meth:`~fastem.drivers.local.LocalDriver.impute` on each block), blocked as X. Rows
        holding infinity raise in an eager pass first, as :meth:`predict` checks rows;
        ``out=`` is refused (store the returned array)."""
        if out is not None:
            raise ValueError("out= is not supported for Dask input; store the returned "
                             "Dask array instead (e.g. with .to_zarr)")
        self._raise_first(self._errors_per_block(family, "marginalize"))
        job = _shared((family, packed, params, self.chunk_size, self.n_threads))
        return self.X.map_blocks(_impute_block, job, dtype=np.float64)

    def column_max(self):
        """The largest finite value of each column (-inf where there is none): one pass, the
        blocks' maxima merged on the cluster."""
        column_max = dask.delayed(_column_max, pure=True)
        parts = [column_max(block, start) for block, _, start in self._blocks()]
        with _lost_work():
            top, = dask.compute(_tree(parts, np.maximum))
        return top

    def rows(self, indices):
        """Rows of X as float64, in the order given (only the blocks holding them are read)."""
        indices = np.asarray(indices, dtype=np.intp)
        with _lost_work():
            picked = self.X[indices].compute()
        return np.asarray(picked, dtype=np.float64).reshape(indices.size, self.n_features)

    def sample_rows(self, rng, size):
        """At most ``size`` rows (float64), their weights and indices, as
        :func:`fastem.sampling.sample_rows`: a weighted reservoir in each block on its worker,
        merged by the same fixed tree. Data of at most ``size`` rows are read whole, as
        locally."""
        if self.n_samples <= size:
            with _lost_work():
                X, w = dask.compute(self.X, self.sample_weight)
            return sampling.sample_rows(X, w, rng, size)
        seed = int(rng.randint(0, 2**31 - 1))
        block_sample = dask.delayed(_block_sample, pure=True)
        parts = [block_sample(block, weights, start, seed, index, size)
                 for index, (block, weights, start) in enumerate(self._blocks())]
        with _lost_work():
            sample, = dask.compute(_tree(parts, sampling.keep_largest, size))
        return sampling.sample_from_keys(*sample)


def dask_labels(y, n_samples, n_components, row_chunks):
    """Partial labels (see :func:`fastem.data.check_labels`: ValueError naming a bad ``y``;
    None for None or a target without -1) as an int dask array blocked by ``row_chunks``: a
    numpy ``y`` is checked on the client and persisted (sent once), a dask ``y`` is checked on
    the workers (one pass) and read with X's blocks in every later pass."""
    if y is None or not isinstance(y, da.Array):
        labels = data.check_labels(y, n_samples, n_components)
        if labels is None:
            return None
        with _lost_work():
            return da.from_array(np.asarray(labels, dtype=np.intp),
                                 chunks=(row_chunks,)).persist()
    _check_known_chunks(y, "y")
    if y.ndim == 1:
        summary = dask.delayed(data.labels_summary, pure=True)
        starts = np.cumsum((0,) + y.chunks[0][:-1]).tolist()
        parts = [summary(block, start, n_components)
                 for block, start in zip(y.to_delayed().ravel(), starts)]
    else:  # a wrong shape: only whether it marks unlabelled rows matters
        parts = [(dask.delayed(bool)((y == -1).any()), False, None)]
    with _lost_work():
        summaries, = dask.compute(parts)
    used = data.judge_labels(y.dtype, y.shape, n_samples, n_components, summaries)
    return y.rechunk((row_chunks,)) if used else None


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


def _futures(array):
    """The futures holding the blocks of a persisted dask ``array``, in block order (None
    when some block is a task, not data held on a distributed cluster)."""
    distributed = sys.modules.get("distributed")  # no futures without it: never imported here
    if distributed is None:
        return None
    graph = array.__dask_graph__()
    futures = [graph.get(key) for key in dask.core.flatten(array.__dask_keys__())]
    if not all(isinstance(future, distributed.Future) for future in futures):
        return None
    return futures


def _per_worker(task, parts, rows, job):
    """``task(*part, job)`` for each of ``parts`` (futures first of all the block), in block
    order, computed by one task per worker over the blocks it holds (the fewest rows so far
    among a block's holders; any worker for a block nobody holds). A pass then costs the
    scheduler and the client a few tasks, whatever the number of blocks, and no data move."""
    from distributed import wait

    client = parts[0][0].client
    wait([part[0] for part in parts])
    who_has = client.who_has([part[0] for part in parts])
    load, groups = {}, {}
    for index, (part, size) in enumerate(zip(parts, rows)):
        holders = who_has.get(part[0].key) or [None]
        worker = min(holders, key=lambda w: load.get(w, 0))
        load[worker] = load.get(worker, 0) + size
        groups.setdefault(worker, []).append(index)
    futures = [client.submit(_run_blocks, task, [parts[i] for i in indices], job, pure=False,
                             workers=None if worker is None else [worker],
                             allow_other_workers=True)
               for worker, indices in groups.items()]
    ordered = [None] * len(parts)
    for indices, results in zip(groups.values(), client.gather(futures)):
        for index, result in zip(indices, results):
            ordered[index] = result
    return ordered


def _tree(parts, merge, *args, fold=None):
    """Merge ``parts`` into one by folding up to ``FAN_IN`` neighbours left to right, level by
    level: a fixed order of additions however the work is scheduled. ``parts`` are delayed
    and the folds tasks on the cluster, in few levels (each waits for a round trip through the
    scheduler and a transfer between workers), unless ``fold`` is given (``_fold`` for values
    on the client: the same additions in the same order)."""
    fold = fold or dask.delayed(_fold, pure=True)
    while len(parts) > 1:
        parts = [fold(merge, args, *parts[i:i + FAN_IN]) for i in range(0, len(parts), FAN_IN)]
    return parts[0]


def _fold(merge, args, *parts):
    """``parts`` merged left to right by ``merge(*args, a, b)``."""
    return functools.reduce(lambda a, b: merge(*args, a, b), parts)


# ---------------------------------------------------------------- run on the workers
def _block_stats(block, weights, labels, start, job):
    """A block's :class:`BlockStats`, by the local driver (with the block's ``labels``), after
    checking its rows under ``job.nan_policy`` (a bad row's error is returned, so the client
    names the first one)."""
    block, omitted = _numeric(block, start), 0
    if job.nan_policy is not None:
        try:
            bad = LocalDriver._screen(np.asarray(block, dtype=job.packed.dtype), start,
                                      job.family, job.nan_policy)
        except ValueError as error:
            return BlockStats(None, None, error=error)
        if bad is not None:
            weights, omitted = data.without_rows(weights, bad), int(bad.sum())
    local = _local(block, weights, job)
    local.labels = labels
    stats, worst = local.accumulate(job.family, job.packed, job.with_stats,
                                    _block_resp_fn(job.resp_fn, start))
    if worst[1] >= 0:
        worst[1] += start
    return BlockStats(stats, worst, omitted)


def _run_blocks(task, parts, job):
    """``task(*part, job)`` for each of the blocks one worker holds, in the order given; a
    ``job`` without ``n_threads`` gets ``TASK_THREADS`` per thread of this worker."""
    if job.n_threads is None:
        from distributed import get_worker

        job = job._replace(n_threads=TASK_THREADS * get_worker().state.nthreads)
    return [task(*part, job) for part in parts]


def _block_resp_fn(pickled, start):
    """This block's own copy of a pickled ``resp_fn``, called with global rows (None: none)."""
    if pickled is None:
        return None
    given = cloudpickle.loads(pickled)

    def resp_fn(offset, rows):
        return given(start + offset, rows)

    return resp_fn


def _block_stats_many(block, weights, start, job):
    """Each job's :class:`BlockStats` of one block."""
    resp_fns = None if job.resp_fn is None else [_block_resp_fn(fn, start)
                                                 for fn in job.resp_fn]
    results = _local(_numeric(block, start), weights, job).accumulate_many(job.jobs, resp_fns)
    for _, worst in results:
        if worst[1] >= 0:
            worst[1] += start
    return [BlockStats(stats, worst) for stats, worst in results]


def _merge_many(a, b):
    """Two neighbouring blocks' per-job statistics, merged job by job."""
    return [_merge_stats(x, y) for x, y in zip(a, b)]


def _block_score_many(block, weights, start, job):
    """Each job's [log-likelihood, entropy] sums over one block."""
    return _local(_numeric(block, start), weights, job).score_many(job.jobs)


def _merge_stats(a, b):
    """Two neighbouring blocks' statistics added; the earlier block's error or (on ties) worst
    row wins."""
    if a.error is not None or b.error is not None:
        return a if a.error is not None else b
    return BlockStats(a.stats + b.stats, a.worst if a.worst[0] <= b.worst[0] else b.worst,
                      a.omitted + b.omitted)


def _local(block, weights, job):
    """A local driver over one (checked) block."""
    return LocalDriver(block, weights, job.chunk_size, job.n_threads)


def _block_sample(block, weights, start, seed, index, size):
    """The weighted reservoir (keys, global indices, rows) of one block, from its own seed."""
    blocks = ((start + offset, rows, w) for offset, rows, w
              in data.iter_blocks(_numeric(block, start), data.BLOCK_ROWS, np.float64,
                                  weights))
    return sampling.reservoir(blocks, np.random.default_rng([seed, index]), size,
                              block.shape[1])


def _predict_block(block, job, block_info=None):
    """Per-row output ``job.what`` of one block, by the local driver."""
    start = block_info[0]["array-location"][0][0] if block_info else 0
    local = _local(_numeric(block, start), None, job)
    return local.predict(job.family, job.packed, {job.what: None}, job.nan_policy)[job.what]


def _impute_block(block, job, block_info=None):
    """One block with its NaN entries imputed, by the local driver."""
    family, packed, params, chunk_size, n_threads = job
    start = block_info[0]["array-location"][0][0] if block_info else 0
    local = LocalDriver(_numeric(block, start), None, chunk_size, n_threads)
    return local.impute(family, packed, params)


def _column_max(block, start):
    """The largest finite value of each column of one block."""
    return data.column_max(_numeric(block, start))


def _numeric(block, start):
    """The block, after checking that it holds numbers (its dtype, not just the array's)."""
    data.working_dtype(block.dtype, name=f"X (block from row {start})")
    return block


def _nonfinite_rows(block, block_info=None):
    """Which rows of a block hold NaN or infinity."""
    start = block_info[0]["array-location"][0][0] if block_info else 0
    return ~data.finite_rows(_numeric(block, start))


def _first_invalid(block, start, dtype, family, nan_policy):
    """The ValueError for a block's first bad row under ``nan_policy`` (global row numbers),
    or None: returned, not raised, so that the client raises the first of all."""
    try:
        LocalDriver._screen(np.ascontiguousarray(_numeric(block, start), dtype=dtype), start,
                            family, nan_policy)
    except ValueError as error:
        return error
    return None


def _empty_rows(block, block_info=None):
    """Which rows of a block have no observed entry (all NaN)."""
    start = block_info[0]["array-location"][0][0] if block_info else 0
    empty = data.empty_rows(_numeric(block, start))
    return np.zeros(block.shape[0], dtype=bool) if empty is None else empty


def _observed(block, weights, start, dtype, family):
    """A block's observed entries per column over rows of positive weight, or the ValueError
    for its first bad row under "marginalize" (see :func:`fastem.data.missing_rows`)."""
    observed = np.zeros(block.shape[1], dtype=np.int64)
    try:
        for _ in data.missing_rows(_numeric(block, start), dtype, observed, weights, family,
                                   offset=start):
            pass
    except ValueError as error:
        return error
    return observed


def _checked_weights(block):
    """A block of weights, checked as the local driver checks them."""
    return data.check_sample_weight(block, block.shape[0])
