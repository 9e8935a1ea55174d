"""The per-block fixed cost of ``count``: entering (registering the model's tree and the hooks),
leaving (the recorder detached, results kept) and reading ``c.flops`` once, on big module trees.

Workloads (CPU, one thread): a 20 x Linear(8, 8) MLP (21 modules, forward + backward), the demo
GPT with 12 layers (90 modules, d 64, 1 x 16 tokens, forward + backward), and a Llama-2-7B-shaped
LlamaForCausalLM on the meta device (423 modules, 1 x 16 tokens, forward under no_grad).

For each workload, one repetition times, in this order: enter, the work inside the block, exit,
the first read of ``c.flops``; then the same work without a counter ("plain"). Reported: medians
over the repetitions, in microseconds, and "block" = enter + exit + first read (the cost a count
per step adds besides the per-op cost).

Paired before/after: ``--compare DIR`` runs this script in child processes, alternately with
PYTHONPATH=DIR (the code before) and with this checkout, ``--rounds`` times, and reports the
median of each child's medians side by side (interleaving keeps the machine's slow spells out of
the comparison).

    python benchmarks/fixed_cost.py                          # this checkout only
    python benchmarks/fixed_cost.py --compare /work/main     # before (DIR) vs after (this checkout)
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PARTS = ("enter", "inside", "exit", "read", "plain")


def workloads():
    import torch
    import torch.nn as nn

    from flopdispatch._demo import GPT

    torch.manual_seed(0)
    mlp = nn.Sequential(*[nn.Linear(8, 8) for _ in range(20)])
    x = torch.randn(4, 8)

    def mlp_step():
        mlp(x).sum().backward()

    gpt = GPT(layers=12, heads=4, d=64, vocab=1000, context=128, device="cpu")
    idx = torch.randint(0, 1000, (1, 16))

    def gpt_step():
        gpt(idx, targets=idx).backward()

    out = {"MLP, 21 modules, fwd+bwd": (mlp, mlp_step), "GPT 12 layers, 90 modules, fwd+bwd": (gpt, gpt_step)}
    try:
        from bench import llama7b_meta  # the benchmarks' big model, defined once (bench.py)

        llama = llama7b_meta()
        tokens = torch.randint(0, 32000, (1, 16), device="meta")

        def llama_fwd():
            with torch.no_grad():
                llama(tokens)

        out["Llama-7B shape on meta, 423 modules, fwd"] = (llama, llama_fwd)
    except ImportError:
        pass
    return out


def child(reps):
    import torch

    import flopdispatch as fd

    torch.set_num_threads(1)
    results = {}
    for name, (model, step) in workloads().items():
        rows = []
        for i in range(reps + 2):  # two warm-up repetitions
            gc.collect()
            c = fd.count(model)
            t0 = time.perf_counter()
            c.__enter__()
            t1 = time.perf_counter()
            step()
            t2 = time.perf_counter()
            c.__exit__(None, None, None)
            t3 = time.perf_counter()
            c.flops
            t4 = time.perf_counter()
            step()
            t5 = time.perf_counter()
            if i >= 2:
                rows.append((t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4))
        med = {p: statistics.median(r[k] for r in rows) * 1e6 for k, p in enumerate(PARTS)}
        med["block"] = med["enter"] + med["exit"] + med["read"]
        med["modules"] = len(list(model.modules()))
        results[name] = med
    print(json.dumps(results))


def run_child(path, reps):
    env = dict(os.environ, PYTHONPATH=path)
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", "--reps", str(reps)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", metavar="DIR", help="the code before (a checkout), run interleaved")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.reps)
        return
    contenders = ([("before", os.path.abspath(args.compare))] if args.compare else []) + [("after", ROOT)]
    runs = {label: [] for label, _ in contenders}
    for _ in range(args.rounds):
        for label, path in contenders:
            runs[label].append(run_child(path, args.reps))
    print(f"Fixed cost of one counting block, us: median over {args.rounds} child processes (alternating) of "
          f"medians of {args.reps} repetitions; 'block' = enter + exit + first read of c.flops\n")
    print("| model | code | enter | exit | read c.flops | block | work inside | same work, no counter |")
    print("|---|---|---|---|---|---|---|---|")
    for name in runs[contenders[0][0]][0]:
        for label, _ in contenders:
            med = {p: statistics.median(r[name][p] for r in runs[label]) for p in PARTS + ("block",)}
            print(f"| {name} | {label} | {med['enter']:.0f} | {med['exit']:.0f} | {med['read']:.0f} | "
                  f"{med['block']:.0f} | {med['inside']:.0f} | {med['plain']:.0f} |")


if __name__ == "__main__":
    main()
