// Supervisor console, live contact centre: queue state per skill (GET /api/queues), the
// agents with buttons for their queue membership (GET /api/agents, POST .../login etc.)
// and the own/partner load splits (GET /api/splits, PUT /api/splits/{skill}). Polled
// every couple of seconds; only loaded when the node follows Asterisk over AMI.
// Rows are updated in place, not rebuilt, so a keyboard user's focus survives a poll.
"use strict";

(() => {
  const { el, getJson, send, t } = Kanaal;
  const root = document.getElementById("centre");
  if (!root) return;
  const every = Number(root.dataset.pollMs) || 2000;
  const say = (id, text) => { document.getElementById(id).textContent = text; };
  const failure = (result) => (result.body && result.body.message) || "HTTP " + result.status;

  function duration(s) {
    if (s === null || s === undefined) return "–";
    const whole = Math.round(s);
    return whole < 60 ? whole + " s" : Math.floor(whole / 60) + " min " + String(whole % 60).padStart(2, "0") + " s";
  }

  // ---------------------------------------------------------------- queues
  function showSync(data) {
    const badge = document.getElementById("sync");
    const [state, text] = data.in_sync ? ["ok", t("js.in_sync")]
      : data.stale_s === null ? ["warn", t("js.not_synced")] : ["warn", t("js.stale_for") + " " + duration(data.stale_s)];
    badge.className = "badge " + state;
    badge.textContent = text;
  }

  // Callers in a split skill's side queues (general-own, general-partner) wait for that skill.
  function waitingBySkill(queues) {
    const out = {};
    for (const [name, q] of Object.entries(queues || {})) {
      const skill = name.replace(/-(own|partner)$/, "");
      const entry = out[skill] || (out[skill] = { waiting: 0, longest: 0 });
      entry.waiting += q.waiting;
      entry.longest = Math.max(entry.longest, q.longest_wait_s);
    }
    return out;
  }

  function queueRow(name, s, w) {
    const num = (n, cls) => el("td", { class: "num" + (cls ? " " + cls : "") }, n ?? 0);
    // Callers waiting with nobody ready is what a supervisor must act on.
    const hot = w.waiting && !s.ready ? "hot" : "";
    return el("tr", { "data-skill": name }, el("td", {}, name), num(s.logged_in), num(s.ready),
      num(s.busy), num(s.paused), num(s.wrap_up), num(w.waiting, hot),
      num(w.waiting ? duration(w.longest) : "–", hot));
  }

  async function queues() {
    let data;
    try {
      data = await getJson("/api/queues");
    } catch (error) {
      const badge = document.getElementById("sync");
      badge.className = "badge warn";
      badge.textContent = t("js.queues_unavailable");
      return;
    }
    showSync(data);
    const waiting = waitingBySkill(data.queues);
    const names = [...new Set([...Object.keys(data.skills), ...Object.keys(waiting)])].sort();
    const body = document.getElementById("queues");
    body.replaceChildren(...names.map((name) =>
      queueRow(name, data.skills[name] || {}, waiting[name] || { waiting: 0, longest: 0 })));
    if (!names.length) {
      body.append(el("tr", {}, el("td", { class: "muted", colSpan: 8 }, t("js.nobody_queued"))));
    }
    otherCentres(data.others, body.closest("table").tHead);
  }

  // The other Asterisks' queues, as their nodes broadcast them: with two Asterisks a
  // supervisor on either node sees both. A node that stopped broadcasting drops out
  // after 15 s (server side) rather than leaving a frozen table.
  function otherCentres(others, head) {
    const box = document.getElementById("other-centres");
    if (!box) return;
    box.replaceChildren(...(others || []).map((o) => {
      const waiting = waitingBySkill(o.queues);
      const names = [...new Set([...Object.keys(o.skills || {}), ...Object.keys(waiting)])].sort();
      const [state, text] = o.in_sync ? ["ok", t("js.in_sync")] : ["warn", t("js.not_synced")];
      return el("div", { class: "other-centre", "data-asterisk": o.asterisk },
        el("h3", {}, t("js.other_asterisk") + " " + o.asterisk + " ",
          el("span", { class: "badge " + state }, text)),
        el("table", { class: "grid" }, head.cloneNode(true), el("tbody", {},
          ...names.map((name) => queueRow(name, (o.skills || {})[name] || {},
                                          waiting[name] || { waiting: 0, longest: 0 })))));
    }));
  }

  // ---------------------------------------------------------------- agents
  const agentRows = new Map(); // code -> { row, cells, state, login, pause }
  let agentsShown = null; // the codes in the table, in order

  // The live state from AMI (GET /api/agent-states) where there is one; the directory's
  // login/pause flags otherwise (e.g. before the first resync).
  const LIVE = { ready: "ok", ringing: "prio", busy: "prio", wrap_up: "prio", paused: "warn",
                 unavailable: "warn", logged_out: "" };
  const LIVE_TEXT = { ready: t("js.ready"), ringing: t("js.ringing"), busy: t("js.busy"),
                      wrap_up: t("js.wrap_up"), paused: t("js.paused"),
                      unavailable: t("js.unreachable"), logged_out: t("js.logged_out") };

  function stateOf(a, live) {
    if (!a.active) return ["", t("js.inactive")];
    if (!a.logged_in) return ["", t("js.logged_out")];
    if (live && live.state in LIVE && live.state !== "logged_out") {
      const reason = live.state === "paused" && (live.reason || a.pause_reason);
      const since = live.since_s === null ? "" : " · " + duration(live.since_s);
      return [LIVE[live.state], LIVE_TEXT[live.state] + (reason ? " (" + reason + ")" : "") + since];
    }
    if (a.paused) return ["warn", t("js.paused") + (a.pause_reason ? " (" + a.pause_reason + ")" : "")];
    return ["ok", t("js.in_queues")];
  }

  function newAgentRow(code) {
    const cells = [0, 1, 2, 3].map(() => el("td", {}));
    const calls = el("td", { class: "num" });
    const state = el("span", { class: "badge" });
    const login = el("button", { type: "button", class: "ghost" });
    const pause = el("button", { type: "button", class: "ghost" });
    login.addEventListener("click", () => act(code, login.dataset.action));
    pause.addEventListener("click", () => act(code, pause.dataset.action));
    cells[0].className = "mono";
    const row = el("tr", { "data-code": code }, ...cells, el("td", {}, state), calls,
      el("td", { class: "actions" }, login, pause));
    return { row, cells, state, calls, login, pause };
  }

  function updateAgentRow(r, a, live) {
    const skills = Object.entries(a.skills).map(([skill, p]) => skill + " " + p).join(", ");
    [a.code, a.name, a.centre || a.centre_kind, skills || "–"].forEach((text, i) => { r.cells[i].textContent = text; });
    const [cls, text] = stateOf(a, live);
    r.state.className = "badge " + cls;
    r.state.textContent = text;
    r.calls.textContent = live ? live.calls_today : "–";
    r.login.dataset.action = a.logged_in ? "logout" : "login";
    r.login.textContent = a.logged_in ? t("js.log_out") : t("js.log_in");
    r.login.setAttribute("aria-label", r.login.textContent + " " + a.name);
    r.login.disabled = !a.active && !a.logged_in;
    r.pause.dataset.action = a.paused ? "resume" : "pause";
    r.pause.textContent = a.paused ? t("js.resume") : t("js.pause");
    r.pause.setAttribute("aria-label", r.pause.textContent + " " + a.name);
    r.pause.disabled = !a.logged_in;
  }

  async function agents() {
    let list, live;
    try {
      list = (await getJson("/api/agents")).agents;
    } catch (error) {
      say("agents-result", t("js.agents_unavailable"));
      return;
    }
    try {
      live = new Map((await getJson("/api/agent-states")).agents.map((s) => [s.code, s]));
    } catch (error) {
      live = new Map(); // the directory's view still shows who is logged in
    }
    const body = document.getElementById("agents");
    const codes = list.map((a) => a.code);
    for (const a of list) {
      if (!agentRows.has(a.code)) agentRows.set(a.code, newAgentRow(a.code));
      updateAgentRow(agentRows.get(a.code), a, live.get(a.code));
    }
    // Re-attach only when the set of agents changed: moving a row would drop its focus.
    if (codes.join() !== agentsShown) {
      agentsShown = codes.join();
      for (const code of [...agentRows.keys()]) if (!codes.includes(code)) agentRows.delete(code);
      body.replaceChildren(...codes.map((code) => agentRows.get(code).row));
      if (!codes.length) body.append(el("tr", {}, el("td", { class: "muted", colSpan: 7 }, t("js.no_agents"))));
    }
  }

  function actionDone(code, action, body) {
    if (action === "login" && body && body.complete === false) {
      const left = body.problems.map((p) => p.skill + ": " + p.reason).join("; ");
      return code + " " + t("js.logged_in") + ": " + body.queues.length + " " + t("js.queues") + "; " + t("js.not_joined") + ": " + left;
    }
    const verbs = { login: t("js.logged_in"), logout: t("js.logged_out"), pause: t("js.paused"), resume: t("js.resumed") };
    return code + " " + verbs[action];
  }

  async function act(code, action) {
    const reason = document.getElementById("pause-reason").value;
    const result = await send("POST", "/api/agents/" + encodeURIComponent(code) + "/" + action,
      action === "pause" ? { reason } : null);
    say("agents-result", result.ok ? actionDone(code, action, result.body) : action + " " + code + " " + t("js.failed") + ": " + failure(result));
    await Promise.all([agents(), queues()]);
  }

  // ---------------------------------------------------------------- load splits
  const splitRows = new Map(); // skill -> { form, range, shown, stored, note, dirty }
  let splitsShown = null; // the skills shown, in order
  const sides = (own) => t("js.own") + " " + own + " % · " + t("js.partner") + " " + (100 - own) + " %";

  function showSplit(s) {
    const own = Number(s.range.value);
    s.shown.textContent = sides(own);
    s.range.setAttribute("aria-valuetext", sides(own));
  }

  function newSplitRow(skill) {
    const id = "split-" + skill;
    const range = el("input", { type: "range", id, name: "own_pct", min: 0, max: 100, step: 5 });
    const shown = el("output", { class: "split-value" });
    const stored = el("span", { class: "muted" });
    const note = el("span", { class: "split-note muted", role: "status" });
    const form = el("form", { class: "split", "data-skill": skill },
      el("label", { htmlFor: id }, skill), shown, range,
      el("button", { type: "submit" }, t("js.save")), el("div", { class: "split-status" }, stored, " ", note));
    const s = { form, range, shown, stored, note, dirty: false };
    range.addEventListener("input", () => { s.dirty = true; note.className = "split-note muted"; note.textContent = t("js.not_saved_yet"); showSplit(s); });
    form.addEventListener("submit", (event) => { event.preventDefault(); saveSplit(skill, s); });
    return s;
  }

  function updateSplitRow(s, split) {
    s.stored.textContent = t("js.stored") + ": " + split.own_pct + " / " + split.partner_pct;
    if (s.dirty) return; // the supervisor is moving it: a poll must not snap it back
    s.range.value = split.own_pct;
    showSplit(s);
  }

  async function saveSplit(skill, s) {
    const own = Number(s.range.value);
    const result = await send("PUT", "/api/splits/" + encodeURIComponent(skill), { own_pct: own, partner_pct: 100 - own });
    if (!result.ok) {
      s.note.className = "split-note alert-text";
      s.note.textContent = t("js.not_saved") + ": " + failure(result);
      return;
    }
    s.dirty = false;
    updateSplitRow(s, result.body);
    s.note.className = "split-note " + (result.body.warning ? "alert-text" : "ok-text");
    s.note.textContent = result.body.warning || t("js.saved");
  }

  async function splits() {
    let list;
    try {
      list = (await getJson("/api/splits")).splits;
    } catch (error) {
      document.getElementById("splits").replaceChildren(el("p", { class: "muted" }, t("js.splits_unavailable")));
      return;
    }
    const box = document.getElementById("splits");
    for (const split of list) {
      if (!splitRows.has(split.skill)) splitRows.set(split.skill, newSplitRow(split.skill));
      updateSplitRow(splitRows.get(split.skill), split);
    }
    const skills = list.map((split) => split.skill);
    if (skills.join() !== splitsShown) {
      splitsShown = skills.join();
      box.replaceChildren(...skills.map((skill) => splitRows.get(skill).form));
      if (!skills.length) box.append(el("p", { class: "muted" }, t("js.no_splits")));
    }
  }

  // Chained rather than setInterval: a slow answer must not pile up requests.
  async function poll() {
    await Promise.all([queues(), agents(), splits()]);
    setTimeout(poll, every);
  }
  poll();
})();
