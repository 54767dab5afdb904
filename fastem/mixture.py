"""scikit-learn compatible mixture estimators over the streaming EM engine."""
import numbers
import time
import warnings

import numpy as np

from . import data
from ._base import Estimator, not_fitted
from ._config import single_threaded_blas
from .driver import is_dask_array, make_driver
from .em import ConvergenceWarning, EMResult, FitInterrupted, run_em
from .families.gaussian import (
    COVARIANCE_TYPES,
    GaussianFamily,
    GaussianParams,
    cholesky_from_precisions,
    covariance_shape,
    covariances_from_cholesky,
    precisions_from_cholesky,
)
from .init import INIT_METHODS, initial_params


def check_random_state(seed):
    """A ``np.random.RandomState`` from None, an int or an existing RandomState (sklearn rules)."""
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if isinstance(seed, numbers.Integral):
        return np.random.RandomState(seed)
    if isinstance(seed, np.random.RandomState):
        return seed
    raise ValueError(f"{seed!r} cannot be used to seed a numpy.random.RandomState instance")


class GaussianMixture(Estimator):
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
    nan_policy : {"raise", "omit"}
        Rows holding NaN or infinity raise a ValueError naming the first one ("raise"), or are
        left out ("omit"): they get zero weight in ``fit`` and ``score`` (counted in
        ``n_omitted_rows_``), and label -1 and NaN log-likelihood and posteriors in predictions.

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
        Weighted mean log-likelihood per sample of the best run, as in scikit-learn.
    lower_bounds_ : list of float
        ``lower_bound`` after every iteration of the best run (never decreasing).
    n_features_in_ : int
    """

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
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.n_threads = n_threads
        self.chunk_size = chunk_size
        self.progress = progress
        self.callback = callback
        self.nan_policy = nan_policy

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, sample_weight=None):
        """Estimate the parameters by EM, keeping the best of ``n_init`` runs. Returns self."""
        with single_threaded_blas():  # small M-step BLAS calls must not leave spinning threads
            try:
                return self._fit(X, sample_weight)
            except FitInterrupted as interrupt:
                if interrupt.result.n_iter:  # keep what was computed, then stop as asked
                    self._set_result(interrupt.result, interrupt.result.params.n_features)
                    warnings.warn(f"{interrupt}; the model holds that iteration's parameters",
                                  RuntimeWarning, stacklevel=2)
                raise

    def _fit(self, X, sample_weight):
        _, driver = self._prepare(X, sample_weight, reset=True)
        self.n_omitted_rows_ = driver.n_omitted
        family = GaussianFamily(self.covariance_type, self.reg_covar)
        rng = check_random_state(self.random_state)
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        best = None
        for init in range(self.n_init if do_init else 1):
            self._say(1, f"Initialization {init}")
            tic = time.perf_counter()
            if do_init:
                params, lower_bound = self._initial_params(family, driver, rng), -np.inf
            else:
                params, lower_bound = self._fitted_params(), self.lower_bound_
            if self.max_iter == 0:
                result = EMResult(params, -np.inf)
            else:
                result = run_em(family, driver, params, tol=self.tol, max_iter=self.max_iter,
                                rng=rng, lower_bound=lower_bound, callback=self._report)
                status = "converged" if result.converged else "did not converge"
                self._say(1, f"Initialization {status}.", verbose_only=1)
                self._say(2, f"Initialization {status}. time lapse "
                             f"{time.perf_counter() - tic:.5f}s\t lower bound {result.lower_bound:.5f}.")
            if best is None or result.lower_bound > best.lower_bound:
                best = result
        if not best.converged and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=2,
            )
        self._set_result(best, driver.n_features)
        return self

    def _set_result(self, result, n_features):
        self._set_params(result.params)
        self.converged_ = result.converged
        self.n_iter_ = result.n_iter
        self.lower_bound_ = result.lower_bound
        self.lower_bounds_ = list(result.lower_bounds)
        self.n_features_in_ = n_features

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then label every row with its most probable component."""
        return self.fit(X, sample_weight=sample_weight).predict(X)

    # --------------------------------------------------------------- prediction
    def predict(self, X, out=None):
        """Most probable component of each row.

        ``out``: an int64 array of shape (n,) to fill, or a path for a new ``.npy`` file
        (memory-mapped, for outputs larger than memory). The same holds for
        :meth:`predict_proba` and :meth:`score_samples`.
        """
        return self._per_row(X, "labels", out)

    def predict_proba(self, X, out=None):
        """Posterior probability p(z = k | x) of each component for each row, (n, K)."""
        return self._per_row(X, "resp", out)

    def score_samples(self, X, out=None):
        """Log-likelihood log p(x) of each row under the model."""
        return self._per_row(X, "log_prob", out)

    def score(self, X, y=None, sample_weight=None):
        """Weighted mean log-likelihood per row (streamed; no per-row array)."""
        _, driver = self._prepare(X, sample_weight, reset=False)
        family = self._family()
        stats, _ = driver.accumulate(family, family.pack(self._fitted_params(), driver.dtype),
                                     with_stats=False)
        return float(stats[0] / stats[1])

    def bic(self, X):
        """Bayesian information criterion on ``X`` (lower is better)."""
        n = self._n_rows(X)
        return -2 * self.score(X) * n + self._n_parameters() * np.log(n)

    def aic(self, X):
        """Akaike information criterion on ``X`` (lower is better)."""
        n = self._n_rows(X)
        return -2 * self.score(X) * n + 2 * self._n_parameters()

    def sample(self, n_samples=1):
        """Draw ``n_samples`` points and their component labels from the fitted model."""
        self._check_fitted()
        if not isinstance(n_samples, numbers.Integral) or n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples!r}. The sampling requires at least "
                "one sample."
            )
        rng = check_random_state(self.random_state)
        return self._family().sample(self._fitted_params(), int(n_samples), rng)

    def save(self, path):
        """Write the fitted model to a ``.npz`` file (atomically, no pickle); returns the path."""
        from .io import save

        return save(self, path)

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save`; ValueError for a damaged or foreign file."""
        from .io import load

        return load(path)

    # ----------------------------------------------------------------- helpers
    def _prepare(self, X, sample_weight, reset):
        """Validate ``X`` (and parameters when fitting) and return it with a driver."""
        if not reset:
            self._check_fitted()
        driver = make_driver(X, sample_weight, self.chunk_size, self.n_threads,
                             progress=progress_bars if self.progress else None,
                             min_samples=2 if reset else 1,
                             n_features=None if reset else self.n_features_in_)
        source = driver.X
        if reset:
            self._check_parameters(source.shape[1])
        elif self.nan_policy not in ("raise", "omit"):
            raise ValueError(f"nan_policy must be 'raise' or 'omit', got {self.nan_policy!r}")
        if self.nan_policy == "raise":
            driver.check_finite()
        else:
            omitted = driver.omit_nonfinite()
            if omitted:
                warnings.warn(f"{omitted} rows with NaN or infinity were omitted", RuntimeWarning,
                              stacklevel=3)
        if driver.sample_weight is not None and not driver.sample_weight.sum() > 0:
            raise ValueError("sample_weight sums to zero: no data to fit or score")
        if reset:
            w = driver.sample_weight
            usable = source.shape[0] if w is None else int(np.count_nonzero(w))
            if usable < self.n_components:
                raise ValueError(
                    "Expected n_samples >= n_components but got n_components = "
                    f"{self.n_components}, n_samples = {usable}"
                    + ("" if w is None else " (rows with positive sample_weight)")
                )
        return source, driver

    @staticmethod
    def _n_rows(X):
        return (X if is_dask_array(X) else data.open_source(X)).shape[0]

    def _per_row(self, X, what, out):
        _, driver = self._prepare(X, None, reset=False)
        family = self._family()
        packed = family.pack(self._fitted_params(), driver.dtype)
        if getattr(driver, "lazy", False):  # Dask: a lazy array of the same per-row output
            if out is not None:
                raise ValueError("out= is not supported for Dask input; store the returned "
                                 "Dask array instead (e.g. with .to_zarr)")
            return driver.predict_lazy(family, packed, what)
        n, k = driver.n_samples, self.n_components
        shape, dtype = {"labels": ((n,), np.intp), "resp": ((n, k), np.float64),
                        "log_prob": ((n,), np.float64)}[what]
        target = data.output_array(out, shape, dtype)
        driver.predict(family, packed, **{what: target})
        return target

    def _check_parameters(self, n_features):
        k = self.n_components
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"n_components must be an integer >= 1, got {k!r}")
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(
                f"covariance_type must be one of {list(COVARIANCE_TYPES)}, got "
                f"{self.covariance_type!r}"
            )
        if self.nan_policy not in ("raise", "omit"):
            raise ValueError(f"nan_policy must be 'raise' or 'omit', got {self.nan_policy!r}")
        if self.init_params not in INIT_METHODS:
            raise ValueError(
                f"init_params must be one of {list(INIT_METHODS)}, got {self.init_params!r}"
            )
        for name, low in (("tol", 0.0), ("reg_covar", 0.0)):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or not np.isfinite(value) or value < low:
                raise ValueError(f"{name} must be a finite number >= {low}, got {value!r}")
        for name, low in (("max_iter", 0), ("n_init", 1), ("verbose_interval", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        self._check_inits(n_features)

    def _check_inits(self, d):
        k, t = self.n_components, self.covariance_type
        if self.weights_init is not None:
            w = _init_array("weights_init", self.weights_init, (k,))
            if (w < 0).any() or (w > 1).any():
                raise ValueError("weights_init must lie in [0, 1], got "
                                 f"min {w.min():.5f}, max {w.max():.5f}")
            if not np.isclose(w.sum(), 1.0, rtol=0, atol=1e-8):
                raise ValueError(f"weights_init must sum to 1, got sum(weights_init) = {w.sum():.5f}")
        if self.means_init is not None:
            _init_array("means_init", self.means_init, (k, d))
        if self.precisions_init is not None:
            p = _init_array("precisions_init", self.precisions_init, covariance_shape(t, k, d))
            if t in ("full", "tied"):
                stack = p if t == "full" else p[None]
                if not np.allclose(stack, stack.transpose(0, 2, 1)):
                    raise ValueError("precisions_init must be symmetric")
                if (np.linalg.eigvalsh(stack) <= 0).any():
                    raise ValueError("precisions_init must be positive-definite")
            elif (p <= 0).any():
                raise ValueError("precisions_init must be positive")

    def _initial_params(self, family, driver, rng):
        given = (self.weights_init, self.means_init, self.precisions_init)
        if any(v is None for v in given):
            params = initial_params(self.init_params, family, driver, self.n_components, rng)
            weights, means, covariances, chol = (
                params.weights, params.means, params.covariances, params.precisions_cholesky
            )
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, dtype=np.float64).copy()
        if self.means_init is not None:
            means = np.asarray(self.means_init, dtype=np.float64).copy()
        if self.precisions_init is not None:
            chol = cholesky_from_precisions(
                np.asarray(self.precisions_init, dtype=np.float64), self.covariance_type
            )
            covariances = covariances_from_cholesky(chol, self.covariance_type)
        return GaussianParams(self.covariance_type, weights, means, covariances, chol)

    def _family(self):
        return GaussianFamily(self.covariance_type, self.reg_covar)

    def _fitted_params(self):
        return GaussianParams(self.covariance_type, self.weights_, self.means_,
                              self.covariances_, self.precisions_cholesky_)

    def _set_params(self, params):
        self.weights_ = params.weights
        self.means_ = params.means
        self.covariances_ = params.covariances
        self.precisions_cholesky_ = params.precisions_cholesky
        self.precisions_ = precisions_from_cholesky(params.precisions_cholesky,
                                                    self.covariance_type)

    def _n_parameters(self):
        self._check_fitted()
        return self._family().n_parameters(self.n_features_in_, self.n_components)

    def _check_fitted(self):
        if not hasattr(self, "n_features_in_"):
            raise not_fitted(self)

    def _say(self, level, message, verbose_only=None):
        if self.verbose >= level and (verbose_only is None or self.verbose == verbose_only):
            print(message)

    def _report(self, result, change, seconds):
        if result.n_iter % self.verbose_interval == 0:
            self._say(1, f"  Iteration {result.n_iter}", verbose_only=1)
            self._say(2, f"  Iteration {result.n_iter}\t time lapse {seconds:.5f}s\t ll change "
                         f"{change:.5f}")
        if self.callback is not None:
            self._set_result(result, result.params.n_features)
            self.callback(self)


def progress_bars(desc, total):
    """A tqdm bar over the rows of one pass."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="rows", unit_scale=True, leave=False,
                dynamic_ncols=True)


def _init_array(name, value, shape):
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"The parameter '{name}' should have the shape of {shape}, "
                         f"but got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"The parameter '{name}' contains NaN or infinity")
    return array
