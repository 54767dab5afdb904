"""Missing entries (``nan_policy="marginalize"``) and partial labels (``fit(X, y)``) on the
Dask driver: the fit equals the local fit (1e-12), predictions and scores too, and bad input
names the same row, column or label as locally."""
import warnings

import numpy as np
import pytest
from helpers import make_blobs

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

from test_dask import client  # noqa: E402, F401  (the two-process cluster fixture)

import fastem  # noqa: E402

pytestmark = pytest.mark.usefixtures("client")
RTOL = 1e-12


@pytest.fixture(scope="module")
def blobs():
    X, z, _ = make_blobs(n=6000, d=4, k=3)
    missing = X.copy()
    missing[np.random.default_rng(0).random(X.shape) < 0.3] = np.nan
    missing[[5, 4000]] = np.nan  # no observed entry: left out
    y = np.where(np.random.default_rng(1).random(z.size) < 0.05, z, -1)
    return missing, z, y


def assert_same_fit(remote, local, names):
    for name in names:
        np.testing.assert_allclose(getattr(remote, name), getattr(local, name), rtol=RTOL,
                                   atol=1e-14, err_msg=name)
    np.testing.assert_allclose(remote.lower_bounds_, local.lower_bounds_, rtol=RTOL)
    assert remote.n_iter_ == local.n_iter_


def fit_quietly(model, X, y=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # omitted rows, convergence
        return model.fit(X, y)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("labelled", [False, True])
def test_marginalised_fit_with_labels_equals_local(blobs, covariance_type, labelled):
    X, _, y = blobs
    y = y if labelled else None
    make = lambda: fastem.GaussianMixture(3, covariance_type=covariance_type,  # noqa: E731
                                          nan_policy="marginalize", tol=0, max_iter=6,
                                          random_state=0)
    local = fit_quietly(make(), X, y)
    remote = fit_quietly(make(), da.from_array(X, chunks=1500), y)
    assert_same_fit(remote, local, ("weights_", "means_", "covariances_"))
    assert remote.n_omitted_rows_ == local.n_omitted_rows_ == np.isnan(X).all(axis=1).sum()
    if labelled:  # the labels as a dask array, blocked unlike X
        again = fit_quietly(make(), da.from_array(X, chunks=1500), da.from_array(y, chunks=1100))
        assert_same_fit(again, local, ("weights_", "means_", "covariances_"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predicted = make().fit_predict(da.from_array(X, chunks=1500), y)
            expected = make().fit_predict(X, y)
        assert isinstance(predicted, da.Array)
        np.testing.assert_array_equal(predicted.compute(), expected)
        assert (expected[y >= 0] == y[y >= 0]).all()
    dX = da.from_array(X, chunks=1700)
    for method in ("predict", "predict_proba", "score_samples"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lazy, expected = getattr(local, method)(dX), getattr(local, method)(X)
            np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-12, atol=1e-300)
            assert local.score(dX, y) == pytest.approx(local.score(X, y), rel=1e-12)
    filled = local.impute(dX)  # lazy, blocked as X
    assert isinstance(filled, da.Array)
    np.testing.assert_allclose(filled.compute(), local.impute(X), rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="out= is not supported"):
        local.impute(dX, out=np.empty(X.shape))


def test_labels_without_missing_entries_and_other_families(blobs):
    _, z, y = blobs
    counts = np.random.default_rng(2).poisson(np.array([[1.0, 5.0], [6.0, 0.5], [3.0, 3.0]])[z])
    counts = counts.astype(np.float64)
    options = dict(tol=0, max_iter=5, random_state=0)
    local = fit_quietly(fastem.PoissonMixture(3, **options), counts, y)
    remote = fit_quietly(fastem.PoissonMixture(3, **options), da.from_array(counts, chunks=900),
                         da.from_array(y, chunks=2000))
    np.testing.assert_allclose(remote.lower_bounds_, local.lower_bounds_, rtol=RTOL)
    np.testing.assert_allclose(remote.weights_, local.weights_, rtol=RTOL)
    counts[np.random.default_rng(3).random(counts.shape) < 0.2] = np.nan
    options["nan_policy"] = "marginalize"
    local = fit_quietly(fastem.PoissonMixture(3, **options), counts, y)
    remote = fit_quietly(fastem.PoissonMixture(3, **options), da.from_array(counts, chunks=900),
                         y)
    np.testing.assert_allclose(remote.lower_bounds_, local.lower_bounds_, rtol=RTOL)
    np.testing.assert_allclose(remote.weights_, local.weights_, rtol=RTOL)


def test_bad_input_is_named_as_locally(blobs):
    X, _, y = blobs
    model = fastem.GaussianMixture(3, nan_policy="marginalize", max_iter=2)
    cases = []
    infinite = X.copy()
    infinite[4321, 2] = np.inf
    cases.append((infinite, None, "row 4321"))
    never = X.copy()
    never[:, 1] = np.nan
    cases.append((never, None, "column 1 is missing"))
    cases.append((X, y[:100], "one label per row"))
    bad = y.copy()
    bad[3333] = 7
    cases.append((X, bad, r"y\[3333\] = 7 is not a component"))
    cases.append((X, y.astype(np.float64), "integer labels"))
    for data, labels, message in cases:
        with pytest.raises(ValueError, match=message) as local_error:
            fit_quietly(model, data, labels)
        dask_labels = None if labels is None else da.from_array(labels, chunks=1000)
        for given in (labels, dask_labels):
            with pytest.raises(ValueError, match=message) as remote_error:
                fit_quietly(model, da.from_array(data, chunks=1500), given)
            assert str(remote_error.value) == str(local_error.value)
