"""Tables people read: human units and the module tree, op and phase tables (rendered with rich).

``render_text(report, ...)`` gives plain text (no colours, ASCII rules: safe in files, pipes and
tests); ``print_report(report, file, ...)`` draws with colours and Unicode tree guides when
``file`` is a terminal and writes the same plain text otherwise. ``count.table(depth)`` is the
module tree of ``render_text`` without the summary lines.

Display options (the command line's): ``by`` = "module" (tree), "op" or "phase"; ``depth`` =
module levels below the root (None: all); ``sort`` = None (model order) or "flops", "macs",
"bytes", "params" (siblings, largest first); ``units`` = "auto" (SI prefixes up to E, three
significant digits, ``2.7e22`` from 10**21 on) or a fixed "K", "M", "G", "T", "P" (exact digits for
ints of any size). Phase columns (the split of FLOPs, or of MACs/bytes when
sorting by them) appear when more than one phase ran.

Names and metadata are data from a file: every string shown passes through ``terminal_safe``
(control and format characters as visible escapes). Plain-text tables are drawn by a linear
renderer (``_PlainTable``, rich's layout); rich draws terminal tables of up to 2,000 rows.

The renderers import nothing of the counter or the saved report: they read any object with the
report API (``Report``), so the imports point one way (``tests/package/test_imports.py``).
"""
from __future__ import annotations

import math
from typing import List, Optional

from ._counts import PHASES
from ._text import terminal_safe

_SI = ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K"))
_FIXED = {"K": 3, "M": 6, "G": 9, "T": 12, "P": 15}  # --units: the power of ten of each prefix
UNITS = ("auto",) + tuple(_FIXED)
SORTS = ("flops", "macs", "bytes", "params")
VIEWS = ("module", "op", "phase")
_METRIC_LABEL = {"flops": "FLOPs", "macs": "MACs", "bytes": "bytes", "params": "params"}
_PHASE_SHORT = {"forward": "fwd", "backward": "bwd", "optimizer": "opt", "other": "other"}
_SCIENTIFIC = 10**21  # from 1000 E on, numbers are written 2.7e22 (no prefix people read at a glance)
_FANCY_MAX_ROWS = 2000  # longer tables are plain text on a terminal too
_MAX_INDENT = 32  # module tree levels drawn as indentation; deeper rows say their level instead


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23 M' (SI prefixes up to E, three significant digits; from 1e21 on '2.7e22').

    Any int is exact (no float conversion: 10**400 -> '1e400'); floats as Python formats them."""
    if type(n) is int:  # the fast path (tables format many ints): the same text as the general one below
        a = -n if n < 0 else n
        if a < 1000:
            return f"{n} {unit}".rstrip()
        if a < _SCIENTIFIC:
            i = 6 - (len(str(a)) - 1) // 3  # the largest prefix not above a: 4-6 digits K (_SI[5]) .. 19-21 E
            scale, prefix = _SI[i]
            text = f"{n / scale:.3g}"
            if abs(float(text)) < 1000:
                return f"{text} {prefix}{unit}".rstrip()
            if i:  # 999.6 K rounds to 1 M, not '1e+03 K'
                scale, prefix = _SI[i - 1]
                return f"{n / scale:.3g} {prefix}{unit}".rstrip()
            # 999.6 E and up: the general path writes it in scientific form
    if isinstance(n, int) and abs(n) >= _SCIENTIFIC:
        return f"{_scientific(n)} {unit}".rstrip()
    if isinstance(n, float) and not math.isfinite(n):
        return f"{n} {unit}".rstrip()
    if isinstance(n, float) and abs(n) >= _SCIENTIFIC:
        mantissa, _, exponent = f"{n:.3g}".partition("e")
        return f"{mantissa}e{int(exponent)} {unit}".rstrip()
    for i, (scale, prefix) in enumerate(_SI + ((1, ""),)):
        if abs(n) >= scale or not prefix:
            if not prefix and isinstance(n, int):
                return f"{n} {unit}".rstrip()
            text = f"{n / scale:.3g}" if prefix else f"{n:.3g}"
            if abs(n) >= 1 and abs(float(text)) >= 1000:  # 999.6 K rounds to 1 M, not '1e+03 K'
                if i == 0:
                    return f"{_scientific(round(n))} {unit}".rstrip()
                scale, prefix = _SI[i - 1]
                text = f"{n / scale:.3g}"
            return f"{text} {prefix}{unit}".rstrip()
    raise AssertionError("unreachable")


def _scientific(n: int) -> str:
    """An int of any size with three significant digits, exactly rounded: 27 * 10**21 -> '2.7e22'."""
    sign, n = ("-" if n < 0 else ""), abs(n)
    if n < 1000:
        return f"{sign}{n}"
    exponent = int(math.log10(n))  # math.log10 takes ints of any size; the float may be off by one:
    while 10**exponent > n:
        exponent -= 1
    while 10 ** (exponent + 1) <= n:
        exponent += 1
    q, r = divmod(n, 10 ** (exponent - 2))  # q: the three leading digits
    if 2 * r > 10 ** (exponent - 2) or (2 * r == 10 ** (exponent - 2) and q % 2):  # round half to even
        q += 1
    if q == 1000:
        q, exponent = 100, exponent + 1
    mantissa = f"{q // 100}.{q % 100:02d}".rstrip("0").rstrip(".")
    return f"{sign}{mantissa}e{exponent}"


def _fixed(n, power: int) -> str:
    """n / 10**power with two decimals and thousands separators; exact for ints of any size."""
    if isinstance(n, float) or abs(n) < 2**53:
        return f"{n / 10.0 ** power:,.2f}"
    q, r = divmod(abs(n) * 100, 10**power)
    if 2 * r > 10**power or (2 * r == 10**power and q % 2):
        q += 1
    return f"{'-' if n < 0 else ''}{q // 100:,}.{q % 100:02d}"


def parse_depth(depth) -> Optional[int]:
    """A table depth: an int >= 0 (module levels below the root), or None / "all" for every level.

    Negative levels are an error (``--depth -1`` and ``table(depth=-1)`` alike), not "all"."""
    if depth is None:
        return None
    given = depth
    if isinstance(depth, str):
        text = depth.strip().lower()
        if text in ("all", "max"):
            return None
        try:
            depth = int(text)
        except ValueError:
            raise ValueError(f"expected a level count (0, 1, 2...) or 'all', got {depth!r}") from None
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"expected a level count (0, 1, 2...) or 'all', got {given!r}")
    return depth


def _ratio(a, b) -> float:
    """a / b for numbers of any size (b != 0): an int quotient too large for a float is +-inf."""
    try:
        return a / b
    except OverflowError:
        return math.inf if (a > 0) == (b > 0) else -math.inf


class _Fmt:
    """Number formatting for one --units choice."""

    def __init__(self, units: str = "auto"):
        if units not in UNITS:
            raise ValueError(f"units must be one of {', '.join(UNITS)}, got {units!r}")
        self.units = units

    def cell(self, n: float, unit: str = "") -> str:
        if self.units == "auto":
            return human(n, unit)
        return _fixed(n, _FIXED[self.units])

    def header(self, label: str, unit: str = "") -> str:
        return label if self.units == "auto" else f"{label} ({self.units}{unit})"

    def text(self, n: float, unit: str) -> str:
        if self.units == "auto":
            return human(n, unit)
        return f"{_fixed(n, _FIXED[self.units])} {self.units}{unit}"


def _metric(sort: Optional[str]) -> str:
    """The figure behind the % and phase columns: the sort key, FLOPs for params or model order."""
    return sort if sort in ("flops", "macs", "bytes") else "flops"


def _value(counts, key: str) -> int:
    return counts.bytes if key == "bytes" else getattr(counts, key)


def _share(part, whole) -> float:
    """100 * part / whole as a float (0.0 when whole is 0), for any size of ints."""
    return _ratio(100 * part, whole) if whole else 0.0


def _pct(part, whole) -> str:
    return f"{_share(part, whole):.1f}"


def _quotient(a, b) -> str:
    """a / b with one decimal ("0.0" when b is 0); a quotient of ints past float range as '2.7e400'."""
    if not b:
        return "0.0"
    q = _ratio(a, b)
    if abs(q) < 1e21:
        return f"{q:.1f}"
    if isinstance(a, int) and isinstance(b, int):
        return _scientific(a // b if (a > 0) == (b > 0) else -(abs(a) // abs(b)))
    return human(q)


def _intensity(counts) -> str:
    """FLOPs per byte moved, one decimal ("0.0" when nothing moved)."""
    return _quotient(counts.flops, counts.bytes)


def _rate(counts) -> str:
    """Achieved GFLOP/s over the measured time, one decimal."""
    seconds = getattr(counts, "seconds", 0.0)
    return f"{_ratio(counts.flops, seconds * 1e9):.1f}" if seconds else "0.0"


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
    """columns: (header, justify, footer) triples. Plain text: a _PlainTable; a terminal: rich."""
    if not fancy:
        return _PlainTable(columns)
    _, _, Table, _ = _rich()
    t = Table(box=_box(fancy), show_edge=False, pad_edge=False, show_footer=any(c[2] for c in columns),
              header_style="bold" if fancy else None, footer_style="bold" if fancy else None,
              safe_box=not fancy, padding=(0, 1), collapse_padding=True)
    for header, justify, footer in columns:
        t.add_column(header, justify=justify, footer=footer or "", no_wrap=True,
                     overflow="ellipsis" if fancy else "fold")
    return t


class _PlainTable:
    """A plain-text table in linear time (rich spends ~1.5 ms a row): columns two spaces apart,
    headers bottom-aligned, a dashed rule under the header and above the footer. The layout is
    the one rich draws with the ASCII box of ``_box(False)``."""

    def __init__(self, columns):
        self.columns = list(columns)
        self.rows = []

    def add_row(self, *cells):
        self.rows.append([c if isinstance(c, str) else c.plain for c in cells])

    def lines(self) -> List[str]:
        from rich.cells import cell_len  # terminal cells: a wide (CJK) character takes two

        headers = [h.split("\n") for h, _, _ in self.columns]
        height = max(len(h) for h in headers)
        footers = [f or "" for _, _, f in self.columns] if any(f for _, _, f in self.columns) else None
        widths = [max(map(cell_len, h)) for h in headers]

        def sizes(cells):  # printable ASCII is one cell a character: rich's cell_len for the rest
            return [len(c) if c.isascii() and c.isprintable() else cell_len(c) for c in cells]

        body = [(row, sizes(row)) for row in self.rows]
        for _, ns in body + ([(footers, sizes(footers))] if footers else []):
            for i, n in enumerate(ns):
                if n > widths[i]:
                    widths[i] = n
        right = [j == "right" for _, j, _ in self.columns]

        def line(cells, ns=None):
            out = []
            for cell, n, width, r in zip(cells, ns or sizes(cells), widths, right):
                pad = " " * (width - n)
                out.append(pad + cell if r else cell + pad)
            return "  ".join(out).rstrip()

        out = [line([h[k - height + len(h)] if k >= height - len(h) else "" for h in headers])
               for k in range(height)]
        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        out.append(rule)
        out.extend(line(row, ns) for row, ns in body)
        if footers:
            out.append(rule)
            out.append(line(footers))
        return out


def _style(fancy: bool, share: float, zero: bool) -> Optional[str]:
    if not fancy:
        return None
    if zero:
        return "dim"
    return "bold" if share >= 10.0 else None


# ----- the three views -----------------------------------------------------------------------------

def _module_rows(report, depth: Optional[int], sort: Optional[str]):
    """(name, level, guide) in display order: depth-first, siblings sorted when asked.

    guide: for the rows of the first _MAX_INDENT levels, whether each ancestor below the root (and
    the row itself) is the last of its siblings; an explicit stack, so any depth is fine."""
    names = report.module_names
    children = {n: [] for n in names}
    for n in names[1:]:
        children[n.rpartition(".")[0]].append(n)  # the schema lists every parent before its children
    if sort is not None:
        if sort == "params":
            values = {n: report.module(n).params for n in names}
        else:
            values = {n: _value(report.display_counts(n)[0], sort) for n in names}
        for kids in children.values():
            kids.sort(key=lambda n: -values[n])  # stable: model order among equals
    out = []
    stack = [(names[0], 0, ())] if names else []
    while stack:
        name, level, guides = stack.pop()
        out.append((name, level, guides))
        if depth is not None and level >= depth:
            continue
        kids = children[name]
        for i in range(len(kids) - 1, -1, -1):
            stack.append((kids[i], level + 1, guides + (i == len(kids) - 1,) if level < _MAX_INDENT else guides))
    return out


def _label(name: str, level: int, guides, fancy: bool) -> str:
    leaf = terminal_safe(name.rpartition(".")[2] if name else "(root)")
    if level > _MAX_INDENT:  # a pathological depth: the level in words, not a screen of indentation
        leaf = f"[level {level}] {leaf}"
        level, guides = _MAX_INDENT, guides[:_MAX_INDENT]
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
            ("params", "right", human(report.params)),  # params keep their own units: see _summary
            (fmt.header("MACs"), "right", fmt.cell(total.macs)),
            (fmt.header("FLOPs"), "right", fmt.cell(total.flops))]
    # "self": the work run directly in each module, not in a child; with the "(outside root)" row
    # the column adds up to the total (reports written before exclusive counts have no column)
    own = getattr(report, "has_exclusive", False)
    own_metric = "flops" if metric == "params" else metric
    own_unit = "B" if own_metric == "bytes" else ""
    if own:
        cols += [("self\n" + fmt.header(_METRIC_LABEL[own_metric], own_unit), "right",
                  fmt.cell(_value(total, own_metric), own_unit))]
    cols += [(h, "right", fmt.cell(_value(report.phase(p), metric), unit)) for p, h in phase_cols]
    cols += [(fmt.header("bytes", "B"), "right", fmt.cell(total.bytes, "B")),
             ("FLOP/B", "right", _intensity(total)),
             (f"% {_METRIC_LABEL[metric]}", "right", "100.0" if whole else "0.0")]
    timed = getattr(total, "seconds", 0.0) > 0  # count(..., timing=True): op time and achieved rate
    if timed:
        cols += [("time ms", "right", f"{total.seconds * 1e3:.1f}"),
                 ("GFLOP/s", "right", _rate(total))]
    # count(activations=True): bytes saved for backward (inclusive; a container: its children's)
    saved = _saved_display(report)
    if saved is not None:
        cols += [("saved\n" + fmt.header("act.", "B"), "right", fmt.cell(report.activations["saved_bytes"], "B"))]
    t = _table(fancy, cols)
    ignored = report.meta.get("ignored")
    ignored = {n for n in ignored["modules"] if isinstance(n, str)} if isinstance(ignored, dict) and isinstance(ignored.get("modules"), list) \
        else ()
    for name, level, guides in _module_rows(report, depth, sort):
        m = report.module(name)
        shown, rolled = report.display_counts(name)
        v = _value(shown, metric)
        share = _share(v, whole)
        label = _label(name, level, guides, fancy)
        cells = [Text(label, style=_style(fancy, share, shown.calls == 0)),
                 Text(terminal_safe(m.type) + ("*" if rolled else "") + (" (ignored)" if name in ignored else ""),
                      style="dim" if fancy else None),
                 human(m.params), fmt.cell(shown.macs), fmt.cell(shown.flops)]
        if own:
            cells.append(fmt.cell(_value(report.module(name, exclusive=True), own_metric), own_unit))
        cells += [fmt.cell(_value(report.display_counts(name, p)[0], metric), unit) for p, _ in phase_cols]
        cells += [fmt.cell(shown.bytes, "B"), _intensity(shown), _pct(v, whole)]
        if timed:
            cells += [f"{shown.seconds * 1e3:.1f}", _rate(shown)]
        if saved is not None:
            cells.append(fmt.cell(saved[name], "B"))
        t.add_row(*cells)
    if report.module_names:
        out = report.outside()  # the engine's figures: what the row "" does not hold
        out_saved = (out.saved_bytes or 0) if saved is not None else 0
        if out.flops or out.bytes or out_saved:
            cells = ["(outside root)", "", "", fmt.cell(out.macs), fmt.cell(out.flops)]
            if own:
                cells.append(fmt.cell(_value(out, own_metric), own_unit))
            cells += [fmt.cell(_value(report.outside(p), metric), unit) for p, _ in phase_cols]
            cells += [fmt.cell(out.bytes, "B"), _quotient(out.flops, out.bytes),
                      _pct(_value(out, metric), whole)]
            if timed:
                cells += [f"{out.seconds * 1e3:.1f}", ""]
            if saved is not None:
                cells.append(fmt.cell(out_saved, "B"))
            t.add_row(*[Text(c, style="italic") if fancy and i == 0 else c for i, c in enumerate(cells)])
    return t


def _saved_display(report):
    """{module: saved activation bytes} as the results engine attributes them (a container that
    never ran holds its children's), or None when not measured."""
    if getattr(report, "activations", None) is None:
        return None
    return {n: report.module(n).saved_bytes or 0 for n in report.module_names}


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
             ("FLOP/B", "right", _intensity(total)),
             (f"% {_METRIC_LABEL[metric]}", "right", "100.0" if whole else "0.0")]
    t = _table(fancy, cols)
    # One pass over the ops' raw rows (calls, flops, macs, read, written, causal, seconds), each
    # looked up once: linear in the number of ops. Order: report.ops()' (largest FLOPs first).
    rows, cell, none = report._op_rows(), fmt.cell, (0, 0, 0, 0, 0, 0, 0.0)
    at = {"flops": lambda v: v[1], "macs": lambda v: v[2], "bytes": lambda v: v[3] + v[4]}[metric]
    entries = [(name, rows[(name, None)]) for name in report._op_order()]
    if metric != "flops":
        entries.sort(key=lambda o: -at(o[1]))  # stable: the FLOPs order among equals
    unsupported_ops = report.unsupported
    for name, v in entries:
        value = at(v)
        share = _share(value, whole)
        unsupported = name in unsupported_ops
        label = terminal_safe(name) + (" (unsupported)" if unsupported else "")
        style = ("red" if unsupported else _style(fancy, share, False)) if fancy else None
        moved = v[3] + v[4]
        cells = [Text(label, style=style) if fancy else label, f"{v[0]:,}", cell(v[2]), cell(v[1])]
        cells += [cell(at(rows.get((name, p), none)), unit) for p, _ in phase_cols]
        cells += [cell(moved, "B"), _quotient(v[1], moved), _pct(value, whole)]
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
            ("FLOP/B", "right", _intensity(total)),
            (f"% {_METRIC_LABEL[metric]}", "right", "100.0" if whole else "0.0")]
    t = _table(fancy, cols)
    for p in report.phases_run:
        c = report.phase(p)
        t.add_row(p, f"{c.calls:,}", fmt.cell(c.macs), fmt.cell(c.causal_macs), fmt.cell(c.flops),
                  fmt.cell(c.bytes_read, "B"), fmt.cell(c.bytes_written, "B"), _intensity(c),
                  _pct(_value(c, metric), whole))
    return t


def _summary(report, fmt: _Fmt) -> List[str]:
    t, meta = report.totals, report.meta
    target = meta.get("target")
    head = f"flopdispatch: {target}" if target else "flopdispatch"
    if meta.get("mode") == "model" and meta.get("train") is not None:
        head += " (forward + backward)" if meta["train"] else " (forward)"
    # --units fixes the prefix of the work figures (FLOPs, MACs, bytes); a parameter count keeps its own
    # human prefix ("12.3 K params", not "0.01 M params"), exact below 1000
    parts = [fmt.text(t.flops, "FLOPs"), fmt.text(t.macs, "MACs"), fmt.text(t.bytes, "B") + " moved",
             f"{_intensity(t)} FLOP/B", human(report.params) + " params" if report.params else "no params",
             f"{t.calls:,} op calls"]
    if isinstance(meta.get("duration_s"), (int, float)):
        parts.append(f"{meta['duration_s']:.2f} s")
    lines = [head + ": " + ", ".join(p.replace("  ", " ").strip() for p in parts)]
    roots = [r for r in getattr(report, "roots", ()) if r]
    if roots:  # several roots: one line naming each with its parameters and work
        rows = [(r, report.module(r), report.display_counts(r)[0]) for r in roots]
        lines.append(f"  {len(roots)} model{'s' if len(roots) > 1 else ''}: " + "; ".join(
            f"{r} ({'' if r.partition('#')[0] == m.type else m.type + ', '}{human(m.params)} params, "
            f"{fmt.text(shown.flops, 'FLOPs')})" for r, m, shown in rows))  # a root named by its class: once
    ignored = meta.get("ignored")
    if isinstance(ignored, dict) and isinstance(ignored.get("modules"), list):
        names = [terminal_safe(str(n)) or "(root)" for n in ignored["modules"]]
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        num = {k: ignored.get(k) if type(ignored.get(k)) is int else 0 for k in ("flops", "macs", "calls")}
        lines.append(f"  ignored (not in any figure): {shown or 'no module matched'}: "
                     f"{fmt.text(num['flops'], 'FLOPs')}, {fmt.text(num['macs'], 'MACs')}, "
                     f"{num['calls']:,} op calls")
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
    act = getattr(report, "activations", None)
    if act is not None:
        lines.append(f"  saved for backward: {fmt.text(act['saved_bytes'], 'B')} of activations (peak "
                     f"{fmt.text(act['saved_peak_bytes'], 'B')} alive at once), "
                     f"{fmt.text(act['saved_param_bytes'], 'B')} of parameters and buffers")
    if t.causal_macs != t.macs:
        lines.append(f"  causal-aware: {fmt.text(t.causal_macs, 'MACs')} of {fmt.text(t.macs, 'MACs')} "
                     f"({_pct(t.macs - t.causal_macs, t.macs)}% of MACs fall on masked positions)")
    if meta.get("error"):
        lines.append(f"  the run stopped with {meta['error']}: counts cover the work done before it")
    return [terminal_safe(line) for line in lines]  # metadata from a file: no escape reaches the terminal


def _unsupported(report) -> List[str]:
    if not report.unsupported:
        return []
    lines = ["unsupported ops (FLOPs not counted, bytes counted):"]
    rows = [(terminal_safe(op), calls, terminal_safe(report.unsupported_reasons.get(op, "")))
            for op, calls in sorted(report.unsupported.items())]
    width = max(len(op) for op, _, _ in rows)
    for op, calls, reason in rows:
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
    # A terminal gets rich's table (colours, tree guides) up to _FANCY_MAX_ROWS rows; a longer one
    # is plain text there too (rich's layout costs ~1.5 ms a row: 40,000 ops would take a minute).
    rows = {"module": lambda: len(_module_rows(report, depth, None)), "op": lambda: len(report._op_order()),
            "phase": lambda: 4}[by]
    tf = fancy and rows() <= _FANCY_MAX_ROWS
    build = {"module": lambda ph: _module_table(report, tf, depth, sort, fmt, ph),
             "op": lambda ph: _op_table(report, tf, sort, fmt, ph),
             "phase": lambda ph: _phase_table(report, tf, sort, fmt, ph)}[by]
    table = build(True)
    if tf and console is not None:
        wide = console.options.update_width(10**5)
        if console.measure(table, options=wide).maximum > console.width:
            table = build(False)  # a narrow terminal: drop the per-phase columns before squeezing
    out.append(table)
    if by == "module" and any(report.display_counts(n)[1] for n, _, _ in _module_rows(report, depth, None)):
        out.append(Text("* not called itself (a container such as ModuleList): the sum of its children",
                        style="dim" if fancy else None))
    comm_lines = _collective_lines(report, fmt) if hasattr(report, "collectives") else []
    if comm_lines:
        out.append(Text(""))
        out.extend(Text(line, style="bold" if fancy and i == 0 else None) for i, line in enumerate(comm_lines))
    unsupported = _unsupported(report)
    if unsupported:
        out.append(Text(""))
        out.extend(Text(line, style="red" if fancy and i == 0 else None) for i, line in enumerate(unsupported))
    return out


def _collective_lines(report, fmt) -> list:
    """The table's communication section (no lines when no collective ran)."""
    table = report.collectives()
    if not table:
        return []
    rows = [("collective", "calls", "payload", "bus bytes", "ranks", "phases", "time")]
    by_phase = {p: report.collectives(phase=p) for p in PHASES}
    for op, rec in table.items():
        phases = [p for p in PHASES if op in by_phase[p]]
        rows.append((terminal_safe(op), f"{rec['calls']:,}", fmt.text(rec["bytes"], "B").strip(),
                     fmt.text(rec["bus_bytes"], "B").strip(), str(rec["world_size"]), ",".join(phases),
                     f"{rec['seconds'] * 1e3:.2f} ms" if rec.get("seconds") else "-"))
    t = report.collectives_total()
    rows.append(("total", f"{t['calls']:,}", fmt.text(t["bytes"], "B").strip(), fmt.text(t["bus_bytes"], "B").strip(),
                 "", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["communication (per rank; payload as NCCL-tests sizes it, bus bytes = payload x the "
             "algorithm's factor):"]
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) if i != 5 else c.ljust(w)
                                          for i, (c, w) in enumerate(zip(r[1:], widths[1:]), start=1)]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


def render_text(report, **options) -> str:
    """Plain text: no colours, ASCII rules, no wrapping (lines as wide as the table needs)."""
    lines = []
    for r in _renderables(report, fancy=False, **options):
        lines.extend(r.lines() if isinstance(r, _PlainTable) else r.plain.split("\n"))
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(line.rstrip() for line in lines)


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
        if isinstance(r, _PlainTable):
            file.write("\n".join(r.lines()) + "\n")
            file.flush()
        else:
            console.print(r)
