"""float64 full data in the exponential-family form: the FMA register tiles of both products
(_full.h, as for float32: components in lanes, a masked last register, tiles of six, three
and single rows, features in blocks; above 16 components, rows in the lanes) against NumPy,
the statistics and lowest row of a pass as NumPy's, and fits bitwise the same for any thread
count and for memory-mapped and in-memory data (a row's value independent of its neighbours:
test_full32.py)."""
import numpy as np
import pytest
from scipy.special import logsumexp
from test_full32 import assert_same_fits, features, full_problem

from fastem import GaussianMixture, kernels
from fastem.drivers.local import LocalDriver
from fastem.latent.mixture import Mixture


@pytest.mark.parametrize("k", [1, 3, 4, 5, 8, 9, 14, 16, 17, 30, 33])
@pytest.mark.parametrize("d", [1, 3, 16])
def test_full_float64_log_prob_against_numpy(k, d):
    """43 rows: six- and three-row tiles and a single row; K = 3, 5, 9: masked last registers;
    K = 14, 16: tiles of four registers, K = 14 with its fourth partial; K > 16: rows in the
    lanes, tiles of three registers of rows, one, and a masked last one (43 = 36 + 4 + 3),
    K = 17, 30, 33 with a last group of 1, 2, 1 components; D = 16: 152 features, two blocks
    of features (three of the lane tiles')."""
    X, family, params, packed = full_problem(k, d, n=43, dtype=np.float64)
    ours = kernels.gaussian_log_prob(X, params.means, params.precisions_cholesky, "full",
                                     n_threads=1)
    want = packed.log_norm + features(X, packed) @ packed.proj - np.log(params.weights)
    np.testing.assert_allclose(ours, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("k, d", [(1, 1), (9, 4), (9, 7), (20, 16), (5, 40)])
def test_full_float64_e_step_matches_numpy(k, d, weighted):
    """Chunks of 300 rows (D = 40: 860 features, seven blocks of 128; D = 7: 35, whose
    statistics take two groups of twelve, two of four and three single features); zero
    weights add nothing."""
    X, family, params, packed = full_problem(k, d, n=700, dtype=np.float64)
    rng = np.random.RandomState(1)
    weights = rng.uniform(0.5, 2.0, X.shape[0]) if weighted else np.ones(X.shape[0])
    if weighted:
        weights[[0, 17, 18, 300, 460]] = 0.0
    X[455] = X.max(axis=0) + 5.0  # the lowest row, in the second chunk
    driver = LocalDriver(X, weights if weighted else None, chunk_size=300, n_threads=2)
    stats, worst = driver.accumulate(family, Mixture().pack(family, params, np.float64))
    t = features(X, packed)
    log_prob = packed.log_norm + t @ packed.proj
    lse = logsumexp(log_prob, axis=1)
    resp = np.exp(log_prob - lse[:, None]) * weights[:, None]
    used = weights != 0
    want = np.concatenate([[(weights[used] * lse[used]).sum(), weights.sum()],
                           resp.sum(axis=0), (resp.T @ t).ravel()])
    np.testing.assert_allclose(stats, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())
    assert worst[1] == np.flatnonzero(used)[np.argmin(lse[used])] == 455
    np.testing.assert_allclose(worst[0], lse[455], rtol=1e-12)


def clusters(k=4, d=40, n=3000, seed=0):
    rng = np.random.RandomState(seed)
    centres = rng.uniform(-5, 5, size=(k, d))
    return centres[rng.randint(k, size=n)] + rng.randn(n, d)


@pytest.mark.filterwarnings("ignore::fastem.ConvergenceWarning")  # max_iter=4, tol=0
@pytest.mark.parametrize("chunk_size", [37, 300])
def test_full_float64_fit_is_the_same_for_any_thread_count(chunk_size):
    """With 37-row chunks a block holds 82 slots of 4,307 statistics, which threads add by
    ranges of entries (_blocks.pyx); one thread adds them whole."""
    X = clusters()
    fits = [GaussianMixture(5, covariance_type="full", max_iter=4, tol=0, random_state=0,
                            n_threads=threads, chunk_size=chunk_size).fit(X)
            for threads in (1, 2, 3)]
    assert_same_fits(fits)


@pytest.mark.filterwarnings("ignore::fastem.ConvergenceWarning")  # max_iter=4, tol=0
def test_full_float64_memmap_fit_equals_in_memory(tmp_path):
    """A file is read in blocks of chunks, an array in one block: bitwise the same fit."""
    X = clusters(n=4000)
    path = tmp_path / "data.npy"
    np.save(path, X)
    fits = [GaussianMixture(6, covariance_type="full", max_iter=4, tol=0, random_state=0,
                            n_threads=2, chunk_size=256).fit(source)
            for source in (X, np.load(path, mmap_mode="r"))]
    assert_same_fits(fits)
