// beamlink portal: small progressive enhancements. Every page works without this file; with it, times
// show in the reader's zone, filters apply on click, and dashboards, runs and transfers update live.
"use strict";

(function () {
  const STATUS_CLASSES = {
    succeeded: "ok", success: "ok", online: "ok", connected: "ok", done: "ok",
    active: "live", running: "live", retrying: "warn", inactive: "warn", waiting: "warn", caught: "warn",
    offline: "off", disconnected: "off", "never-connected": "off", ended: "off", canceled: "off",
    failed: "bad",
  };
  const AGENT_LABELS = { online: "Connected", offline: "Disconnected", "never-connected": "Never connected" };

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  function setBadge(badge, status, label) {
    if (!badge) return;
    const word = String(status || "").toLowerCase();
    badge.className = "badge " + (STATUS_CLASSES[word] || "neutral");
    badge.textContent = label || word.replace(/_/g, " ");
  }

  function localTime(node) {
    const when = new Date(node.getAttribute("datetime"));
    if (isNaN(when)) return;
    node.title = node.textContent;
    node.textContent = node.hasAttribute("data-time-only")
      ? when.toLocaleTimeString()
      : when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }

  function timeNode(iso, timeOnly) {
    const node = el("time", { datetime: iso, "data-local": "" });
    if (timeOnly) node.setAttribute("data-time-only", "");
    node.textContent = iso;
    localTime(node);
    return node;
  }

  function duration(startIso, endIso) {
    const seconds = Math.max(0, (new Date(endIso) - new Date(startIso)) / 1000);
    if (seconds < 60) return seconds.toFixed(1) + " s";
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = Math.round(seconds % 60);
    return h + ":" + String(m).padStart(2, "0") + ":" + String(s).padStart(2, "0");
  }

  function humanBytes(value) {
    if (value === null || value === undefined) return "—";
    let size = Number(value);
    for (const unit of ["B", "KB", "MB", "GB", "TB"]) {
      if (Math.abs(size) < 1000 || unit === "TB") return unit === "B" ? size.toFixed(0) + " B" : size.toFixed(1) + " " + unit;
      size /= 1000;
    }
    return size.toFixed(1) + " PB";
  }

  function jsonBlock(value, emptyText) {
    const empty = value === null || value === undefined ||
      (typeof value === "object" && Object.keys(value).length === 0);
    if (empty) return el("p", { class: "muted", text: emptyText });
    return el("pre", { class: "json", text: JSON.stringify(value, null, 2) });
  }

  // -- every page -------------------------------------------------------------------------------------

  function enhance() {
    // On a phone the filters start folded, so the results come first.
    if (window.matchMedia("(max-width: 960px)").matches) {
      document.querySelectorAll("details[data-collapse-narrow]").forEach((d) => d.removeAttribute("open"));
    }
    document.querySelectorAll("time[data-local]").forEach(localTime);
    document.querySelectorAll("img[data-fallback]").forEach((img) => {
      const fallback = () => {
        if (img.src.endsWith(img.dataset.fallback)) return;
        img.src = img.dataset.fallback;
        img.classList.add("placeholder");
      };
      img.addEventListener("error", fallback);
      if (img.complete && img.naturalWidth === 0) fallback();
    });
    document.querySelectorAll("[data-autosubmit]").forEach((input) => {
      input.addEventListener("change", () => {
        const form = input.form;
        const page = form.querySelector("input[name=page]");
        if (page) page.remove();
        form.requestSubmit ? form.requestSubmit() : form.submit();
      });
    });
  }

  // -- dashboard: poll the agents' states -------------------------------------------------------------

  function dashboard(root) {
    const indicator = document.querySelector("[data-live-indicator]");
    async function refresh() {
      try {
        const answer = await fetch(root.dataset.liveUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (answer.redirected || !answer.ok) throw new Error("status " + answer.status);
        const data = await answer.json();
        for (const agent of data.agents) {
          const row = document.querySelector(`[data-agent-id="${CSS.escape(agent.id)}"] [data-status-badge]`);
          setBadge(row, agent.status, AGENT_LABELS[agent.status] || agent.status);
        }
        for (const run of data.runs) {
          const badge = document.querySelector(`[data-run-id="${CSS.escape(run.id)}"] [data-status-badge]`);
          setBadge(badge, run.status);
        }
        if (indicator) { indicator.classList.remove("stale"); indicator.textContent = "live"; }
      } catch (error) {
        if (indicator) { indicator.classList.add("stale"); indicator.textContent = "reconnecting…"; }
      }
    }
    setInterval(refresh, 5000);
  }

  // -- a run: the timeline over server-sent events ----------------------------------------------------

  function stepNode(step) {
    const line = el("div", { class: "step-line" }, [
      el("span", { class: "step-name", text: step.name }),
      el("span", { class: "step-type", text: step.state_type }),
    ]);
    if (step.attempts > 1) line.append(el("span", { class: "step-attempts", text: "attempt " + step.attempts }));
    line.append(el("span", { class: "step-status", text: step.status }));
    const when = el("div", { class: "muted small" }, [timeNode(step.started_at, false)]);
    if (step.ended_at && step.state_type !== "Flow") {
      when.append(el("span", { class: "step-duration", text: " · " + duration(step.started_at, step.ended_at) }));
    }
    return el("li", { class: "step " + step.status, "data-step-key": step.key }, [
      el("span", { class: "step-dot", "aria-hidden": "true" }),
      el("div", { class: "step-body" }, [line, when]),
    ]);
  }

  function run(root) {
    const timeline = document.querySelector("[data-timeline]");
    const log = document.querySelector("[data-event-log]");
    const note = document.querySelector("[data-live-note]");
    const active = ["ACTIVE", "INACTIVE"].includes(root.dataset.runStatus);
    if (!active) return;
    const source = new EventSource(root.dataset.runEvents);
    source.addEventListener("log", (message) => {
      const e = JSON.parse(message.data);
      const row = el("tr", { class: "fresh" }, [
        el("td", { class: "muted hide-sm", text: String(e.seq) }),
        el("td", { class: "nowrap" }, [timeNode(e.time, true)]),
        el("td", {}, [el("code", { text: e.code })]),
        el("td", { class: "hide-sm", text: e.state_name || "" }),
        el("td", { text: e.description }),
      ]);
      log.append(row);
    });
    source.addEventListener("step", (message) => {
      const step = JSON.parse(message.data);
      const node = stepNode(step);
      const existing = timeline.querySelector(`[data-step-key="${CSS.escape(step.key)}"]`);
      if (existing) existing.replaceWith(node);
      else { node.classList.add("fresh"); timeline.append(node); }
    });
    source.addEventListener("status", (message) => {
      const s = JSON.parse(message.data);
      root.dataset.runStatus = s.status;
      setBadge(document.querySelector("[data-run-badge] [data-status-badge]"), s.status);
      const set = (selector, text) => { const node = document.querySelector(selector); if (node) node.textContent = text; };
      set("[data-run-display]", s.display_status);
      set("[data-run-steps]", String(s.steps));
      set("[data-run-status-text]", s.status.toLowerCase());
      set("[data-run-current]", s.current_states.join(", ") || "—");
      if (s.completion_time) {
        const cell = document.querySelector("[data-run-completed]");
        if (cell) cell.replaceChildren(timeNode(s.completion_time, false));
      }
      const errorCard = document.querySelector("[data-run-error-card]");
      if (errorCard && s.error) {
        errorCard.hidden = false;
        set("[data-run-error]", s.error);
        set("[data-run-cause]", s.cause || "");
      }
      const output = document.querySelector("[data-run-output]");
      const ended = !["ACTIVE", "INACTIVE"].includes(s.status);
      if (output) output.replaceChildren(jsonBlock(s.output, ended ? "No output." : "No output yet."));
      const cancel = document.querySelector("[data-run-cancel]");
      if (cancel && !s.can_cancel) cancel.remove();
    });
    const stop = () => { source.close(); if (note) note.textContent = "The run has ended."; };
    source.addEventListener("end", stop);
    source.addEventListener("gone", stop);
  }

  // -- a transfer: progress over server-sent events ---------------------------------------------------

  function transfer(root) {
    if (!["ACTIVE", "INACTIVE"].includes(root.dataset.transferState)) return;
    const source = new EventSource(root.dataset.transferEvents);
    const log = document.querySelector("[data-event-log]");
    source.addEventListener("progress", (message) => {
      const p = JSON.parse(message.data);
      setBadge(document.querySelector("[data-transfer-badge] [data-status-badge]"), p.state);
      document.querySelector("[data-transfer-status]").textContent = p.status;
      const bar = document.querySelector("[data-transfer-progress]");
      if (p.percent !== null) {
        bar.value = p.percent;
        document.querySelector("[data-transfer-percent]").textContent = Math.round(p.percent) + " %";
      }
      for (const node of document.querySelectorAll("[data-count]")) {
        const key = node.dataset.count;
        node.textContent = key.startsWith("bytes") ? humanBytes(p.counts[key]) : String(p.counts[key]);
      }
      document.querySelector("[data-rate]").textContent = p.bytes_per_second ? humanBytes(p.bytes_per_second) + "/s" : "—";
      const error = document.querySelector("[data-transfer-error]");
      if (p.error) { error.hidden = false; error.textContent = p.error.code + ": " + p.error.message; }
      if (p.completed_at) document.querySelector("[data-transfer-completed]").replaceChildren(timeNode(p.completed_at, false));
    });
    source.addEventListener("event", (message) => {
      const e = JSON.parse(message.data);
      const placeholder = log.querySelector(".placeholder");
      if (placeholder) placeholder.remove();
      log.append(el("tr", { class: "fresh" + (e.is_error ? " is-error" : "") }, [
        el("td", { class: "nowrap" }, [timeNode(e.at, true)]),
        el("td", {}, [el("code", { text: e.code })]),
        el("td", { text: e.description }),
      ]));
    });
    source.addEventListener("end", () => source.close());
    source.addEventListener("gone", () => source.close());
  }

  document.addEventListener("DOMContentLoaded", () => {
    enhance();
    const live = document.querySelector("[data-live-url]");
    if (live) dashboard(live);
    const runRoot = document.querySelector("[data-run-events]");
    if (runRoot) run(runRoot);
    const transferRoot = document.querySelector("[data-transfer-events]");
    if (transferRoot) transfer(transferRoot);
  });
})();
