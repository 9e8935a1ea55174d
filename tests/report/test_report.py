"""Saved reports (flopdispatch.report/1), the tables rendered from them and the progress line."""
import copy
import io
import json
import os
import time

import pytest
import torch
import torch.nn as nn

import flopdispatch as fd
from flopdispatch.progress import Progress, live_totals
from flopdispatch.report import print_report, render_text
from flopdispatch.schema import SCHEMA


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(8, 16)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(16, 16), nn.Tanh()) for _ in range(3))
        self.head = nn.Linear(16, 2)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        for b in self.blocks:
            x = x + b(x)
        return self.head(x)


def _training_step(steps=2):
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.AdamW(model.parameters(), foreach=False)
    x, y = torch.randn(4, 8), torch.randn(4, 2)
    with fd.count(model) as c:
        for _ in range(steps):
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
            opt.zero_grad()
    return c


@pytest.fixture(scope="module")
def counted():
    c = _training_step()
    return c, fd.Report.from_count(c, meta={"target": "Net"})


def test_report_matches_the_count_and_survives_a_file(counted, tmp_path):
    c, report = counted
    path = tmp_path / "r.json"
    report.save(path)
    data = json.loads(path.read_text())
    assert data["schema"] == SCHEMA == "flopdispatch.report/2"
    assert data["meta"]["torch_version"] == torch.__version__ and data["meta"]["target"] == "Net"
    loaded = fd.Report.load(path)
    assert loaded == report
    for r in (report, loaded):
        assert r.totals == c.totals and r.params == c.params == sum(p.numel() for p in Net().parameters())
        assert r.module_names == c.module_names
        for p in fd.PHASES:
            assert r.phase(p) == c.phase(p)
        for name in c.module_names:
            assert r.module(name) == c.module(name)
            for p in fd.PHASES:
                assert r.module(name, p) == c.module(name, p)
        for p in (None,) + fd.PHASES:
            assert r.ops(p) == c.ops(p)
    # Every count is in the file, split by phase, and the splits add up.
    assert sum(ph["flops"] for ph in data["phases"].values()) == data["totals"]["flops"]
    for m in data["modules"]:
        for f in ("flops", "macs", "bytes_read", "bytes_written", "calls"):
            assert sum(ph[f] for ph in m["phases"].values()) == m[f]
    for o in data["ops"]:
        assert sum(ph["flops"] for ph in o["phases"].values()) == o["flops"]
    assert set(data["phases"]) == {"forward", "backward", "optimizer", "other"}


def test_to_dict_carries_the_splits_the_report_needs(counted):
    c, _ = counted
    d = json.loads(json.dumps(c.to_dict()))
    assert d["schema"] == "flopdispatch.report/2"  # count.to_dict() is the saved report's JSON
    assert d["params"] == c.params and d["trainable_params"] == c.trainable_params
    m = c.module("blocks.0", "backward")
    entry = next(e for e in d["modules"] if e["name"] == "blocks.0")
    assert entry["phases"]["backward"] == {f: getattr(m, f) for f in d["totals"]}
    assert entry["phases"]["backward"]["macs"] == c.module("blocks.0", "backward").macs > 0
    op = next(o for o in d["ops"] if o["name"] == "aten::addcdiv_")
    assert op["phases"]["optimizer"]["calls"] == c.ops("optimizer")["aten::addcdiv_"]["calls"]
    r = fd.Report.from_dict(d)
    assert r.totals == c.totals and r.module("head", "forward") == c.module("head", "forward")


@pytest.mark.parametrize("options", [
    {}, {"by": "op"}, {"by": "phase"}, {"depth": None, "sort": "flops"}, {"depth": 0}, {"sort": "params"},
    {"sort": "bytes", "units": "K"}, {"by": "op", "sort": "macs", "units": "M"},
])
def test_table_from_json_equals_table_from_the_live_count(counted, tmp_path, options):
    _, report = counted
    path = tmp_path / "r.json"
    report.save(path)
    assert render_text(fd.Report.load(path), **options) == render_text(report, **options)


def test_module_tree_table(counted):
    c, report = counted
    text = render_text(report, depth=None, sort="flops")
    assert text.isascii()  # plain text: no box-drawing characters, no colour codes
    lines = text.splitlines()
    assert lines[0].startswith("flopdispatch: Net: ")
    header = next(line for line in lines if line.startswith("module"))
    for col in ("type", "params", "MACs", "FLOPs", "bytes", "FLOP/B", "% FLOPs"):
        assert col in header
    assert any(line.startswith("total") for line in lines)
    # phase columns (several phases ran) and the container footnote
    assert "fwd" in text and "bwd" in text and "opt" in text
    row = next(line for line in lines if line.split()[:2] == ["blocks", "ModuleList*"])
    blocks = sum(c.module(f"blocks.{i}").flops for i in range(3))
    assert fd.human(blocks) in row
    assert "* not called itself" in text
    # siblings sorted by FLOPs: the three blocks (rolled up) come before the stem
    order = [line.split()[0] for line in lines if line.startswith("  ") and not line.startswith("    ")]
    assert order.index("blocks") < order.index("stem")
    # count.table() is the same tree, without the summary lines
    assert c.table(depth=1) == render_text(report, depth=1, summary=False)
    assert "blocks" in c.table(depth=1) and "blocks.0" not in c.table(depth=1)


def test_fixed_units_and_fancy_terminal_output(counted, monkeypatch):
    _, report = counted
    for var in ("NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "200")
    fixed = render_text(report, units="K")
    assert "FLOPs (K)" in fixed and "bytes (KB)" in fixed
    buf = io.StringIO()
    print_report(report, buf, fancy=True, depth=2)
    out = buf.getvalue()
    assert "├── " in out and "└── " in out and "\x1b[" in out  # tree guides and colours on a terminal
    buf = io.StringIO()
    print_report(report, buf)  # not a terminal: the plain text
    assert buf.getvalue() == render_text(report) + "\n"


def test_no_module_falls_back_to_ops_and_unsupported_ops_are_listed():
    with fd.count() as c:
        a = torch.randn(8, 8)
        (a @ a).sum()
    report = fd.Report.from_count(c)
    text = render_text(report)
    assert "no nn.Module ran" in text and "aten::mm" in text
    data = report.to_dict()
    data["unsupported"] = [{"op": "aten::mystery", "calls": 3, "reason": "no formula declared"}]
    text = render_text(fd.Report.from_dict(data), by="phase")
    assert "unsupported ops" in text and "aten::mystery  x3  no formula declared" in text


def _bad(data):
    return json.dumps(data)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: "{not json", "invalid JSON"),
    (lambda d: "[1, 2]", "no \"schema\""),
    (lambda d: _bad({"schema": "othertool.report/1"}), "not a flopdispatch report"),
    (lambda d: _bad({**d, "schema": "flopdispatch.report/9"}), "unsupported report version"),
    (lambda d: _bad({**d, "totals": {"flops": -1}}), "totals.flops: expected a non-negative integer"),
    (lambda d: _bad({**d, "totals": {"flops": True}}), "totals.flops"),
    (lambda d: _bad({**d, "modules": d["modules"] + [d["modules"][1]]}), "duplicate module name"),
    (lambda d: _bad({**d, "modules": [d["modules"][0], {**d["modules"][1], "name": "x.y"}]}), "parent of 'x.y'"),
    (lambda d: _bad({**d, "phases": {"sideways": {}}}), "unknown phase 'sideways'"),
    (lambda d: _bad({**d, "ops": {"aten::mm": {}}}), "ops: expected a list"),
])
def test_load_rejects_corrupt_and_foreign_files_in_one_line(counted, tmp_path, mutate, message):
    _, report = counted
    path = tmp_path / "bad.json"
    path.write_text(mutate(copy.deepcopy(report.to_dict())))
    with pytest.raises(fd.ReportError) as e:
        fd.Report.load(path)
    assert message in str(e.value) and "\n" not in str(e.value) and str(path) in str(e.value)
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(fd.ReportError, match="not a flopdispatch report"):
        fd.Report.load(path)
    with pytest.raises(fd.ReportError, match="no such file"):
        fd.Report.load(tmp_path / "missing.json")


def test_progress_line_reads_the_live_table_cheaply():
    model = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32))
    stream = io.StringIO()
    with fd.count(model) as c:
        progress = Progress(c, stream, interval=0.01, delay=0.0, force=True).start()
        # Work until the progress thread has drawn twice. The 10-minute guard only stops a hang (a
        # thread that never runs); no assertion depends on how fast this machine is.
        deadline = time.monotonic() + 600
        while progress.updates < 2:
            assert time.monotonic() < deadline, "the progress thread never drew its line"
            model(torch.randn(4, 32)).sum().backward()
        progress.stop()
        calls, flops = live_totals(c)
        assert (calls, flops) == (c.totals.calls, c.totals.flops)
    assert live_totals(c) is None  # outside the block
    out = stream.getvalue()
    assert progress.updates >= 2 and "op calls" in out and "FLOPs" in out
    assert out.startswith("\r\x1b[K") and out.endswith("\r\x1b[K")  # the line is cleared at the end
    assert not Progress(c, io.StringIO()).enabled  # not a terminal: no progress


# ----- atomic saves (issue 20, item 3) and unknown names --------------------------------------------

def test_an_interrupted_save_leaves_the_old_file_whole_and_loadable(counted, tmp_path, monkeypatch):
    _, report = counted
    path = tmp_path / "r.json"
    report.save(path)
    before = path.read_bytes()
    page = tmp_path / "r.html"
    report.save_html(page)
    page_before = page.read_bytes()
    import flopdispatch._files as files

    real_fdopen = os.fdopen

    class Interrupted:
        """The temporary file's writer, interrupted (Ctrl-C) halfway through the text."""

        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()
            return False

        def write(self, text):
            self.f.write(text[:len(text) // 2])
            raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "fdopen", lambda *a, **k: Interrupted(real_fdopen(*a, **k)))
    for write, target, old in ((report.save, path, before), (report.save_html, page, page_before)):
        with pytest.raises(KeyboardInterrupt):
            write(target)
        assert target.read_bytes() == old  # the old file, whole
        assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.json"]  # no temporary file left
    monkeypatch.undo()
    assert fd.Report.load(path) == report


def test_a_save_keeps_the_files_permissions(counted, tmp_path):
    _, report = counted
    path = tmp_path / "r.json"
    path.write_text("old")
    os.chmod(path, 0o640)
    report.save(path)
    assert os.stat(path).st_mode & 0o777 == 0o640 and fd.Report.load(path) == report


def test_unknown_module_phase_and_op_names_offer_close_matches(counted):
    c, report = counted
    for r in (c, report):
        with pytest.raises(KeyError, match=r"no module named 'blocks\.0\.00'.*close: 'blocks\.0\.0'"):
            r.module("blocks.0.00")
        with pytest.raises(KeyError, match="close: 'head'"):
            r.ops(module="haed")
        with pytest.raises(ValueError, match="unknown phase 'backwards'.*close: 'backward'"):
            r.module("", phase="backwards")
        with pytest.raises(KeyError, match="close: 'aten::addmm'"):
            r.op_counts("aten::addm")


def test_the_results_engine_and_renderers_import_no_torch_at_module_level():
    """`flopdispatch show` loads and renders a report without torch: the engine, the schema and the
    renderers import (at module level) only each other and the standard library."""
    import ast
    import pathlib

    package = pathlib.Path(fd.__file__).parent
    light = {"results", "schema", "report", "frames", "htmlreport", "_counts", "_files", "_text", "_version"}
    for name in sorted(light):
        tree = ast.parse((package / f"{name}.py").read_text(encoding="utf-8"))
        for node in tree.body:  # module level only: a function may import torch when it runs
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "torch" for a in node.names), name
            elif isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] != "torch", name
                if node.level:
                    for target in ([node.module] if node.module else [a.name for a in node.names]):
                        assert target.split(".")[0] in light, (name, target)


def test_older_files_load_and_say_what_they_lack(counted, tmp_path):
    """report/1 (no scopes: module figures as stored, own ops per module) and a bare counts/1 dump."""
    from report_v1 import as_v1  # tests/helpers (tests/conftest.py puts it on sys.path)

    c, report = counted
    old = fd.Report.from_dict(as_v1(report.to_dict()))
    assert "scopes" in old.missing and "module_counts" in old.missing and old.has_exclusive
    for name in c.module_names:
        for phase in (None,) + fd.PHASES:
            assert old.module(name, phase) == c.module(name, phase)  # as stored
            assert old.module(name, phase, exclusive=True) == c.module(name, phase, exclusive=True)
    assert old.ops() == c.ops() and old.totals == c.totals
    path = tmp_path / "again.json"
    old.save(path)  # saved again: report/2 with what it lacks stated
    data = json.loads(path.read_text())
    assert data["schema"] == "flopdispatch.report/2" and "scopes" in data["missing"]
    assert fd.Report.load(path) == old
    # a bare counts/1 dump of older versions: one Linear(2, 3) on 1 row, 6 MACs, 12 + 3 = 15 FLOPs
    row = {"flops": 15, "macs": 6, "bytes_read": 44, "bytes_written": 12, "causal_macs": 6, "calls": 1}
    dump = {"schema": "flopdispatch.counts/1", "totals": row, "phases": {"forward": row},
            "modules": {"": {**row, "type": "Linear", "params": 9}}, "module_phases": {"": {"forward": row}},
            "op_phases": {"forward": {"aten::addmm": row}},
            "module_self_ops": {"": {"forward": {"aten::addmm": [1, 15, 6, 44, 12, 6]}}}}
    loaded = fd.Report.from_dict(dump)
    assert loaded.module("").flops == 15 and loaded.module("", exclusive=True).macs == 6
    assert loaded.ops(module="")["aten::addmm"]["flops"] == 15 and loaded.params == 9
    assert loaded.module("").params == 9 and "scopes" in loaded.missing
