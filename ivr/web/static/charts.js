// Tiny SVG charts for the console (no library, no CDN, no build step). Everything is
// built with DOM calls and textContent, so labels from callers can never become markup;
// colours come from classes in desk.css (the CSP allows no inline style sheets).
"use strict";

const KanaalCharts = (() => {
  const NS = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function frame(width, height, label) {
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img",
      "aria-label": label, preserveAspectRatio: "xMinYMin meet" });
    root.append(svg("title", {}, label));
    return root;
  }

  function empty(container, text) {
    container.replaceChildren(Object.assign(document.createElement("p"),
      { className: "muted", textContent: text }));
  }

  // Horizontal bars: rows [{label, values: [n, ...]}], one bar per series value.
  // opts: {series: [names], title, format(n), empty}
  function hbars(container, rows, opts) {
    const series = opts.series || [""];
    if (!rows.length) { empty(container, opts.empty || "–"); return; }
    const width = 560, labelW = 150, valueW = 64, barH = 12, gap = 3;
    const rowH = series.length * (barH + gap) + 8;
    const legendH = series.length > 1 ? 22 : 0;
    const height = legendH + rows.length * rowH + 4;
    const fmt = opts.format || ((n) => String(n));
    const max = Math.max(1e-9, ...rows.flatMap((r) => r.values.filter((v) => v !== null)));
    const summary = rows.map((r) => `${r.label}: ${r.values.map((v, i) =>
      (series[i] ? series[i] + " " : "") + (v === null ? "–" : fmt(v))).join(", ")}`).join("; ");
    const root = frame(width, height, `${opts.title}. ${summary}`);
    if (legendH) {
      series.forEach((name, i) => {
        const x = labelW + i * 150;
        root.append(svg("rect", { x, y: 4, width: 12, height: 12, class: `s${i}` }));
        root.append(svg("text", { x: x + 18, y: 14, class: "legend" }, name));
      });
    }
    rows.forEach((row, r) => {
      const top = legendH + r * rowH;
      const label = row.label.length > 22 ? row.label.slice(0, 21) + "…" : row.label;
      root.append(svg("text", { x: labelW - 8, y: top + rowH / 2 + 4, class: "label",
        "text-anchor": "end" }, label));
      row.values.forEach((value, i) => {
        const y = top + 4 + i * (barH + gap);
        const w = value === null ? 0 : Math.max(2, ((width - labelW - valueW) * value) / max);
        root.append(svg("rect", { x: labelW, y, width: w.toFixed(1), height: barH, rx: 3,
          class: `s${i}` }));
        root.append(svg("text", { x: labelW + w + 6, y: y + barH - 2, class: "value" },
          value === null ? "–" : fmt(value)));
      });
    });
    container.replaceChildren(root);
  }

  // Donut of parts [{label, n, cls}] with `centre` text in the middle and a legend.
  function donut(container, parts, opts) {
    const total = parts.reduce((a, p) => a + p.n, 0);
    if (!total) { empty(container, opts.empty || "–"); return; }
    const width = 560, height = 170, cx = 85, cy = 85, r = 62, stroke = 26;
    const circ = 2 * Math.PI * r;
    const summary = parts.map((p) => `${p.label}: ${p.n}`).join("; ");
    const root = frame(width, height, `${opts.title}. ${opts.centre}. ${summary}`);
    let offset = 0;
    for (const part of parts) {
      if (!part.n) continue;
      const len = (circ * part.n) / total;
      root.append(svg("circle", { cx, cy, r, fill: "none", "stroke-width": stroke,
        class: `ring ${part.cls}`, "stroke-dasharray": `${len.toFixed(2)} ${(circ - len).toFixed(2)}`,
        "stroke-dashoffset": (-offset).toFixed(2), transform: `rotate(-90 ${cx} ${cy})` }));
      offset += len;
    }
    root.append(svg("text", { x: cx, y: cy + 7, "text-anchor": "middle", class: "big" },
      opts.centre));
    parts.forEach((part, i) => {
      const y = 30 + i * 26;
      root.append(svg("rect", { x: 200, y: y - 11, width: 14, height: 14, rx: 3, class: part.cls }));
      const pct = Math.round((100 * part.n) / total);
      root.append(svg("text", { x: 222, y, class: "legend" }, `${part.label}: ${part.n} (${pct}%)`));
    });
    container.replaceChildren(root);
  }

  return { hbars, donut };
})();
