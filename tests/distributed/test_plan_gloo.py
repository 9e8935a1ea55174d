"""The simulated rank equals the real one: a 2-rank gloo job on 127.0.0.1 (one subprocess, spawned
like tests/distributed/test_distributed.py, under a hard timeout) runs the tiny Llama of tests/distributed/test_plan.py
with FSDP2, with tensor parallel (without and with sequence parallel, and with the loss on the
logits split over the ranks: torch's loss_parallel), with DDP and as two 1F1B
pipeline stages, applied by hand, one AdamW step each, real weights; the same
ranks simulated on the fake backend must count the same FLOPs, MACs and bytes per module and
phase, and the same collectives (calls, payload, bus bytes, group size) per module and phase.

Two differences belong to the backends, not to the simulation, and are accounted for exactly:
gloo's reduce-scatter copies its result into the output tensor with an aten::copy_ the counter
sees (a lone ``reduce_scatter_tensor`` of a 1,000-element fp32 output on gloo counts a copy_ of
4,000 bytes read and written; the fake backend, like NCCL, writes the output in place), and a
functional collective's ``wait_tensor`` (no bytes) runs where the result is first used, which on
a backend that finishes at once is the issuing module: it is compared per phase, not per module.
One difference belongs to the simulation: DDP's reducer, without a comm hook, copies each gradient
into its bucket divided by the world size (a mul, 1 FLOP per element, same bytes as a copy); the
simulated rank needs a Python comm hook (the fake backend's futures hold no tensor), with which
the reducer copies instead (0 FLOPs). So the real DDP rank has one more FLOP per parameter in
backward, in the module that owns it."""
import contextlib
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("transformers")

CONFIG = dict(num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=256)
WORLD, BATCH, SEQ = 2, 2, 16
PP_BATCH = 4
TIMEOUT_S = 240
WAIT = "_c10d_functional::wait_tensor"
RS = "c10d::_reduce_scatter_base_"
TP_PLAN = {"self_attn.q_proj": "colwise", "self_attn.k_proj": "colwise", "self_attn.v_proj": "colwise",
           "self_attn.o_proj": "rowwise", "mlp.gate_proj": "colwise", "mlp.up_proj": "colwise",
           "mlp.down_proj": "rowwise"}  # written out here, not read from the planner


def summary(c) -> dict:
    """Per module and phase: [flops, macs, bytes_read, bytes_written] and the collectives
    (exclusive: where each one is charged) as {op: [calls, payload, bus bytes, group size]}."""
    out = {"unsupported": dict(c.unsupported)}
    for m in c.module_names:
        for p in ("forward", "backward", "optimizer", "other"):
            k = c.module(m, phase=p, exclusive=True)
            coll = {op: [r["calls"], r["bytes"], r["bus_bytes"], r["world_size"]]
                    for op, r in c.collectives(module=m, phase=p, exclusive=True).items() if op != WAIT}
            out[f"{m}|{p}"] = [[k.flops, k.macs, k.bytes_read, k.bytes_written], coll]
    for p in ("forward", "backward", "optimizer", "other"):
        k = c.phase(p)
        out[f"*|{p}"] = [[k.flops, k.macs, k.bytes_read, k.bytes_written],
                         {op: [r["calls"], r["bytes"], r["bus_bytes"], r["world_size"]]
                          for op, r in c.collectives(phase=p).items()}]
    return out


def with_gloo_copy(counts_and_collectives: list) -> list:
    """[counts, collectives] plus gloo's copy of each reduce-scatter's output (payload / world
    bytes read and written)."""
    counts, coll = counts_and_collectives
    output = coll[RS][1] // WORLD if RS in coll else 0  # the full input's bytes / 2 ranks: the shard
    return [[counts[0], counts[1], counts[2] + output, counts[3] + output], coll]


def with_ddp_division(simulated: dict) -> None:
    """Adds DDP's division of each gradient (1 FLOP per element) to the simulated backward: in the
    module owning the parameter, and in the phase total."""
    import flopdispatch as fd

    model = fd.build_model("hf:llama", CONFIG)
    for name, module in model.named_modules():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        if own:
            simulated[f"{name}|backward"][0][0] += own
            simulated["*|backward"][0][0] += own


def _rank_main(rank, world, out_dir):
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, loss_parallel, parallelize_module

    import flopdispatch as fd

    # rendezvous through a file (no port to pick: a free port found by the parent could be taken by
    # another process before rank 0 binds it)
    dist.init_process_group("gloo", init_method=f"file://{os.path.join(out_dir, 'rendezvous')}", rank=rank,
                            world_size=world)
    res = {}
    for case in (("fsdp", "tp", "dp", "sp", "tp+lp") if world == 2 else ("fsdp,tp",)):
        torch.manual_seed(0)
        model = fd.build_model("hf:llama", CONFIG, device="cpu")
        if case == "fsdp,tp":
            mesh = init_device_mesh("cpu", (2, 2), mesh_dim_names=("fsdp", "tp"))
        else:
            mesh = init_device_mesh("cpu", (world,), mesh_dim_names=("tp" if case in ("sp", "tp+lp") else case,))
        runner = model
        if case == "fsdp,tp":  # tensor parallel inside each pair of ranks, FSDP2 across the pairs
            styles = {"colwise": ColwiseParallel, "rowwise": RowwiseParallel}
            for layer in model.model.layers:
                parallelize_module(layer, mesh["tp"], {n: styles[s]() for n, s in TP_PLAN.items()})
            parallelize_module(model, mesh["tp"], {"lm_head": ColwiseParallel(output_layouts=Replicate())})
            for layer in model.model.layers:
                fully_shard(layer, mesh=mesh["fsdp"])
            fully_shard(model, mesh=mesh["fsdp"])
        elif case == "dp":
            runner = torch.nn.parallel.DistributedDataParallel(model)
        elif case == "sp":
            _sequence_parallel_by_hand(model, mesh)
        elif case == "fsdp":
            for layer in model.model.layers:
                fully_shard(layer, mesh=mesh)
            fully_shard(model, mesh=mesh)
        else:
            styles = {"colwise": ColwiseParallel, "rowwise": RowwiseParallel}
            for layer in model.model.layers:
                parallelize_module(layer, mesh, {n: styles[s]() for n, s in TP_PLAN.items()})
            head = ColwiseParallel(output_layouts=Shard(-1), use_local_output=False) if case == "tp+lp" else \
                ColwiseParallel(output_layouts=Replicate())
            parallelize_module(model, mesh, {"lm_head": head})
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        ids = torch.randint(0, 256, (BATCH, SEQ))
        with fd.count(model) as c, (loss_parallel() if case == "tp+lp" else contextlib.nullcontext()):
            runner(input_ids=ids, labels=ids).loss.backward()
            opt.step()
        res[case] = summary(c)
    if world == 2:
        res["pp"] = _pipeline_rank(rank, world)
        res["pp_uneven"] = _pipeline_rank(rank, world, layers=3, keep=[[0], [1, 2]][rank])
        res["pp_interleaved"] = _interleaved_rank(rank, world)
    else:
        res["pp,fsdp"] = _pipeline_fsdp_rank(rank)
        res["pp,fsdp interleaved"] = _interleaved_fsdp_rank(rank)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(res, f)
    dist.barrier()  # no rank tears gloo down while another still finishes its last collective
    dist.destroy_process_group()


def _sequence_parallel_by_hand(model, mesh):
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor.parallel import (ColwiseParallel, PrepareModuleInput, RowwiseParallel,
                                                   SequenceParallel, parallelize_module)

    parallelize_module(model, mesh, {
        "model.embed_tokens": RowwiseParallel(input_layouts=Replicate(), output_layouts=Shard(1),
                                              use_local_output=False),
        "model.norm": SequenceParallel(),
        "lm_head": ColwiseParallel(input_layouts=Shard(1), output_layouts=Replicate()),
    })
    for layer in model.model.layers:
        parallelize_module(layer, mesh, {
            "input_layernorm": SequenceParallel(), "post_attention_layernorm": SequenceParallel(),
            "self_attn": PrepareModuleInput(input_kwarg_layouts={"hidden_states": Shard(1)},
                                            desired_input_kwarg_layouts={"hidden_states": Replicate()}),
            "mlp": PrepareModuleInput(input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),)),
            **{n: ColwiseParallel() for n in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                              "mlp.gate_proj", "mlp.up_proj")},
            **{n: RowwiseParallel(output_layouts=Shard(1), use_local_output=False)
               for n in ("self_attn.o_proj", "mlp.down_proj")},
        })


def _pp_loss(logits, target):
    import torch

    return torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), target.flatten())


def _counted_step(schedule, counted, params, first: bool) -> dict:
    """One pipeline step of ``schedule`` (batch PP_BATCH x SEQ; the first stage feeds the ids, the
    last takes them as targets) and an AdamW step of ``params``, counted on ``counted``."""
    import torch

    import flopdispatch as fd

    opt = torch.optim.AdamW(params, lr=1e-4)
    ids = torch.randint(0, 256, (PP_BATCH, SEQ))
    with fd.count(counted) as c:
        if first:
            schedule.step(ids)
        else:
            schedule.step(target=ids, losses=[])
        opt.step()
    return summary(c)


def _pipeline_rank(rank, world, layers=2, keep=None):
    """Two stages by hand: rank 0 the embedding and layer 0, rank 1 layer 1, the norm and the
    head (or, with 3 layers, rank 0 layer 0 and rank 1 layers 1 and 2: ``keep``); batch 4 x 16 in
    2 micro-batches, 1F1B, cross-entropy on the last stage."""
    import torch
    from torch.distributed.pipelining import PipelineStage, Schedule1F1B

    import flopdispatch as fd

    torch.manual_seed(0)
    model = fd.build_model("hf:llama", dict(CONFIG, num_hidden_layers=layers), device="cpu")
    inner = model.model
    keep = [rank] if keep is None else keep  # layer indices this stage keeps
    inner.layers._modules = {str(i): inner.layers[i] for i in keep}
    if rank == 0:
        inner.norm, model.lm_head = torch.nn.Identity(), torch.nn.Identity()
    else:
        inner.embed_tokens = None

    class Stage(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, x):
            return self.m(input_ids=x).logits if rank == 0 else self.m(inputs_embeds=x).logits

    mb = PP_BATCH // 2
    inp = torch.empty(mb, SEQ, dtype=torch.long) if rank == 0 else torch.empty(mb, SEQ, 64, requires_grad=True)
    out = torch.empty(mb, SEQ, 64 if rank == 0 else 256, requires_grad=True)
    stage = PipelineStage(Stage(), rank, world, torch.device("cpu"), input_args=(inp,), output_args=(out,))

    return _counted_step(Schedule1F1B(stage, n_microbatches=2, loss_fn=_pp_loss), model, model.parameters(),
                         first=rank == 0)


def _interleaved_rank(rank, world):
    """Interleaved 1F1B by hand: 4 layers in 4 one-layer stages, rank r holding stages r and r + 2
    (layers r and r + 2; the embedding with stage 0 on rank 0, the norm and the head with stage 3
    on rank 1); each stage a module that runs the rank's model with a layer dict of its one layer
    (and Identity for the norm and the head but on stage 3); batch 4 x 16 in 2 micro-batches."""
    import torch
    from torch.distributed.pipelining import PipelineStage, ScheduleInterleaved1F1B

    import flopdispatch as fd

    torch.manual_seed(0)
    model = fd.build_model("hf:llama", dict(CONFIG, num_hidden_layers=4), device="cpu")
    inner = model.model
    if rank == 0:
        inner.norm, model.lm_head = torch.nn.Identity(), torch.nn.Identity()
    else:
        inner.embed_tokens = None
    all_layers = dict(inner.layers._modules)
    inner.layers._modules = {str(i): all_layers[str(i)] for i in (rank, rank + 2)}  # what the count sees

    class Stage(torch.nn.Module):
        def __init__(self, index):
            super().__init__()
            self.index = index
            self.layer = all_layers[str(index)]
            if index == 0:  # a stage's parameters (scaled by the schedule after backward) are its own
                self.embed = inner.embed_tokens
            if index == 3:
                self.norm, self.head = inner.norm, model.lm_head

        def forward(self, x):
            saved = inner.layers._modules
            inner.layers._modules = {str(self.index): self.layer}
            norm, head = inner.norm, model.lm_head
            if self.index != 3:
                inner.norm, model.lm_head = torch.nn.Identity(), torch.nn.Identity()
            try:
                out = model(input_ids=x) if self.index == 0 else model(inputs_embeds=x)
            finally:
                inner.layers._modules = saved
                inner.norm, model.lm_head = norm, head
            return out.logits

    mb = PP_BATCH // 2
    stages = []
    for index in (rank, rank + 2):
        inp = torch.empty(mb, SEQ, dtype=torch.long) if index == 0 else torch.empty(mb, SEQ, 64, requires_grad=True)
        out = torch.empty(mb, SEQ, 256 if index == 3 else 64, requires_grad=True)
        stages.append(PipelineStage(Stage(index), index, 4, torch.device("cpu"), input_args=(inp,),
                                    output_args=(out,)))

    return _counted_step(ScheduleInterleaved1F1B(stages, n_microbatches=2, loss_fn=_pp_loss), model,
                         model.parameters(), first=rank == 0)


def _pipeline_fsdp_rank(rank):
    """pp=2 x fsdp=2 by hand, torchtitan's way: stage s = rank // 2 keeps layer s; FSDP2 on its
    layer and on the model, which is the PipelineStage's module itself (hooks turn the positional
    input into input_ids or inputs_embeds and the output into logits), so torch's schedule takes
    its FSDP path; 1F1B, batch 4 x 16 in 2 micro-batches."""
    import torch
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.pipelining import PipelineStage, Schedule1F1B

    import flopdispatch as fd

    torch.manual_seed(0)
    mesh = init_device_mesh("cpu", (2, 2), mesh_dim_names=("pp", "fsdp"))
    stage_index = rank // 2
    model = fd.build_model("hf:llama", CONFIG, device="cpu")
    inner = model.model
    inner.layers._modules = {str(stage_index): inner.layers[stage_index]}
    if stage_index == 0:
        inner.norm, model.lm_head = torch.nn.Identity(), torch.nn.Identity()
    else:
        inner.embed_tokens = None
    fully_shard(inner.layers._modules[str(stage_index)], mesh=mesh["fsdp"])
    fully_shard(model, mesh=mesh["fsdp"])
    key = "input_ids" if stage_index == 0 else "inputs_embeds"
    model.register_forward_pre_hook(lambda m, args, kwargs: ((), {key: args[0]}), with_kwargs=True)
    model.register_forward_hook(lambda m, args, out: out.logits)
    mb = PP_BATCH // 2
    inp = torch.empty(mb, SEQ, dtype=torch.long) if stage_index == 0 else torch.empty(mb, SEQ, 64, requires_grad=True)
    out = torch.empty(mb, SEQ, 64 if stage_index == 0 else 256, requires_grad=True)
    stage = PipelineStage(model, stage_index, 2, torch.device("cpu"), input_args=(inp,), output_args=(out,),
                          group=mesh["pp"].get_group())

    return _counted_step(Schedule1F1B(stage, n_microbatches=2, loss_fn=_pp_loss), model, model.parameters(),
                         first=stage_index == 0)


def _part(module, **children):
    """A new module of ``module``'s class and attributes, its dicts (children, parameters, hooks)
    copied, not shared, with ``children`` replaced."""
    new = type(module).__new__(type(module))
    new.__dict__.update({k: (type(v)(v) if isinstance(v, dict) else v) for k, v in module.__dict__.items()})
    new._modules.update(children)
    return new


def _interleaved_fsdp_rank(rank):
    """pp=2 x fsdp=2, interleaved 1F1B by hand as torchtitan builds it: 4 layers in 4 one-layer
    model parts, rank r // 2 = p holding parts p and p + 2, each part its own module tree (the
    first with the embedding, the last with the norm and the head), FSDP2 on its layer and on the
    part (its own root), the part the PipelineStage's module; batch 4 x 16 in 2 micro-batches."""
    import torch
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.pipelining import PipelineStage, ScheduleInterleaved1F1B

    import flopdispatch as fd

    torch.manual_seed(0)
    mesh = init_device_mesh("cpu", (2, 2), mesh_dim_names=("pp", "fsdp"))
    p = rank // 2
    model = fd.build_model("hf:llama", dict(CONFIG, num_hidden_layers=4), device="cpu")
    mb = PP_BATCH // 2
    stages, parts = [], []
    for index in (p, p + 2):
        layer = model.model.layers[index]
        inner = _part(model.model, layers=_part(model.model.layers))
        inner.layers._modules.clear()
        inner.layers._modules[str(index)] = layer
        if index != 0:
            inner._modules["embed_tokens"] = None
        if index != 3:
            inner._modules["norm"] = torch.nn.Identity()
        part = _part(model, model=inner)
        if index != 3:
            part._modules["lm_head"] = torch.nn.Identity()
        fully_shard(layer, mesh=mesh["fsdp"])
        fully_shard(part, mesh=mesh["fsdp"])
        key = "input_ids" if index == 0 else "inputs_embeds"
        part.register_forward_pre_hook(lambda m, args, kwargs, key=key: ((), {key: args[0]}), with_kwargs=True)
        part.register_forward_hook(lambda m, args, out: out.logits)
        inp = torch.empty(mb, SEQ, dtype=torch.long) if index == 0 else torch.empty(mb, SEQ, 64, requires_grad=True)
        out = torch.empty(mb, SEQ, 256 if index == 3 else 64, requires_grad=True)
        stages.append(PipelineStage(part, index, 4, torch.device("cpu"), input_args=(inp,), output_args=(out,),
                                    group=mesh["pp"].get_group()))
        parts.append(part)

    params = list({id(q): q for part in parts for q in part.parameters()}.values())
    counted = _counted_step(ScheduleInterleaved1F1B(stages, n_microbatches=2, loss_fn=_pp_loss), parts, params,
                            first=p == 0)
    return {k: v for k, v in counted.items() if k.startswith("*|") or k == "unsupported"}



def _job(tmp_path_factory, world):
    out = tmp_path_factory.mktemp(f"plan_gloo{world}")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), os.environ.get("PYTHONPATH", "")]))
    try:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), str(world), str(out)],
                              capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"2-rank gloo job hung (over {TIMEOUT_S} s): {e.stderr and e.stderr[-3000:]}")
    assert proc.returncode == 0, proc.stderr[-5000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(world)]


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return _job(tmp_path_factory, WORLD)


@pytest.fixture(scope="module")
def real4(tmp_path_factory):
    return _job(tmp_path_factory, 4)


@pytest.mark.parametrize("case", ["fsdp", "tp", "dp", "sp", "tp+lp"])
@pytest.mark.parametrize("rank", range(WORLD))
def test_simulated_rank_equals_the_real_rank(real, case, rank):
    from flopdispatch.plan import simulate

    sim = simulate("hf:llama", {case.replace("sp", "tp").replace("+lp", ""): WORLD}, config=CONFIG, rank=rank,
                   batch=BATCH, seq=SEQ, reduce_dtype=None, optimizer="adamw", activations=False,
                   sequence_parallel=case == "sp", loss_parallel=case == "tp+lp")
    got, want = summary(sim.count), real[rank][case]
    if case == "dp":
        with_ddp_division(got)
    assert want["unsupported"] == {} and got["unsupported"] == {}
    assert any(want[f"*|{p}"][1] for p in ("forward", "backward")), "the real rank ran collectives"
    # phase totals exactly, gloo's copies included; per module exactly, where a reduce-scatter is
    # charged gloo's copy lands there or where the call ran (FSDP2's final callback, outside the
    # modules, for the root's)
    assert not _equal(got, want), _equal(got, want)
    assert set(got) == set(want)


def _equal(got, want):
    """Differences between a simulated and a real summary, gloo's copies allowed as described."""
    differ = {k: (got[k], v) for k, v in want.items() if k.startswith("*|") and with_gloo_copy(got[k]) != v}
    differ.update({k: (got.get(k), v) for k, v in want.items() if k != "unsupported" and not k.startswith("*|")
                   and v not in (got.get(k), with_gloo_copy(got.get(k, [[0, 0, 0, 0], {}])))})
    return differ


VOTE = 4  # bytes of the pipeline warm-up vote's flag, each way


@pytest.mark.parametrize("rank", range(WORLD))
def test_two_pipeline_stages_equal_the_real_stages(real, rank):
    """1F1B, 2 micro-batches. Before its first step a real schedule runs a warm-up vote: each rank
    sends and receives one 4-byte flag (and reads one with .item(), which fake tensors cannot; the
    simulation settles the vote as static shapes, its outcome when every stage is given its
    shapes). So the real ranks have one more send and recv_ of 4 bytes in the "other" phase, and
    the flags' own bytes there (at most 16 read and 16 written); everything else is equal."""
    from flopdispatch.plan import simulate

    sim = simulate("hf:llama", {"pp": WORLD}, config=CONFIG, rank=rank, batch=PP_BATCH, seq=SEQ, microbatches=2,
                   schedule="1f1b", activations=False)
    got, want = summary(sim.count), real[rank]["pp"]
    (counts, coll), (real_counts, real_coll) = got.pop("*|other"), want.pop("*|other")
    for op in ("c10d::send", "c10d::recv_"):
        calls, payload, bus, size = coll[op]
        assert real_coll[op] == [calls + 1, payload + VOTE, bus + VOTE, size]
    assert set(real_coll) == set(coll) == {"c10d::send", "c10d::recv_"}
    assert real_counts[:2] == counts[:2]  # FLOPs and MACs
    assert 0 <= real_counts[2] - counts[2] <= 16 and 0 <= real_counts[3] - counts[3] <= 16
    assert not _equal(got, want), _equal(got, want)
    assert set(got) == set(want)
    # the stage's own work: forward of its layer (and the head on the last stage), micro-batches summed
    assert want["*|forward"][0][1] == 64 * 36864 + 2 * 4 * 4 * 16 * 16 * 16 + (64 * 64 * 256 if rank else 0)


@pytest.mark.parametrize("case", ["pp_uneven", "pp_interleaved"])
@pytest.mark.parametrize("rank", range(WORLD))
def test_uneven_and_interleaved_pipeline_stages_equal_the_real_stages(real, case, rank):
    """3 layers as stages of [1, 2] (1F1B), and 4 layers in 4 one-layer stages, two per rank
    (interleaved 1F1B); 2 micro-batches of 2 x 16. The warm-up vote as in the test above: the
    real ranks have more 4-byte sends and receives in "other" (one per vote message), nothing else."""
    from flopdispatch.plan import simulate

    layers = 3 if case == "pp_uneven" else 4
    kwargs = (dict(stage_layers=[1, 2], schedule="1f1b") if case == "pp_uneven"
              else dict(schedule="interleaved1f1b", virtual_stages=2))
    sim = simulate("hf:llama", {"pp": WORLD}, config=dict(CONFIG, num_hidden_layers=layers), rank=rank,
                   batch=PP_BATCH, seq=SEQ, microbatches=2, activations=False, **kwargs)
    got, want = summary(sim.count), real[rank][case]
    (counts, coll), (real_counts, real_coll) = got.pop("*|other"), want.pop("*|other")
    assert set(real_coll) == set(coll) == {"c10d::send", "c10d::recv_"}
    vote = {op: [a - b for a, b in zip(real_coll[op], coll[op])] for op in coll}
    assert all(v[0] >= 1 and v[1] == v[2] == VOTE * v[0] and v[3] == 0 for v in vote.values()), vote
    assert real_counts[:2] == counts[:2]  # FLOPs and MACs
    assert not _equal(got, want), _equal(got, want)
    assert set(got) == set(want)
    # forward MACs: each layer 64 tokens x 36,864 + attention 2 x 4 x 4 x 16^3 = 2,490,368; the
    # head 64 x 64 x 256 = 1,048,576 on the last stage's rank (rank 1 in both cases)
    held = {("pp_uneven", 0): 1, ("pp_uneven", 1): 2, ("pp_interleaved", 0): 2, ("pp_interleaved", 1): 2}
    assert want["*|forward"][0][1] == held[case, rank] * 2490368 + (1048576 if rank else 0)


@pytest.mark.parametrize("rank", range(4))
def test_fsdp_by_tp_on_a_2x2_mesh_equals_the_real_ranks(real4, rank):
    from flopdispatch.plan import simulate

    sim = simulate("hf:llama", {"fsdp": 2, "tp": 2}, config=CONFIG, rank=rank, batch=BATCH, seq=SEQ,
                   reduce_dtype=None, activations=False)
    got, want = summary(sim.count), real4[rank]["fsdp,tp"]
    assert want["*|backward"][1], "the real rank ran collectives"
    assert not _equal(got, want), _equal(got, want)
    assert set(got) == set(want) and got["unsupported"] == want["unsupported"] == {}
    assert set(got) == set(want)


@pytest.mark.parametrize("rank", range(4))
def test_fsdp_inside_pipeline_stages_equals_the_real_ranks(real4, rank):
    """pp=2 x fsdp=2, 1F1B, 2 micro-batches: the real stage's module is the FSDP2 root, so torch's
    schedule accumulates the gradients unsharded and reduce-scatters them once; the simulated
    stage must do the same. Differences: the warm-up vote (as above) and gloo's copy of each
    reduce-scatter's output, both in "other"."""
    from flopdispatch.plan import simulate

    sim = simulate("hf:llama", "pp=2,fsdp=2", config=CONFIG, rank=rank, batch=PP_BATCH, seq=SEQ, microbatches=2,
                   reduce_dtype=None, activations=False)
    got, want = summary(sim.count), real4[rank]["pp,fsdp"]
    (counts, coll), (real_counts, real_coll) = with_gloo_copy(got.pop("*|other")), want.pop("*|other")
    assert real_coll[RS] == coll[RS]
    # one reduce-scatter per group: the stage's layer (36,992) and its root (stage 0: the embedding
    # 16,384; stage 1: the norm and the head 16,448), fp32: 213,504 or 213,760 bytes in 2 calls
    assert coll[RS][:2] == [2, (LAYER_PARAMS + (16384 if rank < 2 else 16448)) * 4]
    for op in ("c10d::send", "c10d::recv_"):
        calls, payload, bus, size = coll[op]
        assert real_coll[op] == [calls + 1, payload + VOTE, bus + VOTE, size]
    assert real_counts[:2] == counts[:2]  # FLOPs and MACs
    assert 0 <= real_counts[2] - counts[2] <= 16 and 0 <= real_counts[3] - counts[3] <= 16
    assert not _equal(got, want), _equal(got, want)
    assert set(got) == set(want) and got["unsupported"] == want["unsupported"] == {}


@pytest.mark.parametrize("rank", range(4))
def test_fsdp_inside_interleaved_stages_equals_the_real_ranks(real4, rank):
    """pp=2 x fsdp=2, interleaved 1F1B (two one-layer parts per rank), 2 micro-batches, against
    torchtitan's construction (a module tree per part, FSDP2 root each): per phase (the real parts
    are counted as several roots, so their module names differ), with the warm-up vote and gloo's
    reduce-scatter copies in "other" as above."""
    from flopdispatch.plan import simulate

    sim = simulate("hf:llama", "pp=2,fsdp=2", config=dict(CONFIG, num_hidden_layers=4), rank=rank, batch=PP_BATCH,
                   seq=SEQ, microbatches=2, schedule="interleaved1f1b", reduce_dtype=None, activations=False)
    got = {k: v for k, v in summary(sim.count).items() if k.startswith("*|") or k == "unsupported"}
    want = real4[rank]["pp,fsdp interleaved"]
    (counts, coll), (real_counts, real_coll) = with_gloo_copy(got.pop("*|other")), want.pop("*|other")
    assert {op: v for op, v in real_coll.items() if op not in ("c10d::send", "c10d::recv_")} == \
        {op: v for op, v in coll.items() if op not in ("c10d::send", "c10d::recv_")}
    for op in ("c10d::send", "c10d::recv_"):
        extra = [a - b for a, b in zip(real_coll[op], coll[op])]
        assert extra[0] >= 1 and extra[1] == extra[2] == VOTE * extra[0] and extra[3] == 0, (op, extra)
    assert real_counts[:2] == counts[:2]  # FLOPs and MACs
    assert got == want


LAYER_PARAMS = 36992  # one decoder layer of CONFIG (tests/distributed/test_plan.py's LAYER)


if __name__ == "__main__":  # the job: python test_plan_gloo.py WORLD OUT_DIR
    import torch.multiprocessing as mp

    mp.spawn(_rank_main, args=(int(sys.argv[1]), sys.argv[2]), nprocs=int(sys.argv[1]))
