# Row-wise log-sum-exp normalisation, the step shared by every mixture's E-step.
from libc.math cimport exp, log, INFINITY


cdef inline double normalize_log_row(
    double* row,                       # IN log-probabilities (k,); OUT probabilities (k,)
    Py_ssize_t k,
) noexcept nogil:
    """Turn one row of log-probabilities into probabilities in place; return its log-sum-exp.

    One max shift, so no overflow. A row that is all -inf (or whose maximum is +inf or NaN)
    has no usable posterior: it becomes all zeros and its maximum is returned unchanged, so the
    caller sees -inf (or +inf/NaN) in the log-likelihood instead of NaN responsibilities.
    """
    cdef Py_ssize_t j
    cdef double top = -INFINITY, total = 0.0, inv
    for j in range(k):
        if row[j] > top:
            top = row[j]
    if not (-INFINITY < top < INFINITY):
        for j in range(k):
            row[j] = 0.0
        return top
    for j in range(k):
        row[j] = exp(row[j] - top)
        total += row[j]
    inv = 1.0 / total
    for j in range(k):
        row[j] *= inv
    return top + log(total)
