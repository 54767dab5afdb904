/* The fused float32 diag E-step (_diag_fit.h) alone, in C, over a memory-mapped float32 .npy
 * file: a pass of chunks of ROWS rows on THREADS OpenMP threads (dynamic schedule, a parallel
 * region per block of BLOCK chunks, as in fastem's local driver, whose blocks of a memory-mapped
 * file are 256 chunks), each chunk's statistics into its own slot. Parameters (pivot, W,
 * log_norm as packed for EXPFAM_DIAG) come from PARAMS, written by benchmarks/diag_kernels.py
 * from a short fit, so that responsibilities are as sharp as in a real pass. Prints the minimum
 * and median ms per pass over REPS passes. Compile against a tree's headers to compare trees
 * (diag_kernels.py does both):
 *
 *   gcc -O3 -Wno-psabi -fopenmp -I TREE -o /tmp/diag_kernels benchmarks/diag_kernels.c -lm
 *   /tmp/diag_kernels FILE.npy PARAMS K REPS THREADS [ROWS 1008] [BLOCK 64]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fastem/_kernels/_diag_fit.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: %s FILE.npy PARAMS K REPS THREADS [ROWS] [BLOCK]\n", argv[0]);
        return 2;
    }
    const ptrdiff_t k = atol(argv[3]), rows = argc > 6 ? atol(argv[6]) : 1008;
    const int reps = atoi(argv[4]), threads = atoi(argv[5]);
    const ptrdiff_t block = argc > 7 ? atol(argv[7]) : 64;
    /* .npy: magic, version 1.0 (header length u16 at 8) or 2.0 (u32 at 8), then the header,
     * whose shape is read as its first two integers after "shape" */
    const int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        perror(argv[1]);
        return 1;
    }
    const unsigned char *file = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    const size_t header = file[6] == 1 ? 10 + (file[8] | file[9] << 8)
                                       : 12 + (file[8] | file[9] << 8 | file[10] << 16);
    char text[4096] = {0};  /* the header's text, past magic, version and length */
    const size_t start = file[6] == 1 ? 10 : 12;
    memcpy(text, file + start, header - start < sizeof text - 1 ? header - start : sizeof text - 1);
    const char *shape = strstr(text, "shape");
    long n = 0, d = 0;
    if (shape == NULL || sscanf(strchr(shape, '(') + 1, "%ld, %ld", &n, &d) != 2) {
        fprintf(stderr, "%s: no 2-D shape in the .npy header\n", argv[1]);
        return 1;
    }
    const float *x = (const float *)(file + header);
    float *centre = calloc(d, sizeof(float)), *w = malloc(2 * d * k * sizeof(float));
    double *log_norm = malloc(k * sizeof(double));
    FILE *params = fopen(argv[2], "rb");
    if (params == NULL || fread(centre, sizeof(float), d, params) != (size_t)d
        || fread(w, sizeof(float), 2 * d * k, params) != (size_t)(2 * d * k)
        || fread(log_norm, sizeof(double), k, params) != (size_t)k) {
        fprintf(stderr, "%s: expected pivot (d float32), W (2d x K float32), log_norm (K)\n",
                argv[2]);
        return 1;
    }
    fclose(params);
    const ptrdiff_t chunks = (n + rows - 1) / rows, size = 2 + k + 2 * d * k + 2;
    double *slots = malloc(chunks * size * sizeof(double)), *times = malloc(reps * sizeof(double));
    for (int rep = 0; rep < reps; rep++) {
        const double start = now();
        for (ptrdiff_t b0 = 0; b0 < chunks; b0 += block) {
            const ptrdiff_t b1 = b0 + block < chunks ? b0 + block : chunks;
#pragma omp parallel for schedule(dynamic) num_threads(threads)
            for (ptrdiff_t c = b0; c < b1; c++) {
                const ptrdiff_t i = c * rows, m = n - i < rows ? n - i : rows;
                double *slot = slots + c * size;
                memset(slot, 0, size * sizeof(double));
                fastem_diag_fit_f32(1, x + i * d, m, d, centre, w, k, log_norm, NULL, NULL, 1,
                                    slot, slot + size - 2);
            }
        }
        times[rep] = 1e3 * (now() - start);
    }
    qsort(times, reps, sizeof(double), by_value);
    printf("%.2f %.2f\n", times[0], times[reps / 2]);
    return 0;
}
