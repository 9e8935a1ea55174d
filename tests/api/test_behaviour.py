"""The counter must not change the user's program, and must never silently zero."""
import gc
import weakref

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

import flopdispatch as fd


def _global_hook_counts():
    m = torch.nn.modules.module
    return (len(m._global_forward_pre_hooks), len(m._global_forward_hooks))


def test_same_outputs_as_without_counter():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 4))
    x = torch.randn(3, 8)
    expected = model(x)
    with fd.count(model):
        got = model(x)
    assert torch.equal(expected, got)


def test_exception_propagates_and_leaves_nothing_behind():
    hooks_before = _global_hook_counts()
    model = nn.Linear(4, 4)
    with pytest.raises(RuntimeError, match="mat1 and mat2 shapes cannot be multiplied"):
        with fd.count(model) as c:
            model(torch.randn(2, 4))
            model(torch.randn(2, 5))  # wrong shape: torch's own error
    assert _global_hook_counts() == hooks_before
    assert not _get_current_dispatch_mode_stack()
    # what ran before the error is kept: 2 * 4 * 4 MACs
    assert c.macs == 2 * 4 * 4


def test_exception_inside_module_forward_unwinds_scopes():
    class Boom(nn.Module):
        def forward(self, x):
            raise ValueError("boom")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.boom = nn.Linear(4, 4), Boom()

        def forward(self, x):
            return self.boom(self.a(x))

    net = Net()
    with fd.count(net) as c:
        with pytest.raises(ValueError, match="boom"):
            net(torch.randn(1, 4))
        torch.mm(torch.randn(2, 3), torch.randn(3, 5))  # after the failed call: outside the model
    assert c.module("a").macs == 16          # 1 * 4 * 4
    assert c.module("").macs == 16
    assert c.macs == 16 + 2 * 3 * 5          # the mm outside counts in the total only


def test_no_reference_to_tensors_after_block():
    model = nn.Linear(4, 4)
    x = torch.randn(2, 4, requires_grad=True)
    with fd.count(model) as c:
        y = model(x)
        y.sum().backward()
    ref = weakref.ref(y)
    del y
    gc.collect()
    assert ref() is None
    assert c.macs > 0


def test_count_is_single_use():
    c = fd.count()
    with c:
        pass
    with pytest.raises(RuntimeError, match="entered only once"):
        with c:
            pass


def test_bad_model_argument_is_a_clear_error():
    with pytest.raises(TypeError, match="expected a torch.nn.Module"):
        fd.count("resnet")


def test_unknown_module_name_is_a_clear_error():
    with fd.count(nn.Linear(2, 2)) as c:
        pass
    with pytest.raises(KeyError, match="no module named 'fc'"):
        c.module("fc")


@torch.library.custom_op("fd_behaviour::opaque_scale", mutates_args=())
def _opaque_scale(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@_opaque_scale.register_fake
def _(x):
    return torch.empty_like(x)


def test_unsupported_ops_are_listed_with_call_counts():
    a = torch.randn(4, 4)
    with fd.count() as c:
        _opaque_scale(a)
        _opaque_scale(a)
        torch.mm(a, a)
    # a custom op with no formula: listed with its call count, not counted as zero silently
    assert c.unsupported == {"fd_behaviour::opaque_scale": 2}
    assert c.macs == 4 * 4 * 4


def test_views_cost_nothing_and_move_nothing():
    x = torch.randn(4, 6)
    with fd.count() as c:
        x.view(6, 4).t().unsqueeze(0).transpose(1, 2)
    assert c.flops == 0 and c.bytes_read == 0 and c.bytes_written == 0
    assert c.ops() == {}


def test_bytes_read_and_written():
    x = torch.randn(4, 6)  # float32: 96 bytes
    with fd.count() as c:
        y = x + x          # reads 2 * 96, writes 96
        y.add_(1.0)        # in-place: reads 96, writes 96
        torch.cat([x, x])  # reads 192, writes 192
    assert c.bytes_read == 2 * 96 + 96 + 192
    assert c.bytes_written == 96 + 96 + 192


def test_out_variant_counts_out_as_written_only():
    a, b, out = torch.randn(2, 3), torch.randn(3, 4), torch.empty(2, 4)
    with fd.count() as c:
        torch.mm(a, b, out=out)
    assert c.macs == 2 * 3 * 4
    assert c.bytes_read == (6 + 12) * 4 and c.bytes_written == 8 * 4


def test_integer_arithmetic_moves_bytes_but_costs_no_flops():
    i = torch.arange(10)
    with fd.count() as c:
        i + i
    assert c.flops == 0 and c.bytes_written == 80


def test_nested_counts_both_see_the_work():
    a = torch.randn(3, 3)
    with fd.count() as outer:
        torch.mm(a, a)
        with fd.count() as inner:
            torch.mm(a, a)
    assert inner.macs == 27 and outer.macs == 54


def test_causal_figure_beside_dense():
    q = torch.randn(1, 2, 8, 16)
    with fd.count() as c:
        F.scaled_dot_product_attention(q, q, q, is_causal=True)
    dense = 2 * 1 * 2 * 8 * 8 * 16           # 4096
    kept_pairs = 8 * 9 // 2                  # 36 of 64 (query, key) pairs per head
    assert c.macs == dense
    assert c.causal_macs == 1 * 2 * kept_pairs * 2 * 16  # 2304


def test_fake_tensor_mode():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        model = nn.Linear(64, 32)
        x = torch.randn(8, 64)
        with fd.count(model) as c:
            model(x)
    assert c.macs == 8 * 64 * 32


def test_mha_fast_path_is_counted():
    e, h, b, s = 16, 2, 2, 5
    mha = nn.MultiheadAttention(e, h, batch_first=True).eval()
    x = torch.randn(b, s, e)
    with torch.no_grad(), fd.count(mha) as c:
        mha(x, x, x)
    assert "aten::_native_multi_head_attention" in c.ops()
    # in-projection 3*B*S*E*E, QK^T and AV 2*B*S*S*E, out projection B*S*E*E
    assert c.macs == 3 * b * s * e * e + 2 * b * s * s * e + b * s * e * e
    # the slow path (training mode, grad enabled) gives the same MACs
    mha.train()
    with fd.count(mha) as slow:
        mha(x, x, x)
    assert slow.macs == c.macs


def test_encoder_layer_fast_path_matches_slow_path():
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True, dropout=0.0).eval()
    x = torch.randn(2, 5, 16)
    with torch.no_grad(), fd.count(layer) as fast:
        layer(x)
    with fd.count(layer) as slow:
        layer(x)
    assert "aten::_transformer_encoder_layer_fwd" in fast.ops()
    assert fast.macs == slow.macs


def test_symbolic_shapes_are_priced_by_the_python_reference():
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv, StatelessSymbolicContext

    mode = FakeTensorMode(shape_env=ShapeEnv())
    ctx = StatelessSymbolicContext(dynamic_sizes=[DimDynamic.DYNAMIC, DimDynamic.DYNAMIC])
    x = mode.from_tensor(torch.randn(8, 64), symbolic_context=ctx)
    assert not isinstance(x.shape[0], int)  # a SymInt: the compiled table hands it to Python
    with mode:
        lin = nn.Linear(64, 32)
        with fd.count(lin) as c:
            torch.relu(lin(x))
    assert c.macs == 8 * 64 * 32                        # 16,384 (sizes from the shape hints)
    assert c.flops == 2 * 8 * 64 * 32 + 8 * 32 + 8 * 32  # matmul + bias add + ReLU
    assert c.unsupported == {}


def test_to_dict_is_json_and_matches_the_api():
    import json

    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU())
    x = torch.randn(2, 8, requires_grad=True)
    with fd.count(model) as c:
        model(x).sum().backward()
    data = json.loads(json.dumps(c.to_dict()))
    assert data["totals"]["macs"] == c.macs == 2 * 8 * 4 * 3  # forward + grad_input + grad_weight
    assert {m["name"]: m for m in data["modules"]}["0"]["params"] == 8 * 4 + 4
    assert data["phases"]["backward"]["macs"] == c.phase("backward").macs
    assert {o["name"]: o for o in data["ops"]}["aten::addmm"]["calls"] == 1
    assert sum(p["flops"] for p in data["phases"].values()) == data["totals"]["flops"]


def test_table_shows_the_tree_down_to_depth():
    model = nn.Sequential(nn.Sequential(nn.Linear(4, 4)), nn.Linear(4, 2))
    with fd.count(model) as c:
        model(torch.randn(1, 4))
    shallow, deep = c.table(depth=1), c.table(depth=2)
    assert "Sequential" in shallow and "total" in shallow
    assert shallow.count("Linear") == 1 and deep.count("Linear") == 2


def test_unsupported_counts_only_the_calls_that_failed():
    a = torch.ops.aten
    m = lambda *s, dt=torch.float16: torch.empty(*s, device="meta", dtype=dt)  # noqa: E731
    q = m(1, 8, 2, 16)  # [B, S, H, D]
    with fd.count() as c:
        for _ in range(2):  # dense: priced
            a._flash_attention_forward.default(q, q, q, None, None, 8, 8, 0.0, False, False)
        packed = m(8, 2, 16)  # variable length: two sequences of 3 and 5 packed together
        cu = torch.tensor([0, 3, 8], dtype=torch.int32, device="meta")
        a._flash_attention_forward.default(packed, packed, packed, cu, cu, 5, 5, 0.0, False, False)
    assert c.unsupported == {"aten::_flash_attention_forward": 1}
    assert "variable-length" in c.unsupported_reasons["aten::_flash_attention_forward"]
    assert c.macs == 2 * (2 * 1 * 2 * 8 * 8 * 16)  # the two dense calls: 2 products of B*H*S*S*D
