# Public C-level API of the exponential-family kernels (see docs/kernels.md): the per-chunk,
# nogil functions of expfam.pyx, for another Cython extension to cimport, e.g.
#     from fastem._kernels.expfam cimport COL_COUNT, features, chunk_log_prob
# with fastem.get_include() on its Cython include path and C include_dirs. The cdef functions are
# called through pointers that Cython fetches when fastem._kernels.expfam is imported.
#
# The column layout (col_kind, col_offset, col_shift) and the parameters (natural, log_norm) come
# from the exponential-family families (fastem.families). Every pointer is to a C-contiguous,
# row-major buffer; x has the data's dtype (float32 or float64); features, log-probabilities,
# responsibilities and statistics are float64 whatever that dtype.
from cython cimport floating

# Column kinds (entries of col_kind): the feature map T_j and base measure b_j of a column.
# cpdef: also module-level Python ints of fastem._kernels.expfam.
cpdef enum:
    COL_IDENTITY = 0      # T = [x],                        b = 0              x finite
    COL_COUNT = 1         # T = [x],                        b = -lgamma(x + 1) x in {0, 1, ...}
    COL_LOG = 2           # T = [x, log x],                 b = 0              x > 0
    COL_CATEGORICAL = 3   # T = one-hot of x (width codes), b = 0              x in {0..width-1}
    COL_GAUSSIAN = 4      # T = [x - s, (x - s)^2],         b = 0              x finite
    # added to a kind: the column may be missing (NaN, nan_policy="marginalize"); its features
    # end with o = 1 where x is observed, whose weight is the column's -A(natural); a NaN
    # value gets zero features (o = 0) and drops out of the row's density and statistics
    COL_MISSING = 8


cdef double log_factorial(double x) noexcept nogil  # log(x!), x a non-negative integer

cdef void features(
    const floating* x, Py_ssize_t n, Py_ssize_t d,   # IN  chunk rows (n, d)
    const int* col_kind,                             # IN  (d,) COL_* of each column
    const Py_ssize_t* col_offset,                    # IN  (d + 1,) feature range of each column
    const double* col_shift,                         # IN  (d,) s_j of COL_GAUSSIAN columns
    double* t,                                       # OUT (n, col_offset[d]) rows of T(x)
    double* base,                                    # OUT (n,) sum_j b_j(x); -inf out of support
) noexcept nogil

cdef void chunk_log_prob(
    const double* t, const double* base,             # IN  (n, f) features, (n,) base measure
    Py_ssize_t n, Py_ssize_t f,
    const double* natural,                           # IN  (f, k) natural parameters
    const double* log_norm, Py_ssize_t k,            # IN  (k,) log w_k - A(natural_k)
    double* logp,                                    # OUT (n, k) log p(x_i, z = k)
) noexcept nogil

cdef void chunk_stats(
    const double* t, Py_ssize_t n, Py_ssize_t f,     # IN  (n, f) features
    const double* resp, Py_ssize_t k,                # IN  (n, k) weighted responsibilities
    double* s0, double* s,                           # OUT += (k,) and (k, f) r.T @ T
) noexcept nogil

cdef void chunk_fit(
    const floating* x, Py_ssize_t n, Py_ssize_t d,   # IN  chunk rows (n, d)
    const int* col_kind, const Py_ssize_t* col_offset,
    const double* col_shift,                         # IN  column layout, see features
    const double* weights,                           # IN  (n,) sample weights, or NULL for ones
    const double* resp_in,                           # IN  (n, k) given responsibilities, or NULL
    const double* natural, const double* log_norm,   # IN  (f, k) and (k,) parameters
    Py_ssize_t f, Py_ssize_t k,
    bint with_stats,                                 # IN  accumulate s0, S (else only ll, W)
    double* t, double* resp, double* lse, double* base,   # TMP (n, f), (n, k), (n,), (n,)
    double* slot,                                    # OUT zeroed statistics vector (stats_size)
    double* worst,                                   # OUT [lowest log p(x_i), its row in chunk]
) noexcept nogil
