"""Compiled kernels (Cython, GIL released). Their Python functions are internal (the stable
Python surface is ``fastem.kernels``); the installed ``.pxd`` files are the public C-level API
for compiled consumers (docs/kernels.md).

OpenMP threads that wait at the end of a parallel region spin for a short while (about 0.1
ms: ``GOMP_SPINCOUNT`` 10000) and then sleep, unless the user set ``OMP_WAIT_POLICY`` or
``GOMP_SPINCOUNT``. libgomp's default spinning (3 ms, or as set by the CPU) made 2 threads 1.5x
slower than 1 beside another busy process (diag, N=1e6, D=16, K=16); sleeping at once
(passive) made each region's start wait ~50-100 us for its threads to wake, which the HMM
passes pay dozens of times per pass (benchmarks/README.md). Passive with this short spin keeps
the threads awake across the microseconds of Python between a pass's regions, and spins not
at all when more threads than CPUs wait. libgomp reads these variables when it is loaded, i.e.
when the first kernel is imported, which is after these lines.
"""
import os

if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    os.environ["GOMP_SPINCOUNT"] = "10000"
