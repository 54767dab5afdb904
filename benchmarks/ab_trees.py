"""EM iteration times of two source trees (two builds of fastem), taking turns fit by fit.

One long-lived process per tree holds the data (N = 1e6, D = 16, K = 16, ``make_data``); per
case (diag and full, float64 and float32) it fits a ``GaussianMixture`` of three iterations from
the same given initial parameters (``initial_parameters``: no initialisation pass) and reports
the time between the callbacks of iterations 1-2 and 2-3: one EM iteration each (the streamed
E-step pass and the M-step). Only the public estimator API is used, so trees of different
internal layouts compare. The two processes take turns, one fit at a time on ``--threads``
threads, so that the load of a shared machine reaches both alike. Prints per case the minimum
and the median over ``--reps`` fits (two iterations each) and new/old of the minima: on a noisy
machine the minimum is the least disturbed run.

    python benchmarks/ab_trees.py OLD_TREE NEW_TREE [--reps 15] [--threads 2]
        [--shape N,D,K] [--cases full:float64,diag:float32]

``--shape`` and ``--cases`` pick another size (e.g. issue 18's 200000,64,32) and a subset of the
cases.

With ``--memmap DIR`` it times issue 18's small case instead: N = 5e6, D = 8, K = 8 (``make_data``)
memory-mapped from ``.npy`` files in DIR (float32 and float64, written once), diag and
spherical, as ms per iteration = (fit of 10 iterations - fit of 1) / 9, each tree's two fits
in turn with the other's.

A tree is a directory holding ``fastem/`` with its compiled kernels (e.g. a git worktree after
``python setup.py build_ext --inplace``); the data and the benchmark code come from this file's
tree, so both trees see the same inputs.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = [(t, dt) for dt in ("float64", "float32") for t in ("diag", "full")]
ITERATIONS = 3  # timed: the gaps between the callbacks of consecutive iterations


MEMMAP_CASES = [(t, dt) for dt in ("float32", "float64") for t in ("diag", "spherical")]
MEMMAP_SHAPE = (5_000_000, 8, 8)  # N, D, K


def memmap_path(folder, dtype):
    """The .npy file of the --memmap case in ``dtype``, written on first use."""
    n, d, k = MEMMAP_SHAPE
    path = os.path.join(folder, f"ab-{n}x{d}-{dtype}.npy")
    if not os.path.exists(path):
        from benchmarks.bench_gaussian import make_data

        np.save(path, make_data(n, d, k, dtype))
    return path


def memmap_worker(n_threads, folder):
    """Answer each case index read from stdin with (fit of 10 - fit of 1) / 9 in ms, on the
    memory-mapped files of the --memmap case."""
    import warnings

    sys.path.insert(0, HERE)
    from benchmarks.bench_gaussian import initial_parameters

    import fastem
    from fastem import GaussianMixture

    warnings.simplefilter("ignore")
    k = MEMMAP_SHAPE[2]
    data = {dt: np.load(memmap_path(folder, dt), mmap_mode="r") for dt in ("float32", "float64")}
    inits = [initial_parameters(data[dt], k, t) for t, dt in MEMMAP_CASES]

    def seconds(i, max_iter):
        (t, dt), tic = MEMMAP_CASES[i], time.perf_counter()
        GaussianMixture(k, covariance_type=t, tol=0, max_iter=max_iter, n_threads=n_threads,
                        **inits[i]).fit(data[dt])
        return time.perf_counter() - tic

    for i in range(len(MEMMAP_CASES)):
        seconds(i, 1)  # warm-up: page cache, BLAS, lazy imports
    print(os.path.dirname(os.path.dirname(fastem.__file__)), flush=True)
    for line in sys.stdin:
        i = int(line)
        one = seconds(i, 1)
        print(1000 * (seconds(i, 10) - one) / 9, flush=True)


def worker(n_threads, shape, cases):
    """Answer each case index read from stdin with the ms of EM iterations 2 and 3."""
    import warnings

    sys.path.insert(0, HERE)
    from benchmarks.bench_gaussian import initial_parameters, make_data

    import fastem
    from fastem import GaussianMixture

    warnings.simplefilter("ignore")
    n, d, k = shape
    data = {dt: make_data(n, d, k, dt) for dt in {dt for _, dt in cases}}
    stamps = []
    models = [GaussianMixture(k, covariance_type=t, tol=0, max_iter=ITERATIONS,
                              n_threads=n_threads, callback=lambda m: stamps.append(
                                  time.perf_counter()), **initial_parameters(data[dt], k, t))
              for t, dt in cases]
    for model, (_, dt) in zip(models, cases):
        model.fit(data[dt])  # warm-up: page faults, BLAS, lazy imports
    print(os.path.dirname(os.path.dirname(fastem.__file__)), flush=True)
    for line in sys.stdin:
        i = int(line)
        stamps.clear()
        models[i].fit(data[cases[i][1]])
        print(*(1000 * np.diff(stamps)), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memmap", metavar="DIR", default=None,
                        help="time issue 18's 5e6 x 8, K = 8 memory-mapped case, files in DIR")
    parser.add_argument("--shape", default="1000000,16,16", help="N,D,K of the in-memory cases")
    parser.add_argument("--cases", default=",".join(f"{t}:{dt}" for t, dt in CASES),
                        help="covariance:dtype pairs of the in-memory cases")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    cases = MEMMAP_CASES if args.memmap else [tuple(c.split(":")) for c in args.cases.split(",")]
    if args.worker:
        return (memmap_worker(args.threads, args.memmap) if args.memmap
                else worker(args.threads, shape, cases))
    if args.memmap:  # written once, before either worker reads them
        sys.path.insert(0, HERE)
        for dt in ("float32", "float64"):
            memmap_path(args.memmap, dt)
    trees = {"old": os.path.abspath(args.old), "new": os.path.abspath(args.new)}
    procs = {}
    for name, tree in trees.items():
        procs[name] = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), args.old, args.new, "--worker",
             "--threads", str(args.threads), "--shape", args.shape, "--cases", args.cases]
            + (["--memmap", os.path.abspath(args.memmap)] if args.memmap else []),
            env=dict(os.environ, PYTHONPATH=tree), cwd="/", stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True)
        root = procs[name].stdout.readline().strip()
        assert root == tree, (root, tree)  # the tree's own fastem was imported
    times = {name: {case: [] for case in cases} for name in trees}
    for r in range(args.reps):
        for i, case in enumerate(cases):
            for name in (("old", "new") if (r + i) % 2 == 0 else ("new", "old")):
                procs[name].stdin.write(f"{i}\n")
                procs[name].stdin.flush()
                times[name][case].extend(map(float, procs[name].stdout.readline().split()))
    for proc in procs.values():
        proc.stdin.close()
        proc.wait()
    print(f"ms per EM iteration, {args.threads} threads, {args.reps} fits each, taking turns "
          f"(min / median); old = {trees['old']}, new = {trees['new']}; load average "
          f"{os.getloadavg()[0]:.1f} (1 min) at the end")
    print("| case | old min | new min | new/old (min) | old median | new median |")
    print("|---|---|---|---|---|---|")
    for case in cases:
        old, new = np.array(times["old"][case]), np.array(times["new"][case])
        print(f"| {' '.join(case)} | {old.min():.1f} | {new.min():.1f} | "
              f"{new.min() / old.min():.3f} | {np.median(old):.1f} | {np.median(new):.1f} |")


if __name__ == "__main__":
    main()
