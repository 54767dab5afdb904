/* Vectorisable exp and log for the E-step's log-sum-exp: a[i, j] = exp(a[i, j] - shift[i]), and
 * the log of each row's sum.
 *
 * libm's exp costs ~5 ns per value and dominated the diagonal E-step; these loops have no branches
 * or calls, so the compiler vectorises them (an AVX2 clone is selected at run time where the CPU
 * has it; no FMA, so every clone rounds identically and results do not depend on the machine).
 * exp: Cody-Waite reduction x = k ln2 + r, |r| <= ln2/2, with fdlibm's split ln2; Taylor
 * series of degree 13 for exp(r) (truncation < 5e-18 relative), evaluated by Estrin's scheme
 * (short dependency chains, ~2x faster than Horner's); scaling by 2^k built in the
 * exponent bits. Arguments are <= 0 here (shifted by the row maximum); results below 2^-1022,
 * i.e. arguments below -708, are returned as 0 (they change no sum of these rows). For float32
 * data (whose log-densities carry float32 rounding, ~1e-7 relative) the series stops at degree
 * 7 (truncation < 5.2e-9 relative), a third fewer operations.
 * log (of a row's sum, >= 1): x = 2^e m with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(z),
 * z = (m - 1) / (m + 1), |z| < 0.172, by its odd series to z^23 (truncation < 1e-18 relative);
 * libm's log, one call per row, cost as much as the exps of a row at K = 8.
 */
#ifndef FASTEM_VEXP_H
#define FASTEM_VEXP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fastem/_kernels/_simd.h"

/* exp(arg) for arg <= 0 (0 below -708, also for -inf and NaN); `short_series`: degree 7. */
static inline __attribute__((always_inline)) double fastem_exp_nonpositive(double arg,
                                                                           int short_series)
{
    const double log2e = 1.44269504088896338700e+00;
    const double ln2_hi = 6.93147180369123816490e-01;  /* k * ln2_hi is exact for |k| < 2^11 */
    const double ln2_lo = 1.90821492927058770002e-10;
    const double magic = 6755399441055744.0;           /* 1.5 * 2^52: rounds to an integer */
    int64_t magic_bits, ki;
    memcpy(&magic_bits, &magic, sizeof magic_bits);
    const double x = arg > -708.0 ? arg : -708.0;
    const double t = x * log2e + magic;
    const double kf = t - magic;
    memcpy(&ki, &t, sizeof ki);
    ki -= magic_bits;
    const double r = (x - kf * ln2_hi) - kf * ln2_lo;
    /* sum_{i <= 13} r^i / i! by Estrin's scheme: depth 8 instead of Horner's 26 */
    const double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    const double w0 = (1.0 + r) + (1.0 / 2.0 + r * (1.0 / 6.0)) * r2;
    const double w1 = (1.0 / 24.0 + r * (1.0 / 120.0))
                      + (1.0 / 720.0 + r * (1.0 / 5040.0)) * r2;
    double p = w0 + w1 * r4;
    if (!short_series) {
        const double w2 = (1.0 / 40320.0 + r * (1.0 / 362880.0))
                          + (1.0 / 3628800.0 + r * (1.0 / 39916800.0)) * r2;
        const double w3 = 1.0 / 479001600.0 + r * (1.0 / 6227020800.0);
        p = p + (w2 + w3 * r4) * r8;
    }
    const int64_t bits = (ki + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    const double value = p * scale;
    return arg > -708.0 ? value : 0.0;
}

#define FASTEM_DEFINE_EXP_ROWS(NAME, SHORT)                                                   \
FASTEM_TARGET_CLONES __attribute__((unused))  /* not every includer takes both */           \
static void NAME(double *a, ptrdiff_t n, ptrdiff_t k, const double *shift)                    \
{                                                                                             \
    for (ptrdiff_t i = 0; i < n; i++) {                                                       \
        double *row = a + i * k;                                                              \
        const double s = shift[i];                                                            \
        for (ptrdiff_t j = 0; j < k; j++)                                                     \
            row[j] = fastem_exp_nonpositive(row[j] - s, SHORT);                               \
    }                                                                                         \
}

FASTEM_DEFINE_EXP_ROWS(fastem_exp_rows, 0)
FASTEM_DEFINE_EXP_ROWS(fastem_exp_rows_short, 1)

/* log(x) for a finite x >= 1 (a row's sum of exps, whose largest term is 1). Unsigned shifts and
 * the exponent converted through 2^52 (not an int64 -> double conversion): AVX2 has neither an
 * arithmetic 64-bit shift nor that conversion, and the loop would not vectorise. */
static inline __attribute__((always_inline)) double fastem_log_sum(double x)
{
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    const double two52 = 4503599627370496.0;
    uint64_t bits, two52_bits;
    memcpy(&bits, &x, sizeof bits);
    memcpy(&two52_bits, &two52, sizeof two52_bits);
    /* m in [sqrt(1/2), sqrt(2)): e is the exponent of x / sqrt(1/2), >= 0 for x >= 1 */
    const uint64_t e = (bits - 0x3fe6a09e667f3bcdULL) >> 52;
    bits -= e << 52;
    double m, ef;
    memcpy(&m, &bits, sizeof m);
    const uint64_t e_bits = two52_bits + e;
    memcpy(&ef, &e_bits, sizeof ef);
    ef -= two52;
    const double z = (m - 1.0) / (m + 1.0), w = z * z, w2 = w * w, w4 = w2 * w2, w8 = w4 * w4;
    /* sum_{i <= 11} w^i / (2i + 1) by Estrin's scheme */
    const double q0 = (1.0 + w * (1.0 / 3.0)) + (1.0 / 5.0 + w * (1.0 / 7.0)) * w2;
    const double q1 = (1.0 / 9.0 + w * (1.0 / 11.0)) + (1.0 / 13.0 + w * (1.0 / 15.0)) * w2;
    const double q2 = (1.0 / 17.0 + w * (1.0 / 19.0)) + (1.0 / 21.0 + w * (1.0 / 23.0)) * w2;
    const double q = (q0 + q1 * w4) + q2 * w8;
    return ef * ln2_hi + (2.0 * z * q + ef * ln2_lo);
}

#endif
