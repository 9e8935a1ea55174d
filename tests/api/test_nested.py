"""Nested tensors are priced by the work on their valid values (tokens) only.

The nested fast path of nn.TransformerEncoder (eval, no_grad, a src_key_padding_mask) packs the
valid tokens into a nested tensor; each layer is priced as its slow path on those tokens. Jagged
nested tensors (layout=torch.jagged) count the ops on their values, once.
"""
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import flopdispatch as fd

E, F_DIM, HEADS, LAYERS = 16, 32, 2, 2
LENGTHS = [5, 3]  # valid tokens of two sequences padded to 8


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nested tensors' prototype warnings
        yield


def _encoder(activation="relu"):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(E, HEADS, F_DIM, dropout=0.0, batch_first=True, activation=activation)
    return nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=True).eval()


def _padded_batch():
    x = torch.randn(2, 8, E)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    for i, n in enumerate(LENGTHS):
        mask[i, n:] = True  # True: padding
    return x, mask


def _layer_macs(tokens, pairs):
    # q, k, v, out projections 4 x T x E x E; QK^T and PV 2 x (sum of L_i^2) x E; FFN 2 x T x E x F
    return 4 * tokens * E * E + 2 * pairs * E + 2 * tokens * E * F_DIM


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("python_formulas", [False, True])
def test_encoder_fast_path_counts_the_valid_tokens(activation, python_formulas):
    enc = _encoder(activation)
    x, mask = _padded_batch()
    with torch.no_grad():
        with fd.count(enc, python_formulas=python_formulas) as c:
            y = enc(x, src_key_padding_mask=mask)
        plain = enc(x, src_key_padding_mask=mask)
    assert torch.equal(y, plain)
    assert "aten::_transformer_encoder_layer_fwd" in c.ops()  # the fast path ran, on a nested tensor
    assert c.unsupported == {}
    # 8 valid tokens, not 16; (query, key) pairs 5^2 + 3^2 = 34, not 2 x 8^2 = 128:
    # per layer 4 x 8 x 256 = 8,192 + 2 x 34 x 16 = 1,088 + 2 x 8 x 16 x 32 = 8,192 -> 17,472
    assert _layer_macs(8, 34) == 17_472
    assert c.macs == LAYERS * 17_472
    assert c.module("layers.0").macs == 17_472

    # The slow path (train mode, dropout 0) run on each sequence's valid tokens alone costs the same.
    enc.train()
    with torch.no_grad():
        slow = []
        for i, n in enumerate(LENGTHS):
            with fd.count(enc) as s:
                enc(x[i:i + 1, :n])
            slow.append(s)
    assert c.macs == sum(s.macs for s in slow)
    assert c.ops()["aten::_transformer_encoder_layer_fwd"]["flops"] == sum(s.flops for s in slow)


def test_encoder_fast_path_without_padding_is_dense():
    enc = _encoder()
    x, _ = _padded_batch()
    with torch.no_grad(), fd.count(enc) as c:
        enc(x)  # no mask: the fused kernel on the dense [2, 8, 16] batch
    assert c.macs == LAYERS * _layer_macs(16, 2 * 8 * 8)  # 16 tokens, 128 pairs
    assert c.unsupported == {}


def test_nested_to_and_from_padded_move_only_bytes():
    x, mask = _padded_batch()
    with torch.no_grad(), fd.count() as c:
        nt = torch._nested_tensor_from_mask(x, mask.logical_not())
        back = nt.to_padded_tensor(0.0, (2, 8, E))
    assert c.unsupported == {}
    assert c.flops == 0  # logical_not of a bool mask costs no FLOPs; the copies move bytes only
    ops = c.ops()
    # 8 valid tokens x 16 floats x 4 bytes written into the nested tensor, read back out
    assert ops["aten::_nested_tensor_from_mask"]["bytes_written"] == 8 * E * 4
    assert ops["aten::to_padded_tensor"]["bytes_read"] == 8 * E * 4
    assert ops["aten::to_padded_tensor"]["bytes_written"] == 2 * 8 * E * 4
    assert torch.equal(back[0, :5], x[0, :5])


def _jagged():
    torch.manual_seed(0)
    return torch.nested.nested_tensor([torch.randn(n, E) for n in LENGTHS], layout=torch.jagged)


@pytest.mark.parametrize("grad_context", [torch.no_grad, torch.inference_mode])
def test_jagged_linear_matmul_elementwise_count_the_values_once(grad_context):
    nt, w = _jagged(), torch.randn(F_DIM, E)
    with grad_context():
        with fd.count() as c:
            out = (F.linear(nt, w), torch.matmul(nt, w.t()), nt + nt, nt.sin(), F.layer_norm(nt, (E,)))
        plain = (F.linear(nt, w), torch.matmul(nt, w.t()), nt + nt, nt.sin(), F.layer_norm(nt, (E,)))
    for a, b in zip(out, plain):
        assert torch.equal(a.values(), b.values())
    assert c.unsupported == {}
    # linear and matmul: 8 valid tokens x 16 x 32 = 4,096 MACs each (not 2 x 5 x 16 x 32 padded)
    assert c.macs == 2 * 8 * E * F_DIM
    ops = c.ops()
    assert ops["aten::add"]["flops"] == 8 * E              # 128: one add per valid value
    assert ops["aten::sin"]["flops"] == 8 * E
    assert ops["aten::native_layer_norm"]["flops"] == 8 * E * 5  # 5 per element, no affine


def test_jagged_attention_counts_each_sequence():
    nt = _jagged()
    q = nt.unflatten(-1, (HEADS, E // HEADS)).transpose(1, 2)  # [B, H, j, D]
    with torch.no_grad():
        with fd.count() as c:
            out = F.scaled_dot_product_attention(q, q, q)
        plain = F.scaled_dot_product_attention(q, q, q)
    assert torch.equal(out.values(), plain.values())
    assert c.unsupported == {}
    # QK^T and PV per sequence: H 2 x L_i^2 x D 8, twice: 2 x 2 x (25 + 9) x 8 = 1,088
    assert c.macs == 2 * HEADS * (5 * 5 + 3 * 3) * (E // HEADS)
    # softmax over the 2 x 34 scores of the valid pairs only, 5 FLOPs each
    assert c.ops()["aten::_safe_softmax"]["flops"] == 5 * HEADS * 34
