// Row movement of the forward pass: the MoE block's gather of the tokens routed to an expert and
// the weighted scatter-add of its output back to them, and the strided block copy that takes one
// attention head's columns out of (and back into) a rows×heads·headDim matrix. In JavaScript
// these were per-row subarray()+set() calls (an allocation each) or scalar loops. Also the
// product with a matrix given as row segments (a factored expert's 'tile' residual).
#include <cstring>

#include <string>
#include <vector>

#include "args.h"
#include "ops.h"
#include "vectorize.h"

namespace rfid {

namespace {

RFID_VECTORIZED(void, AxpyRow, (float* dst, const float* src, float weight, int n), (dst, src, weight, n)) {
  for (int j = 0; j < n; ++j) dst[j] += weight * src[j];
}

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

/**
 * addRowSegments(d, p, row, from, to, value, x, rows, out): out (rows × p) += x · Rᵀ for R given
 * as row segments (src/engine/ts/kernels/row-segments.ts, the same sums in the same order; the
 * compiler may fuse a multiply-add, so the two agree to rounding): an f64 prefix sum
 * of each row of x, one multiply-add per segment, a run of segments on one row of R summed in f64
 * and added to out once. Every segment is checked to lie inside R before anything is written.
 */
Napi::Value JsAddRowSegments(const Napi::CallbackInfo& info) {
  const char* op = "addRowSegments";
  Napi::Env env = info.Env();
  const int d = DimArg(info, 0, op, "d");
  const int p = DimArg(info, 1, op, "p");
  const IndexArg row = Int32ArrayArg(info, 2, op, "row");
  const IndexArg from = Int32ArrayArg(info, 3, op, "from");
  const IndexArg to = Int32ArrayArg(info, 4, op, "to");
  const ArrayArg value = Float64ArrayArg(info, 5, op, "value");
  const ArrayArg x = Float32ArrayArg(info, 6, op, "x");
  const int rows = DimArg(info, 7, op, "rows");
  const ArrayArg out = Float32ArrayArg(info, 8, op, "out");
  const size_t n = row.length;
  if (from.length != n || to.length != n || value.length != n) {
    ThrowError(env, op, "segments disagree in length (row " + std::to_string(n) + ", from " + std::to_string(from.length) + ", to " +
                            std::to_string(to.length) + ", value " + std::to_string(value.length) + ")");
  }
  RequireAtLeast(env, op, "x", x.length, static_cast<size_t>(rows) * d, "rows and d: x is rows×d");
  RequireAtLeast(env, op, "out", out.length, static_cast<size_t>(rows) * p, "rows and p: out is rows×p");
  for (size_t s = 0; s < n; ++s) {
    if (row.data[s] < 0 || row.data[s] >= p || from.data[s] < 0 || from.data[s] > to.data[s] || to.data[s] > d) {
      ThrowError(env, op, "segment " + std::to_string(s) + " (row " + std::to_string(row.data[s]) + ", columns " + std::to_string(from.data[s]) +
                              ".." + std::to_string(to.data[s]) + ") is outside the " + std::to_string(p) + "×" + std::to_string(d) + " matrix");
    }
  }
  if (n == 0) return env.Undefined();
  RequireNoOverlap(env, op, out, x);
  std::vector<double> prefix(static_cast<size_t>(d) + 1, 0.0);
  const double* v = value.f64();
  for (int r = 0; r < rows; ++r) {
    const float* xr = x.f32() + static_cast<size_t>(r) * d;
    double acc = 0;
    for (int j = 0; j < d; ++j) {
      acc += xr[j];
      prefix[j + 1] = acc;
    }
    float* yr = out.f32() + static_cast<size_t>(r) * p;
    int current = row.data[0];
    double sum = 0;
    for (size_t s = 0; s < n; ++s) {
      const int i = row.data[s];
      if (i != current) {
        yr[current] = static_cast<float>(static_cast<double>(yr[current]) + sum);
        sum = 0;
        current = i;
      }
      const double product = v[s] * (prefix[to.data[s]] - prefix[from.data[s]]);
      sum += product;
    }
    yr[current] = static_cast<float>(static_cast<double>(yr[current]) + sum);
  }
  return env.Undefined();
}

}  // namespace rfid
