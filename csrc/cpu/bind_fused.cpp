// Bindings of the fused float32 GEMM (fused_gemm.h, fused_scan.cpp).
#include <string>

#include "checks.h"
#include "fused_gemm.h"
#include "kernels.h"

namespace hminsel {
namespace {

using I64 = int64_t;
using F = py::array_t<float>;

// The shared arguments of the fused scans: xc (nb, d), xn (nb,), panels of mb columns.
struct Tile {
  F xc, xn, panels;
  I64 nb, d;
};

Tile tile_args(py::handle xco, py::handle xno, py::handle po, I64 mb) {
  Tile t{checked<float>(xco, "xc", 2), checked<float>(xno, "xn", 1), checked<float>(po, "panels", 1), 0, 0};
  t.nb = t.xc.shape(0), t.d = t.xc.shape(1);
  need_len(t.xn, "xn", 0, t.nb, "entries (rows of xc)");
  HMINSEL_REQUIRE(mb >= 0, "the tile must have >= 0 columns; got " + std::to_string(mb));
  const I64 want = (mb + kFusedCols - 1) / kFusedCols * kFusedCols * t.d;
  need_len(t.panels, "panels", 0, want, "floats (pack_panels of the tile's columns, d of xc)");
  HMINSEL_REQUIRE(fused_gemm_available(), "the fused GEMM needs AVX-512 (fused_gemm_available() is False)");
  return t;
}

F pack_panels_t(py::handle yo, I64 lo, I64 hi, py::handle muo, py::handle no) {
  auto y = checked<float>(yo, "y", 2);
  auto mu = checked<float>(muo, "mu", 1);
  const I64 d = y.shape(1);
  need_len(mu, "mu", 0, d, "entries (columns of y)");
  HMINSEL_REQUIRE(0 <= lo && lo <= hi && hi <= y.shape(0), "need 0 <= lo <= hi <= len(y); got lo = " +
                  std::to_string(lo) + ", hi = " + std::to_string(hi) + ", y " + describe(y));
  float* np_ = nullptr;
  F norms;
  if (!no.is_none()) {
    norms = checked<float>(no, "norms", 1, true);
    need_len(norms, "norms", 0, hi - lo, "entries (hi - lo)");
    np_ = norms.mutable_data();
  }
  F out((hi - lo + kFusedCols - 1) / kFusedCols * kFusedCols * d);
  const float *yp = y.data(), *mp = mu.data();
  float* op = out.mutable_data();
  py::gil_scoped_release nogil;
  pack_panels_norms(yp, lo, hi, d, mp, op, np_);
  return out;
}

}  // namespace

void bind_fused(py::module_& m) {
  m.def("fused_gemm_available", &fused_gemm_available,
        "True when the extension was built with AVX-512: the fused float32 GEMM scans exist.");
  m.def("pack_panels", &pack_panels_t, py::arg("y"), py::arg("lo"), py::arg("hi"), py::arg("mu"),
        py::arg("norms") = py::none(),
        "float32 panels of y[lo:hi] - mu for the fused scans: 32 rows a panel, k-major, zero-padded\n"
        "(on hminsel's threads); norms (hi - lo,) float32 or None: filled with the squared norms of\n"
        "the centred rows (float32 sums, any order: the GEMM bounds' kind).");
  m.def("fused_dots", [](py::handle xc, py::handle po, I64 mb, I64 lo, py::handle oo, I64 row0, I64 col0) {
          auto xcn = checked<float>(xc, "xc", 2);
          Tile t = tile_args(xc, py::array_t<float>(xcn.shape(0)), po, mb);
          auto out = checked<float>(oo, "out", 2, true);
          HMINSEL_REQUIRE(0 <= lo && lo <= mb, "need 0 <= lo <= mb; got lo = " + std::to_string(lo) +
                          ", mb = " + std::to_string(mb));
          HMINSEL_REQUIRE(row0 >= 0 && row0 + t.nb <= out.shape(0) && col0 >= 0 && col0 + mb <= out.shape(1),
                          "rows row0 .. row0 + len(xc) and columns col0 .. col0 + mb must lie inside out " +
                          describe(out) + "; got row0 = " + std::to_string(row0) + ", col0 = " +
                          std::to_string(col0) + ", mb = " + std::to_string(mb) + ", xc " + describe(xcn));
          const float *xp = t.xc.data(), *pp = t.panels.data();
          const I64 ldo = out.shape(1);
          float* op = out.mutable_data() + row0 * ldo + col0;
          py::gil_scoped_release nogil;
          fused_dots(xp, t.nb, t.d, pp, mb, lo, op, ldo);
        },
        py::arg("xc"), py::arg("panels"), py::arg("mb"), py::arg("lo"), py::arg("out"), py::arg("row0"),
        py::arg("col0"),
        "out[row0 + r, col0 + c] = xc[r] . yc[c] (float32, one FMA chain a value) for the columns\n"
        "lo <= c < mb of the panels (pack_panels of yc); serial, without the GIL.");
  m.def("fused_scan", [](py::handle xc, py::handle xn, py::handle panels, py::handle yno, I64 col0,
                         py::handle ro, bool self_mask, py::handle reo, py::handle vo, py::handle io,
                         double scale) {
          auto yn = checked<float>(yno, "yn", 1);
          Tile t = tile_args(xc, xn, panels, yn.shape(0));
          auto rows = checked<I64>(ro, "row_ids", 1);
          auto reach = checked<double>(reo, "reach", 1);
          auto topv = checked<float>(vo, "topv", 2, true);
          auto topi = checked<I64>(io, "topi", 2, true);
          const I64 k = topv.shape(1);
          HMINSEL_REQUIRE(k >= 1, "topv must have at least one column; got " + describe(topv));
          need_len(rows, "row_ids", 0, t.nb, "entries (rows of xc)");
          need_len(reach, "reach", 0, t.nb, "entries (rows of xc)");
          need_len(topv, "topv", 0, t.nb, "rows (rows of xc)");
          need_len(topi, "topi", 0, t.nb, "rows (rows of xc)");
          need_len(topi, "topi", 1, k, "columns (k of topv)");
          const I64 mb = yn.shape(0);
          const float *xp = t.xc.data(), *np_ = t.xn.data(), *pp = t.panels.data(), *yp = yn.data();
          const I64* rp = rows.data();
          const double* rep = reach.data();
          float* vp = topv.mutable_data();
          I64* ip = topi.mutable_data();
          py::gil_scoped_release nogil;
          fused_scan(xp, np_, t.nb, t.d, pp, yp, mb, col0, rp, self_mask, rep, scale, k, vp, ip);
        },
        py::arg("xc"), py::arg("xn"), py::arg("panels"), py::arg("yn"), py::arg("col0"), py::arg("row_ids"),
        py::arg("self_mask"), py::arg("reach"), py::arg("topv"), py::arg("topi"), py::arg("scale") = 1.0,
        "gemm_scan of the tile xc . (panels)^T with yn (mb,) the tile's column norms (columns col0 ..).");
  m.def("fused_window", [](py::handle xc, py::handle xn, py::handle panels, py::handle yno, I64 col0,
                           py::handle ro, bool self_mask, py::handle to, py::handle xo, py::handle yo,
                           py::handle vo, py::handle io) {
          auto yn = checked<float>(yno, "yn", 1);
          Tile t = tile_args(xc, xn, panels, yn.shape(0));
          auto thresh = checked<double>(to, "thresh", 1);
          auto value = checked<float>(vo, "value", 1, true);
          auto index = checked<I64>(io, "index", 1, true);
          const I64 mb = yn.shape(0);
          return by_storage(xo, "x", [&](auto s) -> I64 {  // x: float32 or float16 rows
            using S = decltype(s);
            if constexpr (std::is_same_v<S, double>) {
              throw py::value_error("x must hold float32 or float16 rows (the fused GEMM is float32); got " +
                                    describe(xo));
            } else {
              return by_y_storage<S>(yo, [&](auto sy) -> I64 {  // y: x itself, or float32 centres
                using Sy = decltype(sy);
                auto x = checked_rows<S>(xo, "x");
                auto y = checked_rows<Sy>(yo, "y");
                HMINSEL_REQUIRE(x.d == t.d, "x must have " + std::to_string(t.d) + " columns (d of xc); got " +
                                                describe(xo));
                HMINSEL_REQUIRE(y.d == x.d, "y must have " + std::to_string(x.d) + " columns (d of x); got " +
                                                describe(yo));
                HMINSEL_REQUIRE(col0 >= 0 && col0 + mb <= y.n, "col0 + len(yn) must be <= len(y); got col0 = " +
                                std::to_string(col0) + ", yn " + describe(yn) + ", y " + describe(yo));
                need_len(thresh, "thresh", 0, t.nb, "entries (rows of xc)");
                need_len(value, "value", 0, t.nb, "entries (rows of xc)");
                need_len(index, "index", 0, t.nb, "entries (rows of xc)");
                I64 nr = t.nb;
                const I64* rp = row_ids(ro, x.n, nr);
                HMINSEL_REQUIRE(rp != nullptr && nr == t.nb, "row_ids must be int64 with one entry per row of xc");
                const float *xcp = t.xc.data(), *np_ = t.xn.data(), *pp = t.panels.data(), *ynp = yn.data();
                const double* tp = thresh.data();
                float* vp = value.mutable_data();
                I64* ip = index.mutable_data();
                const RowSource<S> xs = x.source();
                const RowSource<Sy> ys = y.source();
                py::gil_scoped_release nogil;
                return fused_window(xcp, np_, t.nb, t.d, pp, ynp, mb, col0, rp, self_mask, tp, xs, ys, vp, ip);
              });
            }
          });
        },
        py::arg("xc"), py::arg("xn"), py::arg("panels"), py::arg("yn"), py::arg("col0"), py::arg("row_ids"),
        py::arg("self_mask"), py::arg("thresh"), py::arg("x"), py::arg("y"), py::arg("value"), py::arg("index"),
        "gemm_window (serial) of the tile xc . (panels)^T, yn (mb,) the tile's column norms;\n"
        "x holds float32 or float16 rows (read as float32), or is unit rows of them.");
  m.def("fused_sym", [](py::handle xc, py::handle no, py::handle panels, I64 mb, I64 row0, I64 col0,
                        py::handle bo, py::handle io) {
          auto norms = checked<float>(no, "norms", 1);
          const I64 n = norms.shape(0);
          auto xcn = checked<float>(xc, "xc", 2);
          const I64 nb = xcn.shape(0);
          HMINSEL_REQUIRE(row0 >= 0 && row0 + nb <= n && col0 >= 0 && mb >= 0 && col0 + mb <= n,
                          "rows row0 .. row0 + len(xc) and columns col0 .. col0 + mb must lie inside " +
                          std::to_string(n) + "; got row0 = " + std::to_string(row0) + ", col0 = " +
                          std::to_string(col0) + ", mb = " + std::to_string(mb) + ", xc " + describe(xcn));
          py::array_t<float> xnr = py::array_t<float>(nb, norms.data() + row0);  // a copy: nb floats
          Tile t = tile_args(xc, xnr, panels, mb);
          auto best = checked<float>(bo, "best", 1, true);
          auto bidx = checked<I64>(io, "bidx", 1, true);
          need_len(best, "best", 0, n, "entries (len(norms))");
          need_len(bidx, "bidx", 0, n, "entries (len(norms))");
          const float *xp = t.xc.data(), *np_ = norms.data(), *pp = t.panels.data();
          float* bp = best.mutable_data();
          I64* ip = bidx.mutable_data();
          py::gil_scoped_release nogil;
          fused_sym(xp, np_, nb, t.d, pp, mb, row0, col0, bp, ip);
        },
        py::arg("xc"), py::arg("norms"), py::arg("panels"), py::arg("mb"), py::arg("row0"), py::arg("col0"),
        py::arg("best"), py::arg("bidx"),
        "gemm_scan_sym of rows row0 .. (xc, centred) against columns col0 .. col0 + mb (panels).");
}

}  // namespace hminsel
