"""One rank of a job that does not exist: torch.distributed's ``fake`` backend (world N, rank r) in
this process, the model built on meta, torch's own parallelism applied, parameters materialised
as fake tensors, and one step (forward, backward, optimizer) counted by ``flopdispatch.count``."""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable, Dict, List, Optional, Union

from .errors import PlanError
from .mesh import link_of_dim, parse_mesh, replica_batch
from .plans import Options, apply_plan, wants_ddp

__all__ = ["simulate", "compare", "stages", "stage_ranks", "SimulatedRank", "CollectiveRow", "Memory"]


@dataclasses.dataclass(frozen=True)
class CollectiveRow:
    """One collective op of a phase on one mesh dimension, on this rank: calls, payload bytes, bus
    bytes (``comm.py``'s conventions), the group's size, and the link it crosses."""

    phase: str
    op: str
    dim: str
    calls: int
    payload: int
    bus_bytes: int
    group_size: int
    link: str


@dataclasses.dataclass(frozen=True)
class Memory:
    """Bytes this rank holds: parameters, gradients and optimizer states as sharded (local shards),
    buffers, the peak of activations saved for backward, the largest parameter group gathered at
    once (FSDP2's all-gather of one module), and ``peak``: an upper estimate, all of the state plus
    the saved-activation peak plus two gathered groups (the current one and the prefetched one)."""

    params: int
    grads: int
    optimizer: int
    buffers: int
    saved_activations_peak: int
    gathered_group: int

    def parts(self) -> Dict[str, int]:
        """The terms of ``peak``, bytes by name (the names ``rank_text`` prints)."""
        return {"params": self.params, "grads": self.grads, "optimizer": self.optimizer, "buffers": self.buffers,
                "saved activations": self.saved_activations_peak, "gathered groups": 2 * self.gathered_group}

    @property
    def peak(self) -> int:
        return sum(self.parts().values())


@dataclasses.dataclass
class SimulatedRank:
    """What one simulated rank ran: ``count`` (a finished ``flopdispatch.count``: FLOPs, MACs and
    bytes per module and phase, ``collectives()``), ``collectives`` split by mesh dimension,
    ``memory``, and the job's shape (``mesh`` {dim: size}, ``coords`` {dim: index of this rank})."""

    mesh: Dict[str, int]
    rank: int
    coords: Dict[str, int]
    batch: int
    seq: int
    tokens: int  # tokens this rank's data-parallel replica processes in the step (batch x seq)
    count: object
    collectives: List[CollectiveRow]
    memory: Memory
    links: Dict[str, str]  # {dim: 'nvlink' | 'network'}
    dtype: str  # the compute dtype of matmuls ('bf16' under bf16 mixed precision)
    plan: str
    seconds: float  # wall time of the simulation here
    recomputed_macs: int = 0  # MACs activation checkpointing ran again in backward (in count.macs)
    microbatches: int = 1  # pipeline micro-batches (pp in the mesh)
    schedule: Optional[str] = None  # the pipeline schedule ('gpipe', '1f1b', ...), None without pp
    virtual_stages: int = 1  # pipeline chunks (stages) per rank: 2+ with the interleaved schedules
    stage_layers: tuple = ()  # decoder layers per pipeline chunk, all pp x virtual_stages of them (pp only)
    layers: tuple = ()  # the decoder layers this rank holds, a range per chunk it holds (pp only)

    @property
    def stage(self) -> Optional[int]:
        """This rank's pipeline stage (its pp index), None without pp."""
        return self.coords.get("pp") if self.schedule is not None else None

    @property
    def model_macs(self) -> int:
        """The step's MACs without recomputation: what MFU counts (count.macs includes it)."""
        return self.count.macs - self.recomputed_macs

    @property
    def world(self) -> int:
        n = 1
        for s in self.mesh.values():
            n *= s
        return n

    def estimate(self, device="H100", **kwargs):
        """The step-time estimate on ``device`` (``flopdispatch.plan.estimate.step_estimate``)."""
        from .estimate import step_estimate

        return step_estimate(self, device, **kwargs)

    def fit(self, device="H100", fraction: Optional[float] = None):
        """Whether ``memory.peak`` fits ``device`` (a ``MemoryFit``: ``fraction`` of its memory usable,
        default ``flopdispatch.hardware.USABLE_MEMORY_FRACTION``; ``flopdispatch.plan.estimate.memory_fit``)."""
        from .estimate import memory_fit

        return memory_fit(self, device, fraction)

    def fits(self, device="H100", fraction: Optional[float] = None) -> Optional[bool]:
        """True when the memory peak fits the device's usable memory, False when not, None when the
        device's memory is not known (``fit(...).fits``)."""
        return self.fit(device, fraction).fits

    def bus_bytes_by_dim(self) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for row in self.collectives:
            out[row.dim] = out.get(row.dim, 0) + row.bus_bytes
        return out

    def report(self):
        """The count as a ``flopdispatch.Report`` (``show`` merges one per rank), its metadata
        naming the simulated rank, world size, mesh and plan."""
        from ..schema import Report

        mesh = ",".join(f"{k}={v}" for k, v in self.mesh.items())
        return Report.from_count(self.count, meta={"rank": self.rank, "world_size": self.world,
                                                   "target": f"simulated {self.plan} on {mesh}"})

    def table(self, device="H100", **kwargs) -> str:
        from .estimate import rank_text

        return rank_text(self, device, **kwargs)


_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32", None: None}


def _dtype(name):
    import torch

    if name is None or isinstance(name, torch.dtype):
        return name
    key = str(name).replace("torch.", "").lower()
    key = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "float": "fp32"}.get(key, key)
    if key not in _DTYPES:
        raise PlanError(f"dtype {name!r}: expected bf16, fp16 or fp32")
    return getattr(torch, _DTYPES[key])


def _local_bytes(t) -> int:
    local = getattr(t, "_local_tensor", t)
    return int(local.numel()) * local.element_size()


def _build(model, config):
    import torch

    from ..models import build_model

    if isinstance(model, str):
        return build_model(model, config)
    if config:
        raise PlanError("config= applies to a model spec string ('hf:llama'), not to a factory")
    if isinstance(model, torch.nn.Module):
        raise PlanError("simulate takes a model factory (a callable returning an nn.Module, called on meta) "
                        "or a spec like 'hf:llama', not a built module")
    if not callable(model):
        raise PlanError(f"model: expected a spec string or a callable, got {type(model).__name__}")
    with torch.device("meta"):
        built = model()
    if not isinstance(built, torch.nn.Module):
        raise PlanError(f"the model factory returned {type(built).__name__}, not an nn.Module")
    return built


def _default_inputs(model, batch: int, seq: int):
    """input_ids and labels of (batch, seq) for a model with a vocabulary (a causal LM); else None."""
    import torch

    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if not isinstance(vocab, int):
        raise PlanError(f"{type(model).__name__} has no config.vocab_size: pass inputs=callable(batch, seq) "
                        "returning the forward's kwargs")
    ids = torch.randint(0, vocab, (batch, seq))
    return {"input_ids": ids, "labels": ids}


def _loss(out):
    import torch

    loss = getattr(out, "loss", None)
    if loss is None:
        loss = out if isinstance(out, torch.Tensor) else out[0]
        loss = loss.float().sum()
    return loss


@contextlib.contextmanager
def fake_world(world: int, rank: int):
    """``torch.distributed`` initialised with the fake backend (rank ``rank`` of ``world``) for the
    block, destroyed after it (and ``sys.excepthook`` as it was)."""
    import sys

    import torch.distributed as dist
    from torch.testing._internal.distributed.fake_pg import FakeStore

    if not dist.is_available():
        raise PlanError("this torch has no torch.distributed")
    if dist.is_initialized():
        raise PlanError("a process group is already initialised here: simulate in a process without one")
    _clear_dtensor_caches()
    hook = sys.excepthook  # init_process_group wraps it (a "[rank0]: " prefix) and destroy does not undo it
    dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=world)
    try:
        yield
    finally:
        dist.destroy_process_group()
        sys.excepthook = hook
        _clear_dtensor_caches()


def _clear_dtensor_caches() -> None:
    """DTensor caches sharding decisions by mesh, and a DeviceMesh compares equal to any mesh of
    the same layout and names, whatever its rank and process groups: a cached result would carry
    an earlier simulation's mesh (its groups destroyed, another rank's) into this one."""
    import sys

    api = sys.modules.get("torch.distributed.tensor._api")
    if api is None:
        return
    import torch

    native = getattr(torch._C, "_clear_DTensor_sharding_propagator_cache", None)  # the C++ fast path's
    if native is not None:
        native()
    propagator = api.DTensor._op_dispatcher.sharding_propagator
    propagator.propagate_op_sharding.cache_clear()
    cached_meta = getattr(type(propagator), "_propagate_tensor_meta_cached", None)
    if cached_meta is not None and hasattr(cached_meta, "cache_clear"):
        cached_meta.cache_clear()
    redistribute = sys.modules.get("torch.distributed.tensor._redistribute")
    transforms = getattr(redistribute, "_gen_transform_infos", None)
    if transforms is not None and hasattr(transforms, "cache_clear"):
        transforms.cache_clear()


def simulate(model: Union[str, Callable], mesh, *, rank: int = 0, batch: int = 1, seq: int = 128,
             config: Optional[dict] = None, parallelize: Union[str, Callable, None] = None,
             mixed_precision: Optional[str] = None, reduce_dtype: Optional[str] = "fp32",
             reshard_after_forward: Optional[bool] = None, train: bool = True, optimizer: str = "adamw",
             inputs: Optional[Callable] = None, activations: bool = True, gpus_per_node: int = 8,
             world: Optional[int] = None, checkpoint: bool = False, microbatches: int = 1,
             schedule: str = "1f1b", sequence_parallel: bool = False, virtual_stages: Optional[int] = None,
             stage_layers: Optional[List[int]] = None, loss_parallel: bool = False) -> SimulatedRank:
    """Simulate rank ``rank`` of a job on ``mesh`` ({"fsdp": 64, "tp": 8} or "fsdp=64,tp=8").

    model: a spec (``"hf:llama"``, with ``config``) or a factory called under ``torch.device("meta")``.
    parallelize: a built-in plan name ("llama", "fsdp"; default: "llama" when the model fits it,
    else "fsdp"), or ``fn(model, mesh)`` applying your own parallelism on the meta model (its
    parameters are materialised as fake tensors after it). batch: sequences per data-parallel rank,
    each ``seq`` tokens. mixed_precision: FSDP2's param dtype ("bf16"; None: the parameters'),
    reduce_dtype its gradient reduce dtype; reshard_after_forward: FSDP2's (None: torch's default,
    layers gathered again for backward, the root kept). train: backward and one ``optimizer`` step ("adamw",
    "sgd", None) too. inputs: ``fn(batch, seq)`` returning the forward's kwargs (default: input_ids
    and labels). sequence_parallel: with tp, the plan llama's Megatron-style sequence parallel
    (norms and residuals on sequence shards; all-gathers and reduce-scatters instead of
    all-reduces). loss_parallel: with tp (plan llama, no pp), the logits stay split on the
    vocabulary into the loss, computed under torch's ``loss_parallel()`` (no all-gather of the
    logits, 1/tp of their memory). checkpoint: activation checkpointing of every layer (built-in plans; the
    recomputation counts in backward, and is left out of the model FLOPs of MFU). A ``pp`` mesh
    dimension (plan llama) splits the layers into stages: this rank runs its stage with
    ``schedule`` ("gpipe", "1f1b", "interleaved1f1b" or "loopedbfs") over ``microbatches``
    micro-batches of the batch; the interleaved ones split the layers into pp x ``virtual_stages``
    chunks (default 2 per rank), rank r holding chunks r, r + pp, ... . ``stage_layers``: decoder
    layers per chunk (None: equal when they divide, else balanced with the embedding and the head
    counted as one layer each; ``flopdispatch.plan.pipeline.stage_split``).
    gpus_per_node places ranks on nodes (rank // gpus_per_node) for each dimension's link.
    """
    import time

    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    from ..counter import count

    start = time.perf_counter()
    sizes = parse_mesh(mesh, world)
    n = 1
    for s in sizes.values():
        n *= s
    if type(rank) is not int or not 0 <= rank < n:
        raise PlanError(f"rank {rank!r} is not in a world of {n} ranks (0..{n - 1})")
    for name, value in (("batch", batch), ("seq", seq), ("gpus_per_node", gpus_per_node)):
        if type(value) is not int or value < 1:
            raise PlanError(f"{name} must be a positive integer, got {value!r}")
    if optimizer not in ("adamw", "sgd", None):
        raise PlanError(f"optimizer {optimizer!r}: expected adamw, sgd or None")
    param_dtype, grad_dtype = _dtype(mixed_precision), _dtype(reduce_dtype)
    built = _build(model, config)
    model_name = type(built).__name__  # before FSDP2 renames the class (FSDPLlamaForCausalLM)
    plan_name = parallelize if isinstance(parallelize, str) else None
    if parallelize is None:
        from .plans import llama_layers

        try:
            llama_layers(built)
            plan_name = "llama"
        except PlanError:
            plan_name = "fsdp"
    elif not (isinstance(parallelize, str) or callable(parallelize)):
        raise PlanError(f"parallelize: expected a plan name or a function(model, mesh), got {parallelize!r}")
    if plan_name is not None:
        from .plans import check_dims
        from .plans import PLANS

        if plan_name not in PLANS:
            raise PlanError(f"unknown plan {plan_name!r}; known: {', '.join(PLANS)} (or pass a parallelize function)")
        check_dims(sizes, plan_name)
    if checkpoint and plan_name is None:
        raise PlanError("checkpoint=True applies to the built-in plans; checkpoint in your parallelize function")
    if sequence_parallel and (plan_name != "llama" or sizes.get("tp", 1) == 1):
        raise PlanError("sequence_parallel=True needs plan 'llama' and a tp dimension above 1")
    if sequence_parallel and "pp" in sizes:
        raise PlanError("sequence parallel with pipeline stages is not planned (the stages pass full sequences)")
    if loss_parallel and (plan_name != "llama" or sizes.get("tp", 1) == 1 or "pp" in sizes):
        raise PlanError("loss_parallel=True needs plan 'llama', a tp dimension above 1 and no pp (a pipeline stage "
                        "passes whole tensors)")
    options = Options(param_dtype, grad_dtype, reshard_after_forward, bool(checkpoint), bool(sequence_parallel),
                      bool(loss_parallel))
    split, held = [], []
    if "pp" in sizes:
        from .pipeline import check_pipeline

        virtual_stages, split = check_pipeline(built, sizes, batch, microbatches, schedule, virtual_stages,
                                               stage_layers)
    elif virtual_stages not in (None, 1) or stage_layers is not None:
        raise PlanError("virtual_stages and stage_layers apply to a mesh with a pp dimension")

    with fake_world(n, rank):
        from torch.distributed.device_mesh import init_device_mesh

        device_mesh = init_device_mesh("cpu", tuple(sizes.values()), mesh_dim_names=tuple(sizes))
        stage = None
        if "pp" in sizes:
            from .pipeline import chunk_ranges, rank_chunks, split_llama

            stage = device_mesh.get_coordinate()[list(sizes).index("pp")]
            built = split_llama(built, stage, sizes["pp"], split)
            held = [chunk_ranges(split)[c] for c in rank_chunks(stage, sizes["pp"], virtual_stages)]
        if plan_name is not None:
            built = apply_plan(plan_name, built, device_mesh, sizes, options)
        else:
            returned = parallelize(built, device_mesh)
            built = returned if isinstance(returned, torch.nn.Module) else built
        groups = {}
        for dim in sizes:
            groups[device_mesh.get_group(dim).group_name] = dim
        import torch.distributed as dist

        groups.setdefault(dist.group.WORLD.group_name, "world")
        coords_list = device_mesh.get_coordinate()
        coords = dict(zip(sizes, coords_list))
        links = {dim: link_of_dim(device_mesh.mesh, coords_list, i, gpus_per_node) for i, dim in enumerate(sizes)}
        links["world"] = "nvlink" if n <= gpus_per_node else "network"
        with FakeTensorMode(allow_non_fake_inputs=True):
            built.to_empty(device="cpu")
            runner = built
            if plan_name is not None and wants_ddp(sizes):
                runner = _fake_ddp(built, device_mesh.get_group("dp"))
            opt = None
            if train and optimizer == "adamw":
                opt = torch.optim.AdamW(built.parameters(), lr=1e-4)
            elif train and optimizer == "sgd":
                opt = torch.optim.SGD(built.parameters(), lr=1e-4)
            if stage is not None:
                from .pipeline import prepare_stage

                config = built.config
                run_stage = prepare_stage(built, stage, split, device_mesh.get_group("pp"), batch, seq,
                                          microbatches, schedule, config.hidden_size, config.vocab_size,
                                          param_dtype or next(built.parameters()).dtype, train)
            kwargs = inputs(batch, seq) if inputs is not None else _default_inputs(built, batch, seq)
            if stage is None and not isinstance(kwargs, dict):
                raise PlanError("inputs(batch, seq) must return a dict of the forward's keyword arguments")
            context = contextlib.nullcontext() if train else torch.no_grad()
            recomputed = [0]
            with context, _recomputation_counted(recomputed, checkpoint), _known_warnings(plan_name is not None), \
                    _plan_failure(plan_name, model_name), _loss_parallel(loss_parallel), \
                    count(built, activations=activations and train) as c:
                if stage is not None:
                    run_stage()
                else:
                    out = runner(**kwargs)
                    if train:
                        _loss(out).backward()
                if train and opt is not None:
                    opt.step()
            memory = _memory(built, opt, c)
        rows = _collective_rows(c, groups, links)
    dtype = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(param_dtype or next(built.parameters()).dtype, "tf32")
    return SimulatedRank(sizes, rank, coords, batch, seq, batch * seq, c, rows, memory, links, dtype,
                         plan_name or getattr(parallelize, "__name__", "custom"), time.perf_counter() - start,
                         recomputed[0], microbatches if stage is not None else 1,
                         schedule if stage is not None else None, virtual_stages if stage is not None else 1,
                         tuple(split), tuple(held))


def _loss_parallel(enabled: bool):
    """torch's ``loss_parallel()`` over the step (the loss and its backward on split logits), or
    nothing."""
    if not enabled:
        return contextlib.nullcontext()
    from torch.distributed.tensor.parallel import loss_parallel

    return loss_parallel()


@contextlib.contextmanager
def _plan_failure(plan_name: Optional[str], model_name: str):
    """Under a built-in plan, an error of the step becomes a one-line PlanError naming the plan and
    the model (the plan does not fit it in a way no check foresaw; the original error is its
    ``__cause__``; fake tensors' own log of the failing op, a traceback on stderr, is held back
    meanwhile). Under the user's own parallelize function the error propagates as it is."""
    import logging

    log = logging.getLogger("torch._subclasses.fake_tensor")
    level = log.level
    if plan_name is not None:
        log.setLevel(logging.CRITICAL)
    try:
        yield
    except PlanError:
        raise
    except Exception as e:
        if plan_name is None:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise PlanError(f"plan {plan_name!r} on {model_name}: the step failed: {type(e).__name__}"
                        + (f": {first}" if first else "")) from e
    finally:
        log.setLevel(level)


@contextlib.contextmanager
def _known_warnings(enabled: bool):
    """Under a built-in plan, the step without FSDP2's "returned a view tensor" UserWarning: the
    root's output is a view there by construction (a pipeline stage before the last returns
    transformers' ``hidden_states[:, slice, :]`` through the Identity head; sequence parallel's
    ``lm_head`` returns DTensor's ``to_local()``, a ``view_as``), and nothing changes it in place.
    Returning a copy instead would add a copy to the count. The user's filters are restored after
    (``catch_warnings``); every other warning, and this one under the user's own parallelize, shows."""
    if not enabled:
        yield
        return
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module \(.*\) returned a view tensor",
                                category=UserWarning, module=r"torch\.distributed\.fsdp\.")
        yield


@contextlib.contextmanager
def _recomputation_counted(total: list, enabled: bool):
    """While active, the MACs of activation checkpointing's recomputation (torch.utils.checkpoint
    runs it through ``_run_fn_with_dynamo_disabled``) are added to ``total[0]``, counted by a nested
    count (the step's count still sees them, in backward)."""
    if not enabled:
        yield
        return
    import torch.utils.checkpoint as ckpt

    from ..counter import count

    run = ckpt._run_fn_with_dynamo_disabled

    def counted(fn, *args, **kwargs):
        inner = count()
        try:
            with inner:
                return run(fn, *args, **kwargs)
        finally:  # early stop ends the recomputation with an exception, once it has what backward needs
            total[0] += inner.macs

    ckpt._run_fn_with_dynamo_disabled = counted
    try:
        yield
    finally:
        ckpt._run_fn_with_dynamo_disabled = run


def stage_ranks(mesh, world: Optional[int] = None) -> List[int]:
    """The first rank of each pipeline stage of ``mesh`` (pp index s, every other coordinate 0),
    in stage order; [0] without a ``pp`` dimension."""
    sizes = parse_mesh(mesh, world)
    if "pp" not in sizes:
        return [0]
    names = list(sizes)
    stride = 1
    for name in names[names.index("pp") + 1:]:
        stride *= sizes[name]
    return [s * stride for s in range(sizes["pp"])]


def stages(model, mesh, **kwargs) -> List[SimulatedRank]:
    """A SimulatedRank for every pipeline stage of ``mesh`` (its first rank each: every stage is a
    different rank role), ``simulate``'s keyword arguments otherwise."""
    if "rank" in kwargs:
        raise PlanError("stages() picks the ranks (one per stage): pass no rank")
    return [simulate(model, mesh, rank=r, **kwargs) for r in stage_ranks(mesh, kwargs.get("world"))]


def compare(model, meshes, *, global_batch: Optional[int] = None, **kwargs) -> List[SimulatedRank]:
    """A SimulatedRank per mesh, same model and batch (``simulate``'s keyword arguments; ``rank``
    for the meshes without pp), and one per stage of a mesh with pp (its first rank each, stage
    order); print them as one table, a row per mesh, with
    ``flopdispatch.plan.estimate.compare_text`` (a pipeline mesh's row: its ``job_estimate``).

    global_batch: sequences per step over the whole job, instead of ``batch`` (per data-parallel
    replica): each mesh then runs global_batch / (dp x fsdp) per replica, so that meshes are
    compared at the same work per step; a pipeline mesh splits its replica's batch into one
    micro-batch per sequence unless ``microbatches`` is given."""
    if global_batch is not None and "batch" in kwargs:
        raise PlanError("pass batch (per data-parallel replica) or global_batch (per step), not both")
    rank = kwargs.pop("rank", 0)
    out = []
    for mesh in meshes:
        sizes = parse_mesh(mesh, kwargs.get("world"))
        options = dict(kwargs)
        if global_batch is not None:
            options["batch"] = replica_batch(sizes, global_batch)
            if "pp" in sizes:
                options.setdefault("microbatches", options["batch"])
        if "pp" in sizes:
            out += stages(model, mesh, **options)
        else:
            out.append(simulate(model, mesh, rank=rank, **options))
    return out


def _allreduce_hook(group, bucket):
    """DDP's all-reduce of a gradient bucket, issued from Python: the fake backend's futures carry
    no tensor, which DDP's built-in C++ hook requires."""
    import torch
    import torch.distributed as dist

    buffer = bucket.buffer()
    dist.all_reduce(buffer, group=group)
    done = torch.futures.Future()
    done.set_result(buffer)
    return done


def _fake_ddp(model, group):
    """DistributedDataParallel over fake parameters: its constructor's cross-rank shape check reads
    parameter data (skipped for the call; the fake ranks agree by construction), no initial
    broadcast (``init_sync=False``), and the bucket all-reduce issued by ``_allreduce_hook``."""
    import torch.nn.parallel.distributed as ddp_module

    check = ddp_module._verify_param_shape_across_processes
    ddp_module._verify_param_shape_across_processes = lambda *args, **kwargs: None
    try:
        wrapped = ddp_module.DistributedDataParallel(model, process_group=group, init_sync=False)
    finally:
        ddp_module._verify_param_shape_across_processes = check
    wrapped.register_comm_hook(group, _allreduce_hook)
    return wrapped


def _memory(model, opt, c) -> Memory:
    params = sum(_local_bytes(p) for p in model.parameters())
    grads = sum(_local_bytes(p.grad) for p in model.parameters() if p.grad is not None)
    buffers = sum(_local_bytes(b) for b in model.buffers())
    state = 0
    if opt is not None:
        import torch

        for per_param in opt.state.values():
            state += sum(_local_bytes(v) for v in per_param.values() if isinstance(v, torch.Tensor))
    from .. import comm

    gathered = 0
    for (scope, phase, op, group), (calls, payload, bus, size) in comm.group_records(c._mode).items():
        if "allgather" in op or "all_gather" in op:
            gathered = max(gathered, payload // max(calls, 1))
    return Memory(params, grads, state, buffers, c.saved_peak_bytes or 0, gathered)


def _collective_rows(c, groups: Dict[str, str], links: Dict[str, str]) -> List[CollectiveRow]:
    from .. import comm
    from .._counts import PHASES

    merged: Dict[tuple, list] = {}
    for (scope, phase, op, group), (calls, payload, bus, size) in comm.group_records(c._mode).items():
        dim = groups.get(group, group if group is not None else "?")
        key = (PHASES[phase], op, dim)
        m = merged.setdefault(key, [0, 0, 0, size])
        m[0] += calls
        m[1] += payload
        m[2] += bus
        m[3] = max(m[3], size)
    return [CollectiveRow(phase, op, dim, *values, links.get(dim, "network"))
            for (phase, op, dim), values in sorted(merged.items(), key=lambda kv: (PHASES.index(kv[0][0]), kv[0][2],
                                                                                    -kv[1][2], kv[0][1]))]
