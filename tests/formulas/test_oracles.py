"""Oracle tests: the compiled C++ formula families agree with the pure-Python reference.

For every family in ``flopdispatch._ops.FAMILY_PARAMS`` that has a formula, and for every aten op the
table declares under it, random shapes are drawn, meta tensors made, the real op run on meta where it
has a meta kernel (to get ``out``), and ``compiled_cost(...) == python_cost(...)[:3]`` asserted. An op
without a meta kernel (or a drawn variant its meta kernel rejects) gets a hand-built ``out`` of the
right shape: the formulas only read shapes, dtypes and flags.

Where the expected number is easy to state independently (conv MACs, attention MACs and causal
masked MACs, pool windows, conv/norm backward masks), the property tests check it too. The hand-count
tests at the end write the arithmetic beside each expected number.

Ops whose two implementations are known to disagree are listed in KNOWN_DISCREPANCIES; their per-op
property test is marked ``xfail(strict=True)``, so it starts failing (XPASS) once the bug is fixed.
"""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flopdispatch as fd
from flopdispatch import _reference
from flopdispatch._core import compiled_cost, declaration, python_cost
from flopdispatch._ops import FAMILY_PARAMS, TABLE, missing_from_torch

aten = torch.ops.aten

SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), database=None)
FAMILY_EXAMPLES = 40  # per family, ops sampled across the family
OP_EXAMPLES = 4       # per declared op, in the every-op sweep

FORMULA_FAMILIES = sorted(f for f in FAMILY_PARAMS if f not in ("zero", "move", "unsupported", "comm"))
# Table rows naming an op this torch lacks (removed, e.g. cholesky in 2.14, or newer than it): not swept
MISSING_HERE = set(missing_from_torch())
OPS_BY_FAMILY = {f: sorted(n for n, (fam, _, _) in TABLE.items() if fam == f and n not in MISSING_HERE)
                 for f in FORMULA_FAMILIES}
ALL_FORMULA_OPS = sorted(n for f in FORMULA_FAMILIES for n in OPS_BY_FAMILY[f])

# Ops where the C++ family and the Python reference disagree (library bugs; see the reasons).
KNOWN_DISCREPANCIES = {}  # op -> reason; none open (the rms norm bool[2] output_mask was fixed)

KNOWN_RAISES = {}  # how each known discrepancy shows up

FLOATS = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
NON_FLOATS = [torch.int64, torch.int32, torch.uint8, torch.bool]
ANY_DTYPE = FLOATS + NON_FLOATS + [torch.complex64]


# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------

def meta(*shape, dtype=torch.float32):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return torch.empty(shape, device="meta", dtype=dtype)


RUN = object()


def run_or(op, args, kwargs, fallback):
    """The op's real result on meta; `fallback()` (a hand-built result) where meta cannot run it."""
    try:
        return op(*args, **kwargs)
    except Exception:  # noqa: BLE001 - no meta kernel, or a variant the meta kernel rejects
        return fallback()


def check(op, args, kwargs=None, out=RUN, family=None):
    """Assert the C++ and Python costs of one call agree; return (flops, macs, masked_macs)."""
    args, kwargs = tuple(args), dict(kwargs or {})
    if out is RUN:
        out = op(*args, **kwargs)
    if family is not None:
        assert declaration(op)[1] == family, f"{op} is declared {declaration(op)[1]}, expected {family}"
    cpp = tuple(compiled_cost(op, args, kwargs, out))
    py = tuple(python_cost(op, args, kwargs, out)[:3])
    assert cpp == py, f"{op}: C++ {cpp} != Python {py}; args {describe(args)} kwargs {describe(kwargs)}"
    return cpp


def describe(v):
    if isinstance(v, torch.Tensor):
        return f"T{list(v.shape)}:{str(v.dtype).replace('torch.', '')}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(describe(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}={describe(x)}" for k, x in v.items()) + "}"
    return repr(v)


def kwargify(op, args, n_kw):
    """Move the last `n_kw` positional args into kwargs by schema name (exercises keyword lookup)."""
    args = list(args)
    n_kw = min(n_kw, len(args) - 1)
    names = [a.name for a in op._schema.arguments]
    kwargs = {}
    for i in range(len(args) - n_kw, len(args)):
        kwargs[names[i]] = args[i]
    return args[: len(args) - n_kw], kwargs


def overload_of(name):
    """The OpOverload for a table key ("mm" -> aten.mm.default, "x.no_stats" -> that overload)."""
    base, _, ov = name.partition(".")
    return getattr(getattr(aten, base), ov or "default")


def is_out_variant(op):
    return any(a.alias_info is not None and a.alias_info.is_write and a.kwarg_only for a in op._schema.arguments)


def op_overloads(name):
    """Non-out overloads of a table key (an explicit overload key gives just that one)."""
    base, _, ov = name.partition(".")
    packet = getattr(aten, base)
    names = [ov] if ov else list(packet.overloads())
    result = []
    for o in names:
        op = getattr(packet, o)
        if is_out_variant(op) or "names" in o.lower() or "dimname" in o.lower():
            continue
        if declaration(op)[0] != f"aten::{base}" or table_key(op) != name:
            continue  # another table row owns this overload
        result.append(op)
    return result


def table_key(op):
    """Which TABLE key an overload resolves to (mirrors _core.declaration)."""
    base = op._schema.name.partition("::")[2]
    inplace_of = base[:-1] if base.endswith("_") else None
    for key in (f"{base}.{op._overloadname}", base, inplace_of and f"{inplace_of}.{op._overloadname}", inplace_of):
        if key and key in TABLE:
            return key
    return None


def broadcast_variant(draw, shape):
    """A shape that broadcasts against `shape`: leading dims dropped, some dims set to 1."""
    drop = draw(st.integers(0, len(shape)))
    kept = list(shape[drop:])
    return tuple(1 if draw(st.booleans()) else d for d in kept)


def shapes(draw, min_dims=0, max_dims=4, min_side=1, max_side=6):
    return tuple(draw(st.lists(st.integers(min_side, max_side), min_size=min_dims, max_size=max_dims)))


def brute_kept(sq, sk, bottom_right):
    """(query, key) pairs a causal mask keeps, counted from an explicit lower-triangular mask."""
    diagonal = sk - sq if bottom_right else 0
    return int(torch.ones(sq, sk).tril(diagonal).sum())


# ---------------------------------------------------------------------------------------------------
# Generic schema filling (elementwise ops and reductions)
# ---------------------------------------------------------------------------------------------------

class Unfillable(Exception):
    pass


def fill(op, pick, tensor, nd, fill_defaults):
    """Positional args and required kwargs for `op` from its schema.

    tensor(name) makes a tensor argument; pick(options) chooses among values (options[0] when probing).
    Positional args with defaults are filled while `fill_defaults` says so, then left to their defaults.
    """
    args, kwargs = [], {}
    stop = False
    for a in op._schema.arguments:
        if a.kwarg_only:
            if not a.has_default_value():
                kwargs[a.name] = value(a, pick, tensor, nd)
            continue
        if stop:
            if not a.has_default_value():
                raise Unfillable(a.name)
            continue
        if a.has_default_value() and not fill_defaults():
            stop = True
            continue
        try:
            args.append(value(a, pick, tensor, nd))
        except Unfillable:
            if not a.has_default_value():
                raise
            stop = True
    return args, kwargs


def dim_options(nd, allow_none):
    rank = max(nd, 1)
    subsets = [list(c) for r in range(1, rank + 1) for c in itertools.combinations(range(rank), r)]
    subsets += [[-1]]
    return ([None] if allow_none else []) + subsets


def value(a, pick, tensor, nd):
    t, name = str(a.real_type), a.name
    opt = t.startswith("Optional[")
    base = t[9:-1] if opt else t
    if base == "Tensor":
        return None if opt else tensor(name)
    if base == "List[Tensor]":
        return [tensor(name), tensor(name)]
    if base == "number":
        if name == "correction":
            return pick([None, 0, 1])
        if name in ("min", "max") and opt:
            return pick([0.5, None])
        return pick([2, 0.5, 3]) if not opt else pick([2, None])
    if base in ("int", "SymInt"):
        if "dim" in name:
            rank = max(nd, 1)
            return pick(list(range(-rank, rank)) + ([None] if opt else []))
        if name == "reduction":
            return pick([1, 0, 2])
        return None if opt else 1
    if base in ("List[int]", "List[SymInt]"):
        if "dim" in name:
            return pick(dim_options(nd, opt))
        raise Unfillable(name)
    if base == "float":
        return None if opt else pick([0.5, 0.25])
    if base == "bool":
        return pick([False, True] + ([None] if opt else []))
    if base == "ScalarType":
        return None if opt else torch.float32
    raise Unfillable(f"{name}: {t}")


def first(options):
    return options[0]


_PROBED = {}


def usable_overloads(name):
    """Overloads of `name` that the generic filler can build and meta can run (probed once)."""
    if name not in _PROBED:
        found = []
        for op in op_overloads(name):
            for dtype in (torch.float32, torch.int64, torch.bool):
                try:
                    args, kwargs = fill(op, first, lambda n: meta(2, 3, dtype=dtype), 2, lambda: False)
                    op(*args, **kwargs)
                except Exception:  # noqa: BLE001
                    continue
                found.append(op)
                break
        _PROBED[name] = found
    return _PROBED[name]


# ---------------------------------------------------------------------------------------------------
# Builders: one per declared op name; each draws a call and returns (op, args, kwargs, out)
# ---------------------------------------------------------------------------------------------------

BUILDERS = {}


def builder(*names):
    def deco(fn):
        for n in names:
            BUILDERS[n] = (lambda n: lambda draw: fn(n, draw))(n)
        return fn
    return deco


def generic_call(name, draw, dtypes, same_shape=False):
    """Elementwise-style call: the first tensor has a drawn shape, others broadcast against it."""
    ops = usable_overloads(name)
    assert ops, f"no generic overload for {name}: give it a builder"
    op = draw(st.sampled_from(ops))
    shape = shapes(draw, min_dims=0, max_dims=4, min_side=0 if not same_shape else 1)
    dtype = draw(st.sampled_from(dtypes))
    broadcast = not same_shape and draw(st.booleans())
    made = []

    def tensor(arg_name):
        dt = torch.bool if arg_name in ("condition", "mask") else dtype
        if arg_name == "value":
            return meta((), dtype=dt)
        s = broadcast_variant(draw, shape) if (broadcast and made) else shape
        made.append(s)
        return meta(s, dtype=dt)

    args, kwargs = fill(op, lambda o: draw(st.sampled_from(o)), tensor, len(shape), lambda: draw(st.booleans()))

    def synthetic():
        out_shape = torch.broadcast_shapes(*[a.shape for a in args if isinstance(a, torch.Tensor)])
        return meta(out_shape, dtype=dtype)

    return op, args, kwargs, run_or(op, args, kwargs, synthetic)


# ---- matmul ----------------------------------------------------------------------------------------

def dims(draw, n, lo=1, hi=9):
    return [draw(st.integers(lo, hi)) for _ in range(n)]


@builder("mm", "bmm", "mv", "dot", "vdot", "_int_mm")
def build_plain_matmul(name, draw):
    m, k, n, b = dims(draw, 4)
    dtype = draw(st.sampled_from(FLOATS))
    if name == "mm":
        a_, b_ = meta(m, k, dtype=dtype), meta(k, n, dtype=dtype)
    elif name == "bmm":
        a_, b_ = meta(b, m, k, dtype=dtype), meta(b, k, n, dtype=dtype)
    elif name == "mv":
        a_, b_ = meta(m, k, dtype=dtype), meta(k, dtype=dtype)
    elif name in ("dot", "vdot"):
        a_, b_ = meta(k, dtype=dtype), meta(k, dtype=dtype)
    else:  # _int_mm
        a_, b_ = meta(m * 8 + 16, k * 8, dtype=torch.int8), meta(k * 8, n * 8, dtype=torch.int8)
    op = overload_of(name)
    out = run_or(op, (a_, b_), {}, lambda: meta(a_.shape[0], b_.shape[-1], dtype=torch.int32))
    return op, (a_, b_), {}, out


@builder("addmm", "_addmm_activation", "baddbmm", "addbmm", "addmv", "addr")
def build_add_matmul(name, draw):
    m, k, n, b = dims(draw, 4)
    dtype = draw(st.sampled_from(FLOATS))
    if name in ("addmm", "_addmm_activation"):
        x, y, full = meta(m, k, dtype=dtype), meta(k, n, dtype=dtype), (m, n)
    elif name == "baddbmm":
        x, y, full = meta(b, m, k, dtype=dtype), meta(b, k, n, dtype=dtype), (b, m, n)
    elif name == "addbmm":
        x, y, full = meta(b, m, k, dtype=dtype), meta(b, k, n, dtype=dtype), (m, n)
    elif name == "addmv":
        x, y, full = meta(m, k, dtype=dtype), meta(k, dtype=dtype), (m,)
    else:  # addr: outer product of two vectors
        x, y, full = meta(m, dtype=dtype), meta(n, dtype=dtype), (m, n)
    bias = meta(broadcast_variant(draw, full), dtype=dtype)
    kwargs = {}
    if draw(st.booleans()):
        kwargs["beta"] = draw(st.sampled_from([0, 0.5, 1]))
        kwargs["alpha"] = draw(st.sampled_from([1, 2.0]))
    if name == "_addmm_activation" and draw(st.booleans()):
        kwargs["use_gelu"] = draw(st.booleans())
    op = overload_of(name)
    return op, (bias, x, y), kwargs, op(bias, x, y, **kwargs)


@builder("linear")
def build_linear(name, draw):
    lead = shapes(draw, 0, 3, 1, 4)
    k, n = dims(draw, 2)
    dtype = draw(st.sampled_from(FLOATS))
    x, w = meta(*lead, k, dtype=dtype), meta(n, k, dtype=dtype)
    bias = meta(n, dtype=dtype) if draw(st.booleans()) else None
    op = aten.linear.default
    if draw(st.booleans()):  # bias by keyword
        return op, (x, w), {"bias": bias}, op(x, w, bias=bias)
    return op, (x, w, bias), {}, op(x, w, bias)


@builder("_weight_int8pack_mm")
def build_int8pack(name, draw):
    m, k, n = dims(draw, 3)
    x, w, s = meta(m, k, dtype=torch.bfloat16), meta(n, k, dtype=torch.int8), meta(n, dtype=torch.bfloat16)
    op = aten._weight_int8pack_mm.default
    return op, (x, w, s), {}, run_or(op, (x, w, s), {}, lambda: meta(m, n, dtype=torch.bfloat16))


@builder("_scaled_mm", "_scaled_mm_v2")
def build_scaled_mm(name, draw):
    m, k, n = (16 * d for d in dims(draw, 3, 1, 3))
    f8 = torch.float8_e4m3fn
    x, w = meta(m, k, dtype=f8), meta(n, k, dtype=f8).t()
    bias = meta(n, dtype=torch.bfloat16) if draw(st.booleans()) else None
    scale = meta((), dtype=torch.float32)
    if name == "_scaled_mm_v2":  # scales, recipes and swizzles as lists, bias at 8
        args = (x, w, [scale], [0], [0], [scale], [0], [0], bias)
    else:
        args = (x, w, scale, scale, bias)
    kwargs = {"out_dtype": torch.bfloat16}
    op = overload_of(name)
    return op, args, kwargs, run_or(op, args, kwargs, lambda: meta(m, n, dtype=torch.bfloat16))


GROUPED_FORMS = ["2d x 3d", "3d x 3d", "2d x 2d", "3d x 2d"]


def grouped_mm_call(name, draw):
    """MoE grouped mm in its four forms; returns the call and the expected MACs."""
    g, m, k, n = (16 * d for d in dims(draw, 4, 1, 3))
    g //= 16
    form = draw(st.sampled_from(GROUPED_FORMS))
    scaled = name in ("_scaled_grouped_mm", "_scaled_grouped_mm_v2")
    dt = torch.float8_e4m3fn if scaled else torch.bfloat16
    offs = meta(g, dtype=torch.int32)
    if form == "2d x 3d":  # tokens [G*M, K] routed to experts [G, K, N]
        a_, b_, macs = meta(g * m, k, dtype=dt), meta(g, n, k, dtype=dt).transpose(-2, -1), g * m * k * n
        out_shape = (g * m, n)
    elif form == "3d x 3d":  # batched experts
        a_, b_, macs, offs = meta(g, m, k, dtype=dt), meta(g, n, k, dtype=dt).transpose(-2, -1), g * m * k * n, None
        out_shape = (g, m, n)
    elif form == "2d x 2d":  # K split into G groups -> [G, M, N]
        a_, b_, macs = meta(m, g * k, dtype=dt), meta(n, g * k, dtype=dt).t(), m * g * k * n
        out_shape = (g, m, n)
    else:  # 3d x 2d: b's N split into G groups -> [M, G*N]
        a_, b_, macs = meta(g, m, k, dtype=dt), meta(g * n, k, dtype=dt).t(), m * k * g * n
        out_shape = (m, g * n)
    bias = meta(n, dtype=torch.bfloat16) if draw(st.booleans()) else None
    if name == "_scaled_grouped_mm_v2":  # scales, recipes and swizzles as lists; offs at 8, bias at 9
        op = aten._scaled_grouped_mm_v2.default
        args = (a_, b_, [meta(a_.shape[:-1])], [0], [0], [meta(b_.shape[:-2] + b_.shape[-1:])], [0], [0], offs, bias,
                torch.bfloat16)
    elif scaled:
        op = aten._scaled_grouped_mm.default
        args = (a_, b_, meta(a_.shape[:-1], dtype=torch.float32), meta(b_.shape[:-2] + b_.shape[-1:]),
                offs, bias, None, torch.bfloat16)
    else:
        op = aten._grouped_mm.default
        args = (a_, b_, offs, bias)
    out = run_or(op, args, {}, lambda: meta(out_shape, dtype=torch.bfloat16))
    return op, args, {}, out, macs


@builder("_grouped_mm", "_scaled_grouped_mm", "_scaled_grouped_mm_v2")
def build_grouped_mm(name, draw):
    return grouped_mm_call(name, draw)[:4]


# ---- convolution -----------------------------------------------------------------------------------

def draw_conv(draw):
    """A valid convolution configuration (any rank 1-3, grouped/strided/dilated/padded/transposed)."""
    r = draw(st.integers(1, 3))
    cfg = dict(
        r=r, n=draw(st.integers(1, 2)), groups=draw(st.integers(1, 3)),
        cin_g=draw(st.integers(1, 3)), cout_g=draw(st.integers(1, 3)),
        k=[draw(st.integers(1, 3)) for _ in range(r)], stride=[draw(st.integers(1, 3)) for _ in range(r)],
        dilation=[draw(st.integers(1, 2)) for _ in range(r)], transposed=draw(st.booleans()),
        bias=draw(st.booleans()), dtype=draw(st.sampled_from([torch.float32, torch.float16, torch.bfloat16])),
    )
    cfg["padding"] = [draw(st.integers(0, (kk - 1) * d)) for kk, d in zip(cfg["k"], cfg["dilation"])]
    cfg["output_padding"] = ([draw(st.integers(0, max(s, d) - 1)) for s, d in zip(cfg["stride"], cfg["dilation"])]
                             if cfg["transposed"] else [0] * r)
    # Input large enough for a non-empty output.
    cfg["size"] = [(kk - 1) * d + 1 + draw(st.integers(0, 4)) for kk, d in zip(cfg["k"], cfg["dilation"])]
    return cfg


def conv_tensors(cfg):
    cin, cout, g = cfg["cin_g"] * cfg["groups"], cfg["cout_g"] * cfg["groups"], cfg["groups"]
    dt = cfg["dtype"]
    x = meta(cfg["n"], cin, *cfg["size"], dtype=dt)
    if cfg["transposed"]:
        w = meta(cin, cout // g, *cfg["k"], dtype=dt)
    else:
        w = meta(cout, cin // g, *cfg["k"], dtype=dt)
    b = meta(cout, dtype=dt) if cfg["bias"] else None
    return x, w, b


def conv_expected_macs(cfg, x, out):
    kprod = math.prod(cfg["k"])
    if cfg["transposed"]:  # every input element meets C_out/g * k output contributions
        return x.numel() * cfg["cout_g"] * kprod
    return out.numel() * cfg["cin_g"] * kprod  # N * C_out * S_out * C_in/g * k


def reference_conv(cfg, x, w, b):
    return aten.convolution.default(x, w, b, cfg["stride"], cfg["padding"], cfg["dilation"], cfg["transposed"],
                                    cfg["output_padding"], cfg["groups"])


@builder("convolution", "_convolution", "mkldnn_convolution", "cudnn_convolution", "convolution_overrideable")
def build_conv(name, draw):
    return conv_call(name, draw)[:4]


def conv_call(name, draw):
    cfg = draw_conv(draw)
    if name in ("mkldnn_convolution", "cudnn_convolution"):
        cfg["transposed"] = False
        cfg["output_padding"] = [0] * cfg["r"]
    x, w, b = conv_tensors(cfg)
    out = reference_conv(cfg, x, w, b)
    s, p, d, t = cfg["stride"], cfg["padding"], cfg["dilation"], cfg["transposed"]
    op_, g = cfg["output_padding"], cfg["groups"]
    if name in ("convolution", "convolution_overrideable"):  # overrideable: no CPU kernel (the reference's result)
        op, args = overload_of(name), (x, w, b, s, p, d, t, op_, g)
    elif name == "_convolution":
        if draw(st.booleans()):
            op, args = aten._convolution.default, (x, w, b, s, p, d, t, op_, g, False, False, False, False)
        else:
            op, args = aten._convolution.deprecated, (x, w, b, s, p, d, t, op_, g, False, False, False)
    elif name == "mkldnn_convolution":
        op, args = aten.mkldnn_convolution.default, (x, w, b, p, s, d, g)
    else:
        op, args = aten.cudnn_convolution.default, (x, w, p, s, d, g, False, False, False)
        cfg["bias"] = False
    args, kwargs = kwargify(op, args, draw(st.integers(0, 3)))
    return op, args, kwargs, run_or(op, args, kwargs, lambda: out), cfg


# ---- attention -------------------------------------------------------------------------------------

def draw_attention(draw):
    h = draw(st.sampled_from([1, 2, 4, 6]))
    group = draw(st.sampled_from([d for d in (1, 2, 3, 6) if h % d == 0]))  # GQA: h // group kv heads
    return dict(b=draw(st.integers(1, 3)), h=h, hk=h // group, sq=draw(st.integers(1, 9)),
                sk=draw(st.integers(1, 9)), d=draw(st.integers(1, 16)), dv=draw(st.integers(1, 16)),
                dtype=draw(st.sampled_from([torch.float16, torch.bfloat16, torch.float32])))


def qkv(cfg, layout, extra_batch=()):
    b, h, hk, sq, sk, d, dv, dt = (cfg[x] for x in ("b", "h", "hk", "sq", "sk", "d", "dv", "dtype"))
    if layout == 0:
        lead = (*extra_batch, b)
        return (meta(*lead, h, sq, d, dtype=dt), meta(*lead, hk, sk, d, dtype=dt), meta(*lead, hk, sk, dv, dtype=dt),
                meta(*lead, h, sq, dv, dtype=dt))
    return (meta(b, sq, h, d, dtype=dt), meta(b, sk, hk, d, dtype=dt), meta(b, sk, hk, dv, dtype=dt),
            meta(b, sq, h, dv, dtype=dt))


def draw_mask(draw, cfg):
    shape = draw(st.sampled_from([(cfg["sq"], cfg["sk"]), (cfg["b"], 1, cfg["sq"], cfg["sk"]),
                                  (cfg["b"], cfg["h"], cfg["sq"], cfg["sk"])]))
    return meta(shape, dtype=draw(st.sampled_from([cfg["dtype"], torch.bool])))


def attention_call(name, draw):
    """(op, args, kwargs, out, cfg) for a declared attention kernel; cfg has causal/bottom_right/batch."""
    cfg = draw_attention(draw)
    causal = draw(st.booleans())
    cfg.update(causal=causal, bottom_right=False, batch=cfg["b"])
    b, h, sq, sk = cfg["b"], cfg["h"], cfg["sq"], cfg["sk"]
    s0 = lambda: meta((), dtype=torch.int64)  # noqa: E731 - rng seeds/offsets
    extra = tuple(shapes(draw, 0, 1, 1, 3)) if name.startswith("_scaled_dot") else ()
    cfg["batch"] = b * math.prod(extra)
    layout = 1 if name in ("_flash_attention_forward", "_efficient_attention_forward", "_flash_attention_backward",
                           "_efficient_attention_backward", "_flash_attention_forward_no_dropout_inplace") else 0
    q, k, v, o = qkv(cfg, layout, extra)
    lse = meta(*extra, b, h, sq)
    mask = draw_mask(draw, cfg) if draw(st.booleans()) else None
    kwargs = {}
    if name == "_scaled_dot_product_flash_attention_for_cpu":
        args = [q, k, v, 0.0, causal]
        if mask is not None:
            kwargs["attn_mask"] = mask
        n_out = 2
    elif name == "_scaled_dot_product_flash_attention":
        args, n_out = [q, k, v, 0.0, causal, False], 9
    elif name == "_scaled_dot_product_flash_attention.quantized":  # descales absent
        args, n_out = [q, k, v, None, None, None, 0.0, causal, False], 9
    elif name == "_scaled_dot_product_efficient_attention":
        args, n_out = [q, k, v, mask, True, 0.0, causal], 4
    elif name == "_scaled_dot_product_cudnn_attention":
        args, n_out = [q, k, v, mask, True, 0.0, causal, False], 9
    elif name == "_scaled_dot_product_fused_attention_overrideable":
        args, n_out = [q, k, v, mask, 0.0, causal, False], 9
    elif name == "_flash_attention_forward":
        args, n_out = [q, k, v, None, None, sq, sk, 0.0, causal, False], 5
    elif name == "_flash_attention_forward_no_dropout_inplace":  # writes o, returns the logsumexp
        args, n_out = [o, q, k, v, None, None, sq, sk, 0.0, causal, False], 2
    elif name == "_scaled_dot_product_attention_math_for_mps":
        args, n_out = [q, k, v, mask, 0.0, causal], 2
    elif name == "_efficient_attention_forward":
        mask_type = draw(st.sampled_from([0, 1, 2]))  # 0 none, 1 top-left causal, 2 bottom-right causal
        cfg.update(causal=mask_type != 0, bottom_right=mask_type == 2)
        bias = meta(b, h, sq, sk, dtype=cfg["dtype"]) if mask is not None else None
        args, n_out = [q, k, v, bias, None, None, sq, sk, 0.0, mask_type, True], 6
    elif name == "_scaled_dot_product_flash_attention_for_cpu_backward":
        args = [o, q, k, v, o, lse, 0.0, causal]
        if mask is not None:
            kwargs["attn_mask"] = mask
        n_out = 3
    elif name == "_scaled_dot_product_flash_attention_backward":
        args, n_out = [o, q, k, v, o, lse, None, None, sq, sk, 0.0, causal, s0(), s0()], 3
    elif name == "_scaled_dot_product_efficient_attention_backward":
        bias = meta(b, h, sq, sk, dtype=cfg["dtype"])
        args, n_out = [o, q, k, v, bias, o, lse, s0(), s0(), 0.0, [True, True, True, mask is not None], causal], 4
    elif name == "_scaled_dot_product_cudnn_attention_backward":
        bias = meta(b, h, sq, sk, dtype=cfg["dtype"])
        args, n_out = [o, q, k, v, o, lse, s0(), s0(), bias, meta(0), meta(0), sq, sk, 0.0, causal], 3
    elif name == "_scaled_dot_product_fused_attention_overrideable_backward":
        bias = meta(b, h, sq, sk, dtype=cfg["dtype"])
        args, n_out = [o, q, k, v, bias, [True, True, True, False], o, lse, meta(0), meta(0), sq, sk, 0.0, causal,
                       s0(), s0()], 4
    elif name == "_flash_attention_backward":
        args, n_out = [o, q, k, v, o, lse, meta(0), meta(0), sq, sk, 0.0, causal, meta(2, dtype=torch.int64),
                       meta(0)], 3
    elif name == "_efficient_attention_backward":
        mask_type = draw(st.sampled_from([0, 1, 2]))
        cfg.update(causal=mask_type != 0, bottom_right=mask_type == 2)
        args, n_out = [o, q, k, v, None, o, None, None, sq, sk, lse, 0.0, s0(), s0(), mask_type, False], 4
    elif name == "_cudnn_attention_forward":
        args, n_out = [q, k, v, mask, None, None, sq, sk, True, 0.0, causal], 9
    elif name == "_cudnn_attention_backward":
        bias = meta(b, h, sq, sk, dtype=cfg["dtype"])
        args, n_out = [o, q, k, v, o, lse, s0(), s0(), bias, meta(0), meta(0), sq, sk, 0.0, causal], 3
    else:  # pragma: no cover
        raise AssertionError(name)
    op = overload_of(name)
    args, more = kwargify(op, args, draw(st.integers(0, 2)))
    kwargs.update(more)
    backward = "backward" in name

    def synthetic():
        if backward:
            return (torch.empty_like(q), torch.empty_like(k), torch.empty_like(v), None)[:n_out]
        return (o, lse) + (None,) * (n_out - 2)

    cfg["backward"] = backward
    return op, args, kwargs, run_or(op, args, kwargs, synthetic), cfg


@builder(*OPS_BY_FAMILY["attention"])
def build_attention(name, draw):
    return attention_call(name, draw)[:4]


# ---- elementwise -----------------------------------------------------------------------------------

@builder(*(["prelu", "clamp", "hardtanh"] + sorted(set(OPS_BY_FAMILY["elementwise"]) & {
    "upsample_linear1d", "upsample_bilinear2d", "_upsample_bilinear2d_aa", "upsample_trilinear3d", "upsample_bicubic2d",
    "_upsample_bicubic2d_aa"})))
def build_elementwise(name, draw):
    if name in UPSAMPLE_RANK:
        return build_upsample(name, draw)
    if name == "prelu":
        shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)), *shapes(draw, 0, 2))
        dtype = draw(st.sampled_from(FLOATS))
        w = meta(draw(st.sampled_from([1, shape[1]])), dtype=dtype)
        x = meta(shape, dtype=dtype)
        return aten.prelu.default, (x, w), {}, run_or(aten.prelu.default, (x, w), {}, lambda: meta(shape, dtype=dtype))
    if name in ("clamp", "hardtanh"):
        x = meta(shapes(draw), dtype=draw(st.sampled_from(ANY_DTYPE[:-1])))
        lo, hi = draw(st.sampled_from([(0.0, None), (None, 1.0), (0.0, 1.0)]))
        op = aten.clamp.default if name == "clamp" else aten.hardtanh.default
        args = (x, lo, hi) if name == "clamp" else (x, lo or 0.0, hi or 1.0)
        return op, args, {}, run_or(op, args, {}, lambda: torch.empty_like(x))
    raise AssertionError(name)


UPSAMPLE_RANK = {"upsample_linear1d": 1, "upsample_bilinear2d": 2, "_upsample_bilinear2d_aa": 2,
                 "upsample_trilinear3d": 3, "upsample_bicubic2d": 2, "_upsample_bicubic2d_aa": 2}


def build_upsample(name, draw):
    r = UPSAMPLE_RANK[name]
    n, c = dims(draw, 2, 1, 3)
    size_in, size_out = dims(draw, r, 1, 6), dims(draw, r, 1, 9)
    dtype = draw(st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.uint8]))
    x = meta(n, c, *size_in, dtype=dtype)
    op = overload_of(name)
    args = (x, size_out, draw(st.booleans()))
    return op, args, {}, run_or(op, args, {}, lambda: meta(n, c, *size_out, dtype=dtype))


# ---- reductions, losses, pooling reductions --------------------------------------------------------

@builder("mse_loss_backward", "huber_loss_backward", "smooth_l1_loss_backward", "soft_margin_loss_backward",
         "binary_cross_entropy_backward")
def build_loss_backward(name, draw):
    shape = shapes(draw, 1, 3)
    dtype = draw(st.sampled_from(FLOATS))
    reduction = draw(st.sampled_from([0, 1, 2]))
    grad = meta(shape if reduction == 0 else (), dtype=dtype)
    x, t = meta(shape, dtype=dtype), meta(shape, dtype=dtype)
    op = overload_of(name)
    if name in ("huber_loss_backward", "smooth_l1_loss_backward"):
        args = (grad, x, t, reduction, 1.0)
    elif name == "binary_cross_entropy_backward":
        args = (grad, x, t, None, reduction)
    else:
        args = (grad, x, t, reduction)
    return op, args, {}, run_or(op, args, {}, lambda: torch.empty_like(x))


@builder("nll_loss_forward", "nll_loss2d_forward", "nll_loss_backward", "nll_loss2d_backward")
def build_nll(name, draw):
    n, c = dims(draw, 2, 1, 6)
    spatial = tuple(dims(draw, 2, 1, 4)) if "2d" in name else ()
    dtype = draw(st.sampled_from(FLOATS))
    x = meta(n, c, *spatial, dtype=dtype)
    target = meta(n, *spatial, dtype=torch.int64)
    weight = meta(c, dtype=dtype) if draw(st.booleans()) else None
    reduction = draw(st.sampled_from([0, 1, 2]))
    if "forward" in name:
        op = overload_of(name)
        args = (x, target, weight, reduction, -100)
        return op, args, {}, run_or(op, args, {}, lambda: (meta(()), meta(())))
    grad = meta((n, *spatial) if reduction == 0 else (), dtype=dtype)
    op = overload_of(name)
    args = (grad, x, target, weight, reduction, -100, meta((), dtype=dtype))
    return op, args, {}, run_or(op, args, {}, lambda: torch.empty_like(x))


UPSAMPLE_BWD_RANK = {"upsample_linear1d_backward": 1, "upsample_bilinear2d_backward": 2,
                     "_upsample_bilinear2d_aa_backward": 2, "upsample_trilinear3d_backward": 3,
                     "upsample_bicubic2d_backward": 2, "_upsample_bicubic2d_aa_backward": 2,
                     "upsample_nearest1d_backward": 1, "upsample_nearest2d_backward": 2,
                     "upsample_nearest3d_backward": 3, "_upsample_nearest_exact1d_backward": 1,
                     "_upsample_nearest_exact2d_backward": 2, "_upsample_nearest_exact3d_backward": 3}


@builder(*UPSAMPLE_BWD_RANK)
def build_upsample_backward(name, draw):
    r = UPSAMPLE_BWD_RANK[name]
    n, c = dims(draw, 2, 1, 3)
    size_in, size_out = dims(draw, r, 1, 6), dims(draw, r, 1, 9)
    dtype = draw(st.sampled_from(FLOATS))
    grad = meta(n, c, *size_out, dtype=dtype)
    op = overload_of(name)
    args = (grad, size_out, [n, c, *size_in]) + (() if "nearest" in name else (draw(st.booleans()),))
    return op, args, {}, run_or(op, args, {}, lambda: meta(n, c, *size_in, dtype=dtype))


@builder("embedding_dense_backward")
def build_embedding_backward(name, draw):
    lead = shapes(draw, 1, 2, 1, 5)
    d, num = dims(draw, 2, 1, 8)
    dtype = draw(st.sampled_from(FLOATS))
    args = (meta(*lead, d, dtype=dtype), meta(lead, dtype=torch.int64), num, -1, draw(st.booleans()))
    op = aten.embedding_dense_backward.default
    return op, args, {}, run_or(op, args, {}, lambda: meta(num, d, dtype=dtype))


@builder("index_add", "scatter_add", "scatter_reduce")
def build_scatter(name, draw):
    rows, cols, k = dims(draw, 3, 1, 6)
    dtype = draw(st.sampled_from(ANY_DTYPE[:-1]))
    x = meta(rows, cols, dtype=dtype)
    src = meta(k, cols, dtype=dtype)
    if name == "index_add":
        op, args = aten.index_add.default, (x, 0, meta(k, dtype=torch.int64), src)
    elif name == "scatter_add":
        op, args = aten.scatter_add.default, (x, 0, meta(k, cols, dtype=torch.int64), src)
    else:
        op = aten.scatter_reduce.two
        args = (x, 0, meta(k, cols, dtype=torch.int64), src, draw(st.sampled_from(["sum", "prod", "amax", "mean"])))
    return op, args, {}, run_or(op, args, {}, lambda: torch.empty_like(x))


@builder("col2im")
def build_col2im(name, draw):
    n, c = dims(draw, 2, 1, 3)
    kh, kw = dims(draw, 2, 1, 3)
    oh, ow = kh + draw(st.integers(0, 4)), kw + draw(st.integers(0, 4))
    blocks = (oh - kh + 1) * (ow - kw + 1)
    x = meta(n, c * kh * kw, blocks, dtype=draw(st.sampled_from(FLOATS)))
    args = (x, [oh, ow], [kh, kw], [1, 1], [0, 0], [1, 1])
    op = aten.col2im.default
    return op, args, {}, run_or(op, args, {}, lambda: meta(n, c, oh, ow))


@builder("_adaptive_avg_pool2d", "_adaptive_avg_pool3d", "adaptive_max_pool2d", "adaptive_max_pool3d",
         "_adaptive_avg_pool2d_backward", "_adaptive_avg_pool3d_backward", "adaptive_max_pool2d_backward",
         "adaptive_max_pool3d_backward")
def build_adaptive(name, draw):
    r = 3 if "3d" in name else 2
    lead = tuple(dims(draw, draw(st.integers(1, 2)), 1, 3))  # [C, *S] or [N, C, *S]
    size_in, size_out = dims(draw, r, 1, 7), dims(draw, r, 1, 4)
    dtype = draw(st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64]))
    x = meta(*lead, *size_in, dtype=dtype)
    fwd_name = name.replace("_backward", "")
    fwd = overload_of(fwd_name)
    fwd_out = fwd(x, size_out)
    if "backward" not in name:
        return fwd, (x, size_out), {}, fwd_out
    op = overload_of(name)
    if "max" in name:
        args = (fwd_out[0], x, fwd_out[1])
    else:
        args = (fwd_out, x)
    return op, args, {}, run_or(op, args, {}, lambda: torch.empty_like(x))


@builder("max_pool2d_with_indices_backward", "max_pool3d_with_indices_backward")
def build_max_pool_backward(name, draw):
    r = 3 if "3d" in name else 2
    x, kernel, stride, padding, dilation, ceil = draw_pool_input(draw, r, FLOATS)
    fwd = overload_of(name.replace("_backward", ""))
    out, idx = fwd(x, kernel, stride, padding, dilation, ceil)
    op = overload_of(name)
    args = (out, x, kernel, stride, padding, dilation, ceil, idx)
    return op, args, {}, run_or(op, args, {}, lambda: torch.empty_like(x))


# ---- pooling ---------------------------------------------------------------------------------------

def draw_pool_input(draw, r, dtypes):
    """Input [N, C, *S] (or [C, *S]) and pool args; kernel as an int, a 1-list or a full-length list."""
    k = dims(draw, r, 1, 3)
    form = draw(st.sampled_from(["list1", "int", "full"]))
    if form != "full":
        k = [k[0]] * r
    d = [draw(st.integers(1, 2)) for _ in range(r)] if draw(st.booleans()) else [1] * r
    s = [draw(st.integers(1, 3)) for _ in range(r)] if draw(st.booleans()) else []
    p = [draw(st.integers(0, kk // 2)) for kk in k] if draw(st.booleans()) else [0] * r
    if form == "int":
        kernel = k[0]
    elif form == "list1":
        kernel = [k[0]]
    else:
        kernel = k
    if form != "full":  # uniform padding/dilation/stride with a uniform kernel
        p, d = [p[0]] * r, [d[0]] * r
        s = [s[0]] * r if s else []
    lead = tuple(dims(draw, draw(st.integers(1, 2)), 1, 3))
    size = [(kk - 1) * dd + 1 + draw(st.integers(0, 5)) for kk, dd in zip(k, d)]
    x = meta(*lead, *size, dtype=draw(st.sampled_from(dtypes)))
    return x, kernel, s, p, d, draw(st.booleans())


POOL_RANK = {"max_pool1d": 1, "max_pool1d_with_indices": 1, "max_pool2d": 2, "max_pool2d_with_indices": 2,
             "avg_pool2d": 2, "max_pool3d": 3, "max_pool3d_with_indices": 3, "avg_pool3d": 3,
             "avg_pool2d_backward": 2, "avg_pool3d_backward": 3}


@builder(*POOL_RANK)
def build_pool(name, draw):
    return pool_call(name, draw)[:4]


def pool_call(name, draw):
    r = POOL_RANK[name]
    x, kernel, s, p, d, ceil = draw_pool_input(draw, r, [torch.float32, torch.float16, torch.bfloat16, torch.float64,
                                                         torch.int64])
    window = kernel ** r if isinstance(kernel, int) else (kernel[0] ** r if len(kernel) == 1 else math.prod(kernel))
    if name.startswith("max_pool"):
        op = overload_of(name)
        args = (x, kernel, s, p, d, ceil)
        return op, args, {}, run_or(op, args, {}, lambda: op(x.float(), *args[1:])), window
    avg = aten.avg_pool2d.default if r == 2 else aten.avg_pool3d.default
    count_include_pad = draw(st.booleans())
    fwd_args = (x, kernel, s, p, ceil, count_include_pad, None)
    fwd_out = avg(*fwd_args)
    if not name.endswith("backward"):
        return avg, fwd_args, {}, fwd_out, window
    op = overload_of(name)
    args = (fwd_out, x, kernel, s, p, ceil, count_include_pad, None)
    return op, args, {}, run_or(op, args, {}, lambda: torch.empty_like(x)), window


# ---- normalization ---------------------------------------------------------------------------------

def norm_call(name, draw):
    lead = (draw(st.integers(1, 3)), draw(st.integers(1, 4)))
    x_shape = lead + shapes(draw, 0, 2, 1, 4)
    dtype = draw(st.sampled_from(FLOATS + [torch.int64]))
    floating = dtype.is_floating_point
    wdt = dtype if floating else torch.float32
    x = meta(x_shape, dtype=dtype)
    c = x_shape[1]
    has_w, has_b = draw(st.booleans()), draw(st.booleans())
    kwargs = {}
    if name in ("native_layer_norm", "_fused_rms_norm"):
        r = draw(st.integers(1, len(x_shape)))
        ns = list(x_shape[-r:])
        w = meta(ns, dtype=wdt) if has_w else None
        if name == "native_layer_norm":
            op, args = aten.native_layer_norm.default, (x, ns, w, meta(ns, dtype=wdt) if has_b else None, 1e-5)
        else:
            op, args = aten._fused_rms_norm.default, (x, ns, w, 1e-5)
    elif name == "native_group_norm":
        groups = draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
        hxw = math.prod(x_shape[2:])
        op = aten.native_group_norm.default
        args = (x, meta(c, dtype=wdt) if has_w else None, meta(c, dtype=wdt) if has_b else None, x_shape[0], c, hxw,
                groups, 1e-5)
    else:  # batch norms
        training = draw(st.booleans())
        w = meta(c, dtype=wdt) if (has_w or name in ("cudnn_batch_norm", "miopen_batch_norm")) else None
        b = meta(c, dtype=wdt) if has_b else None
        rm, rv = meta(c, dtype=wdt), meta(c, dtype=wdt)
        if name.startswith("_native_batch_norm_legit.no_stats"):
            op, args = overload_of(name), (x, w, b, training, 0.1, 1e-5)
            if name.endswith("_out"):  # the out= overload has its own table row
                kwargs = dict(out=torch.empty_like(x), save_mean=meta(c), save_invstd=meta(c))
        elif name.startswith("_batch_norm_with_update"):  # always training; no flag
            op, args = overload_of(name), (x, w, b, rm, rv, 0.1, 1e-5)
        elif name == "batch_norm_elemt":  # SyncBatchNorm: (input, weight?, bias?, mean, invstd, eps)
            op, args = aten.batch_norm_elemt.default, (x, w, b, meta(c), meta(c), 1e-5)
        elif name in ("_native_batch_norm_legit_no_training", "_batch_norm_no_update"):
            op, args = overload_of(name), (x, w, b, rm, rv, 0.1, 1e-5)
        else:
            op = overload_of(name)
            args = (x, w, b, rm, rv, training, 0.1, 1e-5)
        args, more = kwargify(op, args, draw(st.integers(0, 3)))
        kwargs.update(more)

    def synthetic():
        return (torch.empty_like(x), meta(c), meta(c))

    return op, args, kwargs, run_or(op, args, kwargs, synthetic)


@builder(*OPS_BY_FAMILY["norm"])
def build_norm(name, draw):
    return norm_call(name, draw)


def norm_backward_call(name, draw):
    lead = (draw(st.integers(1, 3)), draw(st.integers(1, 4)))
    x_shape = lead + shapes(draw, 0, 2, 1, 4)
    dtype = draw(st.sampled_from(FLOATS))
    x, g = meta(x_shape, dtype=dtype), meta(x_shape, dtype=dtype)
    c = x_shape[1]
    has_w = draw(st.booleans())
    if name == "_fused_rms_norm_backward":
        mask = [draw(st.booleans()), draw(st.booleans())]
    else:
        mask = [draw(st.booleans()) for _ in range(3)]
    if name == "native_layer_norm_backward":
        r = draw(st.integers(1, len(x_shape)))
        ns = list(x_shape[-r:])
        stat = meta(*x_shape[:-r], *([1] * r))
        op = aten.native_layer_norm_backward.default
        args = (g, x, ns, stat, stat, meta(ns, dtype=dtype) if has_w else None,
                meta(ns, dtype=dtype) if draw(st.booleans()) else None, mask)
        wshape = ns
    elif name == "_fused_rms_norm_backward":
        r = draw(st.integers(1, len(x_shape)))
        ns = list(x_shape[-r:])
        op = aten._fused_rms_norm_backward.default
        args = (g, x, ns, meta(*x_shape[:-r], *([1] * r)), meta(ns, dtype=dtype) if has_w else None, mask)
        wshape = ns
    elif name == "native_group_norm_backward":
        groups = draw(st.sampled_from([d for d in range(1, c + 1) if c % d == 0]))
        stat = meta(x_shape[0], groups)
        op = aten.native_group_norm_backward.default
        args = (g, x, stat, stat, meta(c, dtype=dtype) if has_w else None, x_shape[0], c,
                math.prod(x_shape[2:]), groups, mask)
        wshape = [c]
    elif name == "batch_norm_backward":  # (grad_out, input, weight, rm, rv, sm, sv, update, eps, mask, reserve)
        op, sv = aten.batch_norm_backward.default, meta(c)
        args = (g, x, meta(c, dtype=dtype), sv, sv, sv, sv, draw(st.booleans()), 1e-5, mask, meta(0))
        wshape = [c]
    elif name in ("cudnn_batch_norm_backward", "miopen_batch_norm_backward"):  # (input, grad, weight, ...): no mask
        op, sv, mask = overload_of(name), meta(c), [True, True, True]
        args = (x, g, meta(c, dtype=dtype), sv, sv, sv, sv, 1e-5) + ((meta(0),) if name.startswith("cudnn") else ())
        wshape = [c]
    else:
        train = draw(st.booleans())
        op = aten.native_batch_norm_backward.default
        sv = meta(c)
        args = (g, x, meta(c, dtype=dtype) if has_w else None, sv, sv, sv, sv, train, 1e-5, mask)
        wshape = [c]
    args, kwargs = kwargify(op, args, draw(st.integers(0, 2)))

    def synthetic():
        return tuple(t if m else None for t, m in zip((torch.empty_like(x), meta(wshape), meta(wshape)), mask))

    return op, args, kwargs, run_or(op, args, kwargs, synthetic), mask


@builder(*OPS_BY_FAMILY["norm_backward"])
def build_norm_backward(name, draw):
    return norm_backward_call(name, draw)[:4]


@builder("convolution_backward", "convolution_backward_overrideable", "mps_convolution_backward")
def build_conv_backward(name, draw):
    if name == "convolution_backward":
        return conv_backward_call(draw)[:4]
    if name == "mps_convolution_backward":  # (self, grad_output, weight, padding, stride, dilation, groups, mask)
        while True:
            op, args, kwargs, out, cfg, mask, x, grad = conv_backward_call(draw)
            if not cfg["transposed"]:
                break
        args = (x, grad, args[2], cfg["padding"], cfg["stride"], cfg["dilation"], cfg["groups"], mask)
        return aten.mps_convolution_backward.default, args, {}, out
    op, args, kwargs, out = conv_backward_call(draw)[:4]  # the overrideable schema has no bias_sizes
    args = tuple(args[:3]) + tuple(args[4:])
    names = [a.name for a in aten.convolution_backward_overrideable.default._schema.arguments]
    kwargs = {k: v for k, v in kwargs.items() if k in names}
    return aten.convolution_backward_overrideable.default, args, kwargs, out


def conv_backward_call(draw):
    cfg = draw_conv(draw)
    x, w, b = conv_tensors(cfg)
    out = reference_conv(cfg, x, w, b)
    grad = torch.empty_like(out)
    mask = [draw(st.booleans()) for _ in range(3)]
    bias_sizes = [w.shape[1] * cfg["groups"] if cfg["transposed"] else w.shape[0]] if mask[2] else None
    op = aten.convolution_backward.default
    args = (grad, x, w, bias_sizes, cfg["stride"], cfg["padding"], cfg["dilation"], cfg["transposed"],
            cfg["output_padding"], cfg["groups"], mask)
    args, kwargs = kwargify(op, args, draw(st.integers(0, 4)))
    return op, args, kwargs, op(*args, **kwargs), cfg, mask, x, grad


# ---- foreach and fused optimizers ------------------------------------------------------------------

FUSED = ("_fused_adam", "_fused_adamw", "_fused_sgd", "_fused_adagrad")


@builder(*OPS_BY_FAMILY["foreach"])
def build_foreach(name, draw):
    n = draw(st.integers(1, 4))
    tensor_shapes = [shapes(draw, 0, 3, 0, 5) for _ in range(n)]
    dtypes = [draw(st.sampled_from(FLOATS + [torch.int64] if name not in FUSED else FLOATS)) for _ in range(n)]
    if draw(st.booleans()):
        dtypes = [dtypes[0]] * n
    base, _, only = name.partition(".")  # "_foreach_pow.ScalarAndTensor": that overload alone
    packets = [getattr(aten, base)]
    if hasattr(aten, base + "_") and not only:
        packets.append(getattr(aten, base + "_"))  # in-place variant, resolved to the same row
    packet = draw(st.sampled_from(packets))
    keep = (lambda o: o == only) if only else (lambda o: "out" not in o and o != "ScalarAndTensor")  # noqa: E731
    overloads = [getattr(packet, o) for o in packet.overloads() if keep(o)]
    op = draw(st.sampled_from(sorted(overloads, key=str)))

    def tlist(arg_name):
        if arg_name == "state_steps":
            return [meta((), dtype=torch.float32) for _ in range(n)]
        if arg_name == "max_exp_avg_sqs" and draw(st.booleans()):
            return []
        return [meta(s, dtype=dt) for s, dt in zip(tensor_shapes, dtypes)]

    args, kwargs = [], {}
    for a in op._schema.arguments:
        t = str(a.real_type)
        if a.has_default_value() and a.kwarg_only:
            continue
        if t == "List[Tensor]":
            v = tlist(a.name)
        elif t == "List[number]":
            v = [2.0] * n
        elif t == "Tensor":
            v = meta((), dtype=torch.float32)
        elif t.startswith("Optional["):
            v = None
        elif t == "number":
            v = 2.0
        elif t == "float":
            v = 0.5
        elif t == "bool":
            v = False
        else:  # pragma: no cover
            raise AssertionError(f"{op}: {a.name} {t}")
        if a.kwarg_only:
            kwargs[a.name] = v
        elif a.has_default_value() and not draw(st.booleans()):
            break
        else:
            args.append(v)
    return op, args, kwargs, run_or(op, args, kwargs, lambda: None)


# ---- fused multi-head attention and encoder layer ------------------------------------------------

def mha_call(draw):
    b, l, s = dims(draw, 3, 1, 6)
    h, hd = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    e = h * hd
    dtype = draw(st.sampled_from([torch.float32, torch.float16, torch.bfloat16]))
    q, kv = meta(b, l, e, dtype=dtype), meta(b, s, e, dtype=dtype)
    qkv_bias = meta(3 * e, dtype=dtype) if draw(st.booleans()) else None
    proj_bias = meta(e, dtype=dtype) if draw(st.booleans()) else None
    need_weights = draw(st.booleans())
    args = (q, kv, kv, e, h, meta(3 * e, e, dtype=dtype), qkv_bias, meta(e, e, dtype=dtype), proj_bias, None,
            need_weights, draw(st.booleans()))
    op = aten._native_multi_head_attention.default
    args, kwargs = kwargify(op, args, draw(st.integers(0, 8)))
    out = run_or(op, args, kwargs, lambda: (meta(b, l, e, dtype=dtype), meta(b, l, s) if need_weights else None))
    return op, args, kwargs, out, (b, l, s, e, h, qkv_bias is not None, proj_bias is not None)


@builder("_native_multi_head_attention")
def build_mha(name, draw):
    return mha_call(draw)[:4]


def encoder_call(draw):
    b, l = dims(draw, 2, 1, 6)
    h, hd, f = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 12))
    e = h * hd
    dt = draw(st.sampled_from([torch.float32, torch.float16]))
    opt = lambda *s: meta(*s, dtype=dt) if draw(st.booleans()) else None  # noqa: E731
    gelu = draw(st.booleans())
    args = (meta(b, l, e, dtype=dt), e, h, meta(3 * e, e, dtype=dt), opt(3 * e), meta(e, e, dtype=dt), opt(e), gelu,
            draw(st.booleans()), 1e-5, meta(e, dtype=dt), meta(e, dtype=dt), meta(e, dtype=dt), meta(e, dtype=dt),
            meta(f, e, dtype=dt), opt(f), meta(e, f, dtype=dt), opt(e))
    op = aten._transformer_encoder_layer_fwd.default
    args, kwargs = kwargify(op, args, draw(st.integers(0, 12)))
    return op, args, kwargs, run_or(op, args, kwargs, lambda: meta(b, l, e, dtype=dt)), (b, l, e, h, f, gelu)


@builder("_transformer_encoder_layer_fwd")
def build_encoder(name, draw):
    return encoder_call(draw)[:4]


@builder("bincount")
def build_bincount(name, draw):
    n, minlength = draw(st.integers(0, 8)), draw(st.integers(0, 6))
    weights = meta(n, dtype=draw(st.sampled_from(FLOATS))) if draw(st.booleans()) else None
    args = (meta(n, dtype=torch.int64), weights, minlength)
    out = meta(max(minlength, 5), dtype=torch.float64 if weights is not None else torch.int64)  # no meta kernel
    return aten.bincount.default, args, {}, out


@builder("histc")
def build_histc(name, draw):
    x = meta(shapes(draw, 0, 3), dtype=draw(st.sampled_from(FLOATS)))
    args = (x, draw(st.integers(1, 10)), 0.0, 1.0)
    return aten.histc.default, args, {}, run_or(aten.histc.default, args, {}, lambda: meta(args[1], dtype=x.dtype))


# ---- recurrent layers --------------------------------------------------------------------------------

def rnn_call(name, draw):
    """Fused LSTM layer (mkldnn_rnn_layer and its backward); returns the call and (rows, I, H)."""
    t, b, i, h = dims(draw, 4, 1, 6)
    dt = draw(st.sampled_from([torch.float32, torch.bfloat16]))
    batch_first = draw(st.booleans())
    x = meta((b, t, i) if batch_first else (t, b, i), dtype=dt)
    w_ih, w_hh = meta(4 * h, i, dtype=dt), meta(4 * h, h, dtype=dt)
    b_ih, b_hh = meta(4 * h, dtype=dt), meta(4 * h, dtype=dt)
    hx, cx = meta(b, h, dtype=dt), meta(b, h, dtype=dt)
    if name == "mkldnn_rnn_layer":
        op = aten.mkldnn_rnn_layer.default
        args = (x, w_ih, w_hh, b_ih, b_hh, hx, cx, False, [], 2, h, 1, True, False, batch_first, True)
        out = run_or(op, args, {}, lambda: (meta(*x.shape[:-1], h), hx, cx, meta(0)))
    else:
        op = aten.mkldnn_rnn_layer_backward.default
        y = meta(*x.shape[:-1], h, dtype=dt)
        args = (x, w_ih, w_hh, b_ih, b_hh, hx, cx, y, hx, cx, y, hx, cx, False, 2, h, 1, True, True, False, [],
                batch_first, meta(0, dtype=torch.uint8))
        out = run_or(op, args, {}, lambda: (torch.empty_like(x), torch.empty_like(w_ih), torch.empty_like(w_hh),
                                            torch.empty_like(b_ih), torch.empty_like(b_hh), hx, cx))
    return op, args, {}, out, (t * b, i, h)


@builder(*OPS_BY_FAMILY.get("rnn", []))
def build_rnn(name, draw):
    return rnn_call(name, draw)[:4]


@builder(*sorted(set(OPS_BY_FAMILY["elementwise"]) & {"_thnn_fused_lstm_cell", "_thnn_fused_gru_cell"}))
def build_fused_cell(name, draw):
    b, h = dims(draw, 2, 1, 6)
    gates = 4 if "lstm" in name else 3
    dt = draw(st.sampled_from(FLOATS))
    opt = lambda: meta(gates * h, dtype=dt) if draw(st.booleans()) else None  # noqa: E731
    args = (meta(b, gates * h, dtype=dt), meta(b, gates * h, dtype=dt), meta(b, h, dtype=dt), opt(), opt())
    op = overload_of(name)
    n_out = 3 if "lstm" in name else 2
    return op, args, {}, run_or(op, args, {}, lambda: (meta(b, h, dtype=dt),) * n_out)


@builder("max.out", "min.out")
def build_binary_extremum_out(name, draw):
    """Binary max/min written to out=: one comparison per (broadcast) output element."""
    shape = dims(draw, 2)
    a, b = meta(*shape), meta(*shape[1:])
    out = meta(*shape)
    op = overload_of(name)
    return op, (a, b), {"out": out}, run_or(op, (a, b), {"out": out}, lambda: out)


# ---- issue 10 rows: backend conv kernels, cuDNN RNN, losses, accumulating writes, SyncBN... -------

# name -> (argument layout, spatial rank or None for any, transposed)
CONV_VARIANTS = {
    "cudnn_convolution_transpose": ("cudnn_t", None, True),
    "cudnn_convolution_relu": ("relu", None, False), "miopen_convolution_relu": ("relu", None, False),
    "cudnn_convolution_add_relu": ("add_relu", None, False), "miopen_convolution_add_relu": ("add_relu", None, False),
    "miopen_convolution": ("miopen", None, False), "miopen_depthwise_convolution": ("miopen", None, False),
    "miopen_convolution_transpose": ("miopen_t", None, True),
    "_mps_convolution": ("mps", None, False), "_mps_convolution_transpose": ("mps_t", None, True),
    "_nnpack_spatial_convolution": ("nnpack", 2, False),
    "_slow_conv2d_forward": ("slow", 2, False), "thnn_conv2d": ("slow", 2, False),
    "slow_conv3d": ("slow", 3, False), "slow_conv3d_forward": ("slow", 3, False),
    "_conv_depthwise2d": ("slow_dil", 2, False), "conv_depthwise3d": ("slow_dil", 3, False),
    "slow_conv_dilated2d": ("slow_dil", 2, False), "slow_conv_dilated3d": ("slow_dil", 3, False),
    "slow_conv_transpose2d": ("slow_t", 2, True), "slow_conv_transpose3d": ("slow_t", 3, True),
}
CONV_EPILOGUE = {"relu": 1, "add_relu": 3}  # FLOPs per output element after the bias


def backend_conv_call(name, draw):
    """A backend convolution kernel; returns the call, cfg and the FLOPs per output beyond 2 x MACs."""
    layout, rank, transposed = CONV_VARIANTS[name]
    cfg = draw_conv(draw)
    while rank is not None and cfg["r"] != rank:
        cfg = draw_conv(draw)
    cfg["transposed"] = transposed
    if not transposed:
        cfg["output_padding"] = [0] * cfg["r"]
    if layout in ("nnpack", "slow", "slow_dil", "slow_t"):  # no groups argument
        cfg["groups"] = 1
    if layout in ("nnpack", "slow"):  # no dilation argument
        cfg["dilation"] = [1] * cfg["r"]
        cfg["padding"] = [min(p_, kk - 1) for p_, kk in zip(cfg["padding"], cfg["k"])]
    if layout in ("cudnn_t", "mps_t"):  # no bias argument
        cfg["bias"] = False
    if transposed:  # output_padding must be smaller than stride or dilation
        cfg["output_padding"] = [min(o, max(s_, d) - 1) for o, s_, d in zip(cfg["output_padding"], cfg["stride"],
                                                                          cfg["dilation"])]
    x, w, b = conv_tensors(cfg)
    out = reference_conv(cfg, x, w, b)
    s_, p_, d, op_, g, k = cfg["stride"], cfg["padding"], cfg["dilation"], cfg["output_padding"], cfg["groups"], cfg["k"]
    args = {
        "cudnn_t": (x, w, p_, op_, s_, d, g, False, False, False),
        "relu": (x, w, b, s_, p_, d, g),
        "add_relu": (x, w, torch.empty_like(out), 1.0, b, s_, p_, d, g),
        "miopen": (x, w, b, p_, s_, d, g, False, False),
        "miopen_t": (x, w, b, p_, op_, s_, d, g, False, False),
        "mps": (x, w, b, p_, s_, d, g),
        "mps_t": (x, w, p_, op_, s_, d, g),
        "nnpack": (x, w, b, p_, s_),
        "slow": (x, w, k, b, s_, p_),
        "slow_dil": (x, w, k, b, s_, p_, d),
        "slow_t": (x, w, k, b, s_, p_, op_, d),
    }[layout]
    op = overload_of(name)
    args, kwargs = kwargify(op, args, draw(st.integers(0, 2)))
    return op, args, kwargs, run_or(op, args, kwargs, lambda: out), cfg, CONV_EPILOGUE.get(layout, 0)


@builder(*CONV_VARIANTS)
def build_backend_conv(name, draw):
    return backend_conv_call(name, draw)[:4]


@builder("_slow_conv2d_backward", "_slow_conv2d_backward.grad_input")
def build_slow_conv2d_backward(name, draw):
    cfg = draw_conv(draw)
    while cfg["r"] != 2:
        cfg = draw_conv(draw)
    cfg.update(transposed=False, groups=1, dilation=[1, 1], output_padding=[0, 0])
    cfg["padding"] = [min(p_, kk - 1) for p_, kk in zip(cfg["padding"], cfg["k"])]
    x, w, _ = conv_tensors(cfg)
    grad = torch.empty_like(reference_conv(cfg, x, w, None))
    mask = [draw(st.booleans()) for _ in range(3)]
    out = (torch.empty_like(x), torch.empty_like(w), meta(w.shape[0]))
    if name.endswith("grad_input"):  # the out= overload: every gradient, written to the given tensors
        op = aten._slow_conv2d_backward.grad_input
        args = (grad, x, w, cfg["k"], cfg["stride"], cfg["padding"])
        kwargs = dict(zip(("grad_input", "grad_weight", "grad_bias"), out))
        return op, args, kwargs, run_or(op, args, kwargs, lambda: out)
    args = (grad, x, w, cfg["k"], cfg["stride"], cfg["padding"], mask)
    op = aten._slow_conv2d_backward.output_mask
    return op, args, {}, run_or(op, args, {}, lambda: out)


@builder("mkldnn_linear", "mkldnn_linear_backward_input", "mkldnn_linear_backward_weights")
def build_mkldnn_linear(name, draw):
    n, k, m = dims(draw, 3)
    x, w, g = meta(n, k), meta(m, k), meta(n, m)
    op = overload_of(name)
    if name == "mkldnn_linear":
        args, out = (x, w, meta(m) if draw(st.booleans()) else None), meta(n, m)
    elif name == "mkldnn_linear_backward_input":
        args, out = ([n, k], g, w), meta(n, k)
    else:
        args, out = (g, x, w, draw(st.booleans())), (meta(m, k), meta(m))
    return op, args, {}, out  # mkldnn kernels have no meta implementation


@builder("fractional_max_pool2d", "fractional_max_pool3d", "mkldnn_max_pool2d", "mkldnn_max_pool3d",
         "fractional_max_pool2d_backward", "fractional_max_pool3d_backward")
def build_other_pool(name, draw):
    return other_pool_call(name, draw)[:4]


def other_pool_call(name, draw):
    r = 3 if "3d" in name else 2
    n, c = dims(draw, 2, 1, 3)
    k = dims(draw, r, 1, 3)
    size_out = dims(draw, r, 1, 4)
    size_in = [o + kk + draw(st.integers(0, 2)) for o, kk in zip(size_out, k)]  # fractional: o + k - 1 < in
    x = meta(n, c, *size_in, dtype=draw(st.sampled_from(FLOATS)))
    if name.startswith("mkldnn"):
        op = overload_of(name)
        args = (x, k, [1] * r, [0] * r, [1] * r, False)
        out = meta(n, c, *[i - kk + 1 for i, kk in zip(size_in, k)], dtype=x.dtype)
        return op, args, {}, out, math.prod(k), out
    fwd = overload_of(name.replace("_backward", ""))
    fwd_args = (x, k, size_out, meta(n, c, r, dtype=x.dtype))
    fwd_out = fwd(*fwd_args)
    if "backward" not in name:
        return fwd, fwd_args, {}, fwd_out, math.prod(k), fwd_out[0]
    op = overload_of(name)
    args = (torch.empty_like(fwd_out[0]), x, k, size_out, fwd_out[1])
    return op, args, {}, run_or(op, args, {}, lambda: torch.empty_like(x)), 1, args[0]


def flat_rnn_call(name, draw):
    """cuDNN/MIOpen RNN and backward with the flat weight list; returns the call and the expected (MACs, FLOPs)."""
    mode = draw(st.sampled_from([0, 1, 2, 3]))  # RNN_RELU, RNN_TANH, LSTM, GRU
    gates = {0: 1, 1: 1, 2: 4, 3: 3}[mode]
    t, b, i, h = dims(draw, 4, 1, 5)
    layers, dirs = draw(st.integers(1, 3)), draw(st.sampled_from([1, 2]))
    proj = draw(st.integers(1, h - 1)) if mode == 2 and h > 1 and draw(st.booleans()) else 0
    bias = draw(st.booleans())
    dt = draw(st.sampled_from([torch.float32, torch.float16]))
    out_h = proj or h
    weights, w_macs = [], 0
    for layer in range(layers):
        in_l = i if layer == 0 else out_h * dirs
        for _ in range(dirs):
            group = [meta(gates * h, in_l, dtype=dt), meta(gates * h, out_h, dtype=dt)]
            if bias:
                group += [meta(gates * h, dtype=dt), meta(gates * h, dtype=dt)]
            if proj:
                group.append(meta(proj, h, dtype=dt))
            weights += group
            w_macs += gates * h * in_l + gates * h * out_h + (proj * h if proj else 0)
    stride0 = 2 + 2 * bias + bool(proj)
    batch_first = draw(st.booleans())
    x = meta((b, t, i) if batch_first else (t, b, i), dtype=dt)
    hx, cx = meta(layers * dirs, b, out_h, dtype=dt), (meta(layers * dirs, b, h, dtype=dt) if mode == 2 else None)
    y = meta(*x.shape[:-1], out_h * dirs, dtype=dt)
    backward = name.endswith("backward")
    products = 2 if backward else 1
    gate_cost = {1: 3, 3: 20, 4: 26}[gates] * products  # RNN_GATES, GRU_GATES, LSTM_GATES
    macs = t * b * w_macs * products
    flops = 2 * macs + t * b * h * layers * dirs * gate_cost
    op = overload_of(name)
    if name == "_cudnn_rnn":
        args = (x, weights, stride0, None, hx, cx, mode, h, proj, layers, batch_first, 0.0, True, dirs == 2, [], None)
    elif name == "miopen_rnn":
        args = (x, weights, stride0, hx, cx, mode, h, layers, batch_first, 0.0, True, dirs == 2, [], None)
    elif name == "_cudnn_rnn_backward":
        args = (x, weights, stride0, meta(0, dtype=dt), hx, cx, y, y, hx, cx, mode, h, proj, layers, batch_first, 0.0,
                True, dirs == 2, [], None, meta(0, dtype=torch.uint8), [True, True, True, True])
    else:
        args = (x, weights, stride0, meta(0, dtype=dt), hx, cx, y, y, hx, cx, mode, h, layers, batch_first, 0.0,
                True, dirs == 2, [], None, meta(0, dtype=torch.uint8), [True, True, True, True])
    out = (torch.empty_like(x), hx, cx, [torch.empty_like(w) for w in weights]) if backward else (y, hx, cx, meta(0),
                                                                                                  meta(0))
    return op, args, {}, out, (macs, flops)  # CUDA/ROCm kernels: no meta implementation


@builder("_cudnn_rnn", "miopen_rnn", "_cudnn_rnn_backward", "miopen_rnn_backward")
def build_flat_rnn(name, draw):
    return flat_rnn_call(name, draw)[:4]


def scalar_loss_out(dtype, reduction, shape):
    return meta(shape if reduction == 0 else (), dtype=dtype)


# ---- FFT, dense linear algebra, _trilinear, distances, embedding bag, grid sampling, weight norm --

C64 = torch.complex64
LINALG_DTYPES = [torch.float32, torch.float64, C64, torch.int64]


@builder("_fft_c2c", "_fft_r2c", "_fft_c2r")
def build_fft(name, draw):
    shape = list(shapes(draw, min_dims=1, max_dims=4, min_side=1, max_side=9))
    nd = len(shape)
    dim = sorted(draw(st.sets(st.integers(0, nd - 1), min_size=1, max_size=nd)))
    last = dim[-1]
    if draw(st.booleans()):
        dim = [d - nd for d in dim]  # negative dims index from the end
    op = overload_of(name)
    if name == "_fft_c2c":
        args = (meta(shape, dtype=C64), dim, 0, draw(st.booleans()))
        fallback = lambda: meta(shape, dtype=C64)  # noqa: E731
    elif name == "_fft_r2c":
        onesided = draw(st.booleans())
        out_shape = list(shape)
        if onesided:
            out_shape[last] = shape[last] // 2 + 1
        args = (meta(shape), dim, 0, onesided)
        fallback = lambda: meta(out_shape, dtype=C64)  # noqa: E731
    else:  # c2r: the real output is last_dim_size long along the last transformed dim
        in_shape = list(shape)
        in_shape[last] = shape[last] // 2 + 1
        args = (meta(in_shape, dtype=C64), dim, 0, shape[last])
        fallback = lambda: meta(shape)  # noqa: E731
    return op, args, {}, run_or(op, args, {}, fallback)


def _matrix(draw, square, dtype, batch=None, m=None, n=None):
    batch = list(batch if batch is not None else dims(draw, draw(st.integers(0, 2)), 1, 3))
    m = m if m is not None else draw(st.integers(1, 7))
    n = m if square else (n if n is not None else draw(st.integers(1, 7)))
    return meta(batch + [m, n], dtype=dtype), batch, m, n


SINGLE_MATRIX = {  # name: (square, extra positional args drawn from these options)
    "cholesky": (True, [[False, True]]),
    "linalg_cholesky_ex": (True, []),
    "linalg_ldl_factor_ex": (True, []),
    "linalg_lu_factor_ex": (False, []),
    "linalg_lu": (False, []),
    "_linalg_det": (True, []),
    "_linalg_slogdet": (True, []),
    "linalg_inv_ex": (True, []),
    "cholesky_inverse": (True, [[False, True]]),
    "linalg_eig": (True, []),
    "linalg_matrix_exp": (True, []),
    "_linalg_eigh": (True, [["L", "U"], [True, False]]),
    "_linalg_svd": (False, [[False, True], [True, False]]),
    "linalg_qr": (False, [["reduced", "complete", "r"]]),
    "geqrf": (False, []),
    "linalg_pinv": (False, [[1e-5], [False, True]]),
    "linalg_polar": (False, []),  # torch >= 2.14; m < n is rejected on meta (the fallback out is used)
    "linalg_matrix_sqrth": (True, []),  # torch >= 2.14
}


@builder(*SINGLE_MATRIX)
def build_single_matrix(name, draw):
    square, extras = SINGLE_MATRIX[name]
    dtype = draw(st.sampled_from(LINALG_DTYPES))
    a, batch, m, n = _matrix(draw, square, dtype)
    n_extra = draw(st.integers(0, len(extras)))  # trailing arguments may be left to their defaults
    args = (a,) + tuple(draw(st.sampled_from(o)) for o in extras[:n_extra])
    op = overload_of(name)
    return op, args, {}, run_or(op, args, {}, lambda: (meta(batch + [m, n], dtype=dtype),))


@builder("linalg_eigvals.out")
def build_eigvals_out(name, draw):
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    a, batch, m, n = _matrix(draw, True, dtype)
    values = meta(batch + [n], dtype=torch.complex64 if dtype == torch.float32 else torch.complex128)
    return aten.linalg_eigvals.out, (a,), {"out": values}, values


@builder("linalg_pinv.atol_rtol_float", "linalg_pinv.atol_rtol_tensor", "linalg_pinv.rcond_tensor")
def build_pinv_overloads(name, draw):
    dtype = draw(st.sampled_from(LINALG_DTYPES))
    a, batch, m, n = _matrix(draw, False, dtype)
    op = overload_of(name)
    hermitian = draw(st.booleans())
    if name == "linalg_pinv.rcond_tensor":
        args, kwargs = (a, meta(())), {}
        if draw(st.booleans()):
            args = args + (hermitian,)
    else:
        args, kwargs = (a,), ({"hermitian": hermitian} if draw(st.booleans()) else {})
    return op, args, kwargs, run_or(op, args, kwargs, lambda: meta(batch + [n, m], dtype=dtype))


SOLVES = ["triangular_solve", "linalg_solve_triangular", "linalg_lu_solve", "linalg_ldl_solve", "cholesky_solve",
          "lu_solve", "_linalg_solve_ex"]


@builder(*SOLVES)
def build_solve(name, draw):
    dtype = draw(st.sampled_from(LINALG_DTYPES))
    a, batch, n, _ = _matrix(draw, True, dtype)
    k = draw(st.integers(1, 6))
    left = draw(st.booleans()) if name in ("linalg_solve_triangular", "linalg_lu_solve", "_linalg_solve_ex") else True
    b = meta(batch + ([n, k] if left else [k, n]), dtype=dtype)
    piv = meta(batch + [n], dtype=torch.int32)
    op = overload_of(name)
    kwargs = {}
    if name == "triangular_solve":
        args = (b, a, draw(st.booleans()))
    elif name == "linalg_solve_triangular":
        args, kwargs = (a, b), {"upper": draw(st.booleans()), "left": left}
    elif name == "linalg_lu_solve":
        args, kwargs = (a, piv, b), {"left": left}
    elif name == "linalg_ldl_solve":
        args = (a, piv, b)
    elif name == "cholesky_solve":
        args = (b, a)
    elif name == "lu_solve":
        args = (b, a, piv)
    else:
        args, kwargs = (a, b), {"left": left}
    return op, args, kwargs, run_or(op, args, kwargs, lambda: (meta(b.shape, dtype=dtype),))


@builder("linalg_householder_product", "ormqr")
def build_householder(name, draw):
    dtype = draw(st.sampled_from(LINALG_DTYPES))
    m = draw(st.integers(1, 7))
    n = draw(st.integers(1, m))
    k = draw(st.integers(1, n))
    batch = dims(draw, draw(st.integers(0, 2)), 1, 3)
    tau = meta(batch + [k], dtype=dtype)
    op = overload_of(name)
    if name == "linalg_householder_product":
        args = (meta(batch + [m, n], dtype=dtype), tau)
        return op, args, {}, run_or(op, args, {}, lambda: meta(batch + [m, n], dtype=dtype))
    left = draw(st.booleans())
    cols = draw(st.integers(1, 6))
    c_shape = batch + ([m, cols] if left else [cols, m])
    args = (meta(batch + [m, n], dtype=dtype), tau, meta(c_shape, dtype=dtype), left, draw(st.booleans()))
    return op, args, {}, run_or(op, args, {}, lambda: meta(c_shape, dtype=dtype))


@builder("linalg_lstsq")
def build_lstsq(name, draw):
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.int64]))
    a, batch, m, n = _matrix(draw, False, dtype)
    r = draw(st.integers(1, 5))
    b = meta(batch + [m, r], dtype=dtype)
    op = overload_of(name)
    fallback = lambda: (meta(batch + [n, r], dtype=dtype), meta(0), meta(0, dtype=torch.int64), meta(0))  # noqa: E731
    return op, (a, b), {}, run_or(op, (a, b), {}, fallback)


@builder("_trilinear")
def build_trilinear(name, draw):
    rank = draw(st.integers(1, 4))
    sizes = dims(draw, rank, 1, 5)
    expands = [sorted(draw(st.sets(st.integers(0, rank - 1), max_size=rank - 1))) for _ in range(3)]
    tensors = [meta([s for d, s in enumerate(sizes) if d not in e]) for e in expands]
    sumdim = sorted(draw(st.sets(st.integers(0, rank - 1), max_size=rank)))
    unroll = draw(st.integers(0, rank - 1))
    args = (*tensors, *expands, sumdim, unroll)
    op = overload_of(name)
    fallback = lambda: meta([1 if d in sumdim else s for d, s in enumerate(sizes)])  # noqa: E731
    return op, args, {}, run_or(op, args, {}, fallback)


@builder("_cdist_forward", "_cdist_backward", "_euclidean_dist", "_pdist_forward", "_pdist_backward")
def build_distance(name, draw):
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.int64]))
    batch = dims(draw, draw(st.integers(0, 2)), 1, 3) if "pdist" not in name else []
    p_, r, m = dims(draw, 3, 1, 6)
    pn = draw(st.sampled_from([0.0, 1.0, 2.0, 1.5, 3.0, math.inf]))
    x1, x2 = meta(batch + [p_, m], dtype=dtype), meta(batch + [r, m], dtype=dtype)
    op = overload_of(name)
    if name == "_cdist_forward":
        args, out_shape = (x1, x2, pn, None), batch + [p_, r]
    elif name == "_euclidean_dist":
        args, out_shape = (x1, x2), batch + [p_, r]
    elif name == "_cdist_backward":
        args, out_shape = (meta(batch + [p_, r], dtype=dtype), x1, x2, pn, meta(batch + [p_, r], dtype=dtype)), x1.shape
    elif name == "_pdist_forward":
        args, out_shape = (x1, pn), [p_ * (p_ - 1) // 2]
    else:
        pairs = meta(p_ * (p_ - 1) // 2, dtype=dtype)
        args, out_shape = (pairs, x1, pn, pairs), x1.shape
    return op, args, {}, run_or(op, args, {}, lambda: meta(out_shape, dtype=dtype))


EMBEDDING_BAG = ["_embedding_bag", "_embedding_bag_forward_only", "_embedding_bag_backward",
                 "_embedding_bag_dense_backward", "_embedding_bag_sparse_backward",
                 "_embedding_bag_per_sample_weights_backward"]


@builder(*EMBEDDING_BAG)
def build_embedding_bag(name, draw):
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.int64]))
    vocab, d, length, bags = dims(draw, 4, 1, 6)
    mode = draw(st.sampled_from([0, 1, 2]))
    weighted = mode == 0 and draw(st.booleans())
    idx, offsets = meta(length, dtype=torch.int64), meta(bags, dtype=torch.int64)
    psw = meta(length, dtype=dtype) if weighted else None
    grad, weight = meta(bags, d, dtype=dtype), meta(vocab, d, dtype=dtype)
    ints = lambda n: meta(n, dtype=torch.int64)  # noqa: E731
    op = overload_of(name)
    if name in ("_embedding_bag", "_embedding_bag_forward_only"):
        args = (weight, idx, offsets, False, mode, False, psw)
        fallback = lambda: (meta(bags, d, dtype=dtype), ints(length), ints(bags), ints(bags))  # noqa: E731
    elif name == "_embedding_bag_backward":
        args = (grad, idx, offsets, ints(length), ints(bags), ints(bags), vocab, False, mode, False, psw)
        fallback = lambda: meta(vocab, d, dtype=dtype)  # noqa: E731
    elif name == "_embedding_bag_dense_backward":
        args = (grad, idx, ints(length), ints(bags), ints(bags), vocab, False, mode, psw)
        fallback = lambda: meta(vocab, d, dtype=dtype)  # noqa: E731
    elif name == "_embedding_bag_sparse_backward":
        args = (grad, idx, offsets, ints(length), ints(bags), vocab, False, mode, psw)
        fallback = lambda: meta(vocab, d, dtype=dtype)  # noqa: E731
    else:
        args = (grad, weight, idx, offsets, ints(length), 0)
        fallback = lambda: meta(length, dtype=dtype)  # noqa: E731
    return op, args, {}, run_or(op, args, {}, fallback)


GRID_SAMPLERS = ["grid_sampler_2d", "_grid_sampler_2d_cpu_fallback", "cudnn_grid_sampler", "grid_sampler_3d",
                 "grid_sampler_2d_backward", "_grid_sampler_2d_cpu_fallback_backward", "grid_sampler_3d_backward",
                 "cudnn_grid_sampler_backward"]


@builder(*GRID_SAMPLERS)
def build_grid_sampler(name, draw):
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.float16]))
    rank = 3 if "3d" in name else 2
    n, c = dims(draw, 2, 1, 3)
    spatial_in, spatial_out = dims(draw, rank, 1, 5), dims(draw, rank, 1, 5)
    inp, grid = meta([n, c] + spatial_in, dtype=dtype), meta([n] + spatial_out + [rank], dtype=dtype)
    grad = meta([n, c] + spatial_out, dtype=dtype)
    mode = draw(st.sampled_from([0, 1] if rank == 3 else [0, 1, 2]))
    op = overload_of(name)
    if name == "cudnn_grid_sampler":
        args = (inp, grid)
    elif name == "cudnn_grid_sampler_backward":
        args = (inp, grid, grad)
    elif name.endswith("_backward"):
        args = (grad, inp, grid, mode, 0, False)
        if "fallback" not in name:
            args += ([draw(st.booleans()), draw(st.booleans())],)
    else:
        args = (inp, grid, mode, 0, False)
    if name.endswith("_backward"):
        fallback = lambda: (meta(inp.shape, dtype=dtype), meta(grid.shape, dtype=dtype))  # noqa: E731
    else:
        fallback = lambda: meta(grad.shape, dtype=dtype)  # noqa: E731
    return op, args, {}, run_or(op, args, {}, fallback)


@builder("_weight_norm_interface", "_weight_norm_interface_backward")
def build_weight_norm(name, draw):
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.int64]))
    shape = dims(draw, draw(st.integers(1, 4)), 1, 5)
    dim = draw(st.integers(0, len(shape) - 1))
    small = [s if i == dim else 1 for i, s in enumerate(shape)]
    v, g = meta(shape, dtype=dtype), meta(small, dtype=dtype)
    op = overload_of(name)
    if name == "_weight_norm_interface":
        args = (v, g, dim)
    else:
        args = (meta(shape, dtype=dtype), v, g, meta(small, dtype=dtype), dim)
    return op, args, {}, run_or(op, args, {}, lambda: (meta(shape, dtype=dtype), meta(small, dtype=dtype)))


@builder("_ctc_loss", "_ctc_loss_backward")
def build_ctc(name, draw):
    t, n, c, s_ = dims(draw, 4, 1, 6)
    dt = draw(st.sampled_from([torch.float32, torch.float64]))
    lp = meta(t, n, c, dtype=dt)
    targets = meta(n, s_, dtype=torch.int64)
    lengths, tlen = [t] * n, [s_] * n
    alpha = meta(n, t, 2 * s_ + 1, dtype=dt)
    if name == "_ctc_loss":
        op, args = aten._ctc_loss.default, (lp, targets, lengths, tlen, 0, False)
        return op, args, {}, (meta(n, dtype=dt), alpha)
    op = aten._ctc_loss_backward.default
    args = (meta(n, dtype=dt), lp, targets, lengths, tlen, meta(n, dtype=dt), alpha, 0, False)
    return op, args, {}, torch.empty_like(lp)


@builder("index_put", "_index_put_impl", "_unsafe_index_put", "put", "_unsafe_masked_index_put_accumulate")
def build_index_put(name, draw):
    rows, cols, k = dims(draw, 3, 1, 6)
    dtype = draw(st.sampled_from(ANY_DTYPE[:-1]))
    x, values, idx = meta(rows, cols, dtype=dtype), meta(k, cols, dtype=dtype), meta(k, dtype=torch.int64)
    accumulate = draw(st.booleans())
    op = overload_of(name)
    if name == "put":
        args = (x, meta(k, dtype=torch.int64), meta(k, dtype=dtype), accumulate)
    elif name == "_unsafe_masked_index_put_accumulate":
        args = (x, meta(k, dtype=torch.bool), [idx], values)
    elif name == "_index_put_impl":
        args = (x, [idx], values, accumulate, False)
    else:
        args = (x, [idx], values, accumulate)
    return op, args, {}, run_or(op, args, {}, lambda: torch.empty_like(x))


@builder("index_reduce", "scatter.reduce", "scatter.value_reduce")
def build_reduce_scatter(name, draw):
    rows, cols, k = dims(draw, 3, 1, 6)
    dtype = draw(st.sampled_from(ANY_DTYPE[:-1]))
    x, src = meta(rows, cols, dtype=dtype), meta(k, cols, dtype=dtype)
    if name == "index_reduce":
        op = aten.index_reduce.default
        args, kwargs = (x, 0, meta(k, dtype=torch.int64), src, draw(st.sampled_from(["prod", "mean", "amax"]))), {}
    elif name == "scatter.reduce":
        op, args = aten.scatter.reduce, (x, 0, meta(k, cols, dtype=torch.int64), src)
        kwargs = {"reduce": draw(st.sampled_from(["add", "multiply"]))}
    else:
        op, args = aten.scatter.value_reduce, (x, 0, meta(k, cols, dtype=torch.int64), 2.0)
        kwargs = {"reduce": draw(st.sampled_from(["add", "multiply"]))}
    return op, args, kwargs, run_or(op, args, kwargs, lambda: torch.empty_like(x))


@builder("unfold_backward", "reflection_pad1d_backward", "reflection_pad2d_backward", "reflection_pad3d_backward",
         "replication_pad1d_backward", "replication_pad2d_backward", "replication_pad3d_backward")
def build_gather_back(name, draw):
    dtype = draw(st.sampled_from(FLOATS))
    if name == "unfold_backward":
        n, size, step = draw(st.integers(1, 8)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
        n = max(n, size)
        windows = (n - size) // step + 1
        lead = dims(draw, draw(st.integers(0, 2)), 1, 3)
        grad = meta(*lead, windows, size, dtype=dtype)
        args = (grad, [*lead, n], len(lead), size, step)
        op = aten.unfold_backward.default
        return op, args, {}, run_or(op, args, {}, lambda: meta(*lead, n, dtype=dtype))
    r = int(name.split("pad")[1][0])
    size = dims(draw, r, 3, 6)
    pad = [draw(st.integers(0, 2)) for _ in range(2 * r)]
    x = meta(2, 3, *size, dtype=dtype)
    grad = meta(2, 3, *[s_ + pad[2 * (r - 1 - j)] + pad[2 * (r - 1 - j) + 1] for j, s_ in enumerate(size)], dtype=dtype)
    op = overload_of(name)
    return op, (grad, x, pad), {}, run_or(op, (grad, x, pad), {}, lambda: torch.empty_like(x))


@builder("glu", "glu_backward")
def build_glu(name, draw):
    shape = list(dims(draw, draw(st.integers(1, 3)), 1, 4))
    dim = draw(st.integers(0, len(shape) - 1))
    shape[dim] *= 2
    dtype = draw(st.sampled_from(FLOATS))
    x = meta(shape, dtype=dtype)
    half = list(shape)
    half[dim] //= 2
    if name == "glu":
        return aten.glu.default, (x, dim), {}, aten.glu.default(x, dim)
    op = aten.glu_backward.default
    args = (meta(half, dtype=dtype), x, dim)
    return op, args, {}, run_or(op, args, {}, lambda: torch.empty_like(x))


@builder("_masked_softmax", "_masked_softmax_backward")
def build_masked_softmax(name, draw):
    shape = dims(draw, 3, 1, 5)
    dtype = draw(st.sampled_from(FLOATS))
    x, mask = meta(shape, dtype=dtype), meta(shape, dtype=torch.bool)
    if name == "_masked_softmax":
        return aten._masked_softmax.default, (x, mask, -1, None), {}, torch.empty_like(x)
    return aten._masked_softmax_backward.default, (x, x, mask, -1), {}, torch.empty_like(x)


@builder("segment_reduce", "_segment_reduce_backward")
def build_segment_reduce(name, draw):
    n, d = dims(draw, 2, 1, 6)
    dtype = draw(st.sampled_from(FLOATS))
    data, lengths = meta(n, d, dtype=dtype), meta(2, dtype=torch.int64)
    if name == "segment_reduce":
        return aten.segment_reduce.default, (data, "sum"), {"lengths": lengths}, meta(2, d, dtype=dtype)
    out = meta(2, d, dtype=dtype)
    return aten._segment_reduce_backward.default, (out, out, data, "sum"), {"lengths": lengths}, torch.empty_like(data)


@builder("_thnn_fused_lstm_cell_backward", "_thnn_fused_lstm_cell_backward_impl", "_thnn_fused_gru_cell_backward")
def build_cell_backward(name, draw):
    b, h = dims(draw, 2, 1, 6)
    dt = draw(st.sampled_from(FLOATS))
    has_bias = draw(st.booleans())
    op = overload_of(name)
    if "gru" in name:
        args = (meta(b, h, dtype=dt), meta(b, 5 * h, dtype=dt), has_bias)
        out = (meta(b, 3 * h, dtype=dt), meta(b, 3 * h, dtype=dt), meta(b, h, dtype=dt), meta(3 * h), meta(3 * h))
    else:
        hc = meta(b, h, dtype=dt)
        args = (hc, hc, hc, hc, meta(b, 4 * h, dtype=dt), has_bias)
        out = (meta(b, 4 * h, dtype=dt), hc, meta(4 * h, dtype=dt))
        if name == "_thnn_fused_lstm_cell_backward":
            out = (meta(b, 4 * h, dtype=dt), meta(b, 4 * h, dtype=dt), meta(b, 4 * h, dtype=dt), hc, meta(4 * h))
    return op, args, {}, run_or(op, args, {}, lambda: out)


@builder("equal", "allclose", "trace", "dist", "renorm")
def build_compare_norms(name, draw):
    dtype = draw(st.sampled_from(ANY_DTYPE[:-1]))
    lead = shapes(draw, 0, 2, 1, 3) if name == "trace" else ()
    shape = (*lead, *dims(draw, 2, 1, 6)) if name in ("trace", "renorm") else shapes(draw, 0, 3)
    if name == "trace":
        shape = shape[-2:]  # aten.trace takes a matrix; batch dims are checked by the family tests
    x = meta(shape, dtype=dtype)
    op = overload_of(name)
    if name in ("equal", "allclose"):
        return op, (x, meta(shape, dtype=dtype)), {}, False  # a Python bool; no meta kernel
    if name == "trace":
        return op, (x,), {}, meta((), dtype=dtype)
    if name == "dist":
        return op, (x, meta(shape, dtype=dtype), 2), {}, meta((), dtype=dtype)
    return op, (x, 2, 0, 1.0), {}, run_or(op, (x, 2, 0, 1.0), {}, lambda: torch.empty_like(x))


@builder("multi_margin_loss", "multi_margin_loss_backward", "multilabel_margin_loss_forward",
         "multilabel_margin_loss_backward")
def build_margin_losses(name, draw):
    n, c = dims(draw, 2, 1, 6)
    dtype = draw(st.sampled_from(FLOATS))
    reduction = draw(st.sampled_from([0, 1, 2]))
    x = meta(n, c, dtype=dtype)
    op = overload_of(name)
    if name == "multi_margin_loss":
        args, out = (x, meta(n, dtype=torch.int64), 1, 1.0, None, reduction), scalar_loss_out(dtype, reduction, (n,))
    elif name == "multi_margin_loss_backward":
        args, out = (scalar_loss_out(dtype, reduction, (n,)), x, meta(n, dtype=torch.int64), 1, 1.0, None,
                     reduction), torch.empty_like(x)
    elif name == "multilabel_margin_loss_forward":
        args = (x, meta(n, c, dtype=torch.int64), reduction)
        out = (scalar_loss_out(dtype, reduction, (n,)), meta(n, c, dtype=dtype))
    else:
        args = (scalar_loss_out(dtype, reduction, (n,)), x, meta(n, c, dtype=torch.int64), reduction,
                meta(n, c, dtype=dtype))
        out = torch.empty_like(x)
    return op, args, {}, run_or(op, args, {}, lambda: out)


@builder("histogram", "_histogramdd_from_bin_cts", "_histogramdd_from_bin_tensors", "_histogramdd_bin_edges")
def build_histograms(name, draw):
    n, d = dims(draw, 2, 1, 6)
    dtype = draw(st.sampled_from(FLOATS))
    x = meta(n, d, dtype=dtype)
    if name == "histogram":
        return aten.histogram.bin_ct, (x, 5), {}, (meta(5, dtype=dtype), meta(6, dtype=dtype))
    if name == "_histogramdd_from_bin_cts":
        return aten._histogramdd_from_bin_cts.default, (x, [3] * d), {}, meta([3] * d, dtype=dtype)
    if name == "_histogramdd_bin_edges":
        return aten._histogramdd_bin_edges.default, (x, [3] * d), {}, [meta(4, dtype=dtype) for _ in range(d)]
    edges = [meta(4, dtype=dtype) for _ in range(d)]
    return aten._histogramdd_from_bin_tensors.default, (x, edges), {}, meta([3] * d, dtype=dtype)


SYNC_BN = ("batch_norm_stats", "batch_norm_update_stats", "batch_norm_gather_stats",
           "batch_norm_gather_stats_with_counts", "batch_norm_backward_reduce", "batch_norm_backward_elemt")


@builder(*SYNC_BN)
def build_sync_bn(name, draw):
    n, c, hw, world = dims(draw, 4, 1, 5)
    dt = draw(st.sampled_from(FLOATS))
    x, g, stat = meta(n, c, hw, dtype=dt), meta(n, c, hw, dtype=dt), meta(c)
    op = overload_of(name)
    if name == "batch_norm_stats":
        args, out = (x, 1e-5), (meta(c), meta(c))
    elif name == "batch_norm_update_stats":
        args, out = (x, stat, stat, 0.1), (meta(c), meta(c))
    elif name == "batch_norm_gather_stats":
        args, out = (x, meta(world, c), meta(world, c), stat, stat, 0.1, 1e-5, n * hw), (meta(c), meta(c))
    elif name == "batch_norm_gather_stats_with_counts":
        args, out = (x, meta(world, c), meta(world, c), stat, stat, 0.1, 1e-5, meta(world)), (meta(c), meta(c))
    elif name == "batch_norm_backward_reduce":
        args, out = (g, x, stat, stat, stat, True, True, True), (meta(c), meta(c), meta(c), meta(c))
    else:
        args, out = (g, x, stat, stat, stat, stat, stat, meta(world, dtype=torch.int32)), torch.empty_like(x)
    return op, args, {}, out  # CUDA kernels: no meta implementation needed for the formulas


@builder("mkldnn_adaptive_avg_pool2d")
def build_mkldnn_adaptive(name, draw):
    n, c = dims(draw, 2, 1, 3)
    x = meta(n, c, *dims(draw, 2, 2, 6))
    size = dims(draw, 2, 1, 2)
    return aten.mkldnn_adaptive_avg_pool2d.default, (x, size), {}, meta(n, c, *size)


def sparse_call(name, draw):
    """Sparse products on small CPU tensors (meta has no sparse CSR kernels); returns the expected MACs."""
    m, k, n = dims(draw, 3, 1, 6)
    dense = torch.randn(m, k) * (torch.rand(m, k) > draw(st.sampled_from([0.0, 0.5, 1.0])))
    a = dense.to_sparse_csr()
    nnz = a._nnz()
    if name == "sparse_sampled_addmm":  # a is [m, k] here: the sampled product mat1 [m, n] @ mat2 [n, k]
        op, args = aten.sparse_sampled_addmm.default, (a, torch.randn(m, n), torch.randn(n, k))
        return op, args, {}, op(*args), nnz * n
    other = torch.randn(k, n)
    out = aten._sparse_mm_reduce_impl.default(a, other, "sum")
    if name == "_sparse_mm_reduce_impl":
        return aten._sparse_mm_reduce_impl.default, (a, other, "sum"), {}, out, nnz * n
    mask = [draw(st.booleans()), draw(st.booleans())]
    args = (a, torch.randn(m, n), other, "sum", out[1], mask)
    result = (a if mask[0] else None, torch.empty(k, n) if mask[1] else None)  # formulas read only the mask
    return aten._sparse_mm_reduce_impl_backward.default, args, {}, result, nnz * n * sum(mask)


@settings(max_examples=20, **SETTINGS)
@given(data=st.data())
def test_sparse_products_count_stored_elements(data):
    name = data.draw(st.sampled_from(["sparse_sampled_addmm", "_sparse_mm_reduce_impl",
                                      "_sparse_mm_reduce_impl_backward"]))
    op, args, kwargs, out, want = sparse_call(name, data.draw)
    flops, macs, _ = check(op, args, kwargs, out, family="sparse_matmul")
    extra = 3 * args[0]._nnz() if name == "sparse_sampled_addmm" else 0  # beta*self + alpha*(.) per stored element
    assert (flops, macs) == (2 * want + extra, want)


@builder("_ctc_loss", "_ctc_loss_backward")
def build_ctc(name, draw):
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    t, n, c, s = dims(draw, 4, 1, 6)
    batched = draw(st.booleans())
    lp = meta([t, n, c] if batched else [t, c], dtype=dtype)
    targets = meta([n, s] if batched else [s], dtype=torch.int64)
    lengths = ([t] * n, [s] * n) if batched else ([t], [s])
    alpha_shape = ([n] if batched else []) + [t, 2 * s + 1]
    op = overload_of(name)
    if name == "_ctc_loss":
        args = (lp, targets, *lengths, 0, False)
        fallback = lambda: (meta([n] if batched else [], dtype=dtype), meta(alpha_shape, dtype=dtype))  # noqa: E731
    else:
        nll = meta([n] if batched else [], dtype=dtype)
        args = (meta(nll.shape, dtype=dtype), lp, targets, *lengths, nll, meta(alpha_shape, dtype=dtype), 0, False)
        fallback = lambda: meta(lp.shape, dtype=dtype)  # noqa: E731
    return op, args, {}, run_or(op, args, {}, fallback)


@builder("torch_nn::_linear_cross_entropy_batch_chunked", "torch_nn::_linear_cross_entropy_batch_chunked_no_reduction")
def build_linear_cross_entropy(name, draw):
    import torch.nn.modules.linear_cross_entropy  # noqa: F401 - registers the torch_nn custom ops

    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    n, d, v = dims(draw, 3, 1, 8)
    x, w, t = meta(n, d, dtype=dtype), meta(v, d, dtype=dtype), meta(n, dtype=torch.int64)
    bias = meta(v, dtype=dtype) if draw(st.booleans()) else None
    op = getattr(torch.ops.torch_nn, name.partition("::")[2]).default
    if name.endswith("no_reduction"):
        args = (x, w, t, bias, None, -100, 4, "auto", dtype)
        fallback = lambda: meta(n, dtype=dtype)  # noqa: E731
    else:
        flags = [draw(st.booleans()) for _ in range(3)]
        args = (x, w, t, bias, None, "mean", -100, 0.0, 4, "auto", dtype, False, *flags)
        fallback = lambda: (meta((), dtype=dtype), meta(n, d, dtype=dtype), meta(v, d, dtype=dtype), meta(v, dtype=dtype))  # noqa: E731
    return op, args, {}, run_or(op, args, {}, fallback)


@builder("sparse_sampled_addmm", "_sparse_mm_reduce_impl", "_sparse_mm_reduce_impl_backward")
def build_sparse_matmul(name, draw):
    m, k, n = dims(draw, 3, 1, 6)
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    cols = n if name == "sparse_sampled_addmm" else k  # sampled: self [m, n]; sparse.mm: self [m, k]
    dense_mask = torch.rand(m, cols) < draw(st.sampled_from([0.0, 0.3, 1.0]))
    sparse = (torch.rand(m, cols, dtype=dtype) * dense_mask).to_sparse_csr()  # CPU: a real nnz
    op = overload_of(name)
    if name == "sparse_sampled_addmm":
        args = (sparse, torch.rand(m, k, dtype=dtype), torch.rand(k, n, dtype=dtype))
    elif name == "_sparse_mm_reduce_impl":
        args = (sparse, torch.rand(k, n, dtype=dtype), draw(st.sampled_from(["sum", "mean", "amax"])))
    else:
        args = (sparse, torch.rand(m, n, dtype=dtype), torch.rand(k, n, dtype=dtype), "sum",
                torch.zeros(0, dtype=torch.int64), [draw(st.booleans()), draw(st.booleans())])
    return op, args, {}, run_or(op, args, {}, lambda: (torch.zeros(m, n, dtype=dtype),))


# ---- ops declared by the gaps branch whose schemas the generic filler cannot build (CPU tensors
# where meta has no kernel) ---------------------------------------------------------------------------

def _gaps_call(name, draw):
    n, c, h, w = dims(draw, 4, 1, 5)
    x = torch.rand(n, c, h, w)
    o = overload_of(name)
    if name in ("_aminmax", "_logcumsumexp"):
        args = (x,) if name != "_logcumsumexp" else (x, draw(st.integers(0, 3)))
    elif name in ("_cummax_helper", "_cummin_helper"):
        args = (x, torch.empty_like(x), torch.empty(x.shape, dtype=torch.long), draw(st.integers(0, 3)))
    elif name in ("_standard_gamma_grad",):
        args = (x + 0.5, x + 0.1)
    elif name == "_dirichlet_grad":
        args = (x * 0.5 + 0.1, x + 0.5, x + 2)
    elif name.startswith("fake_quantize_per_tensor") or name == "_fake_quantize_per_tensor_affine_cachemask_tensor_qparams":
        if name.startswith("_"):
            args = (x, torch.tensor([0.1]), torch.tensor([0], dtype=torch.int32), torch.tensor([1]), 0, 255)
        else:
            args = (x, 0.1, 0, 0, 255)
    elif name == "fake_quantize_per_channel_affine_cachemask":
        args = (x, torch.full((c,), 0.1), torch.zeros(c, dtype=torch.int32), 1, 0, 255)
    elif name == "_fake_quantize_learnable_per_tensor_affine":
        args = (x, torch.tensor([0.1]), torch.tensor([0.0]), 0, 255)
    elif name == "_fake_quantize_learnable_per_channel_affine":
        args = (x, torch.full((c,), 0.1), torch.zeros(c), 1, 0, 255)
    elif name == "_transform_bias_rescale_qkv":
        heads = draw(st.integers(1, 3))
        d = heads * h
        args = (torch.rand(n, w, 3 * d), torch.rand(3 * d), heads)
    elif name.startswith("_upsample_lanczos2d_aa."):
        args = (x, [draw(st.integers(1, 6)), draw(st.integers(1, 6))], draw(st.booleans()))
        if name.endswith(".out"):
            return o, args, {"out": torch.empty(0)}
    elif name == "conj_physical.out":
        z = torch.rand(n, c, dtype=draw(st.sampled_from([torch.float32, torch.complex64])))
        return o, (z,), {"out": torch.empty(0, dtype=z.dtype)}
    elif name == "_upsample_lanczos2d_aa_backward":
        oh, ow = dims(draw, 2, 1, 6)
        args = (torch.rand(n, c, oh, ow), [oh, ow], [n, c, h, w], draw(st.booleans()))
    elif name.startswith("adaptive_avg_pool"):
        r = int(name[len("adaptive_avg_pool")])
        if name.endswith("backward.grad_input"):
            y = torch.rand(n, c, h, w, 2)
            return o, (torch.rand(n, c, 1, 2, 1), y), {"grad_input": torch.empty(0)}
        t = torch.rand((n, c, h, w, 3)[:2 + r])
        return o, (t, [draw(st.integers(1, 2))] * r), {"out": torch.empty(0)}
    elif name == "mkldnn_adaptive_avg_pool2d_backward":
        args = (torch.rand(n, c, 1, 1), x)
    elif name in ("max_pool2d_backward", "mkldnn_max_pool2d_backward", "mkldnn_max_pool3d_backward"):
        r = 3 if "3d" in name else 2
        t = torch.rand((n, c, h + 1, w + 1, 2)[:2 + r])
        y = torch.nn.functional.max_pool2d(t, 2, 1) if r == 2 else torch.nn.functional.max_pool3d(t, 2, 1)
        args = (y, t, [2] * r, [1] * r) if name == "max_pool2d_backward" else (y, y, t, [2] * r, [1] * r)
    elif name in ("affine_grid_generator", "cudnn_affine_grid_generator"):
        theta = torch.rand(n, 2, 3)
        args = (theta, [n, c, h, w], False) if name == "affine_grid_generator" else (theta, n, c, h, w)
    elif name == "cudnn_affine_grid_generator_backward":
        args = (torch.rand(n, h, w, 2), n, c, h, w)
    elif name == "glu_jvp":
        t = torch.rand(n, c, h, 2 * w)
        args = (torch.nn.functional.glu(t, -1), t, torch.rand_like(t), -1)
    elif name in ("log_softmax.int_out", "softmax.int_out"):
        return o, (x, draw(st.integers(0, 3))), {"out": torch.empty(0)}
    elif name == "_cholesky_solve_helper":
        k = draw(st.integers(1, 4))
        args = (torch.rand(h, k, dtype=torch.float64), torch.eye(h, dtype=torch.float64), draw(st.booleans()))
    elif name == "_linalg_eigvals":
        args = (torch.rand(n, h, h, dtype=torch.float64),)
    elif name == "avg_pool1d.out":
        t = torch.rand(n, c, h + 2)
        return o, (t, [draw(st.integers(1, 3))]), {"out": torch.empty(0)}
    else:
        raise AssertionError(name)
    return o, args, {}


GAPS_BUILT = ["_aminmax", "_logcumsumexp", "_cummax_helper", "_cummin_helper", "_standard_gamma_grad",
              "_dirichlet_grad", "fake_quantize_per_tensor_affine_cachemask",
              "_fake_quantize_per_tensor_affine_cachemask_tensor_qparams", "fake_quantize_per_channel_affine_cachemask",
              "_fake_quantize_learnable_per_tensor_affine", "_fake_quantize_learnable_per_channel_affine",
              "_transform_bias_rescale_qkv", "_upsample_lanczos2d_aa.default", "_upsample_lanczos2d_aa.out",
              "_upsample_lanczos2d_aa_backward", "conj_physical.out",
              "adaptive_avg_pool1d.out", "adaptive_avg_pool2d.out", "adaptive_avg_pool3d.out",
              "adaptive_avg_pool3d_backward.grad_input", "mkldnn_adaptive_avg_pool2d_backward", "max_pool2d_backward",
              "mkldnn_max_pool2d_backward", "mkldnn_max_pool3d_backward", "affine_grid_generator",
              "cudnn_affine_grid_generator", "cudnn_affine_grid_generator_backward", "glu_jvp", "log_softmax.int_out",
              "softmax.int_out", "_cholesky_solve_helper", "_linalg_eigvals", "avg_pool1d.out"]
CPU_ONLY_GAPS = {"max_pool2d_backward", "cudnn_affine_grid_generator", "cudnn_affine_grid_generator_backward", "mkldnn_adaptive_avg_pool2d_backward",
                 "mkldnn_max_pool2d_backward", "mkldnn_max_pool3d_backward"}


@builder(*GAPS_BUILT)
def build_gaps(name, draw):
    op, args, kwargs = _gaps_call(name, draw)
    if name in CPU_ONLY_GAPS:  # no CPU kernel (cuDNN) or an MKLDNN-layout one: a result of the right shape
        shape = {"cudnn_affine_grid_generator": lambda: (args[1], args[3], args[4], 2),
                 "cudnn_affine_grid_generator_backward": lambda: (args[1], 2, 3),
                 "mkldnn_adaptive_avg_pool2d_backward": lambda: args[1].shape}.get(name, lambda: args[-3].shape)()
        return op, args, kwargs, run_or(op, args, kwargs, lambda: torch.empty(shape))
    return op, args, kwargs, op(*args, **kwargs)


@builder("_cudnn_ctc_loss", "miopen_ctc_loss")
def build_fused_ctc(name, draw):
    """cuDNN/MIOpen CTC (no CPU kernel): [T, N, C] or [T, C] log-probs, lengths as a list or a CPU tensor."""
    t, n, c = dims(draw, 3, 1, 6)
    lengths = [draw(st.integers(0, 4)) for _ in range(n)]
    batched = draw(st.booleans())
    log_probs = meta((t, n, c) if batched else (t, c), dtype=draw(st.sampled_from(FLOATS)))
    if not batched:
        lengths = lengths[:1]
    op = overload_of(name)
    target_lengths = lengths
    if draw(st.booleans()):
        op = getattr(aten, name).Tensor
        target_lengths = torch.tensor(lengths)
    args = (log_probs, torch.zeros(sum(lengths), dtype=torch.int32), [t] * len(lengths), target_lengths, 0, True,
            False)
    out = (meta((n,) if batched else ()), torch.empty_like(log_probs))
    return op, args, {}, out


# Any other declared elementwise op or reduction gets the schema-driven builder.
GENERIC_FALLBACK = sorted(n for f in ("elementwise", "reduce") for n in OPS_BY_FAMILY[f] if n not in BUILDERS)


def _generic_builder(n):
    return lambda draw: generic_call(n, draw, ANY_DTYPE, same_shape=TABLE[n][0] == "reduce")


for _name in GENERIC_FALLBACK:
    BUILDERS[_name] = _generic_builder(_name)


# ---------------------------------------------------------------------------------------------------
# Coverage: every declared formula op has a builder, and every family one op at least
# ---------------------------------------------------------------------------------------------------

def test_every_declared_formula_op_has_a_builder():
    assert sorted(n for n in BUILDERS if n not in MISSING_HERE) == ALL_FORMULA_OPS
    for family in FORMULA_FAMILIES:
        assert OPS_BY_FAMILY[family], family


def test_rows_for_ops_this_torch_lacks_are_recorded_and_idle():
    """The record of idle rows is exact (checked op by op against torch.ops.aten), and an idle
    row breaks nothing: the table still builds and every present op still resolves to its row."""
    for key in TABLE:
        if "::" in key:
            continue
        base, _, overload = key.partition(".")
        try:
            packet = getattr(aten, base)
            if overload:
                getattr(packet, overload)
            present = True
        except AttributeError:
            present = False
        assert present == (key not in MISSING_HERE), key
    # cholesky's row stays in the table whatever the torch; its successor resolves as before
    assert "cholesky" in TABLE and declaration(aten.linalg_cholesky_ex.default)[1] == "linalg"


@pytest.mark.slow
def test_generic_builders_find_a_runnable_overload():
    missing = [n for n in GENERIC_FALLBACK if not usable_overloads(n)]
    assert missing == []


# ---------------------------------------------------------------------------------------------------
# The sweep: every declared op, a few random shapes each (known discrepancies xfail strictly)
# ---------------------------------------------------------------------------------------------------

def _op_param(name):
    marks = ([pytest.mark.xfail(strict=True, raises=KNOWN_RAISES.get(name, AssertionError),
                                reason=KNOWN_DISCREPANCIES[name])] if name in KNOWN_DISCREPANCIES else [])
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.slow  # every declared op (the family sweep below samples them in the quick subset)
@pytest.mark.parametrize("name", [_op_param(n) for n in ALL_FORMULA_OPS])
@settings(max_examples=OP_EXAMPLES, **SETTINGS)
@given(data=st.data())
def test_each_declared_op_cpp_matches_python(name, data):
    op, args, kwargs, out = BUILDERS[name](data.draw)
    check(op, args, kwargs, out, family=TABLE[name][0])


def _sampled(family):
    return st.sampled_from([n for n in OPS_BY_FAMILY[family] if n not in KNOWN_DISCREPANCIES])


SLOW_FAMILIES = {"conv", "conv_backward", "grid_sampler"}  # several seconds per 40 examples


@pytest.mark.parametrize("family", [pytest.param(f, marks=[pytest.mark.slow] if f in SLOW_FAMILIES else [])
                                    for f in FORMULA_FAMILIES])
@settings(max_examples=FAMILY_EXAMPLES, **SETTINGS)
@given(data=st.data())
def test_family_cpp_matches_python(family, data):
    name = data.draw(_sampled(family), label="op")
    op, args, kwargs, out = BUILDERS[name](data.draw)
    check(op, args, kwargs, out, family=family)


# ---------------------------------------------------------------------------------------------------
# Family tests with independent expectations
# ---------------------------------------------------------------------------------------------------

@settings(max_examples=40, **SETTINGS)
@given(data=st.data())
def test_matmul_macs(data):
    """mm/bmm/addmm/baddbmm/addbmm/addmv/addr/mv/dot: MACs = product of the distinct dims."""
    name = data.draw(st.sampled_from(["mm", "bmm", "mv", "dot", "addmm", "baddbmm", "addbmm",
                                      "addmv", "addr", "_addmm_activation"]))
    op, args, kwargs, out = BUILDERS[name](data.draw)
    flops, macs, masked = check(op, args, kwargs, out, family="matmul")
    a, b = (args[1], args[2]) if name.startswith("add") or name in ("baddbmm", "_addmm_activation") else args[:2]
    if name == "addr":
        want = a.numel() * b.numel()  # m * n
    elif b.dim() == 1:
        want = a.numel()  # mv/dot/addmv: m * k (or k)
    else:
        want = a.numel() * b.shape[-1]  # [.., m, k] @ [.., k, n]: batch * m * k * n
    assert macs == want
    assert masked == 0
    bias_flops = out.numel() if name.startswith("add") or name in ("baddbmm", "_addmm_activation") else 0
    assert flops == 2 * macs + bias_flops


@settings(max_examples=25, **SETTINGS)
@given(data=st.data())
def test_grouped_mm_macs(data):
    """MoE grouped mm (2d x 3d, 3d x 3d, 2d x 2d, 3d x 2d): one K-long dot product per output element."""
    name = data.draw(st.sampled_from(["_grouped_mm", "_scaled_grouped_mm"]))
    op, args, kwargs, out, want = grouped_mm_call(name, data.draw)
    flops, macs, _ = check(op, args, kwargs, out, family="matmul")
    assert macs == want
    assert flops == 2 * macs + (out.numel() if args[3 if name == "_grouped_mm" else 5] is not None else 0)


@settings(max_examples=40, **SETTINGS)
@given(data=st.data())
def test_conv_macs_all_ranks_groups_strides_transposed(data):
    name = data.draw(st.sampled_from(["convolution", "_convolution", "mkldnn_convolution", "cudnn_convolution"]))
    op, args, kwargs, out, cfg = conv_call(name, data.draw)
    flops, macs, _ = check(op, args, kwargs, out, family="conv")
    x = args[0]
    assert macs == conv_expected_macs(cfg, x, out)
    assert flops == 2 * macs + (out.numel() if cfg["bias"] else 0)


@settings(max_examples=40, **SETTINGS)
@given(data=st.data())
def test_conv_backward_output_mask(data):
    op, args, kwargs, out, cfg, mask, x, grad = conv_backward_call(data.draw)
    flops, macs, _ = check(op, args, kwargs, out, family="conv_backward")
    fwd = conv_expected_macs(cfg, x, grad)
    assert macs == fwd * (int(mask[0]) + int(mask[1]))  # grad_input and grad_weight: one forward each
    assert flops == 2 * macs + (grad.numel() if mask[2] else 0)  # grad_bias: a sum over grad_out


@pytest.mark.parametrize("name", OPS_BY_FAMILY["attention"])
@settings(max_examples=25, **SETTINGS)
@given(data=st.data())
def test_attention_kernels(name, data):
    """Every declared attention kernel: GQA, causal (top-left/bottom-right), Sq != Sk, masks, backward."""
    op, args, kwargs, out, cfg = attention_call(name, data.draw)
    flops, macs, masked = check(op, args, kwargs, out, family="attention")
    scores = cfg["batch"] * cfg["h"] * cfg["sq"] * cfg["sk"]  # query heads count (GQA)
    per_score = 3 * cfg["d"] + 2 * cfg["dv"] if cfg["backward"] else cfg["d"] + cfg["dv"]
    assert macs == scores * per_score
    if cfg["causal"]:
        kept = cfg["batch"] * cfg["h"] * brute_kept(cfg["sq"], cfg["sk"], cfg["bottom_right"])
        assert masked == (scores - kept) * per_score
    else:
        assert masked == 0


@settings(max_examples=60, **SETTINGS)
@given(sq=st.integers(0, 40), sk=st.integers(0, 40), bottom_right=st.booleans())
def test_causal_kept_matches_brute_force(sq, sk, bottom_right):
    brute = brute_kept(sq, sk, bottom_right) if sq and sk else 0
    assert _reference.causal_kept(sq, sk, bottom_right) == brute


@settings(max_examples=40, **SETTINGS)
@given(b=st.integers(1, 3), h=st.integers(1, 4), sq=st.integers(1, 24), sk=st.integers(1, 24),
       d=st.integers(1, 8), dv=st.integers(1, 8), mask_type=st.sampled_from([1, 2]), backward=st.booleans())
def test_cpp_masked_macs_equal_dense_minus_kept(b, h, sq, sk, d, dv, mask_type, backward):
    """C++ masked MACs == (dense scores - tril-counted kept scores) * per-score MACs."""
    q, k, v, o = meta(b, sq, h, d), meta(b, sk, h, d), meta(b, sk, h, dv), meta(b, sq, h, dv)
    if backward:
        op = aten._efficient_attention_backward.default
        args = (o, q, k, v, None, o, None, None, sq, sk, meta(b, h, sq), 0.0, meta(()), meta(()), mask_type, False)
        per_score = 3 * d + 2 * dv
    else:
        op = aten._efficient_attention_forward.default
        args = (q, k, v, None, None, None, sq, sk, 0.0, mask_type, True)
        per_score = d + dv
    out = op(*args)
    _, macs, masked = compiled_cost(op, args, {}, out)
    dense = b * h * sq * sk
    kept = b * h * brute_kept(sq, sk, bottom_right=mask_type == 2)
    assert macs == dense * per_score
    assert masked == (dense - kept) * per_score


@settings(max_examples=40, **SETTINGS)
@given(data=st.data())
def test_norm_costs(data):
    """Per input element: cost (eval batch norm: cost_eval) + 1 for a weight + 1 for a bias; 0 if not floating."""
    name = data.draw(st.sampled_from(OPS_BY_FAMILY["norm"]))
    op, args, kwargs, out = norm_call(name, data.draw)
    flops, macs, _ = check(op, args, kwargs, out, family="norm")
    p = dict(zip(FAMILY_PARAMS["norm"], TABLE[name][1]))
    names = [a.name for a in op._schema.arguments]
    arg = lambda i: args[i] if i < len(args) else kwargs.get(names[i])  # noqa: E731
    x = arg(p["input"])
    per = p["cost_eval"] if p["training"] >= 0 and arg(p["training"]) is False else p["cost"]
    per += sum(isinstance(arg(p[w]), torch.Tensor) for w in ("weight", "bias") if p[w] >= 0)
    assert macs == 0
    assert flops == (per * x.numel() if x.dtype.is_floating_point else 0)


@settings(max_examples=40, **SETTINGS)
@given(data=st.data())
def test_norm_backward_output_mask(data):
    name = data.draw(st.sampled_from(["native_layer_norm_backward", "native_group_norm_backward",
                                      "native_batch_norm_backward", "batch_norm_backward",
                                      "cudnn_batch_norm_backward", "miopen_batch_norm_backward"]))
    op, args, kwargs, out, mask = norm_backward_call(name, data.draw)
    flops, _, _ = check(op, args, kwargs, out, family="norm_backward")
    per = 8 * mask[0] + 2 * mask[1] + 1 * mask[2]  # cost_input, cost_weight, cost_bias
    assert flops == per * args[0].numel()


@settings(max_examples=10, **SETTINGS)
@given(data=st.data())
def test_rms_norm_backward_output_mask(data):
    op, args, kwargs, out, mask = norm_backward_call("_fused_rms_norm_backward", data.draw)
    flops, _, _ = check(op, args, kwargs, out, family="norm_backward")
    assert flops == (6 * mask[0] + 2 * mask[1]) * args[0].numel()


@settings(max_examples=40, **SETTINGS)
@given(data=st.data())
def test_pool_windows(data):
    """Kernel as int, as a 1-list (expanded to every spatial dim) and as a full-length list."""
    name = data.draw(st.sampled_from(sorted(POOL_RANK)))
    op, args, kwargs, out, window = pool_call(name, data.draw)
    flops, macs, _ = check(op, args, kwargs, out, family="pool")
    counted = args[0] if name.endswith("backward") else (out[0] if isinstance(out, tuple) else out)
    floating = counted.dtype.is_floating_point
    assert macs == 0
    assert flops == (window * counted.numel() if floating else 0)


@pytest.mark.skipif("rnn" not in FAMILY_PARAMS, reason="no rnn family declared")
@settings(max_examples=25, **SETTINGS)
@given(data=st.data())
def test_rnn_layer(data):
    name = data.draw(st.sampled_from(["mkldnn_rnn_layer", "mkldnn_rnn_layer_backward"]))
    op, args, kwargs, out, (rows, i, h) = rnn_call(name, data.draw)
    _, macs, _ = check(op, args, kwargs, out, family="rnn")
    products = TABLE[name][1][FAMILY_PARAMS["rnn"].index("products")]
    assert macs == rows * (4 * h * i + 4 * h * h) * products  # steps*batch * (W_ih + W_hh) per product


@settings(max_examples=30, **SETTINGS)
@given(data=st.data())
def test_mha_fast_path(data):
    op, args, kwargs, out, (b, l, s, e, h, qkv_bias, proj_bias) = mha_call(data.draw)
    flops, macs, _ = check(op, args, kwargs, out, family="mha")
    # q, k, v, out projections + QK^T and attn@V summed over heads
    assert macs == b * l * e * e + 2 * b * s * e * e + 2 * b * l * s * e + b * l * e * e


@settings(max_examples=30, **SETTINGS)
@given(data=st.data())
def test_encoder_layer(data):
    op, args, kwargs, out, (b, l, e, h, f, gelu) = encoder_call(data.draw)
    _, macs, _ = check(op, args, kwargs, out, family="encoder_layer")
    assert macs == 4 * b * l * e * e + 2 * b * l * l * e + 2 * b * l * e * f  # 4 projections, attention, FFN


@settings(max_examples=40, **SETTINGS)
@given(data=st.data())
def test_elementwise_dtypes(data):
    """Non-floating calls cost nothing; floating elementwise calls cost `cost` per output element."""
    name = data.draw(st.sampled_from(OPS_BY_FAMILY["elementwise"]))
    op, args, kwargs, out = BUILDERS[name](data.draw)
    flops, macs, _ = check(op, args, kwargs, out, family="elementwise")
    first_out = out[0] if isinstance(out, (tuple, list)) else out
    floating = any(isinstance(t, torch.Tensor) and (t.dtype.is_floating_point or t.dtype.is_complex)
                   for t in (first_out, *args[:2]))
    cost = TABLE[name][1][0]
    assert macs == 0
    assert flops == (cost * first_out.numel() if floating else 0)


# ---------------------------------------------------------------------------------------------------
# Hand counts (arithmetic beside each expected number)
# ---------------------------------------------------------------------------------------------------

def both(op, args, kwargs=None, out=RUN):
    return check(op, args, kwargs, out)


def test_hand_mm():
    flops, macs, _ = both(aten.mm.default, (meta(4, 6), meta(6, 5)))
    assert macs == 4 * 6 * 5  # m*k*n = 120
    assert flops == 2 * 120  # 2 FLOPs per MAC = 240


def test_hand_addmm_bias_flops():
    flops, macs, _ = both(aten.addmm.default, (meta(5), meta(4, 6), meta(6, 5)))
    assert macs == 4 * 6 * 5  # m*k*n = 120
    assert flops == 2 * 120 + 4 * 5  # 240 matmul + one bias add per output element (20) = 260


def test_hand_bmm():
    flops, macs, _ = both(aten.bmm.default, (meta(3, 4, 6), meta(3, 6, 5)))
    assert macs == 3 * 4 * 6 * 5  # b*m*k*n = 360
    assert flops == 720  # 2 * 360


def test_hand_conv2d_grouped_strided():
    x, w, b = meta(2, 4, 8, 8), meta(6, 2, 3, 3), meta(6)  # C_in 4, C_out 6, groups 2 -> C_in/g = 2
    out = aten.convolution.default(x, w, b, [2, 2], [1, 1], [1, 1], False, [0, 0], 2)
    assert tuple(out.shape) == (2, 6, 4, 4)  # (8 + 2 - 3) // 2 + 1 = 4
    flops, macs, _ = both(aten.convolution.default, (x, w, b, [2, 2], [1, 1], [1, 1], False, [0, 0], 2), out=out)
    assert macs == 2 * 4 * 4 * 6 * 2 * 3 * 3  # N*Hout*Wout*Cout*(Cin/g)*kh*kw = 3456
    assert flops == 2 * 3456 + 2 * 6 * 4 * 4  # + bias per output element (192) = 7104


def test_hand_conv_transposed():
    x, w = meta(1, 4, 5, 5), meta(4, 3, 3, 3)  # transposed weight [C_in, C_out/g, kh, kw]
    args = (x, w, None, [2, 2], [0, 0], [1, 1], True, [0, 0], 1)
    out = aten.convolution.default(*args)
    assert tuple(out.shape) == (1, 3, 11, 11)  # (5 - 1) * 2 + 3 = 11
    flops, macs, _ = both(aten.convolution.default, args, out=out)
    assert macs == 1 * 4 * 5 * 5 * 3 * 3 * 3  # N*Cin*Hin*Win*(Cout/g)*kh*kw = 2700
    assert flops == 5400  # 2 * 2700, no bias


def test_hand_conv_backward_mask():
    x, w = meta(2, 4, 8, 8), meta(6, 2, 3, 3)
    grad = meta(2, 6, 4, 4)  # output of the grouped strided conv above
    args = (grad, x, w, [6], [2, 2], [1, 1], [1, 1], False, [0, 0], 2, [True, False, True])
    flops, macs, _ = both(aten.convolution_backward.default, args)
    assert macs == 3456  # grad_input only: one forward's MACs (2*4*4*6*2*3*3)
    assert flops == 2 * 3456 + 2 * 6 * 4 * 4  # + grad_bias sum over grad_out (192) = 7104


def test_hand_sdpa_forward_and_backward_cpu_kernel():
    q, k, v = (torch.randn(2, 4, s, 8, requires_grad=True) for s in (5, 7, 7))  # B=2 H=4 Sq=5 Sk=7 D=8
    with fd.count() as c:
        F.scaled_dot_product_attention(q, k, v).sum().backward()
    fwd = c.ops("forward")["aten::_scaled_dot_product_flash_attention_for_cpu"]
    bwd = c.ops("backward")["aten::_scaled_dot_product_flash_attention_for_cpu_backward"]
    assert fwd["macs"] == 2 * 4 * 5 * 7 * (8 + 8)  # B*H*Sq*Sk*(Dqk+Dv) = 4480
    assert fwd["flops"] == 2 * 4480 + 6 * (2 * 4 * 5 * 7)  # + scale & softmax, 6 per score (280) = 10640
    assert bwd["macs"] == 2 * 4 * 5 * 7 * (3 * 8 + 2 * 8)  # B*H*Sq*Sk*(3*Dqk+2*Dv) = 11200
    assert bwd["flops"] == 2 * 11200 + 5 * 280  # + 5 per score = 23800
    assert c.unsupported == {}


def test_hand_causal_masked_macs():
    q = meta(1, 2, 4, 8)  # B=1 H=2 Sq=Sk=4 D=8
    op = aten._scaled_dot_product_flash_attention_for_cpu.default
    _, macs, masked = both(op, (q, q, q, 0.0, True))
    assert macs == 1 * 2 * 4 * 4 * 16  # B*H*Sq*Sk*(D+Dv) = 512
    assert masked == 2 * (16 - 10) * 16  # kept 1+2+3+4 = 10 of 16 per head -> 6 masked * 16 * 2 heads = 192
    # Bottom-right alignment, Sq=2 Sk=5: row 0 keeps 4 (j <= 0 + 3), row 1 keeps 5 -> 9 of 10 kept.
    q2, k2 = meta(1, 2, 1, 8), meta(1, 5, 1, 8)
    op2 = aten._efficient_attention_forward.default
    _, macs2, masked2 = both(op2, (q2, k2, k2, None, None, None, 2, 5, 0.0, 2, True))
    assert macs2 == 2 * 5 * 16  # Sq*Sk*(D+Dv) = 160
    assert masked2 == (10 - 9) * 16  # 1 masked score * 16 = 16


def test_hand_layer_norm():
    x = meta(3, 10)
    flops, macs, _ = both(aten.native_layer_norm.default, (x, [10], meta(10), meta(10), 1e-5))
    assert (flops, macs) == ((5 + 1 + 1) * 3 * 10, 0)  # (5 + weight + bias) per element * 30 = 210


def test_hand_softmax():
    flops, _, _ = both(aten._softmax.default, (meta(3, 10), -1, False))
    assert flops == 5 * 3 * 10  # max, subtract, exp, sum, divide per element = 150


def test_hand_max_pool():
    flops, _, _ = both(aten.max_pool2d_with_indices.default, (meta(1, 2, 6, 6), [2, 2], [2, 2]))
    assert flops == (2 * 2) * (1 * 2 * 3 * 3)  # window 4 * output elements 18 = 72
    flops1, _, _ = both(aten.max_pool2d_with_indices.default, (meta(1, 2, 6, 6), [2], [2]))
    assert flops1 == 72  # a 1-list kernel [2] means 2x2: same 72


def test_hand_adaptive_avg_pool():
    flops, _, _ = both(aten._adaptive_avg_pool2d.default, (meta(1, 2, 6, 6), [3, 3]))
    assert flops == 1 * 72 + 1 * 18  # 1 per input element (2*6*6 = 72) + 1 per output element (2*3*3 = 18) = 90


def test_hand_foreach():
    flops, _, _ = both(aten._foreach_mul.Scalar, ([meta(3, 4), meta(5)], 0.5))
    assert flops == 1 * (12 + 5)  # one multiply per element of the list = 17


def test_hand_fused_adamw_():
    params = [meta(3, 4), meta(5)]
    like = lambda: [meta(3, 4), meta(5)]  # noqa: E731
    args = (params, like(), like(), like(), [], [meta(()), meta(())])
    kwargs = dict(lr=1e-3, beta1=0.9, beta2=0.999, weight_decay=0.01, eps=1e-8, amsgrad=False, maximize=False)
    flops, macs, _ = both(aten._fused_adamw_.default, args, kwargs)
    assert (flops, macs) == (14 * (12 + 5), 0)  # 14 per parameter element * 17 = 238


def test_hand_mha_fast_path():
    m = torch.nn.MultiheadAttention(16, 2, batch_first=True).eval()  # E=16, H=2
    x = torch.randn(1, 10, 16)  # B=1, L=S=10
    with torch.no_grad(), fd.count(m) as c:
        m(x, x, x)
    row = c.ops()["aten::_native_multi_head_attention"]
    # q proj 10*16*16 = 2560; k, v 2*2560 = 5120; QK^T + attn@V 2*10*10*16 = 3200; out proj 2560
    assert row["macs"] == 2560 + 5120 + 3200 + 2560  # = 13440
    # 2*13440 + softmax/scale 6*H*L*S (1200) + qkv bias 3*10*16 (480) + proj bias 10*16 (160) = 28720
    assert row["flops"] == 2 * 13440 + 1200 + 480 + 160
    assert c.macs == 13440
