// JSON calls to the Trama API with the staff session: same-origin cookies plus the CSRF token
// the page template puts in <meta name="csrf-token">.

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

/** POST JSON; resolves to {ok, status, body} (never rejects on an HTTP error). */
export async function postJSON(url, data, { signal } = {}) {
  const res = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify(data),
    signal,
  });
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = { detail: `HTTP ${res.status}` };
  }
  return { ok: res.ok, status: res.status, body };
}

export async function getJSON(url) {
  const res = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return res.json();
}
