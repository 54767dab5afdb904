"""The Gaussian kernel of another build against this tree's, in one process, taking turns.

The other build's ``gaussian`` extension (e.g. main's ``fastem/_kernels/gaussian.*.so``) is
copied into a temporary package and imported beside this tree's ``fastem._kernels.gaussian``
(an extension module's init function is named after the last part of its name only). Both then
run ``fit_block`` over the same N = 1e6, D = K = 16 data (``make_data``) with the same packed
parameters (those after two EM iterations from ``initial_parameters``), in turns, on
``--threads`` threads, for diag and full, float64 and float32. The statistics must agree
bitwise (the kernels' arithmetic is the same), and the script prints per case the minimum and
median wall and CPU times of a pass. In one process the two builds share the memory layout,
BLAS and the load of the machine, which makes this the closer comparison of kernel changes;
``ab_trees.py`` compares whole trees.

    python benchmarks/ab_kernels.py OLD_KERNELS_DIR [--reps 15] [--threads 2]
"""
import argparse
import glob
import importlib
import os
import shutil
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CASES = [(t, dt) for dt in ("float64", "float32") for t in ("diag", "full")]


def import_old(kernels_dir, tmp):
    """The other build's gaussian extension, imported as ``fastem_old_kernels.gaussian``."""
    package = os.path.join(tmp, "fastem_old_kernels")
    os.mkdir(package)
    open(os.path.join(package, "__init__.py"), "w").close()
    (so,) = glob.glob(os.path.join(kernels_dir, "gaussian.*.so"))
    shutil.copy(so, package)
    sys.path.insert(0, tmp)
    return importlib.import_module("fastem_old_kernels.gaussian")


def run(module, job):
    """One fit_block pass of a whole data set as one block; its statistics."""
    p, X, chunk, size, n_threads, workspace, slots = job
    stats, worst = np.zeros(size), np.array([np.inf, -1.0])
    module.fit_block(p.kind, X, np.empty(0), np.empty((0, p.log_norm.shape[0])), p.proj,
                     p.center, p.log_norm, p.pivot, True, chunk, n_threads, workspace, slots,
                     stats, worst, 0)
    return stats


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="directory holding the other build's gaussian.*.so")
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    sys.path[:0] = [ROOT, HERE]
    from benchmarks.bench_gaussian import initial_parameters, make_data

    from fastem import GaussianMixture
    from fastem._config import single_threaded_blas
    from fastem._kernels import gaussian as new
    from fastem.drivers.local import default_chunk_size
    from fastem.families.gaussian import GaussianFamily, GaussianParams
    from fastem.latent.mixture import Mixture, MixtureParams

    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        old = import_old(os.path.abspath(args.old), tmp)
        th = args.threads
        print(f"gaussian.fit_block per pass (ms), {th} threads, {args.reps} passes each, taking "
              f"turns; old = {old.__file__} (copied from {args.old}), new = {new.__file__}")
        print("| case | kind | old wall min | new wall min | new/old | old wall median | "
              "new wall median | old CPU median | new CPU median |")
        print("|---|---|---|---|---|---|---|---|---|")
        for t, dt in CASES:
            X = make_data(1_000_000, 16, 16, dt)
            model = GaussianMixture(16, covariance_type=t, tol=0, max_iter=2, n_threads=th,
                                    **initial_parameters(X, 16, t)).fit(X)
            params = MixtureParams(model.weights_, GaussianParams.from_covariances(
                t, model.means_, model.covariances_))
            p = Mixture().pack(GaussianFamily(t), params, np.dtype(dt))
            X = X.astype(p.dtype)
            k, d = p.pivot.shape
            chunk = default_chunk_size(d, k)
            size = new.stats_size(p.kind, d, k)
            workspace = np.empty((th, new.workspace_size(p.kind, chunk, d, k)))
            slots = np.empty((-(-len(X) // chunk), size + 2))
            job = (p, X, chunk, size, th, workspace, slots)
            wall, cpu = {old: [], new: []}, {old: [], new: []}
            with single_threaded_blas():
                assert np.array_equal(run(old, job), run(new, job)), f"{t} {dt}: results differ"
                for r in range(args.reps):
                    for module in (old, new) if r % 2 == 0 else (new, old):
                        tic, cpu_tic = time.perf_counter(), time.process_time()
                        run(module, job)
                        wall[module].append(1000 * (time.perf_counter() - tic))
                        cpu[module].append(1000 * (time.process_time() - cpu_tic))
            print(f"| {t} {dt} | {p.kind} | {min(wall[old]):.1f} | {min(wall[new]):.1f} | "
                  f"{min(wall[new]) / min(wall[old]):.3f} | {np.median(wall[old]):.1f} | "
                  f"{np.median(wall[new]):.1f} | {np.median(cpu[old]):.1f} | "
                  f"{np.median(cpu[new]):.1f} |", flush=True)


if __name__ == "__main__":
    main()
