// The cluster page a node's HTTP front serves at /ui: static HTML and a
// script that draws /cluster.json (metadata/move_record.h) and fetches it
// again every second. No build step, nothing from outside the node.

#ifndef CAIRN_SERVER_UI_PAGE_H_
#define CAIRN_SERVER_UI_PAGE_H_

namespace cairn {

inline constexpr char kUiPage[] = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>cairn cluster</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
  h1 { font-size: 20px; margin: 0 0 .2em; }
  #error { color: #b00; }
  table { border-collapse: collapse; margin-top: 1em; }
  th, td { padding: .25em .8em; border-bottom: 1px solid #ddd; text-align: left; }
  .swatch { display: inline-block; width: .9em; height: .9em; border-radius: 2px;
            vertical-align: middle; margin-right: .4em; }
  #move { margin: .8em 0; }
  progress { width: 24em; }
  .down { color: #b00; }
</style>
</head>
<body>
<h1>cairn cluster</h1>
<div id="summary">loading /cluster.json ...</div>
<div id="error"></div>
<div id="move"></div>
<svg id="ring" width="320" height="320" viewBox="-160 -160 320 320"></svg>
<table id="nodes"><thead><tr><th>node</th><th>address</th><th>zone</th>
<th>partitions</th><th>lease</th><th>routes by version</th></tr></thead>
<tbody></tbody></table>
<script>
"use strict";
const palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
                 "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
const colors = new Map();
function color(id) {
  if (!colors.has(id)) colors.set(id, palette[colors.size % palette.length]);
  return colors.get(id);
}
function owners(nodes, q) {
  const out = new Array(q).fill(null);
  for (const n of nodes) for (const p of n.partitions) out[p] = n.id;
  return out;
}
// One ring of q arcs between radii r0 and r1, each the colour of its owner.
function arcs(svg, owner, r0, r1, label) {
  const q = owner.length;
  for (let p = 0; p < q; p++) {
    const a0 = (p / q) * 2 * Math.PI - Math.PI / 2, a1 = ((p + 1) / q) * 2 * Math.PI - Math.PI / 2;
    const pt = (r, a) => (r * Math.cos(a)).toFixed(2) + " " + (r * Math.sin(a)).toFixed(2);
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", "M " + pt(r0, a0) + " L " + pt(r1, a0) + " A " + r1 + " " + r1 +
                      " 0 0 1 " + pt(r1, a1) + " L " + pt(r0, a1) + " A " + r0 + " " + r0 +
                      " 0 0 0 " + pt(r0, a0) + " Z");
    path.setAttribute("fill", owner[p] === null ? "#eee" : color(owner[p]));
    path.setAttribute("stroke", "#fff");
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = label + " partition " + p + ": node " + owner[p];
    path.appendChild(title);
    svg.appendChild(path);
  }
}
function draw(c) {
  document.getElementById("error").textContent = "";
  document.getElementById("summary").textContent =
      "metadata version " + c.version + ", " + c.partitions + " partitions on " +
      c.nodes.length + " nodes" + (c.moving_to ? ", moving to " + c.moving_to.length + " nodes" : "");
  const move = document.getElementById("move");
  if (c.rebalance) {
    const r = c.rebalance;
    move.innerHTML = "";
    const text = document.createElement("div");
    text.id = "move-text";
    text.textContent = (r.switched ? "rebalance: new layout serving, dropping old copies"
                                   : "rebalance: copying partitions") +
        " (" + r.copied + " of " + r.total + " partition copies, " + r.keys + " keys, " +
        r.bytes + " bytes; began at version " + r.from_version + ")";
    const bar = document.createElement("progress");
    bar.max = Math.max(r.total, 1);
    bar.value = r.copied;
    move.append(text, bar);
  } else {
    move.textContent = "no rebalance in progress";
  }
  const svg = document.getElementById("ring");
  svg.innerHTML = "";
  arcs(svg, owners(c.nodes, c.partitions), 110, 150, "now:");
  if (c.moving_to) arcs(svg, owners(c.moving_to, c.partitions), 70, 104, "after the move:");
  const body = document.querySelector("#nodes tbody");
  body.innerHTML = "";
  const all = new Map();
  for (const n of c.nodes) all.set(n.id, n);
  for (const n of c.moving_to || []) if (!all.has(n.id)) all.set(n.id, Object.assign({joining: true}, n));
  for (const n of all.values()) {
    const tr = document.createElement("tr");
    tr.className = "node";
    const cells = [
      "<span class=swatch style='background:" + color(n.id) + "'></span>" + n.id +
          (n.joining ? " (joining)" : ""),
      n.address, n.zone || "-", n.joining ? "0 (joining)" : String(n.partitions.length),
      n.lease ? "held" : "<span class=down>none</span>",
      n.routes_by === null || n.routes_by === undefined ? "-" : String(n.routes_by)];
    for (const html of cells) {
      const td = document.createElement("td");
      td.innerHTML = html;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}
async function refresh() {
  try {
    const r = await fetch("/cluster.json", {cache: "no-store"});
    if (!r.ok) throw new Error(r.status + " " + (await r.text()));
    draw(await r.json());
  } catch (e) {
    document.getElementById("error").textContent = "cannot read /cluster.json: " + e.message;
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
)html";

}  // namespace cairn

#endif  // CAIRN_SERVER_UI_PAGE_H_
