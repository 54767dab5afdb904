"""Model files: round trip, atomic writes, and refusal of damaged or foreign files."""
import json
import zipfile

import numpy as np
import pytest

import fastem
from fastem import GaussianMixture


@pytest.fixture(scope="module")
def fitted(request):
    X = np.random.RandomState(0).randn(400, 3)
    return X, {t: GaussianMixture(2, covariance_type=t, random_state=0).fit(X)
               for t in ("full", "tied", "diag", "spherical")}


def test_round_trip_predicts_identically(fitted, tmp_path, covariance_type):
    X, models = fitted
    model = models[covariance_type]
    path = model.save(tmp_path / "model")
    assert path.endswith(".npz")
    loaded = fastem.load(path)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_",
                 "lower_bound_", "lower_bounds_", "n_iter_", "converged_", "n_features_in_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert not list(tmp_path.glob("*.tmp"))


def _rewrite(path, out, **changes):
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(str(arrays.pop("header")[()]))
    for key, value in changes.items():
        if key in arrays:
            arrays[key] = value
        else:
            header[key] = value
    np.savez(out, header=np.array(json.dumps(header)), **arrays)


@pytest.mark.parametrize("change, message", [
    ({"version": 99}, "format version 99"),
    ({"format": "something-else"}, "not a fastem model file"),
    ({"estimator": "Evil"}, "unknown estimator"),
    ({"means_": np.zeros((3, 3))}, "means_ has shape"),
    ({"weights_": np.array([0.5, np.nan])}, "NaN or infinity"),
    ({"weights_": np.array([0.9, 0.9])}, "not a valid mixture"),
])
def test_tampered_files_are_refused(fitted, tmp_path, change, message):
    _, models = fitted
    path = models["full"].save(tmp_path / "model.npz")
    bad = tmp_path / "bad.npz"
    _rewrite(path, bad, **change)
    with pytest.raises(ValueError, match=message):
        fastem.load(bad)


def test_truncated_missing_pickled_and_foreign_files(fitted, tmp_path):
    _, models = fitted
    path = models["diag"].save(tmp_path / "model.npz")
    data = (tmp_path / "model.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable fastem model"):
        fastem.load(tmp_path / "cut.npz")
    with pytest.raises(ValueError, match="no such model file"):
        fastem.load(tmp_path / "nothing.npz")
    np.savez(tmp_path / "pickled.npz", header=np.array([{"format": "fastem-model"}],
                                                       dtype=object))
    with pytest.raises(ValueError, match="not a readable fastem model"):
        fastem.load(tmp_path / "pickled.npz")
    with zipfile.ZipFile(tmp_path / "foreign.npz", "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="not a readable fastem model"):
        fastem.load(tmp_path / "foreign.npz")
    assert path


def test_unfitted_model_cannot_be_saved(tmp_path):
    with pytest.raises(fastem.NotFittedError):
        GaussianMixture(2).save(tmp_path / "m.npz")


def test_new_parameters_round_trip_and_other_estimators_are_refused(tmp_path):
    import warnings

    import fastem

    X = np.random.default_rng(0).normal(size=(300, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fastem.GaussianMixture(2, m_step="partial", m_step_iters=2, frozen=("weights",),
                                       mean_precision_prior=0.5, random_state=0).fit(X)
        poisson = fastem.PoissonMixture(2, random_state=0).fit(np.abs(np.round(3 * X)))
    loaded = fastem.load(fastem.save(model, tmp_path / "m.npz"))
    assert (loaded.m_step, loaded.m_step_iters, loaded.mean_precision_prior) == ("partial", 2, 0.5)
    assert loaded.frozen == ("weights",)
    with pytest.raises(TypeError, match="GaussianMixture"):
        fastem.save(poisson, tmp_path / "p.npz")
