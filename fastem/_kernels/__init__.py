"""Compiled kernels (Cython, GIL released). Their Python functions are internal (the stable
Python surface is ``fastem.kernels``); the installed ``.pxd`` files are the public C-level API
for compiled consumers (docs/kernels.md).

OpenMP threads that wait at the end of a parallel region sleep instead of spinning, unless the
user chose otherwise: with another busy process on the machine, libgomp's default spinning made
2 threads 1.5x slower than 1 (diag, N=1e6, D=16, K=16), passive waiting only 1.1x, and on a
quiet machine it costs nothing measurable (benchmarks/README.md). libgomp reads this when it is
loaded, i.e. when the first kernel is imported, which is after this line.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
