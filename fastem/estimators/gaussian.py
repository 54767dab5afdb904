"""GaussianMixture: scikit-learn's Gaussian mixture over the streaming EM engine."""
import numbers

import numpy as np

from .._base import check_float, check_str
from ..families.gaussian import (
    COVARIANCE_TYPES,
    GaussianFamily,
    GaussianParams,
    GaussianPrior,
    cholesky_from_precisions,
    covariance_shape,
    covariances_from_cholesky,
    precisions_from_cholesky,
)
from ..initialization import MAX_SAMPLE, fill_missing, initial_params
from ..latent.mixture import MixtureParams
from ._base import _MixtureBase


class GaussianMixture(_MixtureBase):
    """Gaussian mixture fitted by EM on streamed chunks; a drop-in for scikit-learn's.

    Parameters are those of ``sklearn.mixture.GaussianMixture``, plus:

    n_threads : int or None
        Threads for every pass over the data (default: ``OMP_NUM_THREADS``, else the CPUs this
        process may use). Results are bitwise identical for any value.
    chunk_size : int or None
        Rows per kernel chunk (default: chosen from the number of features and components so a
        chunk stays in cache). Changes results only by floating-point rounding.
    progress : bool
        Show a progress bar (tqdm, on stderr) for every pass over the data.
    callback : callable or None
        ``callback(model)`` after every EM iteration, with the model's fitted attributes set to
        that iteration's parameters (for checkpoints or custom monitoring).
    nan_policy : {"raise", "omit", "marginalize"}
        Rows holding NaN or infinity raise a ValueError naming the first one ("raise"), or are
        left out ("omit"): they get zero weight in ``fit`` and ``score`` (counted in
        ``n_omitted_rows_``), and label -1 and NaN log-likelihood and posteriors in predictions.
        "marginalize": NaN entries are missing at random and drop out of each row's density
        (exact EM on the observed entries; full and tied covariances take the conditional
        moments of the missing entries); infinity raises, and rows with no observed entry are
        left out as under "omit".
    m_step, m_step_iters :
        "exact" (default) or "partial" (generalized EM: ``m_step_iters`` Newton steps on each
        precision, with backtracking); see :class:`fastem.MixtureModel`.
    weight_concentration_prior : float or None
        MAP-EM: a symmetric Dirichlet prior on the weights (>= 1; None means 1, no prior).
    mean_prior, mean_precision_prior, degrees_of_freedom_prior, covariance_prior : optional
        MAP-EM: giving any of these puts a conjugate prior on every component
        (:class:`fastem.families.gaussian.GaussianPrior`: Normal-inverse-Wishart for full and
        tied, Normal-Gamma on each precision for diag and spherical). Defaults, as in
        scikit-learn's BayesianGaussianMixture: the data mean, 1, n_features, and the data's
        covariance (diag: variances; spherical: their mean), from the initialisation sample.
        ``lower_bound_`` is then the log-posterior per unit weight, which never decreases.
    frozen : tuple of str
        Parameters every M-step keeps at their initial values: any of "weights", "means",
        "covariances" (a tuple, or one name as a string); set them with ``weights_init``,
        ``means_init``, ``precisions_init``, else they keep the initialisation's values.

    algorithm, batch_size, learning_offset, learning_decay
        ``algorithm="incremental"`` or ``"stepwise"`` makes ``fit`` run online EM over blocks of
        ``batch_size`` rows (an M-step per block; ``max_iter`` and ``n_iter_`` count passes);
        ``partial_fit(X)`` makes one stepwise update per batch, with steps
        ``(t + learning_offset) ** -learning_decay``. See :mod:`fastem.online`.

    ``fit``, ``fit_predict`` and ``score`` also accept ``sample_weight``. ``X`` may be a numpy
    array, an ``np.memmap`` or a path to a ``.npy`` file (memory-mapped); it is never copied
    whole and no (n_samples, n_components) array exists during ``fit``.

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_ : ndarray
        Fitted parameters, in scikit-learn's shapes for the covariance type.
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Weighted mean log-likelihood per sample of the best run, as in scikit-learn; with a
        prior, the log-posterior (log-likelihood + log p(theta), up to a constant) per unit of
        weight.
    lower_bounds_ : list of float
        ``lower_bound`` after every iteration of the best run (never decreasing).
    n_features_in_ : int
    family_ : fastem.families.gaussian.GaussianFamily
        The family fitted with, its prior's data-based defaults included. A warm start
        continues with it: parameters that define the family (``covariance_type``,
        ``reg_covar``, the priors, ``frozen``) take effect at the next fit from scratch.
    """

    _fitted_arrays = ("weights_", "means_", "covariances_", "precisions_cholesky_")

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        n_threads=None,
        chunk_size=None,
        progress=False,
        callback=None,
        nan_policy="raise",
        m_step="exact",
        m_step_iters=1,
        weight_concentration_prior=None,
        mean_prior=None,
        mean_precision_prior=None,
        degrees_of_freedom_prior=None,
        covariance_prior=None,
        frozen=(),
        algorithm="batch",
        batch_size=10_000,
        learning_offset=10.0,
        learning_decay=0.7,
    ):
        super().__init__(
            n_components, tol=tol, max_iter=max_iter, n_init=n_init,
            init_params=init_params, random_state=random_state, warm_start=warm_start,
            verbose=verbose, verbose_interval=verbose_interval, n_threads=n_threads,
            chunk_size=chunk_size, progress=progress, callback=callback, nan_policy=nan_policy,
            m_step=m_step, m_step_iters=m_step_iters, algorithm=algorithm,
            batch_size=batch_size, learning_offset=learning_offset,
            learning_decay=learning_decay,
        )
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_prior = mean_prior
        self.mean_precision_prior = mean_precision_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.frozen = frozen

    # ---------------------------------------------------------- family hooks
    def _check_family_parameters(self, n_features):
        check_str(self, "covariance_type", COVARIANCE_TYPES)
        check_float(self, "reg_covar", 0.0)
        alpha = self.weight_concentration_prior
        if alpha is not None and not (_is_real(alpha) and np.isfinite(alpha) and alpha >= 1):
            raise ValueError(f"weight_concentration_prior must be a finite number >= 1 (the MAP "
                             f"weights exist), got {alpha!r}")
        for name in ("mean_precision_prior", "degrees_of_freedom_prior"):
            value = getattr(self, name)
            if value is not None and not (_is_real(value) and np.isfinite(value)):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        frozen = (self.frozen,) if isinstance(self.frozen, str) else self.frozen
        unknown = set(frozen) - {"weights", "means", "covariances"}
        if unknown:
            raise ValueError("frozen must name 'weights', 'means' or 'covariances'; got "
                             f"{sorted(unknown)}")
        self._check_inits(n_features)

    def _check_inits(self, d):
        """The ``*_init`` arrays as scikit-learn checks them, in its words (it names them
        'weights', 'means' and '<covariance_type> precision')."""
        k, t = self.n_components, self.covariance_type
        if self.weights_init is not None:
            w = _init_array("weights", self.weights_init, (k,))
            if (w < 0).any() or (w > 1).any():  # scikit-learn's words: its min as 'max value'
                raise ValueError("The parameter 'weights' should be in the range [0, 1], but "
                                 f"got max value {w.min():.5f}, min value {w.max():.5f}")
            # scikit-learn: 1e-6 for float32 weights, 1e-8 otherwise; float32 sums of many
            # weights are off by up to K eps
            given = np.asarray(self.weights_init).dtype
            atol = max(1e-6, k * np.finfo(given).eps) if given == np.float32 else 1e-8
            if not np.isclose(w.sum(), 1.0, rtol=0, atol=atol):
                raise ValueError("The parameter 'weights' should be normalized, but got "
                                 f"sum(weights) = {w.sum():.5f}")
        if self.means_init is not None:
            _init_array("means", self.means_init, (k, d))
        if self.precisions_init is not None:
            name = f"{t} precision"
            p = _init_array(name, self.precisions_init, covariance_shape(t, k, d))
            if t in ("full", "tied"):
                stack = p if t == "full" else p[None]
                if not (np.allclose(stack, stack.transpose(0, 2, 1))
                        and (np.linalg.eigvalsh(stack) > 0).all()):
                    raise ValueError(f"'{name}' should be symmetric, positive-definite")
            elif (p <= 0).any():
                raise ValueError(f"'{name}' should be positive")

    def _initial_params(self, latent, family, driver, rng):
        given = (self.weights_init, self.means_init, self.precisions_init)
        if any(v is None for v in given):
            params = initial_params(self.init_params, latent, family, driver, self.n_components,
                                    rng)
            weights, components = params.weights, params.components
            means, covariances, chol = (
                components.means, components.covariances, components.precisions_cholesky
            )
        if self.weights_init is not None:  # exactly normalised (float32 ones sum to 1 +- eps)
            weights = np.asarray(self.weights_init, dtype=np.float64)
            weights = weights / weights.sum()
        if self.means_init is not None:
            means = np.asarray(self.means_init, dtype=np.float64).copy()
        if self.precisions_init is not None:
            chol = cholesky_from_precisions(
                np.asarray(self.precisions_init, dtype=np.float64), self.covariance_type
            )
            covariances = covariances_from_cholesky(chol, self.covariance_type)
        return MixtureParams(weights, GaussianParams(self.covariance_type, means, covariances,
                                                     chol))

    def _make_family(self, n_features, prior=None):
        return GaussianFamily(self.covariance_type, self.reg_covar, prior,
                              self._component_frozen())

    def _build_family(self, driver, rng):
        """The family to fit with: with a component prior, its unset fields come from data."""
        given = (self.mean_prior, self.mean_precision_prior, self.degrees_of_freedom_prior,
                 self.covariance_prior)
        prior = None if all(v is None for v in given) else self._prior(driver, rng)
        return self._make_family(driver.n_features, prior)

    def _prior(self, driver, rng):
        t, d = self.covariance_type, driver.n_features
        sample, weights, _ = driver.sample_rows(rng, MAX_SAMPLE)
        sample = fill_missing(sample)  # nan_policy="marginalize": complete rows for defaults
        mean = np.average(sample, axis=0, weights=weights)
        cov = np.atleast_2d(np.cov(sample, rowvar=False, aweights=weights))
        default_psi = {"full": cov, "tied": cov, "diag": np.diag(cov).copy(),
                       "spherical": np.diag(cov).mean()}[t]
        prior = GaussianPrior(
            mean=_given(self.mean_prior, mean, "mean_prior", (d,)),
            mean_precision=float(1.0 if self.mean_precision_prior is None
                                 else self.mean_precision_prior),
            degrees_of_freedom=float(d if self.degrees_of_freedom_prior is None
                                     else self.degrees_of_freedom_prior),
            covariance=_given(self.covariance_prior, default_psi, "covariance_prior",
                              np.shape(default_psi)),
        )
        # full, tied: a proper inverse-Wishart; diag: the MAP precision (s0 + nu - 1) / (...) of
        # an empty component is positive; spherical: a proper Gamma whose MAP precision
        # (d s0 + nu + d - 2) / (...) is positive
        low = {"full": d - 1, "tied": d - 1, "diag": 1, "spherical": max(0, 2 - d)}[t]
        if not prior.mean_precision > 0:
            raise ValueError(f"mean_precision_prior must be > 0, got {prior.mean_precision!r}")
        if not prior.degrees_of_freedom > low:
            raise ValueError(f"degrees_of_freedom_prior must be > {low} for covariance_type="
                             f"{t!r}, got {prior.degrees_of_freedom!r}")
        psi = np.atleast_2d(prior.covariance) if t in ("full", "tied") else prior.covariance
        if t in ("full", "tied") and (not np.allclose(psi, psi.T)
                                      or (np.linalg.eigvalsh(psi) <= 0).any()):
            raise ValueError("covariance_prior must be symmetric positive-definite")
        if t not in ("full", "tied") and not (np.asarray(psi) > 0).all():
            raise ValueError("covariance_prior must be positive")
        return prior

    def _fitted_params(self):
        return MixtureParams(self.weights_, GaussianParams(
            self.covariance_type, self.means_, self.covariances_, self.precisions_cholesky_)
        ).astype(np.float64)

    def _set_params(self, params):
        components = params.components
        self.weights_ = params.weights
        self.means_ = components.means
        self.covariances_ = components.covariances
        self.precisions_cholesky_ = components.precisions_cholesky
        self.precisions_ = precisions_from_cholesky(components.precisions_cholesky,
                                                    self.covariance_type)



def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _given(value, default, name, shape):
    """A user's prior parameter as a float64 array of ``shape``, or the data-based default."""
    if value is None:
        return np.asarray(default, dtype=np.float64)
    return _init_array(name, value, shape)


def _init_array(name, value, shape):
    """A user's parameter array as float64 of ``shape``, finite and real (a complex value
    would otherwise be cast silently, dropping its imaginary part); errors in scikit-learn's
    words, naming the parameter."""
    array = np.asarray(value)
    if np.iscomplexobj(array):
        raise ValueError(f"Complex data not supported: the parameter '{name}' must be real")
    array = array.astype(np.float64, copy=False)
    if not np.isfinite(array).all():
        what = "NaN" if np.isnan(array).any() else "infinity or a value too large"
        raise ValueError(f"Input contains {what} (the parameter '{name}')")
    if array.shape != shape:
        raise ValueError(f"The parameter '{name}' should have the shape of {shape}, "
                         f"but got {array.shape}")
    return array
