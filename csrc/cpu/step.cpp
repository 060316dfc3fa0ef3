// Primitive 1: the streaming FPS step, one fused pass over x.
#include <vector>

#include "kernels.h"
#include "parallel.h"

namespace hminsel {
namespace {

// Rows [lo, hi): fold centre xc into mind and return the best of the range.
template <typename T>
Best<T> fold_any(const T* x, int64_t d, T* mind, const T* xc, int64_t lo, int64_t hi) {
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

// The same for a compile-time d = D (point clouds): a branch-free block of
// rows the compiler vectorises, then the block's first maximum. Blocks run in
// row order, so only a strictly larger block maximum replaces the best.
template <typename T, int D>
Best<T> fold_small(const T* x, T* mind, const T* xc, int64_t lo, int64_t hi) {
  constexpr int64_t B = 256;
  T c[D];
  for (int j = 0; j < D; ++j) c[j] = xc[j];
  Best<T> best = no_best<T>();
  for (int64_t i0 = lo; i0 < hi; i0 += B) {
    const int64_t nb = hi - i0 < B ? hi - i0 : B;
    T* m = mind + i0;
    const T* rows = x + i0 * D;
    T top = T(MARK);
    for (int64_t r = 0; r < nb; ++r) {
      const T dist = sqdist_small<T, D>(rows + r * D, c);
      const T v = m[r] == T(MARK) ? T(MARK) : (dist < m[r] ? dist : m[r]);
      m[r] = v;
      top = v > top ? v : top;
    }
    if (top != T(MARK) && top > best.value) {
      for (int64_t r = 0; r < nb; ++r)
        if (m[r] == top) {
          best = {top, i0 + r};
          break;
        }
    }
  }
  return best;
}

template <typename T>
Best<T> fold_rows(const T* x, int64_t d, T* mind, const T* xc, int64_t lo, int64_t hi) {
  switch (d) {  // point clouds and other tiny d
    case 2: return fold_small<T, 2>(x, mind, xc, lo, hi);
    case 3: return fold_small<T, 3>(x, mind, xc, lo, hi);
    case 4: return fold_small<T, 4>(x, mind, xc, lo, hi);
    default: return fold_any(x, d, mind, xc, lo, hi);
  }
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
