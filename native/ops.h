// The JavaScript-facing entry points of the addon (one per Engine primitive).
// Argument order and meaning are documented at each definition and mirrored by
// src/engine/native.ts (the `NativeBinding` interface).
#pragma once

#include <napi.h>

namespace rfid {

// blas_ops.cc
Napi::Value JsGemm(const Napi::CallbackInfo& info);
Napi::Value JsSyrk(const Napi::CallbackInfo& info);
Napi::Value JsSolveTriangular(const Napi::CallbackInfo& info);

// factorizations.cc
Napi::Value JsCholesky(const Napi::CallbackInfo& info);
Napi::Value JsEigSym(const Napi::CallbackInfo& info);
Napi::Value JsSvd(const Napi::CallbackInfo& info);
Napi::Value JsSingularValues(const Napi::CallbackInfo& info);

// eig_sym_top.cc
Napi::Value JsEigSymTop(const Napi::CallbackInfo& info);

// randomized_svd.cc
Napi::Value JsSvdRandomized(const Napi::CallbackInfo& info);
Napi::Value JsGaussian(const Napi::CallbackInfo& info);

// softmax.cc
Napi::Value JsCausalSoftmax(const Napi::CallbackInfo& info);
Napi::Value JsLogitStats(const Napi::CallbackInfo& info);
Napi::Value JsArgmaxRows(const Napi::CallbackInfo& info);
Napi::Value JsHugePageBuffer(const Napi::CallbackInfo& info);

// file_map.cc
Napi::Value JsMapFile(const Napi::CallbackInfo& info);
Napi::Value JsPopulatePages(const Napi::CallbackInfo& info);
Napi::Value JsDropPages(const Napi::CallbackInfo& info);

// pointwise.cc
Napi::Value JsRmsNorm(const Napi::CallbackInfo& info);
Napi::Value JsSiluMul(const Napi::CallbackInfo& info);
Napi::Value JsRope(const Napi::CallbackInfo& info);
Napi::Value JsAddInto(const Napi::CallbackInfo& info);
Napi::Value JsWidenBf16(const Napi::CallbackInfo& info);
Napi::Value JsRoundToBf16(const Napi::CallbackInfo& info);
Napi::Value JsByteTableRows(const Napi::CallbackInfo& info);

// attention.cc
Napi::Value JsCausalAttention(const Napi::CallbackInfo& info);
Napi::Value JsCachedAttention(const Napi::CallbackInfo& info);
Napi::Value JsSwiGluExperts(const Napi::CallbackInfo& info);

// rows.cc
Napi::Value JsGatherRows(const Napi::CallbackInfo& info);
Napi::Value JsScatterAddRows(const Napi::CallbackInfo& info);
Napi::Value JsCopyBlock(const Napi::CallbackInfo& info);
Napi::Value JsAddTileResidual(const Napi::CallbackInfo& info);
/** addTileResidual's work on checked arguments (rows.cc): out (rows × p) += x · Rᵀ, 1 ≤ q ≤ p·d. */
void AddTileResidual(int d, int p, int q, const float* eta, const float* x, int rows, float* out);
Napi::Value JsGemmBf16(const Napi::CallbackInfo& info);
Napi::Value JsGemmMxfp4(const Napi::CallbackInfo& info);
Napi::Value JsGemmFp8(const Napi::CallbackInfo& info);

// transpose.cc
Napi::Value JsTransposeColumns(const Napi::CallbackInfo& info);

}  // namespace rfid
