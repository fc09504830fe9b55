// A GEMM for a few rows against a row-major weight matrix: C = alpha·A·Bᵀ + beta·C with A m×k
// (m small: the tokens of one decoding step, or the rows routed to one expert) and B n×k.
//
// Why not sgemm: OpenBLAS 0.3.21 packs all of B into its panel layout on every call, which for
// a few rows costs more than the product (B is read, written and read again, while the product
// itself does 2·m·n·k flops on data that fits in cache). Why not m sgemv calls: each reads all of
// B again, m times the memory traffic. Both kernels here read each row of B from memory once, for
// all m rows of A: the weight traffic of one gemv.
//
// Two kernels, chosen by m and k (measured, BENCHMARKS.md):
// - one-pass: one row of B at a time against all m rows of A (m accumulators, or four sets of
//   them at 1-2 rows), so that B is read as one sequential stream. At 1-2 rows that stream runs at
//   the read rate of a core (BF16 at one row, one thread: 24-27 GB/s against 15-21 for the
//   grouped kernel it replaced there); from 3 rows, where the arithmetic slows the stream, the
//   row a few KiB ahead is read into L2 during the current one, and k runs in chunks that keep
//   the m rows' chunk of A in L1 (8 rows of A at k = 14336, 448 KiB, would otherwise come from L2
//   on every step). The grouped kernel at 8 rows was bound by its compute (its reductions and
//   reloads of B from L1: 8 rows cost 1.6-1.9× one).
// - grouped, for 1-2 rows whose A does not fit in half of L1 (k above 4096 at one row, 2048 at
//   two): groups of four rows of B, each multiplied with every row of A while it sits in L1 (two
//   rows of A × four of B per inner loop: eight accumulators, six loads per eight multiply-adds),
//   the next group read ahead into L2. Each piece of A then serves four rows of B.
// The one-pass kernel is compiled for AVX2 + FMA and for AVX-512 (16 floats a step); a CPU with
// neither (or RFID_MOE_NATIVE_SIMD=baseline) runs the grouped kernel for every m.
//
// Both kernels are templates over B's element type: f32, or BF16 bit patterns (weights kept as a
// checkpoint stores them, bf16_gemm.cc), widened in registers as they are loaded. The read-ahead
// hints step in elements, so with BF16 they are issued twice per cache line (harmless).
//
// On several threads (InPieces, below) B's rows are cut into pieces that threads take in turn
// (thread_pool.h). A decoding step is bound by how fast the weights come from memory, and one
// core does not draw all the bandwidth there is: on the 2-core machine of BENCHMARKS.md two
// processes streaming at once each got the rate one got alone, and a 32000-row BF16 lm_head
// block took 2.1-3.0 ms on one thread against 1.1-1.25 ms on two.
//
// More rows (a prompt's prefill; InTiles, below): A's rows in blocks of 8 through the same kernels
// against tiles of B that stay in L2 while every block passes over them, so B comes from memory
// once and the blocks' products from L2 (bf16_gemm.cc says where this beats sgemm).
#include "small_gemm.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "amx_bf16.h"
#include "bf16_dot.h"
#include "lane_sums.h"
#include "row_kernels.h"
#include "thread_pool.h"
#include "vectorize.h"

namespace rfid {

namespace {

using lanes::LaneSums;
using lanes::V16;
using lanes::V8;

__attribute__((always_inline)) inline V8 Load(const float* p) {
  V8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

typedef unsigned short U16x8 __attribute__((vector_size(16)));
typedef unsigned int U32x8 __attribute__((vector_size(32)));

/**
 * A vector VF of floats from as many BF16 weights (VH of uint16, VW of uint32 of the same lane
 * count), widened exactly: the 16 bits become the upper half of each float.
 */
template <typename VF, typename VH, typename VW>
__attribute__((always_inline)) inline VF WidenBf16Vector(const uint16_t* p) {
  VH h;
  std::memcpy(&h, p, sizeof(h));
  const VW w = __builtin_convertvector(h, VW) << 16;
  VF v;
  std::memcpy(&v, &w, sizeof(v));
  return v;
}

/** Eight BF16 weights widened to f32. */
__attribute__((always_inline)) inline V8 Load(const uint16_t* p) { return WidenBf16Vector<V8, U16x8, U32x8>(p); }

/** One weight as f32. */
__attribute__((always_inline)) inline float Scalar(float w) { return w; }
__attribute__((always_inline)) inline float Scalar(uint16_t w) { return Bf16Value(w); }

__attribute__((always_inline)) inline float Sum(V8 v) {
  float s = 0;
  for (int i = 0; i < 8; ++i) s += v[i];
  return s;
}

/** Asks for the cache line at `row` in each of four rows `stride` apart, into L2 (a hint: results are unchanged). */
template <typename W>
__attribute__((always_inline)) inline void ReadAhead(const W* row, int stride) {
  __builtin_prefetch(row, 0, 2);
  __builtin_prefetch(row + stride, 0, 2);
  __builtin_prefetch(row + 2 * static_cast<size_t>(stride), 0, 2);
  __builtin_prefetch(row + 3 * static_cast<size_t>(stride), 0, 2);
}

inline void Store(float* c, float value, float alpha, float beta) {
  *c = beta == 0 ? alpha * value : alpha * value + beta * *c;
}

}  // namespace

namespace {

// The grouped kernel, inlined into one function per instruction set below (compiled for that set).
template <typename W>
__attribute__((always_inline)) inline void GroupedBody(int m, int n, int k, float alpha, const float* a, int lda, const W* b,
                                                int ldb, float beta, float* c, int ldc) {
  const int k8 = k & ~7;
  int j = 0;
  for (; j + 4 <= n; j += 4) {
    const W* b0 = b + static_cast<size_t>(j) * ldb;
    const W* b1 = b0 + ldb;
    const W* b2 = b1 + ldb;
    const W* b3 = b2 + ldb;
    // The next group of four rows is read ahead (into L2) during the first pass over this one:
    // the passes over a group that follow run from L1 and issue no memory requests, so without it
    // memory sat idle meanwhile and 2-8 rows cost the memory time of one plus their compute.
    const W* next = j + 8 <= n ? b3 + ldb : nullptr;
    int r = 0;
    for (; r + 2 <= m; r += 2) {
      const float* x0 = a + static_cast<size_t>(r) * lda;
      const float* x1 = x0 + lda;
      V8 s00 = {}, s01 = {}, s02 = {}, s03 = {}, s10 = {}, s11 = {}, s12 = {}, s13 = {};
      const W* ahead = r == 0 ? next : nullptr;
      for (int p = 0; p < k8; p += 8) {
        if (ahead && (p & 15) == 0) ReadAhead(ahead + p, ldb);
        const V8 u0 = Load(x0 + p), u1 = Load(x1 + p);
        const V8 w0 = Load(b0 + p), w1 = Load(b1 + p), w2 = Load(b2 + p), w3 = Load(b3 + p);
        s00 += u0 * w0;
        s01 += u0 * w1;
        s02 += u0 * w2;
        s03 += u0 * w3;
        s10 += u1 * w0;
        s11 += u1 * w1;
        s12 += u1 * w2;
        s13 += u1 * w3;
      }
      float t00 = Sum(s00), t01 = Sum(s01), t02 = Sum(s02), t03 = Sum(s03);
      float t10 = Sum(s10), t11 = Sum(s11), t12 = Sum(s12), t13 = Sum(s13);
      for (int p = k8; p < k; ++p) {
        t00 += x0[p] * Scalar(b0[p]);
        t01 += x0[p] * Scalar(b1[p]);
        t02 += x0[p] * Scalar(b2[p]);
        t03 += x0[p] * Scalar(b3[p]);
        t10 += x1[p] * Scalar(b0[p]);
        t11 += x1[p] * Scalar(b1[p]);
        t12 += x1[p] * Scalar(b2[p]);
        t13 += x1[p] * Scalar(b3[p]);
      }
      float* c0 = c + static_cast<size_t>(r) * ldc + j;
      float* c1 = c0 + ldc;
      Store(c0, t00, alpha, beta);
      Store(c0 + 1, t01, alpha, beta);
      Store(c0 + 2, t02, alpha, beta);
      Store(c0 + 3, t03, alpha, beta);
      Store(c1, t10, alpha, beta);
      Store(c1 + 1, t11, alpha, beta);
      Store(c1 + 2, t12, alpha, beta);
      Store(c1 + 3, t13, alpha, beta);
    }
    for (; r < m; ++r) {
      const float* x0 = a + static_cast<size_t>(r) * lda;
      V8 s0 = {}, s1 = {}, s2 = {}, s3 = {};
      const W* ahead = r == 0 ? next : nullptr;
      for (int p = 0; p < k8; p += 8) {
        if (ahead && (p & 15) == 0) ReadAhead(ahead + p, ldb);
        const V8 u0 = Load(x0 + p);
        s0 += u0 * Load(b0 + p);
        s1 += u0 * Load(b1 + p);
        s2 += u0 * Load(b2 + p);
        s3 += u0 * Load(b3 + p);
      }
      float t0 = Sum(s0), t1 = Sum(s1), t2 = Sum(s2), t3 = Sum(s3);
      for (int p = k8; p < k; ++p) {
        t0 += x0[p] * Scalar(b0[p]);
        t1 += x0[p] * Scalar(b1[p]);
        t2 += x0[p] * Scalar(b2[p]);
        t3 += x0[p] * Scalar(b3[p]);
      }
      float* c0 = c + static_cast<size_t>(r) * ldc + j;
      Store(c0, t0, alpha, beta);
      Store(c0 + 1, t1, alpha, beta);
      Store(c0 + 2, t2, alpha, beta);
      Store(c0 + 3, t3, alpha, beta);
    }
  }
  // the last n mod 4 rows of B, one at a time
  for (; j < n; ++j) {
    const W* b0 = b + static_cast<size_t>(j) * ldb;
    for (int r = 0; r < m; ++r) {
      const float* x0 = a + static_cast<size_t>(r) * lda;
      V8 s0 = {};
      for (int p = 0; p < k8; p += 8) s0 += Load(x0 + p) * Load(b0 + p);
      float t0 = Sum(s0);
      for (int p = k8; p < k; ++p) t0 += x0[p] * Scalar(b0[p]);
      Store(c + static_cast<size_t>(r) * ldc + j, t0, alpha, beta);
    }
  }
}

/** A product kernel with A's rows of element type T (f32, or BF16 for BF16 activations) and B's of W. */
template <typename T, typename W>
using RowsKernel = void (*)(int, int, int, float, const T*, int, const W*, int, float, float*, int);

/** This file's kernels: A in f32. */
template <typename W>
using Kernel = RowsKernel<float, W>;

template <typename W>
void Baseline(int m, int n, int k, float alpha, const float* a, int lda, const W* b, int ldb, float beta, float* c, int ldc) {
  GroupedBody<W>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

#if defined(__GNUC__) && defined(__x86_64__)

/** How far ahead the one-pass kernel reads B (bytes): a few rows of the usual widths, so that
    the request is out well before the row is needed, without evicting A's chunk from L1. */
constexpr size_t kReadAheadBytes = 8192;

template <typename V>
__attribute__((always_inline)) inline V LoadV(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

typedef unsigned short U16x16 __attribute__((vector_size(32)));
typedef unsigned int U32x16 __attribute__((vector_size(64)));

/** A vector's worth of BF16 weights widened to f32 (exact). */
template <typename V>
__attribute__((always_inline)) inline V LoadV(const uint16_t* p);
template <>
__attribute__((always_inline)) inline V8 LoadV<V8>(const uint16_t* p) {
  return Load(p);
}
// Interleaved with zeros rather than widened and shifted: GCC 12 lowers the generic widening of
// 16 lanes as two 8-lane halves and an insert (six instructions), this as one permute.
typedef unsigned short U16x32 __attribute__((vector_size(64)));
template <>
__attribute__((always_inline)) inline V16 LoadV<V16>(const uint16_t* p) {
  U16x16 h;
  std::memcpy(&h, p, sizeof(h));
  // lane 2i is the low half of float i (zero), lane 2i + 1 its high half (the BF16 bits)
  const U16x32 w = __builtin_shufflevector(U16x16{}, h, 0, 16, 0, 17, 0, 18, 0, 19, 0, 20, 0, 21, 0, 22, 0, 23, 0, 24, 0, 25, 0, 26, 0,
                                           27, 0, 28, 0, 29, 0, 30, 0, 31);
  V16 v;
  std::memcpy(&v, &w, sizeof(v));
  return v;
}

/**
 * NB consecutive rows of B (from `w`, ldb apart) against the M rows of A's chunk `x`: C's columns
 * j..j + NB − 1. Each element's sums run in the same order whatever NB is (one chain per set of
 * accumulators, over the chunk in order), so taking B's rows in pairs changes no bit of C.
 */
template <int M, int NB, int kSets, typename V, typename W>
__attribute__((always_inline)) inline void OnePassRows(int kc, int kv, float alpha, const float* x, int lda, const W* w, int ldb,
                                                       const W* ahead, float beta, float* c, int ldc, bool first) {
  constexpr int kLanes = sizeof(V) / sizeof(float);
  V s[NB][M];
  for (int q = 0; q < NB; ++q)
    for (int r = 0; r < M; ++r) s[q][r] = V{};
  int p = 0;
  if constexpr (kSets == 4) {
    static_assert(NB == 1, "four sets only at 1-2 rows, one row of B at a time");
    V s1[M], s2[M], s3[M];
    for (int r = 0; r < M; ++r) s1[r] = s2[r] = s3[r] = V{};
    for (; p + 4 * kLanes <= kv; p += 4 * kLanes) {
      const V w0 = LoadV<V>(w + p), w1 = LoadV<V>(w + p + kLanes);
      const V w2 = LoadV<V>(w + p + 2 * kLanes), w3 = LoadV<V>(w + p + 3 * kLanes);
      for (int r = 0; r < M; ++r) {
        const float* xr = x + static_cast<size_t>(r) * lda + p;
        s[0][r] += LoadV<V>(xr) * w0;
        s1[r] += LoadV<V>(xr + kLanes) * w1;
        s2[r] += LoadV<V>(xr + 2 * kLanes) * w2;
        s3[r] += LoadV<V>(xr + 3 * kLanes) * w3;
      }
    }
    for (int r = 0; r < M; ++r) s[0][r] += s1[r] + (s2[r] + s3[r]);
  }
  if constexpr (kSets == 2) {
    V s2[NB][M];
    for (int q = 0; q < NB; ++q)
      for (int r = 0; r < M; ++r) s2[q][r] = V{};
    for (; p + 2 * kLanes <= kv; p += 2 * kLanes) {
      // one hint per 64-byte line of the rows ahead
      if (ahead) {
        for (int q = 0; q < NB; ++q) {
          const W* aq = ahead + static_cast<size_t>(q) * ldb;
          if ((p & 15) == 0) __builtin_prefetch(aq + p, 0, 2);
          if (kLanes == 16) __builtin_prefetch(aq + p + 16, 0, 2);
        }
      }
      V w0[NB], w1[NB];
      for (int q = 0; q < NB; ++q) {
        w0[q] = LoadV<V>(w + static_cast<size_t>(q) * ldb + p);
        w1[q] = LoadV<V>(w + static_cast<size_t>(q) * ldb + p + kLanes);
      }
#pragma GCC unroll 8
      for (int r = 0; r < M; ++r) {
        V x0 = LoadV<V>(x + static_cast<size_t>(r) * lda + p);
        V x1 = LoadV<V>(x + static_cast<size_t>(r) * lda + p + kLanes);
        // in registers once for both rows of B (the compiler would fold each load into each multiply-add)
        if constexpr (NB > 1) asm("" : "+v"(x0), "+v"(x1));
        for (int q = 0; q < NB; ++q) {
          s[q][r] += x0 * w0[q];
          s2[q][r] += x1 * w1[q];
        }
      }
    }
    for (int q = 0; q < NB; ++q)
      for (int r = 0; r < M; ++r) s[q][r] += s2[q][r];
  }
  for (; p < kv; p += kLanes) {
    if (ahead && (p & 15) == 0) {
      for (int q = 0; q < NB; ++q) __builtin_prefetch(ahead + static_cast<size_t>(q) * ldb + p, 0, 2);
    }
    V w0[NB];
    for (int q = 0; q < NB; ++q) w0[q] = LoadV<V>(w + static_cast<size_t>(q) * ldb + p);
#pragma GCC unroll 8
    for (int r = 0; r < M; ++r) {
      V x0 = LoadV<V>(x + static_cast<size_t>(r) * lda + p);
      if constexpr (NB > 1) asm("" : "+v"(x0));
      for (int q = 0; q < NB; ++q) s[q][r] += x0 * w0[q];
    }
  }
  for (int q = 0; q < NB; ++q) {
    const W* wq = w + static_cast<size_t>(q) * ldb;
    float t[8];
    LaneSums(s[q], M, t);
    for (int pp = p; pp < kc; ++pp) {
      for (int r = 0; r < M; ++r) t[r] += x[static_cast<size_t>(r) * lda + pp] * Scalar(wq[pp]);
    }
    for (int r = 0; r < M; ++r) {
      float* out = c + static_cast<size_t>(r) * ldc + q;
      // the first chunk writes C (beta = 0 ignores what was there), later chunks add to it
      if (!first) {
        *out += alpha * t[r];
      } else {
        Store(out, t[r], alpha, beta);
      }
    }
  }
}

/** The one-pass kernel for M rows of A (1 ≤ M ≤ 8) with vectors V (8 or 16 floats). */
template <int M, typename V, typename W>
__attribute__((always_inline)) inline void OnePassBody(int n, int k, float alpha, const float* a, int lda, const W* b,
                                                       int ldb, float beta, float* c, int ldc) {
  constexpr int kLanes = sizeof(V) / sizeof(float);
  // A's chunk (M rows) takes at most 24 KiB, half of a 48 KiB L1, leaving room for B's lines.
  // At 1-2 rows k is not cut: one row of B streams through whole.
  const int kChunk = M <= 2 ? std::max(k, 1) : std::max(256, (24576 / (4 * M)) & ~15);
  // Sets of accumulators, so that the multiply-adds into one accumulator (4 cycles apart) do not
  // bind: four at 1-2 rows (a row of B then streams at the rate memory delivers it), two up to
  // four rows, one beyond (M accumulators are enough chains).
  constexpr int kSets = M <= 2 ? 4 : M <= 4 ? 2 : 1;
  // With AVX-512, from 3 rows on, B's rows are taken two at a time, so that each vector of A,
  // loaded once into a register, serves two multiply-adds: one row at a time, every multiply-add
  // loaded its own piece of A, and the loads set the pace when B comes from cache (the tiled
  // product below). AVX2's 16 registers cannot hold the pairs' accumulators: they spilled, and the
  // AVX2 kernel ran at 0.70-0.94x its speed without them.
  constexpr int kPair = M >= 3 && sizeof(V) == 64 ? 2 : 1;
  // The row a few KiB ahead is read into L2 only from 3 rows on. At 1-2 rows the kernel reads B
  // as one sequential stream, which the hardware prefetcher follows at the full read rate of a
  // core; the hints only took issue slots from it (a row at a time with hints: 19.9-25.4 GB/s,
  // without: 22.6-28.0 GB/s, a plain read 22.9-29.5; BENCHMARKS.md "One row of B at a time").
  constexpr bool kReadAhead = M >= 3;
  for (int k0 = 0; k0 < k; k0 += kChunk) {
    const int kc = std::min(kChunk, k - k0);
    const int kv = kc & ~(kLanes - 1);
    const size_t chunkBytes = static_cast<size_t>(kc) * sizeof(W);
    const int aheadRows = static_cast<int>(std::max<size_t>(1, (kReadAheadBytes + chunkBytes - 1) / chunkBytes));
    const float* x = a + k0;
    int j = 0;
    if constexpr (kPair == 2) {
      for (; j + 1 < n; j += 2) {
        const W* w = b + static_cast<size_t>(j) * ldb + k0;
        const W* ahead = kReadAhead && j + aheadRows + 1 < n ? w + static_cast<size_t>(aheadRows) * ldb : nullptr;
        OnePassRows<M, 2, kSets, V, W>(kc, kv, alpha, x, lda, w, ldb, ahead, beta, c + j, ldc, k0 == 0);
      }
    }
    for (; j < n; ++j) {
      const W* w = b + static_cast<size_t>(j) * ldb + k0;
      const W* ahead = kReadAhead && j + aheadRows < n ? w + static_cast<size_t>(aheadRows) * ldb : nullptr;
      OnePassRows<M, 1, kSets, V, W>(kc, kv, alpha, x, lda, w, ldb, ahead, beta, c + j, ldc, k0 == 0);
    }
  }
}

/** Longest row (floats) of a one-row A for which the one-pass kernel runs 1-2 rows: A's rows
    then take at most 16 KiB, half of a 32 KiB L1. */
constexpr int kOnePassSmallMaxK = 4096;

template <typename V, typename W>
__attribute__((always_inline)) inline void Dispatch(int m, int n, int k, float alpha, const float* a, int lda, const W* b, int ldb,
                                                    float beta, float* c, int ldc) {
  switch (m) {
    // 1-2 rows: one row of B at a time while A's rows fit in half of L1; beyond, the grouped
    // kernel, which loads each piece of A once for four rows of B (the one-pass kernel at 2 rows
    // and k = 4096 ran at 12-13 GB/s against the grouped kernel's 18-19).
    case 1:
      if (k <= kOnePassSmallMaxK) return OnePassBody<1, V, W>(n, k, alpha, a, lda, b, ldb, beta, c, ldc);
      break;
    case 2:
      if (k <= kOnePassSmallMaxK / 2) return OnePassBody<2, V, W>(n, k, alpha, a, lda, b, ldb, beta, c, ldc);
      break;
    case 3: return OnePassBody<3, V, W>(n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    case 4: return OnePassBody<4, V, W>(n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    case 5: return OnePassBody<5, V, W>(n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    case 6: return OnePassBody<6, V, W>(n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    case 7: return OnePassBody<7, V, W>(n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    case 8: return OnePassBody<8, V, W>(n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    default: break;
  }
  GroupedBody<W>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// Chosen at run time (why not target_clones: see vectorize.h).
template <typename W>
__attribute__((target("avx2,fma"))) void Avx2Fma(int m, int n, int k, float alpha, const float* a, int lda, const W* b, int ldb,
                                                 float beta, float* c, int ldc) {
  Dispatch<V8, W>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// The grouped kernel stays at 256 bits here (1-2 rows are bound by memory, not by width).
template <typename W>
__attribute__((target("avx512f,avx512bw,avx2,fma"))) void Avx512(int m, int n, int k, float alpha, const float* a, int lda, const W* b,
                                                        int ldb, float beta, float* c, int ldc) {
  Dispatch<V16, W>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <typename W>
Kernel<W> Pick() {
  switch (SimdLevel()) {
    case Simd::kAmx:
    case Simd::kAvx512: return Avx512<W>;
    case Simd::kAvx2Fma: return Avx2Fma<W>;
    default: return Baseline<W>;
  }
}
#else
template <typename W>
Kernel<W> Pick() { return Baseline<W>; }
#endif

}  // namespace

namespace {

/** Bytes of B below which a product runs on one thread, and the least a piece gets: handing a
    piece to a worker costs a few microseconds, a 64 KiB piece about as many as that from memory. */
constexpr size_t kPieceBytesMin = 64 * 1024;

/** Rows of B a piece's first row is a multiple of: the grouped kernel takes B's rows four at a
    time and treats the rest one at a time with the same sums, so pieces cut at multiples of four
    give every element the sums it gets on one thread, bit for bit. */
constexpr int kPieceRowsAlign = 16;

/** Pieces per thread: more pieces than threads, so that one thread late to start (a busy
    machine) holds up at most a piece, not a share. */
constexpr int kPiecesPerThread = 4;

/** kernel over rows of B cut into pieces run on up to `threads` threads (see thread_pool.h). */
template <typename T, typename W, typename K>
void InPieces(const K& kernel, int threads, int m, int n, int k, float alpha, const T* a, int lda, const W* b, int ldb,
              float beta, float* c, int ldc) {
  const size_t bytes = static_cast<size_t>(n) * k * sizeof(W);
  const size_t byBytes = bytes / kPieceBytesMin;
  const size_t byRows = static_cast<size_t>(n) / kPieceRowsAlign;
  const int pieces = static_cast<int>(std::min<size_t>({static_cast<size_t>(std::max(threads, 1)) * kPiecesPerThread, byBytes, byRows}));
  if (threads <= 1 || pieces <= 1) {
    kernel(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  // piece p takes rows [first(p), first(p + 1)) of B, each start a multiple of kPieceRowsAlign
  const int blocks = (n + kPieceRowsAlign - 1) / kPieceRowsAlign;
  RunPieces(threads, pieces, [&](int p) {
    const int j0 = static_cast<int>(static_cast<int64_t>(blocks) * p / pieces) * kPieceRowsAlign;
    const int j1 = std::min(n, static_cast<int>(static_cast<int64_t>(blocks) * (p + 1) / pieces) * kPieceRowsAlign);
    if (j1 > j0) kernel(m, j1 - j0, k, alpha, a, lda, b + static_cast<size_t>(j0) * ldb, ldb, beta, c + j0, ldc);
  });
}

/** Alignment of the rows of A the kernels read: a cache line, the width of an AVX-512 vector. */
constexpr uintptr_t kRowAlign = 64;

/**
 * A's rows where every row starts on a cache line: `a` itself when they already do, else a copy
 * in this thread's buffer (lda becomes the copy's stride). The kernels load A in whole vectors,
 * once per row of B, and A comes from JavaScript typed arrays, which are 8- or 16-byte aligned:
 * every 64-byte load then spans two lines and costs two. With 8 rows that was the kernel's limit
 * (BENCHMARKS.md, "Decode"). The copy is m·k floats against n·k weights read, and the arithmetic
 * is unchanged, so the result is the same bit for bit. The buffer is the calling thread's; the
 * pieces run on other threads read it only during this call.
 */
const float* RowsAligned(int m, int k, const float* a, int& lda) {
  const bool aligned = reinterpret_cast<uintptr_t>(a) % kRowAlign == 0 && (m == 1 || (static_cast<size_t>(lda) * sizeof(float)) % kRowAlign == 0);
  if (aligned || k < 16) return a;
  constexpr int kRowFloats = kRowAlign / sizeof(float);
  const int ld = (k + kRowFloats - 1) / kRowFloats * kRowFloats;
  thread_local std::vector<float> buffer;
  const size_t need = static_cast<size_t>(m) * ld + kRowFloats;
  if (buffer.size() < need) buffer.resize(need);
  float* rows = buffer.data();
  rows += (kRowAlign - reinterpret_cast<uintptr_t>(rows) % kRowAlign) % kRowAlign / sizeof(float);
  for (int r = 0; r < m; ++r) std::memcpy(rows + static_cast<size_t>(r) * ld, a + static_cast<size_t>(r) * lda, static_cast<size_t>(k) * sizeof(float));
  lda = ld;
  return rows;
}

/** Bytes of B a tile takes in the tiled product: in L2 (with 8 rows of A beside it) while every
    block of A's rows passes over it. */
constexpr size_t kTileBytes = 256 * 1024;

/**
 * kernel over A's rows in blocks of kSmallRowsMax against B cut into tiles of rows that stay in L2
 * while each block passes over them: B comes from memory once, the blocks' products from L2. The
 * units (a tile and a run of blocks) go to up to `threads` threads. Every element's sums are those
 * of the kernel for its block's rows, whatever the tiles, runs and threads (blocks start at
 * multiples of kSmallRowsMax; tiles at multiples of kPieceRowsAlign).
 */
template <typename T, typename W>
void InTiles(RowsKernel<T, W> kernel, int threads, int m, int n, int k, float alpha, const T* a, int lda, const W* b, int ldb,
             float beta, float* c, int ldc) {
  const int tileRows = static_cast<int>(std::max<size_t>(
      kPieceRowsAlign, kTileBytes / (static_cast<size_t>(k) * sizeof(W)) / kPieceRowsAlign * kPieceRowsAlign));
  const int tiles = (n + tileRows - 1) / tileRows;
  const int blocks = (m + kSmallRowsMax - 1) / kSmallRowsMax;
  // runs of blocks per tile: enough units for every thread to get several, none of less than
  // one block (B's tile is then read from L2 once per block, not from memory)
  const int want = std::max(threads, 1) * kPiecesPerThread;
  const int runs = threads <= 1 ? 1 : std::min(blocks, std::max(1, (want + tiles - 1) / tiles));
  auto unit = [&](int u) {
    const int t = u / runs;
    const int r = u % runs;
    const int j0 = t * tileRows;
    const int nt = std::min(tileRows, n - j0);
    const int b0 = static_cast<int>(static_cast<int64_t>(blocks) * r / runs);
    const int b1 = static_cast<int>(static_cast<int64_t>(blocks) * (r + 1) / runs);
    for (int blk = b0; blk < b1; ++blk) {
      const int r0 = blk * kSmallRowsMax;
      const int rows = std::min(kSmallRowsMax, m - r0);
      kernel(rows, nt, k, alpha, a + static_cast<size_t>(r0) * lda, lda, b + static_cast<size_t>(j0) * ldb, ldb, beta,
             c + static_cast<size_t>(r0) * ldc + j0, ldc);
    }
  };
  // on one thread, or with one unit, RunPieces runs them in order on this thread
  RunPieces(threads, tiles * runs, unit);
}

}  // namespace

void SmallRowsGemmTransB(int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb, float beta,
                         float* c, int ldc, int threads) {
  static const Kernel<float> kernel = Pick<float>();
  a = RowsAligned(m, k, a, lda);
  InPieces<float, float>(kernel, threads, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void SmallRowsGemmTransBBf16(int m, int n, int k, float alpha, const float* a, int lda, const uint16_t* b, int ldb, float beta,
                             float* c, int ldc, int threads) {
  static const Kernel<uint16_t> kernel = Pick<uint16_t>();
  a = RowsAligned(m, k, a, lda);
  InPieces<float, uint16_t>(kernel, threads, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void TiledRowsGemmTransBBf16(int m, int n, int k, float alpha, const float* a, int lda, const uint16_t* b, int ldb, float beta,
                             float* c, int ldc, int threads) {
  static const Kernel<uint16_t> kernel = Pick<uint16_t>();
  a = RowsAligned(m, k, a, lda);
  InTiles<float, uint16_t>(kernel, threads, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void SmallRowsGemmTransBBf16Dot(int m, int n, int k, float alpha, const uint16_t* a, int lda, const uint16_t* b, int ldb, float beta,
                                float* c, int ldc, int threads) {
  if (SimdLevel() == Simd::kAmx) {
    // A's rows packed for the tiles once, here; the pieces on other threads read them during this call
    const uint32_t* pairs = AmxPackRows(m, k, a, lda);
    const auto tiles = [pairs](int mm, int nn, int kk, float al, const uint16_t* aa, int ldaa, const uint16_t* bb, int ldbb, float be,
                               float* cc, int ldcc) { AmxBf16Rows(mm, nn, kk, al, aa, ldaa, pairs, bb, ldbb, be, cc, ldcc); };
    InPieces<uint16_t, uint16_t>(tiles, threads, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  InPieces<uint16_t, uint16_t>(Bf16DotRows, threads, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void TiledRowsGemmTransBBf16Dot(int m, int n, int k, float alpha, const uint16_t* a, int lda, const uint16_t* b, int ldb, float beta,
                                float* c, int ldc, int threads) {
  InTiles<uint16_t, uint16_t>(Bf16DotRows, threads, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace rfid
