"""Compiled kernels (Cython, GIL released). Private: the stable surface is built on top of them."""
