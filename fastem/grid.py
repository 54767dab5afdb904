"""One E-step for a grid of Gaussian mixtures: the passes of :func:`fastem.select`.

The full and diagonal Gaussian candidates of a grid share one compiled kernel
(``fastem/_kernels/grid.pyx``): each chunk's features about one centre ``c`` are computed once,
and one GEMM per covariance type gives every candidate's log-densities, one more every
candidate's statistics. For this each such candidate is packed in the exponential-family form
about ``c`` in float64 (also for float32 data, whose rows the kernel converts chunk by chunk),
wherever that form's rounding bound holds in float64 (``EXPFAM_MAX_ERROR``, 1e-10 nats per
row); its statistics come back in that packing's layout, so its M-step is the one a separate
fit runs. Candidates whose bound fails, other covariance types and other families run their
own kernels in the same pass, as before.

The passes with given responsibilities that start the candidates (k-means labels, random
draws: :class:`fastem.lockstep.SharedInit`) run in the same kernel, which then only adds
r' t; each candidate's statistics about ``c`` are restated about its own pivot (the family's
``rebase``). Their rounding grows with |mu_k - c|^2 relative to the components' spread, as the
exponential-family form's does; a candidate whose statistics fail the same bound (tight
components far from ``c``) is passed again in its own kernel (one more read of the data).

``c`` is fixed at the first pass the kernel serves: the average of the starting candidates'
pivots (their initial centres), or the mixture mean of the first candidate of an E-step.
"""
import numpy as np

from ._kernels import grid as kernel
from .families.gaussian import (
    EXPFAM_MAX_ERROR,
    KIND_DIAG,
    KIND_EXPFAM_DIAG,
    KIND_EXPFAM_FULL,
    KIND_FULL,
    GaussianFamily,
    KernelParams,
    expfam_rounding_scale,
    unpack_moments,
)
from .frame import Statistics
from .latent.mixture import Mixture
from .lockstep import FAILURES, pack

CHUNK_ROWS = 256  # rows per chunk: the features, the (rows, components) posteriors and the
                  # GEMMs' operands of a chunk stay in L2 with all 110 components of K = 1..10
MAX_CHUNKS = 256  # chunks per kernel call: bounds the buffer of their results (~7 MB there)


def feature_order(d):
    """For each feature of a packing (EXPFAM_FULL: [v, v_a v_b for a <= b], np.triu_indices
    order), its row in the kernel's features without the constant ([v, v^2, v_a v_b for
    a < b])."""
    rows, cols = np.triu_indices(d)
    off = {pair: 2 * d + i for i, pair in enumerate(zip(*np.triu_indices(d, 1)))}
    quadratic = [d + a if a == b else off[a, b] for a, b in zip(rows, cols)]
    return np.concatenate([np.arange(d), np.asarray(quadratic, dtype=np.intp)])


class GridPasses:
    """Packings and passes of a lock-step run (:func:`fastem.lockstep.run_lockstep`'s
    ``grid``, :class:`fastem.lockstep.SharedInit`'s) and of its scoring pass, the Gaussian
    candidates in one kernel."""

    def __init__(self, driver):
        self.driver, self.centre = driver, None
        self._grid = set()  # ids of the packings made for the grid kernel, for this pass
        self._slots = np.empty(0)  # the chunks' results, reused from pass to pass

    def pack(self, fit, driver):
        """``fit``'s packing: about ``c`` for the grid kernel where it can run, else the fit's
        own (:func:`fastem.lockstep.pack`, which sets ``fit.error`` on failure)."""
        packed = self.pack_params(fit.latent, fit.family, fit.result.params)
        return pack(fit, driver) if packed is None else packed

    def pack_params(self, latent, family, params):
        """The grid kernel's packing of ``params``, or None where it cannot run."""
        if not (isinstance(latent, Mixture) and gridded(family)):
            return None
        try:
            if self.centre is None:
                self.centre = np.average(params.means, axis=0, weights=params.weights)
            packed = latent.pack(family, params, np.float64, centre=self.centre)
        except FAILURES:
            return None
        if packed.kind not in (KIND_EXPFAM_FULL, KIND_EXPFAM_DIAG):
            return None
        self._grid.add(id(packed))
        return packed

    def accumulate_many(self, jobs, resp_fns=None):
        """The driver's ``accumulate_many`` over ``jobs`` (and ``resp_fns``), the grid kernel
        serving, as one job of the pass, those packed for it or, with given responsibilities,
        every full and diagonal Gaussian one."""
        if resp_fns is None:
            inside = [i for i, (_, packed) in enumerate(jobs) if id(packed) in self._grid]
        else:
            inside = [i for i, (family, packed) in enumerate(jobs)
                      if gridded(family) and packed.kind in (KIND_FULL, KIND_DIAG)]
        self._grid.clear()
        if not inside:
            return self.driver.accumulate_many(jobs, resp_fns)
        # the order of the jobs may be that in which threads asked (SharedInit): the centre
        # and the kernel's columns follow an order of their contents, so results do not vary
        inside.sort(key=lambda i: canonical(jobs[i]))
        if self.centre is None:  # given responsibilities start the first candidates
            self.centre = np.concatenate([jobs[i][1].pivot for i in inside]).mean(axis=0)
        group = GridJob([jobs[i] for i in inside], self.centre, self.driver.dtype, self,
                        given=resp_fns is not None)
        rest = [i for i in range(len(jobs)) if i not in set(inside)]
        fns = None
        if resp_fns is not None:
            fns = [resp_fns[i] for i in rest] + [group.resp_fn([resp_fns[i] for i in inside])]
        results = self.driver.accumulate_many([jobs[i] for i in rest] + [(group, group.packed)],
                                              fns)
        merged = dict(zip(rest, results[:-1]))
        merged.update(zip(inside, group.split(results[-1][0])))
        if resp_fns is not None:  # statistics that the centre would blur: their own pass
            again = [i for i in inside if not accurate(jobs[i][0], merged[i][0],
                                                       jobs[i][1], self.centre)]
            if again:
                merged.update(zip(again, self.driver.accumulate_many(
                    [jobs[i] for i in again], [resp_fns[i] for i in again])))
        return [merged[i] for i in range(len(jobs))]

    def slots(self, n_chunks, size):
        """An (n_chunks, size) buffer for the chunks' results, reused from pass to pass."""
        if self._slots.size < n_chunks * size:
            self._slots = np.empty(n_chunks * size)
        return self._slots[:n_chunks * size].reshape(n_chunks, size)

    def score_many(self, jobs):
        """The driver's ``score_many`` over ``jobs`` ([log-likelihood, entropy] per job), the
        grid kernel serving those packed for it."""
        inside = [i for i, (_, packed) in enumerate(jobs) if id(packed) in self._grid]
        self._grid.clear()
        if not inside:
            return list(self.driver.score_many(jobs))
        group = GridJob([jobs[i] for i in inside], self.centre, self.driver.dtype, self)
        rest = [i for i in range(len(jobs)) if i not in set(inside)]
        results = self.driver.score_many([jobs[i] for i in rest] + [(group, group.packed)])
        merged = dict(zip(rest, results[:-1]))
        merged.update(zip(inside, results[-1]))
        return [merged[i] for i in range(len(jobs))]


def canonical(job):
    """A key ordering ``(family, packed)`` jobs by their contents."""
    family, packed = job
    return (family.covariance_type, packed.log_norm.shape[0], packed.pivot.tobytes(),
            packed.proj.tobytes(), packed.log_norm.tobytes())


def gridded(family):
    """Whether the grid kernel can serve ``family``: full and diagonal Gaussians."""
    return (type(family) is GaussianFamily and not family.missing
            and family.covariance_type in ("full", "diag"))


def accurate(family, stats, packed, centre):
    """Whether statistics summed about ``centre`` keep the exponential-family bound in float64
    (``EXPFAM_MAX_ERROR``): their error relative to each component's spread is about eps
    times :func:`~fastem.families.gaussian.expfam_rounding_scale` of the components they give
    (covariances with ``reg_covar``, as the M-step's). Empty components are left out."""
    k, d = packed.pivot.shape
    view = Statistics(stats, k)
    s1, second = unpack_moments(view.family, packed.kind, k, d)
    s0 = view.s0
    used = s0 > 0
    if not used.any():
        return True
    offset = s1[used] / s0[used, None]  # mean - pivot
    if second.ndim == 3:
        cov = (second[used] / s0[used, None, None]
               - offset[:, :, None] * offset[:, None, :] + family.reg_covar * np.eye(d))
        with np.errstate(all="ignore"):
            precision = np.linalg.inv(cov)
    else:
        with np.errstate(all="ignore"):
            precision = 1.0 / (second[used] / s0[used, None] - offset**2 + family.reg_covar)
    offset = offset + packed.pivot[used] - centre
    with np.errstate(all="ignore"):
        scale = expfam_rounding_scale(offset, precision).max()
    return bool(np.finfo(np.float64).eps * scale <= EXPFAM_MAX_ERROR[np.dtype(np.float64)])


class GridPacked:
    """What a driver reads of a job's packing: the components (chunk sizes) and the dtype of
    its blocks (the data's: the kernel converts each chunk)."""

    def __init__(self, n_components, dtype):
        self.log_norm, self.dtype = np.zeros(n_components), dtype


class GridJob:
    """The grid kernel as one job of a driver's pass (the family interface the drivers call):
    its candidates' ``(family, packed)``, packed about one centre (E-step, scoring) or, with
    ``given`` responsibilities, around their own pivots; ``passes`` (:class:`GridPasses`)
    lends the buffer of the chunks' results."""

    def __init__(self, jobs, centre, dtype, passes, given=False):
        full = [i for i, (family, _) in enumerate(jobs) if family.covariance_type == "full"]
        self.order = full + [i for i in range(len(jobs)) if i not in set(full)]
        self.jobs, self.given = [jobs[i] for i in self.order], given
        self.n_full, self.centre = len(full), np.ascontiguousarray(centre, dtype=np.float64)
        self.d = d = self.centre.shape[0]
        self.perm = feature_order(d)
        sizes = [packed.log_norm.shape[0] for _, packed in self.jobs]
        self.bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)
        self.k_full = int(self.bounds[self.n_full])
        weights = [np.zeros((0, kernel.full_features(d) - 1)), np.zeros((0, 2 * d))]
        for j, (_, packed) in enumerate(self.jobs):  # W (features, k) -> the kernel's rows
            w = np.zeros((sizes[j], weights[j >= self.n_full].shape[1]))
            if not given:
                w[:, self._rows(j)] = packed.proj.T
            weights[j >= self.n_full] = np.vstack([weights[j >= self.n_full], w])
        self.w_full, self.w_diag = (np.ascontiguousarray(w) for w in weights)
        self.log_norm = np.concatenate([packed.log_norm for _, packed in self.jobs])
        self.size = kernel.result_size(d, self.k_full, self.log_norm.shape[0] - self.k_full,
                                       len(jobs))
        self.packed, self.passes = GridPacked(self.log_norm.shape[0], dtype), passes

    def _rows(self, j):
        """The kernel's feature rows (without the constant) of candidate j's packed
        features: [v, v^2] for a diagonal one."""
        return self.perm if j < self.n_full else np.arange(2 * self.d)

    def resp_fn(self, resp_fns):
        """The group's ``resp_fn`` from its candidates' (given in the order of ``jobs``): a
        block's responsibilities as a list, in the group's order."""
        ordered = [resp_fns[i] for i in self.order]
        return lambda start, block: [fn(start, block) for fn in ordered]

    def stats_size(self, packed):
        return self.size

    def workspace(self, packed, chunk_size, n_threads, n_chunks):
        """Per-thread scratch (the chunks' results go to the buffer of ``passes``)."""
        return np.empty((n_threads, kernel.scratch_size(CHUNK_ROWS, self.d,
                                                        self.log_norm.shape[0])))

    def fit_block(self, packed, X, weights, resp, with_stats, chunk_size, n_threads, work, stats,
                  worst, row_offset, labels=None):
        """Add a block's result into ``stats`` (``worst`` is kept per candidate, in it)."""
        if (resp is not None) != self.given or labels is not None or not with_stats:
            raise ValueError("the grid kernel runs E-steps, or statistics of given "
                             "responsibilities of every candidate")
        given = []
        if resp is not None:
            given = [np.ascontiguousarray(r, dtype=np.float64) for r in resp]
            if any(r.shape != (X.shape[0], hi - lo)
                   for r, lo, hi in zip(given, self.bounds[:-1], self.bounds[1:])):
                raise ValueError("given responsibilities do not match the block")
        self._run(X, weights, given, False, n_threads, work, stats, row_offset)

    def score_block(self, packed, X, weights, chunk_size, n_threads, work):
        """A block's [log-likelihood, entropy] per candidate, (n_candidates, 2), in the order
        the jobs were given."""
        out = np.zeros(self.size)
        self._run(X, weights, [], True, n_threads, work, out, 0)
        scores = np.empty((len(self.order), 2))
        scores[self.order] = out[:5 * len(self.order)].reshape(-1, 5)[:, [0, 2]]
        return scores

    def _run(self, X, weights, given, score, n_threads, work, out, row_offset):
        """The kernel over the block, MAX_CHUNKS chunks per call: each call adds its chunks
        into ``out`` in order, so the sums are those of one call."""
        X = np.ascontiguousarray(X)
        weights = None if weights is None else np.asarray(weights, np.float64)
        step = CHUNK_ROWS * MAX_CHUNKS
        slots = self.passes.slots(min(MAX_CHUNKS, -(-X.shape[0] // CHUNK_ROWS)), self.size)
        for start in range(0, X.shape[0], step):
            rows = slice(start, start + step)
            addresses = np.array([r[rows].ctypes.data for r in given], dtype=np.intp)
            kernel.grid_block(X[rows], np.zeros(0) if weights is None else weights[rows],
                              self.centre, self.w_full, self.w_diag, self.log_norm,
                              self.bounds, addresses, score, CHUNK_ROWS, n_threads, work,
                              slots, out, row_offset + start)

    def split(self, out):
        """Each candidate's (statistics, worst) from a pass's result, in the layout of its
        packing (with given responsibilities: restated about its pivot) and in the order the
        jobs were given."""
        d, n = self.d, len(self.order)
        scalars = out[:5 * n].reshape(n, 5)
        full = out[5 * n:5 * n + kernel.full_features(d) * self.k_full].reshape(
            kernel.full_features(d), self.k_full)
        diag = out[5 * n + full.size:].reshape(kernel.diag_features(d), -1)
        results = [None] * n
        for j, (i, (family, packed)) in enumerate(zip(self.order, self.jobs)):
            lo, hi = self.bounds[j:j + 2]
            S = (full[:, lo:hi] if j < self.n_full
                 else diag[:, lo - self.k_full:hi - self.k_full])
            moments = S[1 + self._rows(j)].T  # (k, features of the packing)
            loglik, weight, _, lowest, row = scalars[j]
            stats = np.concatenate([[loglik, weight], S[0], moments.ravel()])
            if self.given:  # about c, in the exponential-family layout, then about the pivot
                kind = KIND_EXPFAM_FULL if j < self.n_full else KIND_EXPFAM_DIAG
                about_c = KernelParams(kind, None, None, None,
                                       np.repeat(self.centre[None], hi - lo, axis=0))
                stats = family.rebase(stats, about_c, packed)
            results[i] = stats, np.array([lowest if row > 0 else np.inf, row - 1])
        return results
