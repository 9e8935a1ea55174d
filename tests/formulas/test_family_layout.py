"""Each formula family's parameter layout has one source: ``_ops.FAMILY_PARAMS``.

csrc/gen_params.py turns it into csrc/family_params.h (the Family enum, the family names, the named
indices ``param::<family>::<name>`` that formulas.cpp reads, LinalgKind); setup.py regenerates it
before each build, and the committed copy must match. The Python reference reads the same names.
"""
import ast
import keyword
import re
import runpy
from pathlib import Path

from flopdispatch import _C, _ops, _reference

ROOT = Path(__file__).resolve().parents[2]
GEN = runpy.run_path(str(ROOT / "csrc" / "gen_params.py"))
CPP_KEYWORDS = {"and", "auto", "bool", "break", "case", "char", "class", "const", "default", "delete", "do",
                "double", "else", "enum", "float", "for", "if", "int", "long", "namespace", "new", "not", "or",
                "private", "public", "return", "short", "signed", "static", "struct", "switch", "this",
                "template", "typename", "union", "unsigned", "using", "void", "while", "xor"}


def test_committed_header_is_generated_from_the_table():
    assert (ROOT / "csrc" / "family_params.h").read_text(encoding="utf-8") == GEN["render"](), \
        "csrc/family_params.h is stale: run python csrc/gen_params.py"


def test_the_generator_follows_the_table(tmp_path):
    """The check above can fail: a parameter added in _ops.py shows in the header."""
    source = (ROOT / "flopdispatch" / "_ops.py").read_text(encoding="utf-8")
    changed = tmp_path / "_ops.py"
    changed.write_text(source.replace('"matmul": ("a", "b", "bias", "kind")', '"matmul": ("a", "b", "bias", "kind", "scale")'))
    assert changed.read_text() != source
    text = GEN["render"](changed)
    assert "namespace matmul { enum : int { a = 0, b = 1, bias = 2, kind = 3, scale = 4 }; }" in text
    assert text != GEN["render"]()


def test_the_compiled_core_was_built_from_the_generated_layout():
    # the enum the core compiled (its family ids) is the table's order; the slots are the header's
    assert dict(_C.FAMILIES) == {name: i for i, name in enumerate(_ops.FAMILY_PARAMS)}
    assert _C.MAX_PARAMS == GEN["MAX_PARAMS"] >= max(len(p) for p in _ops.FAMILY_PARAMS.values())


def test_parameter_names_are_identifiers_in_both_languages():
    for family, names in _ops.FAMILY_PARAMS.items():
        assert len(set(names)) == len(names), family
        for name in names + (family,):
            assert name.isidentifier() and not keyword.iskeyword(name) and name not in CPP_KEYWORDS, name


def test_formulas_cpp_reads_parameters_by_name_only():
    source = (ROOT / "csrc" / "formulas.cpp").read_text(encoding="utf-8")
    assert re.findall(r"\bp\[\s*\d", source) == []  # no bare index: p[param::<family>::<name>] (via P::)
    used = set(re.findall(r"namespace P = param::(\w+);", source))
    assert used and used <= set(_ops.FAMILY_PARAMS)


def test_reference_reads_only_declared_names():
    """Every p["..."] in a reference family function names a parameter of that family."""
    tree = ast.parse((ROOT / "flopdispatch" / "_reference.py").read_text(encoding="utf-8"))
    functions = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    helpers = {"_rnn_flat": "rnn", "_gate_cost": "rnn"}
    owners = {fn.__name__: family for family, fn in _reference.FAMILIES.items()} | helpers
    checked = 0
    for name, family in owners.items():
        for node in ast.walk(functions[name]):
            if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "p"
                    and isinstance(node.slice, ast.Constant)):
                assert node.slice.value in _ops.FAMILY_PARAMS[family], (name, node.slice.value)
                checked += 1
    assert checked > 100  # the reference reads its parameters this way throughout


def test_linalg_kinds_match_the_constants():
    text = GEN["render"]()
    kinds = {k: v for k, v in vars(_ops).items() if k.startswith("LA_")}
    assert kinds["LA_POLAR"] == 17 and kinds["LA_MATRIX_SQRTH"] == 18
    for name, value in kinds.items():
        assert f"    {name} = {value}," in text


def test_concrete_shapes_are_priced_by_the_compiled_core(monkeypatch):
    """The C++ table counts: with concrete shapes (real, meta and fake tensors alike) no op reaches
    the Python reference, which prices only symbolic sizes, sums past 128 bits and
    ``python_formulas=True``. Linear(8, 16) -> ReLU -> Linear(16, 4) on 3 rows: forward 3 * 8 * 16 +
    3 * 16 * 4 = 576 MACs; backward 576 for the weights + 3 * 4 * 16 = 192 for the hidden input's
    gradient: 1,344 in all."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    import flopdispatch as fd

    assert _C.__file__.endswith((".so", ".pyd"))  # the compiled extension, not a stand-in
    reached = []
    real_cost = _reference.cost
    monkeypatch.setattr(_reference, "cost", lambda *a, **k: reached.append(a[0]) or real_cost(*a, **k))
    for device in ("cpu", "meta", "fake"):
        with FakeTensorMode() if device == "fake" else torch.device(device):
            model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
            x = torch.randn(3, 8)
            with fd.count(model) as c:
                model(x).sum().backward()
        assert c.macs == 1344 and reached == [], (device, reached)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    with fd.count(model, python_formulas=True) as c:  # the spy is live: the oracle, asked, is reached
        model(torch.randn(3, 8)).sum().backward()
    assert c.macs == 1344 and reached
