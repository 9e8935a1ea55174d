"""Worked numbers for the ops issue 10 prices with the existing families, and two real training steps.

Each expected number shows its arithmetic. The C++ families are compared with the Python reference
on every declared op in ``test_oracles.py``; here the numbers are checked against hand counts, and
the kernels that only run on CUDA/ROCm (cuDNN RNN, cuDNN batch norm backward, fused conv epilogues)
against an independent CPU path that computes the same thing.
"""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import flopdispatch as fd
from flopdispatch._core import compiled_cost, python_cost

aten = torch.ops.aten


def meta(*shape, dtype=torch.float32):
    return torch.empty(shape, device="meta", dtype=dtype)


def both(op, args, kwargs=None, out=None):
    """(flops, macs) from the compiled family, asserted equal to the Python reference."""
    kwargs = kwargs or {}
    if out is None:
        out = op(*args, **kwargs)
    cpp = tuple(compiled_cost(op, args, kwargs, out))
    assert cpp == tuple(python_cost(op, args, kwargs, out)[:3])
    return cpp[0], cpp[1]


def ops(c):
    return {k: v["flops"] for k, v in c.ops().items()}


# ---- special functions: one per output element, whatever the series ---------------------------------

def test_special_functions_one_per_element():
    x = torch.rand(3, 4) + 0.5
    with fd.count() as c:
        torch.special.bessel_j0(x)
        torch.special.chebyshev_polynomial_t(x, 5)
        torch.special.zeta(x + 1, x)
        torch.special.erfcx(x)
        torch.special.entr(x)
        torch.mvlgamma(x + 2, 3)
    got = ops(c)
    assert got["aten::special_bessel_j0"] == 12  # 3 * 4 elements, 1 each
    assert got["aten::special_chebyshev_polynomial_t"] == 12  # degree 5, still 1 each
    assert got["aten::special_zeta"] == 12
    assert got["aten::special_erfcx"] == 12
    assert got["aten::special_entr"] == 3 * 12  # -x log x: log, multiply, negate = 36
    assert got["aten::mvlgamma"] == 3 * 3 * 12  # p = 3 terms of (shift, lgamma, add) per element = 108
    assert c.unsupported == {}


# ---- activation kernels and their backward ---------------------------------------------------------

def test_activation_backward_kernels():
    x = torch.randn(2, 6, requires_grad=True)  # 12 elements
    with fd.count() as c:
        F.glu(x).sum().backward()
        F.logsigmoid(x).sum().backward()
        F.hardsigmoid(x).sum().backward()
        F.softshrink(x).sum().backward()
        F.hardshrink(x).sum().backward()
    got = ops(c)
    assert got["aten::glu"] == 5 * 6  # out [2, 3]: sigmoid (4) + multiply (1) = 30
    assert got["aten::glu_backward"] == 9 * 6  # per (a, b) pair: sigmoid 4, g*s 1, g*a*s*(1-s) 4 = 54
    assert got["aten::log_sigmoid_forward"] == 6 * 12  # min, abs, negate, exp, log1p, subtract = 72
    assert got["aten::log_sigmoid_backward"] == 6 * 12  # = 72
    assert got["aten::hardsigmoid_backward"] == 3 * 12  # two compares and g / 6 = 36
    assert got["aten::softshrink"] == 3 * 12 and got["aten::softshrink_backward"] == 2 * 12  # 36, 24
    assert got["aten::hardshrink"] == 2 * 12 and got["aten::hardshrink_backward"] == 2 * 12  # 24, 24
    assert c.unsupported == {}


# ---- writes that add: index_put(accumulate), scatter(reduce), unfold and pad backward -------------------

def test_index_backward_accumulates():
    w = torch.randn(10, 4, requires_grad=True)
    idx = torch.tensor([1, 3, 3, 7, 0, 1])  # repeated rows: the backward must add
    with fd.count() as c:
        w[idx].sum().backward()
    assert ops(c)["aten::index_put"] == 6 * 4  # index_put(zeros, [idx], grad [6, 4], accumulate=True): 24 adds
    with fd.count() as c2:
        torch.zeros(10, 4).index_put_((torch.tensor([0, 2]),), torch.ones(2, 4))  # accumulate=False: a copy
        torch.zeros(10).put_(torch.tensor([1, 2, 3]), torch.ones(3), accumulate=True)
    assert ops(c2)["aten::index_put_"] == 0
    assert ops(c2)["aten::put_"] == 3  # 3 accumulated values


def test_scatter_reduce_overloads():
    x, i, src = torch.zeros(3, 4), torch.tensor([[0, 1, 2, 0]]), torch.ones(1, 4)
    with fd.count() as c:
        torch.scatter(x, 0, i, src, reduce="add")  # scatter.reduce: 1 per source element
        x.scatter_(0, i, src, reduce="multiply")  # in place: scatter_.reduce finds scatter.reduce
        x.scatter_(0, i, 2.0, reduce="add")  # scatter_.value_reduce: 1 per index element
        torch.scatter(x, 0, i, src)  # plain scatter: a copy
    got = ops(c)
    assert got["aten::scatter"] == 4 + 0  # 4 source elements, then the plain copy
    assert got["aten::scatter_"] == 4 + 4  # 4 multiplies + 4 adds = 8


def test_unfold_and_pad_backward_add():
    x = torch.randn(8, requires_grad=True)
    with fd.count() as c:
        x.unfold(0, 3, 1).sum().backward()
    assert ops(c)["aten::unfold_backward"] == 6 * 3  # 6 windows of 3 added back = 18
    y = torch.randn(1, 1, 5, requires_grad=True)
    with fd.count() as c:
        F.pad(y, (2, 2), mode="reflect").sum().backward()
        F.pad(y, (2, 2), mode="replicate").sum().backward()
    assert ops(c)["aten::reflection_pad1d_backward"] == 5 + 2 + 2  # 1 per grad_output element = 9
    assert ops(c)["aten::replication_pad1d_backward"] == 9


def test_trace_counts_the_diagonal():
    flops, _ = both(aten.trace.default, (meta(5, 7),), out=meta())
    assert flops == 5  # min(5, 7) diagonal elements summed


# ---- losses -----------------------------------------------------------------------------------------

def test_ctc_loss():
    t, n, c_, s = 6, 2, 5, 3
    log_probs = torch.randn(t, n, c_).log_softmax(-1).requires_grad_()
    targets = torch.randint(1, c_, (n, s))
    with fd.count() as c:
        F.ctc_loss(log_probs, targets, [t] * n, [s] * n).backward()
    got = ops(c)
    alpha = n * t * (2 * s + 1)  # log_alpha [N, T, 2S+1] = 2 * 6 * 7 = 84
    assert got["aten::_ctc_loss"] == 13 * alpha  # = 1092
    assert got["aten::_ctc_loss_backward"] == 21 * alpha + 6 * t * n * c_  # 1764 + 6 * 60 = 2124
    assert c.unsupported == {}


# ---- cuDNN / MIOpen recurrent kernels: the flat weight list -------------------------------------------

def lstm_flat_weights(layers, dirs, i, h, gates=4, bias=True):
    weights = []
    for layer in range(layers):
        in_l = i if layer == 0 else h * dirs
        for _ in range(dirs):
            weights += [meta(gates * h, in_l), meta(gates * h, h)] + ([meta(gates * h), meta(gates * h)] if bias else [])
    return weights


def test_cudnn_rnn_hand_count():
    t, b, i, h = 5, 3, 8, 16
    weights = lstm_flat_weights(2, 2, i, h)
    x, hx = meta(t, b, i), meta(4, b, h)
    args = (x, weights, 4, None, hx, hx, 2, h, 0, 2, False, 0.0, True, True, [], None)
    out = (meta(t, b, 2 * h), hx, hx, meta(0), meta(0))
    flops, macs = both(aten._cudnn_rnn.default, args, out=out)
    # weights: layer 0 per direction 64*8 + 64*16 = 1536; layer 1 per direction 64*32 + 64*16 = 3072
    assert macs == (t * b) * (2 * 1536 + 2 * 3072)  # 15 rows * 9216 = 138240
    assert flops == 2 * 138240 + (t * b) * h * 4 * 26  # + LSTM gate math, 4 layer-directions: 276480 + 24960
    bwd_args = (x, weights, 4, meta(0), hx, hx, out[0], out[0], hx, hx, 2, h, 0, 2, False, 0.0, True, True, [], None,
                meta(0, dtype=torch.uint8), [True, True, True, True])
    bflops, bmacs = both(aten._cudnn_rnn_backward.default, bwd_args,
                         out=(torch.empty_like(x), hx, hx, [torch.empty_like(w) for w in weights]))
    assert bmacs == 2 * 138240  # data and weight gradients
    assert bflops == 2 * bmacs + 15 * 16 * 4 * 52  # gate math twice


@pytest.mark.parametrize("bidirectional", [False, True])
def test_cudnn_rnn_matches_the_cpu_lstm_kernel(bidirectional):
    """The flat-list count equals the CPU path's per-layer mkldnn_rnn_layer count for the same LSTM."""
    t, b, i, h, layers = 7, 2, 6, 10, 2
    lstm = nn.LSTM(i, h, layers, bidirectional=bidirectional)
    x = torch.randn(t, b, i)
    with torch.no_grad(), fd.count() as c:
        lstm(x)
    cpu = c.ops()["aten::mkldnn_rnn_layer"]
    dirs = 2 if bidirectional else 1
    weights = [meta(*w.shape) for w in lstm._flat_weights]
    hx = meta(layers * dirs, b, h)
    args = (meta(t, b, i), weights, 4, None, hx, hx, 2, h, 0, layers, False, 0.0, False, bidirectional, [], None)
    flops, macs = both(aten._cudnn_rnn.default, args, out=(meta(t, b, dirs * h), hx, hx, meta(0), meta(0)))
    assert (flops, macs) == (cpu["flops"], cpu["macs"])


def test_cudnn_gru_and_projection():
    t, b, i, h, p = 4, 2, 5, 6, 3
    gru = [meta(18, 5), meta(18, 6), meta(18), meta(18)]  # one layer, 3 gates
    args = (meta(t, b, i), gru, 4, None, meta(1, b, h), None, 3, h, 0, 1, False, 0.0, True, False, [], None)
    flops, macs = both(aten._cudnn_rnn.default, args, out=(meta(t, b, h),) + (meta(0),) * 4)
    assert macs == 8 * (18 * 5 + 18 * 6)  # rows 4 * 2 = 8; (90 + 108) = 1584
    assert flops == 2 * 1584 + 8 * 6 * 20  # + GRU gate math 20 per hidden unit = 3168 + 960 = 4128
    lstm_proj = [meta(24, 5), meta(24, 3), meta(3, 6)]  # w_ih [4H, I], w_hh [4H, P], w_hr [P, H]; no bias
    args = (meta(t, b, i), lstm_proj, 3, None, meta(1, b, p), meta(1, b, h), 2, h, p, 1, False, 0.0, True, False, [],
            None)
    flops, macs = both(aten._cudnn_rnn.default, args, out=(meta(t, b, p),) + (meta(0),) * 4)
    assert macs == 8 * (24 * 5 + 24 * 3 + 3 * 6)  # 8 * 210 = 1680
    assert flops == 2 * 1680 + 8 * 6 * 26  # hidden size 6 read from w_hr: 3360 + 1248 = 4608


# ---- batch norm, conv and attention kernels of the GPU backends --------------------------------------------

def test_gpu_batch_norm_backward_kernels():
    x, c_ = meta(2, 3, 4, 4), meta(3)  # 96 elements
    flops, _ = both(aten.cudnn_batch_norm_backward.default, (x, x, c_, c_, c_, c_, c_, 1e-5, meta(0)),
                    out=(x, c_, c_))
    assert flops == (8 + 2 + 1) * 96  # no output mask: input, weight and bias gradients = 1056
    flops, _ = both(aten.batch_norm_backward.default,
                    (x, x, c_, c_, c_, c_, c_, True, 1e-5, [True, False, False], meta(0)), out=(x, None, None))
    assert flops == 8 * 96  # input gradient only = 768


def test_fused_conv_epilogues_and_transposed_kernels():
    x, w, bias = meta(1, 4, 8, 8), meta(6, 4, 3, 3), meta(6)
    out = meta(1, 6, 8, 8)  # padding 1 keeps 8 x 8: 384 outputs
    flops, macs = both(aten.cudnn_convolution_add_relu.default, (x, w, out, 1.0, bias, [1, 1], [1, 1], [1, 1], 1),
                       out=out)
    assert macs == 384 * 4 * 3 * 3  # outputs * C_in * kh * kw = 13824
    assert flops == 2 * 13824 + (1 + 3) * 384  # + bias, alpha * z, add, relu per output = 29184
    xt, wt = torch.randn(1, 4, 5, 5), torch.randn(4, 3, 3, 3)
    with fd.count() as c:
        aten.slow_conv_transpose2d.default(xt, wt, [3, 3], None, [2, 2])
        aten.convolution.default(xt, wt, None, [2, 2], [0, 0], [1, 1], True, [0, 0], 1)
    assert c.ops()["aten::slow_conv_transpose2d"]["macs"] == 4 * 5 * 5 * 3 * 3 * 3  # = 2700, as convolution's
    assert c.ops()["aten::convolution"]["macs"] == 2700


def test_masked_softmax_and_cuda_dropout_kernels():
    x = torch.randn(2, 3, 5)
    mask = torch.rand(2, 3, 5) > 0.5
    with fd.count() as c:
        aten._masked_softmax.default(x, mask, -1, None)
    assert ops(c)["aten::_masked_softmax"] == 6 * 30  # softmax 5 + mask 1 per element = 180
    x_ = meta(2, 3, 5)  # _fused_dropout is CUDA-only: priced from its declaration
    flops, _ = both(aten._fused_dropout.default, (x_, 0.5), out=(x_, meta(2, 3, 5, dtype=torch.uint8)))
    assert flops == 2 * 30  # mask and scale per element = 60


# ---- GradScaler and a MobileNetV3-style training step ------------------------------------------------

def test_amp_kernels():
    grads = [torch.randn(3, 4), torch.randn(5)]
    found, inv = torch.zeros(1), torch.ones(1)
    scale, tracker = torch.ones(1), torch.zeros(1, dtype=torch.int32)
    with fd.count() as c:
        torch._amp_foreach_non_finite_check_and_unscale_(grads, found, inv)
        torch._amp_update_scale_(scale, tracker, found, 2.0, 0.5, 2000)
    assert ops(c)["aten::_amp_foreach_non_finite_check_and_unscale_"] == 2 * (12 + 5)  # test + multiply = 34
    assert ops(c)["aten::_amp_update_scale_"] == 2  # one compare, one multiply on the scale


class SqueezeExcite(nn.Module):
    def __init__(self, c, r=4):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.fc2 = nn.Conv2d(c, c // r, 1), nn.Conv2d(c // r, c, 1)

    def forward(self, x):
        return x * F.hardsigmoid(self.fc2(torch.relu(self.fc1(self.pool(x)))))


class InvertedResidual(nn.Module):
    def __init__(self, cin, exp, cout, k, stride, se):
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(cin, exp, 1, bias=False), nn.BatchNorm2d(exp), nn.Hardswish())
        self.depthwise = nn.Sequential(nn.Conv2d(exp, exp, k, stride, k // 2, groups=exp, bias=False),
                                       nn.BatchNorm2d(exp), nn.Hardswish())
        self.se = SqueezeExcite(exp) if se else nn.Identity()
        self.project = nn.Sequential(nn.Conv2d(exp, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.residual else y


def mobilenet_v3_small_like():
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish(),
        InvertedResidual(16, 16, 16, 3, 1, True), InvertedResidual(16, 64, 24, 5, 2, True),
        InvertedResidual(24, 72, 24, 3, 1, False),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 64), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(64, 10))


@pytest.mark.slow
def test_mobilenet_v3_amp_training_step_is_fully_priced():
    torch.manual_seed(0)
    model = mobilenet_v3_small_like()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu")
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    with fd.count(model) as c:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    assert c.unsupported == {}
    got = ops(c)
    n_params = sum(p.numel() for p in model.parameters())
    assert got["aten::_amp_foreach_non_finite_check_and_unscale_"] == 2 * n_params  # one grad element per param
    # SE gates: hardsigmoid on [4, 16, 1, 1] and [4, 64, 1, 1] = 320 elements, 4 FLOPs forward, 3 backward
    # relu6(x + 3) / 6: add, clamp, divide (3); backward: two compares and g / 6 (3)
    assert got["aten::hardsigmoid"] == 3 * 320 and got["aten::hardsigmoid_backward"] == 3 * 320
    assert c.phase("backward").macs > 0 and c.phase("optimizer").flops > 0


# ---- wav2vec2 (conv feature encoder, positional conv with weight norm, CTC head) ----------------------------

@pytest.mark.slow
def test_wav2vec2_training_step_is_fully_priced():
    transformers = pytest.importorskip("transformers")

    config = transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, conv_dim=(16, 16),
        conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        vocab_size=12, feat_extract_norm="group", mask_time_prob=0.0)
    torch.manual_seed(0)
    model = transformers.Wav2Vec2ForCTC(config).train()
    opt = torch.optim.AdamW(model.parameters())
    audio, labels = torch.randn(2, 800), torch.randint(1, 12, (2, 5))
    with fd.count(model) as c:
        model(audio, labels=labels).loss.backward()
        opt.step()
    assert c.unsupported == {}
    got = c.ops()
    assert got["aten::_weight_norm_interface"]["flops"] > 0 and got["aten::_weight_norm_interface_backward"]["flops"] > 0
    frames = got["aten::_ctc_loss"]["flops"] // (13 * 2 * 11)  # log_alpha [N=2, T, 2S+1 = 11]
    assert got["aten::_ctc_loss"]["flops"] == 13 * 2 * frames * 11
    assert got["aten::_ctc_loss_backward"]["flops"] == 21 * 2 * frames * 11 + 6 * frames * 2 * 12  # + grad [T, N, C]


# ---- sparse products: one MAC per stored element and dense column ----------------------------------------

def test_sparse_products_hand_count():
    dense = torch.zeros(4, 6)
    dense[0, 1], dense[1, 0], dense[1, 5], dense[3, 2], dense[3, 3] = 1.0, 2.0, 3.0, 4.0, 5.0  # 5 stored
    a = dense.to_sparse_csr()
    b = torch.randn(6, 3, requires_grad=True)
    with fd.count() as c:
        torch.sparse.mm(a, b, "sum").sum().backward()  # only b needs a gradient
        torch.sparse.sampled_addmm(dense[:, :5].to_sparse_csr(), torch.randn(4, 7), torch.randn(7, 5))
    got = c.ops()
    assert got["aten::_sparse_mm_reduce_impl"]["macs"] == 5 * 3  # nnz * n = 15
    assert got["aten::_sparse_mm_reduce_impl_backward"]["macs"] == 5 * 3  # grad of b only: self^T @ grad = 15
    assert got["aten::sparse_sampled_addmm"]["macs"] == 4 * 7  # 4 stored in the first 5 columns, 7-long dots = 28
    assert c.unsupported == {}
