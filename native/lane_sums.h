// Horizontal sums of up to eight accumulator vectors at once, for the product kernels
// (small_gemm.cc, bf16_dot.cc): each vector's lanes summed into one float, by rounds of pairwise
// sums across the vectors rather than eight serial lane sums. Generic vector code (no intrinsics),
// so it compiles inside the kernel of whichever instruction set inlines it.
#pragma once

#include <cstring>

namespace rfid {
namespace lanes {

typedef float V8 __attribute__((vector_size(32)));
typedef float V16 __attribute__((vector_size(64)));
typedef int I8 __attribute__((vector_size(32)));

/** A vector's lanes folded to eight floats (a 16-float vector: its two halves added). */
__attribute__((always_inline)) inline V8 Fold(const V8& v) { return v; }
__attribute__((always_inline)) inline V8 Fold(const V16& v) {
  V8 lo, hi;
  std::memcpy(&lo, &v, sizeof(V8));
  std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof(V8), sizeof(V8));
  return lo + hi;
}

/** Pairwise sums within each 128-bit half, as AVX's hadd: {a0+a1, a2+a3, b0+b1, b2+b3 | the same above}. */
__attribute__((always_inline)) inline V8 PairSums(V8 x, V8 y) {
  return __builtin_shuffle(x, y, I8{0, 2, 8, 10, 4, 6, 12, 14}) + __builtin_shuffle(x, y, I8{1, 3, 9, 11, 5, 7, 13, 15});
}

/** The sums of the lanes of s[0..m-1] (m ≤ 8) into t[0..7] (t[r] = 0 for r ≥ m): three rounds of
    pairwise sums and a cross-half add for all eight. */
template <typename V>
__attribute__((always_inline)) inline void LaneSums(const V* s, int m, float* t) {
  V8 h[8];
  for (int r = 0; r < 8; ++r) h[r] = r < m ? Fold(s[r]) : V8{};
  const V8 u0 = PairSums(PairSums(h[0], h[1]), PairSums(h[2], h[3]));
  const V8 u1 = PairSums(PairSums(h[4], h[5]), PairSums(h[6], h[7]));
  const V8 sums = __builtin_shuffle(u0, u1, I8{0, 1, 2, 3, 8, 9, 10, 11}) + __builtin_shuffle(u0, u1, I8{4, 5, 6, 7, 12, 13, 14, 15});
  std::memcpy(t, &sums, sizeof(sums));
}

}  // namespace lanes
}  // namespace rfid
