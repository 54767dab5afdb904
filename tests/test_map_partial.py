"""MAP-EM (conjugate priors), generalized (partial) M-steps and frozen parameters of the Gaussian
family: closed forms against numerical maximisation, monotone objectives, fixed points, and
errors for bad prior parameters."""
import warnings

import numpy as np
import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.stats import multivariate_normal
from threadpoolctl import threadpool_limits

from fastem import GaussianMixture
from fastem.drivers.local import LocalDriver
from fastem.em import partial_m_step
from fastem.families.gaussian import (
    COVARIANCE_TYPES,
    GaussianFamily,
    GaussianParams,
    GaussianPrior,
    cholesky_from_precisions,
    covariances_from_cholesky,
)
from fastem.frame import Statistics
from fastem.latent.mixture import Mixture, MixtureParams

N, D, K = 30, 2, 2


def tiny_data(seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(N, D) * [1.0, 0.6] + np.repeat([[0.0, 0.0], [2.5, 1.0]], N // 2, axis=0)
    resp = rng.dirichlet([1.0, 1.0], size=N)
    return X, resp


def tiny_prior(covariance_type):
    psi = {"full": np.array([[1.0, 0.3], [0.3, 2.0]]), "diag": np.array([1.0, 2.0]),
           "spherical": 1.5}
    psi["tied"] = psi["full"]
    return GaussianPrior(mean=np.array([1.0, -1.0]), mean_precision=2.0, degrees_of_freedom=3.0,
                         covariance=psi[covariance_type])


def stats_from_resp(family, X, resp, pivot):
    """Statistics of given responsibilities, as fastem.initialization.params_from_resp computes them."""
    packed = family.pack_pivot(pivot, np.float64)
    stats, _ = LocalDriver(X, n_threads=1).accumulate(
        family, packed, resp_fn=lambda start, block: resp[start:start + block.shape[0]])
    return stats, packed


def n_free(covariance_type):
    return K - 1 + K * D + {"full": K * D * (D + 1) // 2, "tied": D * (D + 1) // 2,
                            "diag": K * D, "spherical": K}[covariance_type]


def from_free(z, covariance_type):
    """Parameters from an unconstrained vector: softmax logits, means, Cholesky factors of the
    covariances with log-diagonals (full, tied), log-variances (diag, spherical)."""
    logits = np.r_[z[:K - 1], 0.0]
    weights = np.exp(logits - logits.max())
    weights /= weights.sum()
    i = K - 1
    means = z[i:i + K * D].reshape(K, D)
    i += K * D
    if covariance_type in ("full", "tied"):
        covs = []
        for _ in range(K if covariance_type == "full" else 1):
            L = np.zeros((D, D))
            L[np.tril_indices(D)] = z[i:i + D * (D + 1) // 2]
            i += D * (D + 1) // 2
            L[np.diag_indices(D)] = np.exp(np.diag(L))
            covs.append(L @ L.T)
        cov = np.array(covs) if covariance_type == "full" else covs[0]
    else:
        cov = np.exp(z[i:]).reshape((K, D) if covariance_type == "diag" else (K,))
    return MixtureParams(weights, GaussianParams.from_covariances(covariance_type, means, cov))


def component_covariances(params):
    t, c = params.covariance_type, params.covariances
    if t == "full":
        return c
    if t == "tied":
        return np.repeat(c[None], K, axis=0)
    if t == "diag":
        return np.stack([np.diag(v) for v in c])
    return np.stack([v * np.eye(D) for v in c])


def direct_log_posterior(params, X, resp, prior, alpha):
    """sum_ik r_ik [log w_k + log N(x_i | mu_k, S_k)] + log p(theta), straight from the
    densities stated in GaussianPrior's docstring."""
    weights, params = params.weights, params.components
    covs = component_covariances(params)
    value = sum((resp[:, k] * (np.log(weights[k])
                               + multivariate_normal(params.means[k], covs[k]).logpdf(X))).sum()
                for k in range(K))
    value += (alpha - 1.0) * np.log(weights).sum()
    if prior is None:
        return value
    t, mu0, kappa, nu, psi = (params.covariance_type, prior.mean, prior.mean_precision,
                              prior.degrees_of_freedom, prior.covariance)
    off = params.means - mu0
    if t in ("full", "tied"):
        stack = covs if t == "full" else covs[:1]
        power = nu + D + 2 if t == "full" else nu + D + 1 + K
        for S in stack:
            value += -0.5 * power * np.linalg.slogdet(S)[1] - 0.5 * np.trace(psi @ np.linalg.inv(S))
        for k in range(K):
            value += -0.5 * kappa * off[k] @ np.linalg.solve(covs[k], off[k])
    elif t == "diag":
        lam = 1.0 / params.covariances
        value += ((0.5 * nu - 0.5) * np.log(lam) - 0.5 * psi * lam
                  - 0.5 * kappa * lam * off**2).sum()
    else:
        lam = 1.0 / params.covariances
        value += ((0.5 * nu - 1 + 0.5 * D) * np.log(lam) - 0.5 * psi * lam
                  - 0.5 * kappa * lam * (off**2).sum(axis=1)).sum()
    return value


def numerical_argmax(mixture, family, stats, packed, covariance_type):
    objective = lambda z: -mixture.objective(  # noqa: E731
        family, from_free(z, covariance_type), stats, packed)
    # from equal weights, zero means and unit covariances (the objective is unimodal here)
    with threadpool_limits(1):  # tiny matrices: BLAS threads only spin
        result = minimize(objective, np.zeros(n_free(covariance_type)), method="BFGS",
                          options=dict(gtol=1e-8, maxiter=5000))
    return from_free(result.x, covariance_type), -result.fun


# ------------------------------------------------------------------ 1. closed forms
@pytest.mark.parametrize("with_prior", [True, False], ids=["map", "ml"])
def test_m_step_is_the_argmax_of_the_objective(covariance_type, with_prior):
    X, resp = tiny_data()
    prior = tiny_prior(covariance_type) if with_prior else None
    alpha = 2.5 if with_prior else 1.0
    family = GaussianFamily(covariance_type, reg_covar=0.0, prior=prior)
    mixture = Mixture(alpha)
    stats, packed = stats_from_resp(family, X, resp, X[:K].copy())
    exact, lost = mixture.m_step(family, stats, packed)
    assert lost.size == 0
    numeric, best = numerical_argmax(mixture, family, stats, packed, covariance_type)
    assert mixture.objective(family, exact, stats, packed) >= best - 1e-9
    np.testing.assert_allclose(exact.weights, numeric.weights, atol=1e-6)
    exact, numeric = exact.components, numeric.components
    np.testing.assert_allclose(exact.means, numeric.means, atol=1e-5)
    np.testing.assert_allclose(exact.covariances, numeric.covariances, atol=1e-5)


def test_objective_is_the_log_posterior(covariance_type):
    """objective(theta) - objective(theta') equals the same difference of a direct NumPy
    evaluation of J + log p, for the stated densities (and the pivot does not matter)."""
    X, resp = tiny_data(1)
    prior = tiny_prior(covariance_type)
    family = GaussianFamily(covariance_type, reg_covar=0.0, prior=prior)
    mixture = Mixture(1.7)
    stats, packed = stats_from_resp(family, X, resp, X[:K].copy())
    other_stats, other_packed = stats_from_resp(family, X, resp, X[5:5 + K] + 3.0)
    rng = np.random.RandomState(2)
    sets = [mixture.m_step(family, stats, packed)[0]] + [
        from_free(rng.randn(n_free(covariance_type)), covariance_type) for _ in range(3)]
    ours = np.array([mixture.objective(family, p, stats, packed) for p in sets])
    moved = np.array([mixture.objective(family, p, other_stats, other_packed) for p in sets])
    direct = np.array([direct_log_posterior(p, X, resp, prior, 1.7) for p in sets])
    np.testing.assert_allclose(ours - ours[0], direct - direct[0], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(moved - moved[0], direct - direct[0], rtol=1e-9, atol=1e-9)
    # log_prior alone: the same with zero responsibilities
    zero = np.zeros_like(resp)
    priors = np.array([mixture.log_prior(family, p) for p in sets])
    alone = np.array([direct_log_posterior(p, X, zero, prior, 1.7) for p in sets])
    np.testing.assert_allclose(priors - priors[0], alone - alone[0], rtol=1e-9, atol=1e-9)


def test_newton_steps_reach_the_m_step(covariance_type):
    """From far away (precisions 10x too large: the full Newton step is not positive
    definite), partial M-steps only ascend and converge to the exact MAP M-step."""
    X, resp = tiny_data(3)
    family = GaussianFamily(covariance_type, reg_covar=0.0, prior=tiny_prior(covariance_type))
    mixture = Mixture(2.0)
    stats, packed = stats_from_resp(family, X, resp, X[:K].copy())
    exact, _ = mixture.m_step(family, stats, packed)
    start = MixtureParams(np.full(K, 1.0 / K), GaussianParams.from_covariances(
        covariance_type, np.zeros((K, D)), exact.components.covariances / 10.0))
    params, values = start, [mixture.objective(family, start, stats, packed)]
    for _ in range(40):
        params, lost = partial_m_step(mixture, family, params, stats, packed, 1)
        values.append(mixture.objective(family, params, stats, packed))
        assert lost.size == 0
    assert (np.diff(values) >= 0).all()
    np.testing.assert_allclose(params.weights, exact.weights, rtol=1e-12)
    params, exact = params.components, exact.components
    np.testing.assert_allclose(params.covariances, exact.covariances, rtol=1e-9)
    np.testing.assert_allclose(params.means, exact.means, rtol=1e-12)


def test_frozen_means_covariance_is_the_scatter_about_them(covariance_type):
    X, resp = tiny_data(4)
    family = GaussianFamily(covariance_type, reg_covar=0.0, frozen=("means",))
    stats, packed = stats_from_resp(family, X, resp, X[:K].copy())
    fixed_means = np.array([[0.5, -0.5], [1.0, 2.0]])
    start = GaussianParams.from_covariances(
        covariance_type, fixed_means,
        GaussianFamily(covariance_type).m_step(Statistics(stats, K), packed).covariances)
    params = family.m_step(Statistics(stats, K), packed, start)
    assert params.means is fixed_means
    diff = X[None] - fixed_means[:, None]  # (K, N, D)
    scatter = np.einsum("nk,kna,knb->kab", resp, diff, diff)
    nk = resp.sum(axis=0)
    expected = {
        "full": lambda: scatter / nk[:, None, None],
        "tied": lambda: scatter.sum(axis=0) / N,
        "diag": lambda: np.diagonal(scatter, axis1=1, axis2=2) / nk[:, None],
        "spherical": lambda: np.trace(scatter, axis1=1, axis2=2) / (D * nk),
    }[covariance_type]()
    np.testing.assert_allclose(params.covariances, expected, rtol=1e-12)


# ------------------------------------------------------------- 2. monotone objective
def blob_data(seed, n, d, k):
    rng = np.random.RandomState(seed)
    centres = 3 * rng.randn(k, d)
    X = rng.randn(n, d) * rng.uniform(0.2, 2.0, size=d) + centres[rng.randint(0, k, n)]
    return rng, X


@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(20, 200),
    d=st.integers(1, 3),
    k=st.integers(1, 4),
    covariance_type=st.sampled_from(COVARIANCE_TYPES),
    dtype=st.sampled_from([np.float64, np.float32]),
    mode=st.sampled_from(["map", "partial1", "partial3", "map+partial"]),
    frozen=st.sampled_from([(), ("means",), ("weights",)]),
)
def test_objective_never_decreases(seed, n, d, k, covariance_type, dtype, mode, frozen):
    rng, X = blob_data(seed, n, d, k)
    options = dict(frozen=frozen)
    if "map" in mode:
        options.update(mean_precision_prior=float(rng.uniform(0.01, 5.0)),
                       weight_concentration_prior=float(rng.uniform(1.0, 3.0)),
                       degrees_of_freedom_prior=float(d + rng.uniform(0.5, 3.0)))
    if "partial" in mode:
        options.update(m_step="partial", m_step_iters=3 if mode == "partial3" else 1)
    model = GaussianMixture(k, covariance_type=covariance_type, reg_covar=0.0, tol=0.0,
                            max_iter=15, random_state=seed, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model.fit(X.astype(dtype))
        except ValueError as exc:
            assert "map" not in mode, exc  # a prior keeps every covariance well defined
            assert "ill-defined empirical covariance" in str(exc)
            reject()
    bounds = np.array(model.lower_bounds_)
    assert np.isfinite(bounds).all()
    slack = (1e-5 if dtype == np.float32 else 1e-11) * np.maximum(1.0, np.abs(bounds[:-1]))
    assert (np.diff(bounds) >= -slack).all(), np.diff(bounds)


def test_lower_bound_is_the_log_posterior(covariance_type):
    """With a prior, lower_bound_ is (log-likelihood + log p(theta)) / n of the E-step's
    parameters: after convergence, those of the fitted model."""
    _, X = blob_data(5, 300, 2, 2)
    model = GaussianMixture(2, covariance_type=covariance_type, reg_covar=0.0, tol=1e-13,
                            max_iter=1000, random_state=0, mean_precision_prior=0.5,
                            weight_concentration_prior=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    family = model._build_family(LocalDriver(X), np.random.RandomState(0))
    log_prior = model._latent().log_prior(family, model._fitted_params())
    expected = model.score(X) + log_prior / X.shape[0]
    assert model.lower_bound_ == pytest.approx(expected, rel=1e-9)


# ------------------------------------------------------------------ 3. fixed point
@pytest.mark.parametrize("prior", [False, True], ids=["ml", "map"])
def test_partial_reaches_the_exact_fixed_point(covariance_type, prior):
    _, X = blob_data(6, 300, 2, 2)
    start = GaussianMixture(2, covariance_type=covariance_type, max_iter=2,
                            random_state=0).fit(X)
    options = dict(covariance_type=covariance_type, reg_covar=0.0, tol=1e-14, max_iter=2000,
                   weights_init=start.weights_, means_init=start.means_,
                   precisions_init=start.precisions_)
    if prior:
        options.update(mean_precision_prior=0.5, weight_concentration_prior=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exact = GaussianMixture(2, **options).fit(X)
        partial = GaussianMixture(2, m_step="partial", m_step_iters=1, **options).fit(X)
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(partial, name), getattr(exact, name), rtol=1e-6,
                                   atol=1e-9, err_msg=name)
    assert partial.lower_bound_ == pytest.approx(exact.lower_bound_, rel=1e-10)


# ------------------------------------------------------------------ 4. frozen
@pytest.mark.parametrize("m_step", ["exact", "partial"])
@pytest.mark.parametrize("name", ["weights", "means", "covariances"])
def test_frozen_parameters_stay_fixed(covariance_type, name, m_step):
    _, X = blob_data(7, 200, 2, 3)
    start = GaussianMixture(3, covariance_type=covariance_type, max_iter=1,
                            random_state=0).fit(X)
    weights = np.array([0.2, 0.3, 0.5])
    means = start.means_ + 0.25
    precisions = start.precisions_ * 0.7
    chol = cholesky_from_precisions(precisions, covariance_type)
    seen = []
    model = GaussianMixture(3, covariance_type=covariance_type, reg_covar=0.0, tol=0.0,
                            max_iter=10, weights_init=weights, means_init=means,
                            precisions_init=precisions, frozen=(name,), m_step=m_step,
                            mean_precision_prior=1.0,
                            callback=lambda m: seen.append(
                                (m.weights_.copy(), m.means_.copy(), m.covariances_.copy())))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    expected = {"weights": weights, "means": means,
                "covariances": covariances_from_cholesky(chol, covariance_type)}[name]
    index = ("weights", "means", "covariances").index(name)
    assert len(seen) == 10
    for values in seen:
        assert np.array_equal(values[index], expected)
    assert np.array_equal(getattr(model, name + "_"), expected)
    if name == "covariances":
        assert np.array_equal(model.precisions_cholesky_, chol)
    others = [n for n in ("weights", "means", "covariances") if n != name]
    assert not any(np.array_equal(getattr(model, n + "_"), getattr(start, n + "_"))
                   for n in others)  # the rest did move


@pytest.mark.parametrize("init_params", ["kmeans", "random"])
def test_frozen_without_inits(covariance_type, init_params):
    """Frozen parameters without *_init stay at the initialisation's values."""
    _, X = blob_data(8, 150, 2, 2)
    seen = []
    model = GaussianMixture(2, covariance_type=covariance_type, frozen=("means", "weights"),
                            init_params=init_params, random_state=0, max_iter=5, tol=0.0,
                            callback=lambda m: seen.append((m.weights_.copy(), m.means_.copy())))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    for weights, means in seen:
        assert np.array_equal(weights, seen[0][0]) and np.array_equal(means, seen[0][1])


@settings(max_examples=15, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(20, 200), d=st.integers(1, 3),
       k=st.integers(1, 3), covariance_type=st.sampled_from(COVARIANCE_TYPES),
       m_step=st.sampled_from(["exact", "partial"]))
def test_log_likelihood_monotone_with_frozen_means(seed, n, d, k, covariance_type, m_step):
    rng, X = blob_data(seed, n, d, k)
    model = GaussianMixture(k, covariance_type=covariance_type, reg_covar=0.0, tol=0.0,
                            max_iter=15, random_state=seed, frozen=("means",),
                            means_init=X[rng.choice(n, k, replace=False)], m_step=m_step)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model.fit(X)
        except ValueError as exc:
            assert "ill-defined empirical covariance" in str(exc)
            reject()
    bounds = np.array(model.lower_bounds_)
    assert (np.diff(bounds) >= -1e-11 * np.maximum(1.0, np.abs(bounds[:-1]))).all()


# ------------------------------------------------------------------ 5. collapse
def test_prior_keeps_components_from_collapsing(covariance_type):
    rng = np.random.RandomState(0)
    X = np.repeat(rng.randn(3, 2) * 5, 10, axis=0)  # three points, each ten times
    ml = GaussianMixture(3, covariance_type=covariance_type, reg_covar=0.0, random_state=0)
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        ml.fit(X)
    for m_step in ("exact", "partial"):
        model = GaussianMixture(3, covariance_type=covariance_type, reg_covar=0.0,
                                random_state=0, mean_precision_prior=1.0, m_step=m_step,
                                max_iter=200)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X)
        assert np.isfinite(model.lower_bounds_).all()
        assert (np.diff(model.lower_bounds_) >= -1e-11 * np.abs(model.lower_bounds_[:-1])).all()
        stack = np.reshape(model.covariances_, (-1,) + np.shape(model.covariances_)[-2:]) \
            if covariance_type in ("full", "tied") else None
        if stack is not None:
            assert (np.linalg.eigvalsh(stack) > 0).all()
        else:
            assert (model.covariances_ > 0).all()
        assert np.isfinite(model.score_samples(X)).all()


# ------------------------------------------------------------------ 6. bad priors
@pytest.mark.parametrize("options, match", [
    (dict(weight_concentration_prior=0.5), "weight_concentration_prior"),
    (dict(weight_concentration_prior=np.nan), "weight_concentration_prior"),
    (dict(weight_concentration_prior="2"), "weight_concentration_prior"),
    (dict(mean_precision_prior=0.0), "mean_precision_prior must be > 0"),
    (dict(mean_precision_prior=-1.0), "mean_precision_prior must be > 0"),
    (dict(mean_precision_prior=np.inf), "mean_precision_prior"),
    (dict(degrees_of_freedom_prior=1.0), "degrees_of_freedom_prior must be > 2"),
    (dict(degrees_of_freedom_prior=1.0, covariance_type="diag"),
     "degrees_of_freedom_prior must be > 1"),
    (dict(degrees_of_freedom_prior=0.0, covariance_type="spherical"),
     "degrees_of_freedom_prior must be > 0"),
    (dict(covariance_prior=[[1.0, 2.0], [2.0, 1.0], [0.0, 0.0]]), "covariance_prior"),
    (dict(covariance_prior=np.diag([1.0, 1.0, -1.0])), "positive-definite"),
    (dict(covariance_prior=[[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
     "symmetric"),
    (dict(covariance_prior=[1.0, 0.0, 1.0], covariance_type="diag"), "positive"),
    (dict(covariance_prior=[1.0, 1.0], covariance_type="diag"), "covariance_prior"),
    (dict(covariance_prior=-1.0, covariance_type="spherical"), "positive"),
    (dict(mean_prior=[0.0, 0.0]), "mean_prior"),
    (dict(mean_prior=[0.0, np.nan, 0.0]), "mean_prior"),
    (dict(frozen=("mean",)), "frozen"),
    (dict(frozen=("means", "precisions")), "frozen"),
])
def test_bad_prior_parameters(options, match):
    X = np.random.RandomState(0).randn(50, 3)
    with pytest.raises(ValueError, match=match):
        GaussianMixture(2, **options).fit(X)
