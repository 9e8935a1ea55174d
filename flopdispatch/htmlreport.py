"""One self-contained HTML page for a report: an icicle of modules, a module table, the op table.

The page's sources are package data in ``flopdispatch/report_page/`` (``page.html``, ``page.css``,
``page.js``: files editors and linters understand); ``render_html`` inlines the styles, the script
and the report's JSON into the template, so the page needs no network and no other file.

The icicle shows each module as a box as wide as its share of the chosen figure (FLOPs, MACs,
bytes or parameters; optionally one phase; a module with any work is at least 3 px wide);
hovering shows a module's counts. The module table is the terminal table as a tree (the same
columns, the "self" figure, sortable within siblings). Clicking a box or a row focuses that module:
the icicle zooms into it, its row is highlighted and the op table lists its subtree's ops (from
the modules' ``self_ops``). The page state is in the URL fragment, e.g. ``page.html#metric=macs&
phase=backward&focus=h.0&find=attn``, so a view can be linked. Every module box is an element
``<div class="box" data-module="NAME">`` and every table row ``<tr data-module="NAME">``.
What a report may hold is shown when it is there (and nothing, not zero, when it is not): several
roots (named in the header), saved activation bytes (header cards, a "saved act." view, inclusive
and self columns), collectives (a communication table following the focus and the phase; the rank
in the header) and ``--symbolic`` polynomials (dims in the header, a column, the details).

The embedded JSON is ASCII with ``<``, ``>`` and ``&`` escaped (nothing in a name can close the
script); integers past 2**53 travel as strings of their exact digits, and the script computes
shares on doubles scaled by a common power of ten, so counts up to the schema's 600 digits draw
right. The template is filled in one pass, so nothing inserted is scanned for a tag again.
"""
from __future__ import annotations

import functools
import html
import json
import re
from importlib import resources

from ._files import atomic_write
from .report import terminal_safe

_PAGE_PACKAGE = "flopdispatch.report_page"
_CSS_TAG = '<link rel="stylesheet" href="page.css">'
_JS_TAG = '<script src="page.js"></script>'
_DATA_TAG = '<script type="application/json" id="report-data"></script>'
_TITLE_TAG = "<title>flopdispatch</title>"


def page_file(name: str) -> str:
    """The text of one of the page's package data files (``flopdispatch/report_page/page.html``,
    ``page.css``, ``page.js``), read with importlib.resources: it works from a wheel or a zip too."""
    return resources.files(_PAGE_PACKAGE).joinpath(name).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def _parts():
    """(template, css, js), checked once: each tag the writer replaces appears exactly once, and
    neither the styles nor the script can end their inline element early."""
    template, css, js = page_file("page.html"), page_file("page.css"), page_file("page.js")
    for tag in (_CSS_TAG, _JS_TAG, _DATA_TAG, _TITLE_TAG):
        if template.count(tag) != 1:
            raise RuntimeError(f"report_page/page.html: expected {tag!r} exactly once")
    if "</style" in css.lower():
        raise RuntimeError("report_page/page.css must not contain '</style'")
    if "<script" in js.lower() or "</script" in js.lower() or "<!--" in js:
        raise RuntimeError("report_page/page.js must not contain '<script', '</script' or '<!--'")
    return template, css, js


def _exact_for_js(x):
    """The report's JSON for the page: integers past 2**53 (where a JS number loses digits) as strings."""
    if isinstance(x, dict):
        return {k: _exact_for_js(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_exact_for_js(v) for v in x]
    if isinstance(x, int) and not isinstance(x, bool) and abs(x) > 2**53:
        return str(x)
    return x


def render_html(report) -> str:
    """The page for a ``Report`` (one string; write it to a .html file)."""
    template, css, js = _parts()
    data = json.dumps(_exact_for_js(report.to_dict()), separators=(",", ":"), default=str)  # ASCII: \u escapes
    # Inside <script>: no "</script>", "<!--" or stray "<" can end or confuse the element.
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    target = report.meta.get("target")
    title = terminal_safe("flopdispatch" + (f": {target}" if target else ""))  # no raw controls or lone surrogates
    inline = {
        _TITLE_TAG: f"<title>{html.escape(title)}</title>",
        _CSS_TAG: f"<style>\n{css}</style>",
        _DATA_TAG: f'<script type="application/json" id="report-data">{data}</script>',
        _JS_TAG: f"<script>\n{js}</script>",
    }
    # one pass over the template: nothing inserted (a name holding a tag's text) is scanned again
    return re.sub("|".join(map(re.escape, inline)), lambda m: inline[m.group(0)], template)


def write_html(report, path) -> None:
    """Write the page for ``report`` to ``path`` (UTF-8)."""
    atomic_write(path, render_html(report))
