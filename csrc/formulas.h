// Formula families: each computes the cost of one aten op call from its arguments.
//
// An op is declared once, as data, in flopdispatch/_ops.py: a family and up to eight integer
// parameters (argument positions and per-element costs), read here by name (family_params.h).
// The families below are the only place where cost arithmetic lives in shipped code. Units:
// FLOPs and MACs are counts of operations; bytes are counted generically by the recorder.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "family_params.h"

namespace fd {

// Family, family_name(), kMaxParams, the named parameter indices (param::<family>::<name>) and
// LinalgKind: generated from flopdispatch/_ops.py (FAMILY_PARAMS, LA_*) into family_params.h,
// so the table, the C++ and the Python reference read one layout.

// Raised when the compiled families cannot compute a call exactly; the Python reference (SymInts,
// Python ints of any size) computes it instead.
struct NeedsPython {};
// A shape holds a symbolic size.
struct SymbolicShape : NeedsPython {};
// A count (or an intermediate product) leaves the 128-bit range.
struct Overflow : NeedsPython {};
// Raised when arguments do not fit the declaration: the call is reported as unsupported.
struct FormulaError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A checked 128-bit integer: every family computes in it, so no product of int64 sizes can wrap.
// Arithmetic that would leave the range throws Overflow (the Python path takes over).
struct Count {
    __int128 v = 0;
    Count() = default;
    Count(__int128 x) : v(x) {}
    Count(long long x) : v(x) {}
    Count(long x) : v(x) {}
    Count(int x) : v(x) {}
    Count(bool x) : v(x) {}
    Count(unsigned long x) : v(x) {}
    Count(unsigned long long x) : v(x) {}
};
inline Count operator*(Count a, Count b) {
    // Two 64-bit factors (the usual case: sizes) cannot overflow 128 bits: skip the check.
    if (a.v == static_cast<int64_t>(a.v) && b.v == static_cast<int64_t>(b.v)) return a.v * b.v;
    __int128 r;
    if (__builtin_mul_overflow(a.v, b.v, &r)) throw Overflow{};
    return r;
}
inline Count operator+(Count a, Count b) {
    __int128 r;
    if (__builtin_add_overflow(a.v, b.v, &r)) throw Overflow{};
    return r;
}
inline Count operator-(Count a, Count b) {
    __int128 r;
    if (__builtin_sub_overflow(a.v, b.v, &r)) throw Overflow{};
    return r;
}
inline Count operator/(Count a, Count b) { return b.v ? Count(a.v / b.v) : Count(0); }  // sizes: >= 0
inline Count operator>>(Count a, int s) { return a.v >> s; }
inline Count& operator+=(Count& a, Count b) { return a = a + b; }
inline Count& operator*=(Count& a, Count b) { return a = a * b; }
inline bool operator<(Count a, Count b) { return a.v < b.v; }
inline bool operator>(Count a, Count b) { return a.v > b.v; }
inline bool operator==(Count a, Count b) { return a.v == b.v; }

struct Cost {
    __int128 flops = 0;
    __int128 macs = 0;
    __int128 masked_macs = 0;  // MACs a causal-aware kernel would skip (attention only)
};

// Exact conversions between 128-bit integers and Python ints.
PyObject* py_from_int128(__int128 v);                 // new reference, or nullptr with an error set
bool int128_from_py(PyObject* o, __int128* out);      // false (no error set) when it does not fit

struct DtypeInfo {
    int64_t itemsize = 0;
    bool floating = false;  // floating point or complex: FLOPs are counted
};

// Global interned strings and type objects, set once at module import.
struct Globals {
    PyObject* tensor_type = nullptr;  // torch.Tensor
    PyObject* str_shape = nullptr;
    PyObject* str_dtype = nullptr;
    PyObject* str_itemsize = nullptr;
    PyObject* str_is_floating_point = nullptr;
    PyObject* str_is_complex = nullptr;
    PyObject* str_out = nullptr;
    PyObject* str_sequence_nr = nullptr;
};
Globals& globals();

// Clears the pending Python error when it is an ordinary Exception (a formula or probe that
// failed: the call is then priced as unsupported or the probe ignored). Any other BaseException
// (KeyboardInterrupt, SystemExit, GeneratorExit...) is set aside for the current thread and
// raised again by raise_deferred() when the core returns to Python: it must never be lost.
void clear_error();
// Restores the BaseException set aside by clear_error() on this thread; true when there was one.
bool raise_deferred();
// Whether a BaseException is set aside on this thread.
bool error_deferred();

inline bool is_tensor(PyObject* o) {
    return o && PyObject_TypeCheck(o, reinterpret_cast<PyTypeObject*>(globals().tensor_type));
}

const DtypeInfo& dtype_info(PyObject* tensor);

// Shape of a tensor as int64s; throws SymbolicShape for symbolic sizes.
void read_shape(PyObject* tensor, std::vector<int64_t>& dims);
// Number of elements; throws Overflow when the logical size does not fit int64.
int64_t numel_of(PyObject* tensor);

// The arguments of one op call, with keyword fallback by schema name.
struct CallView {
    PyObject* args;                          // tuple
    PyObject* kwargs;                        // dict or nullptr
    PyObject* out;                           // op result
    const std::vector<PyObject*>* arg_names; // schema argument names (interned)

    PyObject* arg(int i) const;              // borrowed; nullptr when absent or None
    bool has_tensor(int i) const { return i >= 0 && is_tensor(arg(i)); }
    PyObject* tensor(int i) const;           // throws when not a tensor
    bool get_bool(int i, bool dflt) const;
    int64_t get_int(int i, int64_t dflt) const;
    void get_int_list(int i, std::vector<int64_t>& v) const;
    PyObject* out_tensor(int k) const;       // k-th tensor of the result, or nullptr
    // A string argument equal to `s` (false when absent or not a string).
    bool str_equals(int i, const char* s) const;
};

Cost compute_cost(int family, const int* p, const CallView& call);

}  // namespace fd
