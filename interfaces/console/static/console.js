// aiops console: live updates from the service's event stream, and no double submissions.
// Served from this origin only (the pages' Content-Security-Policy allows no inline or remote script).
"use strict";

let submitting = false;  // a form was sent: its answer is the next page, a live reload must not cancel it

function listen(url, onIncident, label) {
  const source = new EventSource(url);
  source.addEventListener("open", () => { if (label) label.textContent = "live updates: on"; });
  source.addEventListener("incident", (event) => {
    try { onIncident(JSON.parse(event.data)); } catch (e) { /* a malformed event changes nothing */ }
  });
  source.addEventListener("error", () => {
    if (!label) return;
    label.textContent = source.readyState === EventSource.CLOSED
      ? "live updates stopped: reload (your session may have ended)" : "live updates: reconnecting…";
  });
  return source;
}

function liveList(live) {
  const rows = document.getElementById("rows");
  let pending = null;
  const refresh = () => {
    pending = null;
    fetch(live.dataset.rows, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => { rows.innerHTML = html; live.dataset.updated = String(Date.now()); })
      .catch(() => { live.textContent = "live updates: could not refresh (reload the page)"; });
  };
  listen(live.dataset.events, () => { if (!pending) pending = setTimeout(refresh, 300); }, live);
}

function liveIncident(el) {
  const id = el.dataset.incident;
  listen(el.dataset.events, (row) => {
    if (row.incident_id !== id) return;
    const badge = document.getElementById("status");
    if (badge && badge.textContent === row.status) return;
    const typing = document.activeElement && document.activeElement.tagName === "INPUT";
    if (submitting) return;
    if (!typing) { window.location.reload(); return; }
    if (badge) { badge.textContent = row.status + " (changed: reload)"; }
  }, null);
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (live) liveList(live);
  const incident = document.getElementById("incident");
  if (incident) liveIncident(incident);
  document.querySelectorAll("form.action").forEach((form) => {
    form.addEventListener("submit", () => {
      submitting = true;
      form.querySelectorAll("button").forEach((b) => { b.disabled = true; b.textContent = "Working…"; });
    });
  });
});
