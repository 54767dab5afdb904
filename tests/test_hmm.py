"""Hidden Markov models: agreement with hmmlearn from the same initial parameters, monotone
log-likelihood, thread-count independence, decoding, sampling and input errors."""
import numpy as np
import pytest

from fastem import hmm
from fastem.families.expfam import Bernoulli, ExpFamParams, Normal, ProductFamily
from fastem.families.gaussian import GaussianFamily

hmmlearn_hmm = pytest.importorskip("hmmlearn.hmm")

RTOL = 1e-8
K = 3


def gaussian_data(seed=0, d=3):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(0, 1, (300, d)), rng.normal(3, 0.5, (200, d)),
                        rng.normal(-2, 2, (100, d))])
    return X, [100, 250, 1, 249]


def chain():
    startprob = np.array([0.5, 0.3, 0.2])
    transmat = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.05, 0.15, 0.8]])
    return startprob, transmat


def initial_covars(covariance_type, d):
    rng = np.random.default_rng(7)
    scales = rng.uniform(0.5, 2.0, K)
    a = rng.normal(size=(d, d))
    base = a @ a.T / d + np.eye(d)
    return {"diag": np.outer(scales, np.ones(d)) + rng.uniform(0, 0.5, (K, d)),
            "spherical": scales,
            "full": scales[:, None, None] * base,
            "tied": base}[covariance_type]


def fit_both(make, X, lengths, set_params, n_iter=15):
    models = []
    for module in (hmmlearn_hmm, hmm):
        model = make(module, n_iter)
        set_params(model)
        model.fit(X, lengths)
        models.append(model)
    return models


def assert_close(a, b, rtol=RTOL):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("covariance_type", ["spherical", "diag", "full", "tied"])
def test_gaussian_hmm_matches_hmmlearn(covariance_type):
    X, lengths = gaussian_data()
    startprob, transmat = chain()
    covars = initial_covars(covariance_type, X.shape[1])

    def set_params(model):
        model.startprob_, model.transmat_ = startprob, transmat
        model.means_ = X[[0, 150, 400]]
        model.n_features = X.shape[1]  # hmmlearn's covars_ setter needs it
        model.covars_ = covars

    ref, ours = fit_both(
        lambda m, n: m.GaussianHMM(K, covariance_type, init_params="", n_iter=n, tol=-np.inf,
                                   implementation="scaling"), X, lengths, set_params)
    assert len(ours.monitor_.history) == len(ref.monitor_.history) == 15
    assert_close(ref.monitor_.history, ours.monitor_.history)
    assert_close(ref.startprob_, ours.startprob_)
    assert_close(ref.transmat_, ours.transmat_)
    assert_close(ref.means_, ours.means_)
    # hmmlearn 0.3.3 keeps spherical variances tiled over features, (K, D)
    ref_covars = ref._covars_[:, 0] if covariance_type == "spherical" else ref._covars_
    assert_close(ref_covars, ours._covars_)
    assert ours.covars_.shape == (K, X.shape[1], X.shape[1])
    assert_close(ref.score(X, lengths), ours.score(X, lengths))
    assert_close(ref.predict_proba(X, lengths), ours.predict_proba(X, lengths), rtol=1e-7)
    ref_lp, ref_states = ref.decode(X, lengths)
    our_lp, our_states = ours.decode(X, lengths)
    assert_close(ref_lp, our_lp)
    np.testing.assert_array_equal(ref_states, our_states)
    assert_close(ref.bic(X, lengths), ours.bic(X, lengths))
    assert_close(ref.aic(X, lengths), ours.aic(X, lengths))


def test_gaussian_hmm_priors_match_hmmlearn():
    X, lengths = gaussian_data(1)
    startprob, transmat = chain()

    def set_params(model):
        model.startprob_, model.transmat_ = startprob, transmat
        model.means_ = X[[0, 150, 400]]
        model.covars_ = np.ones((K, X.shape[1]))

    ref, ours = fit_both(
        lambda m, n: m.GaussianHMM(K, "diag", means_prior=0.5, means_weight=2.0,
                                   covars_prior=0.3, covars_weight=3.0, init_params="",
                                   n_iter=n, tol=-np.inf), X, lengths, set_params)
    assert_close(ref.monitor_.history, ours.monitor_.history)
    assert_close(ref.means_, ours.means_)
    assert_close(ref._covars_, ours._covars_)


def test_categorical_hmm_matches_hmmlearn():
    rng = np.random.default_rng(3)
    X = rng.integers(0, 4, size=(400, 1))
    X[100:250] = rng.choice(4, size=(150, 1), p=[0.7, 0.1, 0.1, 0.1])
    lengths = [120, 80, 200]
    startprob, transmat = chain()
    emission = rng.dirichlet(np.ones(4), size=K)

    def set_params(model):
        model.startprob_, model.transmat_, model.emissionprob_ = startprob, transmat, emission

    ref, ours = fit_both(lambda m, n: m.CategoricalHMM(K, init_params="", n_iter=n,
                                                       tol=-np.inf), X, lengths, set_params)
    assert_close(ref.monitor_.history, ours.monitor_.history)
    assert_close(ref.transmat_, ours.transmat_)
    assert_close(ref.emissionprob_, ours.emissionprob_)
    np.testing.assert_array_equal(ref.predict(X, lengths), ours.predict(X, lengths))


def test_poisson_hmm_matches_hmmlearn():
    rng = np.random.default_rng(4)
    X = np.concatenate([rng.poisson(2.0, (200, 2)), rng.poisson(9.0, (150, 2))])
    lengths = [50, 300]
    startprob, transmat = chain()
    lambdas = np.array([[1.0, 2.0], [5.0, 4.0], [10.0, 12.0]])

    def set_params(model):
        model.startprob_, model.transmat_, model.lambdas_ = startprob, transmat, lambdas

    ref, ours = fit_both(lambda m, n: m.PoissonHMM(K, init_params="", n_iter=n, tol=-np.inf),
                         X, lengths, set_params)
    assert_close(ref.monitor_.history, ours.monitor_.history)
    assert_close(ref.transmat_, ours.transmat_)
    assert_close(ref.lambdas_, ours.lambdas_)


def test_convergence_monitor_and_default_init():
    X, lengths = gaussian_data(2)
    model = hmm.GaussianHMM(K, n_iter=100, tol=1e-4, random_state=0).fit(X, lengths)
    history = np.diff(np.asarray(model.monitor_.history))
    assert model.monitor_.converged and model.monitor_.iter == len(model.monitor_.history)
    assert np.all(history >= -1e-9 * np.abs(model.monitor_.history[-1]))


@pytest.mark.parametrize("make", [
    lambda: hmm.GaussianHMM(K, "full", n_iter=30, tol=-np.inf, random_state=1),
    lambda: hmm.PoissonHMM(K, n_iter=30, tol=-np.inf, random_state=1),
    lambda: hmm.HMM(GaussianFamily("diag"), K, n_iter=30, tol=-np.inf, random_state=1),
])
def test_log_likelihood_never_decreases(make):
    X = np.abs(np.round(gaussian_data(5)[0] * 3))
    model = make().fit(X, [200, 300, 100])
    history = np.asarray(model.monitor_.history)
    assert np.all(np.diff(history) >= -1e-10 * np.abs(history[-1]))


def test_any_family_as_emissions():
    rng = np.random.default_rng(6)
    z = np.repeat([0, 1, 0, 1], 100)
    X = np.column_stack([rng.random(400) < np.where(z, 0.9, 0.1), rng.normal(z * 3.0, 1.0)])
    family = ProductFamily([Bernoulli(), Normal()])
    model = hmm.HMM(family, 2, n_iter=50, tol=1e-8, random_state=0).fit(X, [150, 250])
    assert isinstance(model.components_, ExpFamParams)
    history = np.asarray(model.monitor_.history)
    assert np.all(np.diff(history) >= -1e-10 * np.abs(history[-1]))
    accuracy = (model.predict(X, [150, 250]) == z).mean()
    assert max(accuracy, 1 - accuracy) > 0.95
    sampled, states = model.sample(50, random_state=0)
    assert sampled.shape == (50, 2) and states.shape == (50,)


def test_fit_is_bitwise_identical_for_one_and_two_threads():
    X, lengths = gaussian_data(8)
    fits = [hmm.GaussianHMM(K, "full", n_iter=10, tol=-np.inf, random_state=0, n_threads=n,
                            chunk_size=64).fit(X, lengths) for n in (1, 2)]
    assert list(fits[0].monitor_.history) == list(fits[1].monitor_.history)
    for name in ("startprob_", "transmat_", "means_", "_covars_"):
        assert np.array_equal(getattr(fits[0], name), getattr(fits[1], name))


def test_left_right_zeros_stay_zero():
    X, lengths = gaussian_data(9)
    model = hmm.GaussianHMM(K, n_iter=20, init_params="mc", random_state=0)
    model.startprob_ = np.array([1.0, 0.0, 0.0])
    model.transmat_ = np.array([[0.9, 0.1, 0.0], [0.0, 0.9, 0.1], [0.0, 0.0, 1.0]])
    model.fit(X, lengths)
    assert np.all(model.startprob_[1:] == 0.0)
    assert np.all(model.transmat_[np.tril_indices(K, -1)] == 0.0)
    assert model.transmat_[0, 2] == 0.0


def test_map_decoding_and_sampling():
    X, lengths = gaussian_data(10)
    model = hmm.GaussianHMM(K, n_iter=5, random_state=0).fit(X, lengths)
    log_prob, posteriors = model.score_samples(X, lengths)
    value, states = model.decode(X, lengths, algorithm="map")
    np.testing.assert_array_equal(states, posteriors.argmax(axis=1))
    assert value == pytest.approx(posteriors.max(axis=1).sum())
    assert log_prob == pytest.approx(model.score(X, lengths))
    sampled, path = model.sample(200, random_state=1, currstate=2)
    assert sampled.shape == (200, X.shape[1]) and path[0] == 2
    allowed = model.transmat_ > 0
    assert np.all(allowed[path[:-1], path[1:]])


@pytest.mark.parametrize("lengths, message", [
    ([100, 100], "sum to 200, but X has 600 rows"),
    ([600, 0], "must be positive: sequence 1 has length 0"),
    ([700, -100], "must be positive: sequence 1 has length -100"),
    ([[600]], "1-D"),
    ([599.5, 0.5], "integers"),
])
def test_bad_lengths(lengths, message):
    X, _ = gaussian_data()
    with pytest.raises(ValueError, match=message):
        hmm.GaussianHMM(K, n_iter=2).fit(X, lengths)


def test_bad_chain_and_letters():
    X, lengths = gaussian_data()
    model = hmm.GaussianHMM(K, n_iter=2, init_params="mc")
    model.startprob_ = np.full(K, 1.0 / K)
    model.transmat_ = np.array([[0.5, 0.5, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])
    with pytest.raises(ValueError, match="row 0 sums to 1.1"):
        model.fit(X, lengths)
    model.transmat_ = np.full((K, K), 1.0 / K)
    model.startprob_ = np.array([np.nan, 0.5, 0.5])
    with pytest.raises(ValueError, match="startprob_ must hold probabilities"):
        model.fit(X, lengths)
    with pytest.raises(ValueError, match=r"unknown letter\(s\) \['x'\]"):
        hmm.GaussianHMM(K, params="stx").fit(X, lengths)
    with pytest.raises(ValueError, match="init_params"):
        hmm.PoissonHMM(K, init_params="stm").fit(np.ones((10, 1)))
    with pytest.raises(ValueError, match="Negative or non-integer counts"):
        hmm.PoissonHMM(K).fit(-np.ones((10, 1)))
    with pytest.raises(ValueError, match="not fitted"):
        hmm.GaussianHMM(K).score(X)


def test_blocks_of_sequences_and_long_sequences():
    """Small chunks cut the data into many blocks of whole sequences, one sequence longer than
    a block: bitwise the same for 1 and 2 threads, equal to one block to rounding."""
    rng = np.random.default_rng(11)
    X, _ = gaussian_data(11)
    lengths = np.concatenate([rng.integers(1, 12, size=40), [0]])
    lengths[-1] = X.shape[0] - lengths[:-1].sum()  # the last one spans several blocks
    fits = [hmm.GaussianHMM(K, "diag", n_iter=8, tol=-np.inf, random_state=0, n_threads=n,
                            chunk_size=chunk).fit(X, lengths)
            for n, chunk in ((1, 2), (2, 2), (2, None))]
    assert list(fits[0].monitor_.history) == list(fits[1].monitor_.history)
    assert np.array_equal(fits[0].means_, fits[1].means_)
    assert_close(fits[2].monitor_.history, fits[0].monitor_.history, rtol=1e-12)
    assert_close(fits[2].means_, fits[0].means_, rtol=1e-10)
    np.testing.assert_array_equal(fits[0].predict(X, lengths), fits[2].predict(X, lengths))


def test_float32_and_memmap(tmp_path):
    X, lengths = gaussian_data(12)
    path = tmp_path / "x.npy"
    np.save(path, X.astype(np.float32))
    np.save(tmp_path / "lengths.npy", np.asarray(lengths))
    on_disk = hmm.GaussianHMM(K, n_iter=5, random_state=0).fit(str(path),
                                                                str(tmp_path / "lengths.npy"))
    in_memory = hmm.GaussianHMM(K, n_iter=5, random_state=0).fit(X.astype(np.float32), lengths)
    assert list(on_disk.monitor_.history) == list(in_memory.monitor_.history)
    ref = hmm.GaussianHMM(K, n_iter=5, random_state=0).fit(X, lengths)
    assert_close(ref.monitor_.history, in_memory.monitor_.history, rtol=1e-5)


@pytest.mark.parametrize("params", ["st", "stm", "tmc"])
def test_information_criteria_count_parameters_as_hmmlearn(params):
    """hmmlearn counts every free parameter, whether ``params`` fits it or not."""
    X, lengths = gaussian_data(13)
    models = []
    for module in (hmmlearn_hmm, hmm):
        model = module.GaussianHMM(K, "full", params=params, init_params="stmc", n_iter=3,
                                   random_state=0)
        model.fit(X, lengths)
        models.append(model)
    ref, ours = models
    # same criterion for the same likelihood: compare the parameter counts through it
    assert_close(ref.bic(X, lengths) + 2 * ref.score(X, lengths),
                 ours.bic(X, lengths) + 2 * ours.score(X, lengths))


def test_sampled_codes_are_integers():
    model = hmm.CategoricalHMM(2, init_params="")
    model.startprob_, model.transmat_ = np.array([1.0, 0.0]), np.array([[0.5, 0.5], [0, 1.0]])
    model.emissionprob_ = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    X, states = model.sample(100, random_state=0)
    assert X.dtype.kind == "i" and X.shape == (100, 1)
    assert np.all(X[states == 0] == 0) and np.all(X[states == 1] > 0)


def test_interrupt_keeps_the_last_completed_iteration(monkeypatch):
    X, lengths = gaussian_data(14)
    report = hmm.ConvergenceMonitor.report

    def interrupting(self, value):
        report(self, value)
        if self.iter == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(hmm.ConvergenceMonitor, "report", interrupting)
    model = hmm.GaussianHMM(K, n_iter=10, random_state=0)
    with pytest.warns(RuntimeWarning, match="after 3 completed iterations"):
        with pytest.raises(KeyboardInterrupt):
            model.fit(X, lengths)
    monkeypatch.undo()
    reference = hmm.GaussianHMM(K, n_iter=3, random_state=0).fit(X, lengths)
    assert np.array_equal(model.means_, reference.means_)
    assert np.array_equal(model.transmat_, reference.transmat_)


def test_partial_m_step_and_map_priors_never_decrease_the_objective():
    """Generalized EM on the emissions (Newton steps with backtracking) under Dirichlet priors
    on the chain: the log-posterior never decreases and approaches the exact M-step's."""
    X, lengths = gaussian_data(15)
    fits = [hmm.HMM(GaussianFamily("full"), K, startprob_prior=2.0, transmat_prior=1.5,
                    m_step=m_step, m_step_iters=2, n_iter=40, tol=-np.inf,
                    random_state=0).fit(X, lengths) for m_step in ("partial", "exact")]
    for model in fits:
        history = np.asarray(model.monitor_.history)
        assert np.all(np.diff(history) >= -1e-9 * np.abs(history[-1]))
    assert fits[0].monitor_.history[-1] == pytest.approx(fits[1].monitor_.history[-1],
                                                         rel=1e-3)


def test_frozen_emissions_stay_bitwise():
    X, lengths = gaussian_data(16)
    model = hmm.HMM(GaussianFamily("diag"), K, params="st", n_iter=5, random_state=0)
    model.fit(X, lengths)
    start = hmm.HMM(GaussianFamily("diag"), K, params="", n_iter=1, random_state=0)
    start.fit(X, lengths)  # the initial parameters, kept
    assert np.array_equal(model.components_.means, start.components_.means)
    assert np.array_equal(model.components_.covariances, start.components_.covariances)


def test_scikit_learn_surface_and_verbose_monitor(capsys):
    from sklearn.base import clone

    model = hmm.GaussianHMM(K, "full", n_iter=3, verbose=True, random_state=0)
    copy = clone(model)
    assert copy.get_params() == model.get_params() and "covariance_type='full'" in repr(copy)
    X, lengths = gaussian_data(17)
    model.fit(X, lengths)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and float(lines[-1].split()[1]) == pytest.approx(
        model.monitor_.history[-1])
    assert "history" in repr(model.monitor_)
    with pytest.raises(ValueError, match="Unknown decoder"):
        model.decode(X, lengths, algorithm="beam")
