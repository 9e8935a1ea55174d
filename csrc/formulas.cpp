// Formula families. See formulas.h and docs in README ("Counting conventions").
#include "formulas.h"

#include <algorithm>
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
    for (Py_ssize_t i = 0; i < nd; ++i) {
        PyObject* d = PyTuple_GET_ITEM(shape, i);
        if (!PyLong_Check(d)) {
            Py_DECREF(shape);
            throw SymbolicShape{};
        }
        n *= PyLong_AsLongLong(d);
    }
    Py_DECREF(shape);
    return n;
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

// Stored elements of a sparse tensor (its _nnz()).
int64_t nnz_of(PyObject* t) {
    PyObject* v = PyObject_CallMethod(t, "_nnz", nullptr);
    if (!v) {
        clear_error();
        throw FormulaError("expected a sparse tensor");
    }
    if (!PyLong_Check(v)) {
        Py_DECREF(v);
        throw SymbolicShape{};
    }
    int64_t n = PyLong_AsLongLong(v);
    Py_DECREF(v);
    return n;
}

Cost matmul(const int* p, const CallView& call) {
    PyObject* a = call.tensor(p[0]);
    PyObject* b = call.tensor(p[1]);
    Cost c;
    if (p[3] == 1) {  // outer product
        c.macs = numel_of(a) * numel_of(b);
    } else if (p[3] == 4) {  // sparse a: one product per stored element of a and column of b
        read_shape(b, s_b);
        c.macs = nnz_of(a) * (s_b.empty() ? 1 : s_b.back());
    } else {
        read_shape(a, s_a);
        read_shape(b, s_b);
        if (p[3] == 2) {  // a @ b.T with b [n, k] (linear weights)
            if (s_b.empty()) throw FormulaError("linear weight has no dimensions");
            c.macs = numel_of(a) * s_b[0];
        } else if (p[3] == 3 && s_a.size() == 3 && s_b.size() == 2) {
            // grouped mm, a [G, M, K] with b [K, N_total] split along N: one K-long dot product
            // per output element
            PyObject* o = call.out_tensor(0);
            if (!o) throw FormulaError("grouped mm returned no tensor");
            c.macs = numel_of(o) * s_a[2];
        } else {  // a [..., m, k] @ b [..., k, n] (or a vector b: n = 1)
            c.macs = numel_of(a) * (s_b.size() >= 2 ? s_b.back() : 1);
        }
    }
    if (p[4] >= 0) {  // one such product per gradient the output mask requests
        std::vector<int64_t> mask;
        call.get_int_list(p[4], mask);
        int64_t requested = mask.empty() ? 1 : 0;
        for (int64_t m : mask) requested += m != 0;
        c.macs *= requested;
    }
    c.flops = 2 * c.macs;
    if (call.has_tensor(p[2])) c.flops += out_numel(call);
    return c;
}

int64_t conv_forward_macs(PyObject* x, PyObject* weight) {
    // Normal: x is the output [N, C_out, *S_out], weight [C_out, C_in/g, *k]
    // Transposed: x is the input [N, C_in, *S_in], weight [C_in, C_out/g, *k]
    // MACs = numel(x) / channels(x) * numel(weight), and channels(x) == weight.shape[0].
    read_shape(weight, s_b);
    if (s_b.empty() || s_b[0] == 0) return 0;
    int64_t per_channel = 1;
    for (size_t i = 1; i < s_b.size(); ++i) per_channel *= s_b[i];
    return numel_of(x) * per_channel;
}

Cost conv(const int* p, const CallView& call) {
    PyObject* input = call.tensor(p[0]);
    PyObject* weight = call.tensor(p[1]);
    bool transposed = p[4] != 0 || call.get_bool(p[3], false);
    PyObject* out = call.out_tensor(0);
    if (!out) throw FormulaError("convolution returned no tensor");
    Cost c;
    c.macs = conv_forward_macs(transposed ? input : out, weight);
    c.flops = 2 * c.macs;
    int64_t per_out = (call.has_tensor(p[2]) ? 1 : 0) + p[5];  // bias add, fused epilogue (relu, add)
    if (per_out) c.flops += per_out * numel_of(out);
    return c;
}

Cost conv_backward(const int* p, const CallView& call) {
    PyObject* grad_out = call.tensor(p[0]);
    PyObject* input = call.tensor(p[1]);
    PyObject* weight = call.tensor(p[2]);
    bool transposed = call.get_bool(p[3], false);
    std::vector<int64_t> mask;
    call.get_int_list(p[4], mask);
    if (mask.empty()) mask.assign(3, 1);      // no mask: every gradient requested
    while (mask.size() < 3) mask.push_back(0);  // a shorter mask (rms norm: 2) requests no more
    int64_t fwd = conv_forward_macs(transposed ? input : grad_out, weight);
    Cost c;
    c.macs = fwd * (mask[0] + mask[1]);  // grad_input and grad_weight each cost one forward
    c.flops = 2 * c.macs;
    if (mask[2]) c.flops += numel_of(grad_out);  // grad_bias: a sum over grad_out
    return c;
}

// Number of (query, key) pairs a causal mask keeps, for one head. Row i keeps keys
// j <= i + shift (shift = 0 top-left, sk - sq bottom-right), clamped to [0, sk].
int64_t causal_kept(int64_t sq, int64_t sk, bool bottom_right) {
    if (sq <= 0 || sk <= 0) return 0;
    int64_t shift = bottom_right ? sk - sq : 0;
    int64_t a = std::min(sq, std::max<int64_t>(0, -shift));          // rows before a keep 0
    int64_t b = std::min(sq, std::max<int64_t>(a, sk - shift - 1));  // rows from b keep sk
    int64_t partial = (b - a) * (shift + 1) + (a + b - 1) * (b - a) / 2;
    return partial + (sq - b) * sk;
}

Cost attention(const int* p, const CallView& call) {
    // Variable length: non-empty cumulative sequence lengths (dense calls pass None or empty ones).
    if (call.has_tensor(p[6]) && numel_of(call.arg(p[6])) > 0)
        throw FormulaError("variable-length attention is not supported");
    PyObject* q = call.tensor(p[0]);
    PyObject* k = call.tensor(p[0] + 1);
    PyObject* v = call.tensor(p[0] + 2);
    read_shape(q, s_a);
    read_shape(k, s_b);
    read_shape(v, s_c);
    int64_t batch, heads, sq, sk, dqk, dv;
    if (p[1] == 0) {  // [..., H, S, D]
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
    bool backward = p[5] != 0;
    int64_t scores = batch * heads * sq * sk;
    int64_t per_score_macs = backward ? 3 * dqk + 2 * dv : dqk + dv;
    Cost c;
    c.macs = scores * per_score_macs;
    // Non-matmul work per score: forward scale + softmax (6); backward softmax recompute and
    // gradient (5); an additive mask adds one.
    c.flops = 2 * c.macs + scores * (backward ? 5 : 6);
    if (!backward && call.has_tensor(p[4])) c.flops += scores;
    bool causal = false, bottom_right = false;
    if (p[2] >= 0) {
        if (p[3] == 0) {
            causal = call.get_bool(p[2], false);
        } else {
            int64_t t = call.get_int(p[2], 0);
            causal = t != 0;
            bottom_right = t == 2;
        }
    }
    if (causal) {
        int64_t kept = batch * heads * causal_kept(sq, sk, bottom_right);
        c.masked_macs = (scores - kept) * per_score_macs;
    }
    return c;
}

Cost elementwise(const int* p, const CallView& call) {
    Cost c;
    if (p[0] != 0 && is_floating_call(call)) {
        c.flops = p[0] * out_numel(call);
        if (p[1] >= 0) c.flops *= call.get_int(p[1], 1);  // cost scales with an int argument (mvlgamma's p)
    }
    return c;
}

Cost reduce(const int* p, const CallView& call) {
    PyObject* input = call.tensor(p[1]);
    Cost c;
    if (!is_floating_call(call)) return c;
    if (p[3] >= 0 && !call.get_bool(p[3], false)) return c;  // e.g. index_put without accumulate: a copy
    int64_t counted;
    if (p[5]) {  // the diagonal of the last two dims (trace): batch * min(rows, cols)
        read_shape(input, s_a);
        if (s_a.size() < 2) throw FormulaError("expected a matrix");
        counted = std::min(s_a[s_a.size() - 2], s_a.back());
        for (size_t i = 0; i + 2 < s_a.size(); ++i) counted *= s_a[i];
    } else {
        counted = numel_of(input);
    }
    c.flops = p[0] * counted;
    if (p[2]) {
        PyObject* o = call.out_tensor(p[4]);
        if (!o) throw FormulaError("reduction returned too few tensors");
        c.flops += p[2] * numel_of(o);
    }
    return c;
}

Cost norm(const int* p, const CallView& call) {
    PyObject* input = call.tensor(p[0]);
    Cost c;
    if (!dtype_info(input).floating) return c;
    int64_t per = p[3];
    if (p[4] >= 0 && !call.get_bool(p[4], true)) per = p[5];
    per += call.has_tensor(p[1]) ? 1 : 0;
    per += call.has_tensor(p[2]) ? 1 : 0;
    c.flops = per * numel_of(input);
    return c;
}

Cost norm_backward(const int* p, const CallView& call) {
    PyObject* grad = call.tensor(p[0]);
    std::vector<int64_t> mask;
    call.get_int_list(p[1], mask);
    if (mask.empty()) mask.assign(3, 1);      // no mask: every gradient requested
    while (mask.size() < 3) mask.push_back(0);  // a shorter mask (rms norm: 2) requests no more
    Cost c;
    c.flops = numel_of(grad) * (mask[0] * p[2] + mask[1] * p[3] + mask[2] * p[4]);
    return c;
}

Cost pool(const int* p, const CallView& call) {
    std::vector<int64_t> kernel;
    call.get_int_list(p[0], kernel);
    int rank = p[1];
    int64_t window = 1;
    if (kernel.size() == 1) {
        for (int i = 0; i < rank; ++i) window *= kernel[0];
    } else {
        for (int64_t kk : kernel) window *= kk;
    }
    PyObject* counted = p[2] < 0 ? call.out_tensor(0) : call.tensor(p[2]);
    if (!counted) throw FormulaError("pool returned no tensor");
    Cost c;
    if (dtype_info(counted).floating) c.flops = window * numel_of(counted);
    return c;
}

Cost foreach_(const int* p, const CallView& call) {
    PyObject* lst = call.arg(p[0]);
    Cost c;
    if (!lst || !(PyList_Check(lst) || PyTuple_Check(lst))) throw FormulaError("expected a tensor list");
    Py_ssize_t n = PySequence_Fast_GET_SIZE(lst);
    PyObject** items = PySequence_Fast_ITEMS(lst);
    int64_t total = 0;
    for (Py_ssize_t i = 0; i < n; ++i) {
        if (is_tensor(items[i]) && dtype_info(items[i]).floating) total += numel_of(items[i]);
    }
    c.flops = p[1] * total;
    return c;
}

// _native_multi_head_attention(query, key, value, embed_dim, num_head, qkv_weight, qkv_bias,
//                              proj_weight, proj_bias, mask, ...): query [B, L, E], key [B, S, E].
// Counted on `lq` query tokens, `lk` key tokens and `pairs` (query, key) pairs: B*L, B*S and
// B*L*S for dense inputs; for a nested input, the valid tokens and the sum of L_i * S_i.
Cost mha_block(int64_t lq, int64_t lk, int64_t pairs, int64_t e, int64_t heads, bool qkv_bias, bool proj_bias) {
    Cost c;
    c.macs = lq * e * e             // q projection
             + 2 * lk * e * e       // k and v projections
             + 2 * pairs * e        // QK^T and attention x V, summed over heads (H * D = E)
             + lq * e * e;          // output projection
    c.flops = 2 * c.macs + 6 * heads * pairs;
    if (qkv_bias) c.flops += lq * e + 2 * lk * e;
    if (proj_bias) c.flops += lq * e;
    return c;
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
    return mha_block(s_a[0] * s_a[1], s_a[0] * s_b[1], s_a[0] * s_a[1] * s_b[1], s_a[2], heads, call.has_tensor(6),
                     call.has_tensor(8));
}

// _transformer_encoder_layer_fwd(src, embed_dim, num_heads, qkv_weight, qkv_bias, proj_weight,
//   proj_bias, use_gelu, norm_first, eps, norm_weight_1, norm_bias_1, norm_weight_2, norm_bias_2,
//   ffn_weight_1, ffn_bias_1, ffn_weight_2, ffn_bias_2, mask, mask_type)
// src is [B, L, E], or (the nested fast path of nn.TransformerEncoder) a nested tensor of the
// valid tokens of each sequence: priced as the slow path on those tokens.
Cost encoder_layer(const int* p, const CallView& call) {
    int64_t t, pairs, e;  // tokens, (query, key) pairs
    sequence_sizes(call.tensor(0), t, pairs, e);
    int64_t heads = call.get_int(2, 1);
    read_shape(call.tensor(14), s_b);  // ffn_weight_1 [F, E]
    int64_t f = s_b[0];
    Cost c = mha_block(t, t, pairs, e, heads, call.has_tensor(4), call.has_tensor(6));
    int64_t ffn_macs = 2 * t * e * f;
    c.macs += ffn_macs;
    c.flops += 2 * ffn_macs;
    if (call.has_tensor(15)) c.flops += t * f;
    if (call.has_tensor(17)) c.flops += t * e;
    bool gelu = call.get_bool(7, false);
    c.flops += t * f * (gelu ? p[0] : p[1]);  // activation cost from the declaration
    c.flops += 2 * t * e * p[2];              // two layer norms (affine included)
    c.flops += 2 * t * e;                     // two residual adds
    return c;
}

// A fused recurrent layer: every (step, batch) row multiplies the input by w_ih [G*H, I] and the
// previous hidden state by w_hh [G*H, H]; the backward kernel does `products` = 2 such passes.
// Gate math per hidden unit and step by gate count G: 4 (LSTM) p4, 3 (GRU) p6, 1 (tanh/relu) p7.
int64_t gate_cost(const int* p, int64_t gates) {
    if (gates == 4) return p[4];
    if (gates == 3) return p[6];
    if (gates == 1) return p[7];
    throw FormulaError("unexpected RNN gate count");
}

// p5 >= 0: the cuDNN/MIOpen layout, one flat weight list [w_ih, w_hh, (b_ih, b_hh), (w_hr)] per
// layer and direction. Every 2-d weight multiplies each (step, batch) row once (layers and
// directions see the same rows); the gate math runs once per layer and direction.
Cost rnn_flat(const int* p, const CallView& call) {
    PyObject* input = call.tensor(p[0]);
    PyObject* lst = call.arg(p[5]);
    if (!lst || !(PyList_Check(lst) || PyTuple_Check(lst))) throw FormulaError("expected a weight list");
    Py_ssize_t n = PySequence_Fast_GET_SIZE(lst);
    PyObject** items = PySequence_Fast_ITEMS(lst);
    int64_t weight_numel = 0, gh = -1, in_features = -1, matrices_gh = 0, hidden = -1, second_cols = -1;
    int seen = 0;
    for (Py_ssize_t i = 0; i < n; ++i) {
        if (!is_tensor(items[i])) throw FormulaError("weight list holds a non-tensor");
        read_shape(items[i], s_a);
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
    Cost c;
    c.macs = rows * weight_numel * p[3];
    c.flops = 2 * c.macs + rows * hidden * layer_dirs * gate_cost(p, gh / hidden);
    return c;
}

Cost rnn(const int* p, const CallView& call) {
    if (p[5] >= 0) return rnn_flat(p, call);
    PyObject* input = call.tensor(p[0]);
    read_shape(call.tensor(p[1]), s_a);
    read_shape(call.tensor(p[2]), s_b);
    if (s_a.size() != 2 || s_b.size() != 2 || s_a[1] == 0 || s_b[1] == 0) throw FormulaError("expected 2-d RNN weights");
    int64_t rows = numel_of(input) / s_a[1];  // steps * batch
    Cost c;
    c.macs = rows * (s_a[0] * s_a[1] + s_b[0] * s_b[1]) * p[3];
    c.flops = 2 * c.macs + rows * s_b[1] * gate_cost(p, s_b[0] / s_b[1]);
    return c;
}

}  // namespace

Cost compute_cost(int family, const int* p, const CallView& call) {
    switch (family) {
        case F_ZERO:
        case F_MOVE:
        case F_UNSUPPORTED:
            return Cost{};
        case F_MATMUL:
            return matmul(p, call);
        case F_CONV:
            return conv(p, call);
        case F_CONV_BWD:
            return conv_backward(p, call);
        case F_ATTENTION:
            return attention(p, call);
        case F_ELEMENTWISE:
            return elementwise(p, call);
        case F_REDUCE:
            return reduce(p, call);
        case F_NORM:
            return norm(p, call);
        case F_NORM_BWD:
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
        default:
            throw FormulaError("unknown family");
    }
}

}  // namespace fd
