"""Higher-order ops (torch.cond, while_loop, scan, map, flex_attention...) inside ``count``.

Every HigherOrderOperator gets a rule for the counting mode. A rule counts what really runs: the
HOP's own eager implementation runs with the mode set aside, and each function it is given (the
taken branch of cond, every iteration of a while_loop body, the scan/map body per element, a
checkpointed or autocast-wrapped graph) runs under the mode, so the body's aten ops are counted
and attributed to the current module and phase. A HOP given aten ops rather than functions
(auto_functionalized, with_effects, out_dtype) runs its eager implementation under the mode.

flex_attention and its backward are priced themselves, as the attention family prices SDPA
(``_ops.py``): the score_mod's own ops are counted as they run; the mask_mod is not (it only
decides which scores exist). With a block mask the dense figure is the main one and
``causal_macs`` holds the block-sparse work (the (query, key) blocks the kernel computes).
"""
from __future__ import annotations

import torch
from torch._C import DispatchKey

from . import _core, _reference, user

# HOPs whose work is nothing a counter prices (a print, a tracing marker).
_NO_WORK = frozenset({"print", "_export_tracepoint"})
# Which functions each HOP runs that should be counted (argument positions); the others: every
# callable argument. flex_attention's mask_mod (inside the block mask tuple) is not wrapped.
_BODIES = {"flex_attention": (3,), "flex_attention_backward": (7, 8)}
_PRICED = frozenset({"flex_attention", "flex_attention_backward"})


def _is_op(x):
    return isinstance(x, (torch._ops.OpOverload, torch._ops.OpOverloadPacket, torch._ops.HigherOrderOperator))


def _is_body(x):
    return callable(x) and not isinstance(x, (torch.Tensor, type)) and not _is_op(x)


def _under(mode, fn):
    """``fn`` run with the counting mode pushed again (it is set aside while a HOP's rule runs)."""

    def body(*args, **kwargs):
        with mode:
            return fn(*args, **kwargs)

    if hasattr(fn, "meta"):  # a GraphModule's annotations, read by some HOPs (checkpoint tags)
        body.meta = fn.meta
    return body


def _run(mode, hop, args, kwargs):
    name = hop._name
    if name in _BODIES:
        args = tuple(_under(mode, a) if i in _BODIES[name] and _is_body(a) else a for i, a in enumerate(args))
        if name in _PRICED:  # through the recorder: priced by its formula like any op, then returned
            return mode.__torch_dispatch__(hop, (), args, kwargs)
        return hop(*args, **kwargs)
    leaves = torch.utils._pytree.tree_leaves((args, kwargs))
    if any(_is_op(x) for x in leaves):  # it runs ops it is given: its eager kernel, under the mode
        kernel = hop.py_kernels.get(DispatchKey.CompositeExplicitAutograd)
        if kernel is not None:
            with mode:
                return kernel(*args, **kwargs)
    if any(_is_body(x) for x in leaves):
        args, kwargs = torch.utils._pytree.tree_map_only(
            object, lambda x: _under(mode, x) if _is_body(x) else x, (args, kwargs))
        return hop(*args, **kwargs)
    if name in _NO_WORK:
        return hop(*args, **kwargs)
    # Nothing of its work is visible to the mode: run it, and report it unsupported.
    return mode.__torch_dispatch__(hop, (), args, kwargs)


def _rule(hop):
    def counting_rule(mode, *args, **kwargs):
        return _run(mode, hop, args, kwargs)

    # torch.cond/scan/... run the HOP from code compiled by torch.compile, whose frame hook would
    # compile this rule too: keep it eager (torch._dynamo is imported on the first call only).
    return torch._compile._disable_dynamo(counting_rule, recursive=True)


def in_hop_compile():
    """Whether torch is compiling a HOP's own eager wrapper (torch.cond, scan, flex_attention...)."""
    utils = getattr(getattr(torch, "_higher_order_ops", None), "utils", None)
    check = getattr(utils, "_in_hop_compile", None)
    return bool(check()) if check is not None else False


def _frame_counter():
    return getattr(getattr(getattr(torch._C, "_dynamo", None), "eval_frame", None),
                   "set_fullgraph_compiled_frame_count", None)


def fullgraph_steps():
    """Install steps (``_core.Lifecycle``): while a count is open, torch.compile(fullgraph=True) runs
    eagerly instead of failing.

    torch.compile skips every frame while a dispatch mode such as the counter's is active;
    flex_attention (and a user's fullgraph=True function) then stop with "found no compiled
    frames". Counting the compiled-frame number from 0, as torch's own cond/scan wrappers do,
    makes them run eagerly, where the mode sees every op. The undo sets back the number the
    setter returned (the count before the block).
    """
    setter = _frame_counter()
    return [(setter, (0,), setter, None, _core.UNDO_RESULT)] if setter is not None else []


_registered = {}  # mode type -> number of HOPs given a rule


def register(mode_type):
    """Give every HigherOrderOperator created so far a rule for ``mode_type`` (idempotent; a walk of
    the HOPs only when new ones were created since the last call)."""
    hops = torch._ops._higher_order_ops
    if _registered.get(mode_type) == len(hops):
        return
    for hop in list(hops.values()):
        if mode_type not in hop.python_key_table:
            hop.py_impl(mode_type)(_rule(hop))
    _registered[mode_type] = len(hops)


# ----- flex_attention ----------------------------------------------------------------------------

def _concrete_tensor(t):
    return (type(t) is torch.Tensor or type(t) is torch.nn.Parameter) and t.device.type != "meta"


def block_sparse_pairs(block_mask, batch, heads, sq, sk):
    """(query, key) pairs in the blocks a flex_attention kernel computes, over every batch and head;
    None when the block mask's contents cannot be read (meta or fake tensors)."""
    q_block, kv_block = int(block_mask[-3]), int(block_mask[-2])
    total = 0
    for num, indices in ((block_mask[2], block_mask[3]), (block_mask[4], block_mask[5])):
        if num is None:
            continue
        if not (_concrete_tensor(num) and _concrete_tensor(indices)):
            return None
        num, indices = num.to("cpu", torch.int64), indices.to("cpu", torch.int64)
        rows = (sq - torch.arange(num.shape[-1]) * q_block).clamp(0, q_block)          # [q blocks]
        cols = (sk - indices * kv_block).clamp(0, kv_block)                            # [..., q blocks, slots]
        used = torch.arange(indices.shape[-1]) < num.unsqueeze(-1)                      # first `num` slots
        area = ((cols * used).sum(-1) * rows).sum().item()
        total += area * (batch // num.shape[0]) * (heads // num.shape[1])
    return total


def _flex_cost(p_backward):
    """The built-in formula of flex_attention (p_backward 0) or flex_attention_backward (1): the
    attention family's dense count, plus the block-sparse figure as skipped MACs."""
    params = {"q": 0, "layout": 0, "causal": -1, "causal_kind": 0, "mask": -1, "backward": p_backward,
              "varlen": -1}
    block_arg = 9 if p_backward else 4

    def cost(args, kwargs, out):
        flops, macs, _ = _reference.FAMILIES["attention"](params, _reference.Call(args, kwargs, out, ()))
        flops, macs = _reference._concrete(flops), _reference._concrete(macs)
        q, k = args[0], args[1]
        batch, heads, sq = (_reference._concrete(d) for d in q.shape[:3])
        sk = _reference._concrete(k.shape[-2])
        scores = batch * heads * sq * sk
        pairs = block_sparse_pairs(args[block_arg], batch, heads, sq, sk) if scores else None
        masked = (scores - pairs) * (macs // scores) if pairs is not None else 0
        read, written = _reference.bytes_moved(args, kwargs, out, -1)
        return flops, macs, masked, _reference._concrete(read), _reference._concrete(written)

    return cost


for _name, _backward in (("flex_attention", 0), ("flex_attention_backward", 1)):
    user.formula(f"higher_order::{_name}", _flex_cost(_backward), _builtin=True)
