"""The module tree a ``count`` registers: each root's modules, their public names, types,
parameter counts and tied weights, which ones ``count(ignore=...)`` names, and the roots a count
without a model adopts. ``count`` owns one ``ModuleTree`` (``count._tree``); the recorder knows
modules by the indices it hands out here, and the results engine reads the names and records when
a count is frozen (``count._collect``).

Each root's tree is registered once, in ``named_modules()`` order, when counting starts (models
given) or when its first call reaches the recorder at top level (``count()`` without a model).
Several roots: one more row, ``""``, stands for all of them; it is never entered itself, and the
results engine puts it on the path of every scope inside a root, so it sums the roots' work.
"""
from __future__ import annotations

import weakref
from typing import Dict, List, Mapping, Optional

import torch

from . import _core

__all__ = ["ModuleTree", "root_items"]


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
    """Walk a root's tree in Python (what ``ModuleTree.register`` records for a first root)."""
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
    (None, None) for a tree that cannot be cached (then ``ModuleTree.register`` walks it)."""
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


def root_items(model):
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


class ModuleTree:
    """The registry of one count: lists indexed by the recorder's module index, each module's name
    relative to its root (``rel``), its root (``root_of``: an index into ``root_keys``; -1 for the
    row of all roots), ``types``, ``params`` ((params, trainable params) of its subtree) and
    ``shared_params`` (tied params held first outside it). Public names are derived (``naming``).

    `roots`: ``[(key or None, module)]`` as ``root_items`` gives them (registered when counting
    starts); `ignore`: ``count(ignore=...)``; `saved_tracker`: the count's saved-tensor tracker
    (``activations=True``; else None), told about every registered module's parameters and buffers.
    """

    def __init__(self, roots, ignore=(), saved_tracker=None):
        # ignore: module types (isinstance), qualified names or type names ("Embedding"); see ``ignored``
        if isinstance(ignore, (str, type)):
            ignore = [ignore]
        ignore = list(ignore)
        for item in ignore:
            if not (isinstance(item, str) or (isinstance(item, type) and issubclass(item, torch.nn.Module))):
                raise TypeError(f"count(ignore=...): expected nn.Module types or module names, got {item!r}")
        self.ignore_types = tuple(i for i in ignore if isinstance(i, type))
        self.ignore_names = {i for i in ignore if isinstance(i, str)}
        if roots and self.ignore_names:
            known = {(f"{key}.{n}" if n else key) if key else n for key, m in roots for n, _ in m.named_modules()}
            known |= {type(s).__name__ for _, m in roots for s in m.modules()}
            missing = sorted(self.ignore_names - known)
            if missing:
                import difflib

                close = difflib.get_close_matches(missing[0], sorted(known), n=3)
                raise ValueError(f"count(ignore=...): no module named {missing[0]!r} (nor of that type) in the model"
                                 + (f" (close: {', '.join(map(repr, close))})" if close else ""))
        self.ignored_idx = set()
        self.models_given = bool(roots)  # then nothing is adopted (``on_unknown_module``)
        self.saved_tracker = saved_tracker
        self.rel, self.root_of, self.types, self.params, self.shared_params = [], [], [], [], []
        self.root_keys: List[str] = []     # root names ("" for one unnamed root)
        self.root_modules = []             # the root modules (kept alive while counting: the recorder
                                           # knows modules by address; dropped when the block closes)
        self.all_roots = None              # module index of "" = all roots, once there are several
        self.all_roots_key = None          # the placeholder object the recorder knows "" by
        self.prefixed = bool(roots) and roots[0][0] is not None  # names carry the root's key
        self.naming_cache = (None, [], [], {})  # see naming
        self.key_set, self.key_counters = set(), {}  # count() naming roots by class (_class_key)
        self.stateless_roots = {}  # count(): ((name, type), ...) of a parameter-free root -> its indices
        self.param_owner: Dict[int, int] = {}
        self.all_params: Dict[int, tuple] = {}  # id(param) -> (numel, trainable) over every root
        self.all_sums = [0, 0]  # their numels: (params, trainable params) of "" with several roots
        self.tree_ids = set()  # id() of every registered module (count's warning for a model never run)

    def register(self, recorder, root: torch.nn.Module, key: Optional[str]) -> int:
        """Register `root` and its not-yet-registered descendants; returns the root's index."""
        if not self.rel and self._adopt(recorder, root, key):  # the first root: from the tree cache (issue 14)
            return 0
        named = list(root.named_modules())
        subtree = _subtree_params([m for _, m in named])
        r = len(self.root_keys)
        self.root_keys.append(key if key is not None else "")
        self.root_modules.append(root)
        index_of, skipped, added = {}, set(), []
        for rel, module in named:
            parent_rel = rel.rpartition(".")[0]
            if rel and parent_rel in skipped:
                skipped.add(rel)  # below a module another root holds: named there (first root wins)
                continue
            idx = recorder.add_module(module, index_of[parent_rel] if rel else -1)
            if idx != len(self.rel):
                skipped.add(rel)  # already registered (a module another root holds too)
                continue
            index_of[rel] = idx
            self.rel.append(rel)
            self.root_of.append(r)
            self.types.append(type(module).__name__)
            self.tree_ids.add(id(module))
            params = subtree[id(module)].values()
            self.params.append((sum(n for n, _ in params), sum(n for n, trainable in params if trainable)))
            self.shared_params.append(0)
            added.append((idx, rel, module))
            if (self.ignore_types or self.ignore_names) and self.is_ignored(module, rel, key):
                self.ignored_idx.add(idx)
            for p in module._parameters.values():
                if p is not None:
                    self.param_owner.setdefault(id(p), idx)
            if self.saved_tracker is not None:
                self.saved_tracker.add_state(module)
        # Tied weights: a subtree's tensors first held (model order) by a module outside it; for a
        # root, by an earlier root
        for idx, rel, module in added:
            prefix = rel + "."
            shared = 0
            for pid, (numel, _) in subtree[id(module)].items():
                owner = self.param_owner[pid]
                inside = self.root_of[owner] == r and (not rel or self.rel[owner] == rel
                                                       or self.rel[owner].startswith(prefix))
                if not inside:
                    shared += numel
            self.shared_params[idx] = shared
        new = [v for pid, v in subtree[id(root)].items() if pid not in self.all_params]
        self.all_params.update(subtree[id(root)])
        self.all_sums[0] += sum(n for n, _ in new)
        self.all_sums[1] += sum(n for n, trainable in new if trainable)
        if len(self.root_keys) > 1 or self.prefixed:
            self._add_all_roots_row(recorder)
        return index_of.get("", -1)

    def is_ignored(self, module, rel: str, key: Optional[str]) -> bool:
        """Whether count(ignore=...) names `module` (its root's key `key`, its name `rel` in it):
        by type, type name, or qualified name; with models given the public (prefixed) name,
        without, either the name in its root or the prefixed one."""
        if self.ignore_types and isinstance(module, self.ignore_types):
            return True
        names = self.ignore_names
        if not names:
            return False
        full = (f"{key}.{rel}" if rel else key) if key is not None else rel
        return (full in names or type(module).__name__ in names
                or (not self.models_given and rel in names))

    def _add_all_roots_row(self, recorder):
        """The row "" of several roots: their parameters counted once, their work summed (the
        results engine puts it on the path of every scope inside a root)."""
        if self.all_roots is None:
            # a placeholder object: the recorder wants an object to know a module by; never entered
            self.all_roots_key = object()
            self.all_roots = recorder.add_module(self.all_roots_key, -1)
            self.rel.append("")
            self.root_of.append(-1)
            self.types.append("")
            self.params.append((0, 0))
            self.shared_params.append(0)
            self.prefixed = True
        self.params[self.all_roots] = tuple(self.all_sums)
        n = len(self.root_keys)
        self.types[self.all_roots] = f"{n} model" + ("s" if n != 1 else "")

    def naming(self):
        """(names in display order, name by module index, {name: index}): public names from the
        registry, a root's key prefixing its modules once names are prefixed. Made when read, once
        per change of the registry (registering stays linear in the new tree's size)."""
        key = (len(self.rel), self.prefixed)
        if self.naming_cache[0] == key:
            return self.naming_cache[1:]
        keys, rel = self.root_keys, self.rel
        if self.prefixed:
            name_of = [("" if r < 0 else f"{keys[r]}.{n}" if n else keys[r]) for r, n in zip(self.root_of, rel)]
        else:
            name_of = list(rel)
        order = list(range(len(rel)))
        if self.all_roots is not None:  # "" first, then each root's tree in registration order
            order.remove(self.all_roots)
            order.insert(0, self.all_roots)
        names = [name_of[i] for i in order]
        self.naming_cache = (key, names, name_of, {n: i for n, i in zip(names, order)})
        return self.naming_cache[1:]

    @property
    def names(self) -> List[str]:
        return self.naming()[0]

    @property
    def name_of(self) -> List[str]:
        return self.naming()[1]

    @property
    def index_by_name(self) -> Dict[str, int]:
        return self.naming()[2]

    def _adopt(self, recorder, root: torch.nn.Module, key: Optional[str]) -> bool:
        """Register the first root from its cached tree (see ``_cached_tree``): the same records as
        the general walk below makes for a first root, copied so that later roots can extend them.
        False (nothing registered) for a tree that cannot be cached."""
        try:
            info, modules = _cached_tree(root)
        except (TypeError, AttributeError):  # a tree the compiled walk does not know how to read
            return False
        if info is None:
            return False
        idx = recorder.add_modules(modules, info.parents)
        assert idx == 0, "the first root is registered first"
        n = len(modules)
        self.root_keys.append(key if key is not None else "")
        self.root_modules.append(root)
        self.rel = list(info.names)
        self.root_of = [0] * n
        self.types = list(info.types)
        self.params = list(info.params)
        self.shared_params = list(info.shared_params)
        self.param_owner = dict(info.param_owner)
        self.tree_ids = set(info.tree_ids)
        if self.ignore_types or self.ignore_names:
            for i, (rel, module) in enumerate(zip(info.names, modules)):
                if self.is_ignored(module, rel, key):
                    self.ignored_idx.add(i)
        if self.saved_tracker is not None:
            for module in modules:
                self.saved_tracker.add_state(module)
        self.all_params.update(info.root_params)
        self.all_sums[0] += info.params[0][0]
        self.all_sums[1] += info.params[0][1]
        if self.prefixed:
            self._add_all_roots_row(recorder)
        return True

    def on_unknown_module(self, recorder, module):
        """Called by the recorder for an unregistered module called at top level (no counted module
        running): without models given, it becomes a new root. With models, nothing is adopted."""
        if self.models_given:
            return -1
        # A parameter-free module of the class and structure of an earlier parameter-free root (a
        # loss module built anew in every step) joins that root: nothing tells such modules apart,
        # and a root per step would grow the table without bound.
        shape = None
        if next(module.parameters(), None) is None:
            shape = tuple((rel, type(sub)) for rel, sub in module.named_modules())
            indices = self.stateless_roots.get(shape)
            if indices is not None:
                for (_, sub), idx in zip(module.named_modules(), indices):
                    recorder.alias_module(sub, idx)
                self.root_modules.append(module)  # known by address: kept alive while counting
                return indices[0]
        key = None
        if self.root_keys:  # a second root: every root is named by its class from now on
            if not self.prefixed:
                self.root_keys[0] = _class_key(self.types[0], self.key_set, self.key_counters)
                self.key_set.add(self.root_keys[0])
            key = _class_key(type(module).__name__, self.key_set, self.key_counters)
            self.key_set.add(key)
        first = len(self.rel)
        idx = self.register(recorder, module, key)
        if shape is not None and len(self.rel) - first - (self.all_roots is not None and self.all_roots >= first) \
                == len(shape):  # the whole tree is new (no module shared with another root)
            self.stateless_roots[shape] = [i for i in range(first, len(self.rel)) if i != self.all_roots]
        return idx

    @property
    def roots(self) -> List[str]:
        """The roots' names: ``[""]`` for one model (given or adopted), the keys for several."""
        return list(self.root_keys) if self.prefixed else self.root_keys[:1]

    def root_row(self) -> int:
        """The module index of "": the one root, or the row of all roots."""
        return 0 if self.all_roots is None else self.all_roots

    def total_params(self) -> tuple:
        """(params, trainable params) of "": the root, or all roots with each tensor once; (0, 0)
        when no module was registered."""
        return self.params[self.root_row()] if self.params else (0, 0)

    @property
    def ignored_modules(self) -> List[str]:
        """Names of the modules ``count(ignore=...)`` matched."""
        return [self.name_of[i] for i in sorted(self.ignored_idx)]
