// A server's reconciled status as the controllers write it (`status: {observedGeneration, url,
// policyRevision, conditions: [{type, status, reason, message, lastTransitionTime}]}`): the Ready
// badge with its reason, the public URL and every condition. A server no controller has observed
// yet has no status at all; that is shown as such, never as "not ready".
import { h, badge, table, when } from "./dom.js";

export function readyCondition(status) {
  return ((status && status.conditions) || []).find((c) => c.type === "Ready") || null;
}

export function isReady(server) {
  const ready = readyCondition(server.status);
  return Boolean(ready && ready.status === "True");
}

function readyBadge(server) {
  const testid = `ready-${server.name}`;
  const ready = readyCondition(server.status);
  if (!ready) {
    return h("span", { class: "badge warn", "data-testid": testid, "data-ready": "unknown",
      title: "No controller has reported on this server yet" }, "status pending");
  }
  const ok = ready.status === "True";
  const text = ok ? "Ready" : `Not ready${ready.reason ? `: ${ready.reason}` : ""}`;
  return h("span", { class: `badge ${ok ? "ok" : ready.status === "False" ? "bad" : "warn"}`, "data-testid": testid,
    "data-ready": ok ? "true" : "false", title: ready.message || "" }, text);
}

// The status block of one server card; `statusPanel` is re-rendered in place while the page polls.
export function statusPanel(server) {
  const status = server.status || {};
  const conditions = status.conditions || [];
  const ready = readyCondition(status);
  return h("div", { class: "status", "data-testid": `status-${server.name}` },
    h("p", {}, h("strong", {}, "Status: "), readyBadge(server),
      ready && ready.status !== "True" && ready.message ? h("span", { class: "muted small" }, ` ${ready.message}`) : null),
    status.url ? h("p", {}, h("strong", {}, "URL: "), h("code", { "data-testid": `url-${server.name}` }, status.url)) : null,
    conditions.length ? h("details", {}, h("summary", {}, `Conditions (${conditions.length})`
      + (status.policyRevision ? ` · policy revision ${status.policyRevision}` : "")),
    table([
      { label: "Type", value: (c) => c.type },
      { label: "Status", value: (c) => badge(c.status, c.status === "True" ? "ok" : c.status === "False" ? "bad" : "warn") },
      { label: "Reason", value: (c) => c.reason || "–" },
      { label: "Message", value: (c) => c.message || "" },
      { label: "Since", value: (c) => when(c.lastTransitionTime) },
    ], conditions, { testid: `conditions-${server.name}` }))
      : h("p", { class: "muted small" }, "No conditions reported yet."));
}
