/* float32 EXPFAM_FULL's two products (gaussian.pyx) in AVX2 register tiles with FMA, in place
 * of SGEMM, whose packing copies of t(x) cost a third of its time at D = K = 16:
 *
 *   fastem_full32_log_prob: logp[i * k + c] = log_norm[c] + sum_g t[g * n + i] w[g * k + c]
 *                           (NaN -> -inf, as chunk_log_prob), straight into the (n, k) rows;
 *   fastem_full32_fit:      the same tiles for K <= 16, then each row's maximum, exp, sum and
 *                           log in float32 lanes (_diag_fit.h's series; float32 log_norm, as
 *                           there): responsibilities and log p(x_i) without an (n, K) float64
 *                           pass; rounding ~1e-6 nats, far inside the 1e-3 nats bound;
 *   fastem_full32_stats:    s[c * f + g] += sum_i r[i * k + c] t[g * n + i], summed in float
 *                           over blocks of FASTEM_FULL32_BLOCK rows, then in double.
 *
 * t(x) is feature-major, (f, n) (_features.h). Components sit in the lanes (eight per register;
 * a last partial register is read with a mask), rows or features are broadcast: 12 accumulators,
 * 12 FMAs per 8 loads.
 *
 * FMA: every lane's value is one chain of fused multiply-adds over g (over i) in order, whatever
 * the tile that holds it, so a row's log-densities do not depend on where it sits in a chunk, and
 * results are identical for any n_threads and chunk layout on one machine. They differ from
 * the SGEMM path's, which runs where the CPU lacks AVX2 or FMA (fastem_full32_available), and
 * whose rounding already depended on OpenBLAS's CPU-specific kernels. FMA against a separate
 * multiply and add in the same tiles: ~11 % less CPU time per iteration (benchmarks/README.md).
 */
#ifndef FASTEM_FULL32_H
#define FASTEM_FULL32_H

#include <math.h>
#include <stddef.h>

#include "fastem/_kernels/_diag_fit.h"  /* fastem_exp8f, fastem_log8f, fastem_v8f_sum */

#define FASTEM_FULL32_BLOCK 256

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#include <immintrin.h>

#define FASTEM_FMA __attribute__((target("avx2,fma")))

static inline int fastem_full32_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* lanes c0 + l < k of component register c0 */
FASTEM_FMA static inline __m256i fastem_full32_mask(ptrdiff_t c0, ptrdiff_t k)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(k - c0)), lane);
}

/* V registers of components from c0 at p; with MASKED, the last one is partial */
#define FASTEM_FULL32_LOADS(V, MASKED, p, out)                                                \
    _Pragma("GCC unroll 4")                                                                   \
    for (int v = 0; v < V; v++)                                                               \
        out[v] = MASKED && v == V - 1 ? _mm256_maskload_ps((p) + 8 * v, mask)                 \
                                      : _mm256_loadu_ps((p) + 8 * v);

/* log_norm + acc (NaN -> -inf) into out[c0 + l] for the lanes c0 + l < k */
FASTEM_FMA static inline void fastem_full32_store(double *out, const double *log_norm,
                                                  __m256 acc, ptrdiff_t c0, ptrdiff_t k)
{
    if (c0 + 8 > k) {  /* the last, partial register: lane by lane */
        float v[8];
        _mm256_storeu_ps(v, acc);
        for (ptrdiff_t l = 0; l < k - c0; l++)
            out[c0 + l] = v[l] == v[l] ? log_norm[c0 + l] + (double)v[l] : -INFINITY;
        return;
    }
    const __m256d ninf = _mm256_set1_pd(-INFINITY);
    const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(acc));
    const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(acc, 1));
    _mm256_storeu_pd(out + c0, _mm256_blendv_pd(_mm256_add_pd(_mm256_loadu_pd(log_norm + c0), lo),
                                                ninf, _mm256_cmp_pd(lo, lo, _CMP_UNORD_Q)));
    _mm256_storeu_pd(out + c0 + 4,
                     _mm256_blendv_pd(_mm256_add_pd(_mm256_loadu_pd(log_norm + c0 + 4), hi),
                                      ninf, _mm256_cmp_pd(hi, hi, _CMP_UNORD_Q)));
}

/* R rows from i against V registers of components from c0: acc[r * V + v] */
#define FASTEM_FULL32_ROWS(R, V, MASKED)                                                      \
FASTEM_FMA static void fastem_full32_rows_##R##_##V##_##MASKED(                               \
    const float *restrict t, ptrdiff_t n, ptrdiff_t i, ptrdiff_t f,                          \
    const float *restrict w, ptrdiff_t k, ptrdiff_t c0, __m256 *restrict out)                 \
{                                                                                             \
    const __m256i mask = fastem_full32_mask(c0 + 8 * (V - 1), k);                             \
    __m256 acc[R][V];                                                                         \
    _Pragma("GCC unroll 12")                                                                  \
    for (int r = 0; r < R; r++)                                                               \
        _Pragma("GCC unroll 4")                                                               \
        for (int v = 0; v < V; v++)                                                           \
            acc[r][v] = _mm256_setzero_ps();                                                  \
    for (ptrdiff_t g = 0; g < f; g++) {                                                       \
        __m256 wg[V];                                                                         \
        FASTEM_FULL32_LOADS(V, MASKED, w + g * k + c0, wg)                                    \
        _Pragma("GCC unroll 12")                                                              \
        for (int r = 0; r < R; r++) {                                                         \
            const __m256 tg = _mm256_broadcast_ss(t + g * n + i + r);                        \
            _Pragma("GCC unroll 4")                                                           \
            for (int v = 0; v < V; v++)                                                       \
                acc[r][v] = _mm256_fmadd_ps(tg, wg[v], acc[r][v]);                            \
        }                                                                                     \
    }                                                                                         \
    _Pragma("GCC unroll 12")                                                                  \
    for (int r = 0; r < R; r++)                                                               \
        _Pragma("GCC unroll 4")                                                               \
        for (int v = 0; v < V; v++)                                                           \
            out[r * V + v] = acc[r][v];                                                       \
}

FASTEM_FULL32_ROWS(6, 2, 0)
FASTEM_FULL32_ROWS(6, 2, 1)
FASTEM_FULL32_ROWS(1, 2, 0)
FASTEM_FULL32_ROWS(1, 2, 1)
FASTEM_FULL32_ROWS(12, 1, 0)
FASTEM_FULL32_ROWS(12, 1, 1)
FASTEM_FULL32_ROWS(1, 1, 0)
FASTEM_FULL32_ROWS(1, 1, 1)

#define FASTEM_FULL32_ROW_TILES(R, V)                                                         \
    for (; i + R <= n; i += R) {                                                              \
        if (masked)                                                                           \
            fastem_full32_rows_##R##_##V##_1(t, n, i, f, w, k, c0, acc);                     \
        else                                                                                  \
            fastem_full32_rows_##R##_##V##_0(t, n, i, f, w, k, c0, acc);                     \
        for (int r = 0; r < R; r++)                                                           \
            for (int v = 0; v < V; v++)                                                       \
                fastem_full32_store(logp + (i + r) * k, log_norm, acc[r * V + v],             \
                                    c0 + 8 * v, k);                                           \
    }

FASTEM_FMA static void fastem_full32_log_prob(const float *restrict t, ptrdiff_t n, ptrdiff_t f,
                                              const float *restrict w, ptrdiff_t k,
                                              const double *restrict log_norm,
                                              double *restrict logp)
{
    __m256 acc[12];
    ptrdiff_t c0 = 0;
    for (; c0 + 8 < k; c0 += 16) {  /* two registers of components (the second maybe partial) */
        const int masked = c0 + 16 > k;
        ptrdiff_t i = 0;
        FASTEM_FULL32_ROW_TILES(6, 2)
        FASTEM_FULL32_ROW_TILES(1, 2)
    }
    if (c0 < k) {
        const int masked = c0 + 8 > k;
        ptrdiff_t i = 0;
        FASTEM_FULL32_ROW_TILES(12, 1)
        FASTEM_FULL32_ROW_TILES(1, 1)
    }
}

/* The log-sum-exp of R rows of log-densities acc - log_norm (V registers of components a row,
 * ln: log_norm in float32, -inf beyond k): resp (R, k) the responsibilities, lse (R,) the
 * rows' log p(x_i) = max + log(sum exp(lp - max)), all in float32 lanes (fastem_exp8f,
 * fastem_log8f), lse widened. NaN log-densities are -inf; a row whose maximum is not finite
 * gets zeros and lse = that maximum, as fastem_normalize_rows. */
FASTEM_FMA static inline void fastem_full32_normalize(const __m256 *acc, int R, int V,
                                                      ptrdiff_t k, const __m256 *ln,
                                                      double *restrict resp,
                                                      double *restrict lse)
{
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    float tops[16], sums[16];
    for (int r = 0; r < R; r++) {
        __m256 lp[2], e[2];
        for (int v = 0; v < V; v++) {
            lp[v] = _mm256_add_ps(acc[r * V + v], ln[v]);
            lp[v] = _mm256_blendv_ps(lp[v], ninf, _mm256_cmp_ps(lp[v], lp[v], _CMP_UNORD_Q));
        }
        const __m256 top8 = V == 2 ? _mm256_max_ps(lp[0], lp[1]) : lp[0];
        __m128 top4 = _mm_max_ps(_mm256_castps256_ps128(top8), _mm256_extractf128_ps(top8, 1));
        top4 = _mm_max_ps(top4, _mm_movehl_ps(top4, top4));
        top4 = _mm_max_ss(top4, _mm_shuffle_ps(top4, top4, 1));
        const float top = _mm_cvtss_f32(top4);
        double *restrict row = resp + r * k;
        tops[r] = top;
        sums[r] = 1.0f;
        if (!(-INFINITY < top && top < INFINITY)) {
            for (ptrdiff_t c = 0; c < k; c++)
                row[c] = 0.0;
            continue;
        }
        for (int v = 0; v < V; v++)
            e[v] = (__m256)fastem_exp8f((fastem_v8f)_mm256_sub_ps(lp[v], _mm256_set1_ps(top)));
        sums[r] = fastem_v8f_sum((fastem_v8f)(V == 2 ? _mm256_add_ps(e[0], e[1]) : e[0]));
        const __m256 inv = _mm256_set1_ps(1.0f / sums[r]);
        for (int v = 0; v < V; v++) {
            const __m256 q = _mm256_mul_ps(e[v], inv);
            if (8 * v + 8 <= k) {
                _mm256_storeu_pd(row + 8 * v, _mm256_cvtps_pd(_mm256_castps256_ps128(q)));
                _mm256_storeu_pd(row + 8 * v + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(q, 1)));
            } else {
                float lanes[8];
                _mm256_storeu_ps(lanes, q);
                for (ptrdiff_t l = 0; l < k - 8 * v; l++)
                    row[8 * v + l] = lanes[l];
            }
        }
    }
    for (int r0 = 0; r0 < R; r0 += 8) {
        fastem_v8f s8 = fastem_v8f_splat(1.0f);
        for (int r = r0; r < R && r < r0 + 8; r++)
            s8[r - r0] = sums[r];
        const fastem_v8f logs = fastem_log8f(s8);
        for (int r = r0; r < R && r < r0 + 8; r++)
            lse[r] = (double)tops[r] + (double)logs[r - r0];
    }
}

#define FASTEM_FULL32_FIT_TILES(R, V)                                                         \
    for (; i + R <= n; i += R) {                                                              \
        if (masked)                                                                           \
            fastem_full32_rows_##R##_##V##_1(t, n, i, f, w, k, 0, acc);                       \
        else                                                                                  \
            fastem_full32_rows_##R##_##V##_0(t, n, i, f, w, k, 0, acc);                       \
        fastem_full32_normalize(acc, R, V, k, ln, resp + i * k, lse + i);                     \
    }

/* fastem_full32_log_prob and the row-wise log-sum-exp (fastem_normalize_rows) in one pass for
 * k <= 16 components: resp (n, k), lse (n,) */
FASTEM_FMA static void fastem_full32_fit(const float *restrict t, ptrdiff_t n, ptrdiff_t f,
                                         const float *restrict w, ptrdiff_t k,
                                         const double *restrict log_norm,
                                         double *restrict resp, double *restrict lse)
{
    float lnf[16];
    for (ptrdiff_t c = 0; c < 16; c++)
        lnf[c] = c < k ? (float)log_norm[c] : -INFINITY;
    const __m256 ln[2] = {_mm256_loadu_ps(lnf), _mm256_loadu_ps(lnf + 8)};
    const int masked = k % 8 != 0;
    __m256 acc[12];
    ptrdiff_t i = 0;
    if (k > 8) {
        FASTEM_FULL32_FIT_TILES(6, 2)
        FASTEM_FULL32_FIT_TILES(1, 2)
    } else {
        FASTEM_FULL32_FIT_TILES(12, 1)
        FASTEM_FULL32_FIT_TILES(1, 1)
    }
}

/* sums over rows [i0, i1) of features g0 .. g0 + G - 1 against V registers of components from
 * c0, added into s (k, f) */
#define FASTEM_FULL32_FEATURES(G, V, MASKED)                                                  \
FASTEM_FMA static void fastem_full32_features_##G##_##V##_##MASKED(                           \
    const float *restrict t, ptrdiff_t n, ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t g0,          \
    ptrdiff_t f, const float *restrict r, ptrdiff_t k, ptrdiff_t c0, double *restrict s)      \
{                                                                                             \
    const __m256i mask = fastem_full32_mask(c0 + 8 * (V - 1), k);                             \
    __m256 acc[G][V];                                                                         \
    float lanes[G][V][8];                                                                     \
    _Pragma("GCC unroll 12")                                                                  \
    for (int g = 0; g < G; g++)                                                               \
        _Pragma("GCC unroll 4")                                                               \
        for (int v = 0; v < V; v++)                                                           \
            acc[g][v] = _mm256_setzero_ps();                                                  \
    for (ptrdiff_t i = i0; i < i1; i++) {                                                     \
        __m256 ri[V];                                                                         \
        FASTEM_FULL32_LOADS(V, MASKED, r + i * k + c0, ri)                                    \
        _Pragma("GCC unroll 12")                                                              \
        for (int g = 0; g < G; g++) {                                                         \
            const __m256 tg = _mm256_broadcast_ss(t + (g0 + g) * n + i);                     \
            _Pragma("GCC unroll 4")                                                           \
            for (int v = 0; v < V; v++)                                                       \
                acc[g][v] = _mm256_fmadd_ps(tg, ri[v], acc[g][v]);                            \
        }                                                                                     \
    }                                                                                         \
    _Pragma("GCC unroll 12")                                                                  \
    for (int g = 0; g < G; g++)                                                               \
        _Pragma("GCC unroll 4")                                                               \
        for (int v = 0; v < V; v++)                                                           \
            _mm256_storeu_ps(lanes[g][v], acc[g][v]);                                         \
    for (int g = 0; g < G; g++)                                                               \
        for (int v = 0; v < V; v++)                                                           \
            for (ptrdiff_t l = 0; l < 8 && c0 + 8 * v + l < k; l++)                           \
                s[(c0 + 8 * v + l) * f + g0 + g] += lanes[g][v][l];                           \
}

FASTEM_FULL32_FEATURES(6, 2, 0)
FASTEM_FULL32_FEATURES(6, 2, 1)
FASTEM_FULL32_FEATURES(1, 2, 0)
FASTEM_FULL32_FEATURES(1, 2, 1)
FASTEM_FULL32_FEATURES(12, 1, 0)
FASTEM_FULL32_FEATURES(12, 1, 1)
FASTEM_FULL32_FEATURES(1, 1, 0)
FASTEM_FULL32_FEATURES(1, 1, 1)

#define FASTEM_FULL32_FEATURE_TILES(G, V)                                                     \
    for (; g + G <= f; g += G) {                                                              \
        if (masked)                                                                           \
            fastem_full32_features_##G##_##V##_1(t, n, i0, i1, g, f, r, k, c0, s);           \
        else                                                                                  \
            fastem_full32_features_##G##_##V##_0(t, n, i0, i1, g, f, r, k, c0, s);           \
    }

/* r: (n, k) float responsibilities; s: (k, f) double */
FASTEM_FMA static void fastem_full32_stats(const float *restrict t, ptrdiff_t n, ptrdiff_t f, const float *restrict r, ptrdiff_t k,
                                           double *restrict s)
{
    for (ptrdiff_t i0 = 0; i0 < n; i0 += FASTEM_FULL32_BLOCK) {
        const ptrdiff_t i1 = n - i0 < FASTEM_FULL32_BLOCK ? n : i0 + FASTEM_FULL32_BLOCK;
        ptrdiff_t c0 = 0;
        for (; c0 + 8 < k; c0 += 16) {
            const int masked = c0 + 16 > k;
            ptrdiff_t g = 0;
            FASTEM_FULL32_FEATURE_TILES(6, 2)
            FASTEM_FULL32_FEATURE_TILES(1, 2)
        }
        if (c0 < k) {
            const int masked = c0 + 8 > k;
            ptrdiff_t g = 0;
            FASTEM_FULL32_FEATURE_TILES(12, 1)
            FASTEM_FULL32_FEATURE_TILES(1, 1)
        }
    }
}

#else  /* no AVX2/FMA clone: gaussian.pyx keeps SGEMM */

static inline int fastem_full32_available(void) { return 0; }

static void fastem_full32_log_prob(const float *t, ptrdiff_t n, ptrdiff_t f,
                                   const float *w, ptrdiff_t k, const double *log_norm,
                                   double *logp)
{
    (void)t; (void)n; (void)f; (void)w; (void)k; (void)log_norm; (void)logp;
}

static void fastem_full32_fit(const float *t, ptrdiff_t n, ptrdiff_t f, const float *w,
                              ptrdiff_t k, const double *log_norm, double *resp, double *lse)
{
    (void)t; (void)n; (void)f; (void)w; (void)k; (void)log_norm; (void)resp; (void)lse;
}

static void fastem_full32_stats(const float *t, ptrdiff_t n, ptrdiff_t f,
                                const float *r, ptrdiff_t k, double *s)
{
    (void)t; (void)n; (void)f; (void)r; (void)k; (void)s;
}

#endif

#endif
