// Hot element-wise loops are compiled twice on x86-64 GCC: for the baseline (SSE2, 4 floats a
// step) and for Haswell-class CPUs (AVX2 + FMA, 8 a step); the loader picks the clone the CPU
// runs (ifunc), so one build serves every machine and no -march=native build is needed.
// Elsewhere (Clang, ARM) the loops are simply compiled for the baseline.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define RFID_VECTOR_CLONES __attribute__((target_clones("arch=haswell", "default")))
#else
#define RFID_VECTOR_CLONES
#endif
