// Seeded standard-normal generator for the randomized-SVD sketch: xoshiro256** seeded through
// splitmix64, Box–Muller for the normals. Deterministic for a seed on every platform.
#pragma once

#include <cmath>
#include <cstdint>

namespace rfid {

class GaussianSource {
 public:
  explicit GaussianSource(uint64_t seed) {
    uint64_t x = seed;
    for (uint64_t& word : state_) word = SplitMix64(x);
  }

  /** Fills out[0..count) with independent N(0, 1) samples. */
  template <typename T>
  void Fill(T* out, size_t count) {
    constexpr double kTwoPi = 6.283185307179586476925286766559;
    size_t i = 0;
    while (i < count) {
      // u1 in (0, 1] so the logarithm is finite; u2 in [0, 1).
      const double u1 = (static_cast<double>(Next() >> 11) + 1.0) * 0x1.0p-53;
      const double u2 = static_cast<double>(Next() >> 11) * 0x1.0p-53;
      const double radius = std::sqrt(-2.0 * std::log(u1));
      out[i++] = static_cast<T>(radius * std::cos(kTwoPi * u2));
      if (i < count) out[i++] = static_cast<T>(radius * std::sin(kTwoPi * u2));
    }
  }

 private:
  static uint64_t SplitMix64(uint64_t& x) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  static uint64_t Rotl(uint64_t v, int k) { return (v << k) | (v >> (64 - k)); }

  uint64_t Next() {
    const uint64_t result = Rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = Rotl(state_[3], 45);
    return result;
  }

  uint64_t state_[4];
};

}  // namespace rfid
