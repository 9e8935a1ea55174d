"""REFERENCE.md's worked examples, exact, on CPU and meta; batch scaling; per-module MACs."""
import pytest
import torch

import flopdispatch as fd
from example_models import Example2CNN, Example3Attention, example1_mlp, example4_mlp

DEVICES = ["cpu", "meta"]

# Example 1: 10*20 + 20*15 + 15*1 = 200 + 300 + 15 = 515
EX1_MACS = 10 * 20 + 20 * 15 + 15 * 1
# Example 2: conv1 28*28*3*3*1*16 = 112,896; conv2 28*28*3*3*16*32 = 3,612,672; fc 25,088*10 = 250,880
EX2_CONV1 = 28 * 28 * 3 * 3 * 1 * 16
EX2_CONV2 = 28 * 28 * 3 * 3 * 16 * 32
EX2_FC = 32 * 28 * 28 * 10
# Example 3: four projections 10*256*256 each; QK^T and attn@V 10*10*8*32 each
EX3_MACS = 4 * 10 * 256 * 256 + 2 * 10 * 10 * 8 * 32
# Example 4: 784*512 + 512*512 + 512*10 = 668,672 MACs; params add 512 + 512 + 10 biases
EX4_MACS = 784 * 512 + 512 * 512 + 512 * 10
EX4_PARAMS = EX4_MACS + 512 + 512 + 10


def test_arithmetic_of_expected_numbers():
    assert EX1_MACS == 515
    assert (EX2_CONV1, EX2_CONV2, EX2_FC) == (112_896, 3_612_672, 250_880)
    assert EX2_CONV1 + EX2_CONV2 + EX2_FC == 3_976_448
    assert EX3_MACS == 2_672_640
    assert (EX4_MACS, EX4_PARAMS) == (668_672, 669_706)


@pytest.mark.parametrize("device", DEVICES)
def test_example1(device):
    model = example1_mlp(device)
    c = fd.profile(model, torch.randn(1, 10, device=device))
    assert c.macs == EX1_MACS
    assert c.unsupported == {}
    # FLOPs: 2 * 515 matmul + 20 + 15 ReLU outputs (1 FLOP each) = 1065
    assert c.flops == 2 * 515 + 20 + 15


@pytest.mark.parametrize("device", DEVICES)
def test_example2_and_per_module(device):
    model = Example2CNN(device)
    c = fd.profile(model, torch.randn(1, 1, 28, 28, device=device))
    assert c.macs == EX2_CONV1 + EX2_CONV2 + EX2_FC
    assert [c.module(n).macs for n in ("conv1", "conv2", "fc")] == [EX2_CONV1, EX2_CONV2, EX2_FC]
    assert c.module("").macs == c.macs
    assert c.unsupported == {}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("use_sdpa", [False, True])
def test_example3_attention(device, use_sdpa):
    model = Example3Attention(use_sdpa, device=device)
    c = fd.profile(model, torch.randn(1, 10, 256, device=device))
    assert c.macs == EX3_MACS
    assert c.unsupported == {}


@pytest.mark.parametrize("device", DEVICES)
def test_example4_and_params(device):
    model = example4_mlp(device)
    c = fd.profile(model, torch.randn(1, 28, 28, device=device))
    assert c.macs == EX4_MACS
    assert c.params == EX4_PARAMS
    assert c.module("1").params == 784 * 512 + 512
    # bias adds are FLOPs, not MACs: 512 + 512 + 10; ReLU: 512 + 512
    assert c.flops == 2 * EX4_MACS + (512 + 512 + 10) + (512 + 512)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("build,shape,macs", [
    (example1_mlp, (10,), EX1_MACS),
    (Example2CNN, (1, 28, 28), EX2_CONV1 + EX2_CONV2 + EX2_FC),
    (lambda d: Example3Attention(True, device=d), (10, 256), EX3_MACS),
    (example4_mlp, (28, 28), EX4_MACS),
])
def test_batch_32_scales_linearly(device, build, shape, macs):
    model = build(device)
    one = fd.profile(model, torch.randn(1, *shape, device=device))
    many = fd.profile(model, torch.randn(32, *shape, device=device))
    assert many.macs == 32 * macs
    assert many.flops == 32 * one.flops


def test_sdpa_same_macs_on_cpu_and_meta_with_causal_and_gqa():
    # GQA: 8 query heads, 2 kv heads; causal; B=2, S=16, D=32
    b, hq, hkv, s, d = 2, 8, 2, 16, 32
    results = {}
    for device in DEVICES:
        q = torch.randn(b, hq, s, d, device=device)
        k = torch.randn(b, hkv, s, d, device=device)
        v = torch.randn(b, hkv, s, d, device=device)
        with fd.count() as c:
            torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        results[device] = c.macs
        assert c.unsupported == {}
    # two products over the query heads: 2 * B * Hq * S * S * D
    assert results == {"cpu": 2 * b * hq * s * s * d, "meta": 2 * b * hq * s * s * d}
