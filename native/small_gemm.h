// Products with a few rows against a weight matrix stored row by row (y = x·Wᵀ), the shape of
// every projection of a decoding step with several sequences: see small_gemm.cc.
#pragma once

#include <cstdint>

namespace rfid {

/** Rows up to which SmallRowsGemmTransB is used instead of sgemm (measured; see small_gemm.cc). */
constexpr int kSmallRowsMax = 8;

/**
 * C (m×n, row stride ldc) = alpha·A·Bᵀ + beta·C for A m×k (row stride lda) and B n×k (row stride
 * ldb), f32; beta = 0 ignores C's old contents (NaN included), as BLAS does. On up to `threads`
 * threads (thread_pool.h) when B is large enough to share: each takes whole rows of B, so every
 * element of C gets the same sums whatever the thread count.
 */
void SmallRowsGemmTransB(int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb, float beta,
                         float* c, int ldc, int threads);

/**
 * The same with B in BF16 (each value the upper 16 bits of an f32), widened in registers as it is
 * read: the same sums as SmallRowsGemmTransB on the widened matrix, from half the bytes.
 */
void SmallRowsGemmTransBBf16(int m, int n, int k, float alpha, const float* a, int lda, const uint16_t* b, int ldb, float beta,
                             float* c, int ldc, int threads);

/**
 * The same for any number of rows: A's rows in blocks of kSmallRowsMax (each block's elements get
 * SmallRowsGemmTransBBf16's sums for those rows) against B in tiles that stay in L2 while the
 * blocks pass over them, so B is read from memory once. Every element's sums are the same whatever
 * the thread count.
 */
void TiledRowsGemmTransBBf16(int m, int n, int k, float alpha, const float* a, int lda, const uint16_t* b, int ldb, float beta,
                             float* c, int ldc, int threads);

/**
 * SmallRowsGemmTransBBf16 and TiledRowsGemmTransBBf16 with BF16 activations, A's rows already
 * BF16 (lda apart), through the CPU's BF16 dot products (bf16_dot.h; HasBf16Dot() must hold).
 * Every element's sums are the same whatever the thread count.
 */
void SmallRowsGemmTransBBf16Dot(int m, int n, int k, float alpha, const uint16_t* a, int lda, const uint16_t* b, int ldb, float beta,
                                float* c, int ldc, int threads);
void TiledRowsGemmTransBBf16Dot(int m, int n, int k, float alpha, const uint16_t* a, int lda, const uint16_t* b, int ldb, float beta,
                                float* c, int ldc, int threads);

}  // namespace rfid
