// Access control: decision audit, access grants and agent sessions (§7.8 contract).
import { api, qs } from "../api.js";
import { h, mount, table, badge, decisionBadge, filterBox, toast, when } from "../dom.js";

const TRUST = ["low", "medium", "high"];
const EFFECTS = ["read", "write", "destructive"];

// One rule per line: `name:allow`, `name:deny` or `name:allow:trust` (tools, prompts and resources alike).
export function parseRules(text, kind = "tool") {
  const rules = [];
  text.split(/\n/).map((l) => l.trim()).filter(Boolean).forEach((line, i) => {
    const [name, decision, trust, extra] = line.split(":").map((p) => p.trim());
    if (!name || !["allow", "deny"].includes(decision) || extra !== undefined || (trust && !TRUST.includes(trust))) {
      throw new Error(`${kind} rule line ${i + 1} ("${line}") must be ${kind}:allow, ${kind}:deny or ${kind}:allow:low|medium|high`);
    }
    rules.push(trust ? { name, decision, requiredTrust: trust } : { name, decision });
  });
  return rules;
}

export const parseToolRules = (text) => parseRules(text, "tool");

// One quota per line (issue 18.1): `limit/windowSeconds per` plus optionally a side effect or `tool=name`,
// e.g. `100/3600 session write` or `5/60 human tool=search`; the API checks ranges again.
const QUOTA_LINE = /^(\d+)\s*\/\s*(\d+)\s+(session|agent|human)(?:\s+(read|write|destructive|tool=\S+))?$/;
export function parseQuotas(text) {
  return text.split(/\n/).map((l) => l.trim()).filter(Boolean).map((line, i) => {
    const m = QUOTA_LINE.exec(line);
    if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) {
      throw new Error(`quota line ${i + 1} ("${line}") must look like 100/3600 session, 100/3600 session write or 5/60 human tool=search`);
    }
    const quota = { limit: Number(m[1]), windowSeconds: Number(m[2]), per: m[3] };
    if (m[4] && m[4].startsWith("tool=")) quota.tool = m[4].slice(5);
    else if (m[4]) quota.sideEffect = m[4];
    return quota;
  });
}
const quotasText = (quotas) => (quotas || []).map((q) => `${q.limit}/${q.windowSeconds}s per ${q.per}`
  + (q.tool ? ` tool=${q.tool}` : q.sideEffect ? ` ${q.sideEffect}` : "")).join("; ") || "–";

// The grant fields holding rules, how the form labels them and what a rule names.
const RULE_KINDS = [
  { key: "toolRules", kind: "tool", label: "Tool rules", example: "search:allow\nread_document:allow:low" },
  { key: "promptRules", kind: "prompt", label: "Prompt rules", example: "triage:allow\nsummarize:allow:medium" },
  { key: "resourceRules", kind: "resource", label: "Resource rules", example: "ledger:allow\nsecrets:deny" },
];
const rulesText = (rules) => (rules || []).map((r) => [r.name, r.decision, r.requiredTrust].filter(Boolean).join(":")).join(" ") || "–";

const subjectText = (s = {}) => [s.humanID && `human ${s.humanID}`, s.agentID && `agent ${s.agentID}`, s.teamID && `team ${s.teamID}`]
  .filter(Boolean).join(", ") || "–";
const path = (kind, r) => `/runtime/${kind}/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}`;

function select(name, options, value) {
  return h("select", { name }, options.map((o) => h("option", { value: o, selected: o === value }, o || "(none)")));
}

async function act(fn, done, message) {
  try { await fn(); toast(message); await done(); } catch (err) { toast(err.message, true); }
}

// Deleting a grant drops it from its server's policy; deleting a session ends it for good (revoke
// keeps it, for the audit trail and an unrevoke). The API decides who may; a refusal is a toast.
function deleteButton(kind, r, done) {
  const noun = kind === "grants" ? "Grant" : "Session";
  return h("button", { class: "danger", "data-action": "delete", onclick: () => {
    if (!confirm(`Delete ${noun.toLowerCase()} ${r.namespace}/${r.name}?`)) return undefined;
    return act(() => api.del(path(kind, r)), done, `${noun} ${r.name} deleted`);
  } }, "Delete");
}

function grantForm(ns, servers, done) {
  const form = h("form", { class: "inline", "data-testid": "grant-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const d = new FormData(form);
    const rules = {};
    try {
      for (const r of RULE_KINDS) rules[r.key] = parseRules(String(d.get(r.key) || ""), r.kind);
      rules.quotas = parseQuotas(String(d.get("quotas") || ""));
    } catch (err) { toast(err.message, true); return; }
    const body = {
      name: d.get("name"), namespace: ns, serverRef: { name: d.get("server"), namespace: ns },
      subject: { humanID: d.get("humanID"), agentID: d.get("agentID"), teamID: d.get("teamID") },
      maxTrust: d.get("maxTrust"), allowedSideEffects: EFFECTS.filter((e) => d.get(`se-${e}`)), ...rules,
      policyVersion: (window.MCP_DEFAULTS || {}).policyVersion || "v1",
    };
    // Calls of these side effects or tools wait for the server's owners (Approvals tab).
    const approval = { sideEffects: EFFECTS.filter((e) => d.get(`ap-${e}`)),
      tools: String(d.get("approvalTools") || "").split(/[\s,]+/).filter(Boolean) };
    if (approval.sideEffects.length || approval.tools.length) body.approval = approval;
    await act(() => api.post("/runtime/grants", body), done, `Grant ${body.name} saved`);
  } },
  h("label", {}, "Name", h("input", { name: "name", required: true, placeholder: "alice-server-a" })),
  h("label", {}, "Server", select("server", servers)),
  h("label", {}, "Human ID", h("input", { name: "humanID", placeholder: "alice" })),
  h("label", {}, "Agent ID", h("input", { name: "agentID", placeholder: "workspace-agent" })),
  h("label", {}, "Team ID", h("input", { name: "teamID" })),
  h("label", {}, "Max trust", select("maxTrust", TRUST, "medium")),
  RULE_KINDS.map((r) => h("label", {}, `${r.label} (one per line: ${r.kind}:allow or ${r.kind}:allow:trust)`,
    h("textarea", { name: r.key, placeholder: r.example }))),
  h("label", {}, "Quotas (one per line: limit/seconds session|agent|human, then optionally a side effect or tool=name)",
    h("textarea", { name: "quotas", placeholder: "100/3600 session write\n5/60 human tool=search" })),
  h("div", {}, h("div", { class: "checks" }, "Side effects:", EFFECTS.map((e) =>
    h("label", {}, h("input", { type: "checkbox", name: `se-${e}`, checked: e === "read" }), e))),
  h("div", { class: "checks" }, "Needs approval:", EFFECTS.map((e) =>
    h("label", {}, h("input", { type: "checkbox", name: `ap-${e}` }), e))),
  h("label", {}, "Tools needing approval (comma-separated)", h("input", { name: "approvalTools", placeholder: "delete_document" })),
  h("button", { type: "submit" }, "Save grant")));
  return form;
}

function sessionForm(ns, servers, done) {
  const form = h("form", { class: "inline", "data-testid": "session-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const d = new FormData(form);
    const expires = d.get("expiresAt") ? new Date(String(d.get("expiresAt"))).toISOString() : undefined;
    const body = {
      name: d.get("name"), namespace: ns, serverRef: { name: d.get("server"), namespace: ns },
      subject: { humanID: d.get("humanID"), agentID: d.get("agentID"), teamID: d.get("teamID") },
      consentedTrust: d.get("consentedTrust"), expiresAt: expires,
      policyVersion: (window.MCP_DEFAULTS || {}).policyVersion || "v1",
    };
    await act(() => api.post("/runtime/sessions", body), done, `Session ${body.name} saved`);
  } },
  h("label", {}, "Session name", h("input", { name: "name", required: true, placeholder: "sess-alice-1" })),
  h("label", {}, "Server", select("server", servers)),
  h("label", {}, "Human ID", h("input", { name: "humanID" })),
  h("label", {}, "Agent ID", h("input", { name: "agentID" })),
  h("label", {}, "Team ID", h("input", { name: "teamID" })),
  h("label", {}, "Consented trust", select("consentedTrust", TRUST, "low")),
  h("label", {}, "Expires (optional)", h("input", { name: "expiresAt", type: "datetime-local" })),
  h("div", {}, h("button", { type: "submit" }, "Create session")));
  return form;
}

function withFilter(title, tbl, testid) {
  return h("div", {}, h("div", { class: "toolbar" }, h("h2", {}, title),
    filterBox(() => (tbl.tagName === "TABLE" ? tbl : null), `Filter ${title.toLowerCase()}…`)), tbl);
}

export async function render(root, { isAdmin }) {
  const ns = root.dataset.namespace || (window.MCP_DEFAULTS || {}).namespace || "mcp-servers";
  const done = () => render(root, { isAdmin });
  const settled = await Promise.allSettled([
    api.get(`/runtime/grants${qs({ namespace: ns })}`),
    api.get(`/runtime/sessions${qs({ namespace: ns })}`),
    api.get(`/runtime/servers${qs({ namespace: ns })}`),
    isAdmin ? api.get(`/events${qs({ limit: 50 })}`) : api.get(`/user/analytics/usage${qs({ window_days: 7, limit: 50 })}`),
  ]);
  const failed = settled.find((r) => r.status === "rejected" && r.reason.status === 401);
  if (failed) throw failed.reason;
  const val = (i, key) => (settled[i].status === "fulfilled" ? settled[i].value[key] || [] : null);
  const grants = val(0, "grants"); const sessions = val(1, "sessions");
  const servers = (val(2, "servers") || []).map((s) => s.name);
  const events = isAdmin ? val(3, "events") : val(3, "recent");
  const problem = (i) => (settled[i].status === "rejected" ? h("p", { class: "error" }, settled[i].reason.message) : null);

  const decisions = (events || []).filter((e) => e.decision);
  const allowed = decisions.filter((e) => e.decision === "allow").length;
  const meterFill = h("div", {});
  meterFill.style.width = decisions.length ? `${Math.round((100 * allowed) / decisions.length)}%` : "0%";

  const auditTable = table([
    { label: "Time", value: (e) => when(e.timestamp || e.time) },
    { label: "Human", value: (e) => e.human_id || "–" }, { label: "Agent", value: (e) => e.agent_id || "–" },
    // Non-tool calls (initialize, tools/list) carry no tool name: show their JSON-RPC method. A GET
    // stream or a DELETE carries no JSON-RPC message at all (audited since issue 13): say so, rather
    // than the event type every row shares.
    { label: "MCP action", value: (e) => `${e.server || ""} ${e.tool_name || e.rpc_method || "HTTP (no JSON-RPC message)"}`.trim() },
    { label: "Decision", value: (e) => decisionBadge(e.decision) },
    { label: "Policy", value: (e) => e.reason || e.policy_version || "–" },
  ], decisions, { empty: "No decisions recorded yet.", testid: "decision-table" });

  const grantTable = table([
    { label: "Name", value: (g) => g.name }, { label: "Server", value: (g) => g.serverRef.name },
    { label: "Subject", value: (g) => subjectText(g.subject) }, { label: "Max trust", value: (g) => g.maxTrust },
    { label: "Side effects", value: (g) => (g.allowedSideEffects || []).join(", ") },
    ...RULE_KINDS.map((r) => ({ label: r.label, value: (g) => rulesText(g[r.key]) })),
    { label: "Quotas", value: (g) => quotasText(g.quotas) },
    { label: "Approval", value: (g) => (g.approval ? [...(g.approval.sideEffects || []), ...(g.approval.tools || [])].join(", ") : "–") },
    { label: "State", value: (g) => (g.disabled ? badge("disabled", "bad") : badge("enabled", "ok")) },
    { label: "", value: (g) => h("span", { class: "row" }, h("button", { class: g.disabled ? "secondary" : "danger", "data-action": g.disabled ? "enable" : "disable",
      onclick: () => act(() => api.patch(path("grants", g), { disabled: !g.disabled }), done,
        `Grant ${g.name} ${g.disabled ? "enabled" : "disabled"}`) }, g.disabled ? "Enable" : "Disable"),
      " ", deleteButton("grants", g, done)) },
  ], grants || [], { empty: "No grants in this namespace.", testid: "grant-table" });

  const sessionTable = table([
    { label: "Name", value: (s) => s.name }, { label: "Server", value: (s) => s.serverRef.name },
    { label: "Subject", value: (s) => subjectText(s.subject) }, { label: "Trust", value: (s) => s.consentedTrust },
    { label: "Expires", value: (s) => (s.expiresAt ? when(s.expiresAt) : "never") },
    { label: "State", value: (s) => (s.revoked ? badge("revoked", "bad") : badge("active", "ok")) },
    { label: "", value: (s) => (!isAdmin ? "" : h("button", { class: s.revoked ? "secondary" : "danger", "data-action": s.revoked ? "unrevoke" : "revoke",
      onclick: () => act(() => api.patch(path("sessions", s), { revoked: !s.revoked }), done,
        `Session ${s.name} ${s.revoked ? "restored" : "revoked"}`) }, s.revoked ? "Unrevoke" : "Revoke")) },
    { label: "", value: (s) => deleteButton("sessions", s, done) },
  ], sessions || [], { empty: "No sessions in this namespace.", testid: "session-table" });

  const nsInput = h("input", { value: ns, "aria-label": "Namespace", onchange: (ev) => { root.dataset.namespace = ev.target.value.trim(); done(); } });
  mount(root,
    h("div", { class: "toolbar" }, h("h1", {}, "Access control"), h("label", {}, "Namespace", nsInput)),
    h("section", { class: "panel", "data-testid": "decisions" },
      h("h2", {}, "Policy decisions"),
      h("div", { class: "muted" }, `${allowed} allowed, ${decisions.length - allowed} denied of the last ${decisions.length}`),
      h("div", { class: "meter" }, meterFill), problem(3),
      withFilter("Decision audit", auditTable)),
    h("section", { class: "panel" }, withFilter("Access grants", grantTable), problem(0),
      h("details", {}, h("summary", {}, "New grant"), grantForm(ns, servers, done))),
    h("section", { class: "panel" }, withFilter("Agent sessions", sessionTable), problem(1),
      isAdmin ? h("details", {}, h("summary", {}, "New session"), sessionForm(ns, servers, done))
        : h("p", { class: "muted" }, "Agents obtain sessions through the adapter; admins can create them here.")));
}
