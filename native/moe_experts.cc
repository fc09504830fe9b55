// The routed experts of one MoE block in one call: each expert's rows are gathered, run through
// its SwiGLU (gate and up products, silu(g)·u, down product) and scattered back, weighted, into
// the block's output.
//
// Why a kernel: from JavaScript each routed expert cost six N-API calls (gather, three products,
// SwiGLU, scatter) and an await, about 3 µs of overhead beside 5-10 µs of work for a small expert
// (Qwen3-MoE's are 768 × 2048; the shipped demo's 96 × 256), so a step of 8 sequences spent a
// fifth of its time calling. And the experts of one step are independent, which the per-product
// split of small_gemm.cc cannot use: a 96 × 256 matrix is too small to share, while the 20 or so
// experts 8 sequences route to share well, one expert per piece of the persistent pool (when
// there are at least as many experts as threads; otherwise each product is shared, as before).
// A prompt's prefill routes tens of rows to each of many experts (224 tokens, top-4 of 64: ~14
// each), and there the per-product split woke the pool for three products of tens of µs per
// expert: a third of a 224-token prefill of a Qwen3-shaped model went to the experts' calls.
//
// Experts kept packed as their checkpoints store them (FP8 codes with scales, MXFP4 blocks) run
// here too, each product gemmFp8's or gemmMxfp4's (decoded_gemm.h), so they share the threads as
// BF16 experts do: 7-9% more tokens a second at 8 streams of an FP8 checkpoint, none at one
// (BENCHMARKS.md, "FP8 and MXFP4 experts in the one call"; what they still lose against BF16 is
// the decoding).
//
// gpt-oss's experts (an optional 14th argument: its clamped activation and biases) run the same
// way, with the activation of the MoE block's expert-by-expert reference in SwiGLU's place and the
// down bias added to each row before the scatter.
//
// The result is bit for bit that of the JavaScript loop, on any number of threads: every expert
// runs the products the loop ran (gemmBf16's own path for the engine's thread count; for f32
// matrices, at most kSmallRowsMax rows, SmallRowsGemmTransB via GemmF32) into a buffer of its
// own, and the scatter-adds run afterwards on this thread in the loop's order (experts ascending,
// rows in token order), with the same AxpyRow. An expert runs on one thread beside the others
// only where its products' sums do not depend on the thread count (the small-rows and tiled
// paths of bf16_gemm.h); an expert whose product gemmBf16 sends through sgemm's panels, or which
// holds more than its share of the rows, runs alone with every thread, as the loop ran it.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "args.h"
#include "bf16_gemm.h"
#include "decoded_gemm.h"
#include "gemm_f32.h"
#include "ops.h"
#include "parallel.h"
#include "row_kernels.h"
#include "small_gemm.h"
#include "thread_pool.h"

namespace rfid {

namespace {

/** One weight matrix: BF16 as stored, f32, or packed (FP8, MXFP4) with every value a BF16 pattern decoded. */
struct Matrix {
  const uint16_t* bf16 = nullptr;
  const float* f32 = nullptr;
  DecodeBRows decode;  // packed: its rows decoded (decoded_gemm.h)
  size_t bytes = 0;
  bool given = false;  // passed at all (a factored matrix's base is optional)
  bool isBf16 = false;  // a Uint16Array (its data pointer may be null when it is empty: rank 0)
  bool packed = false;
};

/**
 * One projection of an expert (p × d): a dense matrix, or factored, W = A·B (+ W̄) + R, applied as
 * the runtime's FactoredLinear applies it: t = x·Bᵀ, y = t·Aᵀ (onto x·W̄ᵀ), then R's 'tile'
 * residual added.
 */
struct Operand {
  Matrix dense;
  bool factored = false;
  int rank = 0;
  Matrix basis;         // B, rank × d
  Matrix coefficients;  // A, p × rank
  Matrix base;          // W̄, p × d, or none
  int tileQ = 0;        // 0: no residual
  const float* tileEta = nullptr;
  size_t Bytes() const { return dense.bytes + basis.bytes + coefficients.bytes + base.bytes + sizeof(float) * static_cast<size_t>(tileQ); }
  /** Every matrix it holds is BF16, as stored or decoded (so any number of rows goes along gemmBf16's paths). */
  bool AllBf16() const { return factored ? basis.isBf16 && coefficients.isBf16 && (!base.given || base.isBf16) : dense.isBf16 || dense.packed; }
};

Matrix MatrixValue(Napi::Env env, const char* op, Napi::Value v, const std::string& label, size_t values, const char* check) {
  if (!v.IsTypedArray()) ThrowError(env, op, label + " must be a Uint16Array (BF16) or a Float32Array");
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  Matrix m;
  m.given = true;
  if (ta.TypedArrayType() == napi_uint16_array) {
    m.isBf16 = true;
    m.bf16 = v.As<Napi::Uint16Array>().Data();
    m.bytes = 2 * ta.ElementLength();
  } else if (ta.TypedArrayType() == napi_float32_array) {
    m.f32 = v.As<Napi::Float32Array>().Data();
    m.bytes = 4 * ta.ElementLength();
  } else {
    ThrowError(env, op, label + " must be a Uint16Array (BF16) or a Float32Array");
  }
  if (ta.ElementLength() != values) {
    ThrowError(env, op, label + " holds " + std::to_string(ta.ElementLength()) + " values, expected " + std::to_string(values) + " (check " + check + ")");
  }
  return m;
}

/** The typed array `name` of a packed matrix, of `type`, holding `values` values. */
Napi::TypedArray PackedPart(Napi::Env env, const char* op, const Napi::Object& o, const char* name, napi_typedarray_type type, const char* typeName,
                            const std::string& label, size_t values, const std::string& check) {
  Napi::Value v = o.Get(name);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) ThrowError(env, op, label + "." + name + " must be a " + typeName);
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  if (ta.ElementLength() != values) {
    ThrowError(env, op, label + "." + name + " holds " + std::to_string(ta.ElementLength()) + " values, expected " + std::to_string(values) + " (check " + check + ")");
  }
  return ta;
}

/**
 * A p × d matrix kept packed as a checkpoint stores it: FP8 { codes (Uint8Array p × d E4M3),
 * scales (Float32Array p × ⌈d / group⌉), group } or MXFP4 { blocks (Uint8Array p × d/2), scales
 * (Uint8Array p × d/32 exponents) }, d a multiple of 32, as gemmFp8 and gemmMxfp4 take them.
 */
Matrix PackedValue(Napi::Env env, const char* op, const Napi::Object& o, const std::string& label, int p, int d) {
  Matrix m;
  m.given = true;
  m.packed = true;
  const size_t pd = static_cast<size_t>(p) * static_cast<size_t>(d);
  if (o.Has("codes")) {
    Napi::Value group = o.Get("group");
    const double g = group.IsNumber() ? group.As<Napi::Number>().DoubleValue() : 0;
    if (!(g >= 1 && g <= 2147483647.0 && g == static_cast<double>(static_cast<int64_t>(g)))) ThrowError(env, op, label + ".group must be a whole number ≥ 1 (values a scale covers along a row)");
    const int gi = static_cast<int>(g);
    const size_t groups = (static_cast<size_t>(d) + gi - 1) / gi;
    Napi::TypedArray codes = PackedPart(env, op, o, "codes", napi_uint8_array, "Uint8Array", label, pd, "hidden and width: codes is rows × columns");
    Napi::TypedArray scales = PackedPart(env, op, o, "scales", napi_float32_array, "Float32Array", label, static_cast<size_t>(p) * groups, "group: scales is rows × ⌈columns / group⌉");
    m.decode = Fp8Decoder(codes.As<Napi::Uint8Array>().Data(), scales.As<Napi::Float32Array>().Data(), d, gi);
    m.bytes = pd + 4 * static_cast<size_t>(p) * groups;
    return m;
  }
  if (d % 32 != 0) ThrowError(env, op, label + " is MXFP4 with " + std::to_string(d) + " columns: MXFP4 needs a multiple of 32 (one exponent a group of 32 values)");
  Napi::TypedArray blocks = PackedPart(env, op, o, "blocks", napi_uint8_array, "Uint8Array", label, pd / 2, "hidden and width: blocks is rows × columns/2 bytes");
  Napi::TypedArray scales = PackedPart(env, op, o, "scales", napi_uint8_array, "Uint8Array", label, pd / 32, "hidden and width: scales is rows × columns/32 exponents");
  m.decode = Mxfp4Decoder(blocks.As<Napi::Uint8Array>().Data(), scales.As<Napi::Uint8Array>().Data(), d);
  m.bytes = pd / 2 + pd / 32;
  return m;
}

/**
 * Element `index` of gates / ups / downs: a p × d matrix (BF16, f32, or packed: PackedValue), or
 * factored, { basis, coefficients, rank, base?, residualQ?, residualEta? }.
 */
Operand OperandElement(Napi::Env env, const char* op, const Napi::Array& array, uint32_t index, const char* name, int p, int d) {
  Napi::Value v = array.Get(index);
  const std::string label = std::string(name) + "[" + std::to_string(index) + "]";
  Operand o;
  const size_t pd = static_cast<size_t>(p) * static_cast<size_t>(d);
  if (v.IsTypedArray() || !v.IsObject()) {
    if (!v.IsTypedArray()) ThrowError(env, op, label + " must be a Uint16Array (BF16), a Float32Array, a packed matrix (FP8 { codes, scales, group }, MXFP4 { blocks, scales }) or a factored matrix { basis, coefficients, rank }");
    o.dense = MatrixValue(env, op, v, label, pd, "hidden and width");
    return o;
  }
  Napi::Object f = v.As<Napi::Object>();
  if (f.Has("codes") || f.Has("blocks")) {
    o.dense = PackedValue(env, op, f, label, p, d);
    return o;
  }
  o.factored = true;
  Napi::Value rank = f.Get("rank");
  if (!rank.IsNumber() || rank.As<Napi::Number>().DoubleValue() != static_cast<double>(rank.As<Napi::Number>().Int32Value()) || rank.As<Napi::Number>().Int32Value() < 0) {
    ThrowError(env, op, label + ".rank must be a whole number ≥ 0");
  }
  o.rank = rank.As<Napi::Number>().Int32Value();
  const size_t r = static_cast<size_t>(o.rank);
  o.basis = MatrixValue(env, op, f.Get("basis"), label + ".basis", r * d, "rank and the matrix's columns: basis is rank × columns");
  o.coefficients = MatrixValue(env, op, f.Get("coefficients"), label + ".coefficients", static_cast<size_t>(p) * r, "rank and the matrix's rows: coefficients is rows × rank");
  Napi::Value base = f.Get("base");
  if (!base.IsUndefined() && !base.IsNull()) o.base = MatrixValue(env, op, base, label + ".base", pd, "hidden and width");
  Napi::Value q = f.Get("residualQ");
  if (!q.IsUndefined() && !q.IsNull()) {
    const double qv = q.IsNumber() ? q.As<Napi::Number>().DoubleValue() : -1;
    if (!(qv >= 1 && qv <= static_cast<double>(pd) && qv == static_cast<double>(static_cast<int64_t>(qv)) && qv <= 2147483647.0)) {
      ThrowError(env, op, label + ".residualQ must be a whole number of buckets from 1 to the matrix's entries (" + std::to_string(pd) + ")");
    }
    o.tileQ = static_cast<int>(qv);
    Napi::Value eta = f.Get("residualEta");
    if (!eta.IsTypedArray() || eta.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) ThrowError(env, op, label + ".residualEta must be a Float32Array");
    if (eta.As<Napi::Float32Array>().ElementLength() < static_cast<size_t>(o.tileQ)) ThrowError(env, op, label + ".residualEta holds fewer values than residualQ buckets");
    o.tileEta = eta.As<Napi::Float32Array>().Data();
  }
  return o;
}

/**
 * c (m×n) = a (m×k) · Bᵀ + beta·c for B n×k in either form, as gemmBf16 / gemm compute it on
 * `engineThreads` threads, on `threads` of them (fewer only where the sums are the same: see the
 * top of the file). f32 matrices take at most kSmallRowsMax rows here.
 */
void Product(int m, int n, int k, const float* a, const Matrix& b, float beta, float* c, int engineThreads, int threads,
             MatmulActivations activations) {
  if (n == 0) return;
  if (k == 0) {
    const size_t count = static_cast<size_t>(m) * n;
    for (size_t i = 0; i < count; ++i) c[i] = beta == 0 ? 0.0f : c[i] * beta;
    return;
  }
  // packed: its own products (gemmFp8's, gemmMxfp4's) on `threads`; with more than kSmallRowsMax
  // rows only where that is the engine's count (SameSumsAlone)
  if (b.packed) GemmTransBDecoded(m, n, k, a, b.decode, beta, c, threads, activations);
  else if (b.bf16) GemmTransBBf16Along(Bf16PathFor(m, n, k, engineThreads, activations), m, n, k, a, b.bf16, beta, c, threads, activations);
  else GemmF32(m, n, k, 1.0f, a, false, b.f32, true, beta, c);
}

/** Floats of x·Bᵀ a thread keeps between calls (1 MiB: 8 rows at rank 32 K, 256 rows at rank 1 K). */
constexpr size_t kKeptFactorFloats = size_t{1} << 18;

/** y (m × p) = x (m × d) · Wᵀ for the projection `o`, as the runtime's DenseLinear / FactoredLinear apply it. */
void Apply(int m, int p, int d, const float* x, const Operand& o, float* y, int engineThreads, int threads, MatmulActivations activations) {
  if (!o.factored) {
    Product(m, p, d, x, o.dense, 0.0f, y, engineThreads, threads, activations);
    return;
  }
  // kept with the thread between calls, as bf16_gemm.cc's panels are, up to kKeptFactorFloats: a
  // long prompt's buffer (rows × rank) is freed after use, or every pool thread would hold one
  static thread_local std::vector<float> t;
  const size_t need = static_cast<size_t>(m) * o.rank;
  if (t.size() < need) t.resize(need);
  Product(m, o.rank, d, x, o.basis, 0.0f, t.data(), engineThreads, threads, activations);
  const bool base = o.base.given;
  if (base) Product(m, p, d, x, o.base, 0.0f, y, engineThreads, threads, activations);
  Product(m, p, o.rank, t.data(), o.coefficients, base ? 1.0f : 0.0f, y, engineThreads, threads, activations);
  if (o.tileQ > 0) AddTileResidual(d, p, o.tileQ, o.tileEta, x, m, y);
  if (t.size() > kKeptFactorFloats) std::vector<float>().swap(t);
}

/**
 * Whether every product of an expert of `rows` rows gets the same sums on one thread as on
 * `threads` (f32 matrices take at most kSmallRowsMax rows, whose products are the same on any
 * count; the tile residual's sums are each row's own).
 */
bool SameSumsAlone(int rows, int hidden, int width, const Operand& gate, const Operand& up, const Operand& down, int threads,
                   MatmulActivations activations) {
  const auto same = [&](const Matrix& b, int n, int k) {
    // packed: the panel path's small-rows sums; more rows decode whole and take gemmBf16's path for the thread count
    if (b.packed) return rows <= kSmallRowsMax || n == 0 || k == 0;
    return !b.bf16 || n == 0 || k == 0 || Bf16PathFor(rows, n, k, threads, activations) != Bf16Path::kPanels;
  };
  const auto operand = [&](const Operand& o, int p, int d) {
    if (!o.factored) return same(o.dense, p, d);
    return same(o.basis, o.rank, d) && same(o.coefficients, p, o.rank) && same(o.base, p, d);
  };
  return operand(gate, width, hidden) && operand(up, width, hidden) && operand(down, hidden, width);
}

/** gpt-oss's activation and biases (swiGluExperts's `clamped`), one bias array per routed expert; given = false: SwiGLU. */
struct Clamped {
  bool given = false;
  double alpha = 0;
  double limit = 0;
  std::vector<const float*> gateBias;  // width values each
  std::vector<const float*> upBias;    // width values each
  std::vector<const float*> downBias;  // hidden values each
};

/** Argument `index`: undefined or null (SwiGLU), or { alpha, limit, gateBiases, upBiases, downBiases }, checked as the ts kernel checks it. */
Clamped ClampedArg(const Napi::CallbackInfo& info, size_t index, const char* op, size_t experts, int hidden, int width) {
  Napi::Env env = info.Env();
  Clamped c;
  if (info.Length() <= index || info[index].IsUndefined() || info[index].IsNull()) return c;
  if (!info[index].IsObject() || info[index].IsArray() || info[index].IsTypedArray()) {
    ThrowError(env, op, "clamped must be { alpha, limit, gateBiases, upBiases, downBiases } or null");
  }
  Napi::Object o = info[index].As<Napi::Object>();
  c.given = true;
  Napi::Value alpha = o.Get("alpha");
  if (!alpha.IsNumber() || !std::isfinite(alpha.As<Napi::Number>().DoubleValue())) ThrowError(env, op, "clamped.alpha must be a finite number");
  c.alpha = alpha.As<Napi::Number>().DoubleValue();
  Napi::Value limit = o.Get("limit");
  if (!limit.IsNumber() || !std::isfinite(limit.As<Napi::Number>().DoubleValue()) || limit.As<Napi::Number>().DoubleValue() < 0) {
    ThrowError(env, op, "clamped.limit must be a finite number ≥ 0");
  }
  c.limit = limit.As<Napi::Number>().DoubleValue();
  const auto biases = [&](const char* name, size_t values, const char* check, std::vector<const float*>& into) {
    const std::string label = std::string("clamped.") + name;
    Napi::Value v = o.Get(name);
    if (!v.IsArray()) ThrowError(env, op, label + " must be an array of Float32Array (one per routed expert)");
    Napi::Array list = v.As<Napi::Array>();
    if (list.Length() != experts) {
      ThrowError(env, op, label + " has " + std::to_string(list.Length()) + " entries, expected one per routed expert (" + std::to_string(experts) + ")");
    }
    into.resize(experts);
    for (uint32_t i = 0; i < experts; ++i) {
      Napi::Value b = list.Get(i);
      const std::string at = label + "[" + std::to_string(i) + "]";
      if (!b.IsTypedArray() || b.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) ThrowError(env, op, at + " must be a Float32Array");
      Napi::Float32Array f = b.As<Napi::Float32Array>();
      if (f.ElementLength() != values) {
        ThrowError(env, op, at + " holds " + std::to_string(f.ElementLength()) + " values, expected " + std::to_string(values) + " (check " + check + ")");
      }
      into[i] = f.Data();
    }
  };
  biases("gateBiases", static_cast<size_t>(width), "width", c.gateBias);
  biases("upBiases", static_cast<size_t>(width), "width", c.upBias);
  biases("downBiases", static_cast<size_t>(hidden), "hidden", c.downBias);
  return c;
}

/**
 * gpt-oss's activation in place of g (n values, `width` a row): with g' = min(g + gateBias,
 * limit) and u' = u + upBias clamped to ±limit, g = (u' + 1)·g'·sigmoid(alpha·g'), step for step
 * as the MoE block's reference in JavaScript (src/runtime/moe.ts, clampedSwiGluExpert) computes
 * it: an f32 sum or product there is one here (the f64 operation rounded once to f32 is the f32
 * operation), alpha·g' is the f64 product rounded to f32, and the sigmoid is f64 rounded to f32.
 * Its exp is libm's where JavaScript has V8's: the two differ in the last f64 bit now and then
 * (glibc against Node 20: 10% of 2 M values in [−15, 15]), and the f32 rounding then hides it
 * (none of those 2 M sigmoids differed in f32; it could show only for a sigmoid within an f64 ulp of
 * an f32 rounding boundary). So the call gives the loop's bits, as SwiGLU's does. libm's exp does not
 * vectorise as FastExp does, but a value of the activation comes with `hidden` multiply-adds of
 * each of three products.
 */
void ClampedSwiGlu(float* g, const float* u, size_t n, int width, const float* gateBias, const float* upBias, double alpha, double limit) {
  for (size_t at = 0; at < n; at += static_cast<size_t>(width)) {
    for (int i = 0; i < width; ++i) {
      // std::min(a, b) and std::max(a, b) return a when it is NaN, as Math.min and Math.max do
      const double gate = std::min(static_cast<double>(g[at + i] + gateBias[i]), limit);
      const double up = std::min(std::max(static_cast<double>(u[at + i] + upBias[i]), -limit), limit);
      const float scaled = static_cast<float>(gate * alpha);
      const float sigmoid = static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(scaled))));
      const float glu = static_cast<float>(gate * static_cast<double>(sigmoid));
      g[at + i] = static_cast<float>(static_cast<double>(static_cast<float>(up + 1.0)) * static_cast<double>(glu));
    }
  }
}

/**
 * Fewest weight bytes (all routed experts together) for which the experts go to the pool one per
 * piece: below it handing them out costs about what it saves (one stream of the shipped Mixtral
 * demo, two experts of 295 KB: 0.69 ms of CPU a token on two threads before, 0.93 ms with them
 * handed out), and each product shares its rows as separate calls would (it does not, at that size).
 */
constexpr size_t kExpertsOnThreadsMinBytes = size_t{1} << 20;

}  // namespace

/**
 * swiGluExperts(hidden, width, x, first, order, weights, gates, ups, downs, work, threads, out):
 * for routed expert i (0 ≤ i < R = first.length − 1), rows order[first[i]..first[i+1]) of x
 * (tokens × hidden) go through down(silu(gate·x)·(up·x)) with gates[i], ups[i] (width × hidden)
 * and downs[i] (hidden × width), each a Uint16Array (BF16), a Float32Array, a packed matrix (FP8
 * or MXFP4 as gemmFp8 and gemmMxfp4 take it: PackedValue) or a factored matrix (an object: see
 * OperandElement), and out row order[j] += weights[j] · that row's result (out:
 * tokens × hidden, accumulated). At most kSmallRowsMax rows per expert with an f32 matrix (a
 * factored one's factors included): more go expert by expert, their f32 products through gemm's
 * sgemm, whose sums this kernel does not reproduce. `work` holds at least (first[R] − first[0]) ·
 * (2·hidden + 2·width) floats of scratch. At most `threads` threads. An optional 13th argument,
 * `bf16Activations` (a boolean, default false), rounds the activations of the BF16 products to BF16
 * (bf16_dot.h; the f32 ones are unchanged). An optional 14th, `clamped` (undefined or null: none;
 * otherwise { alpha, limit, gateBiases, upBiases, downBiases }, one Float32Array per routed expert
 * of width, width and hidden values), runs gpt-oss's experts: the gate and up biases added to the
 * products and ClampedSwiGlu in SiluMul's place, the down bias added to each output row.
 */
Napi::Value JsSwiGluExperts(const Napi::CallbackInfo& info) {
  const char* op = "swiGluExperts";
  Napi::Env env = info.Env();
  const int hidden = DimArg(info, 0, op, "hidden");
  const int width = DimArg(info, 1, op, "width");
  const ArrayArg x = Float32ArrayArg(info, 2, op, "x");
  const IndexArg first = Int32ArrayArg(info, 3, op, "first");
  const IndexArg order = Int32ArrayArg(info, 4, op, "order");
  const ArrayArg weights = Float32ArrayArg(info, 5, op, "weights");
  if (info.Length() <= 8 || !info[6].IsArray() || !info[7].IsArray() || !info[8].IsArray()) {
    ThrowError(env, op, "gates, ups and downs must be arrays of weight matrices (one per routed expert)");
  }
  const Napi::Array gates = info[6].As<Napi::Array>();
  const Napi::Array ups = info[7].As<Napi::Array>();
  const Napi::Array downs = info[8].As<Napi::Array>();
  const ArrayArg work = Float32ArrayArg(info, 9, op, "work");
  const int threads = DimArg(info, 10, op, "threads");
  const ArrayArg out = Float32ArrayArg(info, 11, op, "out");
  const MatmulActivations activations = BoolArg(info, 12, op, "bf16Activations") ? MatmulActivations::kBf16 : MatmulActivations::kF32;
  if (hidden == 0 || width == 0) ThrowError(env, op, "hidden and width must be at least 1");
  if (threads == 0) ThrowError(env, op, "threads must be at least 1");
  if (first.length < 1) ThrowError(env, op, "first must hold one more entry than routed experts");
  const size_t experts = first.length - 1;
  if (gates.Length() != experts || ups.Length() != experts || downs.Length() != experts) {
    ThrowError(env, op, "gates, ups and downs must have one entry per routed expert (" + std::to_string(experts) + ")");
  }
  if (x.length % hidden != 0) ThrowError(env, op, "x has " + std::to_string(x.length) + " values, not a multiple of hidden = " + std::to_string(hidden));
  const size_t tokens = x.length / hidden;
  RequireShape(env, op, out, tokens, hidden, "hidden and x: out is tokens × hidden, as x is");
  RequireNoOverlap(env, op, out, x);
  RequireNoOverlap(env, op, work, x);
  RequireNoOverlap(env, op, work, out);
  const int base = first.data[0];
  if (base < 0) ThrowError(env, op, "first[0] must not be negative");
  for (size_t i = 0; i < experts; ++i) {
    if (first.data[i + 1] < first.data[i]) ThrowError(env, op, "first must not decrease (expert " + std::to_string(i) + ")");
  }
  const size_t end = static_cast<size_t>(first.data[experts]);
  RequireAtLeast(env, op, "order", order.length, end, "first: order holds every routed row");
  RequireAtLeast(env, op, "weights", weights.length, end, "first: weights holds every routed row");
  for (size_t j = static_cast<size_t>(base); j < end; ++j) {
    if (order.data[j] < 0 || static_cast<size_t>(order.data[j]) >= tokens) {
      ThrowError(env, op, "order[" + std::to_string(j) + "] = " + std::to_string(order.data[j]) + " is not a row of x (" + std::to_string(tokens) + " rows)");
    }
  }
  const size_t routedRows = end - static_cast<size_t>(base);
  const size_t h = static_cast<size_t>(hidden);
  const size_t w = static_cast<size_t>(width);
  RequireAtLeast(env, op, "work", work.length, routedRows * (2 * h + 2 * w), "first, hidden and width: work holds routed rows × (2·hidden + 2·width)");
  std::vector<Operand> gate(experts), up(experts), down(experts);
  for (size_t i = 0; i < experts; ++i) {
    gate[i] = OperandElement(env, op, gates, static_cast<uint32_t>(i), "gates", width, hidden);
    up[i] = OperandElement(env, op, ups, static_cast<uint32_t>(i), "ups", width, hidden);
    down[i] = OperandElement(env, op, downs, static_cast<uint32_t>(i), "downs", hidden, width);
    const int rows = first.data[i + 1] - first.data[i];
    if (rows > kSmallRowsMax && !(gate[i].AllBf16() && up[i].AllBf16() && down[i].AllBf16())) {
      ThrowError(env, op, "routed expert " + std::to_string(i) + " has " + std::to_string(rows) + " rows and f32 matrices: at most " + std::to_string(kSmallRowsMax) +
                              " rows with f32 (run larger groups of f32 experts expert by expert)");
    }
  }
  const Clamped clamped = ClampedArg(info, 13, op, experts, hidden, width);
  if (routedRows == 0) return env.Undefined();

  // scratch regions, each expert at its rows' offset: gathered input, gate, up, output
  float* xs = work.f32();
  float* gs = xs + routedRows * h;
  float* us = gs + routedRows * w;
  float* ys = us + routedRows * w;
  const float* xd = x.f32();
  // Experts to threads when there are enough of them (8 streams: ~20 small experts a layer; a
  // prompt: most of them) with enough weights to pay for it; otherwise (one stream's top-2 of
  // large experts, a few tiny ones) one after the other, each product shared over the threads as
  // separate calls would.
  size_t weightBytes = 0;
  for (size_t i = 0; i < experts; ++i) weightBytes += gate[i].Bytes() + up[i].Bytes() + down[i].Bytes();
  const bool perExpert = threads > 1 && experts >= static_cast<size_t>(threads) && weightBytes >= kExpertsOnThreadsMinBytes;
  auto expert = [&](int i, int productThreads) {
    const int rows = first.data[i + 1] - first.data[i];
    if (rows == 0) return;
    const size_t at = static_cast<size_t>(first.data[i] - base);
    float* xe = xs + at * h;
    float* g = gs + at * w;
    float* u = us + at * w;
    for (int r = 0; r < rows; ++r) std::memcpy(xe + r * h, xd + static_cast<size_t>(order.data[first.data[i] + r]) * h, sizeof(float) * h);
    Apply(rows, width, hidden, xe, gate[i], g, threads, productThreads, activations);
    Apply(rows, width, hidden, xe, up[i], u, threads, productThreads, activations);
    if (clamped.given) ClampedSwiGlu(g, u, static_cast<size_t>(rows) * w, width, clamped.gateBias[i], clamped.upBias[i], clamped.alpha, clamped.limit);
    else SiluMul(g, u, static_cast<size_t>(rows) * w);
    float* y = ys + at * h;
    Apply(rows, hidden, width, g, down[i], y, threads, productThreads, activations);
    if (clamped.given) {
      // the down bias a row at a time, as the reference adds it (addInto: one f32 sum a value)
      const float* bias = clamped.downBias[i];
      for (int r = 0; r < rows; ++r) {
        float* row = y + static_cast<size_t>(r) * h;
        for (int c = 0; c < hidden; ++c) row[c] += bias[c];
      }
    }
  };
  // the engine's OpenBLAS count for an f32 product, as its gemm calls set it
  if (openblas_get_num_threads() != threads) openblas_set_num_threads(threads);
  std::vector<int> alone;  // experts for one thread each, the largest first (the pool takes them in order)
  for (size_t i = 0; i < experts; ++i) {
    const int rows = first.data[i + 1] - first.data[i];
    if (rows == 0) continue;
    // an expert with more than a thread's share of the rows would hold the call up on one thread
    const bool shared = !perExpert || static_cast<size_t>(rows) * threads > routedRows ||
                        !SameSumsAlone(rows, hidden, width, gate[i], up[i], down[i], threads, activations);
    if (shared) expert(static_cast<int>(i), threads);
    else alone.push_back(static_cast<int>(i));
  }
  if (!alone.empty()) {
    std::stable_sort(alone.begin(), alone.end(), [&](int a, int b) { return first.data[a + 1] - first.data[a] > first.data[b + 1] - first.data[b]; });
    // each on one thread: OpenBLAS (an f32 one-row product's gemv) held to one meanwhile
    SingleThreadedBlas oneBlasThread;
    RunPieces(threads, static_cast<int>(alone.size()), [&](int p) { expert(alone[p], 1); });
  }
  float* o = out.f32();
  for (size_t j = static_cast<size_t>(base); j < end; ++j) {
    AxpyRow(o + static_cast<size_t>(order.data[j]) * h, ys + (j - base) * h, weights.f32()[j], hidden);
  }
  return env.Undefined();
}

}  // namespace rfid
