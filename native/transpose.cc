// The strided transpose of the BF16 release of gpt-oss (src/io/transpose.ts): its experts are
// stored transposed (gate_up [E, H, 2I] with gate and up columns interleaved, down [E, I, H]), and
// the runtime holds them in nn.Linear layout, so every expert matrix read from it is some columns
// of its slab, transposed. In JavaScript this was most of the time such a read takes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "args.h"
#include "ops.h"
#include "parallel.h"

namespace rfid {

namespace {

/**
 * out[c·rows + r] = slab[r·width + first + c·step] for r0 ≤ r < r1, c < count, in tiles of
 * kTile × kTile; inside a tile the writes go along out's rows (contiguous) and the reads down the
 * slab's columns. Small tiles because of the TLB, not the caches: the slab's rows of a BF16 gate_up
 * are 11.5 KB apart, so every row of a tile is its own 4 KiB page, read and written. On the 2-core
 * Xeon VM (a 2880 × 5760 BF16 slab, its even columns, 4 KiB pages, C++ alone, best of 10): tiles
 * of 64 took 6.7 ms, of 32 7.1 ms, of 16 4.1 ms, of 8 12.6 ms; for f32, 32 took 15.1 ms and 16
 * 16.4 ms.
 */
template <typename T, size_t kTile>
void TransposeColumns(const T* slab, size_t r0a, size_t r1a, size_t rows, size_t width, size_t first, size_t step, size_t count, T* out) {
  for (size_t r0 = r0a; r0 < r1a; r0 += kTile) {
    const size_t r1 = std::min(r1a, r0 + kTile);
    for (size_t c0 = 0; c0 < count; c0 += kTile) {
      const size_t c1 = std::min(count, c0 + kTile);
      for (size_t c = c0; c < c1; ++c) {
        const T* src = slab + first + c * step;
        T* dst = out + c * rows;
        for (size_t r = r0; r < r1; ++r) dst[r] = src[r * width];
      }
    }
  }
}

/**
 * The rows in two halves on two threads for an expert-sized matrix (a million values or more),
 * one thread below that. Not the engine's pool or thread count: the hook is installed process-wide
 * when the addon loads, with no engine to ask, and it runs while a load reads its files, when the
 * engine's threads are idle. Two, because that is what was measured (the 2-core VM, the gate above,
 * 4 KiB pages, 20 calls): one thread 12.9 ms best, 13.3 ms mean; two 3.6 ms best, 5.8 ms mean
 * (each half touches half the pages). The split falls on a multiple of 32 rows so that the two
 * threads' writes do not share cache lines of out.
 */
template <typename T, size_t kTile>
void TransposeColumnsParts(const T* slab, size_t rows, size_t width, size_t first, size_t step, size_t count, T* out) {
  const bool two = rows * count >= (size_t{1} << 20) && rows >= 64;
  if (!two) return TransposeColumns<T, kTile>(slab, 0, rows, rows, width, first, step, count, out);
  const size_t half = (rows / 2 + 31) / 32 * 32;
  RunParts(2, [&](int part) {
    TransposeColumns<T, kTile>(slab, part == 0 ? 0 : half, part == 0 ? half : rows, rows, width, first, step, count, out);
  });
}

}  // namespace

/**
 * transposeColumns(slab, rows, width, first, step, count, out): out (count × rows) = the transpose
 * of columns first, first + step, … (count of them) of slab (rows × width); slab and out both
 * Uint16Arrays (BF16 patterns) or both Float32Arrays, exactly those sizes, not overlapping.
 */
Napi::Value JsTransposeColumns(const Napi::CallbackInfo& info) {
  const char* op = "transposeColumns";
  Napi::Env env = info.Env();
  const auto typedArray = [&](size_t index, const char* name) {
    Napi::Value v = info[index];
    if (!v.IsTypedArray()) ThrowError(env, op, std::string(name) + " must be a typed array");
    return v.As<Napi::TypedArray>();
  };
  Napi::TypedArray slab = typedArray(0, "slab");
  const size_t rows = static_cast<size_t>(DimArg(info, 1, op, "rows"));
  const size_t width = static_cast<size_t>(DimArg(info, 2, op, "width"));
  const size_t first = static_cast<size_t>(DimArg(info, 3, op, "first"));
  const size_t step = static_cast<size_t>(DimArg(info, 4, op, "step"));
  const size_t count = static_cast<size_t>(DimArg(info, 5, op, "count"));
  Napi::TypedArray out = typedArray(6, "out");
  const napi_typedarray_type type = slab.TypedArrayType();
  if ((type != napi_uint16_array && type != napi_float32_array) || out.TypedArrayType() != type)
    ThrowError(env, op, "slab and out must both be Uint16Arrays or both Float32Arrays");
  if (step == 0) ThrowError(env, op, "step must be positive");
  if (slab.ElementLength() != rows * width)
    ThrowError(env, op, "slab must hold rows × width = " + ShapeText(rows, width) + " values, it holds " + std::to_string(slab.ElementLength()));
  if (count > 0 && first + (count - 1) * step >= width)
    ThrowError(env, op, "columns " + std::to_string(first) + " + " + std::to_string(step) + "·(0…" + std::to_string(count - 1) + ") pass the slab's width " + std::to_string(width));
  if (out.ElementLength() != count * rows)
    ThrowError(env, op, "out must hold count × rows = " + ShapeText(count, rows) + " values, it holds " + std::to_string(out.ElementLength()));
  const auto at = [](Napi::TypedArray a) { return static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset(); };
  uint8_t* s = at(slab);
  uint8_t* o = at(out);
  // the reads of one column would race the writes of another: refuse, as the other kernels do
  if (slab.ByteLength() > 0 && out.ByteLength() > 0 && s < o + out.ByteLength() && o < s + slab.ByteLength())
    ThrowError(env, op, "out must not share memory with slab");
  if (count == 0 || rows == 0) return env.Undefined();
  if (type == napi_uint16_array) {
    TransposeColumnsParts<uint16_t, 16>(reinterpret_cast<const uint16_t*>(s), rows, width, first, step, count, reinterpret_cast<uint16_t*>(o));
  } else {
    TransposeColumnsParts<uint32_t, 32>(reinterpret_cast<const uint32_t*>(s), rows, width, first, step, count, reinterpret_cast<uint32_t*>(o));
  }
  return env.Undefined();
}

}  // namespace rfid
