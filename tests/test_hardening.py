"""Hardening (issue 15): outputs never destroy inputs, files changing under a pass, file-system
errors, interrupted resumes, column checks on every method, resources and messages."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastem
import fastem.data
from fastem import GaussianMixture


def fastem_cli(*args):
    return subprocess.run([sys.executable, "-m", "fastem.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.RandomState(0)
    return np.vstack([rng.randn(400, 3), rng.randn(400, 3) + 5])


@pytest.fixture(scope="module")
def model(blobs):
    return GaussianMixture(2, random_state=0).fit(blobs)


# ---------------------------------------------------------------- 1. an output over an input
@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples"])
def test_output_over_the_input_is_refused(model, blobs, tmp_path, link, method):
    data = tmp_path / "data.npy"
    np.save(data, blobs)
    out = data if link == "same" else tmp_path / "out.npy"
    if link == "symlink":
        os.symlink(data, out)
    elif link == "hardlink":
        os.link(data, out)
    for source in (str(data), data, np.load(data, mmap_mode="r")):  # a memmap's name is a Path
        with pytest.raises(ValueError, match="is the input file"):
            getattr(model, method)(source, out=out)
    np.testing.assert_array_equal(np.load(data), blobs)  # untouched


def test_output_array_sharing_the_input_memory_is_refused(model, blobs):
    X = blobs.copy()
    with pytest.raises(ValueError, match="shares memory with the input"):
        model.score_samples(X, out=X.reshape(-1)[:X.shape[0]])


def test_interrupted_predict_leaves_no_file(model, blobs, tmp_path):
    class Bar:
        def __init__(self, desc, total):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            raise KeyboardInterrupt

    import fastem.estimators._base as base

    X = np.repeat(blobs, 200, axis=0)
    m = GaussianMixture(2, random_state=0, chunk_size=64).fit(blobs)
    m.progress = True
    original, base.progress_bars = base.progress_bars, Bar
    try:
        with pytest.raises(KeyboardInterrupt):
            m.predict_proba(X, out=tmp_path / "proba.npy")
    finally:
        base.progress_bars = original
    assert os.listdir(tmp_path) == []
    out = model.predict_proba(X, out=tmp_path / "proba.npy")
    assert out.filename == str(tmp_path / "proba.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "proba.npy"), model.predict_proba(X))
    assert os.listdir(tmp_path) == ["proba.npy"]


@pytest.mark.parametrize("command", ["predict", "fit"])
def test_cli_refuses_an_output_over_the_data(blobs, model, tmp_path, command):
    data = tmp_path / "data.npy"
    np.save(data, blobs)
    os.link(data, tmp_path / "alias.npz")
    args = (["predict", model.save(tmp_path / "m.npz"), data, "-o", data] if command == "predict"
            else ["fit", data, "-o", tmp_path / "alias"])
    result = fastem_cli(*args)
    assert result.returncode == 2 and "is the input file" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    np.testing.assert_array_equal(np.load(data), blobs)


def test_cli_sample_reports_the_path_it_wrote(model, tmp_path):
    result = fastem_cli("sample", model.save(tmp_path / "m.npz"), "-n", 5, "-o", tmp_path / "pts")
    assert result.returncode == 0 and f"to {tmp_path / 'pts.npy'}" in result.stdout
    assert np.load(tmp_path / "pts.npy").shape == (5, 3)


# ---------------------------------------------------------- 2. a file that shrinks in a pass
@pytest.mark.parametrize("kind", ["npy path", "memmap", "raw", "view"])
def test_a_file_shrinking_during_a_fit_is_an_error_and_keeps_the_last_iteration(
        blobs, tmp_path, kind):
    path = tmp_path / "data.npy"
    np.save(path, np.repeat(blobs, 5, axis=0))
    size = os.path.getsize(path)
    if kind == "raw":
        X = fastem.data.open_raw(path, np.float64, 3, offset=128)
    elif kind == "memmap":
        X = np.load(path, mmap_mode="r")
    elif kind == "view":
        X = np.load(path, mmap_mode="r")[10:]
    else:
        X = str(path)

    def truncate(model):
        if model.n_iter_ == 2:
            os.truncate(path, size // 2)

    m = GaussianMixture(2, random_state=0, tol=0, max_iter=10, callback=truncate)
    with pytest.warns(RuntimeWarning, match=r"last completed iteration \(2\)"):
        with pytest.raises(fastem.data.SourceChanged, match="data.npy' shrank"):
            m.fit(X)
    assert m.n_iter_ == 2 and len(m.lower_bounds_) == 2 and np.isfinite(m.means_).all()


def test_a_file_shrinking_during_predict_is_an_error(model, blobs, tmp_path):
    path = tmp_path / "data.npy"
    np.save(path, np.repeat(blobs, 50, axis=0))
    X = np.load(path, mmap_mode="r")
    os.truncate(path, os.path.getsize(path) // 3)
    for method in (model.predict, model.score):
        with pytest.raises(OSError, match="shrank"):
            method(X)


def test_cli_fit_on_a_shrinking_file_keeps_the_last_iteration(blobs, tmp_path, monkeypatch):
    from fastem import cli

    path = tmp_path / "data.npy"
    np.save(path, np.repeat(blobs, 5, axis=0))
    calls = []
    original = cli.FitRun.after_iteration

    def after_iteration(self, model):
        original(self, model)
        calls.append(1)
        if len(calls) == 3:
            os.truncate(path, 1000)
    monkeypatch.setattr(cli.FitRun, "after_iteration", after_iteration)
    code = cli.main(["fit", str(path), "-k", "2", "--tol", "0", "--seed", "0", "-q",
                     "-o", str(tmp_path / "m.npz")])
    assert code == 1
    saved = fastem.load(tmp_path / "m.npz")
    assert saved.n_iter_ == 3 and len(saved.lower_bounds_) == 3


# ------------------------------------------------------------ 3. file-system errors in the CLI
@pytest.mark.parametrize("where", ["missing folder", "unwritable folder", "directory"])
@pytest.mark.parametrize("command", ["fit", "predict", "sample"])
def test_cli_outputs_that_cannot_be_created_fail_before_any_work(
        blobs, model, tmp_path, where, command):
    data = tmp_path / "data.npy"
    np.save(data, blobs)
    out = {"missing folder": tmp_path / "nowhere" / "out.npz",
           "unwritable folder": "/proc/out.npz", "directory": tmp_path}[where]
    m = model.save(tmp_path / "m.npz")
    args = {"fit": ["fit", data, "-k", 2], "predict": ["predict", m, data],
            "sample": ["sample", m, "-n", 3]}[command]
    result = fastem_cli(*args, "-o", out)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and str(out) in result.stderr
    assert "iteration" not in result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_a_directory_as_data_is_a_clear_error(model, tmp_path):
    for args in (["fit", tmp_path, "-o", tmp_path / "m.npz"],
                 ["score", model.save(tmp_path / "m.npz"), tmp_path],
                 ["score", tmp_path / "m.npz", tmp_path, "--dtype", "float64",
                  "--n-features", 3]):
        result = fastem_cli(*args)
        assert result.returncode == 2 and "is a directory" in result.stderr, result.stderr


def test_cli_keeps_the_model_when_the_output_fails_at_the_end(blobs, tmp_path, monkeypatch,
                                                              capsys):
    import shutil

    from fastem import cli

    data = tmp_path / "data.npy"
    np.save(data, blobs)
    (tmp_path / "out").mkdir()
    (tmp_path / "ck").mkdir()
    original = cli.FitRun.after_iteration

    def after_iteration(self, model):  # the output folder goes away during the fit
        original(self, model)
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
    monkeypatch.setattr(cli.FitRun, "after_iteration", after_iteration)
    code = cli.main(["fit", str(data), "-k", "2", "--seed", "0", "-q", "-o",
                     str(tmp_path / "out" / "m.npz"), "--checkpoint", str(tmp_path / "ck" / "c")])
    err = capsys.readouterr().err
    assert code == 1 and "out/m.npz" in err and "kept in" in err
    assert len(err.strip().splitlines()) == 1
    kept = err.strip().split("kept in ")[1]
    assert os.path.dirname(kept) == str(tmp_path / "ck")
    assert fastem.load(kept).n_iter_ >= 1


# ------------------------------------------------------- 4. Ctrl-C anywhere in a resumed fit
def test_ctrl_c_at_every_point_of_a_resumed_fit_writes_consistent_files(
        blobs, tmp_path, monkeypatch):
    from fastem import cli, data

    path = tmp_path / "data.npy"
    np.save(path, blobs)
    first = tmp_path / "first.npz"
    assert cli.main(["fit", str(path), "-k", "2", "--seed", "0", "--tol", "0", "--max-iter", "3",
                     "-q", "-o", str(first)]) == 0
    history = fastem.load(first).lower_bounds_
    assert len(history) == 3

    resume = ["fit", str(path), "--resume", str(first), "--tol", "0", "--max-iter", "6", "-q",
              "--chunk-size", "64"]
    assert cli.main(resume + ["-o", str(tmp_path / "full.npz")]) == 0
    full = fastem.load(tmp_path / "full.npz").lower_bounds_
    assert len(full) == 6 and full[:3] == history

    iter_blocks, save = data.iter_blocks, cli.FitRun.save
    points = {"left": 0}

    def point():
        points["left"] -= 1
        if points["left"] == 0:
            raise KeyboardInterrupt

    def interrupting_blocks(*args, **kwargs):
        for item in iter_blocks(*args, **kwargs):
            point()
            yield item

    def interrupting_save(self, model, path):
        if path == self.args.checkpoint:
            point()
        return save(self, model, path)
    monkeypatch.setattr(data, "iter_blocks", interrupting_blocks)
    monkeypatch.setattr(cli.FitRun, "save", interrupting_save)
    n, reached_end = 0, False
    while not reached_end:
        n += 1
        points["left"] = n
        out = tmp_path / f"out{n}.npz"
        code = cli.main(resume + ["-o", str(out), "--checkpoint", str(tmp_path / f"ck{n}.npz")])
        reached_end = code == 0
        assert code in (0, 130)
        model = fastem.load(out)
        assert 3 <= model.n_iter_ <= 6
        assert len(model.lower_bounds_) == model.n_iter_, (n, model.n_iter_)
        assert model.lower_bounds_ == full[:model.n_iter_], n  # no repeated history
        assert model.n_iter_ == 6 or not reached_end
        if os.path.exists(tmp_path / f"ck{n}.npz"):
            ck = fastem.load(tmp_path / f"ck{n}.npz")
            assert 3 < ck.n_iter_ <= model.n_iter_ and ck.lower_bounds_ == full[:ck.n_iter_]
    assert n > 6
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


# ------------------------------------------------- 5. every method checks the column count
def _every_estimator():
    from fastem.families.expfam import Poisson, ProductFamily

    return [GaussianMixture(2, random_state=0), fastem.BernoulliMixture(2, random_state=0),
            fastem.PoissonMixture(2, random_state=0), fastem.ExponentialMixture(2, random_state=0),
            fastem.GammaMixture(2, random_state=0), fastem.CategoricalMixture(2, random_state=0),
            fastem.MixtureModel(ProductFamily([Poisson(), Poisson(), Poisson()]), 2,
                                random_state=0)]


@pytest.mark.parametrize("estimator", _every_estimator(), ids=lambda e: type(e).__name__)
def test_every_method_and_warm_refit_checks_the_columns(estimator):
    rng = np.random.RandomState(0)
    X = rng.randint(0, 2, size=(200, 3)).astype(float) + 0.5 * (
        type(estimator).__name__ in ("GammaMixture",))
    estimator.set_params(max_iter=5).fit(X)
    other = np.hstack([X, X[:, :1]])
    name = type(estimator).__name__
    for method in ("predict", "predict_proba", "score_samples", "score"):
        with pytest.raises(ValueError, match=f"X has 4 features, but {name} is expecting 3"):
            getattr(estimator, method)(other)
    estimator.set_params(warm_start=True)
    with pytest.raises(ValueError, match=f"X has 4 features, but {name} is expecting 3"):
        estimator.fit(other)
    estimator.fit(X)  # the same columns continue


def test_cli_resume_refuses_other_columns_and_conflicting_options(blobs, tmp_path):
    data, wide = tmp_path / "data.npy", tmp_path / "wide.npy"
    np.save(data, blobs)
    np.save(wide, np.hstack([blobs, blobs]))
    first = tmp_path / "first.npz"
    assert fastem_cli("fit", data, "-k", 2, "--covariance", "diag", "--max-iter", 2, "--tol", 0,
                      "-q", "-o", first).returncode == 0
    for args, message in (([wide], "has 6 columns but"), ([data, "-k", 3], "-k 3 contradicts"),
                          ([data, "--covariance", "full"], "--covariance full contradicts")):
        result = fastem_cli("fit", *args, "--resume", first, "-o", tmp_path / "m.npz")
        assert result.returncode == 2 and message in result.stderr, result.stderr
    result = fastem_cli("fit", data, "-k", 2, "--covariance", "diag", "--resume", first,
                        "--max-iter", 4, "--tol", 0, "-q", "-o", tmp_path / "m.npz")
    assert result.returncode == 0, result.stderr
    assert fastem.load(tmp_path / "m.npz").n_iter_ == 4


# ------------------------------------------------ 8. resources sized by the data and machine
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_huge_chunk_size_and_thread_count_are_clamped(blobs, covariance_type):
    import tracemalloc

    from fastem._config import available_cpus
    from fastem.drivers import make_driver

    driver = make_driver(blobs, chunk_size=10**9, n_threads=10**6)
    assert driver.n_threads == min(10**6, available_cpus()) and driver._chunk(2) == len(blobs)
    tracemalloc.start()
    try:
        m = GaussianMixture(2, covariance_type=covariance_type, random_state=0,
                            chunk_size=10**9, n_threads=10**6).fit(blobs)
        m.predict(blobs)
        m.score(blobs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20
    reference = GaussianMixture(2, covariance_type=covariance_type, random_state=0,
                                chunk_size=len(blobs), n_threads=1).fit(blobs)
    np.testing.assert_array_equal(m.means_, reference.means_)


# ------------------------------------------------------------ 9. messages that name the problem
def _bad_file(tmp_path, kind):
    path = tmp_path / f"{kind}.npy"
    if kind == "text":
        path.write_text("1 2 3\n4 5 6\n")
    elif kind == "random":
        path.write_bytes(np.random.RandomState(0).bytes(1000))
    elif kind == "header":
        np.save(path, np.ones((10, 2)))
        raw = path.read_bytes()
        path.write_bytes(raw[:12] + b"{garbage((" + raw[22:])
    else:
        np.savez(path, a=np.ones((10, 2)))
        path = tmp_path / f"{kind}.npy.npz"
    return path


@pytest.mark.parametrize("kind, message", [
    ("text", "is not a .npy file"), ("random", "is not a .npy file"),
    ("header", "damaged header"), ("npz", "is a .npz archive")])
def test_bad_data_files_say_what_they_are(tmp_path, kind, message):
    path = _bad_file(tmp_path, kind)
    with pytest.raises(ValueError, match=message) as info:
        GaussianMixture(2).fit(path)
    assert "pickled" not in str(info.value)
    result = fastem_cli("fit", path, "-o", tmp_path / "m.npz")
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_a_bytes_path_is_a_path(blobs, tmp_path):
    np.save(tmp_path / "d.npy", blobs)
    m = GaussianMixture(2, random_state=0).fit(os.fsencode(tmp_path / "d.npy"))
    assert m.n_features_in_ == 3


def test_model_commands_on_data_files_say_so(blobs, tmp_path):
    np.save(tmp_path / "d.npy", blobs)
    result = fastem_cli("info", tmp_path / "d.npy")
    assert result.returncode == 2 and "is a .npy data array, not a fastem model" in result.stderr
    (tmp_path / "t.npz").write_text("hello")
    with pytest.raises(ValueError, match="not a fastem model file"):
        fastem.load(tmp_path / "t.npz")


@pytest.mark.parametrize("estimator", _every_estimator(), ids=lambda e: type(e).__name__)
def test_infinite_weight_concentration_is_refused(estimator):
    X = np.random.RandomState(0).randint(1, 3, size=(50, 3)).astype(float)
    with pytest.raises(ValueError, match="weight_concentration_prior must be a finite"):
        estimator.set_params(weight_concentration_prior=np.inf).fit(X)


def test_categorical_inputs_named():
    X = np.random.RandomState(0).randint(0, 3, size=(50, 3)).astype(float)
    X[4, 1] = 1e20
    with pytest.raises(ValueError, match="column 1 holds the code 1e\\+20"):
        fastem.CategoricalMixture(2).fit(X)
    with pytest.raises(ValueError, match="n_categories has 2 entries for 3 columns"):
        fastem.CategoricalMixture(2, n_categories=[3, 3]).fit(X[:4])


def test_product_family_column_mismatch_is_named():
    from fastem.families.expfam import Poisson, ProductFamily

    X = np.ones((20, 3))
    with pytest.raises(ValueError, match="the family has 2 columns but X has 3 features"):
        fastem.MixtureModel(ProductFamily([Poisson(), Poisson()]), 2).fit(X)


@pytest.mark.parametrize("option", ["chunk_size", "n_threads"])
@pytest.mark.parametrize("value", [2.5, 64.0, "64", True, 0])
def test_chunk_size_and_n_threads_follow_one_rule(blobs, option, value):
    with pytest.raises(ValueError, match=f"{option} must be a positive integer"):
        GaussianMixture(2, **{option: value}).fit(blobs)
    GaussianMixture(2, **{option: np.int64(2)}).fit(blobs)


# --------------------------------------------------------------------- 10. small ones
@pytest.mark.parametrize("every", [0, -1])
def test_checkpoint_every_must_be_positive(blobs, tmp_path, every):
    np.save(tmp_path / "d.npy", blobs)
    result = fastem_cli("fit", tmp_path / "d.npy", "-o", tmp_path / "m.npz", "--checkpoint",
                        tmp_path / "ck.npz", "--checkpoint-every", every)
    assert result.returncode == 2 and "must be a positive integer" in result.stderr
    assert "Traceback" not in result.stderr


def test_offset_with_npy_data_is_an_error(blobs, model, tmp_path):
    np.save(tmp_path / "d.npy", blobs)
    result = fastem_cli("score", model.save(tmp_path / "m.npz"), tmp_path / "d.npy",
                        "--offset", 16)
    assert result.returncode == 2 and "--offset applies to raw data files" in result.stderr


def test_files_respect_the_umask(blobs, model, tmp_path):
    previous = os.umask(0o022)
    try:
        model.save(tmp_path / "m.npz")
        model.predict(blobs, out=tmp_path / "labels.npy")
    finally:
        os.umask(previous)
    for name in ("m.npz", "labels.npy"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o644


def test_a_model_whose_covariances_disagree_with_its_factors_is_refused(model, tmp_path):
    import json
    import zipfile

    path = model.save(tmp_path / "m.npz")
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["covariances_"] = arrays["covariances_"] * 2
    np.savez(tmp_path / "edited.npz", **arrays)
    assert json.loads(str(arrays["header"][()]))["format"] == "fastem-model"
    assert zipfile.is_zipfile(tmp_path / "edited.npz")
    with pytest.raises(ValueError, match="covariances_ disagree with precisions_cholesky_"):
        fastem.load(tmp_path / "edited.npz")


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_ill_conditioned_fits_still_load(tmp_path, covariance_type):
    rng = np.random.RandomState(0)
    X = rng.randn(500, 3) * [1e4, 1.0, 1e-3]
    m = GaussianMixture(2, covariance_type=covariance_type, random_state=0, reg_covar=1e-12)
    m.fit(X)
    fastem.load(m.save(tmp_path / "m.npz"))


def test_a_killed_writer_leaves_no_temporary_file_behind(model, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".ck.npz.{dead.pid}.0123abcd.tmp"
    stale.write_bytes(b"half a checkpoint")
    mine = tmp_path / f".ck.npz.{os.getpid()}.0123abcd.tmp"  # a live writer's: kept
    mine.write_bytes(b"")
    model.save(tmp_path / "ck.npz")
    assert sorted(os.listdir(tmp_path)) == sorted(["ck.npz", mine.name])


# --------------------------------------------------- 7. float32 far from the origin keeps 1e-3
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("shift, scale", [(0, 1), (1e3, 1), (1e6, 1), (1e6, 1e-3), (1e4, 1e-2),
                                          (0, 1e-4), (0, 1e4), (-1e5, 10)])
def test_float32_log_densities_within_the_readme_bound(covariance_type, shift, scale):
    rng = np.random.RandomState(0)
    X = np.vstack([rng.randn(1000, 3), rng.randn(1000, 3) * 0.5 + 4]) * scale + shift
    X32 = X.astype(np.float32)
    m = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X32)
    exact = m.score_samples(X32.astype(np.float64))  # float64 on the same (rounded) values
    for method in ("score_samples", "predict_proba"):
        assert np.isfinite(getattr(m, method)(X32)).all()
    assert np.abs(m.score_samples(X32) - exact).max() < 1e-3


# ------------------------------------------------------------- 15. defaults reach the optimum
def _two_classes(name, rng, n=20000):
    """Well-separated two-class data of a family and the true mean log-likelihood."""
    from scipy import stats
    from scipy.special import logsumexp

    z = rng.rand(n) < 0.5
    if name == "categorical":
        pa = np.array([.7, .1, .1, .1])
        probs = np.where(z[:, None, None], pa, pa[::-1])
        X = (rng.rand(n, 6)[:, :, None] > np.cumsum(probs, axis=2)).sum(axis=2).astype(float)
        per = [np.log(p[X.astype(int)]).sum(axis=1) for p in (pa, pa[::-1])]
    elif name == "bernoulli":
        pa = np.array([.9, .8, .9, .1, .2, .1])
        X = (rng.rand(n, 6) < np.where(z[:, None], pa, 1 - pa)).astype(float)
        per = [stats.bernoulli.logpmf(X, p).sum(axis=1) for p in (pa, 1 - pa)]
    elif name == "poisson":
        ra, rb = np.array([1.0, 10.0, 3.0]), np.array([10.0, 1.0, 8.0])
        X = rng.poisson(np.where(z[:, None], ra, rb)).astype(float)
        per = [stats.poisson.logpmf(X, r).sum(axis=1) for r in (ra, rb)]
    elif name == "exponential":
        ra, rb = np.array([0.1, 10.0]), np.array([10.0, 0.1])
        X = rng.exponential(1 / np.where(z[:, None], ra, rb))
        per = [stats.expon.logpdf(X, scale=1 / r).sum(axis=1) for r in (ra, rb)]
    elif name == "gamma":
        (sa, ra), (sb, rb) = (np.array([2.0, 9.0]), np.array([1.0, 3.0])), (
            np.array([9.0, 2.0]), np.array([1.0, 0.5]))
        X = rng.gamma(np.where(z[:, None], sa, sb), 1 / np.where(z[:, None], ra, rb))
        per = [stats.gamma.logpdf(X, s, scale=1 / r).sum(axis=1) for s, r in ((sa, ra), (sb, rb))]
    else:
        ma, mb = np.zeros(3), np.array([4.0, -3.0, 2.0])
        X = rng.randn(n, 3) + np.where(z[:, None], ma, mb)
        per = [stats.multivariate_normal.logpdf(X, m) for m in (ma, mb)]
    return X, logsumexp(np.log(0.5) + np.column_stack(per), axis=1).mean()


@pytest.mark.parametrize("name, cls", [
    ("categorical", "CategoricalMixture"), ("bernoulli", "BernoulliMixture"),
    ("poisson", "PoissonMixture"), ("exponential", "ExponentialMixture"),
    ("gamma", "GammaMixture"), ("gaussian", "GaussianMixture")])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_defaults_reach_the_true_parameters_likelihood(name, cls, seed):
    X, true = _two_classes(name, np.random.RandomState(seed))
    model = getattr(fastem, cls)(2, random_state=seed).fit(X)
    # EM stops once an iteration gains less than tol = 1e-3 nats per row, so a slowly
    # converging fit (Gamma's shapes: 1.3e-3 short at worst) may stop about 2 tol short
    assert model.score(X) >= true - 2e-3


def test_random_starts_do_not_stop_at_the_symmetric_saddle():
    X, true = _two_classes("categorical", np.random.RandomState(0))
    model = fastem.CategoricalMixture(2, random_state=0).fit(X)
    assert model.n_iter_ > 2 and np.diff(model.lower_bounds_)[0] < 1e-3  # it did start slowly


def test_overlapping_fits_restore_blas_threads():
    from threadpoolctl import threadpool_info

    from fastem._config import single_threaded_blas

    def blas_threads():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    GaussianMixture(1).fit(np.random.RandomState(0).randn(50, 2))  # BLAS loaded
    before = blas_threads()
    first, second = single_threaded_blas(), single_threaded_blas()
    first.__enter__()
    second.__enter__()  # another fit starts in another thread ...
    first.__exit__(None, None, None)  # ... and outlives the first
    assert blas_threads() == {1}
    second.__exit__(None, None, None)
    assert blas_threads() == before


def test_cli_fit_on_a_file_shrinking_before_any_iteration_says_so(blobs, tmp_path, monkeypatch,
                                                                  capsys):
    from fastem import cli, data

    path = tmp_path / "data.npy"
    np.save(path, np.repeat(blobs, 5, axis=0))
    check_finite = data.check_finite

    def shrinking_check(X, *args, **kwargs):  # the file is cut right after the check pass
        check_finite(X, *args, **kwargs)
        os.truncate(path, 1000)
    monkeypatch.setattr(data, "check_finite", shrinking_check)
    code = cli.main(["fit", str(path), "-k", "2", "-q", "-o", str(tmp_path / "m.npz")])
    err = capsys.readouterr().err
    assert code == 1 and "data.npy' shrank" in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "m.npz")


def test_weights_summing_past_float64_are_named(blobs):
    w = np.full(len(blobs), 1e308)
    for call in (lambda: GaussianMixture(2).fit(blobs, sample_weight=w),
                 lambda: GaussianMixture(2).fit(blobs).score(blobs, sample_weight=w)):
        with pytest.raises(ValueError, match="sample_weight sums to inf in float64"):
            call()


def test_kernel_api_outputs_over_their_input_are_refused(model, blobs, tmp_path):
    from fastem import kernels

    path = tmp_path / "d.npy"
    np.save(path, blobs)
    X = np.load(path, mmap_mode="r")
    with pytest.raises(ValueError, match="is the input file"):
        kernels.gaussian_log_prob(X, model.means_, model.precisions_cholesky_, "full",
                                  out=str(path))
    with pytest.raises(ValueError, match="is the input file"):
        kernels.family_predict(X, model.family_, model._fitted_params(), resp_out=str(path))
    np.testing.assert_array_equal(np.load(path), blobs)


# ------------------------------------------------------------ 12. scikit-learn's warning class
def test_convergence_warning_is_scikit_learns_too(blobs):
    from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning

    for catch in (SklearnConvergenceWarning, fastem.ConvergenceWarning):
        with pytest.warns(catch, match="did not converge"):
            GaussianMixture(2, max_iter=1, random_state=0).fit(blobs)


# ------------------------------------------------- 11. float32 weights_init summing to 1 in float32
def test_float32_weights_init_summing_to_one_in_float32_are_accepted(blobs):
    w = np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32)
    assert abs(float(w.astype(np.float64).sum()) - 1) > 1e-8  # refused before
    m = GaussianMixture(4, weights_init=w, max_iter=1, random_state=0).fit(blobs)
    assert np.isclose(m.weights_.sum(), 1.0)
    with pytest.raises(ValueError, match="'weights' should be normalized"):
        GaussianMixture(4, weights_init=w * 1.01, random_state=0).fit(blobs)
