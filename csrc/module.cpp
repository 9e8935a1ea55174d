// flopdispatch._C: the compiled formula table and recorder. Only flopdispatch/_core.py imports it.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>
#include <unordered_set>
#include <utility>
#include <vector>
#include <string>

#include "formulas.h"
#include "lifecycle.h"
#include "recorder.h"

namespace py = pybind11;

namespace {

// The cost of one op call computed by the C++ families: (flops, macs, masked_macs).
// Used by tests to compare with the Python reference; not on the hot path.
py::tuple compute(py::handle func, py::handle args, py::handle kwargs, py::handle out) {
    int op = fd::resolve_op_id(func.ptr());
    if (op < 0) throw py::error_already_set();
    int params[fd::kMaxParams];
    const std::vector<PyObject*>* names = nullptr;
    int family = fd::op_entry_family(op, params, &names);
    if (!PyTuple_Check(args.ptr())) throw py::type_error("args must be a tuple");
    PyObject* kw = (kwargs.is_none() || !PyDict_Check(kwargs.ptr())) ? nullptr : kwargs.ptr();
    fd::CallView call{args.ptr(), kw, out.ptr(), names};
    try {
        fd::Cost c = fd::compute_cost(family, params, call);
        if (fd::raise_deferred()) throw py::error_already_set();  // Ctrl-C inside a shape read
        // Python ints of any size: counts may pass 2^63.
        py::object flops = py::reinterpret_steal<py::object>(fd::py_from_int128(c.flops));
        py::object macs = py::reinterpret_steal<py::object>(fd::py_from_int128(c.macs));
        py::object masked = py::reinterpret_steal<py::object>(fd::py_from_int128(c.masked_macs));
        if (!flops || !macs || !masked) throw py::error_already_set();
        return py::make_tuple(flops, macs, masked);
    } catch (const fd::SymbolicShape&) {
        if (fd::raise_deferred()) throw py::error_already_set();
        throw py::value_error("symbolic shape");
    } catch (const fd::Overflow&) {
        throw py::value_error("count past 128 bits");
    } catch (const fd::FormulaError& e) {
        if (fd::raise_deferred()) throw py::error_already_set();
        throw py::value_error(e.what());
    }
}

// Issue 14 (the per-block fixed cost): walk a module tree as ``root.named_modules()`` does
// (pre-order, each module once, None children skipped) and return (modules, fingerprint). The
// fingerprint (bytes) is what count's tree cache compares (flopdispatch/counter.py, "registered-tree
// cache"): for each module in order, its type (address and name), then per child entry its key
// (length and UTF-8 bytes) and the child's address (0: None), then per parameter entry its key, the
// tensor's address, requires_grad and numel. Everything count derives from a tree (names, parents,
// types, parameter counts and owners, tied weights) is a function of these bytes, so equal bytes
// mean an equal registration even if an object died and another took its address.
// Every dict is copied to an owned list of (key, value) before any attribute is read: no container is
// iterated across a call that may run Python.
py::tuple walk_tree(py::handle root) {
    static PyObject* s_modules = PyUnicode_InternFromString("_modules");
    static PyObject* s_parameters = PyUnicode_InternFromString("_parameters");
    static PyObject* s_requires_grad = PyUnicode_InternFromString("requires_grad");
    static PyObject* s_numel = PyUnicode_InternFromString("numel");
    std::string fp;
    auto put = [&fp](uint64_t v) { fp.append(reinterpret_cast<const char*>(&v), sizeof v); };
    auto put_str = [&fp, &put](const char* data, size_t n) {
        put(n);
        fp.append(data, n);
    };
    auto put_key = [&put_str](PyObject* key) {
        if (!PyUnicode_Check(key)) throw py::type_error("walk_tree: module and parameter names must be str");
        Py_ssize_t n = 0;
        const char* data = PyUnicode_AsUTF8AndSize(key, &n);
        if (!data) throw py::error_already_set();
        put_str(data, static_cast<size_t>(n));
    };
    // (key, value) pairs of a module's dict attribute, owned: copied out of the dict with no Python
    // call in between, so that reading their attributes later cannot disturb an iteration.
    using Items = std::vector<std::pair<py::object, py::object>>;
    auto items_of = [](PyObject* module, PyObject* name, Items& out) {
        out.clear();
        py::object d = py::reinterpret_steal<py::object>(PyObject_GetAttr(module, name));
        if (!d) throw py::error_already_set();
        if (!PyDict_Check(d.ptr())) throw py::type_error("walk_tree: _modules and _parameters must be dicts");
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(d.ptr(), &pos, &key, &value))
            out.emplace_back(py::reinterpret_borrow<py::object>(key), py::reinterpret_borrow<py::object>(value));
    };
    py::list order;
    std::unordered_set<PyObject*> seen;  // modules already yielded (as named_modules' memo); all kept alive by `order`
    std::vector<py::object> stack{py::reinterpret_borrow<py::object>(root)};
    Items children, params;
    while (!stack.empty()) {
        py::object m = std::move(stack.back());
        stack.pop_back();
        if (!seen.insert(m.ptr()).second) continue;
        order.append(m);
        PyTypeObject* type = Py_TYPE(m.ptr());
        put(reinterpret_cast<uintptr_t>(type));
        put_str(type->tp_name, std::strlen(type->tp_name));
        items_of(m.ptr(), s_modules, children);
        put(static_cast<uint64_t>(children.size()));
        for (const auto& kv : children) {
            put_key(kv.first.ptr());
            put(kv.second.is_none() ? 0 : reinterpret_cast<uintptr_t>(kv.second.ptr()));
        }
        for (auto it = children.rbegin(); it != children.rend(); ++it)  // pushed last-first: visited in order
            if (!it->second.is_none()) stack.push_back(it->second);
        items_of(m.ptr(), s_parameters, params);
        put(static_cast<uint64_t>(params.size()));
        for (const auto& kv : params) {
            put_key(kv.first.ptr());
            PyObject* p = kv.second.ptr();
            if (p == Py_None) {
                put(0);
                continue;
            }
            py::object rg = py::reinterpret_steal<py::object>(PyObject_GetAttr(p, s_requires_grad));
            if (!rg) throw py::error_already_set();
            int trainable = PyObject_IsTrue(rg.ptr());
            if (trainable < 0) throw py::error_already_set();
            py::object numel = py::reinterpret_steal<py::object>(PyObject_CallMethodNoArgs(p, s_numel));
            if (!numel) throw py::error_already_set();
            unsigned long long count = PyLong_AsUnsignedLongLong(numel.ptr());
            if (PyErr_Occurred()) throw py::error_already_set();
            put(reinterpret_cast<uintptr_t>(p));
            put(static_cast<uint64_t>(trainable));
            put(count);
        }
    }
    return py::make_tuple(order, py::bytes(fp));
}

}  // namespace

PYBIND11_MODULE(_C, m) {
    m.doc() = "flopdispatch compiled core: formula families and the per-op recorder";
    py::module_ torch = py::module_::import("torch");
    auto& g = fd::globals();
    g.tensor_type = py::object(torch.attr("Tensor")).release().ptr();
    g.str_shape = PyUnicode_InternFromString("shape");
    g.str_dtype = PyUnicode_InternFromString("dtype");
    g.str_itemsize = PyUnicode_InternFromString("itemsize");
    g.str_is_floating_point = PyUnicode_InternFromString("is_floating_point");
    g.str_is_complex = PyUnicode_InternFromString("is_complex");
    g.str_out = PyUnicode_InternFromString("out");
    g.str_sequence_nr = PyUnicode_InternFromString("_sequence_nr");

    py::dict families;
    for (int f = 0; f < fd::F_COUNT; ++f) families[fd::family_name(f)] = f;
    m.attr("FAMILIES") = families;
    m.attr("MAX_PARAMS") = fd::kMaxParams;

    PyObject* rec = fd::make_recorder_type();
    if (!rec) throw py::error_already_set();
    m.attr("Recorder") = py::reinterpret_steal<py::object>(rec);
    PyObject* lifecycle = fd::make_lifecycle_type();
    if (!lifecycle) throw py::error_already_set();
    m.attr("Lifecycle") = py::reinterpret_steal<py::object>(lifecycle);
    PyObject* run_steps = fd::make_run_steps();
    if (!run_steps) throw py::error_already_set();
    m.attr("run_steps") = py::reinterpret_steal<py::object>(run_steps);

    m.def(
        "set_hooks",
        [](py::handle resolver, py::handle fallback, py::handle current_node, py::handle sequence_nr) {
            fd::set_hooks(resolver.ptr(), fallback.ptr(), current_node.ptr(), sequence_nr.ptr());
        },
        "Install the op resolver, the symbolic fallback and torch's autograd probes.");
    m.def(
        "set_user_hook", [](py::handle user_cost) { fd::set_user_hook(user_cost.ptr()); },
        "Install the helper that prices calls with user formulas (fd.formula).");
    m.def(
        "refresh_ops",
        []() {
            if (fd::refresh_ops() < 0) throw py::error_already_set();
        },
        "Ask the resolver again about every known op (after fd.formula registrations).");
    m.def(
        "set_decompose_hook", [](py::handle decompose) { fd::set_decompose_hook(decompose.ptr()); },
        "Install the decomposition hook for ops with no formula.");
    m.def(
        "set_comm_hook",
        [](py::handle comm, py::handle graph_task_id) { fd::set_comm_hook(comm.ptr(), graph_task_id.ptr()); },
        "Install the hook that records collectives (communication) and prices their bytes.");
    m.def(
        "set_subclass_hook", [](py::handle hook) { fd::set_subclass_hook(hook.ptr()); },
        "Install the hook offered ops on tensor subclasses (DTensor: counted as its local ops).");
    m.def("walk_tree", &walk_tree,
          "(modules in named_modules() order, fingerprint bytes) of a module tree (count's tree cache, issue 14).");
    m.def("compute", &compute, "(flops, macs, masked_macs) of one op call, from the C++ families.");
}
