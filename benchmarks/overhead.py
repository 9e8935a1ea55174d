"""Per-op counting overhead, side by side in one run: eager, a no-op dispatch mode (the floor of
the design), flopdispatch (compiled table), flopdispatch with the Python reference formulas, and
PyTorch's FlopCounterMode. Interleaved repetitions, medians. Usage:

    python benchmarks/overhead.py [--reps 7] [--steps 20]
"""
import argparse
import contextlib
import statistics
import time

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

import flopdispatch as fd
from bench import NoopMode, OpCounter  # the reference modes, defined once (bench.py)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = nn.Sequential(*[nn.Linear(8, 8) for _ in range(20)])
    x = torch.randn(4, 8, requires_grad=True)

    def step():
        model(x).sum().backward()

    counter = OpCounter()
    with counter:
        step()
    contexts = {
        "eager": contextlib.nullcontext,
        "no-op mode": NoopMode,
        "flopdispatch": lambda: fd.count(model),
        "flopdispatch (Python formulas)": lambda: fd.count(model, python_formulas=True),
        "FlopCounterMode": lambda: FlopCounterMode(display=False),
    }
    times = {k: [] for k in contexts}
    for make in contexts.values():  # warm-up (imports, op caches)
        with make():
            step()
    for _ in range(args.reps):
        for name, make in contexts.items():
            with make():
                t = time.perf_counter()
                for _ in range(args.steps):
                    step()
                times[name].append((time.perf_counter() - t) / args.steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"20-Linear MLP (8 wide), forward + backward, {counter.n} aten ops per step, 1 thread, "
          f"median of {args.reps} x {args.steps} steps\n")
    print("| counter | ms / step | x eager | us / op over the no-op mode |")
    print("|---|---|---|---|")
    for name in contexts:
        over = (med[name] - med["no-op mode"]) / counter.n * 1e6
        print(f"| {name} | {med[name] * 1e3:.3f} | {med[name] / med['eager']:.2f} | {over:+.2f} |")


if __name__ == "__main__":
    main()
