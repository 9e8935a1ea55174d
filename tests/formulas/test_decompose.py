"""Composite ops with no formula are counted by their parts, so that torch.inference_mode() counts
what no_grad counts.

Under inference_mode the autograd keys are skipped and CompositeImplicitAutograd ops (conv2d,
batch_norm, flatten, to, scaled_dot_product_attention...) reach the dispatch mode whole; the mode
runs their composite kernel with itself pushed again, so the parts are counted where they run.
"""
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils._pytree import tree_flatten, tree_map_only

import flopdispatch as fd
from flopdispatch import _core
from example_models import ResNet18

# Ops that legitimately count differently under inference_mode, each with its reason.
INFERENCE_MODE_EXCLUSIONS = {
    # rms_norm calls _fused_rms_norm in both modes. That op has a row (its fused CUDA/MPS kernel,
    # 3 FLOPs per element + 1 for the weight), and on CPU it is composite: outside inference_mode
    # autograd runs its parts (pow, mean, add, rsqrt, mul, mul: 27 FLOPs on 6 elements instead of
    # 24); inside, the mode sees the op and prices it by its row, as on CUDA.
    "nn.functional.rms_norm",
}
# Composite kernels that take another path when a dispatch mode is active (at::isTensorSubclassLike:
# e.g. linalg_svdvals computes U and V): once the parts are dispatched to the counter they take it,
# so their output under the counter is that of no_grad under the counter (the path they take under
# any dispatch mode), not always bit for bit that of inference_mode without it.
MODE_SENSITIVE_KERNELS = {"norm.nuc", "linalg.eigvalsh", "linalg.svdvals", "linalg.matrix_norm", "linalg.norm",
                          "linalg.cond", "linalg.matrix_rank", "linalg.pinv"}
# Outputs that are not compared: nondeterministic from run to run (linalg.cond: LAPACK results of
# ill-conditioned samples), or uninitialised memory (empty*); unsafe_split/unsafe_chunk return
# views that autograd is told not to track (not views in eager no_grad; views in eager
# inference_mode; under any dispatch mode, not views): same storage and values.
OUTPUT_NOT_COMPARED = {"linalg.cond", "unsafe_split", "unsafe_chunk"}


def _clone(tree):
    return tree_map_only(torch.Tensor, lambda t: t.clone(), tree)


def _run(op, sample, grad_context, counted):
    """(count or None, output or exception) of one OpInfo sample under a grad context."""
    inp, args, kwargs = _clone((sample.input, sample.args, sample.kwargs))
    torch.manual_seed(0)
    try:
        with grad_context():
            if counted:
                with fd.count() as c:
                    out = op(inp, *args, **kwargs)
            else:
                c, out = None, op(inp, *args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - compared between runs
        return None, exc
    return c, out


def _bits(t):
    return t.detach().resolve_conj().resolve_neg().contiguous().reshape(-1).view(torch.uint8)


def _same_outputs(a, b):
    la, sa = tree_flatten(a)
    lb, sb = tree_flatten(b)
    if sa != sb:
        return False
    for x, y in zip(la, lb):
        if isinstance(x, torch.Tensor):
            if not isinstance(y, torch.Tensor) or x.dtype != y.dtype or x.shape != y.shape:
                return False
            if x.layout == torch.strided and (x.stride() != y.stride() or x._is_view() != y._is_view()
                                              or x.is_conj() != y.is_conj() or x.is_neg() != y.is_neg()):
                return False
            if x.layout == torch.strided and not torch.equal(_bits(x), _bits(y)):  # NaNs included
                return False
        elif x != y and not (x != x and y != y):  # NaN scalars compare unequal
            return False
    return True


@pytest.mark.slow  # an OpInfo sweep, twice
def test_opinfo_inference_mode_counts_what_no_grad_counts():
    """Every OpInfo op (float32 CPU, first two samples): inside ``count``, inference_mode gives the
    same FLOPs, MACs and unsupported ops as no_grad, the same output as inference_mode without the
    counter, and the same exception type when the op raises."""
    from torch.testing._internal.common_methods_invocations import op_db

    mismatches, wrong_outputs, wrong_errors, compared = [], [], [], 0
    unsupported_inference = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for op in op_db:
            if op.name in INFERENCE_MODE_EXCLUSIONS or torch.float32 not in op.supported_dtypes("cpu"):
                continue
            samples = []
            for sample in op.sample_inputs("cpu", torch.float32, requires_grad=False):
                samples.append(sample)
                if len(samples) == 2:
                    break
            for sample in samples:
                no_grad, no_grad_out = _run(op, sample, torch.no_grad, True)
                inference, out = _run(op, sample, torch.inference_mode, True)
                _, plain = _run(op, sample, torch.inference_mode, False)
                label = f"{op.name}.{op.variant_test_name}" if op.variant_test_name else op.name
                if isinstance(plain, Exception) or isinstance(out, Exception):
                    if type(plain) is not type(out):
                        wrong_errors.append((label, repr(plain)[:80], repr(out)[:80]))
                    continue
                if no_grad is None:
                    continue  # raises only outside inference_mode: nothing to compare
                compared += 1
                a = (no_grad.flops, no_grad.macs, sorted(no_grad.unsupported))
                b = (inference.flops, inference.macs, sorted(inference.unsupported))
                unsupported_inference.update(inference.unsupported)
                if a != b:
                    mismatches.append((label, a, b))
                if "empty" in op.name or label in OUTPUT_NOT_COMPARED or _same_outputs(out, plain):
                    continue
                if not (label in MODE_SENSITIVE_KERNELS and _same_outputs(out, no_grad_out)):
                    wrong_outputs.append(label)
    assert compared > 1000
    assert mismatches == []
    assert wrong_outputs == []
    assert wrong_errors == []
    # The composite ops themselves never show up unpriced: their parts are counted.
    for name in ("aten::conv2d", "aten::batch_norm", "aten::flatten", "aten::to", "aten::adaptive_avg_pool2d",
                 "aten::scaled_dot_product_attention", "aten::fft_fft", "aten::matmul", "aten::layer_norm"):
        assert name not in unsupported_inference


# ---- ResNet-18 (torchvision-shaped) ------------------------------------------------------------------

# Conv MACs = H_out * W_out * C_out * C_in * kH * kW at 1 x 3 x 224 x 224:
CONV1 = 112 * 112 * 64 * 3 * 7 * 7                  # 118,013,952
LAYER1 = 4 * (56 * 56 * 64 * 64 * 9)                # 4 x 115,605,504 = 462,422,016
LAYER_DOWN = (1 * (28 * 28 * 128 * 64 * 9)          # first 3x3 conv, stride 2: 57,802,752
              + 3 * (28 * 28 * 128 * 128 * 9)       # three 3x3 convs: 3 x 115,605,504
              + 28 * 28 * 128 * 64)                 # 1x1 shortcut: 6,422,528 -> 411,041,792
FC = 512 * 1000                                     # 512,000
# layer2, layer3 and layer4 each halve the side and double the channels: the same MACs.
RESNET18_MACS = CONV1 + LAYER1 + 3 * LAYER_DOWN + FC
assert RESNET18_MACS == 1_814_073_344
# PyTorch's own flop-counter test expects 3,628,146,688 FLOPs for resnet18 under inference_mode.
FLOPCOUNTERMODE_RESNET18 = 3_628_146_688

# Ops with a row in _ops.py that are composite on CPU: inference_mode sees them whole and prices
# them by their row; outside it autograd runs their parts (linear -> addmm, max_pool2d ->
# max_pool2d_with_indices: the same FLOPs and MACs; max_pool2d writes no indices).
SAME_WORK = {"aten::linear": "matmul", "aten::addmm": "matmul", "aten::mm": "matmul",
             "aten::max_pool2d": "max_pool2d", "aten::max_pool2d_with_indices": "max_pool2d"}


def _ops_work(c):
    """{op (linear and the matmuls it becomes merged): (calls, flops, macs)}."""
    merged = {}
    for name, v in c.ops().items():
        key = SAME_WORK.get(name, name)
        calls, flops, macs = merged.get(key, (0, 0, 0))
        merged[key] = (calls + v["calls"], flops + v["flops"], macs + v["macs"])
    return merged


def _count_in(grad_context, model, *args, **kwargs):
    with grad_context():
        with fd.count(model) as c:
            out = model(*args, **kwargs)
    return c, out


def test_resnet18_inference_mode():
    torch.manual_seed(0)
    model = ResNet18().eval()
    x = torch.randn(1, 3, 224, 224)
    c, out = _count_in(torch.inference_mode, model, x)
    assert c.macs == RESNET18_MACS
    assert 2 * c.macs == FLOPCOUNTERMODE_RESNET18
    assert c.unsupported == {}
    assert c.params == 11_689_512
    ref, ref_out = _count_in(torch.no_grad, model, x)
    assert torch.equal(out, ref_out)
    assert (c.flops, c.macs) == (ref.flops, ref.macs)
    assert _ops_work(c) == _ops_work(ref)  # op for op
    for name in c.module_names:  # module for module
        m, r = c.module(name), ref.module(name)
        assert (m.flops, m.macs, m.calls) == (r.flops, r.macs, r.calls), name
    assert c.module("layer1.0.conv1").macs == 56 * 56 * 64 * 64 * 9
    assert c.module("layer2.0.downsample").macs == 28 * 28 * 128 * 64
    assert "aten::convolution" in c.ops() and "aten::conv2d" not in c.ops()


def test_llama_inference_mode_equals_no_grad():
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=100,
                                      max_position_embeddings=64)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    ids = torch.randint(0, 100, (2, 16))
    c, out = _count_in(torch.inference_mode, model, input_ids=ids)
    ref, ref_out = _count_in(torch.no_grad, model, input_ids=ids)
    assert torch.equal(out.logits, ref_out.logits)
    assert c.unsupported == {} and ref.unsupported == {}
    assert (c.flops, c.macs) == (ref.flops, ref.macs)
    # The attention is counted: q and o projections 2 x 16 tokens x 64 x 64 = 131,072 each; k and v
    # (2 kv heads of 16) 2 x 16 x 64 x 32 = 65,536 each; QK^T and PV B 2 x H 4 x S 16 x S 16 x (16 + 16)
    # = 65,536.
    assert c.module("model.layers.0.self_attn").macs == 2 * 131_072 + 2 * 65_536 + 65_536
    assert _ops_work(c) == _ops_work(ref)
    for name in c.module_names:
        m, r = c.module(name), ref.module(name)
        assert (m.flops, m.macs, m.calls) == (r.flops, r.macs, r.calls), name


# ---- the mechanism -------------------------------------------------------------------------------------

def test_decided_once_per_op_and_formulas_keep_the_hot_path():
    assert _core._resolve(torch.ops.aten.conv2d.default)[-1] is True    # composite, no row
    assert _core._resolve(torch.ops.aten.mm.default)[-1] is False       # a formula
    assert _core._resolve(torch.ops.aten.linear.default)[-1] is False   # composite with a row
    assert _core._resolve(torch.ops.aten.view.default)[-1] is False     # a view, zero row
    x, w = torch.randn(3, 4), torch.randn(5, 4)
    with torch.inference_mode(), fd.count() as c:
        F.linear(x, w)
    assert c.ops()["aten::linear"]["macs"] == 3 * 4 * 5  # priced by its row, not decomposed


def test_views_stay_views_and_outputs_are_the_ops_own():
    x = torch.randn(2, 3, 4)
    with torch.inference_mode():
        with fd.count() as c:
            flat = x.flatten(1)
            same = x.to(torch.float32)
            wider = x.to(torch.float64)
            pooled = F.adaptive_avg_pool2d(x, 1)
        plain_pooled = F.adaptive_avg_pool2d(x, 1)
    assert flat._is_view() and flat._base is x and flat.data_ptr() == x.data_ptr()
    assert same is x  # aten::to without a change returns its input
    assert wider.dtype == torch.float64 and torch.equal(wider, x.double())
    assert torch.equal(pooled, plain_pooled)
    assert c.unsupported == {}
    ops = c.ops()
    # flatten -> view (no bytes); to(float64) -> _to_copy: 24 floats read, 24 doubles written
    assert ops["aten::_to_copy"]["bytes_read"] == 24 * 4 and ops["aten::_to_copy"]["bytes_written"] == 24 * 8
    # adaptive_avg_pool2d of (C 2, H 3, W 4) to 1 x 1 is a mean over 3 x 4 = 12 elements of each of 2
    # channels: 24 adds + 2 divides
    assert ops["aten::mean"]["flops"] == 24 + 2
    assert not any(name in ops for name in ("aten::flatten", "aten::to", "aten::adaptive_avg_pool2d"))


def test_parts_keep_module_and_phase():
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.Flatten())
    x = torch.randn(1, 2, 5, 5)
    with torch.inference_mode(), fd.count(model) as c:
        y = model(x)
        F.conv2d(y.view(1, 4, 3, 3), torch.randn(1, 4, 3, 3))  # outside the model: phase "other"
    # conv: 3 * 3 outputs x 4 channels x 2 inputs x 3 x 3 = 648 MACs in module "0"
    assert c.module("0").macs == 3 * 3 * 4 * 2 * 3 * 3
    assert c.phase("forward").macs == 648
    # the outside conv: 1 output x 1 channel x 4 x 3 x 3 = 36 MACs
    assert c.phase("other").macs == 36
    assert c.unsupported == {}


def test_the_users_exception_is_raised_unchanged():
    x, w = torch.randn(1, 3, 5, 5), torch.randn(4, 2, 3, 3)  # channel mismatch
    with torch.inference_mode():
        with pytest.raises(RuntimeError) as plain:
            F.conv2d(x, w)
        with fd.count() as c:
            with pytest.raises(RuntimeError) as counted:
                F.conv2d(x, w)
    assert str(counted.value) == str(plain.value)
    assert c.unsupported == {}


def test_a_failing_decomposition_runs_the_op_and_reports_it():
    lib = torch.library.Library("fd_decompose_test", "DEF")  # noqa: TOR901
    lib.define("fragile(Tensor x) -> Tensor")

    def fragile(x):
        # A composite kernel that fails when a dispatch mode is active (as under the counter's
        # decomposition) and works when run whole.
        if torch._C._get_dispatch_mode(torch._C._TorchDispatchModeKey.FAKE) is None and \
                torch.utils._python_dispatch._get_current_dispatch_mode() is not None:
            raise RuntimeError("not under a mode")
        return x * 2

    lib.impl("fragile", fragile, "CompositeImplicitAutograd")
    op = torch.ops.fd_decompose_test.fragile.default
    x = torch.randn(3)
    with torch.inference_mode():
        with fd.count() as c:
            y = op(x)
    assert torch.equal(y, x * 2)
    assert c.unsupported == {"fd_decompose_test::fragile": 1}
    assert "decomposition failed" in c.unsupported_reasons["fd_decompose_test::fragile"]


def test_parts_run_as_the_dispatcher_runs_them():
    """Under autocast the parts of a composite op are cast as without the counter (einsum's bmm in
    bfloat16), ops with their own autocast kernel are not cast twice, and chunk (a view op with its
    own view-tracking kernel) and a complex FFT (its parts make a conjugate view that must be
    materialised) give the op's own output."""
    torch.manual_seed(0)
    q, x, w = torch.randn(1, 2, 5, 8), torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3)
    z = torch.randn(5, 6, 7)

    def work():
        return (F.scaled_dot_product_attention(q, q, q), F.conv2d(x, w), torch.einsum("bhsd,bhtd->bhst", q, q),
                F.layer_norm(q, (8,)), torch.fft.hfftn(z, norm="ortho"), x.chunk(2, dim=2)[1])

    with torch.autocast("cpu", dtype=torch.bfloat16), torch.inference_mode():
        plain = work()
        with fd.count() as c:
            counted = work()
    for p, o in zip(plain, counted):
        assert p.dtype == o.dtype and p.stride() == o.stride() and torch.equal(p, o)
    assert counted[2].dtype == torch.bfloat16
    assert counted[5]._base is x
    assert set(c.unsupported) <= {"aten::_fft_c2c", "aten::_fft_c2r"}  # the FFT kernels' own rows: not this test's subject


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_inference_mode_on_meta_and_with_python_formulas(device):
    """The parts are priced by the compiled table and by the Python reference alike, on CPU and on
    the meta device (where conv2d, batch_norm and sdpa are composite too)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 4)).to(device).eval()
    x = torch.randn(2, 3, 6, 6, device=device)
    counts = {}
    for ctx in (torch.no_grad, torch.inference_mode):
        for python in (False, True):
            with ctx(), fd.count(model, python_formulas=python) as c:
                model(x)
            assert c.unsupported == {}
            counts[ctx.__name__, python] = (c.flops, c.macs, c.module("0").macs)
    # conv: 2 x 6 x 6 outputs x 8 channels x 3 inputs x 3 x 3 = 15,552 MACs; linear 2 x 8 x 4 = 64
    assert counts["inference_mode", False][1:] == (15_552 + 64, 15_552)
    assert len(set(counts.values())) == 1
