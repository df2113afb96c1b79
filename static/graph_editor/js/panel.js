// The side panel: inputs for the selected node, per node type. Inputs write straight into the
// node (through onChange) and are rebuilt only when the selection or the structure changes,
// so typing never loses focus.

import { getPath, setPath } from "./model.js";

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c != null) e.append(c);
  return e;
}

function fieldRow(label, input, hint) {
  return el("label", { class: "field" }, el("span", { class: "field-label" }, label), input, hint ? el("small", { class: "hint" }, hint) : null);
}

/** Builds inputs bound to one node. ctx: {node, nodeIds, onChange(), onStructure()} */
class Binder {
  constructor(ctx) {
    this.ctx = ctx;
  }

  text(label, path, placeholder = "", hint) {
    const input = el("input", { type: "text", "data-field": path, value: getPath(this.ctx.node, path) ?? "", placeholder });
    input.addEventListener("input", () => {
      setPath(this.ctx.node, path, input.value === "" ? undefined : input.value);
      this.ctx.onChange();
    });
    return fieldRow(label, input, hint);
  }

  number(label, path, placeholder = "") {
    const input = el("input", { type: "number", step: "any", "data-field": path, value: getPath(this.ctx.node, path) ?? "", placeholder });
    input.addEventListener("input", () => {
      const v = input.value.trim();
      setPath(this.ctx.node, path, v === "" ? undefined : Number(v));
      this.ctx.onChange();
    });
    return fieldRow(label, input);
  }

  select(label, path, options, { empty = null, structural = false } = {}) {
    const current = getPath(this.ctx.node, path);
    const opts = [];
    if (empty !== null) opts.push(el("option", { value: "" }, empty));
    for (const o of options) {
      const [value, text] = Array.isArray(o) ? o : [o, o];
      opts.push(el("option", { value, selected: value === current }, text));
    }
    if (current != null && current !== "" && !options.some((o) => (Array.isArray(o) ? o[0] : o) === current)) {
      opts.push(el("option", { value: current, selected: true }, `${current} (missing)`));
    }
    const input = el("select", { "data-field": path }, opts);
    input.addEventListener("change", () => {
      setPath(this.ctx.node, path, input.value === "" ? undefined : input.value);
      structural ? this.ctx.onStructure() : this.ctx.onChange();
    });
    return fieldRow(label, input);
  }

  target(label, path, empty = "(end here)") {
    return this.select(label, path, this.ctx.nodeIds, { empty, structural: true });
  }

  policy(label, path) {
    const options = [["compensate", "compensate (default)"], ["fail", "fail (no compensation)"], ...this.ctx.nodeIds.map((id) => [id, `go to ${id}`])];
    return this.select(label, path, options, { empty: "(default)", structural: true });
  }

  /** A JSON value; empty deletes the key; invalid JSON is marked and not applied. */
  json(label, path, rows = 3, hint) {
    const value = getPath(this.ctx.node, path);
    const input = el("textarea", { rows, spellcheck: "false", "data-field": path }, value === undefined ? "" : JSON.stringify(value, null, 2));
    input.addEventListener("input", () => {
      const raw = input.value.trim();
      if (raw === "") {
        input.classList.remove("invalid");
        setPath(this.ctx.node, path, undefined);
        return this.ctx.onChange();
      }
      try {
        setPath(this.ctx.node, path, JSON.parse(raw));
        input.classList.remove("invalid");
        this.ctx.onChange();
      } catch {
        input.classList.add("invalid");
      }
    });
    return fieldRow(label, input, hint);
  }

  statusList(label, path) {
    const current = getPath(this.ctx.node, path);
    const input = el("input", { type: "text", "data-field": path, value: Array.isArray(current) ? current.join(", ") : "", placeholder: "any 2xx" });
    input.addEventListener("input", () => {
      const codes = input.value.split(/[,\s]+/).filter(Boolean).map(Number);
      setPath(this.ctx.node, path, codes.length ? codes : undefined);
      this.ctx.onChange();
    });
    return fieldRow(label, input);
  }

  method(label, path) {
    return this.select(label, path, METHODS);
  }
}

function section(title, ...rows) {
  return el("fieldset", { class: "section" }, el("legend", {}, title), rows);
}

function requestSection(b, prefix, title) {
  return section(
    title,
    b.method("method", `${prefix}.method`),
    b.text("url", `${prefix}.url`, "http://service/path/{{payload.id}}"),
    b.json("headers", `${prefix}.headers`, 2),
    b.json("query", `${prefix}.query`, 2),
    b.json("body", `${prefix}.body`, 4, "JSON; strings may hold {{templates}}"),
    b.number("timeout (s)", `${prefix}.timeout_s`, "10"),
    b.statusList("success status", `${prefix}.success_status`),
  );
}

function retrySection(b) {
  return section(
    "Retry",
    b.number("max attempts", "retry.max_attempts", "1"),
    b.number("back-off (s)", "retry.backoff_s", "1.0"),
    b.number("multiplier", "retry.multiplier", "2.0"),
    b.number("max back-off (s)", "retry.max_backoff_s", "60"),
  );
}

function compensationSection(b, ctx) {
  const node = ctx.node;
  const toggle = el("input", { type: "checkbox", "data-field": "compensation?", checked: !!node.compensation });
  toggle.addEventListener("change", () => {
    if (toggle.checked) node.compensation = { method: "DELETE", url: (node.request && node.request.url) || "http://service.local/" };
    else delete node.compensation;
    ctx.onStructure();
  });
  const rows = [fieldRow("compensate with a request", toggle)];
  if (node.compensation) {
    rows.push(b.method("method", "compensation.method"), b.text("url", "compensation.url"), b.json("body", "compensation.body", 3));
  }
  return section("Compensation", ...rows);
}

function switchSection(b, ctx) {
  const node = ctx.node;
  node.cases = Array.isArray(node.cases) ? node.cases : [];
  const rows = node.cases.map((c, i) => {
    const result = el("output", { class: "try-result", "data-case": i });
    const tryBtn = el("button", { type: "button", class: "small", "data-try": i, onclick: () => ctx.tryRule(c && c.when, result) }, "Try");
    const remove = el("button", { type: "button", class: "small danger", onclick: () => { node.cases.splice(i, 1); ctx.onStructure(); } }, "Remove");
    return el("div", { class: "case" }, el("div", { class: "case-head" }, `case ${i}`, tryBtn, remove),
      b.json("when (JSON Logic)", `cases.${i}.when`, 3), b.target("then go to", `cases.${i}.next`, "(choose)"), result);
  });
  const add = el("button", { type: "button", class: "small", onclick: () => { node.cases.push({ when: { "==": [{ var: "payload.kind" }, "a"] }, next: null }); ctx.onStructure(); } }, "+ case");
  const sample = el("textarea", { rows: 4, spellcheck: "false", class: "sample", "data-field": "sample" }, ctx.sampleText());
  sample.addEventListener("input", () => ctx.setSample(sample.value));
  return [
    section("Cases (first truthy wins)", ...rows, add),
    section("Otherwise", b.target("default", "default", "(choose)")),
    section("Sample data for Try", fieldRow("rules read payload, nodes.<id>.response…", sample)),
  ];
}

/** The inputs for one node, by type. */
export function nodeFields(ctx) {
  const b = new Binder(ctx);
  const node = ctx.node;
  switch (node.type) {
    case "task":
      return [requestSection(b, "request", "Request"), retrySection(b), compensationSection(b, ctx),
        section("Flow", b.policy("on failure", "on_failure"), b.target("next", "next"))];
    case "async_task":
      return [requestSection(b, "request", "Request"),
        section("Wait", b.number("timeout (s)", "timeout_s", "3600"), b.number("heartbeat (s)", "heartbeat_s"),
          b.json("success when", "callback.success_when", 2), b.json("failure when", "callback.failure_when", 2)),
        retrySection(b), compensationSection(b, ctx),
        section("Flow", b.policy("on failure", "on_failure"), b.policy("on timeout", "on_timeout"), b.target("next", "next"))];
    case "switch":
      return switchSection(b, ctx);
    case "sleep":
      return [section("Sleep", b.number("duration (s)", "duration_s"), b.text("or until", "until", "2030-01-01T00:00:00Z or {{payload.at}}")),
        section("Flow", b.target("next", "next"))];
    case "succeed":
      return [section("Succeed", b.json("output", "output", 4, "empty: the last call's response body"))];
    case "fail":
      return [section("Fail", b.json("error", "error", 4))];
    case "parallel":
      return [section("Parallel", b.json("branches", "branches", 2, 'start node ids, e.g. ["a", "b"]'), b.target("next", "next"))];
    default:
      return [];
  }
}

export { el, fieldRow };
