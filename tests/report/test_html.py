"""The HTML report: one self-contained file, drawn and driven in headless Chromium.

The browser test needs Chromium (Debian: ``apt-get install -y chromium``) and skips without it.
It talks to the browser over the DevTools protocol with the small WebSocket client below (stdlib
only): it loads the page, checks one box per module, hovers a box and reads the tooltip, switches
the figure to MACs, zooms by clicking, and saves a screenshot in the test's tmp_path.
"""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
import torch

import flopdispatch as fd
from flopdispatch._demo import GPT
from flopdispatch.htmlreport import render_html, write_html


def _report():
    torch.manual_seed(0)
    model = GPT(layers=2, heads=2, d=32, vocab=100, context=16, device="cpu")
    opt = torch.optim.AdamW(model.parameters(), foreach=False)
    idx = torch.randint(0, 100, (2, 16))
    with fd.count(model) as c:
        model(idx, targets=idx).backward()
        opt.step()
    return c, fd.Report.from_count(c, meta={"target": "tiny GPT </script><b>x</b>"})


def test_page_is_self_contained_and_embeds_the_report(tmp_path):
    c, report = _report()
    page = render_html(report)
    lowered = page.lower()
    for needle in ("http://", "https://", "<link", " src=", "@import", "url("):
        assert needle not in lowered, needle  # no network, no external files
    assert lowered.count("<script") == 2 and lowered.count("</script>") == 2  # the data block and the code
    start = page.index('id="report-data">') + len('id="report-data">')
    data = json.loads(page[start:page.index("</script>", start)])
    assert data == json.loads(json.dumps(report.to_dict()))
    assert data["totals"]["flops"] == c.flops
    assert "&lt;/script&gt;" in page  # the title is escaped
    path = tmp_path / "r.html"
    write_html(report, path)
    assert path.read_text(encoding="utf-8") == page


# ----- a minimal DevTools-protocol client ---------------------------------------------------------

def _chromium():
    for name in (os.environ.get("FLOPDISPATCH_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class _CDP:
    """Just enough WebSocket (RFC 6455, client side) to send DevTools commands and read replies."""

    def __init__(self, ws_url, timeout=30.0):
        u = urllib.parse.urlparse(ws_url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            assert chunk, "DevTools closed the connection during the handshake"
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        assert b" 101 " in head.split(b"\r\n")[0], head
        self.next_id = 0

    def _exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            assert chunk, "DevTools closed the connection"
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _frame(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + body)

    def _message(self):
        data = b""
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(self._exact(2), "big")
            elif n == 127:
                n = int.from_bytes(self._exact(8), "big")
            payload = self._exact(n)
            opcode = b0 & 0x0F
            if opcode == 0x9:  # ping
                self._frame(0xA, payload)
                continue
            if opcode == 0x8:
                raise ConnectionError("DevTools closed the WebSocket")
            data += payload
            if b0 & 0x80:
                return json.loads(data.decode("utf-8"))

    def call(self, method, **params):
        self.next_id += 1
        self._frame(0x1, json.dumps({"id": self.next_id, "method": method, "params": params}).encode())
        while True:
            msg = self._message()
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def js(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def mouse(self, kind, x, y):
        extra = {"button": "left", "clickCount": 1} if kind != "mouseMoved" else {}
        self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, **extra)

    def close(self):
        self.sock.close()


@pytest.fixture
def browser(tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium)")
    profile = tmp_path / "chromium-profile"
    proc = subprocess.Popen(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-extensions", "--disable-background-networking", "--disable-crash-reporter", "--mute-audio",
         "--hide-scrollbars", "--remote-debugging-port=0", "--remote-allow-origins=*", f"--user-data-dir={profile}",
         "--window-size=1400,1000", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    cdp = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + 30
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"Chromium did not start (exit status {proc.poll()})")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [t for t in json.load(r) if t.get("type") == "page"]
        cdp = _CDP(pages[0]["webSocketDebuggerUrl"])
        cdp.call("Page.enable")
        cdp.call("Runtime.enable")
        yield cdp
    finally:
        if cdp is not None:
            cdp.close()
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the browser and the helpers it started
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _load(cdp, url):
    cdp.call("Page.navigate", url=url)
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            if cdp.js("document.readyState === 'complete' && document.body.getAttribute('data-ready')") == "1":
                return
        except RuntimeError:
            pass  # the old document went away mid-call
        time.sleep(0.05)
    text = cdp.js("document.body && document.body.innerText.slice(0, 300)")
    raise AssertionError(f"{url} did not finish drawing: {text}")


def _center(cdp, name):
    rect = cdp.js(f"(function(){{var r=document.querySelector('.box[data-module=\"{name}\"]').getBoundingClientRect();"
                  f"return [r.left, r.top, r.width, r.height];}})()")
    return rect[0] + rect[2] / 2, rect[1] + rect[3] / 2, rect


def test_icicle_hover_switch_and_zoom_in_headless_chromium(browser, tmp_path):
    c, report = _report()
    path = tmp_path / "report.html"
    write_html(report, path)
    cdp = browser
    _load(cdp, path.as_uri())

    # One box per module, in named_modules order, each with its module's name.
    names = cdp.js("Array.from(document.querySelectorAll('#chart .box')).map(function(b){return b.dataset.module;})")
    assert names == c.module_names
    visible = cdp.js("Array.from(document.querySelectorAll('#chart .box:not(.hidden)'))"
                     ".map(function(b){return b.dataset.module;})")
    assert {"", "h", "h.0", "h.1", "lm_head", "h.0.fc"} <= set(visible)
    # Box widths follow FLOPs: lm_head's box is its share of the root's width (1 px of rounding).
    _, _, root = _center(cdp, "")
    _, _, head = _center(cdp, "lm_head")
    assert abs(head[2] - root[2] * c.module("lm_head").flops / c.module("").flops) < 1.5
    # The ModuleList never runs itself: its box is the sum of its blocks, not empty.
    _, _, h = _center(cdp, "h")
    assert abs(h[2] - root[2] * (c.module("h.0").flops + c.module("h.1").flops) / c.module("").flops) < 1.5
    assert cdp.js("document.querySelectorAll('#ops tbody tr').length") == len(c.ops())

    # Hover: the tooltip names the module and shows its counts.
    x, y, _ = _center(cdp, "h.0.fc")
    cdp.mouse("mouseMoved", x, y)
    tip = cdp.js("(function(){var t=document.getElementById('tip');"
                 "return [getComputedStyle(t).display, t.innerText];})()")
    assert tip[0] == "block"
    assert "h.0.fc" in tip[1] and "Linear" in tip[1]
    assert fd.human(c.module("h.0.fc").flops) in tip[1]
    shot = tmp_path / "report.png"
    shot.write_bytes(base64.b64decode(cdp.call("Page.captureScreenshot", format="png")["data"]))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    try:
        from PIL import Image

        with Image.open(shot) as im:
            assert im.size[0] >= 1000
            colours = im.convert("RGB").resize((140, 100)).getcolors(maxcolors=100_000)
            assert len(colours) > 20  # boxes, text and tables were drawn, not a blank page
    except ImportError:
        pass

    # Switch the figure to MACs: boxes re-laid, the state is in the URL fragment.
    cdp.js("document.querySelector('#metrics button[data-value=\"macs\"]').click()")
    assert "metric=macs" in cdp.js("location.hash")
    lm_head = cdp.js("document.querySelector('.box[data-module=\"lm_head\"]').dataset.value")
    assert int(lm_head) == c.module("lm_head").macs
    assert cdp.js("document.querySelector('.box[data-module=\"h.0.ln_1\"]').classList.contains('hidden')")  # no MACs

    # Click to zoom into a block; the details panel follows; the fragment reloads the same view.
    x, y, _ = _center(cdp, "h.1")
    cdp.mouse("mousePressed", x, y)
    cdp.mouse("mouseReleased", x, y)
    assert cdp.js("document.getElementById('details').dataset.focus") == "h.1"
    _, _, zoomed = _center(cdp, "h.1")
    assert zoomed[2] == pytest.approx(root[2], abs=1.5)  # the focused module spans the chart
    assert cdp.js("document.querySelector('.box[data-module=\"h.0\"]').classList.contains('hidden')")
    cdp.call("Page.navigate", url="about:blank")
    _load(cdp, path.as_uri() + "#metric=bytes&phase=backward&focus=h.0")
    assert cdp.js("document.querySelector('#metrics .on').dataset.value") == "bytes"
    assert cdp.js("document.querySelector('#phases .on').dataset.value") == "backward"
    assert cdp.js("document.getElementById('details').dataset.focus") == "h.0"
    value = int(cdp.js("document.querySelector('.box[data-module=\"h.0.fc\"]').dataset.value"))
    assert value == c.module("h.0.fc", phase="backward").bytes


# ----- issue 13 item 7: tied weights count once in the page's parameter shares -----------------------------

class _TiedLM(torch.nn.Module):
    """Embedding(10, 4) and a bias-free Linear(4, 10) head sharing its weight (as GPT-2's lm_head)."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 4))
        self.head = torch.nn.Linear(4, 10, bias=False)
        self.head.weight = self.body[0].weight

    def forward(self, x):
        return self.head(self.body(x))


def _tied_report():
    model = _TiedLM()
    with fd.count(model) as c:
        model(torch.tensor([[1, 2]]))
    return c, fd.Report.from_count(c)


def test_tied_weights_are_counted_once_in_the_first_module_holding_them(tmp_path):
    c, report = _tied_report()
    # embedding 10 * 4 = 40, body.1 4 * 4 + 4 = 20, root 40 + 20 = 60 (the tied 40 once)
    assert [c.module(n).params for n in ("", "body", "body.0", "body.1", "head")] == [60, 60, 40, 20, 40]
    # the head holds the embedding's tensor: all 40 of its params were counted in body.0 first
    assert [c.module(n).shared_params for n in ("", "body", "body.0", "body.1", "head")] == [0, 0, 0, 0, 40]
    # root's children, each tensor once: (60 - 0) + (40 - 40) = 60 = the root's, not 100 (167%)
    assert sum(c.module(n).params - c.module(n).shared_params for n in ("body", "head")) == c.module("").params
    saved = tmp_path / "tied.json"
    report.save(saved)
    data = json.loads(saved.read_text())
    assert [m.get("shared_params", 0) for m in data["modules"]] == [0, 0, 0, 0, 40]  # written when nonzero
    assert fd.Report.load(saved).module("head").shared_params == 40


def test_page_parameter_shares_of_tied_weights_add_up_to_100_percent(browser, tmp_path):
    _, report = _tied_report()
    path = tmp_path / "tied.html"
    write_html(report, path)
    _load(browser, path.as_uri() + "#metric=params")
    values = {n: int(browser.js(f"document.querySelector('.box[data-module=\"{n}\"]').dataset.value"))
              for n in ("", "body")}
    assert values == {"": 60, "body": 60}  # body holds every tensor once: 100% of the root
    # the head's 40 params are body.0's tensor: it adds 0 (no box), not another 67%
    assert browser.js("document.querySelector('.box[data-module=\"head\"]').classList.contains('hidden')")
    browser.call("Page.navigate", url="about:blank")
    _load(browser, path.as_uri() + "#metric=params&focus=head")
    assert "40 tied to an earlier module's, counted there" in browser.js("document.getElementById('details').innerText")


def test_page_states_the_ignored_modules(browser, tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 10, bias=False))
    with fd.count(model, ignore=["1"]) as c:
        model(torch.ones(3, 4))
    path = tmp_path / "ignored.html"
    write_html(fd.Report.from_count(c), path)
    _load(browser, path.as_uri())
    # ignored "1": 3 * 4 * 10 = 120 MACs = 240 FLOPs
    assert "ignored (not in any figure) 1: 240 FLOPs" in browser.js("document.getElementById('meta').innerText")
