/* Per-chunk loops of the grid kernel (grid.pyx): the shared features of a chunk and the
 * posteriors of one candidate, both over arrays laid out feature- or component-major (element
 * (f, i) at a[f * n + i]), so that every loop runs over the chunk's rows, contiguous, and
 * vectorises (an AVX2 clone where the CPU has it, _simd.h; no FMA, so results do not depend on
 * the CPU).
 */
#ifndef FASTEM_GRID_H
#define FASTEM_GRID_H

#include <math.h>
#include <stddef.h>

#include "fastem/_kernels/_simd.h"
#include "fastem/_kernels/_vexp.h"

/* t (features, n) = [1, v, v_a^2, v_a v_b (a < b)] with v = x - centre in float64, for rows x
 * of float32 or float64 data; a row of zero weight gets v = 0 (its entries may be NaN, and it
 * must add nothing to r' t). bad[i] = 1 where a square is not finite (a huge float64 row):
 * the caller zeroes its features before the statistics. Only the first 1 + 2d features are
 * written when `products` is 0 (a grid without full candidates). */
#define FASTEM_DEFINE_GRID_FEATURES(NAME, T)                                                  \
FASTEM_TARGET_CLONES                                                                          \
static void NAME(int products, const T *restrict x, ptrdiff_t n, ptrdiff_t d,                 \
                 const double *restrict centre, const double *restrict weights,               \
                 double *restrict t, double *restrict bad)                                    \
{                                                                                             \
    for (ptrdiff_t i = 0; i < n; i++)                                                         \
        t[i] = 1.0;                                                                           \
    double *restrict v = t + n;                                                               \
    for (ptrdiff_t start = 0; start < n; start += 32) { /* transposed 32 rows at a time */   \
        const ptrdiff_t stop = start + 32 < n ? start + 32 : n;                               \
        for (ptrdiff_t a = 0; a < d; a++)                                                     \
            for (ptrdiff_t i = start; i < stop; i++)                                          \
                v[a * n + i] = (double) x[i * d + a] - centre[a];                             \
    }                                                                                         \
    if (weights != NULL)                                                                      \
        for (ptrdiff_t a = 0; a < d; a++)                                                     \
            for (ptrdiff_t i = 0; i < n; i++)                                                 \
                v[a * n + i] = weights[i] != 0.0 ? v[a * n + i] : 0.0;                        \
    double *restrict square = v + d * n;                                                      \
    for (ptrdiff_t i = 0; i < n; i++)                                                         \
        bad[i] = 0.0;                                                                         \
    for (ptrdiff_t a = 0; a < d; a++)                                                         \
        for (ptrdiff_t i = 0; i < n; i++) {                                                   \
            square[a * n + i] = v[a * n + i] * v[a * n + i];                                  \
            bad[i] += square[a * n + i];                                                      \
        }                                                                                     \
    for (ptrdiff_t i = 0; i < n; i++)                                                         \
        bad[i] = bad[i] - bad[i] == 0.0 ? 0.0 : 1.0;  /* inf or NaN */                        \
    double *restrict product = square + d * n;                                                \
    for (ptrdiff_t a = 0; a < (products ? d : 0); a++)                                        \
        for (ptrdiff_t b = a + 1; b < d; b++) {                                               \
            for (ptrdiff_t i = 0; i < n; i++)                                                 \
                product[i] = v[a * n + i] * v[b * n + i];                                     \
            product += n;                                                                     \
        }                                                                                     \
}

FASTEM_DEFINE_GRID_FEATURES(fastem_grid_features_f32, float)
FASTEM_DEFINE_GRID_FEATURES(fastem_grid_features_f64, double)

/* One candidate's posteriors from its k components' values a = t W (component-major, (k, n)):
 * with a += log_norm (NaN -> -inf, as the Gaussian kernels do), lse[i] = log sum_c exp(a_ci)
 * by one max shift, and a becomes weights[i] * p(c | x_i) (zero rows where the maximum is not
 * finite, lse then the maximum). entropy, when not NULL, gets H_i = -sum_c p_ci log p_ci =
 * lse_i - sum_c p_ci a_ci. top and total: (n,) scratch. */
FASTEM_TARGET_CLONES
static void fastem_grid_posteriors(double *restrict a, ptrdiff_t n, ptrdiff_t k,
                                   const double *restrict log_norm,
                                   const double *restrict weights, double *restrict lse,
                                   double *restrict entropy, double *restrict top,
                                   double *restrict total)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        top[i] = -INFINITY;
        total[i] = 0.0;
        lse[i] = 0.0;  /* sum_c e_ci a_ci, for the entropy */
    }
    for (ptrdiff_t c = 0; c < k; c++) {
        double *restrict row = a + c * n;
        const double shift = log_norm[c];
        for (ptrdiff_t i = 0; i < n; i++) {
            const double value = row[i] + shift;
            row[i] = value == value ? value : -INFINITY;
            top[i] = row[i] > top[i] ? row[i] : top[i];
        }
    }
    for (ptrdiff_t c = 0; c < k; c++) {
        double *restrict row = a + c * n;
        for (ptrdiff_t i = 0; i < n; i++) {
            const double e = fastem_exp_nonpositive(row[i] - top[i], 0);
            lse[i] += e > 0.0 ? e * row[i] : 0.0;
            row[i] = e;
            total[i] += e;
        }
    }
    /* no loads or stores under a condition below: they would be masked moves, slow here */
    for (ptrdiff_t i = 0; i < n; i++) {
        const int finite = -INFINITY < top[i] && top[i] < INFINITY;
        const double sum = finite ? total[i] : 1.0;
        const double value = top[i] + fastem_log_sum(sum);
        const double weighted = lse[i] / sum;
        lse[i] = finite ? value : top[i];
        total[i] = finite ? 1.0 / sum : 0.0;
        top[i] = finite ? value - weighted : 0.0;  /* the entropy */
    }
    if (entropy != NULL)
        for (ptrdiff_t i = 0; i < n; i++)
            entropy[i] = top[i];
    if (weights != NULL)
        for (ptrdiff_t i = 0; i < n; i++)
            total[i] *= weights[i];
    for (ptrdiff_t c = 0; c < k; c++) {
        double *restrict row = a + c * n;
        for (ptrdiff_t i = 0; i < n; i++)
            row[i] *= total[i];
    }
}

#endif
