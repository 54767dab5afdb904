# The per-block plumbing that every kernel module's fit_block and predict_block share
# (gaussian.pyx, expfam.pyx): checks of the caller-owned scratch, and the reduction of the
# per-chunk statistics slots in chunk order, which makes results the same for any thread count.


cdef inline check_scratch(Py_ssize_t chunk_size, int n_threads, Py_ssize_t per_thread,
                          double[:, ::1] workspace, Py_ssize_t n_chunks, Py_ssize_t slot_size,
                          double[:, ::1] slots):
    """Raise ValueError unless ``workspace`` has a row of ``per_thread`` elements for each
    thread and ``slots`` a row of ``slot_size`` for each chunk."""
    if chunk_size < 1 or n_threads < 1:
        raise ValueError("fastem: chunk_size and n_threads must be positive")
    if workspace.shape[0] < n_threads or workspace.shape[1] < per_thread:
        raise ValueError("fastem: workspace too small for these threads and chunks")
    if slots.shape[0] < n_chunks or slots.shape[1] < slot_size:
        raise ValueError("fastem: too few statistics slots for this block")


cdef inline void add_slots(
    const double[:, ::1] slots,        # IN  (>= n_chunks, size + 2): statistics, then
                                       #     [lowest log p(x_i), its row in the chunk]
    Py_ssize_t n_chunks, Py_ssize_t size,
    Py_ssize_t chunk_size,             # IN  rows per chunk
    Py_ssize_t row_offset,             # IN  the block's first row in the whole data
    double[::1] stats,                 # OUT += the chunks' statistics, in chunk order
    double[::1] worst,                 # OUT [lowest log p(x_i) so far, its row]
) noexcept nogil:
    """Add the chunks' statistics into ``stats`` one chunk after the other (the order fixes
    the rounding) and keep the first row with the lowest log-density."""
    cdef Py_ssize_t c, j
    for c in range(n_chunks):
        for j in range(size):
            stats[j] += slots[c, j]
        if slots[c, size] < worst[0]:
            worst[0] = slots[c, size]
            worst[1] = row_offset + c * chunk_size + slots[c, size + 1]
