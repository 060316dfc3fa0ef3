// Batched / ragged streaming FPS: many independent problems in one call.
//
// Problem p is rows ptr[p] .. ptr[p + 1] of x. One thread runs one
// problem at a time (dynamic schedule, largest problems first), each a plain
// sequential streaming FPS: mind starts at +inf, a picked point is marked,
// every distance comes from sqdist (common.h), so each value is bit-identical
// to what the `step` kernel computes on that problem alone, and ties go to the
// lowest index. Small d (the point-cloud case, d = 2, 3) is instantiated with a
// compile-time d: the same sqdist, inlined, folds to a few exact operations.
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <limits>
#include <vector>

#include "common.h"
#include "parallel.h"

namespace hminsel {
namespace {

// Values in mind are >= +0 or MARK (-1), never NaN: such floats order like
// their bit patterns read as signed integers, so the running max of a step is
// an integer max (vectorisable without -ffast-math).
template <typename T>
using Bits = ValueBits<T>;

// One problem: rows [0, n) of x (local), `count` picks from `start`, ending
// before the first pick whose value is at most `floor` (-inf: none). mind (n,)
// is scratch; picks are written as global ids (base + local). Returns the picks
// made.
template <typename T, int D>
int64_t fps_one(const T* x, int64_t n, int64_t d_runtime, int64_t base, int64_t start,
                int64_t count, double floor, T* mind, int64_t* picks, double* values) {
  const int64_t d = D > 0 ? D : d_runtime;
  for (int64_t i = 0; i < n; ++i) mind[i] = std::numeric_limits<T>::infinity();
  int64_t c = start;
  picks[0] = base + c;
  values[0] = std::numeric_limits<double>::infinity();
  for (int64_t t = 1; t < count; ++t) {
    mind[c] = T(MARK);
    const T* xc = x + c * d;
    // Fold and max in one pass, no branch: a marked point keeps MARK (< any
    // distance). Then the first entry equal to the max: ties to the lowest index.
    Bits<T> top = std::numeric_limits<Bits<T>>::min();
    for (int64_t i = 0; i < n; ++i) {
      const Bits<T> bits = lower_to_bits(mind[i], sqdist(x + i * d, xc, d));
      top = bits > top ? bits : top;
    }
    T best;
    std::memcpy(&best, &top, sizeof best);
    if (static_cast<double>(best) <= floor) return t;  // within the radius of a pick
    c = 0;
    while (mind[c] != best) ++c;  // count <= n: an unmarked point remains
    picks[t] = base + c;
    values[t] = static_cast<double>(mind[c]);
  }
  return count;
}

template <typename T, int D>
void run_all(const T* x, int64_t d, const int64_t* ptr, const int64_t* counts,
             const int64_t* starts, double floor, const int64_t* out_ptr,
             const std::vector<int64_t>& order, int64_t* picks, double* values, int64_t* made) {
  const int64_t jobs = static_cast<int64_t>(order.size());
  int64_t work = 0;
  for (int64_t j = 0; j < jobs; ++j) {
    const int64_t p = order[j];
    work += (ptr[p + 1] - ptr[p]) * counts[p];
  }
  // One problem a claim, largest first; a descheduled thread holds one problem.
  const int64_t per = jobs > 1 && work * d >= kMinParallelWork ? kMinParallelWork : 0;
  parallel_for(jobs, 1, per, [&](int64_t j0, int64_t j1) {
    std::vector<T> mind;  // scratch of this claim
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t p = order[j];
      const int64_t lo = ptr[p], n = ptr[p + 1] - lo;
      if (static_cast<int64_t>(mind.size()) < n) mind.resize(n);
      made[p] = fps_one<T, D>(x + lo * d, n, d, lo, starts[p], counts[p], floor, mind.data(),
                              picks + out_ptr[p], values + out_ptr[p]);
    }
  });
}

}  // namespace

// ptr (P + 1,), counts / starts (P,), out_ptr (P + 1,) = prefix sums of counts.
// Problem p makes made[p] <= counts[p] picks (fewer when one reaches `floor`);
// problems with counts[p] == 0 are skipped (made[p] = 0, slots untouched).
template <typename T>
void fps_batched(const T* x, int64_t d, int64_t num, const int64_t* ptr,
                 const int64_t* counts, const int64_t* starts, double floor,
                 const int64_t* out_ptr, int64_t* picks, double* values, int64_t* made) {
  for (int64_t p = 0; p < num; ++p) made[p] = 0;
  std::vector<int64_t> order;
  for (int64_t p = 0; p < num; ++p)
    if (counts[p] > 0) order.push_back(p);
  // Longest problems first: with a dynamic schedule the ragged tail stays short.
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return (ptr[a + 1] - ptr[a]) * counts[a] > (ptr[b + 1] - ptr[b]) * counts[b];
  });
  if (d == 2) return run_all<T, 2>(x, d, ptr, counts, starts, floor, out_ptr, order, picks, values, made);
  if (d == 3) return run_all<T, 3>(x, d, ptr, counts, starts, floor, out_ptr, order, picks, values, made);
  run_all<T, 0>(x, d, ptr, counts, starts, floor, out_ptr, order, picks, values, made);
}

template void fps_batched(const float*, int64_t, int64_t, const int64_t*, const int64_t*,
                          const int64_t*, double, const int64_t*, int64_t*, double*, int64_t*);
template void fps_batched(const double*, int64_t, int64_t, const int64_t*, const int64_t*,
                          const int64_t*, double, const int64_t*, int64_t*, double*, int64_t*);

}  // namespace hminsel
