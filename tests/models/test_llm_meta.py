"""Large language models counted on the meta device from configs, without weights."""
import pytest
import torch

import flopdispatch as fd

transformers = pytest.importorskip("transformers")


def llama_forward_macs(tokens, hidden, kv_dim, mlp, vocab, layers):
    """Closed form: per layer q, o (T*h*h each), k, v (T*h*kv each), QK^T and AV (T*T*h each),
    gate/up/down (T*h*I each); then the LM head T*h*V."""
    per_layer = 2 * tokens * hidden * hidden + 2 * tokens * hidden * kv_dim + 2 * tokens * tokens * hidden \
        + 3 * tokens * hidden * mlp
    return layers * per_layer + tokens * hidden * vocab


def _llama(**kw):
    cfg = transformers.LlamaConfig(**kw)
    with torch.device("meta"):
        return transformers.LlamaForCausalLM(cfg)


@pytest.mark.slow  # builds Llama-70B on meta
def test_llama_70b_forward_on_meta_exact():
    # 70B: hidden 8192, 80 layers, 64 heads (dim 128), 8 KV heads (kv dim 1024), MLP 28672, vocab 32000
    model = _llama(hidden_size=8192, num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8,
                   intermediate_size=28672, vocab_size=32000, max_position_embeddings=4096)
    ids = torch.randint(0, 32000, (1, 4096), device="meta")
    with torch.no_grad(), fd.count(model) as c:
        model(ids)
    assert c.macs == llama_forward_macs(4096, 8192, 1024, 28672, 32000, 80)  # 303,439,439,462,400
    assert c.unsupported == {}
    assert 68e9 < c.params < 70e9  # speed is measured by benchmarks/, never asserted in a test


def test_small_llama_training_step_matches_flopcountermode():
    from torch.utils.flop_counter import FlopCounterMode

    kw = dict(hidden_size=256, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
              intermediate_size=512, vocab_size=1000, max_position_embeddings=128)
    model = _llama(**kw)
    ids = torch.randint(0, 1000, (2, 64), device="meta")
    with fd.count(model) as c:
        model(ids, labels=ids).loss.backward()
    model.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as fcm:
        model(ids, labels=ids).loss.backward()
    assert 2 * c.macs == fcm.get_total_flops()
    assert c.unsupported == {}
    fwd = llama_forward_macs(64, 256, 64, 512, 1000, 2) * 2  # batch 2
    assert c.phase("forward").macs == fwd
    # backward: each matmul once for the grad of its input and once for its weight (the first
    # matmuls' input, the embedding output, requires grad), and the math-path attention products
    # twice: exactly 2x forward
    assert c.phase("backward").macs == 2 * fwd


def test_llama_70b_training_step_on_meta():
    model = _llama(hidden_size=8192, num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8,
                   intermediate_size=28672, vocab_size=32000, max_position_embeddings=4096)
    ids = torch.randint(0, 32000, (1, 4096), device="meta")
    with fd.count(model) as c:
        model(input_ids=ids, labels=ids).loss.backward()
    fwd = llama_forward_macs(4096, 8192, 1024, 28672, 32000, 80)
    assert c.phase("forward").macs == fwd
    # every matmul's input requires grad (the embedding output does), so backward computes the
    # grad of both operands of every product: 2x forward; total 3x = 910,318,318,387,200 MACs
    assert c.phase("backward").macs == 2 * fwd
    assert c.macs == 3 * fwd
    assert c.unsupported == {}
