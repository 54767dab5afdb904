"""Bad input gets a clear error naming the problem, never a crash, a hang or a NaN model."""
import warnings

import numpy as np
import pytest
import scipy.sparse

from fastem import GaussianMixture, NotFittedError

X = np.random.RandomState(0).randn(50, 3)


@pytest.mark.parametrize(
    "data, message",
    [
        (np.r_[X, [[np.nan, 0, 0]]], r"NaN or infinity \(first at row 50\)"),
        (np.r_[X[:7], [[0, np.inf, 0]], X], r"NaN or infinity \(first at row 7\)"),
        (X[:, 0], "Expected 2D array, got 1D array"),
        (X[None], "Expected 2D array, got 3D array"),
        (np.empty((0, 3)), r"0 sample\(s\)"),
        (np.empty((5, 0)), r"0 feature\(s\)"),
        (X[:1], r"1 sample\(s\)"),
        (X.astype(complex), "Complex data not supported"),
        (np.array([["a", "b"], ["c", "d"]], dtype=object), "could not convert string"),
        (np.array([["a", "b"], ["c", "d"]]), "expected numeric data"),
    ],
)
def test_bad_data(data, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(2).fit(data)


def test_sparse_data_is_refused_clearly():
    with pytest.raises(TypeError, match="sparse data is not supported"):
        GaussianMixture(2).fit(scipy.sparse.csr_matrix(X))


def test_fewer_samples_than_components():
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        GaussianMixture(5).fit(X[:4])
    weights = np.r_[np.ones(3), np.zeros(47)]
    with pytest.raises(ValueError, match="positive sample_weight"):
        GaussianMixture(5).fit(X, sample_weight=weights)


@pytest.mark.parametrize(
    "weights, message",
    [
        (-np.ones(50), "negative"),
        (np.r_[np.ones(49), np.nan], "NaN or infinity"),
        (np.r_[np.ones(49), np.inf], "NaN or infinity"),
        (np.ones(49), r"sample_weight.shape == \(49,\)"),
        (np.zeros(50), "sums to zero"),
    ],
)
def test_bad_sample_weight(weights, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(2).fit(X, sample_weight=weights)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"n_components": 0}, r"'n_components' parameter of GaussianMixture must be an int in the range \[1, inf\)"),
        ({"n_components": 1.5}, r"'n_components' .* must be an int in the range \[1, inf\)"),
        ({"covariance_type": "banana"}, "'covariance_type' parameter of GaussianMixture must be a str among"),
        ({"init_params": "magic"}, "'init_params' parameter of GaussianMixture must be a str among"),
        ({"tol": -1.0}, "'tol' parameter of GaussianMixture must be a float"),
        ({"reg_covar": float("nan")}, "'reg_covar' parameter of GaussianMixture must be a float"),
        ({"max_iter": -1}, "'max_iter' parameter of GaussianMixture must be an int"),
        ({"n_init": 0}, "'n_init' parameter of GaussianMixture must be an int"),
        ({"n_threads": 0}, "n_threads must be a positive integer"),
        ({"chunk_size": 0}, "chunk_size must be a positive integer"),
        ({"weights_init": [0.5, 0.6]}, "'weights' should be normalized"),
        ({"weights_init": [1.5, -0.5]}, r"'weights' should be in the range \[0, 1\]"),
        ({"weights_init": [1.0]}, "'weights' should have the shape of"),
        ({"means_init": np.zeros((2, 4))}, "'means' should have the shape of"),
        ({"means_init": [[0, 0, np.nan], [0, 0, 0]]}, r"Input contains NaN \(the parameter 'means'\)"),
        ({"precisions_init": np.ones((2, 3))}, "'full precision' should have the shape of"),
        ({"precisions_init": -np.stack([np.eye(3)] * 2)}, "positive-definite"),
        ({"precisions_init": np.stack([np.triu(np.ones((3, 3)))] * 2)}, "symmetric"),
        ({"precisions_init": -np.ones((2, 3)), "covariance_type": "diag"}, "'diag precision' should be positive"),
        ({"covariance_type": "tied", "precisions_init": np.ones((2, 3, 3))},
         r"'tied precision' should have the shape of \(3, 3\)"),
        ({"covariance_type": "spherical", "precisions_init": [1.0, -1.0]},
         "'spherical precision' should be positive"),
        ({"means_init": np.zeros((2, 3)) + 1j}, "'means' must be real"),
        ({"weights_init": np.array([0.5, 0.5 + 0j])}, "'weights' must be real"),
        ({"precisions_init": np.stack([np.eye(3)] * 2) + 0j}, "'full precision' must be real"),
    ],
)
def test_bad_parameters(params, message):
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)  # refused, not cast
        with pytest.raises(ValueError, match=message):
            GaussianMixture(**{"n_components": 2, **params}).fit(X)


def test_data_too_large_for_float64_is_named():
    """Finite values whose squares overflow must not fail deep inside the M-step."""
    huge = np.random.RandomState(2).randn(100, 2) * 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's overflow on the way there
        with pytest.raises(ValueError, match="X has values too large for float64 arithmetic"):
            GaussianMixture(2, random_state=0).fit(huge)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples", "score",
                                    "bic", "aic"])
def test_unfitted_and_wrong_width(method):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        getattr(GaussianMixture(2), method)(X)
    model = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="X has 4 features, but GaussianMixture is expecting 3"):
        getattr(model, method)(np.c_[X, X[:, 0]])
    with pytest.raises(ValueError, match="NaN or infinity"):
        getattr(model, method)(np.r_[X, [[np.nan, 0, 0]]])


@pytest.mark.parametrize(
    "data, message",
    [
        (X[:, 0], "Expected 2D array, got 1D array"),
        (X[None], "Expected 2D array, got 3D array"),
        (X.astype(complex), "Complex data not supported"),
    ],
)
def test_bad_data_at_predict(data, message):
    model = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match=message):
        model.predict(data)


def test_negative_sample_weight_at_score():
    model = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="sample_weight contains negative values"):
        model.score(X, sample_weight=-np.ones(len(X)))


def test_unfitted_sample_and_bad_n_samples():
    with pytest.raises(NotFittedError):
        GaussianMixture(2).sample(3)
    with pytest.raises(ValueError, match="at least one sample"):
        GaussianMixture(2, random_state=0).fit(X).sample(0)


def test_missing_or_bad_npy_file(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        GaussianMixture(2).fit(tmp_path / "missing.npy")
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not a numpy file at all")
    with pytest.raises(ValueError, match="is not a .npy file"):
        GaussianMixture(2).fit(junk)
    truncated = tmp_path / "truncated.npy"
    np.save(truncated, X)
    truncated.write_bytes(truncated.read_bytes()[:-100])
    with pytest.raises(ValueError, match="cannot memory-map"):
        GaussianMixture(2).fit(truncated)


def test_nan_in_a_later_block_of_a_file_names_its_row(tmp_path):
    """The check streams the file in blocks of 65536 rows; the row index is the file's."""
    data = np.random.RandomState(1).randn(70000, 2)
    data[66000, 1] = np.nan
    np.save(tmp_path / "data.npy", data)
    with pytest.raises(ValueError, match=r"NaN or infinity \(first at row 66000\)"):
        GaussianMixture(2).fit(tmp_path / "data.npy")


def test_singular_data_suggests_remedy():
    constant = np.ones((20, 2))
    with pytest.raises(ValueError, match="increase reg_covar"):
        GaussianMixture(2, reg_covar=0.0, random_state=0).fit(constant)
    model = GaussianMixture(2, random_state=0).fit(constant)  # default reg_covar copes
    assert np.isfinite(model.covariances_).all()


def test_nan_policy_omit_leaves_bad_rows_out(covariance_type):
    rng = np.random.RandomState(4)
    clean = np.r_[rng.randn(300, 3), rng.randn(300, 3) + 5]
    dirty = clean.copy()
    bad = rng.choice(len(clean), 25, replace=False)
    dirty[bad, rng.randint(0, 3, 25)] = np.where(rng.rand(25) < 0.5, np.nan, np.inf)
    keep = np.setdiff1d(np.arange(len(clean)), bad)
    start = dict(means_init=[[0, 0, 0], [5, 5, 5]], weights_init=[0.5, 0.5], max_iter=20,
                 covariance_type=covariance_type)
    weights = np.ones(len(dirty))
    with pytest.warns(RuntimeWarning, match="25 rows with NaN or infinity were omitted"):
        model = GaussianMixture(2, nan_policy="omit", **start).fit(dirty, sample_weight=weights)
    np.testing.assert_array_equal(weights, 1.0)  # the caller's weights are not modified
    reference = GaussianMixture(2, **start).fit(clean[keep])
    assert model.n_omitted_rows_ == 25 and reference.n_omitted_rows_ == 0
    np.testing.assert_allclose(model.means_, reference.means_, rtol=1e-10)
    np.testing.assert_allclose(model.covariances_, reference.covariances_, rtol=1e-10)
    with pytest.warns(RuntimeWarning):
        labels = model.predict(dirty)
        proba = model.predict_proba(dirty)
        density = model.score_samples(dirty)
        score = model.score(dirty)
    assert (labels[bad] == -1).all() and np.isnan(proba[bad]).all() and np.isnan(density[bad]).all()
    np.testing.assert_array_equal(labels[keep], reference.predict(clean[keep]))
    assert score == pytest.approx(reference.score(clean[keep]), rel=1e-12)


def test_nan_policy_omit_with_default_initialisation():
    """Omitted rows (NaN or infinity) cause no RuntimeWarning beyond the one counting them."""
    X = np.random.RandomState(5).randn(2000, 2)
    X[::7, 0] = np.nan
    X[3::7, 1] = -np.inf
    for init in ("kmeans", "k-means++", "random", "random_from_data"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            warnings.filterwarnings("ignore", ".*rows with NaN or infinity were omitted",
                                    RuntimeWarning)
            model = GaussianMixture(3, init_params=init, nan_policy="omit",
                                    random_state=0).fit(X)
        assert np.isfinite(model.means_).all() and np.isfinite(model.lower_bound_)


def test_bad_nan_policy():
    with pytest.raises(ValueError, match="nan_policy must be"):
        GaussianMixture(2, nan_policy="ignore").fit(X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finite_rows_equals_isfinite_even_where_row_sums_overflow(dtype):
    """The fast NaN/infinity check (a row-sum product) against the plain elementwise one."""
    from fastem.data import finite_rows

    rng = np.random.RandomState(0)
    block = rng.randn(500, 7).astype(dtype)
    for value in (np.nan, np.inf, -np.inf):
        block[rng.rand(500, 7) < 0.02] = value
    big = np.finfo(dtype).max
    block[10] = big  # finite, but its sum overflows to inf
    block[11] = -big
    block[12, :2] = [big, -np.inf]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = finite_rows(block)
    np.testing.assert_array_equal(got, np.isfinite(block).all(axis=1))
    assert got[10] and got[11] and not got[12] and not got.all()
