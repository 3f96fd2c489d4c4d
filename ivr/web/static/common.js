// Shared helpers of the agent desktop and the supervisor console (no framework, no CDN).
// Data is always put in the page with textContent, never innerHTML: transcripts and
// names come from callers and must not become markup.
"use strict";

const Kanaal = (() => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";
  // The page's language strings (ivr/web/i18n.py), from a JSON data block in base.html.
  const block = document.getElementById("i18n");
  const strings = block ? JSON.parse(block.textContent) : {};
  const t = (key, fallback) => strings[key] ?? fallback ?? key;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function setText(id, value) {
    const node = document.getElementById(id);
    if (node) node.textContent = value === null || value === undefined || value === "" ? "–" : String(value);
  }

  function fillRows(tbodyId, rows, columns, emptyText) {
    const body = document.getElementById(tbodyId);
    body.replaceChildren();
    if (!rows.length) {
      body.append(el("tr", {}, el("td", { class: "muted", colSpan: columns }, emptyText)));
      return;
    }
    for (const cells of rows) {
      body.append(el("tr", {}, ...cells.map((c) => (c instanceof Node && c.tagName === "TD" ? c : el("td", {}, c ?? "–")))));
    }
  }

  function when(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    return d.toLocaleString(document.documentElement.lang || undefined, { dateStyle: "short", timeStyle: "short" });
  }

  // A 401 means the session ended: back to the sign-in page (unless the caller opts out).
  async function getJson(url, signInOn401 = true) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 401 && signInOn401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); }
    if (!response.ok) throw new Error(url + ": HTTP " + response.status);
    return response.json();
  }

  // Form-encoded POST with the session's CSRF token in the header the server checks.
  async function post(url, data) {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, Accept: "application/json",
                 "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(data || {}),
    });
    return answer(response);
  }

  // JSON request (the agents and splits API parse JSON bodies) with the CSRF header;
  // `data` null or undefined sends no body at all.
  async function send(method, url, data) {
    const headers = { "X-CSRF-Token": csrf, Accept: "application/json" };
    const init = { method, credentials: "same-origin", headers };
    if (data !== null && data !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(data);
    }
    return answer(await fetch(url, init));
  }

  async function answer(response) {
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    return { ok: response.ok, status: response.status, body };
  }

  // A WebSocket on this origin (the session cookie authenticates it) that reconnects
  // with a growing delay; `live` shows the state to the user.
  function socket(path, onMessage) {
    const live = document.getElementById("live");
    let delay = 500;
    const show = (state, text) => { if (live) { live.dataset.state = state; live.textContent = text; } };
    function open() {
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      const ws = new WebSocket(scheme + location.host + path);
      ws.onopen = () => { delay = 500; show("live", t("js.live")); };
      ws.onmessage = (event) => onMessage(JSON.parse(event.data));
      ws.onclose = () => {
        show("down", t("js.reconnecting"));
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 10000);
      };
    }
    open();
  }

  return { el, setText, fillRows, when, getJson, post, send, socket, csrf, t };
})();
