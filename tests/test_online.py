"""Online EM (fastem.online, partial_fit, fit(algorithm=...)): stepwise EM's first updates are
batch EM iterations, incremental EM never decreases Neal & Hinton's free energy, both reach batch
EM's log-likelihood for every family, priors scale with the data, frozen parameters stay,
results do not depend on the thread count, and bad batches change nothing."""
import copy
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from fastem import online
from fastem.drivers.local import LocalDriver
from fastem.em import FitInterrupted
from fastem.estimators import GaussianMixture, MixtureModel, PoissonMixture
from fastem.families.expfam import Normal, Poisson, ProductFamily
from fastem.families.gaussian import GaussianFamily
from fastem.latent.mixture import Mixture

sys.path.insert(0, str(Path(__file__).parent))
import lognormal_family  # noqa: E402
from helpers import make_blobs, sklearn_start  # noqa: E402

FITTED = ("weights_", "means_", "covariances_")


def fitted_state(model):
    """Every fitted attribute: the object and a deep copy of its value."""
    return {name: (value, copy.deepcopy(value)) for name, value in vars(model).items()
            if name.endswith("_") or name == "_online_state"}


def assert_same_state(now, before):
    """The same objects as before, holding the same values."""
    assert now.keys() == before.keys()
    for name, (value, _) in now.items():
        assert value is before[name][0], name
        if isinstance(value, (np.ndarray, list, float, int)):
            np.testing.assert_array_equal(value, before[name][1], err_msg=name)


def test_first_stepwise_updates_are_batch_iterations(covariance_type):
    """With one block of every row, kappa = 1 and tau = 0, rho is 1 for the first two updates:
    stepwise EM is then batch EM, to rounding (the statistics are kept per unit weight)."""
    X, _, _ = make_blobs(n=1500, d=3, k=3)
    start = sklearn_start(X, 3, covariance_type)
    for n_iter in (1, 2):
        batch = GaussianMixture(3, tol=0, max_iter=n_iter, **start).fit(X)
        step = GaussianMixture(3, tol=0, max_iter=n_iter, algorithm="stepwise",
                               batch_size=len(X), learning_decay=1.0, learning_offset=0.0,
                               **start).fit(X)
        for name in FITTED:
            np.testing.assert_allclose(getattr(step, name), getattr(batch, name), rtol=1e-10)
        np.testing.assert_allclose(step.lower_bounds_, batch.lower_bounds_, rtol=1e-12)
    single = GaussianMixture(3, **start).partial_fit(X)
    batch = GaussianMixture(3, tol=0, max_iter=1, **start).fit(X)
    for name in FITTED:
        np.testing.assert_allclose(getattr(single, name), getattr(batch, name), rtol=1e-10)


def test_stepwise_keeps_a_fixed_point_of_batch_em():
    """From batch EM's converged parameters, stepwise updates over the whole data stay there
    whatever rho, including under MAP priors (statistics scaled back to the data's weight)."""
    X, _, _ = make_blobs(n=1200, d=2, k=3)
    model = GaussianMixture(3, tol=1e-12, max_iter=2000, random_state=0,
                            weight_concentration_prior=20.0, mean_precision_prior=50.0,
                            degrees_of_freedom_prior=10.0).fit(X)
    kept = {name: getattr(model, name).copy() for name in FITTED}
    model.set_params(warm_start=True, algorithm="stepwise", batch_size=len(X), max_iter=4,
                     tol=0)
    model.fit(X)
    for name in FITTED:  # batch EM itself still moves by ~1e-7 there
        np.testing.assert_allclose(getattr(model, name), kept[name], rtol=1e-6)


def free_energy(X, blocks, estep_params, params):
    """F(q, theta) = sum_i sum_k r_ik (log w_k + log N(x_i | k) - log r_ik), with each block's
    r from the parameters of its last E-step."""
    value = 0.0
    for (start, stop), at in zip(blocks, estep_params):
        x = X[start:stop]
        log_r = joint(x, at)
        log_r -= logsumexp(log_r, axis=1, keepdims=True)
        r = np.exp(log_r)
        value += float((r * (joint(x, params) - log_r)).sum())
    return value


def joint(x, params):
    return np.stack([np.log(params.weights[k]) + np.atleast_1d(multivariate_normal.logpdf(
        x, params.means[k], params.covariances[k], allow_singular=True))
        for k in range(params.n_components)], axis=1)


@settings(max_examples=10, deadline=None)
@given(n=st.integers(40, 200), d=st.integers(1, 3), k=st.integers(1, 3),
       batch=st.integers(10, 120), seed=st.integers(0, 1000))
def test_incremental_never_decreases_the_free_energy(n, d, k, batch, seed):
    X, _, _ = make_blobs(n=n, d=d, k=k, seed=seed, spread=4.0)
    family, latent = GaussianFamily("full"), Mixture()
    driver = LocalDriver(X, n_threads=1)
    rng = np.random.default_rng(seed)
    params = GaussianMixture(k, covariance_type="full", random_state=seed)._initial_params(
        latent, family, driver, np.random.RandomState(seed))
    blocks = online.block_bounds(n, batch)
    reference = latent.pack(family, params, driver.dtype)
    kept = online.IncrementalStatistics(reference, len(blocks), family.stats_size(reference))
    estep_at = [params] * len(blocks)  # F before a block's first E-step: any q works
    previous = -np.inf
    for step in range(3 * len(blocks)):
        index = step % len(blocks)
        estep_at[index] = params
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            params, _, _ = online.incremental_update(
                latent, family, driver.block(*blocks[index]), params, index, kept, float(n),
                rng, step + 1)
        if caught:  # a re-seeded component: F may drop at this step (as in batch EM)
            previous = -np.inf
        elif step >= len(blocks) - 1:  # every block has statistics: F is defined
            value = free_energy(X, blocks, estep_at, params)
            # reg_covar (1e-6) shifts the M-step off J's maximiser; no drop was seen at 1e-10
            assert value >= previous - 1e-10 * abs(value), (step, value, previous)
            previous = value


def assert_same_params(mine, theirs):
    for name in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(getattr(mine, name), getattr(theirs, name), err_msg=name)


def test_incremental_first_pass_is_stepwise_and_seeds_the_blocks():
    """Incremental EM's first pass is a stepwise pass in file order; its running statistics,
    shared out by block weight, seed the sum the second pass replaces block by block."""
    X, _, _ = make_blobs(n=1000, d=2, k=3, seed=5)
    family, latent = GaussianFamily("full"), Mixture()
    driver = LocalDriver(X, n_threads=1)
    start = GaussianMixture(3, covariance_type="full", random_state=0)._initial_params(
        latent, family, driver, np.random.RandomState(0))
    run = dict(batch_size=300, tol=0, rng=np.random.default_rng(0))
    first = online.run_online(latent, family, driver, start, algorithm="incremental",
                              max_iter=1, **run)
    second = online.run_online(latent, family, driver, start, algorithm="incremental",
                               max_iter=2, **run)
    state, rng = online.StepwiseState(start), np.random.default_rng(0)
    blocks = driver.block_bounds(300)
    for bounds in blocks:
        state, _, _ = online.stepwise_update(latent, family, driver.block(*bounds), state,
                                             learning_offset=10.0, learning_decay=0.7,
                                             rng=rng, size=1000.0)
    assert_same_params(first.params, state.params)
    kept = online.IncrementalStatistics.from_running(
        state, np.array([stop - start for start, stop in blocks], dtype=float))
    np.testing.assert_allclose(kept.total, 1000.0 * state.stats, rtol=1e-12)
    params = state.params
    for index, bounds in enumerate(blocks):
        params, _, _ = online.incremental_update(latent, family, driver.block(*bounds), params,
                                                 index, kept, 1000.0, rng, 5 + index)
    assert_same_params(second.params, params)
    assert second.stats_nbytes == kept.nbytes == 4 * state.stats.nbytes


FAMILIES = {
    **{f"gaussian-{t}": (lambda t=t: GaussianMixture(3, covariance_type=t), "blobs")
       for t in ("full", "tied", "diag", "spherical")},
    "product": (lambda: MixtureModel(ProductFamily([Normal(), Poisson()]), 3), "table"),
    "custom": (lambda: MixtureModel(lognormal_family.make_family(2), 3), "positive"),
}


def family_data(kind):
    X, labels, _ = make_blobs(n=6000, d=2, k=3, seed=3)
    if kind == "table":
        rng = np.random.default_rng(0)
        return np.column_stack([X[:, 0], rng.poisson(np.array([1.0, 6.0, 20.0])[labels])])
    if kind == "positive":
        return np.exp(X / 4)
    return X


@pytest.mark.parametrize("algorithm", ["stepwise", "incremental"])
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_online_reaches_batch_log_likelihood(name, algorithm):
    make, kind = FAMILIES[name]
    X = family_data(kind)
    batch = make().set_params(tol=1e-8, max_iter=1000, random_state=0).fit(X)
    fit = make().set_params(tol=1e-6, max_iter=60, random_state=0, algorithm=algorithm,
                            batch_size=500, learning_decay=0.6).fit(X)
    assert fit.n_steps_ == fit.n_iter_ * 12
    assert batch.score(X) - fit.score(X) < 1e-3
    if algorithm == "incremental":
        assert fit.stats_nbytes_ == 12 * fit.family_.stats_size(
            Mixture().pack(fit.family_, fit._fitted_params(), np.float64)) * 8


def test_partial_fit_over_batches():
    X, _, _ = make_blobs(n=6000, d=3, k=3, seed=1)
    batch = GaussianMixture(3, random_state=0, tol=1e-8, max_iter=500).fit(X)
    model = GaussianMixture(3, random_state=0)
    for _ in range(3):
        for start in range(0, len(X), 1000):  # float32 and float64 batches in turn
            model.partial_fit(X[start:start + 1000].astype([np.float32, np.float64][
                start // 1000 % 2]))
    assert model.n_iter_ == 18 and len(model.lower_bounds_) == 18
    assert batch.score(X) - model.score(X) < 1e-3
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(X[:10, :2])


@pytest.mark.parametrize("algorithm", ["stepwise", "incremental", "partial_fit"])
def test_frozen_stays_frozen(algorithm):
    X, _, _ = make_blobs(n=3000, d=2, k=3)
    start = sklearn_start(X, 3, "full")
    model = GaussianMixture(3, frozen=("weights", "means"), batch_size=500, max_iter=5,
                            **start)
    if algorithm == "partial_fit":
        for begin in range(0, len(X), 500):
            model.partial_fit(X[begin:begin + 500])
    else:
        model.set_params(algorithm=algorithm).fit(X)
    np.testing.assert_array_equal(model.weights_, start["weights_init"] / start[
        "weights_init"].sum())
    np.testing.assert_array_equal(model.means_, start["means_init"])


def test_map_statistics_scale_to_the_data():
    """Incremental EM's sums are the whole data's after one pass, stepwise's running averages
    are scaled back to the data's weight: both reach batch MAP-EM's optimum, not the optimum of
    a prior counted once per block."""
    X, _, _ = make_blobs(n=4000, d=2, k=3, seed=2)
    prior = dict(weight_concentration_prior=200.0, mean_precision_prior=400.0,
                 random_state=0, tol=1e-10, max_iter=2000)
    batch = GaussianMixture(3, **prior).fit(X)
    for algorithm in ("incremental", "stepwise"):
        model = GaussianMixture(3, **prior).set_params(
            algorithm=algorithm, batch_size=500, max_iter=100, tol=1e-9).fit(X)
        np.testing.assert_allclose(model.weights_, batch.weights_, atol=2e-3)
        np.testing.assert_allclose(model.means_, batch.means_, atol=2e-2)


@pytest.mark.parametrize("algorithm", ["stepwise", "incremental"])
def test_thread_count_does_not_change_the_fit(algorithm):
    X = make_blobs(n=5000, d=3, k=3)[0].astype(np.float32)
    fits = [GaussianMixture(3, algorithm=algorithm, batch_size=1500, max_iter=3, tol=0,
                            random_state=0, chunk_size=64, n_threads=n).fit(X)
            for n in (1, 2)]
    for name in FITTED:
        np.testing.assert_array_equal(getattr(fits[0], name), getattr(fits[1], name))


def test_bad_batches_leave_the_model_as_it_was():
    X, _, _ = make_blobs(n=600, d=2, k=2)
    model = GaussianMixture(2, random_state=0).partial_fit(X[:300])
    before = fitted_state(model)
    bad = X[300:].copy()
    bad[17, 1] = np.nan
    for batch, match in ((bad, "NaN"), (np.where(bad == bad, np.inf, 0.0), "infinity"),
                         (X[300:, :1], "features")):
        with pytest.raises(ValueError, match=match):
            model.partial_fit(batch)
        assert_same_state(fitted_state(model), before)
    counts = PoissonMixture(2, random_state=0).partial_fit(np.abs(X[:300]).round())
    before = fitted_state(counts)
    with pytest.raises(ValueError, match="(?i)negative"):
        counts.partial_fit(-np.abs(X[300:]).round() - 1)
    assert_same_state(fitted_state(counts), before)


@pytest.mark.parametrize("param, value", [("learning_decay", 0.5), ("learning_decay", 1.01),
                                          ("learning_offset", -1.0), ("batch_size", 0),
                                          ("algorithm", "online")])
def test_schedule_errors(param, value):
    X, _, _ = make_blobs(n=200, d=2, k=2)
    model = GaussianMixture(2, **{param: value})
    with pytest.raises(ValueError, match=param):
        model.fit(X)
    with pytest.raises(ValueError, match=param):
        model.partial_fit(X)
    assert not hasattr(model, "n_features_in_")


@pytest.mark.parametrize("algorithm", ["stepwise", "incremental"])
def test_interrupt_keeps_the_last_completed_update(algorithm):
    X, _, _ = make_blobs(n=2000, d=2, k=3)
    seen = []

    def stop(model):
        seen.append(model.means_.copy())
        if len(seen) == 2:
            raise KeyboardInterrupt

    model = GaussianMixture(3, algorithm=algorithm, batch_size=400, max_iter=10, tol=0,
                            random_state=0, callback=stop)
    with pytest.warns(RuntimeWarning, match="interrupted"), pytest.raises(FitInterrupted):
        model.fit(X)
    assert model.n_iter_ == 2 and model.n_steps_ == 10
    np.testing.assert_array_equal(model.means_, seen[-1])


def test_dask_blocks_equal_local_blocks():
    da = pytest.importorskip("dask.array")
    from fastem.drivers.dask import DaskDriver

    X, _, _ = make_blobs(n=3000, d=3, k=3)
    w = np.random.default_rng(0).uniform(0, 2, len(X))
    local = LocalDriver(X, w, chunk_size=64)
    remote = DaskDriver(da.from_array(X, chunks=(700, 3)), w, chunk_size=64)
    family, latent = GaussianFamily("full"), Mixture()
    params = GaussianMixture(3, random_state=0)._initial_params(
        latent, family, local, np.random.RandomState(0))
    packed = latent.pack(family, params, np.float64)
    for start, stop in online.block_bounds(len(X), 1100):
        a = local.block(start, stop).accumulate(family, packed)
        b = remote.block(start, stop).accumulate(family, packed)
        np.testing.assert_allclose(a[0], b[0], rtol=1e-12)
        np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("algorithm", ["stepwise", "incremental"])
def test_cli_checkpoint_and_resume(algorithm, tmp_path, capsys):
    """``fastem fit --algorithm ... --batch-size N`` writes checkpoints every pass; a resumed
    fit continues from one (its running statistics rebuilt) to the batch optimum."""
    from fastem import cli, load

    X, _, _ = make_blobs(n=4000, d=2, k=3)
    path = tmp_path / "x.npy"
    np.save(path, X.astype(np.float32))
    common = [str(path), "-k", "3", "--seed", "0", "--tol", "0", "-q", "--algorithm", algorithm,
              "--batch-size", "500"]
    assert cli.main(["fit", *common, "--max-iter", "4", "-o", str(tmp_path / "first.npz"),
                     "--checkpoint", str(tmp_path / "ck.npz"), "--checkpoint-every", "3"]) == 0
    checkpoint = load(tmp_path / "ck.npz")
    assert checkpoint.n_iter_ == 3 and checkpoint.algorithm == algorithm
    assert checkpoint.batch_size == 500
    assert cli.main(["fit", *common, "--max-iter", "8", "--resume", str(tmp_path / "ck.npz"),
                     "-o", str(tmp_path / "resumed.npz")]) == 0
    resumed = load(tmp_path / "resumed.npz")
    assert resumed.n_iter_ == 8 and len(resumed.lower_bounds_) == 8
    batch = GaussianMixture(3, random_state=0, tol=1e-8, max_iter=500).fit(X)
    assert batch.score(X) - resumed.score(X) < 1e-3


@pytest.mark.parametrize("algorithm", ["stepwise", "incremental", "partial_fit"])
def test_empty_component_is_reseeded_from_the_current_batch(algorithm):
    X, _, _ = make_blobs(n=2000, d=2, k=3)
    means = X[[0, 1, 2]].copy()
    means[2] = 1e3  # far from every row: it gets no responsibility
    model = GaussianMixture(3, means_init=means, batch_size=500, max_iter=2, tol=0,
                            random_state=0)
    with pytest.warns(RuntimeWarning, match="re-seeded at data row"):
        if algorithm == "partial_fit":
            model.partial_fit(X[1000:1500])
        else:
            model.set_params(algorithm=algorithm).fit(X)
    assert np.abs(model.means_).max() < np.abs(X).max() + 1
    assert np.all(model.weights_ > 0.01)
    if algorithm == "partial_fit":  # the update ended on the re-seeding: a row of the batch
        assert (np.abs(X[1000:1500] - model.means_[2]).max(axis=1) == 0).any()
