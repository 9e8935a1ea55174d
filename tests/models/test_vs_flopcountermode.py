"""flopdispatch vs PyTorch's FlopCounterMode on the ops FlopCounterMode counts correctly.

FlopCounterMode reports FLOPs = 2 * MACs for matmul-like ops and nothing else, so on a block made
only of such ops (plus the reductions/elementwise ops of ``.sum().backward()``, which it ignores)
``2 * flopdispatch MACs == FlopCounterMode total FLOPs`` must hold exactly: forward and backward, on
CPU and on meta, across many shapes.

Where FlopCounterMode is known to be wrong the test says so and checks the known relation instead:
  * grouped convolution backward: it charges grad_weight ``groups`` times (it forgets to divide the
    channel product by the group count), so it reports (groups - 1) * forward extra FLOPs;
  * SDPA on CPU: ``_scaled_dot_product_flash_attention_for_cpu`` has no formula there, so it counts 0.
    SDPA is compared on meta only, where it decomposes to bmm.
  * mv / dot have no FlopCounterMode formula (0); the shapes below avoid matmuls that lower to them.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import flopdispatch as fd

DEVICES = ["cpu", "meta"]
GRADS = ["none", "all", "weights"]  # forward only; backward for every input; backward for weights only


def _counts(fn):
    """(FlopCounterMode total FLOPs, flopdispatch count) of one call of fn()."""
    with FlopCounterMode(display=False) as fcm:
        fn()
    with fd.count() as c:
        fn()
    return fcm.get_total_flops(), c


def _run(make, device, grad):
    """make(device, requires_grad_input, requires_grad_weight) -> output; backward when asked."""
    torch.manual_seed(0)

    def fn():
        out = make(device, grad == "all", grad in ("all", "weights"))
        if grad != "none":
            out.sum().backward()

    return _counts(fn)


def t(device, *shape, grad=False):
    return torch.randn(*shape, device=device, requires_grad=grad)


def assert_same(fcm_flops, c):
    assert c.unsupported == {}
    assert 2 * c.macs == fcm_flops, f"2 * flopdispatch MACs = {2 * c.macs}, FlopCounterMode = {fcm_flops}"


# ---- mm / addmm / bmm / baddbmm ------------------------------------------------------------------

MNK = [(1, 1, 1), (3, 5, 7), (16, 32, 8), (64, 1, 64), (7, 128, 3), (33, 17, 65)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("grad", GRADS)
@pytest.mark.parametrize("m,k,n", MNK)
def test_mm(device, grad, m, k, n):
    fcm, c = _run(lambda d, gi, gw: torch.mm(t(d, m, k, grad=gi), t(d, k, n, grad=gw)), device, grad)
    assert_same(fcm, c)
    if grad == "none":
        assert c.macs == m * k * n


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("grad", GRADS)
@pytest.mark.parametrize("m,k,n", MNK)
@pytest.mark.parametrize("bias", ["row", "full", "scalar"])
def test_addmm(device, grad, m, k, n, bias):
    bshape = {"row": (n,), "full": (m, n), "scalar": (1,)}[bias]

    def make(d, gi, gw):
        return torch.addmm(t(d, *bshape, grad=gw), t(d, m, k, grad=gi), t(d, k, n, grad=gw), beta=0.5, alpha=2.0)

    fcm, c = _run(make, device, grad)
    assert_same(fcm, c)


BMNK = [(1, 1, 1, 1), (2, 3, 4, 5), (4, 16, 8, 4), (5, 1, 7, 1), (3, 9, 1, 11)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("grad", GRADS)
@pytest.mark.parametrize("b,m,k,n", BMNK)
def test_bmm(device, grad, b, m, k, n):
    fcm, c = _run(lambda d, gi, gw: torch.bmm(t(d, b, m, k, grad=gi), t(d, b, k, n, grad=gw)), device, grad)
    assert_same(fcm, c)
    if grad == "none":
        assert c.macs == b * m * k * n


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("grad", GRADS)
@pytest.mark.parametrize("b,m,k,n", BMNK)
def test_baddbmm(device, grad, b, m, k, n):
    def make(d, gi, gw):
        return torch.baddbmm(t(d, b, m, n, grad=gw), t(d, b, m, k, grad=gi), t(d, b, k, n, grad=gw), alpha=0.5)

    fcm, c = _run(make, device, grad)
    assert_same(fcm, c)


# ---- F.linear with leading dims ------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("grad", GRADS)
@pytest.mark.parametrize("lead", [(), (3,), (2, 3), (2, 3, 4), (1, 1, 5)])
@pytest.mark.parametrize("k,n", [(7, 5), (1, 9), (16, 1)])
@pytest.mark.parametrize("bias", [False, True])
def test_linear_leading_dims(device, grad, lead, k, n, bias):
    def make(d, gi, gw):
        b = t(d, n, grad=gw) if bias else None
        return F.linear(t(d, *lead, k, grad=gi), t(d, n, k, grad=gw), b)

    fcm, c = _run(make, device, grad)
    assert_same(fcm, c)
    if grad == "none":
        assert c.macs == math.prod(lead) * k * n


# ---- convolutions --------------------------------------------------------------------------------

# (id, rank, N, C_in, C_out, spatial, kernel, stride, padding, dilation, groups, transposed, output_padding)
CONVS = [
    ("1d", 1, 2, 3, 4, (10,), 3, 1, 0, 1, 1, False, 0),
    ("1d-strided-padded", 1, 1, 4, 6, (17,), 5, 2, 2, 1, 1, False, 0),
    ("1d-dilated", 1, 2, 2, 3, (15,), 3, 1, 1, 3, 1, False, 0),
    ("1d-transposed", 1, 2, 4, 3, (7,), 3, 2, 1, 1, 1, True, 1),
    ("2d", 2, 2, 3, 8, (9, 9), 3, 1, 1, 1, 1, False, 0),
    ("2d-strided", 2, 1, 3, 4, (11, 8), (3, 2), (2, 3), 0, 1, 1, False, 0),
    ("2d-dilated-padded", 2, 1, 2, 5, (12, 12), 3, 1, 2, 2, 1, False, 0),
    ("2d-1x1", 2, 3, 8, 4, (5, 5), 1, 1, 0, 1, 1, False, 0),
    ("2d-transposed", 2, 1, 4, 6, (5, 5), 3, 2, 0, 1, 1, True, 0),
    ("2d-transposed-outpad-dil", 2, 2, 3, 2, (4, 6), (2, 3), 2, 1, 2, 1, True, 1),
    ("3d", 3, 1, 2, 3, (5, 6, 4), 3, 1, 1, 1, 1, False, 0),
    ("3d-strided-dilated", 3, 2, 3, 2, (7, 7, 7), 2, 2, 0, 2, 1, False, 0),
    ("3d-transposed", 3, 1, 2, 4, (3, 4, 3), 2, 2, 0, 1, 1, True, 0),
]
GROUPED = [
    ("1d-grouped", 1, 2, 4, 6, (10,), 3, 1, 1, 1, 2, False, 0),
    ("2d-grouped-strided", 2, 2, 6, 9, (9, 9), 3, 2, 1, 1, 3, False, 0),
    ("2d-depthwise", 2, 1, 8, 8, (7, 7), 3, 1, 1, 1, 8, False, 0),
    ("2d-depthwise-multiplier", 2, 1, 4, 8, (6, 6), 3, 1, 0, 2, 4, False, 0),
    ("2d-grouped-transposed", 2, 1, 4, 6, (5, 5), 3, 2, 1, 1, 2, True, 1),
    ("3d-grouped", 3, 1, 4, 4, (4, 5, 4), 3, 1, 1, 1, 2, False, 0),
]
_CONV_FN = {(1, False): F.conv1d, (2, False): F.conv2d, (3, False): F.conv3d,
            (1, True): F.conv_transpose1d, (2, True): F.conv_transpose2d, (3, True): F.conv_transpose3d}


def _tup(v, r):
    return tuple(v) if isinstance(v, tuple) else (v,) * r


def conv_maker(cfg, bias):
    _, r, n, cin, cout, spatial, k, s, p, dil, g, transposed, op = cfg
    k = _tup(k, r)
    wshape = (cin, cout // g, *k) if transposed else (cout, cin // g, *k)

    def make(d, gi, gw):
        x = t(d, n, cin, *spatial, grad=gi)
        w = t(d, *wshape, grad=gw)
        b = t(d, cout, grad=gw) if bias else None
        if transposed:
            return _CONV_FN[(r, True)](x, w, b, stride=s, padding=p, output_padding=op, groups=g, dilation=dil)
        return _CONV_FN[(r, False)](x, w, b, stride=s, padding=p, dilation=dil, groups=g)

    return make


def conv_forward_macs(cfg):
    """Hand count: N * S_out * C_out * (C_in/g) * prod(k) (transposed: N * S_in * C_in * (C_out/g) * prod(k))."""
    _, r, n, cin, cout, spatial, k, s, p, dil, g, transposed, op = cfg
    k, s, p, dil, op = (_tup(v, r) for v in (k, s, p, dil, op))
    if transposed:
        return n * math.prod(spatial) * cin * (cout // g) * math.prod(k)
    out = [(i + 2 * pp - dd * (kk - 1) - 1) // ss + 1 for i, kk, ss, pp, dd in zip(spatial, k, s, p, dil)]
    return n * math.prod(out) * cout * (cin // g) * math.prod(k)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("grad", GRADS)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("cfg", CONVS, ids=[c[0] for c in CONVS])
def test_conv(device, grad, bias, cfg):
    fcm, c = _run(conv_maker(cfg, bias), device, grad)
    assert_same(fcm, c)
    fwd = conv_forward_macs(cfg)
    # forward, plus one forward's MACs each for grad_input and grad_weight
    assert c.macs == fwd * {"none": 1, "weights": 2, "all": 3}[grad]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("cfg", GROUPED, ids=[c[0] for c in GROUPED])
def test_grouped_conv_forward(device, bias, cfg):
    fcm, c = _run(conv_maker(cfg, bias), device, "none")
    assert_same(fcm, c)
    assert c.macs == conv_forward_macs(cfg)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("grad", ["all", "weights"])
@pytest.mark.parametrize("cfg", GROUPED, ids=[c[0] for c in GROUPED])
def test_grouped_conv_backward_flopcountermode_overcounts_grad_weight(device, grad, cfg):
    """PEER BUG: FlopCounterMode charges a grouped conv's grad_weight `groups` times.

    Its conv_backward formula multiplies C_out * C_in (the full channel counts of the transposed
    grad_out and input) instead of C_out * C_in / groups, so it reports (groups - 1) extra forwards.
    flopdispatch charges one forward's MACs each for grad_input and grad_weight.
    """
    groups = cfg[10]
    fcm, c = _run(conv_maker(cfg, False), device, grad)
    fwd = conv_forward_macs(cfg)
    assert c.unsupported == {}
    assert c.macs == fwd * (3 if grad == "all" else 2)
    assert fcm == 2 * c.macs + 2 * (groups - 1) * fwd


# ---- einsum and matmul broadcasting --------------------------------------------------------------

EINSUMS = [
    ("bij,bjk->bik", [(3, 4, 5), (3, 5, 6)], 3 * 4 * 5 * 6),
    ("bhqd,bhkd->bhqk", [(2, 3, 5, 8), (2, 3, 7, 8)], 2 * 3 * 5 * 7 * 8),
    ("bhqk,bhkd->bhqd", [(2, 3, 5, 7), (2, 3, 7, 8)], 2 * 3 * 5 * 7 * 8),
    ("bnd,de->bne", [(2, 6, 4), (4, 3)], 2 * 6 * 4 * 3),
    ("ij,jk->ik", [(4, 5), (5, 6)], 4 * 5 * 6),
    ("bij,bkj->bik", [(2, 3, 4), (2, 5, 4)], 2 * 3 * 4 * 5),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("grad", GRADS)
@pytest.mark.parametrize("eq,shapes,macs", EINSUMS, ids=[e[0] for e in EINSUMS])
def test_einsum(device, grad, eq, shapes, macs):
    def make(d, gi, gw):
        return torch.einsum(eq, t(d, *shapes[0], grad=gi), t(d, *shapes[1], grad=gw))

    fcm, c = _run(make, device, grad)
    assert_same(fcm, c)
    if grad == "none":
        assert c.macs == macs


MATMULS = [
    ("3d@2d", (2, 3, 4), (4, 5), 2 * 3 * 4 * 5),
    ("4d@2d", (2, 3, 4, 5), (5, 6), 2 * 3 * 4 * 5 * 6),
    ("2d@3d", (3, 4), (2, 4, 5), 2 * 3 * 4 * 5),
    ("broadcast-batch", (2, 1, 3, 4), (5, 4, 6), 2 * 5 * 3 * 4 * 6),
    ("batch@batch", (2, 5, 3, 4), (2, 5, 4, 6), 2 * 5 * 3 * 4 * 6),
    ("2d@2d", (7, 8), (8, 9), 7 * 8 * 9),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("grad", GRADS)
@pytest.mark.parametrize("name,a,b,macs", MATMULS, ids=[m[0] for m in MATMULS])
def test_matmul_broadcasting(device, grad, name, a, b, macs):
    fcm, c = _run(lambda d, gi, gw: t(d, *a, grad=gi) @ t(d, *b, grad=gw), device, grad)
    assert_same(fcm, c)
    if grad == "none":
        assert c.macs == macs


# ---- SDPA: meta only (decomposes to bmm there) ---------------------------------------------------

SDPA = [  # (B, H, H_kv, Sq, Sk, D, Dv, causal)
    (1, 1, 1, 4, 4, 8, 8, False),
    (2, 4, 4, 5, 7, 8, 8, False),
    (2, 4, 4, 6, 6, 16, 16, True),
    (1, 8, 2, 5, 9, 8, 8, False),  # GQA: 8 query heads, 2 kv heads
    (2, 6, 3, 7, 7, 4, 4, True),   # GQA + causal
    (1, 2, 2, 3, 5, 8, 4, False),  # Dv != D
]


def sdpa_maker(cfg):
    b, h, hkv, sq, sk, dqk, dv, causal = cfg

    def make(d, gi, gw):
        q = t(d, b, h, sq, dqk, grad=gi)
        k = t(d, b, hkv, sk, dqk, grad=gw)
        v = t(d, b, hkv, sk, dv, grad=gw)
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=hkv != h)

    return make


@pytest.mark.parametrize("grad", GRADS)
@pytest.mark.parametrize("cfg", SDPA, ids=[f"B{c[0]}H{c[1]}kv{c[2]}q{c[3]}k{c[4]}d{c[5]}v{c[6]}{'c' if c[7] else ''}"
                                           for c in SDPA])
def test_sdpa_on_meta(grad, cfg):
    """META ONLY: there SDPA decomposes to bmm, which FlopCounterMode counts correctly."""
    b, h, hkv, sq, sk, dqk, dv, causal = cfg
    fcm, c = _run(sdpa_maker(cfg), "meta", grad)
    assert_same(fcm, c)
    if grad == "none":
        assert c.macs == b * h * sq * sk * (dqk + dv)  # QK^T and attn@V over the query heads (dense)


def test_sdpa_on_cpu_flopcountermode_counts_zero():
    """PEER BUG (REFERENCE.md): FlopCounterMode counts 0 for the CPU flash kernel; flopdispatch does not."""
    fcm, c = _run(sdpa_maker((2, 4, 4, 5, 7, 8, 8, False)), "cpu", "none")
    assert c.macs == 2 * 4 * 5 * 7 * (8 + 8)  # flopdispatch counts the CPU kernel: 4480
    assert fcm == 0  # if this starts failing, FlopCounterMode was fixed: compare 2 * c.macs instead


def test_sdpa_cpu_kernel_and_meta_give_the_same_forward_macs():
    """flopdispatch's CPU-kernel count equals the meta (bmm) count, which FlopCounterMode agrees with."""
    cfg = (2, 4, 2, 5, 7, 8, 8, True)
    _, c_cpu = _run(sdpa_maker(cfg), "cpu", "none")
    fcm_meta, c_meta = _run(sdpa_maker(cfg), "meta", "none")
    assert c_cpu.macs == c_meta.macs == fcm_meta // 2
