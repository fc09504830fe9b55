// Symmetric eigendecomposition with all eigenvectors, written out as the three stages LAPACK's
// dsyevd runs (tridiagonal reduction, divide and conquer, back-transformation), because with
// Debian's OpenBLAS 0.3.21 dsyevd ran 1.1–1.2× numpy's eigh (OpenBLAS 0.3.31). What differs from
// dsyevd, each kept only where interleaved A/B runs showed it faster (BENCHMARKS.md):
//
// - dsytrd reduces the lower triangle ('L'): Debian's dsymv_L kernel made it 5% faster than 'U'.
//   dsytrd itself is unchanged (own blockings of it, 16 to 128, measured no faster than its 32).
// - The back-transformation applies 64 reflectors per dlarft + dlarfb (dormqr's loop), not
//   ilaenv's 32, which keeps each dlarfb's products (inner dimension = block) far from dgemm's
//   speed: CPU median 23.0 against 24.9 ms at n = 768 (32, 96, 128, 160 were slower).
// - Q·Z is independent per column of Z, so on t threads each thread applies Q to its own slice
//   of columns with OpenBLAS on one thread, instead of OpenBLAS splitting each of the ~12 small
//   dlarfb products (and synchronising after each). The same threads then write their slice of
//   the result, transposed and reversed, to the output.
// - On two or more threads, divide and conquer's first split is done here
//   (EigenWorkspace::TridiagonalSplit): dstedc solves the two halves at once, one per thread,
//   and MergeHalves (LAPACK dlaed1 with dlaed3's secular-equation loops on two threads) merges
//   them. dstedc alone solves the halves one after the other, and Debian's 0.3.21 runs the
//   secular equations on one thread (numpy's 0.3.31 threads dlaed3).
// - Scratch memory stays with the calling thread between calls (ThreadScratch), and both
//   transposes write contiguous segments.
#include "eig_sym.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cstddef>
#include <cmath>
#include <memory>
#include <utility>
#include <system_error>
#include <thread>
#include <vector>

#include "lapack.h"
#include "parallel.h"

extern "C" {
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
// LAPACK's divide-and-conquer merge steps (no LAPACKE wrappers exist): deflation, the secular
// equation's roots, the sequential secular solve, and the merge permutation.
void dlaed2_(lapack_int* k, const lapack_int* n, const lapack_int* n1, double* d, double* q, const lapack_int* ldq,
             lapack_int* indxq, double* rho, double* z, double* dlamda, double* w, double* q2, lapack_int* indx,
             lapack_int* indxc, lapack_int* indxp, lapack_int* coltyp, lapack_int* info);
void dlaed3_(const lapack_int* k, const lapack_int* n, const lapack_int* n1, double* d, double* q, const lapack_int* ldq,
             const double* rho, double* dlamda, const double* q2, const lapack_int* indx, const lapack_int* ctot,
             double* w, double* s, lapack_int* info);
void dlaed4_(const lapack_int* n, const lapack_int* i, const double* d, const double* z, double* delta,
             const double* rho, double* dlam, lapack_int* info);
void dlamrg_(const lapack_int* n1, const lapack_int* n2, const double* a, const lapack_int* dtrd1,
             const lapack_int* dtrd2, lapack_int* index);
}

namespace rfid {

namespace {

/** Reflectors per dlarft + dlarfb in the back-transformation (see the file comment). */
constexpr int kBackTransformBlock = 64;
/** At least this many eigenvector columns per back-transformation thread (small problems stay on one). */
constexpr int kMinColumnsPerThread = 64;
/** From this size on, with two or more threads, divide and conquer's halves run at once (a guess, not tuned:
 * below it the halves are small against the cost of starting threads). */
constexpr int kMinSplitSize = 256;

/**
 * Columns [c0, c1) of z ← Q·z, where Q = H(1)…H(n−1) is dsytrd 'L''s orthogonal factor, held in
 * `a` (column-major) below the subdiagonal, with scalars `tau`. This is LAPACK dormqr ('L', 'N')
 * on A(2:n, 1:n−1) and z(2:n, :), with our block size: H(i) acts on rows i+1..n only, so the
 * blocks are applied last to first, block i to rows i+1..n — dormqr's own loop.
 * `work` holds (c1−c0)·kBackTransformBlock doubles, `t` kBackTransformBlock².
 */
void BackTransformColumns(int n, const double* a, const double* tau, double* z, int c0, int c1, double* work,
                          double* t) {
  const int k = n - 1;
  const int ni = c1 - c0;
  if (k <= 0 || ni <= 0) return;
  const double* v = a + 1;  // column i of v is reflector i (0-based) from its row i, v(i) = 1 implied
  double* c = z + 1 + static_cast<size_t>(c0) * n;
  for (int i = ((k - 1) / kBackTransformBlock) * kBackTransformBlock; i >= 0; i -= kBackTransformBlock) {
    const int ib = std::min(kBackTransformBlock, k - i);
    const int rows = k - i;
    const double* block = v + i + static_cast<size_t>(i) * n;
    LAPACKE_dlarft_work(LAPACK_COL_MAJOR, 'F', 'C', rows, ib, block, n, tau + i, t, kBackTransformBlock);
    LAPACKE_dlarfb_work(LAPACK_COL_MAJOR, 'L', 'N', 'F', 'C', rows, ni, ib, block, n, t, kBackTransformBlock, c + i, n,
                        work, ni);
  }
}

/**
 * Row-major dst column n−1−j ← column-major src column j, for j in [c0, c1): LAPACK's ascending
 * eigenvectors as the contract's descending columns. In 16×16 tiles, each output row segment
 * written contiguously (gathering from the columns): 0.8 ms at n = 768 against 2.3 ms for 32×32
 * tiles written column by column.
 */
void TransposeReversingColumns(size_t n, const double* src, double* dst, size_t c0, size_t c1) {
  constexpr size_t kTile = 16;
  for (size_t i0 = 0; i0 < n; i0 += kTile) {
    const size_t i1 = std::min(n, i0 + kTile);
    for (size_t j0 = c0; j0 < c1; j0 += kTile) {
      const size_t j1 = std::min(c1, j0 + kTile);
      for (size_t i = i0; i < i1; ++i) {
        double* out = dst + i * n + (n - 1);
        for (size_t j = j0; j < j1; ++j) out[-static_cast<ptrdiff_t>(j)] = src[j * n + i];
      }
    }
  }
}

/** dstedc('I')'s workspace for an m×m tridiagonal: {work doubles, iwork ints}. */
std::pair<size_t, size_t> StedcWorkspace(int m) {
  double workQuery = 0;
  lapack_int iworkQuery = 0;
  double dummy = 0;
  LAPACKE_dstedc_work(LAPACK_COL_MAJOR, 'I', m, &dummy, &dummy, nullptr, std::max(1, m), &workQuery, -1, &iworkQuery, -1);
  return {static_cast<size_t>(WorkspaceSize(workQuery)), static_cast<size_t>(std::max<lapack_int>(1, iworkQuery))};
}

/** [begin, end) of part `part` of `parts` equal slices of [0, count). */
std::pair<int, int> Slice(int count, int part, int parts) {
  return {static_cast<int>(static_cast<long long>(count) * part / parts),
          static_cast<int>(static_cast<long long>(count) * (part + 1) / parts)};
}

/**
 * LAPACK dlaed3 (the secular equation of a rank-one merge, its stable eigenvectors and their
 * product with the halves' eigenvectors) with its three O(k²) loops split over two threads:
 * the k roots (dlaed4, which keeps no state), the Gu–Eisenstat update of w (by rows), and the
 * normalised eigenvectors (by columns). Every entry is computed with the same operations in the
 * same order as in dlaed3, so the results are identical; only the final products (dgemm) use
 * OpenBLAS's threads. Arguments as dlaed3's; `rowScratch` holds 2·k doubles.
 * Debian's OpenBLAS 0.3.21 runs dlaed3 on one thread, and dlaed4 plus dlaed3's own loops were
 * 46% of dstedc's time at n = 768 (perf).
 */
lapack_int SecularSolveParallel(lapack_int k, lapack_int n, lapack_int n1, double* d, double* q, lapack_int ldq,
                                double rho, double* dlamda, const double* q2, const lapack_int* indx,
                                const lapack_int* ctot, double* w, double* s, double* rowScratch) {
  if (k <= 2) {  // dlaed3's special cases
    lapack_int info = 0;
    dlaed3_(&k, &n, &n1, d, q, &ldq, &rho, dlamda, q2, indx, ctot, w, s, &info);
    return info;
  }
  lapack_int rootInfo[2] = {0, 0};
  RunParts(2, [&](int part) {
    const auto [j0, j1] = Slice(k, part, 2);
    for (int j = j0; j < j1 && rootInfo[part] == 0; ++j) {
      const lapack_int index = j + 1;
      dlaed4_(&k, &index, dlamda, w, q + static_cast<size_t>(j) * ldq, &rho, d + j, &rootInfo[part]);
    }
  });
  if (rootInfo[0] != 0) return rootInfo[0];
  if (rootInfo[1] != 0) return rootInfo[1];

  std::copy(w, w + k, s);  // the signs of the original w
  RunParts(2, [&](int part) {
    const auto [i0, i1] = Slice(k, part, 2);
    for (int i = i0; i < i1; ++i) w[i] = q[i + static_cast<size_t>(i) * ldq];
    for (int j = 0; j < k; ++j) {
      const double* col = q + static_cast<size_t>(j) * ldq;
      for (int i = i0; i < i1; ++i) {
        if (i != j) w[i] *= col[i] / (dlamda[i] - dlamda[j]);
      }
    }
    for (int i = i0; i < i1; ++i) w[i] = std::copysign(std::sqrt(-w[i]), s[i]);
  });
  RunParts(2, [&](int part) {
    const auto [j0, j1] = Slice(k, part, 2);
    double* v = rowScratch + static_cast<size_t>(part) * k;
    for (int j = j0; j < j1; ++j) {
      double* col = q + static_cast<size_t>(j) * ldq;
      for (int i = 0; i < k; ++i) v[i] = w[i] / col[i];
      const double norm = cblas_dnrm2(k, v, 1);
      for (int i = 0; i < k; ++i) col[i] = v[indx[i] - 1] / norm;
    }
  });

  // Back to the halves' bases: Q(n1:, :k) = Q2₂·S₂₃ and Q(:n1, :k) = Q2₁·S₁₂ (dlaed3's products).
  const lapack_int n2 = n - n1;
  const lapack_int n12 = ctot[0] + ctot[1];
  const lapack_int n23 = ctot[1] + ctot[2];
  if (n23 != 0) {
    LAPACKE_dlacpy_work(LAPACK_COL_MAJOR, 'A', n23, k, q + ctot[0], ldq, s, n23);
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n2, k, n23, 1.0, q2 + static_cast<size_t>(n1) * n12, n2,
                s, n23, 0.0, q + n1, ldq);
  } else {
    LAPACKE_dlaset_work(LAPACK_COL_MAJOR, 'A', n2, k, 0.0, 0.0, q + n1, ldq);
  }
  if (n12 != 0) {
    LAPACKE_dlacpy_work(LAPACK_COL_MAJOR, 'A', n12, k, q, ldq, s, n12);
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n1, k, n12, 1.0, q2, n1, s, n12, 0.0, q, ldq);
  } else {
    LAPACKE_dlaset_work(LAPACK_COL_MAJOR, 'A', n1, k, 0.0, 0.0, q, ldq);
  }
  return 0;
}

/**
 * LAPACK dlaed1 (merge two solved halves joined by a rank-one tear ρ·uuᵀ at `cut`) with the
 * secular solve on two threads (SecularSolveParallel). Arguments as dlaed1's; `work` holds
 * n² + 4n doubles, `iwork` 4n, `rowScratch` 2n.
 */
lapack_int MergeHalves(lapack_int n, double* d, double* q, lapack_int* indxq, double rho, lapack_int cut, double* work,
                       lapack_int* iwork, double* rowScratch) {
  double* z = work;
  double* dlamda = z + n;
  double* w = dlamda + n;
  double* q2 = w + n;
  lapack_int* indx = iwork;
  lapack_int* indxc = indx + n;
  lapack_int* coltyp = indxc + n;
  lapack_int* indxp = coltyp + n;
  // z: the last row of the first half's eigenvectors, then the first row of the second's.
  for (lapack_int j = 0; j < cut; ++j) z[j] = q[(cut - 1) + static_cast<size_t>(j) * n];
  for (lapack_int j = cut; j < n; ++j) z[j] = q[cut + static_cast<size_t>(j) * n];
  lapack_int k = 0, info = 0;
  dlaed2_(&k, &n, &cut, d, q, &n, indxq, &rho, z, dlamda, w, q2, indx, indxc, indxp, coltyp, &info);
  if (info != 0) return info;
  if (k == 0) {
    for (lapack_int i = 0; i < n; ++i) indxq[i] = i + 1;
    return 0;
  }
  const size_t s = static_cast<size_t>(coltyp[0] + coltyp[1]) * cut + static_cast<size_t>(coltyp[1] + coltyp[2]) * (n - cut);
  info = SecularSolveParallel(k, n, cut, d, q, n, rho, dlamda, q2, indxc, coltyp, w, q2 + s, rowScratch);
  if (info != 0) return info;
  const lapack_int rest = n - k, one = 1, minusOne = -1;
  dlamrg_(&k, &rest, d, &one, &minusOne, indxq);
  return 0;
}

/**
 * This thread's scratch memory, reused across calls: the matrix, eigenvector and work buffers of
 * one n = 768 call are 14–21 MB, and fresh allocations of that size come back as untouched pages
 * each time (glibc returns them to the system on free), costing ~2,300 page faults per call here
 * (sys time 7–15 ms against ~100 ms). Up to kMaxRetainedBytes stays allocated between calls.
 */
constexpr size_t kMaxRetainedBytes = size_t{64} << 20;
struct ThreadScratch {
  std::unique_ptr<double[]> data;
  size_t size = 0;
};
thread_local ThreadScratch tScratch;

double* ScratchFor(size_t count) {
  if (tScratch.size < count) {
    tScratch.data.reset();
    tScratch.data.reset(new double[count]);  // uninitialised on purpose: every use writes first
    tScratch.size = count;
  }
  return tScratch.data.get();
}

void ReleaseLargeScratch() {
  if (tScratch.size * sizeof(double) > kMaxRetainedBytes) {
    tScratch.data.reset();
    tScratch.size = 0;
  }
}

}  // namespace

void ApplyTridiagonalQ(int n, const double* a, const double* tau, double* z, int cols) {
  if (n <= 1 || cols <= 0) return;
  const int threads = std::max(1, std::min(openblas_get_num_threads(), cols / kMinColumnsPerThread));
  const size_t blockSq = static_cast<size_t>(kBackTransformBlock) * kBackTransformBlock;
  std::vector<double> work(blockSq * threads + static_cast<size_t>(cols) * kBackTransformBlock);
  RunParts(threads, [&](int part) {
    const auto [c0, c1] = Slice(cols, part, threads);
    BackTransformColumns(n, a, tau, z, c0, c1, work.data() + blockSq * threads + static_cast<size_t>(c0) * kBackTransformBlock,
                         work.data() + blockSq * part);
  });
}

EigenWorkspace::EigenWorkspace(int n) : n_(n) {
  const int blasThreads = openblas_get_num_threads();
  threads_ = std::max(1, std::min(blasThreads, n / kMinColumnsPerThread));
  split_ = blasThreads >= 2 && n >= kMinSplitSize;
  const size_t nn = static_cast<size_t>(n) * n;
  double sytrdQuery = 0, dummy = 0;
  const int ld = std::max(1, n);
  LAPACKE_dsytrd_work(LAPACK_COL_MAJOR, 'L', n, &dummy, ld, &dummy, &dummy, &dummy, &sytrdQuery, -1);
  const size_t blockSq = static_cast<size_t>(kBackTransformBlock) * kBackTransformBlock;
  const size_t backTransformWork = blockSq * threads_ + static_cast<size_t>(n) * kBackTransformBlock;
  size_t tridiagonalWork = 0;
  if (split_) {
    const auto first = StedcWorkspace(n / 2);
    const auto second = StedcWorkspace(n - n / 2);
    halfWork_[0] = first.first;
    halfWork_[1] = second.first;
    halfIwork_[0] = first.second;
    halfIwork_[1] = second.second;
    tridiagonalWork = nn + 6 * static_cast<size_t>(n);  // MergeHalves: n² + 4n, and 2n
    iwork_.resize(std::max({4 * static_cast<size_t>(n), first.second + second.second}));
  } else {
    const auto stedc = StedcWorkspace(n);
    tridiagonalWork = stedc.first;
    iwork_.resize(stedc.second);
  }
  work_ = std::max({static_cast<size_t>(WorkspaceSize(sytrdQuery)), tridiagonalWork, backTransformWork});
  const size_t total = nn * (split_ ? 3 : 2) + work_ + halfWork_[0] + halfWork_[1] + 3 * static_cast<size_t>(n);
  base_ = ScratchFor(total);
  matrix_ = base_;
}

EigenWorkspace::~EigenWorkspace() { ReleaseLargeScratch(); }

/**
 * The eigenvectors of the n×n tridiagonal (d, e) into z (n×n), on two threads: the first level of
 * divide and conquer done here, as dstedc's dlaed0 does it, so that its two halves run at once.
 * T = diag(T₁, T₂) + |ρ|·uuᵀ with ρ = e[cut−1], u = e_cut−1 + sign(ρ)·e_cut (the rank-one tear);
 * dstedc solves T₁ and T₂, one per thread; MergeHalves merges them (deflation, secular
 * equation on two threads, and dgemm on all OpenBLAS threads). On return d[order[i]] (0-based) ascend and
 * z's column order[i] is their eigenvector. T is scaled to max |entry| 1 first, as dstedc does.
 * Returns 0 or the failing LAPACK info, with *routine set.
 */
lapack_int EigenWorkspace::TridiagonalSplit(double* d, double* e, double* z, double* work, double* halfWork,
                                            lapack_int* order, const char** routine) {
  const int n = n_;
  const size_t nn = static_cast<size_t>(n) * n;
  double norm = 0;
  for (int i = 0; i < n; ++i) norm = std::max(norm, std::fabs(d[i]));
  for (int i = 0; i + 1 < n; ++i) norm = std::max(norm, std::fabs(e[i]));
  if (norm == 0) norm = 1;
  for (int i = 0; i < n; ++i) d[i] /= norm;
  for (int i = 0; i + 1 < n; ++i) e[i] /= norm;

  const int cut = n / 2;  // dlaed1 requires cut ≤ n/2
  const double rho = e[cut - 1];
  d[cut - 1] -= std::fabs(rho);
  d[cut] -= std::fabs(rho);
  // dlaed1 reads the two diagonal blocks of z; the off-diagonal blocks are zero by definition.
  for (int j = 0; j < n; ++j) {
    double* col = z + static_cast<size_t>(j) * n;
    if (j < cut) std::fill(col + cut, col + n, 0.0);
    else std::fill(col, col + cut, 0.0);
  }
  lapack_int halfInfo[2] = {0, 0};
  RunParts(2, [&](int part) {
    const int start = part == 0 ? 0 : cut;
    const int size = part == 0 ? cut : n - cut;
    double* w = halfWork + (part == 0 ? 0 : halfWork_[0]);
    lapack_int* iw = iwork_.data() + (part == 0 ? 0 : halfIwork_[0]);
    halfInfo[part] = LAPACKE_dstedc_work(LAPACK_COL_MAJOR, 'I', size, d + start, e + start,
                                         z + start + static_cast<size_t>(start) * n, n, w,
                                         static_cast<lapack_int>(halfWork_[part]), iw,
                                         static_cast<lapack_int>(halfIwork_[part]));
  });
  for (lapack_int info : halfInfo) {
    if (info != 0) {
      *routine = "dstedc";
      return info;
    }
  }
  // Each half comes back ascending: dlaed1's entry permutation is the identity within each half.
  for (int i = 0; i < cut; ++i) order[i] = i + 1;
  for (int i = cut; i < n; ++i) order[i] = i - cut + 1;
  const lapack_int info = MergeHalves(n, d, z, order, rho, cut, work, iwork_.data(), work + nn + 4 * static_cast<size_t>(n));
  if (info != 0) {
    *routine = "dlaed2/dlaed4 (divide-and-conquer merge)";
    return info;
  }
  for (int i = 0; i < n; ++i) {
    d[i] *= norm;
    order[i] -= 1;
  }
  return 0;
}

EigStatus EigenWorkspace::Solve(double* values, double* vectors) {
  const int n = n_;
  if (n == 0) return {0, nullptr};
  const size_t nn = static_cast<size_t>(n) * n;
  double* a = matrix_;
  double* z = a + nn;
  double* zSorted = split_ ? z + nn : nullptr;
  double* work = z + nn * (split_ ? 2 : 1);
  double* halfWork = work + work_;
  double* d = halfWork + halfWork_[0] + halfWork_[1];
  double* e = d + n;
  double* tau = e + n;
  const lapack_int lwork = static_cast<lapack_int>(work_);

  lapack_int info = LAPACKE_dsytrd_work(LAPACK_COL_MAJOR, 'L', n, a, n, d, e, tau, work, lwork);
  if (info != 0) return {info, "dsytrd"};
  // After the split, eigenvalue i (ascending) is d[order[i]] with its vector in z's column
  // order[i]; each back-transformation thread gathers its columns in order into zSorted.
  std::vector<lapack_int> order;
  if (split_) {
    order.resize(n);
    const char* routine = nullptr;
    info = TridiagonalSplit(d, e, z, work, halfWork, order.data(), &routine);
    if (info != 0) return {info, routine};
    for (int j = 0; j < n; ++j) values[j] = d[order[n - 1 - j]];
  } else {
    info = LAPACKE_dstedc_work(LAPACK_COL_MAJOR, 'I', n, d, e, z, n, work, lwork, iwork_.data(),
                               static_cast<lapack_int>(iwork_.size()));
    if (info != 0) return {info, "dstedc"};
    for (int j = 0; j < n; ++j) values[j] = d[n - 1 - j];
  }

  const int threads = threads_;
  const size_t blockSq = static_cast<size_t>(kBackTransformBlock) * kBackTransformBlock;
  double* vecs = split_ ? zSorted : z;
  RunParts(threads, [&](int part) {
    const int c0 = static_cast<int>(static_cast<long long>(n) * part / threads);
    const int c1 = static_cast<int>(static_cast<long long>(n) * (part + 1) / threads);
    if (split_) {
      for (int c = c0; c < c1; ++c) {
        const double* src = z + static_cast<size_t>(order[c]) * n;
        std::copy(src, src + n, vecs + static_cast<size_t>(c) * n);
      }
    }
    double* t = work + blockSq * part;
    double* w = work + blockSq * threads + static_cast<size_t>(c0) * kBackTransformBlock;
    BackTransformColumns(n, a, tau, vecs, c0, c1, w, t);
    TransposeReversingColumns(static_cast<size_t>(n), vecs, vectors, static_cast<size_t>(c0), static_cast<size_t>(c1));
  });
  return {0, nullptr};
}

}  // namespace rfid
