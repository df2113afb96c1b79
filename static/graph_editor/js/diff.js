// The version diff page: two versions of a definition side by side. Both graphs are drawn
// with the nodes added, removed and changed marked, and a table lists every changed field.
// Data: GET /api/v1/definitions/{name}/versions/{a}/diff/{b}/ and .../versions/{n}/ (the session).

import { getJSON } from "./api.js";
import { GraphFrame, esc } from "./graph.js";
import { authorNode } from "./model.js";

const page = document.getElementById("diff");
const config = JSON.parse(document.getElementById("diff-config").textContent);
const fill = (url, values) => url.replace(/\{(\w+)\}/g, (_, k) => encodeURIComponent(values[k]));
const fromSelect = page.querySelector("select[name=from]");
const toSelect = page.querySelector("select[name=to]");
const specs = new Map(); // version -> normalized spec

function side(cls) {
  const root = page.querySelector(`.side-${cls}`);
  // Both sides use the automatic layout (hand-placed nodes differ between versions and would hide the changes).
  return { root, graph: new GraphFrame(root.querySelector("svg")) };
}
const sides = { from: side("from"), to: side("to") };

for (const select of [fromSelect, toSelect]) {
  select.innerHTML = config.versions.map((v) => `<option value="${v}">v${v}</option>`).join("");
  select.addEventListener("change", () => load(Number(fromSelect.value), Number(toSelect.value)));
}
page.querySelector("[data-action=swap]").addEventListener("click", () => load(Number(toSelect.value), Number(fromSelect.value)));

async function spec(version) {
  if (!specs.has(version)) specs.set(version, (await getJSON(fill(config.urls.version, { n: version }))).spec);
  return specs.get(version);
}

function cell(value, present) {
  if (!present) return '<span class="absent">(absent)</span>';
  return `<pre>${esc(JSON.stringify(value, null, 2))}</pre>`;
}

function drawSide(which, version, specValue, classes) {
  const s = sides[which];
  s.root.querySelector(".side-title").textContent = `v${version}`;
  s.root.querySelector(".editor-link").href = fill(config.urls.editor, { n: version });
  s.graph.draw({ nodes: specValue.nodes || {}, start: specValue.start, nodeClass: (id) => classes.get(id) || "" });
  s.graph.fit(0.45);
}

function renderTable(diff, a, b) {
  const rows = [];
  const fieldRows = (fields, prefix) =>
    Object.entries(fields).map(([field, change]) =>
      `<tr class="field-row" data-field="${esc(prefix + field)}"><td><code>${esc(field || "(whole value)")}</code></td>` +
      `<td class="from">${cell(change.from, change.from !== null)}</td><td class="to">${cell(change.to, change.to !== null)}</td></tr>`);
  if (Object.keys(diff.top_level).length) {
    rows.push('<tr class="node-head" data-node=""><td colspan="3">top level</td></tr>', ...fieldRows(diff.top_level, ""));
  }
  for (const id of diff.removed) {
    rows.push(`<tr class="node-head removed" data-node="${esc(id)}"><td>node <code>${esc(id)}</code> <span class="chip removed">removed</span></td>` +
      `<td class="from">${cell(authorNode(specs.get(a).nodes[id]), true)}</td><td class="to">${cell(null, false)}</td></tr>`);
  }
  for (const id of diff.added) {
    rows.push(`<tr class="node-head added" data-node="${esc(id)}"><td>node <code>${esc(id)}</code> <span class="chip added">added</span></td>` +
      `<td class="from">${cell(null, false)}</td><td class="to">${cell(authorNode(specs.get(b).nodes[id]), true)}</td></tr>`);
  }
  for (const node of diff.changed) {
    rows.push(`<tr class="node-head changed" data-node="${esc(node.id)}"><td colspan="3">node <code>${esc(node.id)}</code> <span class="chip changed">changed</span></td></tr>`,
      ...fieldRows(node.fields, `${node.id}.`));
  }
  if (!rows.length) rows.push(`<tr><td colspan="3" class="muted">No change between v${a} and v${b}.</td></tr>`);
  page.querySelector(".diff-table tbody").innerHTML = rows.join("");
  page.querySelector(".th-from").textContent = `v${a}`;
  page.querySelector(".th-to").textContent = `v${b}`;
}

function renderSummary(diff) {
  const n = (list, cls, sign, word) => (list.length ? `<span class="chip ${cls}">${sign}${list.length} ${word}: ${list.map(esc).join(", ")}</span>` : "");
  const top = Object.keys(diff.top_level);
  page.querySelector(".diff-summary").innerHTML =
    n(diff.added, "added", "+", "added") + n(diff.removed, "removed", "−", "removed") +
    n(diff.changed.map((c) => c.id), "changed", "~", "changed") + (top.length ? `<span class="chip top">top level: ${top.map(esc).join(", ")}</span>` : "") ||
    '<span class="chip top">no change</span>';
}

let loadSeq = 0;
async function load(a, b) {
  const seq = ++loadSeq;
  fromSelect.value = String(a);
  toSelect.value = String(b);
  page.dataset.loaded = "";
  const diffUrl = fill(config.urls.diff, { a, b });
  page.querySelector(".api-link").href = diffUrl;
  history.replaceState(null, "", fill(config.urls.page, { a, b }));
  let diff;
  try {
    [diff] = await Promise.all([getJSON(diffUrl), spec(a), spec(b)]);
  } catch (err) {
    page.querySelector(".diff-summary").innerHTML = `<span class="chip removed">could not load: ${esc(err.message)}</span>`;
    return;
  }
  if (seq !== loadSeq) return; // a newer choice is loading
  const fromClasses = new Map([...diff.removed.map((id) => [id, "diff-removed"]), ...diff.changed.map((c) => [c.id, "diff-changed"])]);
  const toClasses = new Map([...diff.added.map((id) => [id, "diff-added"]), ...diff.changed.map((c) => [c.id, "diff-changed"])]);
  drawSide("from", a, specs.get(a), fromClasses);
  drawSide("to", b, specs.get(b), toClasses);
  renderSummary(diff);
  renderTable(diff, a, b);
  page.dataset.loaded = `${a}-${b}`;
}

// A click on a node in either graph shows its rows in the table.
page.querySelector(".diff-sides").addEventListener("click", (ev) => {
  const g = ev.target.closest(".node");
  const row = g && page.querySelector(`.diff-table tr.node-head[data-node="${CSS.escape(g.dataset.id)}"]`);
  if (row) {
    row.scrollIntoView({ block: "center" });
    row.classList.add("flash");
    setTimeout(() => row.classList.remove("flash"), 800);
  }
});

load(config.from, config.to).finally(() => (page.dataset.ready = "true"));
