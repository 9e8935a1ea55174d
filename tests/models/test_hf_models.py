"""Hugging Face architectures from configs, no weights, on meta: training steps, MoE, KV-cache decode."""
import pytest
import torch

import flopdispatch as fd

T = pytest.importorskip("transformers")

VOCAB = 1000
SMALL = {
    "gpt2": (lambda: T.GPT2Config(n_layer=2, n_head=4, n_embd=128, vocab_size=VOCAB, n_positions=128,
                                  bos_token_id=0, eos_token_id=0), T.GPT2LMHeadModel),
    "llama": (lambda: T.LlamaConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                                    num_key_value_heads=2, intermediate_size=256, vocab_size=VOCAB), T.LlamaForCausalLM),
    "mistral": (lambda: T.MistralConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                                        num_key_value_heads=2, intermediate_size=256, vocab_size=VOCAB),
                T.MistralForCausalLM),
    "bert": (lambda: T.BertConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=256, vocab_size=VOCAB), T.BertForMaskedLM),
    "t5": (lambda: T.T5Config(d_model=128, d_ff=256, num_layers=2, num_heads=4, d_kv=32, vocab_size=VOCAB,
                              decoder_start_token_id=0, pad_token_id=0), T.T5ForConditionalGeneration),
    "vit": (lambda: T.ViTConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
                                image_size=32, patch_size=8, num_labels=10), T.ViTForImageClassification),
}


def _build(name, device="meta"):
    make_cfg, cls = SMALL[name]
    with torch.device(device):
        return cls(make_cfg())


def _inputs(name, device="meta"):
    if name == "vit":
        return {"pixel_values": torch.randn(2, 3, 32, 32, device=device),
                "labels": torch.randint(0, 10, (2,), device=device)}
    ids = torch.randint(0, VOCAB, (2, 16), device=device)
    return {"input_ids": ids, "labels": ids}  # keyword inputs, labels for the loss


@pytest.mark.parametrize("name", list(SMALL))
def test_training_step_on_meta_matches_flopcountermode(name):
    from torch.utils.flop_counter import FlopCounterMode

    model, kw = _build(name), _inputs(name)
    with fd.count(model) as c:
        model(**kw).loss.backward()
    model.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as fcm:
        model(**kw).loss.backward()
    assert c.unsupported == {}
    assert 2 * c.macs == fcm.get_total_flops()
    ratio = c.phase("backward").macs / c.phase("forward").macs
    assert 1.9 <= ratio <= 2.0  # 2x, less the grad of inputs that need none (ViT's pixels)
    for field in ("flops", "macs", "bytes_read", "bytes_written"):
        assert sum(getattr(c.phase(p), field) for p in fd.PHASES) == getattr(c, field)


def test_mixtral_moe_on_meta_closed_form():
    # On meta the router's choices are unknown; every token goes to exactly top-k experts, so the
    # grouped expert matmuls cost tokens * k * (3 * hidden * intermediate) whichever experts win.
    cfg = T.MixtralConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                          intermediate_size=256, vocab_size=VOCAB, num_local_experts=4, num_experts_per_tok=2)
    with torch.device("meta"):
        model = T.MixtralForCausalLM(cfg).to(torch.bfloat16)  # grouped mm runs in bf16
    ids = torch.randint(0, VOCAB, (2, 16), device="meta")
    with torch.no_grad(), fd.count(model) as c:
        model(input_ids=ids)
    t, h, kv, i, e, k = 32, 128, 64, 256, 4, 2
    per_layer = (2 * t * h * h + 2 * t * h * kv      # q, o; k, v (2 KV heads of 32)
                 + 2 * 2 * 16 * 16 * h               # QK^T and AV: batch 2, 16 x 16 scores, 4 x 32 dims
                 + t * h * e                         # router
                 + t * k * 3 * h * i)                # top-2 experts, gate/up/down each
    assert c.macs == 2 * per_layer + t * h * VOCAB   # 20,119,552
    assert c.unsupported == {}


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_prefill_and_decode_step_counted_separately(device):
    model = _build("llama", device)
    ids = torch.randint(0, VOCAB, (1, 16), device=device)
    with torch.no_grad():
        with fd.count(model) as prefill:
            out = model(ids, use_cache=True)
        with fd.count(model) as decode:
            model(torch.randint(0, VOCAB, (1, 1), device=device), past_key_values=out.past_key_values,
                  use_cache=True)
    h, kv, i, layers = 128, 64, 256, 2
    # prefill, 16 tokens: projections and MLP per token, 16 x 16 scores over 128 dims twice, LM head
    assert prefill.macs == layers * (16 * (2 * h * h + 2 * h * kv + 3 * h * i) + 2 * 16 * 16 * h) + 16 * h * VOCAB
    # decode, 1 token attending to 17 cached positions
    assert decode.macs == layers * (2 * h * h + 2 * h * kv + 2 * 17 * h + 3 * h * i) + h * VOCAB


def test_rule_of_thumb_beside_the_count():
    model = _build("llama")
    ids = torch.randint(0, VOCAB, (4, 32), device="meta")
    with fd.count(model) as c:
        model(input_ids=ids, labels=ids).loss.backward()
    r = fd.rule_of_thumb(c, tokens=4 * 32, samples=4, layers=2, attn_dim=128, seq_len=32)
    assert r.training and r.params == c.params
    assert r.rule_per_token == 6 * c.params
    assert r.palm_per_token == 6 * c.params + 12 * 2 * 128 * 32
    assert r.matmul_flops_per_token == 2 * c.macs / 128
    assert r.flops_per_sample == c.flops / 4
    # the embedding table is a parameter but no matmul: the measured count sits below 6N here
    assert 0.5 < r.ratio_to_rule < 1.0
    with torch.no_grad(), fd.count(model) as inference:
        model(input_ids=ids)
    assert fd.rule_of_thumb(inference, tokens=128).rule_per_token == 2 * c.params
