"""One self-contained HTML page for a report: an icicle of modules, hover details and the op table.

No network: the report's JSON, the script and the styles are inline. The icicle shows each module
as a box as wide as its share of the chosen figure (FLOPs, MACs, bytes or parameters; optionally
one phase); hovering shows a module's counts, clicking zooms into it (click the top box or the
path to zoom out). The page state is in the URL fragment, e.g. ``page.html#metric=macs&phase=
backward&focus=h.0``, so a view can be linked. Every module box is an element
``<div class="box" data-module="NAME">`` (drawn by the script, hidden when zero-width).

The embedded JSON is ASCII with ``<``, ``>`` and ``&`` escaped (nothing in a name can close the
script); integers past 2**53 travel as strings of their exact digits, and the script computes
shares on doubles scaled by a common power of ten, so counts up to the schema's 600 digits draw
right.
"""
from __future__ import annotations

import html
import json

from .report import terminal_safe

_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
:root { --fg:#1d232b; --muted:#66707c; --line:#d9dee4; --bg:#f7f8fa; --accent:#2f6fd6; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { padding: 16px 24px 8px; background: #fff; border-bottom: 1px solid var(--line); }
h1 { font-size: 18px; margin: 0 0 8px; font-weight: 600; }
h2 { font-size: 15px; margin: 20px 0 8px; font-weight: 600; }
main { padding: 8px 24px 32px; }
.cards { display: flex; flex-wrap: wrap; gap: 8px; }
.card { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; min-width: 110px; }
.card b { display: block; font-size: 17px; font-variant-numeric: tabular-nums; }
.card span { color: var(--muted); font-size: 12px; }
.meta { color: var(--muted); font-size: 12px; margin-top: 8px; }
.meta code { color: var(--fg); }
.controls { display: flex; flex-wrap: wrap; gap: 16px; align-items: center; margin: 12px 0 8px; }
.seg { display: inline-flex; border: 1px solid var(--line); border-radius: 6px; overflow: hidden; background: #fff; }
.seg button { border: 0; background: none; padding: 5px 12px; font: inherit; cursor: pointer; color: var(--fg); }
.seg button + button { border-left: 1px solid var(--line); }
.seg button.on { background: var(--accent); color: #fff; }
.seg button:disabled { color: #b5bcc5; cursor: default; }
#crumbs { font-size: 13px; color: var(--muted); }
#crumbs a { color: var(--accent); cursor: pointer; text-decoration: none; }
#chart { position: relative; background: #fff; border: 1px solid var(--line); border-radius: 6px; overflow: hidden; }
.box { position: absolute; overflow: hidden; white-space: nowrap; text-overflow: ellipsis; font-size: 12px; line-height: 26px;
       padding: 0 5px; border-right: 1px solid #fff; border-bottom: 1px solid #fff; cursor: pointer; color: #10161d; }
.box:hover { filter: brightness(0.92); outline: 2px solid var(--fg); outline-offset: -2px; z-index: 2; }
.box.focus { font-weight: 600; }
.box.hidden { display: none; }
#note { color: var(--muted); font-size: 12px; margin-top: 6px; }
#tip { position: fixed; display: none; pointer-events: none; background: #fff; border: 1px solid var(--line); border-radius: 6px;
       box-shadow: 0 4px 16px rgba(0,0,0,.15); padding: 8px 10px; font-size: 12px; z-index: 10; max-width: 420px; }
#tip h3, #details h3 { margin: 0 0 4px; font-size: 13px; word-break: break-all; }
table.kv td { padding: 1px 10px 1px 0; font-variant-numeric: tabular-nums; }
table.kv td:first-child { color: var(--muted); }
#details { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; margin-top: 8px; font-size: 12px; }
.scroll { overflow-x: auto; max-width: 100%; }
table.ops { border-collapse: collapse; background: #fff; border: 1px solid var(--line); font-size: 12.5px; width: 100%; }
table.ops th, table.ops td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
table.ops th { background: var(--bg); cursor: pointer; user-select: none; position: sticky; top: 0; }
table.ops th:first-child, table.ops td:first-child { text-align: left; }
table.ops tr.unsupported td:first-child { color: #b3261e; }
table.ops th.sorted::after { content: " \25BE"; }
.bar { display: inline-block; height: 8px; background: var(--accent); opacity: .55; vertical-align: middle; margin-right: 6px; }
.warn { color: #b3261e; }
</style>
</head>
<body>
<header>
  <h1 id="title"></h1>
  <div class="cards" id="cards"></div>
  <div class="meta" id="meta"></div>
</header>
<main>
  <div class="controls">
    <div class="seg" id="metrics"></div>
    <div class="seg" id="phases"></div>
    <div id="crumbs"></div>
  </div>
  <div id="chart"></div>
  <div id="note"></div>
  <div id="details"></div>
  <h2>Ops</h2>
  <div class="scroll"><table class="ops" id="ops"><thead></thead><tbody></tbody></table></div>
  <div id="unsupported"></div>
</main>
<div id="tip"></div>
<script type="application/json" id="report-data">__DATA__</script>
<script>
(function () {
  "use strict";
  var R = JSON.parse(document.getElementById("report-data").textContent);
  var PHASES = ["forward", "backward", "optimizer", "other"];
  // Counts past 2**53 arrive as strings of their exact digits (a JSON number would lose digits, or
  // be Infinity past 1e308). Arithmetic uses doubles scaled by 10^-SHIFT (SHIFT > 0 only when a count
  // has more than 300 digits), so shares and widths stay right; si() writes numbers at their true
  // size, and "exact_" + key keeps each stored count's exact digits for display.
  var COUNT_KEYS = ["flops", "macs", "bytes_read", "bytes_written", "causal_macs", "calls", "params", "trainable_params", "shared_params"];
  var SHIFT = 0;
  function countObjects() {
    var out = [R];
    if (R.totals) { out.push(R.totals); }
    function withPhases(c) { out.push(c); var ph = c.phases || {}; PHASES.forEach(function (p) { if (ph[p]) { out.push(ph[p]); } }); }
    withPhases({ phases: R.phases || {} });
    (R.modules || []).forEach(withPhases);
    (R.ops || []).forEach(withPhases);
    return out;
  }
  function digits(x) { return typeof x === "string" ? x.replace(/^-/, "").length : 0; }
  function scaled(x) {
    if (typeof x === "number") { return SHIFT ? x / Math.pow(10, SHIFT) : x; }
    if (typeof x !== "string" || !/^-?[0-9]+$/.test(x)) { return 0; }
    var neg = x.charAt(0) === "-", d = neg ? x.slice(1) : x, k = Math.min(17, d.length);
    var v = Number(d.slice(0, k) + "e" + (d.length - k - SHIFT));
    return neg ? -v : v;
  }
  (function () {
    var objs = countObjects(), most = 0;
    objs.forEach(function (c) { COUNT_KEYS.forEach(function (key) { most = Math.max(most, digits(c[key])); }); });
    SHIFT = Math.max(0, most - 300);
    objs.forEach(function (c) {
      COUNT_KEYS.forEach(function (key) {
        if (c[key] !== undefined) { c["exact_" + key] = String(c[key]); c[key] = scaled(c[key]); }
      });
    });
  })();
  var METRICS = [["flops", "FLOPs"], ["macs", "MACs"], ["bytes", "bytes"], ["params", "params"]];
  var ROW = 28;
  var state = { metric: "flops", phase: "all", focus: "" };

  function sci(m, e) {  // m * 10^e, three significant digits: 2.7e22 (as the text tables write it)
    var t = m.toPrecision(3);
    if (Math.abs(Number(t)) >= 10) { t = (Number(t) / 10).toPrecision(3); e += 1; }
    return trim(t) + "e" + e;
  }
  function si(n, unit) {  // n: a (scaled) count; SI prefixes up to E, then 2.7e22
    unit = unit || "";
    if (!isFinite(n)) { return String(n) + (unit ? " " + unit : ""); }
    if (SHIFT && n !== 0) {
      var e0 = Math.floor(Math.log10(Math.abs(n)));
      if (e0 + SHIFT >= 21) { return sci(n / Math.pow(10, e0), e0 + SHIFT) + (unit ? " " + unit : ""); }
      n = n * Math.pow(10, SHIFT);
    }
    if (Math.abs(n) >= 1e21) { var e = Math.floor(Math.log10(Math.abs(n))); return sci(n / Math.pow(10, e), e) + (unit ? " " + unit : ""); }
    var p = [[1e18, "E"], [1e15, "P"], [1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "K"]];
    for (var i = 0; i < p.length; i++) {
      if (Math.abs(n) >= p[i][0]) {
        var t = (n / p[i][0]).toPrecision(3);
        if (Math.abs(Number(t)) >= 1000) {  // 999.6 K is 1 M
          if (i === 0) { return sci(n / 1e21, 21) + (unit ? " " + unit : ""); }
          t = (n / p[i - 1][0]).toPrecision(3); i -= 1;
        }
        return trim(t) + " " + p[i][1] + unit;
      }
    }
    return (Number.isInteger(n) ? String(n) : trim(n.toPrecision(3))) + (unit ? " " + unit : "");
  }
  function exact(c, key) {  // a count as exact digits when the file has them, else as si()
    if (c && c["exact_" + key] !== undefined) { return c["exact_" + key]; }
    var v = c ? (c[key] || 0) : 0;
    return !SHIFT && Number.isSafeInteger(v) ? String(v) : si(v);
  }
  function trim(s) { return s.indexOf(".") >= 0 && s.indexOf("e") < 0 ? s.replace(/0+$/, "").replace(/\.$/, "") : s; }
  function bytesOf(c) { return (c.bytes_read || 0) + (c.bytes_written || 0); }
  function get(c, key) { if (!c) { return 0; } return key === "bytes" ? bytesOf(c) : (c[key] || 0); }
  function pct(a, b) { return b ? (100 * a / b).toFixed(1) + "%" : "0.0%"; }
  function intensity(c) {  // FLOPs per byte; a quotient past 1e21 as 2.7e22 (the counts are scaled alike)
    var b = bytesOf(c);
    if (!b) { return "0.0"; }
    var q = c.flops / b;
    if (isFinite(q) && Math.abs(q) < 1e21) { return q.toFixed(1); }
    var e = Math.log10(Math.abs(c.flops)) - Math.log10(Math.abs(b)), ei = Math.floor(e);
    return (q < 0 ? "-" : "") + sci(Math.pow(10, e - ei), ei);
  }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in (attrs || {})) { e.setAttribute(k, attrs[k]); }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function unitOf(key) { return key === "bytes" ? "B" : ""; }
  var phasesRun = PHASES.filter(function (p) { return R.phases[p] && R.phases[p].calls > 0; });

  // ----- header ---------------------------------------------------------------------------------
  var meta = R.meta || {};
  document.getElementById("title").textContent = "flopdispatch" + (meta.target ? ": " + meta.target : "");
  var cards = document.getElementById("cards");
  function card(value, label) { var c = el("div", { "class": "card" }); c.appendChild(el("b", {}, value)); c.appendChild(el("span", {}, label)); cards.appendChild(c); }
  card(si(R.totals.flops), "FLOPs");
  card(si(R.totals.macs), "MACs");
  card(si(bytesOf(R.totals), "B"), "bytes moved");
  card(intensity(R.totals), "FLOP / byte");
  card(si(R.params), "parameters");
  if (phasesRun.length > 1) {
    phasesRun.forEach(function (p) { if (R.phases[p].flops) { card(si(R.phases[p].flops), p + " FLOPs"); } });
  }
  if (R.totals.causal_macs !== R.totals.macs) { card(si(R.totals.causal_macs), "causal-aware MACs"); }
  var metaBits = [];
  ["mode", "devices", "dtypes", "inputs", "torch_version", "flopdispatch_version", "created", "duration_s", "exit_code", "error"].forEach(function (k) {
    if (meta[k] !== undefined && meta[k] !== null && meta[k] !== "") { metaBits.push([k, Array.isArray(meta[k]) ? meta[k].join(", ") : String(meta[k])]); }
  });
  if (Array.isArray(meta.command)) { metaBits.push(["command", meta.command.join(" ")]); }
  // count(ignore=...): the modules whose work is in no figure of this page, and how much it was
  if (meta.ignored && Array.isArray(meta.ignored.modules)) {
    var ig = meta.ignored, igFlops = typeof ig.flops === "number" ? ig.flops : 0;
    metaBits.push(["ignored (not in any figure)", ig.modules.map(function (n) { return n === "" ? "(root)" : String(n); }).join(", ") +
                   ": " + si(igFlops) + " FLOPs"]);
  }
  var metaEl = document.getElementById("meta");
  metaBits.forEach(function (kv, i) {
    if (i) { metaEl.appendChild(document.createTextNode(" \u00b7 ")); }
    metaEl.appendChild(document.createTextNode(kv[0].replace(/_/g, " ") + " "));
    metaEl.appendChild(el("code", {}, kv[1]));
  });

  // ----- module tree ----------------------------------------------------------------------------
  var nodes = R.modules.map(function (m, i) {
    return { m: m, i: i, name: m.name, depth: m.name === "" ? 0 : m.name.split(".").length, children: [], parent: null };
  });
  var byName = Object.create(null);  // module names are data: "__proto__" or "constructor" too
  nodes.forEach(function (n) { byName[n.name] = n; });
  nodes.forEach(function (n) {
    if (n.name === "") { return; }
    var cut = n.name.lastIndexOf(".");
    var p = byName[cut < 0 ? "" : n.name.slice(0, cut)];
    if (p) { n.parent = p; p.children.push(n); }
  });
  // A container that never ran itself (ModuleList, ModuleDict) shows the sum of its children.
  var FIELDS = ["flops", "macs", "bytes_read", "bytes_written", "causal_macs", "calls"];
  function addInto(a, b) { FIELDS.forEach(function (f) { a[f] = (a[f] || 0) + ((b && b[f]) || 0); }); }
  for (var ni = nodes.length - 1; ni >= 0; ni--) {
    var nd = nodes[ni];
    if (!nd.m.calls && nd.children.length) {
      nd.rolled = true; nd.c = {}; nd.pc = {};
      nd.children.forEach(function (k) {
        addInto(nd.c, k.c);
        PHASES.forEach(function (p) { if (k.pc[p]) { nd.pc[p] = nd.pc[p] || {}; addInto(nd.pc[p], k.pc[p]); } });
      });
    } else {
      nd.rolled = false; nd.c = nd.m; nd.pc = nd.m.phases || {};
    }
  }
  function value(n) {
    // a tied tensor counts once, in the first module holding it: siblings add up to their parent
    if (state.metric === "params") { return (n.m.params || 0) - (n.m.shared_params || 0); }
    return state.phase === "all" ? get(n.c, state.metric) : get(n.pc[state.phase], state.metric);
  }
  function totalValue() {
    if (state.metric === "params") { return R.params; }
    return state.phase === "all" ? get(R.totals, state.metric) : get(R.phases[state.phase], state.metric);
  }
  function metricLabel() { return METRICS.filter(function (m) { return m[0] === state.metric; })[0][1]; }
  function leaf(n) { return n.name === "" ? (n.m.type || "(root)") : n.name.slice(n.name.lastIndexOf(".") + 1); }

  var chart = document.getElementById("chart");
  var tip = document.getElementById("tip");
  nodes.forEach(function (n) {
    var b = el("div", { "class": "box hidden", "data-module": n.name, "data-type": n.m.type || "", "data-depth": String(n.depth) });
    b.addEventListener("mousemove", function (ev) { showTip(n, ev); });
    b.addEventListener("mouseleave", function () { tip.style.display = "none"; });
    b.addEventListener("click", function () { setFocus(n.name === state.focus && n.parent ? n.parent.name : n.name); });
    n.box = b;
    chart.appendChild(b);
  });
  if (!nodes.length) { chart.appendChild(el("div", { style: "padding:12px" }, "No nn.Module ran in this report: see the op table.")); }

  function hue(s) { var h = 0; for (var i = 0; i < s.length; i++) { h = (h * 31 + s.charCodeAt(i)) >>> 0; } return h % 360; }
  function layout() {
    var focus = byName[state.focus] || nodes[0];
    if (!focus) { return; }
    var width = chart.clientWidth || 1000;
    var maxDepth = 0;
    nodes.forEach(function (n) { n.x0 = n.x1 = 0; n.on = false; });
    (function place(n, x0, x1, d) {
      n.x0 = x0; n.x1 = x1; n.d = d; n.on = true;
      if (d > maxDepth) { maxDepth = d; }
      var kids = n.children, sum = 0;
      kids.forEach(function (k) { sum += value(k); });
      var whole = Math.max(value(n), sum), x = x0;
      kids.forEach(function (k) {
        var w = whole ? (x1 - x0) * value(k) / whole : 0;
        place(k, x, x + w, d + 1);
        x += w;
      });
    })(focus, 0, 1, 0);
    chart.style.height = ((maxDepth + 1) * ROW + 2) + "px";
    var total = totalValue();
    nodes.forEach(function (n) {
      var b = n.box, w = (n.x1 - n.x0) * width;
      if (!n.on || w < 0.5) { b.className = "box hidden"; b.style.width = "0px"; return; }
      b.className = "box" + (n === focus ? " focus" : "");
      b.style.left = (n.x0 * width) + "px";
      b.style.top = (n.d * ROW) + "px";
      b.style.width = w + "px";
      b.style.height = (ROW - 1) + "px";
      var t = n.m.type || "";
      b.style.background = "hsl(" + hue(t) + ", 55%, " + Math.min(88, 66 + 4 * n.depth) + "%)";
      var v = value(n);
      b.setAttribute("data-value", SHIFT ? si(v) : String(v));
      b.textContent = w > 36 ? leaf(n) + (w > 110 ? "  " + si(v, unitOf(state.metric)) + " (" + pct(v, total) + ")" : "") : "";
    });
    var note = document.getElementById("note");
    var root = nodes[0], outside = total - value(root);
    note.textContent = (state.metric !== "params" && outside > 0)
      ? (outside / total < 0.001 ? "under 0.1%" : pct(outside, total)) + " of the " + (state.phase === "all" ? "" : state.phase + " ") + metricLabel() +
        " ran outside the root module (loss, optimizer, data preparation)."
      : "";
    crumbs(focus);
    details(focus);
  }
  function crumbs(focus) {
    var c = document.getElementById("crumbs");
    c.textContent = "";
    var path = [];
    for (var n = focus; n; n = n.parent) { path.unshift(n); }
    path.forEach(function (n, i) {
      if (i) { c.appendChild(document.createTextNode(" / ")); }
      var a = el("a", { "data-crumb": n.name }, leaf(n));
      a.addEventListener("click", function () { setFocus(n.name); });
      c.appendChild(a);
    });
    if (path.length > 1 || focus.children.length) { c.appendChild(document.createTextNode("  (click a box to zoom in, the top box to zoom out)")); }
  }
  function kvTable(n) {
    var m = n.c, t = el("table", { "class": "kv" });
    function row(k, v) { var tr = el("tr"); tr.appendChild(el("td", {}, k)); tr.appendChild(el("td", {}, v)); t.appendChild(tr); }
    var total = totalValue(), parent = n.parent;
    row("type", (n.m.type || "") + (n.rolled ? " (not called itself: sum of its children)" : ""));
    row("params", si(n.m.params) + (n.m.trainable_params !== n.m.params ? " (" + si(n.m.trainable_params) + " trainable)" : "") +
        (n.m.shared_params ? "; " + si(n.m.shared_params) + " tied to an earlier module's, counted there" : ""));
    row("FLOPs", si(m.flops));
    row("MACs", si(m.macs) + (m.causal_macs !== m.macs ? " (causal-aware " + si(m.causal_macs) + ")" : ""));
    row("bytes", si(bytesOf(m), "B") + " (read " + si(m.bytes_read, "B") + ", written " + si(m.bytes_written, "B") + ")");
    row("FLOP / byte", intensity(m));
    row("op calls", exact(m, "calls"));
    row("share of total " + metricLabel() + (state.phase !== "all" && state.metric !== "params" ? " (" + state.phase + ")" : ""),
        pct(value(n), total));
    if (parent) { row("share of parent", pct(value(n), value(parent))); }
    phasesRun.forEach(function (p) {
      var c = n.pc[p];
      row(p, c ? si(c.flops) + " FLOPs, " + si(c.macs) + " MACs, " + si(bytesOf(c), "B") : "-");
    });
    return t;
  }
  function showTip(n, ev) {
    tip.textContent = "";
    tip.appendChild(el("h3", {}, n.name === "" ? "(root) " + (n.m.type || "") : n.name));
    tip.appendChild(kvTable(n));
    tip.style.display = "block";
    var x = ev.clientX + 14, y = ev.clientY + 14;
    if (x + tip.offsetWidth > window.innerWidth) { x = ev.clientX - tip.offsetWidth - 14; }
    if (y + tip.offsetHeight > window.innerHeight) { y = ev.clientY - tip.offsetHeight - 14; }
    tip.style.left = Math.max(0, x) + "px";
    tip.style.top = Math.max(0, y) + "px";
  }
  function details(n) {
    var d = document.getElementById("details");
    d.textContent = "";
    d.setAttribute("data-focus", n.name);
    d.appendChild(el("h3", {}, "Focused: " + (n.name === "" ? "(root) " + (n.m.type || "") : n.name)));
    d.appendChild(kvTable(n));
  }

  // ----- controls -------------------------------------------------------------------------------
  function buttons(id, items, key, disabledFn) {
    var box = document.getElementById(id);
    box.textContent = "";
    items.forEach(function (it) {
      var b = el("button", { "data-value": it[0], type: "button" }, it[1]);
      if (state[key] === it[0]) { b.className = "on"; }
      if (disabledFn && disabledFn(it[0])) { b.disabled = true; }
      b.addEventListener("click", function () { state[key] = it[0]; update(); });
      box.appendChild(b);
    });
  }
  function setFocus(name) { state.focus = name; update(); }
  function update() {
    if (state.metric === "params") { state.phase = "all"; }
    buttons("metrics", METRICS, "metric");
    if (phasesRun.length > 1) {
      buttons("phases", [["all", "all phases"]].concat(phasesRun.map(function (p) { return [p, p]; })), "phase",
              function (v) { return state.metric === "params" && v !== "all"; });
    } else {
      document.getElementById("phases").style.display = "none";
    }
    layout();
    var h = "metric=" + state.metric + (state.phase !== "all" ? "&phase=" + state.phase : "") +
            (state.focus ? "&focus=" + encodeURIComponent(state.focus) : "");
    if (location.hash.slice(1) !== h) { try { history.replaceState(null, "", "#" + h); } catch (e) { /* file:// in some browsers */ } }
  }
  function readHash() {
    location.hash.slice(1).split("&").forEach(function (kv) {
      var i = kv.indexOf("="); if (i < 0) { return; }
      var k = kv.slice(0, i), v = decodeURIComponent(kv.slice(i + 1));
      if (k === "metric" && METRICS.some(function (m) { return m[0] === v; })) { state.metric = v; }
      if (k === "phase" && phasesRun.indexOf(v) >= 0) { state.phase = v; }
      if (k === "focus" && byName[v]) { state.focus = v; }
    });
  }
  readHash();
  window.addEventListener("hashchange", function () { readHash(); update(); });

  // ----- op table -------------------------------------------------------------------------------
  var unsupported = Object.create(null);
  (R.unsupported || []).forEach(function (u) { unsupported[u.op] = u; });
  var cols = [["name", "op"], ["calls", "calls"], ["flops", "FLOPs"], ["macs", "MACs"], ["bytes_read", "bytes read"],
              ["bytes_written", "bytes written"], ["intensity", "FLOP/B"], ["share", "% FLOPs"]];
  if (phasesRun.length > 1) { phasesRun.forEach(function (p) { cols.push(["phase:" + p, p + " FLOPs"]); }); }
  var opSort = "flops";
  function opValue(o, key) {
    if (key === "name") { return o.name; }
    if (key === "intensity") { var b = bytesOf(o); return b ? o.flops / b : 0; }
    if (key === "share") { return o.flops; }
    if (key.indexOf("phase:") === 0) { return get((o.phases || {})[key.slice(6)], "flops"); }
    return o[key] || 0;
  }
  function opCell(o, key) {
    if (key === "name") { return o.name + (unsupported[o.name] ? " (unsupported)" : ""); }
    if (key === "calls") { return exact(o, "calls"); }
    if (key === "intensity") { return intensity(o); }
    if (key === "share") { return pct(o.flops, R.totals.flops); }
    if (key.indexOf("bytes") === 0) { return si(o[key], "B"); }
    return si(opValue(o, key));
  }
  function drawOps() {
    var table = document.getElementById("ops");
    var thead = table.tHead, tbody = table.tBodies[0];
    thead.textContent = ""; tbody.textContent = "";
    var tr = el("tr");
    cols.forEach(function (c) {
      var th = el("th", { "data-key": c[0] }, c[1]);
      if (c[0] === opSort) { th.className = "sorted"; }
      th.addEventListener("click", function () { opSort = c[0]; drawOps(); });
      tr.appendChild(th);
    });
    thead.appendChild(tr);
    var rows = R.ops.slice();
    rows.sort(function (a, b) {
      var x = opValue(a, opSort), y = opValue(b, opSort);
      if (opSort === "name") { return x < y ? -1 : x > y ? 1 : 0; }
      return y - x || (a.name < b.name ? -1 : 1);
    });
    var maxFlops = 0;
    R.ops.forEach(function (o) { if (o.flops > maxFlops) { maxFlops = o.flops; } });  // no apply(): 10^5 ops overflow the argument stack
    rows.forEach(function (o) {
      var r = el("tr", { "data-op": o.name });
      if (unsupported[o.name]) { r.className = "unsupported"; }
      cols.forEach(function (c) {
        var td = el("td");
        if (c[0] === "share") {
          var bar = el("span", { "class": "bar" });
          bar.style.width = (maxFlops ? Math.round(60 * o.flops / maxFlops) : 0) + "px";
          td.appendChild(bar);
        }
        td.appendChild(document.createTextNode(opCell(o, c[0])));
        r.appendChild(td);
      });
      tbody.appendChild(r);
    });
  }
  var un = document.getElementById("unsupported");
  if ((R.unsupported || []).length) {
    un.appendChild(el("h2", { "class": "warn" }, "Unsupported ops (FLOPs not counted, bytes counted)"));
    var ul = el("ul");
    R.unsupported.forEach(function (u) { ul.appendChild(el("li", {}, u.op + " \u00d7" + String(u.calls) + (u.reason ? ": " + u.reason : ""))); });
    un.appendChild(ul);
  }

  drawOps();
  update();
  window.addEventListener("resize", layout);
  document.body.setAttribute("data-ready", "1");
})();
</script>
</body>
</html>
"""


def _exact_for_js(x):
    """The report's JSON for the page: integers past 2**53 (where a JS number loses digits) as strings."""
    if isinstance(x, dict):
        return {k: _exact_for_js(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_exact_for_js(v) for v in x]
    if isinstance(x, int) and not isinstance(x, bool) and abs(x) > 2**53:
        return str(x)
    return x


def render_html(report) -> str:
    """The page for a ``Report`` (one string; write it to a .html file)."""
    data = json.dumps(_exact_for_js(report.to_dict()), separators=(",", ":"), default=str)  # ASCII: \u escapes
    # Inside <script>: no "</script>", "<!--" or stray "<" can end or confuse the element.
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    target = report.meta.get("target")
    title = terminal_safe("flopdispatch" + (f": {target}" if target else ""))  # no raw controls or lone surrogates
    page = _TEMPLATE.replace("__DATA__", data, 1)
    return page.replace("__TITLE__", html.escape(title), 1)


def write_html(report, path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(render_html(report))
