"""Stepwise EM on the hidden Markov models (``partial_fit``): a first update is one batch EM
iteration for every class, several updates agree with stepwise EM over hmmlearn's own
statistics, a stream recovers a known model, frozen parameters and zero transitions stay, results
do not depend on the thread count, and bad batches or schedules change nothing."""
import copy

import numpy as np
import pytest

from fastem import hmm
from fastem._config import single_threaded_blas
from fastem.families.expfam import Normal, Poisson, ProductFamily
from fastem.latent.hmm import check_chain

K, D = 3, 2
START = np.array([0.5, 0.3, 0.2])
TRANS = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.05, 0.15, 0.8]])
MEANS = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])


def gaussian_covars(covariance_type, m=None):
    """Covariances in the type's shape: per state (GaussianHMM), or per state and mixture
    component (GMMHMM, ``m`` components)."""
    lead = (K,) if m is None else (K, m)
    full = np.array([[1.0, 0.3], [0.3, 0.8]])
    return {"spherical": np.full(lead, 0.9), "diag": np.full(lead + (D,), 0.9),
            "full": np.broadcast_to(full, lead + (D, D)).copy(),
            "tied": full if m is None else np.broadcast_to(full, (K, D, D)).copy()
            }[covariance_type]


def make_case(kind, **kwargs):
    """A model of class ``kind`` with given parameters (``init_params=""``; the "family" case
    initialises its emissions itself), and data of several sequences drawn from it."""
    rng = np.random.default_rng(0)
    kind, _, covariance_type = kind.partition("-")
    chain = dict(startprob_=START.copy(), transmat_=TRANS.copy())
    if kind == "gaussian":
        model = hmm.GaussianHMM(K, covariance_type, init_params="", **kwargs)
        given = dict(means_=MEANS.copy(), covars_=gaussian_covars(covariance_type))
    elif kind == "gmm":
        model = hmm.GMMHMM(K, n_mix=2, covariance_type=covariance_type, init_params="",
                           **kwargs)
        given = dict(weights_=np.full((K, 2), 0.5),
                     means_=MEANS[:, None, :] + np.array([[-0.5, 0.0], [0.5, 0.0]]),
                     covars_=gaussian_covars(covariance_type, 2))
    elif kind == "categorical":
        model = hmm.CategoricalHMM(K, n_features=4, init_params="", **kwargs)
        given = dict(emissionprob_=rng.dirichlet(np.ones(4), size=K))
    elif kind == "multinomial":
        model = hmm.MultinomialHMM(K, n_trials=6, init_params="", **kwargs)
        given = dict(emissionprob_=rng.dirichlet(np.ones(4), size=K))
    elif kind == "poisson":
        model = hmm.PoissonHMM(K, init_params="", **kwargs)
        given = dict(lambdas_=np.array([[1.0, 2.0], [5.0, 4.0], [10.0, 12.0]]))
    else:
        model = hmm.HMM(ProductFamily([Normal(), Poisson()]), K, init_params="st",
                        random_state=0, **kwargs)
        given = {}
    for name, value in {**chain, **given}.items():
        setattr(model, name, value)
    if kind == "family":
        X = np.column_stack([np.concatenate([rng.normal(0, 1, 500), rng.normal(5, 1, 400)]),
                             rng.poisson(np.repeat([2.0, 9.0], [500, 400]))])
        return model, X, [300, 200, 400]
    sampler = copy.deepcopy(model)
    if kind == "gaussian":
        sampler.n_features = D
    X = np.concatenate([sampler.sample(n, random_state=seed)[0]
                        for seed, n in enumerate((300, 200, 400))])
    return model, X, [300, 200, 400]


CASES = [f"gaussian-{t}" for t in ("spherical", "diag", "full", "tied")] + \
        [f"gmm-{t}" for t in ("spherical", "diag", "full", "tied")] + \
        ["categorical", "multinomial", "poisson", "family"]
SUPPORT = {"categorical": 7.0, "multinomial": -1.0, "poisson": -1.0, "family": 0.5}


def arrays(value):
    """The arrays a fitted attribute holds (a family's parameter object: its fields')."""
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, (list, tuple)):
        return [a for item in value for a in arrays(item)]
    if hasattr(value, "__dict__"):
        return [a for name in sorted(vars(value)) for a in arrays(vars(value)[name])]
    return []


def assert_same_fit(ours, reference, rtol=1e-12):
    for name in reference._fitted_arrays:
        for a, b in zip(arrays(getattr(ours, name)), arrays(getattr(reference, name))):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-14, err_msg=name)


def batch_fit(model, X, lengths, n_iter=1, **params):
    """``model`` (a copy) fitted by ``n_iter`` batch EM iterations."""
    model = copy.deepcopy(model).set_params(n_iter=n_iter, tol=-np.inf, **params)
    return model.fit(X, lengths)


@pytest.mark.parametrize("kind", CASES)
def test_first_update_is_one_batch_iteration(kind):
    """rho = 1 for the first update: partial_fit is fit's first EM iteration from the same
    parameters (1e-12), priors included; with learning_offset = 0 and learning_decay = 1 the
    second update has rho = 1 too and, by maximum likelihood, equals an iteration of fit from the
    first update's parameters over the second batch alone."""
    model, X, lengths = make_case(kind, learning_offset=0.0, learning_decay=1.0)
    first = copy.deepcopy(model).partial_fit(X, lengths)
    assert_same_fit(first, batch_fit(model, X, lengths))
    assert first.monitor_.iter == 1
    np.testing.assert_allclose(first.monitor_.history[0],
                               batch_fit(model, X, lengths).monitor_.history[0], rtol=1e-12)
    second_batch, second_lengths = X[:500], [300, 200]
    reference = batch_fit(first, second_batch, second_lengths, init_params="")
    first.partial_fit(second_batch, second_lengths)
    if kind.startswith(("gaussian", "gmm")):  # hmmlearn's default covariance priors
        return  # scale with the rows seen: tested against hmmlearn below
    assert_same_fit(first, reference)
    assert first.monitor_.iter == 2


def test_first_update_initialises_as_fit():
    """On an unfitted model the first partial_fit initialises by ``init_params`` (from
    ``random_state``) exactly as fit does."""
    _, X, lengths = make_case("gaussian-diag")
    model = hmm.GaussianHMM(K, random_state=3)
    assert_same_fit(copy.deepcopy(model).partial_fit(X, lengths), batch_fit(model, X, lengths))


def hmmlearn_stepwise(reference, batches, tau, kappa):
    """Stepwise EM over hmmlearn's own statistics (raw sums, frame-free) and M-step: the
    running statistics per row averaged with rho_t, scaled to the rows seen."""
    running, seen = None, 0
    for t, (X, lengths) in enumerate(batches):
        stats, _ = reference._do_estep(X, lengths)
        rho = 1.0 if t == 0 else min(1.0, (t + tau) ** -kappa)
        per_row = {key: np.asarray(value, dtype=float) / len(X) for key, value in stats.items()}
        running = per_row if running is None else \
            {key: (1 - rho) * running[key] + rho * per_row[key] for key in running}
        seen += len(X)
        reference._do_mstep({key: value * seen for key, value in running.items()})
    return reference


@pytest.mark.parametrize("kind,priors", [
    ("gaussian-diag", dict(means_prior=0.5, means_weight=2.0, covars_prior=0.3,
                           covars_weight=3.0, transmat_prior=2.0, startprob_prior=1.5)),
    ("gaussian-full", dict(means_prior=0.5, means_weight=2.0, covars_prior=0.3,
                           covars_weight=3.0, transmat_prior=2.0)),
    ("gaussian-spherical", {}),
    ("categorical", dict(emissionprob_prior=1.5, transmat_prior=1.2)),
    ("poisson", {}),
])
def test_stepwise_agrees_with_hmmlearn_statistics(kind, priors):
    """Five updates with rho < 1 over batches of different sizes: the running statistics,
    restated in each new frame, and the priors scaled against the rows seen give hmmlearn's
    M-step over its own averaged statistics (1e-8, as fit agrees with hmmlearn)."""
    hmmlearn_hmm = pytest.importorskip("hmmlearn.hmm")
    tau, kappa = 2.0, 0.6
    model, X, lengths = make_case(kind, learning_offset=tau, learning_decay=kappa, **priors)
    cls = getattr(hmmlearn_hmm, type(model).__name__)
    reference = cls(K, init_params="", **priors,
                    **({"covariance_type": model.covariance_type} if kind != "categorical"
                       and kind != "poisson" else {}))
    for name in ("startprob_", "transmat_", "means_", "emissionprob_", "lambdas_"):
        if hasattr(model, name):
            setattr(reference, name, getattr(model, name).copy())
    reference.n_features = X.shape[1] if kind != "categorical" else 4
    if hasattr(model, "_covars_"):
        covars = model._covars_
        reference.covars_ = np.repeat(covars[:, None], D, axis=1) \
            if model.covariance_type == "spherical" else covars
    edges = [(0, 300, [300]), (300, 500, [200]), (500, 900, [150, 250]), (0, 500, [300, 200]),
             (100, 900, [400, 400])]
    batches = [(X[a:b], n) for a, b, n in edges]
    for batch, n in batches:
        model.partial_fit(batch, n)
    hmmlearn_stepwise(reference, batches, tau, kappa)
    rtol = 1e-8
    np.testing.assert_allclose(model.startprob_, reference.startprob_, rtol=rtol)
    np.testing.assert_allclose(model.transmat_, reference.transmat_, rtol=rtol)
    for name in ("means_", "emissionprob_", "lambdas_"):
        if hasattr(model, name):
            np.testing.assert_allclose(getattr(model, name), getattr(reference, name),
                                       rtol=rtol)
    if hasattr(model, "_covars_"):
        ref = reference._covars_[:, 0] if model.covariance_type == "spherical" \
            else reference._covars_
        np.testing.assert_allclose(model._covars_, ref, rtol=rtol)
    assert model.monitor_.iter == len(batches)


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_a_stream_of_batches_recovers_a_known_model(covariance_type):
    """100 batches of 4 sequences of 100 rows from a known model, one partial_fit each with
    the default schedule, from k-means means on the first batch and unit covariances (the
    data's whole covariance, hmmlearn's start, is so broad that the first small-batch step
    merges states that stepwise EM's small later steps do not separate): the parameters are
    recovered."""
    truth, _, _ = make_case(f"gaussian-{covariance_type}")
    truth.n_features = D
    model = hmm.GaussianHMM(K, covariance_type, random_state=0, init_params="stm")
    model.covars_ = np.stack([np.eye(D)] * K) if covariance_type == "full" else np.ones((K, D))
    rng = np.random.default_rng(1)
    for _ in range(100):
        with single_threaded_blas():  # sample's small BLAS calls would wake idle threads
            X = np.concatenate([truth.sample(100, random_state=rng.integers(2**31))[0]
                                for _ in range(4)])
        model.partial_fit(X, [100] * 4)
    order = [int(np.argmin(np.abs(model.means_ - mean).sum(axis=1))) for mean in MEANS]
    assert sorted(order) == list(range(K))
    np.testing.assert_allclose(model.means_[order], MEANS, atol=0.05)
    np.testing.assert_allclose(model._covars_[order], truth._covars_, rtol=0.1, atol=0.03)
    np.testing.assert_allclose(model.transmat_[np.ix_(order, order)], TRANS, atol=0.03)
    np.testing.assert_allclose(model.startprob_[order], START, atol=0.1)
    assert model.monitor_.iter == 100


def snapshot(model):
    """Every attribute: the object and a deep copy of its value."""
    return {name: (value, copy.deepcopy(value)) for name, value in vars(model).items()}


def assert_unchanged(model, before):
    assert vars(model).keys() == before.keys()
    for name, (value, kept) in before.items():
        assert getattr(model, name) is value, name
        if name == "monitor_":
            assert list(value.history) == list(kept.history) and value.iter == kept.iter
        for a, b in zip(arrays(value), arrays(kept)):
            np.testing.assert_array_equal(a, b, err_msg=name)


def bad_batches(kind, X, lengths, fitted):
    """Batches that must raise, with what the error says: NaN, another column count (after
    a first batch set it), a value outside the family's support, lengths not summing to the rows, a value whose
    square overflows (an error from inside the update, after the E-step started)."""
    nan = X.astype(float).copy()
    nan[7, 0] = np.nan
    out = X.astype(float).copy()
    out[11, -1] = SUPPORT.get(kind, 0.0)
    cases = [(nan, lengths, "NaN"), (X, lengths[:-1], "lengths"),
             (X, [0] + list(lengths), "positive")]
    if fitted:
        cases.append((np.column_stack([X, X[:, :1]]), lengths, "feature|column"))
    if kind in SUPPORT:
        cases.append((out, lengths, "row 11"))
    if kind.startswith("gaussian"):
        huge = X.copy()
        huge[5] = 1e300
        cases.append((huge, lengths, "large|zero density|log-likelihood"))
    return cases


@pytest.mark.parametrize("kind", ["gaussian-full", "gmm-diag", "categorical", "multinomial",
                                  "poisson", "family"])
def test_a_bad_batch_leaves_the_model_exactly_as_it_was(kind):
    model, X, lengths = make_case(kind)
    for fitted in (False, True):
        if fitted:
            model.partial_fit(X, lengths).partial_fit(X[:300], [300])
        for batch, batch_lengths, message in bad_batches(kind, X, lengths, fitted):
            before = snapshot(model)
            with pytest.raises(ValueError, match=message):
                model.partial_fit(batch, batch_lengths)
            assert_unchanged(model, before)
    model.partial_fit(X, lengths)  # and it still learns
    assert model.monitor_.iter == 3


@pytest.mark.parametrize("tau,kappa,message", [
    (-1.0, 0.7, "learning_offset"), (np.nan, 0.7, "learning_offset"),
    ("10", 0.7, "learning_offset"), (10.0, 0.5, "learning_decay"),
    (10.0, 1.5, "learning_decay"), (10.0, None, "learning_decay")])
def test_bad_schedule_parameters_are_clear_errors(tau, kappa, message):
    model, X, lengths = make_case("gaussian-diag")
    model.partial_fit(X, lengths)
    model.set_params(learning_offset=tau, learning_decay=kappa)
    before = snapshot(model)
    with pytest.raises(ValueError, match=message):
        model.partial_fit(X, lengths)
    assert_unchanged(model, before)


@pytest.mark.parametrize("kind", ["gaussian-tied", "gmm-full", "family"])
def test_updates_are_identical_for_any_thread_count(kind):
    """Batches with a sequence longer than a block (its segments go through the two-thread
    pipeline): bitwise the same parameters and history with 1 and 2 threads."""
    models = []
    for n_threads in (1, 2):
        model, X, lengths = make_case(kind, n_threads=n_threads, chunk_size=16)
        for batch, n in ((X, lengths), (X[:300], [300]), (X[200:], [700])):
            model.partial_fit(batch, n)
        models.append(model)
    one, two = models
    assert_same_fit(two, one, rtol=0)
    assert list(one.monitor_.history) == list(two.monitor_.history)


def test_frozen_parameters_and_zero_transitions_stay():
    """Letters absent from ``params`` are never updated; a zero transition or start
    probability (a left-right model) stays exactly zero."""
    model, X, lengths = make_case("gaussian-diag", params="st")
    left_right = np.array([[0.7, 0.3, 0.0], [0.0, 0.8, 0.2], [0.0, 0.0, 1.0]])
    model.startprob_ = np.array([0.9, 0.1, 0.0])
    model.transmat_ = left_right.copy()
    means, covars = model.means_.copy(), model._covars_.copy()
    for batch, n in ((X, lengths), (X[:500], [300, 200]), (X[300:], [600])):
        model.partial_fit(batch, n)
    np.testing.assert_array_equal(model.means_, means)
    np.testing.assert_array_equal(model._covars_, covars)
    assert (model.transmat_[left_right == 0] == 0).all() and model.startprob_[2] == 0
    assert not np.allclose(model.transmat_, left_right)
    chain, _, _ = make_case("gaussian-diag", params="mc")
    for batch, n in ((X, lengths), (X[:500], [300, 200])):
        chain.partial_fit(batch, n)
    for value, given in zip((chain.startprob_, chain.transmat_), check_chain(START, TRANS)):
        np.testing.assert_array_equal(value, given)
    assert not np.allclose(chain.means_, MEANS)


def test_after_fit_or_a_new_attribute_updates_start_from_the_attributes():
    """After fit, partial_fit continues from the fitted parameters with fresh running
    statistics: its first update is fit's next iteration. Assigning a fitted attribute does
    the same from the assigned value."""
    model, X, lengths = make_case("gaussian-diag")
    fitted = batch_fit(model, X, lengths, n_iter=2).partial_fit(X, lengths)
    assert_same_fit(fitted, batch_fit(model, X, lengths, n_iter=3))
    assert fitted.monitor_.iter == 3
    fitted.partial_fit(X[:500], [300, 200])
    fitted.means_ = fitted.means_ + 0.1
    expected = batch_fit(fitted, X[300:], [600], init_params="")
    assert_same_fit(fitted.partial_fit(X[300:], [600]), expected)


@pytest.mark.parametrize("kind", ["gaussian-full", "gmm-diag", "categorical", "family"])
def test_online_fit_over_one_block_is_batch_em(kind):
    """fit(algorithm=...) with every row in one block: incremental EM is batch EM, and so is
    stepwise EM while rho = 1 (two passes with learning_offset 0, learning_decay 1); priors
    included, since online fits scale the statistics to all rows of X (1e-12)."""
    priors = {"categorical": dict(emissionprob_prior=1.5, transmat_prior=1.3)}.get(kind, {})
    model, X, lengths = make_case(kind, learning_offset=0.0, learning_decay=1.0, **priors)
    for algorithm, n_iter in (("stepwise", 2), ("incremental", 3)):
        batch = batch_fit(model, X, lengths, n_iter=n_iter)
        online = copy.deepcopy(model).set_params(n_iter=n_iter, tol=-np.inf)
        online.fit(X, lengths, algorithm=algorithm, batch_size=len(X))
        assert_same_fit(online, batch)
        np.testing.assert_allclose(online.monitor_.history, batch.monitor_.history, rtol=1e-12)


def test_online_blocks_hold_whole_sequences():
    from fastem.drivers.sequences import SequenceDriver

    lengths = np.random.default_rng(2).integers(1, 40, 60)
    lengths[7] = 150  # longer than a block: alone
    driver = SequenceDriver(np.zeros((lengths.sum(), 1)), lengths)
    bounds = driver.block_bounds(100)
    assert bounds[0][0] == 0 and bounds[-1][1] == lengths.sum()
    ends = set(np.cumsum(lengths).tolist())
    for (start, stop), (next_start, _) in zip(bounds, bounds[1:] + [(lengths.sum(), None)]):
        assert stop == next_start and stop in ends
        block = driver.block(start, stop)
        assert block.lengths.sum() == stop - start
        assert stop - start <= 100 or block.lengths.size == 1
    assert (150,) in [tuple(driver.block(*b).lengths) for b in bounds]


@pytest.mark.parametrize("algorithm", ["stepwise", "incremental"])
def test_online_fit_reaches_batch_ems_optimum(algorithm):
    """Blocks of 1000 rows (10 sequences): within 1e-3 nats per row of the log-likelihood batch
    EM converges to from the same start, in at most 20 passes; bitwise the same fit with 1
    and 2 threads (stepwise's block order drawn from random_state)."""
    truth, _, _ = make_case("gaussian-diag")
    truth.n_features = D
    rng = np.random.default_rng(1)
    with single_threaded_blas():
        X = np.concatenate([truth.sample(100, random_state=rng.integers(2**31))[0]
                            for _ in range(60)])
    lengths = [100] * 60
    model, _, _ = make_case("gaussian-diag", n_iter=300, tol=1e-6, random_state=0)
    model.means_, model.covars_ = MEANS + [[1.0, 0.5], [-1.0, 0.5], [0.5, -1.0]], np.ones((K, D))
    best = copy.deepcopy(model).fit(X, lengths).score(X, lengths) / len(X)
    fits = [copy.deepcopy(model).set_params(n_iter=20, n_threads=n).fit(
        X, lengths, algorithm=algorithm, batch_size=1000) for n in (1, 2)]
    assert fits[0].score(X, lengths) / len(X) > best - 1e-3
    assert_same_fit(fits[1], fits[0], rtol=0)


@pytest.mark.parametrize("options,message", [
    (dict(algorithm="online"), "algorithm must be one of"),
    (dict(algorithm="stepwise", batch_size=0), "batch_size"),
    (dict(algorithm="incremental", batch_size=2.5), "batch_size")])
def test_bad_online_fit_options_are_clear_errors(options, message):
    model, X, lengths = make_case("poisson")
    with pytest.raises(ValueError, match=message):
        model.fit(X, lengths, **options)
    assert not hasattr(model, "n_features_in_")


def test_partial_fit_on_dask_arrays_equals_local():
    """Batches as Dask arrays (sequences spread over blocks by the Dask sequence driver): the
    same updates as in memory, to rounding."""
    da = pytest.importorskip("dask.array")
    model, X, lengths = make_case("gaussian-diag")
    local, remote = copy.deepcopy(model), copy.deepcopy(model)
    for batch, n in ((X, lengths), (X[:500], [300, 200])):
        local.partial_fit(batch, n)
        remote.partial_fit(da.from_array(batch, chunks=(250, D)), n)
    assert_same_fit(remote, local, rtol=1e-12)
    np.testing.assert_allclose(remote.monitor_.history, local.monitor_.history, rtol=1e-12)
