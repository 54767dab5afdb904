/* Features t(x) of the full exponential-family kinds for the rows of a chunk (see gaussian.pyx):
 * with v = x - centre, t = [v, v_a v_b for a <= b] (products, EXPFAM_FULL) or [v] (EXPFAM_TIED,
 * whose last feature chunk_log_prob adds), stored feature-major: feature f of row i at
 * t[f * n + i], a (width, n) array with width d + d (d + 1) / 2 or d (+ 1).
 *
 * Feature-major, every product is a contiguous, aligned run of n elements (row-major rows of
 * 153 features cost ~13 % of a float32 full pass in unaligned stores), and both GEMMs of
 * gaussian.pyx can take t as BLAS's untransposed operand. In C for `restrict` and an AVX2
 * clone (_simd.h). The diagonal kinds' few features are stored row by row instead (_diag.h).
 */
#ifndef FASTEM_FEATURES_H
#define FASTEM_FEATURES_H

#include <stddef.h>

#include "fastem/_kernels/_simd.h"

#define FASTEM_DEFINE_FEATURES(NAME, T)                                                       \
FASTEM_TARGET_CLONES                                                                          \
static void NAME(int products, const T *restrict x, ptrdiff_t n, ptrdiff_t d,                 \
                 const T *restrict centre, T *restrict t)                                     \
{                                                                                             \
    /* v = x - centre, transposed in blocks of 32 rows (5x faster than row by row) */         \
    for (ptrdiff_t start = 0; start < n; start += 32) {                                       \
        const ptrdiff_t stop = start + 32 < n ? start + 32 : n;                               \
        for (ptrdiff_t a = 0; a < d; a++)                                                     \
            for (ptrdiff_t i = start; i < stop; i++)                                          \
                t[a * n + i] = x[i * d + a] - centre[a];                                      \
    }                                                                                         \
    T *restrict product = t + d * n;                                                          \
    for (ptrdiff_t a = 0; a < (products ? d : 0); a++) {                                      \
        const T *restrict va = t + a * n;                                                     \
        for (ptrdiff_t b = a; b < d; b++) {                                                   \
            const T *restrict vb = t + b * n;                                                 \
            for (ptrdiff_t i = 0; i < n; i++)                                                 \
                product[i] = va[i] * vb[i];                                                   \
            product += n;                                                                     \
        }                                                                                     \
    }                                                                                         \
}

FASTEM_DEFINE_FEATURES(fastem_features_f32, float)
FASTEM_DEFINE_FEATURES(fastem_features_f64, double)

#endif
