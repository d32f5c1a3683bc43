// Chart.js (vendored, window.Chart) helpers. Each chart has a stable id so a re-render
// destroys the previous instance instead of leaking canvases.
import { h } from "./dom.js";

const live = new Map();
const COLORS = ["#3056d3", "#1a7f4b", "#c0392b", "#b7791f", "#7e57c2", "#00838f", "#ad1457", "#546e7a"];

function make(id, config) {
  const canvas = h("canvas", { id, "data-testid": id, role: "img", "aria-label": id });
  if (live.has(id)) live.get(id).destroy();
  if (!window.Chart) return h("div", { class: "empty" }, "Charts unavailable (chart.js not loaded).");
  config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
  const chart = new window.Chart(canvas, config);
  live.set(id, chart);
  canvas.dataset.points = String(config.data.datasets.reduce((n, d) => n + d.data.reduce((a, b) => a + (Number(b) || 0), 0), 0));
  return canvas;
}

export function lineChart(id, series) {
  // Daily buckets (all at midnight) carry no hour; a line through one or two buckets is a lone dot
  // at the edge of the chart, so short series are drawn as bars.
  const daily = series.every((s) => { const d = new Date(s.bucket); return d.getHours() === 0 && d.getMinutes() === 0; });
  const fmt = daily ? { month: "short", day: "numeric" } : { month: "short", day: "numeric", hour: "2-digit" };
  const labels = series.map((s) => new Date(s.bucket).toLocaleString([], fmt));
  return make(id, { type: series.length < 3 ? "bar" : "line", data: { labels, datasets: [
    { label: "Allowed", data: series.map((s) => s.allowed), borderColor: COLORS[1], backgroundColor: COLORS[1], tension: 0.25 },
    { label: "Denied", data: series.map((s) => s.denied), borderColor: COLORS[2], backgroundColor: COLORS[2], tension: 0.25 },
  ] }, options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } });
}

export function doughnut(id, rows, label, value) {
  return make(id, { type: "doughnut", data: { labels: rows.map(label), datasets: [
    { data: rows.map(value), backgroundColor: rows.map((r, i) => {
      const l = String(label(r));
      return l === "allow" ? COLORS[1] : l === "deny" ? COLORS[2] : COLORS[(i + 3) % COLORS.length];
    }) },
  ] }, options: { plugins: { legend: { position: "right" } } } });
}

export function barChart(id, rows, label, value, name = "Calls") {
  return make(id, { type: "bar", data: { labels: rows.map(label), datasets: [
    { label: name, data: rows.map(value), backgroundColor: COLORS[0] },
  ] }, options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } } });
}
