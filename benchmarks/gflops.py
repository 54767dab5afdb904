"""Achieved GFLOP/s of a full-covariance EM iteration (N=2e5, D=64, K=32, 2 threads) under the
4*D^2-flops-per-point-and-component model, against numpy matmul in the same run.

    python benchmarks/gflops.py
"""
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from fastem import GaussianMixture

warnings.simplefilter("ignore")
N, D, K = 200_000, 64, 32
rng = np.random.RandomState(0)
for dtype in (np.float64, np.float32):
    X = (rng.randn(N, D) + 4 * rng.randn(K, D)[rng.randint(0, K, N)]).astype(dtype)
    start = dict(means_init=X[rng.choice(N, K, replace=False)].astype(np.float64),
                 weights_init=np.ones(K) / K, precisions_init=np.stack([np.eye(D)] * K) / 16.0)
    GaussianMixture(K, max_iter=1, tol=0, n_threads=2, **start).fit(X)
    t = time.perf_counter()
    GaussianMixture(K, max_iter=3, tol=0, n_threads=2, **start).fit(X)
    per_iter = (time.perf_counter() - t) / 3
    flops = 4 * N * K * D * D  # the model: ~4 D^2 per point and component (full)
    A = rng.randn(4096, 4096).astype(dtype)
    with threadpool_limits(2):
        A @ A
        t = time.perf_counter()
        A @ A
        mm = 2 * 4096**3 / (time.perf_counter() - t)
    print(f"{np.dtype(dtype).name}: fastem {per_iter*1000:.0f} ms/iter = {flops/per_iter/1e9:.1f} GFLOP/s; numpy matmul {mm/1e9:.1f} GFLOP/s; ratio {flops/per_iter/mm:.2f}")
