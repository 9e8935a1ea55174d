"""Exclusive ("self") module counts, ops per module, and the count API's consistency (issue 13)."""
import copy
import json
import warnings

import pytest
import torch
import torch.nn.functional as F

import flopdispatch as fd
from flopdispatch.report import render_text
from report_v1 import as_v1  # tests/helpers, on sys.path through tests/conftest.py

FIELDS = ("flops", "macs", "bytes_read", "bytes_written", "causal_macs", "calls")


class MatmulBlock(torch.nn.Module):
    """Two child Linears plus two functional matmuls in its own forward."""

    def __init__(self):
        super().__init__()
        self.q = torch.nn.Linear(4, 4, bias=False)
        self.o = torch.nn.Linear(4, 4, bias=False)

    def forward(self, x):
        h = self.q(x)
        a = h @ h.transpose(-1, -2)
        return self.o(a @ h)


class Attn(torch.nn.Module):
    """A fused qkv projection, functional SDPA in its own forward, an output projection."""

    def __init__(self):
        super().__init__()
        self.qkv = torch.nn.Linear(8, 24, bias=False)
        self.proj = torch.nn.Linear(8, 8, bias=False)

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, 2, 4).permute(2, 0, 3, 1, 4)  # 2 heads of 4
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, 8))


def _forward_count():
    torch.manual_seed(0)
    model = torch.nn.Sequential(MatmulBlock(), MatmulBlock())
    with fd.count(model) as c:
        model(torch.randn(3, 4))
    return c


def _training_count():
    torch.manual_seed(0)
    model = torch.nn.Sequential(Attn())
    with fd.count(model) as c:
        model(torch.randn(1, 5, 8)).sum().backward()
    return c


def test_exclusive_counts_of_a_block_with_functional_matmuls():
    c = _forward_count()
    # x is 3x4. q and o: [3,4] @ [4,4] = 3*4*4 = 48 MACs each.
    # h @ h^T: [3,4] @ [4,3] = 3*3*4 = 36 MACs; a @ h: [3,3] @ [3,4] = 3*4*3 = 36 MACs.
    assert c.module("0.q").macs == 48 and c.module("0.q", exclusive=True).macs == 48  # a leaf: self == inclusive
    assert c.module("0").macs == 48 + 36 + 36 + 48  # 168
    assert c.module("0", exclusive=True).macs == 36 + 36  # 72: the block's own two matmuls
    assert c.module("0", exclusive=True).flops == 2 * 72  # 144
    assert c.module("0", exclusive=True).calls == 2
    assert c.module("", exclusive=True).calls == 0  # Sequential runs nothing itself
    # The children do not add up to the parent (48 + 48 = 96 != 168), the exclusive rows do.
    assert c.module("0.q").macs + c.module("0.o").macs == 96
    assert sum(c.module(n, exclusive=True).macs for n in c.module_names) == c.macs == 2 * 168  # 336
    assert c.module("0", phase="forward", exclusive=True).macs == 72
    assert c.module("0", phase="backward", exclusive=True).calls == 0


def test_exclusive_rows_add_up_to_the_total_with_sdpa_forward_and_backward():
    c = _training_count()
    # SDPA: batch 1, 2 heads, 5 tokens, head size 4: Q K^T 1*2*5*5*4 = 200 MACs, P V 200 MACs.
    own = c.ops(module="0", exclusive=True, phase="forward")
    assert list(own) == ["aten::_scaled_dot_product_flash_attention_for_cpu"]
    assert own["aten::_scaled_dot_product_flash_attention_for_cpu"]["macs"] == 200 + 200
    # qkv: [5,8] @ [8,24] = 5*8*24 = 960 MACs forward; proj: 5*8*8 = 320 MACs forward.
    assert c.module("0.qkv", phase="forward").macs == 960 and c.module("0.proj", phase="forward").macs == 320
    assert c.module("0", phase="forward").macs == 960 + 400 + 320  # 1680
    outside = c.module("", exclusive=True)  # nothing: the root runs only its child
    assert outside.calls == 0
    for phase in (None, "forward", "backward", "optimizer", "other"):
        whole = c.totals if phase is None else c.phase(phase)
        inside = c.module("", phase=phase)
        for f in FIELDS:
            rows = sum(getattr(c.module(n, phase=phase, exclusive=True), f) for n in c.module_names)
            # every module's own work adds up to the root's inclusive figure (the total less the
            # work outside the root: the loss .sum() and its backward seed)
            assert rows == getattr(inside, f), (phase, f)
    # the loss x.sum() over 1*5*8 = 40 outputs runs outside the model: 40 FLOPs ("other" phase)
    assert c.flops - c.module("").flops == 40
    assert sum(c.module(n, exclusive=True).flops for n in c.module_names) + 40 == c.flops


def test_ops_per_module_inclusive_and_exclusive():
    c = _forward_count()
    # 0.q: one mm [3,4] @ [4,4] = 48 MACs, 96 FLOPs
    q = c.ops(module="0.q")
    assert list(q) == ["aten::mm"] and (q["aten::mm"]["calls"], q["aten::mm"]["macs"], q["aten::mm"]["flops"]) == (1, 48, 96)
    # block 0, inclusive: q, o (48 each) and its own two (36 each): 4 mm calls, 168 MACs
    inc = c.ops(module="0")
    assert (inc["aten::mm"]["calls"], inc["aten::mm"]["macs"]) == (4, 168)
    own = c.ops(module="0", exclusive=True)
    assert (own["aten::mm"]["calls"], own["aten::mm"]["macs"]) == (2, 72)
    assert c.ops(module="") == {k: v for k, v in c.ops().items() if k in c.ops(module="")}
    assert c.ops(module="0", phase="backward") == {}
    with pytest.raises(KeyError, match="no module named 'nope'"):
        c.ops(module="nope")
    with pytest.raises(ValueError, match="needs a module"):
        c.ops(exclusive=True)


def test_report_keeps_exclusive_counts_and_ops_per_module(tmp_path):
    c = _training_count()
    report = fd.Report.from_count(c)
    path = tmp_path / "r.json"
    report.save(path)
    loaded = fd.Report.load(path)
    assert loaded == report and loaded.has_exclusive
    # every query of every view against the live count: tests/api/test_results_parity.py
    # compact: rows only where a module ran ops itself; the root (a Sequential) has none
    data = json.loads(path.read_text())
    names = [m["name"] for m in data["modules"]]
    rows = {}
    for s in data["scopes"]:
        if s["module"] >= 0:
            rows.setdefault(names[s["module"]], []).append(s["ops"])
    assert "" not in rows
    # [calls, flops, macs, bytes_read, bytes_written, causal_macs]: 960 MACs, 1920 FLOPs forward
    assert [r["forward"]["aten::mm"][:3] for r in rows["0.qkv"] if "forward" in r] == [[1, 1920, 960]]


def test_old_reports_without_exclusive_counts_still_load(tmp_path):
    c = _forward_count()
    data = as_v1(fd.Report.from_count(c).to_dict(), self_ops=False)
    old = fd.Report.from_dict(json.loads(json.dumps(data)))
    assert not old.has_exclusive and old.module("0").macs == 168
    with pytest.raises(ValueError, match="older flopdispatch"):
        old.module("0", exclusive=True)
    text = render_text(old, summary=False)
    assert "self" not in text and "Blk" not in text and "MatmulBlock" in text
    bad = as_v1(fd.Report.from_count(c).to_dict())
    bad["modules"][1]["self_ops"] = {"forward": {"aten::mm": [1, 2]}}
    with pytest.raises(fd.ReportError, match=r"modules\[1\]\.self_ops"):
        fd.Report.from_dict(bad)


def test_table_self_column_adds_up():
    c = _forward_count()
    lines = c.table(depth="all").splitlines()
    assert lines[0].split() == ["self"] and lines[1].split()[:6] == ["module", "type", "params", "MACs", "FLOPs", "FLOPs"]
    body = [line.split() for line in lines[3:] if not line.startswith("-")]
    own = [int(r[5]) for r in body if r[0] not in ("(outside", "total")]
    # self FLOPs: root 0; each block 2 * (36 + 36) = 144; each Linear 2 * 48 = 96
    assert own == [0, 144, 96, 96, 144, 96, 96]
    total = next(r for r in body if r[0] == "total")
    assert sum(own) == int(total[4]) == c.flops == 672  # 2 * 144 + 4 * 96
    # a cut tree (depth 0) keeps the root's own figure, not its subtree's
    assert c.table(depth=0).splitlines()[3].split()[5] == "0"


def test_ops_and_phase_reject_the_same_phase_names():
    c = _forward_count()
    for call in (lambda: c.phase("bwd"), lambda: c.ops(phase="bwd"), lambda: c.module("0", phase="bwd"),
                 lambda: fd.Report.from_count(c).ops(phase="bwd")):
        with pytest.raises(ValueError, match="unknown phase 'bwd'; expected one of forward, backward"):
            call()


def test_table_takes_the_command_line_options():
    c = _forward_count()
    report = fd.Report.from_count(c)
    assert c.table(depth="all") == c.table(depth=None) == render_text(report, depth=None, summary=False)
    assert c.table(depth="all") != c.table(depth=0)
    assert c.table(by="op", sort="macs", units="K") == render_text(report, by="op", sort="macs", units="K",
                                                                    summary=False)
    assert "aten::mm" in c.table(by="op")
    for bad in (-1, "-1", "deep", 1.5):
        with pytest.raises(ValueError, match="level count"):
            c.table(depth=bad)
    with pytest.raises(ValueError, match="units"):
        c.table(units="X")


def test_cli_depth_minus_one_is_an_error(tmp_path, capsys):
    from flopdispatch import cli

    path = tmp_path / "r.json"
    fd.Report.from_count(_forward_count()).save(path)
    assert cli.main(["show", str(path), "--depth", "-1"]) == 2
    assert "argument --depth: expected a level count (0, 1, 2...) or 'all', got '-1'" in capsys.readouterr().err
    assert cli.main(["show", str(path), "--depth", "all"]) == 0
    assert "MatmulBlock" in capsys.readouterr().out


def test_warns_when_the_counted_model_never_ran():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    other = copy.deepcopy(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with fd.count(model) as c:
            other(torch.randn(2, 4))
            other(torch.randn(2, 4))
    assert len(caught) == 1 and caught[0].category is UserWarning  # once, at exit
    assert "never ran" in str(caught[0].message) and caught[0].filename == __file__
    assert c.module("").calls == 0 and c.macs == 2 * 2 * 4 * 4  # two [2,4] @ [4,4]: 2 * 32 = 64 MACs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with fd.count(model):
            model(torch.randn(2, 4))
        with fd.count(model):  # nothing ran at all: nothing to warn about
            pass
        with fd.count() as c:  # no model: the first module is the root
            other(torch.randn(2, 4))
    assert caught == []


def test_saved_report_writes_self_ops_rows_on_one_line(tmp_path):
    c = _forward_count()
    report = fd.Report.from_count(c)
    text = report.to_json()
    # block 0's own two matmuls: 2 calls, 2 * 72 = 144 FLOPs, 72 MACs
    row = '"aten::mm": [2, 144, 72, '
    assert text.count(row) == 2  # blocks 0 and 1, one line each
    assert fd.Report.from_dict(json.loads(text)) == report
    assert json.loads(text) == json.loads(report.to_json(indent=None))


def test_report_renders_tables_and_the_page_from_python(tmp_path):
    c = _forward_count()
    report = fd.Report.from_count(c)
    assert report.table(depth="all") == c.table(depth="all")
    assert report.table(by="op", units="K") == c.table(by="op", units="K")
    assert report.table(summary=True) == render_text(report)
    with pytest.raises(ValueError, match="level count"):
        report.table(depth=-1)
    report.save_html(tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert page.startswith("<!DOCTYPE html>") or page.lower().startswith("<!doctype html>")
    assert "MatmulBlock" in page


def test_a_container_stays_a_container_when_its_child_is_called_at_top_level():
    """Calling ``model.blocks[0]`` directly (outside the model's forward) reaches it through its
    registered parents, ``blocks`` (a ModuleList) included, but ``blocks`` never ran: it still holds
    its children's work, in every view (live, report, saved)."""
    import flopdispatch as fd

    model = torch.nn.Sequential()
    model.blocks = torch.nn.ModuleList([torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)])
    x = torch.randn(2, 8)
    with fd.count(model) as c:
        model.blocks[0](x)
        model.blocks[1](x)
    # each Linear(8, 8) on 2 rows: 2 * 8 * 8 = 128 MACs; both: 256 MACs
    for view in (c, fd.Report.from_count(c), fd.Report.from_dict(json.loads(fd.Report.from_count(c).to_json()))):
        assert view.module("blocks").macs == 256
        assert sum(r["macs"] for r in view.ops(module="blocks").values()) == 256
        assert view.display_counts("blocks")[1] is True  # shown as a container ('*')


def test_outside_is_the_engines_figure_in_both_senses():
    """``outside()``: what the row "" does not hold; ``outside(exclusive=True)``: the ops run in no
    module's own code. The table's and the frame's "(outside root)" rows read these, live and saved."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4, bias=False), torch.nn.Linear(4, 3, bias=False))
    x = torch.randn(2, 4)
    with fd.count(model) as c:
        h = model(x)              # 2*4*4 + 2*4*3 = 32 + 24 = 56 MACs
        again = model[1](x)       # 2*4*3 = 24 MACs: module "1" of the model, called at top level
        (h + again) @ torch.ones(3, 5)  # 2*3*5 = 30 MACs in no module
    report = fd.Report.from_count(c)
    for view in (c, report):
        assert view.module("").macs == 56 + 24  # 80: the model's modules, wherever called
        assert view.outside().macs == 30
        assert view.outside(exclusive=True).macs == 30
        assert view.outside().flops == view.totals.flops - view.module("").flops
        assert sorted(view.outside_ops()) == ["aten::add", "aten::mm", "aten::ones"]  # h + again, @, ones
        assert view.outside_ops()["aten::mm"]["macs"] == 30
        own = sum(view.module(n, exclusive=True).macs for n in view.module_names)
        assert own + view.outside(exclusive=True).macs == view.totals.macs == 56 + 24 + 30  # 110
        # with a model given, work outside it is the "other" phase
        assert view.outside("other").flops == view.outside().flops and view.outside("forward").flops == 0
    from flopdispatch import frames

    outside = [r for r in frames.module_rows(report) if r[0] == frames.OUTSIDE]
    # (module, type, depth, phase, params, calls, flops, macs, ...)
    assert [(r[3], r[7]) for r in outside] == [("other", 30)]
    line = next(line for line in c.table().splitlines() if line.startswith("(outside root)"))
    assert line.split()[2] == "30"  # the MACs column ("(outside root)" is two words)


def test_symbolic_table_marks_a_never_called_container_and_shows_its_childrens_sum():
    """``SymbolicCount.table`` reads the engine: a ModuleList never called itself is starred, and its
    expression is what ``module()`` holds (its children's work), computed nowhere else."""
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList([torch.nn.Linear(4, 4, bias=False) for _ in range(2)])

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    s = fd.symbolic(Net(), (("batch", 4), torch.float32), dims={"batch": 3})
    line = next(line for line in s.table(notes=False).splitlines() if line.strip().startswith("layers"))
    assert line.split()[0] == "layers*"
    assert str(s.module("layers").flops) == "64*batch"  # 2 layers * batch*4*4 MACs * 2 = 64 batch
    assert line.split()[1] == "64*batch"
