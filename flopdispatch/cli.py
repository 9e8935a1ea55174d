"""The command line: ``flopdispatch run | model | show | demo`` (also ``python -m flopdispatch``).

    flopdispatch run [options] SCRIPT [ARGS...]     count an unmodified script (or: run -m MODULE ARGS...)
    flopdispatch model SPEC [options]                count a model built from a spec, no code
        SPEC: hf:<model_type> (a Hugging Face config, e.g. hf:llama --config num_hidden_layers=2)
              package.module:factory (called with no arguments, returns an nn.Module)
        (models.py builds them and inputs.py makes the --input tensors, for the Python API too)
    flopdispatch show REPORT.json [options]          render a saved report again
    flopdispatch show R.rank0.json R.rank1.json ...  one report per rank: per-rank table, job totals
    flopdispatch demo [options]                      a GPT-2-small training step on the meta device

Display options (all subcommands): --depth N|all, --sort flops|macs|bytes|params, --units
auto|K|M|G|T|P, --by module|op|phase, --json PATH (PATH "-" writes the JSON to stdout instead
of the table), --html PATH, -q/--quiet (no table).

Where the report goes: ``run`` prints it on stderr, after the script has finished, so that the
script's own stdout stays as it was (pipe it as usual); with ``run --json -`` the script's stdout
goes to stderr instead, so that stdout carries the JSON alone; ``model``, ``show`` and ``demo`` print on
stdout. On a terminal the table has colours and tree guides and a long ``run`` shows a live
progress line on stderr; otherwise it is plain text.

Exit status: ``run`` exits with the script's status (its ``sys.exit`` code; 1 with the
traceback when it raised; the report of the work done before is still printed). Bad input (a
missing script, a bad SPEC, --config key, --input or --dtype, an unreadable report) is one line on
stderr and status 2; a model that fails to build or run is one line and status 1 (set
FLOPDISPATCH_TRACEBACK=1 for the traceback).
"""
from __future__ import annotations

import argparse
import os
import runpy
import sys
import time
import traceback
import zipfile
from typing import List, Optional

from . import comm
from ._version import __version__
from .inputs import SpecError, parse_dtype, parse_input, parse_input_spec
from .models import BuildError, parse_config
from .report import SORTS, UNITS, VIEWS, parse_depth, print_report, render_text, terminal_safe

PROG = "flopdispatch"


class CLIError(Exception):
    """A one-line error for the user; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line (and a pointer to --help)."""

    def error(self, message):
        raise CLIError(f"{message} (see '{self.prog} --help')")


# ----- argument types ---------------------------------------------------------------------------

def _input_arg(text: str):
    try:
        return parse_input_spec(text)
    except SpecError as e:
        raise argparse.ArgumentTypeError(str(e).replace("bad --input ", "bad shape ")) from None


def _dtype_arg(text: str):
    try:
        dtype = parse_dtype(text)
    except SpecError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if not dtype.is_floating_point:
        raise argparse.ArgumentTypeError(f"{text!r} is not a floating dtype (bf16, fp16, fp32)")
    return dtype


def _depth_arg(text: str):
    try:
        return parse_depth(text)  # -1 is an error, as in count.table(depth=-1)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# ----- the parser -------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    display = argparse.ArgumentParser(add_help=False)
    g = display.add_argument_group("display")
    g.add_argument("--depth", type=_depth_arg, default=2, metavar="N",
                   help="module levels shown below the root (default 2; 'all' for every level)")
    g.add_argument("--sort", choices=SORTS, default=None,
                   help="sort sibling modules (and ops) by this figure, largest first (default: model order)")
    g.add_argument("--units", choices=UNITS, default="auto",
                   help="auto: SI prefixes per value (default); or one fixed prefix for every number")
    g.add_argument("--by", choices=VIEWS, default="module", help="table of modules (tree), ops or phases")
    g.add_argument("--json", metavar="PATH", help="save the report as JSON (flopdispatch.report/1); '-' for stdout")
    g.add_argument("--html", metavar="PATH", help="save a self-contained interactive HTML page")
    g.add_argument("-q", "--quiet", action="store_true", help="print no table (files are still written)")

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

    parser = _Parser(prog=PROG, description="Exact FLOPs, MACs and bytes for PyTorch code, per module, op and phase.",
                     epilog="See 'flopdispatch COMMAND --help'. Reports: run prints on stderr, the others on stdout.")
    parser.add_argument("--version", action="version", version=f"flopdispatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", parents=[display, measure], help="count an unmodified Python script",
                         description="Run SCRIPT as __main__ (sys.argv = [SCRIPT, ARGS...]) under the counter, keep "
                                     "its output and exit status, then print the report on stderr. Options go "
                                     "before SCRIPT; everything after it is the script's.")
    run.add_argument("--all-ranks", action="store_true",
                     help="under torchrun: every rank prints its table (default: rank 0 only; each rank "
                          "writes its own --json/--html file, PATH.rank<R>.json)")
    run.add_argument("-m", dest="module", metavar="MODULE", help="run a module as __main__ (like python -m)")
    run.add_argument("target", nargs=argparse.REMAINDER, metavar="SCRIPT [ARGS...]")

    model = sub.add_parser("model", parents=[display, measure], help="count a model from a config or a factory",
                           description="Count one call (or a training step) of a model built from SPEC: "
                                       "hf:<model_type> (Hugging Face config, random weights, nothing "
                                       "downloaded: decoders as the causal LM, encoders as the base model, "
                                       "encoder-decoders whole; or a class name, hf:BertForMaskedLM) or "
                                       "package.module:factory (called with no arguments).")
    model.add_argument("spec", metavar="SPEC")
    model.add_argument("--input", dest="inputs", action="append", type=_input_arg, default=[],
                       metavar="[NAME=]SHAPE[:DTYPE]",
                       help="an input tensor, e.g. 1x3x224x224 (floats in the model's dtype) or 1x1024:int64; "
                            "NAME=SHAPE[:DTYPE] passes it by name (attention_mask=1x128:int64); repeatable "
                            "(hf: models take one positional input, the others by name; default: 1x128 "
                            "token ids below the vocab size, pixels or audio features from the config)")
    model.add_argument("--config", action="extend", nargs="+", default=[], metavar="KEY=VALUE|FILE.json",
                       help="hf: config attributes (ints, floats, true/false parsed; an unknown key is an "
                            "error) or a config.json")
    model.add_argument("--dtype", type=_dtype_arg, default=None, metavar="bf16|fp16|fp32",
                       help="the model's floating dtype, and its float inputs' unless they give one "
                            "(default: the model's own; hf: float32, bf16 for mixture-of-experts on meta)")
    model.add_argument("--device", default="meta", help="meta (default: no memory, no compute), cpu or cuda")
    model.add_argument("--train", action="store_true",
                       help="forward + backward (loss: output.loss if present, else the sum of the first tensor)")
    model.add_argument("--symbolic", metavar="NAMES", default=None,
                       help="name the inputs' dims in order (e.g. batch,seq; an empty name keeps a dim fixed): "
                            "FLOPs, MACs and bytes as polynomials in them, per module (fake tensors)")

    show = sub.add_parser("show", parents=[display], help="render a saved JSON report again",
                          description="Render a report saved with --json (same display options). Several "
                                      "reports (one per rank, out.rank*.json): a per-rank table with the job's "
                                      "totals and the imbalance between ranks.")
    show.add_argument("report", metavar="REPORT.json", nargs="+")

    demo = sub.add_parser("demo", parents=[display, measure], help="count a GPT-2-small training step on the meta device")
    demo.add_argument("--batch", type=int, default=1, help="sequences per step (default 1)")
    demo.add_argument("--seq", type=int, default=1024, help="tokens per sequence (default 1024)")
    demo.add_argument("--device", default="meta", help="meta (default) or cpu")
    return parser


# ----- shared plumbing ---------------------------------------------------------------------------

def _check_output_paths(args):
    for flag in ("json", "html"):
        path = getattr(args, flag, None)
        if not path or path == "-":
            continue
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise CLIError(f"--{flag} {path}: directory {parent} does not exist")
        if os.path.isdir(path):
            raise CLIError(f"--{flag} {path}: is a directory")


def _display(args) -> dict:
    return {"by": args.by, "depth": args.depth, "sort": args.sort, "units": args.units}


def _emit(report, args, stream) -> None:
    """Write the files asked for, then the table on `stream` (unless quiet or --json -)."""
    if args.json:
        if args.json == "-":
            sys.stdout.write(report.to_json() + "\n")
            sys.stdout.flush()
        else:
            _write(args.json, report.save)
    if args.html:
        from .htmlreport import write_html

        _write(args.html, lambda p: write_html(report, p))
    if args.quiet or (args.json == "-" and stream is sys.stdout):
        return
    print_report(report, stream, **_display(args))


def _write(path, writer):
    try:
        writer(path)
    except OSError as e:
        raise CLIError(f"cannot write {path}: {e.strerror or e}") from None


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


def _device_meta(devices: List[str]) -> dict:
    out = {"devices": devices}
    if any(d.startswith("cuda") for d in devices):
        try:
            import torch

            out["device_names"] = sorted({torch.cuda.get_device_name(torch.device(d)) for d in devices
                                          if d.startswith("cuda")})
        except Exception:  # noqa: BLE001 - metadata only
            pass
    return out


def _command_line(argv) -> List[str]:
    return [PROG] + list(argv)


# ----- run ---------------------------------------------------------------------------------------

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


def cmd_run(args, argv) -> int:
    from .counter import count
    from .progress import Progress
    from .schema import Report, default_meta

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
    _check_output_paths(args)

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
    meta = default_meta(mode="run", target=label, command=_command_line(argv), duration_s=round(duration, 3),
                        exit_code=exit_code, error=error,
                        model_class=found.get("model_class") if len(c.roots) <= 1 else None,  # several: see roots
                        dtypes=found.get("dtypes"))
    if found.get("devices"):
        meta.update(_device_meta(found["devices"]))
    launched = comm.launcher_rank()  # under torchrun: one report per rank, out.rank<R>.json
    if launched is not None:
        rank, world = launched
        meta.update(rank=rank, world_size=world)
        args.json, args.html = comm.rank_path(args.json, rank), comm.rank_path(args.html, rank)
        args.quiet = args.quiet or (rank != 0 and not args.all_ranks)
    report = Report.from_count(c, meta=meta)
    try:
        _emit(report, args, sys.stderr)
    except CLIError as e:
        print(f"{PROG}: error: {terminal_safe(e)}", file=sys.stderr)
        return exit_code or e.code
    return exit_code


# ----- model -------------------------------------------------------------------------------------

def _pick_loss(out):
    import torch

    loss = getattr(out, "loss", None)
    if isinstance(loss, torch.Tensor):
        return loss

    def first(x):
        if isinstance(x, torch.Tensor):
            return x if x.is_floating_point() or x.is_complex() else None
        if isinstance(x, dict) or hasattr(x, "values") and callable(x.values):
            items = list(x.values())
        elif isinstance(x, (list, tuple)):
            items = list(x)
        else:
            return None
        for item in items:
            t = first(item)
            if t is not None:
                return t
        return None

    t = first(out)
    if t is None:
        raise CLIError("--train: the model's output holds no floating-point tensor to take a loss from", code=1)
    return t.sum()


class _DropKnownHFWarning:
    """While the model runs: drop transformers' "`loss_type=None` ... unrecognized" warning, which
    every model class outside its loss table logs when given labels (the default causal-LM loss is
    what --train means). Only that message, only from transformers' own logger, only meanwhile."""

    LOGGER = "transformers.modeling_utils"

    def filter(self, record) -> bool:
        try:
            return not record.getMessage().startswith("`loss_type=None` was set in the config")
        except Exception:  # noqa: BLE001 - a record that cannot format is not ours to judge
            return True

    def __enter__(self):
        import logging

        self.logger = logging.getLogger(self.LOGGER)
        self.logger.addFilter(self)
        return self

    def __exit__(self, *exc):
        self.logger.removeFilter(self)
        return False


def _cmd_symbolic(model, args_in, kwargs, texts, args, argv, target) -> int:
    """``model ... --symbolic batch,seq``: the table of polynomials, and the report (counts at the
    inputs' own sizes) with a ``symbolic`` field for --json / --html. The names are given to the
    input tensors' dims by position (``symbolic.dims_from_tensors``)."""
    from .schema import Report, default_meta
    from .symbolic import dims_from_tensors, symbolic

    if args.ignore or args.timing:
        raise CLIError("--symbolic counts FLOPs, MACs and bytes only: --ignore and --timing do not apply")
    try:
        inputs, keyword_inputs, dims, sizes = dims_from_tensors(args_in, kwargs, args.symbolic.split(","))
        s = symbolic(model, inputs, dims, train=args.train, keyword_inputs=keyword_inputs, device=args.device)
        at_inputs = s.retrace(**sizes)  # the report's totals: the inputs' sizes (a size of 1 is traced at 2)
    except (ValueError, TypeError) as e:
        raise CLIError(f"--symbolic: {e}") from None
    if not args.quiet and args.json != "-":
        print(s.table(depth=args.depth if args.depth is not None else 2, field="flops", notes=False))
        for field in ("macs", "bytes"):
            print()
            print(s.table(depth=0, field=field, notes=field == "bytes").split("\n", 2)[-1])
    meta = default_meta(mode="model", target=target, command=_command_line(argv), train=bool(args.train),
                        inputs=texts, model_class=type(model).__name__)
    report = Report.from_count(at_inputs.count, meta=meta)
    report.symbolic = s.to_dict()
    if args.json or args.html:
        args.quiet = True
        _emit(report, args, sys.stdout)
    return 0


def cmd_model(args, argv) -> int:
    import torch

    from .counter import count
    from .inputs import is_hf_model, make_inputs
    from .models import (build_from, complete_hf_inputs, default_inputs, meta_hint, read_config_items,
                         uses_grouped_mm_experts)
    from .progress import Progress
    from .schema import Report, default_meta

    spec, device = args.spec, args.device
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise CLIError(f"bad --device {device!r}: expected meta, cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CLIError("--device cuda: CUDA is not available here")
    _check_output_paths(args)
    files, overrides = read_config_items(args.config)
    model = build_from(spec, overrides, files, device, args.dtype)
    hf = is_hf_model(model)
    specs = list(args.inputs)
    if not specs:
        specs = default_inputs(model) if hf else []
        if not specs:
            raise CLIError(f"{spec}: give the model's inputs with --input SHAPE[:DTYPE] (e.g. --input 1x3x224x224)")
    if hf and args.dtype is None and uses_grouped_mm_experts(model) and torch.device(device).type == "meta":
        print(f"{PROG}: note: {spec} runs in bfloat16 on meta (the meta kernel of its grouped expert matmuls "
              "takes bf16 only; --device cpu for float32)", file=sys.stderr)
    args_in, kwargs = make_inputs(model, specs, device=device)
    texts = [s if isinstance(s, str) else s.text for s in specs]
    if hf:
        texts += complete_hf_inputs(model, args_in, kwargs, args.train)

    model.train(args.train)
    if args.symbolic is not None:
        return _cmd_symbolic(model, args_in, kwargs, texts, args, argv, spec)
    try:
        counter = count(model, timing=args.timing, ignore=args.ignore, activations=args.activations)
    except ValueError as e:
        raise CLIError(f"--ignore: {e}") from None
    t0 = time.perf_counter()
    try:
        with counter as c, Progress(c, sys.stderr), _DropKnownHFWarning():
            if args.train:
                _pick_loss(model(*args_in, **kwargs)).backward()
            else:
                with torch.no_grad():
                    model(*args_in, **kwargs)
    except CLIError:
        raise
    except Exception as e:  # noqa: BLE001
        if os.environ.get("FLOPDISPATCH_TRACEBACK"):
            raise
        raise CLIError(f"running {spec} failed: {type(e).__name__}: {_one_line(e)}{meta_hint(e, device)} "
                       "(FLOPDISPATCH_TRACEBACK=1 shows the traceback)", code=1) from None
    duration = time.perf_counter() - t0
    tensors = list(model.parameters()) + list(model.buffers()) + list(args_in) + list(kwargs.values())
    meta = default_meta(mode="model", target=spec, command=_command_line(argv), duration_s=round(duration, 3),
                        inputs=texts, train=bool(args.train),
                        model_class=type(model).__name__, config={**files, **overrides} or None,
                        dtypes=sorted({str(t.dtype).replace("torch.", "") for t in tensors}))
    meta.update(_device_meta(sorted({str(t.device) for t in tensors}) or [device]))
    report = Report.from_count(c, meta=meta)
    _emit(report, args, sys.stdout)
    return 0


def _one_line(e) -> str:
    return " ".join(str(e).split()) or type(e).__name__


# ----- show, demo --------------------------------------------------------------------------------

def cmd_show(args, argv) -> int:
    from .schema import Report, ReportError

    _check_output_paths(args)
    try:
        reports = [Report.load(path) for path in args.report]
    except ReportError as e:
        raise CLIError(str(e)) from None
    if len(reports) > 1:  # one report per rank: the job
        from .report import _Fmt

        if args.json or args.html:
            raise CLIError("show: --json and --html take one report (several are shown as a per-rank table)")
        if not args.quiet:
            print("\n".join(comm.rank_table(reports, args.report, _Fmt(args.units))))
        return 0
    _emit(reports[0], args, sys.stdout)
    return 0


def cmd_demo(args, argv) -> int:
    import torch

    from ._demo import GPT
    from .counter import count
    from .report import human
    from .schema import Report, default_meta

    if args.batch < 1 or not 1 <= args.seq <= 1024:
        raise CLIError("--batch must be >= 1 and --seq between 1 and 1024")
    if args.device not in ("meta", "cpu"):
        raise CLIError(f"--device {args.device!r}: the demo runs on meta or cpu")
    _check_output_paths(args)
    batch, seq, device = args.batch, args.seq, args.device
    model = GPT(device=device)
    idx = torch.randint(0, 50257, (batch, seq), device=device)
    t0 = time.perf_counter()
    try:
        counter = count(model, timing=args.timing, ignore=args.ignore, activations=args.activations)
    except ValueError as e:
        raise CLIError(f"--ignore: {e}") from None
    with counter as c:
        loss = model(idx, targets=idx)
        loss.backward()
    meta = default_meta(mode="demo", target=f"GPT-2 small training step, {batch} x {seq} tokens",
                        command=_command_line(argv), duration_s=round(time.perf_counter() - t0, 3),
                        inputs=[f"{batch}x{seq}:int64"], train=True, model_class="GPT", devices=[device],
                        dtypes=["float32", "int64"])
    report = Report.from_count(c, meta=meta)
    quiet = args.quiet or args.json == "-"
    if not quiet:
        tokens, n = batch * seq, c.params
        print(f"GPT-2 small ({human(n)} parameters), training step on {device}, {batch} x {seq} tokens\n")
        sys.stdout.flush()
        print_report(report, sys.stdout, summary=False, **_display(args))
        print()
        for phase in ("forward", "backward", "optimizer", "other"):
            p = c.phase(phase)
            if p.calls:
                print(f"{phase:>9}: {human(p.flops, 'FLOPs'):>13}  {human(p.macs, 'MACs'):>12}")
        print(f"FLOPs per token: {human(c.flops / tokens)}; rule of thumb 6 * N = {human(6 * n)} "
              f"(ratio {c.flops / tokens / (6 * n):.3f})")
        if c.causal_macs != c.macs:
            print(f"causal-aware: {human(c.causal_macs, 'MACs')} of {human(c.macs, 'MACs')} dense "
                  f"({100 * (1 - c.causal_macs / c.macs):.1f}% of MACs fall on masked positions)")
        else:
            print("causal-aware figure: none here (on meta, SDPA decomposes to plain matmuls and the causal "
                  "mask becomes an explicit tensor; run with --device cpu to see it)")
    args.quiet = True
    _emit(report, args, sys.stdout)
    return 0


COMMANDS = {"run": cmd_run, "model": cmd_model, "show": cmd_show, "demo": cmd_demo}


_VALUE_OPTIONS = {"--depth", "--sort", "--units", "--by", "--json", "--html"}


def _split_run_module(argv):
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


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        head, module_args = _split_run_module(argv)
        args = parser.parse_args(head)
        if module_args is not None:
            args.target = module_args
        if args.command is None:
            parser.print_help()
            return 2
        try:
            return COMMANDS[args.command](args, argv)
        except SpecError as e:  # a bad spec, input or config: the user's to fix
            raise CLIError(str(e)) from None
        except BuildError as e:  # the model's own code failed to build it
            raise CLIError(str(e), code=1) from None
    except CLIError as e:
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        print(f"{PROG}: error: {terminal_safe(e)}", file=sys.stderr)  # one line, no escape reaches the terminal
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


__all__ = ["main", "build_parser", "parse_input", "parse_config", "CLIError", "render_text"]
