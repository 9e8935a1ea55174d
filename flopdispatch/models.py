"""Models from a spec: ``hf:<model_type>`` (a Hugging Face config, no weights) or
``package.module:factory`` (called with no arguments), shared by the command line's ``model`` and
``flopdispatch.build_model``."""
from __future__ import annotations

import json
import os
import sys
from typing import List

from .inputs import SpecError


class BuildError(RuntimeError):
    """A model that fails to build (its factory or transformers raised); the message is one line."""


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
                raise SpecError(f"bad --config {item!r}: expected key=value with a config attribute name")
            out[key] = _config_value(value)
        elif item.endswith(".json") or os.path.isfile(item):
            try:
                with open(item, encoding="utf-8") as f:
                    data = json.load(f)
            except FileNotFoundError:
                raise SpecError(f"--config {item}: no such file") from None
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                raise SpecError(f"--config {item}: not a JSON config ({type(e).__name__})") from None
            if not isinstance(data, dict):
                raise SpecError(f"--config {item}: expected a JSON object of config attributes")
            data.pop("model_type", None)
            out.update(data)
        else:
            raise SpecError(f"bad --config {item!r}: expected key=value or a config.json path")
    return out


def _hf_model(model_type, overrides, device):
    try:
        import transformers
    except ImportError:
        raise SpecError("hf: specs need transformers (pip install transformers)") from None
    import torch

    if not model_type:
        raise SpecError("bad SPEC 'hf:': give a model type, e.g. hf:gpt2 or hf:llama")
    try:
        config = transformers.AutoConfig.for_model(model_type, **overrides)
    except (ValueError, KeyError):
        raise SpecError(f"bad SPEC 'hf:{model_type}': unknown Hugging Face model type {model_type!r} "
                       "(e.g. gpt2, llama, mistral, bert, t5, vit)") from None
    except Exception as e:  # noqa: BLE001 - a config that rejects an override
        raise SpecError(f"hf:{model_type}: the config rejected --config: {type(e).__name__}: {_first_line(e)}") from None
    last = None
    with torch.device(device):
        for auto in ("AutoModelForCausalLM", "AutoModelForSeq2SeqLM", "AutoModel"):
            try:
                return getattr(transformers, auto).from_config(config), config
            except ValueError as e:  # this auto class has no mapping for the config
                last = e
            except Exception as e:  # noqa: BLE001
                raise BuildError(f"hf:{model_type}: building the model failed: {type(e).__name__}: {_first_line(e)}") from None
    raise BuildError(f"hf:{model_type}: no model class for this config ({_first_line(last)})")


def _factory_model(spec, device):
    import importlib

    import torch

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr or not all(p.isidentifier() for p in module_name.split(".") + attr.split(".")):
        raise SpecError(f"bad SPEC {spec!r}: expected hf:<model_type> or package.module:factory")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise SpecError(f"bad SPEC {spec!r}: no module named {module_name!r}") from None
        raise BuildError(f"importing {module_name} failed: {type(e).__name__}: {_first_line(e)}") from None
    except Exception as e:  # noqa: BLE001
        raise BuildError(f"importing {module_name} failed: {type(e).__name__}: {_first_line(e)}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SpecError(f"bad SPEC {spec!r}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise SpecError(f"bad SPEC {spec!r}: {attr} is not callable")
    try:
        with torch.device(device):
            model = obj()
    except Exception as e:  # noqa: BLE001
        raise BuildError(f"{spec}() failed: {type(e).__name__}: {_first_line(e)}") from None
    if not isinstance(model, torch.nn.Module):
        raise SpecError(f"{spec}() returned {type(model).__name__}, not a torch.nn.Module")
    if any(t.device.type != torch.device(device).type for t in list(model.parameters()) + list(model.buffers())):
        model = model.to(device)
    return model


def _first_line(e) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
