// Primitive 1: the streaming FPS step, one fused pass over x.
//
// `steps` chains passes in `pick_loop` (parallel.h): chunks of rows claimed
// from a counter, no barrier a pick. Each chunk's best is a function of the
// chunk alone and the lead reduces chunks in row order, so the picks do not
// depend on the thread count. On one thread the fold writes mind directly;
// with helpers it lowers values with `lower_to` (a late helper may still be
// folding an older pick).
#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernels.h"
#include "parallel.h"

namespace hminsel {
namespace {

// Row elements a chunk (~3-6 us), and at most this many chunks a thread a pass.
constexpr int64_t kChunkWork = int64_t(1) << 16;
constexpr int64_t kChunksPerThread = 64;

// Rows [lo, hi): fold centre row c into mind; the best of the range (-1 if all marked).
template <typename S, bool Shared, typename T = acc_t<S>>
Best<T> fold_any(RowSource<S> x, int64_t d, T* mind, int64_t c, int64_t lo, int64_t hi) {
  RowReader<S> centre(x, d), row(x, d);
  const T* xc = centre(c);
  Best<T> best = no_best<T>();
  for (int64_t i = lo; i < hi; ++i) {
    T v = Shared ? load_relaxed(mind + i) : mind[i];
    if (v == T(MARK)) continue;
    const T dist = sqdist(row(i), xc, d);
    if (dist < v) {
      if (Shared) v = lower_to(mind + i, dist);
      else mind[i] = v = dist;
    }
    if (beats(v, i, best)) best = {v, i};
  }
  if (best.index < 0) best = {T(MARK), -1};
  return best;
}

// The same for a compile-time d = D (point clouds), on one thread only (see
// run_steps): a block of rows folded in one vectorised pass (sqdist_small's
// value; a marked row keeps MARK, which is below any distance), its largest
// value as an integer max of the bits, then the block's first row holding it.
// Blocks run in row order, so only a strictly larger value replaces the best.
template <typename T, int D>
Best<T> fold_small(const T* x, T* mind, const T* xc, int64_t lo, int64_t hi) {
  constexpr int64_t B = 256;
  using Bits = ValueBits<T>;
  T c[D];
  for (int j = 0; j < D; ++j) c[j] = xc[j];
  Best<T> best = {T(MARK), -1};
  for (int64_t i0 = lo; i0 < hi; i0 += B) {
    const int64_t nb = hi - i0 < B ? hi - i0 : B;
    T* __restrict m = mind + i0;
    const T* __restrict rows = x + i0 * D;
    Bits bits = std::numeric_limits<Bits>::min();
#pragma omp simd reduction(max : bits)
    for (int64_t r = 0; r < nb; ++r) {
      const Bits b = lower_to_bits(m[r], sqdist_small<T, D>(rows + r * D, c));
      bits = b > bits ? b : bits;
    }
    T top;
    std::memcpy(&top, &bits, sizeof top);
    if (top != T(MARK) && top > best.value) {
      int64_t r = 0;
      while (m[r] != top) ++r;
      best = {top, i0 + r};
    }
  }
  return best;
}

template <typename S, bool Shared, typename T = acc_t<S>>
Best<T> fold_rows(RowSource<S> x, int64_t d, T* mind, int64_t c, int64_t lo, int64_t hi) {
  if constexpr (!Shared && std::is_same_v<S, T>) {  // rows as stored (float16, unit rows: below)
    if (x.norms == nullptr) {
      switch (d) {  // point clouds and other tiny d
        case 2: return fold_small<T, 2>(x.x, mind, x.x + c * 2, lo, hi);
        case 3: return fold_small<T, 3>(x.x, mind, x.x + c * 3, lo, hi);
        case 4: return fold_small<T, 4>(x.x, mind, x.x + c * 4, lo, hi);
      }
    }
  }
  return fold_any<S, Shared>(x, d, mind, c, lo, hi);
}

// `count` passes from centre c: pass p folds c (p = 1) or picks[p - 2] and
// writes pick p - 1, marked unless it is the last and !mark_last. Returns the
// picks made (< count once every row is marked).
template <typename S, typename T = acc_t<S>>
int64_t run_steps(RowSource<S> x, int64_t n, int64_t d, T* mind, int64_t c, int64_t count,
                  bool mark_last, int64_t* picks, double* values) {
  mind[c] = T(MARK);
  // d <= 4: a row is a few operations, and the shared fold (atomic-safe
  // writes) with two threads measured slower than one thread (200k x 3, 2000
  // steps: 685 ms against 505 ms on the 2-core machine), so one thread.
  const int threads = n * d >= kMinParallelWork && d > 4 ? max_threads() : 1;
  const int64_t rows = std::max({int64_t(1), kChunkWork / d,
                                 (n + kChunksPerThread * threads - 1) / (kChunksPerThread * threads)});
  const int64_t chunks = (n + rows - 1) / rows;
  int64_t made = 0;
  auto fold = [&](int64_t k, uint64_t pass) -> int64_t {
    const int64_t centre = pass == 1 ? c : picks[pass - 2];
    const int64_t lo = k * rows, hi = std::min(n, lo + rows);
    const Best<T> b = threads > 1 ? fold_rows<S, true>(x, d, mind, centre, lo, hi)
                                  : fold_rows<S, false>(x, d, mind, centre, lo, hi);
    return b.index < 0 ? -1 : b.index - lo;
  };
  auto next = [&](uint64_t, const int64_t* at) {
    Best<T> best = {T(MARK), -1};
    for (int64_t k = 0; k < chunks; ++k) {  // row order: strict > keeps the lowest index
      if (at[k] < 0) continue;
      const int64_t i = k * rows + at[k];
      const T v = load_relaxed(mind + i);
      if (v > best.value) best = {v, i};
    }
    if (best.index < 0) return false;
    picks[made] = best.index;
    values[made] = static_cast<double>(best.value);
    ++made;
    if (made < count || mark_last) lower_to(mind + best.index, T(MARK));
    return made < count;
  };
  if (count > 0) pick_loop(chunks, threads, fold, next);
  return made;
}

}  // namespace

template <typename S>
Best<acc_t<S>> step(RowSource<S> x, int64_t n, int64_t d, acc_t<S>* mind, int64_t c) {
  using T = acc_t<S>;
  int64_t pick = -1;
  double value = MARK;
  if (run_steps(x, n, d, mind, c, 1, false, &pick, &value) == 0) return {T(MARK), -1};
  return {static_cast<T>(value), pick};
}

template <typename S>
void steps(RowSource<S> x, int64_t n, int64_t d, acc_t<S>* mind, int64_t c, int64_t count,
           int64_t* picks, double* values) {
  for (int64_t t = run_steps(x, n, d, mind, c, count, true, picks, values); t < count; ++t) {
    picks[t] = -1;
    values[t] = MARK;
  }
}

template Best<float> step(RowSource<float>, int64_t, int64_t, float*, int64_t);
template Best<double> step(RowSource<double>, int64_t, int64_t, double*, int64_t);
template void steps(RowSource<float>, int64_t, int64_t, float*, int64_t, int64_t, int64_t*, double*);
template void steps(RowSource<double>, int64_t, int64_t, double*, int64_t, int64_t, int64_t*, double*);
template Best<float> step(RowSource<Half>, int64_t, int64_t, float*, int64_t);
template void steps(RowSource<Half>, int64_t, int64_t, float*, int64_t, int64_t, int64_t*, double*);

}  // namespace hminsel
