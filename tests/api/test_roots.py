"""Several roots: count({"G": g, "D": d}), count([...]) and count() with several top-level modules.

Oracles: hand counts of each model's matmuls (the arithmetic in the comments), and the same work
counted with one model at a time (count(G), count(D)): a root's rows in the several-roots count
equal the single-model count's rows, phase by phase."""
import json
import pathlib

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import flopdispatch as fd
from flopdispatch.cli import main

B = 5  # batch


def _gan():
    torch.manual_seed(0)
    g = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))  # 8*16+16 + 16*4+4 = 212 params
    d = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))  # 4*16+16 + 16*1+1 = 97 params
    return g, d


def _gan_step(g, d, z):
    """A GAN training step: D's loss on a detached fake, then G's loss through D into G."""
    fake = g(z)
    d_loss = F.softplus(d(fake.detach())).mean()
    d_loss.backward()
    g_loss = F.softplus(-d(fake)).mean()
    g_loss.backward()


def _same(a, b):
    return (a.flops, a.macs, a.bytes_read, a.bytes_written, a.calls) == (b.flops, b.macs, b.bytes_read,
                                                                      b.bytes_written, b.calls)


def test_gan_step_each_model_in_its_own_tree_by_hand():
    g, d = _gan()
    z = torch.randn(B, 8)
    with fd.count({"G": g, "D": d}) as c:
        _gan_step(g, d, z)
    assert c.roots == ["G", "D"]
    assert c.module_names == ["", "G", "G.0", "G.1", "G.2", "D", "D.0", "D.1", "D.2"]
    # G forward, once: 5*8*16 + 5*16*4 = 640 + 320 = 960
    assert c.module("G", "forward").macs == 960
    # G backward, through g_loss only: G.2 grad input 5*4*16 = 320, grad weight 4*5*16 = 320;
    # G.0 grad weight 16*5*8 = 640 (z needs no grad): 1280
    assert c.module("G", "backward").macs == 320 + 320 + 640
    # D forward, twice: 2 * (5*4*16 + 5*16*1) = 2 * 400 = 800
    assert c.module("D", "forward").macs == 800
    # D backward, twice: D.2 grad input 5*1*16 = 80 and grad weight 1*5*16 = 80 each time; D.0 grad
    # weight 16*5*4 = 320 each time, grad input 5*16*4 = 320 only the second time (into G)
    assert c.module("D", "backward").macs == 2 * (80 + 80 + 320) + 320
    assert c.module("D.0", "backward").macs == 2 * 320 + 320
    # parameters: both models, 212 + 97 = 309
    assert (c.params, c.module("G").params, c.module("D").params) == (309, 212, 97)
    assert c.module("").type == "2 models" and c.module("D").type == "Sequential"


def test_gan_roots_equal_single_model_counts_of_the_same_work():
    g, d = _gan()
    z = torch.randn(B, 8)
    state = {k: v.clone() for k, v in {**g.state_dict(), **{"d" + k: v for k, v in d.state_dict().items()}}.items()}

    def fresh():
        g2, d2 = _gan()
        g2.load_state_dict({k: v for k, v in state.items() if not k.startswith("d")})
        d2.load_state_dict({k[1:]: v for k, v in state.items() if k.startswith("d")})
        return g2, d2

    g1, d1 = fresh()
    with fd.count({"G": g1, "D": d1}) as both:
        _gan_step(g1, d1, z)
    for key in ("G", "D"):
        g2, d2 = fresh()
        with fd.count(g2 if key == "G" else d2) as single:
            _gan_step(g2, d2, z)
        for rel in single.module_names:
            name = key + ("." + rel if rel else "")
            for phase in (None, "forward", "backward"):
                assert _same(both.module(name, phase), single.module(rel, phase)), (name, phase)
            assert both.module(name).params == single.module(rel).params
    assert both.totals == single.totals  # the same work, wherever it is attributed


def test_rows_add_up_children_to_parent_and_roots_to_the_total():
    g, d = _gan()
    with fd.count({"G": g, "D": d}) as c:
        _gan_step(g, d, torch.randn(B, 8))
    for phase in (None, "forward", "backward"):
        for parent in ("G", "D"):
            kids = [n for n in c.module_names if n.startswith(parent + ".")]
            assert sum(c.module(k, phase).flops for k in kids) == c.module(parent, phase).flops
        assert c.module("G", phase).flops + c.module("D", phase).flops == c.module("", phase).flops
    # every exclusive row plus the work outside all roots (the loss) is the total
    outside = c.totals.flops - c.module("").flops
    assert outside > 0 and c.module("", exclusive=True).flops == 0
    assert sum(c.module(n, exclusive=True).flops for n in c.module_names) + outside == c.totals.flops
    # outside work (the softplus losses, their backward): "other" when models are given
    assert c.phase("other").flops > 0 and c.phase("other").flops + c.phase("backward").flops \
        + c.phase("forward").flops == c.totals.flops


def test_distillation_teacher_under_no_grad():
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
    student = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(4, 10)
    with fd.count({"teacher": teacher, "student": student}) as c:
        with torch.no_grad():
            soft = teacher(x).softmax(-1)
        loss = F.kl_div(student(x).log_softmax(-1), soft, reduction="batchmean")
        loss.backward()
    # teacher: forward only, 4*10*32 + 4*32*3 = 1280 + 384 = 1664 MACs
    assert c.module("teacher").macs == c.module("teacher", "forward").macs == 1664
    assert c.module("teacher", "backward").calls == 0
    # student forward 4*10*8 + 4*8*3 = 320 + 96 = 416; backward: student.2 grad input 4*3*8 = 96,
    # grad weight 3*4*8 = 96; student.0 grad weight 8*4*10 = 320 (x needs no grad): 512
    assert c.module("student", "forward").macs == 416
    assert c.module("student", "backward").macs == 96 + 96 + 320
    assert c.params == (10 * 32 + 32 + 32 * 3 + 3) + (10 * 8 + 8 + 8 * 3 + 3)  # 451 + 115 = 566
    assert c.trainable_params == 566


def _example(name):
    """A module of examples/ (the scripts the docs run), imported without running its main."""
    import importlib.util

    path = pathlib.Path(__file__).resolve().parents[2] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GAN = _example("gan")  # examples/gan.py: a Generator (8-16-4) and a Discriminator (4-16-1)
Generator, Discriminator = GAN.Generator, GAN.Discriminator


def test_count_without_a_model_makes_each_top_level_module_a_root():
    torch.manual_seed(0)
    g, d = Generator(), Discriminator()
    z = torch.randn(B, 8)
    with fd.count() as c:
        fake = g(z)
        assert c.module_names[:2] == ["", "net"]  # one root so far: named as a model given alone
        F.softplus(-d(fake)).mean().backward()
        d(fake.detach())  # D again: known, no new root
    assert c.roots == ["Generator", "Discriminator"]
    assert c.module_names == ["", "Generator", "Generator.net", "Generator.net.0", "Generator.net.1",
                              "Generator.net.2", "Discriminator", "Discriminator.net", "Discriminator.net.0",
                              "Discriminator.net.1", "Discriminator.net.2"]
    assert c.params == 212 + 97 and c.module("Discriminator").params == 97
    # D forward twice: 2 * (5*4*16 + 5*16*1) = 800; G forward once: 960 (as in the dict count)
    assert c.module("Discriminator", "forward").macs == 800 and c.module("Generator", "forward").macs == 960
    # without models given, the work outside every module is "forward" work (as before), in no row
    assert c.phase("other").calls == 0
    assert c.module("").flops < c.totals.flops


def test_count_without_a_model_names_by_class_deduplicated():
    a, b, loss_fn = nn.Linear(3, 3), nn.Linear(3, 3), nn.MSELoss()
    x = torch.randn(2, 3)
    with fd.count() as c:
        loss_fn(b(a(x)), x)
    # three top-level calls: a, b (a's output goes in, but a is not running) and the loss module
    assert c.roots == ["Linear", "Linear#2", "MSELoss"]
    assert c.module("Linear").macs == c.module("Linear#2").macs == 2 * 3 * 3  # 18
    assert c.module("").macs == 36 and c.module("MSELoss").flops > 0
    # one top-level module and functional code: today's names ("" is the module)
    m = nn.Sequential(nn.Linear(3, 3))
    with fd.count() as one:
        F.mse_loss(m(x), x)
    assert one.roots == [""] and one.module_names == ["", "0"] and one.module("0").macs == 18


def test_a_loss_module_made_in_every_step_is_one_root():
    m, x = nn.Linear(4, 4), torch.randn(2, 4)
    with fd.count() as c:
        for _ in range(50):
            nn.MSELoss()(m(x), x).backward()  # a new, parameter-free module each step
        nn.MSELoss(reduction="sum")(m(x), x)  # the same class and structure: the same root
        nn.Sequential(nn.Linear(4, 4))(x)      # holds parameters: a root of its own
        nn.Sequential(nn.Linear(4, 4))(x)      # another instance: another root
    assert c.roots == ["Linear", "MSELoss", "Sequential", "Sequential#2"]
    # every MSELoss call in the one row: 51 aten::mse_loss calls, each 3 FLOPs per element of 2 x 4
    # (subtract, square, add into the reduction): 51 * 3 * 8 = 1224
    assert c.module("MSELoss", "forward").calls == 51
    assert c.module("MSELoss", "forward").flops == 51 * 3 * 8
    assert c.module("Linear", "forward").macs == 51 * 2 * 4 * 4  # 32 per call
    assert c.module("Sequential").macs == c.module("Sequential#2").macs == 32
    assert c.params == 3 * 20


def test_alias_module_rejects_an_unknown_index():
    from flopdispatch.counter import _CountingMode

    mode = _CountingMode()
    with pytest.raises(ValueError, match="no registered module"):
        mode.alias_module(nn.ReLU(), 0)
    assert mode.add_module(nn.ReLU(), -1) == 0
    other = nn.ReLU()
    assert mode.alias_module(other, 0) == 0 and mode.add_module(other, -1) == 0  # known now


def test_list_of_models_is_named_by_class():
    a, b = nn.Linear(3, 4), nn.Linear(4, 2)
    with fd.count([a, b]) as c:
        b(a(torch.randn(2, 3)))
    assert c.roots == ["Linear", "Linear#2"]
    assert c.module("Linear").macs == 2 * 3 * 4 and c.module("Linear#2").macs == 2 * 4 * 2  # 24, 16
    assert c.params == (3 * 4 + 4) + (4 * 2 + 2)  # 16 + 10


def test_a_shared_module_belongs_to_the_first_root_and_its_params_count_once():
    shared = nn.Linear(4, 4)
    g = nn.Sequential(shared, nn.Linear(4, 2))
    d = nn.Sequential(nn.Linear(2, 4), shared)
    with fd.count({"G": g, "D": d}) as c:
        d(g(torch.randn(3, 4)))
    assert "G.0" in c.module_names and "D.1" not in c.module_names  # named under G, the first root
    # params: shared 20 once + 10 + 12 = 42; D's own row counts the shared tensor, marked shared
    assert c.params == 20 + 10 + 12
    assert c.module("D").params == 12 + 20 and c.module("D").shared_params == 20
    assert c.module("G").shared_params == 0
    # the shared module's call from D is D's work (3*2*4 + 3*4*4 = 24 + 48 = 72), not G's
    # (3*4*4 + 3*4*2 = 48 + 24 = 72); the module's own row G.0 holds both of its calls: 2 * 48 = 96
    assert c.module("D").macs == 24 + 48 and c.module("G").macs == 48 + 24
    assert c.module("G.0").macs == 2 * 48 and c.module("").macs == c.totals.macs == 144


def test_a_dict_of_one_model_is_still_named_under_its_key():
    m = nn.Sequential(nn.Linear(3, 2))
    with fd.count({"policy": m}) as c:
        m(torch.randn(4, 3))
    assert c.roots == ["policy"] and c.module_names == ["", "policy", "policy.0"]
    assert c.module("").type == "1 model" and c.module("policy.0").macs == 4 * 3 * 2  # 24
    assert c.params == c.module("policy").params == 3 * 2 + 2


def test_same_module_twice_or_a_root_inside_another_is_an_error():
    m = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="root 'B' is the same module as root 'A'"):
        fd.count({"A": m, "B": m})
    with pytest.raises(ValueError, match=r"root 'head' is the same module as 'model.1' \(inside root 'model'\)"):
        fd.count({"model": m, "head": m[1]})
    with pytest.raises(ValueError, match="the same module"):
        fd.count([m, m])
    for bad in ({"a.b": m}, {"": m}, {1: m}):
        with pytest.raises(ValueError, match="root names"):
            fd.count(bad)
    with pytest.raises(TypeError, match="expected torch.nn.Module values"):
        fd.count({"G": "resnet"})
    with pytest.raises(ValueError, match="empty"):
        fd.count({})


def test_count_without_a_model_first_root_wins():
    m = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    x = torch.randn(1, 2)
    with fd.count() as c:
        m(x)
        m[2](x)  # a module of a root, called at top level: that root's row, no new root
    assert c.roots == [""] and c.module("2").calls == 2  # its mm-like op twice (addmm)
    with fd.count() as c:
        m[0](x)  # the child runs first: it becomes a root
        m(x)     # then its parent: a second root; the child keeps its first name
    assert c.roots == ["Linear", "Sequential"]
    assert "Sequential.0" not in c.module_names and "Sequential.2" in c.module_names
    assert c.module("Linear").macs == 2 * (1 * 2 * 2)  # both calls of m[0]: 4 + 4
    assert c.module("Sequential").macs == 2 * 4  # its whole call, m[0] inside it included
    assert c.module("").macs == c.totals.macs == 3 * 4  # each op once in "", whatever row it is in


def test_ignore_with_roots_uses_the_prefixed_names():
    g, d = _gan()
    with pytest.raises(ValueError, match="no module named '0'"):
        fd.count({"G": g, "D": d}, ignore="0")
    with fd.count({"G": g, "D": d}, ignore=["D.0"]) as c:
        _gan_step(g, d, torch.randn(B, 8))
    assert c.ignored_modules == ["D.0"] and c.module("D.0").flops == 0
    assert c.ignored().macs == 2 * 320 + 2 * 320 + 320  # D.0: forward twice, backward as counted above


def test_never_ran_warning_names_the_roots():
    g, d = _gan()
    other = nn.Linear(8, 4)
    with pytest.warns(UserWarning, match=r"none of the counted models \(G, D\) never ran"):
        with fd.count({"G": g, "D": d}):
            other(torch.randn(1, 8))


def test_report_round_trip_and_old_reports(tmp_path):
    g, d = _gan()
    with fd.count({"G": g, "D": d}) as c:
        _gan_step(g, d, torch.randn(B, 8))
    report = fd.Report.from_count(c)
    assert report.roots == ["G", "D"] and report.params == 309
    path = tmp_path / "gan.json"
    report.save(path)
    data = json.loads(path.read_text())
    assert data["roots"] == ["G", "D"] and data["params"] == 309
    loaded = fd.Report.load(path)
    assert loaded == report and loaded.module("D.0", "backward").macs == 3 * 320
    text = loaded.table(depth=1, summary=True)
    assert "2 models: G (Sequential, 212 params" in text and "D (Sequential, 97 params" in text
    rows = [line.split()[0] for line in text.splitlines() if line.strip()]
    assert rows[rows.index("(root)"):rows.index("(root)") + 4] == ["(root)", "G", "D", "(outside"]
    # a report without "roots" (one model) reads as before; a bad "roots" is a one-line error
    del data["roots"]
    assert fd.Report.from_dict(data).roots == [""]
    for bad in (["G", "G"], ["G.0"], ["X"], "G", [3]):
        data["roots"] = bad
        with pytest.raises(fd.ReportError, match="roots"):
            fd.Report.from_dict(data)


def test_cli_run_of_a_gan_script_reports_both_models(tmp_path, capsys):
    script = pathlib.Path(GAN.__file__)  # the example itself: two steps, each model with its own Adam
    out, page = tmp_path / "out.json", tmp_path / "out.html"
    assert main(["run", "--depth", "1", "--json", str(out), "--html", str(page), str(script)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    data = json.loads(out.read_text())
    mods = {m["name"]: m for m in data["modules"]}
    # the header names each model once (named by its class: no type repeated), its params and FLOPs
    assert (f"2 models: Generator (212 params, {fd.human(mods['Generator']['flops'], 'FLOPs')}); "
            f"Discriminator (97 params, {fd.human(mods['Discriminator']['flops'], 'FLOPs')})") in captured.err
    assert data["roots"] == ["Generator", "Discriminator"] and data["params"] == 212 + 97
    names = [m["name"] for m in data["modules"]]
    assert "Generator.net.0" in names and "Discriminator.net.2" in names
    # D forward, per step: real and fake once each in D's loss, fake again in G's: 3 * 400 = 1200
    # MACs (5*4*16 + 5*16*1 = 400 each), over 2 steps: 2400
    assert mods["Discriminator"]["phases"]["forward"]["macs"] == 2 * 3 * 400
    assert mods["Generator"]["phases"]["forward"]["macs"] == 2 * 960
    assert mods[""]["flops"] == mods["Generator"]["flops"] + mods["Discriminator"]["flops"]
    assert main(["show", "--depth", "1", str(out)]) == 0
    shown = capsys.readouterr().out
    lines = [line.split()[:2] for line in shown.splitlines() if line.strip()]
    assert ["Generator", "Generator"] in lines and ["Discriminator", "Discriminator"] in lines
    html = page.read_text()
    assert "Discriminator.net.0" in html and "Generator.net.2" in html


def _rows(c):
    """Every row of a count, names to (flops, macs, bytes, calls, params, shared), phases included."""
    out = {}
    for name in c.module_names:
        for phase in (None,) + fd.PHASES:
            m = c.module(name, phase)
            out[(name, phase)] = (m.flops, m.macs, m.bytes, m.calls, m.params, m.shared_params)
    return out


@pytest.mark.parametrize("roots", ["dict", "list", "single-key"])
def test_second_block_from_the_tree_cache_counts_the_same(roots, monkeypatch):
    # The first root of a block is registered from the tree cache (count's per-block fixed cost);
    # later roots by the general walk. A second block on the same models must give the same rows,
    # names, parameters (tied and shared ones included) and ignored modules as the first.
    g, d = _gan()
    d[2].weight = nn.Parameter(torch.randn(1, 16))  # a fresh tensor: the tree changed after _gan
    z = torch.randn(B, 8)
    make = {"dict": lambda: {"G": g, "D": d}, "list": lambda: [g, d], "single-key": lambda: {"G": g}}[roots]
    results = []
    from flopdispatch import _tree

    for i in range(4):
        if i == 3:  # the reference: the general walk for every root (the cache refuses the tree)
            monkeypatch.setattr(_tree, "_cached_tree", lambda root: (None, None))
        g.zero_grad(set_to_none=True)  # the same work each time (no gradient accumulation)
        d.zero_grad(set_to_none=True)
        with fd.count(make(), ignore=["ReLU"]) as c:
            _gan_step(g, d, z)
        results.append((c.module_names, _rows(c), c.params, c.ignored_modules, c.totals))
    assert results[0] == results[1] == results[2] == results[3]
