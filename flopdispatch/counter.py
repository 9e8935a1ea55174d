"""Counting: ``count`` (a context manager around any eager code) and ``profile`` (one call).

Everything per op happens in the compiled recorder; this module wires the dispatch mode and the
module/optimizer hooks, and freezes the recorder's flat table once into the results engine
(``flopdispatch.results``), which answers every query of ``count`` as it answers a saved report's.
"""
from __future__ import annotations

import dataclasses
import functools
import threading
import time
import warnings
import weakref
from typing import Dict, List, Mapping, Optional, Sequence, Union

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.hooks import RemovableHandle

from . import _compile, _core, _hops, comm, user
from . import activations as _activations
from ._counts import PHASES, Counts, ModuleCounts, TotalsShortcuts
from .results import Results, check_phase, hold
from .schema import Report


def _cuda_event():
    """A CUDA event recorded now on the current stream (timing mode)."""
    event = torch.cuda.Event(enable_timing=True)
    event.record()
    return event


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
                 "index_by_name", "tree_ids", "root_params")


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
    info.root_params = dict(subtree[id(root)])  # id(param) -> (numel, trainable): ints only
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


# ----- installing and removing, atomically (issue 20) ----------------------------------------------
# Everything a count installs (global module and optimizer hooks, the dispatch mode, saved-tensor
# hooks, the compiled-frame counter) is a list of steps run by ``_core.Lifecycle._install`` in one C
# call, and removed by its ``__exit__`` (also C), which finishes every removal step whatever is raised
# meanwhile: a KeyboardInterrupt at any line leaves either everything installed and the block's exit
# ahead, or nothing.

_FLAG_NAMES = ("_is_in_torch_dispatch_mode", "_is_in_non_infra_torch_dispatch_mode",
               "_is_in_any_mode_without_ignore_compile_internals")
_FLAG_LISTS = ("old_dispatch_mode_flags", "old_non_infra_dispatch_mode_flags",
               "old_without_ignore_compile_internals_dispatch_mode_flags")


def _hook_steps(hooks, hook, *flags):
    """(remove, steps): steps registering a global hook as torch's ``register_*_hook`` does (under a
    fresh ``RemovableHandle`` id in `hooks`, and True in each of the `flags` dicts) and removing it;
    ``remove()`` takes it out of `hooks` early (a hook removing itself)."""
    hid = RemovableHandle.next_id  # torch's id sequence, shared with every other hook
    RemovableHandle.next_id = hid + 1
    steps = [(hooks.__setitem__, (hid, hook), hooks.pop, (hid, None))]
    steps += [(d.__setitem__, (hid, True), d.pop, (hid, None)) for d in flags]
    return functools.partial(hooks.pop, hid, None), steps


@functools.lru_cache(maxsize=None)
def _mode_flags_known(mode_type):
    """Whether this torch keeps TorchDispatchMode's flags as ``_push_step`` and ``_leave_mode`` expect."""
    from torch.utils import _python_dispatch as pd

    return (all(hasattr(pd, n) for n in _FLAG_NAMES) and hasattr(pd, "set_is_in_mode_without_ignore_compile_internals")
            and hasattr(mode_type, "_lazy_init_old_dispatch_mode_flags")
            and getattr(mode_type, "_dispatch_key", None) is None)


def _push_step(mode):
    """The step that enters `mode` as ``TorchDispatchMode.__enter__`` does (its flags saved and set,
    then the push), in one C call; its undo is ``_leave_mode``."""
    from torch.utils import _python_dispatch as pd

    if not _mode_flags_known(type(mode)):  # another torch: its own __enter__ (atomic up to torch's own code)
        return (mode.__enter__, None, _leave_mode, (mode,))
    mode._lazy_init_old_dispatch_mode_flags()
    was = tuple(getattr(pd, n) for n in _FLAG_NAMES)
    now = (True, was[1] or not mode.is_infra_mode(), was[2] or not mode.ignore_compile_internals())
    g = vars(pd)
    inner = [(getattr(mode, lst).append, (w,)) for lst, w in zip(_FLAG_LISTS, was)]
    inner += [(g.__setitem__, (n, v)) for n, v in zip(_FLAG_NAMES, now)]
    inner += [(pd.set_is_in_mode_without_ignore_compile_internals, (now[2],)),
              (torch._C._push_on_torch_dispatch_stack, (mode,))]
    return (_core.run_steps, (inner,), _leave_mode, (mode,))


def _leave_mode(mode):
    """Take `mode` off this thread's dispatch mode stack, wherever it is, in one C call.

    Counts may be exited out of order (generators closed non-LIFO, a manual ``__exit__``): torch's
    own ``__exit__`` pops the top mode, which would end the wrong count and leave this one
    counting. Here the modes above ours are lifted off, ours is taken off, and they are put back in
    the same order, so every other count (and any other mode) goes on exactly as before. Running it
    again once it is done does nothing (an undo step may be run again after an interrupt).
    """
    from torch.utils import _python_dispatch as pd

    # torch keeps infrastructure modes (FakeTensorMode...) in their own slots beside this stack
    stack = [torch._C._get_dispatch_stack_at(i) for i in range(torch._C._len_torch_dispatch_stack())]
    stack = [m for m in stack if getattr(m, "_mode_key", None) is None]
    if not any(m is mode for m in stack):
        if mode.__dict__.get("_fd_left"):
            return
        raise RuntimeError("flopdispatch.count exited in a thread other than the one that entered it "
                           "(or its mode was removed by other code): its dispatch mode is not on this "
                           "thread's mode stack")
    left = (setattr, (mode, "_fd_left", True))
    if not _mode_flags_known(type(mode)):
        if stack[-1] is not mode:
            raise RuntimeError("flopdispatch.count: this torch's dispatch modes cannot be left out of order")
        _core.run_steps([(mode.__exit__, (None, None, None)), left])
        return
    lists = [getattr(mode, lst) for lst in _FLAG_LISTS]
    pop = (torch._C._pop_torch_dispatch_stack, (None,))
    if stack[-1] is mode:  # as TorchDispatchMode.__exit__: the flags saved at entry come back
        before = [lst[-1] for lst in lists]
        g = vars(pd)
        steps = [(lst.pop, ()) for lst in lists] + [(g.__setitem__, (n, v)) for n, v in zip(_FLAG_NAMES, before)]
        steps += [(pd.set_is_in_mode_without_ignore_compile_internals, (before[2],)), pop, left]
        _core.run_steps(steps)
        return
    above = stack[next(i for i, m in enumerate(stack) if m is mode) + 1:]
    # The mode right above ours inherits what torch saved as "before ours", so that torch's
    # module-level flags come back right when that mode exits in turn; the modes above are still
    # active, so the flags stay as they are now.
    steps = [pop] * len(above)
    nxt = above[0]
    for lst, mine in zip(_FLAG_LISTS, lists):
        theirs = getattr(nxt, lst, None)
        if mine and theirs:
            steps.append((theirs.__setitem__, (-1, mine[-1])))
    steps += [(lst.pop, ()) for lst in lists] + [pop]
    steps += [(torch._C._push_on_torch_dispatch_stack, (m,)) for m in above] + [left]
    _core.run_steps(steps)


def _root_items(model):
    """count(model)'s argument as [(key, module)]: key None for one model; names for several."""
    if model is None:
        return []
    if isinstance(model, torch.nn.Module):
        return [(None, model)]
    if isinstance(model, Mapping):
        items = list(model.items())
        for key, _ in items:
            if not isinstance(key, str) or not key or "." in key:
                raise ValueError(f"count({{...}}): root names are non-empty strings without '.', got {key!r}")
    elif isinstance(model, (list, tuple)):
        items = [(None, m) for m in model]
    else:
        raise TypeError(f"count(model): expected a torch.nn.Module, or a dict or list of them, "
                        f"got {type(model).__name__}")
    if not items:
        raise ValueError("count(model): an empty dict or list of models; give at least one, or none at all")
    for key, m in items:
        if not isinstance(m, torch.nn.Module):
            raise TypeError(f"count(model): expected torch.nn.Module values, got {type(m).__name__}"
                            + (f" for {key!r}" if key is not None else ""))
    if all(key is None for key, _ in items):  # a list: named by class, as the roots count() adopts
        keys = []
        for _, m in items:
            keys.append(_class_key(type(m).__name__, set(keys)))
        items = [(k, m) for k, (_, m) in zip(keys, items)]
    # One module, one row: the same object twice, or a root inside another root's tree, is an error
    # (the counts of a module can belong to one name only).
    where = {}
    for key, m in items:
        for rel, sub in m.named_modules():
            where.setdefault(id(sub), (key, rel))
    for key, m in items:
        first_key, rel = where[id(m)]
        if first_key != key:
            inside = f"'{first_key}.{rel}' (inside root '{first_key}')" if rel else f"root '{first_key}'"
            raise ValueError(f"count({{...}}): root {key!r} is the same module as {inside}: a module "
                             "is counted under one name; give it once")
    return items


def _class_key(type_name: str, taken, counters=None) -> str:
    """A root's name from its class: 'Linear', then 'Linear#2', 'Linear#3'... (`taken`: a set of
    names; `counters`: {class name: last suffix tried}, so that naming n roots stays linear)."""
    n = counters.get(type_name, 1) if counters is not None else 1
    key = type_name if n == 1 else f"{type_name}#{n}"
    while key in taken:
        n += 1
        key = f"{type_name}#{n}"
    if counters is not None:
        counters[type_name] = n
    return key


class count(TotalsShortcuts, _core.Lifecycle):
    """Count FLOPs, MACs and bytes of everything run inside the block.

    ``with count(model) as c: model(x)``: module names relative to the model (``""`` is the model).
    Several models: ``count({"G": g, "D": d})`` (or a list, named by class like the roots below):
    each model is a root, its names prefixed by its key (``"D"``, ``"D.0"``), and ``""`` is all
    the models together (their parameters counted once). Without a model, every top-level module
    that runs (called while no counted module is running) becomes a root with its tree: one root
    is named as a model given alone (``""``, ``"layer1"``); from the second on, each is named by its
    class (``"Generator"``, ``"Linear#2"``: a variable's name is not knowable) and ``""`` is all of
    them. Work outside every root (a loss, data preparation) is in no module row; with models
    given it is the "other" phase. A count belongs to the thread that enters it:
    other threads' ops, module calls and optimizer steps are not in it (README, "Guarantees").
    ``python_formulas=True`` costs ops with the pure-Python reference (slower; for comparisons).
    ``timing=True`` also measures each op's execution time (CPU: a steady clock around the op
    call; CUDA: events around it, synchronised once when results are read), so that modules and
    phases get seconds, FLOP/s and a roofline comparison; the counter's own work is never timed.
    ``activations=True`` also records the bytes autograd saves for backward during forward, per
    module (``saved_bytes``, ``saved_peak_bytes``, ``saved_param_bytes``; ``flopdispatch.activations``);
    off by default, and then nothing is installed.
    A ``count`` is entered once; its results stay readable after the block.
    """

    def __init__(self, model: Union[torch.nn.Module, Mapping[str, torch.nn.Module],
                                    Sequence[torch.nn.Module], None] = None, *, python_formulas: bool = False,
                 timing: bool = False, ignore=(), activations: bool = False):
        roots = _root_items(model)
        # ignore: module types (isinstance), qualified names or type names ("Embedding"); see ``ignored``
        if isinstance(ignore, (str, type)):
            ignore = [ignore]
        ignore = list(ignore)
        for item in ignore:
            if not (isinstance(item, str) or (isinstance(item, type) and issubclass(item, torch.nn.Module))):
                raise TypeError(f"count(ignore=...): expected nn.Module types or module names, got {item!r}")
        self._ignore_types = tuple(i for i in ignore if isinstance(i, type))
        self._ignore_names = {i for i in ignore if isinstance(i, str)}
        if roots and self._ignore_names:
            known = {(f"{key}.{n}" if n else key) if key else n for key, m in roots for n, _ in m.named_modules()}
            known |= {type(s).__name__ for _, m in roots for s in m.modules()}
            missing = sorted(self._ignore_names - known)
            if missing:
                import difflib

                close = difflib.get_close_matches(missing[0], sorted(known), n=3)
                raise ValueError(f"count(ignore=...): no module named {missing[0]!r} (nor of that type) in the model"
                                 + (f" (close: {', '.join(map(repr, close))})" if close else ""))
        self._ignored_idx = set()
        self._model_roots = roots  # [(key or None, module)] given; dropped at exit
        # activations=True: bytes of tensors saved for backward, per module (flopdispatch.activations)
        self._activations = _activations.SavedTracker() if activations else None
        self._python_formulas = bool(python_formulas)
        self._python_pricer = None  # fd.symbolic: callable(func, args, kwargs, out, scope, phase) pricing every op
        self._timing = bool(timing)
        self._wall = [0.0, 0.0]
        self._mode = None
        self._active = False
        self._entered = False
        self._results = None
        # The module registry. Lists indexed by the recorder's module index: each module's name
        # relative to its root, its root (an index into _root_keys; -1 for the row of all roots),
        # type, (params, trainable params) and tied params. Public names are derived (_rename).
        self._rel, self._root_of, self._types, self._params, self._shared_params = [], [], [], [], []
        self._root_keys: List[str] = []     # root names ("" for one unnamed root)
        self._root_modules = []             # the root modules (kept alive while counting: the recorder
                                            # knows modules by address)
        self._all_roots = None              # module index of "" = all roots, once there are several
        self._prefixed = bool(roots) and roots[0][0] is not None  # names carry the root's key
        self._naming_cache = (None, [], [], {})  # see _naming
        self._key_set, self._key_counters = set(), {}  # count() naming roots by class (_class_key)
        self._stateless_roots = {}  # count(): ((name, type), ...) of a parameter-free root -> its indices
        self._param_owner: Dict[int, int] = {}
        self._all_params: Dict[int, tuple] = {}  # id(param) -> (numel, trainable) over every root
        self._all_sums = [0, 0]  # their numels: (params, trainable params) of "" with several roots
        # With models: whether one of their modules ran, else the first other module that did (a
        # warning at exit: counting one instance while running another leaves every row at zero).
        self._tree_ids = set()
        self._watch = {"tree_ran": False, "foreign": None}

    # ----- module registry -------------------------------------------------------------------------
    # Each root's tree is registered once, in named_modules() order, when counting starts (models
    # given) or when its first call reaches the recorder at top level (count() without a model).
    # Several roots: one more row, "", stands for all of them; it is never entered itself, and
    # _collect puts it on the path of every scope inside a root, so it sums the roots' work.

    def _register_tree(self, root: torch.nn.Module, key: Optional[str]) -> int:
        """Register `root` and its not-yet-registered descendants; returns the root's index."""
        if not self._rel and self._adopt_tree(root, key):  # the first root: from the tree cache (issue 14)
            return 0
        mode = self._mode
        named = list(root.named_modules())
        subtree = _subtree_params([m for _, m in named])
        r = len(self._root_keys)
        self._root_keys.append(key if key is not None else "")
        self._root_modules.append(root)
        index_of, skipped, added = {}, set(), []
        for rel, module in named:
            parent_rel = rel.rpartition(".")[0]
            if rel and parent_rel in skipped:
                skipped.add(rel)  # below a module another root holds: named there (first root wins)
                continue
            idx = mode.add_module(module, index_of[parent_rel] if rel else -1)
            if idx != len(self._rel):
                skipped.add(rel)  # already registered (a module another root holds too)
                continue
            index_of[rel] = idx
            self._rel.append(rel)
            self._root_of.append(r)
            self._types.append(type(module).__name__)
            self._tree_ids.add(id(module))
            params = subtree[id(module)].values()
            self._params.append((sum(n for n, _ in params), sum(n for n, trainable in params if trainable)))
            self._shared_params.append(0)
            added.append((idx, rel, module))
            if (self._ignore_types or self._ignore_names) and self._is_ignored(module, rel, key):
                self._ignored_idx.add(idx)
            for p in module._parameters.values():
                if p is not None:
                    self._param_owner.setdefault(id(p), idx)
            if self._activations is not None:
                self._activations.add_state(module)
        # Tied weights: a subtree's tensors first held (model order) by a module outside it; for a
        # root, by an earlier root
        for idx, rel, module in added:
            prefix = rel + "."
            shared = 0
            for pid, (numel, _) in subtree[id(module)].items():
                owner = self._param_owner[pid]
                inside = self._root_of[owner] == r and (not rel or self._rel[owner] == rel
                                                        or self._rel[owner].startswith(prefix))
                if not inside:
                    shared += numel
            self._shared_params[idx] = shared
        new = [v for pid, v in subtree[id(root)].items() if pid not in self._all_params]
        self._all_params.update(subtree[id(root)])
        self._all_sums[0] += sum(n for n, _ in new)
        self._all_sums[1] += sum(n for n, trainable in new if trainable)
        if len(self._root_keys) > 1 or self._prefixed:
            self._add_all_roots_row()
        return index_of.get("", -1)

    def _is_ignored(self, module, rel: str, key: Optional[str]) -> bool:
        """Whether count(ignore=...) names `module` (its root's key `key`, its name `rel` in it):
        by type, type name, or qualified name; with models given the public (prefixed) name,
        without, either the name in its root or the prefixed one."""
        if self._ignore_types and isinstance(module, self._ignore_types):
            return True
        names = self._ignore_names
        if not names:
            return False
        full = (f"{key}.{rel}" if rel else key) if key is not None else rel
        return (full in names or type(module).__name__ in names
                or (not self._model_roots and rel in names))

    def _add_all_roots_row(self):
        """The row "" of several roots: their parameters counted once, their work summed (_collect)."""
        if self._all_roots is None:
            # a placeholder object: the recorder wants an object to know a module by; never entered
            self._all_roots_key = object()
            self._all_roots = self._mode.add_module(self._all_roots_key, -1)
            self._rel.append("")
            self._root_of.append(-1)
            self._types.append("")
            self._params.append((0, 0))
            self._shared_params.append(0)
            self._prefixed = True
        self._params[self._all_roots] = tuple(self._all_sums)
        n = len(self._root_keys)
        self._types[self._all_roots] = f"{n} model" + ("s" if n != 1 else "")

    def _naming(self):
        """(names in display order, name by module index, {name: index}): public names from the
        registry, a root's key prefixing its modules once names are prefixed. Made when read, once
        per change of the registry (registering stays linear in the new tree's size)."""
        key = (len(self._rel), self._prefixed)
        if self._naming_cache[0] == key:
            return self._naming_cache[1:]
        keys, rel = self._root_keys, self._rel
        if self._prefixed:
            name_of = [("" if r < 0 else f"{keys[r]}.{n}" if n else keys[r]) for r, n in zip(self._root_of, rel)]
        else:
            name_of = list(rel)
        order = list(range(len(rel)))
        if self._all_roots is not None:  # "" first, then each root's tree in registration order
            order.remove(self._all_roots)
            order.insert(0, self._all_roots)
        names = [name_of[i] for i in order]
        self._naming_cache = (key, names, name_of, {n: i for n, i in zip(names, order)})
        return self._naming_cache[1:]

    @property
    def _names(self) -> List[str]:
        return self._naming()[0]

    @property
    def _name_of(self) -> List[str]:
        return self._naming()[1]

    @property
    def _index_by_name(self) -> Dict[str, int]:
        return self._naming()[2]

    def _adopt_tree(self, root: torch.nn.Module, key: Optional[str]) -> bool:
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
        n = len(modules)
        self._root_keys.append(key if key is not None else "")
        self._root_modules.append(root)
        self._rel = list(info.names)
        self._root_of = [0] * n
        self._types = list(info.types)
        self._params = list(info.params)
        self._shared_params = list(info.shared_params)
        self._param_owner = dict(info.param_owner)
        self._tree_ids = set(info.tree_ids)
        if self._ignore_types or self._ignore_names:
            for i, (rel, module) in enumerate(zip(info.names, modules)):
                if self._is_ignored(module, rel, key):
                    self._ignored_idx.add(i)
        if self._activations is not None:
            for module in modules:
                self._activations.add_state(module)
        self._all_params.update(info.root_params)
        self._all_sums[0] += info.params[0][0]
        self._all_sums[1] += info.params[0][1]
        if self._prefixed:
            self._add_all_roots_row()
        return True

    def _on_unknown_module(self, module):
        """Called by the recorder for an unregistered module called at top level (no counted module
        running): without models given, it becomes a new root. With models, nothing is adopted."""
        if self._model_roots:
            return -1
        # A parameter-free module of the class and structure of an earlier parameter-free root (a
        # loss module built anew in every step) joins that root: nothing tells such modules apart,
        # and a root per step would grow the table without bound.
        shape = None
        if next(module.parameters(), None) is None:
            shape = tuple((rel, type(sub)) for rel, sub in module.named_modules())
            indices = self._stateless_roots.get(shape)
            if indices is not None:
                for (_, sub), idx in zip(module.named_modules(), indices):
                    self._mode.alias_module(sub, idx)
                self._root_modules.append(module)  # known by address: kept alive while counting
                return indices[0]
        key = None
        if self._root_keys:  # a second root: every root is named by its class from now on
            if not self._prefixed:
                self._root_keys[0] = _class_key(self._types[0], self._key_set, self._key_counters)
                self._key_set.add(self._root_keys[0])
            key = _class_key(type(module).__name__, self._key_set, self._key_counters)
            self._key_set.add(key)
        first = len(self._rel)
        idx = self._register_tree(module, key)
        if shape is not None and len(self._rel) - first - (self._all_roots is not None and self._all_roots >= first) \
                == len(shape):  # the whole tree is new (no module shared with another root)
            self._stateless_roots[shape] = [i for i in range(first, len(self._rel)) if i != self._all_roots]
        return idx

    @property
    def roots(self) -> List[str]:
        """The roots' names: ``[""]`` for one model (given or adopted), the keys for several."""
        return list(self._root_keys) if self._prefixed else self._root_keys[:1]

    def _on_accumulate_grad(self, node):
        variable = getattr(node, "variable", None)
        return self._param_owner.get(id(variable), -1) if variable is not None else -1

    # ----- context manager --------------------------------------------------------------------------

    # ``__enter__`` and ``__exit__`` are ``_core.Lifecycle``'s (C): ``__enter__`` installs the steps
    # ``_prepare`` returns in one C call; ``__exit__`` removes them all, then calls ``_finish``.

    def _prepare(self):
        """Everything entering the block needs, computed without installing anything; returns the
        steps that install it (see ``_core.Lifecycle``)."""
        if self._entered:
            raise RuntimeError("a flopdispatch.count block can be entered only once; make a new count()")
        self._entered = True
        mode = self._mode = _CountingMode()
        # with models given, nothing is adopted: no call into Python for modules outside them
        given = bool(self._model_roots)
        mode.configure(given, None if given else self._on_unknown_module, self._on_accumulate_grad)
        mode.use_python_formulas(self._python_formulas or self._python_pricer is not None, self._python_pricer)
        mode.configure_timing(self._timing, _cuda_event if self._timing and torch.cuda.is_available() else None)
        for key, root in self._model_roots:
            self._register_tree(root, key)
        _hops.register(_CountingMode)  # rules for this mode type (kept: they act only under it)
        modules = torch.nn.modules.module
        from torch.optim import optimizer

        # undone last: results read (timing), recorder detached, models dropped
        steps = [(None, None, self._release, None)]
        steps += _hook_steps(modules._global_forward_pre_hooks, mode.module_enter)[1]
        if self._model_roots:
            watch_hook = self._watch_hook()
            watch_hook.remove, more = _hook_steps(modules._global_forward_pre_hooks, watch_hook)
            steps += more
        if user.has_module_formulas():
            steps += _hook_steps(modules._global_forward_hooks, _module_formula_hook(mode))[1]
        steps += _hook_steps(modules._global_forward_hooks, mode.module_exit,
                             modules._global_forward_hooks_always_called)[1]  # always_call=True
        steps += _hook_steps(optimizer._global_optimizer_pre_hooks, mode.optimizer_enter)[1]
        steps += _hook_steps(optimizer._global_optimizer_post_hooks, mode.optimizer_exit)[1]
        steps += _hops.fullgraph_steps()
        _compile.skip_in_dynamo()  # dynamo never traces our hooks
        if self._activations is not None:
            steps += self._activations.steps(mode.where)
        steps.append(_push_step(mode))
        inside = self.__dict__.pop("_entering_inside", None)
        if inside is not None:  # Meter: the module whose forward pre-hook enters the block
            steps.append((mode.module_enter, (inside, ()), None, None))
            if id(inside) in self._tree_ids:
                steps.append((self._watch.__setitem__, ("tree_ran", True), None, None))
        steps.append((setattr, (self, "_active", True), setattr, (self, "_active", False)))
        steps.append((self._start_wall, None, self._stop_wall, None))  # undone first: the block's end
        return steps

    def _start_wall(self):
        self._wall[0] = time.perf_counter()

    def _stop_wall(self):
        if not self._wall[1]:
            self._wall[1] = time.perf_counter()

    def _enter_inside(self, module: torch.nn.Module) -> "count":
        """Enter the block from inside a forward pre-hook of ``module``, a module of the tree (used by
        ``fd.Meter``, which starts counting at the model's first forward of a step). The global
        module pre-hooks of that call ran before the block existed, so the module is entered here
        (the last install step); its exit is seen by the block's own forward hook."""
        self._entering_inside = module
        return self.__enter__()

    def _finish(self, exc_type, exc, tb):
        """After every hook is removed (``__exit__``): the warning for a model that never ran."""
        watch = self._watch
        if exc_type is None and self._entered and not watch["tree_ran"] and watch["foreign"] is not None:
            what = f"the counted {self._types[0]}" if not self._prefixed else \
                f"none of the counted models ({', '.join(self._root_keys)})"
            warnings.warn(f"flopdispatch.count(model): {what} never ran, but other "
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
                hook.remove()  # torch iterates over a copy of the hooks: safe here
            elif watch["foreign"] is None and threading.get_ident() == owner:
                watch["foreign"] = type(module).__name__
            return None

        return hook

    def _release(self):
        """The last removal step: with timing, the pending CUDA events are read now (``detach``
        drops them); the recorder forgets its callbacks; the user's models are dropped. Running it
        again is harmless. Issue 14: the roll-up into totals, phases, ops and scopes is made on first
        read (``_res``), not here: the recorder keeps its table after ``detach``."""
        try:
            if self._timing and self._results is None:
                self._results = self._collect()
        finally:
            self._mode.detach()
            # keep names and numbers, not the user's objects
            self._model_roots, self._root_modules, self._all_roots_key = [], [], None

    # ----- results ----------------------------------------------------------------------------------

    def _collect(self):
        """Freeze the recorder's table into the results engine (``flopdispatch.results``): rows per
        (scope, phase, op), each scope's own module and the modules holding it (the attribution
        rule, docs/results.md), in public module order. Made once when the block has closed."""
        rows, scopes, ops, errors = self._mode.snapshot()
        names, name_of, _ = self._naming()
        position = {n: i for i, n in enumerate(names)}
        public = [position[n] for n in name_of]  # recorder index -> position in `names`
        # Each scope's call stack (a module counted once per op even when recursive), recorder indices
        on_path = [()] * len(scopes)
        for s in range(1, len(scopes)):
            parent, module = scopes[s]
            on_path[s] = on_path[parent] + ((module,) if module not in on_path[parent] else ())
        ignored_idx = self._ignored_idx
        ignored_scope = [bool(ignored_idx.intersection(path)) for path in on_path] if ignored_idx else None
        scope_module = [-1] + [public[scopes[s][1]] if scopes[s][1] >= 0 else -1 for s in range(1, len(scopes))]
        called = {public[m] for m in self._mode.entered() if m < len(public)}  # a container never called holds
        scope_path = hold(scope_module, [tuple(public[m] for m in path) for path in on_path], names, called)
        table, unsupported, reasons = {}, {}, {}
        ignored = {"modules": self.ignored_modules, "total": [0, 0, 0, 0, 0, 0, 0.0], "phase": {}, "op": {}}

        def add(target, key, values):
            acc = target.get(key)
            if acc is None:
                target[key] = list(values)
            else:
                for i, x in enumerate(values):
                    acc[i] += x

        for scope, phase, op, calls, flops, macs, masked, read, written in rows:
            values = (calls, flops, macs, read, written, macs - masked, 0.0)
            name, family = ops[op]
            phase_name = PHASES[phase]
            if family == "unsupported":
                unsupported[name] = unsupported.get(name, 0) + calls
                reasons[name] = _core.unsupported_reason(name)
            if ignored_scope is not None and ignored_scope[scope]:
                add(ignored, "total", values)
                add(ignored["phase"], phase_name, values)
                add(ignored["op"], name, values)
                continue
            add(table, (scope, phase_name, name), values)
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
            if ignored_scope is not None and ignored_scope[scope]:
                add(ignored, "total", values)
                add(ignored["phase"], PHASES[phase], values)
                add(ignored["op"], ops[op][0], values)
                continue
            add(table, (scope, PHASES[phase], ops[op][0]), values)
        comm_rows = {}
        for (scope, ph, name), (calls, payload, bus, size) in comm.records(self._mode).items():
            if scope >= len(scopes) or (ignored_scope is not None and ignored_scope[scope]):
                continue
            row = table.get((scope, PHASES[ph], name))
            comm_rows[(scope, PHASES[ph], name)] = [calls, payload, bus, size, row[6] if row else 0.0]
        activations = scope_saved = None
        if self._activations is not None:
            skip = (lambda s: ignored_scope[s]) if ignored_scope is not None else None
            activations = _activations.summary(self._activations, skip) or {}
            scope_saved = {s: b for s, b in self._activations.by_scope.items()
                           if s < len(scopes) and (skip is None or not skip(s))}
        by_name = [None] * len(names)
        for rec, pos in enumerate(public):
            by_name[pos] = rec
        wall = (self._wall[1] or time.perf_counter()) - self._wall[0] if self._wall[0] else None
        results = Results(
            names=names, types=[self._types[r] for r in by_name], params=[self._params[r] for r in by_name],
            shared_params=[self._shared_params[r] for r in by_name], scope_module=scope_module,
            scope_path=scope_path, rows=table, unsupported=unsupported, reasons=reasons,
            roots=self.roots if self._prefixed else None,
            total_params=self._params[self._root_row()] if self._params else (0, 0),
            activations=activations, scope_saved=scope_saved, comm_rows=comm_rows,
            ignored=ignored if ignored_idx else None, timed=self._timing, wall_seconds=wall, called=called)
        return Report._of(results, {})

    def _res(self) -> "Report":
        """The results engine of this count: made once when the block has closed; inside the block,
        a fresh snapshot at every read."""
        if self._results is not None:
            return self._results
        if self._mode is None:
            raise RuntimeError("nothing counted yet: use `with flopdispatch.count(...) as c:`")
        if self._entered and not self._active:  # finished: frozen once, on first read (issue 14)
            self._results = self._collect()
            return self._results
        return self._collect()  # live view inside the block

    def _results_now(self) -> "Report":
        return self._res()

    def _check_phase(self, phase):
        check_phase(phase)

    def _module_index(self, name) -> int:
        """A module's position in ``module_names`` (KeyError with close matches when unknown)."""
        return self._res()._module_index(name)

    # ----- queries: answered by the results engine (flopdispatch.results.Results) ------------------

    @property
    def totals(self) -> Counts:
        """Everything counted in the block."""
        if self._results is None and self._mode is not None and not self._ignored_idx and not self._timing:
            # issue 14: summed by the recorder in C, without the Python roll-up of every row
            f, m, masked, r, w, calls = self._mode.totals()
            return Counts(flops=f, macs=m, bytes_read=r, bytes_written=w, causal_macs=m - masked, calls=calls)
        return self._res().totals

    @property
    def ignored_modules(self) -> List[str]:
        """Names of the modules ``count(ignore=...)`` matched (their subtrees' work is in ``ignored``)."""
        return [self._name_of[i] for i in sorted(self._ignored_idx)]

    def ignored(self, phase: Optional[str] = None) -> Counts:
        """The work run inside ignored modules (forward and backward), left out of ``totals``,
        phases, ops and every module's counts (an ignored module's row is zero)."""
        return self._res().ignored(phase)

    def ignored_ops(self) -> Dict[str, dict]:
        """Per aten op, the ignored work: {'aten::embedding': {calls, flops, ...}}, by FLOPs."""
        return self._res().ignored_ops()

    @property
    def wall_seconds(self) -> float:
        """Wall-clock seconds of the whole block (counter included), for comparison with
        ``totals.seconds`` (the ops alone, with ``timing=True``)."""
        end = self._wall[1] or (time.perf_counter() if self._active else self._wall[0])
        return end - self._wall[0]

    @property
    def params(self) -> int:
        """Parameters of the root module, or of all roots together, each tensor once (0 when no
        module ran)."""
        return self._params[self._root_row()][0] if self._params else 0

    @property
    def trainable_params(self) -> int:
        return self._params[self._root_row()][1] if self._params else 0

    def _root_row(self) -> int:
        """The module index of "": the one root, or the row of all roots."""
        return 0 if self._all_roots is None else self._all_roots

    @property
    def module_names(self):
        """Tracked module names, in ``named_modules()`` order (``""`` is the root, or all roots
        first, then each root's tree)."""
        return list(self._names)

    @property
    def phases_run(self) -> List[str]:
        """Phases with at least one counted op, in PHASES order."""
        return self._res().phases_run

    @property
    def has_exclusive(self) -> bool:
        return True

    def phase(self, name: str) -> Counts:
        """Counts of one phase: 'forward', 'backward', 'optimizer' or 'other'."""
        return self._res().phase(name)

    def module(self, name: str = "", phase: Optional[str] = None, exclusive: bool = False) -> ModuleCounts:
        """Counts of a module by name (``""`` is the root, or all roots), optionally for one phase.

        Inclusive by default: the work of every call stack the module is on, and for a container
        never called itself (a ModuleList) its children's (docs/results.md); ``exclusive=True``:
        only the ops run directly in its own code (a functional ``@`` or SDPA in its ``forward``),
        not in a child. The exclusive counts of every module plus the work outside all modules add
        up to the total. ``params`` is the subtree's parameters either way. ``saved_bytes`` (with
        ``count(activations=True)``; None otherwise, and for phases other than forward): bytes of
        activations saved for backward during its forward (``saved_bytes`` of the count).
        """
        return self._res().module(name, phase, exclusive)

    def display_counts(self, name: str = "", phase: Optional[str] = None):
        """(counts, rolled_up): a module's counts as tables show them (``Report.display_counts``)."""
        return self._res().display_counts(name, phase)

    def op_counts(self, name: str, phase: Optional[str] = None) -> Counts:
        """One op's counts, optionally for one phase."""
        return self._res().op_counts(name, phase)

    @property
    def activations(self) -> Optional[Dict[str, int]]:
        """{'saved_bytes', 'saved_peak_bytes', 'saved_param_bytes'} (activations=True), else None."""
        return self._res().activations if self._activations is not None else None

    @property
    def saved_bytes(self) -> Optional[int]:
        """Bytes of activations autograd saved for backward during the block's forward work
        (``count(activations=True)``; None otherwise): each storage once, parameters and buffers
        excluded, checkpointed regions as their inputs. README "Activation memory"."""
        return self._res().saved_bytes if self._activations is not None else None

    @property
    def saved_peak_bytes(self) -> Optional[int]:
        """The most activation bytes saved for backward alive at once during the block, in bytes
        (None without ``activations=True``)."""
        return self._res().saved_peak_bytes if self._activations is not None else None

    @property
    def saved_param_bytes(self) -> Optional[int]:
        """Bytes of parameters and buffers autograd saved (a linear's weight): model state, not
        in ``saved_bytes`` (None without ``activations=True``)."""
        return self._res().saved_param_bytes if self._activations is not None else None

    def ops(self, phase: Optional[str] = None, module: Optional[str] = None,
            exclusive: bool = False) -> Dict[str, dict]:
        """Per aten op: {'aten::mm': {calls, flops, macs, bytes_read, bytes_written, causal_macs}}
        (and ``seconds`` with timing), by FLOPs.

        ``phase``: one phase only. ``module``: the ops that module's figures hold (its call
        stacks; a never-called container: its children's), so they add up to ``module(...)``;
        ``exclusive=True``: only those run directly in its own code, not in a child.
        """
        return self._res().ops(phase, module, exclusive)

    def collectives(self, phase: Optional[str] = None, module: Optional[str] = None,
                    exclusive: bool = False) -> Dict[str, dict]:
        """Per collective op (torch.distributed): {'c10d::allreduce_': {calls, bytes, bus_bytes,
        world_size, seconds}}, by bus bytes. ``bytes``: the payload per rank (NCCL-tests' size);
        ``bus_bytes``: payload x the algorithm's factor (all-reduce 2(n-1)/n, ...); ``world_size``:
        the process group's size (the largest, if several); ``seconds``: with ``timing=True``.
        ``phase`` and ``module`` (``exclusive``) select as in ``ops``."""
        return self._res().collectives(phase, module, exclusive)

    @property
    def unsupported(self) -> Dict[str, int]:
        """Ops whose FLOPs could not be counted: {'aten::xyz': calls}."""
        return dict(self._res().unsupported)

    @property
    def unsupported_reasons(self) -> Dict[str, str]:
        """Why each unsupported op was not counted."""
        return dict(self._res().unsupported_reasons)

    def to_dict(self) -> dict:
        """This count's results as JSON-able data: the saved report's object (schema
        ``flopdispatch.report/2``, docs/report-schema.md) with only the versions as metadata (no
        timestamp: two counts of the same work give equal dicts); ``Report.from_count`` adds the run's."""
        from ._version import __version__

        return Report._of(self._res(), {"flopdispatch_version": __version__,
                                        "torch_version": torch.__version__}).to_dict()

    def table(self, depth=2, by: str = "module", sort: Optional[str] = None, units: str = "auto") -> str:
        """A readable table, as the command line's ``--depth --by --sort --units`` draw it.

        depth: module levels below the root (an int >= 0; "all" or None: every level).
        by: "module" (the tree, with a "self" column: work run in the module itself, not in a
        child), "op" or "phase". sort: None (model order), "flops", "macs", "bytes" or "params".
        units: "auto" (SI prefixes) or one fixed prefix, "K", "M", "G", "T" or "P".
        """
        return self._res().table(depth=depth, by=by, sort=sort, units=units)

    def to_pandas(self, by: str = "module"):
        """A pandas DataFrame (pandas is optional): by="module", one row per (module, phase) with
        inclusive and ``self_*`` counts; by="op", one row per (module, phase, op) of each module's own
        ops. Work outside every module is in ``"(outside root)"`` rows, so own work adds up to the
        totals. See ``flopdispatch.frames``."""
        return self._res().to_pandas(by)

    def __repr__(self):
        if self._mode is None:
            return "<flopdispatch.count (not entered)>"
        t = self.totals
        return f"<flopdispatch.count flops={t.flops} macs={t.macs} bytes={t.bytes}>"

    def _repr_html_(self):  # Jupyter: the module table and the interactive page (flopdispatch.notebook)
        from . import notebook
        return None if self._mode is None else notebook.report_html(Report.from_count(self))


def profile(model: torch.nn.Module, *args, **kwargs) -> count:
    """Count one call ``model(*args, **kwargs)``; returns the finished ``count``.

    A string among ``args`` is an input spec, made into a tensor on the model's device:
    ``"1x3x224x224"`` (floats in the model's dtype), ``"1x128:int64"`` (token ids below the vocab
    size), ``"attention_mask=1x128:int64"`` (passed by name), as the command line's ``--input``
    (``flopdispatch.inputs``). Positional specs and tensors do not mix; named specs go with either.
    A bad spec raises ``flopdispatch.inputs.SpecError`` (a ValueError) before anything runs.
    """
    if any(isinstance(a, str) for a in args):
        from .inputs import make_inputs

        specs = [a for a in args if isinstance(a, str)]
        given = [a for a in args if not isinstance(a, str)]
        made, named = make_inputs(model, specs, given_positional=len(given), given_names=list(kwargs))
        args = tuple(given) + tuple(made)
        kwargs = {**kwargs, **named}
    with count(model) as c:
        model(*args, **kwargs)
    return c
