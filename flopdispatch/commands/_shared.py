"""What every subcommand shares: the one-line error, the parser class, the display and
measurement options, output-path checks, writing the files and printing the table.

Nothing here imports torch (``--help`` and ``show`` never load it): a subcommand that counts
imports it inside its ``run``.
"""
from __future__ import annotations

import argparse
import difflib
import os
import sys
from typing import Iterable, List

from ..report import SORTS, UNITS, VIEWS, parse_depth  # the display choices (report.py is torch-free)

PROG = "flopdispatch"
TRACEBACK_ENV = "FLOPDISPATCH_TRACEBACK"
TRACEBACK_HINT = f"({TRACEBACK_ENV}=1 shows the traceback)"


class CLIError(Exception):
    """A one-line error for the user; ``code`` is the exit status (2: bad input, 1: the user's
    code failed)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def one_line(e: BaseException) -> str:
    """An exception's whole message on one line."""
    return " ".join(str(e).split()) or type(e).__name__


def close_matches(word: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.6) -> List[str]:
    return difflib.get_close_matches(word, list(choices), n=n, cutoff=cutoff)


def did_you_mean(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str:
    """'; did you mean X or Y?' for the close matches of `word` among `choices`, else ''."""
    close = close_matches(word, choices, cutoff=cutoff)
    return f"; did you mean {' or '.join(close)}?" if close else ""


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line (and a pointer to --help), and close matches for a
    mistyped choice or subcommand."""

    def error(self, message):
        raise CLIError(f"{message} (see '{self.prog} --help')")

    def _check_value(self, action, value):
        if action.choices is not None and value not in action.choices:
            choices = [str(c) for c in action.choices]
            raise argparse.ArgumentError(action, f"invalid choice: {value!r}{did_you_mean(str(value), choices)} "
                                                 f"(choose from {', '.join(choices)})")


def depth_arg(text: str):
    try:
        return parse_depth(text)  # -1 is an error, as in count.table(depth=-1)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def display_options() -> argparse.ArgumentParser:
    """The parent parser of --depth, --sort, --units, --by, --json, --html, -q (every subcommand)."""
    display = argparse.ArgumentParser(add_help=False)
    g = display.add_argument_group("display")
    g.add_argument("--depth", type=depth_arg, default=2, metavar="N",
                   help="module levels shown below the root (default 2; 'all' for every level)")
    g.add_argument("--sort", choices=SORTS, default=None,
                   help="sort sibling modules (and ops) by this figure, largest first (default: model order)")
    g.add_argument("--units", choices=UNITS, default="auto",
                   help="auto: SI prefixes per value (default); or one fixed prefix for every number")
    g.add_argument("--by", choices=VIEWS, default="module", help="table of modules (tree), ops or phases")
    g.add_argument("--json", metavar="PATH", help="save the report as JSON (flopdispatch.report/1); '-' for stdout")
    g.add_argument("--html", metavar="PATH", help="save a self-contained interactive HTML page")
    g.add_argument("-q", "--quiet", action="store_true", help="print no table (files are still written)")
    return display


def measure_options() -> argparse.ArgumentParser:
    """The parent parser of --timing, --ignore, --activations (the subcommands that count)."""
    measure = argparse.ArgumentParser(add_help=False)
    measure.add_argument("--timing", action="store_true",
                         help="also time each op (CPU clock or CUDA events; the counter itself is not timed): "
                              "adds time and GFLOP/s columns")
    measure.add_argument("--ignore", action="append", default=[], metavar="TYPE_OR_NAME",
                         help="leave a module's work (forward and backward) out of every figure: a type "
                              "name (Embedding) or a qualified module name (lm_head); repeatable; the "
                              "report states what was ignored")
    measure.add_argument("--activations", action="store_true",
                         help="also record the bytes autograd saves for backward (activation memory), per "
                              "module: a 'saved act.' column (useful with --train or a training script)")
    return measure


# ----- output ------------------------------------------------------------------------------------

def check_output_paths(args) -> None:
    """--json/--html PATH: its directory exists and it is not a directory (before any work)."""
    for flag in ("json", "html"):
        path = getattr(args, flag, None)
        if not path or path == "-":
            continue
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise CLIError(f"--{flag} {path}: directory {parent} does not exist")
        if os.path.isdir(path):
            raise CLIError(f"--{flag} {path}: is a directory")


def display(args) -> dict:
    return {"by": args.by, "depth": args.depth, "sort": args.sort, "units": args.units}


def emit(report, args, stream) -> None:
    """Write the files asked for, then the table on `stream` (unless quiet or --json -)."""
    from ..report import print_report

    if args.json:
        if args.json == "-":
            sys.stdout.write(report.to_json() + "\n")
            sys.stdout.flush()
        else:
            write(args.json, report.save)
    if args.html:
        from ..htmlreport import write_html

        write(args.html, lambda p: write_html(report, p))
    if args.quiet or (args.json == "-" and stream is sys.stdout):
        return
    print_report(report, stream, **display(args))


def write(path, writer) -> None:
    try:
        writer(path)
    except OSError as e:
        raise CLIError(f"cannot write {path}: {e.strerror or e}") from None


def device_meta(devices: List[str]) -> dict:
    """The report's ``devices`` (and the CUDA device names, when any)."""
    out = {"devices": devices}
    if any(d.startswith("cuda") for d in devices):
        try:
            import torch

            out["device_names"] = sorted({torch.cuda.get_device_name(torch.device(d)) for d in devices
                                          if d.startswith("cuda")})
        except Exception:  # noqa: BLE001 - metadata only
            pass
    return out


def command_line(argv) -> List[str]:
    return [PROG] + list(argv)


def print_error(error: CLIError) -> None:
    """The one shape of every error: ``flopdispatch: error: <one line>`` on stderr."""
    from .._text import terminal_safe

    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    print(f"{PROG}: error: {terminal_safe(error)}", file=sys.stderr)  # one line, no escape reaches the terminal


def traceback_wanted() -> bool:
    return bool(os.environ.get(TRACEBACK_ENV))


def show_traceback(error: BaseException) -> None:
    """With FLOPDISPATCH_TRACEBACK set: `error`'s traceback on stderr (the one-line error follows)."""
    if traceback_wanted():
        import traceback

        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
        sys.stderr.flush()


__all__ = ["PROG", "CLIError", "Parser", "display_options", "measure_options", "check_output_paths", "display",
           "emit", "write", "command_line", "device_meta", "print_error", "one_line", "did_you_mean",
           "close_matches", "traceback_wanted", "show_traceback", "TRACEBACK_HINT"]

