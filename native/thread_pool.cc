// The pool behind RunPieces (thread_pool.h).
#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <system_error>
#include <thread>

namespace rfid {

namespace {

/** How long an idle worker polls for the next call before it sleeps: a decoding step issues its
    products tens of microseconds apart, and waking a sleeping thread costs about as much. */
constexpr auto kSpin = std::chrono::microseconds(200);

/** At most this many workers, whatever a caller asks for. */
constexpr int kMaxWorkers = 255;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

class Pool {
 public:
  void Run(int threads, int pieces, PieceFn fn, void* ctx) {
    if (threads <= 1 || pieces <= 1 || busy_.exchange(true, std::memory_order_acquire)) {
      for (int p = 0; p < pieces; ++p) fn(ctx, p);
      return;
    }
    const int helpers = std::min(threads - 1, Grow(std::min(threads - 1, kMaxWorkers)));
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fn_ = fn;
      ctx_ = ctx;
      pieces_ = pieces;
      seats_ = std::min(helpers, pieces - 1);
      next_.store(0, std::memory_order_relaxed);
      open_ = true;
      generation_.fetch_add(1, std::memory_order_release);
      if (sleepers_ > 0) wake_.notify_all();
    }
    Work(fn, ctx, pieces);
    {
      // no worker joins after this; those that joined finish the piece they hold
      std::lock_guard<std::mutex> lock(mutex_);
      open_ = false;
    }
    while (active_.load(std::memory_order_acquire) != 0) CpuRelax();
    busy_.store(false, std::memory_order_release);
  }

 private:
  /** Takes pieces until none is left. */
  void Work(PieceFn fn, void* ctx, int pieces) {
    for (;;) {
      const int p = next_.fetch_add(1, std::memory_order_relaxed);
      if (p >= pieces) return;
      fn(ctx, p);
    }
  }

  /** Starts workers up to `wanted` (as many as the system gives); returns how many there are. */
  int Grow(int wanted) {
    while (workers_ < wanted) {
      try {
        std::thread([this] { WorkerLoop(); }).detach();
      } catch (const std::system_error&) {
        break;  // no thread to be had: the caller and the workers there are do the work
      }
      ++workers_;
    }
    return workers_;
  }

  void WorkerLoop() {
    uint64_t seen = generation_.load(std::memory_order_acquire);
    for (;;) {
      uint64_t now = WaitForCall(seen);
      seen = now;
      PieceFn fn;
      void* ctx;
      int pieces;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        // a call that has closed, or moved on to a later generation, or has its seats taken
        if (!open_ || generation_.load(std::memory_order_relaxed) != now || seats_ == 0) continue;
        --seats_;
        active_.fetch_add(1, std::memory_order_relaxed);
        fn = fn_;
        ctx = ctx_;
        pieces = pieces_;
      }
      Work(fn, ctx, pieces);
      active_.fetch_sub(1, std::memory_order_release);
    }
  }

  /** The generation of the next call after `seen`: polled for kSpin, then slept for. */
  uint64_t WaitForCall(uint64_t seen) {
    const auto until = std::chrono::steady_clock::now() + kSpin;
    for (int i = 0;; ++i) {
      const uint64_t g = generation_.load(std::memory_order_acquire);
      if (g != seen) return g;
      CpuRelax();
      if ((i & 63) == 63 && std::chrono::steady_clock::now() >= until) break;
    }
    std::unique_lock<std::mutex> lock(mutex_);
    ++sleepers_;
    wake_.wait(lock, [&] { return generation_.load(std::memory_order_relaxed) != seen; });
    --sleepers_;
    return generation_.load(std::memory_order_relaxed);
  }

  std::atomic<bool> busy_{false};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> next_{0};
  std::atomic<int> active_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  // guarded by mutex_
  PieceFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int pieces_ = 0;
  int seats_ = 0;
  bool open_ = false;
  int sleepers_ = 0;
  // touched only by the caller holding busy_
  int workers_ = 0;
};

}  // namespace

void RunPieces(int threads, int pieces, PieceFn fn, void* ctx) {
  // never destroyed: its detached workers may still be waiting when the process exits
  static Pool* const pool = new Pool();
  pool->Run(threads, pieces, fn, ctx);
}

}  // namespace rfid
