"""Time per EM iteration of fastem.hmm.GaussianHMM against hmmlearn's (issue 13's cases).

Cases (diag Gaussian emissions, float64, fixed-seed data from a K-state chain):
  many:   1000 sequences of 1000 rows, D = K = 8
  long:   one sequence of 1e6 rows, D = K = 8
  small:  50 sequences of 100 rows, D = 1, K = 8 (the published HMM benchmarks' small case)
Both libraries start from the same given parameters (``init_params=""``) with ``tol=-inf``, so
a fit of m iterations is exactly m EM iterations; the time per iteration is
(t(m + 1 iterations) - t(1 iteration)) / m, which leaves out the once-per-fit work
(argument checks, the finiteness pass). hmmlearn runs with ``implementation="scaling"``, its
fastest. The libraries take turns fit by fit, ``--reps`` times, and the minimum is reported;
fastem also runs on 1 thread, for the second thread's speed-up. A second table gives fastem's
process CPU time per row and iteration (all threads; on a loaded machine steadier than wall
time) and the work factor CPU(2 threads) / CPU(1 thread), which a second core turns into
speed only when it is free.

    python benchmarks/hmm_vs_hmmlearn.py [--reps 2] [--cases many,long,small]
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmarks.bench_hmm import CASES, fit_hmm, make_case  # noqa: E402


def fit_seconds(module, X, lengths, init, n_iter, **kwargs):
    tic, cpu = time.perf_counter(), time.process_time()
    fit_hmm(module, X, lengths, init, n_iter, **kwargs)
    return np.array([time.perf_counter() - tic, time.process_time() - cpu])


def per_iteration(module, X, lengths, init, iters, **kwargs):
    """(wall, process CPU) seconds per EM iteration."""
    return (fit_seconds(module, X, lengths, init, iters + 1, **kwargs)
            - fit_seconds(module, X, lengths, init, 1, **kwargs)) / iters


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--cases", default="many,long,small")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import hmmlearn
    from hmmlearn import hmm as reference

    from fastem import hmm

    print(f"hmmlearn {hmmlearn.__version__}; seconds per EM iteration, minimum of {args.reps}")
    print("| case | hmmlearn (scaling) | fastem 1 thread | fastem 2 threads | hmmlearn / fastem 1 "
          "| hmmlearn / fastem 2 | 1 / 2 threads |")
    print("|---|---|---|---|---|---|---|")
    cpu_rows = []
    for name in args.cases.split(","):
        n_seq, length, d, k, iters = CASES[name]
        X, lengths, init = make_case(n_seq, length, d, k)
        times = {"ref": [], "one": [], "two": []}
        for _ in range(args.reps):  # taking turns, so that load reaches all alike
            times["ref"].append(per_iteration(reference, X, lengths, init, iters,
                                              implementation="scaling"))
            times["one"].append(per_iteration(hmm, X, lengths, init, iters, n_threads=1))
            times["two"].append(per_iteration(hmm, X, lengths, init, iters, n_threads=2))
        ref, one, two = (min(t[0] for t in times[key]) for key in ("ref", "one", "two"))
        print(f"| {name}: {n_seq} x {length}, D={d}, K={k} | {ref:.4f} | {one:.4f} | {two:.4f} "
              f"| {ref / one:.1f}x | {ref / two:.1f}x | {one / two:.2f}x |", flush=True)
        cpu_one, cpu_two = (min(t[1] for t in times[key]) / X.shape[0] * 1e9
                            for key in ("one", "two"))
        cpu_rows.append(f"| {name} | {cpu_one:.0f} | {cpu_two:.0f} | {cpu_two / cpu_one:.2f} |")
    print("\n| case | fastem CPU ns per row, 1 thread | 2 threads | work factor 2 / 1 |")
    print("|---|---|---|---|")
    print("\n".join(cpu_rows))


if __name__ == "__main__":
    main()
