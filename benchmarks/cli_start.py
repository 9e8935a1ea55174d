"""Command-line start-up: wall seconds of whole `flopdispatch ...` processes, before and after (issue 21).

    python benchmarks/cli_start.py                         # this checkout only
    python benchmarks/cli_start.py --before /tmp/old -n 7  # another checkout's flopdispatch side by side

Each case is a fresh ``python -m flopdispatch ...`` subprocess (PYTHONPATH = the checkout), run N
times interleaved between the checkouts; the table gives the median wall seconds, the median CPU
seconds of the child (user + system: what a shared, busy machine inflates least), and whether the
process had imported torch (``-X importtime`` is not used: it slows what it times).
The small report is the demo's (GPT-2 small, about 30 KB); the big one has 40,000 ops (show_ops.py's
synthetic report, about 16 MB). Targets (issue 21): --help and show of a small report under 0.3 s,
show --by op on 40,000 ops under 2 s.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# A child that reports, after the command, whether torch was imported (on stderr, last line).
CHILD = ("import sys, runpy\n"
         "sys.argv = ['flopdispatch'] + sys.argv[1:]\n"
         "try:\n"
         "    runpy.run_module('flopdispatch', run_name='__main__')\n"
         "except SystemExit:\n"
         "    pass\n"
         "finally:\n"
         "    sys.stderr.write('\\nTORCH=%d\\n' % ('torch' in sys.modules))\n")


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(src, args):
    """(wall seconds, CPU seconds of the child, whether it imported torch) of one run."""
    env = dict(os.environ, PYTHONPATH=src)
    c0, t0 = _child_cpu(), time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, cwd=tempfile.gettempdir())
    wall, cpu = time.perf_counter() - t0, _child_cpu() - c0
    torch_loaded = done.stderr.rstrip().endswith("TORCH=1")
    return wall, cpu, torch_loaded


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", help="another checkout (its root, holding flopdispatch/) to time alongside")
    parser.add_argument("-n", type=int, default=5, help="runs per case and checkout (default 5)")
    parser.add_argument("--ops", type=int, default=40000, help="ops in the big report (default 40,000)")
    args = parser.parse_args()

    sys.path.insert(0, HERE)
    from show_ops import synthetic_report

    sources = [("after", ROOT)] + ([("before", os.path.abspath(args.before))] if args.before else [])
    with tempfile.TemporaryDirectory() as tmp:
        small, big = os.path.join(tmp, "small.json"), os.path.join(tmp, "big.json")
        env = dict(os.environ, PYTHONPATH=ROOT)
        subprocess.run([sys.executable, "-m", "flopdispatch", "demo", "-q", "--json", small], env=env, check=True)
        with open(big, "w") as f:
            json.dump(synthetic_report(args.ops), f)
        cases = [("--help", ["--help"]), ("show small", ["show", small]),
                 ("show small --by op", ["show", small, "--by", "op"]),
                 ("show small --json -", ["show", small, "--json", "-"]),
                 ("show small --html", ["show", small, "-q", "--html", os.path.join(tmp, "p.html")]),
                 ("show 2 ranks", ["show", small, small.replace("small", "small1")]),
                 (f"show {args.ops:,} ops --by op", ["show", big, "--by", "op"])]
        # a second rank file for the rank merge: the same report, another rank
        with open(small) as f:
            data = json.load(f)
        for rank, path in ((0, small), (1, small.replace("small", "small1"))):
            data["meta"].update(rank=rank, world_size=2)
            with open(path, "w") as f:
                json.dump(data, f)
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {os.getloadavg()[0]:.1f} load; "
              f"median of {args.n} runs: wall seconds (the child's CPU seconds), torch imported?")
        header = f"{'case':<26}" + "".join(f"{name:>26}" for name, _ in sources)
        print(header)
        for label, argv in cases:
            times = {name: [] for name, _ in sources}
            cpus = {name: [] for name, _ in sources}
            torch_seen = {name: False for name, _ in sources}
            for _ in range(args.n):  # interleaved: a busy moment falls on both
                for name, src in sources:
                    wall, cpu, loaded = _run(src, argv)
                    times[name].append(wall)
                    cpus[name].append(cpu)
                    torch_seen[name] |= loaded
            cells = "".join(f"{statistics.median(times[n]):>9.2f} ({statistics.median(cpus[n]):.2f}) "
                            f"{'torch' if torch_seen[n] else 'no torch':>8}" for n, _ in sources)
            print(f"{label:<26}{cells}", flush=True)


if __name__ == "__main__":
    main()
