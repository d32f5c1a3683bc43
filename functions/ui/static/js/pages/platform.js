// Platform management (admin): users, teams, audit log, operations timeline.
import { api, qs } from "../api.js";
import { h, mount, table, badge, filterBox, toast, when, errorBox } from "../dom.js";

function section(title, settled, build, testid) {
  if (settled.status === "rejected") return h("section", { class: "panel" }, h("h2", {}, title), errorBox(settled.reason));
  const tbl = build(settled.value);
  return h("section", { class: "panel", "data-testid": testid }, h("div", { class: "toolbar" }, h("h2", {}, title),
    filterBox(() => (tbl.tagName === "TABLE" ? tbl : null))), tbl);
}

export async function render(root) {
  const results = await Promise.allSettled([
    api.get("/users"), api.get("/runtime/teams"), api.get(`/admin/audit${qs({ limit: 50 })}`), api.get(`/admin/operations${qs({ limit: 50 })}`),
  ]);
  for (const r of results) if (r.status === "rejected" && r.reason.status === 401) throw r.reason;
  const [users, teams, audit, ops] = results;
  const teamForm = h("form", { class: "inline", onsubmit: async (ev) => {
    ev.preventDefault();
    const d = new FormData(teamForm);
    try { await api.post("/runtime/teams", { slug: d.get("slug"), name: d.get("name") }); toast("Team created"); render(root); }
    catch (err) { toast(err.message, true); }
  } }, h("label", {}, "Slug", h("input", { name: "slug", required: true, placeholder: "payments" })),
    h("label", {}, "Name", h("input", { name: "name", required: true, placeholder: "Payments" })),
    h("div", {}, h("button", { type: "submit" }, "Create team")));
  const timeline = ops.status === "fulfilled"
    ? [...(ops.value.audit_logs || []).map((a) => ({ t: a.created_at, what: `${a.action} ${a.resource}`, who: a.email || a.user_id, status: a.status })),
       ...(ops.value.deployments || []).map((d) => ({ t: d.created_at || d.updated_at, what: `deployment ${d.name || ""}`, who: d.namespace, status: d.status || "" }))]
      .sort((a, b) => String(b.t).localeCompare(String(a.t)))
    : [];
  mount(root, h("h1", {}, "Platform"),
    section("Users", users, (v) => table([
      { label: "Email", value: (u) => u.email }, { label: "Role", value: (u) => badge(u.role, u.role === "admin" ? "warn" : "") },
      { label: "Created", value: (u) => when(u.created_at) },
      { label: "State", value: (u) => (u.disabled ? badge("disabled", "bad") : badge("active", "ok")) },
    ], v.users, { testid: "users-table" }), "users"),
    section("Teams", teams, (v) => table([
      { label: "Slug", value: (t) => t.slug }, { label: "Name", value: (t) => t.name },
      { label: "Namespace", value: (t) => t.namespace }, { label: "Created", value: (t) => when(t.created_at) },
    ], v.teams, { empty: "No teams yet." }), "teams"),
    h("section", { class: "panel" }, h("h2", {}, "New team"), teamForm),
    section("Audit log", audit, (v) => table([
      { label: "Time", value: (a) => when(a.created_at) }, { label: "Who", value: (a) => a.email || a.user_id || "–" },
      { label: "Action", value: (a) => `${a.action} ${a.resource}` },
      { label: "Status", value: (a) => badge(a.status, a.status === "success" ? "ok" : "bad") },
      { label: "Source", value: (a) => a.source || "" }, { label: "Message", value: (a) => a.message || "" },
    ], v.audit_logs, { testid: "audit-table" }), "audit"),
    h("section", { class: "panel" }, h("h2", {}, "Operations timeline"), table([
      { label: "Time", value: (r) => when(r.t) }, { label: "What", value: (r) => r.what },
      { label: "Who / where", value: (r) => r.who || "–" }, { label: "Status", value: (r) => r.status },
    ], timeline, { empty: "No operations recorded.", testid: "timeline" })));
}
