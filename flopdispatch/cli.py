"""The command line's old home: ``flopdispatch.cli.main`` (and ``build_parser``, ``CLIError``)
now live in the ``flopdispatch.commands`` package, one module per subcommand; this module keeps
the old import paths working. Imports no torch."""
from .commands import CLIError, build_parser, main

_LAZY = {"parse_input": ("..inputs", "parse_input"), "parse_config": ("..models", "parse_config"),
         "render_text": ("..report", "render_text"), "_DropKnownHFWarning": (".model", "_DropKnownHFWarning")}


def __getattr__(name):
    """parse_input (inputs.py, which needs torch to make dtypes), parse_config, render_text: loaded on use."""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module, "flopdispatch.commands"), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["main", "build_parser", "parse_input", "parse_config", "CLIError", "render_text"]
