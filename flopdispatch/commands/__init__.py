"""The command line, one module per subcommand: ``flopdispatch run | model | show | demo | plan``.

Each subcommand is a module of this package with two functions::

    def add_parser(subparsers, parents) -> argparse.ArgumentParser   # its options and help
    def run(args, argv) -> int                                        # the exit status

``parents`` holds the shared option groups (``parents.display``, ``parents.measure``; see
``_shared.py``). A module imports nothing heavy at module level (torch, transformers): ``--help``
builds every subcommand's parser, and ``show`` reads reports without torch. Adding a subcommand is
one line in ``SUBCOMMANDS`` below. Errors: raise ``CLIError`` (one line; exit 2 for bad input, 1
where the user's code failed); ``main`` prints every error in the same shape.
"""
from __future__ import annotations

import importlib
import os
import sys
import types
from typing import List, Optional

from .._version import __version__
from ._shared import (PROG, TRACEBACK_HINT, CLIError, Parser, display_options, measure_options, print_error,
                      show_traceback)

# name -> its module: a module of this package, or a full dotted path (the order of `flopdispatch --help`)
SUBCOMMANDS = {
    "run": "run",
    "model": "model",
    "show": "show",
    "demo": "demo",
    "plan": "flopdispatch.plan.cli",
}


def _module(name: str):
    module = SUBCOMMANDS[name]  # a module of this package, or a full dotted path (flopdispatch.plan.command)
    return importlib.import_module(module if "." in module else f"{__name__}.{module}")


def build_parser() -> Parser:
    """The whole parser (every subcommand's options); builds without importing torch."""
    parents = types.SimpleNamespace(display=display_options(), measure=measure_options())
    parser = Parser(prog=PROG, description="Exact FLOPs, MACs and bytes for PyTorch code, per module, op and phase.",
                    epilog="See 'flopdispatch COMMAND --help'. Reports: run prints on stderr, the others on stdout.")
    parser.add_argument("--version", action="version", version=f"flopdispatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in SUBCOMMANDS:
        _module(name).add_parser(sub, parents)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line on `argv` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        from .run import split_module_args

        head, module_args = split_module_args(argv)
        args = parser.parse_args(head)
        if module_args is not None:
            args.target = module_args
        if args.command is None:
            parser.print_help()
            return 2
        return _run(args, argv)
    except CLIError as e:
        print_error(e)
        return e.code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `flopdispatch show r.json | head`: stop quietly, as other tools do
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return 1


def _run(args, argv) -> int:
    """The subcommand, with the library's own errors turned into the one-line shape."""
    from ..inputs import SpecError
    from ..models import BuildError

    try:
        return _module(args.command).run(args, argv)
    except SpecError as e:  # a bad spec, input or config: the user's to fix
        raise CLIError(str(e)) from None
    except BuildError as e:  # the model's own code (a factory, an import, transformers) failed to build it
        cause = e.__context__
        if cause is None:
            raise CLIError(str(e), code=1) from None
        show_traceback(cause)
        raise CLIError(f"{e} {TRACEBACK_HINT}", code=1) from None


__all__ = ["main", "build_parser", "CLIError", "SUBCOMMANDS"]
