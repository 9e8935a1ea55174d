"""Ready parallelism plans, applied to a model built on meta with torch's own APIs.

``llama``: Llama-style decoders (``model.layers[i].self_attn.{q,k,v,o}_proj`` and
``mlp.{gate,up,down}_proj``): tensor parallel on the ``tp`` dimension (q, k, v, gate, up column-wise;
o, down row-wise, so each block issues one all-reduce of its output in forward and one of its input
gradient in backward; the head ``lm_head`` column-wise, its logits all-gathered), then FSDP2
``fully_shard`` of every decoder layer and of the root on the data dimensions (``fsdp``; ``dp`` +
``fsdp`` is HSDP), or DDP on ``dp`` alone.
``fsdp``: any model: ``fully_shard`` of every child of each ``nn.ModuleList`` and of the root (or
DDP on ``dp`` alone); no tensor parallel.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Optional

from .errors import PlanError
from .mesh import DIMENSIONS

__all__ = ["PLANS", "Options", "LLAMA_TP", "check_dims", "llama_layers", "apply_plan"]

LLAMA_TP = {"self_attn.q_proj": "colwise", "self_attn.k_proj": "colwise", "self_attn.v_proj": "colwise",
            "self_attn.o_proj": "rowwise", "mlp.gate_proj": "colwise", "mlp.up_proj": "colwise",
            "mlp.down_proj": "rowwise"}


@dataclasses.dataclass(frozen=True)
class Options:
    """How the built-in plans shard: FSDP2's mixed precision (``param_dtype`` for compute and the
    all-gather, ``reduce_dtype`` for the reduce-scatter; None: the parameters' dtype) and
    ``reshard_after_forward`` (True: every group gathered again for backward; False: kept gathered;
    None: torch's default, the layers resharded and the root kept)."""

    param_dtype: Optional[object] = None
    reduce_dtype: Optional[object] = None
    reshard_after_forward: Optional[bool] = None
    checkpoint: bool = False  # activation checkpointing of every layer (recomputed in backward)
    sequence_parallel: bool = False  # tp: norms and residuals sharded on the sequence (Megatron-style SP)
    loss_parallel: bool = False  # tp: the logits stay split on the vocabulary into the loss (torch's loss_parallel)


def check_dims(sizes: Dict[str, int], plan: str) -> None:
    for name in sizes:
        if name not in DIMENSIONS:
            raise PlanError(f"plan {plan!r} knows mesh dimensions {', '.join(DIMENSIONS)}; got {name!r} "
                            "(pass parallelize=your_function for others)")
    if "pp" in sizes and plan != "llama":
        raise PlanError(f"plan {plan!r} has no pipeline stages: use plan 'llama' (or your own) for pp")
    if "pp" in sizes and "dp" in sizes and "fsdp" not in sizes:
        raise PlanError("pp with dp alone is not planned (DDP over a stage): use fsdp=N for the data dimension")
    if plan == "fsdp" and sizes.get("tp", 1) > 1:
        raise PlanError("plan 'fsdp' has no tensor parallel: use plan 'llama' (or your own) for tp")
    if sizes.get("tp", 1) > 1 and sizes.get("dp", 1) > 1 and sizes.get("fsdp", 1) == 1:
        raise PlanError("dp with tp needs an fsdp dimension (FSDP2 over DTensor parameters; DDP does not take them): "
                        "use fsdp=N, or dp=R,fsdp=S for HSDP")


def llama_layers(model):
    """The decoder layers of a Llama-style model, checked against the plan, or PlanError."""
    inner = getattr(model, "model", model)
    layers = getattr(inner, "layers", None)
    if layers is None or not len(layers):
        raise PlanError(f"plan 'llama' does not fit {type(model).__name__}: no decoder layers at model.layers")
    names = dict(next(iter(layers)).named_modules())
    missing = [n for n in LLAMA_TP if n not in names]
    if missing:
        raise PlanError(f"plan 'llama' does not fit {type(model).__name__}: its first layer has no {missing[0]} "
                        "(pass parallelize=your_function)")
    return layers


def _check_llama_tp(model, tp: int, sequence_parallel: bool = False) -> None:
    config = getattr(model, "config", None)
    keys = ("num_attention_heads", "num_key_value_heads", "intermediate_size") + (("vocab_size",) if sequence_parallel
                                                                                  else ())
    for key in keys:
        value = getattr(config, key, None)
        if isinstance(value, int) and value % tp:
            raise PlanError(f"tp={tp} does not divide {key}={value} of {type(model).__name__}")
    # A norm of the whole q or k projection (OLMo 2's q_norm and k_norm; Qwen 3's are per head):
    # tp splits the projection's output over the ranks, and the norm's statistics need all of it
    attn = dict(next(iter(llama_layers(model))).named_modules()).get("self_attn")
    heads = getattr(config, "num_attention_heads", None)
    head_dim = getattr(config, "head_dim", None) or (config.hidden_size // heads if heads else None)
    for norm_name, proj_name in (("q_norm", "q_proj"), ("k_norm", "k_proj")):
        norm, proj = getattr(attn, norm_name, None), getattr(attn, proj_name, None)
        weight = getattr(norm, "weight", None)
        width = getattr(proj, "out_features", None)
        if weight is not None and width and head_dim and weight.numel() == width != head_dim:
            raise PlanError(f"plan 'llama' with tp does not fit {type(model).__name__}: self_attn.{norm_name} "
                            f"normalizes the whole {proj_name} output ({width} features), which tp splits over its "
                            "ranks (pass parallelize=your_function, or no tp)")


def _data_mesh(mesh, sizes):
    """The mesh FSDP2 shards over: ('dp', 'fsdp') for HSDP, else the 'fsdp' dimension."""
    if "fsdp" in sizes:
        return mesh["dp", "fsdp"] if "dp" in sizes else mesh["fsdp"]
    return None


def _checkpoint(modules, options: Options) -> None:
    if options.checkpoint:
        from torch.distributed._composable import checkpoint

        for m in modules:
            checkpoint(m)  # composable: hooks, module names unchanged


def _fully_shard(modules, model, mesh, options: Options):
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy(param_dtype=options.param_dtype, reduce_dtype=options.reduce_dtype)
    for m in modules:
        fully_shard(m, mesh=mesh, mp_policy=policy, reshard_after_forward=options.reshard_after_forward)
    # the root (embedding, final norm, head) last, with the same policy (None: torch keeps it gathered)
    fully_shard(model, mesh=mesh, mp_policy=policy, reshard_after_forward=options.reshard_after_forward)


def apply_llama(model, mesh, sizes: Dict[str, int], options: Options):
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    layers = llama_layers(model)
    tp = sizes.get("tp", 1)
    if "tp" in sizes and options.sequence_parallel:
        _check_llama_tp(model, tp, True)
        _sequence_parallel(model, layers, mesh["tp"], options.loss_parallel)
    elif "tp" in sizes:
        _check_llama_tp(model, tp)
        styles = {"colwise": ColwiseParallel, "rowwise": RowwiseParallel}
        for layer in layers:
            parallelize_module(layer, mesh["tp"], {n: styles[s]() for n, s in LLAMA_TP.items()})
        _head_column_wise(model, mesh["tp"], options.loss_parallel)
    _checkpoint(layers, options)
    data = _data_mesh(mesh, sizes)
    if data is not None:
        _fully_shard(list(layers), model, data, options)
    return model


def _head_style(loss_parallel: bool, **kwargs):
    """The head's column-wise style: its logits all-gathered for the loss, or (``loss_parallel``)
    left split on the vocabulary as a DTensor, for the loss computed under torch's
    ``loss_parallel()``."""
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor.parallel import ColwiseParallel

    if loss_parallel:
        return ColwiseParallel(output_layouts=Shard(-1), use_local_output=False, **kwargs)
    return ColwiseParallel(output_layouts=Replicate(), use_local_output=True, **kwargs)


def _head_column_wise(model, mesh, loss_parallel: bool = False) -> None:
    """The output head split on the vocabulary over ``tp`` (each rank computes its slice of the
    logits; then they are all-gathered for the loss, or kept split with ``loss_parallel``), as
    Megatron and torchtitan do; kept whole where a pipeline stage has no head (Identity).
    Replicated, every tp rank would run the whole hidden x vocabulary matmul (for the 405B shape,
    about 4.8 decoder layers' work on a tp=8 rank)."""
    import torch
    from torch.distributed.tensor.parallel import parallelize_module

    if isinstance(getattr(model, "lm_head", None), torch.nn.Linear):
        parallelize_module(model, mesh, {"lm_head": _head_style(loss_parallel)})


def _sequence_parallel(model, layers, mesh, loss_parallel: bool = False) -> None:
    """Tensor parallel with sequence parallel: the embedding row-wise (vocabulary split) into
    sequence shards, norms on sequence shards, each block's input all-gathered along the sequence
    and its output reduce-scattered back to it, the head column-wise with its logits gathered."""
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor.parallel import (ColwiseParallel, PrepareModuleInput, RowwiseParallel,
                                                   SequenceParallel, parallelize_module)

    inner = getattr(model, "model", model)
    if getattr(inner, "embed_tokens", None) is None or getattr(model, "lm_head", None) is None:
        raise PlanError(f"sequence parallel in plan 'llama' does not fit {type(model).__name__}: "
                        "no model.embed_tokens and lm_head")
    parallelize_module(model, mesh, {
        "model.embed_tokens": RowwiseParallel(input_layouts=Replicate(), output_layouts=Shard(1),
                                              use_local_output=False),
        "model.norm": SequenceParallel(),
        "lm_head": _head_style(loss_parallel, input_layouts=Shard(1)),
    })
    gather = {"hidden_states": Shard(1)}, {"hidden_states": Replicate()}
    for layer in layers:
        parallelize_module(layer, mesh, {
            "input_layernorm": SequenceParallel(),
            "self_attn": PrepareModuleInput(input_kwarg_layouts=gather[0], desired_input_kwarg_layouts=gather[1],
                                            use_local_output=False),
            "self_attn.q_proj": ColwiseParallel(), "self_attn.k_proj": ColwiseParallel(),
            "self_attn.v_proj": ColwiseParallel(),
            "self_attn.o_proj": RowwiseParallel(output_layouts=Shard(1), use_local_output=False),
            "post_attention_layernorm": SequenceParallel(),
            "mlp": PrepareModuleInput(input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),),
                                      use_local_output=False),
            "mlp.gate_proj": ColwiseParallel(), "mlp.up_proj": ColwiseParallel(),
            "mlp.down_proj": RowwiseParallel(output_layouts=Shard(1), use_local_output=False),
        })


def apply_fsdp(model, mesh, sizes: Dict[str, int], options: Options):
    import torch

    data = _data_mesh(mesh, sizes)
    blocks = [child for m in model.modules() if isinstance(m, torch.nn.ModuleList) for child in m]
    _checkpoint(blocks, options)
    if data is not None:
        _fully_shard(blocks, model, data, options)
    return model


PLANS: Dict[str, Callable] = {"llama": apply_llama, "fsdp": apply_fsdp}


def apply_plan(plan: str, model, mesh, sizes: Dict[str, int], options: Options):
    """Apply a built-in plan on a meta model; DDP (``dp`` alone) is left to the caller, after the
    parameters exist (it broadcasts them)."""
    if plan not in PLANS:
        raise PlanError(f"unknown plan {plan!r}; known: {', '.join(PLANS)} (or pass a parallelize function)")
    check_dims(sizes, plan)
    if plan == "llama":
        llama_layers(model)
    return PLANS[plan](model, mesh, sizes, options)


def wants_ddp(sizes: Dict[str, int]) -> bool:
    """A built-in plan's mesh with data parallel only on 'dp' (no fsdp, no tp): DDP."""
    return "dp" in sizes and "fsdp" not in sizes and sizes.get("tp", 1) == 1
