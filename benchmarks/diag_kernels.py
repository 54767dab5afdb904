"""The fused float32 diag E-step of several source trees, in C, taking turns (issue 18's case).

Fits K components (diag, 3 iterations from ``initial_parameters``) to a float32 ``.npy`` file
with this tree's fastem, packs the parameters as the kernel sees them, compiles
``diag_kernels.c`` against each TREE's ``_diag_fit.h`` and times a pass over the memory-mapped
file with each binary in turn, ``--rounds`` times (``--reps`` passes each: minimum and median).
Reports per tree the minimum of the minima, the median of the medians, and their ratio to the
first tree's. Fitted parameters matter: separated clusters give far components subnormal
responsibilities, which random parameters do not.

    python benchmarks/diag_kernels.py FILE.npy TREE [TREE ...] [--k 8] [--threads 1]
        [--rounds 4] [--reps 5] [--rows 1008] [--block 64]

e.g. ``python benchmarks/diag_kernels.py /work/versus-5000000x8x8-float32.npy /tmp/base .``
(the file as ``versus_daal4py.py --memmap /work --shape 5000000,8,8`` writes it).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmarks.bench_gaussian import initial_parameters  # noqa: E402

from fastem import GaussianMixture  # noqa: E402
from fastem.families.gaussian import GaussianFamily, GaussianParams  # noqa: E402
from fastem.latent.mixture import Mixture, MixtureParams  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def write_parameters(X, k, path):
    """pivot (d float32), W (2d x K float32), log_norm (K float64) of a 3-iteration fit."""
    warnings.simplefilter("ignore")
    fit = GaussianMixture(k, covariance_type="diag", tol=0, max_iter=3,
                          **initial_parameters(X, k, "diag")).fit(X)
    params = MixtureParams(fit.weights_, GaussianParams("diag", fit.means_, None,
                                                        fit.precisions_cholesky_))
    packed = Mixture().pack(GaussianFamily("diag"), params, np.float32)
    with open(path, "wb") as out:
        for array, dtype in ((packed.pivot[0], np.float32), (packed.proj, np.float32),
                             (packed.log_norm, np.float64)):
            out.write(np.ascontiguousarray(array, dtype=dtype).tobytes())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("trees", nargs="+")
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--rows", type=int, default=1008)
    parser.add_argument("--block", type=int, default=64)
    args = parser.parse_args()
    X = np.load(args.file, mmap_mode="r")
    if X.dtype != np.float32 or X.ndim != 2:
        sys.exit(f"{args.file}: expected a 2-D float32 array, not {X.ndim}-D {X.dtype}")
    with tempfile.TemporaryDirectory() as tmp:
        params = os.path.join(tmp, "params.bin")
        write_parameters(X, args.k, params)
        binaries = []
        for i, tree in enumerate(args.trees):
            binary = os.path.join(tmp, f"diag_kernels_{i}")
            subprocess.run(["gcc", "-O3", "-Wno-psabi", "-fopenmp", "-I", tree, "-o", binary,
                            os.path.join(HERE, "diag_kernels.c"), "-lm"], check=True)
            binaries.append(binary)
        times = [[] for _ in binaries]
        for _ in range(args.rounds):
            for binary, got in zip(binaries, times):
                out = subprocess.run([binary, args.file, params, str(args.k), str(args.reps),
                                      str(args.threads), str(args.rows), str(args.block)],
                                     check=True, capture_output=True, text=True).stdout
                got.append([float(v) for v in out.split()])
    print(f"ms per pass over {args.file} ({X.shape[0]} x {X.shape[1]}, K = {args.k}), "
          f"{args.threads} thread(s), {args.rounds} rounds of {args.reps} passes")
    print("| tree | min | median | min / first's |")
    print("|---|---|---|---|")
    first = min(t[0] for t in times[0])
    for tree, got in zip(args.trees, times):
        best = min(t[0] for t in got)
        print(f"| {tree} | {best:.2f} | {np.median([t[1] for t in got]):.2f} | "
              f"{best / first:.3f} |")


if __name__ == "__main__":
    main()
