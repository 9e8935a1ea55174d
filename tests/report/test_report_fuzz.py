"""Fuzzing `Report.load` and `flopdispatch show` with hostile documents (issue 11).

Generated documents: deep nesting, huge integers, wrong types, control characters, missing keys
and random mutations of a valid report. Each must either load and render (tables by module, op
and phase, the JSON and the HTML page) or fail with the project's one-line ReportError / exit
status 2 -- never another exception. About 10-20 s in all (max_examples below).
"""
import copy
import json
import os
import tempfile

import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flopdispatch as fd
from flopdispatch import cli
from flopdispatch.htmlreport import render_html
from flopdispatch.report import render_text
from report_v1 import as_v1  # tests/helpers, on sys.path through tests/conftest.py

SETTINGS = dict(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])


def _valid():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.ModuleList([nn.Linear(4, 4)]), nn.ReLU())
    with fd.count(model) as c:
        x = model[0](torch.randn(2, 4))
        model[2](model[1][0](x)).sum().backward()
    report = fd.Report.from_count(c, meta={"target": "net", "devices": ["cpu"], "command": ["flopdispatch", "x"]})
    data = report.to_dict()
    data["unsupported"] = [{"op": "aten::mystery", "calls": 2, "reason": "no formula"}]
    return data


VALID = _valid()
VALID_V1 = as_v1(VALID)  # the same report as an older report/1 file (still read)

# Strings with what terminals and browsers act on: ESC/CSI/OSC, C0/C1, bidi controls, NUL, lone
# surrogates, </script>, dots (module paths), __proto__.
NASTY = st.sampled_from(["\x1b[31m", "\x1b]0;t\x07", "\x9b", "\u202e", "\u2066", "\x00", "\ud800", "</script>",
                         "<!--", "\u2028", ".", "..", "__proto__", "constructor", "\t\n", "é中"])
TEXT = st.one_of(st.text(max_size=12), st.lists(NASTY, max_size=4).map("".join))
INTS = st.one_of(st.integers(-3, 10**6), st.sampled_from([2**53 + 1, 2**63, 27 * 10**21, 10**400, 10**599,
                                                          10**600, -(10**400)]))
SCALARS = st.one_of(st.none(), st.booleans(), INTS, st.floats(allow_nan=True, allow_infinity=True), TEXT)
JSONS = st.recursive(SCALARS, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                       st.dictionaries(TEXT, kids, max_size=4)), max_leaves=12)


def _paths(x, prefix=()):
    """Every path (tuple of keys/indices) into a JSON value."""
    yield prefix
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _paths(v, prefix + (i,))


ALL_PATHS = {2: list(_paths(VALID)), 1: list(_paths(VALID_V1))}


@st.composite
def mutated(draw):
    """The valid report with a few random edits: replace, delete, insert a key, rename a module/op."""
    version = draw(st.sampled_from([2, 1]))
    doc = copy.deepcopy(VALID if version == 2 else VALID_V1)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(ALL_PATHS[version]))
        parent, key = None, None
        at = doc
        try:
            for k in path:
                parent, key, at = at, k, at[k]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed this path
        action = draw(st.sampled_from(["replace", "delete", "insert", "name", "big"]))
        if parent is None:
            continue
        if action == "replace":
            parent[key] = draw(JSONS)
        elif action == "delete":
            del parent[key]
        elif action == "insert" and isinstance(at, dict):
            at[draw(TEXT)] = draw(JSONS)
        elif action == "name" and isinstance(at, str):
            parent[key] = at + draw(TEXT)
        elif action == "big" and isinstance(at, int) and not isinstance(at, bool):
            parent[key] = draw(st.sampled_from([2**53 + 1, 27 * 10**21, 10**400, 10**600, -1]))
    return json.dumps(doc, allow_nan=True)


DOCUMENTS = st.one_of(
    mutated(),
    JSONS.map(lambda x: json.dumps(x)),
    st.fixed_dictionaries({"schema": st.sampled_from(["flopdispatch.report/2", "flopdispatch.report/1",
                                                      "flopdispatch.counts/1"])},
                          optional={k: JSONS for k in ("meta", "totals", "phases", "modules", "ops", "unsupported",
                                                       "params", "module_phases", "op_phases", "scopes", "missing",
                                                       "module_self_ops", "ignored", "collective_phases",
                                                       "activations", "timed", "roots")}).map(json.dumps),
    st.builds(lambda n, inside: json.dumps(VALID)[:-1] + ', "deep": ' + "[" * n + "]" * n + "}" if inside
              else "[" * n + "]" * n, st.sampled_from([10, 500, 5000, 100_000]), st.booleans()),
    st.builds(lambda digits: json.dumps(VALID).replace('"params": ', '"params": ' + "7" * digits + " * ", 1)
              .replace(" * ", "", 1).replace("7" * digits + str(VALID["params"]), "7" * digits, 1),
              st.sampled_from([16, 400, 601, 4300, 5000])),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
)


def _check_report(report):
    """A loaded report renders every way without an exception."""
    for by in ("module", "op", "phase"):
        render_text(report, by=by, depth=None, sort="macs" if by == "op" else None)
    render_text(report, units="P")
    page = render_html(report)
    page.encode("utf-8")
    assert page.lower().count("<script") == 2
    json.loads(report.to_json())
    assert fd.Report.from_dict(json.loads(report.to_json())) == report  # round trip


@settings(max_examples=400, **SETTINGS)
@given(DOCUMENTS)
def test_load_either_reads_and_renders_or_raises_report_error(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "r.json")
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(text)
        try:
            report = fd.Report.load(path)
        except fd.ReportError as e:
            assert "\n" not in str(e)
            return
        _check_report(report)


@settings(max_examples=100, **SETTINGS)
@given(DOCUMENTS, st.sampled_from([[], ["--by", "op"], ["--by", "phase", "--units", "T"], ["--html", "HTML"],
                                   ["--depth", "all", "--sort", "bytes"], ["--json", "-"]]))
def test_show_either_renders_or_exits_2_with_one_line(capsys, text, options):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "r.json")
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(text)
        options = [os.path.join(tmp, "p.html") if o == "HTML" else o for o in options]
        capsys.readouterr()
        rc = cli.main(["show", path, *options])
        out, err = capsys.readouterr()
    assert rc in (0, 2)
    if rc == 2:
        assert err.startswith("flopdispatch: error: ") and err.count("\n") == 1 and out == ""
    else:
        assert err == "" and out
    for ch in ("\x00", "\x9b", "\u202e", "\u2066", "\ud800", "\x07"):
        assert ch not in out and ch not in err
    assert "\x1b" not in err and ("\x1b" not in out)  # not a terminal: plain text, every ESC escaped


def test_the_valid_report_the_mutations_start_from_renders():
    _check_report(fd.Report.from_dict(copy.deepcopy(VALID)))
