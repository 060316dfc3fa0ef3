// Epilogues of the fused float32 GEMM (fused_gemm.h): the same scans as
// gemm_window.cpp's on BLAS tiles, fed 8 x 32 blocks from registers.
//
// Each test against a row's threshold is first made on a whole block row with
// one vector compare against a float threshold that is never below the exact
// one (rounded up from float64), so a value that the exact test keeps is never
// skipped; the exact test then runs on the few values that pass.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

// GCC 12 flags its own AVX-512 reduction intrinsics (_mm512_undefined_*) as
// maybe-uninitialized: a false positive.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "fused_gemm.h"
#include "kernels.h"
#include "parallel.h"

namespace hminsel {
namespace {

// The smallest float >= t (t a double, maybe +inf).
inline float float_at_least(double t) {
  float f = static_cast<float>(t);
  if (static_cast<double>(f) < t) f = std::nextafter(f, std::numeric_limits<float>::infinity());
  return f;
}

// Bit c set when w[c] <= thr, for the nc valid columns of one block row.
inline uint32_t below(const float* w, float thr, int nc) {
#if HMINSEL_FUSED_GEMM
  const uint32_t valid = nc >= 32 ? 0xFFFFFFFFu : ((1u << nc) - 1u);
  const __m512 t = _mm512_set1_ps(thr);
  const uint32_t lo = _mm512_cmp_ps_mask(_mm512_loadu_ps(w), t, _CMP_LE_OQ);
  const uint32_t hi = _mm512_cmp_ps_mask(_mm512_loadu_ps(w + 16), t, _CMP_LE_OQ);
  return (lo | (hi << 16)) & valid;
#else
  uint32_t m = 0;
  for (int c = 0; c < nc; ++c) m |= uint32_t(w[c] <= thr) << c;
  return m;
#endif
}

}  // namespace

bool fused_gemm_available() { return HMINSEL_FUSED_GEMM; }

void fused_scan(const float* xc, const float* xn, int64_t nb, int64_t d, const float* panels,
                const float* yn, int64_t mb, int64_t col0, const int64_t* row_ids, bool self_mask,
                const double* reach, double scale, int64_t k, float* topv, int64_t* topi) {
  // gemm_scan's rule: keep the k smallest up to scale * running best + reach[r].
  // thr[r] >= min(k-th kept, that): a value above it is dropped by both tests.
  std::vector<float> thr(nb);
  auto limit = [&](int64_t r) {
    const float* tv = topv + r * k;
    return std::min(tv[k - 1], float_at_least(double(tv[0]) * scale + reach[r]));
  };
  for (int64_t r = 0; r < nb; ++r) thr[r] = limit(r);
  fused_tiles(xc, xn, nb, d, panels, yn, mb, [&](int64_t r0, int nr, int64_t c0, int nc, const float* w) {
    for (int rr = 0; rr < nr; ++rr) {
      const int64_t r = r0 + rr;
      uint32_t hits = below(w + rr * kFusedCols, thr[r], nc);
      if (!hits) continue;
      const int64_t skip = self_mask ? row_ids[r] - col0 : -1;
      const float* wr = w + rr * kFusedCols;
      float* tv = topv + r * k;
      int64_t* ti = topi + r * k;
      // The block row's own minimum bounds the final best too: a value beyond
      // scale * low + reach is dropped now instead of filling the list.
      float low = std::numeric_limits<float>::infinity();
      for (uint32_t h = hits; h; h &= h - 1) {
        const int c = __builtin_ctz(h);
        if (c0 + c != skip) low = std::min(low, wr[c]);
      }
      const double cut = std::min(static_cast<double>(tv[0]), static_cast<double>(low)) * scale + reach[r];
      for (; hits; hits &= hits - 1) {
        const int c = __builtin_ctz(hits);
        const float v = wr[c];
        if (!(v < tv[k - 1]) || c0 + c == skip || static_cast<double>(v) > cut) continue;
        if (static_cast<double>(v) > static_cast<double>(tv[0]) * scale + reach[r]) continue;
        int64_t p = k - 1;
        for (; p > 0 && tv[p - 1] > v; --p) tv[p] = tv[p - 1], ti[p] = ti[p - 1];
        tv[p] = v, ti[p] = col0 + c0 + c;  // after equal values: the lower column stays first
      }
      thr[r] = limit(r);
    }
  });
}

template <typename S, typename Sy>
int64_t fused_window(const float* xc, const float* xn, int64_t nb, int64_t d, const float* panels,
                     const float* yn, int64_t mb, int64_t col0, const int64_t* row_ids,
                     bool self_mask, const double* thresh, RowSource<S> x, RowSource<Sy> y,
                     float* value, int64_t* index) {
  std::vector<float> thr(nb);
  for (int64_t r = 0; r < nb; ++r) thr[r] = float_at_least(thresh[r]);
  std::vector<int64_t> cand;  // r * mb + c; sorted below: increasing column for each row
  fused_tiles(xc, xn, nb, d, panels, yn, mb, [&](int64_t r0, int nr, int64_t c0, int nc, const float* w) {
    for (int rr = 0; rr < nr; ++rr) {
      const int64_t r = r0 + rr;
      const int64_t skip = self_mask ? row_ids[r] - col0 : -1;
      for (uint32_t hits = below(w + rr * kFusedCols, thr[r], nc); hits; hits &= hits - 1) {
        const int c = __builtin_ctz(hits);
        if (static_cast<double>(w[rr * kFusedCols + c]) <= thresh[r] && c0 + c != skip)
          cand.push_back(r * mb + c0 + c);
      }
    }
  });
  std::sort(cand.begin(), cand.end());
  return window_fold(cand, mb, col0, row_ids, x, d, y, value, index, false);
}

void fused_sym(const float* xc, const float* norms, int64_t nb, int64_t d, const float* panels,
               int64_t mb, int64_t row0, int64_t col0, float* best, int64_t* bidx) {
  // gemm_scan_sym on fused blocks: rows row0 .., columns col0 .. of one set.
  // Per block: a row's values are searched only when one beats its best, and
  // each column's minimum over the block's rows is kept in registers, merged
  // into best once. Padding and the diagonal never match.
#if HMINSEL_FUSED_GEMM
  fused_tiles(xc, norms + row0, nb, d, panels, norms + col0, mb,
              [&](int64_t r0, int nr, int64_t c0, int nc, const float* w) {
    const int64_t i0 = row0 + r0, j0 = col0 + c0;
    const uint32_t valid = nc >= 32 ? 0xFFFFFFFFu : ((1u << nc) - 1u);
    const __m512 inf = _mm512_set1_ps(std::numeric_limits<float>::infinity());
    __m512 cm0 = inf, cm1 = inf;
    __m512i cr0 = _mm512_setzero_si512(), cr1 = _mm512_setzero_si512();
    for (int rr = 0; rr < nr; ++rr) {
      const int64_t i = i0 + rr, dc = i - j0;
      const uint32_t ok = (dc >= 0 && dc < 32) ? valid & ~(1u << dc) : valid;
      const __m512 v0 = _mm512_mask_loadu_ps(inf, __mmask16(ok), w + rr * kFusedCols);
      const __m512 v1 = _mm512_mask_loadu_ps(inf, __mmask16(ok >> 16), w + rr * kFusedCols + 16);
      const __mmask16 m0 = _mm512_cmp_ps_mask(v0, cm0, _CMP_LT_OQ);
      const __mmask16 m1 = _mm512_cmp_ps_mask(v1, cm1, _CMP_LT_OQ);
      cm0 = _mm512_mask_mov_ps(cm0, m0, v0), cm1 = _mm512_mask_mov_ps(cm1, m1, v1);
      cr0 = _mm512_mask_set1_epi32(cr0, m0, rr), cr1 = _mm512_mask_set1_epi32(cr1, m1, rr);
      const __m512 bi = _mm512_set1_ps(best[i]);
      if (!(_mm512_cmp_ps_mask(v0, bi, _CMP_LT_OQ) | _mm512_cmp_ps_mask(v1, bi, _CMP_LT_OQ))) continue;
      const float low = _mm512_reduce_min_ps(_mm512_min_ps(v0, v1));
      const uint32_t at = uint32_t(_mm512_cmp_ps_mask(v0, _mm512_set1_ps(low), _CMP_EQ_OQ)) |
                          (uint32_t(_mm512_cmp_ps_mask(v1, _mm512_set1_ps(low), _CMP_EQ_OQ)) << 16);
      best[i] = low, bidx[i] = j0 + __builtin_ctz(at);  // the lowest column of the minimum
    }
    alignas(64) float cmin[kFusedCols];
    alignas(64) int32_t crow[kFusedCols];
    _mm512_store_ps(cmin, cm0), _mm512_store_ps(cmin + 16, cm1);
    _mm512_store_si512(crow, cr0), _mm512_store_si512(crow + 16, cr1);
    for (int c = 0; c < nc; ++c)
      if (cmin[c] < best[j0 + c]) best[j0 + c] = cmin[c], bidx[j0 + c] = i0 + crow[c];
  });
#else
  (void)xc, (void)norms, (void)nb, (void)d, (void)panels, (void)mb, (void)row0, (void)col0,
      (void)best, (void)bidx;
#endif
}

void fused_dots(const float* xc, int64_t nb, int64_t d, const float* panels, int64_t mb, int64_t lo,
                float* out, int64_t ldo) {
  // Plain stores of the block rows, columns lo .. mb of the panels only.
  fused_tiles<true>(xc, nullptr, nb, d, panels, nullptr, mb,
                    [&](int64_t r0, int nr, int64_t c0, int nc, const float* w) {
    const int64_t first = std::max<int64_t>(c0, lo), last = c0 + nc;
    if (first >= last) return;
    for (int rr = 0; rr < nr; ++rr)
      std::memcpy(out + (r0 + rr) * ldo + first, w + rr * kFusedCols + (first - c0),
                  sizeof(float) * (last - first));
  });
}

void pack_panels_norms(const float* y, int64_t lo, int64_t hi, int64_t d, const float* mu, float* out,
                       float* norms) {
  // Panels in parallel (a chunk of panels a claim); each panel's 32 norms from
  // the packed values while they are in cache: two vector sums over k.
  const int64_t panels = (hi - lo + kFusedCols - 1) / kFusedCols;
  parallel_for(panels, 1, d * kFusedCols, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t a = lo + p * kFusedCols, b = std::min(hi, a + kFusedCols);
      float* o = out + p * d * kFusedCols;
      pack_panels(y, a, b, d, mu, o);
      if (norms == nullptr) continue;
      alignas(64) float sums[kFusedCols];
      panel_norms(o, d, sums);
      for (int64_t j = a; j < b; ++j) norms[j - lo] = sums[j - a];
    }
  });
}

#define HMINSEL_FUSED_WINDOW(S, Sy)                                                           \
  template int64_t fused_window(const float*, const float*, int64_t, int64_t, const float*,    \
                                const float*, int64_t, int64_t, const int64_t*, bool,          \
                                const double*, RowSource<S>, RowSource<Sy>, float*, int64_t*);
HMINSEL_FUSED_WINDOW(float, float)
HMINSEL_FUSED_WINDOW(Half, float)
HMINSEL_FUSED_WINDOW(Half, Half)
#undef HMINSEL_FUSED_WINDOW

}  // namespace hminsel
