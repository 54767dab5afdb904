"""float32 full data in the exponential-family form (issue 18): the FMA register tiles of both
products (_full.h, components in lanes, a masked last register, tiles of rows and features
with leftovers) against NumPy in float64 from the same float32 parameters, a row's value
independent of its neighbours, fits bitwise the same for any thread count, and float32 fits
within the README's bound (1e-3 nats per row) of float64 fits on shifted and scaled data."""
import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from test_float32 import assert_close_to_reference

from fastem import GaussianMixture, kernels
from fastem.families.gaussian import (
    EXPFAM_MAX_ERROR,
    KIND_EXPFAM_FULL,
    GaussianFamily,
    GaussianParams,
    precision_cholesky,
)
from fastem.latent.mixture import Mixture, MixtureParams

BOUND = EXPFAM_MAX_ERROR[np.dtype(np.float32)]


def full_problem(k, d, n=203, seed=0, dtype=np.float32):
    """Rows near k components with correlated covariances, packed for data of ``dtype``:
    (X, family, params, packed)."""
    rng = np.random.RandomState(seed)
    means = rng.uniform(-3, 3, size=(k, d))
    mix = rng.randn(k, d, d) * (0.3 / np.sqrt(d)) + np.eye(d)
    cov = mix @ mix.transpose(0, 2, 1)
    X = (means[rng.randint(k, size=n)] + rng.randn(n, d)).astype(dtype)
    weights = rng.dirichlet(np.ones(k))
    family = GaussianFamily("full")
    params = MixtureParams(weights, GaussianParams("full", means, cov,
                                                   precision_cholesky(cov, "full")))
    packed = Mixture().pack(family, params, dtype)
    assert packed.dtype == dtype and packed.kind == KIND_EXPFAM_FULL
    return X, family, params, packed


def assert_same_fits(fits):
    """Every fit of ``fits`` bitwise the first's: lower bound, means and covariances."""
    for other in fits[1:]:
        assert other.lower_bound_ == fits[0].lower_bound_
        np.testing.assert_array_equal(other.means_, fits[0].means_)
        np.testing.assert_array_equal(other.covariances_, fits[0].covariances_)


def features(X, packed):
    """t(x) = [v, v_a v_b for a <= b], v = x - s, in float64."""
    v = X.astype(np.float64) - packed.pivot[0].astype(np.float64)
    a, b = np.triu_indices(v.shape[1])
    return np.hstack([v, v[:, a] * v[:, b]])


def reference_pass(X, packed, weights):
    """[sum w log p(x_i), sum w, s0, [s1 | s2]] of one E-step in float64 NumPy."""
    t = features(X, packed)
    log_prob = packed.log_norm + t @ packed.proj.astype(np.float64)
    lse = logsumexp(log_prob, axis=1)
    resp = np.exp(log_prob - lse[:, None]) * weights[:, None]
    used = weights != 0
    return np.concatenate([[(weights[used] * lse[used]).sum(), weights.sum()], resp.sum(axis=0),
                           (resp.T @ t).ravel()])


@pytest.mark.parametrize("k", [1, 3, 8, 9, 16, 17, 20, 30, 33])
@pytest.mark.parametrize("d", [1, 3, 16])
def test_full_float32_log_prob_against_numpy(k, d):
    """37 rows: six-row tiles and leftovers; K = 9: a masked last register; K > 16: rows in the
    lanes, a tile of three registers of rows, one, and a masked last one (37 = 24 + 8 + 5),
    K = 17, 20, 30, 33 with a last group of 1, 4, 2, 1 components."""
    X, family, params, packed = full_problem(k, d, n=37)
    ours = kernels.gaussian_log_prob(X, params.means, params.precisions_cholesky, "full",
                                     n_threads=1)
    want = packed.log_norm + features(X, packed) @ packed.proj.astype(np.float64)
    want -= np.log(params.weights)  # gaussian_log_prob without weights: component densities
    assert np.abs(ours - want).max() < 1e-4 * np.abs(want).max()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [3, 16, 17])
def test_a_rows_full_log_density_does_not_depend_on_its_neighbours(k, dtype):
    X, family, params, packed = full_problem(k, 5, n=41, dtype=dtype)
    args = (params.means, params.precisions_cholesky, "full")
    whole = kernels.gaussian_log_prob(X, *args, n_threads=1)
    for skip in (1, 2, 5):
        np.testing.assert_array_equal(kernels.gaussian_log_prob(X[skip:], *args, n_threads=1),
                                      whole[skip:])
    np.testing.assert_array_equal(kernels.gaussian_log_prob(X, *args, n_threads=2,
                                                            chunk_size=7), whole)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("k", [1, 3, 9, 16, 20])
@pytest.mark.parametrize("d", [1, 4, 7, 16])
def test_full_float32_e_step_matches_numpy(k, d, weighted):
    """Chunks of 300 rows: one full 256-row block of the statistics and a partial one (and
    smaller chunks at the end); D = 7: 35 features, the statistics' groups of twelve, four and
    one; zero weights add nothing."""
    X, family, params, packed = full_problem(k, d, n=700)
    rng = np.random.RandomState(1)
    weights = rng.uniform(0.5, 2.0, X.shape[0]) if weighted else np.ones(X.shape[0])
    if weighted:
        weights[[0, 17, 18, 300]] = 0.0
    e = kernels.family_e_step(X, family, params, sample_weight=weights if weighted else None,
                              n_threads=2, chunk_size=300)
    assert_close_to_reference(e.statistics, reference_pass(X, packed, weights), k, X.shape[0])


def clusters(shift, scale, k=3, d=6, n=4000, seed=0):
    """k correlated clusters in d dimensions, scaled, then shifted; float32."""
    rng = np.random.RandomState(seed)
    centres = rng.uniform(-10, 10, size=(k, d))
    mix = rng.randn(k, d, d) * (0.3 / np.sqrt(d)) + np.eye(d)
    z = rng.randint(k, size=n)
    X = centres[z] + np.einsum("nd,nde->ne", rng.randn(n, d), mix[z])
    return (X * scale + shift).astype(np.float32)


@pytest.mark.parametrize("shift, scale", [(0, 1), (1e4, 1), (0, 1e-3), (0, 1e3), (-1e5, 10)])
@pytest.mark.parametrize("k", [3, 9])
def test_full_float32_fit_within_the_bound_of_the_float64_fit(shift, scale, k):
    """From the same start, the float32 fit's lower bound stays within 1e-3 nats per row of
    the float64 fit's on the same values; all of these run the float32 exponential-family form."""
    X32 = clusters(shift, scale, k=k)
    X64 = X32.astype(np.float64)
    start = GaussianMixture(k, covariance_type="full", max_iter=3, random_state=0).fit(X64)
    init = dict(weights_init=start.weights_, means_init=start.means_,
                precisions_init=start.precisions_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = {dt: GaussianMixture(k, covariance_type="full", tol=0, max_iter=5,
                                    **init).fit(X) for dt, X in (("32", X32), ("64", X64))}
    assert fits["32"].means_.dtype == np.float32
    assert abs(fits["32"].lower_bound_ - fits["64"].lower_bound_) < BOUND
    model = fits["64"]
    packed = kernels.pack_gaussian(model.weights_, model.means_, model.precisions_cholesky_,
                                   "full", np.float32)
    assert packed.kind == KIND_EXPFAM_FULL and packed.dtype == np.float32
    per_row = model.score_samples(X32) - model.score_samples(X64)
    assert np.abs(per_row).max() < BOUND


@pytest.mark.filterwarnings("ignore::fastem.ConvergenceWarning")  # max_iter=5, tol=0
@pytest.mark.parametrize("k", [3, 16, 17])
@pytest.mark.parametrize("chunk_size", [37, 300])
def test_full_float32_fit_is_the_same_for_any_thread_count(k, chunk_size):
    X = clusters(0, 1.0, k=4, d=5, n=5000)
    fits = [GaussianMixture(k, covariance_type="full", max_iter=5, tol=0, random_state=0,
                            n_threads=threads, chunk_size=chunk_size).fit(X)
            for threads in (1, 2, 3)]
    assert_same_fits(fits)


@pytest.mark.filterwarnings("ignore::fastem.ConvergenceWarning")  # max_iter=4, tol=0
def test_full_float32_memmap_fit_equals_in_memory(tmp_path):
    """A file is read in blocks of chunks, an array in one block: bitwise the same fit."""
    X = clusters(0, 1.0, k=4, d=5, n=6000)
    path = tmp_path / "data.npy"
    np.save(path, X)
    fits = [GaussianMixture(16, covariance_type="full", max_iter=4, tol=0, random_state=0,
                            n_threads=2, chunk_size=64).fit(source)
            for source in (X, np.load(path, mmap_mode="r"))]
    assert fits[0].means_.dtype == np.float32
    assert_same_fits(fits)
