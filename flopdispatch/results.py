"""The results engine: one counted block's rows, frozen once, and every query on them.

A ``count`` (when its block closes), ``Report.from_count``, ``Report.load`` and the HTML page all
read one ``Results`` object, so that a live count, its saved file and its page answer every
question alike. The attribution rule (docs/results.md) is decided here, once:

- The recorder files every op under a *scope*: the chain of module calls running when it ran
  (the call stack, not the module names). A scope's *own* module is the innermost one.
- A module *holds* a scope when it is on the scope's call stack; a module that was never called
  itself (a ``ModuleList``/``ModuleDict``, the row ``""`` of several roots, a root whose
  children were called directly) also holds every scope one of its registered children holds,
  going up through parents that were not called either. A module called from outside its
  registered parent belongs to the caller's stack, not to that parent (unless the parent was never
  called, then the parent holds it as a container). A module shared by two parents is held by
  whichever one called it, each time.
- ``module(X)`` sums the scopes X holds, ``module(X, exclusive=True)`` the scopes X is the own
  module of; ``ops(module=X)`` lists those same rows per op. So ``sum(ops(module=X)) ==
  module(X)`` always, and a never-called container's exclusive counts are zero.

The engine imports nothing of torch: ``flopdispatch show`` loads and renders without it.
"""
from __future__ import annotations

import difflib
from typing import Dict, List, Optional

from ._counts import PHASES, Counts, ModuleCounts, TotalsShortcuts

ROW_FIELDS = ("calls", "flops", "macs", "bytes_read", "bytes_written", "causal_macs")
"""The order of the integers in an op row (a seventh number, seconds, follows with timing)."""
COMM_FIELDS = ("calls", "bytes", "bus_bytes", "world_size")
"""The order of the integers in a collective row (a fifth number, seconds, follows)."""
_N = len(ROW_FIELDS)


def _zero():
    return [0, 0, 0, 0, 0, 0, 0.0]


def _add(acc, row):
    acc[0] += row[0]
    acc[1] += row[1]
    acc[2] += row[2]
    acc[3] += row[3]
    acc[4] += row[4]
    acc[5] += row[5]
    acc[6] += row[6]


def _counts(v, cls=Counts, **extra) -> Counts:
    """A (frozen) Counts or ModuleCounts of a row; made without the dataclass's per-field
    ``object.__setattr__`` (thousands are made for one table), equal to ``cls(**fields)``."""
    calls, flops, macs, read, written, causal, seconds = v
    c = object.__new__(cls)
    c.__dict__.update(flops=flops, macs=macs, bytes_read=read, bytes_written=written, causal_macs=causal, calls=calls,
                      seconds=float(seconds), **extra)
    return c


def _op_dict(v, timed: bool) -> dict:
    out = dict(zip(ROW_FIELDS, v[:_N]))
    if timed:
        out["seconds"] = float(v[_N])
    return out


def _comm_add(acc, row):
    acc[0] += row[0]
    acc[1] += row[1]
    acc[2] += row[2]
    acc[3] = max(acc[3], row[3])
    acc[4] += row[4]


def _comm_out(table) -> Dict[str, dict]:
    return {name: {"calls": v[0], "bytes": v[1], "bus_bytes": v[2], "world_size": v[3], "seconds": float(v[4])}
            for name, v in sorted(table.items(), key=lambda kv: (-kv[1][2], kv[0]))}


def unknown(kind: str, name, known, where: str = "") -> str:
    """A one-line message for an unknown module or op, with close matches (difflib):
    "no module named 'h.0.fcc' was tracked; close: 'h.0.fc'"."""
    close = difflib.get_close_matches(name, [k for k in known if isinstance(k, str)], n=3, cutoff=0.6) \
        if isinstance(name, str) else []
    return f"no {kind} named {name!r}{where}" + (f"; close: {', '.join(map(repr, close))}" if close else "")


def check_phase(phase) -> None:
    """ValueError (with close matches) unless `phase` is None or one of PHASES."""
    if phase is not None and phase not in PHASES:
        close = difflib.get_close_matches(phase, PHASES, n=1, cutoff=0.5) if isinstance(phase, str) else []
        raise ValueError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}"
                         + (f" (close: {close[0]!r})" if close else ""))


class Results(TotalsShortcuts):
    """The frozen rows of one counted block and every query on them (immutable once built).

    Modules are indexed by their position in ``module_names`` (``""`` first). ``scope_module[s]``
    is scope s's own module (-1: outside every module), ``scope_path[s]`` the modules holding it
    (the attribution rule above, applied when the results were made). ``rows``: {(scope, phase,
    op): [calls, flops, macs, bytes_read, bytes_written, causal_macs, seconds]}.
    """

    def __init__(self, *, names: List[str], types: List[str], params: List[tuple], shared_params: List[int],
                 scope_module: List[int], scope_path: List[tuple], rows: dict, unsupported: Dict[str, int],
                 reasons: Dict[str, str], roots: Optional[List[str]] = None, total_params=(0, 0),
                 activations: Optional[dict] = None, scope_saved: Optional[Dict[int, int]] = None,
                 comm_rows: Optional[dict] = None, ignored: Optional[dict] = None, timed: bool = False,
                 rolled_up=None, module_override: Optional[dict] = None, comm_override=None,
                 missing: tuple = (), wall_seconds: Optional[float] = None, called=None):
        self._names = list(names)
        self._index = {n: i for i, n in enumerate(self._names)}
        self._types = types
        self._mparams = params
        self._shared = shared_params
        self._scope_module = scope_module
        self._scope_path = scope_path
        # one order for every view (scope, phase, op): float seconds then sum alike, live or loaded
        order = {p: i for i, p in enumerate(PHASES)}
        self._rows = dict(sorted(rows.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 9), kv[0][2])))
        self.unsupported: Dict[str, int] = dict(unsupported)
        self.unsupported_reasons: Dict[str, str] = dict(reasons)
        self.roots: List[str] = list(roots) if roots else ([""] if names else [])
        self.params: int = total_params[0]
        self.trainable_params: int = total_params[1]
        # count(activations=True): {"saved_bytes", "saved_peak_bytes", "saved_param_bytes"}; else None
        self.activations: Optional[Dict[str, int]] = activations
        self._scope_saved = scope_saved
        self._comm_rows = dict(sorted((comm_rows or {}).items(),
                                      key=lambda kv: (kv[0][0], order.get(kv[0][1], 9), kv[0][2])))
        self._ignored = ignored
        self.timed = bool(timed)
        self._rolled = rolled_up
        self._called = None if called is None else frozenset(called)  # modules whose forward ran (live counts)
        self._override = module_override  # report/1 files: stored inclusive module counts
        self._comm_override = comm_override  # report/1 files: (phases, modules) collectives
        self.missing = tuple(missing)  # what an older file lacks (docs/report-schema.md)
        self._wall = wall_seconds
        self._saved_override = None  # report/1 files: {module index: (inclusive, exclusive) bytes}
        self._cache: dict = {}

    # ----- derived tables, made once ---------------------------------------------------------------

    def _derived(self):
        d = self._cache.get("derived")
        if d is not None:
            return d
        total, by_phase, by_op = _zero(), {}, {}
        for (s, ph, op), v in self._rows.items():
            _add(total, v)
            acc = by_phase.get(ph)
            if acc is None:
                acc = by_phase[ph] = _zero()
            _add(acc, v)
            key = (op, ph)
            acc = by_op.get(key)
            if acc is None:
                acc = by_op[key] = _zero()
            _add(acc, v)
        d = self._cache["derived"] = (total, by_phase, by_op)
        return d

    def _module_tables(self):
        """({(module, phase or None): row} inclusive, the same exclusive)."""
        t = self._cache.get("modules")
        if t is not None:
            return t
        per_scope = {}
        for (s, ph, _), v in self._rows.items():
            acc = per_scope.get((s, ph))
            if acc is None:
                acc = per_scope[(s, ph)] = _zero()
            _add(acc, v)
        inc, exc = {}, {}
        paths, owners = self._scope_path, self._scope_module
        for (s, ph), v in per_scope.items():
            for m in paths[s]:
                for key in ((m, None), (m, ph)):
                    acc = inc.get(key)
                    if acc is None:
                        acc = inc[key] = _zero()
                    _add(acc, v)
            m = owners[s]
            if m >= 0:
                for key in ((m, None), (m, ph)):
                    acc = exc.get(key)
                    if acc is None:
                        acc = exc[key] = _zero()
                    _add(acc, v)
        t = self._cache["modules"] = (inc, exc)
        return t

    def _saved_tables(self):
        t = self._cache.get("saved")
        if t is None:
            inc, exc = {}, {}
            for s, nbytes in (self._scope_saved or {}).items():
                for m in self._scope_path[s]:
                    inc[m] = inc.get(m, 0) + nbytes
                m = self._scope_module[s]
                if m >= 0:
                    exc[m] = exc.get(m, 0) + nbytes
            t = self._cache["saved"] = (inc, exc)
        return t

    def _rolled_up(self):
        """Per module: True for a module never called itself that holds its children's work."""
        r = self._cache.get("rolled")
        if r is None:
            if self._rolled is not None:
                r = list(self._rolled)
            else:
                called = self._called if self._called is not None else set(self._scope_module)
                has_kids = set()
                for n in self._names[1:]:
                    parent = n.rpartition(".")[0]
                    if parent in self._index:
                        has_kids.add(self._index[parent])
                r = [i not in called and i in has_kids for i in range(len(self._names))]
                if self._names and self.roots not in ([], [""]):
                    r[0] = False  # "" of several roots: all of them together, shown as such, not as a container
            self._cache["rolled"] = r
        return r

    # ----- checks ------------------------------------------------------------------------------------

    def _module_index(self, name) -> int:
        i = self._index.get(name) if isinstance(name, str) else None
        if i is None:
            raise KeyError(unknown("module", name, self._names, " was tracked"))
        return i

    def _need_exclusive(self):
        if not self.has_exclusive:
            raise ValueError("this report has no per-module ops (exclusive counts): it was written by an "
                             "older flopdispatch")

    # ----- the query API (count and Report alike) ----------------------------------------------------

    @property
    def totals(self) -> Counts:
        """Everything counted (work inside ignored modules left out)."""
        return _counts(self._derived()[0])

    @property
    def module_names(self) -> List[str]:
        """Module names in ``named_modules()`` order (``""``: the root, or all roots, first)."""
        return list(self._names)

    @property
    def phases_run(self) -> List[str]:
        """Phases with at least one counted op, in PHASES order."""
        by_phase = self._derived()[1]
        return [p for p in PHASES if p in by_phase and by_phase[p][0]]

    def phase(self, name: str) -> Counts:
        """Counts of one phase: 'forward', 'backward', 'optimizer' or 'other'."""
        if name not in PHASES:
            check_phase(name)
        v = self._derived()[1].get(name)
        return _counts(v) if v else Counts()

    @property
    def has_exclusive(self) -> bool:
        """Whether each module's own ops are known (reports written before exclusive counts: not)."""
        return "self_ops" not in self.missing

    def module(self, name: str = "", phase: Optional[str] = None, exclusive: bool = False) -> ModuleCounts:
        """A module's counts: inclusive (the scopes it holds, see the module docstring), or with
        ``exclusive=True`` only its own code's ops; ``params`` is its subtree's either way;
        ``saved_bytes`` (activations=True, phases None/forward) follows the same rule."""
        key = ("m", name, phase, bool(exclusive))
        c = self._cache.get(key)
        if c is not None:
            return c
        idx = self._module_index(name)
        check_phase(phase)
        if exclusive:
            self._need_exclusive()
        if self._override is not None and not exclusive:
            v = self._override.get((idx, phase)) or _zero()
        else:
            v = self._module_tables()[1 if exclusive else 0].get((idx, phase)) or _zero()
        saved = None
        if self.activations is not None and phase in (None, "forward"):
            if self._saved_override is not None:
                pair = self._saved_override.get(idx)
                saved = pair[1 if exclusive else 0] if pair is not None else None
            else:
                saved = self._saved_tables()[1 if exclusive else 0].get(idx, 0)
        total, trainable = self._mparams[idx]
        c = self._cache[key] = _counts(v, ModuleCounts, name=name, type=self._types[idx], params=total,
                                       trainable_params=trainable, shared_params=self._shared[idx],
                                       saved_bytes=saved)
        return c

    def display_counts(self, name: str = "", phase: Optional[str] = None):
        """(counts, rolled_up) of a module as tables and pages show it: its inclusive counts, and
        whether it is a container that never ran itself (its counts are its children's work)."""
        c = self.module(name, phase)
        return c, self._rolled_up()[self._index[name]]

    def ops(self, phase: Optional[str] = None, module: Optional[str] = None,
            exclusive: bool = False) -> Dict[str, dict]:
        """Per aten op: {calls, flops, macs, bytes_read, bytes_written, causal_macs[, seconds]},
        largest FLOPs first (``seconds`` with timing). ``module``: the ops of the scopes that
        module holds (``exclusive=True``: its own code's only), so they sum to ``module(...)``."""
        check_phase(phase)
        if exclusive and module is None:
            raise ValueError("ops(exclusive=True) needs a module name")
        key = ("ops", phase, module, bool(exclusive))
        out = self._cache.get(key)
        if out is not None:
            return {k: dict(v) for k, v in out.items()}
        merged = {}
        if module is None:
            for (op, ph), v in self._derived()[2].items():
                if phase is None or ph == phase:
                    acc = merged.get(op)
                    if acc is None:
                        acc = merged[op] = _zero()
                    _add(acc, v)
        else:
            idx = self._module_index(module)
            self._need_exclusive()
            if exclusive:
                held = {s for s, m in enumerate(self._scope_module) if m == idx}
            else:
                held = {s for s, path in enumerate(self._scope_path) if idx in path}
            for (s, ph, op), v in self._rows.items():
                if s in held and (phase is None or ph == phase):
                    acc = merged.get(op)
                    if acc is None:
                        acc = merged[op] = _zero()
                    _add(acc, v)
        order = sorted(merged.items(), key=lambda kv: (-kv[1][1], -kv[1][3] - kv[1][4], kv[0]))
        out = self._cache[key] = {name: _op_dict(v, self.timed) for name, v in order if v[0] or phase is None}
        return {k: dict(v) for k, v in out.items()}

    def outside(self, phase: Optional[str] = None, exclusive: bool = False) -> Counts:
        """The work outside the modules: by default what the row ``""`` does not hold (tables'
        "(outside root)" row: a loss, data preparation, a module run outside its root's call);
        ``exclusive=True``: the ops run outside every module's own code, so that the exclusive
        counts of all modules plus this add up to the totals (``to_pandas``' "(outside root)" rows).
        ``saved_bytes`` (activations=True, inclusive, phases None/forward): the saved bytes the
        row ``""`` does not hold."""
        check_phase(phase)
        key = ("outside", phase, bool(exclusive))
        c = self._cache.get(key)
        if c is not None:
            return c
        saved = None
        if exclusive:
            self._need_exclusive()
            v = _zero()
            for (s, ph, _), row in self._rows.items():
                if self._scope_module[s] < 0 and (phase is None or ph == phase):
                    _add(v, row)
        else:
            whole = self.totals if phase is None else self.phase(phase)
            if not self._names:
                c = self._cache[key] = _counts([getattr(whole, f) for f in ROW_FIELDS] + [whole.seconds],
                                               ModuleCounts, name="", type="", params=0, trainable_params=0,
                                               shared_params=0, saved_bytes=None)
                return c
            root = self.module("", phase)
            v = [getattr(whole, f) - getattr(root, f) for f in ROW_FIELDS] + [whole.seconds - root.seconds]
            if self.activations is not None and phase in (None, "forward"):
                saved = self.activations["saved_bytes"] - (root.saved_bytes or 0)
        c = self._cache[key] = _counts(v, ModuleCounts, name="", type="", params=0, trainable_params=0,
                                       shared_params=0, saved_bytes=saved)
        return c

    def outside_ops(self, phase: Optional[str] = None) -> Dict[str, dict]:
        """Per aten op, the ops run outside every module's own code (``outside(exclusive=True)``
        per op), by FLOPs."""
        check_phase(phase)
        self._need_exclusive()
        merged = {}
        for (s, ph, op), v in self._rows.items():
            if self._scope_module[s] < 0 and (phase is None or ph == phase):
                _add(merged.setdefault(op, _zero()), v)
        order = sorted(merged.items(), key=lambda kv: (-kv[1][1], -kv[1][3] - kv[1][4], kv[0]))
        return {name: _op_dict(v, self.timed) for name, v in order if v[0]}

    def collectives_total(self, phase: Optional[str] = None) -> Dict[str, int]:
        """{calls, bytes, bus_bytes, seconds} of every collective together (the collectives table's
        total, a rank's row of ``flopdispatch show`` over several ranks)."""
        table = self.collectives(phase)
        out = {k: sum(v[k] for v in table.values()) for k in ("calls", "bytes", "bus_bytes")}
        out["seconds"] = sum(v["seconds"] for v in table.values())
        return out

    def _op_rows(self) -> dict:
        """{(op, phase or None): row} of every op (ROW_FIELDS then seconds), each phase's and all
        phases' together, made once: what ``op_counts`` and the op table read (do not mutate)."""
        rows = self._cache.get("op_rows")
        if rows is None:
            rows, total = {}, {}
            for (op, ph), v in self._derived()[2].items():
                rows[(op, ph)] = v
                acc = total.get(op)
                if acc is None:
                    acc = total[op] = _zero()
                _add(acc, v)
            for op, v in total.items():
                rows[(op, None)] = v
            self._cache["op_rows"] = rows
        return rows

    def _op_order(self) -> List[str]:
        """Every op's name in ``ops()``' order (largest FLOPs first, then bytes, then name), made once."""
        order = self._cache.get("op_order")
        if order is None:
            every = [(op, v) for (op, ph), v in self._op_rows().items() if ph is None]
            every.sort(key=lambda kv: (-kv[1][1], -kv[1][3] - kv[1][4], kv[0]))
            order = self._cache["op_order"] = [op for op, _ in every]
        return order

    def op_counts(self, name: str, phase: Optional[str] = None) -> Counts:
        """One op's counts (all its calls), optionally for one phase."""
        table = self._cache.get("op_counts")
        if table is None:  # {(op, phase or None): Counts}, made once
            table = self._cache["op_counts"] = {key: _counts(v) for key, v in self._op_rows().items()}
        c = table.get((name, phase))
        if c is not None:
            return c
        check_phase(phase)
        if (name, None) not in table:
            raise KeyError(unknown("op", name, {op for op, _ in table}, " was counted"))
        return Counts()

    def collectives(self, phase: Optional[str] = None, module: Optional[str] = None,
                    exclusive: bool = False) -> Dict[str, dict]:
        """Per collective op (torch.distributed): {op: {calls, bytes, bus_bytes, world_size,
        seconds}}, by bus bytes; ``phase``, ``module`` and ``exclusive`` select as in ``ops``."""
        check_phase(phase)
        if exclusive and module is None:
            raise ValueError("collectives(exclusive=True) needs a module name")
        idx = self._module_index(module) if module is not None else None
        merged = {}
        if self._comm_override is not None:  # a report/1 file: phases and inclusive modules only
            if exclusive:
                raise ValueError("this report has no per-module collectives of the module's own code: "
                                 "it was written by an older flopdispatch")
            phases, modules = self._comm_override
            source = phases if module is None else modules.get(module, {})
            for p, table in source.items():
                if phase is None or p == phase:
                    for op, rec in table.items():
                        _comm_add(merged.setdefault(op, [0, 0, 0, 0, 0.0]), rec)
            return _comm_out(merged)
        for (s, ph, op), v in self._comm_rows.items():
            if phase is not None and ph != phase:
                continue
            if idx is not None and not ((self._scope_module[s] == idx) if exclusive else (idx in self._scope_path[s])):
                continue
            _comm_add(merged.setdefault(op, [0, 0, 0, 0, 0.0]), v)
        return _comm_out(merged)

    @property
    def saved_bytes(self) -> Optional[int]:
        """Activation bytes saved for backward (``count(activations=True)``; None: not measured)."""
        return None if self.activations is None else self.activations["saved_bytes"]

    @property
    def saved_peak_bytes(self) -> Optional[int]:
        """The most saved activation bytes alive at once, in bytes (None: not measured)."""
        return None if self.activations is None else self.activations["saved_peak_bytes"]

    @property
    def saved_param_bytes(self) -> Optional[int]:
        """Parameter and buffer bytes autograd saved, apart from activations (None: not measured)."""
        return None if self.activations is None else self.activations["saved_param_bytes"]

    @property
    def ignored_modules(self) -> List[str]:
        """Names of the modules ``count(ignore=...)`` matched (their work is in ``ignored``)."""
        return list(self._ignored["modules"]) if self._ignored else []

    def ignored(self, phase: Optional[str] = None) -> Counts:
        """The work run inside ignored modules, left out of every other figure."""
        check_phase(phase)
        if not self._ignored:
            return Counts()
        v = self._ignored["total"] if phase is None else self._ignored["phase"].get(phase)
        return _counts(v) if v else Counts()

    def ignored_ops(self) -> Dict[str, dict]:
        """Per aten op, the ignored work: {'aten::embedding': {calls, flops, ...}}, by FLOPs."""
        if not self._ignored:
            return {}
        order = sorted(self._ignored["op"].items(), key=lambda kv: (-kv[1][1], kv[0]))
        return {name: _op_dict(v, self.timed) for name, v in order}

    @property
    def wall_seconds(self) -> Optional[float]:
        """Wall-clock seconds of the whole counted block (None when not recorded)."""
        return self._wall


def hold(scope_module: List[int], raw_paths: List[tuple], names: List[str], called=None) -> List[tuple]:
    """The attribution rule: each scope's holders, from its call stack (module indices into
    ``names``) plus the never-called registered ancestors of the modules on it. ``called``: the
    modules whose forward ran (default: those owning a scope; a live count knows exactly)."""
    index = {n: i for i, n in enumerate(names)}
    parent = [-1] * len(names)
    for i, n in enumerate(names):
        if n:
            parent[i] = index.get(n.rpartition(".")[0], -1)
    called = set(scope_module) if called is None else set(called)
    out, memo = [], {}
    for path in raw_paths:
        key = path
        got = memo.get(key)
        if got is None:
            held = list(path)
            seen = set(path)
            for m in path:
                p = parent[m]
                while p >= 0 and p not in called and p not in seen:
                    held.append(p)
                    seen.add(p)
                    p = parent[p]
            got = memo[key] = tuple(sorted(held))
        out.append(got)
    return out


def freeze(*, snapshot, timed, comm, entered, names: List[str], name_of: List[str], types: List[str],
           params: List[tuple], shared_params: List[int], roots: Optional[List[str]], total_params: tuple,
           ignored_idx, ignored_modules: List[str], reason_of, saved=None, timing: bool = False,
           wall_seconds: Optional[float] = None) -> Results:
    """A count's recorder table frozen into a ``Results`` (``count._collect`` gathers the inputs):
    rows per (scope, phase, op), each scope's own module and the modules holding it (``hold``),
    in public module order (``names``).

    snapshot: the recorder's (rows, scopes, ops, errors); timed: [(scope, phase, op, seconds)];
    comm: {(scope, phase, op name): (calls, payload bytes, bus bytes, world size)}; entered: the
    modules whose forward ran. Modules are given by recorder index: ``name_of``, ``types``,
    ``params`` ((params, trainable)), ``shared_params``, ``ignored_idx``. reason_of(op name): why
    an unsupported op was not counted. saved (``activations=True``): (summary, bytes by scope),
    summary(skip) giving the saved-bytes dict without the scopes skip(scope) is true for.
    """
    rows, scopes, ops, errors = snapshot
    position = {n: i for i, n in enumerate(names)}
    public = [position[n] for n in name_of]  # recorder index -> position in `names`
    # Each scope's call stack (a module counted once per op even when recursive), recorder indices
    on_path = [()] * len(scopes)
    for s in range(1, len(scopes)):
        parent, module = scopes[s]
        on_path[s] = on_path[parent] + ((module,) if module not in on_path[parent] else ())
    ignored_scope = [bool(ignored_idx.intersection(path)) for path in on_path] if ignored_idx else None
    scope_module = [-1] + [public[scopes[s][1]] if scopes[s][1] >= 0 else -1 for s in range(1, len(scopes))]
    called = {public[m] for m in entered if m < len(public)}  # a container never called holds
    scope_path = hold(scope_module, [tuple(public[m] for m in path) for path in on_path], names, called)
    table, unsupported, reasons = {}, {}, {}
    ignored = {"modules": list(ignored_modules), "total": _zero(), "phase": {}, "op": {}}

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
            reasons[name] = reason_of(name)
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
    for scope, phase, op, seconds in timed:
        values = (0, 0, 0, 0, 0, 0, seconds)
        if ignored_scope is not None and ignored_scope[scope]:
            add(ignored, "total", values)
            add(ignored["phase"], PHASES[phase], values)
            add(ignored["op"], ops[op][0], values)
            continue
        add(table, (scope, PHASES[phase], ops[op][0]), values)
    comm_rows = {}
    for (scope, ph, name), (calls, payload, bus, size) in comm.items():
        if scope >= len(scopes) or (ignored_scope is not None and ignored_scope[scope]):
            continue
        row = table.get((scope, PHASES[ph], name))
        comm_rows[(scope, PHASES[ph], name)] = [calls, payload, bus, size, row[6] if row else 0.0]
    activations = scope_saved = None
    if saved is not None:
        summary, by_scope = saved
        skip = (lambda s: ignored_scope[s]) if ignored_scope is not None else None
        activations = summary(skip) or {}
        scope_saved = {s: b for s, b in by_scope.items() if s < len(scopes) and (skip is None or not skip(s))}
    by_name = [None] * len(names)
    for rec, pos in enumerate(public):
        by_name[pos] = rec
    return Results(
        names=names, types=[types[r] for r in by_name], params=[params[r] for r in by_name],
        shared_params=[shared_params[r] for r in by_name], scope_module=scope_module,
        scope_path=scope_path, rows=table, unsupported=unsupported, reasons=reasons, roots=roots,
        total_params=total_params, activations=activations, scope_saved=scope_saved, comm_rows=comm_rows,
        ignored=ignored if ignored_idx else None, timed=timing, wall_seconds=wall_seconds, called=called)


__all__ = ["Results", "ROW_FIELDS", "COMM_FIELDS", "freeze", "hold"]
