/* FASTEM_TARGET_CLONES: compile a function twice, for AVX2 and for the baseline, and pick the
 * clone at load time by the CPU (GCC on x86-64 Linux; a single baseline version elsewhere).
 * The build targets the baseline ISA so the wheel runs anywhere; only marked loops use AVX2.
 * No FMA is enabled, so every clone rounds identically and results do not depend on the CPU.
 */
#ifndef FASTEM_SIMD_H
#define FASTEM_SIMD_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FASTEM_TARGET_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define FASTEM_TARGET_CLONES
#endif

#endif
