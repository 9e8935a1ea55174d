"""Four meshes of 64 GPUs for one Llama-3-8B-shaped training step (32 layers, hidden 4096, 32 heads,
8 KV heads, FFN 14336, vocabulary 128256), sequence 8192, batch 1 per data-parallel rank, bf16 mixed
precision, activation checkpointing, AdamW: rank 0 of each simulated, one comparison table (H100).
Prints the wall time of all four. Run alone: `nice python benchmarks/plan_compare.py`."""
import time

CONFIG = dict(num_hidden_layers=32, hidden_size=4096, num_attention_heads=32, num_key_value_heads=8,
              intermediate_size=14336, vocab_size=128256, max_position_embeddings=8192)
MESHES = ["fsdp=64", "dp=8,fsdp=8", "fsdp=32,tp=2", "fsdp=8,tp=8"]


def main():
    from flopdispatch.plan import compare, compare_text

    start = time.perf_counter()
    sims = compare("hf:llama", MESHES, config=CONFIG, batch=1, seq=8192, mixed_precision="bf16", checkpoint=True)
    wall = time.perf_counter() - start
    print(compare_text(sims, "H100"))
    print(f"4 meshes simulated in {wall:.1f} s ({', '.join(f'{s.seconds:.1f}' for s in sims)} s each)")


if __name__ == "__main__":
    main()
