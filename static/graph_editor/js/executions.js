// The executions list: auto-refresh (pausable, remembered), keyboard navigation (j/k, arrows,
// Enter, "/"). The filters live in the URL; a refresh re-reads the same URL's results.

const page = document.getElementById("executions");
const results = document.getElementById("results");
const pauseButton = page.querySelector("[data-action=pause]");
const live = page.querySelector(".live");
const REFRESH_MS = 5000;
const PAUSED_KEY = "trama.executions.paused";

let selectedId = null;
let paused = localStorage.getItem(PAUSED_KEY) === "1";

function rows() {
  return [...results.querySelectorAll("tr.exec-row")];
}

function select(row) {
  for (const r of rows()) {
    r.classList.toggle("selected", r === row);
    r.setAttribute("aria-selected", String(r === row));
  }
  if (!row) return;
  selectedId = row.dataset.id;
  row.scrollIntoView({ block: "nearest" });
}

function move(step) {
  const all = rows();
  if (!all.length) return;
  const at = all.findIndex((r) => r.dataset.id === selectedId);
  const next = at < 0 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, at + step));
  select(all[next]);
}

function typing(target) {
  return target.closest("input, select, textarea, [contenteditable]");
}

document.addEventListener("keydown", (ev) => {
  if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) return;
  if (ev.key === "j" || ev.key === "ArrowDown") move(1);
  else if (ev.key === "k" || ev.key === "ArrowUp") move(-1);
  else if (ev.key === "Enter" && selectedId) {
    const row = rows().find((r) => r.dataset.id === selectedId);
    if (row) window.location.href = row.dataset.href;
  } else if (ev.key === "/") page.querySelector("input[name=id]").focus();
  else return;
  ev.preventDefault();
});

results.addEventListener("click", (ev) => {
  const row = ev.target.closest("tr.exec-row");
  if (row && !ev.target.closest("a, summary, details")) select(row);
});

function showLive() {
  live.dataset.state = paused ? "paused" : "live";
  live.querySelector(".live-text").textContent = paused ? "paused" : "live";
  pauseButton.textContent = paused ? "Resume" : "Pause";
  pauseButton.setAttribute("aria-pressed", String(paused));
}

pauseButton.addEventListener("click", () => {
  paused = !paused;
  localStorage.setItem(PAUSED_KEY, paused ? "1" : "0");
  showLive();
});

/** Replace the results with the server's current ones, keeping the selection and open branch lists. */
async function refresh() {
  if (paused || document.hidden) return;
  const open = new Set([...results.querySelectorAll("tr.exec-row details[open]")].map((d) => d.closest("tr").dataset.id));
  try {
    const response = await fetch(page.dataset.partialUrl, { headers: { Accept: "text/html" }, credentials: "same-origin" });
    if (!response.ok || paused) return;
    results.innerHTML = await response.text();
  } catch {
    return; // the next tick tries again
  }
  for (const row of rows()) {
    if (open.has(row.dataset.id)) row.querySelector("details")?.setAttribute("open", "");
    if (row.dataset.id === selectedId) {
      row.classList.add("selected"); // no scrolling: the reader may have scrolled away since
      row.setAttribute("aria-selected", "true");
    }
  }
  page.dataset.refreshedAt = String(Date.now());
}

showLive();
setInterval(refresh, REFRESH_MS);
page.dataset.ready = "true";
