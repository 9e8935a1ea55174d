"""Always-on throughput: count a training step once per signature, then only time it (issue 14).

    meter = fd.Meter(model, device="H100", dtype="bf16")
    for batch in data:
        with meter.step(tokens=batch.numel()):
            loss = model(batch).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
        print(meter.last.flops_per_second, meter.last.mfu)

How a step is classified. Its *signature* is read at the model's first forward in the step (a forward
pre-hook on the root, for the step's duration): the shapes, dtypes and devices of the tensors that
enter the model (and the values of plain Python arguments: ints, floats, strings, booleans, None),
``model.training``, the grad mode, and the number of parameters holding optimizer state (summed over
the optimizers seen stepping in earlier steps: the first step of Adam or SGD with momentum creates
that state, and does different work than later steps). A step with an unseen signature is counted in
full from that forward on, with ``fd.count(model)``; later steps with a known signature are only
timed, and their FLOPs come from the cache.

What a step did is checked at its end: the signatures of every later forward of the model in the
step, the number of optimizer steps, and whether a backward reached the model's outputs (its
*outcome*). A timed step whose outcome was never counted for its signature (a gradient-accumulation
micro-step without an optimizer step, a GradScaler that skipped the step...) gets ``flops=None``
rather than a wrong number, and the next step with that signature is counted again.

Where counting starts: at the model's first forward in the step, so work before it in the same step
(``zero_grad()``, data preparation) is not in the count (``zero_grad(set_to_none=True)``, the
default, runs no op at all). ``step(inputs=...)`` gives the signature up front (the tensors the model
will be called with): counting then starts at the top of the step and includes everything in it.
A step in which the model never runs (and no ``inputs=`` was given) is timed with ``flops=None``.

The cache is bounded (``max_signatures``, default 64): past it the least recently used signature is
dropped, and counted again when it comes back. Timing: wall clock (``time.perf_counter``) on CPU;
with CUDA, a pair of CUDA events per step on the current stream, synchronised only when ``last`` or
``summary()`` is read (or every 256 pending steps). A counted step's time includes the counter's own
overhead, so the summary leaves counted steps out (unless only counted steps exist).

An exception inside a step records nothing for it: the hooks are removed, a count in progress is
closed, and the exception propagates. Entering and leaving a step are atomic with respect to Ctrl-C
(``_core.Lifecycle``: nothing is left installed whatever line is interrupted).

torch.compile: ``Meter(model)`` and ``Meter(torch.compile(model))`` meter the same model, and a call
of the model or of any compiled wrapper of it (made before or inside the step) is seen; a counted
step counts the eager-equivalent model FLOPs (docs/reliability.md).
"""
from __future__ import annotations

import collections
import dataclasses
import time
import warnings
from typing import Any, Optional

import torch
from torch.utils.hooks import RemovableHandle

from . import _compile, _core, hardware
from .counter import Counts, _hook_steps, count

_remove_handle = RemovableHandle.remove

__all__ = ["Meter", "StepStats"]


@dataclasses.dataclass(frozen=True)
class StepStats:
    """One step, or a summary of several: seconds (wall clock, or CUDA event time), FLOPs (None when
    unknown), tokens and samples (as given to ``step``), and the rates derived from them.

    ``mfu``: FLOP/s over the device's peak for the meter's dtype (None without a device). It uses
    every FLOP the step ran (attention, loss, optimizer and any recomputation included), so with
    activation checkpointing it is a hardware FLOPs utilisation. ``counted``: the step was counted
    in full (its seconds include the counter's overhead). ``steps``: steps summed (1 for one step).
    """

    seconds: float
    flops: Optional[int]
    tokens: Optional[int] = None
    samples: Optional[int] = None
    counted: bool = False
    steps: int = 1
    peak_flops_per_second: Optional[float] = None
    counts: Optional[Counts] = None

    @property
    def flops_per_second(self) -> Optional[float]:
        return self.flops / self.seconds if self.flops is not None and self.seconds > 0 else None

    @property
    def tokens_per_second(self) -> Optional[float]:
        return self.tokens / self.seconds if self.tokens is not None and self.seconds > 0 else None

    @property
    def samples_per_second(self) -> Optional[float]:
        return self.samples / self.seconds if self.samples is not None and self.seconds > 0 else None

    @property
    def mfu(self) -> Optional[float]:
        rate = self.flops_per_second
        if rate is None or not self.peak_flops_per_second:
            return None
        return rate / self.peak_flops_per_second

    def as_dict(self) -> dict:
        return {"seconds": self.seconds, "flops": self.flops, "tokens": self.tokens, "samples": self.samples,
                "counted": self.counted, "steps": self.steps, "flops_per_second": self.flops_per_second,
                "tokens_per_second": self.tokens_per_second, "samples_per_second": self.samples_per_second,
                "mfu": self.mfu}

    def _repr_html_(self):  # Jupyter: meter.summary() and meter.last as a small table (flopdispatch.notebook)
        from . import notebook
        return notebook.step_stats_html(self)


_PLAIN = (int, float, bool, str, type(None))


def _signature(value, depth=0):
    """A hashable description of what enters the model: tensors by (shape, dtype, device,
    requires_grad), plain Python values by value, containers recursively, anything else by type."""
    if isinstance(value, torch.Tensor):
        return (tuple(value.shape), value.dtype, value.device, value.requires_grad)
    if isinstance(value, _PLAIN):
        return (type(value), value)
    if depth < 8:
        if isinstance(value, (list, tuple)):
            return (type(value), tuple(_signature(v, depth + 1) for v in value))
        if isinstance(value, dict):
            return (type(value), tuple((k, _signature(v, depth + 1)) for k, v in value.items()))
    return (type(value),)


def _output_tensors(value, found, depth=0):
    """Tensors with a grad_fn in a model's output (tensors, sequences, dicts, ModelOutput-likes)."""
    if isinstance(value, torch.Tensor):
        if value.grad_fn is not None:
            found.append(value)
    elif depth < 4:
        if isinstance(value, (list, tuple)):
            for v in value:
                _output_tensors(v, found, depth + 1)
        elif isinstance(value, dict):  # transformers' ModelOutput is a dict
            for v in value.values():
                _output_tensors(v, found, depth + 1)
    return found


class _StepState(_core.Lifecycle):
    """One step (what ``Meter.step`` returns): its signature (at the first forward), its outcome, its
    count if counting. ``tokens`` and ``samples`` may be set while the step is open. Entering and
    leaving it are ``_core.Lifecycle``'s (C): its hooks and its count are installed and removed
    atomically with respect to KeyboardInterrupt (issue 20)."""

    __slots__ = ("meter", "inputs", "key", "forwards", "optimizer_steps", "backward", "counter", "tokens",
                 "samples", "start", "end", "start_event", "inputs_given", "first_forward_seen")

    def __init__(self, meter, tokens, samples, inputs):
        self.meter = meter
        self.inputs = inputs
        self.key = None
        self.forwards = []  # signatures of the forwards after the first
        self.optimizer_steps = 0
        self.backward = False
        self.counter = None
        self.first_forward_seen = False
        self.start_event = None
        self.start = self.end = None
        self.tokens, self.samples = tokens, samples
        self.inputs_given = inputs is not None

    def _prepare(self):
        return self.meter._step_steps(self)

    def _finish(self, exc_type, exc, tb):
        """After the hooks and the count are removed: the step is recorded (not when it raised)."""
        if exc_type is None:
            self.meter._finish(self, self.end)
        return False


class Meter:
    """Measured FLOPs, FLOP/s, tokens/s and MFU of every training step, counting each kind of step once.

    ``Meter(model, device="H100", dtype="bf16")``: ``device`` is a device name, a ``DeviceSpec`` or
    None (no MFU); ``dtype`` the compute dtype whose peak MFU is measured against. ``optimizers``:
    optimizers whose state size is part of the signature from the first step (others are found
    when they step). ``max_signatures``: cache size. See the module docstring for how steps are
    classified.
    """

    def __init__(self, model: torch.nn.Module, device=None, dtype="bf16", *, optimizers=(),
                 max_signatures: int = 64):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"Meter(model): expected a torch.nn.Module, got {type(model).__name__}")
        if max_signatures < 1:
            raise ValueError("Meter(max_signatures=...) must be at least 1")
        inner = getattr(model, "_orig_mod", None)
        if type(model).__name__ == "OptimizedModule" and isinstance(inner, torch.nn.Module):
            model = inner  # torch.compile(model): the model is metered; calls of either are seen
        self.model = model
        self.device = hardware.device_spec(device) if device is not None else None
        self.dtype = dtype
        self.peak_flops_per_second = self.device.peak(dtype) if self.device is not None else None
        self.max_signatures = int(max_signatures)
        self._optimizers = list(optimizers)
        self._params = list(model.parameters())  # refreshed at every counted step
        # signature -> {outcome: Counts}, least recently used first
        self._cache: "collections.OrderedDict[Any, dict]" = collections.OrderedDict()
        self._recount = set()  # signatures whose last timed step had an outcome never counted
        self.counts_made = 0
        self.steps = 0
        self._state: Optional[_StepState] = None
        self._first_call_remove = None
        self._warned_compiled = False
        self._pending = []  # CUDA steps whose events are not read yet
        self._last: Optional[StepStats] = None
        self._sum = [0.0, 0, 0, 0, 0, False, False]  # seconds, flops, tokens, samples, steps, has tokens, has samples
        self._sum_counted = [0.0, 0, 0, 0, 0, False, False]
        first = next(iter(model.parameters()), None)
        self._cuda = torch.cuda.is_available() and first is not None and first.is_cuda

    # ----- the step ---------------------------------------------------------------------------------

    def step(self, tokens: Optional[int] = None, samples: Optional[int] = None, inputs=None):
        """Wrap one training step (``with meter.step(...):``). ``tokens``/``samples``: how many it
        processes (for tokens/s and samples/s). ``inputs``: what the model will be called with, to
        classify the step before it runs (then a counted step includes the work before the model's
        first forward)."""
        return _StepState(self, tokens, samples, inputs)

    def _step_steps(self, st):
        """The install steps of a step being entered (see ``_core.Lifecycle``): the meter's hooks, a
        count when the step is classified up front, the clock."""
        if self._state is not None:
            raise RuntimeError("Meter.step() is already open: steps do not nest")
        from torch.nn.modules import module as modules
        from torch.optim import optimizer

        _compile.skip_in_dynamo()  # the hooks below are never traced by torch.compile: graph breaks, run eagerly
        model = self.model
        steps = [(setattr, (self, "_state", st), setattr, (self, "_state", None))]
        steps += _hook_steps(model._forward_pre_hooks, self._on_forward, model._forward_pre_hooks_with_kwargs)[1]
        steps += _hook_steps(model._forward_hooks, self._on_output)[1]
        steps += _hook_steps(optimizer._global_optimizer_pre_hooks, self._on_optimizer_step)[1]
        if not st.inputs_given:  # removed at the step's first forward (a compiled wrapper's, or the model's)
            self._first_call_remove, more = _hook_steps(modules._global_forward_pre_hooks, self._on_first_call)
            steps += more
        if st.inputs_given:
            inputs, st.inputs = st.inputs, None
            if isinstance(inputs, dict):  # model(**inputs), as transformers' Trainer calls it
                counter = self._classify(st, (), inputs)
            else:
                counter = self._classify(st, inputs if isinstance(inputs, tuple) else (inputs,), {})
            if counter is not None:
                steps.append((counter.__enter__, None, counter.__exit__, None, _core.UNDO_FIRST | _core.UNDO_EXC))
        steps.append((self._start_clock, (st,), self._stop_clock, (st,)))
        return steps

    def _start_clock(self, st):
        if self._cuda:
            st.start_event = torch.cuda.Event(enable_timing=True)
            st.start_event.record()
        st.start = time.perf_counter()

    @staticmethod
    def _stop_clock(st):
        if st.end is None:
            st.end = time.perf_counter()

    def _classify(self, st, args, kwargs):
        """At the first forward (or at step entry with inputs=): the step's signature; returns the
        count that starts here when the step is counted (set as ``st.counter``), else None."""
        state_size = sum(len(o.state) for o in self._optimizers)
        with_grads = sum(p.grad is not None for p in self._params)
        st.key = (_signature(args), _signature(kwargs), self.model.training, torch.is_grad_enabled(), state_size,
                  with_grads, st.inputs_given)
        entry = self._cache.get(st.key)
        if entry is not None and st.key not in self._recount:
            self._cache.move_to_end(st.key)
            return None
        self._params = list(self.model.parameters())  # counted: the tree may have changed
        st.counter = count(self.model)
        return st.counter

    def _on_forward(self, module, args, kwargs):
        st = self._state
        if st is None:
            return None
        signature = (_signature(args), _signature(kwargs))
        if st.key is None:  # the first forward of a step without inputs=: the signature
            counter = self._classify(st, args, kwargs)
            if counter is not None and _compile.in_compiled_region():
                # inside a compiled function's call (torch.compile of the whole step): a count started
                # here would lose its dispatch keys when that call returns; not counted (flops None)
                st.counter = None
                self._recount.add(st.key)
                self._warn_compiled_step()
            elif counter is not None:  # counting starts here; the step's exit ends it
                st._install([(counter._enter_inside, (module,), counter.__exit__, None,
                              _core.UNDO_FIRST | _core.UNDO_EXC)])
        elif st.first_forward_seen or st.key[:2] != signature:
            # later forwards (and a first forward other than inputs= or the compiled wrapper's call
            # said) are the step's outcome
            st.forwards.append(signature)
        st.first_forward_seen = True
        return None

    def _on_first_call(self, module, args):
        """Global forward pre-hook, until the step's first forward: a compiled wrapper of the model
        (``torch.compile(model)``, made before or inside the step) is seen here, before its compiled
        call starts, so a count starts outside it (the call then runs eagerly, its ops counted); the
        signature is read from its positional arguments (keyword arguments, seen by the model's own
        hook, are then part of the step's outcome)."""
        st = self._state
        if st is None or st.key is not None:
            return None
        if module is self.model:
            self._first_call_remove()  # the model's own hook classifies the step
        elif getattr(module, "_orig_mod", None) is self.model:
            self._first_call_remove()
            counter = self._classify(st, args, {})
            if counter is not None:
                st._install([(counter.__enter__, None, counter.__exit__, None, _core.UNDO_FIRST | _core.UNDO_EXC)])
        return None

    def _warn_compiled_step(self):
        if not self._warned_compiled:
            self._warned_compiled = True
            warnings.warn("flopdispatch.Meter: the model's first forward in this step runs inside a "
                          "torch.compile'd function, where counting cannot start: the step has flops=None. "
                          "Give step(inputs=...) to count from the top of the step.", UserWarning, stacklevel=3)

    def _on_output(self, module, args, output):
        st = self._state
        if st is None or st.backward:
            return None
        for t in _output_tensors(output, []):
            st._install([(t.grad_fn.register_prehook, (self._on_backward,), _remove_handle, None, _core.UNDO_RESULT)])
        return None

    def _on_backward(self, grad_outputs):
        st = self._state
        if st is not None and not st.backward:
            st.backward = True
        return None

    def _on_optimizer_step(self, optimizer, args, kwargs):
        st = self._state
        if st is not None:
            st.optimizer_steps += 1
            if not any(o is optimizer for o in self._optimizers):
                self._optimizers.append(optimizer)

    # ----- bookkeeping ------------------------------------------------------------------------------

    def _finish(self, st, end):
        self.steps += 1
        outcome = (tuple(st.forwards), st.optimizer_steps, st.backward)
        counts, counted = None, False
        if st.key is not None:
            if st.counter is not None:
                counts, counted = st.counter.totals, True
                self.counts_made += 1
                self._cache.setdefault(st.key, {})[outcome] = counts
                self._cache.move_to_end(st.key)
                self._recount.discard(st.key)
                while len(self._cache) > self.max_signatures:
                    old, _ = self._cache.popitem(last=False)
                    self._recount.discard(old)
            else:
                counts = self._cache.get(st.key, {}).get(outcome)
                if counts is None:  # this kind of step was never counted: count the next one
                    self._recount.add(st.key)
        record = (st.tokens, st.samples, counts, counted)
        if self._cuda and st.start_event is not None:
            end_event = torch.cuda.Event(enable_timing=True)
            end_event.record()
            self._pending.append((st.start_event, end_event, record))
            if len(self._pending) >= 256:
                self._resolve()
        else:
            self._record(end - st.start, record)

    def _record(self, seconds, record):
        tokens, samples, counts, counted = record
        flops = counts.flops if counts is not None else None
        self._last = StepStats(seconds, flops, tokens, samples, counted, 1, self.peak_flops_per_second, counts)
        if flops is None:
            return
        acc = self._sum_counted if counted else self._sum
        acc[0] += seconds
        acc[1] += flops
        acc[4] += 1
        if tokens is not None:
            acc[2] += tokens
            acc[5] = True
        if samples is not None:
            acc[3] += samples
            acc[6] = True

    def _resolve(self):
        pending, self._pending = self._pending, []
        for start, end, record in pending:
            end.synchronize()
            self._record(start.elapsed_time(end) / 1e3, record)

    # ----- results ----------------------------------------------------------------------------------

    @property
    def last(self) -> Optional[StepStats]:
        """The last finished step (None before the first)."""
        if self._pending:
            self._resolve()
        return self._last

    def summary(self, include_counted: bool = False) -> Optional[StepStats]:
        """All finished steps with known FLOPs, summed: the rates are totals over totals. Counted steps
        are left out (their time includes the counter) unless ``include_counted`` or no other step
        finished yet. None before the first step with known FLOPs."""
        if self._pending:
            self._resolve()
        acc = list(self._sum)
        if include_counted or not acc[4]:
            acc = [a + b if i < 5 else a or b for i, (a, b) in enumerate(zip(acc, self._sum_counted))]
        if not acc[4]:
            return None
        return StepStats(acc[0], acc[1], acc[2] if acc[5] else None, acc[3] if acc[6] else None,
                         False, acc[4], self.peak_flops_per_second)

    @property
    def signatures(self) -> int:
        """Signatures in the cache now."""
        return len(self._cache)

    def __repr__(self):
        return f"<flopdispatch.Meter steps={self.steps} counts_made={self.counts_made} signatures={len(self._cache)}>"

    def _repr_html_(self):  # Jupyter: the summary of the steps so far (flopdispatch.notebook), none before one
        from . import notebook
        summary = self.summary()
        return None if summary is None else notebook.step_stats_html(summary)
