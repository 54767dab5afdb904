"""EM iteration times of full and tied mixtures whose components are too far apart for the
exponential-family form in float32 (issue 18): tight clusters, ``make_data``'s layout with
standard deviations ``--spread`` times smaller (default 10: about 330 standard deviations
between centres), float32 against the same values in float64.

Prints per case the kernel kind that float32 data get at the fitted parameters (13, 14: centred
per component in float32; 4, 5 with float64: the exponential-family form on converted blocks),
and ms per iteration = (fit of ``--iters`` - fit of 1) / (``--iters`` - 1), wall and process CPU
time, the smaller of ``--reps`` repetitions. Run it with each tree on PYTHONPATH in turn to
compare builds:

    PYTHONPATH=OLD_TREE python benchmarks/float32_fallback.py; PYTHONPATH=NEW_TREE python ...
"""
import argparse
import time
import warnings

import numpy as np

import fastem
from fastem import GaussianMixture, kernels


def tight_data(n, d, k, spread, seed=0):
    """make_data's centres (uniform in [-10, 10]^d) with standard deviations in
    [0.5, 1.5] / spread, float64."""
    rng = np.random.RandomState(seed)
    centres = rng.uniform(-10.0, 10.0, size=(k, d))
    scales = rng.uniform(0.5, 1.5, size=(k, d)) / spread
    labels = rng.randint(k, size=n)
    return centres[labels] + scales[labels] * rng.standard_normal((n, d)), centres, scales


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=float, default=1e6)
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--n-components", type=int, default=16)
    parser.add_argument("--spread", type=float, default=10.0)
    parser.add_argument("--iters", type=int, default=4)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    k = args.n_components
    X64, centres, scales = tight_data(int(args.n_samples), args.n_features, k, args.spread)
    data = {"float32": X64.astype(np.float32)}
    data["float64"] = data["float32"].astype(np.float64)  # the same values
    print(f"fastem from {fastem.__file__}; {args.threads} threads")
    for t in ("full", "tied"):
        cov = np.stack([np.diag(s**2) for s in scales])
        init = dict(weights_init=np.full(k, 1.0 / k), means_init=centres,
                    precisions_init=np.linalg.inv(cov if t == "full" else cov.mean(axis=0)))
        for dt, X in data.items():
            def fit(m):
                wall, cpu = time.perf_counter(), time.process_time()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = GaussianMixture(k, covariance_type=t, tol=0, max_iter=m,
                                            n_threads=args.threads, **init).fit(X)
                return time.perf_counter() - wall, time.process_time() - cpu, model

            fit(1)  # warm-up
            best = (np.inf, np.inf)
            for _ in range(args.reps):
                one, many = fit(1), fit(args.iters)
                per = [(b - a) / (args.iters - 1) * 1000 for a, b in zip(one[:2], many[:2])]
                best = (min(best[0], per[0]), min(best[1], per[1]))
            model = many[2]
            packed = kernels.pack_gaussian(model.weights_, model.means_,
                                           model.precisions_cholesky_, t, X.dtype)
            print(f"{t} {dt}: kind {packed.kind} in {packed.dtype}, ms/iter wall {best[0]:.1f} "
                  f"cpu {best[1]:.1f}, lower bound {model.lower_bound_:.8f}")


if __name__ == "__main__":
    main()
