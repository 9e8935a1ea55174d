// Installing and removing flopdispatch's hooks atomically with respect to KeyboardInterrupt and
// other asynchronous exceptions (issue 20).
//
// Python delivers such exceptions between bytecodes: a signal handler runs at the next check of
// the eval loop, and a trace function may raise at any line. Code that installs several hooks in
// Python can therefore stop half-way, and an __exit__ written in Python can stop at its first line,
// before it removes anything. Here the steps run in C, with no Python bytecode in between:
//
// - Lifecycle._install(steps) runs each step's `do` and records its `undo` in one C loop; if a step
//   fails, the steps already done by this call are undone, and the error is raised.
// - Lifecycle._uninstall(et, ev, tb) runs every recorded undo, last first, whatever is raised meanwhile:
//   an undo interrupted by a BaseException (KeyboardInterrupt, SystemExit) is run again from its start
//   (undo steps are written so that running one again is harmless); an ordinary exception is kept and
//   the next step runs. The first error is raised once every step has run.
// - Lifecycle.__enter__ calls self._prepare() (Python: computes the steps and installs nothing), then
//   _install; Lifecycle.__exit__ runs _uninstall, then self._finish(et, ev, tb) (Python: results, warnings),
//   and raises the removal's error, if any. Both are C methods, so `with` reaches the removal with no
//   Python line of flopdispatch in front of it.
//
// A step is a tuple (do, do_args, undo, undo_args[, flags]): `do` (or None) is called with do_args;
// `undo` (or None) is recorded, called later with undo_args. Flags: UNDO_FIRST records the undo before
// `do` runs (for a `do` that may stop half-way, whose undo is harmless either way); UNDO_RESULT calls
// undo(result of do); UNDO_EXC calls undo(et, ev, tb), the exception the block exits with.
#include "lifecycle.h"

namespace fd {

namespace {

constexpr long kUndoFirst = 1;
constexpr long kUndoResult = 2;
constexpr long kUndoExc = 4;
constexpr int kMaxRetries = 16;  // an undo interrupted this many times in a row is given up (reported)

struct LifecycleObject {
    PyObject_HEAD PyObject* undo;  // list of (undo, args, flags, result), in install order
};

PyObject* undo_list(PyObject* self) {
    auto* o = reinterpret_cast<LifecycleObject*>(self);
    if (!o->undo) o->undo = PyList_New(0);
    return o->undo;
}

// Runs one recorded undo entry; new reference to its result, or nullptr with an error set.
PyObject* call_undo(PyObject* entry, PyObject* et, PyObject* ev, PyObject* tb) {
    PyObject* fn = PyTuple_GET_ITEM(entry, 0);
    PyObject* args = PyTuple_GET_ITEM(entry, 1);
    long flags = PyLong_AsLong(PyTuple_GET_ITEM(entry, 2));
    if (flags & kUndoExc) return PyObject_CallFunctionObjArgs(fn, et, ev, tb, nullptr);
    if (flags & kUndoResult) return PyObject_CallOneArg(fn, PyTuple_GET_ITEM(entry, 3));
    return PyObject_Call(fn, args, nullptr);
}

struct SavedError {
    PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
    bool set() const { return type != nullptr; }
    void keep_first() {  // takes the pending error; keeps it if it is the first
        PyObject *t, *v, *b;
        PyErr_Fetch(&t, &v, &b);
        if (type) {
            Py_XDECREF(t);
            Py_XDECREF(v);
            Py_XDECREF(b);
        } else {
            type = t;
            value = v;
            tb = b;
        }
    }
    void restore() {
        PyErr_Restore(type, value, tb);
        type = value = tb = nullptr;
    }
    void drop() {
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        type = value = tb = nullptr;
    }
};

// Runs the undo entries of `self` from the last down to index `stop`, each removed from the list
// before it runs. Errors go to `err` (the first is kept); an undo interrupted by a BaseException is
// run again.
void run_undo(PyObject* self, Py_ssize_t stop, PyObject* et, PyObject* ev, PyObject* tb, SavedError& err) {
    PyObject* list = reinterpret_cast<LifecycleObject*>(self)->undo;
    if (!list) return;
    Py_INCREF(list);
    while (PyList_GET_SIZE(list) > stop) {
        Py_ssize_t last = PyList_GET_SIZE(list) - 1;
        PyObject* entry = Py_NewRef(PyList_GET_ITEM(list, last));
        if (PyList_SetSlice(list, last, last + 1, nullptr) < 0) {  // cannot fail when shrinking; guarded anyway
            err.keep_first();
            Py_DECREF(entry);
            break;
        }
        for (int attempt = 0;; ++attempt) {
            PyObject* r = call_undo(entry, et, ev, tb);
            if (r) {
                Py_DECREF(r);
                break;
            }
            bool async = !PyErr_ExceptionMatches(PyExc_Exception);
            err.keep_first();
            if (!async || attempt + 1 >= kMaxRetries) break;  // an ordinary error: this step is done
        }
        Py_DECREF(entry);
    }
    Py_DECREF(list);
}

bool append_entry(PyObject* list, PyObject* undo, PyObject* args, PyObject* flags, PyObject* result) {
    PyObject* entry = PyTuple_Pack(4, undo, args ? args : Py_None, flags, result ? result : Py_None);
    if (!entry) return false;
    int rc = PyList_Append(list, entry);
    Py_DECREF(entry);
    return rc == 0;
}

// Drops one reference when it goes out of scope (every exit of a loop iteration).
struct StepRef {
    PyObject* obj;
    ~StepRef() { Py_DECREF(obj); }
};

// _install(steps): see the file comment.
PyObject* Lifecycle_install(PyObject* self, PyObject* steps) {
    PyObject* list = undo_list(self);
    if (!list) return nullptr;
    Py_INCREF(list);  // held across the steps' calls into Python
    PyObject* seq = PySequence_Fast(steps, "_install(steps): steps must be a sequence");
    if (!seq) {
        Py_DECREF(list);
        return nullptr;
    }
    Py_ssize_t start = PyList_GET_SIZE(list);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    static PyObject* zero = PyLong_FromLong(0);  // immortal small int
    PyObject* empty = PyTuple_New(0);
    bool ok = empty != nullptr;
    for (Py_ssize_t i = 0; ok && i < n; ++i) {
        // A strong reference: the step's items are borrowed from it across the call into Python (a
        // step may change the list of steps it came from).
        PyObject* step = Py_NewRef(PySequence_Fast_GET_ITEM(seq, i));
        StepRef hold{step};
        Py_ssize_t size = PyTuple_Check(step) ? PyTuple_GET_SIZE(step) : 0;
        if (size != 4 && size != 5) {
            PyErr_SetString(PyExc_TypeError, "a step is (do, do_args, undo, undo_args[, flags])");
            ok = false;
            break;
        }
        PyObject* fn = PyTuple_GET_ITEM(step, 0);
        PyObject* fn_args = PyTuple_GET_ITEM(step, 1);
        PyObject* undo = PyTuple_GET_ITEM(step, 2);
        PyObject* undo_args = PyTuple_GET_ITEM(step, 3);
        PyObject* flags_obj = size == 5 ? PyTuple_GET_ITEM(step, 4) : zero;
        long flags = PyLong_Check(flags_obj) ? PyLong_AsLong(flags_obj) : -1;
        if (flags < 0 || flags > 7) {
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "a step's flags are an int of UNDO_FIRST | UNDO_RESULT | UNDO_EXC");
            ok = false;
            break;
        }
        if (fn_args == Py_None) fn_args = empty;
        if (undo_args == Py_None) undo_args = empty;
        if ((fn != Py_None && !PyTuple_Check(fn_args)) || (undo != Py_None && !PyTuple_Check(undo_args))) {
            PyErr_SetString(PyExc_TypeError, "a step's arguments are tuples (or None)");
            ok = false;
            break;
        }
        bool first = (flags & kUndoFirst) != 0;
        if (undo != Py_None && first && !append_entry(list, undo, undo_args, flags_obj, nullptr)) {
            ok = false;
            break;
        }
        PyObject* result = nullptr;
        if (fn != Py_None) {
            result = PyObject_Call(fn, fn_args, nullptr);
            if (!result) {
                ok = false;
                break;
            }
        }
        if (undo != Py_None && !first && !append_entry(list, undo, undo_args, flags_obj, result)) {
            // done but not recorded (out of memory): undone right here
            SavedError e;
            e.keep_first();
            PyObject* entry = Py_BuildValue("(OOlO)", undo, undo_args, flags, result ? result : Py_None);
            PyObject* r = entry ? call_undo(entry, Py_None, Py_None, Py_None) : nullptr;
            Py_XDECREF(r);
            Py_XDECREF(entry);
            PyErr_Clear();
            e.restore();
            Py_XDECREF(result);
            ok = false;
            break;
        }
        Py_XDECREF(result);
    }
    Py_XDECREF(empty);
    Py_DECREF(seq);
    Py_DECREF(list);
    if (ok) Py_RETURN_NONE;
    // Undo what this call did; the step's own error is the one raised.
    SavedError err;
    err.keep_first();
    PyObject *et = err.type ? err.type : Py_None, *ev = err.value ? err.value : Py_None;
    PyObject* tb = err.tb ? err.tb : Py_None;
    SavedError during;
    run_undo(self, start, et, ev, tb, during);
    during.drop();
    err.restore();
    return nullptr;
}

PyObject* Lifecycle_uninstall(PyObject* self, PyObject* const* argv, Py_ssize_t nargs) {
    PyObject* et = nargs > 0 ? argv[0] : Py_None;
    PyObject* ev = nargs > 1 ? argv[1] : Py_None;
    PyObject* tb = nargs > 2 ? argv[2] : Py_None;
    SavedError err;
    run_undo(self, 0, et, ev, tb, err);
    if (err.set()) {
        err.restore();
        return nullptr;
    }
    Py_RETURN_NONE;
}

PyObject* Lifecycle_enter(PyObject* self, PyObject*) {
    PyObject* steps = PyObject_CallMethod(self, "_prepare", nullptr);
    if (!steps) return nullptr;
    PyObject* r = Lifecycle_install(self, steps);
    Py_DECREF(steps);
    if (!r) return nullptr;
    Py_DECREF(r);
    return Py_NewRef(self);
}

PyObject* Lifecycle_exit(PyObject* self, PyObject* const* argv, Py_ssize_t nargs) {
    PyObject* et = nargs > 0 ? argv[0] : Py_None;
    PyObject* ev = nargs > 1 ? argv[1] : Py_None;
    PyObject* tb = nargs > 2 ? argv[2] : Py_None;
    SavedError err;
    run_undo(self, 0, et, ev, tb, err);
    PyObject* result = nullptr;
    if (!err.set()) {
        result = PyObject_CallMethod(self, "_finish", "OOO", et, ev, tb);
        if (!result) return nullptr;
        return result;
    }
    // The removal failed (and finished): _finish still runs, told of the removal's error when the
    // block itself raised none; that error is raised.
    if (et == Py_None) {
        PyErr_NormalizeException(&err.type, &err.value, &err.tb);
        if (err.value && err.tb) PyException_SetTraceback(err.value, err.tb);
        et = err.type;
        ev = err.value ? err.value : Py_None;
        tb = err.tb ? err.tb : Py_None;
    }
    result = PyObject_CallMethod(self, "_finish", "OOO", et, ev, tb);
    Py_XDECREF(result);
    PyErr_Clear();
    err.restore();
    return nullptr;
}

PyObject* Lifecycle_installed(PyObject* self, void*) {
    PyObject* list = reinterpret_cast<LifecycleObject*>(self)->undo;
    return PyLong_FromSsize_t(list ? PyList_GET_SIZE(list) : 0);
}

int Lifecycle_traverse(PyObject* self, visitproc visit, void* arg) {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(reinterpret_cast<LifecycleObject*>(self)->undo);
    return 0;
}

int Lifecycle_clear(PyObject* self) {
    Py_CLEAR(reinterpret_cast<LifecycleObject*>(self)->undo);
    return 0;
}

void Lifecycle_dealloc(PyObject* self) {
    PyObject_GC_UnTrack(self);
    Lifecycle_clear(self);
    PyTypeObject* tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

// run_steps(steps): calls each (fn, args) in order, with no Python bytecode of its own in between;
// stops at the first error and raises it. For changes that must happen together (a dispatch mode's
// flags and its place on the stack).
PyObject* run_steps(PyObject*, PyObject* steps) {
    PyObject* seq = PySequence_Fast(steps, "run_steps(steps): steps must be a sequence");
    if (!seq) return nullptr;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* step = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(step) || PyTuple_GET_SIZE(step) != 2 || !PyTuple_Check(PyTuple_GET_ITEM(step, 1))) {
            PyErr_SetString(PyExc_TypeError, "run_steps: a step is (callable, args tuple)");
            Py_DECREF(seq);
            return nullptr;
        }
        PyObject* r = PyObject_Call(PyTuple_GET_ITEM(step, 0), PyTuple_GET_ITEM(step, 1), nullptr);
        if (!r) {
            Py_DECREF(seq);
            return nullptr;
        }
        Py_DECREF(r);
    }
    Py_DECREF(seq);
    Py_RETURN_NONE;
}

PyMethodDef Lifecycle_methods[] = {
    {"__enter__", Lifecycle_enter, METH_NOARGS, "self._prepare() -> steps; install them in one C call; return self."},
    {"__exit__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(Lifecycle_exit)), METH_FASTCALL,
     "Undo every installed step (whatever is raised meanwhile), then self._finish(et, ev, tb)."},
    {"_install", Lifecycle_install, METH_O, "Run (do, do_args, undo, undo_args[, flags]) steps; record the undos."},
    {"_uninstall", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(Lifecycle_uninstall)),
     METH_FASTCALL, "Undo every installed step, last first; raise the first error after all ran."},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef Lifecycle_getset[] = {
    {"_installed", Lifecycle_installed, nullptr, "Undo steps recorded (0: nothing installed).", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyType_Slot Lifecycle_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(Lifecycle_dealloc)},
    {Py_tp_traverse, reinterpret_cast<void*>(Lifecycle_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(Lifecycle_clear)},
    {Py_tp_methods, Lifecycle_methods},
    {Py_tp_getset, Lifecycle_getset},
    {Py_tp_doc, const_cast<char*>("Base of flopdispatch's context managers: atomic install and removal.")},
    {0, nullptr}};

PyType_Spec Lifecycle_spec = {"flopdispatch._C.Lifecycle", sizeof(LifecycleObject), 0,
                              Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, Lifecycle_slots};

PyMethodDef run_steps_def = {"run_steps", run_steps, METH_O,
                             "run_steps([(callable, args), ...]): call each in order, in one C call."};

}  // namespace

PyObject* make_lifecycle_type() { return PyType_FromSpec(&Lifecycle_spec); }

PyObject* make_run_steps() { return PyCFunction_New(&run_steps_def, nullptr); }

}  // namespace fd
