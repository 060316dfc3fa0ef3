// Streaming FPS of one small cloud (1 <= D <= 8), axis-major in a thread's scratch.
//
// The bucket FPS (bucket.cpp) first builds its tree, about 18 ns a point (a
// Morton sort), and a pick then visits the buckets within reach; in a cloud of
// a few thousand points that is most of them. A streaming pass over every
// point, a vector of points at a time in L1/L2, costs about 0.3 ns a point a
// pick on AVX2 (0.2 on one cloud in a loop), so for few picks or small clouds
// it wins (`streams`). Each distance is sqdist_small's tree over the per-axis
// squares, as the bucket FPS sums them (common.h: tree_sum), so the values, and
// with ties to the lowest index the picks, are the bucket FPS's and `step`'s.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "bucket.h"
#include "stop.h"

namespace hminsel {
namespace cloud {

// Points a block: the pass keeps each block's largest value, so the first point
// holding a pick's value is found in one block, not by a scan of the cloud
// (64: 0.22 ns a point a pick on 1024 x 3; 32, 128, 256: 0.24-0.27).
constexpr int64_t kBlock = 64;

// Whether k picks of a cloud of n points in d dimensions (values of `bytes`
// bytes) stream rather than take the bucket FPS. A pass costs about d values a
// point, twice that in float64 (half the points a vector); the tree's build is
// worth some 100 of those a point. Measured on one AVX2 thread, Gaussian and
// clustered clouds (8 tight clusters), 256-16384 points, streaming time over
// the tree's: float32 d = 3, k <= 32: 0.12-0.41 (sphere surfaces alike); within
// n k <= 2^18: 0.46-0.8, 1.01 at worst; beyond it, up to 1.9. In d = 1 the tree
// prunes all but a bucket or two (1024 points, k = 700: 2.0), and in d >= 5
// clustered clouds fall apart into buckets the tree skips (d = 8, k = 32:
// 1.5-4.5), so there only few picks stream (d = 8, k = 12: 0.61-0.84; d = 1,
// k = 32: 0.40-0.75). float64 d = 3 halves the bounds (n k = 2^18: 1.1-1.5).
// AVX-512 widens the pass, not the tree walk: the rule errs toward the tree.
inline bool streams(int64_t n, int64_t k, int64_t d, int64_t bytes) {
  const int64_t wide = bytes / 4;  // 1 for float32, 2 for float64
  // A point of the tree's build costs more once the cloud outgrows the caches (about 18 ns
  // at 1024 points, 25 at 100k, 50 at 1M), a pass's point the same: one cloud of 100k
  // points, d = 3, k = 64: 2.0-2.5 ms streamed, 2.9-3.2 on the tree (k = 128: 4.6-4.8
  // against 3.6-3.8); of 1M points, k = 128: 40-42 ms against 49-62 (k = 256: 78-90
  // against 54-61).
  const int64_t budget = n >= (int64_t(1) << 19) ? 384 : n >= (int64_t(1) << 16) ? 192 : 96;
  if (k * std::max<int64_t>(d, 3) * wide <= budget) return true;
  return d >= 2 && d <= 4 && double(n) * double(k * d * wide) <= 3.0 * (1 << 18);  // no overflow
}

// A thread's scratch, reused across clouds.
template <typename T>
struct Scratch {
  std::vector<T> xs, mind;
  std::vector<bucket::Bits<T>> tops;
  std::vector<int64_t> rows;  // the live rows, when some are left out
};

// Rows [0, rows) of x (row-major, D values a row), their min-distances mind0
// (nullptr: all +inf; MARK: left out, such a row may hold NaN), the first
// picks `seeds` (ns >= 1, live rows), `count` picks in all, written as base +
// row with squared values (values[0] = inf): bucket.cpp's select_one, pick for
// pick. The run ends before the first pick past the seeds whose value is at
// most `floor` (-inf: none) or at a stop; once no live row is left the
// remaining slots are (-1, MARK). Returns the picks made. Only the live rows
// are copied (in row order: the first position holding a value is the lowest
// row), so a pass costs what is left in play, as the tree's build does.
template <typename T, int D>
int64_t stream_one(const T* x, int64_t rows, const T* mind0, const int64_t* seeds, int64_t ns,
                   int64_t count, int64_t base, double floor, Scratch<T>& s, int64_t* picks,
                   double* values, Stop* stop) {
  using Bits = bucket::Bits<T>;
  int64_t n = rows;
  const int64_t* live = nullptr;  // position -> row; nullptr: every row, in place
  if (mind0) {
    s.rows.clear();
    for (int64_t r = 0; r < rows; ++r)
      if (mind0[r] != T(MARK)) s.rows.push_back(r);
    if (static_cast<int64_t>(s.rows.size()) < rows) live = s.rows.data(), n = static_cast<int64_t>(s.rows.size());
  }
  auto row_of = [&](int64_t p) { return live ? live[p] : p; };
  auto position = [&](int64_t r) {  // of a live row
    return live ? static_cast<int64_t>(std::lower_bound(live, live + n, r) - live) : r;
  };
  s.xs.resize(D * n);
  s.mind.resize(n);
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  s.tops.resize(blocks);
  T* xs = s.xs.data();
  T* mind = s.mind.data();
  Bits* tops = s.tops.data();
  for (int64_t p = 0; p < n; ++p) {
    const T* row = x + row_of(p) * D;
    for (int j = 0; j < D; ++j) xs[j * n + p] = row[j];
    mind[p] = mind0 ? mind0[row_of(p)] : std::numeric_limits<T>::infinity();
  }
  // Marks position c and folds it into every min-distance; returns the largest, as bits.
  auto fold = [&](int64_t c) {
    mind[c] = T(MARK);
    T cen[D];
    for (int j = 0; j < D; ++j) cen[j] = xs[j * n + c];
    Bits top = std::numeric_limits<Bits>::min();
    for (int64_t b = 0; b < blocks; ++b) {
      tops[b] = bucket::fold_block<T, D>(xs, n, cen, mind, b * kBlock, std::min(n, (b + 1) * kBlock));
      top = tops[b] > top ? tops[b] : top;
    }
    return top;
  };
  Bits top = 0;
  int64_t t = 0;
  for (; t < ns && t < count; ++t) {
    const int64_t c = position(seeds[t]);
    picks[t] = base + seeds[t];
    values[t] = t == 0 ? std::numeric_limits<double>::infinity() : static_cast<double>(mind[c]);
    if (t + 1 < count) top = fold(c);
  }
  for (; t < count; ++t) {
    T best;
    std::memcpy(&best, &top, sizeof best);
    if (n == 0 || best == T(MARK)) break;  // no live row left
    if (static_cast<double>(best) <= floor) return t;  // within the radius of a pick
    if (stopped(stop)) return t;
    int64_t b = 0;
    while (tops[b] != top) ++b;
    int64_t c = b * kBlock;
    while (mind[c] != best) ++c;  // the first position of the first block holding it
    picks[t] = base + row_of(c);
    values[t] = static_cast<double>(best);
    if (t + 1 < count) top = fold(c);
  }
  for (; t < count; ++t) picks[t] = -1, values[t] = MARK;
  return count;
}

}  // namespace cloud
}  // namespace hminsel
