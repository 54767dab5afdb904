"""E-step times of the non-Gaussian families on float32 and float64 data (issue 18): one fused
pass (``fastem.kernels.family_e_step``) over N x D rows of a K-component mixture of independent
Bernoulli, Categorical (4 codes), Poisson or Exponential columns, at the true parameters.

Prints process CPU ms per pass (the smaller of ``--reps`` rounds of ``--passes`` passes, data
types taking turns) and the log-likelihoods. Run it with each tree on PYTHONPATH in turn to
compare builds:

    PYTHONPATH=TREE python benchmarks/family_float32.py [--families bernoulli,poisson]
"""
import argparse
import time

import numpy as np

import fastem
from fastem import kernels
from fastem.families.expfam import (
    Bernoulli,
    Categorical,
    ExpFamParams,
    Exponential,
    Poisson,
    ProductFamily,
)
from fastem.latent.mixture import MixtureParams


def problem(name, n, d, k, seed=0):
    """float64 rows, the family and its true parameters."""
    rng = np.random.RandomState(seed)
    z = rng.randint(k, size=n)
    if name == "bernoulli":
        theta = rng.uniform(0.05, 0.95, (k, d, 1))
        X, column = rng.rand(n, d) < theta[z, :, 0], Bernoulli()
    elif name == "categorical":
        theta = rng.dirichlet(np.ones(4), (k, d))
        X = (rng.rand(n, d, 1) > np.cumsum(theta, axis=2)[z]).sum(axis=2)
        column = Categorical(4)
    elif name == "poisson":
        theta = rng.uniform(0.5, 20.0, (k, d, 1))
        X, column = rng.poisson(theta[z, :, 0]), Poisson()
    else:
        theta = rng.uniform(0.1, 10.0, (k, d, 1))
        X, column = rng.exponential(1.0 / theta[z, :, 0]), Exponential()
    params = MixtureParams(np.full(k, 1.0 / k), ExpFamParams([theta[:, j] for j in range(d)]))
    return X.astype(np.float64), ProductFamily([column] * d), params


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="bernoulli,categorical,poisson,exponential")
    parser.add_argument("--n-samples", type=float, default=1e6)
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--n-components", type=int, default=16)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(f"fastem from {fastem.__file__}; {args.threads} thread(s)")
    for name in args.families.split(","):
        X, family, params = problem(name, int(args.n_samples), args.n_features,
                                    args.n_components)
        data = {"float32": X.astype(np.float32), "float64": X}
        best = {dt: np.inf for dt in data}
        for dt, x in data.items():  # warm-up
            kernels.family_e_step(x, family, params, n_threads=args.threads)
        for _ in range(args.reps):
            for dt, x in data.items():
                cpu = time.process_time()
                for _ in range(args.passes):
                    e = kernels.family_e_step(x, family, params, n_threads=args.threads)
                best[dt] = min(best[dt], (time.process_time() - cpu) / args.passes * 1000)
                print(f"  {name} {dt}: {best[dt]:.1f} ms, log-likelihood {e.log_likelihood:.6f}")
        print(f"{name}: float32 {best['float32']:.1f} ms, float64 {best['float64']:.1f} ms "
              f"per pass (CPU, min of {args.reps})")


if __name__ == "__main__":
    main()
