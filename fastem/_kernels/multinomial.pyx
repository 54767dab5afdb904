# Multinomial components over rows of counts, on the block skeleton (_blocks.pyx).
#
# A row x (d counts, n = sum_j x_j trials) has, under component k with probabilities p_k,
#   log p(x | k) = log n! - sum_j log x_j! + sum_j x_j log p_kj
# with 0 log 0 = 0: a symbol of probability zero costs nothing where it was not observed and
# makes the density exactly zero (-inf) where it was, so zero probabilities stay exactly zero
# through EM. The log-probabilities come in transposed, log_p (d, k), so that each non-zero count
# adds x_j * log_p[j, :] to a contiguous row of k log-densities; zero counts (most of them, in
# sparse count data) cost one comparison. A direct loop rather than a GEMM: 0 * -inf would be NaN.
#
# Statistics: [ll, W, s0 (k), S (k, d)] with S_kj = sum_i w_i r_ik x_ij. A row with a negative,
# non-integer or non-finite count is out of support: log p = -inf for every component, zero
# responsibilities, reported through ``worst``, and it adds nothing to S.
#
# Scratch: the skeleton's (chunk, k) and (chunk,) per thread, then the family's base measures
# (chunk,). With given responsibilities (an HMM's posteriors) only the support is checked. Chunks write their own slots, added in chunk order: bitwise identical results for any
# number of threads.
from cython cimport floating
from libc.math cimport INFINITY, floor
from libc.string cimport memcpy

from ._blocks cimport clamp_labelled, emission_t, fit_chunks, predict_chunks
from .expfam cimport log_factorial
from .logsumexp cimport normalize_log_rows


cpdef Py_ssize_t stats_size(Py_ssize_t d, Py_ssize_t k):
    """Length of the statistics vector: [loglik, weight, s0 (k), S (k, d) row-major]."""
    return 2 + k + k * d


cpdef Py_ssize_t workspace_size(Py_ssize_t chunk_size, Py_ssize_t k):
    """float64 elements of per-thread scratch: (chunk, k) log-densities, (chunk,) log-sum-exp
    and (chunk,) base measures."""
    return chunk_size * (k + 2)


cdef inline bint in_support(const floating* x, Py_ssize_t d) noexcept nogil:
    """Whether every count of a row is a finite non-negative integer."""
    cdef Py_ssize_t j
    for j in range(d):
        if not (0.0 <= x[j] < INFINITY and x[j] == floor(x[j])):
            return False
    return True


cdef inline double base_measure(const floating* x, Py_ssize_t d) noexcept nogil:
    """log n! - sum_j log x_j! of one row (expfam.pyx's table of log-factorials); -inf out of
    support. Counts 0 and 1 cost nothing (log 1 = 0)."""
    cdef Py_ssize_t j
    cdef double v, total = 0.0, b = 0.0
    if not in_support(x, d):
        return -INFINITY
    for j in range(d):
        v = x[j]
        total += v
        if v > 1.0:
            b -= log_factorial(v)
    return b + log_factorial(total)


ctypedef struct MultinomialPass:
    Py_ssize_t d, k
    Py_ssize_t chunk_size              # rows per chunk: the family's scratch is (chunk_size,)
    const double* log_p                # (d, k) log p_kj, -inf for zero probabilities
    const double* log_norm             # (k,) added constants (log-weights of a mixture)


cdef void chunk_log_prob(
    const MultinomialPass* p,
    const floating* x, Py_ssize_t n,   # IN  chunk rows (n, d)
    double* base,                      # OUT (n,) base measures
    double* logp,                      # OUT (n, k) log_norm[k] + log p(x_i | k)
) noexcept nogil:
    cdef Py_ssize_t i, j, c, d = p.d, k = p.k
    cdef double v, b
    cdef double* out
    cdef const double* row
    for i in range(n):
        out = logp + i * k
        b = base_measure(x + i * d, d)
        base[i] = b
        for c in range(k):
            out[c] = p.log_norm[c] + b
        if b == -INFINITY:
            continue
        for j in range(d):
            v = x[i * d + j]
            if v != 0.0:
                row = p.log_p + j * k
                for c in range(k):
                    out[c] += v * row[c]
        for c in range(k):
            if out[c] != out[c]:  # NaN parameters
                out[c] = -INFINITY


cdef void fit_chunk(
    const void* params,                # IN  MultinomialPass
    const floating* x, Py_ssize_t n,   # IN  chunk rows (n, d)
    const double* weights,             # IN  (n,) sample weights, or NULL for ones
    const double* resp_in,             # IN  (n, k) given responsibilities, or NULL
    const Py_ssize_t* labels,          # IN  (n,) clamped component per row (-1: none), or
                                       #     NULL (see _blocks.clamp_labelled)
    bint with_stats,                   # IN  accumulate s0, S (else only ll, W)
    double* resp, double* lse,         # TMP (n, k), (n,)
    double* scratch,                   # TMP (n,) base measures
    double* slot,                      # OUT zeroed statistics vector (stats_size)
    double* worst,                     # OUT [lowest log p(x_i), its row in the chunk]
) noexcept nogil:
    """E-step and statistics of one chunk. With given responsibilities (an HMM's posteriors,
    initialisation) no log-density is added, as in expfam.pyx, except -inf for a row out of
    support."""
    cdef const MultinomialPass* p = <const MultinomialPass*> params
    cdef Py_ssize_t i, j, c, d = p.d, k = p.k
    cdef double w, v
    cdef double* row
    cdef double* s0 = slot + 2
    cdef double* S = slot + 2 + k
    worst[0] = INFINITY
    worst[1] = -1
    if resp_in == NULL:
        chunk_log_prob(p, x, n, scratch, resp)
        if labels != NULL:
            clamp_labelled(resp, n, k, labels)
        normalize_log_rows(resp, n, k, lse)
    else:
        memcpy(resp, resp_in, n * k * sizeof(double))
        for i in range(n):  # the support only: the base measure is not needed
            scratch[i] = 0.0 if in_support(x + i * d, d) else -INFINITY
            lse[i] = scratch[i]
    for i in range(n):
        row = resp + i * k
        w = 1.0 if weights == NULL else weights[i]
        if w == 0.0:
            continue
        if resp_in == NULL or lse[i] == -INFINITY:
            slot[0] += w * lse[i]
            if lse[i] < worst[0]:
                worst[0] = lse[i]
                worst[1] = i
        slot[1] += w
        if not with_stats or scratch[i] == -INFINITY or lse[i] == -INFINITY:
            continue
        for c in range(k):
            s0[c] += w * row[c]
        for j in range(d):
            v = x[i * d + j]
            if v != 0.0:
                v *= w
                for c in range(k):
                    S[c * d + j] += v * row[c]


cdef void log_density_chunk(
    const void* params,                # IN  MultinomialPass
    const floating* x, Py_ssize_t n,   # IN  chunk rows (n, d)
    double* scratch,                   # TMP (n,) base measures
    double* logp,                      # OUT (n, k)
) noexcept nogil:
    chunk_log_prob(<const MultinomialPass*> params, x, n, scratch, logp)


cdef int fill_pass(Py_ssize_t d, const double[:, ::1] log_p, const double[::1] log_norm,
                   Py_ssize_t chunk_size, MultinomialPass* p, emission_t* e) except -1:
    """The pass's parameters, checked against the data's columns, and their emission."""
    if log_p.shape[0] != d or log_p.shape[1] != log_norm.shape[0] or log_norm.shape[0] < 1:
        raise ValueError("fastem: log_p must have shape (d, k) for data with d columns, k >= 1")
    p.d, p.k, p.chunk_size = d, log_norm.shape[0], chunk_size
    p.log_p, p.log_norm = &log_p[0, 0], &log_norm[0]
    e.params, e.d, e.k = p, d, p.k
    e.stats_size = stats_size(d, p.k)
    e.workspace = workspace_size(chunk_size, p.k)
    e.fit_f32, e.fit_f64 = fit_chunk[float], fit_chunk[double]
    e.log_density_f32, e.log_density_f64 = log_density_chunk[float], log_density_chunk[double]
    return 0


def fit_block(
    const floating[:, ::1] X,          # IN  (n, d) block of count rows
    const double[::1] weights,         # IN  (n,) or (0,) for unit weights
    const double[:, ::1] resp_in,      # IN  (n, k) responsibilities to use, or (0, k)
    const double[:, ::1] log_p,        # IN  (d, k) log-probabilities, transposed
    const double[::1] log_norm,        # IN  (k,)
    bint with_stats,
    Py_ssize_t chunk_size,
    int n_threads,
    double[:, ::1] workspace,          # TMP (>= n_threads, workspace_size) per-thread scratch
    double[:, ::1] slots,              # TMP (>= n_chunks, stats_size + 2) per-chunk results
    double[::1] stats,                 # OUT += statistics vector (stats_size)
    double[::1] worst,                 # OUT [lowest log p(x_i) so far, its row]
    Py_ssize_t row_offset,
    const Py_ssize_t[::1] labels=None, # IN  (n,) clamped component per row (-1: none), or None
):
    """One E-step (and statistics) over a block; adds into ``stats`` in chunk order."""
    cdef Py_ssize_t n = X.shape[0], k = log_norm.shape[0]
    cdef MultinomialPass p
    cdef emission_t e
    fill_pass(X.shape[1], log_p, log_norm, chunk_size, &p, &e)
    cdef bint given = resp_in.shape[0] > 0
    if stats.shape[0] != e.stats_size or worst.shape[0] != 2:
        raise ValueError("fastem: stats must have stats_size(d, k) entries and worst two")
    if weights.shape[0] not in (0, n) or (given and (resp_in.shape[0] != n
                                                     or resp_in.shape[1] != k)):
        raise ValueError("fastem: weights must be (n,) or empty, resp_in (n, k) or empty")
    if n == 0:
        return
    fit_chunks(&e, &X[0, 0], n, &weights[0] if weights.shape[0] else NULL,
               &resp_in[0, 0] if given else NULL, &labels[0] if labels is not None else NULL,
               with_stats, chunk_size, n_threads, workspace, slots, stats, worst, row_offset)


def predict_block(
    const floating[:, ::1] X,          # IN  (n, d) block of count rows
    const double[:, ::1] log_p,        # IN  (d, k)
    const double[::1] log_norm,        # IN  (k,) log-weights (mixtures) or zeros
    Py_ssize_t chunk_size,
    int n_threads,
    double[:, ::1] workspace,          # TMP (>= n_threads, workspace_size)
    double[::1] log_prob,              # OUT (n,) log p(x_i), or (0,) to skip
    double[:, ::1] resp,               # OUT (n, k) posteriors, or (0, k) to skip
    Py_ssize_t[::1] labels,            # OUT (n,) most probable component, or (0,) to skip
):
    """Per-row log-likelihood, posteriors and labels of a block (no reduction)."""
    cdef Py_ssize_t n = X.shape[0], k = log_norm.shape[0]
    cdef MultinomialPass p
    cdef emission_t e
    fill_pass(X.shape[1], log_p, log_norm, chunk_size, &p, &e)
    cdef bint want_resp = resp.shape[0] > 0
    if (log_prob.shape[0] not in (0, n) or labels.shape[0] not in (0, n)
            or (want_resp and (resp.shape[0] != n or resp.shape[1] != k))):
        raise ValueError("fastem: outputs must be (n,), (n, k), (n,) or empty")
    if n == 0:
        return
    predict_chunks(&e, &X[0, 0], n, chunk_size, n_threads, workspace,
                   &log_prob[0] if log_prob.shape[0] else NULL,
                   &resp[0, 0] if want_resp else NULL,
                   &labels[0] if labels.shape[0] else NULL, NULL)


def log_density_block(
    const floating[:, ::1] X,          # IN  (n, d) block of count rows
    const double[:, ::1] log_p,        # IN  (d, k)
    const double[::1] log_norm,        # IN  (k,)
    Py_ssize_t chunk_size,
    int n_threads,
    double[:, ::1] workspace,          # TMP (>= n_threads, workspace_size)
    double[:, ::1] out,                # OUT (n, k) log_norm[k] + log p(x_i | k)
):
    """Per-row component log-densities of a block; -inf for rows out of support."""
    cdef Py_ssize_t n = X.shape[0]
    cdef MultinomialPass p
    cdef emission_t e
    fill_pass(X.shape[1], log_p, log_norm, chunk_size, &p, &e)
    if out.shape[0] != n or out.shape[1] != p.k:
        raise ValueError("fastem: out must have shape (n, k)")
    if n == 0:
        return
    predict_chunks(&e, &X[0, 0], n, chunk_size, n_threads, workspace, NULL, NULL, NULL,
                   &out[0, 0])
