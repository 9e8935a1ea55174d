"""Rich display in Jupyter: a real notebook executed headless (nbclient, an ipykernel) shows a count,
a report, an fd.symbolic result and the meter's summary as HTML."""
import json
import os
import re
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import flopdispatch as fd
from flopdispatch import notebook

ROOT = Path(__file__).resolve().parents[2]

CELLS = [
    """import torch, flopdispatch as fd
from flopdispatch._demo import GPT
torch.manual_seed(0)
model = GPT(layers=2, heads=2, d=16, vocab=50, context=64, device="cpu")
idx = torch.zeros(2, 8, dtype=torch.int64)
with fd.count(model) as c:
    model(idx, idx).backward()
c""",
    "fd.Report.from_count(c)",
    """s = fd.symbolic(model, ("batch", "seq"), dims={"batch": 2, "seq": 8})
s""",
    """meter = fd.Meter(model)
for _ in range(2):
    with meter.step(tokens=16):
        model(idx, idx).backward()
meter.summary()""",
]


def _html(cell):
    found = [o["data"]["text/html"] for o in cell["outputs"] if o.get("output_type") == "execute_result"
             and "text/html" in o.get("data", {})]
    assert len(found) == 1, cell["outputs"]
    return found[0]


def test_a_notebook_shows_counts_reports_symbolic_results_and_the_meter_as_html(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # a kernel of this very Python (whatever `python` is on PATH), with this checkout importable
    spec = tmp_path / "kernels" / "fd-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "flopdispatch test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in CELLS])
    nbclient.NotebookClient(nb, kernel_name="fd-test", timeout=300,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    count_html, report_html, symbolic_html, meter_html = (_html(c) for c in nb.cells)
    for page in (count_html, report_html):
        # the module table (names, types, exact counts in the tooltips) and the page inline, no network
        assert "<table>" in page and ">  lm_head</td><td>Linear</td>" in page
        assert 'title="76,800"' in page  # lm_head: 2 * 8 tokens * 16 * 50 = 12,800 MACs fwd, 2x that bwd:
        # 3 * 12,800 = 38,400 MACs = 76,800 FLOPs
        assert "<iframe srcdoc=" in page and "http://" not in page.replace("http://www.w3.org", "")
    # the count shows the report it makes (each made its own metadata: its creation time may differ)
    created = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
    assert created.sub("T", count_html) == created.sub("T", report_html)
    # symbolic: 2 layers x 2 products x 2 heads x 8 head dim = 64 batch*seq**2 MACs
    assert "64*batch*seq**2" in symbolic_html and "batch &gt;= 2" in symbolic_html
    assert "FLOP/s" in meter_html and "<td>steps</td><td>1</td>" in meter_html  # the counted step left out


def test_names_are_escaped_and_a_large_page_is_left_out():
    model = nn.ModuleDict({"<b>x</b>": nn.Linear(2, 3)})
    with fd.count(model) as c:
        model["<b>x</b>"](torch.ones(1, 2))
    page = notebook.report_html(fd.Report.from_count(c), page_limit=10)
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<iframe" not in page and "larger than 10 to inline" in page
    assert 'title="6"' in page  # Linear(2, 3) on one row: 2 * 3 = 6 MACs
    assert fd.count(model)._repr_html_() is None  # not entered: Jupyter shows the repr
