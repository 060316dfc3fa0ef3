// Primitive 3: greedy FPS steps on the head of the exact lazy algorithm.
//
// One pass a pick: fold the pick accepted last into h and find the best head
// row. The passes run in `pick_loop` (parallel.h): chunks of rows claimed from
// a counter, no barrier, and a thread the OS deschedules costs one chunk, not
// a time slice. The result does not depend on the thread count: each chunk's
// best is a function of the chunk alone, and the lead reduces the chunks in
// row order with the lowest-id rule.
#include <algorithm>

#include "kernels.h"
#include "parallel.h"

namespace hminsel {
namespace {

// Below this much work per pass (M * d) the loop runs on the calling thread:
// a pass of ~10 us does not repay the claims.
constexpr int64_t kMinHeadParallel = int64_t(1) << 16;
// Row elements a chunk: ~3-6 us of work, dozens of chunks a pass at M = 2048,
// d = 384, so a late helper leaves little to redo.
constexpr int64_t kChunkWork = int64_t(1) << 16;

// Head rows [lo, hi): fold row xb (nullptr: nothing to fold) into h and
// return the offset (from lo) of the best row by (h, hidx), MARK rows included.
template <typename T>
int64_t fold_head(const T* xh, int64_t d, T* h, const int64_t* hidx, const T* xb, int64_t lo,
                  int64_t hi) {
  Best<T> best = no_best<T>();
  int64_t at = -1;
  for (int64_t i = lo; i < hi; ++i) {
    T v = load_relaxed(h + i);
    if (xb && v != T(MARK)) {
      const T dist = sqdist(xh + i * d, xb, d);
      if (dist < v) v = lower_to(h + i, dist);
    }
    if (beats(v, hidx[i], best)) best = {v, hidx[i]}, at = i - lo;
  }
  return at;
}

}  // namespace

template <typename T>
int64_t head_greedy(const T* xh, int64_t m, int64_t d, T* h, const int64_t* hidx,
                    double tau, int64_t tau_idx, int64_t budget, int64_t* picks,
                    double* values) {
  if (m <= 0 || budget <= 0) return 0;
  const int64_t rows = std::max<int64_t>(1, kChunkWork / std::max<int64_t>(d, 1));
  const int64_t chunks = (m + rows - 1) / rows;
  const int threads = m * d >= kMinHeadParallel ? max_threads() : 1;
  int64_t count = 0;
  // Pass p folds the pick of pass p - 1: picks[p - 2] (pass 1 folds nothing).
  auto fold = [&](int64_t c, uint64_t pass) {
    const T* xb = pass == 1 ? nullptr : xh + picks[pass - 2] * d;
    const int64_t lo = c * rows;
    return fold_head(xh, d, h, hidx, xb, lo, std::min(m, lo + rows));
  };
  auto next = [&](uint64_t, const int64_t* at) {
    if (count == budget) return false;  // the last pick is folded into h: stop after its pass
    Best<T> best = no_best<T>();
    int64_t pos = -1;
    for (int64_t c = 0; c < chunks; ++c) {  // row order: ties keep the lowest id
      if (at[c] < 0) continue;
      const int64_t i = c * rows + at[c];
      const T v = load_relaxed(h + i);
      if (beats(v, hidx[i], best)) best = {v, hidx[i]}, pos = i;
    }
    const double v = best.value;
    const bool global = v > tau || (v == tau && best.index < tau_idx);
    if (pos < 0 || v == MARK || !global) return false;
    picks[count] = pos;
    values[count] = v;
    ++count;
    lower_to(h + pos, T(MARK));
    return true;
  };
  pick_loop(chunks, threads, fold, next);
  return count;
}

template int64_t head_greedy(const float*, int64_t, int64_t, float*, const int64_t*, double,
                             int64_t, int64_t, int64_t*, double*);
template int64_t head_greedy(const double*, int64_t, int64_t, double*, const int64_t*, double,
                             int64_t, int64_t, int64_t*, double*);

}  // namespace hminsel
