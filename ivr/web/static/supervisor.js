// Supervisor console: the wallboard frame arrives over /ws/wallboard every few seconds;
// the recent contacts are polled from the JSON API (the reports: reports.js).
"use strict";

(() => {
  const { el, setText, fillRows, when, getJson, socket, t } = Kanaal;

  function bars(tbodyId, counts, emptyText) {
    const entries = Object.entries(counts || {}).sort((a, b) => b[1] - a[1]);
    const max = Math.max(1, ...entries.map((e) => e[1]));
    fillRows(tbodyId, entries.map(([name, n]) => {
      const bar = el("span", { class: "bar" });
      bar.style.width = Math.round((100 * n) / max) + "%"; // CSSOM: allowed by the CSP
      return [name, el("td", { class: "bar-cell" }, bar), el("td", { class: "num" }, n)];
    }), 3, emptyText);
  }

  const sum = (counts) => Object.values(counts || {}).reduce((a, b) => a + b, 0);

  function wallboard(frame) {
    setText("calls", frame.calls);
    setText("handoffs-total", sum(frame.handoffs));
    setText("dropped-total", sum(frame.dropped_at));
    setText("backlog", frame.outbox_backlog ? sum(frame.outbox_backlog) : null);
    setText("desktops", frame.desktops);
    setText("database", frame.database_up ? t("js.up") : t("js.down"));
    document.getElementById("database").dataset.state = frame.database_up ? "ok" : "down";
    bars("outcomes", frame.outcomes, t("js.no_calls"));
    bars("handoffs", frame.handoffs, t("js.no_handoffs"));
    bars("dropped", frame.dropped_at, t("js.nobody_dropped"));
    bars("intents", frame.intents, t("js.no_intents"));
  }

  async function recent() {
    try {
      const data = await getJson("/api/contacts?limit=25");
      fillRows("recent", data.contacts.map((c) => [when(c.started_at), c.channel, c.caller,
        c.customer, c.intent, c.scenario, c.skill, c.outcome, c.dropped_at, c.wrapup_code]), 10,
        t("js.no_contacts"));
    } catch (error) {
      fillRows("recent", [], 10, t("js.contacts_unavailable"));
    }
  }

  socket("/ws/wallboard", (frame) => {
    wallboard(frame);
  });
  recent();
  setInterval(recent, 10000);
})();
