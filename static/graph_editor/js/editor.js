// The graph editor page: draw, edit, validate live, try switch rules, save a new version.

import { postJSON } from "./api.js";
import { GraphFrame, esc } from "./graph.js";
import { NODE_H, NODE_W } from "./layout.js";
import { Autocomplete } from "./autocomplete.js";
import { EditHistory } from "./undo.js";
import {
  NODE_TYPES, addNode, blankModel, changeType, clearPositions, connect, copyNodes, deleteNode, drawingDirection, errorField,
  errorNode, fromSpec, hasPositions, pasteNodes, placeNode, renameNode, setDirection, templatePaths, toSource,
} from "./model.js";
import { el, fieldRow, nodeFields } from "./panel.js";
import { Simulator } from "./simulate.js";

const page = document.getElementById("editor");
const urls = JSON.parse(document.getElementById("editor-urls").textContent);
const loaded = JSON.parse(document.getElementById("editor-definition").textContent);
const versions = JSON.parse(document.getElementById("editor-versions").textContent);

const state = {
  model: loaded ? fromSpec(loaded) : blankModel(),
  selected: null,
  errors: [],
  validSeq: 0,
  moving: null, // a node being dragged: {id, x, y} where it is now
  sample: '{"payload": {"kind": "a"}}',
  savedVersion: loaded ? loaded.version : null,
  tab: "edit",
  simHighlight: null,
  clipboard: null, // the last nodes copied here (the system clipboard gets them too, when it can)
};
// What Save would store last time it stored (or as loaded): Save is off while the model says the same.
state.savedText = JSON.stringify(toSource(state.model));
state.history = new EditHistory(snapshot());

const svg = page.querySelector("svg.graph");
const frame = new GraphFrame(svg, {
  fitButton: page.querySelector("[data-action=fit]"),
  extra: '<path class="drag-line" d=""/>',
  onDirection: (direction) => {
    setDirection(state.model, direction);
    changed(true);
    drawNow();
  },
});
const { viewport, drawing } = frame;
const panel = page.querySelector(".panel-body");
const errorsList = page.querySelector(".errors");
const statusPill = page.querySelector(".validity");
const nameInput = page.querySelector("input[name=name]");
const saveMsg = page.querySelector(".save-msg");

// --- drawing ---------------------------------------------------------------------------

function errorsByNode() {
  const map = new Map();
  for (const e of state.errors) {
    const id = errorNode(e.path);
    if (id) map.set(id, (map.get(id) || 0) + 1);
  }
  return map;
}

let pendingFrame = 0;
function redraw() {
  if (pendingFrame) return;
  pendingFrame = requestAnimationFrame(() => {
    pendingFrame = 0;
    drawNow();
  });
}

function drawNow() {
  const { model } = state;
  const first = frame.layout === null;
  frame.setDirection(drawingDirection(model));
  const positions = { ...((model.editor && model.editor.positions) || {}) };
  if (state.moving) positions[state.moving.id] = [state.moving.x, state.moving.y];
  const byNode = errorsByNode();
  const sim = state.simHighlight;
  // Redrawing replaces the node elements: keep the keyboard focus on the node that had it.
  const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest(".node");
  const focusedId = focused && drawing.contains(focused) ? focused.dataset.id : null;
  frame.draw({
    focusable: true,
    nodes: model.nodes,
    start: model.start,
    positions,
    selected: state.selected,
    ports: true,
    nodeClass: (id) => [byNode.has(id) ? "has-error" : "", sim ? sim.nodeClass(id) : ""].join(" "),
    edgeClass: (e) => (sim && sim.edges.has(e.from + ">" + e.to) ? "taken" : ""),
    badges: (id) => (byNode.has(id) ? String(byNode.get(id)) : null),
  });
  if (first) frame.fit(0.45);
  page.querySelector("[data-action=tidy]").disabled = !hasPositions(model);
  if (focusedId) {
    const again = drawing.querySelector(`.node[data-id="${CSS.escape(focusedId)}"]`);
    if (again) again.focus({ preventScroll: true });
  }
  page.querySelector(".node-count").textContent = `${Object.keys(model.nodes).length} nodes`;
}

// --- side panel --------------------------------------------------------------------------

function renderPanel() {
  const { model, selected } = state;
  panel.replaceChildren();
  const node = selected && model.nodes[selected];
  if (!node) {
    panel.append(definitionFields());
    markFieldErrors();
    autocomplete.attach(panel);
    return;
  }
  const idInput = el("input", { type: "text", "data-field": "id", value: selected });
  const idError = el("small", { class: "hint error-text" });
  idInput.addEventListener("change", () => {
    const problem = renameNode(model, selected, idInput.value.trim());
    idError.textContent = problem || "";
    if (!problem) {
      state.selected = idInput.value.trim();
      changed(true);
    }
  });
  const typeSelect = el("select", { "data-field": "type" }, NODE_TYPES.map((t) => el("option", { value: t, selected: t === node.type }, t)));
  typeSelect.addEventListener("change", () => {
    changeType(model, selected, typeSelect.value);
    changed(true);
  });
  const startBtn = model.start === selected
    ? el("span", { class: "pill" }, "start node")
    : el("button", { type: "button", class: "small", onclick: () => { model.start = selected; changed(true); } }, "Make start");
  const del = el("button", { type: "button", class: "small danger", "data-action": "delete", onclick: () => removeSelected() }, "Delete node");
  const nodeErrors = state.errors.filter((e) => errorNode(e.path) === selected);
  panel.append(
    el("div", { class: "panel-head" }, el("h2", {}, selected), startBtn, del),
    el("ul", { class: "node-errors", hidden: !nodeErrors.length }, nodeErrors.map((e) => el("li", {}, el("code", {}, e.path), " ", e.message))),
    fieldRow("id", idInput), idError, fieldRow("type", typeSelect),
    ...nodeFields({
      node,
      nodeIds: Object.keys(model.nodes).filter((id) => id !== selected),
      onChange: () => changed(false),
      onStructure: () => changed(true),
      tryRule,
      sampleText: () => state.sample,
      setSample: (text) => { state.sample = text; },
    }),
    rawJson(node),
  );
  markFieldErrors();
  autocomplete.attach(panel);
}

function rawJson(node) {
  const area = el("textarea", { rows: 8, spellcheck: "false", class: "raw", "data-field": "raw" }, JSON.stringify(node, null, 2));
  area.addEventListener("change", () => {
    try {
      const value = JSON.parse(area.value);
      if (!value || typeof value !== "object" || Array.isArray(value)) throw new Error("not an object");
      state.model.nodes[state.selected] = value;
      area.classList.remove("invalid");
      changed(true);
    } catch {
      area.classList.add("invalid");
    }
  });
  return el("details", { class: "section" }, el("summary", {}, "Node JSON"), area);
}

function definitionFields() {
  const { model } = state;
  const desc = el("textarea", { rows: 3, "data-field": "description" }, model.description || "");
  desc.addEventListener("input", () => {
    model.description = desc.value || undefined;
    changed(false);
  });
  const notify = el("textarea", { rows: 4, spellcheck: "false", "data-field": "notify" }, model.notify ? JSON.stringify(model.notify, null, 2) : "");
  notify.addEventListener("input", () => {
    try {
      model.notify = notify.value.trim() ? JSON.parse(notify.value) : undefined;
      notify.classList.remove("invalid");
      changed(false);
    } catch {
      notify.classList.add("invalid");
    }
  });
  return el("div", {},
    el("h2", {}, "Definition"),
    el("p", { class: "hint" }, "Select a node to edit it. Drag a node to move it (Tidy up puts every node back); drag from its port, the dot on its edge, onto another node to connect them; Delete removes the selected node."),
    fieldRow("description", desc),
    fieldRow("notify (succeeded / failed requests)", notify),
    model.kind === "saga" ? el("p", { class: "hint" }, "Stored as a saga while the graph stays a chain of tasks; otherwise as a graph.") : null,
  );
}

async function tryRule(rule, output) {
  output.className = "try-result";
  let data;
  try {
    data = JSON.parse(state.sample || "{}");
  } catch {
    output.textContent = "sample data is not valid JSON";
    output.classList.add("bad");
    return;
  }
  const res = await postJSON(urls.evaluate, { rule, data });
  if (res.ok) {
    output.textContent = `→ ${JSON.stringify(res.body.result)}`;
    output.classList.add(res.body.result ? "truthy" : "falsy");
  } else {
    output.textContent = (res.body.errors || [res.body]).map((e) => e.message || e.detail).join("; ");
    output.classList.add("bad");
  }
}

// --- edits, validation, save ------------------------------------------------------------

let validateTimer = 0;
function changed(structural) {
  simulator.markStale();
  if (structural) renderPanel();
  else refreshRaw();
  redraw();
  // A structural edit is one undo step at once; typing in a field is one step when the field is
  // left (focusout below), so the field's own Ctrl+Z inside it never leaves steps behind.
  if (structural) commitHistory();
  updateDirty();
  setValidity("checking", "checking…");
  clearTimeout(validateTimer);
  validateTimer = setTimeout(validate, 300);
}

// --- undo / redo, unsaved edits -----------------------------------------------------------

function snapshot() {
  return JSON.stringify({ model: state.model, selected: state.selected });
}

/** Record the model as it is now (no-op when it did not change since the last record). */
function commitHistory() {
  const before = JSON.parse(state.history.current).model;
  const now = JSON.parse(snapshot());
  // A new selection alone is no edit: it only rides along with the next one.
  if (JSON.stringify(before) !== JSON.stringify(now.model)) state.history.push(snapshot());
  updateUndoButtons();
}

function restore(text) {
  if (text === null) return;
  const { model, selected } = JSON.parse(text);
  state.model = model;
  state.selected = selected && selected in model.nodes ? selected : null;
  nameInput.value = model.name || "";
  simulator.markStale();
  renderPanel();
  drawNow();
  updateDirty();
  updateUndoButtons();
  setValidity("checking", "checking…");
  clearTimeout(validateTimer);
  validateTimer = setTimeout(validate, 300);
}

function undo() {
  commitHistory();
  restore(state.history.undo());
}

function redo() {
  commitHistory();
  restore(state.history.redo());
}

function updateUndoButtons() {
  page.querySelector("[data-action=undo]").disabled = !state.history.canUndo();
  page.querySelector("[data-action=redo]").disabled = !state.history.canRedo();
}

function isDirty() {
  return JSON.stringify(toSource(state.model)) !== state.savedText;
}

function updateDirty() {
  const dirty = isDirty();
  page.dataset.dirty = String(dirty);
  const button = page.querySelector("[data-action=save]");
  button.disabled = !dirty;
  button.title = dirty ? "store these edits as a new version" : "nothing changed since the version shown";
}

page.addEventListener("focusout", (ev) => {
  if (ev.target.closest("input, textarea, select")) commitHistory();
});

// Leaving with unsaved edits asks first (the browser's own dialog).
window.addEventListener("beforeunload", (ev) => {
  if (!isDirty()) return;
  ev.preventDefault();
  ev.returnValue = "";
});

function refreshRaw() {
  const raw = panel.querySelector("textarea.raw");
  const node = state.model.nodes[state.selected];
  if (raw && node && document.activeElement !== raw) raw.value = JSON.stringify(node, null, 2);
}

function setValidity(kind, text) {
  statusPill.className = `validity ${kind}`;
  statusPill.textContent = text;
  page.dataset.validity = kind;
}

async function validate() {
  const seq = ++state.validSeq;
  let res;
  try {
    res = await postJSON(urls.validate, toSource(state.model));
  } catch (err) {
    return setValidity("error", `could not validate: ${err}`);
  }
  if (seq !== state.validSeq) return; // an older answer
  state.errors = res.ok ? [] : res.body.errors || [{ path: "", message: res.body.detail || `HTTP ${res.status}` }];
  showErrors();
  setValidity(res.ok ? "valid" : "invalid", res.ok ? "valid" : `${state.errors.length} problem(s)`);
}

function showErrors() {
  errorsList.replaceChildren(...state.errors.map((e) => {
    const li = el("li", {}, el("code", {}, e.path || "(definition)"), " ", e.message);
    const id = errorNode(e.path);
    if (id) li.addEventListener("click", () => select(id));
    return li;
  }));
  const list = panel.querySelector(".node-errors");
  if (state.selected && list) {
    const mine = state.errors.filter((e) => errorNode(e.path) === state.selected);
    list.replaceChildren(...mine.map((e) => el("li", {}, el("code", {}, e.path), " ", e.message)));
    list.hidden = !mine.length;
  }
  markFieldErrors();
  drawNow();
}

/** Each error of the selected node (and of the name) shown on its own input, under it. */
function markFieldErrors() {
  page.querySelectorAll(".field-error").forEach((e) => e.remove());
  page.querySelectorAll(".server-invalid").forEach((input) => {
    input.classList.remove("server-invalid");
    input.removeAttribute("aria-invalid");
    input.removeAttribute("aria-describedby");
  });
  state.errors.forEach((e, i) => {
    const f = errorField(e.path);
    const input = e.path === "name" ? nameInput : f && f.node === state.selected ? fieldInput(f.field) : null;
    if (!input) return;
    const message = el("small", { class: "field-error", id: `field-error-${i}`, role: "alert" }, e.message);
    input.classList.add("server-invalid");
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", message.id);
    input.after(message);
  });
}

/** The panel input of a field path, or of the nearest field above it ("request.body.x" -> the body). */
function fieldInput(field) {
  for (let path = field; path; path = path.includes(".") ? path.slice(0, path.lastIndexOf(".")) : "") {
    const input = panel.querySelector(`[data-field="${CSS.escape(path)}"]`);
    if (input) return input;
  }
  return null;
}

/** Editing a version older than the latest: say so, and that saving stores the next version from it. */
function oldVersionWarning(show) {
  const box = page.querySelector(".old-version-banner");
  const latest = versions.length ? Math.max(...versions) : null;
  box.hidden = !(show && loaded && latest && loaded.version < latest);
  if (box.hidden) return;
  const latestUrl = `${urls.editor}${encodeURIComponent(loaded.name)}/${latest}/`;
  box.innerHTML = `You are editing <b>v${loaded.version}</b>, an old version: the latest is <a href="${esc(latestUrl)}">v${latest}</a>. ` +
    `Saving stores v${latest + 1} from this one.`;
}

async function save() {
  saveMsg.className = "save-msg";
  saveMsg.textContent = "saving…";
  const res = await postJSON(urls.store, toSource(state.model));
  if (!res.ok) {
    state.errors = res.body.errors || [{ path: "", message: res.body.detail || `HTTP ${res.status}` }];
    showErrors();
    setValidity("invalid", `${state.errors.length} problem(s)`);
    saveMsg.textContent = `not saved: ${res.body.detail || res.status}`;
    saveMsg.classList.add("bad");
    return;
  }
  const { name, version } = res.body;
  state.savedText = JSON.stringify(toSource(state.model));
  updateDirty();
  oldVersionWarning(false);
  if (res.status === 200) {
    // The server stores no version identical to the latest (POST definitions/ answers 200).
    saveMsg.innerHTML = `Nothing to store: <b>${esc(name)} v${version}</b> already says this.`;
    saveMsg.classList.add("good");
    return;
  }
  state.savedVersion = version;
  const editorUrl = `${urls.editor}${encodeURIComponent(name)}/${version}/`;
  history.replaceState(null, "", editorUrl);
  const startUrl = urls.start.replace("__name__", encodeURIComponent(name)).replace("/0/start/", `/${version}/start/`);
  saveMsg.innerHTML = `Saved <b>${esc(name)} v${version}</b> · <a href="${esc(startUrl)}">start an execution</a>`;
  saveMsg.classList.add("good");
  page.querySelector(".title-version").textContent = `v${version}`;
  if (loaded && name === loaded.name && !versions.includes(version)) {
    versions.push(version);
    updateCompareLink();
  }
}

function select(id) {
  state.selected = id && id in state.model.nodes ? id : null;
  renderPanel();
  drawNow();
}

function removeSelected() {
  if (!state.selected) return;
  deleteNode(state.model, state.selected);
  state.selected = null;
  changed(true);
}

// --- events ------------------------------------------------------------------------------

nameInput.value = state.model.name;
nameInput.addEventListener("input", () => {
  state.model.name = nameInput.value.trim();
  changed(false);
});
page.querySelector("[data-action=add]").addEventListener("click", () => {
  const type = page.querySelector("select[name=new-type]").value;
  const id = addNode(state.model, type, state.selected);
  state.selected = id;
  changed(true);
});
page.querySelector("[data-action=tidy]").addEventListener("click", () => {
  clearPositions(state.model);
  changed(true);
});
page.querySelector("[data-action=save]").addEventListener("click", save);
page.querySelector("[data-action=undo]").addEventListener("click", undo);
page.querySelector("[data-action=redo]").addEventListener("click", redo);

drawing.addEventListener("click", (ev) => {
  const g = ev.target.closest(".node");
  if (!g) return;
  if (state.tab === "simulate" && simulator.goToNode(g.dataset.id)) return; // jump the playback there
  showTab("edit");
  select(g.dataset.id);
});

// --- tabs: Edit (the side panel) and Simulate --------------------------------------------

const simBody = page.querySelector(".sim-body");
const simulator = new Simulator({
  root: simBody,
  page,
  url: urls.simulate,
  source: () => toSource(state.model),
  onHighlight: (h) => {
    state.simHighlight = h;
    redraw();
  },
});

function showTab(tab) {
  state.tab = tab;
  page.dataset.tab = tab;
  panel.hidden = tab !== "edit";
  simBody.hidden = tab !== "simulate";
  page.querySelectorAll(".panel-tabs [data-tab]").forEach((b) => b.setAttribute("aria-selected", String(b.dataset.tab === tab)));
}
page.querySelectorAll(".panel-tabs [data-tab]").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
showTab(page.dataset.openTab || "edit"); // "simulate" when opened from an execution (?simulate=<id>)

// --- compare versions (the diff page) ------------------------------------------------------

function updateCompareLink() {
  const link = page.querySelector("[data-action=compare]");
  if (!link || !urls.diff) return;
  const current = state.savedVersion;
  const older = versions.filter((v) => v < current);
  const a = older.length ? older[older.length - 1] : versions[0];
  const b = older.length ? current : versions[versions.length - 1];
  link.href = urls.diff.replace("{a}", a).replace("{b}", b);
  link.textContent = `Compare versions (${versions.length})`;
}
updateCompareLink();
svg.addEventListener("click", (ev) => {
  if (!ev.target.closest(".node") && !viewport.lastDragMoved) select(null);
});
// Keys. In a text field, every key is the field's own (its undo, its copy and paste). Elsewhere:
// Ctrl+Z / Ctrl+Shift+Z (or Ctrl+Y) undo and redo edits of the definition, Ctrl+C / Ctrl+V copy and
// paste the selected node, Delete removes it, Enter or Space on a focused node selects it.
document.addEventListener("keydown", (ev) => {
  if (ev.target.closest("input, textarea, select, [contenteditable]")) return;
  const mod = ev.ctrlKey || ev.metaKey;
  const key = ev.key.toLowerCase();
  if (mod && key === "z") {
    ev.preventDefault();
    ev.shiftKey ? redo() : undo();
  } else if (mod && key === "y") {
    ev.preventDefault();
    redo();
  } else if (mod && key === "c" && state.selected && !String(window.getSelection())) {
    state.clipboard = copyNodes(state.model, [state.selected]);
  } else if (mod && key === "v" && state.clipboard) {
    // The paste event (below) brings what the system clipboard holds; without one, our own copy.
    state.pasteHandled = false;
    setTimeout(() => {
      if (!state.pasteHandled) paste(state.clipboard);
    }, 0);
  } else if ((ev.key === "Delete" || ev.key === "Backspace") && state.selected) {
    ev.preventDefault();
    removeSelected();
  } else if ((ev.key === "Enter" || ev.key === " ") && ev.target.closest(".node")) {
    ev.preventDefault();
    select(ev.target.closest(".node").dataset.id);
  } else if (ev.key === "Escape") {
    select(null);
  }
});

document.addEventListener("copy", (ev) => {
  if (ev.target.closest("input, textarea, select") || !state.selected || String(window.getSelection())) return;
  ev.clipboardData.setData("text/plain", JSON.stringify(copyNodes(state.model, [state.selected]), null, 2));
  ev.preventDefault();
});

document.addEventListener("paste", (ev) => {
  if (ev.target.closest("input, textarea, select")) return;
  let clip = null;
  try {
    clip = JSON.parse(ev.clipboardData.getData("text/plain"));
  } catch {
    return; // not nodes: nothing to paste on the graph
  }
  if (!clip || clip.trama !== "nodes") return;
  state.pasteHandled = true;
  ev.preventDefault();
  paste(clip);
});

function paste(clip) {
  const ids = pasteNodes(state.model, clip);
  if (!ids.length) return;
  state.selected = ids[0];
  changed(true);
}

// Drag from a port to a node to connect.
const dragLine = svg.querySelector(".drag-line");
let linking = null;
svg.addEventListener("pointerdown", (ev) => {
  const port = ev.target.closest(".port");
  if (!port) return;
  ev.stopPropagation();
  const from = port.dataset.port;
  const p = frame.layout.pos[from];
  linking = frame.layout.direction === "LR" ? { from, x: p.x + NODE_W, y: p.y + NODE_H / 2 } : { from, x: p.x + NODE_W / 2, y: p.y + NODE_H };
  svg.setPointerCapture(ev.pointerId);
});
svg.addEventListener("pointermove", (ev) => {
  if (!linking) return;
  const q = viewport.toGraph(ev.clientX, ev.clientY);
  dragLine.setAttribute("d", `M${linking.x},${linking.y} L${q.x},${q.y}`);
});
svg.addEventListener("pointerup", (ev) => {
  if (!linking) return;
  dragLine.setAttribute("d", "");
  const target = document.elementFromPoint(ev.clientX, ev.clientY);
  const g = target && target.closest(".node");
  const from = linking.from;
  linking = null;
  if (g && connect(state.model, from, g.dataset.id)) {
    state.selected = from;
    changed(true);
  }
});

// Drag a node (anywhere but its port) to move it: where it is dropped is kept in the definition's
// `editor` block, so every page draws it there. A press without a move stays a click (select).
let press = null;
drawing.addEventListener("pointerdown", (ev) => {
  const g = ev.target.closest(".node");
  if (ev.button !== 0 || !g || ev.target.closest(".port")) return;
  const p = frame.layout.pos[g.dataset.id];
  press = { id: g.dataset.id, clientX: ev.clientX, clientY: ev.clientY, x: p.x, y: p.y, moved: false };
});
svg.addEventListener("pointermove", (ev) => {
  if (!press) return;
  const dx = (ev.clientX - press.clientX) / viewport.k, dy = (ev.clientY - press.clientY) / viewport.k;
  if (!press.moved) {
    if (Math.abs(dx) + Math.abs(dy) <= 4 / viewport.k) return;
    // Captured only once it is a drag: a plain click must still reach the node (select).
    press.moved = true;
    svg.setPointerCapture(ev.pointerId);
  }
  state.moving = { id: press.id, x: press.x + dx, y: press.y + dy };
  redraw();
});
svg.addEventListener("pointerup", () => {
  if (!press) return;
  const { moved, id } = press;
  press = null;
  if (!moved || !state.moving) return;
  placeNode(state.model, id, state.moving.x, state.moving.y);
  state.moving = null;
  state.suppressClick = true;
  changed(true);
});
// The click that ends a node's drag changes no selection.
svg.addEventListener("click", (ev) => {
  if (!state.suppressClick) return;
  state.suppressClick = false;
  ev.stopImmediatePropagation();
}, { capture: true });

const autocomplete = new Autocomplete({
  paths: () => templatePaths(state.model, state.selected, simulator.sampleInput()),
});

renderPanel();
drawNow();
updateDirty();
updateUndoButtons();
oldVersionWarning(true);
validate();
page.dataset.ready = "true";
