/* Full (and tied) Gaussian components with missing entries (NaN, nan_policy="marginalize"):
 * the FULL_MISSING kind of gaussian.pyx, in float64.
 *
 * A row's observed entries o and missing entries m split each precision P = L L' (Cholesky L,
 * as packed) into blocks. With y = x - mu_k and the missing entries filled by their
 * conditional offset given the observed ones (the regression of missing on observed),
 *     yhat_m = -P_mm^-1 P_mo y_o          (E[x_m | x_o, k] = mu_m + yhat_m),
 * the marginal density of the observed entries is (Schur complement: Sigma_oo^-1 =
 * P_oo - P_om P_mm^-1 P_mo, and det Sigma_oo = det Sigma det P_mm)
 *     log N(x_o) = log det L - |o|/2 log 2pi - 1/2 log det P_mm - 1/2 |yhat' L|^2,
 * and EM's M-step takes the conditional moments: x_hat = mu + yhat and, in the missing block,
 * the conditional covariance P_mm^-1 added to the scatter (Ghahramani & Jordan 1994). With few
 * missing entries P_mm is small, so this is cheaper than factorising Sigma_oo.
 *
 * Rows are grouped by missingness pattern inside a chunk (sorted by pattern), so that each
 * pattern's factorisation of P_mm (and the regression B = P_mm^-1 P_mo) is done once per chunk
 * and component; complete rows form one group with nothing to factorise.
 */
#ifndef FASTEM_CONDITIONAL_H
#define FASTEM_CONDITIONAL_H

#include <math.h>
#include <stddef.h>
#include <string.h>

/* Whether rows a and b of x (n, d) have different patterns, and which sorts first. */
static inline int fastem_pattern_cmp(const double *x, ptrdiff_t d, ptrdiff_t a, ptrdiff_t b)
{
    for (ptrdiff_t j = 0; j < d; j++) {
        const int ma = x[a * d + j] != x[a * d + j], mb = x[b * d + j] != x[b * d + j];
        if (ma != mb)
            return ma - mb;
    }
    return 0;
}

/* order (n,): the rows sorted by pattern (Shell sort, stable enough: ties keep no order). */
static void fastem_pattern_order(const double *x, ptrdiff_t n, ptrdiff_t d, ptrdiff_t *order)
{
    for (ptrdiff_t i = 0; i < n; i++)
        order[i] = i;
    for (ptrdiff_t gap = n / 2; gap > 0; gap /= 2)
        for (ptrdiff_t i = gap; i < n; i++) {
            const ptrdiff_t row = order[i];
            ptrdiff_t j = i;
            for (; j >= gap && fastem_pattern_cmp(x, d, order[j - gap], row) > 0; j -= gap)
                order[j] = order[j - gap];
            order[j] = row;
        }
}

/* The missing block of P (m, m) of the pattern of `row`, Cholesky-factorised in place
 * (lower); returns log det P_mm and writes the missing entries' indices to miss (m). */
static double fastem_missing_block(const double *x, ptrdiff_t d, ptrdiff_t row,
                                   const double *prec, ptrdiff_t *miss, ptrdiff_t *m_out,
                                   double *a)
{
    ptrdiff_t m = 0;
    for (ptrdiff_t j = 0; j < d; j++)
        if (x[row * d + j] != x[row * d + j])
            miss[m++] = j;
    for (ptrdiff_t r = 0; r < m; r++)
        for (ptrdiff_t c = 0; c < m; c++)
            a[r * m + c] = prec[miss[r] * d + miss[c]];
    double log_det = 0.0;
    for (ptrdiff_t c = 0; c < m; c++) {  /* Cholesky, column by column */
        double diag = a[c * m + c];
        for (ptrdiff_t t = 0; t < c; t++)
            diag -= a[c * m + t] * a[c * m + t];
        diag = sqrt(diag);
        a[c * m + c] = diag;
        log_det += 2.0 * log(diag);
        for (ptrdiff_t r = c + 1; r < m; r++) {
            double v = a[r * m + c];
            for (ptrdiff_t t = 0; t < c; t++)
                v -= a[r * m + t] * a[c * m + t];
            a[r * m + c] = v / diag;
        }
    }
    *m_out = m;
    return log_det;
}

/* Solve G G' v = b in place (G lower, m x m). */
static void fastem_cholesky_solve(const double *g, ptrdiff_t m, double *v)
{
    for (ptrdiff_t r = 0; r < m; r++) {
        for (ptrdiff_t t = 0; t < r; t++)
            v[r] -= g[r * m + t] * v[t];
        v[r] /= g[r * m + r];
    }
    for (ptrdiff_t r = m - 1; r >= 0; r--) {
        for (ptrdiff_t t = r + 1; t < m; t++)
            v[r] -= g[t * m + r] * v[t];
        v[r] /= g[r * m + r];
    }
}

/* logp (n, k) = log p(x_o, z = c) and fill (n, k, d) = yhat for every row and component.
 * chol, prec: (k, d, d) row-major L_c and P_c; means (k, d); log_norm (k,) log w_c + log det
 * L_c - d/2 log 2pi. order (n): the rows sorted by pattern (fastem_pattern_order). work:
 * (2 d^2 + d) doubles, miss (d). */
static void fastem_conditional_log_prob(const double *x, ptrdiff_t n, ptrdiff_t d,
                                        ptrdiff_t k, const double *chol, const double *prec,
                                        const double *means, const double *log_norm,
                                        const ptrdiff_t *order, double *fill, double *work,
                                        ptrdiff_t *miss, double *logp)
{
    double *a = work, *b = work + d * d, *v = work + 2 * d * d;
    for (ptrdiff_t start = 0, stop; start < n; start = stop) {
        for (stop = start + 1; stop < n && !fastem_pattern_cmp(x, d, order[start], order[stop]);
             stop++)
            ;
        for (ptrdiff_t c = 0; c < k; c++) {
            const double *p = prec + c * d * d, *l = chol + c * d * d, *mu = means + c * d;
            ptrdiff_t m;
            const double log_det = fastem_missing_block(x, d, order[start], p, miss, &m, a);
            /* b (m, d) = P_mm^-1 P_m. (its observed columns are the regression) */
            for (ptrdiff_t j = 0; j < d; j++) {
                for (ptrdiff_t r = 0; r < m; r++)
                    v[r] = p[miss[r] * d + j];
                fastem_cholesky_solve(a, m, v);
                for (ptrdiff_t r = 0; r < m; r++)
                    b[r * d + j] = v[r];
            }
            const double constant = log_norm[c] + 0.5 * (double) m * log(2.0 * M_PI)
                - 0.5 * log_det;
            for (ptrdiff_t s = start; s < stop; s++) {
                const ptrdiff_t i = order[s];
                double *y = fill + (i * k + c) * d;
                for (ptrdiff_t j = 0; j < d; j++)
                    y[j] = x[i * d + j] == x[i * d + j] ? x[i * d + j] - mu[j] : 0.0;
                for (ptrdiff_t r = 0; r < m; r++) {  /* yhat_m = -B_mo y_o (y_m is 0 here) */
                    double t = 0.0;
                    for (ptrdiff_t j = 0; j < d; j++)
                        t += b[r * d + j] * y[j];
                    v[r] = -t;
                }
                for (ptrdiff_t r = 0; r < m; r++)
                    y[miss[r]] = v[r];
                double quad = 0.0;  /* |yhat' L|^2 (L triangular, upper or lower) */
                for (ptrdiff_t j = 0; j < d; j++) {
                    double t = 0.0;
                    for (ptrdiff_t r = 0; r < d; r++)
                        t += y[r] * l[r * d + j];
                    quad += t * t;
                }
                const double value = constant - 0.5 * quad;
                logp[i * k + c] = value == value ? value : -INFINITY;
            }
        }
    }
}

/* Statistics of FULL_MISSING, centred on the means: s1 (k, d) += sum_i r_ic yhat_ic and the
 * lower triangles of s2 (k, d, d) += sum_i r_ic (yhat_ic yhat_ic' + P_mm^-1 in the missing
 * block), from fill and the weighted responsibilities resp (n, k). */
static void fastem_conditional_stats(const double *x, ptrdiff_t n, ptrdiff_t d, ptrdiff_t k,
                                     const double *prec, const ptrdiff_t *order,
                                     const double *fill, const double *resp, double *work,
                                     ptrdiff_t *miss, double *s1, double *s2)
{
    double *a = work, *v = work + 2 * d * d;
    for (ptrdiff_t i = 0; i < n; i++)
        for (ptrdiff_t c = 0; c < k; c++) {
            const double r = resp[i * k + c];
            if (r == 0.0)
                continue;
            const double *y = fill + (i * k + c) * d;
            double *first = s1 + c * d, *second = s2 + c * d * d;
            for (ptrdiff_t j = 0; j < d; j++) {
                const double ry = r * y[j];
                first[j] += ry;
                for (ptrdiff_t t = 0; t <= j; t++)
                    second[j * d + t] += ry * y[t];
            }
        }
    for (ptrdiff_t start = 0, stop; start < n; start = stop) {
        for (stop = start + 1; stop < n && !fastem_pattern_cmp(x, d, order[start], order[stop]);
             stop++)
            ;
        for (ptrdiff_t c = 0; c < k; c++) {
            double mass = 0.0;
            for (ptrdiff_t s = start; s < stop; s++)
                mass += resp[order[s] * k + c];
            ptrdiff_t m;
            fastem_missing_block(x, d, order[start], prec + c * d * d, miss, &m, a);
            if (mass == 0.0 || m == 0)
                continue;
            for (ptrdiff_t col = 0; col < m; col++) {  /* column col of P_mm^-1 */
                for (ptrdiff_t r = 0; r < m; r++)
                    v[r] = r == col;
                fastem_cholesky_solve(a, m, v);
                for (ptrdiff_t r = 0; r < m; r++)
                    if (miss[r] >= miss[col])
                        s2[c * d * d + miss[r] * d + miss[col]] += mass * v[r];
            }
        }
    }
}

#endif
