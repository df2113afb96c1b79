// The Gantt timeline: one row per node, one bar per step attempt (forward, compensation,
// notify), waits and sleeps as their own hatched bars, retry back-offs between attempts.
// Parallel branches (executions of their own, their steps carry `branch`) get rows of their
// own, named after the branch and grouped under their fork node.

import { esc } from "./graph.js";

const TICKS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 15e3, 3e4, 6e4, 12e4, 3e5, 6e5, 9e5, 18e5, 36e5, 72e5, 216e5, 432e5, 864e5];

/** Identifies a step across the parent and its branches (seq counts per execution). */
export function stepKey(step) {
  return `${step.execution || ""}:${step.seq}`;
}

export function ms(iso) {
  return iso ? Date.parse(iso) : NaN;
}

export function fmtDuration(d) {
  if (!isFinite(d)) return "";
  if (d < 1000) return `${Math.round(d)} ms`;
  if (d < 60e3) return `${(d / 1000).toFixed(d < 10e3 ? 2 : 1)} s`;
  if (d < 3600e3) return `${Math.floor(d / 60e3)} min ${Math.round((d % 60e3) / 1000)} s`;
  return `${Math.floor(d / 3600e3)} h ${Math.round((d % 3600e3) / 60e3)} min`;
}

/** The spans to draw: attempts, plus back-off gaps between attempts of the same node and phase. */
export function timelineSpans(steps, execution, now) {
  const spans = [];
  const last = new Map();
  for (const s of steps) {
    const start = ms(s.started_at);
    const open = !s.finished_at;
    const end = open ? Math.max(start, now) : ms(s.finished_at);
    const key = `${s.execution || ""}|${s.node_id}|${s.phase}`;
    const prev = last.get(key);
    if (prev && s.attempt > prev.attempt && start > prev.end) {
      spans.push({ kind: "backoff", row: s.node_id, phase: s.phase, start: prev.end, end: start, attempt: s.attempt });
    }
    let kind = "attempt";
    if (s.node_type === "sleep") kind = "sleep";
    else if (s.node_type === "async_task") kind = "wait";
    else if (s.node_type === "parallel") kind = "fork";
    const span = { kind, row: s.node_id, phase: s.phase, start, end, open, step: s, attempt: s.attempt };
    spans.push(span);
    last.set(key, span);
  }
  // A retry back-off in progress: the execution sleeps after a failed attempt.
  const own = spans.filter((s) => s.step && (!s.step.execution || s.step.execution === execution.id));
  const tail = own[own.length - 1];
  if (execution.status === "SLEEPING" && tail && tail.step.status === "failed" && now > tail.end) {
    spans.push({ kind: "backoff", row: tail.row, phase: tail.phase, start: tail.end, end: now, open: true, attempt: tail.attempt + 1 });
  }
  return spans;
}

function tickStep(span) {
  return TICKS_MS.find((t) => span / t <= 8) || TICKS_MS[TICKS_MS.length - 1];
}

function tickLabel(t, step) {
  if (step < 1000) return `${t} ms`;
  if (step < 60e3) return `${t / 1000} s`;
  if (step < 3600e3) return `${t / 60e3} min`;
  return `${t / 3600e3} h`;
}

function requestLine(req) {
  if (!req || typeof req !== "object") return "";
  return `${req.method || ""} ${req.url || ""}`.trim();
}

function snippet(value, n = 160) {
  if (value === null || value === undefined) return "";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}

/** The hover text of a span (plain text; the tooltip escapes it). */
export function spanSummary(span) {
  const s = span.step;
  const dur = fmtDuration(span.end - span.start) + (span.open ? " so far" : "");
  if (!s) return [`${span.row} · retry back-off before attempt ${span.attempt}`, dur];
  const where = s.branch ? ` · branch ${s.branch}` : "";
  const lines = [`${s.node_id}${where} · ${s.phase} · attempt ${s.attempt} · ${s.status}`, dur];
  const line = requestLine(s.request);
  if (line) lines.push(`→ ${line}`);
  if (s.request && s.request.body !== undefined) lines.push(`  body ${snippet(s.request.body, 120)}`);
  if (s.response_status != null) lines.push(`← ${s.response_status} ${snippet(s.response_body)}`);
  if (s.detail) lines.push(`detail ${snippet(s.detail, 120)}`);
  if (s.error) lines.push(`error ${snippet(s.error.message || s.error, 160)}`);
  return lines;
}

/**
 * Rows in drawing order, each {id, type, branch, depth, fork, bars}: the main line's nodes in the
 * order first entered; the rows of a parallel node's branches right under that node's row
 * (branch by branch, in the order of its `branches`), nested forks one level deeper.
 */
export function orderRows(rows, spec) {
  const forkOf = new Map(); // branch head -> {fork node id, position}
  for (const [id, node] of Object.entries((spec && spec.nodes) || {})) {
    if (node && node.type === "parallel" && Array.isArray(node.branches)) node.branches.forEach((b, i) => forkOf.set(b, { fork: id, i }));
  }
  const byId = new Map(rows.map((r) => [r.id, r]));
  const children = new Map();
  const top = [];
  rows.forEach((row, order) => {
    const f = row.branch ? forkOf.get(row.branch) : null;
    const parent = f && f.fork !== row.id ? byId.get(f.fork) : null;
    if (!parent) return top.push(row);
    if (!children.has(parent.id)) children.set(parent.id, []);
    children.get(parent.id).push({ row, key: [f.i, order] });
  });
  const out = [];
  const visit = (row, depth) => {
    row.depth = depth;
    out.push(row);
    const kids = (children.get(row.id) || []).sort((a, b) => a.key[0] - b.key[0] || a.key[1] - b.key[1]);
    row.fork = kids.length > 0;
    kids.forEach(({ row: kid }) => visit(kid, depth + 1));
  };
  top.forEach((row) => visit(row, 0));
  return out;
}

/**
 * Render the timeline into `root`; returns the spans (indexable by data-span). `marks` are the operator
 * actions (history events of kind "operator"): a row of ◆ at their times, keyed `op:<id>` like the history.
 */
export function renderTimeline(root, { steps, execution, now, spec, marks = [] }) {
  const spans = timelineSpans(steps, execution, now);
  if (!spans.length && !marks.length) {
    root.innerHTML = `<p class="empty">No steps yet.</p>`;
    return spans;
  }
  // A re-run (a new execution) may come long after the end: it does not stretch the axis, it sits at its edge.
  const onAxis = marks.filter((m) => m.action !== "rerun").map((m) => ms(m.at));
  const t0 = Math.min(ms(execution.started_at) || ms(execution.created_at), ...spans.map((s) => s.start), ...onAxis);
  const endMark = execution.finished_at ? ms(execution.finished_at) : execution.is_final ? 0 : now;
  const t1 = Math.max(t0 + 1, endMark || 0, ...spans.map((s) => s.end), ...onAxis);
  const total = t1 - t0;
  const pct = (t) => ((t - t0) / total) * 100;

  let rows = [];
  const rowIndex = new Map();
  for (const s of spans) {
    if (!rowIndex.has(s.row)) {
      rowIndex.set(s.row, rows.length);
      rows.push({ id: s.row, type: s.step ? s.step.node_type : "", branch: "", bars: [] });
    }
    const row = rows[rowIndex.get(s.row)];
    row.bars.push(s);
    // A branch's node keeps its branch's row even when the parent compensates it after the join.
    if (!row.branch && s.step && s.step.branch && s.phase === "forward") row.branch = s.step.branch;
  }
  rows = orderRows(rows, spec);

  const step = tickStep(total);
  const ticks = [];
  for (let t = 0; t <= total; t += step) ticks.push(`<span class="tick" style="left:${(t / total) * 100}%">${tickLabel(t, step)}</span>`);

  const comp = spans.find((s) => s.phase === "compensation");
  const bandAt = (label) => comp
    ? `<div class="phase-band" style="left:${pct(comp.start)}%;width:${100 - pct(comp.start)}%">${label ? "<span>compensation</span>" : ""}</div>`
    : "";
  const band = bandAt(false);

  const html = [`<div class="tl-row tl-axis"><div class="tl-label">node</div><div class="tl-track">${bandAt(true)}${ticks.join("")}</div></div>`];
  rows.forEach((row) => {
    const bars = row.bars.map((s) => {
      const i = spans.indexOf(s);
      const st = s.step;
      const cls = ["bar", `kind-${s.kind}`, `phase-${s.phase}`, st ? `status-${st.status}` : "", s.open ? "open" : "", st ? "attempt" : ""].join(" ");
      const left = pct(s.start), width = Math.max(0, pct(s.end) - left);
      const mark = st && ["failed", "timed_out"].includes(st.status) ? "✕" : st && st.status === "cancelled" ? "⦸" : "";
      const label = st ? `${s.phase === "compensation" ? "↶ " : ""}#${st.attempt}${mark ? " " + mark : ""}` : "back-off";
      return `<div class="${cls}" data-span="${i}" ${st ? `data-seq="${st.seq}" data-step="${esc(stepKey(st))}"` : ""} style="left:${left}%;width:${width}%"><span>${esc(label)}</span></div>`;
    });
    const cls = ["tl-row", row.depth ? "tl-branch" : "", row.fork ? "tl-fork" : ""].join(" ");
    const tag = row.branch ? `<span class="branch-tag" title="branch ${esc(row.branch)}">${esc(row.branch)}</span>` : "";
    const title = row.branch ? `branch ${row.branch} · node ${row.id}` : row.id;
    html.push(
      `<div class="${cls}" data-node="${esc(row.id)}" data-branch="${esc(row.branch)}" style="--depth:${row.depth}">` +
        `<div class="tl-label" title="${esc(title)}">${tag}${esc(row.id)} <small>${esc(row.type)}</small></div>` +
        `<div class="tl-track">${band}${bars.join("")}</div></div>`,
    );
  });
  if (marks.length) html.push(operatorRow(marks, (t) => Math.min(100, Math.max(0, pct(t))), band));
  root.innerHTML = html.join("");
  return spans;
}

function operatorRow(marks, pct, band) {
  const diamonds = marks.map((m) => {
    const left = pct(ms(m.at));
    return `<div class="bar kind-operator" data-step="${esc(m.step)}" title="${esc(m.title)}" style="left:${left}%"><span>◆ ${esc(m.action)}</span></div>`;
  });
  return `<div class="tl-row tl-operator" data-node=""><div class="tl-label">operator <small>actions</small></div><div class="tl-track">${band}${diamonds.join("")}</div></div>`;
}
