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
// Decoding a code: its bits shifted left by 7 within 16 bits read as an IEEE half its value × 2^-8
// (subnormal codes as half subnormals); F16C converts that to f32 exactly, a normal f32 or zero, so
// no multiply meets an f32 subnormal (a microcode assist of some hundred cycles on many x86 cores).
// A group whose scale keeps every product a normal f32 (FastScale: every real checkpoint's) and
// that holds no NaN code takes one multiply by scale × 2^8 (exact), which rounds the product once,
// and a rounding to BF16 without NaN cases (DecodeFastAvx512, DecodeFastAvx2); any other group multiplies by 2^8 (exact),
// makes the NaN codes NaN, multiplies by the scale and rounds with NaN kept quiet, as
// f32BitsToBf16 does (DecodeRunAvx512). With AVX-512 16 codes go at a time, with AVX2 (and F16C)
// 8; at the baseline a value at a time, from a table of the 256 codes' values.
#include "intrinsics.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "args.h"
#include "bf16_dot.h"
#include "bf16_gemm.h"
#include "decoded_gemm.h"
#include "ops.h"
#include "row_kernels.h"
#include "vectorize.h"

namespace rfid {

namespace {

/** 2^120: the E4M3 code's bits read as an f32 are its value × 2^-120. */
constexpr float kCodeScale = 0x1p120f;
/** 2^8: the code's bits read as an IEEE half (DecodeFastAvx512) are its value × 2^-8. */
constexpr float kHalfScale = 0x1p8f;

/** The value of an E4M3 code (see the file comment), NaN for 0x7f and 0xff. */
inline float E4m3Value(uint8_t code) {
  if ((code & 0x7f) == 0x7f) return (code & 0x80) ? -std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::quiet_NaN();
  const uint32_t bits = (static_cast<uint32_t>(code & 0x80) << 24) | (static_cast<uint32_t>(code & 0x7f) << 20);
  float v;
  std::memcpy(&v, &bits, sizeof(v));
  return v * kCodeScale;
}

/**
 * E4m3Value of each of the 256 codes, worked out once: the scalar loops look values up, because a
 * subnormal code's bits read as an f32 are an f32 subnormal, and a multiply by one costs a
 * microcode assist (some hundred cycles) on many x86 cores.
 */
const float* E4m3Table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(256);
    for (int c = 0; c < 256; ++c) t[c] = E4m3Value(static_cast<uint8_t>(c));
    return t;
  }();
  return table.data();
}

/** codes[0, count) × scale rounded to BF16 patterns into out (RoundToBf16: NaN kept quiet), 64 at a time. */
void DecodeRunScalar(const uint8_t* codes, int count, float scale, uint16_t* out) {
  const float* values = E4m3Table();
  float products[64];
  for (int i0 = 0; i0 < count; i0 += 64) {
    const int n = std::min(64, count - i0);
    for (int i = 0; i < n; ++i) products[i] = values[codes[i0 + i]] * scale;
    RoundToBf16(reinterpret_cast<const uint32_t*>(products), out + i0, static_cast<size_t>(n));
  }
}

/**
 * Whether a group's scale takes the fast path: |scale| in [2^-117, 2^8), so scale × 2^8 is exact
 * and finite, and every product of a code with it is zero or a normal f32 (2^-9 × 2^-117 = 2^-126
 * up to 448 × 2^8): no NaN, infinity or subnormal to round specially. NaN fails both tests.
 * Real checkpoints' scales (the block's largest weight ÷ 448) are around 2^-16 to 2^-6.
 */
inline bool FastScale(float scale) {
  const float magnitude = std::fabs(scale);
  return magnitude >= 0x1p-117f && magnitude < 0x1p8f;
}

/** Whether the CPU converts halves (F16C: every AVX2 CPU made has it; checked all the same). */
inline bool HasF16c() {
#if defined(__GNUC__) && defined(__x86_64__)
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("f16c") != 0;
  }();
  return has;
#else
  return false;
#endif
}

#if defined(__GNUC__) && defined(__x86_64__)
/** Whether any of codes[0, count) is NaN's (0x7f or 0xff), 64 bytes a step. */
__attribute__((target("avx512f,avx512bw"))) bool HasNanCodeAvx512(const uint8_t* codes, int count) {
  const __m512i low7 = _mm512_set1_epi8(0x7f);
  __mmask64 any = 0;
  int i = 0;
  for (; i + 64 <= count; i += 64) any |= _mm512_cmpeq_epi8_mask(_mm512_and_si512(_mm512_loadu_si512(codes + i), low7), low7);
  if (any != 0) return true;
  for (; i < count; ++i) {
    if ((codes[i] & 0x7f) == 0x7f) return true;
  }
  return false;
}

/** The same, 32 bytes a step. */
__attribute__((target("avx2"))) bool HasNanCodeAvx2(const uint8_t* codes, int count) {
  const __m256i low7 = _mm256_set1_epi8(0x7f);
  __m256i any = _mm256_setzero_si256();
  int i = 0;
  for (; i + 32 <= count; i += 32) {
    any = _mm256_or_si256(any, _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + i)), low7), low7));
  }
  if (!_mm256_testz_si256(any, any)) return true;
  for (; i < count; ++i) {
    if ((codes[i] & 0x7f) == 0x7f) return true;
  }
  return false;
}

/** How far ahead of the decoding the codes are prefetched: the decoding alone does not keep the hardware prefetchers busy enough. */
constexpr int kPrefetchAhead = 1024;

/**
 * A run of codes under a FastScale scale and without NaN codes, 16 a step. A code's bits shifted
 * left by 7 within 16 bits (the sign to bit 15, the exponent to bits 10-13, the mantissa to 7-9)
 * read as an IEEE half its value × 2^-8, subnormal codes as half subnormals; converted to f32
 * (F16C, exact, every one a normal f32, so no multiply meets an f32 subnormal), one multiply by
 * scale × 2^8 (exact) rounds the product once, a normal f32, which VCVTNEPS2BF16 rounds to
 * nearest even as f32BitsToBf16 does (it differs only on subnormals and NaN, which the fast path
 * never meets). Needs AVX512_BF16; without it AVX-512 CPUs take DecodeFastAvx2 (the rest as
 * DecodeRunScalar).
 */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) void DecodeFastAvx512(const uint8_t* codes, int count, float scale, uint16_t* out) {
  const __m512 s = _mm512_set1_ps(scale * kHalfScale);
  // sign-extended, shifted: the sign's copies land on bits 14-15; bit 14 (the half's top exponent bit) masked off
  const __m256i keep = _mm256_set1_epi16(static_cast<int16_t>(0xBF80));
  int i = 0;
  for (; i + 16 <= count; i += 16) {
    _mm_prefetch(reinterpret_cast<const char*>(codes + i + kPrefetchAhead), _MM_HINT_T0);
    const __m256i halves = _mm256_and_si256(_mm256_slli_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + i))), 7), keep);
    const __m512 v = _mm512_mul_ps(_mm512_cvtph_ps(halves), s);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v)));
  }
  DecodeRunScalar(codes + i, count - i, scale, out + i);
}

/** 8 codes as DecodeFastAvx512 decodes them, one a 32-bit lane, rounded to BF16 in integer arithmetic (no NaN case). */
__attribute__((target("avx2,f16c"))) inline __m256i DecodeFastEightAvx2(const uint8_t* at, __m256 s) {
  const __m128i halves = _mm_and_si128(_mm_slli_epi16(_mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(at))), 7), _mm_set1_epi16(static_cast<int16_t>(0xBF80)));
  const __m256i r = _mm256_castps_si256(_mm256_mul_ps(_mm256_cvtph_ps(halves), s));
  return _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(r, _mm256_set1_epi32(0x7fff)), _mm256_and_si256(_mm256_srli_epi32(r, 16), _mm256_set1_epi32(1))), 16);
}

/** DecodeFastAvx512 with AVX2 and F16C, 16 codes a step in two halves of 8. */
__attribute__((target("avx2,f16c"))) void DecodeFastAvx2(const uint8_t* codes, int count, float scale, uint16_t* out) {
  const __m256 s = _mm256_set1_ps(scale * kHalfScale);
  int i = 0;
  for (; i + 16 <= count; i += 16) {
    _mm_prefetch(reinterpret_cast<const char*>(codes + i + kPrefetchAhead), _MM_HINT_T0);
    const __m256i packed = _mm256_packus_epi32(DecodeFastEightAvx2(codes + i, s), DecodeFastEightAvx2(codes + i + 8, s));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_permute4x64_epi64(packed, 0xD8));
  }
  DecodeRunScalar(codes + i, count - i, scale, out + i);
}
#endif

#if defined(__GNUC__) && defined(__x86_64__)
/**
 * The same for any scale and any codes, 16 a step: the codes through IEEE halves as
 * DecodeFastAvx512 takes them, × 2^8 (exact: each the code's value, a normal f32 or zero), the NaN
 * codes made NaN (their halves read 480, beyond E4M3's 448), then × scale, rounded once in f32,
 * and to BF16 with NaN kept quiet (the rest as DecodeRunScalar).
 */
__attribute__((target("avx512f,avx512bw"))) void DecodeRunAvx512(const uint8_t* codes, int count, float scale, uint16_t* out) {
  const __m256i keep = _mm256_set1_epi16(static_cast<int16_t>(0xBF80));
  const __m512 halfScale = _mm512_set1_ps(kHalfScale);
  const __m512 nanHalf = _mm512_set1_ps(480.0f);
  const __m512i signMask = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  const __m512i quietNaN = _mm512_set1_epi32(0x7fc00000);
  const __m512i expMask = _mm512_set1_epi32(0x7f800000);
  const __m512i absMask = _mm512_set1_epi32(0x7fffffff);
  const __m512i roundBias = _mm512_set1_epi32(0x7fff);
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i quietBit = _mm512_set1_epi32(0x40);
  const __m512 s = _mm512_set1_ps(scale);
  int i = 0;
  for (; i + 16 <= count; i += 16) {
    const __m256i halves = _mm256_and_si256(_mm256_slli_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + i))), 7), keep);
    const __m512 value = _mm512_mul_ps(_mm512_cvtph_ps(halves), halfScale);
    __m512i bits = _mm512_castps_si512(value);
    // 0x7f / 0xff: NaN of the code's sign
    const __mmask16 nanCode = _mm512_cmpeq_epi32_mask(_mm512_and_si512(bits, absMask), _mm512_castps_si512(nanHalf));
    bits = _mm512_mask_or_epi32(bits, nanCode, _mm512_and_si512(bits, signMask), quietNaN);
    const __m512i r = _mm512_castps_si512(_mm512_mul_ps(_mm512_castsi512_ps(bits), s));
    __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(r, roundBias), _mm512_and_si512(_mm512_srli_epi32(r, 16), one)), 16);
    // NaN (exponent all ones, mantissa not zero): its upper half, made quiet
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(r, absMask), expMask);
    rounded = _mm512_mask_or_epi32(rounded, nan, _mm512_srli_epi32(r, 16), quietBit);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtepi32_epi16(rounded));
  }
  DecodeRunScalar(codes + i, count - i, scale, out + i);
}

/** 8 codes × scale rounded to BF16 patterns, one a 32-bit lane (as DecodeRunAvx512 computes them). */
__attribute__((target("avx2,f16c"))) inline __m256i DecodeEightAvx2(const uint8_t* at, __m256 s) {
  const __m128i halves = _mm_and_si128(_mm_slli_epi16(_mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(at))), 7), _mm_set1_epi16(static_cast<int16_t>(0xBF80)));
  __m256i bits = _mm256_castps_si256(_mm256_mul_ps(_mm256_cvtph_ps(halves), _mm256_set1_ps(kHalfScale)));
  const __m256i magnitude = _mm256_and_si256(bits, _mm256_set1_epi32(0x7fffffff));
  const __m256i nanCode = _mm256_cmpeq_epi32(magnitude, _mm256_castps_si256(_mm256_set1_ps(480.0f)));
  bits = _mm256_blendv_epi8(bits, _mm256_or_si256(_mm256_andnot_si256(magnitude, bits), _mm256_set1_epi32(0x7fc00000)), nanCode);
  const __m256i r = _mm256_castps_si256(_mm256_mul_ps(_mm256_castsi256_ps(bits), s));
  const __m256i rounded =
      _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(r, _mm256_set1_epi32(0x7fff)), _mm256_and_si256(_mm256_srli_epi32(r, 16), _mm256_set1_epi32(1))), 16);
  // NaN: |r| above infinity's pattern (both below 2^31, so the signed compare is right)
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(r, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
  return _mm256_blendv_epi8(rounded, _mm256_or_si256(_mm256_srli_epi32(r, 16), _mm256_set1_epi32(0x40)), nan);
}

/** The same as DecodeRunAvx512 with AVX2 and F16C, 16 codes a step in two halves of 8 (the rest as DecodeRunScalar). */
__attribute__((target("avx2,f16c"))) void DecodeRunAvx2(const uint8_t* codes, int count, float scale, uint16_t* out) {
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
  // each group along the fast path where its scale and codes allow (FastScale), else the exact one
  void (*run)(const uint8_t*, int, float, uint16_t*) = DecodeRunScalar;
  void (*fast)(const uint8_t*, int, float, uint16_t*) = nullptr;
  bool (*hasNan)(const uint8_t*, int) = nullptr;
#if defined(__GNUC__) && defined(__x86_64__)
  if (SimdLevel() >= Simd::kAvx512) {
    run = DecodeRunAvx512;
    // HasBf16Dot: AVX-512 with AVX512_BF16, whose VCVTNEPS2BF16 DecodeFastAvx512 uses
    fast = HasBf16Dot() ? DecodeFastAvx512 : DecodeFastAvx2;
    hasNan = HasNanCodeAvx512;
  } else if (SimdLevel() >= Simd::kAvx2Fma && HasF16c()) {
    run = DecodeRunAvx2;
    fast = DecodeFastAvx2;
    hasNan = HasNanCodeAvx2;
  }
#endif
  for (int r = 0; r < rows; ++r) {
    for (int g = 0; g < groups; ++g) {
      const size_t at = static_cast<size_t>(r) * k + static_cast<size_t>(g) * group;
      const int count = std::min(group, k - g * group);
      const float scale = scales[static_cast<size_t>(r) * groups + g];
      if (fast != nullptr && FastScale(scale) && !hasNan(codes + at, count)) fast(codes + at, count, scale, out + at);
      else run(codes + at, count, scale, out + at);
    }
  }
}

}  // namespace

DecodeBRows Fp8Decoder(const uint8_t* codes, const float* scales, int k, int group) {
  const int groups = (k + group - 1) / group;
  return [=](int j0, int rows, uint16_t* out) {
    DecodeRows(codes + static_cast<size_t>(j0) * k, scales + static_cast<size_t>(j0) * groups, rows, k, group, out);
  };
}

/**
 * gemmFp8(m, n, k, a, codes, scales, group, c, beta, threads, bf16Activations): C (m×n) = A·Bᵀ +
 * beta·C for A (Float32Array, m×k) and B n×k in FP8 (codes: Uint8Array n×k E4M3 codes; scales:
 * Float32Array n × ⌈k / group⌉). beta = 0 ignores C's old contents (NaN included). With
 * bf16Activations A is rounded to BF16 first, as gemmBf16 rounds it. On at most `threads` threads.
 */
Napi::Value JsGemmFp8(const Napi::CallbackInfo& info) {
  const char* op = "gemmFp8";
  Napi::Env env = info.Env();
  const ProductArgs p = ProductArgsOf(info, op, 7);
  const ByteArg codes = Uint8ArrayArg(info, 4, op, "codes");
  const ArrayArg scales = Float32ArrayArg(info, 5, op, "scales");
  const int group = DimArg(info, 6, op, "group");
  if (group == 0) ThrowError(env, op, "group must be a positive integer (values a scale covers along a row), got 0");
  const size_t n = static_cast<size_t>(p.n);
  if (codes.length != n * p.k) {
    ThrowError(env, op, "codes holds " + std::to_string(codes.length) + " values, expected " + std::to_string(n * p.k) + " (check n and k: codes is n×k)");
  }
  const int groups = (p.k + group - 1) / group;
  if (scales.length != n * groups) {
    ThrowError(env, op, "scales holds " + std::to_string(scales.length) + " values, expected " + std::to_string(n * groups) + " (check n, k and group: scales is n × ⌈k / group⌉)");
  }
  RequireNoOverlapWith(env, op, p.c, scales.data, scales.bytes(), "b");
  RequireNoOverlapWith(env, op, p.c, codes.data, codes.length, "b");
  if (EmptyProduct(p.m, p.n, p.k, p.beta, p.c.f32())) return env.Undefined();
  GemmTransBDecoded(p.m, p.n, p.k, p.a.f32(), Fp8Decoder(codes.data, scales.f32(), p.k, group), static_cast<float>(p.beta), p.c.f32(), p.threads, p.activations);
  return env.Undefined();
}

}  // namespace rfid
