/* EXPFAM_FULL's two products (gaussian.pyx) in AVX2 register tiles with FMA, in place of
 * SGEMM / DGEMM, whose packing copies of t(x) cost a third of SGEMM's time at D = K = 16 and
 * 16 % of a float64 fit's at D = 64, K = 32:
 *
 *   fastem_full_log_prob_T: logp[i * k + c] = log_norm[c] + sum_g t[g * n + i] w[g * k + c]
 *                           (NaN -> -inf, as chunk_log_prob), straight into the (n, k) rows
 *                           (above 16 components with the rows in the lanes, through
 *                           scratch);
 *   fastem_full32_fit:      float32 only: the same tiles for K <= 16, then each row's maximum,
 *                           exp, sum and log in float32 lanes (_diag_fit.h's series; float32
 *                           log_norm, as there): responsibilities and log p(x_i) without an
 *                           (n, K) float64 pass; rounding ~1e-6 nats, inside the 1e-3 bound;
 *   fastem_full_stats_T:    s[c * f + g] += sum_i r[i * k + c] t[g * n + i], summed in T over
 *                           blocks of FASTEM_FULL_BLOCK rows, then in double.
 *
 * T is f32 (float, eight lanes a register) or f64 (double, four lanes): one macro body each,
 * instantiated for both. t(x) is feature-major, (f, n) (_features.h). Components sit in the
 * lanes (a last partial register is read with a mask), rows or features are broadcast:
 * 12 accumulators, 12 FMAs per 8 loads.
 *
 * FMA: every lane's value is one chain of fused multiply-adds over g (over i) in order, whatever
 * the tile that holds it, so a row's log-densities do not depend on where it sits in a chunk, and
 * results are identical for any n_threads and chunk layout on one machine. They differ from
 * the BLAS path's, which runs where the CPU lacks AVX2 or FMA (fastem_full_available), and
 * whose rounding already depended on OpenBLAS's CPU-specific kernels (benchmarks/README.md has
 * the gains of FMA over a separate multiply and add in these tiles).
 */
#ifndef FASTEM_FULL_H
#define FASTEM_FULL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "fastem/_kernels/_diag_fit.h"  /* fastem_exp8f, fastem_log8f, fastem_v8f_sum */

#define FASTEM_FULL_BLOCK 256
#ifndef FASTEM_FULL_FEATURE_BLOCK
#define FASTEM_FULL_FEATURE_BLOCK 128
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#include <immintrin.h>

#define FASTEM_FMA __attribute__((target("avx2,fma")))

static inline int fastem_full_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* The element types: scalar, register, lanes and the register operations */
#define FASTEM_SCALAR_f32 float
#define FASTEM_VEC_f32 __m256
#define FASTEM_LANES_f32 8
#define FASTEM_ZERO_f32() _mm256_setzero_ps()
#define FASTEM_LOAD_f32(p) _mm256_loadu_ps(p)
#define FASTEM_MASKLOAD_f32(p, m) _mm256_maskload_ps(p, m)
#define FASTEM_BROADCAST_f32(p) _mm256_broadcast_ss(p)
#define FASTEM_MADD_f32(a, b, c) _mm256_fmadd_ps(a, b, c)
#define FASTEM_STORE_f32(p, v) _mm256_storeu_ps(p, v)

#define FASTEM_SCALAR_f64 double
#define FASTEM_VEC_f64 __m256d
#define FASTEM_LANES_f64 4
#define FASTEM_ZERO_f64() _mm256_setzero_pd()
#define FASTEM_LOAD_f64(p) _mm256_loadu_pd(p)
#define FASTEM_MASKLOAD_f64(p, m) _mm256_maskload_pd(p, m)
#define FASTEM_BROADCAST_f64(p) _mm256_broadcast_sd(p)
#define FASTEM_MADD_f64(a, b, c) _mm256_fmadd_pd(a, b, c)
#define FASTEM_STORE_f64(p, v) _mm256_storeu_pd(p, v)

/* lanes c0 + l < k of the component register from c0 */
FASTEM_FMA static inline __m256i fastem_full_mask_f32(ptrdiff_t c0, ptrdiff_t k)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(k - c0)), lane);
}

FASTEM_FMA static inline __m256i fastem_full_mask_f64(ptrdiff_t c0, ptrdiff_t k)
{
    const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)(k - c0)), lane);
}

/* log_norm + acc (NaN -> -inf) into out[c0 + l] for the lanes c0 + l < k */
FASTEM_FMA static inline void fastem_full_store_f32(double *out, const double *log_norm,
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

FASTEM_FMA static inline void fastem_full_store_f64(double *out, const double *log_norm,
                                                    __m256d acc, ptrdiff_t c0, ptrdiff_t k)
{
    const __m256d sum = _mm256_blendv_pd(_mm256_add_pd(_mm256_loadu_pd(log_norm + c0), acc),
                                         _mm256_set1_pd(-INFINITY),
                                         _mm256_cmp_pd(acc, acc, _CMP_UNORD_Q));
    if (c0 + 4 > k) {  /* the last, partial register: only its lanes below k */
        _mm256_maskstore_pd(out + c0, fastem_full_mask_f64(c0, k), sum);
        return;
    }
    _mm256_storeu_pd(out + c0, sum);
}

/* acc's lanes c0 + l < k into out[c0 + l] as they are, and back (zeros beyond k) */
FASTEM_FMA static inline void fastem_full_spill_f32(double *out, __m256 acc, ptrdiff_t c0,
                                                    ptrdiff_t k)
{
    double v[8];
    _mm256_storeu_pd(v, _mm256_cvtps_pd(_mm256_castps256_ps128(acc)));
    _mm256_storeu_pd(v + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(acc, 1)));
    for (ptrdiff_t l = 0; l < 8 && c0 + l < k; l++)
        out[c0 + l] = v[l];
}

FASTEM_FMA static inline __m256 fastem_full_fill_f32(const double *in, ptrdiff_t c0, ptrdiff_t k)
{
    double v[8] = {0.0};
    for (ptrdiff_t l = 0; l < 8 && c0 + l < k; l++)
        v[l] = in[c0 + l];
    return _mm256_set_m128(_mm256_cvtpd_ps(_mm256_loadu_pd(v + 4)),
                           _mm256_cvtpd_ps(_mm256_loadu_pd(v)));
}

FASTEM_FMA static inline void fastem_full_spill_f64(double *out, __m256d acc, ptrdiff_t c0,
                                                    ptrdiff_t k)
{
    _mm256_maskstore_pd(out + c0, fastem_full_mask_f64(c0, k), acc);
}

FASTEM_FMA static inline __m256d fastem_full_fill_f64(const double *in, ptrdiff_t c0,
                                                      ptrdiff_t k)
{
    return _mm256_maskload_pd(in + c0, fastem_full_mask_f64(c0, k));
}

/* V registers of components from c0 at p; with MASKED, the last one is partial */
#define FASTEM_FULL_LOADS(T, V, MASKED, p, out)                                               \
    _Pragma("GCC unroll 4")                                                                   \
    for (int v = 0; v < V; v++)                                                               \
        out[v] = MASKED && v == V - 1                                                         \
                     ? FASTEM_MASKLOAD_##T((p) + FASTEM_LANES_##T * v, mask)                  \
                     : FASTEM_LOAD_##T((p) + FASTEM_LANES_##T * v);

/* acc (in and out) += R rows from i against V registers of components from c0, over the
 * features [g0, g1): acc[r * V + v] */
#define FASTEM_FULL_ROWS(T, R, V, MASKED)                                                     \
FASTEM_FMA static void fastem_full_rows_##T##_##R##_##V##_##MASKED(                           \
    const FASTEM_SCALAR_##T *restrict t, ptrdiff_t n, ptrdiff_t i, ptrdiff_t g0,             \
    ptrdiff_t g1, const FASTEM_SCALAR_##T *restrict w, ptrdiff_t k, ptrdiff_t c0,            \
    FASTEM_VEC_##T *restrict out)                                                             \
{                                                                                             \
    const __m256i mask = fastem_full_mask_##T(c0 + FASTEM_LANES_##T * (V - 1), k);            \
    FASTEM_VEC_##T acc[R][V];                                                                 \
    _Pragma("GCC unroll 12")                                                                  \
    for (int r = 0; r < R; r++)                                                               \
        _Pragma("GCC unroll 4")                                                               \
        for (int v = 0; v < V; v++)                                                           \
            acc[r][v] = out[r * V + v];                                                       \
    for (ptrdiff_t g = g0; g < g1; g++) {                                                     \
        FASTEM_VEC_##T wg[V];                                                                 \
        FASTEM_FULL_LOADS(T, V, MASKED, w + g * k + c0, wg)                                   \
        _Pragma("GCC unroll 12")                                                              \
        for (int r = 0; r < R; r++) {                                                         \
            const FASTEM_VEC_##T tg = FASTEM_BROADCAST_##T(t + g * n + i + r);               \
            _Pragma("GCC unroll 4")                                                           \
            for (int v = 0; v < V; v++)                                                       \
                acc[r][v] = FASTEM_MADD_##T(tg, wg[v], acc[r][v]);                            \
        }                                                                                     \
    }                                                                                         \
    _Pragma("GCC unroll 12")                                                                  \
    for (int r = 0; r < R; r++)                                                               \
        _Pragma("GCC unroll 4")                                                               \
        for (int v = 0; v < V; v++)                                                           \
            out[r * V + v] = acc[r][v];                                                       \
}

/* A tile's sums over features before g0 come from logp, where the previous block of features
 * left them (exactly: float32 sums widen to double and back unchanged); after the last block,
 * log_norm + acc goes there instead. */
#define FASTEM_FULL_ROW_TILES(T, R, V)                                                        \
    for (; i + R <= n; i += R) {                                                              \
        for (int r = 0; r < R; r++)                                                           \
            for (int v = 0; v < V; v++)                                                       \
                acc[r * V + v] = g0 ? fastem_full_fill_##T(logp + (i + r) * k,                \
                                                           c0 + FASTEM_LANES_##T * v, k)      \
                                    : FASTEM_ZERO_##T();                                      \
        if (masked)                                                                           \
            fastem_full_rows_##T##_##R##_##V##_1(t, n, i, g0, g1, w, k, c0, acc);             \
        else                                                                                  \
            fastem_full_rows_##T##_##R##_##V##_0(t, n, i, g0, g1, w, k, c0, acc);             \
        for (int r = 0; r < R; r++)                                                           \
            for (int v = 0; v < V; v++) {                                                     \
                if (g1 == f)                                                                  \
                    fastem_full_store_##T(logp + (i + r) * k, log_norm, acc[r * V + v],       \
                                          c0 + FASTEM_LANES_##T * v, k);                      \
                else                                                                          \
                    fastem_full_spill_##T(logp + (i + r) * k, acc[r * V + v],                 \
                                          c0 + FASTEM_LANES_##T * v, k);                      \
            }                                                                                 \
    }

/* Above 16 components the rows go in the lanes instead: a tile is R registers of rows, loaded
 * straight from t(x)'s feature-major runs, by four components broadcast from w: 12
 * accumulators, 4 registers of t(x) and w, no spill (four registers of components by three
 * rows need 17 of the 16 ymm registers, and reload one of w from L1 for each row). The partial
 * sums of a tile wait in scratch between blocks of FASTEM_FULL_LANE_BLOCK features, whose
 * weights stay in L1 across the row tiles while a tile's rows of t(x) stay there across the
 * groups of components; after the last block they are transposed into logp. Each lane's sum
 * is the same chain of FMAs over g in order as in the tiles below, so logp is bitwise as
 * theirs. Log-densities alone (benchmarks/README.md, "Cache-set aliasing of t(x) and
 * log-densities with the rows in the lanes"): float64 D = 64, K = 32 0.65x the time of three
 * rows by four registers; float32 K = 17-32 0.51-0.76x; at 13-16 float64 components three rows
 * by four registers stay (lanes took 1.07-1.28x there but at D = 64). */
#define FASTEM_FULL_LANE_BLOCK 64

/* acc (in and out) += R registers of rows from i (with MASKED, the last holds only the rows
 * below n) against the components cc[0..3], over the features [g0, g1): acc[r * 4 + c] */
#define FASTEM_FULL_LANE_TILE(T, R, MASKED)                                                   \
FASTEM_FMA static void fastem_full_lane_tile_##T##_##R##_##MASKED(                            \
    const FASTEM_SCALAR_##T *restrict t, ptrdiff_t n, ptrdiff_t i, ptrdiff_t g0,             \
    ptrdiff_t g1, const FASTEM_SCALAR_##T *restrict w, ptrdiff_t k,                          \
    const ptrdiff_t *restrict cc, FASTEM_VEC_##T *restrict out)                               \
{                                                                                             \
    const __m256i mask = fastem_full_mask_##T(i + FASTEM_LANES_##T * (R - 1), n);             \
    FASTEM_VEC_##T acc[R][4];                                                                 \
    _Pragma("GCC unroll 3")                                                                   \
    for (int r = 0; r < R; r++)                                                               \
        _Pragma("GCC unroll 4")                                                               \
        for (int c = 0; c < 4; c++)                                                           \
            acc[r][c] = out[r * 4 + c];                                                       \
    for (ptrdiff_t g = g0; g < g1; g++) {                                                     \
        FASTEM_VEC_##T tg[R];                                                                 \
        FASTEM_FULL_LOADS(T, R, MASKED, t + g * n + i, tg)                                    \
        _Pragma("GCC unroll 4")                                                               \
        for (int c = 0; c < 4; c++) {                                                         \
            const FASTEM_VEC_##T wc = FASTEM_BROADCAST_##T(w + g * k + cc[c]);               \
            _Pragma("GCC unroll 3")                                                           \
            for (int r = 0; r < R; r++)                                                       \
                acc[r][c] = FASTEM_MADD_##T(tg[r], wc, acc[r][c]);                            \
        }                                                                                     \
    }                                                                                         \
    _Pragma("GCC unroll 3")                                                                   \
    for (int r = 0; r < R; r++)                                                               \
        _Pragma("GCC unroll 4")                                                               \
        for (int c = 0; c < 4; c++)                                                           \
            out[r * 4 + c] = acc[r][c];                                                       \
}

/* A register of rows from i (those below n) of the components c0 .. c0 + 3 (those below k),
 * acc[c] holding component c0 + c: log_norm + acc (NaN -> -inf) into their rows of logp */
FASTEM_FMA static inline void fastem_full_lane_store_f64(double *restrict logp,
                                                         const double *restrict log_norm,
                                                         const __m256d *acc, ptrdiff_t i,
                                                         ptrdiff_t n, ptrdiff_t c0, ptrdiff_t k)
{
    const __m256d lo01 = _mm256_unpacklo_pd(acc[0], acc[1]);
    const __m256d hi01 = _mm256_unpackhi_pd(acc[0], acc[1]);
    const __m256d lo23 = _mm256_unpacklo_pd(acc[2], acc[3]);
    const __m256d hi23 = _mm256_unpackhi_pd(acc[2], acc[3]);
    const __m256d rows[4] = {_mm256_permute2f128_pd(lo01, lo23, 0x20),
                             _mm256_permute2f128_pd(hi01, hi23, 0x20),
                             _mm256_permute2f128_pd(lo01, lo23, 0x31),
                             _mm256_permute2f128_pd(hi01, hi23, 0x31)};
    const __m256i mask = fastem_full_mask_f64(c0, k);
    const __m256d ln = _mm256_maskload_pd(log_norm + c0, mask);
    for (int l = 0; l < 4 && i + l < n; l++) {
        const __m256d sum = _mm256_blendv_pd(_mm256_add_pd(ln, rows[l]),
                                             _mm256_set1_pd(-INFINITY),
                                             _mm256_cmp_pd(rows[l], rows[l], _CMP_UNORD_Q));
        if (c0 + 4 > k)
            _mm256_maskstore_pd(logp + (i + l) * k + c0, mask, sum);
        else
            _mm256_storeu_pd(logp + (i + l) * k + c0, sum);
    }
}

FASTEM_FMA static inline void fastem_full_lane_store_f32(double *restrict logp,
                                                         const double *restrict log_norm,
                                                         const __m256 *acc, ptrdiff_t i,
                                                         ptrdiff_t n, ptrdiff_t c0, ptrdiff_t k)
{
    float v[4][8];
    for (int c = 0; c < 4; c++)
        _mm256_storeu_ps(v[c], acc[c]);
    for (int l = 0; l < 8 && i + l < n; l++)
        for (int c = 0; c < 4 && c0 + c < k; c++)
            logp[(i + l) * k + c0 + c] =
                v[c][l] == v[c][l] ? log_norm[c0 + c] + (double)v[c][l] : -INFINITY;
}

/* the tiles of R registers of rows while MORE, each against every group of four components
 * (a last group of fewer repeats its last component, not stored) */
#define FASTEM_FULL_LANE_TILES(T, R, MASKED, MORE)                                            \
    for (; MORE; i += R * FASTEM_LANES_##T)                                                   \
        for (ptrdiff_t c0 = 0; c0 < k; c0 += 4) {                                             \
            const ptrdiff_t cc[4] = {c0, c0 + 1 < k ? c0 + 1 : k - 1,                         \
                                     c0 + 2 < k ? c0 + 2 : k - 1, c0 + 3 < k ? c0 + 3 : k - 1};\
            FASTEM_VEC_##T *acc = part + ((c0 / 4) * regs + i / FASTEM_LANES_##T) * 4;        \
            for (int a = 0; g0 == 0 && a < R * 4; a++)                                        \
                acc[a] = FASTEM_ZERO_##T();                                                   \
            fastem_full_lane_tile_##T##_##R##_##MASKED(t, n, i, g0, g1, w, k, cc, acc);       \
            for (int r = 0; g1 == f && r < R; r++)                                            \
                fastem_full_lane_store_##T(logp, log_norm, acc + 4 * r,                       \
                                           i + r * FASTEM_LANES_##T, n, c0, k);               \
        }

/* logp as fastem_full_log_prob_T, with the rows in the lanes. scratch: the tiles' partial sums,
 * (n rounded up to a register) x (k rounded up to 4) elements after its first 32-byte
 * boundary */
#define FASTEM_FULL_LANES(T)                                                                  \
FASTEM_FULL_LANE_TILE(T, 3, 0)                                                                \
FASTEM_FULL_LANE_TILE(T, 1, 0)                                                                \
FASTEM_FULL_LANE_TILE(T, 1, 1)                                                                \
                                                                                              \
FASTEM_FMA static void fastem_full_lanes_##T(                                                 \
    const FASTEM_SCALAR_##T *restrict t, ptrdiff_t n, ptrdiff_t f,                           \
    const FASTEM_SCALAR_##T *restrict w, ptrdiff_t k, const double *restrict log_norm,        \
    double *restrict logp, FASTEM_SCALAR_##T *scratch)                                        \
{                                                                                             \
    const ptrdiff_t regs = (n + FASTEM_LANES_##T - 1) / FASTEM_LANES_##T;                     \
    FASTEM_VEC_##T *restrict part = (FASTEM_VEC_##T *)(((uintptr_t)scratch + 31)              \
                                                        & ~(uintptr_t)31);                    \
    for (ptrdiff_t g0 = 0; g0 < f; g0 += FASTEM_FULL_LANE_BLOCK) {                            \
        const ptrdiff_t g1 = f - g0 < FASTEM_FULL_LANE_BLOCK ? f : g0 + FASTEM_FULL_LANE_BLOCK;\
        ptrdiff_t i = 0;                                                                      \
        FASTEM_FULL_LANE_TILES(T, 3, 0, i + 3 * FASTEM_LANES_##T <= n)                        \
        FASTEM_FULL_LANE_TILES(T, 1, 0, i + FASTEM_LANES_##T <= n)                            \
        FASTEM_FULL_LANE_TILES(T, 1, 1, i < n)                                                \
    }                                                                                         \
}

FASTEM_FULL_LANES(f32)
FASTEM_FULL_LANES(f64)

/* the tiles up to 16 components: three rows by four registers of components (float64, 13-16
 * components), six (three) rows by two, twelve rows by one, single rows; the features in
 * blocks of FASTEM_FULL_FEATURE_BLOCK, whose weights stay in L1 across the tiles of rows (each
 * lane's sum is still one chain over g in order). Four registers a tile read a block of t(x)
 * (from L2) half as many times as two (benchmarks/README.md, "A new machine: AMD Zen 3"). */
FASTEM_FULL_ROWS(f64, 3, 4, 0)
FASTEM_FULL_ROWS(f64, 3, 4, 1)
FASTEM_FULL_ROWS(f64, 1, 4, 0)
FASTEM_FULL_ROWS(f64, 1, 4, 1)

/* four registers of components: float64 only (float32 at most two below 17 components) */
#define FASTEM_FULL_FOUR_REGISTERS_f32
#define FASTEM_FULL_FOUR_REGISTERS_f64                                                        \
        for (; c0 + 3 * lanes < k; c0 += 4 * lanes) {  /* 13-16 components */                \
            const int masked = c0 + 4 * lanes > k;                                            \
            ptrdiff_t i = 0;                                                                  \
            FASTEM_FULL_ROW_TILES(f64, 3, 4)                                                  \
            FASTEM_FULL_ROW_TILES(f64, 1, 4)                                                  \
        }

#define FASTEM_FULL_LOG_PROB(T)                                                               \
FASTEM_FULL_ROWS(T, 6, 2, 0)                                                                  \
FASTEM_FULL_ROWS(T, 6, 2, 1)                                                                  \
FASTEM_FULL_ROWS(T, 3, 2, 0)                                                                  \
FASTEM_FULL_ROWS(T, 3, 2, 1)                                                                  \
FASTEM_FULL_ROWS(T, 1, 2, 0)                                                                  \
FASTEM_FULL_ROWS(T, 1, 2, 1)                                                                  \
FASTEM_FULL_ROWS(T, 12, 1, 0)                                                                 \
FASTEM_FULL_ROWS(T, 12, 1, 1)                                                                 \
FASTEM_FULL_ROWS(T, 1, 1, 0)                                                                  \
FASTEM_FULL_ROWS(T, 1, 1, 1)                                                                  \
                                                                                              \
FASTEM_FMA static void fastem_full_log_prob_##T(                                              \
    const FASTEM_SCALAR_##T *restrict t, ptrdiff_t n, ptrdiff_t f,                           \
    const FASTEM_SCALAR_##T *restrict w, ptrdiff_t k, const double *restrict log_norm,        \
    double *restrict logp, FASTEM_SCALAR_##T *restrict scratch)                               \
{                                                                                             \
    const ptrdiff_t lanes = FASTEM_LANES_##T;                                                 \
    if (k > 16) {                                                                             \
        fastem_full_lanes_##T(t, n, f, w, k, log_norm, logp, scratch);                        \
        return;                                                                               \
    }                                                                                         \
    FASTEM_VEC_##T acc[12];                                                                   \
    for (ptrdiff_t g0 = 0; g0 < f; g0 += FASTEM_FULL_FEATURE_BLOCK) {                         \
        const ptrdiff_t g1 = f - g0 < FASTEM_FULL_FEATURE_BLOCK                               \
                                 ? f : g0 + FASTEM_FULL_FEATURE_BLOCK;                        \
        ptrdiff_t c0 = 0;                                                                     \
        FASTEM_FULL_FOUR_REGISTERS_##T                                                        \
        for (; c0 + lanes < k; c0 += 2 * lanes) {  /* two registers (the second partial?) */ \
            const int masked = c0 + 2 * lanes > k;                                            \
            ptrdiff_t i = 0;                                                                  \
            FASTEM_FULL_ROW_TILES(T, 6, 2)                                                    \
            FASTEM_FULL_ROW_TILES(T, 3, 2)                                                    \
            FASTEM_FULL_ROW_TILES(T, 1, 2)                                                    \
        }                                                                                     \
        if (c0 < k) {                                                                         \
            const int masked = c0 + lanes > k;                                                \
            ptrdiff_t i = 0;                                                                  \
            FASTEM_FULL_ROW_TILES(T, 12, 1)                                                   \
            FASTEM_FULL_ROW_TILES(T, 1, 1)                                                    \
        }                                                                                     \
    }                                                                                         \
}

FASTEM_FULL_LOG_PROB(f32)
FASTEM_FULL_LOG_PROB(f64)

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
        for (int a = 0; a < R * V; a++)                                                       \
            acc[a] = _mm256_setzero_ps();                                                     \
        if (masked)                                                                           \
            fastem_full_rows_f32_##R##_##V##_1(t, n, i, 0, f, w, k, 0, acc);                  \
        else                                                                                  \
            fastem_full_rows_f32_##R##_##V##_0(t, n, i, 0, f, w, k, 0, acc);                  \
        fastem_full32_normalize(acc, R, V, k, ln, resp + i * k, lse + i);                     \
    }

/* fastem_full_log_prob_f32 and the row-wise log-sum-exp (fastem_normalize_rows) in one pass
 * for k <= 16 components: resp (n, k), lse (n,) */
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
#define FASTEM_FULL_FEATURES(T, G, V, MASKED)                                                 \
FASTEM_FMA static void fastem_full_features_##T##_##G##_##V##_##MASKED(                       \
    const FASTEM_SCALAR_##T *restrict t, ptrdiff_t n, ptrdiff_t i0, ptrdiff_t i1,            \
    ptrdiff_t g0, ptrdiff_t f, const FASTEM_SCALAR_##T *restrict r, ptrdiff_t k,             \
    ptrdiff_t c0, double *restrict s)                                                         \
{                                                                                             \
    enum { L = FASTEM_LANES_##T };                                                            \
    const __m256i mask = fastem_full_mask_##T(c0 + L * (V - 1), k);                           \
    FASTEM_VEC_##T acc[G][V];                                                                 \
    FASTEM_SCALAR_##T lanes[G][V][L];                                                         \
    _Pragma("GCC unroll 12")                                                                  \
    for (int g = 0; g < G; g++)                                                               \
        _Pragma("GCC unroll 4")                                                               \
        for (int v = 0; v < V; v++)                                                           \
            acc[g][v] = FASTEM_ZERO_##T();                                                    \
    for (ptrdiff_t i = i0; i < i1; i++) {                                                     \
        FASTEM_VEC_##T ri[V];                                                                 \
        FASTEM_FULL_LOADS(T, V, MASKED, r + i * k + c0, ri)                                   \
        _Pragma("GCC unroll 12")                                                              \
        for (int g = 0; g < G; g++) {                                                         \
            const FASTEM_VEC_##T tg = FASTEM_BROADCAST_##T(t + (g0 + g) * n + i);            \
            _Pragma("GCC unroll 4")                                                           \
            for (int v = 0; v < V; v++)                                                       \
                acc[g][v] = FASTEM_MADD_##T(tg, ri[v], acc[g][v]);                            \
        }                                                                                     \
    }                                                                                         \
    _Pragma("GCC unroll 12")                                                                  \
    for (int g = 0; g < G; g++)                                                               \
        _Pragma("GCC unroll 4")                                                               \
        for (int v = 0; v < V; v++)                                                           \
            FASTEM_STORE_##T(lanes[g][v], acc[g][v]);                                         \
    for (int g = 0; g < G; g++)                                                               \
        for (int v = 0; v < V; v++)                                                           \
            for (ptrdiff_t l = 0; l < L && c0 + L * v + l < k; l++)                           \
                s[(c0 + L * v + l) * f + g0 + g] += lanes[g][v][l];                           \
}

/* features [g, g + 6 * N2) against the registers of components in pairs, then [g, g + N1)
 * against the last, single register (if any) */
#define FASTEM_FULL_FEATURE_GROUP(T, G2, N2, G1)                                              \
    {                                                                                         \
        ptrdiff_t c0 = 0;                                                                     \
        for (; c0 + lanes < k; c0 += 2 * lanes) {                                             \
            const int masked = c0 + 2 * lanes > k;                                            \
            for (ptrdiff_t h = g; h < g + G2 * N2; h += G2) {                                 \
                if (masked)                                                                   \
                    fastem_full_features_##T##_##G2##_2_1(t, n, i0, i1, h, f, r, k, c0, s);   \
                else                                                                          \
                    fastem_full_features_##T##_##G2##_2_0(t, n, i0, i1, h, f, r, k, c0, s);   \
            }                                                                                 \
        }                                                                                     \
        if (c0 < k) {                                                                         \
            if (c0 + lanes > k)                                                               \
                fastem_full_features_##T##_##G1##_1_1(t, n, i0, i1, g, f, r, k, c0, s);       \
            else                                                                              \
                fastem_full_features_##T##_##G1##_1_0(t, n, i0, i1, g, f, r, k, c0, s);       \
        }                                                                                     \
    }

/* r: (n, k) responsibilities in T; s: (k, f) double. Twelve features at a time against all
 * the components, so their rows of t(x) are read from L2 once and then from L1; the rest four
 * at a time (f = 152 at D = 16 leaves 8; a one-feature tile is a single chain of FMAs per
 * register, which waits on the FMA latency), then one. Every lane's sum is one chain over the
 * rows in order, whatever its tile. */
#define FASTEM_FULL_STATS(T)                                                                  \
FASTEM_FULL_FEATURES(T, 6, 2, 0)                                                              \
FASTEM_FULL_FEATURES(T, 6, 2, 1)                                                              \
FASTEM_FULL_FEATURES(T, 4, 2, 0)                                                              \
FASTEM_FULL_FEATURES(T, 4, 2, 1)                                                              \
FASTEM_FULL_FEATURES(T, 1, 2, 0)                                                              \
FASTEM_FULL_FEATURES(T, 1, 2, 1)                                                              \
FASTEM_FULL_FEATURES(T, 12, 1, 0)                                                             \
FASTEM_FULL_FEATURES(T, 12, 1, 1)                                                             \
FASTEM_FULL_FEATURES(T, 4, 1, 0)                                                              \
FASTEM_FULL_FEATURES(T, 4, 1, 1)                                                              \
FASTEM_FULL_FEATURES(T, 1, 1, 0)                                                              \
FASTEM_FULL_FEATURES(T, 1, 1, 1)                                                              \
                                                                                              \
FASTEM_FMA static void fastem_full_stats_##T(                                                 \
    const FASTEM_SCALAR_##T *restrict t, ptrdiff_t n, ptrdiff_t f,                           \
    const FASTEM_SCALAR_##T *restrict r, ptrdiff_t k, double *restrict s)                     \
{                                                                                             \
    const ptrdiff_t lanes = FASTEM_LANES_##T;                                                 \
    for (ptrdiff_t i0 = 0; i0 < n; i0 += FASTEM_FULL_BLOCK) {                                 \
        const ptrdiff_t i1 = n - i0 < FASTEM_FULL_BLOCK ? n : i0 + FASTEM_FULL_BLOCK;         \
        ptrdiff_t g = 0;                                                                      \
        for (; g + 12 <= f; g += 12)                                                          \
            FASTEM_FULL_FEATURE_GROUP(T, 6, 2, 12)                                            \
        for (; g + 4 <= f; g += 4)                                                            \
            FASTEM_FULL_FEATURE_GROUP(T, 4, 1, 4)                                             \
        for (; g < f; g++)                                                                    \
            FASTEM_FULL_FEATURE_GROUP(T, 1, 1, 1)                                             \
    }                                                                                         \
}

FASTEM_FULL_STATS(f32)
FASTEM_FULL_STATS(f64)

#else  /* no AVX2/FMA clone: gaussian.pyx keeps SGEMM and DGEMM */

static inline int fastem_full_available(void) { return 0; }

#define FASTEM_FULL_STUBS(T, S)                                                               \
static void fastem_full_log_prob_##T(const S *t, ptrdiff_t n, ptrdiff_t f, const S *w,        \
                                     ptrdiff_t k, const double *log_norm, double *logp,       \
                                     S *scratch)                                              \
{                                                                                             \
    (void)t; (void)n; (void)f; (void)w; (void)k; (void)log_norm; (void)logp; (void)scratch;   \
}                                                                                             \
static void fastem_full_stats_##T(const S *t, ptrdiff_t n, ptrdiff_t f, const S *r,           \
                                  ptrdiff_t k, double *s)                                     \
{                                                                                             \
    (void)t; (void)n; (void)f; (void)r; (void)k; (void)s;                                     \
}

FASTEM_FULL_STUBS(f32, float)
FASTEM_FULL_STUBS(f64, double)

static void fastem_full32_fit(const float *t, ptrdiff_t n, ptrdiff_t f, const float *w,
                              ptrdiff_t k, const double *log_norm, double *resp, double *lse)
{
    (void)t; (void)n; (void)f; (void)w; (void)k; (void)log_norm; (void)resp; (void)lse;
}

#endif

#endif
