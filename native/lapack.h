// Thin, precision-overloaded wrappers over the column-major BLAS/LAPACK routines the addon uses,
// so the templated algorithms (SVD, randomized SVD) are written once for float and double.
//
// Row-major data is handed to these routines with the transpose trick: a row-major m×n buffer
// *is* the column-major n×m matrix Aᵀ, so no layout conversion (and no copy) is needed.
#pragma once

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace rfid {

inline void Gemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
                 const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void Gemm(CBLAS_ORDER order, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, double alpha,
                 const double* a, int lda, const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

inline void Syrk(CBLAS_ORDER order, CBLAS_UPLO uplo, CBLAS_TRANSPOSE t, int n, int k, float alpha, const float* a,
                 int lda, float beta, float* c, int ldc) {
  cblas_ssyrk(order, uplo, t, n, k, alpha, a, lda, beta, c, ldc);
}
inline void Syrk(CBLAS_ORDER order, CBLAS_UPLO uplo, CBLAS_TRANSPOSE t, int n, int k, double alpha, const double* a,
                 int lda, double beta, double* c, int ldc) {
  cblas_dsyrk(order, uplo, t, n, k, alpha, a, lda, beta, c, ldc);
}

/**
 * LAPACK returns optimal workspace sizes as floating-point numbers; for float they can round
 * below the true integer (a documented LAPACK pitfall), so pad the query result a little.
 */
template <typename T>
inline lapack_int WorkspaceSize(T query) {
  const double q = static_cast<double>(query);
  return static_cast<lapack_int>(std::ceil(q * (1.0 + 1e-6))) + 1;
}

inline lapack_int Geqrf(lapack_int m, lapack_int n, float* a, lapack_int lda, float* tau, float* work, lapack_int lwork) {
  return LAPACKE_sgeqrf_work(LAPACK_COL_MAJOR, m, n, a, lda, tau, work, lwork);
}
inline lapack_int Geqrf(lapack_int m, lapack_int n, double* a, lapack_int lda, double* tau, double* work, lapack_int lwork) {
  return LAPACKE_dgeqrf_work(LAPACK_COL_MAJOR, m, n, a, lda, tau, work, lwork);
}
inline lapack_int Orgqr(lapack_int m, lapack_int n, lapack_int k, float* a, lapack_int lda, const float* tau, float* work,
                        lapack_int lwork) {
  return LAPACKE_sorgqr_work(LAPACK_COL_MAJOR, m, n, k, a, lda, tau, work, lwork);
}
inline lapack_int Orgqr(lapack_int m, lapack_int n, lapack_int k, double* a, lapack_int lda, const double* tau,
                        double* work, lapack_int lwork) {
  return LAPACKE_dorgqr_work(LAPACK_COL_MAJOR, m, n, k, a, lda, tau, work, lwork);
}
inline lapack_int Gesdd(char jobz, lapack_int m, lapack_int n, float* a, lapack_int lda, float* s, float* u,
                        lapack_int ldu, float* vt, lapack_int ldvt, float* work, lapack_int lwork, lapack_int* iwork) {
  return LAPACKE_sgesdd_work(LAPACK_COL_MAJOR, jobz, m, n, a, lda, s, u, ldu, vt, ldvt, work, lwork, iwork);
}
inline lapack_int Gesdd(char jobz, lapack_int m, lapack_int n, double* a, lapack_int lda, double* s, double* u,
                        lapack_int ldu, double* vt, lapack_int ldvt, double* work, lapack_int lwork, lapack_int* iwork) {
  return LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, jobz, m, n, a, lda, s, u, ldu, vt, ldvt, work, lwork, iwork);
}

/**
 * Column-major SVD by divide and conquer (gesdd). `a` (m×n, lda ≥ m) is destroyed.
 * jobz 'S': u is m×min(m,n) (ldu), vt is min(m,n)×n (ldvt). jobz 'N': u and vt are unused.
 * Returns LAPACK's info (0 = success, > 0 = no convergence).
 */
template <typename T>
lapack_int GesddColMajor(char jobz, lapack_int m, lapack_int n, T* a, lapack_int lda, T* s, T* u, lapack_int ldu, T* vt,
                         lapack_int ldvt) {
  const lapack_int mn = std::min(m, n);
  std::vector<lapack_int> iwork(static_cast<size_t>(std::max<lapack_int>(1, 8 * mn)));
  T query = 0;
  T dummy = 0;
  // LAPACK checks ldu/ldvt even when they are unused, hence the max(1, ·) everywhere.
  lapack_int info = Gesdd(jobz, m, n, a, lda, s, u ? u : &dummy, std::max<lapack_int>(1, ldu), vt ? vt : &dummy,
                          std::max<lapack_int>(1, ldvt), &query, -1, iwork.data());
  if (info != 0) return info;
  std::vector<T> work(static_cast<size_t>(WorkspaceSize(query)));
  return Gesdd(jobz, m, n, a, lda, s, u ? u : &dummy, std::max<lapack_int>(1, ldu), vt ? vt : &dummy,
               std::max<lapack_int>(1, ldvt), work.data(), static_cast<lapack_int>(work.size()), iwork.data());
}

/** Replaces the column-major m×n (m ≥ n) matrix `a` by the Q factor of its thin QR. */
template <typename T>
lapack_int OrthonormaliseColumns(lapack_int m, lapack_int n, T* a, std::vector<T>& tau, std::vector<T>& work) {
  tau.resize(static_cast<size_t>(std::max<lapack_int>(1, n)));
  T q1 = 0, q2 = 0;
  lapack_int info = Geqrf(m, n, a, std::max<lapack_int>(1, m), tau.data(), &q1, -1);
  if (info != 0) return info;
  info = Orgqr(m, n, n, a, std::max<lapack_int>(1, m), tau.data(), &q2, -1);
  if (info != 0) return info;
  const lapack_int lwork = std::max(WorkspaceSize(q1), WorkspaceSize(q2));
  if (work.size() < static_cast<size_t>(lwork)) work.resize(static_cast<size_t>(lwork));
  info = Geqrf(m, n, a, std::max<lapack_int>(1, m), tau.data(), work.data(), static_cast<lapack_int>(work.size()));
  if (info != 0) return info;
  return Orgqr(m, n, n, a, std::max<lapack_int>(1, m), tau.data(), work.data(), static_cast<lapack_int>(work.size()));
}

}  // namespace rfid
