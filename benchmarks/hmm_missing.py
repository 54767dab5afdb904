"""HMM EM iteration time with missing entries (nan_policy="marginalize") against complete data.

GaussianHMM, ``--n`` rows in sequences of 1000, D = K = 8, float64; the missing data are the
same rows with a ``--fraction`` of entries NaN completely at random. Per covariance type the
complete fit (nan_policy="raise") and the marginal fit take turns, from the same given
parameters (init_params=""); each fit's ``monitor_`` notes the process CPU time (all threads) at
its reports, ITERATIONS EM iterations apart. Prints the minimum and median per case
and marginal/complete of the minima. The forward-backward is the same for both; only the
emission kernels differ (benchmarks/missing.py says how they treat missing entries).

    python benchmarks/hmm_missing.py [--reps 5] [--threads 1] [--fraction 0.1] [--n 200000]
"""
import argparse
import os
import time
import warnings

import numpy as np

from fastem import hmm

ITERATIONS = 3
K, D = 8, 8


def sticky(n, seed=0):
    rng = np.random.default_rng(seed)
    z = np.zeros(n, dtype=int)
    switch = rng.random(n) < 0.05
    for t in range(1, n):
        z[t] = rng.integers(K) if switch[t] else z[t - 1]
    return rng.normal(scale=3.0, size=(K, D))[z] + rng.normal(size=(n, D))


class Stamped(hmm.ConvergenceMonitor):
    """hmmlearn's monitor, noting the process CPU time (all threads; steadier than wall time
    under load) of each report: consecutive reports are one EM iteration apart."""

    def __init__(self, *args):
        super().__init__(*args)
        self.stamps = []

    def report(self, value):
        self.stamps.append(time.process_time())
        super().report(value)


def model(covariance_type, n_iter, policy, threads):
    rng = np.random.default_rng(1)
    m = hmm.GaussianHMM(K, covariance_type=covariance_type, n_iter=n_iter, tol=-np.inf,
                        init_params="", nan_policy=policy, n_threads=threads)
    m.startprob_ = np.full(K, 1.0 / K)
    m.transmat_ = np.full((K, K), 0.05 / (K - 1)) + (0.95 - 0.05 / (K - 1)) * np.eye(K)
    m.means_ = rng.normal(scale=3.0, size=(K, D))
    m.covars_ = {"diag": np.ones((K, D)), "full": np.repeat(np.eye(D)[None], K, axis=0)}[
        covariance_type]
    return m


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--covariance", nargs="+", default=["diag", "full"])
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    complete = sticky(args.n)
    missing = complete.copy()
    missing[np.random.default_rng(2).random(missing.shape) < args.fraction] = np.nan
    lengths = [1000] * (args.n // 1000)
    data = {"complete": (complete, "raise"), "missing": (missing, "marginalize")}
    times = {}

    def iteration_times(t, name):
        X, policy = data[name]
        m = model(t, 1 + ITERATIONS, policy, args.threads)
        m.monitor_ = Stamped(m.tol, m.n_iter, False)
        m.fit(X, lengths)
        return 1000 * np.diff(m.monitor_.stamps)

    for t in args.covariance:
        for name in data:
            iteration_times(t, name)  # warm-up
    for r in range(args.reps):
        for t in args.covariance:
            for name in (("complete", "missing") if r % 2 == 0 else ("missing", "complete")):
                times.setdefault((t, name), []).extend(iteration_times(t, name))
    print(f"CPU ms per EM iteration, GaussianHMM, N = {args.n} in sequences of 1000, D = K = 8, "
          f"float64, {args.threads} threads, {args.fraction:.0%} missing, {args.reps} reps "
          f"taking turns; load average {os.getloadavg()[0]:.2f}")
    print("| covariance | complete min | missing min | missing/complete (min) | complete median "
          "| missing median |")
    print("|---|---|---|---|---|---|")
    for t in args.covariance:
        full, part = (np.array(times[t, name]) for name in ("complete", "missing"))
        print(f"| {t} | {full.min():.1f} | {part.min():.1f} | {part.min() / full.min():.2f} | "
              f"{np.median(full):.1f} | {np.median(part):.1f} |")


if __name__ == "__main__":
    main()
