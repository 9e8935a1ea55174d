"""Hostile and huge reports (issue 11, item 6): `Report.load` / `flopdispatch show` on bad files give
one line and exit 2, counts of any size render exactly, terminal escapes never reach the terminal,
and `show --by op` is linear in the number of ops."""
import copy
import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

import flopdispatch as fd
from flopdispatch import cli
from flopdispatch.htmlreport import _exact_for_js, render_html
from flopdispatch.report import _scientific, human, print_report, render_text, terminal_safe
from flopdispatch.schema import MAX_DIGITS

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "benchmarks"))
from show_ops import synthetic_report  # noqa: E402


@pytest.fixture(scope="module")
def valid():
    """A small valid report (two modules, forward/backward/other phases) as a dict."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    with fd.count(model) as c:
        nn.functional.mse_loss(model(torch.randn(2, 4)), torch.zeros(2, 4)).backward()
    return fd.Report.from_count(c, meta={"target": "net", "devices": ["cpu"]}).to_dict()


def _show(path, *args, capsys):
    """flopdispatch show, in-process: (exit code, stdout, stderr)."""
    rc = cli.main(["show", str(path), *args])
    out, err = capsys.readouterr()
    return rc, out, err


def _write(tmp_path, data, name="r.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


# ----- bad files: one line, exit 2 ----------------------------------------------------------------

def _with(d, path, value):
    """d with d[path[0]][path[1]]... set to value (a deep copy)."""
    d = copy.deepcopy(d)
    at = d
    for key in path[:-1]:
        at = at[key]
    at[path[-1]] = value
    return d


HOSTILE = {
    "nested 10^5 deep": lambda d: "[" * 100_000 + "]" * 100_000,
    "nested 10^5 deep in meta": lambda d: json.dumps(d)[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "a 5000-digit integer": lambda d: json.dumps(d).replace('"calls": ', '"calls": ' + "9" * 5000 + "0 * ", 1)
                                                 .replace("0 * ", "", 1),
    "a count over the digit bound": lambda d: _with(d, ["totals", "flops"], 10**MAX_DIGITS),
    "meta.devices not a list": lambda d: _with(d, ["meta", "devices"], 5),
    "meta.devices holding a number": lambda d: _with(d, ["meta", "devices"], ["cpu", 3]),
    "meta.command not a list": lambda d: _with(d, ["meta", "command"], "flopdispatch run x.py"),
    "meta.duration_s a string": lambda d: _with(d, ["meta", "duration_s"], "1 s"),
    "meta.duration_s infinite": lambda d: json.dumps(_with(d, ["meta", "duration_s"], 1)).replace(
        '"duration_s": 1', '"duration_s": 1e999'),
    "NaN in meta": lambda d: json.dumps(_with(d, ["meta", "x"], 1)).replace('"x": 1', '"x": NaN'),
    "meta nested 100 deep": lambda d: _with(d, ["meta", "config"], json.loads("[" * 100 + "]" * 100)),
    "meta a list": lambda d: _with(d, ["meta"], []),
    "meta.target a number": lambda d: _with(d, ["meta", "target"], 7),
    "meta.train a string": lambda d: _with(d, ["meta", "train"], "yes"),
    "params a float": lambda d: _with(d, ["params"], 1.5),
    "seconds negative": lambda d: _with(d, ["totals", "seconds"], -1.0),
    "seconds an int past float range": lambda d: _with(d, ["totals", "seconds"], 10**400),
    "module name a number": lambda d: _with(d, ["modules", 1, "name"], 0),
    "module type a list": lambda d: _with(d, ["modules", 1, "type"], ["Linear"]),
    "module phases a list": lambda d: _with(d, ["modules", 0, "phases"], []),
    "op counts a string": lambda d: _with(d, ["ops", 0, "flops"], "12"),
    "duplicate op": lambda d: _with(d, ["ops"], d["ops"] + d["ops"][:1]),
    "op not an object": lambda d: _with(d, ["ops", 0], "aten::mm"),
    # the derived ops list is checked on a fast path (no Counts built); each of these must still fail
    "op name a number": lambda d: _with(d, ["ops", 1, "name"], 7),
    "op count a bool": lambda d: _with(d, ["ops", 1, "flops"], True),
    "op count negative": lambda d: _with(d, ["ops", 1, "macs"], -1),
    "op phase unknown": lambda d: _with(d, ["ops", 1, "phases"], {"fwd": {}}),
    "op phase count a float": lambda d: _with(d, ["ops", 1, "phases"], {"forward": {"flops": 1.5}}),
    "op phases a list": lambda d: _with(d, ["ops", 1, "phases"], []),
    "unsupported calls negative": lambda d: _with(d, ["unsupported"], [{"op": "aten::x", "calls": -1}]),
    "totals missing": lambda d: {k: v for k, v in d.items() if k != "totals"},
    "counts dump with a deep version": lambda d: '{"schema": "flopdispatch.counts/1", "totals": {}, '
                                                 '"torch_version": ' + "[" * 900 + "]" * 900 + "}",
    "counts dump with garbage": lambda d: {"schema": "flopdispatch.counts/1", "totals": {"flops": 10**400},
                                           "modules": [], "ops": {"x": {"seconds": 10**400}}},
    # issue 20, item 4: an old counts dump whose module_self_ops holds a non-object value
    "counts dump with a module's self ops a list": lambda d: {
        "schema": "flopdispatch.counts/1", "totals": {}, "modules": {"": {"calls": 0}},
        "module_self_ops": {"": [1, 2]}},
    "counts dump with module_self_ops a string": lambda d: {
        "schema": "flopdispatch.counts/1", "totals": {}, "modules": {"": {}}, "module_self_ops": "x"},
    "counts dump with a module not an object": lambda d: {
        "schema": "flopdispatch.counts/1", "totals": {}, "modules": {"": 3}},
    "counts dump with op_phases rows a list": lambda d: {
        "schema": "flopdispatch.counts/1", "totals": {}, "op_phases": {"forward": {"aten::mm": [1]}}},
    "scope module out of range": lambda d: _with(d, ["scopes", 1, "module"], 99),
    "scope path not a list": lambda d: _with(d, ["scopes", 1, "path"], {"0": 1}),
    "scope path holding a string": lambda d: _with(d, ["scopes", 1, "path"], ["0"]),
    "scope row too short": lambda d: _with(d, ["scopes", 1, "ops"], {"forward": {"aten::mm": [1, 2]}}),
    "scope row with negative seconds": lambda d: _with(d, ["scopes", 1, "ops"],
                                                       {"forward": {"aten::mm": [1, 2, 1, 0, 0, 1, -1.0]}}),
    "scope ops of an unknown phase": lambda d: _with(d, ["scopes", 1, "ops"], {"fwd": {}}),
    "scope collectives not an object": lambda d: _with(d, ["scopes", 1, "collectives"], [1]),
    "scope saved bytes a float": lambda d: _with(d, ["scopes", 1, "saved_bytes"], 1.5),
    "scopes not a list": lambda d: _with(d, ["scopes"], {}),
    "missing not a list of strings": lambda d: _with(d, ["missing"], [1]),
    "rolled_up a string": lambda d: _with(d, ["modules", 1, "rolled_up"], "yes"),
    "ignored not an object": lambda d: _with(d, ["ignored"], 3),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_file_is_one_line_and_exit_2(valid, tmp_path, capsys, case):
    path = _write(tmp_path, HOSTILE[case](valid))
    with pytest.raises(fd.ReportError) as e:
        fd.Report.load(path)
    message = str(e.value)
    assert "\n" not in message and str(path) in message and len(message) < 400
    for args in ([], ["--by", "op"], ["--html", str(tmp_path / "p.html")]):
        rc, out, err = _show(path, *args, capsys=capsys)
        assert rc == 2 and out == ""
        assert err.count("\n") == 1 and err.startswith("flopdispatch: error: ") and "Traceback" not in err


def test_messages_name_the_field(valid, tmp_path):
    for case, needle in [("meta.devices not a list", "meta.devices: expected a list, got 5"),
                         ("nested 10^5 deep", "nested too deeply"),
                         ("a 5000-digit integer", f"more than {MAX_DIGITS} digits"),
                         ("a count over the digit bound", f"totals.flops: integer with more than {MAX_DIGITS} digits"),
                         ("duplicate op", "duplicate op name"),
                         ("op name a number", "ops[1].name: expected a string, got 7"),
                         ("op count a bool", "ops[1].flops: expected a non-negative integer, got true"),
                         ("op phase unknown", "ops[1].phases: unknown phase 'fwd'"),
                         ("op phase count a float", "ops[1].phases.forward.flops: expected a non-negative integer"),
                         ("meta nested 100 deep", "meta.config: nested more than 16 levels deep"),
                         ("NaN in meta", "meta.x: nan is not a finite number")]:
        path = _write(tmp_path, HOSTILE[case](valid))
        with pytest.raises(fd.ReportError, match=re.escape(needle)):
            fd.Report.load(path)


# ----- counts of any size ---------------------------------------------------------------------------

def test_human_writes_any_int_exactly_rounded():
    assert human(27_000_000_000_000_000_000, "MACs") == "27 EMACs"  # 27 * 10**18: exa is the last prefix
    assert human(27 * 10**21, "MACs") == "2.7e22 MACs"  # from 1000 E on: scientific
    assert human(10**400, "FLOPs") == "1e400 FLOPs"
    assert human(10**4000 * 1234) == "1.23e4003"  # no float conversion, whatever the size
    assert human(5 * 10**18, "B") == "5 EB"
    assert human(10**21 - 1) == "1e21"  # 999.999... E rounds up to the scientific form
    assert human(999_600) == "1 M" and human(999.7) == "1 K"  # not '1e+03 K'
    assert human(1_234_567) == "1.23 M" and human(999) == "999" and human(0.5) == "0.5"
    # three significant digits of the exact value, ties to even: 2.345 -> 2.34, 2.355 -> 2.36, 2.3451 -> 2.35
    assert _scientific(2_345 * 10**30) == "2.34e33"
    assert _scientific(2_355 * 10**30) == "2.36e33"
    assert _scientific(23_451 * 10**30) == "2.35e34"
    assert _scientific(9_995 * 10**30) == "1e34"  # rounds up into the next power of ten


def _huge(valid):
    """`valid` with one op row of module "0" (forward) grown past 10**400 FLOPs, 2.7e22 MACs and
    2**60 + 1 calls, and every figure derived from it (totals, phases, modules, ops) grown alike."""
    d = copy.deepcopy(valid)
    big, mid, calls = 10**400, 27 * 10**21, 2**60
    scope = next(s for s in d["scopes"] if s["module"] == 1 and "forward" in s.get("ops", {}))
    op, row = next(iter(scope["ops"]["forward"].items()))
    assert row[0] == 1  # one call: 2**60 + 1 after
    row[0], row[1], row[2] = row[0] + calls, row[1] + big, row[2] + mid
    entry = next(o for o in d["ops"] if o["name"] == op)
    for c in [d["totals"], d["phases"]["forward"], d["modules"][0], d["modules"][1], d["modules"][0]["phases"]["forward"],
              d["modules"][1]["phases"]["forward"], entry, entry["phases"]["forward"]]:
        c["flops"] += big
        c["macs"] += mid
        c["calls"] += calls
    d["ops"] = [entry] + [o for o in d["ops"] if o is not entry]  # the largest FLOPs first
    d["params"] = d["modules"][0]["params"] = 2**70
    return d


def test_huge_counts_round_trip_and_render(valid, tmp_path, capsys):
    d = _huge(valid)
    path = _write(tmp_path, d)
    report = fd.Report.load(path)
    assert report.to_dict() == d  # every digit kept
    assert report.totals.flops == 10**400 + valid["totals"]["flops"]
    text = render_text(report)
    assert "1e400 FLOPs" in text.splitlines()[0] and "2.7e22 MACs" in text.splitlines()[0]
    assert "1.18 Z" not in text and "1.18e21 params" in text  # 2**70 = 1.18e21
    ops = render_text(report, by="op", units="P")  # fixed units: exact digits, thousands separated
    assert f"{(10**400 + valid['ops'][0]['flops']) // 10**15:,}" in ops
    assert f"{2**60 + 1:,}" in ops  # calls
    for args in (["--by", "op"], ["--by", "phase"], ["--depth", "all", "--sort", "flops"], ["--units", "T"]):
        rc, out, err = _show(path, *args, capsys=capsys)
        assert rc == 0 and err == "" and ("1e400" in out or "," in out)
    rc, out, _ = _show(path, "--json", "-", capsys=capsys)
    assert rc == 0 and json.loads(out) == d  # exact digits in JSON
    saved = tmp_path / "again.json"
    report.save(saved)
    assert fd.Report.load(saved) == report


def test_html_keeps_big_counts_exact_as_strings(valid):
    d = _huge(valid)
    page = render_html(fd.Report.from_dict(d))
    start = page.index('id="report-data">') + len('id="report-data">')
    data = json.loads(page[start:page.index("</script>", start)])
    assert data["totals"]["flops"] == str(d["totals"]["flops"])  # past 2**53: exact digits as a string
    assert data["ops"][0]["calls"] == str(2**60 + 1)
    assert data["modules"][1]["params"] == d["modules"][1]["params"]  # small: still a number
    assert data == _exact_for_js(d)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's script")
def test_html_page_script_draws_huge_counts_at_their_size(valid, tmp_path):
    """The page's own script, run by node against a minimal DOM (tests/helpers/html_dom.js)."""
    def draw(data):
        path = tmp_path / "p.html"
        path.write_text(render_html(fd.Report.from_dict(data)), encoding="utf-8")
        proc = subprocess.run(["node", os.path.join(os.path.dirname(__file__), "..", "helpers", "html_dom.js"), str(path)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    plain = draw(valid)
    assert plain["ready"] == "1" and [human(valid["totals"]["flops"]), "FLOPs"] in plain["cards"]
    assert plain["boxes"][0]["value"] == str(valid["modules"][0]["flops"])  # small counts: exact numbers
    d = _huge(valid)
    d["meta"]["command"] = ["flopdispatch", "</script><script>alert(1)</script>"]
    d["modules"][1]["name"] = "constructor"  # a name that is also an Object.prototype key
    d["ops"][1]["name"] = "__proto__"
    big = draw(d)
    assert big["ready"] == "1"
    assert ["1e400", "FLOPs"] in big["cards"] and ["2.7e22", "MACs"] in big["cards"]
    assert ["1.18e21", "parameters"] in big["cards"]
    row = big["ops"][0]
    assert row[0] == d["ops"][0]["name"] and row[1] == str(2**60 + 1) and row[2] == "1e400" and row[3] == "2.7e22"
    assert row[7] == "100.0%"  # its share of the total FLOPs, computed on scaled doubles
    assert "</script><script>alert(1)</script>" in big["meta"]  # shown as text
    assert [b["name"] for b in big["boxes"]] == ["", "constructor", "1"]  # one box per module, none lost



@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's script")
def test_html_page_script_draws_huge_saved_bytes_and_collectives_at_their_size(valid, tmp_path):
    """Saved activation bytes and collectives past 2**53 (and 10**400) are drawn at their size, next to
    counts that force the page's common scale."""
    d = _huge(valid)
    big = 10**400
    d["activations"] = {"saved_bytes": 3 * big, "saved_peak_bytes": 2 * big, "saved_param_bytes": 2**60}
    for m, (saved, own) in zip(d["modules"], [(3 * big, big), (2 * big, 2 * big), (0, 0)]):
        m["saved_bytes"], m["self_saved_bytes"] = saved, own
    # the root's own code saved 10**400 bytes and ran the all-reduce; module "0" saved 2 * 10**400
    d["scopes"].append({"module": 0, "path": [0], "saved_bytes": big,
                        "collectives": {"backward": {"c10d::allreduce_": [2**60 + 1, 27 * 10**21, big, 8]}}})
    d["scopes"].append({"module": 1, "path": [0, 1], "saved_bytes": 2 * big})
    path = tmp_path / "p.html"
    path.write_text(render_html(fd.Report.from_dict(d)), encoding="utf-8")
    proc = subprocess.run(["node", os.path.join(os.path.dirname(__file__), "..", "helpers", "html_dom.js"), str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    drawn = json.loads(proc.stdout)
    assert ["3e400 B", "saved for backward"] in drawn["cards"] and ["2e400 B", "peak saved at once"] in drawn["cards"]
    assert ["1.15 EB", "params saved (not act.)"] in drawn["cards"]  # 2**60 = 1.153e18
    assert ["27 ZB", "collective payload"] not in drawn["cards"] and ["2.7e22 B", "collective payload"] in drawn["cards"]
    root = drawn["modules"]["rows"][0]
    assert root[-2:] == ["3e400 B", "1e400 B"]  # saved act. and self saved
    assert drawn["comm"]["rows"] == [["c10d::allreduce_", str(2**60 + 1), "2.7e22 B", "1e400 B", "8", "backward", "-"]]

def test_page_embeds_no_script_breakers(valid):
    d = copy.deepcopy(valid)
    evil = "</script><!--<script>alert(1)</script>\u2028\u2029&amp;\x1b[31m\ud800"
    d["meta"]["target"] = evil
    d["meta"]["command"] = [evil]
    d["ops"][0]["name"] = evil
    d["unsupported"] = [{"op": evil, "calls": 1, "reason": evil}]
    page = render_html(fd.Report.from_dict(d))
    page.encode("utf-8")  # no lone surrogate left in the page
    assert page.lower().count("<script") == 2 and page.lower().count("</script") == 2
    assert "<!--" not in page.split('id="report-data">')[1]
    start = page.index('id="report-data">') + len('id="report-data">')
    assert json.loads(page[start:page.index("</script>", start)])["meta"]["target"] == evil
    title = page[page.index("<title>") + 7:page.index("</title>")]
    assert "<" not in title and "\x1b" not in title and "\\x1b" in title


# ----- terminal escapes ---------------------------------------------------------------------------

EVIL = "a\x1b[2J\x1b]0;pwned\x07\x9b31m\u202eevil\u2066x\x00\x7f\ud800b"
RAW = ["\x1b", "\x07", "\x9b", "\u202e", "\u2066", "\x00", "\x7f", "\ud800"]


def test_terminal_safe_escapes_what_a_terminal_acts_on():
    assert terminal_safe(EVIL) == "a\\x1b[2J\\x1b]0;pwned\\x07\\x9b31m\\u202eevil\\u2066x\\x00\\x7fb".replace(
        "\\x7fb", "\\x7f\\ud800b")
    assert terminal_safe("h.0.attn \u00e9\u4e2d\u00a0x") == "h.0.attn \u00e9\u4e2d\u00a0x"  # printable: unchanged
    assert terminal_safe("line\nbreak\ttab") == "line\\x0abreak\\x09tab"


def test_names_and_metadata_reach_the_terminal_escaped(valid, tmp_path, capsys):
    d = copy.deepcopy(valid)
    d["meta"].update(target=EVIL, devices=[EVIL], dtypes=[EVIL], inputs=[EVIL], error=EVIL)
    d["modules"][1]["type"] = EVIL
    names = {m["name"]: m["name"] + EVIL.replace(".", "") for m in d["modules"][1:]}
    for m in d["modules"][1:]:
        m["name"] = ".".join(names.get(p, p) if i == 0 else p + EVIL for i, p in enumerate(m["name"].split(".")))
    d["modules"] = [d["modules"][0]] + sorted(d["modules"][1:], key=lambda m: m["name"].count("."))
    d["ops"][0]["name"] = EVIL
    d["unsupported"] = [{"op": EVIL, "calls": 2, "reason": EVIL}]
    path = _write(tmp_path, d)
    report = fd.Report.load(path)
    outputs = [render_text(report, by=by, depth=None) for by in ("module", "op", "phase")]
    for by in ("module", "op"):  # the terminal path: rich's colours, our escapes
        buf = io.StringIO()
        print_report(report, buf, fancy=True, by=by, depth=None)
        outputs.append(buf.getvalue().replace("\x1b[", "CSI"))  # rich's own styling is the only ESC left
    rc, out, err = _show(path, "--by", "op", capsys=capsys)
    outputs += [out, err]
    assert rc == 0
    for text in outputs:
        for ch in RAW:
            assert ch not in text.replace("CSI", ""), (ch, text[:200])
    assert "a\\x1b[2J\\x1b]0;pwned\\x07\\x9b31m\\u202eevil" in outputs[0]
    bad = tmp_path / "x\x1b]0;t\x07.json"
    rc, out, err = _show(bad, capsys=capsys)
    assert rc == 2 and "\x1b" not in err and "\\x1b]0;t\\x07.json: no such file" in err


# ----- size and depth: linear work ----------------------------------------------------------------

class _CountingList(list):
    """A list that counts the elements read from it and fails past a budget (a quadratic scan)."""

    def __init__(self, items, budget):
        super().__init__(items)
        self.visits, self.budget = 0, budget

    def _count(self, n):
        self.visits += n
        assert self.visits <= self.budget, f"{self.visits} element reads for {len(self)} ops: not linear"

    def __iter__(self):
        for item in super().__iter__():
            self._count(1)
            yield item

    def __getitem__(self, i):
        self._count(len(range(len(self))[i]) if isinstance(i, slice) else 1)
        return super().__getitem__(i)


@pytest.mark.slow  # a large report read through the CLI
def test_show_by_op_reads_each_op_a_bounded_number_of_times():
    n = 40_000
    report = fd.Report.from_dict(synthetic_report(n))
    reads = [0]
    op_counts = report.op_counts

    def counted(*args, **kwargs):  # each op read a bounded number of times (one per column): linear
        reads[0] += 1
        return op_counts(*args, **kwargs)

    report.op_counts = counted
    for sort in (None, "macs", "bytes"):
        reads[0] = 0
        text = render_text(report, by="op", sort=sort, summary=False)
        lines = text.splitlines()
        assert len(lines) == 2 + 1 + n + 2  # header (two lines: phase columns), rule, n rows, rule, total
        assert lines[3].startswith("aten::op_39999 ") and lines[-3].startswith("aten::op_0 ")
        assert reads[0] <= 4 * n  # quadratic would be ~n * n / 2 reads
    buf = io.StringIO()
    print_report(report, buf, fancy=True, by="op")  # a terminal: past 2,000 rows, the plain table too
    table = buf.getvalue().split("\n\n", 1)[1]  # after rich's coloured summary
    assert "\x1b" not in table and table.count("\n") == 2 + 1 + n + 2


def test_table_text_grows_linearly_with_rows():
    """Every row is as wide as the widest: the output is (rows x width), never rows x rows."""
    small, big = (render_text(fd.Report.from_dict(synthetic_report(n)), by="op") for n in (1_000, 10_000))
    assert len(big) < 11 * len(small)


def test_module_tree_3000_levels_deep_renders(valid, tmp_path, capsys, monkeypatch):
    d = copy.deepcopy(valid)
    root = d["modules"][0]
    d["modules"] = [root] + [{**root, "name": ".".join(["a"] * i), "type": "Block"} for i in range(1, 3001)]
    # every module of the chain holds the work the root's modules ran (the root's inclusive counts)
    d["scopes"] = [{**s, "path": list(range(3001))} if s["module"] >= 0 else s for s in d["scopes"]]
    path = _write(tmp_path, d)
    rc, out, err = _show(path, "--depth", "all", capsys=capsys)
    assert rc == 0 and err == ""
    assert len([line for line in out.splitlines() if " Block " in line]) == 3000
    assert "[level 3000] a" in out  # deep rows say their level instead of 6000 columns of indentation
    assert max(len(line) for line in out.splitlines()) < 300
    buf = io.StringIO()
    report = fd.Report.load(path)
    monkeypatch.setenv("COLUMNS", "400")  # the terminal path (rich): wide enough for 32 levels of guides
    print_report(report, buf, fancy=True, depth=40)
    assert "[level 40] a" in buf.getvalue()
    assert report.display_counts(".".join(["a"] * 3000))[0].flops == root["flops"]


def test_plain_table_is_rich_layout_character_for_character():
    """_PlainTable (linear) draws what rich draws with the plain ASCII box, wide characters included."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from flopdispatch.report import _box, _PlainTable

    columns = [("op", "left", "total"), ("calls", "right", "12"), ("fwd\nFLOPs", "right", "1.2 K"),
               ("bwd\nphase\nFLOPs", "right", ""), ("% FLOPs", "right", "100.0")]
    rows = [[Text("aten::mm"), "3", "1.2 K", "0", "50.0"], ["注意力.头", "10", "9", "1.23 M", "0.0"],
            ["", "", "", "", ""], [Text("x" * 30), "1", "2", "3", "4"]]
    for footer in (True, False):
        cols = columns if footer else [(h, j, "") for h, j, _ in columns]
        table = Table(box=_box(False), show_edge=False, pad_edge=False, show_footer=footer, safe_box=True,
                      padding=(0, 1), collapse_padding=True)
        for header, justify, foot in cols:
            table.add_column(header, justify=justify, footer=foot, no_wrap=True, overflow="fold")
        plain = _PlainTable(cols)
        for row in rows:
            table.add_row(*row)
            plain.add_row(*row)
        buf = io.StringIO()
        Console(file=buf, width=100_000, force_terminal=False, no_color=True, color_system=None, highlight=False,
                emoji=False, markup=False, soft_wrap=False).print(table)
        expected = [line.rstrip() for line in buf.getvalue().rstrip("\n").split("\n")]
        assert plain.lines() == expected
