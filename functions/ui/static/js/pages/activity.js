// "My MCP activity": the signed-in user's usage of the servers they can see.
import { api, qs } from "../api.js";
import { h, mount, card, table, decisionBadge, when } from "../dom.js";
import { lineChart } from "../charts.js";

export async function render(root) {
  const u = await api.get(`/user/analytics/usage${qs({ window_days: 7, limit: 10 })}`);
  const t = u.totals || {};
  mount(root, h("h1", {}, "My MCP activity"),
    h("div", { class: "cards" }, card("Calls (7 days)", t.events, "my-events"), card("Allowed", t.allowed),
      card("Denied", t.denied), card("Servers", t.unique_servers), card("Agents", t.unique_agents)),
    h("div", { class: "grid" },
      h("section", { class: "panel" }, h("h2", {}, "Calls over time"), h("div", { class: "chart-box" }, lineChart("my-series", u.series || []))),
      h("section", { class: "panel" }, h("h2", {}, "Per server"), table([
        { label: "Server", value: (r) => r.server }, { label: "Calls", value: (r) => r.events },
        { label: "Denied", value: (r) => r.denied }, { label: "Last seen", value: (r) => when(r.last_seen) },
      ], u.servers, { empty: "No calls yet." }))),
    h("section", { class: "panel" }, h("h2", {}, "Top tools"), table([
      { label: "Server", value: (r) => r.server }, { label: "Tool", value: (r) => r.tool_name },
      { label: "Agent", value: (r) => r.agent_id }, { label: "Calls", value: (r) => r.events },
      { label: "Denied", value: (r) => r.denied },
    ], u.tools, { empty: "No tool calls yet." })),
    h("section", { class: "panel" }, h("h2", {}, "Recent activity"), table([
      { label: "Time", value: (r) => when(r.timestamp) }, { label: "Server", value: (r) => r.server },
      { label: "Call", value: (r) => r.tool_name || r.rpc_method || r.event_type || "–" }, { label: "Agent", value: (r) => r.agent_id },
      { label: "Decision", value: (r) => decisionBadge(r.decision) },
    ], u.recent, { empty: "No recent activity." })));
}
