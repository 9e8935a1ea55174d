"""Counting: ``count`` (a context manager around any eager code) and ``profile`` (one call).

Everything per op happens in the compiled recorder; this module holds the count's lifecycle:
installing and removing the dispatch mode and the module/optimizer hooks (Ctrl-C-atomic, through
``_core.Lifecycle``), the recorder's callbacks, and the freeze of the recorder's flat table into
the results engine (``flopdispatch.results.freeze``), which answers every query of ``count`` as it
answers a saved report's. The module registry (roots, names, parameters) is ``flopdispatch._tree``.
"""
from __future__ import annotations

import functools
import threading
import time
import warnings
from typing import Dict, List, Mapping, Optional, Sequence, Union

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.hooks import RemovableHandle

from . import _compile, _core, _hops, comm, user
from . import activations as _activations
from ._counts import PHASES, Counts, ModuleCounts, TotalsShortcuts  # noqa: F401 (PHASES: fd.symbolic)
from ._tree import ModuleTree, root_items
from .results import check_phase, freeze
from .schema import Report


def _cuda_event():
    """A CUDA event recorded now on the current stream (timing mode)."""
    event = torch.cuda.Event(enable_timing=True)
    event.record()
    return event



class _CountingMode(_core.Recorder, TorchDispatchMode):
    """The dispatch mode: its ``__torch_dispatch__`` is the compiled recorder's.

    Higher-order ops have their own rules (``_hops``); one created after the block was entered
    reaches ``__torch_dispatch__``, runs, and is reported unsupported.
    """

    supports_higher_order_operators = True

    def __init__(self):
        TorchDispatchMode.__init__(self)

    @classmethod
    def ignore_compile_internals(cls):
        """True only while torch compiles a HOP's own wrapper (torch.cond, scan, map,
        flex_attention...): it then captures the user's functions as graphs, as without the counter,
        and the HOP runs under its counting rule. A user's torch.compile still runs eagerly."""
        return _hops.in_hop_compile()


def _module_formula_hook(mode):
    """A global forward hook adding a module formula's cost (fd.formula) to the module just run,
    in the current scope and phase (it runs before the hook that leaves the module's scope)."""
    from torch.utils._python_dispatch import _get_current_dispatch_mode, _pop_mode_temporarily

    owner = threading.get_ident()  # a count belongs to the thread that entered it

    def hook(module, args, output):
        f = user.module_formula(type(module))
        if f is None or threading.get_ident() != owner:
            return None
        if _get_current_dispatch_mode() is mode:  # the formula's own tensor work is not the model's
            with _pop_mode_temporarily():
                mode.__torch_dispatch__(f, (), (module, args, output), None)
        else:
            mode.__torch_dispatch__(f, (), (module, args, output), None)
        return None

    return hook


# ----- installing and removing, atomically (issue 20) ----------------------------------------------
# Everything a count installs (global module and optimizer hooks, the dispatch mode, saved-tensor
# hooks, the compiled-frame counter) is a list of steps run by ``_core.Lifecycle._install`` in one C
# call, and removed by its ``__exit__`` (also C), which finishes every removal step whatever is raised
# meanwhile: a KeyboardInterrupt at any line leaves either everything installed and the block's exit
# ahead, or nothing.

_FLAG_NAMES = ("_is_in_torch_dispatch_mode", "_is_in_non_infra_torch_dispatch_mode",
               "_is_in_any_mode_without_ignore_compile_internals")
_FLAG_LISTS = ("old_dispatch_mode_flags", "old_non_infra_dispatch_mode_flags",
               "old_without_ignore_compile_internals_dispatch_mode_flags")


def _hook_steps(hooks, hook, *flags):
    """(remove, steps): steps registering a global hook as torch's ``register_*_hook`` does (under a
    fresh ``RemovableHandle`` id in `hooks`, and True in each of the `flags` dicts) and removing it;
    ``remove()`` takes it out of `hooks` early (a hook removing itself)."""
    hid = RemovableHandle.next_id  # torch's id sequence, shared with every other hook
    RemovableHandle.next_id = hid + 1
    steps = [(hooks.__setitem__, (hid, hook), hooks.pop, (hid, None))]
    steps += [(d.__setitem__, (hid, True), d.pop, (hid, None)) for d in flags]
    return functools.partial(hooks.pop, hid, None), steps


@functools.lru_cache(maxsize=None)
def _mode_flags_known(mode_type):
    """Whether this torch keeps TorchDispatchMode's flags as ``_push_step`` and ``_leave_mode`` expect."""
    from torch.utils import _python_dispatch as pd

    return (all(hasattr(pd, n) for n in _FLAG_NAMES) and hasattr(pd, "set_is_in_mode_without_ignore_compile_internals")
            and hasattr(mode_type, "_lazy_init_old_dispatch_mode_flags")
            and getattr(mode_type, "_dispatch_key", None) is None)


def _push_step(mode):
    """The step that enters `mode` as ``TorchDispatchMode.__enter__`` does (its flags saved and set,
    then the push), in one C call; its undo is ``_leave_mode``."""
    from torch.utils import _python_dispatch as pd

    if not _mode_flags_known(type(mode)):  # another torch: its own __enter__ (atomic up to torch's own code)
        return (mode.__enter__, None, _leave_mode, (mode,))
    mode._lazy_init_old_dispatch_mode_flags()
    was = tuple(getattr(pd, n) for n in _FLAG_NAMES)
    now = (True, was[1] or not mode.is_infra_mode(), was[2] or not mode.ignore_compile_internals())
    g = vars(pd)
    inner = [(getattr(mode, lst).append, (w,)) for lst, w in zip(_FLAG_LISTS, was)]
    inner += [(g.__setitem__, (n, v)) for n, v in zip(_FLAG_NAMES, now)]
    inner += [(pd.set_is_in_mode_without_ignore_compile_internals, (now[2],)),
              (torch._C._push_on_torch_dispatch_stack, (mode,))]
    return (_core.run_steps, (inner,), _leave_mode, (mode,))


def _leave_mode(mode):
    """Take `mode` off this thread's dispatch mode stack, wherever it is, in one C call.

    Counts may be exited out of order (generators closed non-LIFO, a manual ``__exit__``): torch's
    own ``__exit__`` pops the top mode, which would end the wrong count and leave this one
    counting. Here the modes above ours are lifted off, ours is taken off, and they are put back in
    the same order, so every other count (and any other mode) goes on exactly as before. Running it
    again once it is done does nothing (an undo step may be run again after an interrupt).
    """
    from torch.utils import _python_dispatch as pd

    # torch keeps infrastructure modes (FakeTensorMode...) in their own slots beside this stack
    stack = [torch._C._get_dispatch_stack_at(i) for i in range(torch._C._len_torch_dispatch_stack())]
    stack = [m for m in stack if getattr(m, "_mode_key", None) is None]
    if not any(m is mode for m in stack):
        if mode.__dict__.get("_fd_left"):
            return
        raise RuntimeError("flopdispatch.count exited in a thread other than the one that entered it "
                           "(or its mode was removed by other code): its dispatch mode is not on this "
                           "thread's mode stack")
    left = (setattr, (mode, "_fd_left", True))
    if not _mode_flags_known(type(mode)):
        if stack[-1] is not mode:
            raise RuntimeError("flopdispatch.count: this torch's dispatch modes cannot be left out of order")
        _core.run_steps([(mode.__exit__, (None, None, None)), left])
        return
    lists = [getattr(mode, lst) for lst in _FLAG_LISTS]
    pop = (torch._C._pop_torch_dispatch_stack, (None,))
    if stack[-1] is mode:  # as TorchDispatchMode.__exit__: the flags saved at entry come back
        before = [lst[-1] for lst in lists]
        g = vars(pd)
        steps = [(lst.pop, ()) for lst in lists] + [(g.__setitem__, (n, v)) for n, v in zip(_FLAG_NAMES, before)]
        steps += [(pd.set_is_in_mode_without_ignore_compile_internals, (before[2],)), pop, left]
        _core.run_steps(steps)
        return
    above = stack[next(i for i, m in enumerate(stack) if m is mode) + 1:]
    # The mode right above ours inherits what torch saved as "before ours", so that torch's
    # module-level flags come back right when that mode exits in turn; the modes above are still
    # active, so the flags stay as they are now.
    steps = [pop] * len(above)
    nxt = above[0]
    for lst, mine in zip(_FLAG_LISTS, lists):
        theirs = getattr(nxt, lst, None)
        if mine and theirs:
            steps.append((theirs.__setitem__, (-1, mine[-1])))
    steps += [(lst.pop, ()) for lst in lists] + [pop]
    steps += [(torch._C._push_on_torch_dispatch_stack, (m,)) for m in above] + [left]
    _core.run_steps(steps)



class count(TotalsShortcuts, _core.Lifecycle):
    """Count FLOPs, MACs and bytes of everything run inside the block.

    ``with count(model) as c: model(x)``: module names relative to the model (``""`` is the model).
    Several models: ``count({"G": g, "D": d})`` (or a list, named by class like the roots below):
    each model is a root, its names prefixed by its key (``"D"``, ``"D.0"``), and ``""`` is all
    the models together (their parameters counted once). Without a model, every top-level module
    that runs (called while no counted module is running) becomes a root with its tree: one root
    is named as a model given alone (``""``, ``"layer1"``); from the second on, each is named by its
    class (``"Generator"``, ``"Linear#2"``: a variable's name is not knowable) and ``""`` is all of
    them. Work outside every root (a loss, data preparation) is in no module row; with models
    given it is the "other" phase. A count belongs to the thread that enters it:
    other threads' ops, module calls and optimizer steps are not in it (README, "Guarantees").
    ``python_formulas=True`` costs ops with the pure-Python reference (slower; for comparisons).
    ``timing=True`` also measures each op's execution time (CPU: a steady clock around the op
    call; CUDA: events around it, synchronised once when results are read), so that modules and
    phases get seconds, FLOP/s and a roofline comparison; the counter's own work is never timed.
    ``activations=True`` also records the bytes autograd saves for backward during forward, per
    module (``saved_bytes``, ``saved_peak_bytes``, ``saved_param_bytes``; ``flopdispatch.activations``);
    off by default, and then nothing is installed.
    A ``count`` is entered once; its results stay readable after the block.
    """

    def __init__(self, model: Union[torch.nn.Module, Mapping[str, torch.nn.Module],
                                    Sequence[torch.nn.Module], None] = None, *, python_formulas: bool = False,
                 timing: bool = False, ignore=(), activations: bool = False):
        roots = root_items(model)
        self._model_roots = roots  # [(key or None, module)] given; dropped at exit
        # activations=True: bytes of tensors saved for backward, per module (flopdispatch.activations)
        self._activations = _activations.SavedTracker() if activations else None
        # the module registry: roots, names, types, parameters, ignored modules (flopdispatch._tree)
        self._tree = ModuleTree(roots, ignore, self._activations)
        self._python_formulas = bool(python_formulas)
        self._python_pricer = None  # fd.symbolic: callable(func, args, kwargs, out, scope, phase) pricing every op
        self._timing = bool(timing)
        self._wall = [0.0, 0.0]
        self._mode = None
        self._active = False
        self._entered = False
        self._results = None
        # With models: whether one of their modules ran, else the first other module that did (a
        # warning at exit: counting one instance while running another leaves every row at zero).
        self._watch = {"tree_ran": False, "foreign": None}

    # ----- callbacks of the recorder (registry lookups: flopdispatch._tree) --------------------------

    def _on_unknown_module(self, module):
        """The recorder's call for an unregistered module run at top level (``count()`` without a
        model): ``ModuleTree.on_unknown_module`` adopts it as a root; returns its module index."""
        return self._tree.on_unknown_module(self._mode, module)

    def _on_accumulate_grad(self, node):
        """The recorder's call for a gradient accumulated into a parameter: its owner's module index."""
        variable = getattr(node, "variable", None)
        return self._tree.param_owner.get(id(variable), -1) if variable is not None else -1

    # ----- context manager --------------------------------------------------------------------------

    # ``__enter__`` and ``__exit__`` are ``_core.Lifecycle``'s (C): ``__enter__`` installs the steps
    # ``_prepare`` returns in one C call; ``__exit__`` removes them all, then calls ``_finish``.

    def _prepare(self):
        """Everything entering the block needs, computed without installing anything; returns the
        steps that install it (see ``_core.Lifecycle``)."""
        if self._entered:
            raise RuntimeError("a flopdispatch.count block can be entered only once; make a new count()")
        self._entered = True
        mode = self._mode = _CountingMode()
        # with models given, nothing is adopted: no call into Python for modules outside them
        given = bool(self._model_roots)
        mode.configure(given, None if given else self._on_unknown_module, self._on_accumulate_grad)
        mode.use_python_formulas(self._python_formulas or self._python_pricer is not None, self._python_pricer)
        mode.configure_timing(self._timing, _cuda_event if self._timing and torch.cuda.is_available() else None)
        for key, root in self._model_roots:
            self._tree.register(mode, root, key)
        _hops.register(_CountingMode)  # rules for this mode type (kept: they act only under it)
        modules = torch.nn.modules.module
        from torch.optim import optimizer

        # undone last: results read (timing), recorder detached, models dropped
        steps = [(None, None, self._release, None)]
        steps += _hook_steps(modules._global_forward_pre_hooks, mode.module_enter)[1]
        if self._model_roots:
            watch_hook = self._watch_hook()
            watch_hook.remove, more = _hook_steps(modules._global_forward_pre_hooks, watch_hook)
            steps += more
        if user.has_module_formulas():
            steps += _hook_steps(modules._global_forward_hooks, _module_formula_hook(mode))[1]
        steps += _hook_steps(modules._global_forward_hooks, mode.module_exit,
                             modules._global_forward_hooks_always_called)[1]  # always_call=True
        steps += _hook_steps(optimizer._global_optimizer_pre_hooks, mode.optimizer_enter)[1]
        steps += _hook_steps(optimizer._global_optimizer_post_hooks, mode.optimizer_exit)[1]
        steps += _hops.fullgraph_steps()
        _compile.skip_in_dynamo()  # dynamo never traces our hooks
        if self._activations is not None:
            steps += self._activations.steps(mode.where)
        steps.append(_push_step(mode))
        inside = self.__dict__.pop("_entering_inside", None)
        if inside is not None:  # Meter: the module whose forward pre-hook enters the block
            steps.append((mode.module_enter, (inside, ()), None, None))
            if id(inside) in self._tree.tree_ids:
                steps.append((self._watch.__setitem__, ("tree_ran", True), None, None))
        steps.append((setattr, (self, "_active", True), setattr, (self, "_active", False)))
        steps.append((self._start_wall, None, self._stop_wall, None))  # undone first: the block's end
        return steps

    def _start_wall(self):
        self._wall[0] = time.perf_counter()

    def _stop_wall(self):
        if not self._wall[1]:
            self._wall[1] = time.perf_counter()

    def _enter_inside(self, module: torch.nn.Module) -> "count":
        """Enter the block from inside a forward pre-hook of ``module``, a module of the tree (used by
        ``fd.Meter``, which starts counting at the model's first forward of a step). The global
        module pre-hooks of that call ran before the block existed, so the module is entered here
        (the last install step); its exit is seen by the block's own forward hook."""
        self._entering_inside = module
        return self.__enter__()

    def _finish(self, exc_type, exc, tb):
        """After every hook is removed (``__exit__``): the warning for a model that never ran."""
        watch = self._watch
        if exc_type is None and self._entered and not watch["tree_ran"] and watch["foreign"] is not None:
            what = f"the counted {self._tree.types[0]}" if not self._tree.prefixed else \
                f"none of the counted models ({', '.join(self._tree.root_keys)})"
            warnings.warn(f"flopdispatch.count(model): {what} never ran, but other "
                          f"modules did (first a {watch['foreign']}): their work is outside the model, and "
                          "every module row is zero. Count the instance you run (a deepcopy is another "
                          "instance).", UserWarning, stacklevel=2)
        return False

    def _watch_hook(self):
        """A module pre-hook noting whether the counted model's modules run (one set lookup a
        module call until one of them does; then it removes itself)."""
        watch, tree, owner = self._watch, self._tree.tree_ids, threading.get_ident()

        def hook(module, args):
            if watch["tree_ran"]:
                return None
            if id(module) in tree:
                watch["tree_ran"] = True
                hook.remove()  # torch iterates over a copy of the hooks: safe here
            elif watch["foreign"] is None and threading.get_ident() == owner:
                watch["foreign"] = type(module).__name__
            return None

        return hook

    def _release(self):
        """The last removal step: with timing, the pending CUDA events are read now (``detach``
        drops them); the recorder forgets its callbacks; the user's models are dropped. Running it
        again is harmless. Issue 14: the roll-up into totals, phases, ops and scopes is made on first
        read (``_res``), not here: the recorder keeps its table after ``detach``."""
        try:
            if self._timing and self._results is None:
                self._results = self._collect()
        finally:
            self._mode.detach()
            # keep names and numbers, not the user's objects
            self._model_roots, self._tree.root_modules, self._tree.all_roots_key = [], [], None

    # ----- results ----------------------------------------------------------------------------------

    def _collect(self):
        """Freeze the recorder's table into the results engine (``flopdispatch.results.freeze``),
        with the registry's names and records (``flopdispatch._tree``). Made once when the block
        has closed (inside it: a snapshot per read)."""
        tree = self._tree
        names, name_of, _ = tree.naming()
        host, events = self._mode.times()
        if events:
            torch.cuda.synchronize()  # once, when results are read
        timed = [(s, p, o, sec) for s, p, o, sec in host]
        timed += [(s, p, o, start.elapsed_time(end) / 1e3) for s, p, o, start, end in events]
        saved = None
        if self._activations is not None:
            saved = (functools.partial(_activations.summary, self._activations), self._activations.by_scope)
        results = freeze(
            snapshot=self._mode.snapshot(), timed=timed, comm=comm.records(self._mode), entered=self._mode.entered(),
            names=names, name_of=name_of, types=tree.types, params=tree.params, shared_params=tree.shared_params,
            roots=tree.roots if tree.prefixed else None, total_params=tree.total_params(),
            ignored_idx=tree.ignored_idx, ignored_modules=tree.ignored_modules, reason_of=_core.unsupported_reason,
            saved=saved, timing=self._timing, wall_seconds=self._elapsed())
        return Report._of(results, {})

    def _res(self) -> "Report":
        """The results engine of this count: made once when the block has closed; inside the block,
        a fresh snapshot at every read."""
        if self._results is not None:
            return self._results
        if self._mode is None:
            raise RuntimeError("nothing counted yet: use `with flopdispatch.count(...) as c:`")
        if self._entered and not self._active:  # finished: frozen once, on first read (issue 14)
            self._results = self._collect()
            return self._results
        return self._collect()  # live view inside the block

    def _results_now(self) -> "Report":
        return self._res()

    def _check_phase(self, phase):
        check_phase(phase)

    def _module_index(self, name) -> int:
        """A module's position in ``module_names`` (KeyError with close matches when unknown)."""
        return self._res()._module_index(name)

    # ----- queries: answered by the results engine (flopdispatch.results.Results) ------------------

    @property
    def totals(self) -> Counts:
        """Everything counted in the block."""
        if self._results is None and self._mode is not None and not self._tree.ignored_idx and not self._timing:
            # issue 14: summed by the recorder in C, without the Python roll-up of every row
            f, m, masked, r, w, calls = self._mode.totals()
            return Counts(flops=f, macs=m, bytes_read=r, bytes_written=w, causal_macs=m - masked, calls=calls)
        return self._res().totals

    @property
    def ignored_modules(self) -> List[str]:
        """Names of the modules ``count(ignore=...)`` matched (their subtrees' work is in ``ignored``)."""
        return self._tree.ignored_modules

    def ignored(self, phase: Optional[str] = None) -> Counts:
        """The work run inside ignored modules (forward and backward), left out of ``totals``,
        phases, ops and every module's counts (an ignored module's row is zero)."""
        return self._res().ignored(phase)

    def ignored_ops(self) -> Dict[str, dict]:
        """Per aten op, the ignored work: {'aten::embedding': {calls, flops, ...}}, by FLOPs."""
        return self._res().ignored_ops()

    @property
    def wall_seconds(self) -> float:
        """Wall-clock seconds of the whole block (counter included), for comparison with
        ``totals.seconds`` (the ops alone, with ``timing=True``)."""
        elapsed = self._elapsed()
        return 0.0 if elapsed is None else elapsed

    def _elapsed(self) -> Optional[float]:
        """Seconds from the block's start to its end (to now inside it); None before it started."""
        if not self._wall[0]:
            return None
        return (self._wall[1] or time.perf_counter()) - self._wall[0]

    @property
    def params(self) -> int:
        """Parameters of the root module, or of all roots together, each tensor once (0 when no
        module ran)."""
        return self._tree.total_params()[0]

    @property
    def trainable_params(self) -> int:
        return self._tree.total_params()[1]

    @property
    def roots(self) -> List[str]:
        """The roots' names: ``[""]`` for one model (given or adopted), the keys for several."""
        return self._tree.roots

    @property
    def module_names(self):
        """Tracked module names, in ``named_modules()`` order (``""`` is the root, or all roots
        first, then each root's tree)."""
        return list(self._tree.names)

    @property
    def phases_run(self) -> List[str]:
        """Phases with at least one counted op, in PHASES order."""
        return self._res().phases_run

    @property
    def has_exclusive(self) -> bool:
        return True

    def phase(self, name: str) -> Counts:
        """Counts of one phase: 'forward', 'backward', 'optimizer' or 'other'."""
        return self._res().phase(name)

    def module(self, name: str = "", phase: Optional[str] = None, exclusive: bool = False) -> ModuleCounts:
        """Counts of a module by name (``""`` is the root, or all roots), optionally for one phase.

        Inclusive by default: the work of every call stack the module is on, and for a container
        never called itself (a ModuleList) its children's (docs/results.md); ``exclusive=True``:
        only the ops run directly in its own code (a functional ``@`` or SDPA in its ``forward``),
        not in a child. The exclusive counts of every module plus the work outside all modules add
        up to the total. ``params`` is the subtree's parameters either way. ``saved_bytes`` (with
        ``count(activations=True)``; None otherwise, and for phases other than forward): bytes of
        activations saved for backward during its forward (``saved_bytes`` of the count).
        """
        return self._res().module(name, phase, exclusive)

    def display_counts(self, name: str = "", phase: Optional[str] = None):
        """(counts, rolled_up): a module's counts as tables show them (``Report.display_counts``)."""
        return self._res().display_counts(name, phase)

    def op_counts(self, name: str, phase: Optional[str] = None) -> Counts:
        """One op's counts, optionally for one phase."""
        return self._res().op_counts(name, phase)

    @property
    def activations(self) -> Optional[Dict[str, int]]:
        """{'saved_bytes', 'saved_peak_bytes', 'saved_param_bytes'} (activations=True), else None."""
        return self._res().activations if self._activations is not None else None

    @property
    def saved_bytes(self) -> Optional[int]:
        """Bytes of activations autograd saved for backward during the block's forward work
        (``count(activations=True)``; None otherwise): each storage once, parameters and buffers
        excluded, checkpointed regions as their inputs. README "Activation memory"."""
        return self._res().saved_bytes if self._activations is not None else None

    @property
    def saved_peak_bytes(self) -> Optional[int]:
        """The most activation bytes saved for backward alive at once during the block, in bytes
        (None without ``activations=True``)."""
        return self._res().saved_peak_bytes if self._activations is not None else None

    @property
    def saved_param_bytes(self) -> Optional[int]:
        """Bytes of parameters and buffers autograd saved (a linear's weight): model state, not
        in ``saved_bytes`` (None without ``activations=True``)."""
        return self._res().saved_param_bytes if self._activations is not None else None

    def ops(self, phase: Optional[str] = None, module: Optional[str] = None,
            exclusive: bool = False) -> Dict[str, dict]:
        """Per aten op: {'aten::mm': {calls, flops, macs, bytes_read, bytes_written, causal_macs}}
        (and ``seconds`` with timing), by FLOPs.

        ``phase``: one phase only. ``module``: the ops that module's figures hold (its call
        stacks; a never-called container: its children's), so they add up to ``module(...)``;
        ``exclusive=True``: only those run directly in its own code, not in a child.
        """
        return self._res().ops(phase, module, exclusive)

    def outside(self, phase: Optional[str] = None, exclusive: bool = False) -> ModuleCounts:
        """The work outside the modules: what the row ``""`` does not hold (a loss, data
        preparation); ``exclusive=True``: outside every module's own code, so that it and every
        module's exclusive counts add up to the totals (``Results.outside``)."""
        return self._res().outside(phase, exclusive)

    def outside_ops(self, phase: Optional[str] = None) -> Dict[str, dict]:
        """Per aten op, the ops run outside every module's own code, by FLOPs."""
        return self._res().outside_ops(phase)

    def collectives(self, phase: Optional[str] = None, module: Optional[str] = None,
                    exclusive: bool = False) -> Dict[str, dict]:
        """Per collective op (torch.distributed): {'c10d::allreduce_': {calls, bytes, bus_bytes,
        world_size, seconds}}, by bus bytes. ``bytes``: the payload per rank (NCCL-tests' size);
        ``bus_bytes``: payload x the algorithm's factor (all-reduce 2(n-1)/n, ...); ``world_size``:
        the process group's size (the largest, if several); ``seconds``: with ``timing=True``.
        ``phase`` and ``module`` (``exclusive``) select as in ``ops``."""
        return self._res().collectives(phase, module, exclusive)

    def collectives_total(self, phase: Optional[str] = None) -> Dict[str, int]:
        """{calls, bytes, bus_bytes, seconds} of every collective together."""
        return self._res().collectives_total(phase)

    @property
    def unsupported(self) -> Dict[str, int]:
        """Ops whose FLOPs could not be counted: {'aten::xyz': calls}."""
        return dict(self._res().unsupported)

    @property
    def unsupported_reasons(self) -> Dict[str, str]:
        """Why each unsupported op was not counted."""
        return dict(self._res().unsupported_reasons)

    def to_dict(self) -> dict:
        """This count's results as JSON-able data: the saved report's object (schema
        ``flopdispatch.report/2``, docs/report-schema.md) with only the versions as metadata (no
        timestamp: two counts of the same work give equal dicts); ``Report.from_count`` adds the run's."""
        from ._version import __version__

        return Report._of(self._res(), {"flopdispatch_version": __version__,
                                        "torch_version": torch.__version__}).to_dict()

    def table(self, depth=2, by: str = "module", sort: Optional[str] = None, units: str = "auto") -> str:
        """A readable table, as the command line's ``--depth --by --sort --units`` draw it.

        depth: module levels below the root (an int >= 0; "all" or None: every level).
        by: "module" (the tree, with a "self" column: work run in the module itself, not in a
        child), "op" or "phase". sort: None (model order), "flops", "macs", "bytes" or "params".
        units: "auto" (SI prefixes) or one fixed prefix, "K", "M", "G", "T" or "P".
        """
        return self._res().table(depth=depth, by=by, sort=sort, units=units)

    def to_pandas(self, by: str = "module"):
        """A pandas DataFrame (pandas is optional): by="module", one row per (module, phase) with
        inclusive and ``self_*`` counts; by="op", one row per (module, phase, op) of each module's own
        ops. Work outside every module is in ``"(outside root)"`` rows, so own work adds up to the
        totals. See ``flopdispatch.frames``."""
        return self._res().to_pandas(by)

    def __repr__(self):
        if self._mode is None:
            return "<flopdispatch.count (not entered)>"
        t = self.totals
        return f"<flopdispatch.count flops={t.flops} macs={t.macs} bytes={t.bytes}>"

    def _repr_html_(self):  # Jupyter: the module table and the interactive page (flopdispatch.notebook)
        from . import notebook
        return None if self._mode is None else notebook.report_html(Report.from_count(self))


def profile(model: torch.nn.Module, *args, **kwargs) -> count:
    """Count one call ``model(*args, **kwargs)``; returns the finished ``count``.

    A string among ``args`` is an input spec, made into a tensor on the model's device:
    ``"1x3x224x224"`` (floats in the model's dtype), ``"1x128:int64"`` (token ids below the vocab
    size), ``"attention_mask=1x128:int64"`` (passed by name), as the command line's ``--input``
    (``flopdispatch.inputs``). Positional specs and tensors do not mix; named specs go with either.
    A bad spec raises ``flopdispatch.inputs.SpecError`` (a ValueError) before anything runs.
    """
    if any(isinstance(a, str) for a in args):
        from .inputs import make_inputs

        specs = [a for a in args if isinstance(a, str)]
        given = [a for a in args if not isinstance(a, str)]
        made, named = make_inputs(model, specs, given_positional=len(given), given_names=list(kwargs))
        args = tuple(given) + tuple(made)
        kwargs = {**kwargs, **named}
    with count(model) as c:
        model(*args, **kwargs)
    return c
