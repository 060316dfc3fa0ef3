// The nearest of a few centres (up to a few hundred) for blocks of rows, in one
// read of each row: the GEMM form G of 8 rows against every centre from
// fused_block's registers (fused_gemm.h), then, while the rows are in L1, the
// direct value of the smallest G and of every centre in its window
// (gemm_settle's rule, cpu_gemm.window_thresh). A centre that can tie or beat
// that candidate lies inside the window, so the answer is the nearest centre
// by sqdist, lowest index on ties: what block_min_direct gives.
// Used by fused_min.cpp (block_min) and refresh.cpp (a cell's rows at a time).
#pragma once

#include <algorithm>
#include <vector>

#include "fused_gemm.h"
#include "kernels.h"

namespace hminsel {

#if HMINSEL_FUSED_GEMM
// One thread's search over centres y (m, d) packed on a centre mu: panels =
// pack_panels of y - mu, yn their norms (either the caller's or packed here).
template <typename S>
class FewSearch {
 public:
  FewSearch(RowSource<S> x, int64_t d, const SmallBound& bound)
      : d_(d), bound_(bound), readers_(kFusedRows, RowReader<S>(x, d)), xc_(kFusedRows * d, 0.f) {}

  // Centres packed by the caller (kept, not copied).
  void use(const float* y, int64_t m, const float* mu, const float* panels, const float* yn) {
    y_ = y, m_ = m, mu_ = mu, panels_ = panels, yn_ = yn;
    ymax_ = 0.0;
    for (int64_t j = 0; j < m; ++j) ymax_ = std::max(ymax_, double(yn[j]));
    g_.resize(kFusedRows * stride());
  }

  // Centres y (m, d) packed here on their mean.
  void pack(const float* y, int64_t m) {
    mu_own_.assign(d_, 0.f);
    std::vector<double> sum(d_, 0.0);
    for (int64_t j = 0; j < m; ++j)
      for (int64_t k = 0; k < d_; ++k) sum[k] += y[j * d_ + k];
    for (int64_t k = 0; k < d_; ++k) mu_own_[k] = static_cast<float>(sum[k] / double(m));
    const int64_t np = (m + kFusedCols - 1) / kFusedCols;
    panels_own_.resize(np * kFusedCols * d_);
    yn_own_.resize(np * kFusedCols);
    pack_panels(y, 0, m, d_, mu_own_.data(), panels_own_.data());
    for (int64_t p = 0; p < np; ++p)  // the norms from the packed values
      panel_norms(panels_own_.data() + p * d_ * kFusedCols, d_, yn_own_.data() + p * kFusedCols);
    use(y, m, mu_own_.data(), panels_own_.data(), yn_own_.data());
  }

  // fn(r, best, who) for rows ids[r] (ids null: r0 + r), r < n: the nearest centre.
  template <class Fn>
  void nearest(const int64_t* ids, int64_t r0, int64_t n, Fn&& fn) {
    for (int64_t b = 0; b < n; b += kFusedRows) {
      const int nr = static_cast<int>(std::min<int64_t>(kFusedRows, n - b));
      block(ids, r0 + b, b, nr);
      for (int q = 0; q < nr; ++q) {
        const float* gq = g_.data() + q * stride();
        const int64_t c = std::min_element(gq, gq + m_) - gq;  // the candidate: the smallest G
        float best = sqdist(a_[q], y_ + c * d_, d_);
        int64_t who = c;
        const double err = bound_.coef * (double(xn_[q]) + ymax_) + bound_.floor;
        const double thresh = (double(best) / (1.0 - bound_.rel) + err) * (1.0 + kThreshBump);
        for (int64_t j = 0; j < m_; ++j) {
          if (j == c || double(gq[j]) > thresh) continue;
          const float v = sqdist(a_[q], y_ + j * d_, d_);
          if (v < best || (v == best && j < who)) best = v, who = j;
        }
        fn(b + q, best, who);
      }
    }
  }

 private:
  int64_t stride() const { return (m_ + kFusedCols - 1) / kFusedCols * kFusedCols; }

  // G of rows b .. b + nr (at most 8) against every centre, into g_.
  void block(const int64_t* ids, int64_t row0, int64_t b, int nr) {
    for (int q = 0; q < kFusedRows; ++q) {  // rows past nr: zeros (their G is never read)
      float* c = xc_.data() + q * d_;
      if (q < nr) {
        a_[q] = readers_[q](ids ? ids[b + q] : row0 + q);
        xn_[q] = centre_row(a_[q], mu_, d_, c);
      } else {
        std::fill(c, c + d_, 0.f);
        xn_[q] = 0.f;
      }
    }
    alignas(64) float w[kFusedRows * kFusedCols];
    alignas(64) float ynp[kFusedCols];
    for (int64_t c0 = 0; c0 < m_; c0 += kFusedCols) {
      for (int c = 0; c < kFusedCols; ++c) ynp[c] = c0 + c < m_ ? yn_[c0 + c] : 0.f;
      fused_panel(static_cast<int>(std::min<int64_t>(kFusedCols, m_ - c0)), xc_.data(), d_,
                  panels_ + c0 * d_, xn_, ynp, w);
      for (int q = 0; q < nr; ++q)
        std::copy(w + q * kFusedCols, w + (q + 1) * kFusedCols, g_.data() + q * stride() + c0);
    }
  }

  int64_t d_;
  SmallBound bound_;
  std::vector<RowReader<S>> readers_;
  std::vector<float> xc_, g_, mu_own_, panels_own_, yn_own_;
  const float *y_ = nullptr, *mu_ = nullptr, *panels_ = nullptr, *yn_ = nullptr;
  int64_t m_ = 0;
  double ymax_ = 0.0;
  const float* a_[kFusedRows] = {};
  alignas(64) float xn_[kFusedRows] = {};
};
#endif

}  // namespace hminsel
