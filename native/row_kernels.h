// Row kernels shared by several entry points (the MoE block's one-call path runs the same
// SwiGLU and scatter-add as the separate siluMul and scatterAddRows calls, so it computes what
// they compute).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace rfid {

/** gate[i] = silu(gate[i]) · up[i] for i < n (pointwise.cc). */
void SiluMul(float* gate, const float* up, size_t n);

/** dst[i] = the f32 bits src[i] rounded to BF16, to nearest with ties to even, NaN kept quiet (pointwise.cc). */
void RoundToBf16(const uint32_t* src, uint16_t* dst, size_t count);

/** The f32 that BF16 bits `h` stand for (exact: they are its upper half). */
__attribute__((always_inline)) inline float Bf16Value(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

/** dst[j] += weight · src[j] for j < n (rows.cc). */
void AxpyRow(float* dst, const float* src, float weight, int n);

}  // namespace rfid
