"""Gaussian mixture family: parameters, exact M-step from streamed statistics, kernel binding.

Parametrised as in scikit-learn (``sklearn/mixture/_gaussian_mixture.py``): covariances and the
Cholesky factors ``L`` of the precisions, with ``L @ L.T = inv(cov)``, so that
``log N(x | mu, cov) = log det L - d/2 log 2pi - 1/2 ||(x - mu) @ L||^2``.
Sufficient statistics are centred on a pivot (the means they were computed with) so that the
M-step never subtracts two large second moments.
"""
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..frame import EMPTY_MASS, Statistics
from .base import Family


def _kernel():
    """The compiled kernel, imported on first use: it loads scipy's BLAS, which is slow to import."""
    from .._kernels import gaussian

    return gaussian


def _inverse_lower(chol):
    """Inverses of a stack of lower-triangular matrices, by triangular solves."""
    from scipy.linalg import solve_triangular

    eye = np.eye(chol.shape[-1])
    return np.stack([solve_triangular(c, eye, lower=True) for c in chol])

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
# Kernel kinds (see gaussian.pyx). Every covariance type runs in the exponential-family form
# (EXPFAM_*: two GEMMs per chunk) unless its rounding bound (expfam_rounding_scale times the
# dtype's eps) exceeds EXPFAM_MAX_ERROR for the dtype it would compute in; then the exactly
# centred FULL, TIED or DIAG kernel runs instead. The bound is in nats per row. float64 keeps fits
# within 1e-10 of scikit-learn's; float32 data compute in float32 while the bound stays within
# 1e-3 nats, and in float64 beyond; full and tied ones run FULL_CENTRED / TIED_CENTRED in
# float32 where the float64 bound fails too (see EXACT_MAX_ERROR). The bound covers rows
# within about two standard deviations of their component; tail rows can exceed it (benchmark
# mixture, D=16: bound 6e-4, float32 errors per row 8e-5 on average and 1.1e-3 at worst).
(KIND_FULL, KIND_TIED, KIND_EXPFAM_DIAG, KIND_DIAG, KIND_EXPFAM_FULL, KIND_EXPFAM_TIED,
 KIND_EXPFAM_SPHERICAL, KIND_EXPFAM_DIAG_MISSING, KIND_EXPFAM_SPHERICAL_MISSING,
 KIND_DIAG_MISSING, KIND_FULL_MISSING, KIND_EXPFAM_FULL_MISSING,
 KIND_EXPFAM_TIED_MISSING, KIND_FULL_CENTRED, KIND_TIED_CENTRED) = range(15)
# Kinds whose statistics are s1 (k, d) and the lower triangles of s2 (k, d, d), by SYRK
SYRK_KINDS = (KIND_FULL, KIND_TIED, KIND_FULL_MISSING, KIND_FULL_CENTRED, KIND_TIED_CENTRED)
# Full and tied kinds with missing entries (nan_policy="marginalize"): the exact FULL_MISSING
# (_conditional.h) and the exponential-family ones (_marginal.h), whose statistics are laid out
# as those of the complete-data kind they extend
CONDITIONAL_KINDS = {KIND_FULL_MISSING: KIND_FULL_MISSING,
                     KIND_EXPFAM_FULL_MISSING: KIND_EXPFAM_FULL,
                     KIND_EXPFAM_TIED_MISSING: KIND_EXPFAM_TIED}
# nan_policy="marginalize": kinds whose statistics hold n_kj, the mass of component k's rows
# observing column j, after the moments of each component ([s1 | s2 | n], see gaussian.pyx)
MISSING_KINDS = (KIND_EXPFAM_DIAG_MISSING, KIND_EXPFAM_SPHERICAL_MISSING, KIND_DIAG_MISSING)
EXPFAM_MAX_ERROR = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-3}
# The exact kernels compute whitened coordinates L_k'(x - mu_k); their rounding error is about
# eps * max_j (|mu_k|' |L_k|)_j. Where that exceeds EXACT_MAX_ERROR in the data's dtype (a nearly
# collapsed float32 component), they run in float64. float32 full and tied data whose
# exponential-family bound fails run the kinds centred per component (_tile.h) instead, whose
# error is eps * max_j (|x - mu_k|' |L_k|)_j for a row x: bounded over rows within two standard
# deviations per axis of their component, reach_k = 2 sqrt(diag cov_k) (centred_scale), it
# stays below EXACT_MAX_ERROR except for near-singular correlations; then float64.
EXACT_MAX_ERROR = 1e-4

CHOLESKY_ERROR = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
    "number of components, increase reg_covar, or scale the input data."
)


# scikit-learn's M-step divides by N_k + 10 eps (float64 here; its eps is the data's)
SKLEARN_EPS = 10 * np.finfo(np.float64).eps


def _as_sklearn_if_singular(covariance_type, cov, means, s0):
    """Diag or spherical variances ``cov`` (reg_covar added) where they are positive; where not
    (a component collapsed on a point, or flat in a dimension), the variance that
    scikit-learn's formula gives there where that is decided by the formula rather than by
    its rounding, so that fastem raises scikit-learn's error where it does and fits on where
    it does (issue 15, item 13).

    scikit-learn takes variances as E[x^2] - mean^2 about the origin with n = N_k + 10 eps
    rows, which leaves mu^2 N_k e / n^2 (e: 10 eps as it survives rounding in n) beyond the
    scatter / n: about 2e-15 mu^2 for a component on one row, 1e-15 mu^2 on two, where
    scikit-learn fits on. From three rows on it is below 4 eps mu^2, the rounding of
    scikit-learn's own formula, so whether scikit-learn's variance comes out positive is
    chance (tests: ten equal rows raise in diag, not in spherical); fastem raises there.
    Healthy components never take it: it is origin-dependent, and fastem's centred moments
    stay translation-equivariant. Full covariances are left as they are: there
    scikit-learn's excess is a rank-one term of order (1e-15 mu)^2 below what centred moments
    resolve, and fastem raises when the scatter is singular (scikit-learn may fit on where
    its rounding leaves the matrix positive-definite, e.g. rows on an axis-parallel line)."""
    nk = s0 + SKLEARN_EPS
    mass = s0 / nk**2 * (nk - s0)
    mass[mass < 4 * np.finfo(np.float64).eps] = 0.0
    excess = means**2 * mass[:, None]
    if covariance_type == "spherical":
        excess = excess.mean(axis=1)
    return np.where(cov > 0, cov, cov + excess)


def covariance_shape(covariance_type, n_components, n_features):
    """Shape of ``covariances_`` (and of the precision arrays) for a covariance type."""
    return {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]


def precision_cholesky(covariances, covariance_type):
    """Cholesky factors of the precisions from covariances; ValueError if not positive definite."""
    covariances = np.asarray(covariances, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        stack = covariances if covariance_type == "full" else covariances[None]
        try:
            chol = np.linalg.cholesky(stack)
        except np.linalg.LinAlgError:
            raise ValueError(CHOLESKY_ERROR) from None
        prec = _inverse_lower(chol).transpose(0, 2, 1)
        return prec if covariance_type == "full" else prec[0]
    if np.any(~(covariances > 0.0)):
        raise ValueError(CHOLESKY_ERROR)
    return 1.0 / np.sqrt(covariances)


def whitened_scale(means, chol, covariance_type):
    """|mu_k|' |L_k| for each component: the size of the terms whose difference is L_k'(x - mu_k)."""
    means, chol = np.abs(means), np.abs(chol)
    if covariance_type == "full":
        return np.einsum("kd,kdj->kj", means, chol)
    if covariance_type == "tied":
        return means @ chol
    return means * (chol if covariance_type == "diag" else chol[:, None])


def centred_scale(chol, covariance_type):
    """Per component and axis, |reach_k|' |L_k| with reach_k = 2 sqrt(diag cov_k): the size of
    the terms whose sums are the whitened coordinates (x - mu_k) L_k of the rows within two
    standard deviations per axis, the rounding scale of the centred kinds."""
    cov = covariances_from_cholesky(chol, covariance_type)
    reach = 2.0 * np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    return whitened_scale(np.atleast_2d(reach), chol, covariance_type)


def expfam_rounding_scale(offsets, precisions):
    """Per component, the size of the terms that the exponential-family form sums to get
    log p(x | k) for its own rows: ||P_k|| |x - s|^2 with |x - s| <= |mu_k - s| + 2 sqrt(tr S_k)
    (``offsets`` = mu_k - s; ``precisions`` (K, D, D) matrices or (K, D) diagonals). Rounding
    errors are about eps times this, also where an ill-conditioned P_k makes the terms cancel
    (which (mu_k - s)' P_k (mu_k - s) alone would understate)."""
    eigenvalues = np.linalg.eigvalsh(precisions) if precisions.ndim == 3 else precisions
    reach = np.linalg.norm(offsets, axis=1) + 2.0 * np.sqrt((1.0 / eigenvalues).sum(axis=1))
    return eigenvalues.max(axis=1) * reach**2


def precisions_from_cholesky(prec_chol, covariance_type):
    """Precision matrices ``L @ L.T`` (or their diagonals / scalars)."""
    if covariance_type == "full":
        return prec_chol @ prec_chol.transpose(0, 2, 1)
    if covariance_type == "tied":
        return prec_chol @ prec_chol.T
    return prec_chol**2


def covariances_from_cholesky(prec_chol, covariance_type):
    """Covariances from precision Cholesky factors (used when only precisions are given)."""
    if covariance_type in ("full", "tied"):
        stack = prec_chol if covariance_type == "full" else prec_chol[None]
        inv = _inverse_lower(stack)
        cov = inv.transpose(0, 2, 1) @ inv
        return cov if covariance_type == "full" else cov[0]
    return 1.0 / prec_chol**2


def cholesky_from_precisions(precisions, covariance_type):
    """Precision Cholesky factors from user-given precisions (scikit-learn's precisions_init)."""
    if covariance_type in ("full", "tied"):
        stack = precisions if covariance_type == "full" else precisions[None]
        try:
            chol = np.linalg.cholesky(stack)
        except np.linalg.LinAlgError:
            raise ValueError("precisions_init must be symmetric, positive-definite") from None
        return chol if covariance_type == "full" else chol[0]
    return np.sqrt(precisions)


@dataclass
class GaussianParams:
    """Parameters of Gaussian components (float64, scikit-learn shapes)."""

    covariance_type: str
    means: np.ndarray  # (K, D)
    covariances: np.ndarray  # covariance_shape(...)
    precisions_cholesky: np.ndarray  # covariance_shape(...)

    @classmethod
    def from_covariances(cls, covariance_type, means, covariances):
        chol = precision_cholesky(covariances, covariance_type)
        return cls(covariance_type, means, covariances, chol)

    @property
    def n_components(self):
        return self.means.shape[0]

    def astype(self, dtype):
        """These parameters with their arrays in ``dtype`` (not copied where they are)."""
        cast = lambda a: None if a is None else np.asarray(a, dtype=dtype)  # noqa: E731
        return GaussianParams(self.covariance_type, cast(self.means), cast(self.covariances),
                              cast(self.precisions_cholesky))

    @property
    def n_features(self):
        return self.means.shape[1]

    def log_det_cholesky(self):
        """log det L_k per component (a scalar for tied)."""
        c, d = self.precisions_cholesky, self.n_features
        if self.covariance_type == "full":
            return np.log(np.diagonal(c, axis1=1, axis2=2)).sum(axis=1)
        if self.covariance_type == "tied":
            return np.log(np.diag(c)).sum()
        if self.covariance_type == "diag":
            return np.log(c).sum(axis=1)
        return d * np.log(c)


class KernelParams(NamedTuple):
    """Parameters laid out for the kernel, in the data's dtype (see gaussian.pyx)."""

    kind: int  # KIND_*
    proj: np.ndarray  # (D, width) L_k columns (full, tied); (F, K) W (expfam); (D, K) L_k (diag)
    center: np.ndarray  # (D, K) projected means (full, tied), means (diag)
    log_norm: np.ndarray  # (K,) float64: log det L_k - D/2 log 2pi (+ const; + log w_k, mixtures)
    pivot: np.ndarray  # (K, D) centres of the statistics

    @property
    def dtype(self):
        """The dtype the kernel computes in; data blocks are converted to it."""
        return self.pivot.dtype


class GaussianStep(NamedTuple):
    """A partial M-step's proposal: means and precisions (P_k, P, diag P_k or p_k; not
    necessarily positive definite)."""

    means: np.ndarray
    precision: np.ndarray


@dataclass
class GaussianPrior:
    """Conjugate prior of Gaussian components (MAP-EM), in scikit-learn's BayesianGaussianMixture
    terms, with mu_0 = ``mean``, kappa = ``mean_precision``, nu = ``degrees_of_freedom`` and
    Psi = ``covariance``. Up to constants, log p(theta) is, per component k:

    - full (Normal-inverse-Wishart on (mu_k, S_k), densities in the covariance S_k):
      -(nu + d + 2)/2 log|S_k| - 1/2 tr(Psi S_k^-1) - kappa/2 (mu_k - mu_0)' S_k^-1 (mu_k - mu_0);
    - tied (one inverse-Wishart on S and K normals mu_k | S): -(nu + d + 1 + K)/2 log|S|
      - 1/2 tr(Psi S^-1) - kappa/2 sum_k (mu_k - mu_0)' S^-1 (mu_k - mu_0);
    - diag (Normal-Gamma on each dimension's precision lambda_kj, density in lambda):
      (nu/2 - 1/2) log lambda_kj - Psi_j/2 lambda_kj - kappa/2 lambda_kj (mu_kj - mu_0j)^2;
    - spherical (Normal-Gamma on one precision lambda_k, density in lambda):
      (nu/2 - 1 + d/2) log lambda_k - Psi/2 lambda_k - kappa/2 lambda_k |mu_k - mu_0|^2;

    i.e. mu | P ~ N(mu_0, (kappa P)^-1) and a Gamma(shape nu/2, rate Psi/2) precision for diag
    and spherical. The MAP M-step (:meth:`GaussianFamily.m_step`) is the exact argmax of
    J + log p in these parametrisations (covariances for full and tied, precisions for diag
    and spherical): with A_k the scatter about the new means plus kappa (mu_k - mu_0)(...)' + Psi,
    S_k = A_k / (N_k + nu + d + 2), S = sum_k A_k / (N + nu + d + 1 + K),
    1/lambda_kj = A_kj / (N_k + nu - 1) and 1/lambda_k = sum_j A_kj / (d N_k + nu + d - 2).
    Every field must be given (the estimators fill data-based defaults)."""

    mean: np.ndarray  # (D,)
    mean_precision: float  # kappa_0 > 0
    degrees_of_freedom: float  # nu_0: > D - 1 (full, tied), > 1 (diag), > max(0, 2 - D) (sph.)
    covariance: np.ndarray  # Psi_0: (D, D) full/tied, (D,) diag, scalar spherical; > 0


class GaussianFamily(Family):
    """Gaussian components with one of four covariance structures, bound to the Cython kernel."""

    def __init__(self, covariance_type="full", reg_covar=1e-6, prior=None, frozen=(),
                 missing=False):
        if covariance_type not in COVARIANCE_TYPES:
            raise ValueError(
                f"Invalid value for 'covariance_type': {covariance_type!r}; "
                f"'covariance_type' should be in {list(COVARIANCE_TYPES)}"
            )
        frozen = (frozen,) if isinstance(frozen, str) else frozen
        unknown = set(frozen) - {"means", "covariances"}
        if unknown:
            raise ValueError("frozen must name 'means' or 'covariances'; got "
                             f"{sorted(unknown)}")
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.prior = prior
        self.frozen = frozenset(frozen)
        self.missing = bool(missing)

    def marginal(self):
        """This family with NaN entries as missing at random: they drop out of each row's
        density (diag, spherical: also of the statistics, through observed-entry features;
        full, tied: the statistics take their conditional moments given the observed ones)."""
        return GaussianFamily(self.covariance_type, self.reg_covar, self.prior, self.frozen,
                              missing=True)

    def expected_values(self, params, resp):
        """sum_k resp_ik mu_kj: a diagonal component's mean of x_j does not depend on the
        other entries. Full and tied covariances regress the missing entries on the observed
        ones: their conditional means need the rows (:meth:`impute_block`)."""
        if self.covariance_type in ("full", "tied"):
            raise ValueError("full and tied conditional means depend on the observed entries: "
                             "use impute_block")
        return resp @ params.means

    def impute_block(self, packed, params, X, chunk_size, n_threads, work, out):
        """Full, tied: the kernel's regression of each row's missing entries on its observed
        ones, sum_k p(k | x_o) (mu_k,m + yhat_k,m) (_conditional.h); else as every family."""
        if packed.kind not in CONDITIONAL_KINDS:
            return super().impute_block(packed, params, X, chunk_size, n_threads, work, out)
        _kernel().impute_block(packed.kind, X, packed.proj, packed.center, packed.log_norm, packed.pivot,
                               chunk_size, n_threads, work[0], out)

    def stats_size(self, packed):
        """Length of the statistics vector that a pass with ``packed`` fills."""
        k, d = packed.pivot.shape
        return _kernel().stats_size(packed.kind, d, k)

    def n_parameters(self, n_features, n_components):
        """Free parameters of the components (means, covariances), as scikit-learn counts them."""
        d, k = n_features, n_components
        cov = {"full": k * d * (d + 1) / 2, "tied": d * (d + 1) / 2, "diag": k * d, "spherical": k}
        return int(cov[self.covariance_type] + k * d)

    def pack(self, params, dtype, mass, centre=None):
        """:class:`KernelParams` for ``params``, choosing the kernel kind and its dtype.

        The exponential-family form runs wherever its rounding bound allows, in the data's dtype
        or else in float64; otherwise the exact kernel runs, in the data's dtype where its own
        rounding bound allows, else in float64. The packed arrays' dtype is the dtype the kernel
        computes in (``KernelParams.dtype``). The exponential-family kinds centre the
        statistics on the means' average weighted by ``mass``, or on ``centre`` when given
        (float64: :mod:`fastem.grid` centres a whole grid on one point).
        """
        t, means, chol = self.covariance_type, params.means, params.precisions_cholesky
        k, d = means.shape
        log_norm = np.broadcast_to(params.log_det_cholesky() - 0.5 * d * np.log(2 * np.pi), (k,))
        conditional = self.missing and t in ("full", "tied")
        if conditional:  # float64 only (_conditional.h, _marginal.h)
            dtype = np.float64
        # the kernel subtracts the pivot in the data's dtype: the offsets must be from that very
        # (rounded) centre, else float32 data far from the origin are off by |P mu'| eps |s|
        if centre is None:
            centre = np.average(means, axis=0, weights=mass).astype(dtype).astype(np.float64)
        offset = means - centre
        if t in ("full", "tied"):
            precision = precisions_from_cholesky(chol, t)
            precision = precision if t == "full" else np.broadcast_to(precision, (k, d, d))
            spread = np.einsum("ka,kab,kb->k", offset, precision, offset)
        else:
            precision = chol**2 if t == "diag" else np.repeat((chol**2)[:, None], d, axis=1)
            spread = (precision * offset**2).sum(axis=1)
        scale = expfam_rounding_scale(offset, precision).max()
        expfam_dtype = next((t_ for t_ in map(np.dtype, (dtype, np.float64))
                             if np.finfo(t_).eps * scale <= EXPFAM_MAX_ERROR[t_]), None)
        if conditional:
            return self._pack_conditional(params, expfam_dtype is not None, centre, precision,
                                          log_norm, spread)
        # float32 full and tied data run centred per component in float32 only where the
        # expfam form fails in float64 too: where it holds in float64, that form on converted
        # blocks is faster (tied: a third of the centred kind's work; full: about as fast at
        # 1e6 x 16, K = 16, but 3x faster at D = 8, K = 10, issue 17's grid)
        centred = t in ("full", "tied") and expfam_dtype is None
        if (centred and np.dtype(dtype) == np.float32
                and np.finfo(dtype).eps * centred_scale(chol, t).max() <= EXACT_MAX_ERROR):
            # v = (x - hi_k) - lo_k in float32, mu_k = hi_k + lo_k; |v C_k|^2 with C_k the
            # lower Cholesky factor of P_k (_tile.h)
            hi = means.astype(np.float32)
            lo = means - hi
            kind = KIND_FULL_CENTRED if t == "full" else KIND_TIED_CENTRED
            lower = np.linalg.cholesky(precision if t == "full" else precision[0])
            return self._packed(kind, lower.reshape(-1, d), np.vstack([hi, lo]), log_norm, hi,
                                dtype)
        if expfam_dtype is not None:
            # log p(x, k) = log_norm_k - spread_k / 2 + t(x) @ W[:, k]; W from P_k and P_k mu'_k.
            # In float64 for float32 data, the driver converts each block.
            pivot = np.repeat(centre[None, :], k, axis=0)
            if self.missing:  # W = [P mu'; -P/2; per-entry log-normalisers]: see gaussian.pyx
                chol_diag = chol if t == "diag" else np.repeat(chol[:, None], d, axis=1)
                entry = (np.log(chol_diag) - 0.5 * np.log(2 * np.pi)
                         - 0.5 * precision * offset**2)
                quadratic = -0.5 * precision if t == "diag" else -0.5 * precision[:, :1]
                kind = KIND_EXPFAM_DIAG_MISSING if t == "diag" else KIND_EXPFAM_SPHERICAL_MISSING
                return self._packed(kind, np.hstack([precision * offset, quadratic, entry]).T,
                                    np.zeros((1, 1)), np.zeros(k), pivot, expfam_dtype)
            if t == "tied":  # t(x) = [v, -v'Pv/2], W = [P mu'_k; 1]; the kernel needs L for v'Pv
                proj = np.vstack([(offset @ precision[0]).T, np.ones((1, k))])
                return self._packed(KIND_EXPFAM_TIED, proj, chol, log_norm - 0.5 * spread, pivot,
                                    expfam_dtype)
            if t == "spherical":  # t(x) = [v, |v|^2], W = [p_k mu'_k; -p_k / 2]
                proj = np.vstack([(precision * offset).T, -0.5 * precision[None, :, 0]])
                return self._packed(KIND_EXPFAM_SPHERICAL, proj, np.zeros((1, 1)),
                                    log_norm - 0.5 * spread, pivot, expfam_dtype)
            if t == "full":
                rows, cols = np.triu_indices(d)
                quadratic = -precision[:, rows, cols] * np.where(rows == cols, 0.5, 1.0)
                linear = np.einsum("kab,kb->ka", precision, offset)
                kind = KIND_EXPFAM_FULL
            else:
                quadratic, linear = -0.5 * precision, precision * offset
                kind = KIND_EXPFAM_DIAG
            return self._packed(kind, np.hstack([linear, quadratic]).T, np.zeros((1, 1)),
                                log_norm - 0.5 * spread, pivot, expfam_dtype)
        if np.finfo(dtype).eps * whitened_scale(means, chol, t).max() > EXACT_MAX_ERROR:
            dtype = np.float64
        if t == "full":
            proj = chol.transpose(1, 2, 0).reshape(d, d * k)  # column j*K + k holds L_k[:, j]
            return self._packed(KIND_FULL, proj, np.einsum("kd,kdj->jk", means, chol), log_norm,
                                means, dtype)
        if t == "tied":
            return self._packed(KIND_TIED, chol, (means @ chol).T, log_norm, means, dtype)
        diag_chol = chol if t == "diag" else np.repeat(chol[:, None], d, axis=1)
        if self.missing:  # the rows after L hold each entry's 2 log L_kj - log 2pi
            entry = 2 * np.log(diag_chol) - np.log(2 * np.pi)
            return self._packed(KIND_DIAG_MISSING, np.vstack([diag_chol.T, entry.T]), means.T,
                                np.zeros(k), means, dtype)
        return self._packed(KIND_DIAG, diag_chol.T, means.T, log_norm, means, dtype)

    def _pack_conditional(self, params, expfam, centre, precision, log_norm, spread):
        """Full and tied with missing entries, in float64: the exponential-family kinds of
        _marginal.h where their rounding bound allows (``expfam``), W as EXPFAM_FULL's and
        EXPFAM_TIED's and center, flat, with the components innermost (_marginal.h):
        [P_k[j, a] (d, d, k); (P_k delta_k)_j (d, k); s; 1 / P_k,jj and log P_k,jj (d, k)],
        delta_k = mu_k - s (tied: [L; P; (P delta_k)_j (d, k); s; 1 / P_jj, log P_jj (d,)]);
        else the exactly centred FULL_MISSING (_conditional.h), L_k and [P_k; mu]."""
        t, means, chol = self.covariance_type, params.means, params.precisions_cholesky
        k, d = means.shape
        linear = np.einsum("kab,kb->ka", precision, means - centre)
        if expfam:
            lanes = precision[:1] if t == "tied" else precision  # (1 or k, d, d)
            diagonal = np.diagonal(lanes, axis1=1, axis2=2).T
            parts = [lanes.transpose(1, 2, 0), linear.T, centre, 1.0 / diagonal,
                     np.log(diagonal)]
            if t == "tied":
                parts.insert(0, chol)
            center = np.concatenate([np.ravel(a) for a in parts]).reshape(-1, d)
            pivot = np.repeat(centre[None], k, axis=0)
        if expfam and t == "full":
            rows, cols = np.triu_indices(d)
            quadratic = -precision[:, rows, cols] * np.where(rows == cols, 0.5, 1.0)
            return self._packed(KIND_EXPFAM_FULL_MISSING, np.hstack([linear, quadratic]).T,
                                center, log_norm - 0.5 * spread, pivot, np.float64)
        if expfam:  # t(v) = [v, -v'Pv/2], W = [P delta_k; 1]
            return self._packed(KIND_EXPFAM_TIED_MISSING, np.vstack([linear.T, np.ones((1, k))]),
                                center, log_norm - 0.5 * spread, pivot, np.float64)
        stack = np.broadcast_to(chol, (k, d, d))
        return self._packed(KIND_FULL_MISSING, stack.reshape(k * d, d),
                            np.vstack([precision.reshape(k * d, d), means]), log_norm, means,
                            np.float64)

    def pack_pivot(self, means, dtype):
        """KernelParams carrying only a pivot, for passes with given responsibilities."""
        if self.missing:  # full, tied: no covariance to condition on yet, a diagonal start
            kind = KIND_DIAG_MISSING
        else:
            kind = {"full": KIND_FULL, "tied": KIND_TIED}.get(self.covariance_type, KIND_DIAG)
        unused = np.zeros((1, 1))
        return self._packed(kind, unused, unused, np.zeros(means.shape[0]), means, dtype)

    @staticmethod
    def _packed(kind, proj, center, log_norm, pivot, dtype):
        as_dtype = lambda a: np.ascontiguousarray(a, dtype=dtype)  # noqa: E731
        return KernelParams(kind, as_dtype(proj), as_dtype(center),
                            np.ascontiguousarray(log_norm, dtype=np.float64), as_dtype(pivot))

    def rebase(self, stats, from_packed, to_packed):
        """Restate a statistics vector from ``from_packed``'s frame in ``to_packed``'s: the
        moments are shifted from one pivot to the other (Chan et al.'s update: with
        d = p_from - p_to, s1' = s1 + s0 d and S' = S + s1 d' + d s1' + s0 d d'), then laid
        out as ``to_packed``'s kind stores them. Statistics pooled over components (the
        exponential-family tied kind) or summed over dimensions (spherical) cannot be split
        again; restated in a per-component or per-dimension kind, the pooled sum sits in the
        first component's (or dimension's) slot, which is all the tied (spherical) M-step,
        objective and Newton step read: their sum."""
        k, d = to_packed.pivot.shape
        view = Statistics(stats, k)
        s1, second = unpack_moments(view.family, from_packed.kind, k, d)
        delta = (np.asarray(from_packed.pivot, dtype=np.float64)
                 - np.asarray(to_packed.pivot, dtype=np.float64))
        s0 = view.s0
        mass = observed_mass(view.family, from_packed.kind, k, d)
        n = s0[:, None] if mass is None else mass  # per entry when marginalising
        if second.ndim == 3:  # (K or 1, D, D): per component, or pooled over components
            cross = s1[:, :, None] * delta[:, None, :]
            shift = cross + cross.transpose(0, 2, 1) \
                + s0[:, None, None] * delta[:, :, None] * delta[:, None, :]
            second = second + (shift.sum(axis=0, keepdims=True) if second.shape[0] == 1
                               else shift)
        elif second.shape[1] == 1:  # spherical: summed over dimensions
            second = second + (2 * (s1 * delta).sum(axis=1) + (n * delta**2).sum(axis=1))[:, None]
        else:
            second = second + 2 * s1 * delta + n * delta**2
        moments = pack_moments(s1 + n * delta, second, to_packed.kind, mass)
        return view.with_family(moments).vector

    def workspace(self, packed, chunk_size, n_threads, n_chunks):
        """Caller-owned scratch for a pass: per-thread buffers and per-chunk statistics slots."""
        k, d = packed.pivot.shape
        per_thread = _kernel().workspace_size(packed.kind, chunk_size, d, k)
        return np.empty((n_threads, per_thread)), np.empty((n_chunks, self.stats_size(packed) + 2))

    def fit_block(self, packed, X, weights, resp, with_stats, chunk_size, n_threads, work, stats,
                  worst, row_offset, labels=None):
        """Accumulate a block's log-likelihood and statistics into ``stats`` (see the kernel)."""
        k = packed.log_norm.shape[0]
        _kernel().fit_block(
            packed.kind, X,
            _EMPTY_F64 if weights is None else weights,
            np.empty((0, k)) if resp is None else resp,
            packed.proj, packed.center, packed.log_norm, packed.pivot,
            with_stats, chunk_size, n_threads, *work, stats, worst, row_offset, labels,
        )

    def predict_block(self, packed, X, chunk_size, n_threads, work, log_prob, resp, labels):
        """Per-row log p(x), posteriors and labels of a block, written into the given arrays."""
        k = packed.log_norm.shape[0]
        _kernel().predict_block(
            packed.kind, X, packed.proj, packed.center, packed.log_norm, packed.pivot,
            chunk_size, n_threads, work[0],
            _EMPTY_F64 if log_prob is None else log_prob,
            np.empty((0, k)) if resp is None else resp,
            _EMPTY_LABELS if labels is None else labels,
        )

    def log_density_block(self, packed, X, chunk_size, n_threads, work, out):
        """Write ``packed.log_norm[k] + log N(x_i | mu_k, Sigma_k)`` of a block (of the packed
        dtype) into ``out`` (n, K) C-contiguous float64: the component log-densities when
        ``packed.log_norm`` holds no log-weights, log p(x_i, z = k) as packed by ``pack``."""
        _kernel().log_density_block(packed.kind, X, packed.proj, packed.center, packed.log_norm,
                                    packed.pivot, chunk_size, n_threads, work[0], out)

    def m_step(self, stats, packed, params=None):
        """Exact (or MAP, under ``prior``) M-step of the components.

        ``packed`` is what the statistics were computed with: its kind fixes their layout and
        its (dtype-rounded) pivot their centres. Without a prior, empty components keep their
        pivot as mean and get the pooled covariance, and the latent structure re-seeds them;
        with one, they take the prior's mode and are not re-seeded. ``params`` (the E-step's)
        supply the parameters named in ``frozen``.
        """
        t = self.covariance_type
        if packed.kind == KIND_DIAG_MISSING and t in ("full", "tied"):
            return self._diagonal_start(stats, packed)
        # without ``params`` (initialisation from given responsibilities) nothing is frozen yet
        frozen = self.frozen if params is not None else frozenset()
        if "means" in frozen:
            means = params.means
        else:
            means = self._mean_update(stats, packed)
        if "covariances" in frozen:  # kept bitwise, Cholesky factors included
            return GaussianParams(t, means, params.covariances, params.precisions_cholesky)
        scatter = self._posterior_scatter(stats, packed, means)
        cov = self._covariance_update(stats, packed, scatter, means)
        return GaussianParams.from_covariances(t, means, cov)

    def _diagonal_start(self, stats, packed):
        """Full or tied components from statistics of given responsibilities on data with
        missing entries (initialisation): the diagonal update over the observed entries, as
        diagonal matrices (tied: their average weighted by the components' masses)."""
        diag = GaussianFamily("diag", self.reg_covar, missing=True).m_step(stats, packed)
        cov = np.einsum("kd,de->kde", diag.covariances, np.eye(packed.pivot.shape[1]))
        if self.covariance_type == "tied":
            cov = np.average(cov, axis=0, weights=stats.s0)
        return GaussianParams.from_covariances(self.covariance_type, diag.means, cov)

    @property
    def reseeds_empty(self):
        """Empty components are re-seeded without a prior; under one they take its mode."""
        return self.prior is None

    def _mean_update(self, stats, packed):
        """argmax over the means of J (+ log prior): the weighted data mean of each component,
        shrunk towards the prior mean by ``mean_precision`` pseudo-observations."""
        k, d = packed.pivot.shape
        s1, _ = unpack_moments(stats.family, packed.kind, k, d)
        n = self._mass(stats, packed)
        pivot = np.asarray(packed.pivot, dtype=np.float64)
        if self.prior is None:
            return pivot + s1 / np.where(n > 0, n, 1.0)
        kappa = self.prior.mean_precision
        return pivot + (s1 + kappa * (self.prior.mean - pivot)) / (n + kappa)

    @staticmethod
    def _mass(stats, packed):
        """The responsibility mass behind each mean entry: n_kj (k, d) when marginalising
        missing entries, else s0_k as (k, 1)."""
        k, d = packed.pivot.shape
        n = observed_mass(stats.family, packed.kind, k, d)
        return stats.s0[:, None] if n is None else n

    def _scatter(self, stats, packed, means):
        """sum_i w_i r_ik (x_i - mu_k)(x_i - mu_k)' (diagonal for diag and spherical) about the
        given means, from pivot-centred moments (the data's part of J only). For tied, the sum
        over components, shape (1, D, D), and for spherical the sum over dimensions, (K, 1):
        all that their updates use."""
        k, d = packed.pivot.shape
        s0 = stats.s0
        s1, second = unpack_moments(stats.family, packed.kind, k, d)
        delta = means - np.asarray(packed.pivot, dtype=np.float64)
        n = self._mass(stats, packed)  # s0 as (k, 1), or per entry when marginalising
        if self.covariance_type == "tied":
            cross = s1.T @ delta
            return (second.sum(axis=0) - cross - cross.T + (s0[:, None] * delta).T @ delta)[None]
        if self.covariance_type == "full":
            outer = lambda a, b: a[:, :, None] * b[:, None, :]  # noqa: E731
            return (second - outer(s1, delta) - outer(delta, s1)
                    + s0[:, None, None] * outer(delta, delta))
        if self.covariance_type == "spherical":  # summed over dimensions, (K, 1)
            summed = second.sum(axis=1) - 2 * (s1 * delta).sum(axis=1) + (n * delta**2).sum(axis=1)
            return np.maximum(summed, 0.0)[:, None]
        # clipped: float32 rounding can leave a tiny negative variance for a point mass
        return np.maximum(second - 2 * s1 * delta + n * delta**2, 0.0)

    def _posterior_scatter(self, stats, packed, means):
        """The scatter that the covariance update divides: the data's scatter about ``means``
        plus, under a prior, its kappa (mu_k - mu_0)(mu_k - mu_0)' (the prior's scale Psi is
        added in :meth:`_covariance_update`)."""
        scatter = self._scatter(stats, packed, means)
        if self.prior is not None:
            off = means - self.prior.mean
            if self.covariance_type == "tied":
                scatter = scatter + self.prior.mean_precision * (off.T @ off)[None]
            elif self.covariance_type == "full":
                scatter = scatter + self.prior.mean_precision * off[:, :, None] * off[:, None, :]
            elif self.covariance_type == "spherical":
                scatter = scatter + self.prior.mean_precision * (off**2).sum(axis=1, keepdims=True)
            else:
                scatter = scatter + self.prior.mean_precision * off**2
        return scatter

    def _covariance_update(self, stats, packed, scatter, means):
        """argmax over the covariances of J (+ log prior) given the scatter about ``means``
        (see :meth:`_scatter` for its shape); without a prior, where they are singular, as
        scikit-learn's (:func:`_as_sklearn_if_singular`)."""
        t, prior, reg = self.covariance_type, self.prior, self.reg_covar
        k, d = packed.pivot.shape
        s0 = stats.s0
        total = s0.sum()
        empty = s0 <= 1e-12 * total
        mass = observed_mass(stats.family, packed.kind, k, d)
        if mass is not None:
            return self._marginal_covariance(scatter, mass, d) + reg
        if prior is not None:
            psi, nu = prior.covariance, prior.degrees_of_freedom
            cov = {
                "full": lambda: (scatter + psi) / (s0 + nu + d + 2)[:, None, None],
                "tied": lambda: (scatter.sum(axis=0) + psi) / (total + nu + d + 1 + k),
                "diag": lambda: (scatter + psi) / (s0 + nu - 1)[:, None],
                "spherical": lambda: (scatter.sum(axis=1) + psi) / (d * s0 + nu + d - 2),
            }[t]()
        elif t == "tied":
            cov = scatter.sum(axis=0) / total
        else:
            if reg == 0 and (s0 == 0).any():
                # scikit-learn's mean and covariance of a component without mass are 0: its
                # error, where fastem would otherwise re-seed (it does with reg_covar > 0)
                raise ValueError(CHOLESKY_ERROR)
            nk = np.where(empty, 1.0, s0)
            scatter[empty] = 0.0
            cov = scatter / nk.reshape((-1,) + (1,) * (scatter.ndim - 1))
            cov[empty] = np.tensordot(s0, cov, axes=1) / total
            if t == "spherical":
                cov = cov[:, 0] / d
        cov = cov + reg * (np.eye(d) if t in ("full", "tied") else 1.0)
        if prior is None and t in ("diag", "spherical"):
            cov = _as_sklearn_if_singular(t, cov, means, s0)
        return cov

    def _marginal_covariance(self, scatter, mass, d):
        """Diagonal (spherical) covariances when entries are missing: each entry's scatter
        over ``mass``, the responsibility mass of the rows observing it (summed over the
        dimensions for spherical), plus the prior's pseudo-counts; an entry that none of a
        component's rows observes gets the variance pooled over components."""
        prior = self.prior
        if self.covariance_type == "spherical":
            scatter, mass = scatter[:, 0], mass.sum(axis=1)
        if prior is not None:
            extra = prior.degrees_of_freedom + (d - 2 if self.covariance_type == "spherical"
                                                else -1)
            return (scatter + prior.covariance) / (mass + extra)
        lost = mass <= EMPTY_MASS * mass.sum(axis=0)
        pooled = scatter.sum(axis=0) / mass.sum(axis=0)
        return np.where(lost, pooled, scatter / np.where(lost, 1.0, mass))

    def objective(self, params, stats, packed):
        """The components' part of J(theta) + log p(theta) from the statistics, up to a
        constant (for partial M-steps)."""
        s0 = stats.s0
        scatter = self._scatter(stats, packed, params.means)
        chol, t = params.precisions_cholesky, self.covariance_type
        if t == "full":
            trace = np.einsum("kab,kac,kbc->k", scatter, chol, chol)
        elif t == "tied":
            trace = np.einsum("kab,ac,bc->k", scatter, chol, chol)
        else:
            trace = (scatter * (chol**2 if t == "diag" else chol[:, None] ** 2)).sum(axis=1)
        k, d = packed.pivot.shape
        mass = observed_mass(stats.family, packed.kind, k, d)
        if mass is None:
            log_det = (s0 * params.log_det_cholesky()).sum()
        else:  # each observed entry's log L_kj
            log_det = (mass * np.log(chol if t == "diag" else chol[:, None])).sum()
        j = log_det - 0.5 * trace.sum()
        return float(j) + self.log_prior(params)

    def log_prior(self, params):
        """log p(theta) up to a constant: Normal-inverse-Wishart (full, tied) or Normal-Gamma on
        each precision (diag, spherical)."""
        prior = self.prior
        if prior is None:
            return 0.0
        t, (k, d) = self.covariance_type, params.means.shape
        chol = params.precisions_cholesky
        off = params.means - prior.mean
        psi, nu, kappa = prior.covariance, prior.degrees_of_freedom, prior.mean_precision
        if t in ("full", "tied"):
            stack = chol if t == "full" else chol[None]
            # log|Sigma| = -2 log det L; tr(Psi P) and kappa (mu - mu0)' P (mu - mu0) with P = L L'
            log_det_cov = -2 * np.log(np.diagonal(stack, axis1=1, axis2=2)).sum(axis=1)
            trace = np.einsum("ab,kac,kbc->k", psi, stack, stack)
            proj = np.einsum("ka,kab->kb", off, stack) if t == "full" else off @ chol
            power = nu + d + 2 if t == "full" else nu + d + 1 + k
            value = (-0.5 * power * log_det_cov - 0.5 * trace).sum() \
                - 0.5 * kappa * (proj**2).sum()
        else:
            precision = chol**2  # (k, d) or (k,)
            if t == "diag":
                value = ((0.5 * nu - 0.5) * np.log(precision) - 0.5 * psi * precision
                         - 0.5 * kappa * precision * off**2).sum()
            else:
                value = ((0.5 * nu - 1 + 0.5 * d) * np.log(precision) - 0.5 * psi * precision
                         - 0.5 * kappa * precision * (off**2).sum(axis=1)).sum()
        return float(value)

    def newton_step(self, params, stats, packed):
        """Means to their conditional maximisers (the objective is quadratic in them, so one
        Newton step gets there), then one Newton step on each precision P: P + (P - P A P / c), with A the scatter (+ prior
        scale) and c the effective count, whose fixed point c A^-1 is the covariance update.

        Returns a :class:`GaussianStep` (the proposed precisions need not be positive
        definite; :meth:`interpolate` returns None where the mix of them is not)."""
        means = params.means if "means" in self.frozen else self._mean_update(stats, packed)
        precision = precisions_from_cholesky(params.precisions_cholesky, self.covariance_type)
        if "covariances" in self.frozen:
            return GaussianStep(means, precision)
        target = self._covariance_update(stats, packed,
                                         self._posterior_scatter(stats, packed, means), means)
        # the covariance update is c A^-1's inverse: A / c = target, so P A P / c = P target P
        if self.covariance_type in ("full", "tied"):
            step = precision - precision @ target @ precision
            step = 0.5 * (step + np.swapaxes(step, -1, -2))
        else:
            step = precision - precision * target * precision
        return GaussianStep(means, precision + step)

    def interpolate(self, params, proposal, t):
        """Means and precisions a fraction ``t`` of the way from ``params`` to the
        :class:`GaussianStep` ``proposal``; None where the precisions are not positive definite
        (the line search then halves ``t``). Frozen parts are kept bitwise."""
        mix = lambda a, b: a if t == 0 else b if t == 1 else (1 - t) * a + t * b  # noqa: E731
        ct = self.covariance_type
        means = params.means if "means" in self.frozen else mix(params.means, proposal.means)
        if "covariances" in self.frozen:
            return GaussianParams(ct, means, params.covariances, params.precisions_cholesky)
        precision = mix(precisions_from_cholesky(params.precisions_cholesky, ct),
                        proposal.precision)
        return self._from_precisions(means, precision)

    def _from_precisions(self, means, precision):
        t = self.covariance_type
        if t in ("full", "tied"):
            try:
                cov = np.linalg.inv(precision)
                return GaussianParams.from_covariances(t, means, cov)
            except (np.linalg.LinAlgError, ValueError):
                return None
        if not (precision > 0).all():
            return None
        return GaussianParams(t, means, 1.0 / precision, np.sqrt(precision))

    def reseed(self, params, lost, rows):
        """Move empty components onto the given data rows, keeping covariances (frozen means
        are not moved)."""
        means = params.means
        if "means" not in self.frozen:
            means = means.copy()
            means[lost] = rows
        return GaussianParams(self.covariance_type, means, params.covariances,
                              params.precisions_cholesky)

    def sample(self, params, counts, rng):
        """``counts[k]`` draws of each component, in component order (scikit-learn's)."""
        t, d = self.covariance_type, params.n_features
        parts = []
        for k, (mean, count) in enumerate(zip(params.means, counts)):
            if t in ("full", "tied"):
                cov = params.covariances[k] if t == "full" else params.covariances
                parts.append(rng.multivariate_normal(mean, cov, int(count)))
            else:
                std = np.sqrt(params.covariances[k])
                parts.append(mean + rng.standard_normal(size=(count, d)) * std)
        return np.vstack(parts)


def unpack_moments(moments, kind, k, d):
    """First and second moments (k, d) and (k, d, d) or (k, d) from a kernel's layout; the
    expfam tied kind pools the second moments over components, (1, d, d), and the expfam
    spherical one over dimensions, (k, 1). The observed masses of the _MISSING kinds are left
    out (:func:`observed_mass`)."""
    kind = CONDITIONAL_KINDS.get(kind, kind)
    if kind in MISSING_KINDS:  # rows [s1, s2 (d, or 1 summed), n (d)]
        block = moments.reshape(k, -1)
        return block[:, :d], block[:, d:block.shape[1] - d]
    if kind == KIND_EXPFAM_TIED:  # s1 (k, d), then S = z' v (d, d), symmetric up to rounding
        pooled = moments[k * d:].reshape(d, d)
        return moments[:k * d].reshape(k, d), (0.5 * (pooled + pooled.T))[None]
    if kind in SYRK_KINDS:  # s1 (k, d), then lower triangles
        s1 = moments[:k * d].reshape(k, d)
        lower = np.tril(moments[k * d:].reshape(k, d, d))
        return s1, lower + np.tril(lower, -1).transpose(0, 2, 1)
    if kind == KIND_EXPFAM_SPHERICAL:  # rows [s1, sum of the diagonal of s2]
        block = moments.reshape(k, d + 1)
        return block[:, :d], block[:, d:]
    if kind == KIND_EXPFAM_FULL:  # rows [s1, upper triangle of s2 row by row]
        block = moments.reshape(k, -1)
        rows, cols = np.triu_indices(d)
        s2 = np.zeros((k, d, d))
        s2[:, rows, cols] = block[:, d:]
        s2[:, cols, rows] = block[:, d:]
        return block[:, :d], s2
    block = moments.reshape(k, 2 * d)  # rows [s1, diagonal of s2]
    return block[:, :d], block[:, d:]


def observed_mass(moments, kind, k, d):
    """n_kj (k, d), the mass of component k's rows observing column j, for the _MISSING kinds;
    None for complete-data kinds (where it is s0_k for every column)."""
    if kind not in MISSING_KINDS:
        return None
    return moments.reshape(k, -1)[:, -d:]


def pack_moments(s1, second, kind, mass=None):
    """The kernel layout of ``kind`` for first moments (k, d) and second moments (k, d, d),
    (1, d, d) pooled, (k, d) diagonals or (k, 1) summed over dimensions (and, for the _MISSING
    kinds, the observed masses ``mass`` (k, d)): the inverse of :func:`unpack_moments` and
    :func:`observed_mass`. Pooled (summed) moments restated per component (dimension) go to
    the first slot, zeros elsewhere: the same sum, which the tied (spherical) updates read."""
    k, d = s1.shape
    kind = CONDITIONAL_KINDS.get(kind, kind)
    if (kind in MISSING_KINDS) != (mass is not None):
        raise ValueError("statistics with and without missing entries cannot be restated in "
                         "each other's layout")
    if (kind in (KIND_EXPFAM_TIED, KIND_EXPFAM_FULL) + SYRK_KINDS
            and second.ndim != 3):
        raise ValueError("diagonal second moments cannot be restated as full matrices")
    if kind == KIND_EXPFAM_TIED:
        return np.concatenate([s1.ravel(), second.sum(axis=0).ravel()])
    if second.shape[0] != k:  # pooled over components (tied)
        second = np.concatenate([second, np.zeros((k - 1, d, d))])
    if kind in SYRK_KINDS:  # lower triangles, as SYRK writes
        return np.concatenate([s1.ravel(), np.tril(second).ravel()])
    if kind == KIND_EXPFAM_FULL:
        rows, cols = np.triu_indices(d)
        return np.hstack([s1, second[:, rows, cols]]).ravel()
    if second.ndim == 3:
        second = np.diagonal(second, axis1=1, axis2=2)
    if kind in (KIND_EXPFAM_SPHERICAL, KIND_EXPFAM_SPHERICAL_MISSING):
        second = second.sum(axis=1, keepdims=True)
    elif second.shape[1] != d:  # summed over dimensions (spherical)
        second = np.hstack([second, np.zeros((k, d - 1))])
    return np.hstack([s1, second] + ([] if mass is None else [mass])).ravel()


_EMPTY_F64 = np.empty(0)
_EMPTY_LABELS = np.empty(0, dtype=np.intp)
