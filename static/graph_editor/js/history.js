// The event history: one row per event the server derived (graph_editor/history.py), in time order.
// A row opens to show its bodies (request, response, callback body, detail, error; secrets masked as
// stored). Each row carries its step's key (`execution:seq`, or `op:<id>` for an operator action), the
// same key the timeline's bars carry, so the page links the two both ways.

import { esc } from "./graph.js";
import { fmtDuration, fmtUtc, ms } from "./timeline.js";

const KIND_LABELS = {
  attempt: "attempt", compensation: "compensation", notify: "notify", wait: "wait", callback: "callback",
  timeout: "timeout", sleep: "sleep", timer: "timer fired", fork: "parallel", join: "join", decision: "switch",
  retry: "retry scheduled", operator: "operator",
};

function pre(value) {
  return `<pre>${esc(JSON.stringify(value, null, 2))}</pre>`;
}

function bodies(ev) {
  const parts = [];
  if (ev.request) parts.push(`<section><h4>Request (secrets masked)</h4>${pre(ev.request)}</section>`);
  if (ev.response) {
    parts.push(`<section><h4>Response ${esc(ev.response.status ?? "")}</h4><h5>headers</h5>${pre(ev.response.headers)}<h5>body</h5>${pre(ev.response.body)}</section>`);
  }
  if (ev.body !== undefined) parts.push(`<section><h4>Callback body</h4>${pre(ev.body)}</section>`);
  if (ev.detail && Object.keys(ev.detail).length) parts.push(`<section><h4>Detail</h4>${pre(ev.detail)}</section>`);
  if (ev.error) parts.push(`<section class="has-error"><h4>Error</h4>${pre(ev.error)}</section>`);
  return parts.join("");
}

/** An operator action's link (a re-run: the new execution's page), after its title. */
function link(ev) {
  return ev.link ? `: <a class="ev-link" href="${esc(ev.link.url)}">new execution <code>${esc(ev.link.text)}</code></a>` : "";
}

function duration(ev, now) {
  if (ev.duration_ms != null) return fmtDuration(ev.duration_ms);
  if (ev.kind === "operator" || ev.kind === "callback" || ev.kind === "timer" || ev.kind === "timeout" || ev.kind === "join") return "";
  return ev.end ? "" : `${fmtDuration(now - ms(ev.at))} so far`;
}

/** A stable id of an event across refreshes: its step key, kind and time. */
export function eventId(ev) {
  return `${ev.step}|${ev.kind}|${ev.at}`;
}

/** Render the history into `root`; rows whose id is in `open` stay open, `selected` (a step key) is marked. */
export function renderHistory(root, { history, startedAt, now, open, selected }) {
  if (!history.length) {
    root.innerHTML = '<p class="empty">No events yet.</p>';
    return;
  }
  const t0 = ms(startedAt) || ms(history[0].at);
  const rows = history.map((ev, i) => {
    const id = eventId(ev);
    const isOpen = open.has(id);
    const body = bodies(ev);
    const cls = ["ev", `ev-${ev.kind}`, ev.status ? `ev-status-${ev.status}` : "", ev.step === selected ? "selected" : "", body ? "has-body" : ""].join(" ");
    const where = ev.branch ? `<span class="branch-tag">${esc(ev.branch)}</span> ` : "";
    const row = `<tr class="${cls}" data-ev="${i}" data-id="${esc(id)}" data-step="${esc(ev.step)}" data-kind="${esc(ev.kind)}" tabindex="0">
      <td class="ev-time" title="${esc(fmtUtc(ev.at))}">${esc(fmtUtc(ev.at).slice(11))} <small class="muted">+${esc(fmtDuration(ms(ev.at) - t0) || "0 ms")}</small></td>
      <td><span class="ev-kind">${esc(KIND_LABELS[ev.kind] || ev.kind)}</span></td>
      <td class="ev-title">${body ? `<span class="ev-toggle">${isOpen ? "▾" : "▸"}</span> ` : ""}${where}${esc(ev.title)}${link(ev)}</td>
      <td class="ev-status">${esc(ev.status || "")}</td>
      <td class="ev-duration">${esc(duration(ev, now))}</td></tr>`;
    return isOpen && body ? row + `<tr class="ev-body" data-for="${esc(id)}"><td colspan="5"><div class="detail-grid">${body}</div></td></tr>` : row;
  });
  root.innerHTML = `<table class="history-table"><thead><tr><th>time</th><th>event</th><th>what</th><th>status</th><th>duration</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}
