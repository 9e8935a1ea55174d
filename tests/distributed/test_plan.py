"""The planner: one simulated rank (fake backend, fake tensors) against closed forms.

The model everywhere: a tiny Llama from transformers (2 layers, hidden 64, FFN 128, 4 heads of 16,
2 KV heads, vocabulary 256, untied head). Parameters, by hand:
  embedding 256 * 64 = 16,384; lm_head 16,384; final norm 64
  one layer: q 64 * 64 = 4,096, k 64 * 32 = 2,048, v 2,048, o 4,096, gate/up/down 3 * 64 * 128 =
  24,576, two norms 128: 36,992
  P = 16,384 + 16,384 + 64 + 2 * 36,992 = 106,816 (21 tensors: 2 * 9 + 3)
Every first dimension (256, 64, 32, 128) divides by 4, so FSDP2 shards evenly over 2 or 4 ranks.
"""
import pytest

pytest.importorskip("transformers")
import torch  # noqa: E402

from flopdispatch.plan import PlanError, simulate  # noqa: E402

CONFIG = dict(num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=256)
LAYER = 4096 + 2048 + 2048 + 4096 + 3 * 64 * 128 + 2 * 64  # 36,992
ROOT = 256 * 64 + 256 * 64 + 64  # embedding + lm_head + final norm: 32,832
P = ROOT + 2 * LAYER  # 106,816
TENSORS = 2 * 9 + 3  # 21
BATCH, SEQ = 2, 16


@pytest.fixture(scope="module")
def fsdp4():
    return simulate("hf:llama", {"fsdp": 4}, config=CONFIG, batch=BATCH, seq=SEQ, mixed_precision="bf16",
                    reduce_dtype="fp32", rank=1)


def test_sharded_state_is_p_over_n_times_the_dtype(fsdp4):
    m = fsdp4.memory
    assert m.params == P * 4 // 4  # fp32 shards: 106,816 * 4 / 4 = 106,816 bytes
    assert m.grads == P * 4 // 4  # the sharded gradient keeps the parameters' fp32
    # AdamW: exp_avg and exp_avg_sq per element in fp32, plus one fp32 scalar "step" per tensor:
    # 2 * 106,816 + 21 * 4 = 213,716
    assert m.optimizer == 2 * P * 4 // 4 + TENSORS * 4
    # the largest group gathered at once: a layer in bf16, 36,992 * 2 = 73,984 (root: 65,664)
    assert m.gathered_group == LAYER * 2


def test_fsdp_all_gather_and_reduce_scatter_payloads(fsdp4):
    c = fsdp4.count
    ag, rs = "c10d::_allgather_base_", "c10d::_reduce_scatter_base_"
    # forward gathers every parameter once, in the param dtype bf16: 106,816 * 2 = 213,632
    assert c.collectives(phase="forward")[ag]["bytes"] == P * 2
    assert c.collectives(phase="forward")[ag]["calls"] == 3  # two layers and the root
    # reshard_after_forward=None (torch's default): the two layers are gathered again for backward,
    # the root is kept: 2 * 36,992 * 2 = 147,968
    assert c.collectives(phase="backward")[ag]["bytes"] == 2 * LAYER * 2
    # gradients reduce-scattered in the reduce dtype fp32: 106,816 * 4 = 427,264 (the full input)
    assert c.collectives(phase="backward")[rs]["bytes"] == P * 4
    # bus bytes (n - 1) / n: 427,264 * 3 / 4 = 320,448
    assert c.collectives(phase="backward")[rs]["bus_bytes"] == P * 4 * 3 // 4
    rows = {(r.phase, r.op): r for r in fsdp4.collectives}
    assert rows[("backward", rs)].dim == "fsdp" and rows[("backward", rs)].group_size == 4
    assert rows[("backward", rs)].link == "nvlink"  # ranks 0..3 on one 8-GPU node


def test_resharding_the_root_too_gathers_everything_again():
    s = simulate("hf:llama", {"fsdp": 2}, config=CONFIG, batch=BATCH, seq=SEQ, mixed_precision="bf16",
                 reshard_after_forward=True)
    # every group, the root's too: 106,816 * 2 = 213,632 bytes in 3 calls, as in forward
    assert s.count.collectives(phase="backward")["c10d::_allgather_base_"]["bytes"] == P * 2
    assert s.count.collectives(phase="backward")["c10d::_allgather_base_"]["calls"] == 3


def test_keeping_layers_gathered_removes_the_backward_all_gather():
    s = simulate("hf:llama", {"fsdp": 2}, config=CONFIG, batch=BATCH, seq=SEQ, mixed_precision="bf16",
                 reshard_after_forward=False)
    c = s.count
    assert c.collectives(phase="forward")["c10d::_allgather_base_"]["bytes"] == P * 2  # 213,632
    assert "c10d::_allgather_base_" not in c.collectives(phase="backward")
    assert s.memory.params == P * 4 // 2  # 213,632 bytes of fp32 shards on 2 ranks


def _compute(c):
    """{(module, phase): (flops, macs)} of forward and backward, every module."""
    return {(m, p): (c.module(m, phase=p).flops, c.module(m, phase=p).macs)
            for m in c.module_names for p in ("forward", "backward")}


def test_fsdp_rank_computes_what_one_process_computes_on_its_local_batch(fsdp4):
    """FSDP2 gathers whole parameters: the rank's matmuls are those of the unsharded model on its
    own batch of 2 x 16 tokens, module by module and phase by phase."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from flopdispatch import build_model, count

    model = build_model("hf:llama", CONFIG, dtype="bf16")  # as the rank computes under bf16 mixed precision
    with FakeTensorMode(allow_non_fake_inputs=True):  # CPU kernels, as the simulated rank's
        model.to_empty(device="cpu")
        ids = torch.randint(0, 256, (BATCH, SEQ))
        with count(model) as single:
            model(input_ids=ids, labels=ids).loss.backward()
    sim = _compute(fsdp4.count)
    assert sim == _compute(single)
    # the decoder layer's forward matmuls by hand: 32 tokens x (q 4,096 + k 2,048 + v 2,048 + o 4,096
    # + 3 * 8,192) MACs = 32 * 36,864 = 1,179,648, plus attention: 2 * (2 * 4 heads * 16 * 16 * 16) =
    # 65,536 (scores and weighted values at full 16 x 16 as SDPA computes them)
    assert sim[("model.layers.0", "forward")][1] == 32 * 36864 + 2 * 2 * 4 * 16 * 16 * 16


def test_tensor_parallel_splits_the_layers_and_all_reduces_their_outputs():
    s = simulate("hf:llama", {"fsdp": 2, "tp": 2}, config=CONFIG, batch=BATCH, seq=SEQ)
    c = s.count
    # colwise q/k/v/gate/up and rowwise o/down: each rank does half of the layer's projections
    assert c.module("model.layers.0.mlp", phase="forward").macs == 32 * 3 * 8192 // 2  # 393,216
    ar = {r.phase: r for r in s.collectives if r.op == "_c10d_functional::all_reduce"}
    # forward: o_proj and down_proj partial sums, 2 per layer, each 2 x 16 x 64 fp32 = 8,192 bytes
    assert ar["forward"].dim == "tp" and ar["forward"].calls == 4
    assert ar["forward"].payload == 4 * BATCH * SEQ * 64 * 4  # 32,768
    assert ar["forward"].bus_bytes == ar["forward"].payload  # 2 (2 - 1) / 2 = 1
    ag = {r.phase: r for r in s.collectives if r.op == "c10d::_allgather_base_"}
    assert ag["forward"].dim == "fsdp"
    # the head column-wise: half of the vocabulary's logits per rank, 32 tokens x 64 x 128 = 262,144
    assert c.module("lm_head", phase="forward").macs == BATCH * SEQ * 64 * 256 // 2
    # then all-gathered whole for the loss: 2 ranks x 2 x 16 x 128 fp32 = 32,768 bytes of output,
    # bus bytes (2 - 1) / 2 of it = 16,384
    gathered = [r for r in s.collectives if r.phase == "forward" and r.dim == "tp" and "gather" in r.op]
    assert [(r.calls, r.payload, r.bus_bytes) for r in gathered] == [(1, BATCH * SEQ * 256 * 4, BATCH * SEQ * 256 * 2)]
    # parameters per rank: the layers' projections and the head split over tp then fsdp, the
    # embedding and the norms over fsdp: (2 * 36,864 / 2 + 2 * 128 + 16,384 + 64 + 16,384 / 2) / 2
    # = 30,880 fp32 elements: 123,520 bytes
    layer_proj = LAYER - 128  # 36,864
    assert s.memory.params == ((2 * layer_proj // 2) + 2 * 128 + 16384 + 64 + 16384 // 2) // 2 * 4


def test_ddp_all_reduces_the_fp32_gradients():
    s = simulate("hf:llama", {"dp": 2}, config=CONFIG, batch=BATCH, seq=SEQ)
    ar = [r for r in s.collectives if r.op == "c10d::allreduce_"]
    assert [(r.phase, r.dim) for r in ar] == [("backward", "dp")]
    assert ar[0].payload == P * 4  # every gradient once in its buckets: 427,264
    assert s.memory.params == s.memory.grads == P * 4  # replicated


def test_a_second_simulation_in_the_same_process_and_the_link_across_nodes():
    import sys

    import torch.distributed as dist

    hook = sys.excepthook
    s = simulate("hf:llama", "fsdp=-1,tp=2", world=32, config=CONFIG, rank=9, gpus_per_node=8, batch=1, seq=8)
    assert sys.excepthook is hook  # init_process_group's "[rank9]: " prefixing hook is undone
    assert s.mesh == {"fsdp": 16, "tp": 2} and s.coords == {"fsdp": 4, "tp": 1}  # 9 = 4 * 2 + 1
    assert s.links == {"fsdp": "network", "tp": "nvlink", "world": "network"}  # fsdp spans 32 ranks / 8 per node
    assert not dist.is_initialized()
    e = s.estimate("H100")
    assert e.full_overlap_seconds <= e.no_overlap_seconds
    fsdp_bus = sum(r.bus_bytes for r in s.collectives if r.dim == "fsdp")
    assert e.communication_seconds["fsdp"] == pytest.approx(fsdp_bus / 50e9)  # NDR 400 Gb/s per GPU


def test_step_estimate_bounds_and_mfu(fsdp4):
    e = fsdp4.estimate("H100")
    comm = sum(r.bus_bytes for r in fsdp4.collectives) / 450e9  # all on NVLink, 450 GB/s
    assert e.communication_total == pytest.approx(comm)
    assert e.no_overlap_seconds == pytest.approx(e.compute_seconds + comm)
    assert e.full_overlap_seconds == pytest.approx(max(e.compute_seconds, comm))
    # MFU: the rank's matmul FLOPs (2 x MACs) over the time at the bf16 peak, 989.4 TFLOP/s
    assert e.mfu(False) == pytest.approx(2 * fsdp4.count.macs / (e.no_overlap_seconds * 989.4e12))
    text = fsdp4.table()
    assert "c10d::_reduce_scatter_base_" in text and "fsdp" in text and "MFU" in text


@pytest.mark.parametrize("kwargs, message", [
    (dict(mesh="fsdp=3,tp=2", world=8), "has 6 ranks, not the world's 8"),
    (dict(mesh="fsdp=-1,tp=3", world=8), "does not divide the world of 8 ranks"),
    (dict(mesh="fsdp=1,tp=3"), "tp=3 does not divide num_attention_heads=4"),
    (dict(mesh="fsdp=2", parallelize="megatron"), "unknown plan 'megatron'"),
    (dict(mesh="cp=2"), "got 'cp'"),
    (dict(mesh="pp=2"), "schedule 1f1b needs at least as many micro-batches as stages: microbatches=1, pp=2"),
    (dict(mesh="fsdp:2"), "expected NAME=SIZE"),
    (dict(mesh="fsdp=2", rank=2), "rank 2 is not in a world of 2 ranks"),
    (dict(mesh="dp=2,tp=2"), "dp with tp needs an fsdp dimension"),
])
def test_bad_input_is_one_line(kwargs, message):
    import torch.distributed as dist

    kwargs = dict(kwargs)
    mesh = kwargs.pop("mesh")
    with pytest.raises(PlanError, match=message) as e:
        simulate("hf:llama", mesh, config=CONFIG, **kwargs)
    assert "\n" not in str(e.value)
    assert not dist.is_initialized()


def test_a_model_the_plan_does_not_fit():
    def mlp():
        return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))

    with pytest.raises(PlanError, match="plan 'llama' does not fit Sequential: no decoder layers"):
        simulate(mlp, "fsdp=2", parallelize="llama", inputs=lambda b, s: {"input": torch.randn(b, 8)})


def test_a_users_parallelize_function():
    """Your own plan on any model: FSDP2 on each Linear of an MLP, batch 4 x 8 per rank."""
    from torch.distributed.fsdp import fully_shard

    def mlp():
        return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))

    def mine(model, mesh):
        for layer in (model[0], model[2], model):
            fully_shard(layer, mesh=mesh["fsdp"])

    s = simulate(mlp, "fsdp=2", parallelize=mine, inputs=lambda b, s: {"input": torch.randn(b, 8)}, batch=4)
    # forward 4 * 8 * 16 + 4 * 16 * 4 = 768 MACs; backward both weight gradients (768) and layer 2's
    # input gradient (256): 1,792 (as tests/distributed/test_distributed.py's real ranks)
    assert s.count.macs == 1792
    assert s.plan == "mine"
    assert s.count.collectives(phase="backward")["c10d::_reduce_scatter_base_"]["bytes"] == 4 * 212  # fp32 grads


def _cli(argv):
    import argparse

    from flopdispatch.plan import cli

    parser = argparse.ArgumentParser(prog="flopdispatch")
    cli.add_parser(parser.add_subparsers())
    return cli.run(parser.parse_args(argv))


def test_command_line_compares_meshes(capsys):
    config = [f"--config={k}={v}" for k, v in CONFIG.items()]
    assert _cli(["plan", "hf:llama", *config, "--mesh", "fsdp=4", "--mesh", "fsdp=2,tp=2", "--batch", "2",
                 "--seq", "16", "--mixed-precision", "bf16"]) == 0
    out = capsys.readouterr().out
    assert "rank 0 of 4 (mesh fsdp=4" in out and "rank 0 of 4 (mesh fsdp=2,tp=2" in out
    rows = [line.split()[0] for line in out.splitlines() if line.startswith(("fsdp=4 ", "fsdp=2,tp=2 "))]
    assert rows == ["fsdp=4", "fsdp=2,tp=2"]  # the comparison table, one row per mesh
    assert out.count("  fits H100-SXM: peak ") == 2  # each rank's verdict (about 1 MB of 77.3 GB usable)
    assert "* best: " in out and "among the meshes that fit (77.3 GB usable, 90% of 85.9 GB, 80 GiB)" in out


def test_command_line_bad_mesh_is_exit_2(capsys):
    assert _cli(["plan", "hf:llama", "--mesh", "fsdp=3", "--world", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has 3 ranks, not the world's 4" in err
    assert _cli(["plan", "hf:llama", "--mesh", "fsdp=2", "--memory-fraction", "1.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "usable memory fraction must be in (0, 1], got 1.5" in err


def test_activation_checkpointing_recomputes_in_backward_and_mfu_leaves_it_out():
    plain = simulate("hf:llama", {"fsdp": 2}, config=CONFIG, batch=BATCH, seq=SEQ)
    ckpt = simulate("hf:llama", {"fsdp": 2}, config=CONFIG, batch=BATCH, seq=SEQ, checkpoint=True)
    # each layer's forward runs again in backward, up to the last tensor backward needs: all but
    # down_proj, whose output nothing saves (torch's early stop). Layer forward: 32 tokens x 36,864
    # + 65,536 attention = 1,245,184 MACs; down_proj 32 x 128 x 64 = 262,144; two layers:
    # 2 * (1,245,184 - 262,144) = 1,966,080
    assert ckpt.recomputed_macs == 2 * (32 * 36864 + 65536 - 32 * 128 * 64)
    assert ckpt.count.macs == plain.count.macs + ckpt.recomputed_macs
    assert ckpt.model_macs == plain.count.macs  # what MFU counts
    assert ckpt.count.phase("forward").macs == plain.count.phase("forward").macs
    assert ckpt.memory.saved_activations_peak < plain.memory.saved_activations_peak
    assert ckpt.estimate().matmul_flops == 2 * plain.count.macs


def test_simulations_of_different_ranks_in_one_process_do_not_share_cached_meshes():
    """DTensor caches sharding by mesh, and meshes of one layout compare equal whatever their rank:
    without clearing, rank 2 after rank 0 would run its TP all-reduces on rank 0's (destroyed)
    group, and the counter could not record them."""
    rows = {}
    for rank in (0, 2):
        s = simulate("hf:llama", {"fsdp": 2, "tp": 2}, config=CONFIG, rank=rank, batch=BATCH, seq=SEQ, train=False)
        rows[rank] = [(r.op, r.dim, r.calls, r.payload) for r in s.collectives]
    # forward: 2 all-reduces per layer on tp, 2 x 16 x 64 fp32 each: 4 calls, 32,768 bytes
    assert ("_c10d_functional::all_reduce", "tp", 4, 4 * BATCH * SEQ * 64 * 4) in rows[2]
    assert rows[2] == rows[0]


@pytest.mark.parametrize("schedule", ["gpipe", "1f1b"])
def test_pipeline_stages_each_run_their_layers_and_send_their_activations(schedule):
    """pp=2 over the 2 layers, batch 4 x 16 in 2 micro-batches of 2 x 16 (64 tokens in all)."""
    stages = [simulate("hf:llama", {"pp": 2}, config=CONFIG, rank=r, batch=4, seq=SEQ, microbatches=2,
                       schedule=schedule) for r in (0, 1)]
    layer = 64 * 36864 + 2 * 4 * 4 * 16 * 16 * 16  # one layer's forward on 64 tokens: 2,490,368 MACs
    head = 64 * 64 * 256  # lm_head: 1,048,576
    assert stages[0].count.phase("forward").macs == layer  # embedding + layer 0 (a lookup: no MACs)
    assert stages[1].count.phase("forward").macs == layer + head  # layer 1, norm, head
    assert stages[0].count.module("model.layers.0").macs > 0 and "model.layers.1" not in stages[0].count.module_names
    assert "model.layers.1" in stages[1].count.module_names  # the original names are kept
    for s in stages:
        rows = {r.op: r for r in s.collectives}
        # each micro-batch: activations forward, their gradient back: 2 x 16 x 64 fp32 = 8,192 bytes
        assert set(rows) == {"c10d::send", "c10d::recv_"}
        assert all(r.dim == "pp" and r.calls == 2 and r.payload == 2 * 8192 for r in rows.values())
    # parameters: stage 0 the embedding and layer 0 (16,384 + 36,992), stage 1 layer 1, norm, head
    assert stages[0].memory.params == (16384 + LAYER) * 4  # 213,504
    assert stages[1].memory.params == (LAYER + 64 + 16384) * 4  # 213,760
    e = stages[0].estimate()
    assert e.bubble_seconds == pytest.approx(e.compute_seconds * (2 - 1) / 2)  # (pp - 1) / micro-batches


def test_pipeline_bad_input():
    # 2 layers + embedding + head = 4 units over 3 stages: [0, 2, 0] decoder layers
    with pytest.raises(PlanError, match="2 decoder layers do not split into 3 pipeline chunks"):
        simulate("hf:llama", "pp=3", config=CONFIG, microbatches=1, schedule="gpipe")
    with pytest.raises(PlanError, match=r"stage_layers sums to 3, not the 2 decoder layers"):
        simulate("hf:llama", "pp=2", config=CONFIG, batch=2, microbatches=2, stage_layers=[1, 2])
    with pytest.raises(PlanError, match=r"stage_layers has 1 entries, not pp x virtual_stages = 2 x 1 = 2"):
        simulate("hf:llama", "pp=2", config=CONFIG, batch=2, microbatches=2, stage_layers=[2])
    with pytest.raises(PlanError, match="expected a list of positive layer counts"):
        simulate("hf:llama", "pp=2", config=CONFIG, batch=2, microbatches=2, stage_layers=[2, 0])
    with pytest.raises(PlanError, match="apply to a mesh with a pp dimension"):
        simulate("hf:llama", "fsdp=2", config=CONFIG, stage_layers=[1, 1])
    with pytest.raises(PlanError, match="microbatches=3 must be a positive integer dividing batch=4"):
        simulate("hf:llama", "pp=2", config=CONFIG, batch=4, microbatches=3)
    with pytest.raises(PlanError, match="unknown pipeline schedule 'zb'"):
        simulate("hf:llama", "pp=2", config=CONFIG, schedule="zb")


def test_every_pipeline_stage_is_reported(capsys):
    from flopdispatch.plan import stages
    from flopdispatch.plan.simulate import stage_ranks

    # pp outermost of pp=2 x fsdp=2: stage s starts at rank s * 2; pp innermost: at rank s
    assert stage_ranks("pp=2,fsdp=2") == [0, 2] and stage_ranks("fsdp=2,pp=2") == [0, 1]
    sims = stages("hf:llama", "pp=2,fsdp=2", config=CONFIG, batch=2, seq=SEQ, microbatches=2)
    assert [(s.rank, s.coords["pp"]) for s in sims] == [(0, 0), (2, 1)]
    # the head is on the last stage only: 32 tokens x 64 x 256 = 524,288 more forward MACs there
    assert sims[1].count.phase("forward").macs - sims[0].count.phase("forward").macs == 32 * 64 * 256
    config = [f"--config={k}={v}" for k, v in CONFIG.items()]
    assert _cli(["plan", "hf:llama", *config, "--mesh", "pp=2", "--all-stages", "--batch", "2", "--seq", "16",
                 "--microbatches", "2", "--schedule", "gpipe"]) == 0
    out = capsys.readouterr().out
    assert "rank 0 of 2 (mesh pp=2, coordinates pp=0)" in out and "rank 1 of 2 (mesh pp=2, coordinates pp=1)" in out
    assert "pipeline bubble" in out


def test_a_simulated_rank_saves_as_a_report_of_that_rank(fsdp4):
    from flopdispatch import Report

    report = Report.from_dict(fsdp4.report().to_dict())
    assert (report.meta["rank"], report.meta["world_size"]) == (1, 4)
    assert report.meta["target"] == "simulated llama on fsdp=4"
    assert report.collectives() == fsdp4.count.collectives()
    assert report.macs == fsdp4.count.macs


def test_sequence_parallel_gathers_and_scatters_the_sequence_instead_of_all_reducing():
    plain = simulate("hf:llama", {"fsdp": 2, "tp": 2}, config=CONFIG, batch=BATCH, seq=SEQ)
    sp = simulate("hf:llama", {"fsdp": 2, "tp": 2}, config=CONFIG, batch=BATCH, seq=SEQ, sequence_parallel=True)
    rows = {(r.phase, r.op): r for r in sp.collectives if r.dim == "tp"}
    act = BATCH * SEQ * 64 * 4  # one full activation, 2 x 16 x 64 fp32: 8,192 bytes
    ag, rs = "_c10d_functional::all_gather_into_tensor", "_c10d_functional::reduce_scatter_tensor"
    # forward: each block's input gathered along the sequence (2 per layer) and the head's input,
    # plus the logits gathered over the vocabulary (2 x 16 x 256 fp32 = 32,768 bytes)
    assert rows[("forward", ag)].calls == 2 * 2 + 1 + 1
    assert rows[("forward", ag)].payload == 5 * act + BATCH * SEQ * 256 * 4  # 73,728
    # each block's output and the embedding's reduce-scattered back to sequence shards
    assert (rows[("forward", rs)].calls, rows[("forward", rs)].payload) == (2 * 2 + 1, 5 * act)  # 40,960
    assert ("forward", "_c10d_functional::all_reduce") not in rows
    # the same matmuls on the layers' projections: half of every projection per rank
    assert sp.count.module("model.layers.0.mlp", phase="forward").macs == \
        plain.count.module("model.layers.0.mlp", phase="forward").macs == 32 * 3 * 8192 // 2
    assert sp.memory.saved_activations_peak < plain.memory.saved_activations_peak
    with pytest.raises(PlanError, match="needs plan 'llama' and a tp dimension above 1"):
        simulate("hf:llama", {"fsdp": 2}, config=CONFIG, sequence_parallel=True)


def _device(memory_bytes):
    """A made-up device with H100's rates and a tiny memory, for the fit tests."""
    from flopdispatch.hardware import DeviceSpec, device_spec

    h100 = device_spec("H100")
    return DeviceSpec("tiny", h100.peak_flops, h100.bandwidth, "test", h100.link_bandwidth, h100.network_bandwidth,
                      memory_bytes)


def test_the_memory_peak_is_the_sum_of_its_parts_and_fits_an_h100(fsdp4):
    m = fsdp4.memory
    # fp32 shards of P = 106,816 params and grads, AdamW 2 * 106,816 * 4 / 4 + 21 * 4 = 213,716,
    # two gathered bf16 layers 2 * 73,984 = 147,968, plus buffers and the saved-activation peak
    assert m.peak == P + P + (2 * P + TENSORS * 4) + m.buffers + m.saved_activations_peak + 2 * LAYER * 2
    assert m.parts()["gathered groups"] == 147_968 and sum(m.parts().values()) == m.peak
    assert fsdp4.fits("H100") is True  # well under 90% of 80 GiB = 77,309,411,328 bytes
    # a device of exactly the peak, all of it usable, holds it; one byte less does not
    assert fsdp4.fits(_device(m.peak), fraction=1.0) is True
    assert fsdp4.fits(_device(m.peak - 1), fraction=1.0) is False
    assert fsdp4.fits(_device(None)) is None  # a DeviceSpec without memory: not known


def test_a_rank_that_does_not_fit_names_its_largest_part(fsdp4):
    import dataclasses

    from flopdispatch.plan import Memory

    # peak = 100 + 100 + 200 + 0 + 500 + 2 * 50 = 1,000 bytes; the saved activations are the largest
    sim = dataclasses.replace(fsdp4, memory=Memory(100, 100, 200, 0, 500, 50))
    fit = sim.fit(_device(1000))  # 90% usable: 900 bytes
    assert (fit.peak, fit.usable, fit.fits, fit.largest) == (1000, 900, False, ("saved activations", 500))
    assert "checkpoint=True" in fit.advice  # this rank did not checkpoint
    text = sim.table(_device(1000))
    assert "does NOT fit tiny: peak 1 KB > 900 B usable (90% of 1 KB); largest part saved activations 500 B: " \
           "try checkpoint=True" in text
    assert sim.fits(_device(1112)) is True  # int(1,112 * 0.9) = 1,000: the peak, exactly
    assert sim.fits(_device(1111)) is False  # int(999.9) = 999
    # the optimizer states the largest: shard them wider
    sim = dataclasses.replace(fsdp4, memory=Memory(100, 100, 600, 0, 100, 50))
    assert sim.fit(_device(100)).largest == ("optimizer", 600)
    assert "larger fsdp" in sim.fit(_device(100)).advice
    with pytest.raises(ValueError, match="usable memory fraction"):
        sim.fits("H100", fraction=0)


@pytest.fixture(scope="module")
def tp2():
    return simulate("hf:llama", {"fsdp": 2, "tp": 2}, config=CONFIG, batch=BATCH, seq=SEQ, mixed_precision="bf16")


def test_the_best_mesh_is_the_highest_mfu_among_those_that_fit(fsdp4, tp2):
    import dataclasses
    import re

    from flopdispatch.plan import Memory, best_mesh, compare_text

    mfu = {s.plan + str(s.mesh): s.estimate("H100").mfu(True) for s in (fsdp4, tp2)}
    # both fit an H100: the higher full-overlap MFU wins (fsdp=4: each rank does whole matmuls)
    assert mfu["llama{'fsdp': 4}"] > mfu["llama{'fsdp': 2, 'tp': 2}"]
    assert best_mesh([fsdp4, tp2], "H100") == [fsdp4]
    # give fsdp=4 a 1,000-byte peak more than tp's: on a device whose usable memory lies between
    # the two (tp's peak / 0.9, rounded up), only tp fits, and it is the best despite its lower MFU
    big = dataclasses.replace(fsdp4, memory=Memory(0, 0, 0, 0, tp2.memory.peak + 1000, 0))
    device = _device(-(-tp2.memory.peak * 10 // 9))
    assert (big.fits(device), tp2.fits(device)) == (False, True)
    assert best_mesh([big, tp2], device) == [tp2]
    text = compare_text([big, tp2], device)
    cells = [re.split(r"\s{2,}", line) for line in text.splitlines()]  # columns: 2 spaces or more apart
    head = cells[0]
    rows = {c[0]: dict(zip(head, c)) for c in cells if c[0].startswith("fsdp=")}
    assert (rows["fsdp=4"]["fits"], rows["fsdp=2,tp=2"]["fits"]) == ("no", "yes")
    assert (rows["fsdp=4"].get("best"), rows["fsdp=2,tp=2"].get("best")) == (None, "*")
    assert "* best: fsdp=2,tp=2, the highest MFU at full overlap among the meshes that fit" in text
    # ranks of one job (same mesh and settings, as pipeline stages are) fit only together
    other_rank = dataclasses.replace(fsdp4, rank=2, memory=big.memory)
    assert best_mesh([fsdp4, other_rank, tp2], device) == [tp2]
    # nothing fits 1,000 bytes
    assert best_mesh([fsdp4, tp2], _device(1000)) is None
    assert "none of the meshes fits tiny (900 B usable, 90% of 1 KB): no best mesh" in \
        compare_text([fsdp4, tp2], _device(1000))


def test_fsdps_view_warning_is_left_out_under_the_built_in_plans_only():
    """The root's output is a view under a pipeline stage before the last (transformers' slice of
    the hidden states through the Identity head) and under sequence parallel (DTensor's to_local):
    FSDP2 warns about in-place ops on it; the simulation does none. The user's filters stay."""
    import warnings

    class Sliced(torch.nn.Module):  # your own model returning a view: the warning is yours to see
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(8, 4)

        def forward(self, input):
            return self.lin(input)[:, :2]

    def mine(model, mesh):
        from torch.distributed.fsdp import fully_shard

        fully_shard(model, mesh=mesh["fsdp"])

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        simulate("hf:llama", {"fsdp": 2, "tp": 2}, config=CONFIG, batch=BATCH, seq=SEQ, sequence_parallel=True)
        simulate("hf:llama", {"pp": 2, "fsdp": 2}, config=CONFIG, batch=BATCH, seq=SEQ, microbatches=2)
        # the simulation's filter is gone, the caller's still there (modules imported on the way,
        # torch.optim.lr_scheduler say, add their own filters, as they would anywhere)
        assert not [f for f in warnings.filters if f[1] is not None and "view tensor" in f[1].pattern]
        assert ("always", None, Warning, None, 0) in warnings.filters
        assert not [w for w in seen if "returned a view tensor" in str(w.message)]
        simulate(Sliced, "fsdp=2", parallelize=mine, inputs=lambda b, s: {"input": torch.randn(b, 8)})
    assert [w.category for w in seen if "returned a view tensor" in str(w.message)] == [UserWarning]


def test_one_meshs_ranks_are_one_job_with_no_best_to_pick(fsdp4):
    import dataclasses

    from flopdispatch.plan import Memory, compare_text

    other = dataclasses.replace(fsdp4, rank=2, memory=Memory(0, 0, 0, 0, 2000, 0))  # a 2,000-byte peak
    text = compare_text([fsdp4, other], _device(2000))  # usable: int(2,000 * 0.9) = 1,800 bytes
    assert "best" not in text.splitlines()[0]  # no column to mark
    # fsdp4's own peak (about 1 MB) does not fit either
    assert "fsdp=4: ranks 1, 2 do not fit tiny (1.8 KB usable, 90% of 2 KB)" in text
    assert "fsdp=4: every rank fits H100-SXM" in compare_text([fsdp4, other], "H100")


CONFIG3 = dict(CONFIG, num_hidden_layers=3)
CONFIG4 = dict(CONFIG, num_hidden_layers=4)
LAYER_FWD = 64 * 36864 + 2 * 4 * 4 * 16 * 16 * 16  # one layer's forward on 4 x 16 tokens: 2,490,368 MACs
HEAD_FWD = 64 * 64 * 256  # lm_head on 64 tokens: 1,048,576


def test_default_split_of_layers_that_pp_does_not_divide():
    from flopdispatch.plan.pipeline import stage_split

    # 126 layers + embedding + head = 128 units, 8 per stage: the ends hold 7 decoder layers
    assert stage_split(126, 16) == [7] + [8] * 14 + [7]
    assert stage_split(64, 16) == [4] * 16  # pp divides the layers: equal stages, as before
    # 11 + 2 = 13 units over 5 stages: 2 each and 3 more, to the middle stages 1, 2, 3:
    # units [2, 3, 3, 3, 2], less the embedding and the head: [1, 3, 3, 3, 1]
    assert stage_split(11, 5) == [1, 3, 3, 3, 1]
    # 9 + 2 = 11 units over 4 stages: 2 each and 3 more, to stages 1, 2, then the first:
    # units [3, 3, 3, 2]: [2, 3, 3, 1]
    assert stage_split(9, 4) == [2, 3, 3, 1]
    # 3 + 2 = 5 units over 2 stages (no middle stage): 2 each, the one more to the first: [2, 1]
    assert stage_split(3, 2) == [2, 1]


def _single_process_layers(config, batch):
    """{(layer module, phase): MACs} of the whole model in one process on batch x 16 tokens."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from flopdispatch import build_model, count

    model = build_model("hf:llama", config)
    with FakeTensorMode(allow_non_fake_inputs=True):
        model.to_empty(device="cpu")
        ids = torch.randint(0, 256, (batch, SEQ))
        with count(model) as c:
            model(input_ids=ids, labels=ids).loss.backward()
    return {(m, p): c.module(m, phase=p).macs for m in c.module_names if m.count(".") == 2
            for p in ("forward", "backward")}


@pytest.mark.parametrize("config, split, layers", [(CONFIG3, None, [range(0, 2), range(2, 3)]),
                                                   (CONFIG4, [1, 3], [range(0, 1), range(1, 4)])])
def test_uneven_stages_run_their_layers(config, split, layers):
    """3 layers on pp=2 split by default as [2, 1]; 4 layers as [1, 3] given. Batch 4 x 16 in two
    micro-batches; each layer's MACs equal a single process's on the whole batch (micro-batches
    summed), forward and backward."""
    from flopdispatch.plan import stages

    sims = stages("hf:llama", "pp=2", config=config, batch=4, seq=SEQ, microbatches=2, schedule="1f1b",
                  stage_layers=split)
    single = _single_process_layers(config, 4)
    for sim, held in zip(sims, layers):
        assert sim.layers == (held,)
        assert sim.stage_layers == tuple(len(r) for r in layers)
        mine = {(m, p): sim.count.module(m, phase=p).macs for m in sim.count.module_names if m.count(".") == 2
                for p in ("forward", "backward")}
        assert mine == {(f"model.layers.{i}", p): single[(f"model.layers.{i}", p)] for i in held
                        for p in ("forward", "backward")}
    # forward: its layers, the head on the last stage (the embedding is a lookup: no MACs)
    # 3 layers: 2 * 2,490,368 = 4,980,736 and 2,490,368 + 1,048,576 = 3,538,944
    # 4 layers [1, 3]: 2,490,368 and 3 * 2,490,368 + 1,048,576 = 8,519,680
    assert [s.count.phase("forward").macs for s in sims] == [len(layers[0]) * LAYER_FWD,
                                                               len(layers[1]) * LAYER_FWD + HEAD_FWD]
    # parameters: stage 0 the embedding and its layers, stage 1 its layers, the norm and the head
    assert sims[0].memory.params == (16384 + len(layers[0]) * LAYER) * 4
    assert sims[1].memory.params == (len(layers[1]) * LAYER + 64 + 16384) * 4
    text = sims[1].table()
    last = layers[1]
    held = f"{last.start}-{last.stop - 1}" if len(last) > 1 else str(last.start)
    assert f"pipeline stage 1 of 2: layers {held} ({len(last)} of {sum(map(len, layers))}) " \
           "+ norm + head; 1f1b, 2 micro-batches" in text


@pytest.mark.parametrize("schedule", ["interleaved1f1b", "loopedbfs"])
def test_interleaved_stages_hold_every_other_chunk(schedule):
    """4 layers in pp x v = 2 x 2 one-layer chunks: rank 0 holds chunks 0 and 2 (layers 0 and 2, the
    embedding), rank 1 chunks 1 and 3 (layers 1 and 3, the norm and the head). Batch 4 x 16 in 2
    micro-batches."""
    from flopdispatch.plan import stages

    sims = stages("hf:llama", "pp=2", config=CONFIG4, batch=4, seq=SEQ, microbatches=2, schedule=schedule)
    single = _single_process_layers(CONFIG4, 4)
    assert [s.layers for s in sims] == [(range(0, 1), range(2, 3)), (range(1, 2), range(3, 4))]
    for sim in sims:
        mine = {(m, p): sim.count.module(m, phase=p).macs for m in sim.count.module_names if m.count(".") == 2
                for p in ("forward", "backward")}
        assert mine == {(f"model.layers.{r.start}", p): single[(f"model.layers.{r.start}", p)] for r in sim.layers
                        for p in ("forward", "backward")}
        rows = {r.op: r for r in sim.collectives}
        # each rank sends 3 activations-or-gradients per micro-batch: rank 0 chunk 0 -> 1 and
        # 2 -> 3 forward, chunk 2's input gradient back to chunk 1; rank 1 chunk 1 -> 2 forward,
        # chunks 3 -> 2 and 1 -> 0 backward. 2 micro-batches: 6 calls of 2 x 16 x 64 fp32 = 8,192 bytes
        assert all(r.dim == "pp" and r.calls == 6 and r.payload == 6 * 8192 for r in rows.values())
        assert set(rows) == {"c10d::send", "c10d::recv_"}
    # forward: 2 layers each, the head on rank 1: 4,980,736 and 6,029,312 MACs
    assert [s.count.phase("forward").macs for s in sims] == [2 * LAYER_FWD, 2 * LAYER_FWD + HEAD_FWD]
    e = sims[0].estimate()
    # bubble (pp - 1) / (m v) of the compute: 1 / (2 x 2)
    assert e.bubble_seconds == pytest.approx(e.compute_seconds * (2 - 1) / (2 * 2))
    assert "pipeline stage 0 of 2, 2 chunks of 4: layers 0, 2 (2 of 4) + embedding" in sims[0].table()


def test_interleaved_bad_input():
    with pytest.raises(PlanError, match="schedule 1f1b runs one stage per rank: virtual_stages=2"):
        simulate("hf:llama", "pp=2", config=CONFIG4, batch=2, microbatches=2, virtual_stages=2)
    # 5 micro-batches on pp=2: max(1, 5 // 2) = 2 rounds, 5 % 2 != 0
    with pytest.raises(PlanError, match=r"multiple of its rounds max\(1, microbatches // pp\) = 2"):
        simulate("hf:llama", "pp=2", config=CONFIG4, batch=5, microbatches=5, schedule="interleaved1f1b")
    with pytest.raises(PlanError, match="stage_layers has 2 entries, not pp x virtual_stages = 2 x 2 = 4"):
        simulate("hf:llama", "pp=2", config=CONFIG4, batch=2, microbatches=2, schedule="interleaved1f1b",
                 stage_layers=[2, 2])
    # 2 layers cannot fill 4 chunks
    with pytest.raises(PlanError, match="2 decoder layers do not split into 4 pipeline chunks"):
        simulate("hf:llama", "pp=2", config=CONFIG, batch=2, microbatches=2, schedule="interleaved1f1b")


def test_job_estimate_paces_the_pipeline_by_its_slowest_stage():
    """3 layers on pp=2 as [1, 2] (stage 1 also runs the head: the bottleneck), batch 4 x 16 in 2
    micro-batches, 1F1B; then 4 layers interleaved (v=2)."""
    from flopdispatch.plan import job_estimate, stages
    from flopdispatch.plan.estimate import step_estimate

    sims = stages("hf:llama", "pp=2", config=CONFIG3, batch=4, seq=SEQ, microbatches=2, stage_layers=[1, 2])
    job = job_estimate(sims, "H100")
    own = [step_estimate(s, "H100") for s in sims]
    work = [e.compute_seconds + e.communication_total for e in own]  # each stage's step, no bubble
    assert job.stage_seconds(False) == pytest.approx(work)
    assert job.bottleneck(False) == 1 and work[1] > work[0]
    # slot = 1's work / 2 micro-batches; step = slot x (2 + (2 - 1)) = 1.5 x its work
    assert job.step_seconds(False) == pytest.approx(work[1] / 2 * (2 + 1))
    full = max(own[1].compute_seconds, own[1].communication_total)
    assert job.step_seconds(True) == pytest.approx(full / 2 * 3)
    # the replica's model FLOPs are those of one process running the whole model on the batch:
    # 2 x (3 layers + head) forward and backward MACs, summed over the two stages
    from torch._subclasses.fake_tensor import FakeTensorMode

    from flopdispatch import build_model, count

    model = build_model("hf:llama", CONFIG3)
    with FakeTensorMode(allow_non_fake_inputs=True):
        model.to_empty(device="cpu")
        ids = torch.randint(0, 256, (4, SEQ))
        with count(model) as single:
            model(input_ids=ids, labels=ids).loss.backward()
    assert job.model_flops == 2 * (sims[0].count.macs + sims[1].count.macs) == 2 * single.macs
    # MFU: those FLOPs over step x 2 GPUs x the TF32 peak (fp32 parameters: 494.7 TFLOP/s dense)
    assert job.mfu(False) == pytest.approx(2 * single.macs / (job.step_seconds(False) * 2 * own[0].peak_flops))
    assert job.memory_peak == max(s.memory.peak for s in sims)

    inter = stages("hf:llama", "pp=2", config=CONFIG4, batch=4, seq=SEQ, microbatches=2, schedule="interleaved1f1b")
    job = job_estimate(inter, "H100")
    slow = max(job.stage_seconds(False))
    assert job.step_seconds(False) == pytest.approx(slow / 2 * (2 + 1 / 2))  # (pp - 1) / v bubble slots
    with pytest.raises(PlanError, match=r"one simulated rank per stage of pp=2 in order, got stages \[1\]"):
        job_estimate(inter[1:])


def test_compare_gives_a_pipeline_mesh_one_row_from_its_job(capsys):
    from flopdispatch.plan import compare, compare_text, job_estimate

    sims = compare("hf:llama", ["fsdp=2", "pp=2"], config=CONFIG3, batch=4, seq=SEQ, microbatches=2)
    assert [(s.mesh, s.rank) for s in sims] == [({"fsdp": 2}, 0), ({"pp": 2}, 0), ({"pp": 2}, 1)]
    lines = compare_text(sims).splitlines()
    rows = [line for line in lines if line.startswith(("fsdp=2 ", "pp=2 "))]
    assert len(rows) == 2  # one row per mesh
    job = job_estimate(sims[1:])
    # 3 layers as [2, 1]: stage 0 runs 2 layers (2 x 2,490,368 forward MACs), stage 1 one layer
    # and the head (2,490,368 + 1,048,576): stage 0 is the bottleneck
    assert job.bottleneck(False) == 0 and "stage 0 (rank 0)" in rows[1]
    assert f"{job.step_seconds(True):.3f}..{job.step_seconds(False):.3f} s" in rows[1]
    assert f"{job.mfu(False):.1%}..{job.mfu(True):.1%}" in rows[1]
    config = [f"--config={k}={v}" for k, v in CONFIG3.items()]
    assert _cli(["plan", "hf:llama", *config, "--mesh", "pp=2", "--all-stages", "--batch", "4", "--seq", "16",
                 "--microbatches", "2", "--stage-layers", "1,2"]) == 0
    out = capsys.readouterr().out
    assert "stage  0 rank    0: layers 0 + embedding;" in out and "stage  1 rank    1: layers 1-2 + head;" in out
    assert "job on H100-SXM: bottleneck stage 1" in out and "x (2 + (2 - 1))" in out
    assert _cli(["plan", "hf:llama", *config, "--mesh", "pp=2", "--stage-layers", "1,x"]) == 2
    assert "--stage-layers '1,x': expected layer counts" in capsys.readouterr().err


@pytest.mark.parametrize("schedule, config, held, roots", [
    ("1f1b", CONFIG, [1, 1], (16384, 64 + 16384)),
    ("interleaved1f1b", CONFIG4, [2, 2], (16384, 64 + 16384)),
    ("gpipe", CONFIG4, [1, 2, 1], (16384, 0, 64 + 16384)),  # 4 layers + 2 on 3 stages: [1, 2, 1]
])
def test_fsdp_inside_stages_reduce_scatters_each_gradient_once_per_step(schedule, config, held, roots):
    """pp x fsdp=2, 2 micro-batches: as torch's schedule does for an FSDP2 stage module, the
    gradients accumulate unsharded over the micro-batches and each is reduce-scattered once, at
    the end of the rank's schedule (outside autograd: the "other" phase), in fp32. A middle stage
    holds no root parameter (its root gathers and reduces nothing)."""
    from flopdispatch.plan import stages

    sims = stages("hf:llama", f"pp={len(held)},fsdp=2", config=config, batch=4, seq=SEQ, microbatches=2,
                  schedule=schedule)
    for sim, root, layers in zip(sims, roots, held):
        rs = [r for r in sim.collectives if r.op == "c10d::_reduce_scatter_base_"]
        assert [(r.phase, r.dim) for r in rs] == [("other", "fsdp")]
        # each of the stage's layers and its root group once: 1F1B stage 0 (16,384 + 36,992) * 4
        # = 213,504 bytes in 2 calls, stage 1 (36,992 + 64 + 16,384) * 4 = 213,760; interleaved
        # 2 layers a rank: (2 * 36,992 + 16,384) * 4 = 361,472 and (2 * 36,992 + 16,448) * 4 = 361,728
        # 3 stages: stage 1 holds layers 1-2 and no root parameter: 2 * 36,992 * 4 = 295,936 in 2 calls
        assert (rs[0].calls, rs[0].payload) == (layers + (1 if root else 0), (layers * LAYER + root) * 4)


def test_global_batch_compares_meshes_at_the_same_work_per_step(capsys):
    from flopdispatch.plan import compare

    sims = compare("hf:llama", ["fsdp=4", "fsdp=2,tp=2", "pp=2,fsdp=2"], config=CONFIG, global_batch=8, seq=SEQ)
    # 8 sequences over dp x fsdp replicas: fsdp=4 -> 8 / 4 = 2 each; fsdp=2,tp=2 -> 8 / 2 = 4;
    # pp=2,fsdp=2 -> 8 / 2 = 4, in 4 micro-batches of one sequence (both stages simulated)
    assert [(s.mesh, s.batch, s.microbatches) for s in sims] == [
        ({"fsdp": 4}, 2, 1), ({"fsdp": 2, "tp": 2}, 4, 1), ({"pp": 2, "fsdp": 2}, 4, 4), ({"pp": 2, "fsdp": 2}, 4, 4)]
    for s in sims:  # the same tokens per step: replicas x batch x seq = 8 x 16 = 128
        assert s.mesh.get("fsdp", 1) * s.tokens == 8 * SEQ
    # per-rank compute follows: a fsdp=4 rank runs 2 sequences, a tp=2 rank half of the matmuls
    # and attention heads of 4 (the head too, column-wise): the same MACs. On 32 tokens: forward
    # 2 layers x 1,245,184 + the head 32 x 64 x 256 = 3,014,656; backward twice that, plus SDPA's
    # backward recomputing each layer's scores (2.5x its forward: one more 2 x 4 x 16^3 = 32,768
    # per layer): 6,029,312 + 65,536; in all 9,109,504
    assert sims[1].count.macs == sims[0].count.macs == 3 * (2 * 1245184 + 32 * 64 * 256) + 2 * 32768
    with pytest.raises(PlanError, match=r"global_batch=6 does not divide over the 4 data-parallel replicas of mesh "
                                        r"fsdp=4 \(dp x fsdp\)"):
        compare("hf:llama", ["fsdp=4"], config=CONFIG, global_batch=6, seq=SEQ)
    with pytest.raises(PlanError, match="pass batch .* or global_batch .*, not both"):
        compare("hf:llama", ["fsdp=4"], config=CONFIG, global_batch=8, batch=2, seq=SEQ)
    with pytest.raises(PlanError, match="global_batch must be a positive integer, got 0"):
        compare("hf:llama", ["fsdp=4"], config=CONFIG, global_batch=0, seq=SEQ)
    config = [f"--config={k}={v}" for k, v in CONFIG.items()]
    assert _cli(["plan", "hf:llama", *config, "--mesh", "fsdp=4", "--mesh", "fsdp=2,tp=2", "--global-batch", "8",
                 "--seq", "16"]) == 0
    out = capsys.readouterr().out
    assert "batch 2 x seq 16 per data-parallel rank" in out and "batch 4 x seq 16 per data-parallel rank" in out
    assert _cli(["plan", "hf:llama", *config, "--mesh", "fsdp=4", "--global-batch", "8", "--batch", "2"]) == 2
    assert "pass --batch (per data-parallel replica) or --global-batch (per step), not both" in capsys.readouterr().err
    assert _cli(["plan", "hf:llama", *config, "--mesh", "fsdp=4", "--global-batch", "6"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "global_batch=6 does not divide over the 4 data-parallel replicas" in err


def test_a_model_the_plan_does_not_fit_is_one_line():
    # OLMo 2 normalizes the whole q and k projections (q_norm: 4 heads x 16 = 64 features), which
    # tp splits: refused before anything runs; without tp the same model is planned
    olmo = dict(CONFIG, eos_token_id=0, pad_token_id=0, bos_token_id=0)
    with pytest.raises(PlanError, match=r"plan 'llama' with tp does not fit Olmo2ForCausalLM: self_attn.q_norm "
                                        r"normalizes the whole q_proj output \(64 features\)"):
        simulate("hf:olmo2", "fsdp=2,tp=2", config=olmo, batch=1, seq=8)
    assert simulate("hf:olmo2", "fsdp=2", config=olmo, batch=1, seq=8).count.macs > 0

    # an error no check foresees, under a built-in plan: one line naming the plan, the cause kept
    def wrong_inputs(batch, seq):
        return {"input_ids": torch.zeros(batch, seq, 3, dtype=torch.long)}  # one dimension too many

    with pytest.raises(PlanError, match=r"^plan 'llama' on LlamaForCausalLM: the step failed: \w+") as info:
        simulate("hf:llama", "fsdp=2", config=CONFIG, batch=1, seq=8, inputs=wrong_inputs)
    assert "\n" not in str(info.value) and info.value.__cause__ is not None

    # under the user's own parallelize function the error is the user's, as it is
    def mine(model, mesh):
        from torch.distributed.fsdp import fully_shard

        fully_shard(model, mesh=mesh["fsdp"])

    with pytest.raises(Exception) as info:
        simulate("hf:llama", "fsdp=2", config=CONFIG, batch=1, seq=8, inputs=wrong_inputs, parallelize=mine)
    assert not isinstance(info.value, PlanError)


def test_the_command_line_says_a_failed_step_in_one_line(capsys):
    config = [f"--config={k}={v}" for k, v in dict(CONFIG, eos_token_id=0, pad_token_id=0, bos_token_id=0).items()]
    assert _cli(["plan", "hf:olmo2", *config, "--mesh", "fsdp=2,tp=2", "--seq", "8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "self_attn.q_norm normalizes the whole q_proj output" in err


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral", "gemma", "qwen3", "granite"])
def test_the_llama_plan_halves_each_familys_step_on_tp_2(family):
    """Families with Llama-style layer names: on fsdp=2 x tp=2 a rank runs exactly half of the
    step's MACs of a single-process count of the same batch (every matmul, attention head and the
    head split over tp=2; the embedding is a lookup). Gemma ties the head to the embedding."""
    import flopdispatch as fd

    config = dict(CONFIG, head_dim=16)  # qwen3 and gemma default to another head size
    sim = simulate(f"hf:{family}", "fsdp=2,tp=2", config=config, batch=BATCH, seq=SEQ, optimizer=None)
    model = fd.build_model(f"hf:{family}", config, device="cpu")
    ids = torch.zeros(BATCH, SEQ, dtype=torch.long)
    with fd.count(model) as whole:
        model(input_ids=ids, labels=ids).loss.backward()
    assert sim.count.unsupported == {} and 2 * sim.count.macs == whole.macs


def test_loss_parallel_keeps_the_logits_split_into_the_loss():
    plain = simulate("hf:llama", "fsdp=2,tp=2", config=CONFIG, batch=BATCH, seq=SEQ)
    split = simulate("hf:llama", "fsdp=2,tp=2", config=CONFIG, batch=BATCH, seq=SEQ, loss_parallel=True)
    # the head's matmul is split over tp either way: 32 tokens x 64 x 256 / 2 = 262,144 MACs forward
    for sim in (plain, split):
        assert sim.count.module("lm_head", phase="forward").macs == BATCH * SEQ * 64 * 256 // 2
    # no all-gather of the logits (2 x 16 x 256 fp32 = 32,768 bytes) with loss parallel
    def gathers(sim):
        return [(r.calls, r.payload) for r in sim.collectives if r.dim == "tp" and "gather" in r.op]

    assert gathers(plain) == [(1, BATCH * SEQ * 256 * 4)] and gathers(split) == []
    # the loss keeps half of the vocabulary's log-probabilities on each rank: less saved for backward
    assert split.memory.saved_activations_peak < plain.memory.saved_activations_peak
    assert split.count.macs == plain.count.macs  # the same matmuls, split the same way
    for bad in (dict(mesh="fsdp=4"), dict(mesh="pp=2,tp=2", microbatches=2)):
        mesh = bad.pop("mesh")
        with pytest.raises(PlanError, match="loss_parallel=True needs plan 'llama', a tp dimension above 1 and no pp"):
            simulate("hf:llama", mesh, config=CONFIG, batch=BATCH, seq=SEQ, loss_parallel=True, **bad)


def test_a_saved_dtensor_counts_its_local_shard():
    """A DTensor saved for backward holds its shard: a (8, 16) fp32 tensor split over 2 ranks keeps
    4 x 16 x 4 = 256 bytes on a rank, not the 512 of the whole (the wrapper's own storage is a
    stand-in of the global size; the count reads the wrapped local tensor's)."""
    import flopdispatch as fd
    from flopdispatch.plan.simulate import fake_world

    with fake_world(2, 0):
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.tensor import Shard, distribute_tensor

        mesh = init_device_mesh("cpu", (2,), mesh_dim_names=("tp",))
        d = distribute_tensor(torch.randn(8, 16), mesh, [Shard(0)]).requires_grad_()
        with fd.count(activations=True) as c:
            y = (d * 3.0).sin()  # sin saves its input: the product, a DTensor sharded like d
        assert c.saved_peak_bytes == 4 * 16 * 4
        del y
