/* The diagonal exponential-family kinds (gaussian.pyx, EXPFAM_DIAG and EXPFAM_SPHERICAL, and
 * their _MISSING kinds), row by row.
 *
 * With v = x - centre, the features t(x) = [v, v^2] (diag) or [v, |v|^2] (spherical) of row i
 * are stored at t[i * f ...] (row major, f = 2d or d + 1). log p(x_i, z = c) = log_norm[c] +
 * t(x_i) . W[:, c] is computed for two rows at a time against blocks of components held in 4
 * (or 2) AVX2 registers (GCC vector extensions), reading W (f, k) from L1: at D = K = 16 this
 * is ~1 000 flops per row, which BLAS spent more time packing and transposing for than
 * computing. Components left over (all of them when K fills one register or less: K = 8 in
 * float32, 4 in float64) go one register at a time for four rows, the last K mod lanes from a
 * zero-padded copy of their columns; they had gone one by one, in scalar code, which made
 * float32 at K = 8 (~115 ns per row) slower than float64. Sums are stored by vectors, float32
 * lanes widened exactly. A NaN sum (a finite row so large that its features overflow:
 * inf - inf) becomes -inf, the correct limit. No FMA (_simd.h), so every clone rounds
 * identically; a row's arithmetic does not depend on the rows beside it.
 */
#ifndef FASTEM_DIAG_H
#define FASTEM_DIAG_H

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "fastem/_kernels/_simd.h"

static inline double fastem_diag_finite_or_minus_inf(double value)
{
    return value == value ? value : -INFINITY;
}

/* Log-densities of components [c0, c0 + R * half) for rows `first` and `second` (the same row
 * again when only one is left), R = 4 or 2 registers of `half` lanes: 2R accumulators, written
 * out as separate variables (GCC spills arrays of vectors). */
#define FASTEM_DIAG_STEP(acc0, acc1, r)                                                       \
    memcpy(&weights, w + j * k + c0 + (r) * half, sizeof weights);                            \
    acc0 += weights * first[j];                                                               \
    acc1 += weights * second[j]

#define FASTEM_DIAG_STORE(store, acc0, acc1, r)                                                    \
    store(acc0, log_norm + c0 + (r) * half, out + c0 + (r) * half, half);                     \
    if (rows == 2)                                                                            \
        store(acc1, log_norm + c0 + (r) * half, out + k + c0 + (r) * half, half)

/* One register of components (columns [0, width) of w, `stride` apart) for up to four rows,
 * features split even / odd: eight accumulators, so that the adds' latency is hidden when K
 * fills a single register (K = 8 in float32, 4 in float64). */
#define FASTEM_DIAG_ONE(acc_even, acc_odd, row)                                               \
    acc_even += even * row[j];                                                                \
    acc_odd += odd * row[j + 1]

#define FASTEM_DIAG_ONE_STORE(store, acc_even, acc_odd, r)                                         \
    if ((r) < rows)                                                                           \
        store(acc_even + acc_odd, log_norm, out + (r) * k, width)

#define FASTEM_DEFINE_DIAG(T, SUFFIX)                                                         \
/* [v, v^2] (squares) or [v, |v|^2]; with `missing` (nan_policy="marginalize") followed by o,  \
 * o_a = 1 where x_a is observed: a NaN entry gets v_a = 0 and o_a = 0, so it adds nothing to   \
 * t @ W (its log-normaliser is o_a's weight) nor to r.T @ t. A row whose sum is not NaN takes  \
 * the loop without per-entry tests. */                                                       \
FASTEM_TARGET_CLONES                                                                          \
static void fastem_diag_features_##SUFFIX(int squares, int missing, const T *restrict x,      \
                                          ptrdiff_t n, ptrdiff_t d, const T *restrict centre, \
                                          T *restrict t)                                      \
{                                                                                             \
    const ptrdiff_t f = (squares ? 2 * d : d + 1) + (missing ? d : 0);                        \
    if (squares && !missing) {  /* the common case in whole registers (same operations) */   \
        typedef T lanes __attribute__((vector_size(32)));                                     \
        const ptrdiff_t whole = d - d % (ptrdiff_t) (32 / sizeof(T));                         \
        for (ptrdiff_t i = 0; i < n; i++) {                                                   \
            const T *restrict row = x + i * d;                                                \
            T *restrict v = t + i * f;                                                        \
            for (ptrdiff_t a = 0; a < whole; a += 32 / sizeof(T)) {                           \
                lanes value, mean;                                                            \
                memcpy(&value, row + a, sizeof value);                                        \
                memcpy(&mean, centre + a, sizeof mean);                                       \
                value -= mean;                                                                \
                memcpy(v + a, &value, sizeof value);                                          \
                value *= value;                                                               \
                memcpy(v + d + a, &value, sizeof value);                                      \
            }                                                                                 \
            for (ptrdiff_t a = whole; a < d; a++) {                                           \
                v[a] = row[a] - centre[a];                                                    \
                v[d + a] = v[a] * v[a];                                                       \
            }                                                                                 \
        }                                                                                     \
        return;                                                                               \
    }                                                                                         \
    for (ptrdiff_t i = 0; i < n; i++) {                                                       \
        const T *restrict row = x + i * d;                                                    \
        T *restrict v = t + i * f;                                                            \
        T sum = 0;                                                                            \
        for (ptrdiff_t a = 0; a < (missing ? d : 0); a++)                                     \
            sum += row[a];                                                                    \
        if (sum == sum) {                                                                     \
            for (ptrdiff_t a = 0; a < d; a++)                                                 \
                v[a] = row[a] - centre[a];                                                    \
            for (ptrdiff_t a = 0; a < (missing ? d : 0); a++)                                 \
                v[f - d + a] = 1;                                                             \
        } else {                                                                              \
            for (ptrdiff_t a = 0; a < d; a++) {                                               \
                const int seen = row[a] == row[a];                                            \
                v[a] = seen ? row[a] - centre[a] : 0;                                         \
                v[f - d + a] = (T) seen;                                                      \
            }                                                                                 \
        }                                                                                     \
        if (squares) {                                                                        \
            for (ptrdiff_t a = 0; a < d; a++)                                                 \
                v[d + a] = v[a] * v[a];                                                       \
        } else {                                                                              \
            T norm = 0;                                                                       \
            for (ptrdiff_t a = 0; a < d; a++)                                                 \
                norm += v[a] * v[a];                                                          \
            v[d] = norm;                                                                      \
        }                                                                                     \
    }                                                                                         \
}                                                                                             \
                                                                                              \
typedef T fastem_lanes_##SUFFIX __attribute__((vector_size(32)));  /* one AVX2 register */ \
                                                                                              \
/* out[c] = acc[c] + log_norm[c] (NaN: -inf) for c < width: a whole register in vectors       \
 * (float32 lanes widened to float64 exactly), a partial one lane by lane. */                 \
static inline __attribute__((always_inline)) void fastem_diag_store_##SUFFIX(                 \
    fastem_lanes_##SUFFIX acc, const double *restrict log_norm, double *restrict out,         \
    ptrdiff_t width)                                                                          \
{                                                                                             \
    enum { LANES = 32 / sizeof(T) };                                                          \
    typedef double wide __attribute__((vector_size(8 * LANES)));                              \
    typedef long long bits __attribute__((vector_size(8 * LANES)));                           \
    if (width == LANES) {                                                                     \
        wide value = __builtin_convertvector(acc, wide), norm;                                \
        memcpy(&norm, log_norm, sizeof norm);                                                 \
        value += norm;                                                                        \
        const bits ok = value == value;                                                       \
        const wide minus_inf = (wide) {0} - INFINITY;                                         \
        const bits result = ((bits) value & ok) | ((bits) minus_inf & ~ok);                   \
        memcpy(out, &result, sizeof result);                                                  \
        return;                                                                               \
    }                                                                                         \
    for (ptrdiff_t c = 0; c < width; c++)                                                     \
        out[c] = fastem_diag_finite_or_minus_inf(acc[c] + log_norm[c]);                       \
}                                                                                             \
                                                                                              \
/* Rows [0, rows) (rows <= 4, t_rows[r] their features) against one register of components:  \
 * out[r * k + c] for c < width <= lanes (w's columns beyond width are zero padding). */       \
static inline __attribute__((always_inline)) void fastem_diag_one_##SUFFIX(                   \
    const T *const *t_rows, ptrdiff_t rows, ptrdiff_t f, const T *restrict w,                \
    ptrdiff_t stride, ptrdiff_t width, const double *restrict log_norm, ptrdiff_t k,          \
    double *restrict out)                                                                     \
{                                                                                             \
    typedef fastem_lanes_##SUFFIX lanes;                                                      \
    const T *restrict r0 = t_rows[0], *restrict r1 = t_rows[1];                               \
    const T *restrict r2 = t_rows[2], *restrict r3 = t_rows[3];                               \
    lanes a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};     \
    lanes even, odd;                                                                          \
    ptrdiff_t j = 0;                                                                          \
    for (; j + 1 < f; j += 2) {                                                               \
        memcpy(&even, w + j * stride, sizeof even);                                           \
        memcpy(&odd, w + (j + 1) * stride, sizeof odd);                                       \
        FASTEM_DIAG_ONE(a0, b0, r0);                                                          \
        FASTEM_DIAG_ONE(a1, b1, r1);                                                          \
        FASTEM_DIAG_ONE(a2, b2, r2);                                                          \
        FASTEM_DIAG_ONE(a3, b3, r3);                                                          \
    }                                                                                         \
    if (j < f) {                                                                              \
        memcpy(&even, w + j * stride, sizeof even);                                           \
        a0 += even * r0[j], a1 += even * r1[j], a2 += even * r2[j], a3 += even * r3[j];       \
    }                                                                                         \
    FASTEM_DIAG_ONE_STORE(fastem_diag_store_##SUFFIX, a0, b0, 0);                                                          \
    FASTEM_DIAG_ONE_STORE(fastem_diag_store_##SUFFIX, a1, b1, 1);                                                          \
    FASTEM_DIAG_ONE_STORE(fastem_diag_store_##SUFFIX, a2, b2, 2);                                                          \
    FASTEM_DIAG_ONE_STORE(fastem_diag_store_##SUFFIX, a3, b3, 3);                                                          \
}                                                                                             \
                                                                                              \
/* t (n, f) @ w (f, k) + log_norm, rows four at a time: blocks of 4 and 2 registers of        \
 * components for a pair of rows, then single registers for all four rows, then the last      \
 * K mod lanes components from a zero-padded copy of their columns (or one by one if f is     \
 * too large for that copy on the stack). */                                                 \
FASTEM_TARGET_CLONES                                                                          \
static void fastem_diag_log_prob_##SUFFIX(const T *restrict t, ptrdiff_t n, ptrdiff_t f,      \
                                          const T *restrict w, ptrdiff_t k,                   \
                                          const double *restrict log_norm,                    \
                                          double *restrict logp)                              \
{                                                                                             \
    typedef fastem_lanes_##SUFFIX lanes;                                                      \
    const ptrdiff_t half = (ptrdiff_t) (sizeof(lanes) / sizeof(T));                          \
    enum { PAD_MAX = 4096 };                                                                  \
    T pad[PAD_MAX];                                                                           \
    const ptrdiff_t wide = k - k % half, tail = k - wide;                                     \
    const int padded = tail && f * half <= PAD_MAX;                                           \
    for (ptrdiff_t j = 0; padded && j < f; j++)                                               \
        for (ptrdiff_t c = 0; c < half; c++)                                                  \
            pad[j * half + c] = c < tail ? w[j * k + wide + c] : 0;                           \
    for (ptrdiff_t i0 = 0; i0 < n; i0 += 4) {                                                 \
        const ptrdiff_t group = n - i0 < 4 ? n - i0 : 4;                                      \
        const T *t_rows[4];                                                                   \
        for (ptrdiff_t r = 0; r < 4; r++)  /* missing rows repeat the last one */             \
            t_rows[r] = t + (i0 + (r < group ? r : group - 1)) * f;                           \
        ptrdiff_t c0 = 0;                                                                     \
        for (ptrdiff_t i = i0; i < i0 + group; i += 2) {  /* two rows share each load of W */ \
            const T *restrict first = t + i * f;                                              \
            const T *restrict second = i + 1 < i0 + group ? first + f : first;                \
            double *restrict out = logp + i * k;                                              \
            const ptrdiff_t rows = i + 1 < i0 + group ? 2 : 1;                                \
            c0 = 0;                                                                           \
            for (; c0 + 4 * half <= k; c0 += 4 * half) {                                      \
                lanes a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, weights;                        \
                lanes b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};                                 \
                for (ptrdiff_t j = 0; j < f; j++) {                                           \
                    FASTEM_DIAG_STEP(a0, b0, 0);                                              \
                    FASTEM_DIAG_STEP(a1, b1, 1);                                              \
                    FASTEM_DIAG_STEP(a2, b2, 2);                                              \
                    FASTEM_DIAG_STEP(a3, b3, 3);                                              \
                }                                                                             \
                FASTEM_DIAG_STORE(fastem_diag_store_##SUFFIX, a0, b0, 0);                                                  \
                FASTEM_DIAG_STORE(fastem_diag_store_##SUFFIX, a1, b1, 1);                                                  \
                FASTEM_DIAG_STORE(fastem_diag_store_##SUFFIX, a2, b2, 2);                                                  \
                FASTEM_DIAG_STORE(fastem_diag_store_##SUFFIX, a3, b3, 3);                                                  \
            }                                                                                 \
            for (; c0 + 2 * half <= k; c0 += 2 * half) {  /* features split even / odd */   \
                lanes a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0}, weights;                        \
                lanes a2 = {0}, a3 = {0}, b2 = {0}, b3 = {0};                                 \
                ptrdiff_t j = 0;                                                              \
                for (; j + 1 < f; j++) {                                                      \
                    FASTEM_DIAG_STEP(a0, b0, 0);                                              \
                    FASTEM_DIAG_STEP(a1, b1, 1);                                              \
                    j++;                                                                      \
                    FASTEM_DIAG_STEP(a2, b2, 0);                                              \
                    FASTEM_DIAG_STEP(a3, b3, 1);                                              \
                }                                                                             \
                if (j < f) {                                                                  \
                    FASTEM_DIAG_STEP(a0, b0, 0);                                              \
                    FASTEM_DIAG_STEP(a1, b1, 1);                                              \
                }                                                                             \
                a0 += a2, a1 += a3, b0 += b2, b1 += b3;                                       \
                FASTEM_DIAG_STORE(fastem_diag_store_##SUFFIX, a0, b0, 0);                                                  \
                FASTEM_DIAG_STORE(fastem_diag_store_##SUFFIX, a1, b1, 1);                                                  \
            }                                                                                 \
        }                                                                                     \
        for (; c0 + half <= k; c0 += half)                                                    \
            fastem_diag_one_##SUFFIX(t_rows, group, f, w + c0, k, half, log_norm + c0, k,     \
                                     logp + i0 * k + c0);                                     \
        if (padded) {                                                                         \
            fastem_diag_one_##SUFFIX(t_rows, group, f, pad, half, tail, log_norm + c0, k,     \
                                     logp + i0 * k + c0);                                     \
            continue;                                                                         \
        }                                                                                     \
        for (ptrdiff_t r = 0; r < group; r++) {  /* the remaining components, one by one */   \
            for (ptrdiff_t c = c0; c < k; c++) {                                              \
                T acc = 0;                                                                    \
                for (ptrdiff_t j = 0; j < f; j++)                                             \
                    acc += w[j * k + c] * t_rows[r][j];                                       \
                logp[(i0 + r) * k + c] = fastem_diag_finite_or_minus_inf(acc + log_norm[c]);  \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
}

FASTEM_DEFINE_DIAG(float, f32)
FASTEM_DEFINE_DIAG(double, f64)

#endif
