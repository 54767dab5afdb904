/* Full and tied Gaussian components with missing entries (NaN, nan_policy="marginalize") in
 * the exponential-family form: the EXPFAM_FULL_MISSING and EXPFAM_TIED_MISSING kinds of
 * gaussian.pyx, in float64.
 *
 * With v = x - s (s the common centre) set to 0 at a row's missing entries m, delta = mu - s
 * and P the component's precision, the Schur complement gives the quadratic of the observed
 * entries' marginal as the complete-data quadratic of v minus a correction,
 *     (x_o - mu_o)' Sigma_oo^-1 (x_o - mu_o) = (v - delta)' P (v - delta) - g' P_mm^-1 g,
 *     g = (P (v - delta))_m = P_m. v - (P delta)_m,
 * and log det Sigma_oo = log det P_mm - log det P. So the complete-data kernel's two GEMMs run
 * on the zero-filled rows unchanged, and each row and component adds m d + m^2 flops: g, then
 * u = P_mm^-1 g by the Cholesky factor F of P_mm (|F^-1 g|^2 is the correction). The
 * conditional mean of the missing entries is E[v_m | x_o, k] = -u, so the M-step's moments of
 * the filled rows v - u (in the missing entries) are the complete-data ones of v plus
 *     s1 -= r u,   S -= r (v u' + u v'),   S_mm += r (u u' + P_mm^-1)
 * (v is 0 in the missing block), added per chunk into dense (d, d) accumulators.
 *
 * Patterns: rows are not sorted or grouped by pattern (at D = 16 and 10 % missing a chunk of
 * 1024 rows holds ~500 distinct ones): rows missing nothing add nothing, rows missing one
 * entry j take 1 / P_jj and log P_jj from tables packed per component, and the others
 * factorise P_mm per row (m^3/6 flops per component, less than g's m d while m < 6 d). Every
 * step of a row runs over the k components at once, in SIMD lanes: the parameters are packed
 * with the components innermost. Tied components share P: P_m. v and the factor are per row,
 * and the factor is reused by consecutive rows missing the same entries.
 */
#ifndef FASTEM_MARGINAL_H
#define FASTEM_MARGINAL_H

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "_simd.h"

#define FASTEM_LOG_2PI 1.8378770664093453

/* v (n, d) = x - s, 0 where x is NaN; row i misses the entries miss[offset[i]:offset[i + 1]]
 * (offset: n + 1 entries). */
static void fastem_marginal_rows(const double *x, ptrdiff_t n, ptrdiff_t d, const double *s,
                                 double *v, ptrdiff_t *offset, ptrdiff_t *miss)
{
    ptrdiff_t count = 0;
    for (ptrdiff_t i = 0; i < n; i++) {
        offset[i] = count;
        for (ptrdiff_t j = 0; j < d; j++) {
            const double value = x[i * d + j];
            if (value != value) {
                v[i * d + j] = 0.0;
                miss[count++] = j;
            } else {
                v[i * d + j] = value - s[j];
            }
        }
    }
    offset[n] = count;
}

/* a . b in four partial sums (the sums over components and entries of tied components, whose
 * terms do not fill SIMD lanes otherwise). */
static inline double fastem_dot(const double *a, const double *b, ptrdiff_t n)
{
    double s[4] = {0.0, 0.0, 0.0, 0.0};
    ptrdiff_t j = 0;
    for (; j + 4 <= n; j += 4)
        for (int l = 0; l < 4; l++)
            s[l] += a[j + l] * b[j + l];
    for (; j < n; j++)
        s[0] += a[j] * b[j];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

/* Whether rows a and b miss the same entries. */
static inline int fastem_same_pattern(const ptrdiff_t *offset, const ptrdiff_t *miss,
                                      ptrdiff_t a, ptrdiff_t b)
{
    const ptrdiff_t m = offset[a + 1] - offset[a];
    return m == offset[b + 1] - offset[b]
        && !memcmp(miss + offset[a], miss + offset[b], (size_t) m * sizeof *miss);
}

/* The packed parameters (kq = k for full, 1 for tied, whose components share P), laid out with
 * the components innermost so that every step runs over them in SIMD lanes:
 *   prec (d, d, kq): P_c[j, a] at (j d + a) kq + c;   pd (d, k): (P_c delta_c)_j at j k + c;
 *   inverse, log_diag (d, kq): 1 / P_c,jj and log P_c,jj, for rows missing one entry.
 * A row's u, and its factors F (m, m, kq), are laid out alike: entry r of component c at
 * r k + c. */
#if defined(__GNUC__)  /* so that `tied` is a constant in each caller's copy */
#define FASTEM_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define FASTEM_ALWAYS_INLINE static inline
#endif

/* F = the Cholesky factors of P_c's blocks on the entries mi (m of them) for kq lanes (lower
 * triangles); log_det (kq) their log-determinants when not NULL (the pivots' products taken
 * four at a time before each log: no overflow while pivots stay within 1e+-75); prod: kq. */
FASTEM_ALWAYS_INLINE void fastem_lanes_cholesky(const double *prec, ptrdiff_t d,
                                                ptrdiff_t kq, const ptrdiff_t *mi,
                                                ptrdiff_t m, double *F, double *log_det,
                                                double *prod)
{
    for (ptrdiff_t a = 0; a < m; a++)
        for (ptrdiff_t b = 0; b <= a; b++)
            memcpy(F + (a * m + b) * kq, prec + (mi[a] * d + mi[b]) * kq,
                   (size_t) kq * sizeof *F);
    for (ptrdiff_t c = 0; c < kq; c++)
        prod[c] = 1.0;
    if (log_det != NULL)
        memset(log_det, 0, (size_t) kq * sizeof *log_det);
    for (ptrdiff_t col = 0; col < m; col++) {
        double *pivot = F + (col * m + col) * kq;
        for (ptrdiff_t t = 0; t < col; t++) {
            const double *f = F + (col * m + t) * kq;
            for (ptrdiff_t c = 0; c < kq; c++)
                pivot[c] -= f[c] * f[c];
        }
        for (ptrdiff_t c = 0; c < kq; c++) {
            prod[c] *= pivot[c];
            pivot[c] = sqrt(pivot[c]);
        }
        if (log_det != NULL && (col % 4 == 3 || col == m - 1))
            for (ptrdiff_t c = 0; c < kq; c++) {
                log_det[c] += log(prod[c]);
                prod[c] = 1.0;
            }
        for (ptrdiff_t r = col + 1; r < m; r++) {
            double *out = F + (r * m + col) * kq;
            for (ptrdiff_t t = 0; t < col; t++) {
                const double *fr = F + (r * m + t) * kq, *fc = F + (col * m + t) * kq;
                for (ptrdiff_t c = 0; c < kq; c++)
                    out[c] -= fr[c] * fc[c];
            }
            for (ptrdiff_t c = 0; c < kq; c++)
                out[c] /= pivot[c];
        }
    }
}

/* g (m, k) = F^-1 g, then F'^-1 g, per lane (tied: one factor for all k); square (k) =
 * |F^-1 g|^2. */
FASTEM_ALWAYS_INLINE void fastem_lanes_solve(int tied, const double *F, ptrdiff_t m,
                                             ptrdiff_t k, double *g, double *square)
{
    const ptrdiff_t kq = tied ? 1 : k;
    memset(square, 0, (size_t) k * sizeof *square);
    for (ptrdiff_t r = 0; r < m; r++) {
        double *gr = g + r * k;
        for (ptrdiff_t t = 0; t < r; t++) {
            const double *f = F + (r * m + t) * kq, *gt = g + t * k;
            for (ptrdiff_t c = 0; c < k; c++)
                gr[c] -= f[tied ? 0 : c] * gt[c];
        }
        const double *pivot = F + (r * m + r) * kq;
        for (ptrdiff_t c = 0; c < k; c++) {
            gr[c] /= pivot[tied ? 0 : c];
            square[c] += gr[c] * gr[c];
        }
    }
    for (ptrdiff_t r = m - 1; r >= 0; r--) {
        double *gr = g + r * k;
        for (ptrdiff_t t = r + 1; t < m; t++) {
            const double *f = F + (t * m + r) * kq, *gt = g + t * k;
            for (ptrdiff_t c = 0; c < k; c++)
                gr[c] -= f[tied ? 0 : c] * gt[c];
        }
        const double *pivot = F + (r * m + r) * kq;
        for (ptrdiff_t c = 0; c < k; c++)
            gr[c] /= pivot[tied ? 0 : c];
    }
}

/* logp (n, k) += 1/2 g' P_mm^-1 g - 1/2 log det P_mm + m/2 log 2pi for each row with missing
 * entries, and u (see above) = P_mm^-1 g. work: d^2 kq + 3 k doubles. */
FASTEM_ALWAYS_INLINE void fastem_marginal_log_prob_of(
    int tied, const double *v, ptrdiff_t n, ptrdiff_t d, ptrdiff_t k, const ptrdiff_t *offset,
    const ptrdiff_t *miss, const double *prec, const double *pd, const double *inverse,
    const double *log_diag, double *u, double *work, double *logp)
{
    const ptrdiff_t kq = tied ? 1 : k;
    double *F = work, *square = F + d * d * kq, *log_det = square + k, *prod = log_det + k;
    for (ptrdiff_t i = 0, last = -1; i < n; i++) {
        const ptrdiff_t m = offset[i + 1] - offset[i], *mi = miss + offset[i];
        const double *vi = v + i * d;
        double *g = u + offset[i] * k;
        for (ptrdiff_t r = 0; r < m; r++) {  /* g = P_m. v - (P delta)_m */
            const double *q = prec + mi[r] * d * kq, *pdr = pd + mi[r] * k;
            double *gr = g + r * k, pv = tied ? fastem_dot(q, vi, d) : 0.0;
            for (ptrdiff_t c = 0; c < k; c++)
                gr[c] = pv - pdr[c];
            for (ptrdiff_t a = 0; !tied && a < d; a++)
                for (ptrdiff_t c = 0; c < k; c++)
                    gr[c] += q[a * k + c] * vi[a];
        }
        if (m == 1) {  /* the tables */
            const double *inv = inverse + mi[0] * kq, *ld = log_diag + mi[0] * kq;
            for (ptrdiff_t c = 0; c < k; c++) {
                const double q = g[c] * inv[tied ? 0 : c];
                logp[i * k + c] += 0.5 * (g[c] * q - ld[tied ? 0 : c] + FASTEM_LOG_2PI);
                g[c] = q;
            }
        } else if (m > 1) {
            if (!tied || last < 0 || !fastem_same_pattern(offset, miss, last, i)) {
                fastem_lanes_cholesky(prec, d, kq, mi, m, F, log_det, prod);
                last = i;
            }
            fastem_lanes_solve(tied, F, m, k, g, square);
            for (ptrdiff_t c = 0; c < k; c++)
                logp[i * k + c] += 0.5 * (square[c] - log_det[tied ? 0 : c]
                                          + (double) m * FASTEM_LOG_2PI);
        }
    }
}

FASTEM_TARGET_CLONES
static void fastem_marginal_log_prob(int tied, const double *v, ptrdiff_t n, ptrdiff_t d,
                                     ptrdiff_t k, const ptrdiff_t *offset, const ptrdiff_t *miss,
                                     const double *prec, const double *pd,
                                     const double *inverse, const double *log_diag, double *u,
                                     double *work, double *logp)
{
    if (tied)
        fastem_marginal_log_prob_of(1, v, n, d, k, offset, miss, prec, pd, inverse, log_diag, u,
                                    work, logp);
    else
        fastem_marginal_log_prob_of(0, v, n, d, k, offset, miss, prec, pd, inverse, log_diag, u,
                                    work, logp);
}

/* pinv (m, m, kq) = P_mm^-1 per lane from its factors F, through H = F^-1 (m, m, kq). */
FASTEM_ALWAYS_INLINE void fastem_lanes_inverse(const double *F, ptrdiff_t m, ptrdiff_t kq,
                                               double *H, double *pinv)
{
    for (ptrdiff_t col = 0; col < m; col++) {
        const double *pivot = F + (col * m + col) * kq;
        double *diag = H + (col * m + col) * kq;
        for (ptrdiff_t c = 0; c < kq; c++)
            diag[c] = 1.0 / pivot[c];
        for (ptrdiff_t r = col + 1; r < m; r++) {
            double *out = H + (r * m + col) * kq;
            memset(out, 0, (size_t) kq * sizeof *out);
            for (ptrdiff_t t = col; t < r; t++) {
                const double *f = F + (r * m + t) * kq, *h = H + (t * m + col) * kq;
                for (ptrdiff_t c = 0; c < kq; c++)
                    out[c] -= f[c] * h[c];
            }
            const double *pr = F + (r * m + r) * kq;
            for (ptrdiff_t c = 0; c < kq; c++)
                out[c] /= pr[c];
        }
    }
    for (ptrdiff_t a = 0; a < m; a++)
        for (ptrdiff_t b = 0; b <= a; b++) {
            double *out = pinv + (a * m + b) * kq;
            memset(out, 0, (size_t) kq * sizeof *out);
            for (ptrdiff_t t = a; t < m; t++) {
                const double *ha = H + (t * m + a) * kq, *hb = H + (t * m + b) * kq;
                for (ptrdiff_t c = 0; c < kq; c++)
                    out[c] += ha[c] * hb[c];
            }
            memcpy(pinv + (b * m + a) * kq, out, (size_t) kq * sizeof *out);
        }
}

/* The corrections of the statistics (see the top), with resp (n, k) the weighted
 * responsibilities and u from fastem_marginal_log_prob. Full: s12 (k, d + d(d+1)/2) rows
 * [s1, upper triangle of S row by row] (EXPFAM_FULL's layout); tied: s1 (k, d), then the
 * pooled S (d, d) (EXPFAM_TIED's). Accumulated per chunk in work (2 d k + 5 d^2 k doubles):
 * s1's (d, k), sum r u v' (rows m) and the missing blocks' sum r (u u' + P_mm^-1), (d, d, kq)
 * each (tied: pooled over the components), then a row's factors, F^-1, P_mm^-1 and (tied)
 * r_c u_c (m, k). */
FASTEM_ALWAYS_INLINE void fastem_marginal_stats_of(
    int tied, const double *v, ptrdiff_t n, ptrdiff_t d, ptrdiff_t k, const ptrdiff_t *offset,
    const ptrdiff_t *miss, const double *prec, const double *inverse, const double *resp,
    const double *u, double *work, double *s12)
{
    const ptrdiff_t kq = tied ? 1 : k, f = tied ? d : d + d * (d + 1) / 2;
    double *first = work, *cross = first + d * k, *block = cross + d * d * kq;
    double *F = block + d * d * kq, *H = F + d * d * kq, *pinv = H + d * d * kq;
    double *ru = pinv + d * d * kq;
    memset(work, 0, (size_t) (d * k + 2 * d * d * kq) * sizeof *work);
    for (ptrdiff_t i = 0, last = -1; i < n; i++) {
        const ptrdiff_t m = offset[i + 1] - offset[i], *mi = miss + offset[i];
        const double *vi = v + i * d, *r = resp + i * k, *ui = u + offset[i] * k;
        if (m == 0)
            continue;
        const double *p_mm = m == 1 ? inverse + mi[0] * kq : pinv;  /* P_mm^-1 */
        if (m > 1 && (!tied || last < 0 || !fastem_same_pattern(offset, miss, last, i))) {
            fastem_lanes_cholesky(prec, d, kq, mi, m, F, NULL, H);
            fastem_lanes_inverse(F, m, kq, H, pinv);
            last = i;
        }
        for (ptrdiff_t a = 0; a < m; a++) {  /* s1 -= r u */
            double *s1 = first + mi[a] * k, *rua = ru + a * k;
            const double *ua = ui + a * k;
            for (ptrdiff_t c = 0; c < k; c++) {
                rua[c] = r[c] * ua[c];
                s1[c] -= rua[c];
            }
        }
        if (tied) {  /* pooled: sum_c r_c P_mm^-1 = w P_mm^-1, w the row's weight */
            double w = 0.0;
            for (ptrdiff_t c = 0; c < k; c++)
                w += r[c];
            for (ptrdiff_t a = 0; a < m; a++) {
                const double *rua = ru + a * k;
                for (ptrdiff_t b = 0; b < m; b++)  /* S_mm += sum_c r_c u_c u_c' + w P_mm^-1 */
                    block[mi[a] * d + mi[b]] += w * p_mm[a * m + b]
                        + fastem_dot(rua, ui + b * k, k);
                const double wa = fastem_dot(r, ui + a * k, k);
                double *out = cross + mi[a] * d;  /* S_m. -= sum_c r_c u_c v' */
                for (ptrdiff_t b = 0; b < d; b++)
                    out[b] += wa * vi[b];
            }
            continue;
        }
        for (ptrdiff_t a = 0; a < m; a++) {
            const double *rua = ru + a * k;
            for (ptrdiff_t b = 0; b < m; b++) {  /* S_mm += r (u u' + P_mm^-1) */
                const double *ub = ui + b * k, *pab = p_mm + (a * m + b) * k;
                double *out = block + (mi[a] * d + mi[b]) * k;
                for (ptrdiff_t c = 0; c < k; c++)
                    out[c] += rua[c] * ub[c] + r[c] * pab[c];
            }
            for (ptrdiff_t b = 0; b < d; b++) {  /* S_m. -= r u v' */
                double *out = cross + (mi[a] * d + b) * k;
                for (ptrdiff_t c = 0; c < k; c++)
                    out[c] += rua[c] * vi[b];
            }
        }
    }
    for (ptrdiff_t c = 0; c < k; c++)
        for (ptrdiff_t j = 0; j < d; j++)
            s12[c * f + j] += first[j * k + c];
    for (ptrdiff_t c = 0; c < kq; c++) {
        double *s = s12 + (tied ? k * d : c * f + d);
        for (ptrdiff_t a = 0; a < d; a++)
            for (ptrdiff_t b = tied ? 0 : a; b < d; b++)  /* tied: all of S; full: a <= b */
                *s++ += block[(a * d + b) * kq + c] - cross[(a * d + b) * kq + c]
                    - cross[(b * d + a) * kq + c];
    }
}

FASTEM_TARGET_CLONES
static void fastem_marginal_stats(int tied, const double *v, ptrdiff_t n, ptrdiff_t d,
                                  ptrdiff_t k, const ptrdiff_t *offset, const ptrdiff_t *miss,
                                  const double *prec, const double *inverse,
                                  const double *resp, const double *u, double *work,
                                  double *s12)
{
    if (tied)
        fastem_marginal_stats_of(1, v, n, d, k, offset, miss, prec, inverse, resp, u, work, s12);
    else
        fastem_marginal_stats_of(0, v, n, d, k, offset, miss, prec, inverse, resp, u, work, s12);
}

#endif
