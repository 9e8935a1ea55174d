"""``flopdispatch model SPEC [options]``: one call (or a training step) of a model built from a spec,
no code: ``hf:<model_type>`` (a Hugging Face config, random weights, nothing downloaded) or
``package.module:factory`` (called with no arguments). ``models.py`` builds it and ``inputs.py``
makes the ``--input`` tensors (both shared with the Python API)."""
from __future__ import annotations

import argparse
import sys
import time

from ._shared import (PROG, TRACEBACK_HINT, CLIError, check_output_paths, command_line, device_meta, did_you_mean,
                      emit, one_line, show_traceback)


def add_parser(subparsers, parents) -> argparse.ArgumentParser:
    model = subparsers.add_parser("model", parents=[parents.display, parents.measure],
                                  help="count a model from a config or a factory",
                                  description="Count one call (or a training step) of a model built from SPEC: "
                                              "hf:<model_type> (Hugging Face config, random weights, nothing "
                                              "downloaded: decoders as the causal LM, encoders as the base model, "
                                              "encoder-decoders whole; or a class name, hf:BertForMaskedLM) or "
                                              "package.module:factory (called with no arguments).")
    model.add_argument("spec", metavar="SPEC", nargs="?", default=None)
    model.add_argument("--input", dest="inputs", action=_InputsAction, nargs="+", default=[],
                       metavar="[NAME=]SHAPE[:DTYPE]",
                       help="input tensors, e.g. 1x3x224x224 (floats in the model's dtype) or 1x1024:int64; "
                            "NAME=SHAPE[:DTYPE] passes one by name (attention_mask=1x128:int64); several after "
                            "one --input, or --input repeated. Without a dtype, a token model's ids (its "
                            "positional input when that is input_ids/tokens/idx, names ending in _ids, labels; "
                            "an hf: model's attention masks) are int64, anything else floats (hf: models take one "
                            "positional input, the others by name; default: 1x128 token ids below the vocab "
                            "size, pixels or audio features from the config)")
    model.add_argument("--config", action="extend", nargs="+", default=[], metavar="KEY=VALUE|FILE.json",
                       help="hf: config attributes (ints, floats, true/false parsed; an unknown key is an "
                            "error) or a config.json (its model_type names the family: hf: --config config.json)")
    model.add_argument("--dtype", type=_dtype_arg, default=None, metavar="bf16|fp16|fp32",
                       help="the model's floating dtype, and its float inputs' unless they give one "
                            "(default: the model's own; hf: float32, bf16 for mixture-of-experts on meta)")
    model.add_argument("--device", default="meta", help="meta (default: no memory, no compute), cpu or cuda")
    model.add_argument("--train", action="store_true",
                       help="forward + backward (loss: output.loss if present, else the sum of the first tensor)")
    model.add_argument("--symbolic", metavar="NAMES", default=None,
                       help="name the inputs' dims in order (e.g. batch,seq; an empty name keeps a dim fixed): "
                            "FLOPs, MACs and bytes as polynomials in them, per module (fake tensors)")
    return model


def _looks_like_model_spec(text: str) -> bool:
    """hf:..., or package.module:factory (what SPEC takes), not a shape."""
    head, colon, tail = text.partition(":")
    return bool(colon) and (head == "hf" or (all(p.isidentifier() for p in head.split("."))
                                             and tail.replace(".", "_").isidentifier()))


class _InputsAction(argparse.Action):
    """--input SPEC [SPEC ...] (repeatable): each parsed here, so a bad one is a usage error. A
    model SPEC typed after the inputs (``model --input 1x128 hf:gpt2``) is taken as SPEC."""

    def __call__(self, parser, namespace, values, option_string=None):
        from ..inputs import SpecError, parse_input_spec

        specs = list(getattr(namespace, self.dest, None) or [])
        for text in values:
            try:
                specs.append(parse_input_spec(text))
            except SpecError as e:
                if getattr(namespace, "spec", None) is None and _looks_like_model_spec(text) and \
                        getattr(namespace, "spec_after_inputs", None) is None:
                    namespace.spec_after_inputs = text  # argparse sets the empty SPEC afterwards
                    continue
                raise argparse.ArgumentError(self, str(e).replace("bad --input ", "bad shape ")) from None
        setattr(namespace, self.dest, specs)


def _dtype_arg(text: str):
    from ..inputs import SpecError, parse_dtype

    try:
        dtype = parse_dtype(text)
    except SpecError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if not dtype.is_floating_point:
        raise argparse.ArgumentTypeError(f"{text!r} is not a floating dtype (bf16, fp16, fp32)")
    return dtype


def _input_texts(specs, args_in, kwargs) -> list:
    """The inputs as the report states them: each spec as typed, with the dtype it was given when it
    gave none and is not a float (token ids: ``2x512`` -> ``2x512:int64``)."""
    from ..inputs import parse_input_spec

    texts, positional = [], iter(args_in)
    for spec in specs:
        parsed = parse_input_spec(spec) if isinstance(spec, str) else spec
        tensor = next(positional, None) if parsed.name is None else kwargs.get(parsed.name)
        text = parsed.text
        if parsed.dtype is None and tensor is not None and not tensor.is_floating_point():
            text += ":" + str(tensor.dtype).replace("torch.", "")
        texts.append(text)
    return texts


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


def run(args, argv) -> int:
    """Build the model, make its inputs, count one call (or training step); the report on stdout."""
    import torch

    from ..counter import count
    from ..inputs import is_hf_model, make_inputs
    from ..models import (build_from, complete_hf_inputs, default_inputs, meta_hint, read_config_items,
                          uses_grouped_mm_experts)
    from ..progress import Progress
    from ..schema import Report, default_meta

    spec, device = args.spec or getattr(args, "spec_after_inputs", None), args.device
    if spec is None:
        raise CLIError("model: give the model's SPEC: hf:<model_type> or package.module:factory "
                       "(see 'flopdispatch model --help')")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise CLIError(f"bad --device {device!r}{did_you_mean(device, ('meta', 'cpu', 'cuda'))}: expected meta, "
                       "cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CLIError("--device cuda: CUDA is not available here")
    check_output_paths(args)
    files, overrides = read_config_items(args.config)
    model = build_from(spec, overrides, files, device, args.dtype)
    hf = is_hf_model(model)
    if hf and spec == "hf:":  # the family came from a config.json: name it in the header
        spec = f"hf:{getattr(model.config, 'model_type', '') or type(model).__name__}"
    specs = list(args.inputs)
    if not specs:
        specs = default_inputs(model) if hf else []
        if not specs:
            raise CLIError(f"{spec}: give the model's inputs with --input SHAPE[:DTYPE] (e.g. --input 1x3x224x224)")
    if hf and args.dtype is None and uses_grouped_mm_experts(model) and torch.device(device).type == "meta":
        print(f"{PROG}: note: {spec} runs in bfloat16 on meta (the meta kernel of its grouped expert matmuls "
              "takes bf16 only; --device cpu for float32)", file=sys.stderr)
    args_in, kwargs = make_inputs(model, specs, device=device)
    texts = _input_texts(specs, args_in, kwargs)
    if hf:
        texts += complete_hf_inputs(model, args_in, kwargs, args.train)

    model.train(args.train)
    if args.symbolic is not None:
        from ._symbolic import run_symbolic

        return run_symbolic(model, args_in, kwargs, texts, args, argv, spec)
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
    except Exception as e:  # noqa: BLE001 - the model's own code failed: one line (and its traceback if asked)
        show_traceback(e)
        raise CLIError(f"running {spec} failed: {type(e).__name__}: {one_line(e)}{meta_hint(e, device)} "
                       f"{TRACEBACK_HINT}", code=1) from None
    duration = time.perf_counter() - t0
    tensors = list(model.parameters()) + list(model.buffers()) + list(args_in) + list(kwargs.values())
    meta = default_meta(mode="model", target=spec, command=command_line(argv), duration_s=round(duration, 3),
                        inputs=texts, train=bool(args.train),
                        model_class=type(model).__name__, config={**files, **overrides} or None,
                        dtypes=sorted({str(t.dtype).replace("torch.", "") for t in tensors}))
    meta.update(device_meta(sorted({str(t.device) for t in tensors}) or [device]))
    report = Report.from_count(c, meta=meta)
    emit(report, args, sys.stdout)
    return 0
