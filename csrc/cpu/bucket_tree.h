// The tree of the exact bucket FPS (bucket.h): one cloud, one thread.
//
// The points are sorted along a Morton curve of a coarse grid and cut into
// buckets of `leaf` consecutive points; a tree of fan-out W = 8 over the
// buckets holds, per node, the tight bounding box of its points and the
// largest min-distance under it with its point (ties to the lowest original
// row). Level 0 are the buckets, the last level the root; node i of level l
// has the children W i .. W i + W - 1 of level l - 1 (levels are padded to a
// multiple of W with empty nodes: no box, value MARK). A pick c visits only
// the children whose box can hold a point closer to c than their largest
// value (the W boxes of a node tested at once, vectorised) and the path to
// c's own bucket (c becomes MARK); the root then names the next pick.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "bucket.h"

namespace hminsel {
namespace bucket {

template <typename T, int D>
struct Tree {
  static constexpr int W = 8, kShift = 3;  // fan-out 2^kShift
  int64_t n = 0, leaf = 64, total = 0;     // points, points a bucket, nodes (all levels)
  std::vector<int64_t> off, count;         // per level: first node, nodes (padded)
  std::vector<T> xs;          // (D, n): coordinates by position, one axis a row
  std::vector<uint32_t> id;   // (n,) original row of each position (rows < 2^32)
  std::vector<T> mind;        // (n,) min-distance of each position (MARK once picked)
  std::vector<uint32_t> where; // (rows,) position of each original row (~0: left out)
  std::vector<T> lo, hi;      // (D, total) node boxes, one axis a row
  std::vector<T> top;         // (total,) largest mind under the node (MARK: none live)
  std::vector<uint32_t> arg;  // (total,) its original row
  std::vector<int64_t> inner; // scratch of fold: the inner nodes it visited

  int levels() const { return static_cast<int>(off.size()); }
  int64_t root() const { return off.back(); }

  // rows (rows, D) of x; mind0 and refine as in morton_order (mind0 nullptr:
  // every row at +inf).
  void build(const T* x, int64_t rows, const T* mind0, int64_t leaf_size, bool refine = false) {
    leaf = leaf_size;
    n = morton_order<T, D>(x, rows, mind0, leaf, id, refine);
    xs.resize(D * n);
    where.assign(rows, 0xFFFFFFFFu);
    mind.resize(n);
    T* __restrict xp = xs.data();
    for (int64_t p = 0; p < n; ++p) {
      const T* row = x + int64_t(id[p]) * D;
      for (int j = 0; j < D; ++j) xp[j * n + p] = row[j];
      mind[p] = mind0 ? mind0[id[p]] : std::numeric_limits<T>::infinity();
      where[id[p]] = static_cast<uint32_t>(p);
    }
    off.clear();
    count.clear();
    total = 0;
    for (int64_t c = std::max<int64_t>(1, (n + leaf - 1) / leaf);; c = (c + W - 1) / W) {
      off.push_back(total);
      count.push_back(c);
      total += (c + W - 1) / W * W;
      if (c == 1) break;
    }
    lo.assign(D * total, std::numeric_limits<T>::infinity());
    hi.assign(D * total, -std::numeric_limits<T>::infinity());
    top.assign(total, T(MARK));
    arg.assign(total, 0);
    for (int64_t b = 0; b < count[0] && n > 0; ++b) {
      const int64_t p0 = b * leaf, p1 = std::min(n, p0 + leaf);
      for (int j = 0; j < D; ++j) {  // live points are finite: the reductions may vectorise
        const T* __restrict xj = xs.data() + j * n;
        T a = std::numeric_limits<T>::infinity(), z = -a;
#pragma omp simd reduction(min : a) reduction(max : z)
        for (int64_t p = p0; p < p1; ++p) {
          a = xj[p] < a ? xj[p] : a;
          z = xj[p] > z ? xj[p] : z;
        }
        lo[j * total + b] = a;  // (the loop was a store a point: 85% of the build)
        hi[j * total + b] = z;
      }
      leaf_best(b);
    }
    for (int l = 1; l < levels(); ++l)
      for (int64_t i = 0; i < count[l]; ++i) {
        const int64_t node = off[l] + i, first = off[l - 1] + W * i;
        for (int j = 0; j < D; ++j)
          for (int w = 0; w < W; ++w) {
            lo[j * total + node] = std::min(lo[j * total + node], lo[j * total + first + w]);
            hi[j * total + node] = std::max(hi[j * total + node], hi[j * total + first + w]);
          }
        pull(node, first);
      }
  }

  // top/arg of a node from its W children first .. first + W - 1.
  void pull(int64_t node, int64_t first) {
    int64_t best = first;
    for (int64_t c = first + 1; c < first + W; ++c)
      if (top[c] > top[best] || (top[c] == top[best] && arg[c] < arg[best])) best = c;
    top[node] = top[best];
    arg[node] = arg[best];
  }

  // top/arg of bucket b from its minds (bucket.h: best_of).
  void leaf_best(int64_t b) {
    const int64_t p0 = b * leaf;
    best_of(mind.data() + p0, id.data() + p0, std::min(n, p0 + leaf) - p0, top[b], arg[b]);
  }

  // Folds the centre cx into the minds of bucket b, then its top/arg.
  __attribute__((noinline)) void update_leaf(int64_t b, const T* cx) {
    const int64_t p0 = b * leaf;
    fold_best<T, D>(xs.data() + p0, n, std::min(n, p0 + leaf) - p0, cx, mind.data() + p0,
                    id.data() + p0, top[b], arg[b]);
  }

  // The box distances of point c to the W nodes first .. first + W - 1, into
  // acc[0]: the squared gaps (bucket.h: gap) axis by axis, then sqdist_small's
  // tree level by level, W nodes at once (as bucket_dist).
  void child_dist(const T* c, int64_t first, T (&acc)[D][W]) const {
    for (int j = 0; j < D; ++j) {
      const T* __restrict lj = lo.data() + j * total + first;
      const T* __restrict hj = hi.data() + j * total + first;
#pragma omp simd
      for (int w = 0; w < W; ++w) {
        const T t = gap(c[j], lj[w], hj[w]);
        acc[j][w] = t * t;
      }
    }
    for (int h = Lanes<T>::value / 2; h >= 1; h /= 2) {
      if (h >= D) continue;
      for (int a = 0; a < h && a + h < D; ++a)
#pragma omp simd
        for (int w = 0; w < W; ++w) acc[a][w] += acc[a + h][w];
    }
  }

  // Folds the point at position c into every mind it can lower and marks it.
  void fold(int64_t c) {
    T cx[D];
    for (int j = 0; j < D; ++j) cx[j] = xs[j * n + c];
    mind[c] = T(MARK);
    const int64_t cleaf = c / leaf;
    // Depth first; then the visited inner nodes pull their children's best,
    // in reverse pre-order (every node after its descendants).
    int64_t stack[W * 64];
    int depth = 0;
    stack[depth++] = (static_cast<int64_t>(levels() - 1) << 56);  // (level << 56) | index
    inner.clear();
    while (depth > 0) {
      const int64_t e = stack[--depth];
      const int l = static_cast<int>(e >> 56);
      const int64_t i = e & ((int64_t(1) << 56) - 1);
      if (l == 0) {
        update_leaf(i, cx);
        continue;
      }
      inner.push_back(e);
      const int64_t first = off[l - 1] + W * i;
      T acc[D][W];
      child_dist(cx, first, acc);
      uint32_t mask = 0;  // children to visit: no point of the others is closer than its value
      for (int w = 0; w < W; ++w) mask |= static_cast<uint32_t>(acc[0][w] < top[first + w]) << w;
      const int64_t path = (cleaf >> (kShift * (l - 1))) - W * i;  // c's child, if in [0, W)
      if (path >= 0 && path < W) mask |= 1u << path;
      for (; mask; mask &= mask - 1)
        stack[depth++] = (static_cast<int64_t>(l - 1) << 56) | (W * i + __builtin_ctz(mask));
    }
    for (auto it = inner.rbegin(); it != inner.rend(); ++it) {
      const int l = static_cast<int>(*it >> 56);
      const int64_t i = *it & ((int64_t(1) << 56) - 1);
      pull(off[l] + i, off[l - 1] + W * i);
    }
  }
};

}  // namespace bucket
}  // namespace hminsel
