// The pruning lists of the lazy refresh (lazy_host.prune_lists) on the fused
// float32 GEMM: for each earlier pick a (a row of prev) the new centres c with
// lower = G_ac - coef (|a - mu|^2 + |c - mu|^2) <= 4 radius2[a] (1 + margin),
// G the GEMM form on rows centred on mu (clamped at 0: t >= 0 > G - err there).
// |G - t| <= coef (...) (cpu_gemm.gemm_coef), so lower never exceeds the exact
// t = |a - c|^2 and no centre that can matter to a's cell is left out.
#include <vector>

#include "fused_gemm.h"
#include "kernels.h"
#include "parallel.h"

namespace hminsel {

void fused_prune_lists(const float* prev, int64_t nb, int64_t d, const float* mu, const float* panels,
                       const float* cn, int64_t m, const double* radius2, double margin, double coef,
                       int64_t* counts, std::vector<int64_t>& cidx, std::vector<double>& cval) {
#if HMINSEL_FUSED_GEMM
  constexpr int64_t kTile = 64;  // rows of prev a claim
  const int64_t tiles = (nb + kTile - 1) / kTile;
  std::vector<std::vector<int64_t>> tidx(nb);  // each row's centres, ascending
  std::vector<std::vector<double>> tval(nb);
  parallel_for(tiles, 1, kTile * m * d, [&](int64_t t0, int64_t t1) {
    std::vector<float> xc(kTile * d);
    std::vector<float> xn(kTile);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t lo = t * kTile, nr = std::min(kTile, nb - lo);
      for (int64_t r = 0; r < nr; ++r) xn[r] = centre_row(prev + (lo + r) * d, mu, d, xc.data() + r * d);
      // fused_tiles meets a row's panels in order, and a panel's columns in order.
      fused_tiles(xc.data(), xn.data(), nr, d, panels, cn, m,
                  [&](int64_t r0, int nrb, int64_t c0, int nc, const float* w) {
        for (int rr = 0; rr < nrb; ++rr) {
          const int64_t r = lo + r0 + rr;
          const double thr = 4.0 * radius2[r] * (1.0 + margin), xr = xn[r0 + rr];
          for (int c = 0; c < nc; ++c) {
            const double lower = double(w[rr * kFusedCols + c]) - coef * (xr + double(cn[c0 + c]));
            if (lower <= thr) tidx[r].push_back(c0 + c), tval[r].push_back(lower);
          }
        }
      });
    }
  });
  for (int64_t r = 0; r < nb; ++r) {
    counts[r] = static_cast<int64_t>(tidx[r].size());
    cidx.insert(cidx.end(), tidx[r].begin(), tidx[r].end());
    cval.insert(cval.end(), tval[r].begin(), tval[r].end());
  }
#else
  (void)prev, (void)nb, (void)d, (void)mu, (void)panels, (void)cn, (void)m, (void)radius2, (void)margin;
  (void)coef, (void)counts, (void)cidx, (void)cval;
#endif
}

}  // namespace hminsel
