// Threads kept between calls for the products of a decoding step.
//
// Why not RunParts (parallel.h): it starts its threads for each call, about 20-50 µs each, which
// is as long as one expert's product (a few hundred KiB of BF16 weights read in 20-200 µs). Why
// not OpenBLAS's threads: the decoding products are this addon's own kernels (small_gemm.cc),
// and OpenBLAS has no call to run arbitrary work on its threads. Why not OpenMP: it would tie the
// build to libgomp and its spin settings, for one loop.
//
// A call cuts its work into more pieces than threads, and every thread (the caller too) takes the
// next piece until none is left. So a worker that the OS does not schedule (a busy machine) costs
// at most the piece it holds, never the call: the caller takes the pieces it would have taken.
// Workers that find no work spin for a short while (a decoding step issues its products tens of
// microseconds apart) and then sleep on a condition variable.
//
// The pool serves one call at a time. A call made while it is busy (from another thread: an
// attention unit on RunParts' threads, a worker thread's engine) runs on its caller alone, so no
// call waits for another.
#pragma once

#include <cstddef>

namespace rfid {

/** fn(ctx, piece) for one piece of a call's work. */
using PieceFn = void (*)(void* ctx, int piece);

/**
 * Runs fn(ctx, 0 … pieces − 1) on up to `threads` threads (the caller and threads − 1 pool
 * workers, started on first use and kept), each piece exactly once; returns when all are done.
 * threads ≤ 1, one piece, or a pool busy with another call: everything on the caller.
 */
void RunPieces(int threads, int pieces, PieceFn fn, void* ctx);

/** The same for a callable: fn(piece). */
template <typename Fn>
void RunPieces(int threads, int pieces, const Fn& fn) {
  RunPieces(
      threads, pieces, [](void* ctx, int piece) { (*static_cast<const Fn*>(ctx))(piece); }, const_cast<Fn*>(&fn));
}

}  // namespace rfid
