"""One simulated rank of a Llama-3-405B-shaped training step on fsdp=64 x tp=8 (512 ranks):
126 layers, hidden 16384, 128 heads, 8 KV heads, FFN 53248, vocabulary 128256, sequence 8192,
batch 1 per data-parallel rank, bf16 mixed precision (fp32 reduce), AdamW (--checkpoint: activation
checkpointing of every layer). Prints the rank's table (with whether it fits an H100), the wall
time, the peak resident memory of this process and the load average before and after. Run alone:
`nice python benchmarks/plan_405b.py`."""
import os
import resource
import time

CONFIG = dict(num_hidden_layers=126, hidden_size=16384, num_attention_heads=128, num_key_value_heads=8,
              intermediate_size=53248, vocab_size=128256, max_position_embeddings=8192)


def main(checkpoint: bool):
    from flopdispatch.plan import simulate

    load = os.getloadavg()
    start = time.perf_counter()
    sim = simulate("hf:llama", {"fsdp": 64, "tp": 8}, config=CONFIG, rank=0, batch=1, seq=8192,
                   mixed_precision="bf16", reduce_dtype="fp32", checkpoint=checkpoint)
    wall = time.perf_counter() - start
    print(sim.table("H100"))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"simulated in {wall:.1f} s (model build, parallelism, one step, teardown); peak RSS {rss:.2f} GiB; "
          f"load average {load[0]:.2f} before, {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    import sys

    main(checkpoint="--checkpoint" in sys.argv[1:])
