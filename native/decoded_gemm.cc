// See decoded_gemm.h.
#include "decoded_gemm.h"

#include <algorithm>
#include <vector>

#include "bf16_gemm.h"
#include "small_gemm.h"
#include "thread_pool.h"

namespace rfid {

namespace {
/** Bytes of BF16 a panel of B decodes to (in L2 while the kernels read it). */
constexpr size_t kPanelBytes = 256 * 1024;
}  // namespace

void GemmTransBDecoded(int m, int n, int k, const float* a, const DecodeBRows& decode, float beta, float* out, int threads,
                       MatmulActivations activations) {
  const int panelRows = static_cast<int>(std::max<size_t>(1, std::min<size_t>(n, kPanelBytes / (2 * static_cast<size_t>(k)))));
  const int panels = (n + panelRows - 1) / panelRows;
  if (m > kSmallRowsMax) {
    // A prompt's or a calibration batch's rows: B decoded whole (a panel a thread at a time), then
    // gemmBf16's own product on it (AMX tiles, the tiled kernels or sgemm's panels, whichever wins
    // there). Decoding costs one pass over B against the product's m passes over its values. The
    // buffer stays with the thread: a fresh one per call would come back as untouched pages
    // (eig_sym.cc).
    static thread_local std::vector<uint16_t> whole;
    if (whole.size() < static_cast<size_t>(n) * k) whole.resize(static_cast<size_t>(n) * k);
    // the caller's buffer, by pointer: inside the pieces `whole` would name each pool thread's own
    uint16_t* decoded = whole.data();
    RunPieces(threads, panels, [&](int u) {
      const int j0 = u * panelRows;
      decode(j0, std::min(panelRows, n - j0), decoded + static_cast<size_t>(j0) * k);
    });
    GemmTransBBf16Along(Bf16PathFor(m, n, k, threads, activations), m, n, k, a, decoded, beta, out, threads, activations);
    return;
  }
  // A decoding step's few rows: each panel decoded into L2 and multiplied there at once. With BF16
  // activations A is rounded first, as gemmBf16 rounds it for the f32 kernels: the products of the
  // rounded values are exact in f32 either way.
  if (activations == MatmulActivations::kBf16) a = RoundedRows(m, k, a);
  RunPieces(threads, panels, [&](int u) {
    // kept with the thread between calls, as bf16_gemm.cc's panels are
    static thread_local std::vector<uint16_t> panel;
    if (panel.size() < static_cast<size_t>(panelRows) * k) panel.resize(static_cast<size_t>(panelRows) * k);
    const int j0 = u * panelRows;
    const int rows = std::min(panelRows, n - j0);
    decode(j0, rows, panel.data());
    SmallRowsGemmTransBBf16(m, rows, k, 1.0f, a, k, panel.data(), k, beta, out + j0, n, 1);
  });
}

}  // namespace rfid
