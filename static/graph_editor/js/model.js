// The definition being edited, in author form (docs/definitions.md), and the edits on it.
// Stored definitions arrive as the normalized `spec` (docs/normalized-spec.md) and are turned
// back into author form here: nulls that only mean "absent" are dropped, terminal nodes lose `next`.

export const NODE_TYPES = ["task", "async_task", "switch", "sleep", "succeed", "fail", "parallel"];
export const ID_RE = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
const NO_NEXT = new Set(["switch", "succeed", "fail"]);
// on_failure / on_timeout values that are policies; any other string names a node to go to.
export const POLICIES = new Set(["compensate", "fail"]);

function dropNulls(obj) {
  if (!obj || typeof obj !== "object" || Array.isArray(obj)) return obj;
  const out = {};
  for (const [k, v] of Object.entries(obj)) if (v !== null && v !== undefined) out[k] = v;
  return out;
}

/** A normalized node -> the same node as an author would write it. */
export function authorNode(node) {
  const out = dropNulls(node);
  if (NO_NEXT.has(out.type)) delete out.next;
  if (out.request) out.request = dropNulls(out.request);
  if (out.compensation) out.compensation = dropNulls(out.compensation);
  if (out.callback) {
    out.callback = dropNulls(out.callback);
    if (!Object.keys(out.callback).length) delete out.callback;
  }
  return out;
}

export function fromSpec(loaded) {
  const spec = loaded.spec || {};
  const nodes = {};
  for (const [id, node] of Object.entries(spec.nodes || {})) nodes[id] = authorNode(node);
  const model = { name: loaded.name || spec.name || "", kind: spec.kind || "graph", start: spec.start || null, nodes };
  if (loaded.description) model.description = loaded.description;
  if (loaded.editor && typeof loaded.editor === "object") model.editor = structuredClone(loaded.editor);
  if (spec.notify && Object.keys(dropNulls(spec.notify)).length) {
    model.notify = {};
    for (const [k, v] of Object.entries(dropNulls(spec.notify))) model.notify[k] = dropNulls(v);
  }
  return model;
}

export function blankModel() {
  return {
    name: "",
    kind: "graph",
    start: "first",
    nodes: { first: { type: "task", request: { method: "POST", url: "http://service.local/first" } } },
  };
}

/** Node ids in chain order when the graph is a plain chain of tasks from the start, else null. */
function chainOrder(model) {
  const seen = [];
  let id = model.start;
  while (id && id in model.nodes && !seen.includes(id)) {
    const node = model.nodes[id];
    if (node.type !== "task" && node.type !== "async_task") return null;
    seen.push(id);
    id = node.next;
  }
  if (id || seen.length !== Object.keys(model.nodes).length) return null;
  return seen;
}

/** What the API receives: a saga stays a saga while it is still a chain of tasks; anything else is a graph. */
export function toSource(model) {
  const src = { name: model.name };
  if (model.description) src.description = model.description;
  const chain = model.kind === "saga" ? chainOrder(model) : null;
  if (chain) {
    src.kind = "saga";
    src.steps = chain.map((id) => {
      const { next, ...rest } = model.nodes[id];
      return { id, ...rest };
    });
  } else {
    src.kind = "graph";
    src.start = model.start;
    src.nodes = model.nodes;
  }
  if (model.notify) src.notify = model.notify;
  const editor = editorBlock(model);
  if (editor) src.editor = editor;
  return src;
}

// --- the drawing: direction and hand-placed nodes (the source's `editor` block) ---------------

/** The direction the graph is drawn in: "TB" (top-down, the default) or "LR" (left-right). */
export function drawingDirection(model) {
  return (model.editor && model.editor.direction) || "TB";
}

/** The `editor` block to store: only what differs from the automatic drawing, else null. */
function editorBlock(model) {
  const block = {};
  if (drawingDirection(model) !== "TB") block.direction = drawingDirection(model);
  const positions = (model.editor && model.editor.positions) || {};
  if (Object.keys(positions).length) block.positions = positions;
  return Object.keys(block).length ? block : null;
}

/** Keep a node where the author dropped it (rounded to whole pixels). */
export function placeNode(model, id, x, y) {
  if (!(id in model.nodes)) return;
  model.editor = { ...model.editor, positions: { ...((model.editor && model.editor.positions) || {}), [id]: [Math.round(x), Math.round(y)] } };
}

/** Switch direction. Hand-placed positions were placed for the other one, so they go (undo brings them back). */
export function setDirection(model, direction) {
  model.editor = { direction };
}

/** Forget every hand-placed position: the automatic layout again. */
export function clearPositions(model) {
  if (model.editor) model.editor = { direction: model.editor.direction };
}

export function hasPositions(model) {
  return Boolean(model.editor && model.editor.positions && Object.keys(model.editor.positions).length);
}

function movePosition(model, id, newId) {
  const positions = model.editor && model.editor.positions;
  if (!positions || !(id in positions)) return;
  if (newId) positions[newId] = positions[id];
  delete positions[id];
}

export function newNodeTemplate(type, id) {
  switch (type) {
    case "task":
      return { type, request: { method: "POST", url: `http://service.local/${id}` } };
    case "async_task":
      return { type, request: { method: "POST", url: `http://service.local/${id}` }, timeout_s: 3600 };
    case "switch":
      return { type, cases: [{ when: { "==": [{ var: "payload.kind" }, "a"] }, next: null }], default: null };
    case "sleep":
      return { type, duration_s: 5 };
    case "succeed":
      return { type };
    case "fail":
      return { type, error: { message: "failed" } };
    case "parallel":
      return { type, branches: [] };
    default:
      return { type };
  }
}

export function freshId(model, base) {
  let i = 1;
  while (`${base}${i}` in model.nodes) i++;
  return `${base}${i}`;
}

/** Add a node; when `after` is a node with a free `next`, chain it there. Returns the new id. */
export function addNode(model, type, after) {
  const id = freshId(model, type === "async_task" ? "async" : type);
  model.nodes[id] = newNodeTemplate(type, id);
  const prev = after && model.nodes[after];
  if (prev && !NO_NEXT.has(prev.type) && !prev.next) prev.next = id;
  if (!model.start) model.start = id;
  return id;
}

/** Apply fn(value) -> new value to every place a node id is referenced. */
function mapRefs(model, fn) {
  for (const node of Object.values(model.nodes)) {
    if ("next" in node) {
      const v = fn(node.next);
      if (v === undefined) delete node.next;
      else node.next = v;
    }
    if (Array.isArray(node.cases)) for (const c of node.cases) if (c) c.next = fn(c.next) ?? null;
    if ("default" in node) node.default = fn(node.default) ?? null;
    for (const key of ["on_failure", "on_timeout"]) {
      if (typeof node[key] === "string" && !POLICIES.has(node[key])) {
        const v = fn(node[key]);
        if (v === undefined) delete node[key];
        else node[key] = v;
      }
    }
    if (Array.isArray(node.branches)) node.branches = node.branches.map(fn).filter((b) => b !== undefined);
  }
}

export function deleteNode(model, id) {
  delete model.nodes[id];
  movePosition(model, id, null);
  mapRefs(model, (ref) => (ref === id ? undefined : ref));
  if (model.start === id) model.start = Object.keys(model.nodes)[0] || null;
}

/** Rename a node and every reference to it; returns an error message or null. */
export function renameNode(model, id, newId) {
  if (newId === id) return null;
  if (!ID_RE.test(newId)) return "ids start with a letter, then letters, digits, '_' or '-' (64 at most)";
  if (newId in model.nodes) return `'${newId}' already exists`;
  const renamed = {};
  for (const [k, v] of Object.entries(model.nodes)) renamed[k === id ? newId : k] = v;
  model.nodes = renamed;
  movePosition(model, id, newId);
  mapRefs(model, (ref) => (ref === id ? newId : ref));
  if (model.start === id) model.start = newId;
  return null;
}

/** Connect from -> to the way the source's type allows: next, a switch case, or a branch. */
export function connect(model, from, to) {
  const node = model.nodes[from];
  if (!node || !(to in model.nodes) || from === to) return false;
  if (node.type === "switch") {
    node.cases = Array.isArray(node.cases) ? node.cases : [];
    const open = node.cases.find((c) => c && !c.next);
    if (open) open.next = to;
    else if (!node.default) node.default = to;
    else node.cases.push({ when: { "==": [{ var: "payload.kind" }, "b"] }, next: to });
  } else if (node.type === "parallel") {
    node.branches = Array.isArray(node.branches) ? node.branches : [];
    if (!node.branches.includes(to)) node.branches.push(to);
  } else if (NO_NEXT.has(node.type)) {
    return false;
  } else {
    node.next = to;
  }
  return true;
}

/** Change a node's type: a fresh template of the new type that keeps `next` where it applies. */
export function changeType(model, id, type) {
  const old = model.nodes[id];
  const node = newNodeTemplate(type, id);
  if (old && old.next && !NO_NEXT.has(type)) node.next = old.next;
  if (old && old.request && (type === "task" || type === "async_task")) node.request = old.request;
  model.nodes[id] = node;
}

/** Node id of a validation error path ("nodes.<id>..." ), or null. */
export function errorNode(path) {
  const m = /^nodes\.([A-Za-z][A-Za-z0-9_-]*)/.exec(path || "");
  return m ? m[1] : null;
}

/**
 * The node and the field (a panel input's data-field: dotted, list indexes as numbers) that a
 * validation error path names: "nodes.route.cases[0].next" -> {node: "route", field: "cases.0.next"}.
 */
export function errorField(path) {
  const m = /^nodes\.([A-Za-z][A-Za-z0-9_-]*)\.?(.*)$/.exec(path || "");
  if (!m) return null;
  return { node: m[1], field: m[2].replace(/\[(\d+)\]/g, ".$1").replace(/^\./, "") };
}

// --- dotted paths inside a node ------------------------------------------------------------

export function getPath(obj, path) {
  return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

/** Set obj.a.b = value; `undefined` deletes the key and prunes parents left empty. */
export function setPath(obj, path, value) {
  const keys = path.split(".");
  const chain = [obj];
  let o = obj;
  for (const k of keys.slice(0, -1)) {
    if (o[k] == null || typeof o[k] !== "object") {
      if (value === undefined) return;
      o[k] = {};
    }
    o = o[k];
    chain.push(o);
  }
  const last = keys[keys.length - 1];
  if (value === undefined) delete o[last];
  else o[last] = value;
  for (let i = keys.length - 1; i > 0 && value === undefined; i--) {
    if (Object.keys(chain[i]).length === 0) delete chain[i - 1][keys[i - 1]];
    else break;
  }
}

// --- copy and paste ------------------------------------------------------------------------

/** The nodes to put on the clipboard: copies, so later edits of the originals do not leak in. */
export function copyNodes(model, ids) {
  const nodes = {};
  for (const id of ids) if (id in model.nodes) nodes[id] = structuredClone(model.nodes[id]);
  return { trama: "nodes", nodes };
}

/**
 * Paste copied nodes under fresh ids (`<id>_copy`, `<id>_copy2`…). References between pasted
 * nodes follow the new ids; references to nodes the model has stay; others are dropped.
 * Returns the new ids, in the clipboard's order.
 */
export function pasteNodes(model, clip) {
  if (!clip || clip.trama !== "nodes" || !clip.nodes || typeof clip.nodes !== "object") return [];
  const renamed = new Map();
  for (const id of Object.keys(clip.nodes)) {
    let fresh = `${id}_copy`.slice(0, 64);
    for (let i = 2; fresh in model.nodes || [...renamed.values()].includes(fresh); i++) fresh = `${id}_copy${i}`.slice(0, 64);
    renamed.set(id, fresh);
  }
  const pasted = { nodes: {} };
  for (const [id, node] of Object.entries(clip.nodes)) pasted.nodes[renamed.get(id)] = structuredClone(node);
  mapRefs(pasted, (ref) => (renamed.has(ref) ? renamed.get(ref) : ref in model.nodes ? ref : undefined));
  Object.assign(model.nodes, pasted.nodes);
  return [...renamed.values()];
}

// --- template paths (the {{…}} autocomplete) ----------------------------------------------

/** Node ids from which `id` can be reached: their results exist when `id` runs. */
export function upstreamOf(model, id) {
  const preds = new Map();
  for (const [from, node] of Object.entries(model.nodes)) {
    for (const to of referencedIds(node)) {
      if (!preds.has(to)) preds.set(to, new Set());
      preds.get(to).add(from);
    }
  }
  const seen = new Set();
  const queue = [id];
  while (queue.length) {
    for (const p of preds.get(queue.shift()) || []) {
      if (seen.has(p) || p === id) continue;
      seen.add(p);
      queue.push(p);
    }
  }
  return [...seen];
}

function referencedIds(node) {
  const ids = [];
  const probe = { nodes: { x: structuredClone(node) } };
  mapRefs(probe, (ref) => {
    if (typeof ref === "string") ids.push(ref);
    return ref;
  });
  return ids;
}

/**
 * The `{{…}}` paths a template in node `id` can read (docs/definitions.md, templates): the
 * payload (with the keys of `sampleInput`), the responses of the nodes upstream, callbacks of
 * the async ones, the execution, the callback while rendering an async request, secrets.
 */
export function templatePaths(model, id, sampleInput = {}) {
  const paths = ["payload"];
  if (sampleInput && typeof sampleInput === "object" && !Array.isArray(sampleInput)) {
    for (const key of Object.keys(sampleInput)) paths.push(`payload.${key}`);
  }
  for (const up of upstreamOf(model, id).sort()) {
    const node = model.nodes[up];
    if (!node || !["task", "async_task"].includes(node.type)) continue;
    paths.push(`nodes.${up}.response.body`, `nodes.${up}.response.status`, `nodes.${up}.response.headers`);
    if (node.type === "async_task") paths.push(`nodes.${up}.callback.body`);
  }
  paths.push("execution.id", "execution.definition", "execution.version", "execution.started_at");
  const here = model.nodes[id];
  if (here && here.type === "async_task") paths.push("callback.url", "callback.token");
  paths.push("secrets.");
  return paths;
}

/** The paths that complete `prefix` (what follows `{{` before the caret), best first. */
export function completePath(paths, prefix) {
  const p = prefix.trim();
  const starts = paths.filter((path) => path.startsWith(p) && path !== p);
  const inside = paths.filter((path) => !path.startsWith(p) && path.includes(p));
  return [...starts, ...inside].slice(0, 12);
}
