// LAPACK factorizations: Cholesky with damped retry (dpotrf), symmetric eigendecomposition
// (dsyevd's stages, eig_sym.cc, reordered to descending), thin / top-r SVD (sgesdd/dgesdd 'S') and singular values
// only (dgesdd 'N').
//
// Row-major inputs are used through the transpose trick (see lapack.h): the lower triangle of a
// row-major symmetric matrix is the upper triangle of the same buffer read column-major.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <sstream>
#include <vector>

#include "args.h"
#include "eig_sym.h"
#include "lapack.h"
#include "ops.h"

namespace rfid {

namespace {

/**
 * Copies the lower triangle (row-major, diagonal included) of the n×n matrix `a` into `dst`,
 * leaving dst's strict upper triangle untouched, and throws unless every copied element is
 * finite (LAPACK may loop or return garbage on NaN/Inf). One pass over half the matrix: checking
 * and copying separately, and copying the triangle LAPACK never reads, cost as much again.
 */
void CopyLowerTriangleFinite(Napi::Env env, const char* op, const ArrayArg& a, size_t n, double* dst) {
  const double* src = a.f64();
  for (size_t i = 0; i < n; ++i) {
    const double* row = src + i * n;
    double* out = dst + i * n;
    // x·0 is 0 for finite x and NaN for NaN/±Inf, so the row sum flags a bad row without a
    // data-dependent branch per element; the slow search runs only for the row that fails.
    double flag = 0;
    for (size_t j = 0; j <= i; ++j) {
      out[j] = row[j];
      flag += row[j] * 0.0;
    }
    if (flag != 0.0 || std::isnan(flag)) {
      for (size_t j = 0; j <= i; ++j) {
        if (!std::isfinite(row[j])) {
          ThrowError(env, op, std::string(a.name) + "[" + std::to_string(i) + "][" + std::to_string(j) + "] is NaN or Inf");
        }
      }
    }
  }
}

/**
 * Like CopyLowerTriangleFinite, but into the column-major lower triangle of dst (dst[i + j·n] =
 * A[i][j], j ≤ i): a transpose of the triangle, in 16×16 tiles with each destination column
 * segment written contiguously (the faster order for the output transpose too, eig_sym.cc).
 * Elements are checked for NaN/Inf a tile row at a time.
 */
void CopyLowerTriangleTransposedFinite(Napi::Env env, const char* op, const ArrayArg& a, size_t n, double* dst) {
  constexpr size_t kTile = 16;
  const double* src = a.f64();
  for (size_t i0 = 0; i0 < n; i0 += kTile) {
    const size_t i1 = std::min(n, i0 + kTile);
    double flag = 0;
    for (size_t j = 0; j < i1; ++j) {
      double* col = dst + j * n;
      for (size_t i = std::max(i0, j); i < i1; ++i) {
        const double v = src[i * n + j];
        col[i] = v;
        flag += v * 0.0;
      }
    }
    if (flag != 0.0 || std::isnan(flag)) {
      for (size_t i = i0; i < i1; ++i) {
        for (size_t j = 0; j <= i; ++j) {
          if (!std::isfinite(src[i * n + j])) {
            ThrowError(env, op, std::string(a.name) + "[" + std::to_string(i) + "][" + std::to_string(j) + "] is NaN or Inf");
          }
        }
      }
    }
  }
}

std::string Num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

}  // namespace

/**
 * cholesky(n, a, dampingSchedule: Float64Array) → { L, damping }.
 * L·Lᵀ = A + damping·mean(diag(A))·I; the first λ of the schedule that makes the matrix positive
 * definite is used (0 when A already is). Only the lower triangle of A is read.
 */
Napi::Value JsCholesky(const Napi::CallbackInfo& info) {
  const char* op = "cholesky";
  Napi::Env env = info.Env();
  const int n = DimArg(info, 0, op, "n");
  const ArrayArg a = Float64ArrayArg(info, 1, op, "a");
  const ArrayArg schedule = Float64ArrayArg(info, 2, op, "dampingSchedule");
  RequireShape(env, op, a, n, n, "n: a is n×n");
  for (size_t i = 0; i < schedule.length; ++i) {
    const double lambda = schedule.f64()[i];
    if (!std::isfinite(lambda) || lambda <= 0) {
      ThrowError(env, op, "dampingSchedule[" + std::to_string(i) + "] = " + Num(lambda) + " must be a positive number");
    }
  }
  const size_t nn = static_cast<size_t>(n) * n;
  // A new ArrayBuffer is zero-filled, and only the lower triangle is ever written below (dpotrf
  // touches only the triangle it factors), so L's strict upper triangle is already 0.
  Napi::Float64Array out = Napi::Float64Array::New(env, nn);
  Napi::Object result = Napi::Object::New(env);
  result.Set("L", out);
  result.Set("damping", 0.0);
  if (n == 0) return result;

  const double* src = a.f64();
  double* l = out.Data();
  CopyLowerTriangleFinite(env, op, a, n, l);
  double meanDiag = 0;
  for (int i = 0; i < n; ++i) meanDiag += src[static_cast<size_t>(i) * n + i];
  meanDiag /= n;

  auto attempt = [&](double shift) -> lapack_int {
    if (shift != 0) {
      // a failed dpotrf has overwritten part of the triangle: start again from A
      for (size_t i = 0; i < static_cast<size_t>(n); ++i) std::copy(src + i * n, src + i * n + i + 1, l + i * n);
      for (int i = 0; i < n; ++i) l[static_cast<size_t>(i) * n + i] += shift;
    }
    // Column-major 'U' on this buffer is row-major 'L' (transpose trick). OpenBLAS implements
    // dpotrf itself (recursive, blocked, threaded), not LAPACK's reference code.
    return LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'U', n, l, n);
  };

  lapack_int status = attempt(0);
  double damping = 0;
  // A shift of λ·mean(diag) can only help when the mean diagonal is positive.
  if (status > 0 && meanDiag > 0) {
    for (size_t i = 0; i < schedule.length && status > 0; ++i) {
      damping = schedule.f64()[i];
      status = attempt(damping * meanDiag);
    }
  }
  if (status < 0) ThrowError(env, op, "LAPACK dpotrf rejected argument " + std::to_string(-status));
  if (status > 0) {
    std::string why;
    if (schedule.length == 0) {
      why = "and damping is disabled (empty dampingSchedule)";
    } else if (!(meanDiag > 0)) {
      why = "and damping cannot help because mean(diag(A)) = " + Num(meanDiag) + " is not positive (last λ = " +
            Num(schedule.f64()[schedule.length - 1]) + ")";
    } else {
      why = "even with damping λ = " + Num(damping) + " (A + " + Num(damping * meanDiag) + "·I)";
    }
    ThrowError(env, op,
               "the " + ShapeText(n, n) + " matrix is not positive definite (leading minor of order " +
                   std::to_string(status) + " fails) " + why +
                   "; check the input for NaN, a wrong sign or a much larger damping schedule");
  }
  result.Set("damping", damping);
  return result;
}

/**
 * eigSym(n, a) → { values (descending), vectors (row-major n×n, column j ↔ values[j]) }.
 * Only the lower triangle of A is read.
 */
Napi::Value JsEigSym(const Napi::CallbackInfo& info) {
  const char* op = "eigSym";
  Napi::Env env = info.Env();
  const int n = DimArg(info, 0, op, "n");
  const ArrayArg a = Float64ArrayArg(info, 1, op, "a");
  RequireShape(env, op, a, n, n, "n: a is n×n");
  const size_t nn = static_cast<size_t>(n) * n;
  Napi::Float64Array values = Napi::Float64Array::New(env, n);
  Napi::Float64Array vectors = Napi::Float64Array::New(env, nn);
  Napi::Object result = Napi::Object::New(env);
  result.Set("values", values);
  result.Set("vectors", vectors);
  if (n == 0) return result;

  // Only the lower triangle of A is read, transposed into the column-major lower triangle that
  // eig_sym.cc's dsytrd 'L' reads. dsyevd's three stages with a faster, thread-split back-transformation
  // and reused memory (eig_sym.cc). dsyevd itself measured fastest of LAPACK's drivers for all
  // eigenvectors: dsyevr (MRRR) took 1.2× its time at n = 768, dsyev 7×.
  EigenWorkspace workspace(n);
  CopyLowerTriangleTransposedFinite(env, op, a, n, workspace.matrix());
  const EigStatus status = workspace.Solve(values.Data(), vectors.Data());
  if (status.info != 0) {
    ThrowError(env, op,
               std::string("LAPACK ") + status.routine + " failed (info " + std::to_string(status.info) + ") on a " +
                   ShapeText(n, n) + " matrix");
  }
  return result;
}

namespace {

template <typename T>
Napi::Object SvdTruncated(Napi::Env env, const char* op, int m, int n, const T* a, int r) {
  const size_t mn = static_cast<size_t>(std::min(m, n));
  auto u = Napi::TypedArrayOf<T>::New(env, static_cast<size_t>(m) * r);
  auto s = Napi::TypedArrayOf<T>::New(env, static_cast<size_t>(r));
  auto vt = Napi::TypedArrayOf<T>::New(env, static_cast<size_t>(r) * n);
  Napi::Object result = Napi::Object::New(env);
  result.Set("U", u);
  result.Set("S", s);
  result.Set("Vt", vt);
  result.Set("rank", r);
  if (r == 0) return result;

  // gesdd destroys its input. The buffer is Aᵀ (n×m) column-major; its SVD Aᵀ = U'·S·V'ᵀ gives
  // A = V'·S·U'ᵀ, so U' (n×mn column-major) is exactly Vt (mn×n row-major) and V'ᵀ (mn×m
  // column-major) is exactly U (m×mn row-major).
  std::vector<T> work(a, a + static_cast<size_t>(m) * n);
  lapack_int status;
  if (static_cast<size_t>(r) == mn) {
    status = GesddColMajor<T>('S', n, m, work.data(), n, s.Data(), vt.Data(), n, u.Data(), static_cast<lapack_int>(mn));
  } else {
    std::vector<T> fullS(mn), fullVt(mn * n), fullU(static_cast<size_t>(m) * mn);
    status = GesddColMajor<T>('S', n, m, work.data(), n, fullS.data(), fullVt.data(), n, fullU.data(),
                              static_cast<lapack_int>(mn));
    if (status == 0) {
      std::copy(fullS.begin(), fullS.begin() + r, s.Data());
      std::copy(fullVt.begin(), fullVt.begin() + static_cast<size_t>(r) * n, vt.Data());
      T* dst = u.Data();
      for (size_t i = 0; i < static_cast<size_t>(m); ++i) {
        std::copy(fullU.begin() + i * mn, fullU.begin() + i * mn + r, dst + i * r);
      }
    }
  }
  if (status != 0) {
    ThrowError(env, op,
               std::string("LAPACK gesdd did not converge (info ") + std::to_string(status) + ") on a " +
                   ShapeText(m, n) + " matrix");
  }
  return result;
}

}  // namespace

/**
 * svd(m, n, a, r) → { U (m×r), S (r), Vt (r×n), rank: r }, same dtype as a; 1 ≤ r ≤ min(m, n).
 * Registered twice, as "svd" and "svdTop"; the registration's data is the name errors use.
 */
Napi::Value JsSvd(const Napi::CallbackInfo& info) {
  const char* op = info.Data() ? static_cast<const char*>(info.Data()) : "svd";
  Napi::Env env = info.Env();
  const int m = DimArg(info, 0, op, "m");
  const int n = DimArg(info, 1, op, "n");
  const ArrayArg a = FloatArrayArg(info, 2, op, "a");
  const int r = DimArg(info, 3, op, "r");
  RequireShape(env, op, a, m, n, "m and n: a is m×n");
  // r = 0 only describes the empty matrix (thin SVD of 0×n); a zero rank request is a bug.
  if (r > std::min(m, n) || (r == 0 && std::min(m, n) > 0)) {
    ThrowError(env, op,
               "rank r = " + std::to_string(r) + " must be in [1, min(m, n) = " + std::to_string(std::min(m, n)) +
                   "] for a " + ShapeText(m, n) + " matrix");
  }
  RequireFinite(env, op, a);
  if (a.dtype == DType::F32) return SvdTruncated<float>(env, op, m, n, a.f32(), r);
  return SvdTruncated<double>(env, op, m, n, a.f64(), r);
}

/** singularValues(m, n, a) → Float64Array of min(m, n) values, descending, computed in f64. */
Napi::Value JsSingularValues(const Napi::CallbackInfo& info) {
  const char* op = "singularValues";
  Napi::Env env = info.Env();
  const int m = DimArg(info, 0, op, "m");
  const int n = DimArg(info, 1, op, "n");
  const ArrayArg a = FloatArrayArg(info, 2, op, "a");
  RequireShape(env, op, a, m, n, "m and n: a is m×n");
  RequireFinite(env, op, a);
  const size_t mn = static_cast<size_t>(std::min(m, n));
  Napi::Float64Array s = Napi::Float64Array::New(env, mn);
  if (mn == 0) return s;
  // Always f64: effective rank reads the small end of the spectrum, where f32 loses digits.
  std::vector<double> work(a.length);
  if (a.dtype == DType::F32) std::copy(a.f32(), a.f32() + a.length, work.begin());
  else std::copy(a.f64(), a.f64() + a.length, work.begin());
  const lapack_int status = GesddColMajor<double>('N', n, m, work.data(), n, s.Data(), nullptr, 1, nullptr, 1);
  if (status != 0) {
    ThrowError(env, op,
               "LAPACK dgesdd did not converge (info " + std::to_string(status) + ") on a " + ShapeText(m, n) + " matrix");
  }
  return s;
}

}  // namespace rfid
