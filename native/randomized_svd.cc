// Randomized top-r SVD (Halko, Martinsson & Tropp 2011, algorithms 4.4 + 5.1) in the input's
// precision: Gaussian sketch Ω (n×l, l = r + oversample), Q = orth(A·Ω), q power iterations
// Q = orth(A·orth(Aᵀ·Q)) re-orthonormalised by Householder QR (geqrf + orgqr), then the small
// SVD of B = QᵀA. Everything runs inside one native call on column-major work arrays; the
// row-major input A is used in place as the column-major Aᵀ (lda = n) and never copied.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "args.h"
#include "gaussian.h"
#include "lapack.h"
#include "ops.h"

namespace rfid {

namespace {

template <typename T>
Napi::Object Randomized(Napi::Env env, const char* op, int m, int n, const T* a, int r, int oversample,
                        int powerIterations, uint64_t seed) {
  auto u = Napi::TypedArrayOf<T>::New(env, static_cast<size_t>(m) * r);
  auto s = Napi::TypedArrayOf<T>::New(env, static_cast<size_t>(r));
  auto vt = Napi::TypedArrayOf<T>::New(env, static_cast<size_t>(r) * n);
  Napi::Object result = Napi::Object::New(env);
  result.Set("U", u);
  result.Set("S", s);
  result.Set("Vt", vt);
  result.Set("rank", r);
  if (r == 0) return result;

  const int l = std::min(r + oversample, std::min(m, n));
  std::vector<T> omega(static_cast<size_t>(n) * l);
  GaussianSource(seed).Fill(omega.data(), omega.size());

  std::vector<T> y(static_cast<size_t>(m) * l);  // m×l, the range basis Q
  std::vector<T> z(static_cast<size_t>(n) * l);  // n×l, the co-range basis
  std::vector<T> tau, work;
  auto check = [&](lapack_int status, const char* what) {
    if (status != 0) {
      ThrowError(env, op, std::string("LAPACK ") + what + " failed (info " + std::to_string(status) + ") on a " +
                              ShapeText(m, n) + " matrix");
    }
  };
  // A·X for X n×l: the buffer is Aᵀ column-major, hence CblasTrans.
  auto timesA = [&](const T* x, T* out) {
    Gemm(CblasColMajor, CblasTrans, CblasNoTrans, m, l, n, T(1), a, n, x, n, T(0), out, m);
  };
  // Aᵀ·X for X m×l.
  auto timesAt = [&](const T* x, T* out) {
    Gemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, l, m, T(1), a, n, x, m, T(0), out, n);
  };

  timesA(omega.data(), y.data());
  check(OrthonormaliseColumns<T>(m, l, y.data(), tau, work), "geqrf/orgqr");
  for (int it = 0; it < powerIterations; ++it) {
    timesAt(y.data(), z.data());
    check(OrthonormaliseColumns<T>(n, l, z.data(), tau, work), "geqrf/orgqr");
    timesA(z.data(), y.data());
    check(OrthonormaliseColumns<T>(m, l, y.data(), tau, work), "geqrf/orgqr");
  }
  // Bᵀ = Aᵀ·Q (n×l). Its SVD Bᵀ = U₂·S·V₂ᵀ gives A ≈ Q·B = (Q·V₂)·S·U₂ᵀ.
  timesAt(y.data(), z.data());
  std::vector<T> u2(static_cast<size_t>(n) * l), vt2(static_cast<size_t>(l) * l), s2(l);
  check(GesddColMajor<T>('S', n, l, z.data(), n, s2.data(), u2.data(), n, vt2.data(), l), "gesdd");

  std::copy(s2.begin(), s2.begin() + r, s.Data());
  // Vt (r×n row-major) is the first r columns of U₂ (n×l column-major): contiguous.
  std::copy(u2.begin(), u2.begin() + static_cast<size_t>(r) * n, vt.Data());
  // U (m×r row-major) is column-major Uᵀ (r×m) = V₂[:, :r]ᵀ·Qᵀ = (first r rows of V₂ᵀ)·Qᵀ.
  Gemm(CblasColMajor, CblasNoTrans, CblasTrans, r, m, l, T(1), vt2.data(), l, y.data(), m, T(0), u.Data(), r);
  return result;
}

}  // namespace

/**
 * svdRandomized(m, n, a, r, oversample, powerIterations, seed) → { U (m×r), S (r), Vt (r×n), rank }
 * in a's dtype. The sketch width is min(r + oversample, min(m, n)).
 */
Napi::Value JsSvdRandomized(const Napi::CallbackInfo& info) {
  const char* op = "svdRandomized";
  Napi::Env env = info.Env();
  const int m = DimArg(info, 0, op, "m");
  const int n = DimArg(info, 1, op, "n");
  const ArrayArg a = FloatArrayArg(info, 2, op, "a");
  const int r = DimArg(info, 3, op, "r");
  const int oversample = DimArg(info, 4, op, "oversample");
  const int powerIterations = DimArg(info, 5, op, "powerIterations");
  const double seed = NumberArg(info, 6, op, "seed");
  RequireShape(env, op, a, m, n, "m and n: a is m×n");
  // r = 0 only describes the empty matrix (thin SVD of 0×n); a zero rank request is a bug.
  if (r > std::min(m, n) || (r == 0 && std::min(m, n) > 0)) {
    ThrowError(env, op,
               "rank r = " + std::to_string(r) + " must be in [1, min(m, n) = " + std::to_string(std::min(m, n)) +
                   "] for a " + ShapeText(m, n) + " matrix");
  }
  if (oversample > 1 << 20) ThrowError(env, op, "oversample = " + std::to_string(oversample) + " is unreasonably large");
  if (powerIterations > 1000) {
    ThrowError(env, op, "powerIterations = " + std::to_string(powerIterations) + " is unreasonably large (use ≤ 1000)");
  }
  if (seed < 0 || std::floor(seed) != seed || seed > 9007199254740991.0) {
    ThrowError(env, op, "seed must be a non-negative safe integer, got " + std::to_string(seed));
  }
  RequireFinite(env, op, a);
  const uint64_t seed64 = static_cast<uint64_t>(seed);
  if (a.dtype == DType::F32) return Randomized<float>(env, op, m, n, a.f32(), r, oversample, powerIterations, seed64);
  return Randomized<double>(env, op, m, n, a.f64(), r, oversample, powerIterations, seed64);
}

/**
 * gaussian(count, seed) → Float64Array: the standard normals svdRandomized draws for `seed`; the
 * n×l sketch Ω is the first n·l of them, column-major (rounded to f32 for f32 input). Exposed so
 * tests can check the distribution and benchmarks can give a peer the very same sketch.
 */
Napi::Value JsGaussian(const Napi::CallbackInfo& info) {
  const char* op = "gaussian";
  Napi::Env env = info.Env();
  const int count = DimArg(info, 0, op, "count");
  const double seed = NumberArg(info, 1, op, "seed");
  if (seed < 0 || std::floor(seed) != seed || seed > 9007199254740991.0) {
    ThrowError(env, op, "seed must be a non-negative safe integer, got " + std::to_string(seed));
  }
  Napi::Float64Array out = Napi::Float64Array::New(env, static_cast<size_t>(count));
  GaussianSource(static_cast<uint64_t>(seed)).Fill(out.Data(), out.ElementLength());
  return out;
}

}  // namespace rfid
