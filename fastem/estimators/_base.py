"""The base of every mixture estimator: scikit-learn's surface over the streaming EM engine.

An estimator only validates arguments, makes a driver for the data (local threads, or Dask), a
family (its components) and the mixture (``fastem.latent.mixture``: the weights), and runs the
EM loop; subclasses (``MixtureModel`` for any family, ``GaussianMixture``,
``BernoulliMixture``, ...) build the family from their own parameters and
name its fitted parameters.
"""
import numbers
import time
import warnings

import numpy as np

from .. import data
from .._base import Estimator, check_common, check_float, check_int, check_str, not_fitted
from .._config import single_threaded_blas
from ..drivers import is_dask_array, make_driver
from ..em import EMResult, FitInterrupted, convergence_warning
from ..frame import Statistics
from ..initialization import INIT_METHODS, initial_params
from ..latent.mixture import Mixture, MixtureParams
from ._online import OnlineMixin

NAN_POLICIES = ("raise", "omit", "marginalize")


def check_random_state(seed):
    """A ``np.random.RandomState`` from None, an int or an existing RandomState (sklearn rules)."""
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if isinstance(seed, numbers.Integral):
        return np.random.RandomState(seed)
    if isinstance(seed, np.random.RandomState):
        return seed
    raise ValueError(f"{seed!r} cannot be used to seed a numpy.random.RandomState instance")


class _MixtureBase(OnlineMixin, Estimator):
    """EM fitting, prediction, scoring, sampling and model files for a mixture of one family.

    A subclass builds its family from its own constructor parameters (:meth:`_make_family`)
    and names its fitted parameters; the family fitted with (data-based prior defaults
    included) is kept as ``family_`` for prediction, model files and ``warm_start``.
    """

    # model files (fastem.io): the fitted state of every mixture, the attributes holding a
    # subclass's fitted parameters, and parameters that are hooks of the running program
    _fitted_state = ("family_", "converged_", "n_iter_", "lower_bound_", "lower_bounds_",
                     "n_features_in_", "n_omitted_rows_", "n_steps_", "stats_nbytes_")
    _fitted_arrays = ("weights_", "params_")
    _unsaved_params = ("callback",)

    def __init__(
        self,
        n_components=1,
        *,
        tol=1e-3,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
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
        frozen=(),
        algorithm="batch",
        batch_size=10_000,
        learning_offset=10.0,
        learning_decay=0.7,
    ):
        self.n_components = n_components
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.n_threads = n_threads
        self.chunk_size = chunk_size
        self.progress = progress
        self.callback = callback
        self.nan_policy = nan_policy
        self.m_step = m_step
        self.m_step_iters = m_step_iters
        self.weight_concentration_prior = weight_concentration_prior
        self.frozen = frozen
        self.algorithm = algorithm
        self.batch_size = batch_size
        self.learning_offset = learning_offset
        self.learning_decay = learning_decay

    # ------------------------------------------------------------------ files
    def save(self, path):
        """Write the fitted model to a ``.npz`` file (atomically, no pickle); returns the path."""
        from ..io import save

        return save(self, path)

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save`; ValueError for a damaged or foreign file, or one
        holding another estimator class."""
        from ..io import load

        model = load(path)
        if not isinstance(model, cls):
            raise ValueError(f"{path!r} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, sample_weight=None):
        """Estimate the parameters by EM, keeping the best of ``n_init`` runs. Returns self.

        ``y``: optional partial labels (scikit-learn's semi-supervised convention), an integer
        array, memmap or ``.npy`` path with one entry per row, -1 for unlabelled rows. A
        labelled row's posterior is clamped to its component (one-hot) and adds
        log(w_k p_k(x)) to the lower bound, the other rows their log p(x). A ``y`` without
        any -1 is a target that this unsupervised estimator ignores, as scikit-learn's do
        (pipelines pass one). A label that the parameters cannot honour (its component
        started with weight zero, e.g. by ``weights_init``, or with zero density on the
        labelled row, e.g. a Poisson rate of zero for a positive count) is a ValueError
        naming the row and the component. ``y`` may be a Dask array for Dask ``X``."""
        with single_threaded_blas():  # small M-step BLAS calls must not leave spinning threads
            try:
                return self._fit(X, sample_weight, y)
            except (FitInterrupted, data.SourceChanged) as interrupt:
                result = interrupt.result
                # keep what was computed (online: the last completed update), then stop
                if result is not None and (result.n_iter or getattr(result, "n_steps", 0)):
                    self._set_result(result, result.params.n_features)
                    warnings.warn(f"{interrupt}; the model holds the parameters of the last "
                                  f"completed iteration ({result.n_iter})", RuntimeWarning,
                                  stacklevel=2)
                raise

    def partial_fit(self, X, y=None, sample_weight=None):
        """One stepwise-EM update from the batch ``X``: scikit-learn's incremental-learning
        contract (see :mod:`fastem.estimators._online`), with the batch's partial labels
        ``y`` and ``nan_policy`` as in :meth:`fit`. Returns self."""
        return self._partial_fit(X, sample_weight, check_random_state(self.random_state), y)

    def _fit(self, X, sample_weight, y=None):
        _, driver = self._prepare(X, sample_weight, reset=True)
        self._set_labels(driver, y)
        self.n_omitted_rows_ = driver.n_omitted
        self._fit_dtype = driver.dtype  # the fitted attributes' (see _set_result)
        rng = check_random_state(self.random_state)
        do_init = not self._continues(reset=True)
        if do_init:  # a warm start continues with the fitted family and its data-based priors
            self.family_ = self._build_family(driver, rng)
        family, latent = self._family(), self._latent()
        best = None
        for init in range(self.n_init if do_init else 1):
            self._say(1, f"Initialization {init}")
            tic = time.perf_counter()
            if do_init:
                params, lower_bound = self._initial_params(latent, family, driver, rng), -np.inf
            else:
                params, lower_bound = self._fitted_params(), self.lower_bound_
            if self.max_iter == 0:
                result = EMResult(params, -np.inf)
            else:
                result = self._run(latent, family, driver, params, rng, lower_bound,
                                   warm=not do_init,
                                   symmetric_start=do_init and self.init_params == "random")
                status = "converged" if result.converged else "did not converge"
                self._say(1, f"Initialization {status}.", verbose_only=1)
                self._say(2, f"Initialization {status}. time lapse "
                             f"{time.perf_counter() - tic:.5f}s\t lower bound "
                             f"{result.lower_bound:.5f}.")
            if best is None or result.lower_bound > best.lower_bound:
                best = result
        if not best.converged and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data.",
                convergence_warning(),
                stacklevel=2,
            )
        self._set_result(best, driver.n_features)
        return self

    def _set_result(self, result, n_features, dtype=None):
        """The fitted attributes from an EM result; its float64 parameters are stored in
        ``dtype``, the data's (by default that of the fit running): float32 data give float32
        ``weights_``, ``means_``, ... as in scikit-learn, other data float64."""
        self._set_params(result.params.astype(dtype or getattr(self, "_fit_dtype", np.float64)))
        self.converged_ = result.converged
        self.n_iter_ = result.n_iter
        self.lower_bound_ = result.lower_bound
        self.lower_bounds_ = list(result.lower_bounds)
        self.n_features_in_ = n_features
        self._set_online_result(result)

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then label every row with its most probable component (a row labelled in
        ``y``: its label, to which the fit clamped it)."""
        predicted = self.fit(X, y, sample_weight=sample_weight).predict(X)
        if is_dask_array(predicted):  # lazy: the labels replace the predictions block by block
            import dask.array as da

            from ..drivers.dask import dask_labels

            labels = dask_labels(y, predicted.shape[0], self.n_components, predicted.chunks[0])
            return predicted if labels is None else da.where(labels >= 0, labels, predicted)
        labels = data.check_labels(y, predicted.shape[0], self.n_components)
        for start in range(0, predicted.shape[0], data.BLOCK_ROWS):
            given = data.block_labels(labels, start, data.BLOCK_ROWS)
            if given is not None:
                rows = predicted[start:start + given.size]
                rows[given >= 0] = given[given >= 0]
        return predicted

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

    def impute(self, X, out=None):
        """``X`` with each missing (NaN) entry replaced by its conditional mean under the
        fitted model, sum_k p(z = k | observed entries) E[x_j | z = k, observed entries]
        (full and tied covariances: the regression on the observed entries; Categorical
        columns: the most probable code; a row with no observed entry: the mixture's mean);
        observed entries are copied. Under any ``nan_policy`` NaN entries are marginalised
        here; infinity raises. Streamed, with ``out`` as for :meth:`predict`: an (n, D)
        float64 array to fill, or a path for a new ``.npy`` file; for a Dask ``X``, a lazy
        Dask array blocked as ``X``."""
        _, driver = self._prepare(X, None, reset=False)
        params = self._fitted_params()
        family = self.family_.marginal()
        packed = self._latent().pack(family, params, driver.dtype)
        return driver.impute(family, packed, params.components, out)

    def score(self, X, y=None, sample_weight=None):
        """Weighted mean log-likelihood per row (streamed; no per-row array); with partial
        labels ``y`` (see :meth:`fit`), labelled rows count log(w_k p_k(x)) of their own
        component, as the fit's lower bound does."""
        _, driver = self._prepare(X, sample_weight, reset=False)
        self._set_labels(driver, y)
        family = self._family()
        packed = self._latent().pack(family, self._fitted_params(), driver.dtype)
        stats, _ = driver.accumulate(family, packed, with_stats=False, nan_policy=self.nan_policy)
        self._warn_omitted(driver.n_omitted)
        view = Statistics(stats, packed.log_norm.shape[0])
        if not view.total > 0:
            raise ValueError("sample_weight sums to zero: no data to fit or score")
        return float(view.log_likelihood / view.total)

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
        return self._latent().sample(self.family_, self._fitted_params(), int(n_samples), rng)

    # ----------------------------------------------------------------- helpers
    def _prepare(self, X, sample_weight, reset):
        """Validate ``X`` (and parameters when fitting) and return it with a driver. Fitting
        checks every row here, in one pass (the support too); scoring and predicting check rows
        in their own pass, so they read the data once."""
        if not reset:
            self._check_fitted()
        self._check_feature_names(X, reset)
        driver = make_driver(X, sample_weight, self.chunk_size, self.n_threads,
                             progress=progress_bars if self.progress else None,
                             min_samples=2 if reset else 1,
                             n_features=self.n_features_in_ if self._continues(reset) else None,
                             estimator=type(self).__name__)
        source = driver.X
        if reset:
            self._data_parameters(driver)
            self._check_parameters(source.shape[1])
            family = self._make_family(source.shape[1])  # its support is checked here
            self._check_rows(driver, family)
        elif self.nan_policy not in NAN_POLICIES:
            raise ValueError(f"nan_policy must be one of {list(NAN_POLICIES)}, got "
                             f"{self.nan_policy!r}")
        elif self.nan_policy == "marginalize":
            self._family()  # ValueError where the fitted family cannot marginalise
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

    def _continues(self, reset):
        """Whether a pass starts from the fitted parameters (predicting, scoring, or a warm
        start), so the data must have the fitted number of columns."""
        return not reset or (self.warm_start and hasattr(self, "converged_"))

    def _check_rows(self, driver, family):
        """Check every row under ``nan_policy``, in one pass: raise at NaN or infinity
        ("raise"), leave such rows out ("omit"), or keep NaN entries as missing values
        ("marginalize": infinity raises, rows with no observed entry are left out, a column
        that is never observed raises); returns the number of rows left out."""
        if self.nan_policy == "raise":
            driver.check_finite(family)
            return 0
        if self.nan_policy == "marginalize":
            count = driver.mark_missing(family.marginal())
        else:
            count = driver.omit_nonfinite(family)
        self._warn_omitted(count)
        return count

    def _set_labels(self, driver, y):
        """Give the ``driver`` the checked partial labels ``y`` (see :meth:`fit`)."""
        driver.set_labels(y, self.n_components)

    def _family(self):
        """The fitted family as the passes run it: its marginal form (NaN entries missing)
        under ``nan_policy="marginalize"``."""
        return self.family_.marginal() if self.nan_policy == "marginalize" else self.family_

    def _warn_omitted(self, count):
        if count:
            what = ("with no observed entry" if self.nan_policy == "marginalize"
                    else "with NaN or infinity")
            warnings.warn(f"{count} rows {what} were omitted", RuntimeWarning, stacklevel=4)

    @staticmethod
    def _n_rows(X):
        return (X if is_dask_array(X) else data.open_source(X)).shape[0]

    def _per_row(self, X, what, out):
        _, driver = self._prepare(X, None, reset=False)
        family = self._family()
        packed = self._latent().pack(family, self._fitted_params(), driver.dtype)
        result = driver.predict(family, packed, {what: out}, self.nan_policy)[what]
        self._warn_omitted(driver.n_omitted)
        return result

    def _check_parameters(self, n_features):
        # scikit-learn's parameters in its words (fastem._base.InvalidParameterError)
        check_int(self, "n_components", 1)
        check_float(self, "tol", 0.0)
        for name, low in (("max_iter", 0), ("n_init", 1), ("verbose_interval", 1)):
            check_int(self, name, low)
        check_str(self, "init_params", INIT_METHODS)
        check_common(self)
        if self.nan_policy not in NAN_POLICIES:
            raise ValueError(f"nan_policy must be one of {list(NAN_POLICIES)}, got "
                             f"{self.nan_policy!r}")
        if self.m_step not in ("exact", "partial"):
            raise ValueError(f"m_step must be 'exact' or 'partial', got {self.m_step!r}")
        check_int(self, "m_step_iters", 1)
        self._check_online_parameters()
        self._check_family_parameters(n_features)

    # ---------------------------------------------------------- family hooks
    # Subclasses build their family from their own parameters and name the fitted parameters;
    # the defaults keep the family's parameters object in ``params_``.
    def _data_parameters(self, driver):
        """Set parameters that a fit reads from the data before anything else (e.g. the
        category counts of ``CategoricalMixture``), through ``driver``."""

    def _make_family(self, n_features):
        """The family for ``n_features`` columns from the constructor parameters (and
        CategoricalMixture's ``n_categories_``, counted as its fit starts); it checks them and
        changes no state."""
        raise NotImplementedError

    def _check_family_parameters(self, n_features):
        self._make_family(n_features)

    def _build_family(self, driver, rng):
        """The family to fit with (subclasses add priors with data-based defaults here)."""
        return self._make_family(driver.n_features)

    def _latent(self):
        """The mixture's weights: Dirichlet prior and frozen weights from the parameters."""
        alpha = self.weight_concentration_prior
        if alpha is not None and not (isinstance(alpha, numbers.Real) and np.isfinite(alpha)
                                      and alpha >= 1):
            raise ValueError("weight_concentration_prior must be a finite number >= 1 (the MAP "
                             f"weights exist), got {alpha!r}")
        return Mixture(1.0 if alpha is None else float(alpha), "weights" in self.frozen)

    def _component_frozen(self):
        """``frozen`` without "weights": the names the family holds fixed."""
        frozen = (self.frozen,) if isinstance(self.frozen, str) else self.frozen
        return tuple(name for name in frozen if name != "weights")

    def _initial_params(self, latent, family, driver, rng):
        return initial_params(self.init_params, latent, family, driver, self.n_components, rng)

    def _fitted_params(self):
        """The fitted parameters in float64, as the engine computes with them."""
        return MixtureParams(self.weights_, self.params_).astype(np.float64)

    def _set_params(self, params):
        self.params_ = params.components
        self.weights_ = params.weights

    def _n_parameters(self):
        self._check_fitted()
        return self._latent().n_parameters(self.family_, self.n_features_in_,
                                           self.n_components)

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


