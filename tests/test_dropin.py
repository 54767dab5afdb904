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
        "two equal rows": np.vstack([rng.randn(60, 2), np.full((2, 2), 9.0)]),
    }


@pytest.mark.parametrize("start", ["kmeans", "random", "means_init"])
@pytest.mark.parametrize("data", ["one far row", "two equal rows"])
@pytest.mark.parametrize("max_iter", [1, 2, 5])
def test_collapse_raises_where_sklearn_raises(covariance_type, max_iter, data, start):
    """k-means puts a component on the far row (or the two equal rows): scikit-learn raises
    its ill-defined-covariance error for full covariances and fits on for diag and spherical
    (its formula leaves ~1e-15 mu^2 of variance) and tied; from means_init the far
    component loses every row and both raise; from random responsibilities both fit. (From
    three equal rows on, scikit-learn's outcome is its rounding's: see
    fastem.families.gaussian._as_sklearn_if_singular.)"""
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


# ------------------------------------------------------- 12. parameter checks in sklearn's words
X_small = np.random.RandomState(0).randn(50, 2)
BAD_PARAMETERS = [
    dict(n_components=0), dict(n_components=1.5), dict(n_components="a"),
    dict(tol=-1), dict(tol=np.nan), dict(tol=np.inf), dict(tol="a"),
    dict(reg_covar=-1e-6), dict(reg_covar=np.nan), dict(reg_covar=np.inf),
    dict(max_iter=-1), dict(max_iter=1.5), dict(n_init=0), dict(n_init=2.0),
    dict(init_params="foo"), dict(covariance_type="foo"), dict(verbose_interval=0),
    dict(verbose=-1), dict(warm_start="yes"), dict(random_state="x"), dict(random_state=-1),
    dict(weights_init=[0.5, 0.5, 0.0]), dict(weights_init=[[0.5, 0.5]]),
    dict(weights_init=[0.5, 0.6]), dict(weights_init=[1.5, -0.5]),
    dict(weights_init=np.array([0.5, 0.5001], dtype=np.float32)),
    dict(weights_init=[np.nan, 1.0]), dict(means_init=[[np.nan, 0.0], [0.0, 0.0]]),
    dict(means_init=np.zeros((3, 2))), dict(means_init=np.zeros((2, 3))),
    dict(precisions_init=np.zeros((2, 2, 2))), dict(precisions_init=np.ones((2, 2))),
    dict(precisions_init=np.array([[[1.0, 2.0], [0.0, 1.0]]] * 2)),
    dict(precisions_init=np.array([[[1.0, 2.0], [2.0, 1.0]]] * 2)),
    dict(covariance_type="tied", precisions_init=np.ones((3, 3))),
    dict(covariance_type="tied", precisions_init=np.array([[1.0, 2.0], [0.0, 1.0]])),
    dict(covariance_type="diag", precisions_init=-np.ones((2, 2))),
    dict(covariance_type="diag", precisions_init=np.ones((2, 3))),
    dict(covariance_type="spherical", precisions_init=np.array([1.0, -1.0])),
    dict(covariance_type="spherical", precisions_init=np.ones(3)),
]


def _comparable(message):
    """scikit-learn's message with its sets of options sorted (its order is the hash's)."""
    import re

    return re.sub(r"\{([^}]*)\}", lambda m: "{" + ", ".join(sorted(m.group(1).split(", ")))
                  + "}", message)


@pytest.mark.parametrize("params", BAD_PARAMETERS, ids=repr)
def test_parameter_errors_are_sklearns(params):
    """Each bad parameter raises what scikit-learn raises (InvalidParameterError, a subclass
    of ValueError and TypeError, is also scikit-learn's class) with scikit-learn's message."""
    kwargs = dict(dict(n_components=2), **params)
    with pytest.raises(ValueError) as theirs:
        SklearnGM(**kwargs).fit(X_small)
    with pytest.raises(ValueError) as ours:
        fastem.GaussianMixture(**kwargs).fit(X_small)
    assert isinstance(ours.value, type(theirs.value))
    expected = _comparable(str(theirs.value))
    if str(theirs.value).startswith("Input contains"):  # check_array's, naming no parameter
        assert str(ours.value).startswith(expected.rstrip("."))
    else:
        assert _comparable(str(ours.value)).startswith(expected)


def test_invalid_parameter_error_without_sklearn_loaded():
    """Without scikit-learn in the process, fastem's own InvalidParameterError (ValueError and
    TypeError), and scikit-learn is not imported for it."""
    import subprocess
    import sys

    code = ("import sys, numpy as np, fastem\n"
            "try:\n    fastem.GaussianMixture(0).fit(np.zeros((4, 2)))\n"
            "except TypeError as e:\n    print(type(e).__module__, isinstance(e, ValueError))\n"
            "print('sklearn' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.split() == ["fastem._base", "True", "False"], out.stderr


# ------------------------------------------------------------- 11. float32 fitted parameters
GAUSSIAN_ARRAYS = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")


@pytest.fixture(scope="module")
def two_blobs():
    rng = np.random.RandomState(0)
    return np.vstack([rng.randn(300, 3), rng.randn(300, 3) * 0.5 + 4])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_fitted_dtypes_are_sklearns(two_blobs, covariance_type, dtype):
    X = (two_blobs * 10).astype(dtype)
    kwargs = dict(n_components=2, covariance_type=covariance_type, random_state=0)
    theirs = SklearnGM(**kwargs).fit(X)
    ours = fastem.GaussianMixture(**kwargs).fit(X)
    for name in GAUSSIAN_ARRAYS:
        assert getattr(ours, name).dtype == getattr(theirs, name).dtype, name
    if dtype is np.float32:  # the float32 values are the float64 fit's, rounded
        for name in GAUSSIAN_ARRAYS:
            np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=2e-3,
                                       atol=1e-6, err_msg=name)


def test_float32_model_predicts_and_scores_float64_data(two_blobs, covariance_type, tmp_path):
    X32 = two_blobs.astype(np.float32)
    model = fastem.GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X32)
    X64 = X32.astype(np.float64)
    np.testing.assert_array_equal(model.predict(X64), model.predict(X32))
    np.testing.assert_allclose(model.score_samples(X64), model.score_samples(X32), rtol=1e-5)
    # the model file keeps the dtypes and the values
    loaded = fastem.load(model.save(tmp_path / "m.npz"))
    for name in GAUSSIAN_ARRAYS:
        assert getattr(loaded, name).dtype == np.float32
        np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
    assert loaded.score(X64) == model.score(X64)
    # a warm start on float64 data, as scikit-learn's refit, gives float64 parameters
    model.set_params(warm_start=True).fit(X64)
    assert all(getattr(model, name).dtype == np.float64 for name in GAUSSIAN_ARRAYS)


def _column_data(rng):
    return {
        fastem.BernoulliMixture: (rng.rand(400, 4) < np.r_[[0.2] * 200, [0.8] * 200][:, None]),
        fastem.PoissonMixture: rng.poisson(np.r_[[1.0] * 200, [8.0] * 200][:, None], (400, 3)),
        fastem.ExponentialMixture: rng.exponential(np.r_[[1.0] * 200, [9.0] * 200][:, None],
                                                   (400, 2)),
        fastem.GammaMixture: rng.gamma(2.0, np.r_[[1.0] * 200, [9.0] * 200][:, None], (400, 2)),
        fastem.CategoricalMixture: rng.randint(0, 3, (400, 3)),
    }


@pytest.mark.parametrize("cls", [fastem.BernoulliMixture, fastem.PoissonMixture,
                                 fastem.ExponentialMixture, fastem.GammaMixture,
                                 fastem.CategoricalMixture])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_mixture_keeps_the_data_dtype(cls, dtype, tmp_path):
    """The rule of GaussianMixture for every mixture: float32 data, float32 fitted arrays."""
    X = _column_data(np.random.RandomState(1))[cls].astype(dtype)
    model = cls(2, random_state=0).fit(X)
    arrays = [model.weights_, *model.params_.columns]
    for name in ("probabilities_", "rates_", "shapes_"):
        value = getattr(model, name, None)
        arrays += list(value) if isinstance(value, list) else [] if value is None else [value]
    assert all(a.dtype == dtype for a in arrays)
    loaded = fastem.load(model.save(tmp_path / "m.npz"))
    assert all(a.dtype == dtype for a in [loaded.weights_, *loaded.params_.columns])
    assert loaded.score(X.astype(np.float64)) == model.score(X.astype(np.float64))
    stepwise = cls(2, random_state=0).partial_fit(X)
    assert stepwise.weights_.dtype == dtype


def test_model_file_of_mixed_dtypes_is_refused(two_blobs, tmp_path):
    model = fastem.GaussianMixture(2, random_state=0).fit(two_blobs.astype(np.float32))
    model.means_ = model.means_.astype(np.float64)
    path = model.save(tmp_path / "m.npz")
    with pytest.raises(ValueError, match=r"means_ has shape .* float32 \(that of weights_\)"):
        fastem.load(path)


# ------------------------------------------------------------------------ 14. feature names
class Table:
    """A duck-typed data frame: ``columns`` and an array; no pandas needed."""

    def __init__(self, values, columns):
        self.values, self.columns = np.asarray(values), list(columns)

    def __array__(self, dtype=None, copy=None):
        return self.values if dtype is None else self.values.astype(dtype)

    def __len__(self):
        return len(self.values)


METHODS = ("predict", "predict_proba", "score_samples", "score")


def _names_outcome(model, method, X):
    """What ``model.method(X)`` does: ("ok" | "warn", message) or ("raise", class, message)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            getattr(model, method)(X)
        except (ValueError, TypeError) as exc:
            return "raise", type(exc).__name__, str(exc)
    names = [str(w.message) for w in caught if issubclass(w.category, UserWarning)
             and "feature names" in str(w.message)]
    return ("warn", names[0].replace(type(model).__name__, "<est>")) if names else ("ok",)


def _normalised(outcome):
    return tuple(part.replace("GaussianMixture", "<est>") if isinstance(part, str) else part
                 for part in outcome)


@pytest.mark.parametrize("method", METHODS)
def test_feature_names_as_sklearn(two_blobs, method):
    pd = pytest.importorskip("pandas")
    names = ["a", "b", "c"]
    frame = pd.DataFrame(two_blobs, columns=names)
    cases = {
        "same names": frame,
        "other names": pd.DataFrame(two_blobs, columns=["a", "b", "z"]),
        "reordered": frame[["c", "a", "b"]],
        "array": two_blobs,
        "int names": pd.DataFrame(two_blobs),
        "mixed names": pd.DataFrame(two_blobs, columns=["a", 1, "c"]),
        "seven others": pd.DataFrame(np.c_[two_blobs, two_blobs, two_blobs[:, :1]],
                                     columns=list("tuvwxyz")),
    }
    fitted = {lib: lib(2, random_state=0).fit(frame) for lib in (SklearnGM,
                                                                  fastem.GaussianMixture)}
    np.testing.assert_array_equal(fitted[fastem.GaussianMixture].feature_names_in_,
                                  fitted[SklearnGM].feature_names_in_)
    assert fitted[fastem.GaussianMixture].feature_names_in_.dtype == object
    for case, X in cases.items():
        theirs = _names_outcome(fitted[SklearnGM], method, X)
        ours = _names_outcome(fitted[fastem.GaussianMixture], method, X)
        assert _normalised(ours) == _normalised(theirs), case
    # fitted on an array: a frame warns, as in scikit-learn
    plain = {lib: lib(2, random_state=0).fit(two_blobs) for lib in (SklearnGM,
                                                                     fastem.GaussianMixture)}
    assert not hasattr(plain[fastem.GaussianMixture], "feature_names_in_")
    theirs = _names_outcome(plain[SklearnGM], method, frame)
    assert theirs[0] == "warn"
    assert _normalised(_names_outcome(plain[fastem.GaussianMixture], method, frame)) \
        == _normalised(theirs)


MIXTURES = [
    (fastem.GaussianMixture, lambda X: X),
    (fastem.PoissonMixture, lambda X: np.round(np.abs(X))),
    (fastem.BernoulliMixture, lambda X: (X > 2).astype(float)),
    (fastem.ExponentialMixture, lambda X: np.abs(X) + 0.1),
    (fastem.GammaMixture, lambda X: np.abs(X) + 0.1),
    (fastem.CategoricalMixture, lambda X: np.clip(np.round(np.abs(X)), 0, 3)),
]


@pytest.mark.parametrize("cls, transform", MIXTURES)
def test_every_mixture_takes_feature_names_from_columns(two_blobs, cls, transform, tmp_path):
    """Any object with string ``columns`` names the features (no pandas needed); predicting
    on other names raises scikit-learn's ValueError, on an array warns; a refit on an array
    forgets them; model files keep them."""
    X = transform(two_blobs)
    model = cls(2, random_state=0).fit(Table(X, ["a", "b", "c"]))
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="(?s)should match those that were passed during fit"
                                         ".*unseen at fit time:\n- z\n.*missing:\n- c\n"):
        model.predict(Table(X, ["a", "b", "z"]))
    with pytest.warns(UserWarning, match=f"X does not have valid feature names, but "
                                         f"{cls.__name__} was fitted with feature names"):
        model.score(X)
    assert np.isfinite(model.score(Table(X, ["a", "b", "c"])))
    loaded = fastem.load(model.save(tmp_path / "m.npz"))
    np.testing.assert_array_equal(loaded.feature_names_in_, model.feature_names_in_)
    with pytest.raises(ValueError, match="must be in the same order as they were in fit"):
        loaded.score_samples(Table(X[:, ::-1], ["c", "b", "a"]))
    model.fit(X)
    assert not hasattr(model, "feature_names_in_")
    with pytest.warns(UserWarning, match=f"X has feature names, but {cls.__name__} was fitted "
                                         "without feature names"):
        model.predict_proba(Table(X, ["a", "b", "c"]))


def test_partial_fit_sets_names_on_the_first_batch_only(two_blobs):
    model = fastem.GaussianMixture(2, random_state=0).partial_fit(Table(two_blobs, "abc"))
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="should match those that were passed during fit"):
        model.partial_fit(Table(two_blobs, "xyz"))


def test_hmm_feature_names(two_blobs):
    from fastem import hmm

    model = hmm.GaussianHMM(2, random_state=0, n_iter=3).fit(Table(two_blobs, "abc"))
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="should match those that were passed during fit"):
        model.predict(Table(two_blobs, "abd"))
    with pytest.warns(UserWarning, match="X does not have valid feature names, but "
                                         "GaussianHMM was fitted with feature names"):
        model.score(two_blobs)
