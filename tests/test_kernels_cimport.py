"""A downstream Cython extension that cimports fastem's public .pxd files builds, runs and
agrees with the Python API (the pattern of numpy/random/tests/test_extending.py)."""
import sys
import textwrap

import numpy as np
import pytest
from helpers import build_consumer

from fastem import kernels

CONSUMER = textwrap.dedent(
    """
    # cython: language_level=3, boundscheck=False, wraparound=False
    from cython cimport floating
    from fastem._kernels.logsumexp cimport normalize_log_rows
    from fastem._kernels.gaussian cimport (chunk_log_prob, features, is_expfam,
                                           projection_extra, projection_width)
    import numpy as np


    def normalize(double[:, ::1] a, double[::1] lse):
        with nogil:
            normalize_log_rows(&a[0, 0], a.shape[0], a.shape[1], &lse[0])


    def log_prob(int kind, floating[:, ::1] x, floating[:, ::1] proj, floating[:, ::1] center,
                 double[::1] log_norm, floating[:, ::1] pivot, double[:, ::1] out):
        cdef Py_ssize_t n = x.shape[0], d = x.shape[1], k = log_norm.shape[0]
        cdef floating[::1] y = np.empty(n * projection_width(kind, d, k) + 1
                                        + projection_extra(kind, d, k),
                                        dtype=np.asarray(x).dtype)
        with nogil:
            if is_expfam(kind):
                features(kind, &x[0, 0], n, d, &pivot[0, 0], &y[0])
            chunk_log_prob(kind, &x[0, 0], n, d, &proj[0, 0], &center[0, 0], &log_norm[0], k,
                           &y[0], &out[0, 0])
    """
)

@pytest.fixture(scope="module")
def consumer(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("consumer")
    try:
        yield build_consumer(tmp, "fastem_consumer", CONSUMER)
    finally:
        if str(tmp) in sys.path:
            sys.path.remove(str(tmp))
        sys.modules.pop("fastem_consumer", None)


def test_consumer_normalize_log_rows_matches_python_api(consumer):
    a = 20 * np.random.RandomState(0).randn(50, 4)
    a[3] = -np.inf
    expected, expected_lse = kernels.normalize_log_rows(a)
    lse = np.empty(50)
    consumer.normalize(a, lse)
    np.testing.assert_array_equal(a, expected)
    np.testing.assert_array_equal(lse, expected_lse)


@pytest.mark.parametrize("k", [2, 30])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_consumer_gaussian_log_prob_matches_python_api(consumer, dtype, covariance_type, k):
    """K = 30 full: the lane tiles' partial sums in the scratch past (n, projection_width)."""
    rng = np.random.RandomState(1)
    X = rng.randn(40, 3).astype(dtype)
    means = rng.randn(k, 3)
    chol = np.stack([np.eye(3)] * k) if covariance_type == "full" else np.ones((k, 3))
    weights = np.full(k, 1.0 / k)
    packed = kernels.pack_gaussian(weights, means, chol, covariance_type, dtype)
    out = np.empty((40, k))
    consumer.log_prob(packed.kind, X.astype(packed.dtype), packed.proj, packed.center,
                      packed.log_norm, packed.pivot, out)
    expected = kernels.gaussian_log_prob(X, means, chol, covariance_type, weights=weights)
    np.testing.assert_array_equal(out, expected)
