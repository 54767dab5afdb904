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
 * - going back, the messages are self-normalised (fastem_beta_step): v_{t-1} = A (b_t * v_t)
 *   times 1 / sum(v_t), that division beside the step; they need no forward pass, so a
 *   sequence's second half can be walked back while its first half goes forward. The
 *   posteriors gamma_{t-1} = alpha_{t-1} * v_{t-1} / z_{t-1} (z = alpha . v) and xi are
 *   computed beside the chain, each row of alpha read once and overwritten by gamma; xi's sum
 *   over rows is A .* sum_t (alpha_{t-1} / z_{t-1}) u_t' (A multiplied once per sequence, not
 *   per row).
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

/* One step of the self-normalised backward recursion, from the message v of row t to that of
 * row t - 1: v <- A (b_t * v / sum(v)), and u = b_t * v / sum(v) (when u is given) for the
 * transition counts. A message is beta divided by its own sum, not by the forward pass's c_t,
 * so it needs no forward pass (the backward messages of a sequence's end can be computed while
 * its start goes forward) and stays <= 1. Every backward loop steps through this one function,
 * so their messages agree bitwise. A sum below 2^-1000 is first multiplied by 2^1000 (exact),
 * so that 1 / sum stays finite. y, q: (kv,) scratch (declared by the caller, outside its row
 * loop). */
FASTEM_CHAIN_INLINE void fastem_beta_step(fastem_v4 *v, const double *restrict row, ptrdiff_t k,
                                          ptrdiff_t kv, const double *restrict transmat_tp,
                                          fastem_v4 *u, fastem_v4 *y, fastem_v4 *q)
{
    double s = fastem_chain_sum(v, kv);
    if (s < 0x1p-1000) {
        for (ptrdiff_t w = 0; w < kv; w++)
            v[w] *= fastem_chain_splat(0x1p1000);
        s = fastem_chain_sum(v, kv);
    }
    const fastem_v4 inv = fastem_chain_splat(1.0 / s);  /* beside the step, off its chain */
    for (ptrdiff_t w = 0; w < kv; w++)
        y[w] = v[w] * fastem_chain_load(row, w, k);
    fastem_chain_step(y, transmat_tp, kv, q);
    for (ptrdiff_t w = 0; w < kv; w++) {
        v[w] = q[w] * inv;
        if (u != NULL)
            u[w] = y[w] * inv;
    }
}

/* The backward messages alone over T rows, from the last (IN v_io, the message of the row
 * after them: ones at the sequence's end) to the row before the first (OUT v_io), with no
 * forward messages: a sequence's end can be walked back while its start goes forward. */
FASTEM_CHAIN_INLINE void fastem_beta_body(const double *restrict b, ptrdiff_t T, ptrdiff_t k,
                                          ptrdiff_t kv, const double *restrict transmat_tp,
                                          double *restrict v_io)
{
    fastem_v4 v[kv], y[kv], q[kv];
    for (ptrdiff_t w = 0; w < kv; w++)
        v[w] = fastem_chain_load(v_io, w, k);
    for (ptrdiff_t t = T - 1; t >= 0; t--)
        fastem_beta_step(v, b + t * k, k, kv, transmat_tp, NULL, y, q);
    for (ptrdiff_t w = 0; w < kv; w++)
        fastem_chain_store(v_io, w, k, v[w]);
}

/* gamma_t = alpha_t * v_t / z with z = alpha_t . v_t (any positive multiple of beta_t gives
 * the posteriors), written into `out` (may be NULL); `scaled` gets alpha_t / z for the
 * transition counts. Returns z, which the caller checks once per call (fastem_backward_body):
 * below 2^-1022 the forward and backward beliefs do not overlap within double range, and the
 * scaled recursions cannot represent the row. p: (kv,) scratch. */
FASTEM_CHAIN_INLINE double fastem_posterior(const fastem_v4 *a, const fastem_v4 *v, ptrdiff_t k,
                                            ptrdiff_t kv, double *out, fastem_v4 *scaled,
                                            fastem_v4 *p)
{
    for (ptrdiff_t w = 0; w < kv; w++)
        p[w] = a[w] * v[w];
    const double z = fastem_chain_sum(p, kv);
    const fastem_v4 inv = fastem_chain_splat(1.0 / z);
    for (ptrdiff_t w = 0; w < kv; w++) {
        scaled[w] = a[w] * inv;
        if (out != NULL)
            fastem_chain_store(out, w, k, p[w] * inv);
    }
    return z;
}

/* m += s u' over the padded (4kv, 4kv) m: one row's transition counts (before A). */
FASTEM_CHAIN_INLINE void fastem_outer_add(double *restrict m, const fastem_v4 *s,
                                          const fastem_v4 *u, ptrdiff_t kv)
{
    const ptrdiff_t kp = 4 * kv;
    for (ptrdiff_t w = 0; w < kv; w++) {
        for (ptrdiff_t l = 0; l < 4; l++) {
            const fastem_v4 si = fastem_chain_splat(s[w][l]);
            const ptrdiff_t i = 4 * w + l;
            for (ptrdiff_t x = 0; x < kv; x++) {
                fastem_v4 acc;
                memcpy(&acc, m + i * kp + 4 * x, sizeof acc);
                acc += si * u[x];
                memcpy(m + i * kp + 4 * x, &acc, sizeof acc);
            }
        }
    }
}

/* Self-normalised backward pass over T rows after their forward pass, from the message of the
 * last row (IN v_io: ones at the sequence's end; OUT the message of the row before the first
 * when prev is given): gamma IN the forward messages alpha, OUT the posteriors; m: (4kv, 4kv)
 * padded, += (alpha_{t-1} / z_{t-1}) u_t' for each row t (and for the first row when prev, the
 * r message of the row before, is given): the transition counts xi once multiplied by A[i, j],
 * which the caller does at the sequence's start (a multiply per row saved). Each row's alpha
 * is read once and overwritten by its posterior. Returns 0, or -1 if a row's posterior is not
 * representable (fastem_posterior). */
FASTEM_CHAIN_INLINE int fastem_backward_body(const double *restrict b, ptrdiff_t T, ptrdiff_t k,
                                             ptrdiff_t kv, double *restrict gamma,
                                             const double *restrict prev,
                                             const double *restrict transmat_tp,
                                             double *restrict v_io, double *restrict m)
{
    fastem_v4 v[kv], u[kv], a[kv], scaled[kv], y[kv], q[kv], held_s[kv], held_u[kv];
    const ptrdiff_t last = prev == NULL ? 0 : -1;  /* the last row whose posterior is taken */
    double low = 1.0;  /* the smallest z (fastem_posterior) */
    for (ptrdiff_t w = 0; w < kv; w++)
        v[w] = fastem_chain_load(v_io, w, k);
    /* Row t's posterior comes from v_t, known when the row starts; the counts of the
     * transition into row t + 1 wait one row (held_s, held_u) before they are added, so that
     * the adds never wait for row t's division 1 / z_t (the same adds, in the same order). */
    for (ptrdiff_t t = T - 1; t >= last; t--) {
        if (t >= 0) {
            for (ptrdiff_t w = 0; w < kv; w++)
                a[w] = fastem_chain_load(gamma + t * k, w, k);
        } else {  /* the row before these rows: alpha from its message, as the forward pass */
            for (ptrdiff_t w = 0; w < kv; w++)
                a[w] = fastem_chain_load(prev, w, k);
            const fastem_v4 norm = fastem_chain_splat(1.0 / fastem_chain_sum(a, kv));
            for (ptrdiff_t w = 0; w < kv; w++)
                a[w] *= norm;
        }
        const double z = fastem_posterior(a, v, k, kv, t >= 0 ? gamma + t * k : NULL, scaled, y);
        low = z >= low ? low : z;  /* a NaN z too */
        if (t < T - 2)  /* the transition into row t + 2 */
            fastem_outer_add(m, held_s, held_u, kv);
        if (t < T - 1) {  /* u holds u_{t+1} */
            for (ptrdiff_t w = 0; w < kv; w++) {
                held_s[w] = scaled[w];
                held_u[w] = u[w];
            }
        }
        if (t > last)
            fastem_beta_step(v, b + t * k, k, kv, transmat_tp, u, y, q);
    }
    if (last < T - 1)
        fastem_outer_add(m, held_s, held_u, kv);
    for (ptrdiff_t w = 0; w < kv; w++)
        fastem_chain_store(v_io, w, k, v[w]);
    return low >= 0x1p-1022 ? 0 : -1;
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
static int fastem_backward_rows(const double *b, ptrdiff_t T, ptrdiff_t k, double *gamma,
                                const double *prev, const double *transmat_tp, double *v,
                                double *m)
{
    switch ((k + 3) / 4) {
    case 1: return fastem_backward_body(b, T, k, 1, gamma, prev, transmat_tp, v, m);
    case 2: return fastem_backward_body(b, T, k, 2, gamma, prev, transmat_tp, v, m);
    case 3: return fastem_backward_body(b, T, k, 3, gamma, prev, transmat_tp, v, m);
    case 4: return fastem_backward_body(b, T, k, 4, gamma, prev, transmat_tp, v, m);
    default: return fastem_backward_body(b, T, k, (k + 3) / 4, gamma, prev, transmat_tp, v, m);
    }
}

FASTEM_TARGET_CLONES
static void fastem_beta_rows(const double *b, ptrdiff_t T, ptrdiff_t k, const double *transmat_tp,
                             double *v)
{
    switch ((k + 3) / 4) {
    case 1: fastem_beta_body(b, T, k, 1, transmat_tp, v); break;
    case 2: fastem_beta_body(b, T, k, 2, transmat_tp, v); break;
    case 3: fastem_beta_body(b, T, k, 3, transmat_tp, v); break;
    case 4: fastem_beta_body(b, T, k, 4, transmat_tp, v); break;
    default: fastem_beta_body(b, T, k, (k + 3) / 4, transmat_tp, v);
    }
}

#endif
