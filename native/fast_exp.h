// exp for f32 written so GCC/Clang vectorise the loops that call it (libm's expf is a call the
// vectoriser cannot see through, and V8's Math.exp costs ~10 ns; these loops run over every
// attention score and every vocabulary logit). Cephes' expf: x = n·ln2 + r with |r| ≤ ln2/2
// (ln2 split in two so n·ln2 is exact), exp(r) by a polynomial, 2^n put into the exponent bits.
// Relative error about 1 ulp for x in [−87.3, 88.0]; below that the result is 0 (no
// subnormals), above it +Inf (the true value is within a factor 2 of FLT_MAX there); NaN stays
// NaN. No branches and no float→int conversion, so the selects become blends and NaN is no UB.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

namespace rfid {

#if defined(__GNUC__)
// always_inline: GCC will not otherwise inline it into the target_clones copies (vectorize.h),
// and a call inside the loop stops vectorisation.
#define RFID_ALWAYS_INLINE __attribute__((always_inline))
#else
#define RFID_ALWAYS_INLINE
#endif

RFID_ALWAYS_INLINE inline float FastExp(float x) {
  const float kMax = 88.0f;
  const float kMin = -87.3365448f;   // ln(FLT_MIN): below it the true result is subnormal
  const float kLog2e = 1.44269504088896341f;
  const float kLn2Hi = 0.693359375f;
  const float kLn2Lo = -2.12194440e-4f;
  const float kRound = 12582912.0f;  // 1.5·2^23: adding it rounds to the nearest integer
  // NaN fails both comparisons and flows through unchanged.
  float xc = x > kMax ? kMax : x;
  xc = xc < kMin ? kMin : xc;
  const float t = xc * kLog2e + kRound;
  const float n = t - kRound;
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  float p = 1.9875691500E-4f;
  p = p * r + 1.3981999507E-3f;
  p = p * r + 8.3334519073E-3f;
  p = p * r + 4.1665795894E-2f;
  p = p * r + 1.6666665459E-1f;
  p = p * r + 5.0000001201E-1f;
  const float y = p * r * r + r + 1.0f;
  // t's low mantissa bits hold n + 2^22 (n ∈ [−126, 127] after the clamp): 2^n's exponent field
  // is n + 127.
  uint32_t tb;
  std::memcpy(&tb, &t, sizeof tb);
  const uint32_t bits = (tb - 0x4B400000u + 127u) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  const float inf = std::numeric_limits<float>::infinity();
  return x < kMin ? 0.0f : (x > kMax ? inf : y * scale);
}

}  // namespace rfid
