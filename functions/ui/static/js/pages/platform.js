// Platform management (admin): users (create or invite, disable), teams, audit log, operations timeline.
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
  const userForm = h("form", { class: "inline", "data-testid": "user-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const d = new FormData(userForm);
    const password = String(d.get("password") || "");
    // No password: an invitation, claimed by the first OIDC sign-in that verifies this email.
    const body = { email: String(d.get("email")).trim(), role: d.get("role"), ...(password ? { password } : {}) };
    try {
      const out = await api.post("/users", body);
      toast(out.invited ? `${body.email} invited` : `User ${body.email} created`);
      await render(root);
    } catch (err) {
      if (err.status === 401) return; // api.js already flipped the page to signed-out
      toast(`Not created: ${err.message}`, true);
    }
  } }, h("label", {}, "Email", h("input", { name: "email", type: "email", required: true, autocomplete: "off" })),
    h("label", {}, "Role", h("select", { name: "role" }, h("option", { value: "user" }, "user"), h("option", { value: "admin" }, "admin"))),
    h("label", {}, "Password (empty: invite to sign in with SSO)", h("input", { name: "password", type: "password", autocomplete: "new-password" })),
    h("div", {}, h("button", { type: "submit" }, "Create user")));
  const setDisabled = (u) => async () => {
    if (!u.disabled && !confirm(`Disable ${u.email}? Their keys, tokens and agent sessions stop working.`)) return;
    try {
      await api.patch(`/users/${encodeURIComponent(u.id)}`, { disabled: !u.disabled });
      toast(`${u.email} ${u.disabled ? "enabled" : "disabled"}`);
      await render(root);
    } catch (err) {
      if (err.status === 401) return; // api.js already flipped the page to signed-out
      toast(err.message, true);
    }
  };
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
      { label: "", value: (u) => h("button", { class: u.disabled ? "secondary" : "danger", "data-action": u.disabled ? "enable" : "disable",
        onclick: setDisabled(u) }, u.disabled ? "Enable" : "Disable") },
    ], v.users, { testid: "users-table" }), "users"),
    h("section", { class: "panel" }, h("h2", {}, "New user"), userForm),
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
