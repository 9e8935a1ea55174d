"""Plan a cluster job from one machine: simulate any rank of a DDP / FSDP2 / tensor-parallel job on
torch.distributed's fake backend and count it (docs/planning.md)."""
from .errors import PlanError
from .mesh import parse_mesh
from .estimate import JobEstimate, MemoryFit, StepEstimate, best_mesh, compare_text, job_estimate, stages_text
from .simulate import CollectiveRow, Memory, SimulatedRank, compare, simulate, stages

__all__ = ["simulate", "compare", "stages", "compare_text", "stages_text", "job_estimate", "best_mesh",
           "StepEstimate", "JobEstimate", "MemoryFit", "SimulatedRank", "CollectiveRow", "Memory", "PlanError",
           "parse_mesh"]
