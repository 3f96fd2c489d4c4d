// Supervisor console: the wallboard frame arrives over /ws/wallboard every few seconds;
// the contact-reasons report and the recent contacts are polled from the JSON API.
"use strict";

(() => {
  const { el, setText, fillRows, when, getJson, socket } = Kanaal;

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
    setText("database", frame.database_up ? "up" : "DOWN");
    document.getElementById("database").dataset.state = frame.database_up ? "ok" : "down";
    bars("outcomes", frame.outcomes, "no calls ended yet");
    bars("handoffs", frame.handoffs, "no hand-offs yet");
    bars("dropped", frame.dropped_at, "nobody dropped off");
    bars("intents", frame.intents, "no intents yet");
  }

  const pairs = (list) => list.map(([name, n]) => [name, el("td", { class: "num" }, n)]);

  async function reasons() {
    const hours = document.getElementById("hours").value;
    try {
      const report = await getJson("/api/reports/contact-reasons?hours=" + hours);
      setText("reasons-total", report.contacts + " contacts");
      fillRows("by-intent", pairs(report.by_intent), 2, "none");
      fillRows("by-scenario", pairs(report.by_scenario), 2, "none");
      fillRows("by-outcome", pairs(report.by_outcome), 2, "none");
      fillRows("by-dropoff", pairs(report.drop_off_steps), 2, "none");
    } catch (error) {
      setText("reasons-total", "report unavailable");
    }
  }

  async function recent() {
    try {
      const data = await getJson("/api/contacts?limit=25");
      fillRows("recent", data.contacts.map((c) => [when(c.started_at), c.channel, c.caller,
        c.customer, c.intent, c.scenario, c.skill, c.outcome, c.dropped_at, c.wrapup_code]), 10,
        "no contacts yet");
    } catch (error) {
      fillRows("recent", [], 10, "contacts unavailable");
    }
  }

  document.getElementById("hours").addEventListener("change", reasons);
  socket("/ws/wallboard", (frame) => {
    wallboard(frame);
  });
  reasons();
  recent();
  setInterval(reasons, 30000);
  setInterval(recent, 10000);
})();
