"""Does a pass over a .npy file that is not in the page cache cost max(read, compute) or their
sum? One streamed E-step pass (diag Gaussian, K components, 2 threads), cold, with and without
read-ahead (a thread reading ahead of the blocks in use: fastem.data.ReadAhead), beside
the two costs it combines:

- read: the file brought in through a fresh mapping after dropping the page cache, one value
  per page touched (the disk's floor for a pass, by the pass's own path: page faults and the
  kernel's read-ahead);
- compute: the same pass over the first ``--warm-rows`` rows while they are in the page cache,
  scaled to the whole file.

Needs root for /proc/sys/vm/drop_caches. For the issue-18 measurement the file is larger than
the machine's RAM, so no pass can find it cached:

    python benchmarks/read_ahead.py /work/fastem-900000000x8-float32.npy --make-rows 900000000
"""
import argparse
import os
import subprocess
import time

import numpy as np

from fastem import data
from fastem.drivers.local import LocalDriver
from fastem.families.gaussian import GaussianFamily, GaussianParams
from fastem.latent.mixture import Mixture, MixtureParams

TILE_ROWS = 10_000_000


def make_file(path, n_rows, d):
    """Write ``n_rows`` float32 rows of K = 8 clusters, tiling one block of TILE_ROWS rows
    (each tile shifted by 1e-4 so tiles differ): writing, not generating, is the cost."""
    rng = np.random.RandomState(0)
    centres = rng.randn(8, d) * 4
    tile = (centres[rng.randint(8, size=TILE_ROWS)] + rng.randn(TILE_ROWS, d)).astype(np.float32)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_rows, d))
    for i, start in enumerate(range(0, n_rows, TILE_ROWS)):
        stop = min(start + TILE_ROWS, n_rows)
        out[start:stop] = tile[:stop - start] + np.float32(1e-4 * i)
    out.flush()
    del out


def drop_page_cache():
    subprocess.run(["sh", "-c", "sync; echo 1 > /proc/sys/vm/drop_caches"], check=True)


def read_seconds(path):
    """Seconds to bring the whole file in from disk the way a pass does, through a fresh
    mapping's page faults (and the kernel's own read-ahead), touching one value per page."""
    drop_page_cache()
    X = np.load(path, mmap_mode="r")
    step = max(1, 4096 // X.strides[0])
    tic = time.perf_counter()
    for start in range(0, X.shape[0], 1 << 22):
        X[start:start + (1 << 22):step, 0].sum()
    seconds = time.perf_counter() - tic
    del X
    return seconds


def pass_seconds(path, rows, family, params, n_threads):
    """Seconds of one pass over the first ``rows`` rows of a fresh mapping of the file (pages a
    live mapping holds are not dropped with the page cache, so each pass maps the file anew)."""
    X = np.load(path, mmap_mode="r")
    if rows < X.shape[0]:
        X = X[:rows]  # a view: not read ahead, which only a whole mapped file is
    driver = LocalDriver(X, n_threads=n_threads)
    packed = Mixture().pack(family, params, driver.dtype)
    tic = time.perf_counter()
    driver.accumulate(family, packed)
    return time.perf_counter() - tic


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--make-rows", type=int, help="write the file first if it is missing")
    parser.add_argument("--n-features", type=int, default=8, help="columns of a file to make")
    parser.add_argument("--n-components", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warm-rows", type=int, default=20_000_000)
    parser.add_argument("--reps", type=int, default=2, help="cold passes per setting, in turn")
    args = parser.parse_args()
    if args.make_rows and not os.path.exists(args.path):
        tic = time.perf_counter()
        make_file(args.path, args.make_rows, args.n_features)
        print(f"wrote {args.path} in {time.perf_counter() - tic:.0f} s")
    n, d = np.load(args.path, mmap_mode="r").shape
    k = args.n_components
    rng = np.random.RandomState(0)
    family = GaussianFamily("diag")
    params = MixtureParams(np.ones(k) / k, GaussianParams.from_covariances(
        "diag", rng.randn(k, d) * 4, np.ones((k, d))))
    total = os.path.getsize(args.path)
    with open("/proc/meminfo") as f:
        ram = int(f.readline().split()[1]) * 1024
    print(f"file {total / 1e9:.1f} GB ({n} x {d}), RAM {ram / 1e9:.1f} GB, "
          f"K = {k}, {args.threads} threads")

    read = read_seconds(args.path)
    warm = min(args.warm_rows, n)
    pass_seconds(args.path, warm, family, params, args.threads)  # the prefix into the page cache
    compute = min(pass_seconds(args.path, warm, family, params, args.threads) for _ in range(3))
    compute *= n / warm
    print(f"read alone {read:.1f} s ({total / read / 1e6:.0f} MB/s); compute alone {compute:.1f} s "
          f"(page-cached prefix, scaled); max {max(read, compute):.1f} s, sum {read + compute:.1f} s")
    for _ in range(args.reps):
        for enabled in (False, True):
            data.ReadAhead.enabled = enabled
            drop_page_cache()
            cold = pass_seconds(args.path, n, family, params, args.threads)
            print(f"cold pass, read-ahead {'on ' if enabled else 'off'}: {cold:.1f} s "
                  f"= {cold / max(read, compute):.2f} x max, {cold / (read + compute):.2f} x sum",
                  flush=True)


if __name__ == "__main__":
    main()
