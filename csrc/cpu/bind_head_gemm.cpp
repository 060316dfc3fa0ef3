// Binding of the head loop on precomputed GEMM tiles (head_gemm.cpp).
#include <string>

#include "checks.h"
#include "kernels.h"

namespace hminsel {

template <typename T>
int64_t head_gemm(const T* xh, int64_t m, int64_t d, const T* dots, const T* norms, double coef,
                  T* h, const int64_t* hidx, double tau, int64_t tau_idx, int64_t budget,
                  int64_t* picks, double* values, int64_t* own, int64_t ntiles,
                  const int64_t* starts, const uint8_t* need, int64_t* direct);
template <typename T>
void mirror(T* dots, int64_t m, int64_t r0, int64_t r1, int64_t c0, int64_t c1);

namespace {

using I64 = int64_t;

template <typename T>
py::tuple head_gemm_t(py::handle xo, py::handle go, py::handle no, double coef, py::handle ho,
                      py::handle io, double tau, I64 tau_idx, I64 budget, py::handle oo,
                      py::handle so, py::handle eo) {
  auto xh = checked<T>(xo, "xh", 2);
  auto dots = checked<T>(go, "dots", 2);
  auto norms = checked<T>(no, "norms", 1);
  auto h = checked<T>(ho, "h", 1, true);
  auto hidx = checked<I64>(io, "hidx", 1);
  auto own = checked<I64>(oo, "own", 1, true);
  const I64 m = xh.shape(0), d = xh.shape(1);
  need_len(dots, "dots", 0, m, "rows (one per head row)");
  need_len(dots, "dots", 1, m, "columns (one per head row)");
  for (auto* a : {&norms, &h}) need_len(*a, "norms/h", 0, m, "entries (one per head row)");
  need_len(hidx, "hidx", 0, m, "entries (one per head row)");
  need_len(own, "own", 0, m, "entries (one per head row)");
  auto starts = checked<I64>(so, "starts", 1);
  auto need = checked<uint8_t>(eo, "need", 2);
  const I64 nt = starts.shape(0) - 1;
  HMINSEL_REQUIRE(nt >= 1, "starts must have at least 2 entries; got " + describe(starts));
  need_len(need, "need", 0, nt, "rows (len(starts) - 1)");
  need_len(need, "need", 1, nt, "columns (len(starts) - 1)");
  const I64* sp = starts.data();
  HMINSEL_REQUIRE(sp[0] == 0 && sp[nt] == m, "starts must run from 0 to M = " + std::to_string(m));
  for (I64 t = 0; t < nt; ++t) HMINSEL_REQUIRE(sp[t] < sp[t + 1], "starts must be increasing");
  HMINSEL_REQUIRE(budget >= 0, "budget must be >= 0; got " + std::to_string(budget));
  HMINSEL_REQUIRE(coef >= 0, "coef must be >= 0; got " + std::to_string(coef));
  const I64 cap = budget < m ? budget : m;  // each accepted head row is marked: at most M picks
  py::array_t<I64> picks(cap);
  py::array_t<double> values(cap);
  const T *xp = xh.data(), *gp = dots.data(), *np_ = norms.data();
  T* hp = h.mutable_data();
  const I64* ip = hidx.data();
  I64 *pp = picks.mutable_data(), *op = own.mutable_data();
  double* vp = values.mutable_data();
  I64 count, direct;
  {
    py::gil_scoped_release nogil;
    count = head_gemm(xp, m, d, gp, np_, coef, hp, ip, tau, tau_idx, cap, pp, vp, op, nt, sp,
                      need.data(), &direct);
  }
  picks.resize({count});
  values.resize({count});
  return py::make_tuple(picks, values, direct);
}

template <typename T>
void mirror_t(py::handle go, I64 r0, I64 r1, I64 c0, I64 c1) {
  auto dots = checked<T>(go, "dots", 2, true);
  const I64 m = dots.shape(0);
  need_len(dots, "dots", 1, m, "columns (a square matrix)");
  HMINSEL_REQUIRE(0 <= r0 && r0 <= r1 && r1 <= c0 && c0 <= c1 && c1 <= m,
                  "need 0 <= r0 <= r1 <= c0 <= c1 <= M = " + std::to_string(m) + "; got " +
                      std::to_string(r0) + ", " + std::to_string(r1) + ", " + std::to_string(c0) +
                      ", " + std::to_string(c1));
  T* gp = dots.mutable_data();
  py::gil_scoped_release nogil;
  mirror(gp, m, r0, r1, c0, c1);
}

}  // namespace

#define HMINSEL_DISPATCH(fn, first, ...) \
  (is_float32(first, #first) ? fn<float>(first, __VA_ARGS__) : fn<double>(first, __VA_ARGS__))

void bind_head_gemm(py::module_& m) {
  m.def("head_gemm", [](py::handle xh, py::handle dots, py::handle norms, double coef, py::handle h,
                        py::handle hidx, double tau, I64 tau_idx, I64 budget, py::handle own,
                        py::handle starts, py::handle need) {
          return HMINSEL_DISPATCH(head_gemm_t, xh, dots, norms, coef, h, hidx, tau, tau_idx, budget, own,
                                  starts, need); },
        py::arg("xh"), py::arg("dots"), py::arg("norms"), py::arg("coef"), py::arg("h"), py::arg("hidx"),
        py::arg("tau"), py::arg("tau_idx"), py::arg("budget"), py::arg("own"), py::arg("starts"),
        py::arg("need"),
        "head_greedy on precomputed tiles: dots (M, M) = xc . xc^T of the centred head rows xh,\n"
        "norms (M,) = |xc_i|^2. A pick p lowers h[i] only where the GEMM value\n"
        "max(n_i + n_p - 2 dots[p, i], 0) is below h[i] + coef (n_i + n_p); those rows get\n"
        "their direct value, so h stays exact. own[i] = the pick (0, 1, ...) that last lowered\n"
        "h[i] (left alone otherwise). Tiles: rows starts[t] .. starts[t + 1] - 1 (int64, 0 .. M);\n"
        "need (T, T) uint8: 0 where no pick in tile s can lower a value in tile t (dots[s rows, t\n"
        "columns] are then never read). Returns (positions int64, values float64, rows re-checked).");
  m.def("mirror_dots",
        [](py::handle dots, I64 r0, I64 r1, I64 c0, I64 c1) {
          is_float32(dots, "dots") ? mirror_t<float>(dots, r0, r1, c0, c1)
                                   : mirror_t<double>(dots, r0, r1, c0, c1);
        },
        py::arg("dots"), py::arg("r0"), py::arg("r1"), py::arg("c0"), py::arg("c1"),
        "dots[c0:c1, r0:r1] = dots[r0:r1, c0:c1].T in place, without the GIL; dots (M, M)\n"
        "C-contiguous, 0 <= r0 <= r1 <= c0 <= c1 <= M (a block above the diagonal).");
}

}  // namespace hminsel
