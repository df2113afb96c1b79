// Draws a laid-out definition graph into an <svg>, with pan and zoom. Shared by the editor
// and the execution page. One innerHTML write per render keeps 200+ nodes cheap.

import { NODE_H, NODE_W, graphEdges } from "./layout.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const TYPE_ICONS = {
  task: "⇄", async_task: "⇆", switch: "◇", sleep: "◷", succeed: "✓", fail: "✕", parallel: "∥",
};

export function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function truncate(text, n) {
  text = String(text ?? "");
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

/** One line under the node id: what the node does. */
export function nodeSummary(node) {
  if (!node || typeof node !== "object") return "";
  const req = node.request;
  switch (node.type) {
    case "task":
    case "async_task":
      return req ? `${req.method || "?"} ${String(req.url || "").replace(/^https?:\/\//, "")}` : "no request";
    case "switch":
      return `${(node.cases || []).length} case(s) + default`;
    case "sleep":
      return node.duration_s != null ? `${node.duration_s} s` : `until ${node.until || "?"}`;
    case "parallel":
      return `${(node.branches || []).length} branch(es)`;
    case "fail":
      return "fails the execution";
    case "succeed":
      return "ends successfully";
    default:
      return node.type || "?";
  }
}

/** A smooth path from a's bottom through the virtual points (vertical tangents) to b's top. */
function routedPath(a, b, points) {
  const pts = [{ x: a.x + NODE_W / 2, y: a.y + NODE_H }, ...points, { x: b.x + NODE_W / 2, y: b.y - 6 }];
  let d = `M${pts[0].x},${pts[0].y}`;
  for (let i = 1; i < pts.length; i++) {
    const p = pts[i - 1], q = pts[i], dy = (q.y - p.y) / 2;
    d += ` C${p.x},${p.y + dy} ${q.x},${q.y - dy} ${q.x},${q.y}`;
  }
  const mid = pts[1];
  return { d, mx: mid.x, my: mid.y - NODE_H / 2 };
}

function edgePath(a, b, isBack, points) {
  if (points && points.length && !isBack) return routedPath(a, b, points);
  if (isBack) {
    const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x + NODE_W, y2 = b.y + NODE_H / 2;
    const bulge = Math.max(x1, x2) + 50 + Math.min(120, Math.abs(y1 - y2) / 6);
    return { d: `M${x1},${y1} C${bulge},${y1} ${bulge},${y2} ${x2 + 6},${y2}`, mx: bulge - 12, my: (y1 + y2) / 2 };
  }
  const x1 = a.x + NODE_W / 2, y1 = a.y + NODE_H, x2 = b.x + NODE_W / 2, y2 = b.y - 6;
  const dy = Math.max(30, (y2 - y1) / 2);
  return { d: `M${x1},${y1} C${x1},${y1 + dy} ${x2},${y2 - dy} ${x2},${y2}`, mx: (x1 + x2) / 2, my: (y1 + y2) / 2 };
}

/** Laid-out nodes top to bottom, then left to right: the order Tab visits them in. */
function readingOrder(nodes, layout) {
  const placed = Object.entries(nodes).filter(([id]) => layout.pos[id]);
  return placed.sort(([a], [b]) => layout.pos[a].y - layout.pos[b].y || layout.pos[a].x - layout.pos[b].x);
}

/**
 * Render the graph. opts: {nodes, start, layout, nodeClass(id) -> string, edgeClass(edge) -> string,
 * badges(id) -> string|null, ports: bool, selected: id, focusable: bool}.
 */
export function renderGraph(root, opts) {
  const { nodes, start, layout } = opts;
  const parts = [];
  for (const e of graphEdges(nodes)) {
    const a = layout.pos[e.from], b = layout.pos[e.to];
    if (!a || !b) continue;
    const isBack = layout.back.has(e.from + ">" + e.to) || e.from === e.to;
    const p = edgePath(a, b, isBack, layout.routes && layout.routes[e.from + ">" + e.to]);
    const cls = `edge edge-${e.kind} ${opts.edgeClass ? opts.edgeClass(e) : ""}`;
    parts.push(`<path class="${cls}" d="${p.d}" data-from="${esc(e.from)}" data-to="${esc(e.to)}" marker-end="url(#arrow)"/>`);
    if (e.label) parts.push(`<text class="edge-label" x="${p.mx + 4}" y="${p.my}">${esc(e.label)}</text>`);
  }
  for (const [id, node] of readingOrder(nodes, layout)) {
    const p = layout.pos[id];
    const type = (node && node.type) || "unknown";
    const cls = ["node", `type-${type}`, id === start ? "is-start" : "", id === opts.selected ? "selected" : "", opts.nodeClass ? opts.nodeClass(id) : ""].join(" ");
    const badge = opts.badges ? opts.badges(id) : null;
    // Focusable nodes (the editor): Tab reaches each node, Enter selects it (editor.js).
    const focus = opts.focusable
      ? ` tabindex="0" role="button" aria-pressed="${id === opts.selected}" aria-label="${esc(`${type} node ${id}${id === start ? " (start)" : ""}: ${nodeSummary(node)}${badge ? `, ${badge} problem(s)` : ""}`)}"`
      : "";
    parts.push(
      `<g class="${cls}" data-id="${esc(id)}" transform="translate(${p.x},${p.y})"${focus}>` +
        `<rect class="node-box" width="${NODE_W}" height="${NODE_H}" rx="8"/>` +
        `<text class="node-icon" x="12" y="21">${TYPE_ICONS[type] || "?"}</text>` +
        `<text class="node-id" x="30" y="21">${esc(truncate(id, 18))}</text>` +
        `<text class="node-sub" x="12" y="38">${esc(truncate(nodeSummary(node), 26))}</text>` +
        (id === start ? `<text class="start-flag" x="${NODE_W - 10}" y="15" text-anchor="end">start</text>` : "") +
        (badge ? `<g class="badge"><circle cx="${NODE_W}" cy="0" r="10"/><text x="${NODE_W}" y="4" text-anchor="middle">${esc(badge)}</text></g>` : "") +
        (opts.ports && !["succeed", "fail"].includes(type)
          ? `<circle class="port" cx="${NODE_W / 2}" cy="${NODE_H}" r="6" data-port="${esc(id)}"><title>drag to another node to connect</title></circle>`
          : "") +
        `<title>${esc(id)} (${esc(type)})</title></g>`,
    );
  }
  root.innerHTML = parts.join("");
}

/** Pan (drag the background) and zoom (Ctrl + wheel) for an <svg> whose first <g> is the viewport. */
export class Viewport {
  constructor(svg) {
    this.svg = svg;
    this.g = svg.querySelector("g.viewport");
    this.k = 1;
    this.tx = 20;
    this.ty = 20;
    // Ctrl (or ⌘) + wheel zooms; a plain wheel is the page's, so scrolling past a graph never gets stuck in it.
    svg.addEventListener("wheel", (ev) => {
      if (!ev.ctrlKey && !ev.metaKey) return;
      ev.preventDefault();
      const r = svg.getBoundingClientRect();
      const factor = Math.exp(-ev.deltaY * 0.0015);
      this.zoomAt(ev.clientX - r.left, ev.clientY - r.top, factor);
    }, { passive: false });
    let drag = null;
    svg.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0 || ev.target.closest(".node") || ev.target.closest(".port")) return;
      drag = { x: ev.clientX, y: ev.clientY, tx: this.tx, ty: this.ty, moved: false };
      svg.setPointerCapture(ev.pointerId);
    });
    svg.addEventListener("pointermove", (ev) => {
      if (!drag) return;
      this.tx = drag.tx + ev.clientX - drag.x;
      this.ty = drag.ty + ev.clientY - drag.y;
      drag.moved = drag.moved || Math.abs(ev.clientX - drag.x) + Math.abs(ev.clientY - drag.y) > 3;
      this.apply();
    });
    svg.addEventListener("pointerup", () => {
      this.lastDragMoved = drag && drag.moved;
      drag = null;
    });
  }

  apply() {
    this.g.setAttribute("transform", `translate(${this.tx},${this.ty}) scale(${this.k})`);
  }

  zoomAt(px, py, factor) {
    const k = Math.min(3, Math.max(0.1, this.k * factor));
    this.tx = px - ((px - this.tx) * k) / this.k;
    this.ty = py - ((py - this.ty) * k) / this.k;
    this.k = k;
    this.apply();
  }

  /** Show the whole graph; tall graphs are shown from the top at a readable scale instead. */
  fit(layout, minScale = 0.45) {
    const r = this.svg.getBoundingClientRect();
    const w = layout.width + 140, h = layout.height + 40;
    let k = Math.min(1.2, (r.width - 20) / w, (r.height - 20) / h);
    if (k < minScale) k = Math.min(minScale, (r.width - 20) / w, 1);
    this.k = Math.max(0.1, k);
    this.tx = Math.max(10, (r.width - layout.width * this.k) / 2);
    this.ty = h * this.k < r.height ? (r.height - layout.height * this.k) / 2 : 20;
    this.apply();
  }

  /** Screen point -> graph coordinates. */
  toGraph(clientX, clientY) {
    const r = this.svg.getBoundingClientRect();
    return { x: (clientX - r.left - this.tx) / this.k, y: (clientY - r.top - this.ty) / this.k };
  }
}

export function svgDefs() {
  return `<defs>
    <marker id="arrow" viewBox="0 0 10 10" refX="8" refY="5" markerUnits="userSpaceOnUse" markerWidth="11" markerHeight="11" orient="auto-start-reverse">
      <path d="M0,0 L10,5 L0,10 z" class="arrow-head"/></marker>
  </defs>`;
}

export { SVG_NS };
