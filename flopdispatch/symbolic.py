"""``fd.symbolic``: FLOPs, MACs and bytes as exact polynomials in named dimensions.

The model runs once on fake tensors whose named dimensions are symbols of a ``ShapeEnv`` (no data,
no memory, no ``torch.compile``). Every op is priced twice by the one Python reference
(``_reference.py``): at the traced sizes, for the ordinary count that backs the result, and with
its sizes kept symbolic, which gives the op's cost as a sympy expression. The expressions are
summed per module scope, phase and op, and rolled up like a normal count's integers.

Sizes the model's own code compares (``if seq > 1``) add guards: the formulas hold where the guards
hold (``SymbolicCount.guards``). A dimension the code pins to its traced value is reported in
``SymbolicCount.specialized`` (with the guard and the op that pinned it), never silently turned
into a constant.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import os
import traceback
import warnings
from typing import Dict, List, Mapping, Optional

import torch

from . import _core, _reference
from .counter import PHASES, Counts, count

__all__ = ["symbolic", "SymbolicCount", "SymbolicCounts", "NOT_SYMBOLIC", "dims_from_tensors"]

# Ops and families whose cost cannot be an expression in the named dimensions (README, "Planning
# numbers"); tests/api/test_symbolic.py checks the data-dependent, FFT, user-formula and fake-kernel
# entries (sparse products read _nnz(), a value only the data has).
NOT_SYMBOLIC = {
    "data-dependent sizes": "ops whose output size depends on tensor values (aten::nonzero, masked_select, "
                            "unique, repeat_interleave with a tensor of repeats, item/_local_scalar_dense): "
                            "under fake tensors they pin their input's dims (reported in `specialized`), or "
                            "give sizes with no value (reported in `not_symbolic`)",
    "fft over a symbolic length": "PyTorch's fake FFT kernels read their input's sizes as ints (every dim "
                                  "of the input is pinned, the batch too, reported in `specialized`), and the count's "
                                  "integer log2 of "
                                  "the length (5 n log2 n, the C++'s bit steps) has no closed form in a symbol",
    "sparse stored elements": "sparse products count stored elements (_nnz()), which only the data knows",
    "user formulas": "fd.formula costs are Python functions of concrete sizes: priced at the traced size only",
    "pytorch fake kernels": "torch 2.13's fake kernels pin the dims of nn.GRU and bilinear/bicubic interpolation "
                            "(reported in `specialized`) and cannot run nn.LSTM's CPU kernel or nn.Bilinear's "
                            "_trilinear on symbolic sizes (PyTorch's error is raised): not formula limits",
}


def _sympy():
    import sympy

    return sympy


def _close(name, choices) -> str:
    """'; did you mean X?' for a mistyped name, or the names there are."""
    choices = sorted(choices)
    close = difflib.get_close_matches(str(name), choices, n=3, cutoff=0.6)
    if close:
        return "; did you mean " + " or ".join(close) + "?"
    return f"; the dims are {', '.join(choices)}" if choices else "; there are no dims"


def _check_sizes(sizes, dims):
    """Sizes for at()/retrace(): known dim names (when the dims are known), ints >= 1."""
    for name, value in sizes.items():
        if dims and name not in dims:
            raise ValueError(f"fd.symbolic: no dim named {name!r}{_close(name, dims)}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"fd.symbolic: {name}={value!r}: a size is an int >= 1")


@dataclasses.dataclass(frozen=True)
class SymbolicCounts:
    """Work as sympy expressions in the named dimensions (same units as ``Counts``).

    flops, macs, bytes_read, bytes_written: exact polynomials (operations, bytes); causal_macs:
    MACs with causally masked scores skipped (may hold ``Piecewise`` for query/key lengths that
    differ). ``at(batch=8, seq=512)`` evaluates them to a ``Counts`` of ints.
    """

    flops: object = 0
    macs: object = 0
    bytes_read: object = 0
    bytes_written: object = 0
    causal_macs: object = 0
    calls: int = 0
    dims: tuple = dataclasses.field(default=(), compare=False, repr=False)  # the names at() takes
    fixed: tuple = dataclasses.field(default=(), compare=False, repr=False)  # (name, size): dims set by retrace

    @property
    def bytes(self):
        return _sympy().expand(self.bytes_read + self.bytes_written)

    def at(self, **sizes) -> Counts:
        """The integer counts at the given sizes of the named dimensions (each >= 1). The
        polynomials hold for dims >= 2 (PyTorch specializes sizes 0 and 1): a size of 1 warns here;
        ``SymbolicCount.at`` retraces for it instead."""
        sympy = _sympy()
        fixed = dict(self.fixed)
        for n, v in sizes.items():
            if n in fixed and v != fixed[n]:
                raise ValueError(f"fd.symbolic: {n} is fixed at {fixed[n]} in this result, not {v}")
        sizes = {n: v for n, v in sizes.items() if n not in fixed}
        _check_sizes(sizes, self.dims)
        ones = [n for n, v in sizes.items() if v == 1]
        if ones:
            warnings.warn(f"fd.symbolic: these polynomials hold for {', '.join(f'{n} >= 2' for n in ones)} "
                          "(PyTorch specializes size 1); bytes can differ at 1 (a reshape that copies at 2 "
                          "can be a view at 1): use SymbolicCount.at(...) or .retrace("
                          + ", ".join(f"{n}=1" for n in ones) + ") for exact counts there",
                          UserWarning, stacklevel=2)
        subs = {sympy.Symbol(k, positive=True, integer=True): int(v) for k, v in sizes.items()}

        def value(e):
            v = sympy.sympify(e).subs(subs)
            if not v.is_number:
                raise ValueError(f"no size given for {sorted(map(str, v.free_symbols))}")
            if v != int(v):
                raise ValueError(f"{e} is not an integer at {sizes}")
            return int(v)

        return Counts(flops=value(self.flops), macs=value(self.macs), bytes_read=value(self.bytes_read),
                      bytes_written=value(self.bytes_written), causal_macs=value(self.causal_macs), calls=self.calls)

    def as_dict(self) -> dict:
        """Expressions as strings (sympy syntax: ``sympy.sympify`` reads them back)."""
        return {"flops": str(self.flops), "macs": str(self.macs), "bytes_read": str(self.bytes_read),
                "bytes_written": str(self.bytes_written), "bytes": str(self.bytes),
                "causal_macs": str(self.causal_macs), "calls": self.calls}


class _Sum:
    """Terms of one (scope, phase, op), summed once when read."""

    __slots__ = ("terms", "calls")

    def __init__(self):
        self.terms = [[], [], [], [], []]  # flops, macs, masked, read, written
        self.calls = 0


# ----- symbols and fake inputs -------------------------------------------------------------------


def _dim_source(name):
    from torch._guards import GuardSource, Source

    @dataclasses.dataclass(frozen=True)
    class DimSource(Source):
        """A named dimension given to fd.symbolic (what guards on it are reported against)."""

        dim: str

        @property
        def name(self):
            return self.dim

        def guard_source(self):
            return GuardSource.CONSTANT

        def reconstruct(self, codegen):
            raise NotImplementedError

    return DimSource(name)


def _parse_dtype(d):
    """A dtype, or None (not given: the model's default for that input)."""
    if d is None:
        return None
    if isinstance(d, torch.dtype):
        return d
    found = getattr(torch, str(d), None)
    if not isinstance(found, torch.dtype):
        raise ValueError(f"fd.symbolic: unknown dtype {d!r}")
    return found


def _input_spec(spec):
    """(shape entries, dtype or None) of one input: ("batch", "seq"), (("batch", 3), torch.int64),
    {"shape": ..., "dtype": ...} or "batch,seq:int64"."""
    if isinstance(spec, str):
        shape, _, dtype = spec.partition(":")
        # "batch,seq" (commas: names may hold an x), "2x128", or one name
        parts = [p.strip() for p in (shape.split(",") if "," in shape or shape.strip().isidentifier()
                                     else shape.split("x"))]
        return [int(p) if p.isdigit() else p for p in parts if p], _parse_dtype(dtype or None)
    if isinstance(spec, Mapping):
        return list(spec["shape"]), _parse_dtype(spec.get("dtype"))
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[0], (tuple, list)):
        return list(spec[0]), _parse_dtype(spec[1])
    if isinstance(spec, (tuple, list)):
        return list(spec), None
    raise TypeError(f"fd.symbolic: an input is a shape such as ('batch', 'seq'), a (shape, dtype) pair or a "
                    f"'batch,seq:int64' string; got {type(spec).__name__}")


def _one_input(spec):
    """Whether ``inputs`` is one input (a shape, a (shape, dtype) pair, a string, a tensor) rather
    than a list of them."""
    if isinstance(spec, (str, torch.Tensor, Mapping)):
        return True
    if not isinstance(spec, (tuple, list)) or not spec:
        return False  # [] or (): no positional inputs
    if len(spec) == 2 and isinstance(spec[0], (tuple, list)) and isinstance(spec[1], (torch.dtype, str)):
        return True  # (shape, dtype)
    return all(isinstance(e, (int, str)) for e in spec)  # a shape


# ----- the result --------------------------------------------------------------------------------


class SymbolicCount:
    """FLOPs, MACs and bytes of one run as sympy expressions in the named dimensions.

    ``flops``, ``macs``, ``bytes``...: totals; ``phase(name)``, ``module(name, phase=None,
    exclusive=False)``, ``ops()``: the same breakdowns as a ``count`` (``SymbolicCounts``).
    ``dims``: {name: sympy Symbol}; ``traced``: the sizes the model ran at; ``count``: the ordinary
    count at those sizes. ``guards``: conditions on the dims the formulas assume; ``specialized``:
    dims the model pinned to their traced size, with why; ``not_symbolic``: ops whose cost has no
    expression (left out of every expression, see ``NOT_SYMBOLIC``); ``unsupported``: as ``count``;
    ``dropped``: {op: calls} run only because sizes are symbolic (left out: eager never runs them).
    ``fixed``: dims set to a size rather than kept symbolic (by ``retrace``).

    The expressions hold for every dim >= 2 (``guards`` says so): PyTorch specializes sizes 0 and 1,
    and at 1 a reshape that copies at 2 can be a view, so the bytes differ. ``at()`` with a dim at 1
    retraces with that dim fixed at 1 (exact there); ``retrace(batch=1)`` gives that whole result.
    """

    def __init__(self, c, dims, traced, sums, guards, specialized, not_symbolic, dropped=None, recipe=None,
                 fixed=None):
        self.count, self.dims, self.traced = c, dims, traced
        self.guards, self.specialized, self.not_symbolic = guards, specialized, not_symbolic
        self.dropped = dict(dropped or {})
        self.fixed = dict(fixed or {})
        self._sums = sums  # (scope, phase name, op name) -> SymbolicCounts
        self._cache = {}
        self._recipe = recipe  # what _trace needs to run the model again (retrace)
        self._retraced = {}

    @property
    def unsupported(self) -> Dict[str, int]:
        return self.count.unsupported

    def _add(self, rows):
        sympy = _sympy()
        rows = list(rows)
        fields = [sympy.expand(sympy.Add(*[getattr(r, f) for r in rows])) for f in
                  ("flops", "macs", "bytes_read", "bytes_written", "causal_macs")]
        return SymbolicCounts(*fields, calls=sum(r.calls for r in rows), dims=tuple(self.dims),
                              fixed=tuple(self.fixed.items()))

    def _select(self, phase=None, module=None, exclusive=False, op=None):
        key = (phase, module, exclusive, op)
        if key not in self._cache:
            res = self.count._res()
            scopes = None
            if module is not None:
                idx = self.count._module_index(module)
                if exclusive:  # the results engine's scopes (flopdispatch.results): one attribution rule
                    scopes = {s for s, m in enumerate(res._scope_module) if m == idx}
                else:
                    scopes = {s for s, path in enumerate(res._scope_path) if idx in path}
            self._cache[key] = self._add(v for (s, p, o), v in self._sums.items()
                                         if (phase is None or p == phase) and (scopes is None or s in scopes)
                                         and (op is None or o == op))
        return self._cache[key]

    @property
    def totals(self) -> SymbolicCounts:
        return self._select()

    flops = property(lambda self: self.totals.flops, doc="Total FLOPs, an expression in the dims.")
    macs = property(lambda self: self.totals.macs, doc="Total MACs.")
    bytes_read = property(lambda self: self.totals.bytes_read)
    bytes_written = property(lambda self: self.totals.bytes_written)
    bytes = property(lambda self: self.totals.bytes, doc="Bytes read plus written.")
    causal_macs = property(lambda self: self.totals.causal_macs)

    def phase(self, name: str) -> SymbolicCounts:
        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r}; expected one of {', '.join(PHASES)}")
        return self._select(phase=name)

    def module(self, name: str = "", phase: Optional[str] = None, exclusive: bool = False) -> SymbolicCounts:
        """One module's work (inclusive of its children unless ``exclusive``), optionally one phase."""
        if phase is not None and phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
        return self._select(phase=phase, module=name, exclusive=exclusive)

    @property
    def module_names(self) -> List[str]:
        return self.count.module_names

    def ops(self, phase: Optional[str] = None) -> Dict[str, SymbolicCounts]:
        names = sorted({o for (_, p, o) in self._sums if phase is None or p == phase})
        return {o: self._select(phase=phase, op=o) for o in names}

    def at(self, **sizes) -> Counts:
        """Total integer counts at the given sizes (``at(batch=8, seq=2048)``), exact at every size
        >= 1: a dim at 1 is counted by a retrace with it fixed at 1 (see the class)."""
        sizes = self._unfixed(sizes)
        _check_sizes(sizes, self.dims)
        ones = {n: 1 for n, v in sizes.items() if v == 1}
        if not ones:
            return self.totals.at(**sizes)
        rest = {n: v for n, v in sizes.items() if v != 1}
        return self.retrace(**ones).totals.at(**rest)

    def _unfixed(self, sizes):
        """``sizes`` without the dims this result has fixed (a fixed dim given another size: an error)."""
        for n, v in sizes.items():
            if n in self.fixed and v != self.fixed[n]:
                raise ValueError(f"fd.symbolic: {n} is fixed at {self.fixed[n]} in this result, not {v}")
        return {n: v for n, v in sizes.items() if n not in self.fixed}

    def retrace(self, **sizes) -> "SymbolicCount":
        """The model run again: a dim given 1 is fixed at 1 (no longer symbolic: PyTorch
        specializes it), a dim given >= 2 is traced at that size (still symbolic). ``retrace(batch=1,
        seq=128).count`` is the ordinary count at those sizes. Cached; ``self`` when nothing changes."""
        sizes = self._unfixed(sizes)
        _check_sizes(sizes, self.dims)
        hints = {n: sizes.get(n, h) for n, h in self.traced.items()}
        if hints == self.traced:
            return self
        if self._recipe is None:
            raise ValueError("fd.symbolic: this result cannot be retraced (it keeps no model)")
        key = tuple(sorted(hints.items()))
        if key not in self._retraced:
            fixed = {**self.fixed, **{n: 1 for n, v in hints.items() if v == 1}}
            traced = {n: v for n, v in hints.items() if v != 1}
            self._retraced[key] = _trace(self._recipe, traced, fixed)
        return self._retraced[key]

    def to_dict(self, depth=None) -> dict:
        """JSON-able: every expression as a string (the report's ``symbolic`` field)."""
        names = self.count.module_names
        if depth is not None:
            names = [n for n in names if (n.count(".") + 1 if n else 0) <= depth]
        return {
            "dims": {n: {"traced": self.traced[n]} for n in self.dims},
            "totals": self.totals.as_dict(),
            "phases": {p: self.phase(p).as_dict() for p in PHASES if any(k[1] == p for k in self._sums)},
            "modules": {n: self.module(n).as_dict() for n in names},
            "guards": list(self.guards),
            "specialized": dict(self.specialized),
            "not_symbolic": dict(self.not_symbolic),
            "dropped": dict(self.dropped),
        }

    def table(self, depth=2, field: str = "flops", notes: bool = True) -> str:
        """The module tree with one expression per phase (``field``: flops, macs or bytes); with
        ``notes``, the guards, specialized dims and ops left out below it."""
        if field not in ("flops", "macs", "bytes", "bytes_read", "bytes_written", "causal_macs"):
            raise ValueError(f"unknown field {field!r}")
        phases = [p for p in PHASES if any(k[1] == p for k in self._sums)]
        rows, names = [], self.count.module_names
        container = False

        def shown(n, phase):
            # a container never called itself (a ModuleList) holds its children's work (the results
            # engine's attribution rule); the engine says whether it is one
            return getattr(self.module(n, phase=phase), field), self.count.display_counts(n)[1]

        for n in names:
            level = n.count(".") + 1 if n else 0
            if depth != "all" and level > depth:
                continue
            cells = [shown(n, None)] + [shown(n, p) for p in phases]
            star = cells[0][1]
            container = container or star
            rows.append(("  " * level + (n.rpartition(".")[2] if n else "(root)") + ("*" if star else ""),
                         [str(v) for v, _ in cells]))
        rows.append(("total", [str(getattr(self.totals, field))]
                     + [str(getattr(self.phase(p), field)) for p in phases]))
        head = ("module", [field] + list(phases))
        keep = [0] + [i + 1 for i, p in enumerate(phases) if any(r[1][i + 1] != "0" for r in rows)]
        table = [(name, [cells[k] for k in keep]) for name, cells in [head] + rows]
        widths = [max(len(r[0]) for r in table)] + [max(len(r[1][i]) for r in table) for i in range(len(keep))]
        lines = [f"{field} as polynomials in {', '.join(self.dims)} (traced at "
                 + ", ".join(f"{k}={v}" for k, v in self.traced.items())
                 + "".join(f"; {k} fixed at {v}" for k, v in self.fixed.items()) + ")", ""]
        for n, (name, cells) in enumerate(table):
            text = f"{name:<{widths[0]}}  " + "  ".join(f"{c:<{w}}" for c, w in zip(cells, widths[1:]))
            lines.append(text.rstrip())
            if n == 0 or n == len(table) - 2:
                lines.append("-" * (sum(widths) + 2 * len(widths)))
        if container:
            lines.append("* not called itself (a container such as ModuleList): the sum of its children")
        if not notes:
            return "\n".join(lines)
        for title, items in (("guards (the formulas assume)", self.guards),
                             ("SPECIALIZED (pinned to the traced size)",
                              [f"{k}: {v}" for k, v in self.specialized.items()]),
                             ("not symbolic (left out of the expressions)",
                              [f"{k}: {v}" for k, v in self.not_symbolic.items()]),
                             ("unsupported ops", [f"{k}: {v} calls" for k, v in self.unsupported.items()]),
                             ("left out (run only because sizes are symbolic)",
                              [f"{k}: {v} calls" for k, v in self.dropped.items()])):
            if items:
                lines.append(f"{title}:")
                lines.extend(f"  {i}" for i in items)
        return "\n".join(lines)

    def __repr__(self):
        return f"SymbolicCount(flops={self.flops}, macs={self.macs}, bytes={self.bytes})"

    def _repr_html_(self):  # Jupyter: the polynomials per module, the notes, the page (flopdispatch.notebook)
        from . import notebook
        from .schema import Report
        report = Report.from_count(self.count)
        report.symbolic = self.to_dict()
        return notebook.symbolic_html(self, report)


# Ops whose fake (meta) kernel reads sizes as ints in torch 2.13, pinning every dim of their input
# to its traced value: run as their PyTorch reference decomposition instead (same output, sizes
# kept symbolic). The op is still counted once, whole, by the counter above this mode.
_PINNING_OPS = ("constant_pad_nd",)


def _unpinning_mode():
    from torch._decomp import decomposition_table
    from torch.utils._python_dispatch import TorchDispatchMode

    table = {}
    for name in _PINNING_OPS:
        packet = getattr(torch.ops.aten, name)
        for overload in packet.overloads():
            op = getattr(packet, overload)
            if op in decomposition_table:
                table[op] = decomposition_table[op]

    class _Unpin(TorchDispatchMode):
        """Between the counter and FakeTensorMode: runs the pinning ops as their decompositions."""

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            run = table.get(func, func)
            return run(*args, **(kwargs or {}))

    return _Unpin()


_SLICE_BACKWARD = torch.ops.aten.slice_backward.default


_TORCH_DIR = os.path.dirname(torch.__file__)


def _caller():
    """', called from FILE:LINE in FUNC': the innermost frame outside torch and flopdispatch."""
    skip = (_TORCH_DIR, os.path.dirname(__file__))
    for frame in reversed(traceback.extract_stack()[:-2]):
        if not frame.filename.startswith(skip) and "transformers" + os.sep + "utils" not in frame.filename:
            return f", called from {frame.filename}:{frame.lineno} in {frame.name}"
    return ""


def _full_slice(args, kwargs):
    """Whether slice_backward(grad, sizes, dim, start, end, step) undoes a slice of the whole dim."""
    sympy = _sympy()
    try:
        _, sizes, dim, start, end, step = (list(args) + [None] * 6)[:6]
        with _reference.symbolic_sizes():
            size = _reference._concrete(sizes[dim])
            start, end, step = (_reference._concrete(v) for v in (start, end, step))
        if start != 0 or step != 1:
            return False
        return (isinstance(end, int) and end >= 2 ** 62) or sympy.simplify(sympy.sympify(end) - size) == 0
    except Exception:  # noqa: BLE001 - anything unexpected: priced as usual
        return False


# ----- the run -----------------------------------------------------------------------------------


def _default_loss(output):
    loss = getattr(output, "loss", None)
    if isinstance(loss, torch.Tensor):
        return loss
    if isinstance(output, (tuple, list)) and output:
        output = output[0]
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        output = logits
    if not isinstance(output, torch.Tensor):
        raise TypeError("fd.symbolic(train=True): give loss_fn=callable(output) -> scalar tensor")
    return output if output.dim() == 0 else output.float().sum()


def symbolic(model: torch.nn.Module, inputs=None, dims: Optional[Mapping[str, int]] = None, *, train: bool = False,
             loss_fn=None, optimizer=None, device="cpu", keyword_inputs=None, **named_inputs) -> SymbolicCount:
    """Count one run of ``model`` with named dimensions kept symbolic; FLOPs, MACs and bytes come
    back as exact polynomials in them.

    ``inputs``: the model's inputs as shapes whose entries are ints or dim names: one shape
    ``("batch", "seq")``, a ``(shape, dtype)`` pair, a ``"batch,seq:int64"`` string, a list of those
    (positional) or a dict of them (keyword arguments); an actual tensor passes as it is. Inputs
    may also be passed by name: ``fd.symbolic(model, dims=..., input_ids=("batch", "seq"))``
    (``keyword_inputs={...}`` for a name this function takes itself, such as ``device``). An input
    without a dtype is token ids (int64) where ``inputs.default_input_dtype`` says so (a token
    model's first input, ``*_ids``), else the model's floating dtype.
    ``dims``: {name: size the model is traced at} (each >= 2: PyTorch pins sizes 0 and 1); every
    name must be used by an input. ``train``: also run backward of ``loss_fn(output)`` (default: the
    output's ``loss``, else the sum of its logits or first tensor); ``optimizer``: a
    callable(params) -> optimizer whose ``step()`` runs after backward. The model's parameters may
    be on any device, meta included: the run uses fake copies on ``device`` (no memory, no data).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"fd.symbolic(model): expected a torch.nn.Module, got {type(model).__name__}")
    if dims is None:
        raise TypeError("fd.symbolic: give dims={name: size to trace at}, e.g. dims={'batch': 2, 'seq': 16}")
    dims = dict(dims)
    if not dims:
        raise ValueError("fd.symbolic: name at least one dimension in dims={'seq': 128, ...}")
    for name, hint in dims.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"fd.symbolic: a dim name must be an identifier, got {name!r}")
        if not isinstance(hint, int) or isinstance(hint, bool) or hint < 2:
            raise ValueError(f"fd.symbolic: dims[{name!r}] = {hint!r}: trace at an int >= 2 "
                             "(PyTorch specializes sizes 0 and 1)")
    keyword = dict(keyword_inputs or {})
    for k, v in named_inputs.items():
        if k in keyword:
            raise ValueError(f"fd.symbolic: input {k!r} is given twice (by name and in keyword_inputs)")
        keyword[k] = v
    if isinstance(inputs, Mapping):
        positional, by_name = [], dict(inputs)
        for k in keyword:
            if k in by_name:
                raise ValueError(f"fd.symbolic: input {k!r} is given twice")
        by_name.update(keyword)
    else:
        positional = [] if inputs is None else [inputs] if _one_input(inputs) else list(inputs)
        by_name = keyword
    if not positional and not by_name:
        raise ValueError("fd.symbolic: give the model's inputs, e.g. fd.symbolic(model, ('batch', 'seq'), dims=...)")
    try:
        inspect.signature(model.forward).bind(*positional, **by_name)
    except TypeError as e:
        options = ("train", "loss_fn", "optimizer", "device", "keyword_inputs", "dims", "inputs")
        close = [o for k in named_inputs for o in difflib.get_close_matches(k, options, n=1, cutoff=0.7)]
        hint = f" (an option of fd.symbolic: {', '.join(close)}?)" if close else ""
        raise TypeError(f"fd.symbolic: {type(model).__name__}.forward: {e}{hint}") from None
    except ValueError:
        pass  # no signature to check against
    used = set()
    for spec in positional + list(by_name.values()):
        if not isinstance(spec, torch.Tensor):
            used.update(e for e in _input_spec(spec)[0] if isinstance(e, str))
    for e in sorted(used - set(dims)):
        raise ValueError(f"fd.symbolic: input dim {e!r} is not in dims{_close(e, dims)}")
    for n in dims:
        if n not in used:
            close = difflib.get_close_matches(n, sorted(used), n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(close)}?" if close else \
                (f"; the inputs use {', '.join(sorted(used))}" if used else "; no input names a dim")
            raise ValueError(f"fd.symbolic: dims names {n!r}, which no input uses{hint}")
    recipe = _Recipe(model, positional, by_name, train, loss_fn, optimizer, device)
    return _trace(recipe, dims, {})


@dataclasses.dataclass
class _Recipe:
    """One call of fd.symbolic: what a trace (and a retrace at other sizes) runs."""

    model: torch.nn.Module
    positional: list
    by_name: dict
    train: bool
    loss_fn: object
    optimizer: object
    device: object


def _float_dtype(model):
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float32


def _trace(recipe: _Recipe, dims: Dict[str, int], fixed: Dict[str, int]) -> SymbolicCount:
    """Run the recipe once with ``dims`` symbolic (traced at their values) and ``fixed`` dims as ints."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv

    from .inputs import default_input_dtype

    sympy = _sympy()
    model, train, loss_fn, optimizer, device = (recipe.model, recipe.train, recipe.loss_fn, recipe.optimizer,
                                                recipe.device)
    env = ShapeEnv()
    sym_of = {n: env.create_symbol(h, _dim_source(n), dynamic_dim=DimDynamic.DYNAMIC) for n, h in dims.items()}
    named = {s: sympy.Symbol(n, positive=True, integer=True) for n, s in sym_of.items()}
    fake = FakeTensorMode(shape_env=env, allow_non_fake_inputs=True)
    float_dtype = _float_dtype(model)

    def size(entry):
        if isinstance(entry, str):
            if entry in fixed:
                return fixed[entry]
            return env.create_symintnode(sym_of[entry], hint=dims[entry])
        return int(entry)

    def make(spec, name, position=0):
        if isinstance(spec, torch.Tensor):
            return spec
        shape, dtype = _input_spec(spec)
        dtype = dtype or default_input_dtype(model, name, position) or float_dtype
        return torch.zeros([size(e) for e in shape], dtype=dtype, device=device)

    with fake:
        args = tuple(make(spec, None, i) for i, spec in enumerate(recipe.positional))
        kwargs = {k: make(v, k) for k, v in recipe.by_name.items()}
        state = {}
        for n, p in model.named_parameters():
            state[n] = torch.empty(p.shape, dtype=p.dtype, device=device).requires_grad_(p.requires_grad)
        for n, b in model.named_buffers():
            state[n] = torch.zeros(b.shape, dtype=b.dtype, device=device)
    opt = optimizer([p for p in state.values() if p.requires_grad]) if optimizer is not None else None

    sums, not_symbolic, guard_ops, dropped = {}, {}, {}, {}
    seen_guards = [0]

    def pricer(func, a, k, out, scope, phase):
        if func is _SLICE_BACKWARD and _full_slice(a, k):
            # Indexing with a full slice (x[:, 0:]) is skipped when sizes are ints; with symbolic
            # sizes PyTorch runs it, and its backward copies the gradient: work no concrete run does.
            dropped["aten::slice_backward"] = dropped.get("aten::slice_backward", 0) + 1
            return 0, 0, 0, 0, 0
        name = _core.op_name(func)
        try:
            concrete = _core.python_cost(func, a, k, out)  # the ordinary count, at the traced sizes
        except Exception as exc:  # the count reports it unsupported; say why it has no expression
            data = "data-dependent" in str(exc)
            not_symbolic.setdefault(name, "size depends on data (an unbacked symbol): no cost at any size" if data
                                    else f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            raise
        try:
            with _reference.symbolic_sizes():
                exprs = _core.python_cost(func, a, k, out)
            exprs = [env.replace(sympy.sympify(e)) for e in exprs]
            stray = set().union(*(e.free_symbols for e in exprs)) - set(sym_of.values())
            if stray:
                raise ValueError(f"size depends on data ({', '.join(sorted(map(str, stray)))})")
        except Exception as exc:  # noqa: BLE001 - reported in not_symbolic, never raised
            not_symbolic.setdefault(name, f"{type(exc).__name__}: {exc}")
            exprs = None
        if exprs is not None:
            acc = sums.get((scope, phase, name))
            if acc is None:
                acc = sums[(scope, phase, name)] = _Sum()
            for terms, e in zip(acc.terms, exprs):
                terms.append(e)
            acc.calls += 1
        if len(env.guards) > seen_guards[0]:
            where = name + _caller()
            for g in env.guards[seen_guards[0]:]:
                guard_ops.setdefault(id(g), where)
            seen_guards[0] = len(env.guards)
        return concrete

    c = count(model)
    with fake, _unpinning_mode():
        c._python_pricer = pricer
        with c:
            out = torch.func.functional_call(model, state, args, kwargs)
            if train:
                loss = (loss_fn or _default_loss)(out)
                loss.backward()
                if opt is not None:
                    opt.step()
    # Guards on the dims, and dims the run pinned to a constant.
    dim_syms = set(sym_of.values())
    to_names = lambda e: env.replace(e).xreplace(named)  # noqa: E731
    guards, specialized = [], {}
    for g in env.guards:
        if not (g.expr.free_symbols & dim_syms):
            continue
        text = str(g.expr.xreplace(named))
        where = f"first op priced after it: {guard_ops.get(id(g), '(none)')}"
        user = getattr(g.sloc, "maybe_user_loc", None)
        frame = getattr(g.sloc, "framework_loc", None)
        if not user and hasattr(frame, "filename") and not frame.filename.startswith(_TORCH_DIR):
            user = frame  # a frame outside torch made the guard (a formula, the model's own code)
        if user:
            if hasattr(user, "filename") and hasattr(user, "lineno"):
                user = f"{user.filename}:{user.lineno} in {getattr(user, 'name', '?')}"
            where += f"; guard at {user}"
        guards.append(f"{text}  ({where})")
        for n, s in sym_of.items():
            if s in g.expr.free_symbols and env.replace(s).is_number and n not in specialized:
                specialized[n] = f"pinned to {env.replace(s)} by the guard {text} ({where})"
    for n, s in sym_of.items():
        if env.replace(s).is_number and n not in specialized:
            specialized[n] = f"pinned to {env.replace(s)} (replacement without a recorded guard)"
    if specialized:
        warnings.warn("fd.symbolic: " + "; ".join(f"{n} {why}" for n, why in specialized.items())
                      + ": the expressions are constant in those dims", UserWarning, stacklevel=3)
    phase_names = PHASES
    totals = {}
    for (scope, phase, name), acc in sums.items():
        f, m, masked, r, w = (sympy.Add(*[to_names(t) for t in terms]) for terms in acc.terms)
        totals[(scope, phase_names[phase], name)] = SymbolicCounts(
            flops=sympy.expand(f), macs=sympy.expand(m), bytes_read=sympy.expand(r), bytes_written=sympy.expand(w),
            causal_macs=sympy.expand(m - masked), calls=acc.calls)
    # Every concrete row must be the expression at the traced sizes: anything else (a user formula,
    # which the recorder prices itself) is reported, never folded in as a constant.
    traced = {named[s]: dims[n] for n, s in sym_of.items()}
    rows, _, ops, _ = c._mode.snapshot()
    concrete = {}
    for scope, phase, op, calls, flops, macs, masked, read, written in rows:
        key = (scope, PHASES[phase], ops[op][0])  # overloads share a name
        concrete[key] = [a + b for a, b in zip(concrete.get(key, (0, 0, 0, 0)), (flops, macs, read, written))]
    for key, want in concrete.items():
        got = totals.get(key)
        have = [int(sympy.sympify(getattr(got, f)).subs(traced)) for f in
                ("flops", "macs", "bytes_read", "bytes_written")] if got is not None else [0, 0, 0, 0]
        if have != want and key[2] not in not_symbolic:
            not_symbolic[key[2]] = "priced outside the Python reference (a user formula?): traced size only"
    # PyTorch's own assumption on every symbolic dim (sizes 0 and 1 are specialized): at 1 the run
    # can differ (a reshape that copies at 2 can be a view at 1, other bytes): SymbolicCount.at retraces.
    guards = [f"{n} >= 2  (PyTorch specializes size 1: at({n}=1) retraces with {n} fixed at 1)"
              for n in dims if n not in specialized] + guards
    return SymbolicCount(c, {n: named[s] for n, s in sym_of.items()}, dict(dims), totals, guards, specialized,
                         not_symbolic, dropped, recipe=recipe, fixed=fixed)


def dims_from_tensors(args, kwargs, names):
    """The command line's ``--symbolic batch,seq``: the input tensors' dims named by position (an
    empty name keeps that dim's size). Returns (positional specs, keyword specs, dims, sizes):
    ``dims`` {name: size to trace at} (a size of 1 is traced at 2: PyTorch pins 1, and the
    polynomial is the same), ``sizes`` {name: the inputs' own size}, for ``retrace(**sizes)``.
    ValueError (one line) for a bad name, a name with two sizes or one no input has."""
    names = [n.strip() for n in names]
    for n in names:
        if n and not n.isidentifier():
            raise ValueError(f"{n!r} is not a name (letters, digits, _)")
    dims, sizes = {}, {}

    def named(tensor):
        entries = []
        for i, size in enumerate(tensor.shape):
            name = names[i] if i < len(names) else ""
            if not name:
                entries.append(size)
                continue
            if sizes.setdefault(name, size) != size:
                raise ValueError(f"{name} has two sizes in the inputs ({sizes[name]} and {size})")
            dims[name] = max(size, 2)
            entries.append(name)
        return (entries, tensor.dtype)

    positional = [named(t) for t in args]
    keyword = {k: named(t) for k, t in kwargs.items()}
    if not dims:
        raise ValueError("name at least one dim, e.g. --symbolic batch,seq")
    unused = [n for n in names if n and n not in dims]
    if unused:
        most = max([t.dim() for t in list(args) + list(kwargs.values())] or [0])
        raise ValueError(f"{unused[0]!r} names dim {names.index(unused[0])} of the inputs, which have at most "
                         f"{most} dims")
    return positional, keyword, dims, sizes
