// The editor's definition model and its edits (static/graph_editor/js/model.js), without a browser.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  addNode,
  authorNode,
  changeType,
  connect,
  deleteNode,
  clearPositions,
  errorNode,
  fromSpec,
  placeNode,
  renameNode,
  setDirection,
  setPath,
  toSource,
} from "../../static/graph_editor/js/model.js";

const task = (next) => ({ type: "task", request: { method: "POST", url: "http://svc/x" }, ...(next ? { next } : {}) });
const graph = (nodes, start = "a") => ({ name: "g", kind: "graph", start, nodes });

test("a normalized node reads back in author form: nulls dropped, no next on a terminal node", () => {
  const normalized = {
    type: "switch", next: null, cases: [{ when: true, next: "b" }], default: "b", on_failure: null,
  };
  assert.deepEqual(authorNode(normalized), { type: "switch", cases: [{ when: true, next: "b" }], default: "b" });
  const withRequest = { type: "task", next: "b", request: { method: "GET", url: "http://x", body: null }, callback: { success_when: null } };
  assert.deepEqual(authorNode(withRequest), { type: "task", next: "b", request: { method: "GET", url: "http://x" } });
});

test("fromSpec keeps the name, start and notify of a stored definition", () => {
  const loaded = { name: "orders", spec: { kind: "graph", start: "a", nodes: { a: { ...task(), next: null } }, notify: { failed: null } } };
  assert.deepEqual(fromSpec(loaded), { name: "orders", kind: "graph", start: "a", nodes: { a: task() } });
});

test("a saga stays a saga while it is a chain of tasks, and becomes a graph when it is not", () => {
  const model = { name: "s", kind: "saga", start: "a", nodes: { a: task("b"), b: task() } };
  assert.deepEqual(toSource(model), { name: "s", kind: "saga", steps: [{ id: "a", ...task() }, { id: "b", ...task() }] });
  addNode(model, "sleep", "b");
  const source = toSource(model);
  assert.equal(source.kind, "graph");
  assert.deepEqual(Object.keys(source.nodes), ["a", "b", "sleep1"]);
});

test("addNode picks a fresh id and chains it after a node with a free next", () => {
  const model = graph({ a: task() });
  assert.equal(addNode(model, "task", "a"), "task1");
  assert.equal(model.nodes.a.next, "task1");
  assert.equal(addNode(model, "async_task", "a"), "async1");
  assert.equal(model.nodes.a.next, "task1"); // a's next was taken: the new node is left unconnected
});

test("renameNode renames every reference; a bad or taken id is refused with the reason", () => {
  const route = { type: "switch", cases: [{ when: true, next: "b" }], default: "b" };
  const model = graph({ a: { ...task("r"), on_failure: "b", on_timeout: "fail" }, r: route, b: task(), f: { type: "parallel", branches: ["b"] } });
  assert.equal(renameNode(model, "b", "ship"), null);
  assert.deepEqual(Object.keys(model.nodes), ["a", "r", "ship", "f"]);
  assert.equal(model.nodes.a.on_failure, "ship");
  assert.equal(model.nodes.a.on_timeout, "fail"); // a policy, not a node id
  assert.deepEqual([model.nodes.r.cases[0].next, model.nodes.r.default, model.nodes.f.branches[0]], ["ship", "ship", "ship"]);
  assert.match(renameNode(model, "a", "1st"), /start with a letter/);
  assert.equal(renameNode(model, "a", "r"), "'r' already exists");
  assert.equal(renameNode(model, "a", "first"), null);
  assert.equal(model.start, "first");
});

test("deleteNode removes every reference to it and moves the start", () => {
  const route = { type: "switch", cases: [{ when: true, next: "b" }], default: "b" };
  const model = graph({ a: { ...task("b"), on_failure: "b" }, r: route, b: task() });
  deleteNode(model, "b");
  assert.deepEqual(model.nodes.a, { type: "task", request: task().request });
  assert.deepEqual([model.nodes.r.cases[0].next, model.nodes.r.default], [null, null]);
  deleteNode(model, "a");
  assert.equal(model.start, "r");
});

test("connect uses what the source's type allows: next, a switch case, a branch; never from a terminal node", () => {
  const model = graph({
    a: task(), r: { type: "switch", cases: [{ when: true, next: null }], default: null }, f: { type: "parallel", branches: [] },
    end: { type: "succeed" }, b: task(),
  });
  assert.equal(connect(model, "a", "b"), true);
  assert.equal(model.nodes.a.next, "b");
  connect(model, "r", "b");
  connect(model, "r", "a");
  assert.deepEqual([model.nodes.r.cases[0].next, model.nodes.r.default], ["b", "a"]);
  connect(model, "f", "b");
  connect(model, "f", "b");
  assert.deepEqual(model.nodes.f.branches, ["b"]);
  assert.equal(connect(model, "end", "b"), false);
  assert.equal(connect(model, "a", "a"), false);
  assert.equal(connect(model, "a", "nowhere"), false);
});

test("changeType starts from the new type's template, keeping next and the request where they apply", () => {
  const model = graph({ a: { ...task("b"), retry: { max_attempts: 3 } }, b: task() });
  changeType(model, "a", "async_task");
  assert.deepEqual(model.nodes.a, { type: "async_task", request: task().request, timeout_s: 3600, next: "b" });
  changeType(model, "a", "succeed");
  assert.deepEqual(model.nodes.a, { type: "succeed" });
});

test("setPath creates parents, and deleting prunes the parents it leaves empty", () => {
  const node = { type: "task" };
  setPath(node, "retry.max_attempts", 3);
  assert.deepEqual(node, { type: "task", retry: { max_attempts: 3 } });
  setPath(node, "retry.max_attempts", undefined);
  assert.deepEqual(node, { type: "task" });
  assert.equal(errorNode("nodes.pix.request.url"), "pix");
  assert.equal(errorNode("start"), null);
});

test("the drawing (direction, hand-placed nodes) is stored in the source's editor block, and only when it says something", () => {
  const model = fromSpec({ name: "g", spec: graph({ a: task("b"), b: task() }) });
  assert.equal(toSource(model).editor, undefined);
  placeNode(model, "b", 10.4, -20.6);
  placeNode(model, "nope", 1, 1);
  assert.deepEqual(toSource(model).editor, { positions: { b: [10, -21] } });
  renameNode(model, "b", "c");
  assert.deepEqual(toSource(model).editor, { positions: { c: [10, -21] } });
  deleteNode(model, "c");
  assert.equal(toSource(model).editor, undefined);
  placeNode(model, "a", 5, 5);
  setDirection(model, "LR"); // the positions were placed top-down: they go
  assert.deepEqual(toSource(model).editor, { direction: "LR" });
  placeNode(model, "a", 7, 8);
  clearPositions(model);
  assert.deepEqual(toSource(model).editor, { direction: "LR" });
  setDirection(model, "TB");
  assert.equal(toSource(model).editor, undefined);
  const loaded = fromSpec({ name: "g", spec: graph({ a: task() }), editor: { direction: "LR", positions: { a: [1, 2] } } });
  assert.deepEqual(toSource(loaded).editor, { direction: "LR", positions: { a: [1, 2] } });
});
