"""Every code example in README.md and docs/*.md runs, and prints what the page shows.

Per page, in a fresh Python process (examples register custom ops, seed RNGs, set thread counts),
in a scratch folder holding a copy of examples/:

- each ```python block runs, the blocks of one page sharing one namespace, in order;
- each ```bash block whose commands all start with ``flopdispatch`` runs them as
  ``python -m flopdispatch ...`` (other shell blocks, the install lines, are not examples);
- each ```text block of ``$ command`` lines runs the commands (``flopdispatch``, ``python`` and
  ``torchrun``, the last as ``python -m torch.distributed.run``) and compares each command's output
  (stdout and stderr together, as a terminal shows them) with the lines under it;
- the output block right after a python or bash block (a bare or ```text fence) is compared with
  what the block printed.

Comparison: whitespace runs are collapsed, a line ``...`` stands for any number of lines, and
durations (``0.39 s``, ``5.10 ms``) are replaced by a placeholder on both sides.

Markers, an HTML comment on the line before a fence (visible in the page's source, with a reason):
``<!-- no-run: REASON -->`` the block is not run; ``<!-- output-varies: REASON -->`` the output block
after it is not compared (timings, rates); ``<!-- slow: REASON -->`` the block runs only in the
full suite (``-m slow``; the page's other blocks run in the quick subset too). A whole page is slow
when it holds ``<!-- doctest: slow -->`` on a line of its own.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import pytest

# the repository root: the nearest folder above this file holding pyproject.toml (tests may move into
# subfolders)
ROOT = next(d for d in pathlib.Path(__file__).resolve().parents if (d / "pyproject.toml").exists())
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```(\S*)\s*$")
MARKER = re.compile(r"^<!--\s*(no-run|output-varies|slow)\s*:\s*(\S.*?)\s*-->\s*$")
DURATION = re.compile(r"\b\d+(?:\.\d+)?\s?(?:s|ms|us)\b")


def parse(text: str) -> list[dict]:
    """The page's fenced blocks in order: info string, code, first line number, markers."""
    lines = text.split("\n")
    blocks, i, markers = [], 0, {}
    while i < len(lines):
        m = FENCE.match(lines[i].strip())
        if not m:
            mk = MARKER.match(lines[i].strip())
            if mk:
                markers[mk.group(1)] = mk.group(2)
            elif lines[i].strip():
                markers = {}
            i += 1
            continue
        indent = len(lines[i]) - len(lines[i].lstrip())
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        body = [ln[indent:] if ln[:indent].strip() == "" else ln for ln in lines[i + 1:j]]
        blocks.append({"info": m.group(1), "code": "\n".join(body) + "\n", "line": i + 1,
                       "markers": markers, "follows": bool(blocks) and blocks[-1]["end"] is not None
                       and all(not ln.strip() for ln in lines[blocks[-1]["end"] + 1:i])})
        blocks[-1]["end"] = j
        markers = {}
        i = j + 1
    return blocks


def commands(code: str) -> list[list[str]] | None:
    """A bash block's commands when every one is a flopdispatch command, else None."""
    out = []
    for line in code.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] != "flopdispatch":
            return None
        out.append(words)
    return out or None


def transcript(code: str) -> list[tuple[list[str], str]] | None:
    """A text block of ``$ command`` lines: each command with the output shown under it."""
    if not code.startswith("$ "):
        return None
    runs = []
    for line in code.splitlines():
        if line.startswith("$ "):
            runs.append((shlex.split(line[2:], comments=True), []))
        else:
            runs[-1][1].append(line)
    return [(words, "\n".join(shown)) for words, shown in runs]


def plan(page: pathlib.Path, quick: bool = False) -> list[dict]:
    """What runs on a page: python blocks, commands, and the output each is checked against
    (``quick``: leaving out the blocks marked slow)."""
    steps, blocks = [], parse(page.read_text())
    for k, b in enumerate(blocks):
        if "no-run" in b["markers"] or (quick and "slow" in b["markers"]):
            continue
        nxt = blocks[k + 1] if k + 1 < len(blocks) else None
        shown = None
        if nxt and nxt["follows"] and nxt["info"] in ("", "text") and not nxt["code"].startswith("$ "):
            shown = None if "output-varies" in b["markers"] else nxt["code"]
        where = f"{page.relative_to(ROOT)}:{b['line']}"
        if b["info"] == "python":
            steps.append({"kind": "python", "code": b["code"], "where": where, "shown": shown})
        elif b["info"] == "bash" and commands(b["code"]):
            for words in commands(b["code"]):
                steps.append({"kind": "command", "argv": words, "where": where, "shown": None})
            if steps and shown is not None:
                steps[-1]["shown"] = shown
        elif b["info"] in ("", "text") and transcript(b["code"]):
            for words, out in transcript(b["code"]):
                steps.append({"kind": "command", "argv": words, "where": where,
                              "shown": None if "output-varies" in b["markers"] else out})
    return steps


def normalise(text: str) -> list[str]:
    lines = [" ".join(DURATION.sub("<duration>", ln).split()) for ln in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return lines


def matches(shown: str, printed: str) -> bool:
    """``printed`` equals ``shown`` up to whitespace and durations; a ``...`` line elides any lines."""
    pattern = "".join(r"(?:[^\n]*\n)*?" if ln == "..." else re.escape(ln) + r"\n" for ln in normalise(shown))
    return re.fullmatch(pattern, "\n".join(normalise(printed)) + "\n") is not None


def argv_of(words: list[str]) -> list[str]:
    if words[0] == "flopdispatch":
        return [sys.executable, "-m", "flopdispatch", *words[1:]]
    if words[0] == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", *words[1:]]
    if words[0] in ("python", "python3"):
        return [sys.executable, *words[1:]]
    raise ValueError(f"a command the doc test does not run: {shlex.join(words)}")


def run_page(page: pathlib.Path, result_path: pathlib.Path, quick: bool) -> None:
    """In the child process: run the page's steps in order, write what each printed."""
    import contextlib
    import io
    import traceback

    namespace: dict = {"__name__": "__doc_example__"}
    results = []
    for step in plan(page, quick):
        if step["kind"] == "python":
            buffer = io.StringIO()
            error = None
            try:
                with contextlib.redirect_stdout(buffer):
                    exec(compile(step["code"], step["where"], "exec"), namespace)
            except BaseException:  # noqa: BLE001 - reported to the parent
                error = traceback.format_exc()
            results.append({"printed": buffer.getvalue(), "error": error})
        else:
            run = subprocess.run(argv_of(step["argv"]), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, timeout=600)
            results.append({"printed": run.stdout, "error": None, "rc": run.returncode})
        if results[-1]["error"]:
            break
    result_path.write_text(json.dumps(results))


def _params():
    """A page runs whole, marked slow when it holds ``<!-- doctest: slow -->``; a page with blocks
    marked ``<!-- slow: REASON -->`` runs twice: its quick blocks in the quick subset, and whole,
    marked slow."""
    for page in PAGES:
        text = page.read_text()
        name = str(page.relative_to(ROOT))
        if any(line.strip() == "<!-- doctest: slow -->" for line in text.splitlines()):
            yield pytest.param(page, False, id=name, marks=[pytest.mark.slow])
        elif any("slow" in b["markers"] for b in parse(text)):
            yield pytest.param(page, True, id=name + "[quick blocks]")
            yield pytest.param(page, False, id=name, marks=[pytest.mark.slow])
        else:
            yield pytest.param(page, False, id=name)


@pytest.mark.parametrize("page, quick", list(_params()))
def test_page_examples_run_and_print_what_the_page_shows(page, quick, tmp_path):
    steps = plan(page, quick)
    if not steps:
        pytest.skip("no runnable example on this page")
    if (ROOT / "examples").is_dir():
        shutil.copytree(ROOT / "examples", tmp_path, dirs_exist_ok=True)
    result_path = tmp_path / ".doc-results.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               COLUMNS="200", NO_COLOR="1", OMP_NUM_THREADS="1")  # one thread: no torchrun banner
    child = subprocess.run([sys.executable, str(pathlib.Path(__file__).resolve()), str(page), str(result_path),
                            "quick" if quick else "all"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert child.returncode == 0, child.stderr[-4000:]
    results = json.loads(result_path.read_text())
    for step, res in zip(steps, results):
        assert res["error"] is None, f"{step['where']}: the example raised\n{res['error']}"
        if step["kind"] == "command" and step["shown"] is None:
            assert res["rc"] == 0, f"{step['where']}: {shlex.join(step['argv'])} exited {res['rc']}\n{res['printed']}"
        if step["shown"] is not None:
            assert matches(step["shown"], res["printed"]), (
                f"{step['where']}: printed output differs from the page\n--- page\n{step['shown']}"
                f"\n--- printed\n{res['printed']}")
    assert len(results) == len(steps)


# Pages other helpers of this round write; until they land, a link to one is not a broken link.
PENDING_PAGES = set()
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(page: pathlib.Path) -> set:
    """GitHub's anchors for a page's headings (outside code blocks): lower case, punctuation
    dropped, spaces to dashes."""
    anchors, in_code = set(), False
    for line in page.read_text().splitlines():
        if FENCE.match(line.strip()):
            in_code = not in_code
        elif line.startswith("#") and not in_code:
            anchors.add(re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_resolve(page):
    """Every relative link of a page names a file or folder of the repository, and its anchor a
    heading of that page."""
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        name, _, anchor = target.partition("#")
        path = (page.parent / name).resolve() if name else page
        if not path.exists():
            if path.name not in PENDING_PAGES:
                broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(target)
    assert not broken, f"{page.name}: links to nothing: {broken}"


def test_matching_rules():
    assert matches("a  b\n...\nz\n", "a b\nc\nd\nz\n")  # whitespace collapsed, lines elided
    assert matches("x 0.39 s\n", "x 4.5 s\n")  # durations are not compared
    assert not matches("a\nz\n", "a\nb\nz\n")  # nothing is elided without a ... line
    assert not matches("total 5\n", "total 6\n")


def test_parse_markers_and_output_blocks():
    page = ("<!-- no-run: needs 2 GPUs -->\n```python\nboom()\n```\n\n"
            "```python\nprint(1)\n```\n```\n1\n```\n"
            "```bash\nflopdispatch demo  # comment\n```\n```bash\npip install x\n```\n")
    blocks = parse(page)
    assert [b["info"] for b in blocks] == ["python", "python", "", "bash", "bash"]
    assert blocks[0]["markers"] == {"no-run": "needs 2 GPUs"} and blocks[1]["markers"] == {}
    assert blocks[2]["follows"] and blocks[2]["code"] == "1\n"
    assert commands(blocks[3]["code"]) == [["flopdispatch", "demo"]] and commands(blocks[4]["code"]) is None


if __name__ == "__main__":
    run_page(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3] == "quick")
