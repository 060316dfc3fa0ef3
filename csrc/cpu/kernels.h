// The CPU kernels behind the primitives of hminsel/backends/base.py.
//
// Plain pointers and sizes only: argument checks live in bindings.cpp.
// T is float or double; distances accumulate in T (float32 in float32 out).
#pragma once

#include <cstdint>

#include "common.h"

namespace hminsel {

// Fold centre c into mind (N,), then argmax of mind: ONE pass over x (N, d).
// Returns {-1, MARK} when every point is marked.
template <typename T>
Best<T> step(const T* x, int64_t n, int64_t d, T* mind, int64_t c);

// `count` chained steps from c in one parallel region; picks/values (count,).
// After the first {-1, MARK} the remaining slots are filled with it too.
template <typename T>
void steps(const T* x, int64_t n, int64_t d, T* mind, int64_t c, int64_t count,
           int64_t* picks, double* values);

// Direct-form nearest row of y (m, d) for each of the n rows x[rows[r]]
// (rows == nullptr: r itself). self_mask: row i never matches y[i].
// value/index (n,); lowest index on ties.
template <typename T>
void block_min_direct(const T* x, const int64_t* rows, int64_t n, int64_t d,
                      const T* y, int64_t m, bool self_mask, T* value, int64_t* index);

// GEMM-form candidate scan of one (nb, mb) tile G = xc . yc^T, centred rows:
// dist = max(xn + yn - 2 G, 0) with xn (nb,) and yn (m,) for all columns;
// keeps per row the best and second-best value and the best column (global
// column = col0 + tile column). Runs across column tiles: best/second/bidx
// (nb,) carry the state (start at +inf, +inf, -1). row_ids (nb,): x row ids.
template <typename T>
void gemm_scan(const T* g, int64_t nb, int64_t mb, const T* xn, const T* yn, int64_t col0,
               const int64_t* row_ids, bool self_mask, T* best, T* second, int64_t* bidx);

// Certify each GEMM candidate or redo the row in the direct form, and write the
// exact value/index of rows[r] (r < nb); *redone counts rows re-done. A candidate is certified when
// second - best > 2 * coef * (xn[r] + ymax): coef bounds the GEMM-vs-direct
// error per unit of squared norm.
template <typename T>
void gemm_finish(const T* x, const int64_t* rows, int64_t nb, int64_t d, const T* y,
                 int64_t m, bool self_mask, const T* best, const T* second,
                 const int64_t* bidx, const T* xn, double ymax, double coef, T* value,
                 int64_t* index, int64_t* redone);

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
// at least one distance.
template <typename T>
int64_t refresh(const T* x, int64_t n, int64_t d, T* ub, int64_t* owner, const T* centers,
                int64_t base, const int64_t* ptr, const int64_t* cidx, const double* cval,
                double slack);

}  // namespace hminsel
