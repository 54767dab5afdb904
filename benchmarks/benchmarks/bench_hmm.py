"""asv benchmarks of ``fastem.hmm.GaussianHMM`` on issue 13's cases (diag Gaussian emissions,
float64, fixed-seed data from a sticky K-state chain):

  many:   1000 sequences of 1000 rows, D = K = 8
  long:   one sequence of 1e6 rows, D = K = 8
  small:  50 sequences of 100 rows, D = 1, K = 8 (the published HMM benchmarks' small case)

Fits start from given parameters (``init_params=""``) with ``tol=-inf``, so a fit of m
iterations is exactly m EM iterations. ``make_case`` is also used by
``benchmarks/hmm_vs_hmmlearn.py``, which times hmmlearn on the same data.
"""
import time
import warnings

import numpy as np

# (sequences, rows per sequence, D, K, timed iterations): more iterations where one is short
CASES = {"many": (1000, 1000, 8, 8, 2), "long": (1, 1_000_000, 8, 8, 6),
         "small": (50, 100, 1, 8, 40)}
N_THREADS = [1, 2]


def make_case(n_seq, length, d, k, seed=0):
    """Data of a sticky K-state chain with well separated diag Gaussian emissions, and the
    initial parameters both libraries start from (means: perturbed true means)."""
    rng = np.random.default_rng(seed)
    transmat = np.full((k, k), 0.1 / (k - 1)) + np.eye(k) * (0.9 - 0.1 / (k - 1))
    means = rng.uniform(-5, 5, (k, d))
    n = n_seq * length
    u = rng.random(n)
    cdf = np.cumsum(transmat, axis=1)
    states = np.empty(n, dtype=np.intp)
    state = 0
    for t in range(n):  # a fresh start at each sequence: state 0
        state = 0 if t % length == 0 else int((cdf[state] > u[t]).argmax())
        states[t] = state
    X = means[states] + rng.normal(size=(n, d))
    init = dict(startprob_=np.full(k, 1.0 / k), transmat_=np.full((k, k), 1.0 / k),
                means_=means + rng.normal(scale=0.5, size=means.shape), covars_=np.ones((k, d)))
    return X, np.full(n_seq, length), init


def fit_hmm(module, X, lengths, init, n_iter, **kwargs):
    """``module.GaussianHMM`` (fastem's or hmmlearn's) fitted for exactly ``n_iter`` iterations
    from ``init``."""
    model = module.GaussianHMM(init["means_"].shape[0], "diag", init_params="", n_iter=n_iter,
                               tol=-np.inf, **kwargs)
    for name, value in init.items():
        setattr(model, name, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, lengths)


class HMMFit:
    """ms per EM iteration, (fit of m + 1 iterations - fit of 1) / m, on 1 and 2 threads."""

    params = [list(CASES), N_THREADS]
    param_names = ["case", "n_threads"]
    timeout = 900
    number = 1
    repeat = (3, 5, 60.0)

    def setup_cache(self):
        return {name: make_case(*shape[:4]) for name, shape in CASES.items()}

    def setup(self, cases, case, n_threads):
        from fastem import hmm

        self.hmm = hmm
        self.X, self.lengths, self.init = cases[case]
        fit_hmm(hmm, self.X, self.lengths, self.init, 1, n_threads=n_threads)  # warm-up

    def track_ms_per_iteration(self, cases, case, n_threads):
        iters = CASES[case][4]
        seconds = []
        for n_iter in (1, iters + 1):
            tic = time.perf_counter()
            fit_hmm(self.hmm, self.X, self.lengths, self.init, n_iter, n_threads=n_threads)
            seconds.append(time.perf_counter() - tic)
        return 1000 * (seconds[1] - seconds[0]) / iters

    track_ms_per_iteration.unit = "ms"
