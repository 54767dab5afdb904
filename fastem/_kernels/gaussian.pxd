# Public C-level API of the Gaussian kernels (see docs/kernels.md): the per-chunk, nogil
# functions of gaussian.pyx, for another Cython extension to cimport, e.g.
#     from fastem._kernels.gaussian cimport chunk_log_prob, features, is_expfam
# with fastem.get_include() on its Cython include path and C include_dirs. The cdef functions are
# called through pointers that Cython fetches when fastem._kernels.gaussian is imported; the
# inline helpers below are compiled into the consumer.
#
# The parameter layout (kind, proj, center, log_norm, pivot) comes from
# fastem.kernels.pack_gaussian; treat it as opaque and pass it through. Every pointer is to a
# C-contiguous, row-major buffer; x, proj, center, pivot and the scratch share the data's dtype
# (float32 or float64); log-probabilities, responsibilities and statistics are float64.
from cython cimport floating

# Kernel kinds (the ``kind`` argument), chosen by fastem.families.gaussian.
cdef enum:
    FULL = 0
    TIED = 1
    EXPFAM_DIAG = 2
    DIAG = 3
    EXPFAM_FULL = 4
    EXPFAM_TIED = 5
    EXPFAM_SPHERICAL = 6
    # nan_policy="marginalize" (missing entries are NaN and drop out of a row's density and
    # statistics): the diagonal kinds with one more feature per column, o_j = 1 where x_j is
    # observed (its weights are the per-entry log-normalisers), and DIAG_MISSING, the exact
    # kernel that skips NaN entries; statistics [s1 | s2 | n] per component, n_kj the
    # responsibility mass of the rows observing column j
    EXPFAM_DIAG_MISSING = 7
    EXPFAM_SPHERICAL_MISSING = 8
    DIAG_MISSING = 9
    # full and tied covariances (tied: its matrix repeated per component), float64 only: the
    # missing entries regressed on the observed ones per pattern (_conditional.h); statistics
    # as FULL's, with the conditional moments of the missing entries
    FULL_MISSING = 10
    # the same in the exponential-family form (_marginal.h): EXPFAM_FULL's and EXPFAM_TIED's
    # GEMMs on the rows with 0 at the missing entries, plus m d + m^2 flops per row and
    # component for the Schur complement; statistics in EXPFAM_FULL's and EXPFAM_TIED's layout
    EXPFAM_FULL_MISSING = 11
    EXPFAM_TIED_MISSING = 12
    # full and tied centred per component, v = x - mu_k with mu_k split into [hi; lo] in the
    # data's dtype (_tile.h): float32 data whose components are too far apart for the
    # exponential-family form in float32; statistics as FULL's
    FULL_CENTRED = 13
    TIED_CENTRED = 14


cdef inline bint is_expfam(int kind) noexcept nogil:
    """True for the exponential-family kinds, whose log-densities need features() first."""
    return (kind == EXPFAM_DIAG or kind == EXPFAM_FULL or kind == EXPFAM_TIED
            or kind == EXPFAM_SPHERICAL or kind == EXPFAM_DIAG_MISSING
            or kind == EXPFAM_SPHERICAL_MISSING or is_marginal(kind))


cdef inline bint is_centred(int kind) noexcept nogil:
    """True for the kinds centred per component (_tile.h)."""
    return kind == FULL_CENTRED or kind == TIED_CENTRED


cdef inline bint is_marginal(int kind) noexcept nogil:
    """True for the exponential-family full and tied kinds with missing entries."""
    return kind == EXPFAM_FULL_MISSING or kind == EXPFAM_TIED_MISSING


cdef inline int complete_kind(int kind) noexcept nogil:
    """The complete-data kind whose GEMMs and statistics layout a kind shares."""
    if kind == EXPFAM_FULL_MISSING:
        return EXPFAM_FULL
    if kind == EXPFAM_TIED_MISSING:
        return EXPFAM_TIED
    return kind


cdef inline Py_ssize_t feature_width(int kind, Py_ssize_t d) noexcept nogil:
    """Columns of t(x): [v, v^2] (diag kinds), [v, upper triangle of v v'] (full kinds),
    [v, -v'Pv/2] (EXPFAM_TIED: one shared precision P makes the quadratic term one feature),
    [v, |v|^2] (EXPFAM_SPHERICAL), [v, v^2, o] (EXPFAM_DIAG_MISSING, and DIAG_MISSING's
    statistics [s1, s2, n]) or [v, |v|^2, o] (EXPFAM_SPHERICAL_MISSING), o the observed entries."""
    if kind == EXPFAM_TIED or kind == EXPFAM_SPHERICAL or kind == EXPFAM_TIED_MISSING:
        return d + 1
    if kind == EXPFAM_DIAG_MISSING or kind == DIAG_MISSING:
        return 3 * d
    if kind == EXPFAM_SPHERICAL_MISSING:
        return 2 * d + 1
    if (kind == EXPFAM_FULL or kind == FULL or kind == TIED or kind == FULL_MISSING
            or kind == EXPFAM_FULL_MISSING or is_centred(kind)):
        return d + d * (d + 1) // 2
    return 2 * d


cdef inline bint features_by_row(int kind) noexcept nogil:
    """Whether features() stores t(x) row by row, (n, feature_width) (EXPFAM_DIAG and
    EXPFAM_SPHERICAL and their _MISSING kinds, see _diag.h), rather than feature-major,
    (feature_width, n) (the other expfam kinds)."""
    return (kind == EXPFAM_DIAG or kind == EXPFAM_SPHERICAL or kind == EXPFAM_DIAG_MISSING
            or kind == EXPFAM_SPHERICAL_MISSING)


cdef inline Py_ssize_t projection_width(int kind, Py_ssize_t d, Py_ssize_t k) noexcept nogil:
    """Columns per row of the scratch y: projected rows (full, tied) or features t(x) and t @ W
    (EXPFAM_TIED: the second part also holds v L, L the Cholesky factor of P)."""
    if kind == FULL:
        return d * k
    if kind == FULL_MISSING:  # yhat (k, d), yhat L (d), then (per chunk, not per row:
        return d * k + d + 2 + 3 * d * d + 2 * d  # generously) order, keys, work, indices
    if kind == TIED:
        return d
    if is_marginal(kind):  # then v (d), u (k d), missing entries (d) and their offset (1 + 1)
        return projection_width(complete_kind(kind), d, k) + k * d + 2 * d + 2
    if kind == EXPFAM_TIED:
        return feature_width(kind, d) + (k if k > d else d)
    if kind == EXPFAM_FULL:  # t @ W, or (n + 7, k + 3) partial sums of _full.h's lane tiles
        return feature_width(kind, d) + k + 3
    if is_expfam(kind):
        return feature_width(kind, d) + k
    return 0


cdef inline Py_ssize_t projection_extra(int kind, Py_ssize_t d, Py_ssize_t k) noexcept nogil:
    """Elements of y beyond n * projection_width, per chunk: the marginal kinds' zero centre
    and a row's factorisations (_marginal.h), the centred kinds' tile of v (_tile.h)."""
    if is_centred(kind):
        return 16 * d  # a tile of 16 float32 or 8 float64 rows
    if kind == EXPFAM_FULL:  # with n (k + 3) above, the lane tiles' (n + 7) (k + 3), aligned
        return 7 * (k + 3) + 8
    return d + d * d * k + 3 * k if is_marginal(kind) else 0


cdef inline Py_ssize_t scratch_size(int kind, Py_ssize_t n, Py_ssize_t d,
                                    Py_ssize_t k) noexcept nogil:
    """Elements of the z buffer of chunk_stats for chunks of up to n rows."""
    cdef Py_ssize_t f = feature_width(kind, d)
    cdef Py_ssize_t extra = 2 * d * k + 5 * d * d * k if is_marginal(kind) else 0  # _marginal.h
    if is_centred(kind):  # u, v (n, d) and s (d, d) of the statistics (_tile.h)
        return 2 * n * d + d * d
    return n * (d if d > k else k) + (d * d if d * d > k * f else k * f) + extra


cdef void features(
    int kind,
    const floating* x, Py_ssize_t n, Py_ssize_t d,   # IN  chunk rows (n, d)
    const floating* centre,                          # IN  (d,) the common centre s
    floating* t,                                     # OUT (feature_width, n) t(x), feature-major,
                                                     #     or (n, feature_width) by row where
                                                     #     features_by_row(kind)
) noexcept nogil

cdef void chunk_log_prob(
    int kind,
    const floating* x, Py_ssize_t n, Py_ssize_t d,   # IN  chunk rows (n, d)
    const floating* proj,                            # IN  packed parameters
    const floating* center,
    const double* log_norm, Py_ssize_t k,            # IN  (k,)
    floating* y,                                     # TMP (n, projection_width) +
                                                     #     projection_extra; expfam: features()
                                                     #     output on entry
    double* logp,                                    # OUT (n, k) log p(x_i, z = k)
) noexcept nogil

cdef void chunk_stats(
    int kind,
    const floating* x, Py_ssize_t n, Py_ssize_t d,   # IN  chunk rows (n, d)
    double* resp, Py_ssize_t k,                      # IN  (n, k) weighted responsibilities
    const floating* pivot,                           # IN  (k, d) centring point per component
    const floating* t_rows,                          # IN  expfam: (feature_width, n) t(x)
    floating* z,                                     # TMP (scratch_size,)
    double* s0, double* s12,                         # OUT += (k,) and the moments
) noexcept nogil

cdef void chunk_fit(
    int kind,
    const floating* x, Py_ssize_t n, Py_ssize_t d,   # IN  chunk rows (n, d)
    const double* weights,                           # IN  (n,) sample weights, or NULL for ones
    const double* resp_in,                           # IN  (n, k) given responsibilities, or NULL
    const floating* proj, const floating* center,
    const double* log_norm, Py_ssize_t k,            # IN  packed parameters
    const floating* pivot,                           # IN  (k, d)
    bint with_stats,                                 # IN  accumulate statistics (else loglik)
    double* resp, double* lse, floating* y, floating* z,   # TMP per-thread buffers
    double* slot,                                    # OUT zeroed statistics vector (stats_size)
    double* worst,                                   # OUT [lowest log p(x_i), its row in chunk]
) noexcept nogil
