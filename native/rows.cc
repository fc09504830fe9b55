// Row movement of the forward pass: the MoE block's gather of the tokens routed to an expert and
// the weighted scatter-add of its output back to them, and the strided block copy that takes one
// attention head's columns out of (and back into) a rows×heads·headDim matrix. In JavaScript
// these were per-row subarray()+set() calls (an allocation each) or scalar loops. Also the
// product with a factored expert's 'tile' residual.
#include <cmath>
#include <cstdint>
#include <cstring>

#include <string>
#include <vector>

#include "args.h"
#include "ops.h"
#include "row_kernels.h"
#include "vectorize.h"

namespace rfid {

RFID_VECTORIZED(void, AxpyRow, (float* dst, const float* src, float weight, int n), (dst, src, weight, n)) {
  for (int j = 0; j < n; ++j) dst[j] += weight * src[j];
}

namespace {

/** Every index must name a row of a matrix with `rows` rows. */
void RequireIndices(Napi::Env env, const char* op, const IndexArg& index, int count, size_t rows, const char* what) {
  for (int i = 0; i < count; ++i) {
    const int32_t v = index.data[i];
    if (v < 0 || static_cast<size_t>(v) >= rows) {
      ThrowError(env, op, std::string(index.name) + "[" + std::to_string(i) + "] = " + std::to_string(v) + " is not a row of " + what + " (" + std::to_string(rows) + " rows)");
    }
  }
}

}  // namespace

/** gatherRows(width, index, count, src, dst): dst row i = src row index[i], i < count. */
Napi::Value JsGatherRows(const Napi::CallbackInfo& info) {
  const char* op = "gatherRows";
  Napi::Env env = info.Env();
  const int width = DimArg(info, 0, op, "width");
  const IndexArg index = Int32ArrayArg(info, 1, op, "index");
  const int count = DimArg(info, 2, op, "count");
  const ArrayArg src = Float32ArrayArg(info, 3, op, "src");
  const ArrayArg dst = Float32ArrayArg(info, 4, op, "dst");
  RequireAtLeast(env, op, "index", index.length, count, "count");
  RequireAtLeast(env, op, "dst", dst.length, static_cast<size_t>(count) * width, "count and width: dst is count×width");
  if (width == 0) return env.Undefined();
  RequireIndices(env, op, index, count, src.length / width, "src");
  RequireNoOverlap(env, op, dst, src);
  for (int i = 0; i < count; ++i) {
    std::memcpy(dst.f32() + static_cast<size_t>(i) * width, src.f32() + static_cast<size_t>(index.data[i]) * width, sizeof(float) * width);
  }
  return env.Undefined();
}

/** scatterAddRows(width, index, weights, count, src, dst): dst row index[i] += weights[i] · src row i. */
Napi::Value JsScatterAddRows(const Napi::CallbackInfo& info) {
  const char* op = "scatterAddRows";
  Napi::Env env = info.Env();
  const int width = DimArg(info, 0, op, "width");
  const IndexArg index = Int32ArrayArg(info, 1, op, "index");
  const ArrayArg weights = Float32ArrayArg(info, 2, op, "weights");
  const int count = DimArg(info, 3, op, "count");
  const ArrayArg src = Float32ArrayArg(info, 4, op, "src");
  const ArrayArg dst = Float32ArrayArg(info, 5, op, "dst");
  RequireAtLeast(env, op, "index", index.length, count, "count");
  RequireAtLeast(env, op, "weights", weights.length, count, "count");
  RequireAtLeast(env, op, "src", src.length, static_cast<size_t>(count) * width, "count and width: src is count×width");
  if (width == 0) return env.Undefined();
  RequireIndices(env, op, index, count, dst.length / width, "dst");
  RequireNoOverlap(env, op, dst, src);
  for (int i = 0; i < count; ++i) {
    AxpyRow(dst.f32() + static_cast<size_t>(index.data[i]) * width, src.f32() + static_cast<size_t>(i) * width, weights.f32()[i], width);
  }
  return env.Undefined();
}

/**
 * copyBlock(rows, cols, src, srcOffset, srcStride, dst, dstOffset, dstStride): copies a rows×cols
 * block, row i from src[srcOffset + i·srcStride ..+cols) to dst[dstOffset + i·dstStride ..+cols).
 */
Napi::Value JsCopyBlock(const Napi::CallbackInfo& info) {
  const char* op = "copyBlock";
  Napi::Env env = info.Env();
  const int rows = DimArg(info, 0, op, "rows");
  const int cols = DimArg(info, 1, op, "cols");
  const ArrayArg src = Float32ArrayArg(info, 2, op, "src");
  const int srcOffset = DimArg(info, 3, op, "srcOffset");
  const int srcStride = DimArg(info, 4, op, "srcStride");
  const ArrayArg dst = Float32ArrayArg(info, 5, op, "dst");
  const int dstOffset = DimArg(info, 6, op, "dstOffset");
  const int dstStride = DimArg(info, 7, op, "dstStride");
  if (rows == 0 || cols == 0) return env.Undefined();
  if (srcStride < cols || dstStride < cols) ThrowError(env, op, "strides must be at least cols (rows of a block do not overlap)");
  RequireAtLeast(env, op, "src", src.length, srcOffset + static_cast<size_t>(rows - 1) * srcStride + cols, "rows, cols, srcOffset and srcStride");
  RequireAtLeast(env, op, "dst", dst.length, dstOffset + static_cast<size_t>(rows - 1) * dstStride + cols, "rows, cols, dstOffset and dstStride");
  RequireNoOverlap(env, op, dst, src);
  for (int i = 0; i < rows; ++i) {
    std::memcpy(dst.f32() + dstOffset + static_cast<size_t>(i) * dstStride, src.f32() + srcOffset + static_cast<size_t>(i) * srcStride, sizeof(float) * cols);
  }
  return env.Undefined();
}

namespace {

struct TileShape {
  int d, p, q;
  uint64_t small, carry;
  double smallScale, largeScale;
};

/**
 * The tile residual for C rows of x at once: their prefix sums interleaved (prefix[j·C + r]), so
 * the bucket bounds are stepped once for the C rows and each bucket's C products are one
 * contiguous loop the compiler unrolls.
 */
template <int C>
void TileChunk(const TileShape& t, const float* eta, const float* x, float* out, double* prefix) {
  for (int r = 0; r < C; ++r) {
    const float* xr = x + static_cast<size_t>(r) * t.d;
    double acc = 0;
    prefix[r] = 0;
    for (int j = 0; j < t.d; ++j) {
      acc += xr[j];
      prefix[static_cast<size_t>(j + 1) * C + r] = acc;
    }
  }
  double sum[C] = {};
  const uint64_t d = static_cast<uint64_t>(t.d);
  const uint64_t q = static_cast<uint64_t>(t.q);
  // bucket b starts at ⌊b·L/q⌋; each step adds `small`, plus one when the remainders carry over q
  uint64_t remainder = 0;
  int row = 0;
  uint64_t col = 0;
  for (int b = 0; b < t.q; ++b) {
    remainder += t.carry;
    uint64_t left = t.small;
    double scale = t.smallScale;
    if (remainder >= q) {
      remainder -= q;
      ++left;
      scale = t.largeScale;
    }
    const double v = static_cast<double>(eta[b]) * scale;
    while (left > 0) {
      const uint64_t room = d - col;
      const uint64_t take = left < room ? left : room;
      const double* hi = prefix + (col + take) * C;
      const double* lo = prefix + col * C;
      for (int r = 0; r < C; ++r) {
        const double product = v * (hi[r] - lo[r]);
        sum[r] += product;
      }
      col += take;
      left -= take;
      if (col == d) {
        for (int r = 0; r < C; ++r) {
          float* y = out + static_cast<size_t>(r) * t.p + row;
          *y = static_cast<float>(static_cast<double>(*y) + sum[r]);
          sum[r] = 0;
        }
        ++row;
        col = 0;
      }
    }
  }
}

}  // namespace

/**
 * addTileResidual(d, p, q, eta, x, rows, out): out (rows × p) += x · Rᵀ for the p×d matrix
 * R = unvec(P·η) of a factored expert's 'tile' residual: q contiguous buckets
 * [⌊b·L/q⌋, ⌊(b+1)·L/q⌋) of R's L = p·d row-major entries, bucket b's entries all η_b/√|b|
 * (src/engine/ts/kernels/tile-residual.ts, the same sums in the same order; the compiler may fuse
 * a multiply-add, so the two agree to rounding). The bounds are stepped exactly in integers, so
 * nothing per matrix is kept. Per row of x an f64 prefix sum, one multiply-add per bucket and
 * row end, a row of R's products summed in f64 and added to out once; up to 8 rows of x share one
 * pass over the buckets.
 */
Napi::Value JsAddTileResidual(const Napi::CallbackInfo& info) {
  const char* op = "addTileResidual";
  Napi::Env env = info.Env();
  const int d = DimArg(info, 0, op, "d");
  const int p = DimArg(info, 1, op, "p");
  const int q = DimArg(info, 2, op, "q");
  const ArrayArg eta = Float32ArrayArg(info, 3, op, "eta");
  const ArrayArg x = Float32ArrayArg(info, 4, op, "x");
  const int rows = DimArg(info, 5, op, "rows");
  const ArrayArg out = Float32ArrayArg(info, 6, op, "out");
  const uint64_t length = static_cast<uint64_t>(p) * static_cast<uint64_t>(d);
  if (q < 1 || static_cast<uint64_t>(q) > length) {
    ThrowError(env, op, "q = " + std::to_string(q) + " buckets cannot cover a " + std::to_string(p) + "×" + std::to_string(d) +
                            " matrix (every bucket holds at least one entry: 1 ≤ q ≤ p·d)");
  }
  RequireAtLeast(env, op, "eta", eta.length, static_cast<size_t>(q), "q: eta holds one value per bucket");
  RequireAtLeast(env, op, "x", x.length, static_cast<size_t>(rows) * d, "rows and d: x is rows×d");
  RequireAtLeast(env, op, "out", out.length, static_cast<size_t>(rows) * p, "rows and p: out is rows×p");
  if (rows == 0) return env.Undefined();
  RequireNoOverlap(env, op, out, x);
  RequireNoOverlap(env, op, out, eta);
  AddTileResidual(d, p, q, eta.f32(), x.f32(), rows, out.f32());
  return env.Undefined();
}

void AddTileResidual(int d, int p, int q, const float* eta, const float* x, int rows, float* out) {
  const uint64_t length = static_cast<uint64_t>(p) * static_cast<uint64_t>(d);
  // bucket sizes are ⌊L/q⌋ or ⌊L/q⌋ + 1
  const uint64_t small = length / static_cast<uint64_t>(q);
  const uint64_t carry = length - small * static_cast<uint64_t>(q);
  const double smallScale = 1.0 / std::sqrt(static_cast<double>(small));
  const double largeScale = 1.0 / std::sqrt(static_cast<double>(small + 1));
  constexpr int kChunk = 8;
  // reused between calls: a fresh (d + 1)·8 f64 buffer is above malloc's mmap threshold for d ≥ 2048,
  // and its page faults cost as much as the products
  static thread_local std::vector<double> prefixBuffer;
  const size_t need = (static_cast<size_t>(d) + 1) * static_cast<size_t>(rows < kChunk ? rows : kChunk);
  if (prefixBuffer.size() < need) prefixBuffer.resize(need);
  double* prefix = prefixBuffer.data();
  const TileShape shape{d, p, q, small, carry, smallScale, largeScale};
  for (int r0 = 0; r0 < rows; r0 += kChunk) {
    const int c = rows - r0 < kChunk ? rows - r0 : kChunk;
    const float* xs = x + static_cast<size_t>(r0) * d;
    float* ys = out + static_cast<size_t>(r0) * p;
    switch (c) {
      case 1: TileChunk<1>(shape, eta, xs, ys, prefix); break;
      case 2: TileChunk<2>(shape, eta, xs, ys, prefix); break;
      case 3: TileChunk<3>(shape, eta, xs, ys, prefix); break;
      case 4: TileChunk<4>(shape, eta, xs, ys, prefix); break;
      case 5: TileChunk<5>(shape, eta, xs, ys, prefix); break;
      case 6: TileChunk<6>(shape, eta, xs, ys, prefix); break;
      case 7: TileChunk<7>(shape, eta, xs, ys, prefix); break;
      default: TileChunk<8>(shape, eta, xs, ys, prefix); break;
    }
  }
}

}  // namespace rfid
