// The pruned refresh of the exact lazy FPS (Backend.refresh in base.py).
//
// Each live row i has an exact value ub[i] = |x_i - p_a|^2 against its owner,
// pick a. A new center c can only lower it if |p_a - c| < 2 |x_i - p_a|; the
// driver lists, per owner a, the centers that pass that test for the largest
// value in a's cell, with a lower bound cval on |p_a - c|^2.
//
// Row by row: each row keeps only the centers that pass the test for its own
// value and computes those distances with sqdist_k. Cell by cell (float32
// sums with the fused GEMM, when the caller passes its bound): the rows of a
// cell share their list, so a cell's rows meet its whole list through
// FewSearch (fused_min.h), one read a row and the GEMM form a centre; a
// superset of a row's own centers, and the ones it adds are farther than p_a,
// so the result is the same. Either way values are bit for bit those of the step.
#include <algorithm>
#include <limits>
#include <type_traits>

#include "fused_min.h"
#include "parallel.h"

namespace hminsel {
namespace {

constexpr int64_t kCellRows = 4096;   // rows of one cell a FewSearch call takes
constexpr int64_t kCellMinRows = 4;   // fewer rows in a cell: packing its list costs more than it saves
constexpr int64_t kCellMinList = 12;  // a shorter list: the direct form is as fast (cpu.FEW_CENTRES)

// Folds the listed centers of row i's cell that pass its own test into
// ub[i]/owner[i]; returns whether the row was read.
template <typename S, typename T>
bool refresh_row(RowReader<S>& read_row, int64_t i, int64_t d, T* ub, int64_t* owner, const T* centers,
                 int64_t base, const int64_t* ptr, const int64_t* cidx, const double* cval, double slack) {
  constexpr int K = 4;  // centers per sqdist_k call: the row's loads are shared
  const T u = ub[i];
  const int64_t a = owner[i];
  const double bound = 4.0 * static_cast<double>(u) * (1.0 + slack);  // the value before this fold
  const T* row = nullptr;  // read once a center passes the test
  T best = u;
  int64_t who = a;
  const T* cand[K];
  int64_t ids[K];
  int got = 0;
  auto flush = [&](int count) {
    if (count == 0) return;
    if (row == nullptr) row = read_row(i);
    T dist[K];
    if (count == K) {
      sqdist_k<T, K>(row, cand, d, dist);
    } else {
      for (int q = 0; q < count; ++q) dist[q] = sqdist(row, cand[q], d);
    }
    for (int q = 0; q < count; ++q)  // ascending center order: strict < keeps the lowest
      if (dist[q] < best) best = dist[q], who = base + ids[q];
  };
  for (int64_t e = ptr[a]; e < ptr[a + 1]; ++e) {
    if (cval[e] > bound) continue;  // |p_a - c| > 2 |x_i - p_a|: c is farther than p_a
    cand[got] = centers + cidx[e] * d;
    ids[got] = cidx[e];
    if (++got == K) flush(K), got = 0;
  }
  flush(got);
  ub[i] = best;
  owner[i] = who;
  return row != nullptr;
}

template <typename S, typename T>
int64_t refresh_rows(RowSource<S> x, int64_t n, int64_t d, T* ub, int64_t* owner, const T* centers,
                     int64_t base, const int64_t* ptr, const int64_t* cidx, const double* cval, double slack) {
  std::atomic<int64_t> touched{0};
  parallel_for(n, 512, d, [&](int64_t lo, int64_t hi) {
    RowReader<S> read_row(x, d);
    int64_t mine = 0;
    for (int64_t i = lo; i < hi; ++i)
      if (ub[i] != T(MARK)) mine += refresh_row(read_row, i, d, ub, owner, centers, base, ptr, cidx, cval, slack);
    touched.fetch_add(mine, std::memory_order_relaxed);
  });
  return touched.load();
}

#if HMINSEL_FUSED_GEMM
struct CellRows {
  int64_t a, lo, hi;  // owner, and a range of order[] (rows of a's cell)
};

template <typename S>
int64_t refresh_cells(RowSource<S> x, int64_t n, int64_t d, float* ub, int64_t* owner, const float* centers,
                      int64_t base, const int64_t* ptr, const int64_t* cidx, const double* cval, double slack,
                      const SmallBound& few) {
  // The rows that some listed center may reach, by owner (a counting sort: ascending rows).
  std::vector<double> low(base, std::numeric_limits<double>::infinity());
  for (int64_t a = 0; a < base; ++a)
    for (int64_t e = ptr[a]; e < ptr[a + 1]; ++e) low[a] = std::min(low[a], cval[e]);
  auto reached = [&](int64_t i) {
    return ub[i] != float(MARK) && low[owner[i]] <= 4.0 * static_cast<double>(ub[i]) * (1.0 + slack);
  };
  std::vector<int64_t> start(base + 1, 0);
  for (int64_t i = 0; i < n; ++i)
    if (reached(i)) ++start[owner[i] + 1];
  for (int64_t a = 0; a < base; ++a) start[a + 1] += start[a];
  std::vector<int64_t> order(start[base]), next(start.begin(), start.end() - 1);
  for (int64_t i = 0; i < n; ++i)
    if (reached(i)) order[next[owner[i]]++] = i;
  std::vector<CellRows> cells;
  for (int64_t a = 0; a < base; ++a)
    for (int64_t lo = start[a]; lo < start[a + 1]; lo += kCellRows)
      cells.push_back({a, lo, std::min(start[a + 1], lo + kCellRows)});
  const int64_t work = cells.empty() ? 0 : (ptr[base] / base + 1) * d * kCellRows;
  parallel_for(static_cast<int64_t>(cells.size()), 8, work, [&](int64_t c0, int64_t c1) {
    FewSearch<S> search(x, d, few);
    RowReader<S> read_row(x, d);
    std::vector<float> y;
    for (int64_t c = c0; c < c1; ++c) {
      const CellRows cell = cells[c];
      const int64_t first = ptr[cell.a], m = ptr[cell.a + 1] - first;
      if (m < kCellMinList || start[cell.a + 1] - start[cell.a] < kCellMinRows) {
        for (int64_t r = cell.lo; r < cell.hi; ++r)
          refresh_row(read_row, order[r], d, ub, owner, centers, base, ptr, cidx, cval, slack);
        continue;
      }
      y.resize(m * d);
      for (int64_t j = 0; j < m; ++j) std::copy_n(centers + cidx[first + j] * d, d, y.data() + j * d);
      search.pack(y.data(), m);
      const int64_t* rows = order.data() + cell.lo;
      search.nearest(rows, 0, cell.hi - cell.lo, [&](int64_t r, float best, int64_t who) {
        const int64_t i = rows[r];
        if (best < ub[i]) ub[i] = best, owner[i] = base + cidx[first + who];  // list order: ascending centers
      });
    }
  });
  return start[base];
}
#endif

}  // namespace

template <typename S, typename T>
int64_t refresh(RowSource<S> x, int64_t n, int64_t d, T* ub, int64_t* owner, const T* centers,
                int64_t base, const int64_t* ptr, const int64_t* cidx, const double* cval,
                double slack, const SmallBound* few) {
#if HMINSEL_FUSED_GEMM
  if constexpr (std::is_same_v<T, float>)
    if (few != nullptr && base > 0) return refresh_cells(x, n, d, ub, owner, centers, base, ptr, cidx, cval, slack, *few);
#endif
  (void)few;
  return refresh_rows(x, n, d, ub, owner, centers, base, ptr, cidx, cval, slack);
}

template int64_t refresh(RowSource<float>, int64_t, int64_t, float*, int64_t*, const float*, int64_t,
                         const int64_t*, const int64_t*, const double*, double, const SmallBound*);
template int64_t refresh(RowSource<double>, int64_t, int64_t, double*, int64_t*, const double*,
                         int64_t, const int64_t*, const int64_t*, const double*, double, const SmallBound*);
template int64_t refresh(RowSource<Half>, int64_t, int64_t, float*, int64_t*, const float*, int64_t,
                         const int64_t*, const int64_t*, const double*, double, const SmallBound*);

}  // namespace hminsel
