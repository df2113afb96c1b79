// Edges of a definition graph and a layered (Sugiyama-style) layout, top to bottom.
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
 * Layout-only edges {from, to}: from each node a parallel node's branches run (reachable from its
 * heads without passing the parallel node, its `next`, or a back edge) to that `next`, so the node
 * after a fork is drawn after the join. Skipped where one would close a cycle (a branch reaching `next`).
 */
export function joinEdges(nodes, succ, back) {
  const out = [];
  for (const [id, node] of Object.entries(nodes)) {
    if (!node || node.type !== "parallel" || !Array.isArray(node.branches) || !(node.next in nodes)) continue;
    const seen = new Set();
    const stack = node.branches.filter((b) => b in nodes && b !== id && b !== node.next);
    stack.forEach((b) => seen.add(b));
    let reachesNext = false;
    while (stack.length) {
      const at = stack.pop();
      for (const to of succ.get(at) || []) {
        if (to === node.next) reachesNext = true;
        if (seen.has(to) || to === id || to === node.next || back.has(at + ">" + to)) continue;
        seen.add(to);
        stack.push(to);
      }
    }
    if (!reachesNext) for (const from of seen) out.push({ from, to: node.next });
  }
  return out;
}

/**
 * Positions for every node: {pos: {id: {x, y, rank}}, width, height, back: Set("from>to")}.
 * Ranks are longest paths from the start over the graph with back edges (found by DFS) removed;
 * nodes nothing reaches start their own trees, after the start's.
 */
export function layeredLayout(nodes, start) {
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
  const ranked = [...fwd, ...joinEdges(nodes, succ, back)];
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
  for (const e of fwd) {
    const span = rank.get(e.to) - rank.get(e.from);
    const key = e.from + ">" + e.to;
    if (span < 2 || key in routes) continue;
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

  const width = (id) => (virtual.has(id) ? VIRTUAL_W : NODE_W);
  const layerWidth = (layer) => layer.reduce((w, id) => w + width(id), 0) + (layer.length - 1) * GAP_X;
  const fullW = Math.max(NODE_W, ...layers.map((l) => (l ? layerWidth(l) : 0)));
  const pos = {};
  const at = {};
  layers.forEach((layer, r) => {
    if (!layer) return;
    let x = (fullW - layerWidth(layer)) / 2;
    for (const id of layer) {
      const p = { x, y: r * (NODE_H + GAP_Y), rank: r };
      if (virtual.has(id)) at[id] = { x: x + VIRTUAL_W / 2, y: p.y + NODE_H / 2 };
      else pos[id] = p;
      x += width(id) + GAP_X;
    }
  });
  for (const key of Object.keys(routes)) routes[key] = routes[key].map((v) => at[v]);
  return { pos, back, routes, width: fullW, height: Math.max(1, layers.length) * (NODE_H + GAP_Y) - GAP_Y };
}
