// block_min against a few centres (up to a few hundred) in one pass over x.
//
// The direct form costs three operations an element a centre; the GEMM path
// of cpu_gemm.block_min reads x about three times (a centred tile, its scan,
// the settle) and its top-k lists are built for thousands of centres. Here
// each block of 8 rows is read once: centred into a small buffer, its norms,
// the GEMM form G against every centre from fused_block's registers, then,
// while the rows are still in L1, the direct value of the smallest G and of
// every centre in its window (gemm_settle's rule, cpu_gemm.window_thresh).
// A centre that can tie or beat that candidate lies inside the window, so the
// result is the nearest centre by sqdist, lowest index on ties: the values and
// indices block_min_direct gives.
#include <algorithm>
#include <limits>
#include <vector>

#include "fused_gemm.h"
#include "kernels.h"
#include "parallel.h"

namespace hminsel {
namespace {

constexpr int kNormLanes = 16;  // partial sums of a norm: the GEMM bound holds in any order

// xc = a - mu (d floats) and its squared norm.
inline float centre_row(const float* a, const float* mu, int64_t d, float* xc) {
  float acc[kNormLanes] = {};
  int64_t k = 0;
  for (; k + kNormLanes <= d; k += kNormLanes)
    for (int l = 0; l < kNormLanes; ++l) {
      const float t = a[k + l] - mu[k + l];
      xc[k + l] = t;
      acc[l] += t * t;
    }
  for (; k < d; ++k) {
    const float t = a[k] - mu[k];
    xc[k] = t;
    acc[0] += t * t;
  }
  float s = 0.f;
  for (int l = 0; l < kNormLanes; ++l) s += acc[l];
  return s;
}

}  // namespace

template <typename S>
void fused_block_min(RowSource<S> x, const int64_t* rows, int64_t n, int64_t d, const float* y,
                     int64_t m, const float* mu, const float* panels, const float* yn,
                     const SmallBound& bound, float* value, int64_t* index) {
#if HMINSEL_FUSED_GEMM
  const int64_t npanels = (m + kFusedCols - 1) / kFusedCols, stride = npanels * kFusedCols;
  const int64_t blocks = (n + kFusedRows - 1) / kFusedRows;
  parallel_for(blocks, 16, kFusedRows * (m + 8) * d, [&](int64_t b0, int64_t b1) {
    std::vector<RowReader<S>> readers(kFusedRows, RowReader<S>(x, d));
    std::vector<float> xc(kFusedRows * d, 0.f), g(kFusedRows * stride);
    alignas(64) float w[kFusedRows * kFusedCols];
    alignas(64) float ynp[kFusedCols];
    alignas(64) float xnp[kFusedRows];
    const float* a[kFusedRows];
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t r0 = blk * kFusedRows;
      const int nr = static_cast<int>(std::min<int64_t>(kFusedRows, n - r0));
      for (int q = 0; q < kFusedRows; ++q) {  // rows past n: zeros (their G is never read)
        if (q < nr) {
          a[q] = readers[q](rows ? rows[r0 + q] : r0 + q);
          xnp[q] = centre_row(a[q], mu, d, xc.data() + q * d);
        } else {
          std::fill(xc.begin() + q * d, xc.begin() + (q + 1) * d, 0.f);
          xnp[q] = 0.f;
        }
      }
      for (int64_t p = 0; p < npanels; ++p) {
        const int64_t c0 = p * kFusedCols;
        for (int c = 0; c < kFusedCols; ++c) ynp[c] = c0 + c < m ? yn[c0 + c] : 0.f;
        fused_block(xc.data(), d, panels + p * d * kFusedCols, xnp, ynp, w);
        for (int q = 0; q < nr; ++q)
          std::copy(w + q * kFusedCols, w + (q + 1) * kFusedCols, g.data() + q * stride + c0);
      }
      for (int q = 0; q < nr; ++q) {
        const float* gq = g.data() + q * stride;
        const int64_t b = std::min_element(gq, gq + m) - gq;  // the candidate: the smallest G
        float best = sqdist(a[q], y + b * d, d);
        int64_t who = b;
        const double err = bound.coef * (double(xnp[q]) + bound.ymax) + bound.floor;
        const double thresh = (double(best) / (1.0 - bound.rel) + err) * (1.0 + kThreshBump);
        for (int64_t j = 0; j < m; ++j) {
          if (j == b || double(gq[j]) > thresh) continue;
          const float v = sqdist(a[q], y + j * d, d);
          if (v < best || (v == best && j < who)) best = v, who = j;
        }
        value[r0 + q] = best;
        index[r0 + q] = who;
      }
    }
  });
#else
  (void)x, (void)rows, (void)n, (void)d, (void)y, (void)m, (void)mu, (void)panels, (void)yn;
  (void)bound, (void)value, (void)index;
#endif
}

template void fused_block_min(RowSource<float>, const int64_t*, int64_t, int64_t, const float*, int64_t,
                              const float*, const float*, const float*, const SmallBound&, float*,
                              int64_t*);
template void fused_block_min(RowSource<Half>, const int64_t*, int64_t, int64_t, const float*, int64_t,
                              const float*, const float*, const float*, const SmallBound&, float*,
                              int64_t*);

}  // namespace hminsel
