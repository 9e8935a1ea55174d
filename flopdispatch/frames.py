"""Counts as rows for notebooks: ``count.to_pandas(by=...)`` and ``Report.to_pandas(by=...)``.

by="module": one row per (module, phase) where the module ran ops: its inclusive counts (a parent
includes its children) and its own work (``self_*``, the ops run directly in its code). by="op":
one row per (module, phase, op) of each module's own ops. Work outside every module (a loss
outside the model, the optimizer) is in rows whose module is ``"(outside root)"``. So in either
frame the own-work figures add up to the totals exactly (``df.self_flops.sum()`` by module,
``df.flops.sum()`` by op); a subtree's ops are the rows whose module starts with its name.
pandas is optional: the rows themselves need nothing.
"""
from __future__ import annotations

from typing import List, Tuple

OUTSIDE = "(outside root)"
FIELDS = ("calls", "flops", "macs", "bytes_read", "bytes_written", "causal_macs")
MODULE_COLUMNS = ("module", "type", "depth", "phase", "params", *FIELDS, *(f"self_{f}" for f in FIELDS))
OP_COLUMNS = ("module", "phase", "op", *FIELDS)
VIEWS = ("module", "op")


def _values(counts) -> tuple:
    return tuple(getattr(counts, f) for f in FIELDS)


def _depth(name: str) -> int:
    return name.count(".") + 1 if name else 0


def module_rows(report) -> List[tuple]:
    """Rows in MODULE_COLUMNS order (self_* None for a report written before exclusive counts)."""
    exclusive = report.has_exclusive
    rows = []
    for name in report.module_names:
        for phase in report.phases_run:
            inc = report.module(name, phase)
            mine = report.module(name, phase, exclusive=True) if exclusive else None
            if not inc.calls and not (mine is not None and mine.calls):
                continue
            rows.append((name, inc.type, _depth(name), phase, inc.params, *_values(inc),
                         *(_values(mine) if mine is not None else (None,) * len(FIELDS))))
    if exclusive:
        for phase in report.phases_run:
            rest = _values(report.outside(phase, exclusive=True))  # outside every module's own code
            if any(rest):
                rows.append((OUTSIDE, "", 0, phase, 0, *rest, *rest))
    return rows


def op_rows(report) -> List[tuple]:
    """Rows in OP_COLUMNS order: each module's own ops per phase, then the ops run outside every module."""
    if not report.has_exclusive:
        raise ValueError("to_pandas(by='op') needs per-module ops, which this report (written by an older "
                         "flopdispatch) does not have")
    rows = []
    for name in report.module_names:
        for phase in report.phases_run:
            for op, c in report.ops(phase=phase, module=name, exclusive=True).items():
                rows.append((name, phase, op, *(c[f] for f in FIELDS)))
    for phase in report.phases_run:
        for op, c in report.outside_ops(phase).items():  # outside every module's own code
            rest = tuple(c[f] for f in FIELDS)
            if any(rest):
                rows.append((OUTSIDE, phase, op, *rest))
    return rows


def rows(report, by: str = "module") -> Tuple[tuple, List[tuple]]:
    """(columns, rows) of the frame ``to_pandas(by)`` builds."""
    if by == "module":
        return MODULE_COLUMNS, module_rows(report)
    if by == "op":
        return OP_COLUMNS, op_rows(report)
    raise ValueError(f"by must be one of {', '.join(VIEWS)}, got {by!r}")


def to_pandas(report, by: str = "module"):
    """A pandas DataFrame of the report's rows (see the module docstring)."""
    columns, data = rows(report, by)
    try:
        import pandas
    except ImportError:
        raise ImportError("to_pandas() needs pandas, which is not installed: pip install pandas "
                          "(flopdispatch itself does not need it)") from None
    return pandas.DataFrame.from_records(data, columns=list(columns))
