/* The diagonal exponential-family kinds (gaussian.pyx, EXPFAM_DIAG and EXPFAM_SPHERICAL, and
 * their _MISSING kinds), row by row.
 *
 * With v = x - centre, the features t(x) = [v, v^2] (diag) or [v, |v|^2] (spherical) of row i
 * are stored at t[i * f ...] (row major, f = 2d or d + 1). log p(x_i, z = c) = log_norm[c] +
 * t(x_i) . W[:, c] is computed for two rows at a time against blocks of components held in 4
 * (or 2) AVX2 registers (GCC vector extensions), reading W (f, k) from L1: at D = K = 16 this
 * is ~1 000 flops per row, which BLAS spent more time packing and transposing for than
 * computing. A NaN sum (a finite row so large that its features overflow: inf - inf) becomes
 * -inf, the correct limit. No FMA (_simd.h), so every clone rounds identically.
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

#define FASTEM_DIAG_STORE(acc0, acc1, r)                                                      \
    for (ptrdiff_t c = 0; c < half; c++) {                                                    \
        const ptrdiff_t at = c0 + (r) * half + c;                                             \
        out[at] = fastem_diag_finite_or_minus_inf(acc0[c] + log_norm[at]);                    \
        if (rows == 2)                                                                        \
            out[k + at] = fastem_diag_finite_or_minus_inf(acc1[c] + log_norm[at]);            \
    }

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
FASTEM_TARGET_CLONES                                                                          \
static void fastem_diag_log_prob_##SUFFIX(const T *restrict t, ptrdiff_t n, ptrdiff_t f,      \
                                          const T *restrict w, ptrdiff_t k,                   \
                                          const double *restrict log_norm,                    \
                                          double *restrict logp)                              \
{                                                                                             \
    typedef T lanes __attribute__((vector_size(32)));  /* one AVX2 register */                \
    const ptrdiff_t half = (ptrdiff_t) (sizeof(lanes) / sizeof(T));                          \
    for (ptrdiff_t i = 0; i < n; i += 2) {  /* two rows share each load of W */              \
        const T *restrict first = t + i * f;                                                  \
        const T *restrict second = i + 1 < n ? first + f : first;                             \
        double *restrict out = logp + i * k;                                                  \
        const ptrdiff_t rows = i + 1 < n ? 2 : 1;                                             \
        ptrdiff_t c0 = 0;                                                                     \
        for (; c0 + 4 * half <= k; c0 += 4 * half) {                                          \
            lanes a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, weights;                            \
            lanes b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};                                     \
            for (ptrdiff_t j = 0; j < f; j++) {                                               \
                FASTEM_DIAG_STEP(a0, b0, 0);                                                  \
                FASTEM_DIAG_STEP(a1, b1, 1);                                                  \
                FASTEM_DIAG_STEP(a2, b2, 2);                                                  \
                FASTEM_DIAG_STEP(a3, b3, 3);                                                  \
            }                                                                                 \
            FASTEM_DIAG_STORE(a0, b0, 0)                                                      \
            FASTEM_DIAG_STORE(a1, b1, 1)                                                      \
            FASTEM_DIAG_STORE(a2, b2, 2)                                                      \
            FASTEM_DIAG_STORE(a3, b3, 3)                                                      \
        }                                                                                     \
        for (; c0 + 2 * half <= k; c0 += 2 * half) {  /* features split even / odd */       \
            lanes a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0}, weights;                            \
            lanes a2 = {0}, a3 = {0}, b2 = {0}, b3 = {0};                                     \
            ptrdiff_t j = 0;                                                                  \
            for (; j + 1 < f; j++) {                                                          \
                FASTEM_DIAG_STEP(a0, b0, 0);                                                  \
                FASTEM_DIAG_STEP(a1, b1, 1);                                                  \
                j++;                                                                          \
                FASTEM_DIAG_STEP(a2, b2, 0);                                                  \
                FASTEM_DIAG_STEP(a3, b3, 1);                                                  \
            }                                                                                 \
            if (j < f) {                                                                      \
                FASTEM_DIAG_STEP(a0, b0, 0);                                                  \
                FASTEM_DIAG_STEP(a1, b1, 1);                                                  \
            }                                                                                 \
            a0 += a2, a1 += a3, b0 += b2, b1 += b3;                                           \
            FASTEM_DIAG_STORE(a0, b0, 0)                                                      \
            FASTEM_DIAG_STORE(a1, b1, 1)                                                      \
        }                                                                                     \
        for (ptrdiff_t r = 0; r < rows; r++) {  /* the remaining components, one by one */    \
            const T *restrict features = r ? second : first;                                  \
            for (ptrdiff_t c = c0; c < k; c++) {                                              \
                T acc = 0;                                                                    \
                for (ptrdiff_t j = 0; j < f; j++)                                             \
                    acc += w[j * k + c] * features[j];                                        \
                out[r * k + c] = fastem_diag_finite_or_minus_inf(acc + log_norm[c]);         \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
}

FASTEM_DEFINE_DIAG(float, f32)
FASTEM_DEFINE_DIAG(double, f64)

#endif
