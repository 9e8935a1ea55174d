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
    return d["phases"], d["modules"], d["ops"], d["unsupported"]


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


# ----- 2. threads: a count belongs to the thread that entered it -----------------------------------

def _mlp(d_in, d_hidden, d_out):
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Linear(d_hidden, d_out))


def _training_steps(model, x, steps=3):
    """Forward, a loss outside the model ("other"), backward and an optimizer step."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(steps):
        loss = nn.functional.mse_loss(model(x), torch.zeros(x.shape[0], model[-1].out_features))
        loss.backward()
        opt.step()
        opt.zero_grad()


def _single_thread_numbers(make_model, x):
    model = make_model()
    with fd.count(model) as c:
        _training_steps(model, x)
    return _phase_numbers(c)


@pytest.fixture
def frequent_thread_switches():
    import sys

    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # interleave the threads as often as the interpreter can
    yield
    sys.setswitchinterval(before)


def test_two_threads_with_their_own_counts_get_the_single_thread_numbers(frequent_thread_switches):
    torch.manual_seed(0)
    makers = [lambda: _mlp(32, 64, 8), lambda: _mlp(16, 48, 4)]
    inputs = [torch.randn(8, 32), torch.randn(6, 16)]
    expected = [_single_thread_numbers(make, x) for make, x in zip(makers, inputs)]

    barrier = threading.Barrier(2)
    results = [None, None]
    errors = []

    def worker(i):
        try:
            model = makers[i]()
            barrier.wait()
            with fd.count(model) as c:
                _training_steps(model, inputs[i])
            results[i] = _phase_numbers(c)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results[0] == expected[0]
    assert results[1] == expected[1]


def _busy_modules(stop):
    model = _mlp(16, 16, 16)
    x = torch.randn(2, 16)
    while not stop.is_set():
        model(x).sum().backward()  # modules, ops, autograd: none of it in the other thread's count


def test_a_count_beside_a_busy_background_thread_gets_the_single_thread_numbers(frequent_thread_switches):
    torch.manual_seed(0)
    x = torch.randn(8, 32)
    expected = _single_thread_numbers(lambda: _mlp(32, 64, 8), x)
    stop = threading.Event()
    background = threading.Thread(target=_busy_modules, args=(stop,))
    background.start()
    try:
        for _ in range(3):
            model = _mlp(32, 64, 8)
            with fd.count(model) as c:
                _training_steps(model, x)
            assert _phase_numbers(c) == expected
    finally:
        stop.set()
        background.join()


def test_count_without_model_never_adopts_another_threads_module_as_root():
    entered, module_ran = threading.Event(), threading.Event()
    other = nn.Sequential(nn.Linear(4, 4))

    def other_thread():
        entered.wait(30)
        other(torch.randn(1, 4))  # its forward pre-hook fires while the count below is open
        module_ran.set()

    t = threading.Thread(target=other_thread)
    t.start()
    model = _mlp(8, 8, 2)
    with fd.count() as c:
        entered.set()
        assert module_ran.wait(30)
        model(torch.randn(3, 8))
    t.join()
    assert c.module_names == [name for name, _ in model.named_modules()]
    assert c.module("").type == "Sequential" and c.module("0").params == 8 * 8 + 8
    # 3 * 8 * 8 + 3 * 8 * 2 = 240 MACs, all in this thread's model
    assert c.module("").macs == c.macs == 3 * 8 * 8 + 3 * 8 * 2


# ----- 3. Ctrl-C: a BaseException raised in a callback of the core is never swallowed -----------

def _sigint_from_a_timer_thread():
    """Delivers a real SIGINT from another thread and waits for it here: Python runs the handler
    (KeyboardInterrupt) in this frame, i.e. inside whatever callback of the core called this."""
    import os
    import signal

    never = threading.Event()
    timer = threading.Timer(0.001, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        never.wait(30)  # interrupted by the signal: raises KeyboardInterrupt
    finally:
        timer.join()
    raise AssertionError("no SIGINT within 30 s")


def _sigint_raised_here():
    import signal

    signal.raise_signal(signal.SIGINT)
    raise AssertionError("SIGINT did not raise")


def _interrupt_in(monkeypatch, where, deliver):
    """Patches one of the core's Python callbacks to receive SIGINT on its first call."""
    from flopdispatch import _reference

    fired = []

    def wrap(original):
        def callback(*args):
            if not fired:
                fired.append(True)
                deliver()
            return original(*args)

        return callback

    if where == "python formula":
        monkeypatch.setattr(_reference, "cost", wrap(_reference.cost))
    elif where == "parameter lookup":  # AccumulateGrad in backward
        monkeypatch.setattr(fd.count, "_on_accumulate_grad", wrap(fd.count._on_accumulate_grad))
    else:  # the first module of a count without a model
        monkeypatch.setattr(fd.count, "_on_unknown_module", wrap(fd.count._on_unknown_module))
    return fired


@pytest.mark.parametrize("deliver", [_sigint_from_a_timer_thread, _sigint_raised_here], ids=["os.kill", "raise_signal"])
@pytest.mark.parametrize("where", ["python formula", "parameter lookup", "module lookup"])
def test_sigint_during_counted_work_raises_keyboard_interrupt_every_time(monkeypatch, where, deliver):
    hooks = _global_hook_counts()
    for attempt in range(3):
        with monkeypatch.context() as m:
            fired = _interrupt_in(m, where, deliver)
            model = _mlp(8, 8, 2)
            x = torch.randn(4, 8)
            with pytest.raises(KeyboardInterrupt):
                with fd.count(None if where == "module lookup" else model,
                              python_formulas=where == "python formula"):
                    for _ in range(2):
                        model(x).sum().backward()
            assert fired, attempt
        assert not _get_current_dispatch_mode_stack()
        assert _global_hook_counts() == hooks


def test_interrupted_op_output_is_not_leaked(monkeypatch):
    import gc
    import weakref

    from flopdispatch import _reference

    seen = []
    original = _reference.cost

    def cost(family, params, arg_names, args, kwargs, out):
        if not seen and isinstance(out, torch.Tensor) and out.numel() == 1000:
            seen.append(weakref.ref(out))
            del out, args
            _sigint_raised_here()
        return original(family, params, arg_names, args, kwargs, out)

    monkeypatch.setattr(_reference, "cost", cost)
    with pytest.raises(KeyboardInterrupt) as info:
        with fd.count(python_formulas=True):
            torch.ones(10, 100) * 2.0
    del info
    gc.collect()
    assert seen and seen[0]() is None


class _Cancelled(BaseException):
    """A BaseException of the kind async frameworks use for cancellation."""


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit, GeneratorExit, _Cancelled])
@pytest.mark.parametrize("python_formulas", [True, False])
def test_base_exceptions_from_the_core_callbacks_propagate(monkeypatch, exc, python_formulas):
    from flopdispatch import _reference

    def raises(*args):
        raise exc("from a callback")

    if python_formulas:
        monkeypatch.setattr(_reference, "cost", raises)
    else:
        monkeypatch.setattr(fd.count, "_on_accumulate_grad", raises)
    model = nn.Linear(4, 2)
    x = torch.randn(3, 4)
    with pytest.raises(exc, match="from a callback"):
        with fd.count(model, python_formulas=python_formulas):
            _two_steps(model, x)  # the second backward accumulates: the parameter lookup runs
    assert not _get_current_dispatch_mode_stack()


def test_ordinary_formula_exceptions_still_become_unsupported(monkeypatch):
    from flopdispatch import _reference

    def cost(*args):
        raise ValueError("formula broke")

    monkeypatch.setattr(_reference, "cost", cost)
    a = torch.randn(3, 4)
    with fd.count(python_formulas=True) as c:
        out = a @ a.T
    assert torch.equal(out, a @ a.T)
    assert c.unsupported == {"aten::mm": 1}
    assert c.unsupported_reasons == {"aten::mm": "formula broke"}


def _global_hook_counts():
    m = torch.nn.modules.module
    return (len(m._global_forward_pre_hooks), len(m._global_forward_hooks))


# ----- 4. counts exited out of order ---------------------------------------------------------------

def _counting(model):
    with fd.count(model) as c:
        yield c


@pytest.mark.parametrize("how", ["manual __exit__", "generators"])
@pytest.mark.parametrize("first_exit", ["outer", "inner"])
def test_counts_exited_out_of_order_both_stay_right(how, first_exit):
    from torch.utils import _python_dispatch as pd

    a, b = nn.Linear(8, 4, bias=False), nn.Linear(4, 2, bias=False)
    x = torch.randn(5, 8)
    hooks = _global_hook_counts()
    torch_flag = pd._is_in_torch_dispatch_mode  # process-wide in torch, so not always False here
    if how == "generators":
        gens = {"outer": _counting(a), "inner": _counting(b)}
        counts = {k: next(g) for k, g in gens.items()}  # outer entered first
        close = {k: g.close for k, g in gens.items()}
    else:
        counts = {"outer": fd.count(a), "inner": fd.count(b)}
        counts["outer"].__enter__()
        counts["inner"].__enter__()
        close = {k: (lambda c=c: c.__exit__(None, None, None)) for k, c in counts.items()}
    second_exit = "inner" if first_exit == "outer" else "outer"

    h = a(x)  # both counts: 5 * 8 * 4 = 160 MACs
    close[first_exit]()
    assert _get_current_dispatch_mode_stack() == [counts[second_exit]._mode]
    b(h)  # the open count only: 5 * 4 * 2 = 40 MACs
    close[second_exit]()

    assert not _get_current_dispatch_mode_stack()
    assert _global_hook_counts() == hooks
    assert counts[first_exit].macs == 5 * 8 * 4
    assert counts[second_exit].macs == 5 * 8 * 4 + 5 * 4 * 2
    assert counts["outer"].module("").macs == 5 * 8 * 4  # a's own forward
    assert counts["inner"].module("").macs == (5 * 4 * 2 if second_exit == "inner" else 0)
    assert pd._is_in_torch_dispatch_mode == torch_flag  # torch's own flag comes back with the stack


def test_out_of_order_exit_keeps_a_foreign_mode_above_it():
    from torch.utils._python_dispatch import TorchDispatchMode

    seen = []

    class Spy(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(func)
            return func(*args, **(kwargs or {}))

    a = torch.randn(3, 3)
    c = fd.count()
    c.__enter__()
    spy = Spy()
    spy.__enter__()
    c.__exit__(None, None, None)
    assert _get_current_dispatch_mode_stack() == [spy]
    a @ a
    spy.__exit__(None, None, None)
    assert not _get_current_dispatch_mode_stack()
    assert seen == [torch.ops.aten.mm.default]


def test_exit_in_another_thread_is_a_clear_error_and_removes_the_hooks():
    hooks = _global_hook_counts()
    c = fd.count()
    c.__enter__()
    errors = []

    def other():
        try:
            c.__exit__(None, None, None)
        except RuntimeError as e:
            errors.append(str(e))

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert errors and "thread" in errors[0]
    assert _global_hook_counts() == hooks
    # the mode is still on this thread's stack (torch's stacks are per thread), inert: it runs
    # ops and records nothing more; take it off here
    stack = _get_current_dispatch_mode_stack()
    assert stack == [c._mode]
    before = c.to_dict()
    a = torch.randn(3, 3)
    assert torch.equal(a @ a, torch.mm(a, a))
    assert c._mode.snapshot()[0] == [] and c.to_dict() == before
    c._mode.__exit__(None, None, None)
    assert not _get_current_dispatch_mode_stack()


# ----- 5. work outside the counted model is "other", whatever module runs it --------------------

def test_loss_module_outside_the_model_is_other_like_the_functional_loss():
    torch.manual_seed(0)
    model = _mlp(8, 16, 4)
    x, y = torch.randn(5, 8), torch.randn(5, 4)
    with fd.count(model) as functional:
        nn.functional.mse_loss(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    with fd.count(model) as module:
        nn.MSELoss()(model(x), y).backward()
    assert _phase_numbers(module) == _phase_numbers(functional)
    # mse loss: 3 FLOPs per element, 5 * 4 elements = 60, and the forward is the model's alone
    assert module.phase("other").flops == functional.phase("other").flops >= 3 * 5 * 4
    assert module.phase("forward").flops == module.module("", phase="forward").flops


def test_a_second_model_outside_the_counted_one_is_other():
    student, teacher = nn.Linear(8, 4, bias=False), nn.Linear(8, 4, bias=False)
    x = torch.randn(5, 8)
    with fd.count(student) as c:
        s = student(x)
        with torch.no_grad():
            t = teacher(x)
        (s - t).pow(2).sum().backward()
    assert c.phase("forward").macs == 5 * 8 * 4  # the student's forward only
    assert c.phase("other").macs == 5 * 8 * 4  # the teacher, outside the counted tree
    assert c.module("").macs == 5 * 8 * 4 + 8 * 5 * 4  # student forward + weight gradient


def test_modules_created_or_swapped_inside_the_tree_count_with_their_caller():
    class MakesALayer(nn.Module):
        def forward(self, x):
            return nn.Linear(8, 3, bias=False)(x)  # never registered: reached at run time

    model = nn.Sequential(nn.Linear(8, 8, bias=False), MakesALayer())
    x = torch.randn(2, 8)
    replacement = nn.Linear(8, 8, bias=False)
    with fd.count(model) as c:
        model(x)
        model[0] = replacement  # swapped during the block
        model(x)
    # each call: 2 * 8 * 8 + 2 * 8 * 3 = 176 MACs, all forward, none "other"
    assert c.phase("forward").macs == 2 * 176 and c.phase("other").calls == 0
    assert c.module("1").macs == 2 * 2 * 8 * 3
    assert c.module("0").macs == 2 * 8 * 8  # the original layer; its replacement counts in the root
    assert c.module("").macs == 2 * 176


def test_a_module_swapped_out_and_dropped_is_kept_until_the_block_ends():
    """The recorder knows modules by address: a registered module freed inside the block would
    leave its address to the next new object (a layer made in a forward), which would then count
    as that module (seen on Python 3.13). The recorder holds each registered module until the
    block ends, and lets go of it then."""
    import gc
    import weakref

    model = nn.Sequential(nn.Linear(8, 8, bias=False), nn.ReLU())
    gone = weakref.ref(model[0])
    x = torch.randn(2, 8)
    with fd.count(model) as c:
        model(x)
        model[0] = nn.Linear(8, 8, bias=False)  # the only other reference to the first layer
        gc.collect()
        assert gone() is not None  # held by the recorder while the block runs
        for _ in range(50):  # new layers made at run time: none may count as the dropped one
            nn.Linear(8, 8, bias=False)(x)
    gc.collect()
    assert gone() is None  # and released when it ends: no leak of the user's modules
    assert c.module("0").macs == 2 * 8 * 8  # the first call only: 128
    assert c.phase("forward").macs == 2 * 8 * 8  # the model's call: 128
    assert c.phase("other").macs == 50 * 2 * 8 * 8  # the 50 layers outside the model: 6,400


# ----- big integers: sums past int64 stay exact -----------------------------------------------------

def test_totals_past_int64_are_exact():
    a = torch.empty(2**20, 2**20, device="meta")
    with fd.count() as c:
        for _ in range(8):
            a @ a
    # each mm: 2^20 * 2^20 * 2^20 = 2^60 MACs, 2^61 FLOPs; 8 calls: 2^63 MACs, 2^64 FLOPs (> int64)
    assert c.macs == 8 * 2**60 == 2**63
    assert c.flops == 8 * 2**61 == 2**64
    # bytes: each call reads two 2^40-element float32 matrices and writes one: 3 * 2^42 bytes
    assert c.totals.bytes == 8 * 3 * 2**42


def test_several_models_counted_through_one_container():
    student, teacher = nn.Linear(8, 4, bias=False), nn.Linear(8, 2, bias=False)
    x = torch.randn(5, 8)
    with fd.count(nn.ModuleDict({"student": student, "teacher": teacher})) as c:
        s = student(x)
        with torch.no_grad():
            t = teacher(x)
        (s[:, :2] - t).pow(2).sum()
    assert c.module("student").macs == 5 * 8 * 4
    assert c.module("teacher").macs == 5 * 8 * 2
    assert c.phase("forward").macs == 5 * 8 * 4 + 5 * 8 * 2
    assert c.phase("other").calls > 0 and c.phase("other").macs == 0  # the loss


class _MatmulDataset(torch.utils.data.Dataset):
    """Each item: a (4 x 8)(8 x 2) matmul, 64 MACs, and whether a dispatch mode was active."""

    def __len__(self):
        return 3

    def __getitem__(self, i):
        a, b = torch.ones(4, 8), torch.ones(8, 2)
        return a @ b, torch.tensor(len(_get_current_dispatch_mode_stack()))


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_worker_ops_are_never_in_the_parents_count(context):
    import multiprocessing

    if context not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {context} start method here")
    loader = torch.utils.data.DataLoader(_MatmulDataset(), batch_size=None, num_workers=1,
                                         multiprocessing_context=context)
    with fd.count() as c:
        modes_in_worker = [int(active) for _, active in loader]
    assert c.macs == 0  # 3 items x 64 MACs ran in the worker, none of it here
    # with fork the worker inherits a copy of the active mode (its counts stay in the worker)
    assert modes_in_worker == ([1, 1, 1] if context == "fork" else [0, 0, 0])
