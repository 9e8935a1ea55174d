"""count(ignore=...) (issue 13 item 4): ignored modules' work, forward and backward, is in its own bucket,
out of every total, phase, op and module figure, and the report says so. Hand counts throughout."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import flopdispatch as fd
from flopdispatch.report import render_text

ROOT = Path(__file__).resolve().parents[2]


class LM(nn.Module):
    """3 tokens: Embedding(10, 4) -> Linear(4, 4) -> Linear(4, 10, bias=False)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.body = nn.Linear(4, 4)
        self.lm_head = nn.Linear(4, 10, bias=False)

    def forward(self, x):
        return self.lm_head(self.body(self.emb(x)))


def _run(ignore):
    torch.manual_seed(0)
    model = LM()
    with fd.count(model, ignore=ignore) as c:
        model(torch.tensor([[1, 2, 3]])).sum().backward()
    return c


def test_ignored_modules_leave_every_figure_and_land_in_their_own_bucket():
    c = _run([nn.Embedding, "lm_head"])
    assert c.ignored_modules == ["emb", "lm_head"]
    # counted: body forward 3 * 4 * 4 = 48 MACs; backward grad input 3 * 4 * 4 = 48 + grad weight 4 * 3 * 4 = 48
    assert c.totals.macs == 48 + 48 + 48 == 144
    assert c.phase("forward").macs == 48 and c.phase("backward").macs == 96
    assert c.module("").macs == c.module("body").macs == 144
    assert c.module("lm_head").calls == 0 and c.module("emb").calls == 0  # their rows hold nothing
    # ignored: lm_head forward 3 * 4 * 10 = 120; backward grad input 120 + grad weight 4 * 3 * 10 = 120
    assert c.ignored().macs == 120 + 120 + 120 == 360
    assert c.ignored("forward").macs == 120 and c.ignored("backward").macs == 240
    ops = c.ignored_ops()
    assert ops["aten::mm"]["calls"] == 3 and ops["aten::mm"]["macs"] == 360
    assert ops["aten::embedding"]["calls"] == 1 and ops["aten::embedding_dense_backward"]["calls"] == 1
    assert "aten::embedding" not in c.ops() and "aten::embedding_dense_backward" not in c.ops()
    # nothing lost: counted + ignored = the same program counted without ignore
    full = _run([])
    assert c.totals.flops + c.ignored().flops == full.totals.flops
    assert c.totals.calls + c.ignored().calls == full.totals.calls
    assert full.ignored().calls == 0 and "ignored" not in full.to_dict()


def test_type_names_strings_and_bad_entries():
    assert _run(["Embedding"]).ignored_modules == ["emb"]
    assert _run("lm_head").ignored_modules == ["lm_head"]
    with pytest.raises(ValueError, match="'lm_hed'.*close: 'lm_head'"):
        fd.count(LM(), ignore=["lm_hed"])
    with pytest.raises(TypeError, match="nn.Module types or module names"):
        fd.count(LM(), ignore=[3])


def test_the_report_states_what_was_ignored(tmp_path):
    c = _run([nn.Embedding, "lm_head"])
    d = c.to_dict()["ignored"]
    assert d["modules"] == ["emb", "lm_head"] and d["totals"]["macs"] == 360 and d["phases"]["backward"]["macs"] == 240
    report = fd.Report.from_count(c)
    report.save(tmp_path / "r.json")
    loaded = fd.Report.load(tmp_path / "r.json")
    assert loaded.meta["ignored"]["modules"] == ["emb", "lm_head"] and loaded.meta["ignored"]["macs"] == 360
    text = render_text(loaded)
    # 360 MACs, 2 * 360 = 720 mm FLOPs + 12 embedding_dense_backward FLOPs (3 rows x 4 adds) = 732
    assert "  ignored (not in any figure): emb, lm_head: 732 FLOPs, 360 MACs, 5 op calls" in text
    assert "Embedding (ignored)" in text and "Linear (ignored)" in text
    assert "144" in text.splitlines()[0]


@pytest.mark.slow  # command-line subprocesses
def test_cli_ignore_is_repeatable_and_a_bad_name_is_an_error(tmp_path):
    (tmp_path / "lm.py").write_text(textwrap.dedent('''
        import torch.nn as nn

        def build():
            return nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 10, bias=False))
    '''))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(tmp_path), env.get("PYTHONPATH", "")])

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "flopdispatch", *map(str, args)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=180)

    r = cli("model", "lm:build", "--input", "3x4", "--ignore", "1", "--json", "-")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    # counted: 3 * 4 * 4 = 48 MACs; ignored "1": 3 * 4 * 10 = 120
    assert data["totals"]["macs"] == 48 and data["meta"]["ignored"] == {
        "modules": ["1"], "flops": 240, "macs": 120, "bytes_read": 4 * (3 * 4 + 10 * 4), "bytes_written": 4 * 30,
        "calls": 1}
    r = cli("model", "lm:build", "--input", "3x4", "--ignore", "Linear", "--ignore", "nope")
    assert r.returncode == 2 and "--ignore" in r.stderr and "'nope'" in r.stderr


def test_a_hostile_ignored_meta_does_not_break_the_summary(tmp_path):
    c = _run(["lm_head"])
    data = fd.Report.from_count(c).to_dict()
    data["meta"]["ignored"] = {"modules": [["x"], "lm_head"], "flops": "many", "macs": None, "calls": 1.5}
    (tmp_path / "h.json").write_text(json.dumps(data))
    text = render_text(fd.Report.load(tmp_path / "h.json"))
    assert "ignored (not in any figure): ['x'], lm_head: 0 FLOPs, 0 MACs, 0 op calls" in text
