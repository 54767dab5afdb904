"""float32 data computed in float32 (issue 18): the diagonal kinds' register kernels at every
component count against NumPy, a row's result independent of its neighbours, and float32 fits
within the README's bound (1e-3 nats per row) of float64 fits on shifted and scaled data."""
import warnings

import numpy as np
import pytest
from test_kernels_api import reference_log_prob

from fastem import GaussianMixture, kernels
from fastem.families.gaussian import EXPFAM_MAX_ERROR

TOLERANCE = {np.float64: 1e-10, np.float32: 2e-4}


def diagonal_problem(covariance_type, k, d, dtype, n=37, seed=0):
    """Rows near k random components (diag or spherical precision Cholesky factors)."""
    rng = np.random.RandomState(seed)
    means = rng.uniform(-3, 3, size=(k, d))
    shape = (k, d) if covariance_type == "diag" else (k,)
    chol = rng.uniform(0.5, 2.0, size=shape)
    X = (means[rng.randint(k, size=n)] + rng.randn(n, d)).astype(dtype)
    return X, means, chol


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 17, 20, 33])
@pytest.mark.parametrize("d", [1, 3, 8])
def test_diagonal_log_prob_for_every_component_count(dtype, covariance_type, k, d):
    """Register blocks of 4, 2 and 1 AVX2 registers and the zero-padded last components (K
    not a multiple of the lanes), for 37 rows (four at a time, one left over)."""
    X, means, chol = diagonal_problem(covariance_type, k, d, dtype)
    ours = kernels.gaussian_log_prob(X, means, chol, covariance_type, n_threads=1)
    expected = reference_log_prob(X, means, chol, covariance_type)
    scale = np.maximum(1.0, np.abs(expected))
    assert np.abs(ours - expected).max() / scale.max() < TOLERANCE[dtype]


def test_wide_features_take_the_component_by_component_path():
    """float32 diag with D = 300: 600 features x 8 lanes exceed the stack copy of the last
    components' weights, which are then summed one by one."""
    X, means, chol = diagonal_problem("diag", 3, 300, np.float32, n=9)
    ours = kernels.gaussian_log_prob(X, means, chol, "diag", n_threads=1)
    expected = reference_log_prob(X, means, chol, "diag")
    assert np.abs(ours - expected).max() / np.abs(expected).max() < TOLERANCE[np.float32]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k", [3, 8, 13])
def test_a_rows_log_density_does_not_depend_on_its_neighbours(dtype, k):
    """Rows are taken four (or two) at a time; a row's value must be the same in any group,
    which is what makes results independent of chunk boundaries and thread counts."""
    X, means, chol = diagonal_problem("diag", k, 5, dtype, n=23)
    whole = kernels.gaussian_log_prob(X, means, chol, "diag", n_threads=1)
    for skip in (1, 2, 3):
        shifted = kernels.gaussian_log_prob(X[skip:], means, chol, "diag", n_threads=1)
        np.testing.assert_array_equal(shifted, whole[skip:])
    chunked = kernels.gaussian_log_prob(X, means, chol, "diag", n_threads=2, chunk_size=5)
    np.testing.assert_array_equal(chunked, whole)


def clusters(shift, scale, n=3000, seed=0):
    """Three separated diagonal clusters in 4 dimensions, scaled, then shifted."""
    rng = np.random.RandomState(seed)
    centres = np.array([[0.0, 0, 0, 0], [6, -4, 2, 0], [-5, 5, 5, -6]])
    spreads = np.array([[1.0, 0.5, 2, 1], [0.7, 1, 1, 0.4], [1.5, 1, 0.5, 1]])
    z = rng.randint(3, size=n)
    X = centres[z] + spreads[z] * rng.randn(n, 4)
    return (X * scale + shift).astype(np.float32)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("shift, scale", [(0, 1), (1e4, 1), (0, 1e-3), (0, 1e3), (1e4, 1e3),
                                          (-1e5, 10)])
def test_float32_fit_within_the_bound_of_the_float64_fit(covariance_type, shift, scale):
    """From the same start, a float32 fit's per-row log-likelihood stays within 1e-3 nats of
    the float64 fit's on the same (rounded) values, and so do the log-densities that the
    float32 kernels compute (in float32: no block converted) against the float64 ones. (The
    fitted float32 model's own parameters are float32, as scikit-learn's: means near 1e4
    round by ~5e-4, which moves log-densities by more than the kernels' error.)"""
    X32 = clusters(shift, scale)
    X64 = X32.astype(np.float64)
    start = GaussianMixture(3, covariance_type=covariance_type, max_iter=3,
                            random_state=0).fit(X64)
    init = dict(weights_init=start.weights_, means_init=start.means_,
                precisions_init=start.precisions_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = {dt: GaussianMixture(3, covariance_type=covariance_type, tol=0, max_iter=5,
                                    **init).fit(X) for dt, X in (("32", X32), ("64", X64))}
    bound = EXPFAM_MAX_ERROR[np.dtype(np.float32)]
    assert abs(fits["32"].lower_bound_ - fits["64"].lower_bound_) < bound
    model = fits["64"]
    packed = kernels.pack_gaussian(model.weights_, model.means_, model.precisions_cholesky_,
                                   covariance_type, np.float32)
    assert packed.dtype == np.float32
    per_row = model.score_samples(X32) - model.score_samples(X64)
    assert np.abs(per_row).max() < bound


@pytest.mark.filterwarnings("ignore::fastem.ConvergenceWarning")  # max_iter=5, tol=0
@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("k", [3, 8])
def test_float32_fit_is_the_same_for_any_thread_count(covariance_type, k):
    """The one-register and padded paths (K = 8 and 3 in float32) and the per-chunk sums in
    locals keep fits bitwise independent of the number of threads."""
    X = clusters(1e3, 1.0, n=5000)
    fits = [GaussianMixture(k, covariance_type=covariance_type, max_iter=5, tol=0,
                            random_state=0, n_threads=threads, chunk_size=256).fit(X)
            for threads in (1, 2)]
    assert fits[0].lower_bound_ == fits[1].lower_bound_
    np.testing.assert_array_equal(fits[0].means_, fits[1].means_)
    np.testing.assert_array_equal(fits[0].covariances_, fits[1].covariances_)
