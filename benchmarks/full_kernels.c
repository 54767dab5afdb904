/* The full exponential-family kernels of one chunk (_features.h, _full.h) alone, in C: per
 * row, the minimum over REPS of t(x), the log-densities (float32 with K <= 16: fused with the
 * responsibilities), the responsibilities' conversion and the statistics, for each chunk size
 * given, the sizes taking turns rep by rep so that a noisy host reaches all alike.
 *
 *   gcc -O3 -I. -o /tmp/full_kernels benchmarks/full_kernels.c -lm
 *   /tmp/full_kernels DTYPE D K REPS ROWS...      e.g. float32 16 16 1000 1024 1008
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fastem/_kernels/_features.h"
#include "fastem/_kernels/_full.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 6 || argc > 13) {
        fprintf(stderr, "usage: %s float32|float64 D K REPS ROWS... (up to 8)\n", argv[0]);
        return 2;
    }
    const int f64 = strcmp(argv[1], "float64") == 0;
    const ptrdiff_t d = atol(argv[2]), k = atol(argv[3]), f = d + d * (d + 1) / 2;
    const int reps = atoi(argv[4]), m = argc - 5;
    ptrdiff_t rows[8], most = 0;
    for (int j = 0; j < m; j++)
        most = (rows[j] = atol(argv[5 + j])) > most ? rows[j] : most;
    const size_t size = f64 ? sizeof(double) : sizeof(float);
    double *log_norm = malloc(k * sizeof(double)), *resp = malloc(most * k * sizeof(double));
    double *lse = malloc(most * sizeof(double)), *s = calloc(k * f, sizeof(double));
    char *x = malloc(most * d * size), *centre = calloc(d, size), *w = malloc(f * k * size);
    char *r = malloc(most * k * size), *t = aligned_alloc(64, (f * most * size + 63) / 64 * 64);
    char *scratch = malloc(((most + 7) * (k + 3) + 8) * size);  /* the lane tiles' sums */
    srand(1);
    for (ptrdiff_t c = 0; c < k; c++)
        log_norm[c] = -1.0 * c;
    for (ptrdiff_t i = 0; i < most * d + f * k; i++) {
        const double v = (rand() / (double)RAND_MAX - 0.5) * (i < most * d ? 1.0 : 0.01);
        char *p = i < most * d ? x + i * size : w + (i - most * d) * size;
        if (f64)
            *(double *)p = v;
        else
            *(float *)p = (float)v;
    }
    double best[8][4];
    for (int j = 0; j < m; j++)
        for (int q = 0; q < 4; q++)
            best[j][q] = 1e9;
    for (int rep = 0; rep < reps; rep++)
        for (int j = 0; j < m; j++) {
            const ptrdiff_t n = rows[j];
            double time[5];
            time[0] = now();
            if (f64) {
                fastem_features_f64(1, (double *)x, n, d, (double *)centre, (double *)t);
                time[1] = now();
                fastem_full_log_prob_f64((double *)t, n, f, (double *)w, k, log_norm, resp,
                                         (double *)scratch);
                time[2] = now();
                for (ptrdiff_t q = 0; q < n * k; q++)
                    ((double *)r)[q] = 1.0 / k;
                time[3] = now();
                fastem_full_stats_f64((double *)t, n, f, (double *)r, k, s);
            } else {
                fastem_features_f32(1, (float *)x, n, d, (float *)centre, (float *)t);
                time[1] = now();
                if (k <= 16)
                    fastem_full32_fit((float *)t, n, f, (float *)w, k, log_norm, resp, lse);
                else
                    fastem_full_log_prob_f32((float *)t, n, f, (float *)w, k, log_norm, resp,
                                             (float *)scratch);
                time[2] = now();
                for (ptrdiff_t q = 0; q < n * k; q++)
                    ((float *)r)[q] = (float)resp[q];
                time[3] = now();
                fastem_full_stats_f32((float *)t, n, f, (float *)r, k, s);
            }
            time[4] = now();
            for (int q = 0; q < 4; q++)
                if ((time[q + 1] - time[q]) / n < best[j][q])
                    best[j][q] = (time[q + 1] - time[q]) / n;
        }
    printf("| rows | t(x) | log-densities | conversion | statistics | total (ns per row) |\n");
    printf("|---|---|---|---|---|---|\n");
    for (int j = 0; j < m; j++)
        printf("| %ld | %.1f | %.1f | %.1f | %.1f | %.1f |\n", (long)rows[j], 1e9 * best[j][0],
               1e9 * best[j][1], 1e9 * best[j][2], 1e9 * best[j][3],
               1e9 * (best[j][0] + best[j][1] + best[j][2] + best[j][3]));
    return 0;
}
