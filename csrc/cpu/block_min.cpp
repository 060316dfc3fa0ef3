// Primitive 2: nearest centre per row, exact direct-form values.
//
// Two ways to find the candidate: the direct form below, with register tiling
// (small d or few centres), or the GEMM form computed by NumPy's BLAS in
// cpu_gemm.py with the epilogues of gemm_window.cpp. Either way every reported
// value is sqdist(x_i, y_j), the value the streaming step computes.
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

template <typename S, typename T>
void block_min_direct(RowSource<S> x, const int64_t* rows, int64_t n, int64_t d, const T* y,
                      int64_t m, bool self_mask, T* value, int64_t* index) {
  // A chunk of centres (~256 KiB) stays in L2 while a block of x rows passes.
  const int64_t chunk = std::max<int64_t>(kTile, (int64_t(256) << 10) / (d * sizeof(T)));
  const int64_t blocks = (n + kRowBlock - 1) / kRowBlock;
  parallel_for(blocks, 4, kRowBlock * m * d, [&](int64_t b0, int64_t b1) {
    RowReader<S> row(x, d);
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t r0 = blk * kRowBlock, r1 = std::min(n, r0 + kRowBlock);
      for (int64_t r = r0; r < r1; ++r) {
        value[r] = std::numeric_limits<T>::infinity();
        index[r] = -1;
      }
      for (int64_t j0 = 0; j0 < m; j0 += chunk) {
        const int64_t j1 = std::min(m, j0 + chunk);
        for (int64_t r = r0; r < r1; ++r) {
          const int64_t i = rows ? rows[r] : r;
          scan_centres(row(i), y, d, j0, j1, self_mask ? i : -1, value[r], index[r]);
        }
      }
    }
  });
}

#define HMINSEL_BLOCK_MIN(S, T)                                                              \
  template void block_min_direct(RowSource<S>, const int64_t*, int64_t, int64_t, const T*,     \
                                 int64_t, bool, T*, int64_t*);
HMINSEL_BLOCK_MIN(float, float)
HMINSEL_BLOCK_MIN(double, double)
HMINSEL_BLOCK_MIN(Half, float)
#undef HMINSEL_BLOCK_MIN

}  // namespace hminsel
