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


def _header(path):
    with np.load(path, allow_pickle=False) as archive:
        return json.loads(str(archive["header"][()]))


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
    ({"version": 1}, "format version 1, .* refit the model and save it again"),
    ({"format": "something-else"}, "not a fastem model file"),
    ({"estimator": "Evil"}, "unknown estimator"),
    ({"params": {"n_components": {"object": {"class": "os.system", "args": {}}}}},
     "damaged header"),
    ({"params": {"n_components": {"tuple": [2], "set": []}}}, "damaged header"),
    ({"covariances_": np.zeros((2, 3, 3), dtype=np.float32)}, "covariances_ has shape"),
    ({"fitted": {"means_": 3}}, "damaged header"),
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


@pytest.mark.parametrize("change, message", [
    ({"params_.columns.1": np.ones((3, 1))}, r"params_.columns.1 has shape \(3, 1\)"),
    ({"weights_": np.array([0.5, -0.5])}, "not a valid mixture"),
    ({"fitted": {"params_": 3}}, "damaged header"),  # attributes missing
    ({"fitted.params_": 3}, "'int' object has no attribute"),
])
def test_tampered_files_of_other_estimators_are_refused(tmp_path, change, message):
    X = _data()["counts"]
    model = fastem.PoissonMixture(2, random_state=0).fit(X)
    path = model.save(tmp_path / "model.npz")
    bad = tmp_path / "bad.npz"
    if "fitted.params_" in change:  # one fitted value replaced
        change = {"fitted": {**_header(path)["fitted"], "params_": 3}}
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


def test_new_parameters_round_trip(tmp_path):
    import warnings

    import fastem

    X = np.random.default_rng(0).normal(size=(300, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fastem.GaussianMixture(2, m_step="partial", m_step_iters=2, frozen=("weights",),
                                       mean_precision_prior=0.5, random_state=0).fit(X)
    loaded = fastem.load(fastem.save(model, tmp_path / "m.npz"))
    assert (loaded.m_step, loaded.m_step_iters, loaded.mean_precision_prior) == ("partial", 2, 0.5)
    assert loaded.frozen == ("weights",)
    with pytest.raises(TypeError, match="fastem estimators"):
        fastem.save(model.family_, tmp_path / "f.npz")


# ------------------------------------------- every estimator, every constructor parameter
def _data(seed=0):
    rng = np.random.RandomState(seed)
    labels = rng.randint(2, size=300)
    normal = rng.randn(300, 3) + 4 * labels[:, None]
    counts = rng.poisson(np.where(labels[:, None], 6.0, 1.0), size=(300, 3)).astype(float)
    return {
        "real": normal,
        "binary": (rng.rand(300, 4) < np.where(labels[:, None], 0.8, 0.2)).astype(float),
        "counts": counts,
        "positive": rng.gamma(np.where(labels[:, None], 2.0, 6.0), 1.0, size=(300, 3)),
        "codes": np.minimum(counts, 2.0),
        "table": np.column_stack([normal[:, 0], counts[:, 0], np.minimum(counts[:, 1], 2.0)]),
    }


def _estimators():
    """(data name, estimator) with non-default constructor parameters, array ones included."""
    from fastem import (
        BernoulliMixture,
        CategoricalMixture,
        ExponentialMixture,
        GammaMixture,
        MixtureModel,
        PoissonMixture,
    )
    from fastem.families.expfam import Categorical, Normal, Poisson, ProductFamily
    from fastem.families.gaussian import GaussianFamily

    common = dict(tol=1e-4, max_iter=30, random_state=3, n_threads=1, chunk_size=64,
                  nan_policy="omit", verbose_interval=5)
    means = np.array([[0.0, 0.0, 0.0], [4.0, 4.0, 4.0]])
    return {
        "gaussian-full": ("real", GaussianMixture(
            2, covariance_type="full", reg_covar=1e-5, weights_init=np.array([0.4, 0.6]),
            means_init=means, precisions_init=np.stack([np.eye(3), 2 * np.eye(3)]),
            mean_prior=np.full(3, 2.0), covariance_prior=np.eye(3) * 1.5,
            mean_precision_prior=0.5, degrees_of_freedom_prior=4.0,
            weight_concentration_prior=2.0, m_step="partial", m_step_iters=2, **common)),
        "gaussian-diag": ("real", GaussianMixture(
            2, covariance_type="diag", means_init=means.astype(np.float32),
            precisions_init=[[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]], covariance_prior=np.full(3, 2.0),
            frozen=("weights",), init_params="random", **common)),
        "bernoulli": ("binary", BernoulliMixture(2, prior=(2.0, 2.0), frozen=(0,),
                                                 weight_concentration_prior=1.5, **common)),
        "poisson": ("counts", PoissonMixture(2, prior=(2.0, 0.5), m_step="partial", **common)),
        "exponential": ("positive", ExponentialMixture(2, prior=(1.5, 1.0), **common)),
        "gamma": ("positive", GammaMixture(2, m_step="exact", init_params="random", **common)),
        "categorical": ("codes", CategoricalMixture(2, n_categories=np.array([3, 3, 4]),
                                                    prior=2.0, **common)),
        "product": ("table", MixtureModel(ProductFamily(
            [Normal(), Poisson(prior=(2.0, 1.0)), Categorical(3, 2.0)], frozen={2}),
            2, weight_concentration_prior=2.0, frozen=("weights",), **common)),
        "gaussian-family": ("real", MixtureModel(GaussianFamily("tied", 1e-5), 2, **common)),
    }


def assert_same(a, b, where="value"):
    """Equal values of equal types; arrays bitwise equal with equal dtypes; family and
    parameters objects attribute by attribute."""
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif hasattr(a, "__dict__") and not isinstance(a, type):
        assert_same(vars(a), vars(b), where)
    else:
        assert a == b, (where, a, b)


def fitted_attributes(model):
    return {k: v for k, v in vars(model).items() if k.endswith("_") and not k.startswith("_")}


@pytest.mark.parametrize("name", sorted(_estimators()))
def test_every_estimator_round_trips_every_parameter(name, tmp_path):
    import warnings

    data, model = _estimators()[name]
    X = _data()[data]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    path = model.save(tmp_path / "model")
    loaded = type(model).load(path)
    assert type(loaded) is type(model)
    with np.load(path, allow_pickle=False) as archive:  # array parameters are arrays of the file
        arrays = [k for k, v in model.get_params().items() if isinstance(v, np.ndarray)]
        assert set(arrays) <= set(archive.files)
        assert arrays or name not in ("gaussian-full", "gaussian-diag", "categorical")
    assert_same(loaded.get_params(), model.get_params(), "params")
    assert_same(fitted_attributes(loaded), fitted_attributes(model), "fitted")
    for method in ("predict", "predict_proba", "score_samples"):
        np.testing.assert_array_equal(getattr(loaded, method)(X), getattr(model, method)(X))
    assert loaded.score(X) == model.score(X)
    assert loaded.bic(X) == model.bic(X)


class LabelledMixture(GaussianMixture):
    """A user's subclass with a parameter of its own."""

    def __init__(self, n_components=1, *, covariance_type="full", label="none", random_state=None):
        super().__init__(n_components, covariance_type=covariance_type, random_state=random_state)
        self.label = label


def test_a_user_subclass_saves_and_loads(tmp_path):
    X = _data()["real"]
    model = LabelledMixture(2, covariance_type="spherical", label="mine", random_state=0).fit(X)
    path = model.save(tmp_path / "model.npz")
    loaded = LabelledMixture.load(path)
    assert type(loaded) is LabelledMixture and loaded.label == "mine"
    assert_same(fitted_attributes(loaded), fitted_attributes(model), "fitted")
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    with pytest.raises(ValueError, match="holds a LabelledMixture, not a PoissonMixture"):
        fastem.PoissonMixture.load(path)


def test_warm_start_reuses_the_fitted_family(tmp_path):
    import warnings

    X = _data()["real"]
    model = GaussianMixture(2, mean_precision_prior=0.5, random_state=0, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
        family = model.family_
        np.testing.assert_allclose(family.prior.mean, X.mean(axis=0))  # a data-based default
        loaded = fastem.load(model.save(tmp_path / "m.npz"))
        model.set_params(warm_start=True).fit(X + 10.0)
        assert model.family_ is family
        loaded.set_params(warm_start=True).fit(X + 10.0)
        assert_same(loaded.family_, family, "family_")
        cold = GaussianMixture(2, mean_precision_prior=0.5, random_state=0, max_iter=5).fit(X + 10)
    np.testing.assert_allclose(cold.family_.prior.mean, X.mean(axis=0) + 10.0)
    assert_same(fitted_attributes(loaded), fitted_attributes(model), "fitted")


def test_unsaved_parameters_are_stored_as_none(tmp_path):
    X = _data()["real"]
    model = GaussianMixture(2, random_state=np.random.RandomState(0),
                            callback=lambda m: None).fit(X)
    loaded = fastem.load(model.save(tmp_path / "m.npz"))
    assert loaded.random_state is None and loaded.callback is None
