// Primitive 3 on precomputed GEMM tiles: the head loop of the exact lazy FPS
// when the head is a large share of the data (k a large share of N).
//
// The caller computes dots = xc . xc^T of the centred head rows once (BLAS,
// compute-bound). A pick p then reads one row of M values instead of M x d:
// for head row i, G = max(n_i + n_p - 2 dots[p, i], 0) is within
// err = coef (n_i + n_p) of the direct-form value D (cpu_gemm.gemm_coef), so
// G >= h_i + err proves D >= h_i (the pick cannot lower h_i) and only the rows
// that bound cannot settle get their direct value, from sqdist: the same
// function as the streaming step, so h stays bit for bit what streaming has.
//
// Tiles: head rows [starts[t], starts[t + 1]) form tile t; need[s][t] == 0
// says that no pick in tile s can lower a value in tile t (the caller proved
// it, e.g. with ball bounds), so those dots are never read (nor computed).
//
// One thread, no barrier a pick: the loop is a few passes over M values.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels.h"

namespace hminsel {

// Signed integers of T's width: the bits of values >= 0 order like the values,
// and MARK (-1) comes below them all, so a max over bits is a max over values.
template <typename T> struct Bits;
template <> struct Bits<float> { using type = int32_t; };
template <> struct Bits<double> { using type = int64_t; };

template <typename T>
inline typename Bits<T>::type bits_of(T v) {
  typename Bits<T>::type b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

// The best row by (h, -hidx), MARK rows included: the largest value, ties to
// the lowest hidx (beats() in common.h), in three branch-free passes.
template <typename T>
int64_t best_row(const T* h, const int64_t* hidx, int64_t m) {
  using B = typename Bits<T>::type;
  B top = std::numeric_limits<B>::min();
  for (int64_t i = 0; i < m; ++i) top = std::max(top, bits_of(h[i]));
  int64_t low = std::numeric_limits<int64_t>::max();
  for (int64_t i = 0; i < m; ++i) low = bits_of(h[i]) == top && hidx[i] < low ? hidx[i] : low;
  for (int64_t i = 0; i < m; ++i)
    if (hidx[i] == low && bits_of(h[i]) == top) return i;
  return -1;
}

constexpr int64_t kHeadChunk = 16;  // rows tested branch-free before any re-check

template <typename T>
int64_t head_gemm(const T* xh, int64_t m, int64_t d, const T* dots, const T* norms, double coef,
                  T* h, const int64_t* hidx, double tau, int64_t tau_idx, int64_t budget,
                  int64_t* picks, double* values, int64_t* own, int64_t ntiles,
                  const int64_t* starts, const uint8_t* need, int64_t* direct) {
  int64_t count = 0, checked = 0;
  std::vector<double> err(m);  // coef n_i: row i's share of the GEMM error bound
  for (int64_t i = 0; i < m; ++i) err[i] = coef * static_cast<double>(norms[i]);
  int64_t pos = m > 0 ? best_row(h, hidx, m) : -1;
  while (count < budget && pos >= 0) {
    const double v = h[pos];
    const bool global = v > tau || (v == tau && hidx[pos] < tau_idx);
    if (v == MARK || !global) break;
    const int64_t p = pos;
    picks[count] = p;
    values[count] = v;
    h[p] = T(MARK);
    const int64_t tile_p = std::upper_bound(starts, starts + ntiles + 1, p) - starts - 1;
    const T np = norms[p];
    const double ep = coef * static_cast<double>(np);
    const T* __restrict gp = dots + p * m;
    const T* xp = xh + p * d;
    for (int64_t t = 0; t < ntiles; ++t) {
      if (!need[tile_p * ntiles + t]) continue;  // no row of tile t is within reach of p
      for (int64_t i0 = starts[t]; i0 < starts[t + 1]; i0 += kHeadChunk) {
        const int64_t i1 = std::min(i0 + kHeadChunk, starts[t + 1]);
        int hit = 0;  // an OR over the chunk: vectorises, and almost always 0
        for (int64_t i = i0; i < i1; ++i) {
          const T u = h[i];
          T g = (norms[i] + np) - T(2) * gp[i];  // the arithmetic of gemm_scan
          g = g < T(0) ? T(0) : g;
          hit |= (u != T(MARK)) & (static_cast<double>(g) < static_cast<double>(u) + (err[i] + ep));
        }
        if (!hit) continue;
        for (int64_t i = i0; i < i1; ++i) {
          const T u = h[i];
          if (u == T(MARK)) continue;
          T g = (norms[i] + np) - T(2) * gp[i];
          g = g < T(0) ? T(0) : g;
          // Not provably >= u: settle it in the direct form.
          if (static_cast<double>(g) < static_cast<double>(u) + (err[i] + ep)) {
            ++checked;
            const T dist = sqdist(xh + i * d, xp, d);
            if (dist < u) h[i] = dist, own[i] = count;
          }
        }
      }
    }
    pos = best_row(h, hidx, m);
    ++count;
  }
  *direct = checked;
  return count;
}

// dots[c][r] = dots[r][c] for rows r0 <= r < r1 and columns c0 <= c < c1 of an (m, m)
// row-major matrix (c0 >= r1: the block lies above the diagonal); the caller's
// BLAS filled the block, this fills its mirror image. A B x B square goes
// through a small buffer: read by rows, written by rows. (Transposing in place
// reads B rows m apart for each column; with m a power of two they share a
// few cache sets and evict each other: 5-40 ns an element at m = 8192.)
template <typename T>
void mirror(T* dots, int64_t m, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  constexpr int64_t B = 32;
  T tile[B * B];
  for (int64_t rb = r0; rb < r1; rb += B)
    for (int64_t cb = c0; cb < c1; cb += B) {
      const int64_t nr = std::min(B, r1 - rb), nc = std::min(B, c1 - cb);
      for (int64_t r = 0; r < nr; ++r) {
        const T* __restrict src = dots + (rb + r) * m + cb;
        for (int64_t c = 0; c < nc; ++c) tile[c * B + r] = src[c];
      }
      for (int64_t c = 0; c < nc; ++c) {
        T* __restrict dst = dots + (cb + c) * m + rb;
        for (int64_t r = 0; r < nr; ++r) dst[r] = tile[c * B + r];
      }
    }
}

template void mirror(float*, int64_t, int64_t, int64_t, int64_t, int64_t);
template void mirror(double*, int64_t, int64_t, int64_t, int64_t, int64_t);

template int64_t head_gemm(const float*, int64_t, int64_t, const float*, const float*, double,
                           float*, const int64_t*, double, int64_t, int64_t, int64_t*, double*,
                           int64_t*, int64_t, const int64_t*, const uint8_t*, int64_t*);
template int64_t head_gemm(const double*, int64_t, int64_t, const double*, const double*, double,
                           double*, const int64_t*, double, int64_t, int64_t, int64_t*, double*,
                           int64_t*, int64_t, const int64_t*, const uint8_t*, int64_t*);

}  // namespace hminsel
