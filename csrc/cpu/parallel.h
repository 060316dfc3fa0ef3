// Thin OpenMP helpers; without OpenMP everything runs on one thread.
#pragma once

#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace hminsel {

// Below this many row elements a pass is not worth waking the team
// (~10-30 us of work; an OpenMP fork/join costs a few us).
constexpr int64_t kMinParallelWork = 1 << 16;

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

inline int num_threads() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

struct Range {
  int64_t lo, hi;
};

// This thread's contiguous share of [0, n): thread t owns a lower range than
// thread t + 1, and the split is the same in every pass of a region.
inline Range my_range(int64_t n) {
  const int64_t t = thread_id(), p = num_threads();
  return {n * t / p, n * (t + 1) / p};
}

// One per thread, a cache line each, so threads do not share lines.
template <typename Item>
struct alignas(64) Slot {
  Item item;
};

}  // namespace hminsel
