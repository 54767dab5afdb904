"""Exponential-family mixtures: densities against scipy.stats, recovery of known parameters,
monotone objectives (exact, MAP, partial), MAP closed forms against numerical maximisation,
frozen parameters, threads, files and bad input."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats
from scipy.special import logsumexp

from fastem import (
    BernoulliMixture,
    CategoricalMixture,
    ExponentialMixture,
    GammaMixture,
    MixtureModel,
    PoissonMixture,
)
from fastem.drivers.local import LocalDriver
from fastem.families.expfam import (
    Bernoulli,
    Categorical,
    ExpFamParams,
    Exponential,
    Gamma,
    Normal,
    Poisson,
    ProductFamily,
)
from fastem.families.gaussian import EXPFAM_MAX_ERROR
from fastem.latent.mixture import Mixture, MixtureParams

RNG = np.random.default_rng(0)
N = 6000
Z = RNG.integers(0, 3, N)
TRUE = {
    "bernoulli": np.tile([[0.9, 0.1, 0.8, 0.2], [0.1, 0.9, 0.2, 0.8], [0.5, 0.5, 0.95, 0.95]], 2),
    "poisson": np.array([[1.0, 10.0, 3.0], [20.0, 0.5, 1.0], [5.0, 2.0, 8.0]]),
    "gamma_shape": np.array([[1.0, 5.0], [8.0, 2.0], [3.0, 12.0]]),
    "gamma_rate": np.array([[1.0, 2.0], [1.0, 4.0], [0.2, 1.0]]),
    "exponential": np.array([[0.1, 5.0], [3.0, 0.2], [30.0, 30.0]]),
}
DATA = {
    "bernoulli": (RNG.random((N, 8)) < TRUE["bernoulli"][Z]).astype(float),
    "poisson": RNG.poisson(TRUE["poisson"][Z]).astype(float),
    "gamma": RNG.gamma(TRUE["gamma_shape"][Z], 1 / TRUE["gamma_rate"][Z]),
    "exponential": RNG.exponential(1 / TRUE["exponential"][Z]),
    "categorical": np.column_stack([
        (RNG.random(N)[:, None] > np.cumsum(p[Z], axis=1)).sum(axis=1)
        for p in (np.array([[.8, .1, .1], [.1, .8, .1], [.1, .1, .8]]),
                  np.array([[.9, .1], [.1, .9], [.5, .5]])) * 2]).astype(float),
}
ESTIMATORS = {
    "bernoulli": BernoulliMixture, "poisson": PoissonMixture, "gamma": GammaMixture,
    "exponential": ExponentialMixture, "categorical": CategoricalMixture,
}


def fit(name, **kwargs):
    kwargs = {"random_state": 0, "tol": 1e-9, "max_iter": 400, "n_init": 3, **kwargs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ESTIMATORS[name](3, **kwargs).fit(DATA[name])


def reference_log_density(model, X):
    """log p(x) of a fitted model, from scipy.stats, column by column."""
    logp = np.log(model.weights_)[None, :].repeat(X.shape[0], axis=0)
    for j in range(X.shape[1]):
        x = X[:, j][:, None]
        if isinstance(model, BernoulliMixture):
            logp += stats.bernoulli.logpmf(x, model.probabilities_[:, j])
        elif isinstance(model, PoissonMixture):
            logp += stats.poisson.logpmf(x, model.rates_[:, j])
        elif isinstance(model, ExponentialMixture):
            logp += stats.expon.logpdf(x, scale=1 / model.rates_[:, j])
        elif isinstance(model, GammaMixture):
            logp += stats.gamma.logpdf(x, model.shapes_[:, j], scale=1 / model.rates_[:, j])
        else:
            logp += np.log(model.probabilities_[j][:, x[:, 0].astype(int)].T)
    return logsumexp(logp, axis=1)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_log_density_matches_scipy_stats(name):
    model = fit(name, max_iter=5, n_init=1)
    X = DATA[name][:500]
    np.testing.assert_allclose(model.score_samples(X), reference_log_density(model, X),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(model.predict_proba(X).sum(axis=1), 1.0, rtol=1e-12)


def match(estimated, true):
    """Rows of ``estimated`` reordered to the rows of ``true`` they are closest to."""
    order = [int(np.argmin(((estimated - t) ** 2).sum(axis=1))) for t in true]
    return estimated[order]


def test_recovers_known_parameters():
    bern = fit("bernoulli")
    np.testing.assert_allclose(match(bern.probabilities_, TRUE["bernoulli"]), TRUE["bernoulli"],
                               atol=0.05)
    pois = fit("poisson")
    np.testing.assert_allclose(match(pois.rates_, TRUE["poisson"]), TRUE["poisson"], rtol=0.08)
    gam = fit("gamma")
    shapes = match(gam.shapes_, TRUE["gamma_shape"])
    np.testing.assert_allclose(shapes, TRUE["gamma_shape"], rtol=0.15)
    cat = fit("categorical")
    assert list(cat.n_categories_) == [3, 2, 3, 2]
    np.testing.assert_allclose(np.sort(cat.weights_), [1 / 3] * 3, atol=0.05)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
@pytest.mark.parametrize("m_step", ["exact", "partial"])
@pytest.mark.parametrize("seed", [0, 1])
def test_objective_never_decreases(name, m_step, seed):
    prior = {"bernoulli": (2.0, 3.0), "poisson": (2.0, 0.5), "exponential": (2.0, 0.5),
             "categorical": 1.5, "gamma": None}[name]
    for kwargs in ({}, {"prior": prior, "weight_concentration_prior": 2.0}):
        model = fit(name, m_step=m_step, random_state=seed, n_init=1, max_iter=60,
                    init_params="random", **kwargs)
        bounds = np.array(model.lower_bounds_)
        assert np.isfinite(bounds).all()
        assert (np.diff(bounds) >= -1e-11 * np.abs(bounds[:-1])).all(), np.diff(bounds)


@pytest.mark.parametrize("name", ["poisson", "gamma", "bernoulli"])
def test_partial_m_step_reaches_the_exact_fixed_point(name):
    exact = fit(name, m_step="exact", n_init=1, tol=1e-12, max_iter=2000)
    partial = fit(name, m_step="partial", m_step_iters=3, n_init=1, tol=1e-12, max_iter=2000)
    assert partial.lower_bound_ == pytest.approx(exact.lower_bound_, rel=1e-8)
    for a, b in zip(exact.params_.columns, partial.params_.columns):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def statistics(family, X, resp):
    driver = LocalDriver(X, n_threads=1)
    packed = family.pack_pivot(np.zeros((resp.shape[1], X.shape[1])), np.float64)
    return driver.accumulate(family, packed, resp_fn=lambda s, b: resp[s:s + b.shape[0]])[0], packed


@pytest.mark.parametrize("column, data, to_theta", [
    (Bernoulli(prior=(2.0, 3.0)), DATA["bernoulli"][:40, :1],
     lambda u: 1 / (1 + np.exp(-u))),
    (Poisson(prior=(3.0, 0.5)), DATA["poisson"][:40, :1], np.exp),
    (Exponential(prior=(2.0, 1.5)), DATA["exponential"][:40, :1], np.exp),
])
def test_map_m_step_maximises_objective_numerically(column, data, to_theta):
    """The closed-form MAP M-step against scipy.optimize on J(theta) + log p(theta)."""
    resp = np.random.default_rng(1).dirichlet([1, 1], size=data.shape[0])
    family = ProductFamily([column])
    mixture = Mixture(3.0)
    stats_, packed = statistics(family, data, resp)
    closed, _ = mixture.m_step(family, stats_, packed)

    def negative(u):
        weights = np.exp(np.append(u[:1], 0.0))
        weights /= weights.sum()
        params = MixtureParams(weights, ExpFamParams([to_theta(u[1:])[:, None]]))
        return -mixture.objective(family, params, stats_, packed)

    best = optimize.minimize(negative, np.zeros(3), method="Nelder-Mead",
                             options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000})
    assert -best.fun <= mixture.objective(family, closed, stats_, packed) + 1e-8
    weights = np.exp(np.append(best.x[:1], 0.0))
    np.testing.assert_allclose(closed.weights, weights / weights.sum(), atol=1e-4)
    np.testing.assert_allclose(closed.columns[0][:, 0], to_theta(best.x[1:]), rtol=1e-4)


def test_frozen_parameters_stay_fixed():
    family = ProductFamily([Poisson(), Poisson(), Poisson()], frozen={1})
    model = MixtureModel(family, 3, random_state=0, max_iter=20, init_params="random",
                         frozen=("weights",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(DATA["poisson"])
    first = MixtureModel(family, 3, random_state=0, max_iter=0, init_params="random",
                         frozen=("weights",))
    first.fit(DATA["poisson"])
    np.testing.assert_array_equal(model.weights_, first.weights_)
    np.testing.assert_array_equal(model.params_.columns[1], first.params_.columns[1])
    assert not np.array_equal(model.params_.columns[0], first.params_.columns[0])


def test_product_family_models_a_mixed_table():
    X = np.column_stack([DATA["bernoulli"][:, 0], DATA["poisson"][:, 0], DATA["gamma"][:, 0],
                         DATA["categorical"][:, 0], RNG.normal(5.0 * Z, 1.0)])
    family = ProductFamily([Bernoulli(), Poisson(), Gamma(), Categorical(3), Normal()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MixtureModel(family, 3, random_state=0, tol=1e-9, max_iter=300,
                             m_step="partial").fit(X)
    means = np.sort(model.params_.columns[4][:, 0])
    np.testing.assert_allclose(means, [0.0, 5.0, 10.0], atol=0.1)
    assert (np.diff(model.lower_bounds_) >= -1e-10).all()
    sample, labels = model.sample(100)
    assert sample.shape == (100, 5) and labels.shape == (100,)
    assert model.bic(X) > model.aic(X) - 1e9  # both finite numbers
    assert family.n_parameters(5, 3) == 3 * (1 + 1 + 2 + 2 + 2)
    assert model._n_parameters() == 2 + 3 * (1 + 1 + 2 + 2 + 2)


@pytest.mark.parametrize("name", ["poisson", "categorical"])
def test_threads_and_files_give_identical_fits(name, tmp_path):
    path = tmp_path / "data.npy"
    np.save(path, DATA[name])
    fits = [fit(name, n_threads=t, chunk_size=256, n_init=1, max_iter=20) for t in (1, 2)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from_file = ESTIMATORS[name](3, random_state=0, tol=1e-9, max_iter=20, n_threads=2,
                                     chunk_size=256).fit(str(path))
    for model in fits[1:] + [from_file]:
        assert model.lower_bounds_ == fits[0].lower_bounds_
        for a, b in zip(model.params_.columns, fits[0].params_.columns):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("estimator, X, message", [
    (PoissonMixture(2), np.array([[1.0], [2.0], [-1.0]]), "Negative or non-integer counts"),
    (PoissonMixture(2), np.array([[1.0], [2.5], [3.0]]), "row 1"),
    (BernoulliMixture(2), np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]),
     "Values other than 0 and 1"),
    (CategoricalMixture(2, n_categories=2), np.array([[0.0], [1.0], [2.0]]), "row 2"),
    (GammaMixture(2), np.array([[1.0], [0.0], [3.0]]), "Values <= 0"),
    (ExponentialMixture(2), np.array([[1.0], [3.0], [-3.0]]), "Negative values in data"),
])
def test_values_outside_the_support_are_rejected(estimator, X, message):
    with pytest.raises(ValueError, match=message):
        estimator.fit(X)


def test_bad_priors_are_rejected():
    X = DATA["poisson"][:50]
    with pytest.raises(ValueError, match="prior"):
        PoissonMixture(2, prior=(0.5, 1.0)).fit(X)
    with pytest.raises(ValueError, match="weight_concentration_prior"):
        PoissonMixture(2, weight_concentration_prior=0.5).fit(X)
    with pytest.raises(ValueError, match="prior must be None"):
        GammaMixture(2, prior=(2.0, 1.0)).fit(DATA["gamma"][:50])


def random_table(name, rng, n, d, k):
    """Sampled data of a random mixture of the family ``name``."""
    z = rng.integers(0, k, n)
    if name == "bernoulli":
        return (rng.random((n, d)) < rng.uniform(0.05, 0.95, (k, d))[z]).astype(float)
    if name == "poisson":
        return rng.poisson(rng.uniform(0.1, 20, (k, d))[z]).astype(float)
    if name == "exponential":
        return rng.exponential(1 / rng.uniform(0.1, 10, (k, d))[z])
    if name == "gamma":
        return rng.gamma(rng.uniform(0.5, 10, (k, d))[z], 1 / rng.uniform(0.1, 5, (k, d))[z])
    return rng.integers(0, 4, (n, d)).astype(float)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**31 - 1),
    name=st.sampled_from(sorted(ESTIMATORS)),
    n=st.integers(20, 300),
    d=st.integers(1, 4),
    k=st.integers(1, 4),
    m_step=st.sampled_from(["exact", "partial"]),
    with_prior=st.booleans(),
    weighted=st.booleans(),
    dtype=st.sampled_from([np.float64, np.float32]),
)
def test_objective_never_decreases_on_random_mixtures(seed, name, n, d, k, m_step, with_prior,
                                                      weighted, dtype):
    """EM, MAP-EM and generalized EM on random data, weights and settings (hypothesis)."""
    rng = np.random.default_rng(seed)
    X = random_table(name, rng, n, d, k).astype(dtype)
    prior = {"bernoulli": (1.5, 2.0), "poisson": (2.0, 0.1), "exponential": (1.5, 0.1),
             "categorical": 1.2, "gamma": None}[name]
    kwargs = {"prior": prior, "weight_concentration_prior": 1.5} if with_prior else {}
    model = ESTIMATORS[name](k, m_step=m_step, random_state=seed, tol=0.0, max_iter=15,
                             init_params="random", chunk_size=64, **kwargs)
    weights = rng.uniform(0.1, 3.0, n) if weighted else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, sample_weight=weights)
    bounds = np.array(model.lower_bounds_)
    assert np.isfinite(bounds).all()
    # float32 data compute in float32 where each row's rounding stays below
    # EXPFAM_MAX_ERROR[float32] nats (expfam.pyx), as in test_monotone.py
    slack = 2 * EXPFAM_MAX_ERROR[np.dtype(np.float32)] if dtype == np.float32 else 0.0
    floor = -1e-10 * np.maximum(1.0, np.abs(bounds[:-1])) - slack
    assert (np.diff(bounds) >= floor).all(), np.diff(bounds)


def test_callback_sees_every_iteration_and_ctrl_c_keeps_the_last_one():
    seen = []

    def callback(model):
        seen.append(model.rates_.copy())
        if len(seen) == 3:
            raise KeyboardInterrupt

    model = PoissonMixture(3, random_state=0, max_iter=10, tol=0.0, callback=callback)
    with pytest.raises(KeyboardInterrupt), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(DATA["poisson"])
    assert model.n_iter_ == 3
    np.testing.assert_array_equal(model.rates_, seen[-1])


def test_refit_on_data_with_other_columns_and_bad_frozen_names():
    model = PoissonMixture(2, random_state=0, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(DATA["poisson"])
        model.fit(DATA["poisson"][:, :2])
    assert model.rates_.shape == (2, 2)
    assert model.score_samples(DATA["poisson"][:5, :2]).shape == (5,)
    with pytest.raises(ValueError, match="frozen"):
        PoissonMixture(2, frozen=("means",)).fit(DATA["poisson"])


def test_nan_policy_omit_skips_nan_rows_but_not_values_outside_the_support():
    X = DATA["poisson"][:300].copy()
    X[10, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = PoissonMixture(2, nan_policy="omit", random_state=0, max_iter=5).fit(X)
    assert model.n_omitted_rows_ == 1
    X[5, 1] = -2.0  # before the NaN row, in the same block
    with pytest.raises(ValueError, match="X row 5 is"):
        PoissonMixture(2, nan_policy="omit").fit(X)
    with pytest.raises(ValueError, match="X row 5 is"):
        PoissonMixture(2).fit(X)
    X[5, 1] = 2.0
    X[20, 1] = -2.0  # after it: "raise" names the NaN row first, "omit" the negative count
    with pytest.raises(ValueError, match="NaN or infinity .first at row 10"):
        PoissonMixture(2).fit(X)
    with pytest.raises(ValueError, match="X row 20 is"):
        PoissonMixture(2, nan_policy="omit").fit(X)
