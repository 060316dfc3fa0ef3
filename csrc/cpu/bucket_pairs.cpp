// h_min in low d (1 <= d <= 8) on the tree of the bucket FPS (bucket_tree.h):
// the exact nearest other row of every row that can be in a closest pair.
//
// g, a bound on the closest squared distance, starts as the smallest distance
// between rows a few places apart on the Morton order and only falls. Each row
// then walks the tree from the root, entering only the nodes whose box
// distance to it is <= g (bucket.h: gap, never above the distance of a point
// inside), and takes its distance to every point of the buckets it reaches
// (bucket_dist: the values of sqdist_k). A pair at the final minimum is never
// skipped: its box distances are <= its distance = the minimum <= g at every
// moment. So each row of a closest pair ends with its exact nearest, lowest
// row on ties; a row whose value is above the minimum may hold a nearer row
// it never reached, and the caller drops it. Rows are spread over the pool's
// threads bucket by bucket; g is shared (lower_to).
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "bucket_tree.h"
#include "stop.h"
#include "parallel.h"

namespace hminsel {
namespace bucket {
namespace {

constexpr int64_t kOrderReach = 8;  // the first bound: each row against the next 8 on the curve

template <typename T, int D>
T first_bound(const Tree<T, D>& tree) {
  const int64_t n = tree.n;
  T g = std::numeric_limits<T>::infinity();
  parallel_for(n, 4096, kOrderReach * D, [&](int64_t lo, int64_t hi) {
    T local = std::numeric_limits<T>::infinity(), acc[D][kMaxLeaf];
    for (int64_t p = lo; p < hi; ++p) {
      const int64_t cnt = std::min(kOrderReach, n - p - 1);
      if (cnt <= 0) break;
      T c[D];
      for (int j = 0; j < D; ++j) c[j] = tree.xs[j * n + p];
      bucket_dist<T, D>(tree.xs.data() + p + 1, n, cnt, c, acc);
      for (int64_t q = 0; q < cnt; ++q) local = acc[0][q] < local ? acc[0][q] : local;
    }
    lower_to(&g, local);
  });
  return g;
}

// Nodes whose points all coincide (a box of no extent): every point's distance
// to a row is then the node's box distance (gap = |p - c| exactly, squared
// and summed as the point's), so such a node answers at once with its lowest
// row other than the row itself. A cloud of many repeated points then costs
// each copy a walk, not a visit to every bucket holding the point.
template <typename T, int D>
struct Flat {
  std::vector<uint8_t> flat;           // (total,) all points of the node coincide
  std::vector<uint32_t> first, second;  // (total,) its two lowest rows (~0: none)

  explicit Flat(const Tree<T, D>& tree) : flat(tree.total, 0), first(tree.total, ~0u), second(tree.total, ~0u) {
    const int64_t total = tree.total;
    auto add = [&](int64_t node, uint32_t r) {
      if (r < first[node]) second[node] = first[node], first[node] = r;
      else if (r < second[node]) second[node] = r;
    };
    for (int64_t b = 0; b < tree.count[0]; ++b)
      for (int64_t p = b * tree.leaf, end = std::min(tree.n, p + tree.leaf); p < end; ++p) add(b, tree.id[p]);
    for (int l = 1; l < tree.levels(); ++l)
      for (int64_t i = 0; i < tree.count[l]; ++i)
        for (int w = 0; w < Tree<T, D>::W; ++w) {
          const int64_t child = tree.off[l - 1] + Tree<T, D>::W * i + w;
          add(tree.off[l] + i, first[child]);
          add(tree.off[l] + i, second[child]);
        }
    for (int64_t node = 0; node < total; ++node) {
      bool same = first[node] != ~0u;  // (an empty node has no box)
      for (int j = 0; j < D; ++j) same = same && tree.lo[j * total + node] == tree.hi[j * total + node];
      flat[node] = same;
    }
  }
};

// Row at position p: its nearest other row among the points of the buckets
// whose boxes are within the shared bound g, into value/nearest (by row).
template <typename T, int D>
void nearest_in_reach(const Tree<T, D>& tree, const Flat<T, D>& flat, int64_t p, T* g, T* value,
                      int64_t* nearest) {
  constexpr int W = Tree<T, D>::W;
  const int64_t n = tree.n;
  T c[D];
  for (int j = 0; j < D; ++j) c[j] = tree.xs[j * n + p];
  constexpr T kInf = std::numeric_limits<T>::infinity();
  T best = kInf;
  uint32_t who = 0xFFFFFFFFu;
  T reach = load_relaxed(g);
  auto scan = [&](int64_t b) {  // every point of bucket b
    const int64_t p0 = b * tree.leaf, cnt = std::min(n, p0 + tree.leaf) - p0;
    T acc[D][kMaxLeaf];
    bucket_dist<T, D>(tree.xs.data() + p0, n, cnt, c, acc);
    for (int64_t q = 0; q < cnt; ++q) {
      const T v = acc[0][q];
      const uint32_t r = tree.id[p0 + q];
      // (an inf distance never matches, as in the direct form: value inf, row -1)
      if (p0 + q != p && (v < best || (v == best && r < who && v < kInf))) best = v, who = r;
    }
    if (best < reach) reach = lower_to(g, best);
  };
  const uint32_t me = tree.id[p];
  auto take_flat = [&](int64_t node, T v) {  // every point of the node at distance v
    const uint32_t r = flat.first[node] == me ? flat.second[node] : flat.first[node];
    if (r != ~0u && (v < best || (v == best && r < who && v < kInf))) best = v, who = r;
    if (best < reach) reach = lower_to(g, best);
  };
  const int64_t own = p / tree.leaf;
  scan(own);  // the nearest rows are most often here: a tight reach first
  int64_t stack[W * 64];
  int depth = 0;
  stack[depth++] = static_cast<int64_t>(tree.levels() - 1) << 56;  // (level << 56) | index
  while (depth > 0) {
    const int64_t e = stack[--depth];
    const int l = static_cast<int>(e >> 56);
    const int64_t i = e & ((int64_t(1) << 56) - 1);
    if (l == 0) {
      if (i != own) scan(i);
      continue;
    }
    const int64_t first = tree.off[l - 1] + W * i;
    T acc[D][W];
    tree.child_dist(c, first, acc);
    const int64_t live = tree.count[l - 1] - W * i;  // children that exist (the rest: padding)
    for (int w = std::min<int64_t>(W, live) - 1; w >= 0; --w) {  // lowest child popped first
      if (!(acc[0][w] <= reach)) continue;
      if (flat.flat[first + w]) take_flat(first + w, acc[0][w]);
      else stack[depth++] = (static_cast<int64_t>(l - 1) << 56) | (W * i + w);
    }
  }
  value[tree.id[p]] = best;
  nearest[tree.id[p]] = who == 0xFFFFFFFFu ? -1 : static_cast<int64_t>(who);
}

template <typename T, int D>
void closest(const T* x, int64_t rows, int64_t leaf, T* value, int64_t* nearest, Stop* stop) {
  Tree<T, D> tree;
  tree.build(x, rows, nullptr, leaf, true);  // clustered clouds: cells refined
  const Flat<T, D> flat(tree);
  T g = first_bound(tree);
  const int64_t buckets = tree.count[0];
  parallel_for(buckets, 4, tree.leaf * tree.leaf * D, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1 && !stopped(stop); ++b)
      for (int64_t p = b * tree.leaf, end = std::min(tree.n, p + tree.leaf); p < end; ++p)
        nearest_in_reach(tree, flat, p, &g, value, nearest);
  });
}

}  // namespace
}  // namespace bucket

template <typename T>
void bucket_closest(const T* x, int64_t rows, int64_t d, int64_t leaf, T* value, int64_t* nearest,
                    Stop* stop) {
  switch (d) {
#define HMINSEL_ONE(D) \
  case D: return bucket::closest<T, D>(x, rows, leaf, value, nearest, stop);
    HMINSEL_ONE(1) HMINSEL_ONE(2) HMINSEL_ONE(3) HMINSEL_ONE(4)
    HMINSEL_ONE(5) HMINSEL_ONE(6) HMINSEL_ONE(7) HMINSEL_ONE(8)
#undef HMINSEL_ONE
  }
}

template void bucket_closest(const float*, int64_t, int64_t, int64_t, float*, int64_t*, Stop*);
template void bucket_closest(const double*, int64_t, int64_t, int64_t, double*, int64_t*, Stop*);

}  // namespace hminsel
