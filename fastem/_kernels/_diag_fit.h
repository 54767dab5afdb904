/* The fused E-step of float32 data for the diagonal exponential-family kinds (EXPFAM_DIAG and
 * EXPFAM_SPHERICAL, gaussian.pyx): features, log-densities, the row-wise log-sum-exp,
 * responsibilities and statistics of a chunk, eight rows at a time, in float32 lanes (eight
 * per AVX2 register), the rows in the lanes.
 *
 * Per group of eight rows (each step for the four groups of a statistics update before the
 * next): their features t(x) = [v, v^2] or [v, |v|^2] (v = x - s), transposed, one register
 * per feature; the log-density of component c,
 * log_norm_c + sum_j t_j W[j, c], for the eight rows at once (eight components per block of
 * accumulators, each weight broadcast to a register once per chunk); then, lane by lane, i.e.
 * per row: the maximum over the components, exp(lp - max) by a float32 series, the sum, and
 * the responsibilities r_c = w exp(lp_c - max) / sum (w the row's weight), with no shuffles
 * across lanes. Each row's log p(x_i) = max + log(sum) (the log by a float32 series of the
 * sum, which is in [1, K]) and the sums over rows (w log p, w, the lowest row) are float64.
 *
 * Statistics: s0 += r_c and [s1 | s2]_c += r_c t(x), a row per lane, four groups g per
 * update ((r0 t0 + r1 t1) + (r2 t2 + r3 t3)). They run in float32 over FASTEM_FIT_BLOCK = 256
 * rows (32 per lane) and are then added into the float64 slot, lanes summed in a fixed order:
 * a product passes through at most 14 float32 roundings (its own, 2 in the four groups' sum,
 * 8 additions in its lane, 3 in the sum of lanes), so each sum is within 16 2^-24 < 1e-6 of
 * the sum of the magnitudes of its terms (the SGEMM it replaces summed whole chunks, up to
 * 1024 rows, in float32).
 *
 * Why: at D = K = 8 the per-value work dominated (log-densities widened to float64, exp in four
 * float64 lanes, separate passes for the maximum, exp and the row sums, an SGEMM whose packing
 * cost more than its products); here every value stays in float32 lanes in L1, and the per-row
 * steps (maximum, sum, division) cost one vector operation per eight rows.
 *
 * exp: Cody-Waite reduction x = k ln2 + r, |r| <= ln2/2, with Cephes' split of ln2 (k ln2_hi
 * exact for |k| <= 126), then Cephes' expf polynomial (1 + r + r^2 p(r), p of degree 5,
 * relative error ~1e-7, i.e. float32 rounding) by Estrin's scheme; arguments below -87.3
 * (results below 2^-126, the least normal float32) give 0. Arguments are <= 0 (shifted by the
 * row maximum). log: x = 2^e m, log m = 2 atanh((m - 1) / (m + 1)) by its odd series.
 * The x86-64-v3 clone (AVX2 + FMA) contracts the multiply-adds of the log-densities, the
 * statistics and the series into FMAs (10-13 % per iteration at D = K = 8, taking turns with
 * the no-FMA build); the "avx2" and "default" clones do not, so results depend on whether the
 * CPU has FMA. A row's values do not depend on the rows beside it, and the block sums restart
 * at each chunk, so results do not depend on the number of threads. Subnormal results are
 * flushed to zero (fastem_diag_fit_f32, at the end: why and how).
 */
#ifndef FASTEM_DIAG_FIT_H
#define FASTEM_DIAG_FIT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fastem/_kernels/_simd.h"

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

/* An AVX2 + FMA clone first (GCC contracts a * b + c into one FMA there), then _simd.h's. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FASTEM_DIAG_FIT_CLONES __attribute__((target_clones("arch=x86-64-v3", "avx2", "default")))
#else
#define FASTEM_DIAG_FIT_CLONES
#endif

enum {
    FASTEM_FIT_LANES = 8,      /* float32 lanes of an AVX2 register: rows per group */
    FASTEM_FIT_GROUPS = 4,     /* groups of eight rows per update of the statistics */
    FASTEM_FIT_BLOCK = 256,    /* rows per float32 partial sum of the statistics (32 a lane) */
    FASTEM_FIT_WEIGHTS = 512,  /* registers of W (f x K', each weight in all lanes) */
    FASTEM_FIT_SUMS = 512,     /* registers of statistics [s1 | s2] (k x f) */
    FASTEM_FIT_WIDTH = 64,     /* features f, columns rounded up, components rounded up */
};

typedef float fastem_v8f __attribute__((vector_size(32)));
typedef int32_t fastem_v8i __attribute__((vector_size(32)));
typedef float fastem_v4f __attribute__((vector_size(16)));
typedef double fastem_v4d __attribute__((vector_size(32)));
typedef int64_t fastem_v4l __attribute__((vector_size(32)));

/* Columns or components rounded up to whole registers. */
static inline ptrdiff_t fastem_fit_padded(ptrdiff_t width)
{
    return (width + FASTEM_FIT_LANES - 1) / FASTEM_FIT_LANES * FASTEM_FIT_LANES;
}

/* Whether fastem_diag_fit_f32 takes d columns and k components (its buffers are on the
 * stack); larger shapes run the unfused kernels, where BLAS wins anyway. */
static inline int fastem_diag_fit_f32_fits(int squares, ptrdiff_t d, ptrdiff_t k)
{
    const ptrdiff_t f = squares ? 2 * d : d + 1, kp = fastem_fit_padded(k);
    return f <= FASTEM_FIT_WIDTH && fastem_fit_padded(d) <= FASTEM_FIT_WIDTH
           && kp <= FASTEM_FIT_WIDTH && f * kp <= FASTEM_FIT_WEIGHTS && k * f <= FASTEM_FIT_SUMS;
}

static inline __attribute__((always_inline)) fastem_v8f fastem_v8f_splat(float value)
{
    return (fastem_v8f) {0} + value;
}

/* mask ? a : b, lane by lane (mask lanes all ones or zeros) */
static inline __attribute__((always_inline)) fastem_v8f fastem_v8f_select(fastem_v8i mask,
                                                                          fastem_v8f a,
                                                                          fastem_v8f b)
{
    return (fastem_v8f) (((fastem_v8i) a & mask) | ((fastem_v8i) b & ~mask));
}

/* exp(x) for lanes x <= 0 (0 below -87.3, for -inf and NaN too). */
static inline __attribute__((always_inline)) fastem_v8f fastem_exp8f(fastem_v8f x)
{
    const fastem_v8f magic = fastem_v8f_splat(12582912.0f);  /* 1.5 * 2^23 */
    const fastem_v8i keep = x >= fastem_v8f_splat(-87.33654f);
    x = fastem_v8f_select(keep, x, fastem_v8f_splat(0.0f));
    const fastem_v8f t = x * 1.44269504088896341f + magic;
    const fastem_v8f kf = t - magic;
    const fastem_v8i ki = (fastem_v8i) t - (fastem_v8i) magic;
    const fastem_v8f r = (x - kf * 0.693359375f) - kf * -2.12194440e-4f;
    const fastem_v8f r2 = r * r, r4 = r2 * r2;
    const fastem_v8f p = ((5.0000001201e-1f + r * 1.6666665459e-1f)
                          + (4.1665795894e-2f + r * 8.3334519073e-3f) * r2)
                         + (1.3981999507e-3f + r * 1.9875691500e-4f) * r4;
    const fastem_v8f value = (1.0f + r) + r2 * p;
    const fastem_v8f scale = (fastem_v8f) ((ki + 127) << 23);
    return (fastem_v8f) ((fastem_v8i) (value * scale) & keep);
}

/* log(x) for lanes x >= 1 (finite; a row's sum of exps): x = 2^e m, m in [sqrt(1/2), sqrt(2)),
 * log m = 2 atanh(z), z = (m - 1) / (m + 1), |z| < 0.172, by its odd series to z^9
 * (truncation < 2.5e-9 relative), e ln2 with ln2 split so that e ln2_hi is exact. */
static inline __attribute__((always_inline)) fastem_v8f fastem_log8f(fastem_v8f x)
{
    const fastem_v8i bits = (fastem_v8i) x;
    const fastem_v8i e = (bits - 0x3f3504f3) >> 23;  /* 0x3f3504f3: sqrt(1/2) */
    const fastem_v8f m = (fastem_v8f) (bits - (e << 23));
    const fastem_v8f ef = __builtin_convertvector(e, fastem_v8f);
    const fastem_v8f z = (m - 1.0f) / (m + 1.0f), w = z * z, w2 = w * w;
    const fastem_v8f q = ((1.0f + w * (1.0f / 3.0f)) + (1.0f / 5.0f + w * (1.0f / 7.0f)) * w2)
                         + w2 * w2 * (1.0f / 9.0f);
    return ef * 0.693145752f + ((z + z) * q + ef * 1.42860677e-6f);
}

/* The sum of v's lanes, in a fixed order. */
static inline __attribute__((always_inline)) float fastem_v8f_sum(fastem_v8f v)
{
    return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}

/* out[j] = lane j of each of rows[0..8): an 8 x 8 transpose. */
static inline __attribute__((always_inline)) void fastem_transpose8(const fastem_v8f *rows,
                                                                    fastem_v8f *out)
{
    const fastem_v8i lo = {0, 8, 1, 9, 4, 12, 5, 13}, hi = {2, 10, 3, 11, 6, 14, 7, 15};
    const fastem_v8i even = {0, 1, 8, 9, 4, 5, 12, 13}, odd = {2, 3, 10, 11, 6, 7, 14, 15};
    const fastem_v8i front = {0, 1, 2, 3, 8, 9, 10, 11}, back = {4, 5, 6, 7, 12, 13, 14, 15};
    fastem_v8f a[8], b[8];
    for (int r = 0; r < 8; r += 2) {
        a[r] = __builtin_shuffle(rows[r], rows[r + 1], lo);
        a[r + 1] = __builtin_shuffle(rows[r], rows[r + 1], hi);
    }
    for (int r = 0; r < 8; r += 4) {
        b[r] = __builtin_shuffle(a[r], a[r + 2], even);
        b[r + 1] = __builtin_shuffle(a[r], a[r + 2], odd);
        b[r + 2] = __builtin_shuffle(a[r + 1], a[r + 3], even);
        b[r + 3] = __builtin_shuffle(a[r + 1], a[r + 3], odd);
    }
    for (int j = 0; j < 4; j++) {
        out[j] = __builtin_shuffle(b[j], b[j + 4], front);
        out[j + 4] = __builtin_shuffle(b[j], b[j + 4], back);
    }
}

/* The features of eight rows (x, d values each), transposed: tt[j] holds feature j of the
 * eight rows, v = x - centre (centre zero-padded to d' = d rounded up) at [0, d), then v^2 at
 * [d, 2d) (squares) or |v|^2 = sum_a v_a^2 (a in order) at d; tt has room for d' + 8. */
static inline __attribute__((always_inline)) void fastem_fit_group_features(
    int squares, const float *const *x, ptrdiff_t d, const float *restrict centre,
    fastem_v8f *restrict tt)
{
    const fastem_v8i lanes = {0, 1, 2, 3, 4, 5, 6, 7};
    for (ptrdiff_t a0 = 0; a0 < d; a0 += FASTEM_FIT_LANES) {
        /* a whole register from each row, the lanes past d (the next row's values) masked:
         * one path, so v stays in registers (a lane-by-lane path for the last block kept it
         * on the stack for every block) */
        const fastem_v8i keep = lanes < (fastem_v8i) {0} + (int32_t) (d - a0);
        fastem_v8f v[8], c;
        memcpy(&c, centre + a0, sizeof c);
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) {
            memcpy(v + r, x[r] + a0, sizeof v[r]);
            v[r] = (fastem_v8f) ((fastem_v8i) v[r] & keep) - c;
        }
        fastem_transpose8(v, tt + a0);  /* beyond d: overwritten below */
    }
    if (squares) {
        for (ptrdiff_t a = 0; a < d; a++)
            tt[d + a] = tt[a] * tt[a];
        return;
    }
    fastem_v8f norm = tt[0] * tt[0];
    for (ptrdiff_t a = 1; a < d; a++)
        norm += tt[a] * tt[a];
    tt[d] = norm;
}

/* lp[c] (lanes: the eight rows) = ln[c] + sum_j tt[j] w[j, c] for the components c in
 * [c0, c0 + 8) of w (f x kp registers, each weight in all lanes; zero-padded columns); a NaN
 * sum (overflowing features: inf - inf) is -inf. */
static inline __attribute__((always_inline)) void fastem_fit_log_prob(
    const fastem_v8f *restrict tt, ptrdiff_t f, const fastem_v8f *restrict w, ptrdiff_t kp,
    ptrdiff_t c0, const float *restrict ln, fastem_v8f *restrict lp)
{
    fastem_v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
    for (ptrdiff_t j = 0; j < f; j++) {
        const fastem_v8f feature = tt[j];
        const fastem_v8f *restrict wj = w + j * kp + c0;
        a0 += feature * wj[0], a1 += feature * wj[1], a2 += feature * wj[2];
        a3 += feature * wj[3], a4 += feature * wj[4], a5 += feature * wj[5];
        a6 += feature * wj[6], a7 += feature * wj[7];
    }
    const fastem_v8f sums[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
    for (int c = 0; c < 8; c++) {
        const fastem_v8f value = sums[c] + ln[c0 + c];
        lp[c0 + c] = fastem_v8f_select(value == value, value, fastem_v8f_splat(-INFINITY));
    }
}

/* Per lane (rows i0 + r of every group; lanes 0-3 in [0], 4-7 in [1]), in float64:
 * sum w log p(x_i), sum w, and the lowest log p(x_i) of a weighted row with its row (the
 * first if equal; -1 while none). */
typedef struct {
    fastem_v4d loglik[2], mass[2], lowest[2];
    fastem_v4l row[2];
} fastem_fit_likelihood;

static inline __attribute__((always_inline)) fastem_v4d fastem_v4d_select(fastem_v4l mask,
                                                                          fastem_v4d a,
                                                                          fastem_v4d b)
{
    return (fastem_v4d) (((fastem_v4l) a & mask) | ((fastem_v4l) b & ~mask));
}

/* Lanes 0-3 (half 0) or 4-7 (half 1) of v, widened to float64. */
#define FASTEM_V8F_HALF(v, half)                                                              \
    __builtin_convertvector((half) ? __builtin_shufflevector(v, v, 4, 5, 6, 7)               \
                                   : __builtin_shufflevector(v, v, 0, 1, 2, 3), fastem_v4d)

/* The log-densities of a group of eight rows from row i0 (rows beyond n repeat the last
 * one): their features tt (fastem_fit_group_features) and lp in resp (k registers; a
 * labelled row keeps only its component's). */
static inline __attribute__((always_inline)) void fastem_fit_group_log_prob(
    int squares, const float *restrict x, ptrdiff_t i0, ptrdiff_t n, ptrdiff_t d, ptrdiff_t k,
    const float *restrict centre, const fastem_v8f *restrict w, const float *restrict ln,
    const ptrdiff_t *restrict labels, fastem_v8f *restrict tt, fastem_v8f *restrict resp)
{
    const ptrdiff_t f = squares ? 2 * d : d + 1, kp = fastem_fit_padded(k);
    const ptrdiff_t group = n - i0 < 8 ? n - i0 : 8;
    const float *rows[8];
    for (int r = 0; r < 8; r++)
        rows[r] = x + (i0 + (r < group ? r : group - 1)) * d;
    /* the rows 32 groups ahead, from memory (a memory-mapped file's next pages) */
    for (ptrdiff_t byte = 0; byte < 8 * d * (ptrdiff_t) sizeof(float); byte += 64)
        __builtin_prefetch((const char *) (x + (i0 + 256) * d) + byte);
    /* features read a register's width from each row: past the chunk's end for its last
     * rows, which are therefore read from a copy */
    float tail[8][FASTEM_FIT_WIDTH + FASTEM_FIT_LANES];
    if ((i0 + 8) * d + FASTEM_FIT_LANES > n * d)
        for (int r = 0; r < 8; r++) {
            memcpy(tail[r], rows[r], d * sizeof(float));
            memset(tail[r] + d, 0, FASTEM_FIT_LANES * sizeof(float));
            rows[r] = tail[r];
        }
    fastem_fit_group_features(squares, rows, d, centre, tt);
    for (ptrdiff_t c0 = 0; c0 < kp; c0 += 8)
        fastem_fit_log_prob(tt, f, w, kp, c0, ln, resp);
    for (ptrdiff_t r = 0; labels != NULL && r < group; r++)
        for (ptrdiff_t c = 0; labels[i0 + r] >= 0 && c < k; c++)
            if (c != labels[i0 + r])
                resp[c][r] = -INFINITY;
}

/* The same group's responsibilities in place of lp in resp, w exp(lp - max) / sum (weights
 * w, 0 past n; zero where the maximum is not finite), and log p(x_i) = max + log(sum),
 * added into like; rows without responsibilities get zero features in tt. */
static inline __attribute__((always_inline)) void fastem_fit_group_resp(
    ptrdiff_t i0, ptrdiff_t n, ptrdiff_t f, ptrdiff_t k, const double *restrict weights,
    fastem_fit_likelihood *restrict like, fastem_v8f *restrict tt, fastem_v8f *restrict resp)
{
    const ptrdiff_t group = n - i0 < 8 ? n - i0 : 8;
    const fastem_v8f zero = {0};
    double weight[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    if (group == 8 && weights != NULL)
        memcpy(weight, weights + i0, sizeof weight);
    for (int r = 0; group < 8 && r < 8; r++)
        weight[r] = r < group ? (weights != NULL ? weights[i0 + r] : 1.0) : 0.0;
    fastem_v8f top = resp[0];
    for (ptrdiff_t c = 1; c < k; c++)
        top = fastem_v8f_select(resp[c] > top, resp[c], top);
    const fastem_v8i finite = (top > fastem_v8f_splat(-INFINITY))
                              & (top < fastem_v8f_splat(INFINITY));
    const fastem_v8f shift = fastem_v8f_select(finite, top, zero);
    fastem_v8f total = zero;
    for (ptrdiff_t c = 0; c < k; c++) {
        resp[c] = (fastem_v8f) ((fastem_v8i) fastem_exp8f(resp[c] - shift) & finite);
        total += resp[c];
    }
    total = fastem_v8f_select(finite, total, fastem_v8f_splat(1.0f));  /* log 1 = 0 */
    fastem_v4d wide[2];
    memcpy(wide, weight, sizeof wide);
    const fastem_v8f scale = __builtin_shufflevector(__builtin_convertvector(wide[0], fastem_v4f),
                                                     __builtin_convertvector(wide[1], fastem_v4f),
                                                     0, 1, 2, 3, 4, 5, 6, 7) / total;
    for (ptrdiff_t c = 0; c < k; c++)
        resp[c] *= scale;
    /* rows without responsibilities (weight 0, or no finite maximum: features that overflow)
     * get zero features, else 0 * inf would put NaN into the statistics */
    fastem_v8i counted = finite & (scale != zero), all = counted;
    all &= __builtin_shuffle(all, (fastem_v8i) {4, 5, 6, 7, 0, 1, 2, 3});
    all &= __builtin_shuffle(all, (fastem_v8i) {2, 3, 0, 1, 6, 7, 4, 5});
    all &= __builtin_shuffle(all, (fastem_v8i) {1, 0, 3, 2, 5, 4, 7, 6});
    for (ptrdiff_t j = 0; !all[0] && j < f; j++)
        tt[j] = (fastem_v8f) ((fastem_v8i) tt[j] & counted);
    const fastem_v8f logs = fastem_log8f(total);
    for (int h = 0; h < 2; h++) {
        const fastem_v4d lse = FASTEM_V8F_HALF(top, h) + FASTEM_V8F_HALF(logs, h);
        const fastem_v4l used = wide[h] != (fastem_v4d) {0};
        const fastem_v4l lower = used & (lse < like->lowest[h]);
        const fastem_v4l row = (fastem_v4l) {0, 1, 2, 3} + (i0 + 4 * h);
        like->loglik[h] += fastem_v4d_select(used, wide[h] * lse, (fastem_v4d) {0});
        like->mass[h] += wide[h];
        like->lowest[h] = fastem_v4d_select(lower, lse, like->lowest[h]);
        like->row[h] = (fastem_v4l) fastem_v4d_select(lower, (fastem_v4d) row,
                                                      (fastem_v4d) like->row[h]);
    }
}

/* m registers of float32 sums (a row per lane) added into the float64 sums lane by lane
 * (in fastem_v8f_sum's order, eight registers at a time by a transpose), and reset. */
static inline __attribute__((always_inline)) void fastem_fit_flush(
    fastem_v8f *restrict acc, ptrdiff_t m, double *restrict sums)
{
    ptrdiff_t j = 0;
    for (; j + 8 <= m; j += 8) {
        fastem_v8f lanes[8];
        fastem_transpose8(acc + j, lanes);
        const fastem_v8f total = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
                                 + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
        for (int q = 0; q < 8; q++) {
            sums[j + q] += total[q];
            acc[j + q] = (fastem_v8f) {0};
        }
    }
    for (; j < m; j++) {
        sums[j] += fastem_v8f_sum(acc[j]);
        acc[j] = (fastem_v8f) {0};
    }
}

/* The fused pass over a chunk of n rows x (n, d), float32, with f = 2d (squares) or d + 1
 * features, W (f, k) and log_norm (k,) as packed for EXPFAM_DIAG or EXPFAM_SPHERICAL (see
 * gaussian.pyx), and fastem_diag_fit_f32_fits(squares, d, k). weights (n,) or NULL for ones;
 * labels (n,) the clamped component of each row (-1: none) or NULL. Adds into sums =
 * [sum w log p(x_i), sum w, s0 (k), [s1 | s2] (k, f)] (the statistics only with with_stats),
 * and sets worst = [lowest log p(x_i) of a weighted row, its row] ([inf, -1] when every weight
 * is 0). A row whose maximum is not finite (all -inf) has zero responsibilities and its
 * maximum as log p(x_i). */
FASTEM_DIAG_FIT_CLONES __attribute__((noinline, unused))
static void fastem_diag_fit_f32_pass(int squares, const float *restrict x, ptrdiff_t n,
                                     ptrdiff_t d, const float *restrict centre,
                                     const float *restrict w, ptrdiff_t k,
                                     const double *restrict log_norm,
                                     const double *restrict weights,
                                     const ptrdiff_t *restrict labels, int with_stats,
                                     double *restrict sums, double *restrict worst)
{
    const ptrdiff_t f = squares ? 2 * d : d + 1, kp = fastem_fit_padded(k);
    const ptrdiff_t ts = f + FASTEM_FIT_LANES;  /* a group's features, and room to transpose */
    float ln[FASTEM_FIT_WIDTH], centre_padded[FASTEM_FIT_WIDTH] = {0};
    fastem_v8f wb[f * kp], tt[FASTEM_FIT_GROUPS * ts], resp[FASTEM_FIT_GROUPS * kp];
    fastem_v8f acc[k + k * f];  /* s0 (k), then [s1 | s2] (k, f) */
    fastem_fit_likelihood like;
    for (int h = 0; h < 2; h++) {
        like.loglik[h] = like.mass[h] = (fastem_v4d) {0};
        like.lowest[h] = (fastem_v4d) {0} + INFINITY;
        like.row[h] = (fastem_v4l) {0} - 1;
    }
    memcpy(centre_padded, centre, d * sizeof(float));
    for (ptrdiff_t j = 0; j < f; j++)
        for (ptrdiff_t c = 0; c < kp; c++)
            wb[j * kp + c] = fastem_v8f_splat(c < k ? w[j * k + c] : 0.0f);
    for (ptrdiff_t c = 0; c < kp; c++)
        ln[c] = c < k ? (float) log_norm[c] : -INFINITY;
    for (ptrdiff_t j = 0; j < k + k * f; j++)
        acc[j] = (fastem_v8f) {0};
    for (ptrdiff_t i0 = 0; i0 < n; i0 += 8 * FASTEM_FIT_GROUPS) {
        /* each step for the four groups before the next: their dependency chains (sums of
         * f products, the maximum, exp and the sum over components) interleave, where
         * group by group they ran one after the other (0.93x time at D = K = 8) */
        for (int g = 0; g < FASTEM_FIT_GROUPS; g++) {
            if (i0 + 8 * g < n) {
                fastem_fit_group_log_prob(squares, x, i0 + 8 * g, n, d, k, centre_padded, wb,
                                          ln, labels, tt + g * ts, resp + g * kp);
                continue;
            }
            for (ptrdiff_t j = 0; j < f; j++)  /* past the chunk's end: adds nothing */
                tt[g * ts + j] = (fastem_v8f) {0};
            for (ptrdiff_t c = 0; c < k; c++)
                resp[g * kp + c] = (fastem_v8f) {0};
        }
        for (int g = 0; g < FASTEM_FIT_GROUPS && i0 + 8 * g < n; g++)
            fastem_fit_group_resp(i0 + 8 * g, n, f, k, weights, &like, tt + g * ts,
                                  resp + g * kp);
        if (!with_stats)
            continue;
        const fastem_v8f *restrict t0 = tt, *restrict t1 = tt + ts;
        const fastem_v8f *restrict t2 = tt + 2 * ts, *restrict t3 = tt + 3 * ts;
        for (ptrdiff_t c = 0; c < k; c++) {
            const fastem_v8f r0 = resp[c], r1 = resp[kp + c], r2 = resp[2 * kp + c];
            const fastem_v8f r3 = resp[3 * kp + c];
            fastem_v8f *restrict into = acc + k + c * f;
            acc[c] += (r0 + r1) + (r2 + r3);
#pragma GCC unroll 2
            for (ptrdiff_t j = 0; j < f; j++)
                into[j] += (r0 * t0[j] + r1 * t1[j]) + (r2 * t2[j] + r3 * t3[j]);
        }
        if ((i0 + 8 * FASTEM_FIT_GROUPS) % FASTEM_FIT_BLOCK == 0
                || i0 + 8 * FASTEM_FIT_GROUPS >= n)
            fastem_fit_flush(acc, k + k * f, sums + 2);
    }
    double lowest = INFINITY, loglik[8], mass[8];
    ptrdiff_t worst_row = -1;
    for (int r = 0; r < 8; r++) {
        const double value = like.lowest[r / 4][r % 4];
        const ptrdiff_t row = (ptrdiff_t) like.row[r / 4][r % 4];
        if (value < lowest || (value == lowest && lowest < INFINITY && row < worst_row)) {
            lowest = value;
            worst_row = row;
        }
        loglik[r] = like.loglik[r / 4][r % 4];
        mass[r] = like.mass[r / 4][r % 4];
    }
    sums[0] += ((loglik[0] + loglik[1]) + (loglik[2] + loglik[3]))
               + ((loglik[4] + loglik[5]) + (loglik[6] + loglik[7]));
    sums[1] += ((mass[0] + mass[1]) + (mass[2] + mass[3]))
               + ((mass[4] + mass[5]) + (mass[6] + mass[7]));
    worst[0] = lowest;
    worst[1] = (double) worst_row;
}

/* fastem_diag_fit_f32_pass with float32 results below the normal range (2^-126) flushed to
 * zero: MXCSR's FTZ bit, set for this thread and restored on return (the pass is a call, so
 * none of its arithmetic moves across the MXCSR writes). Over separated clusters, a row's
 * responsibility of a component ~e^-87 below its best (exp's least normal result) times the
 * row's scale, and such responsibilities times small features, are subnormal, and each
 * subnormal result costs the CPU a slow path: 5-7 % of a pass at 5e6 x 8 x 8 on real
 * parameters (benchmarks/README.md). Those terms are below float32's resolution in any sum
 * they belong to; a component whose every responsibility is that small gets s0 = 0, as one
 * whose exps are all below exp's range already did. */
__attribute__((unused))
static void fastem_diag_fit_f32(int squares, const float *restrict x, ptrdiff_t n, ptrdiff_t d,
                                const float *restrict centre, const float *restrict w,
                                ptrdiff_t k, const double *restrict log_norm,
                                const double *restrict weights,
                                const ptrdiff_t *restrict labels, int with_stats,
                                double *restrict sums, double *restrict worst)
{
#if defined(__SSE__)
    const unsigned int csr = _mm_getcsr();
    _mm_setcsr(csr | _MM_FLUSH_ZERO_ON);
#endif
    fastem_diag_fit_f32_pass(squares, x, n, d, centre, w, k, log_norm, weights, labels,
                             with_stats, sums, worst);
#if defined(__SSE__)
    _mm_setcsr(csr);
#endif
}

#endif
