// The recorder: a CPython type whose __torch_dispatch__ runs the op, identifies it, computes
// its cost with the formula families, counts bytes and accumulates into a flat table keyed by
// (module scope, phase, op). Python subclasses it together with TorchDispatchMode.
//
// Scopes are paths in the module call tree, interned as integers; scope 0 is "outside every
// tracked module". Backward work is attributed through autograd sequence numbers: module
// entries and exits in forward record (next sequence number, scope) transitions, and a backward
// op looks up the sequence number of the autograd node running it.
#include "recorder.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <memory>
#include <unordered_map>
#include <vector>

#include "formulas.h"

namespace fd {

namespace {

// ----- Python errors raised inside the core's callbacks ------------------------------------------

// The BaseException (not an Exception) set aside on this thread, until the core returns to Python.
struct DeferredError {
    PyObject* type = nullptr;
    PyObject* value = nullptr;
    PyObject* traceback = nullptr;
};
thread_local DeferredError t_deferred;

}  // namespace

void clear_error() {
    if (!PyErr_Occurred()) return;
    if (PyErr_ExceptionMatches(PyExc_Exception)) {
        PyErr_Clear();
        return;
    }
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (t_deferred.type) {  // keep the first one
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return;
    }
    t_deferred = {type, value, tb};
}

bool error_deferred() { return t_deferred.type != nullptr; }

bool raise_deferred() {
    if (!t_deferred.type) return false;
    DeferredError d = t_deferred;
    t_deferred = {};
    PyErr_Restore(d.type, d.value, d.traceback);  // replaces (and releases) any pending error
    return true;
}

namespace {

// ----- the op table: one entry per OpOverload, shared by every recorder -----------------------
//
// Entries are heap objects that never move and never change once published: record() keeps a
// reference to its op's entry while it calls into Python (shape reads, formulas, callbacks),
// and meanwhile any thread, or a nested count, may resolve new ops and grow the table.

struct OpEntry {
    int family = F_UNSUPPORTED;
    int params[kMaxParams] = {-1, -1, -1, -1, -1, -1, -1, -1};
    int overwritten_arg = -1;         // an argument written, not read (copy_ destination)
    std::vector<PyObject*> arg_names; // interned schema names, for keyword arguments
    std::string name;                 // "aten::mm"
    PyObject* call = nullptr;         // what runs the op: OpOverload._op (skips a Python frame) or the op
    PyObject* user = nullptr;         // a Python formula (fd.formula) that prices the op, or nullptr
    bool decompose = false;           // no formula: offered to g_decompose first (composite kernels, nested tensors)
};

std::vector<std::unique_ptr<const OpEntry>>& op_table() {
    static std::vector<std::unique_ptr<const OpEntry>> t;
    return t;
}
const OpEntry& op_entry(int id) { return *op_table()[id]; }
std::unordered_map<PyObject*, int>& op_index() {
    static std::unordered_map<PyObject*, int> m;  // OpOverload (kept alive) -> entry
    return m;
}
PyObject* g_resolver = nullptr;            // callable(func) -> (name, family, params, names, overwritten, call)
PyObject* g_python_cost = nullptr;         // callable(func, args, kwargs, out) -> (flops, macs, masked, read, written)
PyObject* g_current_node = nullptr;        // torch._C._current_autograd_node
PyObject* g_sequence_nr = nullptr;         // torch._C._autograd._get_sequence_nr
PyObject* g_user_cost = nullptr;           // callable(formula, args, kwargs, out) -> 5 ints, or an error str
PyObject* g_decompose = nullptr;           // callable(mode, func, args, kwargs) -> output or NotImplemented
PyObject* g_subclass = nullptr;            // callable(mode, func, types, args, kwargs) -> output or NotImplemented
PyObject* g_graph_task_id = nullptr;       // torch._C._current_graph_task_id: -1 outside a backward pass
PyObject* g_comm = nullptr;                // callable(mode, scope, phase, func, args, kwargs, out) -> (read, written)

// Fills `e` from the resolver's answer (name, family, params, names, overwritten, call[, user[, decompose]]).
// Returns false with a Python error set when the answer is malformed (`e` then holds only what
// release_entry_refs releases).
bool parse_resolution(PyObject* r, OpEntry& e) {
    PyObject *name, *params, *names, *call, *user = Py_None;
    int fam, over, decompose = 0;
    if (!PyArg_ParseTuple(r, "UiOOiO|Op", &name, &fam, &params, &names, &over, &call, &user, &decompose)) return false;
    const char* name_utf8 = PyUnicode_AsUTF8(name);
    PyObject* params_seq = name_utf8 ? PySequence_Fast(params, "op params must be a sequence") : nullptr;
    PyObject* names_seq = params_seq ? PySequence_Fast(names, "op argument names must be a sequence") : nullptr;
    if (!names_seq) {
        Py_XDECREF(params_seq);
        return false;
    }
    e.name = name_utf8;
    e.family = fam;
    e.overwritten_arg = over;
    Py_ssize_t np = std::min<Py_ssize_t>(PySequence_Fast_GET_SIZE(params_seq), kMaxParams);
    for (Py_ssize_t i = 0; i < np; ++i) e.params[i] = static_cast<int>(PyLong_AsLong(PySequence_Fast_GET_ITEM(params_seq, i)));
    Py_ssize_t nn = PySequence_Fast_GET_SIZE(names_seq);
    for (Py_ssize_t i = 0; i < nn; ++i) {
        PyObject* v = PySequence_Fast_GET_ITEM(names_seq, i);
        if (!PyUnicode_CheckExact(v)) {
            PyErr_SetString(PyExc_TypeError, "op argument names must be str");
            break;
        }
        Py_INCREF(v);
        PyUnicode_InternInPlace(&v);
        e.arg_names.push_back(v);  // owned for the process lifetime
    }
    Py_DECREF(params_seq);
    Py_DECREF(names_seq);
    e.call = Py_NewRef(call);  // owned for the process lifetime, like the op itself
    e.user = user == Py_None ? nullptr : Py_NewRef(user);
    e.decompose = decompose != 0;
    return !PyErr_Occurred();
}

void release_entry_refs(OpEntry& e) {
    Py_CLEAR(e.call);
    Py_CLEAR(e.user);
    for (PyObject* n : e.arg_names) Py_DECREF(n);
    e.arg_names.clear();
}

// A fresh entry from the resolver's answer for `func`; nullptr with a Python error set when the
// resolver fails or answers something malformed. The resolver is Python: other threads may run.
std::unique_ptr<OpEntry> ask_resolver(PyObject* func) {
    PyObject* r = PyObject_CallOneArg(g_resolver, func);
    if (!r) return nullptr;
    auto e = std::make_unique<OpEntry>();
    bool ok = parse_resolution(r, *e);
    Py_DECREF(r);
    if (!ok) {
        release_entry_refs(*e);
        return nullptr;
    }
    return e;
}

// The op's id, resolving it on first sight; -1 with a Python error set when it cannot be resolved.
int resolve_op(PyObject* func) {
    auto& idx = op_index();
    auto it = idx.find(func);
    if (it != idx.end()) return it->second;
    auto e = ask_resolver(func);
    if (!e) return -1;
    // Resolved meanwhile by another thread (the resolver ran Python): keep the published entry.
    it = idx.find(func);
    if (it != idx.end()) {
        release_entry_refs(*e);
        return it->second;
    }
    Py_INCREF(func);  // op overloads are process-wide; keep the key valid
    int id = static_cast<int>(op_table().size());
    op_table().push_back(std::move(e));
    idx.emplace(func, id);
    return id;
}

// Asks the resolver again about every known op (after an fd.formula registration or removal) and
// publishes a fresh entry for each. Entries are immutable: the old one is retired, never freed,
// because a record() further up this thread's stack may still hold a reference to it.
int refresh_ops_impl() {
    static std::vector<std::unique_ptr<const OpEntry>> retired;
    std::vector<std::pair<PyObject*, int>> known(op_index().begin(), op_index().end());
    for (const auto& kv : known) {
        auto fresh = ask_resolver(kv.first);
        if (!fresh) return -1;
        retired.push_back(std::move(op_table()[kv.second]));
        op_table()[kv.second] = std::move(fresh);
    }
    return 0;
}

// ----- bytes ------------------------------------------------------------------------------------

int64_t nbytes(PyObject* t) {
    int64_t r;
    if (__builtin_mul_overflow(numel_of(t), dtype_info(t).itemsize, &r)) throw Overflow{};  // Python path
    return r;
}

int64_t nbytes_of_value(PyObject* v) {
    if (is_tensor(v)) return nbytes(v);
    if (PyList_Check(v) || PyTuple_Check(v)) {
        // Size and item re-read on each step, each item held: reading a size may run Python
        // (a tensor subclass), which must not leave a pointer into a resized list behind.
        int64_t total = 0;
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(v); ++i) {
            PyObject* item = PySequence_Fast_GET_ITEM(v, i);
            if (!is_tensor(item)) continue;
            Py_INCREF(item);
            try {
                if (__builtin_add_overflow(total, nbytes(item), &total)) throw Overflow{};
            } catch (...) {
                Py_DECREF(item);
                throw;
            }
            Py_DECREF(item);
        }
        return total;
    }
    return 0;
}

int64_t bytes_read(const OpEntry& e, PyObject* args, PyObject* kwargs) {
    int64_t total = 0;
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    for (Py_ssize_t i = 0; i < n; ++i) {
        if (i == e.overwritten_arg) continue;
        if (__builtin_add_overflow(total, nbytes_of_value(PyTuple_GET_ITEM(args, i)), &total)) throw Overflow{};
    }
    if (kwargs && PyDict_GET_SIZE(kwargs)) {
        PyObject *key, *value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(kwargs, &pos, &key, &value)) {
            if (key == globals().str_out || PyUnicode_CompareWithASCIIString(key, "out") == 0) continue;  // out= is written
            if (__builtin_add_overflow(total, nbytes_of_value(value), &total)) throw Overflow{};
        }
    }
    return total;
}

// ----- accumulation -----------------------------------------------------------------------------

using i128 = __int128;

struct Stats {
    uint64_t calls = 0;
    i128 flops = 0, macs = 0, masked_macs = 0, read = 0, written = 0;
    double seconds = 0;  // host-timed op execution (timing mode, ops not on CUDA)
};

constexpr int kFields = 5;  // flops, macs, masked_macs, read, written: the order of every 5-tuple here

i128& field(Stats& s, int i) {
    switch (i) {
        case 0: return s.flops;
        case 1: return s.macs;
        case 2: return s.masked_macs;
        case 3: return s.read;
        default: return s.written;
    }
}

// Exact counts past 128 bits (issue 20): the part of a row that does not fit its 128-bit fields,
// as Python ints (owned references; nullptr: nothing). A row's value is its field plus this.
struct Spill {
    PyObject* v[kFields] = {nullptr, nullptr, nullptr, nullptr, nullptr};
};

// Timing of one op call: host seconds, or a pair of recorded CUDA events (owned references).
struct OpTime {
    double seconds = 0;
    PyObject* start = nullptr;
    PyObject* end = nullptr;
};

struct PendingEvents {
    uint64_t key;
    PyObject* start;
    PyObject* end;
};

struct ScopeNode {
    int parent;
    int module;
};

struct StackEntry {
    PyObject* module;  // borrowed: the module object, only compared
    int scope;
};

struct Transition {
    uint64_t seq;
    int scope;
};

constexpr uint64_t kNoSeq = UINT64_MAX;

// Consumes a new reference to a Python int; false (error cleared) when it is not one.
bool take_u64(PyObject* r, uint64_t& out) {
    if (!r) {
        clear_error();
        return false;
    }
    out = PyLong_AsUnsignedLongLong(r);
    Py_DECREF(r);
    if (PyErr_Occurred()) {
        clear_error();
        return false;
    }
    return true;
}
constexpr size_t kMaxSegments = 64;  // top-level forwards whose backward can still be attributed

PyObject* int128_to_py(i128 v) {
    bool neg = v < 0;
    unsigned __int128 u = neg ? -static_cast<unsigned __int128>(v) : static_cast<unsigned __int128>(v);
    uint64_t hi = static_cast<uint64_t>(u >> 64), lo = static_cast<uint64_t>(u);
    PyObject* r = PyLong_FromUnsignedLongLong(lo);
    if (hi) {
        PyObject* h = PyLong_FromUnsignedLongLong(hi);
        PyObject* sh = PyLong_FromLong(64);
        PyObject* hs = PyNumber_Lshift(h, sh);
        PyObject* sum = PyNumber_Add(hs, r);
        Py_DECREF(h);
        Py_DECREF(sh);
        Py_DECREF(hs);
        Py_DECREF(r);
        r = sum;
    }
    if (neg) {
        PyObject* m = PyNumber_Negative(r);
        Py_DECREF(r);
        r = m;
    }
    return r;
}

// `*acc` (a Python int or nullptr for 0) += `add` (a new reference, consumed); false (error set) when
// out of memory, `*acc` then unchanged.
bool py_accumulate(PyObject** acc, PyObject* add) {
    if (!add) return false;
    if (!*acc) {
        *acc = add;
        return true;
    }
    PyObject* sum = PyNumber_Add(*acc, add);
    Py_DECREF(add);
    if (!sum) return false;
    Py_SETREF(*acc, sum);
    return true;
}

// A sum of 128-bit values and Python ints, exact at any size: 128-bit arithmetic until it overflows,
// then the running 128-bit part moves into a Python int.
struct WideSum {
    i128 low = 0;
    PyObject* high = nullptr;  // owned; nullptr: 0
    bool failed = false;       // out of memory: a Python error is set

    WideSum() = default;
    WideSum(const WideSum&) = delete;
    WideSum& operator=(const WideSum&) = delete;
    ~WideSum() { Py_XDECREF(high); }

    void add(i128 x) {
        i128 r;
        if (!__builtin_add_overflow(low, x, &r)) {
            low = r;
            return;
        }
        failed = failed || !py_accumulate(&high, int128_to_py(low));  // the 128-bit part moves out
        low = x;
    }
    void add_py(PyObject* x) {  // borrowed
        if (x) failed = failed || !py_accumulate(&high, Py_NewRef(x));
    }
    // The exact sum as a new Python int, or nullptr with an error set.
    PyObject* take() {
        if (failed) return nullptr;
        PyObject* r = int128_to_py(low);
        if (r && high) {
            PyObject* sum = PyNumber_Add(r, high);
            Py_DECREF(r);
            r = sum;
        }
        return r;
    }
};

}  // namespace

struct RecorderState {
    std::unordered_map<uint64_t, Stats> table;  // key: scope << 24 | phase << 20 | op
    std::vector<ScopeNode> scopes{{-1, -1}};    // scope 0: outside every tracked module
    std::unordered_map<uint64_t, int> scope_ids;
    // module object -> module index. Each key is a strong reference (remember_module): a module
    // freed during the block (swapped out of the model and dropped) must not leave its address to
    // a new object, which would then count as that module.
    std::unordered_map<PyObject*, int> module_ids;
    std::vector<int> module_parent;                 // canonical parent module (-1: none)
    std::vector<int> module_home;                   // canonical scope, or -1 until needed
    std::vector<uint8_t> module_entered;            // 1: its forward ran (a container never called stays 0)
    std::vector<StackEntry> stack;
    std::deque<Transition> transitions;
    std::deque<uint64_t> segments;  // sequence number at each top-level module entry
    struct OpError {
        std::string message;  // the first formula error seen for the op
        uint64_t calls = 0;   // calls whose FLOPs could not be computed
    };
    std::unordered_map<int, OpError> errors;

    void note_error(int op, const std::string& message) {
        OpError& e = errors[op];
        if (e.calls++ == 0) e.message = message;
    }
    PyObject* module_cb = nullptr;  // callable(module) -> index or -1, for unregistered modules
    PyObject* param_cb = nullptr;   // callable(AccumulateGrad node) -> module index or -1
    bool model_given = false;
    bool in_optimizer = false;
    unsigned long owner = 0;       // the thread that entered the count: its module and optimizer events count
    bool python_formulas = false;  // cost every op with the Python reference (for comparisons)
    // callable(func, args, kwargs, out, scope, phase) -> the five ints, in place of the global Python
    // reference (fd.symbolic: it also keeps each call's cost as an expression in symbolic sizes)
    PyObject* python_pricer = nullptr;
    bool timing = false;           // time each op call (the call alone, not the counter)
    bool detached = false;         // the block has ended: a mode left on a stack only runs ops
    PyObject* cuda_event = nullptr;  // callable() -> a CUDA event recorded on the current stream
    std::vector<PendingEvents> pending;  // CUDA event pairs, resolved once at the end

    void drop_pending() {
        for (auto& p : pending) {
            Py_XDECREF(p.start);
            Py_XDECREF(p.end);
        }
        pending.clear();
    }

    int intern_scope(int parent, int module) {
        uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(parent)) << 32) | static_cast<uint32_t>(module);
        auto it = scope_ids.find(key);
        if (it != scope_ids.end()) return it->second;
        int id = static_cast<int>(scopes.size());
        scopes.push_back({parent, module});
        scope_ids.emplace(key, id);
        return id;
    }

    // The scope of a module reached through its canonical (named_modules) parents.
    int home_scope(int module) {
        if (module < 0) return 0;
        if (module_home[module] >= 0) return module_home[module];
        int parent_scope = home_scope(module_parent[module]);
        int s = intern_scope(parent_scope, module);
        module_home[module] = s;
        return s;
    }

    int current_scope() const { return stack.empty() ? 0 : stack.back().scope; }

    void note_transition() {
        uint64_t seq;
        if (!g_sequence_nr || !take_u64(PyObject_CallNoArgs(g_sequence_nr), seq)) return;
        int scope = current_scope();
        if (!transitions.empty() && transitions.back().scope == scope) return;
        if (!transitions.empty() && transitions.back().seq == seq) {
            transitions.back().scope = scope;  // no autograd node was created in between
        } else {
            transitions.push_back({seq, scope});
        }
    }

    void start_segment() {
        uint64_t seq;
        if (!g_sequence_nr || !take_u64(PyObject_CallNoArgs(g_sequence_nr), seq)) return;
        segments.push_back(seq);
        if (segments.size() > kMaxSegments) {
            segments.pop_front();
            uint64_t cutoff = segments.front();
            // Keep the last transition before the cutoff: it covers nodes from cutoff on.
            while (transitions.size() > 1 && transitions[1].seq <= cutoff) transitions.pop_front();
        }
    }

    int scope_of_seq(uint64_t seq) const {
        auto it = std::upper_bound(transitions.begin(), transitions.end(), seq,
                                   [](uint64_t s, const Transition& t) { return s < t.seq; });
        if (it == transitions.begin()) return 0;
        return std::prev(it)->scope;
    }

    // Scope for backward work run by an autograd node (a new reference is not taken).
    int scope_of_node(PyObject* node) {
        uint64_t seq;
        if (!take_u64(PyObject_CallMethodNoArgs(node, globals().str_sequence_nr), seq)) return 0;
        if (seq != kNoSeq) return scope_of_seq(seq);
        // AccumulateGrad: gradient accumulation into a parameter, charged to its module.
        if (!param_cb) return 0;
        PyObject* m = PyObject_CallOneArg(param_cb, node);
        if (!m) {
            clear_error();
            return 0;
        }
        long idx = PyLong_AsLong(m);
        Py_DECREF(m);
        if (PyErr_Occurred()) {
            clear_error();
            return 0;
        }
        return idx >= 0 && idx < static_cast<long>(module_parent.size()) ? home_scope(static_cast<int>(idx)) : 0;
    }

    // The index of a registered module; an unregistered one is offered to module_cb (count()
    // without a model adopts it as a new root) only at top level, when no module is on the stack:
    // one called from inside a tracked module stays with its caller and costs no call into Python.
    int module_index(PyObject* module) {
        auto it = module_ids.find(module);
        if (it != module_ids.end()) return it->second;
        if (!module_cb || !stack.empty()) return -1;
        PyObject* r = PyObject_CallOneArg(module_cb, module);
        if (!r) {
            clear_error();
            return -1;
        }
        long idx = PyLong_AsLong(r);
        Py_DECREF(r);
        if (PyErr_Occurred()) {
            clear_error();
            return -1;
        }
        return static_cast<int>(idx);
    }

    // A module's forward starts. Only the counted tree opens scopes: a tracked module anywhere,
    // and an untracked one only when called (at any depth) from a tracked one (created, swapped
    // in or not registered as a child): its work stays with that caller. An untracked module
    // called outside the tree (a loss module, a second model) opens nothing: its work is "other".
    void enter_module(PyObject* module) {
        int idx = module_index(module);
        int scope;
        if (idx < 0 || idx >= static_cast<int>(module_parent.size())) {
            if (stack.empty()) return;
            scope = current_scope();
        } else if (stack.empty()) {
            start_segment();
            scope = home_scope(idx);
        } else {
            scope = intern_scope(stack.back().scope, idx);
        }
        if (idx >= 0 && idx < static_cast<int>(module_entered.size())) module_entered[idx] = 1;
        stack.push_back({module, scope});
        note_transition();
    }

    void exit_module(PyObject* module) {
        for (size_t i = stack.size(); i-- > 0;) {
            if (stack[i].module == module) {
                stack.resize(i);
                note_transition();
                return;
            }
        }
    }

    // Records one call into its row; returns the row's key. A field whose sum would pass 128 bits
    // is carried on exactly in the row's spill (Python ints): one overflow check per field here.
    uint64_t add(int scope, int phase, int op, const Cost& c, i128 read, i128 written, OpTime& t) {
        uint64_t key = (static_cast<uint64_t>(scope) << 24) | (static_cast<uint64_t>(phase) << 20) | static_cast<uint64_t>(op);
        Stats& s = table[key];
        s.seconds += t.seconds;
        if (t.start && t.end) {
            pending.push_back({key, t.start, t.end});  // the references move to `pending`
            t.start = t.end = nullptr;
        }
        s.calls += 1;
        i128 f, m, mm, r, w;
        bool over = __builtin_add_overflow(s.flops, c.flops, &f) | __builtin_add_overflow(s.macs, c.macs, &m) |
                    __builtin_add_overflow(s.masked_macs, c.masked_macs, &mm) |
                    __builtin_add_overflow(s.read, read, &r) | __builtin_add_overflow(s.written, written, &w);
        if (__builtin_expect(over, 0)) {
            const i128 v[kFields] = {c.flops, c.macs, c.masked_macs, read, written};
            add_slow(key, op, s, v);
            return key;
        }
        s.flops = f;
        s.macs = m;
        s.masked_macs = mm;
        s.read = r;
        s.written = w;
        return key;
    }

    // A field that would overflow: its 128-bit value and the addend move into the row's spill.
    void add_slow(uint64_t key, int op, Stats& s, const i128 (&v)[kFields]) {
        for (int i = 0; i < kFields; ++i) {
            i128& x = field(s, i);
            i128 sum;
            if (!__builtin_add_overflow(x, v[i], &sum)) {
                x = sum;
                continue;
            }
            PyObject** slot = &spill[key].v[i];
            if (!py_accumulate(slot, int128_to_py(x)) || !py_accumulate(slot, int128_to_py(v[i]))) {
                clear_error();
                note_error(op, "out of memory while carrying a count past 128 bits");
                continue;  // not counted: reported against the op, never wrapped
            }
            x = 0;
        }
    }

    // Records one call whose cost is Python ints of any size (user formulas, the Python reference,
    // the comm hook): those past 128 bits go to the row's spill. False (nothing recorded) when a value
    // is not an int.
    bool add_py(int scope, int phase, int op, PyObject* const (&given)[kFields], OpTime& t) {
        i128 low[kFields] = {0, 0, 0, 0, 0};
        bool big[kFields] = {false, false, false, false, false};
        // Exact ints only past this point: an int subclass's __add__ would run Python code while a
        // spill slot's address is held (py_accumulate). Converted here, before any pointer is taken.
        PyObject* v[kFields] = {nullptr, nullptr, nullptr, nullptr, nullptr};
        struct Owned {
            PyObject** items;
            ~Owned() {
                for (int i = 0; i < kFields; ++i) Py_XDECREF(items[i]);
            }
        } owned{v};
        for (int i = 0; i < kFields; ++i) {
            if (!PyLong_Check(given[i])) return false;
            v[i] = PyLong_CheckExact(given[i]) ? Py_NewRef(given[i]) : PyNumber_Index(given[i]);
            if (!v[i]) {
                clear_error();
                return false;
            }
            big[i] = !int128_from_py(v[i], &low[i]);  // an int that does not fit: spilled whole
        }
        Cost c;
        c.flops = low[0];
        c.macs = low[1];
        c.masked_macs = low[2];
        uint64_t key = add(scope, phase, op, c, low[3], low[4], t);
        for (int i = 0; i < kFields; ++i) {
            if (big[i] && !py_accumulate(&spill[key].v[i], Py_NewRef(v[i]))) {
                clear_error();
                note_error(op, "out of memory while carrying a count past 128 bits");
            }
        }
        return true;
    }

    std::unordered_map<uint64_t, Spill> spill;  // rows with a part past 128 bits (rare)

    // The index of `module`: its known one, else `idx`, taking a reference to a new key.
    int remember_module(PyObject* module, int idx) {
        auto inserted = module_ids.emplace(module, idx);
        if (inserted.second) Py_INCREF(module);
        return inserted.first->second;
    }

    // Drop the modules' references; the map is emptied first, as a module's release may run Python.
    void forget_modules() {
        std::unordered_map<PyObject*, int> held;
        held.swap(module_ids);
        for (auto& kv : held) Py_DECREF(kv.first);
    }

    ~RecorderState() {
        forget_modules();
        for (auto& kv : spill)
            for (PyObject* o : kv.second.v) Py_XDECREF(o);
    }
};

enum Phase { P_FORWARD = 0, P_BACKWARD = 1, P_OPTIMIZER = 2, P_OTHER = 3 };

namespace {

// Python-visible object.
struct RecorderObject {
    PyObject_HEAD RecorderState* st;
};

PyObject* Recorder_new(PyTypeObject* type, PyObject*, PyObject*) {
    auto* self = reinterpret_cast<RecorderObject*>(type->tp_alloc(type, 0));
    if (!self) return nullptr;
    self->st = new RecorderState();
    return reinterpret_cast<PyObject*>(self);
}

int Recorder_init(PyObject*, PyObject*, PyObject*) { return 0; }

int Recorder_traverse(PyObject* self, visitproc visit, void* arg) {
    auto* st = reinterpret_cast<RecorderObject*>(self)->st;
    Py_VISIT(Py_TYPE(self));
    if (st) {
        Py_VISIT(st->module_cb);
        Py_VISIT(st->param_cb);
        Py_VISIT(st->python_pricer);
        Py_VISIT(st->cuda_event);
        for (auto& kv : st->module_ids) Py_VISIT(kv.first);
    }
    return 0;
}

int Recorder_clear(PyObject* self) {
    auto* st = reinterpret_cast<RecorderObject*>(self)->st;
    if (st) {
        Py_CLEAR(st->module_cb);
        Py_CLEAR(st->param_cb);
        Py_CLEAR(st->python_pricer);
        Py_CLEAR(st->cuda_event);
        st->drop_pending();
        st->forget_modules();
    }
    return 0;
}

void Recorder_dealloc(PyObject* self) {
    PyObject_GC_UnTrack(self);
    Recorder_clear(self);
    auto* obj = reinterpret_cast<RecorderObject*>(self);
    delete obj->st;
    obj->st = nullptr;
    PyTypeObject* tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

RecorderState* state(PyObject* self) { return reinterpret_cast<RecorderObject*>(self)->st; }

// Whether the first tensor argument (or the first tensor of a leading list) lives on CUDA.
bool on_cuda(PyObject* args) {
    static PyObject* str_is_cuda = PyUnicode_InternFromString("is_cuda");
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* a = PyTuple_GET_ITEM(args, i);
        if ((PyList_Check(a) || PyTuple_Check(a)) && PySequence_Fast_GET_SIZE(a) > 0)
            a = PySequence_Fast_ITEMS(a)[0];
        if (!is_tensor(a)) continue;
        PyObject* v = PyObject_GetAttr(a, str_is_cuda);
        if (!v) {
            clear_error();
            return false;
        }
        bool r = v == Py_True;
        Py_DECREF(v);
        return r;
    }
    return false;
}

// The message of the pending ordinary Python exception, which is cleared.
std::string take_error_message(const char* dflt) {
    PyObject *etype, *evalue, *etb;
    PyErr_Fetch(&etype, &evalue, &etb);
    std::string msg = dflt;
    if (evalue) {
        PyObject* s = PyObject_Str(evalue);
        const char* u = s ? PyUnicode_AsUTF8(s) : nullptr;
        if (u) msg = u;
        Py_XDECREF(s);
    }
    Py_XDECREF(etype);
    Py_XDECREF(evalue);
    Py_XDECREF(etb);
    clear_error();  // from PyObject_Str, if any
    return msg;
}

// Prices a call with a user formula (fd.formula): the Python helper returns five ints or an
// error message. An ordinary exception becomes an error against the op; a BaseException
// (KeyboardInterrupt, SystemExit) is set aside (clear_error) and the call is not recorded.
void record_user(RecorderState* st, int op, PyObject* formula, int scope, int phase, PyObject* args,
                 PyObject* kwargs, PyObject* out, OpTime& t) {
    PyObject* r = PyObject_CallFunctionObjArgs(g_user_cost, formula, args, kwargs ? kwargs : Py_None, out, nullptr);
    if (!r) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            clear_error();
            return;
        }
        st->note_error(op, take_error_message("formula failed"));
        st->add(scope, phase, op, Cost{}, 0, 0, t);
        return;
    }
    bool ok = PyTuple_Check(r) && PyTuple_GET_SIZE(r) == kFields;
    if (ok) {
        PyObject* const v[kFields] = {PyTuple_GET_ITEM(r, 0), PyTuple_GET_ITEM(r, 1), PyTuple_GET_ITEM(r, 2),
                                      PyTuple_GET_ITEM(r, 3), PyTuple_GET_ITEM(r, 4)};
        ok = st->add_py(scope, phase, op, v, t);  // ints of any size, exact
    }
    if (!ok) {
        const char* msg = PyUnicode_Check(r) ? PyUnicode_AsUTF8(r) : nullptr;
        st->note_error(op, msg ? msg : "formula result is not five ints");
        clear_error();
        st->add(scope, phase, op, Cost{}, 0, 0, t);
    }
    Py_DECREF(r);
}

// Whether the autograd engine is running a backward pass on this thread (its final callbacks run
// with no current node). Asked only for ops outside every module and autograd node.
bool in_backward_pass() {
    if (!g_graph_task_id) return false;
    PyObject* r = PyObject_CallNoArgs(g_graph_task_id);
    long id = r ? PyLong_AsLong(r) : -1;
    Py_XDECREF(r);
    clear_error();
    return id != -1;
}

// A collective (comm family): the Python hook keeps its communication record (payload, bus bytes,
// group size) for this mode, scope and phase, and returns the bytes it reads and writes locally.
// False when it fails (the call is then priced as any op).
bool record_comm(PyObject* self, RecorderState* st, int op, PyObject* func, int scope, int phase, PyObject* args,
                 PyObject* kwargs, PyObject* out, OpTime& t) {
    PyObject* r = PyObject_CallFunction(g_comm, "OiiOOOO", self, scope, phase, func, args, kwargs ? kwargs : Py_None, out);
    // (read, written) or (read, written, scope): the hook may name the scope the call belongs to
    // (FSDP2's all-gather prefetched for another module: that module's scope)
    Py_ssize_t n = r && PyTuple_Check(r) ? PyTuple_GET_SIZE(r) : 0;
    bool ok = (n == 2 || n == 3) && PyLong_Check(PyTuple_GET_ITEM(r, 0)) && PyLong_Check(PyTuple_GET_ITEM(r, 1));
    if (ok && n == 3) {
        long owner = PyLong_AsLong(PyTuple_GET_ITEM(r, 2));
        if (owner >= 0 && owner < static_cast<long>(st->scopes.size())) scope = static_cast<int>(owner);
    }
    clear_error();
    if (ok && !error_deferred()) {
        static PyObject* zero = PyLong_FromLong(0);  // immortal small int
        PyObject* const v[kFields] = {zero, zero, zero, PyTuple_GET_ITEM(r, 0), PyTuple_GET_ITEM(r, 1)};
        st->add_py(scope, phase, op, v, t);
    }
    Py_XDECREF(r);
    return ok || error_deferred();
}

// The phase and module scope of work run now (an op, or a tensor saved for backward).
inline void locate(RecorderState* st, int& phase, int& scope) {
    PyObject* node = PyObject_CallNoArgs(g_current_node);
    if (!node) {
        clear_error();
        node = Py_NewRef(Py_None);
    }
    if (node != Py_None) {
        phase = P_BACKWARD;
        scope = st->stack.empty() ? st->scope_of_node(node) : st->stack.back().scope;
    } else if (!st->stack.empty()) {
        phase = P_FORWARD;
        scope = st->stack.back().scope;
    } else {
        scope = 0;
        phase = st->in_optimizer ? P_OPTIMIZER : (st->model_given ? P_OTHER : P_FORWARD);
        // Outside every module and autograd node, but inside a backward pass: the engine's final
        // callbacks (FSDP2's last reduce-scatter, DDP's bucket flush) are backward work.
        if (!st->in_optimizer && in_backward_pass()) phase = P_BACKWARD;
    }
    Py_DECREF(node);
}

// Records one call. Never raises: an ordinary failure is recorded against the op as an error; a
// BaseException (Ctrl-C) is set aside (clear_error) and the call is not recorded.
void record(PyObject* self, RecorderState* st, int op, PyObject* func, PyObject* args, PyObject* kwargs, PyObject* out,
            OpTime& t) {
    const OpEntry& e = op_entry(op);  // immovable and immutable: safe across calls into Python
    if (e.family == F_ZERO && !e.user) return;

    int phase, scope;
    locate(st, phase, scope);

    if (kwargs == Py_None) kwargs = nullptr;
    if (e.user) {
        PyObject* user = Py_NewRef(e.user);
        record_user(st, op, user, scope, phase, args, kwargs, out, t);
        Py_DECREF(user);
        return;
    }
    if (e.family == F_COMM && g_comm && record_comm(self, st, op, func, scope, phase, args, kwargs, out, t)) return;
    CallView call{args, kwargs, out, &e.arg_names};
    Cost cost;
    i128 read = 0, written = 0;
    bool use_python = st->python_formulas;
    if (!use_python) {
        try {
            read = bytes_read(e, args, kwargs);
            written = nbytes_of_value(out);
            cost = compute_cost(e.family, e.params, call);
        } catch (const NeedsPython&) {
            use_python = true;  // SymInt sizes, or past 128 bits: the Python reference (Python ints)
        } catch (const FormulaError& err) {
            if (!error_deferred()) st->note_error(op, err.what());
            cost = Cost{};
        }
    }
    if (use_python && !error_deferred()) {
        PyObject* r;
        if (st->python_pricer) {
            PyObject* pricer = Py_NewRef(st->python_pricer);  // held: the call may clear the state's
            PyObject* sc = PyLong_FromLong(scope);
            PyObject* ph = PyLong_FromLong(phase);
            r = sc && ph ? PyObject_CallFunctionObjArgs(pricer, func, args, kwargs ? kwargs : Py_None, out, sc, ph,
                                                        nullptr)
                         : nullptr;
            Py_XDECREF(sc);
            Py_XDECREF(ph);
            Py_DECREF(pricer);
        } else {
            r = PyObject_CallFunctionObjArgs(g_python_cost, func, args, kwargs ? kwargs : Py_None, out, nullptr);
        }
        PyObject *f, *m, *mm, *rd, *wr;  // Python ints of any size
        bool ok = r && PyArg_ParseTuple(r, "OOOOO", &f, &m, &mm, &rd, &wr) && PyLong_Check(f) && PyLong_Check(m) &&
                  PyLong_Check(mm) && PyLong_Check(rd) && PyLong_Check(wr);
        if (ok) {
            clear_error();
            if (!error_deferred()) {
                PyObject* const v[kFields] = {f, m, mm, rd, wr};
                st->add_py(scope, phase, op, v, t);  // exact at any size (past 128 bits: the row's spill)
            }
            Py_DECREF(r);
            return;
        }
        if (r && !PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "the Python reference returned no five ints");
        cost = Cost{};
        read = written = 0;
        if (PyErr_ExceptionMatches(PyExc_Exception)) {
            PyObject *etype, *evalue, *etb;
            PyErr_Fetch(&etype, &evalue, &etb);
            std::string msg = "formula failed";
            if (evalue) {
                PyObject* s = PyObject_Str(evalue);
                const char* text = s ? PyUnicode_AsUTF8(s) : nullptr;
                if (text) msg = text;
                Py_XDECREF(s);
            }
            st->note_error(op, msg);
            Py_XDECREF(etype);
            Py_XDECREF(evalue);
            Py_XDECREF(etb);
            clear_error();  // from PyObject_Str, if any
        } else {
            clear_error();  // a BaseException: set aside, raised once the op is done
        }
        Py_XDECREF(r);
    }
    clear_error();
    if (error_deferred()) return;  // interrupted while pricing: the KeyboardInterrupt is what matters
    st->add(scope, phase, op, cost, read, written, t);
}

// __torch_dispatch__(func, types, args=(), kwargs=None)
PyObject* Recorder_dispatch(PyObject* self, PyObject* const* argv, Py_ssize_t nargs) {
    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError, "__torch_dispatch__ expects (func, types, args, kwargs)");
        return nullptr;
    }
    PyObject* func = argv[0];
    PyObject* args = nargs > 2 ? argv[2] : nullptr;
    PyObject* kwargs = nargs > 3 ? argv[3] : nullptr;
    PyObject* empty = nullptr;
    if (!args || !PyTuple_Check(args)) {
        empty = PyTuple_New(0);
        if (!empty) return nullptr;
        args = empty;
    }
    PyObject* kw = (kwargs && kwargs != Py_None && PyDict_Check(kwargs) && PyDict_GET_SIZE(kwargs)) ? kwargs : nullptr;
    RecorderState* st = state(self);
    if (st->detached) {  // exited from another thread: torch's stack of this one still holds it
        PyObject* out = PyObject_Call(func, args, kw);
        Py_XDECREF(empty);
        return out;
    }
    PyObject* types = argv[1];
    if (g_subclass && PyTuple_Check(types) && PyTuple_GET_SIZE(types) > 0) {
        // A tensor subclass argument (plain tensors give no types): a DTensor dispatches itself
        // with this mode active, so that its local ops and collectives are counted.
        // The hook answers NotImplemented (the subclass dispatches next: its parts come back to this
        // mode), (output,) (the op was run, not recorded), or None (run and record it as usual).
        PyObject* r = PyObject_CallFunctionObjArgs(g_subclass, self, func, types, args, kw ? kw : Py_None, nullptr);
        if (!r || r == Py_NotImplemented) {
            Py_XDECREF(empty);
            return r;
        }
        if (PyTuple_Check(r) && PyTuple_GET_SIZE(r) == 1) {
            PyObject* out = Py_NewRef(PyTuple_GET_ITEM(r, 0));
            Py_DECREF(r);
            Py_XDECREF(empty);
            return out;
        }
        Py_DECREF(r);
    }
    int op = resolve_op(func);  // cached after the first call of each op overload
    if (op < 0) {
        clear_error();  // unresolvable: run it anyway, record nothing
        if (raise_deferred()) {  // interrupted before the op ran: it does not run
            Py_XDECREF(empty);
            return nullptr;
        }
    }
    if (op >= 0 && g_decompose && op_entry(op).decompose) {
        // An op with no formula: run as its parts (a composite kernel, a nested tensor's own
        // implementation), which are dispatched to this mode and counted there.
        PyObject* r = PyObject_CallFunctionObjArgs(g_decompose, self, func, args, kw ? kw : Py_None, nullptr);
        if (r != Py_NotImplemented) {
            Py_XDECREF(empty);
            return r;  // the output, or nullptr with the error set
        }
        Py_DECREF(r);  // not decomposed: run whole below, reported unsupported
    }
    PyObject* call = op >= 0 ? op_entry(op).call : func;
    OpTime t;
    PyObject* out;
    if (!st->timing) {
        out = PyObject_Call(call, args, kw);
    } else {
        bool cuda = st->cuda_event && on_cuda(args);
        if (cuda && !(t.start = PyObject_CallNoArgs(st->cuda_event))) {
            clear_error();
            cuda = false;
        }
        auto t0 = std::chrono::steady_clock::now();
        out = PyObject_Call(call, args, kw);
        auto t1 = std::chrono::steady_clock::now();
        if (cuda && out && !(t.end = PyObject_CallNoArgs(st->cuda_event))) clear_error();
        if (!cuda) t.seconds = std::chrono::duration<double>(t1 - t0).count();
    }
    if (out && op >= 0) record(self, st, op, func, args, kw, out, t);
    Py_XDECREF(t.start);  // left over when the op failed or the events could not be paired
    Py_XDECREF(t.end);
    Py_XDECREF(empty);
    if (raise_deferred()) Py_CLEAR(out);  // Ctrl-C during the op's bookkeeping: the op has run
    return out;
}

// Whether `mode` is on the current thread's torch dispatch mode stack (torch keeps one per thread).
bool mode_on_this_thread(PyObject* mode) {
    static PyObject* len_fn = nullptr;
    static PyObject* at_fn = nullptr;
    if (!len_fn) {
        PyObject* torch_c = PyImport_ImportModule("torch._C");
        if (!torch_c) {
            clear_error();
            return false;
        }
        len_fn = PyObject_GetAttrString(torch_c, "_len_torch_dispatch_stack");
        at_fn = len_fn ? PyObject_GetAttrString(torch_c, "_get_dispatch_stack_at") : nullptr;
        Py_DECREF(torch_c);
        if (!at_fn) {
            Py_CLEAR(len_fn);
            clear_error();
            return false;
        }
    }
    PyObject* n_obj = PyObject_CallNoArgs(len_fn);
    long n = n_obj ? PyLong_AsLong(n_obj) : -1;
    Py_XDECREF(n_obj);
    bool found = false;
    for (long i = 0; i < n && !found; ++i) {
        PyObject* m = PyObject_CallFunction(at_fn, "l", i);
        found = m == mode;
        Py_XDECREF(m);
        if (!m) break;
    }
    clear_error();
    return found;
}

// Module and optimizer events count only on the thread that entered the count, and on threads
// that run this count's dispatch mode on its behalf (the autograd engine's device threads during
// backward, e.g. checkpoint recompute on CUDA). Other threads' events are ignored at the cost of
// one comparison; the second test (a Python call) runs only for foreign threads inside backward.
bool event_counts_here(PyObject* self) {
    RecorderState* st = state(self);
    if (PyThread_get_thread_ident() == st->owner) return true;
    PyObject* node = PyObject_CallNoArgs(g_current_node);
    if (!node) {
        clear_error();
        return false;
    }
    bool in_backward = node != Py_None;
    Py_DECREF(node);
    return in_backward && mode_on_this_thread(self);
}

PyObject* finish_event() {
    if (raise_deferred()) return nullptr;
    Py_RETURN_NONE;
}

PyObject* Recorder_module_enter(PyObject* self, PyObject* const* argv, Py_ssize_t nargs) {
    if (nargs >= 1 && event_counts_here(self)) state(self)->enter_module(argv[0]);
    return finish_event();
}

PyObject* Recorder_module_exit(PyObject* self, PyObject* const* argv, Py_ssize_t nargs) {
    if (nargs >= 1 && event_counts_here(self)) state(self)->exit_module(argv[0]);
    return finish_event();
}

// add_module(module, canonical_parent_index) -> index
PyObject* Recorder_add_module(PyObject* self, PyObject* const* argv, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "add_module(module, parent_index)");
        return nullptr;
    }
    RecorderState* st = state(self);
    long parent = PyLong_AsLong(argv[1]);
    if (PyErr_Occurred()) return nullptr;
    auto it = st->module_ids.find(argv[0]);
    if (it != st->module_ids.end()) return PyLong_FromLong(it->second);
    int idx = static_cast<int>(st->module_parent.size());
    st->module_parent.push_back(static_cast<int>(parent));
    st->module_home.push_back(-1);
    st->module_entered.push_back(0);
    st->remember_module(argv[0], idx);
    return PyLong_FromLong(idx);
}

// alias_module(module, index) -> index: `module` counts as the registered module `index` from now
// on (count() without a model: a parameter-free module made anew at top level, such as a loss
// module built in every step, joins the root of its class and structure instead of adding one).
PyObject* Recorder_alias_module(PyObject* self, PyObject* const* argv, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "alias_module(module, index)");
        return nullptr;
    }
    RecorderState* st = state(self);
    long idx = PyLong_AsLong(argv[1]);
    if (PyErr_Occurred()) return nullptr;
    if (idx < 0 || idx >= static_cast<long>(st->module_parent.size())) {
        PyErr_SetString(PyExc_ValueError, "alias_module: no registered module has this index");
        return nullptr;
    }
    return PyLong_FromLong(st->remember_module(argv[0], static_cast<int>(idx)));  // a known module keeps its index
}

// add_modules(modules, parents) -> index of the first: a whole new tree in one call (issue 14: the
// first root of a block, from the tree cache). Both are lists of the same length; parents[i] is the
// index of modules[i]'s parent in the recorder (-1: the root). None of the modules may be known yet.
PyObject* Recorder_add_modules(PyObject* self, PyObject* const* argv, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_Check(argv[0]) || !PyList_Check(argv[1]) ||
        PyList_GET_SIZE(argv[0]) != PyList_GET_SIZE(argv[1])) {
        PyErr_SetString(PyExc_TypeError, "add_modules(modules: list, parents: list of the same length)");
        return nullptr;
    }
    RecorderState* st = state(self);
    Py_ssize_t n = PyList_GET_SIZE(argv[0]);
    int first = static_cast<int>(st->module_parent.size());
    std::vector<int> parents(static_cast<size_t>(n));
    for (Py_ssize_t i = 0; i < n; ++i) {  // checked before anything is registered
        PyObject* p = PyList_GET_ITEM(argv[1], i);
        if (!PyLong_CheckExact(p)) {
            PyErr_SetString(PyExc_TypeError, "add_modules: parents must be ints");
            return nullptr;
        }
        long parent = PyLong_AsLong(p);
        if (parent < -1 || parent >= static_cast<long>(first) + i) {  // a registered module or an earlier one here
            PyErr_SetString(PyExc_ValueError, "add_modules: a parent index must name an earlier module (or be -1)");
            return nullptr;
        }
        parents[static_cast<size_t>(i)] = static_cast<int>(parent);
        if (st->module_ids.count(PyList_GET_ITEM(argv[0], i))) {
            PyErr_SetString(PyExc_ValueError, "add_modules: a module is already registered");
            return nullptr;
        }
    }
    st->module_parent.reserve(st->module_parent.size() + static_cast<size_t>(n));
    st->module_home.reserve(st->module_home.size() + static_cast<size_t>(n));
    for (Py_ssize_t i = 0; i < n; ++i) {
        st->module_parent.push_back(parents[static_cast<size_t>(i)]);
        st->module_home.push_back(-1);
        st->module_entered.push_back(0);
        st->remember_module(PyList_GET_ITEM(argv[0], i), first + static_cast<int>(i));
    }
    return PyLong_FromLong(first);
}

// configure(model_given, module_cb, param_cb): also makes the calling thread the owner.
PyObject* Recorder_configure(PyObject* self, PyObject* const* argv, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "configure(model_given, module_cb, param_cb)");
        return nullptr;
    }
    RecorderState* st = state(self);
    st->model_given = PyObject_IsTrue(argv[0]) == 1;
    st->owner = PyThread_get_thread_ident();
    Py_XSETREF(st->module_cb, argv[1] == Py_None ? nullptr : Py_NewRef(argv[1]));
    Py_XSETREF(st->param_cb, argv[2] == Py_None ? nullptr : Py_NewRef(argv[2]));
    Py_RETURN_NONE;
}

PyObject* Recorder_set_optimizer(PyObject* self, PyObject* const* argv, Py_ssize_t nargs) {
    state(self)->in_optimizer = nargs >= 1 && PyObject_IsTrue(argv[0]) == 1;
    Py_RETURN_NONE;
}

// Optimizer step pre/post hooks (optimizer, args, kwargs): the owner thread's steps only.
PyObject* Recorder_optimizer_enter(PyObject* self, PyObject* const*, Py_ssize_t) {
    if (event_counts_here(self)) state(self)->in_optimizer = true;
    return finish_event();
}

PyObject* Recorder_optimizer_exit(PyObject* self, PyObject* const*, Py_ssize_t) {
    if (event_counts_here(self)) state(self)->in_optimizer = false;
    return finish_event();
}

// configure_formulas(use_python): cost every op with the Python reference instead of the C++ table.
PyObject* Recorder_use_python_formulas(PyObject* self, PyObject* const* argv, Py_ssize_t nargs) {
    RecorderState* st = state(self);
    st->python_formulas = nargs >= 1 && PyObject_IsTrue(argv[0]) == 1;
    PyObject* pricer = nargs >= 2 && argv[1] != Py_None ? argv[1] : nullptr;
    if (pricer && !PyCallable_Check(pricer)) {
        PyErr_SetString(PyExc_TypeError, "use_python_formulas(enabled, pricer): pricer must be callable or None");
        return nullptr;
    }
    Py_XSETREF(st->python_pricer, pricer ? Py_NewRef(pricer) : nullptr);
    Py_RETURN_NONE;
}

// configure_timing(enabled, cuda_event_factory_or_None)
PyObject* Recorder_configure_timing(PyObject* self, PyObject* const* argv, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "configure_timing(enabled, cuda_event)");
        return nullptr;
    }
    RecorderState* st = state(self);
    st->timing = PyObject_IsTrue(argv[0]) == 1;
    Py_XSETREF(st->cuda_event, argv[1] == Py_None ? nullptr : Py_NewRef(argv[1]));
    Py_RETURN_NONE;
}

// times() -> ([(scope, phase, op, host seconds)], [(scope, phase, op, start_event, end_event)])
PyObject* Recorder_times(PyObject* self, PyObject*) {
    RecorderState* st = state(self);
    // Copied out first: building Python objects can run a garbage collection, whose finalizers
    // may run ops recorded into these very containers (a live view inside the block).
    std::vector<std::pair<uint64_t, double>> seconds;
    for (const auto& kv : st->table)
        if (kv.second.seconds != 0) seconds.emplace_back(kv.first, kv.second.seconds);
    std::vector<PendingEvents> pending = st->pending;
    for (auto& p : pending) {
        Py_INCREF(p.start);
        Py_INCREF(p.end);
    }
    PyObject* host = PyList_New(0);
    for (const auto& kv : seconds) {
        PyObject* row = Py_BuildValue("(iiid)", static_cast<int>(kv.first >> 24), static_cast<int>((kv.first >> 20) & 0xF),
                                      static_cast<int>(kv.first & 0xFFFFF), kv.second);
        if (row) PyList_Append(host, row);
        Py_XDECREF(row);
    }
    PyObject* events = PyList_New(0);
    for (const auto& p : pending) {
        PyObject* row = Py_BuildValue("(iiiOO)", static_cast<int>(p.key >> 24), static_cast<int>((p.key >> 20) & 0xF),
                                      static_cast<int>(p.key & 0xFFFFF), p.start, p.end);
        if (row) PyList_Append(events, row);
        Py_XDECREF(row);
        Py_DECREF(p.start);
        Py_DECREF(p.end);
    }
    if (PyErr_Occurred()) {
        Py_DECREF(host);
        Py_DECREF(events);
        return nullptr;
    }
    return Py_BuildValue("(NN)", host, events);
}

// where() -> (scope, phase) of work run now on this thread, as an op would be recorded
// (saved-activation tracking asks it when autograd saves a tensor).
PyObject* Recorder_where(PyObject* self, PyObject*) {
    int phase, scope;
    locate(state(self), phase, scope);
    if (raise_deferred()) return nullptr;
    return Py_BuildValue("(ii)", scope, phase);
}

// The canonical scope of a registered module (its named_modules path), or -1 for one this count
// does not know. Adopts nothing (unlike a module's entry).
PyObject* Recorder_module_scope(PyObject* self, PyObject* module) {
    RecorderState* st = state(self);
    auto it = st->module_ids.find(module);
    if (it == st->module_ids.end() || it->second < 0 || it->second >= static_cast<int>(st->module_parent.size()))
        return PyLong_FromLong(-1);
    return PyLong_FromLong(st->home_scope(it->second));
}

// entered() -> [index, ...]: the registered modules whose forward ran (the others, containers such
// as a ModuleList, hold their children's work; canonical scopes alone do not make a module called).
PyObject* Recorder_entered(PyObject* self, PyObject*) {
    RecorderState* st = state(self);
    PyObject* out = PyList_New(0);
    if (!out) return nullptr;
    for (size_t i = 0; i < st->module_entered.size(); ++i) {
        if (!st->module_entered[i]) continue;
        PyObject* v = PyLong_FromSsize_t(static_cast<Py_ssize_t>(i));
        if (!v || PyList_Append(out, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(out);
            return nullptr;
        }
        Py_DECREF(v);
    }
    return out;
}

// Forget the module stack and the callbacks (end of a counting block).
PyObject* Recorder_detach(PyObject* self, PyObject*) {
    RecorderState* st = state(self);
    st->stack.clear();
    st->transitions.clear();
    st->segments.clear();
    st->in_optimizer = false;
    st->timing = false;
    st->drop_pending();
    st->detached = true;
    Py_CLEAR(st->cuda_event);
    Py_CLEAR(st->module_cb);
    Py_CLEAR(st->param_cb);
    Py_CLEAR(st->python_pricer);
    // Last: releasing a module may run Python (its __del__), which then finds the recorder detached
    st->forget_modules();  // the block's modules are the user's again
    Py_RETURN_NONE;
}

// snapshot() -> (rows, scopes, ops, errors)
//   rows:   [(scope, phase, op, calls, flops, macs, masked_macs, bytes_read, bytes_written)]
//   scopes: [(parent, module)]
//   ops:    {op: (name, family)}
//   errors: {op: (message, failed calls)}
PyObject* Recorder_snapshot(PyObject* self, PyObject*) {
    RecorderState* st = state(self);
    // Copied out first (see times()): no iterator into the state lives across an allocation.
    std::vector<std::pair<uint64_t, Stats>> table(st->table.begin(), st->table.end());
    std::vector<ScopeNode> scope_nodes = st->scopes;
    std::vector<std::pair<int, RecorderState::OpError>> op_errors(st->errors.begin(), st->errors.end());
    std::unordered_map<uint64_t, Spill> spill(st->spill);  // the parts past 128 bits, held while read
    for (auto& kv : spill)
        for (PyObject* o : kv.second.v) Py_XINCREF(o);
    PyObject* rows = PyList_New(0);
    PyObject* ops = PyDict_New();
    PyObject* errors = PyDict_New();
    PyObject* scopes = PyList_New(0);
    bool ok = rows && ops && errors && scopes;
    for (const auto& kv : table) {
        if (!ok) break;
        int scope = static_cast<int>(kv.first >> 24);
        int phase = static_cast<int>((kv.first >> 20) & 0xF);
        int op = static_cast<int>(kv.first & 0xFFFFF);
        Stats s = kv.second;
        PyObject* values[kFields] = {nullptr, nullptr, nullptr, nullptr, nullptr};
        auto sp = spill.find(kv.first);
        for (int i = 0; i < kFields; ++i) {
            WideSum v;
            v.add(field(s, i));
            if (sp != spill.end()) v.add_py(sp->second.v[i]);
            values[i] = v.take();
            ok = ok && values[i];
        }
        PyObject* row = ok ? Py_BuildValue("(iiiKOOOOO)", scope, phase, op, static_cast<unsigned long long>(s.calls),
                                           values[0], values[1], values[2], values[3], values[4])
                           : nullptr;
        for (PyObject* v : values) Py_XDECREF(v);
        ok = row && PyList_Append(rows, row) == 0;
        Py_XDECREF(row);
        PyObject* key = ok ? PyLong_FromLong(op) : nullptr;
        if (key && !PyDict_Contains(ops, key)) {
            const OpEntry& e = op_entry(op);
            PyObject* val = Py_BuildValue("(ss)", e.name.c_str(), e.user ? "user" : family_name(e.family));
            ok = val && PyDict_SetItem(ops, key, val) == 0;
            Py_XDECREF(val);
        }
        ok = ok && key;
        Py_XDECREF(key);
    }
    for (const auto& n : scope_nodes) {
        if (!ok) break;
        PyObject* item = Py_BuildValue("(ii)", n.parent, n.module);
        ok = item && PyList_Append(scopes, item) == 0;
        Py_XDECREF(item);
    }
    for (const auto& kv : op_errors) {
        if (!ok) break;
        PyObject* key = PyLong_FromLong(kv.first);
        PyObject* val = Py_BuildValue("(sK)", kv.second.message.c_str(), static_cast<unsigned long long>(kv.second.calls));
        ok = key && val && PyDict_SetItem(errors, key, val) == 0;
        Py_XDECREF(key);
        Py_XDECREF(val);
    }
    for (auto& kv : spill)
        for (PyObject* o : kv.second.v) Py_XDECREF(o);
    if (!ok) {
        Py_XDECREF(rows);
        Py_XDECREF(scopes);
        Py_XDECREF(ops);
        Py_XDECREF(errors);
        return nullptr;
    }
    return Py_BuildValue("(NNNN)", rows, scopes, ops, errors);
}

// totals() -> (flops, macs, masked_macs, bytes_read, bytes_written, calls): the whole table summed
// in C (issue 14: reading c.flops after a block must not build a Python row per table entry).
PyObject* Recorder_totals(PyObject* self, PyObject*) {
    RecorderState* st = state(self);
    // Exact at any size: 128-bit sums, carried into Python ints only when one overflows. A Python
    // int is made only then (no garbage collection, so no finalizer can touch the table meanwhile).
    WideSum sum[kFields];
    uint64_t calls = 0;
    for (auto& kv : st->table) {
        calls += kv.second.calls;
        for (int i = 0; i < kFields; ++i) sum[i].add(field(kv.second, i));
    }
    for (const auto& kv : st->spill)
        for (int i = 0; i < kFields; ++i) sum[i].add_py(kv.second.v[i]);
    PyObject* v[kFields];
    bool ok = true;
    for (int i = 0; i < kFields; ++i) {
        v[i] = ok ? sum[i].take() : nullptr;
        ok = ok && v[i];
    }
    if (!ok) {
        for (PyObject* x : v) Py_XDECREF(x);
        return nullptr;
    }
    return Py_BuildValue("(NNNNNK)", v[0], v[1], v[2], v[3], v[4], static_cast<unsigned long long>(calls));
}

PyMethodDef Recorder_methods[] = {
    {"__torch_dispatch__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(Recorder_dispatch)),
     METH_FASTCALL, "Run an aten op and record its cost."},
    {"module_enter", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(Recorder_module_enter)),
     METH_FASTCALL, "Forward pre-hook: enter a module scope."},
    {"module_exit", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(Recorder_module_exit)),
     METH_FASTCALL, "Forward hook: leave a module scope."},
    {"add_module", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(Recorder_add_module)),
     METH_FASTCALL, "Register a module and its canonical parent index; returns its index."},
    {"alias_module", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(Recorder_alias_module)),
     METH_FASTCALL, "Count a module object as an already registered module index; returns the index."},
    {"add_modules", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(Recorder_add_modules)),
     METH_FASTCALL, "add_modules(modules, parents) -> index of the first (a new tree in one call)."},
    {"configure", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(Recorder_configure)),
     METH_FASTCALL, "configure(model_given, module_cb, param_cb)."},
    {"set_optimizer", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(Recorder_set_optimizer)),
     METH_FASTCALL, "Mark whether an optimizer step is running."},
    {"optimizer_enter", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(Recorder_optimizer_enter)),
     METH_FASTCALL, "Optimizer step pre-hook: the owner thread's step starts."},
    {"optimizer_exit", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(Recorder_optimizer_exit)),
     METH_FASTCALL, "Optimizer step post-hook: the owner thread's step ends."},
    {"use_python_formulas",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(Recorder_use_python_formulas)), METH_FASTCALL,
     "use_python_formulas(enabled, pricer=None): cost every op with the Python reference formulas (slower; "
     "for comparisons), or with pricer(func, args, kwargs, out, scope, phase)."},
    {"configure_timing",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(Recorder_configure_timing)), METH_FASTCALL,
     "configure_timing(enabled, cuda_event): time each op call (CUDA ops with recorded events)."},
    {"times", Recorder_times, METH_NOARGS, "Return (host op seconds rows, CUDA event-pair rows)."},
    {"detach", Recorder_detach, METH_NOARGS, "Drop the module stack and callbacks."},
    {"where", Recorder_where, METH_NOARGS, "Return (scope, phase) of work run now."},
    {"module_scope", Recorder_module_scope, METH_O, "Return a registered module's canonical scope, or -1."},
    {"entered", Recorder_entered, METH_NOARGS, "Return the indices of the registered modules whose forward ran."},
    {"snapshot", Recorder_snapshot, METH_NOARGS, "Return (rows, scopes, ops, errors)."},
    {"totals", Recorder_totals, METH_NOARGS,
     "Return (flops, macs, masked_macs, bytes_read, bytes_written, calls) summed over the table."},
    {nullptr, nullptr, 0, nullptr}};

PyType_Slot Recorder_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(Recorder_new)},
    {Py_tp_init, reinterpret_cast<void*>(Recorder_init)},
    {Py_tp_dealloc, reinterpret_cast<void*>(Recorder_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(Recorder_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(Recorder_clear)},
    {Py_tp_methods, Recorder_methods},
    {Py_tp_doc, const_cast<char*>("Per-op cost recorder (base of flopdispatch's dispatch mode).")},
    {0, nullptr}};

PyType_Spec Recorder_spec = {"flopdispatch._C.Recorder", sizeof(RecorderObject), 0,
                             Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, Recorder_slots};

}  // namespace

PyObject* make_recorder_type() { return PyType_FromSpec(&Recorder_spec); }

void set_user_hook(PyObject* user_cost) { Py_XSETREF(g_user_cost, Py_NewRef(user_cost)); }

int refresh_ops() { return refresh_ops_impl(); }

void set_hooks(PyObject* resolver, PyObject* python_cost, PyObject* current_node, PyObject* sequence_nr) {
    Py_XSETREF(g_resolver, Py_NewRef(resolver));
    Py_XSETREF(g_python_cost, Py_NewRef(python_cost));
    Py_XSETREF(g_current_node, Py_NewRef(current_node));
    Py_XSETREF(g_sequence_nr, sequence_nr == Py_None ? nullptr : Py_NewRef(sequence_nr));
}

void set_subclass_hook(PyObject* hook) { Py_XSETREF(g_subclass, hook == Py_None ? nullptr : Py_NewRef(hook)); }

void set_comm_hook(PyObject* comm, PyObject* graph_task_id) {
    Py_XSETREF(g_comm, comm == Py_None ? nullptr : Py_NewRef(comm));
    Py_XSETREF(g_graph_task_id, graph_task_id == Py_None ? nullptr : Py_NewRef(graph_task_id));
}

void set_decompose_hook(PyObject* decompose) {
    Py_XSETREF(g_decompose, decompose == Py_None ? nullptr : Py_NewRef(decompose));
}

int op_entry_family(int op, int* params_out, const std::vector<PyObject*>** names_out) {
    if (op < 0 || op >= static_cast<int>(op_table().size())) return -1;
    const OpEntry& e = op_entry(op);  // *names_out stays valid for the process lifetime
    for (int i = 0; i < kMaxParams; ++i) params_out[i] = e.params[i];
    *names_out = &e.arg_names;
    return e.family;
}

int resolve_op_id(PyObject* func) { return resolve_op(func); }

}  // namespace fd
