"""Data sources beyond numpy: h5py and zarr datasets, raw binary files, bounded memory."""
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import make_blobs

from fastem import GaussianMixture
from fastem.data import open_raw
from fastem.drivers.local import LocalDriver
from fastem.initialization import INIT_METHODS, MAX_SAMPLE

FITTED = ("weights_", "means_", "covariances_", "lower_bound_")


@pytest.fixture(scope="module")
def X():
    return make_blobs(n=5000, d=3, k=3, seed=11)[0]


def assert_same_fit(source, X, **kw):
    kw = dict(n_components=3, random_state=0, max_iter=10, tol=0, **kw)
    streamed, in_memory = GaussianMixture(**kw).fit(source), GaussianMixture(**kw).fit(X)
    for name in FITTED:
        np.testing.assert_array_equal(getattr(streamed, name), getattr(in_memory, name))
    np.testing.assert_array_equal(streamed.predict(source), in_memory.predict(X))


def test_h5py_dataset(X, tmp_path):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "data.h5", "w") as f:
        f.create_dataset("X", data=X, chunks=(500, 3))
    with h5py.File(tmp_path / "data.h5", "r") as f:
        assert_same_fit(f["X"], X)


def test_zarr_array(X, tmp_path):
    zarr = pytest.importorskip("zarr")
    array = zarr.open_array(str(tmp_path / "data.zarr"), mode="w", shape=X.shape,
                            chunks=(700, 3), dtype=X.dtype)
    array[:] = X
    assert_same_fit(zarr.open_array(str(tmp_path / "data.zarr"), mode="r"), X)


class SliceOnly:
    """The least a source needs: ``shape``, ``dtype`` and row slicing (no index arrays)."""

    def __init__(self, array):
        self.array, self.shape, self.dtype = array, array.shape, array.dtype

    def __getitem__(self, key):
        if not isinstance(key, slice):
            raise TypeError(f"only row slices, got {type(key).__name__}")
        return self.array[key]


@pytest.fixture(scope="module", params=[5000, MAX_SAMPLE + 4464], ids=["small", "reservoir"])
def sized(request):
    """Data used whole for initialisation, and data sampled by the reservoir pass."""
    return make_blobs(n=request.param, d=3, k=3, seed=12)[0]


@pytest.mark.parametrize("init_params", INIT_METHODS)
def test_slice_only_source(sized, init_params):
    assert_same_fit(SliceOnly(sized), sized, init_params=init_params)


def test_rows_in_any_order_with_repeats(X, tmp_path):
    """Re-seeding empty components can draw a row twice: sources that refuse index arrays,
    or (h5py) repeated and unsorted ones, still give the rows in the order asked."""
    wanted = [7, 3, 7, 4999, 0]
    np.testing.assert_array_equal(LocalDriver(SliceOnly(X)).rows(wanted), X[wanted])
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "data.h5", "w") as f:
        f.create_dataset("X", data=X)
    with h5py.File(tmp_path / "data.h5", "r") as f:
        np.testing.assert_array_equal(LocalDriver(f["X"]).rows(wanted), X[wanted])


def test_raw_binary_file(X, tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"\0" * 24 + X.tobytes())
    assert_same_fit(open_raw(path, np.float64, 3, offset=24), X)
    with pytest.raises(ValueError, match="not a whole number of rows"):
        open_raw(path, np.float64, 3, offset=8)
    with pytest.raises(ValueError, match="not a whole number of rows"):
        open_raw(path, np.float32, 4)
    with pytest.raises(ValueError, match="no such file"):
        open_raw(tmp_path / "missing.bin", np.float64, 3)
    with pytest.raises(ValueError, match="expected numeric data"):
        open_raw(path, "U4", 3)
    with pytest.raises(ValueError, match="unknown dtype 'floaty'"):
        open_raw(path, "floaty", 3)


def test_outputs_stream_to_npy_files(X, tmp_path):
    model = GaussianMixture(3, random_state=0).fit(X)
    labels = model.predict(X, out=tmp_path / "labels.npy")
    proba = model.predict_proba(X, out=str(tmp_path / "proba.npy"))
    density = model.score_samples(X, out=np.empty(len(X)))
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), model.predict(X))
    np.testing.assert_array_equal(np.load(tmp_path / "proba.npy"), model.predict_proba(X))
    np.testing.assert_array_equal(density, model.score_samples(X))
    assert isinstance(labels, np.memmap) and isinstance(proba, np.memmap)
    with pytest.raises(ValueError, match="must be a writeable C-contiguous float64 array"):
        model.score_samples(X, out=np.empty(len(X), dtype=np.float32))


MEMORY_PROBE = r"""
import sys, threading, time, numpy as np
from fastem import GaussianMixture
from fastem.demo import PeakMemory
path, out = sys.argv[1], sys.argv[2]
model = GaussianMixture(8, covariance_type="full", max_iter=3, tol=0, random_state=0)
with PeakMemory(interval=0.005) as fit_memory:
    model.fit(path)
with PeakMemory(interval=0.005) as predict_memory:
    model.predict(np.load(path, mmap_mode="r"), out=out)
print(fit_memory.peak_anon_mb, predict_memory.peak_anon_mb, fit_memory.start_anon_mb)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_anonymous_memory_stays_bounded_on_a_large_file(tmp_path):
    """A 488 MiB float32 file is fitted and labelled with RssAnon far below its size."""
    path = tmp_path / "big.npy"
    n, d = 8_000_000, 16
    data = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    rng = np.random.default_rng(0)
    for start in range(0, n, 1_000_000):
        data[start:start + 1_000_000] = rng.standard_normal((1_000_000, d), dtype=np.float32)
    data.flush()
    del data
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(path), str(tmp_path / "l.npy")],
                         capture_output=True, text=True, timeout=600, check=True).stdout.split()
    fit_peak, predict_peak, baseline = map(float, out)
    print(f'RssAnon above baseline: fit {fit_peak - baseline:.0f} MB, predict {predict_peak - baseline:.0f} MB')
    assert os.path.getsize(path) > 480 * 2**20
    assert fit_peak - baseline < 150, (fit_peak, baseline)
    assert predict_peak - baseline < 150, (predict_peak, baseline)
