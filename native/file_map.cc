// Checkpoint files mapped into memory, for a served model's weights kept as stored.
//
// Why: a served model's load was a read() of every tensor into fresh memory. The copy itself is
// cheap; the fresh memory is not. Each 4 KiB page of it costs a fault on first touch, and under a
// hypervisor a fault costs microseconds (BENCHMARKS.md, "Cold start"), so a 2.5 GB model took
// 2.3 s to load from the page cache on the 2-core VM where the benchmarks run. Mapped, the same
// file's pages are the page cache's own: the load is the page-table work alone (the kernel maps
// up to 16 pages a fault), about 0.1 s for the same file, and the model's memory is not held
// twice (once by the page cache, once by the process). Several processes serving one model share
// it.
//
// The mapping is private and read-only. Private: pages are never written back to the file.
// Read-only: a tensor handed out as a view of the file is never written in place by design, and a
// write would be a bug that must not silently change what a later read of the same tensor sees; it
// faults instead. The mapping is unmapped when JavaScript's collector frees the ArrayBuffer, the
// last view of it included.
//
// populatePages() faults a range in on a libuv worker thread, so the disk reads of a model that is
// not in the page cache do not block the event loop, and a file cut short since it was opened is a
// rejected promise, not a SIGBUS (MADV_POPULATE_READ reports it; before Linux 5.14 the range is
// touched page by page instead). dropPages() hands a range's pages back (MADV_DONTNEED): the
// process's resident memory falls at once when a model is unloaded, without waiting for the
// collector, and a page touched again afterwards is read from the file again, so dropping is
// always safe. Both refuse memory that is not one of these mappings: MADV_DONTNEED on anonymous
// memory would zero it.
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "args.h"
#include "ops.h"

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#endif

namespace rfid {

namespace {

#if defined(__linux__)
/** Live mappings: start address → mapped length (a whole number of pages). */
std::mutex mappingsLock;
std::map<uintptr_t, size_t> mappings;

size_t PageBytes() {
  const long page = sysconf(_SC_PAGESIZE);
  return page > 0 ? static_cast<size_t>(page) : 4096;
}

/** True when [start, start + length) lies inside one live mapping. */
bool InsideMapping(uintptr_t start, size_t length) {
  std::lock_guard<std::mutex> guard(mappingsLock);
  auto it = mappings.upper_bound(start);
  if (it == mappings.begin()) return false;
  --it;
  return start >= it->first && start + length <= it->first + it->second;
}

/** The page-aligned range that covers `bytes` (inside its mapping, which is whole pages). */
void PageRange(const uint8_t* data, size_t length, uintptr_t* from, size_t* bytes) {
  const size_t page = PageBytes();
  const uintptr_t start = reinterpret_cast<uintptr_t>(data) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + length + page - 1) & ~(page - 1);
  *from = start;
  *bytes = end - start;
}
#endif

/** The bytes of a Uint8Array argument that must view one of this file's mappings. */
struct MappedRange {
  const uint8_t* data;
  size_t length;
};

MappedRange MappedRangeArg(const Napi::CallbackInfo& info, const char* op) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowError(env, op, "expects a Uint8Array viewing a mapped file");
  }
  Napi::Uint8Array view = info[0].As<Napi::Uint8Array>();
  MappedRange range{view.Data(), view.ByteLength()};
#if defined(__linux__)
  if (range.length > 0 && !InsideMapping(reinterpret_cast<uintptr_t>(range.data), range.length)) {
    ThrowError(env, op, "the array does not view a file mapped by mapFile");
  }
#endif
  return range;
}

class PopulateWorker : public Napi::AsyncWorker {
 public:
  PopulateWorker(Napi::Env env, const uint8_t* data, size_t length, Napi::Object keepAlive)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), data_(data), length_(length) {
    // the mapping must outlive the work: hold the array until OnOK/OnError
    keepAlive_ = Napi::Persistent(keepAlive);
  }

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
#if defined(__linux__)
    if (length_ == 0) return;
    uintptr_t from;
    size_t bytes;
    PageRange(data_, length_, &from, &bytes);
    if (madvise(reinterpret_cast<void*>(from), bytes, MADV_POPULATE_READ) == 0) return;
    const int err = errno;
    if (err == EINVAL) {
      // a kernel before 5.14: touch one byte a page (a truncated file is a SIGBUS here)
      volatile uint8_t sink = 0;
      const size_t page = PageBytes();
      for (size_t at = 0; at < bytes; at += page) sink ^= reinterpret_cast<const uint8_t*>(from)[at];
      (void)sink;
      return;
    }
    SetError(err == EFAULT || err == EIO ? "the file's pages could not be read (was it cut short or changed since it was opened?): " + std::string(std::strerror(err))
                                         : "madvise(MADV_POPULATE_READ) failed: " + std::string(std::strerror(err)));
#endif
  }

  void OnOK() override {
    keepAlive_.Reset();
    deferred_.Resolve(Env().Undefined());
  }

  void OnError(const Napi::Error& error) override {
    keepAlive_.Reset();
    deferred_.Reject(error.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference keepAlive_;
  const uint8_t* data_;
  size_t length_;
};

}  // namespace

/**
 * mapFile(fd, bytes): the first `bytes` bytes of the open file `fd` as an ArrayBuffer over a
 * private, read-only mapping, or null where mapping is not available (not Linux, or mmap failed):
 * the caller reads as usual then.
 */
Napi::Value JsMapFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const double fd = NumberArg(info, 0, "mapFile", "fd");
  const double requested = NumberArg(info, 1, "mapFile", "bytes");
  if (!(fd >= 0) || fd != static_cast<double>(static_cast<int>(fd))) ThrowError(env, "mapFile", "fd must be an open file descriptor");
  if (!(requested >= 1) || requested > 9007199254740991.0 || requested != static_cast<double>(static_cast<uint64_t>(requested))) {
    ThrowError(env, "mapFile", "bytes must be a positive integer");
  }
#if defined(__linux__)
  const size_t bytes = static_cast<size_t>(requested);
  const size_t page = PageBytes();
  const size_t length = (bytes + page - 1) & ~(page - 1);
  void* start = mmap(nullptr, length, PROT_READ, MAP_PRIVATE, static_cast<int>(fd), 0);
  if (start == MAP_FAILED) return env.Null();
  {
    std::lock_guard<std::mutex> guard(mappingsLock);
    mappings[reinterpret_cast<uintptr_t>(start)] = length;
  }
  auto unmap = [](void* at) {
    size_t length = 0;
    {
      std::lock_guard<std::mutex> guard(mappingsLock);
      auto it = mappings.find(reinterpret_cast<uintptr_t>(at));
      if (it == mappings.end()) return;
      length = it->second;
      mappings.erase(it);
    }
    munmap(at, length);
  };
  try {
    return Napi::ArrayBuffer::New(env, start, bytes, [unmap](Napi::Env, void* data) { unmap(data); });
  } catch (const Napi::Error&) {
    // a runtime that refuses memory it did not allocate (V8's sandbox, as in Electron)
    env.GetAndClearPendingException();
    unmap(start);
    return env.Null();
  }
#else
  return env.Null();
#endif
}

/** populatePages(view): a promise that resolves once every page under `view` is in memory. */
Napi::Value JsPopulatePages(const Napi::CallbackInfo& info) {
  const MappedRange range = MappedRangeArg(info, "populatePages");
  auto* worker = new PopulateWorker(info.Env(), range.data, range.length, info[0].As<Napi::Object>());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

/** dropPages(view): hands the pages under `view` back to the system; touched again, they are read from the file again. */
Napi::Value JsDropPages(const Napi::CallbackInfo& info) {
  const MappedRange range = MappedRangeArg(info, "dropPages");
#if defined(__linux__)
  if (range.length > 0) {
    uintptr_t from;
    size_t bytes;
    PageRange(range.data, range.length, &from, &bytes);
    (void)madvise(reinterpret_cast<void*>(from), bytes, MADV_DONTNEED);
  }
#endif
  return info.Env().Undefined();
}

}  // namespace rfid
