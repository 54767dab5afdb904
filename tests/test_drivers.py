"""The local driver's contract: per-row passes and scores read the data once and check rows on
the way; errors name the estimator."""
import numpy as np
import pytest
from helpers import make_blobs

from fastem import GaussianMixture, PoissonMixture
from fastem.data import BLOCK_ROWS


class CountingSource:
    """A sliceable source that counts the rows read from it."""

    def __init__(self, array):
        self.array, self.shape, self.dtype = array, array.shape, array.dtype
        self.rows_read = 0

    def __getitem__(self, key):
        block = self.array[key]
        self.rows_read += block.shape[0]
        return block


@pytest.fixture(scope="module")
def fitted():
    X = make_blobs(n=3000, d=3, k=3, seed=5)[0]
    return X, GaussianMixture(3, covariance_type="diag", random_state=0, max_iter=5).fit(X)


@pytest.mark.parametrize("nan_policy", ["raise", "omit"])
@pytest.mark.parametrize("method", ["score", "predict", "predict_proba", "score_samples"])
def test_scores_and_predictions_read_the_data_once(fitted, method, nan_policy):
    X, model = fitted
    source = CountingSource(X)
    model.set_params(nan_policy=nan_policy)
    result = getattr(model, method)(source)
    assert source.rows_read == X.shape[0]
    np.testing.assert_array_equal(result, getattr(model, method)(X))


def test_per_row_passes_name_the_first_bad_row_and_mark_omitted_ones(fitted):
    X, model = fitted
    big = np.concatenate([X] * (BLOCK_ROWS // X.shape[0] + 2))  # several blocks
    row = BLOCK_ROWS + 17
    big[[row, row + 5]] = np.nan
    model.set_params(nan_policy="raise")
    for method in ("score", "predict", "predict_proba", "score_samples"):
        with pytest.raises(ValueError, match=rf"NaN or infinity \(first at row {row}\)"):
            getattr(model, method)(big)
    model.set_params(nan_policy="omit")
    with pytest.warns(RuntimeWarning, match="2 rows with NaN or infinity were omitted"):
        labels = model.predict(big)
    assert labels[row] == labels[row + 5] == -1 and (np.delete(labels, [row, row + 5]) >= 0).all()
    with pytest.warns(RuntimeWarning, match="2 rows"):
        log_prob = model.score_samples(big)
    assert np.isnan(log_prob[[row, row + 5]]).all()
    with pytest.warns(RuntimeWarning, match="2 rows"):
        assert model.score(big) == pytest.approx(np.delete(log_prob, [row, row + 5]).mean())
    model.set_params(nan_policy="raise")


def test_all_rows_omitted_is_a_clear_error(fitted):
    X, model = fitted
    model.set_params(nan_policy="omit")
    with pytest.warns(RuntimeWarning), pytest.raises(ValueError, match="sums to zero"):
        model.score(np.full((10, 3), np.nan))
    model.set_params(nan_policy="raise")


def test_predictions_check_the_family_support():
    X = np.random.RandomState(0).poisson(3.0, size=(500, 2)).astype(np.float64)
    model = PoissonMixture(2, random_state=0, max_iter=5).fit(X)
    X[7, 1] = -1.0
    for method in ("score", "predict", "predict_proba", "score_samples"):
        with pytest.raises(ValueError, match="X row 7 is"):
            getattr(model, method)(X)


def test_shape_errors_name_the_estimator():
    with pytest.raises(ValueError, match="is required by PoissonMixture"):
        PoissonMixture(2).fit(np.ones((1, 2)))
    model = PoissonMixture(2, random_state=0, max_iter=2).fit(np.ones((20, 2)))
    with pytest.raises(ValueError, match="but PoissonMixture is expecting 2 features"):
        model.predict(np.ones((3, 4)))
