// Row-wise exponentials of the forward pass: the causal (optionally sliding-window) softmax of
// attention scores, and the per-row log-sum-exp / argmax statistics of a logits block that the
// next-token loss and the KL between two models are built from. Both visit every score and
// every vocabulary logit of an evaluation, which made them the largest JavaScript cost of it.
//
// Precision: values are f32 (like PyTorch's); each exp is f32 (≈1 ulp, fast_exp.h) and sums
// are accumulated in f64 across 64-element chunks (f32 within a chunk of eight per lane), so a
// row sum is within a few f32 ulps of the exact one.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "args.h"
#include "fast_exp.h"
#include "ops.h"
#include "softmax.h"
#include "vectorize.h"

namespace rfid {

namespace {

constexpr int kLanes = 8;
constexpr int kChunk = 64;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

/** max of x[0..n), NaN ignored (−Inf when there is nothing else), like `if (v > max) max = v`. */
RFID_VECTORIZED(float, RowMax, (const float* x, int n), (x, n)) {
  float lanes[kLanes];
  for (int l = 0; l < kLanes; ++l) lanes[l] = kNegInf;
  int j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) lanes[l] = x[j + l] > lanes[l] ? x[j + l] : lanes[l];
  }
  float m = kNegInf;
  for (; j < n; ++j) m = x[j] > m ? x[j] : m;
  for (int l = 0; l < kLanes; ++l) m = lanes[l] > m ? lanes[l] : m;
  return m;
}

/** The first j < n with x[j] == m, or −1: blocks of 64 compared at once (the compare and its
    reduction vectorise), then the block that holds it element by element. */
RFID_VECTORIZED(int, FirstIndexOf, (const float* x, int n, float m), (x, n, m)) {
  int j = 0;
  for (; j + 64 <= n; j += 64) {
    int hit = 0;
    for (int l = 0; l < 64; ++l) hit |= x[j + l] == m;
    if (hit) break;
  }
  for (; j < n; ++j) {
    if (x[j] == m) return j;
  }
  return -1;
}

/** out[j] = exp(x[j] − m) for j < n (n ≤ kChunk); returns their sum (f32 lanes, then f64). */
RFID_VECTORIZED(double, ExpChunk, (const float* x, int n, float m, float* out), (x, n, m, out)) {
  for (int j = 0; j < n; ++j) out[j] = FastExp(x[j] - m);
  float lanes[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  int j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) lanes[l] += out[j + l];
  }
  double s = 0;
  for (; j < n; ++j) s += out[j];
  for (int l = 0; l < kLanes; ++l) s += lanes[l];
  return s;
}

/** Σ e[j]·(a[j] − b[j]) for j < n ≤ kChunk (f32 lanes, then f64). */
RFID_VECTORIZED(double, WeightedDiffChunk, (const float* e, const float* a, const float* b, int n), (e, a, b, n)) {
  float lanes[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  int j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int l = 0; l < kLanes; ++l) lanes[l] += e[j + l] * (a[j + l] - b[j + l]);
  }
  double s = 0;
  for (; j < n; ++j) s += static_cast<double>(e[j]) * (a[j] - b[j]);
  for (int l = 0; l < kLanes; ++l) s += lanes[l];
  return s;
}

RFID_VECTORIZED(void, ScaleRow, (float* x, int n, float factor), (x, n, factor)) {
  for (int j = 0; j < n; ++j) x[j] *= factor;
}

/**
 * Softmax of x[0..n) in place. With `sink` (an attention sink, gpt-oss): a logit that joins the
 * normaliser and gets no output. The max then includes the sink (a sink far above the scores must
 * not overflow the sum), and its exp is added to the f64 sum once the scores' are in; a NaN sink
 * fails the comparison and makes m, and so the row, NaN, as in transformers. Without one, the
 * plain softmax's arithmetic exactly.
 */
void SoftmaxRow(float* x, int n, const float* sink = nullptr) {
  if (n <= 0) return;
  const float rowMax = RowMax(x, n);
  const float m = sink == nullptr || rowMax > *sink ? rowMax : *sink;
  double sum = 0;
  for (int j0 = 0; j0 < n; j0 += kChunk) sum += ExpChunk(x + j0, std::min(kChunk, n - j0), m, x + j0);
  if (sink != nullptr) sum += FastExp(*sink - m);
  ScaleRow(x, n, static_cast<float>(1.0 / sum));
}

}  // namespace

void CausalSoftmaxBlocks(int blocks, int rows, int cols, int past, int window, float* s, const float* sinks) {
  for (size_t r = 0; r < static_cast<size_t>(blocks) * rows; ++r) {
    const int i = static_cast<int>(r % rows);
    const int last = past + i;
    const int first = window == 0 ? 0 : std::max(0, last - window + 1);
    float* row = s + r * cols;
    std::fill(row, row + first, 0.0f);
    SoftmaxRow(row + first, last + 1 - first, sinks ? sinks + r / rows : nullptr);
    std::fill(row + last + 1, row + cols, 0.0f);
  }
}

/**
 * causalSoftmax(blocks, rows, cols, past, window, scores): scores holds `blocks` stacked
 * rows×cols blocks (one per attention head). Row i of a block is the query at position past + i:
 * it keeps key columns first..past+i, first = max(0, past + i − window + 1) with a window
 * (window 0: none), gets their softmax, and exact zeros elsewhere. Requires past + rows ≤ cols.
 */
Napi::Value JsCausalSoftmax(const Napi::CallbackInfo& info) {
  const char* op = "causalSoftmax";
  Napi::Env env = info.Env();
  const int blocks = DimArg(info, 0, op, "blocks");
  const int rows = DimArg(info, 1, op, "rows");
  const int cols = DimArg(info, 2, op, "cols");
  const int past = DimArg(info, 3, op, "past");
  const int window = DimArg(info, 4, op, "window");
  const ArrayArg scores = Float32ArrayArg(info, 5, op, "scores");
  if (static_cast<size_t>(past) + rows > static_cast<size_t>(cols)) {
    ThrowError(env, op, "past + rows = " + std::to_string(static_cast<size_t>(past) + rows) + " exceeds cols = " + std::to_string(cols) + " (the last query must see its own key)");
  }
  RequireShape(env, op, scores, static_cast<size_t>(blocks) * rows, cols, "blocks, rows and cols: scores is (blocks·rows)×cols");
  CausalSoftmaxBlocks(blocks, rows, cols, past, window, scores.f32());
  return env.Undefined();
}

/**
 * logitStats(rows, cols, logits, max, sumExp, argmax[, other, weightedDiff]): per row r of the
 * rows×cols block, max[r] = its largest logit (NaN ignored; −Inf if none), argmax[r] = the first
 * column holding it (−1 if none), sumExp[r] = Σ_j exp(l_j − max[r]) (NaN when a logit is NaN),
 * and with `other` (a second rows×cols block b): weightedDiff[r] = Σ_j exp(l_j − max[r])·(l_j − b_j).
 */
Napi::Value JsLogitStats(const Napi::CallbackInfo& info) {
  const char* op = "logitStats";
  Napi::Env env = info.Env();
  const int rows = DimArg(info, 0, op, "rows");
  const int cols = DimArg(info, 1, op, "cols");
  const ArrayArg logits = Float32ArrayArg(info, 2, op, "logits");
  const ArrayArg max = Float64ArrayArg(info, 3, op, "max");
  const ArrayArg sumExp = Float64ArrayArg(info, 4, op, "sumExp");
  const IndexArg argmax = Int32ArrayArg(info, 5, op, "argmax");
  const bool withOther = info.Length() > 6 && !info[6].IsUndefined() && !info[6].IsNull();
  RequireShape(env, op, logits, rows, cols, "rows and cols: logits is rows×cols");
  RequireAtLeast(env, op, "max", max.length, rows, "rows");
  RequireAtLeast(env, op, "sumExp", sumExp.length, rows, "rows");
  RequireAtLeast(env, op, "argmax", argmax.length, rows, "rows");
  const float* other = nullptr;
  double* weightedDiff = nullptr;
  if (withOther) {
    const ArrayArg b = Float32ArrayArg(info, 6, op, "other");
    const ArrayArg wd = Float64ArrayArg(info, 7, op, "weightedDiff");
    RequireShape(env, op, b, rows, cols, "rows and cols: other is rows×cols like logits");
    RequireAtLeast(env, op, "weightedDiff", wd.length, rows, "rows");
    other = b.f32();
    weightedDiff = wd.f64();
  }
  const float* l = logits.f32();
  float tmp[kChunk];
  for (int r = 0; r < rows; ++r) {
    const float* row = l + static_cast<size_t>(r) * cols;
    const float m = RowMax(row, cols);
    int arg = -1;
    if (m != kNegInf) arg = static_cast<int>(std::find(row, row + cols, m) - row);
    double sum = 0;
    double wd = 0;
    for (int j0 = 0; j0 < cols; j0 += kChunk) {
      const int n = std::min(kChunk, cols - j0);
      sum += ExpChunk(row + j0, n, m, tmp);
      if (other) wd += WeightedDiffChunk(tmp, row + j0, other + static_cast<size_t>(r) * cols + j0, n);
    }
    max.f64()[r] = m;
    sumExp.f64()[r] = sum;
    argmax.data[r] = arg;
    if (weightedDiff) weightedDiff[r] = wd;
  }
  return env.Undefined();
}

Napi::Value JsArgmaxRows(const Napi::CallbackInfo& info) {
  const char* op = "argmaxRows";
  Napi::Env env = info.Env();
  const int rows = DimArg(info, 0, op, "rows");
  const int cols = DimArg(info, 1, op, "cols");
  const ArrayArg logits = Float32ArrayArg(info, 2, op, "logits");
  const IndexArg out = Int32ArrayArg(info, 3, op, "out");
  RequireShape(env, op, logits, rows, cols, "rows and cols: logits is rows×cols");
  RequireAtLeast(env, op, "out", out.length, rows, "rows");
  const float* l = logits.f32();
  for (int r = 0; r < rows; ++r) {
    const float* row = l + static_cast<size_t>(r) * cols;
    // the max ignoring NaN, then its first column; a row of NaN alone has none: column 0
    const int j = FirstIndexOf(row, cols, RowMax(row, cols));
    out.data[r] = j < 0 ? 0 : j;
  }
  return env.Undefined();
}

}  // namespace rfid
