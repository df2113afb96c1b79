// The graph editor page: draw, edit, validate live, try switch rules, save a new version.

import { postJSON } from "./api.js";
import { Viewport, esc, renderGraph, svgDefs } from "./graph.js";
import { layeredLayout, structureKey } from "./layout.js";
import {
  NODE_TYPES, addNode, blankModel, changeType, connect, deleteNode, errorNode, fromSpec, renameNode, toSource,
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
  layoutKey: null,
  layout: null,
  sample: '{"payload": {"kind": "a"}}',
  savedVersion: loaded ? loaded.version : null,
  tab: "edit",
  simHighlight: null,
};

const svg = page.querySelector("svg.graph");
svg.innerHTML = svgDefs() + '<g class="viewport"><g class="edges-nodes"></g><path class="drag-line" d=""/></g>';
const viewport = new Viewport(svg);
const drawing = svg.querySelector(".edges-nodes");
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

let frame = 0;
function redraw() {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    drawNow();
  });
}

function drawNow() {
  const { model } = state;
  const key = structureKey(model.nodes, model.start);
  const first = state.layout === null;
  if (key !== state.layoutKey) {
    state.layout = layeredLayout(model.nodes, model.start);
    state.layoutKey = key;
  }
  const byNode = errorsByNode();
  const sim = state.simHighlight;
  renderGraph(drawing, {
    nodes: model.nodes,
    start: model.start,
    layout: state.layout,
    selected: state.selected,
    ports: true,
    nodeClass: (id) => [byNode.has(id) ? "has-error" : "", sim ? sim.nodeClass(id) : ""].join(" "),
    edgeClass: (e) => (sim && sim.edges.has(e.from + ">" + e.to) ? "taken" : ""),
    badges: (id) => (byNode.has(id) ? String(byNode.get(id)) : null),
  });
  if (first) viewport.fit(state.layout);
  page.querySelector(".node-count").textContent = `${Object.keys(model.nodes).length} nodes`;
}

// --- side panel --------------------------------------------------------------------------

function renderPanel() {
  const { model, selected } = state;
  panel.replaceChildren();
  const node = selected && model.nodes[selected];
  if (!node) {
    panel.append(definitionFields());
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
    el("p", { class: "hint" }, "Select a node to edit it. Drag from a node's bottom port onto another node to connect them; Delete removes the selected node."),
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
  setValidity("checking", "checking…");
  clearTimeout(validateTimer);
  validateTimer = setTimeout(validate, 300);
}

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
  drawNow();
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
page.querySelector("[data-action=fit]").addEventListener("click", () => viewport.fit(state.layout, 0.1));
page.querySelector("[data-action=save]").addEventListener("click", save);

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
showTab("edit");

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
document.addEventListener("keydown", (ev) => {
  const typing = ev.target.closest("input, textarea, select");
  if (typing) return;
  if ((ev.key === "Delete" || ev.key === "Backspace") && state.selected) {
    ev.preventDefault();
    removeSelected();
  } else if (ev.key === "Escape") {
    select(null);
  }
});

// Drag from a port to a node to connect.
const dragLine = svg.querySelector(".drag-line");
let linking = null;
svg.addEventListener("pointerdown", (ev) => {
  const port = ev.target.closest(".port");
  if (!port) return;
  ev.stopPropagation();
  const from = port.dataset.port;
  const p = state.layout.pos[from];
  linking = { from, x: p.x + 84, y: p.y + 48 };
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

renderPanel();
drawNow();
validate();
page.dataset.ready = "true";
