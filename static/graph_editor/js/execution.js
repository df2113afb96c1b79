// The execution page: header, the operator's actions, Gantt timeline, the graph with the path taken, event
// history. Polls the page's JSON endpoint every second until the execution is final.

import { getJSON } from "./api.js";
import { GraphFrame, esc } from "./graph.js";
import { eventId, renderHistory } from "./history.js";
import { setUpOperations, updateOperations } from "./operations.js";
import { fmtDuration, fmtUtc, ms, panView, renderTimeline, spanSummary, zoomView } from "./timeline.js";

const page = document.getElementById("execution");
const dataUrl = page.dataset.url;
const POLL_MS = 1000;
// The statuses come from the server (executions/choices.py), so this page keeps no copy of them.
const STATUSES = JSON.parse(document.getElementById("execution-statuses").textContent);
const FINAL = new Set(STATUSES.final);

const state = {
  data: JSON.parse(document.getElementById("execution-data").textContent),
  spans: [],
  selected: null,
  clockSkew: 0,
  openEvents: new Set(),
  view: { from: 0, to: 1 }, // the visible window of the time axis (zoom and pan)
};
const historyRoot = page.querySelector(".history");
const operationsRoot = document.getElementById("operator-actions");

const svg = page.querySelector("svg.graph");
const graph = new GraphFrame(svg, { fitButton: page.querySelector("[data-action=fit]"), editor: state.data.editor });
const tooltip = document.createElement("div");
tooltip.className = "tooltip";
document.body.append(tooltip);

function now() {
  return Date.now() + state.clockSkew;
}

function pre(value) {
  return value === null || value === undefined ? '<span class="muted">—</span>' : `<pre>${esc(JSON.stringify(value, null, 2))}</pre>`;
}

/**
 * What the service answered on the attempt that failed the execution, under its error: the error
 * says "HTTP 503", the body says why. Empty when that step has no response body.
 */
function failureAnswer(error, steps) {
  if (!error || !error.node) return "";
  const failed = steps.filter((s) => s.node_id === error.node && s.response_body != null && s.status !== "succeeded").pop();
  if (!failed) return "";
  const body = typeof failed.response_body === "string" ? failed.response_body : JSON.stringify(failed.response_body);
  const text = body.length > 300 ? body.slice(0, 299) + "…" : body;
  return `<p class="error-answer"><span class="muted">${esc(error.node)} answered ${esc(failed.response_status ?? "")}:</span> <code>${esc(text)}</code></p>`;
}

function renderHeader() {
  const ex = state.data.execution;
  page.dataset.status = ex.status;
  page.dataset.final = String(state.data.is_final);
  const badge = page.querySelector(".status-badge");
  badge.textContent = ex.status;
  badge.className = `status-badge status-${ex.status}`;
  const end = ex.finished_at ? ms(ex.finished_at) : now();
  const facts = [
    ["started", ex.started_at ? fmtUtc(ex.started_at) : "not yet"],
    ["duration", ex.started_at ? fmtDuration(end - ms(ex.started_at)) + (ex.finished_at ? "" : " so far") : ""],
    ["current node", ex.current_node || "—"],
    ["wakes at", ex.wake_at ? fmtUtc(ex.wake_at) : null],
    ["steps", String(state.data.steps.length)],
    ["branches", branchFact(state.data.branches)],
  ];
  page.querySelector(".facts").innerHTML = facts.filter(([, v]) => v).map(([k, v]) => `<div><dt>${k}</dt><dd>${esc(v)}</dd></div>`).join("");
  page.querySelector(".io-input").innerHTML = pre(ex.input);
  page.querySelector(".io-output").innerHTML = pre(ex.output);
  page.querySelector(".io-error").innerHTML = pre(ex.error) + failureAnswer(ex.error, state.data.steps);
  page.querySelector(".io-error").closest(".io").classList.toggle("has-error", !!ex.error);
  page.querySelector(".refreshing").hidden = state.data.is_final;
}

function branchFact(branches) {
  if (!branches || !branches.length) return null;
  return branches.map((b) => `${b.branch} ${b.status}`).join(" · ");
}

/** Nodes visited and edges followed; each branch execution is a path of its own, entered from its fork. */
function pathTaken(steps, spec) {
  const paths = new Map(); // execution id -> forward node ids, in order
  for (const s of steps) {
    if (s.phase !== "forward") continue;
    const key = s.execution || "";
    if (!paths.has(key)) paths.set(key, []);
    const path = paths.get(key);
    if (path[path.length - 1] !== s.node_id) path.push(s.node_id);
  }
  const visited = new Set();
  const edges = new Set();
  for (const path of paths.values()) {
    path.forEach((id) => visited.add(id));
    for (let i = 1; i < path.length; i++) edges.add(path[i - 1] + ">" + path[i]);
  }
  for (const [id, node] of Object.entries((spec && spec.nodes) || {})) {
    if (node && node.type === "parallel" && visited.has(id)) {
      for (const head of node.branches || []) if (visited.has(head)) edges.add(id + ">" + head);
    }
  }
  return { visited, edges };
}

function renderGraphView() {
  const { spec, steps, execution } = state.data;
  const taken = pathTaken(steps, spec);
  const running = new Set(state.data.is_final ? [] : [execution.current_node]);
  if (!state.data.is_final) for (const b of state.data.branches || []) if (b.current_node && !FINAL.has(b.status)) running.add(b.current_node);
  const lastByNode = new Map();
  for (const s of steps) lastByNode.set(`${s.node_id}|${s.phase}`, s);
  graph.draw({
    nodes: spec.nodes || {},
    start: spec.start,
    nodeClass: (id) => {
      const cls = [];
      const fwd = lastByNode.get(`${id}|forward`);
      const comp = lastByNode.get(`${id}|compensation`);
      if (taken.visited.has(id)) cls.push("visited");
      if (fwd) cls.push(`last-${fwd.status}`);
      if (comp) cls.push(comp.status === "succeeded" ? "compensated" : `comp-${comp.status}`);
      if (running.has(id)) cls.push("current");
      return cls.join(" ");
    },
    edgeClass: (e) => (taken.edges.has(e.from + ">" + e.to) ? "taken" : ""),
  });
}

function renderSteps() {
  const root = page.querySelector(".timeline");
  state.spans = renderTimeline(root, {
    steps: state.data.steps,
    execution: { ...state.data.execution, is_final: state.data.is_final },
    now: now(),
    spec: state.data.spec,
    marks: state.data.history.filter((ev) => ev.kind === "operator"),
    view: state.view,
  });
  const zoom = 1 / (state.view.to - state.view.from);
  page.querySelector(".tl-zoom-level").textContent = zoom < 1.05 ? "" : `×${zoom.toFixed(zoom < 10 ? 1 : 0)}`;
  page.dataset.zoom = zoom.toFixed(2);
  if (state.selected != null) {
    const bar = root.querySelector(`.bar[data-step="${CSS.escape(state.selected)}"]`);
    if (bar) bar.classList.add("selected");
  }
}

function showDetail(step) {
  const box = page.querySelector(".step-detail");
  if (!step) {
    box.innerHTML = '<p class="muted">Click a bar to see the rendered request and the response of that attempt.</p>';
    return;
  }
  box.innerHTML = `
    <h3>${esc(step.node_id)}${step.branch ? ` · branch <span class="branch-tag">${esc(step.branch)}</span>` : ""} · ${esc(step.phase)} · attempt ${step.attempt} · <span class="step-status status-${esc(step.status)}">${esc(step.status)}</span></h3>
    <p class="muted">${esc(step.node_type)} · seq ${step.seq} · ${esc(step.started_at)} → ${esc(step.finished_at || "…")}</p>
    <div class="detail-grid">
      <section><h4>Request (rendered, secrets masked)</h4>${pre(step.request)}</section>
      <section><h4>Response ${step.response_status != null ? esc(step.response_status) : ""}</h4>
        <h5>headers</h5>${pre(step.response_headers)}<h5>body</h5>${pre(step.response_body)}</section>
      ${step.detail ? `<section><h4>Detail</h4>${pre(step.detail)}</section>` : ""}
      ${step.error ? `<section class="has-error"><h4>Error</h4>${pre(step.error)}</section>` : ""}
    </div>`;
}

function renderEvents() {
  renderHistory(historyRoot, {
    history: state.data.history,
    startedAt: state.data.execution.started_at || state.data.execution.created_at,
    now: now(),
    open: state.openEvents,
    selected: state.selected,
  });
}

function render() {
  renderHeader();
  updateOperations(operationsRoot, state.data);
  renderSteps();
  renderEvents();
  renderGraphView();
}

/** Select a step (or an operator action) by key: its bar and its history rows are marked, its detail shown. */
function select(key, { scrollTo } = {}) {
  state.selected = key;
  if (scrollTo === "bar") panTo(key);
  timelineRoot.querySelectorAll(".bar.selected").forEach((b) => b.classList.remove("selected"));
  const bar = timelineRoot.querySelector(`.bar[data-step="${CSS.escape(key)}"]`);
  if (bar) bar.classList.add("selected");
  historyRoot.querySelectorAll("tr.ev.selected").forEach((r) => r.classList.remove("selected"));
  const rows = historyRoot.querySelectorAll(`tr.ev[data-step="${CSS.escape(key)}"]`);
  rows.forEach((r) => r.classList.add("selected"));
  const step = state.data.steps.find((s) => `${s.execution || ""}:${s.seq}` === key);
  if (step) showDetail(step);
  if (scrollTo === "bar" && bar) scrollPageTo(bar);
  if (scrollTo === "row" && rows.length) rows[0].scrollIntoView({ block: "nearest" });
}

/** Pan the time axis, keeping its zoom, so that the bar (or ◆) of `key` is in the visible window. */
function panTo(key) {
  const bar = timelineRoot.querySelector(`.bar[data-step="${CSS.escape(key)}"]`);
  if (!bar) return;
  const left = parseFloat(bar.style.left) || 0;
  const width = parseFloat(bar.style.width) || 0;
  if (left + width >= 0 && left <= 100) return; // already (at least partly) in view
  const span = state.view.to - state.view.from;
  const centre = state.view.from + ((left + width / 2) / 100) * span;
  setView(panView(state.view, (centre - (state.view.from + state.view.to) / 2) / span));
}

/**
 * Scroll the page, vertically and nothing else, so that `el` is in view. (Element.scrollIntoView would also
 * scroll the timeline's tracks, which clip with overflow: hidden, and shift bars away from the axis.)
 */
function scrollPageTo(el) {
  const r = el.getBoundingClientRect();
  const margin = 12;
  if (r.top < margin) window.scrollBy(0, r.top - margin);
  else if (r.bottom > window.innerHeight - margin) window.scrollBy(0, r.bottom - window.innerHeight + margin);
}


// Zoom and pan on the time axis: buttons, Ctrl/⌘ + wheel (zoom at the pointer), Shift + wheel or a
// horizontal wheel (pan), dragging a track (pan). A plain wheel scrolls the page.
function setView(view) {
  state.view = view;
  renderSteps();
}

function trackShare(ev) {
  const track = page.querySelector(".timeline .tl-track");
  const r = track.getBoundingClientRect();
  return Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width));
}

const tlControls = page.querySelector(".tl-controls");
tlControls.addEventListener("click", (ev) => {
  const action = ev.target.closest("[data-zoom]");
  if (!action) return;
  const how = action.dataset.zoom;
  if (how === "in") setView(zoomView(state.view, 2));
  else if (how === "out") setView(zoomView(state.view, 0.5));
  else if (how === "earlier") setView(panView(state.view, -0.5));
  else if (how === "later") setView(panView(state.view, 0.5));
  else setView({ from: 0, to: 1 });
});

const timelineRoot = page.querySelector(".timeline");
timelineRoot.addEventListener("wheel", (ev) => {
  if (ev.ctrlKey || ev.metaKey) {
    ev.preventDefault();
    setView(zoomView(state.view, Math.exp(-ev.deltaY * 0.004), trackShare(ev)));
  } else if (ev.shiftKey || Math.abs(ev.deltaX) > Math.abs(ev.deltaY)) {
    ev.preventDefault();
    setView(panView(state.view, (ev.deltaX || ev.deltaY) / 1000));
  }
}, { passive: false });

let tlDrag = null;
timelineRoot.addEventListener("pointerdown", (ev) => {
  if (ev.button !== 0 || !ev.target.closest(".tl-track")) return;
  tlDrag = { x: ev.clientX, view: state.view, width: ev.target.closest(".tl-track").getBoundingClientRect().width, moved: false };
});
window.addEventListener("pointermove", (ev) => {
  if (!tlDrag) return;
  const dx = ev.clientX - tlDrag.x;
  if (!tlDrag.moved && Math.abs(dx) < 4) return;
  tlDrag.moved = true;
  setView(panView(tlDrag.view, -dx / tlDrag.width));
});
window.addEventListener("pointerup", () => {
  state.dragged = !!(tlDrag && tlDrag.moved); // a drag that moved is no click on the bar under it
  tlDrag = null;
});

// Hover and click on bars.
timelineRoot.addEventListener("mousemove", (ev) => {
  const bar = ev.target.closest(".bar[data-span]"); // an operator mark has no span: its title is its hover text
  if (!bar) {
    tooltip.style.display = "none";
    return;
  }
  const span = state.spans[Number(bar.dataset.span)];
  tooltip.textContent = spanSummary(span).join("\n");
  tooltip.style.display = "block";
  tooltip.style.left = `${Math.min(ev.pageX + 14, window.scrollX + window.innerWidth - tooltip.offsetWidth - 10)}px`;
  tooltip.style.top = `${ev.pageY + 14}px`;
});
timelineRoot.addEventListener("mouseleave", () => (tooltip.style.display = "none"));
timelineRoot.addEventListener("click", (ev) => {
  const bar = ev.target.closest(".bar[data-step]");
  if (!bar || state.dragged) return;
  select(bar.dataset.step, { scrollTo: "row" });
});
// A history row: opens or closes its bodies, and marks its bar (and the other rows of the same step).
historyRoot.addEventListener("click", (ev) => {
  const row = ev.target.closest("tr.ev");
  if (!row) return;
  const id = row.dataset.id;
  if (row.classList.contains("has-body")) {
    if (state.openEvents.has(id)) state.openEvents.delete(id);
    else state.openEvents.add(id);
  }
  state.selected = row.dataset.step;
  renderEvents();
  select(row.dataset.step, { scrollTo: "bar" });
});
historyRoot.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && ev.target.matches("tr.ev")) ev.target.click();
});
svg.addEventListener("click", (ev) => {
  const g = ev.target.closest(".node");
  if (!g) return;
  const row = timelineRoot.querySelector(`.tl-row[data-node="${CSS.escape(g.dataset.id)}"]`);
  if (row) {
    row.scrollIntoView({ block: "nearest" });
    row.classList.add("flash");
    setTimeout(() => row.classList.remove("flash"), 800);
  }
});

async function poll() {
  if (state.data.is_final) return;
  try {
    const data = await getJSON(dataUrl);
    state.clockSkew = ms(data.server_time) - Date.now();
    state.data = data;
    render();
  } catch (err) {
    page.querySelector(".refreshing").textContent = `refresh failed (${err.message}); retrying`;
  }
  if (!state.data.is_final) setTimeout(poll, POLL_MS);
}

state.clockSkew = ms(state.data.server_time) - Date.now();
setUpOperations(operationsRoot);
render();
graph.fit(0.45);
showDetail(null);
setTimeout(poll, POLL_MS);
page.dataset.ready = "true";
