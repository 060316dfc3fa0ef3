// Binding of the batched / ragged FPS (batched.cpp): checks, then the kernel without the GIL.
#include <string>

#include "checks.h"

namespace hminsel {

template <typename T>
void fps_batched(const T* x, int64_t d, int64_t num, const int64_t* ptr, const int64_t* counts,
                 const int64_t* starts, const int64_t* out_ptr, int64_t* picks, double* values);

namespace {

std::string at(const char* name, int64_t p) { return std::string(name) + "[" + std::to_string(p) + "]"; }

template <typename T>
py::tuple fps_batched_t(py::handle xo, py::handle po, py::handle co, py::handle so) {
  auto x = checked<T>(xo, "x", 2);
  auto ptr = checked<int64_t>(po, "ptr", 1);
  auto counts = checked<int64_t>(co, "counts", 1);
  auto starts = checked<int64_t>(so, "starts", 1);
  const int64_t n = x.shape(0), d = x.shape(1), num = ptr.shape(0) - 1;
  HMINSEL_REQUIRE(num >= 0, "ptr must have at least 1 entry (P + 1 for P problems); got " + describe(ptr));
  need_len(counts, "counts", 0, num, "entries (one per problem, len(ptr) - 1)");
  need_len(starts, "starts", 0, num, "entries (one per problem, len(ptr) - 1)");
  const int64_t *pp = ptr.data(), *cp = counts.data(), *sp = starts.data();
  HMINSEL_REQUIRE(pp[0] == 0 && pp[num] == n, "ptr must run from 0 to N = " + std::to_string(n) +
                                          "; got " + std::to_string(pp[0]) + " .. " + std::to_string(pp[num]));
  py::array_t<int64_t> out_ptr(num + 1);
  int64_t* op = out_ptr.mutable_data();
  op[0] = 0;
  for (int64_t p = 0; p < num; ++p) {
    const int64_t size = pp[p + 1] - pp[p];
    HMINSEL_REQUIRE(size >= 0, "ptr must be non-decreasing; " + at("ptr", p + 1) + " < " + at("ptr", p));
    HMINSEL_REQUIRE(cp[p] >= 0 && cp[p] <= size, at("counts", p) + " must be in [0, " + std::to_string(size) +
                                             "] (the rows of problem " + std::to_string(p) + "); got " + std::to_string(cp[p]));
    HMINSEL_REQUIRE(cp[p] == 0 || (sp[p] >= 0 && sp[p] < size),
            at("starts", p) + " must be a local row in [0, " + std::to_string(size) + "); got " + std::to_string(sp[p]));
    op[p + 1] = op[p] + cp[p];
  }
  py::array_t<int64_t> picks(op[num]);
  py::array_t<double> values(op[num]);
  const T* xp = x.data();
  int64_t* kp = picks.mutable_data();
  double* vp = values.mutable_data();
  {
    py::gil_scoped_release nogil;
    fps_batched(xp, d, num, pp, cp, sp, op, kp, vp);
  }
  return py::make_tuple(picks, values, out_ptr);
}

}  // namespace

void bind_batched(py::module_& m) {
  m.def("fps_batched",
        [](py::handle x, py::handle ptr, py::handle counts, py::handle starts) {
          return is_float32(x, "x") ? fps_batched_t<float>(x, ptr, counts, starts)
                                    : fps_batched_t<double>(x, ptr, counts, starts);
        },
        py::arg("x"), py::arg("ptr"), py::arg("counts"), py::arg("starts"),
        "Streaming FPS on each problem p = rows ptr[p] .. ptr[p+1] of x (N, d), in parallel\n"
        "over problems: counts[p] picks from local row starts[p]. Returns (picks int64,\n"
        "values float64 squared distances, out_ptr int64 (P+1,)): problem p's picks are\n"
        "picks[out_ptr[p]:out_ptr[p+1]] as global rows, values[out_ptr[p]] = inf. Problems\n"
        "with counts[p] == 0 get no slots. Ties to the lowest index; distances as `step`.");
}

}  // namespace hminsel
