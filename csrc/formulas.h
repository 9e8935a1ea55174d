// Formula families: each computes the cost of one aten op call from its arguments.
//
// An op is declared once, as data, in flopdispatch/_ops.py: a family and up to eight integer
// parameters (argument positions and per-element costs). The families below are the only
// place where cost arithmetic lives in shipped code. Units: FLOPs and MACs are counts of
// operations; bytes are counted generically by the recorder, not here.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace fd {

enum Family : int {
    F_ZERO = 0,        // views and metadata: nothing computed, nothing moved
    F_MOVE,            // data movement: bytes only
    F_UNSUPPORTED,     // no formula: bytes and calls recorded, listed as unsupported
    F_MATMUL,          // p0=a p1=b p2=bias p3=kind(0 a@b, 1 outer, 2 a@b.T, 3 grouped)
                       // p4=output_mask (products = requested gradients)
    F_CONV,            // p0=input p1=weight p2=bias p3=transposed(bool arg) p4=always transposed
                       // p5=FLOPs per output element of a fused epilogue (relu, add)
    F_CONV_BWD,        // p0=grad_out p1=input p2=weight p3=transposed p4=output_mask
    F_ATTENTION,       // p0=q (k,v follow) p1=layout p2=causal arg p3=causal kind p4=mask arg p5=backward
                       // p6=cumulative sequence lengths arg (variable length: unsupported)
    F_ELEMENTWISE,     // p0=FLOPs per output element p1=int arg the cost is multiplied by
    F_REDUCE,          // p0=FLOPs per input element p1=input arg p2=FLOPs per output element
                       // p3=bool arg that must be true (else 0) p4=output p2 counts p5=diagonal only
    F_NORM,            // p0=input p1=weight p2=bias p3=FLOPs/elt p4=training arg p5=FLOPs/elt in eval
    F_NORM_BWD,        // p0=grad p1=output_mask p2,p3,p4=FLOPs/elt for grad input, weight, bias
    F_POOL,            // p0=kernel arg p1=spatial rank p2=counted tensor (-1: output 0, else arg)
    F_FOREACH,         // p0=tensor-list arg p1=FLOPs per element
    F_MHA,             // _native_multi_head_attention
    F_ENCODER_LAYER,   // _transformer_encoder_layer_fwd
    F_RNN,             // p0=input p1=w_ih p2=w_hh p3=products per weight p4,p6,p7=FLOPs per hidden unit
                       // and step for LSTM, GRU, plain RNN p5=flat weight list (cuDNN layout)
    F_FFT,             // p0=signal (-1: output 0) p1=dim arg p2=half (1: real input or output)
    F_LINALG,          // p0=matrix p1=kind (LinalgKind) p2=second operand p3,p4=flag args
    F_TRILINEAR,       // p0=i1 (i2, i3 follow) p1=expand1 (expand2, expand3, sumdim, unroll_dim follow)
    F_DISTANCE,        // p0=x1 p1=x2 (-1: pairs within x1) p2=p arg p3=kind (0 forward, 1 backward, 2 mm)
    F_EMBEDDING_BAG,   // p0=rows (last dim D) p1=indices p2=mode arg p3=per_sample_weights p4=kind
    F_GRID_SAMPLER,    // p0=counted (-1: output 0) p1=grid p2=mode arg p3=output_mask p4..p6=costs
    F_LINEAR_CROSS_ENTROPY,  // p0=input p1=weight [V, D] p2=bias p3=first compute-grad flag arg
                             // p4=FLOPs per logit (loss) p5=FLOPs per logit (gradient)
    F_SPARSE_MATMUL,   // p0=sparse CSR arg p1=dense arg p2=output_mask p3=FLOPs per stored element
    F_COMM,            // collectives and FSDP copy helpers: no FLOPs; bytes and the communication
                       // record come from the comm hook (flopdispatch/comm.py), rare calls only
    F_CTC,             // p0=log_probs [T, N, C] p1=target_lengths (int list) p2=FLOPs per lattice
                       // element (T x N x (2 max target length + 1)) p3=FLOPs per element of output 1
    F_COUNT
};

inline const char* family_name(int f) {
    static const char* names[] = {"zero",        "move",   "unsupported", "matmul",   "conv",
                                  "conv_backward", "attention", "elementwise", "reduce", "norm",
                                  "norm_backward", "pool", "foreach",     "mha",      "encoder_layer",
                                  "rnn",         "fft",    "linalg",      "trilinear", "distance",
                                  "embedding_bag", "grid_sampler",
                                  "linear_cross_entropy", "sparse_matmul", "comm", "ctc"};
    return (f >= 0 && f < F_COUNT) ? names[f] : "?";
}

constexpr int kMaxParams = 8;

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
