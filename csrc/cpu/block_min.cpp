// Primitive 2: nearest centre per row, exact direct-form values.
//
// Two ways to find the candidate: the direct form with register tiling (small
// d or few centres), or the GEMM form computed by NumPy's BLAS in cpu.py with
// the scan/certify epilogue below. Either way every reported value is
// sqdist(x_i, y_j), the value the streaming step computes.
#include <algorithm>
#include <limits>

#include "kernels.h"
#include "parallel.h"

namespace hminsel {
namespace {

constexpr int kTile = 4;         // centres per load of an x row
constexpr int64_t kRowBlock = 16;  // x rows that share one pass over a y chunk

// Fold centres [j0, j1) of y into the running (best, bidx) of row a, skipping
// centre `skip`. Increasing j with strict < keeps the lowest index on ties.
template <typename T>
void scan_centres(const T* a, const T* y, int64_t d, int64_t j0, int64_t j1, int64_t skip,
                  T& best, int64_t& bidx) {
  int64_t j = j0;
  for (; j + kTile <= j1; j += kTile) {
    const T* b[kTile];
    for (int k = 0; k < kTile; ++k) b[k] = y + (j + k) * d;
    T out[kTile];
    sqdist_k<T, kTile>(a, b, d, out);
    for (int k = 0; k < kTile; ++k)
      if (out[k] < best && j + k != skip) best = out[k], bidx = j + k;
  }
  for (; j < j1; ++j) {
    const T v = sqdist(a, y + j * d, d);
    if (v < best && j != skip) best = v, bidx = j;
  }
}

}  // namespace

template <typename T>
void block_min_direct(const T* x, const int64_t* rows, int64_t n, int64_t d, const T* y,
                      int64_t m, bool self_mask, T* value, int64_t* index) {
  // A chunk of centres (~256 KiB) stays in L2 while a block of x rows passes.
  const int64_t chunk = std::max<int64_t>(kTile, (int64_t(256) << 10) / (d * sizeof(T)));
  const int64_t blocks = (n + kRowBlock - 1) / kRowBlock;
#pragma omp parallel for schedule(dynamic, 4) if (n * m * d >= kMinParallelWork)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t r0 = blk * kRowBlock, r1 = std::min(n, r0 + kRowBlock);
    for (int64_t r = r0; r < r1; ++r) {
      value[r] = std::numeric_limits<T>::infinity();
      index[r] = -1;
    }
    for (int64_t j0 = 0; j0 < m; j0 += chunk) {
      const int64_t j1 = std::min(m, j0 + chunk);
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t i = rows ? rows[r] : r;
        scan_centres(x + i * d, y, d, j0, j1, self_mask ? i : -1, value[r], index[r]);
      }
    }
  }
}

template <typename T>
void gemm_scan(const T* g, int64_t nb, int64_t mb, const T* xn, const T* yn, int64_t col0,
               const int64_t* row_ids, bool self_mask, T* best, T* second, int64_t* bidx) {
  // Serial on purpose: it runs between BLAS calls, whose idle threads spin for
  // a while, and an OpenMP team here fights them for the cores (the whole
  // block_min ran 10-50x slower that way on a 2-core machine with another
  // process running). At ~5 flops an element it costs ~2/d of the GEMM.
  for (int64_t r = 0; r < nb; ++r) {
    const T* gr = g + r * mb;  // (mb,) this row's tile of x . y^T
    const int64_t skip = self_mask ? row_ids[r] - col0 : -1;
    T b = best[r], s = second[r];
    int64_t bi = bidx[r];
    for (int64_t c = 0; c < mb; ++c) {
      T v = (xn[r] + yn[col0 + c]) - T(2) * gr[c];
      v = v < T(0) ? T(0) : v;  // the GEMM form can cancel below 0
      if (c == skip) continue;
      if (v < b) {
        s = b, b = v, bi = col0 + c;
      } else if (v < s) {
        s = v;  // ties with b land here: second == best, so the row is re-done
      }
    }
    best[r] = b, second[r] = s, bidx[r] = bi;
  }
}

template <typename T>
void gemm_finish(const T* x, const int64_t* rows, int64_t nb, int64_t d, const T* y,
                 int64_t m, bool self_mask, const T* best, const T* second,
                 const int64_t* bidx, const T* xn, double ymax, double coef, T* value,
                 int64_t* index, int64_t* redone) {
  int64_t count = 0;
#pragma omp parallel for schedule(dynamic, 16) reduction(+ : count) if (nb * d >= kMinParallelWork)
  for (int64_t r = 0; r < nb; ++r) {
    const int64_t i = rows[r];
    const T* a = x + i * d;
    // |GEMM value - direct value| <= coef * (|x_i - mu|^2 + max_j |y_j - mu|^2).
    const double err = coef * (static_cast<double>(xn[r]) + ymax);
    if (bidx[r] >= 0 && double(second[r]) - double(best[r]) > 2 * err) {
      index[r] = bidx[r];
      value[r] = sqdist(a, y + bidx[r] * d, d);
    } else {
      T v = std::numeric_limits<T>::infinity();
      int64_t j = -1;
      scan_centres(a, y, d, 0, m, self_mask ? i : -1, v, j);
      value[r] = v, index[r] = j;
      ++count;
    }
  }
  *redone = count;
}

#define HMINSEL_BLOCK_MIN(T)                                                                 \
  template void block_min_direct(const T*, const int64_t*, int64_t, int64_t, const T*,     \
                                 int64_t, bool, T*, int64_t*);                                \
  template void gemm_scan(const T*, int64_t, int64_t, const T*, const T*, int64_t,          \
                          const int64_t*, bool, T*, T*, int64_t*);                            \
  template void gemm_finish(const T*, const int64_t*, int64_t, int64_t, const T*, int64_t,  \
                            bool, const T*, const T*, const int64_t*, const T*, double,      \
                            double, T*, int64_t*, int64_t*);
HMINSEL_BLOCK_MIN(float)
HMINSEL_BLOCK_MIN(double)
#undef HMINSEL_BLOCK_MIN

}  // namespace hminsel
