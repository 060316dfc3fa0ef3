// Bindings of the exact bucket FPS (bucket.cpp): checks, then the kernel without the GIL.
#include <string>

#include "batched_io.h"
#include "common.h"
#include "stop.h"

namespace hminsel {

template <typename T>
int64_t bucket_select(const T* x, int64_t rows, int64_t d, const T* mind0, const int64_t* seeds,
                      int64_t ns, int64_t k, int64_t leaf, double floor, int stream, int64_t* picks,
                      double* values, Stop* stop);
template <typename T>
void bucket_batched(const T* x, int64_t d, int64_t num, const int64_t* ptr, const int64_t* counts,
                    const int64_t* starts, double floor, const int64_t* out_ptr, int64_t leaf,
                    int stream, int64_t* picks, double* values, int64_t* made, Stop* stop);
template <typename T>
void bucket_closest(const T* x, int64_t rows, int64_t d, int64_t leaf, T* value, int64_t* nearest,
                    Stop* stop);

namespace {

constexpr int64_t kMaxDim = 8, kMaxLeaf = 256, kMaxRows = int64_t(1) << 32;
constexpr int64_t kLeaf = 128;  // points a bucket: the fastest of 32..256 on every bigcloud and clouds case (AVX-512)
constexpr int64_t kClosestLeaf = 8;  // bucket_closest: the fastest of 4..128 on 1M x 3 and 200k x 8

std::string num(int64_t v) { return std::to_string(v); }

// Python's signal handlers, run from the calling thread while a kernel holds no GIL: true when
// one raised (its exception stays set for `raise_if_stopped`).
bool signal_raised() {
  py::gil_scoped_acquire gil;
  return PyErr_CheckSignals() != 0;
}

// A Stop for a call from this thread: Python runs signal handlers in its main thread only, so
// elsewhere there is nothing to check (and no GIL to take every 0.1 s for it).
Stop make_stop() {
  static const unsigned long main_ident =
      py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();
  return Stop(PyThread_get_thread_ident() == main_ident ? std::function<bool()>(signal_raised)
                                                         : std::function<bool()>());
}

void raise_if_stopped(const Stop& stop) {
  if (stop.raised()) throw py::error_already_set();
}

void check_common(int64_t d, int64_t leaf) {
  HMINSEL_REQUIRE(d >= 1 && d <= kMaxDim, "bucket FPS takes 1 <= d <= " + num(kMaxDim) + "; got d = " + num(d));
  HMINSEL_REQUIRE(leaf >= 0 && leaf <= kMaxLeaf,
                  "leaf must be in [0, " + num(kMaxLeaf) + "] (0: default " + num(kLeaf) + "); got " + num(leaf));
}

void check_stream(int stream) {
  HMINSEL_REQUIRE(stream >= -1 && stream <= 1,
                  "stream must be -1 (by size), 0 (never) or 1 (always); got " + num(stream));
}

template <typename T>
py::tuple select_t(py::handle xo, py::handle mo, py::handle so, int64_t k, int64_t leaf,
                   double floor, int stream) {
  check_stream(stream);
  auto x = checked<T>(xo, "x", 2);
  auto mind = checked<T>(mo, "mind", 1);
  auto seeds = checked<int64_t>(so, "seeds", 1);
  const int64_t n = x.shape(0), d = x.shape(1), ns = seeds.shape(0);
  check_common(d, leaf);
  need_len(mind, "mind", 0, n, "entries (one per row of x)");
  HMINSEL_REQUIRE(n < kMaxRows, "bucket FPS takes fewer than 2^32 rows; got " + describe(x));
  HMINSEL_REQUIRE(ns >= 1, "seeds must hold at least one row; got " + describe(seeds));
  HMINSEL_REQUIRE(k >= ns && k <= n, "k must be in [len(seeds) = " + num(ns) + ", N = " + num(n) + "]; got " + num(k));
  const T* mp = mind.data();
  const int64_t* sp = seeds.data();
  for (int64_t i = 0; i < ns; ++i)
    HMINSEL_REQUIRE(sp[i] >= 0 && sp[i] < n && mp[sp[i]] != T(MARK),
                    "seeds[" + num(i) + "] = " + num(sp[i]) + " must be a live row of x (in [0, " + num(n) + "), mind != MARK)");
  floor = checked_floor(floor);
  py::array_t<int64_t> picks(k);
  py::array_t<double> values(k);
  const T* xp = x.data();
  int64_t* pp = picks.mutable_data();
  double* vp = values.mutable_data();
  int64_t made;
  Stop stop = make_stop();
  {
    py::gil_scoped_release nogil;
    made = bucket_select(xp, n, d, mp, sp, ns, k, leaf ? leaf : kLeaf, floor, stream, pp, vp, &stop);
  }
  raise_if_stopped(stop);
  if (made < k) {  // ended at the floor: the picks made
    picks.resize({made});
    values.resize({made});
  }
  return py::make_tuple(picks, values);
}

template <typename T>
py::tuple batched_t(py::handle xo, py::handle po, py::handle co, py::handle so, int64_t leaf,
                    double floor, int stream) {
  auto x = checked<T>(xo, "x", 2);
  check_common(x.shape(1), leaf);
  check_stream(stream);
  Batch b(po, co, so, x.shape(0), kMaxRows);  // the bucket FPS's rows fit 32 bits
  floor = checked_floor(floor);
  py::array_t<int64_t> picks(b.slots());
  py::array_t<double> values(b.slots());
  const T* xp = x.data();
  const int64_t *pp = b.ptr.data(), *cp = b.counts.data(), *sp = b.starts.data(), *op = b.out_ptr.data();
  int64_t *kp = picks.mutable_data(), *mp = b.made.mutable_data();
  double* vp = values.mutable_data();
  Stop stop = make_stop();
  {
    py::gil_scoped_release nogil;
    bucket_batched(xp, x.shape(1), b.num, pp, cp, sp, floor, op, leaf ? leaf : kLeaf, stream, kp,
                   vp, mp, &stop);
  }
  raise_if_stopped(stop);
  return packed(b, picks, values);
}

template <typename T>
py::tuple closest_t(py::handle xo, int64_t leaf) {
  auto x = checked<T>(xo, "x", 2);
  const int64_t n = x.shape(0), d = x.shape(1);
  check_common(d, leaf);
  HMINSEL_REQUIRE(n >= 2 && n < kMaxRows, "bucket_closest takes 2 <= N < 2^32 rows; got " + describe(x));
  py::array_t<T> value(n);
  py::array_t<int64_t> nearest(n);
  const T* xp = x.data();
  T* vp = value.mutable_data();
  int64_t* np_ = nearest.mutable_data();
  Stop stop = make_stop();
  {
    py::gil_scoped_release nogil;
    bucket_closest(xp, n, d, leaf ? leaf : kClosestLeaf, vp, np_, &stop);
  }
  raise_if_stopped(stop);
  return py::make_tuple(value, nearest);
}

}  // namespace

void bind_bucket(py::module_& m) {
  m.def("bucket_select",
        [](py::handle x, py::handle mind, py::handle seeds, int64_t k, int64_t leaf, double floor,
           int stream) {
          return is_float32(x, "x") ? select_t<float>(x, mind, seeds, k, leaf, floor, stream)
                                    : select_t<double>(x, mind, seeds, k, leaf, floor, stream);
        },
        py::arg("x"), py::arg("mind"), py::arg("seeds"), py::arg("k"), py::arg("leaf") = 0,
        py::arg("floor") = -std::numeric_limits<double>::infinity(), py::arg("stream") = -1,
        "Exact bucket FPS of x (N, d), 1 <= d <= 8, on one thread: the streaming FPS\n"
        "sequence from the first picks `seeds` (int64, live rows), k picks in all.\n"
        "mind (N,) (dtype of x, read only) is the starting state: +inf, or MARK (-1)\n"
        "for rows left out. Returns (picks int64 (k,), values float64 (k,) squared\n"
        "distances, values[0] = inf); (-1, -1.0) once no live row is left. Ties to the\n"
        "lowest index; distances as `step`. leaf: points a bucket (0: default). floor:\n"
        "the run ends before the first pick past the seeds whose value is at most it\n"
        "(-inf: none; select's radius), returning the picks made. stream: as\n"
        "bucket_batched's (-1: few picks for the cloud's size stream over its points).");
  m.def("bucket_batched",
        [](py::handle x, py::handle ptr, py::handle counts, py::handle starts, int64_t leaf,
           double floor, int stream) {
          return is_float32(x, "x") ? batched_t<float>(x, ptr, counts, starts, leaf, floor, stream)
                                    : batched_t<double>(x, ptr, counts, starts, leaf, floor, stream);
        },
        py::arg("x"), py::arg("ptr"), py::arg("counts"), py::arg("starts"), py::arg("leaf") = 0,
        py::arg("floor") = -std::numeric_limits<double>::infinity(), py::arg("stream") = -1,
        "fps_batched with the exact bucket FPS (1 <= d <= 8): one problem per pool\n"
        "thread at a time. Same arguments and results as fps_batched. stream: -1, a\n"
        "problem with few picks or few points runs a vectorised streaming FPS instead\n"
        "(cloud_stream.h: the same picks, without the tree's build); 0, never; 1, always.");
  m.def("bucket_closest",
        [](py::handle x, int64_t leaf) {
          return is_float32(x, "x") ? closest_t<float>(x, leaf) : closest_t<double>(x, leaf);
        },
        py::arg("x"), py::arg("leaf") = 0,
        "h_min of x (N, d), 1 <= d <= 8, N >= 2, finite, on the bucket FPS's tree.\n"
        "Returns (value (N,) dtype of x, nearest int64 (N,)): for every row that is in\n"
        "a closest pair, its exact nearest other row (lowest index on ties) and their\n"
        "squared distance as `step` computes it; every other row holds a value above the\n"
        "minimum (with some other row, or -1 and inf when its search met no row).\n"
        "leaf: points a bucket (0: default).");
}

}  // namespace hminsel
