"""fd.symbolic: FLOPs, MACs and bytes as polynomials in named dims, checked against concrete counts."""
import pytest
import sympy
import torch
import torch.nn as nn

import flopdispatch as fd
from flopdispatch._demo import GPT
from flopdispatch.symbolic import NOT_SYMBOLIC

SIZES = [(2, 5), (3, 8), (5, 13)]  # (batch, seq): three points off the traced one
B, S = sympy.symbols("batch seq", positive=True, integer=True)


def _gpt(device):
    torch.manual_seed(0)
    return GPT(layers=2, heads=2, d=16, vocab=50, context=64, device=device)


def _check(sym, concrete, modules, phases):
    for field in ("flops", "macs", "bytes_read", "bytes_written"):
        got = sym.at(**concrete["sizes"])
        assert getattr(got, field) == getattr(concrete["c"], field), field
    for name in modules:
        for phase in phases:
            got = sym.module(name, phase=phase).at(**concrete["sizes"])
            want = concrete["c"].module(name, phase=phase)
            assert (got.flops, got.macs, got.bytes_read, got.bytes_written) == \
                (want.flops, want.macs, want.bytes_read, want.bytes_written), (name, phase)


@pytest.mark.slow  # three concrete counts of a GPT besides the symbolic one
@pytest.mark.parametrize("train", [False, True])
def test_gpt_polynomial_equals_concrete_counts_at_three_sizes(train):
    s = fd.symbolic(_gpt("meta"), {"idx": (("batch", "seq"), torch.int64), "targets": (("batch", "seq"), "int64")},
                    dims={"batch": 3, "seq": 7}, train=train)
    assert s.specialized == {} and s.not_symbolic == {} and s.unsupported == {}
    assert s.flops.free_symbols == {B, S}
    for b, q in SIZES:
        model = _gpt("cpu")
        idx = torch.randint(0, 50, (b, q))
        with fd.count(model) as c:
            loss = model(idx, idx)
            if train:
                loss.backward()
        _check(s, {"sizes": {"batch": b, "seq": q}, "c": c}, ["", "h.0", "h.0.qkv", "h.1.fc", "ln_f", "lm_head"],
               ["forward", "backward"] if train else ["forward"])


def test_gpt_seq_squared_coefficient_is_the_attention():
    s = fd.symbolic(_gpt("meta"), (("batch", "seq"), torch.int64), dims={"batch": 3, "seq": 7})
    # SDPA per layer: Q K^T and P V, each B * H * S^2 * (D/H) MACs: 2 products * 2 heads * 8 = 32 B S^2;
    # 2 layers: 64 B S^2.  FLOPs: 2 per MAC + 6 per score (scale, mask, softmax 5... the attention
    # family's 6 per score) * heads 2 * layers 2 = 128 + 24 = 152 B S^2.
    assert sympy.Poly(s.macs, B, S).coeff_monomial(B * S ** 2) == 2 * 2 * 2 * 8  # 64
    assert sympy.Poly(s.flops, B, S).coeff_monomial(B * S ** 2) == 2 * 64 + 6 * 2 * 2  # 152
    # and it is all in the blocks' own (exclusive) work, where the functional SDPA runs
    att = sum(sympy.Poly(s.module(f"h.{i}", exclusive=True).macs, B, S).coeff_monomial(B * S ** 2) for i in (0, 1))
    assert att == 64
    # causal-aware MACs: S(S+1)/2 of the S^2 scores
    assert sympy.expand(s.macs - s.causal_macs) == sympy.expand(2 * 2 * 2 * 8 * B * (S ** 2 - S * (S + 1) / 2))


def _llama(device="cpu"):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                   intermediate_size=128, vocab_size=100)
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(cfg).to(device)


@pytest.mark.slow  # three concrete counts of a Llama besides the symbolic one
@pytest.mark.parametrize("train", [False, True])
def test_llama_polynomial_equals_concrete_counts_at_three_sizes(train):
    model = _llama()
    spec = {"input_ids": (("batch", "seq"), torch.int64)}
    if train:
        spec["labels"] = (("batch", "seq"), torch.int64)
    s = fd.symbolic(model, spec, dims={"batch": 3, "seq": 7}, train=train)
    assert s.specialized == {} and s.not_symbolic == {} and s.unsupported == {}
    # attention (GQA counts query heads): 2 products * 4 heads * 16 head dim * 2 layers = 256 B S^2 MACs
    assert sympy.Poly(s.phase("forward").macs, B, S).coeff_monomial(B * S ** 2) == 2 * 4 * 16 * 2
    for b, q in SIZES:
        model.zero_grad(set_to_none=True)
        ids = torch.randint(0, 100, (b, q))
        with fd.count(model) as c:
            if train:
                model(input_ids=ids, labels=ids).loss.backward()
            else:
                model(input_ids=ids)
        _check(s, {"sizes": {"batch": b, "seq": q}, "c": c},
               ["", "model.layers.0", "model.layers.0.self_attn", "model.layers.1.mlp", "lm_head"],
               ["forward", "backward"] if train else ["forward"])


def test_traced_size_equals_the_backing_count_and_optimizer_is_constant():
    s = fd.symbolic(_gpt("meta"), {"idx": (("batch", "seq"), torch.int64), "targets": (("batch", "seq"), "int64")},
                    dims={"batch": 3, "seq": 7}, train=True, optimizer=lambda ps: torch.optim.AdamW(ps))
    at = s.at(batch=3, seq=7)
    assert (at.flops, at.macs, at.bytes_read) == (s.count.flops, s.count.macs, s.count.bytes_read)
    opt = s.phase("optimizer")
    assert opt.flops.free_symbols == set() and opt.flops > 0  # AdamW per parameter element: no batch, no seq


def test_a_specialized_dim_is_reported_with_its_guard():
    class Pins(nn.Module):
        def forward(self, x):
            if x.shape[1] == 7:  # pins seq to its traced value
                return x * 2
            return x

    with pytest.warns(UserWarning, match="seq pinned to 7"):
        s = fd.symbolic(Pins(), ("batch", "seq"), dims={"batch": 3, "seq": 7})
    assert "seq" in s.specialized and "batch" not in s.specialized
    assert "Eq" in s.specialized["seq"]
    assert s.flops == 7 * B  # constant in seq, and said so


def test_guards_on_dims_are_listed_not_specialized():
    class Branch(nn.Module):
        def forward(self, x):
            return x * 2 if x.shape[1] > 4 else x

    s = fd.symbolic(Branch(), ("batch", "seq"), dims={"batch": 3, "seq": 7})
    assert s.specialized == {}
    assert any(g.startswith("seq > 4") for g in s.guards)  # the model's own comparison
    assert s.flops == B * S


def test_fft_over_a_symbolic_length_is_listed_and_left_out():
    class F(nn.Module):
        def forward(self, x):
            return torch.fft.fft(x) * 2

    with pytest.warns(UserWarning, match="pinned"):
        s = fd.symbolic(F(), (("batch", "seq"), torch.complex64), dims={"batch": 3, "seq": 8})
    # PyTorch's fake FFT kernel reads the sizes as ints: both dims are pinned, and the op is named
    assert "aten::_fft_c2c" in s.specialized["seq"]
    assert "fft over a symbolic length" in NOT_SYMBOLIC
    # and the formula itself has no closed form in a symbolic length (integer log2)
    from flopdispatch import _reference

    with pytest.raises(ValueError, match="integer log2"):
        _reference.log2_q16(S)


def test_data_dependent_sizes_are_never_silently_constant():
    class Data(nn.Module):
        def forward(self, x):
            return torch.nonzero(x).float().sum()

    s = fd.symbolic(Data(), ("batch", "seq"), dims={"batch": 3, "seq": 8})
    # nonzero's output length is an unbacked symbol: it and the ops on its output are reported
    # unsupported by the count and listed as not symbolic, never priced as a constant
    assert "aten::nonzero" in s.unsupported and "depends on data" in s.not_symbolic["aten::nonzero"]
    assert "aten::sum" in s.not_symbolic and s.flops == 0
    assert "data-dependent sizes" in NOT_SYMBOLIC


def test_dims_are_checked():
    with pytest.raises(ValueError, match=">= 2"):
        fd.symbolic(nn.Linear(2, 2), ("batch", 2), dims={"batch": 1})
    with pytest.raises(ValueError, match="not in dims"):
        fd.symbolic(nn.Linear(2, 2), ("batch", 2), dims={"seq": 4})
    # the string form of an input: names and sizes separated by commas, then an optional dtype
    assert fd.symbolic(nn.Linear(8, 4), "batch,8:float32", dims={"batch": 3}).macs == 32 * B  # 8 * 4 per row


def test_to_dict_holds_expressions_as_strings():
    import json

    s = fd.symbolic(nn.Sequential(nn.Linear(8, 4)), ("batch", 8), dims={"batch": 3})
    d = json.loads(json.dumps(s.to_dict()))
    assert sympy.sympify(d["totals"]["macs"], locals={"batch": B}) == 32 * B  # 8 * 4 MACs per row
    assert d["modules"]["0"]["flops"] == str(2 * 32 * B + 4 * B)  # matmul + bias
    assert d["dims"] == {"batch": {"traced": 3}}


def test_cli_symbolic_prints_polynomials_and_writes_the_json_field(tmp_path, monkeypatch, capsys):
    import json

    from flopdispatch.cli import main

    (tmp_path / "sym_models.py").write_text(
        "import torch.nn as nn\n\ndef build():\n    return nn.Sequential(nn.Linear(8, 4), nn.ReLU())\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    out_json = tmp_path / "s.json"
    code = main(["model", "sym_models:build", "--input", "3x8", "--symbolic", "batch", "--json", str(out_json)])
    out = capsys.readouterr().out
    assert code == 0
    # Linear(8, 4): 32 MACs per row = 64 FLOPs, + 4 bias adds + 4 ReLU = 72 FLOPs per row
    assert "72*batch" in out and "32*batch" in out
    data = json.loads(out_json.read_text())
    assert data["symbolic"]["totals"]["flops"] == "72*batch"
    assert data["symbolic"]["modules"]["0"]["macs"] == "32*batch"
    assert data["totals"]["flops"] == 72 * 3  # the ordinary counts, at the traced size
    r = fd.Report.load(out_json)
    assert r.symbolic["dims"] == {"batch": {"traced": 3}}
    assert json.loads(r.to_json())["symbolic"] == data["symbolic"]  # round trip
    data["symbolic"]["totals"]["flops"] = 72
    out_json.write_text(json.dumps(data))
    with pytest.raises(fd.ReportError, match="symbolic.totals.flops: expected an expression string"):
        fd.Report.load(out_json)


def test_reference_formulas_on_symbolic_sizes_give_exact_closed_forms():
    from flopdispatch import _reference

    q, k = sympy.symbols("q k", positive=True, integer=True)
    with _reference.symbolic_sizes():
        # causal pairs in closed form, equal to the row-by-row sum at every size tried
        for bottom_right in (False, True):
            expr = _reference.causal_kept(q, k, bottom_right)
            for sq, sk in [(3, 3), (2, 7), (7, 2), (5, 5), (1, 4)]:
                assert expr.subs({q: sq, k: sk}) == _reference.causal_kept(sq, sk, bottom_right)
        # LU of an m x n matrix: Min in the closed form, exact at any size
        lu = _reference._lu(q, k)
        for m, n in [(4, 6), (6, 4), (5, 5)]:
            assert lu.subs({q: m, k: n}) == _reference._lu(m, n)


def test_user_formulas_are_listed_as_not_symbolic():
    class Gram(nn.Module):
        def forward(self, x):
            return x * 1.0

    @fd.formula(Gram)
    def _(module, args, output):
        n, d = args[0].shape
        return fd.Cost(macs=int(n) * int(n) * int(d))

    try:
        with pytest.warns(UserWarning, match="batch pinned to 3"):  # int(n) in the formula pins batch
            s = fd.symbolic(Gram(), ("batch", 8), dims={"batch": 3})
    finally:
        fd.remove_formula(Gram)
    (name, why), = s.not_symbolic.items()
    assert name.startswith("module::") and name.endswith("Gram") and "traced size only" in why
    assert "test_symbolic.py" in s.specialized["batch"]  # the guard's line: the formula's int(n)
    assert "user formulas" in NOT_SYMBOLIC


def test_the_recorder_pricer_failing_makes_the_op_unsupported_and_the_program_runs_on():
    calls = []

    def pricer(func, args, kwargs, out, scope, phase):
        calls.append((str(func), scope, phase))
        if "relu" in str(func):
            raise ValueError("pricer refused")
        return 1, 0, 0, 2, 3

    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    x = torch.randn(2, 4)
    c = fd.count(model)
    c._python_pricer = pricer
    with c:
        y = model(x)
    assert torch.equal(y, model(x))  # same output as without the counter
    assert c.unsupported == {"aten::relu": 1} and c.unsupported_reasons["aten::relu"] == "pricer refused"
    assert c.ops()["aten::addmm"]["flops"] == 1 and c.ops()["aten::addmm"]["bytes_written"] == 3
    assert [(scope > 0, phase) for f, scope, phase in calls if f == "aten.addmm.default"] == [(True, 0)]
    # (inside a module scope, phase forward = 0)
    # a plain count afterwards does not keep the pricer
    with fd.count(model) as plain:
        model(x)
    assert plain.flops == 2 * 2 * 4 * 4 + 2 * 4 + 2 * 4  # matmul, bias, relu: 80


# ----- the formula families on symbolic sizes -----------------------------------------------------

class _Cdist(nn.Module):
    def forward(self, a, b):
        return torch.cdist(a, b)


class _Inv(nn.Module):
    def forward(self, a):
        return torch.linalg.inv(a)


class _QR(nn.Module):
    def forward(self, a):
        return torch.linalg.qr(a)[0]


class _Grid(nn.Module):
    def forward(self, x, g):
        return nn.functional.grid_sample(x, g, align_corners=False)


IMAGE = ("batch", 3, "h", "h")
FAMILIES = {  # family: (module, input shapes, traced sizes)
    "conv": (lambda: nn.Conv2d(3, 4, 3, padding=1), [IMAGE], {"batch": 2, "h": 8}),
    "conv (transposed)": (lambda: nn.ConvTranspose2d(3, 4, 3), [IMAGE], {"batch": 2, "h": 8}),
    "pool": (lambda: nn.MaxPool2d(2), [IMAGE], {"batch": 2, "h": 8}),  # floor(h / 2) in the formula
    "reduce (adaptive pool)": (lambda: nn.AdaptiveAvgPool2d(1), [IMAGE], {"batch": 2, "h": 8}),
    "norm (batch)": (lambda: nn.BatchNorm2d(3), [IMAGE], {"batch": 2, "h": 8}),
    "norm (group)": (lambda: nn.GroupNorm(1, 3), [IMAGE], {"batch": 2, "h": 8}),
    "mha": (lambda: nn.MultiheadAttention(8, 2, batch_first=True), [("batch", "seq", 8)] * 3,
            {"batch": 2, "seq": 6}),
    "embedding_bag": (lambda: nn.EmbeddingBag(10, 4, mode="mean"), [(("batch", 3), torch.int64)], {"batch": 3}),
    "matmul + softmax": (lambda: nn.Sequential(nn.Linear(4, 6), nn.LogSoftmax(-1)), [("batch", 4)], {"batch": 3}),
    "distance": (_Cdist, [("batch", "n", 4), ("batch", "m", 4)], {"batch": 2, "n": 5, "m": 7}),
    "linalg (inverse)": (_Inv, [("batch", "n", "n")], {"batch": 2, "n": 5}),
    "linalg (QR: Min, Max, floor)": (_QR, [("batch", "n", "m")], {"batch": 2, "n": 5, "m": 3}),
    "grid_sampler": (_Grid, [IMAGE, ("batch", "h", "h", 2)], {"batch": 2, "h": 6}),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_is_exact_on_symbolic_sizes(family):
    build, inputs, dims = FAMILIES[family]
    torch.manual_seed(0)
    module = build()
    s = fd.symbolic(module, inputs, dims)
    assert s.specialized == {} and s.not_symbolic == {} and s.unsupported == {}
    assert s.flops.free_symbols  # an expression in the dims, not a constant
    for grow in (3, 4):  # two other sizes, each dim grown (n and m apart, so QR's Min flips)
        sizes = {k: v + grow * (i + 1) for i, (k, v) in enumerate(dims.items())}
        if family.startswith("linalg (QR"):
            sizes["m"] = sizes["n"] + (2 if grow == 3 else -2)
        args = []
        for spec in inputs:
            shape, dtype = spec if isinstance(spec[0], tuple) else (spec, torch.float32)
            shape = [sizes[e] if isinstance(e, str) else e for e in shape]
            args.append(torch.randint(0, 10, shape) if dtype == torch.int64 else
                        torch.rand(shape) + (2 * torch.eye(shape[-1]) if family.startswith("linalg (inv") else 0))
        with torch.no_grad(), fd.count(module) as c:
            module(*args)
        got = s.at(**sizes)
        assert (got.flops, got.macs, got.bytes_read, got.bytes_written) == \
            (c.flops, c.macs, c.bytes_read, c.bytes_written), sizes


@pytest.mark.parametrize("build, inputs, outcome", [
    # PyTorch's fake kernels (torch 2.13) read these ops' sizes as ints: the dims are pinned, and said so
    (lambda: nn.GRU(4, 5, batch_first=True), [("batch", "seq", 4)], "pinned"),
    (lambda: nn.Upsample(scale_factor=2, mode="bilinear"), [("batch", 3, "seq", "seq")], "pinned"),
    # ... or cannot run them on symbolic sizes at all: PyTorch's error reaches the caller
    (lambda: nn.LSTM(4, 5, batch_first=True), [("batch", "seq", 4)], RuntimeError),
    (lambda: nn.Bilinear(4, 5, 3), [("batch", 4), ("batch", 5)], RuntimeError),
])
def test_pytorch_fake_kernel_limits_are_reported_or_raised(build, inputs, outcome):
    dims = {"batch": 2, "seq": 6}
    dims = {k: v for k, v in dims.items() if any(k in shape for shape in inputs)}
    if outcome == "pinned":
        with pytest.warns(UserWarning, match="pinned"):
            s = fd.symbolic(build(), inputs, dims)
        assert s.specialized
    else:
        with pytest.raises(outcome):
            fd.symbolic(build(), inputs, dims)


# ----- inputs as people write them, size 1, names checked -------------------------------------------

class _Block(nn.Module):
    """Attention written out (q @ k^T): the matmuls fold (batch, heads) into bmm's batch with a
    reshape, which copies a transposed q, k^T, v at batch >= 2 and is a view at batch 1."""

    def __init__(self, d=16, heads=2):
        super().__init__()
        self.heads, self.qkv, self.proj, self.ln = heads, nn.Linear(d, 3 * d), nn.Linear(d, d), nn.LayerNorm(d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2)
                   for z in self.qkv(self.ln(x)).split(d, dim=2))
        att = ((q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5).softmax(-1)
        return x + self.proj((att @ v).transpose(1, 2).reshape(b, t, d))


class _Decoder(nn.Module):
    def __init__(self, vocab=50, d=16, layers=2):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.blocks = nn.Sequential(*[_Block(d) for _ in range(layers)])
        self.head = nn.Linear(d, vocab)

    def forward(self, input_ids):
        return self.head(self.blocks(self.emb(input_ids)))


def _concrete(model, batch, seq, train=False):
    model.zero_grad(set_to_none=True)
    ids = torch.zeros(batch, seq, dtype=torch.int64)
    with fd.count(model) as c:
        out = model(ids)
        if train:
            out.sum().backward()
    return c


@pytest.mark.parametrize("train", [False, True])
def test_bytes_at_size_one_equal_a_concrete_count(train):
    torch.manual_seed(0)
    model = _Decoder()
    s = fd.symbolic(model, ("batch", "seq"), dims={"batch": 3, "seq": 7}, train=train)  # ids: a token model
    assert s.guards[:2] == [g for g in s.guards if g.startswith(("batch >= 2", "seq >= 2"))]  # recorded
    for b, q in [(1, 8), (1, 5), (4, 1), (1, 1), (2, 8)]:
        c = _concrete(model, b, q, train)
        got = s.at(batch=b, seq=q)  # a dim at 1: retraced with it fixed at 1
        assert (got.flops, got.macs, got.bytes_read, got.bytes_written) == \
            (c.flops, c.macs, c.bytes_read, c.bytes_written), (b, q)
        assert s.retrace(batch=b, seq=q).count.bytes_read == c.bytes_read
    one = s.retrace(batch=1)  # the whole result at batch 1: seq still symbolic, batch fixed
    assert one.fixed == {"batch": 1} and set(one.dims) == {"seq"} and one.retrace(batch=1) is one
    assert one.module("blocks.0").at(batch=1, seq=8).bytes_read == _concrete(model, 1, 8, train).module(
        "blocks.0").bytes_read
    with pytest.raises(ValueError, match="batch is fixed at 1 in this result, not 2"):
        one.at(batch=2, seq=8)
    # the polynomial itself holds for batch >= 2 only, and says so when read at 1
    with pytest.warns(UserWarning, match="batch >= 2"):
        poly = s.totals.at(batch=1, seq=8)
    c = _concrete(model, 1, 8, train)
    assert poly.flops == c.flops
    if not train:
        # forward, 2 layers: q, k^T and v (1 x 2 heads x 8 x 8 floats = 512 bytes each) are copied by
        # bmm's reshape at batch >= 2 and are views at batch 1: 2 * 3 * 512 = 3072 bytes read, and written
        assert (poly.bytes_read - c.bytes_read, poly.bytes_written - c.bytes_written) == (3072, 3072)


def test_the_readme_form_on_a_token_model_and_inputs_by_name():
    from flopdispatch.inputs import default_input_dtype

    model = _llama()
    assert default_input_dtype(model) == torch.int64  # main_input_name is input_ids
    # a transformers model's attention mask is int64, as its tokenizer makes it; a plain model's is not an id
    assert default_input_dtype(model, "attention_mask") == torch.int64 and default_input_dtype(model, "labels") == torch.int64
    assert default_input_dtype(nn.Linear(2, 2), "attention_mask") is None
    assert default_input_dtype(nn.Linear(2, 2)) is None
    assert default_input_dtype(_gpt("meta")) == torch.int64  # its first parameter is an Embedding (idx)
    assert default_input_dtype(_gpt("meta"), "idx") == torch.int64
    dims = {"batch": 3, "seq": 7}
    readme = fd.symbolic(model, ("batch", "seq"), dims=dims)  # no dtype: token ids
    spelled = fd.symbolic(model, {"input_ids": (("batch", "seq"), torch.int64)}, dims)
    by_name = fd.symbolic(model, dims=dims, input_ids=("batch", "seq"))
    empty = fd.symbolic(model, [], dims, keyword_inputs={"input_ids": ("batch", "seq")})  # [] is no inputs
    for other in (spelled, by_name, empty):
        assert sympy.expand(other.flops - readme.flops) == 0 and sympy.expand(other.bytes - readme.bytes) == 0
    with pytest.raises(TypeError, match="multiple values for argument 'input_ids'"):
        fd.symbolic(model, ("batch", "seq"), dims, input_ids=("batch", "seq"))


def test_unused_and_unknown_dim_names_are_errors_with_close_matches():
    lin = nn.Linear(8, 4)
    with pytest.raises(ValueError, match="'seqq', which no input uses; did you mean seq"):
        fd.symbolic(nn.Sequential(), ("batch", "seq"), dims={"batch": 2, "seq": 3, "seqq": 4})
    with pytest.raises(ValueError, match="input dim 'seq' is not in dims; did you mean sequ"):
        fd.symbolic(nn.Sequential(), ("batch", "seq"), dims={"batch": 2, "sequ": 3})
    s = fd.symbolic(lin, ("batch", 8), dims={"batch": 3})
    with pytest.raises(ValueError, match="no dim named 'bach'; did you mean batch"):
        s.at(bach=4)
    with pytest.raises(ValueError, match="no dim named 'bach'"):
        s.module("").at(bach=4)
    with pytest.raises(ValueError, match="an int >= 1"):
        s.at(batch=0)
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'trian' \(an option of fd.symbolic: train\?\)"):
        fd.symbolic(lin, ("batch", 8), dims={"batch": 3}, trian=True)  # a typo is an input the model lacks
    assert s.at(batch=5).macs == 5 * 8 * 4  # 160


LLAMA_CONFIG = ["--config", "hidden_size=64", "num_hidden_layers=2", "num_attention_heads=4",
                "num_key_value_heads=2", "intermediate_size=128", "vocab_size=100"]


def _cli_json(*args):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-m", "flopdispatch", *args], cwd=root, env=env, capture_output=True,
                       text=True, timeout=300)
    return p.returncode, (json.loads(p.stdout) if p.returncode == 0 else None), p.stderr


def test_cli_symbolic_with_named_inputs_reports_the_counts_of_those_inputs(capsys):
    import json

    from flopdispatch.cli import main

    base = ["model", "hf:llama", *LLAMA_CONFIG, "--input", "input_ids=1x16:int64", "--quiet", "--json", "-"]
    code, sym, err = _cli_json(*base, "--symbolic", "batch,seq")  # as a user runs it
    assert code == 0, err
    assert main(base) == 0  # the same command without --symbolic (in-process: one interpreter start less)
    plain = json.loads(capsys.readouterr().out)
    # batch 1 is traced at 2 (PyTorch pins 1); the report's totals are the 1 x 16 inputs', as without --symbolic
    assert sym["symbolic"]["dims"] == {"batch": {"traced": 2}, "seq": {"traced": 16}}
    for field in ("flops", "macs", "bytes_read", "bytes_written"):
        assert sym["totals"][field] == plain["totals"][field], field
    expr = {k: sympy.sympify(v, locals={"batch": B, "seq": S}) for k, v in sym["symbolic"]["totals"].items()
            if k != "calls"}
    assert expr["flops"].subs({B: 1, S: 16}) == plain["totals"]["flops"]
    assert any(g.startswith("batch >= 2") for g in sym["symbolic"]["guards"])


def test_cli_symbolic_without_inputs_and_a_name_too_many(capsys):
    from flopdispatch.cli import main

    argv = ["model", "hf:llama", *LLAMA_CONFIG, "--symbolic", "batch,seq", "--quiet", "--json", "-"]
    assert main(argv) == 0  # the model's default inputs: input_ids 1 x 128
    import json

    data = json.loads(capsys.readouterr().out)
    assert data["symbolic"]["dims"] == {"batch": {"traced": 2}, "seq": {"traced": 128}}
    assert main(["model", "hf:llama", *LLAMA_CONFIG, "--symbolic", "batch,seq,heads"]) == 2
    assert "'heads' names dim 2 of the inputs, which have at most 2 dims" in capsys.readouterr().err
