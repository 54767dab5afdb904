/* Vectorisable exp for the E-step's log-sum-exp: a[i, j] = exp(a[i, j] - shift[i]).
 *
 * libm's exp costs ~5 ns per value and dominated the diagonal E-step; this loop has no branches
 * or calls, so the compiler vectorises it (an AVX2 clone is selected at run time where the CPU
 * has it; no FMA, so every clone rounds identically and results do not depend on the machine).
 * Method: Cody-Waite reduction x = k ln2 + r, |r| <= ln2/2, with fdlibm's split ln2; Taylor
 * series of degree 13 for exp(r) (truncation < 5e-18 relative), evaluated by Estrin's scheme
 * (short dependency chains, ~2x faster than Horner's); scaling by 2^k built in the
 * exponent bits. Arguments are <= 0 here (shifted by the row maximum); results below 2^-1022,
 * i.e. arguments below -708, are returned as 0 (they change no sum of these rows).
 */
#ifndef FASTEM_VEXP_H
#define FASTEM_VEXP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fastem/_kernels/_simd.h"

FASTEM_TARGET_CLONES
static void fastem_exp_rows(double *a, ptrdiff_t n, ptrdiff_t k, const double *shift)
{
    const double log2e = 1.44269504088896338700e+00;
    const double ln2_hi = 6.93147180369123816490e-01;  /* k * ln2_hi is exact for |k| < 2^11 */
    const double ln2_lo = 1.90821492927058770002e-10;
    const double magic = 6755399441055744.0;           /* 1.5 * 2^52: rounds to an integer */
    int64_t magic_bits;
    memcpy(&magic_bits, &magic, sizeof magic_bits);
    for (ptrdiff_t i = 0; i < n; i++) {
        double *row = a + i * k;
        const double s = shift[i];
        for (ptrdiff_t j = 0; j < k; j++) {
            const double arg = row[j] - s;
            const double x = arg > -708.0 ? arg : -708.0;
            const double t = x * log2e + magic;
            const double kf = t - magic;
            int64_t ki;
            memcpy(&ki, &t, sizeof ki);
            ki -= magic_bits;
            const double r = (x - kf * ln2_hi) - kf * ln2_lo;
            /* sum_{i <= 13} r^i / i! by Estrin's scheme: depth 8 instead of Horner's 26 */
            const double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
            const double w0 = (1.0 + r) + (1.0 / 2.0 + r * (1.0 / 6.0)) * r2;
            const double w1 = (1.0 / 24.0 + r * (1.0 / 120.0))
                              + (1.0 / 720.0 + r * (1.0 / 5040.0)) * r2;
            const double w2 = (1.0 / 40320.0 + r * (1.0 / 362880.0))
                              + (1.0 / 3628800.0 + r * (1.0 / 39916800.0)) * r2;
            const double w3 = 1.0 / 479001600.0 + r * (1.0 / 6227020800.0);
            const double p = (w0 + w1 * r4) + (w2 + w3 * r4) * r8;
            const int64_t bits = (ki + 1023) << 52;
            double scale;
            memcpy(&scale, &bits, sizeof scale);
            const double value = p * scale;
            row[j] = arg > -708.0 ? value : 0.0;            /* also -inf and NaN */
        }
    }
}

#endif
