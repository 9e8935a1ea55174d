"""The embedded default model: a GPT-style model sized like GPT-2 small (`flopdispatch demo`)."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads, device):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(d, device=device)
        self.qkv = nn.Linear(d, 3 * d, device=device)
        self.proj = nn.Linear(d, d, device=device)
        self.ln_2 = nn.LayerNorm(d, device=device)
        self.fc = nn.Linear(d, 4 * d, device=device)
        self.fc_out = nn.Linear(4 * d, d, device=device)

    def forward(self, x):
        b, s, d = x.shape
        q, k, v = self.qkv(self.ln_1(x)).split(d, dim=2)
        q, k, v = (t.view(b, s, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, s, d))
        return x + self.fc_out(F.gelu(self.fc(self.ln_2(x))))


class GPT(nn.Module):
    """GPT-2 small by default: 12 layers, 12 heads, width 768, vocab 50257, context 1024."""

    def __init__(self, layers=12, heads=12, d=768, vocab=50257, context=1024, device="meta"):
        super().__init__()
        self.wte = nn.Embedding(vocab, d, device=device)
        self.wpe = nn.Embedding(context, d, device=device)
        self.h = nn.ModuleList(Block(d, heads, device) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d, device=device)
        self.lm_head = nn.Linear(d, vocab, bias=False, device=device)
        self.lm_head.weight = self.wte.weight  # tied, as in GPT-2

    def forward(self, idx, targets=None):
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))
