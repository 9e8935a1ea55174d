"""``flopdispatch demo [options]``: a GPT-2-small training step on the meta device (no memory, no
compute), counted and compared with the 6 * N rule of thumb."""
from __future__ import annotations

import argparse
import sys
import time

from ._shared import CLIError, check_output_paths, command_line, display, emit


def add_parser(subparsers, parents) -> argparse.ArgumentParser:
    demo = subparsers.add_parser("demo", parents=[parents.display, parents.measure],
                                 help="count a GPT-2-small training step on the meta device")
    demo.add_argument("--batch", type=int, default=1, help="sequences per step (default 1)")
    demo.add_argument("--seq", type=int, default=1024, help="tokens per sequence (default 1024)")
    demo.add_argument("--device", default="meta", help="meta (default) or cpu")
    return demo


def run(args, argv) -> int:
    """Count the GPT-2-small training step; the table, per-phase figures and the 6 * N comparison on stdout."""
    import torch

    from .._demo import GPT
    from ..counter import count
    from ..report import human, print_report
    from ..schema import Report, default_meta

    if args.batch < 1 or not 1 <= args.seq <= 1024:
        raise CLIError("--batch must be >= 1 and --seq between 1 and 1024")
    if args.device not in ("meta", "cpu"):
        raise CLIError(f"--device {args.device!r}: the demo runs on meta or cpu")
    check_output_paths(args)
    batch, seq, device = args.batch, args.seq, args.device
    model = GPT(device=device)
    idx = torch.randint(0, 50257, (batch, seq), device=device)
    t0 = time.perf_counter()
    try:
        counter = count(model, timing=args.timing, ignore=args.ignore, activations=args.activations)
    except ValueError as e:
        raise CLIError(f"--ignore: {e}") from None
    with counter as c:
        loss = model(idx, targets=idx)
        loss.backward()
    meta = default_meta(mode="demo", target=f"GPT-2 small training step, {batch} x {seq} tokens",
                        command=command_line(argv), duration_s=round(time.perf_counter() - t0, 3),
                        inputs=[f"{batch}x{seq}:int64"], train=True, model_class="GPT", devices=[device],
                        dtypes=["float32", "int64"])
    report = Report.from_count(c, meta=meta)
    quiet = args.quiet or args.json == "-"
    if not quiet:
        tokens, n = batch * seq, c.params
        print(f"GPT-2 small ({human(n)} parameters), training step on {device}, {batch} x {seq} tokens\n")
        sys.stdout.flush()
        print_report(report, sys.stdout, summary=False, **display(args))
        print()
        for phase in ("forward", "backward", "optimizer", "other"):
            p = c.phase(phase)
            if p.calls:
                print(f"{phase:>9}: {human(p.flops, 'FLOPs'):>13}  {human(p.macs, 'MACs'):>12}")
        print(f"FLOPs per token: {human(c.flops / tokens)}; rule of thumb 6 * N = {human(6 * n)} "
              f"(ratio {c.flops / tokens / (6 * n):.3f})")
        if c.causal_macs != c.macs:
            print(f"causal-aware: {human(c.causal_macs, 'MACs')} of {human(c.macs, 'MACs')} dense "
                  f"({100 * (1 - c.causal_macs / c.macs):.1f}% of MACs fall on masked positions)")
        else:
            print("causal-aware figure: none here (on meta, SDPA decomposes to plain matmuls and the causal "
                  "mask becomes an explicit tensor; run with --device cpu to see it)")
    args.quiet = True
    emit(report, args, sys.stdout)
    return 0
