"""Pipeline stages for the ``llama`` plan: the ``pp`` mesh dimension splits the decoder layers into
consecutive chunks (``stage_split``: equal when pp divides them, else balanced counting the
embedding and the head as one layer each, or the user's ``stage_layers``), and each rank runs its
chunks' part of the step over the micro-batches (``torch.distributed.pipelining``: a
``PipelineStage`` per chunk and a GPipe, 1F1B, interleaved 1F1B or looped BFS schedule).

With ``virtual_stages`` v > 1 (the interleaved schedules) the layers split into pp x v chunks and
the rank with pp index r holds chunks r, r + pp, r + 2 pp, ... (torch's "loop" stage-to-rank
mapping). The rank keeps one model holding all its chunks' layers (module names stay the
originals, ``model.layers.63``; FSDP2 and TP are applied to it as to one stage); each chunk's
``PipelineStage`` runs it with only that chunk's layers in place (``LlamaChunk``)."""
from __future__ import annotations

import contextlib
from typing import Dict, List, Optional, Sequence

from .errors import PlanError

__all__ = ["SCHEDULES", "MULTI_STAGE", "stage_split", "chunk_ranges", "rank_chunks", "check_pipeline", "split_llama",
           "prepare_stage"]

SCHEDULES = ("gpipe", "1f1b", "interleaved1f1b", "loopedbfs")
MULTI_STAGE = ("interleaved1f1b", "loopedbfs")  # several stages (chunks) per rank: virtual_stages


def stage_split(layers: int, chunks: int) -> List[int]:
    """The default split of ``layers`` decoder layers into ``chunks`` consecutive chunks: equal when
    ``chunks`` divides ``layers``; else balanced over layers + 2 units (the embedding on the first
    chunk and the head on the last count as one layer each), the remainder's units given one each
    to the middle chunks first (1, 2, ...), then to the first and the last. 126 layers on 16:
    128 units, 8 per chunk: [7, 8 x 14, 7]. A chunk left with no layer is a PlanError."""
    if layers % chunks == 0:
        return [layers // chunks] * chunks
    units = layers + 2
    base, extra = divmod(units, chunks)
    order = list(range(1, chunks - 1)) + [0, chunks - 1]
    per = [base] * chunks
    for i in order[:extra]:
        per[i] += 1
    per[0] -= 1
    per[-1] -= 1
    if min(per) < 1:
        raise PlanError(f"{layers} decoder layers do not split into {chunks} pipeline chunks with one layer "
                        f"each once the embedding and the head count as a layer: pass stage_layers")
    return per


def chunk_ranges(split: Sequence[int]) -> List[range]:
    """Each chunk's layer indices, from the per-chunk layer counts."""
    out, start = [], 0
    for n in split:
        out.append(range(start, start + n))
        start += n
    return out


def check_pipeline(model, sizes: Dict[str, int], batch: int, microbatches: int, schedule: str,
                   virtual_stages: Optional[int] = None, stage_layers: Optional[Sequence[int]] = None):
    """Checks the pipeline options; returns (virtual stages per rank, layers per chunk)."""
    from .plans import llama_layers

    pp = sizes["pp"]
    layers = len(llama_layers(model))
    if schedule not in SCHEDULES:
        raise PlanError(f"unknown pipeline schedule {schedule!r}; known: {', '.join(SCHEDULES)}")
    if virtual_stages is None:
        virtual_stages = 2 if schedule in MULTI_STAGE else 1
    if type(virtual_stages) is not int or virtual_stages < 1:
        raise PlanError(f"virtual_stages must be a positive integer, got {virtual_stages!r}")
    if schedule not in MULTI_STAGE and virtual_stages != 1:
        raise PlanError(f"schedule {schedule} runs one stage per rank: virtual_stages={virtual_stages} needs "
                        f"{' or '.join(MULTI_STAGE)}")
    if type(microbatches) is not int or microbatches < 1 or batch % microbatches:
        raise PlanError(f"microbatches={microbatches!r} must be a positive integer dividing batch={batch}")
    if schedule == "1f1b" and microbatches < pp:
        raise PlanError(f"schedule 1f1b needs at least as many micro-batches as stages: microbatches={microbatches}, "
                        f"pp={pp}")
    if schedule == "interleaved1f1b":
        rounds = max(1, microbatches // pp)  # torch's ScheduleInterleaved1F1B (flexible rounds)
        if microbatches % rounds:
            raise PlanError(f"schedule interleaved1f1b needs microbatches a multiple of its rounds "
                            f"max(1, microbatches // pp) = {rounds}: microbatches={microbatches}, pp={pp}")
    chunks = pp * virtual_stages
    if stage_layers is None:
        split = stage_split(layers, chunks)
    else:
        split = list(stage_layers) if isinstance(stage_layers, (list, tuple)) else None
        if split is None or any(type(n) is not int or n < 1 for n in split):
            raise PlanError(f"stage_layers={stage_layers!r}: expected a list of positive layer counts, one per stage")
        if len(split) != chunks:
            raise PlanError(f"stage_layers has {len(split)} entries, not pp x virtual_stages = {pp} x "
                            f"{virtual_stages} = {chunks}")
        if sum(split) != layers:
            raise PlanError(f"stage_layers sums to {sum(split)}, not the {layers} decoder layers of "
                            f"{type(model).__name__}")
    return virtual_stages, split


def rank_chunks(pp_index: int, pp: int, virtual_stages: int) -> List[int]:
    """The chunks (stage indices) the rank with pp index ``pp_index`` holds: r, r + pp, ..."""
    return [pp_index + k * pp for k in range(virtual_stages)]


def split_llama(model, pp_index: int, pp: int, split: Sequence[int]):
    """Keep this rank's decoder layers (all its chunks', under their original names:
    ``model.layers.63``); the rank holding the first chunk keeps the embedding, the one holding
    the last chunk the final norm and the head; elsewhere the head and norm become Identity and
    the embedding is dropped (later stages take ``inputs_embeds``)."""
    import torch

    inner = model.model
    layers = inner.layers
    ranges = chunk_ranges(split)
    chunks = rank_chunks(pp_index, pp, len(split) // pp)
    kept = {str(i): layers[i] for c in chunks for i in ranges[c]}
    layers._modules.clear()
    layers._modules.update(kept)  # ModuleList iterates its _modules' values; names stay the originals
    if 0 not in chunks:
        inner.embed_tokens = None
    if len(split) - 1 not in chunks:
        inner.norm = torch.nn.Identity()
        model.lm_head = torch.nn.Identity()
    return model


def stage_module(model, chunk: int, split: Sequence[int]):
    """The module a chunk's PipelineStage runs: input_ids (chunk 0) or hidden states in, hidden
    states (or logits, the last chunk) out. It runs the rank's model with only this chunk's layers
    in its ModuleList (and without the norm and the head unless it is the last chunk); its
    parameters are the chunk's (what the schedule scales after backward)."""
    import torch
    from torch.distributed.fsdp import FSDPModule

    first, last = chunk == 0, chunk == len(split) - 1
    names = [str(i) for i in chunk_ranges(split)[chunk]]
    # a chunk with neither the embedding nor the head on a rank whose model is an FSDP2 root runs
    # the decoder (model.model) alone: a torchtitan part in its place is a root holding no
    # parameter, which gathers nothing (the rank's root would gather its embedding or head)
    middle_of_fsdp = isinstance(model, FSDPModule) and not (first or last)

    class LlamaChunk(torch.nn.Module):
        def __init__(self):
            super().__init__()
            inner = model.model
            parts = {f"layer{n}": inner.layers._modules[n] for n in names}
            if first:
                parts["embed"] = inner.embed_tokens
            if last:
                parts.update(norm=inner.norm, head=model.lm_head)
            self.parts = torch.nn.ModuleDict(parts)  # the rank's model itself is not a child: run in forward

        def forward(self, x):
            inner = model.model
            held = dict(inner.layers._modules)
            norm, head = inner._modules["norm"], model._modules["lm_head"]
            inner.layers._modules.clear()
            inner.layers._modules.update((n, held[n]) for n in names)
            if not last:
                inner._modules["norm"], model._modules["lm_head"] = torch.nn.Identity(), torch.nn.Identity()
            try:
                if middle_of_fsdp:  # no root parameter here: the root's FSDP2 hooks are not this part's
                    return inner(inputs_embeds=x).last_hidden_state
                out = model(input_ids=x) if first else model(inputs_embeds=x)
            finally:
                inner.layers._modules.clear()
                inner.layers._modules.update(held)
                inner._modules["norm"], model._modules["lm_head"] = norm, head
            return out.logits

    return LlamaChunk()


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


def _lazy_init_fsdp(model) -> None:
    """FSDP2 finds the modules of its root when the root first runs; a chunk runs the root with
    only its own layers in place (and a middle chunk does not run it), so the root is initialised
    first, with all of the rank's layers."""
    from torch.distributed.fsdp import FSDPModule

    if isinstance(model, FSDPModule):
        model._get_fsdp_state()._lazy_init()


def _fsdp_stage_class():
    """A PipelineStage for a rank whose model is an FSDP2 root (a data dimension beside pp), its
    module (a ``LlamaChunk``) made to pass as an FSDP2 module (``_as_fsdp_module``), so that torch
    does what it does for torchtitan's model parts: each micro-batch's backward with gradient sync
    and resharding off (gradients accumulate unsharded), the multi-stage runtime's UNSHARD and
    RESHARD actions on whole chunks; and, once the rank's stages are all done (its last
    reduce-grad action: once per step with one stage per rank, after the last of its v chunks
    interleaved, where torchtitan reduces each part after its own last backward), every group's
    post-backward (one reduce-scatter of each gradient) and the root's final callback, then the
    gradients scaled (torch's own reduce-grad of an FSDP2 stage, on the rank's one root)."""
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.pipelining import PipelineStage

    class FSDPChunkStage(PipelineStage):
        def __init__(self, submodule, stage_index, num_stages, *args, root, chunk_stages, **kwargs):
            _as_fsdp_module(submodule, root, stage_index in (0, num_stages - 1))
            super().__init__(submodule, stage_index, num_stages, *args, **kwargs)
            self._root = root
            self._chunk_stages = chunk_stages  # the rank's stages (this one included), shared list
            self._reduced = [0]

        def perform_reduce_grad(self, grad_scale_factor: int):
            done = self._chunk_stages[0]._reduced
            done[0] += 1
            if done[0] < len(self._chunk_stages):
                return  # the rank's other stages are still to finish their backward
            done[0] = 0
            self._root.set_is_last_backward(True)
            self._root.set_reshard_after_backward(True)
            self._root.set_requires_gradient_sync(True)
            state = fully_shard.state(self._root)
            for each in state._state_ctx.all_states:
                for group in each._fsdp_param_groups:
                    group.post_backward()
            state._root_post_backward_final_callback()
            if grad_scale_factor != 1:
                for stage in self._chunk_stages:
                    stage.scale_grads(grad_scale_factor)

    return FSDPChunkStage


class _Unsharded:
    """The handle of an unshard with nothing to gather (a part whose root holds no parameter)."""

    def wait(self) -> None:
        return None


def _as_fsdp_module(chunk, root, holds_root_group: bool) -> None:
    """Make a ``LlamaChunk`` an FSDP2 module to torch's pipelining (``isinstance(.., FSDPModule)``),
    standing for a torchtitan model part whose root is FSDP2's: its unshard and reshard are the
    rank's root group's when the chunk holds the embedding or the head (the root's parameters;
    nothing otherwise), its layers are FSDP2 modules of their own among its submodules, and its
    gradient-sync switches are the rank's root's (all of the rank's chunks at once)."""
    from torch.distributed.fsdp import FSDPModule

    def unshard(self, async_op: bool = False):
        if holds_root_group:
            return root.unshard(async_op=async_op)
        return _Unsharded() if async_op else None

    def reshard(self) -> None:
        if holds_root_group:
            root.reshard()

    switches = {name: (lambda name: lambda self, *a, **k: getattr(root, name)(*a, **k))(name)
                for name in ("set_is_last_backward", "set_reshard_after_backward", "set_requires_gradient_sync")}
    chunk.__class__ = type(f"FSDP{type(chunk).__name__}", (FSDPModule, type(chunk)),
                           {"unshard": unshard, "reshard": reshard, **switches})


def prepare_stage(model, pp_index: int, split: Sequence[int], group, batch: int, seq: int, microbatches: int,
                  schedule: str, hidden: int, vocab: int, dtype, train: bool):
    """This rank's stages of one step, ready to run (fake tensors active): a function of no
    arguments that runs it (the caller counts it)."""
    import torch
    from torch.distributed import pipelining as pl

    pp = group.size()
    chunks = rank_chunks(pp_index, pp, len(split) // pp)
    mb = batch // microbatches
    from torch.distributed.fsdp import FSDPModule

    stages = []
    make, extra = pl.PipelineStage, {}
    if isinstance(model, FSDPModule):
        make, extra = _fsdp_stage_class(), {"root": model, "chunk_stages": stages}
    for chunk in chunks:
        first, last = chunk == 0, chunk == len(split) - 1
        inp = torch.empty(mb, seq, dtype=torch.long) if first else torch.empty(mb, seq, hidden, dtype=dtype,
                                                                                   requires_grad=True)
        out = torch.empty(mb, seq, vocab if last else hidden, dtype=dtype, requires_grad=True)
        stages.append(make(stage_module(model, chunk, split), chunk, len(split), torch.device("cpu"),
                           input_args=(inp,), output_args=(out,), group=group, **extra))
    loss = _loss if train else None
    try:
        if schedule in MULTI_STAGE:
            kind = {"interleaved1f1b": pl.ScheduleInterleaved1F1B, "loopedbfs": pl.ScheduleLoopedBFS}[schedule]
            sched = kind(stages, n_microbatches=microbatches, loss_fn=loss)
        else:
            kind = {"gpipe": pl.ScheduleGPipe, "1f1b": pl.Schedule1F1B}[schedule]
            sched = kind(stages[0], n_microbatches=microbatches, loss_fn=loss)
    except ValueError as e:  # torch's own schedule constraints
        raise PlanError(f"schedule {schedule}: {str(e).splitlines()[0]}") from None
    _lazy_init_fsdp(model)
    ids = torch.randint(0, vocab, (batch, seq))
    first, last = 0 in chunks, len(split) - 1 in chunks

    def step():
        with _static_metadata():
            args = (ids,) if first else ()
            if last and train:
                sched.step(*args, target=ids, losses=[])
            else:
                sched.step(*args)

    return step
