"""The command line: run / model / show / demo, as a user runs them (subprocesses) and in-process."""
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
from flopdispatch.cli import main, parse_input

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent('''
    import sys
    import torch, torch.nn as nn

    def main(argv):
        steps = int(argv[argv.index("--steps") + 1])
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Sequential(nn.Linear(32, 32), nn.Tanh()),
                              nn.Linear(32, 4))
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        x = torch.randn(8, 16)
        for step in range(steps):
            loss = model(x).pow(2).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            if "--fail-at" in argv and step == int(argv[argv.index("--fail-at") + 1]):
                raise ValueError(f"boom at step {step}")
        print("script argv:", argv[1:], "steps:", steps)
        if "--exit" in argv:
            sys.exit(int(argv[argv.index("--exit") + 1]))

    if __name__ == "__main__":
        main(sys.argv)
''')

FACTORY = textwrap.dedent('''
    import torch.nn as nn

    def build():
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(8, 10))

    def not_a_model():
        return 42
''')


def _cli(*args, pythonpath=()):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *map(str, pythonpath), env.get("PYTHONPATH", "")])
    env.pop("FLOPDISPATCH_TRACEBACK", None)
    return subprocess.run([sys.executable, "-m", "flopdispatch", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "train_script.py"
    path.write_text(SCRIPT)
    return path


def _api_count(script_path, argv):
    """The same work counted with the Python API (no model given: the first module is the root)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_script_for_api", script_path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with fd.count() as c:
        try:
            mod.main([str(script_path), *argv])
        except (ValueError, SystemExit):
            pass
    return c


def _assert_same_counts(data, c):
    assert data["totals"] == {f: getattr(c.totals, f) for f in data["totals"]}
    assert data["params"] == c.params
    assert [m["name"] for m in data["modules"]] == c.module_names
    for m in data["modules"]:
        live = c.module(m["name"])
        assert {f: m[f] for f in data["totals"]} == {f: getattr(live, f) for f in data["totals"]}, m["name"]
        for phase, counts in m["phases"].items():
            ph = c.module(m["name"], phase)
            assert counts == {f: getattr(ph, f) for f in counts}, (m["name"], phase)
    for phase, counts in data["phases"].items():
        assert counts == {f: getattr(c.phase(phase), f) for f in counts}
    assert {o["name"]: o["flops"] for o in data["ops"]} == {k: v["flops"] for k, v in c.ops().items()}


def _one_line_error(result, code=2):
    assert result.returncode == code, (result.returncode, result.stderr)
    err = result.stderr.strip()
    assert err.startswith("flopdispatch: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.slow  # command-line subprocesses that count a model
def test_run_counts_an_unmodified_script_and_show_renders_it_again(script, tmp_path):
    out_json, out_html = tmp_path / "run.json", tmp_path / "run.html"
    r = _cli("run", "--json", out_json, "--html", out_html, script, "--steps", "3", "--tag", "x y")
    assert r.returncode == 0, r.stderr
    # The script's own output and argv are kept; the report is on stderr.
    assert r.stdout == "script argv: ['--steps', '3', '--tag', 'x y'] steps: 3\n"
    assert r.stderr.startswith(f"flopdispatch: {script}: ") and "\ntotal " in r.stderr
    assert "(root)" in r.stderr and "Sequential" in r.stderr
    data = json.loads(out_json.read_text())
    assert data["schema"] == "flopdispatch.report/2"
    meta = data["meta"]
    assert meta["mode"] == "run" and meta["exit_code"] == 0 and meta["devices"] == ["cpu"]
    assert meta["dtypes"] == ["float32"] and meta["torch_version"] == torch.__version__
    assert meta["command"][:2] == ["flopdispatch", "run"] and meta["command"][-1] == "x y"
    # Every number equals the Python API's for the same work.
    _assert_same_counts(data, _api_count(script, ["--steps", "3"]))
    assert set(data["phases"]) == {"forward", "backward", "optimizer"}
    assert "data-module" in out_html.read_text()
    # `show` reproduces the report from the JSON, byte for byte.
    shown = _cli("show", out_json)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == r.stderr


@pytest.mark.slow  # command-line subprocesses that count a model
def test_run_keeps_a_failing_scripts_traceback_and_exit_code_and_still_reports(script, tmp_path):
    out_json = tmp_path / "fail.json"
    r = _cli("run", "--json", out_json, "--depth", "1", script, "--steps", "5", "--fail-at", "1")
    assert r.returncode == 1
    err = r.stderr
    assert err.startswith("Traceback (most recent call last):")
    assert f'File "{script}", line' in err and "ValueError: boom at step 1" in err
    assert "runpy" not in err and "cli.py" not in err  # the traceback starts in the user's script
    report = err[err.index("ValueError: boom at step 1"):]
    assert "the run stopped with ValueError: boom at step 1" in report and "\ntotal " in report
    data = json.loads(out_json.read_text())
    assert data["meta"]["exit_code"] == 1 and data["meta"]["error"] == "ValueError: boom at step 1"
    _assert_same_counts(data, _api_count(script, ["--steps", "5", "--fail-at", "1"]))  # two steps' work




@pytest.mark.slow  # command-line subprocesses that count a model
def test_model_from_a_factory_counts_like_the_api(tmp_path):
    (tmp_path / "my_models.py").write_text(FACTORY)
    out_json = tmp_path / "model.json"
    r = _cli("model", "my_models:build", "--input", "2x3x16x16", "--train", "--json", out_json, "--sort", "flops",
             pythonpath=[tmp_path])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("flopdispatch: my_models:build (forward + backward): ") and "Conv2d" in r.stdout
    data = json.loads(out_json.read_text())
    assert data["meta"]["devices"] == ["meta"] and data["meta"]["inputs"] == ["2x3x16x16"]
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 10)).to("meta")
    x = torch.randn(2, 3, 16, 16, device="meta")
    with fd.count(model) as c:
        model(x).sum().backward()
    _assert_same_counts(data, c)


@pytest.mark.parametrize("args, message", [
    (["run", "no/such/script.py"], "script not found: no/such/script.py"),
    (["show", "CORRUPT"], "not a flopdispatch report (invalid JSON"),
])
def test_bad_input_is_one_line_and_a_nonzero_exit(tmp_path, args, message):
    (tmp_path / "corrupt.json").write_text('{"schema": "flopdispatch.report/1", "totals": {')
    args = [str(tmp_path / "corrupt.json") if a == "CORRUPT" else a for a in args]
    err = _one_line_error(_cli(*args))
    assert message in err, err


# ----- in-process: more options and errors, without a fresh interpreter each ----------------------

def _main(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("args, message", [
    (["run"], "give the script to run"),
    (["model", "no_such_module_xyz:build", "--input", "1x3"], "no module named 'no_such_module_xyz'"),
    (["model", "my_models:build", "--input", "1x3xq"], "bad shape '1x3xq'"),
    (["show", "foreign.json"], "not a flopdispatch report (schema 'other.tool/2')"),
    (["show", "corrupt.json"], "corrupt report: modules[0].flops: expected a non-negative integer"),
    (["run", "-m", "no_such_module_xyz"], "no module named 'no_such_module_xyz'"),
    (["model", "my_models"], "bad SPEC 'my_models'"),
    (["model", "my_models:missing", "--input", "1x3"], "has no attribute 'missing'"),
    (["model", "my_models:not_a_model", "--input", "1x3"], "returned int, not a torch.nn.Module"),
    (["model", "my_models:build"], "give the model's inputs with --input"),
    (["model", "my_models:build", "--input", "1x3:float99"], "unknown dtype 'float99'"),
    (["model", "my_models:build", "--input", "1x3", "--config", "a=1"], "--config applies to hf: specs only"),
    (["model", "hf:", "--input", "1x3"], "give a model type"),
    (["model", "my_models:build", "--input", "1x3x8x8", "--json", "/no/such/dir/r.json"], "does not exist"),
    (["show", "r.json", "--depth", "-3"], "argument --depth"),
    (["show", "r.json", "--sort", "speed"], "argument --sort: invalid choice"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_more_bad_inputs_in_process(tmp_path, monkeypatch, capsys, args, message):
    (tmp_path / "my_models.py").write_text(FACTORY)
    (tmp_path / "foreign.json").write_text('{"schema": "other.tool/2", "data": []}')
    (tmp_path / "corrupt.json").write_text(json.dumps({"schema": "flopdispatch.report/1", "totals": {},
                                                       "modules": [{"name": "", "flops": "12"}]}))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    code, out, err = _main(capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith("flopdispatch: error: ") and err.count("\n") == 1 and message in err, err


def test_a_model_that_fails_to_run_is_one_line_with_status_1(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_models.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, err = _main(capsys, "model", "my_models:build", "--input", "1x4x8x8")  # 4 channels, not 3
    assert code == 1 and err.startswith("flopdispatch: error: running my_models:build failed: RuntimeError")
    assert err.count("\n") == 1


def test_run_in_process_propagates_sys_exit_and_restores_argv(script, capsys):
    argv, path = sys.argv[:], sys.path[:]
    code, out, err = _main(capsys, "run", "--by", "phase", script, "--steps", "1", "--exit", "3")
    assert code == 3 and (sys.argv, sys.path) == (argv, path)
    assert out.startswith("script argv: ['--steps', '1', '--exit', '3']")
    assert "\nphase " in err and "backward" in err and "Traceback" not in err
    code, out, err = _main(capsys, "run", "-q", script, "--steps", "1", "--exit", "0")
    assert code == 0 and err == ""


def test_run_dash_m_leaves_everything_after_the_module_to_it(tmp_path, monkeypatch, capsys):
    (tmp_path / "mod_main_xyz.py").write_text("import sys, torch\nprint(sys.argv[1:])\n"
                                              "torch.nn.Linear(4, 4)(torch.randn(2, 4))\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = _main(capsys, "run", "--depth", "0", "-m", "mod_main_xyz", "--depth", "3", "-q")
    assert code == 0 and out == "['--depth', '3', '-q']\n"
    assert err.startswith("flopdispatch: -m mod_main_xyz: 72 FLOPs, 32 MACs")


def test_parse_input():
    assert parse_input("1x3x224x224") == ((1, 3, 224, 224), torch.float32)
    assert parse_input("2X1024:int64") == ((2, 1024), torch.int64)
    assert parse_input("4x8:bf16") == ((4, 8), torch.bfloat16)
    for bad in ("", "x3", "1x0", "1x3:nope", "3.5", "1x3:Size"):
        with pytest.raises(ValueError):
            parse_input(bad)


def test_hf_model_from_a_config_in_process(tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    out_json = tmp_path / "gpt2.json"
    overrides = {"n_layer": 2, "n_head": 2, "n_embd": 64, "vocab_size": 500, "n_positions": 64}
    code, out, err = _main(capsys, "model", "hf:gpt2", "--config", *[f"{k}={v}" for k, v in overrides.items()],
                           "--input", "2x32:int64", "--train", "--depth", "3", "--json", out_json)
    assert code == 0, err
    assert "GPT2LMHeadModel" in out and "ModuleList*" in out and "fwd" in out and "bwd" in out
    data = json.loads(out_json.read_text())
    assert data["meta"]["config"] == overrides and data["meta"]["train"] is True
    config = transformers.AutoConfig.for_model("gpt2", **overrides)
    with torch.device("meta"):
        model = transformers.GPT2LMHeadModel(config)
    ids = torch.randint(0, 500, (2, 32), device="meta")
    model.train()
    with fd.count(model) as c:
        model(ids, labels=ids).loss.backward()
    _assert_same_counts(data, c)
    # The default input for a text model: 1 x 128 token ids (capped by the context length), by name.
    code, out, err = _main(capsys, "model", "hf:gpt2", "--config", *[f"{k}={v}" for k, v in overrides.items()],
                           "--json", "-")
    assert code == 0, err
    assert json.loads(out)["meta"]["inputs"] == ["input_ids=1x64:int64"]


def test_show_options_and_json_to_stdout(script, tmp_path, capsys):
    c = _api_count(script, ["--steps", "2"])
    capsys.readouterr()
    report = fd.Report.from_count(c, meta={"target": "x"})
    path = tmp_path / "r.json"
    report.save(path)
    from flopdispatch.report import render_text

    for opts, kw in ((["--by", "op", "--sort", "macs"], {"by": "op", "sort": "macs"}),
                     (["--depth", "all", "--units", "M"], {"depth": None, "units": "M"}),
                     (["--by", "phase"], {"by": "phase"})):
        code, out, err = _main(capsys, "show", path, *opts)
        assert code == 0 and out == render_text(report, **kw) + "\n", err
    code, out, _ = _main(capsys, "show", path, "--json", "-")
    assert code == 0 and fd.Report.from_dict(json.loads(out)) == report
    code, out, _ = _main(capsys, "show", path, "-q", "--html", tmp_path / "r.html")
    assert code == 0 and out == "" and (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")


def test_demo_keeps_its_options_and_uses_the_new_table(tmp_path, capsys):
    code, out, err = _main(capsys, "demo", "--seq", "32", "--depth", "1", "--sort", "flops", "--json",
                           tmp_path / "demo.json")
    assert code == 0, err
    assert out.startswith("GPT-2 small (124 M parameters), training step on meta, 1 x 32 tokens")
    assert "ModuleList*" in out and "\ntotal " in out and "FLOPs per token" in out
    assert fd.Report.load(tmp_path / "demo.json").meta["mode"] == "demo"
    code, out, err = _main(capsys, "demo", "--seq", "2000")
    assert code == 2 and "--seq between 1 and 1024" in err


# ----- issue 13 item 7: run's __file__ and argv, --json - on a clean stdout, params units ------------------

WHERE_AM_I = textwrap.dedent('''
    import os, sys, pickle
    import torch
    class Point:  # pickled by reference to __main__, as under plain python
        pass
    print("file", __file__, "argv0", sys.argv[0], "name", __name__, flush=True)
    os.write(1, b"raw fd write\\n")  # C-level writes to descriptor 1 too
    assert type(pickle.loads(pickle.dumps(Point()))) is Point
    torch.nn.Linear(3, 4)(torch.ones(2, 3))
''')


def _cli_in(cwd, *args):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "flopdispatch", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


@pytest.mark.slow  # command-line subprocesses that count a model
def test_run_gives_the_script_file_and_argv_as_plain_python_does(tmp_path):
    (tmp_path / "where.py").write_text(WHERE_AM_I)
    plain = subprocess.run([sys.executable, "where.py"], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert plain.returncode == 0, plain.stderr
    r = _cli_in(tmp_path, "run", "-q", "where.py")
    assert r.returncode == 0, r.stderr
    # __file__ absolute, sys.argv[0] as typed: the same lines as `python where.py`
    assert r.stdout == plain.stdout == f"file {tmp_path / 'where.py'} argv0 where.py name __main__\nraw fd write\n"


def test_run_json_dash_keeps_the_scripts_stdout_out_of_the_json(tmp_path):
    (tmp_path / "where.py").write_text(WHERE_AM_I)
    r = _cli_in(tmp_path, "run", "--json", "-", "where.py")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)  # stdout is the JSON alone
    # Linear(3, 4) on 2 rows: 2 * 3 * 4 = 24 MACs; params 3 * 4 + 4 = 16
    assert data["totals"]["macs"] == 24 and data["params"] == 16
    # the script's prints (Python and raw descriptor writes) went to stderr, before the table
    assert r.stderr.index("file ") < r.stderr.index("raw fd write") < r.stderr.index("flopdispatch: where.py")


def test_units_fix_the_work_figures_but_params_keep_their_own_prefix():
    from flopdispatch.report import render_text

    model = nn.Linear(100, 100)  # params 100 * 100 + 100 = 10100
    with fd.count(model) as c:
        model(torch.ones(1, 100))
    text = render_text(fd.Report.from_count(c), units="M")
    # MACs 1 * 100 * 100 = 10000 = 0.01 M under --units M; the params stay "10.1 K", not "0.01 M params"
    assert text.splitlines()[0].startswith("flopdispatch: 0.02 MFLOPs, 0.01 MMACs,")
    assert "10.1 K params" in text and "0.01 M params" not in text
    root = next(line for line in text.splitlines() if line.startswith("(root)"))
    assert root.split()[:5] == ["(root)", "Linear", "10.1", "K", "0.01"]
    assert "params (M)" not in text


@pytest.mark.slow  # command-line subprocesses that count a model
def test_model_train_drops_only_transformers_loss_type_warning(tmp_path):
    pytest.importorskip("transformers")
    r = _cli("model", "hf:gpt2", "--config", "n_layer=1", "n_embd=64", "n_head=4", "vocab_size=100",
             "n_positions=32", "bos_token_id=0", "eos_token_id=0", "--train", "-q", "--json", tmp_path / "g.json")
    assert r.returncode == 0, r.stderr
    assert "loss_type" not in r.stderr
    assert json.loads((tmp_path / "g.json").read_text())["phases"]["backward"]["flops"] > 0


def test_the_hf_warning_filter_is_local_and_drops_that_message_alone():
    import logging

    from flopdispatch.cli import _DropKnownHFWarning

    logger = logging.getLogger(_DropKnownHFWarning.LOGGER)
    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    try:
        with _DropKnownHFWarning():
            logger.warning("`loss_type=None` was set in the config but it is unrecognized. Using the default loss")
            logger.warning("something else")
        logger.warning("`loss_type=None` was set in the config but it is unrecognized. after")
    finally:
        logger.removeHandler(handler)
    assert seen == ["something else", "`loss_type=None` was set in the config but it is unrecognized. after"]
    assert not any(isinstance(f, _DropKnownHFWarning) for f in logger.filters)
