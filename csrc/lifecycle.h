#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

namespace fd {

// The Lifecycle base type (new reference): atomic install and removal of hooks (lifecycle.cpp).
PyObject* make_lifecycle_type();

// run_steps([(callable, args), ...]) as a Python function (new reference).
PyObject* make_run_steps();

}  // namespace fd
