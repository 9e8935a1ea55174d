"""Saved reports: ``Report`` and its JSON schema, ``flopdispatch.report/1``.

A report holds every count of one ``count`` block (totals, per phase, per module and per op, each
also split by phase), the root model's parameters and the run's metadata. It is what
``flopdispatch --json`` writes, what ``flopdispatch show`` and the HTML page render, and what
``Report.load`` reads back; a table rendered from a loaded report equals the table rendered from
the live count.

    report = fd.Report.from_count(c)        # from a finished (or live) count
    report.save("run.json")
    report = fd.Report.load("run.json")     # ReportError (a ValueError) if corrupt or foreign
    report.module("h.0", phase="backward").macs, report.ops(), report.meta["torch_version"]

Schema ``flopdispatch.report/1`` (JSON; all counts are non-negative integers)::

    {
      "schema": "flopdispatch.report/1",
      "meta": {                      # free-form strings/numbers/lists; keys written today:
        "flopdispatch_version": "0.1.0", "torch_version": "2.13.0+cpu", "python_version": "3.11.2",
        "created": "2025-01-01T12:00:00Z",        # UTC, when the report was made
        "command": ["flopdispatch", "run", ...],  # the command line (absent for API reports)
        "mode": "run" | "model" | "demo" | "api",
        "target": "train.py" | "hf:gpt2" | ...,   # what was counted
        "devices": ["cpu"], "dtypes": ["float32"],  # root model: parameters, buffers, inputs
        "duration_s": 1.23,                        # wall time of the counted block
        "exit_code": 0, "error": "ValueError: ..." # run mode: the script's exit and exception
        ...                                        # mode-specific: "inputs", "train", "config"
      },
      "params": 124439808,            # parameters of the root module, or of all roots together
                                      # (each tensor once; 0 when no module ran)
      "trainable_params": 124439808,
      "totals": COUNTS,               # everything counted
      "phases": {"forward": COUNTS, "backward": COUNTS, "optimizer": COUNTS, "other": COUNTS},
                                      # only the phases that ran; they add up to "totals"
      "modules": [MODULE, ...],       # named_modules() order; "" is the root (first)
      "ops": [OP, ...],               # by FLOPs, largest first
      "unsupported": [{"op": "aten::xyz", "calls": 3, "reason": "no formula declared"}, ...],
      "roots": ["G", "D"],            # optional: several roots (count({"G": g, "D": d}), or
                                      # count() seeing several top-level modules): their names,
                                      # modules of depth one; "" is then all of them together
      "activations": {"saved_bytes": int, "saved_peak_bytes": int, "saved_param_bytes": int}
                                      # optional: count(activations=True) only (absent: not measured)
    }
    COUNTS = {"flops": int, "macs": int, "bytes_read": int, "bytes_written": int,
              "causal_macs": int, "calls": int,
              "seconds": float}               # optional: measured op time (count(..., timing=True))
    MODULE = {"name": "h.0", "type": "Block", "params": int, "trainable_params": int,
              "shared_params": int,            # optional (absent: 0): of params, those tied to an
                                               # earlier module's (ModuleCounts.shared_params)
              "saved_bytes": int, "self_saved_bytes": int,  # optional, with "activations": bytes
                                               # saved for backward, inclusive and the module's own
              **COUNTS,                        # inclusive: children's work included
              "phases": {"forward": COUNTS, ...}}   # phases that ran in this module
    OP = {"name": "aten::mm", **COUNTS, "phases": {"forward": COUNTS, ...}}
    # optional, only when a torch.distributed collective ran (COMM = {"calls", "bytes" (payload per
    # rank), "bus_bytes", "world_size", "seconds"}):
    "collective_phases": {"backward": {"c10d::allreduce_": COMM}},  "module_collectives": {"h.0":
    {"backward": {op: COMM}}} (inclusive),  "collectives": {op: COMM} (all phases, for people)

Validation (once, at load; renderers trust the result): the types above; integers below
10**MAX_DIGITS (600 digits); finite floats; unique module and op names, parents before children;
the ``meta`` keys renderers read with their types, other ``meta`` values plain JSON nested at most
META_DEPTH (16) levels. Anything else raises a one-line ``ReportError``.

Derived figures are not stored: bytes = bytes_read + bytes_written, arithmetic intensity =
flops / bytes. The parent of module "a.b.c" is "a.b" (the root "" for "a"). Readers accept any
``flopdispatch.report/1`` file and ignore keys they do not know; a future incompatible change
bumps the number after the slash. ``Report.load`` also reads a bare ``count.to_dict()`` dump
(schema ``flopdispatch.counts/1``).
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import math
import platform
import re
from typing import Any, Dict, List, Optional

from . import comm
from ._counts import PHASES, Counts, ModuleCounts, TotalsShortcuts
from ._version import __version__
from .htmlreport import write_html
from .report import UNITS, parse_depth, render_text, terminal_safe

SCHEMA = "flopdispatch.report/1"
COUNTS_SCHEMA = "flopdispatch.counts/1"
COUNT_FIELDS = ("flops", "macs", "bytes_read", "bytes_written", "causal_macs", "calls")
# Measured op time (count(..., timing=True)), when this flopdispatch's Counts has it: an optional
# float, written only when non-zero.
_TIMED = "seconds" in {f.name for f in dataclasses.fields(Counts)}
# The validator builds Counts positionally when its first fields are COUNT_FIELDS, in this order.
_POSITIONAL = tuple(f.name for f in dataclasses.fields(Counts))[:len(COUNT_FIELDS)] == COUNT_FIELDS


_INT_LIST = re.compile(r"\[\n *(\d+(?:,\n *\d+)*)\n *\]")


class ReportError(ValueError):
    """A file that is not a readable flopdispatch report (the message is one line)."""


def _counts(d: dict) -> Counts:
    extra = {"seconds": float(d.get("seconds") or 0.0)} if _TIMED else {}
    return Counts(**{f: d.get(f, 0) for f in COUNT_FIELDS}, **extra)


def _counts_json(c: Counts) -> dict:
    out = {f: getattr(c, f) for f in COUNT_FIELDS}
    if getattr(c, "seconds", 0.0):
        out["seconds"] = c.seconds
    return out


class _Entry:
    """One module or op of a report: its counts, phase split and (modules) type and params."""

    __slots__ = ("name", "type", "params", "trainable_params", "shared_params", "counts", "phases", "self_ops",
                 "saved")

    def __init__(self, name, counts, phases, type="", params=0, trainable_params=0, self_ops=None,
                 shared_params=0, saved=None):
        self.name, self.counts, self.phases = name, counts, phases
        self.type, self.params, self.trainable_params = type, params, trainable_params
        self.shared_params = shared_params
        # modules: the ops run directly in the module, {phase: {op: [6 ints in SELF_OP_FIELDS order]}};
        # None in a report written before exclusive counts existed
        self.self_ops = self_ops
        # modules, with activation memory measured: (saved bytes inclusive, exclusive); else None
        self.saved = saved


ACTIVATION_FIELDS = ("saved_bytes", "saved_peak_bytes", "saved_param_bytes")
"""The report's ``activations`` object (count(activations=True)): totals in bytes."""

SELF_OP_FIELDS = ("calls", "flops", "macs", "bytes_read", "bytes_written", "causal_macs")
"""The order of the numbers in a module's ``self_ops`` rows."""


def _self_ops_json(self_ops):
    return {p: {op: list(row) for op, row in ops.items()} for p, ops in self_ops.items()}


def default_meta(**extra) -> dict:
    """The metadata every report carries, plus ``extra`` (None values dropped)."""
    import torch  # here: reading and rendering reports needs no torch

    meta = {
        "flopdispatch_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    meta.update({k: v for k, v in extra.items() if v is not None})
    return meta


class Report(TotalsShortcuts):
    """Every count of one counted block plus metadata; the same read API as ``count``.

    Build one with ``Report.from_count(c)``, ``Report.load(path)`` or ``Report.from_dict(data)``.
    """

    def __init__(self, *, meta, params, trainable_params, totals, phases, modules, ops, unsupported, reasons,
                 roots=None, activations=None):
        self.meta: Dict[str, Any] = meta
        # several roots (count({"G": g, "D": d})): their names, the modules of depth one; one root: [""]
        self.roots: List[str] = list(roots) if roots else ([""] if modules else [])
        self.params: int = params
        self.trainable_params: int = trainable_params
        self.totals: Counts = totals
        self._phases: Dict[str, Counts] = phases
        self._modules: List[_Entry] = modules
        self._by_name = {m.name: m for m in modules}
        self._ops: List[_Entry] = ops
        self._op_by_name = {o.name: o for o in ops}
        self.unsupported: Dict[str, int] = unsupported
        self.unsupported_reasons: Dict[str, str] = reasons
        self._collective_phases, self._module_collectives = {}, {}  # comm.parse: set after construction
        self._display = self._children = None
        self.symbolic: Optional[dict] = None  # fd.symbolic's expressions (SymbolicCount.to_dict()), if any
        self._self_cache = {}
        # count(activations=True): {"saved_bytes", "saved_peak_bytes", "saved_param_bytes"}; else None
        self.activations: Optional[Dict[str, int]] = activations

    # ----- construction ------------------------------------------------------------------------

    @classmethod
    def from_count(cls, counter, meta: Optional[dict] = None) -> "Report":
        """The report of a ``flopdispatch.count`` (finished, or live inside its block)."""
        data = counter.to_dict()
        full_meta = default_meta(mode="api")
        full_meta.update(comm.rank_meta())  # rank and world size of an initialised process group
        full_meta.update(meta or {})
        if "ignored" in data:  # count(ignore=...): what was left out, stated in the report
            ig = data["ignored"]
            full_meta["ignored"] = {"modules": list(ig["modules"]),
                                    **{k: ig["totals"][k] for k in ("flops", "macs", "bytes_read", "bytes_written",
                                                                    "calls")}}
        return cls._from_counts(data, full_meta, "count.to_dict()")

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
        """A report from parsed JSON (``flopdispatch.report/1`` or a ``count.to_dict()`` dump)."""
        if not isinstance(data, dict) or not isinstance(data.get("schema"), str):
            raise ReportError(f"{source}: not a flopdispatch report (no \"schema\" field)")
        schema = data["schema"]
        if schema == COUNTS_SCHEMA:
            return cls._from_counts(data, {}, source)
        name, _, version = schema.partition("/")
        if name != SCHEMA.partition("/")[0]:
            raise ReportError(f"{source}: not a flopdispatch report (schema {schema!r})")
        if version != SCHEMA.partition("/")[2]:
            raise ReportError(f"{source}: unsupported report version {schema!r} (this flopdispatch reads {SCHEMA!r})")
        try:
            return cls._parse(data)
        except ReportError as e:
            raise ReportError(f"{source}: corrupt report: {e}") from None

    @classmethod
    def _parse(cls, data: dict) -> "Report":
        v = _Validator()
        meta = v.meta(data.get("meta", {}))
        totals = v.counts(data.get("totals"), "totals")
        phases = v.phase_map(data.get("phases", {}), "phases")
        modules, seen = [], set()
        for i, m in enumerate(v.array(data.get("modules", []), "modules")):
            where = f"modules[{i}]"
            if not isinstance(m, dict):
                raise ReportError(f"{where}: expected an object, got {_short(m)}")
            name = v.string(m.get("name"), f"{where}.name")
            if name in seen:
                raise ReportError(f"{where}: duplicate module name {_short(name)}")
            parent = name.rpartition(".")[0] if "." in name else ("" if name else None)
            if parent is not None and parent not in seen:
                raise ReportError(f"{where}: parent of {_short(name)} is not listed before it")
            seen.add(name)
            modules.append(_Entry(name, v.counts(m, where), v.phase_map(m.get("phases", {}), f"{where}.phases"),
                                  type=v.string(m.get("type", ""), f"{where}.type"),
                                  params=v.integer(m.get("params", 0), f"{where}.params"),
                                  trainable_params=v.integer(m.get("trainable_params", 0),
                                                             f"{where}.trainable_params"),
                                  shared_params=v.integer(m.get("shared_params", 0), f"{where}.shared_params"),
                                  self_ops=v.self_ops(m["self_ops"], f"{where}.self_ops") if "self_ops" in m else None,
                                  saved=v.saved(m, where)))
        v.check(not modules or modules[0].name == "", "modules[0]: the root module (name \"\") must come first")
        ops, op_names = [], set()
        for i, o in enumerate(v.array(data.get("ops", []), "ops")):
            where = f"ops[{i}]"
            if not isinstance(o, dict):
                raise ReportError(f"{where}: expected an object, got {_short(o)}")
            name = v.string(o.get("name"), f"{where}.name")
            if name in op_names:
                raise ReportError(f"{where}: duplicate op name {_short(name)}")
            op_names.add(name)
            ops.append(_Entry(name, v.counts(o, where), v.phase_map(o.get("phases", {}), f"{where}.phases")))
        unsupported, reasons = {}, {}
        for i, u in enumerate(v.array(data.get("unsupported", []), "unsupported")):
            where = f"unsupported[{i}]"
            if not isinstance(u, dict):
                raise ReportError(f"{where}: expected an object, got {_short(u)}")
            op = v.string(u.get("op"), f"{where}.op")
            if op in unsupported:
                raise ReportError(f"{where}: duplicate op {_short(op)}")
            unsupported[op] = v.integer(u.get("calls", 0), f"{where}.calls")
            reasons[op] = v.string(u.get("reason", ""), f"{where}.reason")
        roots = None
        if "roots" in data:  # several roots: names of depth one, listed modules, each once
            roots = [v.string(r, f"roots[{i}]") for i, r in enumerate(v.array(data["roots"], "roots"))]
            for i, r in enumerate(roots):
                v.check(r and "." not in r and r in seen, f"roots[{i}]: {_short(r)} is not a module of depth one")
            v.check(len(set(roots)) == len(roots), "roots: a name is listed twice")
        activations = v.activations(data["activations"]) if "activations" in data else None
        report = cls(meta=meta, params=v.integer(data.get("params", 0), "params"),
                     trainable_params=v.integer(data.get("trainable_params", 0), "trainable_params"),
                     totals=totals, phases=phases, modules=modules, ops=ops, unsupported=unsupported,
                     reasons=reasons, roots=roots, activations=activations)
        report._collective_phases, report._module_collectives = comm.parse(data, v)
        if "symbolic" in data:
            report.symbolic = _symbolic_json(data["symbolic"])
        return report

    @classmethod
    def _from_counts(cls, data: dict, meta: dict, source: str) -> "Report":
        """From ``count.to_dict()`` output (older dumps lack the per-phase splits: left empty)."""
        try:
            if not meta:
                meta = {k: data[k] for k in ("torch_version", "flopdispatch_version") if k in data}
            module_phases = data.get("module_phases", {})
            module_self_ops = data.get("module_self_ops")
            act = data.get("activations")
            saved = act.get("modules", {}) if act is not None else None
            modules = []
            for name, m in data.get("modules", {}).items():
                modules.append(_Entry(name, _counts(m), {p: _counts(c) for p, c in module_phases.get(name, {}).items()},
                                      type=m.get("type", ""), params=m.get("params", 0),
                                      trainable_params=m.get("trainable_params", 0),
                                      shared_params=m.get("shared_params", 0),
                                      self_ops=None if module_self_ops is None else module_self_ops.get(name, {}),
                                      saved=None if saved is None else (saved[name]["saved_bytes"],
                                                                        saved[name]["self_saved_bytes"])))
            op_phases = data.get("op_phases")
            ops = []
            if op_phases is not None:
                merged: Dict[str, Dict[str, Counts]] = {}
                for phase in PHASES:
                    for name, c in op_phases.get(phase, {}).items():
                        merged.setdefault(name, {})[phase] = _counts(c)
                for name, split in merged.items():
                    ops.append(_Entry(name, _sum(split.values()), split))
            else:
                ops = [_Entry(name, _counts(c), {}) for name, c in data.get("ops", {}).items()]
            ops.sort(key=lambda e: (-e.counts.flops, -e.counts.bytes, e.name))
            params = data.get("params", modules[0].params if modules else 0)
            trainable = data.get("trainable_params", modules[0].trainable_params if modules else 0)
            report = cls(meta=meta, params=params, trainable_params=trainable, totals=_counts(data["totals"]),
                         phases={p: _counts(c) for p, c in data.get("phases", {}).items()}, modules=modules, ops=ops,
                         unsupported=dict(data.get("unsupported", {})),
                         reasons=dict(data.get("unsupported_reasons", {})), roots=data.get("roots"),
                         activations=None if act is None else {k: act[k] for k in ACTIVATION_FIELDS})
            report._collective_phases = data.get("collective_phases", {})
            report._module_collectives = data.get("module_collectives", {})
        except (KeyError, TypeError, AttributeError, ValueError, OverflowError, RecursionError) as e:
            raise ReportError(f"{source}: corrupt counts dump ({type(e).__name__}: {_first_line(e)})") from None
        # Round-trip through the validating parser: a report from a count and one from its file agree.
        try:
            text = json.dumps(report.to_dict(), default=str)
        except (ValueError, TypeError, RecursionError) as e:  # an int past the int-string limit, a deep meta
            raise ReportError(f"{source}: cannot be written as JSON ({type(e).__name__}: {_first_line(e)})") from None
        return cls.from_dict(json.loads(text), source=source)

    # ----- saving ------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The ``flopdispatch.report/1`` JSON object."""
        return {
            "schema": SCHEMA,
            "meta": self.meta,
            "params": self.params,
            "trainable_params": self.trainable_params,
            "totals": _counts_json(self.totals),
            "phases": {p: _counts_json(c) for p, c in self._phases.items()},
            "modules": [{"name": m.name, "type": m.type, "params": m.params, "trainable_params": m.trainable_params,
                         **({"shared_params": m.shared_params} if m.shared_params else {}),
                         **({} if m.saved is None else {"saved_bytes": m.saved[0], "self_saved_bytes": m.saved[1]}),
                         **_counts_json(m.counts), "phases": {p: _counts_json(c) for p, c in m.phases.items()},
                         **({} if m.self_ops is None else {"self_ops": _self_ops_json(m.self_ops)})}
                        for m in self._modules],
            "ops": [{"name": o.name, **_counts_json(o.counts),
                     "phases": {p: _counts_json(c) for p, c in o.phases.items()}} for o in self._ops],
            "unsupported": [{"op": op, "calls": calls, "reason": self.unsupported_reasons.get(op, "")}
                            for op, calls in sorted(self.unsupported.items())],
            **({"roots": list(self.roots)} if self.roots not in ([], [""]) else {}),
            **({} if self.activations is None else {"activations": dict(self.activations)}),
            **self._collectives_json(),
            **({"symbolic": self.symbolic} if self.symbolic is not None else {}),
        }

    def _collectives_json(self) -> dict:
        return comm.report_fields(self._collective_phases, self._module_collectives)

    def collectives(self, phase: Optional[str] = None, module: Optional[str] = None) -> Dict[str, dict]:
        """Per collective op, as ``count.collectives``: {op: {calls, bytes, bus_bytes, world_size,
        seconds}} (``module``: inclusive, its subtree's)."""
        if phase is not None and phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
        return comm.select(self._collective_phases, self._module_collectives, phase=phase, module=module)

    def to_json(self, indent: Optional[int] = 1) -> str:
        text = json.dumps(self.to_dict(), indent=indent, default=str)
        # lists of integers (the modules' self_ops rows) on one line each: a third of the file's
        # size for a model's own ops; JSON strings hold no raw newline, so only lists can match
        if indent is None:
            return text
        return _INT_LIST.sub(lambda m: "[" + ", ".join(n.strip() for n in m.group(1).split(",")) + "]", text)

    def save(self, path) -> None:
        """Write the report as JSON (``flopdispatch.report/1``)."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json())
            f.write("\n")

    def table(self, depth=2, by: str = "module", sort: Optional[str] = None, units: str = "auto",
              summary: bool = False) -> str:
        """The table ``flopdispatch show`` prints (same options as ``count.table``); with
        ``summary=True`` the header lines too."""
        if units not in UNITS:
            raise ValueError(f"units must be one of {', '.join(UNITS)}, got {units!r}")
        return render_text(self, depth=parse_depth(depth), by=by, sort=sort, units=units, summary=summary)

    def save_html(self, path) -> None:
        """Write the self-contained HTML page (``--html``)."""
        write_html(self, path)

    def to_pandas(self, by: str = "module"):
        """A pandas DataFrame of the counts (pandas is optional; see ``count.to_pandas``)."""
        from .frames import to_pandas

        return to_pandas(self, by)

    # ----- the count API -----------------------------------------------------------------------

    @property
    def module_names(self) -> List[str]:
        return [m.name for m in self._modules]

    @property
    def phases_run(self) -> List[str]:
        """Phases with at least one counted op, in PHASES order."""
        return [p for p in PHASES if p in self._phases and self._phases[p].calls]

    def phase(self, name: str) -> Counts:
        if name not in PHASES:
            raise ValueError(f"unknown phase {name!r}; expected one of {', '.join(PHASES)}")
        return self._phases.get(name, Counts())

    @property
    def has_exclusive(self) -> bool:
        """Whether the report has each module's own ops (exclusive counts, per-module ops):
        reports written by flopdispatch before they existed do not."""
        return bool(self._modules) and all(m.self_ops is not None for m in self._modules)

    def _need_exclusive(self):
        if not self.has_exclusive:
            raise ValueError("this report has no per-module ops (exclusive counts): it was written by an "
                             "older flopdispatch")

    def _self_counts(self, name: str, phase: Optional[str]) -> Counts:
        key = (name, phase)
        c = self._self_cache.get(key)
        if c is None:
            rows = [row for p, ops in self._by_name[name].self_ops.items() if phase is None or p == phase
                    for row in ops.values()]
            c = self._self_cache[key] = _sum(Counts(**dict(zip(SELF_OP_FIELDS, row))) for row in rows)
        return c

    def module(self, name: str = "", phase: Optional[str] = None, exclusive: bool = False) -> ModuleCounts:
        """A module's counts (inclusive; ``exclusive=True``: its own ops only, without seconds)."""
        if name not in self._by_name:
            raise KeyError(f"no module named {name!r} in this report")
        if phase is not None and phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
        m = self._by_name[name]
        if exclusive:
            self._need_exclusive()
            c = self._self_counts(name, phase)
        else:
            c = m.counts if phase is None else m.phases.get(phase, Counts())
        saved = m.saved[1 if exclusive else 0] if m.saved is not None and phase in (None, "forward") else None
        return ModuleCounts(**_counts_json(c), name=name, type=m.type, params=m.params,
                            trainable_params=m.trainable_params, shared_params=m.shared_params, saved_bytes=saved)

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

    def display_counts(self, name: str = "", phase: Optional[str] = None):
        """(counts, rolled_up) of a module as tables and pictures show it.

        A container that never ran itself (a ModuleList or ModuleDict: its forward is not called,
        so its own inclusive counts are 0) shows the sum of its children's displayed counts, and
        ``rolled_up`` is True; every other module shows its own inclusive counts.
        """
        if name not in self._by_name:
            raise KeyError(f"no module named {name!r} in this report")
        if phase is not None and phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
        if self._display is None:
            self._display = {}
        table = self._display.get(phase)
        if table is None:
            table = self._display[phase] = self._display_table(phase)
        return table[name]

    def _display_table(self, phase: Optional[str]) -> Dict[str, tuple]:
        """display_counts of every module for one phase, in one bottom-up pass (no recursion: a
        parent is listed before its children, so the reversed list has every child before its parent)."""
        if self._children is None:
            self._children = {}
            for m in self._modules[1:]:
                self._children.setdefault(m.name.rpartition(".")[0], []).append(m.name)
        table: Dict[str, tuple] = {}
        for m in reversed(self._modules):
            kids = self._children.get(m.name)
            if m.counts.calls == 0 and kids:
                table[m.name] = (_sum(table[k][0] for k in kids), True)
            else:
                c = m.counts if phase is None else m.phases.get(phase, Counts())
                table[m.name] = (Counts(**_counts_json(c)), False)
        return table

    def ops(self, phase: Optional[str] = None, module: Optional[str] = None,
            exclusive: bool = False) -> Dict[str, dict]:
        """Per op: {calls, flops, macs, bytes_read, bytes_written, causal_macs}, by FLOPs.

        ``module``: the ops of that module's subtree (the modules named below it), or with
        ``exclusive=True`` its own ops only.
        """
        if phase is not None and phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
        if exclusive and module is None:
            raise ValueError("ops(exclusive=True) needs a module name")
        rows = []
        if module is not None:
            if module not in self._by_name:
                raise KeyError(f"no module named {module!r} in this report")
            self._need_exclusive()
            prefix = module + "."
            names = [module] if exclusive else [n for n in self._by_name
                                                if n == module or not module or n.startswith(prefix)]
            merged: Dict[str, list] = {}
            for n in names:
                for p, ops in self._by_name[n].self_ops.items():
                    if phase is None or p == phase:
                        for op, row in ops.items():
                            merged.setdefault(op, []).append(Counts(**dict(zip(SELF_OP_FIELDS, row))))
            rows = [(op, _sum(cs)) for op, cs in merged.items()]
        for o in self._ops if module is None else ():
            c = o.counts if phase is None else o.phases.get(phase)
            if c is not None and (phase is None or c.calls):
                rows.append((o.name, c))
        rows.sort(key=lambda r: (-r[1].flops, -r[1].bytes, r[0]))
        return {name: {"calls": c.calls, "flops": c.flops, "macs": c.macs, "bytes_read": c.bytes_read,
                       "bytes_written": c.bytes_written, "causal_macs": c.causal_macs} for name, c in rows}

    def op_counts(self, name: str, phase: Optional[str] = None) -> Counts:
        o = self._op_by_name.get(name)
        if o is None:
            raise KeyError(f"no op named {name!r} in this report")
        return o.counts if phase is None else o.phases.get(phase, Counts())

    def __eq__(self, other):
        if not isinstance(other, Report):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self):
        t = self.totals
        return (f"<flopdispatch.Report {terminal_safe(self.meta.get('target') or '')} flops={t.flops} "
                f"macs={t.macs} bytes={t.bytes}>")

    def _repr_html_(self):  # Jupyter: the module table and the interactive page (flopdispatch.notebook)
        from . import notebook
        return notebook.report_html(self)


def _sum(counts) -> Counts:
    out = dict.fromkeys(COUNT_FIELDS, 0)
    seconds = 0.0
    for c in counts:
        for f in COUNT_FIELDS:
            out[f] += getattr(c, f)
        seconds += getattr(c, "seconds", 0.0)
    return Counts(**out, **({"seconds": seconds} if _TIMED else {}))


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
                return Counts(*values) if _POSITIONAL else Counts(**dict(zip(COUNT_FIELDS, values)))
        self.check(isinstance(x, dict), f"{where}: expected an object of counts, got {_short(x)}")
        fields = {f: self.integer(x.get(f, 0), f"{where}.{f}") for f in COUNT_FIELDS}
        if "seconds" in x:
            t = x["seconds"]
            if not (isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t < 1e300
                    and math.isfinite(t)):
                raise ReportError(f"{where}.seconds: expected a non-negative number, got {_short(t)}")
            if _TIMED:
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
        self.check(isinstance(x, dict), f"{where}: expected an object, got {_short(x)}")
        out = {}
        for p, ops in x.items():
            self.check(p in PHASES, f"{where}: unknown phase {_short(p)}")
            self.check(isinstance(ops, dict), f"{where}.{p}: expected an object, got {_short(ops)}")
            rows = out[p] = {}
            for op, row in ops.items():
                self.check(isinstance(row, list) and len(row) == len(SELF_OP_FIELDS),
                           f"{where}.{p}[{_short(op)}]: expected a list of {len(SELF_OP_FIELDS)} counts, got {_short(row)}")
                rows[op] = [self.integer(n, f"{where}.{p}[{_short(op)}][{i}]") for i, n in enumerate(row)]
        return out

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


__all__ = ["Report", "ReportError", "SCHEMA", "MAX_DIGITS", "default_meta"]


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
