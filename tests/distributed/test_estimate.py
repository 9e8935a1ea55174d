"""fd.estimate times the model's collectives over the link it is told (NVLink or the network)."""
import pytest
import torch
import torch.distributed as dist

import flopdispatch as fd


class AllReduced(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(8, 8)

    def forward(self, x):
        y = self.proj(x)
        dist.all_reduce(y)  # as a tensor-parallel row-parallel layer's output
        return y


@pytest.fixture
def two_rank_fake_group():
    """A 2-rank process group in this one process (PyTorch's fake backend: collectives do nothing)."""
    from torch.testing._internal.distributed.fake_pg import FakeStore

    assert not dist.is_initialized()
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=2)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_estimate_takes_the_link(two_rank_fake_group):
    model, x = AllReduced().to("meta"), torch.empty(4, 8, device="meta")
    nvlink = fd.estimate(model, x, device="H100", dtype="bf16")
    network = fd.estimate(model, x, device="H100", dtype="bf16", link="network")
    # all-reduce of y [4, 8] fp32 = 128 bytes on 2 ranks: bus bytes 128 * 2 (2 - 1) / 2 = 128
    assert nvlink.communication_seconds == pytest.approx(128 / 450e9)  # H100 NVLink 4: 450 GB/s per direction
    assert network.communication_seconds == pytest.approx(128 / 50e9)  # NDR InfiniBand: 50 GB/s
    # only the communication differs; the ops are timed alike
    assert network.seconds - nvlink.seconds == pytest.approx(128 / 50e9 - 128 / 450e9)
    assert network.bound == "communication"
    # per module too: the all-reduce runs in the root's forward, outside `proj`
    assert network.modules[""].communication_seconds == pytest.approx(128 / 50e9)
    assert network.modules["proj"].communication_seconds == 0


def test_estimate_rejects_a_misspelt_link_without_collectives():
    model = torch.nn.Linear(4, 4)
    with pytest.raises(ValueError, match="nvlink"):
        fd.estimate(model, torch.rand(2, 4), link="ethernet")
    assert fd.estimate(model, torch.rand(2, 4), link="network").communication_seconds == 0


def test_device_memory_is_the_datasheets_gb_read_as_gib():
    from flopdispatch.hardware import device_spec

    assert device_spec("H100").memory_bytes == 85_899_345_920  # 80 * 2**30 (nvidia-smi: 81,559 MiB)
    assert device_spec("H200").memory_bytes == 151_397_597_184  # 141 * 2**30 (nvidia-smi: 143,771 MiB)
    assert device_spec("L4").memory_bytes == 25_769_803_776  # 24 * 2**30
    # 90% usable, rounded down: 85,899,345,920 * 9 / 10 = 77,309,411,328
    assert device_spec("H100").usable_memory() == 77_309_411_328
    assert device_spec("H100").usable_memory(0.5) == 42_949_672_960  # 40 GiB
    assert fd.DeviceSpec("mine", {"bf16": 1e12}, 1e11).usable_memory() is None  # capacity not given
    for bad in (0, 1.5, True, "0.9"):
        with pytest.raises(ValueError, match="usable memory fraction must be in"):
            device_spec("H100").usable_memory(bad)
