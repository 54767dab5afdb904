"""Passes and wall time of batch, incremental and stepwise EM to reach batch EM's optimum.

    python benchmarks/online.py --n-samples 1000000 --covariance-type diag
    python benchmarks/online.py --n-samples 20000000 --covariance-type full   # issue 14's size

Data: a float32 memory-mapped ``.npy`` of a random mixture (``fastem.demo.write_mixture``, as
``out_of_core.py``), written once and kept. Every method starts from the same parameters
(``bench_gaussian.initial_parameters``). Batch EM runs to ``tol`` 1e-6; its final mean
log-likelihood is the target L*. A method "arrives" at the first pass after which its
parameters' mean log-likelihood over the whole file is within 1e-3 nats of L*; batch EM's
parameters after j M-steps have the log-likelihood its pass j + 1 reports, online parameters are
scored after each pass (outside the timed fit, with the same streamed pass). Printed: passes
and fit wall time up to arrival for each method, the final log-likelihood of each, and the
schedule.
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.bench_gaussian import initial_parameters  # noqa: E402

from fastem import GaussianMixture  # noqa: E402
from fastem.demo import write_mixture  # noqa: E402

GAP = 1e-3  # nats per row


def run(X, start, args, **options):
    """Fit with ``options``; returns (model, [(seconds since the start, params copy)] per pass)."""
    stamps = []

    def record(model):
        stamps.append((time.perf_counter(), model.weights_.copy(), model.means_.copy(),
                       model.precisions_.copy()))

    model = GaussianMixture(args.n_components, covariance_type=args.covariance_type,
                            n_threads=args.threads, callback=record, **start, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tic = time.perf_counter()
        model.fit(X)
    return model, [(t - tic, w, m, p) for t, w, m, p in stamps]


def score(X, args, weights, means, precisions):
    model = GaussianMixture(args.n_components, covariance_type=args.covariance_type,
                            n_threads=args.threads, weights_init=weights, means_init=means,
                            precisions_init=precisions, max_iter=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X[:2 * args.n_components]).score(X)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--n-components", type=int, default=16)
    parser.add_argument("--covariance-type", default="diag")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=20_000)
    parser.add_argument("--learning-offset", type=float, default=10.0)
    parser.add_argument("--learning-decay", type=float, default=0.7)
    parser.add_argument("--max-passes", type=int, default=20)
    parser.add_argument("--path", default=None)
    args = parser.parse_args()
    path = args.path or f"/work/fastem-online-{args.n_samples}x{args.n_features}-float32.npy"
    if not os.path.exists(path):
        write_mixture(path, args.n_samples, args.n_features, args.n_components,
                      np.dtype(np.float32), np.random.default_rng(0))
    X = np.load(path, mmap_mode="r")
    start = initial_parameters(X, args.n_components, args.covariance_type)
    print(f"{path}: N={args.n_samples}, D={args.n_features}, K={args.n_components}, "
          f"{args.covariance_type}, float32 memmap, {args.threads} threads")

    batch, stamps = run(X, start, args, tol=1e-6, max_iter=5000)
    target = batch.lower_bound_
    # params after j M-steps (stamp j - 1) have the log-likelihood reported by pass j + 1
    bounds = batch.lower_bounds_
    arrive = next(j for j in range(1, len(bounds)) if bounds[j] >= target - GAP)
    print(f"batch: mean log-likelihood after each pass "
          f"{', '.join(f'{b:.4f}' for b in bounds[1:arrive + 1])} ... {target:.6f}")
    rows = [("batch", arrive, stamps[arrive - 1][0], target, batch.n_iter_, "tol 1e-6")]
    schedule = (f"batch_size {args.batch_size}, tau {args.learning_offset:g}, "
                f"kappa {args.learning_decay:g}")
    for algorithm in ("incremental", "stepwise"):
        model, stamps = run(X, start, args, tol=0, max_iter=args.max_passes,
                            algorithm=algorithm, batch_size=args.batch_size,
                            learning_offset=args.learning_offset,
                            learning_decay=args.learning_decay, random_state=0)
        scores = [score(X, args, *params) for _, *params in stamps]
        arrive = next((j for j, s in enumerate(scores, 1) if s >= target - GAP), None)
        print(f"{algorithm}: mean log-likelihood after each pass "
              f"{', '.join(f'{s:.4f}' for s in scores)}")
        rows.append((algorithm, arrive, None if arrive is None else stamps[arrive - 1][0],
                     max(scores), model.n_iter_,
                     schedule + (f"; {model.stats_nbytes_ / 2**20:.1f} MiB of block statistics"
                                 if algorithm == "incremental" else "")))
    print(f"| method | passes to L* - {GAP:g} | wall time (s) | best mean log-likelihood "
          "| passes run | schedule |")
    print("|---|---|---|---|---|---|")
    for name, passes, seconds, ll, run_passes, note in rows:
        wall = "-" if seconds is None else f"{seconds:.1f}"
        print(f"| {name} | {passes if passes else '-'} | {wall} | {ll:.6f} | {run_passes} "
              f"| {note} |")


if __name__ == "__main__":
    main()
