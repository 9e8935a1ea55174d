"""Reliability of the core: memory safety of the shared op table, threads, Ctrl-C, nesting and
exit order, work outside the counted model. `.ci/sanitize.sh` runs this file under ASan/UBSan."""
import threading

import pytest
import torch
import torch.nn as nn
from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

import flopdispatch as fd
from flopdispatch import _core

_ALL_ATEN = []


def _every_aten_overload():
    if not _ALL_ATEN:
        for name in torch._C._dispatch_get_all_op_names():
            if not name.startswith("aten::"):
                continue
            base, _, overload = name[len("aten::"):].partition(".")
            try:
                _ALL_ATEN.append(getattr(getattr(torch.ops.aten, base), overload or "default"))
            except (AttributeError, RuntimeError):
                pass
    return _ALL_ATEN


def _first_sight_of_every_aten_op():
    """Makes the core resolve every aten overload (about 3,000): the shared op table grows past
    any capacity it had, so anything that held a reference into it is left dangling."""
    for op in _every_aten_overload():
        try:
            _core.compiled_cost(op, (), None, None)  # resolves the op, then prices no arguments
        except (ValueError, TypeError):
            pass


def _two_steps(model, x):
    for _ in range(2):  # the second backward accumulates into .grad (an add_ per parameter)
        model(x).sum().backward()


def _phase_numbers(c):
    d = c.to_dict()
    return d["phases"], d["module_phases"], d["ops"], d["unsupported"]


# ----- 1. the shared op table: new ops first seen while another op is being recorded --------------

def test_new_ops_first_seen_from_another_thread_inside_a_recorder_callback(monkeypatch):
    # While the core records an op it calls back into Python (here: the parameter lookup for a
    # gradient accumulation). Another thread then sees ~3,000 ops for the first time. Before the
    # op table's entries were made immovable this read freed memory (ASan: heap-use-after-free in
    # bytes_read); now the numbers equal an undisturbed run's.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))
    x = torch.randn(5, 8)
    with fd.count(model) as reference:
        _two_steps(model, x)
    model.zero_grad(set_to_none=True)

    original = fd.count._on_accumulate_grad
    interfered = []

    def on_accumulate_grad(self, node):
        if not interfered:
            worker = threading.Thread(target=_first_sight_of_every_aten_op)
            worker.start()
            worker.join()
            interfered.append(True)
        return original(self, node)

    monkeypatch.setattr(fd.count, "_on_accumulate_grad", on_accumulate_grad)
    with fd.count(model) as c:
        _two_steps(model, x)
    assert interfered
    assert _phase_numbers(c) == _phase_numbers(reference)
