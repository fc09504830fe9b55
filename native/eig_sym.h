// Symmetric eigendecomposition (all eigenvectors) for JsEigSym; see eig_sym.cc for the method.
#pragma once

#include <lapacke.h>

#include <cstddef>
#include <vector>

namespace rfid {

/** info: 0 on success, else the LAPACK info of `routine` (negative: bad argument; positive: no convergence). */
struct EigStatus {
  int info;
  const char* routine;
};

/**
 * One eigendecomposition of an n×n symmetric matrix on this thread, with its memory (reused from
 * call to call on the same thread, see eig_sym.cc). The thread count is OpenBLAS's at construction.
 * Usage: fill matrix() with the lower triangle, column-major (the transposed lower triangle of a
 * row-major matrix), then Solve: values[j] is the j-th largest eigenvalue, column j of the row-major n×n
 * `vectors` its unit eigenvector. matrix() is destroyed.
 */
/**
 * Columns 0..cols−1 of z (column-major, n rows) ← Q·z, where Q is the orthogonal factor dsytrd 'L'
 * left in the column-major lower triangle of `a` with scalars `tau`: the back-transformation of
 * eigenvectors of the tridiagonal, with EigenWorkspace's blocking and its split of the columns over
 * OpenBLAS's thread count.
 */
void ApplyTridiagonalQ(int n, const double* a, const double* tau, double* z, int cols);

class EigenWorkspace {
 public:
  explicit EigenWorkspace(int n);
  ~EigenWorkspace();
  EigenWorkspace(const EigenWorkspace&) = delete;
  EigenWorkspace& operator=(const EigenWorkspace&) = delete;

  double* matrix() { return matrix_; }
  EigStatus Solve(double* values, double* vectors);

 private:
  lapack_int TridiagonalSplit(double* d, double* e, double* z, double* work, double* halfWork, lapack_int* order,
                              const char** routine);

  int n_;
  int threads_ = 1;
  bool split_ = false;
  size_t work_ = 0;
  size_t halfWork_[2] = {0, 0};
  size_t halfIwork_[2] = {0, 0};
  std::vector<lapack_int> iwork_;
  double* base_ = nullptr;
  double* matrix_ = nullptr;
};

}  // namespace rfid
