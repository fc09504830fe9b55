// Products against BF16 weights on AMX tiles (amx_bf16.h): with BF16 matmul activations, and a
// prompt's f32 activations split into three exact BF16 parts (SplitRow).
//
// Why: on a CPU with AMX (Intel Sapphire Rapids and later, the usual CPU of an inference server),
// one TDPBF16PS multiplies a 16 × 32 tile of BF16 weights with 32 values of up to 16 rows of
// activations: 16·32·m multiply-adds, where one VDPBF16PS (bf16_dot.cc) does 32. A prompt's
// prefill, and a decoding step of several sequences whose weights come from cache, are bound by
// those multiply-adds; on AMX they cost a fraction (BENCHMARKS.md, "BF16 matmul activations on AMX tiles").
//
// The weights go into the tiles as stored: a tile's 16 rows are 16 rows of B (nn.Linear's n × k
// layout, ldb apart), 64 bytes of each. So the product is computed transposed, Cᵀ = B·Aᵀ, and A's
// rows (a few, already BF16) are packed once per call into the pair-interleaved layout the
// instruction wants for its second operand: for each pair of k, the pair of every row of A side by
// side. Each element of C is then one row of B against one row of A, summed over k in the same
// order whatever the rows around it, so the result does not depend on how the rows are cut over
// threads (pieces start at multiples of 16 rows; the rows past the last multiple of 16 are always
// the last ones, and go through Bf16DotRows).
//
// The sums are in f32 like the dot kernel's, in another order; products are exact either way. As
// VDPBF16PS, TDPBF16PS treats BF16 subnormals as zero and rounds to nearest even whatever MXCSR
// says, so this is the dot kernel's arithmetic (bf16_dot.h), not a new kind. With f32 activations
// the three parts of each row go into the same accumulators, so every product is the f32 kernels'
// exact one; the tails then go through the f32 kernels (small_gemm.h).
#include "amx_bf16.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include "bf16_dot.h"
#include "row_kernels.h"
#include "small_gemm.h"
#include "thread_pool.h"

// The tile intrinsics need GCC 11 or clang 14 (LLVM's; Apple's numbering is close enough): with an
// older compiler the addon still builds, without the tiles, and AmxUsable() says no.
#if defined(__GNUC__) && defined(__x86_64__) && ((defined(__clang__) && __clang_major__ >= 14) || (!defined(__clang__) && __GNUC__ >= 11))
#define RFID_AMX_BUILT 1
#include <cpuid.h>
#include "intrinsics.h"
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace rfid {

bool AmxUsable() {
#if defined(RFID_AMX_BUILT) && defined(__linux__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  const bool amxBf16 = (edx >> 22) & 1u;
  const bool amxTile = (edx >> 24) & 1u;
  __builtin_cpu_init();
  if (!amxBf16 || !amxTile || !__builtin_cpu_supports("avx512bf16") || !__builtin_cpu_supports("avx512bw")) return false;
  // Linux (5.16 and later) keeps the 8 KiB tile state off until a process asks for it; without
  // the grant the first tile instruction faults. The grant is for the whole process.
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

#if defined(RFID_AMX_BUILT)

namespace {

#define RFID_AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512bf16")))

/** The tile configuration (palette 1) as LDTILECFG reads it: 64 bytes. */
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t startRow = 0;
  uint8_t reserved[14] = {};
  uint16_t bytesPerRow[16] = {};
  uint8_t rows[16] = {};
};

// Tiles: two accumulators (16 rows of B each, against A's m rows), the two tiles of B's values
// they multiply, and A's packed pairs, shared by both. Macros, not constants: GCC's tile
// intrinsics paste the number into the register's name.
#define RFID_TILE_ACC0 0
#define RFID_TILE_ACC1 1
#define RFID_TILE_WEIGHTS0 2
#define RFID_TILE_WEIGHTS1 3
#define RFID_TILE_ACTIVATIONS 4

/** A's first kMain columns (m rows, lda apart) as the second operand wants them: per 32 values of k, 16 rows of m pairs. */
void PackPairs(int m, int kMain, const uint16_t* a, int lda, uint32_t* packed) {
  const int pairs = kMain / 2;
  for (int r = 0; r < m; ++r) {
    const uint16_t* row = a + static_cast<size_t>(r) * lda;
    for (int p = 0; p < pairs; ++p) {
      uint32_t pair;
      std::memcpy(&pair, row + 2 * p, sizeof(pair));
      packed[static_cast<size_t>(p) * m + r] = pair;
    }
  }
}

/** The 16 × m tile of Cᵀ in `tile` (row i: row j0 + i of B), written into C's columns j0.. (rows rows of it). */
inline void WriteBack(const float* tile, int m, int rows, float alpha, float beta, float* c, int ldc, int j0) {
  for (int r = 0; r < m; ++r) {
    float* out = c + static_cast<size_t>(r) * ldc + j0;
    for (int i = 0; i < rows; ++i) {
      const float v = alpha * tile[i * m + r];
      out[i] = beta == 0 ? v : v + beta * out[i];
    }
  }
}

RFID_AMX_TARGET void TileProduct(int m, int nMain, int kMain, float alpha, const uint32_t* packed, const uint16_t* b, int ldb,
                                 float beta, float* c, int ldc) {
  TileConfig config;
  const uint16_t accBytes = static_cast<uint16_t>(4 * m);
  for (int t : {RFID_TILE_ACC0, RFID_TILE_ACC1}) { config.rows[t] = 16; config.bytesPerRow[t] = accBytes; }
  for (int t : {RFID_TILE_WEIGHTS0, RFID_TILE_WEIGHTS1}) { config.rows[t] = 16; config.bytesPerRow[t] = 64; }
  config.rows[RFID_TILE_ACTIVATIONS] = 16;
  config.bytesPerRow[RFID_TILE_ACTIVATIONS] = accBytes;
  _tile_loadconfig(&config);
  const size_t stride = static_cast<size_t>(ldb) * sizeof(uint16_t);
  const size_t blockPairs = static_cast<size_t>(16) * m;
  const int blocks = kMain / 32;
  alignas(64) float tile0[16 * 8];
  alignas(64) float tile1[16 * 8];
  int j = 0;
  for (; j + 32 <= nMain; j += 32) {
    const uint16_t* w0 = b + static_cast<size_t>(j) * ldb;
    const uint16_t* w1 = w0 + static_cast<size_t>(16) * ldb;
    _tile_zero(RFID_TILE_ACC0);
    _tile_zero(RFID_TILE_ACC1);
    for (int q = 0; q < blocks; ++q) {
      _tile_loadd(RFID_TILE_ACTIVATIONS, packed + q * blockPairs, accBytes);
      _tile_loadd(RFID_TILE_WEIGHTS0, w0 + 32 * q, stride);
      _tile_loadd(RFID_TILE_WEIGHTS1, w1 + 32 * q, stride);
      _tile_dpbf16ps(RFID_TILE_ACC0, RFID_TILE_WEIGHTS0, RFID_TILE_ACTIVATIONS);
      _tile_dpbf16ps(RFID_TILE_ACC1, RFID_TILE_WEIGHTS1, RFID_TILE_ACTIVATIONS);
    }
    _tile_stored(RFID_TILE_ACC0, tile0, accBytes);
    _tile_stored(RFID_TILE_ACC1, tile1, accBytes);
    WriteBack(tile0, m, 16, alpha, beta, c, ldc, j);
    WriteBack(tile1, m, 16, alpha, beta, c, ldc, j + 16);
  }
  if (j < nMain) {  // 16 rows left
    const uint16_t* w0 = b + static_cast<size_t>(j) * ldb;
    _tile_zero(RFID_TILE_ACC0);
    for (int q = 0; q < blocks; ++q) {
      _tile_loadd(RFID_TILE_ACTIVATIONS, packed + q * blockPairs, accBytes);
      _tile_loadd(RFID_TILE_WEIGHTS0, w0 + 32 * q, stride);
      _tile_dpbf16ps(RFID_TILE_ACC0, RFID_TILE_WEIGHTS0, RFID_TILE_ACTIVATIONS);
    }
    _tile_stored(RFID_TILE_ACC0, tile0, accBytes);
    WriteBack(tile0, m, 16, alpha, beta, c, ldc, j);
  }
  // the tile registers back to their initial state, so the OS need not save 8 KiB of them at
  // every switch while this thread does other work
  _tile_release();
}

/**
 * A row of k f32 values as three BF16 parts with hi + mid + lo = a exactly: hi is a rounded to
 * BF16, mid the rounding of what hi leaves, lo what remains (at most 8 significant bits, so BF16
 * holds it). An f32 has 24; each part is 8 bits further down. Every product of a part with a BF16
 * weight is exact, so the three parts' products sum to a's, in f32. (Where hi is infinite or NaN
 * the rest is 0, so the row's infinities and NaNs stay what they were. Parts below f32's smallest
 * normal, 1.2e-38, the tiles read as zero.) `work`: k floats.
 */
void SplitRow(const float* a, int k, uint16_t* hi, uint16_t* mid, uint16_t* lo, float* work) {
  RoundToBf16(reinterpret_cast<const uint32_t*>(a), hi, k);
  for (int i = 0; i < k; ++i) {
    const float d = a[i] - Bf16Value(hi[i]);
    work[i] = d == d ? d : 0.0f;
  }
  RoundToBf16(reinterpret_cast<const uint32_t*>(work), mid, k);
  for (int i = 0; i < k; ++i) work[i] -= Bf16Value(mid[i]);
  RoundToBf16(reinterpret_cast<const uint32_t*>(work), lo, k);
}

/**
 * Values of k a pass of the many-rows product covers where A's packed rows exceed kWholeBytes: A's
 * rows of it stay in L2 while B's rows pass over them. Where A fits, k is not cut: B is then read
 * as whole rows, which the prefetchers follow better than pieces of them (12-32 rows from memory
 * measured 1.2-1.7x slower cut).
 */
constexpr int kChunk = 1024;
constexpr size_t kWholeBytes = size_t{1} << 20;

/** Bytes of the many-rows product's buffers kept with a thread between calls; more is freed after the call. */
constexpr size_t kKeptScratchBytes = size_t{4} << 20;

/**
 * out[c] = column c of the 16 × 16 matrix of 32-bit values whose row i is at in + i·ld (64 bytes
 * each): the four rounds of interleaving (32-bit, 64-bit, then 128-bit lanes twice) of a 16 × 16
 * transpose.
 */
RFID_AMX_TARGET inline void Transpose16(const float* in, size_t ld, __m512 out[16]) {
  __m512 r[16];
  __m512 t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(in + static_cast<size_t>(i) * ld);
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // r[4i + c], 128-bit lane L: column 4L + c of rows 4i..4i + 3
  for (int i = 0; i < 4; ++i) {
    const __m512d t0 = _mm512_castps_pd(t[4 * i]), t1 = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d t2 = _mm512_castps_pd(t[4 * i + 2]), t3 = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 lo02 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);       // lanes 0, 2 of rows 0-3 and 4-7
    const __m512 lo13 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xdd);       // lanes 1, 3
    const __m512 hi02 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);  // the same of rows 8-11 and 12-15
    const __m512 hi13 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xdd);
    out[c] = _mm512_shuffle_f32x4(lo02, hi02, 0x88);
    out[8 + c] = _mm512_shuffle_f32x4(lo02, hi02, 0xdd);
    out[4 + c] = _mm512_shuffle_f32x4(lo13, hi13, 0x88);
    out[12 + c] = _mm512_shuffle_f32x4(lo13, hi13, 0xdd);
  }
}

/**
 * Block g of A's rows packed for the many-rows product, from A's rows already rounded to BF16
 * (rounded, ldr apart; rows past m read as zeros): per 32 values of k, one 1 KiB tile whose row p
 * holds pair p of each of the 16 rows (a transpose of 32-bit pairs), the tiles in k order.
 */
RFID_AMX_TARGET void PackBlock(int m, int g, int kBlocks, const uint16_t* rounded, int ldr, uint32_t* block) {
  alignas(64) static const uint16_t zeros[32] = {};
  const int rows = std::min(16, m - 16 * g);
  for (int q = 0; q < kBlocks; ++q) {
    alignas(64) float in[16 * 16];
    for (int r = 0; r < 16; ++r) {
      const uint16_t* src = r < rows ? rounded + static_cast<size_t>(16 * g + r) * ldr + 32 * q : zeros;
      std::memcpy(in + 16 * r, src, 64);
    }
    __m512 cols[16];
    Transpose16(in, 16, cols);
    float* tile = reinterpret_cast<float*>(block + static_cast<size_t>(q) * 256);
    for (int p = 0; p < 16; ++p) _mm512_store_ps(tile + 16 * p, cols[p]);
  }
}

/** Where the many-rows product writes: C (ldc apart) from row 0 and column j0 of this piece, and alpha, beta. */
struct Output {
  float* c;
  int ldc;
  int m;
  float alpha;
  float beta;
};

/**
 * A finished 16 × 16 tile of Cᵀ (row jj: row j + jj of B; column r: row 16g + r of A) into C:
 * transposed in registers, the rows past m left out.
 */
RFID_AMX_TARGET inline void WriteTile(const float* tile, const Output& out, int g, int j) {
  __m512 rows[16];
  Transpose16(tile, 16, rows);
  const int valid = std::min(16, out.m - 16 * g);
  const __m512 alpha = _mm512_set1_ps(out.alpha);
  for (int r = 0; r < valid; ++r) {
    float* dst = out.c + static_cast<size_t>(16 * g + r) * out.ldc + j;
    __m512 v = _mm512_mul_ps(alpha, rows[r]);
    if (out.beta != 0) v = _mm512_fmadd_ps(_mm512_set1_ps(out.beta), _mm512_loadu_ps(dst), v);
    _mm512_storeu_ps(dst, v);
  }
}

/**
 * One step of the many-rows product: NW tiles of 16 rows of B (from w, `stride` bytes apart)
 * against NA blocks of 16 rows of A (packed, kBlocks tiles a block), k blocks q0..q1. The
 * accumulators start from zero on the first pass and from `partial` (NW·NA tiles of 1 KiB,
 * [t][u]) after; after the last pass they go into C, otherwise back to `partial`.
 */
template <int NW, int NA>
RFID_AMX_TARGET inline void BlockStep(const uint16_t* w, size_t stride, const uint32_t* a, size_t setStride, int sets, int kBlocks, int q0,
                                      int q1, float* partial, bool first, bool last, const Output& out, int g, int j) {
  // accumulators 0..3 (weights tile t, activations block u: 2t + u), weights 4..5, activations 6..7
  if (first) {
    _tile_zero(0);
    if (NA > 1) _tile_zero(1);
    if (NW > 1) _tile_zero(2);
    if (NW > 1 && NA > 1) _tile_zero(3);
  } else {
    _tile_loadd(0, partial, 64);
    if (NA > 1) _tile_loadd(1, partial + 256, 64);
    if (NW > 1) _tile_loadd(2, partial + 512, 64);
    if (NW > 1 && NA > 1) _tile_loadd(3, partial + 768, 64);
  }
  const uint16_t* w1 = w + 16 * (stride / sizeof(uint16_t));
  for (int q = q0; q < q1; ++q) {
    _tile_loadd(4, w + 32 * q, stride);
    if (NW > 1) _tile_loadd(5, w1 + 32 * q, stride);
    for (int set = 0; set < sets; ++set) {
      const uint32_t* a0 = a + set * setStride + static_cast<size_t>(q) * 256;
      _tile_loadd(6, a0, 64);
      _tile_dpbf16ps(0, 4, 6);
      if (NW > 1) _tile_dpbf16ps(2, 5, 6);
      if (NA > 1) {
        _tile_loadd(7, a0 + static_cast<size_t>(kBlocks) * 256, 64);
        _tile_dpbf16ps(1, 4, 7);
        if (NW > 1) _tile_dpbf16ps(3, 5, 7);
      }
    }
  }
  if (!last) {
    _tile_stored(0, partial, 64);
    if (NA > 1) _tile_stored(1, partial + 256, 64);
    if (NW > 1) _tile_stored(2, partial + 512, 64);
    if (NW > 1 && NA > 1) _tile_stored(3, partial + 768, 64);
    return;
  }
  alignas(64) float tile[256];
  _tile_stored(0, tile, 64);
  WriteTile(tile, out, g, j);
  if (NA > 1) {
    _tile_stored(1, tile, 64);
    WriteTile(tile, out, g + 1, j);
  }
  if (NW > 1) {
    _tile_stored(2, tile, 64);
    WriteTile(tile, out, g, j + 16);
  }
  if (NW > 1 && NA > 1) {
    _tile_stored(3, tile, 64);
    WriteTile(tile, out, g + 1, j + 16);
  }
}

/**
 * Rows 0..nRows − 1 (a multiple of 16) of B against every row of A (packed: mBlocks blocks), k up
 * to kMain, into C (out: this piece's columns). k in chunks of `chunk` outermost, so a chunk of A's
 * rows stays in L2 while B's rows pass over it 32 at a time; between chunks the sums wait in
 * `partials` (4 KiB per 32 rows of B and 32 of A).
 */
RFID_AMX_TARGET void ManyRowsPiece(int mBlocks, int nRows, int kMain, int chunk, int sets, const uint32_t* packed, const uint16_t* b,
                                   int ldb, float* partials, const Output& out) {
  TileConfig config;
  for (int t = 0; t < 8; ++t) { config.rows[t] = 16; config.bytesPerRow[t] = 64; }
  _tile_loadconfig(&config);
  const size_t stride = static_cast<size_t>(ldb) * sizeof(uint16_t);
  const int kBlocks = kMain / 32;
  const int mPairs = (mBlocks + 1) / 2;
  const size_t setStride = static_cast<size_t>(mBlocks) * kBlocks * 256;
  for (int q0 = 0; q0 < kBlocks; q0 += chunk / 32) {
    const int q1 = std::min(kBlocks, q0 + chunk / 32);
    const bool first = q0 == 0;
    const bool last = q1 == kBlocks;
    for (int j = 0; j < nRows; j += 32) {
      const uint16_t* w = b + static_cast<size_t>(j) * ldb;
      const bool twoW = j + 32 <= nRows;
      for (int g = 0; g < mBlocks; g += 2) {
        const uint32_t* a = packed + static_cast<size_t>(g) * kBlocks * 256;
        float* partial = partials ? partials + (static_cast<size_t>(j / 32) * mPairs + g / 2) * 1024 : nullptr;
        const bool twoA = g + 2 <= mBlocks;
        if (twoW && twoA) BlockStep<2, 2>(w, stride, a, setStride, sets, kBlocks, q0, q1, partial, first, last, out, g, j);
        else if (twoW) BlockStep<2, 1>(w, stride, a, setStride, sets, kBlocks, q0, q1, partial, first, last, out, g, j);
        else if (twoA) BlockStep<1, 2>(w, stride, a, setStride, sets, kBlocks, q0, q1, partial, first, last, out, g, j);
        else BlockStep<1, 1>(w, stride, a, setStride, sets, kBlocks, q0, q1, partial, first, last, out, g, j);
      }
    }
  }
  _tile_release();
}

}  // namespace

namespace {

/**
 * The many-rows product (AmxBf16Gemm, AmxF32Gemm): A's rows rounded to BF16 (exact = false) or
 * split into three BF16 parts that sum to them (exact = true, SplitRow), packed into tiles of 16
 * rows, the blocks shared over the threads; the tails through `tail` on row blocks of 8: the dot
 * kernel on the rounded rows, or the f32 kernels on A itself.
 */
void ManyRowsBlock(bool exact, int m, int n, int k, float alpha, const float* a, int lda, const uint16_t* b, int ldb, float beta,
                   float* c, int ldc, int threads, std::vector<uint16_t>& partRows, std::vector<uint32_t>& packedBlocks) {
  const int kMain = k & ~31;
  const int nMain = n & ~15;
  const int ldr = (k + 31) & ~31;
  const int mBlocks = (m + 15) / 16;
  const int kBlocks = kMain / 32;
  const int sets = exact ? 3 : 1;
  // A's parts (the rounded rows, or the three parts of each) and their tiles, the blocks shared over
  // the threads
  const size_t partStride = static_cast<size_t>(m) * ldr;
  const size_t partNeed = sets * partStride + 32;
  if (partRows.size() < partNeed) partRows.resize(partNeed);
  uint16_t* parts = partRows.data();
  parts += (64 - reinterpret_cast<uintptr_t>(parts) % 64) % 64 / sizeof(uint16_t);
  const size_t setStride = static_cast<size_t>(mBlocks) * kBlocks * 256;
  const size_t packedNeed = sets * setStride + 16;
  if (packedBlocks.size() < packedNeed) packedBlocks.resize(packedNeed);
  uint32_t* packed = packedBlocks.data();
  packed += (64 - reinterpret_cast<uintptr_t>(packed) % 64) % 64 / sizeof(uint32_t);
  RunPieces(threads, mBlocks, [&](int g) {
    thread_local std::vector<float> work;
    if (exact && work.size() < static_cast<size_t>(k)) work.resize(k);
    for (int r = 16 * g; r < std::min(m, 16 * g + 16); ++r) {
      const float* row = a + static_cast<size_t>(r) * lda;
      uint16_t* part = parts + static_cast<size_t>(r) * ldr;
      if (exact) SplitRow(row, k, part, part + partStride, part + 2 * partStride, work.data());
      else RoundToBf16(reinterpret_cast<const uint32_t*>(row), part, k);
    }
    if (work.size() * sizeof(float) > kKeptScratchBytes) std::vector<float>().swap(work);
    if (kBlocks == 0) return;
    for (int set = 0; set < sets; ++set) {
      PackBlock(m, g, kBlocks, parts + set * partStride, ldr, packed + set * setStride + static_cast<size_t>(g) * kBlocks * 256);
    }
  });
  const auto tail = [&](int n0, int n1, int k0, int k1, float withBeta) {
    for (int r = 0; r < m; r += 8) {
      const int rows = std::min(8, m - r);
      const uint16_t* w = b + static_cast<size_t>(n0) * ldb + k0;
      float* out = c + static_cast<size_t>(r) * ldc + n0;
      if (exact) SmallRowsGemmTransBBf16(rows, n1 - n0, k1 - k0, alpha, a + static_cast<size_t>(r) * lda + k0, lda, w, ldb, withBeta, out, ldc, 1);
      else Bf16DotRows(rows, n1 - n0, k1 - k0, alpha, parts + static_cast<size_t>(r) * ldr + k0, ldr, w, ldb, withBeta, out, ldc);
    }
  };
  if (kMain > 0 && nMain > 0) {
    // B's rows in pieces of whole 32-row steps (the last may end on 16), a few a thread
    const int steps = (nMain + 31) / 32;
    const int pieces = std::max(1, std::min(steps, std::max(threads, 1) * 2));
    const int chunk = setStride * sets * sizeof(uint32_t) > kWholeBytes ? kChunk : kMain;
    const bool chunked = kMain > chunk;
    const int mPairs = (mBlocks + 1) / 2;
    RunPieces(threads, pieces, [&](int p) {
      const int j0 = static_cast<int>(static_cast<int64_t>(steps) * p / pieces) * 32;
      const int j1 = std::min(nMain, static_cast<int>(static_cast<int64_t>(steps) * (p + 1) / pieces) * 32);
      if (j1 <= j0) return;
      thread_local std::vector<float> partialSums;
      float* partials = nullptr;
      if (chunked) {
        const size_t count = static_cast<size_t>((j1 - j0 + 31) / 32) * mPairs * 1024 + 16;
        if (partialSums.size() < count) partialSums.resize(count);
        partials = partialSums.data();
        partials += (64 - reinterpret_cast<uintptr_t>(partials) % 64) % 64 / sizeof(float);
      }
      const Output out{c + j0, ldc, m, alpha, beta};
      ManyRowsPiece(mBlocks, j1 - j0, kMain, chunk, sets, packed, b + static_cast<size_t>(j0) * ldb, ldb, partials, out);
      if (partialSums.size() * sizeof(float) > kKeptScratchBytes) std::vector<float>().swap(partialSums);
    });
  }
  // B's rows past the last multiple of 16 (all of them when the tiles take none), and (added) the
  // columns past the last multiple of 32
  if (kMain == 0 || nMain == 0) tail(0, n, 0, k, beta);
  else {
    if (nMain < n) tail(nMain, n, 0, k, beta);
    if (kMain < k) tail(0, nMain, kMain, k, 1.0f);
  }
}

/**
 * Bytes of A's parts and tiles (4 a value a set: the parts, then their tiles) one pass of the
 * many-rows product holds. A prompt or a calibration batch has more rows than that (65536 rows of
 * 4096 would hold 3 GiB in the exact mode): they go through in blocks of rows, each reading B again,
 * which at 600+ rows a block costs little next to the products.
 */
constexpr size_t kRowBlockBytes = size_t{64} << 20;

void ManyRows(bool exact, int m, int n, int k, float alpha, const float* a, int lda, const uint16_t* b, int ldb, float beta, float* c,
              int ldc, int threads) {
  if (m < 1 || n < 1) return;
  // kept with the thread between calls up to kKeptScratchBytes (a fresh buffer each call would
  // come back as untouched pages)
  thread_local std::vector<uint16_t> partRows;
  thread_local std::vector<uint32_t> packedBlocks;
  const size_t rowBytes = static_cast<size_t>(exact ? 3 : 1) * ((k + 31) & ~31) * 4;
  const int block = static_cast<int>(std::max<size_t>(256, kRowBlockBytes / rowBytes / 16 * 16));
  for (int r = 0; r < m; r += block) {
    const size_t at = static_cast<size_t>(r);
    ManyRowsBlock(exact, std::min(block, m - r), n, k, alpha, a + at * lda, lda, b, ldb, beta, c + at * ldc, ldc, threads, partRows, packedBlocks);
  }
  if (partRows.size() * sizeof(uint16_t) > kKeptScratchBytes) std::vector<uint16_t>().swap(partRows);
  if (packedBlocks.size() * sizeof(uint32_t) > kKeptScratchBytes) std::vector<uint32_t>().swap(packedBlocks);
}

}  // namespace

void AmxBf16Gemm(int m, int n, int k, float alpha, const float* a, int lda, const uint16_t* b, int ldb, float beta, float* c, int ldc,
                 int threads) {
  ManyRows(false, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads);
}

void AmxF32Gemm(int m, int n, int k, float alpha, const float* a, int lda, const uint16_t* b, int ldb, float beta, float* c, int ldc,
                int threads) {
  ManyRows(true, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads);
}

const uint32_t* AmxPackRows(int m, int k, const uint16_t* a, int lda) {
  const int kMain = k & ~31;
  if (m < 1 || m > 8 || kMain == 0) return nullptr;
  // kept with the thread between calls (a fresh buffer each call would come back as untouched pages)
  thread_local std::vector<uint32_t> packedPairs;
  const size_t need = static_cast<size_t>(kMain / 2) * m + 16;
  if (packedPairs.size() < need) packedPairs.resize(need);
  uint32_t* packed = packedPairs.data();
  packed += (64 - reinterpret_cast<uintptr_t>(packed) % 64) % 64 / sizeof(uint32_t);
  PackPairs(m, kMain, a, lda, packed);
  return packed;
}

void AmxBf16Rows(int m, int n, int k, float alpha, const uint16_t* a, int lda, const uint32_t* pairs, const uint16_t* b, int ldb,
                 float beta, float* c, int ldc) {
  const int kMain = k & ~31;
  const int nMain = n & ~15;
  if (pairs == nullptr || nMain == 0) {
    Bf16DotRows(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  TileProduct(m, nMain, kMain, alpha, pairs, b, ldb, beta, c, ldc);
  if (nMain < n) {
    Bf16DotRows(m, n - nMain, k, alpha, a, lda, b + static_cast<size_t>(nMain) * ldb, ldb, beta, c + nMain, ldc);
  }
  // the columns past kMain, added to what the tiles wrote (beta = 1)
  if (kMain < k) Bf16DotRows(m, nMain, k - kMain, alpha, a + kMain, lda, b + kMain, ldb, 1.0f, c, ldc);
}

#else

const uint32_t* AmxPackRows(int, int, const uint16_t*, int) { return nullptr; }

void AmxBf16Rows(int m, int n, int k, float alpha, const uint16_t* a, int lda, const uint32_t*, const uint16_t* b, int ldb, float beta,
                 float* c, int ldc) {
  Bf16DotRows(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void AmxF32Gemm(int m, int n, int k, float alpha, const float* a, int lda, const uint16_t* b, int ldb, float beta, float* c, int ldc,
                int) {
  for (int r = 0; r < m; r += 8) {
    SmallRowsGemmTransBBf16(std::min(8, m - r), n, k, alpha, a + static_cast<size_t>(r) * lda, lda, b, ldb, beta,
                            c + static_cast<size_t>(r) * ldc, ldc, 1);
  }
}

// Never called here (SimdLevel() is never kAmx without the tiles); the dot kernel's answer all the same.
void AmxBf16Gemm(int m, int n, int k, float alpha, const float* a, int lda, const uint16_t* b, int ldb, float beta, float* c, int ldc,
                 int) {
  const int ldr = (k + 31) & ~31;
  std::vector<uint16_t> rounded(static_cast<size_t>(m) * ldr);
  for (int r = 0; r < m; ++r) {
    RoundToBf16(reinterpret_cast<const uint32_t*>(a + static_cast<size_t>(r) * lda), rounded.data() + static_cast<size_t>(r) * ldr, k);
  }
  for (int r = 0; r < m; r += 8) {
    Bf16DotRows(std::min(8, m - r), n, k, alpha, rounded.data() + static_cast<size_t>(r) * ldr, ldr, b, ldb, beta,
                c + static_cast<size_t>(r) * ldc, ldc);
  }
}

#endif

}  // namespace rfid
