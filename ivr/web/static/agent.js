// Agent desktop: screen-pops arrive over /ws/screenpop the moment the IVR hands a caller
// over; the full record (confidence, orders, outages, history) is then fetched from
// GET /api/contacts/{session}. The wrap-up is saved with POST .../wrapup.
"use strict";

(() => {
  const { el, setText, fillRows, when, getJson, post, send, socket, t } = Kanaal;
  const say = (id, text) => { document.getElementById(id).textContent = text; }; // status lines
  const pops = new Map(); // session -> screen-pop context, newest last
  let current = null;

  function renderList() {
    const list = document.getElementById("pops");
    list.replaceChildren();
    const sessions = [...pops.keys()].reverse();
    if (!sessions.length) list.append(el("li", { class: "muted" }, t("js.none_yet")));
    for (const session of sessions) {
      const ctx = pops.get(session);
      const name = ctx.customer ? ctx.customer.name : t("js.unknown_caller");
      const item = el("li", { class: session === current ? "active" : "" },
        el("button", { type: "button", class: "link", onclick: () => show(session) },
          el("strong", {}, name), el("span", { class: "muted" }, " · " + (ctx.intent || t("js.no_intent")) + " · " + (ctx.skill || ""))));
      if (ctx.wrapup) item.append(el("span", { class: "badge ok" }, ctx.wrapup));
      list.append(item);
    }
  }

  function show(session) {
    current = session;
    const ctx = pops.get(session);
    document.getElementById("waiting").hidden = true;
    document.getElementById("pop").hidden = false;
    const customer = ctx.customer;
    setText("customer-name", customer ? customer.name : t("js.unknown_caller"));
    setText("tier", customer ? customer.tier : t("js.not_identified"));
    setText("priority", t("js.priority") + " " + (ctx.priority ?? 0));
    setText("question", ctx.question || t("js.no_question"));
    setText("intent", ctx.intent);
    setText("confidence", "…");
    setText("skill", ctx.skill);
    setText("reason", ctx.reason);
    setText("customer-no", customer ? customer.customer_no : null);
    setText("region", customer ? customer.region : null);
    setText("language", customer ? customer.language : null);
    setText("session", session);
    setText("pin", "PIN …");
    document.getElementById("outage").hidden = true;
    const transcript = document.getElementById("transcript");
    transcript.replaceChildren(...(ctx.transcript || []).map((line) => el("li", {}, line)));
    resetWrapup(ctx);
    renderList();
    loadDetails(session);
  }

  async function loadDetails(session) {
    let view;
    try {
      view = await getJson("/api/contacts/" + encodeURIComponent(session));
    } catch (error) {
      setText("confidence", t("js.unavailable"));
      return;
    }
    if (session !== current) return; // another call was picked meanwhile
    setText("confidence", view.confidence === null ? null : Math.round(view.confidence * 100) + " %");
    const pin = document.getElementById("pin");
    pin.textContent = view.pin_verified ? t("js.pin_verified") : t("js.pin_not_verified");
    pin.className = "badge " + (view.pin_verified ? "ok" : "warn");
    const customer = view.customer;
    const orders = customer ? customer.orders : [];
    fillRows("orders", orders.map((o) => [o.order_no, o.status, o.eta || "–"]), 3,
      customer ? t("js.no_orders") : t("js.not_identified_caller"));
    const history = customer ? customer.history.filter((h) => h.session !== session) : [];
    fillRows("history", history.map((h) => [when(h.started_at), h.channel, h.intent, h.outcome]), 4,
      customer ? t("js.no_history") : t("js.not_identified_caller"));
    // Every channel in one list: calls, texts out and in (with delivery), links opened.
    const timeline = customer ? customer.timeline || [] : [];
    fillRows("timeline", timeline.map((e) => [when(e.at), e.direction ? e.channel + " " + e.direction : e.channel,
      e.summary || e.kind]), 3, customer ? t("js.no_timeline") : t("js.not_identified_caller"));
    // The stored record has the whole dialogue (IVR prompts too), the pop only the gist.
    if ((view.transcript || []).length > (pops.get(session).transcript || []).length) {
      document.getElementById("transcript").replaceChildren(...view.transcript.map((line) => el("li", {}, line)));
    }
    const outages = customer ? customer.outages || [] : [];
    const outage = document.getElementById("outage");
    outage.hidden = !outages.length;
    outage.textContent = outages.length ? t("js.outage_in") + " " + outages[0].region + ": " + outages[0].message : "";
  }

  function resetWrapup(ctx) {
    document.getElementById("wrapup-code").value = ctx.wrapupCode || "";
    document.getElementById("wrapup-note").value = ctx.wrapupNote || "";
    say("wrapup-result", ctx.wrapup ? t("js.saved") + ": " + ctx.wrapup : "");
  }

  document.getElementById("wrapup").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!current) return;
    const code = document.getElementById("wrapup-code");
    const note = document.getElementById("wrapup-note").value;
    const result = await post("/api/contacts/" + encodeURIComponent(current) + "/wrapup", { code: code.value, note });
    if (result.ok) {
      const ctx = pops.get(current);
      ctx.wrapup = code.options[code.selectedIndex].text;
      ctx.wrapupCode = code.value;
      ctx.wrapupNote = note;
      say("wrapup-result", t("js.saved") + ": " + ctx.wrapup);
      renderList();
    } else {
      say("wrapup-result", t("js.not_saved") + ": " + (result.body ? result.body.message : "HTTP " + result.status));
    }
  });

  // Queue state buttons: POST /api/agents/{code}/{login|logout|pause|resume}.
  const bar = document.querySelector("[data-agent-code]");
  const code = bar ? bar.dataset.agentCode : "";
  // Pause reasons are codes in the API and the reports; the page shows their label.
  const reasons = document.getElementById("pause-reason");
  function reasonLabel(reason) {
    const option = reasons ? [...reasons.options].find((o) => o.value === reason) : null;
    return option ? option.textContent : reason;
  }
  async function showAgentState(prefix) {
    try {
      const agent = await getJson("/api/agents/" + encodeURIComponent(code), false);
      const state = !agent.logged_in ? t("js.logged_out") : agent.paused
        ? t("js.paused") + (agent.pause_reason ? " (" + reasonLabel(agent.pause_reason) + ")" : "") : t("js.ready");
      say("agent-state-result", (prefix ? prefix + " · " : "") + t("js.state") + ": " + state);
    } catch (error) {
      say("agent-state-result", (prefix ? prefix + " · " : "") + t("js.queue_state_unavailable"));
    }
  }
  for (const button of document.querySelectorAll("#agent-state button")) {
    button.addEventListener("click", async () => {
      const action = button.dataset.action;
      // The agents API parses JSON bodies (the reason); the other actions send none.
      const body = action === "pause" && reasons ? { reason: reasons.value } : null;
      const result = await send("POST", "/api/agents/" + encodeURIComponent(code) + "/" + action, body);
      if (result.ok) { showAgentState(button.textContent + ": " + t("js.done")); return; }
      say("agent-state-result", button.textContent + " " + t("js.failed") + ": "
        + (result.body && result.body.message ? result.body.message : "HTTP " + result.status));
    });
  }
  if (code) showAgentState("");

  // The open callbacks in this agent's skills: the calls the dialer may ring them for.
  // A slow-changing list (booked minutes ahead), so a minute's refresh is enough.
  async function loadCallbacks() {
    if (!document.getElementById("callbacks")) return;
    try {
      const found = await getJson("/api/callbacks?mine=1&limit=20", false);
      fillRows("callbacks", found.callbacks.map((c) => [when(c.slot_start), c.skill,
        (c.customer_name ? c.customer_name + ": " : "") + (c.question || "–"), c.status]), 4,
        t("js.no_callbacks"));
    } catch (error) {
      fillRows("callbacks", [], 4, t("js.callbacks_unavailable"));
    }
  }
  if (code) { loadCallbacks(); setInterval(loadCallbacks, 60000); }

  socket("/ws/screenpop", (message) => {
    if (message.type !== "screenpop") return;
    const known = pops.get(message.session) || {};
    pops.delete(message.session);
    pops.set(message.session, Object.assign({}, message.context, {
      wrapup: known.wrapup, wrapupCode: known.wrapupCode, wrapupNote: known.wrapupNote }));
    show(message.session);
  });
})();
