// Argument checks at the Python boundary: messages say what was expected and
// what came. Nothing is converted or copied; a wrong array is an error.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <type_traits>
#include <vector>

#include "rows.h"

namespace hminsel {
namespace py = pybind11;

inline std::string describe(py::handle obj) {
  if (!py::isinstance<py::array>(obj)) return std::string(py::str(py::type::handle_of(obj).attr("__name__")));
  auto a = py::reinterpret_borrow<py::array>(obj);
  std::string s = std::string(py::str(a.dtype())) + " array of shape (";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  s += a.ndim() == 1 ? ",)" : ")";
  if (!(a.flags() & py::array::c_style)) s += ", not C-contiguous";
  if (!a.writeable()) s += ", read-only";
  return s;
}

template <typename T> const char* dtype_name();
template <> inline const char* dtype_name<float>() { return "float32"; }
template <> inline const char* dtype_name<double>() { return "float64"; }
template <> inline const char* dtype_name<int64_t>() { return "int64"; }
template <> inline const char* dtype_name<uint8_t>() { return "uint8"; }
template <> inline const char* dtype_name<uint16_t>() { return "uint16"; }
template <> inline const char* dtype_name<uint32_t>() { return "uint32"; }
template <> inline const char* dtype_name<uint64_t>() { return "uint64"; }

// A C-contiguous T array with `ndim` dims (writable if `out`), else ValueError.
template <typename T>
py::array_t<T> checked(py::handle obj, const char* name, int ndim, bool out = false) {
  const bool ok = py::isinstance<py::array_t<T, py::array::c_style>>(obj) &&
                  py::reinterpret_borrow<py::array>(obj).ndim() == ndim &&
                  (!out || py::reinterpret_borrow<py::array>(obj).writeable());
  if (!ok)
    throw py::value_error(std::string(name) + " must be a " + (out ? "writable " : "") +
                          "C-contiguous " + dtype_name<T>() + " array with " +
                          std::to_string(ndim) + " dim(s); got " + describe(obj));
  return py::reinterpret_borrow<py::array_t<T>>(obj);
}

// A ValueError with message `what` unless `ok`. A macro, so that the message is
// built only when the check fails: some checks run once per row.
#define HMINSEL_REQUIRE(ok, what)                          \
  do {                                                     \
    if (!(ok)) throw ::pybind11::value_error(what);        \
  } while (0)

// Length of `a` along `axis` must be `n`.
template <typename A>
void need_len(const A& a, const char* name, int axis, int64_t n, const char* what) {
  HMINSEL_REQUIRE(a.shape(axis) == n, std::string(name) + " must have " + std::to_string(n) + " " +
                                  what + "; got " + describe(a));
}

// float32 or float64 inputs only: which one x is.
inline bool is_float32(py::handle x, const char* name) {
  if (py::isinstance<py::array_t<float>>(x)) return true;
  if (py::isinstance<py::array_t<double>>(x)) return false;
  throw py::value_error(std::string(name) + " must be a float32 or float64 array; got " +
                        describe(x));
}

// rows: None (all of x) or int64 (n,) row ids, each checked to be in [0, N).
inline const int64_t* row_ids(py::handle ro, int64_t big_n, int64_t& n) {
  if (ro.is_none()) return nullptr;
  auto rows = checked<int64_t>(ro, "rows", 1);
  n = rows.shape(0);
  const int64_t* p = rows.data();
  for (int64_t r = 0; r < n; ++r)
    HMINSEL_REQUIRE(p[r] >= 0 && p[r] < big_n, "rows[" + std::to_string(r) + "] = " + std::to_string(p[r]) +
                                           " is not a row of x in [0, " + std::to_string(big_n) + ")");
  return p;
}

// Whether a is a native-order float16 array.
inline bool is_float16(const py::array& a) {
  return a.dtype().equal(py::dtype::from_args(py::str("float16")));
}

// Unit rows read in place: an hminsel._rows.UnitRows, with the stored array
// `raw` and the rows' norms `norms`.
inline bool is_unit_rows(py::handle obj) {
  if (py::isinstance<py::array>(obj)) return false;
  // Looked up once and kept for the life of the process (never released).
  static const py::handle cls = py::object(py::module_::import("hminsel._rows").attr("UnitRows")).release();
  return py::isinstance(obj, cls);
}

// Rows of x: a C-contiguous (n, d) array of storage S (float, double, or Half:
// NumPy's float16), or unit rows whose `raw` is one and whose `norms` is a
// C-contiguous acc_t<S> (n,) array; else ValueError.
template <typename S>
struct Rows {
  py::object array, norms_array;  // held while the kernel runs
  const S* data;
  int64_t n, d;
  const acc_t<S>* norms = nullptr;
  RowSource<S> source() const { return {data, norms}; }
};

template <typename S>
Rows<S> checked_rows(py::handle obj, const char* name) {
  if (is_unit_rows(obj)) {
    Rows<S> rows = checked_rows<S>(obj.attr("raw"), name);
    auto norms = checked<acc_t<S>>(obj.attr("norms"), "norms", 1);
    need_len(norms, "norms", 0, rows.n, "entries (rows of x)");
    rows.norms_array = norms;
    rows.norms = norms.data();
    return rows;
  }
  if constexpr (std::is_same_v<S, Half>) {
    const bool ok = py::isinstance<py::array>(obj) && [&] {
      auto a = py::reinterpret_borrow<py::array>(obj);
      return is_float16(a) && a.ndim() == 2 && (a.flags() & py::array::c_style);
    }();
    if (!ok)
      throw py::value_error(std::string(name) + " must be a C-contiguous float16 array with 2 dim(s); got " +
                            describe(obj));
    auto a = py::reinterpret_borrow<py::array>(obj);
    return {a, py::none(), static_cast<const Half*>(a.data()), a.shape(0), a.shape(1)};
  } else {
    auto a = checked<S>(obj, name, 2);
    return {a, py::none(), a.data(), a.shape(0), a.shape(1)};
  }
}

// f(S{}) for the storage S of the float array x (or of unit rows' raw array):
// float32, float64 or float16.
template <typename F>
auto by_storage(py::handle x, const char* name, F&& f) {
  const py::object a = is_unit_rows(x) ? x.attr("raw") : py::reinterpret_borrow<py::object>(x);
  if (py::isinstance<py::array_t<float>>(a)) return f(float{});
  if (py::isinstance<py::array_t<double>>(a)) return f(double{});
  if (py::isinstance<py::array>(a) && is_float16(py::reinterpret_borrow<py::array>(a))) return f(Half{});
  throw py::value_error(std::string(name) + " must be a float16, float32 or float64 array; got " +
                        describe(a));
}

// f(Sy{}) for y's rows beside x of storage S: y is x itself (storage S) or
// centres in x's sums' type acc_t<S>; anything else is a ValueError.
template <typename S, typename F>
auto by_y_storage(py::handle y, F&& f) {
  return by_storage(y, "y", [&](auto sy) {
    using Sy = decltype(sy);
    if constexpr (std::is_same_v<Sy, S> || std::is_same_v<Sy, acc_t<S>>) {
      return f(sy);
    } else {
      throw py::value_error(std::string("y must hold x's values or ") + dtype_name<acc_t<S>>() +
                            " rows; got " + describe(y));
      return f(acc_t<S>{});  // never reached: one return type
    }
  });
}

}  // namespace hminsel
