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
# The backward messages are self-normalised instead of sharing the forward's scales: v_{t-1} =
# A (b_t * v_t) / sum(v_t), any positive multiple of beta_{t-1} (entries <= 1). Each row's
# posteriors and transition counts are normalised on their own, with z_t = alpha_t . v_t:
#     gamma_t = alpha_t * v_t / z_t,
#     xi_{t-1,t}(j, k) = (alpha_{t-1,j} / z_{t-1}) A_jk b_tk v_tk / sum(v_t),
# (z_{t-1} is also xi's total, as A (b_t * v_t) / sum(v_t) = v_{t-1}). As the backward
# recursion no longer needs the forward pass, a long sequence can run its forward pass over its
# first half while its backward messages are walked in from the end (fastem/drivers/
# sequences.py). Neither scaling can represent a row whose forward and backward beliefs are
# more than ~1e308 apart (z below 2^-1022; the forward-scaled beta overflowed there, at a state
# the chain cannot be in, and 0 * inf gave NaN posteriors): e.g. a left-right chain forced for
# a few rows through states e^-700 below the row's best. Such a sequence gets log-likelihood
# -inf and no statistics, as when no state can emit a row; the log domain would be needed.
# so posteriors overwrite the forward messages row by row (going backwards, alpha_{t-1} is read
# for xi before it is overwritten by gamma_{t-1}), and xi is summed straight into the sequence's
# K x K slot: no T x K x K array ever exists. Zero start or transition probabilities give exactly
# zero counts, so left-right models stay left-right through EM. The row loops are in C
# (_chain.h): K-vectors held in registers, the forward messages carried unnormalised so that
# 1 / c_t is off the dependency chain from row to row, A factored out of xi's sum, and no log
# per row (the scales' product kept as a mantissa and a power of two).
#
# Viterbi runs in the log domain (max-product needs no normalisation and log is exact for it):
# delta_t(k) = L_tk + max_j (delta_{t-1}(j) + log A_jk), with back-pointers (n, K) and the first
# maximum taken on ties.
#
# Segments: forward_segment, backward_segment, beta_segment, viterbi_segment and
# viterbi_backtrack run the same row loops over a segment of one sequence, starting from the
# message of the row before (the unnormalised alpha with the log-likelihood so far) or after
# (the backward message), or the delta, for the checkpointed
# passes over sequences longer than memory (fastem/drivers/sequences.py). The whole-sequence
# functions call these loops too, so a sequence cut into segments gives bitwise the same
# messages, posteriors, log-likelihood (summed row by row through the segments), counts
# (summed backwards in the same order) and path.
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport log, INFINITY
from libc.string cimport memcpy, memset

import numpy as np


cdef extern from "fastem/_kernels/_vexp.h" nogil:
    void fastem_exp_rows(double* a, Py_ssize_t n, Py_ssize_t k, const double* shift)

cdef extern from "fastem/_kernels/_chain.h" nogil:
    void fastem_row_max(const double* a, Py_ssize_t n, Py_ssize_t k, double* shift)
    double fastem_forward_rows(const double* b, Py_ssize_t T, Py_ssize_t k, double* message,
                               int first, const double* startprob, const double* transmat_p,
                               double* alpha, double* scale)
    int fastem_backward_rows(const double* b, Py_ssize_t T, Py_ssize_t k, double* gamma,
                             const double* prev, const double* transmat_tp, double* v,
                             double* xi)
    void fastem_beta_rows(const double* b, Py_ssize_t T, Py_ssize_t k,
                          const double* transmat_tp, double* v)


cdef inline Py_ssize_t padded(Py_ssize_t k) noexcept nogil:
    """K rounded up to whole vectors of 4 lanes (_chain.h)."""
    return 4 * ((k + 3) // 4)


def workspace_size(Py_ssize_t k):
    """Doubles of workspace that each thread of forward_backward needs."""
    return padded(k) * padded(k) + 2 * k + 2


def message_size(Py_ssize_t k):
    """Doubles of the message that forward_segment carries from a segment to the next."""
    return k + 2


def padded_chain(transmat):
    """``(A, A's transpose)`` in (4kv, 4kv) arrays with zeros past K (_chain.h)."""
    k = transmat.shape[0]
    a = np.zeros((padded(k), padded(k)))
    a[:k, :k] = transmat
    return a, np.ascontiguousarray(a.T)


cdef void scale_rows(
    double* frame,                     # IN  log-densities (T, k); OUT exp(row - its max)
    Py_ssize_t T, Py_ssize_t k,
    double* shift,                     # OUT (T,) each row's maximum (0 for an all -inf row)
) noexcept nogil:
    """Shift each row of log-densities by its maximum and exponentiate it (the vectorised exp
    of _vexp.h): values in [0, 1], the largest 1; a row of zero densities stays all zero."""
    fastem_row_max(frame, T, k, shift)
    fastem_exp_rows(frame, T, k, shift)


cdef double forward_rows(
    double* frame,                     # IN  log-densities (T, k); OUT b_t = exp(L_t - m_t)
    Py_ssize_t T, Py_ssize_t k,
    double* message,                   # IN  (k + 2,) the state after the row before (unless
                                       #     first): r and the log-likelihood (_chain.h);
                                       #     OUT the state after the last row
    bint first,                        # IN  whether the rows start their sequence
    const double* startprob,           # IN  (k,)
    const double* transmat_p,          # IN  (4kv, 4kv) padded A
    double* alpha,                     # OUT (T, k) normalised forward messages
    double* scale,                     # OUT (T,) the rows' inverse scales 1 / c_t
) noexcept nogil:
    """Scaled forward pass over T rows of one sequence (see the header and _chain.h); returns
    the log-likelihood of the sequence's rows up to the last of these, or -inf when no state
    can emit a row."""
    scale_rows(frame, T, k, scale)
    return fastem_forward_rows(frame, T, k, message, first, startprob, transmat_p, alpha, scale)


cdef int backward_rows(
    const double* frame,               # IN  (T, k) scaled densities b_t of forward_rows
    Py_ssize_t T, Py_ssize_t k,
    double* gamma,                     # IN  (T, k) forward messages; OUT posteriors
    const double* prev,                # IN  (k,) r message of the row before, or NULL (first
                                       #     rows)
    const double* transmat_p,          # IN  (4kv, 4kv) padded A
    const double* transmat_tp,         # IN  (4kv, 4kv) its padded transpose
    double* v,                         # IN  (k,) backward message of the last row (ones at
                                       #     the sequence's end); OUT that of the row before
                                       #     the first (prev given), else undefined
    double* xi,                        # TMP (4kv, 4kv)
    double* chain,                     # OUT += [start counts (k) when prev is NULL,
                                       #         transition counts (k*k)]
) noexcept nogil:
    """Self-normalised backward pass over T rows of one sequence, from the message of its last
    row: the posteriors over the forward messages, transition counts summed into ``chain``
    (those into the first row too, when ``prev`` is given) and, at the sequence's start, the
    start counts. The transition counts are summed row by row before their product with A
    (_chain.h), which is taken at the sequence's start (prev NULL): until then ``chain``
    holds the sums, so segments taken from the end give the counts of one piece bitwise.
    Returns -1 when a row's posterior is not representable (see the header), else 0."""
    cdef Py_ssize_t i, j, kp = padded(k)
    cdef int status
    memset(xi, 0, kp * kp * sizeof(double))
    for i in range(k):
        memcpy(xi + i * kp, chain + k + i * k, k * sizeof(double))
    status = fastem_backward_rows(frame, T, k, gamma, prev, transmat_tp, v, xi)
    for i in range(k):
        memcpy(chain + k + i * k, xi + i * kp, k * sizeof(double))
    if prev == NULL:
        for i in range(k):
            for j in range(k):
                chain[k + i * k + j] *= transmat_p[i * kp + j]
        for j in range(k):
            chain[j] += gamma[j]
    return status


cdef void sequence_posteriors(
    double* frame,                     # IN  log-densities (T, k); OUT b_t = exp(L_t - m_t)
    Py_ssize_t T, Py_ssize_t k,
    const double* startprob,           # IN  (k,)
    const double* transmat_p,          # IN  (4kv, 4kv) padded A
    const double* transmat_tp,         # IN  (4kv, 4kv) its padded transpose
    double* gamma,                     # OUT (T, k) posteriors p(z_t = k | x)
    double* scale,                     # TMP (T,)
    double* ws,                        # TMP (workspace_size(k),)
    double* slot,                      # OUT [log p(x), start counts (k), transition counts (k*k)]
) noexcept nogil:
    """Scaled forward-backward of one sequence into its zeroed ``slot`` (see the header)."""
    cdef Py_ssize_t j
    cdef double* v = ws + k + 2
    slot[0] = forward_rows(frame, T, k, ws, True, startprob, transmat_p, gamma, scale)
    if slot[0] != -INFINITY:
        for j in range(k):
            v[j] = 1.0
        if backward_rows(frame, T, k, gamma, NULL, transmat_p, transmat_tp, v, ws + 2 * k + 2,
                         slot + 1) == 0:
            return
    memset(slot, 0, (1 + k + k * k) * sizeof(double))  # no statistics
    slot[0] = -INFINITY
    memset(gamma, 0, T * k * sizeof(double))


def forward_backward(
    double[:, ::1] frame,              # IN  log p(x_t | z_t = k) (n, k); OUT scaled densities
    const Py_ssize_t[::1] bounds,      # IN  (n_seq + 1,) sequence starts in the block, then n
    const double[::1] startprob,       # IN  (k,)
    const double[:, ::1] transmat,     # IN  (k, k)
    int n_threads,
    double[:, ::1] gamma,              # OUT (n, k) posteriors
    double[::1] scale,                 # TMP (n,)
    double[:, ::1] workspace,          # TMP (>= n_threads, workspace_size(k))
    double[:, ::1] slots,              # TMP (>= n_seq, 1 + k + k*k)
    double[::1] chain,                 # OUT += [log p(x), start (k), transitions (k*k)]
    double[::1] seq_ll,                # OUT (n_seq,) log p of each sequence, or empty
):
    """Posteriors of a block of sequences, GIL released; adds the block's log-likelihood and
    chain statistics into ``chain`` in sequence order."""
    cdef Py_ssize_t n = frame.shape[0], k = frame.shape[1], n_seq = bounds.shape[0] - 1
    cdef Py_ssize_t size = 1 + k + k * k, s, j, start, T
    cdef double* ws
    cdef const double[:, ::1] transmat_p, transmat_tp
    if (gamma.shape[0] != n or gamma.shape[1] != k or scale.shape[0] != n
            or startprob.shape[0] != k or transmat.shape[0] != k or transmat.shape[1] != k):
        raise ValueError("fastem: forward_backward buffers do not match the frame")
    if n_threads < 1 or workspace.shape[0] < n_threads or workspace.shape[1] < workspace_size(k):
        raise ValueError("fastem: forward_backward workspace too small for these threads")
    if slots.shape[0] < n_seq or slots.shape[1] < size or chain.shape[0] != size:
        raise ValueError("fastem: forward_backward slots do not match the block")
    if n_seq < 1 or bounds[0] != 0 or bounds[n_seq] != n:
        raise ValueError("fastem: sequence bounds must run from 0 to the block's rows")
    for s in range(n_seq):
        if bounds[s + 1] <= bounds[s]:
            raise ValueError("fastem: every sequence needs at least one row")
    transmat_p, transmat_tp = padded_chain(np.asarray(transmat))
    with nogil, parallel(num_threads=min(n_threads, n_seq)):
        ws = &workspace[threadid(), 0]
        for s in prange(n_seq, schedule="dynamic"):
            start = bounds[s]
            T = bounds[s + 1] - start
            memset(&slots[s, 0], 0, size * sizeof(double))
            sequence_posteriors(&frame[start, 0], T, k, &startprob[0], &transmat_p[0, 0],
                                &transmat_tp[0, 0], &gamma[start, 0], &scale[start], ws,
                                &slots[s, 0])
    # the sequences' statistics one after the other: the order fixes the rounding
    for s in range(n_seq):
        for j in range(size):
            chain[j] += slots[s, j]
    if seq_ll.shape[0] != 0:
        for s in range(n_seq):
            seq_ll[s] = slots[s, 0]


def forward_segment(
    double[:, ::1] frame,              # IN  log p(x_t | z_t = k) (n, k), or the scaled
                                       #     densities when `scaled`; OUT scaled densities
    double[::1] message,               # IN  (message_size(k),) the forward state after the row
                                       #     before (unless first): its unnormalised message
                                       #     r and the log-likelihood so far (_chain.h); OUT
                                       #     the state after the segment's last row
    bint first,                        # IN  whether the segment starts its sequence
    const double[::1] startprob,       # IN  (k,)
    const double[:, ::1] transmat,     # IN  (k, k)
    double[:, ::1] alpha,              # OUT (n, k) normalised forward messages
    double[::1] scale,                 # IN  the rows' shifts when `scaled`; OUT (n,) the rows'
                                       #     inverse scales 1 / c_t
    bint scaled=False,                 # IN  whether `frame` holds scaled densities already
                                       #     (those of beta_segment, with its shifts)
):
    """Forward pass over a segment of one sequence (one thread, GIL released): returns the
    log-likelihood of the sequence's rows up to the segment's last, or -inf when no state can
    emit a row. A sequence cut into segments gives bitwise the messages and log-likelihood of
    one piece, and so does a segment whose densities beta_segment scaled (``scaled``)."""
    cdef double ll
    cdef Py_ssize_t n = frame.shape[0], k = frame.shape[1]
    if (n < 1 or alpha.shape[0] != n or alpha.shape[1] != k or scale.shape[0] != n
            or message.shape[0] != k + 2 or startprob.shape[0] != k or transmat.shape[0] != k
            or transmat.shape[1] != k):
        raise ValueError("fastem: forward_segment buffers do not match the frame")
    cdef const double[:, ::1] transmat_p = padded_chain(np.asarray(transmat))[0]
    with nogil:
        if not scaled:
            scale_rows(&frame[0, 0], n, k, &scale[0])
        ll = fastem_forward_rows(&frame[0, 0], n, k, &message[0], first, &startprob[0],
                                 &transmat_p[0, 0], &alpha[0, 0], &scale[0])
    return ll


def backward_segment(
    const double[:, ::1] frame,        # IN  (n, k) scaled densities of forward_segment
    double[:, ::1] gamma,              # IN  (n, k) its forward messages; OUT posteriors
    const double[::1] prev,            # IN  (message_size(k),) forward_segment's message
                                       #     after the row before, or (0,) when first
    const double[:, ::1] transmat,     # IN  (k, k)
    double[::1] message,               # IN  (k,) backward message of the last row (ones at
                                       #     the sequence's end); OUT that of the row before
                                       #     the segment
    double[::1] chain,                 # IN  zeros at the first segment walked back, then what
                                       #     the segment after this one left; OUT [start
                                       #     counts (k), transition counts (k*k)] once the
                                       #     sequence's first segment is done
):
    """Backward pass over a segment of one sequence, after its forward pass (one thread,
    GIL released): segments taken from the sequence's end give bitwise the posteriors and
    counts of one piece (the counts added in the same order). Returns False when a row's
    posterior is not representable (the sequence then has no statistics, see the header)."""
    cdef Py_ssize_t n = frame.shape[0], k = frame.shape[1]
    cdef const double* p = NULL if prev.shape[0] == 0 else &prev[0]
    cdef int status
    if (n < 1 or gamma.shape[0] != n or gamma.shape[1] != k
            or (p != NULL and prev.shape[0] != k + 2) or message.shape[0] != k
            or chain.shape[0] != k + k * k or transmat.shape[0] != k or transmat.shape[1] != k):
        raise ValueError("fastem: backward_segment buffers do not match the frame")
    cdef const double[:, ::1] transmat_p, transmat_tp
    transmat_p, transmat_tp = padded_chain(np.asarray(transmat))
    cdef double[::1] xi = np.empty(padded(k) * padded(k))
    with nogil:
        status = backward_rows(&frame[0, 0], n, k, &gamma[0, 0], p, &transmat_p[0, 0],
                               &transmat_tp[0, 0], &message[0], &xi[0], &chain[0])
    return status == 0


def beta_segment(
    double[:, ::1] frame,              # IN  log p(x_t | z_t = k) (n, k); OUT scaled densities
    const double[:, ::1] transmat,     # IN  (k, k)
    double[::1] message,               # IN  (k,) backward message of the segment's last row
                                       #     (ones at the sequence's end); OUT that of the row
                                       #     before the segment
    double[::1] shift,                 # TMP (n,)
):
    """The backward messages of a segment alone, without its forward pass (one thread, GIL
    released): bitwise those that backward_segment carries, so a sequence's end can be walked
    back, checkpointed, while its start goes forward."""
    cdef Py_ssize_t n = frame.shape[0], k = frame.shape[1]
    if (n < 1 or shift.shape[0] != n or message.shape[0] != k or transmat.shape[0] != k
            or transmat.shape[1] != k):
        raise ValueError("fastem: beta_segment buffers do not match the frame")
    cdef const double[:, ::1] transmat_tp = padded_chain(np.asarray(transmat))[1]
    with nogil:
        scale_rows(&frame[0, 0], n, k, &shift[0])
        fastem_beta_rows(&frame[0, 0], n, k, &transmat_tp[0, 0], &message[0])


cdef void viterbi_rows(
    const double* frame,               # IN  log-densities (T, k)
    Py_ssize_t T, Py_ssize_t k,
    const double* prev,                # IN  (k,) delta of the row before, or NULL (start)
    const double* log_start,           # IN  (k,) used when prev is NULL
    const double* log_trans,           # IN  (k, k)
    Py_ssize_t* back,                  # OUT (T, k) back-pointers (row 0's: into prev's row)
    double* delta, double* nxt,        # OUT (k,) delta of the last row; TMP (k,)
) noexcept nogil:
    """Log-domain Viterbi recursion over T rows of one sequence (first maximum on ties)."""
    cdef Py_ssize_t t, i, j, arg
    cdef double v, top
    cdef const double* last = prev
    cdef double* tmp
    for t in range(T):
        if t == 0 and prev == NULL:
            for j in range(k):
                nxt[j] = log_start[j] + frame[j]
        else:
            for j in range(k):
                arg = 0
                top = last[0] + log_trans[j]
                for i in range(1, k):
                    v = last[i] + log_trans[i * k + j]
                    if v > top:
                        top, arg = v, i
                nxt[j] = top + frame[t * k + j]
                back[t * k + j] = arg
        tmp = nxt
        nxt = delta
        delta = tmp
        last = delta
    if T % 2 == 1:  # the last row's delta landed in the other buffer
        memcpy(nxt, delta, k * sizeof(double))


cdef Py_ssize_t backtrack(
    const Py_ssize_t* back,            # IN  (T, k) back-pointers of viterbi_rows
    Py_ssize_t T, Py_ssize_t k,
    Py_ssize_t state,                  # IN  the state of the last row
    Py_ssize_t* states,                # OUT (T,) the best path through these rows
) noexcept nogil:
    """Follow the back-pointers from the last row; returns the state of the row before (the
    first row's back-pointer, meaningful when the rows did not start the sequence)."""
    cdef Py_ssize_t t
    states[T - 1] = state
    for t in range(T - 1, 0, -1):
        state = back[t * k + state]
        states[t - 1] = state
    return back[state]


cdef Py_ssize_t first_max(const double* v, Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t j, arg = 0
    for j in range(1, k):
        if v[j] > v[arg]:
            arg = j
    return arg


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
    cdef Py_ssize_t arg
    viterbi_rows(frame, T, k, NULL, log_start, log_trans, back, delta, nxt)
    arg = first_max(delta, k)
    best[0] = delta[arg]
    backtrack(back, T, k, arg, states)


def viterbi_segment(
    const double[:, ::1] frame,        # IN  log p(x_t | z_t = k) (n, k)
    double[::1] delta,                 # IN  delta of the row before (unless first); OUT delta
                                       #     of the segment's last row
    bint first,                        # IN  whether the segment starts its sequence
    const double[::1] log_start,       # IN  (k,)
    const double[:, ::1] log_trans,    # IN  (k, k)
    Py_ssize_t[:, ::1] back,           # OUT (n, k) back-pointers
):
    """Viterbi recursion over a segment of one sequence (one thread, GIL released); a
    sequence cut into segments gives bitwise the deltas and back-pointers of one piece."""
    cdef Py_ssize_t n = frame.shape[0], k = frame.shape[1]
    if (n < 1 or back.shape[0] != n or back.shape[1] != k or delta.shape[0] != k
            or log_start.shape[0] != k or log_trans.shape[0] != k or log_trans.shape[1] != k):
        raise ValueError("fastem: viterbi_segment buffers do not match the frame")
    cdef double[::1] prev = np.array(delta)
    cdef double[::1] tmp = np.empty(k)
    with nogil:
        viterbi_rows(&frame[0, 0], n, k, NULL if first else &prev[0], &log_start[0],
                     &log_trans[0, 0], &back[0, 0], &delta[0], &tmp[0])


def viterbi_backtrack(
    const Py_ssize_t[:, ::1] back,     # IN  (n, k) back-pointers of viterbi_segment
    Py_ssize_t state,                  # IN  the state of the segment's last row
    Py_ssize_t[::1] states,            # OUT (n,) the best path through the segment
):
    """The best path through a segment, given its last state; returns the state of the row
    before the segment (meaningless for the sequence's first segment)."""
    cdef Py_ssize_t n = back.shape[0], k = back.shape[1]
    if n < 1 or states.shape[0] != n or not 0 <= state < k:
        raise ValueError("fastem: viterbi_backtrack buffers do not match")
    with nogil:
        state = backtrack(&back[0, 0], n, k, state, &states[0])
    return state


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
