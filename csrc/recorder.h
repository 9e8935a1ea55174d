#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <vector>

namespace fd {

// The Recorder type (new reference).
PyObject* make_recorder_type();

// Process-wide callables: the op resolver, the Python reference cost (symbolic shapes), and
// torch's _current_autograd_node / _get_sequence_nr (sequence_nr may be None).
void set_hooks(PyObject* resolver, PyObject* python_cost, PyObject* current_node, PyObject* sequence_nr);

// The Python helper that prices a call with a user formula (fd.formula).
void set_user_hook(PyObject* user_cost);

// Re-resolves every known op after a user formula was registered or removed; -1 on error.
int refresh_ops();

// The decomposition hook: callable(mode, func, args, kwargs) -> the op's output, or NotImplemented
// to run the op whole. Called for ops resolved with no formula.
void set_decompose_hook(PyObject* decompose);

// The communication hook: callable(mode, scope, phase, func, args, kwargs, out) -> (bytes_read,
// bytes_written), called for ops of the comm family (collectives); it keeps their own record.
// graph_task_id: torch._C._current_graph_task_id (or None), which tells work in the autograd
// engine's final callbacks (backward) from work outside any backward pass.
void set_comm_hook(PyObject* comm, PyObject* graph_task_id);

// The tensor-subclass hook: callable(mode, func, types, args, kwargs) -> NotImplemented (the
// subclass dispatches the op itself, its parts reach the mode), (output,) (run, not recorded) or
// None (run and record the op as usual). Called only when `types` is not empty.
void set_subclass_hook(PyObject* hook);

// The op id of an OpOverload (resolving it on first sight), or -1 with a Python error set.
int resolve_op_id(PyObject* func);

// The family and parameters of a resolved op, or -1. *names_out points into the op's entry,
// which never moves or changes: it stays valid across calls into Python.
int op_entry_family(int op, int* params_out, const std::vector<PyObject*>** names_out);

}  // namespace fd
