"""Tables people read: human units and the module tree, op and phase tables (rendered with rich).

``render_text(report, ...)`` gives plain text (no colours, ASCII rules: safe in files, pipes and
tests); ``print_report(report, file, ...)`` draws with colours and Unicode tree guides when
``file`` is a terminal and writes the same plain text otherwise. ``count.table(depth)`` is the
module tree of ``render_text`` without the summary lines.

Display options (the command line's): ``by`` = "module" (tree), "op" or "phase"; ``depth`` =
module levels below the root (None: all); ``sort`` = None (model order) or "flops", "macs",
"bytes", "params" (siblings, largest first); ``units`` = "auto" (SI prefixes, three significant
digits) or a fixed "K", "M", "G", "T", "P". Phase columns (the split of FLOPs, or of MACs/bytes when
sorting by them) appear when more than one phase ran.
"""
from __future__ import annotations

import io
from typing import List, Optional

_SI = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K"))
_FIXED = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
UNITS = ("auto",) + tuple(_FIXED)
SORTS = ("flops", "macs", "bytes", "params")
VIEWS = ("module", "op", "phase")
_METRIC_LABEL = {"flops": "FLOPs", "macs": "MACs", "bytes": "bytes", "params": "params"}
_PHASE_SHORT = {"forward": "fwd", "backward": "bwd", "optimizer": "opt", "other": "other"}


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23 M' (SI prefixes, three significant digits)."""
    for scale, prefix in _SI:
        if abs(n) >= scale:
            return f"{n / scale:.3g} {prefix}{unit}"
    return f"{n:.3g} {unit}".rstrip() if isinstance(n, float) else f"{n} {unit}".rstrip()


class _Fmt:
    """Number formatting for one --units choice."""

    def __init__(self, units: str = "auto"):
        if units not in UNITS:
            raise ValueError(f"units must be one of {', '.join(UNITS)}, got {units!r}")
        self.units = units

    def cell(self, n: float, unit: str = "") -> str:
        if self.units == "auto":
            return human(n, unit)
        return f"{n / _FIXED[self.units]:,.2f}"

    def header(self, label: str, unit: str = "") -> str:
        return label if self.units == "auto" else f"{label} ({self.units}{unit})"

    def text(self, n: float, unit: str) -> str:
        if self.units == "auto":
            return human(n, unit)
        return f"{n / _FIXED[self.units]:,.2f} {self.units}{unit}"


def _metric(sort: Optional[str]) -> str:
    """The figure behind the % and phase columns: the sort key, FLOPs for params or model order."""
    return sort if sort in ("flops", "macs", "bytes") else "flops"


def _value(counts, key: str) -> int:
    return counts.bytes if key == "bytes" else getattr(counts, key)


def _pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}" if whole else "0.0"


# ----- rich building blocks ------------------------------------------------------------------------

def _rich():
    import rich.box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    return rich.box, Console, Table, Text


def _box(fancy: bool):
    box, _, _, _ = _rich()
    if fancy:
        return box.SIMPLE
    # rich's SIMPLE box with ASCII rules: a dashed line under the header and above the total.
    return box.Box("    \n    \n -- \n    \n    \n -- \n    \n    \n", ascii=True)


def _table(fancy: bool, columns):
    """columns: (header, justify, footer) triples."""
    _, _, Table, _ = _rich()
    t = Table(box=_box(fancy), show_edge=False, pad_edge=False, show_footer=any(c[2] for c in columns),
              header_style="bold" if fancy else None, footer_style="bold" if fancy else None,
              safe_box=not fancy, padding=(0, 1), collapse_padding=True)
    for header, justify, footer in columns:
        t.add_column(header, justify=justify, footer=footer or "", no_wrap=True,
                     overflow="ellipsis" if fancy else "fold")
    return t


def _style(fancy: bool, share: float, zero: bool) -> Optional[str]:
    if not fancy:
        return None
    if zero:
        return "dim"
    return "bold" if share >= 10.0 else None


# ----- the three views -----------------------------------------------------------------------------

def _module_rows(report, depth: Optional[int], sort: Optional[str]):
    """(name, level, guide) in display order: depth-first, siblings sorted when asked."""
    names = report.module_names
    children = {n: [] for n in names}
    for n in names[1:]:
        parent = n.rpartition(".")[0]
        children.setdefault(parent, []).append(n)
    if sort is not None:
        key = ((lambda n: report.module(n).params) if sort == "params"
               else (lambda n: _value(report.display_counts(n)[0], sort)))
        for kids in children.values():
            kids.sort(key=lambda n: -key(n))  # stable: model order among equals
    out = []

    def walk(name, level, guides):
        out.append((name, level, guides))
        if depth is not None and level >= depth:
            return
        kids = children.get(name, [])
        for i, kid in enumerate(kids):
            walk(kid, level + 1, guides + (i == len(kids) - 1,))

    if names:
        walk(names[0], 0, ())
    return out


def _label(name: str, level: int, guides, fancy: bool) -> str:
    leaf = name.rpartition(".")[2] if name else "(root)"
    if not fancy:
        return "  " * level + leaf
    if level == 0:
        return leaf
    prefix = "".join("    " if last else "│   " for last in guides[:-1])  # ancestors below the root
    return prefix + ("└── " if guides[-1] else "├── ") + leaf


def _phase_columns(report, metric: str, fmt: _Fmt, show: bool = True):
    phases = [p for p in report.phases_run if _value(report.phase(p), metric)]
    if len(phases) < 2 or not show:
        return []
    unit = "B" if metric == "bytes" else ""
    return [(p, _PHASE_SHORT[p] + "\n" + fmt.header(_METRIC_LABEL[metric], unit)) for p in phases]


def _module_table(report, fancy, depth, sort, fmt, phases=True):
    _, _, _, Text = _rich()
    metric = _metric(sort)
    total = report.totals
    whole = _value(total, metric)
    phase_cols = _phase_columns(report, metric, fmt, phases)
    unit = "B" if metric == "bytes" else ""
    cols = [("module", "left", "total"), ("type", "left", ""),
            (fmt.header("params"), "right", fmt.cell(report.params)),
            (fmt.header("MACs"), "right", fmt.cell(total.macs)),
            (fmt.header("FLOPs"), "right", fmt.cell(total.flops))]
    cols += [(h, "right", fmt.cell(_value(report.phase(p), metric), unit)) for p, h in phase_cols]
    cols += [(fmt.header("bytes", "B"), "right", fmt.cell(total.bytes, "B")),
             ("FLOP/B", "right", f"{total.intensity:.1f}"),
             (f"% {_METRIC_LABEL[metric]}", "right", "100.0" if whole else "0.0")]
    timed = getattr(total, "seconds", 0.0) > 0  # count(..., timing=True): op time and achieved rate
    if timed:
        cols += [("time ms", "right", f"{total.seconds * 1e3:.1f}"),
                 ("GFLOP/s", "right", f"{total.flops_per_second / 1e9:.1f}")]
    t = _table(fancy, cols)
    for name, level, guides in _module_rows(report, depth, sort):
        m = report.module(name)
        shown, rolled = report.display_counts(name)
        v = _value(shown, metric)
        share = 100.0 * v / whole if whole else 0.0
        label = _label(name, level, guides, fancy)
        cells = [Text(label, style=_style(fancy, share, shown.calls == 0)),
                 Text(m.type + ("*" if rolled else ""), style="dim" if fancy else None),
                 fmt.cell(m.params), fmt.cell(shown.macs), fmt.cell(shown.flops)]
        cells += [fmt.cell(_value(report.display_counts(name, p)[0], metric), unit) for p, _ in phase_cols]
        cells += [fmt.cell(shown.bytes, "B"), f"{shown.intensity:.1f}", _pct(v, whole)]
        if timed:
            cells += [f"{shown.seconds * 1e3:.1f}", f"{shown.flops_per_second / 1e9:.1f}"]
        t.add_row(*cells)
    if report.module_names:
        root = report.display_counts("")[0]
        out_flops, out_macs = total.flops - root.flops, total.macs - root.macs
        out_bytes, out_v = total.bytes - root.bytes, whole - _value(root, metric)
        if out_flops or out_bytes:
            cells = ["(outside root)", "", "", fmt.cell(out_macs), fmt.cell(out_flops)]
            cells += [fmt.cell(_value(report.phase(p), metric) - _value(report.display_counts("", p)[0], metric), unit)
                      for p, _ in phase_cols]
            cells += [fmt.cell(out_bytes, "B"), f"{out_flops / out_bytes:.1f}" if out_bytes else "0.0",
                      _pct(out_v, whole)]
            if timed:
                cells += [f"{(total.seconds - root.seconds) * 1e3:.1f}", ""]
            t.add_row(*[Text(c, style="italic") if fancy and i == 0 else c for i, c in enumerate(cells)])
    return t


def _op_table(report, fancy, sort, fmt, phases=True):
    _, _, _, Text = _rich()
    metric = _metric(sort)
    total = report.totals
    whole = _value(total, metric)
    phase_cols = _phase_columns(report, metric, fmt, phases)
    unit = "B" if metric == "bytes" else ""
    cols = [("op", "left", "total"), ("calls", "right", f"{total.calls:,}"),
            (fmt.header("MACs"), "right", fmt.cell(total.macs)),
            (fmt.header("FLOPs"), "right", fmt.cell(total.flops))]
    cols += [(h, "right", fmt.cell(_value(report.phase(p), metric), unit)) for p, h in phase_cols]
    cols += [(fmt.header("bytes", "B"), "right", fmt.cell(total.bytes, "B")),
             ("FLOP/B", "right", f"{total.intensity:.1f}"),
             (f"% {_METRIC_LABEL[metric]}", "right", "100.0" if whole else "0.0")]
    t = _table(fancy, cols)
    names = list(report.ops())
    counts = {n: report.op_counts(n) for n in names}
    order = {n: i for i, n in enumerate(names)}
    names.sort(key=lambda n: (-_value(counts[n], metric), order[n]))
    for name in names:
        c = counts[name]
        v = _value(c, metric)
        share = 100.0 * v / whole if whole else 0.0
        label = name + (" (unsupported)" if name in report.unsupported else "")
        style = ("red" if name in report.unsupported else _style(fancy, share, False)) if fancy else None
        cells = [Text(label, style=style),
                 f"{c.calls:,}", fmt.cell(c.macs), fmt.cell(c.flops)]
        cells += [fmt.cell(_value(report.op_counts(name, p), metric), unit) for p, _ in phase_cols]
        cells += [fmt.cell(c.bytes, "B"), f"{c.intensity:.1f}", _pct(v, whole)]
        t.add_row(*cells)
    return t


def _phase_table(report, fancy, sort, fmt, phases=True):
    metric = _metric(sort)
    total = report.totals
    whole = _value(total, metric)
    cols = [("phase", "left", "total"), ("calls", "right", f"{total.calls:,}"),
            (fmt.header("MACs"), "right", fmt.cell(total.macs)),
            (fmt.header("causal MACs"), "right", fmt.cell(total.causal_macs)),
            (fmt.header("FLOPs"), "right", fmt.cell(total.flops)),
            (fmt.header("read", "B"), "right", fmt.cell(total.bytes_read, "B")),
            (fmt.header("written", "B"), "right", fmt.cell(total.bytes_written, "B")),
            ("FLOP/B", "right", f"{total.intensity:.1f}"),
            (f"% {_METRIC_LABEL[metric]}", "right", "100.0" if whole else "0.0")]
    t = _table(fancy, cols)
    for p in report.phases_run:
        c = report.phase(p)
        t.add_row(p, f"{c.calls:,}", fmt.cell(c.macs), fmt.cell(c.causal_macs), fmt.cell(c.flops),
                  fmt.cell(c.bytes_read, "B"), fmt.cell(c.bytes_written, "B"), f"{c.intensity:.1f}",
                  _pct(_value(c, metric), whole))
    return t


def _summary(report, fmt: _Fmt) -> List[str]:
    t, meta = report.totals, report.meta
    target = meta.get("target")
    head = f"flopdispatch: {target}" if target else "flopdispatch"
    if meta.get("mode") == "model" and meta.get("train") is not None:
        head += " (forward + backward)" if meta["train"] else " (forward)"
    parts = [fmt.text(t.flops, "FLOPs"), fmt.text(t.macs, "MACs"), fmt.text(t.bytes, "B") + " moved",
             f"{t.intensity:.1f} FLOP/B", fmt.text(report.params, "") + " params" if report.params else "no params",
             f"{t.calls:,} op calls"]
    if isinstance(meta.get("duration_s"), (int, float)):
        parts.append(f"{meta['duration_s']:.2f} s")
    lines = [head + ": " + ", ".join(p.replace("  ", " ").strip() for p in parts)]
    extra = []
    if meta.get("devices"):
        extra.append("device " + ", ".join(map(str, meta["devices"])))
    if meta.get("dtypes"):
        extra.append("dtype " + ", ".join(map(str, meta["dtypes"])))
    if meta.get("inputs"):
        extra.append("inputs " + " ".join(map(str, meta["inputs"])))
    if extra:
        lines.append("  " + "; ".join(extra))
    phases = [p for p in report.phases_run if report.phase(p).flops]
    if len(phases) > 1:
        lines.append("  " + ", ".join(f"{p} {fmt.text(report.phase(p).flops, 'FLOPs')}" for p in phases))
    if t.causal_macs != t.macs:
        lines.append(f"  causal-aware: {fmt.text(t.causal_macs, 'MACs')} of {fmt.text(t.macs, 'MACs')} "
                     f"({_pct(t.macs - t.causal_macs, t.macs)}% of MACs fall on masked positions)")
    if meta.get("error"):
        lines.append(f"  the run stopped with {meta['error']}: counts cover the work done before it")
    return lines


def _unsupported(report) -> List[str]:
    if not report.unsupported:
        return []
    lines = ["unsupported ops (FLOPs not counted, bytes counted):"]
    width = max(len(k) for k in report.unsupported)
    for op, calls in sorted(report.unsupported.items()):
        reason = report.unsupported_reasons.get(op, "")
        lines.append(f"  {op.ljust(width)}  x{calls}" + (f"  {reason}" if reason else ""))
    return lines


def _renderables(report, *, fancy, by="module", depth=2, sort=None, units="auto", summary=True, console=None):
    if by not in VIEWS:
        raise ValueError(f"by must be one of {', '.join(VIEWS)}, got {by!r}")
    if sort is not None and sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
    _, _, _, Text = _rich()
    fmt = _Fmt(units)
    out = []
    if summary:
        lines = _summary(report, fmt)
        out.append(Text(lines[0], style="bold" if fancy else None))
        out.extend(Text(line) for line in lines[1:])
        out.append(Text(""))
    if by == "module" and not report.module_names:
        out.append(Text("no nn.Module ran: counts by op"))
        by = "op"
    build = {"module": lambda ph: _module_table(report, fancy, depth, sort, fmt, ph),
             "op": lambda ph: _op_table(report, fancy, sort, fmt, ph),
             "phase": lambda ph: _phase_table(report, fancy, sort, fmt, ph)}[by]
    table = build(True)
    wide = console.options.update_width(10**5) if console is not None else None
    if console is not None and console.measure(table, options=wide).maximum > console.width:
        table = build(False)  # a narrow terminal: drop the per-phase columns before squeezing
    out.append(table)
    if by == "module" and any(report.display_counts(n)[1] for n, _, _ in _module_rows(report, depth, None)):
        out.append(Text("* not called itself (a container such as ModuleList): the sum of its children",
                        style="dim" if fancy else None))
    unsupported = _unsupported(report)
    if unsupported:
        out.append(Text(""))
        out.extend(Text(line, style="red" if fancy and i == 0 else None) for i, line in enumerate(unsupported))
    return out


def render_text(report, **options) -> str:
    """Plain text: no colours, ASCII rules, no wrapping (lines as wide as the table needs)."""
    _, Console, _, _ = _rich()
    buf = io.StringIO()
    console = Console(file=buf, width=100_000, force_terminal=False, no_color=True, color_system=None,
                      highlight=False, emoji=False, markup=False, soft_wrap=False, legacy_windows=False)
    for r in _renderables(report, fancy=False, **options):
        console.print(r)
    return "\n".join(line.rstrip() for line in buf.getvalue().rstrip("\n").split("\n"))


def print_report(report, file, *, fancy: Optional[bool] = None, **options) -> None:
    """Print to `file`: coloured, with tree guides, on a terminal; `render_text` otherwise."""
    if fancy is None:
        isatty = getattr(file, "isatty", None)
        fancy = bool(isatty and isatty())
    if not fancy:
        file.write(render_text(report, **options) + "\n")
        file.flush()
        return
    _, Console, _, _ = _rich()
    console = Console(file=file, force_terminal=True, highlight=False, emoji=False, markup=False)
    for r in _renderables(report, fancy=True, console=console, **options):
        console.print(r)


def format_table(counter, depth: int = 2) -> str:
    """The module tree (down to `depth` levels) with params, MACs, FLOPs, bytes and % of FLOPs."""
    from .schema import Report

    return render_text(Report.from_count(counter), depth=depth, summary=False)
