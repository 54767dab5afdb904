# Python entry point for the row-wise log-sum-exp normalisation of logsumexp.pxd: the same inline
# function the fused E-steps use, run over a caller-owned block in chunks spread over threads.
from cython.parallel cimport prange


def normalize_rows(
    double[:, ::1] a,                  # IN  log-probabilities (n, k); OUT probabilities (n, k)
    double[::1] lse,                   # OUT (n,) log-sum-exp of each row
    Py_ssize_t chunk_size,             # IN  rows per chunk handed to one thread
    int n_threads,
):
    """Normalise the rows of ``a`` in place and write their log-sum-exp, GIL released."""
    cdef Py_ssize_t n = a.shape[0], k = a.shape[1]
    cdef Py_ssize_t n_chunks = (n + chunk_size - 1) // chunk_size
    cdef Py_ssize_t c, start
    if lse.shape[0] != n:
        raise ValueError("fastem: lse must have one entry per row of a")
    if n == 0:
        return
    with nogil:
        for c in prange(n_chunks, num_threads=min(n_threads, n_chunks), schedule="dynamic"):
            start = c * chunk_size
            normalize_log_rows(&a[start, 0], min(chunk_size, n - start), k, &lse[start])
