"""Formulas you register: ``fd.formula`` and ``fd.Cost``, for work the op table does not know.

An op formula prices a custom op (``torch.library.custom_op``, a vendor op) or overrides an aten
op; it receives the op's own arguments (real, meta or fake tensors) and returns a ``Cost``. A
module formula adds the cost of work the dispatcher never sees (a Triton kernel launched directly,
numpy or ctypes code) to a module class, after each call of it; the aten ops the module does run
are still counted. Errors in a formula are reported per op (``count.unsupported`` and
``unsupported_reasons``), never raised into the user's program.
"""
from __future__ import annotations

import dataclasses
import operator
from typing import Callable, Dict, Optional, Tuple

import torch

__all__ = ["Cost", "formula", "remove_formula"]


@dataclasses.dataclass(frozen=True)
class Cost:
    """The cost of one call, in operations and bytes (Python ints of any size, none negative).

    macs: multiply-accumulates in matmul-like work. flops: floating-point operations (None: 2 x macs).
    bytes_read / bytes_written: bytes moved (None: as for an aten op, the sizes of the tensor
    arguments and of the tensor outputs).
    """

    flops: Optional[int] = None
    macs: int = 0
    bytes_read: Optional[int] = None
    bytes_written: Optional[int] = None


class _Formula:
    """A registered formula: the user's function and what it prices."""

    __slots__ = ("fn", "kind", "name", "builtin", "__weakref__")

    def __init__(self, fn, kind, name, builtin=False):
        self.fn, self.kind, self.name, self.builtin = fn, kind, name, builtin

    def __repr__(self):
        return f"<flopdispatch formula for {self.name}>"


# (qualified op name, overload or None for every overload) -> _Formula
_OP_FORMULAS: Dict[Tuple[str, Optional[str]], _Formula] = {}
# flopdispatch's own formulas (flex_attention), used where no user formula is registered
_BUILTIN_OP_FORMULAS: Dict[Tuple[str, Optional[str]], _Formula] = {}
# module class -> _Formula; subclasses inherit their nearest registered base's formula
_MODULE_FORMULAS: Dict[type, _Formula] = {}
_MODULE_LOOKUP: Dict[type, Optional[_Formula]] = {}  # per concrete class, cleared on every change


def _op_key(target) -> Tuple[str, Optional[str]]:
    """(qualified name, overload or None) of an op target; TypeError/ValueError for a bad one."""
    if isinstance(target, str):
        name, dot, overload = target.partition(".")
        ns, sep, base = name.partition("::")
        if not sep or not ns or not base or (dot and not overload):
            raise ValueError(f"fd.formula: op name {target!r} must look like 'namespace::op' or "
                             "'namespace::op.overload'")
        return name, overload or None
    if isinstance(target, torch._ops.OpOverload):
        return target._schema.name, target._overloadname
    if isinstance(target, torch._ops.OpOverloadPacket):
        return target._qualified_op_name, None
    custom = getattr(torch._library.custom_ops, "CustomOpDef", None)
    if custom is not None and isinstance(target, custom):
        return target._qualname, None
    if isinstance(target, torch._ops.HigherOrderOperator):
        return f"{target.namespace}::{target._name}", None
    raise TypeError("fd.formula: the target must be an op name ('mylib::op'), an OpOverload, an "
                    "OpOverloadPacket, a custom op or an nn.Module subclass; got "
                    f"{type(target).__name__} {target!r}")


def _is_module_class(target) -> bool:
    return isinstance(target, type) and issubclass(target, torch.nn.Module)


def formula(target, fn: Optional[Callable] = None, *, _builtin: bool = False):
    """Register a cost formula; use as a decorator: ``@fd.formula("mylib::fused_mm")``.

    target: an op (its name ``"namespace::op"`` or ``"namespace::op.overload"``, an OpOverload,
    an OpOverloadPacket, a ``torch.library.custom_op``) whose formula gets the op's own arguments,
    ``fn(*args, **kwargs)``; or an ``nn.Module`` subclass whose formula gets
    ``fn(module, args, output)`` after each forward call. ``fn`` returns a ``Cost``. A new
    registration replaces an earlier one for the same target (an aten op's built-in formula too).
    An op formula applies at once, in counts already open too; a module formula from the next
    ``count`` entered (the hook that applies it is installed only while some are registered).
    Returns ``fn``.
    """
    if _is_module_class(target):
        key = None
    elif isinstance(target, type):
        raise TypeError(f"fd.formula: {target.__qualname__} is a class but not an nn.Module subclass")
    else:
        key = _op_key(target)  # a bad target fails here, before any function is given
    if fn is None:
        return lambda f: formula(target, f, _builtin=_builtin)
    if not callable(fn):
        raise TypeError(f"fd.formula: expected a callable, got {type(fn).__name__}")
    if key is None:
        _MODULE_FORMULAS[target] = _Formula(fn, "module", f"module::{target.__qualname__}", _builtin)
        _MODULE_LOOKUP.clear()
        return fn
    name, overload = key
    (_BUILTIN_OP_FORMULAS if _builtin else _OP_FORMULAS)[(name, overload)] = _Formula(fn, "op", name, _builtin)
    _refresh()
    return fn


def remove_formula(target) -> bool:
    """Remove the formula registered for ``target`` (as given to ``formula``); False if none was.
    A built-in formula (flex_attention's) that it replaced applies again."""
    if _is_module_class(target):
        found = _MODULE_FORMULAS.pop(target, None) is not None
        _MODULE_LOOKUP.clear()
        return found
    found = _OP_FORMULAS.pop(_op_key(target), None) is not None
    if found:
        _refresh()
    return found


_ON_CHANGE = []
"""Callables run after every change of the op formulas: ``_core`` adds its op table's refresh
(the cached resolutions must see the change) when it loads. A listener, not an import of ``_core``:
``_core`` imports this module, so imports point one way."""


def _refresh():
    for listener in _ON_CHANGE:
        listener()


def op_formula(name: str, overload: Optional[str]) -> Optional[_Formula]:
    """The formula for an op overload: the user's (the overload's own first), else a built-in one."""
    for table in (_OP_FORMULAS, _BUILTIN_OP_FORMULAS):
        found = table.get((name, overload)) or table.get((name, None))
        if found is not None:
            return found
    return None


def module_formula(cls: type) -> Optional[_Formula]:
    """The formula for a module class: its own, or its nearest registered base class's."""
    try:
        return _MODULE_LOOKUP[cls]
    except KeyError:
        pass
    found = next((_MODULE_FORMULAS[c] for c in cls.__mro__ if c in _MODULE_FORMULAS), None)
    _MODULE_LOOKUP[cls] = found
    return found


def has_module_formulas() -> bool:
    return bool(_MODULE_FORMULAS)


# ----- pricing one call (called by the compiled recorder) -----------------------------------------

def _amount(value, field):
    from ._reference import _concrete

    if isinstance(value, bool) or not isinstance(value, (int, torch.SymInt)):
        try:
            value = operator.index(value)  # numpy integers
        except TypeError:
            raise TypeError(f"Cost.{field} must be an integer, got {type(value).__name__} {value!r}") from None
    value = int(_concrete(value))
    if value < 0:
        raise ValueError(f"Cost.{field} must not be negative, got {value}")
    return value


def _tensor_bytes(tree) -> int:
    from ._reference import _concrete

    total = 0
    for leaf in torch.utils._pytree.tree_leaves(tree):
        if isinstance(leaf, torch.Tensor):
            total += leaf.numel() * leaf.element_size()
    return int(_concrete(total))


def _default_bytes(f: _Formula, args, kwargs, out):
    if f.kind == "module":
        return _tensor_bytes(args[1]), _tensor_bytes(args[2])
    from . import _reference

    read, written = _reference.bytes_moved(args, kwargs, out, -1)
    return _reference._concrete(read), _reference._concrete(written)


_FIELDS = ("flops", "macs", "masked_macs", "bytes_read", "bytes_written")


def _checked(f: _Formula, result, args, kwargs, out):
    """(flops, macs, masked_macs, bytes_read, bytes_written) from a formula's result."""
    if not isinstance(result, Cost):
        raise TypeError(f"a formula must return flopdispatch.Cost, got {type(result).__name__}")
    macs = _amount(result.macs, "macs")
    flops = 2 * macs if result.flops is None else _amount(result.flops, "flops")
    read, written = result.bytes_read, result.bytes_written
    if read is None or written is None:
        default_read, default_written = _default_bytes(f, args, kwargs, out)
        read = default_read if read is None else read
        written = default_written if written is None else written
    return flops, macs, 0, _amount(read, "bytes_read"), _amount(written, "bytes_written")


def user_cost(f: _Formula, args, kwargs, out):
    """Price one call with a registered formula: five ints, or the error message as a str.

    Exceptions are returned as messages (the call is reported, the program goes on); a
    BaseException that is not an Exception (KeyboardInterrupt, SystemExit) propagates.
    """
    try:
        if f.builtin:  # flopdispatch's own formulas (flex_attention): (args, kwargs, out) -> 5 ints
            return tuple(_amount(v, n) for v, n in zip(f.fn(args, kwargs, out), _FIELDS))
        return _checked(f, f.fn(*args, **(kwargs or {})), args, kwargs, out)
    except Exception as e:  # noqa: BLE001 - reported per op, never raised into the user's program
        return f"{f.name} formula raised {type(e).__name__}: {e}"
