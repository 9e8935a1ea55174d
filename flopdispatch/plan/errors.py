"""The planner's one error type."""
from __future__ import annotations

__all__ = ["PlanError"]


class PlanError(ValueError):
    """Bad planner input (a mesh, a plan, a model the plan does not fit): the message is one line
    naming the problem."""
