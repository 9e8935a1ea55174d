"""The command line: ``flopdispatch run | model | show | demo`` (also ``python -m flopdispatch``).

    flopdispatch run [options] SCRIPT [ARGS...]     count an unmodified script (or: run -m MODULE ARGS...)
    flopdispatch model SPEC [options]                count a model built from a spec, no code
        SPEC: hf:<model_type> (a Hugging Face config, e.g. hf:llama --config num_hidden_layers=2)
              package.module:factory (called with no arguments, returns an nn.Module)
    flopdispatch show REPORT.json [options]          render a saved report again
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
missing script, a bad SPEC, a bad --input, an unreadable report) is one line on stderr and
status 2; a model that fails to build or run is one line and status 1 (set
FLOPDISPATCH_TRACEBACK=1 for the traceback).
"""
from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import time
import traceback
import zipfile
from typing import List, Optional

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

_DTYPE_ALIASES = {"f32": "float32", "fp32": "float32", "float": "float32", "f16": "float16", "fp16": "float16",
                  "half": "float16", "bf16": "bfloat16", "f64": "float64", "fp64": "float64", "double": "float64",
                  "i64": "int64", "long": "int64", "i32": "int32", "int": "int32", "i8": "int8", "u8": "uint8"}


def parse_input(text: str):
    """'1x3x224x224' or '1x1024:int64' -> ((1, 1024), torch.int64); ValueError with a reason."""
    import torch

    shape_text, _, dtype_text = text.partition(":")
    dims = shape_text.lower().split("x") if shape_text else []
    if not dims or not all(d.strip().isdigit() for d in dims):
        raise ValueError(f"bad --input {text!r}: expected a shape like 1x3x224x224, "
                         "optionally :dtype (e.g. 1x128:int64)")
    shape = tuple(int(d) for d in dims)
    if any(d == 0 for d in shape):
        raise ValueError(f"bad --input {text!r}: sizes must be positive")
    dtype = torch.float32
    if dtype_text:
        name = _DTYPE_ALIASES.get(dtype_text.lower(), dtype_text.lower())
        dtype = getattr(torch, name, None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"bad --input {text!r}: unknown dtype {dtype_text!r} (e.g. float32, bfloat16, int64)")
    return shape, dtype


def _input_arg(text: str):
    try:
        shape, dtype = parse_input(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).replace("bad --input ", "bad shape ")) from None
    return text, shape, dtype


def _depth_arg(text: str):
    try:
        return parse_depth(text)  # -1 is an error, as in count.table(depth=-1)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _config_value(text: str):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    return text


def parse_config(items: List[str]) -> dict:
    """--config entries: key=value pairs (int/float/bool/none/JSON parsed) or paths of JSON files."""
    out = {}
    for item in items or []:
        if "=" in item:
            key, _, value = item.partition("=")
            if not key.isidentifier():
                raise CLIError(f"bad --config {item!r}: expected key=value with a config attribute name")
            out[key] = _config_value(value)
        elif item.endswith(".json") or os.path.isfile(item):
            try:
                with open(item, encoding="utf-8") as f:
                    data = json.load(f)
            except FileNotFoundError:
                raise CLIError(f"--config {item}: no such file") from None
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                raise CLIError(f"--config {item}: not a JSON config ({type(e).__name__})") from None
            if not isinstance(data, dict):
                raise CLIError(f"--config {item}: expected a JSON object of config attributes")
            data.pop("model_type", None)
            out.update(data)
        else:
            raise CLIError(f"bad --config {item!r}: expected key=value or a config.json path")
    return out


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

    parser = _Parser(prog=PROG, description="Exact FLOPs, MACs and bytes for PyTorch code, per module, op and phase.",
                     epilog="See 'flopdispatch COMMAND --help'. Reports: run prints on stderr, the others on stdout.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"flopdispatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", parents=[display, measure], help="count an unmodified Python script",
                         description="Run SCRIPT as __main__ (sys.argv = [SCRIPT, ARGS...]) under the counter, keep "
                                     "its output and exit status, then print the report on stderr. Options go "
                                     "before SCRIPT; everything after it is the script's.")
    run.add_argument("-m", dest="module", metavar="MODULE", help="run a module as __main__ (like python -m)")
    run.add_argument("target", nargs=argparse.REMAINDER, metavar="SCRIPT [ARGS...]")

    model = sub.add_parser("model", parents=[display, measure], help="count a model from a config or a factory",
                           description="Count one call (or a training step) of a model built from SPEC: "
                                       "hf:<model_type> (Hugging Face config, no weights) or "
                                       "package.module:factory (called with no arguments).")
    model.add_argument("spec", metavar="SPEC")
    model.add_argument("--input", dest="inputs", action="append", type=_input_arg, default=[], metavar="SHAPE[:DTYPE]",
                       help="an input tensor, e.g. 1x3x224x224 (float32) or 1x1024:int64; repeat for more "
                            "positional inputs (hf: default 1x128:int64 token ids below the vocab size)")
    model.add_argument("--config", action="extend", nargs="+", default=[], metavar="KEY=VALUE|FILE.json",
                       help="hf: config overrides (ints, floats, true/false parsed) or a config.json")
    model.add_argument("--device", default="meta", help="meta (default: no memory, no compute), cpu or cuda")
    model.add_argument("--train", action="store_true",
                       help="forward + backward (loss: output.loss if present, else the sum of the first tensor)")
    model.add_argument("--symbolic", metavar="NAMES", default=None,
                       help="name the inputs' dims in order (e.g. batch,seq; an empty name keeps a dim fixed): "
                            "FLOPs, MACs and bytes as polynomials in them, per module (fake tensors)")

    show = sub.add_parser("show", parents=[display], help="render a saved JSON report again",
                          description="Render a report saved with --json (same display options).")
    show.add_argument("report", metavar="REPORT.json")

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
        with count(timing=args.timing, ignore=args.ignore) as c:
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
                        exit_code=exit_code, error=error, model_class=found.get("model_class"),
                        dtypes=found.get("dtypes"))
    if found.get("devices"):
        meta.update(_device_meta(found["devices"]))
    report = Report.from_count(c, meta=meta)
    try:
        _emit(report, args, sys.stderr)
    except CLIError as e:
        print(f"{PROG}: error: {terminal_safe(e)}", file=sys.stderr)
        return exit_code or e.code
    return exit_code


# ----- model -------------------------------------------------------------------------------------

def _hf_model(model_type, overrides, device):
    try:
        import transformers
    except ImportError:
        raise CLIError("hf: specs need transformers (pip install transformers)") from None
    import torch

    if not model_type:
        raise CLIError("bad SPEC 'hf:': give a model type, e.g. hf:gpt2 or hf:llama")
    try:
        config = transformers.AutoConfig.for_model(model_type, **overrides)
    except (ValueError, KeyError):
        raise CLIError(f"bad SPEC 'hf:{model_type}': unknown Hugging Face model type {model_type!r} "
                       "(e.g. gpt2, llama, mistral, bert, t5, vit)") from None
    except Exception as e:  # noqa: BLE001 - a config that rejects an override
        raise CLIError(f"hf:{model_type}: the config rejected --config: {type(e).__name__}: {_first_line(e)}") from None
    last = None
    with torch.device(device):
        for auto in ("AutoModelForCausalLM", "AutoModelForSeq2SeqLM", "AutoModel"):
            try:
                return getattr(transformers, auto).from_config(config), config
            except ValueError as e:  # this auto class has no mapping for the config
                last = e
            except Exception as e:  # noqa: BLE001
                raise CLIError(f"hf:{model_type}: building the model failed: {type(e).__name__}: {_first_line(e)}",
                               code=1) from None
    raise CLIError(f"hf:{model_type}: no model class for this config ({_first_line(last)})", code=1)


def _factory_model(spec, device):
    import importlib

    import torch

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr or not all(p.isidentifier() for p in module_name.split(".") + attr.split(".")):
        raise CLIError(f"bad SPEC {spec!r}: expected hf:<model_type> or package.module:factory")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise CLIError(f"bad SPEC {spec!r}: no module named {module_name!r}") from None
        raise CLIError(f"importing {module_name} failed: {type(e).__name__}: {_first_line(e)}", code=1) from None
    except Exception as e:  # noqa: BLE001
        raise CLIError(f"importing {module_name} failed: {type(e).__name__}: {_first_line(e)}", code=1) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise CLIError(f"bad SPEC {spec!r}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise CLIError(f"bad SPEC {spec!r}: {attr} is not callable")
    try:
        with torch.device(device):
            model = obj()
    except Exception as e:  # noqa: BLE001
        raise CLIError(f"{spec}() failed: {type(e).__name__}: {_first_line(e)}", code=1) from None
    if not isinstance(model, torch.nn.Module):
        raise CLIError(f"{spec}() returned {type(model).__name__}, not a torch.nn.Module")
    if any(t.device.type != torch.device(device).type for t in list(model.parameters()) + list(model.buffers())):
        model = model.to(device)
    return model


def _first_line(e) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


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


def cmd_model(args, argv) -> int:
    import torch

    from .counter import count
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
    config = None
    if spec.startswith("hf:"):
        model, config = _hf_model(spec[3:], parse_config(args.config), device)
    else:
        if ":" not in spec:
            raise CLIError(f"bad SPEC {spec!r}: expected hf:<model_type> or package.module:factory")
        if args.config:
            raise CLIError("--config applies to hf: specs only")
        model = _factory_model(spec, device)

    specs = list(args.inputs)
    vocab = getattr(config, "vocab_size", None) if config is not None else None
    if not specs:
        if config is None:
            raise CLIError(f"{spec}: give the model's inputs with --input SHAPE[:DTYPE] (e.g. --input 1x3x224x224)")
        if vocab:
            context = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
            seq = min(128, context or 128)
            text = f"1x{seq}:int64"
        elif getattr(config, "image_size", None) and getattr(config, "num_channels", None):
            size = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
            text = f"1x{config.num_channels}x{size}x{size}"
        else:
            raise CLIError(f"{spec}: give the model's inputs with --input SHAPE[:DTYPE]")
        specs = [(text,) + parse_input(text)]
    inputs = []
    for text, shape, dtype in specs:
        if dtype.is_floating_point or dtype.is_complex:
            inputs.append(torch.randn(shape, dtype=dtype, device=device))
        elif dtype == torch.bool:
            inputs.append(torch.ones(shape, dtype=dtype, device=device))
        else:
            high = vocab or 1
            inputs.append(torch.randint(0, high, shape, dtype=dtype, device=device))
    kwargs = {}
    if config is not None and not inputs[0].is_floating_point():
        if args.train and type(model).__name__.endswith(("LMHeadModel", "ForCausalLM", "ForConditionalGeneration",
                                                         "ForMaskedLM")):
            kwargs["labels"] = inputs[0]
        elif getattr(config, "is_encoder_decoder", False):
            kwargs["decoder_input_ids"] = inputs[0]

    model.train(args.train)
    if args.symbolic is not None:
        from .symbolic import run_cli

        return run_cli(model, specs, sorted(kwargs), args, argv, spec)
    try:
        counter = count(model, timing=args.timing, ignore=args.ignore)
    except ValueError as e:
        raise CLIError(f"--ignore: {e}") from None
    t0 = time.perf_counter()
    try:
        with counter as c, Progress(c, sys.stderr), _DropKnownHFWarning():
            if args.train:
                _pick_loss(model(*inputs, **kwargs)).backward()
            else:
                with torch.no_grad():
                    model(*inputs, **kwargs)
    except CLIError:
        raise
    except Exception as e:  # noqa: BLE001
        if os.environ.get("FLOPDISPATCH_TRACEBACK"):
            raise
        raise CLIError(f"running {spec} failed: {type(e).__name__}: {_first_line(e)} "
                       "(FLOPDISPATCH_TRACEBACK=1 shows the traceback)", code=1) from None
    duration = time.perf_counter() - t0
    tensors = list(model.parameters()) + list(model.buffers()) + inputs
    meta = default_meta(mode="model", target=spec, command=_command_line(argv), duration_s=round(duration, 3),
                        inputs=[s[0] for s in specs], train=bool(args.train), model_class=type(model).__name__,
                        config=parse_config(args.config) or None,
                        dtypes=sorted({str(t.dtype).replace("torch.", "") for t in tensors}))
    meta.update(_device_meta(sorted({str(t.device) for t in tensors}) or [device]))
    report = Report.from_count(c, meta=meta)
    _emit(report, args, sys.stdout)
    return 0


# ----- show, demo --------------------------------------------------------------------------------

def cmd_show(args, argv) -> int:
    from .schema import Report, ReportError

    _check_output_paths(args)
    try:
        report = Report.load(args.report)
    except ReportError as e:
        raise CLIError(str(e)) from None
    _emit(report, args, sys.stdout)
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
        counter = count(model, timing=args.timing, ignore=args.ignore)
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
        return COMMANDS[args.command](args, argv)
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
