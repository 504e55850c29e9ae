/* TES dashboard: one page, three views (task list, task, workflow), routed by the URL's
 * hash. Every text a task's author controls (names, tags, commands, logs) reaches the
 * page through textContent or attribute setters, never as HTML. No inline script: the
 * server's Content-Security-Policy forbids it. */
"use strict";

(function () {
  const STATES = ["QUEUED", "INITIALIZING", "RUNNING", "PAUSED", "CANCELING", "COMPLETE",
    "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED", "UNKNOWN"];
  const ENDED = new Set(["COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"]);
  const PAGE_SIZE = 50;
  const POLL_MS = 4000;
  const WORKFLOW_TAG = "ms-submitter-workflow-id";
  const TOKEN_KEY = "tes-dashboard-token";

  const config = { api: "/ga4gh/tes/v1", auth: false };
  const live = { source: null, key: "", polling: null, onEvent: null, refresh: null, tails: null };

  // ---------------------------------------------------------------- DOM helpers
  /** An element with attributes (set as properties or attributes) and children. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function main() { return document.getElementById("main"); }

  function show(...nodes) {
    const root = main();
    root.replaceChildren(...nodes);
  }

  function say(message, isError) {
    const status = document.getElementById("status");
    status.textContent = message || "";
    status.classList.toggle("error", Boolean(isError));
  }

  function stateBadge(state) {
    return el("span", { class: "state " + (STATES.includes(state) ? state : "UNKNOWN"),
      text: state || "UNKNOWN" });
  }

  // ---------------------------------------------------------------- time
  function parseTime(text) {
    if (!text) return null;
    const ms = Date.parse(text);
    return Number.isNaN(ms) ? null : ms;
  }

  function shownTime(text) {
    const ms = parseTime(text);
    if (ms === null) return "";
    return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }

  function duration(ms) {
    if (ms === null || ms === undefined || ms < 0) return "";
    const s = Math.round(ms / 1000);
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + " min " + (s % 60) + " s";
    const h = Math.floor(m / 60);
    if (h < 48) return h + " h " + (m % 60) + " min";
    return Math.floor(h / 24) + " d " + (h % 24) + " h";
  }

  /** When a task started running, ended, and how long it took (running: so far). */
  function taskTimes(task) {
    const created = parseTime(task.creation_time);
    const logs = task.logs || [];
    let started = null;
    let ended = null;
    for (const attempt of logs) {
      const s = parseTime(attempt.start_time);
      if (s !== null && (started === null || s < started)) started = s;
      const e = parseTime(attempt.end_time);
      if (e !== null && (ended === null || e > ended)) ended = e;
    }
    if (!ENDED.has(task.state)) ended = null;
    const end = ended !== null ? ended : (ENDED.has(task.state) ? null : Date.now());
    return { created, started, ended, took: created !== null && end !== null ? end - created : null };
  }

  function bytes(n) {
    if (n === undefined || n === null || n === "") return "";
    const value = Number(n);
    if (!Number.isFinite(value)) return String(n);
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let size = value;
    let unit = 0;
    while (size >= 1024 && unit < units.length - 1) { size /= 1024; unit += 1; }
    return (unit ? size.toFixed(1) : String(size)) + " " + units[unit];
  }

  // ---------------------------------------------------------------- API
  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  function send(path, options, accept) {
    const headers = { Accept: accept };
    if (token()) headers.Authorization = "Bearer " + token();
    return fetch(config.api + path, Object.assign({ headers }, options || {}));
  }

  async function errorOf(response) {
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    return new ApiError(response.status, (body && body.msg) || ("HTTP " + response.status));
  }

  async function api(path, options) {
    const response = await send(path, options, "application/json");
    if (!response.ok) throw await errorOf(response);
    return response.json().catch(() => null);
  }

  // A running executor's output: {text} or, when the server has none to give, {note} (why).
  async function apiText(path) {
    const response = await send(path, {}, "text/plain");
    if (response.ok) return { text: await response.text() };
    const error = await errorOf(response);
    if (error.status === 401) throw error;
    return { note: error.message };
  }

  function failed(error) {
    if (error instanceof ApiError && error.status === 401) {
      say("This server needs a bearer token: paste one above (Sign in).", true);
      renderSignin(true);
    } else {
      say(String(error.message || error), true);
    }
  }

  /** Query string of the list filters (state, name prefix, tags) for the API. */
  function filterQuery(filters) {
    const q = new URLSearchParams();
    if (filters.state) q.set("state", filters.state);
    if (filters.name_prefix) q.set("name_prefix", filters.name_prefix);
    for (const [key, value] of filters.tags || []) {
      q.append("tag_key", key);
      q.append("tag_value", value);
    }
    return q;
  }

  // ---------------------------------------------------------------- sign in
  function renderSignin(open) {
    const box = document.getElementById("signin");
    if (token()) {
      box.replaceChildren(
        el("span", { class: "muted", text: "Signed in with a token" }),
        el("button", { type: "button", class: "secondary", onclick: () => {
          sessionStorage.removeItem(TOKEN_KEY);
          renderSignin(config.auth);
          route();
        } }, "Sign out"));
      return;
    }
    if (!open) { box.replaceChildren(); return; }
    if (document.getElementById("token-input")) return; // keep what is being typed
    const input = el("input", { id: "token-input", type: "password", autocomplete: "off",
      required: true, size: 24 });
    box.replaceChildren(
      config.oidc ? el("button", { type: "button", id: "oidc-signin",
        onclick: () => oidcSignIn().catch(failed) }, "Sign in with your identity provider") : null,
      el("form", { class: "token", onsubmit: (event) => {
        event.preventDefault();
        sessionStorage.setItem(TOKEN_KEY, input.value.trim());
        renderSignin(false);
        say("");
        route();
      } }, el("label", { for: "token-input" }, config.oidc ? "or paste a bearer token"
        : "Bearer token", input),
      el("button", { type: "submit" }, "Sign in")));
  }

  // ---------------------------------------------------------------- OpenID Connect
  // The authorization code flow with PKCE for a public client: no secret in the page;
  // the verifier and state wait in sessionStorage while the browser visits the provider.
  const OIDC_KEY = "tes-dashboard-oidc";

  function randomText() {
    const bytes = new Uint8Array(32);
    crypto.getRandomValues(bytes);
    return base64url(bytes);
  }

  function base64url(bytes) {
    let text = "";
    for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function redirectUri() { return location.origin + "/"; }

  async function oidcSignIn() {
    const meta = await fetch(config.oidc.issuer + "/.well-known/openid-configuration")
      .then((r) => r.json());
    const verifier = randomText();
    const state = randomText();
    const challenge = base64url(await crypto.subtle.digest("SHA-256",
      new TextEncoder().encode(verifier)));
    sessionStorage.setItem(OIDC_KEY, JSON.stringify({ verifier, state,
      tokenEndpoint: meta.token_endpoint, back: location.hash }));
    const q = new URLSearchParams({ response_type: "code", client_id: config.oidc.client_id,
      redirect_uri: redirectUri(), scope: config.oidc.scope, state,
      code_challenge: challenge, code_challenge_method: "S256" });
    location.assign(meta.authorization_endpoint + "?" + q.toString());
  }

  /** Back from the provider (``?code=&state=`` or ``?error=``): trade the code for a token. */
  async function oidcReturn() {
    const q = new URLSearchParams(location.search);
    if (!config.oidc || !(q.has("code") || q.has("error"))) return;
    let saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(OIDC_KEY) || "null"); } catch (e) { saved = null; }
    sessionStorage.removeItem(OIDC_KEY);
    history.replaceState(null, "", "/" + ((saved && saved.back) || ""));
    if (q.has("error")) {
      say("Sign-in failed: " + q.get("error") + " " + (q.get("error_description") || ""), true);
      return;
    }
    if (!saved || saved.state !== q.get("state")) {
      say("Sign-in failed: the answer does not match this tab's request; sign in again.", true);
      return;
    }
    const response = await fetch(saved.tokenEndpoint, { method: "POST", body: new URLSearchParams({
      grant_type: "authorization_code", code: q.get("code"), redirect_uri: redirectUri(),
      client_id: config.oidc.client_id, code_verifier: saved.verifier }) });
    let answer = null;
    try { answer = await response.json(); } catch (e) { answer = null; }
    if (!response.ok || !answer || !answer.access_token) {
      say("Sign-in failed: the identity provider gave no token (" +
        ((answer && answer.error) || response.status) + ")", true);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, answer.access_token);
  }

  // ---------------------------------------------------------------- live updates
  /** Follow the events stream for ``query`` (a URLSearchParams); where the server has
   * none (404) or it breaks for good, poll ``refresh`` every few seconds instead. */
  function follow(query, onEvent, refresh) {
    live.onEvent = onEvent;
    live.refresh = refresh;
    const q = new URLSearchParams(query);
    if (token()) q.set("access_token", token());
    const key = q.toString();
    if (live.source && live.key === key) return;
    stopLive();
    live.key = key;
    if (typeof EventSource === "undefined") { startPolling(); return; }
    const source = new EventSource(config.api + "/events?" + key);
    live.source = source;
    const handle = (event) => {
      let data = null;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      if (live.onEvent) live.onEvent(event.type, data);
    };
    source.addEventListener("state", handle);
    source.addEventListener("log", handle);
    source.onopen = () => { stopPolling(); document.body.dataset.live = "events"; };
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        if (live.source === source) live.source = null;
        startPolling();
      }
    };
  }

  function startPolling() {
    document.body.dataset.live = "polling";
    if (live.polling) return;
    live.polling = setInterval(() => { if (live.refresh) live.refresh(); }, POLL_MS);
  }

  function stopPolling() {
    if (live.polling) clearInterval(live.polling);
    live.polling = null;
  }

  function stopLive() {
    stopPolling();
    if (live.source) live.source.close();
    live.source = null;
    live.key = "";
  }

  /** Run ``fn`` at most once per ``ms`` (the last call wins). */
  function debounce(fn, ms) {
    let timer = null;
    return () => {
      if (timer) return;
      timer = setTimeout(() => { timer = null; fn(); }, ms);
    };
  }

  // ---------------------------------------------------------------- routing
  function parseHash() {
    const hash = location.hash.replace(/^#/, "") || "/";
    const [path, search] = hash.split("?");
    return { parts: path.split("/").filter(Boolean).map(decodeURIComponent),
      params: new URLSearchParams(search || "") };
  }

  function route() {
    const { parts, params } = parseHash();
    say("");
    if (live.tails) clearInterval(live.tails);
    live.tails = null;
    if (parts[0] === "task" && parts[1]) taskPage(parts[1]);
    else if (parts[0] === "workflow" && parts[1]) workflowPage(parts[1]);
    else listPage(params);
  }

  // ---------------------------------------------------------------- task list
  function filtersFrom(params) {
    const tags = [];
    for (const item of (params.get("tags") || "").split(",")) {
      const text = item.trim();
      if (!text) continue;
      const at = text.indexOf("=");
      tags.push(at < 0 ? [text, ""] : [text.slice(0, at).trim(), text.slice(at + 1).trim()]);
    }
    return { state: params.get("state") || "", name_prefix: params.get("name_prefix") || "",
      tags, tagsText: params.get("tags") || "", group: params.get("group") === "workflow" };
  }

  function listHash(filters, extra) {
    const q = new URLSearchParams();
    if (filters.state) q.set("state", filters.state);
    if (filters.name_prefix) q.set("name_prefix", filters.name_prefix);
    if (filters.tagsText) q.set("tags", filters.tagsText);
    if (filters.group) q.set("group", "workflow");
    for (const [key, value] of Object.entries(extra || {})) if (value) q.set(key, value);
    const text = q.toString();
    return "#/" + (text ? "?" + text : "");
  }

  function listPage(params) {
    const filters = filtersFrom(params);
    const pageToken = params.get("page") || "";
    const stack = (params.get("back") || "").split(".").filter(Boolean);

    const stateSelect = el("select", { id: "f-state", name: "state" },
      el("option", { value: "" }, "any state"),
      STATES.map((s) => el("option", { value: s, selected: s === filters.state }, s)));
    const nameInput = el("input", { id: "f-name", name: "name_prefix", type: "search",
      value: filters.name_prefix, autocomplete: "off" });
    const tagsInput = el("input", { id: "f-tags", name: "tags", type: "search", size: 30,
      value: filters.tagsText, autocomplete: "off", placeholder: "key=value, key2" });
    const groupInput = el("input", { id: "f-group", name: "group", type: "checkbox",
      checked: filters.group });
    const form = el("form", { class: "filters", role: "search", "aria-label": "Filter tasks",
      onsubmit: (event) => {
        event.preventDefault();
        location.hash = listHash({ state: stateSelect.value, name_prefix: nameInput.value.trim(),
          tagsText: tagsInput.value.trim(), group: groupInput.checked });
      } },
    el("label", { for: "f-state" }, "State", stateSelect),
    el("label", { for: "f-name" }, "Name starts with", nameInput),
    el("label", { for: "f-tags" }, "Tags (key=value, comma separated)", tagsInput),
    el("label", { for: "f-group", class: "check" }, groupInput, "Group by workflow and stage"),
    el("button", { type: "submit" }, "Apply"),
    el("button", { type: "button", class: "secondary",
      onclick: () => { location.hash = "#/"; } }, "Clear"));

    const counts = el("ul", { class: "counts", id: "counts", "aria-label": "Tasks by state" });
    const body = el("tbody", { id: "task-rows" });
    const caption = el("caption", { class: "muted", id: "list-caption" }, "Tasks, newest first");
    const table = el("table", { id: "tasks" },
      caption,
      el("thead", {}, el("tr", {},
        el("th", { scope: "col" }, "Name"),
        el("th", { scope: "col" }, "State"),
        el("th", { scope: "col" }, "Workflow"),
        el("th", { scope: "col", class: "wide" }, "Created"),
        el("th", { scope: "col", class: "wide" }, "Ended"),
        el("th", { scope: "col", class: "num" }, "Duration"))),
      body);
    const pager = el("nav", { class: "pager", "aria-label": "Pages" });
    show(el("h1", {}, "Tasks"), form, counts, el("div", { class: "scroll" }, table), pager);

    const query = filterQuery(filters);
    const rows = new Map();

    async function loadCounts() {
      const countQuery = filterQuery({ name_prefix: filters.name_prefix, tags: filters.tags });
      const answer = await api("/task-counts?" + countQuery.toString());
      const capped = new Set(answer.capped || []);
      const items = [];
      let total = 0;
      for (const state of STATES) {
        const n = answer.counts[state] || 0;
        total += n;
        if (!n && state !== filters.state) continue;
        const label = state + ": " + n + (capped.has(state) ? "+" : "");
        items.push(el("li", {}, el("button", { type: "button", "data-state": state,
          "aria-pressed": state === filters.state ? "true" : "false",
          onclick: () => {
            location.hash = listHash(Object.assign({}, filters,
              { state: state === filters.state ? "" : state }));
          } }, label)));
      }
      counts.replaceChildren(
        el("li", { class: "muted", id: "count-total" }, "All: " + total + (capped.size ? "+" : "")),
        ...items);
    }

    async function loadPage() {
      const q = new URLSearchParams(query);
      q.set("view", "BASIC");
      q.set("page_size", String(PAGE_SIZE));
      if (pageToken) q.set("page_token", pageToken);
      const answer = await api("/tasks?" + q.toString());
      rows.clear();
      const rowOf = (task) => {
        const tr = taskRow(task);
        rows.set(task.id, tr);
        return tr;
      };
      const trs = filters.group ? groupedRows(answer.tasks || [], rowOf)
        : (answer.tasks || []).map(rowOf);
      if (!trs.length) {
        trs.push(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No tasks match.")));
      }
      body.replaceChildren(...trs);
      caption.textContent =  // this view's own caption: a late answer of a view left behind
        // (the address changed meanwhile) must not write into the next one's
        "Tasks, newest first: " + (answer.tasks || []).length + " on this page";
      const links = [];
      if (pageToken) {
        links.push(el("a", { href: listHash(filters) }, "First page"));
        const back = stack.slice(0, -1);
        links.push(el("a", { href: listHash(filters,
          { page: stack[stack.length - 1] || "", back: back.join(".") }) }, "Previous page"));
      }
      if (answer.next_page_token) {
        links.push(el("a", { href: listHash(filters, { page: answer.next_page_token,
          back: stack.concat(pageToken ? [pageToken] : []).join(".") }), rel: "next" },
        "Next page"));
      }
      pager.replaceChildren(...links);
    }

    const refresh = () => Promise.all([loadPage(), loadCounts()]).catch(failed);
    const later = debounce(refresh, 1000);
    refresh();
    follow(query, (kind, data) => {
      if (kind !== "state" || !data || !data.task_id) return;
      const tr = rows.get(data.task_id);
      if (tr) {
        const cell = tr.querySelector("td.state-cell");
        cell.replaceChildren(stateBadge(data.state));
      }
      if (!pageToken || tr) later();
    }, refresh);
  }

  function workflowOf(task) {
    const tags = task.tags || {};
    return { id: tags[WORKFLOW_TAG] || "", name: tags["ms-submitter-workflow-name"] || "",
      stage: tags["ms-submitter-workflow-stage"] || "", engine: tags["ms-submitter-name"] || "" };
  }

  /** The page's rows under one heading row per submitter workflow and stage, the groups in
   * the order of their newest task (tasks of no workflow last). */
  function groupedRows(tasks, rowOf) {
    const groups = new Map();
    for (const task of tasks) {
      const wf = workflowOf(task);
      const key = wf.id ? JSON.stringify([wf.id, wf.stage]) : "";
      if (!groups.has(key)) groups.set(key, { wf, tasks: [] });
      groups.get(key).tasks.push(task);
    }
    const keys = [...groups.keys()].filter(Boolean);
    if (groups.has("")) keys.push("");
    const trs = [];
    for (const key of keys) {
      const { wf, tasks: members } = groups.get(key);
      const heading = el("th", { colspan: 6, scope: "colgroup" });
      if (wf.id) {
        heading.append("Workflow ", el("a", { href: "#/workflow/" + encodeURIComponent(wf.id) },
          wf.name || wf.id), wf.stage ? " · stage " + wf.stage : " · no stage");
      } else {
        heading.append("No submitter workflow");
      }
      heading.append(el("span", { class: "muted" }, " (" + members.length +
        (members.length === 1 ? " task)" : " tasks)")));
      trs.push(el("tr", { class: "group-row", "data-group": key }, heading));
      trs.push(...members.map(rowOf));
    }
    return trs;
  }

  function taskRow(task) {
    const times = taskTimes(task);
    const wf = workflowOf(task);
    const workflowCell = el("td", { "data-label": wf.id ? "Workflow" : null });
    if (wf.id) {
      workflowCell.append(el("a", { href: "#/workflow/" + encodeURIComponent(wf.id) },
        wf.name || wf.id));
      const detail = [wf.engine, wf.stage].filter(Boolean).join(" · ");
      if (detail) workflowCell.append(el("div", { class: "muted", text: detail }));
    }
    return el("tr", { "data-task-id": task.id },
      el("td", {}, el("a", { href: "#/task/" + encodeURIComponent(task.id) },
        task.name || task.id)),
      el("td", { class: "state-cell" }, stateBadge(task.state)),
      workflowCell,
      el("td", { class: "wide" }, shownTime(task.creation_time)),
      el("td", { class: "wide" }, times.ended !== null ? shownTime(new Date(times.ended).toISOString()) : ""),
      el("td", { class: "num", "data-label": times.took !== null ? "Duration" : null },
        duration(times.took)));
  }

  // ---------------------------------------------------------------- task page
  function facts(pairs) {
    const dl = el("dl", { class: "facts" });
    for (const [term, value] of pairs) {
      if (value === undefined || value === null || value === "") continue;
      dl.append(el("dt", {}, term), el("dd", {}, value));
    }
    return dl;
  }

  function table(caption, headings, rows) {
    if (!rows.length) return el("p", { class: "muted" }, "None.");
    return el("div", { class: "scroll" }, el("table", {},
      el("caption", { class: "muted" }, caption),
      el("thead", {}, el("tr", {}, headings.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c)))))));
  }

  function timeline(task) {
    const items = [[parseTime(task.creation_time), "Created (QUEUED)"]];
    (task.logs || []).forEach((attempt, a) => {
      const label = (task.logs.length > 1 ? "attempt " + (a + 1) + ": " : "");
      items.push([parseTime(attempt.start_time), label + "started (INITIALIZING)"]);
      (attempt.logs || []).forEach((log, i) => {
        items.push([parseTime(log.start_time), label + "executor " + i + " started (RUNNING)"]);
        items.push([parseTime(log.end_time), label + "executor " + i + " ended, exit code " +
          (log.exit_code === undefined ? "?" : log.exit_code)]);
      });
      items.push([parseTime(attempt.end_time), label + "ended"]);
    });
    const known = items.filter(([t]) => t !== null).sort((x, y) => x[0] - y[0]);
    const list = el("ol", { class: "timeline" }, known.map(([t, text]) =>
      el("li", {}, el("time", { datetime: new Date(t).toISOString() },
        shownTime(new Date(t).toISOString())), " ", text)));
    list.append(el("li", {}, "Now: ", stateBadge(task.state)));
    return list;
  }

  const LIVE_TAIL_BYTES = 10240;

  // The output so far of the executor a RUNNING task is running (the first one without
  // an executor log in the last attempt), or null.
  async function liveOutput(task) {
    if (task.state !== "RUNNING") return null;
    const attempts = task.logs || [];
    const index = ((attempts[attempts.length - 1] || {}).logs || []).length;
    if (index >= (task.executors || []).length) return null;
    const base = "/tasks/" + encodeURIComponent(task.id) + "/executors/" + index + "/";
    const [stdout, stderr] = await Promise.all(["stdout", "stderr"].map((stream) =>
      apiText(base + stream + "?tail=" + LIVE_TAIL_BYTES)));
    return { index, stdout, stderr };
  }

  function liveText(answer, id) {
    return answer.note !== undefined ? el("p", { class: "muted", id }, answer.note)
      : el("pre", { class: "live", id }, answer.text);
  }

  function taskView(task, onCancel, running) {
    const times = taskTimes(task);
    const cancel = el("button", { type: "button", class: "danger", id: "cancel",
      disabled: ENDED.has(task.state) || task.state === "CANCELING", onclick: onCancel },
    "Cancel task");
    const executors = (task.executors || []).map((ex, i) => el("div", {},
      el("h3", {}, "Executor " + i),
      facts([["Image", el("code", {}, ex.image || "")],
        ["Command", el("pre", { class: "command" }, JSON.stringify(ex.command || []))],
        ["Workdir", ex.workdir], ["stdin", ex.stdin], ["stdout", ex.stdout],
        ["stderr", ex.stderr], ["Env", ex.env ? el("pre", {}, Object.entries(ex.env)
          .map(([k, v]) => k + "=" + v).join("\n")) : null],
        ["Ignore error", ex.ignore_error ? "yes" : null]])));
    const outputSizes = new Map();
    for (const attempt of task.logs || []) {
      for (const out of attempt.outputs || []) outputSizes.set(out.path + "\u0000" + out.url, out.size_bytes);
    }
    const inputs = (task.inputs || []).map((item) => [item.name || "", item.type || "FILE",
      el("code", {}, item.url || (item.content !== undefined ? "(content)" : "")),
      el("code", {}, item.path || ""),
      item.content !== undefined ? bytes(new TextEncoder().encode(item.content).length) : ""]);
    const outputs = (task.outputs || []).map((item) => [item.name || "", item.type || "FILE",
      el("code", {}, item.path || ""), el("code", {}, item.url || ""),
      bytes(outputSizes.get(item.path + "\u0000" + item.url))]);
    const logsSection = el("section", { id: "executor-logs", "aria-labelledby": "h-logs" },
      el("h2", { id: "h-logs" }, "Executor logs"));
    const systemLines = [];
    const metadata = [];
    (task.logs || []).forEach((attempt, a) => {
      const prefix = task.logs.length > 1 ? "Attempt " + (a + 1) + ", " : "";
      (attempt.logs || []).forEach((log, i) => {
        logsSection.append(el("h3", {}, prefix + "executor " + i),
          facts([["Exit code", log.exit_code === undefined ? "" : String(log.exit_code)],
            ["Started", shownTime(log.start_time)], ["Ended", shownTime(log.end_time)]]),
          el("h4", {}, "stdout (tail)"), el("pre", { class: "stdout" }, log.stdout || ""),
          el("h4", {}, "stderr (tail)"), el("pre", { class: "stderr" }, log.stderr || ""));
      });
      for (const line of attempt.system_logs || []) systemLines.push(prefix + line);
      for (const [k, v] of Object.entries(attempt.metadata || {})) metadata.push([prefix + k, String(v)]);
    });
    if (logsSection.childElementCount === 1 && !running) logsSection.append(el("p", { class: "muted" }, "No executor has run yet."));
    if (running) {
      logsSection.append(el("h3", {}, "Executor " + running.index + " (running)"),
        el("h4", {}, "stdout (so far)"), liveText(running.stdout, "live-stdout"),
        el("h4", {}, "stderr (so far)"), liveText(running.stderr, "live-stderr"));
    }
    const res = task.resources || {};
    const wf = workflowOf(task);
    return [
      el("p", {}, el("a", { href: "#/" }, "← All tasks")),
      el("div", { class: "heading" }, el("h1", { id: "task-name" }, task.name || task.id),
        stateBadge(task.state), cancel),
      facts([["Id", el("code", {}, task.id)], ["Description", task.description],
        ["Created", shownTime(task.creation_time)],
        ["Ended", times.ended !== null ? shownTime(new Date(times.ended).toISOString()) : ""],
        ["Duration", duration(times.took)],
        ["Workflow", wf.id ? el("a", { href: "#/workflow/" + encodeURIComponent(wf.id) },
          wf.name || wf.id) : null]]),
      el("section", { "aria-labelledby": "h-timeline" }, el("h2", { id: "h-timeline" }, "Timeline"), timeline(task)),
      el("section", { "aria-labelledby": "h-sys" }, el("h2", { id: "h-sys" }, "System logs"),
        systemLines.length ? el("pre", { id: "system-logs" }, systemLines.join("\n"))
          : el("p", { class: "muted" }, "None.")),
      logsSection,
      el("section", { "aria-labelledby": "h-exec" }, el("h2", { id: "h-exec" }, "Executors"), executors),
      el("section", { "aria-labelledby": "h-in" }, el("h2", { id: "h-in" }, "Inputs"),
        table("Inputs", ["Name", "Type", "Source", "Path", "Size"], inputs)),
      el("section", { "aria-labelledby": "h-out" }, el("h2", { id: "h-out" }, "Outputs"),
        table("Outputs", ["Name", "Type", "Path", "Destination", "Size"], outputs)),
      el("section", { "aria-labelledby": "h-res" }, el("h2", { id: "h-res" }, "Resources"),
        facts([["CPU cores", res.cpu_cores], ["RAM (GB)", res.ram_gb], ["Disk (GB)", res.disk_gb],
          ["Preemptible", res.preemptible === undefined ? null : String(res.preemptible)],
          ["Zones", (res.zones || []).join(", ")],
          ["Backend parameters", res.backend_parameters ? JSON.stringify(res.backend_parameters) : null]])),
      el("section", { "aria-labelledby": "h-tags" }, el("h2", { id: "h-tags" }, "Tags"),
        table("Tags", ["Key", "Value"], Object.entries(task.tags || {}).map(([k, v]) => [k, v]))),
      el("section", { "aria-labelledby": "h-meta" }, el("h2", { id: "h-meta" }, "Metadata"),
        table("Metadata reported by the backend", ["Key", "Value"], metadata)),
    ];
  }

  function taskPage(taskId) {
    show(el("p", { class: "muted" }, "Loading task…"));
    let current = null;

    async function cancel() {
      if (!window.confirm("Cancel this task?")) return;
      try {
        await api("/tasks/" + encodeURIComponent(taskId) + ":cancel", { method: "POST" });
        say("Cancel requested.");
        await load();
      } catch (error) { failed(error); }
    }

    async function load() {
      try {
        const task = await api("/tasks/" + encodeURIComponent(taskId) + "?view=FULL");
        const running = await liveOutput(task);
        current = task;
        const focused = document.activeElement && document.activeElement.id;
        show(...taskView(task, cancel, running));
        if (focused) { const again = document.getElementById(focused); if (again) again.focus(); }
        document.title = "Task " + (task.name || task.id) + " · TES dashboard";
        if (ENDED.has(task.state)) stopPolling();
      } catch (error) { failed(error); }
    }

    const later = debounce(load, 500);
    load();
    follow(new URLSearchParams(), (kind, data) => {
      if (data && data.task_id === taskId) later();
    }, () => { if (!current || !ENDED.has(current.state)) load(); });
    // Output tails grow without an event: read them again while the task is active.
    live.tails = setInterval(() => { if (current && !ENDED.has(current.state)) load(); }, POLL_MS);
  }

  // ---------------------------------------------------------------- workflow page
  const WORKFLOW_MAX_PAGES = 20;

  function workflowPage(workflowId) {
    show(el("p", { class: "muted" }, "Loading workflow…"));
    const query = filterQuery({ tags: [[WORKFLOW_TAG, workflowId]] });

    async function load() {
      const tasks = [];
      let pageToken = "";
      let pages = 0;
      do {
        const q = new URLSearchParams(query);
        q.set("view", "BASIC");
        q.set("page_size", "500");
        if (pageToken) q.set("page_token", pageToken);
        const answer = await api("/tasks?" + q.toString());
        tasks.push(...(answer.tasks || []));
        pageToken = answer.next_page_token || "";
        pages += 1;
      } while (pageToken && pages < WORKFLOW_MAX_PAGES);
      const focused = document.activeElement && document.activeElement.id;
      show(...workflowView(workflowId, tasks.reverse(), Boolean(pageToken)));
      if (focused) { const again = document.getElementById(focused); if (again) again.focus(); }
    }

    const later = debounce(() => load().catch(failed), 1000);
    load().catch(failed);
    follow(query, later, () => load().catch(failed));
  }

  function workflowView(workflowId, tasks, truncated) {
    const spans = tasks.map((task) => ({ task, times: taskTimes(task) }));
    let first = null;
    let last = null;
    const byState = {};
    for (const { task, times } of spans) {
      byState[task.state] = (byState[task.state] || 0) + 1;
      if (times.created !== null && (first === null || times.created < first)) first = times.created;
      const end = times.ended !== null ? times.ended : Date.now();
      if (last === null || end > last) last = end;
    }
    const span = first !== null && last !== null ? Math.max(last - first, 1) : 1;
    const pct = (ms) => (100 * (ms - first) / span).toFixed(3) + "%";
    const rows = spans.map(({ task, times }) => {
      const track = el("div", { class: "track", role: "img", "aria-label":
        (task.name || task.id) + ": " + task.state + ", queued " +
        duration(times.started !== null ? times.started - times.created : null) +
        ", total " + duration(times.took) });
      if (times.created !== null) {
        const end = times.ended !== null ? times.ended : Date.now();
        const runFrom = times.started !== null ? times.started : end;
        const queued = el("span", { class: "queued" });
        queued.style.left = pct(times.created);
        queued.style.width = pct(first + runFrom - times.created);
        track.append(queued);
        if (times.started !== null) {
          const ran = el("span", { class: "ran " + task.state });
          ran.style.left = pct(times.started);
          ran.style.width = pct(first + end - times.started);
          track.append(ran);
        }
      }
      return el("li", {}, el("a", { class: "label", href: "#/task/" + encodeURIComponent(task.id),
        title: task.name || task.id }, task.name || task.id), track);
    });
    const wf = tasks.length ? workflowOf(tasks[0]) : { name: "", engine: "" };
    return [
      el("p", {}, el("a", { href: "#/" }, "← All tasks")),
      el("h1", {}, "Workflow " + (wf.name || workflowId)),
      facts([["Workflow id", el("code", {}, workflowId)], ["Engine", wf.engine],
        ["Tasks", String(tasks.length) + (truncated ? " (the first ones only)" : "")],
        ["States", Object.entries(byState).map(([s, n]) => s + ": " + n).join(", ")],
        ["Wall time", first !== null ? duration(last - first) : ""]]),
      el("h2", {}, "Where the time went"),
      el("p", { class: "muted" }, "Each bar: grey while queued, coloured while running; oldest task first."),
      el("div", { class: "axis", "aria-hidden": "true" },
        el("span", {}, first !== null ? shownTime(new Date(first).toISOString()) : ""),
        el("span", {}, last !== null ? shownTime(new Date(last).toISOString()) : "")),
      el("ol", { class: "gantt", id: "gantt" }, rows),
    ];
  }

  // ---------------------------------------------------------------- start
  async function start() {
    try {
      const answer = await fetch("/dashboard/config.json").then((r) => r.json());
      Object.assign(config, answer);
    } catch (e) { /* keep the defaults */ }
    try { await oidcReturn(); } catch (error) { failed(error); }
    renderSignin(config.auth && !token());
    window.addEventListener("hashchange", () => { route(); main().focus(); });
    route();
  }

  document.addEventListener("DOMContentLoaded", start);
}());
