"""Where flopdispatch's per-op time goes, and what a counting block costs to open and close.

Measurement only (the library is not modified): each row adds one piece to the one before, on the
overhead-dominated workload of overhead.py (20 x Linear(8, 8), batch 4, forward + backward).

  no-op mode, no dynamo wrapper   a TorchDispatchMode whose __torch_dispatch__ is not wrapped by
                                  torch._disable_dynamo (torch >= 2.10 wraps every subclass that
                                  defines __torch_dispatch__ in Python; _should_skip_dynamo False
                                  turns that off): the true floor of a Python-level dispatch mode
  ... calling func._op            the same, calling the C++ op directly instead of the Python
                                  OpOverload.__call__ frame
  ... + empty global module hooks  the floor plus two do-nothing global module hooks (flopdispatch
                                  installs two to know the module scope of every op)
  no-op mode (as overhead.py)     the standard no-op mode, wrapped by torch._disable_dynamo
  recorder, no hooks              flopdispatch's compiled recorder as the mode, with no module
                                  hooks: the per-op C++ work alone
  flopdispatch, count()           no model: module hooks on, root adopted on first call
  flopdispatch, count(model)      the normal use
  flopdispatch, count(model, python_formulas=True)

Then the fixed cost of a counting block (enter + exit, nothing counted inside, and around one
forward) on models of 21, ~60 and ~420 modules, split into its parts.

    python benchmarks/breakdown.py [--reps 9] [--steps 30]
"""
import argparse
import contextlib
import gc
import statistics
import time

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

import flopdispatch as fd
from bench import NoopMode, RawNoopMode, llama7b_meta  # the reference modes and big model, defined once (bench.py)
from flopdispatch.counter import _CountingMode


class RawNoopDirect(TorchDispatchMode):
    @classmethod
    def _should_skip_dynamo(cls):
        return False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return func._op(*args, **(kwargs or {}))


@contextlib.contextmanager
def with_empty_hooks(mode_cls):
    modules = torch.nn.modules.module

    def pre(module, args):
        return None

    def post(module, args, out):
        return None

    h1 = modules.register_module_forward_pre_hook(pre)
    h2 = modules.register_module_forward_hook(post, always_call=True)
    try:
        with mode_cls():
            yield
    finally:
        h1.remove()
        h2.remove()


@contextlib.contextmanager
def recorder_only():
    mode = _CountingMode()
    mode.configure(False, None, None)
    with mode:
        yield
    mode.detach()


def per_op(reps, steps):
    torch.set_num_threads(1)
    model = nn.Sequential(*[nn.Linear(8, 8) for _ in range(20)])
    x = torch.randn(4, 8, requires_grad=True)

    def step():
        model(x).sum().backward()

    contexts = {
        "eager": contextlib.nullcontext,
        "no-op mode, no dynamo wrapper": RawNoopMode,
        "... calling func._op": RawNoopDirect,
        "... + empty global module hooks": lambda: with_empty_hooks(RawNoopMode),
        "no-op mode (as overhead.py)": NoopMode,
        "recorder, no hooks": recorder_only,
        "flopdispatch, count()": fd.count,
        "flopdispatch, count(model)": lambda: fd.count(model),
        "flopdispatch, python_formulas=True": lambda: fd.count(model, python_formulas=True),
    }
    class OpCounter(RawNoopMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            OpCounter.n += 1
            return func(*args, **(kwargs or {}))

    for make in contexts.values():
        with make():
            step()
    with OpCounter():
        step()
    n_ops = OpCounter.n
    times = {k: [] for k in contexts}
    names = list(contexts)
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            with contexts[name]():
                t = time.perf_counter()
                for _ in range(steps):
                    step()
                times[name].append((time.perf_counter() - t) / steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    floor = med["no-op mode, no dynamo wrapper"]
    print(f"Per-op cost: 20 x Linear(8, 8), forward + backward, {n_ops} aten ops per step, 1 thread, "
          f"median of {reps} x {steps} steps\n")
    print("| counter | ms / step | us / op over the unwrapped no-op mode |")
    print("|---|---|---|")
    for name in contexts:
        print(f"| {name} | {med[name] * 1e3:.3f} | {(med[name] - floor) / n_ops * 1e6:+.2f} |")


def block_cost(reps):
    from flopdispatch._demo import GPT

    torch.set_num_threads(1)
    models = {
        "MLP, 21 modules": (nn.Sequential(*[nn.Linear(8, 8) for _ in range(20)]), torch.randn(4, 8)),
        "GPT 2 layers, 14 modules": (GPT(layers=2, heads=4, d=128, vocab=1000, context=128, device="cpu"),
                                      torch.randint(0, 1000, (1, 16))),
        "GPT 12 layers, 74 modules": (GPT(layers=12, heads=4, d=64, vocab=1000, context=128, device="cpu"),
                                       torch.randint(0, 1000, (1, 16))),
    }
    try:
        llama = llama7b_meta()
        models["Llama-7B shape on meta, 423 modules"] = (llama, torch.randint(0, 32000, (1, 16), device="meta"))
    except ImportError:
        pass
    print("\nFixed cost of one counting block, us (median of %d): enter (registering the module tree and hooks), "
          "exit (rolling the flat table up to modules, phases and ops), with one small forward inside\n" % reps)
    print("| model | modules | enter | forward inside | exit | empty block, no model given |")
    print("|---|---|---|---|---|---|")
    for name, (model, x) in models.items():
        parts = []
        empty = []
        for _ in range(reps + 1):
            c = fd.count(model)
            t0 = time.perf_counter()
            c.__enter__()
            t1 = time.perf_counter()
            with torch.no_grad():
                model(x)
            t2 = time.perf_counter()
            c.__exit__(None, None, None)
            t3 = time.perf_counter()
            parts.append((t1 - t0, t2 - t1, t3 - t2))
            t4 = time.perf_counter()
            with fd.count():
                pass
            empty.append(time.perf_counter() - t4)
        parts, empty = parts[1:], empty[1:]
        med = [statistics.median(p[i] for p in parts) * 1e6 for i in range(3)]
        print(f"| {name} | {len(list(model.modules()))} | {med[0]:.0f} | {med[1]:.0f} | {med[2]:.0f} | "
              f"{statistics.median(empty) * 1e6:.0f} |")


# The two ideas measured here earlier (one parameter walk at block open; roll-ups per (scope, phase),
# deferred to the first module query) are now in the library: see NOTES.md for their outcome.


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    per_op(args.reps, args.steps)
    block_cost(args.reps)


if __name__ == "__main__":
    main()
