// The graph layout of the editor and the execution page (static/graph_editor/js/layout.js), without a browser.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  BLOCK_PAD, NODE_H, NODE_W, blockBoxes, graphEdges, layeredLayout, nodeEdges, placeNodes, positionsFor, structureKey,
} from "../../static/graph_editor/js/layout.js";

const task = (next) => ({ type: "task", request: { method: "POST", url: "http://svc/x" }, ...(next ? { next } : {}) });

test("a switch's edges are its cases then its default; a node id in on_failure is an edge, a policy is not", () => {
  const route = { type: "switch", cases: [{ when: true, next: "pix" }, { when: false, next: "card" }], default: "boleto" };
  assert.deepEqual(
    nodeEdges("route", route).map((e) => [e.to, e.kind, e.label]),
    [["pix", "case", "case 0"], ["card", "case", "case 1"], ["boleto", "default", "default"]],
  );
  assert.deepEqual(nodeEdges("a", { ...task("b"), on_failure: "compensate" }).map((e) => e.to), ["b"]);
  assert.deepEqual(nodeEdges("a", { ...task("b"), on_failure: "fail", on_timeout: "handler" }).map((e) => [e.to, e.kind]), [
    ["b", "next"],
    ["handler", "failure"],
  ]);
});

test("graphEdges leaves out edges to nodes that do not exist", () => {
  const edges = graphEdges({ a: task("b"), b: task("gone") });
  assert.deepEqual(edges.map((e) => `${e.from}>${e.to}`), ["a>b"]);
});

test("structureKey changes when an edge changes, not when a field does", () => {
  const nodes = { a: task("b"), b: task() };
  const key = structureKey(nodes, "a");
  nodes.a.request.url = "http://svc/other";
  assert.equal(structureKey(nodes, "a"), key);
  nodes.b.next = "a";
  assert.notEqual(structureKey(nodes, "a"), key);
});

test("a chain is laid out one node per layer, top to bottom, centred", () => {
  const { pos, width, height, back } = layeredLayout({ a: task("b"), b: task("c"), c: task() }, "a");
  assert.deepEqual([pos.a.rank, pos.b.rank, pos.c.rank], [0, 1, 2]);
  assert.ok(pos.a.y < pos.b.y && pos.b.y < pos.c.y);
  assert.equal(pos.a.x, pos.c.x);
  assert.equal(width, NODE_W);
  assert.equal(height, pos.c.y + NODE_H);
  assert.equal(back.size, 0);
});

test("a node is ranked by its longest path from the start, and a long edge is routed around the nodes between", () => {
  // a -> b -> c -> d, and a -> d directly: d sits below c, the a>d edge bends through virtual points.
  const route = { type: "switch", cases: [{ when: true, next: "d" }], default: "b" };
  const { pos, routes } = layeredLayout({ a: route, b: task("c"), c: task("d"), d: task() }, "a");
  assert.deepEqual([pos.a.rank, pos.b.rank, pos.c.rank, pos.d.rank], [0, 1, 2, 3]);
  assert.equal(routes["a>d"].length, 2); // one point in each layer between ranks 0 and 3
  for (const point of routes["a>d"]) assert.ok(point.y > pos.a.y && point.y < pos.d.y);
});

test("a loop's back edge is found and does not push nodes down", () => {
  const { pos, back } = layeredLayout({ a: task("b"), b: { ...task("c"), on_failure: "a" }, c: task() }, "a");
  assert.deepEqual([...back], ["b>a"]);
  assert.deepEqual([pos.a.rank, pos.b.rank, pos.c.rank], [0, 1, 2]);
});

test("parallel branches share a layer side by side, without overlapping", () => {
  const fork = { type: "parallel", branches: ["left", "right"], next: "join" };
  const { pos } = layeredLayout({ fork, left: task(), right: task(), join: task() }, "fork");
  assert.equal(pos.left.rank, pos.right.rank);
  assert.ok(Math.abs(pos.left.x - pos.right.x) >= NODE_W);
});

test("nodes nothing reaches are laid out too", () => {
  const { pos } = layeredLayout({ a: task(), orphan: task() }, "a");
  assert.deepEqual(Object.keys(pos).sort(), ["a", "orphan"]);
});

// A fork with a two-node branch and a one-node branch, then a node after the join; beside the
// fork, a switch's other case runs a chain that shares the block's layers.
const forked = () => ({
  route: { type: "switch", cases: [{ when: true, next: "fork" }], default: "other1" },
  fork: { type: "parallel", branches: ["a1", "b1"], next: "after" },
  a1: task("a2"), a2: { type: "succeed" }, b1: { type: "succeed" },
  after: { type: "succeed" },
  other1: task("other2"), other2: task("other3"), other3: { type: "succeed" },
});

const inside = (box, p) => p.x >= box.x && p.y >= box.y && p.x + NODE_W <= box.x + box.w && p.y + NODE_H <= box.y + box.h;

test("a parallel block is one container holding the fork and its branches, and the node after it comes after the join", () => {
  for (const direction of ["TB", "LR"]) {
    const layout = layeredLayout(forked(), "route", { direction });
    const [block, ...more] = blockBoxes(layout);
    assert.equal(more.length, 0);
    assert.equal(block.id, "fork");
    for (const id of ["fork", "a1", "a2", "b1"]) assert.ok(inside(block.box, layout.pos[id]), `${direction}: ${id} in the block`);
    for (const id of ["route", "other1", "other2", "other3", "after"]) {
      assert.ok(!inside(block.box, layout.pos[id]), `${direction}: ${id} outside the block`);
    }
    const after = layout.pos.after;
    if (direction === "TB") assert.ok(after.y > block.join.y && block.join.y === block.box.y + block.box.h);
    else assert.ok(after.x > block.join.x && block.join.x === block.box.x + block.box.w);
    assert.equal(layout.routes["fork>after"], undefined); // drawn from the join, not routed through the block
    // The bounds hold the container, padding included.
    assert.ok(layout.x0 <= block.box.x && layout.y0 <= block.box.y);
    assert.ok(layout.x0 + layout.width >= block.box.x + block.box.w && layout.y0 + layout.height >= block.box.y + block.box.h);
  }
});

test("a block's nodes sit side by side in their layers: no node from outside between them", () => {
  const layout = layeredLayout(forked(), "route");
  const b1 = layout.pos.b1, other2 = layout.pos.other2;
  assert.deepEqual([layout.pos.a1.rank, b1.rank], [other2.rank, other2.rank]);
  const [lo, hi] = [Math.min(layout.pos.a1.x, b1.x), Math.max(layout.pos.a1.x, b1.x)];
  assert.ok(other2.x < lo || other2.x > hi, "the other chain is not drawn inside the block");
});

test("a branch that leads to the fork's next makes no block (there is no join to draw)", () => {
  const nodes = { fork: { type: "parallel", branches: ["a"], next: "z" }, a: task("z"), z: { type: "succeed" } };
  assert.deepEqual(blockBoxes(layeredLayout(nodes, "fork")), []);
});

test("left-right puts ranks in columns: a chain runs along x at one y", () => {
  const { pos, width, height, direction } = layeredLayout({ a: task("b"), b: task("c"), c: task() }, "a", { direction: "LR" });
  assert.equal(direction, "LR");
  assert.ok(pos.a.x < pos.b.x && pos.b.x < pos.c.x && pos.b.x - pos.a.x > NODE_W);
  assert.equal(pos.a.y, pos.c.y);
  assert.equal(height, NODE_H);
  assert.equal(width, pos.c.x + NODE_W);
});

test("hand-placed nodes move, their routed edges are dropped and the bounds grow to hold them", () => {
  const route = { type: "switch", cases: [{ when: true, next: "d" }], default: "b" };
  const auto = layeredLayout({ a: route, b: task("c"), c: task("d"), d: task() }, "a");
  assert.ok(auto.routes["a>d"]);
  const placed = placeNodes(auto, { d: [-500, 900], ghost: [1, 1] });
  assert.deepEqual([placed.pos.d.x, placed.pos.d.y], [-500, 900]);
  assert.deepEqual(placed.pos.a, auto.pos.a);
  assert.equal(placed.routes["a>d"], undefined);
  assert.equal(placed.x0, -500);
  assert.equal(placed.y0 + placed.height, 900 + NODE_H);
  assert.equal(placeNodes(auto, {}), auto);
  assert.equal(placed.pos.ghost, undefined);
});

test("a moved node drags its block's container with it", () => {
  const layout = layeredLayout(forked(), "route");
  const far = placeNodes(layout, { b1: [2000, 2000] });
  const [block] = blockBoxes(far);
  assert.equal(block.box.x + block.box.w, 2000 + NODE_W + BLOCK_PAD);
});

test("positions apply only in the direction they were placed in", () => {
  const editor = { direction: "LR", positions: { a: [1, 2] } };
  assert.deepEqual(positionsFor(editor, "LR"), { a: [1, 2] });
  assert.equal(positionsFor(editor, "TB"), null);
  assert.deepEqual(positionsFor({ positions: { a: [1, 2] } }, "TB"), { a: [1, 2] });
  assert.equal(positionsFor(null, "TB"), null);
});
