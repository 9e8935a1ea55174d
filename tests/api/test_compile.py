"""torch.compile and flopdispatch (issue 20, items 5 and 6): the meter counts the right step whichever
of the model or its compiled wrapper is handed and called; dynamo never traces flopdispatch's code;
a count of a compiled model counts its eager-equivalent ops.

The "eager" backend keeps these tests fast: dynamo captures and guards exactly as with the default
backend (what flopdispatch meets), only the graph is then run as captured instead of being compiled.
"""
import logging

import pytest
import torch
import torch.nn as nn

import flopdispatch as fd

pytestmark = pytest.mark.filterwarnings("ignore:Using `torch.compile\\(module\\)` when there are global hooks")


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))


X = torch.randn(4, 16)
# The 16-32-8 MLP, batch 4, forward + backward of model(x).sum() (the input needs no gradient):
# MACs: forward 4*16*32 + 4*32*8 = 3,072; backward: grad of the 2nd weight 4*32*8 and of its input
# 4*32*8, grad of the 1st weight 4*16*32: 1,024 + 1,024 + 2,048 = 4,096.
MACS = 3_072 + 4_096
# FLOPs: 2 per MAC = 14,336; bias adds 4*32 + 4*8 = 160; relu 4*32 = 128; the sum 4*8 = 32; relu's
# backward 128; bias gradients (sums over the batch) 4*32 + 4*8 = 160: 14,336 + 608 = 14,944.
FLOPS = 2 * MACS + 160 + 128 + 32 + 128 + 160


def train(m):
    m(X).sum().backward()
    for p in m.parameters():
        p.grad = None


@pytest.mark.parametrize("hand, call", [("model", "model"), ("model", "compiled inside the step"),
                                        ("model", "compiled before"), ("compiled", "compiled"),
                                        ("compiled", "model")])
def test_meter_counts_the_step_of_a_compiled_model(hand, call):
    torch._dynamo.reset()
    model = mlp()
    compiled = torch.compile(model, backend="eager")
    meter = fd.Meter(model if hand == "model" else compiled)
    with fd.count(model) as oracle:  # the eager step, counted directly
        train(model)
    assert oracle.flops == FLOPS and oracle.macs == MACS
    for i in range(3):  # a counted step, then timed steps reusing its count
        with meter.step():
            if call == "compiled inside the step":
                train(torch.compile(model, backend="eager"))
            else:
                train(model if call == "model" else compiled)
        assert meter.last.flops == FLOPS, (i, meter.last)
        assert meter.last.counted == (i == 0)
    assert meter.counts_made == 1


def test_demo_gpt_step_compiled_inside():
    """The demo GPT (2 layers, width 64 here: small on CPU) metered while torch.compile'd inside the
    step: the same FLOPs as its eager step counted directly."""
    from flopdispatch._demo import GPT

    torch._dynamo.reset()
    torch.manual_seed(0)
    model = GPT(layers=2, heads=4, d=64, vocab=100, context=32, device="cpu")
    idx = torch.randint(0, 100, (2, 16))

    def step(m):
        m(idx, idx).backward()
        model.zero_grad()

    with fd.count(model) as oracle:
        step(model)
    meter = fd.Meter(model)
    for _ in range(2):
        with meter.step():
            step(torch.compile(model, backend="eager"))
        assert meter.last.flops == oracle.flops


def test_dynamo_never_traces_flopdispatch():
    """Issue 20's reproducer: count a compiled Linear, count the compiled wrapper, then meter a second
    compiled Linear. Dynamo traced count.__enter__ (the tree cache) from the meter's hook and raised
    'already tracked for mutation'."""
    torch._dynamo.reset()
    x = torch.randn(2, 4)
    lin = nn.Linear(4, 4)
    clin = torch.compile(lin, backend="eager")
    clin(x)
    with fd.count(lin) as c1:
        clin(x)
    with fd.count(clin) as c2:
        clin(x)
    lin2 = nn.Linear(4, 4)
    clin2 = torch.compile(lin2, backend="eager")
    meter = fd.Meter(lin2)
    with meter.step():
        clin2(x)
    # addmm of [2, 4] @ [4, 4]: 2*4*4 = 32 MACs, 64 FLOPs, plus the bias add 2*4 = 8
    assert c1.flops == c2.flops == meter.last.flops == 72


def rare_ops(t):
    """Twelve ops no other test here runs: each is new to the op resolver when first counted."""
    s = torch.special
    return (s.i0(t) + s.i1(t) + s.erfcx(t) + s.log_ndtr(t) + s.ndtri(t.sigmoid()) + s.entr(t) + s.sinc(t)
            + s.i0e(t) + s.i1e(t) + s.xlog1py(t, t) + s.bessel_j0(t) + s.bessel_j1(t))


def test_no_recompiles_from_flopdispatch(caplog):
    """Counting a warm compiled function runs it eagerly: none of flopdispatch's functions (the op
    resolver the core calls for each new op) is compiled by dynamo, so no recompile-limit warning
    (each new op made dynamo compile ``_core._has_composite_kernel`` again, until its limit of 8)."""
    torch._dynamo.reset()
    x = torch.rand(2, 8)
    compiled = torch.compile(rare_ops, backend="eager")
    compiled(x)  # warm
    with caplog.at_level(logging.WARNING, logger="torch._dynamo"):
        with fd.count() as c:
            compiled(x)
    with fd.count() as eager:
        rare_ops(x)
    assert c.ops() == eager.ops() and len(c.ops()) >= 12  # the eager-equivalent ops
    assert not [r for r in caplog.records if "recompile" in r.getMessage()]
