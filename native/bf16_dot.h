// Products with BF16 matmul activations: the activations rounded to BF16 before they meet BF16
// weights, so that a CPU with BF16 dot products (AVX512_BF16) multiplies two BF16 pairs per f32
// lane and instruction, twice the multiply-adds of f32. See bf16_dot.cc.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rfid {

/** What products against BF16 weights multiply them with (src/engine/types.ts MatmulActivations). */
enum class MatmulActivations {
  /** as they are: every product exact, sums in f32 (the default) */
  kF32 = 0,
  /** rounded to BF16 (to nearest, ties to even) first; products exact, sums in f32 */
  kBf16 = 1,
};

/** Whether this CPU runs BF16 dot products and the kernels may use them (AVX-512 not capped off). */
bool HasBf16Dot();

/**
 * C (m×n, m ≤ 8) = alpha·A·Bᵀ + beta·C with A's rows BF16 (lda apart, m×k) and B n×k BF16,
 * through the CPU's BF16 dot products (HasBf16Dot() must hold). Each product exact, the sums in
 * f32; beta = 0 ignores C's old contents. One thread; small_gemm.cc shares it out.
 */
void Bf16DotRows(int m, int n, int k, float alpha, const uint16_t* a, int lda, const uint16_t* b, int ldb, float beta, float* c,
                 int ldc);

}  // namespace rfid
