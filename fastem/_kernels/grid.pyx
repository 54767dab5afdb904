# One E-step for a whole grid of Gaussian mixtures (fastem.select): every candidate's
# log-densities, posteriors and statistics from one set of features per chunk.
#
# With v = x - c for one centre c shared by every candidate (converted to float64 first), a
# chunk's features t(x) = [1, v, v_a^2, v_a v_b (a < b)] are computed once (_grid.h); the
# diagonal candidates read the prefix [1, v, v^2]. One GEMM of t against the natural
# parameters of every full candidate's components (and one of the prefix against every
# diagonal one's) gives all log-densities; a log-sum-exp per candidate (segments of columns)
# gives the posteriors, the log-likelihood and, when scoring, the entropy of the posteriors;
# one GEMM r' t per covariance type gives every candidate's statistics [s0, s1, s2] about c.
# Against one kernel per candidate this computes the features and their conversion once and
# runs each GEMM on all columns at once (about 55 full and 55 diagonal components for K = 1..10
# at D = 8) instead of on 1-10 columns; the flops are the same.
#
# Layouts (all float64): W_full (k_full, 2d + d(d-1)/2) and W_diag (k_diag, 2d), row c the
# weights of features [v, v^2, products] of component c (the constant is log_norm[c]);
# ``bounds`` (n_candidates + 1) the first column of each candidate, full candidates first. A
# chunk's result, added into ``out`` in chunk order (bitwise the same for any n_threads), is
# [per candidate: loglik, weight, entropy, lowest log p(x_i), its row | S_full (full_features,
# k_full) | S_diag (diag_features, k_diag)], S = sum_i w_i r_ic t(x_i) with t's constant giving
# s0; the lowest log p(x_i) and its row are reduced by min (the first such row), the row stored
# plus one (0: none yet, so that ``out`` starts as zeros).
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport INFINITY

import numpy as np

from ._linalg cimport gemm_colmajor

cdef extern from "fastem/_kernels/_grid.h" nogil:
    void fastem_grid_features_f32(int products, const float* x, Py_ssize_t n, Py_ssize_t d,
                                  const double* centre, const double* weights, double* t,
                                  double* bad)
    void fastem_grid_features_f64(int products, const double* x, Py_ssize_t n, Py_ssize_t d,
                                  const double* centre, const double* weights, double* t,
                                  double* bad)
    void fastem_grid_posteriors(double* a, Py_ssize_t n, Py_ssize_t k, const double* log_norm,
                                const double* weights, double* lse, double* entropy,
                                double* top, double* total)

cdef enum:
    SCALARS = 5  # per candidate: loglik, weight, entropy, lowest log p(x_i), its row


cpdef Py_ssize_t full_features(Py_ssize_t d) noexcept nogil:
    """Features of a full candidate: [1, v, v^2, v_a v_b (a < b)]."""
    return 1 + 2 * d + d * (d - 1) // 2


cpdef Py_ssize_t diag_features(Py_ssize_t d) noexcept nogil:
    """Features of a diagonal candidate: [1, v, v^2]."""
    return 1 + 2 * d


cpdef Py_ssize_t result_size(Py_ssize_t d, Py_ssize_t k_full, Py_ssize_t k_diag,
                             Py_ssize_t n_candidates) noexcept nogil:
    """Length of a block's result (see the header)."""
    return (SCALARS * n_candidates + full_features(d) * k_full + diag_features(d) * k_diag)


cpdef Py_ssize_t scratch_size(Py_ssize_t chunk_size, Py_ssize_t d, Py_ssize_t k) noexcept nogil:
    """float64 elements of per-thread scratch for chunks of ``chunk_size`` rows and k columns."""
    return chunk_size * (full_features(d) + k + 5)


cdef void grid_chunk(
    const floating* x, Py_ssize_t n, Py_ssize_t d,   # IN  chunk rows (n, d)
    const double* weights,                           # IN  (n,) sample weights, or NULL for ones
    const double* centre,                            # IN  (d,) c
    const double* w_full, Py_ssize_t k_full,         # IN  (k_full, full_features - 1)
    const double* w_diag, Py_ssize_t k_diag,         # IN  (k_diag, diag_features - 1)
    const double* log_norm,                          # IN  (k_full + k_diag,)
    const Py_ssize_t* bounds,                        # IN  (n_candidates + 1,) first columns
    Py_ssize_t n_candidates,
    const Py_ssize_t* resp_in,                       # IN  per candidate the address of its
                                                     #     given (n, k_j) responsibilities at
                                                     #     this chunk's first row, or NULL
    bint score,                                      # IN  entropy, no statistics
    double* ws,                                      # TMP scratch_size(n, d, k) doubles
    double* slot,                                    # OUT the chunk's result (when scoring:
                                                     #     its scalars only)
) noexcept nogil:
    cdef Py_ssize_t ff = full_features(d), fd = diag_features(d), k = k_full + k_diag
    cdef Py_ssize_t f = ff if k_full else fd
    cdef Py_ssize_t i, j, c, lo, hi, worst_row
    cdef double* t = ws
    cdef double* a = t + f * n
    cdef double* lse = a + k * n
    cdef double* entropy = lse + n
    cdef double* bad = entropy + n
    cdef double* top = bad + n
    cdef double* total = top + n
    cdef double* out
    cdef double w, loglik, weight, ent, lowest
    cdef const double* given
    cdef bint any_bad = False
    if floating is double:
        fastem_grid_features_f64(k_full > 0, x, n, d, centre, weights, t, bad)
    else:
        fastem_grid_features_f32(k_full > 0, x, n, d, centre, weights, t, bad)
    if resp_in != NULL:  # given responsibilities, weighted, component-major
        for j in range(n_candidates):
            lo, hi = bounds[j], bounds[j + 1]
            given = <const double*> resp_in[j]
            for i in range(n):
                w = 1.0 if weights == NULL else weights[i]
                for c in range(lo, hi):
                    a[c * n + i] = w * given[i * (hi - lo) + c - lo]
            out = slot + SCALARS * j
            weight = 0.0
            for i in range(n):
                weight += 1.0 if weights == NULL else weights[i]
            out[0], out[1], out[2], out[3], out[4] = 0.0, weight, 0.0, INFINITY, -1
    if k_full and resp_in == NULL:
        gemm_colmajor(c'N', c'N', <int> n, <int> k_full, <int> (ff - 1), t + n, <int> n,
                      w_full, <int> (ff - 1), a, <int> n)
    if k_diag and resp_in == NULL:
        gemm_colmajor(c'N', c'N', <int> n, <int> k_diag, <int> (fd - 1), t + n, <int> n,
                      w_diag, <int> (fd - 1), a + k_full * n, <int> n)
    for j in range(n_candidates if resp_in == NULL else 0):
        lo, hi = bounds[j], bounds[j + 1]
        fastem_grid_posteriors(a + lo * n, n, hi - lo, log_norm + lo, weights, lse,
                               entropy if score else NULL, top, total)
        loglik, weight, ent, lowest, worst_row = 0.0, 0.0, 0.0, INFINITY, -1
        for i in range(n):
            w = 1.0 if weights == NULL else weights[i]
            if w != 0.0:  # a zero-weight row adds nothing, even if lse is -inf
                loglik += w * lse[i]
                if score:
                    ent += w * entropy[i]
                if lse[i] < lowest:
                    lowest, worst_row = lse[i], i
            weight += w
        out = slot + SCALARS * j
        out[0], out[1], out[2], out[3], out[4] = loglik, weight, ent, lowest, worst_row
    if score:
        return
    for i in range(n):
        any_bad = any_bad or bad[i] != 0.0
    if any_bad:  # zero posterior times an overflowing feature would be NaN in r' t
        for c in range(f):
            for i in range(n):
                if bad[i] != 0.0:
                    t[c * n + i] = 0.0
    out = slot + SCALARS * n_candidates
    if k_full:  # S (ff, k_full) row-major = (k_full, ff) column-major = r' t
        gemm_colmajor(c'T', c'N', <int> k_full, <int> ff, <int> n, a, <int> n, t, <int> n,
                      out, <int> k_full)
    if k_diag:
        gemm_colmajor(c'T', c'N', <int> k_diag, <int> fd, <int> n, a + k_full * n, <int> n,
                      t, <int> n, out + ff * k_full, <int> k_diag)


def grid_block(
    const floating[:, ::1] X,            # IN  block rows (n, d)
    const double[::1] weights,           # IN  (n,) sample weights, or empty for ones
    const double[::1] centre,            # IN  (d,) c
    const double[:, ::1] w_full,         # IN  (k_full, full_features - 1)
    const double[:, ::1] w_diag,         # IN  (k_diag, diag_features - 1)
    const double[::1] log_norm,          # IN  (k_full + k_diag,)
    const Py_ssize_t[::1] bounds,        # IN  (n_candidates + 1,) first column per candidate
    const Py_ssize_t[::1] resp_in,       # IN  per candidate the address of its given (n, k_j)
                                         #     C-contiguous float64 responsibilities (kept
                                         #     alive by the caller), or empty for the E-step
    bint score,                          # IN  entropy instead of statistics
    Py_ssize_t chunk_size, int n_threads,
    double[:, ::1] workspace,            # TMP (>= n_threads, scratch_size)
    double[:, ::1] slots,                # TMP (>= n_chunks, result_size)
    double[::1] out,                     # OUT += the block's result, in chunk order
    Py_ssize_t row_offset,               # IN  the block's first row in the whole data
):
    """Add one block's result into ``out`` (see the header)."""
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], k_full = w_full.shape[0]
    cdef Py_ssize_t k_diag = w_diag.shape[0], n_candidates = bounds.shape[0] - 1
    cdef Py_ssize_t size = result_size(d, k_full, k_diag, n_candidates)
    cdef Py_ssize_t n_chunks = (n + chunk_size - 1) // chunk_size, c, j, start, rows
    cdef const double* wp = NULL if weights.shape[0] == 0 else &weights[0]
    cdef const double* wf = NULL if k_full == 0 else &w_full[0, 0]
    cdef const double* wd = NULL if k_diag == 0 else &w_diag[0, 0]
    cdef double* ws
    cdef double* slot
    cdef double* res
    cdef Py_ssize_t[:, ::1] given = None
    if n == 0:
        return
    if (log_norm.shape[0] != k_full + k_diag or centre.shape[0] != d or out.shape[0] != size
            or bounds[0] != 0 or bounds[n_candidates] != k_full + k_diag
            or (k_full and w_full.shape[1] != full_features(d) - 1)
            or (k_diag and w_diag.shape[1] != diag_features(d) - 1)
            or (wp != NULL and weights.shape[0] != n)):
        raise ValueError("fastem: grid parameters do not match the block")
    if resp_in.shape[0] not in (0, n_candidates) or (resp_in.shape[0] and score):
        raise ValueError("fastem: given responsibilities must be one per candidate, to fit")
    if resp_in.shape[0]:  # each candidate's address at the first row of each chunk
        given = np.empty((n_chunks, n_candidates), dtype=np.intp)
        for c in range(n_chunks):
            for j in range(n_candidates):
                given[c, j] = resp_in[j] + c * chunk_size * (bounds[j + 1] - bounds[j]) * sizeof(double)
    if (workspace.shape[0] < n_threads
            or workspace.shape[1] < scratch_size(chunk_size, d, k_full + k_diag)
            or slots.shape[0] < n_chunks or slots.shape[1] < size):
        raise ValueError("fastem: grid workspace too small for this block")
    with nogil, parallel(num_threads=min(n_threads, n_chunks)):
        ws = &workspace[threadid(), 0]
        for c in prange(n_chunks, schedule="dynamic"):
            start = c * chunk_size
            rows = min(chunk_size, n - start)
            slot = &slots[c, 0]  # every entry is written (the GEMMs overwrite)
            grid_chunk(&X[start, 0], rows, d, (wp + start) if wp != NULL else NULL,
                       &centre[0], wf, k_full, wd, k_diag, &log_norm[0], &bounds[0],
                       n_candidates, &given[c, 0] if given is not None else NULL, score, ws,
                       slot)
    for c in range(n_chunks):  # in chunk order: the rounding does not depend on threads
        for j in range(n_candidates):
            res = &slots[c, SCALARS * j]
            out[SCALARS * j] += res[0]
            out[SCALARS * j + 1] += res[1]
            out[SCALARS * j + 2] += res[2]
            if res[4] >= 0 and (out[SCALARS * j + 4] == 0 or res[3] < out[SCALARS * j + 3]):
                out[SCALARS * j + 3] = res[3]
                out[SCALARS * j + 4] = row_offset + c * chunk_size + res[4] + 1
        for j in range(SCALARS * n_candidates, 0 if score else size):
            out[j] += slots[c, j]
