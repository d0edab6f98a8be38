// The outbox-relay console: a small single-page app over the JSON admin API.
// Every figure comes from /api/v1 with the operator's bearer token (kept in
// sessionStorage for this tab only); the server authorizes every call. Text is
// only ever inserted as text nodes (el() below), never as HTML, because event
// payloads, error texts and response excerpts come from outside.
"use strict";

const POLL_MS = 2000;
const main = document.getElementById("main");
let pollTimer = null;
let flash = null; // a message kept above the page until the next navigation
let pageGeneration = 0; // counts navigations


// --- DOM, API, formatting ---------------------------------------------------

/** An element with attributes (event handlers for "on…" keys) and children (strings become text). */
function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replaces the page; a field being typed in that is part of the new page keeps the focus. */
function show(...nodes) {
  const focused = document.activeElement;
  main.replaceChildren(...(flash ? [flash] : []), ...nodes);
  if (focused && focused !== document.body && main.contains(focused)) focused.focus();
}

function flashMessage(message, kind) {
  flash = notice(message, kind);
  main.prepend(flash);
}

function session() {
  const token = sessionStorage.getItem("outbox.token");
  return token ? { token, name: sessionStorage.getItem("outbox.name"), scope: sessionStorage.getItem("outbox.scope") } : null;
}

function canWrite() {
  return session()?.scope === "admin";
}

class APIFailure extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Calls the admin API; a 401 ends the session and returns to the login page. */
async function api(method, path, body, token) {
  const headers = { Authorization: "Bearer " + (token || session()?.token || "") };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  if (!response.ok) {
    if (response.status === 401 && !token) logout();
    throw new APIFailure(response.status, json?.error?.message || response.statusText || "request failed");
  }
  return json;
}

function number(value, digits = 0) {
  return value === null || value === undefined ? "–" : Number(value).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function percent(rate) {
  return rate === null || rate === undefined ? "–" : (rate * 100).toFixed(1) + " %";
}

function ms(value) {
  return value === null || value === undefined ? "–" : number(value, 1) + " ms";
}

function time(value) {
  return value ? new Date(value).toLocaleString() : "–";
}

function status(text) {
  return el("span", { class: "status status-" + text }, text);
}

function circuit(state) {
  return el("span", { class: "status state-" + state }, state.replace("_", "-"));
}

function notice(message, kind) {
  return el("div", { class: "notice " + (kind || ""), role: kind === "error" ? "alert" : "status" }, message);
}

function table(headings, rows, empty) {
  if (rows.length === 0) return el("p", { class: "muted" }, empty);
  return el("table", {}, el("thead", {}, el("tr", {}, headings.map((h) => el("th", {}, h)))), el("tbody", {}, rows));
}

function card(label, value, id) {
  return el("div", { class: "card" }, el("div", { class: "label" }, label), el("div", { class: "value", id }, value));
}

function deliveryLink(id) {
  return el("a", { href: "#/delivery/" + encodeURIComponent(id) }, "#" + id);
}

/** A button that runs `action` once per click, disabled while it runs; errors are shown above the page. */
function actionButton(label, action, attributes) {
  const button = el("button", { type: "button", ...attributes }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await action();
    } catch (error) {
      flashMessage(error.message, "error");
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/** Shows what `load` returns now and then every POLL_MS until the page changes; a late answer for a page left is dropped. */
function poll(load) {
  const generation = pageGeneration;
  const run = async () => {
    try {
      const nodes = await load();
      if (generation === pageGeneration) show(...nodes);
    } catch (error) {
      if (generation === pageGeneration && !(error instanceof APIFailure && error.status === 401)) show(notice(error.message, "error"));
    }
  };
  run();
  pollTimer = setInterval(run, POLL_MS);
}

// --- pages --------------------------------------------------------------------

function loginPage(message) {
  const input = el("input", { id: "token", type: "password", autocomplete: "off", placeholder: "obx_…", required: true, "aria-label": "API token" });
  const form = el("form", {}, input, el("button", { id: "login", type: "submit" }, "Log in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    try {
      const who = await api("GET", "/api/v1/token", undefined, token);
      sessionStorage.setItem("outbox.token", token);
      sessionStorage.setItem("outbox.name", who.name);
      sessionStorage.setItem("outbox.scope", who.scope);
      location.hash = "#/overview";
      route();
    } catch (error) {
      loginPage(error.status === 401 ? "That token is unknown or revoked." : error.message);
    }
  });
  show(el("div", { class: "login" },
    el("h1", {}, "Log in"),
    el("p", { class: "muted" }, "Paste an admin API token (", el("code", {}, "outbox-relay token create NAME --scope read|admin"), "). It is kept in this tab only."),
    message ? notice(message, "error") : null,
    form));
  input.focus();
}

function overviewPage() {
  poll(async () => {
    const stats = await api("GET", "/api/v1/stats");
    const all = stats.overall;
    const failing = stats.subscriptions.filter((s) => !s.enabled || s.circuit_state !== "closed" || s.consecutive_failures > 0 || s.dead_5m > 0);
    return [
      el("h1", {}, "Overview"),
      el("div", { class: "cards" },
        card("Backlog", number(all.pending + all.delivering), "backlog"),
        card("Dead letters", number(all.dead), "dead"),
        card("Deliveries/s (1 min)", number(all.deliveries_per_second_1m, 2), "throughput"),
        card("Success rate (5 min)", percent(all.success_rate_5m), "success-rate"),
        card("p99 latency (5 min)", ms(all.latency_ms_5m?.p99), "latency-p99")),
      el("h2", {}, "Failing subscriptions"),
      table(["Subscription", "Enabled", "Circuit", "Consecutive failures", "Success rate (5 min)", "Pending", "Dead"],
        failing.map((s) => el("tr", {},
          el("td", {}, s.name), el("td", {}, s.enabled ? "yes" : el("span", { class: "bad" }, "no")), el("td", {}, circuit(s.circuit_state)),
          el("td", {}, number(s.consecutive_failures)), el("td", {}, percent(s.success_rate_5m)), el("td", {}, number(s.pending)), el("td", {}, number(s.dead)))),
        "No subscription is failing."),
      el("p", { class: "muted" }, "Updated " + time(stats.generated_at) + "; refreshes every " + POLL_MS / 1000 + " s.")];
  });
}

function subscriptionsPage() {
  poll(async () => {
    const [stats, list] = await Promise.all([api("GET", "/api/v1/stats"), api("GET", "/api/v1/subscriptions")]);
    const health = new Map(stats.subscriptions.map((s) => [s.name, s]));
    const reload = () => { clearInterval(pollTimer); subscriptionsPage(); };
    const rows = list.subscriptions.map((s) => {
      const h = health.get(s.name) || {};
      const name = encodeURIComponent(s.name);
      return el("tr", { "data-name": s.name },
        el("td", {}, s.name), el("td", { class: "wrap" }, s.url),
        el("td", {}, s.enabled ? "yes" : el("span", { class: "bad", title: s.disabled_reason || "" }, "no")),
        el("td", {}, circuit(h.circuit_state || "closed")), el("td", {}, number(h.consecutive_failures)),
        el("td", {}, percent(h.success_rate_5m)), el("td", {}, number(h.pending)), el("td", {}, number(h.dead)),
        el("td", {}, canWrite() ? el("div", { class: "actions" },
          actionButton(s.enabled ? "Disable" : "Enable", async () => {
            await api("PATCH", "/api/v1/subscriptions/" + name, { enabled: !s.enabled });
            reload();
          }, { class: "secondary" }),
          actionButton("Rotate secret", async () => {
            const rotated = await api("POST", "/api/v1/subscriptions/" + name + "/rotate-secret");
            flash = notice("New secret for " + rotated.name + " (shown once): " + rotated.secret
              + " (the previous one signs until " + time(rotated.previous_secret_expires_at) + ").");
            reload();
          }, { class: "secondary" })) : el("span", { class: "muted" }, "read-only")));
    });
    return [
      el("h1", {}, "Subscriptions"),
      table(["Name", "URL", "Enabled", "Circuit", "Consecutive failures", "Success rate (5 min)", "Pending", "Dead", ""], rows, "No subscriptions yet.")];
  });
}

function deliveryRows(deliveries, withReplay) {
  return deliveries.map((d) => el("tr", { "data-event-id": d.event_id },
    el("td", {}, deliveryLink(d.id)), el("td", { class: "wrap" }, d.event_id), el("td", {}, d.subscription), el("td", {}, d.event_type),
    el("td", {}, status(d.status)), el("td", {}, number(d.attempts)), el("td", {}, d.last_status_code ?? "–"),
    el("td", { class: "wrap" }, d.last_error ?? ""), el("td", {}, time(d.completed_at || d.created_at)),
    withReplay ? el("td", {}, canWrite() ? actionButton("Replay", async () => {
      await api("POST", "/api/v1/deliveries/" + d.id + "/replay");
      location.hash = "#/delivery/" + d.id;
    }, { class: "secondary" }) : null) : null));
}

const deliveryHeadings = ["Delivery", "Event id", "Subscription", "Type", "Status", "Attempts", "Last status", "Last error", "Updated"];

function deliveriesPage(params) {
  const eventID = params.get("event_id") || "";
  const input = el("input", { id: "event-id", name: "event_id", value: eventID, placeholder: "event id", "aria-label": "Event id" });
  const form = el("form", {}, input, el("button", { id: "search", type: "submit" }, "Find"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = "#/deliveries?event_id=" + encodeURIComponent(input.value.trim());
  });
  poll(async () => {
    const query = eventID ? "?event_id=" + encodeURIComponent(eventID) : "?limit=50";
    const page = await api("GET", "/api/v1/deliveries" + query);
    return [el("h1", {}, "Deliveries"), form,
      el("p", { class: "muted" }, eventID ? "Deliveries of event " + eventID + ":" : "The newest 50 deliveries; search by event id to follow one event."),
      table(deliveryHeadings, deliveryRows(page.deliveries, false), eventID ? "No delivery has that event id." : "No deliveries yet.")];
  });
}

function deliveryPage(id) {
  poll(async () => {
    const d = await api("GET", "/api/v1/deliveries/" + encodeURIComponent(id));
    const replayable = d.status === "dead" || d.status === "succeeded";
    return [
      el("h1", {}, "Delivery #" + d.id),
      el("dl", {},
        el("dt", {}, "Status"), el("dd", { id: "delivery-status" }, status(d.status)),
        el("dt", {}, "Event id"), el("dd", {}, el("a", { href: "#/deliveries?event_id=" + encodeURIComponent(d.event_id) }, d.event_id)),
        el("dt", {}, "Event type"), el("dd", {}, d.event_type ?? "–"),
        el("dt", {}, "Subscription"), el("dd", {}, d.subscription ?? "–"),
        el("dt", {}, "Attempts"), el("dd", {}, number(d.attempts)),
        el("dt", {}, "Next attempt"), el("dd", {}, d.status === "pending" ? time(d.next_attempt_at) : "–"),
        el("dt", {}, "Last error"), el("dd", {}, d.last_error ?? "–"),
        el("dt", {}, "Created"), el("dd", {}, time(d.created_at)),
        el("dt", {}, "Completed"), el("dd", {}, time(d.completed_at))),
      canWrite() && replayable ? el("p", {}, actionButton("Replay", async () => {
        await api("POST", "/api/v1/deliveries/" + d.id + "/replay");
      }, { id: "replay" })) : null,
      el("h2", {}, "Attempts"),
      table(["#", "Started", "Status", "Duration", "Error", "Response excerpt"],
        d.attempt_history.map((a) => el("tr", { class: "attempt" },
          el("td", {}, a.attempt), el("td", {}, time(a.started_at)),
          el("td", { class: a.status_code >= 200 && a.status_code < 300 ? "status-succeeded" : "bad" }, a.status_code ?? "no response"),
          el("td", {}, ms(a.duration_ms)), el("td", { class: "wrap" }, a.error ?? ""), el("td", { class: "wrap" }, el("code", {}, a.response_excerpt ?? "")))),
        "No attempt yet."),
      el("h2", {}, "Event payload"),
      el("pre", {}, d.event ? JSON.stringify(d.event.payload, null, 2) : "(the event was pruned)")];
  });
}

async function deadLettersPage(params) {
  const subscription = params.get("subscription") || "";
  const generation = pageGeneration;
  const list = await api("GET", "/api/v1/subscriptions");
  if (generation !== pageGeneration) return;
  const select = el("select", { "aria-label": "Subscription" }, el("option", { value: "" }, "all subscriptions"),
    list.subscriptions.map((s) => el("option", { value: s.name, selected: s.name === subscription }, s.name)));
  select.addEventListener("change", () => {
    location.hash = "#/dead-letters" + (select.value ? "?subscription=" + encodeURIComponent(select.value) : "");
  });
  // Replaying everything takes a second click on the same button.
  const replayAll = el("button", { id: "replay-all", type: "button" }, "Replay all");
  replayAll.addEventListener("click", async () => {
    if (!replayAll.dataset.confirm) {
      replayAll.dataset.confirm = "yes";
      replayAll.textContent = "Confirm: replay every dead letter" + (subscription ? " of " + subscription : "");
      return;
    }
    delete replayAll.dataset.confirm;
    replayAll.textContent = "Replay all";
    try {
      const result = await api("POST", "/api/v1/dead-letters/replay", subscription ? { subscription } : {});
      flashMessage("Replayed " + result.replayed + " dead letters.");
    } catch (error) {
      flashMessage(error.message, "error");
    }
  });
  poll(async () => {
    const query = "?status=dead&limit=100" + (subscription ? "&subscription=" + encodeURIComponent(subscription) : "");
    const page = await api("GET", "/api/v1/deliveries" + query);
    return [el("h1", {}, "Dead letters"),
      el("div", { class: "actions" }, select, canWrite() && page.deliveries.length > 0 ? replayAll : null),
      el("h2", {}, page.next_cursor ? "The newest 100" : number(page.deliveries.length) + " dead"),
      table([...deliveryHeadings, ""], deliveryRows(page.deliveries, true), "No dead letters.")];
  });
}

// --- routing --------------------------------------------------------------

function logout() {
  sessionStorage.clear();
  location.hash = "#/login";
  route();
}

function route() {
  clearInterval(pollTimer);
  pollTimer = null;
  flash = null;
  pageGeneration += 1;
  const who = session();
  document.getElementById("nav").hidden = !who;
  document.getElementById("logout").hidden = !who;
  document.getElementById("who").textContent = who ? who.name + " (" + who.scope + ")" : "";
  const [path, queryString] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(queryString || "");
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", path.startsWith(link.getAttribute("href").slice(1)));
  }
  if (!who) return loginPage();
  const delivery = path.match(/^\/delivery\/(\d+)$/);
  if (delivery) return deliveryPage(delivery[1]);
  switch (path) {
    case "/subscriptions": return subscriptionsPage();
    case "/deliveries": return deliveriesPage(params);
    case "/dead-letters": return deadLettersPage(params).catch((error) => show(notice(error.message, "error")));
    default:
      if (path !== "/overview") history.replaceState(null, "", "#/overview");
      return overviewPage();
  }
}

document.getElementById("logout").addEventListener("click", logout);
window.addEventListener("hashchange", route);
route();
