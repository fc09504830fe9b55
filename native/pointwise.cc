// Per-row and element-wise kernels of the decoder layers: RMSNorm, SwiGLU's silu(gate)·up, RoPE
// and the residual add; and the widening of BF16 weights to f32 as they are read.
// They mirror src/engine/ts/kernels (the pure-TS fallback) operation for operation; only the
// order of the f64 sum of squares and the exp (fast_exp.h) differ, by f32 rounding.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "args.h"
#include "fast_exp.h"
#include "ops.h"
#include "row_kernels.h"
#include "vectorize.h"

namespace rfid {

namespace {

RFID_VECTORIZED(double, SumSquares, (const float* x, int n), (x, n)) {
  // f64 products of f32 values are exact; four accumulators let the adds overlap
  double acc[4] = {0, 0, 0, 0};
  int j = 0;
  for (; j + 4 <= n; j += 4) {
    for (int l = 0; l < 4; ++l) acc[l] += static_cast<double>(x[j + l]) * x[j + l];
  }
  for (; j < n; ++j) acc[0] += static_cast<double>(x[j]) * x[j];
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

RFID_VECTORIZED(void, ScaleByWeight, (const float* x, const float* w, float inv, int n, float* out), (x, w, inv, n, out)) {
  for (int j = 0; j < n; ++j) out[j] = w[j] * (x[j] * inv);
}

/** The arguments (length, a, b) of an element-wise kernel: two separate f32 arrays of ≥ length values. */
struct ElementwisePair {
  size_t length;
  float* a;
  const float* b;
};
ElementwisePair ElementwisePairArgs(const Napi::CallbackInfo& info, const char* op, const char* aName, const char* bName) {
  Napi::Env env = info.Env();
  const int length = DimArg(info, 0, op, "length");
  ArrayArg a = Float32ArrayArg(info, 1, op, aName);
  ArrayArg b = Float32ArrayArg(info, 2, op, bName);
  RequireAtLeast(env, op, aName, a.length, length, "length");
  RequireAtLeast(env, op, bName, b.length, length, "length");
  a.length = length;
  b.length = length;
  RequireNoOverlap(env, op, a, b);
  return {static_cast<size_t>(length), a.f32(), b.f32()};
}

/**
 * BF16 → f32 in place (src/io/dtype.ts widenHalvesInPlace, which this replaces when the addon is
 * loaded): the `count` 16-bit values sit in the upper half of the result's bytes; element i's
 * four bytes are written after its two bytes (and every later one's) were read, front to back, so
 * a block of 16 is loaded whole before its 64 bytes are stored. Exact: a BF16 value is the top
 * half of its f32. Single-threaded: in place, a later range's output covers an earlier range's
 * input.
 */
RFID_VECTORIZED(void, WidenBf16InPlace, (unsigned char* bytes, size_t count), (bytes, count)) {
  const unsigned char* halves = bytes + 2 * count;
  size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    uint16_t h[16];
    std::memcpy(h, halves + 2 * i, sizeof(h));
    uint32_t w[16];
    for (int j = 0; j < 16; ++j) w[j] = static_cast<uint32_t>(h[j]) << 16;
    std::memcpy(bytes + 4 * i, w, sizeof(w));
  }
  for (; i < count; ++i) {
    uint16_t h;
    std::memcpy(&h, halves + 2 * i, sizeof(h));
    const uint32_t w = static_cast<uint32_t>(h) << 16;
    std::memcpy(bytes + 4 * i, &w, sizeof(w));
  }
}

}  // namespace

RFID_VECTORIZED(void, SiluMul, (float* gate, const float* up, size_t n), (gate, up, n)) {
  for (size_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + FastExp(-g)) * up[i];
  }
}

/**
 * rmsNorm(rows, width, x, weight, eps, out): out row r = weight · x_r / sqrt(mean(x_r²) + eps)
 * (Hugging Face *RMSNorm: the inverse root is rounded to f32 before the products). `out` may be
 * `x` itself (in place) but must not partly overlap it.
 */
Napi::Value JsRmsNorm(const Napi::CallbackInfo& info) {
  const char* op = "rmsNorm";
  Napi::Env env = info.Env();
  const int rows = DimArg(info, 0, op, "rows");
  const int width = DimArg(info, 1, op, "width");
  const ArrayArg x = Float32ArrayArg(info, 2, op, "x");
  const ArrayArg weight = Float32ArrayArg(info, 3, op, "weight");
  const double eps = NumberArg(info, 4, op, "eps");
  const ArrayArg out = Float32ArrayArg(info, 5, op, "out");
  RequireAtLeast(env, op, "x", x.length, static_cast<size_t>(rows) * width, "rows and width: x is rows×width");
  RequireAtLeast(env, op, "out", out.length, static_cast<size_t>(rows) * width, "rows and width: out is rows×width");
  RequireShape(env, op, weight, 1, width, "width: weight has width values");
  if (out.data != x.data) {
    ArrayArg xs = x;
    xs.length = static_cast<size_t>(rows) * width;
    ArrayArg os = out;
    os.length = xs.length;
    RequireNoOverlap(env, op, os, xs);
  }
  const float* xp = x.f32();
  float* op_ = out.f32();
  for (int r = 0; r < rows; ++r) {
    const size_t base = static_cast<size_t>(r) * width;
    const double sumSq = SumSquares(xp + base, width);
    const float inv = static_cast<float>(1.0 / std::sqrt(static_cast<double>(static_cast<float>(sumSq / width)) + eps));
    ScaleByWeight(xp + base, weight.f32(), inv, width, op_ + base);
  }
  return env.Undefined();
}

/** siluMul(length, gate, up): gate[i] = silu(gate[i])·up[i] for i < length (SwiGLU), in place. */
Napi::Value JsSiluMul(const Napi::CallbackInfo& info) {
  const ElementwisePair args = ElementwisePairArgs(info, "siluMul", "gate", "up");
  SiluMul(args.a, args.b, args.length);
  return info.Env().Undefined();
}

namespace {

// RoPE's rotation of one head: pairs (i, i + half) with the angle of table row `t`. The products of
// f32 values are exact in f64 and the difference is rounded once to f64, then to f32 on the store:
// the same operations as the TypeScript kernel (JavaScript's numbers are f64), so bit for bit its
// result whether or not the compiler fuses a multiply-add.
RFID_VECTORIZED(void, RotateHalf, (float* x, const float* cos, const float* sin, int half), (x, cos, sin, half)) {
  for (int i = 0; i < half; ++i) {
    const double a = x[i];
    const double b = x[i + half];
    const double c = cos[i];
    const double s = sin[i];
    x[i] = static_cast<float>(a * c - b * s);
    x[i + half] = static_cast<float>(b * c + a * s);
  }
}

RFID_VECTORIZED(void, AddInto, (float* target, const float* source, size_t n), (target, source, n)) {
  for (size_t i = 0; i < n; ++i) target[i] += source[i];
}

}  // namespace

/**
 * rope(rows, heads, headDim, positions, cos, sin, x[, rotaryDim]): rotates the first rotaryDim
 * values (default: all headDim) of each head of row r of x (rows × heads·headDim) by the angles of
 * table row positions[r] (rotate-half pairs i, i + rotaryDim/2; cos and sin hold rotaryDim/2 values
 * per position), in place; the rest of each head passes through (GLM-4.5's partial rotary width).
 */
Napi::Value JsRope(const Napi::CallbackInfo& info) {
  const char* op = "rope";
  Napi::Env env = info.Env();
  const int rows = DimArg(info, 0, op, "rows");
  const int heads = DimArg(info, 1, op, "heads");
  const int headDim = DimArg(info, 2, op, "headDim");
  const IndexArg positions = Int32ArrayArg(info, 3, op, "positions");
  const ArrayArg cos = Float32ArrayArg(info, 4, op, "cos");
  const ArrayArg sin = Float32ArrayArg(info, 5, op, "sin");
  const ArrayArg x = Float32ArrayArg(info, 6, op, "x");
  const int rotaryDim = info.Length() > 7 && !info[7].IsUndefined() ? DimArg(info, 7, op, "rotaryDim") : headDim;
  if (rotaryDim % 2 != 0) ThrowError(env, op, "rotaryDim " + std::to_string(rotaryDim) + " must be even (rotate-half pairs)");
  if (rotaryDim > headDim) ThrowError(env, op, "rotaryDim " + std::to_string(rotaryDim) + " exceeds headDim " + std::to_string(headDim));
  const int half = rotaryDim / 2;
  const size_t width = static_cast<size_t>(heads) * headDim;
  RequireAtLeast(env, op, "positions", positions.length, rows, "rows");
  RequireAtLeast(env, op, "x", x.length, static_cast<size_t>(rows) * width, "rows, heads and headDim: x is rows×(heads·headDim)");
  if (sin.length != cos.length) ThrowError(env, op, "cos has " + std::to_string(cos.length) + " values but sin " + std::to_string(sin.length) + "; give tables of one size");
  if (half == 0 || rows == 0 || heads == 0) return env.Undefined();
  const size_t tablePositions = cos.length / half;
  for (int r = 0; r < rows; ++r) {
    const int32_t p = positions.data[r];
    if (p < 0 || static_cast<size_t>(p) >= tablePositions) {
      ThrowError(env, op, "position " + std::to_string(p) + " of row " + std::to_string(r) + " is outside the tables (" + std::to_string(tablePositions) + " positions); build tables for the longest sequence");
    }
  }
  ArrayArg xs = x;
  xs.length = static_cast<size_t>(rows) * width;
  RequireNoOverlap(env, op, xs, cos);
  RequireNoOverlap(env, op, xs, sin);
  float* xp = x.f32();
  for (int r = 0; r < rows; ++r) {
    const size_t t = static_cast<size_t>(positions.data[r]) * half;
    for (int h = 0; h < heads; ++h) RotateHalf(xp + static_cast<size_t>(r) * width + static_cast<size_t>(h) * headDim, cos.f32() + t, sin.f32() + t, half);
  }
  return env.Undefined();
}

/** widenBf16(out): out (Float32Array) holds out.length BF16 values in the upper half of its bytes; widened in place. */
Napi::Value JsWidenBf16(const Napi::CallbackInfo& info) {
  const ArrayArg out = Float32ArrayArg(info, 0, "widenBf16", "out");
  WidenBf16InPlace(static_cast<unsigned char*>(out.data), out.length);
  return info.Env().Undefined();
}

/**
 * BF16 bit patterns of f32 values, each rounded to nearest even; a NaN stays a quiet NaN with its
 * sign. The same bits as f32BitsToBf16 in src/io/dtype.ts, which it replaces when the addon is
 * loaded: that loop takes ~8 ns a value, a served factored model rounds every expert it
 * materialises (3 M values each at Qwen3-30B-A3B's shape).
 */
RFID_VECTORIZED(void, RoundToBf16, (const uint32_t* src, uint16_t* dst, size_t count), (src, dst, count)) {
  for (size_t i = 0; i < count; ++i) {
    const uint32_t b = src[i];
    const bool nan = (b & 0x7f800000u) == 0x7f800000u && (b & 0x7fffffu) != 0;
    const uint32_t rounded = (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
    dst[i] = static_cast<uint16_t>(nan ? ((b >> 16) | 0x40u) : rounded);
  }
}

/** roundToBf16(src, dst): dst (Uint16Array) = src (Float32Array of the same length) rounded to BF16. */
Napi::Value JsRoundToBf16(const Napi::CallbackInfo& info) {
  const char* op = "roundToBf16";
  const ArrayArg src = Float32ArrayArg(info, 0, op, "src");
  const HalfArg dst = Uint16ArrayArg(info, 1, op, "dst");
  if (dst.length != src.length) {
    ThrowError(info.Env(), op, std::string("dst holds ") + std::to_string(dst.length) + " values and src " + std::to_string(src.length) + "; pass arrays of the same length");
  }
  RoundToBf16(static_cast<const uint32_t*>(src.data), const_cast<uint16_t*>(dst.data), src.length);
  return info.Env().Undefined();
}

/**
 * rows × cols 8-bit codes mapped through tables, 256 entries per block of `blockCols` columns:
 * out[r·cols + j] = table[256·⌊j / blockCols⌋ + codes[r·cols + j]]. T is the element's width
 * (BF16 patterns, or f32 values copied as bits). A block-FP8 checkpoint's weights are read this
 * way (src/io/byte-tables.ts): the JavaScript loop takes ~2.5 ns a value.
 */
template <typename T>
static void ByteTableRows(T* out, const uint8_t* codes, const T* table, size_t rows, size_t cols, size_t blockCols) {
  for (size_t r = 0; r < rows; ++r) {
    T* o = out + r * cols;
    const uint8_t* c = codes + r * cols;
    for (size_t j0 = 0, t = 0; j0 < cols; j0 += blockCols, t += 256) {
      const size_t j1 = std::min(cols, j0 + blockCols);
      const T* block = table + t;
      for (size_t j = j0; j < j1; ++j) o[j] = block[c[j]];
    }
  }
}

/**
 * byteTableRows(out, codes, table, rows, cols, blockCols): out and table are both Uint16Array or
 * both Float32Array; codes a Uint8Array of rows × cols; table holds 256 entries per column block.
 */
Napi::Value JsByteTableRows(const Napi::CallbackInfo& info) {
  const char* op = "byteTableRows";
  Napi::Env env = info.Env();
  const auto typedArray = [&](size_t index, const char* name) {
    Napi::Value v = info[index];
    if (!v.IsTypedArray()) ThrowError(env, op, std::string(name) + " must be a typed array");
    return v.As<Napi::TypedArray>();
  };
  Napi::TypedArray out = typedArray(0, "out");
  Napi::TypedArray codes = typedArray(1, "codes");
  Napi::TypedArray table = typedArray(2, "table");
  const size_t rows = static_cast<size_t>(DimArg(info, 3, op, "rows"));
  const size_t cols = static_cast<size_t>(DimArg(info, 4, op, "cols"));
  const size_t blockCols = static_cast<size_t>(DimArg(info, 5, op, "blockCols"));
  if (codes.TypedArrayType() != napi_uint8_array) ThrowError(env, op, "codes must be a Uint8Array");
  const napi_typedarray_type type = out.TypedArrayType();
  if ((type != napi_uint16_array && type != napi_float32_array) || table.TypedArrayType() != type)
    ThrowError(env, op, "out and table must both be Uint16Arrays or both Float32Arrays");
  if (blockCols == 0) ThrowError(env, op, "blockCols must be positive");
  const size_t blocks = (cols + blockCols - 1) / blockCols;
  if (codes.ElementLength() != rows * cols || out.ElementLength() < rows * cols)
    ThrowError(env, op, "codes must hold rows × cols values and out at least as many");
  if (table.ElementLength() < blocks * 256) ThrowError(env, op, "table must hold 256 entries per column block");
  const auto at = [](Napi::TypedArray a) { return static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset(); };
  const uint8_t* c = at(codes);
  if (type == napi_uint16_array) {
    ByteTableRows(reinterpret_cast<uint16_t*>(at(out)), c, reinterpret_cast<const uint16_t*>(at(table)), rows, cols, blockCols);
  } else {
    ByteTableRows(reinterpret_cast<uint32_t*>(at(out)), c, reinterpret_cast<const uint32_t*>(at(table)), rows, cols, blockCols);
  }
  return env.Undefined();
}

/** addInto(length, target, source): target[i] += source[i] for i < length. */
Napi::Value JsAddInto(const Napi::CallbackInfo& info) {
  const ElementwisePair args = ElementwisePairArgs(info, "addInto", "target", "source");
  AddInto(args.a, args.b, args.length);
  return info.Env().Undefined();
}

}  // namespace rfid
