"""The ``fastem`` command on hidden Markov models: ``fit --model hmm --lengths``, then
``predict``, ``score``, ``sample`` and ``info`` on their model files."""

import numpy as np
import pytest
from test_cli import fastem_cli, interrupt_fit

import fastem
from fastem.families.expfam import Bernoulli, ProductFamily
from fastem.hmm import GMMHMM, HMM, CategoricalHMM, GaussianHMM, PoissonHMM

LENGTHS = np.array([700, 1100, 400])


def chain(rng, n):
    """States of a sticky 3-state chain."""
    states = np.empty(n, dtype=int)
    states[0] = 0
    for t in range(1, n):
        states[t] = states[t - 1] if rng.rand() < 0.9 else rng.randint(3)
    return states


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    rng = np.random.RandomState(0)
    folder = tmp_path_factory.mktemp("hmm")
    states = chain(rng, LENGTHS.sum())
    arrays = {
        "gaussian": np.array([[0, 0], [5, 0], [0, 5]])[states] + rng.randn(states.size, 2),
        "poisson": rng.poisson(np.array([[1, 8], [6, 2], [12, 12]])[states]).astype(float),
        "categorical": (states + (rng.rand(states.size) < 0.2)).astype(float)[:, None] % 3,
        "bernoulli": (rng.rand(states.size, 4) < np.array([0.1, 0.5, 0.9])[states, None])
        .astype(float),
    }
    paths = {"lengths": folder / "lengths.npy"}
    np.save(paths["lengths"], LENGTHS)
    for name, X in arrays.items():
        paths[name] = folder / f"{name}.npy"
        np.save(paths[name], X)
    return paths, arrays


def test_fit_predict_score_sample_info_equal_the_estimator(files, tmp_path):
    paths, arrays = files
    X, model_path = arrays["gaussian"], tmp_path / "hmm.npz"
    out = fastem_cli("fit", paths["gaussian"], "--model", "hmm", "-k", 3, "--lengths",
                     paths["lengths"], "--seed", 0, "--max-iter", 30, "--threads", 2,
                     "-o", model_path).stdout
    reference = GaussianHMM(3, random_state=0, n_iter=30).fit(X, LENGTHS)
    assert "iteration 1: log-likelihood" in out
    assert f"log-likelihood {reference.monitor_.history[-1]:.6f}; wrote" in out
    model = fastem.load(model_path)
    assert type(model) is GaussianHMM and model.covariance_type == "diag"  # hmmlearn's default
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        np.testing.assert_array_equal(getattr(model, name), getattr(reference, name))

    fastem_cli("predict", model_path, paths["gaussian"], "--lengths", paths["lengths"],
               "-o", tmp_path / "states.npy", "-q")
    np.testing.assert_array_equal(np.load(tmp_path / "states.npy"),
                                  reference.predict(X, LENGTHS))
    fastem_cli("predict", model_path, paths["gaussian"], "--lengths", paths["lengths"],
               "--proba", "-o", tmp_path / "proba.npy", "-q")
    np.testing.assert_allclose(np.load(tmp_path / "proba.npy"),
                               reference.predict_proba(X, LENGTHS), rtol=1e-12, atol=1e-300)
    score = fastem_cli("score", model_path, paths["gaussian"], "--lengths",
                       paths["lengths"]).stdout
    assert "sequences: 3\n" in score
    assert f"log-likelihood: {reference.score(X, LENGTHS):.10g}" in score
    assert f"BIC: {reference.bic(X, LENGTHS):.10g}" in score
    whole = fastem_cli("score", model_path, paths["gaussian"]).stdout  # one sequence
    assert f"log-likelihood: {reference.score(X):.10g}" in whole

    fastem_cli("sample", model_path, "-n", 40, "--seed", 3, "-o", tmp_path / "drawn",
               "--states", tmp_path / "drawn_states.npy")
    drawn, states = reference.sample(40, random_state=3)
    np.testing.assert_array_equal(np.load(tmp_path / "drawn.npy"), drawn)
    np.testing.assert_array_equal(np.load(tmp_path / "drawn_states.npy"), states)
    info = fastem_cli("info", model_path).stdout
    assert "GaussianHMM: 3 states, 2 features, diag covariances" in info
    assert "transmat:" in info and "means:" in info
    history = reference.monitor_.history
    assert (f"fitted: {len(history)} iterations, " in info
            and f"log-likelihood {history[-1]:.10g}" in info)


@pytest.mark.parametrize("family, data, options, expected", [
    ("poisson", "poisson", (), lambda: PoissonHMM(2, random_state=0)),
    ("categorical", "categorical", (), lambda: CategoricalHMM(2, random_state=0)),
    ("gaussian", "gaussian", ("--covariance", "full"),
     lambda: GaussianHMM(2, "full", random_state=0)),
    ("gmm", "gaussian", ("--n-mix", 2), lambda: GMMHMM(2, n_mix=2, random_state=0)),
    ("bernoulli", "bernoulli", (),
     lambda: HMM(ProductFamily([Bernoulli()] * 4), 2, random_state=0)),
])
def test_every_family_fits_the_estimator_it_names(files, tmp_path, family, data, options,
                                                  expected):
    paths, arrays = files
    fastem_cli("fit", paths[data], "--model", "hmm", "--family", family, *options, "-k", 2,
               "--lengths", paths["lengths"], "--seed", 0, "-o", tmp_path / "m.npz", "-q")
    model, reference = fastem.load(tmp_path / "m.npz"), expected().fit(arrays[data], LENGTHS)
    assert type(model) is type(reference)
    np.testing.assert_array_equal(model.transmat_, reference.transmat_)
    np.testing.assert_array_equal(model.predict(arrays[data], LENGTHS),
                                  reference.predict(arrays[data], LENGTHS))
    assert f"{type(model).__name__}: 2 states" in fastem_cli("info", tmp_path / "m.npz").stdout


def test_bad_input_exits_with_a_clear_message(files, tmp_path):
    paths, arrays = files
    data, n = paths["gaussian"], LENGTHS.sum()
    bad = {"short": [n - 1], "negative": [n + 5, -5], "table": [[n]], "halves": [n - 0.5, 0.5]}
    for name, lengths in bad.items():
        np.save(tmp_path / f"{name}.npy", np.array(lengths))
    fastem_cli("fit", data, "-k", 2, "-o", tmp_path / "mixture.npz", "-q")
    fastem_cli("fit", data, "--model", "hmm", "-k", 2, "-o", tmp_path / "hmm.npz", "-q")
    hmm_fit = ("fit", data, "--model", "hmm", "-k", 2, "-o", tmp_path / "new.npz")
    cases = [
        (hmm_fit + ("--lengths", tmp_path / "short.npy"), f"sum to {n - 1}, but X has {n} rows"),
        (hmm_fit + ("--lengths", tmp_path / "negative.npy"), "sequence 1 has length -5"),
        (hmm_fit + ("--lengths", tmp_path / "table.npy"), "must be a non-empty 1-D array"),
        (hmm_fit + ("--lengths", tmp_path / "halves.npy"), "must hold integers"),
        (hmm_fit + ("--lengths", tmp_path / "none.npy"), "--lengths: no such file"),
        (hmm_fit + ("--lengths", data), "must be a non-empty 1-D array"),
        (hmm_fit + ("--checkpoint", tmp_path / "c.npz", "--n-init", 2),
         "--checkpoint, --n-init apply to mixtures, not to --model hmm"),
        (hmm_fit + ("--family", "poisson", "--covariance", "full"),
         "--covariance does not apply to PoissonHMM (--family poisson)"),
        (hmm_fit + ("--n-mix", 2), "--n-mix does not apply to GaussianHMM (--family gaussian)"),
        (hmm_fit + ("--family", "weibull"), "unknown family 'weibull' for a hidden Markov model; "
                                            "expected one of ['bernoulli', 'categorical', "
                                            "'exponential', 'gamma', 'gaussian', 'gmm', "
                                            "'multinomial', 'poisson']"),
        (hmm_fit + ("--family", "normal,poisson,normal"), "describes 3 columns but the data have 2"),
        (("fit", data, "-k", 2, "--lengths", paths["lengths"], "-o", tmp_path / "new.npz"),
         "--lengths applies to --model hmm"),
        (("fit", data, "--model", "hmm", "--lengths", paths["lengths"], "-o",
          paths["lengths"]), "writing it would destroy the input"),
        (("predict", tmp_path / "hmm.npz", data, "--lengths", paths["lengths"], "-o",
          paths["lengths"]), "writing it would destroy the input"),
        (("predict", tmp_path / "hmm.npz", data, "--lengths", tmp_path / "short.npy", "-o",
          tmp_path / "s.npy"), f"sum to {n - 1}"),
        (("score", tmp_path / "mixture.npz", data, "--lengths", paths["lengths"]),
         "--lengths applies to hidden Markov models; " + repr(str(tmp_path / "mixture.npz"))
         + " holds a GaussianMixture"),
        (("sample", tmp_path / "hmm.npz", "-n", 5, "-o", tmp_path / "d.npy", "--states",
          tmp_path / "d"), "--states and --output are the same file"),
    ]
    for args, message in cases:
        result = fastem_cli(*args, check=False)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "new.npz").exists() and not (tmp_path / "s.npy").exists()
    np.testing.assert_array_equal(np.load(paths["lengths"]), LENGTHS)


def test_sigint_writes_the_last_completed_iteration(tmp_path):
    rng = np.random.RandomState(1)
    path = tmp_path / "long.npy"
    np.save(path, rng.randn(200_000, 4))
    model_path = tmp_path / "model.npz"
    interrupt_fit(path, "--model", "hmm", "-k", 6, "--tol=-1e300", "--max-iter", 10000,
                  "--seed", 0, "-o", model_path)
    model = fastem.load(model_path)
    assert isinstance(model, GaussianHMM) and np.isfinite(model.means_).all()
    np.testing.assert_allclose(model.transmat_.sum(axis=1), 1.0)
