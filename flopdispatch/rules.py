"""The usual closed forms for LLM compute, beside the measured count.

Kaplan et al. / PaLM: a training step costs about 6 N FLOPs per token (2 N forward, 4 N backward)
for N parameters, plus an attention term 12 L H Q T per token (L layers, H heads of size Q,
sequence length T); a forward pass costs 2 N + 4 L H Q T. These ignore everything but matmuls, so
they are compared with the measured *matmul* FLOPs (2 x MACs); all FLOPs are shown too.
"""
from __future__ import annotations

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class RuleOfThumb:
    """Measured FLOPs per token and sample, next to the closed forms (all in FLOPs)."""

    tokens: int
    training: bool
    params: int                      # N used by the rule
    flops_per_token: float           # every counted FLOP / tokens
    matmul_flops_per_token: float    # 2 * MACs / tokens: what the rules estimate
    rule_per_token: int              # 6 N (training) or 2 N (forward only)
    palm_per_token: Optional[int]    # rule + 12 L H Q T (training) or + 4 L H Q T, when given
    flops_per_sample: Optional[float]

    @property
    def ratio_to_rule(self) -> float:
        """Measured matmul FLOPs over 6N (or 2N): how far the rule of thumb is from the count."""
        return self.matmul_flops_per_token / self.rule_per_token if self.rule_per_token else float("nan")

    @property
    def ratio_to_palm(self) -> Optional[float]:
        if not self.palm_per_token:
            return None
        return self.matmul_flops_per_token / self.palm_per_token


def rule_of_thumb(counter, tokens: int, *, samples: Optional[int] = None, params: Optional[int] = None,
                  layers: Optional[int] = None, attn_dim: Optional[int] = None,
                  seq_len: Optional[int] = None) -> RuleOfThumb:
    """Compare a finished count with 6N (2N without backward) and PaLM's attention term.

    tokens: tokens processed in the counted block; samples: sequences (for FLOPs per sample);
    params: N (default: the root module's parameters, embeddings included); layers, attn_dim
    (heads x head size) and seq_len enable PaLM's attention term.
    """
    if tokens <= 0:
        raise ValueError("tokens must be positive")
    training = counter.phase("backward").macs > 0
    n = counter.params if params is None else params
    factor = 6 if training else 2
    rule = factor * n
    palm = None
    if layers and attn_dim and seq_len:
        palm = rule + (12 if training else 4) * layers * attn_dim * seq_len
    return RuleOfThumb(
        tokens=tokens, training=training, params=n,
        flops_per_token=counter.flops / tokens,
        matmul_flops_per_token=2 * counter.macs / tokens,
        rule_per_token=rule, palm_per_token=palm,
        flops_per_sample=counter.flops / samples if samples else None,
    )
