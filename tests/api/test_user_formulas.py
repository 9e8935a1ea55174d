"""fd.formula / fd.Cost: custom ops and opaque modules priced by the user (CPU, meta, fake)."""
import pytest
import torch
import torch.nn as nn

import flopdispatch as fd


@torch.library.custom_op("fdtest::fused_mm", mutates_args=())
def fused_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.mm(a, b) + 1  # aten ops inside the implementation: not counted (below the mode)


@fused_mm.register_fake
def _(a, b):
    return a.new_empty(a.shape[0], b.shape[1])


@torch.library.custom_op("fdtest::no_formula", mutates_args=())
def no_formula(a: torch.Tensor) -> torch.Tensor:
    return a.clone()


@no_formula.register_fake
def _(a):
    return torch.empty_like(a)


_lib = torch.library.Library("fdtest", "FRAGMENT")
_lib.define("cia_scale(Tensor a) -> Tensor")
_lib.impl("cia_scale", lambda a: torch.mul(a, 3.0), "CompositeImplicitAutograd")


@pytest.fixture
def mm_formula():
    @fd.formula("fdtest::fused_mm")
    def _(a, b):
        return fd.Cost(macs=a.shape[0] * a.shape[1] * b.shape[1])

    yield
    assert fd.remove_formula("fdtest::fused_mm")


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_custom_op_formula_cpu_and_meta(mm_formula, device):
    a, b = torch.randn(4, 6, device=device), torch.randn(6, 5, device=device)
    with fd.count() as c:
        out = fused_mm(a, b)
    assert out.shape == (4, 5)
    op = c.ops()["fdtest::fused_mm"]
    assert op["macs"] == 120            # 4 * 6 * 5 = 120
    assert op["flops"] == 240           # default 2 * macs
    assert op["bytes_read"] == 4 * (24 + 30)   # the tensor arguments, as for aten: (4*6 + 6*5) * 4 B
    assert op["bytes_written"] == 4 * 20       # the output: 4*5 * 4 B
    assert set(c.ops()) == {"fdtest::fused_mm"}  # the implementation's mm and add are not counted again
    assert c.unsupported == {}


def test_custom_op_formula_fake(mm_formula):
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        a, b = torch.randn(8, 3), torch.randn(3, 7)
        with fd.count() as c:
            fused_mm(a, b)
    assert c.ops()["fdtest::fused_mm"]["macs"] == 168  # 8 * 3 * 7 = 168


def test_results_unchanged(mm_formula):
    a, b = torch.randn(4, 6), torch.randn(6, 5)
    expected = fused_mm(a, b)
    with fd.count():
        got = fused_mm(a, b)
    assert torch.equal(expected, got)


def test_without_formula_unsupported_then_registered_while_cached():
    a = torch.randn(3, 3)
    with fd.count() as c:
        no_formula(a)
    assert c.unsupported == {"fdtest::no_formula": 1}
    # registered after the op was resolved once: the cached resolution must see it
    fd.formula(torch.ops.fdtest.no_formula)(lambda a: fd.Cost(flops=a.numel(), bytes_read=0, bytes_written=0))
    try:
        with fd.count() as c:
            no_formula(a)
        assert c.unsupported == {}
        assert c.ops()["fdtest::no_formula"] == {"calls": 1, "flops": 9, "macs": 0, "bytes_read": 0,
                                                 "bytes_written": 0, "causal_macs": 0}  # 3 * 3 = 9
    finally:
        assert fd.remove_formula(torch.ops.fdtest.no_formula)
    with fd.count() as c:
        no_formula(a)
    assert c.unsupported == {"fdtest::no_formula": 1}


def test_overload_and_packet_targets():
    a, b = torch.randn(2, 3), torch.randn(3, 4)
    fd.formula(torch.ops.fdtest.fused_mm.default)(lambda a, b: fd.Cost(macs=7))
    try:
        with fd.count() as c:
            fused_mm(a, b)
        assert c.macs == 7
    finally:
        fd.remove_formula(torch.ops.fdtest.fused_mm.default)
    fd.formula(fused_mm)(lambda a, b: fd.Cost(macs=11, flops=5))  # the CustomOpDef itself
    try:
        with fd.count() as c:
            fused_mm(a, b)
        assert (c.macs, c.flops) == (11, 5)
    finally:
        fd.remove_formula(fused_mm)


def test_composite_implicit_op_counts_its_parts_once():
    # A CompositeImplicitAutograd op decomposes before the mode sees it: its parts are counted,
    # and a formula for it is not used on top of them (no double count).
    fd.formula("fdtest::cia_scale")(lambda a: fd.Cost(flops=1000))
    try:
        a = torch.randn(5, 2)
        with fd.count() as c:
            out = torch.ops.fdtest.cia_scale(a)
        assert torch.equal(out, a * 3.0)
        assert c.flops == 10  # aten::mul, 5 * 2 = 10 elements, 1 FLOP each
        assert "fdtest::cia_scale" not in c.ops()
    finally:
        fd.remove_formula("fdtest::cia_scale")


def test_aten_override_and_restore():
    a, b = torch.randn(2, 3), torch.randn(3, 4)
    with fd.count() as c:
        torch.mm(a, b)
    assert c.macs == 24  # 2 * 3 * 4
    fd.formula("aten::mm")(lambda a, b: fd.Cost(macs=1))
    try:
        with fd.count() as c:
            torch.mm(a, b)
        assert c.macs == 1
    finally:
        fd.remove_formula("aten::mm")
    with fd.count() as c:
        torch.mm(a, b)
    assert c.macs == 24


@pytest.mark.parametrize("bad, message", [
    (lambda a, b: fd.Cost(macs=-1), "must not be negative"),
    (lambda a, b: fd.Cost(macs=2.5), "must be an integer"),
    (lambda a, b: 42, "must return flopdispatch.Cost"),
    (lambda a, b: 1 / 0, "ZeroDivisionError"),
])
def test_formula_errors_are_reported_not_raised(bad, message):
    fd.formula("fdtest::fused_mm")(bad)
    try:
        a, b = torch.randn(2, 3), torch.randn(3, 4)
        with fd.count() as c:
            out = fused_mm(a, b)
        assert out.shape == (2, 4)
        assert c.unsupported == {"fdtest::fused_mm": 1}
        assert message in c.unsupported_reasons["fdtest::fused_mm"]
        assert c.flops == 0
    finally:
        fd.remove_formula("fdtest::fused_mm")


def test_keyboard_interrupt_in_formula_propagates():
    def interrupted(a, b):
        raise KeyboardInterrupt

    fd.formula("fdtest::fused_mm")(interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            with fd.count():
                fused_mm(torch.randn(2, 3), torch.randn(3, 4))
        with fd.count() as c:  # the counter still works afterwards
            torch.mm(torch.randn(2, 3), torch.randn(3, 4))
        assert c.macs == 24
    finally:
        fd.remove_formula("fdtest::fused_mm")


def test_big_integers():
    big = 27 * 10**18  # 3e6 ** 3: past 2**63
    fd.formula("fdtest::fused_mm")(lambda a, b: fd.Cost(macs=big, bytes_read=0, bytes_written=0))
    try:
        with fd.count() as c:
            fused_mm(torch.randn(2, 3), torch.randn(3, 4))
            fused_mm(torch.randn(2, 3), torch.randn(3, 4))
        assert c.macs == 2 * big and c.flops == 4 * big
    finally:
        fd.remove_formula("fdtest::fused_mm")


def test_bad_targets():
    with pytest.raises(ValueError, match="namespace::op"):
        fd.formula("fused_mm")
    with pytest.raises(TypeError, match="nn.Module subclass"):
        fd.formula(int)
    with pytest.raises(TypeError, match="the target must be"):
        fd.formula(3.5)
    with pytest.raises(TypeError, match="callable"):
        fd.formula("a::b", 5)
    assert fd.remove_formula("fdtest::never_registered") is False


class Opaque(nn.Module):
    """Work the dispatcher cannot see (numpy), beside a visible Linear."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(8, 8, bias=False)

    def forward(self, x):
        y = torch.from_numpy((x.detach().numpy() @ x.detach().numpy().T)) if x.device.type == "cpu" \
            else x.new_empty(x.shape[0], x.shape[0])
        return self.proj(x), y


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Opaque()
        self.head = nn.Linear(8, 2, bias=False)

    def forward(self, x):
        h, _ = self.block(x)
        return self.head(h)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_module_formula(device):
    @fd.formula(Opaque)
    def _(module, args, output):
        x = args[0]
        return fd.Cost(macs=x.shape[0] * x.shape[1] * x.shape[0])  # x @ x.T

    try:
        model = Model().to(device)
        x = torch.randn(4, 8, device=device)
        with fd.count(model) as c:
            model(x)
        opaque = 4 * 8 * 4             # 128
        proj = 4 * 8 * 8               # 256, still counted from its aten op
        head = 4 * 8 * 2               # 64
        assert c.module("block").macs == opaque + proj
        assert c.module("block.proj").macs == proj
        assert c.module("head").macs == head
        assert c.macs == opaque + proj + head
        assert c.phase("forward").macs == opaque + proj + head
        row = c.ops()["module::Opaque"]
        assert row["calls"] == 1 and row["macs"] == opaque
        assert row["bytes_read"] == 4 * 8 * 4                      # the input, as for an aten op
        assert row["bytes_written"] == (4 * 8 + 4 * 4) * 4         # both outputs
        assert c.unsupported == {}
    finally:
        assert fd.remove_formula(Opaque)


def test_module_formula_in_checkpoint_recompute_is_backward():
    from torch.utils.checkpoint import checkpoint, set_checkpoint_early_stop

    class Square(nn.Module):
        def forward(self, x):
            return x * x

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.sq = Square()

        def forward(self, x):
            return checkpoint(self.sq, x, use_reentrant=False)

    fd.formula(Square)(lambda module, args, output: fd.Cost(macs=100))
    try:
        model, x = Outer(), torch.randn(3, requires_grad=True)
        with set_checkpoint_early_stop(False), fd.count(model) as c:  # recompute the whole forward
            model(x).sum().backward()
        assert c.phase("forward").macs == 100 and c.phase("backward").macs == 100
        assert c.module("sq", phase="backward").macs == 100
    finally:
        fd.remove_formula(Square)


def test_module_formula_error_reported():
    fd.formula(Opaque)(lambda module, args, output: fd.Cost(macs=-5))
    try:
        model = Model()
        with fd.count(model) as c:
            out = model(torch.randn(2, 8))
        assert out.shape == (2, 2)
        assert c.unsupported == {"module::Opaque": 1}
    finally:
        fd.remove_formula(Opaque)


def test_exported():
    assert {"formula", "Cost", "remove_formula"} <= set(fd.__all__)

