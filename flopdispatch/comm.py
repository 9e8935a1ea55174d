"""Communication: collectives and point-to-point ops (torch.distributed) as their own record.

Every op of the ``comm`` family in ``_ops.py`` (c10d ops, functional collectives, FSDP2's copy
helpers) reaches ``record`` through the compiled recorder, once per call, with the module scope
and phase the call ran in. A collective costs no FLOPs; its record holds, per (scope, phase, op):
calls, the payload bytes (per rank, the size the NCCL-tests convention measures the op by), the
bus bytes (payload times the algorithm's factor) and the largest process-group size seen. The
bytes it reads and writes locally go to the ordinary table like any op's. Collectives are rare
(a few per step), so this runs in Python; the compiled hot path is untouched. The count's results
engine (``flopdispatch.results``) reads the records; queries and the table live there.
"""
from __future__ import annotations

import sys
import threading
from fractions import Fraction
from typing import Dict, List, Optional

from . import _ops
from ._counts import PHASES
from ._text import terminal_safe

__all__ = ["bus_factor"]

_KIND_NAMES = {
    _ops.COMM_ALL_REDUCE: "all_reduce", _ops.COMM_ALL_GATHER: "all_gather",
    _ops.COMM_REDUCE_SCATTER: "reduce_scatter", _ops.COMM_ALL_TO_ALL: "all_to_all",
    _ops.COMM_BROADCAST: "broadcast", _ops.COMM_REDUCE: "reduce", _ops.COMM_GATHER: "gather",
    _ops.COMM_SCATTER: "scatter", _ops.COMM_SEND: "send", _ops.COMM_RECV: "recv",
    _ops.COMM_BARRIER: "barrier", _ops.COMM_WAIT: "wait",
}


def bus_factor(kind: str, world_size: int) -> Fraction:
    """Bus bytes per payload byte for a collective of ``kind`` on ``world_size`` ranks (NCCL-tests):
    all_reduce 2(n-1)/n; all_gather, reduce_scatter, all_to_all, gather, scatter (n-1)/n;
    broadcast, reduce, send, recv 1; barrier, wait 0."""
    n = max(int(world_size), 1)
    if kind == "all_reduce":
        return Fraction(2 * (n - 1), n)
    if kind in ("all_gather", "reduce_scatter", "all_to_all", "gather", "scatter"):
        return Fraction(n - 1, n)
    if kind in ("broadcast", "reduce", "send", "recv"):
        return Fraction(1)
    return Fraction(0)


def _nbytes(x) -> int:
    """Bytes of the tensors in x (a tensor, or nested lists/tuples of them)."""
    import torch  # here, not at module level: reading reports (schema, show) needs no torch

    if isinstance(x, torch.Tensor):
        return int(x.numel()) * x.element_size()
    if isinstance(x, (list, tuple)):
        return sum(_nbytes(v) for v in x)
    return 0


def _arg(args, kwargs, arg_names, pos):
    if pos < 0:
        return None
    if pos < len(args):
        return args[pos]
    if kwargs and pos < len(arg_names):
        return kwargs.get(arg_names[pos])
    return None


_ProcessGroup = None


def _group_info(cache: dict, group) -> tuple:
    """(size, rank, group name or None) of a process group given as a ProcessGroup (or its
    TorchScript box), a group name, or a group size (rank unknown: -1). Cached per group name in
    ``cache`` (one count's)."""
    import torch

    global _ProcessGroup
    if group is None:
        return 1, 0, None
    if isinstance(group, int):
        return group, -1, None
    if isinstance(group, torch.ScriptObject):
        if _ProcessGroup is None:
            _ProcessGroup = torch._C._distributed_c10d.ProcessGroup
        group = _ProcessGroup.unbox(group)  # the ProcessGroup object (a few microseconds)
    name = group if isinstance(group, str) else getattr(group, "group_name", None)
    found = cache.get(name) if name is not None else None
    if found is None:
        if isinstance(group, str):
            from torch.distributed.distributed_c10d import _resolve_process_group

            group = _resolve_process_group(group)
        found = (int(group.size()), int(group.rank()), name)
        if name is not None:
            cache[name] = found
    return found


def _state(mode) -> dict:
    state = mode.__dict__.get("_fd_comm")
    if state is None:
        state = mode.__dict__["_fd_comm"] = {"records": {}, "groups": {}, "by_group": {}}
    return state


_FSDP_GROUP_MODULE = "torch.distributed.fsdp._fully_shard._fsdp_param_group"
# FSDPParamGroup's methods that issue its collectives and copies: the all-gather (and copy-in) of
# its parameters, their copy-out, the reduce-scatter of its gradients.
_FSDP_METHODS = frozenset({"unshard", "wait_for_unshard", "post_backward"})
_FSDP_FRAME_DEPTH = 32  # dist.* wrappers, no_grad and record_function frames lie between


def _fsdp_owner_scope(mode) -> Optional[int]:
    """The scope of the module whose FSDP2 parameter group issues the call running now, or None.

    FSDP2 prefetches in backward: a module's hook unshards the next module's parameters, so the
    all-gather runs inside the wrong module's scope; its final callback reduce-scatters outside
    every module. The group (``self`` of the FSDPParamGroup method on the Python stack) says whose
    parameters move. A group of several modules (``fully_shard([a, b])``) is charged to the first."""
    module = sys.modules.get(_FSDP_GROUP_MODULE)
    group_class = getattr(module, "FSDPParamGroup", None) if module is not None else None
    if group_class is None:
        return None
    frame = sys._getframe(2)
    for _ in range(_FSDP_FRAME_DEPTH):
        if frame is None:
            return None
        if frame.f_code.co_name in _FSDP_METHODS:
            group = frame.f_locals.get("self")
            if isinstance(group, group_class):
                modules = getattr(group, "modules", None) or ()
                scope = mode.module_scope(modules[0]) if modules else -1
                return scope if scope >= 0 else None
        frame = frame.f_back
    return None


def record(declaration, mode, scope, phase, func, args, kwargs, out):
    """Called by the recorder for a comm-family op (``declaration``: ``_core.declaration``, bound
    by ``_core`` when it installs the hook): keeps its record in ``mode`` and returns the
    (bytes_read, bytes_written) of the call on this rank. An exception makes the recorder price
    the call as any op (generic bytes, no record)."""
    name, _, params, arg_names, _ = declaration(func)
    kind, send, recv, group_pos, root_pos = params
    sent = _nbytes(_arg(args, kwargs, arg_names, send))
    received = _nbytes(out if recv < 0 else _arg(args, kwargs, arg_names, recv))
    owner = _fsdp_owner_scope(mode)
    if kind == _ops.COMM_COPY:  # a local copy: what it reads, it writes (out= given: that)
        return _located(sent, received if recv >= 0 else sent, owner)
    if owner is not None:
        scope = owner
    state = _state(mode)
    size, rank, group_name = _group_info(state["groups"], _arg(args, kwargs, arg_names, group_pos))
    if kind in (_ops.COMM_SEND,):
        payload, received = sent, 0
    elif kind == _ops.COMM_RECV:
        payload, sent = received, 0
    elif kind == _ops.COMM_ALL_GATHER:
        payload = received  # the gathered (full) buffer
    elif kind == _ops.COMM_GATHER:
        payload = sent * size
    elif kind == _ops.COMM_SCATTER:
        payload = received * size
    elif kind in (_ops.COMM_BARRIER, _ops.COMM_WAIT):
        payload = sent = received = 0
    else:  # all_reduce, reduce_scatter (full input), all_to_all, broadcast, reduce: what is sent
        payload = sent
    root = _arg(args, kwargs, arg_names, root_pos)
    if isinstance(root, int) and rank >= 0 and send == recv and send >= 0:  # in place, rooted
        if kind == _ops.COMM_BROADCAST:  # the root only sends; the others only receive
            sent, received = (sent, 0) if rank == root else (0, received)
        elif kind == _ops.COMM_REDUCE:  # every rank sends; the root receives the result
            received = received if rank == root else 0
    factor = bus_factor(_KIND_NAMES[kind], size)
    bus = (payload * factor.numerator * 2 + factor.denominator) // (2 * factor.denominator)  # nearest
    key = (scope, phase, name)
    rec = state["records"].get(key)
    if rec is None:
        state["records"][key] = [1, payload, bus, size]
    else:
        rec[0] += 1
        rec[1] += payload
        rec[2] += bus
        rec[3] = max(rec[3], size)
    by_group = state["by_group"].setdefault((scope, phase, name, group_name), [0, 0, 0, size])
    by_group[0] += 1
    by_group[1] += payload
    by_group[2] += bus
    return _located(sent, received, owner)


def _located(read, written, owner):
    """What ``record`` returns: the bytes, and the scope to charge when not the current one."""
    return (read, written) if owner is None else (read, written, owner)


_SUBCLASSES = []  # [(DTensor, AsyncCollectiveTensor)] once torch.distributed.tensor is imported


class _Propagation(threading.local):
    depth = 0  # > 0 while DTensor propagates shapes on fake tensors (this thread)


_propagation = _Propagation()


class _ShapePropagation:
    """Wraps DTensor's ``ShardingPropagator._fake_mode_lock`` (a context manager DTensor enters, and
    only enters, around running an op on fake tensors to learn its output's shape; a no-op unless
    a user set a lock, which it still enters): the ops run inside are not counted."""

    def __init__(self, inner):
        self.inner = inner

    def __enter__(self):
        result = self.inner.__enter__()
        _propagation.depth += 1
        return result

    def __exit__(self, *exc):
        _propagation.depth -= 1
        return self.inner.__exit__(*exc)


def _load_subclasses():
    module = sys.modules.get("torch.distributed.tensor")
    dtensor = getattr(module, "DTensor", None) if module is not None else None
    if dtensor is None:
        return None
    from torch.distributed._functional_collectives import AsyncCollectiveTensor
    from torch.distributed.tensor._sharding_prop import ShardingPropagator

    _SUBCLASSES.append(((dtensor, AsyncCollectiveTensor), ShardingPropagator))
    return _SUBCLASSES[0]


def subclass_dispatch(mode, func, types, args, kwargs):
    """Called by the recorder for an op with tensor-subclass arguments (``types`` not empty).

    A DTensor op (and an AsyncCollectiveTensor's, whose dispatch waits for the collective) is left
    to the subclass (NotImplemented): its dispatch runs with ``mode`` active, so each rank counts
    the ops on its local shards and the collectives its redistributions issue, not the op on the
    global shape. An op DTensor runs on fake tensors to propagate shapes runs uncounted
    (``(output,)``). Anything else: None (recorded as usual)."""
    found = _SUBCLASSES[0] if _SUBCLASSES else _load_subclasses()
    if found is None:
        return None
    if _propagation.depth:
        return (func(*args, **(kwargs or {})),)
    classes, propagator = found
    for t in types:
        if isinstance(t, type) and issubclass(t, classes):
            if type(propagator.__dict__.get("_fake_mode_lock")) is not _ShapePropagation:
                propagator._fake_mode_lock = _ShapePropagation(propagator._fake_mode_lock)
            return NotImplemented
    return None


def records(mode) -> Dict[tuple, list]:
    """{(scope, phase index, op name): [calls, payload bytes, bus bytes, world size]} of a mode."""
    state = mode.__dict__.get("_fd_comm") if mode is not None else None
    return {k: list(v) for k, v in state["records"].items()} if state else {}


def group_records(mode) -> Dict[tuple, list]:
    """{(scope, phase index, op name, process group name or None): [calls, payload bytes, bus
    bytes, group size]} of a mode: the records split by the group each call ran on (the planner
    maps groups to mesh dimensions)."""
    state = mode.__dict__.get("_fd_comm") if mode is not None else None
    return {k: list(v) for k, v in state["by_group"].items()} if state else {}


# ----- one report per rank (torchrun) ----------------------------------------------------------

IMBALANCE = 1.05  # max/mean across ranks above this is flagged


def launcher_rank() -> Optional[tuple]:
    """(rank, world size) set by torchrun (RANK, WORLD_SIZE), or None for a single process."""
    import os

    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    except (KeyError, ValueError):
        return None
    return (rank, world) if world > 1 and 0 <= rank < world else None


def rank_meta() -> dict:
    """{"rank", "world_size"} of this process in an initialised default process group, else {}."""
    dist = sys.modules.get("torch.distributed")
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            return {"rank": dist.get_rank(), "world_size": dist.get_world_size()}
    except Exception:  # noqa: BLE001 - metadata only
        pass
    return {}


def rank_path(path: Optional[str], rank: int) -> Optional[str]:
    """out.json -> out.rank3.json (the rank before the extension); "-" and None unchanged."""
    import os

    if not path or path == "-":
        return path
    root, ext = os.path.splitext(path)
    return f"{root}.rank{rank}{ext}"


def rank_table(reports, names, fmt) -> list:
    """The lines of ``flopdispatch show r.rank0.json r.rank1.json ...``: one row per rank (compute,
    communication, measured op time), the job's totals, and max/mean across ranks with the
    figures above IMBALANCE flagged."""

    entries = []
    for i, (report, name) in enumerate(zip(reports, names)):
        rank = report.meta.get("rank")
        rank = rank if type(rank) is int else i
        coll = report.collectives_total() if hasattr(report, "collectives_total") else \
            {"calls": 0, "bytes": 0, "bus_bytes": 0, "seconds": 0.0}  # the results engine's sums
        comm_seconds = coll["seconds"]
        t = report.totals
        entries.append({"rank": rank, "file": name, "flops": t.flops, "macs": t.macs, "bytes": t.bytes,
                        "comm_calls": coll["calls"], "payload": coll["bytes"], "bus_bytes": coll["bus_bytes"],
                        "compute_seconds": max(getattr(t, "seconds", 0.0) - comm_seconds, 0.0),
                        "comm_seconds": comm_seconds})
    entries.sort(key=lambda e: e["rank"])
    timed = any(e["compute_seconds"] or e["comm_seconds"] for e in entries)
    cols = [("FLOPs", "flops", "FLOPs"), ("MACs", "macs", "MACs"), ("bytes", "bytes", "B"),
            ("comm calls", "comm_calls", None), ("payload", "payload", "B"), ("bus bytes", "bus_bytes", "B")]
    if timed:
        # measured op time (--timing) outside and inside collectives; a rank's collective time
        # includes waiting for the slowest rank to arrive
        cols += [("compute s", "compute_seconds", "s"), ("comm s", "comm_seconds", "s")]

    def cell(value, unit):
        if unit is None:
            return f"{value:,}"
        if unit == "s":
            return f"{value:.4f}"
        text = fmt.text(value, unit).strip()
        return text if unit == "B" else (text[:-len(unit)].strip() if text.endswith(unit) else text)

    rows = [["rank"] + [c[0] for c in cols]]
    for e in entries:
        rows.append([str(e["rank"])] + [cell(e[key], unit) for _, key, unit in cols])
    rule = len(rows)
    total = {key: sum(e[key] for e in entries) for _, key, _ in cols}
    rows.append(["job total"] + [cell(total[key], unit) for _, key, unit in cols])
    flagged = []
    ratio_row = ["max/mean"]
    for label, key, unit in cols:
        values = [e[key] for e in entries]
        mean = sum(values) / len(values) if values else 0
        ratio = max(values) / mean if mean else 1.0
        ratio_row.append(f"{ratio:.2f}")
        if ratio > IMBALANCE and key not in ("comm_calls",):
            top = max(entries, key=lambda e: e[key])
            flagged.append(f"{label}: max/mean {ratio:.2f} (rank {top['rank']} has the most"
                           + ("; waiting for slower ranks counts here" if key == "comm_seconds" else "") + ")")
    rows.append(ratio_row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    worlds = {r.meta.get("world_size") for r in reports}
    world = next(iter(worlds)) if len(worlds) == 1 and type(next(iter(worlds))) is int else None
    target = {r.meta.get("target") for r in reports}
    head = f"flopdispatch: {len(entries)} ranks"
    if world is not None:
        head += f" of {world}"
    if len(target) == 1 and isinstance(next(iter(target)), str):
        head += f", {next(iter(target))}"
    lines = [terminal_safe(head), ""]
    for k, r in enumerate(rows):
        if k == rule:
            lines.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
        lines.append("  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]).rstrip())
    ranks = sorted(e["rank"] for e in entries)
    if world is not None and ranks != list(range(world)):
        lines.append(f"note: ranks {', '.join(map(str, ranks))} of {world} given: the totals are of these only")
    if flagged:
        lines.append(f"imbalance (max/mean above {IMBALANCE}): " + "; ".join(flagged))
    else:
        lines.append(f"balanced: every figure's max/mean across ranks is at most {IMBALANCE}")
    return lines


_SAME_JOB = (("world_size", "world size"), ("command", "command"), ("target", "model"))


def check_ranks(reports, names) -> None:
    """One job's reports, each rank once, or a ValueError (one line naming the files): the same
    file or rank twice, or reports of different jobs (world size, command or model differ), or
    reports with a rank mixed with reports without."""
    import os

    seen_files, seen_ranks = {}, {}
    ranked = [type(r.meta.get("rank")) is int for r in reports]
    if any(ranked) and not all(ranked):
        bare = next(n for n, has in zip(names, ranked) if not has)
        with_rank = next(n for n, has in zip(names, ranked) if has)
        raise ValueError(f"{bare} has no rank (not written under torchrun) while {with_rank} has: "
                         "give one job's rank files")
    for report, name in zip(reports, names):
        real = os.path.realpath(name)
        if real in seen_files:
            raise ValueError(f"{seen_files[real]} and {name} are the same file: give each rank once")
        seen_files[real] = name
        rank = report.meta.get("rank")
        if type(rank) is int:
            if rank in seen_ranks:
                raise ValueError(f"rank {rank} appears twice ({seen_ranks[rank]} and {name}): give each rank once")
            seen_ranks[rank] = name
    first, first_name = reports[0], names[0]
    for report, name in zip(reports[1:], names[1:]):
        for key, label in _SAME_JOB:
            a, b = first.meta.get(key), report.meta.get(key)
            if a is not None and b is not None and a != b:
                show = (lambda v: " ".join(v) if isinstance(v, list) else str(v))
                raise ValueError(terminal_safe(f"{first_name} and {name} are not one job: {label} "
                                               f"{show(a)!r} vs {show(b)!r}"))
    world = first.meta.get("world_size")
    if type(world) is int:
        for report, name in zip(reports, names):
            rank = report.meta.get("rank")
            if type(rank) is int and not 0 <= rank < world:
                raise ValueError(f"{name}: rank {rank} is outside world size {world}")


def rank_breakdown(reports, names, by: str, figure: str, fmt) -> List[str]:
    """The lines of ``show --by op|phase`` on one report per rank: one row per op (or phase), the
    chosen figure (flops, macs or bytes) on each rank, the job's total and max/mean across ranks;
    rows by the job total, largest first."""
    unit = {"flops": "FLOPs", "macs": "MACs", "bytes": "B"}[figure]
    order = sorted(range(len(reports)), key=lambda i: (reports[i].meta.get("rank")
                                                      if type(reports[i].meta.get("rank")) is int else i))
    ranks = [reports[i].meta.get("rank") if type(reports[i].meta.get("rank")) is int else i for i in order]
    per_rank = []
    for i in order:
        report = reports[i]
        if by == "op":
            per_rank.append({name: row["flops"] if figure == "flops" else row["macs"] if figure == "macs"
                             else row["bytes_read"] + row["bytes_written"] for name, row in report.ops().items()})
        else:
            per_rank.append({p: getattr(report.phase(p), figure) for p in report.phases_run})
    keys = set().union(*per_rank)
    totals = {k: sum(v.get(k, 0) for v in per_rank) for k in keys}
    if by == "phase":
        phase_order = list(PHASES)
        rows_keys = sorted(keys, key=lambda k: phase_order.index(k) if k in phase_order else len(phase_order))
    else:
        rows_keys = sorted(keys, key=lambda k: (-totals[k], k))

    fixed = fmt.units != "auto"

    def cell(value):
        if fixed:  # the prefix is in the header: bare numbers
            return fmt.cell(value, unit).strip()
        text = fmt.text(value, unit).strip()
        return text if unit == "B" else (text[:-len(unit)].strip() if text.endswith(unit) else text)

    label = "op" if by == "op" else "phase"
    header = [f"{label} ({fmt.units if fixed else ''}{unit})"] + [f"rank {r}" for r in ranks] + ["job total", "max/mean"]
    rows = [header]
    for k in rows_keys:
        values = [v.get(k, 0) for v in per_rank]
        mean = sum(values) / len(values)
        rows.append([terminal_safe(k)] + [cell(v) for v in values] + [cell(totals[k]),
                                                                       f"{max(values) / mean:.2f}" if mean else "-"])
    job = [sum(v.values()) for v in per_rank]  # ops, or phases, partition each rank's totals
    rows.append(["job total"] + [cell(v) for v in job] + [cell(sum(job)),
                                                          f"{max(job) / (sum(job) / len(job)):.2f}" if sum(job) else "-"])
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    worlds = {r.meta.get("world_size") for r in reports}
    world = next(iter(worlds)) if len(worlds) == 1 and type(next(iter(worlds))) is int else None
    targets = {r.meta.get("target") for r in reports}
    head = f"flopdispatch: {len(reports)} ranks" + (f" of {world}" if world is not None else "")
    if len(targets) == 1 and isinstance(next(iter(targets)), str):
        head += f", {next(iter(targets))}"
    head += f", {dict(flops='FLOPs', macs='MACs', bytes='bytes read + written')[figure]} by {label}"
    lines = [terminal_safe(head), ""]
    for n, r in enumerate(rows):
        if n == len(rows) - 1:
            lines.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
        lines.append("  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]).rstrip())
    return lines
