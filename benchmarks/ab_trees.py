"""E-step times of two source trees (two builds of fastem), taking turns pass by pass.

One long-lived process per tree holds the data (N = 1e6, D = 16, K = 16, ``make_data``) and,
per case (diag and full, float64 and float32), the packed parameters after two EM iterations
from the same given initial parameters; the two processes then take turns, one E-step pass
(``LocalDriver.accumulate``: log-densities, posteriors and statistics of every row, i.e. an EM
iteration without its small M-step) on ``--threads`` threads at a time, so that the load of a
shared machine reaches both alike. Prints per case the minimum and the median over
``--reps`` passes and new/old of the minima: on a noisy machine the minimum is the least
disturbed run.

    python benchmarks/ab_trees.py OLD_TREE NEW_TREE [--reps 15] [--threads 2]

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


def worker(n_threads):
    """Answer each case index read from stdin with the ms of one E-step pass."""
    import warnings

    sys.path.insert(0, HERE)
    from benchmarks.bench_gaussian import initial_parameters, make_data
    from fastem.driver import LocalDriver

    import fastem
    from fastem import GaussianMixture
    from fastem.families.gaussian import GaussianFamily, GaussianParams

    warnings.simplefilter("ignore")
    data = {dt: make_data(1_000_000, 16, 16, dt) for dt in ("float64", "float32")}
    passes = []
    for t, dt in CASES:
        model = GaussianMixture(16, covariance_type=t, tol=0, max_iter=2, n_threads=n_threads,
                                **initial_parameters(data[dt], 16, t)).fit(data[dt])
        params = GaussianParams.from_covariances(t, model.weights_, model.means_,
                                                 model.covariances_)
        family, driver = GaussianFamily(t), LocalDriver(data[dt], n_threads=n_threads)
        packed = family.pack(params, np.dtype(dt))
        driver.accumulate(family, packed)  # warm-up: page faults, BLAS
        passes.append((family, driver, packed))
    print(os.path.dirname(os.path.dirname(fastem.__file__)),
          *[int(p.kind) for _, _, p in passes], flush=True)
    for line in sys.stdin:
        family, driver, packed = passes[int(line)]
        tic = time.perf_counter()
        driver.accumulate(family, packed)
        print((time.perf_counter() - tic) * 1000, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.threads)
    trees = {"old": os.path.abspath(args.old), "new": os.path.abspath(args.new)}
    procs, kinds = {}, {}
    for name, tree in trees.items():
        procs[name] = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), args.old, args.new, "--worker",
             "--threads", str(args.threads)],
            env=dict(os.environ, PYTHONPATH=tree), cwd="/", stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True)
        root, *kinds[name] = procs[name].stdout.readline().split()
        assert root == tree, (root, tree)  # the tree's own fastem was imported
    assert kinds["old"] == kinds["new"], kinds  # the same kernel kinds
    times = {name: {case: [] for case in CASES} for name in trees}
    for r in range(args.reps):
        for i, case in enumerate(CASES):
            for name in (("old", "new") if (r + i) % 2 == 0 else ("new", "old")):
                procs[name].stdin.write(f"{i}\n")
                procs[name].stdin.flush()
                times[name][case].append(float(procs[name].stdout.readline()))
    for proc in procs.values():
        proc.stdin.close()
        proc.wait()
    print(f"ms per E-step pass, {args.threads} threads, {args.reps} passes each, taking turns "
          f"(min / median); old = {trees['old']}, new = {trees['new']}")
    print("| case | old min | new min | new/old (min) | old median | new median |")
    print("|---|---|---|---|---|---|")
    for case in CASES:
        old, new = np.array(times["old"][case]), np.array(times["new"][case])
        print(f"| {' '.join(case)} | {old.min():.1f} | {new.min():.1f} | "
              f"{new.min() / old.min():.3f} | {np.median(old):.1f} | {np.median(new):.1f} |")


if __name__ == "__main__":
    main()
