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
 * Whether a product of m rows with k columns runs on Bf16DotRows (given HasBf16Dot()): from 3 rows
 * always; one row up to k = 4096 and two up to k = 2048, where A's rows take at most half of L1
 * and B streams through one row at a time. Beyond, the f32 kernels on the rounded rows (their
 * grouped kernel reuses each piece of A for four rows of B) were faster: 0.88-0.93x for the dot
 * kernel at 4096 × 14336 (one row) and 14336 × 4096 (two), against 1.04-1.75x below the limits
 * (BENCHMARKS.md, "BF16 matmul activations").
 */
inline bool Bf16DotRowsPay(int m, int k) { return m >= 3 || k <= (m == 1 ? 4096 : 2048); }

/**
 * C (m×n, m ≤ 8) = alpha·A·Bᵀ + beta·C with A's rows BF16 (lda apart, m×k) and B n×k BF16,
 * through the CPU's BF16 dot products (HasBf16Dot() must hold). Each product exact, the sums in
 * f32; beta = 0 ignores C's old contents. One thread; small_gemm.cc shares it out.
 */
void Bf16DotRows(int m, int n, int k, float alpha, const uint16_t* a, int lda, const uint16_t* b, int ldb, float beta, float* c,
                 int ldc);

}  // namespace rfid
