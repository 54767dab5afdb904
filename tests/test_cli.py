"""The ``fastem`` command end to end, through subprocesses as a user would run it."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import fastem


def fastem_cli(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "fastem.cli", *map(str, args)],
                            capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    rng = np.random.RandomState(0)
    X = np.vstack([rng.randn(3000, 3) + m for m in ([0, 0, 0], [6, 0, 0], [0, 7, 2])])
    rng.shuffle(X)
    path = tmp_path_factory.mktemp("cli") / "data.npy"
    np.save(path, X)
    return path, X


def test_fit_info_predict_score_sample(data_file, tmp_path):
    path, X = data_file
    model_path = tmp_path / "model.npz"
    out = fastem_cli("fit", path, "-k", 3, "--covariance", "diag", "--seed", 0, "--threads", 2,
                     "-o", model_path).stdout
    assert "iteration 1: mean log-likelihood" in out and "converged after" in out
    model = fastem.load(model_path)
    reference = fastem.GaussianMixture(3, covariance_type="diag", random_state=0).fit(X)
    np.testing.assert_array_equal(model.means_, reference.means_)

    assert "3 components, 3 features, diag covariances" in fastem_cli("info", model_path).stdout
    fastem_cli("predict", model_path, path, "-o", tmp_path / "labels.npy", "-q")
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), reference.predict(X))
    fastem_cli("predict", model_path, path, "-o", tmp_path / "proba.npy", "--proba", "-q")
    np.testing.assert_allclose(np.load(tmp_path / "proba.npy"), reference.predict_proba(X))
    score = fastem_cli("score", model_path, path).stdout
    assert f"mean log-likelihood: {reference.score(X):.10g}" in score
    assert f"BIC: {reference.bic(X):.10g}" in score
    fastem_cli("sample", model_path, "-n", 50, "-o", tmp_path / "drawn.npy", "--seed", 3)
    assert np.load(tmp_path / "drawn.npy").shape == (50, 3)


def test_other_estimators_files_work_with_the_commands(tmp_path):
    rng = np.random.RandomState(0)
    X = rng.poisson([1.0, 5.0], size=(600, 2)).astype(float)
    np.save(tmp_path / "counts.npy", X)
    model = fastem.PoissonMixture(2, random_state=0).fit(X)
    model_path = model.save(tmp_path / "poisson.npz")
    info = fastem_cli("info", model_path).stdout
    assert "PoissonMixture: 2 components, 2 features\n" in info and "rates:" in info
    score = fastem_cli("score", model_path, tmp_path / "counts.npy").stdout
    assert f"BIC: {model.bic(X):.10g}" in score
    fastem_cli("sample", model_path, "-n", 20, "-o", tmp_path / "drawn.npy", "--seed", 3)
    assert np.load(tmp_path / "drawn.npy").shape == (20, 2)


def test_raw_binary_file(data_file, tmp_path):
    _, X = data_file
    raw = tmp_path / "data.f32"
    header = b"H" * 16
    raw.write_bytes(header + X.astype(np.float32).tobytes())
    fastem_cli("fit", raw, "--dtype", "float32", "--n-features", 3, "--offset", 16, "-k", 3,
               "--seed", 0, "-o", tmp_path / "m.npz", "-q")
    expected = fastem.GaussianMixture(3, random_state=0).fit(X.astype(np.float32))
    np.testing.assert_array_equal(fastem.load(tmp_path / "m.npz").means_, expected.means_)
    bad = fastem_cli("fit", raw, "--dtype", "float32", "--n-features", 5, "-k", 3,
                     "-o", tmp_path / "x.npz", check=False)
    assert bad.returncode == 2 and "not a whole number of rows" in bad.stderr
    bad = fastem_cli("fit", raw, "--dtype", "floaty", "--n-features", 3, "-k", 3,
                     "-o", tmp_path / "x.npz", check=False)
    assert bad.returncode == 2 and "unknown dtype 'floaty'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_progress_bars_for_every_pass_unless_quiet(tmp_path):
    """The finite-value check and the reservoir sample are passes over the file too."""
    rng = np.random.RandomState(2)
    path = tmp_path / "data.npy"  # more rows than initialisation reads whole
    np.save(path, np.r_[rng.randn(40000, 2), rng.randn(40000, 2) + 8].astype(np.float32))
    shown = fastem_cli("fit", path, "-k", 2, "--seed", 0, "-o", tmp_path / "m.npz").stderr
    for desc in ("check:", "sample:", "init:", "E-step:"):
        assert desc in shown, shown
    quiet = fastem_cli("fit", path, "-k", 2, "--seed", 0, "-o", tmp_path / "m.npz", "-q")
    assert quiet.stdout == quiet.stderr == ""


def test_checkpoint_and_resume_equal_an_uninterrupted_fit(data_file, tmp_path):
    path, _ = data_file
    common = ["-k", 3, "--seed", 0, "--tol", 0, "-q"]
    fastem_cli("fit", path, *common, "--max-iter", 10, "-o", tmp_path / "straight.npz")
    fastem_cli("fit", path, *common, "--max-iter", 10, "-o", tmp_path / "first.npz",
               "--checkpoint", tmp_path / "ck.npz", "--checkpoint-every", 4)
    checkpoint = fastem.load(tmp_path / "ck.npz")
    assert checkpoint.n_iter_ == 8
    fastem_cli("fit", path, *common, "--max-iter", 10, "--resume", tmp_path / "ck.npz",
               "-o", tmp_path / "resumed.npz")
    straight, resumed = fastem.load(tmp_path / "straight.npz"), fastem.load(tmp_path / "resumed.npz")
    assert resumed.n_iter_ == straight.n_iter_ == 10
    for name in ("weights_", "means_", "covariances_", "lower_bounds_"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(straight, name))


def test_resume_at_max_iter_keeps_the_checkpoint(data_file, tmp_path):
    path, _ = data_file
    common = ["-k", 3, "--seed", 0, "--tol", 0, "--max-iter", 4, "-q"]
    fastem_cli("fit", path, *common, "-o", tmp_path / "first.npz",
               "--checkpoint", tmp_path / "ck.npz")
    fastem_cli("fit", path, *common, "--resume", tmp_path / "ck.npz", "-o", tmp_path / "r.npz")
    checkpoint, resumed = fastem.load(tmp_path / "ck.npz"), fastem.load(tmp_path / "r.npz")
    assert resumed.n_iter_ == 4 and np.isfinite(resumed.lower_bound_)
    for name in ("means_", "lower_bound_", "lower_bounds_", "converged_"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(checkpoint, name))


@pytest.mark.parametrize("option", ["--checkpoint", "--resume"])
def test_checkpoints_refuse_several_inits(data_file, tmp_path, option):
    """A checkpoint holds one run: resuming it would skip the other initialisations."""
    result = fastem_cli("fit", data_file[0], "-k", 3, "--n-init", 2, option, tmp_path / "ck.npz",
                        "-o", tmp_path / "m.npz", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--checkpoint and --resume" in result.stderr and "--n-init 1" in result.stderr
    assert not os.path.exists(tmp_path / "m.npz")


def interrupt_fit(*args):
    """Run ``fastem fit *args``, press Ctrl-C once it has printed its second iteration, and
    check that it says it wrote the last completed iteration (exit code 130)."""
    process = subprocess.Popen([sys.executable, "-m", "fastem.cli", "fit", *map(str, args)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("iteration 2:"):
            break
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted: wrote the last completed iteration" in err


def test_sigint_writes_the_last_completed_model(tmp_path):
    rng = np.random.RandomState(1)
    path = tmp_path / "big.npy"
    np.save(path, rng.randn(400_000, 8))
    model_path = tmp_path / "model.npz"
    interrupt_fit(path, "-k", 8, "--tol", 0, "--max-iter", 10000, "--seed", 0, "-o", model_path)
    model = fastem.load(model_path)
    assert model.n_iter_ >= 2 and np.isfinite(model.means_).all()


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b"garbage"), "is not a .npy file"),
    (lambda p: np.save(p, np.array([["a", "b"]] * 3)), "expected numeric data"),
])
def test_bad_data_files_exit_with_a_clear_message(tmp_path, make, message):
    path = tmp_path / "data.npy"
    make(path)
    result = fastem_cli("fit", path, "-k", 2, "-o", tmp_path / "m.npz", check=False)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "m.npz")


def test_bad_model_file_exits_with_a_clear_message(tmp_path):
    (tmp_path / "m.npz").write_bytes(b"PK not really")
    result = fastem_cli("info", tmp_path / "m.npz", check=False)
    assert result.returncode == 2 and "not a readable fastem model" in result.stderr


@pytest.mark.filterwarnings("ignore:.*rows with no observed entry were omitted")
def test_marginalised_missing_entries(data_file, tmp_path):
    """--nan-policy marginalize: the fit, predictions and score of the Python estimator."""
    _, X = data_file
    X = X.copy()
    X[np.random.default_rng(1).random(X.shape) < 0.2] = np.nan
    path, model_path = tmp_path / "missing.npy", tmp_path / "model.npz"
    np.save(path, X)
    fastem_cli("fit", path, "-k", 3, "--covariance", "full", "--seed", 0, "--nan-policy",
               "marginalize", "-o", model_path, "-q")
    reference = fastem.GaussianMixture(3, random_state=0, nan_policy="marginalize").fit(X)
    np.testing.assert_array_equal(fastem.load(model_path).means_, reference.means_)
    fastem_cli("predict", model_path, path, "-o", tmp_path / "labels.npy", "-q", "--nan-policy",
               "marginalize")
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), reference.predict(X))
    score = fastem_cli("score", model_path, path, "--nan-policy", "marginalize").stdout
    assert f"mean log-likelihood: {reference.score(X):.10g}" in score
