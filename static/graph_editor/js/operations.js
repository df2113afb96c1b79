// The operator's actions on the execution page: shows the buttons that apply now (the server says which,
// in `operations`), opens each one's confirmation dialog, and fills the dialogs with what they need.
// The forms themselves are plain POSTs with the CSRF token (templates/graph_editor/execution_actions.html).

import { esc } from "./graph.js";

export function setUpOperations(root) {
  if (!root) return;
  root.addEventListener("click", (ev) => {
    const opener = ev.target.closest("[data-dialog]");
    if (opener) document.getElementById(opener.dataset.dialog).showModal();
    const closer = ev.target.closest("[data-close]");
    if (closer) closer.closest("dialog").close();
  });
  // A textarea of JSON that does not parse gets a red border and blocks its form.
  root.addEventListener("input", (ev) => {
    if (ev.target.tagName === "TEXTAREA") ev.target.classList.toggle("invalid", !parses(ev.target.value));
  });
  root.addEventListener("submit", (ev) => {
    const bad = [...ev.target.querySelectorAll("textarea")].some((t) => !parses(t.value));
    if (bad) ev.preventDefault();
  });
}

function parses(text) {
  if (!text.trim()) return true;
  try {
    const value = JSON.parse(text);
    return value !== null && typeof value === "object" && !Array.isArray(value);
  } catch {
    return false;
  }
}

/** Show the buttons of the actions that apply to `data` (the page's payload), and fill the dialogs. */
export function updateOperations(root, data) {
  if (!root || !root.querySelector(".op-buttons")) return;
  const ops = new Set(data.operations.ops);
  root.querySelectorAll(".op-buttons [data-op]").forEach((b) => (b.hidden = !ops.has(b.dataset.op)));
  root.querySelector(".op-none").hidden = ops.size > 0;
  root.querySelectorAll("[data-fill=failed-node]").forEach((el) => (el.textContent = data.operations.failed_node || "the failed node"));
  const input = root.querySelector("[data-fill=input]");
  if (input && !input.dataset.filled) {
    input.value = JSON.stringify(data.execution.input, null, 2);
    input.dataset.filled = "true";
  }
  const select = root.querySelector("[data-fill=callback-targets]");
  const targets = data.operations.callback_targets;
  const ids = targets.map((t) => t.id).join(",");
  if (select && select.dataset.ids !== ids) {
    select.innerHTML = targets.map((t) => `<option value="${esc(t.id)}">${esc(t.label)}</option>`).join("");
    select.dataset.ids = ids;
  }
}
