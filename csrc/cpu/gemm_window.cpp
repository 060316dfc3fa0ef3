// The GEMM form's epilogues: candidate scans (top-k a row, or both sides of a
// symmetric tile), certification, and candidate windows that make them exact.
//
// With |G_ij - D_ij| <= eps_i (the GEMM form against the direct form, see
// cpu._gemm_coef), any centre j whose direct value D_ij can reach a bound U
// has G_ij <= U + eps_i. So a row whose candidate was not certified is settled
// by the direct values of the few centres inside that window, not of all m:
// on clustered embeddings, where the nearest and second-nearest are closer
// than eps, that is tens of centres instead of tens of thousands.
#include <algorithm>
#include <limits>
#include <vector>

#include "kernels.h"
#include "parallel.h"

namespace hminsel {

constexpr int64_t kScanChunk = 16;  // GEMM values a vectorised pass computes before any branch

template <typename T>
void gemm_scan_sym(const T* g, int64_t nb, int64_t mb, const T* norms, int64_t row0,
                   int64_t col0, T* best, int64_t* bidx) {
  // Serial, like gemm_scan: it runs between BLAS calls. Two passes a row, both
  // vectorisable: values and the column updates, then the row's own minimum.
  std::vector<T> vals(mb);
  for (int64_t r = 0; r < nb; ++r) {
    const T* gr = g + r * mb;
    const int64_t i = row0 + r;
    const T ni = norms[i];
    T* __restrict v = vals.data();
    for (int64_t c = 0; c < mb; ++c) {
      T w = (ni + norms[col0 + c]) - T(2) * gr[c];
      w = w < T(0) ? T(0) : w;
      v[c] = col0 + c == i ? std::numeric_limits<T>::infinity() : w;
      const bool better = v[c] < best[col0 + c];
      best[col0 + c] = better ? v[c] : best[col0 + c];
      bidx[col0 + c] = better ? i : bidx[col0 + c];
    }
    T low = std::numeric_limits<T>::infinity();
    for (int64_t c = 0; c < mb; ++c) low = v[c] < low ? v[c] : low;
    if (low < best[i]) {
      int64_t c = 0;
      while (v[c] != low) ++c;
      best[i] = low, bidx[i] = col0 + c;
    }
  }
}

template <typename S, typename Sy, typename T>
int64_t gemm_window(const T* g, int64_t nb, int64_t mb, const T* xn, const T* yn, int64_t col0,
                    const int64_t* row_ids, bool self_mask, const double* thresh, RowSource<S> x,
                    int64_t d, RowSource<Sy> y, T* value, int64_t* index, bool parallel) {
  std::vector<int64_t> cand;  // r * mb + c, in increasing column for each row
  for (int64_t r = 0; r < nb; ++r) {
    const T* gr = g + r * mb;
    const int64_t skip = self_mask ? row_ids[r] - col0 : -1;
    for (int64_t c = 0; c < mb; ++c) {
      T v = (xn[r] + yn[col0 + c]) - T(2) * gr[c];  // the arithmetic of gemm_scan
      v = v < T(0) ? T(0) : v;
      if (static_cast<double>(v) <= thresh[r] && c != skip) cand.push_back(r * mb + c);
    }
  }
  return window_fold(cand, mb, col0, row_ids, x, d, y, value, index, parallel);
}

template <typename S, typename Sy, typename T>
int64_t window_fold(const std::vector<int64_t>& cand, int64_t mb, int64_t col0,
                    const int64_t* row_ids, RowSource<S> x, int64_t d, RowSource<Sy> y, T* value,
                    int64_t* index, bool parallel) {
  const int64_t n = static_cast<int64_t>(cand.size());
  std::vector<T> dist(n);
  // Threads only for a big window (~4M elements), and only when the caller is
  // not one of several threads already.
  const int64_t per = parallel && n * d >= 64 * kMinParallelWork ? kMinParallelWork : 0;
  parallel_for(n, 256, per, [&](int64_t lo, int64_t hi) {
    RowReader<S> row(x, d);
    RowReader<Sy> centre(y, d);
    const T* a = nullptr;
    for (int64_t e = lo, last = -1; e < hi; ++e) {  // candidates run row by row: read each once
      const int64_t r = cand[e] / mb, c = cand[e] % mb;
      if (r != last) a = row(row_ids[r]), last = r;
      dist[e] = sqdist(a, centre(col0 + c), d);
    }
  });
  for (int64_t e = 0; e < n; ++e) {  // in candidate order: the lowest column wins a tie
    const int64_t r = cand[e] / mb, j = col0 + cand[e] % mb;
    if (dist[e] < value[r] || (dist[e] == value[r] && j < index[r])) value[r] = dist[e], index[r] = j;
  }
  return n;
}

template <typename T>
void gemm_scan(const T* g, int64_t nb, int64_t mb, const T* xn, const T* yn, int64_t col0,
               const int64_t* row_ids, bool self_mask, const double* reach, double scale, int64_t k,
               T* topv, int64_t* topi) {
  // Serial on purpose: it runs between BLAS calls, whose idle threads spin for
  // a while, and an OpenMP team here fights them for the cores (the whole
  // block_min ran 10-50x slower that way on a 2-core machine with another
  // process running). At ~5 flops an element it costs ~2/d of the GEMM.
  for (int64_t r = 0; r < nb; ++r) {
    const T* gr = g + r * mb;  // (mb,) this row's tile of x . y^T
    const int64_t skip = self_mask ? row_ids[r] - col0 : -1;
    const T xr = xn[r];
    T* tv = topv + r * k;
    int64_t* ti = topi + r * k;
    T worst = tv[k - 1];
    for (int64_t c0 = 0; c0 < mb; c0 += kScanChunk) {
      const int64_t len = std::min(kScanChunk, mb - c0);
      T v[kScanChunk];
      int hit = 0;  // an OR, not a min: it vectorises without -ffast-math
      if (len == kScanChunk) {
        for (int64_t e = 0; e < kScanChunk; ++e) {  // vectorised: most chunks end here
          const T w = (xr + yn[col0 + c0 + e]) - T(2) * gr[c0 + e];
          v[e] = w < T(0) ? T(0) : w;  // the GEMM form can cancel below 0
          hit |= v[e] < worst;
        }
      } else {
        for (int64_t e = 0; e < len; ++e) {
          const T w = (xr + yn[col0 + c0 + e]) - T(2) * gr[c0 + e];
          v[e] = w < T(0) ? T(0) : w;
          hit |= v[e] < worst;
        }
      }
      if (!hit) continue;
      for (int64_t e = 0; e < len; ++e) {
        const int64_t c = c0 + e;
        if (!(v[e] < worst) || c == skip) continue;  // dropped: >= the final k-th value
        // Beyond scale * running best + reach: outside every later window too.
        if (static_cast<double>(v[e]) > static_cast<double>(tv[0]) * scale + reach[r]) continue;
        int64_t p = k - 1;
        for (; p > 0 && tv[p - 1] > v[e]; --p) tv[p] = tv[p - 1], ti[p] = ti[p - 1];
        tv[p] = v[e], ti[p] = col0 + c;  // after equal values: the lower column stays first
        worst = tv[k - 1];
      }
    }
  }
}

template <typename S, typename T>
int64_t gemm_settle(RowSource<S> x, const int64_t* rows, int64_t nb, int64_t d, const T* y, int64_t k,
                    const T* topv, const int64_t* topi, const double* err, double rel, T* value,
                    int64_t* index, uint8_t* sure) {
  std::atomic<int64_t> unsure{0};
  parallel_for(nb, 64, d, [&](int64_t lo, int64_t hi) {
    RowReader<S> row(x, d);
    int64_t mine = 0;
    for (int64_t r = lo; r < hi; ++r) {
      const T* tv = topv + r * k;
      const int64_t* ti = topi + r * k;
      const T* a = row(rows[r]);
      index[r] = ti[0];
      value[r] = ti[0] >= 0 ? sqdist(a, y + ti[0] * d, d) : std::numeric_limits<T>::infinity();
      // A centre that can tie or beat the candidate has G <= thresh (cpu_gemm.window_thresh).
      const double thresh = (double(value[r]) / (1.0 - rel) + err[r]) * (1.0 + kThreshBump);
      bool ok = ti[0] >= 0 && double(tv[k - 1]) > thresh;  // the whole window is in the list
      for (int64_t e = 1; ok && e < k && double(tv[e]) <= thresh; ++e) {
        const T v = sqdist(a, y + ti[e] * d, d);
        if (v < value[r] || (v == value[r] && ti[e] < index[r])) value[r] = v, index[r] = ti[e];
      }
      sure[r] = ok;
      mine += !ok;
    }
    unsure.fetch_add(mine, std::memory_order_relaxed);
  });
  return unsure.load();
}

template <typename S, typename Sy, typename T>
void pair_sqdist(RowSource<S> x, const int64_t* rows, int64_t n, int64_t d, RowSource<Sy> y,
                 const int64_t* cols, T* out) {
  parallel_for(n, 256, d, [&](int64_t lo, int64_t hi) {
    RowReader<S> row(x, d);
    RowReader<Sy> centre(y, d);
    for (int64_t r = lo; r < hi; ++r) out[r] = sqdist(row(rows[r]), centre(cols[r]), d);
  });
}

#define HMINSEL_GEMM_WINDOW(T)                                                                \
  template void gemm_scan_sym(const T*, int64_t, int64_t, const T*, int64_t, int64_t, T*,     \
                              int64_t*);                                                      \
  template void gemm_scan(const T*, int64_t, int64_t, const T*, const T*, int64_t,            \
                          const int64_t*, bool, const double*, double, int64_t, T*, int64_t*);
// The kernels that read rows of x: for each storage S of x (rows.h), and
// storage Sy of y rows where y may be x.
#define HMINSEL_GEMM_ROWS(S, T)                                                               \
  template int64_t gemm_settle(RowSource<S>, const int64_t*, int64_t, int64_t, const T*, int64_t, \
                               const T*, const int64_t*, const double*, double, T*, int64_t*, \
                               uint8_t*);
#define HMINSEL_GEMM_PAIRS(S, Sy, T)                                                          \
  template int64_t gemm_window(const T*, int64_t, int64_t, const T*, const T*, int64_t,       \
                               const int64_t*, bool, const double*, RowSource<S>, int64_t,    \
                               RowSource<Sy>, T*, int64_t*, bool);                            \
  template int64_t window_fold(const std::vector<int64_t>&, int64_t, int64_t, const int64_t*,  \
                               RowSource<S>, int64_t, RowSource<Sy>, T*, int64_t*, bool);      \
  template void pair_sqdist(RowSource<S>, const int64_t*, int64_t, int64_t, RowSource<Sy>,    \
                            const int64_t*, T*);
HMINSEL_GEMM_WINDOW(float)
HMINSEL_GEMM_WINDOW(double)
HMINSEL_GEMM_ROWS(float, float)
HMINSEL_GEMM_ROWS(double, double)
HMINSEL_GEMM_ROWS(Half, float)
HMINSEL_GEMM_PAIRS(float, float, float)
HMINSEL_GEMM_PAIRS(double, double, double)
HMINSEL_GEMM_PAIRS(Half, float, float)
HMINSEL_GEMM_PAIRS(Half, Half, float)
#undef HMINSEL_GEMM_PAIRS
#undef HMINSEL_GEMM_ROWS
#undef HMINSEL_GEMM_WINDOW

}  // namespace hminsel
