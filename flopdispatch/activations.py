"""Activation memory: the bytes of tensors autograd saves for backward, per module.

``count(model, activations=True)`` pushes a pair of ``torch.autograd.graph.saved_tensors_hooks``
for the block. Each time autograd saves a tensor during forward (an op's input or output its
backward needs), the pack hook asks the recorder where the work runs (module scope and phase,
exactly as an op would be recorded) and notes the tensor's storage:

- **Storage, once.** Bytes are the storage's (``untyped_storage().nbytes()``), counted once while
  any saved tensor holds it: a view saved twice (q, k, v split from one qkv output, a tensor saved
  by two ops) is one storage. The key is the storage's ``_cdata`` (its C++ address: unique among
  live storages, meta and fake tensors included, which have no data pointer). A storage is live as
  long as a handle the pack hook returned is alive (the handle holds the tensor, as autograd's own
  saved variable would); when the graph is freed (after backward, or when the output is dropped)
  the handles die and the storage leaves the live set, so an address reused by a new storage later
  is a new entry, never merged with the old one.
- **First saver.** Each storage is charged to the module scope where it was first saved, so the
  exclusive figures of all modules plus the work outside the root add up to the total (as for
  FLOPs); a module's inclusive figure is the sum over its subtree.
- **Parameters are not activations.** A saved tensor whose storage is a parameter's or a buffer's
  of the counted modules, or any ``nn.Parameter`` (or view of one: the weight a functional
  ``F.linear(x, w)`` saves), is model state: counted apart, in ``saved_param_bytes``, never in
  ``saved_bytes`` or the peak.
- **Forward only.** Saves made while the autograd engine runs (``phase == backward``: a reentrant
  checkpoint's recompute, double backward) are short-lived and not counted; they pass through.
  Activation checkpointing is therefore reflected as it is in memory: a checkpointed region saves
  its inputs (reentrant: ``ctx.save_for_backward``; non-reentrant: its saved inputs; both seen by
  the hook, charged to the module calling ``checkpoint``), and nothing inside (non-reentrant
  checkpoint's own hooks replace ours inside the region; reentrant runs it under ``no_grad``).
- **Peak.** The largest sum of live activation bytes during the block (saved storages not yet
  freed), sampled at every new save.

The hooks cost nothing when ``activations`` is not asked for: they are not installed. A user's own
``saved_tensors_hooks`` pushed inside the block (CPU offloading, a non-reentrant checkpoint region)
replace ours while active: what they save is not seen.
"""
from __future__ import annotations

import threading
from typing import Dict, Optional

import torch

_P_BACKWARD = 1  # the recorder's phase number for backward (csrc/recorder.cpp, enum Phase)
_tls = threading.local()  # .trackers: the trackers active on this thread, outermost first


def _active():
    return getattr(_tls, "trackers", None)


def _storage_key(t):
    """(key, bytes) of the storage a tensor's data lives in: a plain tensor's own; for a subclass
    that wraps other tensors (``__tensor_flatten__``: a DTensor wraps its local shard), the wrapped
    ones' (the wrapper's own storage is a stand-in of the global size: a DTensor saved for backward
    holds its shard, not the whole); a tensor without a storage is its own key, at its own size."""
    kind = type(t)
    if kind is not _Tensor and kind is not _Parameter:  # (module globals, below: no attribute lookups)
        flatten = getattr(t, "__tensor_flatten__", None)
        if flatten is not None:
            try:  # the inner tensors (DTensor also names its device mesh there)
                inner = [getattr(t, name) for name in flatten()[0]]
                parts = [_storage_key(x) for x in inner if isinstance(x, torch.Tensor)]
            except Exception:  # noqa: BLE001 - not a wrapper after all: read the tensor itself below
                parts = []
            if len(parts) == 1:
                return parts[0]
            if parts:
                return tuple(key for key, _ in parts), sum(nbytes for _, nbytes in parts)
    try:
        s = t.untyped_storage()
        return s._cdata, s.nbytes()
    except Exception:  # noqa: BLE001 - no storage to read: the tensor itself
        return ("tensor", id(t)), t.numel() * t.element_size()


_Parameter, _Tensor = torch.nn.Parameter, torch.Tensor


def _is_parameter(t) -> bool:
    """An ``nn.Parameter``, or a view of one (``weight.t()`` saved by ``mm``)."""
    base = t._base
    if base is None:
        base = t
    kind = type(base)  # a plain tensor skips Parameter's Python-level isinstance check (1.5 us)
    return kind is _Parameter or (kind is not _Tensor and isinstance(base, _Parameter))


class _Saved(tuple):
    """What autograd keeps for one saved tensor while hooks are on: (the tensor, the trackers that
    counted its storage, with their keys). Its death (graph freed) releases the storage in each
    tracker. A tuple: made whole in one C call (``tuple.__new__``), so an interrupt cannot leave one
    half made (issue 20)."""

    __slots__ = ()

    def __del__(self):
        for tracker, key in self[1]:
            tracker._release(key)


def _pack(t):
    trackers = _active()
    if not trackers:
        return t
    notes = []
    for tracker in trackers:
        try:
            key = tracker._note(t)
        except Exception:  # noqa: BLE001 - bookkeeping never breaks the program's autograd
            key = None
        if key is not None:
            notes.append((tracker, key))
    return _Saved((t, notes)) if notes else t


def _unpack(h):
    return h[0] if type(h) is _Saved else h


class SavedTracker:
    """Saved-for-backward bytes of one count (see the module docstring). Holds no tensor."""

    def __init__(self):
        self._where = None
        self._live: Dict[object, list] = {}  # storage key -> [live handles, bytes, is model state]
        self.live_bytes = 0
        self.peak_bytes = 0
        self.by_scope: Dict[int, int] = {}        # recorder scope -> activation bytes first saved there
        self.param_by_scope: Dict[int, int] = {}  # recorder scope -> parameter/buffer bytes saved there
        self._state_keys = set()                  # storage keys of the counted modules' params and buffers
        self._unpack_hook = None
        self._on = False

    def add_state(self, module):
        """Remember the storages of a registered module's own parameters and buffers."""
        for t in list(module._parameters.values()) + list(module._buffers.values()):
            if isinstance(t, torch.Tensor):
                self._state_keys.add(_storage_key(t)[0])

    def steps(self, where):
        """Install steps (``_core.Lifecycle``) pushing the hooks on this thread and adding this
        tracker to the thread's active ones, and their undos. `where()` gives (scope, phase) of work
        run now."""
        self._where = where
        self._on = True
        trackers = _active()
        if trackers is None:
            trackers = _tls.trackers = []
        # an unpack hook of this tracker's own: it tells our entry on autograd's hook stack from
        # another count's (LIFO or not)
        self._unpack_hook = lambda handle: _unpack(handle)
        push = torch._C._autograd._push_saved_tensors_default_hooks
        return [(push, (_pack, self._unpack_hook), self._pop_hooks, None),
                (trackers.append, (self,), self._leave, None)]

    def _leave(self):
        """Undo step: no longer active on this thread (harmless when run again)."""
        self._on = False
        trackers = _active() or []
        if any(t is self for t in trackers):
            trackers.remove(self)

    def _pop_hooks(self):
        """Undo step: pop our hooks when they are the innermost, as in a nested block (harmless when
        run again). Else the block ends inside other saved-tensor hooks (not LIFO): ours stay below
        them and pass tensors through untouched once no tracker is active."""
        top = torch._C._autograd._top_saved_tensors_default_hooks(True)
        if top is not None and top[1] is self._unpack_hook:
            torch._C._autograd._pop_saved_tensors_default_hooks()

    def _note(self, t):
        """Count one saved tensor; returns its storage key, or None when it is not counted."""
        if not self._on:
            return None
        scope, phase = self._where()
        if phase == _P_BACKWARD:
            return None
        key, nbytes = _storage_key(t)
        entry = self._live.get(key)
        if entry is None:
            state = key in self._state_keys or _is_parameter(t)
            entry = self._live[key] = [0, nbytes, state]
            if state:
                self.param_by_scope[scope] = self.param_by_scope.get(scope, 0) + nbytes
            else:
                self.by_scope[scope] = self.by_scope.get(scope, 0) + nbytes
                self.live_bytes += nbytes
                if self.live_bytes > self.peak_bytes:
                    self.peak_bytes = self.live_bytes
        entry[0] += 1
        return key

    def _release(self, key):
        entry = self._live.get(key)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] <= 0:
            del self._live[key]
            if not entry[2]:
                self.live_bytes -= entry[1]

    # ----- results -------------------------------------------------------------------------------

    @property
    def saved_bytes(self) -> int:
        return sum(self.by_scope.values())

    @property
    def param_bytes(self) -> int:
        return sum(self.param_by_scope.values())

    def per_module(self, on_path, innermost, skip=None):
        """({module: inclusive bytes}, {module: exclusive bytes}) from the recorder's scopes;
        `skip(scope)`: scopes left out (count(ignore=...))."""
        inclusive, exclusive = {}, {}
        for scope, nbytes in self.by_scope.items():
            if skip is not None and skip(scope):
                continue
            for m in on_path[scope]:
                inclusive[m] = inclusive.get(m, 0) + nbytes
            m = innermost[scope]
            if m is not None:
                exclusive[m] = exclusive.get(m, 0) + nbytes
        return inclusive, exclusive


def summary(tracker: Optional[SavedTracker], skip=None) -> Optional[dict]:
    """{'saved_bytes', 'saved_peak_bytes', 'saved_param_bytes'} of a tracker (None: not measured)."""
    if tracker is None:
        return None
    saved = sum(b for s, b in tracker.by_scope.items() if skip is None or not skip(s))
    params = sum(b for s, b in tracker.param_by_scope.items() if skip is None or not skip(s))
    return {"saved_bytes": saved, "saved_peak_bytes": tracker.peak_bytes, "saved_param_bytes": params}
