"""Backward attributed to the module whose forward created it; phases add up to the totals."""
import pytest
import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

import flopdispatch as fd


def _sum_phases(c, field="macs"):
    return sum(getattr(c.phase(p), field) for p in fd.PHASES)


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 8, bias=False)

    def forward(self, x):
        return self.lin(self.lin(x))


def test_module_called_twice_gets_both_backwards():
    model = Twice()
    x = torch.randn(4, 8)  # no grad for the input
    with fd.count(model) as c:
        model(x).sum().backward()
    fwd = 2 * 4 * 8 * 8  # two calls of 4*8*8 = 512
    # backward: the second call needs grad_input and grad_weight (2 * 256), the first call only
    # grad_weight (256) because x does not require grad: 768
    assert c.module("lin", phase="forward").macs == fwd
    assert c.module("lin", phase="backward").macs == 3 * 4 * 8 * 8
    assert c.module("lin").macs == c.macs == fwd + 3 * 256


def test_mlp_adamw_step_phases_add_up():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=False)
    x, y = torch.randn(8, 16), torch.randn(8, 4)
    with fd.count(model) as c:
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    # forward: 8*16*32 + 8*32*4 = 4096 + 1024
    assert c.phase("forward").macs == 8 * 16 * 32 + 8 * 32 * 4
    # backward: layer 2 grad_input + grad_weight (2 * 1024); layer 1 grad_weight only (4096)
    assert c.phase("backward").macs == 2 * 1024 + 4096
    assert c.module("0", phase="backward").macs == 4096
    assert c.module("2", phase="backward").macs == 2 * 1024
    # optimizer work is element-wise: FLOPs, no MACs
    n_params = 16 * 32 + 32 + 32 * 4 + 4
    assert c.phase("optimizer").macs == 0 and c.phase("optimizer").flops >= 13 * n_params
    for field in ("flops", "macs", "bytes_read", "bytes_written"):
        assert _sum_phases(c, field) == getattr(c, field)
    # the loss is computed outside the model: 'other', not 'forward'
    assert c.phase("other").flops > 0


def test_single_tensor_and_fused_adam_use_the_same_convention():
    # Adam per element: lerp (3) + mul (1) + addcmul (3) + sqrt (1) + div (1) + add (1) + addcdiv (3) = 13
    results = {}
    for impl in ("single", "fused"):
        p = nn.Parameter(torch.randn(100))
        p.grad = torch.randn(100)
        opt = torch.optim.Adam([p], foreach=False, fused=(impl == "fused"))
        with fd.count() as c:
            opt.step()
        results[impl] = c.phase("optimizer").flops
    # 13 per element for 100 elements, plus 1 for the step counter (step += 1) = 1301
    assert results == {"single": 13 * 100 + 1, "fused": 13 * 100 + 1}


def test_checkpoint_recompute_lands_in_backward_on_the_checkpointed_module():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8, bias=False)

        def forward(self, x):
            return torch.relu(self.fc(x))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Block()
            self.head = nn.Linear(8, 2, bias=False)

        def forward(self, x):
            return self.head(checkpoint(self.block, x, use_reentrant=False))

    net = Net()
    x = torch.randn(4, 8, requires_grad=True)
    with fd.count(net) as c:
        net(x).sum().backward()
    fc = 4 * 8 * 8  # 256 MACs per forward of block.fc
    assert c.module("block.fc", phase="forward").macs == fc
    # backward on block.fc: recompute (256) + grad_input (256) + grad_weight (256)
    assert c.module("block.fc", phase="backward").macs == 3 * fc
    assert c.module("block", phase="backward").macs == 3 * fc
    # children never sum past the parent
    for phase in (None, "forward", "backward"):
        parent = c.module("", phase=phase).macs
        assert c.module("block", phase=phase).macs + c.module("head", phase=phase).macs <= parent


def test_shared_module_under_two_parents():
    shared = nn.Linear(4, 4, bias=False)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Sequential(shared)
            self.b = nn.Sequential(shared)

        def forward(self, x):
            return self.b(self.a(x))

    net = Net()
    with fd.count(net) as c:
        net(torch.randn(2, 4, requires_grad=True)).sum().backward()
    per_call = 2 * 4 * 4  # 32
    assert c.module("a", phase="forward").macs == per_call
    assert c.module("b", phase="forward").macs == per_call
    # named_modules() names the shared Linear once, "a.0": it holds both calls
    assert c.module("a.0").macs == c.module("").macs == 2 * per_call + 2 * 2 * per_call
    assert c.module("a", phase="backward").macs == 2 * per_call
    assert c.module("b", phase="backward").macs == 2 * per_call


def test_no_grad_and_inference_mode_count_forward_only():
    model = nn.Linear(8, 8)
    x = torch.randn(2, 8)
    for ctx in (torch.no_grad, torch.inference_mode):
        with ctx(), fd.count(model) as c:
            model(x)
        assert c.phase("forward").macs == 2 * 8 * 8 and c.phase("backward").macs == 0


def test_without_model_the_outermost_module_is_the_root():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    with fd.count() as c:
        model(torch.randn(1, 4))
    assert c.module("").type == "Sequential"
    assert c.module("1").macs == 4 * 2
    assert c.module("").params == 4 * 4 + 4 + 4 * 2 + 2


def test_autocast_counts_the_same_matmuls_and_the_casts():
    model = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    x = torch.randn(8, 16)
    with fd.count(model) as plain:
        model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16), fd.count(model) as mixed:
        y = model(x)
    assert y.dtype == torch.bfloat16  # autocast still applies under the counter
    assert mixed.macs == plain.macs == 8 * 16 * 16 + 8 * 16 * 4
    assert "aten::_to_copy" in mixed.ops()  # the casts move bytes
