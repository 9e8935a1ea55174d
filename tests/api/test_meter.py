"""fd.Meter (issue 14): each step's FLOPs are those of a full count of that step, counted once per
signature. The oracle is a twin (a deep copy of the model and optimizer) whose every step is wrapped
in a full ``fd.count``: weights differ in no way that changes the work."""
import copy

import pytest
import torch
import torch.nn as nn

import flopdispatch as fd
from flopdispatch._demo import GPT


def make(opt_cls=torch.optim.SGD, **opt_kwargs):
    torch.manual_seed(0)
    model = GPT(layers=2, heads=2, d=32, vocab=64, context=32, device="cpu")
    opt = opt_cls(model.parameters(), lr=1e-3, **opt_kwargs)
    twin = copy.deepcopy(model)
    twin_opt = opt_cls(twin.parameters(), lr=1e-3, **opt_kwargs)
    return model, opt, twin, twin_opt


def train_step(model, opt, x, optimizer_step=True):
    model(x, targets=x).backward()
    if optimizer_step:
        opt.step()
        opt.zero_grad()


def full_count(model, opt, x, optimizer_step=True):
    with fd.count(model) as c:
        train_step(model, opt, x, optimizer_step)
    return c.totals


def run(meter, model, opt, twin, twin_opt, lengths, optimizer_steps=None):
    """Meter every step of `model` and fully count the same step of the twin: (metered, counted)."""
    got, want = [], []
    for i, length in enumerate(lengths):
        x = torch.randint(0, 64, (2, length), generator=torch.Generator().manual_seed(i))
        step_opt = True if optimizer_steps is None else optimizer_steps[i]
        with meter.step(tokens=x.numel(), samples=2):
            train_step(model, opt, x, step_opt)
        got.append(meter.last)
        want.append(full_count(twin, twin_opt, x, step_opt))
    return got, want


@pytest.mark.slow  # counts every step in full as its oracle
def test_alternating_lengths_count_two_steps_and_match_a_full_count_of_every_step():
    model, opt, twin, twin_opt = make()  # plain SGD: no optimizer state
    meter = fd.Meter(model)
    got, want = run(meter, model, opt, twin, twin_opt, [8, 16] * 4)
    assert meter.counts_made == 2
    assert [s.counted for s in got] == [True, True] + [False] * 6
    assert [s.flops for s in got] == [c.flops for c in want]
    assert [s.counts for s in got] == want  # macs, bytes and calls too
    assert got[0].flops != got[1].flops
    assert [s.tokens for s in got] == [16, 32] * 4  # 2 x 8, 2 x 16


def test_adam_first_step_is_its_own_signature():
    # AdamW's first step creates its state (exp_avg, exp_avg_sq): different work from later steps,
    # so the signature includes the optimizer state size and the third step (length 8 again,
    # state now full) is counted too.
    model, opt, twin, twin_opt = make(torch.optim.AdamW)
    meter = fd.Meter(model)
    got, want = run(meter, model, opt, twin, twin_opt, [8, 16, 8, 16, 8])
    assert meter.counts_made == 3
    assert [s.counted for s in got] == [True, True, True, False, False]
    assert [s.counts for s in got] == want


def test_a_step_that_does_other_work_than_the_counted_one_is_not_given_its_flops():
    # gradient accumulation: micro-steps without an optimizer step. A micro-step right after a full
    # step (no gradients yet) has the signature of a full step but not its outcome: it gets
    # flops=None, and the next step of that signature is counted. A step that finds gradients
    # already there (they are accumulated into: more work) is another signature.
    model, opt, twin, twin_opt = make()
    meter = fd.Meter(model)
    pattern = [True, True, False, True, False, True, False, True]
    got, want = run(meter, model, opt, twin, twin_opt, [8] * 8, optimizer_steps=pattern)
    # 1 full, no grads: counted | 2 full, no grads: cached | 3 micro, no grads: outcome unknown, None
    # 4 full, grads: counted | 5 micro, no grads: counted (recount) | 6 full, grads: cached
    # 7 micro, no grads: cached | 8 full, grads: cached
    assert [s.counted for s in got] == [True, False, False, True, True, False, False, False]
    assert meter.counts_made == 3
    assert [s.flops for s in got] == [None if i == 2 else c.flops for i, c in enumerate(want)]
    assert want[2].flops < want[1].flops < want[3].flops  # no optimizer step; gradients accumulated


def test_eval_and_no_grad_are_other_signatures():
    model = nn.Sequential(nn.Linear(4, 3))
    meter = fd.Meter(model)
    x = torch.randn(5, 4)
    with meter.step():
        model(x).sum().backward()
    with torch.no_grad(), meter.step():
        model(x)
    model.eval()
    with torch.no_grad(), meter.step():
        model(x)
    with torch.no_grad(), meter.step():
        model(x)
    assert meter.counts_made == 3
    # no_grad forward: 5 x 4 x 3 = 60 MACs, 2 * 60 + 5 * 3 bias adds = 135 FLOPs
    assert meter.last.flops == 135 and not meter.last.counted


def test_the_cache_is_bounded_least_recently_used_first():
    model = nn.Linear(4, 4)
    meter = fd.Meter(model, max_signatures=2)
    for rows in [1, 2, 3, 1, 3]:  # 1 is dropped when 3 comes in; 3 stays
        with torch.no_grad(), meter.step():
            model(torch.randn(rows, 4))
    assert meter.signatures == 2
    assert meter.counts_made == 4  # 1, 2, 3, 1 again; the last 3 from the cache
    # 3 rows: 3 x 4 x 4 = 48 MACs, 2 * 48 + 3 * 4 = 108 FLOPs
    assert meter.last.flops == 108 and not meter.last.counted


def test_inputs_given_up_front_count_the_whole_step():
    model = nn.Linear(4, 4)
    x = torch.randn(3, 4)
    meter = fd.Meter(model)

    def step():
        model.zero_grad(set_to_none=False)  # before the forward: zero-fills, 0 FLOPs
        y = (x * 2.0)  # before the forward: 12 FLOPs
        model(y).sum().backward()

    model(x).sum().backward()  # grads exist, so zero_grad runs ops
    with fd.count() as full:
        step()
    with meter.step(inputs=x):
        step()
    assert meter.last.counts == full.totals
    with meter.step(inputs=x):
        step()
    assert meter.last.counts == full.totals and not meter.last.counted
    with meter.step():  # counted from the first forward: the 12 FLOPs of x * 2 come before it
        step()
    assert meter.last.counted and meter.last.flops == full.flops - 12
    assert meter.counts_made == 2


def test_an_exception_inside_a_step_records_nothing_and_leaves_nothing_behind():
    from torch.optim.optimizer import _global_optimizer_pre_hooks

    model = nn.Linear(4, 4)
    meter = fd.Meter(model)
    hooks = len(_global_optimizer_pre_hooks)
    for counted in (True, False):  # inside a counted step, then inside a timed one
        with meter.step():
            model(torch.randn(2, 4))
        steps, made, last = meter.steps, meter.counts_made, meter.last
        if counted:
            meter._cache.clear()
        with pytest.raises(ZeroDivisionError):
            with meter.step():
                model(torch.randn(2, 4))
                1 / 0
        assert (meter.steps, meter.counts_made, meter.last) == (steps, made, last)
        assert not model._forward_pre_hooks and not model._forward_hooks
        assert len(_global_optimizer_pre_hooks) == hooks
        assert torch._C._len_torch_dispatch_stack() == 0
    with meter.step():
        model(torch.randn(2, 4))
    assert meter.last.flops == 2 * 2 * 16 + 2 * 4  # 2 rows x Linear(4, 4): 2 * 32 MACs + 8 bias adds = 72


def test_rates_and_mfu():
    model = nn.Linear(8, 8)
    meter = fd.Meter(model, device="H100", dtype="fp32")
    for _ in range(3):
        with torch.no_grad(), meter.step(tokens=10, samples=2):
            model(torch.randn(10, 8))
    last = meter.last
    assert last.flops == 2 * 10 * 64 + 10 * 8  # 640 MACs, 80 bias adds: 1360
    assert last.flops_per_second == last.flops / last.seconds
    assert last.tokens_per_second == 10 / last.seconds
    assert last.mfu == last.flops / last.seconds / 67e12  # H100 SXM fp32 (non-tensor) peak
    summary = meter.summary()
    assert summary.steps == 2 and summary.flops == 2 * 1360 and summary.tokens == 20  # counted step left out
    assert meter.summary(include_counted=True).steps == 3
    assert fd.Meter(model).last is None and fd.Meter(model).summary() is None


def test_steps_do_not_nest():
    model = nn.Linear(2, 2)
    meter = fd.Meter(model)
    with meter.step():
        with pytest.raises(RuntimeError, match="do not nest"):
            with meter.step():
                pass
