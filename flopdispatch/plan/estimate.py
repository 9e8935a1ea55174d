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
from typing import Dict, List, Optional, Tuple

__all__ = ["StepEstimate", "step_estimate", "MemoryFit", "memory_fit", "best_mesh", "rank_text", "compare_text",
           "link_table"]


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
    bubble_seconds: float = 0.0  # pipeline: (stages - 1) micro-batch slots idle, compute x (pp - 1) / m

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


@dataclasses.dataclass(frozen=True)
class MemoryFit:
    """Does a rank's memory peak (``Memory.peak``, bytes: an upper estimate) fit a device?
    ``usable`` = ``fraction`` x ``capacity`` (the device's ``memory_bytes``), in bytes; ``largest``
    the biggest term of the peak (name, bytes); ``advice`` what would shrink it. ``fits`` is None
    when the device's memory is not known."""

    device: str
    capacity: Optional[int]
    fraction: float
    usable: Optional[int]
    peak: int
    largest: Tuple[str, int]
    advice: str

    @property
    def fits(self) -> Optional[bool]:
        return None if self.usable is None else self.peak <= self.usable

    def text(self) -> str:
        """One line: the verdict, the numbers it compares, and (when it does not fit) the largest part."""
        if self.usable is None:
            return f"fits {self.device}? not known: no memory capacity in its DeviceSpec (memory_bytes)"
        room = f"{_b(self.usable)} usable ({self.fraction:.0%} of {_capacity(self.capacity)})"
        if self.fits:
            return f"fits {self.device}: peak {_b(self.peak)} <= {room}"
        name, size = self.largest
        return (f"does NOT fit {self.device}: peak {_b(self.peak)} > {room}; largest part {name} {_b(size)}: "
                f"{self.advice}")


def _capacity(n: int) -> str:
    """A device's memory: '85.9 GB, 80 GiB' (GiB from 1 GiB up: datasheets' "80GB" is 80 GiB)."""
    return f"{_b(n)}, {n / 2**30:.4g} GiB" if n >= 2**30 else _b(n)


def _advice(sim, part: str) -> str:
    """What shrinks the largest part of a rank's memory, from what the simulation already used."""
    tp_pp = "more tp (with sequence_parallel=True) or pp"
    if part == "saved activations":
        if sim.recomputed_macs:  # checkpointing ran
            return f"already checkpointed: try {tp_pp}, or a smaller batch or seq"
        return f"try checkpoint=True, or {tp_pp}, or a smaller batch or seq"
    if part in ("params", "grads", "optimizer"):
        if "fsdp" not in sim.mesh:
            return "try an fsdp dimension (FSDP2 shards parameters, gradients and optimizer states)"
        return "try a larger fsdp dimension (over dp), or more tp or pp"
    if part == "gathered groups":
        return "FSDP2 gathers one layer at a time (twice with prefetch): try more tp or pp"
    return "the buffers are not sharded by the built-in plans"


def memory_fit(sim, device="H100", fraction: Optional[float] = None) -> MemoryFit:
    """A MemoryFit of a SimulatedRank on ``device`` (a name or a DeviceSpec): its memory peak
    against ``fraction`` (default ``flopdispatch.hardware.USABLE_MEMORY_FRACTION``, 0.9) of the
    device's memory. The one place the verdict is computed (``SimulatedRank.fits``, ``rank_text``,
    ``compare_text`` and ``best_mesh`` read it)."""
    from ..hardware import USABLE_MEMORY_FRACTION, device_spec

    spec = device_spec(device)
    usable = spec.usable_memory(fraction)
    parts = sim.memory.parts()
    largest = max(parts.items(), key=lambda kv: kv[1])
    return MemoryFit(spec.name, spec.memory_bytes, USABLE_MEMORY_FRACTION if fraction is None else fraction, usable,
                     sim.memory.peak, largest, _advice(sim, largest[0]))


def _job_key(sim) -> tuple:
    """Simulated ranks of one job (its pipeline stages, say) share this key: one candidate mesh."""
    return (tuple(sim.mesh.items()), sim.plan, sim.batch, sim.seq, sim.microbatches, sim.schedule,
            bool(sim.recomputed_macs), sim.dtype)


def best_mesh(sims, device="H100", dtype: Optional[str] = None, fraction: Optional[float] = None,
              overlap: bool = True) -> Optional[list]:
    """The simulated ranks of the best job among ``sims``: the highest predicted MFU (at full
    ``overlap``, or at no overlap) among those whose every rank fits the device (``memory_fit``).
    Ranks of one job (the same mesh and settings: its pipeline stages) count as one candidate,
    at the lowest MFU of its ranks. None when none fits or the device's memory is not known;
    ties go to the first."""
    jobs: Dict[tuple, list] = {}
    for sim in sims:
        jobs.setdefault(_job_key(sim), []).append(sim)
    best, best_mfu = None, -1.0
    for ranks in jobs.values():
        if not all(memory_fit(s, device, fraction).fits for s in ranks):
            continue
        mfu = min(step_estimate(s, device, dtype).mfu(overlap) for s in ranks)
        if mfu > best_mfu:
            best, best_mfu = ranks, mfu
    return best


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
    bubble = compute * (stages - 1) / sim.microbatches
    return StepEstimate(spec.name, dtype, compute, comm, 2 * sim.model_macs, spec.peak(dtype), sim.tokens, bubble)


def _b(n) -> str:
    from ..report import human

    return human(n, "B").strip()


def _mesh_text(sizes: Dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in sizes.items())


def rank_text(sim, device="H100", dtype: Optional[str] = None, fraction: Optional[float] = None) -> str:
    """A terminal summary of one simulated rank: compute, collectives by dimension, memory and
    whether it fits the device (``fraction`` of its memory usable: ``memory_fit``), time."""
    from ..report import human

    e = step_estimate(sim, device, dtype)
    c = sim.count
    lines = [f"rank {sim.rank} of {sim.world} (mesh {_mesh_text(sim.mesh)}, coordinates "
             f"{_mesh_text(sim.coords)}), plan {sim.plan}, batch {sim.batch} x seq {sim.seq} per data-parallel rank",
             f"compute: {human(c.flops, 'FLOPs').strip()}, {human(c.macs, 'MACs').strip()}, "
             f"{_b(c.totals.bytes_read + c.totals.bytes_written)} moved"]
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
    lines.append("  " + memory_fit(sim, device, fraction).text())
    comm = ", ".join(f"{d} {s * 1e3:.1f} ms ({sim.links.get(d, '?')})" for d, s in e.communication_seconds.items())
    lines.append(f"step on {e.device} ({e.dtype}): compute {e.compute_seconds * 1e3:.1f} ms (roofline per op); "
                 f"communication {comm or 'none'}"
                 + (f"; pipeline bubble {e.bubble_seconds * 1e3:.1f} ms ({sim.schedule}, {sim.microbatches} "
                    f"micro-batches)" if e.bubble_seconds else ""))
    lines.append(f"  no overlap {e.no_overlap_seconds * 1e3:.1f} ms (MFU {e.mfu(False):.1%}); "
                 f"full overlap {e.full_overlap_seconds * 1e3:.1f} ms (MFU {e.mfu(True):.1%})")
    return "\n".join(lines)


def _label(sim) -> str:
    """A comparison row's name: the mesh, '+ckpt' with activation checkpointing."""
    return _mesh_text(sim.mesh) + (" +ckpt" if sim.recomputed_macs else "")


def compare_text(sims, device="H100", dtype: Optional[str] = None, fraction: Optional[float] = None) -> str:
    """One table, a row per simulated mesh: per-rank MACs, bus bytes per dimension, memory peak and
    whether it fits the device (``memory_fit``), step-time bounds, MFU, tokens/s per GPU; the best
    mesh (``best_mesh``: the highest full-overlap MFU among those that fit) marked '*' when the
    rows are of more than one mesh."""
    from ..hardware import device_spec
    from ..report import human

    fits = [memory_fit(sim, device, fraction) for sim in sims]
    one_job = len({_job_key(sim) for sim in sims}) == 1  # one mesh (its stages, say): nothing to choose
    best = [] if one_job else best_mesh(sims, device, dtype, fraction, overlap=True) or []
    cautious = [] if one_job else best_mesh(sims, device, dtype, fraction, overlap=False) or []
    head = ("mesh", "rank", "MACs/rank", "bus bytes by dim", "mem peak", "fits", "step (overlap..none)", "MFU",
            "tokens/s/GPU", "best")
    table = [head]
    for sim, fit in zip(sims, fits):
        e = step_estimate(sim, device, dtype)
        dims = " ".join(f"{d}:{_b(b)}" for d, b in sim.bus_bytes_by_dim().items() if b) or "-"
        tp = sim.mesh.get("tp", 1) * sim.mesh.get("pp", 1)
        # the replica's tokens over its tp x pp ranks, per second
        per_gpu = lambda s: sim.tokens / tp / s if s else 0.0  # noqa: E731
        table.append((_label(sim), str(sim.rank), human(sim.count.macs, "MACs").strip(), dims,
                      _b(sim.memory.peak), {True: "yes", False: "no", None: "?"}[fit.fits],
                      f"{e.full_overlap_seconds:.3f}..{e.no_overlap_seconds:.3f} s",
                      f"{e.mfu(False):.1%}..{e.mfu(True):.1%}",
                      f"{per_gpu(e.no_overlap_seconds):,.0f}..{per_gpu(e.full_overlap_seconds):,.0f}",
                      "*" if any(sim is b for b in best) else ""))
    if one_job:
        table = [t[:-1] for t in table]  # no best column
    widths = [max(len(t[i]) for t in table) for i in range(len(table[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(t, widths)).rstrip() for t in table]
    spec = device_spec(device)
    if sims and fits[0].usable is None:
        lines.append(f"fits: not known ({spec.name} has no memory capacity in its DeviceSpec); no best mesh")
    elif sims:
        room = f"{_b(fits[0].usable)} usable, {fits[0].fraction:.0%} of {_capacity(spec.memory_bytes)}"
        if one_job:
            over = [str(sim.rank) for sim, fit in zip(sims, fits) if not fit.fits]
            many = len(over) > 1
            verdict = f"rank{'s' * many} {', '.join(over)} {'do' if many else 'does'} not fit" if over \
                else "every rank fits"
            lines.append(f"{_label(sims[0])}: {verdict} {spec.name} ({room})")
        elif best:
            other = "the same" if cautious[0] is best[0] else _label(cautious[0])
            lines.append(f"* best: {_label(best[0])}, the highest MFU at full overlap among the meshes that fit "
                         f"({room}); at no overlap: {other}")
        else:
            lines.append(f"none of the meshes fits {spec.name} ({room}): no best mesh")
    links = link_table(device)
    lines.append(f"device {links[0][2].split(':')[0]}; links: "
                 + "; ".join(f"{n} {bw / 1e9:.0f} GB/s" for n, bw, _ in links) + " per GPU per direction (hardware.py)")
    return "\n".join(lines)
