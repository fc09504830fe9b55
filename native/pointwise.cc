// Per-row and element-wise kernels of the decoder layers: RMSNorm and SwiGLU's silu(gate)·up.
// They mirror src/engine/ts/kernels (the pure-TS fallback) operation for operation; only the
// order of the f64 sum of squares and the exp (fast_exp.h) differ, by f32 rounding.
#include <cmath>

#include "args.h"
#include "fast_exp.h"
#include "ops.h"
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

RFID_VECTORIZED(void, SiluMul, (float* gate, const float* up, size_t n), (gate, up, n)) {
  for (size_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + FastExp(-g)) * up[i];
  }
}

}  // namespace

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
  const char* op = "siluMul";
  Napi::Env env = info.Env();
  const int length = DimArg(info, 0, op, "length");
  const ArrayArg gate = Float32ArrayArg(info, 1, op, "gate");
  const ArrayArg up = Float32ArrayArg(info, 2, op, "up");
  RequireAtLeast(env, op, "gate", gate.length, length, "length");
  RequireAtLeast(env, op, "up", up.length, length, "length");
  ArrayArg g = gate;
  g.length = length;
  ArrayArg u = up;
  u.length = length;
  RequireNoOverlap(env, op, g, u);
  SiluMul(gate.f32(), up.f32(), static_cast<size_t>(length));
  return env.Undefined();
}

}  // namespace rfid
