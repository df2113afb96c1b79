// The editor's Simulate tab: a dry run through POST /api/v1/definitions/simulate/ (no call
// leaves Trama, nothing is stored), played back node by node on the editor's graph.

import { postJSON } from "./api.js";
import { esc } from "./graph.js";

const PLAY_MS = 650;

/**
 * The stops of a playback: one per entry of the answer's `path` (with the forward attempts
 * made there), then one per compensation attempt, in history order.
 */
export function simulationStops(result) {
  const path = Array.isArray(result.path) ? result.path : [];
  const stops = path.map((node) => ({ node, phase: "forward", steps: [] }));
  const extra = [];
  let j = -1;
  for (const step of result.steps || []) {
    if (step.phase !== "forward") {
      extra.push({ node: step.node_id, phase: step.phase, steps: [step] });
      continue;
    }
    const here = stops[j];
    const retry = here && here.node === step.node_id && here.steps.length && step.attempt > here.steps[here.steps.length - 1].attempt;
    if (!retry) {
      // The next entry of `path` at this node (a node entered again, e.g. a polling loop, is a new entry).
      const next = stops.findIndex((s, i) => i > j && s.node === step.node_id);
      if (next < 0) {
        extra.push({ node: step.node_id, phase: "forward", steps: [step] });
        continue;
      }
      j = next;
    }
    stops[j].steps.push(step);
  }
  return [...stops, ...extra].map((stop) => {
    const last = stop.steps[stop.steps.length - 1];
    return { ...stop, status: last ? last.status : "" };
  });
}

/** Node classes and taken edges for the stops up to `index`. */
export function simulationHighlight(stops, index) {
  const nodes = new Map();
  const edges = new Set();
  // The last node entered per branch ("" the main line): a branch's head is entered from the
  // parallel node, the last main-line node before it, and the node after the join from it too.
  const prev = new Map();
  stops.slice(0, index + 1).forEach((stop, i) => {
    const cls = new Set(nodes.get(stop.node) || []);
    if (stop.phase === "forward") {
      cls.add("sim-visited");
      if (["failed", "timed_out"].includes(stop.status)) cls.add("sim-failed");
      const branch = (stop.steps[0] && stop.steps[0].branch) || "";
      const from = prev.get(branch) || prev.get("");
      if (from) edges.add(from + ">" + stop.node);
      prev.set(branch, stop.node);
    } else {
      cls.add(stop.status === "succeeded" ? "sim-compensated" : "sim-failed");
    }
    if (i === index) cls.add("sim-current");
    nodes.set(stop.node, cls);
  });
  for (const cls of nodes.values()) if (!cls.has("sim-current")) cls.delete("sim-current");
  return { nodeClass: (id) => [...(nodes.get(id) || [])].join(" "), edges };
}

function pre(value) {
  return value === null || value === undefined ? '<span class="muted">—</span>' : `<pre>${esc(JSON.stringify(value, null, 2))}</pre>`;
}

function stepHtml(step) {
  const req = step.request;
  const res = step.response;
  return `<div class="sim-attempt status-${esc(step.status)}">
    <h3>${esc(step.node_id)}${step.branch ? ` · branch <span class="branch-tag">${esc(step.branch)}</span>` : ""} · ${esc(step.phase)} · attempt ${step.attempt} ·
      <span class="step-status status-${esc(step.status)}">${esc(step.status)}</span></h3>
    <p class="muted">${esc(step.node_type)} · ${esc(step.started_at)}${step.finished_at ? " → " + esc(step.finished_at) : ""}</p>
    ${req ? `<h4>Request (rendered)</h4><p class="sim-request-line"><code>${esc(req.method || "")} ${esc(req.url || "")}</code></p>${pre(req)}` : ""}
    ${res ? `<h4>Mocked response ${esc(res.status)}</h4>${pre(res.body)}` : ""}
    ${step.detail ? `<h4>Detail</h4>${pre(step.detail)}` : ""}
    ${step.error ? `<h4 class="error-text">Error</h4>${pre(step.error)}` : ""}
  </div>`;
}

/**
 * The Simulate tab. ctx: {root, page, url, source() -> definition source, onHighlight(h | null)}.
 */
export class Simulator {
  constructor(ctx) {
    this.ctx = ctx;
    this.root = ctx.root;
    this.result = null;
    this.stops = [];
    this.index = -1;
    this.timer = 0;
    this.input = this.root.querySelector('[data-field="sim-input"]');
    this.mocks = this.root.querySelector('[data-field="sim-mocks"]');
    this.root.querySelector("[data-action=play]").addEventListener("click", () => this.play());
    this.root.querySelector("[data-action=sim-prev]").addEventListener("click", () => this.go(this.index - 1));
    this.root.querySelector("[data-action=sim-next]").addEventListener("click", () => this.go(this.index + 1));
    this.root.querySelector(".sim-stops").addEventListener("click", (ev) => {
      const li = ev.target.closest("li[data-stop]");
      if (li) this.go(Number(li.dataset.stop));
    });
    this.setState("idle");
    this.renderControls();
  }

  /** The input typed in this tab (an object), or {} while it is not valid JSON: its keys feed the autocomplete. */
  sampleInput() {
    try {
      const value = JSON.parse(this.input.value || "{}");
      return value && typeof value === "object" ? value : {};
    } catch {
      return {};
    }
  }

  setState(state) {
    this.ctx.page.dataset.sim = state;
  }

  parse(area, fallback) {
    const raw = area.value.trim();
    if (!raw) return fallback;
    try {
      const value = JSON.parse(raw);
      area.classList.remove("invalid");
      return value;
    } catch {
      area.classList.add("invalid");
      throw new Error(`${area.dataset.field === "sim-input" ? "input" : "mocks"} is not valid JSON`);
    }
  }

  async play() {
    this.stop();
    const out = this.root.querySelector(".sim-result");
    let input, mocks;
    try {
      input = this.parse(this.input, {});
      mocks = this.parse(this.mocks, {});
    } catch (err) {
      out.className = "sim-result bad";
      out.textContent = err.message;
      return;
    }
    out.className = "sim-result";
    out.textContent = "simulating…";
    this.setState("running");
    const res = await postJSON(this.ctx.url, { definition: this.ctx.source(), input, mocks });
    if (!res.ok) {
      this.result = null;
      this.stops = [];
      this.index = -1;
      const errors = res.body.errors || [{ path: "", message: res.body.detail || `HTTP ${res.status}` }];
      out.className = "sim-result bad";
      out.innerHTML = `<p>Cannot simulate: ${esc(res.body.detail || res.status)}</p><ul>${errors
        .map((e) => `<li><code>${esc(e.path || "(body)")}</code> ${esc(e.message)}</li>`).join("")}</ul>`;
      this.setState("error");
      this.render();
      return;
    }
    this.result = res.body;
    this.stale = false;
    this.stops = simulationStops(res.body);
    const r = res.body;
    out.className = "sim-result";
    out.innerHTML = `<p><span class="status-badge status-${esc(r.status)}">${esc(r.status)}</span>
      <span class="sim-calls">${r.calls} call(s) would be made · none was</span></p>
      <p class="sim-path"><b>path</b> ${r.path.map((n) => `<code>${esc(n)}</code>`).join(" → ")}</p>
      ${r.output != null ? `<h4>output</h4>${pre(r.output)}` : ""}${r.error != null ? `<h4 class="error-text">error</h4>${pre(r.error)}` : ""}`;
    this.root.querySelector(".sim-stops").innerHTML = this.stops
      .map((s, i) => `<li data-stop="${i}" class="phase-${esc(s.phase)} status-${esc(s.status)}"><code>${esc(s.node)}</code>${s.phase === "forward" ? "" : ` <small>${esc(s.phase)}</small>`}
        <small class="muted">${esc(s.status)}${s.steps.length > 1 ? ` · ${s.steps.length} attempts` : ""}</small></li>`)
      .join("");
    this.index = -1;
    if (!this.stops.length) {
      this.setState("done");
      this.render();
      return;
    }
    this.setState("playing");
    this.go(0, true);
    this.timer = setInterval(() => {
      if (this.index >= this.stops.length - 1) {
        this.stop();
        this.setState("done");
      } else {
        this.go(this.index + 1, true);
      }
    }, PLAY_MS);
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = 0;
  }

  /** Show stop i; a click (not the player) pauses the playback. */
  go(i, fromPlayer = false) {
    if (!this.stops.length) return;
    if (!fromPlayer && this.timer) {
      this.stop();
      this.setState("paused");
    }
    this.index = Math.max(0, Math.min(this.stops.length - 1, i));
    if (!fromPlayer && this.index === this.stops.length - 1) this.setState("done");
    this.render();
  }

  /** Jump to the first stop at a node (a click on the graph); false when the run never got there. */
  goToNode(id) {
    const i = this.stops.findIndex((s) => s.node === id);
    if (i < 0) return false;
    this.go(i);
    return true;
  }

  /** The definition was edited: the playback no longer matches it. */
  markStale() {
    if (!this.result || this.stale) return;
    this.stale = true;
    const out = this.root.querySelector(".sim-result");
    out.insertAdjacentHTML("afterbegin", '<p class="sim-stale">The definition changed since this run: Play again.</p>');
  }

  clear() {
    this.stop();
    this.result = null;
    this.stops = [];
    this.index = -1;
    this.setState("idle");
    this.render();
  }

  renderControls() {
    const n = this.stops.length;
    this.root.querySelector("[data-action=sim-prev]").disabled = this.index <= 0;
    this.root.querySelector("[data-action=sim-next]").disabled = this.index < 0 || this.index >= n - 1;
    const stop = this.stops[this.index];
    this.root.querySelector(".sim-pos").textContent = stop ? `${this.index + 1} / ${n} · ${stop.node}` : "";
    this.ctx.page.dataset.simIndex = String(this.index);
    this.ctx.page.dataset.simNode = stop ? stop.node : "";
  }

  render() {
    this.renderControls();
    this.root.querySelectorAll(".sim-stops li").forEach((li) => li.classList.toggle("current", Number(li.dataset.stop) === this.index));
    const stop = this.stops[this.index];
    this.root.querySelector(".sim-step").innerHTML = stop ? stop.steps.map(stepHtml).join("") : "";
    this.ctx.onHighlight(stop ? simulationHighlight(this.stops, this.index) : null);
  }
}
