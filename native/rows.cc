// Row movement of the forward pass: the MoE block's gather of the tokens routed to an expert and
// the weighted scatter-add of its output back to them, and the strided block copy that takes one
// attention head's columns out of (and back into) a rows×heads·headDim matrix. In JavaScript
// these were per-row subarray()+set() calls (an allocation each) or scalar loops.
#include <cstring>

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

}  // namespace rfid
