"""Pipeline stages for the ``llama`` plan: the ``pp`` mesh dimension splits the decoder layers into
equal consecutive stages (``torch.distributed.pipelining``: ``PipelineStage`` and a GPipe or 1F1B
schedule), and each rank runs its stage's part of the step over the micro-batches."""
from __future__ import annotations

import contextlib
from typing import Dict

from .errors import PlanError

__all__ = ["SCHEDULES", "check_pipeline", "split_llama", "prepare_stage"]

SCHEDULES = ("gpipe", "1f1b")


def check_pipeline(model, sizes: Dict[str, int], batch: int, microbatches: int, schedule: str) -> None:
    from .plans import llama_layers

    pp = sizes["pp"]
    layers = len(llama_layers(model))
    if layers % pp:
        raise PlanError(f"pp={pp} does not divide the {layers} decoder layers of {type(model).__name__}")
    if schedule not in SCHEDULES:
        raise PlanError(f"unknown pipeline schedule {schedule!r}; known: {', '.join(SCHEDULES)}")
    if type(microbatches) is not int or microbatches < 1 or batch % microbatches:
        raise PlanError(f"microbatches={microbatches!r} must be a positive integer dividing batch={batch}")
    if schedule == "1f1b" and microbatches < pp:
        raise PlanError(f"schedule 1f1b needs at least as many micro-batches as stages: microbatches={microbatches}, "
                        f"pp={pp}")


def split_llama(model, stage: int, stages: int):
    """Keep this stage's decoder layers (under their original names: ``model.layers.63``); the first
    stage keeps the embedding, the last the final norm and the head; the others become Identity
    (the head) or are dropped (the embedding: later stages take ``inputs_embeds``)."""
    import torch

    inner = model.model
    layers = inner.layers
    per = len(layers) // stages
    kept = {str(i): layers[i] for i in range(stage * per, (stage + 1) * per)}
    layers._modules.clear()
    layers._modules.update(kept)  # ModuleList iterates its _modules' values; names stay the originals
    if stage > 0:
        inner.embed_tokens = None
    if stage < stages - 1:
        inner.norm = torch.nn.Identity()
        model.lm_head = torch.nn.Identity()
    return model


def stage_module(model, stage: int, stages: int):
    """The module PipelineStage runs: input_ids (first stage) or hidden states in, hidden states
    (or logits, last stage) out."""
    import torch

    class LlamaStage(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            if stage == 0:
                return self.inner(input_ids=x).logits
            return self.inner(inputs_embeds=x).logits

    return LlamaStage(model)


def _loss(logits, target):
    import torch

    return torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), target.flatten())


@contextlib.contextmanager
def _static_metadata():
    """Every stage is given its input and output shapes, so the schedule's warm-up vote (a P2P
    round that reads a received flag with ``.item()``, which fake tensors cannot) is settled here as
    its outcome would be: static metadata, no shape inference."""
    from torch.distributed.pipelining import schedules
    from torch.distributed.pipelining._utils import InferenceMode

    base = schedules._PipelineSchedule
    original = base.__dict__["_warmup_p2p"]

    def settle(self, stages, has_backward, p2p_done):
        for s in stages:
            s._inference_mode = InferenceMode.STATIC

    base._warmup_p2p = settle
    try:
        yield
    finally:
        base._warmup_p2p = original


def prepare_stage(model, stage: int, stages: int, group, batch: int, seq: int, microbatches: int, schedule: str,
                  hidden: int, vocab: int, dtype, train: bool):
    """This rank's stage of one step, ready to run (fake tensors active): a function of no
    arguments that runs it (the caller counts it)."""
    import torch
    from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe

    mb = batch // microbatches
    first, last = stage == 0, stage == stages - 1
    inp = torch.empty(mb, seq, dtype=torch.long) if first else torch.empty(mb, seq, hidden, dtype=dtype,
                                                                               requires_grad=True)
    out = torch.empty(mb, seq, vocab if last else hidden, dtype=dtype, requires_grad=True)
    wrapped = stage_module(model, stage, stages)
    pipe = PipelineStage(wrapped, stage, stages, torch.device("cpu"), input_args=(inp,), output_args=(out,),
                         group=group)
    kind = {"gpipe": ScheduleGPipe, "1f1b": Schedule1F1B}[schedule]
    sched = kind(pipe, n_microbatches=microbatches, loss_fn=_loss if train else None)
    ids = torch.randint(0, vocab, (batch, seq))

    def step():
        with _static_metadata():
            if first:
                sched.step(ids)
            elif last:
                sched.step(target=ids, losses=[]) if train else sched.step()
            else:
                sched.step()

    return step
