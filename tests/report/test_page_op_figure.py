"""The page's op table follows the chosen figure: with MACs (or bytes) chosen it sorts by it and its
share column is "% MACs" (or "% bytes"). Runs the page's script under node (tests/helpers/html_dom.js)."""
import json
import os
import shutil
import subprocess

import pytest
import torch
import torch.nn as nn

import flopdispatch as fd
from flopdispatch.htmlreport import render_html

HERE = os.path.dirname(__file__)


class _MatmulAndExp(nn.Module):
    """A small matmul (the only MACs) beside elementwise work with more FLOPs and bytes."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x, big):
        return self.lin(x).sum() + big.exp().sum()


def _report():
    model, x, big = _MatmulAndExp(), torch.ones(2, 4), torch.ones(1000)
    with fd.count(model) as c:
        model(x, big)
    return fd.Report.from_count(c)


def _draw(report, tmp_path, fragment):
    path = tmp_path / "p.html"
    path.write_text(render_html(report), encoding="utf-8")
    proc = subprocess.run(["node", os.path.join(HERE, "..", "helpers", "html_dom.js"), str(path), fragment], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the page's script")
@pytest.mark.parametrize("metric, label", [("flops", "FLOPs"), ("macs", "MACs"), ("bytes", "bytes"),
                                           ("params", "FLOPs")])  # ops have no params: FLOPs
def test_the_op_table_sorts_and_shares_by_the_chosen_figure(tmp_path, metric, label):
    report = _report()
    ops = report.ops()
    figure = "flops" if metric == "params" else metric

    def value(name):
        o = ops[name]
        return o["bytes_read"] + o["bytes_written"] if figure == "bytes" else o[figure]

    # the order the page must show: the figure, largest first; ties by bytes, then name (as Report.ops())
    want = sorted(ops, key=lambda n: (-value(n), -(ops[n]["bytes_read"] + ops[n]["bytes_written"]), n))
    assert figure != "macs" or want[0] == "aten::addmm"  # 2 rows * 4 * 4 = 32 MACs, every other op 0
    drawn = _draw(report, tmp_path, f"#metric={metric}")
    head = drawn["opsHead"][0]
    assert head[-1] == f"% {label}"
    assert [row[0] for row in drawn["ops"]] == want
    whole = sum(value(n) for n in ops)  # the ops add up to the total at the root
    share = {row[0]: row[head.index(f"% {label}")] for row in drawn["ops"]}
    for name in ops:
        assert share[name] == f"{100 * value(name) / whole:.1f}%", name
    if figure == "macs":
        assert share["aten::addmm"] == "100.0%"
