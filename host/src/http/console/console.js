// The paygate operator console: reads the admin API with the operator's
// token and renders every view, again every few seconds. Everything shown
// is set as text, never as HTML: names, errors and audit entries come from
// merchants and plugins, and must not run as code here.
"use strict";

const TOKEN_KEY = "paygate-admin-token";
const REFRESH_MS = 5000;
const VIEWS = ["plugins", "providers", "outbox", "merchants", "audit"];

let data = {};
let timer = null;

const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "onclick") node.addEventListener("click", value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fill(id, rows) {
  $(id).replaceChildren(...rows);
}

function say(text, failed) {
  const status = $("status");
  status.textContent = text;
  status.className = failed ? "failed" : "";
}

class Refused extends Error {}

/** One admin API call; the parsed JSON answer, or throws with its message. */
async function api(method, path, body) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
  if (response.status === 401) throw new Refused("the admin token was refused");
  if (response.status === 204) return null;
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(`${method} ${path}: ${response.status} ${answer.error || ""} ${answer.message || ""}`);
  }
  return answer;
}

async function refresh() {
  const started = performance.now();
  try {
    const [plugins, providers, outbox, failed, merchants, audit] = await Promise.all([
      api("GET", "/admin/v1/plugins"),
      api("GET", "/admin/v1/providers"),
      api("GET", "/admin/v1/outbox"),
      api("GET", "/admin/v1/notifications?status=LOG_FAILED&limit=100"),
      api("GET", "/admin/v1/merchants?limit=100"),
      api("GET", "/admin/v1/audit?limit=100"),
    ]);
    data = { plugins, providers, outbox, failed, merchants, audit };
    render();
    const ms = Math.round(performance.now() - started);
    say(`Updated ${new Date().toLocaleTimeString()} (all views in ${ms} ms)`);
    $("status").dataset.loadMs = ms;
  } catch (error) {
    if (error instanceof Refused) signOut(error.message);
    else say(`Could not refresh: ${error.message}`, true);
  }
}

/** Runs an action, then shows the views as they are after it. */
async function act(label, method, path, body) {
  try {
    await api(method, path, body);
    say(`${label}: done`);
  } catch (error) {
    if (error instanceof Refused) return signOut(error.message);
    say(`${label}: ${error.message}`, true);
  }
  await refresh();
}

function render() {
  renderPlugins();
  renderProviders();
  renderOutbox();
  renderMerchants();
  renderAudit();
}

const ms = (value) => (value === null || value === undefined ? "–" : `≤ ${value} ms`);

function renderPlugins() {
  fill("plugins", data.plugins.plugins.map((p) => el("tr", { "data-plugin": p.name },
    el("td", {}, p.name),
    el("td", {}, p.kind || "–"),
    el("td", { "data-serving": p.name }, p.version || "not serving"),
    el("td", { class: "digest", title: p.digest || "" }, (p.digest || "–").slice(0, 19)),
    el("td", {}, p.wit || "–"),
    el("td", {}, p.calls),
    el("td", {}, Object.entries(p.errors_by_kind || {}).map(([k, n]) => `${k} ${n}`).join(", ") || "0"),
    el("td", {}, ms(p.p50_ms)),
    el("td", {}, ms(p.p99_ms)),
    el("td", {}, p.fuel_used),
    el("td", {}, p.last_rejection || ""),
  )));
  fill("registry", data.plugins.registry.map((r) => el("tr", { "data-registry": r.name },
    el("td", {}, r.name),
    el("td", {}, r.kind),
    el("td", {}, r.active || "none"),
    el("td", {}, r.signer || "unsigned"),
    el("td", {}, ...r.versions.map((v) => el("button", {
      type: "button",
      "data-activate": `${r.name}@${v}`,
      disabled: v === r.active,
      onclick: () => act(`Activate ${r.name} ${v}`, "POST",
        `/admin/v1/plugins/${encodeURIComponent(r.name)}/activate`, { version: v }),
    }, `Activate ${v}`))),
    el("td", {}, el("button", {
      type: "button",
      "data-rollback": r.name,
      onclick: () => act(`Roll back ${r.name}`, "POST",
        `/admin/v1/plugins/${encodeURIComponent(r.name)}/rollback`),
    }, "Roll back")),
  )));
}

function renderProviders() {
  fill("providers", data.providers.providers.map((p) => el("tr", { "data-alias": p.alias },
    el("td", {}, p.alias),
    el("td", {}, p.provider_plugin),
    el("td", {}, p.verifier_plugin || "–"),
    el("td", {}, p.available ? "yes" : "no"),
    el("td", { class: `circuit ${p.circuit.state}` }, p.circuit.state),
    el("td", {}, p.circuit.failures),
    el("td", {}, p.circuit.retry_in_ms === null ? "–" : `${Math.ceil(p.circuit.retry_in_ms / 1000)} s`),
  )));
}

function renderOutbox() {
  const o = data.outbox;
  const counts = [
    ["pending", o.pending], ["in flight", o.processing], ["retrying", o.retrying],
    ["delivered", o.delivered], ["failed", o.failed],
    ["oldest pending", o.oldest_pending_age_seconds === null ? "–"
      : `${Math.round(o.oldest_pending_age_seconds)} s`],
  ];
  $("outbox-counts").replaceChildren(...counts.flatMap(([name, value]) =>
    [el("dt", {}, name), el("dd", { "data-count": name }, value)]));
  fill("failed", data.failed.notifications.map((n) => {
    const last = n.last_attempt;
    return el("tr", { "data-notification": n.notification_id },
      el("td", {}, n.notification_id),
      el("td", {}, n.event_type),
      el("td", {}, n.merchant_id),
      el("td", {}, n.payment_id),
      el("td", {}, n.attempts),
      el("td", {}, last ? `${last.at} ${last.status_code ?? ""} ${last.error ?? ""}` : "–"),
      el("td", {}, n.created_at),
      el("td", {}, el("button", {
        type: "button",
        "data-retry": n.notification_id,
        onclick: () => act(`Retry notification ${n.notification_id}`, "POST",
          `/admin/v1/notifications/${n.notification_id}/retry`),
      }, "Retry")),
    );
  }));
}

function renderMerchants() {
  const query = $("merchant-search").value.trim().toLowerCase();
  let merchants = data.merchants.merchants;
  if (query) {
    merchants = merchants.filter((m) =>
      String(m.merchant_id) === query || m.name.toLowerCase().includes(query));
  }
  fill("merchants", merchants.map((m) => {
    const left = m.subscriptions.reduce((sum, s) => sum + (s.tokens_total - s.tokens_used), 0);
    return el("tr", { "data-merchant": m.merchant_id },
      el("td", {}, m.merchant_id),
      el("td", {}, m.name),
      el("td", {}, m.currency),
      el("td", {}, left),
      el("td", {}, m.disabled ? "disabled" : "active"),
      el("td", {}, el("button", {
        type: "button",
        [m.disabled ? "data-enable" : "data-disable"]: m.merchant_id,
        onclick: () => act(`${m.disabled ? "Enable" : "Disable"} merchant ${m.merchant_id}`,
          "PATCH", `/admin/v1/merchants/${m.merchant_id}`, { disabled: !m.disabled }),
      }, m.disabled ? "Enable" : "Disable")),
    );
  }));
}

/** A merchant searched by an id not on the first page is fetched alone. */
async function searchMerchants() {
  const query = $("merchant-search").value.trim();
  const listed = data.merchants && data.merchants.merchants;
  if (/^[1-9][0-9]{0,17}$/.test(query) && listed && !listed.some((m) => String(m.merchant_id) === query)) {
    try {
      const one = await api("GET", `/admin/v1/merchants/${query}`);
      listed.push(one);
    } catch (error) {
      if (error instanceof Refused) return signOut(error.message);
    }
  }
  if (listed) renderMerchants();
}

function renderAudit() {
  fill("audit", data.audit.entries.map((e) => el("tr", { "data-audit": e.id },
    el("td", {}, e.at),
    el("td", {}, e.actor),
    el("td", {}, e.action),
    el("td", {}, e.target),
    el("td", { class: "json" }, e.after === null ? "–" : JSON.stringify(e.after)),
  )));
}

function show(view) {
  if (!VIEWS.includes(view)) view = "plugins";
  for (const name of VIEWS) {
    $(`${name}-view`).hidden = name !== view;
    $(`tab-${name}`).setAttribute("aria-pressed", String(name === view));
  }
  if (location.hash !== `#${view}`) history.replaceState(null, "", `#${view}`);
}

function signedIn() {
  $("sign-in-view").hidden = true;
  $("tabs").hidden = false;
  show(location.hash.slice(1));
  refresh();
  clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
}

function signOut(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearInterval(timer);
  data = {};
  for (const name of VIEWS) $(`${name}-view`).hidden = true;
  $("tabs").hidden = true;
  $("sign-in-view").hidden = false;
  say(reason || "Signed out", Boolean(reason));
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value);
    $("token").value = "";
    signedIn();
  });
  for (const name of VIEWS) $(`tab-${name}`).addEventListener("click", () => show(name));
  $("sign-out").addEventListener("click", () => signOut());
  $("retry-all").addEventListener("click", () =>
    act("Retry all failed notifications", "POST", "/admin/v1/notifications/retry", {}));
  $("merchant-search").addEventListener("input", searchMerchants);
  if (sessionStorage.getItem(TOKEN_KEY)) signedIn();
});
