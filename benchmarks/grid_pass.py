"""One pass of the grid kernel (fastem.grid) against the candidates' own kernels.

    python benchmarks/grid_pass.py --n-samples 1000000 --threads 1

Issue 17's grid, K = 1..10 x (full, diag) = 20 candidates with 110 components, on the float32
file of benchmarks/model_selection.py: the process CPU time of one E-step pass serving all of
them, through the grid kernel and through the 20 per-candidate kernels (each packed as a
separate fit packs it, in float32 or float64 by its rounding bounds), best of ``--reps``,
taking turns. The candidates are those fitted on the first 100,000 rows.
"""
import argparse
import os
import time

import numpy as np

from fastem.demo import write_mixture
from fastem.drivers.local import LocalDriver
from fastem.grid import GridPasses
from fastem.latent.mixture import Mixture
from fastem.select import select


def candidates(X, max_k):
    """The full and diag mixtures of K = 1..max_k that fastem.select fits on the first 100,000
    rows (as tight as the fitted candidates of the EM passes: with broad random components
    every candidate's own kernel would run in float32)."""
    result = select(np.asarray(X[:100_000]), range(1, max_k + 1), ("full", "diag"),
                    random_state=0)
    return [(est._family(), est._fitted_params()) for est in result.estimators]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--max-k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    path = f"/work/fastem-select-{args.n_samples}x8-float32.npy"
    if not os.path.exists(path):
        write_mixture(path, args.n_samples, 8, 6, np.dtype(np.float32), np.random.default_rng(0))
    X = np.load(path, mmap_mode="r")
    driver, latent = LocalDriver(X, n_threads=args.threads), Mixture()
    grid, grid_times, own_times = GridPasses(driver), [], []
    models = candidates(X, args.max_k)
    for _ in range(args.reps):
        jobs = [(family, grid.pack_params(latent, family, params)) for family, params in models]
        start = time.process_time()
        grid.accumulate_many(jobs)
        grid_times.append(time.process_time() - start)
        jobs = [(family, latent.pack(family, params, driver.dtype))
                for family, params in models]
        start = time.process_time()
        driver.accumulate_many(jobs)
        own_times.append(time.process_time() - start)
    print(f"{len(models)} candidates, {sum(len(p.weights) for _, p in models)} components, "
          f"{args.n_samples} rows, {args.threads} thread(s), load average "
          f"{os.getloadavg()[0]:.1f}: one pass, best of {args.reps}, CPU: grid kernel "
          f"{min(grid_times):.2f} s, their own kernels {min(own_times):.2f} s")


if __name__ == "__main__":
    main()
