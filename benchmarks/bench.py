"""flopdispatch against the dispatch floor and against every peer, side by side in one run.

Workloads (CPU, one thread, except the Llama forward, which runs on the meta device):

  gpt-fwd    GPT-style model (flopdispatch._demo.GPT, 2 layers, 4 heads, d 128, vocab 1000),
             batch 4 x 128 tokens, inference forward (eval, no_grad)
  gpt-train  the same model, training step: forward + cross-entropy loss + backward
  cnn-train  a small ResNet (3 stages x 2 basic blocks, 16-32-64 channels, BatchNorm), batch 8 x
             3 x 32 x 32, training step: forward + loss + backward
  mlp-tiny   20 x Linear(8, 8), batch 4, forward + backward: overhead dominates (as overhead.py)
  llama-meta Llama-2-7B shape (hidden 4096, 32 layers, 32 heads, 32 kv heads, MLP 11008, vocab
             32000) on the meta device, 1 x 2048 tokens, forward under no_grad

Contenders: eager; a no-op TorchDispatchMode as overhead.py writes it; the same no-op mode without
the torch._disable_dynamo wrapper that torch (>= 2.10) puts around every __torch_dispatch__
defined in Python (the true floor: flopdispatch's C __torch_dispatch__ is not wrapped either);
flopdispatch (compiled table); flopdispatch with the pure-Python reference formulas; PyTorch's
FlopCounterMode; and the peers that import here (ptflops with its aten backend, fvcore, thop,
torchprofile, calflops, DeepSpeed's FlopsProfiler). The peers count a forward pass only, so on
training workloads they are timed on an inference forward (model in eval mode, no_grad; marked
"fwd"), next to eager, no-op and flopdispatch forwards timed the same way.

Timing: every contender runs in every repetition, in rotating order; each repetition times `inner`
calls; the garbage collector runs between timed calls, not inside them (objects alive after set-up
are frozen out of it). Dispatch-mode counters (no-op, flopdispatch, Python formulas,
FlopCounterMode) are timed in steady state: one block around the `inner` calls. The rows
"flopdispatch, new block per call" and all peers pay their per-call set-up every call (a peer's API
counts one call). Reported: the median time; "x eager" and the per-op overheads are medians of
paired per-repetition figures (each repetition against the eager and no-op runs of the same
repetition), which keeps slow spells of a shared 2-core machine out of the comparison. Per-op
overhead = (t - t_no-op) / aten ops per call, the ops counted by a counting dispatch mode. Per-op
figures are precise on mlp-tiny (overhead-dominated); on the compute-heavy workloads a 1% wobble of
the kernels is several us per op, so read their "x eager" column.

Agreement: each counter's total is converted to MACs by its documented convention (FlopCounterMode
reports FLOPs = 2 x MACs; ptflops, fvcore, thop, torchprofile report MACs; calflops and DeepSpeed
report both, their MACs are used) and compared with flopdispatch's MACs for what it counted (the
whole step, or the inference forward). A hint names the flopdispatch ops whose MACs the peer seems
to miss (its total within 1% of flopdispatch's without them) or the bias adds it folds in (only when
that makes the totals equal exactly); peers that report per-operator totals (fvcore, torchprofile)
get them listed under the table.

Usage:
    python benchmarks/bench.py                  # full run (about 3 minutes on 2 cores)
    python benchmarks/bench.py --quick          # fewer repetitions (about 1.5 minutes)
    python benchmarks/bench.py --only mlp-tiny,gpt-fwd --json results.json
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import io
import itertools
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

import flopdispatch as fd
from flopdispatch._demo import GPT

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


# ----- dispatch modes used as yardsticks ----------------------------------------------------------


class NoopMode(TorchDispatchMode):
    """The floor of the design: a dispatch mode that only runs the op."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


class RawNoopMode(TorchDispatchMode):
    """The same, without the torch._disable_dynamo wrapper that torch puts around every
    __torch_dispatch__ defined in a subclass's body (it imports torch._dynamo on first use and
    costs about 1.8 us per op); flopdispatch's mode inherits a C __torch_dispatch__ and is not
    wrapped, so this is the floor it is really measured against."""

    @classmethod
    def _should_skip_dynamo(cls):
        return False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


class OpCounter(TorchDispatchMode):
    """Counts the aten ops a dispatch mode sees."""

    def __init__(self):
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += 1
        return func(*args, **(kwargs or {}))


# ----- models -------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class ResNet(nn.Module):
    """A CIFAR-style ResNet: stem conv, 3 stages of basic blocks, global pool, linear head."""

    def __init__(self, widths=(16, 32, 64), blocks=2, classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(widths[0])
        layers, cin = [], widths[0]
        for i, w in enumerate(widths):
            for j in range(blocks):
                layers.append(BasicBlock(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        return self.fc(torch.flatten(self.pool(self.layers(x)), 1))


class Workload:
    """A model, the step the core counters time, and the forward the peers time."""

    def __init__(self, name, title, model, step, peer_input, inference, reps, inner):
        self.name, self.title, self.model = name, title, model
        self.step = step                  # one full step (what eager / modes / flopdispatch time)
        self.peer_input = peer_input      # the single positional input of model(...)
        self.inference = inference        # True: the step is a forward under no_grad
        self.reps, self.inner = reps, inner

    def forward(self):
        """One inference forward, as the peers are timed (the model is put in eval mode first)."""
        with torch.no_grad():
            return self.model(self.peer_input)


def llama7b_meta():
    """A Llama-2-7B-shaped LlamaForCausalLM on the meta device, in eval mode (423 modules), the
    benchmarks' big model (transformers needed: ImportError without it)."""
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    cfg = LlamaConfig(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                      intermediate_size=11008, vocab_size=32000, max_position_embeddings=2048)
    with torch.device("meta"):
        return LlamaForCausalLM(cfg).eval()


def make_workloads(quick):
    r = (lambda full, q: q if quick else full)
    out = {}

    torch.manual_seed(0)
    gpt = GPT(layers=2, heads=4, d=128, vocab=1000, context=128, device="cpu").eval()
    idx = torch.randint(0, 1000, (4, 128))

    def gpt_fwd():
        with torch.no_grad():
            gpt(idx)

    out["gpt-fwd"] = Workload("gpt-fwd", "GPT (2 layers, 4 heads, d 128, vocab 1000), 4 x 128 tokens, inference forward",
                              gpt, gpt_fwd, idx, True, r(11, 5), r(2, 1))

    gpt_t = GPT(layers=2, heads=4, d=128, vocab=1000, context=128, device="cpu").train()

    def gpt_train():
        gpt_t.zero_grad(set_to_none=True)
        gpt_t(idx, targets=idx).backward()

    out["gpt-train"] = Workload("gpt-train", "GPT (same sizes), 4 x 128 tokens, training step (forward + loss + backward)",
                                gpt_t, gpt_train, idx, False, r(9, 5), r(2, 1))

    cnn = ResNet().train()
    img = torch.randn(8, 3, 32, 32)
    labels = torch.randint(0, 10, (8,))

    def cnn_train():
        cnn.zero_grad(set_to_none=True)
        F.cross_entropy(cnn(img), labels).backward()

    out["cnn-train"] = Workload("cnn-train", "ResNet (3 stages x 2 basic blocks, 16-32-64 ch, BatchNorm), 8 x 3 x 32 x 32, "
                                "training step (forward + loss + backward)", cnn, cnn_train, img, False, r(9, 5), r(2, 1))

    mlp = nn.Sequential(*[nn.Linear(8, 8) for _ in range(20)])
    x = torch.randn(4, 8, requires_grad=True)

    def mlp_step():
        mlp(x).sum().backward()

    out["mlp-tiny"] = Workload("mlp-tiny", "20 x Linear(8, 8), batch 4, forward + backward (overhead-dominated)",
                               mlp, mlp_step, x, False, r(9, 5), r(20, 10))

    llama = llama7b_meta()
    ids = torch.randint(0, 32000, (1, 2048), device="meta")

    def llama_fwd():
        with torch.no_grad():
            llama(ids)

    out["llama-meta"] = Workload("llama-meta", f"Llama-2-7B shape on meta (attn_implementation="
                                 f"{llama.config._attn_implementation}, default use_cache), 1 x 2048 tokens, forward under no_grad",
                                 llama, llama_fwd, ids, True, r(5, 2), 1)
    return out


# ----- peers --------------------------------------------------------------------------------------

PEERS = {  # name -> (module to import, pip name, unit convention)
    "ptflops (aten backend)": ("ptflops", "ptflops", "MACs (+ bias adds and some elementwise ops)"),
    "fvcore": ("fvcore.nn", "fvcore", "MACs (called 'flops')"),
    "thop": ("thop", "thop", "MACs"),
    "torchprofile": ("torchprofile", "torchprofile", "MACs"),
    "calflops": ("calflops", "calflops", "MACs (its FLOPs figure is reported too)"),
    "DeepSpeed FlopsProfiler": ("deepspeed.profiling.flops_profiler", "deepspeed", "MACs (get_total_macs)"),
}


def peer_ptflops(model, x):
    from ptflops import get_model_complexity_info

    macs, _ = get_model_complexity_info(model, tuple(x.shape), input_constructor=lambda _: x, as_strings=False,
                                        print_per_layer_stat=False, backend="aten", ost=io.StringIO())
    if macs is None:
        raise RuntimeError("ptflops returned None (estimation failed)")
    return macs


def peer_fvcore(model, x):
    from fvcore.nn import FlopCountAnalysis

    a = FlopCountAnalysis(model, (x,))
    a.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    total = a.total()
    BREAKDOWN["fvcore"] = (dict(a.by_operator()), dict(a.unsupported_ops()))
    return total


def peer_thop(model, x):
    import thop

    macs, _ = thop.profile(model, inputs=(x,), verbose=False)
    return macs


def peer_torchprofile(model, x):
    from torchprofile import profile_macs

    per_node = profile_macs(model, (x,), reduction=None)
    by_op = {}
    for node, macs in per_node.items():
        by_op[node.operator] = by_op.get(node.operator, 0) + macs
    BREAKDOWN["torchprofile"] = ({k: v for k, v in by_op.items() if v}, {})
    return sum(per_node.values())


def peer_calflops(model, x):
    from calflops import calculate_flops

    _, macs, _ = calculate_flops(model, args=[x], print_results=False, print_detailed=False, output_as_string=False)
    return macs


def peer_deepspeed(model, x):
    from deepspeed.profiling.flops_profiler import FlopsProfiler

    prof = FlopsProfiler(model)
    prof.start_profile()
    try:
        model(x)
        macs = prof.get_total_macs()
    finally:
        prof.end_profile()
    return macs


BREAKDOWN = {}  # peer -> ({op: MACs}, {op not counted: calls}) from its last call, where it gives one

PEER_FUNCS = {
    "ptflops (aten backend)": peer_ptflops,
    "fvcore": peer_fvcore,
    "thop": peer_thop,
    "torchprofile": peer_torchprofile,
    "calflops": peer_calflops,
    "DeepSpeed FlopsProfiler": peer_deepspeed,
}


def load_peers():
    """Import each peer; returns ({name: version}, {name: why it is skipped})."""
    ok, skipped = {}, {}
    logging.disable(logging.WARNING)  # DeepSpeed's accelerator banner and info lines
    for name, (module, pip_name, _) in PEERS.items():
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                importlib.import_module(module)
            from importlib.metadata import version

            ok[name] = version(pip_name)
        except Exception as e:  # noqa: BLE001 - a peer that does not import is skipped and reported
            skipped[name] = f"{type(e).__name__}: {e}"
    return ok, skipped


# Global state a peer may patch and not restore (checked around its first call, then put back).
_GLOBALS = [("torch.nn.functional", F), ("torch", torch), ("torch.Tensor", torch.Tensor)]


def snapshot_globals():
    return {label: dict(vars(obj)) for label, obj in _GLOBALS}


def restore_globals(snap):
    """Put back every attribute of F, torch and torch.Tensor that differs from `snap`; returns the
    names of those whose behaviour had changed (a method re-set to the very object it inherits, or
    a dunder such as __warningregistry__, is put back silently)."""
    changed = []
    for label, obj in _GLOBALS:
        orig = snap[label]
        current = vars(obj)
        for k, v in orig.items():
            if current.get(k) is not v:
                if not k.startswith("__"):
                    changed.append(f"{label}.{k}")
                try:
                    setattr(obj, k, v)
                except (AttributeError, TypeError):
                    pass
        for k in [k for k in current if k not in orig]:
            inherited = None
            if isinstance(obj, type):
                inherited = next((vars(b)[k] for b in obj.__mro__[1:] if k in vars(b)), None)
            if not k.startswith("__") and current[k] is not inherited:
                changed.append(f"{label}.{k} (added)")
            try:
                delattr(obj, k)
            except (AttributeError, TypeError):
                pass
    return changed


class ModelGuard:
    """Snapshot of a model's module modes and hooks; puts them back after a peer call."""

    _HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_forward_hooks_always_called")

    def __init__(self, model):
        self.mods = list(model.modules())
        self.training = [m.training for m in self.mods]
        self.hooks = [{d: set(getattr(m, d, {})) for d in self._HOOK_DICTS} for m in self.mods]
        self.buffers = [set(m._buffers) for m in self.mods]
        self.attrs = [set(m.__dict__) for m in self.mods]

    def restore(self):
        """Restore; returns a list of what the call had left behind."""
        left = {"mode": 0, "hooks": 0, "buffers": 0, "attrs": 0}
        for m, t, hooks, bufs, attrs in zip(self.mods, self.training, self.hooks, self.buffers, self.attrs):
            if m.training != t:
                left["mode"] += 1
                m.training = t
            for d, keep in hooks.items():
                dct = getattr(m, d, None)
                if dct is None:
                    continue
                for k in [k for k in dct if k not in keep]:
                    left["hooks"] += 1
                    del dct[k]
            for k in [k for k in m._buffers if k not in bufs]:
                left["buffers"] += 1
                del m._buffers[k]
            for k in [k for k in m.__dict__ if k not in attrs]:
                left["attrs"] += 1
                delattr(m, k)
        return [f"{n} {what}" for what, n in left.items() if n]


# ----- counting references ------------------------------------------------------------------------


def fd_count(model, fn, **kw):
    with fd.count(model, **kw) as c:
        fn()
    return c


def op_count(fn):
    counter = OpCounter()
    with counter:
        fn()
    return counter.n


def human(n):
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.3g} {suffix}"
    return f"{n:.3g}"


def explain(peer_macs, c):
    """A hint for a differing total: which of flopdispatch's MAC-carrying ops the peer looks like it
    missed (its total within 1% of flopdispatch's without them), whether it adds the bias adds to
    its MACs (only when that makes the totals equal exactly), or which multiple of flopdispatch's
    figure it is."""
    ops = c.ops()
    macs = {name: v["macs"] for name, v in ops.items() if v["macs"]}
    bias = sum(v["flops"] - 2 * v["macs"] for name, v in ops.items()
               if name in ("aten::addmm", "aten::convolution", "aten::_convolution"))
    total = c.macs
    best = None
    for size in range(0, 3):
        for subset in itertools.combinations(sorted(macs), size):
            for with_bias in ((False, True) if bias else (False,)):
                base = total - sum(macs[o] for o in subset) + (bias if with_bias else 0)
                for factor in (1, 2, 3):
                    value = base * factor
                    exact = peer_macs == value
                    if not value or not (exact or (not with_bias and abs(peer_macs - value) <= 0.01 * value)):
                        continue
                    label = []
                    if subset:
                        label.append("misses " + " and ".join(subset))
                    if with_bias:
                        label.append(f"adds the {human(bias)} bias adds")
                    if factor != 1:
                        label.append(f"{factor}x")
                    if not label:
                        continue
                    text = "; ".join(label) + ("" if exact else ", other differences < 1%")
                    cand = (size + with_bias + (factor != 1), not exact, text)
                    if best is None or cand < best:
                        best = cand
    return best[2] if best else None


def agreement(peer_macs, c, exact_note=""):
    ref = c.macs
    if peer_macs == ref:
        return "agrees (exact" + exact_note + ")"
    rel = (peer_macs - ref) / ref if ref else float("inf")
    if abs(rel) <= 0.01:
        return f"agrees within 1% ({rel:+.2%}: {human(peer_macs)} vs {human(ref)})"
    hint = explain(peer_macs, c)
    return f"differs: {human(peer_macs)} vs {human(ref)} MACs ({rel:+.1%}" + (f"; {hint}" if hint else "") + ")"


# ----- timing -------------------------------------------------------------------------------------


def timed_plain(fn, inner):
    t = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t) / inner


def timed_in_mode(make, fn, inner):
    with make():
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        return (time.perf_counter() - t) / inner


def timed_per_call(make, fn, inner):
    t = time.perf_counter()
    for _ in range(inner):
        with make() as c:
            fn()
        c.macs  # read the result, as a user would
    return (time.perf_counter() - t) / inner


def timed_peer(peer, w, guard, snap, inner):
    total = 0.0
    for _ in range(inner):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            t = time.perf_counter()
            with torch.no_grad():
                peer(w.model, w.peer_input)
            total += time.perf_counter() - t
        guard.restore()  # not timed: undo what a peer leaves on the model (reported once)
        restore_globals(snap)
    return total / inner


class Row:
    def __init__(self, name, section, timer, train, agree=""):
        self.name, self.section, self.timer, self.train, self.agree = name, section, timer, train, agree
        self.times = []


def run_workload(w, peers, log):
    model, step, fwd = w.model, w.step, w.forward
    training = not w.inference

    def set_mode(train):
        if model.training != train:
            model.train(train)

    # Reference counts and op counts, in the state the timed calls run in (gradients allocated).
    set_mode(training)
    for _ in range(2):
        step()
    c_step = fd_count(model, step)
    c_py = fd_count(model, step, python_formulas=True)
    ops_step = op_count(step)
    fcm = FlopCounterMode(display=False)
    with fcm:
        step()
    fcm_total = fcm.get_total_flops()
    set_mode(False)
    fwd()
    c_fwd = fd_count(model, fwd) if training else c_step
    ops_fwd = op_count(fwd) if training else ops_step

    S = "step" if training else "forward"   # section of the core rows
    Fw = "fwd (eval, no_grad)" if training else S  # section of the peers' rows
    rows = [
        Row("eager", S, lambda: timed_plain(step, w.inner), training),
        Row("no-op mode, no dynamo wrapper", S, lambda: timed_in_mode(RawNoopMode, step, w.inner), training),
        Row("no-op mode", S, lambda: timed_in_mode(NoopMode, step, w.inner), training),
        Row("flopdispatch", S, lambda: timed_in_mode(lambda: fd.count(model), step, w.inner), training,
            f"{human(c_step.macs)} MACs, {human(c_step.flops)} FLOPs: the reference"),
        Row("flopdispatch, new block per call", S,
            lambda: timed_per_call(lambda: fd.count(model), step, w.inner), training, "(same)"),
    ]
    exact = (c_py.macs, c_py.flops, c_py.totals.bytes) == (c_step.macs, c_step.flops, c_step.totals.bytes)
    rows.append(Row("flopdispatch (Python formulas)", S,
                    lambda: timed_in_mode(lambda: fd.count(model, python_formulas=True), step, w.inner), training,
                    "agrees (exact: MACs, FLOPs and bytes)" if exact else
                    f"differs from the C++ table: MACs {c_py.macs} vs {c_step.macs}, FLOPs {c_py.flops} vs "
                    f"{c_step.flops}, bytes {c_py.totals.bytes} vs {c_step.totals.bytes}"))
    rows.append(Row("FlopCounterMode", S,
                    lambda: timed_in_mode(lambda: FlopCounterMode(display=False), step, w.inner), training,
                    f"{human(fcm_total)} FLOPs = 2 x {human(fcm_total / 2)} MACs: " + agreement(fcm_total / 2, c_step)))
    if training:
        rows += [
            Row("eager", Fw, lambda: timed_plain(fwd, w.inner), False),
            Row("no-op mode, no dynamo wrapper", Fw, lambda: timed_in_mode(RawNoopMode, fwd, w.inner), False),
            Row("no-op mode", Fw, lambda: timed_in_mode(NoopMode, fwd, w.inner), False),
            Row("flopdispatch, new block per call", Fw,
                lambda: timed_per_call(lambda: fd.count(model), fwd, w.inner), False,
                f"{human(c_fwd.macs)} MACs, {human(c_fwd.flops)} FLOPs: the forward reference"),
        ]

    # Peers: one untimed call for the total and its side effects, then timed calls.
    side_effects = {}
    notes = [f"flopdispatch MACs by operator ({'inference forward' if training else S}): " +
             ", ".join(f"{k} {human(v['macs'])}" for k, v in c_fwd.ops().items() if v["macs"])]
    snap = snapshot_globals()
    for name, peer in peers.items():
        # Untimed calls: on a training workload one with the model in train mode (does the peer
        # keep the user's mode?), then the one whose total is reported, in eval mode like the
        # timed calls; side effects of both are recorded and undone.
        left, failure, value = [], None, None
        for train in ((True, False) if training else (False,)):
            set_mode(train)
            guard = ModelGuard(model)
            try:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                        warnings.catch_warnings(), torch.no_grad():
                    warnings.simplefilter("ignore")
                    value = float(peer(model, w.peer_input))
            except Exception as e:  # noqa: BLE001 - a peer failing on a workload is a result
                msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
                failure = f"fails: {type(e).__name__}: {msg[:110]}"
            left += [x for x in guard.restore() + [f"patched {p}" for p in restore_globals(snap)] if x not in left]
            set_mode(False)
            if failure:
                break
        if failure:
            rows.append(Row(name, Fw, None, False, failure))
            continue
        if name in BREAKDOWN and abs(value - c_fwd.macs) > 0:
            by_op, missing = BREAKDOWN.pop(name)
            notes.append(f"{name} by operator: " + ", ".join(f"{k} {human(v)}" for k, v in
                                                             sorted(by_op.items(), key=lambda kv: -kv[1])) +
                         ("; not counted: " + ", ".join(f"{k} ({n} calls)" for k, n in missing.items())
                          if missing else ""))
        if left:
            side_effects[name] = left
        rows.append(Row(name, Fw, (lambda p=peer, g=guard: timed_peer(p, w, g, snap, w.inner)), False,
                        f"{human(value)} {PEERS[name][2].split(' ')[0]}: " + agreement(value, c_fwd)))

    # Warm-up (caches, first-call imports), then interleaved repetitions in rotating order. The
    # objects alive now are frozen out of the collector (a full collection of the ~400 K objects
    # that torch, transformers and the peers leave takes ~0.2 s), and the collector is off while a
    # call is timed (as timeit does); it runs between calls.
    timed = [r for r in rows if r.timer]
    gc.collect()
    gc.freeze()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in timed:
            set_mode(r.train)
            r.timer()
        for rep in range(w.reps):
            shift = rep % len(timed)
            for r in timed[shift:] + timed[:shift]:
                set_mode(r.train)
                gc.collect()
                gc.disable()
                try:
                    r.times.append(r.timer())
                finally:
                    gc.enable()
    set_mode(training)

    def find(section, name):
        return next(r for r in rows if r.section == section and r.name == name)

    log(f"\n### {w.name}: {w.title}\n")
    log(f"aten ops per {S}: {ops_step}" + (f" (per inference forward: {ops_fwd})" if training else "") +
        f"; {w.reps} repetitions x {w.inner} call(s); flopdispatch: {human(c_step.macs)} MACs, "
        f"{human(c_step.flops)} FLOPs" + (f" (inference forward: {human(c_fwd.macs)} MACs)" if training else "") +
        (f"; unsupported ops: {c_step.unsupported}" if c_step.unsupported else "") + "\n")
    log("| counter | timed | ms / call | x eager | us / op over no-op mode | us / op over unwrapped no-op "
        "| total, and agreement with flopdispatch MACs |")
    log("|---|---|---|---|---|---|---|")
    result_rows = []
    for r in rows:
        if r.times:
            ops = ops_step if r.section == S else ops_fwd
            eager_t = find(r.section, "eager").times
            noop_t = find(r.section, "no-op mode").times
            raw_t = find(r.section, "no-op mode, no dynamo wrapper").times
            # Paired statistics: each repetition's ratio / difference against the baselines timed in
            # the same repetition, then the median (robust to slow spells of the machine).
            t = statistics.median(r.times)
            ratio = statistics.median(a / b for a, b in zip(r.times, eager_t))
            over = statistics.median(a - b for a, b in zip(r.times, noop_t)) / ops * 1e6
            over_raw = statistics.median(a - b for a, b in zip(r.times, raw_t)) / ops * 1e6
            log(f"| {r.name} | {r.section} | {t * 1e3:.3f} | {ratio:.2f} | {over:+.2f} | {over_raw:+.2f} | {r.agree} |")
            result_rows.append({"counter": r.name, "timed": r.section, "ms": t * 1e3, "x_eager": ratio,
                                "us_per_op_over_noop": over, "us_per_op_over_unwrapped_noop": over_raw,
                                "agreement": r.agree, "times_ms": [x * 1e3 for x in r.times]})
        else:
            log(f"| {r.name} | {r.section} | - | - | - | - | {r.agree} |")
            result_rows.append({"counter": r.name, "timed": r.section, "agreement": r.agree})
    log("")
    for n in notes:
        log(f"- {n}")
    if side_effects:
        log("\nLeft behind by one call of a peer (undone by this script, untimed, after every call): " +
            "; ".join(f"{n}: {', '.join(v)}" for n, v in side_effects.items()))
    return {"workload": w.name, "title": w.title, "ops_per_step": ops_step, "ops_forward": ops_fwd,
            "reps": w.reps, "inner": w.inner, "fd_macs": c_step.macs, "fd_flops": c_step.flops,
            "fd_forward_macs": c_fwd.macs, "rows": result_rows, "side_effects": side_effects, "notes": notes}


# ----- first use ----------------------------------------------------------------------------------

_PRE = ("import time\nt0 = time.perf_counter()\nimport torch\nt1 = time.perf_counter()\n"
        "x = torch.randn(64, 64)\ntorch.mm(x, x)\nt2 = time.perf_counter()\n")
_NOOP = ("from torch.utils._python_dispatch import TorchDispatchMode\n"
         "class M(TorchDispatchMode):\n"
         "{extra}"
         "    def __torch_dispatch__(self, f, t, a=(), k=None):\n"
         "        return f(*a, **(k or {{}}))\n"
         "with M():\n    torch.mm(x, x)\n")
FIRST_USE = {
    "no-op dispatch mode": _NOOP.format(extra=""),
    "no-op dispatch mode, no dynamo wrapper": _NOOP.format(
        extra="    @classmethod\n    def _should_skip_dynamo(cls):\n        return False\n"),
    "flopdispatch (import included)": (
        "import flopdispatch as fd\n"
        "with fd.count() as c:\n    torch.mm(x, x)\n"
        "assert c.macs == 64 ** 3\n"),
    "FlopCounterMode": (
        "from torch.utils.flop_counter import FlopCounterMode\n"
        "with FlopCounterMode(display=False) as f:\n    torch.mm(x, x)\n"
        "assert f.get_total_flops() == 2 * 64 ** 3\n"),
}


def first_use(reps, log):
    """Each snippet in a fresh interpreter: seconds from after `import torch` and a first eager op
    to the end of the first counted op (and, for scale, how long `import torch` took)."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    times = {k: [] for k in FIRST_USE}
    import_torch = []
    for _ in range(reps):
        for name, code in FIRST_USE.items():
            code = _PRE + code + "print(repr(t1 - t0), repr(time.perf_counter() - t2))\n"
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
            if out.returncode:
                raise RuntimeError(f"first-use snippet {name!r} failed:\n{out.stderr}")
            t_import, t_first = map(float, out.stdout.strip().splitlines()[-1].split())
            import_torch.append(t_import)
            times[name].append(t_first)
    log(f"\n### First use (a fresh interpreter for each: seconds after `import torch` and a first eager op "
        f"until the first counted op has run; median of {reps})\n")
    log("| counter | seconds |")
    log("|---|---|")
    res = {}
    for name, ts in times.items():
        res[name] = statistics.median(ts)
        log(f"| {name} | {res[name]:.3f} |")
    res["import torch (for scale)"] = statistics.median(import_torch)
    log(f"| (for scale: `import torch` itself) | {res['import torch (for scale)']:.3f} |")
    return res


# ----- main ---------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (about half the time)")
    parser.add_argument("--only", default="", help="comma-separated workloads: gpt-fwd,gpt-train,cnn-train,"
                        "mlp-tiny,llama-meta,first-use")
    parser.add_argument("--no-peers", action="store_true", help="time only eager, no-op, flopdispatch, FlopCounterMode")
    parser.add_argument("--json", default="", help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    only = set(filter(None, args.only.split(",")))
    t_start = time.perf_counter()

    def log(s=""):
        print(s, flush=True)

    peers_ok, peers_skipped = ({}, {}) if args.no_peers else load_peers()
    peers = {k: PEER_FUNCS[k] for k in peers_ok}
    log(f"torch {torch.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPUs, 1 thread; "
        f"flopdispatch {fd.__version__}")
    log("peers: " + (", ".join(f"{k} {v}" for k, v in peers_ok.items()) or "none") +
        ("; skipped: " + "; ".join(f"{k} ({v})" for k, v in peers_skipped.items()) if peers_skipped else ""))
    log("units: " + "; ".join(f"{k}: {PEERS[k][2]}" for k in peers_ok) + "; FlopCounterMode: FLOPs = 2 x MACs")

    results = {"torch": torch.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
               "peers": peers_ok, "peers_skipped": peers_skipped, "workloads": []}
    workloads = make_workloads(args.quick)
    for name, w in workloads.items():
        if only and name not in only:
            continue
        t_w = time.perf_counter()
        results["workloads"].append(run_workload(w, peers, log))
        log(f"\n({name}: {time.perf_counter() - t_w:.0f} s)")
    if not only or "first-use" in only:
        t_w = time.perf_counter()
        results["first_use"] = first_use(2 if args.quick else 3, log)
        log(f"\n(first use: {time.perf_counter() - t_w:.0f} s)")
    log(f"\n(total run time {time.perf_counter() - t_start:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
