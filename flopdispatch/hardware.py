"""Device peaks, the roofline, MFU, and step-time estimates from a count.

Peak figures are dense (no structured sparsity) tensor-core rates from the vendors' datasheets
(docs/planning-numbers.md, "Device table"): FLOP/s per dtype, memory bandwidth in bytes/s and memory
capacity in bytes. Matmul FLOPs
(2 x MACs) are priced at the tensor-core rate of the compute dtype; the other FLOPs at the plain
FP32 vector rate.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Dict, Optional

T = 1e12
GiB = 2**30


@dataclasses.dataclass(frozen=True)
class DeviceSpec:
    """A device's dense peaks: FLOP/s per dtype ('fp32' is the non-tensor vector rate) and bytes/s;
    its links' bytes/s and its memory in bytes."""

    name: str
    peak_flops: Dict[str, float]
    bandwidth: float  # bytes per second
    source: str = ""
    # Interconnect, bytes per second per GPU and per direction (what NCCL-tests' bus bandwidth is
    # compared with): NVLink (or PCIe where a part has none) inside a node, and a typical network
    # (InfiniBand/RoCE NIC per GPU) between nodes; None: not known.
    link_bandwidth: Optional[float] = None
    network_bandwidth: Optional[float] = None
    # Device memory in bytes (None: not known): the datasheet's "80GB" read as GiB, 80 * 2**30 (see
    # the table's comment below).
    memory_bytes: Optional[int] = None

    def interconnect(self, link: str = "nvlink") -> float:
        """Bytes/s per GPU and direction: link 'nvlink' (inside a node) or 'network' (between nodes)."""
        value = {"nvlink": self.link_bandwidth, "network": self.network_bandwidth}.get(link, False)
        if value is False:
            raise ValueError(f"link must be 'nvlink' or 'network', got {link!r}")
        if not value:
            raise ValueError(f"{self.name} has no {link} bandwidth in the device table (pass a DeviceSpec with one)")
        return value

    def usable_memory(self, fraction: Optional[float] = None) -> Optional[int]:
        """Bytes a step may fill: ``fraction`` (default USABLE_MEMORY_FRACTION, 0.9) of
        ``memory_bytes``, rounded down; None when the capacity is not known."""
        fraction = USABLE_MEMORY_FRACTION if fraction is None else fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise ValueError(f"usable memory fraction must be in (0, 1], got {fraction!r}")
        return None if self.memory_bytes is None else int(self.memory_bytes * fraction)

    def peak(self, dtype: str) -> float:
        """Peak matmul FLOP/s for a dtype name ('bf16', 'fp16', 'tf32', 'fp32', 'fp8')."""
        key = _dtype_key(dtype)
        if key not in self.peak_flops:
            raise ValueError(f"{self.name} has no {key} peak; known: {', '.join(sorted(self.peak_flops))}")
        return self.peak_flops[key]


# Interconnect figures (per GPU, per direction = half the datasheets' bidirectional totals):
# NVLink 4 on H100/H200 SXM 900 GB/s -> 450e9; H100 PCIe with an NVLink bridge 600 GB/s -> 300e9;
# A100 SXM NVLink 3 600 GB/s -> 300e9 (the H100, H200 and A100 datasheets); parts without NVLink
# use their host link, PCIe Gen4 x16 64 GB/s -> 32e9 (L4, L40S, RTX 4090 datasheets). Network: one
# NIC per GPU as in NVIDIA's DGX systems: ConnectX-7 NDR InfiniBand 400 Gb/s -> 50e9 (DGX H100/H200
# datasheet), ConnectX-6 HDR 200 Gb/s -> 25e9 (DGX A100 datasheet); a PCIe card with one 200 Gb/s
# NIC per GPU is assumed for the others (25e9).
_NDR, _HDR, _PCIE4 = 50e9, 25e9, 32e9
# The part of a device's memory a planned training step may fill: the rest is for the CUDA context
# (about 0.5 GiB), NCCL's buffers (some hundreds of MiB per communicator, a few per mesh), the
# caching allocator's fragmentation (commonly 5% or more of what it reserves), the memory the
# driver keeps (0.4 GiB on an H100, 1/16 with ECC on an L4 or L40S) and the kernels' workspaces:
# 10% of 80 GiB is 8 GiB. A planning margin, not a measurement; pass another fraction where you
# know better (on 24 GiB ECC parts it is tight: the driver alone keeps 6.25%).
USABLE_MEMORY_FRACTION = 0.9
# Memory capacity: the datasheets' "80GB" (H100 SXM, H100 PCIe, A100 80GB SXM), "141GB" (H200),
# "24GB" (L4, RTX 4090), "48GB" (L40S), read as GiB (2**30 bytes), as the parts are built (HBM and
# GDDR chips come in binary sizes) and as the driver reports them: nvidia-smi's memory.total is
# 81,920 MiB (80 GiB) on an A100 80GB, 81,559 MiB (79.6 GiB) on an H100 80GB HBM3 or PCIe,
# 143,771 MiB (140.4 GiB) on an H200, 24,564 MiB on an RTX 4090, and with ECC on (the default on L4
# and L40S) 15/16 of 24 and 48 GiB: 23,034 and 46,068 MiB. Read as 10^9 bytes, 80 GB and 141 GB
# would be 6.5% under what the H100 and H200 drivers report. What a job can use is less: see
# USABLE_MEMORY_FRACTION.
DEVICES = {
    "H100-SXM": DeviceSpec("H100-SXM", {"fp32": 67 * T, "tf32": 494.7 * T, "bf16": 989.4 * T, "fp16": 989.4 * T,
                                        "fp8": 1978.9 * T}, 3.35e12, "NVIDIA H100 Tensor Core GPU datasheet (SXM5)",
                           450e9, _NDR, 80 * GiB),
    "H100-PCIe": DeviceSpec("H100-PCIe", {"fp32": 51 * T, "tf32": 378 * T, "bf16": 756 * T, "fp16": 756 * T,
                                          "fp8": 1513 * T}, 2.0e12, "NVIDIA H100 Tensor Core GPU datasheet (PCIe)",
                            300e9, _NDR, 80 * GiB),
    "H200": DeviceSpec("H200", {"fp32": 67 * T, "tf32": 494.7 * T, "bf16": 989.4 * T, "fp16": 989.4 * T,
                                "fp8": 1978.9 * T}, 4.8e12, "NVIDIA H200 Tensor Core GPU datasheet (SXM)",
                       450e9, _NDR, 141 * GiB),
    "A100": DeviceSpec("A100", {"fp32": 19.5 * T, "tf32": 156 * T, "bf16": 312 * T, "fp16": 312 * T},
                       2.039e12, "NVIDIA A100 Tensor Core GPU datasheet (80GB SXM)", 300e9, _HDR,
                       80 * GiB),
    "L4": DeviceSpec("L4", {"fp32": 30.3 * T, "tf32": 60 * T, "bf16": 121 * T, "fp16": 121 * T, "fp8": 242.5 * T},
                     300e9, "NVIDIA L4 Tensor Core GPU datasheet", _PCIE4, _HDR, 24 * GiB),
    "L40S": DeviceSpec("L40S", {"fp32": 91.6 * T, "tf32": 183 * T, "bf16": 362.05 * T, "fp16": 362.05 * T,
                                "fp8": 733 * T}, 864e9, "NVIDIA L40S GPU datasheet", _PCIE4, _HDR, 48 * GiB),
    "RTX4090": DeviceSpec("RTX4090", {"fp32": 82.6 * T, "tf32": 82.6 * T, "bf16": 165.2 * T, "fp16": 165.2 * T,
                                      "fp8": 330.3 * T}, 1008e9,
                          "NVIDIA Ada Lovelace GPU architecture whitepaper (RTX 4090, FP32 accumulate)", _PCIE4, _HDR,
                          24 * GiB),
}
ALIASES = {"H100": "H100-SXM", "H100 SXM": "H100-SXM", "H100 PCIE": "H100-PCIe", "H200 SXM": "H200",
           "A100-SXM": "A100", "RTX 4090": "RTX4090", "4090": "RTX4090"}


def _dtype_key(dtype) -> str:
    name = str(dtype).replace("torch.", "").lower()
    return {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "float": "fp32",
            "float8_e4m3fn": "fp8", "float8_e5m2": "fp8"}.get(name, name)


def device_spec(device) -> DeviceSpec:
    """A DeviceSpec by name (case-insensitive; 'H100' is the SXM part), or the spec itself."""
    if isinstance(device, DeviceSpec):
        return device
    key = str(device).strip()
    for name in (key, ALIASES.get(key.upper(), "")):
        for known in DEVICES:
            if name and known.upper() == name.upper():
                return DEVICES[known]
    raise ValueError(f"unknown device {device!r}; known: {', '.join(DEVICES)} (or pass a DeviceSpec)")


def measure_cpu_peak(size: int = 1024, repeats: int = 5) -> DeviceSpec:
    """A CPU 'peak' measured here: the best fp32 matmul rate and copy bandwidth of a few tries."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    src, dst = torch.empty(32 * 2**20 // 4), torch.empty(32 * 2**20 // 4)
    best_flops = best_bw = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best_flops = max(best_flops, 2 * size**3 / (time.perf_counter() - t))
        t = time.perf_counter()
        dst.copy_(src)
        best_bw = max(best_bw, 2 * src.numel() * 4 / (time.perf_counter() - t))
    rates = {k: best_flops for k in ("fp32", "tf32", "bf16", "fp16")}
    return DeviceSpec("CPU (measured)", rates, best_bw, "measured fp32 matmul and copy on this machine")


@dataclasses.dataclass(frozen=True)
class Roofline:
    """What the roofline predicts for some work on a device, and how the measurement compares."""

    compute_seconds: float
    memory_seconds: float
    measured_seconds: Optional[float] = None
    communication_seconds: float = 0.0  # bus bytes / interconnect bandwidth (collectives)

    @property
    def predicted_seconds(self) -> float:
        """The largest of compute, memory and communication time (each hidden under the largest)."""
        return max(self.compute_seconds, self.memory_seconds, self.communication_seconds)

    @property
    def bound(self) -> str:
        """'compute', 'memory' or 'communication': the largest of the three times."""
        if self.communication_seconds > max(self.compute_seconds, self.memory_seconds):
            return "communication"
        return "compute" if self.compute_seconds >= self.memory_seconds else "memory"

    @property
    def measured_over_predicted(self) -> Optional[float]:
        if self.measured_seconds is None or not self.predicted_seconds:
            return None
        return self.measured_seconds / self.predicted_seconds


def roofline(counts, device, dtype="bf16", measured_seconds: Optional[float] = None, *, bus_bytes: int = 0,
             link: str = "nvlink") -> Roofline:
    """Roofline of a Counts (flops, macs, bytes) on a device: matmul FLOPs at the dtype's peak,
    other FLOPs at the fp32 vector peak, bytes at the memory bandwidth; ``bus_bytes`` (of
    ``collectives()``) at the interconnect's bandwidth per direction (``link``: 'nvlink' inside a
    node, 'network' between nodes)."""
    spec = device_spec(device)
    matmul = 2 * counts.macs
    other = max(counts.flops - matmul, 0)
    compute = matmul / spec.peak(dtype) + other / spec.peak_flops.get("fp32", spec.peak(dtype))
    memory = (counts.bytes_read + counts.bytes_written) / spec.bandwidth
    communication = bus_bytes / spec.interconnect(link) if bus_bytes else 0.0
    return Roofline(compute, memory, measured_seconds, communication)


def mfu(tokens_per_second: float, flops_per_token: float, device, dtype="bf16") -> float:
    """Model FLOPs utilization, nanoGPT/PaLM style: flops_per_token * tokens/s over the peak.

    flops_per_token is usually 6N + 12 L H Q T for training (``rule_of_thumb(...).palm_per_token``)
    or the measured ``2 * count.macs / tokens``.
    """
    return flops_per_token * tokens_per_second / device_spec(device).peak(dtype)


@dataclasses.dataclass(frozen=True)
class Estimate:
    """Predicted time of counted work on a device: each op type's roofline, summed (ops run one
    after another), and the same per module. Times in seconds."""

    device: DeviceSpec
    dtype: str
    seconds: float
    compute_bound_seconds: float  # the part of `seconds` spent in compute-bound op types
    modules: Dict[str, Roofline]
    communication_seconds: float = 0.0  # collectives: bus bytes / interconnect bandwidth, in `seconds`

    @property
    def memory_bound_seconds(self) -> float:
        return self.seconds - self.compute_bound_seconds - self.communication_seconds

    @property
    def bound(self) -> str:
        """'compute', 'memory' or 'communication': which part of ``seconds`` is the largest."""
        parts = {"compute": self.compute_bound_seconds, "memory": self.memory_bound_seconds,
                 "communication": self.communication_seconds}
        return max(parts, key=parts.get)


_LINKS = ("nvlink", "network")


def estimate_count(counter, device, dtype="bf16", link: str = "nvlink") -> Estimate:
    """An Estimate from a finished count (any device: meta is the usual one). Collectives take
    their bus bytes over the interconnect (``link``), one after another with the ops (no overlap)."""
    from .counter import Counts

    if link not in _LINKS:  # checked even when nothing was communicated, so a misspelt link is not silent
        raise ValueError(f"link must be 'nvlink' or 'network', got {link!r}")
    spec = device_spec(device)
    total = compute_bound = communication = 0.0
    collectives = counter.collectives() if hasattr(counter, "collectives") else {}
    for phase in ("forward", "backward", "optimizer", "other"):
        for name, op in counter.ops(phase=phase).items():
            if name in collectives:
                continue  # timed below, by their bus bytes
            r = roofline(Counts(flops=op["flops"], macs=op["macs"], bytes_read=op["bytes_read"],
                                bytes_written=op["bytes_written"]), spec, dtype)
            total += r.predicted_seconds
            compute_bound += r.predicted_seconds if r.bound == "compute" else 0.0
    bus = sum(rec["bus_bytes"] for rec in collectives.values())
    if bus:
        communication = bus / spec.interconnect(link)
    total += communication

    def module_roofline(name):
        module_bus = sum(rec["bus_bytes"] for rec in counter.collectives(module=name).values()) if bus else 0
        return roofline(counter.module(name), spec, dtype, bus_bytes=module_bus, link=link)

    modules = {name: module_roofline(name) for name in counter.module_names}
    return Estimate(spec, _dtype_key(dtype), total, compute_bound, modules, communication)


def estimate(model, *args, device="H100", dtype="bf16", train: bool = False, link: str = "nvlink",
             **kwargs) -> Estimate:
    """Predicted time of ``model(*args, **kwargs)`` (and its backward with ``train=True``) on a
    device, from a count run where the inputs are (usually meta tensors): nothing runs on that device.
    Collectives the model runs (DDP, FSDP, tensor parallel under an initialized process group) take
    their bus bytes over ``link``: 'nvlink' (inside a node) or 'network' (between nodes), as
    ``estimate_count``. ``device``, ``dtype``, ``train`` and ``link`` are not passed to the model."""
    if link not in _LINKS:
        raise ValueError(f"link must be 'nvlink' or 'network', got {link!r}")
    import torch

    from .counter import count

    with count(model) as c:
        out = model(*args, **kwargs)
        if train:
            loss = getattr(out, "loss", None)
            if loss is None:
                loss = (out if isinstance(out, torch.Tensor) else out[0]).sum()
            loss.backward()
    return estimate_count(c, device, dtype, link)
