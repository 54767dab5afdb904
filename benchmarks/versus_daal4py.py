"""fastem against daal4py's EM, taking turns in one process: robust to a noisy machine.

Single runs on this machine drift by 20-30 %, more than some margins measured here, so every
case alternates fastem and daal4py for several rounds, and the medians are compared. A round
times each library's ms per iteration as compare_sklearn.py does: (fit of 1 + 3 iterations -
fit of 1 iteration) / 3, from the same given parameters, tol=0. Needs ``daal4py``
(shipped with scikit-learn-intelex); N = 1e6, D = 16, K = 16 (``make_data``), or ``--shape N,D,K``.
With ``--memmap DIR`` both libraries read the data from a memory-mapped ``.npy`` file in DIR
(written once; issue 18's 5e6 x 8 float32 row: ``--shape 5000000,8,8 --dtypes float32
--covariance-types diag --memmap /work``).

    python benchmarks/versus_daal4py.py [--rounds 7] [--threads 2] [--dtypes float32,float64]
        [--covariance-types full,diag] [--shape 200000,64,32] [--memmap DIR]
"""
import argparse
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmarks.bench_gaussian import initial_parameters, make_data  # noqa: E402
from compare_sklearn import Case, daal4py_module, fit_daal4py, ms_per_iteration  # noqa: E402

from fastem import GaussianMixture  # noqa: E402


def mapped(directory, n, d, k, dtype):
    """``make_data(n, d, k, dtype)`` memory-mapped from DIR (the file written if missing)."""
    path = os.path.join(directory, f"versus-{n}x{d}x{k}-{dtype}.npy")
    if not os.path.exists(path):
        np.save(path, make_data(n, d, k, dtype))
    return np.load(path, mmap_mode="r")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--covariance-types", default="full,diag")
    parser.add_argument("--shape", default="1000000,16,16", help="N,D,K of make_data")
    parser.add_argument("--memmap", metavar="DIR", help="read the data from .npy files in DIR")
    args = parser.parse_args()
    n, d, k = (int(float(v)) for v in args.shape.split(","))
    d4p = daal4py_module()
    if d4p is None:
        sys.exit("daal4py is not importable (pip install scikit-learn-intelex)")
    warnings.simplefilter("ignore")
    cases = [Case(t, dt, args.threads) for dt in args.dtypes.split(",")
             for t in args.covariance_types.split(",")]
    data = {dt: make_data(n, d, k, dt) if args.memmap is None else mapped(args.memmap, n, d, k, dt)
            for dt in args.dtypes.split(",")}
    inits = {c: initial_parameters(data[c.dtype], k, c.covariance_type) for c in cases}

    def fastem_fit(case, iters):
        GaussianMixture(k, covariance_type=case.covariance_type, tol=0, max_iter=iters,
                        n_threads=case.n_threads, **inits[case]).fit(data[case.dtype])

    def daal_fit(case, iters):
        fit_daal4py(d4p, case, data[case.dtype], inits[case], iters)

    runners = {"fastem": fastem_fit, "daal4py": daal_fit}
    for case in cases:  # warm-up: imports, thread pools, page faults
        for fit in runners.values():
            fit(case, 1)
    times = {(case, name): [] for case in cases for name in runners}
    for _ in range(args.rounds):
        for case in cases:
            for name, fit in runners.items():
                ms, _ = ms_per_iteration(lambda max_iter: fit(case, max_iter), args.iters)
                times[(case, name)].append(ms)
    print("| case | fastem ms/iter (median, min) | daal4py ms/iter (median, min) | daal4py / fastem |")
    print("|---|---:|---:|---:|")
    for case in cases:
        ours, theirs = times[(case, "fastem")], times[(case, "daal4py")]
        print(f"| {case} | {np.median(ours):.1f}, {min(ours):.1f} | "
              f"{np.median(theirs):.1f}, {min(theirs):.1f} | "
              f"{np.median(theirs) / np.median(ours):.2f} |")


if __name__ == "__main__":
    main()
