#include "args.h"

#include <cmath>
#include <limits>

namespace rfid {

void ThrowError(Napi::Env env, const char* op, const std::string& message) {
  throw Napi::Error::New(env, std::string(op) + ": " + message);
}

std::string ShapeText(size_t rows, size_t cols) {
  return std::to_string(rows) + "×" + std::to_string(cols);
}

static Napi::Value Arg(const Napi::CallbackInfo& info, size_t index) {
  return index < info.Length() ? info[index] : info.Env().Undefined();
}

int DimArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  Napi::Value v = Arg(info, index);
  if (!v.IsNumber()) ThrowError(info.Env(), op, std::string(name) + " must be a number (a matrix dimension)");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d < 0 || std::floor(d) != d) {
    ThrowError(info.Env(), op, std::string(name) + " must be a non-negative integer, got " + std::to_string(d));
  }
  if (d > static_cast<double>(std::numeric_limits<int>::max())) {
    ThrowError(info.Env(), op, std::string(name) + " = " + std::to_string(d) + " exceeds the 32-bit BLAS index range");
  }
  return static_cast<int>(d);
}

double NumberArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  Napi::Value v = Arg(info, index);
  if (!v.IsNumber()) ThrowError(info.Env(), op, std::string(name) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) ThrowError(info.Env(), op, std::string(name) + " must be finite");
  return d;
}

bool BoolArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  Napi::Value v = Arg(info, index);
  if (v.IsUndefined()) return false;
  if (!v.IsBoolean()) ThrowError(info.Env(), op, std::string(name) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

ArrayArg FloatArrayArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  Napi::Value v = Arg(info, index);
  if (!v.IsTypedArray()) ThrowError(info.Env(), op, std::string(name) + " must be a Float32Array or Float64Array");
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  ArrayArg out;
  out.name = name;
  out.length = ta.ElementLength();
  switch (ta.TypedArrayType()) {
    case napi_float32_array:
      out.dtype = DType::F32;
      out.data = v.As<Napi::Float32Array>().Data();
      break;
    case napi_float64_array:
      out.dtype = DType::F64;
      out.data = v.As<Napi::Float64Array>().Data();
      break;
    default:
      ThrowError(info.Env(), op, std::string(name) + " must be a Float32Array or Float64Array");
  }
  return out;
}

ArrayArg Float64ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  ArrayArg a = FloatArrayArg(info, index, op, name);
  if (a.dtype != DType::F64) ThrowError(info.Env(), op, std::string(name) + " must be a Float64Array");
  return a;
}

ArrayArg Float32ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  Napi::Value v = Arg(info, index);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    ThrowError(info.Env(), op, std::string(name) + " must be a Float32Array");
  }
  return FloatArrayArg(info, index, op, name);
}

namespace {

/** An argument that must be the typed array of T (`what`: "a Uint16Array"), viewed as Out without copying. */
template <typename Out, typename T>
Out TypedArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name, napi_typedarray_type type, const char* what) {
  Napi::Value v = Arg(info, index);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) {
    ThrowError(info.Env(), op, std::string(name) + " must be " + what);
  }
  Napi::TypedArrayOf<T> ta = v.As<Napi::TypedArrayOf<T>>();
  Out out;
  out.name = name;
  out.length = ta.ElementLength();
  out.data = ta.Data();
  return out;
}

}  // namespace

HalfArg Uint16ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  return TypedArg<HalfArg, uint16_t>(info, index, op, name, napi_uint16_array, "a Uint16Array");
}

ByteArg Uint8ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  return TypedArg<ByteArg, uint8_t>(info, index, op, name, napi_uint8_array, "a Uint8Array");
}

IndexArg Int32ArrayArg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  return TypedArg<IndexArg, int32_t>(info, index, op, name, napi_int32_array, "an Int32Array");
}

void RequireAtLeast(Napi::Env env, const char* op, const char* name, size_t length, size_t needed, const char* hint) {
  if (length < needed) {
    ThrowError(env, op,
               std::string(name) + " has " + std::to_string(length) + " elements but at least " + std::to_string(needed) +
                   " are needed (check " + hint + ")");
  }
}

void RequireShape(Napi::Env env, const char* op, const ArrayArg& arr, size_t rows, size_t cols, const char* hint) {
  const size_t expected = rows * cols;
  if (arr.length != expected) {
    ThrowError(env, op,
               std::string(arr.name) + " has " + std::to_string(arr.length) + " elements but a " +
                   ShapeText(rows, cols) + " matrix needs " + std::to_string(expected) + " (check " + hint + ")");
  }
}

void RequireSameDType(Napi::Env env, const char* op, const ArrayArg& a, const ArrayArg& b) {
  if (a.dtype != b.dtype) {
    ThrowError(env, op,
               std::string(a.name) + " and " + b.name +
                   " must both be Float32Array or both Float64Array (mixed precision is not supported)");
  }
}

void RequireNoOverlap(Napi::Env env, const char* op, const ArrayArg& out, const ArrayArg& in) {
  RequireNoOverlapWith(env, op, out, in.data, in.bytes(), in.name);
}

void RequireNoOverlapWith(Napi::Env env, const char* op, const ArrayArg& out, const void* data, size_t bytes, const char* name) {
  const char* o = static_cast<const char*>(out.data);
  const char* i = static_cast<const char*>(data);
  if (out.bytes() == 0 || bytes == 0) return;
  if (o < i + bytes && i < o + out.bytes()) {
    ThrowError(env, op,
               std::string(out.name) + " shares memory with " + name + "; pass a separate output array");
  }
}

template <typename T>
static size_t FirstNonFinite(const T* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(p[i])) return i;
  }
  return n;
}

void RequireFinite(Napi::Env env, const char* op, const ArrayArg& arr) {
  const size_t at = arr.dtype == DType::F32 ? FirstNonFinite(arr.f32(), arr.length) : FirstNonFinite(arr.f64(), arr.length);
  if (at != arr.length) {
    ThrowError(env, op, std::string(arr.name) + " contains NaN or Inf (first at flat index " + std::to_string(at) + ")");
  }
}

}  // namespace rfid
