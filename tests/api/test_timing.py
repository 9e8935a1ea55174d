"""Measured time, achieved rates, roofline and MFU (issue 6), on the CPU.

No assertion here depends on how fast this machine is (issue 11): times are compared only with
relations that hold however loaded the CPU is (a part <= its whole, rate = count / time).
"""
import math

import pytest
import torch
import torch.nn as nn

import flopdispatch as fd


class Slow(nn.Module):
    """A deliberately slow op: a 512 x 512 x 512 matmul (134 M MACs) among tiny ones."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(512, 512))

    def forward(self, x):
        return x @ self.w


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.tiny = nn.Sequential(*[nn.Linear(512, 512, bias=False) for _ in range(1)])
        self.slow = Slow()

    def forward(self, x):
        h = self.tiny(x[:1])  # one row: 262 K MACs
        return self.slow(x) + h.sum()


def test_timing_fields_positive_and_consistent():
    torch.manual_seed(0)
    net = Net()
    x = torch.randn(512, 512, requires_grad=True)
    with fd.count(net, timing=True) as c:
        for _ in range(3):
            net(x).sum().backward()
    total = c.totals.seconds
    assert total > 0 and c.module("").seconds > 0
    assert c.wall_seconds >= total  # the block's wall time includes Python and the counter
    # phases add up to the total time; children never exceed their parent
    assert sum(c.phase(p).seconds for p in fd.PHASES) == pytest.approx(total)
    for phase in (None, "forward", "backward"):
        parent = c.module("", phase=phase).seconds
        assert c.module("tiny", phase=phase).seconds + c.module("slow", phase=phase).seconds <= parent * (1 + 1e-9)
    # Relations that hold on any machine, however loaded (no "x is faster than y": that is a
    # benchmark's claim, not a unit test's): every module's time is part of the root's, and the
    # rates are the exact quotients of the counts by the times.
    slow, tiny = c.module("slow"), c.module("tiny")
    assert slow.seconds > 0 and tiny.seconds >= 0 and slow.seconds + tiny.seconds <= total * (1 + 1e-9)
    assert slow.flops_per_second == slow.flops / slow.seconds > 0
    assert slow.macs == 512 * tiny.macs  # 3 steps x (512^3 vs 512^2) forward, same ratio backward


def test_without_timing_seconds_are_zero():
    model = nn.Linear(4, 4)  # the instance that runs (another one would warn: it never ran)
    with fd.count(model) as c:
        model(torch.randn(2, 4))
    assert c.totals.seconds == 0.0 and c.totals.flops_per_second == 0.0


def test_roofline_hand_numbers():
    h100 = fd.device_spec("H100")
    # a 4096^3 bf16 matmul: 2 * 4096^3 = 137.4 GFLOP at 989.4 TFLOP/s = 138.9 us;
    # bytes 3 * 4096^2 * 2 = 100.7 MB at 3.35 TB/s = 30.0 us: compute-bound
    n = 4096
    mm = fd.Counts(flops=2 * n**3, macs=n**3, bytes_read=2 * n * n * 2, bytes_written=n * n * 2)
    r = fd.roofline(mm, h100, "bf16", measured_seconds=2 * 138.9e-6)
    assert r.compute_seconds == pytest.approx(2 * n**3 / 989.4e12)
    assert r.memory_seconds == pytest.approx(3 * n * n * 2 / 3.35e12)
    assert r.bound == "compute"
    assert r.measured_over_predicted == pytest.approx(2.0, rel=1e-3)
    # an fp32 add of 2^24 elements: 16.8 M FLOPs at 67 TFLOP/s = 0.25 us; 201 MB at 3.35 TB/s = 60 us
    add = fd.Counts(flops=2**24, bytes_read=2 * 4 * 2**24, bytes_written=4 * 2**24)
    assert fd.roofline(add, h100, "fp32").bound == "memory"


def test_mfu_nanogpt_convention():
    # 6N + 12LHQT with N = 124 M, L = 12, H*Q = 768, T = 1024: 744 M + 113 M = 857.2 MFLOP per token
    flops_per_token = 6 * 124e6 + 12 * 12 * 768 * 1024
    # 100 k tokens/s on an A100 (312 TFLOP/s bf16): 85.7 TFLOP/s achieved, 27.5 % MFU
    assert fd.mfu(100_000, flops_per_token, "A100") == pytest.approx(flops_per_token * 1e5 / 312e12)


def test_estimate_on_meta_without_running_on_the_device():
    model = nn.Sequential(nn.Linear(4096, 4096, bias=False, device="meta"))
    x = torch.randn(4096, 4096, device="meta", dtype=torch.float32)
    e = fd.estimate(model, x, device="H100", dtype="bf16")
    # one mm: 2 * 4096^3 FLOPs at the bf16 peak, compute-bound
    assert e.seconds == pytest.approx(2 * 4096**3 / 989.4e12)
    assert e.compute_bound_seconds == e.seconds and e.memory_bound_seconds == 0
    assert e.modules["0"].bound == "compute"


def test_unknown_device_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown device 'TPU9'"):
        fd.device_spec("TPU9")
    with pytest.raises(ValueError, match="has no fp8 peak"):
        fd.device_spec("A100").peak("fp8")


def test_measured_cpu_peak_is_positive():
    spec = fd.measure_cpu_peak(size=256, repeats=2)
    # positive and finite on any machine (how fast is a benchmark's business, not a unit test's)
    assert 0 < spec.peak("fp32") < math.inf and 0 < spec.bandwidth < math.inf
    assert spec.peak("bf16") == spec.peak("fp32")  # one measured fp32 rate stands for every dtype


@pytest.mark.slow  # a command-line subprocess that times a model
def test_cli_timing_flag_adds_time_to_the_report(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "timed.json"
    proc = subprocess.run([sys.executable, "-m", "flopdispatch", "demo", "--device", "cpu", "--seq", "16",
                           "--timing", "--depth", "1", "--json", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "time ms" in proc.stdout and "GFLOP/s" in proc.stdout
    report = fd.Report.load(out)
    assert report.totals.seconds > 0
    assert report.module("h").seconds <= report.module("").seconds
