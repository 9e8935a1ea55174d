"""Issue 22 through the command line: inputs as people guess them, rank files checked and merged
per rank, one error shape (the traceback hint where the user's code failed), the family named in
the header, close matches for what a user types."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import flopdispatch as fd
from flopdispatch.commands import main

ROOT = Path(__file__).resolve().parents[2]

MODELS = textwrap.dedent('''
    import torch
    import torch.nn as nn

    class Tokens(nn.Module):
        """Token ids in: an embedding (no MACs) and a 4 -> 3 linear head."""
        def __init__(self):
            super().__init__()
            self.emb, self.head = nn.Embedding(10, 4), nn.Linear(4, 3, bias=False)

        def forward(self, input_ids, attention_mask=None):
            return self.head(self.emb(input_ids))

    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3, bias=False)

        def forward(self, x, scale=None):
            return self.fc(x) * scale

    def tokens():
        return Tokens()

    def two_inputs():
        return TwoInputs()

    def broken():
        raise ValueError("the factory needs a config")
''')

TINY_LLAMA = ["num_hidden_layers=1", "hidden_size=32", "intermediate_size=64", "num_attention_heads=4",
              "num_key_value_heads=4", "vocab_size=50"]


@pytest.fixture
def models(tmp_path, monkeypatch):
    (tmp_path / "cli_models.py").write_text(MODELS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("FLOPDISPATCH_TRACEBACK", raising=False)
    sys.modules.pop("cli_models", None)
    return tmp_path


def _json(capsys, *argv):
    code = main([*argv, "--json", "-"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def _error(capsys, *argv, code=2):
    got = main(list(argv))
    out, err = capsys.readouterr()
    assert got == code, (got, err)
    assert err.startswith("flopdispatch: error: ") and err.count("\n") == 1, err  # the one shape
    return err


# ----- inputs ------------------------------------------------------------------------------------

def test_a_token_models_input_defaults_to_integer_ids(models, capsys):
    """--input 2x8 on a model whose forward takes input_ids: int64 ids, not floats (which the
    embedding refuses)."""
    report = _json(capsys, "model", "cli_models:tokens", "--input", "2x8")
    assert report["totals"]["macs"] == 2 * 8 * 4 * 3  # the head: 2 x 8 tokens x 4 in x 3 out = 192
    assert "int64" in report["meta"]["dtypes"] and report["meta"]["inputs"] == ["2x8:int64"]  # as counted


def test_hf_token_model_without_dtype_counts_as_with_int64(models, capsys):
    """hf:llama --input 2x16 attention_mask=2x16 (no dtypes) equals the same with :int64: the oracle
    is the explicit form (on the CPU: the mask's values are read)."""
    bare = _json(capsys, "model", "hf:llama", "--config", *TINY_LLAMA, "--device", "cpu",
                 "--input", "2x16", "attention_mask=2x16")
    typed = _json(capsys, "model", "hf:llama", "--config", *TINY_LLAMA, "--device", "cpu",
                  "--input", "2x16:int64", "attention_mask=2x16:int64")
    assert bare["totals"] == typed["totals"] and bare["totals"]["macs"] > 0
    assert bare["meta"]["inputs"] == typed["meta"]["inputs"] == ["2x16:int64", "attention_mask=2x16:int64"]


def test_several_specs_after_one_input(models, capsys):
    """--input 2x4 scale=2x3: a positional float and a keyword, after one --input; SPEC may follow."""
    report = _json(capsys, "model", "cli_models:two_inputs", "--input", "2x4", "scale=2x3")
    assert report["totals"]["macs"] == 2 * 4 * 3  # 24
    assert report["meta"]["inputs"] == ["2x4", "scale=2x3"]
    after = _json(capsys, "model", "--input", "2x4", "scale=2x3", "cli_models:two_inputs")
    assert after["totals"] == report["totals"] and after["meta"]["target"] == "cli_models:two_inputs"
    repeated = _json(capsys, "model", "cli_models:two_inputs", "--input", "2x4", "--input", "scale=2x3")
    assert repeated["totals"] == report["totals"]


def test_input_name_close_match(models, capsys):
    err = _error(capsys, "model", "cli_models:tokens", "--input", "2x8", "atention_mask=2x8")
    assert "no input named 'atention_mask'; did you mean attention_mask?" in err


@pytest.mark.parametrize("argv, message", [
    (["show", "r.json", "--by", "opp"], "invalid choice: 'opp'; did you mean op?"),
    (["shwo", "r.json"], "invalid choice: 'shwo'; did you mean show?"),
    (["show", "r.json", "--sort", "mac"], "invalid choice: 'mac'; did you mean macs?"),
    (["model", "cli_models:tokens", "--dtype", "bfloat61"], "unknown dtype 'bfloat61'; did you mean bfloat16"),
    (["model", "cli_models:tokens", "--input", "2x8", "--device", "mta"], "bad --device 'mta'; did you mean meta?"),
    (["model", "hf:lama"], "did you mean hf:llama"),
    (["model", "hf:llama", "--config", "num_hiden_layers=1"], "did you mean num_hidden_layers?"),
])
def test_close_matches_for_what_users_type(models, capsys, argv, message):
    assert message in _error(capsys, *argv)


# ----- the error shape ---------------------------------------------------------------------------

def test_a_factory_that_raises_gives_one_line_and_the_traceback_hint(models, capsys, monkeypatch):
    err = _error(capsys, "model", "cli_models:broken", "--input", "1x4", code=1)
    assert err == ("flopdispatch: error: cli_models:broken() failed: ValueError: the factory needs a config "
                   "(FLOPDISPATCH_TRACEBACK=1 shows the traceback)\n")
    monkeypatch.setenv("FLOPDISPATCH_TRACEBACK", "1")
    assert main(["model", "cli_models:broken", "--input", "1x4"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "cli_models.py" in err  # the user's frame
    assert err.splitlines()[-1].startswith("flopdispatch: error: cli_models:broken() failed")


def test_hf_config_file_names_the_family_in_the_header(models, capsys):
    config = {"model_type": "llama", **{k: int(v) for k, v in (item.split("=") for item in TINY_LLAMA)}}
    (models / "llama2.json").write_text(json.dumps(config))
    assert main(["model", "hf:", "--config", "llama2.json", "--depth", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("flopdispatch: hf:llama (forward): "), out.splitlines()[0]


# ----- rank files --------------------------------------------------------------------------------

@pytest.fixture
def ranks(tmp_path):
    """One job's two rank files: a 4 -> 3 linear on 2 x 4 ones, forward and backward; rank 1 with
    twice the batch (so twice each op's figures)."""
    def one(batch, rank):
        model = nn.Linear(4, 3, bias=False)
        with fd.count(model) as c:
            model(torch.ones(batch, 4)).sum().backward()
        path = tmp_path / f"out.rank{rank}.json"
        fd.Report.from_count(c, meta={"target": "train.py", "command": ["flopdispatch", "run", "train.py"],
                                      "rank": rank, "world_size": 2}).save(path)
        return path

    return one(2, 0), one(4, 1)


def test_show_refuses_the_same_rank_twice(ranks, tmp_path, capsys):
    r0, r1 = ranks
    err = _error(capsys, "show", str(r0), str(r0))
    assert "are the same file" in err and str(r0) in err
    copy = tmp_path / "copy.json"
    copy.write_text(r0.read_text())
    err = _error(capsys, "show", str(r0), str(copy))
    assert f"rank 0 appears twice ({r0} and {copy})" in err


@pytest.mark.parametrize("key, value, label", [("world_size", 4, "world size"),
                                               ("command", ["flopdispatch", "run", "other.py"], "command"),
                                               ("target", "other.py", "model")])
def test_show_refuses_a_mixed_job(ranks, capsys, key, value, label):
    r0, r1 = ranks
    data = json.loads(r1.read_text())
    data["meta"][key] = value
    r1.write_text(json.dumps(data))
    err = _error(capsys, "show", str(r0), str(r1))
    assert f"{r0} and {r1} are not one job: {label}" in err


def test_show_by_op_and_phase_merge_per_rank(ranks, capsys):
    """--by op: each op's FLOPs on each rank and the job's; rank 1 (batch 4) doubles rank 0's."""
    r0, r1 = ranks
    assert main(["show", "--by", "op", "--units", "K", str(r1), str(r0)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "flopdispatch: 2 ranks of 2, train.py, FLOPs by op"
    assert lines[2].split() == ["op", "(KFLOPs)", "rank", "0", "rank", "1", "job", "total", "max/mean"]
    mm = next(line.split() for line in lines if line.startswith("aten::mm"))
    # forward x @ W.T: 2 * 2 * 4 * 3 = 48 FLOPs; backward dW = grad.T @ x: 2 * 3 * 2 * 4 = 48: 96 on
    # rank 0, 192 on rank 1 (batch 4), 288 for the job; max/mean = 192 / 144 = 1.33
    assert mm == ["aten::mm", "0.10", "0.19", "0.29", "1.33"]
    assert main(["show", "--by", "phase", "--sort", "macs", str(r0), str(r1)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("MACs by phase")
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:] if line and not line.startswith("-")}
    assert rows["forward"] == ["24", "48", "72", "1.33"]  # 2 * 4 * 3 = 24 MACs, batch 4: 48
    assert rows["backward"] == ["24", "48", "72", "1.33"]  # dW only (the input needs no gradient)


def test_rank_checks_through_the_console_script(ranks):
    r0, _ = ranks
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "flopdispatch", "show", str(r0), str(r0)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("flopdispatch: error: show: ") and done.stderr.count("\n") == 1
