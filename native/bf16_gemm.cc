// Products against a weight matrix kept in BF16, as the checkpoint stores it: C = A·Bᵀ + beta·C
// for A m×k in f32 and B n×k in BF16 (nn.Linear's layout, y = x·Wᵀ).
//
// Why: a served model held as f32 takes twice its checkpoint's bytes (a 60 GB BF16 model would
// need 120 GB), and decoding reads every weight once per step, so the f32 copy also doubles the
// memory traffic that bounds decoding. BF16 → f32 is exact (the 16 bits become the upper half of
// the f32), so the products below give what the same products on f32 weights give, up to
// summation order.
//
// - Up to 8 rows (a decoding step): the small-rows kernels (small_gemm.cc) read B's BF16 values
//   and widen them in registers, in one pass over B, so a step reads half the weight bytes.
//   Widening a panel into a buffer first and multiplying from there measured 0.65-0.97x the f32
//   product's speed (the widening pass and the product do not overlap); in registers they do.
// - More rows (a prompt's prefill, the rows routed to one expert) where the tiled product wins:
//   A's rows in blocks of 8 against tiles of B that stay in L2 while every block passes over them
//   (small_gemm.cc), the same kernels, B read from memory once.
// - Otherwise B is widened a 1 MiB panel at a time and each panel goes through GemmF32Strided (the
//   gemm entry point's sgemm), into its column block of C, the panels shared over the engine's
//   threads. This cost 0.74-0.98x the f32 product's speed on one thread (the widening pass;
//   measured at 32 rows).
// Which wins (BENCHMARKS.md, "Prefill"): with the AVX-512 kernels the tiled product was 1.6-3.1x
// as fast as the panels with OpenBLAS's Haswell kernels on 2 threads at every shape measured
// (24-1024 rows, k 512-4096), and 0.86-1.6x the panels with OpenBLAS's AVX-512 kernels. With the
// AVX2 kernels (16 vector registers: 8 rows of A cannot take B's rows in pairs) it was 1.2-1.65x
// as fast at 24-81 rows and k = 512, level with them at 32 rows of 14336 × 4096, and 0.83-0.9x
// at more rows with k of 768-4096; so there the tiled product takes up to 32 rows. Where OpenBLAS
// runs its AVX-512 kernels, its panels win from 128 rows on against weights of at least two
// panels (and at least one a thread): 0.82-0.86x sgemm on f32 against the tiled product's
// 0.74-0.82x at 256-512 rows, so those go to the panels too.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "amx_bf16.h"
#include "args.h"
#include "bf16_gemm.h"
#include "gemm_f32.h"
#include "ops.h"
#include "parallel.h"
#include "row_kernels.h"
#include "small_gemm.h"
#include "thread_pool.h"
#include "vectorize.h"

extern "C" char* openblas_get_corename(void);

namespace rfid {

namespace {

/** f32 values of one widened panel of B (1 MiB, in L2 while sgemm reads it). */
constexpr size_t kPanelFloats = 1 << 18;

/** dst[i] = the f32 whose upper 16 bits are src[i] (exact). */
RFID_VECTORIZED(void, WidenBf16, (const uint16_t* src, float* dst, size_t count), (src, dst, count)) {
  for (size_t i = 0; i < count; ++i) {
    const uint32_t w = static_cast<uint32_t>(src[i]) << 16;
    std::memcpy(dst + i, &w, sizeof(w));
  }
}

/** Rows up to which the tiled product runs with 256-bit vectors or none (more go to the panels). */
constexpr int kTiledRowsMaxNarrow = 32;

/** Rows from which sgemm on widened panels beats the tiled product when OpenBLAS runs AVX-512 kernels. */
constexpr int kPanelsRowsMinAvx512 = 128;

/** Whether OpenBLAS runs AVX-512 kernels: its SkylakeX, Cooperlake and SapphireRapids targets, chosen from the CPU flags or by OPENBLAS_CORETYPE. */
bool OpenblasRunsAvx512() {
  static const bool avx512 = [] {
    std::string name = openblas_get_corename();
    for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return name == "skylakex" || name == "cooperlake" || name == "sapphirerapids";
  }();
  return avx512;
}

/**
 * Whether a product of m rows (more than kSmallRowsMax) against weights of `panels` panels runs
 * as the tiled product rather than through the panels and sgemm (the measurements above): with
 * the AVX-512 kernels, unless OpenBLAS runs AVX-512 kernels too and the product has
 * kPanelsRowsMinAvx512 rows or more and at least two panels, one per thread (its packed panels
 * then reached 141-171 GMAC/s against the tiled product's 109-142); otherwise up to
 * kTiledRowsMaxNarrow rows. The choice depends on the thread count there (fewer panels than
 * threads: the tiled product), so such a product's elements may differ in the last bit between
 * thread counts (test/engine/kernel-threads.test.ts says where).
 */
bool TiledProductWins(int m, int panels, int threads) {
  if (SimdLevel() < Simd::kAvx512) return m <= kTiledRowsMaxNarrow;
  return !(OpenblasRunsAvx512() && m >= kPanelsRowsMinAvx512 && panels >= std::max(2, threads));
}

/** Rows of A a unit of the panel path takes at least (fewer leave sgemm packing B for little work). */
constexpr int kPanelBlockRowsMin = 16;

/**
 * The rows of A in a unit of the panel path: all m where there are as many panels as threads;
 * otherwise m cut evenly into enough blocks for a unit a thread, of at least kPanelBlockRowsMin
 * rows each (so no block is a row or two, which an OpenBLAS may send to gemv).
 */
int PanelBlockRows(int m, int panels, int threads) {
  if (panels >= threads) return m;
  const int blocks = std::min((threads + panels - 1) / panels, std::max(1, m / kPanelBlockRowsMin));
  return (m + blocks - 1) / blocks;
}

/** Rows of B in one widened panel of the panel path. */
int PanelRows(int n, int k) { return static_cast<int>(std::max<size_t>(1, std::min<size_t>(n, kPanelFloats / k))); }

}  // namespace

Bf16Path Bf16PathFor(int m, int n, int k, int threads, MatmulActivations activations) {
  if (m <= kSmallRowsMax) return Bf16Path::kSmallRows;
  // AMX tiles, with either activations, and the dot kernel do more multiply-adds a cycle than
  // sgemm's panels
  if (SimdLevel() == Simd::kAmx || (activations == MatmulActivations::kBf16 && HasBf16Dot())) return Bf16Path::kTiled;
  const int panelRows = PanelRows(n, k);
  return TiledProductWins(m, (n + panelRows - 1) / panelRows, threads) ? Bf16Path::kTiled : Bf16Path::kPanels;
}

namespace {

/** Values of a row of A packed as BF16: whole cache lines. */
int PaddedRow(int k) { return (k + 31) & ~31; }

// A's rows rounded for BF16 activations, kept with the thread between calls, as the panels' buffer
// is (a fresh one would come back as untouched pages each call), up to kKeptRowBytes each: a
// decoding step's rows and a short prompt's stay, an evaluation pass's (tens of thousands of rows)
// are freed after its product instead of staying with the thread.
constexpr size_t kKeptRowBytes = size_t{1} << 20;
thread_local std::vector<uint16_t> packedRows;
thread_local std::vector<float> roundedRows;

/** Frees this thread's rounded rows when they grew past kKeptRowBytes (at the end of the product that used them). */
struct ReleaseLargeRows {
  ~ReleaseLargeRows() {
    if (packedRows.size() * sizeof(uint16_t) > kKeptRowBytes) std::vector<uint16_t>().swap(packedRows);
    if (roundedRows.size() * sizeof(float) > kKeptRowBytes) std::vector<float>().swap(roundedRows);
  }
};

/** A's rows rounded to BF16 in this thread's buffer, each on a cache line, PaddedRow(k) apart. */
const uint16_t* PackedRows(int m, int k, const float* a) {
  const int ld = PaddedRow(k);
  const size_t need = static_cast<size_t>(m) * ld + 32;
  if (packedRows.size() < need) packedRows.resize(need);
  uint16_t* rows = packedRows.data();
  rows += (64 - reinterpret_cast<uintptr_t>(rows) % 64) % 64 / sizeof(uint16_t);
  for (int r = 0; r < m; ++r) {
    RoundToBf16(reinterpret_cast<const uint32_t*>(a + static_cast<size_t>(r) * k), rows + static_cast<size_t>(r) * ld, k);
  }
  return rows;
}

}  // namespace

const float* RoundedRows(int m, int k, const float* a) {
  const size_t count = static_cast<size_t>(m) * k;
  if (roundedRows.size() < count) roundedRows.resize(count);
  const uint16_t* packed = PackedRows(m, k, a);
  for (int r = 0; r < m; ++r) WidenBf16(packed + static_cast<size_t>(r) * PaddedRow(k), roundedRows.data() + static_cast<size_t>(r) * k, k);
  return roundedRows.data();
}

void GemmTransBBf16Along(Bf16Path path, int m, int n, int k, const float* a, const uint16_t* b, float beta, float* out, int threads,
                         MatmulActivations activations) {
  const ReleaseLargeRows release;
  if (activations == MatmulActivations::kBf16) {
    // More rows on AMX tiles where the CPU has them (amx_bf16.h), rounding A as they pack it.
    if (path == Bf16Path::kTiled && SimdLevel() == Simd::kAmx) {
      AmxBf16Gemm(m, n, k, 1.0f, a, k, b, k, beta, out, n, threads);
      return;
    }
    // The dot kernel where it pays (Bf16DotRowsPay), AMX tiles at any k (at 1-2 rows beyond
    // those limits level with the f32 kernels, 0.99-1.05x, both bound by reading the weights:
    // BENCHMARKS.md, "BF16 matmul activations on AMX tiles"); otherwise, and on a CPU without
    // BF16 dot products, the rounded rows through the f32 kernels below.
    if (HasBf16Dot() && (SimdLevel() == Simd::kAmx || Bf16DotRowsPay(m, k)) && path != Bf16Path::kPanels) {
      const uint16_t* packed = PackedRows(m, k, a);
      if (path == Bf16Path::kSmallRows) SmallRowsGemmTransBBf16Dot(m, n, k, 1.0f, packed, PaddedRow(k), b, k, beta, out, n, threads);
      else TiledRowsGemmTransBBf16Dot(m, n, k, 1.0f, packed, PaddedRow(k), b, k, beta, out, n, threads);
      return;
    }
    a = RoundedRows(m, k, a);
  }
  // A prompt's f32 activations on AMX tiles: each row split into three BF16 parts that sum to it
  // exactly, so every product is still exact (amx_bf16.h). Not a decoding step's few rows: there
  // the three parts' tile work, with weights in cache, made the synthetic models of
  // bench/decode-vs-torch.ts decode 15-22% slower than the f32 kernels (BENCHMARKS.md, "BF16
  // matmul activations on AMX tiles").
  if (activations == MatmulActivations::kF32 && SimdLevel() == Simd::kAmx && path == Bf16Path::kTiled) {
    AmxF32Gemm(m, n, k, 1.0f, a, k, b, k, beta, out, n, threads);
    return;
  }
  if (path == Bf16Path::kSmallRows) {
    SmallRowsGemmTransBBf16(m, n, k, 1.0f, a, k, b, k, beta, out, n, threads);
    return;
  }
  if (path == Bf16Path::kTiled) {
    TiledRowsGemmTransBBf16(m, n, k, 1.0f, a, k, b, k, beta, out, n, threads);
    return;
  }
  const int panelRows = PanelRows(n, k);
  const int panels = (n + panelRows - 1) / panelRows;
  // Each unit (a panel, and a block of A's rows where there are fewer panels than threads) is
  // widened and multiplied by one thread, the units shared over the engine's threads with
  // OpenBLAS held to one, so the widening pass shares the threads too. (sgemm on OpenBLAS's
  // threads left both on one core: the widening ran on the caller, and a panel of 64 rows at
  // k = 4096 against 32-64 rows of A is under the 16 M multiply-adds from which blas_ops.cc
  // threads a product.) With a panel a thread every element gets the same sums whatever the
  // thread count. With fewer, A's rows are cut too: a weight of one panel (512 × 512, a small
  // expert) ran on one thread, at 0.58-0.66x sgemm on f32 on 2 threads, and a 16-core machine ran
  // an expert of Qwen3-MoE's shape (6 panels) on 6. The price is that sgemm's sums for a row
  // depend on which rows come with it (OpenBLAS's Haswell kernels differ in the last bit), so
  // there an element may differ in its last bit with the thread count, as OpenBLAS's own threads
  // make f32 products do. Each block widens its panel itself: the threads widen at once, so it
  // costs no time on the clock beside the one widening before.
  const int blockRows = PanelBlockRows(m, panels, threads);
  const int rowBlocks = (m + blockRows - 1) / blockRows;
  auto unit = [&](int u) {
    // kept with the thread between calls: a fresh multi-MiB buffer per call would come back as
    // untouched pages (see eig_sym.cc)
    static thread_local std::vector<float> buffer;
    if (buffer.size() < static_cast<size_t>(panelRows) * k) buffer.resize(static_cast<size_t>(panelRows) * k);
    const int j0 = (u / rowBlocks) * panelRows;
    const int rows = std::min(panelRows, n - j0);
    const int i0 = (u % rowBlocks) * blockRows;
    const int aRows = std::min(blockRows, m - i0);
    WidenBf16(b + static_cast<size_t>(j0) * k, buffer.data(), static_cast<size_t>(rows) * k);
    GemmF32Strided(aRows, rows, k, 1.0f, a + static_cast<size_t>(i0) * k, false, buffer.data(), true, beta,
                   out + static_cast<size_t>(i0) * n + j0, n);
  };
  SingleThreadedBlas oneBlasThread;
  RunPieces(threads, panels * rowBlocks, unit);
}

/**
 * gemmBf16(m, n, k, a, b, c, beta, threads): C (m×n) = A·Bᵀ + beta·C for A (Float32Array, m×k) and
 * B (Uint16Array of BF16 bits, n×k). beta = 0 ignores C's old contents (NaN included), as BLAS
 * does. An optional ninth argument, `bf16Activations` (a boolean, default false), rounds A to
 * BF16 first (bf16_dot.h). Up to 8 rows, and more where the tiled product wins, on at most `threads` threads
 * (small_gemm.h); otherwise through sgemm, a panel per thread.
 */
Napi::Value JsGemmBf16(const Napi::CallbackInfo& info) {
  const char* op = "gemmBf16";
  Napi::Env env = info.Env();
  const ProductArgs p = ProductArgsOf(info, op, 5);
  const HalfArg b = Uint16ArrayArg(info, 4, op, "b");
  if (b.length != static_cast<size_t>(p.n) * p.k) {
    ThrowError(env, op, std::string("b holds ") + std::to_string(b.length) + " values, expected " + ShapeText(p.n, p.k) + " (check n and k: b is n×k)");
  }
  RequireNoOverlapWith(env, op, p.c, b.data, 2 * b.length, "b");
  if (EmptyProduct(p.m, p.n, p.k, p.beta, p.c.f32())) return env.Undefined();
  GemmTransBBf16Along(Bf16PathFor(p.m, p.n, p.k, p.threads, p.activations), p.m, p.n, p.k, p.a.f32(), b.data, static_cast<float>(p.beta), p.c.f32(), p.threads,
                      p.activations);
  return env.Undefined();
}

ProductArgs ProductArgsOf(const Napi::CallbackInfo& info, const char* op, size_t cAt) {
  Napi::Env env = info.Env();
  ProductArgs p;
  p.m = DimArg(info, 0, op, "m");
  p.n = DimArg(info, 1, op, "n");
  p.k = DimArg(info, 2, op, "k");
  p.a = Float32ArrayArg(info, 3, op, "a");
  p.c = Float32ArrayArg(info, cAt, op, "c");
  p.beta = NumberArg(info, cAt + 1, op, "beta");
  p.threads = DimArg(info, cAt + 2, op, "threads");
  if (p.threads == 0) ThrowError(env, op, "threads must be at least 1");
  p.activations = BoolArg(info, cAt + 3, op, "bf16Activations") ? MatmulActivations::kBf16 : MatmulActivations::kF32;
  RequireShape(env, op, p.a, p.m, p.k, "m and k: a is m×k");
  RequireShape(env, op, p.c, p.m, p.n, "m and n: c is m×n");
  RequireNoOverlap(env, op, p.c, p.a);
  return p;
}

bool EmptyProduct(int m, int n, int k, double beta, float* c) {
  if (m == 0 || n == 0) return true;
  if (k != 0) return false;
  const size_t count = static_cast<size_t>(m) * n;
  for (size_t i = 0; i < count; ++i) c[i] = beta == 0 ? 0.0f : static_cast<float>(c[i] * beta);
  return true;
}

}  // namespace rfid
