// Symmetric eigendecomposition keeping only the k leading eigenvectors, in place on the caller's
// matrix: every eigenvalue (dsterf on the tridiagonal) and k eigenvectors (dstemr, MRRR, on the
// tridiagonal; back-transformed as eigSym does it). Why not eigSym and a slice: eigSym's divide and
// conquer needs the n×n eigenvectors plus ≈ 4.5·n² of workspace (163 MiB at n = 2048), while the
// compression only keeps a rank cap's worth of them. Here the reduction overwrites the input, so
// the extra memory is the k×n vectors returned and O(n) work arrays.
//
// The row-major lower triangle is mirrored into the upper one in place (the column-major lower
// triangle of the same buffer), so that dsytrd 'L' and eigSym's own faster back-transformation
// (eig_sym.cc: larger blocks, columns split over threads; dormtr took 1.5× eigSym's whole time
// for 0.6·n vectors at n = 2048) apply without a copy.
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "args.h"
#include "eig_sym.h"
#include "lapack.h"
#include "ops.h"

namespace rfid {

namespace {

/** Throws unless the row-major lower triangle (diagonal included) is finite. */
void RequireLowerTriangleFinite(Napi::Env env, const char* op, const ArrayArg& a, size_t n) {
  const double* src = a.f64();
  for (size_t i = 0; i < n; ++i) {
    const double* row = src + i * n;
    double flag = 0;
    for (size_t j = 0; j <= i; ++j) flag += row[j] * 0.0;
    if (flag != 0.0 || std::isnan(flag)) {
      for (size_t j = 0; j <= i; ++j) {
        if (!std::isfinite(row[j])) {
          ThrowError(env, op, std::string(a.name) + "[" + std::to_string(i) + "][" + std::to_string(j) + "] is NaN or Inf");
        }
      }
    }
  }
}

/** a[j][i] ← a[i][j] for i > j (row-major), in 32×32 tiles. */
void MirrorLowerIntoUpper(double* a, size_t n) {
  constexpr size_t kTile = 32;
  for (size_t i0 = 0; i0 < n; i0 += kTile) {
    for (size_t j0 = 0; j0 <= i0; j0 += kTile) {
      const size_t i1 = std::min(n, i0 + kTile);
      const size_t j1 = std::min(n, j0 + kTile);
      for (size_t i = i0; i < i1; ++i) {
        for (size_t j = j0; j < std::min(j1, i); ++j) a[j * n + i] = a[i * n + j];
      }
    }
  }
}

[[noreturn]] void ThrowLapack(Napi::Env env, const char* op, const char* routine, lapack_int info, int n) {
  ThrowError(env, op,
             std::string("LAPACK ") + routine + " failed (info " + std::to_string(info) + ") on a " + ShapeText(n, n) +
                 " matrix");
}

/**
 * The eigenvectors of eigenvalues il..iu (1-based, ascending) of the tridiagonal (d, e) into z
 * (column-major n×k, k = iu − il + 1). MRRR first; if it reports failure (it can on tight clusters),
 * bisection and inverse iteration, which always deliver. d and e are destroyed.
 */
lapack_int TridiagonalVectors(int n, int il, int iu, double* d, double* e, double* z, const char** routine) {
  const int k = iu - il + 1;
  std::vector<double> d0(d, d + n), e0(e, e + n);
  lapack_int found = 0;
  lapack_int tryrac = 1;
  std::vector<lapack_int> isuppz(2 * static_cast<size_t>(std::max(1, k)));
  std::vector<double> w(n);
  double workQuery = 0;
  lapack_int iworkQuery = 0;
  lapack_int info = LAPACKE_dstemr_work(LAPACK_COL_MAJOR, 'V', 'I', n, d, e, 0, 0, il, iu, &found, w.data(), z, n, k,
                                        isuppz.data(), &tryrac, &workQuery, -1, &iworkQuery, -1);
  if (info == 0) {
    std::vector<double> work(static_cast<size_t>(workQuery) + 1);
    std::vector<lapack_int> iwork(static_cast<size_t>(iworkQuery) + 1);
    info = LAPACKE_dstemr_work(LAPACK_COL_MAJOR, 'V', 'I', n, d, e, 0, 0, il, iu, &found, w.data(), z, n, k,
                               isuppz.data(), &tryrac, work.data(), static_cast<lapack_int>(work.size()), iwork.data(),
                               static_cast<lapack_int>(iwork.size()));
    if (info == 0 && found == k) return 0;
  }
  // Fallback: bisection for the eigenvalues (block order), inverse iteration for the vectors.
  std::copy(d0.begin(), d0.end(), d);
  std::copy(e0.begin(), e0.end(), e);
  std::vector<lapack_int> iblock(n), isplit(n), iwork(3 * static_cast<size_t>(n)), ifail(std::max(1, k));
  std::vector<double> work(5 * static_cast<size_t>(n));
  lapack_int nsplit = 0;
  const double abstol = 2 * LAPACKE_dlamch('S');
  info = LAPACKE_dstebz_work('I', 'B', n, 0, 0, il, iu, abstol, d, e, &found, &nsplit, w.data(), iblock.data(),
                             isplit.data(), work.data(), iwork.data());
  if (info != 0 || found != k) {
    *routine = "dstebz";
    return info != 0 ? info : -1;
  }
  info = LAPACKE_dstein_work(LAPACK_COL_MAJOR, n, d, e, found, w.data(), iblock.data(), isplit.data(), z, n, work.data(),
                             iwork.data(), ifail.data());
  if (info != 0) {
    *routine = "dstein";
    return info;
  }
  // dstebz's block order: sort the k vectors by ascending eigenvalue, as dstemr returns them
  std::vector<int> order(k);
  for (int j = 0; j < k; ++j) order[j] = j;
  std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return w[x] < w[y]; });
  std::vector<double> sorted(static_cast<size_t>(n) * k);
  for (int j = 0; j < k; ++j) std::copy(z + static_cast<size_t>(order[j]) * n, z + static_cast<size_t>(order[j] + 1) * n, sorted.data() + static_cast<size_t>(j) * n);
  std::copy(sorted.begin(), sorted.end(), z);
  return 0;
}

}  // namespace

/**
 * eigSymTop(n, a, k) → { values (all n, descending), rows (k×n row-major: row j is the unit
 * eigenvector of values[j]) }, 1 ≤ k ≤ n. Only a's lower triangle is read, and a is destroyed
 * (it holds the reduction's reflectors afterwards).
 */
Napi::Value JsEigSymTop(const Napi::CallbackInfo& info) {
  const char* op = "eigSymTop";
  Napi::Env env = info.Env();
  const int n = DimArg(info, 0, op, "n");
  const ArrayArg a = Float64ArrayArg(info, 1, op, "a");
  const int k = DimArg(info, 2, op, "k");
  RequireShape(env, op, a, n, n, "n: a is n×n");
  if (k > n || (k == 0 && n > 0)) {
    ThrowError(env, op, "k = " + std::to_string(k) + " eigenvectors must be in [1, n = " + std::to_string(n) + "]");
  }
  Napi::Float64Array values = Napi::Float64Array::New(env, n);
  Napi::Float64Array rows = Napi::Float64Array::New(env, static_cast<size_t>(k) * n);
  Napi::Object result = Napi::Object::New(env);
  result.Set("values", values);
  result.Set("rows", rows);
  if (n == 0) return result;
  RequireLowerTriangleFinite(env, op, a, n);

  double* A = a.f64();
  MirrorLowerIntoUpper(A, static_cast<size_t>(n));
  std::vector<double> d(n), e(std::max(1, n)), tau(std::max(1, n - 1));
  double query = 0;
  lapack_int status = LAPACKE_dsytrd_work(LAPACK_COL_MAJOR, 'L', n, A, n, d.data(), e.data(), tau.data(), &query, -1);
  if (status != 0) ThrowLapack(env, op, "dsytrd", status, n);
  {
    std::vector<double> work(static_cast<size_t>(query) + 1);
    status = LAPACKE_dsytrd_work(LAPACK_COL_MAJOR, 'L', n, A, n, d.data(), e.data(), tau.data(), work.data(),
                                 static_cast<lapack_int>(work.size()));
    if (status != 0) ThrowLapack(env, op, "dsytrd", status, n);
  }
  // every eigenvalue (ascending), from copies: the vectors' solver destroys d and e
  {
    std::vector<double> dv(d), ev(e);
    status = LAPACKE_dsterf_work(n, dv.data(), ev.data());
    if (status != 0) ThrowLapack(env, op, "dsterf", status, n);
    double* out = values.Data();
    for (int j = 0; j < n; ++j) out[j] = dv[n - 1 - j];
  }
  double* z = rows.Data();  // column-major n×k with ldz = n: column j is row j of the result
  const char* routine = "dstemr";
  status = TridiagonalVectors(n, n - k + 1, n, d.data(), e.data(), z, &routine);
  if (status != 0) ThrowLapack(env, op, routine, status, n);
  // Z ← Q·Z with dsytrd's reflectors (still in A)
  ApplyTridiagonalQ(n, A, tau.data(), z, k);
  // ascending → descending: row j of the result is the j-th largest eigenvalue's vector
  for (int j = 0; j < k / 2; ++j) {
    std::swap_ranges(z + static_cast<size_t>(j) * n, z + static_cast<size_t>(j + 1) * n, z + static_cast<size_t>(k - 1 - j) * n);
  }
  return result;
}

}  // namespace rfid
