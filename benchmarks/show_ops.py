"""`flopdispatch show --by op` on a synthetic report with many ops: load + render time.

    python benchmarks/show_ops.py 40000 1300000          # each size: JSON parse + validate, render
    python benchmarks/show_ops.py --show 40000           # the whole `flopdispatch show --by op` in-process
    python benchmarks/show_ops.py --src /tmp/old 40000   # the same with another checkout's flopdispatch

The report has N distinct op names (as a report of a traced/compiled graph with per-node names
can), each with forward and backward phases, and a two-module tree. Times are wall seconds of one
run on this machine (no warm-up: rendering is pure Python). Issue 11: before the fix, 40,000 ops
took 25 s and 1.3 M ops more than 300 s (a linear scan per op: quadratic).
"""
import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time

if __name__ == "__main__" and "--src" in sys.argv:  # time another checkout (e.g. the code before a fix)
    sys.path.insert(0, sys.argv[sys.argv.index("--src") + 1])
else:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from flopdispatch.schema import SCHEMA  # noqa: E402


def counts(i, scale=1):
    return {"flops": (2 * i + 2) * scale, "macs": (i + 1) * scale, "bytes_read": 8 * i + 16,
            "bytes_written": 4 * i + 8, "causal_macs": (i + 1) * scale, "calls": 1 + i % 7}


def synthetic_report(n_ops: int) -> dict:
    """A valid flopdispatch.report/2 document with n_ops ops (largest FLOPs first)."""
    ops = []
    for i in range(n_ops - 1, -1, -1):
        c = counts(i)
        ops.append({"name": f"aten::op_{i}", **c,
                    "phases": {"forward": counts(i // 2), "backward": counts(i - i // 2)}})
    total = {f: sum(o[f] for o in ops) for f in counts(0)}
    row = ("calls", "flops", "macs", "bytes_read", "bytes_written", "causal_macs")
    scope = {"module": 1, "path": [0, 1], "ops": {p: {o["name"]: [o["phases"][p][f] for f in row] for o in ops}
                                                  for p in ("forward", "backward")}}
    return {"schema": SCHEMA, "meta": {"mode": "api", "target": f"{n_ops} ops"}, "params": 10, "trainable_params": 10,
            "totals": total, "phases": {"forward": total}, "ops": ops, "unsupported": [],
            "modules": [{"name": "", "type": "Net", "params": 10, "trainable_params": 10, **total, "phases": {}},
                        {"name": "fc", "type": "Linear", "params": 10, "trainable_params": 10, **total,
                         "phases": {}}],
            "scopes": [scope]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("sizes", nargs="+", type=int)
    parser.add_argument("--show", action="store_true", help="time the CLI (load + render) instead of the parts")
    parser.add_argument("--src", help="the checkout whose flopdispatch to time (default: this one)")
    args = parser.parse_args()
    import flopdispatch as fd
    from flopdispatch import cli

    print(f"flopdispatch from {os.path.dirname(fd.__file__)}", flush=True)
    from flopdispatch.report import render_text

    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "r.json")
            with open(path, "w") as f:
                json.dump(synthetic_report(n), f)  # the dict is freed before the timed part
            size = os.path.getsize(path)
            if args.show:
                t0, c0 = time.perf_counter(), time.process_time()
                with contextlib.redirect_stdout(io.StringIO()) as out:
                    rc = cli.main(["show", path, "--by", "op"])
                t1, c1 = time.perf_counter(), time.process_time()
                print(f"{n:>9,} ops ({size / 1e6:.0f} MB): show --by op {t1 - t0:.2f} s (CPU {c1 - c0:.2f} s, "
                      f"exit {rc}, {len(out.getvalue()) / 1e6:.1f} MB of text)", flush=True)
                continue
            t0, c0 = time.perf_counter(), time.process_time()
            report = fd.Report.load(path)
            t1, c1 = time.perf_counter(), time.process_time()
            text = render_text(report, by="op")
            t2, c2 = time.perf_counter(), time.process_time()
        # wall seconds, and this process's CPU seconds (what a shared, loaded machine does not inflate)
        print(f"{n:>9,} ops ({size / 1e6:.0f} MB): load {t1 - t0:.2f} s (CPU {c1 - c0:.2f} s), render --by op "
              f"{t2 - t1:.2f} s (CPU {c2 - c1:.2f} s) ({len(text) / 1e6:.1f} MB of text)", flush=True)


if __name__ == "__main__":
    main()
