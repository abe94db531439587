"""The search page the service answers ``/`` with: one self-contained HTML file (no build step, no
external assets), calling ``GET /search?q=…&explain=true`` and showing each hit's title, snippet and
score with the matched tokens highlighted, the tokens' contributions, and the latency.

Document text reaches the page only through ``textContent`` (never ``innerHTML``), so a corpus holding
markup cannot inject any.
"""

from __future__ import annotations

import json

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>idfsplade search</title>
<style>
  :root { --ink: #1d2329; --muted: #5f6b76; --line: #dde3e8; --mark: #ffe58a; --accent: #2456a6; }
  * { box-sizing: border-box; }
  body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
         margin: 0; background: #f7f9fa; }
  header { background: #fff; border-bottom: 1px solid var(--line); padding: 18px 24px 14px; }
  h1 { font-size: 18px; margin: 0 0 10px; font-weight: 600; }
  h1 small { color: var(--muted); font-weight: 400; }
  form { display: flex; gap: 8px; max-width: 860px; }
  #q { flex: 1; font-size: 16px; padding: 8px 12px; border: 1px solid #b9c3cc; border-radius: 6px; }
  #k { width: 70px; padding: 8px; border: 1px solid #b9c3cc; border-radius: 6px; }
  button { padding: 8px 18px; font-size: 15px; border: 0; border-radius: 6px; background: var(--accent);
           color: #fff; cursor: pointer; }
  main { max-width: 860px; padding: 12px 24px 40px; }
  #status { color: var(--muted); font-size: 13px; min-height: 20px; }
  #status.error { color: #a4262c; }
  ol { list-style: none; padding: 0; margin: 0; }
  li.hit { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px;
           margin: 10px 0; }
  .title { font-size: 16px; font-weight: 600; color: var(--accent); margin: 0; }
  .meta { color: var(--muted); font-size: 12px; margin: 2px 0 6px; font-variant-numeric: tabular-nums; }
  .snippet { margin: 0 0 8px; }
  mark { background: var(--mark); padding: 0 1px; border-radius: 2px; }
  .tokens { display: flex; flex-wrap: wrap; gap: 6px; font-size: 12px; }
  .token { border: 1px solid var(--line); border-radius: 12px; padding: 1px 8px; background: #f3f6f8;
           font-variant-numeric: tabular-nums; }
  .token b { font-weight: 600; }
  .token.top { background: var(--mark); border-color: #e8cf6a; }
</style>
</head>
<body>
<header>
  <h1>idfsplade <small>inference-free sparse retrieval &middot; <span id="served"></span></small></h1>
  <form id="search-form" role="search">
    <input id="q" name="q" type="search" autocomplete="off" autofocus maxlength="__MAX_CHARS__"
           placeholder="Search the collection" aria-label="query">
    <input id="k" name="k" type="number" min="1" max="__MAX_K__" value="10" aria-label="results">
    <button id="go" type="submit">Search</button>
  </form>
</header>
<main>
  <div id="status" role="status"></div>
  <ol id="results"></ol>
</main>
<script>
"use strict";
const form = document.getElementById("search-form");
const box = document.getElementById("q");
const kBox = document.getElementById("k");
const statusLine = document.getElementById("status");
const list = document.getElementById("results");

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

// text with [start, end) spans wrapped in <mark>, built from text nodes only
function marked(tag, cls, text, spans) {
  const node = el(tag, cls);
  let at = 0;
  for (const [start, end] of spans || []) {
    if (start > at) node.appendChild(document.createTextNode(text.slice(at, start)));
    node.appendChild(el("mark", null, text.slice(start, end)));
    at = end;
  }
  node.appendChild(document.createTextNode(text.slice(at)));
  return node;
}

function render(result, roundTripMs) {
  list.replaceChildren();
  statusLine.className = "";
  statusLine.textContent = `${result.hits.length} result${result.hits.length === 1 ? "" : "s"} in `
    + `${roundTripMs.toFixed(1)} ms (server ${result.took_ms.toFixed(2)} ms)`;
  result.hits.forEach((hit, i) => {
    const item = el("li", "hit");
    item.appendChild(marked("h2", "title", hit.title || hit.id, hit.title ? hit.title_highlights : []));
    let meta = `#${i + 1} · id ${hit.id} · score ${hit.score.toFixed(4)}`;
    if (hit.lexical_score != null || hit.sparse_score != null) {  // hybrid: each part before fusion
      const part = s => s == null ? "–" : s.toFixed(2);
      meta += ` (bm25 ${part(hit.lexical_score)} ⊕ sparse ${part(hit.sparse_score)})`;
    }
    item.appendChild(el("div", "meta", meta));
    if (hit.snippet) item.appendChild(marked("p", "snippet", hit.snippet, hit.highlights));
    const tokens = el("div", "tokens");
    (hit.explanation || []).forEach((c, j) => {
      const chip = el("span", j === 0 ? "token top" : "token");
      chip.title = `idf ${c.idf.toFixed(3)} × document weight ${c.weight.toFixed(3)}`;
      chip.appendChild(el("b", null, c.token));
      chip.appendChild(document.createTextNode(` ${c.idf.toFixed(2)}×${c.weight.toFixed(2)} = ${c.contribution.toFixed(2)}`));
      tokens.appendChild(chip);
    });
    item.appendChild(tokens);
    list.appendChild(item);
  });
}

async function search(text, k) {
  const params = new URLSearchParams({q: text, k: String(k), explain: "true"});
  statusLine.className = "";
  statusLine.textContent = "searching…";
  const started = performance.now();
  try {
    const response = await fetch(`search?${params}`);
    const body = await response.json();
    if (!response.ok) throw new Error(Array.isArray(body.detail) ? body.detail.map(d => d.msg).join("; ") : body.detail);
    render(body, performance.now() - started);
    history.replaceState(null, "", `?${new URLSearchParams({q: text, k: String(k)})}`);
  } catch (error) {
    list.replaceChildren();
    statusLine.className = "error";
    statusLine.textContent = `error: ${error.message}`;
  }
}

form.addEventListener("submit", event => {
  event.preventDefault();
  if (box.value.trim()) search(box.value, Number(kBox.value) || 10);
});

fetch("health").then(r => r.json()).then(h => {
  document.getElementById("served").textContent =
    `${h.model}${h.hybrid ? " + BM25 (hybrid)" : ""} · ${h.documents} documents`;
}).catch(() => {});

const initial = new URLSearchParams(location.search);
if (initial.get("k")) kBox.value = initial.get("k");
if (initial.get("q")) { box.value = initial.get("q"); search(box.value, Number(kBox.value) || 10); }
</script>
</body>
</html>
"""


def render_page(max_query_chars: int, max_k: int) -> str:
    """The page, with the service's limits on the inputs."""
    return _PAGE.replace("__MAX_CHARS__", json.dumps(max_query_chars)).replace("__MAX_K__", json.dumps(max_k))
