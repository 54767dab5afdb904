"""Gaussian-mixture emissions under hmmlearn's priors, for ``fastem.hmm.GMMHMM``.

State k emits from a mixture of M Gaussians: p(x | k) = sum_j w_kj N(x | mu_kj, Sigma_kj).
The K*M Gaussians run in fastem's Gaussian kernel (a :class:`GaussianFamily` over K*M
components, the log-weights folded into its constants; hmmlearn's "tied", one covariance per
state shared by its M components, is a full family whose covariances repeat within a state);
``fastem/_kernels/state_mixture.pyx`` takes each state's log-sum-exp over its components, and,
given the state posteriors gamma, the components' responsibilities gamma_ik w_kj N_kj / p(x_i | k)
from which the Gaussian kernel sums the statistics. Blocks are cut into pieces of at most the
workspace's rows, so the (rows, K*M) buffers stay bounded.

The M-step is hmmlearn 0.3.3's ``GMMHMM._do_mstep``, term for term, including its quirks: the
covariance statistics are the scatter about the E-step's means (not the new ones), the priors'
defaults depend on the covariance type, and the weights' Dirichlet mode is not clipped at zero.
With n_kj the components' posterior mass, n_k the state's, lambda ``means_weight``, mu_0
``means_prior``, alpha ``weights_prior``:

    w_kj  = (n_kj + alpha_kj - 1) / (n_k + sum_j (alpha_kj - 1))
    mu_kj = (lambda_kj mu_0kj + sum_i r_ikj x_i) / (n_kj + lambda_kj)
    full:      Sigma_kj = (Psi' + lambda d d' + C_kj) / (n_kj + nu + D + 2)
    diag:      Sigma_kj = (lambda d^2 + 2 beta + C_kj) / (n_kj + 2 alpha_c + 3)
    spherical: s_kj     = (lambda |d|^2 + 2 beta + tr C_kj) / (D (n_kj + 1) + 2 (alpha_c + 1))
    tied:      Sigma_k  = (Psi' + sum_j lambda d d' + sum_j C_kj) / (n_k + M + nu + D + 1)

where d = mu_kj - mu_0kj (new means), C_kj the scatter about the E-step's means, and for
diag/spherical ``covars_prior`` is alpha_c and ``covars_weight`` beta; for full/tied Psi and nu.
The reported objective is the log-likelihood (``log_prior`` is 0), as in hmmlearn.

Under ``nan_policy="marginalize"`` (:meth:`GMMHMMLearnFamily.marginal`) the components run in
the marginal Gaussian kernels: diag and spherical replace n_kj by the mass of the rows observing
each entry (spherical: D times its mean over the entries), full and tied take the conditional
moments of the missing entries.
"""
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..frame import Statistics
from .base import Family, check_distributions
from .gaussian import GaussianFamily, GaussianParams, observed_mass, unpack_moments

COVARIANCE_TYPES = ("spherical", "diag", "full", "tied")


def _kernel():
    from .._kernels import state_mixture

    return state_mixture


def covars_shape(covariance_type, k, m, d):
    """hmmlearn's shape of GMMHMM's ``covars_``."""
    return {"spherical": (k, m), "diag": (k, m, d), "full": (k, m, d, d),
            "tied": (k, d, d)}[covariance_type]


def default_priors(covariance_type, k, m, d, weights_prior=1.0, means_prior=0.0,
                   means_weight=0.0, covars_prior=None, covars_weight=None):
    """hmmlearn's priors (``_init_covar_priors`` then ``_fix_priors_shape``): None takes the
    covariance type's default, and every prior is broadcast to its full shape."""
    t = covariance_type
    default_prior, default_weight = {
        "full": (0.0, -(1.0 + d + 1.0)), "tied": (0.0, -(m + d + 1.0)),
        "diag": (-1.5, 0.0), "spherical": (-(m + 2.0) / 2.0, 0.0)}[t]
    covars_prior = default_prior if covars_prior is None else covars_prior
    covars_weight = default_weight if covars_weight is None else covars_weight
    prior_shape, weight_shape = {
        "full": ((k, m, d, d), (k, m)), "tied": ((k, d, d), (k,)),
        "diag": ((k, m, d), (k, m, d)), "spherical": ((k, m), (k, m))}[t]
    full = lambda a, shape: np.broadcast_to(np.asarray(a, dtype=np.float64), shape).copy()  # noqa: E731
    return (full(weights_prior, (k, m)), full(means_prior, (k, m, d)), full(means_weight, (k, m)),
            full(covars_prior, prior_shape), full(covars_weight, weight_shape))


@dataclass
class GMMParams:
    """Each state's mixture in hmmlearn's shapes: ``weights`` (K, M), ``means`` (K, M, D) and
    ``covars`` (:func:`covars_shape`)."""

    covariance_type: str
    weights: np.ndarray
    means: np.ndarray
    covars: np.ndarray

    @property
    def n_components(self):
        return self.weights.shape[0]

    @property
    def n_features(self):
        return self.means.shape[2]

    def check(self):
        """ValueError naming the attribute whose shape or values are wrong (hmmlearn's
        ``_check``, which every method runs before it starts, not between EM iterations)."""
        k, m = self.weights.shape
        d = self.means.shape[-1]
        if self.means.shape != (k, m, d):
            raise ValueError(f"means_ must have shape (n_components, n_mix, n_features) = "
                             f"({k}, {m}, {d}), actual shape: {self.means.shape}")
        shape = covars_shape(self.covariance_type, k, m, d)
        if self.covars.shape != shape:
            raise ValueError(f"{self.covariance_type!r} mixture covars must have shape {shape}, "
                             f"actual shape: {self.covars.shape}")
        check_distributions("weights_", self.weights, (k, m))
        t = self.covariance_type
        used = self.weights.ravel() > 0  # a component of weight 0 is never used (hmmlearn's)
        if t in ("spherical", "diag"):
            if not np.all(self.covars >= 0):  # NaN fails too
                raise ValueError(f"{t!r} mixture covars must be non-negative")
            return
        stack = self.covars.reshape(-1, d, d)
        symmetric = np.isclose(stack, np.swapaxes(stack, -1, -2)).all(axis=(1, 2))
        with np.errstate(invalid="ignore"):
            definite = np.linalg.eigvalsh(np.where(np.isfinite(stack), stack, 0)).min(axis=1) > 0
        valid = symmetric & definite & np.isfinite(stack).all(axis=(1, 2))
        bad = np.flatnonzero(~(valid | ~used) if t == "full" else ~valid)
        if bad.size:
            i = int(bad[0])
            where = f"state #{i // m}, mixture #{i % m}" if t == "full" else f"state #{i}"
            raise ValueError(f"Covariance of {where} is not symmetric positive definite")

    def gaussians(self):
        """The K*M Gaussian components (tied: full, each state's covariance repeated), as
        hmmlearn's densities see them: variances floored at the smallest positive double
        (hmmlearn's spherical M-step can leave a nearly empty component a negative one, which
        its density then treats as that floor), and a component of weight 0 with unit
        covariance (its log-weight is -inf: its density is never used)."""
        k, m, d = self.means.shape
        t = self.covariance_type
        cov = {"spherical": lambda: self.covars.reshape(k * m),
               "diag": lambda: self.covars.reshape(k * m, d),
               "full": lambda: self.covars.reshape(k * m, d, d),
               "tied": lambda: np.repeat(self.covars, m, axis=0)}[t]().copy()
        if cov.ndim < 3:
            cov = np.maximum(cov, np.finfo(np.float64).tiny)
        cov[self.weights.ravel() == 0] = np.eye(d) if cov.ndim == 3 else 1.0
        try:
            return GaussianParams.from_covariances("full" if t == "tied" else t,
                                                   self.means.reshape(k * m, d), cov)
        except ValueError:
            raise ValueError("'covars' must be symmetric, positive-definite") from None


class GMMPacked(NamedTuple):
    gaussian: Any  # the Gaussian family's packing of the K*M components, log-weights folded in
    n_mix: int
    log_norm: np.ndarray  # (K,) zeros: the states' constants are inside the mixtures

    @property
    def dtype(self):
        return self.gaussian.dtype


class GMMHMMLearnFamily(Family):
    """Per-state Gaussian mixtures with hmmlearn's GMMHMM M-step (module docstring). The
    priors are given in their full shapes (:func:`default_priors`); ``frozen`` names the parts
    ("weights", "means", "covariances") every M-step keeps."""

    def __init__(self, covariance_type, n_mix, weights_prior, means_prior, means_weight,
                 covars_prior, covars_weight, frozen=(), missing=False):
        if covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {list(COVARIANCE_TYPES)}, got "
                             f"{covariance_type!r}")
        self.covariance_type, self.n_mix = covariance_type, int(n_mix)
        self.weights_prior, self.means_prior = weights_prior, means_prior
        self.means_weight, self.covars_prior = means_weight, covars_prior
        self.covars_weight = covars_weight
        self.frozen = frozenset(frozen)
        self.gaussian = GaussianFamily("full" if covariance_type == "tied" else covariance_type,
                                       reg_covar=0.0, missing=missing)

    def marginal(self):
        """This family with NaN entries missing at random (see the module docstring)."""
        return GMMHMMLearnFamily(self.covariance_type, self.n_mix, self.weights_prior,
                                 self.means_prior, self.means_weight, self.covars_prior,
                                 self.covars_weight, self.frozen, missing=True)

    @property
    def reseeds_empty(self):
        return False

    # ---------------------------------------------------------------- kernel binding
    def pack(self, params, dtype, mass):
        k, m = params.weights.shape
        packed = self.gaussian.pack(params.gaussians(), dtype, np.repeat(mass, m) / m)
        with np.errstate(divide="ignore"):
            log_weights = np.log(params.weights).ravel()
        return GMMPacked(packed._replace(log_norm=packed.log_norm + log_weights), m, np.zeros(k))

    def stats_size(self, packed):
        return Statistics.head_size(packed.log_norm.shape[0]) + \
            self.gaussian.stats_size(packed.gaussian)

    def workspace(self, packed, chunk_size, n_threads, n_chunks):
        """The Gaussian kernel's workspace, and (rows, K*M) buffers for pieces of at most
        ``min(n_chunks, 64)`` chunks."""
        n_chunks = max(1, min(n_chunks, 64))
        rows, km = n_chunks * chunk_size, packed.gaussian.log_norm.shape[0]
        return (self.gaussian.workspace(packed.gaussian, chunk_size, n_threads, n_chunks),
                np.empty((rows, km)), np.empty((rows, km)))

    def _pieces(self, X, work):
        rows = work[1].shape[0]
        for start in range(0, X.shape[0], rows):
            yield start, X[start:start + rows]

    def log_density_block(self, packed, X, chunk_size, n_threads, work, out):
        """log p(x_i | state k) into ``out`` (n, K)."""
        gaussian_work, L, _ = work
        for start, piece in self._pieces(X, work):
            n = piece.shape[0]
            self.gaussian.log_density_block(packed.gaussian, piece, chunk_size, n_threads,
                                            gaussian_work, L[:n])
            _kernel().state_log_densities(L[:n], packed.n_mix, n_threads, out[start:start + n])

    def fit_block(self, packed, X, weights, resp, with_stats, chunk_size, n_threads, work, stats,
                  worst, row_offset, labels=None):
        """The statistics under given state posteriors ``resp`` (n, K), times ``weights``
        (missing observations: 0) when given: [ll (untouched), rows, state masses (K), the
        Gaussian statistics of the K*M components]."""
        if resp is None or labels is not None:
            raise ValueError("GMMHMMLearnFamily serves hidden Markov models: it needs the state "
                             "posteriors")
        if weights is not None:
            resp = resp * np.asarray(weights)[:, None]
        k = packed.log_norm.shape[0]
        head = Statistics.head_size(k)
        gaussian_work, L, R = work
        part = np.zeros(stats.size - head)
        unused = np.array([np.inf, -1.0])
        for start, piece in self._pieces(X, work):
            n = piece.shape[0]
            self.gaussian.log_density_block(packed.gaussian, piece, chunk_size, n_threads,
                                            gaussian_work, L[:n])
            _kernel().state_responsibilities(L[:n], np.ascontiguousarray(resp[start:start + n]),
                                             packed.n_mix, n_threads, R[:n])
            self.gaussian.fit_block(packed.gaussian, piece, None, R[:n], with_stats, chunk_size,
                                    n_threads, gaussian_work, part, unused, row_offset + start)
        stats[1] += X.shape[0] if weights is None else float(np.sum(weights))
        stats[2:head] += part[2:2 + k * packed.n_mix].reshape(k, -1).sum(axis=1)
        stats[head:] += part

    def rebase(self, stats, from_packed, to_packed):
        """The K*M Gaussians' statistics (centred on their packing's pivot) restated by the
        Gaussian family's ``rebase``; the states' head is frame-free."""
        view = Statistics(stats, to_packed.log_norm.shape[0])
        return view.with_family(self.gaussian.rebase(view.family, from_packed.gaussian,
                                                     to_packed.gaussian)).vector

    # ----------------------------------------------------------------- the M-step
    def m_step(self, stats, packed, params=None):
        """hmmlearn's GMMHMM M-step (module docstring), from the E-step's ``params``."""
        t, frozen = self.covariance_type, self.frozen
        k, m = params.weights.shape
        d = params.means.shape[2]
        view = Statistics(stats.family, k * m)
        post_mix, post = view.s0.reshape(k, m), stats.s0
        mass = observed_mass(view.family, packed.gaussian.kind, k * m, d)
        # the mass behind each mean entry: n_kj (K, M, 1), per entry (K, M, D) when marginalising
        n = post_mix[..., None] if mass is None else mass.reshape(k, m, d)
        weights, means, covars = params.weights, params.means, params.covars
        if "weights" not in frozen:
            alpha = self.weights_prior - 1
            weights = (post_mix + alpha) / (post + alpha.sum(axis=1))[:, None]
        lam, mu0 = self.means_weight, self.means_prior
        if "means" not in frozen:
            s1, _ = unpack_moments(view.family, packed.gaussian.kind, k * m, d)
            pivot = np.asarray(packed.gaussian.pivot, dtype=np.float64)
            n_flat = view.s0[:, None] if mass is None else mass
            m_n = lam[:, :, None] * mu0 + (s1 + n_flat * pivot).reshape(k, m, d)
            m_d = n + lam[:, :, None]
            m_d[(weights == 0) & (m_n == 0).all(axis=-1)] = 1
            means = m_n / m_d
        if "covariances" not in frozen:
            scatter = self.gaussian._scatter(view, packed.gaussian,
                                             params.means.reshape(k * m, d))
            off = means - mu0
            outer = off[..., :, None] * off[..., None, :]
            if t == "full":
                c_n = np.swapaxes(self.covars_prior, -1, -2) + lam[..., None, None] * outer \
                    + scatter.reshape(k, m, d, d)
                c_d = (post_mix + 1 + self.covars_weight + d + 1)[..., None, None]
            elif t == "diag":
                c_n = lam[..., None] * off**2 + 2 * self.covars_weight + scatter.reshape(k, m, d)
                c_d = n + 1 + 2 * (self.covars_prior + 1)
            elif t == "spherical":
                c_n = lam * (off**2).sum(axis=-1) + 2 * self.covars_weight + scatter.reshape(k, m)
                c_d = d * (n.mean(axis=-1) + 1) + 2 * (self.covars_prior + 1)
            else:
                c_n = np.einsum("ij,ijkl->ikl", lam, outer) \
                    + np.swapaxes(self.covars_prior, -1, -2) \
                    + scatter.reshape(k, m, d, d).sum(axis=1)
                c_d = (post + m + self.covars_weight + d + 1)[:, None, None]
            covars = c_n / c_d
        return GMMParams(t, weights, means, covars)

    # ------------------------------------------------------------------ the rest
    def sample(self, params, counts, rng):
        """``counts[k]`` draws from each state's mixture, in state order."""
        k, m, d = params.means.shape
        gaussians = params.gaussians()
        parts = []
        for state, count in enumerate(counts):
            which = rng.choice(m, size=int(count), p=params.weights[state])
            mix = np.bincount(which, minlength=m)
            draws = self.gaussian.sample(
                GaussianParams(gaussians.covariance_type, gaussians.means[state * m:(state + 1) * m],
                               gaussians.covariances[state * m:(state + 1) * m],
                               gaussians.precisions_cholesky[state * m:(state + 1) * m]), mix, rng)
            out = np.empty((int(count), d))
            out[np.argsort(which, kind="stable")] = draws
            parts.append(out)
        return np.vstack(parts) if parts else np.empty((0, d))

    def n_parameters(self, n_features, n_components):
        """As hmmlearn counts them (its weights count M - 1 in all)."""
        k, m, d = n_components, self.n_mix, n_features
        cov = {"spherical": k * m, "diag": k * m * d, "full": k * m * d * (d + 1) // 2,
               "tied": k * d * (d + 1) // 2}[self.covariance_type]
        return int(k * m * d + cov + m - 1)
