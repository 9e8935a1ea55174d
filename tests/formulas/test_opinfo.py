"""PyTorch's OpInfo database under ``fd.count``: every aten op it reaches must be priced.

Each OpInfo that supports float32 on the CPU runs its first SAMPLES sample inputs, forward only and
forward + backward (where the op supports autograd), inside ``fd.count``. The tests fail on

- any op reported unsupported (listed with its call count and the OpInfos that reached it);
- a call that runs without the counter but raises inside it (the counter must not change behaviour);
- a priced op that reports 0 FLOPs on a call that does real floating-point work (see
  ``suspicious_zero``): a formula that silently returns nothing.

Budget: the whole sweep (about 1,200 samples) takes about 25 s on this project's 2-core CPU. No
OpInfo is skipped.
"""
import collections
import functools
import itertools
import warnings

import pytest
import torch

import flopdispatch as fd
from flopdispatch._core import compiled_cost, declaration
from flopdispatch._ops import FAMILY_PARAMS

# A plain import: a missing expecttest (in the [test] extras) must fail the suite, not skip the sweep.
from torch.testing._internal import common_methods_invocations  # noqa: E402

pytestmark = pytest.mark.slow  # the whole sweep (run it with the full suite)

SAMPLES = 2  # first samples per OpInfo and mode

NO_FORMULA = {"zero", "move", "unsupported"}


def _tensors(value):
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _floating(t):
    return t.dtype.is_floating_point or t.dtype.is_complex


def suspicious_zero(func, args, kwargs, out):
    """Why a call priced 0 FLOPs looks wrong, or None when 0 is right.

    0 is right for the explicit zero/move lists, for calls with no floating tensor in or out (integer
    and boolean work is free), for empty tensors, and for a flag that turns the work off (index_put
    without accumulate, a backward with an all-false output mask), and for dense linear algebra on
    1 x 1 matrices (the leading-term counts floor to 0).
    """
    name, family, params, arg_names, _ = declaration(func)
    if family in NO_FORMULA:
        return None
    ins, outs = _tensors((args, kwargs)), _tensors(out)
    if not any(_floating(t) for t in ins + outs):
        return None
    if any(t.numel() == 0 for t in ins + outs):  # sparse tensors: numel is the dense size
        return None
    p = dict(zip(FAMILY_PARAMS[family], params))

    def arg(i):
        if i < 0:
            return None
        if i < len(args):
            return args[i]
        return kwargs.get(arg_names[i]) if i < len(arg_names) else None

    if family == "reduce" and p["only_if"] >= 0 and not arg(p["only_if"]):
        return None
    if family == "linalg" and all(t.dim() < 2 or max(t.shape[-2:]) <= 1 for t in ins):
        return None  # factoring or solving 1 x 1 matrices: the leading-term counts are below 1 FLOP
    if family in ("conv_backward", "norm_backward") and p["output_mask"] >= 0:
        mask = arg(p["output_mask"])
        if mask is not None and not any(mask):
            return None
    try:
        flops, macs, _ = compiled_cost(func, args, kwargs, out)
    except Exception as e:  # noqa: BLE001 - a formula that rejects the call is reported
        return f"formula raised {type(e).__name__}: {e}"
    if flops == 0 and macs == 0:
        return "0 FLOPs on non-empty floating tensors"
    return None


class ZeroWatch(torch.utils._python_dispatch.TorchDispatchMode):
    """Sees every op the counter sees (it sits above fd.count's mode) and checks its price."""

    def __init__(self):
        super().__init__()
        self.found = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        why = suspicious_zero(func, args, kwargs, out)
        if why:
            self.found.append((declaration(func)[0], why))
        return out


def _run(info, sample, backward):
    for t in _tensors((sample.input, sample.args, sample.kwargs)):
        t.grad = None  # each run starts from the same state (accumulating into sgn's ZeroTensor grad fails)
    out = info.op(sample.input, *sample.args, **sample.kwargs)
    if backward:
        outs = [o for o in _tensors(out) if o.requires_grad and o.is_floating_point()]
        if outs:
            torch.autograd.backward([o.sum() for o in outs])


@functools.lru_cache(maxsize=None)
def sweep(backward):
    """(unsupported {op: calls}, where {op: OpInfo names}, broken [(OpInfo, error)], zeros {op: (why, names)})."""
    from torch.testing._internal.common_methods_invocations import op_db

    unsupported, where = collections.Counter(), collections.defaultdict(set)
    broken, zeros = [], {}
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    for info in op_db:
        if torch.float32 not in info.supported_dtypes("cpu"):
            continue
        grad = backward and info.supports_autograd
        if backward and not grad:
            continue  # the forward sweep covers it
        label = info.name + (f".{info.variant_test_name}" if info.variant_test_name else "")
        try:
            samples = list(itertools.islice(info.sample_inputs("cpu", torch.float32, requires_grad=grad), SAMPLES))
        except Exception:  # noqa: BLE001 - OpInfo's own sample generator failed: nothing to count
            continue
        for sample in samples:
            try:
                _run(info, sample, grad)
            except Exception:  # noqa: BLE001 - the sample fails in eager too (known OpInfo xfails)
                continue
            watch = ZeroWatch()
            try:
                with fd.count() as c, watch:
                    _run(info, sample, grad)
            except Exception:  # noqa: BLE001 - the watch itself is a Python mode, which a few
                watch = ZeroWatch()  # kernels treat differently: count alone decides
                try:
                    with fd.count() as c:
                        _run(info, sample, grad)
                except Exception as e:  # noqa: BLE001 - it ran without the counter
                    broken.append((label, f"{type(e).__name__}: {e}"))
                    continue
            for op, n in c.unsupported.items():
                unsupported[op] += n
                where[op].add(label)
            for op, why in watch.found:
                zeros.setdefault(op, (why, set()))[1].add(label)
    return unsupported, where, broken, zeros


def _report(unsupported, where):
    return "\n".join(f"  {op}: {n} calls ({', '.join(sorted(where[op])[:4])})" for op, n in unsupported.most_common())


@pytest.mark.parametrize("backward", [False, True], ids=["forward", "forward_backward"])
def test_opinfo_every_op_priced(backward):
    unsupported, where, _, _ = sweep(backward)
    missing = collections.Counter(unsupported)
    assert not missing, f"unsupported ops under OpInfo ({'forward+backward' if backward else 'forward'}):\n" + _report(
        missing, where)


@pytest.mark.parametrize("backward", [False, True], ids=["forward", "forward_backward"])
def test_opinfo_runs_unchanged_under_count(backward):
    _, _, broken, _ = sweep(backward)
    assert broken == []


@pytest.mark.parametrize("backward", [False, True], ids=["forward", "forward_backward"])
def test_opinfo_no_priced_op_silently_zero(backward):
    _, _, _, zeros = sweep(backward)
    lines = [f"  {op}: {why} ({', '.join(sorted(names)[:4])})" for op, (why, names) in sorted(zeros.items())]
    assert not zeros, "priced ops reporting 0 FLOPs on real floating-point work:\n" + "\n".join(lines)

