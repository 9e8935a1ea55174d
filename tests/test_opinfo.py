"""PyTorch's OpInfo database under ``fd.count``: every aten op it reaches must be priced.

Each OpInfo that supports float32 on the CPU runs its first SAMPLES sample inputs, forward only and
forward + backward (where the op supports autograd), inside ``fd.count``. The tests fail on

- any op reported unsupported (listed with its call count and the OpInfos that reached it), except
  the ops in PRICED_BY_NEW_FAMILIES_PENDING, which the new FFT / linear-algebra / sampler / distance
  / embedding-bag / weight-norm families price (issue 10, branch ``formulas-new``): the integrator
  empties that set when those families are merged; and two Python custom ops reached only from
  their own OpInfos (CUSTOM_OPS_WITHOUT_FORMULA, with the reason);
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

common_methods_invocations = pytest.importorskip("torch.testing._internal.common_methods_invocations")

SAMPLES = 2  # first samples per OpInfo and mode

# Ops the new families of issue 10 price (FFT, dense linear algebra, _trilinear, cdist/pdist,
# embedding_bag, grid_sampler, weight_norm): owned by the `formulas-new` branch. Empty it on merge.
PRICED_BY_NEW_FAMILIES_PENDING = {
    "aten::_fft_r2c", "aten::_fft_c2c", "aten::_fft_c2r",
    "aten::linalg_qr", "aten::_linalg_svd", "aten::_linalg_check_errors", "aten::linalg_pinv",
    "aten::linalg_lu_factor_ex", "aten::linalg_inv_ex", "aten::_linalg_solve_ex", "aten::_linalg_eigh",
    "aten::linalg_cross", "aten::linalg_lu_solve", "aten::_linalg_slogdet", "aten::linalg_cholesky_ex",
    "aten::linalg_eig", "aten::linalg_ldl_factor_ex", "aten::linalg_lstsq", "aten::cholesky",
    "aten::cholesky_inverse", "aten::cholesky_solve", "aten::geqrf", "aten::lu_unpack",
    "aten::linalg_matrix_exp", "aten::ormqr", "aten::triangular_solve", "aten::_linalg_det",
    "aten::linalg_householder_product", "aten::linalg_ldl_solve", "aten::linalg_lu",
    "aten::linalg_solve_triangular",
    "aten::_trilinear", "aten::_cdist_forward", "aten::_cdist_backward", "aten::_pdist_forward",
    "aten::_pdist_backward", "aten::_embedding_bag", "aten::_embedding_bag_forward_only",
    "aten::_embedding_bag_backward", "aten::_embedding_bag_per_sample_weights_backward",
    "aten::_embedding_bag_dense_backward", "aten::grid_sampler_2d", "aten::grid_sampler_2d_backward",
    "aten::grid_sampler_3d", "aten::grid_sampler_3d_backward",
    "aten::_weight_norm_interface", "aten::_weight_norm_interface_backward",
}

# Python custom ops (torch.library.custom_op) whose kernel runs below the dispatch mode, so their
# aten ops are not seen, and whose cost no existing family expresses: the fused linear + cross-entropy
# computes N x D x C logit MACs plus one such product per gradient its flags precompute, and the
# softmax over the logits. They are exempt only for the OpInfos named here; reached from anywhere
# else they fail like any unsupported op.
CUSTOM_OPS_WITHOUT_FORMULA = {
    "torch_nn::_linear_cross_entropy_batch_chunked": {"nn.functional.linear_cross_entropy.chunked"},
    "torch_nn::_linear_cross_entropy_batch_chunked_no_reduction": {
        "nn.functional.linear_cross_entropy.chunked_none"},
}

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
    without accumulate, a backward with an all-false output mask).
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
    missing = collections.Counter({
        op: n for op, n in unsupported.items()
        if op not in PRICED_BY_NEW_FAMILIES_PENDING and not where[op] <= CUSTOM_OPS_WITHOUT_FORMULA.get(op, set())})
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


def test_pending_set_only_names_ops_without_a_declaration():
    """Once formulas-new declares an op, it must leave the pending set (the set cannot hide a priced op)."""
    from flopdispatch._ops import TABLE

    declared = sorted(op for op in PRICED_BY_NEW_FAMILIES_PENDING if op.partition("::")[2] in TABLE)
    assert declared == []
