// Supervisor console, Reports: contact reasons, containment, drop-off per step, wait and
// handle time per skill, drawn as SVG (charts.js) from /api/reports/summary (the report
// of `ivr report`); the CSV link downloads the same figures.
"use strict";

(() => {
  const { setText, getJson, t } = Kanaal;
  const section = document.getElementById("reports");
  if (!section) return;
  const period = document.getElementById("hours");
  const csv = document.getElementById("report-csv");
  const CONTAINED = ["self_served", "link_sent", "chat"];
  const TO_AGENT = ["agent", "error_to_agent"];
  const secs = (n) => (n >= 90 ? (n / 60).toFixed(1) + " min" : Math.round(n) + " s");

  function containment(doc) {
    const by = Object.fromEntries(doc.by_outcome);
    const sum = (keys) => keys.reduce((a, k) => a + (by[k] || 0), 0);
    const known = new Set([...CONTAINED, ...TO_AGENT, "abandoned"]);
    const other = doc.by_outcome.filter(([k]) => !known.has(k)).reduce((a, [, n]) => a + n, 0);
    const rate = doc.containment_rate === null ? "–" : Math.round(100 * doc.containment_rate) + "%";
    KanaalCharts.donut(document.getElementById("chart-containment"), [
      { label: t("report.contained", "Solved without an agent"), n: sum(CONTAINED), cls: "c-ok" },
      { label: t("report.to_agent", "Handed to an agent"), n: sum(TO_AGENT), cls: "c-agent" },
      { label: t("report.abandoned", "Hung up"), n: by.abandoned || 0, cls: "c-bad" },
      { label: t("report.other", "Other (closed, no agent, open)"), n: other, cls: "c-other" },
    ], { title: t("report.containment", "Containment"), centre: rate,
         empty: t("report.none", "no contacts in this period") });
  }

  function draw(doc) {
    setText("reasons-total", doc.contacts + " " + t("report.contacts", "contacts"));
    const none = t("report.none", "no contacts in this period");
    KanaalCharts.hbars(document.getElementById("chart-reasons"),
      doc.by_intent.slice(0, 10).map(([k, n]) => ({ label: k, values: [n] })),
      { title: t("report.reasons", "Contact reasons"), empty: none });
    containment(doc);
    // Steps in flow order: how many callers reached each, and how many hung up there.
    KanaalCharts.hbars(document.getElementById("chart-dropoff"),
      doc.funnel.map((f) => ({ label: f.step, values: [f.reached, f.dropped] })),
      { title: t("report.dropoff", "Drop-off per step"), empty: none,
        series: [t("report.reached", "reached"), t("report.dropped", "hung up there")] });
    KanaalCharts.hbars(document.getElementById("chart-times"),
      doc.skills.map((s) => ({ label: `${s.skill} (${s.offered})`,
                               values: [s.mean_wait_s, s.mean_handle_s] })),
      { title: t("report.times", "Wait and handle time per skill"), format: secs,
        series: [t("report.wait", "mean wait"), t("report.handle", "mean handle time")],
        empty: t("report.no_agent_calls", "no calls handed to agents") });
  }

  async function load() {
    const hours = period.value;
    const query = "/api/reports/summary?hours=" + encodeURIComponent(hours);
    csv.href = query + "&format=csv";
    try {
      draw(await getJson(query));
      section.dataset.state = "ok";
    } catch (error) {
      setText("reasons-total", t("report.unavailable", "report unavailable"));
      section.dataset.state = "error";
    }
  }

  period.addEventListener("change", load);
  load();
  setInterval(load, 30000);
})();
