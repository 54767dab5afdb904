"""Exponential-family components over per-column feature maps: Bernoulli, Categorical, Poisson,
Exponential, Gamma and Normal columns, alone or combined in one table (:class:`ProductFamily`).

Each component is a product over columns, p(x | z=k) = prod_j p_j(x_j | theta_kj), and each
column's density is an exponential family, log p_j(x) = b_j(x) + T_j(x) . eta_kj - A_j(eta_kj).
The kernel (``fastem/_kernels/expfam.pyx``) therefore needs only the natural parameters eta
(F, K) and log-normalisers: one GEMM gives every log-density and one more the statistics
S_k = sum_i w_i r_ik T(x_i), from which each column's M-step is a closed form (Gamma's shape: a
Newton iteration). J(theta) is linear in those statistics:
the components' part is sum_k [S_k . eta_k - s0_k A(eta_k)], which the partial M-step and the
MAP objective use directly.

A column type (:class:`Bernoulli`, :class:`Categorical`, :class:`Poisson`, :class:`Exponential`,
:class:`Gamma`, :class:`Normal`) holds its parameters as a (K, n_params) array and knows its
natural parameters, M-step (exact and under its conjugate prior), Newton step, support, sampling
and re-seeding.
"""
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..em import backtrack
from ..frame import Statistics, empty_components
from .base import Family, xlogy

COL_IDENTITY, COL_COUNT, COL_LOG, COL_CATEGORICAL, COL_GAUSSIAN = 0, 1, 2, 3, 4
COL_MISSING = 8  # added to a kind: NaN values are missing (see expfam.pyx)
# Natural parameters and log-normalisers are clipped to +-CLIP so that a probability of exactly
# 0 or 1 gives a density of exp(-CLIP) = 0 instead of inf - inf in the kernel's GEMM.
CLIP = 700.0
GAMMA_EXACT_ITERS = 100  # Newton iterations of the "exact" Gamma shape update


def _kernel():
    from .._kernels import expfam

    return expfam


def _gammaln(a):
    from scipy.special import gammaln

    return gammaln(a)


class Column:
    """One column's exponential family. ``theta``: (K, n_params) float64 per component."""

    kind = COL_IDENTITY
    n_params = 1  # parameters per component
    n_free = 1  # free parameters per component (BIC)
    name = ""
    support = ""  # what invalid() rejects, for error messages

    def width(self):
        return 1

    def natural(self, theta, shift):
        """(eta (width, K), -A(eta) (K,)): natural parameters and the log-normaliser term that
        is added to log p(x | z = k)."""
        raise NotImplementedError

    def m_step(self, s0, S, shift):
        """Exact (or MAP) parameters from s0 (K,) and S (K, width)."""
        raise NotImplementedError

    def newton(self, theta, s0, S, shift):
        """One Newton step on this column's J (+ log prior) from ``theta``."""
        return self.m_step(s0, S, shift)  # closed-form families: the step lands on the optimum

    def log_prior(self, theta):
        return 0.0

    def invalid(self, x):
        """Mask of values outside the support (x: one column of finite values)."""
        return np.zeros(x.shape, dtype=bool)

    def mean(self, theta):
        """E[x | z = k] per component, (K,)."""
        raise NotImplementedError

    def impute(self, theta, resp):
        """The value a missing entry gets given its row's posteriors ``resp`` (n, K): the
        conditional mean sum_k resp_ik E[x | z = k]."""
        return resp @ self.mean(theta)

    def shift(self, theta, weights):
        return 0.0

    def sample(self, theta, labels, rng):
        raise NotImplementedError

    def reseed(self, theta, x):
        """A component's parameters centred on the value ``x`` (re-seeding an empty one)."""
        raise NotImplementedError


def _clip(a):
    return np.clip(a, -CLIP, CLIP)


@dataclass
class Bernoulli(Column):
    """Binary values 0/1 with success probability p; optional Beta(a, b) prior (a, b >= 1)."""

    prior: tuple = None
    kind = COL_IDENTITY
    name = "Bernoulli"
    support = "Values other than 0 and 1"

    def natural(self, theta, shift):
        p = np.clip(theta[:, 0], 0.0, 1.0)  # S / s0 can exceed 1 by rounding
        with np.errstate(divide="ignore"):
            return _clip(np.log(p) - np.log1p(-p))[None, :], _clip(np.log1p(-p))

    def _pseudo(self):
        return (0.0, 0.0) if self.prior is None else (self.prior[0] - 1.0, self.prior[1] - 1.0)

    def m_step(self, s0, S, shift):
        a, b = self._pseudo()
        return np.clip((S[:, 0] + a) / (s0 + a + b), 0.0, 1.0)[:, None]

    def newton(self, theta, s0, S, shift):
        """Newton on the logit: eta + g / h with g = S + a - (n + a + b) p, h = (n + a + b) p q."""
        a, b = self._pseudo()
        p = np.clip(theta[:, 0], 1e-300, 1 - 1e-16)
        n = s0 + a + b
        eta = np.log(p) - np.log1p(-p) + (S[:, 0] + a - n * p) / np.maximum(n * p * (1 - p), 1e-300)
        return (1.0 / (1.0 + np.exp(-_clip(eta))))[:, None]

    def log_prior(self, theta):
        a, b = self._pseudo()
        p = theta[:, 0]
        return float((xlogy(a, p) + xlogy(b, 1 - p)).sum())

    def invalid(self, x):
        return (x != 0) & (x != 1)

    def mean(self, theta):
        return theta[:, 0]

    def sample(self, theta, labels, rng):
        return (rng.random(labels.size) < theta[labels, 0]).astype(np.float64)

    def reseed(self, theta, x):
        return np.array([0.25 + 0.5 * x])


@dataclass
class Categorical(Column):
    """Integer codes 0 .. n_categories - 1 with probabilities p; optional Dirichlet(alpha >= 1)."""

    n_categories: int = 2
    prior: float = None
    kind = COL_CATEGORICAL
    name = "Categorical"

    @property
    def support(self):
        return f"Codes that are not integers in [0, {self.n_categories})"

    @property
    def n_params(self):
        return self.n_categories

    @property
    def n_free(self):
        return self.n_categories - 1

    def width(self):
        return self.n_categories

    def natural(self, theta, shift):
        with np.errstate(divide="ignore"):
            return _clip(np.log(theta)).T, np.zeros(theta.shape[0])

    def _pseudo(self):
        return 0.0 if self.prior is None else self.prior - 1.0

    def m_step(self, s0, S, shift):
        counts = np.maximum(S + self._pseudo(), 0.0)  # GEMM rounding can leave -1e-17
        return counts / counts.sum(axis=1, keepdims=True)

    def log_prior(self, theta):
        return float(xlogy(self._pseudo(), theta).sum())

    def invalid(self, x):
        return (x != np.floor(x)) | (x < 0) | (x >= self.n_categories)

    def impute(self, theta, resp):
        """The most probable code under the posterior-mixed probabilities (a mean of codes
        would be no code)."""
        return np.argmax(resp @ theta, axis=1).astype(np.float64)

    def sample(self, theta, labels, rng):
        cumulative = np.cumsum(theta[labels], axis=1)
        u = rng.random(labels.size)[:, None]
        return np.minimum((u > cumulative).sum(axis=1), self.n_categories - 1).astype(np.float64)

    def reseed(self, theta, x):
        p = np.full(self.n_categories, 0.5 / self.n_categories)
        p[int(x)] += 0.5
        return p


class GammaRatePrior:
    """A rate column (Poisson, Exponential) with an optional Gamma(shape, rate) prior. Its part
    of J + log prior is P log r - Q r, with P events and Q exposure (the prior adds shape - 1
    events and ``rate`` exposure): the M-step is r = P / Q, and Newton on u = log r is
    u + (P - Q r) / (Q r)."""

    def _pseudo(self):
        return (0.0, 0.0) if self.prior is None else (self.prior[0] - 1.0, self.prior[1])

    def _events_exposure(self, s0, S):
        """(P, Q) per component from the statistics."""
        raise NotImplementedError

    def m_step(self, s0, S, shift):
        events, exposure = self._events_exposure(s0, S)
        return (events / exposure)[:, None]

    def newton(self, theta, s0, S, shift):
        events, exposure = self._events_exposure(s0, S)
        rate = np.maximum(theta[:, 0], 1e-300)
        step = (events - exposure * rate) / np.maximum(exposure * rate, 1e-300)
        return (rate * np.exp(np.minimum(step, 50.0)))[:, None]

    def log_prior(self, theta):
        a, b = self._pseudo()
        return float((xlogy(a, theta[:, 0]) - b * theta[:, 0]).sum())


@dataclass
class Poisson(GammaRatePrior, Column):
    """Counts 0, 1, 2, ... with rate lambda; optional Gamma(shape, rate) prior (shape >= 1)."""

    prior: tuple = None
    kind = COL_COUNT
    name = "Poisson"
    support = "Negative or non-integer counts"

    def natural(self, theta, shift):
        lam = theta[:, 0]
        with np.errstate(divide="ignore"):
            return _clip(np.log(lam))[None, :], -lam

    def _events_exposure(self, s0, S):
        a, b = self._pseudo()
        return S[:, 0] + a, s0 + b

    def invalid(self, x):
        return (x < 0) | (x != np.floor(x))

    def mean(self, theta):
        return theta[:, 0]

    def sample(self, theta, labels, rng):
        return rng.poisson(theta[labels, 0]).astype(np.float64)

    def reseed(self, theta, x):
        return np.array([x + 0.5])


@dataclass
class Exponential(GammaRatePrior, Column):
    """Non-negative values with rate r; optional Gamma(shape, rate) prior on r (shape >= 1)."""

    prior: tuple = None
    kind = COL_IDENTITY
    name = "Exponential"
    support = "Negative values in data"

    def natural(self, theta, shift):
        r = theta[:, 0]
        with np.errstate(divide="ignore"):
            return -r[None, :], _clip(np.log(r))

    def _events_exposure(self, s0, S):
        """n + a events over sum x + b exposure; all-zero data would give an infinite rate:
        1e-300 keeps every density finite."""
        a, b = self._pseudo()
        return s0 + a, np.maximum(S[:, 0] + b, 1e-300)

    def invalid(self, x):
        return x < 0

    def mean(self, theta):
        return 1.0 / theta[:, 0]

    def sample(self, theta, labels, rng):
        return rng.exponential(1.0 / theta[labels, 0])

    def reseed(self, theta, x):
        return np.array([1.0 / max(x, 1e-12)])


@dataclass
class Gamma(Column):
    """Positive values with shape a and rate b. The shape has no closed-form M-step: a Newton
    step on J with the rate profiled out (b = a n / sum x) is the partial M-step, and the
    exact M-step iterates it to convergence."""

    kind = COL_LOG
    n_params = 2
    n_free = 2
    name = "Gamma"
    support = "Values <= 0"

    def width(self):
        return 2

    def natural(self, theta, shift):
        a, b = theta[:, 0], theta[:, 1]
        return np.vstack([-b, a - 1.0]), a * np.log(b) - _gammaln(a)

    def newton(self, theta, s0, S, shift):
        """f(a) = n [a log(a n / Sx) - a - lgamma(a)] + (a - 1) Slog is concave; one Newton step
        a - f'/f'' with f' = n (log a - digamma(a) - log(Sx / n)) + Slog, f'' = n (1/a -
        trigamma(a)), then the rate that maximises J given the shape."""
        from scipy.special import digamma, polygamma

        n = np.maximum(s0, 1e-300)
        mean_x, mean_log = S[:, 0] / n, S[:, 1] / n
        a = theta[:, 0]
        grad = np.log(a) - digamma(a) - np.log(mean_x) + mean_log
        curv = 1.0 / a - polygamma(1, a)
        # guards: a far, flat start moves at most 10x; one-point components stop at 1e8
        a = np.clip(a - grad / curv, a / 10, np.minimum(a * 10, 1e8))
        return np.column_stack([a, a / mean_x])

    def m_step(self, s0, S, shift):
        """Newton's method to convergence, from shape 1 (the exponential) and its best rate."""
        mean_x = np.maximum(S[:, 0] / np.maximum(s0, 1e-300), 1e-300)
        theta = np.column_stack([np.ones_like(s0), 1.0 / mean_x])
        for _ in range(GAMMA_EXACT_ITERS):
            new = self.newton(theta, s0, S, shift)
            done = np.allclose(new, theta, rtol=1e-13, atol=0)
            theta = new
            if done:
                break
        return theta

    def invalid(self, x):
        return x <= 0

    def mean(self, theta):
        return theta[:, 0] / theta[:, 1]

    def sample(self, theta, labels, rng):
        return rng.gamma(theta[labels, 0], 1.0 / theta[labels, 1])

    def reseed(self, theta, x):
        return np.array([2.0, 2.0 / max(x, 1e-12)])


@dataclass
class Normal(Column):
    """Real values with mean mu and variance var (a diagonal-Gaussian column of a table); the
    features are centred on the mixture mean (the shift) so they stay accurate far from 0."""

    kind = COL_GAUSSIAN
    n_params = 2
    n_free = 2
    name = "Normal"

    def width(self):
        return 2

    def shift(self, theta, weights):
        return float(weights @ theta[:, 0])

    def natural(self, theta, shift):
        m, var = theta[:, 0] - shift, theta[:, 1]
        return np.vstack([m / var, -0.5 / var]), -0.5 * np.log(2 * np.pi * var) - 0.5 * m**2 / var

    def m_step(self, s0, S, shift):
        n = np.maximum(s0, 1e-300)
        m = S[:, 0] / n
        return np.column_stack([shift + m, np.maximum(S[:, 1] / n - m**2, 1e-300)])

    def mean(self, theta):
        return theta[:, 0]

    def sample(self, theta, labels, rng):
        return theta[labels, 0] + np.sqrt(theta[labels, 1]) * rng.standard_normal(labels.size)

    def reseed(self, theta, x):
        return np.array([x, np.median(theta[:, 1])])


@dataclass
class ExpFamParams:
    """Parameters of product components: one (K, n_params) array per column."""

    columns: list

    @property
    def n_components(self):
        return self.columns[0].shape[0]

    def astype(self, dtype):
        """These parameters with their arrays in ``dtype`` (not copied where they are)."""
        return ExpFamParams([np.asarray(column, dtype=dtype) for column in self.columns])

    @property
    def n_features(self):
        return len(self.columns)


class ExpFamPacked(NamedTuple):
    natural: np.ndarray  # (F, K) float64
    log_norm: np.ndarray  # (K,) -sum_j A_j (+ log w_k, mixtures)
    col_kind: np.ndarray  # (D,) int32
    col_offset: np.ndarray  # (D + 1,) intp
    col_shift: np.ndarray  # (D,)
    data_dtype: np.dtype

    @property
    def dtype(self):
        """Blocks are passed in their own dtype: the kernel computes features in float64."""
        return self.data_dtype


class ProductFamily(Family):
    """Components that are products of per-column exponential families (a table of mixed
    continuous, categorical and count columns); ``columns`` has one :class:`Column` per feature.

    ``frozen``: column indices whose parameters every M-step keeps. ``missing``: NaN values
    are missing at random and drop out of each row's density and of the statistics (see
    :meth:`marginal`).
    """

    def __init__(self, columns, frozen=(), missing=False):
        self.columns = list(columns)
        self.frozen = frozenset(frozen)
        self.missing = bool(missing)
        unknown = self.frozen - set(range(len(self.columns)))
        if unknown:
            raise ValueError(f"frozen may hold column indices 0..{len(columns) - 1}; got "
                             f"{sorted(map(str, unknown))}")
        # marginalising: each column's features end with its observed indicator
        widths = [c.width() + self.missing for c in self.columns]
        self.col_offset = np.concatenate([[0], np.cumsum(widths)]).astype(np.intp)
        self.col_kind = np.array([c.kind + COL_MISSING * self.missing for c in self.columns],
                                 dtype=np.int32)
        self.error_message = " or ".join(sorted({f"{c.support} ({c.name} column)"
                                                 for c in self.columns if c.support}))

    @property
    def n_features(self):
        return len(self.columns)

    def marginal(self):
        """This family with NaN values as missing at random: each column's log-normaliser
        moves into the weight of its observed indicator, so a missing value drops out of the
        row's density, and each column's M-step divides by the mass of the rows observing it."""
        return ProductFamily(self.columns, self.frozen, missing=True)

    # ---------------------------------------------------------------- kernel binding
    def pack(self, params, dtype, mass):
        """Natural parameters (F, K) and -sum_j A_j (K,); Normal columns are centred on their
        means' average weighted by ``mass``."""
        k = params.n_components
        natural = np.empty((self.col_offset[-1], k))
        log_norm = np.zeros(k)
        shift = np.zeros(self.n_features)
        for j, (column, theta) in enumerate(zip(self.columns, params.columns)):
            shift[j] = column.shift(theta, mass)
            eta, a = column.natural(theta, shift[j])
            start, stop = self.col_offset[j], self.col_offset[j + 1]
            if self.missing:  # -A_j weighs the observed indicator, the last feature
                natural[start:stop - 1], natural[stop - 1] = eta, a
            else:
                natural[start:stop] = eta
                log_norm = log_norm + a
        return ExpFamPacked(np.ascontiguousarray(natural), np.ascontiguousarray(log_norm),
                            self.col_kind, self.col_offset, shift, np.dtype(dtype))

    def add_log_weights(self, packed, log_weights):
        """Log-weights are clipped like the natural parameters (a zero weight gives a density
        of exp(-CLIP) = 0, never -inf inside the kernel's sums)."""
        return packed._replace(log_norm=packed.log_norm + _clip(log_weights))

    def rebase(self, stats, from_packed, to_packed):
        """Normal columns' statistics [x - s, (x - s)^2] move from shift s to s'
        (d = s - s': x - s' = (x - s) + d); the other columns' are not centred."""
        k = to_packed.log_norm.shape[0]
        view = Statistics(stats, k)
        S = view.family.reshape(k, -1).copy()
        for j, column in enumerate(self.columns):
            if column.kind == COL_GAUSSIAN:
                d = from_packed.col_shift[j] - to_packed.col_shift[j]
                first, second = self.col_offset[j], self.col_offset[j] + 1
                s0 = S[:, self.col_offset[j + 1] - 1] if self.missing else view.s0
                S[:, second] += 2 * d * S[:, first] + s0 * d * d
                S[:, first] += s0 * d
        return view.with_family(S.ravel()).vector

    def pack_pivot(self, pivot, dtype):
        k = pivot.shape[0]
        shift = pivot.mean(axis=0)
        return ExpFamPacked(np.zeros((self.col_offset[-1], k)), np.zeros(k), self.col_kind,
                            self.col_offset, np.ascontiguousarray(shift), np.dtype(dtype))

    def stats_size(self, packed):
        return _kernel().stats_size(packed.natural.shape[0], packed.natural.shape[1])

    def workspace(self, packed, chunk_size, n_threads, n_chunks):
        f, k = packed.natural.shape
        per_thread = _kernel().workspace_size(chunk_size, f, k)
        return np.empty((n_threads, per_thread)), np.empty((n_chunks, self.stats_size(packed) + 2))

    def fit_block(self, packed, X, weights, resp, with_stats, chunk_size, n_threads, work, stats,
                  worst, row_offset, labels=None):
        k = packed.log_norm.shape[0]
        _kernel().fit_block(
            X, _EMPTY_F64 if weights is None else weights,
            np.empty((0, k)) if resp is None else np.ascontiguousarray(resp, dtype=np.float64),
            packed.col_kind, packed.col_offset, packed.col_shift, packed.natural,
            packed.log_norm, with_stats, chunk_size, n_threads, *work, stats, worst, row_offset,
            labels)

    def predict_block(self, packed, X, chunk_size, n_threads, work, log_prob, resp, labels):
        k = packed.log_norm.shape[0]
        _kernel().predict_block(
            X, packed.col_kind, packed.col_offset, packed.col_shift, packed.natural,
            packed.log_norm, chunk_size, n_threads, work[0],
            _EMPTY_F64 if log_prob is None else log_prob,
            np.empty((0, k)) if resp is None else resp,
            _EMPTY_LABELS if labels is None else labels)

    def log_density_block(self, packed, X, chunk_size, n_threads, work, out):
        """Write ``packed.log_norm[k] + log p(x_i | natural_k)`` of a block into ``out`` (n, K)
        C-contiguous float64: the component log-densities when ``packed.log_norm`` holds no
        log-weights; -inf for rows out of support."""
        _kernel().log_density_block(
            X, packed.col_kind, packed.col_offset, packed.col_shift, packed.natural,
            packed.log_norm, chunk_size, n_threads, work[0], out)

    def expected_values(self, params, resp):
        """Each column's :meth:`Column.impute` given the posteriors ``resp`` (n, K)."""
        return np.column_stack([column.impute(theta, resp)
                                for column, theta in zip(self.columns, params.columns)])

    def invalid_rows(self, block):
        """Rows holding a value outside its column's support (NaN is not: see ``screen``)."""
        block = np.asarray(block)
        bad = np.zeros(block.shape[0], dtype=bool)
        for j, column in enumerate(self.columns):
            x = block[:, j]
            bad |= column.invalid(x) & (x == x)
        return bad

    # ----------------------------------------------------------------- the M-step
    def _split(self, stats):
        """Per column, (mass (K,), S_j (K, width)): the responsibility mass of the rows that
        observe the column (s0 without missing values) and its feature sums."""
        k = stats.n_components
        S = stats.family.reshape(k, -1)
        if self.missing:
            return [(S[:, self.col_offset[j + 1] - 1], S[:, self.col_offset[j]:
                                                           self.col_offset[j + 1] - 1])
                    for j in range(self.n_features)]
        return [(stats.s0, S[:, self.col_offset[j]:self.col_offset[j + 1]])
                for j in range(self.n_features)]

    def _update(self, stats, packed, params, step):
        """Each column from ``step(column, theta, mass, S_j, shift_j)``. Frozen columns are
        kept; components empty in a column (all of them when they lost their rows, for the
        latent structure to re-seed) keep their parameters (or, at initialisation, get the
        estimate pooled over all components)."""
        columns = []
        for j, (column, (s0, S)) in enumerate(zip(self.columns, self._split(stats))):
            total = s0.sum()
            lost = empty_components(s0)
            theta = None if params is None else params.columns[j]
            if theta is not None and j in self.frozen:
                columns.append(theta)
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                new = step(column, theta, s0, S, packed.col_shift[j])
            if lost.size and theta is not None:
                new[lost] = theta[lost]
            elif lost.size:
                new[lost] = step(column, None, np.array([total]), S.sum(axis=0, keepdims=True),
                                 packed.col_shift[j])[0]
            columns.append(new)
        return ExpFamParams(columns)

    def m_step(self, stats, packed, params=None):
        """Exact (or MAP) M-step, column by column."""
        return self._update(stats, packed, params,
                            lambda col, theta, s0, S, shift: col.m_step(s0, S, shift))

    def newton_step(self, params, stats, packed):
        """Each column's Newton step, already backtracked on that column's own part of J (J is
        a sum over columns), so that one column at a boundary (a probability of exactly 0 or 1)
        cannot block the steps of the others."""
        def step(column, theta, s0, S, shift):
            if theta is None:
                return column.m_step(s0, S, shift)
            proposal = column.newton(theta, s0, S, shift)
            accepted = backtrack(
                _column_objective(column, theta, s0, S, shift),
                lambda t: (1 - t) * theta + t * proposal,
                lambda candidate: _column_objective(column, candidate, s0, S, shift))
            return theta if accepted is None else accepted[0]

        return self._update(stats, packed, params, step)

    def interpolate(self, params, proposal, t):
        mix = lambda a, b: (1 - t) * a + t * b  # noqa: E731
        return ExpFamParams([mix(a, b) for a, b in zip(params.columns, proposal.columns)])

    def objective(self, params, stats, packed):
        """The components' J + log p(theta) = sum_k [S_k . eta_k - s0_k A_k] + log prior, with
        the packing's shifts (the statistics are centred on them)."""
        value = 0.0
        for j, (column, theta, (s0, S)) in enumerate(zip(self.columns, params.columns,
                                                         self._split(stats))):
            value += _column_objective(column, theta, s0, S, packed.col_shift[j])
        return value

    def log_prior(self, params):
        return float(sum(c.log_prior(theta) for c, theta in zip(self.columns, params.columns)))

    # ------------------------------------------------------------------ the rest
    def reseed(self, params, lost, rows):
        columns = [theta.copy() for theta in params.columns]
        for i, k in enumerate(lost):
            for j, column in enumerate(self.columns):
                columns[j][k] = column.reseed(params.columns[j], rows[i, j])
        return ExpFamParams(columns)

    def sample(self, params, counts, rng):
        labels = np.repeat(np.arange(params.n_components), counts)
        return np.column_stack([c.sample(theta, labels, rng)
                                for c, theta in zip(self.columns, params.columns)])

    def n_parameters(self, n_features, n_components):
        return int(n_components * sum(c.n_free for c in self.columns))


def _column_objective(column, theta, s0, S, shift):
    """One column's part of J + log p(theta): sum_k [S_k . eta_k - s0_k A(eta_k)] + its prior."""
    with np.errstate(invalid="ignore"):
        eta, a = column.natural(theta, shift)
        value = float((S * eta.T).sum() + s0 @ a) + column.log_prior(theta)
    return value if np.isfinite(value) else -np.inf


_EMPTY_F64 = np.empty(0)
_EMPTY_LABELS = np.empty(0, dtype=np.intp)
