/* Row-wise log-sum-exp normalisation of a block of log-probabilities (see logsumexp.pxd).
 *
 * Each row's maximum and sum are reduced over four interleaved partial results: a single
 * running max or sum is a chain of dependent instructions (~4 cycles each) that took ~8 % of a
 * diagonal E-step at K = 16. The order is fixed, so results do not depend on threads or CPU.
 */
#ifndef FASTEM_NORMALIZE_H
#define FASTEM_NORMALIZE_H

#include <math.h>
#include <stddef.h>

#include "fastem/_kernels/_simd.h"
#include "fastem/_kernels/_vexp.h"

#define FASTEM_MAX(u, v) ((u) > (v) ? (u) : (v))  /* skips a NaN u */

FASTEM_TARGET_CLONES
static void fastem_row_max(const double *a, ptrdiff_t n, ptrdiff_t k, double *top)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        const double *row = a + i * k;
        double m0 = -INFINITY, m1 = -INFINITY, m2 = -INFINITY, m3 = -INFINITY;
        ptrdiff_t j = 0;
        for (; j + 4 <= k; j += 4) {
            m0 = FASTEM_MAX(row[j], m0);
            m1 = FASTEM_MAX(row[j + 1], m1);
            m2 = FASTEM_MAX(row[j + 2], m2);
            m3 = FASTEM_MAX(row[j + 3], m3);
        }
        for (; j < k; j++)
            m0 = FASTEM_MAX(row[j], m0);
        top[i] = FASTEM_MAX(FASTEM_MAX(m0, m1), FASTEM_MAX(m2, m3));
    }
}

/* Rows of exp(a - lse) (from fastem_exp_rows) divided by their sums, lse += log(sum); a row
 * whose maximum lse is not finite (all -inf, or +inf/NaN) becomes zeros with lse unchanged.
 * The logs are taken 64 rows at a time after the sums, in a loop that vectorises. */
FASTEM_TARGET_CLONES
static void fastem_scale_rows(double *a, ptrdiff_t n, ptrdiff_t k, double *lse)
{
    double totals[64];
    for (ptrdiff_t start = 0; start < n; start += 64) {
        const ptrdiff_t stop = start + 64 < n ? start + 64 : n;
        for (ptrdiff_t i = start; i < stop; i++) {
            double *row = a + i * k;
            if (!(-INFINITY < lse[i] && lse[i] < INFINITY)) {
                for (ptrdiff_t j = 0; j < k; j++)
                    row[j] = 0.0;
                totals[i - start] = 1.0;  /* log 1 = 0: lse unchanged */
                continue;
            }
            double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
            ptrdiff_t j = 0;
            for (; j + 4 <= k; j += 4) {
                s0 += row[j];
                s1 += row[j + 1];
                s2 += row[j + 2];
                s3 += row[j + 3];
            }
            for (; j < k; j++)
                s0 += row[j];
            const double total = (s0 + s1) + (s2 + s3);
            const double inv = 1.0 / total;
            for (j = 0; j < k; j++)
                row[j] *= inv;
            totals[i - start] = total;
        }
        for (ptrdiff_t i = start; i < stop; i++)
            lse[i] += fastem_log_sum(totals[i - start]);
    }
}

static void fastem_normalize_rows(double *a, ptrdiff_t n, ptrdiff_t k, double *lse)
{
    fastem_row_max(a, n, k, lse);
    fastem_exp_rows(a, n, k, lse);
    fastem_scale_rows(a, n, k, lse);
}

/* The same for log-densities of float32 data: exp by the degree-7 series (_vexp.h). */
__attribute__((unused))  /* only gaussian.pyx takes it */
static void fastem_normalize_rows_short(double *a, ptrdiff_t n, ptrdiff_t k, double *lse)
{
    fastem_row_max(a, n, k, lse);
    fastem_exp_rows_short(a, n, k, lse);
    fastem_scale_rows(a, n, k, lse);
}

#endif
