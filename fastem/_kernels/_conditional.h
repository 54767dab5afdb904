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
 * pattern's Cholesky factorisation of P_mm (and log det P_mm) is done once per chunk and
 * component; each row then costs m d + m^2 for its regression. Complete rows form one group
 * with nothing to factorise.
 */
#ifndef FASTEM_CONDITIONAL_H
#define FASTEM_CONDITIONAL_H

#include <math.h>
#include <stddef.h>
#include <string.h>

/* keys (n,): bit j of row i's key set where x_ij is missing (j < 64; wider rows compare the
 * rest entry by entry, fastem_pattern_cmp). */
static void fastem_pattern_keys(const double *x, ptrdiff_t n, ptrdiff_t d,
                                unsigned long long *keys)
{
    for (ptrdiff_t i = 0; i < n; i++) {
        unsigned long long key = 0;
        for (ptrdiff_t j = 0; j < (d < 64 ? d : 64); j++)
            key |= (unsigned long long) (x[i * d + j] != x[i * d + j]) << j;
        keys[i] = key;
    }
}

/* The order of rows a and b by pattern: their keys, then (d > 64) the other entries. */
static inline int fastem_pattern_cmp(const double *x, ptrdiff_t d,
                                     const unsigned long long *keys, ptrdiff_t a, ptrdiff_t b)
{
    if (keys[a] != keys[b])
        return keys[a] < keys[b] ? -1 : 1;
    for (ptrdiff_t j = 64; j < d; j++) {
        const int ma = x[a * d + j] != x[a * d + j], mb = x[b * d + j] != x[b * d + j];
        if (ma != mb)
            return ma - mb;
    }
    return 0;
}

/* order (n,): the rows sorted by pattern (Shell sort), from their keys. */
static void fastem_pattern_order(const double *x, ptrdiff_t n, ptrdiff_t d,
                                 unsigned long long *keys, ptrdiff_t *order)
{
    fastem_pattern_keys(x, n, d, keys);
    for (ptrdiff_t i = 0; i < n; i++)
        order[i] = i;
    for (ptrdiff_t gap = n / 2; gap > 0; gap /= 2)
        for (ptrdiff_t i = gap; i < n; i++) {
            const ptrdiff_t row = order[i];
            ptrdiff_t j = i;
            for (; j >= gap && fastem_pattern_cmp(x, d, keys, order[j - gap], row) > 0; j -= gap)
                order[j] = order[j - gap];
            order[j] = row;
        }
}

/* The end of the group of rows with the pattern of order[start]. */
static inline ptrdiff_t fastem_group_end(const double *x, ptrdiff_t n, ptrdiff_t d,
                                         const unsigned long long *keys,
                                         const ptrdiff_t *order, ptrdiff_t start)
{
    ptrdiff_t stop = start + 1;
    while (stop < n && !fastem_pattern_cmp(x, d, keys, order[start], order[stop]))
        stop++;
    return stop;
}

/* miss (m,): the missing entries of `row`; returns m. */
static ptrdiff_t fastem_missing_entries(const double *x, ptrdiff_t d, ptrdiff_t row,
                                        ptrdiff_t *miss)
{
    ptrdiff_t m = 0;
    for (ptrdiff_t j = 0; j < d; j++)
        if (x[row * d + j] != x[row * d + j])
            miss[m++] = j;
    return m;
}

/* a (m, m) = the Cholesky factor (lower) of P's block on the entries miss; returns
 * log det P_mm. */
static double fastem_missing_block(const double *prec, ptrdiff_t d, const ptrdiff_t *miss,
                                   ptrdiff_t m, double *a)
{
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

/* fill (n, k, d) = yhat for every row and component, and logp (n, k) = log p(x_o, z = c)
 * without its quadratic term -|yhat' L_c|^2 / 2 (gaussian.pyx adds it, one GEMM per
 * component). prec: (k, d, d) row-major P_c; means (k, d); log_norm (k,) log w_c + log det L_c
 * - d/2 log 2pi. keys, order: fastem_pattern_order's. work: (2 d^2 + d) doubles, miss (d). */
static void fastem_conditional_fill(const double *x, ptrdiff_t n, ptrdiff_t d, ptrdiff_t k,
                                    const double *prec, const double *means,
                                    const double *log_norm, const unsigned long long *keys,
                                    const ptrdiff_t *order, double *fill, double *work,
                                    ptrdiff_t *miss, double *logp)
{
    double *a = work, *v = work + 2 * d * d;
    for (ptrdiff_t start = 0, stop; start < n; start = stop) {
        stop = fastem_group_end(x, n, d, keys, order, start);
        const ptrdiff_t m = fastem_missing_entries(x, d, order[start], miss);
        for (ptrdiff_t c = 0; c < k; c++) {
            const double *p = prec + c * d * d, *mu = means + c * d;
            const double log_det = fastem_missing_block(p, d, miss, m, a);
            const double constant = log_norm[c] + 0.5 * (double) m * log(2.0 * M_PI)
                - 0.5 * log_det;
            for (ptrdiff_t s = start; s < stop; s++) {
                const ptrdiff_t i = order[s];
                double *y = fill + (i * k + c) * d;
                for (ptrdiff_t j = 0; j < d; j++)
                    y[j] = x[i * d + j] == x[i * d + j] ? x[i * d + j] - mu[j] : 0.0;
                /* yhat_m = -P_mm^-1 (P_mo y_o), y_m being 0 here */
                for (ptrdiff_t r = 0; r < m; r++) {
                    const double *row = p + miss[r] * d;
                    double t = 0.0;
                    for (ptrdiff_t j = 0; j < d; j++)
                        t -= row[j] * y[j];
                    v[r] = t;
                }
                fastem_cholesky_solve(a, m, v);
                for (ptrdiff_t r = 0; r < m; r++)
                    y[miss[r]] = v[r];
                logp[i * k + c] = constant;
            }
        }
    }
}

/* The conditional covariances of FULL_MISSING's statistics: the lower triangles of s2
 * (k, d, d) += sum_i r_ic P_mm^-1 in each row's missing block (resp (n, k) weighted
 * responsibilities; keys, order, work, miss as for fastem_conditional_fill). */
static void fastem_conditional_covariance(const double *x, ptrdiff_t n, ptrdiff_t d,
                                          ptrdiff_t k, const double *prec,
                                          const unsigned long long *keys,
                                          const ptrdiff_t *order, const double *resp,
                                          double *work, ptrdiff_t *miss, double *s2)
{
    double *a = work, *v = work + 2 * d * d;
    for (ptrdiff_t start = 0, stop; start < n; start = stop) {
        stop = fastem_group_end(x, n, d, keys, order, start);
        const ptrdiff_t m = fastem_missing_entries(x, d, order[start], miss);
        for (ptrdiff_t c = 0; c < k; c++) {
            double mass = 0.0;
            for (ptrdiff_t s = start; s < stop; s++)
                mass += resp[order[s] * k + c];
            if (mass == 0.0 || m == 0)
                continue;
            fastem_missing_block(prec + c * d * d, d, miss, m, a);
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
