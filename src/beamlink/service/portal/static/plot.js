// A small SVG line plotter for records' `plots` (see beamlink.protocol.search.Plot): linear or log axes,
// several series, a legend, and a tooltip with the nearest point's values on hover or touch.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const COLORS = ["#2458d6", "#e4572e", "#17a589", "#8e44ad", "#f0a202", "#2e86ab", "#c0392b", "#5d6d7e"];
  const MARGIN = { top: 14, right: 26, bottom: 46, left: 64 };

  function node(tag, attrs, parent) {
    const n = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) n.setAttribute(key, String(value));
    if (parent) parent.append(n);
    return n;
  }

  const SUPERSCRIPT = { "-": "⁻", 0: "⁰", 1: "¹", 2: "²", 3: "³", 4: "⁴", 5: "⁵", 6: "⁶", 7: "⁷", 8: "⁸", 9: "⁹" };

  function format(value) {
    if (value === 0) return "0";
    const size = Math.abs(value);
    if (size >= 1e5 || size < 1e-3) return value.toExponential(2).replace("e+", "e").replace(/\.?0+e/, "e");
    return String(parseFloat(value.toPrecision(4)));
  }

  // A log axis labels its decades as powers of ten (10⁻⁵), and its 2× and 5× ticks plainly.
  function tickLabel(value, log) {
    const k = Math.log10(value);
    if (!log || Math.abs(k - Math.round(k)) > 1e-9 || (k >= -2 && k <= 4)) return format(value);
    return "10" + String(Math.round(k)).split("").map((c) => SUPERSCRIPT[c]).join("");
  }

  function niceStep(span, count) {
    const raw = span / Math.max(count, 1);
    const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    const residual = raw / magnitude;
    const nice = residual >= 5 ? 10 : residual >= 2 ? 5 : residual >= 1 ? 2 : 1;
    return nice * magnitude;
  }

  function linearAxis(min, max, ticks) {
    if (min === max) { min -= Math.abs(min) * 0.5 || 1; max += Math.abs(max) * 0.5 || 1; }
    const step = niceStep(max - min, ticks);
    const lo = Math.floor(min / step) * step, hi = Math.ceil(max / step) * step;
    const values = [];
    for (let v = lo; v <= hi + step / 2; v += step) values.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    return { lo, hi, values, map: (v) => (v - lo) / (hi - lo), log: false };
  }

  function logAxis(min, max) {
    let lo = Math.floor(Math.log10(min)), hi = Math.ceil(Math.log10(max));
    if (lo === hi) { lo -= 1; hi += 1; }
    const values = [];
    const decades = hi - lo;
    for (let k = lo; k <= hi; k++) {
      values.push(Math.pow(10, k));
      if (decades <= 2 && k < hi) values.push(2 * Math.pow(10, k), 5 * Math.pow(10, k));
    }
    values.sort((a, b) => a - b);
    return { lo: Math.pow(10, lo), hi: Math.pow(10, hi), values, map: (v) => (Math.log10(v) - lo) / (hi - lo), log: true };
  }

  function usable(value, log) {
    return typeof value === "number" && isFinite(value) && (!log || value > 0);
  }

  function draw(figure, plot) {
    figure.querySelectorAll("svg, .plot-legend, .plot-tip, .plot-empty").forEach((n) => n.remove());
    const series = plot.series.map((s, i) => ({
      name: s.name || (plot.series.length > 1 ? "series " + (i + 1) : ""),
      color: COLORS[i % COLORS.length],
      points: s.x.map((x, j) => [x, s.y[j]]).filter(([x, y]) => usable(x, plot.log_x) && usable(y, plot.log_y)),
    }));
    const all = series.flatMap((s) => s.points);
    if (all.length === 0) {
      figure.append(Object.assign(document.createElement("p"), { className: "muted plot-empty", textContent: "No points to draw." }));
      return;
    }
    const width = Math.max(figure.clientWidth || 600, 280);
    const height = Math.round(Math.min(380, Math.max(220, width * 0.55)));
    const inner = { w: width - MARGIN.left - MARGIN.right, h: height - MARGIN.top - MARGIN.bottom };
    const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
    const xAxis = plot.log_x ? logAxis(Math.min(...xs), Math.max(...xs)) : linearAxis(Math.min(...xs), Math.max(...xs), Math.max(3, Math.floor(inner.w / 90)));
    const yAxis = plot.log_y ? logAxis(Math.min(...ys), Math.max(...ys)) : linearAxis(Math.min(...ys), Math.max(...ys), Math.max(3, Math.floor(inner.h / 45)));
    const px = (v) => MARGIN.left + xAxis.map(v) * inner.w;
    const py = (v) => MARGIN.top + (1 - yAxis.map(v)) * inner.h;

    const svg = node("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": plot.title || "plot" });
    const gridGroup = node("g", {}, svg);
    const axes = node("g", { class: "axis" }, svg);
    for (const v of yAxis.values) {
      const y = py(v);
      node("line", { class: "grid-line", x1: MARGIN.left, x2: width - MARGIN.right, y1: y, y2: y }, gridGroup);
      const label = node("text", { x: MARGIN.left - 8, y: y + 4, "text-anchor": "end" }, axes);
      label.textContent = tickLabel(v, yAxis.log);
    }
    for (const v of xAxis.values) {
      const x = px(v);
      node("line", { class: "grid-line", x1: x, x2: x, y1: MARGIN.top, y2: MARGIN.top + inner.h }, gridGroup);
      const label = node("text", { x, y: MARGIN.top + inner.h + 16, "text-anchor": "middle" }, axes);
      label.textContent = tickLabel(v, xAxis.log);
    }
    node("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: MARGIN.top + inner.h, y2: MARGIN.top + inner.h }, axes);
    node("line", { x1: MARGIN.left, x2: MARGIN.left, y1: MARGIN.top, y2: MARGIN.top + inner.h }, axes);
    if (plot.x_label) {
      const t = node("text", { class: "axis-label", x: MARGIN.left + inner.w / 2, y: height - 6, "text-anchor": "middle" }, svg);
      t.textContent = plot.x_label + (plot.log_x ? " (log)" : "");
    }
    if (plot.y_label) {
      const t = node("text", { class: "axis-label", x: 0, y: 0, "text-anchor": "middle", transform: `translate(14 ${MARGIN.top + inner.h / 2}) rotate(-90)` }, svg);
      t.textContent = plot.y_label + (plot.log_y ? " (log)" : "");
    }
    const clipId = "clip-" + Math.random().toString(36).slice(2);
    const clip = node("clipPath", { id: clipId }, node("defs", {}, svg));
    node("rect", { x: MARGIN.left, y: MARGIN.top - 4, width: inner.w, height: inner.h + 8 }, clip);
    for (const s of series) {
      const group = node("g", { class: "series", "clip-path": `url(#${clipId})` }, svg);
      const d = s.points.map(([x, y], i) => (i ? "L" : "M") + px(x).toFixed(1) + " " + py(y).toFixed(1)).join("");
      node("path", { d, stroke: s.color }, group);
      if (s.points.length <= 80) {
        for (const [x, y] of s.points) node("circle", { cx: px(x), cy: py(y), r: 2.6, fill: s.color }, group);
      }
    }

    const cursor = node("g", { visibility: "hidden" }, svg);
    const cursorLine = node("line", { class: "cursor", y1: MARGIN.top, y2: MARGIN.top + inner.h }, cursor);
    const cursorDot = node("circle", { r: 5, fill: "#fff", "stroke-width": 2.5 }, cursor);
    const overlay = node("rect", { x: MARGIN.left, y: MARGIN.top, width: inner.w, height: inner.h, fill: "transparent" }, svg);
    figure.append(svg);

    const tip = document.createElement("div");
    tip.className = "plot-tip";
    tip.hidden = true;
    figure.append(tip);

    function nearest(event) {
      const box = svg.getBoundingClientRect();
      const scale = width / box.width;
      const mx = (event.clientX - box.left) * scale, my = (event.clientY - box.top) * scale;
      let best = null;
      for (const s of series) {
        for (const [x, y] of s.points) {
          const dx = px(x) - mx, dy = py(y) - my;
          const distance = dx * dx * 4 + dy * dy; // horizontal distance counts more: read values along x
          if (!best || distance < best.distance) best = { distance, s, x, y };
        }
      }
      return { best, scale };
    }

    function show(event) {
      const { best, scale } = nearest(event);
      if (!best) return;
      const cx = px(best.x), cy = py(best.y);
      cursor.setAttribute("visibility", "visible");
      cursorLine.setAttribute("x1", cx);
      cursorLine.setAttribute("x2", cx);
      cursorDot.setAttribute("cx", cx);
      cursorDot.setAttribute("cy", cy);
      cursorDot.setAttribute("stroke", best.s.color);
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = best.s.color;
      tip.replaceChildren(swatch, document.createTextNode(
        (best.s.name ? best.s.name + ": " : "") +
        (plot.x_label || "x") + " = " + format(best.x) + ", " + (plot.y_label || "y") + " = " + format(best.y)
      ));
      tip.hidden = false;
      tip.style.left = Math.min(Math.max(cx / scale, 80), svg.clientWidth - 80) + "px";
      tip.style.top = cy / scale + "px";
    }

    function hide() {
      cursor.setAttribute("visibility", "hidden");
      tip.hidden = true;
    }

    overlay.addEventListener("pointermove", show);
    overlay.addEventListener("pointerdown", show);
    overlay.addEventListener("pointerleave", hide);

    if (series.some((s) => s.name)) {
      const legend = document.createElement("div");
      legend.className = "plot-legend";
      for (const s of series) {
        const item = document.createElement("span");
        item.textContent = s.name;
        item.style.setProperty("--swatch", s.color);
        legend.append(item);
      }
      figure.append(legend);
    }
  }

  function start() {
    for (const figure of document.querySelectorAll("figure[data-plot]")) {
      const data = figure.querySelector('script[type="application/json"]');
      if (!data) continue;
      let plot;
      try { plot = JSON.parse(data.textContent); } catch (error) { continue; }
      draw(figure, plot);
      let width = figure.clientWidth;
      new ResizeObserver(() => {
        if (Math.abs(figure.clientWidth - width) > 8) { width = figure.clientWidth; draw(figure, plot); }
      }).observe(figure);
    }
  }

  document.addEventListener("DOMContentLoaded", start);
})();
