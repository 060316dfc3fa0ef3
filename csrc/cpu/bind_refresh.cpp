// Binding of the pruned refresh (refresh.cpp): checks, then the kernel without the GIL.
#include <string>

#include "checks.h"
#include "kernels.h"

namespace hminsel {
namespace {

// x: float32, float64 or float16 storage S; ub and centers in T = acc_t<S>.
template <typename S, typename T = acc_t<S>>
int64_t refresh_t(py::handle xo, py::handle uo, py::handle oo, py::handle co, int64_t base,
                  py::handle po, py::handle io, py::handle vo, double slack, py::handle fo) {
  auto x = checked_rows<S>(xo, "x");
  auto ub = checked<T>(uo, "ub", 1, true);
  auto owner = checked<int64_t>(oo, "owner", 1, true);
  auto centers = checked<T>(co, "centers", 2);
  auto ptr = checked<int64_t>(po, "ptr", 1);
  auto cidx = checked<int64_t>(io, "cidx", 1);
  auto cval = checked<double>(vo, "cval", 1);
  const int64_t n = x.n, d = x.d, m = centers.shape(0);
  need_len(ub, "ub", 0, n, "entries (one per row of x)");
  need_len(owner, "owner", 0, n, "entries (one per row of x)");
  need_len(centers, "centers", 1, d, "columns (d of x)");
  HMINSEL_REQUIRE(base >= 0, "base must be >= 0; got " + std::to_string(base));
  need_len(ptr, "ptr", 0, base + 1, "entries (base + 1)");
  need_len(cval, "cval", 0, cidx.shape(0), "entries (one per cidx entry)");
  const int64_t* pp = ptr.data();
  const int64_t* ip = cidx.data();
  const int64_t* op = owner.data();
  HMINSEL_REQUIRE(pp[0] == 0 && pp[base] == cidx.shape(0), "ptr must run from 0 to len(cidx)");
  for (int64_t a = 0; a < base; ++a) HMINSEL_REQUIRE(pp[a] <= pp[a + 1], "ptr must be non-decreasing");
  for (int64_t e = 0; e < cidx.shape(0); ++e)
    HMINSEL_REQUIRE(ip[e] >= 0 && ip[e] < m, "cidx entries must be rows of centers in [0, " + std::to_string(m) + ")");
  const T* up = ub.data();
  int64_t bad = -1;
  {
    py::gil_scoped_release nogil;  // a pass over n rows: other Python threads may run
    for (int64_t i = 0; i < n && bad < 0; ++i)
      if (!(up[i] == T(MARK) || (op[i] >= 0 && op[i] < base))) bad = i;
  }
  HMINSEL_REQUIRE(bad < 0, "owner of every live row must be a pick in [0, base); row " +
                               std::to_string(bad) + " has " + std::to_string(bad < 0 ? 0 : op[bad]));
  SmallBound few{0.0, 0.0, 0.0};
  if (!fo.is_none()) {
    auto t = py::cast<std::tuple<double, double, double>>(fo);
    few = {std::get<0>(t), std::get<1>(t), std::get<2>(t)};
    HMINSEL_REQUIRE(few.rel >= 0 && few.rel < 1 && few.coef >= 0 && few.floor >= 0,
                    "few must be (coef >= 0, floor >= 0, 0 <= rel < 1), the GEMM bound; got (" +
                        std::to_string(few.coef) + ", " + std::to_string(few.floor) + ", " +
                        std::to_string(few.rel) + ")");
  }
  const RowSource<S> xp = x.source();
  const T* cp = centers.data();
  const double* vp = cval.data();
  T* ubp = ub.mutable_data();
  int64_t* owp = owner.mutable_data();
  const SmallBound* fp = fo.is_none() ? nullptr : &few;
  py::gil_scoped_release nogil;
  return refresh(xp, n, d, ubp, owp, cp, base, pp, ip, vp, slack, fp);
}

// Largest value in each owner's cell: radius2 (base,) float64, 0 for empty cells.
template <typename T>
py::array_t<double> cell_radius_t(py::handle uo, py::handle oo, int64_t base) {
  auto ub = checked<T>(uo, "ub", 1);
  auto owner = checked<int64_t>(oo, "owner", 1);
  const int64_t n = ub.shape(0);
  need_len(owner, "owner", 0, n, "entries (one per entry of ub)");
  HMINSEL_REQUIRE(base >= 0, "base must be >= 0; got " + std::to_string(base));
  py::array_t<double> radius2(base);
  double* rp = radius2.mutable_data();
  const T* up = ub.data();
  const int64_t* op = owner.data();
  int64_t bad = -1;
  {
    py::gil_scoped_release nogil;
    for (int64_t a = 0; a < base; ++a) rp[a] = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      if (up[i] == T(MARK)) continue;
      if (op[i] < 0 || op[i] >= base) {
        bad = i;
        break;
      }
      if (up[i] > rp[op[i]]) rp[op[i]] = up[i];
    }
  }
  HMINSEL_REQUIRE(bad < 0, "owner of row " + std::to_string(bad) + " must be in [0, base)");
  return radius2;
}

}  // namespace

#define HMINSEL_DISPATCH(fn, first, ...) \
  (is_float32(first, #first) ? fn<float>(first, __VA_ARGS__) : fn<double>(first, __VA_ARGS__))

void bind_refresh(py::module_& m) {
  m.def("refresh",
        [](py::handle x, py::handle ub, py::handle owner, py::handle centers, int64_t base,
           py::handle ptr, py::handle cidx, py::handle cval, double slack, py::handle few) {
          return by_storage(x, "x", [&](auto s) {
            return refresh_t<decltype(s)>(x, ub, owner, centers, base, ptr, cidx, cval, slack, few);
          });
        },
        py::arg("x"), py::arg("ub"), py::arg("owner"), py::arg("centers"), py::arg("base"),
        py::arg("ptr"), py::arg("cidx"), py::arg("cval"), py::arg("slack"), py::arg("few") = py::none(),
        "Pruned refresh of the exact lazy FPS: fold centers (m, d), picks base.., into\n"
        "ub/owner (N,) in place, skipping pairs ruled out by the triangle inequality\n"
        "(see Backend.refresh). Returns the rows that computed a distance. few: None, or\n"
        "(coef, floor, rel), the GEMM bound (cpu_gemm.few_bound): float32 sums on an AVX-512\n"
        "build then take each cell's rows against its whole list through the fused GEMM.");
  m.def("cell_radius",
        [](py::handle ub, py::handle owner, int64_t base) {
          return HMINSEL_DISPATCH(cell_radius_t, ub, owner, base);
        },
        py::arg("ub"), py::arg("owner"), py::arg("base"),
        "Largest live value of ub (N,) per owner in [0, base): float64 (base,), 0 if none.");
}

}  // namespace hminsel
