"""One E-step pass over one long sequence: held whole, in checkpointed segments on one
thread, and in segments over two threads (forward from the start and backward from the end,
fastem/drivers/sequences.py).

    PYTHONPATH=$PWD python benchmarks/hmm_long_sequence.py [--rows 1000000] [--reps 7]

The data and parameters are hmm_vs_hmmlearn.py's "long" case (D = K = 8, float64). Each
configuration runs ``SequenceDriver.accumulate`` (the E-step: emissions, forward-backward,
statistics) once per round, taking turns; the minimum over ``--reps`` rounds of the wall time
and of the process CPU time (all threads; steadier than wall time on a loaded machine) is
reported, with the CPU-time work factor of two threads.
"""
import argparse
import time

from hmm_vs_hmmlearn import make_case

from fastem import hmm
from fastem.drivers.sequences import SequenceDriver


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    X, _, init = make_case(1, args.rows, 8, 8)
    model = hmm.GaussianHMM(8, "diag", init_params="", n_iter=1)
    for name, value in init.items():
        setattr(model, name, value)
    _, family, packed = model._inference(X, None)
    cases = (("1 thread, whole", 1, args.rows), ("1 thread, segments", 1, None),
             ("2 threads, segments", 2, None))
    times = {name: [] for name, _, _ in cases}
    cpu = {name: [] for name, _, _ in cases}
    for _ in range(args.reps):
        for name, n_threads, block_rows in cases:
            driver = SequenceDriver(X, None, n_threads=n_threads, block_rows=block_rows)
            tic, cpu_tic = time.perf_counter(), time.process_time()
            driver.accumulate(family, packed)
            times[name].append(time.perf_counter() - tic)
            cpu[name].append(time.process_time() - cpu_tic)
    best = {name: min(t) for name, t in times.items()}
    best_cpu = {name: min(t) for name, t in cpu.items()}
    for name, seconds in best.items():
        print(f"{name}: {seconds:.4f} s wall, {best_cpu[name] / args.rows * 1e9:.0f} CPU ns "
              "per row")
    print(f"CPU work factor of 2 threads (segments): "
          f"{best_cpu['2 threads, segments'] / best_cpu['1 thread, segments']:.2f}")
    print(f"segments, 1 / 2 threads: {best['1 thread, segments'] / best['2 threads, segments']:.2f}x;"
          f" whole on 1 thread / segments on 2: "
          f"{best['1 thread, whole'] / best['2 threads, segments']:.2f}x")


if __name__ == "__main__":
    main()
