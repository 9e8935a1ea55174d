// Formula families. See formulas.h and docs in README ("Counting conventions").
#include "formulas.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace fd {

Globals& globals() {
    static Globals g;
    return g;
}

const DtypeInfo& dtype_info(PyObject* tensor) {
    // torch.dtype objects are singletons: cache by pointer.
    static std::unordered_map<PyObject*, DtypeInfo> cache;
    static const DtypeInfo unknown{};
    PyObject* dt = PyObject_GetAttr(tensor, globals().str_dtype);
    if (!dt) {
        clear_error();
        return unknown;
    }
    auto it = cache.find(dt);
    if (it != cache.end()) {
        Py_DECREF(dt);
        return it->second;
    }
    DtypeInfo info;
    PyObject* v = PyObject_GetAttr(dt, globals().str_itemsize);
    if (v) {
        info.itemsize = PyLong_AsLongLong(v);
        Py_DECREF(v);
    }
    PyObject* f = PyObject_GetAttr(dt, globals().str_is_floating_point);
    PyObject* c = PyObject_GetAttr(dt, globals().str_is_complex);
    info.floating = (f == Py_True) || (c == Py_True);
    Py_XDECREF(f);
    Py_XDECREF(c);
    if (PyErr_Occurred()) {
        clear_error();
        Py_DECREF(dt);
        return unknown;
    }
    // The dtype stays referenced by the cache: it is a process-wide singleton.
    return cache.emplace(dt, info).first->second;
}

static int64_t as_int(PyObject* v) {
    if (!PyLong_Check(v)) throw SymbolicShape{};
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow) throw FormulaError("size out of int64 range");
    return x;
}

void read_shape(PyObject* tensor, std::vector<int64_t>& dims) {
    dims.clear();
    PyObject* shape = PyObject_GetAttr(tensor, globals().str_shape);
    if (!shape) {
        clear_error();
        throw SymbolicShape{};  // a nested tensor (strided layout): the Python path prices its components
    }
    if (!PyTuple_Check(shape)) {
        Py_DECREF(shape);
        throw FormulaError("shape is not a tuple");
    }
    Py_ssize_t n = PyTuple_GET_SIZE(shape);
    dims.reserve(n);
    try {
        for (Py_ssize_t i = 0; i < n; ++i) dims.push_back(as_int(PyTuple_GET_ITEM(shape, i)));
    } catch (...) {
        Py_DECREF(shape);
        throw;
    }
    Py_DECREF(shape);
}

int64_t numel_of(PyObject* tensor) {
    PyObject* shape = PyObject_GetAttr(tensor, globals().str_shape);
    if (!shape) {
        // A nested tensor (strided layout) has no shape; its numel() counts its values.
        clear_error();
        PyObject* n = PyObject_CallMethod(tensor, "numel", nullptr);
        if (!n) {
            clear_error();
            throw FormulaError("tensor has no shape");
        }
        int64_t v = PyLong_Check(n) ? PyLong_AsLongLong(n) : -1;
        Py_DECREF(n);
        if (v < 0) {
            clear_error();
            throw SymbolicShape{};
        }
        return v;
    }
    int64_t n = 1;
    Py_ssize_t nd = PyTuple_Check(shape) ? PyTuple_GET_SIZE(shape) : 0;
    bool overflow = false;
    for (Py_ssize_t i = 0; i < nd; ++i) {
        PyObject* d = PyTuple_GET_ITEM(shape, i);
        if (!PyLong_Check(d)) {
            Py_DECREF(shape);
            throw SymbolicShape{};
        }
        overflow |= __builtin_mul_overflow(n, static_cast<int64_t>(PyLong_AsLongLong(d)), &n);
    }
    Py_DECREF(shape);
    if (overflow) throw Overflow{};  // a logical (expanded) size past int64
    return n;
}

PyObject* py_from_int128(__int128 v) {
    if (v >= INT64_MIN && v <= INT64_MAX) return PyLong_FromLongLong(static_cast<long long>(v));
    // v = hi * 2^64 + lo, hi signed, lo unsigned
    unsigned long long lo = static_cast<unsigned long long>(static_cast<unsigned __int128>(v));
    long long hi = static_cast<long long>(v >> 64);  // arithmetic shift: floor(v / 2^64)
    PyObject* h = PyLong_FromLongLong(hi);
    PyObject* sh = PyLong_FromLong(64);
    PyObject* l = PyLong_FromUnsignedLongLong(lo);
    PyObject* hs = (h && sh) ? PyNumber_Lshift(h, sh) : nullptr;
    PyObject* r = (hs && l) ? PyNumber_Add(hs, l) : nullptr;
    Py_XDECREF(h);
    Py_XDECREF(sh);
    Py_XDECREF(l);
    Py_XDECREF(hs);
    return r;
}

bool int128_from_py(PyObject* o, __int128* out) {
    if (!PyLong_Check(o)) return false;
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (!overflow) {
        if (x == -1 && PyErr_Occurred()) {
            clear_error();
            return false;
        }
        *out = x;
        return true;
    }
    // o = hi * 2^64 + lo with 0 <= lo < 2^64; it fits 128 bits when hi fits int64.
    unsigned long long lo = PyLong_AsUnsignedLongLongMask(o);
    PyObject* sh = PyLong_FromLong(64);
    PyObject* h = sh ? PyNumber_Rshift(o, sh) : nullptr;
    Py_XDECREF(sh);
    if (!h) {
        clear_error();
        return false;
    }
    long long hi = PyLong_AsLongLongAndOverflow(h, &overflow);
    Py_DECREF(h);
    if (overflow || PyErr_Occurred()) {
        clear_error();
        return false;
    }
    *out = static_cast<__int128>(static_cast<unsigned __int128>(static_cast<__int128>(hi)) << 64) + static_cast<__int128>(lo);
    return true;
}

PyObject* CallView::arg(int i) const {
    if (i < 0) return nullptr;
    PyObject* v = nullptr;
    if (i < PyTuple_GET_SIZE(args)) {
        v = PyTuple_GET_ITEM(args, i);
    } else if (kwargs && arg_names && i < static_cast<int>(arg_names->size())) {
        v = PyDict_GetItem(kwargs, (*arg_names)[i]);
    }
    return v == Py_None ? nullptr : v;
}

PyObject* CallView::tensor(int i) const {
    PyObject* v = arg(i);
    if (!is_tensor(v)) throw FormulaError("argument " + std::to_string(i) + " is not a tensor");
    return v;
}

bool CallView::get_bool(int i, bool dflt) const {
    PyObject* v = arg(i);
    if (!v) return dflt;
    if (!PyBool_Check(v) && !PyLong_Check(v)) throw FormulaError("argument " + std::to_string(i) + " is not a bool");
    int r = PyObject_IsTrue(v);
    if (r < 0) {
        clear_error();
        throw FormulaError("argument " + std::to_string(i) + " is not a bool");
    }
    return r == 1;
}

int64_t CallView::get_int(int i, int64_t dflt) const {
    PyObject* v = arg(i);
    if (!v) return dflt;
    if (PyBool_Check(v)) return v == Py_True;
    if (!PyLong_Check(v)) throw FormulaError("argument " + std::to_string(i) + " is not an int");
    return as_int(v);
}

void CallView::get_int_list(int i, std::vector<int64_t>& out_v) const {
    out_v.clear();
    PyObject* v = arg(i);
    if (!v) return;
    if (PyLong_Check(v)) {
        out_v.push_back(as_int(v));
        return;
    }
    if (!PyList_Check(v) && !PyTuple_Check(v)) throw FormulaError("expected an int list");
    Py_ssize_t n = PySequence_Fast_GET_SIZE(v);
    PyObject** items = PySequence_Fast_ITEMS(v);
    for (Py_ssize_t k = 0; k < n; ++k) {
        PyObject* x = items[k];
        if (PyBool_Check(x)) {
            out_v.push_back(x == Py_True);
        } else {
            out_v.push_back(as_int(x));
        }
    }
}

bool CallView::str_equals(int i, const char* str) const {
    PyObject* v = arg(i);
    return v && PyUnicode_Check(v) && PyUnicode_CompareWithASCIIString(v, str) == 0;
}

PyObject* CallView::out_tensor(int k) const {
    if (is_tensor(out)) return k == 0 ? out : nullptr;
    if (PyTuple_Check(out) || PyList_Check(out)) {
        int seen = 0;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(out);
        PyObject** items = PySequence_Fast_ITEMS(out);
        for (Py_ssize_t i = 0; i < n; ++i) {
            if (is_tensor(items[i])) {
                if (seen == k) return items[i];
                ++seen;
            }
        }
    }
    return nullptr;
}

namespace {

// Item i of a list or tuple, held (a new reference) for the scope: reading a tensor's shape may run
// Python, so no pointer into the sequence's item array is kept across it.
class HeldItem {
  public:
    HeldItem(PyObject* seq, Py_ssize_t i) : p_(Py_NewRef(PySequence_Fast_GET_ITEM(seq, i))) {}
    ~HeldItem() { Py_DECREF(p_); }
    HeldItem(const HeldItem&) = delete;
    HeldItem& operator=(const HeldItem&) = delete;
    PyObject* get() const { return p_; }

  private:
    PyObject* p_;
};

thread_local std::vector<int64_t> s_a, s_b, s_c;

int64_t last(const std::vector<int64_t>& d, int from_end) {
    int n = static_cast<int>(d.size());
    if (from_end > n) throw FormulaError("tensor has too few dimensions");
    return d[n - from_end];
}

}  // namespace

bool is_floating_call(const CallView& call) {
    PyObject* o = call.out_tensor(0);
    if (o && dtype_info(o).floating) return true;
    PyObject* a0 = call.arg(0);
    if (is_tensor(a0) && dtype_info(a0).floating) return true;
    // Tensor lists (foreach) or a tensor in second position (scalar-first ops).
    PyObject* a1 = call.arg(1);
    return is_tensor(a1) && dtype_info(a1).floating;
}

namespace {


int64_t out_numel(const CallView& call) {
    PyObject* o = call.out_tensor(0);
    if (!o) throw FormulaError("op returned no tensor");
    return numel_of(o);
}

Cost done(Count flops, Count macs = 0, Count masked = 0) {
    Cost c;
    c.flops = flops.v;
    c.macs = macs.v;
    c.masked_macs = masked.v;
    return c;
}

Cost matmul(const int* p, const CallView& call) {
    namespace P = param::matmul;
    PyObject* a = call.tensor(p[P::a]);
    PyObject* b = call.tensor(p[P::b]);
    Count macs;
    if (p[P::kind] == 1) {  // outer product
        macs = Count(numel_of(a)) * numel_of(b);
    } else {
        read_shape(a, s_a);
        read_shape(b, s_b);
        if (p[P::kind] == 2) {  // a @ b.T with b [n, k] (linear weights)
            if (s_b.empty()) throw FormulaError("linear weight has no dimensions");
            macs = Count(numel_of(a)) * s_b[0];
        } else if (p[P::kind] == 3 && s_a.size() == 3 && s_b.size() == 2) {
            // grouped mm, a [G, M, K] with b [K, N_total] split along N: one K-long dot product
            // per output element
            PyObject* o = call.out_tensor(0);
            if (!o) throw FormulaError("grouped mm returned no tensor");
            macs = Count(numel_of(o)) * s_a[2];
        } else {  // a [..., m, k] @ b [..., k, n] (or a vector b: n = 1)
            macs = Count(numel_of(a)) * (s_b.size() >= 2 ? s_b.back() : 1);
        }
    }
    Count flops = 2 * macs;
    if (call.has_tensor(p[P::bias])) flops += out_numel(call);
    return done(flops, macs);
}

Count conv_forward_macs(PyObject* x, PyObject* weight) {
    // Normal: x is the output [N, C_out, *S_out], weight [C_out, C_in/g, *k]
    // Transposed: x is the input [N, C_in, *S_in], weight [C_in, C_out/g, *k]
    // MACs = numel(x) / channels(x) * numel(weight), and channels(x) == weight.shape[0].
    read_shape(weight, s_b);
    if (s_b.empty() || s_b[0] == 0) return 0;
    Count per_channel = 1;
    for (size_t i = 1; i < s_b.size(); ++i) per_channel *= s_b[i];
    return Count(numel_of(x)) * per_channel;
}

Cost conv(const int* p, const CallView& call) {
    namespace P = param::conv;
    PyObject* input = call.tensor(p[P::input]);
    PyObject* weight = call.tensor(p[P::weight]);
    bool transposed = p[P::always_transposed] != 0 || call.get_bool(p[P::transposed], false);
    PyObject* out = call.out_tensor(0);
    if (!out) throw FormulaError("convolution returned no tensor");
    Count macs = conv_forward_macs(transposed ? input : out, weight);
    Count flops = 2 * macs;
    int64_t per_out = (call.has_tensor(p[P::bias]) ? 1 : 0) + p[P::cost_out];  // bias add, fused epilogue (relu, add)
    if (per_out) flops += Count(per_out) * numel_of(out);
    return done(flops, macs);
}

Cost conv_backward(const int* p, const CallView& call) {
    namespace P = param::conv_backward;
    PyObject* grad_out = call.tensor(p[P::grad_out]);
    PyObject* input = call.tensor(p[P::input]);
    PyObject* weight = call.tensor(p[P::weight]);
    bool transposed = call.get_bool(p[P::transposed], false);
    std::vector<int64_t> mask;
    call.get_int_list(p[P::output_mask], mask);
    if (mask.empty()) mask.assign(3, 1);      // no mask: every gradient requested
    while (mask.size() < 3) mask.push_back(0);  // a shorter mask (rms norm: 2) requests no more
    Count fwd = conv_forward_macs(transposed ? input : grad_out, weight);
    Count macs = fwd * (mask[0] + mask[1]);  // grad_input and grad_weight each cost one forward
    Count flops = 2 * macs;
    if (mask[2]) flops += numel_of(grad_out);  // grad_bias: a sum over grad_out
    return done(flops, macs);
}

// Number of (query, key) pairs a causal mask keeps, for one head. Row i keeps keys
// j <= i + shift (shift = 0 top-left, sk - sq bottom-right), clamped to [0, sk].
Count causal_kept(int64_t sq, int64_t sk, bool bottom_right) {
    if (sq <= 0 || sk <= 0) return 0;
    int64_t shift = bottom_right ? sk - sq : 0;
    int64_t a = std::min(sq, std::max<int64_t>(0, -shift));          // rows before a keep 0
    int64_t b = std::min(sq, std::max<int64_t>(a, sk - shift - 1));  // rows from b keep sk
    Count partial = Count(b - a) * (shift + 1) + Count(a + b - 1) * (b - a) / 2;
    return partial + Count(sq - b) * sk;
}

Cost attention(const int* p, const CallView& call) {
    namespace P = param::attention;
    // Variable length: non-empty cumulative sequence lengths (dense calls pass None or empty ones).
    if (call.has_tensor(p[P::varlen]) && numel_of(call.arg(p[P::varlen])) > 0)
        throw FormulaError("variable-length attention is not supported");
    PyObject* q = call.tensor(p[P::q]);
    PyObject* k = call.tensor(p[P::q] + 1);
    PyObject* v = call.tensor(p[P::q] + 2);
    read_shape(q, s_a);
    read_shape(k, s_b);
    read_shape(v, s_c);
    Count batch;
    int64_t heads, sq, sk, dqk, dv;
    if (p[P::layout] == 0) {  // [..., H, S, D]
        if (s_a.size() < 3) throw FormulaError("attention query needs [..., H, S, D]");
        heads = last(s_a, 3);
        sq = last(s_a, 2);
        dqk = last(s_a, 1);
        batch = 1;
        for (size_t i = 0; i + 3 < s_a.size(); ++i) batch *= s_a[i];
        sk = last(s_b, 2);
        dv = last(s_c, 1);
    } else {  // [B, S, H, D]
        if (s_a.size() != 4) throw FormulaError("variable-length attention is not supported");
        batch = s_a[0];
        sq = s_a[1];
        heads = s_a[2];
        dqk = s_a[3];
        sk = last(s_b, 3);
        dv = last(s_c, 1);
    }
    bool backward = p[P::backward] != 0;
    Count scores = batch * heads * sq * sk;
    Count per_score_macs = backward ? Count(3) * dqk + Count(2) * dv : Count(dqk) + dv;
    Count macs = scores * per_score_macs;
    // Non-matmul work per score: forward scale + softmax (6); backward softmax recompute and
    // gradient (5); an additive mask adds one.
    Count flops = 2 * macs + scores * (backward ? 5 : 6);
    if (!backward && call.has_tensor(p[P::mask])) flops += scores;
    bool causal = false, bottom_right = false;
    if (p[P::causal] >= 0) {
        if (p[P::causal_kind] == 0) {
            causal = call.get_bool(p[P::causal], false);
        } else {
            int64_t t = call.get_int(p[P::causal], 0);
            causal = t != 0;
            bottom_right = t == 2;
        }
    }
    Count masked = 0;
    if (causal) {
        Count kept = batch * heads * causal_kept(sq, sk, bottom_right);
        masked = (scores - kept) * per_score_macs;
    }
    return done(flops, macs, masked);
}

Cost elementwise(const int* p, const CallView& call) {
    namespace P = param::elementwise;
    if (p[P::cost] == 0 || !is_floating_call(call)) return Cost{};
    Count flops = Count(p[P::cost]) * out_numel(call);
    if (p[P::times] >= 0) flops *= call.get_int(p[P::times], 1);  // cost scales with an int argument (mvlgamma's p)
    return done(flops);
}

Cost reduce(const int* p, const CallView& call) {
    namespace P = param::reduce;
    PyObject* input = call.tensor(p[P::input]);
    if (!is_floating_call(call)) return Cost{};
    if (p[P::only_if] >= 0 && !call.get_bool(p[P::only_if], false)) return Cost{};  // e.g. index_put without accumulate: a copy
    Count counted;
    if (p[P::diagonal]) {  // the diagonal of the last two dims (trace): batch * min(rows, cols)
        read_shape(input, s_a);
        if (s_a.size() < 2) throw FormulaError("expected a matrix");
        counted = std::min(s_a[s_a.size() - 2], s_a.back());
        for (size_t i = 0; i + 2 < s_a.size(); ++i) counted *= s_a[i];
    } else {
        counted = numel_of(input);
    }
    Count flops = Count(p[P::cost]) * counted;
    if (p[P::cost_out]) {
        PyObject* o = call.out_tensor(p[P::out_index]);
        if (!o) throw FormulaError("reduction returned too few tensors");
        flops += Count(p[P::cost_out]) * numel_of(o);
    }
    return done(flops);
}

Cost norm(const int* p, const CallView& call) {
    namespace P = param::norm;
    PyObject* input = call.tensor(p[P::input]);
    if (!dtype_info(input).floating) return Cost{};
    int64_t per = p[P::cost];
    if (p[P::training] >= 0 && !call.get_bool(p[P::training], true)) per = p[P::cost_eval];
    per += call.has_tensor(p[P::weight]) ? 1 : 0;
    per += call.has_tensor(p[P::bias]) ? 1 : 0;
    return done(Count(per) * numel_of(input));
}

Cost norm_backward(const int* p, const CallView& call) {
    namespace P = param::norm_backward;
    PyObject* grad = call.tensor(p[P::grad]);
    std::vector<int64_t> mask;
    call.get_int_list(p[P::output_mask], mask);
    if (mask.empty()) mask.assign(3, 1);      // no mask: every gradient requested
    while (mask.size() < 3) mask.push_back(0);  // a shorter mask (rms norm: 2) requests no more
    Count per = Count(mask[0]) * p[P::cost_input] + Count(mask[1]) * p[P::cost_weight] + Count(mask[2]) * p[P::cost_bias];
    return done(Count(numel_of(grad)) * per);
}

Cost pool(const int* p, const CallView& call) {
    namespace P = param::pool;
    std::vector<int64_t> kernel;
    call.get_int_list(p[P::kernel], kernel);
    int rank = p[P::rank];
    Count window = 1;
    if (kernel.size() == 1) {
        for (int i = 0; i < rank; ++i) window *= kernel[0];
    } else {
        for (int64_t kk : kernel) window *= kk;
    }
    PyObject* counted = p[P::counted] < 0 ? call.out_tensor(0) : call.tensor(p[P::counted]);
    if (!counted) throw FormulaError("pool returned no tensor");
    if (!dtype_info(counted).floating) return Cost{};
    return done(window * numel_of(counted));
}

Cost foreach_(const int* p, const CallView& call) {
    namespace P = param::foreach;
    PyObject* lst = call.arg(p[P::tensors]);
    if (!lst || !(PyList_Check(lst) || PyTuple_Check(lst))) throw FormulaError("expected a tensor list");
    Count total = 0;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(lst); ++i) {
        HeldItem item(lst, i);  // a size read may run Python (a tensor subclass): no pointer into the list
        if (is_tensor(item.get()) && dtype_info(item.get()).floating) total += numel_of(item.get());
    }
    return done(Count(p[P::cost]) * total);
}

// _native_multi_head_attention(query, key, value, embed_dim, num_head, qkv_weight, qkv_bias,
//                              proj_weight, proj_bias, mask, ...): query [B, L, E], key [B, S, E].
// Counted on `lq` query tokens, `lk` key tokens and `pairs` (query, key) pairs: B*L, B*S and
// B*L*S for dense inputs; for a nested input, the valid tokens and the sum of L_i * S_i.
Cost mha_block(Count lq, Count lk, Count pairs, Count e, Count heads, bool qkv_bias, bool proj_bias) {
    Count macs = lq * e * e         // q projection
                 + 2 * lk * e * e   // k and v projections
                 + 2 * pairs * e    // QK^T and attention x V, summed over heads (H * D = E)
                 + lq * e * e;      // output projection
    Count flops = 2 * macs + 6 * heads * pairs;
    if (qkv_bias) flops += lq * e + 2 * lk * e;
    if (proj_bias) flops += lq * e;
    return done(flops, macs);
}

// A self-attention input [B, L, E], or a nested tensor of B sequences [L_i, E]: its tokens
// (B*L, or the sum of L_i), its (query, key) pairs (B*L*L, or the sum of L_i^2) and E.
void sequence_sizes(PyObject* src, int64_t& tokens, int64_t& pairs, int64_t& e) {
    PyObject* nested = PyObject_GetAttrString(src, "is_nested");
    if (!nested) clear_error();
    bool is_nested = nested == Py_True;
    Py_XDECREF(nested);
    if (!is_nested) {
        read_shape(src, s_a);
        if (s_a.size() != 3) throw FormulaError("expected [B, L, E] input");
        tokens = s_a[0] * s_a[1];
        pairs = tokens * s_a[1];
        e = s_a[2];
        return;
    }
    PyObject* sizes = PyObject_CallMethod(src, "_nested_tensor_size", nullptr);
    PyObject* rows = sizes ? PyObject_CallMethod(sizes, "tolist", nullptr) : nullptr;
    Py_XDECREF(sizes);
    if (!rows || !PyList_Check(rows)) {
        Py_XDECREF(rows);
        clear_error();
        throw FormulaError("unreadable nested sizes");
    }
    tokens = pairs = 0;
    e = -1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(rows); ++i) {
        PyObject* row = PyList_GET_ITEM(rows, i);
        if (!PyList_Check(row) || PyList_GET_SIZE(row) != 2) {
            Py_DECREF(rows);
            throw FormulaError("expected nested [L_i, E] sequences");
        }
        int64_t l = PyLong_AsLongLong(PyList_GET_ITEM(row, 0));
        e = PyLong_AsLongLong(PyList_GET_ITEM(row, 1));
        tokens += l;
        pairs += l * l;
    }
    Py_DECREF(rows);
    if (PyErr_Occurred()) {
        clear_error();
        throw FormulaError("unreadable nested sizes");
    }
}

Cost mha(const int* p, const CallView& call) {
    (void)p;
    read_shape(call.tensor(0), s_a);
    read_shape(call.tensor(1), s_b);
    if (s_a.size() != 3 || s_b.size() != 3) throw FormulaError("expected [B, L, E] inputs");
    int64_t heads = call.get_int(4, 1);
    return mha_block(Count(s_a[0]) * s_a[1], Count(s_a[0]) * s_b[1], Count(s_a[0]) * s_a[1] * s_b[1], s_a[2], heads,
                     call.has_tensor(6), call.has_tensor(8));
}

// _transformer_encoder_layer_fwd(src, embed_dim, num_heads, qkv_weight, qkv_bias, proj_weight,
//   proj_bias, use_gelu, norm_first, eps, norm_weight_1, norm_bias_1, norm_weight_2, norm_bias_2,
//   ffn_weight_1, ffn_bias_1, ffn_weight_2, ffn_bias_2, mask, mask_type)
// src is [B, L, E], or (the nested fast path of nn.TransformerEncoder) a nested tensor of the
// valid tokens of each sequence: priced as the slow path on those tokens.
Cost encoder_layer(const int* p, const CallView& call) {
    namespace P = param::encoder_layer;
    int64_t t, pairs, e;  // tokens, (query, key) pairs
    sequence_sizes(call.tensor(0), t, pairs, e);
    int64_t heads = call.get_int(2, 1);
    read_shape(call.tensor(14), s_b);  // ffn_weight_1 [F, E]
    Count f = s_b[0];
    Cost attn = mha_block(t, t, pairs, e, heads, call.has_tensor(4), call.has_tensor(6));
    Count macs = attn.macs, flops = attn.flops;
    Count ffn_macs = 2 * Count(t) * e * f;
    macs += ffn_macs;
    flops += 2 * ffn_macs;
    if (call.has_tensor(15)) flops += Count(t) * f;
    if (call.has_tensor(17)) flops += Count(t) * e;
    bool gelu = call.get_bool(7, false);
    flops += Count(t) * f * (gelu ? p[P::gelu_cost] : p[P::relu_cost]);  // activation cost from the declaration
    flops += 2 * Count(t) * e * p[P::layer_norm_cost];              // two layer norms (affine included)
    flops += 2 * Count(t) * e;                     // two residual adds
    return done(flops, macs);
}

// A fused recurrent layer: every (step, batch) row multiplies the input by w_ih [G*H, I] and the
// previous hidden state by w_hh [G*H, H]; the backward kernel does `products` = 2 such passes.
// Gate math per hidden unit and step by gate count G: 4 (LSTM) p4, 3 (GRU) p6, 1 (tanh/relu) p7.
int64_t gate_cost(const int* p, int64_t gates) {
    namespace P = param::rnn;
    if (gates == 4) return p[P::gate_cost];
    if (gates == 3) return p[P::gru_cost];
    if (gates == 1) return p[P::rnn_cost];
    throw FormulaError("unexpected RNN gate count");
}

// p5 >= 0: the cuDNN/MIOpen layout, one flat weight list [w_ih, w_hh, (b_ih, b_hh), (w_hr)] per
// layer and direction. Every 2-d weight multiplies each (step, batch) row once (layers and
// directions see the same rows); the gate math runs once per layer and direction.
Cost rnn_flat(const int* p, const CallView& call) {
    namespace P = param::rnn;
    PyObject* input = call.tensor(p[P::input]);
    PyObject* lst = call.arg(p[P::weights]);
    if (!lst || !(PyList_Check(lst) || PyTuple_Check(lst))) throw FormulaError("expected a weight list");
    int64_t weight_numel = 0, gh = -1, in_features = -1, matrices_gh = 0, hidden = -1, second_cols = -1;
    int seen = 0;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(lst); ++i) {
        HeldItem item(lst, i);  // a shape read may run Python: no pointer into the list across it
        if (!is_tensor(item.get())) throw FormulaError("weight list holds a non-tensor");
        read_shape(item.get(), s_a);
        if (s_a.size() != 2) continue;  // biases
        if (seen == 0) {
            gh = s_a[0];
            in_features = s_a[1];
        } else if (seen == 1) {
            second_cols = s_a[1];  // w_hh of layer 0: [G*H, H] (or [G*H, P] with a projection)
        }
        ++seen;
        weight_numel += s_a[0] * s_a[1];
        if (s_a[0] == gh) {
            ++matrices_gh;
        } else if (hidden < 0) {
            hidden = s_a[1];  // w_hr [P, H]: the projection gives H
        }
    }
    if (seen < 2 || in_features <= 0) throw FormulaError("expected RNN weight matrices");
    if (hidden < 0) hidden = second_cols;
    if (hidden <= 0 || gh % hidden != 0) throw FormulaError("unexpected RNN weight shapes");
    int64_t rows = numel_of(input) / in_features;  // steps * batch (packed: total tokens)
    int64_t layer_dirs = matrices_gh / 2;          // w_ih and w_hh of each layer and direction
    Count macs = Count(rows) * weight_numel * p[P::products];
    return done(2 * macs + Count(rows) * hidden * layer_dirs * gate_cost(p, gh / hidden), macs);
}

Cost rnn(const int* p, const CallView& call) {
    namespace P = param::rnn;
    if (p[P::weights] >= 0) return rnn_flat(p, call);
    PyObject* input = call.tensor(p[P::input]);
    read_shape(call.tensor(p[P::w_ih]), s_a);
    read_shape(call.tensor(p[P::w_hh]), s_b);
    if (s_a.size() != 2 || s_b.size() != 2 || s_a[1] == 0 || s_b[1] == 0) throw FormulaError("expected 2-d RNN weights");
    Count rows = numel_of(input) / s_a[1];  // steps * batch
    Count macs = rows * (Count(s_a[0]) * s_a[1] + Count(s_b[0]) * s_b[1]) * p[P::products];
    return done(2 * macs + rows * s_b[1] * gate_cost(p, s_b[0] / s_b[1]), macs);
}

// ----- FFT ---------------------------------------------------------------------------------------

// floor(2^16 * log2(n)) for n >= 1, exactly, by the bit-by-bit binary logarithm on a Q62
// mantissa (each squaring truncated). The Python reference runs the same integer steps.
int64_t log2_q16(int64_t n) {
    if (n <= 1) return 0;
    int e = 63 - __builtin_clzll(static_cast<unsigned long long>(n));
    unsigned __int128 m = static_cast<unsigned __int128>(static_cast<uint64_t>(n)) << (62 - e);  // [1, 2) in Q62
    const unsigned __int128 two = static_cast<unsigned __int128>(1) << 63;
    int64_t frac = 0;
    for (int i = 0; i < 16; ++i) {
        m = (m * m) >> 62;
        frac <<= 1;
        if (m >= two) {
            m >>= 1;
            frac |= 1;
        }
    }
    return (static_cast<int64_t>(e) << 16) | frac;
}

// FFTW's convention: a complex transform of n points costs 5 n log2 n; real input or output half.
// numel(signal) = batch * n, so the cost is 5 * numel * log2 n (/ 2).
Cost fft(const int* p, const CallView& call) {
    namespace P = param::fft;
    PyObject* x = p[P::signal] < 0 ? call.out_tensor(0) : call.tensor(p[P::signal]);
    if (!x) throw FormulaError("fft returned no tensor");
    read_shape(x, s_a);
    std::vector<int64_t> dims;
    call.get_int_list(p[P::dim], dims);
    int64_t nd = static_cast<int64_t>(s_a.size());
    int64_t n = 1;
    for (int64_t d : dims) {
        if (d < 0) d += nd;
        if (d < 0 || d >= nd) throw FormulaError("fft dim out of range");
        n *= s_a[d];  // at most numel: fits
    }
    Count scaled = Count(5) * numel_of(x) * log2_q16(n);
    return done(scaled >> (16 + (p[P::half] ? 1 : 0)));
}

// ----- dense linear algebra (LAPACK Working Note 41; Golub & Van Loan) ---------------------------

// LinalgKind (LA_*): family_params.h, from the LA_* constants of _ops.py.

struct Matrix {
    Count batch = 1;
    int64_t m = 0, n = 0;
};

Matrix matrix_of(PyObject* t) {
    read_shape(t, s_a);
    if (s_a.size() < 2) throw FormulaError("expected a matrix [..., m, n]");
    Matrix r;
    for (size_t i = 0; i + 2 < s_a.size(); ++i) r.batch *= s_a[i];
    r.m = s_a[s_a.size() - 2];
    r.n = s_a.back();
    return r;
}

Count lu_flops(Count m, Count n) {
    Count k = m < n ? m : n;
    return (6 * m * n * k - 3 * (m + n) * k * k + 2 * k * k * k) / 3;
}

Count qr_flops(Count m, Count n) {
    Count k = m < n ? m : n, big = m < n ? n : m;
    return (6 * k * k * big - 2 * k * k * k) / 3;
}

Count householder_flops(Count m, Count n, Count k) {
    return (12 * m * n * k - 6 * (m + n) * k * k + 4 * k * k * k) / 3;
}

// Golub-Reinsch SVD of m x n (counted on the tall orientation).
Count svd_flops(Count m, Count n, bool uv, bool full) {
    Count big = m < n ? n : m, k = m < n ? m : n;
    if (!uv) return (12 * big * k * k - 4 * k * k * k) / 3;
    if (full) return 4 * big * big * k + 8 * big * k * k + 9 * k * k * k;
    return 14 * big * k * k + 8 * k * k * k;
}

Cost linalg(const int* p, const CallView& call) {
    namespace P = param::linalg;
    PyObject* a = call.tensor(p[P::matrix]);
    if (!dtype_info(a).floating) return Cost{};
    Matrix A = matrix_of(a);
    Count m = A.m, n = A.n, k = A.m < A.n ? A.m : A.n;
    Count per;  // per matrix of the batch
    switch (p[P::kind]) {
        case LA_FACTOR_SYM:
            per = n * n * n / 3;
            break;
        case LA_FACTOR_LU:
            per = lu_flops(m, n);
            break;
        case LA_TRI_SOLVE:
        case LA_FACTORED_SOLVE:
        case LA_SOLVE: {
            PyObject* x = call.out_tensor(0);
            if (!x) throw FormulaError("solve returned no tensor");
            Count columns_n = Count(numel_of(x)) * n;  // n^2 per column: numel(X) = columns * n
            Count solves = p[P::kind] == LA_TRI_SOLVE ? columns_n : 2 * columns_n;
            return done(solves + (p[P::kind] == LA_SOLVE ? A.batch * lu_flops(n, n) : Count(0)));
        }
        case LA_INVERSE:
            per = 2 * n * n * n;
            break;
        case LA_INVERSE_FROM_CHOLESKY:
            per = 2 * n * n * n / 3;
            break;
        case LA_QR:
            per = qr_flops(m, n);
            if (call.str_equals(p[P::flag], "complete")) {
                per += householder_flops(m, m, k);
            } else if (!call.str_equals(p[P::flag], "r") && p[P::flag] >= 0) {  // "reduced" (the default)
                per += householder_flops(m, k, k);
            }
            break;
        case LA_HOUSEHOLDER_PRODUCT: {
            read_shape(call.tensor(p[P::other]), s_b);
            per = householder_flops(m, n, s_b.empty() ? 1 : s_b.back());
            break;
        }
        case LA_APPLY_Q: {
            read_shape(call.tensor(p[P::other]), s_b);  // tau [..., k]
            Count reflectors = s_b.empty() ? 1 : s_b.back();
            PyObject* out = call.out_tensor(0);
            if (!out) throw FormulaError("ormqr returned no tensor");
            Matrix C = matrix_of(out);
            bool left = call.get_bool(p[P::flag], true);
            Count cm = C.m, cn = C.n;
            Count apply = 4 * cm * cn * reflectors - 2 * (left ? cn : cm) * reflectors * reflectors;
            return done(C.batch * apply);
        }
        case LA_EIGH:
            per = call.get_bool(p[P::flag], true) ? 9 * n * n * n : 4 * n * n * n / 3;
            break;
        case LA_EIG:
            per = 25 * n * n * n;
            break;
        case LA_EIGVALS:
            per = 10 * n * n * n;
            break;
        case LA_SVD:
            per = svd_flops(m, n, call.get_bool(p[P::flag], true), call.get_bool(p[P::flag2], false));
            break;
        case LA_PINV:
            per = (call.get_bool(p[P::flag], false) ? 9 * n * n * n : svd_flops(m, n, true, false)) + 2 * m * n * k;
            break;
        case LA_LSTSQ: {
            PyObject* x = call.out_tensor(0);
            if (!x) throw FormulaError("lstsq returned no tensor");
            Count columns = A.n ? Count(numel_of(x)) / n : Count(0);  // X [..., n, columns]
            return done(A.batch * qr_flops(m, n) + columns * (4 * m * k - k * k));
        }
        case LA_MATRIX_EXP:
            per = 10 * n * n * n;
            break;
        case LA_POLAR:
            per = svd_flops(m, n, true, false) + 2 * m * n * n + n * n + 2 * n * n * n;
            break;
        case LA_MATRIX_SQRTH:
            per = 9 * n * n * n + n + n * n + 2 * n * n * n;
            break;
        default:
            throw FormulaError("unknown linear algebra kind");
    }
    return done(A.batch * per);
}

// ----- _trilinear (nn.Bilinear) ----------------------------------------------------------------

// _trilinear(i1, i2, i3, expand1, expand2, expand3, sumdim, unroll_dim): each input is unsqueezed
// at its expand dims; out = sum over sumdim of i1 * i2 * i3. MACs = the terms of that sum (the
// product of every dim's size); PyTorch evaluates it as two contractions, and the second (with
// i3, over the summed dims i3 holds) adds 2 FLOPs per term of its own.
Cost trilinear(const int* p, const CallView& call) {
    namespace P = param::trilinear;
    std::vector<int64_t> shapes[3], expand[3], sumdim;
    int64_t total = -1;
    for (int t = 0; t < 3; ++t) {
        read_shape(call.tensor(p[P::i1] + t), shapes[t]);
        call.get_int_list(p[P::expand1] + t, expand[t]);
        int64_t r = static_cast<int64_t>(shapes[t].size() + expand[t].size());
        if (total >= 0 && r != total) throw FormulaError("_trilinear ranks disagree");
        total = r;
    }
    call.get_int_list(p[P::expand1] + 3, sumdim);
    // Sizes of each input after unsqueezing (1 at expanded dims).
    std::vector<int64_t> full[3];
    std::vector<bool> is_exp(total, false);
    for (int t = 0; t < 3; ++t) {
        is_exp.assign(total, false);
        for (int64_t d : expand[t]) {
            if (d < 0 || d >= total) throw FormulaError("_trilinear expand dim out of range");
            is_exp[d] = true;
        }
        size_t src = 0;
        for (int64_t d = 0; d < total; ++d) {
            if (is_exp[d]) {
                full[t].push_back(1);
            } else {
                if (src >= shapes[t].size()) throw FormulaError("_trilinear shapes disagree");
                full[t].push_back(shapes[t][src++]);
            }
        }
    }
    std::vector<bool> summed(total, false);
    for (int64_t d : sumdim) {
        if (d < 0 || d >= total) throw FormulaError("_trilinear sum dim out of range");
        summed[d] = true;
    }
    int64_t unroll = call.get_int(p[P::expand1] + 4, 1);
    Count terms = 1, second = 1;
    for (int64_t d = 0; d < total; ++d) {
        int64_t size = std::max({full[0][d], full[1][d], full[2][d]});
        terms *= size;
        // Summed in the first contraction (i1 with i2): the summed dims i3 is expanded at (is_exp
        // holds i3's, the last filled); the second contraction (with i3) runs over the rest.
        bool summed_first = summed[d] && is_exp[d] && d != unroll;
        if (!summed_first) second *= size;
    }
    return done(2 * terms + 2 * second, terms);
}

// ----- pairwise distances ----------------------------------------------------------------------

double arg_double(const CallView& call, int i, double dflt) {
    PyObject* v = call.arg(i);
    if (!v) return dflt;
    if (PyFloat_Check(v)) return PyFloat_AS_DOUBLE(v);
    if (PyLong_Check(v)) return static_cast<double>(as_int(v));
    throw FormulaError("argument " + std::to_string(i) + " is not a number");
}

// FLOPs per (pair, coordinate) and per pair for a p-norm distance, forward or backward.
void distance_costs(double pn, bool backward, int64_t& per_term, int64_t& per_pair) {
    bool inf = std::isinf(pn) && pn > 0;
    if (!backward) {
        per_term = (pn == 0 || pn == 1 || pn == 2 || inf) ? 3 : 4;  // sub, |.|/square/compare, add (+ pow)
        per_pair = (pn == 2 || !(pn == 0 || pn == 1 || inf)) ? 1 : 0;  // the root
    } else {
        per_term = pn == 1 ? 3 : pn == 2 ? 4 : inf ? 5 : 6;  // diff, its weight, times grad, accumulate
        per_pair = 0;
    }
}

// p3 kind: 0 forward, 1 backward (x1, x2 at p0, p1; x2 -1: all pairs within x1, as pdist),
// 2 the matmul path of Euclidean cdist (_euclidean_dist).
Cost distance(const int* p, const CallView& call) {
    namespace P = param::distance;
    PyObject* x1 = call.tensor(p[P::x1]);
    if (!dtype_info(x1).floating) return Cost{};
    read_shape(x1, s_a);
    if (s_a.size() < 2) throw FormulaError("expected [..., P, M] points");
    int64_t rows1 = s_a[s_a.size() - 2], dim = s_a.back();
    Count batch = 1;
    for (size_t i = 0; i + 2 < s_a.size(); ++i) batch *= s_a[i];
    Count pairs;
    Count rows2 = 0;
    if (p[P::x2] >= 0) {
        read_shape(call.tensor(p[P::x2]), s_b);
        if (s_b.size() < 2) throw FormulaError("expected [..., R, M] points");
        rows2 = s_b[s_b.size() - 2];
        PyObject* out = call.out_tensor(0);  // the broadcast batch
        Count out_batch = 1;
        if (out && p[P::kind] != 1) {
            read_shape(out, s_c);
            for (size_t i = 0; i + 2 < s_c.size(); ++i) out_batch *= s_c[i];
            batch = out_batch;
        }
        pairs = batch * rows1 * rows2;
    } else {
        pairs = batch * Count(rows1) * (rows1 > 0 ? rows1 - 1 : 0) / 2;
    }
    if (p[P::kind] == 2) {
        // [x1, |x1|^2, 1] @ [-2 x2, 1, |x2|^2]^T, the two squared norms, then clamp and sqrt.
        Count macs = pairs * (dim + 2);
        Count norms = 2 * batch * (Count(rows1) + rows2) * dim;
        return done(2 * macs + norms + 2 * pairs, macs);
    }
    int64_t per_term, per_pair;
    distance_costs(arg_double(call, p[P::p], 2.0), p[P::kind] == 1, per_term, per_pair);
    return done(pairs * dim * per_term + pairs * per_pair);
}

// ----- embedding bag ---------------------------------------------------------------------------

// p0 rows: the tensor whose last dim is the embedding size D (weight forward, grad backward);
// p1 indices; p2 mode arg (0 sum, 1 mean, 2 max); p3 per_sample_weights; p4 kind (0 forward,
// 1 gradient of the table, 2 gradient of the per-sample weights).
Cost embedding_bag(const int* p, const CallView& call) {
    namespace P = param::embedding_bag;
    PyObject* rows = call.tensor(p[P::rows]);
    if (!dtype_info(rows).floating) return Cost{};
    read_shape(rows, s_a);
    if (s_a.empty()) throw FormulaError("expected [..., D] rows");
    Count looked_up = Count(numel_of(call.tensor(p[P::indices]))) * s_a.back();  // indices x D
    int64_t mode = call.get_int(p[P::mode], 0);
    bool weighted = call.has_tensor(p[P::per_sample_weights]);
    if (p[P::kind] == 2) return done(2 * looked_up);  // a D-long dot product per index
    // One add (sum, mean) or compare (max) per looked-up element, one multiply per weight.
    Count flops = looked_up * (1 + (weighted ? 1 : 0));
    if (mode == 1) {
        if (p[P::kind] == 0) {
            PyObject* o = call.out_tensor(0);
            if (o) flops += numel_of(o);  // divide each bag by its size
        } else {
            flops += looked_up;  // scale each gradient row by 1 / bag size
        }
    }
    return done(flops);
}

// ----- grid sampling ---------------------------------------------------------------------------

// Per sampled element (output forward, grad_output backward): the interpolation's cost (p4 for
// bilinear / trilinear, p5 bicubic; nearest 0), once per gradient in backward; plus p6 per grid
// coordinate (unnormalize and pad).
Cost grid_sampler(const int* p, const CallView& call) {
    namespace P = param::grid_sampler;
    PyObject* counted = p[P::counted] < 0 ? call.out_tensor(0) : call.tensor(p[P::counted]);
    if (!counted) throw FormulaError("grid sampler returned no tensor");
    if (!dtype_info(counted).floating) return Cost{};
    int64_t mode = call.get_int(p[P::mode], 0);
    int64_t per = mode == 0 ? p[P::linear_cost] : mode == 2 ? p[P::cubic_cost] : 0;
    int64_t passes = 1;
    if (p[P::counted] >= 0) {  // backward: grad_input and grad_grid as requested
        std::vector<int64_t> mask;
        call.get_int_list(p[P::output_mask], mask);
        if (mask.empty()) mask.assign(2, 1);
        while (mask.size() < 2) mask.push_back(0);
        passes = mask[0] + mask[1];
    }
    Count flops = Count(numel_of(counted)) * per * passes + Count(numel_of(call.tensor(p[P::grid]))) * p[P::coord_cost];
    return done(flops);
}

// ----- fused linear + cross-entropy (F.linear_cross_entropy's chunked custom ops) -----------------

// logits = input [N, D] @ weight [V, D]^T, their log-softmax loss, and, when the op precomputes
// them (flags at p3, p3+1, p3+2), grad_input = dlogits @ W and grad_weight = dlogits^T @ input
// (one more N x V x D product each) and grad_bias (a sum over N).
Cost linear_cross_entropy(const int* p, const CallView& call) {
    namespace P = param::linear_cross_entropy;
    PyObject* input = call.tensor(p[P::input]);
    if (!dtype_info(input).floating) return Cost{};
    read_shape(call.tensor(p[P::weight]), s_b);
    if (s_b.size() != 2) throw FormulaError("expected a [classes, features] weight");
    Count classes = s_b[0], features = s_b[1];
    Count logits = s_b[1] ? Count(numel_of(input)) / features * classes : Count(0);
    bool gi = false, gw = false, gb = false;
    if (p[P::grads] >= 0) {
        gi = call.get_bool(p[P::grads], false);
        gw = call.get_bool(p[P::grads] + 1, false);
        gb = call.get_bool(p[P::grads] + 2, false);
    }
    bool bias = call.has_tensor(p[P::bias]);
    Count macs = logits * features * (1 + (gi ? 1 : 0) + (gw ? 1 : 0));
    Count flops = 2 * macs + logits * p[P::cost];
    if (bias) flops += logits;                  // bias add
    if (gi || gw || gb) flops += logits * p[P::grad_cost];  // softmax - one-hot, scaled
    if (gb) flops += logits;                    // grad_bias: a sum over the rows
    return done(flops, macs);
}

// ----- sparse (CSR) x dense products ------------------------------------------------------------

// One MAC per stored element of the sparse operand per column of the dense one (its last dim),
// once per gradient requested (backward); plus p3 FLOPs per stored element (scaling, adds).
Cost sparse_matmul(const int* p, const CallView& call) {
    namespace P = param::sparse_matmul;
    PyObject* sparse = call.tensor(p[P::sparse]);
    if (!dtype_info(sparse).floating) return Cost{};
    static PyObject* str_nnz = PyUnicode_InternFromString("_nnz");
    PyObject* r = PyObject_CallMethodNoArgs(sparse, str_nnz);
    if (!r) {
        clear_error();
        throw FormulaError("sparse operand has no _nnz()");
    }
    int64_t nnz = PyLong_Check(r) ? as_int(r) : -1;  // as_int throws for a SymInt: Python path
    Py_DECREF(r);
    if (nnz < 0) throw FormulaError("sparse operand has no _nnz()");
    read_shape(sparse, s_a);
    Count stored = nnz;  // per batch for a batched CSR tensor
    for (size_t i = 0; i + 2 < s_a.size(); ++i) stored *= s_a[i];
    read_shape(call.tensor(p[P::dense]), s_b);
    int64_t passes = 1;
    if (p[P::output_mask] >= 0) {
        std::vector<int64_t> mask;
        call.get_int_list(p[P::output_mask], mask);
        if (mask.empty()) mask.assign(2, 1);
        while (mask.size() < 2) mask.push_back(0);
        passes = mask[0] + mask[1];
    }
    Count macs = stored * (s_b.empty() ? 1 : s_b.back()) * passes;
    return done(2 * macs + stored * p[P::cost], macs);
}

// Fused CTC loss and gradient (cuDNN, MIOpen): the alpha-beta lattice of _ctc_loss, T x N x
// (2 S + 1) with S the longest target (unbatched log_probs [T, C]: N = 1), at p2 per element; p3 per
// element of the gradient (output 1). Target lengths given as a tensor (.Tensor overload): its values.
Cost ctc(const int* p, const CallView& call) {
    namespace P = param::ctc;
    PyObject* log_probs = call.tensor(p[P::log_probs]);
    if (!dtype_info(log_probs).floating) return Cost{};
    PyObject* lengths = call.arg(p[P::target_lengths]);
    int64_t longest = 0;
    if (lengths && is_tensor(lengths)) {  // the .Tensor overload: its values (a meta tensor has none)
        static PyObject* str_tolist = PyUnicode_InternFromString("tolist");
        PyObject* values = PyObject_CallMethodNoArgs(lengths, str_tolist);
        if (!values || !PyList_Check(values)) {
            Py_XDECREF(values);
            clear_error();
            throw FormulaError("CTC target lengths have no values (meta tensor)");
        }
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(values); ++i) {
            PyObject* v = PyList_GET_ITEM(values, i);
            int64_t n = PyLong_Check(v) ? PyLong_AsLongLong(v) : -1;
            if (n < 0 || PyErr_Occurred()) {
                Py_DECREF(values);
                clear_error();
                throw FormulaError("CTC target lengths must be non-negative ints");
            }
            longest = std::max(longest, n);
        }
        Py_DECREF(values);
    } else {
        std::vector<int64_t> targets;
        call.get_int_list(p[P::target_lengths], targets);
        for (int64_t t : targets) longest = std::max(longest, t);
    }
    read_shape(log_probs, s_a);
    if (s_a.size() != 2 && s_a.size() != 3) throw FormulaError("CTC log_probs must be [T, C] or [T, N, C]");
    Count lattice = Count(s_a[0]) * (s_a.size() == 3 ? s_a[1] : 1) * (2 * longest + 1);
    Count flops = Count(p[P::cost]) * lattice;
    if (p[P::grad_cost]) {
        PyObject* grad = call.out_tensor(1);
        if (!grad) throw FormulaError("CTC returned no gradient");
        flops += Count(p[P::grad_cost]) * numel_of(grad);
    }
    return done(flops);
}

}  // namespace

Cost compute_cost(int family, const int* p, const CallView& call) {
    switch (family) {
        case F_ZERO:
        case F_MOVE:
        case F_UNSUPPORTED:
        case F_COMM:
            return Cost{};
        case F_MATMUL:
            return matmul(p, call);
        case F_CONV:
            return conv(p, call);
        case F_CONV_BACKWARD:
            return conv_backward(p, call);
        case F_ATTENTION:
            return attention(p, call);
        case F_ELEMENTWISE:
            return elementwise(p, call);
        case F_REDUCE:
            return reduce(p, call);
        case F_NORM:
            return norm(p, call);
        case F_NORM_BACKWARD:
            return norm_backward(p, call);
        case F_POOL:
            return pool(p, call);
        case F_FOREACH:
            return foreach_(p, call);
        case F_MHA:
            return mha(p, call);
        case F_ENCODER_LAYER:
            return encoder_layer(p, call);
        case F_RNN:
            return rnn(p, call);
        case F_FFT:
            return fft(p, call);
        case F_LINALG:
            return linalg(p, call);
        case F_TRILINEAR:
            return trilinear(p, call);
        case F_DISTANCE:
            return distance(p, call);
        case F_EMBEDDING_BAG:
            return embedding_bag(p, call);
        case F_GRID_SAMPLER:
            return grid_sampler(p, call);
        case F_LINEAR_CROSS_ENTROPY:
            return linear_cross_entropy(p, call);
        case F_SPARSE_MATMUL:
            return sparse_matmul(p, call);
        case F_CTC:
            return ctc(p, call);
        default:
            throw FormulaError("unknown family");
    }
}

}  // namespace fd
