/* The row loops of the scaled forward-backward recursions (forward_backward.pyx), in C with
 * GCC vector extensions: a K-vector of messages is held in kv = ceil(K / 4) registers of 4
 * doubles (lanes past K are zero; padded K x 4kv copies of A and its transpose have zero rows
 * and columns past K), and the loops are compiled for each kv in 1..4 (K <= 16), so the
 * messages stay in registers from row to row; larger K runs the same code with kv a variable.
 * An AVX2 clone (_simd.h: no FMA, so every clone rounds alike) is picked at load time.
 *
 * The recursions are latency-bound: each row waits for the previous one. So the dependency
 * chain from one row to the next is kept short:
 * - a step is broadcast-multiply-adds over the rows of A (the K-vector sum_i m[i] A[i, :]) in
 *   two accumulators (even and odd i), half the chain of one running sum;
 * - the forward messages are carried unnormalised: r_t = (r_{t-1} A) * (b_t / c_{t-1}), with
 *   c_t = sum(r_t) the row's scale; the division 1 / c_{t-1} runs beside the next step instead
 *   of in front of it, and alpha_t = r_t / c_t (normalised) is written out off the chain. The
 *   message a segment carries over (its last r) determines its continuation exactly;
 * - going back, w_t = beta_t * (b_t / c_t), beta_{t-1} = A w_t, and xi and the posteriors
 *   gamma_{t-1} = alpha_{t-1} * beta_{t-1} are computed from them beside the chain, each row of
 *   alpha read once and overwritten by gamma; xi's sum over rows is A .* sum_t alpha_{t-1} w_t'
 *   (A multiplied once per sequence, not per row).
 * Measured (1 thread, 64 sequences of 1000 rows, K = 8, benchmarks/hmm_kernel.py and
 * callgrind): see benchmarks/README.md.
 */
#ifndef FASTEM_CHAIN_H
#define FASTEM_CHAIN_H

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "fastem/_kernels/_simd.h"

typedef double fastem_v4 __attribute__((vector_size(32)));

#define FASTEM_CHAIN_INLINE static inline __attribute__((always_inline))

/* Lanes [4v, 4v + 4) of a row of k values, `fill` past k. */
FASTEM_CHAIN_INLINE fastem_v4 fastem_chain_load_or(const double *row, ptrdiff_t v, ptrdiff_t k,
                                                   double fill)
{
    fastem_v4 x = {fill, fill, fill, fill};
    if (4 * v + 4 <= k) {
        memcpy(&x, row + 4 * v, sizeof x);
    } else {
        for (ptrdiff_t l = 0; 4 * v + l < k; l++)
            x[l] = row[4 * v + l];
    }
    return x;
}

FASTEM_CHAIN_INLINE fastem_v4 fastem_chain_load(const double *row, ptrdiff_t v, ptrdiff_t k)
{
    return fastem_chain_load_or(row, v, k, 0.0);
}

FASTEM_CHAIN_INLINE void fastem_chain_store(double *row, ptrdiff_t v, ptrdiff_t k, fastem_v4 x)
{
    if (4 * v + 4 <= k) {
        memcpy(row + 4 * v, &x, sizeof x);
    } else {
        for (ptrdiff_t l = 0; 4 * v + l < k; l++)
            row[4 * v + l] = x[l];
    }
}

FASTEM_CHAIN_INLINE fastem_v4 fastem_chain_splat(double x)
{
    return (fastem_v4){x, x, x, x};
}

/* The sum of a K-vector's lanes, in a fixed order. */
FASTEM_CHAIN_INLINE double fastem_chain_sum(const fastem_v4 *m, ptrdiff_t kv)
{
    fastem_v4 s = m[0];
    for (ptrdiff_t v = 1; v < kv; v++)
        s += m[v];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

/* out = sum_i m[i] P[i, :] over the 4kv rows of a padded (4kv, 4kv) matrix P, the even and
 * odd i in two accumulators. */
FASTEM_CHAIN_INLINE void fastem_chain_step(const fastem_v4 *m, const double *p, ptrdiff_t kv,
                                           fastem_v4 *out)
{
    fastem_v4 odd[kv];
    for (ptrdiff_t u = 0; u < kv; u++)
        out[u] = odd[u] = (fastem_v4){0.0, 0.0, 0.0, 0.0};
    for (ptrdiff_t v = 0; v < kv; v++) {
        for (ptrdiff_t l = 0; l < 4; l += 2) {
            const fastem_v4 even_m = fastem_chain_splat(m[v][l]);
            const fastem_v4 odd_m = fastem_chain_splat(m[v][l + 1]);
            const double *even_row = p + (4 * v + l) * 4 * kv;
            for (ptrdiff_t u = 0; u < kv; u++) {
                fastem_v4 a, b;
                memcpy(&a, even_row + 4 * u, sizeof a);
                memcpy(&b, even_row + 4 * kv + 4 * u, sizeof b);
                out[u] += even_m * a;
                odd[u] += odd_m * b;
            }
        }
    }
    for (ptrdiff_t u = 0; u < kv; u++)
        out[u] += odd[u];
}

/* Multiply `prod` (in [1, 2)) by c > 0 and bring it back to [1, 2): returns the power of two
 * taken out, so that sum_t log c_t = sum_t e_t log 2 + log(prod) needs no log per row. A
 * product below 2^-1022 (c subnormal) has its log taken and prod restarts at 1. */
FASTEM_CHAIN_INLINE double fastem_chain_mantissa(double *prod, double c)
{
    const unsigned long long exponent = 0x7ffULL << 52, one = 1023ULL << 52;
    unsigned long long bits;
    double p = *prod * c;
    memcpy(&bits, &p, sizeof bits);
    const long long e = (long long) ((bits & exponent) >> 52) - 1023;
    if (e == -1023) {
        *prod = 1.0;
        return log(p) / 0.69314718055994530942;
    }
    bits = (bits & ~exponent) | one;
    memcpy(prod, &bits, sizeof bits);
    return (double) e;
}

/* Scaled forward pass over T rows (see the header). b: (T, k) scaled densities; scale: IN each
 * row's shift m_t, OUT 1 / c_t; message (k + 2): IN [r of the row before, the log-likelihood
 * of the rows before without log(prod), prod] (unless first), OUT those after the last row;
 * alpha: OUT (T, k) normalised messages. Returns the log-likelihood of the rows so far,
 * sum_t (log c_t + m_t), or -inf when no state can emit a row (message then undefined). */
FASTEM_CHAIN_INLINE double fastem_forward_body(const double *restrict b, ptrdiff_t T, ptrdiff_t k,
                                               ptrdiff_t kv, double *restrict message, int first,
                                               const double *restrict startprob,
                                               const double *restrict transmat_p,
                                               double *restrict alpha, double *restrict scale)
{
    const double ln2 = 0.69314718055994530942;
    fastem_v4 r[kv], q[kv];
    double inv = 1.0, ll = first ? 0.0 : message[k], prod = first ? 1.0 : message[k + 1];
    for (ptrdiff_t v = 0; v < kv; v++)
        r[v] = fastem_chain_load(first ? startprob : message, v, k);
    if (!first)
        inv = 1.0 / fastem_chain_sum(r, kv);
    for (ptrdiff_t t = 0; t < T; t++) {
        const double *row = b + t * k;
        if (t == 0 && first) {
            for (ptrdiff_t v = 0; v < kv; v++)
                r[v] *= fastem_chain_load(row, v, k);
        } else {
            fastem_chain_step(r, transmat_p, kv, q);
            for (ptrdiff_t v = 0; v < kv; v++)
                r[v] = q[v] * (fastem_chain_load(row, v, k) * inv);
        }
        const double c = fastem_chain_sum(r, kv);
        if (!(c > 0.0))  /* no state can emit this row: zero likelihood */
            return -INFINITY;
        ll += fastem_chain_mantissa(&prod, c) * ln2 + scale[t];
        scale[t] = 1.0 / c;
        inv = scale[t];
        if (c < 0x1p-1000) {  /* so that 1 / c stays finite in the next step: r normalised */
            for (ptrdiff_t v = 0; v < kv; v++)
                r[v] = r[v] / c;
            inv = 1.0 / fastem_chain_sum(r, kv);
        }
        for (ptrdiff_t v = 0; v < kv; v++)
            fastem_chain_store(alpha + t * k, v, k, r[v] * fastem_chain_splat(inv));
    }
    for (ptrdiff_t v = 0; v < kv; v++)
        fastem_chain_store(message, v, k, r[v]);
    message[k] = ll;
    message[k + 1] = prod;
    return ll + log(prod);
}

/* Scaled backward pass over T rows, from beta of the last row (IN beta; OUT beta of the row
 * before the first when prev is given): gamma IN the forward messages, OUT posteriors;
 * m: (4kv, 4kv) padded, += alpha_{t-1}[i] w_t[j] for each row t (and for the first row when
 * prev, the r message of the row before, is given): the transition counts once multiplied by
 * A[i, j], which the caller does at the sequence's start (a multiply per row saved). */
FASTEM_CHAIN_INLINE void fastem_backward_body(const double *restrict b, ptrdiff_t T, ptrdiff_t k,
                                              ptrdiff_t kv, const double *restrict scale,
                                              double *restrict gamma,
                                              const double *restrict prev,
                                              const double *restrict transmat_p,
                                              const double *restrict transmat_tp,
                                              double *restrict beta_io, double *restrict m)
{
    fastem_v4 beta[kv], w[kv], a[kv];
    const ptrdiff_t kp = 4 * kv;
    for (ptrdiff_t v = 0; v < kv; v++) {
        beta[v] = fastem_chain_load(beta_io, v, k);
        a[v] = fastem_chain_load(gamma + (T - 1) * k, v, k);
        fastem_chain_store(gamma + (T - 1) * k, v, k, a[v] * beta[v]);
    }
    for (ptrdiff_t t = T - 1; t > (prev == NULL ? 0 : -1); t--) {
        const fastem_v4 inv = fastem_chain_splat(scale[t]);
        for (ptrdiff_t v = 0; v < kv; v++)
            w[v] = beta[v] * (fastem_chain_load(b + t * k, v, k) * inv);
        if (t > 0) {
            for (ptrdiff_t v = 0; v < kv; v++)
                a[v] = fastem_chain_load(gamma + (t - 1) * k, v, k);
        } else {  /* the row before these rows: alpha from its message, as the forward pass */
            for (ptrdiff_t v = 0; v < kv; v++)
                a[v] = fastem_chain_load(prev, v, k);
            const fastem_v4 norm = fastem_chain_splat(1.0 / fastem_chain_sum(a, kv));
            for (ptrdiff_t v = 0; v < kv; v++)
                a[v] *= norm;
        }
        for (ptrdiff_t v = 0; v < kv; v++) {
            for (ptrdiff_t l = 0; l < 4; l++) {
                const fastem_v4 ai = fastem_chain_splat(a[v][l]);
                const ptrdiff_t i = 4 * v + l;
                for (ptrdiff_t u = 0; u < kv; u++) {
                    fastem_v4 acc;
                    memcpy(&acc, m + i * kp + 4 * u, sizeof acc);
                    acc += ai * w[u];
                    memcpy(m + i * kp + 4 * u, &acc, sizeof acc);
                }
            }
        }
        fastem_chain_step(w, transmat_tp, kv, beta);
        if (t > 0) {
            for (ptrdiff_t v = 0; v < kv; v++)
                fastem_chain_store(gamma + (t - 1) * k, v, k, a[v] * beta[v]);
        }
    }
    for (ptrdiff_t v = 0; v < kv; v++)
        fastem_chain_store(beta_io, v, k, beta[v]);
}

/* Each row's maximum, or 0 for a row that is all -inf (the shifts of forward_rows). */
FASTEM_CHAIN_INLINE void fastem_row_max_body(const double *restrict a, ptrdiff_t n, ptrdiff_t k,
                                             ptrdiff_t kv, double *restrict shift)
{
    typedef long long mask4 __attribute__((vector_size(32)));
    for (ptrdiff_t t = 0; t < n; t++) {
        fastem_v4 m = fastem_chain_load_or(a + t * k, 0, k, -INFINITY);
        for (ptrdiff_t v = 1; v < kv; v++) {
            const fastem_v4 x = fastem_chain_load_or(a + t * k, v, k, -INFINITY);
            const mask4 greater = x > m;  /* a select, not a branch the data mispredicts */
            m = (fastem_v4)(((mask4)x & greater) | ((mask4)m & ~greater));
        }
        double top = m[0];
        for (int l = 1; l < 4; l++)
            top = m[l] > top ? m[l] : top;
        shift[t] = top > -INFINITY ? top : 0.0;
    }
}

FASTEM_TARGET_CLONES
static void fastem_row_max(const double *a, ptrdiff_t n, ptrdiff_t k, double *shift)
{
    switch ((k + 3) / 4) {
    case 1: fastem_row_max_body(a, n, k, 1, shift); break;
    case 2: fastem_row_max_body(a, n, k, 2, shift); break;
    case 3: fastem_row_max_body(a, n, k, 3, shift); break;
    case 4: fastem_row_max_body(a, n, k, 4, shift); break;
    default: fastem_row_max_body(a, n, k, (k + 3) / 4, shift);
    }
}

FASTEM_TARGET_CLONES
static double fastem_forward_rows(const double *b, ptrdiff_t T, ptrdiff_t k, double *message,
                                  int first, const double *startprob, const double *transmat_p,
                                  double *alpha, double *scale)
{
    switch ((k + 3) / 4) {
    case 1: return fastem_forward_body(b, T, k, 1, message, first, startprob, transmat_p,
                                       alpha, scale);
    case 2: return fastem_forward_body(b, T, k, 2, message, first, startprob, transmat_p,
                                       alpha, scale);
    case 3: return fastem_forward_body(b, T, k, 3, message, first, startprob, transmat_p,
                                       alpha, scale);
    case 4: return fastem_forward_body(b, T, k, 4, message, first, startprob, transmat_p,
                                       alpha, scale);
    default: return fastem_forward_body(b, T, k, (k + 3) / 4, message, first, startprob,
                                        transmat_p, alpha, scale);
    }
}

FASTEM_TARGET_CLONES
static void fastem_backward_rows(const double *b, ptrdiff_t T, ptrdiff_t k, const double *scale,
                                 double *gamma, const double *prev, const double *transmat_p,
                                 const double *transmat_tp, double *beta, double *m)
{
    switch ((k + 3) / 4) {
    case 1: fastem_backward_body(b, T, k, 1, scale, gamma, prev, transmat_p, transmat_tp, beta,
                                 m); break;
    case 2: fastem_backward_body(b, T, k, 2, scale, gamma, prev, transmat_p, transmat_tp, beta,
                                 m); break;
    case 3: fastem_backward_body(b, T, k, 3, scale, gamma, prev, transmat_p, transmat_tp, beta,
                                 m); break;
    case 4: fastem_backward_body(b, T, k, 4, scale, gamma, prev, transmat_p, transmat_tp, beta,
                                 m); break;
    default: fastem_backward_body(b, T, k, (k + 3) / 4, scale, gamma, prev, transmat_p,
                                  transmat_tp, beta, m);
    }
}

#endif
