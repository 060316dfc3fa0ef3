// A float32 GEMM fused with its epilogue (AVX-512): the GEMM form of the
// distances of centred rows, G = max((xn_i + yn_j) - 2 xc_i . yc_j, 0), handed
// to an epilogue 8 rows x 32 columns at a time, straight from registers.
//
// Why not BLAS: NumPy's OpenBLAS picks its AVX2 kernel on some AVX-512 CPUs
// (Zen 5: "Haswell", ~125 GFLOP/s a core), and the (nb, mb) tile it returns
// is written out and read back by the scan. This kernel runs ~240 GFLOP/s a
// core there, and no tile leaves the registers.
//
// Layout: yc is packed in panels of 32 rows, panel p holding yc[32 p + c][k]
// at (p d + k) 32 + c, zero-padded past the last row (pack_panels). Each dot
// product is one FMA chain over k = 0 .. d-1: a d-term dot product in some
// order, so cpu_gemm.gemm_coef's bound (gamma_d, any order) holds.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#define HMINSEL_FUSED_GEMM 1
#else
#define HMINSEL_FUSED_GEMM 0
#endif

namespace hminsel {

constexpr int kFusedRows = 8;    // x rows of one register block
constexpr int kFusedCols = 32;   // y rows of a panel: two zmm registers
constexpr int64_t kFusedRowBlock = 256;  // x rows that share a pass over the panels (L2)

// out[(p d + k) 32 + c] = y[lo + 32 p + c][k] - mu[k] (0 past hi): panels of y[lo:hi] - mu.
inline void pack_panels(const float* y, int64_t lo, int64_t hi, int64_t d, const float* mu,
                        float* out) {
  const int64_t panels = (hi - lo + kFusedCols - 1) / kFusedCols;
  for (int64_t p = 0; p < panels; ++p) {
    float* o = out + p * d * kFusedCols;
    for (int c = 0; c < kFusedCols; ++c) {
      const int64_t j = lo + p * kFusedCols + c;
      if (j < hi) {
        const float* yr = y + j * d;
        for (int64_t k = 0; k < d; ++k) o[k * kFusedCols + c] = yr[k] - mu[k];
      } else {
        for (int64_t k = 0; k < d; ++k) o[k * kFusedCols + c] = 0.f;
      }
    }
  }
}

// sums[c] = the squared norm of row c of a packed panel o (d x 32): float32
// sums in any order, the kind the GEMM bounds allow.
inline void panel_norms(const float* o, int64_t d, float* sums) {
#if HMINSEL_FUSED_GEMM
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  for (int64_t k = 0; k < d; ++k) {
    const __m512 v0 = _mm512_loadu_ps(o + k * kFusedCols), v1 = _mm512_loadu_ps(o + k * kFusedCols + 16);
    s0 = _mm512_fmadd_ps(v0, v0, s0), s1 = _mm512_fmadd_ps(v1, v1, s1);
  }
  _mm512_storeu_ps(sums, s0), _mm512_storeu_ps(sums + 16, s1);
#else
  for (int c = 0; c < kFusedCols; ++c) {
    float s = 0.f;
    for (int64_t k = 0; k < d; ++k) s += o[k * kFusedCols + c] * o[k * kFusedCols + c];
    sums[c] = s;
  }
#endif
}

// c = a - mu (d values) and its squared norm: 16 partial sums, any order (the GEMM bounds').
inline float centre_row(const float* a, const float* mu, int64_t d, float* c) {
  constexpr int L = 16;
  float acc[L] = {};
  int64_t k = 0;
  for (; k + L <= d; k += L)
    for (int l = 0; l < L; ++l) {
      const float t = a[k + l] - mu[k + l];
      c[k + l] = t;
      acc[l] += t * t;
    }
  for (; k < d; ++k) {
    const float t = a[k] - mu[k];
    c[k] = t;
    acc[0] += t * t;
  }
  float s = 0.f;
  for (int l = 0; l < L; ++l) s += acc[l];
  return s;
}

#if HMINSEL_FUSED_GEMM
// G of 8 rows a (row stride d) against one panel b, into w (8 x 32); Dots:
// the dot products a_r . b_c themselves (xn, yn unused). Half: only the
// panel's first 16 columns are multiplied (the caller reads no other; a last
// panel of at most 16 columns costs half), the others' sums left at 0. A column's
// sum is the same FMA chain either way, so its bits do not depend on Half.
// Not inlined: inside a caller's loop (FewSearch) the 8 row pointers spilled
// to the stack and the loop ran on their loads; a block is thousands of FMAs.
template <bool Dots = false, bool Half = false>
__attribute__((noinline)) void fused_block(const float* a, int64_t d, const float* b, const float* xn,
                        const float* yn, float* w) {
  __m512 acc[kFusedRows][2];
  for (int r = 0; r < kFusedRows; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  if constexpr (Half) {
    for (int64_t k = 0; k < d; ++k) {
      const __m512 b0 = _mm512_loadu_ps(b + k * kFusedCols);
#pragma GCC unroll 8
      for (int r = 0; r < kFusedRows; ++r)
        acc[r][0] = _mm512_fmadd_ps(_mm512_set1_ps(a[r * d + k]), b0, acc[r][0]);
    }
  } else {
    for (int64_t k = 0; k < d; ++k) {
      const __m512 b0 = _mm512_loadu_ps(b + k * kFusedCols);
      const __m512 b1 = _mm512_loadu_ps(b + k * kFusedCols + 16);
#pragma GCC unroll 8
      for (int r = 0; r < kFusedRows; ++r) {
        const __m512 av = _mm512_set1_ps(a[r * d + k]);
        acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
        acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
      }
    }
  }
  if constexpr (Dots) {
    for (int r = 0; r < kFusedRows; ++r) {
      _mm512_storeu_ps(w + r * kFusedCols, acc[r][0]);
      _mm512_storeu_ps(w + r * kFusedCols + 16, acc[r][1]);
    }
    return;
  }
  const __m512 y0 = _mm512_loadu_ps(yn), y1 = _mm512_loadu_ps(yn + 16), zero = _mm512_setzero_ps();
  for (int r = 0; r < kFusedRows; ++r) {  // (xn + yn) - 2 dot, then w < 0 ? 0 : w: gemm_scan's arithmetic
    const __m512 xr = _mm512_set1_ps(xn[r]);
    const __m512 w0 = _mm512_sub_ps(_mm512_add_ps(xr, y0), _mm512_add_ps(acc[r][0], acc[r][0]));
    const __m512 w1 = _mm512_sub_ps(_mm512_add_ps(xr, y1), _mm512_add_ps(acc[r][1], acc[r][1]));
    _mm512_storeu_ps(w + r * kFusedCols, _mm512_mask_mov_ps(w0, _mm512_cmp_ps_mask(w0, zero, _CMP_LT_OQ), zero));
    _mm512_storeu_ps(w + r * kFusedCols + 16, _mm512_mask_mov_ps(w1, _mm512_cmp_ps_mask(w1, zero, _CMP_LT_OQ), zero));
  }
}

// fused_block of a panel whose first nc columns are read: a half block when nc <= 16.
template <bool Dots = false>
inline void fused_panel(int nc, const float* a, int64_t d, const float* b, const float* xn,
                        const float* yn, float* w) {
  if (nc <= kFusedCols / 2) {
    fused_block<Dots, true>(a, d, b, xn, yn, w);
  } else {
    fused_block<Dots>(a, d, b, xn, yn, w);
  }
}

#endif

// Runs epi(r0, nr, c0, nc, w) over every 8 x 32 block of G for the rows
// xc (nb, d) and the columns panels (mb rows of yc, packed): w (8 x 32) holds
// rows r0 .. r0 + nr and tile columns c0 .. c0 + nc (the rest is padding, not
// to be read: a last panel of nc <= 16 runs as a half block).
// yn (mb,) are the tile's column norms. Serial: one call per worker thread.
// Dots: w holds the dot products instead of G (xn and yn may be null).
template <bool Dots = false, typename Epi>
void fused_tiles(const float* xc, const float* xn, int64_t nb, int64_t d, const float* panels,
                 const float* yn, int64_t mb, Epi&& epi) {
#if HMINSEL_FUSED_GEMM
  alignas(64) float w[kFusedRows * kFusedCols];
  alignas(64) float ynp[kFusedCols];
  alignas(64) float xnp[kFusedRows];
  std::vector<float> pad(static_cast<size_t>(kFusedRows) * d, 0.f);  // a tail of < 8 rows
  const int64_t npanels = (mb + kFusedCols - 1) / kFusedCols;
  for (int64_t rb = 0; rb < nb; rb += kFusedRowBlock) {
    const int64_t re = std::min(nb, rb + kFusedRowBlock);
    for (int64_t p = 0; p < npanels; ++p) {
      const int64_t c0 = p * kFusedCols;
      const int nc = static_cast<int>(std::min<int64_t>(kFusedCols, mb - c0));
      for (int c = 0; c < kFusedCols; ++c) ynp[c] = !Dots && c < nc ? yn[c0 + c] : 0.f;
      const float* b = panels + p * d * kFusedCols;
      for (int64_t r0 = rb; r0 < re; r0 += kFusedRows) {
        const int nr = static_cast<int>(std::min<int64_t>(kFusedRows, re - r0));
        const float* a = xc + r0 * d;
        for (int r = 0; r < kFusedRows; ++r) xnp[r] = !Dots && r < nr ? xn[r0 + r] : 0.f;
        if (nr < kFusedRows) {
          std::memcpy(pad.data(), a, sizeof(float) * nr * d);
          a = pad.data();
        }
        fused_panel<Dots>(nc, a, d, b, xnp, ynp, w);
        epi(r0, nr, c0, nc, static_cast<const float*>(w));
      }
    }
  }
#else
  (void)xc, (void)xn, (void)nb, (void)d, (void)panels, (void)yn, (void)mb, (void)epi;
#endif
}

}  // namespace hminsel
