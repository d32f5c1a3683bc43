// MCP operations (admin): component health, restart one or all (outcome per component), recent gateway events.
import { api, qs } from "../api.js";
import { h, mount, table, badge, decisionBadge, when, errorBox } from "../dom.js";

// The last restart's outcome survives the re-render that follows it.
let last = null;

function health(c) {
  const s = String(c.state || (c.healthy === true || c.ready === true ? "healthy" : c.ready === false ? "unhealthy" : "unknown")).toLowerCase();
  const good = s === "healthy" || c.healthy === true;
  return h("span", { "data-testid": `health-${c.name}`, "data-healthy": good ? "true" : "false" },
    badge(s, good ? "ok" : s === "unknown" ? "warn" : "bad"));
}

export function uptime(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.floor(Number(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

function outcomePanel() {
  if (!last) return null;
  const rows = last.outcomes || [];
  return h("section", { class: `panel${last.error ? " error-panel" : ""}`, "data-testid": "restart-outcome" },
    h("h2", {}, `Restart of ${last.label}: ${last.error ? "failed" : last.pending ? "still running" : "done"}`),
    last.error ? h("p", { class: "error", "data-testid": "restart-error" }, last.error) : null,
    last.pending ? h("p", { class: "muted" }, `The restart continues in the background (workflow ${last.workflowId}); refresh to see it.`) : null,
    rows.length ? table([
      { label: "Component", value: (o) => o.component },
      { label: "Outcome", value: (o) => badge(o.ok ? "restarted" : "failed", o.ok ? "ok" : "bad") },
      { label: "Detail", value: (o) => o.detail || "" },
    ], rows, { testid: "restart-outcomes" }) : null,
    (last.skipped || []).length ? h("p", { class: "muted" },
      `Not part of "restart all" (they carry this request or the restart itself; restart them one at a time): ${last.skipped.join(", ")}.`) : null);
}

export async function render(root) {
  const [comps, events] = await Promise.allSettled([api.get("/runtime/components"), api.get(`/events${qs({ limit: 20 })}`)]);
  for (const r of [comps, events]) if (r.status === "rejected" && r.reason.status === 401) throw r.reason;
  const buttons = [];
  const restart = (body, label) => async () => {
    if (!confirm(`Restart ${label}?`)) return;
    for (const b of buttons) b.disabled = true;
    status.textContent = `Restarting ${label}… (waits until it is healthy again)`;
    try {
      const res = await api.post("/runtime/actions/restart", body);
      last = res.pending ? { label, pending: true, workflowId: res.workflow_id, outcomes: [] }
        : { label, outcomes: res.outcomes || [], skipped: res.skipped || [] };
    } catch (err) {
      if (err.status === 401) throw err;
      const detail = err.status === 502 ? `${err.message} (restarting the API or the UI cuts the request they carry; refresh in a few seconds)` : err.message;
      last = { label, error: detail, outcomes: (err.body && err.body.outcomes) || [], skipped: (err.body && err.body.skipped) || [] };
    }
    await render(root);
  };
  const button = (cls, body, label, text, testid) => {
    const b = h("button", { class: cls, "data-testid": testid, onclick: restart(body, label) }, text);
    buttons.push(b);
    return b;
  };
  const status = h("span", { class: "muted", "data-testid": "restart-status", role: "status" });
  const list = comps.status === "fulfilled" ? comps.value.components || [] : null;
  const local = comps.status === "fulfilled" && comps.value.backend === "local";
  const healthy = (list || []).filter((c) => c.healthy === true || c.ready === true).length;
  const columns = [
    { label: "Component", value: (c) => h("div", {}, h("div", {}, c.name), c.description ? h("div", { class: "muted small" }, c.description) : null) },
    local ? null : { label: "Namespace", value: (c) => c.namespace || "–" },
    { label: "Health", value: health },
    local ? { label: "PID", value: (c) => (c.pid ? String(c.pid) : "–") } : { label: "Kind", value: (c) => c.kind || "–" },
    local ? { label: "Up", value: (c) => uptime(c.uptime_seconds) } : null,
    { label: "Detail", value: (c) => h("span", { class: "muted small" }, c.detail || c.message || "") },
    { label: "", value: (c) => button("danger", { component: c.name }, c.name, "Restart", `restart-${c.name}`) },
  ].filter(Boolean);
  mount(root,
    h("div", { class: "toolbar" }, h("h1", {}, "MCP operations"),
      h("div", { class: "row" }, status, h("button", { class: "secondary", onclick: () => render(root) }, "Refresh"),
        button("danger", { all: true }, "all components", "Restart all", "restart-all"))),
    outcomePanel(),
    h("section", { class: "panel" },
      h("h2", {}, "Component health"),
      list === null ? errorBox(comps.reason) : h("p", { class: "muted", "data-testid": "components-summary" },
        `${healthy} of ${list.length} healthy${local ? " · local stack processes" : " · cluster workloads labelled part-of=mcp-sentinel"}`),
      list === null ? null : table(columns, list, { empty: "No components reported.", testid: "components-table" })),
    h("section", { class: "panel" }, h("h2", {}, "Recent gateway events"),
      events.status === "rejected" ? errorBox(events.reason) : table([
        { label: "Time", value: (e) => when(e.timestamp) }, { label: "Source", value: (e) => e.source },
        { label: "Server", value: (e) => e.server }, { label: "Call", value: (e) => e.tool_name || e.rpc_method || e.event_type },
        { label: "Decision", value: (e) => decisionBadge(e.decision) }, { label: "Reason", value: (e) => e.reason || "" },
      ], events.value.events || [], { empty: "No events yet." })));
}
