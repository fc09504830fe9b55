// Module entry of rfid_moe_native: registers the linear-algebra primitives and exposes the
// OpenBLAS build/kernel information and thread control.
//
// OPENBLAS_CORETYPE must be set in the environment before this library is loaded (OpenBLAS
// reads it in its constructor); src/engine/openblas-coretype.ts does that.
#include <napi.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "args.h"
#include "lapack.h"
#include "ops.h"
#include "bf16_dot.h"
#include "vectorize.h"

extern "C" {
// Declared by OpenBLAS's cblas.h; repeated so a cblas.h from another vendor fails loudly at link
// time instead of silently lacking them.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char* openblas_get_config(void);
char* openblas_get_corename(void);
}

namespace rfid {
namespace {

/**
 * info() → { config, corename, threads, simd, bf16Dot }: OpenBLAS build string, active kernel,
 * thread count, the instruction set of the addon's own kernels ("avx512", "avx2" or "baseline"),
 * and whether BF16 matmul activations run on the CPU's BF16 dot products (bf16_dot.h).
 */
Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("config", Napi::String::New(env, openblas_get_config()));
  out.Set("corename", Napi::String::New(env, openblas_get_corename()));
  out.Set("threads", Napi::Number::New(env, openblas_get_num_threads()));
  const Simd simd = SimdLevel();
  out.Set("simd", Napi::String::New(env, simd == Simd::kAmx ? "amx" : simd == Simd::kAvx512 ? "avx512" : simd == Simd::kAvx2Fma ? "avx2" : "baseline"));
  out.Set("bf16Dot", Napi::Boolean::New(env, HasBf16Dot()));
  return out;
}

/**
 * setThreads(n): the number of OpenBLAS threads for all later calls. The setting is
 * process-wide, so every engine calls this before each operation; it is a no-op when unchanged.
 */
Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int n = DimArg(info, 0, "setThreads", "threads");
  if (n < 1) ThrowError(env, "setThreads", "threads must be at least 1");
  if (openblas_get_num_threads() != n) openblas_set_num_threads(n);
  return env.Undefined();
}

/**
 * mapLargeAllocations(bytes) → whether it took effect (glibc only). From now on, C heap blocks of at
 * least `bytes` are mapped on their own and returned to the system when freed. glibc's default
 * raises its mmap threshold after each large free (up to 32 MiB), so that the compression's
 * many d×d and p×d buffers soon come from the heap instead, and the holes they leave between live
 * blocks stay in the process's memory: about 110 MiB at the peak of a Qwen3-30B-A3B layer.
 */
Napi::Value MapLargeAllocations(const Napi::CallbackInfo& info) {
  const int bytes = DimArg(info, 0, "mapLargeAllocations", "bytes");
#if defined(__GLIBC__)
  return Napi::Boolean::New(info.Env(), mallopt(M_MMAP_THRESHOLD, bytes) == 1);
#else
  (void)bytes;
  return Napi::Boolean::New(info.Env(), false);
#endif
}

/**
 * The revision of what the functions accept, for changes that add no function: an addon built
 * before one (a checkout updated without rebuilding it) is refused at load instead of throwing in
 * the middle of a forward pass. 2: swiGluExperts takes a prompt's BF16 experts (any rows) and
 * factored matrices. 5: causalAttention and cachedAttention take attention sinks (a trailing
 * argument an older addon would ignore without a word, attending as if there were none).
 * 6: swiGluExperts takes gpt-oss's clamped activation and biases (a trailing argument an older
 * addon would ignore, computing SwiGLU without biases). 7: transposeColumns (the BF16 release of
 * gpt-oss's expert transposes), so an addon without it is named stale by its revision too.
 * 8: BF16 matmul activations on AMX tiles and the "amx" level of RFID_MOE_NATIVE_SIMD (an older
 * addon would run the same products on dot products, and describe itself as "avx512").
 * 9: AMX's many-rows product takes A's rows in blocks (revision 8 held 12 bytes a value of A at
 * once with f32 activations: 3 GiB for a calibration batch of 65536 rows of 4096).
 * 10: gemmMxfp4 (products against MXFP4 experts kept as stored).
 * 11: gemmFp8 (products against FP8 experts kept as stored).
 * 12: swiGluExperts takes packed (FP8, MXFP4) matrices.
 * 13: cachedAttention takes each sequence's first attended position (chunked attention: a
 * trailing argument an older addon would ignore, attending to the chunks before the rows' own).
 * 14: causalAttention and cachedAttention take a value head width (MiMo-V2-Flash's values are
 * narrower than its keys: a trailing argument an older addon would ignore, reading the values at
 * the key width).
 */
Napi::Value KernelRevision(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), 14); }

}  // namespace
}  // namespace rfid

// NODE_API_MODULE pastes the function name into an identifier, so it must be unqualified.
static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  using namespace rfid;
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("kernelRevision", Napi::Function::New(env, KernelRevision, "kernelRevision"));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
  exports.Set("mapLargeAllocations", Napi::Function::New(env, MapLargeAllocations, "mapLargeAllocations"));
  exports.Set("hugePageBuffer", Napi::Function::New(env, JsHugePageBuffer, "hugePageBuffer"));
  exports.Set("mapFile", Napi::Function::New(env, JsMapFile, "mapFile"));
  exports.Set("populatePages", Napi::Function::New(env, JsPopulatePages, "populatePages"));
  exports.Set("dropPages", Napi::Function::New(env, JsDropPages, "dropPages"));
  exports.Set("gemm", Napi::Function::New(env, JsGemm, "gemm"));
  exports.Set("syrk", Napi::Function::New(env, JsSyrk, "syrk"));
  exports.Set("solveTriangular", Napi::Function::New(env, JsSolveTriangular, "solveTriangular"));
  exports.Set("cholesky", Napi::Function::New(env, JsCholesky, "cholesky"));
  exports.Set("eigSym", Napi::Function::New(env, JsEigSym, "eigSym"));
  exports.Set("eigSymTop", Napi::Function::New(env, JsEigSymTop, "eigSymTop"));
  static const char kSvd[] = "svd";
  static const char kSvdTop[] = "svdTop";
  exports.Set("svd", Napi::Function::New(env, JsSvd, "svd", const_cast<char*>(kSvd)));
  exports.Set("svdTop", Napi::Function::New(env, JsSvd, "svdTop", const_cast<char*>(kSvdTop)));
  exports.Set("singularValues", Napi::Function::New(env, JsSingularValues, "singularValues"));
  exports.Set("svdRandomized", Napi::Function::New(env, JsSvdRandomized, "svdRandomized"));
  exports.Set("gaussian", Napi::Function::New(env, JsGaussian, "gaussian"));
  exports.Set("causalSoftmax", Napi::Function::New(env, JsCausalSoftmax, "causalSoftmax"));
  exports.Set("logitStats", Napi::Function::New(env, JsLogitStats, "logitStats"));
  exports.Set("argmaxRows", Napi::Function::New(env, JsArgmaxRows, "argmaxRows"));
  exports.Set("rmsNorm", Napi::Function::New(env, JsRmsNorm, "rmsNorm"));
  exports.Set("siluMul", Napi::Function::New(env, JsSiluMul, "siluMul"));
  exports.Set("rope", Napi::Function::New(env, JsRope, "rope"));
  exports.Set("addInto", Napi::Function::New(env, JsAddInto, "addInto"));
  exports.Set("gatherRows", Napi::Function::New(env, JsGatherRows, "gatherRows"));
  exports.Set("scatterAddRows", Napi::Function::New(env, JsScatterAddRows, "scatterAddRows"));
  exports.Set("copyBlock", Napi::Function::New(env, JsCopyBlock, "copyBlock"));
  exports.Set("causalAttention", Napi::Function::New(env, JsCausalAttention, "causalAttention"));
  exports.Set("cachedAttention", Napi::Function::New(env, JsCachedAttention, "cachedAttention"));
  exports.Set("swiGluExperts", Napi::Function::New(env, JsSwiGluExperts, "swiGluExperts"));
  exports.Set("widenBf16", Napi::Function::New(env, JsWidenBf16, "widenBf16"));
  exports.Set("roundToBf16", Napi::Function::New(env, JsRoundToBf16, "roundToBf16"));
  exports.Set("byteTableRows", Napi::Function::New(env, JsByteTableRows, "byteTableRows"));
  exports.Set("addTileResidual", Napi::Function::New(env, JsAddTileResidual, "addTileResidual"));
  exports.Set("gemmBf16", Napi::Function::New(env, JsGemmBf16, "gemmBf16"));
  exports.Set("gemmMxfp4", Napi::Function::New(env, JsGemmMxfp4, "gemmMxfp4"));
  exports.Set("gemmFp8", Napi::Function::New(env, JsGemmFp8, "gemmFp8"));
  exports.Set("transposeColumns", Napi::Function::New(env, JsTransposeColumns, "transposeColumns"));
  return exports;
}

NODE_API_MODULE(rfid_moe_native, InitModule)
