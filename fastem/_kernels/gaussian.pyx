# Fused E-step for Gaussian mixtures over one block of rows, split into chunks on threads.
#
# For each chunk of rows (small enough to stay in cache) one pass computes
#   log p(x_i, z=k) = log_norm[k] - 0.5 * ||(x_i - mu_k) L_k||^2     (L_k: precision Cholesky)
# then the row-wise log-sum-exp, the responsibilities r_ik and the sufficient statistics
#   s0_k = sum_i w_i r_ik,  s1_k = sum_i w_i r_ik (x_i - m_k),  s2_k = sum_i w_i r_ik (x_i - m_k)^2
# (outer products for full/tied, squares for diag/spherical), centred on a pivot m_k so that
# second moments stay accurate for data far from the origin. No (n_samples, n_components) array
# is ever formed: responsibilities live in one chunk-sized buffer per thread.
#
# The Mahalanobis term follows scikit-learn's parametrisation (Bishop, PRML 9.2):
#   full:  y = x @ L_k - mu_k @ L_k, one GEMM for all k (proj = [L_1 | ... | L_K] interleaved so
#          column j*K + k holds L_k[:, j], which makes the inner loop run over k, vectorisable);
#          s2 by one SYRK per component of sqrt(r) (x - m_k), pivot m_k = current means.
#   tied:  y = x @ L - mu_k @ L, one GEMM; statistics as for full.
#   expfam: the exponential-family form. With features t(x) = [v, v_a v_b for a <= b] (full)
#          or [v, v^2] (diag), v = x - s and s one centre for all components (the current
#          mixture mean), both the log-densities (t @ W, W holding the natural parameters) and
#          the statistics (r.T @ t) are one GEMM per chunk; t is stored feature-major
#          (_features.h), or row by row for the diagonal kinds, whose log-densities are
#          computed in registers instead of by BLAS (_diag.h); EXPFAM_FULL runs both products
#          (and, for float32 and K <= 16, the log-sum-exp) in FMA register tiles (_full.h)
#          where the CPU has AVX2 and FMA; for float32 data the diagonal kinds' whole
#          E-step runs in float32 lanes, eight rows per register (_diag_fit.h), with no GEMM
#          and no float64 log-density block. Centring on s removes the
#          cancellation that data far from the origin would cause; what remains is error
#          ~ eps * ||P_k|| |x - s|^2, which the caller bounds (expfam_rounding_scale in
#          families/gaussian.py).
#   expfam tied: one shared precision P = L L' makes the quadratic term -v'Pv/2 the same for all
#          components, so t(x) = [v, -|v L|^2 / 2] has d + 1 features, not d + d(d+1)/2, and the
#          statistics pool the second moments: [s1 (k, d), S = sum_i w_i v_i v_i'] with
#          sum_k r_ik = 1, from which the tied scatter is S - sum_k s1_k s1_k' / s0_k. A tied
#          pass then costs about 4dk + 4d^2 flops per row instead of full's ~2k d^2.
#   expfam spherical: t(x) = [v, |v|^2] (d + 1 features; statistics [s1 | sum r |v|^2]).
#   full and tied centred (FULL_CENTRED, TIED_CENTRED; float32 data whose components are too
#          far apart for expfam in float32): |(x - mu_k) C_k|^2 with mu_k split into its float32
#          rounding and the rest, v = (x - hi_k) - lo_k, and C_k the lower Cholesky factor of
#          P_k, in register tiles of rows (_tile.h); statistics as full's, by the same tiles
#          (sum r v v' in float32 over blocks of 256 rows, then float64), about pivot hi_k.
#   diag (diag/spherical, direct): y = (x - mu_k) * L_k elementwise and statistics centred on
#          each mu_k. full, tied and diag are the fallbacks where the expfam bound is too large
#          even in float64 (components far apart relative to their spread).
#   missing entries (nan_policy="marginalize", diag and spherical): a NaN entry drops out of the
#          row's log-density and statistics. EXPFAM_DIAG_MISSING / EXPFAM_SPHERICAL_MISSING add
#          one feature per column, o_j = 1 where x_j is observed (NaN: v_j = 0, o_j = 0), whose
#          weight is the entry's log-normaliser log L_kj - log(2pi)/2 - P_kj (mu_kj - s_j)^2 / 2,
#          so the same two GEMMs give the marginal log-densities and, in r.T @ t, the observed
#          mass n_kj = sum_i w_i r_ik o_ij by which the M-step divides; DIAG_MISSING is the exact
#          fallback (and the kind of passes with given responsibilities), skipping NaN entries.
#          The complete-data kinds are untouched: the statistics only grow when marginalising.
#
# Threads and determinism: the block skeleton (_blocks.pyx) runs the chunks on threads; every
# chunk writes its statistics into its own slot, and slots are added in chunk order after the
# parallel loop, so results are bitwise identical for any number of threads.
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport INFINITY, sqrt
from libc.string cimport memcpy, memset

from ._blocks cimport clamp_labelled, emission_t, fit_chunks, predict_chunks
from ._linalg cimport gemm_colmajor, gemm_rowmajor, syrk_rowmajor
from .logsumexp cimport normalize_log_rows

# The kernel kinds, the buffer-size helpers and the signatures of the per-chunk functions
# are declared in gaussian.pxd, the public C-level API of this module.


cpdef Py_ssize_t stats_size(int kind, Py_ssize_t d, Py_ssize_t k):
    """Length of the statistics vector: [loglik, weight, s0 (k), s1 (k, d), s2 (k, d, d)] for
    full and tied; [loglik, weight, s0 (k), s1 (k, d), pooled s2 (d, d)] for expfam tied;
    [loglik, weight, s0 (k), [s1 | packed s2] (k, feature_width)] otherwise."""
    if kind == FULL or kind == TIED or kind == FULL_MISSING or is_centred(kind):
        return 2 + k + k * d + k * d * d
    if kind == EXPFAM_TIED or kind == EXPFAM_TIED_MISSING:
        return 2 + k + k * d + d * d
    return 2 + k + k * feature_width(kind, d)


cdef extern from "fastem/_kernels/_features.h" nogil:
    void fastem_features_f32(int products, const float* x, Py_ssize_t n, Py_ssize_t d,
                             const float* centre, float* t)
    void fastem_features_f64(int products, const double* x, Py_ssize_t n, Py_ssize_t d,
                             const double* centre, double* t)


cdef extern from "fastem/_kernels/_full.h" nogil:
    # EXPFAM_FULL: both products in FMA register tiles where the CPU has AVX2 and FMA
    int fastem_full_available()
    void fastem_full_log_prob_f32(const float* t, Py_ssize_t n, Py_ssize_t f, const float* w,
                                  Py_ssize_t k, const double* log_norm, double* logp,
                                  float* scratch)
    void fastem_full_log_prob_f64(const double* t, Py_ssize_t n, Py_ssize_t f,
                                  const double* w, Py_ssize_t k, const double* log_norm,
                                  double* logp, double* scratch)
    void fastem_full_stats_f32(const float* t, Py_ssize_t n, Py_ssize_t f, const float* r,
                               Py_ssize_t k, double* s)
    void fastem_full_stats_f64(const double* t, Py_ssize_t n, Py_ssize_t f, const double* r,
                               Py_ssize_t k, double* s)
    void fastem_full32_fit(const float* t, Py_ssize_t n, Py_ssize_t f, const float* w,
                           Py_ssize_t k, const double* log_norm, double* resp, double* lse)


cdef bint FULL_FMA = fastem_full_available()


cdef extern from "fastem/_kernels/_tile.h" nogil:
    void fastem_centred_stats_f32(const float* x, Py_ssize_t n, Py_ssize_t d, Py_ssize_t k,
                                  const double* resp, const float* pivot, float* u, float* v,
                                  float* s, double* s1, double* s2)
    void fastem_centred_stats_f64(const double* x, Py_ssize_t n, Py_ssize_t d, Py_ssize_t k,
                                  const double* resp, const double* pivot, double* u, double* v,
                                  double* s, double* s1, double* s2)
    void fastem_centred_log_prob_f32(const float* x, Py_ssize_t n, Py_ssize_t d, Py_ssize_t k,
                                     int tied, const float* chol, const float* mean,
                                     const double* log_norm, float* v, double* logp)
    void fastem_centred_log_prob_f64(const double* x, Py_ssize_t n, Py_ssize_t d, Py_ssize_t k,
                                     int tied, const double* chol, const double* mean,
                                     const double* log_norm, double* v, double* logp)


cdef extern from "fastem/_kernels/_conditional.h" nogil:
    void fastem_pattern_order(const double* x, Py_ssize_t n, Py_ssize_t d,
                              unsigned long long* keys, Py_ssize_t* order)
    void fastem_conditional_fill(const double* x, Py_ssize_t n, Py_ssize_t d, Py_ssize_t k,
                                 const double* prec, const double* means, const double* log_norm,
                                 const unsigned long long* keys, const Py_ssize_t* order,
                                 double* fill, double* work, Py_ssize_t* miss, double* logp)
    void fastem_conditional_covariance(const double* x, Py_ssize_t n, Py_ssize_t d, Py_ssize_t k,
                                       const double* prec, const unsigned long long* keys,
                                       const Py_ssize_t* order, const double* resp,
                                       double* work, Py_ssize_t* miss, double* s2)


ctypedef struct MissingScratch:        # FULL_MISSING's part of y for a chunk of n rows
    double* fill                       # (n, k, d) yhat per row and component
    double* product                    # (n, d) yhat L_c of one component
    Py_ssize_t* order                  # (n,) rows sorted by missingness pattern
    unsigned long long* keys           # (n,) their patterns (_conditional.h)
    double* work                       # (2 d^2 + d,) a pattern's factorisation
    Py_ssize_t* miss                   # (d,) its missing entries


cdef inline MissingScratch missing_scratch(double* y, Py_ssize_t n, Py_ssize_t d,
                                           Py_ssize_t k) noexcept nogil:
    """The layout of FULL_MISSING's scratch (projection_width per row, in y)."""
    cdef MissingScratch s
    s.fill = y
    s.product = y + n * d * k
    s.order = <Py_ssize_t*> (s.product + n * d)
    s.keys = <unsigned long long*> (s.order + n)
    s.work = <double*> (s.keys + n)
    s.miss = <Py_ssize_t*> (s.work + 2 * d * d + d)
    return s


cdef extern from "fastem/_kernels/_marginal.h" nogil:
    void fastem_marginal_rows(const double* x, Py_ssize_t n, Py_ssize_t d, const double* s,
                              double* v, Py_ssize_t* offset, Py_ssize_t* miss)
    void fastem_marginal_log_prob(int tied, const double* v, Py_ssize_t n, Py_ssize_t d,
                                  Py_ssize_t k, const Py_ssize_t* offset, const Py_ssize_t* miss,
                                  const double* prec, const double* pd, const double* inverse,
                                  const double* log_diag, double* u, double* work, double* logp)
    void fastem_marginal_stats(int tied, const double* v, Py_ssize_t n, Py_ssize_t d,
                               Py_ssize_t k, const Py_ssize_t* offset, const Py_ssize_t* miss,
                               const double* prec, const double* inverse, const double* resp,
                               const double* u, double* work, double* s12)


ctypedef struct MarginalScratch:       # EXPFAM_*_MISSING's part of y for a chunk of n rows,
    double* v                          # (n, d) x - s, 0 at the missing entries; after t(v)
    double* u                          # (<= n k d) P_mm^-1 g per row and component
    Py_ssize_t* miss                   # (<= n d) each row's missing entries
    Py_ssize_t* offset                 # (n + 1,) where they start
    double* zero                       # (d,) zeros: the centre of t(v), after the rows'
    double* work                       # (d^2 k + 3k,) a row's factorisations
    const double* prec                 # the packed P_c[j, a] (d, d, k), tied P (d, d)
    const double* pd                   # the packed (P_c (mu_c - s))_j (d, k)
    const double* centre               # the packed s (d,)
    const double* inverse              # the packed 1 / P_c,jj (d, k), tied (d,)
    const double* log_diag             # the packed log P_c,jj (d, k), tied (d,)


cdef inline MarginalScratch marginal_scratch(int kind, double* y, const double* center,
                                             Py_ssize_t n, Py_ssize_t d,
                                             Py_ssize_t k) noexcept nogil:
    """The layout of the EXPFAM_*_MISSING kinds' scratch (projection_width per row, in y) and
    parameters (center, flat: full [P_c; P_c delta_c; s; 1 / diag P_c; log diag P_c] with
    the components innermost, tied [L; P; P delta_c; s; 1 / diag P; log diag P], delta_c =
    mu_c - s; see _marginal.h)."""
    cdef MarginalScratch s
    cdef Py_ssize_t kq = 1 if kind == EXPFAM_TIED_MISSING else k
    s.v = y + n * projection_width(complete_kind(kind), d, k)
    s.u = s.v + n * d
    s.miss = <Py_ssize_t*> (s.u + n * k * d)
    s.offset = s.miss + n * d
    s.zero = y + n * projection_width(kind, d, k)
    s.work = s.zero + d
    s.prec = center + (d * d if kind == EXPFAM_TIED_MISSING else 0)
    s.pd = s.prec + d * d * kq
    s.centre = s.pd + d * k
    s.inverse = s.centre + d
    s.log_diag = s.inverse + d * kq
    return s


cdef extern from "fastem/_kernels/_normalize.h" nogil:
    # float32 data: exp by a shorter series, within their own rounding (_vexp.h)
    void fastem_normalize_rows_short(double* a, Py_ssize_t n, Py_ssize_t k, double* lse)


cdef extern from "fastem/_kernels/_diag_fit.h" nogil:
    # float32 data, diag and spherical: the whole E-step of a chunk in float32 lanes
    int fastem_diag_fit_f32_fits(int squares, Py_ssize_t d, Py_ssize_t k)
    void fastem_diag_fit_f32(int squares, const float* x, Py_ssize_t n, Py_ssize_t d,
                             const float* centre, const float* w, Py_ssize_t k,
                             const double* log_norm, const double* weights,
                             const Py_ssize_t* labels, int with_stats, double* sums,
                             double* worst)


cdef extern from "fastem/_kernels/_diag.h" nogil:
    void fastem_diag_features_f32(int squares, int missing, const float* x, Py_ssize_t n,
                                  Py_ssize_t d, const float* centre, float* t)
    void fastem_diag_features_f64(int squares, int missing, const double* x, Py_ssize_t n,
                                  Py_ssize_t d, const double* centre, double* t)
    void fastem_diag_log_prob_f32(const float* t, Py_ssize_t n, Py_ssize_t f, const float* w,
                                  Py_ssize_t k, const double* log_norm, double* logp)
    void fastem_diag_log_prob_f64(const double* t, Py_ssize_t n, Py_ssize_t f, const double* w,
                                  Py_ssize_t k, const double* log_norm, double* logp)


cdef void features(
    int kind,
    const floating* x, Py_ssize_t n, Py_ssize_t d,   # IN  chunk rows (n, d)
    const floating* centre,                          # IN  (d,) the common centre s
    floating* t,                                     # OUT (feature_width, n) t(x), feature-major;
                                                     #     by row, (n, feature_width), where
                                                     #     features_by_row(kind)
) noexcept nogil:
    """Features t(x) of the Gaussian exponential family: [v, v^2] or [v, |v|^2] by row
    (_diag.h; the _MISSING kinds add o, the observed entries), [v, v_a v_b (a <= b)]
    feature-major (_features.h); for EXPFAM_TIED only v, the last feature is added by
    chunk_log_prob; the full and tied kinds with missing entries leave it all to
    chunk_log_prob (t(v) of the rows with 0 at their missing entries, laid out by k)."""
    cdef bint squares = kind == EXPFAM_DIAG or kind == EXPFAM_DIAG_MISSING
    cdef bint missing = kind == EXPFAM_DIAG_MISSING or kind == EXPFAM_SPHERICAL_MISSING
    if features_by_row(kind):
        if floating is double:
            fastem_diag_features_f64(squares, missing, x, n, d, centre, t)
        else:
            fastem_diag_features_f32(squares, missing, x, n, d, centre, t)
        return
    if is_marginal(kind):
        return
    if floating is double:  # EXPFAM_TIED: only v (chunk_log_prob adds -v'Pv/2, which needs P)
        fastem_features_f64(kind == EXPFAM_FULL, x, n, d, centre, t)
    else:
        fastem_features_f32(kind == EXPFAM_FULL, x, n, d, centre, t)


cdef void chunk_log_prob(
    int kind,
    const floating* x, Py_ssize_t n, Py_ssize_t d,   # IN  chunk rows (n, d), C-contiguous
    const floating* proj,                            # IN  full, tied: (d, width) projection;
                                                     #     expfam: (feature_width, k) W;
                                                     #     diag: (d, k) diagonal of L_k;
                                                     #     DIAG_MISSING: (2d, k), then the
                                                     #     rows 2 log L_kj - log 2pi;
                                                     #     centred: (k d, d) L_k, tied (d, d)
    const floating* center,                          # IN  full, tied: (d, k) mu_k @ L_k;
                                                     #     centred: (2k, d) [hi; lo] of mu_k;
                                                     #     diag: (d, k) mu_k;
                                                     #     expfam tied: (d, d) L
    const double* log_norm, Py_ssize_t k,            # IN  (k,) log w_k + log det L_k - d/2 log 2pi
                                                     #     (expfam: plus the constant of t @ W;
                                                     #     _MISSING kinds: log w_k only)
    floating* y,                                     # TMP (n, width); expfam: t(x) on entry
    double* logp,                                    # OUT (n, k) log p(x_i, z = k)
) noexcept nogil:
    cdef Py_ssize_t i, j, c, start, width = projection_width(kind, d, k)
    cdef const floating* row
    cdef floating* dots
    cdef double* out
    cdef floating t
    cdef int f = <int> feature_width(kind, d)
    cdef MissingScratch missing
    cdef MarginalScratch marginal
    if is_marginal(kind):  # t(v) of the rows with 0 at their missing entries (_marginal.h)
        if floating is double:
            marginal = marginal_scratch(kind, y, center, n, d, k)
            memset(marginal.zero, 0, d * sizeof(double))
            fastem_marginal_rows(x, n, d, marginal.centre, marginal.v, marginal.offset,
                                 marginal.miss)
            fastem_features_f64(kind == EXPFAM_FULL_MISSING, marginal.v, n, d, marginal.zero, y)
    if kind == FULL_MISSING:  # packed in float64: proj (k, d, d) L_k, center [P_k; means]
        if floating is double:  # yhat per pattern (_conditional.h), then -|yhat L_c|^2 / 2
            missing = missing_scratch(y, n, d, k)
            fastem_pattern_order(x, n, d, missing.keys, missing.order)
            fastem_conditional_fill(x, n, d, k, center, center + k * d * d, log_norm,
                                    missing.keys, missing.order, missing.fill, missing.work,
                                    missing.miss, logp)
            for c in range(k):
                gemm_rowmajor(<int> n, <int> d, <int> d, missing.fill + c * d, <int> (k * d),
                              proj + c * d * d, <int> d, missing.product, <int> d)
                for i in range(n):
                    t = 0.0
                    for j in range(d):
                        t = t + missing.product[i * d + j] * missing.product[i * d + j]
                    t = logp[i * k + c] - 0.5 * t
                    logp[i * k + c] = t if t == t else -INFINITY
        return
    if is_centred(kind):  # tiles of rows, in registers (_tile.h)
        if floating is double:
            fastem_centred_log_prob_f64(x, n, d, k, kind == TIED_CENTRED, proj, center,
                                        log_norm, y, logp)
        else:
            fastem_centred_log_prob_f32(x, n, d, k, kind == TIED_CENTRED, proj, center,
                                        log_norm, y, logp)
        return
    if features_by_row(kind):  # row by row, in registers (_diag.h)
        if floating is double:
            fastem_diag_log_prob_f64(y, n, f, proj, k, log_norm, logp)
        else:
            fastem_diag_log_prob_f32(y, n, f, proj, k, log_norm, logp)
        return
    if is_expfam(kind):
        # Features of a huge (finite) row overflow and t @ W can be inf - inf: such a row's
        # true log-density is a huge negative number, so NaN becomes -inf (never +inf: an
        # overflowing product x_a x_b implies an overflowing square with a negative weight).
        # dots (k, n) component-major, i.e. column-major (n, k) = t(x) W: with t feature-major
        # as BLAS's untransposed operand (a third faster than W' t(x)', which packs t(x)
        # transposed), then transposed into logp 32 rows at a time
        if kind == EXPFAM_FULL and FULL_FMA:  # no BLAS, no transpose (_full.h); y after t(x)
            if floating is float:                # is scratch (projection_width, _extra)
                fastem_full_log_prob_f32(y, n, f, proj, k, log_norm, logp, y + n * f)
            else:
                fastem_full_log_prob_f64(y, n, f, proj, k, log_norm, logp, y + n * f)
            return
        dots = y + n * f
        if complete_kind(kind) == EXPFAM_TIED:  # the last feature, -|v L|^2 / 2, through
            # dots as scratch
            gemm_colmajor(c'N', c'T', <int> n, <int> d, <int> d, y, <int> n, center, <int> d,
                          dots, <int> n)
            for i in range(n):
                y[d * n + i] = 0.0
            for j in range(d):
                for i in range(n):
                    y[d * n + i] -= 0.5 * dots[j * n + i] * dots[j * n + i]
        gemm_colmajor(c'N', c'T', <int> n, <int> k, f, y, <int> n, proj, <int> k, dots, <int> n)
        for start in range(0, n, 32):
            for c in range(k):
                for i in range(start, min(start + 32, n)):
                    t = dots[c * n + i]
                    logp[i * k + c] = log_norm[c] + t if t == t else -INFINITY
        if is_marginal(kind):  # the Schur complements of the rows with missing entries
            if floating is double:
                marginal = marginal_scratch(kind, y, center, n, d, k)
                fastem_marginal_log_prob(kind == EXPFAM_TIED_MISSING, marginal.v, n, d, k,
                                         marginal.offset, marginal.miss, marginal.prec,
                                         marginal.pd, marginal.inverse, marginal.log_diag,
                                         marginal.u, marginal.work, logp)
        return
    if width:
        gemm_rowmajor(<int> n, <int> width, <int> d, x, <int> d, proj, <int> width, y,
                      <int> width)
    for i in range(n):
        out = logp + i * k
        for c in range(k):
            out[c] = 0.0
        if kind == DIAG:
            row = x + i * d
            for j in range(d):
                for c in range(k):
                    t = (row[j] - center[j * k + c]) * proj[j * k + c]
                    out[c] += t * t
        elif kind == DIAG_MISSING:  # observed entries only, each with its log-normaliser
            row = x + i * d
            for j in range(d):
                if row[j] != row[j]:
                    continue
                for c in range(k):
                    t = (row[j] - center[j * k + c]) * proj[j * k + c]
                    out[c] += t * t - proj[(d + j) * k + c]
        elif kind == FULL:
            row = y + i * width
            for j in range(d):
                for c in range(k):
                    t = row[j * k + c] - center[j * k + c]
                    out[c] += t * t
        else:
            row = y + i * width
            for j in range(d):
                for c in range(k):
                    t = row[j] - center[j * k + c]
                    out[c] += t * t
        for c in range(k):
            out[c] = log_norm[c] - 0.5 * out[c]


cdef void chunk_stats_pooled(
    Py_ssize_t n, Py_ssize_t d,                      # IN  rows and columns of the chunk
    const double* resp, Py_ssize_t k,                # IN  (n, k) weighted responsibilities
    const floating* v,                               # IN  (d, n) feature-major v = x - s
    floating* z,                                     # TMP (scratch_size,)
    double* s12,                                     # OUT += s1 (k, d), then S (d, d)
) noexcept nogil:
    """Expfam tied statistics: s1 = r.T @ v and the pooled S = sum_i (sum_k r_ik) v_i v_i'."""
    cdef Py_ssize_t i, j, c, start, stop
    cdef double total[32]
    cdef floating* scratch = z + n * (d if d > k else k)
    cdef const floating* r
    if floating is double:
        r = resp
    else:
        for j in range(n * k):
            z[j] = <float> resp[j]
        r = z
    # scratch (k, d) column-major = r' v
    gemm_colmajor(c'N', c'N', <int> k, <int> d, <int> n, r, <int> k, v, <int> n, scratch,
                  <int> k)
    for c in range(k):
        for j in range(d):
            s12[c * d + j] += scratch[j * k + c]
    # z (n, d) column-major = row weights * v, in blocks of 32 rows (feature-major rows are
    # n elements apart: a row at a time would hit one cache set d times); S += z' v
    for start in range(0, n, 32):
        stop = min(start + 32, n)
        for i in range(start, stop):
            total[i - start] = 0.0
            for c in range(k):
                total[i - start] += resp[i * k + c]
        for j in range(d):
            for i in range(start, stop):
                z[j * n + i] = <floating> (total[i - start] * v[j * n + i])
    gemm_colmajor(c'T', c'N', <int> d, <int> d, <int> n, z, <int> n, v, <int> n, scratch,
                  <int> d)
    for j in range(d * d):
        s12[k * d + j] += scratch[j]


cdef void chunk_stats(
    int kind,
    const floating* x, Py_ssize_t n, Py_ssize_t d,   # IN  chunk rows (n, d)
    double* resp, Py_ssize_t k,                      # IN  (n, k) weighted responsibilities
    const floating* pivot,                           # IN  (k, d) centring point per component
    const floating* t_rows,                          # IN  expfam: (feature_width, n) t(x)
    floating* z,                                     # TMP (n, max(d, k)) + (max(d, 2k), d)
    double* s0, double* s12,                         # OUT += (k,), and (k, d) + (k, d, d) for
                                                     #     full/tied or (k, 2d) for expfam/diag
) noexcept nogil:
    cdef int f = <int> feature_width(kind, d)
    cdef Py_ssize_t i, j, c
    cdef double r, sr
    cdef floating t
    cdef const floating* m
    cdef double* s2 = s12 + k * d
    cdef floating* scratch = z + n * (d if d > k else k)
    # s0 += column sums, four rows per update: one add per row to the same s0[c] (which may
    # alias resp for the compiler) would chain its latency through memory
    for i in range(0, n - 3, 4):
        for c in range(k):
            s0[c] += ((resp[i * k + c] + resp[(i + 1) * k + c])
                      + (resp[(i + 2) * k + c] + resp[(i + 3) * k + c]))
    for i in range(n - n % 4, n):
        for c in range(k):
            s0[c] += resp[i * k + c]
    if kind == DIAG or kind == DIAG_MISSING:  # [s1 | s2] (k, 2d), or [s1 | s2 | n] (k, 3d)
        for i in range(n):                       # over the observed (not NaN) entries
            for c in range(k):
                r = resp[i * k + c]
                if r == 0.0:
                    continue
                m = pivot + c * d
                for j in range(d):
                    t = x[i * d + j]
                    if t != t:
                        continue
                    t = t - m[j]
                    s12[c * f + j] += r * t
                    s12[c * f + d + j] += r * t * t
                    if kind == DIAG_MISSING:
                        s12[c * f + 2 * d + j] += r
        return
    if kind == EXPFAM_TIED:
        chunk_stats_pooled(n, d, resp, k, t_rows, z, s12)
        return
    if features_by_row(kind):
        # [s1 | s2] (k, f) += r.T @ t(x): scratch (f, k) column-major, i.e. (k, f) row-major,
        # = t(x)' r (t(x) row-major (n, f) is column-major (f, n), r's (n, k) is (k, n))
        if floating is double:
            gemm_colmajor(c'N', c'T', f, <int> k, <int> n, t_rows, f, resp, <int> k, scratch, f)
        else:
            for j in range(n * k):
                z[j] = <float> resp[j]
            gemm_colmajor(c'N', c'T', f, <int> k, <int> n, t_rows, f, z, <int> k, scratch, f)
        for j in range(k * f):
            s12[j] += scratch[j]
        return
    if is_expfam(kind):
        # [s1 | s2] (k, f) += r.T @ t(x): scratch (k, f) column-major = r' t, both operands
        # BLAS's plain ones (r row-major (n, k) is column-major (k, n); t feature-major)
        if floating is double:
            if kind == EXPFAM_FULL and FULL_FMA:  # register tiles (_full.h)
                fastem_full_stats_f64(t_rows, n, f, resp, k, s12)
                return
            gemm_colmajor(c'N', c'N', <int> k, f, <int> n, resp, <int> k, t_rows, <int> n,
                          scratch, <int> k)
        else:
            for j in range(n * k):
                z[j] = <float> resp[j]
            if kind == EXPFAM_FULL and FULL_FMA:  # register tiles (_full.h)
                fastem_full_stats_f32(t_rows, n, f, z, k, s12)
                return
            gemm_colmajor(c'N', c'N', <int> k, f, <int> n, z, <int> k, t_rows, <int> n,
                          scratch, <int> k)
        for c in range(k):
            for j in range(f):
                s12[c * f + j] += scratch[j * k + c]
        return
    if is_centred(kind):  # register tiles, no BLAS packing copies (_tile.h)
        if floating is double:
            fastem_centred_stats_f64(x, n, d, k, resp, pivot, z, z + n * d, z + 2 * n * d,
                                     s12, s2)
        else:
            fastem_centred_stats_f32(x, n, d, k, resp, pivot, z, z + n * d, z + 2 * n * d,
                                     s12, s2)
        return
    for c in range(k):
        m = pivot + c * d
        for i in range(n):
            r = resp[i * k + c]
            if r == 0.0:  # also keeps omitted (non-finite, zero-weight) rows out of the sums
                memset(z + i * d, 0, d * sizeof(floating))
                continue
            sr = sqrt(r)
            for j in range(d):
                t = x[i * d + j] - m[j]
                s12[c * d + j] += r * t
                z[i * d + j] = <floating> (sr * t)
        if floating is double:
            syrk_rowmajor(<int> n, <int> d, z, s2 + c * d * d, 1.0)
        else:  # only the lower triangle is written: the rest of scratch is stale
            syrk_rowmajor(<int> n, <int> d, z, scratch, 0.0)
            for i in range(d):
                for j in range(i + 1):
                    s2[c * d * d + i * d + j] += scratch[i * d + j]


cdef void chunk_fit(
    int kind,
    const floating* x, Py_ssize_t n, Py_ssize_t d,   # IN  chunk rows (n, d)
    const double* weights,                           # IN  (n,) sample weights, or NULL for ones
    const double* resp_in,                           # IN  (n, k) given responsibilities, or NULL
    const floating* proj, const floating* center,
    const double* log_norm, Py_ssize_t k,            # IN  parameters, see chunk_log_prob
    const floating* pivot,                           # IN  (k, d) centring point per component
                                                     #     (expfam: all rows equal s)
    bint with_stats,                                 # IN  accumulate s0, s1, s2 (else only loglik)
    double* resp, double* lse, floating* y, floating* z,   # TMP per-thread buffers
    double* slot,                                    # OUT zeroed statistics vector (stats_size)
    double* worst,                                   # OUT [lowest log p(x_i), its row in chunk]
) noexcept nogil:
    fit_rows(kind, x, n, d, weights, resp_in, NULL, proj, center, log_norm, k, pivot,
             with_stats, resp, lse, y, z, slot, worst)


cdef void fit_rows(
    int kind,
    const floating* x, Py_ssize_t n, Py_ssize_t d,   # IN  chunk rows (n, d)
    const double* weights,                           # IN  (n,) sample weights, or NULL for ones
    const double* resp_in,                           # IN  (n, k) given responsibilities, or NULL
    const Py_ssize_t* labels,                        # IN  (n,) clamped component (-1: none), or
                                                     #     NULL (see _blocks.clamp_labelled)
    const floating* proj, const floating* center,
    const double* log_norm, Py_ssize_t k,            # IN  parameters, see chunk_log_prob
    const floating* pivot,                           # IN  (k, d) centring point per component
    bint with_stats,                                 # IN  accumulate s0, s1, s2 (else only loglik)
    double* resp, double* lse, floating* y, floating* z,   # TMP per-thread buffers
    double* slot,                                    # OUT zeroed statistics vector (stats_size)
    double* worst,                                   # OUT [lowest log p(x_i), its row in chunk]
) noexcept nogil:
    """chunk_fit, with partially labelled rows."""
    cdef Py_ssize_t i, j, c, worst_row = -1
    cdef double w, r, sr, loglik = 0.0, total = 0.0, lowest = INFINITY
    cdef double* row
    cdef bint fused
    cdef MissingScratch missing
    cdef MarginalScratch marginal
    if (floating is float and resp_in == NULL
            and (kind == EXPFAM_DIAG or kind == EXPFAM_SPHERICAL)
            and fastem_diag_fit_f32_fits(kind == EXPFAM_DIAG, d, k)):
        # features to statistics in one pass, in float32 lanes (_diag_fit.h)
        fastem_diag_fit_f32(kind == EXPFAM_DIAG, x, n, d, pivot, proj, k, log_norm, weights,
                            labels, with_stats, slot, worst)
        return
    if is_expfam(kind):
        features(kind, x, n, d, pivot, y)
    fused = (floating is float and resp_in == NULL and labels == NULL and kind == EXPFAM_FULL
             and FULL_FMA and k <= 16)
    if fused:  # log-densities to responsibilities in one pass (_full.h)
        if floating is float:
            fastem_full32_fit(y, n, feature_width(kind, d), proj, k, log_norm, resp, lse)
    elif resp_in == NULL:
        chunk_log_prob(kind, x, n, d, proj, center, log_norm, k, y, resp)
        if labels != NULL:
            clamp_labelled(resp, n, k, labels)
        if floating is double:
            normalize_log_rows(resp, n, k, lse)
        else:
            fastem_normalize_rows_short(resp, n, k, lse)
    else:
        if with_stats and (is_marginal(kind) or kind == FULL_MISSING):
            # the conditional moments that the statistics read, in y
            chunk_log_prob(kind, x, n, d, proj, center, log_norm, k, y, resp)
        memcpy(resp, resp_in, n * k * sizeof(double))
        memset(lse, 0, n * sizeof(double))
    for i in range(n):
        row = resp + i * k
        w = 1.0 if weights == NULL else weights[i]
        if resp_in == NULL and w != 0.0:  # a zero-weight row adds nothing, even if lse is -inf
            loglik += w * lse[i]
            if lse[i] < lowest:
                lowest = lse[i]
                worst_row = i
        if is_expfam(kind) and (w == 0.0 or lse[i] == -INFINITY):
            # zero responsibility times an overflowing feature would be NaN in r.T @ t(x)
            if features_by_row(kind):
                memset(y + i * feature_width(kind, d), 0,
                       feature_width(kind, d) * sizeof(floating))
            else:
                for c in range(feature_width(kind, d)):
                    y[c * n + i] = 0.0
        total += w
        if w != 1.0:
            for c in range(k):
                row[c] *= w
    # in locals above: slot may alias resp for the compiler, and would chain through memory
    slot[0] += loglik
    slot[1] += total
    worst[0] = lowest
    worst[1] = worst_row
    if with_stats and kind == FULL_MISSING:  # the conditional moments, about the means
        if floating is double:
            missing = missing_scratch(y, n, d, k)
            for c in range(k):  # sum r yhat and, by SYRK, sum r yhat yhat'
                for i in range(n):
                    r = resp[i * k + c]
                    slot[2 + c] += r
                    sr = sqrt(r)
                    for j in range(d):
                        slot[2 + k + c * d + j] += r * missing.fill[(i * k + c) * d + j]
                        z[i * d + j] = sr * missing.fill[(i * k + c) * d + j]
                syrk_rowmajor(<int> n, <int> d, z, slot + 2 + k + k * d + c * d * d, 1.0)
            fastem_conditional_covariance(x, n, d, k, center, missing.keys, missing.order, resp,
                                          missing.work, missing.miss, slot + 2 + k + k * d)
    elif with_stats:
        chunk_stats(complete_kind(kind), x, n, d, resp, k, pivot, y, z, slot + 2, slot + 2 + k)
        if is_marginal(kind):  # the conditional moments' corrections
            if floating is double:
                marginal = marginal_scratch(kind, y, center, n, d, k)
                fastem_marginal_stats(kind == EXPFAM_TIED_MISSING, marginal.v, n, d, k,
                                      marginal.offset, marginal.miss, marginal.prec,
                                      marginal.inverse, resp, marginal.u,
                                      z + scratch_size(complete_kind(kind), n, d, k),
                                      slot + 2 + k)


cpdef Py_ssize_t workspace_size(int kind, Py_ssize_t chunk_size, Py_ssize_t d, Py_ssize_t k):
    """float64 elements of per-thread scratch for chunks of ``chunk_size`` rows (any dtype):
    the skeleton's log-densities and log-sum-exp (chunk, k + 1), then y and z (GaussianPass)."""
    return (chunk_size * (k + 1) + chunk_size * projection_width(kind, d, k) + 1
            + projection_extra(kind, d, k) + scratch_size(kind, chunk_size, d, k))


# The block skeleton (_blocks.pyx) runs the chunks; a pass's parameters reach the per-chunk
# functions below as a GaussianPass behind the emission's void pointer.
ctypedef struct GaussianPass:
    int kind
    Py_ssize_t d, k
    Py_ssize_t chunk_size              # rows per chunk: lays out the family's scratch, which is
                                       # y (chunk_size, projection_width) + 1 +
                                       # projection_extra, then z
                                       # (scratch_size), in the data's dtype
    const void* proj                   # (see chunk_log_prob), in the data's dtype
    const void* center
    const void* pivot
    const double* log_norm


cdef void fit_chunk(
    const void* params,                # IN  GaussianPass
    const floating* x, Py_ssize_t n,   # IN  chunk rows (n, d)
    const double* weights,             # IN  (n,) sample weights, or NULL for ones
    const double* resp_in,             # IN  (n, k) given responsibilities, or NULL
    const Py_ssize_t* labels,          # IN  (n,) clamped component (-1: none), or NULL
    bint with_stats,                   # IN  accumulate s0, s1, s2 (else only loglik)
    double* resp, double* lse,         # TMP (n, k), (n,)
    double* scratch,                   # TMP y and z, see GaussianPass
    double* slot,                      # OUT zeroed statistics vector (stats_size)
    double* worst,                     # OUT [lowest log p(x_i), its row in the chunk]
) noexcept nogil:
    """The skeleton's fit of one chunk: fit_rows with the pass's parameters."""
    cdef const GaussianPass* p = <const GaussianPass*> params
    cdef floating* y = <floating*> scratch
    fit_rows(p.kind, x, n, p.d, weights, resp_in, labels, <const floating*> p.proj,
             <const floating*> p.center, p.log_norm, p.k, <const floating*> p.pivot, with_stats,
             resp, lse, y, y + p.chunk_size * projection_width(p.kind, p.d, p.k) + 1
             + projection_extra(p.kind, p.d, p.k), slot, worst)


cdef void log_density_chunk(
    const void* params,                # IN  GaussianPass
    const floating* x, Py_ssize_t n,   # IN  chunk rows (n, d)
    double* scratch,                   # TMP y, see GaussianPass
    double* logp,                      # OUT (n, k) log_norm[k] + log N(x_i | mu_k, Sigma_k)
) noexcept nogil:
    """The skeleton's log-densities of one chunk: features (expfam kinds), chunk_log_prob."""
    cdef const GaussianPass* p = <const GaussianPass*> params
    cdef floating* y = <floating*> scratch
    if is_expfam(p.kind):
        features(p.kind, x, n, p.d, <const floating*> p.pivot, y)
    chunk_log_prob(p.kind, x, n, p.d, <const floating*> p.proj, <const floating*> p.center,
                   p.log_norm, p.k, y, logp)


cdef void fill_pass(
    int kind,
    const floating[:, ::1] proj,       # IN  see chunk_log_prob
    const floating[:, ::1] center,
    const double[::1] log_norm,        # IN  (k,)
    const floating[:, ::1] pivot,      # IN  (k, d)
    Py_ssize_t chunk_size,
    GaussianPass* p,                   # OUT the pass's parameters
    emission_t* e,                     # OUT the emission of the pass, over p
) noexcept:
    """The pass's parameters and their emission for the skeleton."""
    p.kind, p.d, p.k, p.chunk_size = kind, pivot.shape[1], log_norm.shape[0], chunk_size
    p.proj, p.center, p.pivot, p.log_norm = &proj[0, 0], &center[0, 0], &pivot[0, 0], &log_norm[0]
    e.params, e.d, e.k = p, p.d, p.k
    e.stats_size = stats_size(kind, p.d, p.k)
    e.workspace = workspace_size(kind, chunk_size, p.d, p.k)
    e.fit_f32, e.fit_f64 = fit_chunk[float], fit_chunk[double]
    e.log_density_f32, e.log_density_f64 = log_density_chunk[float], log_density_chunk[double]


def fit_block(
    int kind,
    const floating[:, ::1] X,          # IN  (n, d) block of rows
    const double[::1] weights,         # IN  (n,) or (0,) for unit weights
    const double[:, ::1] resp_in,      # IN  (n, k) responsibilities to use, or (0, k) to compute
    const floating[:, ::1] proj,       # IN  see chunk_log_prob
    const floating[:, ::1] center,
    const double[::1] log_norm,
    const floating[:, ::1] pivot,      # IN  (k, d)
    bint with_stats,
    Py_ssize_t chunk_size,
    int n_threads,
    double[:, ::1] workspace,          # TMP (>= n_threads, workspace_size) per-thread scratch
    double[:, ::1] slots,              # TMP (>= n_chunks, stats_size + 2) per-chunk results
    double[::1] stats,                 # OUT += statistics vector (stats_size)
    double[::1] worst,                 # OUT [lowest log p(x_i) so far, its row]; row_offset added
    Py_ssize_t row_offset,
    const Py_ssize_t[::1] labels=None, # IN  (n,) clamped component per row (-1: none), or None
):
    """One E-step (and statistics) over a block; adds into ``stats`` in chunk order."""
    cdef GaussianPass p
    cdef emission_t e
    fill_pass(kind, proj, center, log_norm, pivot, chunk_size, &p, &e)
    if X.shape[0] == 0:
        return
    if labels is not None and labels.shape[0] != X.shape[0]:
        raise ValueError("fastem: labels must be (n,) or None")
    fit_chunks(&e, &X[0, 0], X.shape[0], &weights[0] if weights.shape[0] else NULL,
               &resp_in[0, 0] if resp_in.shape[0] else NULL,
               &labels[0] if labels is not None else NULL, with_stats, chunk_size, n_threads,
               workspace, slots, stats, worst, row_offset)


def predict_block(
    int kind,
    const floating[:, ::1] X,          # IN  (n, d) block of rows
    const floating[:, ::1] proj,       # IN  see chunk_log_prob
    const floating[:, ::1] center,
    const double[::1] log_norm,
    const floating[:, ::1] pivot,      # IN  (k, d); expfam: the centre of t(x)
    Py_ssize_t chunk_size,
    int n_threads,
    double[:, ::1] workspace,          # TMP (>= n_threads, workspace_size) per-thread scratch
    double[::1] out_log_prob,          # OUT (n,) log p(x_i), or (0,) to skip
    double[:, ::1] out_resp,           # OUT (n, k) posterior p(z | x_i), or (0, k) to skip
    Py_ssize_t[::1] out_label,         # OUT (n,) argmax_k p(z = k | x_i), or (0,) to skip
    double[:, ::1] out_log_joint=None, # OUT (n, k) log p(x_i, z = k), or None to skip
):
    """Per-row log-likelihood, posteriors and labels for a block (no reduction, any order)."""
    cdef GaussianPass p
    cdef emission_t e
    fill_pass(kind, proj, center, log_norm, pivot, chunk_size, &p, &e)
    if X.shape[0] == 0:
        return
    predict_chunks(&e, &X[0, 0], X.shape[0], chunk_size, n_threads, workspace,
                   &out_log_prob[0] if out_log_prob.shape[0] else NULL,
                   &out_resp[0, 0] if out_resp.shape[0] else NULL,
                   &out_label[0] if out_label.shape[0] else NULL,
                   &out_log_joint[0, 0] if out_log_joint is not None else NULL)


def log_density_block(
    int kind,
    const floating[:, ::1] X,          # IN  (n, d) block of rows
    const floating[:, ::1] proj,       # IN  see chunk_log_prob
    const floating[:, ::1] center,
    const double[::1] log_norm,        # IN  (k,) without log w_k: component log-densities
    const floating[:, ::1] pivot,      # IN  (k, d); expfam: the centre of t(x)
    Py_ssize_t chunk_size,
    int n_threads,
    double[:, ::1] workspace,          # TMP (>= n_threads, workspace_size) per-thread scratch
    double[:, ::1] out,                # OUT (n, k) log_norm[k] + log N(x_i | mu_k, Sigma_k)
):
    """Per-row component log-densities of a block, written into ``out`` (any order)."""
    cdef GaussianPass p
    cdef emission_t e
    fill_pass(kind, proj, center, log_norm, pivot, chunk_size, &p, &e)
    if out.shape[0] != X.shape[0] or out.shape[1] != p.k:
        raise ValueError("fastem: out must have shape (n, k)")
    if X.shape[0] == 0:
        return
    predict_chunks(&e, &X[0, 0], X.shape[0], chunk_size, n_threads, workspace, NULL, NULL, NULL,
                   &out[0, 0])


cdef void impute_chunk(
    int kind,                          # IN  FULL_MISSING or EXPFAM_*_MISSING
    const double* x, Py_ssize_t n, Py_ssize_t d, Py_ssize_t k,  # IN  chunk rows (n, d)
    const double* proj, const double* center,
    const double* log_norm,            # IN  the pass's parameters, see chunk_log_prob
    double* ws, Py_ssize_t chunk_size, # TMP the thread's scratch, laid out for chunk_size rows
    double* out,                       # OUT (n, d) rows with NaN entries filled
) noexcept nogil:
    """One chunk of impute_block: posteriors, then sum_c p(c | x_o) E[x_j | x_o, c] per NaN:
    mu_c + yhat_c (FULL_MISSING), s - u_c (the exponential-family kinds, _marginal.h)."""
    cdef Py_ssize_t i, j, c, r, m
    cdef double* logp = ws
    cdef double* y = ws + chunk_size * (k + 1)
    cdef const double* means = center + k * d * d
    cdef double value
    cdef MarginalScratch marginal
    chunk_log_prob(kind, x, n, d, proj, center, log_norm, k, y, logp)
    normalize_log_rows(logp, n, k, ws + chunk_size * k)
    memcpy(out, x, n * d * sizeof(double))
    if is_marginal(kind):
        marginal = marginal_scratch(kind, y, center, n, d, k)
        for i in range(n):
            m = marginal.offset[i + 1] - marginal.offset[i]
            for r in range(m):
                j = marginal.miss[marginal.offset[i] + r]
                value = 0.0
                for c in range(k):
                    value = value + logp[i * k + c] * (
                        marginal.centre[j] - marginal.u[(marginal.offset[i] + r) * k + c])
                out[i * d + j] = value
        return
    for i in range(n):
        for j in range(d):
            if x[i * d + j] != x[i * d + j]:
                value = 0.0
                for c in range(k):
                    value = value + logp[i * k + c] * (means[c * d + j] + y[(i * k + c) * d + j])
                out[i * d + j] = value


def impute_block(
    int kind,                          # IN  FULL_MISSING or EXPFAM_*_MISSING
    const double[:, ::1] X,            # IN  (n, d) block of rows
    const double[:, ::1] proj,         # IN  the pass's parameters, see chunk_log_prob
    const double[:, ::1] center,
    const double[::1] log_norm,
    const double[:, ::1] pivot,        # IN  (k, d)
    Py_ssize_t chunk_size,
    int n_threads,
    double[:, ::1] workspace,          # TMP (>= n_threads, workspace_size) per-thread scratch
    double[:, ::1] out,                # OUT (n, d) X with each NaN entry replaced by its
                                       #     conditional mean sum_c p(c | x_o) E[x_j | x_o, c]
):
    """Conditional means of the missing entries of a block under full (tied) components
    (the regression of missing on observed entries, _conditional.h, _marginal.h)."""
    cdef GaussianPass p
    cdef emission_t e
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], c, start, n_chunks
    cdef double* ws
    if kind != FULL_MISSING and not is_marginal(kind):
        raise ValueError("fastem: impute_block takes the full and tied kinds with missing entries")
    fill_pass(kind, proj, center, log_norm, pivot, chunk_size, &p, &e)
    if out.shape[0] != n or out.shape[1] != d or d != p.d:
        raise ValueError("fastem: out must have the shape of X")
    if n == 0:
        return
    if workspace.shape[0] < n_threads or workspace.shape[1] < e.workspace or chunk_size < 1:
        raise ValueError("fastem: workspace too small for these threads and chunks")
    n_chunks = (n + chunk_size - 1) // chunk_size
    with nogil, parallel(num_threads=min(n_threads, n_chunks)):
        ws = &workspace[threadid(), 0]
        for c in prange(n_chunks, schedule="dynamic"):
            start = c * chunk_size
            impute_chunk(kind, &X[start, 0], min(chunk_size, n - start), d, p.k, &proj[0, 0],
                         &center[0, 0], &log_norm[0], ws, chunk_size, &out[start, 0])
