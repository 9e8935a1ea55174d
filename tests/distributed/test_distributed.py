"""Distributed training on real process groups: 2 gloo ranks on 127.0.0.1 (one job, run once).

One subprocess starts the job (torch.multiprocessing.spawn, 2 ranks) under a hard timeout so a
hang fails fast; each rank counts DDP, FSDP2 (fully_shard), a tensor-parallel Linear pair
(parallelize_module) and plain c10d calls, and writes what it saw as JSON. The tests read it.

The model everywhere: Linear(8, 16) -> ReLU -> Linear(16, 4), local batch 4 x 8, loss .sum().
Parameters: 8 * 16 + 16 + 16 * 4 + 4 = 212 (848 fp32 bytes). MACs of one step, per rank:
forward 4 * 8 * 16 + 4 * 16 * 4 = 512 + 256 = 768; backward: both weight gradients (768) and the
second layer's input gradient (256; the input needs none): 1,024; total 1,792.
"""
import copy
import json
import os
import subprocess
import sys

import pytest
import torch

WORLD = 2
PARAMS = 8 * 16 + 16 + 16 * 4 + 4  # 212
STEP_MACS = 4 * 8 * 16 + 4 * 16 * 4 + (4 * 8 * 16 + 4 * 16 * 4) + 4 * 16 * 4  # 768 + 768 + 256 = 1792
TIMEOUT_S = 120


def _mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))


def _rank_main(rank, world, out_dir):
    import torch.distributed as dist

    import flopdispatch as fd

    # rendezvous through a file (no port to pick: a free port found by the parent could be taken by
    # another process before rank 0 binds it)
    dist.init_process_group("gloo", init_method=f"file://{os.path.join(out_dir, 'rendezvous')}", rank=rank,
                            world_size=world)
    res = {}
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(rank))

    def summary(c):
        return {"macs": c.macs, "flops": c.flops, "collectives": c.collectives(), "unsupported": c.unsupported,
                "by_phase": {p: c.collectives(phase=p) for p in ("forward", "backward", "optimizer", "other")},
                "ops": c.ops()}

    ref = _mlp()
    with fd.count(ref) as c:
        ref(x).sum().backward()
    res["single"] = summary(c)

    from torch.nn.parallel import DistributedDataParallel as DDP
    ddp = DDP(_mlp())
    with fd.count(ddp) as c:
        ddp(x).sum().backward()
    res["ddp"] = summary(c)
    res["ddp"]["report"] = fd.Report.from_count(c).to_dict()

    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    mesh = init_device_mesh("cpu", (world,))
    fsdp = _mlp()
    for layer in (fsdp[0], fsdp[2], fsdp):
        fully_shard(layer, mesh=mesh)
    opt = torch.optim.SGD(fsdp.parameters(), lr=0.1)
    with fd.count(fsdp) as c:
        fsdp(x).sum().backward()
        opt.step()
    res["fsdp"] = summary(c)
    res["fsdp"]["module0"] = c.collectives(module="0")
    res["fsdp"]["by_module"] = {m: {p: c.collectives(module=m, phase=p, exclusive=True) for p in ("forward", "backward")}
                                for m in ("", "0", "2")}
    res["fsdp"]["module_bytes"] = {m: {op: v["bytes_written"] for op, v in c.ops(module=m).items()}
                                   for m in ("0", "2")}
    res["fsdp"]["optimizer_flops"] = c.phase("optimizer").flops

    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module
    tp = parallelize_module(_mlp(), mesh, {"0": ColwiseParallel(), "2": RowwiseParallel()})
    with fd.count(tp) as c:
        tp(x).sum().backward()
    res["tp"] = summary(c)

    import torch.distributed._functional_collectives as funcol
    v = torch.ones(10)
    with fd.count() as c:
        dist.all_reduce(v)
        dist.broadcast(v, 0)
        dist.all_gather_into_tensor(torch.empty(20), v)
        dist.reduce_scatter_tensor(torch.empty(10), torch.ones(20))
        dist.all_to_all_single(torch.empty(10), torch.ones(10))
        if rank == 0:
            dist.send(torch.ones(10), 1)
        else:
            dist.recv(torch.empty(10), 0)
        dist.barrier()
        funcol.all_reduce(torch.ones(10), "sum", dist.group.WORLD).wait()
    res["c10d"] = summary(c)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(res, f)
    dist.barrier()  # no rank tears gloo down while another still finishes its last collective
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), os.environ.get("PYTHONPATH", "")]))
    try:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), str(out)],
                              capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"2-rank gloo job hung (over {TIMEOUT_S} s): {e.stderr and e.stderr[-3000:]}")
    assert proc.returncode == 0, proc.stderr[-5000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD)]


@pytest.mark.slow  # the 2-rank gloo job (module fixture `ranks`)
def test_single_process_reference_is_the_hand_count(ranks):
    for r in ranks:
        assert r["single"]["macs"] == STEP_MACS  # 1,792
        assert r["single"]["collectives"] == {}


@pytest.mark.slow  # the 2-rank gloo job (module fixture `ranks`)
def test_ddp_compute_matches_a_single_process_and_allreduces_the_fp32_gradients(ranks):
    for r in ranks:
        d = r["ddp"]
        assert d["unsupported"] == {}
        assert d["macs"] == r["single"]["macs"] == STEP_MACS
        assert list(d["collectives"]) == ["c10d::allreduce_"]
        ar = d["collectives"]["c10d::allreduce_"]
        assert ar["bytes"] == 4 * PARAMS  # 4 * 212 = 848 bytes of fp32 gradients
        assert ar["bus_bytes"] == 2 * (WORLD - 1) * ar["bytes"] // WORLD  # 2 * 1 / 2 * 848 = 848
        assert ar["world_size"] == WORLD
        assert d["by_phase"]["backward"] == d["collectives"]  # the bucketed all-reduce runs in backward
        assert d["ops"]["c10d::allreduce_"]["flops"] == 0
        assert d["ops"]["c10d::allreduce_"]["bytes_written"] == 4 * PARAMS  # in place: it writes the buffer


@pytest.mark.slow  # the 2-rank gloo job (module fixture `ranks`)
def test_fsdp2_gathers_parameters_and_reduce_scatters_gradients(ranks):
    for r in ranks:
        f = r["fsdp"]
        assert f["unsupported"] == {}
        assert f["macs"] == STEP_MACS
        ag, rs = f["collectives"]["c10d::_allgather_base_"], f["collectives"]["c10d::_reduce_scatter_base_"]
        assert ag["bytes"] >= 4 * PARAMS and rs["bytes"] >= 4 * PARAMS  # full (unsharded) buffers
        assert ag["bus_bytes"] == ag["bytes"] * (WORLD - 1) // WORLD
        assert rs["bus_bytes"] == rs["bytes"] * (WORLD - 1) // WORLD
        assert f["by_phase"]["forward"]["c10d::_allgather_base_"]["bytes"] == 4 * PARAMS  # each layer once
        assert f["by_phase"]["backward"]["c10d::_reduce_scatter_base_"]["bytes"] == 4 * PARAMS
        # module "0" (Linear(8, 16)) is gathered for its own forward: (8 * 16 + 16) * 4 = 576 bytes
        assert f["module0"]["c10d::_allgather_base_"]["bytes"] >= (8 * 16 + 16) * 4
        # FSDP's copy helpers are local copies: no FLOPs, bytes both ways
        for op in ("fsdp::all_gather_copy_in", "fsdp::split_with_sizes_copy", "fsdp::chunk_cat"):
            assert f["ops"][op]["flops"] == 0 and f["ops"][op]["bytes_written"] > 0
        # SGD on the local shards (DTensor parameters): _foreach_add(p, g, alpha=-lr), 1 FLOP per
        # element as _ops.py declares it, on this rank's half of every parameter (dim 0 split in 2):
        # (128 + 16 + 64 + 4) / 2 = 106, not the 212 of the whole parameters
        assert f["optimizer_flops"] == PARAMS // WORLD


@pytest.mark.slow  # the 2-rank gloo job (module fixture `ranks`)
def test_fsdp2_collectives_are_charged_to_the_module_whose_parameters_they_move(ranks):
    """FSDP2's backward hook of module "2" prefetches module "0"'s all-gather, and module "0"'s
    reduce-scatter runs in the engine's final callback (its input needs no gradient): both are
    charged to "0", the module whose parameter group issues them, not to where they run."""
    own = {"0": (8 * 16 + 16) * 4, "2": (16 * 4 + 4) * 4}  # 576 and 272 fp32 bytes
    for r in ranks:
        m = r["fsdp"]["by_module"]
        for name, nbytes in own.items():
            # gathered for its forward (resharded after it) and again for its backward
            assert m[name]["forward"]["c10d::_allgather_base_"]["bytes"] == nbytes
            assert m[name]["backward"]["c10d::_allgather_base_"]["bytes"] == nbytes
            assert m[name]["backward"]["c10d::_allgather_base_"]["calls"] == 1
            assert m[name]["backward"]["c10d::_reduce_scatter_base_"]["bytes"] == nbytes
        assert m[""]["backward"] == {}  # nothing left outside the modules (the root has no parameters)
        # the copy-in into the all-gather buffer follows its all-gather: module "0" writes its
        # rank's half of its parameters twice (forward and backward): 2 * 576 / 2 = 576 bytes
        assert r["fsdp"]["module_bytes"]["0"]["fsdp::all_gather_copy_in"] == own["0"]
        assert r["fsdp"]["module_bytes"]["2"]["fsdp::all_gather_copy_in"] == own["2"]


@pytest.mark.slow  # the 2-rank gloo job (module fixture `ranks`)
def test_tensor_parallel_counts_the_local_shards_and_the_allreduce(ranks):
    for r in ranks:
        t = r["tp"]
        assert t["unsupported"] == {}
        assert t["macs"] == STEP_MACS // WORLD  # column then row split: each rank half of every product: 896
        ar = t["by_phase"]["forward"]["_c10d_functional::all_reduce"]
        assert ar["calls"] == 1 and ar["world_size"] == WORLD
        assert ar["bytes"] == 4 * 4 * 4  # RowwiseParallel's partial output, 4 x 4 fp32: 64 bytes
        assert ar["bus_bytes"] == 64  # 2 * (2 - 1) / 2 * 64


@pytest.mark.slow  # the 2-rank gloo job (module fixture `ranks`)
def test_c10d_payload_and_bus_bytes_conventions(ranks):
    for rank, r in enumerate(ranks):
        c = r["c10d"]
        coll, ops = c["collectives"], c["ops"]
        assert c["unsupported"] == {}
        assert c["flops"] == 0
        s = 10 * 4  # a 10-element fp32 buffer: 40 bytes
        assert coll["c10d::allreduce_"] == {"calls": 1, "bytes": s, "bus_bytes": s, "world_size": 2, "seconds": 0.0}
        assert coll["c10d::broadcast_"]["bytes"] == s and coll["c10d::broadcast_"]["bus_bytes"] == s  # 1x
        assert coll["c10d::_allgather_base_"]["bytes"] == 2 * s  # the gathered buffer, 20 elements
        assert coll["c10d::_allgather_base_"]["bus_bytes"] == s  # (2 - 1) / 2 * 80
        assert coll["c10d::_reduce_scatter_base_"]["bytes"] == 2 * s  # the full input, 20 elements
        assert coll["c10d::_reduce_scatter_base_"]["bus_bytes"] == s
        assert coll["c10d::alltoall_base_"]["bytes"] == s and coll["c10d::alltoall_base_"]["bus_bytes"] == s // 2
        assert coll["c10d::barrier"]["calls"] >= 1 and coll["c10d::barrier"]["bytes"] == 0
        assert coll["_c10d_functional::all_reduce"]["bytes"] == s
        assert coll["_c10d_functional::wait_tensor"]["bytes"] == 0
        p2p = "c10d::send" if rank == 0 else "c10d::recv_"
        assert coll[p2p]["bytes"] == s and coll[p2p]["bus_bytes"] == s
        # local bytes: the all-gather reads its shard and writes the whole; broadcast's root only
        # reads, the other rank only writes; an in-place all-reduce reads and writes its buffer
        assert (ops["c10d::_allgather_base_"]["bytes_read"], ops["c10d::_allgather_base_"]["bytes_written"]) == (s, 2 * s)
        bc = ops["c10d::broadcast_"]
        assert (bc["bytes_read"], bc["bytes_written"]) == ((s, 0) if rank == 0 else (0, s))
        assert (ops["c10d::allreduce_"]["bytes_read"], ops["c10d::allreduce_"]["bytes_written"]) == (s, s)


@pytest.mark.slow  # the 2-rank gloo job (module fixture `ranks`)
def test_report_keeps_the_collectives(ranks):
    import flopdispatch as fd

    d = ranks[1]["ddp"]
    report = fd.Report.from_dict(d["report"])
    assert report.collectives() == d["collectives"]
    assert report.collectives(phase="backward") == d["collectives"] and report.collectives(phase="forward") == {}
    assert report.collectives(module="")["c10d::allreduce_"]["bytes"] == 4 * PARAMS  # the root holds it all
    again = fd.Report.from_dict(json.loads(report.to_json()))
    assert again.to_dict() == report.to_dict()
    text = report.table()
    assert "communication" in text and "c10d::allreduce_" in text and "848 B" in text


SCRIPT = """
import torch
m = torch.nn.Linear(8, 4)
m(torch.ones(2, 8)).sum().backward()
"""


def _run_cli(tmp_path, rank, *options):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "flopdispatch", "run", *options, str(script)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=TIMEOUT_S, env=env)


@pytest.mark.slow  # a torchrun job of two processes
def test_run_under_torchrun_writes_one_report_per_rank(tmp_path):
    """RANK and WORLD_SIZE as torchrun sets them: out.json becomes out.rank<R>.json (and the page
    likewise), rank and world size are in the metadata, and only rank 0 prints its table."""
    import flopdispatch as fd

    quiet = _run_cli(tmp_path, 1, "--json", "out.json", "--html", "out.html")
    assert quiet.returncode == 0, quiet.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out")) == ["out.rank1.html",
                                                                                     "out.rank1.json"]
    assert "module" not in quiet.stderr  # rank 1 prints no table
    report = fd.Report.load(tmp_path / "out.rank1.json")
    assert (report.meta["rank"], report.meta["world_size"]) == (1, 2)
    assert report.macs == 2 * 8 * 4 + 2 * 8 * 4  # forward 64 + weight gradient 64 (the input needs none)
    loud = _run_cli(tmp_path, 0, "--json", "out.json")
    assert loud.returncode == 0 and "Linear" in loud.stderr  # rank 0 prints it
    assert (tmp_path / "out.rank0.json").exists() and not (tmp_path / "out.json").exists()
    asked = _run_cli(tmp_path, 1, "--all-ranks")
    assert "Linear" in asked.stderr


@pytest.mark.slow  # the 2-rank gloo job (module fixture `ranks`)
def test_show_merges_one_report_per_rank(ranks, tmp_path, capsys):
    """show out.rank0.json out.rank1.json: one row per rank, the job's totals, imbalance flagged."""
    from flopdispatch.cli import main

    paths = []
    for rank, r in enumerate(ranks):
        report = copy.deepcopy(r["ddp"]["report"])
        report["meta"] = dict(report["meta"], rank=rank, world_size=WORLD, target="train.py")
        if rank == 1:  # rank 1 does twice the compute: max/mean = 2 / 1.5 = 1.33
            for scope in report["scopes"]:  # the op rows, which every figure of the report sums
                for ops in scope.get("ops", {}).values():
                    for row in ops.values():
                        row[1] *= 2
        paths.append(tmp_path / f"out.rank{rank}.json")
        paths[-1].write_text(json.dumps(report))
    assert main(["show", "--units", "K", str(paths[1]), str(paths[0])]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "flopdispatch: 2 ranks of 2, train.py"
    rows = {line.split()[0]: line.split() for line in lines if line[:1].isdigit()}
    assert sorted(rows) == ["0", "1"]  # in rank order whatever the order of the files
    flops = [ranks[0]["ddp"]["flops"], 2 * ranks[1]["ddp"]["flops"]]
    total = next(line for line in lines if line.startswith("job total")).split()
    assert total[2] == f"{sum(flops) / 1e3:.2f}"  # --units K: the sum of both ranks' FLOPs
    assert "0.85 KB" in out  # each rank's all-reduce payload, 848 bytes
    assert "FLOPs: max/mean 1.33 (rank 1 has the most)" in out
    assert main(["show", "--json", str(tmp_path / "x.json"), str(paths[0]), str(paths[1])]) == 2


def test_roofline_times_communication_by_bus_bytes():
    import flopdispatch.hardware as hw
    from flopdispatch.counter import Counts

    h100 = hw.device_spec("H100")
    assert h100.interconnect("nvlink") == 450e9  # NVLink 4: 900 GB/s both directions, 450 GB/s each way
    assert h100.interconnect("network") == 50e9  # NDR InfiniBand 400 Gb/s per GPU
    # 1 GMAC of bf16 matmul: 2e9 / 989.4e12 s; 9e9 bus bytes over NVLink: 9e9 / 450e9 = 0.02 s
    r = hw.roofline(Counts(flops=2 * 10**9, macs=10**9), "H100", "bf16", bus_bytes=9 * 10**9)
    assert r.compute_seconds == pytest.approx(2e9 / 989.4e12)
    assert r.communication_seconds == pytest.approx(0.02)
    assert r.bound == "communication" and r.predicted_seconds == pytest.approx(0.02)
    over_ib = hw.roofline(Counts(), "H100", bus_bytes=9 * 10**9, link="network")
    assert over_ib.communication_seconds == pytest.approx(9e9 / 50e9)  # 0.18 s
    assert hw.roofline(Counts(flops=2, macs=1), "H100").bound == "compute"  # no collectives: as before
    with pytest.raises(ValueError, match="nvlink"):
        hw.roofline(Counts(), "H100", bus_bytes=1, link="ethernet")


def test_estimate_adds_the_collectives_time():
    import flopdispatch.hardware as hw
    from flopdispatch.counter import Counts

    class Counted:  # what estimate_count reads of a count: one mm and one all-reduce in backward
        module_names = []

        def ops(self, phase=None):
            if phase != "backward":
                return {}
            return {"aten::mm": {"flops": 2 * 10**12, "macs": 10**12, "bytes_read": 0, "bytes_written": 0},
                    "c10d::allreduce_": {"flops": 0, "macs": 0, "bytes_read": 4 * 10**9, "bytes_written": 4 * 10**9}}

        def collectives(self, phase=None, module=None):
            return {"c10d::allreduce_": {"calls": 1, "bytes": 4 * 10**9, "bus_bytes": 7 * 10**9, "world_size": 8}}

    e = hw.estimate_count(Counted(), "H100", "bf16")
    mm = 2e12 / 989.4e12  # ~2.02 ms of matmul
    assert e.communication_seconds == pytest.approx(7e9 / 450e9)  # 15.6 ms: the all-reduce's bus bytes
    assert e.seconds == pytest.approx(mm + 7e9 / 450e9)  # its local bytes are not timed again
    assert e.compute_bound_seconds == pytest.approx(mm) and e.memory_bound_seconds == pytest.approx(0, abs=1e-12)
    assert e.bound == "communication"


def test_bus_factors():
    from fractions import Fraction

    from flopdispatch.comm import bus_factor
    assert bus_factor("all_reduce", 8) == Fraction(14, 8)  # 2 (n - 1) / n
    assert bus_factor("all_gather", 8) == bus_factor("reduce_scatter", 8) == Fraction(7, 8)
    assert bus_factor("all_to_all", 4) == Fraction(3, 4)
    assert bus_factor("broadcast", 8) == bus_factor("send", 2) == bus_factor("recv", 2) == 1
    assert bus_factor("all_reduce", 1) == 0 and bus_factor("barrier", 8) == 0


if __name__ == "__main__":  # the job: python test_distributed.py OUT_DIR
    import torch.multiprocessing as mp

    mp.spawn(_rank_main, args=(WORLD, sys.argv[1]), nprocs=WORLD)
