"""Property test (issue 15): random shapes, dtypes, layouts, weights and bad values through
fit, predict, predict_proba, score_samples and score of every estimator. Each call returns a
sane result or raises ValueError, TypeError or OSError with a message: never a crash, a hang,
another exception, or a finite wrong value (posteriors that do not sum to one, labels out of
range, a score that is not the weighted mean of the per-row log-likelihoods)."""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import fastem
from fastem.families.expfam import Normal, Poisson, ProductFamily

ESTIMATORS = {
    "gaussian-full": lambda k: fastem.GaussianMixture(k, max_iter=5, random_state=0),
    "gaussian-diag": lambda k: fastem.GaussianMixture(k, covariance_type="diag", max_iter=5,
                                                      random_state=0),
    "gaussian-spherical": lambda k: fastem.GaussianMixture(k, covariance_type="spherical",
                                                           max_iter=5, random_state=0),
    "gaussian-tied": lambda k: fastem.GaussianMixture(k, covariance_type="tied", max_iter=5,
                                                      random_state=0),
    "bernoulli": lambda k: fastem.BernoulliMixture(k, max_iter=5, random_state=0),
    "poisson": lambda k: fastem.PoissonMixture(k, max_iter=5, random_state=0),
    "exponential": lambda k: fastem.ExponentialMixture(k, max_iter=5, random_state=0),
    "gamma": lambda k: fastem.GammaMixture(k, max_iter=5, random_state=0),
    "categorical": lambda k: fastem.CategoricalMixture(k, max_iter=5, random_state=0),
    "product": lambda k: fastem.MixtureModel(ProductFamily([Poisson(), Normal()]), k,
                                             max_iter=5, random_state=0),
}
ALLOWED = (ValueError, TypeError, OSError)


def _values(name, rng, n, d):
    """Data in the support of the estimator's family."""
    if name == "bernoulli":
        return rng.randint(0, 2, (n, d)).astype(float)
    if name in ("poisson", "categorical"):
        return rng.randint(0, 4, (n, d)).astype(float)
    if name in ("exponential", "gamma"):
        return rng.exponential(size=(n, d)) + 0.01
    if name == "product":
        return np.column_stack([rng.poisson(3, n), rng.randn(n)])[:, :d].astype(float)
    return rng.randn(n, d) * 3


@st.composite
def cases(draw):
    name = draw(st.sampled_from(sorted(ESTIMATORS)))
    n = draw(st.integers(1, 40))
    d = 2 if name == "product" else draw(st.integers(1, 4))
    rng = np.random.RandomState(draw(st.integers(0, 2**16)))
    X = _values(name, rng, n, d)
    bad = draw(st.sampled_from([None] * 8 + [np.nan, np.inf, -np.inf, 1e300, -1.0, 0.5, 7.0,
                                             1e20]))
    if bad is not None and n:
        X[draw(st.integers(0, n - 1)), draw(st.integers(0, d - 1))] = bad
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64, np.uint8, bool]))
    with np.errstate(invalid="ignore", over="ignore"):
        X = X.astype(dtype) if np.isfinite(X).all() or dtype in (np.float64, np.float32) else X
    layout = draw(st.sampled_from(["C", "F", "strided", "list", "npy"]))
    weights = draw(st.sampled_from([None] * 4 + ["random"] * 4 + ["zeros", "negative", "nan",
                                                                   "short"]))
    return name, draw(st.integers(1, 3)), X, layout, weights


def _layout(X, layout, tmp_path):
    if layout == "F":
        return np.asfortranarray(X)
    if layout == "strided":
        return np.repeat(X, 2, axis=0)[::2]
    if layout == "list":
        return X.tolist()
    if layout == "npy":
        path = tmp_path / f"x{np.random.randint(1 << 30)}.npy"
        np.save(path, X)
        return str(path)
    return np.ascontiguousarray(X)


def _weights(kind, n):
    return {None: None, "random": np.random.RandomState(1).rand(n), "zeros": np.zeros(n),
            "negative": -np.ones(n), "nan": np.full(n, np.nan), "short": np.ones(n + 1)}[kind]


def _call(fn, *args, **kwargs):
    """The result of ``fn``, or None when it raised an allowed exception with a message."""
    try:
        return fn(*args, **kwargs)
    except ALLOWED as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        return None


@settings(max_examples=150, deadline=10_000, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=cases())
def test_every_estimator_returns_a_sane_result_or_a_clear_error(case, tmp_path):
    name, k, X, layout, weight_kind = case
    source = _layout(X, layout, tmp_path)
    w = _weights(weight_kind, len(X))
    model = ESTIMATORS[name](k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = _call(model.fit, source, sample_weight=w)
        event("fitted" if fitted is not None else "refused")
        if fitted is None:
            return
        n = len(X)
        labels = _call(model.predict, source)
        proba = _call(model.predict_proba, source)
        logp = _call(model.score_samples, source)
        score = _call(model.score, source)
    assert (labels is None) == (proba is None) == (logp is None) == (score is None)
    if labels is None:
        return
    labels, proba, logp = np.asarray(labels), np.asarray(proba), np.asarray(logp)
    assert labels.shape == (n,) and ((labels >= 0) & (labels < k)).all()
    assert proba.shape == (n, k) and np.allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(labels, proba.argmax(axis=1))
    assert logp.shape == (n,) and not np.isnan(logp).any() and (logp < np.inf).all()
    if np.isfinite(logp).all():
        assert score == pytest.approx(logp.mean(), rel=1e-6, abs=1e-6)


@st.composite
def cli_cases(draw):
    command = draw(st.sampled_from(["fit", "predict", "score", "sample", "info"]))
    data = draw(st.sampled_from(["good", "int", "text", "npz", "dir", "missing", "nan", "raw"]))
    options = draw(st.lists(st.sampled_from([
        ["-k", "0"], ["-k", "3"], ["--threads", "0"], ["--threads", "2"], ["--chunk-size", "0"],
        ["--chunk-size", "7"], ["--offset", "8"], ["--dtype", "float32"], ["--n-features", "3"],
        ["--covariance", "diag"], ["--max-iter", "0"], ["--nan-policy", "omit"],
        ["--checkpoint-every", "0"], ["--proba"], ["-n", "0"], ["-n", "5"]]), max_size=3))
    output = draw(st.sampled_from(["new", "data", "model", "dir", "missing-folder"]))
    return command, data, [o for option in options for o in option], output


@settings(max_examples=80, deadline=20_000, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=cli_cases())
def test_the_command_line_exits_cleanly_on_any_input(case, tmp_path_factory, capsys):
    from fastem import cli

    command, kind, options, output = case
    tmp = tmp_path_factory.mktemp("cli")
    rng = np.random.RandomState(0)
    X = np.vstack([rng.randn(60, 3), rng.randn(60, 3) + 4])
    data = {"good": tmp / "d.npy", "int": tmp / "d.npy", "text": tmp / "t.npy",
            "npz": tmp / "z.npz", "dir": tmp, "missing": tmp / "none.npy", "nan": tmp / "d.npy",
            "raw": tmp / "d.bin"}[kind]
    if kind in ("good", "int", "nan"):
        if kind == "nan":
            X[5, 1] = np.nan
        np.save(data, X.astype(int) if kind == "int" else X)
    elif kind == "text":
        data.write_text("1 2 3\n")
    elif kind == "npz":
        np.savez(data, a=X)
    elif kind == "raw":
        X.astype(np.float32).tofile(data)
    model = fastem.GaussianMixture(2, random_state=0).fit(X[:, :3] if kind != "nan" else
                                                           np.nan_to_num(X)).save(tmp / "m.npz")
    out = {"new": tmp / "out.npy", "data": data, "model": model, "dir": tmp,
           "missing-folder": tmp / "no" / "out.npy"}[output]
    argv = {"fit": ["fit", data, "-o", out, "--max-iter", "3"],
            "predict": ["predict", model, data, "-o", out],
            "score": ["score", model, data], "sample": ["sample", model, "-o", out, "-n", "3"],
            "info": ["info", model]}[command] + options
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse: unknown or invalid options for this command
        code = exc.code
    captured = capsys.readouterr()
    assert code in (0, 1, 2, 130), code
    assert "Traceback" not in captured.err
    if code in (1, 2) and "usage:" not in captured.err:  # one line naming the problem
        lines = captured.err.replace("\r", "\n").splitlines()
        assert any(line.startswith(f"fastem {command}: error: ") for line in lines), lines
