"""Saved reports: ``Report`` and its JSON schema, ``flopdispatch.report/2`` (docs/report-schema.md).

A report is the results engine (``flopdispatch.results.Results``: the frozen rows of one counted
block and every query on them) plus the run's metadata. ``count`` answers its queries with the
same engine, so a live count, ``Report.from_count(c)`` and the file saved from it agree on every
figure. It is what ``flopdispatch --json`` writes, what ``flopdispatch show`` and the HTML page
render, and what ``Report.load`` reads back.

    report = fd.Report.from_count(c)        # from a finished (or live) count
    report.save("run.json")                 # atomic: a temporary file renamed into place
    report = fd.Report.load("run.json")     # ReportError (a ValueError) if corrupt or foreign
    report.module("h.0", phase="backward").macs, report.ops(module="h.0"), report.meta["torch_version"]

The schema is documented once, in docs/report-schema.md. Files of ``flopdispatch.report/1`` (and
bare ``flopdispatch.counts/1`` dumps of older versions) still load; what they lack is listed in
``Report.missing`` and the file's ``missing`` field, never invented. Every field of every accepted
file is validated before use; anything else raises a one-line ``ReportError``. Importing this
module imports no torch.
"""
from __future__ import annotations

import datetime
import json
import math
import platform
import re
from typing import Any, Dict, List, Optional

from ._counts import PHASES, Counts
from ._files import atomic_write
from ._version import __version__
from .htmlreport import write_html
from .report import UNITS, parse_depth, render_text, terminal_safe
from .results import COMM_FIELDS, ROW_FIELDS, Results, hold

SCHEMA = "flopdispatch.report/2"
OLD_SCHEMA = "flopdispatch.report/1"
COUNTS_SCHEMA = "flopdispatch.counts/1"
COUNT_FIELDS = ("flops", "macs", "bytes_read", "bytes_written", "causal_macs", "calls")
SELF_OP_FIELDS = ROW_FIELDS
"""The order of the numbers in a scope's op rows (and a report/1 module's ``self_ops`` rows)."""
ACTIVATION_FIELDS = ("saved_bytes", "saved_peak_bytes", "saved_param_bytes")
"""The report's ``activations`` object (count(activations=True)): totals in bytes."""

_INT_LIST = re.compile(r"\[\n *(-?\d+(?:\.\d+(?:e-?\d+)?)?(?:,\n *-?\d+(?:\.\d+(?:e-?\d+)?)?)*)\n *\]")


class ReportError(ValueError):
    """A file that is not a readable flopdispatch report (the message is one line)."""


def _counts_json(c: Counts) -> dict:
    out = {f: getattr(c, f) for f in COUNT_FIELDS}
    if getattr(c, "seconds", 0.0):
        out["seconds"] = c.seconds
    return out


def _row_json(v, timed):
    return list(v[:len(ROW_FIELDS)]) + ([float(v[-1])] if timed and v[-1] else [])


def default_meta(**extra) -> dict:
    """The metadata every report carries, plus ``extra`` (None values dropped)."""
    try:
        import torch  # here, not at the top: reading and rendering reports needs no torch

        torch_version = torch.__version__
    except ImportError:  # pragma: no cover
        torch_version = None
    meta = {
        "flopdispatch_version": __version__,
        "torch_version": torch_version,
        "python_version": platform.python_version(),
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    meta.update({k: v for k, v in extra.items() if v is not None})
    return {k: v for k, v in meta.items() if v is not None}


class Report(Results):
    """The results of one counted block plus metadata: the same queries as ``count``.

    Build one with ``Report.from_count(c)``, ``Report.load(path)`` or ``Report.from_dict(data)``.
    """

    meta: Dict[str, Any]
    symbolic: Optional[dict]

    def _init_report(self, meta, symbolic=None):
        self.meta = meta
        self.symbolic = symbolic  # fd.symbolic's expressions (SymbolicCount.to_dict()), if any
        return self

    @classmethod
    def _of(cls, results: Results, meta: dict) -> "Report":
        """A report sharing `results`' frozen rows (and caches), with its own metadata."""
        report = cls.__new__(cls)
        report.__dict__.update(results.__dict__)
        return report._init_report(meta, getattr(results, "symbolic", None))

    # ----- construction ------------------------------------------------------------------------

    @classmethod
    def from_count(cls, counter, meta: Optional[dict] = None) -> "Report":
        """The report of a ``flopdispatch.count`` (finished, or live inside its block)."""
        results = counter._results_now()
        full_meta = default_meta(mode="api")
        from .comm import rank_meta  # torch.distributed: a live count has torch loaded

        full_meta.update(rank_meta())  # rank and world size of an initialised process group
        if results.wall_seconds is not None:
            full_meta["duration_s"] = results.wall_seconds
        full_meta.update(meta or {})
        if results.ignored_modules:  # count(ignore=...): what was left out, stated in the report
            t = results.ignored()
            full_meta["ignored"] = {"modules": results.ignored_modules,
                                    **{k: getattr(t, k) for k in ("flops", "macs", "bytes_read", "bytes_written",
                                                                  "calls")}}
        return cls._of(results, full_meta)

    @classmethod
    def load(cls, path) -> "Report":
        """Read a report saved with ``save`` (or ``--json``); ReportError if it is not one."""
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise ReportError(f"{path}: no such file") from None
        except OSError as e:
            raise ReportError(f"{path}: cannot read: {e.strerror or e}") from None
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ReportError(f"{path}: not a flopdispatch report (not UTF-8 text)") from None
        except json.JSONDecodeError as e:
            raise ReportError(f"{path}: not a flopdispatch report (invalid JSON: {e.msg} at line {e.lineno} "
                              f"column {e.colno})") from None
        except RecursionError:
            raise ReportError(f"{path}: not a flopdispatch report (JSON nested too deeply)") from None
        except ValueError:  # an integer longer than Python's int-string limit (sys.get_int_max_str_digits())
            raise ReportError(f"{path}: corrupt report: an integer with more than {MAX_DIGITS} digits") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "report") -> "Report":
        """A report from parsed JSON (``flopdispatch.report/2``; ``report/1`` and ``counts/1`` too)."""
        if not isinstance(data, dict) or not isinstance(data.get("schema"), str):
            raise ReportError(f"{source}: not a flopdispatch report (no \"schema\" field)")
        schema = data["schema"]
        name, _, version = schema.partition("/")
        if schema != COUNTS_SCHEMA and name != SCHEMA.partition("/")[0]:
            raise ReportError(f"{source}: not a flopdispatch report (schema {_short(schema)})")
        if schema not in (SCHEMA, OLD_SCHEMA, COUNTS_SCHEMA):
            raise ReportError(f"{source}: unsupported report version {_short(schema)} (this flopdispatch reads "
                              f"{SCHEMA!r} and {OLD_SCHEMA!r})")
        try:
            if schema == SCHEMA:
                return _parse_v2(cls, data)
            if schema == COUNTS_SCHEMA:
                data = _counts_to_v1(data)
            return _parse_v1(cls, data)
        except ReportError as e:
            raise ReportError(f"{source}: corrupt report: {e}") from None
        except RecursionError:
            raise ReportError(f"{source}: corrupt report: nested too deeply") from None

    # ----- saving ------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The ``flopdispatch.report/2`` JSON object (docs/report-schema.md)."""
        timed = self.timed
        names = self._names
        rolled = self._rolled_up()
        modules = []
        for i, n in enumerate(names):
            m = self.module(n)
            entry = {"name": n, "type": m.type, "params": m.params, "trainable_params": m.trainable_params}
            if m.shared_params:
                entry["shared_params"] = m.shared_params
            if m.saved_bytes is not None:
                entry["saved_bytes"] = m.saved_bytes
                entry["self_saved_bytes"] = self.module(n, exclusive=True).saved_bytes if self.has_exclusive else 0
            if rolled[i]:
                entry["rolled_up"] = True
            entry.update(_counts_json(m))
            entry["phases"] = {p: _counts_json(self.module(n, p)) for p in PHASES
                               if self.module(n, p).calls or (p, i) in self._phase_keys()}
            modules.append(entry)
        # scopes with something in them, renumbered in order
        per_scope: Dict[int, dict] = {}
        for (s, ph, op), v in self._rows.items():
            per_scope.setdefault(s, {}).setdefault("ops", {}).setdefault(ph, {})[op] = _row_json(v, timed)
        for (s, ph, op), v in self._comm_rows.items():
            per_scope.setdefault(s, {}).setdefault("collectives", {}).setdefault(ph, {})[op] = \
                list(v[:4]) + ([float(v[4])] if v[4] else [])
        for s, nbytes in (self._scope_saved or {}).items():
            if nbytes:
                per_scope.setdefault(s, {})["saved_bytes"] = nbytes
        scopes = []
        for s in sorted(per_scope):
            body = per_scope[s]
            entry = {"module": self._scope_module[s], "path": list(self._scope_path[s])}
            if "ops" in body:
                entry["ops"] = {p: dict(sorted(body["ops"][p].items())) for p in PHASES if p in body["ops"]}
            if "collectives" in body:
                entry["collectives"] = {p: body["collectives"][p] for p in PHASES if p in body["collectives"]}
            if "saved_bytes" in body:
                entry["saved_bytes"] = body["saved_bytes"]
            scopes.append(entry)
        ops = []
        for name, c in self.ops().items():
            ops.append({"name": name, **_counts_json(self.op_counts(name)),
                        "phases": {p: _counts_json(self.op_counts(name, p)) for p in PHASES
                                   if (name, p) in self._derived()[2]}})
        out = {
            "schema": SCHEMA,
            "meta": self.meta,
            "params": self.params,
            "trainable_params": self.trainable_params,
            "totals": _counts_json(self.totals),
            "phases": {p: _counts_json(self.phase(p)) for p in PHASES if p in self._derived()[1]},
            "modules": modules,
            "ops": ops,
            "scopes": scopes,
            "unsupported": [{"op": op, "calls": calls, "reason": self.unsupported_reasons.get(op, "")}
                            for op, calls in sorted(self.unsupported.items())],
        }
        if timed:
            out["timed"] = True
        if self.roots not in ([], [""]):
            out["roots"] = list(self.roots)
        if self.activations is not None:
            out["activations"] = dict(self.activations)
        if self._ignored:
            out["ignored"] = {"modules": self.ignored_modules, "totals": _counts_json(self.ignored()),
                              "phases": {p: _counts_json(self.ignored(p)) for p in PHASES
                                         if p in self._ignored["phase"]},
                              "ops": {op: _counts_json(_op_counts(v)) for op, v in self._ignored["op"].items()}}
        table = self.collectives()
        if table:  # derived, for readers: all phases, each phase, each module holding some (inclusive)
            out["collectives"] = table
            out["collective_phases"] = {p: self.collectives(p) for p in PHASES if self.collectives(p)}
            out["module_collectives"] = {}
            for n in names:
                split = {p: self.collectives(p, n) for p in PHASES}
                split = {p: t for p, t in split.items() if t}
                if split:
                    out["module_collectives"][n] = split
        if self.missing:
            out["missing"] = list(self.missing)
        if self.symbolic is not None:
            out["symbolic"] = self.symbolic
        return out

    def _phase_keys(self):
        """{(phase, module index)} of the modules' phases that ran (report/1: as stored)."""
        keys = self._cache.get("phase_keys")
        if keys is None:
            table = self._override if self._override is not None else self._module_tables()[0]
            keys = self._cache["phase_keys"] = {(p, m) for (m, p), v in table.items() if p is not None and v[0]}
        return keys

    def to_json(self, indent: Optional[int] = 1) -> str:
        text = json.dumps(self.to_dict(), indent=indent, default=str)
        # lists of numbers (the scopes' op rows) on one line each; JSON strings hold no raw newline,
        # so only lists can match
        if indent is None:
            return text
        return _INT_LIST.sub(lambda m: "[" + ", ".join(n.strip() for n in m.group(1).split(",")) + "]", text)

    def save(self, path) -> None:
        """Write the report as JSON (``flopdispatch.report/2``), atomically (``atomic_write``)."""
        atomic_write(path, self.to_json() + "\n")

    def table(self, depth=2, by: str = "module", sort: Optional[str] = None, units: str = "auto",
              summary: bool = False) -> str:
        """The table ``flopdispatch show`` prints (same options as ``count.table``); with
        ``summary=True`` the header lines too. Made once per set of options."""
        if units not in UNITS:
            raise ValueError(f"units must be one of {', '.join(UNITS)}, got {units!r}")
        key = ("table", depth if isinstance(depth, (int, str, type(None))) else repr(depth), by, sort, units, summary)
        text = self._cache.get(key)
        if text is None:
            text = self._cache[key] = render_text(self, depth=parse_depth(depth), by=by, sort=sort, units=units,
                                                  summary=summary)
        return text

    def save_html(self, path) -> None:
        """Write the self-contained HTML page (``--html``), atomically."""
        write_html(self, path)

    def to_pandas(self, by: str = "module"):
        """A pandas DataFrame of the counts (pandas is optional; see ``flopdispatch.frames``)."""
        from .frames import to_pandas

        return to_pandas(self, by)

    def __eq__(self, other):
        if not isinstance(other, Report):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None

    def __repr__(self):
        t = self.totals
        return (f"<flopdispatch.Report {terminal_safe(self.meta.get('target') or '')} flops={t.flops} "
                f"macs={t.macs} bytes={t.bytes}>")

    def _repr_html_(self):  # Jupyter: the module table and the interactive page (flopdispatch.notebook)
        from . import notebook
        return notebook.report_html(self)


def _op_counts(v) -> Counts:
    calls, flops, macs, read, written, causal, seconds = v
    return Counts(flops=flops, macs=macs, bytes_read=read, bytes_written=written, causal_macs=causal, calls=calls,
                  seconds=float(seconds))


def _vec(c: Counts) -> list:
    return [c.calls, c.flops, c.macs, c.bytes_read, c.bytes_written, c.causal_macs, c.seconds]


# ----- reading report/2 ------------------------------------------------------------------------------

def _parse_v2(cls, data: dict) -> Report:
    v = _Validator()
    meta = v.meta(data.get("meta", {}))
    v.counts(data.get("totals"), "totals")  # derived figures: checked, then made again from the scopes
    v.phase_map(data.get("phases", {}), "phases")
    names, types, params, shared, rolled, saved_given = _modules(v, data)
    _ops_checked(v, data)
    n = len(names)
    scope_module, scope_path, rows, comm_rows, scope_saved = [-1], [()], {}, {}, {}
    timed = data.get("timed", False)
    v.check(isinstance(timed, bool), f"timed: expected true or false, got {_short(timed)}")
    for i, s in enumerate(v.array(data.get("scopes", []), "scopes")):
        where = f"scopes[{i}]"
        v.check(isinstance(s, dict), f"{where}: expected an object, got {_short(s)}")
        own = s.get("module", -1)
        v.check(type(own) is int and -1 <= own < n, f"{where}.module: expected a module index (-1 to {n - 1}), "
                                                    f"got {_short(own)}")
        path = v.array(s.get("path", []), f"{where}.path")
        for k, m in enumerate(path):
            v.check(type(m) is int and 0 <= m < n, f"{where}.path[{k}]: expected a module index (0 to {n - 1}), "
                                                   f"got {_short(m)}")
        v.check(len(set(path)) == len(path), f"{where}.path: a module is listed twice")
        v.check(own < 0 or own in path, f"{where}: its module is not on its path")
        sid = len(scope_module)
        scope_module.append(own)
        scope_path.append(tuple(sorted(path)))
        for p, ops in v.phase_rows(s.get("ops", {}), f"{where}.ops", len(ROW_FIELDS)).items():
            for op, row in ops.items():
                rows[(sid, p, op)] = row
        for p, ops in v.phase_rows(s.get("collectives", {}), f"{where}.collectives", len(COMM_FIELDS)).items():
            for op, row in ops.items():
                comm_rows[(sid, p, op)] = row
        if "saved_bytes" in s:
            scope_saved[sid] = v.integer(s["saved_bytes"], f"{where}.saved_bytes")
    unsupported, reasons = _unsupported(v, data)
    roots = _roots(v, data, set(names))
    activations = v.activations(data["activations"]) if "activations" in data else None
    ignored = _ignored(v, data["ignored"]) if "ignored" in data else None
    missing = data.get("missing", [])
    v.check(isinstance(missing, list) and all(isinstance(x, str) for x in missing),
            "missing: expected a list of strings")
    override = comm_override = None
    if "module_counts" in missing:  # re-saved from a report/1 file: its stored module counts stand
        override = _override_from(v, data)
    comm_derived = _comm_parse(data, v)  # derived figures: checked, then made again from the scopes
    if "collective_scopes" in missing:
        comm_override = comm_derived
    total_params = (v.integer(data.get("params", 0), "params"),
                    v.integer(data.get("trainable_params", 0), "trainable_params"))
    results = Results(names=names, types=types, params=params, shared_params=shared, scope_module=scope_module,
                      scope_path=scope_path, rows=rows, unsupported=unsupported, reasons=reasons, roots=roots,
                      total_params=total_params, activations=activations,
                      scope_saved=scope_saved if activations is not None else None, comm_rows=comm_rows,
                      ignored=ignored, timed=timed, rolled_up=rolled, module_override=override,
                      comm_override=comm_override, missing=tuple(missing),
                      wall_seconds=meta.get("duration_s") if isinstance(meta.get("duration_s"), (int, float)) else None)
    if "saved_scopes" in missing and activations is not None:  # re-saved from a report/1 file
        results._saved_override = {i: s for i, s in enumerate(saved_given) if s is not None}
    report = cls._of(results, meta)
    if "symbolic" in data:
        report.symbolic = _symbolic_json(data["symbolic"])
    return report


def _modules(v, data):
    names, types, params, shared, rolled, saved, seen = [], [], [], [], [], [], set()
    for i, m in enumerate(v.array(data.get("modules", []), "modules")):
        where = f"modules[{i}]"
        v.check(isinstance(m, dict), f"{where}: expected an object, got {_short(m)}")
        name = v.string(m.get("name"), f"{where}.name")
        if name in seen:
            raise ReportError(f"{where}: duplicate module name {_short(name)}")
        parent = name.rpartition(".")[0] if "." in name else ("" if name else None)
        if parent is not None and parent not in seen:
            raise ReportError(f"{where}: parent of {_short(name)} is not listed before it")
        seen.add(name)
        v.counts(m, where)
        v.phase_map(m.get("phases", {}), f"{where}.phases")
        names.append(name)
        types.append(v.string(m.get("type", ""), f"{where}.type"))
        params.append((v.integer(m.get("params", 0), f"{where}.params"),
                       v.integer(m.get("trainable_params", 0), f"{where}.trainable_params")))
        shared.append(v.integer(m.get("shared_params", 0), f"{where}.shared_params"))
        r = m.get("rolled_up", False)
        v.check(isinstance(r, bool), f"{where}.rolled_up: expected true or false, got {_short(r)}")
        rolled.append(r)
        saved.append(v.saved(m, where))
        if "self_ops" in m:
            v.self_ops(m["self_ops"], f"{where}.self_ops")
    v.check(not names or names[0] == "", "modules[0]: the root module (name \"\") must come first")
    return names, types, params, shared, rolled, saved


def _ops_checked(v, data):
    """Validate the derived ``ops`` list of a report/2 file (made again from the scopes on load)
    without building Counts: every count of every entry is gathered, then checked at once (ints,
    not bools, 0 <= n < the digit bound). Any entry off that path (a bad one, a missing field,
    seconds) sends the whole list through ``_ops_list``, which raises its one-line ReportError."""
    op_names, phases, values = set(), frozenset(PHASES), []
    gather = values.extend
    for o in v.array(data.get("ops", []), "ops"):
        if type(o) is dict:
            name, ph = o.get("name"), o.get("phases", {})
            if (type(name) is str and name not in op_names and "seconds" not in o and type(ph) is dict
                    and phases.issuperset(ph)):
                gather(map(o.get, COUNT_FIELDS))  # a missing field gives None: the slow path
                for c in ph.values():
                    if type(c) is not dict or "seconds" in c:
                        break
                    gather(map(c.get, COUNT_FIELDS))
                else:
                    op_names.add(name)
                    continue
        _ops_list(v, data)  # the slow path: the exact message (or entries valid the slow way)
        return
    if values and not (set(map(type, values)) == _INT_ONLY and min(values) >= 0 and max(values) < _INT_LIMIT):
        _ops_list(v, data)


def _ops_list(v, data):
    ops, op_names = {}, set()
    for i, o in enumerate(v.array(data.get("ops", []), "ops")):
        where = f"ops[{i}]"
        v.check(isinstance(o, dict), f"{where}: expected an object, got {_short(o)}")
        name = v.string(o.get("name"), f"{where}.name")
        if name in op_names:
            raise ReportError(f"{where}: duplicate op name {_short(name)}")
        op_names.add(name)
        ops[name] = (v.counts(o, where), v.phase_map(o.get("phases", {}), f"{where}.phases"))
    return ops


def _unsupported(v, data):
    unsupported, reasons = {}, {}
    for i, u in enumerate(v.array(data.get("unsupported", []), "unsupported")):
        where = f"unsupported[{i}]"
        v.check(isinstance(u, dict), f"{where}: expected an object, got {_short(u)}")
        op = v.string(u.get("op"), f"{where}.op")
        if op in unsupported:
            raise ReportError(f"{where}: duplicate op {_short(op)}")
        unsupported[op] = v.integer(u.get("calls", 0), f"{where}.calls")
        reasons[op] = v.string(u.get("reason", ""), f"{where}.reason")
    return unsupported, reasons


def _roots(v, data, seen):
    if "roots" not in data:
        return None
    roots = [v.string(r, f"roots[{i}]") for i, r in enumerate(v.array(data["roots"], "roots"))]
    for i, r in enumerate(roots):
        v.check(r and "." not in r and r in seen, f"roots[{i}]: {_short(r)} is not a module of depth one")
    v.check(len(set(roots)) == len(roots), "roots: a name is listed twice")
    return roots


def _ignored(v, x):
    v.check(isinstance(x, dict), f"ignored: expected an object, got {_short(x)}")
    mods = [v.string(n, f"ignored.modules[{i}]") for i, n in enumerate(v.array(x.get("modules", []), "ignored.modules"))]
    ops = x.get("ops", {})
    v.check(isinstance(ops, dict), f"ignored.ops: expected an object, got {_short(ops)}")
    return {"modules": mods, "total": _vec(v.counts(x.get("totals", {}), "ignored.totals")),
            "phase": {p: _vec(c) for p, c in v.phase_map(x.get("phases", {}), "ignored.phases").items()},
            "op": {v.string(op, "ignored.ops"): _vec(v.counts(c, f"ignored.ops[{_short(op)}]")) for op, c in ops.items()}}


def _override_from(v, data):
    """{(module index, phase or None): row} from the modules' stored counts (report/1 files)."""
    table = {}
    for i, m in enumerate(data.get("modules", [])):
        table[(i, None)] = _vec(v.counts(m, f"modules[{i}]"))
        for p, c in v.phase_map(m.get("phases", {}), f"modules[{i}].phases").items():
            table[(i, p)] = _vec(c)
    return table


def _comm_parse(data, v):
    """(phases, modules) collectives of a report/1 file: {phase: {op: RECORD}}, {module: {phase: ...}}."""

    def table(x, where):
        v.check(isinstance(x, dict), f"{where}: expected an object, got {_short(x)}")
        out = {}
        for op, rec in x.items():
            w = f"{where}[{_short(op)}]"
            v.check(isinstance(rec, dict), f"{w}: expected an object of communication counts")
            r = [v.integer(rec.get(f, 0), f"{w}.{f}") for f in COMM_FIELDS]
            t = rec.get("seconds", 0.0)
            v.check(isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t < 1e300 and math.isfinite(t),
                    f"{w}.seconds: expected a non-negative number")
            out[v.string(op, w)] = r + [float(t)]
        return out

    def phase_split(x, where):
        v.check(isinstance(x, dict), f"{where}: expected an object, got {_short(x)}")
        for p in x:
            v.check(p in PHASES, f"{where}: unknown phase {_short(p)}")
        return {p: table(x[p], f"{where}.{p}") for p in PHASES if p in x}

    phases = phase_split(data.get("collective_phases", {}), "collective_phases")
    raw = data.get("module_collectives", {})
    v.check(isinstance(raw, dict), "module_collectives: expected an object")
    modules = {v.string(name, "module_collectives"): phase_split(split, f"module_collectives[{_short(name)}]")
               for name, split in raw.items()}
    return phases, modules


# ----- reading report/1 and counts/1 (older files) ---------------------------------------------------

V1_MISSING = ("scopes", "module_counts")


def _parse_v1(cls, data: dict) -> Report:
    """A report/1 file: modules' inclusive counts as stored; each module's own ops (``self_ops``)
    become one scope held by the module and its ancestors by name (report/1 kept no call stack);
    work outside every module is what the ops table holds beyond them."""
    v = _Validator()
    meta = v.meta(data.get("meta", {}))
    totals = v.counts(data.get("totals"), "totals")
    phases = v.phase_map(data.get("phases", {}), "phases")
    names, types, params, shared, _, saved = _modules(v, data)
    ops = _ops_list(v, data)
    mods = data.get("modules", [])
    self_ops = [v.self_ops(m["self_ops"], f"modules[{i}].self_ops") if "self_ops" in m else None
                for i, m in enumerate(mods)]
    has_self = bool(names) and all(s is not None for s in self_ops)
    missing = list(V1_MISSING) + ([] if has_self else ["self_ops"])
    scope_module, raw_paths, rows = [-1], [()], {}
    own = {}  # (phase, op) -> row summed over modules
    if has_self:
        index = {n: i for i, n in enumerate(names)}
        for i, (name, so) in enumerate(zip(names, self_ops)):
            if not so:
                continue
            chain, n = [i], name
            while n:
                n = n.rpartition(".")[0] if "." in n else ""
                if n in index:
                    chain.append(index[n])
                if not n:
                    break
            sid = len(scope_module)
            scope_module.append(i)
            raw_paths.append(tuple(sorted(set(chain))))
            for p, table in so.items():
                for op, row in table.items():
                    r = list(row) + [0.0]
                    rows[(sid, p, op)] = r
                    acc = own.setdefault((p, op), [0] * 7)
                    for k in range(6):
                        acc[k] += r[k]
    # the rest of each op's work (per phase) ran outside every module
    by_phase_op = {}
    for name, (c, split) in ops.items():
        if split:
            for p, pc in split.items():
                by_phase_op[(p, name)] = _vec(pc)
        elif c.calls or c.flops:
            by_phase_op[(None, name)] = _vec(c)
    if any(p is None for p, _ in by_phase_op):
        missing.append("op_phases")
    for (p, name), vec in by_phase_op.items():
        mine = own.get((p, name), [0] * 7)
        rest = [a - b for a, b in zip(vec[:6], mine[:6])]
        v.check(all(x >= 0 for x in rest), f"ops: {_short(name)} counts less than its modules' own rows")
        if any(rest):
            rows[(0, p or "forward", name)] = rest + [vec[6]]
    if not ops and (totals.calls or totals.flops):
        missing.append("ops")
        for p, c in (phases.items() if phases else [("forward", totals)]):
            rows[(0, p, "(unknown op)")] = _vec(c)
    if any(c.seconds for c in phases.values()) or totals.seconds:
        missing.append("op_seconds")
    unsupported, reasons = _unsupported(v, data)
    roots = _roots(v, data, set(names))
    activations = v.activations(data["activations"]) if "activations" in data else None
    scope_saved = None
    if activations is not None and any(s is not None for s in saved):
        missing.append("saved_scopes")
    override = _override_from(v, data)
    parents = {n.rpartition(".")[0] if "." in n else "" for n in names if n}
    rolled = [override[(i, None)][0] == 0 and n in parents for i, n in enumerate(names)]  # as report/1 showed
    comm_override = _comm_parse(data, v)
    if comm_override[0]:
        missing.append("collective_scopes")
    total_params = (v.integer(data.get("params", params[0][0] if params else 0), "params"),
                    v.integer(data.get("trainable_params", params[0][1] if params else 0), "trainable_params"))
    results = Results(names=names, types=types, params=params, shared_params=shared, scope_module=scope_module,
                      scope_path=raw_paths, rows=rows, unsupported=unsupported, reasons=reasons, roots=roots,
                      total_params=total_params, activations=activations, scope_saved=scope_saved,
                      rolled_up=rolled, module_override=override, comm_override=comm_override, missing=tuple(missing),
                      wall_seconds=meta.get("duration_s") if isinstance(meta.get("duration_s"), (int, float)) else None)
    if activations is not None:
        # as report/1 showed them: a never-called container's saved bytes are its children's
        index, children = {n: i for i, n in enumerate(names)}, {}
        for i, n in enumerate(names[1:], start=1):
            children.setdefault(index.get(n.rpartition(".")[0] if "." in n else ""), []).append(i)
        shown = [pair[0] if pair is not None else None for pair in saved]
        for i in reversed(range(len(names))):  # children before parents
            if rolled[i]:
                shown[i] = sum(shown[k] or 0 for k in children.get(i, ()))
        results._saved_override = {i: (shown[i], 0 if rolled[i] else pair[1])
                                   for i, pair in enumerate(saved) if pair is not None}
    report = cls._of(results, meta)
    if "symbolic" in data:
        report.symbolic = _symbolic_json(data["symbolic"])
    return report


def _counts_to_v1(data: dict) -> dict:
    """A bare ``count.to_dict()`` dump of older versions (``flopdispatch.counts/1``) as report/1 data;
    each field checked for its shape before use (ReportError otherwise)."""

    def obj(x, where):
        if not isinstance(x, dict):
            raise ReportError(f"{where}: expected an object, got {_short(x)}")
        return x

    meta = {k: data[k] for k in ("torch_version", "flopdispatch_version") if k in data}
    modules_in = obj(data.get("modules", {}), "modules")
    module_phases = obj(data.get("module_phases", {}), "module_phases")
    self_ops = data.get("module_self_ops")
    if self_ops is not None:
        obj(self_ops, "module_self_ops")
    act = data.get("activations")
    saved = obj(obj(act, "activations").get("modules", {}), "activations.modules") if act is not None else None
    modules = []
    for name, m in modules_in.items():
        where = f"modules[{_short(name)}]"
        obj(m, where)
        entry = {**m, "name": name, "phases": obj(module_phases.get(name, {}), f"module_phases[{_short(name)}]")}
        entry.pop("saved_bytes", None)
        if self_ops is not None:
            entry["self_ops"] = obj(self_ops.get(name, {}), f"module_self_ops[{_short(name)}]")
        if saved is not None and name in saved:
            s = obj(saved[name], f"activations.modules[{_short(name)}]")
            entry["saved_bytes"], entry["self_saved_bytes"] = s.get("saved_bytes"), s.get("self_saved_bytes")
        modules.append(entry)
    op_phases = data.get("op_phases")
    if op_phases is not None:
        merged = {}
        for p, table in obj(op_phases, "op_phases").items():
            for name, c in obj(table, f"op_phases[{_short(p)}]").items():
                merged.setdefault(name, {})[p] = c
        ops = [{"name": name, **_sum_json(split.values()), "phases": split} for name, split in merged.items()]
    else:
        ops = [{"name": name, **obj(c, f"ops[{_short(name)}]")} for name, c in obj(data.get("ops", {}), "ops").items()]
    unsupported = obj(data.get("unsupported", {}), "unsupported")
    reasons = obj(data.get("unsupported_reasons", {}), "unsupported_reasons")
    out = {"schema": OLD_SCHEMA, "meta": meta, "totals": data.get("totals"), "phases": data.get("phases", {}),
           "modules": modules, "ops": ops,
           "unsupported": [{"op": op, "calls": calls, "reason": reasons.get(op, "")} for op, calls in unsupported.items()]}
    for k in ("params", "trainable_params", "roots", "collective_phases", "module_collectives"):
        if k in data:
            out[k] = data[k]
    if act is not None:
        out["activations"] = {k: act.get(k) for k in ACTIVATION_FIELDS}
    return out


def _sum_json(counts) -> dict:
    out = dict.fromkeys(COUNT_FIELDS, 0)
    for c in counts:
        if not isinstance(c, dict):
            raise ReportError(f"op_phases: expected objects of counts, got {_short(c)}")
        for f in COUNT_FIELDS:
            x = c.get(f, 0)
            if type(x) is not int:
                raise ReportError(f"op_phases: {f}: expected a non-negative integer, got {_short(x)}")
            out[f] += x
    return out


# ----- validation ----------------------------------------------------------------------------------
# What a valid report is: every field a renderer reads has its documented type, integers are below
# 10**MAX_DIGITS, floats are finite, and free-form metadata nests at most META_DEPTH levels. The
# check runs once, at load; the renderers (tables, JSON, HTML) then trust the data.

MAX_DIGITS = 600
"""Counts, parameters and calls are non-negative integers with at most this many digits (below 10**600):
far beyond any real count, small enough for every renderer (and the HTML page's floats) to show exactly."""
_INT_LIMIT = 10**MAX_DIGITS
_INT_ONLY = {int}  # type(True) is bool: booleans are not counts
META_DEPTH = 16
"""Metadata values (lists and objects) nest at most this deep."""
_META_STRINGS = ("flopdispatch_version", "torch_version", "python_version", "created", "mode", "target", "error",
                 "model_class")
_META_STRING_LISTS = ("command", "devices", "dtypes", "inputs", "device_names")


class _Validator:
    """Checks parsed JSON against the schema; the first problem raises a one-line ReportError."""

    def check(self, ok, message):
        if not ok:
            raise ReportError(message)

    def integer(self, x, where):
        if type(x) is int and 0 <= x < _INT_LIMIT:  # the fast path: bool is not int here
            return x
        if isinstance(x, int) and not isinstance(x, bool) and x >= _INT_LIMIT:
            raise ReportError(f"{where}: integer with more than {MAX_DIGITS} digits")
        raise ReportError(f"{where}: expected a non-negative integer, got {_short(x)}")

    def string(self, x, where):
        if not isinstance(x, str):
            raise ReportError(f"{where}: expected a string, got {_short(x)}")
        return x

    def array(self, x, where):
        if not isinstance(x, list):
            raise ReportError(f"{where}: expected a list, got {_short(x)}")
        return x

    def counts(self, x, where):
        if type(x) is dict and "seconds" not in x:  # the fast path: no message built for valid data
            values = [x.get(f, 0) for f in COUNT_FIELDS]
            if set(map(type, values)) == _INT_ONLY and min(values) >= 0 and max(values) < _INT_LIMIT:
                return Counts(*values)
        self.check(isinstance(x, dict), f"{where}: expected an object of counts, got {_short(x)}")
        fields = {f: self.integer(x.get(f, 0), f"{where}.{f}") for f in COUNT_FIELDS}
        if "seconds" in x:
            t = x["seconds"]
            if not (isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t < 1e300
                    and math.isfinite(t)):
                raise ReportError(f"{where}.seconds: expected a non-negative number, got {_short(t)}")
            fields["seconds"] = float(t)
        return Counts(**fields)

    def phase_map(self, x, where):
        if not isinstance(x, dict):
            raise ReportError(f"{where}: expected an object, got {_short(x)}")
        out = {}
        for p in PHASES:  # PHASES order, whatever order the file has
            if p in x:
                out[p] = self.counts(x[p], f"{where}.{p}")
        if len(out) != len(x):
            unknown = sorted(set(x) - set(PHASES))
            raise ReportError(f"{where}: unknown phase {_short(unknown[0])}")
        return out

    def _per_phase(self, x, where, parse_row):
        """{phase: {op: parse_row(row, op, where of the phase)}}, the phases and the objects checked."""
        self.check(isinstance(x, dict), f"{where}: expected an object, got {_short(x)}")
        out = {}
        for p, ops in x.items():
            self.check(p in PHASES, f"{where}: unknown phase {_short(p)}")
            self.check(isinstance(ops, dict), f"{where}.{p}: expected an object, got {_short(ops)}")
            at = f"{where}.{p}"
            out[p] = {op: parse_row(row, op, at) for op, row in ops.items()}
        return out

    def phase_rows(self, x, where, n):
        """{phase: {op: [n integers, then an optional seconds number]}}, rows as n + 1 numbers."""

        def parse(row, op, at):
            if type(row) is list and len(row) == n:  # the fast path: no message built for valid data
                if set(map(type, row)) == _INT_ONLY and min(row) >= 0 and max(row) < _INT_LIMIT:
                    return row + [0.0]
            w = f"{at}[{_short(op)}]"
            self.check(isinstance(row, list) and len(row) in (n, n + 1),
                       f"{w}: expected a list of {n} counts (and seconds), got {_short(row)}")
            r = [self.integer(k, f"{w}[{i}]") for i, k in enumerate(row[:n])]
            t = row[n] if len(row) > n else 0.0
            self.check(isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t < 1e300
                       and math.isfinite(t), f"{w}[{n}]: expected a non-negative number of seconds")
            return r + [float(t)]

        return self._per_phase(x, where, parse)

    def saved(self, m, where):
        """A module's (saved_bytes, self_saved_bytes), both or neither; None when absent."""
        if "saved_bytes" not in m and "self_saved_bytes" not in m:
            return None
        return (self.integer(m.get("saved_bytes"), f"{where}.saved_bytes"),
                self.integer(m.get("self_saved_bytes"), f"{where}.self_saved_bytes"))

    def activations(self, x):
        self.check(isinstance(x, dict), f"activations: expected an object, got {_short(x)}")
        return {k: self.integer(x.get(k), f"activations.{k}") for k in ACTIVATION_FIELDS}

    def self_ops(self, x, where):
        """{phase: {op: [len(SELF_OP_FIELDS) integers]}}."""
        size = len(SELF_OP_FIELDS)

        def parse(row, op, at):
            w = f"{at}[{_short(op)}]"
            self.check(isinstance(row, list) and len(row) == size,
                       f"{w}: expected a list of {size} counts, got {_short(row)}")
            return [self.integer(n, f"{w}[{i}]") for i, n in enumerate(row)]

        return self._per_phase(x, where, parse)

    def meta(self, x):
        """The metadata object: the keys renderers read have their types (or null); any other value
        is plain JSON (finite numbers, bounded integers) nested at most META_DEPTH levels."""
        self.check(isinstance(x, dict), f"meta: expected an object, got {_short(x)}")
        for key, value in x.items():
            where = f"meta.{_short(key, 60)[1:-1]}"
            if value is None:
                continue
            if key in _META_STRINGS:
                self.string(value, where)
            elif key in _META_STRING_LISTS:
                self.array(value, where)
                for i, item in enumerate(value):
                    self.string(item, f"{where}[{i}]")
            elif key == "duration_s":
                self.check(isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e300
                           and math.isfinite(value), f"{where}: expected a non-negative number, got {_short(value)}")
            elif key == "exit_code":
                self.check(type(value) is int and -_INT_LIMIT < value < _INT_LIMIT,
                           f"{where}: expected an integer, got {_short(value)}")
            elif key == "train":
                self.check(isinstance(value, bool), f"{where}: expected true or false, got {_short(value)}")
            else:
                self.json_value(value, where, META_DEPTH)
        return x

    def json_value(self, x, where, depth):
        """Plain JSON with finite numbers and bounded integers, nested at most `depth` levels."""
        stack = [(x, depth)]
        while stack:
            item, left = stack.pop()
            if isinstance(item, (list, dict)):
                self.check(left > 0, f"{where}: nested more than {META_DEPTH} levels deep")
                stack.extend((v, left - 1) for v in (item.values() if isinstance(item, dict) else item))
            elif isinstance(item, float):
                self.check(math.isfinite(item), f"{where}: {item!r} is not a finite number")
            elif isinstance(item, int) and not isinstance(item, bool):
                self.check(-_INT_LIMIT < item < _INT_LIMIT, f"{where}: integer with more than {MAX_DIGITS} digits")
            else:
                self.check(item is None or isinstance(item, (str, bool)), f"{where}: not a JSON value")


def _short(x, limit: int = 40) -> str:
    """A value for an error message: short, one line, escapes visible (containers by their kind)."""
    if isinstance(x, dict):
        return f"an object of {len(x)} keys"
    if isinstance(x, list):
        return f"a list of {len(x)} items"
    if isinstance(x, str):
        s = repr(x[:limit])  # control characters, bidi controls and lone surrogates come out escaped
    elif isinstance(x, int) and not isinstance(x, bool) and abs(x) >= 10**limit:
        s = f"an integer of {len(str(x)) if abs(x) < _INT_LIMIT else 'more than ' + str(MAX_DIGITS)} digits"
    else:
        s = json.dumps(x) if isinstance(x, (bool, int, float, type(None))) else repr(x)
    return s if len(s) <= limit else s[:limit - 3] + "..."


def _first_line(e) -> str:
    text = str(e).strip()
    return _short(text.splitlines()[0] if text else type(e).__name__, 120)[1:-1]


__all__ = ["Report", "ReportError", "SCHEMA", "MAX_DIGITS", "default_meta", "atomic_write"]


_SYMBOLIC_COUNTS = ("flops", "macs", "bytes_read", "bytes_written", "bytes", "causal_macs")


def _symbolic_json(data):
    """The optional ``symbolic`` field (``SymbolicCount.to_dict()``): expressions as strings."""

    def counts(c, where):
        if not isinstance(c, dict):
            raise ReportError(f"{where}: expected an object, got {_short(c)}")
        for k in _SYMBOLIC_COUNTS:
            if k in c and not isinstance(c[k], str):
                raise ReportError(f"{where}.{k}: expected an expression string, got {_short(c[k])}")
        if not isinstance(c.get("calls", 0), int) or isinstance(c.get("calls", 0), bool) or c.get("calls", 0) < 0:
            raise ReportError(f"{where}.calls: expected a non-negative integer, got {_short(c.get('calls'))}")
        return c

    try:
        if not isinstance(data, dict):
            raise ReportError(f"symbolic: expected an object, got {_short(data)}")
        dims = data.get("dims", {})
        if not isinstance(dims, dict) or not all(isinstance(k, str) and isinstance(d, dict)
                                                 and isinstance(d.get("traced"), int) for k, d in dims.items()):
            raise ReportError("symbolic.dims: expected {name: {\"traced\": int}}")
        counts(data.get("totals", {}), "symbolic.totals")
        for group in ("phases", "modules"):
            g = data.get(group, {})
            if not isinstance(g, dict):
                raise ReportError(f"symbolic.{group}: expected an object, got {_short(g)}")
            for k, c in g.items():
                counts(c, f"symbolic.{group}.{_short(k)}")
        if not isinstance(data.get("guards", []), list) or not all(isinstance(x, str) for x in data.get("guards", [])):
            raise ReportError("symbolic.guards: expected a list of strings")
        for k in ("specialized", "not_symbolic"):
            m = data.get(k, {})
            if not isinstance(m, dict) or not all(isinstance(a, str) and isinstance(b, str) for a, b in m.items()):
                raise ReportError(f"symbolic.{k}: expected an object of strings")
    except ReportError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ReportError(f"symbolic: {type(e).__name__}") from None
    return data
