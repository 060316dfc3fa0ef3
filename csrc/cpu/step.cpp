// Primitive 1: the streaming FPS step, one fused pass over x.
#include <vector>

#include "kernels.h"
#include "parallel.h"

namespace hminsel {
namespace {

// Rows [lo, hi): fold centre xc into mind and return the best of the range.
template <typename T>
Best<T> fold_rows(const T* x, int64_t d, T* mind, const T* xc, int64_t lo, int64_t hi) {
  Best<T> best = no_best<T>();
  for (int64_t i = lo; i < hi; ++i) {
    T v = mind[i];
    if (v == T(MARK)) continue;
    const T dist = sqdist(x + i * d, xc, d);
    if (dist < v) mind[i] = v = dist;
    if (beats(v, i, best)) best = {v, i};
  }
  return best;
}

// Per-thread results reduced in thread order: threads own increasing row
// ranges, so the lowest-index rule holds whatever the thread count.
template <typename T>
Best<T> reduce(const std::vector<Slot<Best<T>>>& slots) {
  Best<T> best = no_best<T>();
  for (const auto& s : slots)
    if (beats(s.item.value, s.item.index, best)) best = s.item;
  return best;
}

}  // namespace

template <typename T>
Best<T> step(const T* x, int64_t n, int64_t d, T* mind, int64_t c) {
  mind[c] = T(MARK);
  const T* xc = x + c * d;
  std::vector<Slot<Best<T>>> slots(max_threads(), {no_best<T>()});  // unused slots lose
#pragma omp parallel if (n * d >= kMinParallelWork)
  {
    const Range r = my_range(n);
    slots[thread_id()].item = fold_rows(x, d, mind, xc, r.lo, r.hi);
  }
  Best<T> best = reduce(slots);
  if (best.index < 0) return {T(MARK), -1};
  return best;
}

template <typename T>
void steps(const T* x, int64_t n, int64_t d, T* mind, int64_t c, int64_t count,
           int64_t* picks, double* values) {
  std::vector<Slot<Best<T>>> slots(max_threads(), {no_best<T>()});  // unused slots lose
  mind[c] = T(MARK);
  int64_t t = 0;
  // One region for all steps: two barriers a step instead of a thread start-up.
#pragma omp parallel if (n * d >= kMinParallelWork)
  {
    const Range r = my_range(n);
    for (int64_t s = 0; s < count; ++s) {
      const int64_t centre = c;  // read by every thread before the barrier below
      slots[thread_id()].item = fold_rows(x, d, mind, x + centre * d, r.lo, r.hi);
#pragma omp barrier
#pragma omp single
      {
        const Best<T> best = reduce(slots);
        c = best.index;
        picks[s] = best.index;
        values[s] = best.index < 0 ? MARK : static_cast<double>(best.value);
        if (c >= 0) mind[c] = T(MARK);
        t = s + 1;
      }  // implicit barrier: everyone sees c and the mark before the next fold
      if (c < 0) break;
    }
  }
  for (; t < count; ++t) {
    picks[t] = -1;
    values[t] = MARK;
  }
}

template Best<float> step(const float*, int64_t, int64_t, float*, int64_t);
template Best<double> step(const double*, int64_t, int64_t, double*, int64_t);
template void steps(const float*, int64_t, int64_t, float*, int64_t, int64_t, int64_t*, double*);
template void steps(const double*, int64_t, int64_t, double*, int64_t, int64_t, int64_t*, double*);

}  // namespace hminsel
