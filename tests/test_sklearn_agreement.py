"""From the same initial parameters, fastem follows scikit-learn's EM iterate by iterate."""
import warnings

import numpy as np
import pytest
from helpers import make_blobs, sklearn_start
from sklearn.mixture import GaussianMixture as SklearnGM

from fastem import GaussianMixture


def assert_agrees(ours, theirs, rtol=1e-10, name=""):
    """Element-wise agreement to ``rtol``; entries near zero (e.g. off-diagonal covariances)
    get an absolute slack of rtol / 100 of the largest magnitude."""
    theirs = np.asarray(theirs, dtype=float)
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol / 100 * np.abs(theirs).max(),
                               err_msg=name)


def fit_both(X, k, covariance_type, **kw):
    start = sklearn_start(X, k, covariance_type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = GaussianMixture(k, **start, **kw).fit(X)
        theirs = SklearnGM(k, **start, **kw).fit(X)
    return ours, theirs


def test_same_fit_as_sklearn(covariance_type):
    X, _, _ = make_blobs(n=3000, d=4, k=3)
    ours, theirs = fit_both(X, 3, covariance_type, tol=0.0, max_iter=25)
    assert ours.n_iter_ == theirs.n_iter_ == 25
    assert_agrees(ours.lower_bounds_, theirs.lower_bounds_)
    assert_agrees(ours.lower_bound_, theirs.lower_bound_)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert_agrees(getattr(ours, name), getattr(theirs, name), name=name)


@pytest.mark.parametrize("offset", [1e3, 1e5])
def test_data_far_from_origin_stay_accurate(covariance_type, offset):
    """EM is translation-equivariant: fitting X + offset must give the covariances that
    scikit-learn finds on centred X (where its uncentred second moments are accurate)."""
    X, _, _ = make_blobs(n=3000, d=4, k=3)
    start = sklearn_start(X, 3, covariance_type)
    shifted = dict(start, means_init=start["means_init"] + offset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = GaussianMixture(3, **shifted, tol=0, max_iter=25).fit(X + offset)
        theirs = SklearnGM(3, **start, tol=0, max_iter=25).fit(X)
    # scikit-learn itself on X + 1e5 is off by ~1e-6 for tied/diag/spherical (measured)
    assert_agrees(ours.covariances_, theirs.covariances_)
    assert_agrees(ours.means_ - offset, theirs.means_)
    assert_agrees(ours.lower_bound_, theirs.lower_bound_)


def test_same_predictions_as_sklearn(blobs, covariance_type):
    X, _, _ = blobs
    ours, theirs = fit_both(X, 3, covariance_type, max_iter=5)
    np.testing.assert_allclose(ours.score_samples(X), theirs.score_samples(X), rtol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-10)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    assert ours.score(X) == pytest.approx(theirs.score(X), rel=1e-10)
    assert ours.bic(X) == pytest.approx(theirs.bic(X), rel=1e-10)
    assert ours.aic(X) == pytest.approx(theirs.aic(X), rel=1e-10)


def test_convergence_matches_sklearn(blobs, covariance_type):
    X, _, _ = blobs
    ours, theirs = fit_both(X, 3, covariance_type, tol=1e-6, max_iter=200)
    assert ours.converged_ and theirs.converged_
    assert ours.n_iter_ == theirs.n_iter_
    assert_agrees(ours.means_, theirs.means_, rtol=1e-8)


def test_float32_close_to_sklearn_float64(blobs, covariance_type):
    X, _, _ = blobs
    start = sklearn_start(X, 3, covariance_type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = GaussianMixture(3, **start, tol=0, max_iter=10).fit(X.astype(np.float32))
        theirs = SklearnGM(3, **start, tol=0, max_iter=10).fit(X)
    assert_agrees(ours.lower_bound_, theirs.lower_bound_, rtol=1e-5)
    assert_agrees(ours.means_, theirs.means_, rtol=1e-4)
    assert_agrees(ours.covariances_, theirs.covariances_, rtol=1e-3)


def test_max_iter_zero_keeps_initial_parameters(blobs):
    X, _, _ = blobs
    start = sklearn_start(X, 3, "full")
    model = GaussianMixture(3, **start, max_iter=0).fit(X)
    np.testing.assert_array_equal(model.means_, start["means_init"])
    assert model.n_iter_ == 0 and model.lower_bounds_ == []
