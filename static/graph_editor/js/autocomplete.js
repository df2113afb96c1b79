// The `{{…}}` autocomplete of template paths in the editor's text fields. Typing `{{` opens a
// list of the paths the node can read (model.js templatePaths); ↑ ↓ choose, Enter or Tab insert,
// Escape closes. Insertion goes through the browser's own editing (insertText), so the field's
// own undo (Ctrl+Z inside it) takes it back like any typing.

import { completePath } from "./model.js";

const OPEN = /\{\{\s*([A-Za-z0-9_.\-[\]]*)$/;

export class Autocomplete {
  /** paths() -> the template paths for the node being edited. */
  constructor({ paths }) {
    this.paths = paths;
    this.field = null;
    this.items = [];
    this.index = 0;
    this.list = document.createElement("ul");
    this.list.className = "autocomplete";
    this.list.id = "template-paths";
    this.list.setAttribute("role", "listbox");
    this.list.setAttribute("aria-label", "template paths");
    this.list.hidden = true;
    document.body.append(this.list);
    // mousedown, not click: the field must keep its focus (a blur closes the list).
    this.list.addEventListener("mousedown", (ev) => {
      const li = ev.target.closest("li[data-i]");
      if (!li) return;
      ev.preventDefault();
      this.accept(Number(li.dataset.i));
    });
  }

  /** Offer completion in every text field under `root` (called after the panel is rebuilt). */
  attach(root) {
    for (const field of root.querySelectorAll("input[type=text]:not([data-field=id]), textarea")) {
      if (field.dataset.autocomplete) continue;
      field.dataset.autocomplete = "on";
      field.setAttribute("aria-autocomplete", "list");
      field.addEventListener("input", () => this.update(field));
      field.addEventListener("keydown", (ev) => this.key(ev));
      field.addEventListener("blur", () => this.close());
    }
  }

  /** The `{{prefix` right before the caret, or null. */
  typed(field) {
    const m = OPEN.exec(field.value.slice(0, field.selectionStart));
    return m ? m[1] : null;
  }

  update(field) {
    const prefix = this.typed(field);
    this.items = prefix === null ? [] : completePath(this.paths(), prefix);
    if (!this.items.length) return this.close();
    this.field = field;
    this.index = 0;
    this.render();
  }

  render() {
    const r = this.field.getBoundingClientRect();
    this.list.style.left = `${r.left + window.scrollX}px`;
    this.list.style.top = `${r.bottom + window.scrollY + 2}px`;
    this.list.style.minWidth = `${Math.min(r.width, 320)}px`;
    this.list.replaceChildren(...this.items.map((path, i) => {
      const li = document.createElement("li");
      li.id = `template-path-${i}`;
      li.dataset.i = String(i);
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", String(i === this.index));
      li.textContent = path;
      return li;
    }));
    this.list.hidden = false;
    this.field.setAttribute("aria-expanded", "true");
    this.field.setAttribute("aria-controls", this.list.id);
    this.field.setAttribute("aria-activedescendant", `template-path-${this.index}`);
  }

  key(ev) {
    if (this.list.hidden) return;
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      const n = this.items.length;
      this.index = (this.index + (ev.key === "ArrowDown" ? 1 : n - 1)) % n;
      this.render();
    } else if (ev.key === "Enter" || ev.key === "Tab") {
      ev.preventDefault();
      this.accept(this.index);
    } else if (ev.key === "Escape") {
      ev.stopPropagation();
      this.close();
    }
  }

  /** Replace the typed prefix with path i and close the braces (unless they already are). */
  accept(i) {
    const field = this.field;
    const path = this.items[i];
    const prefix = field && path !== undefined ? this.typed(field) : null;
    if (prefix === null) return this.close();
    const caret = field.selectionStart;
    const closed = field.value.slice(caret).trimStart().startsWith("}}");
    field.setSelectionRange(caret - prefix.length, caret);
    document.execCommand("insertText", false, path + (closed || path.endsWith(".") ? "" : "}}"));
    if (!path.endsWith(".")) this.close(); // "secrets." waits for the name
  }

  close() {
    this.list.hidden = true;
    if (this.field) {
      this.field.setAttribute("aria-expanded", "false");
      this.field.removeAttribute("aria-activedescendant");
    }
    this.field = null;
  }
}
