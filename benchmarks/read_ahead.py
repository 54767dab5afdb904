"""Time one streamed E-step pass over a .npy file that is not in the page cache, with and
without read-ahead (posix_fadvise WILLNEED). Needs root for /proc/sys/vm/drop_caches.

    python benchmarks/out_of_core.py --n-samples 20000000   # writes the 1.28 GB file once
    python benchmarks/read_ahead.py /work/fastem-20000000x16-float32.npy
"""
import subprocess
import sys
import time

import numpy as np

from fastem import data
from fastem.drivers.local import LocalDriver
from fastem.families.gaussian import GaussianFamily, GaussianParams
from fastem.latent.mixture import Mixture, MixtureParams

path = sys.argv[1]
X = np.load(path, mmap_mode="r")
k, d = 16, X.shape[1]
rng = np.random.RandomState(0)
family = GaussianFamily("diag")
params = MixtureParams(np.ones(k) / k, GaussianParams.from_covariances("diag", rng.randn(k, d),
                                                                    np.ones((k, d))))
for enabled in (False, True, False, True):
    data.ReadAhead.enabled = enabled
    subprocess.run(["sh", "-c", "sync; echo 1 > /proc/sys/vm/drop_caches"], check=True)
    driver = LocalDriver(X)
    packed = Mixture().pack(family, params, driver.dtype)
    tic = time.perf_counter()
    driver.accumulate(family, packed)
    cold = time.perf_counter() - tic
    tic = time.perf_counter()
    driver.accumulate(family, packed)
    warm = time.perf_counter() - tic
    print(f"read-ahead {'on ' if enabled else 'off'}: cold pass {cold:.2f} s, warm pass (in page cache) {warm:.2f} s")
