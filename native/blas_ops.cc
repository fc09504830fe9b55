// Level-3 BLAS entry points: GEMM, SYRK (both triangles filled) and the triangular solve.
// All take row-major arrays and call CBLAS with CblasRowMajor, so no data is copied.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "args.h"
#include "lapack.h"
#include "ops.h"
#include "small_gemm.h"
#include "gemm_f32.h"

extern "C" {
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
}

namespace rfid {

namespace {

CBLAS_TRANSPOSE Trans(bool t) { return t ? CblasTrans : CblasNoTrans; }

/**
 * Products below this many multiply-adds run on one OpenBLAS thread. A threaded call hands work to
 * the worker threads and waits for all of them; for a small product (one attention head's QKᵀ of
 * a 256-token window: ~2 M multiply-adds, well under a millisecond) that hand-off costs as much
 * as the work, and on a busy machine a worker that is not scheduled stalls the call for a whole
 * time slice: an eval with 2 threads measured 2-3x slower than with 1 (load ~11), from the
 * thousand such calls per layer.
 */
constexpr double kThreadedGemmMin = 16.0 * 1024 * 1024;

/** Runs `op` on one OpenBLAS thread when the product is small (see kThreadedGemmMin). */
template <typename F>
void WithThreadsFor(double macs, F op) {
  const int threads = openblas_get_num_threads();
  if (threads > 1 && macs < kThreadedGemmMin) {
    openblas_set_num_threads(1);
    op();
    openblas_set_num_threads(threads);
  } else {
    op();
  }
}

/** C := beta·C, with beta = 0 clearing C even when it holds NaN (BLAS semantics). */
template <typename T>
void ScaleInPlace(T* c, size_t count, double beta) {
  if (beta == 0) {
    std::fill(c, c + count, T(0));
  } else if (beta != 1) {
    for (size_t i = 0; i < count; ++i) c[i] = static_cast<T>(c[i] * beta);
  }
}

/** Copies the lower triangle of the row-major n×n matrix onto its upper triangle. */
template <typename T>
void MirrorLowerToUpper(T* c, size_t n) {
  // Blocked so both the row reads and the column writes stay in cache.
  const size_t block = 64;
  for (size_t ib = 0; ib < n; ib += block) {
    for (size_t jb = 0; jb <= ib; jb += block) {
      const size_t iEnd = std::min(n, ib + block);
      const size_t jEnd = std::min(n, jb + block);
      for (size_t i = ib; i < iEnd; ++i) {
        for (size_t j = jb; j < std::min(jEnd, i); ++j) c[j * n + i] = c[i * n + j];
      }
    }
  }
}

}  // namespace

void GemmF32(int m, int n, int k, float alpha, const float* a, bool transA, const float* b, bool transB, float beta, float* c) {
  GemmF32Strided(m, n, k, alpha, a, transA, b, transB, beta, c, n);
}

void GemmF32Strided(int m, int n, int k, float alpha, const float* a, bool transA, const float* b, bool transB, float beta, float* c,
                    int ldc) {
  const size_t count = static_cast<size_t>(m) * n;
  const int lda = transA ? m : k;
  const int ldb = transB ? k : n;
  if (m == 1) {
    // One row (a decoding step): a matrix-vector product. OpenBLAS 0.3.21's sgemm packs all of B
    // on every call, which for one row costs more than the product itself (the lm_head of a
    // 32000-token vocabulary: 50 ms against ~15 ms). a is a vector either way (stride 1).
    // A small one (a router, one head's scores) on one thread: OpenBLAS threads gemv from 9216
    // elements, and handing that to its workers cost ~50 µs a call against ~9 µs of work.
    if (beta == 0) ScaleInPlace(c, count, 0);  // BLAS gemv reads y even when beta = 0 in some builds
    WithThreadsFor(static_cast<double>(n) * k, [&] {
      cblas_sgemv(CblasRowMajor, transB ? CblasNoTrans : CblasTrans, transB ? n : k, transB ? k : n, alpha, b, ldb, a, 1, beta, c, 1);
    });
    return;
  }
  const double macs = static_cast<double>(m) * n * k;
  if (m <= kSmallRowsMax && !transA && transB) {
    // A few rows against a row-major weight matrix (a decoding step with several sequences, the
    // rows routed to one expert): B read once, no packing (small_gemm.cc), on the engine's thread
    // count (the OpenBLAS count it sets: one inside RunParts' units).
    SmallRowsGemmTransB(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, openblas_get_num_threads());
    return;
  }
  WithThreadsFor(macs, [&] { rfid::Gemm(CblasRowMajor, Trans(transA), Trans(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); });
}

/**
 * gemm(m, n, k, a, b, c, transA, transB, alpha, beta): C (m×n) = alpha·op(A)·op(B) + beta·C.
 * A is m×k (k×m when transA), B is k×n (n×k when transB).
 */
Napi::Value JsGemm(const Napi::CallbackInfo& info) {
  const char* op = "gemm";
  Napi::Env env = info.Env();
  const int m = DimArg(info, 0, op, "m");
  const int n = DimArg(info, 1, op, "n");
  const int k = DimArg(info, 2, op, "k");
  const ArrayArg a = FloatArrayArg(info, 3, op, "a");
  const ArrayArg b = FloatArrayArg(info, 4, op, "b");
  const ArrayArg c = FloatArrayArg(info, 5, op, "c");
  const bool transA = BoolArg(info, 6, op, "transA");
  const bool transB = BoolArg(info, 7, op, "transB");
  const double alpha = NumberArg(info, 8, op, "alpha");
  const double beta = NumberArg(info, 9, op, "beta");
  RequireSameDType(env, op, a, b);
  RequireSameDType(env, op, a, c);
  if (transA) RequireShape(env, op, a, k, m, "k, m and transA: a is k×m when transA");
  else RequireShape(env, op, a, m, k, "m, k and transA: a is m×k unless transA");
  if (transB) RequireShape(env, op, b, n, k, "n, k and transB: b is n×k when transB");
  else RequireShape(env, op, b, k, n, "k, n and transB: b is k×n unless transB");
  RequireShape(env, op, c, m, n, "m and n: c is m×n");
  RequireNoOverlap(env, op, c, a);
  RequireNoOverlap(env, op, c, b);
  if (m == 0 || n == 0) return env.Undefined();
  const size_t count = static_cast<size_t>(m) * n;
  if (k == 0) {
    // An empty product; done here because BLAS rejects a leading dimension of 0.
    if (c.dtype == DType::F32) ScaleInPlace(c.f32(), count, beta);
    else ScaleInPlace(c.f64(), count, beta);
    return env.Undefined();
  }
  if (a.dtype == DType::F32) {
    GemmF32(m, n, k, static_cast<float>(alpha), a.f32(), transA, b.f32(), transB, static_cast<float>(beta), c.f32());
  } else {
    WithThreadsFor(static_cast<double>(m) * n * k, [&] {
      rfid::Gemm(CblasRowMajor, Trans(transA), Trans(transB), m, n, k, alpha, a.f64(), transA ? m : k, b.f64(), transB ? k : n, beta,
                 c.f64(), n);
    });
  }
  return env.Undefined();
}

/**
 * syrk(n, k, a, c, trans, alpha, beta): C (n×n) = alpha·AᵀA + beta·C when trans (A is k×n),
 * else alpha·AAᵀ + beta·C (A is n×k). BLAS computes the lower triangle; it is then mirrored.
 */
Napi::Value JsSyrk(const Napi::CallbackInfo& info) {
  const char* op = "syrk";
  Napi::Env env = info.Env();
  const int n = DimArg(info, 0, op, "n");
  const int k = DimArg(info, 1, op, "k");
  const ArrayArg a = FloatArrayArg(info, 2, op, "a");
  const ArrayArg c = FloatArrayArg(info, 3, op, "c");
  const bool trans = BoolArg(info, 4, op, "trans");
  const double alpha = NumberArg(info, 5, op, "alpha");
  const double beta = NumberArg(info, 6, op, "beta");
  RequireSameDType(env, op, a, c);
  if (trans) RequireShape(env, op, a, k, n, "k, n and trans: a is k×n when trans (C = AᵀA)");
  else RequireShape(env, op, a, n, k, "n, k and trans: a is n×k unless trans (C = AAᵀ)");
  RequireShape(env, op, c, n, n, "n: c is n×n");
  RequireNoOverlap(env, op, c, a);
  if (n == 0) return env.Undefined();
  const size_t count = static_cast<size_t>(n) * n;
  if (k == 0) {
    // Empty Gram: only beta·C remains; mirrored like the BLAS path (the lower triangle rules).
    if (c.dtype == DType::F32) {
      ScaleInPlace(c.f32(), count, beta);
      MirrorLowerToUpper(c.f32(), n);
    } else {
      ScaleInPlace(c.f64(), count, beta);
      MirrorLowerToUpper(c.f64(), n);
    }
    return env.Undefined();
  }
  const int lda = trans ? n : k;
  if (a.dtype == DType::F32) {
    rfid::Syrk(CblasRowMajor, CblasLower, Trans(trans), n, k, static_cast<float>(alpha), a.f32(), lda,
               static_cast<float>(beta), c.f32(), n);
    MirrorLowerToUpper(c.f32(), n);
  } else {
    rfid::Syrk(CblasRowMajor, CblasLower, Trans(trans), n, k, alpha, a.f64(), lda, beta, c.f64(), n);
    MirrorLowerToUpper(c.f64(), n);
  }
  return env.Undefined();
}

/**
 * solveTriangular(n, m, L, b, lower, transL, left): overwrites B with X where
 * op(L)·X = B (left, B is n×m) or X·op(L) = B (right, B is m×n); op(L) = Lᵀ when transL.
 */
Napi::Value JsSolveTriangular(const Napi::CallbackInfo& info) {
  const char* op = "solveTriangular";
  Napi::Env env = info.Env();
  const int n = DimArg(info, 0, op, "n");
  const int m = DimArg(info, 1, op, "m");
  const ArrayArg l = Float64ArrayArg(info, 2, op, "L");
  const ArrayArg b = Float64ArrayArg(info, 3, op, "b");
  const bool lower = BoolArg(info, 4, op, "lower");
  const bool transL = BoolArg(info, 5, op, "transL");
  const bool left = BoolArg(info, 6, op, "left");
  RequireShape(env, op, l, n, n, "n: L is n×n");
  if (left) RequireShape(env, op, b, n, m, "n and m: b is n×m for side 'left'");
  else RequireShape(env, op, b, m, n, "m and n: b is m×n for side 'right'");
  RequireNoOverlap(env, op, b, l);
  const double* diag = l.f64();
  for (int i = 0; i < n; ++i) {
    const double d = diag[static_cast<size_t>(i) * n + i];
    if (d == 0 || !std::isfinite(d)) {
      ThrowError(env, op,
                 "L is singular: diagonal element L[" + std::to_string(i) + "][" + std::to_string(i) + "] = " +
                     std::to_string(d) + " (a Cholesky factor needs damping, see CholeskyOptions)");
    }
  }
  if (n == 0 || m == 0) return env.Undefined();
  const int rows = left ? n : m;
  const int cols = left ? m : n;
  cblas_dtrsm(CblasRowMajor, left ? CblasLeft : CblasRight, lower ? CblasLower : CblasUpper, Trans(transL),
              CblasNonUnit, rows, cols, 1.0, l.f64(), n, b.f64(), cols);
  return env.Undefined();
}

}  // namespace rfid
