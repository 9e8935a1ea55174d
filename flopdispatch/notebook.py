"""Rich display in Jupyter: the HTML that ``_repr_html_`` of a count, a ``Report``, an
``fd.symbolic`` result and the meter's ``StepStats`` return.

A count or a report shows its totals, the module table (the terminal table's tree: FLOPs, MACs,
bytes, parameters and the share of FLOPs, two levels deep) as an HTML table, and below it the
interactive page (``htmlreport.render_html``) in an ``<iframe srcdoc>``, folded in a
``<details>``, when the page is at most ``PAGE_INLINE_LIMIT`` characters. Everything is inline: no
network, no other file. Every name is HTML-escaped.

This module reads its objects through their public attributes only (it imports no counter, report
class or meter: they import it, inside their ``_repr_html_``).
"""
from __future__ import annotations

import html
from typing import Optional

from .report import human

__all__ = ["report_html", "module_table_html", "symbolic_html", "step_stats_html", "PAGE_INLINE_LIMIT"]

PAGE_INLINE_LIMIT = 4_000_000
"""The largest interactive page (characters) inlined in a notebook cell; a larger one is left out
with a note (``report.save_html(path)`` writes it)."""

_STYLE = ("<style>.fd-nb table{border-collapse:collapse;font-size:12px}"
          ".fd-nb th,.fd-nb td{padding:2px 8px;text-align:right;border-bottom:1px solid #ddd}"
          ".fd-nb th:first-child,.fd-nb td:first-child{text-align:left;font-family:monospace;white-space:pre}"
          ".fd-nb .fd-note{color:#666;font-size:11px}</style>")


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _cell(n) -> str:
    """A count as the terminal shows it, the exact integer in the tooltip."""
    return f'<td title="{n:,}">{_e(human(n))}</td>' if isinstance(n, int) else f"<td>{_e(n)}</td>"


def _table(head, rows) -> str:
    out = ["<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _module_rows(report, depth: int):
    """(name, level, counts, rolled_up, type, params) in model order, down to ``depth`` levels."""
    for name in report.module_names:
        level = name.count(".") + 1 if name else 0
        if level > depth:
            continue
        counts, rolled = report.display_counts(name)
        m = report.module(name)
        yield name, level, counts, rolled, m.type, m.params


def module_table_html(report, depth: int = 2) -> str:
    """The module tree as an HTML ``<table>``: FLOPs, MACs, bytes, params, % of the total FLOPs,
    and FLOPs per phase when several phases ran. Names are HTML-escaped."""
    phases = list(report.phases_run)
    show_phases = len(phases) > 1
    head = ["module", "type", "params", "FLOPs", "MACs", "bytes", "% FLOPs"] + \
        ([f"{p} FLOPs" for p in phases] if show_phases else [])
    total = report.totals.flops
    rows, rolled_any = [], False
    for name, level, counts, rolled, typ, params in _module_rows(report, depth):
        rolled_any = rolled_any or rolled
        label = "  " * level + (name.rpartition(".")[2] if name else "(root)") + ("*" if rolled else "")
        share = f"{100 * counts.flops / total:.1f}%" if total else "-"
        row = [f'<td title="{_e(name)}">{_e(label)}</td>', f"<td>{_e(typ)}</td>", _cell(params),
               _cell(counts.flops), _cell(counts.macs), _cell(counts.bytes), f"<td>{share}</td>"]
        if show_phases:
            row += [_cell(report.display_counts(name, p)[0].flops) for p in phases]
        rows.append(row)
    t = report.totals
    rows.append(["<td><b>total</b></td>", "<td></td>", _cell(report.params), _cell(t.flops), _cell(t.macs),
                 _cell(t.bytes), "<td>100.0%</td>" if t.flops else "<td>-</td>"]
                + ([_cell(report.phase(p).flops) for p in phases] if show_phases else []))
    note = ('<div class="fd-note">* not called itself (a container such as ModuleList): the sum of its '
            "children</div>") if rolled_any else ""
    return _table(head, rows) + note


def _page_html(report, limit: Optional[int]) -> str:
    """The interactive page in a folded ``<iframe srcdoc>`` (scripts only, no same-origin access),
    or a note when it is larger than ``limit`` characters."""
    from .htmlreport import render_html

    page = render_html(report)
    limit = PAGE_INLINE_LIMIT if limit is None else limit
    if len(page) > limit:
        return (f'<div class="fd-note">the interactive page ({len(page):,} characters) is larger than '
                f"{limit:,} to inline here: report.save_html('report.html') writes it</div>")
    return ('<details><summary>interactive page (icicle, module and op tables)</summary>'
            f'<iframe srcdoc="{_e(page)}" sandbox="allow-scripts" '
            'style="width:100%;height:640px;border:1px solid #ddd"></iframe></details>')


def _summary_line(report) -> str:
    t = report.totals
    target = report.meta.get("target") if isinstance(report.meta, dict) else None
    parts = [f"<b>{_e(human(t.flops, 'FLOPs'))}</b>", _e(human(t.macs, "MACs")), f"{_e(human(t.bytes, 'B'))} moved",
             f"{_e(human(report.params))} params", f"{t.calls:,} op calls"]
    unsupported = sum(report.unsupported.values())
    if unsupported:
        parts.append(f'<span style="color:#b00">{unsupported} unsupported op calls: '
                     f"{_e(', '.join(sorted(report.unsupported)))}</span>")
    return ("<div>flopdispatch" + (f": {_e(target)}" if target else "") + " &mdash; "
            + " &middot; ".join(parts) + "</div>")


def report_html(report, depth: int = 2, page: bool = True, page_limit: Optional[int] = None) -> str:
    """The notebook display of a ``Report`` (a count shows ``Report.from_count(c)``): a summary
    line, the module table down to ``depth`` levels and, with ``page``, the interactive page."""
    return ('<div class="fd-nb">' + _STYLE + _summary_line(report) + module_table_html(report, depth)
            + (_page_html(report, page_limit) if page else "") + "</div>")


def symbolic_html(s, report=None, depth: int = 2) -> str:
    """The notebook display of an ``fd.symbolic`` result: per module, FLOPs, MACs and bytes as
    polynomials in the dims; the guards, pinned dims and ops left out; with ``report`` (the
    count at the traced sizes, with the ``symbolic`` field) the interactive page."""
    dims = ", ".join(s.dims)
    traced = ", ".join(f"{k}={v}" for k, v in s.traced.items())
    children = {}
    for name in s.module_names:
        if name:
            children.setdefault(name.rpartition(".")[0], []).append(name)

    def shown(name):
        """(flops, macs, bytes) of a module; a container never called itself: its children's sum."""
        counts = s.module(name)
        if counts.calls == 0 and name in children:
            return tuple(sum(v) for v in zip(*(shown(k) for k in children[name])))
        return counts.flops, counts.macs, counts.bytes

    rows = []
    for name in s.module_names:
        level = name.count(".") + 1 if name else 0
        if level > depth:
            continue
        label = "  " * level + (name.rpartition(".")[2] if name else "(root)")
        rows.append([f'<td title="{_e(name)}">{_e(label)}</td>'] + [f"<td>{_e(v)}</td>" for v in shown(name)])
    t = s.totals
    rows.append(["<td><b>total</b></td>"] + [f"<td>{_e(v)}</td>" for v in (t.flops, t.macs, t.bytes)])
    notes = []
    for title, items in (("guards (the polynomials assume)", s.guards),
                         ("specialized (pinned to the traced size)", [f"{k}: {v}" for k, v in s.specialized.items()]),
                         ("not symbolic (left out)", [f"{k}: {v}" for k, v in s.not_symbolic.items()]),
                         ("unsupported ops", [f"{k}: {v} calls" for k, v in s.unsupported.items()])):
        if items:
            notes.append(f"<div class='fd-note'><b>{_e(title)}</b><ul>"
                         + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul></div>")
    return ('<div class="fd-nb">' + _STYLE.replace("text-align:right", "text-align:left")
            + f"<div>flopdispatch symbolic: polynomials in <b>{_e(dims)}</b> (traced at {_e(traced)})</div>"
            + _table(["module", "FLOPs", "MACs", "bytes"], rows) + "".join(notes)
            + (_page_html(report, None) if report is not None else "") + "</div>")


def step_stats_html(stats) -> str:
    """The notebook display of a meter's ``StepStats`` (``meter.summary()``, ``meter.last``)."""
    def rate(v, unit):
        return "-" if v is None else _e(human(v, unit))

    rows = [("steps", f"{stats.steps}" + (" (counted)" if stats.counted else "")),
            ("seconds", f"{stats.seconds:.4g}"),
            ("FLOPs", "-" if stats.flops is None else _e(human(stats.flops))),
            ("FLOP/s", rate(stats.flops_per_second, "FLOP/s")),
            ("tokens/s", rate(stats.tokens_per_second, "tok/s")),
            ("samples/s", rate(stats.samples_per_second, "samples/s")),
            ("MFU", "-" if stats.mfu is None else f"{100 * stats.mfu:.1f}%")]
    return ('<div class="fd-nb">' + _STYLE + "<div>flopdispatch meter</div>"
            + _table(["", ""], [[f"<td>{_e(k)}</td>", f"<td>{v}</td>"] for k, v in rows]) + "</div>")
