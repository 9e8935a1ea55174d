"""flopdispatch and torch.compile (issue 20).

- **Never traced.** torch._dynamo skips flopdispatch's files (``trace_rules.add``; all but ``_hops``,
  whose wrappers of a higher-order op's functions torch traces into graphs): a hook of ours met
  while dynamo traces a model (the meter's forward pre-hook on a compiled model) is a graph break,
  run eagerly, and none of our functions (hooks, caches, the op resolver the core calls) is ever
  compiled. Registered as soon as torch._dynamo is imported: at once when it already is, else by a
  one-shot import hook (torch._dynamo takes seconds to import: flopdispatch never imports it).
- **Counted eagerly.** While a count's dispatch mode is on the stack, dynamo compiles no frame, and a
  count of a compiled model (warm or not; checked with inductor) counts the eager-equivalent model:
  the aten ops the model's Python code runs. The meter therefore starts
  its count before a compiled wrapper's call, never inside it (``Meter._on_first_call``).
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys

_PACKAGE = __name__.rpartition(".")[0]  # "flopdispatch"
# Modules dynamo must still trace: _hops wraps the functions a higher-order op is given (torch.cond's
# branches...) in functions of its own, which torch traces into graphs (its rules themselves are
# marked disabled).
_TRACED = {"_hops"}
_registered = False


def _register():
    global _registered
    if _registered:
        return
    try:
        import pkgutil

        from torch._dynamo import trace_rules

        package = sys.modules[_PACKAGE]
        for info in pkgutil.iter_modules(package.__path__):
            if info.name not in _TRACED:
                trace_rules.add(f"{_PACKAGE}.{info.name}")  # a module's file, or a subpackage's folder
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


def in_compiled_region() -> bool:
    """Whether Python runs inside a torch.compile'd call now (a hook of ours run at a graph break)."""
    if "torch._dynamo" not in sys.modules:
        return False
    try:
        from torch._C._dynamo.eval_frame import get_eval_frame_callback

        return get_eval_frame_callback() not in (None, False)
    except Exception:  # noqa: BLE001
        return False

