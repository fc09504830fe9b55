// Products with BF16 matmul activations (bf16_dot.h): the activations rounded to BF16, then
// multiplied with BF16 weights by the CPU's BF16 dot product (VDPBF16PS: for each of 16 f32 lanes,
// two BF16 products added into the lane), as a model loaded in BF16 runs in PyTorch on such a CPU.
//
// Why: a decoding step of 8 sequences multiplies every weight it reads 8 times, and with the
// weights widened to f32 in registers (small_gemm.cc) those multiply-adds, not the memory, bind
// (BENCHMARKS.md, "Decode": 8 rows cost 3.1-3.5x one on 2 cores). One VDPBF16PS does 32
// multiply-adds where an f32 FMA does 16, and it reads the weights as stored, with no widening.
// A prompt's prefill is bound by its multiply-adds too. The price is the activations' rounding:
// 8 significant bits instead of 24, as in a BF16 model. It is a choice the user makes
// (matmulActivations 'bf16'); the default, f32, keeps the activations as they are.
//
// Even one row gains (1.1-1.5x on 2 threads, weights from memory or cache): the dot product
// reads the weights as stored, where the f32 kernel widens each one and multiplies it. Not beyond
// the k where the f32 kernels switch to their grouped kernel at 1-2 rows (Bf16DotRowsPay); there
// the rounded activations go through those kernels (the same products, exact either way; sums in
// another order). And only on a CPU with AVX512_BF16 (AMD Zen 4 and later, Intel Cooper Lake and
// Sapphire Rapids and later); elsewhere the rounded activations go through the f32 kernels, so
// 'bf16' gives the same kind of result on every CPU and is only faster on these.
//
// The kernel has the shape of small_gemm.cc's one-pass kernel: one or two rows of B at a time
// against every row of A, k in chunks that keep A's chunk in L1, the rows a few KiB ahead read
// into L2. A's rows arrive as BF16, 32 values a 512-bit load; the last piece of a chunk is read
// with a mask (zeros beyond k add nothing).
#include "bf16_dot.h"

#include <algorithm>
#include <cstddef>

#include "lane_sums.h"
#include "vectorize.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include "intrinsics.h"
#endif

namespace rfid {

bool HasBf16Dot() {
#if defined(__GNUC__) && defined(__x86_64__)
  static const bool has = [] {
    __builtin_cpu_init();
    return SimdLevel() >= Simd::kAvx512 && __builtin_cpu_supports("avx512bf16");
  }();
  return has;
#else
  return false;
#endif
}

#if defined(__GNUC__) && defined(__x86_64__)

namespace {

#define RFID_BF16_DOT_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))

/** How far ahead the kernel reads B (bytes), as small_gemm.cc's one-pass kernel does. */
constexpr size_t kReadAheadBytes = 8192;

/**
 * NB consecutive rows of B (ldb apart) against the M rows of A's chunk x (kc values): C's columns
 * 0..NB − 1 (rows ldc apart). S sets of accumulators per element, so that the dot products into
 * one accumulator do not wait on each other at 1-2 rows (at more, M·NB chains are enough).
 */
template <int M, int NB, int S>
RFID_BF16_DOT_TARGET __attribute__((always_inline)) inline void DotRows(int kc, float alpha, const uint16_t* x, int lda, const uint16_t* w,
                                                                        int ldb, const uint16_t* ahead, float beta, float* c, int ldc,
                                                                        bool first) {
  __m512 s[S][NB][M];
  for (int t = 0; t < S; ++t)
    for (int q = 0; q < NB; ++q)
      for (int r = 0; r < M; ++r) s[t][q][r] = _mm512_setzero_ps();
  int p = 0;
  for (; p + 32 * S <= kc; p += 32 * S) {
    if (ahead) {
      for (int q = 0; q < NB; ++q)
        for (int t = 0; t < S; ++t) __builtin_prefetch(ahead + static_cast<size_t>(q) * ldb + p + 32 * t, 0, 2);
    }
#pragma GCC unroll 4
    for (int t = 0; t < S; ++t) {
      __m512i wv[NB];
      for (int q = 0; q < NB; ++q) wv[q] = _mm512_loadu_si512(w + static_cast<size_t>(q) * ldb + p + 32 * t);
#pragma GCC unroll 8
      for (int r = 0; r < M; ++r) {
        const __m512i xv = _mm512_loadu_si512(x + static_cast<size_t>(r) * lda + p + 32 * t);
        for (int q = 0; q < NB; ++q) s[t][q][r] = _mm512_dpbf16_ps(s[t][q][r], (__m512bh)xv, (__m512bh)wv[q]);
      }
    }
  }
  for (; p < kc; p += 32) {
    const int left = kc - p;
    const __mmask32 mask = left >= 32 ? static_cast<__mmask32>(0xffffffffu) : static_cast<__mmask32>((1u << left) - 1u);
    __m512i wv[NB];
    for (int q = 0; q < NB; ++q) wv[q] = _mm512_maskz_loadu_epi16(mask, w + static_cast<size_t>(q) * ldb + p);
    for (int r = 0; r < M; ++r) {
      const __m512i xv = _mm512_maskz_loadu_epi16(mask, x + static_cast<size_t>(r) * lda + p);
      for (int q = 0; q < NB; ++q) s[0][q][r] = _mm512_dpbf16_ps(s[0][q][r], (__m512bh)xv, (__m512bh)wv[q]);
    }
  }
  for (int q = 0; q < NB; ++q) {
    lanes::V16 acc[M];
    for (int r = 0; r < M; ++r) {
      __m512 sum = s[0][q][r];
      for (int t = 1; t < S; ++t) sum = _mm512_add_ps(sum, s[t][q][r]);
      acc[r] = reinterpret_cast<lanes::V16&>(sum);
    }
    float total[8];
    lanes::LaneSums(acc, M, total);
    for (int r = 0; r < M; ++r) {
      float* out = c + static_cast<size_t>(r) * ldc + q;
      // the first chunk writes C (beta = 0 ignores what was there), later chunks add to it
      if (!first) *out += alpha * total[r];
      else *out = beta == 0 ? alpha * total[r] : alpha * total[r] + beta * *out;
    }
  }
}

template <int M>
RFID_BF16_DOT_TARGET void DotKernel(int n, int k, float alpha, const uint16_t* a, int lda, const uint16_t* b, int ldb, float beta,
                                    float* c, int ldc) {
  // four sets of accumulators at 1-2 rows, so that the dot products into one accumulator do not
  // wait on each other; from 3 rows the M·NB accumulators are chains enough
  constexpr int S = M <= 2 ? 4 : 1;
  // A's chunk (M rows of BF16) takes at most 24 KiB, half of a 48 KiB L1; at 1-2 rows k is not cut
  const int kChunk = M <= 2 ? std::max(k, 1) : std::max(512, (24576 / (2 * M)) & ~31);
  for (int k0 = 0; k0 < k; k0 += kChunk) {
    const int kc = std::min(kChunk, k - k0);
    const size_t chunkBytes = static_cast<size_t>(kc) * sizeof(uint16_t);
    const int aheadRows = static_cast<int>(std::max<size_t>(2, (kReadAheadBytes + chunkBytes - 1) / chunkBytes));
    int j = 0;
    // From 3 rows, two rows of B at a time: each piece of A, loaded once, serves two dot
    // products. At 1-2 rows one row at a time, so that B is read as one sequential stream.
    for (; M >= 3 && j + 1 < n; j += 2) {
      const uint16_t* w = b + static_cast<size_t>(j) * ldb + k0;
      const uint16_t* ahead = M >= 3 && j + aheadRows + 1 < n ? w + static_cast<size_t>(aheadRows) * ldb : nullptr;
      DotRows<M, 2, S>(kc, alpha, a + k0, lda, w, ldb, ahead, beta, c + j, ldc, k0 == 0);
    }
    for (; j < n; ++j) DotRows<M, 1, S>(kc, alpha, a + k0, lda, b + static_cast<size_t>(j) * ldb + k0, ldb, nullptr, beta, c + j, ldc, k0 == 0);
  }
}

}  // namespace

void Bf16DotRows(int m, int n, int k, float alpha, const uint16_t* a, int lda, const uint16_t* b, int ldb, float beta, float* c,
                 int ldc) {
  switch (m) {
    case 1: return DotKernel<1>(n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    case 2: return DotKernel<2>(n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    case 3: return DotKernel<3>(n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    case 4: return DotKernel<4>(n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    case 5: return DotKernel<5>(n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    case 6: return DotKernel<6>(n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    case 7: return DotKernel<7>(n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    case 8: return DotKernel<8>(n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    default: return;
  }
}

#else

void Bf16DotRows(int, int, int, float, const uint16_t*, int, const uint16_t*, int, float, float*, int) {}

#endif

}  // namespace rfid
