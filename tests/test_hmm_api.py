"""MultinomialHMM and GMMHMM: agreement with hmmlearn 0.3.3 from the same initial parameters,
zeros that stay zero, thread-count independence, sampling and their input errors; and, for
every class, hmmlearn's logged messages and GaussianHMM's factoring of a singular update."""
import copy
import json
import logging
import warnings

import numpy as np
import pytest
from test_hmm import K, assert_close, chain, gaussian_data

from fastem import hmm

hmmlearn_hmm = pytest.importorskip("hmmlearn.hmm")


@pytest.fixture(autouse=True)
def quiet_hmmlearn():
    """hmmlearn logs a notice for every MultinomialHMM it builds."""
    logging.getLogger("hmmlearn").setLevel(logging.ERROR)


def fit_both(make, set_params, X, lengths):
    models = []
    for module in (hmmlearn_hmm, hmm):
        model = make(module)
        set_params(model)
        models.append(model.fit(X, lengths))
    return models


def assert_same_model(ref, ours, X, lengths, names):
    assert len(ours.monitor_.history) == len(ref.monitor_.history)
    assert_close(ref.monitor_.history, ours.monitor_.history)
    for name in ("startprob_", "transmat_") + names:
        assert_close(getattr(ref, name), getattr(ours, name))
    assert_close(ref.score(X, lengths), ours.score(X, lengths))
    assert_close(ref.predict_proba(X, lengths), ours.predict_proba(X, lengths), rtol=1e-7)
    np.testing.assert_array_equal(ref.predict(X, lengths), ours.predict(X, lengths))
    assert_close(ref.decode(X, lengths)[0], ours.decode(X, lengths)[0])
    assert_close(ref.bic(X, lengths), ours.bic(X, lengths))


# ---------------------------------------------------------------- MultinomialHMM
def count_data(seed=3, n_trials=8, n=500, d=5):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(d), size=K)
    z = np.repeat(rng.integers(0, K, n // 25), 25)
    return np.vstack([rng.multinomial(n_trials, p[k]) for k in z]), [120, 80, 300]


def test_multinomial_hmm_matches_hmmlearn():
    X, lengths = count_data()
    startprob, transmat = chain()
    emission = np.random.default_rng(5).dirichlet(np.ones(X.shape[1]), size=K)

    def set_params(model):
        model.startprob_, model.transmat_, model.emissionprob_ = startprob, transmat, emission

    ref, ours = fit_both(lambda m: m.MultinomialHMM(K, n_trials=8, init_params="", n_iter=15,
                                                    tol=-np.inf), set_params, X, lengths)
    assert_same_model(ref, ours, X, lengths, ("emissionprob_",))


def test_multinomial_default_init_matches_hmmlearn_and_infers_n_trials():
    """Same draws as hmmlearn from the same seed (Dirichlet chain, uniform emission rows), and
    ``n_trials`` set from the rows' common total."""
    X, lengths = count_data(4, n_trials=6)
    ref, ours = (m.MultinomialHMM(K, n_iter=5, random_state=7).fit(X, lengths)
                 for m in (hmmlearn_hmm, hmm))
    assert ours.n_trials == 6
    assert_close(ref.monitor_.history, ours.monitor_.history)
    assert_close(ref.emissionprob_, ours.emissionprob_)
    sampled, states = ours.sample(40, random_state=0)
    assert sampled.dtype.kind == "i" and sampled.shape == (40, X.shape[1])
    assert np.all(sampled.sum(axis=1) == 6) and states.shape == (40,)


def test_multinomial_zero_emission_probability_stays_exactly_zero():
    X, lengths = count_data(6)
    startprob, transmat = chain()
    emission = np.full((K, X.shape[1]), 1.0 / X.shape[1])
    emission[0] = [0.0, 0.25, 0.25, 0.25, 0.25]
    model = hmm.MultinomialHMM(K, n_trials=8, init_params="", n_iter=10, tol=-np.inf)
    model.startprob_, model.transmat_, model.emissionprob_ = startprob, transmat, emission
    model.fit(X, lengths)
    assert model.emissionprob_[0, 0] == 0.0
    rows_with_symbol_0 = X[:, 0] > 0
    assert np.all(model.predict_proba(X, lengths)[rows_with_symbol_0, 0] == 0.0)
    history = np.asarray(model.monitor_.history)
    assert np.all(np.diff(history) >= -1e-10 * np.abs(history[-1]))


def test_multinomial_threads_chunks_and_memmap_give_identical_fits(tmp_path):
    X, lengths = count_data(8)
    np.save(tmp_path / "counts.npy", X.astype(np.float32))
    fits = [hmm.MultinomialHMM(K, n_iter=6, tol=-np.inf, random_state=0, n_threads=n,
                               chunk_size=16).fit(source, lengths)
            for n, source in ((1, X), (2, X), (2, str(tmp_path / "counts.npy")))]
    for model in fits[1:]:
        assert list(model.monitor_.history) == list(fits[0].monitor_.history)
        assert np.array_equal(model.emissionprob_, fits[0].emissionprob_)


def test_multinomial_family_serves_mixtures_too(tmp_path):
    """The same kernel's fused E-step (no given posteriors): scipy's log-likelihood, a
    non-decreasing bound, and a model file that predicts identically."""
    from scipy.special import logsumexp
    from scipy.stats import multinomial

    import fastem
    from fastem.families.multinomial import MultinomialFamily

    X, _ = count_data(9)
    model = fastem.MixtureModel(MultinomialFamily(n_trials=8), K, random_state=0).fit(X)
    p = model.params_.probabilities
    joint = np.stack([multinomial.logpmf(X, 8, p[k]) for k in range(K)], axis=1)
    reference = logsumexp(joint + np.log(model.weights_), axis=1).mean()
    assert_close(reference, model.score(X), rtol=1e-12)
    assert np.all(np.diff(model.lower_bounds_) >= -1e-12)
    loaded = fastem.load(fastem.save(model, tmp_path / "mixture"))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_multinomial_rows_outside_support_are_named():
    X, lengths = count_data()
    bad = X.copy()
    bad[37, 1] += 1  # sums to 9 trials
    with pytest.raises(ValueError, match=r"summing to n_trials=8: X row 37 is"):
        hmm.MultinomialHMM(K, n_trials=8).fit(bad, lengths)
    bad[37, 1] = -1
    with pytest.raises(ValueError, match=r"nonnegative integers.*X row 37"):
        hmm.MultinomialHMM(K).fit(bad, lengths)
    varying = X.copy()
    varying[0, 0] += 1  # totals differ: n_trials stays None, sampling is refused (as hmmlearn)
    model = hmm.MultinomialHMM(K, n_iter=2, random_state=0).fit(varying, lengths)
    assert model.n_trials is None
    with pytest.raises(ValueError, match="a single n_trials"):
        model.sample(5)


# ---------------------------------------------------------------- GMMHMM
M = 2


def gmm_data(seed=0, d=2):
    return gaussian_data(seed, d)


def gmm_start(covariance_type, X):
    rng = np.random.default_rng(1)
    d = X.shape[1]
    means = X[rng.choice(X.shape[0], K * M, replace=False)].reshape(K, M, d)
    weights = rng.dirichlet(np.ones(M), size=K)
    a = rng.normal(size=(d, d))
    base = a @ a.T / d + np.eye(d)
    scales = rng.uniform(0.5, 2.0, (K, M))
    covars = {"spherical": scales, "diag": scales[..., None] * np.ones(d),
              "full": scales[..., None, None] * base,
              "tied": scales[:, :1, None] * base}[covariance_type]
    return weights, means, covars


PRIORS = {"default": {}, "map": dict(means_prior=0.3, means_weight=0.5, weights_prior=1.5,
                                     covars_prior=0.2, covars_weight=0.4)}


@pytest.mark.parametrize("covariance_type", ["spherical", "diag", "full", "tied"])
@pytest.mark.parametrize("priors", ["default", "map"])
def test_gmm_hmm_matches_hmmlearn(covariance_type, priors):
    X, lengths = gmm_data()
    startprob, transmat = chain()
    weights, means, covars = gmm_start(covariance_type, X)
    prior = dict(PRIORS[priors])
    if priors == "map" and covariance_type in ("full", "tied"):  # a proper inverse Wishart
        prior.update(covars_prior=0.2 * np.eye(X.shape[1]), covars_weight=4.0)

    def set_params(model):
        model.startprob_, model.transmat_ = startprob, transmat
        model.weights_, model.means_, model.covars_ = weights, means, covars

    ref, ours = fit_both(lambda m: m.GMMHMM(K, M, covariance_type=covariance_type,
                                            init_params="", n_iter=10, tol=-np.inf, **prior),
                         set_params, X, lengths)
    assert ours.covars_.shape == ref.covars_.shape
    assert_same_model(ref, ours, X, lengths, ("weights_", "means_", "covars_"))


@pytest.mark.parametrize("params", ["stmc", "stw", "mc", "stwc"])
def test_gmm_hmm_params_letters_match_hmmlearn(params):
    """Parameters left out of ``params`` stay; the others follow hmmlearn's updates (the
    covariance update uses the E-step's means, so freezing the means changes it)."""
    X, lengths = gmm_data(2)
    startprob, transmat = chain()
    weights, means, covars = gmm_start("diag", X)

    def set_params(model):
        model.startprob_, model.transmat_ = startprob, transmat
        model.weights_, model.means_, model.covars_ = weights, means, covars

    ref, ours = fit_both(lambda m: m.GMMHMM(K, M, params=params, init_params="", n_iter=6,
                                            tol=-np.inf), set_params, X, lengths)
    assert_same_model(ref, ours, X, lengths, ("weights_", "means_", "covars_"))
    if "w" not in params:
        assert np.array_equal(ours.weights_, weights)


def test_gmm_hmm_components_dying_as_in_hmmlearn():
    """hmmlearn's default spherical prior leaves a nearly empty component a negative variance
    (its density then floors it at the smallest double) and the next M-step a weight of
    exactly 0: fastem follows step for step."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 1)) + rng.integers(0, 3, (300, 1)) * 3
    weights = rng.dirichlet(np.ones(4), size=K)
    means = X[rng.choice(300, K * 4, replace=False)].reshape(K, 4, 1)

    def set_params(model):
        model.startprob_, model.transmat_ = np.full(K, 1 / K), np.full((K, K), 1 / K)
        model.weights_, model.means_, model.covars_ = weights, means, np.ones((K, 4))

    with np.errstate(divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # hmmlearn's log(0)
        ref, ours = fit_both(lambda m: m.GMMHMM(K, 4, covariance_type="spherical",
                                                init_params="", n_iter=8, tol=-np.inf),
                             set_params, X, [100, 200])
    assert (ref.weights_ == 0).sum() == 3
    np.testing.assert_array_equal(ref.weights_ == 0, ours.weights_ == 0)
    assert_close(ref.monitor_.history, ours.monitor_.history)
    used = ref.weights_ > 0
    assert_close(ref.covars_[used], ours.covars_[used])
    assert_close(ref.means_, ours.means_)


def test_gmm_hmm_threads_pieces_and_monotone():
    """Bitwise the same for 1 and 2 threads; blocks cut into pieces of a few chunks equal one
    piece to rounding; the log-likelihood never decreases from fastem's own initialisation."""
    X, lengths = gmm_data(3, d=3)
    fits = [hmm.GMMHMM(K, M, covariance_type="full", n_iter=12, tol=-np.inf, random_state=0,
                       n_threads=n, chunk_size=chunk).fit(X, lengths)
            for n, chunk in ((1, 4), (2, 4), (2, None))]
    assert list(fits[0].monitor_.history) == list(fits[1].monitor_.history)
    for name in ("weights_", "means_", "covars_", "transmat_"):
        assert np.array_equal(getattr(fits[0], name), getattr(fits[1], name))
    assert_close(fits[2].monitor_.history, fits[0].monitor_.history, rtol=1e-11)
    history = np.asarray(fits[0].monitor_.history)
    assert np.all(np.diff(history) >= -1e-10 * np.abs(history[-1]))
    sampled, states = fits[0].sample(300, random_state=0, currstate=1)
    assert sampled.shape == (300, 3) and states[0] == 1


def test_gmm_hmm_bad_attributes_are_named():
    X, lengths = gmm_data()
    weights, means, covars = gmm_start("diag", X)
    model = hmm.GMMHMM(K, M, init_params="st")
    model.weights_, model.means_, model.covars_ = weights, means, covars[:, :, :1]
    with pytest.raises(ValueError, match=r"'diag' mixture covars must have shape \(3, 2, 2\)"):
        model.fit(X, lengths)
    model.covars_, model.weights_ = covars, weights * 2
    with pytest.raises(ValueError, match="weights_ rows must sum to 1: row 0 sums to 2"):
        model.fit(X, lengths)
    model.weights_, model.covars_ = weights, np.where(np.arange(M) == 1, -1.0, 1.0)[:, None] \
        * covars
    with pytest.raises(ValueError, match="'diag' mixture covars must be non-negative"):
        model.predict(X, lengths)
    full = hmm.GMMHMM(K, M, covariance_type="full", init_params="")
    full.startprob_, full.transmat_ = chain()
    full.weights_, full.means_ = weights, means
    full.covars_ = np.tile(np.eye(2), (K, M, 1, 1))
    full.covars_[2, 1] = [[1.0, 2.0], [2.0, 1.0]]  # symmetric, not positive definite
    with pytest.raises(ValueError, match="Covariance of state #2, mixture #1 is not"):
        full.score(X, lengths)


# ---------------------------------------------------------------- model files
def _hmm_models():
    """One fitted model of every HMM class (and covariance type), with data to score."""
    from fastem.families.expfam import Bernoulli, Normal, ProductFamily
    from fastem.families.gaussian import GaussianFamily
    from fastem.families.multinomial import MultinomialFamily

    X, lengths = gaussian_data(20)
    counts, count_lengths = count_data(21)
    rng = np.random.default_rng(22)
    codes = rng.integers(0, 4, size=(300, 1))
    poisson = rng.poisson(3.0, size=(300, 2))
    table = np.column_stack([rng.random(300) < 0.3, rng.normal(size=300)]).astype(float)
    fit = dict(n_iter=3, random_state=0)
    models = [(hmm.GaussianHMM(K, t, **fit), X, lengths)
              for t in ("spherical", "diag", "full", "tied")]
    models += [(hmm.GMMHMM(K, M, covariance_type=t, **fit), X, lengths)
               for t in ("spherical", "diag", "full", "tied")]
    models += [(hmm.CategoricalHMM(K, **fit), codes, None),
               (hmm.PoissonHMM(K, **fit), poisson, [100, 200]),
               (hmm.MultinomialHMM(K, **fit), counts, count_lengths),
               (hmm.HMM(GaussianFamily("full"), K, **fit), X, lengths),
               (hmm.HMM(ProductFamily([Bernoulli(), Normal()]), K, **fit), table, [100, 150, 50]),
               (hmm.HMM(MultinomialFamily(), K, **fit), counts, count_lengths)]
    return [(model.fit(data, seq), data, seq) for model, data, seq in models]


@pytest.fixture(scope="module")
def hmm_models():
    return _hmm_models()


def test_every_hmm_class_round_trips_through_a_model_file(hmm_models, tmp_path):
    import fastem

    for i, (model, X, lengths) in enumerate(hmm_models):
        loaded = fastem.load(fastem.save(model, tmp_path / f"model{i}"))
        assert type(loaded) is type(model)
        params, saved = loaded.get_params(), model.get_params()
        assert type(params.pop("family", None)) is type(saved.pop("family", None))
        assert params == saved
        for name in model._fitted_arrays:
            if isinstance(getattr(model, name), np.ndarray):
                np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
        assert list(loaded.monitor_.history) == list(model.monitor_.history)
        assert loaded.monitor_.iter == model.monitor_.iter > 0
        assert loaded.monitor_.converged == model.monitor_.converged
        assert loaded.score(X, lengths) == model.score(X, lengths)
        np.testing.assert_array_equal(loaded.predict(X, lengths), model.predict(X, lengths))
        np.testing.assert_array_equal(loaded.predict_proba(X, lengths),
                                      model.predict_proba(X, lengths))


def test_damaged_hmm_files_are_refused(hmm_models, tmp_path):
    import fastem

    model = hmm_models[1][0]  # diag GaussianHMM
    path = fastem.save(model, tmp_path / "model")
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    for name, value, message in [
            ("transmat_", np.full((K, K), 0.5), "transmat_ rows must sum to 1"),
            ("startprob_", np.array([np.nan, 0.5, 0.5]), "startprob_ contains NaN"),
            ("means_", np.zeros((K, 5)), r"means_ must have shape .* got \(3, 5\)")]:
        np.savez(tmp_path / "bad.npz", **{**arrays, name: value})
        with pytest.raises(ValueError, match=message):
            fastem.load(tmp_path / "bad.npz")
    header = json.loads(str(arrays["header"][()]))
    header["fitted"]["_monitor_record"] = [-1, ["x"]]
    np.savez(tmp_path / "bad.npz", **{**arrays, "header": np.array(json.dumps(header))})
    with pytest.raises(ValueError, match="monitor record .* is not an iteration count"):
        fastem.load(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="not fitted"):
        fastem.save(hmm.GaussianHMM(K), tmp_path / "unfitted")


# ---------------------------------------------------------------- bad input, every class
METHODS = ("fit", "score", "score_samples", "predict", "predict_proba", "decode", "sample")


def _call(model, method, X, lengths):
    if method == "sample":
        return model.sample(5)
    return getattr(model, method)(X, lengths)


def _set(name, change):
    """A mutation setting attribute ``name`` to ``change(its value)``."""
    def mutate(model, X, lengths):
        setattr(model, name, change(np.array(getattr(model, name), dtype=float)))
        return X, lengths
    return mutate


def _shifted(value, index, delta):
    value[index] += delta
    return value


def _bad_emission(model, X, lengths):
    name = {"GaussianHMM": "means_", "GMMHMM": "weights_", "CategoricalHMM": "emissionprob_",
            "MultinomialHMM": "emissionprob_", "PoissonHMM": "lambdas_"}[type(model).__name__]
    value = np.array(getattr(model, name), dtype=float)
    if name == "means_":
        value = value[:, :2]
    else:
        value[0, 0] = -0.5
    setattr(model, name, value)
    return X, lengths


def _bad_row(model, X, lengths):
    X = X.astype(float)
    from fastem.families.gaussian import GaussianFamily

    gaussian = type(model) in (hmm.GaussianHMM, hmm.GMMHMM) \
        or isinstance(getattr(model, "family", None), GaussianFamily)
    X[7, 0] = np.nan if gaussian else -1.0  # Gaussians take any finite value
    return X, lengths


BAD_INPUTS = {
    "lengths not summing to the rows": (lambda m, X, n: (X, [len(X) - 5]),
                                        r"lengths sum to \d+, but X has \d+ rows"),
    "a zero length": (lambda m, X, n: (X, [len(X), 0]),
                      "must be positive: sequence 1 has length 0"),
    "a negative length": (lambda m, X, n: (X, [len(X) + 3, -3]),
                          "must be positive: sequence 1 has length -3"),
    "transmat_ rows not summing to 1": (_set("transmat_", lambda t: _shifted(t, (1, 0), 0.2)),
                                        "transmat_ rows must sum to 1: row 1 sums to 1.2"),
    "a negative transition": (_set("transmat_", lambda t: _shifted(_shifted(t, (0, 0), 2.0),
                                                                    (0, 1), -2.0)),
                              r"transmat_ must hold probabilities \(>= 0, not NaN\)"),
    "a NaN start probability": (_set("startprob_", lambda s: _shifted(s, 0, np.nan)),
                                r"startprob_ must hold probabilities \(>= 0, not NaN\)"),
    "an unknown params letter": (lambda m, X, n: (setattr(m, "params", "stq"), (X, n))[1],
                                 r"params='stq' holds unknown letter\(s\) \['q'\]"),
    "invalid emission parameters": (_bad_emission, "(must hold probabilities|non-negative "
                                                   "rates|means_ must have shape)"),
    "a value outside the support": (_bad_row, "(X row 7 is|first at row 7)"),
}


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_input_gets_a_clear_error_from_every_class_and_method(hmm_models, kind):
    mutate, message = BAD_INPUTS[kind]
    for model, X, lengths in hmm_models:
        if kind == "invalid emission parameters" and type(model) is hmm.HMM:
            continue  # components_ are the family's objects, checked by the family
        for method in METHODS:
            if method == "sample" and ("length" in kind or "support" in kind):
                continue  # sample reads no X
            candidate = copy.deepcopy(model)
            candidate.init_params = ""  # fit starts from the (mutated) attributes
            data, seq = mutate(candidate, X.copy(), lengths)
            with pytest.raises(ValueError, match=message):
                _call(candidate, method, data, seq)


def test_left_right_zeros_stay_exactly_zero_for_every_class(hmm_models, caplog):
    for model, X, lengths in hmm_models:
        model = copy.deepcopy(model)
        model.init_params, model.n_iter, model.tol = "", 5, -np.inf
        model.startprob_ = np.array([1.0, 0.0, 0.0])
        model.transmat_ = np.array([[0.6, 0.4, 0.0], [0.0, 0.7, 0.3], [0.0, 0.0, 1.0]])
        caplog.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # hmmlearn logs, and so does fastem: no warnings
            model.fit(X, lengths)
        assert model.startprob_[1] == model.startprob_[2] == 0.0
        assert np.all(model.transmat_[np.tril_indices(K, -1)] == 0.0) and \
            model.transmat_[0, 2] == 0.0
        unseen = model.transmat_.sum(axis=1) == 0  # a state never left: hmmlearn's zero row
        assert unseen.any() == any("have zero sum" in r.getMessage() for r in caplog.records)
        if not unseen.any():
            assert np.all(model.predict_proba(X, lengths)[0, 1:] == 0.0)


def test_a_users_monitor_decides_when_fit_stops():
    """hmmlearn's documented pattern: ``monitor_`` exists before ``fit`` and may be replaced by
    a subclass whose ``converged`` decides when EM stops (here: hmmlearn's own class)."""
    from hmmlearn.base import ConvergenceMonitor

    class ThresholdMonitor(ConvergenceMonitor):
        @property
        def converged(self):
            return self.iter == self.n_iter or self.history[-1] >= -2750

    X, lengths = gaussian_data(30)
    model = hmm.GaussianHMM(K, n_iter=50, tol=-np.inf, random_state=0)
    model.monitor_ = ThresholdMonitor(model.monitor_.tol, model.monitor_.n_iter,
                                      model.monitor_.verbose)
    model.fit(X, lengths)
    history = list(model.monitor_.history)
    assert 1 < len(history) < 50 and history[-1] >= -2750 > history[-2]
    refit = hmm.GaussianHMM(K, n_iter=len(history), tol=-np.inf, random_state=0).fit(X, lengths)
    assert list(refit.monitor_.history) == history  # the same iterations, then stopped


def test_spherical_covars_in_hmmlearns_shapes():
    X, lengths = gaussian_data(31, d=1)
    models = []
    for covars in ([1.0, 2.0, 3.0], [[1.0], [2.0], [3.0]]):
        model = hmm.GaussianHMM(K, "spherical", init_params="st", n_iter=2, random_state=0)
        model.means_, model.covars_ = X[[0, 300, 500]], covars
        models.append(model.fit(X, lengths))
    assert list(models[0].monitor_.history) == list(models[1].monitor_.history)


def test_hmmlearns_log_messages(caplog):
    """hmmlearn logs (it does not warn) when init_params overwrites a parameter the user set,
    and when the rows hold fewer values than the parameters fitted; so does fastem."""
    model = hmm.GaussianHMM(3, "full", n_iter=2, random_state=0)
    model.startprob_ = np.full(3, 1 / 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(np.random.RandomState(0).normal(size=(10, 4)))
    messages = [record.getMessage() for record in caplog.records]
    assert "Even though the 'startprob_' attribute is set, it will be overwritten during " \
           "initialization because 'init_params' contains 's'" in messages
    # 2 + 6 + 12 means + 30 covariance entries > 40 values
    assert "Fitting a model with 50 free scalar parameters with only 40 data points will " \
           "result in a degenerate solution." in messages


@pytest.mark.parametrize("cls", [hmm.GaussianHMM, hmm.PoissonHMM, hmm.GMMHMM])
def test_hmmlearns_private_check_and_set_n_features(cls):
    """Code written against hmmlearn's private ``_check_and_set_n_features`` runs: it sets
    ``n_features`` from the columns, then refuses another count in hmmlearn's words, and a fit
    afterwards is unaffected. (Categorical and multinomial checks: the upstream suites.)"""
    model = cls(2, n_iter=2, random_state=0)
    model._check_and_set_n_features(np.zeros((5, 3)))
    assert model.n_features == 3
    model._check_and_set_n_features(np.ones((2, 3)))
    with pytest.raises(ValueError, match="^Unexpected number of dimensions, got 4 but expected "
                                         "3$"):
        model._check_and_set_n_features(np.zeros((5, 4)))
    X = np.random.RandomState(0).poisson(3.0, size=(40, 3)).astype(float)
    assert model.fit(X).n_features == 3 and model.n_features_in_ == 3


def test_a_collapsed_full_covariance_is_factored_as_hmmlearn_does(monkeypatch):
    """A state whose covariance update is singular (a constant column, a state with almost no
    rows) is factored with 1e-7 on its diagonal, as hmmlearn's density does, so the fit goes on
    (hmmlearn's issue 2); the fitted covars_ stay the update's, and predict reads them."""
    from fastem.families import gaussian_hmmlearn

    floored = []
    strict = gaussian_hmmlearn.precision_cholesky
    monkeypatch.setattr(gaussian_hmmlearn, "precision_cholesky",
                        lambda *args: floored.append(1) or strict(*args))
    rng = np.random.RandomState(0)
    X = np.column_stack([np.full(9, 715.0), np.arange(585, 0, -65.0), rng.normal(size=(9, 2))])
    with pytest.raises(np.linalg.LinAlgError):  # the fitted covariances are singular
        np.linalg.cholesky(hmm.GaussianHMM(3, "full", random_state=0).fit(X).covars_)
    model = hmm.GaussianHMM(3, "full", random_state=0).fit(X)
    assert floored
    assert np.isfinite(model.score(X))
    assert model.predict(X).shape == (9,)
