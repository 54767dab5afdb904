"""Gaussian components under hmmlearn's priors, for ``fastem.hmm.GaussianHMM``.

The same kernels and statistics as :class:`~fastem.families.gaussian.GaussianFamily`; only the
M-step differs: hmmlearn's ``GaussianHMM._do_mstep`` (after Huang, Acero & Hon, "Spoken
Language Processing", pp. 443-445), with ``means_prior`` mu_0, ``means_weight`` lambda,
``covars_prior`` Psi and ``covars_weight`` nu, and no ``reg_covar``:

    mu_k = (lambda mu_0 + sum_t g_tk x_t) / (lambda + n_k)
    C_k  = lambda (mu_k - mu_0)(mu_k - mu_0)' + sum_t g_tk (x_t - mu_k)(x_t - mu_k)'
    diag:      Sigma_k = (Psi + diag C_k) / max(max(nu - 1, 0) + n_k, 1e-5)
    spherical: the mean over dimensions of the diag update
    full:      Sigma_k = (Psi + C_k) / (max(nu - D, 0) + n_k)
    tied:      Sigma   = (Psi + sum_k C_k) / (max(nu - D, 0) + sum_k n_k)

The scatter is taken about the pivot the statistics are centred on (Chan's shift), which equals
hmmlearn's raw-moment form up to rounding and stays accurate for data far from the origin.
Under ``nan_policy="marginalize"`` (:meth:`HMMLearnGaussianFamily.marginal`) the same update
runs on the marginal statistics: diag and spherical divide each entry's sums by n_kj, the
posterior mass of the rows observing entry j, in place of n_k (spherical: the mean of n_kj over
j); full and tied take the conditional moments of the missing entries (exact EM).
hmmlearn's convergence monitor reports the log-likelihood without these priors' densities, and
so does this family (``log_prior`` is 0), which is also why it offers no partial M-step.
"""
import numpy as np

from .gaussian import GaussianFamily, GaussianParams, precision_cholesky, unpack_moments

HMMLEARN_COVAR_FLOOR = 1e-7  # hmmlearn.stats's min_covar for a full matrix it cannot factor


def hmmlearn_params(covariance_type, means, covariances):
    """``GaussianParams`` as hmmlearn's densities read ``covariances``: a full (or tied) matrix
    whose Cholesky factorisation fails, e.g. a state's update from too few rows, is factored
    with ``HMMLEARN_COVAR_FLOOR`` added to its diagonal (``hmmlearn.stats``), while the
    covariances themselves stay as they are; ValueError, worded as hmmlearn's, if that fails
    too."""
    t = covariance_type
    try:
        return GaussianParams.from_covariances(t, means, covariances)
    except ValueError:
        if t not in ("full", "tied"):
            raise
    stack = np.array(covariances, dtype=np.float64).reshape(-1, *np.shape(covariances)[-2:])
    for matrix in stack:
        try:
            np.linalg.cholesky(matrix)
        except np.linalg.LinAlgError:
            matrix += HMMLEARN_COVAR_FLOOR * np.eye(matrix.shape[0])
    try:
        chol = precision_cholesky(stack if t == "full" else stack[0], t)
    except ValueError:
        raise ValueError("'covars' must be symmetric, positive-definite") from None
    return GaussianParams(t, means, covariances, chol)


class HMMLearnGaussianFamily(GaussianFamily):
    """Gaussian emissions whose M-step is hmmlearn's (see the module docstring)."""

    def __init__(self, covariance_type="diag", means_prior=0.0, means_weight=0.0,
                 covars_prior=1e-2, covars_weight=1.0, frozen=(), missing=False):
        super().__init__(covariance_type, reg_covar=0.0, frozen=frozen, missing=missing)
        self.means_prior = np.asarray(means_prior, dtype=np.float64)
        self.means_weight = np.asarray(means_weight, dtype=np.float64)
        self.covars_prior = np.asarray(covars_prior, dtype=np.float64)
        self.covars_weight = np.asarray(covars_weight, dtype=np.float64)

    def marginal(self):
        """This family with NaN entries missing at random (see the module docstring)."""
        return HMMLearnGaussianFamily(self.covariance_type, self.means_prior, self.means_weight,
                                      self.covars_prior, self.covars_weight, self.frozen,
                                      missing=True)

    @property
    def reseeds_empty(self):
        return False  # hmmlearn keeps an empty state where its update leaves it

    def m_step(self, stats, packed, params=None):
        k, d = packed.pivot.shape
        t = self.covariance_type
        frozen = self.frozen if params is not None else frozenset()
        s0, lam = stats.s0, self.means_weight
        n = self._mass(stats, packed)  # s0 (K, 1), or n_kj (K, D) for diag/spherical missing
        if "means" in frozen:
            means = params.means
        else:
            s1, _ = unpack_moments(stats.family, packed.kind, k, d)
            pivot = np.asarray(packed.pivot, dtype=np.float64)
            means = (lam * self.means_prior + s1 + n * pivot) / (lam + n)
        if "covariances" in frozen:
            return GaussianParams(t, means, params.covariances, params.precisions_cholesky)
        scatter = self._scatter(stats, packed, means)
        off = means - self.means_prior
        psi, nu = self.covars_prior, self.covars_weight
        if t in ("diag", "spherical"):
            if t == "diag":
                cov = (psi + lam * off**2 + scatter) / np.maximum(np.maximum(nu - 1, 0) + n,
                                                                  1e-5)
            else:
                # scatter summed over dimensions: the mean over dimensions of the diag update
                denom = np.maximum(np.maximum(nu - 1, 0) + n.mean(axis=1), 1e-5)
                psi_mean = np.broadcast_to(psi, (k, d)).mean(axis=1)
                cov = (psi_mean + (lam * (off**2).sum(axis=1) + scatter[:, 0]) / d) / denom
        else:
            outer = lam * off[:, :, None] * off[:, None, :]
            weight = np.maximum(nu - d, 0)
            if t == "full":
                cov = (psi + outer + scatter) / (weight + s0)[:, None, None]
            else:
                cov = (psi + outer.sum(axis=0) + scatter[0]) / (weight + s0.sum())
        return hmmlearn_params(t, means, cov)

    def log_prior(self, params):
        return 0.0
