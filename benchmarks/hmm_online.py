"""Passes of batch, incremental and stepwise EM for a GaussianHMM to reach batch EM's optimum.

    python benchmarks/hmm_online.py --sequences 400 --length 250 --batch-size 5000

Data: sequences drawn from a known diag GaussianHMM (K = 4, D = 4, means ``separation`` along
each axis, variances 0.8, sticky transitions). Every method starts from the same parameters (the true chain made uniform, means
shifted by one unit, unit variances). Batch EM runs to ``tol`` 1e-6 per row; its final mean
log-likelihood per row is the target L*. A method "arrives" at the first pass after which its
parameters' mean log-likelihood is within 1e-3 nats per row of L*; the parameters after j
passes are those of a fit with ``n_iter=j`` (fits are deterministic: stepwise's block order is
drawn from ``random_state``). Also printed: the CPU time of one ``partial_fit`` on a block
against one batch EM iteration over the same rows (the per-update overhead).
"""
import argparse
import copy
import time
import warnings

import numpy as np

from fastem import hmm
from fastem._config import single_threaded_blas

GAP = 1e-3  # nats per row


def truth(k, d, separation):
    model = hmm.GaussianHMM(k, "diag", init_params="")
    model.startprob_ = np.full(k, 1.0 / k)
    model.transmat_ = np.full((k, k), 0.1 / (k - 1)) + np.eye(k) * (0.9 - 0.1 / (k - 1))
    model.means_ = separation * np.eye(k, d)
    model.covars_ = np.full((k, d), 0.8)
    model.n_features = d
    return model


def start(model, args):
    """The common start: uniform chain, means one unit off, unit variances."""
    k, d = model.means_.shape
    fresh = hmm.GaussianHMM(k, "diag", init_params="", random_state=0, n_threads=args.threads,
                            tol=1e-6, n_iter=args.max_passes)
    fresh.startprob_ = np.full(k, 1.0 / k)
    fresh.transmat_ = np.full((k, k), 1.0 / k)
    fresh.means_ = model.means_ + np.random.default_rng(0).normal(0, 1.0, model.means_.shape)
    fresh.covars_ = np.ones((k, d))
    return fresh


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=400)
    parser.add_argument("--length", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--max-passes", type=int, default=15)
    parser.add_argument("--separation", type=float, default=1.5,
                        help="distance of the states' means from the origin")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    source = truth(4, 4, args.separation)
    rng = np.random.default_rng(1)
    with single_threaded_blas():
        X = np.concatenate([source.sample(args.length, random_state=rng.integers(2**31))[0]
                            for _ in range(args.sequences)])
    lengths = [args.length] * args.sequences
    n = len(X)
    first = start(source, args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = copy.deepcopy(first).set_params(n_iter=1000, tol=1e-6 * n).fit(X, lengths)
    best = batch.score(X, lengths) / n
    history = np.asarray(batch.monitor_.history) / n  # pass j scores the parameters after j - 1
    arrived = np.flatnonzero(history >= best - GAP)
    print(f"N = {n} rows ({args.sequences} sequences of {args.length}), K = D = 4 diag, "
          f"{args.threads} threads")
    print(f"batch       : L* = {best:.6f} after {batch.monitor_.iter} passes; within {GAP} "
          f"after {int(arrived[0]) if arrived.size else 'never'} passes")
    for algorithm in ("incremental", "stepwise"):
        scores = []
        for passes in range(1, args.max_passes + 1):
            model = copy.deepcopy(first).set_params(n_iter=passes, tol=-np.inf)
            model.fit(X, lengths, algorithm=algorithm, batch_size=args.batch_size)
            scores.append(model.score(X, lengths) / n)
            if scores[-1] >= best - GAP:
                break
        reached = f"within {GAP} after" if scores[-1] >= best - GAP else f"not within {GAP} in"
        print(f"{algorithm:12s}: {reached} {len(scores)} passes (last {scores[-1]:.6f}); "
              f"blocks of <= {args.batch_size} rows, tau 10, kappa 0.7")
    block, block_lengths = X[:args.batch_size], lengths[:args.batch_size // args.length]
    model = copy.deepcopy(first).partial_fit(block, block_lengths)
    reps = 20
    tic = time.process_time()
    for _ in range(reps):
        model.partial_fit(block, block_lengths)
    update = (time.process_time() - tic) / reps
    iteration = copy.deepcopy(batch).set_params(n_iter=1, tol=-np.inf)
    tic = time.process_time()
    for _ in range(reps):
        iteration.fit(block, block_lengths)
    one = (time.process_time() - tic) / reps
    print(f"CPU per partial_fit of {len(block)} rows: {1e3 * update:.2f} ms; one batch EM "
          f"iteration over them (fit, n_iter=1): {1e3 * one:.2f} ms")


if __name__ == "__main__":
    main()
