"""Exact drop-in behaviour for scikit-learn users (issue 15, items 11-14), each checked against
the installed scikit-learn running the same case: fitted dtypes, parameter-check errors, where
a collapsing component raises, and feature names."""
import warnings

import numpy as np
import pytest

import fastem

sklearn_mixture = pytest.importorskip("sklearn.mixture")
SklearnGM = sklearn_mixture.GaussianMixture


def outcome(cls, X, **kwargs):
    """"ok" or the exception's class name, and the fitted model (or None)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return "ok", cls(**kwargs).fit(X)
        except ValueError as exc:
            assert "ill-defined empirical covariance" in str(exc)
            return "ill-defined", None


# ---------------------------------------------------- 13. a collapsing component, reg_covar=0
def _collapse_data():
    rng = np.random.RandomState(0)
    return {
        "one far row": np.vstack([rng.randn(60, 2), [[40.0, 40.0]]]),
        "five equal rows": np.vstack([rng.randn(60, 2), np.full((5, 2), 6.0)]),
    }


@pytest.mark.parametrize("start", ["kmeans", "random", "means_init"])
@pytest.mark.parametrize("data", ["one far row", "five equal rows"])
@pytest.mark.parametrize("max_iter", [1, 2, 5])
def test_collapse_raises_where_sklearn_raises(covariance_type, max_iter, data, start):
    """k-means puts a component on the far row (or the equal rows): scikit-learn raises its
    ill-defined-covariance error for full covariances and fits on for diag and spherical
    (its formula leaves ~1e-15 mu^2 of variance) and tied; from means_init the far
    component loses every row and both raise; from random responsibilities both fit."""
    X = _collapse_data()[data]
    kwargs = dict(n_components=2, covariance_type=covariance_type, reg_covar=0.0,
                  max_iter=max_iter, random_state=0)
    if start == "means_init":
        kwargs["means_init"] = [[0.0, 0.0], [5.0, 5.0]]
    else:
        kwargs["init_params"] = start
    theirs, sk = outcome(SklearnGM, X, **kwargs)
    ours, fe = outcome(fastem.GaussianMixture, X, **kwargs)
    assert ours == theirs
    if ours == "ok" and start != "random":  # the same iterations (random starts differ)
        assert fe.n_iter_ == sk.n_iter_ and fe.converged_ == sk.converged_
        assert np.isfinite(fe.score_samples(X)).all()
