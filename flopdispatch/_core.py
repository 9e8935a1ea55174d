"""The one module that touches the compiled core (``flopdispatch._C``).

It installs the op resolver (aten op -> declaration from ``_ops.TABLE``), the symbolic-shape
fallback (the Python reference), the decomposition of composite ops and torch's autograd probes
into the core, and re-exports the ``Recorder`` base type.
"""
import functools

import torch
from torch.utils._pytree import tree_leaves, tree_map_only
from torch.utils._python_dispatch import is_traceable_wrapper_subclass

from . import _C, _reference, comm, user
from ._ops import TABLE

Recorder = _C.Recorder
Lifecycle = _C.Lifecycle  # atomic install/removal of hooks (csrc/lifecycle.cpp, issue 20)
run_steps = _C.run_steps  # [(callable, args)] called in one C call
UNDO_FIRST, UNDO_RESULT, UNDO_EXC = 1, 2, 4  # Lifecycle step flags (csrc/lifecycle.cpp)
walk_tree = _C.walk_tree  # count's tree cache (counter.py, issue 14)
FAMILY_IDS = dict(_C.FAMILIES)

# OpOverload -> (name, family, params, arg_names, overwritten); filled on first sight of each op.
_DECLS = {}


def op_name(func):
    """'aten::mm' for aten.mm.default (overloads share the name); 'higher_order::cond' for a HOP."""
    schema = getattr(func, "_schema", None)
    if schema is not None:
        return schema.name
    if isinstance(func, torch._ops.HigherOrderOperator):
        return f"{func.namespace}::{func._name}"
    return str(func)


def _module_formula_output(module, args, output):
    """What 'runs' for a module formula's record: the module's output, unchanged."""
    return output


def declaration(func):
    """The declaration that applies to an op overload: (name, family, params, arg_names, overwritten)."""
    found = _DECLS.get(func)
    if found is not None:
        return found
    name = op_name(func)
    namespace, _, base = name.partition("::")
    overload = getattr(func, "_overloadname", "default")
    entry = TABLE.get(name)
    if entry is None and namespace == "aten":
        inplace_of = base[:-1] if base.endswith("_") else None  # "scatter_.reduce" -> "scatter.reduce"
        for key in (f"{base}.{overload}", base, inplace_of and f"{inplace_of}.{overload}", inplace_of):
            if key and key in TABLE:
                entry = TABLE[key]
                break
    if entry is None:
        entry = ("unsupported", (), -1)
    family, params, overwritten = entry
    schema = getattr(func, "_schema", None)
    arg_names = tuple(a.name for a in schema.arguments) if schema is not None else ()
    found = (name, family, params, arg_names, overwritten)
    _DECLS[func] = found
    return found


def _resolve(func):
    """Called by the core once per op overload; never raises (an odd op becomes unsupported).

    Also returns what runs the op: a plain OpOverload's ``_op`` (its ``__call__`` only forwards to
    it, so calling it directly saves a Python frame per op); any other operator itself; and
    whether the core should offer the op to ``_decompose`` first (an op with no formula).
    """
    if isinstance(func, user._Formula):  # a module formula's record (its key is the formula)
        return func.name, FAMILY_IDS["unsupported"], (), (), -1, _module_formula_output, func
    try:
        name, family, params, arg_names, overwritten = declaration(func)
        formula = user.op_formula(name, getattr(func, "_overloadname", None))
        decompose = family == "unsupported" and formula is None  # offered to _decompose, which decides per call
    except Exception:  # noqa: BLE001 - a malformed op must not break the user's program
        name, family, params, arg_names, overwritten = str(func), "unsupported", (), (), -1
        formula, decompose = None, False
    call = func._op if type(func) is torch._ops.OpOverload and callable(getattr(func, "_op", None)) else func
    try:
        if _has_composite_kernel(func):
            call = _run_whole(func, call)
    except Exception:  # noqa: BLE001
        pass
    return name, FAMILY_IDS[family], params, arg_names, overwritten, call, formula, decompose


def refresh():
    """Make every cached op resolution see the current user formulas (fd.formula)."""
    _C.refresh_ops()


# ----- decomposition of composite ops ----------------------------------------------------------------
#
# Under torch.inference_mode() (and for tensors created in it) the autograd dispatch keys are
# skipped, so a CompositeImplicitAutograd op (conv2d, batch_norm, flatten, to, sdpa...) reaches the
# mode whole instead of as the ops its composite kernel calls. The core offers such an op (no
# formula of its own) to ``_decompose``, which runs the very kernel the dispatcher would run below
# the mode (so the output is the same object, views stay views), with the mode pushed again so that
# each part is dispatched, and counted, by the mode, in the current module scope and phase.

_DK = torch._C.DispatchKey
_CIA = _DK.CompositeImplicitAutograd
_CIA_NESTED = _DK.CompositeImplicitAutogradNestedTensor
_EXPLICIT = (_DK.CompositeExplicitAutograd, _DK.CompositeExplicitAutogradNonFunctional)
_has_kernel = torch._C._dispatch_has_kernel_for_dispatch_key
_RestoreCallerKeys = torch._C._RestorePythonTLSSnapshot
_KERNELS = {}             # (op, backend key) -> composite kernel key that eager runs, or None
DECOMPOSE_FAILURES = {}   # op name -> why its decomposition failed (the op then ran whole)


def _has_composite_kernel(func):
    """Whether an OpOverload has a composite kernel (C++ CompositeImplicitAutograd or its nested variant)."""
    if not isinstance(func, torch._ops.OpOverload):
        return False
    name = func.name()
    return _has_kernel(name, _CIA) or _has_kernel(name, _CIA_NESTED)


def _tensors(tree, found=None):
    """The tensors in an op's arguments (nested tuples, lists and dicts), without pytree's cost."""
    found = [] if found is None else found
    for a in tree:
        if isinstance(a, torch.Tensor):
            found.append(a)
        elif isinstance(a, (list, tuple)):
            _tensors(a, found)
        elif isinstance(a, dict):
            _tensors(a.values(), found)
    return found


def _wrapper_subclass(args, kwargs):
    """The type of the first tensor argument that is a wrapper subclass with its own op handling
    (a jagged nested tensor, ...), or None."""
    for a in _tensors(args, _tensors(kwargs.values()) if kwargs else None):
        if type(a) is not torch.Tensor and type(a) is not torch.nn.Parameter and is_traceable_wrapper_subclass(a):
            return type(a)
    return None


def _backend_key(args, kwargs):
    """The backend dispatch key of the first tensor argument (CPU, CUDA, Meta, NestedTensorCPU...)."""
    for a in args:
        if isinstance(a, (list, tuple)):
            a = next((x for x in a if isinstance(x, torch.Tensor)), None)
        if isinstance(a, torch.Tensor):
            break
    else:
        a = next((v for v in (kwargs or {}).values() if isinstance(v, torch.Tensor)), None)
        if a is None:
            return None
    key = torch._C._dispatch_key_for_device(a.device.type)
    if a.is_nested:
        key = "NestedTensor" + ("CPU" if key == "CPU" else key)
    elif a.is_sparse:
        key = "Sparse" + key
    elif a.is_quantized:
        key = "Quantized" + key
    return torch._C._parse_dispatch_key(key)


def _composite_kernel(func, backend):
    """The composite kernel eager would run for ``func`` on ``backend``, or None (a backend or
    explicit kernel runs instead: the op is what eager runs, and is not decomposed). Cached."""
    cache_key = (func, backend)
    found = _KERNELS.get(cache_key, False)
    if found is not False:
        return found
    name = func.name()
    kernel = None
    if backend is not None and not _has_kernel(name, backend):
        nested = "NestedTensor" in backend.name
        if nested and _has_kernel(name, _CIA_NESTED):
            kernel = _CIA_NESTED
        elif not any(_has_kernel(name, k) for k in _EXPLICIT) and _has_kernel(name, _CIA):
            kernel = _CIA
    _KERNELS[cache_key] = kernel
    return kernel


# Inside __torch_dispatch__ every dispatch key above the mode is excluded. When the dispatcher runs
# a composite kernel itself, the ops it calls still pass through some of those keys, as the caller
# had them: the math-bit fallbacks (lazy conjugation and negation, zero tensors: they redispatch
# without touching the thread's key set) and, unless the op has its own kernel there (which
# excludes the key for what it calls), view tracking (ADInplaceOrView) and autocast. Those keys are
# given back to the parts; everything else stays as the mode has it.
_MATH_BIT_KEYS = (_DK.Conjugate, _DK.Negative, _DK.ZeroTensor)
_GUARDED_KEYS = (_DK.ADInplaceOrView,) + tuple(
    getattr(_DK, k) for k in dir(_DK) if k.startswith("Autocast") and isinstance(getattr(_DK, k), _DK))
_is_excluded = torch._C._dispatch_tls_is_dispatch_key_excluded
_set_excluded = torch._C._dispatch_tls_set_dispatch_key_excluded
_PART_KEYS = {}  # op -> keys its composite kernel's parts pass through when the caller had them


def _part_keys(func):
    keys = _PART_KEYS.get(func)
    if keys is None:
        name = func.name()
        keys = _PART_KEYS[func] = _MATH_BIT_KEYS + tuple(k for k in _GUARDED_KEYS if not _has_kernel(name, k))
    return keys


class _CallerKeys:
    """Within: the keys of ``_part_keys(func)`` that the op's caller had enabled are enabled again."""

    __slots__ = ("keys", "lifted")

    def __init__(self, func):
        self.keys = _part_keys(func)

    def __enter__(self):
        try:
            with _RestoreCallerKeys():  # the thread's key set as the op was called
                wanted = [k for k in self.keys if not _is_excluded(k)]
        except Exception:  # noqa: BLE001 - no snapshot: leave the keys as the mode has them
            wanted = []
        self.lifted = [k for k in wanted if _is_excluded(k)]
        for k in self.lifted:
            _set_excluded(k, False)

    def __exit__(self, *exc):
        for k in self.lifted:
            _set_excluded(k, True)


def _run_whole(func, call):
    """``call`` for a composite op that the mode runs whole (it has a row, or is not decomposed):
    its composite kernel's parts get the caller's keys back (a reshape returns a view of its
    input, conjugate views are materialised as outside the mode)."""

    def run(*args, **kwargs):
        with _CallerKeys(func):
            return call(*args, **kwargs)

    return run


def _decompose(mode, func, args, kwargs):
    """Run an op with no formula as its parts, each dispatched (and counted) by ``mode``.

    A composite op runs its composite kernel; an op on a wrapper subclass (a jagged nested tensor)
    runs the subclass's own implementation, whose ops on its dense values are counted.
    Returns the op's output, or NotImplemented when the op is not decomposed here (the core then
    runs it whole and reports it unsupported). An exception from the decomposition is not raised:
    the op then runs whole (raising its own error, if any) and the failure is reported.
    """
    try:
        subclass = _wrapper_subclass(args, kwargs)
        kernel = None if subclass is not None else _composite_kernel(func, _backend_key(args, kwargs))
    except Exception:  # noqa: BLE001 - an odd argument: run the op whole
        return NotImplemented
    if subclass is not None:
        try:
            with mode:
                return subclass.__torch_dispatch__(func, (subclass,), args, kwargs or {})
        except Exception as exc:  # noqa: BLE001
            DECOMPOSE_FAILURES.setdefault(op_name(func), f"{subclass.__name__} failed: {type(exc).__name__}: {exc}")
            return NotImplemented
    if kernel is None:
        return _run_by_components(mode, func, args, kwargs)
    try:
        with mode, _CallerKeys(func):
            return func._op_dk(kernel, *args, **(kwargs or {}))
    except Exception as exc:  # noqa: BLE001 - reported per op, never raised from here
        DECOMPOSE_FAILURES.setdefault(op_name(func), f"decomposition failed: {type(exc).__name__}: {exc}")
        return NotImplemented


def _run_by_components(mode, func, args, kwargs):
    """An op with no formula on strided nested tensors (matmul of two nested tensors, ...): counted
    as the same op on each component (meta tensors of the components' shapes, dispatched to
    ``mode``), then run whole. NotImplemented when no argument is nested or that count fails."""
    if not _any_nested((args, kwargs)):
        return NotImplemented
    try:
        parts = _components(args, kwargs or {}, None)
        with mode:
            for a, k, _ in parts:
                func(*a, **k)
    except Exception as exc:  # noqa: BLE001 - reported: the op then runs whole, unsupported
        DECOMPOSE_FAILURES.setdefault(op_name(func), f"per-component count failed: {type(exc).__name__}: {exc}")
        return NotImplemented
    return func(*args, **(kwargs or {}))


def unsupported_reason(name):
    """Why an op with no formula was not counted."""
    failure = DECOMPOSE_FAILURES.get(name)
    return f"no formula declared; {failure}" if failure else "no formula declared"


def python_cost(func, args, kwargs, out):
    """(flops, macs, masked_macs, bytes_read, bytes_written) from the Python reference.

    Nested tensors are priced by their valid values: a jagged one (torch.jagged layout) as its
    values tensor; a strided one as the op on each of its components, summed (bytes: its values).
    """
    _, family, params, arg_names, overwritten = declaration(func)
    if _any_nested((args, kwargs, out)):
        args, kwargs, out = tree_map_only(torch.Tensor, _jagged_values, (args, kwargs, out))
    parts = _components(args, kwargs, out) if family not in _NESTED_AWARE and _any_nested((args, kwargs, out)) \
        else [(args, kwargs, out)]
    flops = macs = masked = 0
    for a, k, o in parts:
        f, m, mm = _reference.cost(family, params, arg_names, a, k, o)
        flops, macs, masked = flops + f, macs + m, masked + mm
    read, written = _reference.bytes_moved(args, kwargs, out, overwritten)
    return flops, macs, masked, _reference._concrete(read), _reference._concrete(written)


# ----- nested tensors -----------------------------------------------------------------------------

_NESTED_AWARE = {"encoder_layer"}  # families that read a nested input's sizes themselves


def _any_nested(tree):
    return any(x.is_nested for x in _tensors(tree))


def _jagged_values(t):
    """A jagged nested tensor's values (the valid tokens, [sum of lengths, ...]); others unchanged."""
    values = getattr(t, "_values", None) if t.is_nested and t.layout == torch.jagged else None
    return values if isinstance(values, torch.Tensor) else t


def _components(args, kwargs, out):
    """The call split per component of its (strided) nested tensors: each nested tensor replaced by
    a meta tensor of its i-th component's shape; the other arguments as they are."""
    nested = [x for x in tree_leaves((args, kwargs, out)) if isinstance(x, torch.Tensor) and x.is_nested]
    sizes = {id(t): t._nested_tensor_size().tolist() for t in nested}
    n = len(next(iter(sizes.values())))
    if any(len(v) != n for v in sizes.values()):
        raise ValueError("nested tensors with different numbers of components")

    def part(i):
        def one(t):
            if not t.is_nested:
                return t
            return torch.empty(sizes[id(t)][i], dtype=t.dtype, device="meta")
        return tree_map_only(torch.Tensor, one, (args, kwargs, out))

    return [part(i) for i in range(n)]


def compiled_cost(func, args, kwargs, out):
    """(flops, macs, masked_macs) from the compiled families (for tests and comparisons)."""
    return _C.compute(func, tuple(args), kwargs or None, out)


_sequence_nr = getattr(torch._C._autograd, "_get_sequence_nr", None)
_C.set_hooks(_resolve, python_cost, torch._C._current_autograd_node, _sequence_nr)
_C.set_user_hook(user.user_cost)
user._ON_CHANGE.append(refresh)  # fd.formula / remove_formula refresh the op table
_C.set_decompose_hook(_decompose)
_C.set_comm_hook(functools.partial(comm.record, declaration), getattr(torch._C, "_current_graph_task_id", None))
_C.set_subclass_hook(comm.subclass_dispatch)
