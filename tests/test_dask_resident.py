"""Data persisted on the cluster: one task per worker per pass over the blocks it holds, with
the same result as the graph of one task per block and as the local driver."""
import threading
import time
import uuid

import numpy as np
import pytest
from helpers import make_blobs, sklearn_start
from test_dask import FITTED, assert_same_model, killing_a_worker

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
import dask  # noqa: E402
from test_dask import client  # noqa: E402, F401  (the two-process cluster fixture)

import fastem  # noqa: E402
from fastem.drivers.dask import DaskDriver, _futures  # noqa: E402

pytestmark = pytest.mark.usefixtures("client")


@pytest.fixture(scope="module")
def data():
    X, _, _ = make_blobs(n=6000, d=3, k=3, seed=5)
    return X


def placed(X, rows, holder):
    """``X`` as a persisted dask array of blocks of ``rows``, block i held by worker
    ``holder(i)`` (an index into the sorted worker addresses)."""
    cluster = distributed.get_client()
    workers = sorted(cluster.scheduler_info()["workers"])
    blocks = [X[s:s + rows] for s in range(0, X.shape[0], rows)]
    name = f"placed-{uuid.uuid4().hex}"
    graph = {(name, i, 0): cluster.scatter(block, workers=[workers[holder(i)]])
             for i, block in enumerate(blocks)}
    return da.Array(graph, name, chunks=(tuple(len(b) for b in blocks), (X.shape[1],)),
                    dtype=X.dtype)


def fit(X, start, **options):
    """A fit of 6 iterations; on dask data, every pass checked to run one task per worker."""
    import fastem.drivers.dask as driver

    per_worker, passes = driver._per_worker, []

    def counted(*args):
        passes.append(1)
        return per_worker(*args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(driver, "_per_worker", counted)
        model = fastem.GaussianMixture(3, tol=0, max_iter=6, **start).fit(X, **options)
    assert len(passes) == (model.n_iter_ if isinstance(X, da.Array) else 0)
    return model


def graph_fit(monkeypatch, X, start, **options):
    """The same fit by the graph of one task per block (as for data not persisted)."""
    with monkeypatch.context() as patch:
        patch.setattr(DaskDriver, "_resident", lambda self, with_labels: None)
        return fastem.GaussianMixture(3, tol=0, max_iter=6, **start).fit(X, **options)


def assert_identical(a, b):
    for name in FITTED:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.lower_bounds_ == b.lower_bounds_


def tasks_of_fit(X, start, max_iter):
    """(name, worker) of each task that a fit of ``max_iter`` iterations ran."""
    model = fastem.GaussianMixture(3, tol=0, max_iter=max_iter, **start)
    with distributed.get_task_stream() as stream:
        model.fit(X)
    return [(task["key"][0] if isinstance(task["key"], tuple) else task["key"], task["worker"])
            for task in stream.data]


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_fit_equals_local_and_graph_fits(data, covariance_type, monkeypatch):
    start = sklearn_start(data, 3, covariance_type)
    X = da.from_array(data, chunks=700).persist()
    resident = fit(X, start)
    assert_same_model(resident, fit(data, start))
    assert_identical(resident, graph_fit(monkeypatch, X, start))


def test_one_task_per_worker_per_pass(data):
    start = sklearn_start(data, 3, "diag")
    X = da.from_array(data, chunks=500).persist()  # 12 blocks
    tasks = tasks_of_fit(X, start, max_iter=3)  # a check of the rows, 3 passes
    passes = [worker for name, worker in tasks if name.startswith("_run_blocks")]
    assert len(passes) == 3 * 2 and len(set(passes)) == 2
    assert not any(name.startswith("_block_stats") for name, _ in tasks)


def record_threads(on):
    """On a worker: from ``on``, record the ``n_threads`` each block of a statistics pass is
    given; returns (and forgets) what was recorded."""
    import fastem.drivers.dask as driver

    original = getattr(driver, "_original_local", driver._local)
    seen, driver._threads_seen = getattr(driver, "_threads_seen", []), []

    def recording(block, weights, job):
        driver._threads_seen.append(job.n_threads)
        return original(block, weights, job)

    driver._original_local = original
    driver._local = recording if on else original
    return seen


def threads_of_fits(cluster, X, start, n_threads_options):
    """For each of ``n_threads_options``: the set of ``n_threads`` the blocks of its fit ran."""
    seen = []
    for n_threads in n_threads_options:
        cluster.run(record_threads, True)
        fastem.GaussianMixture(3, tol=0, max_iter=2, n_threads=n_threads, **start).fit(X)
        seen.append({n for per_worker in cluster.run(record_threads, False).values()
                     for n in per_worker})
    return seen


def test_tasks_run_their_workers_threads(data):
    """``n_threads=None``: each worker's task gives its blocks ``TASK_THREADS`` kernel threads
    per thread of its worker (a worker whose blocks end first leaves its cores to the others);
    a number given is kept; the fit is the same either way."""
    import fastem.drivers.dask as driver

    start = sklearn_start(data, 3, "diag")
    X = da.from_array(data, chunks=1000).persist()
    assert threads_of_fits(distributed.get_client(), X, start, [None, 1]) == [
        {driver.TASK_THREADS}, {1}]
    with distributed.LocalCluster(n_workers=1, processes=True, threads_per_worker=2,
                                  dashboard_address=":0") as cluster:
        with distributed.Client(cluster, set_as_default=False) as two_threads:
            with dask.config.set(scheduler=two_threads):
                X2 = da.from_array(data, chunks=1000).persist()
                assert threads_of_fits(two_threads, X2, start, [None]) == [
                    {2 * driver.TASK_THREADS}]
                assert_identical(fit(X2, start), fit(X, start))


def test_blocks_dealt_out_of_order(data, monkeypatch):
    """Blocks held by workers in no particular order are still added in block order: the fit
    equals the graph's bit for bit, and the local fit to rounding."""
    start = sklearn_start(data, 3, "full")
    pattern = [0, 1, 1, 0, 0, 0, 1, 0, 1, 1, 1, 0]  # block i held by worker pattern[i]
    X = placed(data, 500, pattern.__getitem__)
    resident = fit(X, start)
    assert_identical(resident, graph_fit(monkeypatch, X, start))
    assert_same_model(resident, fit(data, start))
    cluster = distributed.get_client()
    workers = sorted(cluster.scheduler_info()["workers"])
    futures = _futures(X)
    who_has = cluster.who_has(futures)
    assert [workers.index(who_has[future.key][0]) for future in futures] == pattern


def test_a_worker_holding_no_block(data, monkeypatch):
    start = sklearn_start(data, 3, "tied")
    X = placed(data, 1000, lambda i: 1)  # worker 0 holds nothing
    resident = fit(X, start)
    assert_identical(resident, graph_fit(monkeypatch, X, start))
    assert_same_model(resident, fit(data, start))
    one_block = da.from_array(data, chunks=data.shape[0]).persist()
    assert_same_model(fit(one_block, start), fit(data, start))


def test_weights_and_labels_persisted(data, monkeypatch):
    start = sklearn_start(data, 3, "diag")
    w = np.random.RandomState(1).rand(data.shape[0])
    y = np.full(data.shape[0], -1)
    y[::50] = fastem.GaussianMixture(3, random_state=0).fit(data).predict(data)[::50]
    X = da.from_array(data, chunks=900).persist()
    options = dict(sample_weight=w, y=y)  # numpy: persisted, so the pass stays resident
    resident = fit(X, start, **options)
    assert_same_model(resident, fit(data, start, **options))
    assert_identical(resident, graph_fit(monkeypatch, X, start, **options))
    with pytest.warns(RuntimeWarning, match="2 rows"):  # omitted rows: persisted weights
        data_nan = data.copy()
        data_nan[[3, 4000]] = np.nan
        X_nan = da.from_array(data_nan, chunks=900).persist()
        omit = dict(start, nan_policy="omit")
        assert_same_model(fit(X_nan, omit), fit(data_nan, omit))


def test_select_equals_local(data):
    from fastem.select import select

    local = select(data, [1, 2], ("full", "diag"), random_state=0)
    remote = select(da.from_array(data, chunks=1500).persist(), [1, 2], ("full", "diag"),
                    random_state=0)
    for a, b in zip(remote.estimators, local.estimators):
        assert_same_model(a, b)
    np.testing.assert_allclose([row.icl for row in remote.table],
                               [row.icl for row in local.table], rtol=1e-10)


def slow_down(seconds):
    """On a worker: each block of a statistics pass takes ``seconds`` longer (the tasks name
    the module's function, so they run this one; a new worker runs the original)."""
    import fastem.drivers.dask as driver

    original = getattr(driver, "_original_block_stats", driver._block_stats)

    def slow(*args):
        time.sleep(seconds)
        return original(*args)

    driver._original_block_stats = original
    driver._block_stats = slow if seconds else original


@pytest.fixture
def slow_workers():
    cluster = distributed.get_client()
    cluster.run(slow_down, 0.15)  # 8 blocks: a pass lasts about 0.6 s on two workers
    yield
    cluster.wait_for_workers(2, timeout=120)
    cluster.run(slow_down, 0)


def test_killed_worker_is_recomputed(data, slow_workers):
    """A worker dying during a pass: its blocks are recomputed from their graph, its task runs
    again, and the fit is unchanged."""
    start = sklearn_start(data, 3, "diag")
    expected = fastem.GaussianMixture(3, tol=0, max_iter=3, **start).fit(data)
    X = da.from_array(data, chunks=750).persist()
    killed = []
    model = fastem.GaussianMixture(3, tol=0, max_iter=3, **start, callback=killing_a_worker(
        distributed.get_client(), killed)).fit(X)
    assert killed and killed[0] < time.perf_counter()
    assert_same_model(model, expected)


def test_restart_during_fit_is_a_clear_error(data, slow_workers):
    start = sklearn_start(data, 3, "diag")
    X = da.from_array(data, chunks=750).persist()
    cluster, timer = distributed.get_client(), []

    def restart_soon(model):
        if model.n_iter_ == 1:
            timer.append(threading.Timer(0.25, cluster.restart, kwargs={"wait_for_workers": False}))
            timer[0].start()

    model = fastem.GaussianMixture(3, tol=0, max_iter=5, callback=restart_soon, **start)
    with pytest.raises(RuntimeError, match="cancelled a pass"):
        model.fit(X)
    timer[0].join()
    assert model.n_iter_ == 1
