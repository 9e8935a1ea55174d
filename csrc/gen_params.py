"""Writes csrc/family_params.h from flopdispatch/_ops.py: the one source of each family's parameters.

``_ops.FAMILY_PARAMS`` names each formula family's parameters in the order the compiled core
receives them; ``_reference.py`` reads them by those names. This script turns the same table into
C++: the ``Family`` enum (one ``F_<NAME>`` per family, in table order), the family names, one
``param::<family>`` namespace of named indices per family (``p[param::matmul::bias]``), and the
``LinalgKind`` values (the ``LA_*`` constants). setup.py runs it before every build; the header is
committed too (for builds that compile csrc/ directly), and a test checks it is current.

    python csrc/gen_params.py          # rewrite csrc/family_params.h when it differs
"""
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPS = ROOT / "flopdispatch" / "_ops.py"
HEADER = ROOT / "csrc" / "family_params.h"
MAX_PARAMS = 8  # kMaxParams: the core's fixed parameter slots


def render(ops_path=OPS):
    """The header's text for the _ops.py at `ops_path` (read as plain data: no package import)."""
    ops = runpy.run_path(str(ops_path))
    families = ops["FAMILY_PARAMS"]
    linalg = sorted((v, k) for k, v in ops.items() if k.startswith("LA_") and isinstance(v, int))
    if [v for v, _ in linalg] != list(range(len(linalg))):
        raise ValueError(f"the LA_* kinds must number 0, 1, 2, ... without gaps: {linalg}")
    lines = [
        "// Generated from flopdispatch/_ops.py by csrc/gen_params.py (setup.py runs it): do not edit.",
        "// Each family's parameters, named in the order _ops.FAMILY_PARAMS lists them and the core",
        "// receives them: p[param::matmul::bias] is a matmul row's \"bias\". Their meaning: _ops.py.",
        "#pragma once",
        "",
        "namespace fd {",
        "",
        "enum Family : int {",
    ]
    lines += [f"    F_{name.upper()} = {i}," for i, name in enumerate(families)]
    lines += [f"    F_COUNT = {len(families)}", "};", "",
              "inline const char* family_name(int f) {",
              "    static const char* names[] = {" + ", ".join(f'"{n}"' for n in families) + "};",
              '    return (f >= 0 && f < F_COUNT) ? names[f] : "?";', "}", "",
              f"constexpr int kMaxParams = {MAX_PARAMS};", "", "namespace param {"]
    for name, params in families.items():
        if len(params) > MAX_PARAMS:
            raise ValueError(f"{name}: {len(params)} parameters, the core holds {MAX_PARAMS}")
        if params:
            body = ", ".join(f"{p} = {i}" for i, p in enumerate(params))
            lines.append(f"namespace {name} {{ enum : int {{ {body} }}; }}")
    lines += ["}  // namespace param", "", "// The `kind` of a linalg row (the LA_* constants of _ops.py).",
              "enum LinalgKind : int {"]
    lines += [f"    {k} = {v}," for v, k in linalg]
    lines += ["};", "", "}  // namespace fd", ""]
    return "\n".join(lines)


def write(header=HEADER, ops_path=OPS):
    """Rewrite `header` when its text differs (an unchanged file keeps its time: no rebuild)."""
    text = render(ops_path)
    if not header.exists() or header.read_text(encoding="utf-8") != text:
        header.write_text(text, encoding="utf-8")
        return True
    return False


if __name__ == "__main__":
    print(f"{HEADER}: {'written' if write() else 'current'}")
    sys.exit(0)
