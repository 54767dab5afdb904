"""Fit (and label) a .npy file streamed from disk, reporting time per pass and peak memory.

    python benchmarks/out_of_core.py --n-samples 20000000                # 1.3 GB float32
    python benchmarks/out_of_core.py --n-samples 500000000 --no-predict  # 32 GB: more than RAM

The file is written once (kept for reruns), in blocks, from a random mixture. Memory is
reported as RssAnon (memory the process owns) and VmHWM (which also counts the file's pages
mapped in from the page cache, reclaimable at any time).
"""
import argparse
import os
import time

import numpy as np

from fastem import GaussianMixture
from fastem.demo import PeakMemory, read_status, write_mixture


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-samples", type=int, default=20_000_000)
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--n-components", type=int, default=16)
    parser.add_argument("--covariance-type", default="diag")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--max-iter", type=int, default=3)
    parser.add_argument("--path", default=None, help="data file (default: /work/fastem-<n>.npy)")
    parser.add_argument("--no-predict", action="store_true")
    args = parser.parse_args()
    path = args.path or f"/work/fastem-{args.n_samples}x{args.n_features}-{args.dtype}.npy"
    if not os.path.exists(path):
        tic = time.perf_counter()
        write_mixture(path, args.n_samples, args.n_features, args.n_components,
                      np.dtype(args.dtype), np.random.default_rng(0))
        print(f"wrote {path} in {time.perf_counter() - tic:.0f} s")
    size_gb = os.path.getsize(path) / 1e9
    print(f"data: {path}, {size_gb:.2f} GB; RAM {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 1e9:.1f} GB")
    stamps = []
    model = GaussianMixture(args.n_components, covariance_type=args.covariance_type,
                            max_iter=args.max_iter, tol=0, random_state=0, progress=True,
                            callback=lambda _: stamps.append(time.perf_counter()))
    baseline = read_status("RssAnon")
    with PeakMemory() as memory:
        tic = time.perf_counter()
        model.fit(path)
        total = time.perf_counter() - tic
    passes = np.diff([tic] + stamps)
    print(f"fit: {total:.1f} s; validation + initialisation + first iteration "
          f"{passes[0]:.1f} s; later iterations {', '.join(f'{p:.1f}' for p in passes[1:])} s "
          f"({size_gb / np.mean(passes[1:]):.2f} GB/s)" if len(passes) > 1 else "")
    print(f"fit memory: peak RssAnon {memory.peak_anon_mb:.0f} MB "
          f"({memory.peak_anon_mb - baseline:.0f} MB above the {baseline:.0f} MB before fit); "
          f"VmHWM {memory.peak_rss_mb:.0f} MB")
    if not args.no_predict:
        labels = path[:-4] + "-labels.npy"
        with PeakMemory() as memory:
            tic = time.perf_counter()
            model.predict(np.load(path, mmap_mode="r"), out=labels)
            seconds = time.perf_counter() - tic
        print(f"predict to {labels}: {seconds:.1f} s; peak RssAnon {memory.peak_anon_mb:.0f} MB")


if __name__ == "__main__":
    main()
