"""Four meshes of 512 GPUs for one Llama-3-405B-shaped training step (plan_405b.py's model: 126
layers, hidden 16384, 128 heads, 8 KV heads, FFN 53248, vocabulary 128256), sequence 8192, the same
global batch on every mesh (default 128 sequences, 1M tokens: --global-batch N), bf16 mixed
precision (fp32 reduce), activation checkpointing of every layer (--no-checkpoint: without), AdamW:
rank 0 of each mesh (every stage of the pipeline mesh) simulated in this one process, one comparison
table on H100s (fits: the memory peak against 90% of 80 GiB; * the best mesh that fits).
The issue's target: the four in under 5 minutes. Prints the wall time, each simulation's, the peak
resident memory and the load average before and after. Run alone: `nice python benchmarks/plan_compare_405b.py`.

The meshes: FSDP2 x TP 8 (Llama 3's TP inside the node), FSDP2 x TP 4, HSDP (2 replicas of fsdp 64)
x TP 4, and 4 pipeline stages (1F1B, one sequence per micro-batch) x FSDP2 16 x TP 8.
fsdp=32,tp=16 is not one: tp must divide the 8 KV heads."""
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plan_405b import CONFIG  # noqa: E402

MESHES = ["fsdp=64,tp=8", "fsdp=128,tp=4", "dp=2,fsdp=64,tp=4", "pp=4,fsdp=16,tp=8"]


def main(checkpoint: bool, global_batch: int):
    from flopdispatch.plan import compare, compare_text

    load = os.getloadavg()
    start = time.perf_counter()
    sims = compare("hf:llama", MESHES, config=CONFIG, global_batch=global_batch, seq=8192, mixed_precision="bf16",
                   reduce_dtype="fp32", checkpoint=checkpoint)
    wall = time.perf_counter() - start
    print(compare_text(sims, "H100"))
    for sim in sims:
        where = f"stage {sim.stage}" if sim.schedule else f"rank {sim.rank}"
        print(f"  {','.join(f'{k}={v}' for k, v in sim.mesh.items())} {where}: batch {sim.batch}; "
              f"{sim.fit('H100').text()}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"{len(MESHES)} meshes ({len(sims)} ranks) simulated in {wall:.1f} s "
          f"({', '.join(f'{s.seconds:.1f}' for s in sims)} s each); "
          f"peak RSS {rss:.2f} GiB; load average {load[0]:.2f} before, {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    args = sys.argv[1:]
    size = int(args[args.index("--global-batch") + 1]) if "--global-batch" in args else 128
    main(checkpoint="--no-checkpoint" not in args, global_batch=size)
