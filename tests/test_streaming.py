"""The engine's contracts: thread-count independence, chunking, memory-mapped data, weights."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from helpers import make_blobs, sklearn_start
from threadpoolctl import threadpool_info, threadpool_limits

from fastem import GaussianMixture
from fastem.families.gaussian import GaussianFamily

FITTED = ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bound_")


def fit(X, covariance_type="full", sample_weight=None, **kw):
    kw = {"n_components": 3, "covariance_type": covariance_type, "random_state": 0,
          "tol": 0.0, "max_iter": 8, **kw}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixture(**kw).fit(X, sample_weight=sample_weight)


@pytest.fixture(scope="module")
def big():
    X, _, _ = make_blobs(n=20000, d=5, k=3, seed=3)
    return X


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bitwise_identical_for_any_thread_count(big, covariance_type, dtype):
    X = big.astype(dtype)
    runs = [fit(X, covariance_type, n_threads=t, chunk_size=128) for t in (1, 2, 3)]
    for other in runs[1:]:
        for name in FITTED:
            np.testing.assert_array_equal(getattr(other, name), getattr(runs[0], name), name)
        assert other.lower_bounds_ == runs[0].lower_bounds_
    for method in ("predict_proba", "score_samples"):
        outputs = [getattr(runs[0].set_params(n_threads=t), method)(X) for t in (1, 2, 3)]
        for other in outputs[1:]:
            np.testing.assert_array_equal(other, outputs[0], method)


@pytest.mark.skipif(bool(os.environ.get("FASTEM_NO_OPENMP")), reason="serial build requested")
def test_kernels_are_built_with_openmp():
    """A serial build passes the thread-count tests too, so check the kernels load OpenMP, in a
    fresh interpreter where no other library (e.g. scikit-learn) has loaded it first."""
    code = ("import fastem._kernels.gaussian; from threadpoolctl import threadpool_info; "
            "print([info['user_api'] for info in threadpool_info()])")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout
    assert "'openmp'" in found, found


def blas_threads():
    """The thread count of every loaded BLAS."""
    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


def spy_on_blas(X, monkeypatch, fail=False):
    """Record BLAS thread counts inside every ``fit_block`` call (or raise there). A first fit
    loads every BLAS library a fit uses, so counts taken before and after a fit compare."""
    fit(X, max_iter=1)
    seen, original = [], GaussianFamily.fit_block

    def fit_block(self, *args, **kwargs):
        seen.append(blas_threads())
        if fail:
            raise RuntimeError("failure inside a pass")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GaussianFamily, "fit_block", fit_block)
    return seen


def test_blas_is_single_threaded_inside_passes_and_restored_after(blobs, monkeypatch):
    X, _, _ = blobs
    seen = spy_on_blas(X, monkeypatch)
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        assert before and max(before) == 2
        fit(X, n_threads=2, max_iter=2)
        assert blas_threads() == before
    assert len(seen) >= 3  # the initialisation pass and two EM passes
    assert all(threads == [1] * len(before) for threads in seen), seen


def test_blas_threads_restored_when_a_pass_fails(blobs, monkeypatch):
    X, _, _ = blobs
    spy_on_blas(X, monkeypatch, fail=True)
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        with pytest.raises(RuntimeError, match="failure inside a pass"):
            fit(X, n_threads=2, max_iter=2)
        assert blas_threads() == before


def test_chunk_size_changes_only_rounding(big, covariance_type):
    reference = fit(big, covariance_type, chunk_size=1000)
    for chunk in (5, 256, 100000):
        other = fit(big, covariance_type, chunk_size=chunk)
        for name in FITTED:
            np.testing.assert_allclose(getattr(other, name), getattr(reference, name),
                                       rtol=1e-10, atol=1e-12, err_msg=name)


def test_memmap_and_npy_path_equal_in_memory(big, tmp_path, covariance_type):
    """Bitwise, although a file is read in blocks of 64 chunks (five here) and an in-memory
    array in one block."""
    path = tmp_path / "data.npy"
    np.save(path, big)
    in_memory = fit(big, covariance_type, chunk_size=64)
    memmap = np.load(path, mmap_mode="r")
    for source in (memmap, str(path), path):
        streamed = fit(source, covariance_type, chunk_size=64)
        for name in FITTED:
            np.testing.assert_array_equal(getattr(streamed, name), getattr(in_memory, name))
        np.testing.assert_array_equal(streamed.predict(source), in_memory.predict(big))


def test_fortran_ordered_and_strided_inputs(big):
    reference = fit(big)
    for view in (np.asfortranarray(big), np.repeat(big, 2, axis=1)[:, ::2]):
        other = fit(view)
        np.testing.assert_array_equal(other.means_, reference.means_)


def test_integer_weights_equal_repeated_rows(covariance_type):
    X, _, _ = make_blobs(n=600, d=3, k=3, seed=5)
    counts = np.random.RandomState(0).randint(1, 4, size=len(X))
    start = sklearn_start(X, 3, covariance_type)
    weighted = fit(X, sample_weight=counts, **start)
    repeated = fit(np.repeat(X, counts, axis=0), **start)
    for name in FITTED:
        np.testing.assert_allclose(getattr(weighted, name), getattr(repeated, name),
                                   rtol=1e-10, atol=1e-13, err_msg=name)
    assert weighted.score(X, sample_weight=counts) == pytest.approx(
        repeated.score(np.repeat(X, counts, axis=0)), rel=1e-12)


def test_zero_weights_equal_dropped_rows(covariance_type):
    X, _, _ = make_blobs(n=600, d=3, k=3, seed=6)
    keep = np.random.RandomState(1).rand(len(X)) < 0.7
    start = sklearn_start(X[keep], 3, covariance_type)
    weighted = fit(X, sample_weight=keep.astype(float), **start)
    dropped = fit(X[keep], **start)
    for name in FITTED:
        np.testing.assert_allclose(getattr(weighted, name), getattr(dropped, name),
                                   rtol=1e-10, atol=1e-13, err_msg=name)


def test_zero_weight_rows_never_seed_initialisation():
    X, _, _ = make_blobs(n=300, d=2, k=2, seed=7)
    outliers = np.full((50, 2), 1e4)
    weights = np.r_[np.ones(len(X)), np.zeros(len(outliers))]
    for init in ("kmeans", "k-means++", "random_from_data", "random"):
        model = fit(np.vstack([X, outliers]), "diag", sample_weight=weights, n_components=2,
                    init_params=init)
        assert np.abs(model.means_).max() < 100, init


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_recovers_known_mixture(covariance_type):
    rng = np.random.RandomState(42)
    means = np.array([[0.0, 0.0, 0.0], [8.0, 0.0, -4.0], [0.0, 9.0, 5.0]])
    stds = np.array([[1.0, 0.5, 2.0], [0.3, 1.5, 1.0], [2.0, 1.0, 0.7]])
    weights = np.array([0.5, 0.3, 0.2])
    z = rng.choice(3, size=60000, p=weights)
    X = means[z] + rng.randn(len(z), 3) * stds[z]
    model = GaussianMixture(3, covariance_type=covariance_type, random_state=0, tol=1e-8,
                            max_iter=300).fit(X)
    order = np.argsort(model.means_[:, 0] + 10 * model.means_[:, 1])
    np.testing.assert_allclose(model.weights_[order], weights, atol=0.01)
    np.testing.assert_allclose(model.means_[order], means, atol=0.05)
    variances = (model.covariances_ if covariance_type == "diag"
                 else np.diagonal(model.covariances_, axis1=1, axis2=2))
    np.testing.assert_allclose(np.sqrt(variances[order]), stds, rtol=0.03)
    assert model.converged_
    labels = np.argsort(order)[model.predict(X)]
    assert (labels == z).mean() > 0.99


def test_sample_draws_from_fitted_mixture(blobs, covariance_type):
    X, _, _ = blobs
    model = fit(X, covariance_type, max_iter=50, tol=1e-6)
    drawn, labels = model.sample(20000)
    assert drawn.shape == (20000, X.shape[1]) and labels.shape == (20000,)
    np.testing.assert_allclose(np.bincount(labels, minlength=3) / 20000, model.weights_,
                               atol=0.02)
    for k in range(3):
        np.testing.assert_allclose(drawn[labels == k].mean(axis=0), model.means_[k], atol=0.1)
    refit = GaussianMixture(3, covariance_type=covariance_type, means_init=model.means_,
                            weights_init=model.weights_, precisions_init=model.precisions_,
                            max_iter=100).fit(drawn)
    np.testing.assert_allclose(refit.means_, model.means_, atol=0.1)


def test_n_init_keeps_best_and_warm_start_continues(blobs):
    X, _, _ = blobs
    single = [fit(X, "full", n_init=1, random_state=s, max_iter=3).lower_bound_ for s in range(3)]
    several = fit(X, "full", n_init=3, random_state=0, max_iter=3, init_params="random")
    assert several.lower_bound_ >= max(
        fit(X, "full", n_init=1, random_state=0, max_iter=3, init_params="random").lower_bound_,
        -np.inf)
    assert np.isfinite(single).all()
    model = fit(X, "full", max_iter=3, warm_start=True)
    first = model.lower_bounds_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    straight = fit(X, "full", max_iter=6)
    np.testing.assert_allclose(first + model.lower_bounds_, straight.lower_bounds_, rtol=1e-12)
    np.testing.assert_allclose(model.means_, straight.means_, rtol=1e-12)


def test_empty_component_is_reseeded_not_nan(covariance_type):
    X, _, _ = make_blobs(n=500, d=2, k=2, seed=8)
    means = np.vstack([X.mean(axis=0), [1e3, 1e3], [-1e3, 5e2]])  # two components far away
    model = GaussianMixture(3, covariance_type=covariance_type, means_init=means, max_iter=20,
                            random_state=0)
    with pytest.warns(RuntimeWarning, match="lost all responsibility"):
        model.fit(X)
    assert np.isfinite(model.means_).all() and np.isfinite(model.covariances_).all()
    assert np.abs(model.means_).max() < 50  # all three components back on the data
    assert np.isfinite(model.score_samples(X)).all()


@pytest.mark.filterwarnings("ignore:Best performing initialization")
def test_components_reseeded_together_land_on_distinct_rows():
    """Five components lost at once, six rows: each must get its own row."""
    X = np.random.RandomState(0).randn(6, 2)
    means = np.vstack([X.mean(axis=0), 1e3 + np.arange(10.0).reshape(5, 2)])  # five far away
    model = GaussianMixture(6, means_init=means, weights_init=np.full(6, 1 / 6),
                            precisions_init=np.stack([np.eye(2)] * 6), max_iter=1,
                            random_state=2)  # drawn with replacement, rows 0 and 0
    with pytest.warns(RuntimeWarning, match="lost all responsibility"):
        model.fit(X)
    assert len(np.unique(model.means_[1:], axis=0)) == 5


def test_all_minus_inf_row_does_not_poison_the_fit():
    X = np.r_[np.random.RandomState(0).randn(200, 2), [[1e200, 1e200]]]
    start = dict(n_components=2, means_init=[[0.0, 0.0], [1.0, 1.0]],
                 weights_init=[0.5, 0.5], precisions_init=np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"log-likelihood became -inf.*row 200"):
        fit(X, "diag", **start)
    weights = np.r_[np.ones(200), 0.0]  # the same row with zero weight is simply ignored
    model = fit(X, "diag", sample_weight=weights, **start)
    assert np.isfinite(model.means_).all()


def test_ctrl_c_keeps_the_last_completed_iteration(blobs, monkeypatch):
    from fastem.drivers.local import LocalDriver

    X, _, _ = blobs
    passes = []
    original = LocalDriver.accumulate

    def interrupt_on_fifth_pass(self, *args, **kwargs):
        passes.append(1)
        if len(passes) == 5:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    start = sklearn_start(X, 3, "full")
    monkeypatch.setattr(LocalDriver, "accumulate", interrupt_on_fifth_pass)
    model = GaussianMixture(3, **start, tol=0, max_iter=10)
    with pytest.raises(KeyboardInterrupt), pytest.warns(RuntimeWarning, match="after 4"):
        model.fit(X)
    monkeypatch.undo()
    assert model.n_iter_ == 4 and not model.converged_
    reference = GaussianMixture(3, **start, tol=0, max_iter=4).fit(X)
    np.testing.assert_array_equal(model.means_, reference.means_)
    np.testing.assert_array_equal(model.predict(X), reference.predict(X))


def test_reservoir_sample_is_uniform_deterministic_and_skips_zero_weights(monkeypatch):
    from fastem.drivers.local import LocalDriver

    X = np.arange(40000, dtype=np.float64).reshape(-1, 2)  # row i holds 2i, 2i + 1
    weights = np.ones(20000)
    weights[:5000] = 0.0
    driver = LocalDriver(X, sample_weight=weights)
    first = driver.sample_rows(np.random.RandomState(3), size=2000)
    again = driver.sample_rows(np.random.RandomState(3), size=2000)
    rows, row_weights, indices = first
    np.testing.assert_array_equal(indices, again[2])
    assert len(indices) == 2000 and len(np.unique(indices)) == 2000
    assert indices.min() >= 5000  # zero-weight rows never drawn
    np.testing.assert_array_equal(rows[:, 0], 2 * indices)  # rows match their indices
    counts, _ = np.histogram(indices, bins=5, range=(5000, 20000))
    assert counts.min() > 330 and counts.max() < 470  # uniform over the positive rows
    np.testing.assert_array_equal(row_weights, 1.0)


def test_reservoir_init_on_a_file_is_seeded_and_n_init_equals_in_memory(tmp_path):
    from fastem import initialization as init
    from fastem.drivers import make_driver

    X = make_blobs(n=init.MAX_SAMPLE + 4464, d=3, k=4, seed=9)[0]  # sampled, not used whole
    path = tmp_path / "data.npy"
    np.save(path, X)
    first, again, other = (make_driver(path).sample_rows(np.random.RandomState(seed), init.MAX_SAMPLE)
                           for seed in (5, 5, 6))
    assert first[2].size == init.MAX_SAMPLE
    np.testing.assert_array_equal(first[2], again[2])
    np.testing.assert_array_equal(first[0], X[first[2]])
    assert not np.array_equal(first[2], other[2])
    for method in init.INIT_METHODS:
        kw = dict(n_components=4, init_params=method, n_init=3, random_state=7, max_iter=5)
        streamed, in_memory = fit(path, **kw), fit(X, **kw)
        for name in FITTED:
            np.testing.assert_array_equal(getattr(streamed, name), getattr(in_memory, name))
