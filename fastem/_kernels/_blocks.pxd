# The block skeleton that every compiled family runs (gaussian.pyx, expfam.pyx), declared for
# cimport; see _blocks.pyx. A family describes itself by an emission_t (numpy.random's bitgen_t
# pattern): its parameters behind a void pointer and its per-chunk work as function pointers, one
# per data dtype. The skeleton owns the threaded loop over chunks, the per-thread scratch, the
# per-chunk statistics slots and their reduction in chunk order.
#
# Per-thread scratch (one row of ``workspace``, workspace doubles): the chunk's (chunk_size, k)
# log-densities, turned responsibilities, then its (chunk_size,) log-sum-exp, then the family's
# own scratch (``scratch`` below), which the family lays out from its parameters.
from cython cimport floating
from libc.math cimport INFINITY


cdef inline void clamp_labelled(
    double* logp, Py_ssize_t n, Py_ssize_t k,   # IN/OUT (n, k) log p(x_i, z = c)
    const Py_ssize_t* labels,                   # IN  (n,) component of each row, -1 unlabelled
) noexcept nogil:
    """Partially labelled rows: a labelled row keeps only its component's joint log-density
    (the others become -inf), so the row-wise normalisation that follows gives it a one-hot
    posterior and log p(x_i, z = label) in place of log p(x_i)."""
    cdef Py_ssize_t i, c
    for i in range(n):
        if labels[i] >= 0:
            for c in range(k):
                if c != labels[i]:
                    logp[i * k + c] = -INFINITY

# fit: the fused E-step of one chunk of n rows (log-densities, row-wise normalisation, weighted
# responsibilities, statistics) into its zeroed slot, as gaussian.chunk_fit and expfam.chunk_fit.
ctypedef void (*fit_chunk_f32)(
    const void* params,                # IN  the family's parameters (emission_t.params)
    const float* x, Py_ssize_t n,      # IN  chunk rows (n, d)
    const double* weights,             # IN  (n,) sample weights, or NULL for ones
    const double* resp_in,             # IN  (n, k) given responsibilities, or NULL
    const Py_ssize_t* labels,          # IN  (n,) clamped component per row (-1: none), or NULL
    bint with_stats,                   # IN  accumulate the statistics (else loglik and weight)
    double* resp, double* lse,         # TMP (chunk_size, k), (chunk_size,)
    double* scratch,                   # TMP the family's per-thread scratch
    double* slot,                      # OUT zeroed statistics vector (stats_size)
    double* worst,                     # OUT [lowest log p(x_i), its row in the chunk]
) noexcept nogil
ctypedef void (*fit_chunk_f64)(const void* params, const double* x, Py_ssize_t n,
                               const double* weights, const double* resp_in,
                               const Py_ssize_t* labels, bint with_stats,
                               double* resp, double* lse, double* scratch, double* slot,
                               double* worst) noexcept nogil

# log_density: log_norm_k + log p(x_i | k) of one chunk (log p(x_i, z = k) when log_norm holds
# the mixture weights).
ctypedef void (*log_density_chunk_f32)(
    const void* params,                # IN  the family's parameters (emission_t.params)
    const float* x, Py_ssize_t n,      # IN  chunk rows (n, d)
    double* scratch,                   # TMP the family's per-thread scratch
    double* logp,                      # OUT (n, k) log-densities
) noexcept nogil
ctypedef void (*log_density_chunk_f64)(const void* params, const double* x, Py_ssize_t n,
                                       double* scratch, double* logp) noexcept nogil


ctypedef struct emission_t:
    const void* params                 # the family's parameters for this pass
    Py_ssize_t d, k                    # columns of the data, components
    Py_ssize_t stats_size              # length of a chunk's statistics vector
    Py_ssize_t workspace               # doubles of per-thread scratch, at least
                                       # chunk_size * (k + 1) + the family's own
    fit_chunk_f32 fit_f32              # the per-chunk work for float32 and float64 data
    fit_chunk_f64 fit_f64
    log_density_chunk_f32 log_density_f32
    log_density_chunk_f64 log_density_f64


cdef int fit_chunks(
    const emission_t* e,
    const floating* x, Py_ssize_t n,   # IN  (n, d) block of rows, C-contiguous
    const double* weights,             # IN  (n,) sample weights, or NULL for ones
    const double* resp_in,             # IN  (n, k) given responsibilities, or NULL
    const Py_ssize_t* labels,          # IN  (n,) clamped component per row (-1: none), or NULL
    bint with_stats,                   # IN  accumulate the statistics (else loglik and weight)
    Py_ssize_t chunk_size, int n_threads,
    double[:, ::1] workspace,          # TMP (>= n_threads, e.workspace) per-thread scratch
    double[:, ::1] slots,              # TMP (>= n_chunks, stats_size + 2) per-chunk results
    double[::1] stats,                 # OUT += statistics vector (stats_size), in chunk order
    double[::1] worst,                 # OUT [lowest log p(x_i) so far, its row]
    Py_ssize_t row_offset,             # IN  the block's first row in the whole data
) except -1

cdef int predict_chunks(
    const emission_t* e,
    const floating* x, Py_ssize_t n,   # IN  (n, d) block of rows, C-contiguous
    Py_ssize_t chunk_size, int n_threads,
    double[:, ::1] workspace,          # TMP (>= n_threads, e.workspace) per-thread scratch
    double* log_prob,                  # OUT (n,) log p(x_i), or NULL
    double* resp,                      # OUT (n, k) p(z = k | x_i), or NULL
    Py_ssize_t* labels,                # OUT (n,) argmax_k log p(x_i, z = k), or NULL
    double* log_density,               # OUT (n, k) the family's log-densities, or NULL
) except -1
