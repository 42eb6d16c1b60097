// Order entry, keyboard first (ui/entry.py). Customer combobox; a line grid
// where SKU or UPC, Enter, quantity, Enter opens the next line; each line
// shows what placing it now would do; a pasted block of SKU<TAB>qty rows
// fills the grid; Ctrl+Enter reserves the whole order with the form's
// Idempotency-Key (a double submit makes one order).
(function () {
  "use strict";
  const form = document.getElementById("entry");
  if (!form) return;
  const csrf = document.body.dataset.csrf;
  const $ = (id) => document.getElementById(id);
  const tbody = $("lines");
  const template = $("line-template");
  const status = $("entry-status");
  let customer = null;
  let submitting = false;
  let rowSeq = 0;

  function debounce(fn, ms) {
    let t = null;
    return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
  }

  async function getJSON(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" } });
    if (r.status === 401) { window.location = r.headers.get("HX-Redirect") || "/ui/login"; return []; }
    return r.ok ? r.json() : [];
  }

  async function postJSON(url, body) {
    return fetch(url, { method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", Accept: "application/json", "x-csrftoken": csrf } });
  }

  // ---------------------------------------------------------------- listbox
  // A combobox: the input keeps focus; arrows move the active option
  // (aria-activedescendant); Enter picks it; Escape closes.
  function combobox(input, list, search, render, pick) {
    let options = [];
    let active = -1;
    let lastQuery = null;
    function close() {
      list.hidden = true; input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant"); active = -1;
    }
    function show(items) {
      options = items; active = -1;
      list.innerHTML = "";
      items.forEach((item, i) => {
        const li = document.createElement("li");
        li.id = list.id + "-" + i; li.setAttribute("role", "option"); li.setAttribute("aria-selected", "false");
        li.textContent = render(item);
        li.addEventListener("mousedown", (e) => { e.preventDefault(); choose(i); });
        list.appendChild(li);
      });
      list.hidden = items.length === 0;
      input.setAttribute("aria-expanded", items.length ? "true" : "false");
    }
    function mark(i) {
      [...list.children].forEach((li, j) => li.setAttribute("aria-selected", j === i ? "true" : "false"));
      active = i;
      if (i >= 0) { input.setAttribute("aria-activedescendant", list.children[i].id); list.children[i].scrollIntoView({ block: "nearest" }); }
    }
    function choose(i) { const item = options[i]; close(); pick(item); }
    const run = debounce(async () => {
      const q = input.value.trim();
      if (q === lastQuery) return;
      lastQuery = q;
      if (!q) { show([]); return; }
      const items = await search(q);
      if (input.value.trim() === q) show(items);
    }, 120);
    input.addEventListener("input", run);
    input.addEventListener("blur", () => setTimeout(close, 100));
    return {
      // returns true when the key was the listbox's
      key(e) {
        if (list.hidden) return false;
        if (e.key === "ArrowDown") { mark(Math.min(active + 1, options.length - 1)); return true; }
        if (e.key === "ArrowUp") { mark(Math.max(active - 1, 0)); return true; }
        if (e.key === "Escape") { close(); return true; }
        if (e.key === "Enter" && active >= 0) { choose(active); return true; }
        return false;
      },
      first() { return options.length ? options[0] : null; },
      pending() { return input.value.trim() !== lastQuery; },
      async settle() { lastQuery = null; const q = input.value.trim(); const items = q ? await search(q) : []; lastQuery = q; return items; },
      close,
    };
  }

  // ---------------------------------------------------------------- customer
  const custInput = $("customer");
  const custList = $("customer-options");
  const describe = (c) => [c.name, c.company, c.email, c.phone, c.account_number ? "#" + c.account_number : null]
    .filter(Boolean).join(" · ");
  const custBox = combobox(custInput, custList,
    (q) => getJSON("/ui/lookup/customers?q=" + encodeURIComponent(q)), describe, chooseCustomer);

  function chooseCustomer(c) {
    customer = c;
    custInput.value = c.name;
    $("customer_id").value = c.id;
    fillProfiles();
    $("po_number").focus();
  }

  function fillProfiles() {
    const sel = $("profile");
    const channel = $("channel").value;
    sel.innerHTML = '<option value="">(none)</option>';
    (customer ? customer.profiles : []).filter((p) => p.channel === channel).forEach((p, i) => {
      const o = document.createElement("option");
      o.value = p.id; o.textContent = `${p.channel} · ${p.payment_terms || "no terms"} · ${p.backorder_policy || "default policy"}`;
      if (i === 0) o.selected = true;
      sel.appendChild(o);
    });
    applyProfile();
  }

  function applyProfile() {
    const p = customer && customer.profiles.find((x) => x.id === $("profile").value);
    $("terms").textContent = p && p.payment_terms ? p.payment_terms : "-";
    $("policy").value = p && p.backorder_policy ? p.backorder_policy : "";
    const to = (p && p.ship_to) || {};
    for (const f of ["name", "company", "address1", "city", "zip", "country_code"]) $("ship_" + f).value = to[f] || "";
    preview();
  }

  custInput.addEventListener("keydown", async (e) => {
    if (custBox.key(e)) { e.preventDefault(); return; }
    if (e.key === "Enter" && !e.ctrlKey && !e.metaKey) {
      e.preventDefault();
      // Enter without arrowing picks the first match (typing a name, Enter)
      const items = custBox.pending() ? await custBox.settle() : null;
      const first = items ? items[0] : custBox.first();
      if (first) chooseCustomer(first);
    }
  });
  $("channel").addEventListener("change", fillProfiles);
  $("profile").addEventListener("change", applyProfile);
  $("policy").addEventListener("change", () => preview());
  $("po_number").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.ctrlKey && !e.metaKey) { e.preventDefault(); rows()[0].querySelector(".sku-input").focus(); }
  });

  // ---------------------------------------------------------------- lines
  const rows = () => [...tbody.querySelectorAll("tr")];

  function addRow(code, qty) {
    const tr = template.content.firstElementChild.cloneNode(true);
    const id = ++rowSeq;
    const sku = tr.querySelector(".sku-input");
    const list = tr.querySelector("ul");
    list.id = "sku-options-" + id;
    sku.setAttribute("aria-controls", list.id);
    const qtyInput = tr.querySelector(".qty-input");
    if (code) sku.value = code;
    if (qty) qtyInput.value = qty;
    tbody.appendChild(tr);
    number();
    const box = combobox(sku, list, (q) => getJSON("/ui/lookup/skus?q=" + encodeURIComponent(q)),
      (s) => [s.sku, s.name, s.upc ? "UPC " + s.upc : null].filter(Boolean).join(" · "),
      (s) => { sku.value = s.sku; qtyInput.focus(); preview(); });
    sku.addEventListener("keydown", (e) => {
      if (box.key(e)) { e.preventDefault(); return; }
      if (e.key === "Enter" && !e.ctrlKey && !e.metaKey) {
        e.preventDefault(); box.close();
        if (sku.value.trim()) { qtyInput.focus(); preview(); } else $("reserve").focus();
      }
    });
    sku.addEventListener("paste", (e) => {
      const text = (e.clipboardData || window.clipboardData).getData("text");
      if (!/[\t\n]/.test(text)) return;
      e.preventDefault();
      pasteBlock(tr, text);
    });
    qtyInput.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.ctrlKey && !e.metaKey) {
        e.preventDefault();
        const next = tr.nextElementSibling || addRow();
        next.querySelector(".sku-input").focus();
        preview();
      }
    });
    qtyInput.addEventListener("input", () => preview());
    sku.addEventListener("change", () => preview());
    tr.querySelector(".remove").addEventListener("click", () => {
      tr.remove(); if (!rows().length) addRow(); number(); preview();
    });
    return tr;
  }

  function number() { rows().forEach((tr, i) => { tr.querySelector(".n").textContent = String(i + 1); }); }

  function pasteBlock(fromRow, text) {
    const parsed = text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean).map((l) => {
      const [code, qty] = l.split(/\t|,|;|\s{2,}/).map((x) => (x || "").trim());
      return { code, qty: parseInt((qty || "").replace(/[^0-9]/g, ""), 10) || "" };
    });
    let tr = fromRow;
    parsed.forEach((p, i) => {
      if (i > 0) tr = tr.nextElementSibling || addRow();
      tr.querySelector(".sku-input").value = p.code;
      tr.querySelector(".qty-input").value = p.qty;
    });
    (tr.nextElementSibling || addRow()).querySelector(".sku-input").focus();
    preview();
  }

  function collect() {
    return rows().map((tr) => ({
      tr,
      code: tr.querySelector(".sku-input").value.trim(),
      quantity: parseInt(tr.querySelector(".qty-input").value, 10) || 0,
    }));
  }

  let previewSeq = 0;
  const preview = debounce(async () => {
    const lines = collect();
    const seq = ++previewSeq;
    const r = await postJSON("/ui/lookup/lines", {
      channel: $("channel").value, policy: $("policy").value || null,
      lines: lines.map((l) => ({ code: l.code, quantity: l.quantity })),
    });
    if (!r.ok || seq !== previewSeq) return;
    const out = await r.json();
    out.forEach((res, i) => {
      const tr = lines[i].tr;
      if (!tr.isConnected) return;
      const sku = tr.querySelector(".sku-input");
      const what = tr.querySelector(".what");
      tr.querySelector(".name").textContent = res.name || (res.sku && res.sku !== res.code ? res.sku : "");
      tr.querySelector(".avail").textContent = res.state === "ok"
        ? ($("channel").value === "wholesale" ? `${res.available_to_wholesale} wholesale (${res.available} in all)` : String(res.available)) : "";
      what.textContent = res.text || "";
      what.className = "what" + (res.state === "unknown" ? " flag" : res.outcome && res.outcome !== "reserve" ? " state-warn" : "");
      if (res.state === "unknown") sku.setAttribute("aria-invalid", "true"); else sku.removeAttribute("aria-invalid");
    });
  }, 150);

  // ---------------------------------------------------------------- submit
  async function submit() {
    if (submitting) return;
    const lines = collect().filter((l) => l.code || l.quantity);
    if (!lines.length) { status.textContent = "Add at least one line."; return; }
    submitting = true;
    $("reserve").disabled = true;
    status.textContent = "Reserving…";
    const shipTo = {};
    for (const f of ["name", "company", "address1", "city", "zip", "country_code"]) {
      const v = $("ship_" + f).value.trim(); if (v) shipTo[f] = v;
    }
    const body = {
      idempotency_key: form.dataset.idempotencyKey,
      channel: $("channel").value,
      customer_id: $("customer_id").value || null,
      profile_id: $("profile").value || null,
      po_number: $("po_number").value.trim() || null,
      backorder_policy: $("policy").value || null,
      notes: $("notes").value.trim() || null,
      ship_to: Object.keys(shipTo).length ? shipTo : null,
      lines: lines.map((l) => ({ code: l.code, quantity: l.quantity })),
    };
    try {
      for (;;) {
        const r = await postJSON("/ui/orders", body);
        const out = await r.json().catch(() => ({ error: "unexpected answer " + r.status }));
        if (r.status === 201) {
          status.textContent = `Order ${out.number} reserved.`;
          window.location = out.url;
          return;
        }
        if (out.retry) { await new Promise((ok) => setTimeout(ok, 400)); continue; }
        status.textContent = out.error || "The order was not placed.";
        (out.lines || []).forEach((bad) => {
          const l = lines[bad.index];
          if (!l) return;
          l.tr.querySelector(".sku-input").setAttribute("aria-invalid", "true");
          const what = l.tr.querySelector(".what"); what.textContent = bad.message; what.className = "what flag";
        });
        (out.short || []).forEach((s) => { status.textContent += ` ${s.sku}: ${s.requested} asked, ${s.available} available.`; });
        break;
      }
    } finally {
      submitting = false;
      $("reserve").disabled = false;
    }
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); submit(); });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit(); }
  });
  addRow();
})();
