"""Mixtures of exponential-family components, with GaussianMixture's scikit-learn surface.

Each estimator fits a :class:`fastem.families.expfam.ProductFamily` whose columns are all of
one type, built from its own parameters; for tables mixing column types, use
``MixtureModel(ProductFamily([...]), n_components)`` directly.
"""
import numbers

import numpy as np

from ..families.expfam import Bernoulli, Categorical, Exponential, Gamma, Poisson, ProductFamily
from ._base import _MixtureBase

MAX_CATEGORIES = 1 << 24  # per column: 2**24 probabilities take 128 MiB per component

_COMMON = """
    Parameters other than those below are those of :class:`fastem.MixtureModel` (threads,
    chunks, files and Dask arrays, ``nan_policy``, ``m_step="exact"|"partial"``, ...).

    weight_concentration_prior : float or None
        MAP-EM: a symmetric Dirichlet prior on the weights (>= 1; None: no prior).
    frozen : tuple
        "weights" and/or column indices whose parameters every M-step keeps at their initial
        values.

    algorithm, batch_size, learning_offset, learning_decay
        ``algorithm="incremental"`` or ``"stepwise"`` makes ``fit`` run online EM over blocks of
        ``batch_size`` rows (an M-step per block; ``max_iter`` and ``n_iter_`` count passes);
        ``partial_fit(X)`` makes one stepwise update per batch, with steps
        ``(t + learning_offset) ** -learning_decay``. See :mod:`fastem.online`.

    ``params_`` holds the fitted parameters and ``family_`` the ProductFamily fitted with (a
    warm start continues with it).
"""


class _ColumnMixture(_MixtureBase):
    """A mixture whose components are products of one column type over every feature."""

    _column_type = None  # the Column class of every feature
    _param_names_out = ()  # fitted attribute names, one per column parameter

    def __init__(self, n_components=1, *, tol=1e-3, max_iter=100, n_init=1,
                 init_params="kmeans", random_state=None, warm_start=False, verbose=0,
                 verbose_interval=10, n_threads=None, chunk_size=None, progress=False,
                 callback=None, nan_policy="raise", m_step="exact", m_step_iters=1,
                 weight_concentration_prior=None, prior=None, frozen=(), algorithm="batch",
                 batch_size=10_000, learning_offset=10.0, learning_decay=0.7):
        super().__init__(
            n_components, tol=tol, max_iter=max_iter, n_init=n_init,
            init_params=init_params, random_state=random_state, warm_start=warm_start,
            verbose=verbose, verbose_interval=verbose_interval, n_threads=n_threads,
            chunk_size=chunk_size, progress=progress, callback=callback, nan_policy=nan_policy,
            m_step=m_step, m_step_iters=m_step_iters, algorithm=algorithm,
            batch_size=batch_size, learning_offset=learning_offset,
            learning_decay=learning_decay)
        self.weight_concentration_prior = weight_concentration_prior
        self.prior = prior
        self.frozen = frozen

    def _columns(self, n_features):
        return [self._column_type(prior=self._checked_prior()) for _ in range(n_features)]

    def _checked_prior(self):
        return None if self.prior is None else _pair(self.prior, "prior")

    def _check_family_parameters(self, n_features):
        self._latent()  # checks weight_concentration_prior
        self._make_family(n_features)

    def _make_family(self, n_features):
        return ProductFamily(self._columns(n_features), self._component_frozen())

    def _set_params(self, params):
        super()._set_params(params)
        stacked = np.stack(params.components.columns, axis=1)  # (K, D, n_params)
        for i, name in enumerate(self._param_names_out):
            setattr(self, name, stacked[:, :, i])


def _pair(value, name):
    """A (shape, rate) or (a, b) prior as two floats, a >= 1 and b >= 0 (a MAP exists)."""
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of numbers, got {value!r}") from None
    if not (a >= 1 and b >= 0 and np.isfinite(a + b)):
        raise ValueError(f"{name} must be (a >= 1, b >= 0) so that the MAP exists, got {value!r}")
    return a, b


class BernoulliMixture(_ColumnMixture):
    __doc__ = """Mixture of multivariate Bernoulli distributions (binary data, latent classes).

    prior : (a, b) or None
        MAP-EM: Beta(a, b) prior on every probability (a, b >= 1).

    Attributes: ``weights_`` (K,), ``probabilities_`` (K, D).
    """ + _COMMON
    _column_type = Bernoulli
    _positive_only = True
    _param_names_out = ("probabilities_",)

    def _checked_prior(self):
        if self.prior is None:
            return None
        a, b = _pair(self.prior, "prior")
        if b < 1:
            raise ValueError(f"prior must be (a >= 1, b >= 1), got {self.prior!r}")
        return a, b


class PoissonMixture(_ColumnMixture):
    __doc__ = """Mixture of independent Poisson counts.

    prior : (shape, rate) or None
        MAP-EM: Gamma(shape >= 1, rate >= 0) prior on every rate.

    Attributes: ``weights_`` (K,), ``rates_`` (K, D).
    """ + _COMMON
    _column_type = Poisson
    _positive_only = True
    _param_names_out = ("rates_",)


class ExponentialMixture(_ColumnMixture):
    __doc__ = """Mixture of independent exponential distributions (non-negative data).

    prior : (shape, rate) or None
        MAP-EM: Gamma(shape >= 1, rate >= 0) prior on every rate.

    Attributes: ``weights_`` (K,), ``rates_`` (K, D).
    """ + _COMMON
    _column_type = Exponential
    _positive_only = True
    _param_names_out = ("rates_",)


class GammaMixture(_ColumnMixture):
    __doc__ = """Mixture of independent Gamma distributions (positive data).

    The shape has no closed-form M-step, so ``m_step`` defaults to "partial" (one Newton step
    on the shape per iteration, generalized EM); "exact" iterates Newton to convergence.
    ``prior`` is not supported (must be None).

    Attributes: ``weights_`` (K,), ``shapes_`` and ``rates_`` (K, D).
    """ + _COMMON
    _column_type = Gamma
    _positive_only = True
    _param_names_out = ("shapes_", "rates_")

    def __init__(self, n_components=1, *, tol=1e-3, max_iter=100, n_init=1,
                 init_params="kmeans", random_state=None, warm_start=False, verbose=0,
                 verbose_interval=10, n_threads=None, chunk_size=None, progress=False,
                 callback=None, nan_policy="raise", m_step="partial", m_step_iters=1,
                 weight_concentration_prior=None, prior=None, frozen=(), algorithm="batch",
                 batch_size=10_000, learning_offset=10.0, learning_decay=0.7):
        super().__init__(
            n_components, tol=tol, max_iter=max_iter, n_init=n_init, init_params=init_params,
            random_state=random_state, warm_start=warm_start, verbose=verbose,
            verbose_interval=verbose_interval, n_threads=n_threads, chunk_size=chunk_size,
            progress=progress, callback=callback, nan_policy=nan_policy, m_step=m_step,
            m_step_iters=m_step_iters, weight_concentration_prior=weight_concentration_prior,
            prior=prior, frozen=frozen, algorithm=algorithm, batch_size=batch_size,
            learning_offset=learning_offset, learning_decay=learning_decay)

    def _columns(self, n_features):
        if self.prior is not None:
            raise ValueError("GammaMixture has no component prior: prior must be None")
        return [Gamma() for _ in range(n_features)]


class CategoricalMixture(_ColumnMixture):
    __doc__ = """Latent class analysis: a mixture of independent categorical columns, each
    holding integer codes 0 .. n_categories - 1 (stored as numbers).

    n_categories : int, sequence of int, or None
        Categories per column; None counts them from the data (largest code + 1, one pass).
    init_params :
        Defaults to "random" (random responsibilities): k-means on codes, which have no
        distances, found worse optima in tests.
    prior : float or None
        MAP-EM: symmetric Dirichlet(alpha >= 1) prior on every column's probabilities.

    Attributes: ``weights_`` (K,), ``probabilities_``: a list of (K, n_categories_j) arrays,
    ``n_categories_`` (D,).
    """ + _COMMON
    _column_type = Categorical
    _positive_only = True
    _fitted_arrays = ("weights_", "params_", "n_categories_")

    def __init__(self, n_components=1, *, n_categories=None, tol=1e-3, max_iter=100, n_init=1,
                 init_params="random", random_state=None, warm_start=False, verbose=0,
                 verbose_interval=10, n_threads=None, chunk_size=None, progress=False,
                 callback=None, nan_policy="raise", m_step="exact", m_step_iters=1,
                 weight_concentration_prior=None, prior=None, frozen=(), algorithm="batch",
                 batch_size=10_000, learning_offset=10.0, learning_decay=0.7):
        super().__init__(
            n_components, tol=tol, max_iter=max_iter, n_init=n_init, init_params=init_params,
            random_state=random_state, warm_start=warm_start, verbose=verbose,
            verbose_interval=verbose_interval, n_threads=n_threads, chunk_size=chunk_size,
            progress=progress, callback=callback, nan_policy=nan_policy, m_step=m_step,
            m_step_iters=m_step_iters, weight_concentration_prior=weight_concentration_prior,
            prior=prior, frozen=frozen, algorithm=algorithm, batch_size=batch_size,
            learning_offset=learning_offset, learning_decay=learning_decay)
        self.n_categories = n_categories

    def _data_parameters(self, driver):
        self.n_categories_ = self._count_categories(driver)

    def _count_categories(self, driver):
        given = self.n_categories
        if given is None:  # one pass; NaN and infinity are reported by the finite check
            top = driver.column_max()
            top = np.maximum(np.where(np.isfinite(top), top, 0), 0)
            if (top >= MAX_CATEGORIES).any():
                j = int(np.argmax(top >= MAX_CATEGORIES))
                raise ValueError(f"X column {j} holds the code {top[j]:g}: category codes must be "
                                 f"integers 0 .. n_categories - 1, at most {MAX_CATEGORIES} "
                                 "categories per column")
            return top.astype(np.intp) + 1
        if np.ndim(given) == 1 and len(given) != driver.n_features:
            raise ValueError(f"n_categories has {len(given)} entries for {driver.n_features} "
                             "columns: give one per column, or one number for all")
        counts = np.broadcast_to(np.asarray(given), (driver.n_features,))
        if not np.issubdtype(counts.dtype, np.integer) or (counts < 1).any():
            raise ValueError(f"n_categories must be positive integers, got {given!r}")
        return counts.astype(np.intp)

    def _columns(self, n_features):
        alpha = self.prior
        if alpha is not None and not (isinstance(alpha, numbers.Real) and alpha >= 1):
            raise ValueError(f"prior must be a Dirichlet concentration >= 1, got {alpha!r}")
        return [Categorical(int(c), alpha) for c in self.n_categories_]

    def _set_params(self, params):
        _MixtureBase._set_params(self, params)
        self.probabilities_ = list(params.components.columns)
