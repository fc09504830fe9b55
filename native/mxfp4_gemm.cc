// Products against a weight matrix kept in MXFP4, as gpt-oss's checkpoints store their experts:
// C = A·Bᵀ + beta·C for A m×k in f32 and B n×k as `blocks` (n × k/2 bytes: FP4 E2M1 codes, two a
// byte, the low nibble first) and `scales` (n × k/32 E8M0 exponents: a value is code × 2^(s − 127)).
//
// Why: held as BF16, gpt-oss-20b's experts take 42 GB where the release takes 13; held as stored
// they take the release's bytes, and a decoding step reads a quarter of the BF16 bytes.
//
// How: every value code × 2^(s − 127) is exact in BF16 (a code has at most two significant bits,
// BF16 has f32's exponent range with subnormals), ±infinity from 2^128 up, zero for a zero code
// whatever the scale, so the product is gemmBf16's on the matrix decoded to BF16:
// - up to kSmallRowsMax rows of A (a decoding step), B's rows go a panel at a time (at most
//   kPanelBytes of BF16, so it stays in L2), each decoded into a buffer of its thread's and
//   multiplied there by the small-rows BF16 kernel (small_gemm.h). That kernel gives each element
//   the same sums whatever rows of B come with it, so the result is gemmBf16's small-rows result
//   bit for bit, on any panel size and thread count (with f32 activations);
// - more rows: B decoded whole, then gemmBf16's own product on it, bit for bit its result.
//
// Decoding: with AVX-512BW one permute of 16-bit lanes turns 32 codes into their BF16 patterns
// from the group's 16-entry table; with AVX2 (SSSE3) byte shuffles look up each pattern's two
// bytes; at the baseline a lookup a code.
#include "intrinsics.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "args.h"
#include "bf16_gemm.h"
#include "decoded_gemm.h"
#include "ops.h"
#include "vectorize.h"

namespace rfid {

namespace {

/** Values a group shares an exponent with. */
constexpr int kGroup = 32;

/** FP4 E2M1 values of the 16 codes (transformers' FP4_VALUES). */
constexpr float kFp4[16] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f, -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

/** At s·16 + code: the BF16 pattern of code × 2^(s − 127) (exact; see the file comment). */
const uint16_t* PatternTable() {
  static const std::vector<uint16_t> table = [] {
    std::vector<uint16_t> t(256 * 16);
    for (int s = 0; s < 256; ++s) {
      for (int c = 0; c < 16; ++c) {
        // exact in f64, then in f32 (or ±infinity), whose upper half is then the whole value
        const float v = static_cast<float>(static_cast<double>(kFp4[c]) * std::ldexp(1.0, s - 127));
        uint32_t bits;
        std::memcpy(&bits, &v, sizeof(bits));
        t[s * 16 + c] = static_cast<uint16_t>(bits >> 16);
      }
    }
    return t;
  }();
  return table.data();
}

/** `rows` rows of B (k values each) decoded to BF16 patterns into out (rows × k). */
void DecodeRowsScalar(const uint8_t* blocks, const uint8_t* scales, int rows, int k, const uint16_t* table, uint16_t* out) {
  const int groups = k / kGroup;
  for (int r = 0; r < rows; ++r) {
    for (int g = 0; g < groups; ++g) {
      const uint16_t* t = table + scales[static_cast<size_t>(r) * groups + g] * 16;
      const uint8_t* b = blocks + (static_cast<size_t>(r) * groups + g) * (kGroup / 2);
      uint16_t* o = out + static_cast<size_t>(r) * k + g * kGroup;
      for (int j = 0; j < kGroup / 2; ++j) {
        o[2 * j] = t[b[j] & 15];
        o[2 * j + 1] = t[b[j] >> 4];
      }
    }
  }
}

#if defined(__GNUC__) && defined(__x86_64__)
/** The same, 32 codes a permute: each byte's two nibbles become two adjacent 16-bit indices. */
__attribute__((target("avx512f,avx512bw"))) void DecodeRowsAvx512(const uint8_t* blocks, const uint8_t* scales, int rows, int k,
                                                                   const uint16_t* table, uint16_t* out) {
  const int groups = k / kGroup;
  const __m512i low = _mm512_set1_epi32(0xF);
  for (int r = 0; r < rows; ++r) {
    for (int g = 0; g < groups; ++g) {
      const uint16_t* t = table + scales[static_cast<size_t>(r) * groups + g] * 16;
      const uint8_t* b = blocks + (static_cast<size_t>(r) * groups + g) * (kGroup / 2);
      // the table's 16 patterns in lanes 0-15 (the indices never reach 16-31)
      const __m512i patterns = _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(t)));
      const __m512i bytes = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b)));
      // dword j = byte j's low nibble (16-bit lane 2j) | its high nibble << 16 (lane 2j + 1)
      const __m512i idx = _mm512_or_si512(_mm512_and_si512(bytes, low), _mm512_slli_epi32(_mm512_srli_epi32(bytes, 4), 16));
      _mm512_storeu_si512(out + static_cast<size_t>(r) * k + g * kGroup, _mm512_permutexvar_epi16(idx, patterns));
    }
  }
}

/** PatternTable's patterns split by byte, per exponent: the 16 low bytes, then the 16 high bytes. */
const uint8_t* SplitPatternTable() {
  static const std::vector<uint8_t> table = [] {
    const uint16_t* patterns = PatternTable();
    std::vector<uint8_t> t(256 * 32);
    for (int s = 0; s < 256; ++s) {
      for (int c = 0; c < 16; ++c) {
        t[s * 32 + c] = static_cast<uint8_t>(patterns[s * 16 + c] & 0xFF);
        t[s * 32 + 16 + c] = static_cast<uint8_t>(patterns[s * 16 + c] >> 8);
      }
    }
    return t;
  }();
  return table.data();
}

/**
 * The same with byte shuffles (SSSE3, which every AVX2 CPU has): a group's 32 codes in code order
 * as byte indices, each looked up in the low-byte and the high-byte table, the two bytes then
 * interleaved into 16-bit patterns. ~1.5 values an instruction, where the scalar loop does ~0.5.
 */
__attribute__((target("ssse3"))) void DecodeRowsSsse3(const uint8_t* blocks, const uint8_t* scales, int rows, int k, const uint8_t* split,
                                                      uint16_t* out) {
  const int groups = k / kGroup;
  const __m128i low = _mm_set1_epi8(0x0F);
  for (int r = 0; r < rows; ++r) {
    for (int g = 0; g < groups; ++g) {
      const uint8_t* t = split + scales[static_cast<size_t>(r) * groups + g] * 32;
      const __m128i lowBytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t));
      const __m128i highBytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t + 16));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blocks + (static_cast<size_t>(r) * groups + g) * (kGroup / 2)));
      const __m128i lo = _mm_and_si128(b, low);
      const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), low);
      // codes 0-15 and 16-31 of the group: byte j's low nibble, then its high one
      const __m128i codes[2] = {_mm_unpacklo_epi8(lo, hi), _mm_unpackhi_epi8(lo, hi)};
      __m128i* o = reinterpret_cast<__m128i*>(out + static_cast<size_t>(r) * k + g * kGroup);
      for (int h = 0; h < 2; ++h) {
        const __m128i l = _mm_shuffle_epi8(lowBytes, codes[h]);
        const __m128i u = _mm_shuffle_epi8(highBytes, codes[h]);
        _mm_storeu_si128(o + 2 * h, _mm_unpacklo_epi8(l, u));
        _mm_storeu_si128(o + 2 * h + 1, _mm_unpackhi_epi8(l, u));
      }
    }
  }
}
#endif

void DecodeRows(const uint8_t* blocks, const uint8_t* scales, int rows, int k, uint16_t* out) {
  const uint16_t* table = PatternTable();
#if defined(__GNUC__) && defined(__x86_64__)
  if (SimdLevel() >= Simd::kAvx512) {
    DecodeRowsAvx512(blocks, scales, rows, k, table, out);
    return;
  }
  if (SimdLevel() >= Simd::kAvx2Fma) {
    DecodeRowsSsse3(blocks, scales, rows, k, SplitPatternTable(), out);
    return;
  }
#endif
  DecodeRowsScalar(blocks, scales, rows, k, table, out);
}

}  // namespace

DecodeBRows Mxfp4Decoder(const uint8_t* blocks, const uint8_t* scales, int k) {
  const size_t rowBytes = static_cast<size_t>(k) / 2;
  const size_t rowScales = static_cast<size_t>(k) / kGroup;
  return [=](int j0, int rows, uint16_t* out) { DecodeRows(blocks + j0 * rowBytes, scales + j0 * rowScales, rows, k, out); };
}

/**
 * gemmMxfp4(m, n, k, a, blocks, scales, c, beta, threads, bf16Activations): C (m×n) = A·Bᵀ + beta·C
 * for A (Float32Array, m×k) and B n×k in MXFP4 (blocks: Uint8Array n × k/2, scales: Uint8Array
 * n × k/32; k a multiple of 32). beta = 0 ignores C's old contents (NaN included). With
 * bf16Activations A is rounded to BF16 first, as gemmBf16 rounds it. On at most `threads` threads.
 */
Napi::Value JsGemmMxfp4(const Napi::CallbackInfo& info) {
  const char* op = "gemmMxfp4";
  Napi::Env env = info.Env();
  const ProductArgs p = ProductArgsOf(info, op, 6);
  const ByteArg blocks = Uint8ArrayArg(info, 4, op, "blocks");
  const ByteArg scales = Uint8ArrayArg(info, 5, op, "scales");
  if (p.k % kGroup != 0) ThrowError(env, op, "k must be a multiple of 32 (one exponent a group of 32 values), got " + std::to_string(p.k));
  const size_t nk = static_cast<size_t>(p.n) * p.k;
  if (blocks.length != nk / 2) {
    ThrowError(env, op, "blocks holds " + std::to_string(blocks.length) + " values, expected " + std::to_string(nk / 2) + " (check n and k: blocks is n × k/2 bytes)");
  }
  if (scales.length != nk / kGroup) {
    ThrowError(env, op, "scales holds " + std::to_string(scales.length) + " values, expected " + std::to_string(nk / kGroup) + " (check n and k: scales is n × k/32 exponents)");
  }
  RequireNoOverlapWith(env, op, p.c, blocks.data, blocks.length, "b");
  RequireNoOverlapWith(env, op, p.c, scales.data, scales.length, "b");
  if (EmptyProduct(p.m, p.n, p.k, p.beta, p.c.f32())) return env.Undefined();
  GemmTransBDecoded(p.m, p.n, p.k, p.a.f32(), Mxfp4Decoder(blocks.data, scales.data, p.k), static_cast<float>(p.beta), p.c.f32(), p.threads, p.activations);
  return env.Undefined();
}

}  // namespace rfid
