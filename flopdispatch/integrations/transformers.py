"""Measured FLOP/s and MFU in a transformers ``Trainer``'s logs (issue 14).

    from flopdispatch.integrations.transformers import FlopsCallback
    trainer = Trainer(model, args, train_dataset=..., callbacks=[FlopsCallback(device="H100", dtype="bf16")])

Each optimizer step is one ``fd.Meter`` step (``on_step_begin`` to ``on_step_end``, gradient
accumulation included): counted in full the first time its signature is seen, then only timed. At
each log, the callback adds, over the steps since the previous log with known FLOPs:

- ``flops``: the FLOPs they ran (measured, all of them: attention, loss, optimizer);
- ``flops_per_second`` and ``tokens_per_second`` (tokens: ``input_ids.numel()`` of every forward);
- ``mfu`` (with a device): ``flops_per_second`` over the device's peak for ``dtype``;
- ``flops_counted_steps``: how many of those steps were counted in full (slower: the counter ran);

and replaces ``total_flos`` (the Trainer's 6 x parameters x tokens estimate, in the final metrics)
with ``measured_total_flos``, the measured FLOPs of every step so far. It writes into the entry the
Trainer has just appended to ``state.log_history`` and into the ``logs`` passed on to the callbacks
after it: ``FlopsCallback.install(trainer, ...)`` puts it first, so that the reporting integrations
(wandb, TensorBoard, ...), which are default callbacks, see the measured figures too.
"""
from __future__ import annotations

from transformers import TrainerCallback

from ..meter import Meter

__all__ = ["FlopsCallback"]


class FlopsCallback(TrainerCallback):
    """Log measured FLOPs, FLOP/s, tokens/s and MFU (``device``, ``dtype``: see ``fd.Meter``)."""

    def __init__(self, device=None, dtype="bf16", max_signatures: int = 64):
        self.device, self.dtype, self.max_signatures = device, dtype, max_signatures
        self.meter = None
        self._open = self._step = None
        self._hook = None
        self._tokens = 0
        self._window = [0.0, 0, 0, 0, 0]  # seconds, flops, tokens, steps, counted steps
        self._total_flops = 0
        self.unknown_steps = 0  # steps whose FLOPs were not known (see fd.Meter)

    @classmethod
    def install(cls, trainer, *args, **kwargs) -> "FlopsCallback":
        """Make a callback and put it first among the trainer's callbacks; returns it."""
        callback = cls(*args, **kwargs)
        trainer.callback_handler.callbacks.insert(0, callback)
        return callback

    # ----- the steps --------------------------------------------------------------------------------

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.meter = Meter(model, device=self.device, dtype=self.dtype, max_signatures=self.max_signatures)
        self._hook = model.register_forward_pre_hook(self._count_tokens, with_kwargs=True)

    def _count_tokens(self, module, args, kwargs):
        ids = kwargs.get("input_ids")
        if ids is None and args and hasattr(args[0], "numel"):
            ids = args[0]
        if ids is not None and self._open is not None:
            self._tokens += ids.numel()

    def on_step_begin(self, args, state, control, **kwargs):
        if self.meter is None:
            return
        self._discard()
        self._tokens = 0
        self._open = self.meter.step()
        self._step = self._open.__enter__()

    def on_step_end(self, args, state, control, **kwargs):
        if self._open is None:
            return
        step, self._open = self._open, None
        self._step.tokens = self._tokens
        step.__exit__(None, None, None)
        last = self.meter.last
        if last.flops is None:
            self.unknown_steps += 1
            return
        w = self._window
        w[0] += last.seconds
        w[1] += last.flops
        w[2] += last.tokens or 0
        w[3] += 1
        w[4] += int(last.counted)
        self._total_flops += last.flops

    def _discard(self):
        """A step left open (an exception between on_step_begin and on_step_end): nothing recorded."""
        if self._open is not None:
            step, self._open = self._open, None
            error = RuntimeError("step abandoned")
            step.__exit__(RuntimeError, error, None)

    def on_train_end(self, args, state, control, **kwargs):
        self._discard()
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    # ----- the logs ---------------------------------------------------------------------------------

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or self.meter is None:
            return
        seconds, flops, tokens, steps, counted = self._window
        extra = {}
        if steps:
            extra["flops"] = flops
            extra["flops_per_second"] = flops / seconds if seconds > 0 else None
            if tokens:
                extra["tokens_per_second"] = tokens / seconds if seconds > 0 else None
            if self.meter.peak_flops_per_second and seconds > 0:
                extra["mfu"] = flops / seconds / self.meter.peak_flops_per_second
            extra["flops_counted_steps"] = counted
            self._window = [0.0, 0, 0, 0, 0]
        if "total_flos" in logs:
            extra["measured_total_flos"] = self._total_flops
        targets = [logs]
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            targets.append(state.log_history[-1])
        for target in targets:
            if "total_flos" in target:
                del target["total_flos"]
            target.update(extra)
