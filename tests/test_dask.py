"""The Dask driver on a real two-process LocalCluster: same answers as the local driver."""
import os
import signal
import threading
import time

import numpy as np
import pytest
from helpers import make_blobs, sklearn_start

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
import dask  # noqa: E402

import fastem  # noqa: E402
import fastem.initialization  # noqa: E402

RTOL = 1e-10
FITTED = ("weights_", "means_", "covariances_", "precisions_cholesky_")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as c:
            yield c


@pytest.fixture(scope="module")
def data():
    X, _, _ = make_blobs(n=6000, d=3, k=3)
    return X


def assert_same_model(a, b, rtol=RTOL):
    for name in FITTED:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, atol=0,
                                   err_msg=name)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=rtol, atol=0)
    assert a.n_iter_ == b.n_iter_


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_fit_equals_local_fit(client, data, covariance_type):
    start = sklearn_start(data, 3, covariance_type)
    local = fastem.GaussianMixture(3, tol=0, max_iter=8, **start).fit(data)
    remote = fastem.GaussianMixture(3, tol=0, max_iter=8, **start).fit(
        da.from_array(data, chunks=1500))
    assert_same_model(remote, local)


def test_one_and_two_workers_identical(client, data, monkeypatch):
    # seeding samples blocks on workers
    monkeypatch.setattr(fastem.initialization, "MAX_SAMPLE", 1000)
    X = da.from_array(data, chunks=1000)
    weights = da.from_array(np.random.RandomState(2).rand(data.shape[0]), chunks=700)

    def fits():
        return [fastem.GaussianMixture(3, init_params=init, max_iter=5, tol=0, random_state=0)
                .fit(X, sample_weight=weights) for init in ("kmeans", "random")]

    two = fits()
    with distributed.LocalCluster(n_workers=1, processes=True, threads_per_worker=1,
                                  dashboard_address=":0") as cluster:
        with distributed.Client(cluster, set_as_default=False) as one_client:
            with dask.config.set(scheduler=one_client):
                one = fits()
    for a, b in zip(one, two):
        for name in FITTED:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        assert a.lower_bounds_ == b.lower_bounds_


@pytest.mark.parametrize("name", ["PoissonMixture", "BernoulliMixture"])
def test_other_families_equal_local_fit(client, name):
    rng = np.random.RandomState(4)
    rates = np.array([[0.5, 6.0, 2.0], [8.0, 1.0, 0.3]])[rng.randint(2, size=3000)]
    X = rng.poisson(rates).astype(np.float64)
    if name == "BernoulliMixture":
        X = (X > 1.5).astype(np.float64)
    options = dict(init_params="random_from_data", random_state=0, tol=0, max_iter=5)
    local = getattr(fastem, name)(2, **options).fit(X)
    remote = getattr(fastem, name)(2, **options).fit(da.from_array(X, chunks=800))
    np.testing.assert_allclose(remote.lower_bounds_, local.lower_bounds_, rtol=RTOL)
    np.testing.assert_allclose(remote.weights_, local.weights_, rtol=RTOL)
    X[2000, 1] = -1.0  # outside the support: found on the workers, named as locally
    with pytest.raises(ValueError, match="X row 2000 is") as remote_error:
        getattr(fastem, name)(2).fit(da.from_array(X, chunks=800))
    with pytest.raises(ValueError) as local_error:
        getattr(fastem, name)(2).fit(X)
    assert str(remote_error.value) == str(local_error.value)
    X[1000, 0] = np.nan  # omitted, while the value outside the support is still an error
    for source in (X, da.from_array(X, chunks=800)):
        with pytest.raises(ValueError, match="X row 2000 is"):
            getattr(fastem, name)(2, nan_policy="omit").fit(source)


def test_sample_weight_as_dask_array(client, data):
    start = sklearn_start(data, 3, "full")
    w = np.random.RandomState(3).rand(data.shape[0]) * 2
    local = fastem.GaussianMixture(3, tol=0, max_iter=5, **start).fit(data, sample_weight=w)
    X = da.from_array(data, chunks=1500)
    for weights in (da.from_array(w, chunks=1000), w):  # re-aligned to X's blocks; numpy too
        remote = fastem.GaussianMixture(3, tol=0, max_iter=5, **start).fit(X, sample_weight=weights)
        assert_same_model(remote, local)


def test_predictions_are_lazy_and_equal_local(client, data):
    model = fastem.GaussianMixture(3, covariance_type="diag", random_state=0).fit(data)
    X = da.from_array(data, chunks=1700)
    for method in ("predict", "predict_proba", "score_samples"):
        lazy = getattr(model, method)(X)
        assert isinstance(lazy, da.Array), method
        expected = getattr(model, method)(data)
        np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-12, atol=1e-300)
        assert lazy.dtype == expected.dtype
    score = model.score(X)
    assert isinstance(score, float)
    assert score == pytest.approx(model.score(data), rel=1e-12)


def test_nan_policy_omit(client, data):
    X = data.copy()
    X[[5, 4000]] = np.nan
    start = sklearn_start(data, 3, "diag")
    with pytest.warns(RuntimeWarning, match="2 rows"):
        local = fastem.GaussianMixture(3, tol=0, max_iter=5, nan_policy="omit", **start).fit(X)
    with pytest.warns(RuntimeWarning, match="2 rows"):
        remote = fastem.GaussianMixture(3, tol=0, max_iter=5, nan_policy="omit", **start).fit(
            da.from_array(X, chunks=1500))
    assert_same_model(remote, local)
    assert remote.n_omitted_rows_ == 2
    with pytest.warns(RuntimeWarning):
        labels = remote.predict(da.from_array(X, chunks=1500)).compute()
    assert labels[5] == labels[4000] == -1
    with pytest.raises(ValueError, match="first at row 5"):
        fastem.GaussianMixture(3).fit(da.from_array(X, chunks=1500))


def test_zarr_on_disk_never_read_by_the_client(client, data, tmp_path, monkeypatch):
    zarr = pytest.importorskip("zarr")
    path = str(tmp_path / "x.zarr")
    da.from_array(data, chunks=1500).to_zarr(path)
    X = da.from_zarr(path)
    start = sklearn_start(data, 3, "full")
    expected = fastem.GaussianMixture(3, tol=0, max_iter=5, **start).fit(data)

    def no_reads(*args, **kwargs):
        raise AssertionError("the client read zarr data")

    # The workers are other processes: this patch only forbids reads in the client.
    monkeypatch.setattr(zarr.Array, "__getitem__", no_reads)
    monkeypatch.setattr(zarr.Array, "get_basic_selection", no_reads)
    model = fastem.GaussianMixture(3, tol=0, max_iter=5, **start).fit(X)
    assert_same_model(model, expected)
    assert model.predict(X).sum().compute() == expected.predict(data).sum()


def test_npy_file_travels_as_its_path(client, data, tmp_path):
    import cloudpickle

    from fastem.dask import from_npy

    path = tmp_path / "x.npy"
    np.save(path, data)
    X = from_npy(path, block_rows=1500)
    assert len(cloudpickle.dumps(dict(X.__dask_graph__()))) < 10_000  # not the file's 144 kB
    start = sklearn_start(data, 3, "tied")
    expected = fastem.GaussianMixture(3, tol=0, max_iter=5, **start).fit(str(path))
    assert_same_model(fastem.GaussianMixture(3, tol=0, max_iter=5, **start).fit(X), expected)


def slow_rows(block):
    time.sleep(0.15)
    return block


def slow_source(data):
    """8 blocks of 0.15 s each: a pass lasts about 0.6 s on two workers."""
    return da.from_array(data, chunks=750).map_blocks(slow_rows, dtype=data.dtype)


def killing_a_worker(client, killed):
    """A fit callback that kills a worker 0.25 s into the second pass, and appends the time
    to ``killed``."""
    pids = list(client.run(os.getpid).values())

    def kill_soon(model):
        if model.n_iter_ == 1:
            def kill():
                os.kill(pids[0], signal.SIGKILL)
                killed.append(time.perf_counter())

            threading.Timer(0.25, kill).start()

    return kill_soon


def test_killed_worker_is_recomputed(client, data):
    start = sklearn_start(data, 3, "diag")
    expected = fastem.GaussianMixture(3, tol=0, max_iter=3, **start).fit(data)
    killed = []
    model = fastem.GaussianMixture(3, tol=0, max_iter=3, callback=killing_a_worker(client, killed),
                                   **start)
    model.fit(slow_source(data))
    finished = time.perf_counter()
    assert killed and killed[0] < finished
    assert_same_model(model, expected)
    client.wait_for_workers(2, timeout=120)


def test_restart_during_fit_is_a_clear_error_and_keeps_last_model(client, data):
    start = sklearn_start(data, 3, "diag")
    after_first = {}
    timer = []

    def restart_soon(model):
        if model.n_iter_ == 1:
            after_first.update({name: getattr(model, name).copy() for name in FITTED})
            timer.append(threading.Timer(0.25, client.restart, kwargs={"wait_for_workers": False}))
            timer[0].start()

    model = fastem.GaussianMixture(3, tol=0, max_iter=5, callback=restart_soon, **start)
    with pytest.raises(RuntimeError, match="cancelled a pass"):
        model.fit(slow_source(data))
    timer[0].join()
    for name in FITTED:  # the model holds the last completed iteration, and works
        np.testing.assert_array_equal(getattr(model, name), after_first[name])
    assert model.n_iter_ == 1
    assert np.isfinite(model.score(data))
    client.wait_for_workers(2, timeout=120)


def test_bad_input_is_a_clear_error(client, data):
    X = da.from_array(data, chunks=1500)
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        fastem.GaussianMixture(2).fit(X[X[:, 0] > 0])
    for weights in (da.ones(data.shape[0] - 1, chunks=1000), np.ones(7)):
        with pytest.raises(ValueError, match="sample_weight.shape"):
            fastem.GaussianMixture(2).fit(X, sample_weight=weights)
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        w = da.ones(data.shape[0] + 1, chunks=1000)
        fastem.GaussianMixture(2).fit(X, sample_weight=w[w > 0])
    with pytest.raises(ValueError, match="negative"):
        fastem.GaussianMixture(2).fit(X, sample_weight=-da.ones(data.shape[0], chunks=1000))
    words = np.full((100, 2), "a")
    for bad in (da.from_array(words, chunks=50), da.from_array(words.astype(object), chunks=50)):
        with pytest.raises(ValueError, match="expected numeric data"):
            fastem.GaussianMixture(2).fit(bad)
    # The array claims float64 but its blocks hold strings: caught on the workers.
    lying = da.from_array(data[:100], chunks=50).map_blocks(
        lambda b: b.astype(str), dtype=np.float64)
    with pytest.raises(ValueError, match=r"X \(block from row \d+\): expected numeric data"):
        fastem.GaussianMixture(2).fit(lying)


def test_drivers_honour_one_contract(client, data):
    """The same driver calls give the same answers locally and on Dask: per-row outputs (lazy
    dask arrays there), column maxima, and passes that check rows on the way."""
    from fastem.drivers import make_driver

    model = fastem.GaussianMixture(3, covariance_type="diag", random_state=0).fit(data)
    family = model.family_
    X = data.copy()
    X[[700, 4100]] = np.nan
    X[4500, 1] = np.inf
    local, remote = make_driver(X), make_driver(da.from_array(X, chunks=1000))
    packed = model._latent().pack(family, model._fitted_params(), local.dtype)
    outputs = dict.fromkeys(("log_prob", "resp", "labels"))
    expected = local.predict(family, packed, outputs, "omit")
    got = remote.predict(family, packed, outputs, "omit")
    assert local.n_omitted == remote.n_omitted == 3
    for name in outputs:
        assert isinstance(got[name], da.Array), name
        np.testing.assert_allclose(got[name].compute(), expected[name], rtol=1e-12, atol=1e-300)
    np.testing.assert_array_equal(remote.column_max(), local.column_max())
    np.testing.assert_array_equal(local.column_max(), np.nanmax(np.where(np.isinf(X), np.nan, X),
                                                                axis=0))
    (local_stats, _), (remote_stats, _) = (driver.accumulate(family, packed, nan_policy="omit")
                                           for driver in (local, remote))
    np.testing.assert_allclose(remote_stats, local_stats, rtol=1e-12)
    assert remote.n_omitted == 3
    for driver in (local, remote):  # the first bad row of all blocks is named
        with pytest.raises(ValueError, match="first at row 700"):
            driver.accumulate(family, packed, nan_policy="raise")
    with pytest.raises(ValueError, match="out= is not supported"):
        remote.predict(family, packed, {"labels": np.empty(len(X), np.intp)})


def test_score_checks_rows_in_its_own_pass(client, data):
    model = fastem.GaussianMixture(3, covariance_type="diag", random_state=0).fit(data)
    X = data.copy()
    X[[2500, 5200]] = np.nan  # in the third and sixth blocks
    with pytest.raises(ValueError, match="first at row 2500"):
        model.score(da.from_array(X, chunks=1000))
    model.set_params(nan_policy="omit")
    with pytest.warns(RuntimeWarning, match="2 rows"):
        remote = model.score(da.from_array(X, chunks=1000))
    with pytest.warns(RuntimeWarning, match="2 rows"):
        local = model.score(X)
    assert remote == pytest.approx(local, rel=1e-12)


def test_categories_are_counted_on_the_cluster_without_nan(client):
    X = np.random.RandomState(0).randint(0, 5, size=(3000, 3)).astype(np.float64)
    X[10, 0] = np.nan  # left out, not counted (a NaN maximum would count 1 category)
    options = dict(nan_policy="omit", random_state=0, max_iter=3)
    with pytest.warns(RuntimeWarning, match="1 rows"):
        local = fastem.CategoricalMixture(2, **options).fit(X)
    with pytest.warns(RuntimeWarning, match="1 rows"):
        remote = fastem.CategoricalMixture(2, **options).fit(da.from_array(X, chunks=800))
    np.testing.assert_array_equal(remote.n_categories_, [5, 5, 5])
    np.testing.assert_array_equal(local.n_categories_, [5, 5, 5])


@pytest.mark.parametrize("init", ["kmeans", "random_from_data"])
def test_select_on_the_cluster_equals_local(client, data, init):
    from fastem.select import select

    local = select(data, [1, 2, 3], ("full", "diag"), random_state=0, init_params=init)
    remote = select(da.from_array(data, chunks=1500), [1, 2, 3], ("full", "diag"),
                    random_state=0, init_params=init)
    for a, b in zip(remote.estimators, local.estimators):
        assert_same_model(a, b)
    np.testing.assert_allclose([row.icl for row in remote.table],
                               [row.icl for row in local.table], rtol=RTOL)
    assert remote.n_passes == local.n_passes
