"""Communication: collectives and point-to-point ops (torch.distributed) as their own record.

Every op of the ``comm`` family in ``_ops.py`` (c10d ops, functional collectives, FSDP2's copy
helpers) reaches ``record`` through the compiled recorder, once per call, with the module scope
and phase the call ran in. A collective costs no FLOPs; its record holds, per (scope, phase, op):
calls, the payload bytes (per rank, the size the NCCL-tests convention measures the op by), the
bus bytes (payload times the algorithm's factor) and the largest process-group size seen. The
bytes it reads and writes locally go to the ordinary table like any op's. Collectives are rare
(a few per step), so this runs in Python; the compiled hot path is untouched.
"""
from __future__ import annotations

import sys
import threading
from fractions import Fraction
from typing import Dict, Optional

import torch

from . import _ops

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
    """(size, rank) of a process group given as a ProcessGroup (or its TorchScript box), a group
    name, or a group size (rank unknown: -1). Cached per group name in ``cache`` (one count's)."""
    global _ProcessGroup
    if group is None:
        return 1, 0
    if isinstance(group, int):
        return group, -1
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
        found = (int(group.size()), int(group.rank()))
        if name is not None:
            cache[name] = found
    return found


def _state(mode) -> dict:
    state = mode.__dict__.get("_fd_comm")
    if state is None:
        state = mode.__dict__["_fd_comm"] = {"records": {}, "groups": {}}
    return state


def record(mode, scope, phase, func, args, kwargs, out):
    """Called by the recorder for a comm-family op: keeps its record in ``mode`` and returns the
    (bytes_read, bytes_written) of the call on this rank. An exception makes the recorder price
    the call as any op (generic bytes, no record)."""
    from . import _core

    name, _, params, arg_names, _ = _core.declaration(func)
    kind, send, recv, group_pos, root_pos = params
    sent = _nbytes(_arg(args, kwargs, arg_names, send))
    received = _nbytes(out if recv < 0 else _arg(args, kwargs, arg_names, recv))
    if kind == _ops.COMM_COPY:  # a local copy: what it reads, it writes (out= given: that)
        return sent, received if recv >= 0 else sent
    state = _state(mode)
    size, rank = _group_info(state["groups"], _arg(args, kwargs, arg_names, group_pos))
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
    return sent, received


_SUBCLASSES = []  # (DTensor, AsyncCollectiveTensor) once torch.distributed.tensor is imported
_propagation = threading.local()  # .depth > 0 while DTensor propagates shapes on fake tensors


class _ShapePropagation:
    """Wraps DTensor's ``ShardingPropagator._fake_mode_lock`` (a context manager DTensor enters, and
    only enters, around running an op on fake tensors to learn its output's shape; a no-op unless
    a user set a lock, which it still enters): the ops run inside are not counted."""

    def __init__(self, inner):
        self.inner = inner

    def __enter__(self):
        result = self.inner.__enter__()
        _propagation.depth = getattr(_propagation, "depth", 0) + 1
        return result

    def __exit__(self, *exc):
        _propagation.depth -= 1
        return self.inner.__exit__(*exc)


def _subclasses():
    if not _SUBCLASSES:
        module = sys.modules.get("torch.distributed.tensor")
        dtensor = getattr(module, "DTensor", None) if module is not None else None
        if dtensor is None:
            return None
        from torch.distributed._functional_collectives import AsyncCollectiveTensor

        _SUBCLASSES.append((dtensor, AsyncCollectiveTensor))
    from torch.distributed.tensor._sharding_prop import ShardingPropagator

    if not isinstance(ShardingPropagator.__dict__.get("_fake_mode_lock"), _ShapePropagation):
        ShardingPropagator._fake_mode_lock = _ShapePropagation(ShardingPropagator._fake_mode_lock)
    return _SUBCLASSES[0]


def subclass_dispatch(mode, func, types, args, kwargs):
    """Called by the recorder for an op with tensor-subclass arguments (``types`` not empty).

    A DTensor op (and an AsyncCollectiveTensor's, whose dispatch waits for the collective) is left
    to the subclass (NotImplemented): its dispatch runs with ``mode`` active, so each rank counts
    the ops on its local shards and the collectives its redistributions issue, not the op on the
    global shape. An op DTensor runs on fake tensors to propagate shapes runs uncounted
    (``(output,)``). Anything else: None (recorded as usual)."""
    found = _subclasses()
    if found is None:
        return None
    if getattr(_propagation, "depth", 0) > 0:
        return (func(*args, **(kwargs or {})),)
    if any(isinstance(t, type) and issubclass(t, found) for t in types):
        return NotImplemented
    return None


def records(mode) -> Dict[tuple, list]:
    """{(scope, phase index, op name): [calls, payload bytes, bus bytes, world size]} of a mode."""
    state = mode.__dict__.get("_fd_comm") if mode is not None else None
    return {k: list(v) for k, v in state["records"].items()} if state else {}


def collectives(counter, phase: Optional[str] = None, module: Optional[str] = None,
                exclusive: bool = False) -> Dict[str, dict]:
    """Per collective op of a ``count``: {op: {calls, bytes, bus_bytes, world_size, seconds}}."""
    from .counter import PHASES

    counter._check_phase(phase)
    res = counter._res()
    idx = counter._module_index(module) if module is not None else None
    ignored = counter._ignored_idx
    merged: Dict[str, list] = {}
    for (scope, ph, name), (calls, payload, bus, size) in records(counter._mode).items():
        phase_name = PHASES[ph]
        if phase is not None and phase_name != phase:
            continue
        path = res["on_path"][scope] if scope < len(res["on_path"]) else ()
        if ignored and ignored.intersection(path):
            continue
        if idx is not None and not ((res["innermost"][scope] == idx) if exclusive else (idx in path)):
            continue
        acc = res["scope_op"].get((scope, phase_name, name))
        seconds = acc.v[6] if acc is not None else 0.0
        m = merged.setdefault(name, [0, 0, 0, 0, 0.0])
        m[0] += calls
        m[1] += payload
        m[2] += bus
        m[3] = max(m[3], size)
        m[4] += seconds
    out = {}
    for name, (calls, payload, bus, size, seconds) in sorted(merged.items(), key=lambda kv: (-kv[1][2], kv[0])):
        out[name] = {"calls": calls, "bytes": payload, "bus_bytes": bus, "world_size": size, "seconds": seconds}
    return out


def totals(table: Dict[str, dict]) -> dict:
    """{calls, bytes, bus_bytes} summed over a collectives() table."""
    return {k: sum(v[k] for v in table.values()) for k in ("calls", "bytes", "bus_bytes")}
