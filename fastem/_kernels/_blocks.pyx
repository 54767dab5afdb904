# The block skeleton: one block of rows, split into chunks of chunk_size rows that threads take
# in turn (OpenMP prange, dynamic schedule), for every compiled family. The family's per-chunk
# work comes through an emission_t (_blocks.pxd); the data dtype picks its float32 or float64
# function, once per chunk, so that the per-row loops inside stay the family's own, inlined code.
#
# fit_chunks: every chunk writes its statistics, its lowest log p(x_i) and that row into its own
#   slot; after the chunks the slots are added in chunk order (large slots by ranges of entries
#   on the threads), so the sums (and the row reported as worst) are bitwise the same for any
#   number of threads.
# predict_chunks: per-row outputs, written where their rows are (no reduction): the family's
#   log-densities, and from them (posterior_outputs) labels, log p(x_i) and posteriors.
from cython.parallel cimport parallel, prange, threadid
from libc.string cimport memcpy, memset

from .logsumexp cimport posterior_outputs


cdef int check_scratch(const emission_t* e, Py_ssize_t chunk_size, int n_threads,
                       double[:, ::1] workspace) except -1:
    """Raise ValueError unless ``workspace`` has a row of ``e.workspace`` doubles per thread."""
    if chunk_size < 1 or n_threads < 1:
        raise ValueError("fastem: chunk_size and n_threads must be positive")
    if workspace.shape[0] < n_threads or workspace.shape[1] < e.workspace:
        raise ValueError("fastem: workspace too small for these threads and chunks")
    return 0


cdef inline void fit_one(
    const emission_t* e,
    const floating* x, Py_ssize_t n,   # IN  chunk rows (n, d)
    const double* weights, const double* resp_in, const Py_ssize_t* labels, bint with_stats,
    double* ws, Py_ssize_t chunk_size, # TMP the thread's scratch, laid out for chunk_size rows
    double* slot,                      # OUT the chunk's statistics, then [lowest log p, row]
) noexcept nogil:
    """The family's fit of one chunk, in the data's dtype."""
    if floating is double:
        e.fit_f64(e.params, x, n, weights, resp_in, labels, with_stats, ws, ws + chunk_size * e.k,
                  ws + chunk_size * (e.k + 1), slot, slot + e.stats_size)
    else:
        e.fit_f32(e.params, x, n, weights, resp_in, labels, with_stats, ws, ws + chunk_size * e.k,
                  ws + chunk_size * (e.k + 1), slot, slot + e.stats_size)


cdef inline void log_density_one(
    const emission_t* e,
    const floating* x, Py_ssize_t n,   # IN  chunk rows (n, d)
    double* scratch,                   # TMP the family's part of the thread's scratch
    double* logp,                      # OUT (n, k)
) noexcept nogil:
    """The family's log-densities of one chunk, in the data's dtype."""
    if floating is double:
        e.log_density_f64(e.params, x, n, scratch, logp)
    else:
        e.log_density_f32(e.params, x, n, scratch, logp)


cdef enum:
    REDUCE_PART = 4096         # statistics per range a thread adds over the chunks' slots
    REDUCE_PARALLEL = 1 << 18  # slot entries of a block from which those ranges run in parallel


cdef inline void add_slots(double[:, ::1] slots, Py_ssize_t n_chunks, Py_ssize_t lo,
                           Py_ssize_t hi, double* stats) noexcept nogil:
    """stats[lo:hi] += the chunks' slots, one chunk after the other."""
    cdef Py_ssize_t c, j
    for c in range(n_chunks):
        for j in range(lo, hi):
            stats[j] += slots[c, j]


cdef int fit_chunks(
    const emission_t* e,
    const floating* x, Py_ssize_t n,
    const double* weights,
    const double* resp_in,
    const Py_ssize_t* labels,
    bint with_stats,
    Py_ssize_t chunk_size, int n_threads,
    double[:, ::1] workspace,
    double[:, ::1] slots,
    double[::1] stats,
    double[::1] worst,
    Py_ssize_t row_offset,
) except -1:
    """One E-step (and statistics) over a block; adds into ``stats`` in chunk order."""
    cdef Py_ssize_t size = e.stats_size, d = e.d, k = e.k
    cdef Py_ssize_t c, p, start, rows, n_chunks, n_parts
    cdef double* ws
    cdef double* slot
    if n == 0:
        return 0
    check_scratch(e, chunk_size, n_threads, workspace)
    n_chunks = (n + chunk_size - 1) // chunk_size
    if slots.shape[0] < n_chunks or slots.shape[1] < size + 2:
        raise ValueError("fastem: too few statistics slots for this block")
    with nogil, parallel(num_threads=min(n_threads, n_chunks)):  # no idle threads
        ws = &workspace[threadid(), 0]
        for c in prange(n_chunks, schedule="dynamic"):
            start = c * chunk_size
            rows = min(chunk_size, n - start)
            slot = &slots[c, 0]
            memset(slot, 0, (size + 2) * sizeof(double))
            fit_one(e, x + start * d, rows, (weights + start) if weights != NULL else NULL,
                    (resp_in + start * k) if resp_in != NULL else NULL,
                    (labels + start) if labels != NULL else NULL, with_stats,
                    ws, chunk_size, slot)
    # the chunks' statistics one chunk after the other (the order fixes the rounding); large
    # slots (e.g. 549 KB at D = 64, K = 32, full) by ranges of entries on the threads, each
    # range added over the chunks in order
    if size * n_chunks < REDUCE_PARALLEL or n_threads == 1:
        add_slots(slots, n_chunks, 0, size, &stats[0])
    else:
        n_parts = (size + REDUCE_PART - 1) // REDUCE_PART
        for p in prange(n_parts, nogil=True, num_threads=n_threads, schedule="static"):
            add_slots(slots, n_chunks, p * REDUCE_PART, min(size, (p + 1) * REDUCE_PART),
                      &stats[0])
    # the first row with the lowest log-density
    for c in range(n_chunks):
        if slots[c, size] < worst[0]:
            worst[0] = slots[c, size]
            worst[1] = row_offset + c * chunk_size + slots[c, size + 1]
    return 0


cdef int predict_chunks(
    const emission_t* e,
    const floating* x, Py_ssize_t n,
    Py_ssize_t chunk_size, int n_threads,
    double[:, ::1] workspace,
    double* log_prob,
    double* resp,
    Py_ssize_t* labels,
    double* log_density,
) except -1:
    """Per-row outputs of a block (no reduction, any order)."""
    cdef Py_ssize_t d = e.d, k = e.k
    cdef Py_ssize_t c, start, rows, n_chunks
    cdef double* ws
    cdef double* logp
    cdef bint posterior = log_prob != NULL or resp != NULL or labels != NULL
    if n == 0:
        return 0
    check_scratch(e, chunk_size, n_threads, workspace)
    n_chunks = (n + chunk_size - 1) // chunk_size
    with nogil, parallel(num_threads=min(n_threads, n_chunks)):  # no idle threads
        ws = &workspace[threadid(), 0]
        for c in prange(n_chunks, schedule="dynamic"):
            start = c * chunk_size
            rows = min(chunk_size, n - start)
            # straight into the caller's log-densities when asked for; the posteriors then
            # work on a copy (posterior_outputs normalises in place)
            logp = (log_density + start * k) if log_density != NULL else ws
            log_density_one(e, x + start * d, rows, ws + chunk_size * (k + 1), logp)
            if posterior:
                if logp != ws:
                    memcpy(ws, logp, rows * k * sizeof(double))
                posterior_outputs(ws, rows, k, ws + chunk_size * k,
                                  (log_prob + start) if log_prob != NULL else NULL,
                                  (resp + start * k) if resp != NULL else NULL,
                                  (labels + start) if labels != NULL else NULL)
    return 0
