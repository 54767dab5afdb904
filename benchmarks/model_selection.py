"""A model-selection grid in shared passes against the same candidates fitted one by one.

    python benchmarks/model_selection.py --n-samples 1000000 --threads 2

The grid of issue 17: K = 1..10 x (full, diag) on a float32 memory-mapped ``.npy`` file of
D = 8 columns (written once, kept for reruns, from a random 6-component mixture). Every row
read is counted, by wrapping ``fastem.data.iter_blocks`` (the one place that reads rows), so
full reads of the file = rows read / n: for ``fastem.select`` per phase (check, seeding,
EM, scoring), for the separate fits in total. Then both are timed, and the separate fits'
parameters are compared with the grid's (same seeds: they must agree to 1e-10) and their
BIC, one scoring pass each (timed apart), gives the choice of separate fitting. With ``--reps``
both run that many times, taking turns, and the best wall and CPU times are compared.
"""
import argparse
import os
import time

import numpy as np

from fastem import GaussianMixture, data
from fastem.demo import write_mixture
from fastem.select import select


class Timer:
    """Wall and process CPU seconds of a ``with`` block (CPU time is steadier on a shared
    machine; with one thread it is the compute)."""

    def __enter__(self):
        self.start = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.seconds = (time.perf_counter() - self.start[0], time.process_time() - self.start[1])
        return False


class RowCounter:
    """Counts the rows every pass reads, through ``fastem.data.iter_blocks``."""

    def __init__(self):
        self.rows, self.original = 0, data.iter_blocks

    def __enter__(self):
        def counting(X, *args, **kwargs):
            for start, block, weights in self.original(X, *args, **kwargs):
                self.rows += block.shape[0]
                yield start, block, weights

        data.iter_blocks = counting
        return self

    def __exit__(self, *exc):
        data.iter_blocks = self.original
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--n-features", type=int, default=8)
    parser.add_argument("--max-k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--path", default=None)
    parser.add_argument("--reps", type=int, default=1,
                        help="runs of both, taking turns; the best time of each is compared")
    parser.add_argument("--phases", action="store_true",
                        help="only run select once, printing the CPU time of each phase")
    args = parser.parse_args()
    n = args.n_samples
    path = args.path or f"/work/fastem-select-{n}x{args.n_features}-float32.npy"
    if not os.path.exists(path):
        write_mixture(path, n, args.n_features, 6, np.dtype(np.float32),
                      np.random.default_rng(0))
    ks, kinds = range(1, args.max_k + 1), ("full", "diag")
    options = dict(random_state=0, max_iter=args.max_iter, n_threads=args.threads)
    print(f"data: {path} ({os.path.getsize(path) / 1e9:.2f} GB), grid K=1..{args.max_k} x "
          f"{kinds}, {args.threads} threads")

    if args.phases:
        return print_phases(path, ks, kinds, options)
    seconds = {"select": [], "separate": [], "separate + BIC": []}
    for rep in range(args.reps):  # taking turns, so that both see the same load
        with RowCounter() as counter:
            before_em = []

            def mark(n_passes, running):
                if n_passes == 1:  # the first EM pass ends: all before was check + seeding
                    before_em.append(counter.rows - n)
            with Timer() as timer:
                result = select(path, ks, kinds, callback=mark, **options)
            select_rows = counter.rows
        seconds["select"].append(timer.seconds)
        with RowCounter() as counter:
            with Timer() as timer:
                fits = [GaussianMixture(row.n_components, covariance_type=row.covariance_type,
                                        **options).fit(path) for row in result.table]
            fit_reads = counter.rows / n
            with Timer() as scoring:
                bics = [alone.bic(path) for alone in fits]  # what choosing among them takes
        seconds["separate"].append(timer.seconds)
        seconds["separate + BIC"].append(
            tuple(a + b for a, b in zip(timer.seconds, scoring.seconds)))
        line = "; ".join(f"{name} {times[-1][0]:.1f} s wall, {times[-1][1]:.1f} s CPU"
                         for name, times in seconds.items())
        print(f"run {rep + 1}: {line} (load average {os.getloadavg()[0]:.1f})", flush=True)
    em_rows, before_em = result.n_passes * n, before_em[0]
    print(result)
    longest = max(row.n_iter for row in result.table)
    total_iter = sum(row.n_iter for row in result.table)
    print(f"select: full reads {select_rows / n:.2f} = check, seeding and initialisation "
          f"{before_em / n:.2f} + EM {em_rows / n:.0f} (longest candidate: {longest} "
          f"iterations; all candidates: {total_iter}) + scoring "
          f"{(select_rows - before_em - em_rows) / n:.2f}")
    print(f"separate fits: full reads {fit_reads:.2f}; with their BIC (one scoring pass each): "
          f"{counter.rows / n:.2f}")
    best = {name: np.min(times, axis=0) for name, times in seconds.items()}
    for clock, i in (("wall", 0), ("CPU", 1)):
        print(f"best of {args.reps}, {clock} time: select {best['select'][i]:.1f} s, separate "
              f"fits {best['separate'][i]:.1f} s, with their BIC "
              f"{best['separate + BIC'][i]:.1f} s; ratio select / separate fits "
              f"{best['select'][i] / best['separate'][i]:.2f}, select / separate fits and BIC "
              f"{best['select'][i] / best['separate + BIC'][i]:.2f}")

    worst = 0.0
    for est, alone in zip(result.estimators, fits):
        for name in ("weights_", "means_", "covariances_"):
            a, b = getattr(est, name), getattr(alone, name)
            worst = max(worst, float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))))
    chosen = result.table[int(np.argmin(bics))].name
    print(f"largest relative difference of the parameters: {worst:.1e}; separate fits choose "
          f"{chosen}, select chooses {result.best.name}")


def print_phases(path, ks, kinds, options):
    """Process CPU seconds of select's phases: the k-means start (threads included), the
    lock-step EM passes and the scoring pass."""
    import fastem.lockstep
    import fastem.select

    spent = {}

    def timed(name, fn):
        def run(*args, **kwargs):
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.process_time() - start
        return run

    patches = [(fastem.lockstep.SharedInit, "run", "start"),
               (fastem.select, "run_lockstep", "EM"), (fastem.select, "_score", "scoring")]
    originals = [getattr(owner, attr) for owner, attr, _ in patches]
    for owner, attr, name in patches:
        setattr(owner, attr, timed(name, getattr(owner, attr)))
    try:
        with Timer() as timer:
            select(path, ks, kinds, **options)
    finally:
        for (owner, attr, _), original in zip(patches, originals):
            setattr(owner, attr, original)
    print(f"select, CPU: {timer.seconds[1]:.2f} s in all; " + ", ".join(
        f"{name} {seconds:.2f} s" for name, seconds in spent.items())
        + f" (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
