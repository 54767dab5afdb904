# Row-wise log-sum-exp normalisation, the step shared by every mixture's E-step, and the per-row
# outputs of a predict pass built on it (posterior_outputs).
#
# Public C-level API (see docs/kernels.md): another Cython extension may
#     from fastem._kernels.logsumexp cimport normalize_log_rows
# with fastem.get_include() on its Cython include path and its C include_dirs. The function is
# inline, so the consumer compiles it in and needs no symbol from fastem at run time.

from libc.string cimport memcpy


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


cdef inline void posterior_outputs(
    double* logp,                      # IN  (n, k) log p(x_i, z = k); TMP: normalised in place
    Py_ssize_t n, Py_ssize_t k,
    double* lse,                       # TMP (n,)
    double* log_prob,                  # OUT (n,) log p(x_i), or NULL to skip
    double* resp,                      # OUT (n, k) p(z = k | x_i), or NULL to skip
    Py_ssize_t* labels,                # OUT (n,) argmax_k p(z = k | x_i), or NULL to skip
) noexcept nogil:
    """The per-row outputs of a predict pass from a chunk's joint log-probabilities: labels
    (first maximum, taken before normalising), log-likelihoods and posteriors."""
    cdef Py_ssize_t i, j, best
    if labels != NULL:
        for i in range(n):
            best = 0
            for j in range(1, k):
                if logp[i * k + j] > logp[i * k + best]:
                    best = j
            labels[i] = best
    if log_prob == NULL and resp == NULL:
        return
    normalize_log_rows(logp, n, k, lse)
    if log_prob != NULL:
        memcpy(log_prob, lse, n * sizeof(double))
    if resp != NULL:
        memcpy(resp, logp, n * k * sizeof(double))
