"""HMM EM iteration times of two or more source trees (builds of fastem), taking turns.

One long-lived process per tree holds issue 13's data (``bench_hmm.make_case``: "many" = 1000
sequences of 1000 rows, "long" = one sequence of 1e6 rows, D = K = 8, diag, float64) and, on
request, times one EM iteration of ``fastem.hmm.GaussianHMM`` from the same given parameters as
hmm_vs_hmmlearn.py does: (fit of m + 1 iterations - fit of 1) / m, wall and process CPU time.
The processes take turns, each on 1 and then 2 threads, ``--reps`` rounds, so that the load of
a shared machine reaches every tree alike; per tree it prints the minimum and median seconds,
the second thread's speed-up, and the CPU ns per row on 1 and 2 threads (work factor).

    python benchmarks/hmm_ab_trees.py OLD_TREE NEW_TREE [--case many] [--reps 6]

A tree is a directory holding ``fastem/`` with its compiled kernels; ``TREE:NAME=VALUE`` runs
that tree with an environment variable set (e.g. ``GOMP_SPINCOUNT=0``). The data and the
benchmark code come from this file's tree.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def worker(case):
    """Answer each thread count read from stdin with 'wall cpu' seconds per iteration."""
    sys.path.insert(0, HERE)
    from benchmarks.bench_hmm import CASES, fit_hmm, make_case

    from fastem import hmm

    n_seq, length, d, k, iters = CASES[case]
    X, lengths, init = make_case(n_seq, length, d, k)

    def seconds(n_iter, n_threads):
        tic, cpu = time.perf_counter(), time.process_time()
        fit_hmm(hmm, X, lengths, init, n_iter, n_threads=n_threads)
        return np.array([time.perf_counter() - tic, time.process_time() - cpu])

    seconds(1, 2)  # warm-up
    print("ready", flush=True)
    for line in sys.stdin:
        n_threads = int(line)
        wall, cpu = (seconds(iters + 1, n_threads) - seconds(1, n_threads)) / iters
        print(wall, cpu, flush=True)


def start(tree, case):
    """The worker process of ``tree`` (``DIR[:NAME=VALUE...]``)."""
    folder, *settings = tree.split(":")
    env = dict(os.environ, PYTHONPATH=folder)
    env.update(setting.split("=", 1) for setting in settings)
    process = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", case],
                               cwd=HERE, env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    process.stdout.readline()
    return process


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*")
    parser.add_argument("--case", default="many", choices=["many", "long"])
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker)
    processes = [start(tree, args.case) for tree in args.trees]
    times = {(i, n): [] for i in range(len(processes)) for n in (1, 2)}
    for _ in range(args.reps):
        for i, process in enumerate(processes):
            for n_threads in (1, 2):
                process.stdin.write(f"{n_threads}\n")
                process.stdin.flush()
                times[i, n_threads].append([float(v) for v in process.stdout.readline().split()])
    rows = 1e6  # both cases
    print(f"{args.case}: ms per EM iteration, min / median of {args.reps}")
    print("| tree | 1 thread | 2 threads | 1 / 2 threads (min) | CPU ns per row 1 / 2 "
          "(work factor) |")
    print("|---|---|---|---|---|")
    for i, tree in enumerate(args.trees):
        one, two = np.array(times[i, 1]), np.array(times[i, 2])
        print(f"| {tree} | {one[:, 0].min() * 1e3:.1f} / {np.median(one[:, 0]) * 1e3:.1f} "
              f"| {two[:, 0].min() * 1e3:.1f} / {np.median(two[:, 0]) * 1e3:.1f} "
              f"| {one[:, 0].min() / two[:, 0].min():.2f}x "
              f"| {one[:, 1].min() / rows * 1e9:.0f} / {two[:, 1].min() / rows * 1e9:.0f} "
              f"({two[:, 1].min() / one[:, 1].min():.2f}) |")
    for process in processes:
        process.stdin.close()
        process.wait()


if __name__ == "__main__":
    main()
