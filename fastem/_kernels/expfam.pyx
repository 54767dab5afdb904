# Fused E-step for mixtures of exponential-family components over one block of rows, split into
# chunks on threads.
#
# Every input column j has a kind (col_kind[j], see expfam.pxd) that fixes its feature map
# T_j(x) and base measure b_j(x); the features of a row are T(x) = [T_1(x_1) | ... | T_D(x_D)]
# (F = col_offset[D] columns) and, for components independent across columns,
#   log p(x_i, z=k) = log_norm[k] + sum_j b_j(x_ij) + T(x_i) @ natural[:, k]
# with log_norm[k] = log w_k - A(natural_k). For each chunk of rows (small enough to stay in
# cache) one pass computes the features in float64 (float32 data: in float32 where the chunk's
# rounding bound allows, see log_prob_f32), the
# log-densities of all components by one GEMM, the row-wise log-sum-exp, the responsibilities
# r_ik and the sufficient statistics
#   ll = sum_i w_i log p(x_i),  W = sum_i w_i,  s0_k = sum_i w_i r_ik,  S_k = sum_i w_i r_ik T(x_i)
# (S by one more GEMM, r.T @ T). No (n_samples, n_components) array is ever formed.
#
# Missing values (nan_policy="marginalize"): a column of kind COL_MISSING + COL_* has one more
# feature, o = 1 where its value is observed, whose natural parameter is the column's
# log-normaliser -A_j(natural_kj) (then not in log_norm); a NaN value gets all-zero features, so
# it drops out of t @ natural (the row's marginal density over its observed columns) and of
# r.T @ T, whose o column is then n_kj = sum_i w_i r_ik o_ij, the mass each column's M-step
# divides by. Complete columns pay one comparison per value.
#
# Support: a value outside its column's support (non-finite anywhere; negative or non-integer
# counts; x <= 0 for COL_LOG; codes that are non-integer or outside [0, width)) gets zero
# features and makes the row's base measure -inf, so the row has log p = -inf, zero
# responsibilities and is reported through ``worst``; no NaN and no out-of-bounds index can
# come from the data. A COL_GAUSSIAN value whose square (x - s)^2 overflows is treated the same
# way (its density underflows to zero under any proper Gaussian), so features are always finite
# and zero responsibilities never meet an infinite feature in r.T @ T. A NaN log-density (only
# from NaN parameters) becomes -inf.
#
# Scratch: per thread, workspace_size(chunk_size, F, K) doubles holding the chunk's
# log-probabilities turned responsibilities (chunk, K), log-sum-exp (chunk,), features (chunk, F)
# and base measure (chunk,); per chunk, a slot of stats_size + 2 doubles (the statistics, then
# the chunk's lowest log p(x_i) and its row).
#
# Threads and determinism: the block skeleton (_blocks.pyx) runs the chunks on threads; every
# chunk writes its statistics into its own slot, and slots are added in chunk order after the
# parallel loop, so results are bitwise identical for any number of threads.
from cython cimport floating
from libc.float cimport FLT_EPSILON
from libc.math cimport INFINITY, fabs, floor, lgamma, log
from libc.string cimport memcpy, memset

from ._blocks cimport clamp_labelled, emission_t, fit_chunks, predict_chunks
from ._linalg cimport gemm_rowmajor, gemm_tn_rowmajor
from .logsumexp cimport normalize_log_rows

# The column kinds and the signatures of the per-chunk functions are declared in expfam.pxd,
# the public C-level API of this module.


cdef extern from "fastem/_kernels/_normalize.h" nogil:
    # float32 data: exp by a shorter series (relative error < 7.1e-9), within their own
    # rounding, as gaussian.pyx's (_vexp.h)
    void fastem_normalize_rows_short(double* a, Py_ssize_t n, Py_ssize_t k, double* lse)

# log(x!) for small counts, filled once at import (libm's lgamma is slow and, through signgam,
# not reentrant); larger counts call lgamma.
cdef enum:
    N_LOG_FACTORIAL = 1024
cdef double LOG_FACTORIAL[N_LOG_FACTORIAL]
cdef Py_ssize_t _m
for _m in range(N_LOG_FACTORIAL):
    LOG_FACTORIAL[_m] = lgamma(_m + 1.0)


cdef double log_factorial(double x) noexcept nogil:
    """log(x!) for an integer x >= 0 (as a double); also multinomial.pyx's."""
    if x < N_LOG_FACTORIAL:
        return LOG_FACTORIAL[<Py_ssize_t> x]
    return lgamma(x + 1.0)


cpdef Py_ssize_t stats_size(Py_ssize_t f, Py_ssize_t k):
    """Length of the statistics vector: [loglik, weight, s0 (k), S (k, f) row-major]."""
    return 2 + k + k * f


cpdef Py_ssize_t workspace_size(Py_ssize_t chunk_size, Py_ssize_t f, Py_ssize_t k):
    """float64 elements of per-thread scratch for chunks of ``chunk_size`` rows (any dtype):
    responsibilities (chunk, k), log-sum-exp (chunk,), features (chunk, f), base measure
    (chunk,), then the float32 path's work (work32_size float32 elements)."""
    return chunk_size * (f + k + 2) + (work32_size(chunk_size, f, k) + 1) // 2


cdef void features(
    const floating* x, Py_ssize_t n, Py_ssize_t d,   # IN  chunk rows (n, d)
    const int* col_kind,                             # IN  (d,) COL_* of each column
    const Py_ssize_t* col_offset,                    # IN  (d + 1,) feature range of each column
    const double* col_shift,                         # IN  (d,) s_j of COL_GAUSSIAN columns
    double* t,                                       # OUT (n, col_offset[d]) rows of T(x)
    double* base,                                    # OUT (n,) sum_j b_j(x); -inf out of support
) noexcept nogil:
    """Features T(x) (float64) and base measure of each row; zeros and -inf out of support."""
    column_features(x, n, d, col_kind, col_offset, col_shift, t, base)


ctypedef fused feature_t:
    float
    double


cdef void column_features(
    const floating* x, Py_ssize_t n, Py_ssize_t d,   # IN  chunk rows (n, d)
    const int* col_kind,                             # IN  (d,) COL_* of each column
    const Py_ssize_t* col_offset,                    # IN  (d + 1,) feature range of each column
    const double* col_shift,                         # IN  (d,) s_j of COL_GAUSSIAN columns
    feature_t* t,                                    # OUT (n, col_offset[d]) rows of T(x)
    double* base,                                    # OUT (n,) sum_j b_j(x); -inf out of support
) noexcept nogil:
    """features(), in float32 or float64 (computed in float64, then rounded)."""
    cdef Py_ssize_t i, j, o, width, f = col_offset[d]
    cdef double v, b
    cdef feature_t* row
    cdef int kind
    for i in range(n):
        row = t + i * f
        b = 0.0
        for j in range(d):
            v = x[i * d + j]
            o = col_offset[j]
            width = col_offset[j + 1] - o
            kind = col_kind[j]
            if kind >= COL_MISSING:  # the last feature says whether the value is observed
                width -= 1
                kind -= COL_MISSING
                row[o + width] = v == v
                if v != v:  # missing: no features, no base measure
                    memset(row + o, 0, width * sizeof(feature_t))
                    continue
            if kind == COL_IDENTITY:
                if -INFINITY < v < INFINITY:
                    row[o] = v
                else:
                    row[o] = 0.0
                    b = -INFINITY
            elif kind == COL_COUNT:
                if 0.0 <= v < INFINITY and v == floor(v):
                    row[o] = v
                    b -= log_factorial(v)
                else:
                    row[o] = 0.0
                    b = -INFINITY
            elif kind == COL_LOG:
                if 0.0 < v < INFINITY:
                    row[o] = v
                    row[o + 1] = log(v)
                else:
                    row[o] = 0.0
                    row[o + 1] = 0.0
                    b = -INFINITY
            elif kind == COL_CATEGORICAL:
                memset(row + o, 0, width * sizeof(feature_t))
                if 0.0 <= v < width and v == floor(v):
                    row[o + <Py_ssize_t> v] = 1.0
                else:
                    b = -INFINITY
            else:  # COL_GAUSSIAN
                v = v - col_shift[j]
                if v * v < INFINITY:  # also false for NaN
                    row[o] = v
                    row[o + 1] = v * v
                else:
                    row[o] = 0.0
                    row[o + 1] = 0.0
                    b = -INFINITY
        base[i] = b


cdef void chunk_log_prob(
    const double* t, const double* base,             # IN  (n, f) features, (n,) base measure
    Py_ssize_t n, Py_ssize_t f,
    const double* natural,                           # IN  (f, k) natural parameters
    const double* log_norm, Py_ssize_t k,            # IN  (k,) log w_k - A(natural_k)
    double* logp,                                    # OUT (n, k) log p(x_i, z = k)
) noexcept nogil:
    """log p(x_i, z=k) = log_norm[k] + base[i] + T(x_i) @ natural[:, k], one GEMM."""
    if f > 0:
        gemm_rowmajor(<int> n, <int> k, <int> f, t, <int> f, natural, <int> k, logp, <int> k)
    else:
        memset(logp, 0, n * k * sizeof(double))
    add_log_norm(logp, base, n, log_norm, k, logp)


cdef void add_log_norm(
    const feature_t* dots,                           # IN  (n, k) T(x_i) @ natural (may be logp)
    const double* base, Py_ssize_t n,                # IN  (n,) base measure
    const double* log_norm, Py_ssize_t k,            # IN  (k,)
    double* logp,                                    # OUT (n, k) log p(x_i, z = k)
) noexcept nogil:
    """logp = log_norm + base + dots; -inf for rows out of support and NaN values."""
    cdef Py_ssize_t i, c
    cdef double b, v
    for i in range(n):
        b = base[i]
        if b == -INFINITY:  # out of support: -inf whatever T @ natural is
            for c in range(k):
                logp[i * k + c] = -INFINITY
            continue
        for c in range(k):
            v = log_norm[c] + b + dots[i * k + c]
            logp[i * k + c] = v if v == v else -INFINITY


# float32 data compute T(x) @ natural and r.T @ T(x) in float32 where a chunk's rows have
# eps32 * sum_j max_i |T_ij| max_k |natural_jk| <= FLOAT32_MAX_ERROR nats (the rounding of the
# features, the parameters and the products; families/gaussian.py's EXPFAM_MAX_ERROR), and
# only for columns whose statistics are sums of non-negative terms that float32 keeps to its
# relative rounding (identity, count and categorical: Bernoulli, Exponential, Poisson,
# Categorical). Log columns (Gamma: log E[x] - E[log x] cancels for concentrated components) and
# Gaussian ones (second moments about a common centre) stay in float64, as does a chunk whose
# rows fail the bound (large counts).
cdef double FLOAT32_MAX_ERROR = 1e-3


cdef bint float32_columns(const int* col_kind, Py_ssize_t d) noexcept nogil:
    """Whether every column's kind may compute in float32 (see FLOAT32_MAX_ERROR)."""
    cdef Py_ssize_t j
    cdef int kind
    for j in range(d):
        kind = col_kind[j] % COL_MISSING
        if kind != COL_IDENTITY and kind != COL_COUNT and kind != COL_CATEGORICAL:
            return False
    return True


cpdef Py_ssize_t work32_size(Py_ssize_t chunk_size, Py_ssize_t f, Py_ssize_t k):
    """float32 elements of the float32 path's scratch: dots, then responsibilities (chunk, k);
    natural, then r.T @ T (f, k); max_k |natural_jk| and max_i |T_ij| (f,) each."""
    return chunk_size * k + f * k + 2 * f


cdef bint log_prob_f32(
    const float* x, Py_ssize_t n, Py_ssize_t d,      # IN  chunk rows (n, d)
    const int* col_kind, const Py_ssize_t* col_offset,
    const double* col_shift,                         # IN  column layout, see features
    const double* natural, const double* log_norm,   # IN  (f, k) and (k,) parameters
    Py_ssize_t f, Py_ssize_t k,
    float* t, double* base,                          # OUT (n, f) T(x) in float32, (n,) base
    float* work,                                     # TMP (work32_size,)
    double* logp,                                    # OUT (n, k) log p(x_i, z = k)
) noexcept nogil:
    """chunk_log_prob in float32 (features, parameters, GEMM) if the chunk's rows stay within
    FLOAT32_MAX_ERROR; returns False, and leaves the chunk to float64, otherwise."""
    cdef Py_ssize_t i, g, c
    cdef float* nat = work + n * k
    cdef float* top = nat + f * k
    cdef float* largest = top + f
    cdef double worst = 0.0
    if f == 0 or not float32_columns(col_kind, d):
        return False
    for g in range(f):
        top[g] = 0.0
        largest[g] = 0.0
        for c in range(k):
            nat[g * k + c] = <float> natural[g * k + c]
            top[g] = max(top[g], fabs(nat[g * k + c]))
    column_features(x, n, d, col_kind, col_offset, col_shift, t, base)
    for i in range(n):  # the bound by columns: no chain of dependent adds per row
        for g in range(f):
            largest[g] = max(largest[g], fabs(t[i * f + g]))
    for g in range(f):
        worst += <double> largest[g] * top[g]
    if worst * FLT_EPSILON > FLOAT32_MAX_ERROR or worst != worst:
        return False
    gemm_rowmajor(<int> n, <int> k, <int> f, t, <int> f, nat, <int> k, work, <int> k)
    add_log_norm(work, base, n, log_norm, k, logp)
    return True


cdef void chunk_stats_f32(
    const float* t, Py_ssize_t n, Py_ssize_t f,      # IN  (n, f) features in float32
    const double* resp, Py_ssize_t k,                # IN  (n, k) weighted responsibilities
    float* work,                                     # TMP (work32_size,)
    double* s0, double* s,                           # OUT += (k,) and (k, f) r.T @ T
) noexcept nogil:
    """chunk_stats in float32: r.T @ T summed in float32 over the chunk, then in float64."""
    cdef Py_ssize_t i, c, j
    cdef float* sums = work + n * k
    for j in range(n * k):
        work[j] = <float> resp[j]
    gemm_tn_rowmajor(<int> n, <int> k, <int> f, work, t, <int> f, sums, <float> 0.0)
    for i in range(n):
        for c in range(k):
            s0[c] += resp[i * k + c]
    for j in range(k * f):
        s[j] += sums[j]


cdef void chunk_stats(
    const double* t, Py_ssize_t n, Py_ssize_t f,     # IN  (n, f) features
    const double* resp, Py_ssize_t k,                # IN  (n, k) weighted responsibilities
    double* s0, double* s,                           # OUT += (k,) and (k, f) r.T @ T
) noexcept nogil:
    cdef Py_ssize_t i, c
    for i in range(n):
        for c in range(k):
            s0[c] += resp[i * k + c]
    if f > 0:
        gemm_tn_rowmajor(<int> n, <int> k, <int> f, resp, t, <int> f, s, 1.0)


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
) noexcept nogil:
    """E-step and statistics of one chunk (fit_rows without labels)."""
    fit_rows(x, n, d, col_kind, col_offset, col_shift, weights, resp_in, NULL, natural,
             log_norm, f, k, with_stats, t, resp, lse, base, NULL, slot, worst)


cdef void fit_rows(
    const floating* x, Py_ssize_t n, Py_ssize_t d,   # IN  chunk rows (n, d)
    const int* col_kind, const Py_ssize_t* col_offset,
    const double* col_shift,                         # IN  column layout, see features
    const double* weights,                           # IN  (n,) sample weights, or NULL for ones
    const double* resp_in,                           # IN  (n, k) given responsibilities, or NULL
    const Py_ssize_t* labels,                        # IN  (n,) clamped component (-1: none), or
                                                     #     NULL (see _blocks.clamp_labelled)
    const double* natural, const double* log_norm,   # IN  (f, k) and (k,) parameters
    Py_ssize_t f, Py_ssize_t k,
    bint with_stats,                                 # IN  accumulate s0, S (else only ll, W)
    double* t, double* resp, double* lse, double* base,   # TMP (n, f), (n, k), (n,), (n,)
    float* work32,                                   # TMP (work32_size,) for float32 data to
                                                     #     compute in float32, or NULL
    double* slot,                                    # OUT zeroed statistics vector (stats_size)
    double* worst,                                   # OUT [lowest log p(x_i), its row in chunk]
) noexcept nogil:
    """E-step and statistics of one chunk.

    With given responsibilities (resp_in) no log-density is computed, as in gaussian.pyx: they
    replace the E-step's, and ll and worst are left alone, except that a row out of support
    still adds w * -inf to ll, is reported through worst and contributes nothing but its weight.
    """
    cdef Py_ssize_t i, c
    cdef double w
    cdef double* row
    cdef bint in_float32 = False
    worst[0] = INFINITY
    worst[1] = -1
    if floating is float:  # features, log-densities and statistics in float32 (see log_prob_f32)
        if work32 != NULL and resp_in == NULL:
            in_float32 = log_prob_f32(x, n, d, col_kind, col_offset, col_shift, natural,
                                      log_norm, f, k, <float*> t, base, work32, resp)
    if not in_float32:
        features(x, n, d, col_kind, col_offset, col_shift, t, base)
    if resp_in == NULL:
        if not in_float32:
            chunk_log_prob(t, base, n, f, natural, log_norm, k, resp)
        if labels != NULL:
            clamp_labelled(resp, n, k, labels)
        if floating is double:
            normalize_log_rows(resp, n, k, lse)
        else:
            fastem_normalize_rows_short(resp, n, k, lse)
    else:
        memcpy(resp, resp_in, n * k * sizeof(double))
        for i in range(n):
            lse[i] = -INFINITY if base[i] == -INFINITY else 0.0
    for i in range(n):
        row = resp + i * k
        w = 1.0 if weights == NULL else weights[i]
        if w == 0.0:  # a zero-weight row adds nothing, even if lse is -inf
            for c in range(k):
                row[c] = 0.0
            continue
        if resp_in == NULL or lse[i] == -INFINITY:
            slot[0] += w * lse[i]
            if lse[i] < worst[0]:
                worst[0] = lse[i]
                worst[1] = i
            if resp_in != NULL:
                for c in range(k):
                    row[c] = 0.0
        slot[1] += w
        if w != 1.0:
            for c in range(k):
                row[c] *= w
    if with_stats and in_float32:
        chunk_stats_f32(<float*> t, n, f, resp, k, work32, slot + 2, slot + 2 + k)
    elif with_stats:
        chunk_stats(t, n, f, resp, k, slot + 2, slot + 2 + k)


cdef check_layout(Py_ssize_t n, Py_ssize_t d, const int[::1] col_kind,
                  const Py_ssize_t[::1] col_offset, const double[::1] col_shift,
                  const double[:, ::1] natural, const double[::1] log_norm):
    """Validate the column layout against the data and parameters (no out-of-bounds access)."""
    cdef Py_ssize_t j, width
    cdef int kind
    if col_kind.shape[0] != d or col_offset.shape[0] != d + 1 or col_shift.shape[0] != d:
        raise ValueError("fastem: col_kind, col_offset and col_shift must have lengths d, d + 1 "
                         "and d for data with d columns")
    if col_offset[0] != 0:
        raise ValueError("fastem: col_offset[0] must be 0")
    for j in range(d):
        kind = col_kind[j]
        width = col_offset[j + 1] - col_offset[j]
        if kind >= COL_MISSING:  # one more feature: whether the value is observed
            kind -= COL_MISSING
            width -= 1
        if kind == COL_IDENTITY or kind == COL_COUNT:
            ok = width == 1
        elif kind == COL_LOG or kind == COL_GAUSSIAN:
            ok = width == 2
        elif kind == COL_CATEGORICAL:
            ok = width >= 1
        else:
            raise ValueError(f"fastem: unknown column kind {kind} of column {j}")
        if not ok:
            raise ValueError(f"fastem: column {j} of kind {kind} has {width} features")
    if natural.shape[0] != col_offset[d] or natural.shape[1] != log_norm.shape[0]:
        raise ValueError("fastem: natural must have shape (col_offset[d], len(log_norm))")
    if log_norm.shape[0] < 1:
        raise ValueError("fastem: at least one component is needed")


# The block skeleton (_blocks.pyx) runs the chunks; a pass's parameters reach the per-chunk
# functions below as an ExpFamPass behind the emission's void pointer.
ctypedef struct ExpFamPass:
    Py_ssize_t d, f, k
    Py_ssize_t chunk_size              # rows per chunk: lays out the family's scratch, which is
                                       # features (chunk_size, f), then base (chunk_size,),
                                       # then the float32 path's work (work32_size)
    const int* col_kind                # column layout, see features
    const Py_ssize_t* col_offset
    const double* col_shift
    const double* natural              # (f, k)
    const double* log_norm             # (k,)


cdef void fit_chunk(
    const void* params,                # IN  ExpFamPass
    const floating* x, Py_ssize_t n,   # IN  chunk rows (n, d)
    const double* weights,             # IN  (n,) sample weights, or NULL for ones
    const double* resp_in,             # IN  (n, k) given responsibilities, or NULL
    const Py_ssize_t* labels,          # IN  (n,) clamped component (-1: none), or NULL
    bint with_stats,                   # IN  accumulate s0, S (else only ll, W)
    double* resp, double* lse,         # TMP (n, k), (n,)
    double* scratch,                   # TMP features and base measure, see ExpFamPass
    double* slot,                      # OUT zeroed statistics vector (stats_size)
    double* worst,                     # OUT [lowest log p(x_i), its row in the chunk]
) noexcept nogil:
    """The skeleton's fit of one chunk: fit_rows with the pass's parameters."""
    cdef const ExpFamPass* p = <const ExpFamPass*> params
    fit_rows(x, n, p.d, p.col_kind, p.col_offset, p.col_shift, weights, resp_in, labels,
             p.natural, p.log_norm, p.f, p.k, with_stats, scratch, resp, lse,
             scratch + p.chunk_size * p.f, <float*> (scratch + p.chunk_size * (p.f + 1)), slot,
             worst)


cdef void log_density_chunk(
    const void* params,                # IN  ExpFamPass
    const floating* x, Py_ssize_t n,   # IN  chunk rows (n, d)
    double* scratch,                   # TMP features and base measure, see ExpFamPass
    double* logp,                      # OUT (n, k) log_norm[k] + log p(x_i | k)
) noexcept nogil:
    """The skeleton's log-densities of one chunk: features, then chunk_log_prob."""
    cdef const ExpFamPass* p = <const ExpFamPass*> params
    cdef double* base = scratch + p.chunk_size * p.f
    if floating is float:  # in float32 where the chunk's bound allows (see log_prob_f32)
        if log_prob_f32(x, n, p.d, p.col_kind, p.col_offset, p.col_shift, p.natural,
                        p.log_norm, p.f, p.k, <float*> scratch, base,
                        <float*> (scratch + p.chunk_size * (p.f + 1)), logp):
            return
    features(x, n, p.d, p.col_kind, p.col_offset, p.col_shift, scratch, base)
    chunk_log_prob(scratch, base, n, p.f, p.natural, p.log_norm, p.k, logp)


cdef int fill_pass(
    Py_ssize_t n, Py_ssize_t d,        # IN  shape of the block
    const int[::1] col_kind,           # IN  (d,) COL_* of each column
    const Py_ssize_t[::1] col_offset,  # IN  (d + 1,) feature range of each column; f = [d]
    const double[::1] col_shift,       # IN  (d,) centre s_j of COL_GAUSSIAN columns
    const double[:, ::1] natural,      # IN  (f, k) natural parameters
    const double[::1] log_norm,        # IN  (k,)
    Py_ssize_t chunk_size,
    ExpFamPass* p,                     # OUT the pass's parameters
    emission_t* e,                     # OUT the emission of the pass, over p
) except -1:
    """The pass's parameters, checked (check_layout), and their emission for the skeleton."""
    check_layout(n, d, col_kind, col_offset, col_shift, natural, log_norm)
    p.d, p.f, p.k, p.chunk_size = d, col_offset[d], log_norm.shape[0], chunk_size
    p.col_kind, p.col_offset, p.col_shift = &col_kind[0], &col_offset[0], &col_shift[0]
    p.natural, p.log_norm = &natural[0, 0], &log_norm[0]
    e.params, e.d, e.k = p, d, p.k
    e.stats_size = stats_size(p.f, p.k)
    e.workspace = workspace_size(chunk_size, p.f, p.k)
    e.fit_f32, e.fit_f64 = fit_chunk[float], fit_chunk[double]
    e.log_density_f32, e.log_density_f64 = log_density_chunk[float], log_density_chunk[double]
    return 0


def fit_block(
    const floating[:, ::1] X,          # IN  (n, d) block of rows
    const double[::1] weights,         # IN  (n,) or (0,) for unit weights
    const double[:, ::1] resp_in,      # IN  (n, k) responsibilities to use, or (0, k) to compute
    const int[::1] col_kind,           # IN  (d,) COL_* of each column
    const Py_ssize_t[::1] col_offset,  # IN  (d + 1,) feature range of each column; f = [d]
    const double[::1] col_shift,       # IN  (d,) centre s_j of COL_GAUSSIAN columns
    const double[:, ::1] natural,      # IN  (f, k) natural parameters
    const double[::1] log_norm,        # IN  (k,) log w_k - A(natural_k)
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
    """One E-step (and statistics) over a block; adds into ``stats`` in chunk order.

    With ``resp_in`` given, its rows replace the E-step's responsibilities (initialisation) and,
    as in gaussian.pyx, no log-likelihood is added and ``worst`` is left alone; only a row out
    of support adds w * -inf to the log-likelihood, is reported through ``worst`` and adds
    nothing but its weight. Zero-weight rows add nothing at all.
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], k = log_norm.shape[0]
    cdef ExpFamPass p
    cdef emission_t e
    fill_pass(n, d, col_kind, col_offset, col_shift, natural, log_norm, chunk_size, &p, &e)
    cdef bint given = resp_in.shape[0] > 0
    if stats.shape[0] != e.stats_size or worst.shape[0] != 2:
        raise ValueError("fastem: stats must have stats_size(f, k) entries and worst two")
    if weights.shape[0] not in (0, n) or (labels is not None and labels.shape[0] != n) or (
            given and (resp_in.shape[0] != n or resp_in.shape[1] != k)):
        raise ValueError("fastem: weights must be (n,) or empty, labels (n,) or None, resp_in "
                         "(n, k) or empty")
    if n == 0:
        return
    fit_chunks(&e, &X[0, 0], n, &weights[0] if weights.shape[0] else NULL,
               &resp_in[0, 0] if given else NULL, &labels[0] if labels is not None else NULL,
               with_stats, chunk_size, n_threads, workspace, slots, stats, worst, row_offset)


def predict_block(
    const floating[:, ::1] X,          # IN  (n, d) block of rows
    const int[::1] col_kind,           # IN  (d,) COL_* of each column
    const Py_ssize_t[::1] col_offset,  # IN  (d + 1,) feature range of each column; f = [d]
    const double[::1] col_shift,       # IN  (d,) centre s_j of COL_GAUSSIAN columns
    const double[:, ::1] natural,      # IN  (f, k) natural parameters
    const double[::1] log_norm,        # IN  (k,) log w_k - A(natural_k)
    Py_ssize_t chunk_size,
    int n_threads,
    double[:, ::1] workspace,          # TMP (>= n_threads, workspace_size) per-thread scratch
    double[::1] log_prob,              # OUT (n,) log p(x_i), or (0,) to skip
    double[:, ::1] resp,               # OUT (n, k) posterior p(z | x_i), or (0, k) to skip
    Py_ssize_t[::1] labels,            # OUT (n,) argmax_k p(z = k | x_i), or (0,) to skip
):
    """Per-row log-likelihood, posteriors and labels for a block (no reduction, any order).

    A row out of support gets log p = -inf, all-zero posteriors and label 0.
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], k = log_norm.shape[0]
    cdef ExpFamPass p
    cdef emission_t e
    fill_pass(n, d, col_kind, col_offset, col_shift, natural, log_norm, chunk_size, &p, &e)
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
    const floating[:, ::1] X,          # IN  (n, d) block of rows
    const int[::1] col_kind,           # IN  (d,) COL_* of each column
    const Py_ssize_t[::1] col_offset,  # IN  (d + 1,) feature range of each column; f = [d]
    const double[::1] col_shift,       # IN  (d,) centre s_j of COL_GAUSSIAN columns
    const double[:, ::1] natural,      # IN  (f, k) natural parameters
    const double[::1] log_norm,        # IN  (k,) -A(natural_k), without log w_k: component
                                       #     log-densities
    Py_ssize_t chunk_size,
    int n_threads,
    double[:, ::1] workspace,          # TMP (>= n_threads, workspace_size) per-thread scratch
    double[:, ::1] out,                # OUT (n, k) log_norm[k] + log p(x_i | natural_k)
):
    """Per-row component log-densities of a block, written into ``out`` (any order); a row out
    of support gets -inf for every component."""
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1]
    cdef ExpFamPass p
    cdef emission_t e
    fill_pass(n, d, col_kind, col_offset, col_shift, natural, log_norm, chunk_size, &p, &e)
    if out.shape[0] != n or out.shape[1] != p.k:
        raise ValueError("fastem: out must have shape (n, k)")
    if n == 0:
        return
    predict_chunks(&e, &X[0, 0], n, chunk_size, n_threads, workspace, NULL, NULL, NULL,
                   &out[0, 0])
