// Draws a laid-out definition graph into an <svg>, with pan and zoom. Shared by the editor
// and the execution page. One innerHTML write per render keeps 200+ nodes cheap.

import { NODE_H, NODE_W, blockBoxes, graphEdges, layeredLayout, placeNodes, positionsFor, structureKey } from "./layout.js";

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

/** Where edges leave and enter a node box, and which way they point, for each direction. */
const ANCHORS = {
  TB: { out: (a) => ({ x: a.x + NODE_W / 2, y: a.y + NODE_H }), in: (b) => ({ x: b.x + NODE_W / 2, y: b.y - 6 }), dx: 0, dy: 1 },
  LR: { out: (a) => ({ x: a.x + NODE_W, y: a.y + NODE_H / 2 }), in: (b) => ({ x: b.x - 6, y: b.y + NODE_H / 2 }), dx: 1, dy: 0 },
};

/** A smooth path through `pts`, leaving and entering each point along the layout's direction. */
function smoothPath(pts, dir) {
  let d = `M${pts[0].x},${pts[0].y}`;
  for (let i = 1; i < pts.length; i++) {
    const p = pts[i - 1], q = pts[i];
    const t = Math.max(30, dir.dx * (q.x - p.x) / 2 + dir.dy * (q.y - p.y) / 2);
    d += ` C${p.x + dir.dx * t},${p.y + dir.dy * t} ${q.x - dir.dx * t},${q.y - dir.dy * t} ${q.x},${q.y}`;
  }
  return d;
}

/** The path of one edge: {d, mx, my} (where its label goes). `from` overrides the start (a join). */
function edgePath(a, b, { isBack, points, direction, from }) {
  const dir = ANCHORS[direction] || ANCHORS.TB;
  if (isBack && dir.dy) {
    // A loop back up goes around the right side.
    const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x + NODE_W, y2 = b.y + NODE_H / 2;
    const bulge = Math.max(x1, x2) + 50 + Math.min(120, Math.abs(y1 - y2) / 6);
    return { d: `M${x1},${y1} C${bulge},${y1} ${bulge},${y2} ${x2 + 6},${y2}`, mx: bulge - 12, my: (y1 + y2) / 2 };
  }
  if (isBack) {
    // A loop back left goes around below.
    const x1 = a.x + NODE_W / 2, y1 = a.y + NODE_H, x2 = b.x + NODE_W / 2, y2 = b.y + NODE_H;
    const bulge = Math.max(y1, y2) + 40 + Math.min(100, Math.abs(x1 - x2) / 8);
    return { d: `M${x1},${y1} C${x1},${bulge} ${x2},${bulge} ${x2},${y2 + 6}`, mx: (x1 + x2) / 2, my: bulge - 8 };
  }
  const pts = [from || dir.out(a), ...(points || []), dir.in(b)];
  const end = pts[pts.length - 1];
  // The label: on a routed edge at its first bend; top-down halfway; left-right just before the
  // arrow, where edges fanning out of one node have already parted.
  const at = points && points.length ? points[0] : dir.dx ? { x: end.x - 58, y: end.y - 5 } : { x: (pts[0].x + end.x) / 2, y: (pts[0].y + end.y) / 2 };
  return { d: smoothPath(pts, dir), mx: at.x, my: at.y };
}

/** One container per parallel block (``blockBoxes``), drawn under everything else, with its join bar. */
function blockParts(layout, blocks) {
  return blocks.map(({ id, box, join }) => {
    const lr = layout.direction === "LR";
    const bar = lr
      ? `<line class="join-bar" x1="${join.x}" y1="${join.y - 14}" x2="${join.x}" y2="${join.y + 14}"/>`
      : `<line class="join-bar" x1="${join.x - 14}" y1="${join.y}" x2="${join.x + 14}" y2="${join.y}"/>`;
    return (
      `<g class="block" data-block="${esc(id)}"><rect class="block-box" x="${box.x}" y="${box.y}" width="${box.w}" height="${box.h}" rx="12"/>` +
      `<text class="block-label" x="${box.x + 8}" y="${box.y + box.h - 6}">parallel ${esc(truncate(id, 24))} · join</text>` +
      bar + `<title>parallel block of ${esc(id)}: its branches run side by side, then join</title></g>`
    );
  });
}

/** Laid-out nodes in the layout's reading order (rows top-down, or columns left-right): the order Tab visits them in. */
function readingOrder(nodes, layout) {
  const placed = Object.entries(nodes).filter(([id]) => layout.pos[id]);
  const [first, second] = layout.direction === "LR" ? ["x", "y"] : ["y", "x"];
  return placed.sort(([a], [b]) => layout.pos[a][first] - layout.pos[b][first] || layout.pos[a][second] - layout.pos[b][second]);
}

/**
 * Render the graph. opts: {nodes, start, layout, nodeClass(id) -> string, edgeClass(edge) -> string,
 * badges(id) -> string|null, ports: bool, selected: id, focusable: bool}.
 */
export function renderGraph(root, opts) {
  const { nodes, start, layout } = opts;
  const blocks = blockBoxes(layout);
  const parts = blockParts(layout, blocks);
  const joins = new Map(blocks.map((b) => [b.id, b.join]));
  for (const e of graphEdges(nodes)) {
    const a = layout.pos[e.from], b = layout.pos[e.to];
    if (!a || !b) continue;
    const isBack = layout.back.has(e.from + ">" + e.to) || e.from === e.to;
    const from = e.kind === "next" && joins.has(e.from) ? joins.get(e.from) : null;
    const p = edgePath(a, b, { isBack, points: layout.routes && layout.routes[e.from + ">" + e.to], direction: layout.direction, from });
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
          ? `<circle class="port" ${layout.direction === "LR" ? `cx="${NODE_W}" cy="${NODE_H / 2}"` : `cx="${NODE_W / 2}" cy="${NODE_H}"`} r="6" data-port="${esc(id)}"><title>drag to another node to connect</title></circle>`
          : "") +
        `<title>${esc(id)} (${esc(type)})</title></g>`,
    );
  }
  root.innerHTML = parts.join("");
}

// Zoomed out below this scale, node summaries and edge labels are hidden: they would be unreadable specks.
const DETAIL_SCALE = 0.4;
const TEXT_SCALE = 0.15;
const MIN_SCALE = 0.02;

/** Pan (drag the background) and zoom (Ctrl + wheel) for an <svg> whose first <g> is the viewport. */
export class Viewport {
  constructor(svg) {
    this.svg = svg;
    this.g = svg.querySelector("g.viewport");
    this.k = 1;
    this.tx = 20;
    this.ty = 20;
    this.listeners = [];
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
    // A double click on the background zooms in there (Shift: out): from a Fit of hundreds of nodes to one part.
    svg.addEventListener("dblclick", (ev) => {
      if (ev.target.closest(".node")) return;
      const r = svg.getBoundingClientRect();
      this.zoomAt(ev.clientX - r.left, ev.clientY - r.top, ev.shiftKey ? 0.5 : 2.5);
    });
  }

  /** Call `fn()` after every pan or zoom (the minimap follows). */
  onChange(fn) {
    this.listeners.push(fn);
  }

  apply() {
    this.g.setAttribute("transform", `translate(${this.tx},${this.ty}) scale(${this.k})`);
    this.svg.classList.toggle("zoomed-out", this.k < DETAIL_SCALE);
    this.svg.classList.toggle("zoomed-far", this.k < TEXT_SCALE);
    for (const fn of this.listeners) fn();
  }

  zoomAt(px, py, factor) {
    const k = Math.min(3, Math.max(this.minK || MIN_SCALE, this.k * factor));
    this.tx = px - ((px - this.tx) * k) / this.k;
    this.ty = py - ((py - this.ty) * k) / this.k;
    this.k = k;
    this.apply();
  }

  /**
   * Show the whole graph. With `minScale`, a graph that would shrink below it is shown from its
   * start at that scale instead (the pages open that way; the Fit button shows everything).
   */
  fit(layout, minScale = 0) {
    const r = this.svg.getBoundingClientRect();
    const pad = 20;
    const w = layout.width + (layout.direction === "LR" ? 40 : 140), h = layout.height + (layout.direction === "LR" ? 120 : 40);
    let k = Math.min(1.2, (r.width - pad) / w, (r.height - pad) / h);
    if (k < minScale) k = Math.min(minScale, 1);
    this.k = Math.max(MIN_SCALE, k);
    const x0 = layout.x0 || 0, y0 = layout.y0 || 0;
    const fitsX = layout.width * this.k < r.width, fitsY = layout.height * this.k < r.height;
    this.tx = (fitsX ? (r.width - layout.width * this.k) / 2 : pad) - x0 * this.k;
    this.ty = (fitsY ? (r.height - layout.height * this.k) / 2 : pad) - y0 * this.k;
    this.apply();
  }

  /** Centre the view on a point of the graph, keeping the scale. */
  centreOn(x, y) {
    const r = this.svg.getBoundingClientRect();
    this.tx = r.width / 2 - x * this.k;
    this.ty = r.height / 2 - y * this.k;
    this.apply();
  }

  /** The part of the graph in view, in graph coordinates. */
  visible() {
    const r = this.svg.getBoundingClientRect();
    return { x: -this.tx / this.k, y: -this.ty / this.k, w: r.width / this.k, h: r.height / this.k };
  }

  /** Screen point -> graph coordinates. */
  toGraph(clientX, clientY) {
    const r = this.svg.getBoundingClientRect();
    return { x: (clientX - r.left - this.tx) / this.k, y: (clientY - r.top - this.ty) / this.k };
  }
}

/**
 * A small overview of the whole graph in the corner of a graph's frame, with the part in view
 * outlined; clicking or dragging on it moves the view there. Shown only while the graph does not
 * fit in the view.
 */
export class Minimap {
  constructor(svg, viewport) {
    this.viewport = viewport;
    this.el = document.createElementNS(SVG_NS, "svg");
    this.el.setAttribute("class", "minimap");
    this.el.setAttribute("role", "img");
    this.el.setAttribute("aria-label", "overview of the whole graph: click to move the view there");
    // The svg goes into a positioned frame (it takes the svg's place in the page's layout), so the
    // overview sits on the graph's own corner whatever follows it on the page.
    const frame = document.createElement("div");
    frame.className = "graph-frame";
    svg.before(frame);
    frame.append(svg, this.el);
    this.layout = null;
    const move = (ev) => {
      const r = this.el.getBoundingClientRect();
      const b = this.bounds;
      if (!b) return;
      const s = Math.max(b.w / r.width, b.h / r.height); // preserveAspectRatio "meet": one scale, centred
      const x = b.x + (ev.clientX - r.left - (r.width - b.w / s) / 2) * s;
      const y = b.y + (ev.clientY - r.top - (r.height - b.h / s) / 2) * s;
      viewport.centreOn(x, y);
    };
    let dragging = false;
    this.el.addEventListener("pointerdown", (ev) => {
      dragging = true;
      this.el.setPointerCapture(ev.pointerId);
      move(ev);
    });
    this.el.addEventListener("pointermove", (ev) => dragging && move(ev));
    this.el.addEventListener("pointerup", () => { dragging = false; });
    viewport.onChange(() => this.update());
  }

  /** Draw the overview of `layout` (call again when the layout changes). */
  draw(layout) {
    this.layout = layout;
    const m = 40;
    this.bounds = { x: layout.x0 - m, y: layout.y0 - m, w: layout.width + 2 * m, h: layout.height + 2 * m };
    const b = this.bounds;
    this.el.setAttribute("viewBox", `${b.x} ${b.y} ${b.w} ${b.h}`);
    // Shaped like the graph (a long chain makes a narrow strip, not a mostly empty box).
    const aspect = b.w / b.h;
    this.el.style.width = `${aspect < 1.5 ? Math.max(48, 160 * aspect) : 180}px`;
    this.el.style.height = `${aspect < 1.5 ? 160 : Math.max(36, 180 / aspect)}px`;
    const boxes = blockBoxes(layout).map(({ box }) => `M${box.x},${box.y}h${box.w}v${box.h}h${-box.w}z`).join("");
    const nodes = Object.values(layout.pos).map((p) => `M${p.x},${p.y}h${NODE_W}v${NODE_H}h${-NODE_W}z`).join("");
    this.el.innerHTML = `<path class="mini-blocks" d="${boxes}"/><path class="mini-nodes" d="${nodes}"/><rect class="mini-view"/>`;
    this.update();
  }

  update() {
    if (!this.layout) return;
    const v = this.viewport.visible();
    const l = this.layout;
    const inView = v.x <= l.x0 && v.y <= l.y0 && v.x + v.w >= l.x0 + l.width && v.y + v.h >= l.y0 + l.height;
    this.el.classList.toggle("hidden", inView);
    const rect = this.el.querySelector(".mini-view");
    rect.setAttribute("x", v.x);
    rect.setAttribute("y", v.y);
    rect.setAttribute("width", v.w);
    rect.setAttribute("height", v.h);
  }
}

/** A Top-down / Left-right switch: a <select> whose value is the direction. */
export function directionSelect(initial, onChange) {
  const select = document.createElement("select");
  select.className = "direction";
  select.setAttribute("aria-label", "graph layout direction");
  for (const [value, text] of [["TB", "Top-down"], ["LR", "Left-right"]]) {
    const option = new Option(text, value, false, value === initial);
    select.append(option);
  }
  select.addEventListener("change", () => onChange(select.value));
  return select;
}

/**
 * A page's graph: the <svg>, its viewport and minimap, and a direction switch placed before the
 * page's Fit button. Lays out (once per structure and direction) and draws with renderGraph.
 * `editor` is the definition's editor block ({direction, positions}): its direction is the one
 * shown first, and its hand-placed positions apply while that direction is shown.
 */
export class GraphFrame {
  constructor(svg, { fitButton = null, editor = null, extra = "", onDirection = null } = {}) {
    svg.innerHTML = svgDefs() + `<g class="viewport"><g class="edges-nodes"></g>${extra}</g>`;
    this.svg = svg;
    this.drawing = svg.querySelector(".edges-nodes");
    this.viewport = new Viewport(svg);
    this.minimap = new Minimap(svg, this.viewport);
    this.editor = editor;
    this.direction = (editor && editor.direction) || "TB";
    this.cache = { key: null, layout: null };
    this.layout = null;
    this.lastOpts = null;
    if (fitButton) {
      fitButton.addEventListener("click", () => this.fit());
      this.directionSelect = directionSelect(this.direction, (value) => {
        this.direction = value;
        if (onDirection) onDirection(value);
        if (this.lastOpts) this.draw(this.lastOpts);
        this.fit(0.45);
      });
      fitButton.before(this.directionSelect);
    }
  }

  /** Show `direction` from now on (the switch follows; nothing is drawn until the next draw). */
  setDirection(direction) {
    this.direction = direction;
    if (this.directionSelect) this.directionSelect.value = direction;
  }

  /** The layout of `nodes` in the current direction, with `positions` (default: the editor block's) applied. */
  layoutFor(nodes, start, positions = positionsFor(this.editor, this.direction)) {
    const key = this.direction + "#" + structureKey(nodes, start);
    if (key !== this.cache.key) this.cache = { key, layout: layeredLayout(nodes, start, { direction: this.direction }) };
    return placeNodes(this.cache.layout, positions);
  }

  /** Draw: opts as renderGraph's, without layout (opts.positions overrides the editor block's). */
  draw(opts) {
    this.lastOpts = opts;
    const layout = this.layoutFor(opts.nodes, opts.start, opts.positions);
    renderGraph(this.drawing, { ...opts, layout });
    if (layout !== this.layout) this.minimap.draw(layout);
    this.layout = layout;
    return layout;
  }

  /** Show the whole graph (the Fit button); with minScale, a large graph from its start at that scale. */
  fit(minScale = 0) {
    if (this.layout) this.viewport.fit(this.layout, minScale);
  }
}

export function svgDefs() {
  return `<defs>
    <marker id="arrow" viewBox="0 0 10 10" refX="8" refY="5" markerUnits="userSpaceOnUse" markerWidth="11" markerHeight="11" orient="auto-start-reverse">
      <path d="M0,0 L10,5 L0,10 z" class="arrow-head"/></marker>
  </defs>`;
}

export { SVG_NS };
