"""Input specs: the text form of a model's inputs, shared by the command line's ``--input`` and
``flopdispatch.profile``.

    "1x3x224x224"              a positional float tensor (the model's floating dtype)
    "1x128:int64"              a positional tensor of that dtype (token ids below the vocab size)
    "attention_mask=1x128:i64" a keyword input

A spec without a dtype makes floats in the model's dtype, except token ids: an input filling a
parameter named ``input_ids``, ``*_ids``, ``tokens``, ``idx`` or ``labels`` (a transformers model's
positional input when its main input is ``input_ids``; its attention masks too) is int64, so
``"2x512"`` is what a language model expects. Token ids (integer inputs named ``*input_ids``,
``labels`` or positional) are drawn below the model's vocabulary size; integer masks are ones,
other integer inputs zeros; floats are random normal. Shapes and dtypes are what counts: values
never change a FLOP count, except where a model reads them (a mask, a router).
"""
from __future__ import annotations

import difflib
import inspect
from typing import TYPE_CHECKING, Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

if TYPE_CHECKING:  # torch loads where a dtype or a tensor is made: the command line parses specs without it
    import torch


class SpecError(ValueError):
    """A bad spec (an input shape, a dtype, a model spec, a config key); the message is one line."""


DTYPE_ALIASES = {"f32": "float32", "fp32": "float32", "float": "float32", "f16": "float16", "fp16": "float16",
                 "half": "float16", "bf16": "bfloat16", "f64": "float64", "fp64": "float64", "double": "float64",
                 "i64": "int64", "long": "int64", "i32": "int32", "int": "int32", "i8": "int8", "u8": "uint8"}

_MAX_ELEMENTS = 2 ** 63 - 1  # torch's numel is an int64


class InputSpec(NamedTuple):
    """One parsed input: ``name`` (None: positional), ``shape``, ``dtype`` (None: the model's
    floating dtype) and the ``text`` it came from."""
    name: Optional[str]
    shape: Tuple[int, ...]
    dtype: Optional[torch.dtype]
    text: str


def parse_dtype(text: str) -> torch.dtype:
    """'bf16', 'bfloat16', 'int64', 'i64'... -> the torch dtype; SpecError for anything else."""
    import torch

    name = DTYPE_ALIASES.get(text.strip().lower(), text.strip().lower())
    dtype = getattr(torch, name, None) if name.isidentifier() else None
    if not isinstance(dtype, torch.dtype):
        known = sorted(set(DTYPE_ALIASES) | set(DTYPE_ALIASES.values()) | {"bfloat16", "float16", "bool", "int16"})
        close = difflib.get_close_matches(text.strip().lower(), known, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise SpecError(f"unknown dtype {text!r}{hint} (e.g. float32, bf16, fp16, int64)")
    return dtype


def parse_input_spec(text: str) -> InputSpec:
    """'[NAME=]SHAPE[:DTYPE]' -> InputSpec; SpecError (a ValueError) with a one-line reason."""
    if not isinstance(text, str):
        raise SpecError(f"an input spec is a string like '1x3x224x224', got {type(text).__name__}")
    name = None
    body = text
    if "=" in text:
        name, _, body = text.partition("=")
        name = name.strip()
        if not name.isidentifier():
            raise SpecError(f"bad --input {text!r}: expected NAME=SHAPE[:DTYPE] with a parameter name "
                            "(e.g. attention_mask=1x128:int64)")
    shape_text, _, dtype_text = body.partition(":")
    dims = shape_text.lower().split("x") if shape_text.strip() else []
    if not dims or not all(d.strip().isdigit() and d.strip().isascii() for d in dims):
        raise SpecError(f"bad --input {text!r}: expected a shape like 1x3x224x224, "
                        "optionally :dtype (e.g. 1x128:int64) and a name (input_ids=1x128:int64)")
    shape = tuple(int(d) for d in dims)
    if any(d == 0 for d in shape):
        raise SpecError(f"bad --input {text!r}: sizes must be positive")
    elements = 1
    for d in shape:
        elements *= d
    if elements > _MAX_ELEMENTS:
        raise SpecError(f"bad --input {text!r}: {elements:.3g} elements, more than a tensor can hold (2^63 - 1)")
    dtype = None
    if dtype_text:
        try:
            dtype = parse_dtype(dtype_text)
        except SpecError as e:
            raise SpecError(f"bad --input {text!r}: {e}") from None
    return InputSpec(name, shape, dtype, text)


def parse_input(text: str) -> Tuple[tuple, torch.dtype]:
    """'1x3x224x224' or '1x1024:int64' -> ((1, 1024), torch.int64) (float32 when no dtype is
    given); SpecError (a ValueError) with a reason. Names are for ``parse_input_spec``."""
    import torch

    spec = parse_input_spec(text)
    if spec.name is not None:
        raise SpecError(f"bad --input {text!r}: expected SHAPE[:DTYPE] without a name here")
    return spec.shape, spec.dtype or torch.float32


def _model_device_dtype(model: torch.nn.Module):
    import torch

    device, dtype = None, None
    for t in list(model.parameters()) + list(model.buffers()):
        if device is None:
            device = t.device
        if dtype is None and t.is_floating_point():
            dtype = t.dtype
        if device is not None and dtype is not None:
            break
    return device or torch.device("cpu"), dtype or torch.float32


def _vocab_size(model) -> Optional[int]:
    config = getattr(model, "config", None)
    for c in (config, getattr(config, "text_config", None), getattr(config, "decoder", None)):
        v = getattr(c, "vocab_size", None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def is_hf_model(model) -> bool:
    """A transformers model (its forward takes one main input positionally, the rest by name)."""
    return hasattr(model, "config") and hasattr(model, "main_input_name") and hasattr(model, "can_generate")


def default_input_dtype(model: torch.nn.Module, name: Optional[str] = None, position: int = 0
                        ) -> Optional[torch.dtype]:
    """The dtype an input given without one should have: ``torch.int64`` for token ids (and a
    transformers model's attention masks), None for "the model's floating dtype". ``name``: the
    keyword it is passed as, or None for the positional input at ``position``. The one rule behind
    ``--input``, ``fd.profile`` and ``fd.symbolic``: ids are what fills a parameter named like token
    ids (``is_token_input``: input_ids, *_ids, tokens, idx, labels), and for a token model its first
    input (positional or by its parameter name) and ``targets``. A token model: a transformers model
    whose ``main_input_name`` is ``input_ids``, else a model whose forward's first parameter is named
    ``input_ids``, whose ``get_input_embeddings()`` is an Embedding, or whose first parameter belongs
    to an Embedding."""
    import torch

    if name is not None:
        if is_token_input(name) or (is_hf_model(model) and name.endswith("attention_mask")):
            return torch.int64
        if name != "targets" and name != _first_input_name(model):
            return None
        return torch.int64 if _token_model(model) else None
    filled = _positional_names(model)
    if position < len(filled) and is_token_input(filled[position]):
        return torch.int64
    return torch.int64 if position == 0 and _token_model(model) else None


def _positional_names(model) -> List[str]:
    """The parameters positional inputs fill, in order (a transformers model: its main input only)."""
    if is_hf_model(model):
        main = getattr(model, "main_input_name", None)
        return [main] if isinstance(main, str) else []
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _first_input_name(model) -> Optional[str]:
    try:
        params = [p for p in inspect.signature(model.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return None
    return params[0].name if params else None


def _token_model(model) -> bool:
    """Whether the model's (first positional) input is token ids (see ``default_input_dtype``)."""
    import torch

    main = getattr(model, "main_input_name", None) if is_hf_model(model) else None
    if isinstance(main, str):
        return main.endswith("input_ids")
    if (_first_input_name(model) or "").endswith("input_ids"):
        return True
    getter = getattr(model, "get_input_embeddings", None)
    if callable(getter):
        try:
            if isinstance(getter(), torch.nn.Embedding):
                return True
        except Exception:  # noqa: BLE001 - a model that does not implement it: look at its parameters
            pass
    for module in model.modules():
        if any(True for _ in module.parameters(recurse=False)):
            return isinstance(module, (torch.nn.Embedding, torch.nn.EmbeddingBag))
    return False


def _make_tensor(spec: InputSpec, name: Optional[str], device, float_dtype, vocab: Optional[int]):
    import torch

    dtype = spec.dtype or float_dtype
    try:
        if dtype.is_floating_point or dtype.is_complex:
            return torch.randn(spec.shape, dtype=dtype, device=device)
        if dtype == torch.bool or (name or "").endswith("mask"):
            return torch.ones(spec.shape, dtype=dtype, device=device)
        if name is None or name.endswith("input_ids") or name == "labels":
            return torch.randint(0, vocab or 1, spec.shape, dtype=dtype, device=device)
        return torch.zeros(spec.shape, dtype=dtype, device=device)
    except (RuntimeError, OverflowError, ValueError, TypeError, MemoryError) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise SpecError(f"--input {spec.text}: cannot make this tensor on {device}: {reason}") from None


def make_inputs(model: torch.nn.Module, specs: Sequence[Union[str, InputSpec]], *, device=None,
                dtype: Optional[torch.dtype] = None, given_positional: int = 0,
                given_names: Sequence[str] = ()) -> Tuple[List[Any], Dict[str, Any]]:
    """Tensors for ``model(*args, **kwargs)`` from input specs: (args, kwargs).

    device: the model's (its first parameter or buffer) unless given. Float inputs without a dtype
    take ``dtype`` or else the model's floating dtype. Names are checked against ``model.forward``'s
    parameters (a name it does not take is a SpecError naming close matches); a transformers model
    takes one positional input, the others by name (its second positional parameter is often
    ``past_key_values``). ``given_positional``/``given_names``: inputs the caller passes besides
    these (tensors), which positional specs follow and names must not repeat.
    """
    import torch

    parsed = [s if isinstance(s, InputSpec) else parse_input_spec(s) for s in specs]
    model_device, model_dtype = _model_device_dtype(model)
    device = torch.device(device) if device is not None else model_device
    float_dtype = dtype or model_dtype
    vocab = _vocab_size(model)
    positional = [s for s in parsed if s.name is None]
    keyword = [s for s in parsed if s.name is not None]
    if any(s.name is None for s in parsed[len(positional):]):
        raise SpecError("positional inputs go before named ones (NAME=SHAPE)")
    if positional and given_positional:
        raise SpecError("give positional inputs either as tensors or as specs, not both (named specs mix with "
                        "either)")
    n_positional = len(positional) + given_positional
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        params = None
    hf = is_hf_model(model)
    if params is not None:
        takes = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        var_positional = any(p.kind == p.VAR_POSITIONAL for p in params)
        var_keyword = any(p.kind == p.VAR_KEYWORD for p in params)
        if hf and n_positional > 1:
            first = takes[0].name if takes else "the main input"
            second = f" (its second positional parameter is {takes[1].name})" if len(takes) > 1 else ""
            raise SpecError(f"{type(model).__name__} takes one positional input ({first}); give the others by "
                            f"name, e.g. --input attention_mask=1x128:int64{second}")
        if n_positional > len(takes) and not var_positional:
            raise SpecError(f"{type(model).__name__}.forward takes {len(takes)} positional input(s), "
                            f"got {n_positional}")
        bound = {p.name for p in takes[:n_positional]} | set(given_names)
        names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        seen = set()
        for s in keyword:
            if s.name in seen or s.name in bound:
                raise SpecError(f"input {s.name!r} is given twice")
            seen.add(s.name)
            if s.name not in names and (hf or not var_keyword):
                close = difflib.get_close_matches(s.name, names, n=3, cutoff=0.6)
                hint = f"; did you mean {' or '.join(close)}?" if close else f"; it takes {', '.join(names[:12])}"
                raise SpecError(f"{type(model).__name__}.forward has no input named {s.name!r}{hint}")
    # no dtype given: token ids are integers (default_input_dtype: the one rule)
    positional = [s if s.dtype is not None else s._replace(dtype=default_input_dtype(model, None, i))
                  for i, s in enumerate(positional, start=given_positional)]
    keyword = [s if s.dtype is not None else s._replace(dtype=default_input_dtype(model, s.name)) for s in keyword]
    args = [_make_tensor(s, None, device, float_dtype, vocab) for s in positional]
    kwargs = {s.name: _make_tensor(s, s.name, device, float_dtype, vocab) for s in keyword}
    return args, kwargs


_TOKEN_NAMES = ("ids", "tokens", "idx", "labels", "token_ids", "input_ids")


def is_token_input(name: Optional[str]) -> bool:
    """Whether a forward parameter of this name takes token ids (integers): input_ids, *_ids,
    tokens, idx, labels."""
    return bool(name) and (name in _TOKEN_NAMES or name.endswith("_ids"))
