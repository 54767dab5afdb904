"""hmmlearn's hidden Markov model classes on fastem's engine.

``GaussianHMM``, ``CategoricalHMM`` and ``PoissonHMM`` take hmmlearn's constructor parameters
and give its fitted attributes and methods (``from fastem import hmm`` replaces
``from hmmlearn import hmm``); :class:`HMM` takes any fastem family as emissions. As in
hmmlearn, the fitted parameters are the public attributes (``startprob_``, ``transmat_``,
``means_``, ...): a user may set them before ``fit`` (leaving their letter out of
``init_params``) or instead of it, and every method reads them.

Fitting runs ``fastem.em.run_em`` over the hidden Markov chain (``fastem.latent.hmm``) and a
:class:`~fastem.drivers.sequences.SequenceDriver`: sequences over threads, bitwise identical
results for any ``n_threads``. ``monitor_.history`` holds the log-likelihood of each E-step
(the log-posterior under non-flat start and transition priors), as hmmlearn's does.

Every class also learns online: ``partial_fit(X, lengths=None)`` makes one stepwise-EM update
from a batch of sequences, and ``fit(X, lengths, algorithm="stepwise" | "incremental",
batch_size)`` makes an M-step per block of whole sequences (``fastem.estimators._hmm_online``,
over ``fastem.online``, the code the mixtures' online EM runs), with step sizes ``(t + learning_offset) ** -learning_decay``
set by the constructor parameters ``learning_offset`` (tau >= 0, default 10) and
``learning_decay`` (kappa in (0.5, 1], default 0.7), named as in scikit-learn's
``LatentDirichletAllocation``.
"""
import logging
import sys
import warnings
from collections import deque

import numpy as np

from .. import data
from .._base import Estimator, not_fitted
from .._config import single_threaded_blas
from ..drivers import is_dask_array, make_driver
from ..drivers.local import LocalDriver
from ..drivers.sequences import SequenceDriver
from ..em import FitInterrupted, run_em
from ..families.base import check_distributions
from ..families.expfam import Categorical, ExpFamParams, Poisson, ProductFamily
from ..families.gaussian import COVARIANCE_TYPES, GaussianFamily, covariance_shape
from ..families.gaussian_hmmlearn import HMMLearnGaussianFamily, hmmlearn_params
from ..families.gmm_hmmlearn import GMMHMMLearnFamily, GMMParams, default_priors
from ..families.multinomial import MultinomialFamily, MultinomialParams
from ..initialization import MAX_SAMPLE, fill_missing, initial_params, kmeans
from ..latent.hmm import HiddenMarkov, HMMParams, check_chain
from ..latent.mixture import Mixture
from ._base import check_random_state
from ._hmm_online import HMMOnlineMixin

# hmmlearn's warnings about a fit (parameters overwritten by init_params, too little data, a
# decreasing log-likelihood, states never left) go to a logger, as hmmlearn's do ("hmmlearn.base"),
# not through warnings.warn: scripts that run with -W error or capture the log keep working
_log = logging.getLogger(__name__)
_PRECISION = np.finfo(float).eps ** 0.5  # hmmlearn's slack before a decrease is logged


class ConvergenceMonitor:
    """hmmlearn's monitor: ``history`` of the objective, ``iter`` and ``converged``."""

    def __init__(self, tol, n_iter, verbose):
        self.tol, self.n_iter, self.verbose = tol, n_iter, verbose
        self.history = deque()
        self.iter = 0

    def __repr__(self):
        return (f"ConvergenceMonitor(history={list(self.history)}, iter={self.iter}, "
                f"n_iter={self.n_iter}, tol={self.tol}, verbose={self.verbose})")

    def _reset(self):
        """Forget the history (``fit`` starts with it)."""
        self.iter = 0
        self.history.clear()

    def report(self, value):
        if self.verbose:
            delta = value - self.history[-1] if self.history else np.nan
            print(f"{self.iter + 1:>10d} {value:>16.8f} {delta:>+16.8f}", file=sys.stderr)
        self.history.append(value)
        self.iter += 1

    @property
    def converged(self):
        """Whether EM stopped on ``tol`` or reached ``n_iter`` (hmmlearn's definition)."""
        return self.iter == self.n_iter or (
            len(self.history) >= 2 and self.history[-1] - self.history[-2] < self.tol)


class _MonitorRule:
    """``fastem.em.run_em``'s stopping rule: the monitor's ``converged``, whichever monitor
    ``monitor_`` holds (fastem's, hmmlearn's or a user's subclass of either)."""

    def __init__(self, monitor):
        self.monitor = monitor

    def done(self, change):
        return bool(self.monitor.converged)


class _HMMBase(HMMOnlineMixin, Estimator):
    """EM, scoring, decoding and sampling of a hidden Markov model over one family.

    ``partial_fit`` (:class:`~._hmm_online.HMMOnlineMixin`) makes stepwise-EM updates from
    batches of sequences. A subclass names its emission letters (``_emission_letters``), builds
    its family (:meth:`_make_family`), turns its attributes into the family's parameters and
    back (:meth:`_components`, :meth:`_set_components`) and initialises them
    (:meth:`_init_emissions`).
    """

    _emission_letters = ""
    _sample_dtype = np.float64  # hmmlearn's dtype of sampled rows
    # model files (fastem.io): the fitted state, the chain and each class's emission attributes
    _fitted_state = ("n_features_in_", "_monitor_record")
    _fitted_arrays = ("startprob_", "transmat_")
    _unsaved_params = ()

    def __init__(self, n_components=1, startprob_prior=1.0, transmat_prior=1.0,
                 algorithm="viterbi", random_state=None, n_iter=10, tol=1e-2, verbose=False,
                 params="st", init_params="st", implementation="log", n_threads=None,
                 chunk_size=None, nan_policy="raise", learning_offset=10.0, learning_decay=0.7):
        self.n_components = n_components
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.algorithm = algorithm
        self.random_state = random_state
        self.n_iter = n_iter
        self.tol = tol
        self.verbose = verbose
        self.params = params
        self.init_params = init_params
        self.implementation = implementation  # accepted: one scaled kernel serves both
        self.n_threads = n_threads
        self.chunk_size = chunk_size
        self.nan_policy = nan_policy
        self.learning_offset = learning_offset
        self.learning_decay = learning_decay
        # as hmmlearn: there before fit, so that a user may replace it by a subclass
        self.monitor_ = ConvergenceMonitor(tol, n_iter, verbose)

    # ------------------------------------------------------------ pieces
    def _letters(self, name):
        value = getattr(self, name)
        unknown = sorted(set(value) - set("st" + self._emission_letters))
        if unknown:
            raise ValueError(f"{name}={value!r} holds unknown letter(s) {unknown}; valid are "
                             f"{'st' + self._emission_letters!r}")
        return value

    def _latent(self):
        params = self._letters("params")
        frozen = [name for letter, name in (("s", "startprob"), ("t", "transmat"))
                  if letter not in params]
        if not set(self._emission_letters) & set(params):
            frozen.append("emissions")
        return HiddenMarkov(self.startprob_prior, self.transmat_prior, frozen)

    def _driver(self, X, lengths, fitting=False):
        """A sequence driver over ``X``: on its cluster for a Dask array (sequences spread
        over the workers), else on this machine."""
        self._check_feature_names(X, reset=fitting)
        dask = is_dask_array(X)
        source = X if dask else data.open_source(X)
        data.check_shape(source, type(self).__name__, n_features=None if fitting
                         else getattr(self, "n_features_in_", None))
        if dask:
            from ..drivers.dask_sequences import DaskSequenceDriver

            driver = DaskSequenceDriver(self._prepare(source), lengths, self.chunk_size,
                                        self.n_threads)
        else:
            driver = SequenceDriver(self._prepare(source), lengths, self.chunk_size,
                                    self.n_threads)
        if fitting:  # before the family is made: some families are sized by it
            self.n_features_in_ = driver.n_features
        return driver

    def _check_rows(self, driver, family, fitting=False):
        """One pass over the rows, returning the family the passes run. Under
        ``nan_policy="raise"`` any NaN or infinity is an error; under "omit" a row that is
        all NaN is a missing observation (density one, no emission statistics) and any other
        non-finite row an error; under "marginalize" NaN entries are missing at random (the
        family's marginal form: each row's emission density is that of its observed entries,
        the M-step takes the missing entries' conditional expectations), a row that is all
        NaN is a missing observation, infinity is an error and so is, when ``fitting``, a
        column that is NaN in every row. Values outside the family's support are errors. Each
        names the row."""
        if self.nan_policy == "raise":
            driver.check_finite(family)
        elif self.nan_policy == "omit":
            driver.check_missing(family)
        elif self.nan_policy == "marginalize":
            family = family.marginal()  # ValueError where the family cannot
            driver.mark_missing(family, every_column=fitting)
        else:
            raise ValueError("nan_policy must be 'raise', 'omit' or 'marginalize', got "
                             f"{self.nan_policy!r}")
        return family

    def _prepare(self, source):
        """The source as the family reads it (CategoricalHMM checks its codes' column)."""
        return source

    def _hmm_params(self):
        if not hasattr(self, "startprob_"):
            raise not_fitted(self)
        startprob, transmat = check_chain(self.startprob_, self.transmat_, self.n_components)
        return HMMParams(startprob, transmat, self._components())

    def _needs_init(self, letter, name):
        """Whether the parameter ``name`` starts from the data: its letter is in
        ``init_params`` (overwriting a value the user set, which is logged as hmmlearn does),
        or it is not set."""
        if letter not in self._letters("init_params"):
            return not hasattr(self, name)
        if hasattr(self, name):
            _log.warning("Even though the %r attribute is set, it will be overwritten during "
                         "initialization because 'init_params' contains %r",
                         name.lstrip("_"), letter)
        return True

    # ------------------------------------------------------------ model files
    def _check_fitted(self):
        if not all(hasattr(self, name) for name in self._fitted_state + self._fitted_arrays):
            raise not_fitted(self)

    @property
    def _monitor_record(self):
        """``monitor_``'s ``iter`` and ``history``, as model files keep them (so a loaded
        model still tells whether its fit converged)."""
        return (int(self.monitor_.iter), [float(value) for value in self.monitor_.history])

    @_monitor_record.setter
    def _monitor_record(self, record):
        n_iter, history = record
        if not (isinstance(n_iter, int) and n_iter >= 0 and isinstance(history, list)
                and all(isinstance(value, float) for value in history)):
            raise ValueError(f"monitor record {record!r} is not an iteration count and a "
                             "list of log-likelihoods")
        self.monitor_.iter = n_iter
        self.monitor_.history = deque(history)

    def _check_loaded(self):
        """ValueError unless a loaded model is valid: finite arrays, the checks every method
        runs (chain shapes and sums, the emissions' own) and the emissions' width. The
        attributes stay as stored, bit for bit."""
        for name in self._fitted_arrays:
            value = getattr(self, name)
            if isinstance(value, np.ndarray) and not np.isfinite(value).all():
                raise ValueError(f"{name} contains NaN or infinity")
        width = self._hmm_params().components.n_features
        if width != self.n_features_in_:
            raise ValueError(f"emission parameters for {width} features, n_features_in_ is "
                             f"{self.n_features_in_}")

    # ------------------------------------------------------------ fitting
    def fit(self, X, lengths=None, y=None, algorithm="batch", batch_size=10_000):
        """Estimate the parameters by EM (Baum-Welch) from ``X`` (n_samples, n_features), cut
        into sequences by ``lengths`` (their sum is n_samples; None: one sequence).

        ``y``: optional partial labels, an integer array, memmap or ``.npy`` path with one
        state per row, -1 where the state is unknown (scikit-learn's semi-supervised
        convention; a ``y`` without any -1 is ignored, as by the mixtures). A labelled row's
        state is clamped: every other state's emission density is zero there, so
        forward-backward gives it a one-hot posterior and ``monitor_.history`` holds
        log p(X, labelled states). A label that the model cannot honour (its state cannot
        emit the row, or cannot be reached from the labels and transitions before it) makes
        the log-likelihood -inf: ValueError naming the sequence's first row.

        ``algorithm="stepwise"`` or ``"incremental"``: online EM with an M-step after every
        block of whole sequences of at most ``batch_size`` rows (a longer sequence alone);
        see :mod:`fastem.estimators._hmm_online`."""
        self._check_algorithm(X, algorithm, batch_size)
        # NumPy's BLAS calls around the kernels (the rows' check, the start, small M-step
        # solves) must not leave threads spinning beside the kernels' (as for mixtures)
        with single_threaded_blas():
            driver, family, params = self._start(X, lengths, y)
            monitor = self.monitor_  # hmmlearn's, or a user's subclass; the estimator's settings
            monitor.tol, monitor.n_iter, monitor.verbose = self.tol, self.n_iter, self.verbose
            monitor._reset()
            total = float(driver.n_samples - driver.n_omitted)  # the rows with emissions

            def report(result, change, seconds):
                value, history = result.lower_bound * total, self.monitor_.history
                if algorithm == "batch" and history and value - history[-1] < -_PRECISION:
                    _log.warning(f"Model is not converging.  Current: {value} is not greater "
                                 f"than {history[-1]}. Delta is {value - history[-1]}")
                self.monitor_.report(value)

            try:
                result = self._run(algorithm, batch_size, self._latent(), family, driver,
                                   params, tol=self.tol / total, max_iter=self.n_iter,
                                   rng=check_random_state(self.random_state), callback=report,
                                   rule=_MonitorRule(monitor))
            except FitInterrupted as interrupt:  # Ctrl-C: keep the last completed iteration
                if interrupt.result.n_iter or getattr(interrupt.result, "n_steps", 0):
                    self._set_params(interrupt.result.params)
                    warnings.warn(f"{interrupt}; the model holds that iteration's parameters",
                                  RuntimeWarning, stacklevel=2)
                raise
        self._set_params(result.params)
        if (self.transmat_.sum(axis=1) == 0).any():
            _log.warning("Some rows of transmat_ have zero sum because no transition from the "
                         "state was ever observed.")
        return self

    def _start(self, X, lengths, y=None):
        """What a fit (and ``partial_fit``'s first batch) starts from: ``(driver over X's
        checked rows, with the labels ``y`` if any, family, initial parameters)``, the
        ``init_params`` letters initialised and the other parameters as given."""
        self._letters("params")
        self._data_parameters(X)
        driver = self._driver(X, lengths, fitting=True)
        driver.set_labels(y, self.n_components)
        family = self._check_rows(driver, self._make_family(), fitting=True)
        self._initialize(driver, family)
        params = self._hmm_params()
        _check_width(params, driver)
        return driver, family, params

    def _data_parameters(self, X):
        """Set what a fit reads from the data before anything else (CategoricalHMM's
        ``n_features``, MultinomialHMM's ``n_trials``)."""

    def _run(self, algorithm, batch_size, latent, family, driver, params, **options):
        """EM by ``algorithm``: batch (``run_em`` with the class's M-step options), or online
        (:meth:`_run_online`)."""
        if algorithm == "batch":
            return run_em(latent, family, driver, params, **options, **self._m_step_options())
        return self._run_online(algorithm, batch_size, latent, family, driver, params, **options)

    def _m_step_options(self):
        """``run_em``'s M-step keywords (exact M-steps unless a subclass offers others)."""
        return {}

    def _initialize(self, driver, family):
        """Set the parameters that start from the data (:meth:`_needs_init`), as hmmlearn
        does, and log hmmlearn's warning when the rows hold fewer values than the parameters
        that ``params`` fits."""
        rng = check_random_state(self.random_state)
        init = np.full(self.n_components, 1.0 / self.n_components)
        if self._needs_init("s", "startprob_"):
            self.startprob_ = rng.dirichlet(init)
        if self._needs_init("t", "transmat_"):
            self.transmat_ = rng.dirichlet(init, size=self.n_components)
        self._init_emissions(driver, family)
        k, values = self.n_components, driver.n_samples * driver.n_features
        scalars = {"s": k - 1, "t": k * (k - 1), **self._emission_scalars(family, driver)}
        fitted = sum(scalars.get(letter, 0) for letter in self._letters("params"))
        if values < fitted:
            _log.warning("Fitting a model with %d free scalar parameters with only %d data "
                         "points will result in a degenerate solution.", fitted, values)

    def _emission_scalars(self, family, driver):
        """hmmlearn's count of the emissions' free scalars by ``params`` letter (its
        ``_get_n_fit_scalars_per_param``); a single letter takes the family's count."""
        return {self._emission_letters: family.n_parameters(driver.n_features,
                                                            self.n_components)}

    def _init(self, X, lengths=None):
        """hmmlearn's ``_init``: set the parameters that ``fit`` would start from X with (the
        ``init_params`` letters, and those not set), checking X as ``fit`` does; for code
        written against hmmlearn's private methods. As there, ``lengths`` is not read (the
        starting parameters do not depend on it)."""
        with single_threaded_blas():
            self._start(X, None)

    def _check(self):
        """hmmlearn's ``_check``: ValueError unless the parameters set are valid (the checks
        every method runs before reading them)."""
        self._make_family()
        self._hmm_params()

    def _check_and_set_n_features(self, X):
        """hmmlearn's private ``_check_and_set_n_features(X)``, for code written against it:
        ValueError ("Unexpected number of dimensions") when the column count of the array
        ``X`` differs from ``n_features`` once that is set, else sets it; CategoricalHMM and
        MultinomialHMM add hmmlearn's checks of their symbols. fastem's own methods check X
        (every source kind, block by block) without it."""
        _, n_features = np.shape(X)
        if hasattr(self, "n_features"):
            if self.n_features != n_features:
                raise ValueError(f"Unexpected number of dimensions, got {n_features} but "
                                 f"expected {self.n_features}")
        else:
            self.n_features = n_features

    def _set_params(self, params):
        self.startprob_, self.transmat_ = params.startprob, params.transmat
        self._set_components(params.components)

    # ------------------------------------------------------------ inference
    def _inference(self, X, lengths):
        driver, family, params = self._checked(X, lengths)
        return driver, family, self._latent().pack(family, params, driver.dtype)

    def _checked(self, X, lengths):
        """``(driver over X's checked rows, family, parameters)`` for a fitted model: the
        column count, ``nan_policy`` and the family's support checked."""
        params = self._hmm_params()
        driver = self._driver(X, lengths)
        _check_width(params, driver)
        with single_threaded_blas():  # the rows' check: no BLAS threads left spinning
            family = self._check_rows(driver, self._make_family())
        return driver, family, params

    def score_samples(self, X, lengths=None, out=None):
        """``(log p(X), posteriors (n_samples, n_components))``. ``out``: a float64 array of
        that shape to fill, or a path for a new ``.npy`` file (memory-mapped, written
        atomically), so posteriors larger than memory stream to disk; the same holds for
        :meth:`predict_proba`, and for the states of :meth:`predict` and :meth:`decode`."""
        driver, family, packed = self._inference(X, lengths)

        def fill(gamma):
            def write(start, rows):
                gamma[start:start + rows.shape[0]] = rows
            return float(driver.posteriors(family, packed, write).sum())

        return data.write_per_row(out, (driver.n_samples, self.n_components), np.float64, fill,
                                  inputs=(driver.X, X))

    def score(self, X, lengths=None):
        """log p(X) under the model (summed over sequences)."""
        driver, family, packed = self._inference(X, lengths)
        return float(driver.score(family, packed).sum())

    def predict_proba(self, X, lengths=None, out=None):
        """Posterior state probabilities of each row (n_samples, n_components)."""
        return self.score_samples(X, lengths, out)[1]

    def decode(self, X, lengths=None, algorithm=None, out=None):
        """``(log_prob, state_sequence)``: Viterbi's best path and its log p(X, path), or with
        ``algorithm="map"`` each row's most probable state and (as hmmlearn) the sum of those
        states' posteriors. Both stream: Viterbi is checkpointed over a sequence longer than
        a block (its back-pointers recomputed segment by segment from the end)."""
        algorithm = self.algorithm if algorithm is None else algorithm
        if algorithm not in ("viterbi", "map"):
            raise ValueError(f"Unknown decoder {algorithm!r}; use 'viterbi' or 'map'")
        driver, family, packed = self._inference(X, lengths)

        def fill(states):
            if algorithm == "viterbi":
                return driver.viterbi(family, packed, states)
            totals = {}  # by first row: pieces may come from two threads in any order

            def write(start, gamma):
                states[start:start + gamma.shape[0]] = gamma.argmax(axis=1)
                totals[start] = float(gamma.max(axis=1).sum())
            driver.posteriors(family, packed, write)
            return sum(totals[start] for start in sorted(totals))

        return data.write_per_row(out, (driver.n_samples,), np.intp, fill, inputs=(driver.X, X))

    def predict(self, X, lengths=None, out=None):
        """The most likely state of each row (by ``algorithm``)."""
        return self.decode(X, lengths, out=out)[1]

    def sample(self, n_samples=1, random_state=None, currstate=None):
        """``(X, state_sequence)``: ``n_samples`` rows of one sequence (from ``currstate``)."""
        params = self._hmm_params()
        rng = check_random_state(self.random_state if random_state is None else random_state)
        X, states = self._latent().sample(self._make_family(), params, n_samples, rng,
                                          currstate)
        return X.astype(self._sample_dtype), states

    def _n_parameters(self):
        """Free parameters of the model, fitted or kept by ``params`` alike (as hmmlearn
        counts them)."""
        params = self._hmm_params()
        return self._latent().n_parameters(self._make_family(), params.components.n_features,
                                           self.n_components)

    def aic(self, X, lengths=None):
        """-2 log p(X) + 2 (free parameters)."""
        return -2 * self.score(X, lengths) + 2 * self._n_parameters()

    def bic(self, X, lengths=None):
        """-2 log p(X) + (free parameters) log n_samples."""
        n_samples = data.open_source(X).shape[0]
        return -2 * self.score(X, lengths) + self._n_parameters() * np.log(n_samples)

    def get_stationary_distribution(self):
        """The stationary distribution of ``transmat_`` (its left eigenvector for 1)."""
        values, vectors = np.linalg.eig(np.asarray(self.transmat_).T)
        v = np.real(vectors[:, np.argmax(np.real(values))])
        return v / v.sum()


class GaussianHMM(_HMMBase):
    """Hidden Markov model with Gaussian emissions (hmmlearn's parameters and attributes).

    ``covars_`` reads as full matrices (n_components, n_features, n_features) for every
    ``covariance_type``, and is set in the type's own shape: (n_components,) spherical,
    (n_components, n_features) diag, (n_components, n_features, n_features) full,
    (n_features, n_features) tied.
    """

    _emission_letters = "mc"
    _fitted_state = _HMMBase._fitted_state + ("n_features",)
    _fitted_arrays = _HMMBase._fitted_arrays + ("means_", "_covars_")

    def __init__(self, n_components=1, covariance_type="diag", min_covar=1e-3,
                 startprob_prior=1.0, transmat_prior=1.0, means_prior=0, means_weight=0,
                 covars_prior=1e-2, covars_weight=1, algorithm="viterbi", random_state=None,
                 n_iter=10, tol=1e-2, verbose=False, params="stmc", init_params="stmc",
                 implementation="log", n_threads=None, chunk_size=None,
                 nan_policy="raise", learning_offset=10.0, learning_decay=0.7):
        super().__init__(n_components, startprob_prior, transmat_prior, algorithm,
                         random_state, n_iter, tol, verbose, params, init_params,
                         implementation, n_threads, chunk_size, nan_policy, learning_offset,
                         learning_decay)
        self.covariance_type = covariance_type
        self.min_covar = min_covar
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight

    @property
    def covars_(self):
        c, t = self._covars_, self.covariance_type
        k = self.n_components
        if t == "full":
            return c
        if t == "tied":
            return np.broadcast_to(c, (k,) + c.shape).copy()
        d = self.means_.shape[1]
        if t == "spherical" and c.size == k:  # also hmmlearn's (K, 1, 1, 1) (its issue 385)
            c = c.reshape(k)
        diag = np.broadcast_to(c[:, None], (k, d)) if t == "spherical" else c
        return np.einsum("ki,ij->kij", diag, np.eye(d))

    @covars_.setter
    def covars_(self, value):
        self._covars_ = np.asarray(value, dtype=np.float64).copy()

    def _frozen(self):
        params = self._letters("params")
        return [name for letter, name in (("m", "means"), ("c", "covariances"))
                if letter not in params]

    def _make_family(self):
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {list(COVARIANCE_TYPES)}, got "
                             f"{self.covariance_type!r}")
        return HMMLearnGaussianFamily(self.covariance_type, self.means_prior, self.means_weight,
                                      self.covars_prior, self.covars_weight, self._frozen())

    def _components(self):
        t, k = self.covariance_type, self.n_components
        means = np.asarray(self.means_, dtype=np.float64)
        d = getattr(self, "n_features_in_", means.shape[-1])
        if means.shape != (k, d):
            raise ValueError(f"means_ must have shape (n_components, n_features) = ({k}, {d}), "
                             f"got {means.shape}")
        covars = _checked_covars(t, self._covars_, k, d)
        try:
            return hmmlearn_params(t, means, covars)
        except ValueError:
            raise ValueError(f"{t!r} covars must be {_COVARS_DOMAIN[t]}") from None

    def _set_components(self, components):
        self.means_, self._covars_ = components.means, components.covariances

    def _emission_scalars(self, family, driver):
        k, d = self.n_components, driver.n_features
        return {"m": k * d, "c": {"spherical": k, "diag": k * d, "full": k * d * (d + 1) // 2,
                                  "tied": d * (d + 1) // 2}[self.covariance_type]}

    def _init_emissions(self, driver, family):
        self.n_features = driver.n_features  # as hmmlearn sets it
        if self._needs_init("m", "means_"):
            rng = np.random.default_rng(check_random_state(self.random_state).randint(2**31))
            mixture = initial_params("kmeans", Mixture(),
                                     _as_driver_reads(GaussianFamily("spherical"), driver),
                                     _unweighted(driver), self.n_components, rng)
            self.means_ = mixture.components.means
        if self._needs_init("c", "_covars_"):
            mean, cov = _moments(driver)
            cv = cov + self.min_covar * np.eye(driver.n_features)
            t, k = self.covariance_type, self.n_components
            self._covars_ = {"full": lambda: np.repeat(cv[None], k, axis=0), "tied": lambda: cv,
                             "diag": lambda: np.repeat(np.diag(cv)[None], k, axis=0),
                             "spherical": lambda: np.full(k, np.diag(cv).mean())}[t]()


class CategoricalHMM(_HMMBase):
    """Hidden Markov model with categorical emissions: ``X`` is one column of integer codes
    0 .. n_features - 1; ``emissionprob_`` (n_components, n_features)."""

    _emission_letters = "e"
    _sample_dtype = np.int64
    _fitted_arrays = _HMMBase._fitted_arrays + ("emissionprob_",)

    def __init__(self, n_components=1, startprob_prior=1.0, transmat_prior=1.0,
                 emissionprob_prior=1.0, n_features=None, algorithm="viterbi",
                 random_state=None, n_iter=10, tol=1e-2, verbose=False, params="ste",
                 init_params="ste", implementation="log", n_threads=None, chunk_size=None,
                 nan_policy="raise", learning_offset=10.0, learning_decay=0.7):
        super().__init__(n_components, startprob_prior, transmat_prior, algorithm,
                         random_state, n_iter, tol, verbose, params, init_params,
                         implementation, n_threads, chunk_size, nan_policy, learning_offset,
                         learning_decay)
        self.emissionprob_prior = emissionprob_prior
        self.n_features = n_features

    def _check_and_set_n_features(self, X):
        """hmmlearn's: ValueError unless X holds non-negative integer codes below
        ``n_features`` (when set, else set to one past the largest)."""
        X = np.asarray(X)
        if not np.issubdtype(X.dtype, np.integer):
            raise ValueError("Symbols should be integers")
        if X.min() < 0:
            raise ValueError("Symbols should be nonnegative")
        if self.n_features is not None:
            if self.n_features - 1 < X.max():
                raise ValueError(f"Largest symbol is {X.max()} but the model only emits "
                                 f"symbols up to {self.n_features - 1}")
        else:
            self.n_features = X.max() + 1

    def _symbols(self):
        if hasattr(self, "emissionprob_"):
            return np.atleast_2d(self.emissionprob_).shape[1]
        return self.n_features

    def _prepare(self, source):
        if source.shape[1] != 1:
            raise ValueError(f"CategoricalHMM expects one column of integer codes, got "
                             f"{source.shape[1]} columns")
        return source

    def _make_family(self, n_symbols=None):
        n_symbols = self._symbols() if n_symbols is None else n_symbols
        prior = None if np.all(np.asarray(self.emissionprob_prior) == 1) \
            else float(self.emissionprob_prior)
        frozen = () if "e" in self._letters("params") else (0,)
        return ProductFamily([Categorical(n_categories=int(n_symbols or 1), prior=prior)],
                             frozen)

    def _data_parameters(self, X):
        if self._symbols() is None:  # as hmmlearn: one symbol past the largest code
            source = data.open_source(X)
            self.n_features = int(np.asarray(LocalDriver(source).column_max())[0]) + 1

    def _components(self):
        p = np.atleast_2d(self.emissionprob_)
        shape = (self.n_components, self.n_features or p.shape[1])
        return ExpFamParams([check_distributions("emissionprob_", p, shape)])

    def _set_components(self, components):
        self.emissionprob_ = components.columns[0]

    def _init_emissions(self, driver, family):
        if self._needs_init("e", "emissionprob_"):
            rng = check_random_state(self.random_state)
            p = rng.rand(self.n_components, self._symbols())
            self.emissionprob_ = p / p.sum(axis=1, keepdims=True)


class PoissonHMM(_HMMBase):
    """Hidden Markov model with Poisson emissions: ``lambdas_`` (n_components, n_features),
    one rate per state and column. ``lambdas_prior``/``lambdas_weight`` (0: maximum
    likelihood) put a Gamma(lambdas_prior + 1, lambdas_weight) prior on each rate, whose MAP
    update (n_k ybar + lambdas_prior) / (n_k + lambdas_weight) differs from hmmlearn's
    (which scales ybar by the total occupancy instead of n_k)."""

    _emission_letters = "l"
    _sample_dtype = np.int64
    _fitted_state = _HMMBase._fitted_state + ("n_features",)
    _fitted_arrays = _HMMBase._fitted_arrays + ("lambdas_",)

    def __init__(self, n_components=1, startprob_prior=1.0, transmat_prior=1.0,
                 lambdas_prior=0.0, lambdas_weight=0.0, algorithm="viterbi", random_state=None,
                 n_iter=10, tol=1e-2, verbose=False, params="stl", init_params="stl",
                 implementation="log", n_threads=None, chunk_size=None,
                 nan_policy="raise", learning_offset=10.0, learning_decay=0.7):
        super().__init__(n_components, startprob_prior, transmat_prior, algorithm,
                         random_state, n_iter, tol, verbose, params, init_params,
                         implementation, n_threads, chunk_size, nan_policy, learning_offset,
                         learning_decay)
        self.lambdas_prior = lambdas_prior
        self.lambdas_weight = lambdas_weight

    def _make_family(self):
        d = np.atleast_2d(self.lambdas_).shape[1] if hasattr(self, "lambdas_") \
            else self.n_features_in_
        a, b = float(self.lambdas_prior), float(self.lambdas_weight)
        prior = None if a == 0 and b == 0 else (a + 1.0, b)
        frozen = () if "l" in self._letters("params") else range(d)
        return ProductFamily([Poisson(prior=prior) for _ in range(d)], frozen)

    def _components(self):
        lambdas = np.atleast_2d(np.asarray(self.lambdas_, dtype=np.float64))
        shape = (self.n_components, getattr(self, "n_features_in_", lambdas.shape[1]))
        if lambdas.shape != shape:
            raise ValueError(f"lambdas_ must have shape (n_components, n_features) = {shape}, "
                             f"got {lambdas.shape}")
        if not np.all(lambdas >= 0):  # NaN fails too
            raise ValueError("lambdas_ must be non-negative rates (not NaN)")
        return ExpFamParams([lambdas[:, j:j + 1].copy() for j in range(lambdas.shape[1])])

    def _set_components(self, components):
        self.lambdas_ = np.hstack(components.columns)

    def _init_emissions(self, driver, family):
        self.n_features = driver.n_features  # as hmmlearn sets it
        if self._needs_init("l", "lambdas_"):
            mean, var = _scalar_moments(driver)
            rng = check_random_state(self.random_state)
            self.lambdas_ = rng.gamma(shape=mean**2 / var, scale=var / mean,
                                      size=(self.n_components, driver.n_features))


class MultinomialHMM(_HMMBase):
    """Hidden Markov model with multinomial emissions (hmmlearn >= 0.3's definition): each row
    of ``X`` counts how often each of n_features symbols came up in ``n_trials`` draws;
    ``emissionprob_`` (n_components, n_features). ``n_trials=None`` is set by ``fit`` to the
    rows' common total (left None, and ``sample`` refused, when totals differ: hmmlearn keeps
    the array of row totals there); a row of another total is refused naming it."""

    _emission_letters = "e"
    _sample_dtype = np.int64
    _fitted_state = _HMMBase._fitted_state + ("n_features",)
    _fitted_arrays = _HMMBase._fitted_arrays + ("emissionprob_",)

    def __init__(self, n_components=1, n_trials=None, startprob_prior=1.0, transmat_prior=1.0,
                 algorithm="viterbi", random_state=None, n_iter=10, tol=1e-2, verbose=False,
                 params="ste", init_params="ste", implementation="log", n_threads=None,
                 chunk_size=None, nan_policy="raise", learning_offset=10.0, learning_decay=0.7):
        super().__init__(n_components, startprob_prior, transmat_prior, algorithm,
                         random_state, n_iter, tol, verbose, params, init_params,
                         implementation, n_threads, chunk_size, nan_policy, learning_offset,
                         learning_decay)
        self.n_trials = n_trials

    def _check_and_set_n_features(self, X):
        """hmmlearn's: the column count (:meth:`_HMMBase._check_and_set_n_features`), then
        ValueError unless X holds non-negative integer counts whose rows add up to
        ``n_trials`` (when set, else set to the rows' totals)."""
        super()._check_and_set_n_features(X)
        X = np.asarray(X)
        if not np.issubdtype(X.dtype, np.integer) or X.min() < 0:
            raise ValueError("Symbol counts should be nonnegative integers")
        if self.n_trials is None:
            self.n_trials = X.sum(axis=1)
        elif not (X.sum(axis=1) == self.n_trials).all():
            raise ValueError("Total count for each sample should add up to the number of "
                             "trials")

    def _make_family(self):
        trials = np.unique(np.asarray(self.n_trials)) if self.n_trials is not None else []
        return MultinomialFamily(int(trials[0]) if len(trials) == 1 else None)

    def _data_parameters(self, X):
        if self.n_trials is None:  # as hmmlearn: the rows' totals
            low, high = _row_total_range(data.open_source(X))
            if low == high:
                self.n_trials = int(low)

    def _components(self):
        p = np.atleast_2d(self.emissionprob_)
        shape = (self.n_components, getattr(self, "n_features_in_", p.shape[1]))
        return MultinomialParams(check_distributions("emissionprob_", p, shape))

    def _set_components(self, components):
        self.emissionprob_ = components.probabilities

    def _init_emissions(self, driver, family):
        self.n_features = driver.n_features  # as hmmlearn sets it
        if self._needs_init("e", "emissionprob_"):
            p = check_random_state(self.random_state).rand(self.n_components, driver.n_features)
            self.emissionprob_ = p / p.sum(axis=1, keepdims=True)


class GMMHMM(_HMMBase):
    """Hidden Markov model with Gaussian-mixture emissions (hmmlearn's parameters, priors and
    M-step): ``weights_`` (n_components, n_mix), ``means_`` (n_components, n_mix, n_features),
    ``covars_`` (n_components, n_mix) spherical, (n_components, n_mix, n_features) diag,
    (n_components, n_mix, n_features, n_features) full, (n_components, n_features, n_features)
    tied (one covariance per state). The means start as hmmlearn's, from k-means within
    k-means clusters (on a bounded sample of the rows, with fastem's k-means)."""

    _emission_letters = "mcw"
    _fitted_state = _HMMBase._fitted_state + ("n_features",)
    _fitted_arrays = _HMMBase._fitted_arrays + ("weights_", "means_", "covars_")

    def __init__(self, n_components=1, n_mix=1, min_covar=1e-3, startprob_prior=1.0,
                 transmat_prior=1.0, weights_prior=1.0, means_prior=0.0, means_weight=0.0,
                 covars_prior=None, covars_weight=None, algorithm="viterbi",
                 covariance_type="diag", random_state=None, n_iter=10, tol=1e-2, verbose=False,
                 params="stmcw", init_params="stmcw", implementation="log", n_threads=None,
                 chunk_size=None, nan_policy="raise", learning_offset=10.0, learning_decay=0.7):
        super().__init__(n_components, startprob_prior, transmat_prior, algorithm,
                         random_state, n_iter, tol, verbose, params, init_params,
                         implementation, n_threads, chunk_size, nan_policy, learning_offset,
                         learning_decay)
        self.n_mix = n_mix
        self.min_covar = min_covar
        self.weights_prior = weights_prior
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight
        self.covariance_type = covariance_type

    def _make_family(self):
        d = np.shape(self.means_)[-1] if hasattr(self, "means_") else self.n_features_in_
        if self.covariance_type not in ("spherical", "diag", "full", "tied"):
            raise ValueError(f"covariance_type must be one of ('spherical', 'diag', 'full', "
                             f"'tied'), got {self.covariance_type!r}")
        priors = default_priors(self.covariance_type, self.n_components, self.n_mix, d,
                                self.weights_prior, self.means_prior, self.means_weight,
                                self.covars_prior, self.covars_weight)
        params = self._letters("params")
        frozen = [name for letter, name in (("w", "weights"), ("m", "means"),
                                            ("c", "covariances")) if letter not in params]
        return GMMHMMLearnFamily(self.covariance_type, self.n_mix, *priors, frozen)

    def _components(self):
        as_array = lambda a: np.array(a, dtype=np.float64)  # noqa: E731
        params = GMMParams(self.covariance_type, as_array(self.weights_), as_array(self.means_),
                           as_array(self.covars_))
        params.check()
        return params

    def _set_components(self, components):
        self.weights_, self.means_ = components.weights, components.means
        self.covars_ = components.covars

    def _emission_scalars(self, family, driver):
        k, m, d = self.n_components, self.n_mix, driver.n_features
        return {"m": k * m * d, "w": k * (m - 1),
                "c": {"spherical": k * m, "diag": k * m * d, "full": k * m * d * (d + 1) // 2,
                      "tied": k * d * (d + 1) // 2}[self.covariance_type]}

    def _init_emissions(self, driver, family):
        self.n_features = d = driver.n_features  # as hmmlearn sets it
        k, m, t = self.n_components, self.n_mix, self.covariance_type
        if self._needs_init("w", "weights_"):
            self.weights_ = np.full((k, m), 1.0 / m)
        cv = _moments(driver)[1] + self.min_covar * np.eye(d)
        if self._needs_init("m", "means_"):
            self.means_ = self._kmeans_means(driver, cv)
        if self._needs_init("c", "covars_"):
            self.covars_ = {"tied": lambda: np.broadcast_to(cv, (k, d, d)),
                            "full": lambda: np.broadcast_to(cv, (k, m, d, d)),
                            "diag": lambda: np.broadcast_to(np.diag(cv), (k, m, d)),
                            "spherical": lambda: np.full((k, m), cv.mean())}[t]().copy()


    def _kmeans_means(self, driver, cv):
        """hmmlearn's means: k-means with n_components clusters, then k-means with n_mix
        clusters within each (best of 10 runs each), on a sample of at most
        ``initialization.MAX_SAMPLE`` rows; a cluster with fewer rows than n_mix draws its
        means around the centres' mean with the data's covariance ``cv``."""
        rng = np.random.default_rng(check_random_state(self.random_state).randint(2**31))
        sample, weights, _ = _unweighted(driver).sample_rows(rng, MAX_SAMPLE)
        sample = fill_missing(sample)
        centers, labels = kmeans(sample, weights, self.n_components, rng)
        means = []
        for k in range(self.n_components):
            rows = labels == k
            if rows.sum() >= self.n_mix:
                means.append(kmeans(sample[rows], weights[rows], self.n_mix, rng)[0])
            else:
                means.append(rng.multivariate_normal(centers.mean(axis=0), cv, size=self.n_mix))
        return np.stack(means)


class HMM(_HMMBase):
    """A hidden Markov model over any fastem ``family`` (``fastem.families``: Gaussian,
    product of Bernoulli/Categorical/Poisson/Exponential/Gamma/Normal columns, custom Numba
    families), with the family's own priors and M-step. Fitted ``components_`` hold the
    family's parameters; emissions are initialised from a k-means mixture
    (``init_params`` letter "e", with ``params`` letter "e" learning them).
    ``m_step="partial"``: generalized EM, ``m_step_iters`` Newton steps with backtracking on
    the emissions per iteration (the chain still takes its exact update), as for mixtures."""

    _emission_letters = "e"
    _fitted_arrays = _HMMBase._fitted_arrays + ("components_",)

    def __init__(self, family=None, n_components=1, startprob_prior=1.0, transmat_prior=1.0,
                 algorithm="viterbi", random_state=None, n_iter=10, tol=1e-2, verbose=False,
                 params="ste", init_params="ste", m_step="exact", m_step_iters=1,
                 n_threads=None, chunk_size=None, nan_policy="raise", learning_offset=10.0,
                 learning_decay=0.7):
        super().__init__(n_components, startprob_prior, transmat_prior, algorithm,
                         random_state, n_iter, tol, verbose, params, init_params, "log",
                         n_threads, chunk_size, nan_policy, learning_offset, learning_decay)
        self.family = family
        self.m_step = m_step
        self.m_step_iters = m_step_iters

    def _m_step_options(self):
        if self.m_step not in ("exact", "partial"):
            raise ValueError(f"m_step must be 'exact' or 'partial', got {self.m_step!r}")
        return {"m_step": self.m_step, "m_step_iters": self.m_step_iters}

    def _make_family(self):
        if self.family is None:
            raise ValueError("HMM needs a family (e.g. fastem.families.gaussian.GaussianFamily())")
        return self.family

    def _components(self):
        return self.components_

    def _set_components(self, components):
        self.components_ = components

    def _init_emissions(self, driver, family):
        if self._needs_init("e", "components_"):
            rng = np.random.default_rng(check_random_state(self.random_state).randint(2**31))
            self.components_ = initial_params("kmeans", Mixture(), family, _unweighted(driver),
                                              self.n_components, rng).components


def _check_width(params, driver):
    """ValueError unless the emissions are for as many columns as X has (where their
    parameters say: a custom family's need not)."""
    width = getattr(params.components, "n_features", None)
    if width is not None and width != driver.n_features:
        raise ValueError(f"X has {driver.n_features} features, but the emission parameters are "
                         f"for {width}")


def _unweighted(driver):
    """A plain driver over the same rows and labels (initialisation ignores sequences),
    missing rows left out (under "marginalize": rows with no observed entry)."""
    local = make_driver(driver.X, None, driver.chunk_size, driver.n_threads)
    if _marginal(driver):
        local.mark_missing()
    elif driver.filler is not None:
        local.omit_nonfinite()
    local.labels = getattr(driver, "labels", None)
    return local


def _marginal(driver):
    """Whether the driver's rows keep NaN entries as missing values ("marginalize")."""
    return getattr(driver, "marginal", False)


def _as_driver_reads(family, driver):
    """``family``, in its marginal form where the driver's rows keep NaN entries."""
    return family.marginal() if _marginal(driver) else family


_COVARS_DOMAIN = {"spherical": "positive", "diag": "positive",
                 "full": "symmetric, positive-definite", "tied": "symmetric, positive-definite"}


def _checked_covars(covariance_type, covars, k, d):
    """``covars_`` as set (in the type's shape), or ValueError as hmmlearn words it: the
    shape, or matrices that are not symmetric (variances that are not positive, or matrices
    that cannot be factored, raise where ``GaussianHMM._components`` factors them)."""
    t = covariance_type
    covars = np.asarray(covars, dtype=np.float64)
    if t == "spherical" and covars.ndim >= 2 and covars.shape[0] == k \
            and np.all(covars.reshape(k, -1) == covars.reshape(k, -1)[:, :1]):
        covars = covars.reshape(k, -1)[:, 0]  # hmmlearn's (K, 1), tiled (K, D), (K, 1, 1, 1)
    shape = covariance_shape(t, k, d)
    if covars.shape != shape:
        raise ValueError(f"{t!r} covars must have shape {shape}, got {covars.shape}")
    if t in ("full", "tied") and not np.allclose(covars, np.swapaxes(covars, -1, -2)):
        raise ValueError(f"{t!r} covars must be {_COVARS_DOMAIN[t]}")
    return covars


def _row_total_range(source):
    """The smallest and largest finite row total of a source, in one streamed pass."""
    low, high = np.inf, -np.inf
    for _, block, _ in data.iter_blocks(source, data.BLOCK_ROWS, np.float64):
        totals = block.sum(axis=1)
        totals = totals[np.isfinite(totals)]
        if totals.size:
            low, high = min(low, totals.min()), max(high, totals.max())
    return low, high


def _moments(driver):
    """Column means and the covariance matrix (ddof 1, as np.cov) in one pass, each block
    centred on the first block's mean (Chan et al.'s pairwise update). Missing rows are left
    out; under "marginalize" a first pass takes each column's mean over its observed entries
    and missing entries count as that mean (a start: it shrinks variances by the missing
    fraction)."""
    fill = _column_means(driver) if _marginal(driver) else None
    n, mean, scatter = 0, None, None
    for _, block, _ in data.iter_blocks(driver.X, data.BLOCK_ROWS, np.float64):
        if fill is None:
            block = block[data.finite_rows(block)]  # missing rows left out
        else:
            empty = data.empty_rows(block)
            block = fill_missing(block if empty is None else block[~empty], fill)
        if not block.shape[0]:
            continue
        m_b = block.mean(axis=0)
        c = block - m_b
        s_b = c.T @ c
        if mean is None:
            n, mean, scatter = block.shape[0], m_b, s_b
            continue
        n_b = block.shape[0]
        delta = m_b - mean
        scatter = scatter + s_b + np.outer(delta, delta) * n * n_b / (n + n_b)
        mean = mean + delta * n_b / (n + n_b)
        n += n_b
    return mean, scatter / max(n - 1, 1)


def _column_means(driver):
    """Each column's mean over its observed (not NaN) entries, in one pass."""
    total, count = np.zeros(driver.n_features), np.zeros(driver.n_features)
    for _, block, _ in data.iter_blocks(driver.X, data.BLOCK_ROWS, np.float64):
        seen = block == block
        total += np.where(seen, block, 0.0).sum(axis=0)
        count += seen.sum(axis=0)
    return total / np.maximum(count, 1)


def _scalar_moments(driver):
    """The mean and variance (ddof 0) of every value of X, as hmmlearn's X.mean(), X.var()."""
    mean, cov = _moments(driver)
    n, d = driver.n_samples - driver.n_omitted, driver.n_features
    grand = mean.mean()
    within = np.trace(cov) * (n - 1) / n  # sum over columns of their own (ddof 0) variances
    return grand, (within + ((mean - grand) ** 2).sum()) / d
