/* FASTEM_TARGET_CLONES: compile a function twice, for AVX2 and for the baseline, and pick the
 * clone at load time by the CPU (GCC on x86-64 Linux; a single baseline version elsewhere).
 * The build targets the baseline ISA so the wheel runs anywhere; only marked loops use AVX2.
 * No FMA is enabled here, so every clone rounds identically and these functions' results do not
 * depend on the CPU. Two exceptions, by their own target attributes: EXPFAM_FULL's products
 * (_full.h, float32 and float64) use FMA where the CPU has AVX2 and FMA and SGEMM / DGEMM
 * elsewhere, and the fused float32 diag/spherical E-step (_diag_fit.h) has an x86-64-v3 clone
 * whose multiply-adds are contracted to FMA (10-13 % faster here), so those fits round
 * differently on CPUs without FMA (the BLAS kernels were CPU-specific already); on one machine
 * they stay identical for any n_threads, chunk layout and memmap or in-memory data.
 */
#ifndef FASTEM_SIMD_H
#define FASTEM_SIMD_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FASTEM_TARGET_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define FASTEM_TARGET_CLONES
#endif

#endif
