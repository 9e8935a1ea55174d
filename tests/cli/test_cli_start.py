"""The command line starts without torch (issue 21): ``--help``, ``show`` (every view, --json,
--html, several rank files) and ``import flopdispatch`` load no torch; the lazy package keeps its
names; a subcommand is one registration. Checked in fresh interpreters (subprocesses): which
modules got imported, never how long it took (the timings are benchmarks/cli_start.py's)."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("FLOPDISPATCH_TRACEBACK", None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """A small report, and the same job as two rank files (rank 1 with twice the FLOPs)."""
    import torch
    import torch.nn as nn

    import flopdispatch as fd

    tmp = tmp_path_factory.mktemp("reports")
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with fd.count(model) as c:
        model(torch.ones(2, 4)).sum().backward()
    small = tmp / "small.json"
    fd.Report.from_count(c, meta={"target": "net"}).save(small)
    data = json.loads(small.read_text())
    for rank in (0, 1):
        data["meta"].update(rank=rank, world_size=2)
        (tmp / f"out.rank{rank}.json").write_text(json.dumps(data))
    return tmp


SHOWS = [["show", "small.json"], ["show", "small.json", "--by", "op"], ["show", "small.json", "--by", "phase"],
         ["show", "small.json", "--json", "-"], ["show", "small.json", "-q", "--html", "page.html"],
         ["show", "small.json", "--json", "copy.json", "--sort", "macs", "--units", "K", "--depth", "all"],
         ["show", "out.rank0.json", "out.rank1.json"], ["show", "out.rank0.json", "out.rank1.json", "--by", "op"],
         ["show", "out.rank0.json", "out.rank1.json", "--by", "phase"]]


def test_help_and_show_import_no_torch(reports):
    """Each command runs in-process through flopdispatch.cli.main (as the console script does) in
    a fresh interpreter, which then holds no torch and no transformers."""
    r = _python(f"""
        import contextlib, io, sys
        import flopdispatch.cli as cli
        codes = []
        for argv in [["--help"], ["show", "--help"], ["model", "--help"], ["--version"]]:
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    cli.main(argv)
                except SystemExit as e:
                    codes.append(e.code)
        for argv in {SHOWS!r}:
            with contextlib.redirect_stdout(io.StringIO()) as out:
                codes.append(cli.main(argv))
            assert out.getvalue() or "-q" in argv or "--json" in argv, argv
        print(codes, "torch" in sys.modules, "transformers" in sys.modules)
    """, cwd=reports)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["[0,", "0,", "0,", "0,"] + ["0,"] * (len(SHOWS) - 1) + ["0]", "False", "False"]
    assert (reports / "page.html").stat().st_size > 1000 and json.loads((reports / "copy.json").read_text())


def test_python_m_show_imports_no_torch(reports):
    """The same through ``python -m flopdispatch`` (runpy, __main__.py)."""
    r = _python("""
        import runpy, sys
        sys.argv = ["flopdispatch", "show", "small.json", "--by", "op"]
        try:
            runpy.run_module("flopdispatch", run_name="__main__")
        except SystemExit as e:
            print("exit", e.code, "torch" in sys.modules, file=sys.stderr)
    """, cwd=reports)
    assert r.stderr.strip() == "exit 0 False" and "aten::" in r.stdout


def test_import_flopdispatch_is_lazy():
    """``import flopdispatch`` loads neither torch nor transformers; fd.count loads torch (not
    transformers); every name of __all__ resolves and dir() lists it; ``from flopdispatch import
    X`` works; fd.symbolic is the function even when the submodule was imported first."""
    r = _python("""
        import sys
        import flopdispatch as fd
        print("torch" in sys.modules, "transformers" in sys.modules)
        import flopdispatch.symbolic
        assert callable(fd.symbolic) and not isinstance(fd.symbolic, type(sys)), fd.symbolic
        from flopdispatch import Report, count, SpecError, __version__
        assert fd.count is count and fd.Report is Report and issubclass(SpecError, ValueError)
        missing = [n for n in fd.__all__ if not hasattr(fd, n)]
        assert not missing and set(fd.__all__) <= set(dir(fd)), missing
        ns = {}
        exec("from flopdispatch import *", ns)
        assert set(fd.__all__) <= set(ns), set(fd.__all__) - set(ns)
        print("torch" in sys.modules, "transformers" in sys.modules)
        try:
            fd.no_such_name
        except AttributeError as e:
            print("AttributeError", e)
    """)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "False False"  # nothing heavy at import
    assert lines[1] == "True False"  # torch came with count; transformers still not
    assert lines[2] == "AttributeError module 'flopdispatch' has no attribute 'no_such_name'"


def test_a_subcommand_is_one_registration(tmp_path, monkeypatch, capsys):
    """A module with add_parser(subparsers, parents) and run(args, argv), registered by one entry
    in SUBCOMMANDS, gets the shared display options, its place in --help and the error shape."""
    (tmp_path / "fd_hello").mkdir()
    (tmp_path / "fd_hello" / "__init__.py").write_text("")
    (tmp_path / "fd_hello" / "command.py").write_text(textwrap.dedent('''
        from flopdispatch.commands import CLIError

        def add_parser(subparsers, parents):
            p = subparsers.add_parser("hello", parents=[parents.display], help="say hello")
            p.add_argument("name")
            return p

        def run(args, argv):
            if args.name == "nobody":
                raise CLIError("hello: nobody to greet")
            print(f"hello {args.name} by {args.by}")
            return 0
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    from flopdispatch import commands

    monkeypatch.setitem(commands.SUBCOMMANDS, "hello", "fd_hello.command")
    assert commands.main(["hello", "world", "--by", "op"]) == 0
    assert capsys.readouterr().out == "hello world by op\n"
    assert commands.main(["hello", "nobody"]) == 2
    assert capsys.readouterr().err == "flopdispatch: error: hello: nobody to greet\n"
    with pytest.raises(SystemExit):
        commands.main(["--help"])
    assert "say hello" in capsys.readouterr().out
