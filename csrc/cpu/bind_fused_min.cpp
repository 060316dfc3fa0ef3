// Binding of the one-pass block_min against a few centres (fused_min.cpp).
#include <string>

#include "checks.h"
#include "fused_gemm.h"
#include "kernels.h"

namespace hminsel {
namespace {

using I64 = int64_t;
using F = py::array_t<float>;

void fused_block_min_t(py::handle xo, py::handle ro, py::handle yo, py::handle muo, py::handle po,
                       py::handle yno, double coef, double floor, double rel, py::handle vo, py::handle io) {
  HMINSEL_REQUIRE(fused_gemm_available(), "the fused GEMM needs AVX-512 (fused_gemm_available() is False)");
  auto y = checked<float>(yo, "y", 2);
  auto mu = checked<float>(muo, "mu", 1);
  auto panels = checked<float>(po, "panels", 1);
  auto yn = checked<float>(yno, "yn", 1);
  auto value = checked<float>(vo, "value", 1, true);
  auto index = checked<I64>(io, "index", 1, true);
  const I64 m = y.shape(0), d = y.shape(1);
  HMINSEL_REQUIRE(m >= 1, "y must have at least 1 row; got " + describe(y));
  need_len(mu, "mu", 0, d, "entries (columns of y)");
  need_len(yn, "yn", 0, m, "entries (rows of y)");
  need_len(panels, "panels", 0, (m + kFusedCols - 1) / kFusedCols * kFusedCols * d,
           "floats (pack_panels of y - mu)");
  HMINSEL_REQUIRE(rel >= 0 && rel < 1 && coef >= 0 && floor >= 0,
                  "need 0 <= rel < 1, coef >= 0 and floor >= 0; got rel = " + std::to_string(rel) +
                      ", coef = " + std::to_string(coef) + ", floor = " + std::to_string(floor));
  const float* ynp = yn.data();
  const SmallBound bound{coef, floor, rel};
  by_storage(xo, "x", [&](auto s) {  // x: float32 or float16 rows, or unit rows of them
    using S = decltype(s);
    if constexpr (std::is_same_v<S, double>) {
      throw py::value_error("x must hold float32 or float16 rows (the fused GEMM is float32); got " +
                            describe(xo));
    } else {
      auto x = checked_rows<S>(xo, "x");
      HMINSEL_REQUIRE(x.d == d, "y must have " + std::to_string(x.d) + " columns (d of x); got " + describe(y));
      I64 n = x.n;
      const I64* rp = row_ids(ro, x.n, n);
      need_len(value, "value", 0, n, "entries (one per row processed)");
      need_len(index, "index", 0, n, "entries (one per row processed)");
      const RowSource<S> xs = x.source();
      const float *yp = y.data(), *mp = mu.data(), *pp = panels.data();
      float* vp = value.mutable_data();
      I64* ip = index.mutable_data();
      py::gil_scoped_release nogil;
      fused_block_min(xs, rp, n, d, yp, m, mp, pp, ynp, bound, vp, ip);
    }
  });
}

py::tuple prune_lists_t(py::handle po, py::handle muo, py::handle pano, py::handle cno, py::handle ro,
                        double margin, double coef) {
  HMINSEL_REQUIRE(fused_gemm_available(), "the fused GEMM needs AVX-512 (fused_gemm_available() is False)");
  auto prev = checked<float>(po, "prev", 2);
  auto mu = checked<float>(muo, "mu", 1);
  auto panels = checked<float>(pano, "panels", 1);
  auto cn = checked<float>(cno, "cn", 1);
  auto radius2 = checked<double>(ro, "radius2", 1);
  const I64 nb = prev.shape(0), d = prev.shape(1), m = cn.shape(0);
  need_len(mu, "mu", 0, d, "entries (columns of prev)");
  need_len(radius2, "radius2", 0, nb, "entries (rows of prev)");
  need_len(panels, "panels", 0, (m + kFusedCols - 1) / kFusedCols * kFusedCols * d,
           "floats (pack_panels of the centres - mu, d of prev)");
  HMINSEL_REQUIRE(margin >= 0 && coef >= 0, "need margin >= 0 and coef >= 0; got margin = " +
                                                std::to_string(margin) + ", coef = " + std::to_string(coef));
  py::array_t<I64> counts(nb);
  std::vector<I64> cidx;
  std::vector<double> cval;
  {
    const float *pp = prev.data(), *mp = mu.data(), *panp = panels.data(), *cp = cn.data();
    const double* rp = radius2.data();
    I64* np_ = counts.mutable_data();
    py::gil_scoped_release nogil;
    fused_prune_lists(pp, nb, d, mp, panp, cp, m, rp, margin, coef, np_, cidx, cval);
  }
  return py::make_tuple(counts, py::array_t<I64>(cidx.size(), cidx.data()),
                        py::array_t<double>(cval.size(), cval.data()));
}

}  // namespace

void bind_fused_min(py::module_& m) {
  m.def("prune_lists", &prune_lists_t, py::arg("prev"), py::arg("mu"), py::arg("panels"), py::arg("cn"),
        py::arg("radius2"), py::arg("margin"), py::arg("coef"),
        "The lazy refresh's pruning lists on the fused GEMM: for each earlier pick (a row of prev,\n"
        "float32) the new centres (panels = pack_panels on mu, cn their norms) whose lower bound\n"
        "G - coef (|a - mu|^2 + cn) on the squared distance is <= 4 radius2 (1 + margin).\n"
        "Returns (counts (nb,), cidx, cval): each row's centres in ascending order, row after row.");
  m.def("fused_block_min", &fused_block_min_t, py::arg("x"), py::arg("rows"), py::arg("y"), py::arg("mu"),
        py::arg("panels"), py::arg("yn"), py::arg("coef"), py::arg("floor"), py::arg("rel"), py::arg("value"),
        py::arg("index"),
        "block_min of x (or x[rows]) against a few float32 centres y in one pass: the fused GEMM\n"
        "(panels = pack_panels(y, 0, m, mu), yn their norms) finds each row's candidate, the direct\n"
        "form settles its window (err_i = coef (|x_i - mu|^2 + max yn) + floor, rel: the direct\n"
        "form's relative bound). value/index: as block_min. x: float32 or float16 rows, or unit rows.");
}

}  // namespace hminsel
