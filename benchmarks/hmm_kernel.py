"""Process CPU time per row of the forward-backward kernel alone (issue 13's "many" case).

    PYTHONPATH=$PWD python benchmarks/hmm_kernel.py [--reps 7] [--threads 1]

Emission log-densities of hmm_vs_hmmlearn.py's "many" data (a block of 64 sequences of 1000
rows, D = K = 8, the driver's block size) are computed once; each round copies them into the
kernel's frame (the kernel overwrites it) and runs ``forward_backward`` on it. CPU time is that
of the process (all threads), so it measures work rather than the machine's load; the copy's
CPU time, measured alike, is subtracted. ``--once`` runs the kernel once, for
``valgrind --tool=callgrind`` (whose instruction counts do not depend on the load).
"""
import argparse
import time

import numpy as np
from hmm_vs_hmmlearn import make_case

from fastem._kernels import forward_backward as fb


def block(n_seq, length):
    """(log-densities (n, K), bounds, startprob, transmat) of the "many" case's first rows."""
    X, lengths, init = make_case(n_seq, length, 8, 8)
    means, var = init["means_"], init["covars_"]  # diag Gaussian log-densities
    logp = -0.5 * (np.log(2 * np.pi * var).sum(axis=1)
                   + (((X[:, None, :] - means) ** 2) / var).sum(axis=2))
    transmat = np.full((8, 8), 0.02) + np.eye(8) * 0.84  # sticky, as a fit would make it
    bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.intp)
    return logp, bounds, init["startprob_"], transmat


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sequences", type=int, default=64)
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--once", action="store_true")
    args = parser.parse_args()
    logp, bounds, startprob, transmat = block(args.sequences, args.length)
    n, k = logp.shape
    n_seq, threads = bounds.size - 1, args.threads
    frame, gamma, scale = np.empty_like(logp), np.empty_like(logp), np.empty(n)
    work, slots = np.empty((threads, fb.workspace_size(k))), np.empty((n_seq, 1 + k + k * k))

    def run():
        np.copyto(frame, logp)
        fb.forward_backward(frame, bounds, startprob, transmat, threads, gamma, scale, work,
                            slots, np.zeros(1 + k + k * k), np.empty(0))

    if args.once:
        run()
        return
    kernel, copy = [], []
    for _ in range(args.reps):
        tic = time.process_time()
        run()
        kernel.append(time.process_time() - tic)
        tic = time.process_time()
        np.copyto(frame, logp)
        copy.append(time.process_time() - tic)
    ns = (min(kernel) - min(copy)) / n * 1e9
    print(f"forward_backward, {n_seq} x {args.length} rows, K = {k}, {threads} thread(s): "
          f"{ns:.1f} ns of CPU per row (minimum of {args.reps}; copy {min(copy) / n * 1e9:.1f} "
          "ns per row subtracted)")


if __name__ == "__main__":
    main()
