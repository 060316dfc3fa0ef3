// Bindings of the exact bucket FPS (bucket.cpp): checks, then the kernel without the GIL.
#include <string>

#include "checks.h"
#include "common.h"

namespace hminsel {

template <typename T>
void bucket_select(const T* x, int64_t rows, int64_t d, const T* mind0, const int64_t* seeds,
                   int64_t ns, int64_t k, int64_t leaf, int64_t* picks, double* values);
template <typename T>
void bucket_batched(const T* x, int64_t d, int64_t num, const int64_t* ptr, const int64_t* counts,
                    const int64_t* starts, const int64_t* out_ptr, int64_t leaf, int64_t* picks,
                    double* values);
template <typename T>
void bucket_closest(const T* x, int64_t rows, int64_t d, int64_t leaf, T* value, int64_t* nearest);

namespace {

constexpr int64_t kMaxDim = 8, kMaxLeaf = 256, kMaxRows = int64_t(1) << 32;
constexpr int64_t kLeaf = 128;  // points a bucket: the fastest of 32..256 on every bigcloud and clouds case (AVX-512)
constexpr int64_t kClosestLeaf = 8;  // bucket_closest: the fastest of 4..128 on 1M x 3 and 200k x 8

std::string num(int64_t v) { return std::to_string(v); }

void check_common(int64_t d, int64_t leaf) {
  HMINSEL_REQUIRE(d >= 1 && d <= kMaxDim, "bucket FPS takes 1 <= d <= " + num(kMaxDim) + "; got d = " + num(d));
  HMINSEL_REQUIRE(leaf >= 0 && leaf <= kMaxLeaf,
                  "leaf must be in [0, " + num(kMaxLeaf) + "] (0: default " + num(kLeaf) + "); got " + num(leaf));
}

template <typename T>
py::tuple select_t(py::handle xo, py::handle mo, py::handle so, int64_t k, int64_t leaf) {
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
  py::array_t<int64_t> picks(k);
  py::array_t<double> values(k);
  const T* xp = x.data();
  int64_t* pp = picks.mutable_data();
  double* vp = values.mutable_data();
  {
    py::gil_scoped_release nogil;
    bucket_select(xp, n, d, mp, sp, ns, k, leaf ? leaf : kLeaf, pp, vp);
  }
  return py::make_tuple(picks, values);
}

template <typename T>
py::tuple batched_t(py::handle xo, py::handle po, py::handle co, py::handle so, int64_t leaf) {
  auto x = checked<T>(xo, "x", 2);
  auto ptr = checked<int64_t>(po, "ptr", 1);
  auto counts = checked<int64_t>(co, "counts", 1);
  auto starts = checked<int64_t>(so, "starts", 1);
  const int64_t n = x.shape(0), d = x.shape(1), num_p = ptr.shape(0) - 1;
  check_common(d, leaf);
  HMINSEL_REQUIRE(num_p >= 0, "ptr must have at least 1 entry (P + 1 for P problems); got " + describe(ptr));
  need_len(counts, "counts", 0, num_p, "entries (one per problem, len(ptr) - 1)");
  need_len(starts, "starts", 0, num_p, "entries (one per problem, len(ptr) - 1)");
  const int64_t *pp = ptr.data(), *cp = counts.data(), *sp = starts.data();
  HMINSEL_REQUIRE(pp[0] == 0 && pp[num_p] == n, "ptr must run from 0 to N = " + num(n) + "; got " + num(pp[0]) + " .. " + num(pp[num_p]));
  py::array_t<int64_t> out_ptr(num_p + 1);
  int64_t* op = out_ptr.mutable_data();
  op[0] = 0;
  for (int64_t p = 0; p < num_p; ++p) {
    const int64_t size = pp[p + 1] - pp[p];
    HMINSEL_REQUIRE(size >= 0, "ptr must be non-decreasing; ptr[" + num(p + 1) + "] < ptr[" + num(p) + "]");
    HMINSEL_REQUIRE(size < kMaxRows, "bucket FPS takes problems of fewer than 2^32 rows; problem " + num(p) + " has " + num(size));
    HMINSEL_REQUIRE(cp[p] >= 0 && cp[p] <= size, "counts[" + num(p) + "] must be in [0, " + num(size) + "]; got " + num(cp[p]));
    HMINSEL_REQUIRE(cp[p] == 0 || (sp[p] >= 0 && sp[p] < size),
                    "starts[" + num(p) + "] must be a local row in [0, " + num(size) + "); got " + num(sp[p]));
    op[p + 1] = op[p] + cp[p];
  }
  py::array_t<int64_t> picks(op[num_p]);
  py::array_t<double> values(op[num_p]);
  const T* xp = x.data();
  int64_t* kp = picks.mutable_data();
  double* vp = values.mutable_data();
  {
    py::gil_scoped_release nogil;
    bucket_batched(xp, d, num_p, pp, cp, sp, op, leaf ? leaf : kLeaf, kp, vp);
  }
  return py::make_tuple(picks, values, out_ptr);
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
  {
    py::gil_scoped_release nogil;
    bucket_closest(xp, n, d, leaf ? leaf : kClosestLeaf, vp, np_);
  }
  return py::make_tuple(value, nearest);
}

}  // namespace

void bind_bucket(py::module_& m) {
  m.def("bucket_select",
        [](py::handle x, py::handle mind, py::handle seeds, int64_t k, int64_t leaf) {
          return is_float32(x, "x") ? select_t<float>(x, mind, seeds, k, leaf)
                                    : select_t<double>(x, mind, seeds, k, leaf);
        },
        py::arg("x"), py::arg("mind"), py::arg("seeds"), py::arg("k"), py::arg("leaf") = 0,
        "Exact bucket FPS of x (N, d), 1 <= d <= 8, on one thread: the streaming FPS\n"
        "sequence from the first picks `seeds` (int64, live rows), k picks in all.\n"
        "mind (N,) (dtype of x, read only) is the starting state: +inf, or MARK (-1)\n"
        "for rows left out. Returns (picks int64 (k,), values float64 (k,) squared\n"
        "distances, values[0] = inf); (-1, -1.0) once no live row is left. Ties to the\n"
        "lowest index; distances as `step`. leaf: points a bucket (0: default).");
  m.def("bucket_batched",
        [](py::handle x, py::handle ptr, py::handle counts, py::handle starts, int64_t leaf) {
          return is_float32(x, "x") ? batched_t<float>(x, ptr, counts, starts, leaf)
                                    : batched_t<double>(x, ptr, counts, starts, leaf);
        },
        py::arg("x"), py::arg("ptr"), py::arg("counts"), py::arg("starts"), py::arg("leaf") = 0,
        "fps_batched with the exact bucket FPS (1 <= d <= 8): one problem per OpenMP\n"
        "thread at a time. Same arguments and results as fps_batched.");
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
