"""float32 full and tied data whose components are too far apart for the exponential-family
form in float32 (issue 18): the kinds centred per component compute in float32 (no block
converted), agree with a NumPy reference and with float64 fits within the README's bound (1e-3
nats per row) on shifted and scaled data, and are bitwise the same for any thread count."""
import warnings

import numpy as np
import pytest
from test_kernels_api import reference_log_prob

from fastem import GaussianMixture, kernels
from fastem.families.gaussian import (
    EXPFAM_MAX_ERROR,
    KIND_FULL_CENTRED,
    KIND_TIED_CENTRED,
    precision_cholesky,
)

BOUND = EXPFAM_MAX_ERROR[np.dtype(np.float32)]
CENTRED = {"full": KIND_FULL_CENTRED, "tied": KIND_TIED_CENTRED}


def tight_clusters(shift, scale, d=4, n=3000, seed=0):
    """Three clusters ~6 apart with spreads ~1e-3 (thousands of standard deviations apart:
    beyond the exponential-family bound in float32, and for tied in float64 too), in d
    dimensions, scaled, then shifted; float32."""
    rng = np.random.RandomState(seed)
    centres = rng.uniform(-6, 6, size=(3, d))
    mix = rng.randn(3, d, d) * 0.3 + np.eye(d)  # correlated axes
    z = rng.randint(3, size=n)
    X = centres[z] + 1e-3 * np.einsum("nd,nde->ne", rng.randn(n, d), mix[z])
    return (X * scale + shift).astype(np.float32)


def centred_problem(covariance_type, k, d, n, seed=0):
    """Rows near k components ~1e4 standard deviations apart, and their parameters."""
    rng = np.random.RandomState(seed)
    means = rng.uniform(-1e4, 1e4, size=(k, d)) + 5e4
    mix = rng.randn(k, d, d) * 0.15 + np.eye(d)
    cov = mix @ mix.transpose(0, 2, 1)
    cov = cov if covariance_type == "full" else cov[0]
    chol = precision_cholesky(cov, covariance_type)
    noise = rng.randn(n, d) @ np.linalg.cholesky(cov if covariance_type == "tied" else cov[0]).T
    X = (means[rng.randint(k, size=n)] + noise).astype(np.float32)
    return X, means, chol


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
@pytest.mark.parametrize("k, d, n", [(1, 1, 5), (3, 3, 37), (2, 5, 16), (16, 16, 70),
                                     (4, 17, 33), (5, 20, 100)])
def test_centred_log_prob_against_numpy(covariance_type, k, d, n):
    """Four-column blocks and single columns of L, full and partial 16-row tiles: each value
    within float32 rounding of NumPy's float64 value on the same (rounded) rows."""
    X, means, chol = centred_problem(covariance_type, k, d, n)
    weights = np.full(k, 1.0 / k)
    packed = kernels.pack_gaussian(weights, means, chol, covariance_type, np.float32)
    if k > 1:  # a single component is the expfam form's own centre
        assert packed.kind == CENTRED[covariance_type] and packed.dtype == np.float32
    ours = kernels.gaussian_log_prob(X, means, chol, covariance_type, n_threads=1)
    expected = reference_log_prob(X.astype(np.float64), means, chol, covariance_type)
    own = expected.argmax(axis=1)
    rows = np.arange(n)
    assert np.abs(ours - expected)[rows, own].max() < 1e-4  # the rows' own components
    assert (np.abs(ours - expected) / np.maximum(1.0, np.abs(expected))).max() < 1e-6


@pytest.mark.filterwarnings("ignore::fastem.ConvergenceWarning")
@pytest.mark.parametrize("covariance_type", ["full", "tied"])
@pytest.mark.parametrize("shift, scale", [(0, 1), (1e4, 1e3), (0, 1e-3), (0, 1e3), (-1e5, 1e4)])
def test_float32_fit_within_the_bound_of_the_float64_fit(covariance_type, shift, scale):
    """From the same start, the float32 fit (centred kinds, in float32) reaches the float64
    fit's lower bound and per-row log-likelihoods within 1e-3 nats, means and covariances
    within float32 rounding; its fitted arrays stay float32."""
    X32 = tight_clusters(shift, scale)
    X64 = X32.astype(np.float64)
    reg = 1e-12 * scale**2  # a millionth of the clusters' variances, not their size
    start = GaussianMixture(3, covariance_type=covariance_type, max_iter=3, reg_covar=reg,
                            random_state=0).fit(X64)
    init = dict(weights_init=start.weights_, means_init=start.means_,
                precisions_init=start.precisions_, reg_covar=reg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = {dt: GaussianMixture(3, covariance_type=covariance_type, tol=0, max_iter=5,
                                    **init).fit(X) for dt, X in (("32", X32), ("64", X64))}
    model = fits["64"]
    packed = kernels.pack_gaussian(model.weights_, model.means_, model.precisions_cholesky_,
                                   covariance_type, np.float32)
    assert packed.kind == CENTRED[covariance_type] and packed.dtype == np.float32
    assert fits["32"].means_.dtype == np.float32
    assert abs(fits["32"].lower_bound_ - fits["64"].lower_bound_) < BOUND
    per_row = model.score_samples(X32) - model.score_samples(X64)
    assert np.abs(per_row).max() < BOUND
    spread = np.sqrt(np.diagonal(model.covariances_, axis1=-2, axis2=-1)).min()
    np.testing.assert_allclose(fits["32"].means_, model.means_, rtol=0, atol=1e-3 * spread)
    np.testing.assert_allclose(fits["32"].covariances_, model.covariances_, rtol=1e-3,
                               atol=1e-3 * spread**2)


@pytest.mark.filterwarnings("ignore::fastem.ConvergenceWarning")
@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_centred_fit_is_the_same_for_any_thread_count(covariance_type):
    """Chunks of 100 rows (partial tiles and statistics blocks) on 1, 2 and 3 threads."""
    X = tight_clusters(1e3, 10.0, d=5, n=5000)
    fits = [GaussianMixture(3, covariance_type=covariance_type, max_iter=4, tol=0,
                            random_state=0, n_threads=threads, chunk_size=100).fit(X)
            for threads in (1, 2, 3)]
    for other in fits[1:]:
        assert other.lower_bound_ == fits[0].lower_bound_
        np.testing.assert_array_equal(other.means_, fits[0].means_)
        np.testing.assert_array_equal(other.covariances_, fits[0].covariances_)
