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

namespace rfid {

namespace {

/** Largest score block (values) computed at once; the same as SCORE_BLOCK in attention.ts. */
constexpr double kScoreBlock = 8.0 * 1024 * 1024;
/** Fewest query rows per causal tile; the same as QUERY_TILE in attention.ts. */
constexpr int kQueryTile = 64;

/** How one sequence is cut: query heads per product and query rows per tile (as attention.ts does). */
struct SequencePlan {
  int start = 0;
  int len = 0;
  int heads = 1;
  int tile = kQueryTile;
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

}  // namespace

/**
 * causalAttention(numHeads, numKvHeads, headDim, offsets, q, k, v, scale, window, threads, context):
 * q and context are rows × numHeads·headDim, k and v rows × numKvHeads·headDim (row-major, RoPE
 * already applied); sequence s is rows offsets[s]..offsets[s+1]. Query head h uses kv head
 * h / (numHeads / numKvHeads). Row i of a sequence attends to its keys max(0, i − window + 1)..i
 * (window 0: from 0). context is overwritten. At most `threads` threads.
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
  const size_t qWidth = static_cast<size_t>(numHeads) * headDim;
  const size_t kvWidth = static_cast<size_t>(numKvHeads) * headDim;
  RequireShape(env, op, q, rows, qWidth, "offsets, numHeads and headDim: q is rows × numHeads·headDim");
  RequireShape(env, op, k, rows, kvWidth, "offsets, numKvHeads and headDim: k is rows × numKvHeads·headDim");
  RequireShape(env, op, v, rows, kvWidth, "offsets, numKvHeads and headDim: v is rows × numKvHeads·headDim");
  RequireShape(env, op, context, rows, qWidth, "offsets, numHeads and headDim: context is rows × numHeads·headDim");
  RequireNoOverlap(env, op, context, q);
  RequireNoOverlap(env, op, context, k);
  RequireNoOverlap(env, op, context, v);
  if (rows == 0) return env.Undefined();

  const int groupSize = numHeads / numKvHeads;
  std::vector<SequencePlan> plans(sequences);
  std::vector<Unit> units;
  size_t qhSize = 0;
  size_t khSize = 0;
  size_t scoreSize = 0;
  for (size_t s = 0; s < sequences; ++s) {
    SequencePlan& p = plans[s];
    p.start = offsets.data[s];
    p.len = offsets.data[s + 1] - offsets.data[s];
    if (p.len == 0) continue;
    const double square = static_cast<double>(p.len) * p.len;
    p.heads = std::max(1, std::min(groupSize, static_cast<int>(std::floor(kScoreBlock / square))));
    p.tile = std::max(kQueryTile, (p.len + 7) / 8);
    qhSize = std::max(qhSize, static_cast<size_t>(p.heads) * std::min(p.tile, p.len) * headDim);
    khSize = std::max(khSize, static_cast<size_t>(p.len) * headDim);
    scoreSize = std::max(scoreSize, static_cast<size_t>(p.heads) * std::min(p.tile, p.len) * p.len);
    for (int kvHead = 0; kvHead < numKvHeads; ++kvHead) {
      for (int g0 = 0; g0 < groupSize; g0 += p.heads) {
        for (int i0 = 0; i0 < p.len; i0 += p.tile) units.push_back({static_cast<int>(s), kvHead, g0, i0});
      }
    }
  }
  const int parts = static_cast<int>(std::min<size_t>(threads, units.size()));
  // every buffer a part needs, allocated before any thread starts (an allocation failure is an
  // error here, not in a thread)
  struct Scratch {
    std::unique_ptr<float[]> qh, kh, vh, scores, oh;
  };
  std::vector<Scratch> scratch(parts);
  try {
    for (Scratch& b : scratch) {
      b.qh.reset(new float[qhSize]);
      b.kh.reset(new float[khSize]);
      b.vh.reset(new float[khSize]);
      b.scores.reset(new float[scoreSize]);
      b.oh.reset(new float[qhSize]);
    }
  } catch (const std::bad_alloc&) {
    ThrowError(env, op, "out of memory for the attention scratch buffers (" + std::to_string((2 * qhSize + 2 * khSize + scoreSize) * 4 * parts) + " bytes)");
  }

  const float* qd = q.f32();
  const float* kd = k.f32();
  const float* vd = v.f32();
  float* out = context.f32();
  const float alpha = static_cast<float>(scale);
  std::atomic<size_t> next{0};
  RunParts(parts, [&](int part) {
    Scratch& b = scratch[part];
    for (size_t u = next.fetch_add(1); u < units.size(); u = next.fetch_add(1)) {
      const Unit& unit = units[u];
      const SequencePlan& p = plans[unit.seq];
      const int hb = std::min(p.heads, groupSize - unit.g0);
      const int tr = std::min(p.tile, p.len - unit.i0);
      const int keyEnd = unit.i0 + tr;
      const int keyFirst = window == 0 ? 0 : std::max(0, unit.i0 - window + 1);
      const int kc = keyEnd - keyFirst;
      const int m = hb * tr;
      // this kv head's keys and values for the tile, rows keyFirst..keyEnd, contiguous
      const size_t keyRow = static_cast<size_t>(p.start) + keyFirst;
      CopyRows(kc, headDim, kd + keyRow * kvWidth + static_cast<size_t>(unit.kvHead) * headDim, kvWidth, b.kh.get(), headDim);
      CopyRows(kc, headDim, vd + keyRow * kvWidth + static_cast<size_t>(unit.kvHead) * headDim, kvWidth, b.vh.get(), headDim);
      const size_t queryRow = static_cast<size_t>(p.start) + unit.i0;
      for (int g = 0; g < hb; ++g) {
        const size_t col = static_cast<size_t>(unit.kvHead * groupSize + unit.g0 + g) * headDim;
        CopyRows(tr, headDim, qd + queryRow * qWidth + col, qWidth, b.qh.get() + static_cast<size_t>(g) * tr * headDim, headDim);
      }
      GemmF32(m, kc, headDim, alpha, b.qh.get(), false, b.kh.get(), true, 0.0f, b.scores.get());
      CausalSoftmaxBlocks(hb, tr, kc, unit.i0 - keyFirst, window, b.scores.get());
      GemmF32(m, headDim, kc, 1.0f, b.scores.get(), false, b.vh.get(), false, 0.0f, b.oh.get());
      for (int g = 0; g < hb; ++g) {
        const size_t col = static_cast<size_t>(unit.kvHead * groupSize + unit.g0 + g) * headDim;
        CopyRows(tr, headDim, b.oh.get() + static_cast<size_t>(g) * tr * headDim, headDim, out + queryRow * qWidth + col, qWidth);
      }
    }
  });
  return env.Undefined();
}

}  // namespace rfid
