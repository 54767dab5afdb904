"""Overhead of the Dask driver against the local driver, on the same in-memory data.

The data (``make_data`` of ``benchmarks/benchmarks/bench_gaussian.py``, float64) are built once
in this process, fitted by the local driver with ``n_threads`` threads, and scattered once to a
``LocalCluster`` of ``n_workers`` single-threaded workers (default Dask configuration), where
the Dask driver fits them as a persisted dask array of ``--block-rows`` row blocks, dealt to the
workers in turn. Both fits start from the same given parameters with ``tol=0``, so every
iteration is one E-step pass and one M-step (the local driver also runs with one thread, for
reference). The time per iteration is the median time between consecutive ``callback`` calls
after the first (check of the input and the first pass excluded).

The Dask fit runs by each ``--schemes``: ``resident``, the driver's own choice for persisted
data (one task per worker per pass over the blocks it holds, ``TASK_THREADS`` kernel threads
per worker thread), ``resident-1``, the same with ``n_threads=1`` (one kernel thread per task:
the scheme before ``TASK_THREADS``), and ``graph``, the graph of one task per block merged on
the cluster that the driver builds for data not persisted (forced here on the same data). With ``--rounds`` above 1 the local 2-thread fit and the Dask fits take
turns, and each figure is the median over the rounds.

Bytes per iteration of the Dask fit are measured, not estimated, as:

* parameters: the pickled parameters of a pass (family and packed parameters): sent once per
  pass (graph) or with each worker's task (resident);
* graph: the pickled task graph the client submits per pass (block, merge and parameter tasks;
  the data blocks are already on the workers and appear only as keys; resident: none);
* worker to worker: bytes the workers fetched from each other (their ``transfer_incoming_log``):
  the parameters going to the second worker, and block statistics going to merge tasks;
* to client: the pickled result of a pass (graph: one statistics vector and the worst row;
  resident: those of every block).

Run ``python benchmarks/dask_overhead.py --help`` for the options; it prints a markdown table.
"""
import argparse
import contextlib
import os
import statistics
import sys
import time
import warnings

import cloudpickle
import dask
import dask.array as da
import numpy as np
from distributed import Client, LocalCluster

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmarks.bench_gaussian import initial_parameters, make_data  # noqa: E402

import fastem  # noqa: E402
import fastem.drivers.dask  # noqa: E402


class Traffic:
    """Sizes of what the Dask driver sends, per pass (wraps its ``_shared``, ``compute`` and
    ``_per_worker``)."""

    def __init__(self):
        self.params, self.graph, self.result = [], [], []
        driver = fastem.drivers.dask
        shared, compute, per_worker = driver._shared, dask.compute, driver._per_worker

        def recording_shared(job):
            self.params.append(len(cloudpickle.dumps(job)))
            return shared(job)

        def recording_per_worker(task, parts, rows, job):
            self.params.append(len(cloudpickle.dumps(job)))
            self.graph.append(0)
            results = per_worker(task, parts, rows, job)
            self.result.append(len(cloudpickle.dumps(results)))
            return results

        def recording_compute(*collections, **kwargs):
            self.graph.append(sum(len(cloudpickle.dumps(dict(c.__dask_graph__())))
                                  for c in collections if dask.is_dask_collection(c)))
            results = compute(*collections, **kwargs)
            self.result.append(len(cloudpickle.dumps(results)))
            return results

        driver._shared = recording_shared
        driver.dask.compute = recording_compute
        driver._per_worker = recording_per_worker


def incoming_bytes(client):
    """Total bytes every worker has fetched from other workers so far."""
    def total(dask_worker):
        return sum(entry["total"] for entry in dask_worker.transfer_incoming_log)

    return sum(client.run(total).values())


def timed_fit(X, covariance_type, inits, iters, n_threads=None, on_iteration=None):
    """Seconds per iteration (median after the first) of a ``tol=0`` fit from ``inits``."""
    stamps = []

    def callback(model):
        stamps.append(time.perf_counter())
        if on_iteration is not None:
            on_iteration()

    model = fastem.GaussianMixture(inits["means_init"].shape[0], covariance_type=covariance_type,
                                   tol=0.0, max_iter=iters, n_threads=n_threads,
                                   callback=callback, **inits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastem.ConvergenceWarning)
        model.fit(X)
    return statistics.median(np.diff(stamps)), model


def scattered(client, X, block_rows):
    """``X`` as a persisted dask array whose blocks live on the workers (sent once, the
    workers taking blocks in turn)."""
    workers = sorted(client.scheduler_info()["workers"])
    blocks = [X[s:s + block_rows] for s in range(0, X.shape[0], block_rows)]
    graph = {("scattered", i, 0): client.scatter(block, workers=[workers[i % len(workers)]])
             for i, block in enumerate(blocks)}
    return da.Array(graph, "scattered", chunks=(tuple(len(b) for b in blocks), (X.shape[1],)),
                    dtype=X.dtype)


@contextlib.contextmanager
def scheme(name):
    """The Dask driver's ``resident`` scheme (its own choice for persisted data), the same with
    one kernel thread per task (``resident-1``) or the ``graph`` of one task per block (its
    choice for data not persisted); yields the fit's ``n_threads``."""
    resident = fastem.drivers.dask.DaskDriver._resident
    if name == "graph":
        fastem.drivers.dask.DaskDriver._resident = lambda self, with_labels: None
    try:
        yield 1 if name == "resident-1" else None
    finally:
        fastem.drivers.dask.DaskDriver._resident = resident


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-samples", type=float, default=1e7)
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--n-components", type=int, default=16)
    parser.add_argument("--covariance-types", nargs="+", default=["diag", "full"])
    parser.add_argument("--iters", type=int, default=3, help="EM iterations per fit (>= 2)")
    parser.add_argument("--block-rows", type=int, default=500_000, help="rows per Dask block")
    parser.add_argument("--n-workers", type=int, default=2)
    parser.add_argument("--n-threads", type=int, default=2, help="threads of the local driver")
    parser.add_argument("--schemes", nargs="+", default=["resident", "graph"],
                        choices=["resident", "resident-1", "graph"], help="how the Dask driver runs a pass")
    parser.add_argument("--rounds", type=int, default=1,
                        help="times the local 2-thread fit and the Dask fits take turns")
    args = parser.parse_args()
    n, d, k = int(args.n_samples), args.n_features, args.n_components

    X = make_data(n, d, k)
    traffic = Traffic()
    rows = []
    with LocalCluster(n_workers=args.n_workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        X_dask = scattered(client, X, args.block_rows)
        for covariance_type in args.covariance_types:
            inits = initial_parameters(X, k, covariance_type)
            single, _ = timed_fit(X, covariance_type, inits, args.iters, 1)
            times = {name: [] for name in ["local"] + args.schemes}
            sent = {}
            for _ in range(args.rounds):
                local, local_model = timed_fit(X, covariance_type, inits, args.iters,
                                               args.n_threads)
                times["local"].append(local)
                for name in args.schemes:
                    transfers = []
                    mark = [incoming_bytes(client)]

                    def per_iteration():  # what the pass that just ended sent
                        transfers.append(incoming_bytes(client) - mark[0])
                        mark[0] = incoming_bytes(client)

                    with scheme(name) as n_threads:
                        remote, remote_model = timed_fit(X_dask, covariance_type, inits,
                                                         args.iters, n_threads,
                                                         on_iteration=per_iteration)
                    times[name].append(remote)
                    gap = np.max(np.abs(remote_model.means_ - local_model.means_))
                    sent[name] = (traffic.params[-1], traffic.graph[-1],
                                  int(np.median(transfers[1:])), traffic.result[-1], gap)
            local = statistics.median(times["local"])
            for name in args.schemes:
                rows.append((covariance_type, name, single, local,
                             statistics.median(times[name]), *sent[name]))

    print(f"N={n:.0e}, D={d}, K={k}, float64; local: {args.n_threads} threads; Dask: "
          f"LocalCluster({args.n_workers} workers x 1 thread), {X_dask.numblocks[0]} blocks of "
          f"{args.block_rows} rows, persisted; Dask {dask.__version__}, default configuration "
          f"(worker profiler {'on' if dask.config.get('distributed.worker.profile.enabled') else 'off'}"
          f"); resident: TASK_THREADS = {fastem.drivers.dask.TASK_THREADS} kernel threads per "
          f"worker thread; {args.iters} iterations, median after the first; "
          f"{args.rounds} round(s); load average {os.getloadavg()[0]:.1f} at the end\n")
    print(f"| covariance | Dask scheme | local 1 thread s/iter | local {args.n_threads} threads "
          "s/iter | Dask s/iter | Dask vs local | parameters B | graph B | worker-to-worker B "
          "| to client B | max abs diff of means |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for t, name, single, local, remote, params, graph, between, result, gap in rows:
        print(f"| {t} | {name} | {single:.3f} | {local:.3f} | {remote:.3f} "
              f"| {100 * (remote / local - 1):+.0f} % "
              f"| {params:,} | {graph:,} | {between:,} | {result:,} | {gap:.1e} |")


if __name__ == "__main__":
    main()
