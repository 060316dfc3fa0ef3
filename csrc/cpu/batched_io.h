// The batched kernels' boundary (bind_batched.cpp, bind_bucket.cpp): the
// problems' layout checked, the output slots sized by the counts (caps), and
// the result packed to the picks each problem made (fewer with a floor).
#pragma once

#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "checks.h"

namespace hminsel {

// ptr (P + 1,) over N rows, counts / starts (P,): checked, with out_ptr (P + 1,)
// = prefix sums of counts (each problem's slots) and made (P,) for the kernel.
struct Batch {
  py::array_t<int64_t> ptr, counts, starts, out_ptr, made;
  int64_t num = 0;

  Batch(py::handle po, py::handle co, py::handle so, int64_t n, int64_t max_rows)
      : ptr(checked<int64_t>(po, "ptr", 1)), counts(checked<int64_t>(co, "counts", 1)),
        starts(checked<int64_t>(so, "starts", 1)) {
    num = ptr.shape(0) - 1;
    HMINSEL_REQUIRE(num >= 0, "ptr must have at least 1 entry (P + 1 for P problems); got " + describe(ptr));
    need_len(counts, "counts", 0, num, "entries (one per problem, len(ptr) - 1)");
    need_len(starts, "starts", 0, num, "entries (one per problem, len(ptr) - 1)");
    const int64_t *pp = ptr.data(), *cp = counts.data(), *sp = starts.data();
    HMINSEL_REQUIRE(pp[0] == 0 && pp[num] == n, "ptr must run from 0 to N = " + std::to_string(n) +
                                                    "; got " + std::to_string(pp[0]) + " .. " + std::to_string(pp[num]));
    out_ptr = py::array_t<int64_t>(num + 1);
    made = py::array_t<int64_t>(num);
    int64_t* op = out_ptr.mutable_data();
    op[0] = 0;
    for (int64_t p = 0; p < num; ++p) {
      const int64_t size = pp[p + 1] - pp[p];
      const std::string at = "[" + std::to_string(p) + "]";
      HMINSEL_REQUIRE(size >= 0, "ptr must be non-decreasing; ptr[" + std::to_string(p + 1) + "] < ptr" + at);
      HMINSEL_REQUIRE(size < max_rows, "problems must have fewer than " + std::to_string(max_rows) +
                                           " rows; problem " + std::to_string(p) + " has " + std::to_string(size));
      HMINSEL_REQUIRE(cp[p] >= 0 && cp[p] <= size, "counts" + at + " must be in [0, " + std::to_string(size) +
                                                       "] (the rows of problem " + std::to_string(p) + "); got " +
                                                       std::to_string(cp[p]));
      HMINSEL_REQUIRE(cp[p] == 0 || (sp[p] >= 0 && sp[p] < size),
                      "starts" + at + " must be a local row in [0, " + std::to_string(size) + "); got " +
                          std::to_string(sp[p]));
      op[p + 1] = op[p] + cp[p];
    }
  }

  int64_t slots() const { return out_ptr.data()[num]; }
};

// floor: a squared value, or -inf (no floor); NaN is refused.
inline double checked_floor(double floor) {
  HMINSEL_REQUIRE(!std::isnan(floor), "floor must be a number (-inf: none); got nan");
  return floor;
}

// (picks, values, out_ptr) of the picks made: each problem's first made[p] slots,
// packed when some problem made fewer than its count.
inline py::tuple packed(Batch& b, py::array_t<int64_t> picks, py::array_t<double> values) {
  const int64_t *op = b.out_ptr.data(), *made = b.made.data();
  int64_t total = 0;
  for (int64_t p = 0; p < b.num; ++p) total += made[p];
  if (total == b.slots()) return py::make_tuple(picks, values, b.out_ptr);
  py::array_t<int64_t> kept(total), new_ptr(b.num + 1);
  py::array_t<double> kept_values(total);
  int64_t *kp = kept.mutable_data(), *np_ = new_ptr.mutable_data();
  double* vp = kept_values.mutable_data();
  np_[0] = 0;
  for (int64_t p = 0; p < b.num; ++p) {
    if (made[p] > 0) {
      std::memcpy(kp + np_[p], picks.data() + op[p], made[p] * sizeof(int64_t));
      std::memcpy(vp + np_[p], values.data() + op[p], made[p] * sizeof(double));
    }
    np_[p + 1] = np_[p] + made[p];
  }
  return py::make_tuple(kept, kept_values, new_ptr);
}

}  // namespace hminsel
