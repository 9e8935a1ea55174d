// flopdispatch._C: the compiled formula table and recorder. Only flopdispatch/_core.py imports it.
#include <pybind11/pybind11.h>

#include "formulas.h"
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
    m.def("compute", &compute, "(flops, macs, masked_macs) of one op call, from the C++ families.");
}
