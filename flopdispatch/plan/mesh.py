"""Mesh specs: ``{"fsdp": 64, "tp": 8}`` or ``"fsdp=64,tp=8"``, checked against the world size and
the data-parallel / tensor-parallel meaning of each dimension name."""
from __future__ import annotations

from typing import Dict, Optional, Union

from .errors import PlanError

__all__ = ["DIMENSIONS", "parse_mesh", "replica_batch", "link_of_dim"]

# What each dimension name means to the built-in plans (a user's parallelize function may use any).
DIMENSIONS = {
    "dp": "data parallel, replicated (DDP alone; the replicate dimension of HSDP with fsdp)",
    "fsdp": "data parallel, sharded (FSDP2 fully_shard)",
    "tp": "tensor parallel (parallelize_module colwise/rowwise plans)",
    "pp": "pipeline stages (torch.distributed.pipelining, GPipe or 1F1B; plan llama)",
}


def parse_mesh(mesh: Union[str, Dict[str, int]], world: Optional[int] = None) -> Dict[str, int]:
    """{dim name: size} in order from a dict or ``"fsdp=64,tp=8"``; one size may be -1 (the world
    divided by the others, ``world`` then required). The product must equal ``world`` when given."""
    if isinstance(mesh, str):
        items = {}
        for part in filter(None, (p.strip() for p in mesh.split(","))):
            name, eq, size = part.partition("=")
            if not eq or not name.strip():
                raise PlanError(f"mesh {mesh!r}: expected NAME=SIZE items separated by commas, like fsdp=64,tp=8")
            try:
                items[name.strip()] = int(size)
            except ValueError:
                raise PlanError(f"mesh {mesh!r}: size of {name.strip()!r} is not an integer: {size!r}") from None
        mesh = items
    if not isinstance(mesh, dict) or not mesh:
        raise PlanError(f"mesh: expected {{name: size}} or 'name=size,...', got {mesh!r}")
    sizes = dict(mesh)
    for name, size in sizes.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise PlanError(f"mesh dimension name {name!r} is not an identifier")
        if type(size) is not int or (size < 1 and size != -1):
            raise PlanError(f"mesh dimension {name}={size!r}: a size is a positive integer (or -1 for the rest)")
    inferred = [n for n, s in sizes.items() if s == -1]
    if len(inferred) > 1:
        raise PlanError(f"mesh: only one dimension may be -1, got {', '.join(inferred)}")
    known = 1
    for s in sizes.values():
        known *= s if s != -1 else 1
    if inferred:
        if world is None:
            raise PlanError(f"mesh dimension {inferred[0]}=-1 needs a world size")
        if world % known:
            raise PlanError(f"mesh {_text(sizes)} does not divide the world of {world} ranks ({world} % {known} != 0)")
        sizes[inferred[0]] = world // known
    elif world is not None and known != world:
        raise PlanError(f"mesh {_text(sizes)} has {known} ranks, not the world's {world}")
    return sizes


def replica_batch(sizes: Dict[str, int], global_batch: int) -> int:
    """Sequences per data-parallel replica when ``global_batch`` sequences are spread over the
    mesh's data-parallel ranks (the product of its ``dp`` and ``fsdp`` sizes), or PlanError when
    they do not divide it."""
    if type(global_batch) is not int or global_batch < 1:
        raise PlanError(f"global_batch must be a positive integer, got {global_batch!r}")
    replicas = sizes.get("dp", 1) * sizes.get("fsdp", 1)
    if global_batch % replicas:
        raise PlanError(f"global_batch={global_batch} does not divide over the {replicas} data-parallel replicas of "
                        f"mesh {_text(sizes)} (dp x fsdp)")
    return global_batch // replicas


def _text(sizes: Dict[str, int]) -> str:
    return ",".join(f"{n}={s}" for n, s in sizes.items())


def link_of_dim(mesh_ranks, coords, dim: int, gpus_per_node: int) -> str:
    """'nvlink' when the ranks of this rank's group along ``dim`` (rank r on node r // gpus_per_node)
    share one node, else 'network'. ``mesh_ranks``: the mesh's rank tensor; ``coords``: this rank's."""
    index = list(coords)
    index[dim] = slice(None)
    ranks = mesh_ranks[tuple(index)].flatten().tolist()
    return "nvlink" if len({r // gpus_per_node for r in ranks}) == 1 else "network"
