"""The package's import graph has no cycle: data (``_counts``) at the bottom, renderers above it,
the saved report and the counter above them. Every import of a flopdispatch module counts as an
edge, inside functions too, so that a cycle cannot hide behind a function-level import."""
import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "flopdispatch"


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path) -> dict:
    """{module: {modules it imports}} over every .py file under the package directory `root`.

    ``from . import X`` is an edge to the submodule X when there is one, else to the package
    itself (X is then a name its ``__init__`` defines). Importing a submodule also loads its parent
    packages; that implicit step is not an edge (every module would otherwise depend on __init__)."""
    files = {_module_name(root, p): p for p in root.rglob("*.py")}
    graph = {name: set() for name in files}
    # compiled extensions (flopdispatch._C): modules that import nothing of the package. Those
    # setup.py declares count whether or not they are built next to the sources (an installed
    # or out-of-tree build), so `from . import _C` is never mistaken for an import of the package.
    extensions = {str(p.relative_to(root.parent)).split(".")[0].replace("/", ".")
                  for ext in ("*.so", "*.pyd") for p in root.rglob(ext)}
    setup_py = root.parent / "setup.py"
    if setup_py.is_file():
        extensions |= set(re.findall(r'Extension\(\s*"([\w.]+)"', setup_py.read_text(encoding="utf-8")))
    graph.update({name: set() for name in extensions if name.split(".")[0] == root.name})
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    base = ".".join(base + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in graph else base for a in node.names]
            for target in targets:
                while target and target not in graph:  # `import a.b.c` with only a.b a module here
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict):
    """A list of modules forming a cycle (first == last), or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_package_import_graph_is_acyclic():
    graph = import_graph(PACKAGE)
    assert "flopdispatch._counts" in graph and "flopdispatch.counter" in graph
    assert graph["flopdispatch._C"] == set()  # the compiled core, declared in setup.py
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_data_sits_below_the_renderers():
    graph = import_graph(PACKAGE)
    # the data module imports nothing of the package; the renderers never import the counter
    # or the saved report (they read any object with the report API)
    assert graph["flopdispatch._counts"] == set()
    for renderer in ("flopdispatch.report", "flopdispatch.htmlreport"):
        assert not graph[renderer] & {"flopdispatch.counter", "flopdispatch.schema", "flopdispatch"}, renderer


def test_the_cycle_finder_sees_a_function_level_cycle(tmp_path):
    """The check itself can fail: a cycle closed by an import inside a function is found."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .a import f\n__version__ = '1'\n")
    (pkg / "a.py").write_text("from .b import g\n\ndef f():\n    return g()\n")
    (pkg / "b.py").write_text("def g():\n    from . import a\n    return a\n")
    (pkg / "c.py").write_text("def v():\n    from . import __version__\n    return __version__\n")
    graph = import_graph(pkg)
    assert graph["pkg.b"] == {"pkg.a"} and graph["pkg.c"] == {"pkg"}  # __version__: the package itself
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]
    (pkg / "b.py").write_text("def g():\n    return 1\n")
    assert find_cycle(import_graph(pkg)) is None


@pytest.mark.slow  # a fresh interpreter importing torch
def test_each_layer_imports_first_in_a_fresh_interpreter():
    """Loading the lower layers before the package (no __init__ ordering to hide behind)."""
    code = textwrap.dedent("""
        import importlib.util, sys
        from pathlib import Path
        root = Path(sys.argv[1])
        # a bare namespace for the package, so that no __init__ runs first
        spec = importlib.util.spec_from_loader("flopdispatch", loader=None, is_package=True)
        pkg = importlib.util.module_from_spec(spec)
        pkg.__path__ = [str(root)]
        sys.modules["flopdispatch"] = pkg
        import flopdispatch._counts, flopdispatch.report, flopdispatch.schema, flopdispatch.counter
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code, str(PACKAGE)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
