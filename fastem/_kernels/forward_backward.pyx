# Forward-backward and Viterbi for hidden Markov models, over a block of whole sequences.
#
# Input is a block of emission log-densities L[t, k] = log p(x_t | z_t = k) (n, K), computed by
# the family's own kernel (log_density_block), and the sequences' bounds inside the block.
# Sequences are independent given the parameters, so they are spread over threads (OpenMP prange,
# dynamic schedule); each sequence writes its log-likelihood and its start and transition counts
# into its own slot, and the slots are added in sequence order after the parallel loop, so the
# sums are bitwise the same for any number of threads.
#
# Forward-backward runs in the scaled (probability) domain, not the log domain (Rabiner 1989,
# section V.A): each row of emission log-densities is shifted by its maximum m_t and
# exponentiated once, b_tk = exp(L_tk - m_t) in [0, 1] with max_k b_tk = 1 (all rows of a
# sequence at once, by the vectorised exp of _vexp.h, which flushes values below 2^-1022 to
# zero), and the forward messages are renormalised to sum to one at every step by c_t, so
#     alpha_t = b_t * (alpha_{t-1} A) / c_t,    log p(x_1..T) = sum_t (log c_t + m_t).
# The recursions are then K x K multiply-adds per row instead of K x K exp/log pairs (a
# log-domain recursion needs a log-sum-exp per state and row), and nothing under- or overflows:
# alpha_{t-1} sums to one and the largest b_tk is 1, so c_t can only vanish when every state
# reachable from alpha_{t-1} has an emission density exp(-708) times smaller than the row's best,
# in which case the sequence's log-likelihood is reported as -inf (the EM loop then raises).
# The backward pass reuses the same scales, beta_{t-1} = A (b_t * beta_t) / c_t, and
#     gamma_t = alpha_t * beta_t,    xi_{t-1,t}(j, k) = alpha_{t-1,j} A_jk b_tk beta_tk / c_t,
# so posteriors overwrite the forward messages row by row (going backwards, alpha_{t-1} is read
# for xi before it is overwritten by gamma_{t-1}), and xi is summed straight into the sequence's
# K x K slot: no T x K x K array ever exists. Zero start or transition probabilities give exactly
# zero counts, so left-right models stay left-right through EM.
#
# Viterbi runs in the log domain (max-product needs no normalisation and log is exact for it):
# delta_t(k) = L_tk + max_j (delta_{t-1}(j) + log A_jk), with back-pointers (n, K) and the first
# maximum taken on ties.
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport log, INFINITY
from libc.string cimport memset

import numpy as np


cdef extern from "fastem/_kernels/_vexp.h" nogil:
    void fastem_exp_rows(double* a, Py_ssize_t n, Py_ssize_t k, const double* shift)

cdef extern from "fastem/_kernels/_chain.h" nogil:
    void fastem_forward_row(const double* prev, const double* transmat_t, const double* b,
                            Py_ssize_t k, double* alpha)
    void fastem_backward_row(double* alpha, const double* transmat, const double* transmat_t,
                             const double* w, Py_ssize_t k, double* beta, double* xi)


cdef void scale_rows(
    double* frame,                     # IN  log-densities (T, k); OUT exp(row - its max)
    Py_ssize_t T, Py_ssize_t k,
    double* shift,                     # OUT (T,) each row's maximum (0 for an all -inf row)
) noexcept nogil:
    """Shift each row of log-densities by its maximum and exponentiate it (the vectorised exp
    of _vexp.h): values in [0, 1], the largest 1; a row of zero densities stays all zero."""
    cdef Py_ssize_t t, j
    cdef double m
    cdef double* row
    for t in range(T):
        row = frame + t * k
        m = row[0]
        for j in range(1, k):
            m = row[j] if row[j] > m else m  # a select, not a branch the data mispredicts
        shift[t] = m if m > -INFINITY else 0.0
    fastem_exp_rows(frame, T, k, shift)


cdef inline double normalize(double* a, Py_ssize_t k) noexcept nogil:
    """Divide (k,) by its sum, which is returned (a zero sum leaves ``a`` unchanged)."""
    cdef Py_ssize_t j
    cdef double c = 0.0
    for j in range(k):
        c += a[j]
    if c > 0.0:
        for j in range(k):
            a[j] /= c
    return c


cdef void sequence_posteriors(
    double* frame,                     # IN  log-densities (T, k); OUT b_t = exp(L_t - m_t)
    Py_ssize_t T, Py_ssize_t k,
    const double* startprob,           # IN  (k,)
    const double* transmat,            # IN  (k, k), rows sum to one
    const double* transmat_t,          # IN  (k, k) its transpose
    double* gamma,                     # OUT (T, k) posteriors p(z_t = k | x)
    double* scale,                     # TMP (T,) the rows' maxima m_t, then their scales c_t
    double* beta,                      # TMP (k,)
    double* w,                         # TMP (k,)
    double* slot,                      # OUT [log p(x), start counts (k), transition counts (k*k)]
) noexcept nogil:
    """Scaled forward-backward of one sequence into its zeroed ``slot`` (see the header)."""
    cdef Py_ssize_t t, j
    cdef double c, inv, ll = 0.0
    cdef double* alpha
    cdef double* xi = slot + 1 + k
    scale_rows(frame, T, k, scale)
    # forward: alpha_t (normalised) into gamma's rows
    for t in range(T):
        alpha = gamma + t * k
        if t == 0:
            for j in range(k):
                alpha[j] = startprob[j] * frame[j]
        else:
            fastem_forward_row(alpha - k, transmat_t, frame + t * k, k, alpha)
        c = normalize(alpha, k)
        if not c > 0.0:  # no state can emit this row: zero likelihood, no statistics
            memset(gamma, 0, T * k * sizeof(double))
            memset(slot, 0, (1 + k + k * k) * sizeof(double))
            slot[0] = -INFINITY
            return
        ll += log(c) + scale[t]
        scale[t] = c
    slot[0] = ll
    # backward: beta_T = 1; gamma_{T-1} = alpha_{T-1} already
    for j in range(k):
        beta[j] = 1.0
    for t in range(T - 1, 0, -1):
        inv = 1.0 / scale[t]
        for j in range(k):
            w[j] = frame[t * k + j] * beta[j] * inv
        # alpha_{t-1} becomes gamma_{t-1}; beta becomes beta_{t-1}
        fastem_backward_row(gamma + (t - 1) * k, transmat, transmat_t, w, k, beta, xi)
    for j in range(k):
        slot[1 + j] = gamma[j]


def forward_backward(
    double[:, ::1] frame,              # IN  log p(x_t | z_t = k) (n, k); OUT scaled densities
    const Py_ssize_t[::1] bounds,      # IN  (n_seq + 1,) sequence starts in the block, then n
    const double[::1] startprob,       # IN  (k,)
    const double[:, ::1] transmat,     # IN  (k, k)
    int n_threads,
    double[:, ::1] gamma,              # OUT (n, k) posteriors
    double[::1] scale,                 # TMP (n,)
    double[:, ::1] workspace,          # TMP (>= n_threads, 2 k)
    double[:, ::1] slots,              # TMP (>= n_seq, 1 + k + k*k)
    double[::1] chain,                 # OUT += [log p(x), start (k), transitions (k*k)]
    double[::1] seq_ll,                # OUT (n_seq,) log p of each sequence, or empty
):
    """Posteriors of a block of sequences, GIL released; adds the block's log-likelihood and
    chain statistics into ``chain`` in sequence order."""
    cdef Py_ssize_t n = frame.shape[0], k = frame.shape[1], n_seq = bounds.shape[0] - 1
    cdef Py_ssize_t size = 1 + k + k * k, s, j, start, T
    cdef double* ws
    cdef const double[:, ::1] transmat_t
    if (gamma.shape[0] != n or gamma.shape[1] != k or scale.shape[0] != n
            or startprob.shape[0] != k or transmat.shape[0] != k or transmat.shape[1] != k):
        raise ValueError("fastem: forward_backward buffers do not match the frame")
    if n_threads < 1 or workspace.shape[0] < n_threads or workspace.shape[1] < 2 * k:
        raise ValueError("fastem: forward_backward workspace too small for these threads")
    if slots.shape[0] < n_seq or slots.shape[1] < size or chain.shape[0] != size:
        raise ValueError("fastem: forward_backward slots do not match the block")
    if n_seq < 1 or bounds[0] != 0 or bounds[n_seq] != n:
        raise ValueError("fastem: sequence bounds must run from 0 to the block's rows")
    for s in range(n_seq):
        if bounds[s + 1] <= bounds[s]:
            raise ValueError("fastem: every sequence needs at least one row")
    transmat_t = np.ascontiguousarray(np.asarray(transmat).T)
    with nogil, parallel(num_threads=min(n_threads, n_seq)):
        ws = &workspace[threadid(), 0]
        for s in prange(n_seq, schedule="dynamic"):
            start = bounds[s]
            T = bounds[s + 1] - start
            memset(&slots[s, 0], 0, size * sizeof(double))
            sequence_posteriors(&frame[start, 0], T, k, &startprob[0], &transmat[0, 0],
                                &transmat_t[0, 0], &gamma[start, 0], &scale[start], ws, ws + k, &slots[s, 0])
    # the sequences' statistics one after the other: the order fixes the rounding
    for s in range(n_seq):
        for j in range(size):
            chain[j] += slots[s, j]
    if seq_ll.shape[0] != 0:
        for s in range(n_seq):
            seq_ll[s] = slots[s, 0]


cdef void sequence_viterbi(
    const double* frame,               # IN  log-densities (T, k)
    Py_ssize_t T, Py_ssize_t k,
    const double* log_start,           # IN  (k,)
    const double* log_trans,           # IN  (k, k)
    Py_ssize_t* back,                  # TMP (T, k) back-pointers
    double* delta, double* nxt,        # TMP (k,), (k,)
    Py_ssize_t* states,                # OUT (T,) most likely state path
    double* best,                      # OUT log p(x, path)
) noexcept nogil:
    """Log-domain Viterbi of one sequence (first maximum on ties)."""
    cdef Py_ssize_t t, i, j, arg
    cdef double v, top
    cdef double* tmp
    for j in range(k):
        delta[j] = log_start[j] + frame[j]
    for t in range(1, T):
        for j in range(k):
            arg = 0
            top = delta[0] + log_trans[j]
            for i in range(1, k):
                v = delta[i] + log_trans[i * k + j]
                if v > top:
                    top, arg = v, i
            nxt[j] = top + frame[t * k + j]
            back[t * k + j] = arg
        tmp = delta
        delta = nxt
        nxt = tmp
    arg = 0
    for j in range(1, k):
        if delta[j] > delta[arg]:
            arg = j
    best[0] = delta[arg]
    states[T - 1] = arg
    for t in range(T - 1, 0, -1):
        arg = back[t * k + arg]
        states[t - 1] = arg


def viterbi(
    const double[:, ::1] frame,        # IN  log p(x_t | z_t = k) (n, k)
    const Py_ssize_t[::1] bounds,      # IN  (n_seq + 1,) sequence starts in the block, then n
    const double[::1] log_start,       # IN  (k,) log start probabilities
    const double[:, ::1] log_trans,    # IN  (k, k) log transition probabilities
    int n_threads,
    Py_ssize_t[:, ::1] back,           # TMP (n, k) back-pointers
    double[:, ::1] workspace,          # TMP (>= n_threads, 2 k)
    Py_ssize_t[::1] states,            # OUT (n,) most likely state of each row
    double[::1] seq_best,              # OUT (n_seq,) log p(x, best path) of each sequence
):
    """Most likely state paths of a block of sequences, GIL released."""
    cdef Py_ssize_t n = frame.shape[0], k = frame.shape[1], n_seq = bounds.shape[0] - 1
    cdef Py_ssize_t s, start
    cdef double* ws
    if (back.shape[0] != n or back.shape[1] != k or states.shape[0] != n
            or seq_best.shape[0] != n_seq or log_start.shape[0] != k
            or log_trans.shape[0] != k or log_trans.shape[1] != k):
        raise ValueError("fastem: viterbi buffers do not match the frame")
    if n_threads < 1 or workspace.shape[0] < n_threads or workspace.shape[1] < 2 * k:
        raise ValueError("fastem: viterbi workspace too small for these threads")
    if n_seq < 1 or bounds[0] != 0 or bounds[n_seq] != n:
        raise ValueError("fastem: sequence bounds must run from 0 to the block's rows")
    for s in range(n_seq):
        if bounds[s + 1] <= bounds[s]:
            raise ValueError("fastem: every sequence needs at least one row")
    with nogil, parallel(num_threads=min(n_threads, n_seq)):
        ws = &workspace[threadid(), 0]
        for s in prange(n_seq, schedule="dynamic"):
            start = bounds[s]
            sequence_viterbi(&frame[start, 0], bounds[s + 1] - start, k, &log_start[0],
                             &log_trans[0, 0], &back[start, 0], ws, ws + k, &states[start],
                             &seq_best[s])
