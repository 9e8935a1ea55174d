"""fd.Meter in steady state against plain eager training steps (issue 14).

The demo GPT (2 layers, 4 heads, d 128, vocab 1000) on CPU, one thread, batch 4, alternating two
sequence lengths (64 and 128 tokens): a training step is zero_grad, forward with the loss, backward
and an SGD step. Contenders, each in every repetition in rotating order, each timing one step of
each length per repetition:

  eager          the plain step
  fd.Meter       the step inside ``meter.step(tokens=...)`` (after the first two steps, which the
                 meter counts, every step is only timed)
  count per step the step inside a new ``fd.count(model)`` every time (what a user without the meter
                 would do), reading ``c.flops``

Reported: median ms per step, and the median over repetitions of each contender's time over the
eager time of the same repetition (paired). Before timing, the script checks that each metered
step's FLOPs equal a full count of the same step, and that exactly two steps were counted.

Then the meter's own cost per timed step, on a step whose kernels take no time (one Linear(2, 2)
forward), against a new count per step.

    python benchmarks/meter_overhead.py [--reps 41] [--small-reps 200]
"""
from __future__ import annotations

import argparse
import gc
import statistics
import time

import torch

import flopdispatch as fd
from flopdispatch._demo import GPT


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=41)
    parser.add_argument("--small-reps", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = GPT(layers=2, heads=4, d=128, vocab=1000, context=128, device="cpu").train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    batches = {n: torch.randint(0, 1000, (4, n)) for n in (64, 128)}

    def step(x):
        opt.zero_grad(set_to_none=True)
        model(x, targets=x).backward()
        opt.step()

    meter = fd.Meter(model)
    # correctness first: every metered step's FLOPs against a full count of the same step
    for i in range(6):
        x = batches[64 if i % 2 == 0 else 128]
        with meter.step(tokens=x.numel()):
            step(x)
        with fd.count(model) as c:
            step(x)
        assert meter.last.flops == c.flops, (i, meter.last.flops, c.flops)
    assert meter.counts_made == 2, meter.counts_made

    def eager():
        for x in batches.values():
            step(x)

    def metered():
        for x in batches.values():
            with meter.step(tokens=x.numel()):
                step(x)

    def count_per_step():
        for x in batches.values():
            with fd.count(model) as c:
                step(x)
            c.flops

    contenders = {"eager": eager, "fd.Meter": metered, "count per step": count_per_step}
    names = list(contenders)
    times = {n: [] for n in names}
    gc.collect()
    gc.freeze()
    for rep in range(args.reps + 2):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for n in order:
            gc.collect()
            t = time.perf_counter()
            contenders[n]()
            times[n].append((time.perf_counter() - t) / len(batches))
    for n in names:
        times[n] = times[n][2:]  # warm-up
    assert meter.counts_made == 2
    print(f"Demo GPT (2 layers, 4 heads, d 128, vocab 1000), CPU, 1 thread, batch 4, lengths 64 and 128 "
          f"alternating; training step (zero_grad, forward + loss, backward, SGD); {args.reps} paired repetitions; "
          f"steps counted by the meter: {meter.counts_made}\n")
    print("| contender | ms / step (median) | x eager (median of paired ratios) |")
    print("|---|---|---|")
    for n in names:
        ratios = sorted(a / b for a, b in zip(times[n], times["eager"]))
        q1, q3 = ratios[len(ratios) // 4], ratios[3 * len(ratios) // 4]
        print(f"| {n} | {statistics.median(times[n]) * 1e3:.2f} | {statistics.median(ratios):.3f} "
              f"(quartiles {q1:.3f}-{q3:.3f}) |")
    fixed_cost(args.small_reps)


def fixed_cost(reps):
    """The meter's own cost per timed step, free of kernels: one Linear(2, 2) forward per step, the
    best (minimum) of 20 timeit runs of `reps` steps for each contender, three times (the minimum is
    the figure least moved by a loaded machine)."""
    import timeit

    model, x = torch.nn.Linear(2, 2), torch.randn(1, 2)
    meter = fd.Meter(model)

    def eager():
        model(x)

    def metered():
        with meter.step():
            model(x)

    def counted():
        with fd.count(model) as c:
            model(x)
        c.flops

    metered()
    print(f"\nThe meter's own cost: one Linear(2, 2) forward per step, best of 20 x {reps} steps, us per step "
          f"(three runs):\n")
    print("| contender | us / step | over eager, us |")
    print("|---|---|---|")
    best = {n: [] for n in ("eager", "fd.Meter (timed step)", "count per step")}
    for _ in range(3):
        for n, f in zip(best, (eager, metered, counted)):
            best[n].append(min(timeit.repeat(f, number=reps, repeat=20)) / reps * 1e6)
    for n, ts in best.items():
        print(f"| {n} | {' / '.join(f'{t:.1f}' for t in ts)} | "
              f"{' / '.join(f'{t - e:+.1f}' for t, e in zip(ts, best['eager']))} |")
    assert meter.counts_made == 1


if __name__ == "__main__":
    main()
