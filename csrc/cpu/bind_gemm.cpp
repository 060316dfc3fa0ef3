// Bindings of the GEMM-form epilogues (gemm_window.cpp): scans, settling, windows.
#include <string>

#include "checks.h"
#include "kernels.h"

namespace hminsel {
namespace {

using I64 = int64_t;

template <typename T>
void gemm_scan_sym_t(py::handle go, py::handle no, I64 row0, I64 col0, py::handle bo, py::handle io) {
  auto g = checked<T>(go, "g", 2);
  auto norms = checked<T>(no, "norms", 1);
  auto best = checked<T>(bo, "best", 1, true);
  auto bidx = checked<I64>(io, "bidx", 1, true);
  const I64 nb = g.shape(0), mb = g.shape(1), n = norms.shape(0);
  need_len(best, "best", 0, n, "entries (len(norms))");
  need_len(bidx, "bidx", 0, n, "entries (len(norms))");
  HMINSEL_REQUIRE(row0 >= 0 && row0 + nb <= n && col0 >= 0 && col0 + mb <= n,
          "the tile g " + describe(g) + " at (" + std::to_string(row0) + ", " + std::to_string(col0) +
              ") must lie inside " + std::to_string(n) + " x " + std::to_string(n));
  const T *gp = g.data(), *np_ = norms.data();
  T* bp = best.mutable_data();
  I64* ip = bidx.mutable_data();
  py::gil_scoped_release nogil;
  gemm_scan_sym(gp, nb, mb, np_, row0, col0, bp, ip);
}

// The kernels that read rows of x take its storage S (float16 rows read as
// float32); their other arrays are T = acc_t<S>, but y's rows (Sy: S when y is
// x itself, else T).
template <typename S, typename Sy, typename T = acc_t<S>>
I64 gemm_window_t(py::handle go, py::handle xno, py::handle yno, I64 col0, py::handle ro,
                  bool self_mask, py::handle to, py::handle xo, py::handle yo, py::handle vo,
                  py::handle io, bool parallel) {
  auto g = checked<T>(go, "g", 2);
  auto xn = checked<T>(xno, "xn", 1);
  auto yn = checked<T>(yno, "yn", 1);
  auto thresh = checked<double>(to, "thresh", 1);
  auto x = checked_rows<S>(xo, "x");
  auto y = checked_rows<Sy>(yo, "y");
  auto value = checked<T>(vo, "value", 1, true);
  auto index = checked<I64>(io, "index", 1, true);
  const I64 nb = g.shape(0), mb = g.shape(1), d = x.d;
  I64 nr = nb;
  const I64* rp = row_ids(ro, x.n, nr);
  HMINSEL_REQUIRE(rp != nullptr, "row_ids must be an int64 array, not None");
  HMINSEL_REQUIRE(y.d == d, "y must have " + std::to_string(d) + " columns (d of x); got " + describe(yo));
  need_len(yn, "yn", 0, y.n, "entries (one per row of y)");
  HMINSEL_REQUIRE(col0 >= 0 && col0 + mb <= y.n, "col0 + g.shape[1] must be <= len(y); got col0 = " + std::to_string(col0) + ", g " + describe(g));
  for (auto* a : {&xn, &value}) need_len(*a, "xn/value", 0, nb, "entries (rows of g)");
  need_len(thresh, "thresh", 0, nb, "entries (rows of g)");
  need_len(index, "index", 0, nb, "entries (rows of g)");
  HMINSEL_REQUIRE(nr == nb, "row_ids must have one entry per row of g; got " + std::to_string(nr));
  const T *gp = g.data(), *xnp = xn.data(), *ynp = yn.data();
  const RowSource<S> xp = x.source();
  const RowSource<Sy> yp = y.source();
  const double* tp = thresh.data();
  T* vp = value.mutable_data();
  I64* ip = index.mutable_data();
  py::gil_scoped_release nogil;
  return gemm_window(gp, nb, mb, xnp, ynp, col0, rp, self_mask, tp, xp, d, yp, vp, ip, parallel);
}

template <typename T>
void gemm_scan_t(py::handle go, py::handle xno, py::handle yno, I64 col0, py::handle ro,
                 bool self_mask, py::handle reo, py::handle vo, py::handle io, double scale) {
  auto g = checked<T>(go, "g", 2);
  auto xn = checked<T>(xno, "xn", 1);
  auto yn = checked<T>(yno, "yn", 1);
  auto rows = checked<I64>(ro, "row_ids", 1);
  auto reach = checked<double>(reo, "reach", 1);
  auto topv = checked<T>(vo, "topv", 2, true);
  auto topi = checked<I64>(io, "topi", 2, true);
  const I64 nb = g.shape(0), mb = g.shape(1), k = topv.shape(1);
  need_len(xn, "xn", 0, nb, "entries (rows of g)");
  need_len(rows, "row_ids", 0, nb, "entries (rows of g)");
  need_len(reach, "reach", 0, nb, "entries (rows of g)");
  need_len(topv, "topv", 0, nb, "rows (rows of g)");
  need_len(topi, "topi", 0, nb, "rows (rows of g)");
  need_len(topi, "topi", 1, k, "columns (k of topv)");
  HMINSEL_REQUIRE(k >= 1, "topv must have at least one column; got " + describe(topv));
  HMINSEL_REQUIRE(col0 >= 0 && col0 + mb <= yn.shape(0), "col0 + g.shape[1] must be <= len(yn); got col0 = " + std::to_string(col0) + ", g " + describe(g) + ", yn " + describe(yn));
  const T *gp = g.data(), *xp = xn.data(), *yp = yn.data();
  const I64* rp = rows.data();
  const double* rep = reach.data();
  T* vp = topv.mutable_data();
  I64* ip = topi.mutable_data();
  py::gil_scoped_release nogil;
  gemm_scan(gp, nb, mb, xp, yp, col0, rp, self_mask, rep, scale, k, vp, ip);
}

template <typename S, typename T = acc_t<S>>
I64 gemm_settle_t(py::handle xo, py::handle ro, py::handle yo, py::handle vo_, py::handle io_,
                  py::handle eo, double rel, py::handle vo, py::handle io, py::handle uo) {
  auto x = checked_rows<S>(xo, "x");
  auto y = checked<T>(yo, "y", 2);
  const I64 d = x.d, m = y.shape(0);
  need_len(y, "y", 1, d, "columns (d of x)");
  I64 nb = 0;
  const I64* rp = row_ids(ro, x.n, nb);
  HMINSEL_REQUIRE(rp != nullptr, "rows must be an int64 array, not None");
  auto topv = checked<T>(vo_, "topv", 2);
  auto topi = checked<I64>(io_, "topi", 2);
  auto err = checked<double>(eo, "err", 1);
  auto value = checked<T>(vo, "value", 1, true);
  auto index = checked<I64>(io, "index", 1, true);
  auto sure = checked<uint8_t>(uo, "sure", 1, true);
  const I64 k = topv.shape(1);
  HMINSEL_REQUIRE(k >= 2, "topv must keep at least 2 values a row; got " + describe(topv));
  HMINSEL_REQUIRE(rel >= 0 && rel < 1, "rel must be in [0, 1); got " + std::to_string(rel));
  need_len(topv, "topv", 0, nb, "rows (len(rows))");
  need_len(topi, "topi", 0, nb, "rows (len(rows))");
  need_len(topi, "topi", 1, k, "columns (k of topv)");
  need_len(err, "err", 0, nb, "entries (len(rows))");
  need_len(value, "value", 0, nb, "entries (len(rows))");
  need_len(index, "index", 0, nb, "entries (len(rows))");
  need_len(sure, "sure", 0, nb, "entries (len(rows))");
  const I64* tip = topi.data();
  for (I64 e = 0; e < nb * k; ++e) HMINSEL_REQUIRE(tip[e] >= -1 && tip[e] < m, "topi holds a row outside y");
  const T *yp = y.data(), *tvp = topv.data();
  const RowSource<S> xp = x.source();
  const double* ep = err.data();
  T* vp = value.mutable_data();
  I64* ip = index.mutable_data();
  uint8_t* up = sure.mutable_data();
  py::gil_scoped_release nogil;
  return gemm_settle(xp, rp, nb, d, yp, k, tvp, tip, ep, rel, vp, ip, up);
}

template <typename S, typename Sy, typename T = acc_t<S>>
void pair_sqdist_t(py::handle xo, py::handle ro, py::handle yo, py::handle co, py::handle oo) {
  auto x = checked_rows<S>(xo, "x");
  auto y = checked_rows<Sy>(yo, "y");
  HMINSEL_REQUIRE(y.d == x.d, "y must have " + std::to_string(x.d) + " columns (d of x); got " + describe(yo));
  I64 n = 0, nc = 0;
  const I64* rp = row_ids(ro, x.n, n);
  const I64* cp = row_ids(co, y.n, nc);
  HMINSEL_REQUIRE(rp != nullptr && cp != nullptr && nc == n, "rows and cols must be int64 arrays of one length");
  auto out = checked<T>(oo, "out", 1, true);
  need_len(out, "out", 0, n, "entries (len(rows))");
  const RowSource<S> xp = x.source();
  const RowSource<Sy> yp = y.source();
  T* op = out.mutable_data();
  const I64 d = x.d;
  py::gil_scoped_release nogil;
  pair_sqdist(xp, rp, n, d, yp, cp, op);
}

}  // namespace

#define HMINSEL_DISPATCH(fn, first, ...) \
  (is_float32(first, #first) ? fn<float>(first, __VA_ARGS__) : fn<double>(first, __VA_ARGS__))

void bind_gemm(py::module_& m) {
  m.def("gemm_scan_sym", [](py::handle g, py::handle norms, I64 row0, I64 col0, py::handle best, py::handle bidx) {
          HMINSEL_DISPATCH(gemm_scan_sym_t, g, norms, row0, col0, best, bidx); },
        py::arg("g"), py::arg("norms"), py::arg("row0"), py::arg("col0"), py::arg("best"), py::arg("bidx"),
        "Epilogue of one tile g = xc[row0:] . xc[col0:]^T of a set against itself: updates\n"
        "best / bidx (N,) of both the tile's rows and its columns with max(n_i + n_j - 2 g, 0),\n"
        "skipping i == j. With the tiles on or above the diagonal, every pair is seen once.");
  m.def("gemm_window", [](py::handle g, py::handle xn, py::handle yn, I64 col0, py::handle row_ids, bool self_mask,
                          py::handle thresh, py::handle x, py::handle y, py::handle value, py::handle index,
                          bool parallel) {
          return by_storage(x, "x", [&](auto s) {
            using S = decltype(s);
            return by_y_storage<S>(y, [&](auto sy) {
              return gemm_window_t<S, decltype(sy)>(g, xn, yn, col0, row_ids, self_mask, thresh, x, y, value,
                                                    index, parallel);
            });
          }); },
        py::arg("g"), py::arg("xn"), py::arg("yn"), py::arg("col0"), py::arg("row_ids"), py::arg("self_mask"),
        py::arg("thresh"), py::arg("x"), py::arg("y"), py::arg("value"), py::arg("index"), py::arg("parallel") = true,
        "For each row r of the tile g (nb, mb) = xc[row_ids] . yc[col0:col0+mb]^T: every column j\n"
        "with GEMM value <= thresh[r] gets its direct-form value, folded into value/index (nb,)\n"
        "(smaller wins, then the lower column). Returns the number of candidates. parallel=False:\n"
        "no threads of its own (the caller is one of several threads).");
  m.def("gemm_scan", [](py::handle g, py::handle xn, py::handle yn, I64 col0, py::handle row_ids, bool self_mask,
                        py::handle reach, py::handle topv, py::handle topi, double scale) {
          HMINSEL_DISPATCH(gemm_scan_t, g, xn, yn, col0, row_ids, self_mask, reach, topv, topi, scale); },
        py::arg("g"), py::arg("xn"), py::arg("yn"), py::arg("col0"), py::arg("row_ids"), py::arg("self_mask"),
        py::arg("reach"), py::arg("topv"), py::arg("topi"), py::arg("scale") = 1.0,
        "Epilogue of one GEMM tile g (nb, mb) = xc . yc[col0:col0+mb]^T: keeps per row the k\n"
        "smallest max(xn + yn - 2 g, 0) up to scale * the row's running best + reach[r]\n"
        "(float64), ascending, in topv (nb, k) and their columns in topi.");
  m.def("gemm_settle", [](py::handle x, py::handle rows, py::handle y, py::handle topv, py::handle topi,
                          py::handle err, double rel, py::handle value, py::handle index, py::handle sure) {
          return by_storage(x, "x", [&](auto s) {
            return gemm_settle_t<decltype(s)>(x, rows, y, topv, topi, err, rel, value, index, sure);
          }); },
        py::arg("x"), py::arg("rows"), py::arg("y"), py::arg("topv"), py::arg("topi"), py::arg("err"),
        py::arg("rel"), py::arg("value"), py::arg("index"), py::arg("sure"),
        "Exact nearest from each row's top-k GEMM list: settled when every centre with G <=\n"
        "(D / (1 - rel) + err[r]) (1 + 1e-12) (D: the candidate's direct value) is in the list;\n"
        "value/index get the direct-form answer, or the candidate with sure = 0 (a window is\n"
        "needed). Returns the rows not sure.");
  m.def("pair_sqdist", [](py::handle x, py::handle rows, py::handle y, py::handle cols, py::handle out) {
          by_storage(x, "x", [&](auto s) {
            using S = decltype(s);
            by_y_storage<S>(y, [&](auto sy) { pair_sqdist_t<S, decltype(sy)>(x, rows, y, cols, out); });
          }); },
        py::arg("x"), py::arg("rows"), py::arg("y"), py::arg("cols"), py::arg("out"),
        "out[r] = direct-form squared distance of x[rows[r]] and y[cols[r]].");
}

}  // namespace hminsel
