"""Attention on every CUDA SDPA kernel, forward and backward (skipped without a GPU)."""
import pytest
import torch
import torch.nn.functional as F

import flopdispatch as fd

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

try:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    BACKENDS = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "math": SDPBackend.MATH,
    }
except ImportError:  # pragma: no cover
    BACKENDS = {}

KERNEL_OPS = {
    "flash": "aten::_scaled_dot_product_flash_attention",
    "efficient": "aten::_scaled_dot_product_efficient_attention",
    "cudnn": "aten::_scaled_dot_product_cudnn_attention",
}


@cuda
@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("b,h,sq,sk,d", [(2, 4, 128, 128, 64), (1, 8, 64, 256, 128)])
def test_sdpa_kernels_forward_and_backward(backend, causal, b, h, sq, sk, d):
    if causal and sq != sk and backend != "math":
        pytest.skip("fused kernels align causal masks differently when Sq != Sk")
    dev, dt = "cuda", torch.bfloat16
    q = torch.randn(b, h, sq, d, device=dev, dtype=dt, requires_grad=True)
    k = torch.randn(b, h, sk, d, device=dev, dtype=dt, requires_grad=True)
    v = torch.randn(b, h, sk, d, device=dev, dtype=dt, requires_grad=True)
    try:
        with sdpa_kernel(BACKENDS[backend]):
            with fd.count() as c:
                out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                out.sum().backward()
    except RuntimeError as e:  # the kernel is not available on this GPU / build
        pytest.skip(f"{backend}: {e}")
    fwd = 2 * b * h * sq * sk * d  # QK^T and PV
    assert c.phase("forward").macs == fwd
    if backend == "math":
        assert c.phase("backward").macs == 2 * fwd  # four products, scores saved
    else:
        assert KERNEL_OPS[backend] in c.ops()
        assert c.phase("backward").macs == fwd * 5 // 2  # five products, scores recomputed
    assert c.unsupported == {}


@cuda
def test_model_macs_same_on_cuda_cpu_and_meta():
    from flopdispatch._demo import GPT

    macs = {}
    for dev in ("cpu", "cuda", "meta"):
        torch.manual_seed(0)
        model = GPT(layers=2, heads=4, d=128, vocab=1000, context=64, device=dev)
        idx = torch.randint(0, 1000, (2, 64), device=dev)
        with torch.no_grad(), fd.count(model) as c:
            model(idx)
        macs[dev] = c.macs
        assert c.unsupported == {}
    assert macs["cpu"] == macs["cuda"] == macs["meta"]


@cuda
def test_flopcountermode_agrees_on_cuda_kernels():
    from torch.utils.flop_counter import FlopCounterMode

    b, h, s, d = 2, 4, 128, 64
    for backend in ("flash", "efficient", "cudnn"):
        q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
        try:
            with sdpa_kernel(BACKENDS[backend]):
                with FlopCounterMode(display=False) as fcm:
                    F.scaled_dot_product_attention(q, k, v).sum().backward()
                with fd.count() as c:
                    F.scaled_dot_product_attention(q, k, v).sum().backward()
        except RuntimeError as e:
            continue
        assert 2 * c.macs == fcm.get_total_flops(), backend
