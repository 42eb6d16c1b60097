// The inventory screen's live numbers (ui/live.py): server-sent events with
// the counters of the SKUs on screen, a heartbeat every second; no event for
// 5 s shows the "stale" banner. Each update is timestamped on the cell
// (data-updated-at, ms since the epoch) so tests can measure latency.
(function () {
  "use strict";
  const table = document.getElementById("inventory");
  if (!table) return;
  const skus = JSON.parse(table.dataset.skus || "[]");
  const banner = document.getElementById("stale");
  const liveText = document.getElementById("live-text");
  const STALE_MS = 5000;
  let lastEvent = Date.now();

  function age(ms) {
    if (!ms) return "";
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    return s < 60 ? `${s} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
  }
  function renderPushed(cell, value, at) {
    cell.dataset.pushedAt = at || "";
    cell.textContent = value === null || value === undefined ? "never" : `${value}${at ? " · " + age(at) : " · age unknown"}`;
  }
  table.querySelectorAll('[data-f="pushed"]').forEach((c) => {
    if (c.textContent.trim() !== "never") renderPushed(c, c.textContent.trim(), parseInt(c.dataset.pushedAt, 10) || null);
  });

  function apply(data) {
    const now = Date.now();
    for (const [sku, c] of Object.entries(data.skus || {})) {
      const row = table.querySelector(`tr[data-sku="${CSS.escape(sku)}"]`);
      if (!row || !c) continue;
      for (const f of ["on_hand", "reserved_dtc", "reserved_wholesale", "dtc_reserve", "available", "backordered", "exception"]) {
        const cell = row.querySelector(`[data-f="${f}"]`);
        if (cell && cell.textContent !== String(c[f])) { cell.textContent = String(c[f]); cell.dataset.updatedAt = String(now); }
      }
      renderPushed(row.querySelector('[data-f="pushed"]'), c.pushed, c.pushed_at_ms);
    }
  }

  function connect() {
    if (!skus.length) { liveText.textContent = "no SKUs on screen"; return; }
    const url = "/ui/inventory/stream?" + skus.map((s) => "sku=" + encodeURIComponent(s)).join("&");
    const source = new EventSource(url);
    source.addEventListener("open", () => { liveText.textContent = "connected"; });
    source.addEventListener("counters", (e) => { lastEvent = Date.now(); apply(JSON.parse(e.data)); });
    source.addEventListener("heartbeat", () => { lastEvent = Date.now(); });
    source.addEventListener("error", () => { liveText.textContent = "reconnecting…"; });
  }
  setInterval(() => {
    const silent = Date.now() - lastEvent > STALE_MS;
    banner.hidden = !silent;
    if (!silent) liveText.textContent = "up to date";
    table.querySelectorAll('[data-f="pushed"]').forEach((c) => {
      const at = parseInt(c.dataset.pushedAt, 10);
      if (at) c.textContent = c.textContent.replace(/ · .*$/, " · " + age(at));
    });
  }, 1000);
  connect();
})();
