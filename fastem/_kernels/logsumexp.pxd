# Row-wise log-sum-exp normalisation, the step shared by every mixture's E-step.
#
# Public C-level API (see docs/kernels.md): another Cython extension may
#     from fastem._kernels.logsumexp cimport normalize_log_rows
# with fastem.get_include() on its Cython include path and its C include_dirs. The function is
# inline, so the consumer compiles it in and needs no symbol from fastem at run time.

cdef extern from "fastem/_kernels/_normalize.h" nogil:
    void fastem_normalize_rows(double* a, Py_ssize_t n, Py_ssize_t k, double* lse)


cdef inline void normalize_log_rows(
    double* a,                         # IN log-probabilities (n, k); OUT probabilities (n, k)
    Py_ssize_t n, Py_ssize_t k,
    double* lse,                       # OUT (n,) log-sum-exp of each row
) noexcept nogil:
    """Turn rows of log-probabilities into probabilities in place, with one max shift per row.

    A row that is all -inf (or whose maximum is +inf or NaN) has no usable posterior: it
    becomes all zeros and its maximum is returned as its log-sum-exp, so the caller sees -inf
    (or +inf/NaN) in the log-likelihood instead of NaN responsibilities. (In C: _normalize.h.)
    """
    fastem_normalize_rows(a, n, k, lse)
