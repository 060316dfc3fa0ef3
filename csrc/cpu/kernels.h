// The CPU kernels behind the primitives of hminsel/backends/base.py.
//
// Plain pointers and sizes only: argument checks live in bindings.cpp.
// T is float or double; distances accumulate in T (float32 in float32 out).
// Kernels that read rows of a big x take its storage S (float, double or
// Half, rows.h) and accumulate in T = acc_t<S>; their other arrays are T,
// except y rows where y may be x itself (storage Sy: S, or T).
#pragma once

#include <cstdint>
#include <vector>

#include "common.h"
#include "rows.h"

namespace hminsel {

// Fold centre c into mind (N,), then argmax of mind: ONE pass over x (N, d).
// Returns {-1, MARK} when every point is marked.
template <typename S>
Best<acc_t<S>> step(RowSource<S> x, int64_t n, int64_t d, acc_t<S>* mind, int64_t c);

// `count` chained steps from c in one parallel region; picks/values (count,).
// After the first {-1, MARK} the remaining slots are filled with it too.
template <typename S>
void steps(RowSource<S> x, int64_t n, int64_t d, acc_t<S>* mind, int64_t c, int64_t count,
           int64_t* picks, double* values);

// Direct-form nearest row of y (m, d) for each of the n rows x[rows[r]]
// (rows == nullptr: r itself). self_mask: row i never matches y[i].
// value/index (n,); lowest index on ties.
template <typename S, typename T = acc_t<S>>
void block_min_direct(RowSource<S> x, const int64_t* rows, int64_t n, int64_t d,
                      const T* y, int64_t m, bool self_mask, T* value, int64_t* index);

// gemm_window.cpp. The symmetric scan of one tile g = xc[row0:] . xc[col0:]^T of
// a set against itself (norms (N,) centred): updates best/bidx (N,) of the
// tile's rows AND columns, skipping i == j; tiles on or above the diagonal
// then see every pair once.
template <typename T>
void gemm_scan_sym(const T* g, int64_t nb, int64_t mb, const T* norms, int64_t row0,
                   int64_t col0, T* best, int64_t* bidx);

// Candidate window of one GEMM tile: every column whose GEMM value is <=
// thresh[r] gets its direct value, folded into value/index (nb,) (smaller
// wins, then the lower column). Returns the number of candidates. parallel:
// a large window may use the OpenMP team (false when the caller is one of
// several threads already).
template <typename S, typename Sy, typename T = acc_t<S>>
int64_t gemm_window(const T* g, int64_t nb, int64_t mb, const T* xn, const T* yn, int64_t col0,
                    const int64_t* row_ids, bool self_mask, const double* thresh, RowSource<S> x,
                    int64_t d, RowSource<Sy> y, T* value, int64_t* index, bool parallel);

// Direct values of window candidates cand (r * mb + tile column, increasing
// column for each row) folded into value/index (smaller wins, then the lower
// column); returns their count. parallel: as gemm_window.
template <typename S, typename Sy, typename T = acc_t<S>>
int64_t window_fold(const std::vector<int64_t>& cand, int64_t mb, int64_t col0,
                    const int64_t* row_ids, RowSource<S> x, int64_t d, RowSource<Sy> y, T* value,
                    int64_t* index, bool parallel);

// fused_scan.cpp: gemm_scan, gemm_window and gemm_scan_sym with the float32
// GEMM of fused_gemm.h instead of a BLAS tile: xc (nb, d) centred rows, xn
// (nb,), panels = pack_panels of the tile's mb centred columns, yn (mb,) their
// norms (the tile's, not all m). Only when fused_gemm_available().
bool fused_gemm_available();
void fused_scan(const float* xc, const float* xn, int64_t nb, int64_t d, const float* panels,
                const float* yn, int64_t mb, int64_t col0, const int64_t* row_ids, bool self_mask,
                const double* reach, double scale, int64_t k, float* topv, int64_t* topi);
template <typename S, typename Sy>  // x, y: float or Half rows
int64_t fused_window(const float* xc, const float* xn, int64_t nb, int64_t d, const float* panels,
                     const float* yn, int64_t mb, int64_t col0, const int64_t* row_ids,
                     bool self_mask, const double* thresh, RowSource<S> x, RowSource<Sy> y,
                     float* value, int64_t* index);
// Rows row0 .. row0 + nb (xc) against columns col0 .. col0 + mb (panels) of one
// set with norms (N,): updates best/bidx (N,) of both, skipping i == j.
void fused_sym(const float* xc, const float* norms, int64_t nb, int64_t d, const float* panels,
               int64_t mb, int64_t row0, int64_t col0, float* best, int64_t* bidx);
// out[r * ldo + c] = xc_r . yc_c for rows r < nb and panel columns lo <= c < mb
// (plain dot products, serial: one call per worker thread).
void fused_dots(const float* xc, int64_t nb, int64_t d, const float* panels, int64_t mb, int64_t lo,
                float* out, int64_t ldo);
// pack_panels of y[lo:hi] - mu into out on the pool's threads; norms (hi - lo,)
// (or null): the squared norms of the centred rows, from the packed values.
void pack_panels_norms(const float* y, int64_t lo, int64_t hi, int64_t d, const float* mu, float* out,
                       float* norms);

// fused_min.cpp: block_min of x (n rows, or rows[0..n)) against m float32
// centres y in one pass (fused GEMM, then each row's window in the direct
// form): the values and indices of block_min_direct. mu (d,) the centre of the
// GEMM form, panels = pack_panels of y - mu and yn (m,) their norms. Only when
// fused_gemm_available(). The bound: err_i = coef (xn_i + max yn) + floor, as
// gemm_bound.row_err; rel = gemm_bound.direct_rel (float32).
struct SmallBound {
  double coef, floor, rel;
};
template <typename S>  // float or Half rows
void fused_block_min(RowSource<S> x, const int64_t* rows, int64_t n, int64_t d, const float* y,
                     int64_t m, const float* mu, const float* panels, const float* yn,
                     const SmallBound& bound, float* value, int64_t* index);

// prune_lists.cpp: lazy_host.prune_lists on the fused GEMM for nb earlier
// picks prev (nb, d) against m new centres (panels on mu, norms cn): counts
// (nb,) and, row after row, each one's centres (ascending) and lower bounds.
void fused_prune_lists(const float* prev, int64_t nb, int64_t d, const float* mu, const float* panels,
                       const float* cn, int64_t m, const double* radius2, double margin, double coef,
                       int64_t* counts, std::vector<int64_t>& cidx, std::vector<double>& cval);

// GEMM-form scan of one (nb, mb) tile G = xc . yc^T of centred rows:
// dist = max(xn + yn - 2 G, 0) with xn (nb,) and yn (m,) for all columns;
// keeps per row the k smallest values topv (nb, k), ascending, and their
// columns topi (global column = col0 + tile column; start at +inf / -1),
// among the values within reach[r] of the row's running best. A value not
// kept is >= the final topv[:, k - 1] or > the final best + reach[r].
// row_ids (nb,): x row ids.
template <typename T>
void gemm_scan(const T* g, int64_t nb, int64_t mb, const T* xn, const T* yn, int64_t col0,
               const int64_t* row_ids, bool self_mask, const double* reach, double scale, int64_t k,
               T* topv, int64_t* topi);

// Exact nearest of each row from its top-k list (k >= 2, from gemm_scan with
// the scale and reach of cpu_gemm.scan_reach): settled from the list when the
// whole window, G <= thresh = (D / (1 - rel) + err[r]) (1 + kThreshBump) with D
// the candidate's direct value, is inside it (a list of one: certified).
// Writes value/index (the candidate when not sure) and sure; returns rows not sure.
constexpr double kThreshBump = 1e-12;  // covers the float64 rounding of thresh
template <typename S, typename T = acc_t<S>>
int64_t gemm_settle(RowSource<S> x, const int64_t* rows, int64_t nb, int64_t d, const T* y, int64_t k,
                    const T* topv, const int64_t* topi, const double* err, double rel, T* value,
                    int64_t* index, uint8_t* sure);

// out[r] = sqdist(x[rows[r]], y[cols[r]]) for r < n.
template <typename S, typename Sy, typename T = acc_t<S>>
void pair_sqdist(RowSource<S> x, const int64_t* rows, int64_t n, int64_t d, RowSource<Sy> y,
                 const int64_t* cols, T* out);

// Greedy steps on the head xh (M, d) with values h (M,) and global ids hidx,
// while the best head key beats (tau, tau_idx); at most `budget` picks.
// Writes head positions/values to picks/values (budget,); returns how many.
template <typename T>
int64_t head_greedy(const T* xh, int64_t m, int64_t d, T* h, const int64_t* hidx,
                    double tau, int64_t tau_idx, int64_t budget, int64_t* picks,
                    double* values);

// Pruned refresh of the exact lazy FPS (Backend.refresh): folds centers (m, d),
// picks base .., into ub/owner (n,) of x (n, d), comparing row i (owner a)
// only with the centers e in ptr[a] .. ptr[a + 1] whose lower bound cval[e]
// on |p_a - c|^2 is <= 4 ub[i] (1 + slack). Returns the rows that computed
// at least one distance. few (float32 sums, fused_gemm_available()): the GEMM
// bound of d-wide float32 rows; then a cell's rows meet its whole list through
// the fused GEMM (FewSearch), with the same result.
template <typename S, typename T = acc_t<S>>
int64_t refresh(RowSource<S> x, int64_t n, int64_t d, T* ub, int64_t* owner, const T* centers,
                int64_t base, const int64_t* ptr, const int64_t* cidx, const double* cval,
                double slack, const SmallBound* few = nullptr);

}  // namespace hminsel
