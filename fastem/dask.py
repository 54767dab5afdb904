"""Dask data sources for users: ``.npy`` files opened by path on the workers.

Fitting a ``dask.array.Array`` needs nothing from here (the estimators pick the Dask driver,
:mod:`fastem.drivers.dask`); this module only helps make such arrays from files.
"""
import os

import dask.array as da
import numpy as np

from . import data


def from_npy(path, block_rows="auto"):
    """A dask array over a ``.npy`` file that each task memory-maps by path on its worker.

    ``da.from_array(np.load(path, mmap_mode="r"))`` works too, but a memmap pickles as its
    contents, so every task graph sent to a distributed cluster would carry the whole file; here
    only the path travels. The file must be readable at that path on the workers (the local disk
    of a ``LocalCluster``, or shared storage).
    """
    return da.from_array(NpyFile(path), chunks=(block_rows, -1))


class NpyFile:
    """A 2-D ``.npy`` file as a row-sliceable array-like that pickles as its path."""

    def __init__(self, path):
        self.path = os.fspath(path)
        opened = data.open_source(self.path)
        self.shape, self.dtype, self.ndim = opened.shape, opened.dtype, opened.ndim

    def __getitem__(self, index):
        return np.load(self.path, mmap_mode="r", allow_pickle=False)[index]
