// The BF16-weight product behind gemmBf16 (bf16_gemm.cc), for the kernels that run it inside a
// larger call (moe_experts.cc's routed experts).
#pragma once

#include <cstdint>

#include "args.h"
#include "bf16_dot.h"

namespace rfid {

/** Which of bf16_gemm.cc's paths a product takes (see there for why each wins where it does). */
enum class Bf16Path {
  /** up to kSmallRowsMax rows: the small-rows kernels; the same sums on any thread count */
  kSmallRows,
  /** more rows, A in blocks of 8 against L2-sized tiles of B; the same sums on any thread count */
  kTiled,
  /** B widened a panel at a time through sgemm; the sums may depend on the thread count */
  kPanels,
};

/** The path gemmBf16 takes for C (m×n) = A (m×k) · Bᵀ on `threads` threads at `activations`. */
Bf16Path Bf16PathFor(int m, int n, int k, int threads, MatmulActivations activations);

/**
 * C (m×n) = A (m×k) · Bᵀ + beta·C for B (n×k, BF16 bits) along `path`, on up to `threads` threads.
 * Along kSmallRows and kTiled the result is the same bit for bit for every thread count, so a
 * product that Bf16PathFor gives one of those for the engine's count may run on fewer threads (one,
 * beside other products) and still give what gemmBf16 gives. With kBf16 activations, A's values are rounded to
 * BF16 first (bf16_dot.h).
 */
void GemmTransBBf16Along(Bf16Path path, int m, int n, int k, const float* a, const uint16_t* b, float beta, float* c, int threads,
                         MatmulActivations activations);

/**
 * A's rows (m × k, f32) rounded to BF16 and widened back to f32 (exact), rows k apart, in this
 * thread's buffer: valid until this thread's next call (what the f32 kernels multiply with BF16
 * activations).
 */
const float* RoundedRows(int m, int k, const float* a);

/**
 * A product with nothing to multiply: C (m×n) = beta·C where k = 0 (beta = 0 clears NaN, as BLAS
 * does). True when there is nothing more to run (m, n or k zero); false for a real product.
 */
bool EmptyProduct(int m, int n, int k, double beta, float* c);

/**
 * The arguments gemmBf16, gemmMxfp4 and gemmFp8 share: m, n, k and A (arguments 0-3) and, from
 * argument `cAt` on, C, beta, threads and bf16Activations (B's parts lie between). ProductArgsOf
 * reads them, and checks A (m × k), C (m × n), C apart from A and threads ≥ 1 (B is the caller's
 * to check).
 */
struct ProductArgs {
  int m = 0;
  int n = 0;
  int k = 0;
  ArrayArg a;
  ArrayArg c;
  double beta = 0;
  int threads = 0;
  MatmulActivations activations = MatmulActivations::kF32;
};
ProductArgs ProductArgsOf(const Napi::CallbackInfo& info, const char* op, size_t cAt);

}  // namespace rfid
