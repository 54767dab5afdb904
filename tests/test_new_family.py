"""A new emission family is one module (tests/lognormal_family.py) and no edit of the engine,
the drivers or the latent layer: a log-normal mixture fitted on X runs the same EM iterates as a
diagonal Gaussian mixture fitted on log X, with every log-density lower by sum_j log x_j."""
import numpy as np
import pytest

pytest.importorskip("numba")

import lognormal_family  # noqa: E402

from fastem import MixtureModel  # noqa: E402
from fastem.drivers import make_driver  # noqa: E402
from fastem.em import run_em  # noqa: E402
from fastem.families.gaussian import GaussianFamily, GaussianParams  # noqa: E402
from fastem.latent.mixture import Mixture, MixtureParams  # noqa: E402

K, D = 3, 2


def data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 1.0], [2.0, -1.0], [-1.5, 0.5]])
    return np.exp(centres[rng.integers(0, K, n)] + 0.4 * rng.normal(size=(n, D)))


def test_lognormal_iterates_equal_gaussian_on_log_data():
    X = data()
    start_mu, start_var = np.log(X[[0, 1, 2]]), np.ones((K, D))
    weights = np.full(K, 1.0 / K)
    mixture = Mixture()
    lognormal = lognormal_family.make_family(D)
    runs = []
    for family, Y, components in (
            (lognormal, X, lognormal.make_params(lognormal_family.LogNormalParams(
                start_mu, start_var))),
            (GaussianFamily("diag", reg_covar=1e-6), np.log(X),
             GaussianParams.from_covariances("diag", start_mu, start_var))):
        runs.append(run_em(mixture, family, make_driver(Y, n_threads=2),
                           MixtureParams(weights, components), tol=0.0, max_iter=15,
                           rng=np.random.default_rng(0)))
    shift = np.log(X).sum(axis=1).mean()  # the Jacobian of x -> log x, per row
    np.testing.assert_allclose(np.array(runs[0].lower_bounds) + shift, runs[1].lower_bounds,
                               rtol=1e-12)
    np.testing.assert_allclose(runs[0].params.weights, runs[1].params.weights, rtol=1e-10)
    np.testing.assert_allclose(runs[0].params.mu, runs[1].params.means, rtol=1e-10)
    np.testing.assert_allclose(runs[0].params.var, runs[1].params.covariances, rtol=1e-8)


def test_lognormal_mixture_model_fits_predicts_and_checks_support():
    X = data(seed=1)
    model = MixtureModel(lognormal_family.make_family(D), K, random_state=0, tol=1e-6, n_init=5,
                         init_params="random_from_data",  # k-means of raw x misleads here
                         max_iter=500).fit(X)
    assert model.converged_ and (np.diff(model.lower_bounds_) >= -1e-12).all()
    np.testing.assert_allclose(np.sort(model.params_.mu[:, 0]), [-1.5, 0.0, 2.0], atol=0.05)
    assert model.predict(X).shape == (len(X),)
    assert model.bic(X) == pytest.approx(-2 * model.score(X) * len(X)
                                         + (K - 1 + 2 * K * D) * np.log(len(X)))
    bad = X.copy()
    bad[7, 1] = -1.0
    with pytest.raises(ValueError, match="log-normal values must be positive.*row 7"):
        MixtureModel(lognormal_family.make_family(D), K).fit(bad)
