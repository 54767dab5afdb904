"""Time per EM iteration of fastem.hmm's GMMHMM and MultinomialHMM against hmmlearn's.

Cases (fixed-seed data, 100 sequences of 1000 rows, K = 4 states):
  gmm:         GMMHMM, diag, n_mix = 3, D = 4, float64
  multinomial: MultinomialHMM, 10 symbols, 20 trials per row
Both start from the same parameters (``init_params=""``, ``tol=-inf``); the time per
iteration is the median time between successive reports to ``monitor_`` (a subclass of
hmmlearn's ConvergenceMonitor that both libraries call once per iteration), the minimum of
``--reps`` fits, the libraries taking turns. hmmlearn runs with ``implementation="scaling"``.

    python benchmarks/hmm_emissions_vs_hmmlearn.py [--reps 2] [--threads 2]
"""
import argparse
import logging
import time

import numpy as np

K, N_SEQ, LENGTH, ITERS = 4, 100, 1000, 4


def gmm_case(rng):
    m, d = 3, 4
    z = np.repeat(rng.integers(0, K, N_SEQ * LENGTH // 50), 50)
    centres = rng.uniform(-5, 5, (K, m, d))
    X = centres[z, rng.integers(0, m, z.size)] + rng.normal(size=(z.size, d))
    start = dict(weights_=np.full((K, m), 1.0 / m), means_=centres + rng.normal(size=centres.shape),
                 covars_=np.ones((K, m, d)))
    return "GMMHMM", dict(n_mix=m, covariance_type="diag"), start, X


def multinomial_case(rng):
    p = rng.dirichlet(np.ones(10), size=K)
    z = np.repeat(rng.integers(0, K, N_SEQ * LENGTH // 50), 50)
    X = np.vstack([rng.multinomial(20, p[s]) for s in z])
    return "MultinomialHMM", dict(n_trials=20), dict(emissionprob_=rng.dirichlet(np.ones(10),
                                                                               size=K)), X


def iteration_seconds(module, cls, kwargs, start, X, extra):
    """Seconds between successive reports to the monitor: one EM iteration each (hmmlearn's
    GMMHMM runs k-means in every fit, whatever init_params, so whole fits time its init)."""
    from hmmlearn.base import ConvergenceMonitor

    class TimingMonitor(ConvergenceMonitor):
        def report(self, log_prob):
            self.times.append(time.perf_counter())
            super().report(log_prob)

    model = getattr(module, cls)(K, init_params="", n_iter=ITERS + 1, tol=-np.inf, **kwargs,
                                 **extra)
    model.startprob_, model.transmat_ = np.full(K, 1.0 / K), np.full((K, K), 1.0 / K)
    for name, value in start.items():
        setattr(model, name, value)
    model.monitor_ = TimingMonitor(model.tol, model.n_iter, False)
    model.monitor_.times = []
    model.fit(X, np.full(N_SEQ, LENGTH))
    return float(np.median(np.diff(model.monitor_.times)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.getLogger("hmmlearn").setLevel(logging.ERROR)
    from hmmlearn import hmm as reference

    from fastem import hmm

    for case in (gmm_case, multinomial_case):
        cls, kwargs, start, X = case(np.random.default_rng(0))
        runs = {"hmmlearn": (reference, {"implementation": "scaling"}),
                "fastem": (hmm, {"n_threads": args.threads})}
        best = {name: np.inf for name in runs}
        for _ in range(args.reps):
            for name, (module, extra) in runs.items():
                best[name] = min(best[name], iteration_seconds(module, cls, kwargs, start, X,
                                                               extra))
        print(f"{cls:<16} hmmlearn {best['hmmlearn'] * 1e3:8.1f} ms/iter   fastem "
              f"({args.threads} threads) {best['fastem'] * 1e3:7.1f} ms/iter   "
              f"{best['hmmlearn'] / best['fastem']:5.1f}x")


if __name__ == "__main__":
    main()
