// Large buffers (checkpoint tensors as they are read) in memory that Linux may back with 2 MiB
// pages (transparent huge pages, "madvise" mode: the default of Ubuntu, Debian and others).
//
// Why: a model's load is mostly the first touch of its fresh memory. Every 4 KiB page of a new
// buffer costs a fault when read() first writes to it, and under a hypervisor a fault costs
// several microseconds (BENCHMARKS.md, "Cold start"): a 200 MiB read into a fresh 4 KiB-paged
// buffer took ~850 ms on the 2-core VM where the benchmarks run, into a buffer advised to use huge
// pages ~350 ms, and 21 ms once its pages existed. One fault per 2 MiB instead of 512.
//
// The buffer is an anonymous mapping of the tensor's size (rounded up to a 4 KiB page) starting
// on a 2 MiB boundary, so every whole 2 MiB of it can be one huge page and its tail keeps small
// pages: no memory beyond the tensor's own is held (a 3 MiB tensor: one huge page and 1 MiB of
// small ones). It is returned to the system (munmap) when JavaScript's garbage collector frees the
// ArrayBuffer, and its size is reported to V8 as external memory meanwhile, so that holding it
// counts towards the collector's decisions as an ordinary ArrayBuffer's memory does.
//
// Each buffer is a mapping of its own, and the kernel limits a process's mappings
// (vm.max_map_count, 65530 by default): a Qwen3-235B-A22B checkpoint alone has ~36,000 expert
// matrices of 12 MiB. So at most a quarter of that limit is used here (RFID_MOE_HUGE_PAGE_MAPPINGS
// sets another cap); beyond it the reader allocates as usual (null below), and the rest of the
// process keeps the mappings it needs.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <fstream>

#include "args.h"
#include "ops.h"

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace rfid {

namespace {

#if defined(__linux__)
constexpr size_t kHugePage = size_t{2} << 20;

struct Mapping {
  void* start;
  size_t length;
};

/** Rounds up to a multiple of `unit` (a power of two). */
size_t RoundUp(size_t x, size_t unit) { return (x + unit - 1) & ~(unit - 1); }

/** Buffers handed out and not yet freed. */
std::atomic<int64_t> live{0};

/** The most buffers alive at once: RFID_MOE_HUGE_PAGE_MAPPINGS, else a quarter of vm.max_map_count. */
int64_t MappingCap() {
  static const int64_t cap = [] {
    if (const char* v = std::getenv("RFID_MOE_HUGE_PAGE_MAPPINGS")) {
      char* end = nullptr;
      const long long n = std::strtoll(v, &end, 10);
      if (end != v && *end == '\0' && n >= 0) return static_cast<int64_t>(n);
    }
    long long limit = 65530;
    std::ifstream in("/proc/sys/vm/max_map_count");
    if (!(in >> limit) || limit <= 0) limit = 65530;
    return static_cast<int64_t>(limit / 4);
  }();
  return cap;
}
#endif

}  // namespace

/**
 * hugePageBuffer(bytes): an ArrayBuffer of `bytes` bytes (zero-filled) in memory advised to use
 * huge pages, or null where that is not available (not Linux, the mapping failed, or MappingCap()
 * buffers are alive): the caller then allocates as usual.
 */
Napi::Value JsHugePageBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const double requested = NumberArg(info, 0, "hugePageBuffer", "bytes");
  if (!(requested >= 1) || requested > 9007199254740991.0 || requested != static_cast<double>(static_cast<uint64_t>(requested))) {
    ThrowError(env, "hugePageBuffer", "bytes must be a positive integer");
  }
#if defined(__linux__)
  const size_t bytes = static_cast<size_t>(requested);
  if (live.fetch_add(1) >= MappingCap()) {
    live.fetch_sub(1);
    return env.Null();
  }
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE) > 0 ? sysconf(_SC_PAGESIZE) : 4096);
  const size_t length = RoundUp(bytes, page);
  // map a huge page more than needed, keep the part that starts on a 2 MiB boundary
  const size_t reserve = length + kHugePage;
  void* base = mmap(nullptr, reserve, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    live.fetch_sub(1);
    return env.Null();
  }
  const uintptr_t raw = reinterpret_cast<uintptr_t>(base);
  const uintptr_t aligned = RoundUp(raw, kHugePage);
  if (aligned > raw) munmap(base, aligned - raw);
  const uintptr_t end = aligned + length;
  if (raw + reserve > end) munmap(reinterpret_cast<void*>(end), raw + reserve - end);
  void* start = reinterpret_cast<void*>(aligned);
  // advice only: where transparent huge pages are off, the mapping keeps small pages and works the same
  (void)madvise(start, length, MADV_HUGEPAGE);
  Mapping* mapping = new Mapping{start, length};
  Napi::ArrayBuffer buffer;
  try {
    buffer = Napi::ArrayBuffer::New(
        env, start, bytes,
        [](Napi::Env finalizeEnv, void*, Mapping* m) {
          munmap(m->start, m->length);
          live.fetch_sub(1);
          Napi::MemoryManagement::AdjustExternalMemory(finalizeEnv, -static_cast<int64_t>(m->length));
          delete m;
        },
        mapping);
  } catch (const Napi::Error&) {
    // a runtime that refuses memory it did not allocate (V8's sandbox, as in Electron): the
    // mapping is ours to return, and the reader allocates as usual
    env.GetAndClearPendingException();
    munmap(start, length);
    live.fetch_sub(1);
    delete mapping;
    return env.Null();
  }
  Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(length));
  return buffer;
#else
  return env.Null();
#endif
}

}  // namespace rfid
