"""The HTML documentation page served at ``GET /``, generated from the registry.

Everything is inline (no CDN: the gateway may run offline).  Each operation
shows its signature, parameters, result fields, error codes, an example, and
a form that calls it through JSON-RPC and shows the answer.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass

from gateway import __version__
from gateway.errors import GRPC_STATUS, NUMERIC
from gateway.registry import Operation, Schema
from gateway.transports.table import TABLE

__all__ = ["Endpoint", "render_page"]


@dataclass(frozen=True)
class Endpoint:
    """A transport as the page presents it: its name, where it listens, and a snippet that calls it."""

    transport: str
    address: str
    snippet: str


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _fields(schema: Schema, depth: int = 0) -> str:
    if schema.kind == "array" and schema.item is not None:
        return _fields(schema.item, depth)
    if schema.kind != "struct" or depth > 6:
        return ""
    rows = []
    for f in schema.fields:
        kind = (
            f.schema.xmlrpc_type
            if f.schema.kind != "array"
            else f"array of {(f.schema.item or f.schema).name or (f.schema.item or f.schema).xmlrpc_type}"
        )
        nested = _fields(f.schema, depth + 1)
        rows.append(
            f"<li><code>{_e(f.name)}</code> <span class=type>{_e(kind)}</span>"
            f"{' — ' + _e(f.schema.doc) if f.schema.doc else ''}{nested}</li>"
        )
    return f"<ul class=fields>{''.join(rows)}</ul>"


def _input(op: Operation, index: int) -> str:
    p = op.params[index]
    value = op.example.get(p.name, "" if p.required else p.default)
    kind = p.schema.kind
    field_id = f"{op.name}-{p.name}"
    label = f"<label for='{_e(field_id)}'>{_e(p.name)} <span class=type>{_e(p.schema.xmlrpc_type)}</span></label>"
    attrs = f"id='{_e(field_id)}' name='{_e(p.name)}' data-kind='{_e(kind)}'"
    if kind == "boolean":
        return f"{label}<input type=checkbox {attrs}{' checked' if value else ''}>"
    if kind in ("array", "map", "struct", "any"):
        return f"{label}<textarea {attrs} rows=2>{_e(json.dumps(value))}</textarea>"
    input_type = "number" if kind in ("int", "double") else "text"
    return f"{label}<input type={input_type} {attrs} value='{_e(value)}'>"


def _operation(op: Operation, name: str, try_it: bool) -> str:
    anchor = name.replace(".", "-")
    signature = ", ".join(
        f"{p.name}: {p.schema.xmlrpc_type}" + ("" if p.required else f" = {json.dumps(p.default)}") for p in op.params
    )
    params = "".join(
        f"<tr><td><code>{_e(p.name)}</code></td><td>{_e(p.schema.xmlrpc_type)}</td>"
        f"<td>{'required' if p.required else _e(json.dumps(p.default))}</td><td>{_e(p.schema.doc)}</td></tr>"
        for p in op.params
    )
    returns = op.result.name or op.result.xmlrpc_type
    errors = ", ".join(f"<code>{_e(c)}</code> ({NUMERIC[c]})" for c in op.errors) or "none"
    example = json.dumps({"jsonrpc": "2.0", "method": name, "params": dict(op.example), "id": 1}, indent=2)
    form = ""
    if try_it:
        inputs = "".join(f"<div class=field>{_input(op, i)}</div>" for i in range(len(op.params)))
        form = (
            f"<form class=try data-method='{_e(name)}' id='try-{_e(anchor)}'>{inputs}"
            f"<button type=submit>Call {_e(name)}</button></form>"
            f"<div class=result id='result-{_e(anchor)}' aria-live=polite></div>"
        )
    return f"""
<section id="{_e(anchor)}">
  <h3><code>{_e(name)}({_e(signature)})</code> → <span class=type>{_e(returns)}</span></h3>
  <p class=doc>{_e(op.doc)}</p>
  {f"<table><tr><th>parameter</th><th>type</th><th>default</th><th></th></tr>{params}</table>" if op.params else ""}
  <details><summary>Result fields</summary>{_fields(op.result) or "<p>" + _e(op.result.xmlrpc_type) + "</p>"}</details>
  <p>Errors: {errors}</p>
  <details><summary>Example (JSON-RPC)</summary><pre>{_e(example)}</pre></details>
  {form}
</section>"""


STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem 1.5rem;color:#1d232a}
h1{margin-bottom:0}code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px}
pre{background:#f4f6f8;padding:.6rem .8rem;overflow:auto;border-radius:6px}
section{border-top:1px solid #dde2e7;padding:.4rem 0 1rem}h3{margin:.8rem 0 .2rem}
.type{color:#6a737d;font-weight:normal}.doc{white-space:pre-wrap;margin:.3rem 0}
table{border-collapse:collapse;margin:.4rem 0}
td,th{border-bottom:1px solid #eef1f4;padding:.15rem .6rem;text-align:left;vertical-align:top}
.fields{margin:.2rem 0}.try{display:flex;flex-wrap:wrap;gap:.4rem 1rem;align-items:end;margin:.5rem 0}
.field{display:flex;flex-direction:column}input[type=text],textarea{min-width:16rem}
button{padding:.3rem .9rem}.result:empty{display:none}.error{color:#b31d28}nav a{margin-right:.6rem}
.result{background:#f4f6f8;padding:.5rem .8rem;border-radius:6px;overflow:auto}
.result table{margin:0}.result th{color:#444;font-weight:600}.result pre{max-height:16rem;margin:0}
.result details{margin-top:.5rem}
"""

SCRIPT = """
function value(el) {
  const kind = el.dataset.kind;
  if (kind === 'boolean') return el.checked;
  if (el.value === '') return undefined;
  if (kind === 'int') return parseInt(el.value, 10);
  if (kind === 'double') return parseFloat(el.value);
  if (kind === 'string') return el.value;
  return JSON.parse(el.value);
}
// A result for people: structs as tables of fields, lists of structs as tables of rows, lists of values
// joined; the raw JSON one click away. Built with textContent only: results carry what remote servers said.
function cell(text) { const td = document.createElement('td'); td.textContent = text; return td; }
function view(v) {
  if (Array.isArray(v)) {
    if (v.length && v.every(x => x !== null && typeof x === 'object' && !Array.isArray(x))) {
      const columns = [...new Set(v.flatMap(Object.keys))];
      const table = document.createElement('table');
      const head = table.insertRow();
      for (const c of columns) { const th = document.createElement('th'); th.textContent = c; head.appendChild(th); }
      for (const row of v) {
        const tr = table.insertRow();
        for (const c of columns) tr.insertCell().appendChild(view(row[c]));
      }
      return table;
    }
    const items = v.map(x => typeof x === 'object' ? JSON.stringify(x) : String(x));
    return document.createTextNode(items.length ? items.join(', ') : '—');
  }
  if (v !== null && typeof v === 'object') {
    const table = document.createElement('table');
    for (const [key, item] of Object.entries(v)) {
      const tr = table.insertRow();
      const th = document.createElement('th'); th.textContent = key; tr.appendChild(th);
      tr.insertCell().appendChild(view(item));
    }
    return table;
  }
  if (typeof v === 'string' && (v.length > 120 || v.includes('\\n'))) {
    const pre = document.createElement('pre'); pre.textContent = v; return pre;
  }
  return document.createTextNode(v === '' ? '—' : String(v));
}
function show(out, result) {
  out.className = 'result';
  out.replaceChildren(view(result));
  const raw = document.createElement('details');
  const summary = document.createElement('summary'); summary.textContent = 'raw JSON';
  const pre = document.createElement('pre'); pre.textContent = JSON.stringify(result, null, 2);
  raw.append(summary, pre);
  out.appendChild(raw);
}
for (const form of document.querySelectorAll('form.try')) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const out = document.getElementById('result-' + form.id.slice(4));
    const params = {};
    try {
      for (const el of form.querySelectorAll('[data-kind]')) {
        const v = value(el);
        if (v !== undefined) params[el.name] = v;
      }
    } catch (err) { out.className = 'result error'; out.textContent = 'bad input: ' + err; return; }
    out.className = 'result'; out.textContent = 'calling…';
    try {
      const response = await fetch(JSONRPC_URL, {method: 'POST', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({jsonrpc: '2.0', method: form.dataset.method, params, id: Date.now()})});
      const answer = await response.json();
      if (answer.error) { out.className = 'result error'; out.textContent = answer.error.message; }
      else { show(out, answer.result); }
    } catch (err) { out.className = 'result error'; out.textContent = 'request failed: ' + err; }
  });
}
"""


def render_page(operations: Sequence[tuple[str, Operation]], endpoints: Sequence[Endpoint], jsonrpc_url: str) -> str:
    """The whole page; ``jsonrpc_url`` is where the forms post ("" when JSON-RPC is not running: no forms)."""
    nav = " ".join(f"<a href='#{_e(n.replace('.', '-'))}'>{_e(n)}</a>" for n, _ in operations)
    transports = "".join(
        f"<h3>{_e(e.transport)}</h3><p><code>{_e(e.address)}</code></p><pre>{_e(e.snippet)}</pre>" for e in endpoints
    )
    sections = "".join(_operation(op, name, bool(jsonrpc_url)) for name, op in operations)
    codes = "".join(
        f"<tr><td><code>{_e(c)}</code></td><td>{n}</td><td><code>{GRPC_STATUS[c]}</code></td></tr>"
        for c, n in NUMERIC.items()
    )
    labels = [row.label for row in TABLE]
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><meta name=viewport content="width=device-width,initial-scale=1">
<title>NetOps Gateway</title><style>{STYLE}</style></head>
<body>
<h1>NetOps Gateway</h1>
<p>Version {_e(__version__)}. Networking operations over {_e(", ".join(labels[:-1]))} and {_e(labels[-1])}: the
same methods, results and error codes on each. Machine-readable: <a href="/openrpc.json">OpenRPC</a>
(<code>rpc.discover</code>), <a href="/idl/netops.thrift">netops.thrift</a>,
<a href="/idl/netops.proto">netops.proto</a>, <a href="/metrics">metrics</a>.</p>
<nav>{nav}</nav>
<h2>Endpoints</h2>{transports}
<h2>Operations</h2>{sections}
<h2>Error codes</h2><table><tr><th>code</th><th>XML-RPC / JSON-RPC number</th><th>gRPC status</th></tr>{codes}</table>
<script>const JSONRPC_URL = {json.dumps(jsonrpc_url)};{SCRIPT}</script>
</body></html>"""
