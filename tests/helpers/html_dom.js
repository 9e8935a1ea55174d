// Runs the HTML report's script under node with a minimal stand-in for the DOM (no browser needed)
// and prints what it drew as JSON: the cards, the metadata line, the op table, the module boxes,
// the module table, the communication table.
// Usage: node html_dom.js PAGE.html [HASH]   (HASH: the URL fragment, e.g. "#metric=macs")
"use strict";
const fs = require("fs");
const page = fs.readFileSync(process.argv[2], "utf8");
const m = page.match(/<script type="application\/json" id="report-data">([\s\S]*?)<\/script>\s*<script>([\s\S]*?)<\/script>/);
if (!m) { throw new Error("no data and code scripts in the page"); }

class TextNode { constructor(t) { this.textContent = String(t); } }
class El {
  constructor(tag) {
    this.tagName = tag; this.children = []; this.attrs = {}; this.style = {}; this._text = "";
    this.className = ""; this.clientWidth = 1000; this.offsetWidth = 100; this.offsetHeight = 20; this.disabled = false;
  }
  appendChild(c) { this.children.push(c); return c; }
  setAttribute(k, v) { this.attrs[k] = String(v); }
  getAttribute(k) { return this.attrs[k]; }
  addEventListener() {}
  set textContent(t) { this.children = []; this._text = String(t); }
  get textContent() { return this._text + this.children.map((c) => c.textContent).join(""); }
}
const byId = {};
function get(id) {
  if (!byId[id]) {
    const e = new El("div");
    if (id === "ops" || id === "modules" || id === "comm-table") { e.tHead = new El("thead"); e.tBodies = [new El("tbody")]; e.tFoot = new El("tfoot"); }
    byId[id] = e;
  }
  return byId[id];
}
get("report-data")._text = m[1];
globalThis.document = { getElementById: get, createElement: (t) => new El(t), createTextNode: (t) => new TextNode(t), body: new El("body") };
globalThis.window = { addEventListener() {}, innerWidth: 1200, innerHeight: 800 };
globalThis.location = { hash: process.argv[3] || "" };
globalThis.history = { replaceState() {} };
new Function(m[2])();

const cells = (r) => r.children.map((td) => td.textContent);
const rows = get("ops").tBodies[0].children.map(cells);
const boxes = get("chart").children.filter((b) => b.attrs && b.attrs["data-module"] !== undefined)
  .map((b) => ({ name: b.attrs["data-module"], value: b.attrs["data-value"], width: b.style.width, text: b.textContent }));
console.log(JSON.stringify({
  ready: document.body.attrs["data-ready"] || null,
  title: get("title").textContent,
  cards: get("cards").children.map((c) => c.children.map((x) => x.textContent)),
  meta: get("meta").textContent,
  symbolic: get("symbolic").textContent,
  details: get("details").textContent,
  ops: rows,
  opsHead: get("ops").tHead.children.map(cells),
  modules: { head: get("modules").tHead.children.map(cells), rows: get("modules").tBodies[0].children.map(cells),
             foot: get("modules").tFoot.children.map(cells) },
  boxes: boxes,
  unsupported: get("unsupported").textContent,
  comm: { hidden: !!get("comm").hidden, title: get("comm-title").textContent, rows: get("comm-table").tBodies[0].children.map(cells),
          foot: get("comm-table").tFoot.children.map(cells) },
}));
