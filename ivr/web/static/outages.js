// Supervisor console: outages callers hear, and surge alerts to confirm or dismiss.
// Data from GET /api/outages and /api/surge; alerts pushed over /ws/alerts; actions
// through the JSON API with the session's CSRF header (Kanaal.send).
"use strict";

(() => {
  const { el, getJson, send, socket, when, t } = Kanaal;
  const body = document.getElementById("outages");
  if (!body) return;
  const result = document.getElementById("outage-result");
  const alertsList = document.getElementById("surge-alerts");
  const LABELS = { end: t("js.out.end"), confirm: t("js.out.confirm"), dismiss: t("js.out.dismiss") };

  function actionButton(outage, action) {
    const button = el("button", { type: "button", class: "small", "data-action": action,
                                  "data-outage": String(outage.id) }, LABELS[action]);
    button.addEventListener("click", async () => {
      button.disabled = true;
      const answer = await send("POST", `/api/outages/${outage.id}/${action}`);
      if (!answer.ok) result.textContent = `${t("js.out.failed")} ${answer.body?.message ?? answer.status}`;
      await refresh();
    });
    return button;
  }

  function row(o) {
    const actions = el("td", {});
    if (o.status === "pending") actions.append(actionButton(o, "confirm"), " ", actionButton(o, "dismiss"));
    if (["pending", "active", "scheduled"].includes(o.status)) actions.append(" ", actionButton(o, "end"));
    const message = o.messages[document.documentElement.lang] ?? Object.values(o.messages)[0] ?? "";
    return el("tr", { "data-status": o.status, "data-outage": String(o.id) },
      el("td", {}, String(o.id)), el("td", {}, el("span", { class: "badge" }, o.status)),
      el("td", {}, o.regions.join(", ")), el("td", {}, message), el("td", {}, o.source),
      el("td", {}, o.ends_at ? when(o.ends_at) : t("js.out.open")),
      el("td", { class: "num" }, String(o.subscribers)), actions);
  }

  async function refresh() {
    try {
      const data = await getJson("/api/outages");
      body.replaceChildren(...(data.outages.length ? data.outages.map(row)
        : [el("tr", {}, el("td", { class: "muted", colSpan: 8 }, t("js.out.none")))]));
      const surge = await getJson("/api/surge");
      const state = document.getElementById("surge-state");
      if (!surge.enabled) state.textContent = t("js.out.off");
      else if (surge.surges.length) state.textContent = `${t("js.out.surging")}: ${surge.surges.map((s) => s.region || s.key).join(", ")}`;
      else state.textContent = surge.learning ? t("js.out.learning") : t("js.out.watching");
    } catch (err) {
      result.textContent = String(err);
    }
  }

  function showAlert(alert) {
    if (alert.type !== "surge") { refresh(); return; }
    const where = alert.region || alert.key;
    const text = alert.state === "started"
      ? `${t("js.out.surge_in")} ${where}: ${alert.calls} ${t("js.out.calls")} ${alert.expected}` +
        (alert.status === "pending" ? ` — ${t("js.out.pending")}` : "")
      : `${t("js.out.surge_over")} ${where}`;
    const item = el("li", { class: "alert", "data-state": alert.state, "data-outage": String(alert.outage ?? "") },
      el("span", {}, `${when(alert.at)} ${text} `));
    if (alert.state === "started" && alert.status === "pending" && alert.outage) {
      const outage = { id: alert.outage };
      item.append(actionButton(outage, "confirm"), " ", actionButton(outage, "dismiss"));
    }
    alertsList.prepend(item);
    while (alertsList.children.length > 8) alertsList.lastChild.remove();
    refresh();
  }

  document.getElementById("outage-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const messages = {};
    for (const lang of ["en", "nl"]) if (form.get(lang)) messages[lang] = form.get(lang);
    const payload = { regions: String(form.get("regions")).split(","), messages };
    if (form.get("ends_at")) payload.ends_at = new Date(String(form.get("ends_at"))).toISOString();
    const answer = await send("POST", "/api/outages", payload);
    result.textContent = answer.ok ? t("js.out.posted") : `${t("js.out.failed")} ${answer.body?.message ?? answer.status}`;
    if (answer.ok) event.target.reset();
    await refresh();
  });

  socket("/ws/alerts", showAlert);
  refresh();
  setInterval(refresh, 30000);
})();
