"""The HTML page (issue 13 item 8): its sources as package data, the module table, the op table
following the focused module, search, several roots, a big tree, an 800 px window.

The browser tests use Chromium through tests/report/test_html.py's DevTools client (skipped without
Chromium); the module table's cells are also checked against the terminal table by running the
page's script under node (tests/helpers/html_dom.js; skipped without node).
"""
import json
import os
import re
import shutil
import subprocess
import sys
from importlib import resources

import pytest
import torch

import flopdispatch as fd
from flopdispatch import htmlreport
from flopdispatch.htmlreport import page_file, render_html, write_html

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # test_html: the DevTools client and the Chromium fixture, whatever the import mode
from test_html import _load, _report, browser  # noqa: E402, F401  (browser: the Chromium fixture)
from report_v1 import as_v1  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
PAGE_FILES = ("page.html", "page.css", "page.js")


# ----- the page's sources are package data -----------------------------------------------------------

def test_page_sources_are_package_data_found_by_importlib_resources():
    folder = resources.files("flopdispatch.report_page")
    for name in PAGE_FILES:
        assert folder.joinpath(name).is_file(), name
        assert page_file(name) == folder.joinpath(name).read_text(encoding="utf-8")
    page = render_html(_report()[1])
    lowered = page.lower()
    for needle in ("<link", " src=", "@import", "url(", "http://", "https://"):
        assert needle not in lowered, needle  # one self-contained file
    assert page_file("page.css") in page and page_file("page.js") in page  # inlined as written


def test_the_built_package_ships_the_page_sources(tmp_path):
    """setup.py build_py (what a wheel or an install copies): the page's files are in the package
    (setup.py imports pybind11: a test extra, so a missing one fails here rather than skipping)."""
    proc = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    built = tmp_path / "flopdispatch" / "report_page"
    for name in PAGE_FILES + ("__init__.py",):
        assert (built / name).is_file(), name
    for name in PAGE_FILES:
        assert (built / name).read_text(encoding="utf-8") == page_file(name)


def test_the_writer_replaces_each_tag_once_and_never_rescans_what_it_inserted(valid_dict):
    d = valid_dict
    tags = '<script src="page.js"></script><link rel="stylesheet" href="page.css"><title>flopdispatch</title>' \
           '<script type="application/json" id="report-data"></script>'
    d["meta"]["target"] = tags
    first = d["ops"][0]["name"]  # renamed in the scopes' rows, where the report reads op names from
    for scope in d["scopes"]:
        for ops in scope.get("ops", {}).values():
            if first in ops:
                ops[tags] = ops.pop(first)
    d["ops"][0]["name"] = tags
    d["modules"][1]["type"] = tags
    page = render_html(fd.Report.from_dict(d))
    assert page.lower().count("<script") == 2 and page.lower().count("</script") == 2
    assert page.count("<title>") == 1 and "<link" not in page
    start = page.index('id="report-data">') + len('id="report-data">')
    data = json.loads(page[start:page.index("</script>", start)])
    assert data["meta"]["target"] == data["ops"][0]["name"] == data["modules"][1]["type"] == tags


def test_page_sources_that_could_break_out_are_refused(monkeypatch):
    real = page_file

    def with_js(text):
        return lambda name: text if name == "page.js" else real(name)

    try:
        for js in ("var s = '</script>';", "var s = '<!--';", "var s = '<SCRIPT>';"):
            monkeypatch.setattr(htmlreport, "page_file", with_js(js))
            htmlreport._parts.cache_clear()
            with pytest.raises(RuntimeError, match="page.js must not contain"):
                htmlreport._parts()
        monkeypatch.setattr(htmlreport, "page_file",
                            lambda name: real(name).replace('<script src="page.js"></script>', "")
                            if name == "page.html" else real(name))
        htmlreport._parts.cache_clear()
        with pytest.raises(RuntimeError, match="exactly once"):
            htmlreport._parts()
    finally:
        monkeypatch.undo()
        htmlreport._parts.cache_clear()
    assert "function" in htmlreport._parts()[2]


@pytest.fixture
def valid_dict():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
    with fd.count(model) as c:
        model(torch.ones(2, 4)).sum().backward()
    return fd.Report.from_count(c).to_dict()


# ----- the module table has the terminal table's columns and figures (node) ---------------------------

def _draw_in_node(report, tmp_path):
    path = tmp_path / "p.html"
    path.write_text(render_html(report), encoding="utf-8")
    proc = subprocess.run(["node", os.path.join(HERE, "..", "helpers", "html_dom.js"), str(path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _terminal_rows(report, depth):
    """The plain-text table's rows (module, outside root, total) as lists of cells."""
    lines = report.table(depth=depth).splitlines()
    rules = [i for i, line in enumerate(lines) if set(line) == {"-"}]
    body = lines[rules[0] + 1:rules[1]] + [lines[rules[1] + 1]]
    return [re.split(r"\s{2,}", line.strip()) for line in body]


def _same_rows_as_the_terminal(table, report, share_column=-1):
    """The page's module table (rows and footer) has the plain-text table's cells (depth 2)."""
    page_rows = [[cell.lstrip("\u25be\u25b8") for cell in row] for row in table["rows"] + table["foot"]]
    terminal = _terminal_rows(report, depth=2)
    assert [row[0] for row in page_rows] == [row[0] for row in terminal]
    for page_row, text_row in zip(page_rows, terminal):
        page_row[share_column] = page_row[share_column].rstrip("%")
        if page_row[0] in ("(outside root)", "total"):  # no type; the outside row has no params
            page_row = [c for c in page_row if c]
        assert page_row == text_row
    return [row[0] for row in page_rows]


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's script")
def test_module_table_shows_the_terminal_tables_columns_and_figures(tmp_path):
    _, report = _report()  # a GPT training step: forward, backward, optimizer, other
    drawn = _draw_in_node(report, tmp_path)
    table = drawn["modules"]
    assert table["head"] == [["module", "type", "params", "MACs", "FLOPs", "self FLOPs", "fwd FLOPs", "bwd FLOPs",
                              "opt FLOPs", "bytes", "FLOP/B", "% FLOPs"]]
    # the page opens at the terminal table's default depth (2): the blocks, not their children
    assert _same_rows_as_the_terminal(table, report) == \
        ["(root)", "wte", "wpe", "h", "0", "1", "ln_f", "lm_head", "(outside root)", "total"]


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's script")
def test_module_table_of_a_timed_count_and_of_a_report_without_per_module_ops(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
    with fd.count(model, timing=True) as c:
        model(torch.ones(32, 64)).sum().backward()
    report = fd.Report.from_count(c)
    table = _draw_in_node(report, tmp_path)["modules"]
    assert table["head"][0][-3:] == ["% FLOPs", "time ms", "GFLOP/s"]
    assert _same_rows_as_the_terminal(table, report, share_column=-3) == \
        ["(root)", "0", "1", "2", "(outside root)", "total"]
    # a report written before per-module ops: no self column, and the op table lists every op
    old = fd.Report.from_dict(as_v1(report.to_dict(), self_ops=False))
    assert not old.has_exclusive
    drawn = _draw_in_node(old, tmp_path)
    assert "self FLOPs" not in drawn["modules"]["head"][0]
    assert _same_rows_as_the_terminal(drawn["modules"], old, share_column=-3)
    assert [row[0] for row in drawn["ops"]] == list(old.ops())
    # self column: every row set adds up (the modules' own FLOPs plus the outside work is the total)
    own = sum(report.module(n, exclusive=True).flops for n in report.module_names)
    assert own + report.totals.flops - report.module("").flops == report.totals.flops


# ----- in Chromium ----------------------------------------------------------------------------------

ERRORS = """
window.__fdErrors = [];
window.addEventListener('error', function (e) { window.__fdErrors.push(String(e.message)); });
window.addEventListener('unhandledrejection', function (e) { window.__fdErrors.push(String(e.reason)); });
(function () { var ce = console.error; console.error = function () {
  window.__fdErrors.push(Array.prototype.slice.call(arguments).join(' ')); return ce.apply(console, arguments); }; })();
"""


def _open(cdp, url, width=1280):
    cdp.call("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False)
    cdp.call("Page.addScriptToEvaluateOnNewDocument", source=ERRORS)
    cdp.call("Page.navigate", url="about:blank")
    _load(cdp, url)
    assert cdp.js("window.__fdErrors") == []


def _rows(cdp):
    return cdp.js("Array.from(document.querySelectorAll('#modules tbody tr[data-module]'))"
                  ".map(function (r) { return r.dataset.module; })")


def _ops(cdp):
    """{op: FLOPs cell} of the op table."""
    return dict(cdp.js("Array.from(document.querySelectorAll('#ops tbody tr[data-op]')).map(function (r) "
                       "{ return [r.dataset.op, r.cells[2].textContent]; })"))


def _expected_ops(report, **kw):
    return {op: fd.human(v["flops"]) for op, v in report.ops(**kw).items()}


def _click(cdp, selector):
    cdp.js("document.querySelector(" + json.dumps(selector) + ").click()")


def _key(cdp, key, code):
    """Press and release a key in the element that has the keyboard focus."""
    for kind in ("keyDown", "keyUp"):
        cdp.call("Input.dispatchKeyEvent", type=kind, key=key, code=key, windowsVirtualKeyCode=code,
                 **({"text": "\r"} if key == "Enter" and kind == "keyDown" else {}))


def _search(cdp, text):
    """Type `text` into the search box (an input event, as typing sends)."""
    cdp.js("(function (s) { s.value = " + json.dumps(text) + "; s.dispatchEvent(new Event('input')); })"
           "(document.getElementById('search'))")


def _clear_search(cdp):
    _search(cdp, "")


def test_module_table_and_op_table_follow_the_focus_in_chromium(browser, tmp_path):  # noqa: F811
    c, report = _report()
    path = tmp_path / "gpt.html"
    write_html(report, path)
    cdp = browser
    _open(cdp, path.as_uri() + "#focus=h.0")  # the fragment focuses a module on load

    heads = cdp.js("Array.from(document.querySelectorAll('#modules thead th')).map(function (t) "
                   "{ return t.textContent; })")
    assert heads[:6] == ["module", "type", "params", "MACs", "FLOPs", "self FLOPs"]
    rows = _rows(cdp)
    block = ["h.0.ln_1", "h.0.qkv", "h.0.proj", "h.0.ln_2", "h.0.fc", "h.0.fc_out"]
    assert rows[rows.index("h.0") + 1:rows.index("h.0") + 7] == block  # the focused block's children, in order
    assert "h.1.qkv" not in rows  # other blocks stay collapsed
    assert cdp.js("document.querySelector('#modules tr.focus').dataset.module") == "h.0"
    assert cdp.js("document.getElementById('details').dataset.focus") == "h.0"
    # the op table: the block's subtree (its own attention matmuls and softmax, and its Linears' mm)
    assert cdp.js("document.getElementById('ops-title').dataset.focus") == "h.0"
    assert _ops(cdp) == _expected_ops(report, module="h.0")
    assert "aten::nll_loss_forward" not in _ops(cdp)  # the loss ran in the root, not in the block
    cdp.js("document.getElementById('self-ops').click()")  # only the block's own ops
    assert _ops(cdp) == _expected_ops(report, module="h.0", exclusive=True)
    assert "aten::addmm" not in _ops(cdp)  # the Linears' work is their own
    cdp.js("document.getElementById('self-ops').click()")

    # a click on a row focuses the icicle, the details and the op table on that module
    _click(cdp, '#modules tbody tr[data-module="h.0.fc"]')
    assert cdp.js("document.getElementById('details').dataset.focus") == "h.0.fc"
    assert cdp.js("document.querySelector('.box.focus').dataset.module") == "h.0.fc"
    full = cdp.js("document.getElementById('chart').clientWidth")
    assert cdp.js("document.querySelector('.box[data-module=\"h.0.fc\"]').getBoundingClientRect().width") == \
        pytest.approx(full, abs=1.5)
    assert _ops(cdp) == _expected_ops(report, module="h.0.fc")
    assert "focus=h.0.fc" in cdp.js("location.hash")
    # a click on a box focuses the table's row (its ancestors opened)
    _click(cdp, '#crumbs a[data-crumb=""]')
    _click(cdp, '.box[data-module="h.1"]')
    assert cdp.js("document.querySelector('#modules tr.focus').dataset.module") == "h.1"
    assert "h.1.qkv" in _rows(cdp)
    # the keyboard: a row takes the focus (Tab), the arrows close and open it, Enter focuses it
    _click(cdp, '#crumbs a[data-crumb=""]')
    cdp.js("document.querySelector('#modules tbody tr[data-module=\"h.0\"]').focus()")
    assert "h.0.qkv" in _rows(cdp)  # opened when it was focused
    _key(cdp, "ArrowLeft", 37)
    assert "h.0.qkv" not in _rows(cdp)
    assert cdp.js("document.activeElement.dataset.module") == "h.0"  # the redrawn row keeps the keyboard
    _key(cdp, "ArrowRight", 39)
    assert "h.0.qkv" in _rows(cdp)
    _key(cdp, "Enter", 13)
    assert cdp.js("document.getElementById('details').dataset.focus") == "h.0"
    # at the root the op table is every op counted (the work outside the root too)
    _click(cdp, '#crumbs a[data-crumb=""]')
    assert cdp.js("document.getElementById('ops-title').dataset.focus") == ""
    assert _ops(cdp) == _expected_ops(report)
    assert cdp.js("window.__fdErrors") == []


def test_sorting_a_column_sorts_siblings_and_keeps_the_tree(browser, tmp_path):  # noqa: F811
    _, report = _report()
    path = tmp_path / "gpt.html"
    write_html(report, path)
    cdp = browser
    _open(cdp, path.as_uri() + "#focus=h.0")
    _click(cdp, '#modules thead th[data-key="flops"]')  # largest first, within each parent
    rows = _rows(cdp)
    kids = rows[rows.index("h.0") + 1:rows.index("h.0") + 7]
    assert sorted(kids) == sorted(["h.0.ln_1", "h.0.qkv", "h.0.proj", "h.0.ln_2", "h.0.fc", "h.0.fc_out"])
    flops = [report.module(n).flops for n in kids]
    assert flops == sorted(flops, reverse=True)
    top = [n for n in rows if n and "." not in n]
    top_values = [report.display_counts(n)[0].flops for n in top]
    assert top_values == sorted(top_values, reverse=True) and top[0] == "h"
    for i, name in enumerate(rows[1:], 1):  # each row comes after its parent's, inside its parent's run
        parent = name.rpartition(".")[0]
        assert rows.index(parent) < i and all(r == parent or r.startswith(parent + ".") if parent else True
                                              for r in rows[rows.index(parent) + 1:i])
    assert cdp.js("document.querySelector('#modules th.sorted').dataset.key") == "flops"
    _click(cdp, '#modules thead th[data-key="flops"]')  # again: smallest first
    rows = _rows(cdp)
    kids = rows[rows.index("h.0") + 1:rows.index("h.0") + 7]
    assert [report.module(n).flops for n in kids] == sorted(flops)
    _click(cdp, '#modules thead th[data-key="name"]')  # model order
    assert _rows(cdp)[:4] == ["", "wte", "wpe", "h"]
    assert cdp.js("window.__fdErrors") == []


def test_search_finds_tiny_modules_and_the_page_fits_800_px(browser, tmp_path):  # noqa: F811
    _, report = _report()
    path = tmp_path / "gpt.html"
    write_html(report, path)
    cdp = browser
    _open(cdp, path.as_uri() + "#find=ln_", width=800)
    assert cdp.js("document.getElementById('search').value") == "ln_"
    rows = _rows(cdp)
    # the matches and their ancestors, nothing else
    assert rows == ["", "h", "h.0", "h.0.ln_1", "h.0.ln_2", "h.1", "h.1.ln_1", "h.1.ln_2", "ln_f"]
    boxes = cdp.js("Array.from(document.querySelectorAll('.box.match')).map(function (b) "
                   "{ return [b.dataset.module, b.getBoundingClientRect().width]; })")
    assert sorted(b[0] for b in boxes) == ["h.0.ln_1", "h.0.ln_2", "h.1.ln_1", "h.1.ln_2", "ln_f"]
    assert min(b[1] for b in boxes) >= 3  # tiny LayerNorms (0.1% of the FLOPs) stay visible and hoverable
    # 800 px: the page never scrolls sideways; the wide tables scroll inside their boxes
    assert cdp.js("document.documentElement.scrollWidth") <= 800
    assert cdp.js("(function(){var s=document.getElementById('ops-scroll');return s.scrollWidth>s.clientWidth;})()")
    assert cdp.js("document.getElementById('modules-scroll').getBoundingClientRect().right") <= 800
    # every visible box at the deepest level with room for two letters has its name (cut with an ellipsis)
    _clear_search(cdp)
    _click(cdp, '.box[data-module="h.0"]')
    labels = cdp.js("Array.from(document.querySelectorAll('.box[data-depth=\"3\"]:not(.hidden)'))"
                    ".map(function (b) { return [b.dataset.module, b.textContent]; })")
    assert len(labels) == 6
    assert all(text and name.endswith("." + text.split()[0]) for name, text in labels if text)
    assert sum(1 for _, text in labels if text) >= 4
    assert cdp.js("window.__fdErrors") == []


def _meta_line(cdp):
    return cdp.js("document.getElementById('meta').textContent")


def test_several_roots_render_as_top_level_children_of_the_root_row(browser, tmp_path):  # noqa: F811
    """A GAN step counted as fd.count({"G": g, "D": d}): the root "" is "2 models" (it never ran
    itself), one top-level child per model, their modules prefixed ("D.0"), the header names each."""
    torch.manual_seed(0)
    g = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8))
    d = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 1))
    with fd.count({"G": g, "D": d}) as c:
        d(g(torch.ones(2, 8))).sum().backward()
    report = fd.Report.from_count(c)
    assert report.roots == ["G", "D"]
    path = tmp_path / "gan.html"
    write_html(report, path)
    cdp = browser
    _open(cdp, path.as_uri() + "#focus=D")
    rows = _rows(cdp)
    assert rows == ["", "G", "G.0", "G.1", "G.2", "D", "D.0", "D.1"]
    root = cdp.js("Array.from(document.querySelector('#modules tbody tr[data-module=\"\"]').cells)"
                  ".map(function (c) { return c.textContent; })")
    assert root[1] == "2 models" and root[2] == fd.human(report.params) == "321"  # 144 + 136 + 36 + 5 params
    assert root[4] == fd.human(c.module("G").flops + c.module("D").flops)
    # the header names each model with its type, parameters and FLOPs, as the terminal's summary
    g_flops, d_flops = fd.human(report.module("G").flops), fd.human(report.module("D").flops)
    assert f"2 models G (Sequential, 280 params, {g_flops} FLOPs); D (Sequential, 41 params, {d_flops} FLOPs)" \
        in _meta_line(cdp)
    assert _meta_line(cdp).startswith("2 models G (")  # first in the line: what was counted
    assert _ops(cdp) == _expected_ops(report, module="D")
    _click(cdp, '#crumbs a[data-crumb=""]')
    assert _ops(cdp) == _expected_ops(report)  # "" is every model: the whole report's ops
    assert cdp.js("document.querySelector('.box[data-module=\"\"]').textContent").startswith("2 models")
    widths = {n: cdp.js(f"document.querySelector('.box[data-module=\"{n}\"]').getBoundingClientRect().width")
              for n in ("", "G", "D")}
    assert widths["G"] + widths["D"] == pytest.approx(widths[""], abs=1.5)
    assert cdp.js("window.__fdErrors") == []



@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's script")
def test_module_table_of_several_roots_is_the_terminal_tables(tmp_path):
    torch.manual_seed(0)
    g = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8))
    d = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 1))
    with fd.count({"G": g, "D": d}) as c:
        d(g(torch.ones(2, 8))).sum().backward()
    report = fd.Report.from_count(c)
    drawn = _draw_in_node(report, tmp_path)
    assert _same_rows_as_the_terminal(drawn["modules"], report) == \
        ["(root)", "G", "0", "1", "2", "D", "0", "1", "(outside root)", "total"]
    assert drawn["modules"]["rows"][0][1] == "2 models"

def test_two_top_level_models_counted_without_a_model(browser, tmp_path):  # noqa: F811
    """fd.count() with no model: each top-level module that ran is a root, named by its class."""
    torch.manual_seed(0)
    a, b = torch.nn.Linear(8, 8), torch.nn.Sequential(torch.nn.Linear(8, 2))
    with fd.count() as c:
        b(a(torch.ones(2, 8))).sum().backward()
    report = fd.Report.from_count(c)
    assert report.roots == ["Linear", "Sequential"]
    path = tmp_path / "two.html"
    write_html(report, path)
    cdp = browser
    _open(cdp, path.as_uri(), width=800)
    assert _rows(cdp) == ["", "Linear", "Sequential", "Sequential.0"]
    # a root named by its class is not given its type twice; 8 * 8 + 8 = 72 and 8 * 2 + 2 = 18 params
    assert f"2 models Linear (72 params, {fd.human(report.module('Linear').flops)} FLOPs); Sequential " \
           f"(18 params, {fd.human(report.module('Sequential').flops)} FLOPs)" in _meta_line(cdp)
    assert "outside the models" in cdp.js("document.getElementById('note').textContent")
    _click(cdp, '#modules tbody tr[data-module="Sequential.0"]')
    assert cdp.js("Array.from(document.querySelectorAll('#crumbs a')).map(function (a) { return a.textContent; })") \
        == ["2 models", "Sequential", "0"]
    assert _ops(cdp) == _expected_ops(report, module="Sequential.0")
    assert cdp.js("document.documentElement.scrollWidth") <= 800
    assert cdp.js("window.__fdErrors") == []


def _wide_tree(blocks, per_block):
    """A valid report: a root with `blocks` blocks of `per_block` Linear leaves each."""
    def counts(f):
        return {"flops": f, "macs": f // 2, "bytes_read": 3 * f, "bytes_written": f, "causal_macs": f // 2, "calls": 1}

    modules = [{"name": "", "type": "Net", "params": 0, "trainable_params": 0, **counts(0), "phases": {},
                "self_ops": {}},
               {"name": "blocks", "type": "ModuleList", "params": 0, "trainable_params": 0, **counts(0),
                "phases": {}, "self_ops": {}}]
    total = 0
    for b in range(blocks):
        leaves = [(2 + (b * per_block + i) % 5) * 1000 for i in range(per_block)]
        modules.append({"name": f"blocks.{b}", "type": "Block", "params": 10, "trainable_params": 10,
                        **counts(sum(leaves)), "phases": {"forward": counts(sum(leaves))}, "self_ops": {}})
        for i, f in enumerate(leaves):
            modules.append({"name": f"blocks.{b}.l{i}", "type": "Linear", "params": 1, "trainable_params": 1,
                            **counts(f), "phases": {"forward": counts(f)},
                            "self_ops": {"forward": {"aten::mm": [1, f, f // 2, 3 * f, f, f // 2]}}})
        total += sum(leaves)
    modules[0].update(counts(total), phases={"forward": counts(total)})
    modules[0]["calls"] = len(modules) - 2
    return fd.Report.from_dict({"schema": "flopdispatch.report/1", "meta": {"target": "wide"}, "params": 10 * blocks,
                                "trainable_params": 10 * blocks, "totals": counts(total),
                                "phases": {"forward": counts(total)}, "modules": modules,
                                # one aten::mm call per leaf: blocks * per_block calls in all
                                "ops": [{"name": "aten::mm", **counts(total), "calls": blocks * per_block,
                                         "phases": {"forward": {**counts(total), "calls": blocks * per_block}}}],
                                "unsupported": []})


def test_a_tree_of_thousands_of_modules_renders_and_narrows_by_search(browser, tmp_path):  # noqa: F811
    report = _wide_tree(400, 12)  # 5,202 modules (a 70B Llama has 1,047)
    path = tmp_path / "wide.html"
    write_html(report, path)
    cdp = browser
    _open(cdp, path.as_uri())
    assert len(_rows(cdp)) == 402  # the root, the list and its 400 blocks (collapsed)
    assert cdp.js("document.querySelectorAll('#chart .box').length") == 5202
    _click(cdp, "#module-tools button")  # expand all: the table stops at 3,000 rows and says so
    assert len(_rows(cdp)) == 3000
    assert "use the search box" in cdp.js("document.querySelector('#modules tr.more').textContent")
    _search(cdp, "blocks.399.l1")
    assert _rows(cdp) == ["", "blocks", "blocks.399", "blocks.399.l1", "blocks.399.l10", "blocks.399.l11"]
    assert cdp.js("document.querySelector('#modules tr.more')") is None  # the search, not the cap, left rows out
    _click(cdp, '#modules tbody tr[data-module="blocks.399.l10"]')
    assert _ops(cdp) == _expected_ops(report, module="blocks.399.l10")
    assert cdp.js("window.__fdErrors") == []


def test_hostile_names_are_data_in_the_tables(browser, valid_dict, tmp_path):  # noqa: F811
    d = valid_dict
    evil = "</script><img src=x onerror=\"window.__fdErrors.push('ran')\">"
    d["modules"][1]["name"] = "__proto__"  # a name that is also an Object.prototype key
    d["modules"][1]["type"] = evil
    scope = next(s for s in d["scopes"] if s["module"] == 1)  # module 1's own calls (report/2 scopes)
    ops = scope["ops"]["forward"]
    ops["constructor"] = ops.pop("aten::addmm")
    for o in d["ops"]:  # the derived op list says the same
        o["name"] = "constructor" if o["name"] == "aten::addmm" else o["name"]
    d["modules"][2]["name"] = "constructor"
    scope["collectives"] = {"forward": {evil: [1, 64, 0, 1]}}  # calls, bytes, bus bytes, world size
    report = fd.Report.from_dict(d)
    path = tmp_path / "evil.html"
    write_html(report, path)
    cdp = browser
    _open(cdp, path.as_uri() + "#focus=__proto__&find=" + "%3C%2Fscript")
    assert _rows(cdp) == ["", "__proto__"]  # the search matched the type, shown as text
    assert cdp.js("document.querySelector('#modules tr.focus td:nth-child(2)').textContent") == evil
    assert cdp.js("document.querySelectorAll('img').length") == 0
    assert _ops(cdp) == _expected_ops(report, module="__proto__") and "constructor" in _ops(cdp)
    assert list(_comm(cdp)) == [evil]  # __proto__'s own entry, the op's name as text
    _clear_search(cdp)
    _click(cdp, '#crumbs a[data-crumb=""]')
    assert _rows(cdp) == ["", "__proto__", "constructor"]
    _click(cdp, '#modules tbody tr[data-module="constructor"]')
    assert _comm(cdp) == {}  # "constructor" has no entry (not Object.prototype.constructor)
    assert cdp.js("document.querySelectorAll('img').length") == 0
    assert cdp.js("window.__fdErrors") == []


# ----- count(activations=True): saved-activation bytes ------------------------------------------------

class _SavesActs(torch.nn.Module):
    """A Linear, then a ModuleList that never runs itself (its row is its children's sum), then a ReLU
    in the root's own code."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(8, 16)
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(16, 16), torch.nn.GELU()])

    def forward(self, x):
        x = self.a(x)
        for b in self.blocks:
            x = b(x)
        return x.relu()


def _saved_report():
    torch.manual_seed(0)
    model = _SavesActs()
    with fd.count(model, activations=True) as c:
        model(torch.ones(4, 8)).sum().backward()
    return fd.Report.from_count(c)


def _cells(cdp, name):
    return cdp.js("Array.from(document.querySelector('#modules tbody tr[data-module=" + json.dumps(name) +
                  "]').cells).map(function (c) { return c.textContent; })")


def test_saved_activations_in_the_header_table_icicle_and_details(browser, tmp_path):  # noqa: F811
    report = _saved_report()
    act = report.activations
    saved = {n: report.module(n).saved_bytes for n in report.module_names}
    own = {n: report.module(n, exclusive=True).saved_bytes for n in report.module_names}
    # the container never ran: it saved nothing itself, its children did (4 x 16 float32 = 256 B each),
    # and it holds what they saved (docs/results.md): 2 x 256 = 512 B
    assert saved["blocks.0"] == saved["blocks.1"] == 4 * 16 * 4
    assert saved["blocks"] == 2 * 4 * 16 * 4 and own["blocks"] == 0
    path = tmp_path / "act.html"
    write_html(report, path)
    cdp = browser
    _open(cdp, path.as_uri() + "#metric=saved", width=800)
    cards = dict(cdp.js("Array.from(document.querySelectorAll('#cards .card')).map(function (c) "
                        "{ return [c.querySelector('span').textContent, c.querySelector('b').textContent]; })"))
    assert cards["saved for backward"] == fd.human(act["saved_bytes"], "B")
    assert cards["peak saved at once"] == fd.human(act["saved_peak_bytes"], "B")
    assert cards["params saved (not act.)"] == fd.human(act["saved_param_bytes"], "B")
    heads = cdp.js("Array.from(document.querySelectorAll('#modules thead th')).map(function (t) { return t.textContent; })")
    assert heads[-3:] == ["% saved act.", "saved act.", "self saved"]
    for name in report.module_names:
        assert _cells(cdp, name)[-2:] == [fd.human(saved[name], "B"), fd.human(own[name], "B")], name
    total = cdp.js("Array.from(document.querySelector('#modules tfoot tr').cells).map(function (c) "
                   "{ return c.textContent; })")
    assert total[-3:] == ["100.0%", fd.human(act["saved_bytes"], "B"), fd.human(act["saved_bytes"], "B")]
    # the icicle in the saved view: boxes as wide as their saved bytes; the list is its children's sum
    assert cdp.js("Array.from(document.querySelectorAll('#phases button')).filter(function (b) "
                  "{ return !b.disabled; }).map(function (b) { return b.dataset.value; })") == ["all"]
    width = {n: cdp.js(f"document.querySelector('.box[data-module=\"{n}\"]').getBoundingClientRect().width")
             for n in ("", "a", "blocks", "blocks.0", "blocks.1")}
    assert width["blocks"] == pytest.approx(width[""] * 2 * 256 / act["saved_bytes"], abs=1.5)
    assert width["blocks.0"] + width["blocks.1"] == pytest.approx(width["blocks"], abs=1.5)
    assert width["a"] == pytest.approx(width[""] * saved["a"] / act["saved_bytes"], abs=1.5)
    assert cdp.js("document.querySelector('.box[data-module=\"\"]').dataset.value") == str(saved[""])
    _click(cdp, '#modules tbody tr[data-module="blocks"]')
    details = cdp.js("document.getElementById('details').textContent")
    assert "saved for backward" + fd.human(512, "B") + " (its children's); own 0 B" in details
    assert cdp.js("document.documentElement.scrollWidth") <= 800
    assert cdp.js("window.__fdErrors") == []


def test_a_report_without_activations_shows_no_saved_figures(browser, tmp_path):  # noqa: F811
    """Absent is not measured: no card, no column, no view, no details row (and no zeros)."""
    report = _saved_report()
    d = report.to_dict()
    del d["activations"]
    for m in d["modules"]:
        del m["saved_bytes"], m["self_saved_bytes"]
    path = tmp_path / "plain.html"
    write_html(fd.Report.from_dict(d), path)
    cdp = browser
    _open(cdp, path.as_uri() + "#metric=saved")  # an unknown view in the link is ignored
    page = cdp.js("document.querySelector('header').textContent + document.querySelector('main').textContent")
    assert "saved" not in page and "Ops" in page
    assert cdp.js("document.querySelector('#metrics button.on').dataset.value") == "flops"
    assert cdp.js("window.__fdErrors") == []


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's script")
def test_saved_activation_column_is_the_terminal_tables(tmp_path):
    report = _saved_report()
    table = _draw_in_node(report, tmp_path)["modules"]
    assert table["head"][0][-3:] == ["% FLOPs", "saved act.", "self saved"]
    for row in table["rows"] + table["foot"]:
        del row[-1]  # the terminal table has no "self saved" column
    assert _same_rows_as_the_terminal(table, report, share_column=-2) == \
        ["(root)", "a", "blocks", "0", "1", "(outside root)", "total"]


# ----- collectives (torch.distributed) -----------------------------------------------------------------

COLLECTIVES_SCRIPT = r'''
import sys
import torch
import torch.distributed as dist
import flopdispatch as fd

dist.init_process_group("gloo", rank=0, world_size=1, store=dist.HashStore())  # one rank, no network


class Sync(torch.nn.Module):  # a tensor-parallel-like layer: all-reduces its output in forward
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(8, 8)

    def forward(self, x):
        y = self.lin(x)
        dist.all_reduce(y)
        return y


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = Sync(), torch.nn.Linear(8, 2)

    def forward(self, x):
        return self.b(self.a(x))


torch.manual_seed(0)
net = Net()
with fd.count(net) as c:
    net(torch.ones(4, 8)).sum().backward()
    for p in net.parameters():  # data-parallel-like: the gradients, outside every module
        dist.all_reduce(p.grad)
fd.Report.from_count(c).save(sys.argv[1])
dist.destroy_process_group()
'''


@pytest.fixture(scope="module")
def collectives_report(tmp_path_factory):
    """A report of a real count under a one-rank gloo process group (in a child process, so this one
    starts no process group)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("this torch has no gloo backend")
    folder = tmp_path_factory.mktemp("comm")
    script, out = folder / "comm.py", folder / "comm.json"
    script.write_text(COLLECTIVES_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return fd.Report.load(out)


def _comm(cdp):
    """{op: [calls, payload, bus bytes, ranks, phases]} of the communication table."""
    return {r[0]: r[1:6] for r in cdp.js("Array.from(document.querySelectorAll('#comm-table tbody tr[data-op]'))"
                                          ".map(function (r) { return Array.from(r.cells).map(function (c) "
                                          "{ return c.textContent; }); })")}


def _expected_comm(report, **kw):
    return {op: [str(r["calls"]), fd.human(r["bytes"], "B"), fd.human(r["bus_bytes"], "B"), str(r["world_size"]),
                 ", ".join(p for p in ("forward", "backward", "optimizer", "other")
                           if op in report.collectives(phase=p, module=kw.get("module")) and kw.get("phase") in (None, p))]
            for op, r in report.collectives(**kw).items()}


def test_communication_section_follows_the_focus_and_the_phase(browser, collectives_report, tmp_path):  # noqa: F811
    report = collectives_report
    # forward: a's all-reduce of its 4 x 8 float32 output (128 B); other: the 90 parameters' gradients
    # (8 * 8 + 8 + 8 * 2 + 2 = 90 floats = 360 B) in 4 calls, outside every module
    everything = report.collectives()["c10d::allreduce_"]
    assert (everything["calls"], everything["bytes"], everything["world_size"]) == (5, 128 + 360, 1)
    assert report.collectives(module="a")["c10d::allreduce_"]["bytes"] == 128
    assert report.meta["rank"] == 0 and report.meta["world_size"] == 1
    path = tmp_path / "comm.html"
    write_html(report, path)
    cdp = browser
    _open(cdp, path.as_uri(), width=800)
    assert "rank 0 of 1" in _meta_line(cdp)
    assert _comm(cdp) == _expected_comm(report) == {"c10d::allreduce_": ["5", "488 B", "0 B", "1", "forward, other"]}
    assert cdp.js("document.getElementById('comm-title').textContent") == "Communication"
    _click(cdp, '#modules tbody tr[data-module="a"]')  # inclusive: a's subtree (its own call)
    assert cdp.js("document.getElementById('comm-title').dataset.focus") == "a"
    assert _comm(cdp) == _expected_comm(report, module="a") == {"c10d::allreduce_": ["1", "128 B", "0 B", "1", "forward"]}
    _click(cdp, '#modules tbody tr[data-module="a.lin"]')  # the Linear inside ran none
    assert _comm(cdp) == {} and "No collective ran here" in cdp.js("document.getElementById('comm-table').textContent")
    _click(cdp, '#crumbs a[data-crumb=""]')
    _click(cdp, '#phases button[data-value="other"]')  # the gradients' all-reduces only
    assert _comm(cdp) == _expected_comm(report, phase="other") == \
        {"c10d::allreduce_": ["4", "360 B", "0 B", "1", "other"]}
    assert cdp.js("document.getElementById('comm-title').textContent") == "Communication (other)"
    assert cdp.js("document.documentElement.scrollWidth") <= 800
    assert cdp.js("window.__fdErrors") == []


def test_a_report_without_collectives_has_no_communication_section(browser, tmp_path):  # noqa: F811
    _, report = _report()
    path = tmp_path / "gpt.html"
    write_html(report, path)
    cdp = browser
    _open(cdp, path.as_uri())
    assert cdp.js("document.getElementById('comm').hidden") is True
    assert "rank" not in _meta_line(cdp) and "collective" not in cdp.js("document.getElementById('cards').textContent")
    assert cdp.js("window.__fdErrors") == []


# ----- symbolic counts (flopdispatch model ... --symbolic) ---------------------------------------------

SYMBOLIC_MODELS = '''
import torch.nn as nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.out = nn.Linear(8, 16), nn.Linear(16, 8)

    def forward(self, x):
        return self.out(self.fc(x).relu())


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp, self.h, self.norm = nn.Linear(8, 8), nn.ModuleList([Block(), Block()]), nn.LayerNorm(8)

    def forward(self, x):
        x = self.inp(x)
        for b in self.h:
            x = b(x)
        return self.norm(x)


def build():
    return Net()
'''


@pytest.fixture
def symbolic_page(tmp_path, monkeypatch):
    """`flopdispatch model page_sym_models:build --input 3x5x8 --symbolic batch,seq --json --html`."""
    pytest.importorskip("sympy")
    from flopdispatch.cli import main

    (tmp_path / "page_sym_models.py").write_text(SYMBOLIC_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    out, page = tmp_path / "sym.json", tmp_path / "sym.html"
    assert main(["model", "page_sym_models:build", "--input", "3x5x8", "--symbolic", "batch,seq", "--json", str(out),
                 "--html", str(page)]) == 0
    return fd.Report.load(out), page


def _column(cdp, key):
    """{module: cell} of the module table's column `key`."""
    return dict(cdp.js("(function (k) { var i = Array.from(document.querySelectorAll('#modules thead th'))"
                       ".map(function (t) { return t.dataset.key; }).indexOf(k); return Array.from(document."
                       "querySelectorAll('#modules tbody tr[data-module]')).map(function (r) { return [r.dataset."
                       "module, r.cells[i].textContent]; }); })(" + json.dumps(key) + ")"))


def test_symbolic_polynomials_per_module_and_dims_in_the_header(browser, symbolic_page):  # noqa: F811
    import sympy

    report, page = symbolic_page
    sym = report.symbolic
    batch, seq = sympy.symbols("batch seq")
    cdp = browser
    _open(cdp, page.as_uri() + "#focus=h", width=800)
    header = cdp.js("document.getElementById('symbolic').textContent")
    assert "symbolic in batch (traced at 3), seq (traced at 5)" in header
    assert "total FLOPs = " + sym["totals"]["flops"] in header and "total bytes = " + sym["totals"]["bytes"] in header
    for field, label, metric in (("flops", "FLOPs", "flops"), ("macs", "MACs", "macs"), ("bytes", "bytes", "bytes")):
        _click(cdp, f'#metrics button[data-value="{metric}"]')
        _click(cdp, "#module-tools button")  # expand all
        assert cdp.js("document.querySelector('#modules thead th[data-key=\"symbolic\"]').textContent") == \
            label + " in batch, seq"
        cells = _column(cdp, "symbolic")
        assert set(cells) == set(report.module_names)
        for name, cell in cells.items():
            if name != "h":
                assert cell == sym["modules"][name][field], (name, field)
            expr = sympy.sympify(cell, locals={"batch": batch, "seq": seq})
            shown = report.display_counts(name)[0]  # the list never ran: its children's sum
            at_traced = shown.bytes_read + shown.bytes_written if field == "bytes" else getattr(shown, field)
            assert expr.subs({batch: 3, seq: 5}) == at_traced, (name, field)  # the polynomial at the traced sizes
        # the ModuleList's polynomial is its blocks' sum, like terms added
        assert sympy.expand(sympy.sympify(cells["h"]) - sympy.sympify(cells["h.0"]) - sympy.sympify(cells["h.1"])) == 0
    # the details panel: every polynomial of the focused module
    _click(cdp, '#modules tbody tr[data-module="h.0.fc"]')
    details = cdp.js("document.getElementById('details').textContent")
    for field, label in (("flops", "FLOPs"), ("macs", "MACs"), ("bytes", "bytes")):
        assert label + " (symbolic)" + sym["modules"]["h.0.fc"][field] in details
    assert cdp.js("document.documentElement.scrollWidth") <= 800
    assert cdp.js("window.__fdErrors") == []


def test_symbolic_expressions_that_are_not_polynomials_and_hostile_names_stay_text(browser, symbolic_page,  # noqa: F811
                                                                                    tmp_path):
    report, _ = symbolic_page
    d = report.to_dict()
    evil = "<img src=x onerror=\"window.__fdErrors.push('ran')\">"
    d["symbolic"]["modules"]["h.0"]["flops"] = "2*Min(batch, seq)"  # not a sum of monomials: joined, not added
    d["symbolic"]["modules"]["h.1"]["flops"] = evil
    d["symbolic"]["dims"][evil] = {"traced": 7}
    d["symbolic"]["guards"] = [evil]
    path = tmp_path / "odd.html"
    write_html(fd.Report.from_dict(d), path)
    cdp = browser
    _open(cdp, path.as_uri())
    _click(cdp, "#module-tools button")
    cells = _column(cdp, "symbolic")
    assert cells["h"] == "(2*Min(batch, seq)) + (" + evil + ")"
    assert cells["h.1"] == evil
    header = cdp.js("document.getElementById('symbolic').textContent")
    assert evil + " (traced at 7)" in header and "valid while " + evil in header
    assert cdp.js("document.querySelectorAll('img').length") == 0
    assert cdp.js("window.__fdErrors") == []
