// A GEMM for a few rows against a row-major weight matrix: C = alpha·A·Bᵀ + beta·C with A m×k
// (m small: the tokens of one decoding step, or the rows routed to one expert) and B n×k.
//
// Why not sgemm: OpenBLAS 0.3.21 packs all of B into its panel layout on every call, which for
// a few rows costs more than the product (B is read, written and read again, while the product
// itself does 2·m·n·k flops on data that fits in cache). Why not m sgemv calls: each reads all of
// B again, m times the memory traffic. Here each group of four rows of B is read from memory
// once and, while it sits in L1, multiplied with every row of A (which stays in L1/L2 too): the
// weight traffic of one gemv for m rows. Two rows of A × four rows of B per inner loop keep eight
// accumulators in registers (six loads per eight multiply-adds).
#include "small_gemm.h"

#include <cstring>

#include "vectorize.h"


namespace rfid {

namespace {

typedef float V8 __attribute__((vector_size(32)));

__attribute__((always_inline)) inline V8 Load(const float* p) {
  V8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

__attribute__((always_inline)) inline float Sum(V8 v) {
  float s = 0;
  for (int i = 0; i < 8; ++i) s += v[i];
  return s;
}

/** Asks for the cache line at `row` in each of four rows `stride` apart, into L2 (a hint: results are unchanged). */
__attribute__((always_inline)) inline void ReadAhead(const float* row, int stride) {
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

// The body, inlined into one function per instruction set below (compiled for that set).
__attribute__((always_inline)) inline void Body(int m, int n, int k, float alpha, const float* a, int lda, const float* b,
                                                int ldb, float beta, float* c, int ldc) {
  const int k8 = k & ~7;
  int j = 0;
  for (; j + 4 <= n; j += 4) {
    const float* b0 = b + static_cast<size_t>(j) * ldb;
    const float* b1 = b0 + ldb;
    const float* b2 = b1 + ldb;
    const float* b3 = b2 + ldb;
    // The next group of four rows is read ahead (into L2) during the first pass over this one:
    // the passes over a group that follow run from L1 and issue no memory requests, so without it
    // memory sat idle meanwhile and 2-8 rows cost the memory time of one plus their compute.
    const float* next = j + 8 <= n ? b3 + ldb : nullptr;
    int r = 0;
    for (; r + 2 <= m; r += 2) {
      const float* x0 = a + static_cast<size_t>(r) * lda;
      const float* x1 = x0 + lda;
      V8 s00 = {}, s01 = {}, s02 = {}, s03 = {}, s10 = {}, s11 = {}, s12 = {}, s13 = {};
      const float* ahead = r == 0 ? next : nullptr;
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
        t00 += x0[p] * b0[p];
        t01 += x0[p] * b1[p];
        t02 += x0[p] * b2[p];
        t03 += x0[p] * b3[p];
        t10 += x1[p] * b0[p];
        t11 += x1[p] * b1[p];
        t12 += x1[p] * b2[p];
        t13 += x1[p] * b3[p];
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
      const float* ahead = r == 0 ? next : nullptr;
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
        t0 += x0[p] * b0[p];
        t1 += x0[p] * b1[p];
        t2 += x0[p] * b2[p];
        t3 += x0[p] * b3[p];
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
    const float* b0 = b + static_cast<size_t>(j) * ldb;
    for (int r = 0; r < m; ++r) {
      const float* x0 = a + static_cast<size_t>(r) * lda;
      V8 s0 = {};
      for (int p = 0; p < k8; p += 8) s0 += Load(x0 + p) * Load(b0 + p);
      float t0 = Sum(s0);
      for (int p = k8; p < k; ++p) t0 += x0[p] * b0[p];
      Store(c + static_cast<size_t>(r) * ldc + j, t0, alpha, beta);
    }
  }
}

using Kernel = void (*)(int, int, int, float, const float*, int, const float*, int, float, float*, int);

void Baseline(int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb, float beta, float* c,
              int ldc) {
  Body(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

#if defined(__GNUC__) && defined(__x86_64__)
// AVX2 + FMA (8 floats a step, fused multiply-adds), chosen at run time (why not target_clones:
// see vectorize.h).
__attribute__((target("avx2,fma"))) void Avx2Fma(int m, int n, int k, float alpha, const float* a, int lda,
                                                 const float* b, int ldb, float beta, float* c, int ldc) {
  Body(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

Kernel Pick() { return HasAvx2Fma() ? Avx2Fma : Baseline; }
#else
Kernel Pick() { return Baseline; }
#endif

}  // namespace

void SmallRowsGemmTransB(int m, int n, int k, float alpha, const float* a, int lda, const float* b, int ldb, float beta,
                         float* c, int ldc) {
  static const Kernel kernel = Pick();
  kernel(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace rfid
