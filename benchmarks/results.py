"""Reading a finished count on a ~1,200-module model: building the results, table(), repeated queries.

    python benchmarks/results.py              # this checkout
    python benchmarks/results.py --src DIR    # another checkout's flopdispatch (e.g. main before a change)

The model: 109 blocks in a ModuleList, each block a Sequential of 4 Linear(16, 16) with a
LayerNorm, a GELU and a Dropout in between plus the block itself (11 modules a block, 1,201 in all),
run forward and backward once (batch 4). Times are wall seconds, the best of 5 (the machine is
shared and noisy); "results" forgets what an earlier read built before each repetition, so it is
the first read's cost; rich (the table renderer) is imported before timing.
"""
import os
import sys
import time

if "--src" in sys.argv:
    sys.path.insert(0, sys.argv[sys.argv.index("--src") + 1])
else:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import flopdispatch as fd  # noqa: E402


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(16, 16), nn.GELU(), nn.Linear(16, 16), nn.LayerNorm(16),
                                  nn.Linear(16, 16), nn.Dropout(0.0), nn.Linear(16, 16))
        self.norm = nn.LayerNorm(16)
        self.skip = nn.Identity()

    def forward(self, x):
        return self.norm(self.body(x) + self.skip(x))


class Net(nn.Module):
    def __init__(self, n=109):
        super().__init__()
        self.blocks = nn.ModuleList(Block() for _ in range(n))

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return x


def _best(fn, reps=5):
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    import rich.console  # noqa: F401  (the table renderer's import, once per process: not timed)

    torch.manual_seed(0)
    model = Net()
    n_modules = len(list(model.modules()))
    x = torch.randn(4, 16)
    with fd.count(model) as c:
        model(x).sum().backward()

    def fresh():
        c._results = None  # forget what a read built: the next read builds the results again

    def build():
        fresh()
        c.module("")  # the first read builds the results

    def build_and_table():
        fresh()
        c.table(depth="all")

    t_build = _best(build)
    t_both = _best(build_and_table)
    c.table(depth="all")
    t_again = _best(lambda: c.table(depth="all"))
    names = c.module_names
    t_queries = _best(lambda: [c.module(n, "backward", exclusive=True) for n in names])
    print(f"{n_modules} modules, {len(c.table(depth='all').splitlines())} table lines (best of 5 each)")
    print(f"results (first read): {t_build:.3f} s")
    print(f"results + table(depth='all'): {t_both:.3f} s")
    print(f"table(depth='all') again: {t_again:.4f} s")
    print(f"module(name, 'backward', exclusive=True) for every module, again: {t_queries:.4f} s")


if __name__ == "__main__":
    main()
