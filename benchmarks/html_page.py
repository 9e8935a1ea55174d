"""The HTML page in headless Chromium: file size and time to draw, and the README's screenshots.

    python benchmarks/html_page.py                    # GPT-2 small step, a 70B Llama step (meta), and
                                                      # a synthetic tree of 5,202 modules
    python benchmarks/html_page.py --screenshots docs # also write docs/html-report.png (1280 px wide)
                                                      # and docs/html-report-800.png (800 px)

Counts each model on the meta device (the 70B Llama needs transformers), writes its page, loads
it in Chromium (FLOPDISPATCH_CHROMIUM or chromium on PATH) and reports the page's size and the
wall time from navigation to the script's data-ready mark plus the browser's layout (page parse,
JSON parse, first draw of the icicle, the module table and the op table), the best of three loads;
then the time to focus a module (a click on a module-table row: icicle, tables and details redrawn
and laid out) and to expand the whole tree. Timings are this machine's; nothing here is asserted.
"""
import argparse
import base64
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "report"))  # test_html, test_html_page
sys.path.insert(0, os.path.join(HERE, "..", "tests", "helpers"))  # report_v1 (imported by test_html_page)

import torch  # noqa: E402

import flopdispatch as fd  # noqa: E402
from flopdispatch.htmlreport import write_html  # noqa: E402


def gpt2_report():
    from flopdispatch._demo import GPT

    model = GPT(device="meta")
    idx = torch.randint(0, 50257, (1, 1024), device="meta")
    with fd.count(model) as c:
        model(idx, targets=idx).backward()
    meta = {"mode": "demo", "target": "GPT-2 small training step, 1 x 1024 tokens", "inputs": ["1x1024:int64"],
            "devices": ["meta"], "dtypes": ["float32", "int64"],
            "command": ["flopdispatch", "demo", "--html", "gpt2.html"]}
    return fd.Report.from_count(c, meta=meta)


def llama70b_report():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=8192, num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8,
                         intermediate_size=28672, vocab_size=32000)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    ids = torch.randint(0, 32000, (1, 4096), device="meta")
    with fd.count(model) as c:
        model(input_ids=ids, labels=ids).loss.backward()
    return fd.Report.from_count(c, meta={"target": "Llama 70B training step, 1 x 4096 tokens (meta)"})


class Browser:
    """Headless Chromium driven over the DevTools protocol (the client of tests/report/test_html.py)."""

    def __init__(self, width, height):
        import subprocess
        import urllib.request

        from test_html import _CDP, _chromium

        exe = _chromium()
        if exe is None:
            sys.exit("Chromium is not installed (Debian: apt-get install -y chromium)")
        self.profile = tempfile.mkdtemp(prefix="fd-chromium-")
        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--disable-extensions", "--hide-scrollbars", "--remote-debugging-port=0", "--remote-allow-origins=*",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + 30
        while not (os.path.exists(port_file) and open(port_file).read().count("\n") >= 1):
            if time.time() > deadline:
                sys.exit("Chromium did not start")
            time.sleep(0.05)
        port = int(open(port_file).read().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            page = [t for t in json.load(r) if t.get("type") == "page"][0]
        self.cdp = _CDP(page["webSocketDebuggerUrl"], timeout=120)
        self.cdp.call("Page.enable")
        self.cdp.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                      mobile=False)

    def load(self, url):
        """Seconds from navigation to the page's data-ready mark."""
        self.cdp.call("Page.navigate", url="about:blank")
        t0 = time.perf_counter()
        self.cdp.call("Page.navigate", url=url)
        while True:
            try:
                if self.cdp.js("document.readyState === 'complete' && document.body && "
                               "document.body.getAttribute('data-ready')") == "1":
                    self.cdp.js("document.body.getBoundingClientRect().height")  # style and layout done
                    return time.perf_counter() - t0
            except RuntimeError:
                pass
            time.sleep(0.01)

    def screenshot(self, path, width):
        height = self.cdp.js("document.documentElement.scrollHeight")
        data = self.cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                             clip={"x": 0, "y": 0, "width": width, "height": min(height, 2400), "scale": 1})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        import signal

        self.cdp.close()
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.proc.wait()


def measure(name, report, out_dir, browser):
    path = os.path.join(out_dir, name + ".html")
    write_html(report, path)
    size = os.path.getsize(path)
    loads = [browser.load("file://" + path) for _ in range(3)]
    cdp = browser.cdp
    block = cdp.js("(function(){var r=document.querySelector('#modules tbody tr[data-module]:nth-child(5)');"
                   "return r ? r.dataset.module : null;})()")
    t0 = time.perf_counter()
    cdp.js("document.querySelector(" + json.dumps(f'#modules tbody tr[data-module="{block}"]') + ").click();"
           "document.body.getBoundingClientRect().height")  # redrawn and laid out
    focus_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cdp.js("document.querySelector('#module-tools button').click();"  # expand all
           "document.body.getBoundingClientRect().height")
    expand_s = time.perf_counter() - t0
    rows = cdp.js("document.querySelectorAll('#modules tbody tr[data-module]').length")
    wide = cdp.js("document.documentElement.scrollWidth")
    print(f"{name}: {len(report.module_names)} modules, {len(report.ops())} ops, page {size / 1e6:.2f} MB; "
          f"load to drawn {min(loads):.2f} s (best of 3: {', '.join(f'{t:.2f}' for t in loads)}); "
          f"focus {block!r} {focus_s * 1e3:.0f} ms; expand all ({rows} rows) {expand_s * 1e3:.0f} ms; "
          f"page width {wide} px")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--screenshots", metavar="DIR", help="write html-report.png and html-report-800.png there")
    ap.add_argument("--no-llama", action="store_true", help="skip the 70B Llama (needs transformers)")
    args = ap.parse_args()
    out_dir = tempfile.mkdtemp(prefix="fd-page-")
    browser = Browser(1280, 1000)
    try:
        gpt = measure("gpt2", gpt2_report(), out_dir, browser)
        if not args.no_llama:
            t0 = time.perf_counter()
            report = llama70b_report()
            print(f"(counted the 70B Llama step in {time.perf_counter() - t0:.1f} s)")
            measure("llama70b", report, out_dir, browser)
        from test_html_page import _wide_tree

        measure("wide-synthetic", _wide_tree(400, 12), out_dir, browser)
        if args.screenshots:  # the whole model, block 0 opened in the module table
            browser.load("file://" + gpt)
            browser.cdp.js("document.querySelector('#modules tr[data-module=\"h.0\"] .tw').click()")
            browser.screenshot(os.path.join(args.screenshots, "html-report.png"), 1280)
    finally:
        browser.close()
    if args.screenshots:
        narrow = Browser(800, 1000)
        try:
            narrow.load("file://" + gpt + "#focus=h.0")
            print(f"800 px window: page width {narrow.cdp.js('document.documentElement.scrollWidth')} px")
            narrow.screenshot(os.path.join(args.screenshots, "html-report-800.png"), 800)
        finally:
            narrow.close()


if __name__ == "__main__":
    main()
