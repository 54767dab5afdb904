"""Time per EM iteration of Numba custom families against the built-in Cython Gaussian.

Three families, each iterated by the same engine (``fastem.em.run_em`` over a ``LocalDriver``)
on N x D data with K components and the same thread count:

* ``gaussian diag (Cython)``: the built-in ``GaussianFamily("diag")`` on N x D data;
* ``gaussian diag (Numba)``: the same model as a ``CustomFamily`` whose log-density and
  statistics are written in Python below and compiled with Numba, on the same data: the
  engine's overhead, like for like;
* ``von Mises (Numba)``: ``examples/von_mises_mixture.py`` on D angles, mapped once onto the
  unit circle (N x 2D columns): 2D x K multiply-adds per row for the log-density and for the
  statistics, the same arithmetic as the diagonal Gaussian's exponential-family form.

Every family is warmed up first (one pass, so compilation is excluded), then the families take
turns, one EM iteration each, so that the load of a shared machine reaches them alike. Wall
time is the measure; the process's CPU time per iteration (all threads) is printed beside it,
since on a loaded machine it shows the work done rather than the wait. The first-call time of
the Numba functions (compilation, or loading Numba's on-disk cache) is reported separately. Run
``NUMBA_CACHE_DIR=$(mktemp -d) python benchmarks/custom_family.py`` to measure a cold compile.
Prints Markdown tables.

    python benchmarks/custom_family.py [--n 1000000] [--d 16] [--k 16] [--threads 1,2]
"""
import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numba
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastem.drivers.local import LocalDriver  # noqa: E402
from fastem.em import run_em  # noqa: E402
from fastem.families.custom import CustomFamily  # noqa: E402
from fastem.families.gaussian import GaussianFamily, GaussianParams  # noqa: E402
from fastem.latent.mixture import Mixture, MixtureParams, mixture_params  # noqa: E402

MIXTURE = Mixture()


def load_example():
    path = ROOT / "examples" / "von_mises_mixture.py"
    spec = importlib.util.spec_from_file_location("von_mises_mixture", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # Numba's cache finds the module again by its name
    spec.loader.exec_module(module)
    return module


# ------------------------------------------- a diagonal Gaussian as a Numba custom family
@numba.njit(nogil=True, cache=True)
def gauss_log_density(X, args, out):
    """out[i, k] = c_k + sum_d x_d a_dk + x_d^2 b_dk (a = mu / var, b = -1 / (2 var))."""
    a, b, c = args
    n, d_count = X.shape
    k_count = c.shape[0]
    for i in range(n):
        for k in range(k_count):
            out[i, k] = c[k]
        for d in range(d_count):
            x = X[i, d]
            x2 = x * x
            for k in range(k_count):
                out[i, k] += x * a[d, k] + x2 * b[d, k]


@numba.njit(nogil=True, cache=True)
def gauss_statistics(X, resp, out):
    """out[k] += r_ik [x_i, x_i^2] (the row's features built once, then one loop per k)."""
    n, d_count = X.shape
    k_count = resp.shape[1]
    t = np.empty(2 * d_count)
    for i in range(n):
        for d in range(d_count):
            t[d] = X[i, d]
            t[d_count + d] = X[i, d] * X[i, d]
        for k in range(k_count):
            r = resp[i, k]
            for f in range(2 * d_count):  # contiguous in f: vectorised
                out[k, f] += r * t[f]


def gauss_prepare(params):
    mean, var = params
    a, b = (mean / var).T, (-0.5 / var).T
    c = -0.5 * (np.log(2 * np.pi * var) + mean**2 / var).sum(axis=1)
    return np.ascontiguousarray(a), np.ascontiguousarray(b), c


def gauss_m_step(s0, sums, params):
    d = sums.shape[1] // 2
    mean = sums[:, :d] / s0[:, None]
    var = np.maximum(sums[:, d:] / s0[:, None] - mean**2, 0.0) + 1e-6
    return mean, var


def numba_gaussian(d):
    return CustomFamily(gauss_log_density, gauss_statistics, gauss_m_step, 2 * d,
                        prepare=gauss_prepare, n_parameters=lambda d: 2 * d)


# --------------------------------------------------------------------------- timing
def first_call_seconds(fn, *args):
    tic = time.perf_counter()
    fn(*args)
    return time.perf_counter() - tic, fn.stats.cache_hits


def iteration_times(runs, n_threads, iters):
    """Seconds of ``iters`` EM iterations (E-step pass + M-step) of each run, after a warm-up
    pass each; the runs take turns, one iteration at a time, so that a change in the load of
    a shared machine reaches all of them alike."""
    drivers, params = [], []
    for _, family, data, start in runs:
        driver = LocalDriver(data, n_threads=n_threads)
        driver.accumulate(family, MIXTURE.pack(family, start, driver.dtype))  # warm-up: compile, page in
        drivers.append(driver)
        params.append(start)
    times, cpu = np.zeros((len(runs), iters)), np.zeros((len(runs), iters))
    rng = np.random.default_rng(0)
    for it in range(iters):
        for r, (_, family, _, _) in enumerate(runs):
            tic, cpu_tic = time.perf_counter(), time.process_time()
            params[r] = run_em(MIXTURE, family, drivers[r], params[r], tol=0.0, max_iter=1, rng=rng).params
            times[r, it] = time.perf_counter() - tic
            cpu[r, it] = time.process_time() - cpu_tic
    return times, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--iters", type=int, default=5)
    args = parser.parse_args()
    n, d, k = args.n, args.d, args.k
    thread_counts = [int(t) for t in args.threads.split(",")]
    rng = np.random.default_rng(0)
    vm = load_example()

    # compile (or load from cache) before anything is timed
    x_small = np.zeros((4, 2 * d))
    compile_rows = []
    vm_args = vm.prepare(vm.VonMisesParams(np.zeros((k, d)), np.ones((k, d))))
    for name, fn, fargs in (
        ("von Mises log_density", vm.log_density, (x_small, vm_args, np.empty((4, k)))),
        ("von Mises statistics", vm.statistics, (x_small, np.ones((4, k)), np.zeros((k, 2 * d)))),
        ("gaussian log_density", gauss_log_density,
         (x_small[:, :d], gauss_prepare((np.zeros((k, d)), np.ones((k, d)))), np.empty((4, k)))),
        ("gaussian statistics", gauss_statistics,
         (x_small[:, :d], np.ones((4, k)), np.zeros((k, 2 * d)))),
    ):
        seconds, hits = first_call_seconds(fn, *fargs)
        compile_rows.append((name, seconds, "cache hit" if hits else "compiled"))

    # data: K Gaussian blobs (N x D); K von Mises components on D angles (N x 2D unit circle)
    centres = rng.normal(scale=3.0, size=(k, d))
    labels = rng.integers(k, size=n)
    X = centres[labels] + rng.normal(size=(n, d))
    mu = rng.uniform(-np.pi, np.pi, size=(k, d))
    theta = rng.vonmises(mu[labels], 4.0)
    U = vm.to_unit_circle(theta)
    del theta

    weights = np.full(k, 1.0 / k)
    start = rng.choice(n, k, replace=False)
    g_params = MixtureParams(weights, GaussianParams.from_covariances(
        "diag", X[start].copy(), np.ones((k, d))))
    custom_g = numba_gaussian(d)
    vm_family = vm.make_family(d)
    vm_params = mixture_params(weights, vm_family.make_params(vm.from_rows(U[start])))

    runs = [
        ("gaussian diag (Cython, built-in)", GaussianFamily("diag"), X, g_params),
        ("gaussian diag (Numba custom)", custom_g, X,
         mixture_params(weights, custom_g.make_params((X[start].copy(), np.ones((k, d)))))),
        (f"von Mises, {d} angles = {2 * d} columns (Numba custom)", vm_family, U, vm_params),
    ]
    print(f"N={n:,}, D={d}, K={k}, float64, median (and min) of {args.iters} EM iterations "
          f"after a warm-up pass\n")
    print("| family | threads | ms / iteration | min | ratio to built-in | CPU ms / iteration |")
    print("|---|---:|---:|---:|---:|---:|")
    for threads in thread_counts:
        times, cpu = iteration_times(runs, threads, args.iters)
        base = np.median(times[0])
        for (name, *_), row, cpu_row in zip(runs, times, cpu):
            print(f"| {name} | {threads} | {1e3 * np.median(row):.0f} | {1e3 * row.min():.0f} | "
                  f"{np.median(row) / base:.2f} | {1e3 * np.median(cpu_row):.0f} |", flush=True)
    print("\n| Numba function | first call (s) | |")
    print("|---|---:|---|")
    for name, seconds, how in compile_rows:
        print(f"| {name} | {seconds:.2f} | {how} |")


if __name__ == "__main__":
    main()
