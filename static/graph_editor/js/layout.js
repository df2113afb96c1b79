// Edges of a definition graph and a layered (Sugiyama-style) layout, top-down or left-right,
// with parallel blocks kept together and nodes an author placed by hand kept where they were put.
//
// Works on author-form or normalized nodes alike: {id: {type, next, cases, default,
// on_failure, on_timeout, branches}}. Linear in nodes + edges apart from a few
// barycentre sweeps, so a 200-node graph lays out in a few milliseconds.

import { POLICIES } from "./model.js";

export const NODE_W = 168;
export const NODE_H = 48;
const GAP_X = 36;
const GAP_Y = 58;
const VIRTUAL_W = 16;
// Left-right: layers are columns, nodes in a column stacked with a smaller gap.
const GAP_LR_LAYER = 72;
const GAP_LR_CROSS = 22;
/** Room a parallel block's container leaves around its nodes, and below them for the join. */
export const BLOCK_PAD = 12;
export const JOIN_ROOM = 20;
export const DIRECTIONS = ["TB", "LR"];

/** Every edge out of one node: {from, to, kind, label}. */
export function nodeEdges(id, node) {
  const out = [];
  const add = (to, kind, label = "") => {
    if (typeof to === "string" && to) out.push({ from: id, to, kind, label });
  };
  if (!node || typeof node !== "object") return out;
  if (node.type === "switch") {
    (Array.isArray(node.cases) ? node.cases : []).forEach((c, i) => add(c && c.next, "case", `case ${i}`));
    add(node.default, "default", "default");
  } else {
    add(node.next, "next");
  }
  if (node.type === "parallel" && Array.isArray(node.branches)) {
    node.branches.forEach((b, i) => add(b, "branch", `branch ${i}`));
  }
  for (const key of ["on_failure", "on_timeout"]) {
    if (typeof node[key] === "string" && !POLICIES.has(node[key])) add(node[key], "failure", key);
  }
  return out;
}

/** All edges whose target exists. */
export function graphEdges(nodes) {
  const edges = [];
  for (const [id, node] of Object.entries(nodes)) {
    for (const e of nodeEdges(id, node)) if (e.to in nodes) edges.push(e);
  }
  return edges;
}

/** A string that changes when the drawn structure changes (node ids or edges), not on field edits. */
export function structureKey(nodes, start) {
  const parts = [start || ""];
  for (const [id, node] of Object.entries(nodes)) {
    parts.push(id + ":" + ((node && node.type) || "") + ">" + nodeEdges(id, node).map((e) => e.to + "/" + e.kind).join(","));
  }
  return parts.join("|");
}

/**
 * The nodes a parallel node's branches run: reachable from its heads without passing the parallel
 * node, its `next`, or a back edge. `closed` is false when a branch leads to `next` (no join to draw).
 */
function branchRegion(id, node, nodes, succ, back) {
  const members = new Set();
  const stack = node.branches.filter((b) => b in nodes && b !== id && b !== node.next);
  stack.forEach((b) => members.add(b));
  let closed = true;
  while (stack.length) {
    const at = stack.pop();
    for (const to of succ.get(at) || []) {
      if (to === node.next) closed = false;
      if (members.has(to) || to === id || to === node.next || back.has(at + ">" + to)) continue;
      members.add(to);
      stack.push(to);
    }
  }
  return { members, closed };
}

/** Every well-formed parallel block: {id (the fork), members: Set, next}. Outer blocks first. */
export function parallelBlocks(nodes, succ, back) {
  const blocks = [];
  for (const [id, node] of Object.entries(nodes)) {
    if (!node || node.type !== "parallel" || !Array.isArray(node.branches) || !node.branches.length) continue;
    const { members, closed } = branchRegion(id, node, nodes, succ, back);
    if (closed && members.size) blocks.push({ id, members, next: node.next in nodes ? node.next : null });
  }
  return blocks.sort((a, b) => b.members.size - a.members.size);
}

/**
 * Layout-only edges {from, to}: from each node of a parallel block to the fork's `next`, so the
 * node after a fork is ranked after the join. Blocks whose branch reaches `next` have none.
 */
export function joinEdges(blocks) {
  const out = [];
  for (const block of blocks) if (block.next) for (const from of block.members) out.push({ from, to: block.next });
  return out;
}

/** Reorder each layer so every block's nodes (fork included) sit side by side, outer blocks first. */
function groupBlocks(layers, blocks) {
  for (const block of blocks) {
    const inBlock = (id) => id === block.id || block.members.has(id);
    for (const layer of layers) {
      if (!layer) continue;
      const first = layer.findIndex(inBlock);
      if (first < 0) continue;
      const inside = layer.filter(inBlock);
      const outside = layer.filter((id) => !inBlock(id));
      const before = outside.filter((id) => layer.indexOf(id) < first);
      layer.splice(0, layer.length, ...before, ...inside, ...outside.slice(before.length));
    }
  }
}

/**
 * Positions for every node: {pos: {id: {x, y, rank}}, x0, y0, width, height, direction,
 * back: Set("from>to"), routes: {"from>to": [points]}, blocks}. `direction` is "TB" (layers are
 * rows, edges go down) or "LR" (layers are columns, edges go right). Ranks are longest paths from
 * the start over the graph with back edges (found by DFS) removed; nodes nothing reaches start
 * their own trees, after the start's.
 */
export function layeredLayout(nodes, start, { direction = "TB" } = {}) {
  const ids = Object.keys(nodes);
  const edges = graphEdges(nodes);
  const succ = new Map(ids.map((id) => [id, []]));
  const indeg = new Map(ids.map((id) => [id, 0]));
  for (const e of edges) {
    succ.get(e.from).push(e.to);
    indeg.set(e.to, indeg.get(e.to) + 1);
  }

  // DFS (iterative) from the start, then from roots, then from anything left: finds back edges
  // and a discovery order used as the initial order inside each layer.
  const state = new Map(); // 1 = on stack, 2 = done
  const back = new Set();
  const order = [];
  const visit = (root) => {
    if (state.has(root)) return;
    const stack = [[root, 0]];
    state.set(root, 1);
    order.push(root);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const list = succ.get(top[0]);
      if (top[1] >= list.length) {
        state.set(top[0], 2);
        stack.pop();
        continue;
      }
      const to = list[top[1]++];
      const s = state.get(to);
      if (s === 1) back.add(top[0] + ">" + to);
      else if (s === undefined) {
        state.set(to, 1);
        order.push(to);
        stack.push([to, 0]);
      }
    }
  };
  if (start && start in nodes) visit(start);
  ids.filter((id) => indeg.get(id) === 0).forEach(visit);
  ids.forEach(visit);

  // Longest-path ranks over the DAG (Kahn's order on forward edges). Hidden join edges (not
  // drawn) put the node after a parallel node below everything its branches run.
  const fwdIn = new Map(ids.map((id) => [id, 0]));
  const fwd = edges.filter((e) => !back.has(e.from + ">" + e.to) && e.from !== e.to);
  const blocks = parallelBlocks(nodes, succ, back);
  const ranked = [...fwd, ...joinEdges(blocks)];
  const fwdSucc = new Map(ids.map((id) => [id, []]));
  const pred = new Map(ids.map((id) => [id, []]));
  const rankSucc = new Map(ids.map((id) => [id, []]));
  for (const e of fwd) {
    fwdSucc.get(e.from).push(e.to);
    pred.get(e.to).push(e.from);
  }
  for (const e of ranked) {
    fwdIn.set(e.to, fwdIn.get(e.to) + 1);
    rankSucc.get(e.from).push(e.to);
  }
  const rank = new Map(ids.map((id) => [id, 0]));
  const queue = order.filter((id) => fwdIn.get(id) === 0);
  for (let i = 0; i < queue.length; i++) {
    const id = queue[i];
    for (const to of rankSucc.get(id)) {
      rank.set(to, Math.max(rank.get(to), rank.get(id) + 1));
      fwdIn.set(to, fwdIn.get(to) - 1);
      if (fwdIn.get(to) === 0) queue.push(to);
    }
  }

  // Layers in discovery order. Edges longer than one layer get a chain of virtual nodes, so
  // ordering sees them and they are drawn around the nodes in between instead of through them.
  const layers = [];
  for (const id of order) {
    const r = rank.get(id);
    (layers[r] = layers[r] || []).push(id);
  }
  const routes = {};
  const virtual = new Set();
  // A fork's edge to its `next` is drawn from the join, below the block: it needs no route.
  const joined = new Set(blocks.filter((b) => b.next).map((b) => b.id + ">" + b.next));
  for (const e of fwd) {
    const span = rank.get(e.to) - rank.get(e.from);
    const key = e.from + ">" + e.to;
    if (span < 2 || key in routes || joined.has(key)) continue;
    routes[key] = [];
    let prev = e.from;
    for (let r = rank.get(e.from) + 1; r < rank.get(e.to); r++) {
      const v = `\u0000${key}@${r}`;
      virtual.add(v);
      layers[r].push(v);
      routes[key].push(v);
      pred.set(v, [prev]);
      fwdSucc.set(v, []);
      fwdSucc.get(prev).push(v);
      prev = v;
    }
    fwdSucc.get(prev).push(e.to);
    pred.get(e.to).push(prev);
  }

  // Barycentre sweeps (down, then up) to reduce crossings.
  const index = new Map();
  layers.forEach((layer) => layer && layer.forEach((id, i) => index.set(id, i)));
  const sweep = (neighbours, from, to, step) => {
    for (let r = from; r !== to; r += step) {
      const layer = layers[r];
      if (!layer) continue;
      const bary = new Map();
      for (const id of layer) {
        const ns = neighbours.get(id) || [];
        bary.set(id, ns.length ? ns.reduce((s, n) => s + index.get(n), 0) / ns.length : index.get(id));
      }
      layer.sort((a, b) => bary.get(a) - bary.get(b));
      layer.forEach((id, i) => index.set(id, i));
    }
  };
  for (let k = 0; k < 4; k++) {
    sweep(pred, 1, layers.length, 1);
    sweep(fwdSucc, layers.length - 2, -1, -1);
  }

  groupBlocks(layers, blocks);

  // Placement: along the layer axis one step per rank; across it, each layer centred.
  const lr = direction === "LR";
  const nodeCross = lr ? NODE_H : NODE_W;
  const crossGap = lr ? GAP_LR_CROSS : GAP_X;
  const layerStep = lr ? NODE_W + GAP_LR_LAYER : NODE_H + GAP_Y;
  const cross = (id) => (virtual.has(id) ? VIRTUAL_W : nodeCross);
  const layerCross = (layer) => layer.reduce((w, id) => w + cross(id), 0) + (layer.length - 1) * crossGap;
  const fullCross = Math.max(nodeCross, ...layers.map((l) => (l ? layerCross(l) : 0)));
  const pos = {};
  const at = {};
  layers.forEach((layer, r) => {
    if (!layer) return;
    let c = (fullCross - layerCross(layer)) / 2;
    for (const id of layer) {
      const p = lr ? { x: r * layerStep, y: c, rank: r } : { x: c, y: r * layerStep, rank: r };
      if (virtual.has(id)) at[id] = lr ? { x: p.x + NODE_W / 2, y: c + VIRTUAL_W / 2 } : { x: c + VIRTUAL_W / 2, y: p.y + NODE_H / 2 };
      else pos[id] = p;
      c += cross(id) + crossGap;
    }
  });
  for (const key of Object.keys(routes)) routes[key] = routes[key].map((v) => at[v]);
  return withBounds({ pos, back, routes, direction: lr ? "LR" : "TB", blocks });
}

/** The layout with x0, y0, width, height: the box holding every node, route point and block container. */
function withBounds(layout) {
  const boxes = [
    ...Object.values(layout.pos).map((p) => ({ x: p.x, y: p.y, w: NODE_W, h: NODE_H })),
    ...Object.values(layout.routes).flat().map((p) => ({ x: p.x, y: p.y, w: 0, h: 0 })),
    ...blockBoxes(layout).map((b) => b.box),
  ];
  if (!boxes.length) return { ...layout, x0: 0, y0: 0, width: NODE_W, height: NODE_H };
  const x0 = Math.min(...boxes.map((b) => b.x)), y0 = Math.min(...boxes.map((b) => b.y));
  const x1 = Math.max(...boxes.map((b) => b.x + b.w)), y1 = Math.max(...boxes.map((b) => b.y + b.h));
  return { ...layout, x0, y0, width: x1 - x0, height: y1 - y0 };
}

/**
 * The layout with the nodes an author placed by hand (`positions`: {id: [x, y]}) moved there.
 * Edges touching a moved node lose their routed points (they would lead to the old place), and
 * the bounds (x0, y0, width, height) grow to hold everything, blocks included.
 */
export function placeNodes(layout, positions) {
  const placed = Object.entries(positions || {}).filter(([id, p]) => id in layout.pos && Array.isArray(p));
  if (!placed.length) return layout;
  const pos = { ...layout.pos };
  for (const [id, [x, y]] of placed) pos[id] = { x, y, rank: layout.pos[id].rank };
  const moved = new Set(placed.map(([id]) => id));
  const routes = {};
  for (const [key, points] of Object.entries(layout.routes)) {
    const [from, to] = key.split(">");
    if (!moved.has(from) && !moved.has(to)) routes[key] = points;
  }
  return withBounds({ ...layout, pos, routes });
}

/**
 * The container of each parallel block: {id, box: {x, y, w, h}, join: {x, y}}. The box holds the
 * fork and its branches' nodes, with room after them for the join, where the fork's `next` edge starts.
 */
export function blockBoxes(layout) {
  const out = [];
  for (const block of layout.blocks || []) {
    const ids = [block.id, ...block.members].filter((id) => layout.pos[id]);
    if (ids.length < 2) continue;
    const xs = ids.map((id) => layout.pos[id].x), ys = ids.map((id) => layout.pos[id].y);
    const x = Math.min(...xs) - BLOCK_PAD, y = Math.min(...ys) - BLOCK_PAD;
    const lr = layout.direction === "LR";
    const w = Math.max(...xs) + NODE_W + BLOCK_PAD + (lr ? JOIN_ROOM : 0) - x;
    const h = Math.max(...ys) + NODE_H + BLOCK_PAD + (lr ? 0 : JOIN_ROOM) - y;
    out.push({ id: block.id, box: { x, y, w, h }, join: lr ? { x: x + w, y: y + h / 2 } : { x: x + w / 2, y: y + h } });
  }
  return out;
}

/** The hand-placed positions that apply when drawing in `direction` (they were placed in the saved one). */
export function positionsFor(editor, direction) {
  if (!editor || typeof editor !== "object") return null;
  return (editor.direction || "TB") === direction ? editor.positions || null : null;
}
