// The graph layout of the editor and the execution page (static/graph_editor/js/layout.js), without a browser.

import assert from "node:assert/strict";
import { test } from "node:test";

import { NODE_H, NODE_W, graphEdges, layeredLayout, nodeEdges, structureKey } from "../../static/graph_editor/js/layout.js";

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
