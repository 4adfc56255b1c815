// o2c console: processes, process detail with retry / skip / abort, and look-ups.
// Money is shown exactly as the API sends it (decimal strings), never parsed into numbers.
// What is on screen is always about what the address names: a view that cannot be loaded
// is cleared, an action reloads its process, and both views refresh while auto-refresh is on.
const $ = (sel) => document.querySelector(sel);
const KEY = "o2c.key";
const REFRESH_MS = 5000;
let cursor = null;
let pages = 0; // pages of the process list on screen
let shown = null; // the process the detail shows (or is loading)
let signature = ""; // the state the detail last rendered
let busy = false; // an operator action is under way
let listLoad = 0; // the newest list request: an older answer arriving late is dropped
let lookupLoad = 0; // likewise for look-ups
const names = new Map(); // customer id -> name, read once per session
let role = null; // the signed-in key's role: actions are offered only to operators and admins
const canAct = () => role === "operator" || role === "admin";
const roleNote = () => `<p class="as-of">Acting on it needs the operator role; this key is a ${esc(role)}.</p>`;

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
function badge(status) { return `<span class="badge ${esc(status)}">${esc(status)}</span>`; }
function say(text, kind = "error") { const m = $("#message"); m.textContent = text || ""; m.className = text ? kind : ""; }
function clearError() { if ($("#message").className === "error") say(""); }
function clock() { return new Date().toLocaleTimeString(); }

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
  if (id !== "#detail") shown = null;
}

function signOut() { sessionStorage.removeItem(KEY); role = null; $("#signout").hidden = true; show("#signin"); }

// --- the process list -------------------------------------------------------------------

function emptyList() { $("#rows").innerHTML = ""; cursor = null; pages = 0; $("#more").hidden = true; }

async function loadProcesses({ append = false, refresh = false } = {}) {
  const form = new FormData($("#filters"));
  const params = new URLSearchParams({ limit: "50" });
  for (const [k, v] of form.entries()) if (v) params.set(k, v);
  if (append && cursor) params.set("cursor", cursor);
  const load = ++listLoad;
  let page, attention;
  try {
    page = await api(`/v1/processes?${params}`);
    attention = await api("/v1/processes?status=needs_attention&limit=100");
  } catch (err) {
    if (load !== listLoad) return; // a newer request (another filter) answers instead
    // A refresh keeps the rows and says they are old; a new filter shows no rows it did not ask for.
    if (!append && !refresh) emptyList();
    throw refresh ? new Error(`could not refresh (the list is as of ${$("#as-of").textContent || "earlier"}): ${err.message}`) : err;
  }
  if (load !== listLoad) return;
  cursor = page.next_cursor;
  pages = append ? pages + 1 : 1;
  $("#more").hidden = !cursor;
  // Those waiting for an operator come first on each page, otherwise in the API's order.
  const ordered = [...page.data].sort((a, b) => Number(b.needs_attention) - Number(a.needs_attention));
  const rows = ordered.map((p) => `
    <tr class="${p.needs_attention ? "attention" : ""}" data-id="${esc(p.process_id)}" tabindex="0">
      <td>${esc(p.process_id)}</td><td>${esc(p.type)}</td>
      <td>${badge(p.needs_attention ? "needs_attention" : p.status)}</td>
      <td>${customer(p.customer_id)}</td><td>${esc(new Date(p.started_at).toLocaleString())}</td>
    </tr>`).join("");
  const empty = `<tr class="empty"><td colspan="5">No processes match.</td></tr>`;
  $("#rows").innerHTML = append ? $("#rows").innerHTML + rows : rows || empty;
  $("#attention-count").textContent = `(${attention.data.length}${attention.next_cursor ? "+" : ""})`;
  nameCustomers(page.data.map((p) => p.customer_id));
  $("#as-of").textContent = clock();
  $("#paused").hidden = pages <= 1;
  clearError();
}

// A customer shown by name once known (its id stays in the tooltip and the markup).
function customer(id) {
  if (!id) return "";
  const name = names.get(id);
  return `<span class="customer" data-customer="${esc(id)}" title="${esc(id)}">${esc(name || id)}</span>`;
}

async function nameCustomers(ids) {
  const unknown = [...new Set(ids.filter((id) => id && !names.has(id)))];
  await Promise.all(unknown.map(async (id) => {
    try { names.set(id, (await api(`/v1/customers/${encodeURIComponent(id)}`)).name); } catch { names.set(id, id); }
  }));
  for (const el of document.querySelectorAll("span.customer[data-customer]")) {
    el.textContent = names.get(el.dataset.customer) || el.dataset.customer;
  }
}

// --- one process ------------------------------------------------------------------------

function stateOf(p) {
  return JSON.stringify([p.status, p.failed_step, p.history_length, p.steps.map((s) => [s.name, s.status, s.attempts])]);
}

async function loadDetail(id, { refresh = false } = {}) {
  if (!refresh) {
    show("#detail");
    shown = id;
    signature = "";
    $("#detail").innerHTML = `<p>Loading ${esc(id)}…</p>`;
  }
  let p;
  try {
    p = await api(`/v1/processes/${encodeURIComponent(id)}`);
  } catch (err) {
    if (shown !== id) return;
    if (!refresh) { $("#detail").innerHTML = ""; throw err; }
    throw new Error(`could not refresh (shown as of ${$("#detail-as-of")?.textContent || "earlier"}): ${err.message}`);
  }
  if (shown !== id) return; // the operator went elsewhere meanwhile
  const held = p.status === "credit_hold" && p.refs?.order_id
    ? await api(`/v1/orders/${encodeURIComponent(p.refs.order_id)}`).catch(() => null) : null;
  if (shown !== id) return;
  const state = stateOf(p);
  if (refresh && state === signature) { $("#detail-as-of").textContent = clock(); return; } // keep what is typed
  signature = state;
  render(p, held);
  nameCustomers([p.customer_id]);
  if (!refresh) $("#detail h2").focus();
}

function timeline(steps) {
  const rows = (steps || []).map((s) => `<tr><td>${esc(s.name)}</td><td>${badge(s.status)}</td>
    <td>${esc(s.attempts)}</td><td>${esc(s.error)}</td>
    <td>${esc(s.started_at)}</td><td>${esc(s.finished_at)}</td></tr>`).join("");
  return `<table><thead><tr><th>Step</th><th>Status</th><th>Attempts</th><th>Error</th><th>Started</th><th>Finished</th></tr></thead>
    <tbody class="static">${rows}</tbody></table>`;
}

function render(p, held) {
  const f = p.failed_step;
  const failed = f ? `<div class="failed-step" role="alert">
      <h3>Needs attention: ${esc(f.name)}</h3>
      <p>${esc(f.error)} — ${esc(f.attempts)} attempts, failed at ${esc(f.failed_at)}</p>
      ${canAct() ? `<button type="button" id="retry">Retry</button>
      <label>Skip with result (JSON, optional)<textarea id="skip-result" rows="3"></textarea></label>
      <button type="button" id="skip">Skip</button>
      <label>Abort reason<input id="abort-reason"></label>
      <button type="button" id="abort">Abort</button>` : roleNote()}
    </div>` : "";
  const refs = Object.entries(p.refs || {}).map(([kind, ref]) =>
    `<a href="#/lookup/${esc(ref)}">${esc(kind.replace(/_id$/, ""))} ${esc(ref)}</a>`).join(" · ");
  const hold = p.status === "credit_hold" && p.refs?.order_id ? `<div class="failed-step" role="alert">
      <h3>Credit hold</h3>
      <p>${esc(held?.hold_reason || "the order waits for a release or a cancel")}</p>
      ${canAct() ? `<label>Release note (optional)<input id="release-note"></label>
      <button type="button" id="release">Release</button>` : roleNote()}
    </div>` : "";
  $("#detail").innerHTML = `<h2 tabindex="-1">${esc(p.process_id)}</h2>
    ${refs ? `<p>${refs}</p>` : ""}
    <p>${esc(p.type)} · ${badge(p.status)} · customer ${customer(p.customer_id)} ·
       history ${esc(p.history_length)} events${p.temporal_ui_url ? ` · <a href="${esc(p.temporal_ui_url)}">Temporal UI</a>` : ""}
       · <span class="as-of">as of <span id="detail-as-of">${esc(clock())}</span></span></p>
    ${failed}${hold}
    ${timeline(p.steps)}`;
  if (!canAct()) return;
  if (f) wireActions(p.process_id, f.name);
  if (hold) {
    const order = p.refs.order_id;
    $("#release").onclick = () => perform(p.process_id, {
      path: `/v1/orders/${encodeURIComponent(order)}/release`,
      question: `Release the credit hold of order ${order}?`,
      body: { note: $("#release-note").value.trim() },
      doing: `release of order ${order}`,
      done: (o) => `released order ${o.id}: it is ${o.status}`,
    });
  }
}

// An action on the open process: its buttons wait while it runs, then the process is
// reloaded — also after a refusal, which means its state moved on.
async function perform(id, { path, question, body, doing, done }) {
  if (busy || !confirm(question)) return;
  busy = true;
  for (const b of document.querySelectorAll("#detail button")) b.disabled = true;
  say(`${doing} under way…`, "info");
  try {
    const answer = await api(path, { method: "POST", body: body === undefined ? undefined : JSON.stringify(body) });
    say(done(answer), "ok");
  } catch (err) {
    say(err.message);
  } finally {
    busy = false;
  }
  if (shown !== id) return;
  signature = "";
  await loadDetail(id, { refresh: true }).catch((err) => say(err.message));
}

function wireActions(id, step) {
  const act = (action, question, body) => perform(id, {
    path: `/v1/processes/${encodeURIComponent(id)}/${action}`,
    question,
    body,
    doing: `${action} of ${step}`,
    done: (ack) => `${ack.action} ${ack.step}: process is ${ack.status}`,
  });
  $("#retry").onclick = () => act("retry", `Retry step ${step} of ${id}?`);
  $("#skip").onclick = () => {
    const text = $("#skip-result").value.trim();
    let result;
    try { result = text ? JSON.parse(text) : undefined; } catch { say("the skip result is not valid JSON"); return; }
    if (result !== undefined && (typeof result !== "object" || Array.isArray(result))) { say("the skip result must be a JSON object"); return; }
    act("skip", `Skip step ${step} of ${id}, going on as if it had succeeded?`, result === undefined ? {} : { result });
  };
  $("#abort").onclick = () => {
    const reason = $("#abort-reason").value.trim();
    if (!reason) { say("an abort needs a reason"); return; }
    act("abort", `Abort ${id}? What it did is compensated and it ends.`, { reason });
  };
}

// --- look-ups ---------------------------------------------------------------------------

function lines(items) {
  return `<table><thead><tr><th>Item</th><th>Qty</th><th>Unit price</th><th>Amount</th></tr></thead><tbody class="static">${
    (items || []).map((l) => `<tr><td>${esc(l.sku || l.plan_code || l.description)}</td><td>${esc(l.quantity)}</td>
      <td class="money">${esc(l.unit_price)}</td><td class="money">${esc(l.amount)}</td></tr>`).join("")}</tbody></table>`;
}

async function lookup(id) {
  const load = ++lookupLoad;
  $("#lookup-result").innerHTML = "";
  const kind = id.startsWith("ord_") ? "orders" : id.startsWith("quo_") ? "quotes" : id.startsWith("inv_") ? "invoices" : null;
  if (!kind) { say("ids start with ord_, quo_ or inv_"); return; }
  let r;
  try {
    r = await api(`/v1/${kind}/${encodeURIComponent(id)}`);
  } catch (err) {
    if (load === lookupLoad) throw err;
    return;
  }
  if (load !== lookupLoad) return; // another id was asked for meanwhile
  const link = (id) => `<a href="#/lookup/${esc(id)}">${esc(id)}</a>`;
  const reason = r.hold_reason || r.cancel_reason;
  const extra = kind === "orders"
    ? `<p>Shipments: ${(r.shipments || []).map((s) => `${esc(s.id)} ${badge(s.status)}`).join(", ") || "none"} ·
       Invoices: ${(r.invoice_ids || []).map(link).join(", ") || "none"}${r.quote_id ? ` · Quote: ${link(r.quote_id)}` : ""}</p>
       ${reason ? `<p>${esc(reason)}</p>` : ""}${timeline(r.steps)}`
    : kind === "quotes" && r.order_id ? `<p>Order: ${link(r.order_id)}</p>`
    : kind === "invoices" && r.order_id ? `<p>Order: ${link(r.order_id)}</p>` : "";
  $("#lookup-result").innerHTML = `<h3>${esc(r.number || r.id)} ${badge(r.status)}</h3>
    ${lines(r.lines)}
    <p>Subtotal <span class="money">${esc(r.subtotal)}</span> ·
       ${r.discount && Number(r.discount) !== 0 ? `Discount <span class="money" id="discount">−${esc(r.discount)}</span> · ` : ""}Tax <span class="money">${esc(r.tax)}</span> ·
       Total <strong class="money" id="total">${esc(r.total)}</strong> ${esc(r.currency)}</p>${extra}
    ${r.process_id ? `<p><a href="#/processes/${esc(r.process_id)}">process ${esc(r.process_id)}</a></p>` : ""}`;
  clearError();
}

// --- navigation, refresh ----------------------------------------------------------------

async function route() {
  say("");
  if (!sessionStorage.getItem(KEY)) { show("#signin"); return; }
  $("#signout").hidden = false;
  const hash = location.hash || "#/processes";
  try {
    if (!role) role = (await api("/v1/api-keys/me")).role;
    if (hash.startsWith("#/processes/")) await loadDetail(decodeURIComponent(hash.slice(12)));
    else if (hash.startsWith("#/lookup")) {
      show("#lookup");
      const id = decodeURIComponent(hash.slice(9));
      if (id) { $("#lookup-id").value = id; await lookup(id); } else { lookupLoad++; $("#lookup-result").innerHTML = ""; }
    }
    else { show("#processes"); await loadProcesses(); }
  } catch (err) { say(err.message); }
}

function refresh() {
  if (!$("#auto").checked || busy || !sessionStorage.getItem(KEY)) return;
  if (!$("#processes").hidden) {
    $("#paused").hidden = pages <= 1;
    if (pages > 1) return;
    loadProcesses({ refresh: true }).catch((err) => say(err.message));
  } else if (!$("#detail").hidden && shown) {
    loadDetail(shown, { refresh: true }).catch((err) => say(err.message));
  }
}

$("#signin-form").onsubmit = (e) => { e.preventDefault(); sessionStorage.setItem(KEY, $("#key").value.trim()); route(); };
$("#signout").onclick = signOut;
$("#filters").onsubmit = (e) => { e.preventDefault(); loadProcesses().catch((err) => say(err.message)); };
$("#attention").onclick = () => { $("#filters").status.value = "needs_attention"; loadProcesses().catch((err) => say(err.message)); };
$("#more").onclick = () => loadProcesses({ append: true }).catch((err) => say(err.message));
$("#rows").onclick = (e) => { const tr = e.target.closest("tr"); if (tr && tr.dataset.id) location.hash = `#/processes/${tr.dataset.id}`; };
$("#rows").onkeydown = (e) => { if (e.key === "Enter") $("#rows").onclick(e); };
$("#lookup-form").onsubmit = (e) => {
  e.preventDefault();
  const target = `#/lookup/${encodeURIComponent($("#lookup-id").value.trim())}`;
  if (location.hash === target) route(); else location.hash = target;
};
window.addEventListener("hashchange", route);
setInterval(refresh, REFRESH_MS);
route();
