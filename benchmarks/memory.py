"""Does counting leak? 10,000 training steps of a small MLP, counted three ways, with resident
memory and live Python objects sampled at steps 100, 1,000, 5,000 and 10,000:

  eager        no counter (the control: what the allocator and autograd do on their own)
  block/step   each step inside its own `with flopdispatch.count(model) as c:` block, whose
               totals are read and kept (an int per step), the count object dropped
  one block    one `with flopdispatch.count(model):` around all 10,000 steps

Then, with weakref: no tensor made inside a block (input, activations, output, loss) and not the
model itself is kept alive by a finished count, and the global hooks are gone.

    python benchmarks/memory.py [--steps 10000]

Memory is the process's resident set (/proc/self/statm); the three runs share one process and run
in the order above, so each one starts from the high-water mark of the one before.
"""
import argparse
import gc
import os
import time
import weakref

import torch
import torch.nn as nn
import torch.nn.functional as F

import flopdispatch as fd

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2 ** 20


def make():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(16, 32)
    y = torch.randint(0, 10, (16,))
    return model, opt, x, y


def train_step(model, opt, x, y):
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss


def run(kind, steps, marks):
    model, opt, x, y = make()
    samples = {}
    totals = []
    gc.collect()
    start_rss, start_objs = rss_mib(), len(gc.get_objects())
    t = time.perf_counter()

    def sample(i):
        if i in marks:
            gc.collect()
            samples[i] = (rss_mib(), len(gc.get_objects()))

    if kind == "one block":
        with fd.count(model) as c:
            for i in range(1, steps + 1):
                train_step(model, opt, x, y)
                sample(i)
        totals.append(c.flops)
    else:
        for i in range(1, steps + 1):
            if kind == "eager":
                train_step(model, opt, x, y)
            else:
                with fd.count(model) as c:
                    train_step(model, opt, x, y)
                totals.append(c.flops)
                del c
            sample(i)
    elapsed = time.perf_counter() - t
    return start_rss, start_objs, samples, elapsed, totals


def check_references():
    """A finished count keeps no tensor made in the block and not the model."""
    model, opt, x, y = make()
    with fd.count(model) as c:
        inp = torch.randn(16, 32)
        out = model(inp)
        loss = F.cross_entropy(out, y)
        loss.backward()
        opt.step()
    refs = {"input": weakref.ref(inp), "output": weakref.ref(out), "loss": weakref.ref(loss),
            "a weight's grad": weakref.ref(model[0].weight.grad)}
    del inp, out, loss
    model[0].weight.grad = None
    model_ref = weakref.ref(model)
    del model, opt
    gc.collect()
    alive = [name for name, r in refs.items() if r() is not None]
    if model_ref() is not None:
        alive.append("model")
    hooks = torch.nn.modules.module
    leftover = (len(hooks._global_forward_pre_hooks) + len(hooks._global_forward_hooks))
    assert c.flops > 0  # the count is still alive and readable
    return alive, leftover, c


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    marks = [m for m in (100, 1000, 5000, 10000) if m <= args.steps]
    if args.steps not in marks:
        marks.append(args.steps)
    print(f"MLP 32-64-64-10, batch 16, SGD with momentum; {args.steps} training steps "
          f"(forward, loss, backward, optimizer step); torch {torch.__version__}, 1 thread\n")
    print("| run | RSS at start, MiB | " + " | ".join(f"RSS at {m}" for m in marks) +
          " | growth 100 -> last | Python objects at 100 -> last | seconds |")
    print("|---|---|" + "---|" * len(marks) + "---|---|---|")
    flops = {}
    for kind in ("eager", "block per step", "one block"):
        start_rss, start_objs, s, elapsed, totals = run(kind, args.steps, set(marks))
        first, last = s[marks[0]], s[marks[-1]]
        print(f"| {kind} | {start_rss:.1f} | " + " | ".join(f"{s[m][0]:.1f}" for m in marks) +
              f" | {last[0] - first[0]:+.1f} MiB | {first[1]} -> {last[1]} ({last[1] - first[1]:+d}) | {elapsed:.1f} |")
        flops[kind] = totals
    per_step = flops["block per step"]
    first, steady = per_step[0], per_step[-1]
    print(f"\nFLOPs per step (block per step): first step {first:,} (SGD creates its momentum buffers), "
          f"every later step {steady:,}: " + ("constant" if set(per_step[1:]) == {steady} else "NOT constant"))
    one = flops["one block"][0]
    expect = first + (len(per_step) - 1) * steady
    print(f"FLOPs of the one block: {one:,}; first + {len(per_step) - 1} x later = {expect:,}: " +
          ("equal" if one == expect else "DIFFERENT"))
    alive, leftover, _ = check_references()
    print("After a finished block: " + ("no tensor and not the model is kept alive" if not alive else
                                        f"STILL ALIVE: {', '.join(alive)}") +
          f"; global module hooks left: {leftover}")


if __name__ == "__main__":
    main()
