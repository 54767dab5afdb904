/* Nearest centre of each row (kmeans.pyx): the first k minimising |c_k|^2 - 2 x.c_k, with
 * x.c_k summed over the columns in order. 64 rows at a time, transposed to float64, and 8
 * rows at a time in registers: every loop runs over rows and vectorises (AVX2 clone, _simd.h; no FMA: every clone rounds
 * as the scalar code, so labels do not depend on the CPU). A row holding NaN gets label 0.
 */
#ifndef FASTEM_CLOSEST_H
#define FASTEM_CLOSEST_H

#include <stddef.h>

#include "fastem/_kernels/_simd.h"

#define FASTEM_CLOSEST_ROWS 64

#define FASTEM_DEFINE_CLOSEST(NAME, T)                                                        \
FASTEM_TARGET_CLONES                                                                          \
static void NAME(const T *restrict x, ptrdiff_t n, ptrdiff_t d, const double *restrict centers,\
                 const double *restrict norms, ptrdiff_t k, ptrdiff_t *restrict labels,      \
                 double *restrict xt /* d * FASTEM_CLOSEST_ROWS */)                          \
{                                                                                             \
    for (ptrdiff_t start = 0; start < n; start += FASTEM_CLOSEST_ROWS) {                      \
        const ptrdiff_t m = n - start < FASTEM_CLOSEST_ROWS ? n - start : FASTEM_CLOSEST_ROWS;\
        if (m < FASTEM_CLOSEST_ROWS) /* no loads under a condition: masked moves are slow */  \
            for (ptrdiff_t i = 0; i < d * FASTEM_CLOSEST_ROWS; i++)                           \
                xt[i] = 0.0;                                                                  \
        for (ptrdiff_t i = 0; i < m; i++)                                                     \
            for (ptrdiff_t j = 0; j < d; j++)                                                 \
                xt[j * FASTEM_CLOSEST_ROWS + i] = (double) x[(start + i) * d + j];            \
        for (ptrdiff_t row = 0; row < m; row += 16) { /* 16 rows in registers */             \
            double best[16], label[16];                                                       \
            for (ptrdiff_t c = 0; c < k; c++) {                                               \
                double dot[16] = {0.0};                                                        \
                for (ptrdiff_t j = 0; j < d; j++) {                                           \
                    const double cj = centers[c * d + j];                                     \
                    for (int l = 0; l < 16; l++)                                               \
                        dot[l] += xt[j * FASTEM_CLOSEST_ROWS + row + l] * cj;                 \
                }                                                                             \
                if (c == 0)                                                                   \
                    for (int l = 0; l < 16; l++) {                                             \
                        best[l] = norms[0] - 2.0 * dot[l];                                    \
                        label[l] = 0.0;                                                       \
                    }                                                                         \
                for (int l = 0; l < (c ? 16 : 0); l++) {                                       \
                    const double value = norms[c] - 2.0 * dot[l], current = best[l];          \
                    const int closer = value < current;                                       \
                    best[l] = closer ? value : current;                                       \
                    label[l] = closer ? (double) c : label[l];                                \
                }                                                                             \
            }                                                                                 \
            for (int l = 0; l < 16 && row + l < m; l++)                                        \
                labels[start + row + l] = (ptrdiff_t) label[l];                               \
        }                                                                                     \
    }                                                                                         \
}

FASTEM_DEFINE_CLOSEST(fastem_closest_f32, float)
FASTEM_DEFINE_CLOSEST(fastem_closest_f64, double)

#endif
