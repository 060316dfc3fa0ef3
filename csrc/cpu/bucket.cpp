// Exact bucket FPS (bucket.h): the Morton build, one cloud, and many clouds.
//
// One cloud runs on one thread: a pick touches a few buckets (microseconds of
// work), so there is no barrier or fork/join a pick. Many clouds: one cloud
// per pool thread (parallel.h), claimed in turn, largest first, as batched.cpp.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "bucket.h"
#include "bucket_tree.h"
#include "cloud_stream.h"
#include "parallel.h"
#include "stop.h"

namespace hminsel {
namespace bucket {

void radix_sort(std::vector<uint32_t>& key, std::vector<uint32_t>& val, int bits) {
  const int64_t n = static_cast<int64_t>(key.size());
  const int passes = std::max(1, (bits + 10) / 11), width = (bits + passes - 1) / passes;
  std::vector<uint32_t> key2(n), val2(n);
  std::vector<int64_t> count((int64_t(1) << width) + 1);
  for (int pass = 0, shift = 0; pass < passes; ++pass, shift += width) {
    const uint32_t mask = (uint32_t(1) << width) - 1;
    std::fill(count.begin(), count.end(), 0);
    for (int64_t i = 0; i < n; ++i) ++count[((key[i] >> shift) & mask) + 1];
    for (size_t b = 1; b < count.size(); ++b) count[b] += count[b - 1];
    for (int64_t i = 0; i < n; ++i) {
      const int64_t at = count[(key[i] >> shift) & mask]++;
      key2[at] = key[i];
      val2[at] = val[i];
    }
    key.swap(key2);
    val.swap(val2);
  }
}

namespace {

// The bounding box [lo, hi] of rows order[0..cnt) of x (finite rows).
template <typename T, int D>
void box_of(const T* x, const uint32_t* order, int64_t cnt, double* lo, double* hi) {
  for (int j = 0; j < D; ++j) {
    T a = std::numeric_limits<T>::infinity(), z = -a;
    for (int64_t i = 0; i < cnt; ++i) {
      const T v = x[int64_t(order[i]) * D + j];
      a = v < a ? v : a;
      z = v > z ? v : z;
    }
    lo[j] = a, hi[j] = z;
  }
}

// The Morton keys of rows order[0..cnt) of x on a grid of 2^b cells an axis
// over the box [lo, hi] (b * D <= 32 bits).
template <typename T, int D>
void grid_keys(const T* x, const uint32_t* order, int64_t cnt, const double* lo, const double* hi,
               int b, uint32_t* key) {
  const uint32_t cells = uint32_t(1) << b;
  double scale[D];
  for (int j = 0; j < D; ++j) {
    const double span = hi[j] - lo[j];
    scale[j] = span > 0 && std::isfinite(span) ? cells / span : 0.0;
  }
  std::vector<uint32_t> spread(D == 1 ? 0 : cells);  // bit i of a cell -> bit i * D
  for (uint32_t q = 0; q < spread.size(); ++q)
    for (int i = 0; i < b; ++i) spread[q] |= ((q >> i) & 1u) << (i * D);
  for (int64_t i = 0; i < cnt; ++i) {
    uint32_t k = 0;
    for (int j = 0; j < D; ++j) {
      const double f = (static_cast<double>(x[int64_t(order[i]) * D + j]) - lo[j]) * scale[j];
      const uint32_t q = f >= cells ? cells - 1 : f >= 0 ? static_cast<uint32_t>(f) : 0;  // NaN: 0
      k |= D == 1 ? q : spread[q] << j;
    }
    key[i] = k;
  }
}

// Clustered clouds put thousands of rows in one cell of the global grid, in
// row order, and a bucket's box then spans the cell. Runs of one key longer
// than a bucket are keyed again on a grid over their own box (and so on, at
// most kRefineDepth times) until they fit a bucket or their rows coincide.
constexpr int kRefineDepth = 8;

template <typename T, int D>
void refine_runs(const T* x, std::vector<uint32_t>& key, std::vector<uint32_t>& order, int64_t leaf) {
  struct Run {
    int64_t s, e;
    int depth;
  };
  std::vector<Run> todo;
  auto push_runs = [&](int64_t s, int64_t e, int depth) {
    for (int64_t a = s; a < e;) {
      int64_t z = a + 1;
      while (z < e && key[z] == key[a]) ++z;
      if (z - a > leaf && depth < kRefineDepth) todo.push_back({a, z, depth});
      a = z;
    }
  };
  push_runs(0, static_cast<int64_t>(order.size()), 0);
  std::vector<uint32_t> sub;
  std::vector<std::pair<uint32_t, uint32_t>> pairs;
  while (!todo.empty()) {
    const Run r = todo.back();
    todo.pop_back();
    const int64_t m = r.e - r.s;
    double lo[D], hi[D];
    box_of<T, D>(x, order.data() + r.s, m, lo, hi);
    bool flat = true;
    for (int j = 0; j < D; ++j) flat = flat && !(hi[j] > lo[j]);
    if (flat) continue;  // the rows coincide: no grid tells them apart
    int total = kMortonExtra;
    while (total < 30 && (int64_t(1) << (total - kMortonExtra)) * leaf < m) ++total;
    const int b = std::max(1, std::min(total, 32) / D);
    sub.resize(m);
    grid_keys<T, D>(x, order.data() + r.s, m, lo, hi, b, sub.data());
    pairs.resize(m);
    for (int64_t i = 0; i < m; ++i) pairs[i] = {sub[i], order[r.s + i]};
    std::sort(pairs.begin(), pairs.end());
    for (int64_t i = 0; i < m; ++i) key[r.s + i] = pairs[i].first, order[r.s + i] = pairs[i].second;
    push_runs(r.s, r.e, r.depth + 1);
  }
}

}  // namespace

template <typename T, int D>
int64_t morton_order(const T* x, int64_t rows, const T* mind0, int64_t leaf,
                     std::vector<uint32_t>& order, bool refine) {
  order.resize(rows);
  int64_t n = 0;
  for (int64_t r = 0; r < rows; ++r)
    if (!mind0 || mind0[r] != T(MARK)) order[n++] = static_cast<uint32_t>(r);
  order.resize(n);
  double lo[D], hi[D];
  if (n == rows) {  // every row: one axis at a time, vectorised
    for (int j = 0; j < D; ++j) {
      T a = std::numeric_limits<T>::infinity(), z = -a;  // live rows are finite
#pragma omp simd reduction(min : a) reduction(max : z)
      for (int64_t i = 0; i < n; ++i) {
        const T v = x[i * D + j];
        a = v < a ? v : a;
        z = v > z ? v : z;
      }
      lo[j] = a, hi[j] = z;
    }
  } else {
    box_of<T, D>(x, order.data(), n, lo, hi);
  }
  // About log2(n) + 2 key bits in all (<= 22): a bucket spans a few grid cells;
  // and at most log2(buckets) + kMortonExtra (bucket.h).
  int total = 2;
  while (total < 22 && (int64_t(1) << (total - 2)) < n) ++total;
  int coarse = 0;
  while ((int64_t(1) << coarse) * leaf < n) ++coarse;
  total = std::max(2, std::min(total, coarse + kMortonExtra));
  const int b = std::max(1, total / D), bits = b * D;
  std::vector<uint32_t> key(n);
  grid_keys<T, D>(x, order.data(), n, lo, hi, b, key.data());
  radix_sort(key, order, bits);
  if (refine) refine_runs<T, D>(x, key, order, leaf);
  return n;
}

// Every (T, D) for the trees built in other files (bucket_pairs.cpp).
#define HMINSEL_MORTON(T, D)                                                            \
  template int64_t morton_order<T, D>(const T*, int64_t, const T*, int64_t,           \
                                      std::vector<uint32_t>&, bool);
#define HMINSEL_MORTON_ALL(T)                                                           \
  HMINSEL_MORTON(T, 1) HMINSEL_MORTON(T, 2) HMINSEL_MORTON(T, 3) HMINSEL_MORTON(T, 4)   \
  HMINSEL_MORTON(T, 5) HMINSEL_MORTON(T, 6) HMINSEL_MORTON(T, 7) HMINSEL_MORTON(T, 8)
HMINSEL_MORTON_ALL(float)
HMINSEL_MORTON_ALL(double)
#undef HMINSEL_MORTON_ALL
#undef HMINSEL_MORTON

// One cloud: rows (rows, D) of x, initial mind0 (nullptr: all +inf), the
// first picks `seeds` (ns >= 1, live rows), k picks in all, written as
// base + row; values are squared distances (values[0] = inf). The run ends
// before the first pick past the seeds whose value is at most `floor` (-inf:
// none): returns the picks made. When no live point is left the remaining
// slots are (-1, MARK). A `stop` (stop.h) ends it early, the outputs unfinished.
template <typename T, int D>
int64_t select_one(Tree<T, D>& tree, const T* x, int64_t rows, const T* mind0, const int64_t* seeds,
                   int64_t ns, int64_t k, int64_t base, int64_t leaf, double floor, int64_t* picks,
                   double* values, Stop* stop) {
  tree.build(x, rows, mind0, leaf);
  int64_t t = 0;
  for (; t < ns && t < k; ++t) {
    const int64_t pos = tree.where[seeds[t]];
    picks[t] = base + seeds[t];
    values[t] = t == 0 ? std::numeric_limits<double>::infinity() : static_cast<double>(tree.mind[pos]);
    if (t + 1 < k) tree.fold(pos);
  }
  for (; t < k; ++t) {
    const int64_t root = tree.root();
    if (tree.n == 0 || tree.top[root] == T(MARK)) break;
    if (static_cast<double>(tree.top[root]) <= floor) return t;  // within the radius of a pick
    if (stopped(stop)) return t;
    const int64_t pos = tree.where[tree.arg[root]];
    picks[t] = base + tree.arg[root];
    values[t] = static_cast<double>(tree.top[root]);
    if (t + 1 < k) tree.fold(pos);
  }
  for (; t < k; ++t) picks[t] = -1, values[t] = MARK;
  return k;
}

template <typename T, int D>
void many(const T* x, const int64_t* ptr, const int64_t* counts, const int64_t* starts,
          double floor, const int64_t* out_ptr, const std::vector<int64_t>& order, int64_t leaf,
          int stream, int64_t* picks, double* values, int64_t* made, Stop* stop) {
  const int64_t jobs = static_cast<int64_t>(order.size());
  int64_t work = 0;
  for (int64_t p : order) work += ptr[p + 1] - ptr[p];
  const int threads = jobs > 1 && work >= kParallelPoints
                          ? static_cast<int>(std::min<int64_t>(max_threads(), jobs)) : 1;
  std::atomic<int64_t> next{0};  // clouds claimed in turn (largest first): no team, no barrier
  std::atomic<int64_t> finished{0};
  auto body = [&](int id) {
    Tree<T, D> tree;  // this thread's, reused across clouds
    cloud::Scratch<T> scratch;
    for (int64_t j = next.fetch_add(1); j < jobs && !stopped(stop); j = next.fetch_add(1)) {
      const int64_t p = order[j], lo = ptr[p], n = ptr[p + 1] - lo;
      if (stream > 0 || (stream < 0 && cloud::streams(n, counts[p], D, sizeof(T))))
        made[p] = cloud::stream_one<T, D>(x + lo * D, n, nullptr, starts + p, 1, counts[p], lo, floor,
                                          scratch, picks + out_ptr[p], values + out_ptr[p], stop);
      else
        made[p] = select_one<T, D>(tree, x + lo * D, n, nullptr, starts + p, 1, counts[p], lo,
                                   leaf, floor, picks + out_ptr[p], values + out_ptr[p], stop);
      finished.fetch_add(1, std::memory_order_release);
    }
    // The lead keeps asking while helpers finish their clouds (a stop ends those at once),
    // waiting as pool_run does: a short spin, then yielding the core.
    for (int spins = 0; id == 0 && finished.load(std::memory_order_acquire) < jobs && !stopped(stop);
         ++spins) {
      if (spins < 2048) cpu_relax();
      else std::this_thread::yield();
    }
  };
  if (threads <= 1) {
    body(0);
  } else {
    pool_run(threads, body);
  }
}

}  // namespace bucket

template <typename T>
int64_t bucket_select(const T* x, int64_t rows, int64_t d, const T* mind0, const int64_t* seeds,
                      int64_t ns, int64_t k, int64_t leaf, double floor, int stream, int64_t* picks,
                      double* values, Stop* stop) {
  int64_t live = rows;  // the tree and the pass both run over the rows left in play
  if (mind0 && stream < 0)
    for (int64_t r = 0; r < rows; ++r) live -= mind0[r] == T(MARK);
  const bool pass = stream > 0 || (stream < 0 && cloud::streams(live, k, d, sizeof(T)));
  switch (d) {
#define HMINSEL_ONE(D)                                                                  \
  case D: {                                                                             \
    if (pass) {                                                                         \
      cloud::Scratch<T> scratch;                                                        \
      return cloud::stream_one<T, D>(x, rows, mind0, seeds, ns, k, 0, floor, scratch,   \
                                     picks, values, stop);                              \
    }                                                                                   \
    bucket::Tree<T, D> tree;                                                            \
    return bucket::select_one<T, D>(tree, x, rows, mind0, seeds, ns, k, 0, leaf, floor, \
                                    picks, values, stop);                               \
  }
    HMINSEL_ONE(1) HMINSEL_ONE(2) HMINSEL_ONE(3) HMINSEL_ONE(4)
    HMINSEL_ONE(5) HMINSEL_ONE(6) HMINSEL_ONE(7) HMINSEL_ONE(8)
#undef HMINSEL_ONE
  }
  return 0;  // d outside 1..8: the binding refuses it
}

template <typename T>
void bucket_batched(const T* x, int64_t d, int64_t num, const int64_t* ptr, const int64_t* counts,
                    const int64_t* starts, double floor, const int64_t* out_ptr, int64_t leaf,
                    int stream, int64_t* picks, double* values, int64_t* made, Stop* stop) {
  std::vector<int64_t> order;
  for (int64_t p = 0; p < num; ++p) made[p] = 0;
  for (int64_t p = 0; p < num; ++p)
    if (counts[p] > 0) order.push_back(p);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return ptr[a + 1] - ptr[a] > ptr[b + 1] - ptr[b];
  });
  switch (d) {
#define HMINSEL_MANY(D) \
  case D:          \
    return bucket::many<T, D>(x, ptr, counts, starts, floor, out_ptr, order, leaf, stream, picks, \
                              values, made, stop);
    HMINSEL_MANY(1) HMINSEL_MANY(2) HMINSEL_MANY(3) HMINSEL_MANY(4)
    HMINSEL_MANY(5) HMINSEL_MANY(6) HMINSEL_MANY(7) HMINSEL_MANY(8)
#undef HMINSEL_MANY
  }
}

#define HMINSEL_INST(T)                                                                        \
  template int64_t bucket_select(const T*, int64_t, int64_t, const T*, const int64_t*, int64_t, \
                                 int64_t, int64_t, double, int, int64_t*, double*, Stop*);   \
  template void bucket_batched(const T*, int64_t, int64_t, const int64_t*, const int64_t*,    \
                               const int64_t*, double, const int64_t*, int64_t, int, int64_t*, \
                               double*, int64_t*, Stop*);
HMINSEL_INST(float)
HMINSEL_INST(double)
#undef HMINSEL_INST

}  // namespace hminsel
