// The pruned refresh of the exact lazy FPS (Backend.refresh in base.py).
//
// Each live row i has an exact value ub[i] = |x_i - p_a|^2 against its owner,
// pick a. A new center c can only lower it if |p_a - c| < 2 |x_i - p_a|; the
// driver lists, per owner a, the centers that pass that test for the largest
// value in a's cell, with a lower bound cval on |p_a - c|^2. Here each row
// keeps only the centers that pass it for its own value, and computes those
// distances with sqdist_k, so values are bit for bit those of the step.
#include "kernels.h"
#include "parallel.h"

namespace hminsel {

template <typename S, typename T>
int64_t refresh(RowSource<S> x, int64_t n, int64_t d, T* ub, int64_t* owner, const T* centers,
                int64_t base, const int64_t* ptr, const int64_t* cidx, const double* cval,
                double slack) {
  constexpr int K = 4;  // centers per sqdist_k call: the row's loads are shared
  std::atomic<int64_t> touched{0};
  parallel_for(n, 512, d, [&](int64_t lo, int64_t hi) {
    RowReader<S> read_row(x, d);
    int64_t mine = 0;
    for (int64_t i = lo; i < hi; ++i) {
      const T u = ub[i];
      if (u == T(MARK)) continue;
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
          if (dist[q] < best) {
            best = dist[q];
            who = base + ids[q];
          }
      };
      bool read = false;
      for (int64_t e = ptr[a]; e < ptr[a + 1]; ++e) {
        if (cval[e] > bound) continue;  // |p_a - c| > 2 |x_i - p_a|: c is farther than p_a
        cand[got] = centers + cidx[e] * d;
        ids[got] = cidx[e];
        read = true;
        if (++got == K) {
          flush(K);
          got = 0;
        }
      }
      flush(got);
      ub[i] = best;
      owner[i] = who;
      mine += read;
    }
    touched.fetch_add(mine, std::memory_order_relaxed);
  });
  return touched.load();
}

template int64_t refresh(RowSource<float>, int64_t, int64_t, float*, int64_t*, const float*, int64_t,
                         const int64_t*, const int64_t*, const double*, double);
template int64_t refresh(RowSource<double>, int64_t, int64_t, double*, int64_t*, const double*,
                         int64_t, const int64_t*, const int64_t*, const double*, double);
template int64_t refresh(RowSource<Half>, int64_t, int64_t, float*, int64_t*, const float*, int64_t,
                         const int64_t*, const int64_t*, const double*, double);

}  // namespace hminsel
