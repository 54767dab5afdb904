# Emissions that are themselves mixtures (hmmlearn's GMMHMM): state k's density is a mixture of
# m components, log p(x | k) = log sum_j exp(L[k*m + j]), where L (n, k*m) holds each
# component's weighted log-density log w_kj + log N(x | mu_kj, Sigma_kj) (from the Gaussian
# kernel). Two row-wise passes over L, rows on threads, no reduction (so results do not depend on
# the thread count):
#   state_log_densities: the per-state log-sum-exp, one max shift per group (an all -inf group
#     gives -inf);
#   state_responsibilities: the components' share of the state posterior,
#     r[i, k*m + j] = gamma[i, k] * exp(L[i, k*m + j] - lse_ik), 0 where gamma is 0 or the
#     state's density is zero; these are the responsibilities the Gaussian statistics use.
from cython.parallel cimport prange
from libc.math cimport INFINITY, exp, log


cdef inline double group_lse(const double* a, Py_ssize_t m) noexcept nogil:
    """log sum_j exp(a[j]) over m values, one max shift; -inf (or the NaN/+inf maximum) when
    the maximum is not finite."""
    cdef Py_ssize_t j
    cdef double top = a[0], total = 0.0
    for j in range(1, m):
        if a[j] > top:
            top = a[j]
    if not (-INFINITY < top < INFINITY):
        return top
    for j in range(m):
        total += exp(a[j] - top)
    return top + log(total)


def state_log_densities(
    const double[:, ::1] L,            # IN  (n, k*m) weighted component log-densities
    Py_ssize_t m,                      # IN  components per state
    int n_threads,
    double[:, ::1] out,                # OUT (n, k) log p(x_i | state k)
):
    cdef Py_ssize_t n = L.shape[0], k = out.shape[1], i, c
    if m < 1 or L.shape[1] != k * m or out.shape[0] != n:
        raise ValueError("fastem: L must have shape (n, k * m) and out (n, k)")
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        for c in range(k):
            out[i, c] = group_lse(&L[i, c * m], m)


def state_responsibilities(
    const double[:, ::1] L,            # IN  (n, k*m) weighted component log-densities
    const double[:, ::1] gamma,        # IN  (n, k) state posteriors
    Py_ssize_t m,                      # IN  components per state
    int n_threads,
    double[:, ::1] resp,               # OUT (n, k*m) gamma_ik times the components' posteriors
):
    cdef Py_ssize_t n = L.shape[0], k = gamma.shape[1], i, c, j
    cdef double top, total, g
    if m < 1 or L.shape[1] != k * m or gamma.shape[0] != n or resp.shape[0] != n \
            or resp.shape[1] != k * m:
        raise ValueError("fastem: L and resp must have shape (n, k * m), gamma (n, k)")
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        for c in range(k):
            g = gamma[i, c]
            top = L[i, c * m]
            for j in range(1, m):
                if L[i, c * m + j] > top:
                    top = L[i, c * m + j]
            if g == 0.0 or not (-INFINITY < top < INFINITY):
                for j in range(m):
                    resp[i, c * m + j] = 0.0
                continue
            total = 0.0  # one exp per component: shares exp(L - top) / sum, times gamma
            for j in range(m):
                resp[i, c * m + j] = exp(L[i, c * m + j] - top)
                total = total + resp[i, c * m + j]
            g = g / total
            for j in range(m):
                resp[i, c * m + j] = resp[i, c * m + j] * g
