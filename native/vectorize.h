// Hot element-wise loops are compiled twice on x86-64: for the baseline (SSE2, 4 floats a step)
// and for AVX2 + FMA (8 a step), and the first call picks the one the CPU runs, so one build
// serves every machine and no -march=native build is needed. Elsewhere (ARM) they are simply
// compiled for the baseline.
//
// Not GCC's target_clones: its resolver tests a clone "arch=haswell" as "this CPU is a Haswell"
// (model number), so no later CPU got the AVX2 code, and run by the dynamic loader while the addon
// is being relocated it read the CPU features as absent even for a plain "avx2" clone (GCC 12,
// measured on an AVX-512 Xeon): every loop ran its SSE2 version.
//
//   RFID_VECTORIZED(double, SumSquares, (const float* x, int n), (x, n)) { ...body... }
//
// defines SumSquares(x, n) dispatching once to the body compiled for the CPU.
#pragma once

#include <cstdlib>
#include <cstring>

namespace rfid {

/**
 * The widest instruction set the native kernels may use: the CPU's, capped by
 * RFID_MOE_NATIVE_SIMD ("amx", "avx512", "avx2" or "baseline"; unset or anything else: no cap),
 * read once. The cap lets the narrower kernels be tested on a wider CPU, and lets a user keep
 * 512-bit code off a CPU that lowers its clock for it. kAmx is AVX-512 with AMX tiles for the
 * products with BF16 matmul activations (amx_bf16.cc); everything else runs as at kAvx512.
 */
enum class Simd { kBaseline = 0, kAvx2Fma = 1, kAvx512 = 2, kAmx = 3 };

/** Whether the CPU has AMX tiles with BF16 and the OS grants them to this process (amx_bf16.cc). */
bool AmxUsable();

inline Simd SimdLevel() {
#if defined(__GNUC__) && defined(__x86_64__)
  static const Simd level = [] {
    __builtin_cpu_init();
    Simd cpu = Simd::kBaseline;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
      // BW too: its 16-bit permutes widen 16 BF16 weights in one instruction (small_gemm.cc;
      // with AVX-512F alone GCC used six); every AVX-512 CPU since Skylake-SP has it, only
      // Xeon Phi lacks it, and there the AVX2 kernels run
      const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
      cpu = avx512 ? Simd::kAvx512 : Simd::kAvx2Fma;
    }
    const char* cap = std::getenv("RFID_MOE_NATIVE_SIMD");
    // asked only when the cap allows it: the grant of the tile state is a change to the process
    const bool amxAllowed = !cap || (std::strcmp(cap, "avx512") != 0 && std::strcmp(cap, "avx2") != 0 && std::strcmp(cap, "baseline") != 0);
    if (cpu == Simd::kAvx512 && amxAllowed && AmxUsable()) cpu = Simd::kAmx;
    Simd limit = Simd::kAmx;
    if (cap && std::strcmp(cap, "avx512") == 0) limit = Simd::kAvx512;
    if (cap && std::strcmp(cap, "avx2") == 0) limit = Simd::kAvx2Fma;
    if (cap && std::strcmp(cap, "baseline") == 0) limit = Simd::kBaseline;
    return cpu < limit ? cpu : limit;
  }();
  return level;
#else
  return Simd::kBaseline;
#endif
}

/** Whether the kernels run AVX2 and FMA (decided once). */
inline bool HasAvx2Fma() { return SimdLevel() >= Simd::kAvx2Fma; }

}  // namespace rfid

#if defined(__GNUC__) && defined(__x86_64__)
#define RFID_VECTORIZED(ret, name, params, args)                                           \
  __attribute__((always_inline)) inline ret name##Body params;                             \
  __attribute__((target("avx2,fma"))) ret name##Avx2Fma params { return name##Body args; } \
  ret name##Baseline params { return name##Body args; }                                    \
  ret name params {                                                                        \
    static ret(*const chosen) params = ::rfid::HasAvx2Fma() ? name##Avx2Fma : name##Baseline; \
    return chosen args;                                                                    \
  }                                                                                        \
  __attribute__((always_inline)) inline ret name##Body params
#else
#define RFID_VECTORIZED(ret, name, params, args) ret name params
#endif
