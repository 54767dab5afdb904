"""Thread scaling and covariance-type ratios, robust to a noisy machine: every case is timed in
turn, in one process, for several rounds, and medians are compared.

N = 1e6, D = 16, K = 16 (``make_data``), from the same given parameters, tol=0; prints per
dtype the ms/iteration of diag, spherical, full and tied on 1 and 2 threads, 2-vs-1-thread
scaling, and the spherical/diag and tied/full ratios (2 threads). An iteration's time is the
difference of a (1 + iters)-iteration fit and a 1-iteration fit, divided by iters: a fit's
fixed costs (its serial check of the data for NaN, ~30 ms here) would otherwise be counted
as per-iteration time and understate the scaling.

    python benchmarks/interleaved.py [--rounds 7] [--iters 3]
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmarks.bench_gaussian import initial_parameters, make_data  # noqa: E402

from fastem import GaussianMixture  # noqa: E402

TYPES = ("diag", "spherical", "full", "tied")
DTYPES = ("float64", "float32")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    data = {dt: make_data(1_000_000, 16, 16, dt) for dt in DTYPES}
    cases = [(t, dt, th) for dt in DTYPES for t in TYPES for th in (1, 2)]
    inits = {(t, dt): initial_parameters(data[dt], 16, t) for t, dt, _ in cases}

    def fit_seconds(t, dt, th, max_iter):
        model = GaussianMixture(16, covariance_type=t, tol=0, max_iter=max_iter, n_threads=th,
                                **inits[(t, dt)])
        tic = time.perf_counter()
        model.fit(data[dt])
        return time.perf_counter() - tic

    def seconds_per_iter(t, dt, th, iters):
        """ms per EM iteration: a fit of 1 + iters iterations minus one of 1, so that the
        per-fit costs (input checks, a serial pass over the data) are not counted."""
        base = fit_seconds(t, dt, th, 1)
        return (fit_seconds(t, dt, th, 1 + iters) - base) / iters * 1000

    for case in cases:  # warm-up: kernel imports, page faults
        fit_seconds(*case, max_iter=1)
    times = {case: [] for case in cases}
    for _ in range(args.rounds):
        for case in cases:
            times[case].append(seconds_per_iter(*case, iters=args.iters))
    med = {case: float(np.median(v)) for case, v in times.items()}
    for dt in DTYPES:
        for t in TYPES:
            one, two = med[(t, dt, 1)], med[(t, dt, 2)]
            print(f"{dt} {t:9s} 1 thread {one:7.1f}  2 threads {two:7.1f} ms/iter  "
                  f"scaling {one / two:.2f}x")
        print(f"{dt} spherical/diag {med[('spherical', dt, 2)] / med[('diag', dt, 2)]:.2f}, "
              f"tied/full {med[('tied', dt, 2)] / med[('full', dt, 2)]:.2f} (2 threads)")


if __name__ == "__main__":
    main()
