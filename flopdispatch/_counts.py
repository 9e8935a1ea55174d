"""The data every other module reads: ``Counts``, ``ModuleCounts``, ``PHASES``.

The bottom of the package's import graph: it imports nothing of flopdispatch, so that the counter
(``counter``), the saved report (``schema``) and the renderers (``report``, ``htmlreport``) can all
build on it with imports that point one way (``tests/package/test_imports.py`` checks the graph is acyclic).
"""
from __future__ import annotations

import dataclasses

PHASES = ("forward", "backward", "optimizer", "other")


@dataclasses.dataclass(frozen=True)
class Counts:
    """Work done, in operations and bytes.

    flops: floating-point operations (2 per MAC plus every other floating-point op).
    macs: multiply-accumulates in matmul-like ops (mm, bmm, conv, attention products).
    bytes_read / bytes_written: tensor bytes read by ops and written by them (views move nothing).
    causal_macs: MACs with the score positions hidden by causal masks skipped, and for
        flex_attention the block-sparse work (equals macs when no masked attention ran).
    calls: number of counted aten op calls.
    seconds: with ``count(..., timing=True)``, the measured execution time of these ops, in
        seconds (each op call timed alone: the counter's own work is outside; 0.0 otherwise).
    """

    flops: int = 0
    macs: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    causal_macs: int = 0
    calls: int = 0
    seconds: float = 0.0

    @property
    def bytes(self) -> int:
        """Bytes read plus bytes written."""
        return self.bytes_read + self.bytes_written

    @property
    def intensity(self) -> float:
        """Arithmetic intensity, FLOPs per byte moved (0.0 when nothing moved)."""
        return self.flops / self.bytes if self.bytes else 0.0

    @property
    def flops_per_second(self) -> float:
        """Achieved FLOP/s over the measured time (0.0 without timing)."""
        return self.flops / self.seconds if self.seconds else 0.0

    @property
    def macs_per_second(self) -> float:
        return self.macs / self.seconds if self.seconds else 0.0

    @property
    def bytes_per_second(self) -> float:
        return self.bytes / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ModuleCounts(Counts):
    """Inclusive counts of one module (its children included), with its parameter counts.

    ``params``: the subtree's parameters (as ``module.parameters()``: a tied tensor counts in each
    module holding it). ``shared_params``: those of them a module earlier in model order holds too
    (tied weights: GPT-2's ``lm_head`` shares ``transformer.wte``'s); ``params - shared_params``
    counts each tensor once, in the first module holding it, so siblings' figures add up to at
    most their parent's and the root's is ``params``.
    """

    name: str = ""
    type: str = ""
    params: int = 0
    trainable_params: int = 0
    shared_params: int = 0
    saved_bytes: Optional[int] = None  # count(activations=True): bytes saved for backward in forward



class TotalsShortcuts:
    """``flops``, ``macs``, ``bytes_read``, ``bytes_written``, ``causal_macs``: the fields of ``self.totals``."""

    @property
    def flops(self) -> int:
        return self.totals.flops

    @property
    def macs(self) -> int:
        return self.totals.macs

    @property
    def bytes_read(self) -> int:
        return self.totals.bytes_read

    @property
    def bytes_written(self) -> int:
        return self.totals.bytes_written

    @property
    def causal_macs(self) -> int:
        return self.totals.causal_macs
