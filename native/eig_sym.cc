// Symmetric eigendecomposition with all eigenvectors, written out as the three stages LAPACK's
// dsyevd runs (tridiagonal reduction dsytrd, divide and conquer dstedc, back-transformation),
// so that the last stage can be done better than dsyevd does it with Debian's OpenBLAS 0.3.21:
//
// - dsyevd back-transforms with dormtr → dormql, whose block of reflectors is ilaenv's 32. Each
//   block is one dlarfb (dgemm/dtrmm with inner dimension = block size), and 32 keeps those
//   products far from dgemm's speed; 64 measured 6–9% faster here (32, 96, 128, 160 slower).
// - The back-transformation Q·Z is independent per column of Z, so on t threads each thread
//   applies Q to its own slice of columns with OpenBLAS on one thread, instead of OpenBLAS
//   splitting every one of the ~12 small dlarfb products (and synchronising after each). The
//   same threads then write their slice of the result, transposed and reversed, to the output.
//
// dsytrd and dstedc are LAPACK's, unchanged (own blockings of dsytrd measured no faster).
#include "eig_sym.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <memory>
#include <system_error>
#include <thread>
#include <vector>

#include "lapack.h"

extern "C" {
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
}

namespace rfid {

namespace {

/** Reflectors per dlarfb in the back-transformation (see the file comment). */
constexpr int kBackTransformBlock = 64;
/** Below this many eigenvector columns per thread, splitting costs more than it saves. */
constexpr int kMinColumnsPerThread = 64;

/**
 * Columns [c0, c1) of z ← Q·z, where Q = H(n−1)…H(1) is dsytrd 'U''s orthogonal factor, held in
 * `a` (column-major) above the superdiagonal, with scalars `tau`. This is LAPACK dormql
 * ('L', 'N') on A(1:n−1, 2:n) and z(1:n−1, :), with our block size: H(i) acts on rows 1..i only,
 * so block i (reflectors i..i+ib−1) touches rows 1..i+ib−1 — dormql's own loop.
 * `work` holds (c1−c0)·kBackTransformBlock doubles, `t` kBackTransformBlock².
 */
void BackTransformColumns(int n, const double* a, const double* tau, double* z, int c0, int c1, double* work,
                          double* t) {
  const int k = n - 1;
  const int ni = c1 - c0;
  if (k <= 0 || ni <= 0) return;
  const double* v = a + n;  // column i of v is reflector i (0-based), v(i) = 1 implied
  double* c = z + static_cast<size_t>(c0) * n;
  for (int i = 0; i < k; i += kBackTransformBlock) {
    const int ib = std::min(kBackTransformBlock, k - i);
    const int rows = i + ib;
    const double* block = v + static_cast<size_t>(i) * n;
    LAPACKE_dlarft_work(LAPACK_COL_MAJOR, 'B', 'C', rows, ib, block, n, tau + i, t, kBackTransformBlock);
    LAPACKE_dlarfb_work(LAPACK_COL_MAJOR, 'L', 'N', 'B', 'C', rows, ni, ib, block, n, t, kBackTransformBlock, c, n,
                        work, ni);
  }
}

/**
 * Row-major dst column n−1−j ← column-major src column j, for j in [c0, c1): LAPACK's ascending
 * eigenvectors as the contract's descending columns. Tiled so both sides stay in cache (a plain
 * double loop strides n·8 bytes on every write).
 */
void TransposeReversingColumns(size_t n, const double* src, double* dst, size_t c0, size_t c1) {
  constexpr size_t kTile = 32;
  for (size_t j0 = c0; j0 < c1; j0 += kTile) {
    const size_t j1 = std::min(c1, j0 + kTile);
    for (size_t i0 = 0; i0 < n; i0 += kTile) {
      const size_t i1 = std::min(n, i0 + kTile);
      for (size_t j = j0; j < j1; ++j) {
        const double* col = src + j * n;
        double* out = dst + (n - 1 - j);
        for (size_t i = i0; i < i1; ++i) out[i * n] = col[i];
      }
    }
  }
}

/** openblas_set_num_threads(1) for one scope, restoring the previous count on exit. */
class SingleThreadedBlas {
 public:
  SingleThreadedBlas() : previous_(openblas_get_num_threads()) {
    if (previous_ != 1) openblas_set_num_threads(1);
  }
  ~SingleThreadedBlas() {
    if (previous_ != 1) openblas_set_num_threads(previous_);
  }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int previous_;
};

}  // namespace

EigStatus SymmetricEigenDescending(int n, double* a, double* values, double* vectors) {
  if (n == 0) return {0, nullptr};
  const size_t nn = static_cast<size_t>(n) * n;
  std::vector<double> d(n), e(n), tau(n);

  // Workspace sizes from LAPACK's own queries; one buffer serves both stages.
  double sytrdQuery = 0, stedcQuery = 0;
  lapack_int iworkQuery = 0;
  lapack_int info = LAPACKE_dsytrd_work(LAPACK_COL_MAJOR, 'U', n, a, n, d.data(), e.data(), tau.data(), &sytrdQuery, -1);
  if (info != 0) return {info, "dsytrd"};
  info = LAPACKE_dstedc_work(LAPACK_COL_MAJOR, 'I', n, d.data(), e.data(), nullptr, n, &stedcQuery, -1, &iworkQuery, -1);
  if (info != 0) return {info, "dstedc"};
  const int threads = std::max(1, std::min(openblas_get_num_threads(), n / kMinColumnsPerThread));
  // The back-transformation reuses the buffer: per thread dlarft's triangular factor (block²),
  // and dlarfb's work (its columns × block).
  const size_t blockSq = static_cast<size_t>(kBackTransformBlock) * kBackTransformBlock;
  const size_t backTransformWork = blockSq * threads + static_cast<size_t>(n) * kBackTransformBlock;
  const lapack_int lwork = std::max({WorkspaceSize(sytrdQuery), WorkspaceSize(stedcQuery),
                                     static_cast<lapack_int>(backTransformWork)});
  // Uninitialised on purpose (make_unique<T[]>(size) would zero them, a pass LAPACK overwrites).
  std::unique_ptr<double[]> work(new double[static_cast<size_t>(lwork)]);
  std::unique_ptr<lapack_int[]> iwork(new lapack_int[static_cast<size_t>(std::max<lapack_int>(1, iworkQuery))]);
  std::unique_ptr<double[]> z(new double[nn]);

  info = LAPACKE_dsytrd_work(LAPACK_COL_MAJOR, 'U', n, a, n, d.data(), e.data(), tau.data(), work.get(), lwork);
  if (info != 0) return {info, "dsytrd"};
  info = LAPACKE_dstedc_work(LAPACK_COL_MAJOR, 'I', n, d.data(), e.data(), z.get(), n, work.get(), lwork, iwork.get(),
                             std::max<lapack_int>(1, iworkQuery));
  if (info != 0) return {info, "dstedc"};
  for (int j = 0; j < n; ++j) values[j] = d[n - 1 - j];

  double* scratch = work.get();
  auto slice = [&](int part, int* c0, int* c1) {
    *c0 = static_cast<int>(static_cast<long long>(n) * part / threads);
    *c1 = static_cast<int>(static_cast<long long>(n) * (part + 1) / threads);
  };
  auto run = [&](int part) {
    int c0, c1;
    slice(part, &c0, &c1);
    double* t = scratch + blockSq * part;
    double* w = scratch + blockSq * threads + static_cast<size_t>(c0) * kBackTransformBlock;
    BackTransformColumns(n, a, tau.data(), z.get(), c0, c1, w, t);
    TransposeReversingColumns(static_cast<size_t>(n), z.get(), vectors, static_cast<size_t>(c0), static_cast<size_t>(c1));
  };
  if (threads == 1) {
    run(0);
  } else {
    SingleThreadedBlas oneBlasThread;
    std::vector<std::thread> helpers;
    int started = 1;
    try {
      for (; started < threads; ++started) helpers.emplace_back(run, started);
    } catch (const std::system_error&) {
      // No thread to be had: this thread does the parts that found none.
    }
    for (int part = started; part < threads; ++part) run(part);
    run(0);
    for (std::thread& h : helpers) h.join();
  }
  return {0, nullptr};
}

}  // namespace rfid
