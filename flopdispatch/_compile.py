"""flopdispatch and torch.compile (issue 20).

- **Never traced.** torch._dynamo skips flopdispatch's files (``trace_rules.add``): a hook of ours met
  while dynamo traces a model (the meter's forward pre-hook on a compiled model) is a graph break,
  run eagerly, and none of our functions (hooks, caches, the op resolver the core calls) is ever
  compiled. Registered as soon as torch._dynamo is imported: at once when it already is, else by a
  one-shot import hook (torch._dynamo takes seconds to import: flopdispatch never imports it).
- **Counted eagerly.** While a count is open, torch.compile'd code runs eagerly (dynamo's
  ``force_eager`` stance), so a count of a compiled model counts the eager-equivalent model: the aten
  ops the model's Python code runs, before any graph capture, decomposition or fusion.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys

_PACKAGE = __name__.rpartition(".")[0]  # "flopdispatch"
_registered = False


def _register():
    global _registered
    if _registered:
        return
    try:
        from torch._dynamo import trace_rules

        trace_rules.add(_PACKAGE)
    except Exception:  # noqa: BLE001 - another torch: nothing to register with
        pass
    _registered = True


class _DynamoImportWatch(importlib.abc.MetaPathFinder):
    """Registers flopdispatch with dynamo right after ``torch._dynamo`` is imported, then leaves."""

    def find_spec(self, name, path=None, target=None):
        if name != "torch._dynamo":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        loader = getattr(spec, "loader", None)
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:
            return spec

        def exec_then_register(module):
            exec_module(module)
            _register()

        loader.exec_module = exec_then_register  # this spec's own loader object
        return spec


_watch = _DynamoImportWatch()


def skip_in_dynamo():
    """Make torch._dynamo skip flopdispatch's files, now or as soon as it is imported. Cheap."""
    if _registered:
        return
    if "torch._dynamo" in sys.modules:
        _register()
    elif _watch not in sys.meta_path:
        sys.meta_path.insert(0, _watch)


_holders = set()  # tokens of the open counts holding the eager stance
_saved = []       # the stance before the first of them (empty: not set by us)


def _hold_eager(token):
    """Install step: the first open count sets dynamo's ``force_eager`` stance (the plan is computed,
    then carried out in one C call: an interrupt leaves it done or not done)."""
    from torch._dynamo import eval_frame

    from . import _core

    if token in _holders:
        return
    steps = [(_holders.add, (token,))]
    if not _holders and not _saved:
        steps += [(_saved.append, (eval_frame._stance,)),
                  (vars(eval_frame).__setitem__, ("_stance", eval_frame.DynamoStance("force_eager")))]
    _core.run_steps(steps)


def _release_eager(token):
    """Undo step: the last open count puts the stance back (counts may end in any order). Harmless
    when run again, or when ``_hold_eager`` did not run."""
    from torch._dynamo import eval_frame

    from . import _core

    steps = [(_holders.discard, (token,))]
    if not (_holders - {token}) and _saved:
        steps += [(vars(eval_frame).__setitem__, ("_stance", _saved[0])), (_saved.clear, ())]
    _core.run_steps(steps)


def eager_steps(token):
    """Install steps (``_core.Lifecycle``) making compiled code run eagerly while a count (`token`) is
    open: dynamo's ``force_eager`` stance, put back when the last open count ends. None when dynamo
    is not imported (nothing is compiled then: a compile inside the block sees the dispatch mode and
    runs eagerly anyway) or when the block is entered inside a compiled call (a hook run at a graph
    break: the frames after it see the mode and run eagerly)."""
    if "torch._dynamo" not in sys.modules or in_compiled_region():
        return []
    from . import _core

    try:
        from torch._dynamo import eval_frame

        eval_frame.DynamoStance, eval_frame._stance  # noqa: B018 - this torch has stances
    except Exception:  # noqa: BLE001 - another torch: compiled code is left as it is
        return []
    return [(_hold_eager, (token,), _release_eager, (token,), _core.UNDO_FIRST)]


def in_compiled_region() -> bool:
    """Whether Python runs inside a torch.compile'd call now (a hook of ours run at a graph break)."""
    if "torch._dynamo" not in sys.modules:
        return False
    try:
        from torch._C._dynamo.eval_frame import get_eval_frame_callback

        return get_eval_frame_callback() not in (None, False)
    except Exception:  # noqa: BLE001
        return False

