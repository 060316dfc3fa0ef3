// Binding of the batched / ragged FPS (batched.cpp): checks, then the kernel without the GIL.
#include "batched_io.h"

namespace hminsel {

template <typename T>
void fps_batched(const T* x, int64_t d, int64_t num, const int64_t* ptr, const int64_t* counts,
                 const int64_t* starts, double floor, const int64_t* out_ptr, int64_t* picks,
                 double* values, int64_t* made);

namespace {

template <typename T>
py::tuple fps_batched_t(py::handle xo, py::handle po, py::handle co, py::handle so, double floor) {
  auto x = checked<T>(xo, "x", 2);
  Batch b(po, co, so, x.shape(0), std::numeric_limits<int64_t>::max());
  floor = checked_floor(floor);
  py::array_t<int64_t> picks(b.slots());
  py::array_t<double> values(b.slots());
  const T* xp = x.data();
  const int64_t *pp = b.ptr.data(), *cp = b.counts.data(), *sp = b.starts.data(), *op = b.out_ptr.data();
  int64_t *kp = picks.mutable_data(), *mp = b.made.mutable_data();
  double* vp = values.mutable_data();
  {
    py::gil_scoped_release nogil;
    fps_batched(xp, x.shape(1), b.num, pp, cp, sp, floor, op, kp, vp, mp);
  }
  return packed(b, picks, values);
}

}  // namespace

void bind_batched(py::module_& m) {
  m.def("fps_batched",
        [](py::handle x, py::handle ptr, py::handle counts, py::handle starts, double floor) {
          return is_float32(x, "x") ? fps_batched_t<float>(x, ptr, counts, starts, floor)
                                    : fps_batched_t<double>(x, ptr, counts, starts, floor);
        },
        py::arg("x"), py::arg("ptr"), py::arg("counts"), py::arg("starts"),
        py::arg("floor") = -std::numeric_limits<double>::infinity(),
        "Streaming FPS on each problem p = rows ptr[p] .. ptr[p+1] of x (N, d), in parallel\n"
        "over problems: counts[p] picks from local row starts[p], each problem ending\n"
        "before its first pick past the start whose squared distance is at most floor\n"
        "(-inf: none; select's radius). Returns (picks int64, values float64 squared\n"
        "distances, out_ptr int64 (P+1,)): problem p's picks are picks[out_ptr[p]:\n"
        "out_ptr[p+1]] as global rows, values[out_ptr[p]] = inf. Problems with\n"
        "counts[p] == 0 get no slots. Ties to the lowest index; distances as `step`.");
}

}  // namespace hminsel
