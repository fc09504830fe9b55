// Products against a weight matrix kept in FP8, as block-FP8 checkpoints store their linear
// weights (DeepSeek-V3, the Qwen3 "-FP8" releases): C = A·Bᵀ + beta·C for A m×k in f32 and B n×k as
// `codes` (n×k E4M3 codes, the "fn" variant: 0x7f and 0xff are NaN, no infinities) and `scales`
// (n × ⌈k / group⌉ f32, one a group of `group` values along a row).
//
// Why: held decoded, an FP8 checkpoint's experts take twice the release's bytes, and a decoding
// step reads twice as much.
//
// How: each value is code × scale in f32 rounded to BF16 (to nearest, ties to even), exactly what
// the checkpoint presents decoded (src/checkpoint/fp8-blocks.ts), so the product is gemmBf16's on
// that matrix: GemmTransBDecoded (decoded_gemm.h) decodes B a panel at a time into L2 for a
// decoding step's few rows, whole for more.
//
// Decoding a code: its bits placed in an f32's (the sign at bit 31, exponent and mantissa at bits
// 20-26) read as the code's value × 2^-120, normal or subnormal alike, so one exact multiply by
// 2^120 gives the value, and a second, by the scale, rounds once as an f32 multiply does. The
// rounding to BF16 is integer arithmetic on the bits, NaN kept quiet, as f32BitsToBf16 does. With
// AVX-512 16 codes go at a time, with AVX2 8; at the baseline a value at a time.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "args.h"
#include "bf16_gemm.h"
#include "decoded_gemm.h"
#include "ops.h"
#include "vectorize.h"

namespace rfid {

namespace {

/** 2^120: the E4M3 code's bits read as an f32 are its value × 2^-120. */
constexpr float kCodeScale = 0x1p120f;

/** The BF16 pattern of v rounded to nearest, ties to even; NaN stays NaN, made quiet. */
inline uint16_t Bf16Bits(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x7fffffu) != 0) return static_cast<uint16_t>((bits >> 16) | 0x40);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1)) >> 16);
}

/** The value of an E4M3 code (see the file comment), NaN for 0x7f and 0xff. */
inline float E4m3Value(uint8_t code) {
  if ((code & 0x7f) == 0x7f) return (code & 0x80) ? -std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::quiet_NaN();
  const uint32_t bits = (static_cast<uint32_t>(code & 0x80) << 24) | (static_cast<uint32_t>(code & 0x7f) << 20);
  float v;
  std::memcpy(&v, &bits, sizeof(v));
  return v * kCodeScale;
}

/** codes[0, count) × scale rounded to BF16 patterns into out. */
void DecodeRunScalar(const uint8_t* codes, int count, float scale, uint16_t* out) {
  for (int i = 0; i < count; ++i) out[i] = Bf16Bits(E4m3Value(codes[i]) * scale);
}

#if defined(__GNUC__) && defined(__x86_64__)
/** The same, 16 codes a step (the rest as DecodeRunScalar). */
__attribute__((target("avx512f,avx512bw"))) void DecodeRunAvx512(const uint8_t* codes, int count, float scale, uint16_t* out) {
  const __m512i sevenF = _mm512_set1_epi32(0x7f);
  const __m512i signBit = _mm512_set1_epi32(0x80);
  const __m512i quietNaN = _mm512_set1_epi32(0x7fc00000);
  const __m512i expMask = _mm512_set1_epi32(0x7f800000);
  const __m512i absMask = _mm512_set1_epi32(0x7fffffff);
  const __m512i roundBias = _mm512_set1_epi32(0x7fff);
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i quietBit = _mm512_set1_epi32(0x40);
  const __m512 codeScale = _mm512_set1_ps(kCodeScale);
  const __m512 s = _mm512_set1_ps(scale);
  int i = 0;
  for (; i + 16 <= count; i += 16) {
    const __m512i c = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + i)));
    const __m512i magnitude = _mm512_and_si512(c, sevenF);
    const __m512i sign = _mm512_slli_epi32(_mm512_and_si512(c, signBit), 24);
    __m512i bits = _mm512_or_si512(sign, _mm512_slli_epi32(magnitude, 20));
    // 0x7f / 0xff: NaN of the code's sign
    bits = _mm512_mask_or_epi32(bits, _mm512_cmpeq_epi32_mask(magnitude, sevenF), sign, quietNaN);
    const __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_castsi512_ps(bits), codeScale), s);
    const __m512i r = _mm512_castps_si512(v);
    __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(r, roundBias), _mm512_and_si512(_mm512_srli_epi32(r, 16), one)), 16);
    // NaN (exponent all ones, mantissa not zero): its upper half, made quiet
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(r, absMask), expMask);
    rounded = _mm512_mask_or_epi32(rounded, nan, _mm512_srli_epi32(r, 16), quietBit);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtepi32_epi16(rounded));
  }
  DecodeRunScalar(codes + i, count - i, scale, out + i);
}

/** 8 codes × scale rounded to BF16 patterns, one a 32-bit lane (as DecodeRunAvx512 computes them). */
__attribute__((target("avx2"))) inline __m256i DecodeEightAvx2(const uint8_t* at, __m256 s) {
  const __m256i sevenF = _mm256_set1_epi32(0x7f);
  const __m256i c = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(at)));
  const __m256i magnitude = _mm256_and_si256(c, sevenF);
  const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(c, _mm256_set1_epi32(0x80)), 24);
  __m256i bits = _mm256_or_si256(sign, _mm256_slli_epi32(magnitude, 20));
  bits = _mm256_blendv_epi8(bits, _mm256_or_si256(sign, _mm256_set1_epi32(0x7fc00000)), _mm256_cmpeq_epi32(magnitude, sevenF));
  const __m256i r = _mm256_castps_si256(_mm256_mul_ps(_mm256_mul_ps(_mm256_castsi256_ps(bits), _mm256_set1_ps(kCodeScale)), s));
  const __m256i rounded =
      _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(r, _mm256_set1_epi32(0x7fff)), _mm256_and_si256(_mm256_srli_epi32(r, 16), _mm256_set1_epi32(1))), 16);
  // NaN: |r| above infinity's pattern (both below 2^31, so the signed compare is right)
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(r, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
  return _mm256_blendv_epi8(rounded, _mm256_or_si256(_mm256_srli_epi32(r, 16), _mm256_set1_epi32(0x40)), nan);
}

/** The same as DecodeRunAvx512, 16 codes a step in two halves of 8 (the rest as DecodeRunScalar). */
__attribute__((target("avx2"))) void DecodeRunAvx2(const uint8_t* codes, int count, float scale, uint16_t* out) {
  const __m256 s = _mm256_set1_ps(scale);
  int i = 0;
  for (; i + 16 <= count; i += 16) {
    // values 0-15 below 2^16 each: packus keeps them; it interleaves the halves by 128-bit lane
    const __m256i packed = _mm256_packus_epi32(DecodeEightAvx2(codes + i, s), DecodeEightAvx2(codes + i + 8, s));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_permute4x64_epi64(packed, 0xD8));
  }
  DecodeRunScalar(codes + i, count - i, scale, out + i);
}
#endif

/** `rows` rows of B (k values each, groups of `group`) decoded to BF16 patterns into out (rows × k). */
void DecodeRows(const uint8_t* codes, const float* scales, int rows, int k, int group, uint16_t* out) {
  const int groups = (k + group - 1) / group;
  void (*run)(const uint8_t*, int, float, uint16_t*) = DecodeRunScalar;
#if defined(__GNUC__) && defined(__x86_64__)
  if (SimdLevel() >= Simd::kAvx512) run = DecodeRunAvx512;
  else if (SimdLevel() >= Simd::kAvx2Fma) run = DecodeRunAvx2;
#endif
  for (int r = 0; r < rows; ++r) {
    for (int g = 0; g < groups; ++g) {
      const size_t at = static_cast<size_t>(r) * k + static_cast<size_t>(g) * group;
      run(codes + at, std::min(group, k - g * group), scales[static_cast<size_t>(r) * groups + g], out + at);
    }
  }
}

}  // namespace

/**
 * gemmFp8(m, n, k, a, codes, scales, group, c, beta, threads, bf16Activations): C (m×n) = A·Bᵀ +
 * beta·C for A (Float32Array, m×k) and B n×k in FP8 (codes: Uint8Array n×k E4M3 codes; scales:
 * Float32Array n × ⌈k / group⌉). beta = 0 ignores C's old contents (NaN included). With
 * bf16Activations A is rounded to BF16 first, as gemmBf16 rounds it. On at most `threads` threads.
 */
Napi::Value JsGemmFp8(const Napi::CallbackInfo& info) {
  const char* op = "gemmFp8";
  Napi::Env env = info.Env();
  const int m = DimArg(info, 0, op, "m");
  const int n = DimArg(info, 1, op, "n");
  const int k = DimArg(info, 2, op, "k");
  const ArrayArg a = Float32ArrayArg(info, 3, op, "a");
  const ByteArg codes = Uint8ArrayArg(info, 4, op, "codes");
  const ArrayArg scales = Float32ArrayArg(info, 5, op, "scales");
  const int group = DimArg(info, 6, op, "group");
  if (group == 0) ThrowError(env, op, "group must be a positive integer (values a scale covers along a row), got 0");
  const ArrayArg c = Float32ArrayArg(info, 7, op, "c");
  const double beta = NumberArg(info, 8, op, "beta");
  const int threads = DimArg(info, 9, op, "threads");
  if (threads == 0) ThrowError(env, op, "threads must be at least 1");
  const bool bf16Activations = BoolArg(info, 10, op, "bf16Activations");
  RequireShape(env, op, a, m, k, "m and k: a is m×k");
  if (codes.length != static_cast<size_t>(n) * k) {
    ThrowError(env, op, "codes holds " + std::to_string(codes.length) + " values, expected " + std::to_string(static_cast<size_t>(n) * k) + " (check n and k: codes is n×k)");
  }
  const int groups = (k + group - 1) / group;
  if (scales.length != static_cast<size_t>(n) * groups) {
    ThrowError(env, op, "scales holds " + std::to_string(scales.length) + " values, expected " + std::to_string(static_cast<size_t>(n) * groups) + " (check n, k and group: scales is n × ⌈k / group⌉)");
  }
  RequireShape(env, op, c, m, n, "m and n: c is m×n");
  RequireNoOverlap(env, op, c, a);
  RequireNoOverlapWith(env, op, c, scales.data, scales.bytes(), "b");
  RequireNoOverlapWith(env, op, c, codes.data, codes.length, "b");
  if (EmptyProduct(m, n, k, beta, c.f32())) return env.Undefined();
  const uint8_t* b = codes.data;
  const float* s = scales.f32();
  GemmTransBDecoded(
      m, n, k, a.f32(),
      [=](int j0, int rows, uint16_t* out) { DecodeRows(b + static_cast<size_t>(j0) * k, s + static_cast<size_t>(j0) * groups, rows, k, group, out); },
      static_cast<float>(beta), c.f32(), threads, bf16Activations ? MatmulActivations::kBf16 : MatmulActivations::kF32);
  return env.Undefined();
}

}  // namespace rfid
