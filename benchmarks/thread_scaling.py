"""Thread scaling of one EM pass, robust to a noisy machine: 1-thread and 2-thread passes
alternate, many times, over the same data and parameters, and the medians are compared.

A pass is ``fastem.kernels.gaussian_e_step`` (the fused E-step and statistics that every EM
iteration runs; the M-step is a few small NumPy operations) at the parameters reached after 3
EM iterations from the benchmark's starting point. Timing passes rather than whole fits leaves
out a fit's fixed costs (its serial NaN check), and alternating them pass by pass exposes both
thread counts to the same drift. N = 1e6, D = 16, K = 16 (``make_data``).

Besides wall-clock medians, it reports the minima (noise only ever adds time) and the process's
CPU time, which splits the scaling into two factors: scaling = busy x work, with busy = CPU time
/ wall time of a 2-thread pass (2.0 when both threads compute all the time; less for the serial
parts of a pass, load imbalance, or a thread waiting for the host) and work = 1-thread CPU time
/ 2-thread CPU time (1.0 when two threads do no more work than one; less when they contend for
caches and memory bandwidth).

    python benchmarks/thread_scaling.py [--pairs 30] [--covariance-types full,diag] [--dtypes float64,float32]
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmarks.bench_gaussian import initial_parameters, make_data  # noqa: E402

from fastem import GaussianMixture, kernels  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--covariance-types", default="full,diag")
    parser.add_argument("--dtypes", default="float64,float32")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    for dtype in args.dtypes.split(","):
        X = make_data(1_000_000, 16, 16, dtype)
        for covariance_type in args.covariance_types.split(","):
            model = GaussianMixture(16, covariance_type=covariance_type, tol=0, max_iter=3,
                                    **initial_parameters(X, 16, covariance_type)).fit(X)
            params = (X, model.weights_, model.means_, model.precisions_cholesky_,
                      covariance_type)

            def pass_ms(n_threads):
                """Wall-clock and process CPU milliseconds of one pass."""
                wall, cpu = time.perf_counter(), time.process_time()
                kernels.gaussian_e_step(*params, n_threads=n_threads)
                return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000

            pass_ms(2)  # warm-up
            times = {1: [], 2: []}
            for _ in range(args.pairs):
                for n_threads in (1, 2):
                    times[n_threads].append(pass_ms(n_threads))
            (one, cpu_one), (two, cpu_two) = (np.median(times[t], axis=0) for t in (1, 2))
            walls = {t: np.array(times[t])[:, 0] for t in (1, 2)}
            ratios = walls[1] / walls[2]
            print(f"{covariance_type}, {dtype}: 1 thread {one:.1f} ms, 2 threads {two:.1f} ms "
                  f"(medians of {args.pairs}); scaling {one / two:.2f}x (of minima "
                  f"{walls[1].min() / walls[2].min():.2f}x); per-pair ratios: median "
                  f"{np.median(ratios):.2f}, quartiles {np.percentile(ratios, 25):.2f}-"
                  f"{np.percentile(ratios, 75):.2f}; busy {cpu_two / two:.2f} x work "
                  f"{cpu_one / cpu_two:.2f}")


if __name__ == "__main__":
    main()
