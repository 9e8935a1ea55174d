"""Input specs: the text form of a model's inputs (``1x3x224x224``, ``1x128:int64``), shared by the
command line's ``--input`` and ``flopdispatch.profile``."""
from __future__ import annotations

from typing import Tuple

import torch


class SpecError(ValueError):
    """A bad spec (an input shape, a dtype, a model spec, a config key); the message is one line."""


DTYPE_ALIASES = {"f32": "float32", "fp32": "float32", "float": "float32", "f16": "float16", "fp16": "float16",
                 "half": "float16", "bf16": "bfloat16", "f64": "float64", "fp64": "float64", "double": "float64",
                 "i64": "int64", "long": "int64", "i32": "int32", "int": "int32", "i8": "int8", "u8": "uint8"}


def parse_input(text: str) -> Tuple[tuple, torch.dtype]:
    """'1x3x224x224' or '1x1024:int64' -> ((1, 1024), torch.int64); SpecError (a ValueError) with a reason."""
    shape_text, _, dtype_text = text.partition(":")
    dims = shape_text.lower().split("x") if shape_text else []
    if not dims or not all(d.strip().isdigit() for d in dims):
        raise SpecError(f"bad --input {text!r}: expected a shape like 1x3x224x224, "
                        "optionally :dtype (e.g. 1x128:int64)")
    shape = tuple(int(d) for d in dims)
    if any(d == 0 for d in shape):
        raise SpecError(f"bad --input {text!r}: sizes must be positive")
    dtype = torch.float32
    if dtype_text:
        name = DTYPE_ALIASES.get(dtype_text.lower(), dtype_text.lower())
        dtype = getattr(torch, name, None)
        if not isinstance(dtype, torch.dtype):
            raise SpecError(f"bad --input {text!r}: unknown dtype {dtype_text!r} (e.g. float32, bfloat16, int64)")
    return shape, dtype
