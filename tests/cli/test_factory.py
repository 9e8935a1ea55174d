"""Models and inputs from specs (flopdispatch.models, flopdispatch.inputs): the hf: factory, input specs
in fd.profile and the CLI, their one-line errors, and to_pandas (issue 13 items 5, 6)."""
import importlib.util
import json
import logging
import importlib.machinery
import sys
import types

import pytest
import torch
import torch.nn as nn

import flopdispatch as fd
from flopdispatch import frames
from flopdispatch.cli import main
from flopdispatch.inputs import InputSpec, SpecError, make_inputs, parse_input_spec
from flopdispatch.models import build_model, complete_hf_inputs, default_inputs

TINY_LLAMA = {"hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
              "intermediate_size": 128, "vocab_size": 1000}


def _main(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(code, out, err, expected_code=2):
    assert code == expected_code, (code, err)
    assert out == "" and err.startswith("flopdispatch: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


# ----- input specs ------------------------------------------------------------------------------

def test_input_specs_parse_names_shapes_and_dtypes():
    assert parse_input_spec("1x3x224x224") == InputSpec(None, (1, 3, 224, 224), None, "1x3x224x224")
    assert parse_input_spec("2X128:i64") == InputSpec(None, (2, 128), torch.int64, "2X128:i64")
    assert parse_input_spec("attention_mask=1x8:bool") == InputSpec("attention_mask", (1, 8), torch.bool,
                                                                    "attention_mask=1x8:bool")
    assert parse_input_spec("x=4:bf16").dtype == torch.bfloat16


@pytest.mark.parametrize("text, message", [
    ("99999999999x99999999999", "1e+22 elements, more than a tensor can hold"),
    ("2xfoo", "expected a shape like 1x3x224x224"),
    ("1x3:float99", "unknown dtype 'float99'"),
    ("1x3:Size", "unknown dtype 'Size'"),
    ("1x0", "sizes must be positive"),
    ("", "expected a shape"),
    ("1x\u00b2", "expected a shape"),  # a superscript two is a digit to str.isdigit, not to int()
    ("9-x=1x3", "expected NAME=SHAPE[:DTYPE] with a parameter name"),
    ("x=", "expected a shape"),
])
def test_bad_input_specs_are_spec_errors_with_a_reason(text, message):
    with pytest.raises(SpecError, match="^bad --input ") as e:
        parse_input_spec(text)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, ValueError)


def test_make_inputs_follows_the_models_device_and_dtype_and_names():
    model = nn.Linear(4, 3).to(torch.bfloat16)
    args, kwargs = make_inputs(model, ["2x4"])
    assert kwargs == {} and args[0].shape == (2, 4) and args[0].dtype == torch.bfloat16  # the model's dtype
    args, _ = make_inputs(model, ["2x4:fp32"])
    assert args[0].dtype == torch.float32  # a dtype given wins
    args, _ = make_inputs(model, ["2x4"], device="meta", dtype=torch.float16)
    assert args[0].device.type == "meta" and args[0].dtype == torch.float16

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(50, 8)

        def forward(self, input_ids, attention_mask=None, token_type_ids=None):
            return self.emb(input_ids) * attention_mask[..., None]

    tagger = Tagger()
    tagger.config = types.SimpleNamespace(vocab_size=50)  # ids are drawn below the vocab size
    args, kwargs = make_inputs(tagger, ["3x7:int64", "attention_mask=3x7:int64", "token_type_ids=3x7:int64"])
    ids = args[0]
    assert ids.dtype == torch.int64 and 0 <= int(ids.min()) and int(ids.max()) < 50
    assert torch.equal(kwargs["attention_mask"], torch.ones(3, 7, dtype=torch.int64))  # masks are ones
    assert torch.equal(kwargs["token_type_ids"], torch.zeros(3, 7, dtype=torch.int64))  # other ints zeros


@pytest.mark.parametrize("specs, message", [
    (["3x7:int64", "attention_mask=3x7:int64", "2x2"], "positional inputs go before named ones"),
    (["attention_mask=3x7", "attention_mask=3x7"], "input 'attention_mask' is given twice"),
    (["3x7:int64", "input_ids=3x7:int64"], "input 'input_ids' is given twice"),
    (["atention_mask=3x7"], "has no input named 'atention_mask'; did you mean attention_mask?"),
    (["1x2", "1x2", "1x2"], "Tagger.forward takes 2 positional input(s), got 3"),
])
def test_make_inputs_rejects_what_the_forward_does_not_take(specs, message):
    class Tagger(nn.Module):
        def forward(self, input_ids, attention_mask=None):
            return input_ids

    with pytest.raises(SpecError) as e:
        make_inputs(Tagger(), specs)
    assert message in str(e.value), str(e.value)


def test_profile_takes_input_specs_and_counts_as_with_tensors():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    c = fd.profile(model, "2x3x8x8")
    # conv: 2 images * 8 out channels * 6 * 6 positions * (3 * 3 * 3) = 15552 MACs;
    # linear: 2 * 288 * 10 = 5760 MACs
    assert c.macs == 2 * 8 * 6 * 6 * 27 + 2 * 288 * 10 == 21312
    assert c.flops == fd.profile(model, torch.randn(2, 3, 8, 8)).flops  # the same as a tensor
    with pytest.raises(SpecError, match="Sequential.forward takes 1 positional input"):
        fd.profile(model, "2x3x8x8", "1x2")
    with pytest.raises(SpecError, match="either as tensors or as specs"):
        fd.profile(model, torch.randn(2, 3, 8, 8), "1x2")
    with pytest.raises(SpecError, match="has no input named 'x'; it takes input"):
        fd.profile(model, "x=2x3x8x8")


def test_profile_mixes_tensors_with_named_specs():
    class Masked(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 6, bias=False)

        def forward(self, x, mask=None):
            return self.fc(x) * mask

    model = Masked()
    c = fd.profile(model, torch.randn(4, 6), "mask=4x6")
    # 4 * 6 * 6 = 144 MACs (288 FLOPs) in fc, then 4 * 6 = 24 multiplies by the mask
    assert (c.macs, c.flops) == (144, 288 + 24)
    with pytest.raises(SpecError, match="given twice"):
        fd.profile(model, "mask=4x6", x=torch.randn(4, 6), mask=torch.ones(4, 6))


# ----- the hf: factory -----------------------------------------------------------------------------

needs_hf = pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="needs transformers")


@needs_hf
@pytest.mark.parametrize("spec, config, cls, inputs", [
    ("hf:llama", TINY_LLAMA, "LlamaForCausalLM", ["input_ids=1x128:int64"]),
    ("hf:gpt2", {"n_layer": 1, "n_embd": 64, "n_head": 4, "vocab_size": 500, "n_positions": 64}, "GPT2LMHeadModel",
     ["input_ids=1x64:int64"]),
    ("hf:bert", {"num_hidden_layers": 1, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
                 "vocab_size": 500}, "BertModel", ["input_ids=1x128:int64"]),
    ("hf:roberta", {"num_hidden_layers": 1, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
                    "vocab_size": 500}, "RobertaModel", ["input_ids=1x128:int64"]),
    ("hf:deberta-v2", {"num_hidden_layers": 1, "hidden_size": 64, "num_attention_heads": 4,
                       "intermediate_size": 128, "vocab_size": 500},
     "DebertaV2Model", ["input_ids=1x128:int64", "attention_mask=1x128:int64"]),
    ("hf:t5", {"num_layers": 1, "d_model": 64, "d_ff": 128, "num_heads": 4, "d_kv": 16, "vocab_size": 500},
     "T5ForConditionalGeneration", ["input_ids=1x128:int64", "decoder_input_ids=1x128:int64"]),
    ("hf:whisper", {"encoder_layers": 1, "decoder_layers": 1, "d_model": 64, "encoder_attention_heads": 4,
                    "decoder_attention_heads": 4, "encoder_ffn_dim": 128, "decoder_ffn_dim": 128,
                    "num_mel_bins": 16, "max_source_positions": 50},
     "WhisperForConditionalGeneration", ["input_features=1x16x100", "decoder_input_ids=1x128:int64"]),
    ("hf:vit", {"num_hidden_layers": 1, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
                "image_size": 32, "patch_size": 8}, "ViTModel", ["pixel_values=1x3x32x32"]),
    ("hf:BertForMaskedLM", {"num_hidden_layers": 1, "hidden_size": 64, "num_attention_heads": 4,
                            "intermediate_size": 128, "vocab_size": 500}, "BertForMaskedLM", ["input_ids=1x128:int64"]),
    ("hf:Qwen2", {**TINY_LLAMA}, "Qwen2ForCausalLM", ["input_ids=1x128:int64"]),  # case forgiven
])
def test_hf_builds_what_people_mean_and_runs_on_meta(spec, config, cls, inputs, capfd, caplog):
    with caplog.at_level(logging.WARNING):
        model = build_model(spec, config)
        assert type(model).__name__ == cls
        assert default_inputs(model) == inputs
        args, kwargs = make_inputs(model, inputs)
        complete_hf_inputs(model, args, kwargs, train=False)
        with torch.no_grad(), fd.count(model) as c:
            model(*args, **kwargs)
    assert c.macs > 0 and c.unsupported == {}
    assert "is_decoder" not in capfd.readouterr().err + caplog.text  # BERT: no standalone-LM-head warning


@needs_hf
def test_hf_whisper_is_the_whole_encoder_decoder_and_counts_as_built_by_hand():
    config = {"encoder_layers": 1, "decoder_layers": 1, "d_model": 64, "encoder_attention_heads": 4,
              "decoder_attention_heads": 4, "encoder_ffn_dim": 128, "decoder_ffn_dim": 128, "num_mel_bins": 16,
              "max_source_positions": 50, "vocab_size": 300, "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0,
              "decoder_start_token_id": 0}
    c = fd.profile(build_model("hf:whisper", config), "input_features=1x16x100", "decoder_input_ids=1x12:int64")
    import transformers as T

    with torch.device("meta"):
        model = T.WhisperForConditionalGeneration(T.WhisperConfig(**config))
    with fd.count(model) as hand:
        model(input_features=torch.randn(1, 16, 100, device="meta"),
              decoder_input_ids=torch.zeros(1, 12, dtype=torch.long, device="meta"))
    assert c.to_dict()["modules"] == hand.to_dict()["modules"]
    assert c.module("model.encoder").macs > 0 and c.module("model.decoder").macs > 0
    # the output projection: 12 decoder positions * 64 * 300 vocab = 230400 MACs
    assert c.module("proj_out").macs == 12 * 64 * 300 == 230400


@needs_hf
def test_hf_mixtral_works_by_default_on_meta_in_bf16():
    config = {**TINY_LLAMA, "num_local_experts": 4, "num_experts_per_tok": 2}
    model = build_model("hf:mixtral", config)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}  # grouped mm on meta takes bf16 only
    c = fd.profile(model, "1x16:int64")
    # every token goes to exactly 2 experts: 16 * 2 * (3 * 64 * 128) = 786432 expert MACs
    experts = c.module("model.layers.0.mlp.experts")
    assert experts.macs == 16 * 2 * 3 * 64 * 128 == 786432
    with pytest.raises(SpecError, match="grouped expert matmuls take bfloat16 only"):
        build_model("hf:mixtral", config, dtype="fp32")
    cpu = build_model("hf:mixtral", config, device="cpu", dtype=torch.float32)  # on the CPU, fp32 runs
    assert {p.dtype for p in cpu.parameters()} == {torch.float32}
    assert fd.profile(cpu, "1x16:int64").module("model.layers.0.mlp.experts").macs == 786432


@needs_hf
def test_hf_dtype_builds_the_model_in_it_and_float_inputs_follow():
    model = build_model("hf:llama", TINY_LLAMA, dtype="bf16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    _, kwargs = make_inputs(model, ["inputs_embeds=1x4x64"])  # a float input (the positional one is token ids)
    assert kwargs["inputs_embeds"].dtype == torch.bfloat16
    args, _ = make_inputs(model, ["1x4"])  # input_ids: integers whatever the model's dtype
    assert args[0].dtype == torch.int64
    with pytest.raises(SpecError, match="floating dtype"):
        build_model("hf:llama", TINY_LLAMA, dtype=torch.int64)
    with pytest.raises(SpecError, match="unknown dtype 'bf17'"):
        build_model("hf:llama", TINY_LLAMA, dtype="bf17")


@needs_hf
def test_hf_config_keys_are_strict_and_errors_whole():
    with pytest.raises(SpecError) as e:
        build_model("hf:llama", {**TINY_LLAMA, "num_hidden_layer": 2})
    assert str(e.value) == ("bad config key 'num_hidden_layer': LlamaConfig has no attribute 'num_hidden_layer'; "
                            "did you mean num_hidden_layers?")
    with pytest.raises(SpecError, match=r"has no attribute 'zzz_unheard_of'$"):
        build_model("hf:llama", {**TINY_LLAMA, "zzz_unheard_of": 1})
    # a key the modeling code reads with a default (Qwen2's head_dim) is honoured, not an error
    model = build_model("hf:qwen2", {**TINY_LLAMA, "head_dim": 32})
    assert model.model.layers[0].self_attn.q_proj.out_features == 4 * 32  # heads * head_dim
    # transformers' own validation: the whole message, on one line
    with pytest.raises(SpecError) as e:
        build_model("hf:llama", {**TINY_LLAMA, "hidden_size": 100, "num_attention_heads": 3})
    text = str(e.value)
    assert "\n" not in text and text.startswith("hf:llama: LlamaConfig rejected the config: ")
    assert "The hidden size (100) is not a multiple of the number of attention heads (3)" in text


@needs_hf
def test_hf_unknown_names_suggest_close_ones_and_say_nothing_is_fetched():
    with pytest.raises(SpecError) as e:
        build_model("hf:lama")
    assert "unknown Hugging Face model type 'lama'; did you mean hf:llama" in str(e.value)
    assert "Hub ids are not fetched and nothing is downloaded" in str(e.value)
    with pytest.raises(SpecError) as e:
        build_model("hf:meta-llama/Llama-2-7b")
    assert "'meta-llama/Llama-2-7b' looks like a Hub id" in str(e.value)
    assert "Hub ids are not fetched" in str(e.value)
    with pytest.raises(SpecError, match="give a model type"):
        build_model("hf:")


@needs_hf
def test_a_config_file_is_read_leniently_and_names_the_model_type(tmp_path):
    path = tmp_path / "config.json"
    # as a Hub config.json: model_type, legacy keys transformers converts or keeps
    path.write_text(json.dumps({"model_type": "llama", "rope_theta": 500000.0, "some_legacy_key": 1,
                                **TINY_LLAMA}))
    model = build_model("hf:", config_file=str(path))
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.rope_parameters["rope_theta"] == 500000.0


@needs_hf
def test_hf_models_take_one_positional_input():
    model = build_model("hf:gpt2", {"n_layer": 1, "n_embd": 64, "n_head": 4, "vocab_size": 500})
    with pytest.raises(SpecError) as e:
        make_inputs(model, ["1x8:int64", "1x8:int64"])
    assert str(e.value).startswith("GPT2LMHeadModel takes one positional input (input_ids); give the others by "
                                   "name, e.g. --input attention_mask=1x128:int64 (its second positional")
    with pytest.raises(SpecError, match="did you mean input_ids"):
        make_inputs(model, ["input_idz=1x8:int64"])


def test_factory_specs_take_dtype_and_refuse_config(tmp_path, monkeypatch):
    (tmp_path / "tiny_factory_mod.py").write_text("import torch.nn as nn\ndef build():\n    return nn.Linear(4, 2)\n")
    monkeypatch.chdir(tmp_path)
    path = list(sys.path)
    model = build_model("tiny_factory_mod:build", device="cpu", dtype="fp16")
    assert model.weight.dtype == torch.float16 and sys.path == path  # the working directory is not left in sys.path
    with pytest.raises(SpecError, match="--config applies to hf: specs only"):
        build_model("tiny_factory_mod:build", {"a": 1})
    with pytest.raises(SpecError, match="expected hf:<model_type> or package.module:factory"):
        build_model("tiny_factory_mod")


# ----- the command line ----------------------------------------------------------------------------

LLAMA_ARGS = ["--config", *[f"{k}={v}" for k, v in TINY_LLAMA.items()]]


@needs_hf
@pytest.mark.parametrize("args, message", [
    (["hf:llama", "--config", "num_hidden_layer=2"],
     "bad config key 'num_hidden_layer': LlamaConfig has no attribute 'num_hidden_layer'; did you mean "
     "num_hidden_layers?"),
    (["hf:llama", "--config", "hidden_size=100", "num_attention_heads=3"],
     "The hidden size (100) is not a multiple of the number of attention heads (3)."),
    (["hf:llama", "--config", "nofile"], "bad --config 'nofile': expected key=value or a config.json path"),
    (["hf:llama", "--config", "no_such_config.json"], "--config no_such_config.json: no such file"),
    (["hf:llama", "--config", "9x=1"], "expected key=value with a config attribute name"),
    (["hf:lama"], "did you mean hf:llama"),
    (["hf:meta-llama/Llama-2-7b"], "looks like a Hub id"),
    (["hf:llama", "--input", "99999999999x99999999999"], "more than a tensor can hold"),
    (["hf:llama", "--input", "2xfoo"], "bad shape '2xfoo'"),
    (["hf:llama", "--input", "1x8:int99"], "unknown dtype 'int99'"),
    (["hf:llama", "--dtype", "int64"], "'int64' is not a floating dtype"),
    (["hf:llama", "--dtype", "bf17"], "unknown dtype 'bf17'"),
    (["hf:llama", *LLAMA_ARGS, "--input", "1x8:int64", "--input", "1x8:int64"],
     "LlamaForCausalLM takes one positional input (input_ids); give the others by name"),
    (["hf:llama", *LLAMA_ARGS, "--input", "input_idz=1x8:int64"], "did you mean input_ids"),
    (["hf:llama", *LLAMA_ARGS, "--input", "1x8:int64", "--input", "input_ids=1x8:int64"], "given twice"),
    (["hf:mixtral", "--config", "num_hidden_layers=1", "--dtype", "fp32"],
     "on meta the grouped expert matmuls take bfloat16 only"),
    (["hf:llama", *LLAMA_ARGS, "--device", "cpu", "--input", "1x99999999999:int64"],
     "--input 1x99999999999:int64: cannot make this tensor on cpu"),
])
def test_cli_model_errors_are_one_line_with_status_2(capsys, args, message):
    err = _one_line(*_main(capsys, "model", *args))
    assert message in err, err


@needs_hf
def test_cli_a_model_that_reads_values_on_meta_suggests_the_cpu(capsys):
    err = _one_line(*_main(capsys, "model", "hf:bart", "--config", "encoder_layers=1", "decoder_layers=1",
                           "d_model=32", "encoder_attention_heads=2", "decoder_attention_heads=2"), expected_code=1)
    assert "cannot be called on meta tensors" in err and "try --device cpu" in err


@needs_hf
def test_cli_dtype_keyword_inputs_and_mixtral_by_default(tmp_path, capsys):
    out_json = tmp_path / "r.json"
    code, out, err = _main(capsys, "model", "hf:llama", *LLAMA_ARGS, "--dtype", "bf16", "--input", "2x16:int64",
                           "--input", "position_ids=2x16:int64", "--json", out_json, "-q")
    assert code == 0, err
    meta = json.loads(out_json.read_text())["meta"]
    # bf16 parameters, int64 inputs (and the rotary inv_freq buffer, which transformers keeps in float32)
    assert meta["dtypes"] == ["bfloat16", "float32", "int64"]
    assert meta["inputs"] == ["2x16:int64", "position_ids=2x16:int64"]
    model = build_model("hf:llama", TINY_LLAMA, dtype="bf16")
    ids = torch.zeros(2, 16, dtype=torch.long, device="meta")
    with torch.no_grad(), fd.count(model) as c:
        model(ids, position_ids=ids)
    assert json.loads(out_json.read_text())["totals"]["flops"] == c.flops
    code, out, err = _main(capsys, "model", "hf:mixtral", "--config", "num_hidden_layers=1", "--depth", "0")
    assert code == 0, err
    assert "dtype bfloat16, int64; inputs input_ids=1x128:int64" in out and "MixtralForCausalLM" in out
    assert err == ("flopdispatch: note: hf:mixtral runs in bfloat16 on meta (the meta kernel of its grouped expert "
                   "matmuls takes bf16 only; --device cpu for float32)\n")


@needs_hf
def test_cli_train_gives_labels_to_heads_and_sums_the_base_models_output(capsys, tmp_path):
    for spec, cls in (("hf:t5", "T5ForConditionalGeneration"), ("hf:bert", "BertModel")):
        path = tmp_path / f"{spec[3:]}.json"
        code, out, err = _main(capsys, "model", spec, "--config", "num_hidden_layers=1", "--train", "-q",
                               "--json", path, "--input", "1x16:int64")
        assert code == 0, err
        data = json.loads(path.read_text())
        assert data["meta"]["model_class"] == cls and data["phases"]["backward"]["flops"] > 0


# ----- to_pandas -----------------------------------------------------------------------------------

def _small_step():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with fd.count(model) as c:
        model(torch.randn(3, 4)).pow(2).sum().backward()
        opt.step()
    return c


def test_frame_rows_by_module_hold_hand_counts_and_own_work_adds_up():
    c = _small_step()
    columns, rows = frames.rows(fd.Report.from_count(c), "module")
    table = [dict(zip(columns, r)) for r in rows]
    fwd = {r["module"]: r for r in table if r["phase"] == "forward"}
    # Linear(4, 8) on 3 rows: 3 * 4 * 8 = 96 MACs, 2 * 96 + 3 * 8 bias adds = 216 FLOPs
    assert (fwd["0"]["macs"], fwd["0"]["flops"], fwd["0"]["type"], fwd["0"]["depth"]) == (96, 216, "Linear", 1)
    # ReLU on 3 x 8: 24 FLOPs; Linear(8, 2): 3 * 8 * 2 = 48 MACs, 96 + 6 = 102 FLOPs
    assert (fwd["1"]["flops"], fwd["2"]["macs"], fwd["2"]["flops"]) == (24, 48, 102)
    # the root: inclusive 216 + 24 + 102 = 342, nothing of its own; params 4 * 8 + 8 + 8 * 2 + 2 = 58
    assert (fwd[""]["flops"], fwd[""]["self_flops"], fwd[""]["params"]) == (342, 0, 58)
    assert {r["phase"] for r in table if r["module"] == frames.OUTSIDE} == {"backward", "optimizer", "other"}
    for field in frames.FIELDS:
        assert sum(r[f"self_{field}"] for r in table) == getattr(c.totals, field), field
        for phase in fd.PHASES:
            assert sum(r[f"self_{field}"] for r in table if r["phase"] == phase) == getattr(c.phase(phase), field)


def test_frame_rows_by_op_add_up_to_every_op_and_module():
    c = _small_step()
    columns, rows = frames.rows(fd.Report.from_count(c), "op")
    table = [dict(zip(columns, r)) for r in rows]
    assert {"module": "0", "phase": "forward", "op": "aten::addmm", "calls": 1, "flops": 216, "macs": 96,
            "bytes_read": 208, "bytes_written": 96, "causal_macs": 96} in table
    # bytes: reads x 3 * 4, W 4 * 8, b 8 floats = 52 * 4 = 208 B; writes 3 * 8 * 4 = 96 B
    for op, counts in c.ops().items():
        for field in ("calls", "flops", "macs", "bytes_read", "bytes_written"):
            assert sum(r[field] for r in table if r["op"] == op) == counts[field], (op, field)
    for name in c.module_names:  # a subtree's ops: the rows of the modules named below it
        def below(module):
            return module != frames.OUTSIDE and (not name or module == name or module.startswith(name + "."))

        rows_in = [r for r in table if below(r["module"])]
        assert sum(r["flops"] for r in rows_in) == c.module(name).flops, name
    with pytest.raises(ValueError, match="by must be one of module, op"):
        frames.rows(fd.Report.from_count(c), "phase")


def test_to_pandas_builds_a_frame_of_those_rows(monkeypatch):
    built = {}

    class FakeFrame:
        @classmethod
        def from_records(cls, data, columns):
            built.update(data=data, columns=columns)
            return cls()

    fake = types.ModuleType("pandas")  # a stand-in module (with a spec: other libraries probe for pandas)
    fake.__spec__ = importlib.machinery.ModuleSpec("pandas", None)
    fake.DataFrame = FakeFrame
    monkeypatch.setitem(sys.modules, "pandas", fake)
    c = _small_step()
    assert isinstance(c.to_pandas(by="op"), FakeFrame)
    assert built["columns"] == list(frames.OP_COLUMNS)
    assert built["data"] == frames.rows(fd.Report.from_count(c), "op")[1]
    assert isinstance(fd.Report.from_count(c).to_pandas(), FakeFrame)
    assert built["columns"] == list(frames.MODULE_COLUMNS)


def test_to_pandas_without_pandas_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas raises ImportError
    c = _small_step()
    with pytest.raises(ImportError) as e:
        c.to_pandas()
    assert str(e.value).startswith("to_pandas() needs pandas, which is not installed: pip install pandas")
    with pytest.raises(ValueError, match="by must be one of"):  # a bad view is a ValueError, pandas or not
        c.to_pandas(by="modules")


def test_to_pandas_with_pandas():
    pd = pytest.importorskip("pandas")
    c = _small_step()
    df = c.to_pandas()
    assert isinstance(df, pd.DataFrame) and list(df.columns) == list(frames.MODULE_COLUMNS)
    assert int(df.self_flops.sum()) == c.flops
    ops = c.to_pandas(by="op")
    assert int(ops.groupby("op").flops.sum()["aten::addmm"]) == c.ops()["aten::addmm"]["flops"]


@needs_hf
def test_cli_encoder_decoders_get_decoder_ids_stated_in_the_report(capsys, tmp_path):
    path = tmp_path / "w.json"
    code, out, err = _main(capsys, "model", "hf:whisper", "--config", "encoder_layers=1", "decoder_layers=1",
                           "--input", "2x80x3000", "--json", path, "-q")
    assert code == 0, err
    data = json.loads(path.read_text())
    assert data["meta"]["inputs"] == ["2x80x3000", "decoder_input_ids=2x128:int64"]  # added for the decoder
    # default Whisper vocabulary 51865, d_model 384: the output projection makes 2 * 128 * 384 * 51865 MACs
    proj = next(m for m in data["modules"] if m["name"] == "proj_out")
    assert proj["macs"] == 2 * 128 * 384 * 51865
    code, out, err = _main(capsys, "model", "hf:t5", "--config", "num_layers=1", "--input", "1x16:int64",
                           "--json", path, "-q")
    assert code == 0, err
    assert json.loads(path.read_text())["meta"]["inputs"] == ["1x16:int64", "decoder_input_ids=1x16:int64"]
