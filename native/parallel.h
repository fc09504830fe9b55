// Parts of one operation on threads of our own, with OpenBLAS held to one thread meanwhile.
// Used where the work splits into independent pieces that are each too small for OpenBLAS's
// threads (the divide-and-conquer halves of eigSym, the attention heads of a batch).
#pragma once

#include <system_error>
#include <thread>
#include <vector>

extern "C" {
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
}

namespace rfid {

/** openblas_set_num_threads(1) for one scope, restoring the previous count on exit. */
class SingleThreadedBlas {
 public:
  SingleThreadedBlas() : previous_(openblas_get_num_threads()) {
    if (previous_ != 1) openblas_set_num_threads(1);
  }
  ~SingleThreadedBlas() {
    if (previous_ != 1) openblas_set_num_threads(previous_);
  }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int previous_;
};

/**
 * fn(0) … fn(parts − 1), each on its own thread (fn(0) on this one), with OpenBLAS on one
 * thread meanwhile so the parts do not also compete through OpenBLAS's own threads.
 */
template <typename Fn>
void RunParts(int parts, const Fn& fn) {
  if (parts == 1) {
    fn(0);
    return;
  }
  SingleThreadedBlas oneBlasThread;
  std::vector<std::thread> helpers;
  int started = 1;
  try {
    for (; started < parts; ++started) helpers.emplace_back(fn, started);
  } catch (const std::system_error&) {
    // No thread to be had: this thread does the parts that found none.
  }
  for (int part = started; part < parts; ++part) fn(part);
  fn(0);
  for (std::thread& h : helpers) h.join();
}

}  // namespace rfid
