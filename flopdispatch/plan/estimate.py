"""Step time, MFU and tables of simulated ranks.

Compute: each op type's roofline (``flopdispatch.hardware.roofline``: matmul FLOPs at the dtype's
tensor-core peak, other FLOPs at the fp32 vector peak, bytes at the memory bandwidth), summed over
op types and phases. Communication: each collective's bus bytes over the link of its mesh
dimension (``DeviceSpec.interconnect``: NVLink inside a node, the network between nodes; figures
and sources in ``hardware.py``). Two bounds: nothing overlaps (compute + communication) and all of
the communication hides under compute (the larger of the two).
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional

__all__ = ["StepEstimate", "step_estimate", "rank_text", "compare_text", "link_table"]


@dataclasses.dataclass(frozen=True)
class StepEstimate:
    """Predicted step time of one rank, in seconds, and the MFU it implies: ``matmul_flops``
    (2 x the rank's counted MACs, activation recomputation left out) over (step time x the
    dtype's peak)."""

    device: str
    dtype: str
    compute_seconds: float
    communication_seconds: Dict[str, float]  # per mesh dimension
    matmul_flops: int
    peak_flops: float
    tokens: int  # tokens of this rank's data-parallel replica in the step
    bubble_seconds: float = 0.0  # pipeline: idle slots, compute x (pp - 1) / (micro-batches x virtual stages)

    @property
    def communication_total(self) -> float:
        return sum(self.communication_seconds.values())

    @property
    def no_overlap_seconds(self) -> float:
        return self.compute_seconds + self.communication_total + self.bubble_seconds

    @property
    def full_overlap_seconds(self) -> float:
        return max(self.compute_seconds, self.communication_total) + self.bubble_seconds

    def mfu(self, overlap: bool) -> float:
        seconds = self.full_overlap_seconds if overlap else self.no_overlap_seconds
        return self.matmul_flops / (seconds * self.peak_flops) if seconds else 0.0


def link_table(device="H100") -> List[tuple]:
    """[(link, bytes/s per GPU and direction, source)] for a device."""
    from ..hardware import device_spec

    spec = device_spec(device)
    return [("nvlink", spec.link_bandwidth, f"{spec.name}: NVLink per GPU per direction ({spec.source}; hardware.py)"),
            ("network", spec.network_bandwidth, f"{spec.name}: one NIC per GPU (hardware.py: DGX datasheets)")]


def step_estimate(sim, device="H100", dtype: Optional[str] = None) -> StepEstimate:
    """A StepEstimate of a SimulatedRank on ``device`` (a name or a DeviceSpec); ``dtype``: the
    matmul dtype (default: the simulation's compute dtype)."""
    from ..counter import Counts
    from ..hardware import device_spec, roofline

    spec = device_spec(device)
    dtype = dtype or sim.dtype
    c = sim.count
    collectives = c.collectives()
    compute = 0.0
    for phase in ("forward", "backward", "optimizer", "other"):
        for name, op in c.ops(phase=phase).items():
            if name in collectives:
                continue
            compute += roofline(Counts(flops=op["flops"], macs=op["macs"], bytes_read=op["bytes_read"],
                                       bytes_written=op["bytes_written"]), spec, dtype).predicted_seconds
    comm: Dict[str, float] = {}
    for row in sim.collectives:
        if row.bus_bytes:
            comm[row.dim] = comm.get(row.dim, 0.0) + row.bus_bytes / spec.interconnect(row.link)
    stages = sim.mesh.get("pp", 1)
    # the idle slots of the schedule: (pp - 1) / m of the work for GPipe and 1F1B, (pp - 1) / (m v)
    # with v chunks per rank interleaved (Narayanan et al. 2021, "Efficient Large-Scale Language
    # Model Training on GPU Clusters Using Megatron-LM", section 2.2.2: bubble fraction (p-1)/(m v))
    bubble = compute * (stages - 1) / (sim.microbatches * sim.virtual_stages)
    return StepEstimate(spec.name, dtype, compute, comm, 2 * sim.model_macs, spec.peak(dtype), sim.tokens, bubble)


def _b(n) -> str:
    from ..report import human

    return human(n, "B").strip()


def _mesh_text(sizes: Dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in sizes.items())


def rank_text(sim, device="H100", dtype: Optional[str] = None) -> str:
    """A terminal summary of one simulated rank: compute, collectives by dimension, memory, time."""
    from ..report import human

    e = step_estimate(sim, device, dtype)
    c = sim.count
    lines = [f"rank {sim.rank} of {sim.world} (mesh {_mesh_text(sim.mesh)}, coordinates "
             f"{_mesh_text(sim.coords)}), plan {sim.plan}, batch {sim.batch} x seq {sim.seq} per data-parallel rank",
             f"compute: {human(c.flops, 'FLOPs').strip()}, {human(c.macs, 'MACs').strip()}, "
             f"{_b(c.totals.bytes_read + c.totals.bytes_written)} moved"]
    if sim.layers:
        lines.append(pipeline_text(sim))
    for phase in ("forward", "backward", "optimizer"):
        p = c.phase(phase)
        if p.flops or p.bytes_read:
            lines.append(f"  {phase:<9} {human(p.flops, 'FLOPs').strip():>14}  {human(p.macs, 'MACs').strip():>14}")
    rows = [r for r in sim.collectives if r.bus_bytes or r.payload]
    if rows:
        lines.append("collectives (per rank):")
        head = ("phase", "op", "dim", "link", "calls", "payload", "bus bytes", "ranks")
        table = [head] + [(r.phase, r.op, r.dim, r.link, f"{r.calls:,}", _b(r.payload), _b(r.bus_bytes),
                           str(r.group_size)) for r in rows]
        widths = [max(len(t[i]) for t in table) for i in range(len(head))]
        for t in table:
            lines.append("  " + "  ".join(v.ljust(w) if i < 4 else v.rjust(w) for i, (v, w) in
                                          enumerate(zip(t, widths))).rstrip())
    m = sim.memory
    lines.append(f"memory (per rank): params {_b(m.params)}, grads {_b(m.grads)}, optimizer {_b(m.optimizer)}, "
                 f"buffers {_b(m.buffers)}, saved activations peak {_b(m.saved_activations_peak)}, "
                 f"largest gathered group {_b(m.gathered_group)}; peak (upper estimate) {_b(m.peak)}")
    comm = ", ".join(f"{d} {s * 1e3:.1f} ms ({sim.links.get(d, '?')})" for d, s in e.communication_seconds.items())
    lines.append(f"step on {e.device} ({e.dtype}): compute {e.compute_seconds * 1e3:.1f} ms (roofline per op); "
                 f"communication {comm or 'none'}"
                 + (f"; pipeline bubble {e.bubble_seconds * 1e3:.1f} ms ({sim.schedule}, {sim.microbatches} "
                    f"micro-batches)" if e.bubble_seconds else ""))
    lines.append(f"  no overlap {e.no_overlap_seconds * 1e3:.1f} ms (MFU {e.mfu(False):.1%}); "
                 f"full overlap {e.full_overlap_seconds * 1e3:.1f} ms (MFU {e.mfu(True):.1%})")
    return "\n".join(lines)


def _layers_text(ranges) -> str:
    return ", ".join(f"{r.start}-{r.stop - 1}" if len(r) > 1 else str(r.start) for r in ranges)


def pipeline_text(sim) -> str:
    """One line: the pipeline stage of a simulated rank, the decoder layers it holds (a range per
    chunk), whether it holds the embedding or the head, the schedule."""
    chunks = len(sim.stage_layers)
    held = sum(len(r) for r in sim.layers)
    ends = [name for name, has in (("embedding", sim.layers[0].start == 0),
                                   ("norm + head", sim.layers[-1].stop == sum(sim.stage_layers))) if has]
    v = f", {sim.virtual_stages} chunks of {chunks}" if sim.virtual_stages > 1 else ""
    return (f"pipeline stage {sim.stage} of {sim.mesh['pp']}{v}: layers {_layers_text(sim.layers)} ({held} of "
            f"{sum(sim.stage_layers)})" + (" + " + " + ".join(ends) if ends else "")
            + f"; {sim.schedule}, {sim.microbatches} micro-batches")


def compare_text(sims, device="H100", dtype: Optional[str] = None) -> str:
    """One table, a row per simulated mesh: per-rank MACs, bus bytes per dimension, memory peak,
    step-time bounds and MFU."""
    from ..report import human

    head = ("mesh", "rank", "MACs/rank", "bus bytes by dim", "mem peak", "step (overlap..none)", "MFU",
            "tokens/s/GPU")
    table = [head]
    for sim in sims:
        e = step_estimate(sim, device, dtype)
        dims = " ".join(f"{d}:{_b(b)}" for d, b in sim.bus_bytes_by_dim().items() if b) or "-"
        tp = sim.mesh.get("tp", 1) * sim.mesh.get("pp", 1)
        # the replica's tokens over its tp x pp ranks, per second
        per_gpu = lambda s: sim.tokens / tp / s if s else 0.0  # noqa: E731
        table.append((_mesh_text(sim.mesh), str(sim.rank), human(sim.count.macs, "MACs").strip(), dims,
                      _b(sim.memory.peak),
                      f"{e.full_overlap_seconds:.3f}..{e.no_overlap_seconds:.3f} s",
                      f"{e.mfu(False):.1%}..{e.mfu(True):.1%}",
                      f"{per_gpu(e.no_overlap_seconds):,.0f}..{per_gpu(e.full_overlap_seconds):,.0f}"))
    widths = [max(len(t[i]) for t in table) for i in range(len(head))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(t, widths)).rstrip() for t in table]
    links = link_table(device)
    lines.append(f"device {links[0][2].split(':')[0]}; links: "
                 + "; ".join(f"{n} {bw / 1e9:.0f} GB/s" for n, bw, _ in links) + " per GPU per direction (hardware.py)")
    return "\n".join(lines)
