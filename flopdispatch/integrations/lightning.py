"""Measured FLOP/s and MFU logged by a Lightning ``Trainer`` (issue 14).

    from flopdispatch.integrations.lightning import FlopsMonitor
    trainer = L.Trainer(callbacks=[FlopsMonitor(device="H100", dtype="bf16", tokens=lambda batch: batch[0].numel())])

Each training batch (``on_train_batch_start`` to ``on_train_batch_end``: forward, backward and, when
it runs, the optimizer step) is one ``fd.Meter`` step, counted in full the first time its signature
is seen and then only timed. After each batch with known FLOPs it logs, on step, ``flops`` (the
batch's measured FLOPs), ``flops_per_second``, ``mfu`` (with a device) and ``tokens_per_second``
(with ``tokens``, a function of the batch), through ``pl_module.log_dict`` to whatever loggers the
Trainer has. Unlike Lightning's ``ThroughputMonitor``, the FLOPs are measured, not given.
"""
from __future__ import annotations

from typing import Callable, Optional

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # the standalone pytorch_lightning package
    from pytorch_lightning.callbacks import Callback

from ..meter import Meter

__all__ = ["FlopsMonitor"]


class FlopsMonitor(Callback):
    """Log measured FLOPs, FLOP/s, MFU and tokens/s of every training batch (see the module doc)."""

    def __init__(self, device=None, dtype="bf16", tokens: Optional[Callable] = None, max_signatures: int = 64):
        super().__init__()
        self.device, self.dtype, self.tokens, self.max_signatures = device, dtype, tokens, max_signatures
        self.meter: Optional[Meter] = None
        self._open = None

    def on_train_start(self, trainer, pl_module):
        self.meter = Meter(pl_module, device=self.device, dtype=self.dtype, max_signatures=self.max_signatures)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._discard()
        tokens = self.tokens(batch) if self.tokens is not None else None
        self._open = self.meter.step(tokens=tokens)
        self._open.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._open is None:
            return
        step, self._open = self._open, None
        step.__exit__(None, None, None)
        last = self.meter.last
        if last.flops is None:
            return
        metrics = {"flops": float(last.flops), "flops_per_second": last.flops_per_second}
        if last.mfu is not None:
            metrics["mfu"] = last.mfu
        if last.tokens_per_second is not None:
            metrics["tokens_per_second"] = last.tokens_per_second
        metrics = {k: v for k, v in metrics.items() if v is not None}
        pl_module.log_dict(metrics, on_step=True, on_epoch=False, batch_size=1)

    def _discard(self):
        """A batch left open (an exception between start and end): nothing recorded."""
        if self._open is not None:
            step, self._open = self._open, None
            step.__exit__(RuntimeError, RuntimeError("batch abandoned"), None)

    def on_train_end(self, trainer, pl_module):
        self._discard()

    def on_exception(self, trainer, pl_module, exception):
        self._discard()
