// Primitive 3: greedy FPS steps on the head of the exact lazy algorithm.
#include <vector>

#include "kernels.h"
#include "parallel.h"

namespace hminsel {
namespace {

// Below this much work per accepted pick (M * d) the fold runs on one thread.
// Two barriers a pick; on a quiet 2-core AVX-512 machine two threads were
// already 1.7x faster at M * d = 2^16 (6.1 -> 3.6 us a pick) and 2x at
// 2048 x 384, but with a core taken by another process a barrier can wait a
// whole time slice (we saw ms a pick), which is why the floor is not lower.
constexpr int64_t kMinHeadParallel = int64_t(1) << 16;

// Best head point: largest h, ties to the lowest *global* id hidx.
template <typename T>
struct HeadBest {
  Best<T> key;  // (h, hidx)
  int64_t pos;  // head position
};

template <typename T>
void consider(HeadBest<T>& best, T v, int64_t id, int64_t pos) {
  if (beats(v, id, best.key)) best = {{v, id}, pos};
}

// Head rows [lo, hi): fold row xb (nullptr: nothing to fold) into h and
// return the best of the range, MARK entries included.
template <typename T>
HeadBest<T> fold_head(const T* xh, int64_t d, T* h, const int64_t* hidx, const T* xb,
                      int64_t lo, int64_t hi) {
  HeadBest<T> best = {no_best<T>(), -1};
  for (int64_t i = lo; i < hi; ++i) {
    T v = h[i];
    if (xb && v != T(MARK)) {
      const T dist = sqdist(xh + i * d, xb, d);
      if (dist < v) h[i] = v = dist;
    }
    consider(best, v, hidx[i], i);
  }
  return best;
}

}  // namespace

template <typename T>
int64_t head_greedy(const T* xh, int64_t m, int64_t d, T* h, const int64_t* hidx,
                    double tau, int64_t tau_idx, int64_t budget, int64_t* picks,
                    double* values) {
  std::vector<Slot<HeadBest<T>>> slots(max_threads(), {{no_best<T>(), -1}});  // unused slots lose
  int64_t count = 0;
  bool stop = false;
  const T* xb = nullptr;  // row accepted last, folded in the next pass
#pragma omp parallel if (m * d >= kMinHeadParallel)
  {
    const Range r = my_range(m);
    while (true) {
      slots[thread_id()].item = fold_head(xh, d, h, hidx, xb, r.lo, r.hi);
#pragma omp barrier
#pragma omp single
      {
        HeadBest<T> best = {no_best<T>(), -1};
        for (const auto& s : slots) consider(best, s.item.key.value, s.item.key.index, s.item.pos);
        const double v = best.key.value;
        const bool global = v > tau || (v == tau && best.key.index < tau_idx);
        stop = count == budget || best.pos < 0 || v == MARK || !global;
        if (!stop) {
          picks[count] = best.pos;
          values[count] = v;
          ++count;
          h[best.pos] = T(MARK);
          xb = xh + best.pos * d;
        }
      }  // implicit barrier: every thread sees stop, xb and the mark
      if (stop) break;
    }
  }
  return count;
}

template int64_t head_greedy(const float*, int64_t, int64_t, float*, const int64_t*, double,
                             int64_t, int64_t, int64_t*, double*);
template int64_t head_greedy(const double*, int64_t, int64_t, double*, const int64_t*, double,
                             int64_t, int64_t, int64_t*, double*);

}  // namespace hminsel
