"""Models from a spec: ``hf:<model_type>`` (a Hugging Face config, no weights) or
``package.module:factory`` (called with no arguments), shared by the command line's ``model`` and
``flopdispatch.build_model``."""
from __future__ import annotations

import difflib
import inspect
import json
import os
import re
import sys
from typing import List, Optional, Tuple

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


def read_config_items(items: Optional[List[str]]) -> Tuple[dict, dict]:
    """--config entries -> (from_files, overrides): JSON files' attributes (read leniently, as
    transformers reads a config.json: ``model_type`` kept) and ``key=value`` pairs (int, float,
    bool, none and JSON parsed; checked strictly against the config class)."""
    files, overrides = {}, {}
    for item in items or []:
        if "=" in item:
            key, _, value = item.partition("=")
            if not key.isidentifier():
                raise SpecError(f"bad --config {item!r}: expected key=value with a config attribute name")
            overrides[key] = _config_value(value)
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
            files.update(data)
        else:
            raise SpecError(f"bad --config {item!r}: expected key=value or a config.json path")
    return files, overrides


def parse_config(items: Optional[List[str]]) -> dict:
    """--config entries as one dict of config attributes (files first, then key=value pairs)."""
    files, overrides = read_config_items(items)
    files.pop("model_type", None)
    return {**files, **overrides}


def _one_line(e: BaseException) -> str:
    """The whole message of an exception on one line (transformers' validation errors span several)."""
    return " ".join(str(e).split()) or type(e).__name__


# ----- hf: ---------------------------------------------------------------------------------------

_EXAMPLES = "e.g. gpt2, llama, mistral, mixtral, qwen2, bert, t5, bart, whisper, vit"


def _transformers():
    try:
        import transformers
    except ImportError:
        raise SpecError("hf: specs need transformers (pip install transformers)") from None
    return transformers


def _model_types() -> List[str]:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return list(CONFIG_MAPPING_NAMES)


def _resolve_model_type(name: str):
    """hf:<name> -> (model_type, model class or None): a model type (case, '-' and '_' forgiven) or a
    transformers model class name (hf:BertForMaskedLM)."""
    transformers = _transformers()
    if not name:
        raise SpecError(f"bad SPEC 'hf:': give a model type ({_EXAMPLES})")
    types = _model_types()
    if name in types:
        return name, None
    folded = {t.lower().replace("_", "-"): t for t in types}
    key = name.lower().replace("_", "-")
    if key in folded:
        return folded[key], None
    if name.isidentifier() and name[:1].isupper():
        try:
            cls = getattr(transformers, name, None)
        except Exception:  # noqa: BLE001 - a lazily imported class whose backend is missing
            cls = None
        config_class = getattr(cls, "config_class", None)
        if isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel) and \
                getattr(config_class, "model_type", ""):
            return config_class.model_type, cls
    hub = "/" in name
    probe = key.rsplit("/", 1)[-1]  # a Hub id's model name: Llama-3.1-8B, Qwen2.5-7B, bert-base-uncased
    stem = re.match(r"[a-z]*[0-9]?", probe).group()
    close = [folded[m] for m in difflib.get_close_matches(probe, list(folded), n=3, cutoff=0.6)
             or (difflib.get_close_matches(stem, list(folded), n=3, cutoff=0.8) if stem else [])]
    hint = f"; did you mean {', '.join('hf:' + c for c in close)}?" if close else ""
    what = f"{name!r} looks like a Hub id" if hub else f"unknown Hugging Face model type {name!r}"
    raise SpecError(f"bad SPEC 'hf:{name}': {what}{hint} (hf: takes a model type, {_EXAMPLES}, or a "
                    "transformers class name; Hub ids are not fetched and nothing is downloaded: give the "
                    "sizes with --config KEY=VALUE, or the model's config.json: hf: --config config.json)")


def _known_keys(config_class, default) -> set:
    import dataclasses

    keys = set(vars(default)) | set(getattr(config_class, "attribute_map", {}) or {})
    if dataclasses.is_dataclass(config_class):
        keys |= {f.name for f in dataclasses.fields(config_class)}
    try:
        keys |= set(inspect.signature(config_class.__init__).parameters)
    except (TypeError, ValueError):
        pass
    return keys


def _read_by_modeling_code(config_class) -> set:
    """Attributes the family's modeling code reads with a default, ``getattr(config, "head_dim",
    None)``, without declaring them in its config class (Qwen2's head_dim): keys it honours."""
    import importlib.util

    module = config_class.__module__.replace(".configuration_", ".modeling_")
    try:
        spec = importlib.util.find_spec(module)
        with open(spec.origin, encoding="utf-8") as f:
            source = f.read()
    except (ImportError, AttributeError, TypeError, ValueError, OSError):
        return set()
    return set(re.findall(r"getattr\(\s*(?:self\.)?config\s*,\s*[\"'](\w+)[\"']", source))


def hf_config(model_type: str, overrides: Optional[dict] = None, from_file: Optional[dict] = None):
    """The transformers config of ``model_type`` with ``from_file`` (lenient, as transformers reads
    a config.json) and ``overrides`` (strict: a key the config class does not know is a SpecError
    naming close matches; so is a value transformers rejects, with its whole message)."""
    transformers = _transformers()
    overrides, from_file = dict(overrides or {}), dict(from_file or {})
    from_file.pop("model_type", None)
    config_class = transformers.AutoConfig.for_model(model_type).__class__
    default = config_class()
    known = _known_keys(config_class, default) | _read_by_modeling_code(config_class)
    try:
        config = config_class(**{**from_file, **overrides})
    except Exception as e:  # noqa: BLE001 - transformers' validation: show all of it
        raise SpecError(f"hf:{model_type}: {config_class.__name__} rejected the config: "
                        f"{type(e).__name__}: {_one_line(e)}") from None
    for key in overrides:
        if key not in known and key in vars(config):  # kept as a stray attribute: nothing reads it
            close = difflib.get_close_matches(key, sorted(k for k in known if not k.startswith("_")), n=3,
                                              cutoff=0.75)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise SpecError(f"bad config key {key!r}: {config_class.__name__} has no attribute {key!r}{hint}")
    return config


def _hf_class(transformers, config):
    """What people mean by hf:<type>: encoder-decoders whole (T5, BART: the seq2seq LM; Whisper: the
    speech seq2seq model), encoders as the base model (BERT, RoBERTa, DeBERTa: BertModel, no LM head
    to warn about), decoders as the causal LM (Llama, GPT-2), anything else its base model (ViT)."""
    from transformers.models.auto import modeling_auto as auto

    t = config.model_type
    if getattr(config, "is_encoder_decoder", False):
        for mapping, cls in ((auto.MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES, "AutoModelForSpeechSeq2Seq"),
                             (auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES, "AutoModelForSeq2SeqLM")):
            if t in mapping:
                return getattr(transformers, cls)
    elif t in auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return transformers.AutoModel
    elif t in auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return transformers.AutoModelForCausalLM
    return transformers.AutoModel


def _hf_model(name: str, overrides: dict, from_file: dict, device, dtype):
    import torch

    transformers = _transformers()
    if not name and from_file.get("model_type"):
        name = str(from_file["model_type"])
    model_type, cls = _resolve_model_type(name)
    config = hf_config(model_type, overrides, from_file)
    builder = cls or _hf_class(transformers, config)
    if dtype is None and isinstance(getattr(config, "dtype", None), torch.dtype):
        dtype = config.dtype  # a config.json's torch_dtype
    try:
        with torch.device(device):
            if cls is not None:
                model = cls._from_config(config, **({"dtype": dtype} if dtype else {}))
            else:
                model = builder.from_config(config, **({"dtype": dtype} if dtype else {}))
    except Exception as e:  # noqa: BLE001
        raise BuildError(f"hf:{name}: building {getattr(builder, '__name__', 'the model')} failed: "
                         f"{type(e).__name__}: {_one_line(e)}{meta_hint(e, device)}") from None
    return model


def uses_grouped_mm_experts(model) -> bool:
    """Whether a transformers MoE model runs its experts with grouped mm (whose meta kernel takes bf16 only)."""
    config = getattr(model, "config", None)
    return getattr(config, "_experts_implementation", None) == "grouped_mm"


def meta_hint(e: BaseException, device) -> str:
    """For a model that reads tensor values (``.item()``, data-dependent shapes), which the meta
    device does not have: the hint to run it on the CPU instead."""
    import torch

    if torch.device(device).type != "meta":
        return ""
    text = str(e)
    if "meta" in text or "data-dependent" in text or "_local_scalar_dense" in text:
        return (" (this model reads tensor values, which meta tensors do not have: try --device cpu, "
                "with a small --config to keep it fast)")
    return ""


# ----- package.module:factory -------------------------------------------------------------------

def _factory_model(spec, device, dtype=None):
    import importlib

    import torch

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr or not all(p.isidentifier() for p in module_name.split(".") + attr.split(".")):
        raise SpecError(f"bad SPEC {spec!r}: expected hf:<model_type> or package.module:factory")
    added = os.getcwd() not in sys.path and "" not in sys.path
    if added:  # as `python -c`: modules in the working directory import
        sys.path.insert(0, os.getcwd())
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise SpecError(f"bad SPEC {spec!r}: no module named {module_name!r}") from None
        raise BuildError(f"importing {module_name} failed: {type(e).__name__}: {_one_line(e)}") from None
    except Exception as e:  # noqa: BLE001
        raise BuildError(f"importing {module_name} failed: {type(e).__name__}: {_one_line(e)}") from None
    finally:
        if added and os.getcwd() in sys.path:
            sys.path.remove(os.getcwd())
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
        raise BuildError(f"{spec}() failed: {type(e).__name__}: {_one_line(e)}") from None
    if not isinstance(model, torch.nn.Module):
        raise SpecError(f"{spec}() returned {type(model).__name__}, not a torch.nn.Module")
    if any(t.device.type != torch.device(device).type for t in list(model.parameters()) + list(model.buffers())):
        model = model.to(device)
    if dtype is not None:
        model = model.to(dtype)  # floating parameters and buffers only
    return model


# ----- the public entry points ------------------------------------------------------------------

def build_model(spec: str, config: Optional[dict] = None, *, device="meta", dtype=None,
                config_file: Optional[str] = None):
    """A model from a spec, as ``flopdispatch model SPEC`` builds it (no weights are downloaded).

    spec: ``"hf:<model_type>"`` (``hf:llama``, ``hf:bert``, ``hf:whisper``; or a transformers class
    name, ``hf:BertForMaskedLM``), built from its config with random weights: decoders as the causal
    LM, encoders as the base model, encoder-decoders whole; or ``"package.module:factory"``, called
    with no arguments. config (hf: only): config attributes, checked strictly (an unknown key is a
    ValueError naming close matches); config_file: a config.json read as transformers reads it.
    device: ``"meta"`` (default: no memory, no compute), ``"cpu"`` or ``"cuda"``. dtype: a torch
    dtype or a name (``"bf16"``), for the parameters; hf: default is the config file's dtype or
    float32, except that a mixture-of-experts model on meta is built in bfloat16 (the meta kernel
    of the grouped expert matmul takes bf16 only). Bad specs raise ``SpecError`` (a ValueError),
    models whose own code fails ``BuildError`` (a RuntimeError).
    """
    import torch

    from .inputs import parse_dtype

    if not isinstance(spec, str):
        raise SpecError(f"a model spec is a string like 'hf:llama' or 'package.module:factory', got "
                        f"{type(spec).__name__}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise SpecError(f"bad device {device!r}: expected meta, cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SpecError("device cuda: CUDA is not available here")
    if isinstance(dtype, str):
        dtype = parse_dtype(dtype)
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise SpecError(f"dtype {dtype}: the model's dtype is a floating dtype (bf16, fp16, fp32)")
    files = {}
    if config_file is not None:
        files, _ = read_config_items([str(config_file)])
    return build_from(spec, dict(config or {}), files, device, dtype)


def build_from(spec: str, overrides: dict, files: dict, device, dtype):
    """build_model with the command line's --config split: ``files`` (config.json attributes,
    lenient) and ``overrides`` (key=value, strict); ``dtype`` a torch dtype or None."""
    import torch

    dev = torch.device(device)
    if spec.startswith("hf:"):
        model = _hf_model(spec[3:], overrides, files, device, dtype)
        if uses_grouped_mm_experts(model) and dev.type == "meta":
            floating = {p.dtype for p in model.parameters() if p.is_floating_point()}
            if floating != {torch.bfloat16}:
                if dtype is not None:
                    raise SpecError(f"{spec}: on meta the grouped expert matmuls take bfloat16 only: use dtype "
                                    "bf16 (--dtype bf16), or device cpu for other dtypes")
                model = model.to(torch.bfloat16)
        return model
    if overrides or files:
        raise SpecError("--config applies to hf: specs only")
    if ":" not in spec:
        raise SpecError(f"bad SPEC {spec!r}: expected hf:<model_type> or package.module:factory")
    return _factory_model(spec, device, dtype)


# Encoders that, given no attention mask, look for padding in the ids (a value read, which meta
# tensors lack): given the all-ones mask a tokenizer makes, they run on meta. (With a mask, BERT
# and others read its values instead, so the others get none.)
_MASK_ON_META = {"deberta", "deberta-v2"}


def default_inputs(model) -> List[str]:
    """Input specs for one call of a transformers model built from its config, by name: token ids
    (1 x 128, capped by the context length) for text models, plus the decoder's for
    encoder-decoders (and an all-ones attention mask for the few that read the ids without one);
    1 x channels x size x size pixels for vision models; Whisper's log-mel
    features (1 x mel bins x 2 x source positions) and decoder ids. [] when it cannot tell."""
    config = getattr(model, "config", None)
    if config is None:
        return []
    main = getattr(model, "main_input_name", "input_ids")
    if main == "input_features" and getattr(config, "num_mel_bins", None):
        frames = 2 * int(getattr(config, "max_source_positions", 1500))
        seq = min(128, int(getattr(config, "max_target_positions", 128) or 128))
        return [f"input_features=1x{config.num_mel_bins}x{frames}", f"decoder_input_ids=1x{seq}:int64"]
    if main == "pixel_values":
        size, channels = getattr(config, "image_size", None), getattr(config, "num_channels", None)
        if size and channels:
            size = size if isinstance(size, int) else size[0]
            return [f"pixel_values=1x{channels}x{size}x{size}"]
        return []
    if main == "input_ids" and getattr(config, "vocab_size", None):
        context = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        seq = min(128, context or 128)
        specs = [f"input_ids=1x{seq}:int64"]
        if getattr(config, "is_encoder_decoder", False):
            specs.append(f"decoder_input_ids=1x{seq}:int64")
        elif config.model_type in _MASK_ON_META:
            specs.append(f"attention_mask=1x{seq}:int64")
        return specs
    return []


def complete_hf_inputs(model, args: list, kwargs: dict, train: bool) -> List[str]:
    """Fill in what a transformers model needs besides its main input, in place: an
    encoder-decoder's decoder ids (the input ids, or for a speech model 1 x 128 ids, when not
    given) and, for ``train``, ``labels`` (the ids the model predicts) where the model has an LM
    head that takes them. Returns the specs of the decoder ids it added (for the report)."""
    import torch

    config = getattr(model, "config", None)
    if config is None:
        return []
    added = []
    main = args[0] if args else kwargs.get(getattr(model, "main_input_name", "input_ids"))
    ids = main if isinstance(main, torch.Tensor) and not main.is_floating_point() else None
    encoder_decoder = getattr(config, "is_encoder_decoder", False)
    if encoder_decoder and "decoder_input_ids" not in kwargs and not (train and "labels" in kwargs):
        if ids is not None:
            kwargs["decoder_input_ids"] = ids
        elif isinstance(main, torch.Tensor) and main.dim() >= 1:  # features or pixels in: ids for the decoder
            seq = min(128, int(getattr(config, "max_target_positions", 128) or 128))
            kwargs["decoder_input_ids"] = torch.zeros(main.shape[0], seq, dtype=torch.int64, device=main.device)
        if "decoder_input_ids" in kwargs:
            added.append("decoder_input_ids=" + "x".join(map(str, kwargs["decoder_input_ids"].shape)) + ":int64")
    if train and "labels" not in kwargs:
        target = kwargs.get("decoder_input_ids") if encoder_decoder else ids
        if target is not None and type(model).__name__.endswith(
                ("LMHeadModel", "ForCausalLM", "ForConditionalGeneration", "ForMaskedLM")):
            kwargs["labels"] = target
    return added
