"""``flopdispatch run [options] SCRIPT [ARGS...]`` (or ``run -m MODULE ARGS...``): an unmodified
script under the counter, its output and exit status kept, the report on stderr afterwards."""
from __future__ import annotations

import argparse
import os
import runpy
import sys
import time
import traceback
import zipfile

from ._shared import CLIError, check_output_paths, command_line, device_meta, emit, print_error


def add_parser(subparsers, parents) -> argparse.ArgumentParser:
    run = subparsers.add_parser("run", parents=[parents.display, parents.measure], help="count an unmodified Python script",
                                description="Run SCRIPT as __main__ (sys.argv = [SCRIPT, ARGS...]) under the counter, "
                                            "keep its output and exit status, then print the report on stderr. "
                                            "Options go before SCRIPT; everything after it is the script's.")
    run.add_argument("--all-ranks", action="store_true",
                     help="under torchrun: every rank prints its table (default: rank 0 only; each rank "
                          "writes its own --json/--html file, PATH.rank<R>.json)")
    run.add_argument("-m", dest="module", metavar="MODULE", help="run a module as __main__ (like python -m)")
    run.add_argument("target", nargs=argparse.REMAINDER, metavar="SCRIPT [ARGS...]")
    return run


def _probe_root():
    """A global forward pre-hook noting the first module's devices and dtypes (cheap, once)."""
    import torch

    found = {}

    def hook(module, args):
        if found:
            return None
        tensors = list(module.parameters()) + list(module.buffers())
        tensors += [a for a in args if isinstance(a, torch.Tensor)]
        found["devices"] = sorted({str(t.device) for t in tensors})
        found["dtypes"] = sorted({str(t.dtype).replace("torch.", "") for t in tensors})
        found["model_class"] = type(module).__name__
        return None

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    return found, handle


def _trim_traceback(tb):
    """Drop the leading frames of this file and runpy: the traceback starts in the user's script."""
    ours = {os.path.abspath(__file__), os.path.abspath(runpy.__file__), "<frozen runpy>"}
    while tb is not None and (tb.tb_frame.f_code.co_filename in ours
                              or os.path.abspath(tb.tb_frame.f_code.co_filename) in ours):
        tb = tb.tb_next
    return tb


def _run_script(path):
    """Run the file at `path` as __main__ as ``python path`` does: ``__file__`` is the absolute path,
    ``sys.argv[0]`` stays as typed (runpy.run_path would make both the path it is given)."""
    import builtins
    import types

    absolute = os.path.abspath(path)
    with open(absolute, "rb") as f:
        source = f.read()
    code = compile(source, absolute, "exec", dont_inherit=True)
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=absolute, __cached__=None, __loader__=None, __package__=None, __spec__=None,
                         __builtins__=builtins)
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = main  # pickling a class the script defines finds it, as under python
    try:
        exec(code, main.__dict__)
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


class _StdoutToStderr:
    """``run --json -``: while the script runs, what it writes to stdout (print, C code, child processes
    sharing the descriptor) goes to stderr, so stdout carries the JSON report alone."""

    def __enter__(self):
        self.stream, self.fd, self.saved_fd = sys.stdout, None, None
        try:
            sys.stdout.flush()
            fd, err = sys.stdout.fileno(), sys.stderr.fileno()
            sys.stderr.flush()
            self.saved_fd = os.dup(fd)
            os.dup2(err, fd)
            self.fd = fd
        except (AttributeError, OSError, ValueError):  # no real descriptors (captured): Python writes only
            pass
        sys.stdout = sys.stderr
        return self

    def __exit__(self, *exc):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        sys.stdout = self.stream
        if self.saved_fd is not None:
            os.dup2(self.saved_fd, self.fd)
            os.close(self.saved_fd)
        return False


def run(args, argv) -> int:
    """Run the script (or module) under the counter; its exit status, the report on stderr."""
    from .. import comm
    from ..counter import count
    from ..progress import Progress
    from ..schema import Report, default_meta

    if args.module:
        import importlib.util

        target, script_args = args.module, list(args.target)
        label = f"-m {args.module}"
        sys.path.insert(0, os.getcwd())
        try:
            found_spec = importlib.util.find_spec(args.module)
        except (ImportError, ValueError):
            found_spec = None
        finally:
            sys.path.pop(0)
        if found_spec is None:
            raise CLIError(f"run: no module named {args.module!r}")
    else:
        if not args.target:
            raise CLIError("run: give the script to run: flopdispatch run [options] SCRIPT [ARGS...]")
        target, script_args = args.target[0], list(args.target[1:])
        if target.startswith("-"):
            raise CLIError(f"run: unknown option {target!r} (options go before SCRIPT; see 'flopdispatch run --help')")
        if not os.path.exists(target):
            raise CLIError(f"run: script not found: {target}")
        if os.path.isdir(target) and not os.path.exists(os.path.join(target, "__main__.py")):
            raise CLIError(f"run: {target} is a directory without __main__.py")
        label = target
    check_output_paths(args)

    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [target] + script_args
    sys.path.insert(0, os.getcwd() if args.module else os.path.dirname(os.path.abspath(target)))
    found, probe = _probe_root()
    exit_code, error = 0, None
    t0 = time.perf_counter()
    quiet_stdout = _StdoutToStderr() if args.json == "-" else None
    if quiet_stdout is not None:
        quiet_stdout.__enter__()
    try:
        with count(timing=args.timing, ignore=args.ignore, activations=args.activations) as c:
            progress = Progress(c, sys.stderr).redirect().start()
            try:
                if args.module:
                    runpy.run_module(args.module, run_name="__main__", alter_sys=True)
                elif os.path.isfile(target) and not zipfile.is_zipfile(target):
                    _run_script(target)
                else:  # a directory or zip with __main__.py
                    runpy.run_path(target, run_name="__main__")
            except SystemExit as e:
                code = e.code
                if code is None:
                    exit_code = 0
                elif isinstance(code, int):
                    exit_code = code
                else:
                    progress.stop()
                    sys.stdout.flush()
                    print(code, file=sys.stderr)
                    exit_code = 1
            except BaseException as e:  # noqa: BLE001 - the script's error, reported like python does
                progress.stop()
                sys.stdout.flush()
                traceback.print_exception(type(e), e, _trim_traceback(e.__traceback__), file=sys.stderr)
                sys.stderr.flush()
                exit_code = 130 if isinstance(e, KeyboardInterrupt) else 1
                error = f"{type(e).__name__}: {e}".splitlines()[0] if str(e) else type(e).__name__
            finally:
                progress.stop()
    finally:
        duration = time.perf_counter() - t0
        if quiet_stdout is not None:
            quiet_stdout.__exit__(None, None, None)
        probe.remove()
        sys.argv[:] = saved_argv
        sys.path[:] = saved_path
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    meta = default_meta(mode="run", target=label, command=command_line(argv), duration_s=round(duration, 3),
                        exit_code=exit_code, error=error,
                        model_class=found.get("model_class") if len(c.roots) <= 1 else None,  # several: see roots
                        dtypes=found.get("dtypes"))
    if found.get("devices"):
        meta.update(device_meta(found["devices"]))
    launched = comm.launcher_rank()  # under torchrun: one report per rank, out.rank<R>.json
    if launched is not None:
        rank, world = launched
        meta.update(rank=rank, world_size=world)
        args.json, args.html = comm.rank_path(args.json, rank), comm.rank_path(args.html, rank)
        args.quiet = args.quiet or (rank != 0 and not args.all_ranks)
    report = Report.from_count(c, meta=meta)
    try:
        emit(report, args, sys.stderr)
    except CLIError as e:
        print_error(e)
        return exit_code or e.code
    return exit_code


_VALUE_OPTIONS = {"--depth", "--sort", "--units", "--by", "--json", "--html"}


def split_module_args(argv):
    """For ``run [options] -m MODULE ARGS...``: (argv up to MODULE, ARGS) so ARGS stay the module's."""
    if not argv or argv[0] != "run":
        return argv, None
    i = 1
    while i < len(argv):
        tok = argv[i]
        if tok == "-m" and i + 1 < len(argv):
            return argv[:i + 2], argv[i + 2:]
        if tok.startswith("-m") and len(tok) > 2 and not tok.startswith("--"):
            return argv[:i + 1], argv[i + 1:]
        if not tok.startswith("-") or tok == "--":
            return argv, None  # the script: argparse's REMAINDER keeps the rest for it
        i += 2 if tok in _VALUE_OPTIONS else 1
    return argv, None

