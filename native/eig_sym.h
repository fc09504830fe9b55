// Symmetric eigendecomposition (all eigenvectors) for JsEigSym; see eig_sym.cc for the method.
#pragma once

namespace rfid {

/** info: 0 on success, else the LAPACK info of `routine` (negative: bad argument; positive: no convergence). */
struct EigStatus {
  int info;
  const char* routine;
};

/**
 * Eigenvalues (descending) and eigenvectors of the symmetric n×n matrix whose upper triangle is
 * held column-major in `a` (the lower triangle of a row-major matrix); `a` is destroyed.
 * values[j] is the j-th largest eigenvalue and column j of the row-major n×n `vectors` its unit
 * eigenvector. Uses as many threads as OpenBLAS is set to.
 */
EigStatus SymmetricEigenDescending(int n, double* a, double* values, double* vectors);

}  // namespace rfid
