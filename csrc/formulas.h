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
    F_MATMUL,          // p0=a p1=b p2=bias p3=kind(0 a@b, 1 outer, 2 a@b.T, 3 grouped, 4 sparse a)
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
    F_COUNT
};

inline const char* family_name(int f) {
    static const char* names[] = {"zero",        "move",   "unsupported", "matmul",   "conv",
                                  "conv_backward", "attention", "elementwise", "reduce", "norm",
                                  "norm_backward", "pool", "foreach",     "mha",      "encoder_layer",
                                  "rnn"};
    return (f >= 0 && f < F_COUNT) ? names[f] : "?";
}

constexpr int kMaxParams = 8;

// Raised when a shape holds a symbolic size: the Python reference handles those.
struct SymbolicShape {};
// Raised when arguments do not fit the declaration: the call is reported as unsupported.
struct FormulaError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Cost {
    int64_t flops = 0;
    int64_t macs = 0;
    int64_t masked_macs = 0;  // MACs a causal-aware kernel would skip (attention only)
};

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
};

Cost compute_cost(int family, const int* p, const CallView& call);

}  // namespace fd
