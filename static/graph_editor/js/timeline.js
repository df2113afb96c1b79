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

/** An instant as the executions list writes it, "2026-11-30 11:02:46 UTC": every page in one zone. */
export function fmtUtc(iso) {
  return new Date(iso).toISOString().slice(0, 19).replace("T", " ") + " UTC";
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
  markSkipped(spans, execution);
  // A retry back-off in progress: the execution sleeps after a failed attempt.
  const own = spans.filter((s) => s.step && (!s.step.execution || s.step.execution === execution.id));
  const tail = own[own.length - 1];
  if (execution.status === "SLEEPING" && tail && tail.step.status === "failed" && now > tail.end) {
    spans.push({ kind: "backoff", row: tail.row, phase: tail.phase, start: tail.end, end: now, open: true, attempt: tail.attempt + 1 });
  }
  return spans;
}

/**
 * A compensation an operator skipped (retry with {"skip": true}) leaves its failed step and no
 * later attempt: it is the last attempt of its node's compensation, failed, and yet its execution
 * went on (a later step) or did not end FAILED.
 */
function markSkipped(spans, execution) {
  const attempts = spans.filter((s) => s.step);
  attempts.forEach((span, i) => {
    const st = span.step;
    if (st.phase !== "compensation" || st.status !== "failed") return;
    const same = (o) => (o.step.execution || "") === (st.execution || "");
    const later = attempts.slice(i + 1).filter(same);
    if (later.some((o) => o.step.node_id === st.node_id && o.step.phase === st.phase)) return;
    const mine = !st.execution || st.execution === execution.id;
    if (later.length || (mine && execution.is_final && execution.status !== "FAILED")) span.skipped = true;
  });
}

function tickStep(span) {
  return TICKS_MS.find((t) => span / t <= 8) || TICKS_MS[TICKS_MS.length - 1];
}

/** Time since the start on the axis: "350 ms", "12.5 s", "24 h 10 min 3 s" (as precise as the tick step). */
export function tickLabel(t, step) {
  if (t === 0) return "0";
  if (t < 1000) return `${t} ms`;
  const decimals = step >= 1000 ? 0 : step >= 100 ? 1 : step >= 10 ? 2 : 3;
  const h = Math.floor(t / 3600e3), m = Math.floor((t % 3600e3) / 60e3), sec = (t % 60e3) / 1000;
  const parts = [];
  if (h) parts.push(`${h} h`);
  if (m || (h && sec)) parts.push(`${m} min`);
  if (sec || !parts.length) parts.push(`${sec.toFixed(decimals)} s`);
  return parts.join(" ");
}

/** A duration in its largest unit, rounded: the label of a compressed stretch ("10 min", "1.5 d"). */
export function fmtCoarse(d) {
  const units = [[86400e3, "d"], [3600e3, "h"], [60e3, "min"], [1e3, "s"]];
  for (const [size, name] of units) if (d >= size) return `${+(d / size).toFixed(d / size < 10 ? 1 : 0)} ${name}`;
  return `${Math.round(d)} ms`;
}

// An idle stretch (no attempt starts or ends) is compressed when it is at least this long and
// takes at least IDLE_SHARE of the time not yet compressed: a 10-minute sleep between 2 s of
// calls, and then a day-long wait beside it, both shrink, while a 300 ms back-off between
// 200 ms calls stays to scale.
const MIN_IDLE_MS = 5000;
const IDLE_SHARE = 0.2;
// The width of one compressed stretch, as a share of the whole axis (less when there are many).
const GAP_WIDTH = 0.07;

/**
 * A piecewise-linear time axis from t0 to t1: {x(t) -> 0..1, gaps: [{start, end}], t0, t1, busyMs}.
 * Idle stretches between the instants of `spans` (starts and ends) are compressed to a fixed width.
 */
export function timeScale(spans, t0, t1) {
  const instants = [...new Set([t0, t1, ...spans.flatMap((s) => [s.start, s.end])])]
    .filter((t) => isFinite(t) && t >= t0 && t <= t1)
    .sort((a, b) => a - b);
  const stretches = [];
  for (let i = 1; i < instants.length; i++) stretches.push({ start: instants[i - 1], end: instants[i] });
  let remaining = t1 - t0;
  const idle = new Set();
  for (const g of [...stretches].sort((a, b) => b.end - b.start - (a.end - a.start))) {
    const len = g.end - g.start;
    if (len < MIN_IDLE_MS || len < IDLE_SHARE * remaining) break;
    idle.add(g);
    remaining -= len;
  }
  const share = Math.min(GAP_WIDTH, 0.5 / Math.max(1, idle.size));
  const gapWeight = remaining > 0 ? (share * remaining) / (1 - share * idle.size) : 1;
  let offset = 0;
  const segments = stretches.map((g) => {
    const w = idle.has(g) ? gapWeight : g.end - g.start;
    const seg = { ...g, idle: idle.has(g), offset, w };
    offset += w;
    return seg;
  });
  const total = offset || 1;
  const x = (t) => {
    if (!segments.length || t <= t0) return 0;
    if (t >= t1) return 1;
    let lo = 0, hi = segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (segments[mid].end < t) lo = mid + 1;
      else hi = mid;
    }
    const seg = segments[lo];
    const f = seg.end > seg.start ? (t - seg.start) / (seg.end - seg.start) : 0;
    return (seg.offset + f * seg.w) / total;
  };
  return { x, t0, t1, busyMs: remaining, busyShare: segments.filter((s) => !s.idle).reduce((a, s) => a + s.w, 0) / total, segments, gaps: segments.filter((s) => s.idle).map(({ start, end }) => ({ start, end })) };
}

/** Ticks on the time-to-scale stretches inside the visible window: [{t (ms since t0), x, label}]. */
export function timeTicks(scale, view) {
  const visible = (view.to - view.from) * (scale.busyMs / Math.max(scale.busyShare, 1e-9));
  const step = tickStep(Math.max(1, visible));
  const minDx = (view.to - view.from) * 0.06;
  const ticks = [];
  for (const seg of scale.segments) {
    if (seg.idle) continue;
    for (let t = Math.ceil((seg.start - scale.t0) / step) * step; t <= seg.end - scale.t0; t += step) {
      const x = scale.x(scale.t0 + t);
      if (x < view.from || x > view.to) continue;
      if (ticks.length && x - ticks[ticks.length - 1].x < minDx) continue;
      ticks.push({ t, x, label: tickLabel(t, step) });
    }
  }
  return ticks;
}

export const MAX_ZOOM = 500;

/** The window {from, to} (shares of the whole axis) zoomed by `factor` around `at` (a share of the window). */
export function zoomView(view, factor, at = 0.5) {
  const width = Math.min(1, Math.max(1 / MAX_ZOOM, (view.to - view.from) / factor));
  const pivot = view.from + at * (view.to - view.from);
  return clampView({ from: pivot - at * width, to: pivot - at * width + width });
}

/** The window moved by `delta` window widths (negative: earlier). */
export function panView(view, delta) {
  const width = view.to - view.from;
  return clampView({ from: view.from + delta * width, to: view.to + delta * width });
}

function clampView({ from, to }) {
  const width = Math.min(1, to - from);
  const start = Math.min(1 - width, Math.max(0, from));
  return { from: start, to: start + width };
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
  const lines = [`${s.node_id}${where} · ${s.phase} · attempt ${s.attempt} · ${s.status}${span.skipped ? " (skipped by an operator)" : ""}`, dur];
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

/** The text on a bar: the attempt, a mark for its outcome, and how long it took. */
export function barLabel(span) {
  const dur = fmtDuration(span.end - span.start);
  const st = span.step;
  if (!st) return `back-off ${dur}`;
  let mark = "";
  if (span.skipped) mark = " ↷ skipped";
  else if (["failed", "timed_out"].includes(st.status)) mark = " ✕";
  else if (st.status === "cancelled") mark = " ⊘";
  return `${span.phase === "compensation" ? "↶ " : ""}#${st.attempt}${mark} · ${dur}${span.open ? "…" : ""}`;
}

/** Rows of bars, each {id, type, branch, depth, fork, bars}, in drawing order. */
function barRows(spans, spec) {
  const rows = [];
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
  return orderRows(rows, spec);
}

/**
 * Render the timeline into `root`; returns the spans (indexable by data-span). `view` is the
 * visible window of the axis ({from, to}, shares of it; default all of it). `marks` are the operator
 * actions (history events of kind "operator"): a row of ◆ at their times, keyed `op:<id>` like the history.
 */
export function renderTimeline(root, { steps, execution, now, spec, view = { from: 0, to: 1 }, marks = [] }) {
  const spans = timelineSpans(steps, execution, now);
  if (!spans.length && !marks.length) {
    root.innerHTML = `<p class="empty">No steps yet.</p>`;
    return spans;
  }
  // A re-run (a new execution) may come long after the end: it does not stretch the axis, it sits at its edge.
  const onAxis = marks.filter((m) => m.action !== "rerun").map((m) => ms(m.at));
  const t0 = Math.min(ms(execution.started_at) || ms(execution.created_at), ...spans.map((s) => s.start), ...onAxis);
  const running = !execution.is_final;
  const endMark = execution.finished_at ? ms(execution.finished_at) : running ? now : 0;
  const t1 = Math.max(t0 + 1, endMark || 0, ...spans.map((s) => s.end), ...onAxis);
  const scale = timeScale(spans, t0, t1);
  const width = view.to - view.from;
  const pct = (t) => ((scale.x(t) - view.from) / width) * 100;
  const box = (a, b) => `left:${pct(a)}%;width:${Math.max(0, pct(b) - pct(a))}%`;

  const ticks = timeTicks(scale, view).map((t) => `<span class="tick" style="left:${((t.x - view.from) / width) * 100}%">${t.label}</span>`);
  const gaps = scale.gaps.map((g) => `<div class="tl-gap" style="${box(g.start, g.end)}" title="${esc(fmtDuration(g.end - g.start))} idle, compressed"></div>`).join("");
  const gapLabels = scale.gaps.map((g) => `<div class="tl-gap tl-gap-label" style="${box(g.start, g.end)}" title="${esc(fmtDuration(g.end - g.start))} idle, compressed"><span>≈ ${esc(fmtCoarse(g.end - g.start))}</span></div>`).join("");
  const nowLine = running ? `<div class="now-line" style="left:${pct(now)}%"></div>` : "";
  const nowLabel = running ? `<div class="now-line now-label" style="left:${pct(now)}%"><span>now</span></div>` : "";
  const comp = spans.find((s) => s.phase === "compensation");
  const band = (label) => (comp ? `<div class="phase-band" style="${box(comp.start, t1)}">${label ? "<span>compensation</span>" : ""}</div>` : "");
  const under = band(false) + gaps;

  const html = [`<div class="tl-row tl-axis"><div class="tl-label">node</div><div class="tl-track">${band(true)}${gapLabels}${ticks.join("")}${nowLabel}</div></div>`];
  barRows(spans, spec).forEach((row) => {
    const bars = row.bars.map((s) => {
      const st = s.step;
      const cls = ["bar", `kind-${s.kind}`, `phase-${s.phase}`, st ? `status-${st.status}` : "", s.skipped ? "skipped" : "", s.open ? "open" : "", st ? "attempt" : ""].join(" ");
      const data = st ? `data-seq="${st.seq}" data-step="${esc(stepKey(st))}"` : "";
      return `<div class="${cls}" data-span="${spans.indexOf(s)}" ${data} style="${box(s.start, s.end)}"><span>${esc(barLabel(s))}</span></div>`;
    });
    const cls = ["tl-row", row.depth ? "tl-branch" : "", row.fork ? "tl-fork" : ""].join(" ");
    const tag = row.branch ? `<span class="branch-tag" title="branch ${esc(row.branch)}">${esc(row.branch)}</span>` : "";
    const title = row.branch ? `branch ${row.branch} · node ${row.id}` : row.id;
    html.push(
      `<div class="${cls}" data-node="${esc(row.id)}" data-branch="${esc(row.branch)}" style="--depth:${row.depth}">` +
        `<div class="tl-label" title="${esc(title)}">${tag}${esc(row.id)} <small>${esc(row.type)}</small></div>` +
        `<div class="tl-track">${under}${bars.join("")}${nowLine}</div></div>`,
    );
  });
  if (marks.length) html.push(operatorRow(marks, pct, under + nowLine));
  root.innerHTML = html.join("");
  root.dataset.gaps = String(scale.gaps.length);
  return spans;
}

// A ◆'s label: the action in a few words (its row in the history, and the ◆'s tooltip, say it in full).
const OPERATOR_LABELS = {
  cancel: "cancel", retry: "retry", retry_skip: "retry, skip", wake: "wake", rerun: "re-run",
  complete_callback: "callback by hand",
};

/**
 * The operator's row: a ◆ per action at its time (a re-run after the end sits at the axis's end). A mark outside
 * the visible window is not shown (class off-view): pinned to an edge, it would show a time that is not its own;
 * it keeps its place, so the page can pan to it. Near the right edge the label goes on the left of its ◆, so the
 * track does not clip it.
 */
function operatorRow(marks, pct, under) {
  const diamonds = marks.map((m) => {
    const left = pct(ms(m.at));
    const cls = ["bar", "kind-operator", left > 85 ? "at-end" : "", left >= -0.01 && left <= 100.01 ? "" : "off-view"].join(" ");
    const name = esc(OPERATOR_LABELS[m.action] || m.action);
    const label = left > 85 ? `${name} ◆` : `◆ ${name}`;
    return `<div class="${cls}" data-step="${esc(m.step)}" title="${esc(m.title)}" style="left:${left}%"><span>${label}</span></div>`;
  });
  return `<div class="tl-row tl-operator" data-node=""><div class="tl-label">operator <small>actions</small></div><div class="tl-track">${under}${diamonds.join("")}</div></div>`;
}
