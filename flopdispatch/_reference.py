"""Pure-Python reference of every formula family in ``csrc/formulas.cpp``.

This is the test oracle (written independently of the C++ so the two can be compared on random
shapes) and the path for symbolic shapes, where sizes are SymInts rather than ints. It reads the
same declaration table (``_ops.TABLE``). Results are (flops, macs, masked_macs), in operations.
"""
import math
import threading

import torch

from . import _ops
from ._ops import FAMILY_PARAMS


_SYMBOLIC = threading.local()  # .on: sizes stay symbolic (fd.symbolic), in this thread only


class symbolic_sizes:
    """Within: the formulas keep SymInt sizes as sympy expressions (no guard is added) instead of
    their hints, so that a cost comes out as an exact expression in the symbolic sizes."""

    def __enter__(self):
        self.was = getattr(_SYMBOLIC, "on", False)
        _SYMBOLIC.on = True

    def __exit__(self, *exc):
        _SYMBOLIC.on = self.was


def _is_expr(x):
    return not isinstance(x, int) and hasattr(x, "free_symbols")  # a sympy expression


def _min(*xs):
    if any(_is_expr(x) for x in xs):
        import sympy

        return sympy.Min(*xs)
    return min(xs)


def _max(*xs):
    if any(_is_expr(x) for x in xs):
        import sympy

        return sympy.Max(*xs)
    return max(xs)


def _concrete(x):
    """An int for an int or a SymInt (its hint, without adding a guard); under ``symbolic_sizes``,
    a SymInt's sympy expression instead (and a sympy expression as it is)."""
    if isinstance(x, int):
        return x
    if getattr(_SYMBOLIC, "on", False):
        if _is_expr(x):
            return x
        node = getattr(x, "node", None)
        expr = getattr(node, "expr", None) if node is not None else None
        if expr is not None:
            return int(expr) if expr.is_Integer else expr
    node = getattr(x, "node", None)
    hint = getattr(node, "hint", None) if node is not None else None
    return int(hint) if hint is not None else int(x)


class Call:
    """An op call's arguments, by schema position, with keyword fallback by name."""

    def __init__(self, args, kwargs, out, arg_names):
        self.args, self.kwargs, self.out, self.names = args, kwargs or {}, out, arg_names

    def arg(self, i):
        if i < 0:
            return None
        if i < len(self.args):
            return self.args[i]
        if i < len(self.names):
            return self.kwargs.get(self.names[i])
        return None

    def tensor(self, i):
        v = self.arg(i)
        if not isinstance(v, torch.Tensor):
            raise ValueError(f"argument {i} is not a tensor")
        return v

    def has_tensor(self, i):
        return isinstance(self.arg(i), torch.Tensor)

    def outputs(self):
        if isinstance(self.out, torch.Tensor):
            return [self.out]
        if isinstance(self.out, (tuple, list)):
            return [o for o in self.out if isinstance(o, torch.Tensor)]
        return []


def shape(t):
    return [_concrete(d) for d in t.shape]


def numel(t):
    if t.is_nested and t.layout == torch.strided:  # a nested tensor has no shape: its values
        return t.numel()
    return math.prod(shape(t))


def nbytes(value):
    """Bytes of a tensor or of the tensors in a list (logical sizes)."""
    if isinstance(value, torch.Tensor):
        return numel(value) * value.dtype.itemsize
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v) for v in value if isinstance(v, torch.Tensor))
    return 0


def bytes_moved(args, kwargs, out, overwritten):
    """(bytes_read, bytes_written): tensor inputs except out= and an overwritten destination."""
    read = sum(nbytes(a) for i, a in enumerate(args) if i != overwritten)
    read += sum(nbytes(v) for k, v in (kwargs or {}).items() if k != "out")
    return read, nbytes(out)


def _floating(t):
    return t.dtype.is_floating_point or t.dtype.is_complex


def _is_floating_call(call):
    outs = call.outputs()
    if outs and _floating(outs[0]):
        return True
    for i in (0, 1):
        a = call.arg(i)
        if isinstance(a, torch.Tensor) and _floating(a):
            return True
    return False


def _out_numel(call):
    outs = call.outputs()
    if not outs:
        raise ValueError("op returned no tensor")
    return numel(outs[0])


def _output_mask(v):
    """Which gradients a backward op computes: all when absent; unlisted entries are not requested."""
    mask = [True, True, True] if v is None else [bool(x) for x in v]
    return mask + [False] * (3 - len(mask))


def _int_list(v):
    if v is None:
        return []
    if isinstance(v, (int, bool)) or hasattr(v, "node"):
        return [_concrete(v)]
    return [_concrete(x) for x in v]


def matmul(p, c):
    a, b = c.tensor(p["a"]), c.tensor(p["b"])
    if p["kind"] == 1:
        macs = numel(a) * numel(b)
    elif p["kind"] == 2:
        macs = numel(a) * shape(b)[0]
    elif p["kind"] == 3 and len(shape(a)) == 3 and len(shape(b)) == 2:
        macs = _out_numel(c) * shape(a)[2]  # [G, M, K] x [K, N_total]: one K-long dot per output
    else:
        sb = shape(b)
        macs = numel(a) * (sb[-1] if len(sb) >= 2 else 1)
    flops = 2 * macs + (_out_numel(c) if c.has_tensor(p["bias"]) else 0)
    return flops, macs, 0


def _conv_macs(x, weight):
    w = shape(weight)
    if not w or w[0] == 0:
        return 0
    return numel(x) * math.prod(w[1:])


def conv(p, c):
    inp, weight = c.tensor(p["input"]), c.tensor(p["weight"])
    transposed = bool(p["always_transposed"]) or bool(c.arg(p["transposed"]) or False)
    out = c.outputs()[0]
    macs = _conv_macs(inp if transposed else out, weight)
    per_out = int(c.has_tensor(p["bias"])) + p["cost_out"]
    return 2 * macs + per_out * numel(out), macs, 0


def conv_backward(p, c):
    grad, inp, weight = c.tensor(p["grad_out"]), c.tensor(p["input"]), c.tensor(p["weight"])
    transposed = bool(c.arg(p["transposed"]) or False)
    mask = _output_mask(c.arg(p["output_mask"]))
    fwd = _conv_macs(inp if transposed else grad, weight)
    macs = fwd * (int(mask[0]) + int(mask[1]))
    return 2 * macs + (numel(grad) if mask[2] else 0), macs, 0


def causal_kept(sq, sk, bottom_right):
    """(query, key) pairs a causal mask keeps for one head, counted row by row."""
    shift = sk - sq if bottom_right else 0
    if _is_expr(sq) or _is_expr(sk):  # symbolic lengths: the same sum in closed form
        import sympy

        if bottom_right:  # rows i < sq - sk keep nothing, the last min(sq, sk) rows keep 1..sk
            return sympy.Piecewise((sq * (sk - sq) + sq * (sq + 1) / 2, sympy.Le(sq, sk)),
                                   (sk * (sk + 1) / 2, True))
        return sympy.Piecewise((sq * (sq + 1) / 2, sympy.Le(sq, sk)), (sk * (sk + 1) / 2 + (sq - sk) * sk, True))
    return sum(min(max(i + shift + 1, 0), sk) for i in range(sq))


def attention(p, c):
    if c.has_tensor(p["varlen"]) and numel(c.arg(p["varlen"])) > 0:  # dense calls pass None or empty
        raise ValueError("variable-length attention is not supported")
    q, k, v = c.tensor(p["q"]), c.tensor(p["q"] + 1), c.tensor(p["q"] + 2)
    sq_, sk_, sv_ = shape(q), shape(k), shape(v)
    if p["layout"] == 0:
        batch = math.prod(sq_[:-3])
        heads, sq, dqk = sq_[-3], sq_[-2], sq_[-1]
        sk, dv = sk_[-2], sv_[-1]
    else:
        if len(sq_) != 4:
            raise ValueError("variable-length attention is not supported")
        batch, sq, heads, dqk = sq_
        sk, dv = sk_[-3], sv_[-1]
    backward = bool(p["backward"])
    scores = batch * heads * sq * sk
    per_score = 3 * dqk + 2 * dv if backward else dqk + dv
    macs = scores * per_score
    flops = 2 * macs + scores * (5 if backward else 6)
    if not backward and c.has_tensor(p["mask"]):
        flops += scores
    masked = 0
    if p["causal"] >= 0:
        flag = c.arg(p["causal"]) or 0
        causal = bool(flag)
        bottom_right = p["causal_kind"] == 1 and int(flag) == 2
        if causal:
            masked = (scores - batch * heads * causal_kept(sq, sk, bottom_right)) * per_score
    return flops, macs, masked


def elementwise(p, c):
    if p["cost"] and _is_floating_call(c):
        times = _concrete(c.arg(p["times"])) if p["times"] >= 0 else 1
        return p["cost"] * _out_numel(c) * times, 0, 0
    return 0, 0, 0


def reduce(p, c):
    inp = c.tensor(p["input"])
    if not _is_floating_call(c):
        return 0, 0, 0
    if p["only_if"] >= 0 and not c.arg(p["only_if"]):
        return 0, 0, 0
    if p["diagonal"]:
        s = shape(inp)
        if len(s) < 2:
            raise ValueError("expected a matrix")
        counted = math.prod(s[:-2]) * _min(s[-2], s[-1])
    else:
        counted = numel(inp)
    flops = p["cost"] * counted
    if p["cost_out"]:
        outs = c.outputs()
        if len(outs) <= p["out_index"]:
            raise ValueError("reduction returned too few tensors")
        flops += p["cost_out"] * numel(outs[p["out_index"]])
    return flops, 0, 0


def norm(p, c):
    inp = c.tensor(p["input"])
    if not _floating(inp):
        return 0, 0, 0
    per = p["cost"]
    if p["training"] >= 0:
        training = c.arg(p["training"])
        if training is not None and not training:
            per = p["cost_eval"]
    per += int(c.has_tensor(p["weight"])) + int(c.has_tensor(p["bias"]))
    return per * numel(inp), 0, 0


def norm_backward(p, c):
    grad = c.tensor(p["grad"])
    mask = _output_mask(c.arg(p["output_mask"]))
    per = int(mask[0]) * p["cost_input"] + int(mask[1]) * p["cost_weight"] + int(mask[2]) * p["cost_bias"]
    return per * numel(grad), 0, 0


def pool(p, c):
    kernel = _int_list(c.arg(p["kernel"]))
    window = kernel[0] ** p["rank"] if len(kernel) == 1 else math.prod(kernel)
    counted = c.outputs()[0] if p["counted"] < 0 else c.tensor(p["counted"])
    if not _floating(counted):
        return 0, 0, 0
    return window * numel(counted), 0, 0


def foreach(p, c):
    tensors = c.arg(p["tensors"])
    if not isinstance(tensors, (list, tuple)):
        raise ValueError("expected a tensor list")
    total = sum(numel(t) for t in tensors if isinstance(t, torch.Tensor) and _floating(t))
    return p["cost"] * total, 0, 0


def _mha_block(lq, lk, pairs, e, heads, qkv_bias, proj_bias):
    """On lq query tokens, lk key tokens and `pairs` (query, key) pairs."""
    macs = lq * e * e + 2 * lk * e * e + 2 * pairs * e + lq * e * e
    flops = 2 * macs + 6 * heads * pairs
    if qkv_bias:
        flops += lq * e + 2 * lk * e
    if proj_bias:
        flops += lq * e
    return flops, macs


def _self_attention_sizes(src):
    """(tokens, (query, key) pairs, E) of [B, L, E], or of a nested tensor of [L_i, E] sequences."""
    if src.is_nested:
        lengths = [(l, e) for l, e in src._nested_tensor_size().tolist()]
        return sum(l for l, _ in lengths), sum(l * l for l, _ in lengths), lengths[0][1] if lengths else 0
    b, l, e = shape(src)
    return b * l, b * l * l, e


def mha(p, c):
    q, k = shape(c.tensor(0)), shape(c.tensor(1))
    if len(q) != 3 or len(k) != 3:
        raise ValueError("expected [B, L, E] inputs")
    flops, macs = _mha_block(q[0] * q[1], q[0] * k[1], q[0] * q[1] * k[1], q[2], c.arg(4) or 1, c.has_tensor(6),
                             c.has_tensor(8))
    return flops, macs, 0


def encoder_layer(p, c):
    t, pairs, e = _self_attention_sizes(c.tensor(0))  # nested input: its valid tokens only
    heads = c.arg(2) or 1
    f = shape(c.tensor(14))[0]
    flops, macs = _mha_block(t, t, pairs, e, heads, c.has_tensor(4), c.has_tensor(6))
    ffn = 2 * t * e * f
    macs += ffn
    flops += 2 * ffn
    flops += (t * f if c.has_tensor(15) else 0) + (t * e if c.has_tensor(17) else 0)
    flops += t * f * (p["gelu_cost"] if c.arg(7) else p["relu_cost"])
    flops += 2 * t * e * p["layer_norm_cost"] + 2 * t * e
    return flops, macs, 0


def _gate_cost(p, gates):
    """Gate math per hidden unit and step: LSTM (4 gates), GRU (3), plain tanh/relu RNN (1)."""
    costs = {4: p["gate_cost"], 3: p["gru_cost"], 1: p["rnn_cost"]}
    if gates not in costs:
        raise ValueError("unexpected RNN gate count")
    return costs[gates]


def _rnn_flat(p, c):
    """cuDNN/MIOpen layout: a flat list [w_ih, w_hh, (b_ih, b_hh), (w_hr)] per layer and direction."""
    weights = c.arg(p["weights"])
    if not isinstance(weights, (list, tuple)):
        raise ValueError("expected a weight list")
    mats = []
    for w in weights:
        if not isinstance(w, torch.Tensor):
            raise ValueError("weight list holds a non-tensor")
        if len(shape(w)) == 2:
            mats.append(shape(w))
    if len(mats) < 2 or mats[0][1] <= 0:
        raise ValueError("expected RNN weight matrices")
    gh, in_features = mats[0]
    projections = [m for m in mats if m[0] != gh]  # w_hr [P, H]
    hidden = projections[0][1] if projections else mats[1][1]
    if hidden <= 0 or gh % hidden:
        raise ValueError("unexpected RNN weight shapes")
    rows = numel(c.tensor(p["input"])) // in_features
    layer_dirs = sum(1 for m in mats if m[0] == gh) // 2
    macs = rows * sum(a * b for a, b in mats) * p["products"]
    return 2 * macs + rows * hidden * layer_dirs * _gate_cost(p, gh // hidden), macs, 0


def rnn(p, c):
    if p["weights"] >= 0:
        return _rnn_flat(p, c)
    inp = c.tensor(p["input"])
    w_ih, w_hh = shape(c.tensor(p["w_ih"])), shape(c.tensor(p["w_hh"]))
    if len(w_ih) != 2 or len(w_hh) != 2 or w_ih[1] == 0 or w_hh[1] == 0:
        raise ValueError("expected 2-d RNN weights")
    steps_times_batch = numel(inp) // w_ih[1]
    macs = steps_times_batch * (w_ih[0] * w_ih[1] + w_hh[0] * w_hh[1]) * p["products"]
    return 2 * macs + steps_times_batch * w_hh[1] * _gate_cost(p, w_hh[0] // w_hh[1]), macs, 0


# ---- FFT ----------------------------------------------------------------------------------------

def log2_q16(n):
    """floor(2**16 * log2(n)), by the same integer steps as the C++ (bit-by-bit binary logarithm
    on a mantissa kept to 62 fractional bits, truncated at each squaring)."""
    if _is_expr(n):
        raise ValueError("an FFT over a symbolic length has no closed form here (integer log2)")
    if n <= 1:
        return 0
    e = n.bit_length() - 1
    m = n << (62 - e)  # in [1, 2) with 62 fractional bits
    frac = 0
    for _ in range(16):
        m = (m * m) >> 62
        frac <<= 1
        if m >= 1 << 63:
            m >>= 1
            frac |= 1
    return (e << 16) | frac


def fft(p, c):
    x = c.outputs()[0] if p["signal"] < 0 else c.tensor(p["signal"])
    s = shape(x)
    n = 1
    for d in _int_list(c.arg(p["dim"])):
        n *= s[d]  # negative dims index from the end, as in the op
    return (5 * numel(x) * log2_q16(n)) >> (16 + (1 if p["half"] else 0)), 0, 0


# ---- dense linear algebra -------------------------------------------------------------------------

def _lu(m, n):
    k = _min(m, n)
    return (6 * m * n * k - 3 * (m + n) * k * k + 2 * k ** 3) // 3


def _qr(m, n):
    k = _min(m, n)
    return (6 * k * k * _max(m, n) - 2 * k ** 3) // 3


def _householder(m, n, k):
    return (12 * m * n * k - 6 * (m + n) * k * k + 4 * k ** 3) // 3


def _svd(m, n, uv, full):
    big, k = _max(m, n), _min(m, n)
    if not uv:
        return (12 * big * k * k - 4 * k ** 3) // 3
    if full:
        return 4 * big * big * k + 8 * big * k * k + 9 * k ** 3
    return 14 * big * k * k + 8 * k ** 3


def _flag(c, pos, default):
    v = c.arg(pos)
    return default if v is None else bool(v)


def linalg(p, c):
    a = c.tensor(p["matrix"])
    if not _floating(a):
        return 0, 0, 0
    sa = shape(a)
    if len(sa) < 2:
        raise ValueError("expected a matrix [..., m, n]")
    batch, m, n = math.prod(sa[:-2]), sa[-2], sa[-1]
    k, kind = _min(m, n), p["kind"]
    if kind in (_ops.LA_TRI_SOLVE, _ops.LA_FACTORED_SOLVE, _ops.LA_SOLVE):
        columns_n = _out_numel(c) * n
        flops = columns_n if kind == _ops.LA_TRI_SOLVE else 2 * columns_n
        return flops + (batch * _lu(n, n) if kind == _ops.LA_SOLVE else 0), 0, 0
    if kind == _ops.LA_APPLY_Q:
        reflectors = (shape(c.tensor(p["other"])) or [1])[-1]
        sc = shape(c.outputs()[0])
        cm, cn = sc[-2], sc[-1]
        left = _flag(c, p["flag"], True)
        return math.prod(sc[:-2]) * (4 * cm * cn * reflectors - 2 * (cn if left else cm) * reflectors ** 2), 0, 0
    if kind == _ops.LA_LSTSQ:
        columns = _out_numel(c) // n if n else 0
        return batch * _qr(m, n) + columns * (4 * m * k - k * k), 0, 0
    if kind == _ops.LA_FACTOR_SYM:
        per = n ** 3 // 3
    elif kind == _ops.LA_FACTOR_LU:
        per = _lu(m, n)
    elif kind == _ops.LA_INVERSE:
        per = 2 * n ** 3
    elif kind == _ops.LA_INVERSE_FROM_CHOLESKY:
        per = 2 * n ** 3 // 3
    elif kind == _ops.LA_QR:
        per = _qr(m, n)
        mode = c.arg(p["flag"])
        if mode == "complete":
            per += _householder(m, m, k)
        elif mode != "r" and p["flag"] >= 0:  # "reduced", the default
            per += _householder(m, k, k)
    elif kind == _ops.LA_HOUSEHOLDER_PRODUCT:
        per = _householder(m, n, (shape(c.tensor(p["other"])) or [1])[-1])
    elif kind == _ops.LA_EIGH:
        per = 9 * n ** 3 if _flag(c, p["flag"], True) else 4 * n ** 3 // 3
    elif kind == _ops.LA_EIG:
        per = 25 * n ** 3
    elif kind == _ops.LA_EIGVALS:
        per = 10 * n ** 3
    elif kind == _ops.LA_SVD:
        per = _svd(m, n, _flag(c, p["flag"], True), _flag(c, p["flag2"], False))
    elif kind == _ops.LA_PINV:
        per = (9 * n ** 3 if _flag(c, p["flag"], False) else _svd(m, n, True, False)) + 2 * m * n * k
    elif kind == _ops.LA_MATRIX_EXP:
        per = 10 * n ** 3
    elif kind == _ops.LA_POLAR:
        per = _svd(m, n, True, False) + 2 * m * n * n + n * n + 2 * n ** 3
    elif kind == _ops.LA_MATRIX_SQRTH:
        per = 9 * n ** 3 + n + n * n + 2 * n ** 3
    else:
        raise ValueError("unknown linear algebra kind")
    return batch * per, 0, 0


# ---- _trilinear ---------------------------------------------------------------------------------

def trilinear(p, c):
    i, e = p["i1"], p["expand1"]
    tensors = [shape(c.tensor(i + t)) for t in range(3)]
    expands = [set(_int_list(c.arg(e + t))) for t in range(3)]
    total = len(tensors[0]) + len(expands[0])
    full = []
    for s, ex in zip(tensors, expands):
        it = iter(s)
        full.append([1 if d in ex else next(it) for d in range(total)])
    summed = set(_int_list(c.arg(e + 3)))
    unroll = c.arg(e + 4)
    unroll = 1 if unroll is None else unroll
    terms = second = 1
    for d in range(total):
        size = _max(*(f[d] for f in full))
        terms *= size
        if not (d in summed and d in expands[2] and d != unroll):
            second *= size
    return 2 * terms + 2 * second, terms, 0


# ---- pairwise distances ---------------------------------------------------------------------------

def distance(p, c):
    x1 = c.tensor(p["x1"])
    if not _floating(x1):
        return 0, 0, 0
    s1 = shape(x1)
    rows1, dim, batch = s1[-2], s1[-1], math.prod(s1[:-2])
    rows2 = 0
    if p["x2"] >= 0:
        rows2 = shape(c.tensor(p["x2"]))[-2]
        outs = c.outputs()
        if outs and p["kind"] != 1:
            batch = math.prod(shape(outs[0])[:-2])
        pairs = batch * rows1 * rows2
    else:
        pairs = batch * rows1 * _max(rows1 - 1, 0) // 2
    if p["kind"] == 2:
        macs = pairs * (dim + 2)
        return 2 * macs + 2 * batch * (rows1 + rows2) * dim + 2 * pairs, macs, 0
    pn = c.arg(p["p"])
    pn = 2.0 if pn is None else float(pn)
    inf = pn == math.inf
    if p["kind"] == 1:
        per_term, per_pair = (3 if pn == 1 else 4 if pn == 2 else 5 if inf else 6), 0
    else:
        simple = pn in (0, 1, 2) or inf
        per_term = 3 if simple else 4
        per_pair = 1 if (pn == 2 or not simple) else 0
    return pairs * dim * per_term + pairs * per_pair, 0, 0


# ---- embedding bag --------------------------------------------------------------------------------

def embedding_bag(p, c):
    rows = c.tensor(p["rows"])
    if not _floating(rows):
        return 0, 0, 0
    looked_up = numel(c.tensor(p["indices"])) * shape(rows)[-1]
    mode = c.arg(p["mode"]) or 0
    if p["kind"] == 2:
        return 2 * looked_up, 0, 0
    flops = looked_up * (2 if c.has_tensor(p["per_sample_weights"]) else 1)
    if mode == 1:
        if p["kind"] == 0:
            outs = c.outputs()
            flops += numel(outs[0]) if outs else 0
        else:
            flops += looked_up
    return flops, 0, 0


# ---- grid sampling --------------------------------------------------------------------------------

def grid_sampler(p, c):
    counted = c.outputs()[0] if p["counted"] < 0 else c.tensor(p["counted"])
    if not _floating(counted):
        return 0, 0, 0
    mode = c.arg(p["mode"]) or 0
    per = {0: p["linear_cost"], 2: p["cubic_cost"]}.get(mode, 0)
    passes = 1
    if p["counted"] >= 0:
        passes = sum(int(bool(x)) for x in _output_mask(c.arg(p["output_mask"]))[:2])
    return numel(counted) * per * passes + numel(c.tensor(p["grid"])) * p["coord_cost"], 0, 0


# ---- fused linear + cross-entropy ------------------------------------------------------------------

def linear_cross_entropy(p, c):
    inp = c.tensor(p["input"])
    if not _floating(inp):
        return 0, 0, 0
    classes, features = shape(c.tensor(p["weight"]))
    logits = numel(inp) // features * classes if features else 0
    gi = gw = gb = False
    if p["grads"] >= 0:
        gi, gw, gb = (bool(c.arg(p["grads"] + i)) for i in range(3))
    macs = logits * features * (1 + int(gi) + int(gw))
    flops = 2 * macs + logits * p["cost"]
    flops += logits if c.has_tensor(p["bias"]) else 0
    flops += logits * p["grad_cost"] if (gi or gw or gb) else 0
    flops += logits if gb else 0
    return flops, macs, 0


# ---- sparse (CSR) x dense products ---------------------------------------------------------------

def sparse_matmul(p, c):
    sparse = c.tensor(p["sparse"])
    if not _floating(sparse):
        return 0, 0, 0
    stored = _concrete(sparse._nnz()) * math.prod(shape(sparse)[:-2])
    passes = 1
    if p["output_mask"] >= 0:
        passes = sum(int(bool(x)) for x in _output_mask(c.arg(p["output_mask"]))[:2])
    macs = stored * (shape(c.tensor(p["dense"])) or [1])[-1] * passes
    return 2 * macs + stored * p["cost"], macs, 0


def ctc(p, c):
    log_probs = c.tensor(p["log_probs"])
    if not _floating(log_probs):
        return 0, 0, 0
    lengths = c.arg(p["target_lengths"])
    if isinstance(lengths, torch.Tensor):
        if lengths.device.type == "meta":
            raise ValueError("CTC target lengths on meta: their values are unknown")
        lengths = lengths.tolist()
    longest = max([_concrete(x) for x in _int_list(lengths)] or [0])
    s = shape(log_probs)
    if len(s) not in (2, 3):
        raise ValueError("CTC log_probs must be [T, C] or [T, N, C]")
    flops = p["cost"] * s[0] * (s[1] if len(s) == 3 else 1) * (2 * longest + 1)
    if p["grad_cost"]:
        outs = c.outputs()
        if len(outs) < 2:
            raise ValueError("CTC returned no gradient")
        flops += p["grad_cost"] * numel(outs[1])
    return flops, 0, 0


def _zero(p, c):
    return 0, 0, 0


FAMILIES = {
    "zero": _zero, "move": _zero, "unsupported": _zero, "matmul": matmul, "conv": conv,
    "conv_backward": conv_backward, "attention": attention, "elementwise": elementwise,
    "reduce": reduce, "norm": norm, "norm_backward": norm_backward, "pool": pool,
    "foreach": foreach, "mha": mha, "encoder_layer": encoder_layer, "rnn": rnn,
    "fft": fft, "linalg": linalg, "trilinear": trilinear, "distance": distance,
    "embedding_bag": embedding_bag, "grid_sampler": grid_sampler,
    "linear_cross_entropy": linear_cross_entropy, "sparse_matmul": sparse_matmul,
    "comm": _zero,  # collectives: no FLOPs (bytes and the communication record: flopdispatch/comm.py)
    "ctc": ctc,
}
assert set(FAMILIES) == set(FAMILY_PARAMS)


def cost(family, params, arg_names, args, kwargs, out):
    """(flops, macs, masked_macs) of one call under `family` with the declared `params` tuple."""
    p = dict(zip(FAMILY_PARAMS[family], params))
    return tuple(_concrete(x) for x in FAMILIES[family](p, Call(args, kwargs, out, arg_names)))
