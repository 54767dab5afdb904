/* The per-row steps of the scaled forward-backward recursions (forward_backward.pyx), in C so
 * that their short loops over K states take `restrict` pointers (no run-time alias checks in
 * front of every 8-element loop) and an AVX2 clone (_simd.h: no FMA, so every clone rounds
 * alike). Every sum runs over its index in order (nothing is reassociated), so results do not
 * depend on the clone.
 *
 * The recursions are latency-bound: each row waits for the previous one. Measured on 1e6 rows,
 * K = 8, one thread (ns per row of the whole forward-backward): the forward step as K
 * independent dot products 83, as one K-vector updated at every i 91 (each update goes through
 * memory); the backward beta as one K-vector updated through A's transpose 83, as dot
 * products 85; the loops compiled for each constant K in 2..16, 118.
 */
#ifndef FASTEM_CHAIN_H
#define FASTEM_CHAIN_H

#include <stddef.h>
#include <string.h>

#include "fastem/_kernels/_simd.h"

/* alpha_t = (alpha_{t-1} A) * b_t, unnormalised: alpha[j] = b[j] sum_i prev[i] A[i, j], as k
 * independent dot products with the columns of A (rows of its transpose), which the CPU
 * overlaps, instead of one K-vector updated in memory at every i. */
FASTEM_TARGET_CLONES
static void fastem_forward_row(const double *restrict prev, const double *restrict transmat_t,
                               const double *restrict b, ptrdiff_t k, double *restrict alpha)
{
    for (ptrdiff_t j = 0; j < k; j++) {
        const double *restrict col = transmat_t + j * k;
        double s = 0.0;
        for (ptrdiff_t i = 0; i < k; i++)
            s += prev[i] * col[i];
        alpha[j] = s * b[j];
    }
}

/* One backward step from row t to t - 1, given w = b_t * beta_t / c_t:
 * xi[i, j] += alpha_{t-1}[i] A[i, j] w[j]; beta_{t-1}[i] = sum_j A[i, j] w[j] (summed over j in
 * order, through A's transpose so that the k sums advance together); then
 * gamma_{t-1} = alpha_{t-1} * beta_{t-1}, written over alpha_{t-1}. */
FASTEM_TARGET_CLONES
static void fastem_backward_row(double *restrict alpha, const double *restrict transmat,
                                const double *restrict transmat_t, const double *restrict w,
                                ptrdiff_t k, double *restrict beta, double *restrict xi)
{
    for (ptrdiff_t i = 0; i < k; i++) {
        const double a = alpha[i];
        const double *restrict row = transmat + i * k;
        double *restrict out = xi + i * k;
        for (ptrdiff_t j = 0; j < k; j++)
            out[j] += a * row[j] * w[j];
    }
    memset(beta, 0, (size_t)k * sizeof(double));
    for (ptrdiff_t j = 0; j < k; j++) {
        const double v = w[j];
        const double *restrict col = transmat_t + j * k;
        for (ptrdiff_t i = 0; i < k; i++)
            beta[i] += col[i] * v;
    }
    for (ptrdiff_t i = 0; i < k; i++)
        alpha[i] *= beta[i];
}

#endif
