// The execution page's timeline spans (static/graph_editor/js/timeline.js), without a browser.

import assert from "node:assert/strict";
import { test } from "node:test";

import { fmtDuration, timelineSpans } from "../../static/graph_editor/js/timeline.js";

const T0 = Date.parse("2025-01-01T12:00:00Z");
const at = (s) => new Date(T0 + s * 1000).toISOString();
const step = (seq, node_id, attempt, from, to, extra = {}) => ({
  seq, node_id, attempt, phase: "forward", node_type: "task", status: "succeeded",
  started_at: at(from), finished_at: to === null ? null : at(to), ...extra,
});

test("one attempt span per step, and a back-off span between attempts of one node", () => {
  const steps = [step(1, "a", 1, 0, 1), step(2, "b", 1, 1, 2, { status: "failed" }), step(3, "b", 2, 5, 6)];
  const spans = timelineSpans(steps, { id: "e", status: "SUCCEEDED" }, T0 + 10e3);
  assert.deepEqual(
    spans.map((s) => [s.kind, s.row, s.attempt, (s.start - T0) / 1000, (s.end - T0) / 1000]),
    [["attempt", "a", 1, 0, 1], ["attempt", "b", 1, 1, 2], ["backoff", "b", 2, 2, 5], ["attempt", "b", 2, 5, 6]],
  );
});

test("sleeps, waits and forks are spans of their own kind; an open step runs until now", () => {
  const steps = [
    step(1, "nap", 1, 0, 3, { node_type: "sleep" }),
    step(2, "fork", 1, 3, 4, { node_type: "parallel" }),
    step(3, "pix", 1, 4, null, { node_type: "async_task", status: "waiting" }),
  ];
  const spans = timelineSpans(steps, { id: "e", status: "WAITING" }, T0 + 9e3);
  assert.deepEqual(spans.map((s) => s.kind), ["sleep", "fork", "wait"]);
  assert.equal(spans[2].open, true);
  assert.equal((spans[2].end - T0) / 1000, 9);
});

test("an execution sleeping after a failed attempt shows the back-off in progress", () => {
  const steps = [step(1, "a", 1, 0, 1, { status: "failed" })];
  const spans = timelineSpans(steps, { id: "e", status: "SLEEPING" }, T0 + 4e3);
  const last = spans[spans.length - 1];
  assert.deepEqual([last.kind, last.row, last.attempt, last.open], ["backoff", "a", 2, true]);
  assert.deepEqual([(last.start - T0) / 1000, (last.end - T0) / 1000], [1, 4]);
});

test("attempts of the same node in different branches are not back-offs of each other", () => {
  const steps = [
    step(1, "b", 1, 0, 1, { execution: "branch-1", status: "failed" }),
    step(1, "b", 2, 3, 4, { execution: "branch-2" }),
  ];
  const spans = timelineSpans(steps, { id: "parent", status: "SUCCEEDED" }, T0 + 5e3);
  assert.deepEqual(spans.map((s) => s.kind), ["attempt", "attempt"]);
});

test("durations read in the unit that fits", () => {
  assert.equal(fmtDuration(250), "250 ms");
  assert.equal(fmtDuration(2500), "2.50 s");
  assert.equal(fmtDuration(90e3), "1 min 30 s");
  assert.equal(fmtDuration(2 * 3600e3 + 60e3), "2 h 1 min");
  assert.equal(fmtDuration(NaN), "");
});

test("instants are written in UTC as the executions list writes them", async () => {
  const { fmtUtc } = await import("../../static/graph_editor/js/timeline.js");
  assert.equal(fmtUtc("2026-11-30T12:02:46.123+01:00"), "2026-11-30 11:02:46 UTC");
});
