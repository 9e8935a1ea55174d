"""Activation memory: bytes autograd saves for backward, per module (count(activations=True)).

Every expected number is a hand count of what each op's backward needs (derivatives.yaml), with
its arithmetic. Sizes of the small GPT below: B=2 sequences, S=8 tokens, C=16 channels, H=4 heads,
V=32 tokens in the vocabulary, L=2 blocks, fp32 (4 bytes); so B*S*C = 256 elements, B*S = 16,
B*H*S = 64, B*H*S*S = 512.
"""
import gc
import json
import weakref

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

import flopdispatch as fd

B, S, C, H, V, L = 2, 8, 16, 4, 32, 2
BSC, BS, BHS, BHSS = B * S * C, B * S, B * H * S, B * H * S * S


class Attention(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.qkv, self.proj, self.drop = nn.Linear(C, 3 * C), nn.Linear(C, C), nn.Dropout(p)

    def forward(self, x):
        b, s, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (t.view(b, s, H, c // H).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.drop(self.proj(y.transpose(1, 2).reshape(b, s, c)))


class MLP(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.fc, self.act, self.proj, self.drop = nn.Linear(C, 4 * C), nn.GELU(), nn.Linear(4 * C, C), nn.Dropout(p)

    def forward(self, x):
        return self.drop(self.proj(self.act(self.fc(x))))


class Block(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.ln1, self.attn, self.ln2, self.mlp = nn.LayerNorm(C), Attention(p), nn.LayerNorm(C), MLP(p)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, p=0.1, ckpt=None):
        super().__init__()
        self.ckpt = ckpt
        self.wte, self.wpe, self.drop = nn.Embedding(V, C), nn.Embedding(S, C), nn.Dropout(p)
        self.h = nn.ModuleList(Block(p) for _ in range(L))
        self.ln_f, self.lm_head = nn.LayerNorm(C), nn.Linear(C, V, bias=False)

    def forward(self, idx):
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device)))
        for block in self.h:
            x = block(x) if self.ckpt is None else checkpoint(block, x, use_reentrant=self.ckpt == "reentrant")
        return self.lm_head(self.ln_f(x))


def train_step(model, device="cpu", backward=True):
    idx = torch.randint(0, V, (B, S), device=device)
    with fd.count(model, activations=True) as c:
        loss = F.cross_entropy(model(idx).view(-1, V), idx.view(-1))
        if backward:
            loss.backward()
    return c


# Per module, what autograd saves (fp32, 4 bytes; dropout on the CPU and meta is input * (bernoulli
# noise / (1 - p)), whose backward keeps the float noise: 4 bytes an element, not a 1-byte mask):
EMBED = {
    "wte": BS * 8,    # embedding keeps its int64 indices: 16 * 8 = 128
    "wpe": S * 8,     # the positions, arange(S): 8 * 8 = 64
    "drop": 4 * BSC,  # the float noise: 4 * 256 = 1024
}
LN = 4 * BSC + 2 * 4 * BS  # layer norm: its input (1024) + mean and rstd, [B, S, 1] each (2 * 64) = 1152
BLOCK_CPU = {  # exclusive bytes of each module of a block, on the CPU (SDPA: flash attention for CPU)
    "ln1": LN,                        # 1152
    "attn": 3 * 4 * BSC + 4 * BSC + 4 * BHS,
    # SDPA keeps q, k and v (views of the qkv output: one storage, 3 * 4 * 256 = 3072), its output
    # (4 * 256 = 1024) and the log-sum-exp ([B, H, S]: 4 * 64 = 256): 3072 + 1024 + 256 = 4352
    "attn.qkv": 4 * BSC,              # linear keeps its input, ln1's output: 1024 (and the weight, a parameter)
    "attn.proj": 0,                   # its input is the SDPA output seen through a view (transpose +
                                      # reshape make no copy): already charged to attn, its first saver
    "attn.drop": 4 * BSC,             # noise: 1024
    "ln2": LN,                        # 1152
    "mlp.fc": 4 * BSC,                # input: 1024
    "mlp.act": 4 * 4 * BSC,           # GELU keeps its input, [B, S, 4C]: 4 * 1024 = 4096
    "mlp.proj": 4 * 4 * BSC,          # input, GELU's output: 4096
    "mlp.drop": 4 * BSC,              # noise: 1024
}
# one block: 72 * B*S*C + 16 * B*S + 4 * B*H*S = 18432 + 256 + 256 = 18944
assert sum(BLOCK_CPU.values()) == 72 * BSC + 16 * BS + 4 * BHS == 18944
HEAD = {"ln_f": LN, "lm_head": 4 * BSC}  # 1152 + 1024 (the weight, tied or not, is a parameter)
# the loss, outside the model: log_softmax keeps its output, [B*S, V] = 4 * 512 = 2048; nll_loss its
# target (idx.view(-1): the same storage as wte's indices, counted once: 0) and total_weight (a
# 0-d float: 4)
LOSS = 4 * BS * V + 4


def _modules_of_block(i, table):
    return {f"h.{i}.{k}": v for k, v in table.items()}


def test_gpt_fp32_saved_bytes_per_module_match_hand_count():
    torch.manual_seed(0)
    c = train_step(GPT())
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in c.ops()  # the kernel the count assumes
    expected = {**EMBED, **HEAD}
    for i in range(L):
        expected.update(_modules_of_block(i, BLOCK_CPU))
    for name, nbytes in expected.items():
        assert c.module(name, exclusive=True).saved_bytes == nbytes, name
    assert c.module("h.0").saved_bytes == c.module("h.1").saved_bytes == 18944
    assert c.module("h.0.attn").saved_bytes == 1024 + 4352 + 0 + 1024  # qkv + own + proj + drop = 6400
    assert c.module("h.0.mlp").saved_bytes == 1024 + 4096 + 4096 + 1024  # = 10240
    # the model: 128 + 64 + 1024 + 2 * 18944 + 1152 + 1024 = 41280
    assert c.module("").saved_bytes == 128 + 64 + 1024 + 2 * 18944 + 1152 + 1024 == 41280
    assert c.module("", exclusive=True).saved_bytes == 0  # arange and the add keep nothing
    assert c.saved_bytes == 41280 + LOSS == 43332
    # every exclusive figure plus the work outside the root adds up to the total
    assert sum(c.module(n, exclusive=True).saved_bytes for n in c.module_names) + LOSS == c.saved_bytes
    # parameters and buffers saved (never activations): per block, ln1 and ln2 weight and bias
    # (4 * 4 * 16 = 256), qkv 16x48 (3072), attn.proj 16x16 (1024), fc 16x64 (4096), mlp.proj
    # 64x16 (4096) = 12544; ln_f 2 * 64 = 128; lm_head 16x32 = 2048: 2 * 12544 + 128 + 2048 = 27264.
    # (The embeddings' weights are not saved: their backward needs the indices only.)
    assert c.saved_param_bytes == 2 * 12544 + 128 + 2048 == 27264
    # one step: everything saved is alive when forward ends
    assert c.saved_peak_bytes == c.saved_bytes


@pytest.mark.slow  # two checkpointed training steps per variant
@pytest.mark.parametrize("ckpt", ["reentrant", "non-reentrant"])
def test_checkpointed_blocks_save_only_their_inputs(ckpt):
    torch.manual_seed(0)
    c = train_step(GPT(ckpt=ckpt))
    # Each checkpointed block keeps only its input, [B, S, C] = 4 * 256 = 1024, charged to the module
    # that calls checkpoint (the GPT itself); nothing inside a block is saved during forward (the
    # recompute in backward saves again, short-lived: not counted)
    for i in range(L):
        assert c.module(f"h.{i}").saved_bytes == 0
    assert c.module("", exclusive=True).saved_bytes == L * 4 * BSC == 2048
    # 128 + 64 + 1024 (embeddings) + 2048 + 1152 + 1024 (head) = 5440
    assert c.module("").saved_bytes == 128 + 64 + 1024 + 2048 + 1152 + 1024 == 5440
    assert c.saved_bytes == 5440 + LOSS
    assert c.saved_param_bytes == 128 + 2048  # ln_f and lm_head only: the blocks save nothing in forward
    # the FLOPs see the recompute: a second forward of every block runs in backward
    plain = train_step(GPT())
    assert c.phase("backward").flops > plain.phase("backward").flops


def test_meta_device_counts_the_math_attention_path():
    # On the meta device SDPA runs its math decomposition, which keeps the S x S probabilities:
    # q * sqrt(scale) and k * sqrt(scale) (new tensors, 4 * 256 = 1024 each), softmax's output
    # [B, H, S, S] (4 * 512 = 2048, also the second bmm's input) and v made contiguous for bmm
    # (1024): attn keeps 1024 + 1024 + 2048 + 1024 = 5120; its output is a new tensor, so
    # attn.proj now keeps its input itself (1024).
    model = GPT().to("meta")
    c = train_step(model, device="meta", backward=False)
    block = dict(BLOCK_CPU, **{"attn": 4 * BSC + 4 * BSC + 4 * BHSS + 4 * BSC, "attn.proj": 4 * BSC})
    assert block["attn"] == 5120
    for i in range(L):
        for name, nbytes in _modules_of_block(i, block).items():
            assert c.module(name, exclusive=True).saved_bytes == nbytes, name
    for name, nbytes in {**EMBED, **HEAD}.items():
        assert c.module(name, exclusive=True).saved_bytes == nbytes, name
    # 72 * 256 + 256 + 256 - 4352 + 5120 + 1024 = 20736 a block
    assert c.module("h.0").saved_bytes == 18944 - 4352 + 5120 + 1024 == 20736
    assert c.saved_bytes == 128 + 64 + 1024 + 2 * 20736 + 1152 + 1024 + LOSS


def test_shared_storage_counts_once():
    class TwoViews(nn.Module):
        def forward(self, x):
            y = x.exp()       # exp keeps its output: 4 * 6 * 5 = 120 bytes
            a, b = y[:3], y[3:]
            return (a * b).sum() + (y * y).sum()  # mul keeps both operands: views of y, y twice

    x = torch.randn(6, 5, requires_grad=True)
    m = TwoViews()
    with fd.count(m, activations=True) as c:
        out = m(x)
    # y's storage (4 * 30 = 120 bytes) is saved by exp, by the first mul through two views and
    # twice by the second: counted once. x is saved by nothing (exp keeps its result).
    assert c.saved_bytes == 4 * 6 * 5 == 120
    del out


def test_parameters_and_buffers_are_not_activations():
    lin = nn.Linear(8, 4)
    w = nn.Parameter(torch.randn(4, 8))
    x = torch.randn(3, 8, requires_grad=True)
    with fd.count(lin, activations=True) as c:
        y = lin(x)          # addmm keeps x (4 * 3 * 8 = 96) and weight.t() (a parameter: 4 * 32 = 128)
        z = F.linear(x, w)  # a functional weight: an nn.Parameter too (128); x again: counted once
    assert c.saved_bytes == 96
    assert c.saved_param_bytes == 128 + 128
    bn = nn.BatchNorm1d(8)
    with fd.count(bn, activations=True) as c2:
        bn(x)
    # native_batch_norm keeps its input (96), save_mean and save_invstd (4 * 8 each = 64): 160;
    # the weight and the running statistics are model state: 3 * 32 = 96 (bias is not needed)
    assert c2.saved_bytes == 96 + 64 == 160
    assert c2.saved_param_bytes == 96
    del y, z


def test_peak_is_the_most_alive_at_once():
    mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4))
    x = torch.randn(2, 8)
    # one forward keeps: x (4 * 2 * 8 = 64; its weight grad needs it), GELU's input (4 * 2 * 16 =
    # 128), the last linear's input (128): 320
    with fd.count(mlp, activations=True) as c:
        for _ in range(3):          # three steps: each graph is freed by its backward
            mlp(x).sum().backward()
    assert c.saved_bytes == 3 * 320
    assert c.saved_peak_bytes == 320
    with fd.count(mlp, activations=True) as c:
        kept = [mlp(x) for _ in range(2)]  # two graphs alive at once, both holding x:
        del kept                           # x is one tensor in memory, so the second adds 320 - 64
        mlp(x).sum().backward()            # freed: the third fits in their room, x counted anew
    assert c.saved_bytes == 320 + 256 + 320 == 896
    assert c.saved_peak_bytes == 320 + 256 <= c.saved_bytes


def _top_hooks():
    return torch._C._autograd._top_saved_tensors_default_hooks(True)


def test_no_hooks_left_after_exit_or_exception():
    mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU())
    assert _top_hooks() is None
    with fd.count(mlp, activations=True):
        assert _top_hooks() is not None
        mlp(torch.randn(2, 8))
    assert _top_hooks() is None
    with pytest.raises(ZeroDivisionError):
        with fd.count(mlp, activations=True):
            mlp(torch.randn(2, 8))
            1 / 0
    assert _top_hooks() is None


def test_not_asked_for_installs_nothing_and_reports_none():
    mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU())
    with fd.count(mlp) as c:
        assert _top_hooks() is None  # no hook at all: no cost
        mlp(torch.randn(2, 8)).sum().backward()
    assert c.saved_bytes is None and c.saved_peak_bytes is None and c.saved_param_bytes is None
    assert c.module("0").saved_bytes is None
    assert "activations" not in c.to_dict()
    report = fd.Report.from_count(c)
    assert report.activations is None and "activations" not in report.to_dict()
    assert "saved" not in c.table()


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_no_grad_and_inference_mode_save_nothing(context):
    mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4))
    with context(), fd.count(mlp, activations=True) as c:
        mlp(torch.randn(2, 8))
    assert c.saved_bytes == 0 and c.saved_peak_bytes == 0 and c.saved_param_bytes == 0
    assert c.module("1").saved_bytes == 0


def test_outputs_and_gradients_unchanged_and_nothing_kept():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4))
    x = torch.randn(2, 8, requires_grad=True)
    mlp(x).sum().backward()
    ref = [x.grad.clone()] + [p.grad.clone() for p in mlp.parameters()]
    x.grad = None
    mlp.zero_grad()
    with fd.count(mlp, activations=True) as c:
        h = x * 2
        out = mlp(x)
    probe = weakref.ref(h)
    out.sum().backward()  # after the block: the handles still give autograd its tensors
    got = [x.grad] + [p.grad for p in mlp.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(ref, got))
    del h, out
    gc.collect()
    assert probe() is None  # nothing of the count keeps a tensor alive
    assert c.saved_bytes == 4 * 2 * 16 + 4 * 2 * 16 + 4 * 2 * 8  # GELU in, last linear in, x: 320


def test_nested_counts_both_see_the_saves():
    mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU())
    x = torch.randn(2, 8)
    with fd.count(mlp, activations=True) as outer:
        with fd.count(mlp, activations=True) as inner:
            mlp(x)
        mlp(x)
    # per forward: x (64) and GELU's input (128) = 192
    assert inner.saved_bytes == 192
    assert outer.saved_bytes == 2 * 192


def test_report_json_round_trip_and_validation(tmp_path):
    torch.manual_seed(0)
    c = train_step(GPT())
    report = fd.Report.from_count(c)
    path = tmp_path / "r.json"
    report.save(path)
    data = json.loads(path.read_text())
    assert data["activations"] == {"saved_bytes": 43332, "saved_peak_bytes": 43332, "saved_param_bytes": 27264}
    block = next(m for m in data["modules"] if m["name"] == "h.0.attn")
    assert (block["saved_bytes"], block["self_saved_bytes"]) == (6400, 4352)
    loaded = fd.Report.load(path)
    assert loaded == report
    assert loaded.saved_bytes == 43332 and loaded.module("h.0.attn", exclusive=True).saved_bytes == 4352
    assert loaded.module("h.0.attn", phase="backward").saved_bytes is None
    # the table: a column, the ModuleList showing its children's sum, and the loss outside the root
    text = loaded.table(depth=1, summary=True)
    assert "saved for backward: 43.3 KB of activations (peak 43.3 KB alive at once)" in text
    assert "37.9 KB" in text  # h (ModuleList*): 2 * 18944 = 37888
    assert "2.05 KB" in text  # (outside root): the loss, 2052
    # an older report (no activations) still loads; a wrong type is a one-line error
    del data["activations"]
    for m in data["modules"]:
        m.pop("saved_bytes"), m.pop("self_saved_bytes")
    assert fd.Report.from_dict(data).activations is None
    data["activations"] = {"saved_bytes": -1, "saved_peak_bytes": 0, "saved_param_bytes": 0}
    with pytest.raises(fd.ReportError, match="activations.saved_bytes"):
        fd.Report.from_dict(data)


# ----- a Llama-shaped layer in bf16 on meta, against the closed form (README "Activation memory") --

class LlamaAttention(nn.Module):
    def __init__(self, h, a, flash):
        super().__init__()
        self.a, self.flash = a, flash
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(h, h, bias=False) for _ in range(4))

    def forward(self, x, cos, sin):
        b, s, h = x.shape
        q, k, v = (p(x).view(b, s, self.a, h // self.a).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        half = h // self.a // 2
        q, k = (t * cos + torch.cat((-t[..., half:], t[..., :half]), -1) * sin for t in (q, k))  # rotary
        if self.flash:  # the kernel that keeps O and the log-sum-exp instead of the s x s probabilities
            y = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, is_causal=True)[0]
        else:           # SDPA on meta: the math path
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(y.transpose(1, 2).reshape(b, s, h))


class LlamaMLP(nn.Module):
    def __init__(self, h, f):
        super().__init__()
        self.gate_proj, self.up_proj = nn.Linear(h, f, bias=False), nn.Linear(h, f, bias=False)
        self.down_proj, self.act = nn.Linear(f, h, bias=False), nn.SiLU()

    def forward(self, x):
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))  # SwiGLU


class LlamaLayer(nn.Module):
    def __init__(self, h=4096, a=32, f=11008, flash=False):
        super().__init__()
        self.input_layernorm, self.post_attention_layernorm = nn.RMSNorm(h, eps=1e-5), nn.RMSNorm(h, eps=1e-5)
        self.self_attn, self.mlp = LlamaAttention(h, a, flash), LlamaMLP(h, f)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


def llama_layer_saved(b, s, h, a, f, flash):
    with torch.device("meta"):
        layer = LlamaLayer(h, a, f, flash).to(torch.bfloat16)
        x = torch.randn(b, s, h, dtype=torch.bfloat16, requires_grad=True)
        cos, sin = torch.randn(2, s, h // a, dtype=torch.bfloat16)
    with fd.count(layer, activations=True) as c:
        layer(x, cos, sin)
    return c


@pytest.mark.parametrize("b,s,h,a,f", [(1, 4096, 4096, 32, 11008), (2, 64, 256, 4, 688), (3, 40, 96, 6, 256)])
def test_llama_layer_bf16_on_meta_matches_the_closed_form(b, s, h, a, f):
    # bf16 (2 bytes). Both attention kernels share:
    #   2 RMSNorms (torch's, computed in fp32): the fp32 copy of the input (4sbh, kept by pow and by
    #     the mul with rsqrt), the normalised fp32 tensor (4sbh, kept by the mul with the weight) and
    #     rsqrt (4sb): 2 x (8sbh + 4sb)
    #   the q/k/v projections' input (one tensor, 2sbh); gate/up's input (2sbh)
    #   SwiGLU: SiLU's input (2sbf), the product's two inputs (4sbf), down_proj's input (2sbf): 8sbf
    #   rotary: cos and sin, [s, h/a] each, kept by the muls (2 x 2s(h/a))
    common = 2 * (8 * s * b * h + 4 * s * b) + 2 * s * b * h + 2 * s * b * h + 8 * s * b * f + 2 * 2 * s * (h // a)
    # flash: q and k after rotary and v (6sbh), the output O, also o_proj's input (2sbh), and the
    # log-sum-exp, fp32 [b, a, s] (4asb)
    flash = common + 6 * s * b * h + 2 * s * b * h + 4 * a * s * b
    # math (SDPA on meta; bf16 is computed in fp32): fp32 copies of q*sqrt(scale), k*sqrt(scale)
    # and v (12sbh), the fp32 probabilities (4as^2b), and o_proj's input, a copy (2sbh)
    math = common + 12 * s * b * h + 4 * a * s * s * b + 2 * s * b * h
    assert llama_layer_saved(b, s, h, a, f, flash=True).saved_bytes == flash
    assert llama_layer_saved(b, s, h, a, f, flash=False).saved_bytes == math
    if (b, s, h, a, f) == (1, 4096, 4096, 32, 11008):  # the README's figures
        assert (flash, math) == (833_126_400, 3_080_749_056)


def test_cli_model_activations_flag(tmp_path, monkeypatch, capsys):
    from flopdispatch.cli import main

    (tmp_path / "act_models.py").write_text(
        "import torch.nn as nn\n"
        "def build():\n"
        "    return nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    out_json = tmp_path / "r.json"
    code = main(["model", "act_models:build", "--input", "2x8", "--train", "--activations", "--json",
                 str(out_json), "--depth", "1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "saved for backward: 320 B of activations" in out
    header = next(line for line in out.splitlines() if line.startswith("module"))
    assert header.rstrip().endswith("act.")  # the column: "saved" above "act."
    # the input needs no grad: the first linear keeps x (4 * 2 * 8 = 64), GELU its input (4 * 2 * 16 =
    # 128), the second linear its input (128): 320
    data = json.loads(out_json.read_text())
    assert data["activations"]["saved_bytes"] == 64 + 128 + 128 == 320
    code = main(["model", "act_models:build", "--input", "2x8", "--train", "--json", str(out_json)])
    assert code == 0 and "activations" not in json.loads(out_json.read_text())


def test_fake_tensors_have_storages_too():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4))
        x = torch.randn(2, 8)
        with fd.count(mlp, activations=True) as c:
            mlp(x).sum().backward()
    # x (64), GELU's input (128), the last linear's input (128); the last weight (4 * 64 = 256)
    assert (c.saved_bytes, c.saved_peak_bytes, c.saved_param_bytes) == (320, 320, 256)


def test_another_threads_saves_are_not_in_the_count():
    import threading

    mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4))
    other = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4))
    stop = threading.Event()

    def busy():
        while not stop.is_set():
            other(torch.randn(2, 8)).sum().backward()

    worker = threading.Thread(target=busy)
    worker.start()
    try:
        with fd.count(mlp, activations=True) as c:
            for _ in range(20):
                mlp(torch.randn(2, 8)).sum().backward()
    finally:
        stop.set()
        worker.join()
    assert c.saved_bytes == 20 * 320 and c.saved_peak_bytes == 320
