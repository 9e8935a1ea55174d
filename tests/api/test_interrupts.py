"""Ctrl-C at any line of flopdispatch's own code leaves nothing installed (issue 20, item 2).

A ``sys.settrace`` harness raises KeyboardInterrupt at the n-th Python line executed in
flopdispatch's files during one counted training step; after each n, every global hook, the
dispatch mode stack, the saved-tensor hooks, the meter's step and the compiled-frame counter must
be as before the step. Every point of entering and leaving the block is tried; the points inside
the step (hooks running per module and per saved tensor) are sampled.
"""
import os
import random
import sys

import pytest
import torch
import torch.nn as nn

import flopdispatch as fd
from flopdispatch import activations as fd_activations

FD_DIR = os.path.dirname(fd.__file__) + os.sep
BODY_SAMPLES = 30  # points tried inside the step, besides every point of entering and leaving it
# The roll-up of results (timing reads them while leaving: 2,000 lines of arithmetic once every hook
# and the mode are off): sampled as the step's inside is.
RESULTS = {"_collect"}


class Interrupter:
    """Counts the Python lines run in flopdispatch's files; raises KeyboardInterrupt at line `target`.
    A trace function that raises is unset by Python: one interrupt per run."""

    def __init__(self, target=-1):
        self.target, self.lines, self.fired = target, 0, False
        self.marks = []
        self.results_depth, self.results_lines = 0, set()  # lines run inside the roll-up of results

    def trace(self, frame, event, arg):
        if not frame.f_code.co_filename.startswith(FD_DIR):
            return None
        if frame.f_code.co_name in RESULTS:
            self.results_depth += 1
        return self.local

    def local(self, frame, event, arg):
        if event == "line":
            n, self.lines = self.lines, self.lines + 1
            if self.results_depth:
                self.results_lines.add(n)
            if n == self.target:
                self.fired = True
                raise KeyboardInterrupt(f"line {n}")
        elif event == "return" and frame.f_code.co_name in RESULTS:
            self.results_depth -= 1
        return self.local

    def mark(self):
        self.marks.append(self.lines)


def _frame_count():
    setter = torch._C._dynamo.eval_frame.set_fullgraph_compiled_frame_count
    previous = setter(0)
    setter(previous)
    return previous


def installed(model, meter=None):
    """What flopdispatch could leave behind, as comparable values."""
    from torch.optim import optimizer
    from torch.utils import _python_dispatch as pd

    M = torch.nn.modules.module
    hooks = {n: dict(getattr(M, n)) for n in dir(M) if n.startswith("_global") and isinstance(getattr(M, n), dict)}
    return {
        "module hooks": hooks,
        "optimizer hooks": (dict(optimizer._global_optimizer_pre_hooks), dict(optimizer._global_optimizer_post_hooks)),
        "mode stack": pd._get_current_dispatch_mode_stack(),
        "mode flags": (pd._is_in_torch_dispatch_mode, pd._is_in_non_infra_torch_dispatch_mode,
                       pd._is_in_any_mode_without_ignore_compile_internals),
        "saved-tensor hooks": torch._C._autograd._top_saved_tensors_default_hooks(True),
        "trackers": list(getattr(fd_activations._tls, "trackers", None) or []),
        "model hooks": [(dict(m._forward_pre_hooks), dict(m._forward_hooks)) for m in model.modules()],
        "meter step": meter._state if meter is not None else None,
        "compiled-frame count": _frame_count(),
        "dynamo stance": sys.modules["torch._dynamo"].eval_frame._stance if "torch._dynamo" in sys.modules else None,
    }


def make():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    return model, torch.optim.SGD(model.parameters(), lr=0.1), torch.randn(3, 4)


def train(model, opt, x, mark):
    mark()
    model(x).sum().backward()  # (a compiled wrapper's parameters are the model's)
    opt.step()
    opt.zero_grad()
    mark()


def scenario(kind, model, opt, x, mark):
    """One counted step of `kind`; returns the meter (or None)."""
    if kind == "meter":
        meter = fd.Meter(model)
        try:
            with meter.step(tokens=3):  # counted: a new signature
                train(model, opt, x, mark)
            with meter.step(tokens=3):  # timed only
                train(model, opt, x, lambda: None)
        finally:
            return meter
    options = {"count": {}, "activations": {"activations": True}, "timing": {"timing": True}}.get(kind, {})
    with fd.count(None if kind == "no model" else model, **options):
        # "compiled": the step calls a torch.compile'd wrapper (dynamo's eager stance is installed too)
        train(torch.compile(model, backend="eager") if kind == "compiled" else model, opt, x, mark)
    return None


def run(kind, target):
    model, opt, x = make()
    before = installed(model)
    tracer = Interrupter(target)
    meter = None
    unraisable, hook = [], sys.unraisablehook
    sys.unraisablehook = lambda u: unraisable.append(u.exc_type)
    sys.settrace(tracer.trace)
    try:
        meter = scenario(kind, model, opt, x, tracer.mark)
    except KeyboardInterrupt:
        pass  # the step's graph (and the saved tensors' handles) die here, while the hook listens
    finally:
        sys.settrace(None)
        sys.unraisablehook = hook
    # A finalizer interrupted by the harness reports the KeyboardInterrupt (Python's rule); never
    # anything else (issue 20, item 7: an interrupt while a saved tensor's handle was being made
    # left one without attributes, whose __del__ raised AttributeError)
    assert all(t is KeyboardInterrupt for t in unraisable), unraisable
    return tracer, before, installed(model, meter), (model, opt, x)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["count", "activations", "timing", "no model", "meter", "compiled"])
def test_interrupt_at_any_line_leaves_nothing_installed(kind):
    settled = run(kind, -1)[0].lines  # warm-up: lazy imports and caches run their lines once
    for _ in range(3):  # until a step runs as many lines as the one before (Python 3.13 with
        first, before, after, _ = run(kind, -1)  # torch.compile warms a cache in the second step too)
        if first.lines == settled:
            break
        settled = first.lines
    assert first.lines == settled, "the step's lines did not settle"
    assert not first.fired and after == before
    total = first.lines
    body_start, body_end = first.marks[0], first.marks[1]
    edges = [n for n in range(total) if not body_start <= n < body_end and n not in first.results_lines]
    body = [n for n in range(total) if body_start <= n < body_end or n in first.results_lines]
    if kind == "activations":  # every point inside the step too: the saved-tensor hooks (item 7)
        points = edges + body
    else:
        points = edges + sorted(random.Random(20).sample(body, min(BODY_SAMPLES, len(body))))
    assert len(edges) > 20, "the harness sees flopdispatch's own lines"
    for n in points:
        tracer, before, after, (model, opt, x) = run(kind, n)
        assert tracer.fired, f"point {n} of {total} not reached"
        assert after == before, f"{kind}: KeyboardInterrupt at line {n} of {total} left something installed"
    # and counting still works afterwards: the 4-8-2 MLP's forward is 3*4*8 + 3*8*2 = 144 MACs
    with fd.count(model) as c:
        model(x)
    assert c.macs == 144
