# k-means labels: the nearest of K centres for each row of a block (fastem.initialization's
# Lloyd iterations and its labelling pass), in C over 64 rows at a time (_closest.h), chunks
# of rows on threads. Against NumPy's (n, K) distances and argmin, no temporaries of the
# block's size: those cost more in page faults than the arithmetic.
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid

import numpy as np

cdef extern from "fastem/_kernels/_closest.h" nogil:
    enum: FASTEM_CLOSEST_ROWS
    void fastem_closest_f32(const float* x, Py_ssize_t n, Py_ssize_t d, const double* centers,
                            const double* norms, Py_ssize_t k, Py_ssize_t* labels,
                            double* scratch)
    void fastem_closest_f64(const double* x, Py_ssize_t n, Py_ssize_t d, const double* centers,
                            const double* norms, Py_ssize_t k, Py_ssize_t* labels,
                            double* scratch)

cdef enum:
    CHUNK_ROWS = 4096  # rows per thread's turn


def closest(const floating[:, ::1] X, const double[:, ::1] centers, int n_threads=1):
    """Index of the nearest centre of each row (the first of equals): the argmin over k of
    |c_k|^2 - 2 x.c_k, the rows' own |x|^2 left out."""
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], k = centers.shape[0]
    cdef Py_ssize_t n_chunks = (n + CHUNK_ROWS - 1) // CHUNK_ROWS, c, start
    if centers.shape[1] != d or k < 1:
        raise ValueError("fastem: centres must be (k >= 1, d) for rows of d columns")
    labels_array = np.zeros(n, dtype=np.intp)
    norms_array = np.einsum("ij,ij->i", centers, centers)
    scratch_array = np.empty((max(n_threads, 1), d * FASTEM_CLOSEST_ROWS))
    cdef Py_ssize_t[::1] labels = labels_array
    cdef const double[::1] norms = norms_array
    cdef double[:, ::1] scratch = scratch_array
    if n == 0:
        return labels_array
    with nogil, parallel(num_threads=max(1, min(n_threads, n_chunks))):
        for c in prange(n_chunks, schedule="dynamic"):
            start = c * CHUNK_ROWS
            if floating is double:
                fastem_closest_f64(&X[start, 0], min(CHUNK_ROWS, n - start), d, &centers[0, 0],
                                   &norms[0], k, &labels[start], &scratch[threadid(), 0])
            else:
                fastem_closest_f32(&X[start, 0], min(CHUNK_ROWS, n - start), d, &centers[0, 0],
                                   &norms[0], k, &labels[start], &scratch[threadid(), 0])
    return labels_array
