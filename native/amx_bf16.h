// Products with BF16 matmul activations on AMX tiles (Intel Sapphire Rapids and later): see
// amx_bf16.cc.
#pragma once

#include <cstdint>

namespace rfid {

/**
 * Whether this CPU has AMX tiles with BF16 (and AVX512_BF16) and the OS lets this process use them
 * (Linux grants the tile state on request, once per process). Asked once, by SimdLevel().
 */
bool AmxUsable();

/**
 * A's rows (m ≤ 8, k values, lda apart, BF16) packed as AmxBf16Rows reads them: per 32 values of
 * k, 16 rows of m pairs. In the calling thread's buffer, valid until its next call; nullptr where
 * the tiles take nothing (m outside 1-8, k < 32). Packed once per product, read by every piece.
 */
const uint32_t* AmxPackRows(int m, int k, const uint16_t* a, int lda);

/**
 * Bf16DotRows's product (bf16_dot.h: C (m×n, m ≤ 8) = alpha·A·Bᵀ + beta·C, A's rows and B BF16,
 * each product exact, the sums in f32) on AMX tiles, A's rows given packed too (`pairs`, from
 * AmxPackRows): B's rows 16 at a time against A's rows, 32 values of k an instruction. Rows of B
 * past the last multiple of 16 and columns past the last multiple of 32 go through Bf16DotRows,
 * as does everything when `pairs` is null. Needs SimdLevel() == Simd::kAmx. One thread.
 */
void AmxBf16Rows(int m, int n, int k, float alpha, const uint16_t* a, int lda, const uint32_t* pairs, const uint16_t* b, int ldb,
                 float beta, float* c, int ldc);

/**
 * The product with BF16 matmul activations for any number of rows: C (m×n) = alpha·round(A)·Bᵀ +
 * beta·C with A's rows f32 (lda apart), rounded to BF16 here (to nearest, ties to even, as
 * RoundToBf16), on up to `threads` threads: A rounded and packed into tiles of 16 rows, the blocks
 * shared over the threads; B's rows in pieces of 32 over the threads, each piece against every
 * block of A with k in chunks that keep A's chunk in L2. Each element of C gets the same sums
 * whatever the thread count. Needs SimdLevel() == Simd::kAmx.
 */
void AmxBf16Gemm(int m, int n, int k, float alpha, const float* a, int lda, const uint16_t* b, int ldb, float beta, float* c, int ldc,
                 int threads);

/**
 * AmxBf16Gemm's product with f32 activations, every product exact as the f32 kernels compute them
 * (C = alpha·A·Bᵀ + beta·C, A f32): each row of A split into three BF16 parts that sum to it
 * exactly (an f32's 24 significant bits, 8 a part), each part multiplied on the tiles (a BF16 × BF16
 * product is exact in f32) into the same f32 sums; the tails through the f32 kernels. Three times
 * the tile work of BF16 activations; the sums' order differs from the f32 kernels', the products
 * do not. Parts below 1.2e-38 are read as zero. Any m, on up to `threads` threads.
 */
void AmxF32Gemm(int m, int n, int k, float alpha, const float* a, int lda, const uint16_t* b, int ldb, float beta, float* c, int ldc,
                int threads);

}  // namespace rfid
