"""Four meshes of 64 GPUs for one Llama-3-8B-shaped training step (32 layers, hidden 4096, 32 heads,
8 KV heads, FFN 14336, vocabulary 128256), sequence 8192, the same global batch on every mesh (64
sequences, 0.5M tokens), bf16 mixed precision, activation checkpointing, AdamW: rank 0 of each mesh
(every stage of the pipeline mesh) simulated, one comparison table (H100). Prints the wall time.
Run alone: `nice python benchmarks/plan_compare.py`.

The meshes: FSDP2 over all 64, HSDP (8 replicas of FSDP2 inside a node), FSDP2 x TP 2, and 4
pipeline stages (1F1B, one sequence per micro-batch) x FSDP2 16."""
import os
import time

CONFIG = dict(num_hidden_layers=32, hidden_size=4096, num_attention_heads=32, num_key_value_heads=8,
              intermediate_size=14336, vocab_size=128256, max_position_embeddings=8192)
MESHES = ["fsdp=64", "dp=8,fsdp=8", "fsdp=32,tp=2", "pp=4,fsdp=16"]


def main():
    from flopdispatch.plan import compare, compare_text

    load = os.getloadavg()
    start = time.perf_counter()
    sims = compare("hf:llama", MESHES, config=CONFIG, global_batch=64, seq=8192, mixed_precision="bf16",
                   checkpoint=True)
    wall = time.perf_counter() - start
    print(compare_text(sims, "H100"))
    print(f"{len(MESHES)} meshes ({len(sims)} ranks) simulated in {wall:.1f} s "
          f"({', '.join(f'{s.seconds:.1f}' for s in sims)} s each); load average {load[0]:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
