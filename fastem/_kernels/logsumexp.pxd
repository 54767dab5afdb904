# Row-wise log-sum-exp normalisation, the step shared by every mixture's E-step.
#
# Public C-level API (see docs/kernels.md): another Cython extension may
#     from fastem._kernels.logsumexp cimport normalize_log_rows
# with fastem.get_include() on its Cython include path and its C include_dirs. The function is
# inline, so the consumer compiles it in and needs no symbol from fastem at run time.
from libc.math cimport INFINITY, log


cdef extern from "fastem/_kernels/_vexp.h" nogil:
    void fastem_exp_rows(double* a, Py_ssize_t n, Py_ssize_t k, const double* shift)


cdef inline void normalize_log_rows(
    double* a,                         # IN log-probabilities (n, k); OUT probabilities (n, k)
    Py_ssize_t n, Py_ssize_t k,
    double* lse,                       # OUT (n,) log-sum-exp of each row
) noexcept nogil:
    """Turn rows of log-probabilities into probabilities in place, with one max shift per row.

    A row that is all -inf (or whose maximum is +inf or NaN) has no usable posterior: it
    becomes all zeros and its maximum is returned as its log-sum-exp, so the caller sees -inf
    (or +inf/NaN) in the log-likelihood instead of NaN responsibilities.
    """
    cdef Py_ssize_t i, j
    cdef double top, total, inv
    cdef double* row
    for i in range(n):
        row = a + i * k
        top = -INFINITY
        for j in range(k):  # branch-free, so it vectorises; a NaN row[j] is skipped
            top = row[j] if row[j] > top else top
        lse[i] = top
    fastem_exp_rows(a, n, k, lse)
    for i in range(n):
        row = a + i * k
        if not (-INFINITY < lse[i] < INFINITY):
            for j in range(k):
                row[j] = 0.0
            continue
        total = 0.0
        for j in range(k):
            total += row[j]
        inv = 1.0 / total
        for j in range(k):
            row[j] *= inv
        lse[i] += log(total)
