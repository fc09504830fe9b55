// Products against a weight matrix kept in a packed form (MXFP4, FP8) whose every value decodes to
// a BF16 pattern: C = A·Bᵀ + beta·C with B's rows decoded by the caller's `decode`, so the result is
// gemmBf16's on the decoded matrix bit for bit (with f32 activations), from the packed bytes.
#pragma once

#include <cstdint>
#include <functional>

#include "bf16_dot.h"

namespace rfid {

/** Writes rows [j0, j0 + rows) of B decoded to BF16 patterns into out (rows × k); called on pool threads. */
using DecodeBRows = std::function<void(int j0, int rows, uint16_t* out)>;

/**
 * C (m×n) = A·Bᵀ + beta·C for A m×k in f32 and B n×k decoded by `decode`, on up to `threads`
 * threads:
 * - up to kSmallRowsMax rows of A (a decoding step), B's rows go a panel at a time (at most 256 KiB
 *   of BF16, so it stays in L2), each decoded into a buffer of its thread's and multiplied there by
 *   the small-rows BF16 kernel (small_gemm.h). That kernel gives each element the same sums whatever
 *   rows of B come with it, so the result is gemmBf16's small-rows result bit for bit, on any panel
 *   size and thread count (with f32 activations). B is read from memory once, packed;
 * - more rows: B decoded whole, then gemmBf16's own product on it, bit for bit its result.
 */
void GemmTransBDecoded(int m, int n, int k, const float* a, const DecodeBRows& decode, float beta, float* out, int threads,
                       MatmulActivations activations);

/** B's rows decoded from FP8: n×k E4M3 codes and n × ⌈k / group⌉ f32 scales (fp8_gemm.cc). */
DecodeBRows Fp8Decoder(const uint8_t* codes, const float* scales, int k, int group);

/** B's rows decoded from MXFP4: n × k/2 bytes of blocks and n × k/32 exponents, k a multiple of 32 (mxfp4_gemm.cc). */
DecodeBRows Mxfp4Decoder(const uint8_t* blocks, const uint8_t* scales, int k);

}  // namespace rfid
