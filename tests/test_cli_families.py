"""The ``fastem`` command for every family (``fit --family``) and ``fastem select``."""
import json

import numpy as np
import pytest
from test_cli import fastem_cli

import fastem
from fastem.families.expfam import Categorical, Normal, Poisson, ProductFamily
from fastem.select import select


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    rng = np.random.RandomState(0)
    folder = tmp_path_factory.mktemp("families")
    counts = np.vstack([rng.poisson([2, 9], (400, 2)), rng.poisson([12, 1], (300, 2))])
    arrays = {
        "gaussian": np.vstack([rng.randn(500, 2) + m for m in ([0, 0], [6, 0], [0, 7])]),
        "poisson": counts.astype(float),
        "exponential": counts + 0.5,
        "gamma": counts + 0.5,
        "bernoulli": (rng.rand(600, 4) < np.where(np.arange(600) < 300, 0.2, 0.7)[:, None])
        .astype(float),
        "categorical": rng.randint(0, 3, (600, 3)).astype(float),
        "table": np.column_stack([rng.randn(700), counts[:, 0], rng.randint(0, 3, 700)])
        .astype(float),
    }
    paths = {}
    for name, X in arrays.items():
        paths[name] = folder / f"{name}.npy"
        np.save(paths[name], X)
    return paths, arrays


@pytest.mark.parametrize("family", ["gaussian", "bernoulli", "categorical", "poisson",
                                    "exponential", "gamma"])
def test_fit_every_family_then_predict_score_sample_info(files, tmp_path, family):
    paths, arrays = files
    model_path = tmp_path / "model.npz"
    fastem_cli("fit", paths[family], "-k", 2, "--family", family, "--seed", 0, "-o",
               model_path, "-q")
    model = fastem.load(model_path)
    reference = type(model)(2, random_state=0).fit(arrays[family])
    np.testing.assert_array_equal(model.weights_, reference.weights_)
    fastem_cli("predict", model_path, paths[family], "-o", tmp_path / "labels.npy", "-q")
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"),
                                  reference.predict(arrays[family]))
    score = fastem_cli("score", model_path, paths[family], "-q").stdout
    assert f"{reference.score(arrays[family]):.10g}" in score
    fastem_cli("sample", model_path, "-n", 10, "-o", tmp_path / "points.npy")
    assert np.load(tmp_path / "points.npy").shape == (10, arrays[family].shape[1])
    assert type(model).__name__ in fastem_cli("info", model_path).stdout


@pytest.mark.parametrize("spec", ["normal,poisson,categorical:3", "json"])
def test_fit_a_product_of_columns(files, tmp_path, spec):
    paths, arrays = files
    if spec == "json":
        spec = tmp_path / "family.json"
        spec.write_text(json.dumps(["normal", "poisson", "categorical:3"]))
    fastem_cli("fit", paths["table"], "-k", 2, "--family", spec, "--seed", 0, "-o",
               tmp_path / "model.npz", "-q")
    model = fastem.load(tmp_path / "model.npz")
    family = ProductFamily([Normal(), Poisson(), Categorical(3)])
    reference = fastem.MixtureModel(family, 2, random_state=0).fit(arrays["table"])
    np.testing.assert_array_equal(model.weights_, reference.weights_)
    assert "Categorical(n_categories=3" in fastem_cli("info", tmp_path / "model.npz").stdout


@pytest.mark.parametrize("args, message", [
    (("--family", "normal,poisson"), "describes 2 columns but the data have 3"),
    (("--family", "weibull"), "unknown column type 'weibull'"),
    (("--family", "normal,poisson,categorical"), "categorical:N"),
    (("--family", "normal*0,poisson"), "not a positive integer"),
    (("--family", "poisson", "--covariance", "diag"), "apply to --family gaussian"),
])
def test_bad_family_exits_with_a_clear_message(files, tmp_path, args, message):
    paths, _ = files
    result = fastem_cli("fit", paths["table"], "-k", 2, *args, "-o", tmp_path / "m.npz",
                        check=False)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_select_prints_the_table_writes_the_best_model_and_the_plot(files, tmp_path):
    pytest.importorskip("matplotlib")
    paths, arrays = files
    result = fastem_cli("select", paths["gaussian"], "-k", "1-4", "--covariance", "full,diag",
                        "--criterion", "bic", "--seed", 0, "-o", tmp_path / "best.npz",
                        "--plot", tmp_path / "bic.png")
    expected = select(arrays["gaussian"], range(1, 5), ("full", "diag"), random_state=0)
    assert "best by BIC: " + expected.best.name in result.stdout
    for row in expected.table:
        assert row.name in result.stdout
    assert "pass 1:" in result.stderr
    best = fastem.load(tmp_path / "best.npz")
    np.testing.assert_array_equal(best.means_, expected.best_.means_)
    assert (tmp_path / "bic.png").stat().st_size > 0


def test_select_other_families_and_bad_grids(files, tmp_path):
    paths, _ = files
    out = fastem_cli("select", paths["poisson"], "-k", "1,2,3", "--family", "poisson",
                     "--criterion", "icl", "-o", tmp_path / "best.npz", "-q").stdout
    assert "best by ICL: K=2" in out
    assert isinstance(fastem.load(tmp_path / "best.npz"), fastem.PoissonMixture)
    for k, message in (("1-x", "-k must be"), ("3-1", "grid is empty"),
                       ("1-5000", "only 700 rows")):
        result = fastem_cli("select", paths["poisson"], "-k", k, "--family", "poisson", "-o",
                            tmp_path / "b.npz", check=False)
        assert result.returncode == 2 and message in result.stderr, result.stderr
