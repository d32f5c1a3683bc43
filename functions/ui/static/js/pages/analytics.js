// Admin usage analytics: totals, requests over time, decisions, top servers/tools, human/agent pairs.
import { api, qs } from "../api.js";
import { h, mount, card, table, when } from "../dom.js";
import { lineChart, doughnut, barChart } from "../charts.js";

export async function render(root) {
  const days = Number(root.dataset.windowDays || 7);
  const [u, s] = await Promise.all([
    api.get(`/analytics/usage${qs({ window_days: days, limit: 10 })}`),
    api.get("/dashboard/summary"),
  ]);
  const t = u.totals || {};
  const windowSel = h("select", { "aria-label": "Window", onchange: (ev) => { root.dataset.windowDays = ev.target.value; render(root); } },
    [1, 7, 30, 90].map((d) => h("option", { value: d, selected: d === days }, d === 1 ? "Last 24 hours" : `Last ${d} days`)));
  const refresh = h("button", { class: "secondary", "data-testid": "analytics-refresh", onclick: () => render(root) }, "Refresh");
  const tools = (u.tools || []).map((r) => ({ ...r, key: `${r.server}/${r.tool_name}` }));
  mount(root,
    h("div", { class: "toolbar" }, h("h1", {}, "Usage analytics"), h("div", { class: "row" }, windowSel, refresh)),
    h("div", { class: "cards" },
      card("Events", t.events, "total-events"), card("Allowed", t.allowed, "total-allowed"),
      card("Denied", t.denied, "total-denied"), card("Active servers", s.active_servers),
      card("Active grants", s.active_grants), card("Active sessions", s.active_sessions),
      card("Humans / agents", `${t.unique_humans ?? 0} / ${t.unique_agents ?? 0}`)),
    h("p", { class: "muted" }, `Latest source ${s.latest_source || "-"}, last event ${s.last_event_type || "-"} at ${when(s.last_event_time)}.`),
    h("div", { class: "grid" },
      h("section", { class: "panel" }, h("h2", {}, "Requests over time"), h("div", { class: "chart-box" }, lineChart("chart-series", u.series || []))),
      h("section", { class: "panel" }, h("h2", {}, "Decisions"), h("div", { class: "chart-box" },
        doughnut("chart-decisions", u.decisions || [], (r) => r.decision, (r) => r.events)))),
    h("div", { class: "grid" },
      h("section", { class: "panel" }, h("h2", {}, "Top servers"), h("div", { class: "chart-box" },
        barChart("chart-servers", u.servers || [], (r) => r.server, (r) => r.events))),
      h("section", { class: "panel" }, h("h2", {}, "Top tools"), h("div", { class: "chart-box" },
        barChart("chart-tools", tools, (r) => r.key, (r) => r.events)))),
    h("section", { class: "panel" }, h("h2", {}, "Humans and agents"), table([
      { label: "Human", value: (r) => r.human_id || "–" }, { label: "Agent", value: (r) => r.agent_id || "–" },
      { label: "Calls", value: (r) => r.events }, { label: "Denied", value: (r) => r.denied },
      { label: "Servers", value: (r) => r.unique_servers }, { label: "Tools", value: (r) => r.unique_tools },
      { label: "Last seen", value: (r) => when(r.last_seen) },
    ], u.actors, { empty: "No traffic in this window.", testid: "actors-table" })),
    h("section", { class: "panel" }, h("h2", {}, "MCP servers"), table([
      { label: "Server", value: (r) => r.server }, { label: "Namespace", value: (r) => r.namespace },
      { label: "Calls", value: (r) => r.events }, { label: "Allowed", value: (r) => r.allowed },
      { label: "Denied", value: (r) => r.denied }, { label: "Humans", value: (r) => r.unique_humans },
      { label: "Last seen", value: (r) => when(r.last_seen) },
    ], u.servers, { empty: "No traffic in this window." })));
}
