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

__all__ = ["StepEstimate", "step_estimate", "JobEstimate", "job_estimate", "MemoryFit", "memory_fit", "best_mesh",
           "rank_text", "compare_text", "stages_text", "link_table"]


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


def _job_mfu(ranks, device, dtype, overlap: bool) -> float:
    """The predicted MFU of one job's simulated ranks: the pipeline job's (``job_estimate``) when
    they are every stage of a pp mesh, else the lowest of the ranks' own."""
    groups = pipeline_jobs(ranks)
    if len(groups) == 1 and len(groups[0]) > 1:
        return job_estimate(groups[0], device, dtype).mfu(overlap)
    return min(step_estimate(s, device, dtype).mfu(overlap) for s in ranks)


def best_mesh(sims, device="H100", dtype: Optional[str] = None, fraction: Optional[float] = None,
              overlap: bool = True) -> Optional[list]:
    """The simulated ranks of the best job among ``sims``: the highest predicted MFU (at full
    ``overlap``, or at no overlap) among those whose every rank fits the device (``memory_fit``).
    Ranks of one job (the same mesh and settings) count as one candidate: every stage of a
    pipeline mesh at its ``JobEstimate``'s MFU, other ranks at the lowest MFU among them. None
    when none fits or the device's memory is not known; ties go to the first."""
    jobs: Dict[tuple, list] = {}
    for sim in sims:
        jobs.setdefault(_job_key(sim), []).append(sim)
    best, best_mfu = None, -1.0
    for ranks in jobs.values():
        if not all(memory_fit(s, device, fraction).fits for s in ranks):
            continue
        mfu = _job_mfu(ranks, device, dtype, overlap)
        if mfu > best_mfu:
            best, best_mfu = ranks, mfu
    return best


@dataclasses.dataclass(frozen=True)
class JobEstimate:
    """Predicted step time of a pipeline job from one simulated rank per stage (every stage is a
    different rank role; the job runs at the pace of its slowest).

    Each stage's work in the step (its rank's compute and communication, ``StepEstimate`` without
    its bubble) is spread over the ``microbatches``: per micro-batch, (compute + communication) / m
    with no overlap, max(compute, communication) / m with full overlap. The slowest stage (the
    bottleneck) sets the pace of the pipeline: a step is m of its micro-batch slots plus the fill
    and drain, (pp - 1) slots, or (pp - 1) / v with v chunks per rank interleaved (section 2.2.2 of
    Narayanan et al. 2021). So step = slot x (m + (pp - 1) / v). Every communication (FSDP's once
    per step included) is spread over the micro-batches alike: a bound, not a schedule.

    MFU: the model FLOPs of one replica's pipeline (2 x the model MACs of each stage's rank, summed
    over the stages; recomputation left out) over the time the pp ranks that ran them hold:
    step x pp x the dtype's peak. Each rank of a stage's tensor-parallel group does the same work,
    so this is also the replica's tp x pp GPUs' average MFU. ``memory_peak``: the largest stage's
    ``Memory.peak`` (bytes; the job needs it on every GPU)."""

    device: str
    stages: tuple  # a StepEstimate per stage, stage order
    ranks: tuple  # the simulated rank of each stage
    microbatches: int
    virtual_stages: int
    model_flops: int  # one replica's pipeline: sum over stages of 2 x model MACs
    peak_flops: float
    tokens: int  # tokens of one data-parallel replica in the step
    memory_peak: int  # bytes, the largest over the stages

    @property
    def pp(self) -> int:
        return len(self.stages)

    def stage_seconds(self, overlap: bool) -> List[float]:
        """Each stage's work in the step (seconds): compute + communication, or the larger."""
        return [max(e.compute_seconds, e.communication_total) if overlap
                else e.compute_seconds + e.communication_total for e in self.stages]

    def bottleneck(self, overlap: bool = False) -> int:
        """The slowest stage's index (the first of equals)."""
        times = self.stage_seconds(overlap)
        return times.index(max(times))

    def step_seconds(self, overlap: bool) -> float:
        slot = max(self.stage_seconds(overlap)) / self.microbatches
        return slot * (self.microbatches + (self.pp - 1) / self.virtual_stages)

    def mfu(self, overlap: bool) -> float:
        seconds = self.step_seconds(overlap)
        return self.model_flops / (seconds * self.pp * self.peak_flops) if seconds else 0.0


def job_estimate(stage_sims, device="H100", dtype: Optional[str] = None) -> JobEstimate:
    """A JobEstimate from one SimulatedRank per pipeline stage of one mesh, in stage order (what
    ``flopdispatch.plan.stages`` returns); a mesh without pp: one rank."""
    from .errors import PlanError

    sims = list(stage_sims)
    if not sims:
        raise PlanError("job_estimate needs one simulated rank per pipeline stage, got none")
    first = sims[0]
    pp = first.mesh.get("pp", 1)
    if any(s.mesh != first.mesh for s in sims):
        raise PlanError("job_estimate: the simulated ranks are of different meshes")
    got = [s.coords.get("pp", 0) for s in sims]
    if got != list(range(pp)):
        raise PlanError(f"job_estimate needs one simulated rank per stage of pp={pp} in order, got stages {got}")
    estimates = tuple(step_estimate(s, device, dtype) for s in sims)
    return JobEstimate(estimates[0].device, estimates, tuple(s.rank for s in sims), first.microbatches,
                       first.virtual_stages, sum(2 * s.model_macs for s in sims), estimates[0].peak_flops,
                       first.tokens, max(s.memory.peak for s in sims))


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
    fit_of = {id(sim): fit for sim, fit in zip(sims, fits)}
    yes_no = {True: "yes", False: "no", None: "?"}
    for group in pipeline_jobs(sims):
        group_fits = [fit_of[id(s)].fits for s in group]
        fits_text = yes_no[None if None in group_fits else all(group_fits)]
        mark = "*" if any(s is b for s in group for b in best) else ""
        if len(group) > 1:  # every stage of a pipeline mesh: one row, the job's (JobEstimate)
            table.append(_job_row(group, device, dtype, fits_text, mark))
            continue
        sim = group[0]
        e = step_estimate(sim, device, dtype)
        dims = " ".join(f"{d}:{_b(b)}" for d, b in sim.bus_bytes_by_dim().items() if b) or "-"
        tp = sim.mesh.get("tp", 1) * sim.mesh.get("pp", 1)
        # the replica's tokens over its tp x pp ranks, per second
        per_gpu = lambda s: sim.tokens / tp / s if s else 0.0  # noqa: E731
        table.append((_label(sim), str(sim.rank), human(sim.count.macs, "MACs").strip(), dims,
                      _b(sim.memory.peak), fits_text,
                      f"{e.full_overlap_seconds:.3f}..{e.no_overlap_seconds:.3f} s",
                      f"{e.mfu(False):.1%}..{e.mfu(True):.1%}",
                      f"{per_gpu(e.no_overlap_seconds):,.0f}..{per_gpu(e.full_overlap_seconds):,.0f}", mark))
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


def pipeline_jobs(sims) -> List[list]:
    """``sims`` grouped into jobs: the consecutive ranks of one pp mesh covering its stages 0..pp-1
    in order form one group; any other rank is a group of its own."""
    sims, groups, i = list(sims), [], 0
    while i < len(sims):
        pp = sims[i].mesh.get("pp", 1) if sims[i].schedule is not None else 1
        run = sims[i:i + pp]
        if pp > 1 and len(run) == pp and all(s.mesh == sims[i].mesh and s.coords.get("pp") == k
                                             for k, s in enumerate(run)):
            groups.append(run)
            i += pp
        else:
            groups.append([sims[i]])
            i += 1
    return groups


def _job_row(group, device, dtype, fits_text: str, mark: str) -> tuple:
    """A comparison row of a pipeline job from its stages (``JobEstimate``): the bottleneck stage's
    MACs and bus bytes, the largest memory peak, the job's step and MFU."""
    from ..report import human

    job = job_estimate(group, device, dtype)
    b = job.bottleneck(False)
    slow = group[b]
    dims = " ".join(f"{d}:{_b(n)}" for d, n in slow.bus_bytes_by_dim().items() if n) or "-"
    gpus = slow.mesh.get("tp", 1) * job.pp  # the replica's tokens over its tp x pp ranks, per second
    per_gpu = lambda t: job.tokens / gpus / t if t else 0.0  # noqa: E731
    full, none = job.step_seconds(True), job.step_seconds(False)
    return (_label(slow), f"stage {b} (rank {slow.rank})", human(slow.count.macs, "MACs").strip(), dims,
            _b(job.memory_peak), fits_text, f"{full:.3f}..{none:.3f} s", f"{job.mfu(False):.1%}..{job.mfu(True):.1%}",
            f"{per_gpu(none):,.0f}..{per_gpu(full):,.0f}", mark)


def _ms(seconds: float) -> str:
    """Milliseconds, 4 significant digits below a second, whole ones above."""
    ms = seconds * 1e3
    return f"{ms:.0f} ms" if ms >= 1000 else f"{ms:.4g} ms"


def stages_text(sims, device="H100", dtype: Optional[str] = None, fraction: Optional[float] = None) -> str:
    """Every stage of a pipeline job, a line each (its rank, layers, MACs, compute and
    communication time, memory peak), then the job's line (``JobEstimate``): the bottleneck, both
    step-time bounds, MFU, the largest memory peak; last, whether the largest stage fits the
    device (``memory_fit``)."""
    from ..report import human

    job = job_estimate(sims, device, dtype)
    lines = []
    for k, (sim, e) in enumerate(zip(sims, job.stages)):
        ends = "".join(t for t, has in ((" + embedding", sim.layers[0].start == 0),
                                        (" + head", sim.layers[-1].stop == sum(sim.stage_layers))) if has)
        lines.append(f"stage {k:>2} rank {sim.rank:>4}: layers {_layers_text(sim.layers)}{ends}; "
                     f"{human(sim.count.macs, 'MACs').strip()}, compute {_ms(e.compute_seconds)}, "
                     f"communication {_ms(e.communication_total)}, memory peak {_b(sim.memory.peak)}")
    v = f" / {job.virtual_stages} chunks" if job.virtual_stages > 1 else ""
    full, none = job.step_seconds(True), job.step_seconds(False)
    lines.append(f"job on {job.device}: bottleneck stage {job.bottleneck(False)} (full overlap: "
                 f"{job.bottleneck(True)}); step = its time / {job.microbatches} micro-batches x ({job.microbatches} "
                 f"+ ({job.pp} - 1){v}): full overlap {_ms(full)} (MFU {job.mfu(True):.1%}), no overlap "
                 f"{_ms(none)} (MFU {job.mfu(False):.1%}); memory peak {_b(job.memory_peak)} (largest stage)")
    largest = max(sims, key=lambda sim: sim.memory.peak)
    lines.append(f"stage {largest.coords.get('pp', 0)} (the largest memory peak) "
                 + memory_fit(largest, device, fraction).text())
    return "\n".join(lines)
