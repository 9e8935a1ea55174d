"""The one module that touches the compiled core (``flopdispatch._C``).

It installs the op resolver (aten op -> declaration from ``_ops.TABLE``), the symbolic-shape
fallback (the Python reference) and torch's autograd probes into the core, and re-exports the
``Recorder`` base type.
"""
import torch

from . import _C, _reference, user
from ._ops import TABLE

Recorder = _C.Recorder
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
    it, so calling it directly saves a Python frame per op); any other operator itself.
    """
    if isinstance(func, user._Formula):  # a module formula's record (its key is the formula)
        return func.name, FAMILY_IDS["unsupported"], (), (), -1, _module_formula_output, func
    try:
        name, family, params, arg_names, overwritten = declaration(func)
        formula = user.op_formula(name, getattr(func, "_overloadname", None))
    except Exception:  # noqa: BLE001 - a malformed op must not break the user's program
        name, family, params, arg_names, overwritten = str(func), "unsupported", (), (), -1
        formula = None
    call = func._op if type(func) is torch._ops.OpOverload and callable(getattr(func, "_op", None)) else func
    return name, FAMILY_IDS[family], params, arg_names, overwritten, call, formula


def refresh():
    """Make every cached op resolution see the current user formulas (fd.formula)."""
    _C.refresh_ops()


def python_cost(func, args, kwargs, out):
    """(flops, macs, masked_macs, bytes_read, bytes_written) from the Python reference."""
    _, family, params, arg_names, overwritten = declaration(func)
    flops, macs, masked = _reference.cost(family, params, arg_names, args, kwargs, out)
    read, written = _reference.bytes_moved(args, kwargs, out, overwritten)
    return flops, macs, masked, _reference._concrete(read), _reference._concrete(written)


def compiled_cost(func, args, kwargs, out):
    """(flops, macs, masked_macs) from the compiled families (for tests and comparisons)."""
    return _C.compute(func, tuple(args), kwargs or None, out)


_sequence_nr = getattr(torch._C._autograd, "_get_sequence_nr", None)
_C.set_hooks(_resolve, python_cost, torch._C._current_autograd_node, _sequence_nr)
_C.set_user_hook(user.user_cost)
