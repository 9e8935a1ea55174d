"""Counting: ``count`` (a context manager around any eager code) and ``profile`` (one call).

Everything per op happens in the compiled recorder; this module wires the dispatch mode and the
module/optimizer hooks, and turns the recorder's flat table into totals per module, phase and op.
"""
from __future__ import annotations

import dataclasses
import threading
import time
import warnings
import weakref
from typing import Dict, List, Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from . import _core, _hops, user
from .report import format_table

PHASES = ("forward", "backward", "optimizer", "other")


def _cuda_event():
    """A CUDA event recorded now on the current stream (timing mode)."""
    event = torch.cuda.Event(enable_timing=True)
    event.record()
    return event


@dataclasses.dataclass(frozen=True)
class Counts:
    """Work done, in operations and bytes.

    flops: floating-point operations (2 per MAC plus every other floating-point op).
    macs: multiply-accumulates in matmul-like ops (mm, bmm, conv, attention products).
    bytes_read / bytes_written: tensor bytes read by ops and written by them (views move nothing).
    causal_macs: MACs with the score positions hidden by causal masks skipped, and for
        flex_attention the block-sparse work (equals macs when no masked attention ran).
    calls: number of counted aten op calls.
    seconds: with ``count(..., timing=True)``, the measured execution time of these ops, in
        seconds (each op call timed alone: the counter's own work is outside; 0.0 otherwise).
    """

    flops: int = 0
    macs: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    causal_macs: int = 0
    calls: int = 0
    seconds: float = 0.0

    @property
    def bytes(self) -> int:
        """Bytes read plus bytes written."""
        return self.bytes_read + self.bytes_written

    @property
    def intensity(self) -> float:
        """Arithmetic intensity, FLOPs per byte moved (0.0 when nothing moved)."""
        return self.flops / self.bytes if self.bytes else 0.0

    @property
    def flops_per_second(self) -> float:
        """Achieved FLOP/s over the measured time (0.0 without timing)."""
        return self.flops / self.seconds if self.seconds else 0.0

    @property
    def macs_per_second(self) -> float:
        return self.macs / self.seconds if self.seconds else 0.0

    @property
    def bytes_per_second(self) -> float:
        return self.bytes / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ModuleCounts(Counts):
    """Inclusive counts of one module (its children included), with its parameter counts.

    ``params``: the subtree's parameters (as ``module.parameters()``: a tied tensor counts in each
    module holding it). ``shared_params``: those of them a module earlier in model order holds too
    (tied weights: GPT-2's ``lm_head`` shares ``transformer.wte``'s); ``params - shared_params``
    counts each tensor once, in the first module holding it, so siblings' figures add up to at
    most their parent's and the root's is ``params``.
    """

    name: str = ""
    type: str = ""
    params: int = 0
    trainable_params: int = 0
    shared_params: int = 0


class _Acc:
    """A mutable (flops, macs, masked_macs, bytes_read, bytes_written, calls, seconds) accumulator."""

    __slots__ = ("v",)

    def __init__(self):
        self.v = [0, 0, 0, 0, 0, 0, 0.0]

    def add(self, row_values):
        v = self.v
        for i, x in enumerate(row_values):
            v[i] += x

    def counts(self, cls=Counts, **extra):
        f, m, masked, r, w, calls, seconds = self.v
        return cls(flops=f, macs=m, bytes_read=r, bytes_written=w, causal_macs=m - masked, calls=calls,
                   seconds=seconds, **extra)


def _subtree_params(modules):
    """{id(module): {id(param): (numel, trainable)}} over each module's subtree, in one bottom-up
    pass (a parameter shared by two subtrees counts in both, once in each, as module.parameters())."""
    out = {}
    for module in reversed(modules):  # named_modules() is pre-order: children come back first
        own = {id(p): (p.numel(), p.requires_grad) for p in module._parameters.values() if p is not None}
        for child in module._modules.values():
            if child is None:
                continue
            sub = out.get(id(child))
            if sub is None:  # a shared child first reached through a later parent
                sub = _subtree_params(list(child.modules()))[id(child)]
            own.update(sub)
        out[id(module)] = own
    return out


# ----- registered-tree cache (issue 14: the per-block fixed cost) ---------------------------------
# What registering a root's module tree derives (names, parents, types, parameter counts and owners,
# tied weights) depends only on the tree, so it is computed once per tree state and reused by every
# later ``count(model)``: entering a block on an unchanged 423-module model is one compiled walk of
# the tree (``_core.walk_tree``) and one recorder call, instead of O(modules x depth) Python work.
#
# Validity: the walk returns the modules in ``named_modules()`` order and a fingerprint (bytes) of
# the tree: every module's type, its children's names and addresses, its parameters' names,
# addresses, requires_grad and numel. All the derived records are a function of these bytes alone
# (an object that died and was replaced by another at the same address, in the same place, with the
# same sizes, registers the same way), so equal bytes mean an equal registration; any change (a child
# added, removed, renamed, replaced or reordered; a parameter replaced, re-tied, frozen or resized; a
# module's class swapped) gives other bytes, and the tree is registered again from scratch. The cache
# is a WeakKeyDictionary by root, and its entries hold no module or tensor.


class _TreeInfo:
    """A root's registered tree, in ``named_modules()`` order (index 0 is the root)."""

    __slots__ = ("fingerprint", "parents", "names", "types", "params", "shared_params", "param_owner",
                 "index_by_name", "tree_ids")


_TREE_CACHE: "weakref.WeakKeyDictionary[torch.nn.Module, _TreeInfo]" = weakref.WeakKeyDictionary()


def _build_tree_info(root, modules, fingerprint):
    """Walk a root's tree in Python (what ``count._register_tree`` records for a first root)."""
    named = list(root.named_modules())
    if len(named) != len(modules) or any(m is not w for (_, m), w in zip(named, modules)):
        return None  # a tree whose named_modules() is not the plain walk: not cached
    subtree = _subtree_params(modules)
    info = _TreeInfo()
    info.fingerprint = fingerprint
    info.names = [n for n, _ in named]
    info.types = [type(m).__name__ for m in modules]
    info.index_by_name = {n: i for i, n in enumerate(info.names)}
    info.parents = [info.index_by_name[n.rpartition(".")[0]] if n else -1 for n in info.names]
    info.tree_ids = frozenset(map(id, modules))
    info.params, owner = [], {}
    for i, m in enumerate(modules):
        values = subtree[id(m)].values()
        info.params.append((sum(n for n, _ in values), sum(n for n, trainable in values if trainable)))
        for p in m._parameters.values():
            if p is not None:
                owner.setdefault(id(p), i)
    info.param_owner = owner
    # Tied weights: a subtree's tensors first held (model order) by a module outside it
    info.shared_params = [0] * len(modules)
    for i, (name, m) in enumerate(named):
        if not name:
            continue
        prefix = name + "."
        for pid, (numel, _) in subtree[id(m)].items():
            o = info.names[owner[pid]]
            if o != name and not o.startswith(prefix):
                info.shared_params[i] += numel
    return info


def _cached_tree(root):
    """(tree info, modules in order) for a root, from the cache when its fingerprint still holds;
    (None, None) for a tree that cannot be cached (then ``_register_tree`` walks it as before)."""
    modules, fingerprint = _core.walk_tree(root)
    info = _TREE_CACHE.get(root)
    if info is not None and info.fingerprint == fingerprint:
        return info, modules
    info = _build_tree_info(root, modules, fingerprint)
    if info is None:
        return None, None
    try:
        _TREE_CACHE[root] = info
    except TypeError:  # a module type that cannot be weakly referenced: no cache
        pass
    return info, modules


class TotalsShortcuts:
    """``flops``, ``macs``, ``bytes_read``, ``bytes_written``, ``causal_macs``: the fields of ``self.totals``."""

    @property
    def flops(self) -> int:
        return self.totals.flops

    @property
    def macs(self) -> int:
        return self.totals.macs

    @property
    def bytes_read(self) -> int:
        return self.totals.bytes_read

    @property
    def bytes_written(self) -> int:
        return self.totals.bytes_written

    @property
    def causal_macs(self) -> int:
        return self.totals.causal_macs


class _CountingMode(_core.Recorder, TorchDispatchMode):
    """The dispatch mode: its ``__torch_dispatch__`` is the compiled recorder's.

    Higher-order ops have their own rules (``_hops``); one created after the block was entered
    reaches ``__torch_dispatch__``, runs, and is reported unsupported.
    """

    supports_higher_order_operators = True

    def __init__(self):
        TorchDispatchMode.__init__(self)

    @classmethod
    def ignore_compile_internals(cls):
        """True only while torch compiles a HOP's own wrapper (torch.cond, scan, map,
        flex_attention...): it then captures the user's functions as graphs, as without the counter,
        and the HOP runs under its counting rule. A user's torch.compile still runs eagerly."""
        return _hops.in_hop_compile()


def _module_formula_hook(mode):
    """A global forward hook adding a module formula's cost (fd.formula) to the module just run,
    in the current scope and phase (it runs before the hook that leaves the module's scope)."""
    from torch.utils._python_dispatch import _get_current_dispatch_mode, _pop_mode_temporarily

    owner = threading.get_ident()  # a count belongs to the thread that entered it

    def hook(module, args, output):
        f = user.module_formula(type(module))
        if f is None or threading.get_ident() != owner:
            return None
        if _get_current_dispatch_mode() is mode:  # the formula's own tensor work is not the model's
            with _pop_mode_temporarily():
                mode.__torch_dispatch__(f, (), (module, args, output), None)
        else:
            mode.__torch_dispatch__(f, (), (module, args, output), None)
        return None

    return hook


def _leave_mode(mode, exc_type, exc, tb):
    """Take `mode` off this thread's dispatch mode stack, wherever it is.

    Counts may be exited out of order (generators closed non-LIFO, a manual ``__exit__``): torch's
    own ``__exit__`` pops the top mode, which would end the wrong count and leave this one
    counting. Here the modes above ours are lifted off, ours is exited, and they are put back in
    the same order, so every other count (and any other mode) goes on exactly as before.
    """
    # torch keeps infrastructure modes (FakeTensorMode...) in their own slots beside this stack
    stack = [torch._C._get_dispatch_stack_at(i) for i in range(torch._C._len_torch_dispatch_stack())]
    stack = [m for m in stack if getattr(m, "_mode_key", None) is None]
    if not any(m is mode for m in stack):
        raise RuntimeError("flopdispatch.count exited in a thread other than the one that entered it "
                           "(or its mode was removed by other code): its dispatch mode is not on this "
                           "thread's mode stack")
    if stack[-1] is mode:
        mode.__exit__(exc_type, exc, tb)
        return
    position = next(i for i, m in enumerate(stack) if m is mode)
    above = stack[position + 1:]
    from torch.utils import _python_dispatch as pd

    flags = (pd._is_in_torch_dispatch_mode, pd._is_in_non_infra_torch_dispatch_mode,
             pd._is_in_any_mode_without_ignore_compile_internals)
    for _ in above:
        torch._C._pop_torch_dispatch_stack(None)
    try:
        # The mode right above ours inherits what torch saved as "before ours", so that torch's
        # module-level flags come back right when that mode exits in turn.
        nxt = above[0]
        for attr in ("old_dispatch_mode_flags", "old_non_infra_dispatch_mode_flags",
                     "old_without_ignore_compile_internals_dispatch_mode_flags"):
            mine, theirs = getattr(mode, attr, None), getattr(nxt, attr, None)
            if mine and theirs:
                theirs[-1] = mine[-1]
        mode.__exit__(exc_type, exc, tb)  # pops ours, now the top
    finally:
        for m in above:
            torch._C._push_on_torch_dispatch_stack(m)
        # the modes above are still active: the flags stay as they were
        pd._is_in_torch_dispatch_mode, pd._is_in_non_infra_torch_dispatch_mode = flags[0], flags[1]
        pd._is_in_any_mode_without_ignore_compile_internals = flags[2]
        pd.set_is_in_mode_without_ignore_compile_internals(flags[2])


class count(TotalsShortcuts):
    """Count FLOPs, MACs and bytes of everything run inside the block.

    ``with count(model) as c: model(x)``. With a model, module names are relative to it (``""`` is
    the model itself); without one, the first (outermost) module entered becomes the root. Work
    outside the model's tree is the "other" phase. A count belongs to the thread that enters it:
    other threads' ops, module calls and optimizer steps are not in it (README, "Guarantees").
    ``python_formulas=True`` costs ops with the pure-Python reference (slower; for comparisons).
    ``timing=True`` also measures each op's execution time (CPU: a steady clock around the op
    call; CUDA: events around it, synchronised once when results are read), so that modules and
    phases get seconds, FLOP/s and a roofline comparison; the counter's own work is never timed.
    A ``count`` is entered once; its results stay readable after the block.
    """

    def __init__(self, model: Optional[torch.nn.Module] = None, *, python_formulas: bool = False,
                 timing: bool = False, ignore=()):
        if model is not None and not isinstance(model, torch.nn.Module):
            raise TypeError(f"count(model): expected a torch.nn.Module, got {type(model).__name__}")
        # ignore: module types (isinstance), qualified names or type names ("Embedding"); see ``ignored``
        if isinstance(ignore, (str, type)):
            ignore = [ignore]
        ignore = list(ignore)
        for item in ignore:
            if not (isinstance(item, str) or (isinstance(item, type) and issubclass(item, torch.nn.Module))):
                raise TypeError(f"count(ignore=...): expected nn.Module types or module names, got {item!r}")
        self._ignore_types = tuple(i for i in ignore if isinstance(i, type))
        self._ignore_names = {i for i in ignore if isinstance(i, str)}
        if model is not None and self._ignore_names:
            known = {n for n, _ in model.named_modules()} | {type(m).__name__ for m in model.modules()}
            missing = sorted(self._ignore_names - known)
            if missing:
                import difflib

                close = difflib.get_close_matches(missing[0], sorted(known), n=3)
                raise ValueError(f"count(ignore=...): no module named {missing[0]!r} (nor of that type) in the model"
                                 + (f" (close: {', '.join(map(repr, close))})" if close else ""))
        self._ignored_idx = set()
        self._model = model
        self._python_formulas = bool(python_formulas)
        self._timing = bool(timing)
        self._wall = [0.0, 0.0]
        self._mode = None
        self._handles = []
        self._active = False
        self._entered = False
        self._results = None
        self._names, self._types, self._params, self._shared_params = [], [], [], []
        self._index_by_name: Dict[str, int] = {}
        self._param_owner: Dict[int, int] = {}
        self._root_seen = False
        self._fullgraph = None  # torch.compile's compiled-frame count before the block (see _hops)
        # With a model: whether one of its modules ran, else the first other module that did (a
        # warning at exit: counting one instance while running another leaves every row at zero).
        self._tree_ids = set()
        self._watch = {"tree_ran": False, "foreign": None}

    # ----- module registry -------------------------------------------------------------------------

    def _register_tree(self, root: torch.nn.Module):
        if not self._names and self._adopt_tree(root):  # the first root: from the tree cache (issue 14)
            return
        mode = self._mode
        named = list(root.named_modules())
        subtree = _subtree_params([m for _, m in named])
        added = []
        for name, module in named:
            parent = self._index_by_name[name.rpartition(".")[0]] if name else -1
            idx = mode.add_module(module, parent)
            if idx != len(self._names):
                continue  # already registered under another name
            self._names.append(name)
            self._types.append(type(module).__name__)
            self._index_by_name[name] = idx
            self._tree_ids.add(id(module))
            params = subtree[id(module)].values()
            self._params.append((sum(n for n, _ in params), sum(n for n, trainable in params if trainable)))
            self._shared_params.append(0)
            added.append((idx, name, module))
            if ((self._ignore_types and isinstance(module, self._ignore_types)) or name in self._ignore_names
                    or type(module).__name__ in self._ignore_names):
                self._ignored_idx.add(idx)
            for p in module._parameters.values():
                if p is not None:
                    self._param_owner.setdefault(id(p), idx)
        # Tied weights: a subtree's tensors first held (model order) by a module outside it
        for idx, name, module in added:
            prefix = name + "."
            shared = 0
            for pid, (numel, _) in subtree[id(module)].items():
                owner = self._names[self._param_owner[pid]]
                if name and owner != name and not owner.startswith(prefix):
                    shared += numel
            self._shared_params[idx] = shared
        self._root_seen = True

    def _adopt_tree(self, root: torch.nn.Module):
        """Register the first root from its cached tree (see ``_cached_tree``): the same records as
        the general walk below makes for a first root, copied so that later roots can extend them.
        False (nothing registered) for a tree that cannot be cached."""
        try:
            info, modules = _cached_tree(root)
        except (TypeError, AttributeError):  # a tree the compiled walk does not know how to read
            return False
        if info is None:
            return False
        idx = self._mode.add_modules(modules, info.parents)
        assert idx == 0, "the first root is registered first"
        self._names = list(info.names)
        self._types = list(info.types)
        self._params = list(info.params)
        self._shared_params = list(info.shared_params)
        self._index_by_name = dict(info.index_by_name)
        self._param_owner = dict(info.param_owner)
        self._tree_ids = set(info.tree_ids)
        if self._ignore_types or self._ignore_names:
            for i, (name, module) in enumerate(zip(info.names, modules)):
                if ((self._ignore_types and isinstance(module, self._ignore_types)) or name in self._ignore_names
                        or info.types[i] in self._ignore_names):
                    self._ignored_idx.add(i)
        self._root_seen = True
        return True

    def _on_unknown_module(self, module):
        """Called by the recorder for a module it does not know: adopt the first one as root."""
        if self._root_seen:
            return -1
        self._register_tree(module)
        return 0

    def _on_accumulate_grad(self, node):
        variable = getattr(node, "variable", None)
        return self._param_owner.get(id(variable), -1) if variable is not None else -1

    # ----- context manager --------------------------------------------------------------------------

    def __enter__(self) -> "count":
        if self._entered:
            raise RuntimeError("a flopdispatch.count block can be entered only once; make a new count()")
        self._entered = True
        mode = self._mode = _CountingMode()
        try:
            mode.configure(self._model is not None, self._on_unknown_module, self._on_accumulate_grad)
            mode.use_python_formulas(self._python_formulas)
            mode.configure_timing(self._timing, _cuda_event if self._timing and torch.cuda.is_available() else None)
            if self._model is not None:
                self._register_tree(self._model)
            modules = torch.nn.modules.module
            self._handles.append(modules.register_module_forward_pre_hook(mode.module_enter))
            if self._model is not None:
                watch_hook = self._watch_hook()
                watch_hook.handle = modules.register_module_forward_pre_hook(watch_hook)
                self._handles.append(watch_hook.handle)
            if user.has_module_formulas():
                self._handles.append(modules.register_module_forward_hook(_module_formula_hook(mode)))
            self._handles.append(modules.register_module_forward_hook(mode.module_exit, always_call=True))
            from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

            self._handles.append(register_optimizer_step_pre_hook(mode.optimizer_enter))
            self._handles.append(register_optimizer_step_post_hook(mode.optimizer_exit))
            _hops.register(_CountingMode)
            mode.__enter__()
            self._fullgraph = _hops.allow_eager_fullgraph()
        except BaseException:
            self._cleanup()
            raise
        self._active = True
        self._wall[0] = time.perf_counter()
        return self

    def _enter_inside(self, module: torch.nn.Module) -> "count":
        """Enter the block from inside a forward pre-hook of ``module``, a module of the tree (used by
        ``fd.Meter``, which starts counting at the model's first forward of a step). The global
        module pre-hooks of that call ran before the block existed, so the module is entered here;
        its exit is seen by the block's own forward hook."""
        self.__enter__()
        self._mode.module_enter(module, ())
        if id(module) in self._tree_ids:
            self._watch["tree_ran"] = True
        return self

    def __exit__(self, exc_type, exc, tb):
        self._wall[1] = time.perf_counter()
        try:
            if self._active:
                _leave_mode(self._mode, exc_type, exc, tb)
        finally:
            self._active = False
            self._cleanup()
        watch = self._watch
        if exc_type is None and not watch["tree_ran"] and watch["foreign"] is not None:
            warnings.warn(f"flopdispatch.count(model): the counted {self._types[0]} never ran, but other "
                          f"modules did (first a {watch['foreign']}): their work is outside the model, and "
                          "every module row is zero. Count the instance you run (a deepcopy is another "
                          "instance).", UserWarning, stacklevel=2)
        return False

    def _watch_hook(self):
        """A module pre-hook noting whether the counted model's modules run (one set lookup a
        module call until one of them does; then it removes itself)."""
        watch, tree, owner = self._watch, self._tree_ids, threading.get_ident()

        def hook(module, args):
            if watch["tree_ran"]:
                return None
            if id(module) in tree:
                watch["tree_ran"] = True
                hook.handle.remove()  # torch iterates over a copy of the hooks: safe here
            elif watch["foreign"] is None and threading.get_ident() == owner:
                watch["foreign"] = type(module).__name__
            return None

        return hook

    def _cleanup(self):
        _hops.restore_fullgraph(self._fullgraph)
        self._fullgraph = None
        for h in self._handles:
            h.remove()
        self._handles.clear()
        if self._mode is not None:
            # Issue 14: the roll-up into totals, phases, ops and scopes is made on first read
            # (``_res``), not here: the recorder keeps its table after ``detach``. With timing, the
            # pending CUDA events are read now (``detach`` drops them).
            if self._timing:
                self._results = self._collect()
            self._mode.detach()
        self._model = None  # keep names and numbers, not the user's objects

    # ----- results ----------------------------------------------------------------------------------

    def _collect(self):
        rows, scopes, ops, errors = self._mode.snapshot()
        # Modules on each scope's path (a module counted once per op even when recursive).
        on_path = [()] * len(scopes)
        for s in range(1, len(scopes)):
            parent, module = scopes[s]
            on_path[s] = on_path[parent] + ((module,) if module not in on_path[parent] else ())
        total, by_phase, by_op, by_scope, by_scope_op = _Acc(), {}, {}, {}, {}
        unsupported, reasons = {}, {}
        # count(ignore=...): the work run inside an ignored module (forward and backward) goes to a
        # separate bucket, out of every total, phase, op and module figure
        ignored_idx = self._ignored_idx
        ignored_scope = [bool(ignored_idx.intersection(path)) for path in on_path] if ignored_idx else None
        ignored = {"total": _Acc(), "phase": {}, "op": {}}
        for scope, phase, op, calls, flops, macs, masked, read, written in rows:
            values = (flops, macs, masked, read, written, calls)
            name, family = ops[op]
            phase_name = PHASES[phase]
            if family == "unsupported":
                unsupported[name] = unsupported.get(name, 0) + calls
                reasons[name] = _core.unsupported_reason(name)
            if ignored_scope is not None and ignored_scope[scope]:
                ignored["total"].add(values)
                ignored["phase"].setdefault(phase_name, _Acc()).add(values)
                ignored["op"].setdefault(name, _Acc()).add(values)
                continue
            total.add(values)
            by_phase.setdefault(phase_name, _Acc()).add(values)
            by_op.setdefault((name, phase_name), _Acc()).add(values)
            by_scope.setdefault((scope, phase_name), _Acc()).add(values)
            by_scope_op.setdefault((scope, phase_name, name), _Acc()).add(values)
        for op, (message, failed_calls) in errors.items():  # calls whose formula failed
            name = ops[op][0] if op in ops else str(op)
            unsupported[name] = unsupported.get(name, 0) + failed_calls
            reasons.setdefault(name, message)
        host, events = self._mode.times()
        if events:
            torch.cuda.synchronize()  # once, when results are read
        timed = [(s, p, o, sec) for s, p, o, sec in host]
        timed += [(s, p, o, start.elapsed_time(end) / 1e3) for s, p, o, start, end in events]
        for scope, phase, op, seconds in timed:
            values = (0, 0, 0, 0, 0, 0, seconds)
            phase_name = PHASES[phase]
            if ignored_scope is not None and ignored_scope[scope]:
                ignored["total"].add(values)
                ignored["phase"].setdefault(phase_name, _Acc()).add(values)
                ignored["op"].setdefault(ops[op][0], _Acc()).add(values)
                continue
            total.add(values)
            by_phase.setdefault(phase_name, _Acc()).add(values)
            by_op.setdefault((ops[op][0], phase_name), _Acc()).add(values)
            by_scope.setdefault((scope, phase_name), _Acc()).add(values)
            by_scope_op.setdefault((scope, phase_name, ops[op][0]), _Acc()).add(values)
        # The module whose own code ran each scope's ops (None: outside every module); a recursive
        # call's scope is its module's own, so exclusive counts of all modules plus the work
        # outside them add up to the total.
        innermost = [None] + [scopes[s][1] if scopes[s][1] >= 0 else None for s in range(1, len(scopes))]
        # Per-module roll-ups are made on first use (_modules): reading totals stays cheap.
        return {"total": total, "phase": by_phase, "op": by_op, "scope": by_scope, "scope_op": by_scope_op,
                "on_path": on_path, "innermost": innermost, "module": None, "self": None,
                "unsupported": unsupported, "reasons": reasons, "ignored": ignored}

    def _modules(self):
        """{(module index, phase or None): inclusive accumulator}, rolled up once per result."""
        res = self._res()
        if res["module"] is None:
            by_module = {}
            for (scope, phase_name), acc in res["scope"].items():
                for m in res["on_path"][scope]:
                    by_module.setdefault((m, None), _Acc()).add(acc.v)
                    by_module.setdefault((m, phase_name), _Acc()).add(acc.v)
            res["module"] = by_module
        return res["module"]

    def _self_modules(self):
        """{(module index, phase or None): exclusive accumulator}: the ops run directly in each
        module's own code (not in a child module), rolled up once per result."""
        res = self._res()
        if res["self"] is None:
            by_module = {}
            for (scope, phase_name), acc in res["scope"].items():
                m = res["innermost"][scope]
                if m is not None:
                    by_module.setdefault((m, None), _Acc()).add(acc.v)
                    by_module.setdefault((m, phase_name), _Acc()).add(acc.v)
            res["self"] = by_module
        return res["self"]

    def _check_phase(self, phase):
        if phase is not None and phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")

    def _module_index(self, name):
        if not isinstance(name, str) or name not in self._index_by_name:
            close = [n for n in self._names if name and isinstance(name, str) and name in n][:5]
            hint = f"; similar: {close}" if close else ""
            raise KeyError(f"no module named {name!r} was tracked{hint}")
        return self._index_by_name[name]

    def _res(self):
        if self._results is not None:
            return self._results
        if self._mode is None:
            raise RuntimeError("nothing counted yet: use `with flopdispatch.count(...) as c:`")
        if self._entered and not self._active:  # finished: roll up once, on first read (issue 14)
            self._results = self._collect()
            return self._results
        return self._collect()  # live view inside the block

    @property
    def totals(self) -> Counts:
        """Everything counted in the block."""
        if self._results is None and self._mode is not None and not self._ignored_idx and not self._timing:
            # issue 14: summed by the recorder in C, without the Python roll-up of every row
            f, m, masked, r, w, calls = self._mode.totals()
            return Counts(flops=f, macs=m, bytes_read=r, bytes_written=w, causal_macs=m - masked, calls=calls)
        return self._res()["total"].counts()

    @property
    def ignored_modules(self) -> List[str]:
        """Names of the modules ``count(ignore=...)`` matched (their subtrees' work is in ``ignored``)."""
        return [self._names[i] for i in sorted(self._ignored_idx)]

    def ignored(self, phase: Optional[str] = None) -> Counts:
        """The work run inside ignored modules (forward and backward), left out of ``totals``,
        phases, ops and every module's counts (an ignored module's row is zero)."""
        self._check_phase(phase)
        bucket = self._res()["ignored"]
        acc = bucket["total"] if phase is None else bucket["phase"].get(phase)
        return acc.counts() if acc else Counts()

    def ignored_ops(self) -> Dict[str, dict]:
        """Per aten op, the ignored work: {'aten::embedding': {calls, flops, ...}}, by FLOPs."""
        rows = sorted(self._res()["ignored"]["op"].items(), key=lambda kv: (-kv[1].v[0], kv[0]))
        out = {}
        for name, acc in rows:
            c = acc.counts()
            out[name] = {"calls": c.calls, "flops": c.flops, "macs": c.macs, "bytes_read": c.bytes_read,
                         "bytes_written": c.bytes_written}
        return out

    @property
    def wall_seconds(self) -> float:
        """Wall-clock seconds of the whole block (counter included), for comparison with
        ``totals.seconds`` (the ops alone, with ``timing=True``)."""
        end = self._wall[1] or (time.perf_counter() if self._active else self._wall[0])
        return end - self._wall[0]

    @property
    def params(self) -> int:
        """Parameters of the root module (0 when no module ran)."""
        return self._params[0][0] if self._params else 0

    @property
    def trainable_params(self) -> int:
        return self._params[0][1] if self._params else 0

    @property
    def module_names(self):
        """Tracked module names, in ``named_modules()`` order (``""`` is the root)."""
        return list(self._names)

    def phase(self, name: str) -> Counts:
        """Counts of one phase: 'forward', 'backward', 'optimizer' or 'other'."""
        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r}; expected one of {', '.join(PHASES)}")
        acc = self._res()["phase"].get(name)
        return acc.counts() if acc else Counts()

    def module(self, name: str = "", phase: Optional[str] = None, exclusive: bool = False) -> ModuleCounts:
        """Counts of a module by name (``""`` is the root), optionally for one phase.

        Inclusive (its children's work too) by default; ``exclusive=True``: only the ops run
        directly in its own code (a functional ``@`` or SDPA in its ``forward``), not in a child.
        The exclusive counts of every module plus the work outside all modules add up to the total.
        ``params`` is the subtree's parameters either way.
        """
        idx = self._module_index(name)
        self._check_phase(phase)
        table = self._self_modules() if exclusive else self._modules()
        acc = table.get((idx, phase)) or _Acc()
        total, trainable = self._params[idx]
        return acc.counts(ModuleCounts, name=name, type=self._types[idx], params=total,
                          trainable_params=trainable, shared_params=self._shared_params[idx])

    def ops(self, phase: Optional[str] = None, module: Optional[str] = None,
            exclusive: bool = False) -> Dict[str, dict]:
        """Per aten op: {'aten::mm': {calls, flops, macs, bytes_read, bytes_written}}, by FLOPs.

        ``phase``: one phase only. ``module``: only the ops run in that module's subtree
        (``exclusive=True``: only those run directly in its own code, not in a child).
        """
        self._check_phase(phase)
        if exclusive and module is None:
            raise ValueError("ops(exclusive=True) needs a module name")
        merged: Dict[str, _Acc] = {}
        res = self._res()
        if module is None:
            for (name, ph), acc in res["op"].items():
                if phase is None or ph == phase:
                    merged.setdefault(name, _Acc()).add(acc.v)
        else:
            idx = self._module_index(module)
            for (scope, ph, name), acc in res["scope_op"].items():
                if phase is not None and ph != phase:
                    continue
                if (res["innermost"][scope] == idx) if exclusive else (idx in res["on_path"][scope]):
                    merged.setdefault(name, _Acc()).add(acc.v)
        out = {}
        for name, acc in sorted(merged.items(), key=lambda kv: (-kv[1].v[0], -kv[1].v[3] - kv[1].v[4], kv[0])):
            c = acc.counts()
            out[name] = {"calls": c.calls, "flops": c.flops, "macs": c.macs,
                         "bytes_read": c.bytes_read, "bytes_written": c.bytes_written}
        return out

    @property
    def unsupported(self) -> Dict[str, int]:
        """Ops whose FLOPs could not be counted: {'aten::xyz': calls}."""
        return dict(self._res()["unsupported"])

    @property
    def unsupported_reasons(self) -> Dict[str, str]:
        """Why each unsupported op was not counted."""
        return dict(self._res()["reasons"])

    def to_dict(self) -> dict:
        """Every count as JSON-able data (ints; names as keys).

        Besides totals, phases, modules (inclusive, with type and params), ops and the unsupported
        ops: ``params``/``trainable_params`` of the root, ``module_phases`` ({module: {phase:
        counts}}, phases that ran in it), ``op_phases`` ({phase: {op: counts}}, causal_macs
        included) and ``module_self_ops`` ({module: {phase: {op: [calls, flops, macs, bytes_read,
        bytes_written, causal_macs]}}}: the ops run directly in each module, rows that ran). ``flopdispatch.Report.from_count`` builds the saved report from this.
        """
        res = self._res()
        from . import __version__

        def phase_split(idx):
            out = {}
            for p in PHASES:
                acc = self._modules().get((idx, p))
                if acc is not None and acc.v[5]:
                    out[p] = acc.counts().as_dict()
            return out

        op_phases = {}
        for (name, ph), acc in sorted(res["op"].items(), key=lambda kv: (-kv[1].v[0], kv[0][0])):
            op_phases.setdefault(ph, {})[name] = acc.counts().as_dict()
        # Each module's own ops (exclusive), compact: {phase: {op: [calls, flops, macs, bytes_read,
        # bytes_written, causal_macs]}}, rows with calls only; inclusive per-module ops are the sum
        # over the subtree, so the size is one row per (innermost module, phase, op) that ran.
        self_ops = {}
        for (scope, ph, name), acc in res["scope_op"].items():
            m = res["innermost"][scope]
            if m is not None and acc.v[5]:
                c = acc.counts()
                self_ops.setdefault(m, {}).setdefault(ph, {})[name] = [
                    c.calls, c.flops, c.macs, c.bytes_read, c.bytes_written, c.causal_macs]
        module_self_ops = {}
        for n in self._names:
            split = self_ops.get(self._index_by_name[n], {})
            module_self_ops[n] = {p: dict(sorted(split[p].items(), key=lambda kv: (-kv[1][1], kv[0])))
                                  for p in PHASES if p in split}
        return {
            "schema": "flopdispatch.counts/1",
            "torch_version": torch.__version__,
            "flopdispatch_version": __version__,
            "totals": self.totals.as_dict(),
            "phases": {p: self.phase(p).as_dict() for p in PHASES if p in res["phase"]},
            "modules": {n: self.module(n).as_dict() for n in self._names},
            "ops": self.ops(),
            "unsupported": self.unsupported,
            "unsupported_reasons": self.unsupported_reasons,
            "params": self.params,
            "trainable_params": self.trainable_params,
            "module_phases": {n: phase_split(self._index_by_name[n]) for n in self._names},
            "op_phases": {p: op_phases[p] for p in PHASES if p in op_phases},
            "module_self_ops": module_self_ops,
            **({"ignored": {"modules": self.ignored_modules, "totals": self.ignored().as_dict(),
                            "phases": {p: self.ignored(p).as_dict() for p in PHASES
                                       if p in res["ignored"]["phase"]},
                            "ops": self.ignored_ops()}} if self._ignored_idx else {}),
        }

    def table(self, depth=2, by: str = "module", sort: Optional[str] = None, units: str = "auto") -> str:
        """A readable table, as the command line's ``--depth --by --sort --units`` draw it.

        depth: module levels below the root (an int >= 0; "all" or None: every level).
        by: "module" (the tree, with a "self" column: work run in the module itself, not in a
        child), "op" or "phase". sort: None (model order), "flops", "macs", "bytes" or "params".
        units: "auto" (SI prefixes) or one fixed prefix, "K", "M", "G", "T" or "P".
        """
        return format_table(self, depth=depth, by=by, sort=sort, units=units)

    def __repr__(self):
        if self._mode is None:
            return "<flopdispatch.count (not entered)>"
        t = self.totals
        return f"<flopdispatch.count flops={t.flops} macs={t.macs} bytes={t.bytes}>"


def profile(model: torch.nn.Module, *args, **kwargs) -> count:
    """Count one call ``model(*args, **kwargs)``; returns the finished ``count``."""
    with count(model) as c:
        model(*args, **kwargs)
    return c
