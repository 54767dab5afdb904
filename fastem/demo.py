"""``fastem demo``: write a few million points to a ``.npy`` file and fit a Gaussian mixture
streamed from it, reporting the time per EM iteration and the peak memory."""
import os
import tempfile
import threading
import time
import warnings

import numpy as np


def run(args):
    """Run the demo in ``args.dir`` or in a temporary folder removed afterwards."""
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
        return run_demo(args, args.dir)
    with tempfile.TemporaryDirectory(prefix="fastem-demo-") as folder:
        return run_demo(args, folder)


def run_demo(args, folder):
    from . import GaussianMixture
    from ._config import resolve_n_threads

    path = os.path.join(folder, "demo.npy")
    rng = np.random.default_rng(args.seed)
    truth = write_mixture(path, args.n_samples, args.n_features, args.n_components,
                          np.dtype(args.dtype), rng)
    size_mb = os.path.getsize(path) / 2**20
    print(f"wrote {args.n_samples:,} x {args.n_features} {args.dtype} points from "
          f"{args.n_components} Gaussians to {path} ({size_mb:.0f} MB)")
    stamps = []
    model = GaussianMixture(args.n_components, covariance_type=args.covariance_type,
                            max_iter=args.max_iter, random_state=args.seed, tol=1e-6,
                            n_threads=args.threads, verbose=2, verbose_interval=1,
                            progress=True, callback=lambda _: stamps.append(time.perf_counter()))
    print(f"fitting a {args.n_components}-component {args.covariance_type}-covariance Gaussian "
          f"mixture streamed from the memory-mapped file ...", flush=True)
    with PeakMemory() as memory, warnings.catch_warnings():
        warnings.simplefilter("always")
        tic = time.perf_counter()
        model.fit(path)
        seconds = time.perf_counter() - tic
    print()
    print(f"converged: {model.converged_} after {model.n_iter_} iterations; "
          f"mean log-likelihood {model.lower_bound_:.6f}")
    per_iteration = np.diff(stamps).mean() if len(stamps) > 1 else float("nan")
    print(f"time: {seconds:.2f} s in all ({stamps[0] - tic:.2f} s validation, initialisation "
          f"and first iteration), {1000 * per_iteration:.0f} ms per EM iteration on "
          f"{resolve_n_threads(args.threads)} threads")
    print(f"peak memory: {memory.peak_anon_mb:.0f} MB process-owned (RssAnon), "
          f"{memory.peak_rss_mb:.0f} MB resident including the mapped file's pages; "
          f"data file {size_mb:.0f} MB")
    order = match_components(model.means_, truth["means"])
    error = np.abs(model.means_[order] - truth["means"]).max()
    print(f"weights: {np.array2string(model.weights_[order], precision=3)}")
    print(f"true   : {np.array2string(truth['weights'], precision=3)}")
    print(f"largest error of a fitted mean against the truth: {error:.4f}")
    return 0


def write_mixture(path, n, d, k, dtype, rng, block=1 << 18):
    """Write n points of a random k-component mixture to a .npy file, block by block."""
    means = rng.uniform(-10, 10, size=(k, d))
    scales = [np.eye(d) + 0.3 * rng.standard_normal((d, d)) for _ in range(k)]
    weights = rng.dirichlet(5 * np.ones(k))
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(n, d))
    for start in range(0, n, block):
        stop = min(n, start + block)
        z = rng.choice(k, size=stop - start, p=weights)
        noise = rng.standard_normal((stop - start, d), dtype=dtype if dtype == np.float32
                                    else np.float64)
        for c in range(k):
            rows = z == c
            noise[rows] = noise[rows] @ scales[c].astype(noise.dtype) + means[c]
        out[start:stop] = noise
    out.flush()
    del out
    return {"means": means, "weights": weights}


def match_components(fitted, true):
    """For each true mean, the index of the nearest fitted mean (greedy)."""
    dist = ((fitted[None, :, :] - true[:, None, :]) ** 2).sum(axis=2)
    order = []
    for row in dist:
        row = row.copy()
        row[order] = np.inf
        order.append(int(np.argmin(row)))
    return np.array(order)


class PeakMemory:
    """Samples the process's anonymous memory (RssAnon) every 20 ms while active (Linux)."""

    def __init__(self, interval=0.02):
        self.interval = interval
        self.peak_anon_mb = float("nan")
        self.peak_rss_mb = float("nan")
        self._stop = threading.Event()

    def __enter__(self):
        self.start_anon_mb = self.peak_anon_mb = read_status("RssAnon")
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(self.interval):
            self.peak_anon_mb = max(self.peak_anon_mb, read_status("RssAnon"))

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_anon_mb = max(self.peak_anon_mb, read_status("RssAnon"))
        self.peak_rss_mb = read_status("VmHWM")
        return False


def read_status(field):
    """A memory field of /proc/self/status in MB (NaN where /proc is unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
