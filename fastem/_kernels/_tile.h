/* The FULL_CENTRED and TIED_CENTRED kinds of gaussian.pyx, in register tiles without BLAS's
 * packing copies (which cost as much as the products at these sizes: d x d blocks per component):
 *
 *   fastem_tile_dots:        out[c * ldo + i] = sum_g t[g * ld + i] w[g * m + c]  (i < n, c < m),
 *                            here sum_i r_i v_i v_i' of the statistics (i: an entry of v);
 *   fastem_centred_log_prob: log_norm_c - |(x_i - mu_c) L_c|^2 / 2;
 *   fastem_centred_stats:    s1_c += sum_i r_ic v_i, s2_c += sum_i r_ic v_i v_i', v = x_i - m_c.
 *
 * Rows go two vectors at a time (16 floats, 8 doubles) against four columns of w: eight vector
 * accumulators, each the running sum over g in order, one multiply and one add per term (no FMA,
 * as everywhere, _simd.h). A lane computes exactly what the scalar loop for the leftover rows
 * computes, so a row's result does not depend on where it sits in a chunk.
 *
 * Centred kinds: float32 data whose components are too far apart (relative to their spread) for
 * the exponential-family form's rounding bound in float32 compute
 *
 *   log p(x_i, c) = log_norm_c - |(x_i - mu_c) L_c|^2 / 2,   v = (x_i - hi_c) - lo_c
 *
 * with each mean split into its rounding to the data's type and the rest, mu_c = hi_c + lo_c:
 * x_i - hi_c is exact for a row near its component (Sterbenz), so v carries a relative error of
 * about eps whatever the offset of the data, unlike x L - mu L (error eps |mu| |L|) or the
 * common-centre features (error eps |P| |mu_c - s|^2). What is left is eps times the terms of the
 * whitened coordinates, (|v|' |L_c|)_a (families/gaussian.py bounds it with two standard
 * deviations per axis). v is transposed feature-major into a tile of 16 (8) rows, zero-padded;
 * squared norms are summed in the data's type, the log-density in double. L_c is the lower
 * Cholesky factor of the precision P_c (any L with L L' = P_c gives the same norm; packed as
 * such, column a of L_c starts at row a, which halves the products).
 */
#ifndef FASTEM_TILE_H
#define FASTEM_TILE_H

#include <stddef.h>
#include <string.h>

#include "fastem/_kernels/_simd.h"

typedef float fastem_f32v __attribute__((vector_size(32)));
typedef double fastem_f64v __attribute__((vector_size(32)));

/* acc_qh = sum_g t[g * ld + i + h L] * w[g * m + c + q] for q < 4, h < 2 (L lanes), over
 * g0 <= g < f (terms before g0 known to be zero) */
#define FASTEM_TILE_4x2(T, V, L, t, ld, i, g0, f, w, m, c)                                    \
    V a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0}, a20 = {0}, a21 = {0}, a30 = {0}, a31 = {0}; \
    for (ptrdiff_t g = (g0); g < (f); g++) {                                                  \
        V t0, t1;                                                                             \
        memcpy(&t0, (t) + g * (ld) + (i), sizeof(V));                                         \
        memcpy(&t1, (t) + g * (ld) + (i) + (L), sizeof(V));                                   \
        const T *restrict wg = (w) + g * (m) + (c);                                           \
        a00 += t0 * wg[0]; a01 += t1 * wg[0];                                                 \
        a10 += t0 * wg[1]; a11 += t1 * wg[1];                                                 \
        a20 += t0 * wg[2]; a21 += t1 * wg[2];                                                 \
        a30 += t0 * wg[3]; a31 += t1 * wg[3];                                                 \
    }

/* acc_0h for one column c */
#define FASTEM_TILE_1x2(T, V, L, t, ld, i, g0, f, w, m, c)                                    \
    V a00 = {0}, a01 = {0};                                                                   \
    for (ptrdiff_t g = (g0); g < (f); g++) {                                                  \
        V t0, t1;                                                                             \
        memcpy(&t0, (t) + g * (ld) + (i), sizeof(V));                                         \
        memcpy(&t1, (t) + g * (ld) + (i) + (L), sizeof(V));                                   \
        a00 += t0 * (w)[g * (m) + (c)]; a01 += t1 * (w)[g * (m) + (c)];                       \
    }

#define FASTEM_DEFINE_TILE(SUFFIX, T, V)                                                      \
FASTEM_TARGET_CLONES                                                                          \
static void fastem_tile_dots_##SUFFIX(const T *restrict t, ptrdiff_t ld, ptrdiff_t n,         \
                                      ptrdiff_t f, const T *restrict w, ptrdiff_t m,          \
                                      T *restrict out, ptrdiff_t ldo)                         \
{                                                                                             \
    enum { L = sizeof(V) / sizeof(T) };                                                       \
    ptrdiff_t i = 0;                                                                          \
    for (; i + 2 * L <= n; i += 2 * L) {                                                      \
        ptrdiff_t c = 0;                                                                      \
        for (; c + 4 <= m; c += 4) {                                                          \
            FASTEM_TILE_4x2(T, V, L, t, ld, i, 0, f, w, m, c)                                 \
            T *o = out + c * ldo + i;                                                         \
            memcpy(o, &a00, sizeof(V)); memcpy(o + L, &a01, sizeof(V)); o += ldo;             \
            memcpy(o, &a10, sizeof(V)); memcpy(o + L, &a11, sizeof(V)); o += ldo;             \
            memcpy(o, &a20, sizeof(V)); memcpy(o + L, &a21, sizeof(V)); o += ldo;             \
            memcpy(o, &a30, sizeof(V)); memcpy(o + L, &a31, sizeof(V));                       \
        }                                                                                     \
        for (; c < m; c++) {                                                                  \
            FASTEM_TILE_1x2(T, V, L, t, ld, i, 0, f, w, m, c)                                 \
            memcpy(out + c * ldo + i, &a00, sizeof(V));                                       \
            memcpy(out + c * ldo + i + L, &a01, sizeof(V));                                   \
        }                                                                                     \
    }                                                                                         \
    for (; i < n; i++)                                                                        \
        for (ptrdiff_t c = 0; c < m; c++) {                                                   \
            T s = 0;                                                                          \
            for (ptrdiff_t g = 0; g < f; g++)                                                 \
                s += t[g * ld + i] * w[g * m + c];                                            \
            out[c * ldo + i] = s;                                                             \
        }                                                                                     \
}                                                                                             \
                                                                                              \
FASTEM_TARGET_CLONES                                                                          \
static void fastem_centred_log_prob_##SUFFIX(                                                 \
    const T *restrict x, ptrdiff_t n, ptrdiff_t d, ptrdiff_t k, int tied,                     \
    const T *restrict chol, const T *restrict mean, const double *restrict log_norm,          \
    T *restrict v, double *restrict logp)                                                     \
{                                                                                             \
    /* chol: (k, d, d) lower L_c row-major, or one (d, d) L if tied; mean: (2k, d) [hi; lo]; \
     * v: (d, 2L) scratch; logp: (n, k) */                                                    \
    enum { L = sizeof(V) / sizeof(T), R = 2 * sizeof(V) / sizeof(T) };                        \
    for (ptrdiff_t start = 0; start < n; start += R) {                                        \
        const ptrdiff_t rows = n - start < R ? n - start : R;                                 \
        const T *restrict tile = x + start * d;                                               \
        for (ptrdiff_t c = 0; c < k; c++) {                                                   \
            const T *restrict hi = mean + c * d, *restrict lo = mean + (k + c) * d;           \
            const T *restrict w = chol + (tied ? 0 : c * d * d);                              \
            for (ptrdiff_t j = 0; j < d; j++) {                                               \
                for (ptrdiff_t i = 0; i < rows; i++)                                          \
                    v[j * R + i] = (tile[i * d + j] - hi[j]) - lo[j];                         \
                for (ptrdiff_t i = rows; i < R; i++)                                          \
                    v[j * R + i] = 0;                                                         \
            }                                                                                 \
            V s0 = {0}, s1 = {0};                                                             \
            ptrdiff_t a = 0;                                                                  \
            for (; a + 4 <= d; a += 4) {                                                      \
                FASTEM_TILE_4x2(T, V, L, v, R, 0, a, d, w, d, a)                                 \
                s0 += a00 * a00; s1 += a01 * a01;                                             \
                s0 += a10 * a10; s1 += a11 * a11;                                             \
                s0 += a20 * a20; s1 += a21 * a21;                                             \
                s0 += a30 * a30; s1 += a31 * a31;                                             \
            }                                                                                 \
            for (; a < d; a++) {                                                              \
                FASTEM_TILE_1x2(T, V, L, v, R, 0, a, d, w, d, a)                                 \
                s0 += a00 * a00; s1 += a01 * a01;                                             \
            }                                                                                 \
            T norm[R];                                                                        \
            memcpy(norm, &s0, sizeof(V));                                                     \
            memcpy(norm + L, &s1, sizeof(V));                                                 \
            for (ptrdiff_t i = 0; i < rows; i++)                                              \
                logp[(start + i) * k + c] = log_norm[c] - 0.5 * (double)norm[i];              \
        }                                                                                     \
    }                                                                                         \
}

/* Statistics of the centred kinds: per component c, with v = x - pivot_c and u = r_c v,
 * s1_c += sum_i u_i and s2_c += the lower triangle of sum_i u_i v_i' (row-major, as SYRK writes
 * it), by fastem_tile_dots over the rows (the reduction), summed in the data's type over blocks
 * of FASTEM_STATS_BLOCK rows, then in double. A row with r = 0 adds exact zeros (also where x
 * overflows). u, v: (n, d) scratch; s: (d, d) scratch. */
#define FASTEM_STATS_BLOCK 256
#define FASTEM_DEFINE_CENTRED_STATS(SUFFIX, T)                                                \
FASTEM_TARGET_CLONES                                                                          \
static void fastem_centred_stats_##SUFFIX(                                                    \
    const T *restrict x, ptrdiff_t n, ptrdiff_t d, ptrdiff_t k, const double *restrict resp,  \
    const T *restrict pivot, T *restrict u, T *restrict v, T *restrict s,                     \
    double *restrict s1, double *restrict s2)                                                 \
{                                                                                             \
    for (ptrdiff_t c = 0; c < k; c++) {                                                       \
        const T *restrict m = pivot + c * d;                                                  \
        for (ptrdiff_t start = 0; start < n; start += FASTEM_STATS_BLOCK) {                   \
            const ptrdiff_t rows = n - start < FASTEM_STATS_BLOCK ? n - start                 \
                                                                  : FASTEM_STATS_BLOCK;       \
            for (ptrdiff_t i = 0; i < rows; i++) {                                            \
                const T r = (T)resp[(start + i) * k + c];                                     \
                const T *restrict row = x + (start + i) * d;                                  \
                for (ptrdiff_t j = 0; j < d; j++) {                                           \
                    const T t = r == 0 ? 0 : row[j] - m[j];                                   \
                    v[i * d + j] = t;                                                         \
                    u[i * d + j] = r * t;                                                     \
                }                                                                             \
            }                                                                                 \
            for (ptrdiff_t j = 0; j < d; j++) /* column sums, row by row (vectorised) */      \
                s[j] = 0;                                                                     \
            for (ptrdiff_t i = 0; i < rows; i++)                                              \
                for (ptrdiff_t j = 0; j < d; j++)                                             \
                    s[j] += u[i * d + j];                                                     \
            for (ptrdiff_t j = 0; j < d; j++)                                                 \
                s1[c * d + j] += s[j];                                                        \
            fastem_tile_dots_##SUFFIX(u, d, d, rows, v, d, s, d);                             \
            for (ptrdiff_t a = 0; a < d; a++)                                                 \
                for (ptrdiff_t b = 0; b <= a; b++)                                            \
                    s2[(c * d + a) * d + b] += s[a * d + b];                                  \
        }                                                                                     \
    }                                                                                         \
}

FASTEM_DEFINE_TILE(f32, float, fastem_f32v)
FASTEM_DEFINE_TILE(f64, double, fastem_f64v)
FASTEM_DEFINE_CENTRED_STATS(f32, float)
FASTEM_DEFINE_CENTRED_STATS(f64, double)

#endif
