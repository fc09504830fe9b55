// Causal self-attention of a ragged batch without a KV cache (calibration, evaluation, a prompt's
// prefill): for every sequence, kv head, group of query heads and causal tile of query rows,
// scores = scale·Q·Kᵀ over the keys the tile can see, their causal softmax, and Q's context =
// scores·V. These products are small (one head of one window: a few million multiply-adds), so
// OpenBLAS runs each on one thread; done one after the other from JavaScript they kept the second
// core idle for about 15% of a calibration pass. Here the units run on the engine's threads, each
// unit on one thread, with exactly the products, softmax and copies of the per-head loop
// (causalAttentionUnits in src/engine/ts/kernels/causal-attention.ts: same tiling, same gemm
// dispatch), so the result is bit for bit that loop's on one thread, and the same on any number of
// threads. (On 2 threads the loop gave products of 16 M multiply-adds or more to OpenBLAS's
// threads, whose sgemm rounds some elements an ulp differently from its one-thread sgemm.)
// cachedAttention, the same for sequences that continue a KV cache (decoding), runs the same
// units (AttentionBatch) with each sequence's keys read where the cache holds them.
// Both take optional attention sinks (gpt-oss): one logit per query head that joins the
// normaliser of that head's softmax (CausalSoftmaxBlocks), in every unit alike.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "args.h"
#include "gemm_f32.h"
#include "ops.h"
#include "parallel.h"
#include "softmax.h"
#include "thread_pool.h"

namespace rfid {

namespace {

/** Largest score block (values) computed at once; the same as SCORE_BLOCK in src/engine/ts/kernels/cached-attention.ts. */
constexpr double kScoreBlock = 8.0 * 1024 * 1024;
/** Fewest query rows per causal tile; the same as QUERY_TILE there. */
constexpr int kQueryTile = 64;

/**
 * How one sequence is cut, query heads per product and query rows per tile (as attention.ts
 * does), and where its keys and values are: `past` positions before its rows, then its own; its
 * rows attend to none before position `from` (a chunk's start; 0: the first).
 */
struct SequencePlan {
  int start = 0;
  int len = 0;
  int past = 0;
  int from = 0;
  int heads = 1;
  int tile = kQueryTile;
  const float* keys = nullptr;
  const float* values = nullptr;
  /** positions per kv head of a head-major buffer (keys and values alike); 0: row-major rows of numKvHeads·headDim (values: ·valueDim) */
  int headStride = 0;
};

/** One piece of work: tile [i0, i0 + tr) of query heads [g0, g0 + hb) of kv head `kvHead` of sequence `seq`. */
struct Unit {
  int seq;
  int kvHead;
  int g0;
  int i0;
};

void CopyRows(int rows, int cols, const float* src, size_t srcStride, float* dst, size_t dstStride) {
  for (int i = 0; i < rows; ++i) std::memcpy(dst + i * dstStride, src + i * srcStride, sizeof(float) * cols);
}

/** A batch's attention cut into units (both kernels below), with what their scratch needs. */
struct AttentionBatch {
  int numKvHeads = 0;
  int groupSize = 0;
  int headDim = 0;
  /** width of a value head, and of each query head's output */
  int valueDim = 0;
  size_t qWidth = 0;
  size_t kvWidth = 0;
  /** numKvHeads·valueDim: a row of values */
  size_t vWidth = 0;
  /** numHeads·valueDim: a row of context */
  size_t contextWidth = 0;
  /** 0: no sliding window */
  int window = 0;
  float alpha = 1;
  /** one sink logit per query head, or nullptr: none */
  const float* sinks = nullptr;
  const float* q = nullptr;
  float* context = nullptr;
  std::vector<SequencePlan> plans;
  std::vector<Unit> units;
  size_t qhSize = 0;
  size_t ohSize = 0;
  size_t khSize = 0;
  size_t vhSize = 0;
  size_t scoreSize = 0;
  /** multiply-adds of all units' products */
  double macs = 0;

  /** Cuts sequence plans[s] (start, len, past and keys set) into units. */
  void Plan(size_t s) {
    SequencePlan& p = plans[s];
    if (p.len == 0) return;
    const size_t total = static_cast<size_t>(p.past) + p.len;
    const double block = static_cast<double>(p.len) * static_cast<double>(total);
    p.heads = std::max(1, std::min(groupSize, static_cast<int>(std::floor(kScoreBlock / block))));
    p.tile = std::max(kQueryTile, (p.len + 7) / 8);
    const size_t tileRows = static_cast<size_t>(std::min(p.tile, p.len));
    qhSize = std::max(qhSize, static_cast<size_t>(p.heads) * tileRows * headDim);
    ohSize = std::max(ohSize, static_cast<size_t>(p.heads) * tileRows * valueDim);
    if (p.headStride == 0) {
      khSize = std::max(khSize, total * headDim);
      vhSize = std::max(vhSize, total * valueDim);
    }
    scoreSize = std::max(scoreSize, static_cast<size_t>(p.heads) * tileRows * total);
    for (int kvHead = 0; kvHead < numKvHeads; ++kvHead) {
      for (int g0 = 0; g0 < groupSize; g0 += p.heads) {
        for (int i0 = 0; i0 < p.len; i0 += p.tile) {
          units.push_back({static_cast<int>(s), kvHead, g0, i0});
          const int tr = std::min(p.tile, p.len - i0);
          macs += 1.0 * std::min(p.heads, groupSize - g0) * tr * (p.past + i0 + tr) * (headDim + valueDim);
        }
      }
    }
  }

  /**
   * Runs every unit, each on one of `parts` scratch sets: run(parts, part) calls part(0 …
   * parts − 1), on threads or not, and each part takes units until none is left. The scratch is
   * allocated before any thread starts (an allocation failure is an error here, not in a thread).
   */
  template <typename Run>
  void Attend(Napi::Env env, const char* op, int parts, const Run& run) const {
    struct Scratch {
      std::unique_ptr<float[]> qh, kh, vh, scores, oh;
    };
    std::vector<Scratch> scratch(parts);
    try {
      for (Scratch& b : scratch) {
        b.qh.reset(new float[qhSize]);
        if (khSize) {
          b.kh.reset(new float[khSize]);
          b.vh.reset(new float[vhSize]);
        }
        b.scores.reset(new float[scoreSize]);
        b.oh.reset(new float[ohSize]);
      }
    } catch (const std::bad_alloc&) {
      ThrowError(env, op, "out of memory for the attention scratch buffers (" + std::to_string((qhSize + ohSize + khSize + vhSize + scoreSize) * 4 * parts) + " bytes)");
    }
    std::atomic<size_t> next{0};
    run(parts, [&](int part) {
      Scratch& b = scratch[part];
      for (size_t u = next.fetch_add(1); u < units.size(); u = next.fetch_add(1)) AttendUnit(units[u], b.qh.get(), b.kh.get(), b.vh.get(), b.scores.get(), b.oh.get());
    });
  }

  /** One unit: scores over the keys its tile can see, their causal softmax, scores·V into context. */
  void AttendUnit(const Unit& unit, float* qh, float* kh, float* vh, float* scores, float* oh) const {
    const SequencePlan& p = plans[unit.seq];
    const int hb = std::min(p.heads, groupSize - unit.g0);
    const int tr = std::min(p.tile, p.len - unit.i0);
    const int keyEnd = p.past + unit.i0 + tr;
    // every row of the tile sees none before `from`, so its columns start there at the earliest
    const int keyFirst = std::max(p.from, window == 0 ? 0 : p.past + unit.i0 - window + 1);
    const int kc = keyEnd - keyFirst;
    const int m = hb * tr;
    const float* kBlock;
    const float* vBlock;
    if (p.headStride != 0) {
      // head-major: this head's positions are contiguous rows of headDim (values: of valueDim)
      const size_t at = static_cast<size_t>(unit.kvHead) * p.headStride + keyFirst;
      kBlock = p.keys + at * headDim;
      vBlock = p.values + at * valueDim;
    } else {
      // this kv head's keys and values for the tile, rows keyFirst..keyEnd, made contiguous
      CopyRows(kc, headDim, p.keys + static_cast<size_t>(keyFirst) * kvWidth + static_cast<size_t>(unit.kvHead) * headDim, kvWidth, kh, headDim);
      CopyRows(kc, valueDim, p.values + static_cast<size_t>(keyFirst) * vWidth + static_cast<size_t>(unit.kvHead) * valueDim, vWidth, vh, valueDim);
      kBlock = kh;
      vBlock = vh;
    }
    const size_t queryRow = static_cast<size_t>(p.start) + unit.i0;
    for (int g = 0; g < hb; ++g) {
      const size_t col = static_cast<size_t>(unit.kvHead * groupSize + unit.g0 + g) * headDim;
      CopyRows(tr, headDim, q + queryRow * qWidth + col, qWidth, qh + static_cast<size_t>(g) * tr * headDim, headDim);
    }
    GemmF32(m, kc, headDim, alpha, qh, false, kBlock, true, 0.0f, scores);
    // the unit's blocks are query heads kvHead·groupSize + g0 … + hb − 1, in order
    const float* unitSinks = sinks ? sinks + static_cast<size_t>(unit.kvHead) * groupSize + unit.g0 : nullptr;
    CausalSoftmaxBlocks(hb, tr, kc, p.past + unit.i0 - keyFirst, window, scores, unitSinks);
    GemmF32(m, valueDim, kc, 1.0f, scores, false, vBlock, false, 0.0f, oh);
    for (int g = 0; g < hb; ++g) {
      const size_t col = static_cast<size_t>(unit.kvHead * groupSize + unit.g0 + g) * valueDim;
      CopyRows(tr, valueDim, oh + static_cast<size_t>(g) * tr * valueDim, valueDim, context + queryRow * contextWidth + col, contextWidth);
    }
  }
};

/**
 * The optional sinks argument at `index`: one f32 logit per query head, or nullptr when it is
 * absent, undefined or null. Checked here too (src/engine/native.ts checks it first) because a
 * short array would be read past its end, and one overlapping context would change under the
 * units' writes.
 */
const float* SinksArg(const Napi::CallbackInfo& info, size_t index, const char* op, int numHeads, const ArrayArg& context) {
  if (info.Length() <= index || info[index].IsUndefined() || info[index].IsNull()) return nullptr;
  Napi::Env env = info.Env();
  const ArrayArg sinks = Float32ArrayArg(info, index, op, "sinks");
  if (sinks.length != static_cast<size_t>(numHeads)) {
    ThrowError(env, op, "sinks has " + std::to_string(sinks.length) + " elements but numHeads = " + std::to_string(numHeads) + " (one sink logit per query head)");
  }
  RequireNoOverlap(env, op, context, sinks);
  return sinks.f32();
}

/** The optional value head width at `index` (absent, undefined, null or 0: headDim). */
int ValueDimArg(const Napi::CallbackInfo& info, size_t index, const char* op, int headDim) {
  if (info.Length() <= index || info[index].IsUndefined() || info[index].IsNull()) return headDim;
  const int valueDim = DimArg(info, index, op, "valueHeadDim");
  return valueDim == 0 ? headDim : valueDim;
}

}  // namespace

/**
 * causalAttention(numHeads, numKvHeads, headDim, offsets, q, k, v, scale, window, threads, context[, sinks[, valueHeadDim]]):
 * q is rows × numHeads·headDim, k rows × numKvHeads·headDim, v rows × numKvHeads·valueHeadDim and
 * context rows × numHeads·valueHeadDim (valueHeadDim absent, null or 0: headDim) (row-major, RoPE
 * already applied); sequence s is rows offsets[s]..offsets[s+1]. Query head h uses kv head
 * h / (numHeads / numKvHeads). Row i of a sequence attends to its keys max(0, i − window + 1)..i
 * (window 0: from 0). context is overwritten. At most `threads` threads. sinks (optional; undefined
 * or null: none): one logit per query head whose exp joins that head's softmax normalisers.
 */
Napi::Value JsCausalAttention(const Napi::CallbackInfo& info) {
  const char* op = "causalAttention";
  Napi::Env env = info.Env();
  const int numHeads = DimArg(info, 0, op, "numHeads");
  const int numKvHeads = DimArg(info, 1, op, "numKvHeads");
  const int headDim = DimArg(info, 2, op, "headDim");
  const IndexArg offsets = Int32ArrayArg(info, 3, op, "offsets");
  const ArrayArg q = Float32ArrayArg(info, 4, op, "q");
  const ArrayArg k = Float32ArrayArg(info, 5, op, "k");
  const ArrayArg v = Float32ArrayArg(info, 6, op, "v");
  const double scale = NumberArg(info, 7, op, "scale");
  const int window = DimArg(info, 8, op, "window");
  const int threads = DimArg(info, 9, op, "threads");
  const ArrayArg context = Float32ArrayArg(info, 10, op, "context");
  if (numHeads == 0 || numKvHeads == 0 || headDim == 0) ThrowError(env, op, "numHeads, numKvHeads and headDim must be at least 1");
  if (numHeads % numKvHeads != 0) {
    ThrowError(env, op, "numHeads = " + std::to_string(numHeads) + " is not a multiple of numKvHeads = " + std::to_string(numKvHeads));
  }
  if (threads == 0) ThrowError(env, op, "threads must be at least 1");
  if (!std::isfinite(scale)) ThrowError(env, op, "scale must be finite");
  if (offsets.length < 1 || offsets.data[0] != 0) ThrowError(env, op, "offsets must start at 0 (one more entry than sequences)");
  const size_t sequences = offsets.length - 1;
  for (size_t s = 0; s < sequences; ++s) {
    if (offsets.data[s + 1] < offsets.data[s]) ThrowError(env, op, "offsets must not decrease (sequence " + std::to_string(s) + ")");
  }
  const size_t rows = static_cast<size_t>(offsets.data[sequences]);
  const int valueDim = ValueDimArg(info, 12, op, headDim);
  const size_t qWidth = static_cast<size_t>(numHeads) * headDim;
  const size_t kvWidth = static_cast<size_t>(numKvHeads) * headDim;
  const size_t vWidth = static_cast<size_t>(numKvHeads) * valueDim;
  const size_t contextWidth = static_cast<size_t>(numHeads) * valueDim;
  RequireShape(env, op, q, rows, qWidth, "offsets, numHeads and headDim: q is rows × numHeads·headDim");
  RequireShape(env, op, k, rows, kvWidth, "offsets, numKvHeads and headDim: k is rows × numKvHeads·headDim");
  RequireShape(env, op, v, rows, vWidth, "offsets, numKvHeads and valueHeadDim: v is rows × numKvHeads·valueHeadDim");
  RequireShape(env, op, context, rows, contextWidth, "offsets, numHeads and valueHeadDim: context is rows × numHeads·valueHeadDim");
  RequireNoOverlap(env, op, context, q);
  RequireNoOverlap(env, op, context, k);
  RequireNoOverlap(env, op, context, v);
  const float* sinks = SinksArg(info, 11, op, numHeads, context);
  if (rows == 0) return env.Undefined();

  AttentionBatch batch;
  batch.numKvHeads = numKvHeads;
  batch.groupSize = numHeads / numKvHeads;
  batch.headDim = headDim;
  batch.valueDim = valueDim;
  batch.qWidth = qWidth;
  batch.kvWidth = kvWidth;
  batch.vWidth = vWidth;
  batch.contextWidth = contextWidth;
  batch.window = window;
  batch.alpha = static_cast<float>(scale);
  batch.sinks = sinks;
  batch.q = q.f32();
  batch.context = context.f32();
  batch.plans.resize(sequences);
  for (size_t s = 0; s < sequences; ++s) {
    SequencePlan& p = batch.plans[s];
    p.start = offsets.data[s];
    p.len = offsets.data[s + 1] - offsets.data[s];
    // its keys and values are its own rows of k and v
    p.keys = k.f32() + static_cast<size_t>(p.start) * kvWidth;
    p.values = v.f32() + static_cast<size_t>(p.start) * vWidth;
    batch.Plan(s);
  }
  const int parts = static_cast<int>(std::min<size_t>(threads, batch.units.size()));
  batch.Attend(env, op, parts, [](int n, const auto& part) { RunParts(n, part); });
  return env.Undefined();
}

namespace {

/**
 * Fewest multiply-adds for which cachedAttention hands its units to the pool: one sequence's step
 * of the shipped demo model (2 kv heads, ~100 positions, ~26 K multiply-adds) took 6.5 µs a layer
 * on one thread and 8.9 µs shared over two; eight sequences' (~400 K) gain.
 */
constexpr double kUnitsOnThreadsMin = 256.0 * 1024;

/** The Float32Array at `index` of the JavaScript array argument `arg`. */
ArrayArg Float32Element(Napi::Env env, const char* op, const Napi::Array& array, uint32_t index, const char* name) {
  Napi::Value v = array.Get(index);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    ThrowError(env, op, std::string(name) + "[" + std::to_string(index) + "] must be a Float32Array");
  }
  Napi::Float32Array ta = v.As<Napi::Float32Array>();
  ArrayArg out;
  out.name = name;
  out.length = ta.ElementLength();
  out.dtype = DType::F32;
  out.data = ta.Data();
  return out;
}

}  // namespace

/**
 * cachedAttention(numHeads, numKvHeads, headDim, offsets, past, keys, values, headStride, q, scale,
 * window, threads, context[, sinks[, from[, valueHeadDim]]]): attention of a ragged batch whose sequences continue those in a KV
 * cache (a decoding step, a prompt's prefill after its first chunk). Sequence s is rows
 * offsets[s]..offsets[s+1] of q (rows × numHeads·headDim) and context (rows ×
 * numHeads·valueHeadDim; valueHeadDim absent, null or 0: headDim); its keys and values are
 * keys[s] and values[s], past[s] cached positions followed by its own new rows (already written):
 * head-major [numKvHeads][headStride[s]][headDim] (values: [valueHeadDim]), or row-major rows of
 * numKvHeads·headDim (values: ·valueHeadDim) when headStride[s] = 0. Row i of sequence s is position past[s] + i and attends to positions
 * max(from[s], past[s] + i − window + 1)..past[s] + i (window 0: from from[s]). sinks as for
 * causalAttention. from (optional; undefined or null: 0 for every sequence): one first position
 * per sequence, 0 ≤ from[s] ≤ past[s] (chunked attention: where the rows' chunk starts).
 *
 * Why a kernel: the per-sequence loop in JavaScript made about ten N-API calls per sequence, kv
 * head and layer (copies, two products, a softmax), each costing about as much as the work it did
 * on a decoding step's one row; with 8 sequences that was over a thousand calls per step. Here the
 * units (sequence, kv head, group of query heads, tile of query rows: the loop's own) run on the
 * persistent pool's threads, with the products, softmax and copies the loop ran, so the result is
 * bit for bit the loop's on one thread, on any number of threads.
 */
Napi::Value JsCachedAttention(const Napi::CallbackInfo& info) {
  const char* op = "cachedAttention";
  Napi::Env env = info.Env();
  const int numHeads = DimArg(info, 0, op, "numHeads");
  const int numKvHeads = DimArg(info, 1, op, "numKvHeads");
  const int headDim = DimArg(info, 2, op, "headDim");
  const IndexArg offsets = Int32ArrayArg(info, 3, op, "offsets");
  const IndexArg past = Int32ArrayArg(info, 4, op, "past");
  if (info.Length() <= 6 || !info[5].IsArray() || !info[6].IsArray()) ThrowError(env, op, "keys and values must be arrays of Float32Array (one per sequence)");
  const Napi::Array keys = info[5].As<Napi::Array>();
  const Napi::Array values = info[6].As<Napi::Array>();
  const IndexArg headStride = Int32ArrayArg(info, 7, op, "headStride");
  const ArrayArg q = Float32ArrayArg(info, 8, op, "q");
  const double scale = NumberArg(info, 9, op, "scale");
  const int window = DimArg(info, 10, op, "window");
  const int threads = DimArg(info, 11, op, "threads");
  const ArrayArg context = Float32ArrayArg(info, 12, op, "context");
  if (numHeads == 0 || numKvHeads == 0 || headDim == 0) ThrowError(env, op, "numHeads, numKvHeads and headDim must be at least 1");
  if (numHeads % numKvHeads != 0) {
    ThrowError(env, op, "numHeads = " + std::to_string(numHeads) + " is not a multiple of numKvHeads = " + std::to_string(numKvHeads));
  }
  if (threads == 0) ThrowError(env, op, "threads must be at least 1");
  if (!std::isfinite(scale)) ThrowError(env, op, "scale must be finite");
  if (offsets.length < 1 || offsets.data[0] != 0) ThrowError(env, op, "offsets must start at 0 (one more entry than sequences)");
  const size_t sequences = offsets.length - 1;
  if (past.length != sequences || headStride.length != sequences || keys.Length() != sequences || values.Length() != sequences) {
    ThrowError(env, op, "past, keys, values and headStride must have one entry per sequence (" + std::to_string(sequences) + ")");
  }
  const size_t rows = static_cast<size_t>(offsets.data[sequences]);
  const int valueDim = ValueDimArg(info, 15, op, headDim);
  const size_t qWidth = static_cast<size_t>(numHeads) * headDim;
  const size_t kvWidth = static_cast<size_t>(numKvHeads) * headDim;
  const size_t vWidth = static_cast<size_t>(numKvHeads) * valueDim;
  const size_t contextWidth = static_cast<size_t>(numHeads) * valueDim;
  RequireShape(env, op, q, rows, qWidth, "offsets, numHeads and headDim: q is rows × numHeads·headDim");
  RequireShape(env, op, context, rows, contextWidth, "offsets, numHeads and valueHeadDim: context is rows × numHeads·valueHeadDim");
  RequireNoOverlap(env, op, context, q);
  const float* sinks = SinksArg(info, 13, op, numHeads, context);
  const bool hasFrom = info.Length() > 14 && !info[14].IsUndefined() && !info[14].IsNull();
  const IndexArg from = hasFrom ? Int32ArrayArg(info, 14, op, "from") : IndexArg{};
  if (hasFrom && from.length != sequences) ThrowError(env, op, "from must have one entry per sequence (" + std::to_string(sequences) + ")");

  AttentionBatch batch;
  batch.numKvHeads = numKvHeads;
  batch.groupSize = numHeads / numKvHeads;
  batch.headDim = headDim;
  batch.valueDim = valueDim;
  batch.qWidth = qWidth;
  batch.kvWidth = kvWidth;
  batch.vWidth = vWidth;
  batch.contextWidth = contextWidth;
  batch.window = window;
  batch.alpha = static_cast<float>(scale);
  batch.sinks = sinks;
  batch.q = q.f32();
  batch.context = context.f32();
  batch.plans.resize(sequences);
  for (size_t s = 0; s < sequences; ++s) {
    SequencePlan& p = batch.plans[s];
    if (offsets.data[s + 1] < offsets.data[s]) ThrowError(env, op, "offsets must not decrease (sequence " + std::to_string(s) + ")");
    p.start = offsets.data[s];
    p.len = offsets.data[s + 1] - offsets.data[s];
    p.past = past.data[s];
    p.headStride = headStride.data[s];
    p.from = hasFrom ? from.data[s] : 0;
    if (p.past < 0 || p.headStride < 0) ThrowError(env, op, "past and headStride must not be negative (sequence " + std::to_string(s) + ")");
    if (p.from < 0 || p.from > p.past) ThrowError(env, op, "from[" + std::to_string(s) + "] = " + std::to_string(p.from) + " is not within 0..past = " + std::to_string(p.past));
    if (p.len == 0) continue;
    const size_t total = static_cast<size_t>(p.past) + p.len;
    if (p.headStride != 0 && static_cast<size_t>(p.headStride) < total) {
      ThrowError(env, op, "headStride[" + std::to_string(s) + "] = " + std::to_string(p.headStride) + " holds fewer than the sequence's " + std::to_string(total) + " positions");
    }
    const size_t needed = p.headStride == 0 ? total * kvWidth : static_cast<size_t>(numKvHeads) * p.headStride * headDim;
    const size_t neededValues = p.headStride == 0 ? total * vWidth : static_cast<size_t>(numKvHeads) * p.headStride * valueDim;
    const ArrayArg k = Float32Element(env, op, keys, static_cast<uint32_t>(s), "keys");
    const ArrayArg v = Float32Element(env, op, values, static_cast<uint32_t>(s), "values");
    RequireAtLeast(env, op, "keys", k.length, needed, "past, headStride and the new rows: keys[s] holds every position of sequence s");
    RequireAtLeast(env, op, "values", v.length, neededValues, "past, headStride and the new rows: values[s] holds every position of sequence s");
    RequireNoOverlap(env, op, context, k);
    RequireNoOverlap(env, op, context, v);
    p.keys = k.f32();
    p.values = v.f32();
    batch.Plan(s);
  }
  if (batch.units.empty()) return env.Undefined();
  // the engine's OpenBLAS thread count, as its gemm calls set it (a large product of one unit uses it)
  if (openblas_get_num_threads() != threads) openblas_set_num_threads(threads);
  // units to threads when there are at least as many units as threads and enough work to pay for
  // handing them out; otherwise (one sequence on a machine with many cores, a short context) one
  // after the other, each product on the engine's threads as the loop's calls ran them
  const int parts = batch.units.size() >= static_cast<size_t>(threads) && batch.macs >= kUnitsOnThreadsMin ? threads : 1;
  batch.Attend(env, op, parts, [](int n, const auto& part) {
    if (n == 1) {
      // OpenBLAS and the small-rows products keep the engine's threads, as the loop's calls did
      part(0);
      return;
    }
    // each unit on one thread: OpenBLAS held to one meanwhile (its thread count is process-wide)
    SingleThreadedBlas oneBlasThread;
    RunPieces(n, n, part);
  });
  return env.Undefined();
}

}  // namespace rfid
