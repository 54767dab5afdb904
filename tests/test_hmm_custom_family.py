"""A custom (Numba) family as HMM emissions: a log-normal HMM fitted on X runs the same EM
iterates as a diagonal Gaussian HMM fitted on log X, with every sequence's log-likelihood lower
by the Jacobian sum_t sum_j log x_tj (the posteriors are unchanged)."""
import numpy as np
import pytest

pytest.importorskip("numba")

import lognormal_family  # noqa: E402

from fastem import hmm  # noqa: E402
from fastem.families.gaussian import GaussianFamily, GaussianParams  # noqa: E402

K, D = 3, 2


def test_lognormal_hmm_iterates_equal_gaussian_hmm_on_log_data():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 1.0], [2.0, -1.0], [-1.5, 0.5]])
    states = np.repeat(rng.integers(0, K, 60), 25)  # runs of 25 rows in one state
    X = np.exp(centres[states] + 0.4 * rng.normal(size=(states.size, D)))
    lengths = [400, 1, 599, 500]
    start_mu, start_var = np.log(X[[0, 100, 900]]), np.ones((K, D))
    lognormal = lognormal_family.make_family(D)
    fits = []
    for family, Y, components in (
            (lognormal, X, lognormal.make_params(lognormal_family.LogNormalParams(
                start_mu, start_var))),
            (GaussianFamily("diag", reg_covar=1e-6), np.log(X),
             GaussianParams.from_covariances("diag", start_mu, start_var))):
        model = hmm.HMM(family, K, n_iter=12, tol=-np.inf, init_params="", n_threads=2)
        model.startprob_, model.transmat_ = np.full(K, 1.0 / K), np.full((K, K), 1.0 / K)
        model.components_ = components
        fits.append(model.fit(Y, lengths))
    jacobian = np.log(X).sum()
    np.testing.assert_allclose(np.array(fits[0].monitor_.history) + jacobian,
                               fits[1].monitor_.history, rtol=1e-12)
    np.testing.assert_allclose(fits[0].transmat_, fits[1].transmat_, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(fits[0].components_.mu, fits[1].components_.means, rtol=1e-9)
    np.testing.assert_allclose(fits[0].components_.var, fits[1].components_.covariances,
                               rtol=1e-8)
    np.testing.assert_array_equal(fits[0].predict(X, lengths), fits[1].predict(np.log(X),
                                                                                lengths))
    with pytest.raises(ValueError, match="log-normal values must be positive"):
        fits[0].score(-X, lengths)
