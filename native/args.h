// Argument checking shared by every native entry point.
//
// Every dimension is checked against the typed array it describes before any BLAS/LAPACK call,
// so a wrong shape becomes a JavaScript Error naming the operation, the argument and the
// expected size, never an out-of-bounds read or write.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace rfid {

enum class DType { F32, F64 };

/** A Float32Array or Float64Array argument, viewed without copying. */
struct ArrayArg {
  void* data = nullptr;
  size_t length = 0;
  DType dtype = DType::F64;
  const char* name = "";

  float* f32() const { return static_cast<float*>(data); }
  double* f64() const { return static_cast<double*>(data); }
  size_t bytes() const { return length * (dtype == DType::F32 ? sizeof(float) : sizeof(double)); }
};

/** Throws a JavaScript Error "<op>: <message>". */
[[noreturn]] void ThrowError(Napi::Env env, const char* op, const std::string& message);

/** A matrix dimension: a non-negative integer that fits a 32-bit BLAS/LAPACK int. */
int DimArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name);

/** A finite number. */
double NumberArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name);

/** A boolean (undefined reads as false). */
bool BoolArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name);

/** A Float32Array or Float64Array. */
ArrayArg FloatArrayArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name);

/** Same, but only a Float64Array is accepted. */
ArrayArg Float64ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name);

/** The array must hold exactly rows×cols elements; `hint` names the dimensions to check. */
void RequireShape(Napi::Env env, const char* op, const ArrayArg& arr, size_t rows, size_t cols, const char* hint);

/** All arrays of one call must share a dtype (BLAS has no mixed-precision GEMM). */
void RequireSameDType(Napi::Env env, const char* op, const ArrayArg& a, const ArrayArg& b);

/** An output must not share memory with an input (BLAS results are undefined then). */
void RequireNoOverlap(Napi::Env env, const char* op, const ArrayArg& out, const ArrayArg& in);

/** The same for an input given as its bytes (weights of another element type), named `name`. */
void RequireNoOverlapWith(Napi::Env env, const char* op, const ArrayArg& out, const void* data, size_t bytes, const char* name);

/** Every element finite; LAPACK routines may loop or return garbage on NaN/Inf. */
void RequireFinite(Napi::Env env, const char* op, const ArrayArg& arr);

/** "m×n" for messages. */
std::string ShapeText(size_t rows, size_t cols);

}  // namespace rfid

namespace rfid {

/** A Float32Array argument (the forward-pass kernels run in f32 only). */
ArrayArg Float32ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name);

/** An Int32Array argument (token or row indices), viewed without copying. */
struct IndexArg {
  int32_t* data = nullptr;
  size_t length = 0;
  const char* name = "";
};
IndexArg Int32ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name);

/** A Uint16Array argument (BF16 weights kept as stored), viewed without copying. */
struct HalfArg {
  const uint16_t* data = nullptr;
  size_t length = 0;
  const char* name = "";
};
HalfArg Uint16ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name);

/** A Uint8Array argument (MXFP4 weights kept as stored), viewed without copying. */
struct ByteArg {
  const uint8_t* data = nullptr;
  size_t length = 0;
  const char* name = "";
};
ByteArg Uint8ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name);

/** The array must hold at least `needed` elements; `hint` names the dimensions to check. */
void RequireAtLeast(Napi::Env env, const char* op, const char* name, size_t length, size_t needed, const char* hint);

}  // namespace rfid
