"""A tiny training script: an MLP, SGD, a few steps on random data, on the CPU.

    python train.py --steps 2
    flopdispatch run --depth 1 train.py --steps 2                       # counted, one process
    torchrun --nproc-per-node 2 -m flopdispatch run --timing --depth 1 --json out.json train.py

Under torchrun (RANK and WORLD_SIZE set) it joins a gloo process group and wraps the model in
DistributedDataParallel: each rank trains on its own batch of 32, and DDP all-reduces gradients.
"""
import argparse
import os

import torch
import torch.nn as nn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32, help="samples per rank and step")
    args = parser.parse_args()

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    if distributed:
        model = DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(args.steps):
        x, y = torch.randn(args.batch, 64), torch.randint(0, 10, (args.batch,))
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
