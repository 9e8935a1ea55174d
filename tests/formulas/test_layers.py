"""Layer types beyond the worked examples: hand counts, and nothing left unsupported."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import flopdispatch as fd


def test_lstm_fused_layer_hand_count():
    lstm = nn.LSTM(8, 16, num_layers=2, batch_first=True)
    x = torch.randn(2, 5, 8, requires_grad=True)  # batch 2, 5 steps
    with fd.count(lstm) as c:
        lstm(x)[0].sum().backward()
    rows = 2 * 5
    layer1 = rows * (4 * 16 * 8 + 4 * 16 * 16)   # w_ih [64, 8], w_hh [64, 16]: 15,360
    layer2 = rows * (4 * 16 * 16 + 4 * 16 * 16)  # w_ih [64, 16]: 20,480
    assert c.phase("forward").macs == layer1 + layer2
    assert c.phase("backward").macs == 2 * (layer1 + layer2)
    assert c.unsupported == {}


def test_lstm_counts_like_lstm_cells_unrolled():
    # The fused layer and the same LSTM run cell by cell do the same matmul work.
    lstm = nn.LSTM(8, 16)
    cell = nn.LSTMCell(8, 16)
    x = torch.randn(5, 3, 8)
    with torch.no_grad(), fd.count() as fused:
        lstm(x)
    with torch.no_grad(), fd.count() as unrolled:
        h = c_ = torch.zeros(3, 16)
        for t in range(5):
            h, c_ = cell(x[t], (h, c_))
    assert fused.macs == unrolled.macs == 5 * 3 * (64 * 8 + 64 * 16)


@pytest.mark.parametrize("name,build,make", [
    ("prelu", lambda: nn.PReLU(), lambda: torch.randn(4, 8)),
    ("conv_transpose", lambda: nn.ConvTranspose2d(3, 4, 3, stride=2), lambda: torch.randn(1, 3, 8, 8)),
    ("conv3d", lambda: nn.Conv3d(2, 4, 3), lambda: torch.randn(1, 2, 6, 6, 6)),
    ("norms", lambda: nn.Sequential(nn.BatchNorm2d(3), nn.GroupNorm(1, 3), nn.InstanceNorm2d(3, affine=True)),
     lambda: torch.randn(2, 3, 8, 8)),
    ("pools", lambda: nn.Sequential(nn.MaxPool2d(2), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(3), nn.AdaptiveMaxPool2d(2)),
     lambda: torch.randn(1, 3, 16, 16)),
    ("upsample", lambda: nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear"), nn.Upsample(scale_factor=2),
                                       nn.Upsample(scale_factor=2, mode="bicubic")), lambda: torch.randn(1, 1, 4, 4)),
    ("activations", lambda: nn.Sequential(nn.SiLU(), nn.Mish(), nn.Hardswish(), nn.ELU(), nn.Softplus(), nn.Tanh(),
                                          nn.Sigmoid(), nn.LeakyReLU(), nn.GELU(approximate="tanh")),
     lambda: torch.randn(4, 8)),
    ("gru", lambda: nn.GRU(8, 16, batch_first=True), lambda: torch.randn(2, 5, 8)),
    ("rmsnorm", lambda: nn.RMSNorm(8), lambda: torch.randn(2, 8)),
    ("pixel_shuffle_unfold", lambda: nn.Sequential(nn.PixelShuffle(2), nn.Unfold(2)), lambda: torch.randn(1, 8, 3, 3)),
])
def test_layers_forward_and_backward_have_no_unsupported_ops(name, build, make):
    model = build()
    x = make().requires_grad_()
    with fd.count(model) as c:
        out = model(x)
        (out[0] if isinstance(out, tuple) else out).sum().backward()
    assert c.unsupported == {}, name
    assert c.flops > 0


def test_losses_have_no_unsupported_ops():
    x = torch.randn(4, 5, requires_grad=True)
    t = torch.randint(0, 5, (4,))
    with fd.count() as c:
        loss = (F.cross_entropy(x, t) + F.mse_loss(x, x.detach() * 2) + F.l1_loss(x, x.detach())
                + F.smooth_l1_loss(x, x.detach()) + F.binary_cross_entropy_with_logits(x, torch.rand(4, 5))
                + F.binary_cross_entropy(x.sigmoid(), torch.rand(4, 5)) + F.nll_loss(x.log_softmax(-1), t)
                + F.kl_div(x.log_softmax(-1), torch.rand(4, 5), reduction="batchmean"))
        loss.backward()
    assert c.unsupported == {}
    # cross entropy on [4, 5]: log_softmax 5 per element = 100 FLOPs, nll 1 per target = 4
    assert c.ops()["aten::nll_loss_forward"]["flops"] == 4 * 2  # two nll_loss calls, 4 targets each
