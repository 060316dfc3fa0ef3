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

}  // namespace

void bind_fused_min(py::module_& m) {
  m.def("fused_block_min", &fused_block_min_t, py::arg("x"), py::arg("rows"), py::arg("y"), py::arg("mu"),
        py::arg("panels"), py::arg("yn"), py::arg("coef"), py::arg("floor"), py::arg("rel"), py::arg("value"),
        py::arg("index"),
        "block_min of x (or x[rows]) against a few float32 centres y in one pass: the fused GEMM\n"
        "(panels = pack_panels(y, 0, m, mu), yn their norms) finds each row's candidate, the direct\n"
        "form settles its window (err_i = coef (|x_i - mu|^2 + max yn) + floor, rel: the direct\n"
        "form's relative bound). value/index: as block_min. x: float32 or float16 rows, or unit rows.");
}

}  // namespace hminsel
