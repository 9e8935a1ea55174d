"""Exact integers past 2^127 (issue 20, item 1): the recorder's 128-bit rows carry on in Python ints
when a sum or a single call does not fit, so totals, module, phase and op views stay exact."""
import json

import pytest
import torch
import torch.nn as nn

import flopdispatch as fd


class TwoMatmuls(nn.Module):
    """Runs ``n`` matrix products a @ a in its own forward (priced by the test's formula)."""

    def __init__(self, n):
        super().__init__()
        self.n = n
        self.inner = nn.Identity()

    def forward(self, a):
        for _ in range(self.n):
            a = self.inner(a) @ a
        return a


@pytest.fixture
def priced_mm():
    """fd.formula('aten::mm') pricing every call at the MACs the test sets."""
    price = {"macs": 0}
    fd.formula("aten::mm", lambda a, b: fd.Cost(macs=price["macs"]))
    yield price
    assert fd.remove_formula("aten::mm")


@pytest.mark.parametrize("calls, macs_per_call", [
    (2, 2 ** 125),   # MACs 2^126 fit 128 bits; FLOPs 2 * 2 * 2^125 = 2^127 do not (signed max 2^127 - 1)
    (4, 2 ** 125),   # MACs 4 * 2^125 = 2^127 and FLOPs 2^128: both past; the old core gave 0
    (3, 2 ** 200),   # every single call is past 128 bits
    (1, 2 ** 127),   # exactly the first value a signed 128-bit int cannot hold
])
def test_exact_past_128_bits(priced_mm, calls, macs_per_call):
    priced_mm["macs"] = macs_per_call
    model = TwoMatmuls(calls)
    a = torch.randn(3, 3)
    with fd.count(model) as c:
        model(a)
    macs = calls * macs_per_call           # each call: the formula's MACs
    flops = 2 * macs                       # the formula gives no FLOPs: 2 per MAC
    assert c.macs == macs and c.flops == flops
    assert c.totals.macs == macs and c.totals.causal_macs == macs
    assert c.phase("forward").flops == flops
    op = c.ops()["aten::mm"]
    assert op == {"calls": calls, "flops": flops, "macs": macs, "causal_macs": macs,
                  "bytes_read": calls * 2 * 9 * 4, "bytes_written": calls * 9 * 4}  # two 3x3 fp32 in, one out
    assert c.module("").flops == flops
    assert c.module("", exclusive=True).flops == flops  # a @ a runs in the root's own forward
    assert c.module("inner").flops == 0
    assert c.ops(module="")["aten::mm"]["macs"] == macs
    report = fd.Report.from_count(c)
    assert report.totals.flops == flops and report.totals.macs == macs
    again = fd.Report.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.totals.flops == flops


def test_rows_past_128_bits_sum_exactly(priced_mm):
    """Rows in different phases and modules, each past 128 bits, summed into the total."""
    priced_mm["macs"] = 2 ** 127 - 1                  # the largest value a row holds alone
    a = torch.randn(2, 2, requires_grad=True)
    lin = nn.Linear(2, 2, bias=False)
    with fd.count() as c:
        (a @ a).sum().backward()                      # forward 1 mm; backward 2 mm (grad of each operand)
        lin(a @ a)                                    # 1 mm outside, then linear (its mm is not aten::mm)
    mm = c.ops()["aten::mm"]
    assert mm["calls"] == 5                           # 1 + 2 + 1 + 1 (linear on a 2-D input runs aten::mm)
    assert mm["macs"] == 5 * (2 ** 127 - 1)
    assert c.ops(phase="backward")["aten::mm"]["macs"] == 2 * (2 ** 127 - 1)
    assert c.phase("backward").macs == 2 * (2 ** 127 - 1)   # the backward's only MACs: its 2 mm
    assert c.phase("forward").macs == 3 * (2 ** 127 - 1)


def test_small_counts_unchanged(priced_mm):
    """128-bit sums of the small ints of ordinary ops are unchanged (no spill, no sign flip)."""
    priced_mm["macs"] = 7
    with fd.count() as c:
        torch.randn(2, 2) @ torch.randn(2, 2)
    assert c.macs == 7 and c.flops == 14  # 7 MACs, 2 FLOPs each
