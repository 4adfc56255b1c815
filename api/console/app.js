// o2c console: processes, process detail with retry / skip / abort, and look-ups.
// Money is shown exactly as the API sends it (decimal strings), never parsed into numbers.
const $ = (sel) => document.querySelector(sel);
const KEY = "o2c.key";
let cursor = null;
let timer = null;

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
function badge(status) { return `<span class="badge ${esc(status)}">${esc(status)}</span>`; }
function say(text) { $("#message").textContent = text || ""; }

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY)}`, ...(options.headers || {}) };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { ...options, headers });
  const body = await res.json().catch(() => ({}));
  if (res.status === 401) { signOut(); throw new Error("the key was refused: sign in again"); }
  if (!res.ok) throw new Error(`${body.title || res.status}: ${body.detail || ""}`);
  return body;
}

function show(id) {
  for (const s of ["#signin", "#processes", "#detail", "#lookup"]) $(s).hidden = s !== id;
}

function signOut() { sessionStorage.removeItem(KEY); $("#signout").hidden = true; show("#signin"); }

async function loadProcesses(append = false) {
  const form = new FormData($("#filters"));
  const params = new URLSearchParams({ limit: "50" });
  for (const [k, v] of form.entries()) if (v) params.set(k, v);
  if (append && cursor) params.set("cursor", cursor);
  const page = await api(`/v1/processes?${params}`);
  cursor = page.next_cursor;
  $("#more").hidden = !cursor;
  const rows = page.data.map((p) => `
    <tr class="${p.needs_attention ? "attention" : ""}" data-id="${esc(p.process_id)}" tabindex="0">
      <td>${esc(p.process_id)}</td><td>${esc(p.type)}</td>
      <td>${badge(p.needs_attention ? "needs_attention" : p.status)}</td>
      <td>${esc(p.customer_id)}</td><td>${esc(new Date(p.started_at).toLocaleString())}</td>
    </tr>`).join("");
  $("#rows").innerHTML = append ? $("#rows").innerHTML + rows : rows;
  const attention = await api("/v1/processes?status=needs_attention&limit=100");
  $("#attention-count").textContent = `(${attention.data.length}${attention.next_cursor ? "+" : ""})`;
}

async function loadDetail(id) {
  show("#detail");
  const p = await api(`/v1/processes/${encodeURIComponent(id)}`);
  const steps = p.steps.map((s) => `<tr><td>${esc(s.name)}</td><td>${badge(s.status)}</td>
    <td>${esc(s.attempts)}</td><td>${esc(s.error)}</td>
    <td>${esc(s.started_at)}</td><td>${esc(s.finished_at)}</td></tr>`).join("");
  const f = p.failed_step;
  const failed = f ? `<div class="failed-step" role="alert">
      <h3>Needs attention: ${esc(f.name)}</h3>
      <p>${esc(f.error)} — ${esc(f.attempts)} attempts, failed at ${esc(f.failed_at)}</p>
      <button type="button" id="retry">Retry</button>
      <label>Skip with result (JSON, optional)<textarea id="skip-result" rows="3"></textarea></label>
      <button type="button" id="skip">Skip</button>
      <label>Abort reason<input id="abort-reason"></label>
      <button type="button" id="abort">Abort</button>
    </div>` : "";
  $("#detail").innerHTML = `<h2>${esc(p.process_id)}</h2>
    <p>${esc(p.type)} · ${badge(p.status)} · customer ${esc(p.customer_id)} ·
       history ${esc(p.history_length)} events${p.temporal_ui_url ? ` · <a href="${esc(p.temporal_ui_url)}">Temporal UI</a>` : ""}</p>
    ${failed}
    <table><thead><tr><th>Step</th><th>Status</th><th>Attempts</th><th>Error</th><th>Started</th><th>Finished</th></tr></thead>
    <tbody>${steps}</tbody></table>`;
  if (f) wireActions(id);
}

function wireActions(id) {
  const act = async (action, body) => {
    if (!confirm(`${action} step of ${id}?`)) return;
    try {
      const ack = await api(`/v1/processes/${encodeURIComponent(id)}/${action}`, { method: "POST", body: body === undefined ? undefined : JSON.stringify(body) });
      say(`${ack.action} ${ack.step}: process is ${ack.status}`);
      await loadDetail(id);
    } catch (err) { say(err.message); }
  };
  $("#retry").onclick = () => act("retry");
  $("#skip").onclick = () => {
    const text = $("#skip-result").value.trim();
    let result;
    try { result = text ? JSON.parse(text) : undefined; } catch { say("the skip result is not valid JSON"); return; }
    if (result !== undefined && (typeof result !== "object" || Array.isArray(result))) { say("the skip result must be a JSON object"); return; }
    act("skip", result === undefined ? {} : { result });
  };
  $("#abort").onclick = () => {
    const reason = $("#abort-reason").value.trim();
    if (!reason) { say("an abort needs a reason"); return; }
    act("abort", { reason });
  };
}

function lines(items) {
  return `<table><thead><tr><th>Item</th><th>Qty</th><th>Unit price</th><th>Amount</th></tr></thead><tbody>${
    (items || []).map((l) => `<tr><td>${esc(l.sku || l.plan_code || l.description)}</td><td>${esc(l.quantity)}</td>
      <td class="money">${esc(l.unit_price)}</td><td class="money">${esc(l.amount)}</td></tr>`).join("")}</tbody></table>`;
}

async function lookup(id) {
  const kind = id.startsWith("ord_") ? "orders" : id.startsWith("quo_") ? "quotes" : id.startsWith("inv_") ? "invoices" : null;
  if (!kind) { say("ids start with ord_, quo_ or inv_"); return; }
  const r = await api(`/v1/${kind}/${encodeURIComponent(id)}`);
  const extra = kind === "orders"
    ? `<p>Shipments: ${(r.shipments || []).map((s) => `${esc(s.id)} ${badge(s.status)}`).join(", ") || "none"} ·
       Invoices: ${(r.invoice_ids || []).map(esc).join(", ") || "none"}</p>` : "";
  $("#lookup-result").innerHTML = `<h3>${esc(r.number || r.id)} ${badge(r.status)}</h3>
    ${lines(r.lines)}
    <p>Subtotal <span class="money">${esc(r.subtotal)}</span> · Tax <span class="money">${esc(r.tax)}</span> ·
       Total <strong class="money" id="total">${esc(r.total)}</strong> ${esc(r.currency)}</p>${extra}
    ${r.process_id ? `<p><a href="#/processes/${esc(r.process_id)}">process ${esc(r.process_id)}</a></p>` : ""}`;
}

async function route() {
  say("");
  if (!sessionStorage.getItem(KEY)) { show("#signin"); return; }
  $("#signout").hidden = false;
  const hash = location.hash || "#/processes";
  try {
    if (hash.startsWith("#/processes/")) await loadDetail(decodeURIComponent(hash.slice(12)));
    else if (hash.startsWith("#/lookup")) show("#lookup");
    else { show("#processes"); await loadProcesses(); }
  } catch (err) { say(err.message); }
}

$("#signin-form").onsubmit = (e) => { e.preventDefault(); sessionStorage.setItem(KEY, $("#key").value.trim()); route(); };
$("#signout").onclick = signOut;
$("#filters").onsubmit = (e) => { e.preventDefault(); loadProcesses().catch((err) => say(err.message)); };
$("#attention").onclick = () => { $("#filters").status.value = "needs_attention"; loadProcesses().catch((err) => say(err.message)); };
$("#more").onclick = () => loadProcesses(true).catch((err) => say(err.message));
$("#rows").onclick = (e) => { const tr = e.target.closest("tr"); if (tr) location.hash = `#/processes/${tr.dataset.id}`; };
$("#rows").onkeydown = (e) => { if (e.key === "Enter") $("#rows").onclick(e); };
$("#lookup-form").onsubmit = (e) => { e.preventDefault(); lookup($("#lookup-id").value.trim()).catch((err) => say(err.message)); };
window.addEventListener("hashchange", route);
timer = setInterval(() => { if ($("#auto").checked && !$("#processes").hidden) loadProcesses().catch(() => {}); }, 5000);
route();
