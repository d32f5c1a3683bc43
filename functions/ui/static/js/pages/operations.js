// MCP operations (admin): component health, restart, recent gateway events.
import { api, qs } from "../api.js";
import { h, mount, table, badge, decisionBadge, toast, when, errorBox } from "../dom.js";

function health(c) {
  const s = String(c.status || c.health || (c.ready === true ? "ready" : c.ready === false ? "not ready" : "unknown")).toLowerCase();
  const good = ["ready", "running", "healthy", "ok", "up"].includes(s);
  return badge(s, good ? "ok" : s === "unknown" ? "warn" : "bad");
}

export async function render(root) {
  const [comps, events] = await Promise.allSettled([api.get("/runtime/components"), api.get(`/events${qs({ limit: 20 })}`)]);
  for (const r of [comps, events]) if (r.status === "rejected" && r.reason.status === 401) throw r.reason;
  const restart = (body, label) => async () => {
    if (!confirm(`Restart ${label}?`)) return;
    try { await api.post("/runtime/actions/restart", body); toast(`Restart of ${label} requested`); render(root); }
    catch (err) { toast(err.message, true); }
  };
  const list = comps.status === "fulfilled" ? comps.value.components || [] : null;
  mount(root,
    h("div", { class: "toolbar" }, h("h1", {}, "MCP operations"),
      h("div", { class: "row" }, h("button", { class: "secondary", onclick: () => render(root) }, "Refresh"),
        h("button", { class: "danger", onclick: restart({ all: true }, "all components") }, "Restart all"))),
    h("section", { class: "panel" }, h("h2", {}, "Component health"),
      list === null ? errorBox(comps.reason) : table([
        { label: "Component", value: (c) => c.name || c.key || c.component },
        { label: "Namespace", value: (c) => c.namespace || "–" },
        { label: "Health", value: health },
        { label: "Detail", value: (c) => c.message || c.detail || c.image || "" },
        { label: "", value: (c) => h("button", { class: "danger", onclick: restart({ component: c.key || c.name }, c.name || c.key) }, "Restart") },
      ], list, { empty: "No components reported.", testid: "components-table" })),
    h("section", { class: "panel" }, h("h2", {}, "Recent gateway events"),
      events.status === "rejected" ? errorBox(events.reason) : table([
        { label: "Time", value: (e) => when(e.timestamp) }, { label: "Source", value: (e) => e.source },
        { label: "Server", value: (e) => e.server }, { label: "Tool", value: (e) => e.tool_name || e.event_type },
        { label: "Decision", value: (e) => decisionBadge(e.decision) }, { label: "Reason", value: (e) => e.reason || "" },
      ], events.value.events || [], { empty: "No events yet." })));
}
