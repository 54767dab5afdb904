"""Peak memory of predict_proba on N=1e7, D=16, K=16 above the data and the output (VmHWM).

    python benchmarks/predict_memory.py float64
"""
import sys

import numpy as np

from fastem import GaussianMixture
from fastem.demo import read_status

dtype = np.dtype(sys.argv[1])
N, D, K = 10_000_000, 16, 16
rng = np.random.default_rng(0)
X = rng.standard_normal((N, D), dtype=dtype if dtype == np.float32 else np.float64)
model = GaussianMixture(K, max_iter=1, tol=0, random_state=0).fit(X[:100_000])
model.predict_proba(X[:1000])
open("/proc/self/clear_refs", "w").write("5")  # reset VmHWM
before = read_status("VmRSS")
out = model.predict_proba(X)
peak = read_status("VmHWM")
print(f"{dtype.name}: data {X.nbytes/2**20:.0f} MB, output {out.nbytes/2**20:.0f} MB, peak above data+output {peak - before - out.nbytes/2**20:.0f} MB")
