// "My MCP activity": the signed-in user's usage of the servers they can see.
import { api, qs } from "../api.js";
import { h, mount, card, table, decisionBadge, when } from "../dom.js";
import { lineChart } from "../charts.js";

export async function render(root, { principal } = {}) {
  const u = await api.get(`/user/analytics/usage${qs({ window_days: 7, limit: 10 })}`);
  const t = u.totals || {};
  const series = u.series || [];
  // Usage is scoped to the servers in the user's teams' namespaces: say so instead of a bare zero.
  const teams = (principal && principal.teams) || [];
  const scope = teams.length ? `Calls to MCP servers in your teams' namespaces over the last 7 days.`
    : "You are not in a team yet: this page shows calls to MCP servers in your teams' namespaces. Ask an admin to add you to a team.";
  mount(root, h("h1", {}, "My MCP activity"), h("p", { class: "muted", "data-testid": "activity-scope" }, scope),
    h("div", { class: "cards" }, card("Calls (7 days)", t.events, "my-events"), card("Allowed", t.allowed),
      card("Denied", t.denied), card("Servers", t.unique_servers), card("Agents", t.unique_agents)),
    h("div", { class: "grid" },
      h("section", { class: "panel" }, h("h2", {}, "Calls over time"), series.length ? h("div", { class: "chart-box" }, lineChart("my-series", series))
        : h("div", { class: "empty" }, "No calls in the last 7 days.")),
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
