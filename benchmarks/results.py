"""Reading a finished count on a ~1,200-module model: building the results, table(), repeated queries.

    python benchmarks/results.py              # this checkout
    python benchmarks/results.py --src DIR    # another checkout's flopdispatch (e.g. main before a change)

The model: 109 blocks in a ModuleList, each block a Sequential of 4 Linear(16, 16) with a
LayerNorm, a GELU and a Dropout in between plus the block itself (11 modules a block, 1,201 in all),
run forward and backward once (batch 4). Times are wall seconds of one run each (pure Python:
no warm-up needed beyond the first read, which is what "results" measures).
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


def main():
    torch.manual_seed(0)
    model = Net()
    n_modules = len(list(model.modules()))
    x = torch.randn(4, 16)
    with fd.count(model) as c:
        model(x).sum().backward()
    t0 = time.perf_counter()
    c.module("")  # the first read builds the results
    t1 = time.perf_counter()
    text = c.table(depth="all")
    t2 = time.perf_counter()
    c.table(depth="all")
    t3 = time.perf_counter()
    for name in c.module_names:
        c.module(name, "backward", exclusive=True)
    t4 = time.perf_counter()
    print(f"{n_modules} modules, {len(text.splitlines())} table lines")
    print(f"results (first read): {t1 - t0:.3f} s")
    print(f"table(depth='all') first: {t2 - t1:.3f} s, again: {t3 - t2:.3f} s")
    print(f"module(name, 'backward', exclusive=True) for every module: {t4 - t3:.3f} s")


if __name__ == "__main__":
    main()
