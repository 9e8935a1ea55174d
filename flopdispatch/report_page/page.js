// The flopdispatch report page's script. htmlreport.py inlines it, after the report's JSON
// (the "report-data" JSON script element), into one self-contained file.
//
// What it draws: the header (cards and metadata), an icicle of the module tree, a module table
// (a tree with the terminal table's columns plus the exclusive "self" figure, sortable within
// siblings), the details of the focused module and the op table of the focused module's subtree;
// when the report has them, saved activations (count(activations=True)), a communication table
// (torch.distributed collectives) and symbolic polynomials (--symbolic). Absent keys: nothing shown.
// The icicle, the module table and the op table follow one focused module; the state (figure,
// phase, focus, search) is in the URL fragment: page.html#metric=macs&phase=backward&focus=h.0.
//
// It reads, it does not recompute: it receives a flopdispatch.report/2 object (htmlreport.py always
// writes one), whose module figures, roll-ups and scope paths the Python results engine made
// (flopdispatch.results); the op table of a focused module sums the rows of the scopes whose path
// holds it, which is what Report.ops(module=...) returns (tests/api/test_results_parity.py).
//
// Names and metadata are data: they reach the document only through textContent and
// setAttribute, and every map keyed by a name is Object.create(null) ("__proto__" is a name).
(function () {
  "use strict";
  var R = JSON.parse(document.getElementById("report-data").textContent);
  var PHASES = ["forward", "backward", "optimizer", "other"];
  var PHASE_SHORT = { forward: "fwd", backward: "bwd", optimizer: "opt", other: "other" };
  // Counts past 2**53 arrive as strings of their exact digits (a JSON number would lose digits, or
  // be Infinity past 1e308). Arithmetic uses doubles scaled by 10^-SHIFT (SHIFT > 0 only when a count
  // has more than 300 digits), so shares and widths stay right; si() writes numbers at their true
  // size, and "exact_" + key keeps each stored count's exact digits for display.
  var COUNT_KEYS = ["flops", "macs", "bytes_read", "bytes_written", "causal_macs", "calls", "params", "trainable_params", "shared_params",
                    "saved_bytes", "self_saved_bytes", "saved_peak_bytes", "saved_param_bytes"];
  // the order of the numbers in a scope's op rows (flopdispatch.schema.SELF_OP_FIELDS)
  var SELF_OP_FIELDS = ["calls", "flops", "macs", "bytes_read", "bytes_written", "causal_macs"];
  var FIELDS = ["flops", "macs", "bytes_read", "bytes_written", "causal_macs", "calls", "seconds"];
  var SHIFT = 0;
  R.modules = R.modules || [];
  R.ops = R.ops || [];
  R.phases = R.phases || {};
  R.totals = R.totals || {};
  // count(activations=True): bytes saved for backward (absent: not measured, so nothing is shown, not zero)
  var ACT = R.activations && typeof R.activations === "object" ? R.activations : null;
  function countObjects() {
    var out = [R];
    if (R.totals) { out.push(R.totals); }
    if (ACT) { out.push(ACT); }
    function withPhases(c) { out.push(c); var ph = c.phases || {}; PHASES.forEach(function (p) { if (ph[p]) { out.push(ph[p]); } }); }
    withPhases({ phases: R.phases });
    R.modules.forEach(withPhases);
    R.ops.forEach(withPhases);
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
  // report/2: the engine's scopes (flopdispatch.results): each scope's own module ("module", -1 outside
  // every module), the modules holding it ("path", the attribution rule applied in Python) and its op rows
  var SCOPES = Array.isArray(R.scopes) ? R.scopes.filter(function (s) { return s && typeof s === "object"; }) : [];
  function eachScopeRow(fn) {  // fn(scope, phase, op, row) for every op row of every scope
    SCOPES.forEach(function (s) {
      var so = s.ops;
      if (!so || typeof so !== "object") { return; }
      PHASES.forEach(function (p) {
        var ops = so[p];
        if (!ops || typeof ops !== "object") { return; }
        Object.keys(ops).forEach(function (op) { fn(s, p, op, ops[op]); });
      });
    });
  }
  function eachSelfRow(fn) {  // fn(module, phase, op, row) for every row of every module's own ops
    eachScopeRow(function (s, p, op, row) { if (s.module >= 0 && R.modules[s.module]) { fn(R.modules[s.module], p, op, row); } });
  }
  (function () {
    var objs = countObjects(), most = 0;
    objs.forEach(function (c) { COUNT_KEYS.forEach(function (key) { most = Math.max(most, digits(c[key])); }); });
    eachScopeRow(function (s, p, op, row) { for (var i = 0; i < row.length; i++) { most = Math.max(most, digits(row[i])); } });
    SHIFT = Math.max(0, most - 300);
    objs.forEach(function (c) {
      COUNT_KEYS.forEach(function (key) {
        if (c[key] !== undefined) { c["exact_" + key] = String(c[key]); c[key] = scaled(c[key]); }
      });
    });
  })();
  var METRICS = [["flops", "FLOPs"], ["macs", "MACs"], ["bytes", "bytes"], ["params", "params"]];
  if (ACT) { METRICS.push(["saved", "saved act."]); R.totals.saved = ACT.saved_bytes || 0; }
  function phaseless(metric) { return metric === "params" || metric === "saved"; }  // no per-phase split
  var ROW = 28;          // icicle row height, px
  var MIN_BOX = 3;       // px: a module with any work is drawn at least this wide (findable, hoverable)
  var MAX_ROWS = 3000;   // module table rows drawn at most (the search box narrows a bigger tree)
  var MAX_INDENT = 32;   // deeper rows say [level N] instead of indenting further (as the terminal table)
  var state = { metric: "flops", phase: "all", focus: "", query: "", sort: "name", desc: false, selfOps: false };

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
  function bytesOf(c) { return c ? (c.bytes_read || 0) + (c.bytes_written || 0) : 0; }
  function get(c, key) { if (!c) { return 0; } return key === "bytes" ? bytesOf(c) : (c[key] || 0); }
  function pct(a, b) { return b ? (100 * a / b).toFixed(1) + "%" : "0.0%"; }
  function quotient(f, b) {  // FLOPs per byte; a quotient past 1e21 as 2.7e22 (the counts are scaled alike)
    if (!b) { return "0.0"; }
    var q = f / b;
    if (isFinite(q) && Math.abs(q) < 1e21) { return q.toFixed(1); }
    var e = Math.log10(Math.abs(f)) - Math.log10(Math.abs(b)), ei = Math.floor(e);
    return (q < 0 ? "-" : "") + sci(Math.pow(10, e - ei), ei);
  }
  function rate(c) {  // achieved GFLOP/s over the measured time (seconds are not scaled), one decimal
    var t = get(c, "seconds");
    return t ? (get(c, "flops") * Math.pow(10, SHIFT) / t / 1e9).toFixed(1) : "0.0";
  }
  function intensity(c) { return quotient(c ? c.flops || 0 : 0, bytesOf(c)); }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in (attrs || {})) { e.setAttribute(k, attrs[k]); }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function unitOf(key) { return key === "bytes" || key === "saved" ? "B" : ""; }
  function zero() { var z = {}; FIELDS.forEach(function (f) { z[f] = 0; }); return z; }
  function addInto(a, b) { if (b) { FIELDS.forEach(function (f) { a[f] = (a[f] || 0) + (b[f] || 0); }); } return a; }
  var phasesRun = PHASES.filter(function (p) { return R.phases[p] && R.phases[p].calls > 0; });
  var timed = (R.totals.seconds || 0) > 0;  // count(..., timing=True): op time per module

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
  if (ACT) {
    card(si(ACT.saved_bytes || 0, "B"), "saved for backward");
    card(si(ACT.saved_peak_bytes || 0, "B"), "peak saved at once");
    card(si(ACT.saved_param_bytes || 0, "B"), "params saved (not act.)");
  }
  var metaBits = [];
  // one report per rank (torchrun, or a process group): which rank wrote this page
  if (meta.rank !== undefined && meta.rank !== null) {
    metaBits.push(["rank", String(meta.rank) + (meta.world_size !== undefined && meta.world_size !== null ? " of " + String(meta.world_size) : "")]);
  }
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
  var tops = nodes.filter(function (n) { return !n.parent; });  // the root "" (the schema lists parents first)
  // Each module's own ops (the scopes it owns): {phase: {op: counts}} and their sums per phase and overall.
  var hasSelf = nodes.length > 0 && (R.missing || []).indexOf("self_ops") < 0;
  nodes.forEach(function (n) { n.ops = {}; n.self = zero(); n.selfPc = {}; });
  eachSelfRow(function (m, p, op, row) {
    var n = byName[m.name], c = {};
    SELF_OP_FIELDS.forEach(function (f, k) { c[f] = scaled(row[k]); });
    if (!n.ops[p]) { n.ops[p] = Object.create(null); }
    n.ops[p][op] = addInto(n.ops[p][op] || zero(), c);
    addInto(n.self, c);
    n.selfPc[p] = addInto(n.selfPc[p] || zero(), c);
  });
  // Each module's figures as the Python engine made them (flopdispatch.results): inclusive by its
  // attribution rule; rolled_up: a container never called itself, holding its children's work.
  nodes.forEach(function (nd) {
    nd.rolled = nd.m.rolled_up === true; nd.c = nd.m; nd.pc = nd.m.phases || {};
    nd.saved = ACT && typeof nd.m.saved_bytes === "number" ? nd.m.saved_bytes : null;
    nd.selfSaved = ACT && typeof nd.m.self_saved_bytes === "number" ? nd.m.self_saved_bytes : (nd.saved === null ? null : 0);
  });
  // several roots (fd.count({"G": g, "D": d})): "" is all of them; the header names each, as the terminal's summary
  var ROOTS = Array.isArray(R.roots) ? R.roots.filter(function (r) { return byName[r]; }) : [];
  if (ROOTS.length) {
    metaBits.splice(meta.rank !== undefined && meta.rank !== null ? 1 : 0, 0, [ROOTS.length + (ROOTS.length > 1 ? " models" : " model"), ROOTS.map(function (r) {
      var n = byName[r], t = String(n.m.type || "");
      return r + " (" + (r.split("#")[0] === t ? "" : t + ", ") + si(n.m.params || 0) + " params, " + si(n.c.flops) + " FLOPs)";
    }).join("; ")]);
  }
  var metaEl = document.getElementById("meta");
  metaBits.forEach(function (kv, i) {
    if (i) { metaEl.appendChild(document.createTextNode(" \u00b7 ")); }
    metaEl.appendChild(document.createTextNode(kv[0].replace(/_/g, " ") + " "));
    metaEl.appendChild(el("code", {}, kv[1]));
  });
  var ROOT_WORD = ROOTS.length ? "the models" : "the root module";

  // ----- symbolic counts (flopdispatch model ... --symbolic batch,seq): polynomials in named dims -----
  // R.symbolic = {dims: {name: {traced}}, totals, phases, modules: {name: {flops, macs, bytes, ...: sympy
  // strings}}, guards, specialized, not_symbolic, dropped}. The page shows the strings as text.
  function ownKey(o, k) { return o && typeof o === "object" && Object.prototype.hasOwnProperty.call(o, k) ? o[k] : undefined; }
  var SYM = R.symbolic && typeof R.symbolic === "object" ? R.symbolic : null;
  var SYM_FIELDS = [["flops", "FLOPs"], ["macs", "MACs"], ["bytes", "bytes"]];
  function polySum(exprs) {
    // the sum of expanded polynomials ("744*batch*seq + 1472"), like terms added (BigInt coefficients);
    // anything else (parentheses, functions, fractions) is joined as "(a) + (b)" instead
    var terms = Object.create(null), order = [], simple = true;
    exprs.forEach(function (e) {
      if (!simple) { return; }
      var t = String(e).replace(/\*\*/g, "^");
      if (!/^-?[0-9A-Za-z_*^ +-]+$/.test(t)) { simple = false; return; }
      t.replace(/ - /g, " + -").split(" + ").forEach(function (term) {
        if (!simple) { return; }
        var sign = 1n, coef = 1n, factors = [];
        if (term.charAt(0) === "-") { sign = -1n; term = term.slice(1); }
        term.split("*").forEach(function (f) {
          if (/^[0-9]+$/.test(f)) { coef *= BigInt(f); }
          else if (/^[A-Za-z_][A-Za-z0-9_]*(\^[0-9]+)?$/.test(f)) { factors.push(f); }
          else { simple = false; }
        });
        var key = factors.sort().join("*");
        if (!(key in terms)) { terms[key] = 0n; order.push(key); }
        terms[key] += sign * coef;
      });
    });
    if (!simple) { return exprs.map(function (e) { return "(" + e + ")"; }).join(" + "); }
    var out = "";
    order.forEach(function (key) {
      var c = terms[key];
      if (c === 0n) { return; }
      var neg = c < 0n, a = neg ? -c : c;
      var body = key === "" ? String(a) : (a === 1n ? "" : String(a) + "*") + key.replace(/\^/g, "**");
      out += out ? (neg ? " - " : " + ") + body : (neg ? "-" : "") + body;
    });
    return out || "0";
  }
  function symOf(n, field) {  // the module's polynomial (a container that never ran: its children's sum), or null
    if (!SYM) { return null; }
    if (n.rolled) {
      var parts = n.children.map(function (k) { return symOf(k, field); });
      return parts.every(function (x) { return x !== null; }) && parts.length ? polySum(parts) : null;
    }
    var e = ownKey(ownKey(SYM.modules, n.name), field);
    return typeof e === "string" ? e : null;
  }
  function symField() { return state.metric === "macs" || state.metric === "bytes" ? state.metric : "flops"; }
  if (SYM) {
    var symEl = document.getElementById("symbolic");
    symEl.hidden = false;
    var dims = SYM.dims && typeof SYM.dims === "object" ? Object.keys(SYM.dims) : [];
    function symLine(label, text) {
      var line = el("div");
      line.appendChild(document.createTextNode(label + " "));
      line.appendChild(el("code", {}, text));
      symEl.appendChild(line);
    }
    symLine("symbolic in", dims.map(function (d) {
      var t = ownKey(ownKey(SYM.dims, d), "traced");
      return d + (t !== undefined ? " (traced at " + String(t) + ")" : "");
    }).join(", ") || "(no dims)");
    SYM_FIELDS.forEach(function (f) {
      var e = ownKey(SYM.totals, f[0]);
      if (typeof e === "string") { symLine("total " + f[1] + " =", e); }
    });
    if (Array.isArray(SYM.guards) && SYM.guards.length) { symLine("valid while", SYM.guards.map(String).join(", ")); }
    [["specialized", "specialized (a fixed size)"], ["not_symbolic", "not symbolic"], ["dropped", "left out"]].forEach(function (k) {
      var m = SYM[k[0]];
      if (m && typeof m === "object" && !Array.isArray(m) && Object.keys(m).length) {
        symLine(k[1] + ":", Object.keys(m).map(function (a) { return a + ": " + String(m[a]); }).join("; "));
      }
    });
  }

  function shown(n) { return state.phase === "all" ? n.c : n.pc[state.phase]; }
  function ownShown(n) { return state.phase === "all" ? n.self : n.selfPc[state.phase]; }
  function value(n) {
    // a tied tensor counts once, in the first module holding it: siblings add up to their parent
    if (state.metric === "params") { return (n.m.params || 0) - (n.m.shared_params || 0); }
    if (state.metric === "saved") { return n.saved || 0; }
    return get(shown(n), state.metric);
  }
  function ownMetric() { return phaseless(state.metric) ? "flops" : state.metric; }
  function totalValue() {
    if (state.metric === "params") { return R.params; }
    if (state.metric === "saved") { return R.totals.saved; }
    return state.phase === "all" ? get(R.totals, state.metric) : get(R.phases[state.phase], state.metric);
  }
  function labelOf(key) { return METRICS.filter(function (m) { return m[0] === key; })[0][1]; }
  function metricLabel() { return labelOf(state.metric); }
  function leaf(n) { return n.name === "" ? (n.m.type || "(root)") : n.name.slice(n.name.lastIndexOf(".") + 1); }
  function fullName(n) { return n.name === "" ? "(root) " + (n.m.type || "") : n.name; }

  // search: the modules whose name or type holds the query, and their ancestors (to show them)
  var matched = null, onPath = null;
  function runSearch() {
    matched = onPath = null;
    var q = state.query.trim().toLowerCase();
    if (!q) { return; }
    matched = Object.create(null); onPath = Object.create(null);
    nodes.forEach(function (n) {
      if (n.name.toLowerCase().indexOf(q) >= 0 || String(n.m.type || "").toLowerCase().indexOf(q) >= 0) {
        matched[n.name] = true;
        for (var a = n; a && !onPath[a.name]; a = a.parent) { onPath[a.name] = true; }
      }
    });
  }

  // ----- icicle ---------------------------------------------------------------------------------
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
    var stack = [[focus, 0, width, 0]];  // an explicit stack: trees of any depth
    while (stack.length) {
      var top = stack.pop(), n = top[0], x0 = top[1], x1 = top[2], d = top[3];
      n.x0 = x0; n.x1 = x1; n.d = d; n.on = true;
      if (d > maxDepth) { maxDepth = d; }
      var kids = n.children, sum = 0;
      kids.forEach(function (k) { sum += value(k); });
      var whole = Math.max(value(n), sum), x = x0;
      for (var i = 0; i < kids.length; i++) {
        var w = whole ? (x1 - x0) * value(kids[i]) / whole : 0;
        stack.push([kids[i], x, x + w, d + 1]);
        x += w;
      }
    }
    chart.style.height = ((maxDepth + 1) * ROW + 2) + "px";
    var total = totalValue();
    nodes.forEach(function (n) {
      var b = n.box, w = n.x1 - n.x0, v = value(n);
      if (!n.on || (w < 0.5 && !(v > 0))) { b.className = "box hidden"; b.style.width = "0px"; return; }
      // a module with any work stays visible and hoverable: at least MIN_BOX px wide, a sliver that
      // may overlap its right neighbour; every box at least that wide keeps its exact width
      w = Math.max(w, MIN_BOX);
      b.className = "box" + (n === focus ? " focus" : "") + (w < 24 ? " narrow" : "") +
                    (matched ? (matched[n.name] ? " match" : " dim") : "");
      b.style.left = n.x0 + "px";
      b.style.top = (n.d * ROW) + "px";
      b.style.width = w + "px";
      b.style.height = (ROW - 1) + "px";
      var t = n.m.type || "";
      b.style.background = "hsl(" + hue(t) + ", 55%, " + Math.min(88, 66 + 4 * n.depth) + "%)";
      b.setAttribute("data-value", SHIFT ? si(v) : String(v));
      // every box with room for two letters is labelled (the CSS cuts the name with an ellipsis)
      b.textContent = w >= 16 ? (n === focus && n.parent ? n.name : leaf(n)) + (w > 110 ? "  " + si(v, unitOf(state.metric)) + " (" + pct(v, total) + ")" : "") : "";
    });
    var note = document.getElementById("note");
    var root = nodes[0], outside = total - value(root);
    note.textContent = state.metric === "saved" ? (outside > 0 ? pct(outside, total) + " of the saved activations were saved outside " + ROOT_WORD + " (the loss)." : "")
      : (state.metric !== "params" && outside > 0)
      ? (outside / total < 0.001 ? "under 0.1%" : pct(outside, total)) + " of the " + (state.phase === "all" ? "" : state.phase + " ") + metricLabel() +
        " ran outside " + ROOT_WORD + " (loss, optimizer, data preparation)."
      : "";
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
    if (path.length > 1 || focus.children.length) {
      c.appendChild(el("span", { "class": "hint" }, "  (click a box or a row to focus it, the top box to zoom out)"));
    }
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
    if (hasSelf) {
      row("self (own ops)", si(n.self.flops) + " FLOPs, " + si(n.self.macs) + " MACs, " + si(bytesOf(n.self), "B"));
    }
    if (ACT) {
      row("saved for backward", n.saved === null ? "not measured" : si(n.saved, "B") + (n.rolled ? " (its children's)" : "") +
          "; own " + si(n.selfSaved || 0, "B") + " (not a child's)");
    }
    if (SYM) {
      SYM_FIELDS.forEach(function (f) {
        var e = symOf(n, f[0]);
        if (e !== null) { row(f[1] + " (symbolic)", e + (n.rolled ? " (its children's)" : "")); }
      });
    }
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
    tip.appendChild(el("h3", {}, fullName(n)));
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
    d.appendChild(el("h3", {}, "Focused: " + fullName(n)));
    d.appendChild(kvTable(n));
  }

  // ----- module table: a tree, siblings sorted by the clicked column ------------------------------
  var expanded = Object.create(null);  // name -> true when its children are shown
  nodes.forEach(function (n) { if (n.depth < 2 && n.children.length) { expanded[n.name] = true; } });
  function moduleCols() {
    var own = ownMetric(), unit = unitOf(state.metric), cols = [
      { key: "name", label: "module" }, { key: "type", label: "type" }, { key: "params", label: "params" },
      { key: "macs", label: "MACs" }, { key: "flops", label: "FLOPs" }];
    if (hasSelf) { cols.push({ key: "self", label: "self " + labelOf(own), title: "the work run directly in the module, not in a child" }); }
    // --symbolic: the chosen figure (FLOPs, MACs or bytes; else FLOPs) as a polynomial, all phases
    if (SYM && state.phase === "all") {
      var sdims = SYM.dims && typeof SYM.dims === "object" ? Object.keys(SYM.dims).join(", ") : "";
      cols.push({ key: "symbolic", label: labelOf(symField()) + " in " + sdims, title: "the count as a polynomial in the named dims (all phases)" });
    }
    if (state.phase === "all" && state.metric !== "params") {
      var ph = phasesRun.filter(function (p) { return get(R.phases[p], state.metric); });
      if (ph.length > 1) {
        ph.forEach(function (p) { cols.push({ key: "phase:" + p, label: PHASE_SHORT[p] + " " + metricLabel(), unit: unit }); });
      }
    }
    cols.push({ key: "bytes", label: "bytes" }, { key: "intensity", label: "FLOP/B" },
              { key: "share", label: "% " + metricLabel() });
    if (timed) { cols.push({ key: "ms", label: "time ms" }, { key: "rate", label: "GFLOP/s" }); }
    if (ACT) {
      cols.push({ key: "saved", label: "saved act.", title: "bytes autograd saved for backward in the module and below" },
                { key: "selfsaved", label: "self saved", title: "bytes saved for backward by the module's own ops, not a child's" });
    }
    return cols;
  }
  function moduleValue(n, key) {  // the number a column sorts by
    var c = shown(n);
    switch (key) {
      case "name": return n.i;
      case "type": return String(n.m.type || "");
      case "params": return n.m.params || 0;
      case "self": return get(ownShown(n), ownMetric());
      case "intensity": var b = bytesOf(c); return b ? get(c, "flops") / b : 0;
      case "share": return value(n);
      case "ms": return get(c, "seconds");
      case "rate": return get(c, "seconds") ? get(c, "flops") / get(c, "seconds") : 0;
      case "saved": return n.saved || 0;
      case "selfsaved": return n.selfSaved || 0;
      case "symbolic": return get(c, symField());  // sorts as its value at the traced sizes
      default:
        if (key.indexOf("phase:") === 0) { return get(n.pc[key.slice(6)], state.metric); }
        return get(c, key);
    }
  }
  function moduleCell(n, col) {
    var c = shown(n);
    switch (col.key) {
      case "type": return (n.m.type || "") + (n.rolled ? "*" : "");
      case "params": return si(n.m.params || 0);
      case "self": return si(get(ownShown(n), ownMetric()), unitOf(ownMetric()));
      case "bytes": return si(bytesOf(c), "B");
      case "intensity": return intensity(c);
      case "share": return pct(value(n), totalValue());
      case "ms": return (get(c, "seconds") * 1e3).toFixed(1);
      case "rate": return rate(c);
      case "symbolic": var sx = symOf(n, symField()); return sx === null ? "" : sx;
      case "saved": return n.saved === null ? "" : si(n.saved, "B");
      case "selfsaved": return n.selfSaved === null ? "" : si(n.selfSaved, "B");
      default: return si(moduleValue(n, col.key), col.unit || "");
    }
  }
  function sortedKids(n) {
    var kids = n.children, key = state.sort, sign = state.desc ? -1 : 1;
    if (key === "name") { return state.desc ? kids.slice().reverse() : kids; }
    return kids.slice().sort(function (a, b) {
      var x = moduleValue(a, key), y = moduleValue(b, key);
      return sign * (x < y ? -1 : x > y ? 1 : 0) || a.i - b.i;  // model order among equals
    });
  }
  function visibleRows() {  // depth-first, an explicit stack
    var out = [], stack = tops.slice().reverse();
    while (stack.length && out.length < MAX_ROWS) {
      var n = stack.pop();
      if (onPath && !onPath[n.name]) { continue; }
      out.push(n);
      if (onPath ? true : expanded[n.name]) {
        var kids = sortedKids(n);
        for (var i = kids.length - 1; i >= 0; i--) { stack.push(kids[i]); }
      }
    }
    // cut: rows left out by the MAX_ROWS cap (not the ones the search leaves out)
    return { rows: out, cut: stack.some(function (n) { return !onPath || onPath[n.name]; }) };
  }
  var scrolledTo = null, keyRow = null;
  function drawModules(focus) {
    var table = document.getElementById("modules"), thead = table.tHead, tbody = table.tBodies[0];
    thead.textContent = ""; tbody.textContent = "";
    var tfoot = table.tFoot;
    if (tfoot) { tfoot.textContent = ""; }
    var cols = moduleCols(), tr = el("tr");
    cols.forEach(function (col) {
      var th = el("th", { "data-key": col.key }, col.label);
      if (col.title) { th.setAttribute("title", col.title); }
      if (state.sort === col.key) { th.className = state.desc ? "sorted" : "sorted up"; }
      th.addEventListener("click", function () {
        // module: model order (again: reversed); type: A to Z; figures: largest first (again: smallest)
        if (state.sort === col.key) { state.desc = !state.desc; } else { state.sort = col.key; state.desc = col.key !== "name" && col.key !== "type"; }
        update();
      });
      tr.appendChild(th);
    });
    thead.appendChild(tr);
    if (!nodes.length) {
      var none = el("tr"), td = el("td", { colspan: String(cols.length) }, "No nn.Module ran in this report.");
      none.appendChild(td); tbody.appendChild(none);
      return;
    }
    var base = tops.length ? tops[0].depth : 0, vis = visibleRows(), focusRow = null, keyEl = null;
    vis.rows.forEach(function (n) {
      var row = el("tr", { "data-module": n.name });
      row.className = (n === focus ? "focus" : "") + (matched && matched[n.name] ? " match" : "") + (n.c.calls || n.rolled ? "" : " idle");
      if (n === focus) { focusRow = row; }
      cols.forEach(function (col) {
        var cell;
        if (col.key === "name") {
          cell = el("td", { "class": "name", title: fullName(n) });
          var level = n.depth - base;
          cell.style.paddingLeft = (6 + 14 * Math.min(level, MAX_INDENT)) + "px";
          var tw = el("span", { "class": "tw" }, n.children.length ? (expanded[n.name] || onPath ? "\u25be" : "\u25b8") : "");
          if (n.children.length && !onPath) {
            tw.addEventListener("click", function (ev) { ev.stopPropagation(); expanded[n.name] = !expanded[n.name]; drawModules(byName[state.focus] || nodes[0]); });
          }
          cell.appendChild(tw);
          cell.appendChild(document.createTextNode((level > MAX_INDENT ? "[level " + level + "] " : "") + (n.name === "" ? "(root)" : leaf(n))));
        } else {
          cell = el("td", {}, moduleCell(n, col));
          if (col.key === "symbolic") { cell.className = "formula"; cell.setAttribute("title", cell.textContent); }
        }
        row.appendChild(cell);
      });
      row.setAttribute("tabindex", "0");  // keyboard: Tab to a row, Enter focuses it, arrows open and close
      row.addEventListener("click", function () { setFocus(n.name); });
      row.addEventListener("keydown", function (ev) {
        var open = ev.key === "ArrowRight" ? true : ev.key === "ArrowLeft" ? false : null;
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); keyRow = n.name; setFocus(n.name); }
        else if (open !== null && n.children.length && !onPath) {
          ev.preventDefault(); keyRow = n.name; expanded[n.name] = open; drawModules(byName[state.focus] || nodes[0]);
        }
      });
      if (keyRow === n.name) { keyEl = row; }
      tbody.appendChild(row);
    });
    if (keyEl && keyEl.focus) { keyEl.focus(); }  // the redrawn row keeps the keyboard
    keyRow = null;
    if (vis.cut) {
      var more = el("tr", { "class": "more" }), mtd = el("td", { colspan: String(cols.length) },
        "The first " + MAX_ROWS + " rows are shown: use the search box, or collapse, to see the others.");
      more.appendChild(mtd); tbody.appendChild(more);
    }
    // the work outside every module (loss, optimizer), then the total: the rows add up
    var root = nodes[0], out = zero(), rc = shown(root);
    addInto(out, state.phase === "all" ? R.totals : R.phases[state.phase]);
    FIELDS.forEach(function (f) { out[f] -= (rc && rc[f]) || 0; });
    out.saved = ACT ? R.totals.saved - (root.saved || 0) : 0;  // the loss's saved tensors (no phase split)
    function footRow(label, c, cls, params, own, share) {
      var r = el("tr", { "class": cls });
      cols.forEach(function (col) {
        var text = "";
        switch (col.key) {
          case "name": text = label; break;
          case "type": text = ""; break;
          case "params": text = params; break;
          case "self": text = si(own, unitOf(ownMetric())); break;
          case "bytes": text = si(bytesOf(c), "B"); break;
          case "intensity": text = intensity(c); break;
          case "share": text = share; break;
          case "ms": text = (get(c, "seconds") * 1e3).toFixed(1); break;
          case "rate": text = label === "total" ? rate(c) : ""; break;
          case "saved": case "selfsaved": text = si(c.saved || 0, "B"); break;
          case "symbolic": text = label === "total" && SYM ? (ownKey(SYM.totals, symField()) || "") : ""; break;
          default:
            text = col.key.indexOf("phase:") === 0 ? si(label === "total" ? get(R.phases[col.key.slice(6)], state.metric) :
              get(R.phases[col.key.slice(6)], state.metric) - get(root.pc[col.key.slice(6)], state.metric), col.unit || "") : si(get(c, col.key));
        }
        r.appendChild(el("td", {}, text));
      });
      return r;
    }
    var whole = totalValue();
    if (state.metric !== "params" && (out.flops > 0 || bytesOf(out) > 0 || out.saved > 0)) {
      tbody.appendChild(footRow("(outside root)", out, "outside", "", get(out, ownMetric()), pct(get(out, state.metric), whole)));
    }
    var tot = state.phase === "all" ? R.totals : Object.assign({ saved: R.totals.saved }, R.phases[state.phase] || zero());
    if (!tfoot) { tfoot = table.createTFoot ? table.createTFoot() : null; }
    if (tfoot) { tfoot.appendChild(footRow("total", tot, "total", si(R.params), get(tot, ownMetric()), whole ? "100.0%" : "0.0%")); }
    var sc = document.getElementById("modules-scroll");
    if (focusRow && scrolledTo !== focus.name && sc.clientHeight) {  // bring the focused row into the box
      scrolledTo = focus.name;
      var head = thead.offsetHeight || 0, top = focusRow.offsetTop;
      if (top - head < sc.scrollTop || top + focusRow.offsetHeight > sc.scrollTop + sc.clientHeight) {
        sc.scrollTop = Math.max(0, top - head - 2 * focusRow.offsetHeight);
      }
    }
    var tools = document.getElementById("module-tools");
    tools.textContent = "";
    function tool(label, fn) { var b = el("button", { type: "button" }, label); b.addEventListener("click", fn); tools.appendChild(b); }
    tool("expand all", function () { nodes.forEach(function (n) { if (n.children.length) { expanded[n.name] = true; } }); drawModules(byName[state.focus] || nodes[0]); });
    tool("collapse", function () {
      expanded = Object.create(null);
      for (var a = focus; a; a = a.parent) { if (a.children.length) { expanded[a.name] = true; } }
      nodes.forEach(function (n) { if (n.depth < 1 && n.children.length) { expanded[n.name] = true; } });
      drawModules(byName[state.focus] || nodes[0]);
    });
    tools.appendChild(el("span", { "class": "hint" }, nodes.length + " modules" + (matched ? ", " + Object.keys(matched).length + " matching" : "") +
      (hasSelf ? "; self: the module's own ops, not a child's; " : "; ") + "* not called itself: the sum of its children; click a heading to sort siblings"));
  }

  // ----- op table: the ops of the focused module's subtree -----------------------------------------
  var unsupported = Object.create(null);
  (R.unsupported || []).forEach(function (u) { unsupported[u.op] = u; });
  function opRows(focus) {
    // all the report's ops at the root (the work outside the root included); else the focused
    // module's own ops plus, unless "own ops only", those of the modules below it
    var phase = state.phase, all = !focus || (!focus.parent && tops.length === 1 && !state.selfOps) || !hasSelf;
    if (all) {
      return R.ops.map(function (o) {
        var c = phase === "all" ? o : (o.phases || {})[phase];
        return c && (phase === "all" || c.calls) ? { name: o.name, c: c, phases: o.phases || {}, exactCalls: phase === "all" } : null;
      }).filter(Boolean);
    }
    // the rows of the scopes the focused module holds (or owns): what ops(module=...) returns
    var merged = Object.create(null), names = [];
    eachScopeRow(function (s, p, op, row) {
      var mine = state.selfOps ? s.module === focus.i : Array.isArray(s.path) && s.path.indexOf(focus.i) >= 0;
      if (!mine || (phase !== "all" && p !== phase)) { return; }
      var c = {};
      SELF_OP_FIELDS.forEach(function (f, k) { c[f] = scaled(row[k]); });
      var r = merged[op];
      if (!r) { r = merged[op] = { name: op, c: zero(), phases: {} }; names.push(op); }
      addInto(r.c, c);
      r.phases[p] = addInto(r.phases[p] || zero(), c);
    });
    return names.map(function (op) { return merged[op]; });
  }
  var opSort = null;  // a clicked column; null: the chosen figure, largest first
  // the op table's figure: the chosen one (FLOPs, MACs or bytes); ops have no params or saved bytes: FLOPs
  function opFigure() { return state.metric === "macs" || state.metric === "bytes" ? state.metric : "flops"; }
  function opSortKey() { return opSort || (opFigure() === "bytes" ? "share" : opFigure()); }
  function opCols() {
    var fig = labelOf(opFigure());
    var cols = [["name", "op"], ["calls", "calls"], ["flops", "FLOPs"], ["macs", "MACs"], ["bytes_read", "bytes read"],
                ["bytes_written", "bytes written"], ["intensity", "FLOP/B"], ["share", "% " + fig]];
    if (phasesRun.length > 1 && state.phase === "all") { phasesRun.forEach(function (p) { cols.push(["phase:" + p, p + " " + fig]); }); }
    return cols;
  }
  function opValue(o, key) {
    if (key === "name") { return o.name; }
    if (key === "intensity") { var b = bytesOf(o.c); return b ? o.c.flops / b : 0; }
    if (key === "share") { return get(o.c, opFigure()); }
    if (key.indexOf("phase:") === 0) { return get(o.phases[key.slice(6)], opFigure()); }
    return o.c[key] || 0;
  }
  function opCell(o, key, sum) {
    if (key === "name") { return o.name + (unsupported[o.name] ? " (unsupported)" : ""); }
    if (key === "calls") { return o.exactCalls ? exact(o.c, "calls") : exact({ calls: o.c.calls }, "calls"); }
    if (key === "intensity") { return intensity(o.c); }
    if (key === "share") { return pct(get(o.c, opFigure()), sum); }
    if (key.indexOf("bytes") === 0) { return si(o.c[key], "B"); }
    return si(opValue(o, key), key.indexOf("phase:") === 0 ? unitOf(opFigure()) : "");
  }
  function drawOps(focus) {
    var table = document.getElementById("ops");
    var thead = table.tHead, tbody = table.tBodies[0], cols = opCols();
    thead.textContent = ""; tbody.textContent = "";
    var whole = !focus || (!focus.parent && tops.length === 1 && !state.selfOps) || !hasSelf;
    var title = document.getElementById("ops-title");
    title.textContent = whole ? "Ops" : state.selfOps ? "Ops run directly in " + fullName(focus) : "Ops in " + fullName(focus) + " and below";
    if (state.phase !== "all") { title.textContent += " (" + state.phase + ")"; }
    title.setAttribute("data-focus", whole ? "" : focus.name);
    var tools = document.getElementById("op-tools");
    tools.textContent = "";
    if (nodes.length && hasSelf) {
      var lab = el("label"), box = el("input", { type: "checkbox", id: "self-ops" });
      box.checked = state.selfOps;
      box.addEventListener("change", function () { state.selfOps = !!box.checked; update(); });
      lab.appendChild(box);
      lab.appendChild(document.createTextNode(" only the focused module's own ops (not its children's)"));
      tools.appendChild(lab);
    } else if (nodes.length) {
      tools.appendChild(el("span", { "class": "hint" }, "This report has no per-module ops (written by an older flopdispatch): every op is shown."));
    }
    var tr = el("tr");
    cols.forEach(function (c) {
      var th = el("th", { "data-key": c[0] }, c[1]);
      if (c[0] === opSortKey()) { th.className = "sorted"; }
      th.addEventListener("click", function () { opSort = c[0]; drawOps(byName[state.focus] || nodes[0]); });
      tr.appendChild(th);
    });
    thead.appendChild(tr);
    var rows = opRows(focus), sum = 0, maxFig = 0, fig = opFigure(), sortKey = opSortKey();
    rows.forEach(function (o) { var v = get(o.c, fig); sum += v; if (v > maxFig) { maxFig = v; } });  // no apply(): 10^5 ops overflow the argument stack
    if (whole && state.phase === "all") { sum = get(R.totals, fig); }
    rows.sort(function (a, b) {
      var x = opValue(a, sortKey), y = opValue(b, sortKey);
      if (sortKey === "name") { return x < y ? -1 : x > y ? 1 : 0; }
      return y - x || bytesOf(b.c) - bytesOf(a.c) || (a.name < b.name ? -1 : 1);  // ties as Report.ops()
    });
    rows.forEach(function (o) {
      var r = el("tr", { "data-op": o.name });
      if (unsupported[o.name]) { r.className = "unsupported"; }
      cols.forEach(function (c) {
        var td = el("td");
        if (c[0] === "share") {
          var bar = el("span", { "class": "bar" });
          bar.style.width = (maxFig ? Math.round(60 * get(o.c, fig) / maxFig) : 0) + "px";
          td.appendChild(bar);
        }
        td.appendChild(document.createTextNode(opCell(o, c[0], sum)));
        r.appendChild(td);
      });
      tbody.appendChild(r);
    });
    if (!rows.length) {
      var none = el("tr"), td = el("td", { colspan: String(cols.length) }, "No op ran here" + (state.phase !== "all" ? " in this phase." : "."));
      none.appendChild(td); tbody.appendChild(none);
    }
  }
  // ----- communication: torch.distributed collectives of the focused module's subtree ---------------
  // collective_phases: {phase: {op: COMM}}; module_collectives: {module: {phase: {op: COMM}}}, inclusive
  // (a container that never ran has none: its children's are summed); COMM = {calls, bytes, bus_bytes,
  // world_size, seconds}.
  var COLL = R.collective_phases && typeof R.collective_phases === "object" ? R.collective_phases : {};
  var MODULE_COLL = R.module_collectives && typeof R.module_collectives === "object" ? R.module_collectives : {};
  var hasComm = PHASES.some(function (p) { return COLL[p] && Object.keys(COLL[p]).length; });
  // calls are summed exactly (BigInt): a count past 2**53 keeps its digits
  function exactInt(x) { try { return BigInt(typeof x === "number" || typeof x === "string" ? x : 0); } catch (e) { return 0n; } }
  function commAdd(into, op, rec, phase) {
    if (!rec || typeof rec !== "object") { return; }
    var r = into[op];
    if (!r) { r = into[op] = { name: op, calls: 0n, bytes: 0, bus_bytes: 0, world_size: 0, seconds: 0, phases: [] }; }
    r.calls += exactInt(rec.calls); r.bytes += scaled(rec.bytes); r.bus_bytes += scaled(rec.bus_bytes);
    r.world_size = Math.max(r.world_size, Number(rec.world_size) || 0);
    r.seconds += typeof rec.seconds === "number" ? rec.seconds : 0;
    if (r.phases.indexOf(phase) < 0) { r.phases.push(phase); }
  }
  function commSplits(n) {  // the {phase: {op: COMM}} objects that make up a module's (or the report's) figures
    if (!n) { return [COLL]; }
    if (n.rolled) { return n.children.reduce(function (a, k) { return a.concat(commSplits(k)); }, []); }
    var own = MODULE_COLL[n.name];  // a name is data: "__proto__" must not reach Object.prototype
    return own && Object.prototype.hasOwnProperty.call(MODULE_COLL, n.name) ? [own] : [];
  }
  function commRows(focus, whole) {
    var merged = Object.create(null);
    commSplits(whole ? null : focus).forEach(function (split) {
      PHASES.forEach(function (p) {
        var t = split[p];
        if (!t || typeof t !== "object" || (state.phase !== "all" && p !== state.phase)) { return; }
        Object.keys(t).forEach(function (op) { commAdd(merged, op, t[op], p); });
      });
    });
    return Object.keys(merged).map(function (op) { return merged[op]; }).sort(function (a, b) {
      return b.bus_bytes - a.bus_bytes || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);  // as Report.collectives()
    });
  }
  if (hasComm) {
    var payload = 0;
    commRows(null, true).forEach(function (r) { payload += r.bytes; });
    card(si(payload, "B"), "collective payload");
  }
  function drawComm(focus) {
    var box = document.getElementById("comm");
    if (!hasComm) { box.hidden = true; return; }
    box.hidden = false;
    var table = document.getElementById("comm-table"), thead = table.tHead, tbody = table.tBodies[0], tfoot = table.tFoot;
    thead.textContent = ""; tbody.textContent = ""; if (tfoot) { tfoot.textContent = ""; }
    var whole = !focus || !focus.parent;  // the root: every collective (those outside the modules too)
    var title = document.getElementById("comm-title");
    title.textContent = "Communication" + (whole ? "" : " in " + fullName(focus) + " and below") +
                        (state.phase !== "all" ? " (" + state.phase + ")" : "");
    title.setAttribute("data-focus", whole ? "" : focus.name);
    var tools = document.getElementById("comm-tools");
    tools.textContent = "";
    tools.appendChild(el("span", { "class": "hint" }, "torch.distributed collectives, per rank: payload as NCCL-tests sizes it; " +
                         "bus bytes = payload \u00d7 the algorithm's factor; ranks: the process group's size"));
    var cols = ["collective", "calls", "payload", "bus bytes", "ranks", "phases", "time ms"], tr = el("tr");
    cols.forEach(function (c) { tr.appendChild(el("th", {}, c)); });
    thead.appendChild(tr);
    var rows = commRows(focus, whole), sum = { calls: 0n, bytes: 0, bus_bytes: 0, seconds: 0 };
    rows.forEach(function (r) {
      var row = el("tr", { "data-op": r.name });
      [r.name, String(r.calls), si(r.bytes, "B"), si(r.bus_bytes, "B"), String(r.world_size),
       r.phases.join(", "), r.seconds ? (r.seconds * 1e3).toFixed(2) : "-"].forEach(function (t) { row.appendChild(el("td", {}, t)); });
      tbody.appendChild(row);
      ["calls", "bytes", "bus_bytes", "seconds"].forEach(function (k) { sum[k] += r[k]; });
    });
    if (!rows.length) {
      var none = el("tr"), td = el("td", { colspan: String(cols.length) }, "No collective ran here" + (state.phase !== "all" ? " in this phase." : "."));
      none.appendChild(td); tbody.appendChild(none);
    } else if (tfoot) {
      var ft = el("tr");
      ["total", String(sum.calls), si(sum.bytes, "B"), si(sum.bus_bytes, "B"), "", "", sum.seconds ? (sum.seconds * 1e3).toFixed(2) : "-"]
        .forEach(function (t) { ft.appendChild(el("td", {}, t)); });
      tfoot.appendChild(ft);
    }
  }

  var un = document.getElementById("unsupported");
  if ((R.unsupported || []).length) {
    un.appendChild(el("h2", { "class": "warn" }, "Unsupported ops (FLOPs not counted, bytes counted)"));
    var ul = el("ul");
    R.unsupported.forEach(function (u) { ul.appendChild(el("li", {}, u.op + " \u00d7" + String(u.calls) + (u.reason ? ": " + u.reason : ""))); });
    un.appendChild(ul);
  }

  // ----- controls and state -----------------------------------------------------------------------
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
  function openPath(name) {  // expand the focused module and its ancestors in the table
    for (var a = byName[name]; a; a = a.parent) { if (a.children.length) { expanded[a.name] = true; } }
  }
  function setFocus(name) { state.focus = name; openPath(name); update(); }
  var search = document.getElementById("search");
  search.addEventListener("input", function () { state.query = String(search.value || ""); update(); });
  function update() {
    if (phaseless(state.metric)) { state.phase = "all"; }
    buttons("metrics", METRICS, "metric");
    if (phasesRun.length > 1) {
      buttons("phases", [["all", "all phases"]].concat(phasesRun.map(function (p) { return [p, p]; })), "phase",
              function (v) { return phaseless(state.metric) && v !== "all"; });
    } else {
      document.getElementById("phases").style.display = "none";
    }
    runSearch();
    var focus = byName[state.focus] || nodes[0];
    layout();
    if (focus) { crumbs(focus); details(focus); }
    drawModules(focus);
    drawOps(focus);
    drawComm(focus);
    var h = "metric=" + state.metric + (state.phase !== "all" ? "&phase=" + state.phase : "") +
            (state.focus ? "&focus=" + encodeURIComponent(state.focus) : "") +
            (state.query ? "&find=" + encodeURIComponent(state.query) : "");
    if (location.hash.slice(1) !== h) { try { history.replaceState(null, "", "#" + h); } catch (e) { /* file:// in some browsers */ } }
  }
  function readHash() {
    location.hash.slice(1).split("&").forEach(function (kv) {
      var i = kv.indexOf("="); if (i < 0) { return; }
      var k = kv.slice(0, i), v;
      try { v = decodeURIComponent(kv.slice(i + 1)); } catch (e) { return; }  // a malformed %-escape
      if (k === "metric" && METRICS.some(function (m) { return m[0] === v; })) { state.metric = v; }
      if (k === "phase" && phasesRun.indexOf(v) >= 0) { state.phase = v; }
      if (k === "focus" && byName[v]) { state.focus = v; openPath(v); }
      if (k === "find") { state.query = v; search.value = v; }
    });
  }
  readHash();
  window.addEventListener("hashchange", function () { readHash(); update(); });

  update();
  window.addEventListener("resize", layout);
  document.body.setAttribute("data-ready", "1");
})();
