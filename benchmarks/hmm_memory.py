"""Peak memory of a GaussianHMM on one long sequence streamed from a .npy file (issue 13).

    python benchmarks/hmm_memory.py --n-samples 20000000 --n-iter 3

One float32 sequence of n rows, D = 8, from a sticky K = 8 state chain with diag Gaussian
emissions, written once (in blocks; kept for reruns). The model starts from given parameters
(``init_params=""``: perturbed true means, unit variances, uniform chain) and runs ``--n-iter``
EM iterations, then ``predict`` (Viterbi) to a .npy file and to an in-memory array, and
``predict_proba`` to a .npy file. Memory is RssAnon (memory the process owns, sampled every
20 ms) and VmHWM (which also counts the mapped file's pages).
"""
import argparse
import os
import time

import numpy as np

from fastem import hmm
from fastem.demo import PeakMemory, read_status

D, K = 8, 8


def write_chain(path, n, rng, block=1 << 20):
    """Rows of a sticky chain (runs of mean length 100, each in a random state), block by
    block; returns the true means."""
    means = rng.uniform(-5, 5, (K, D))
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, D))
    state = 0
    for start in range(0, n, block):
        m = min(block, n - start)
        switch = rng.random(m) < 0.01
        draws = rng.integers(K, size=m)
        runs = np.cumsum(switch)
        states = np.where(runs == 0, state, draws[np.flatnonzero(switch)][np.maximum(runs - 1, 0)])
        out[start:start + m] = means[states] + rng.normal(size=(m, D))
        state = int(states[-1])
    out.flush()
    np.save(path + ".means.npy", means)


def measured(label, run):
    with PeakMemory() as memory:
        tic = time.perf_counter()
        result = run()
        seconds = time.perf_counter() - tic
    print(f"{label}: {seconds:.1f} s; peak RssAnon {memory.peak_anon_mb:.0f} MB "
          f"({memory.peak_anon_mb - memory.start_anon_mb:+.0f} MB over the start); "
          f"VmHWM {memory.peak_rss_mb:.0f} MB")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-samples", type=int, default=20_000_000)
    parser.add_argument("--n-iter", type=int, default=3)
    parser.add_argument("--n-threads", type=int, default=None)
    parser.add_argument("--path", default=None, help="data file (default: /work/hmm-<n>.npy)")
    args = parser.parse_args()
    path = args.path or f"/work/hmm-{args.n_samples}x{D}-float32.npy"
    if not os.path.exists(path):
        tic = time.perf_counter()
        write_chain(path, args.n_samples, np.random.default_rng(0))
        print(f"wrote {path} in {time.perf_counter() - tic:.0f} s")
    means = np.load(path + ".means.npy")
    print(f"data: {path}, {os.path.getsize(path) / 1e9:.2f} GB, one sequence; RssAnon before "
          f"the model {read_status('RssAnon'):.0f} MB")
    model = hmm.GaussianHMM(K, "diag", n_iter=args.n_iter, tol=-np.inf, init_params="",
                            n_threads=args.n_threads)
    model.startprob_ = np.full(K, 1.0 / K)
    model.transmat_ = np.full((K, K), 1.0 / K)
    model.means_ = means + np.random.default_rng(1).normal(scale=0.5, size=means.shape)
    model.covars_ = np.ones((K, D))
    measured(f"fit ({args.n_iter} iterations)", lambda: model.fit(path))
    print(f"log-likelihood history: {[round(float(v), 1) for v in model.monitor_.history]}")
    states_path = path[:-4] + "-states.npy"
    measured("predict(out=states.npy)", lambda: model.predict(path, out=states_path))
    measured("predict() into memory (T intp states: "
             f"{args.n_samples * 8 / 2**20:.0f} MB)", lambda: model.predict(path))
    proba_path = path[:-4] + "-proba.npy"
    measured("predict_proba(out=proba.npy)", lambda: model.predict_proba(path, out=proba_path))
    for p in (states_path, proba_path):
        os.unlink(p)


if __name__ == "__main__":
    main()
