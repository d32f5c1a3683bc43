// Teams and their members: everyone sees their own teams (admins: all); admins and team owners add
// members, change roles, remove members and create users straight into a team. The API enforces
// who may; the page only hides what cannot work and shows every refusal as the API words it.
import { api } from "../api.js";
import { h, mount, table, badge, toast, when, errorBox } from "../dom.js";

const ROLES = ["member", "owner"];
const teamPath = (t) => `/runtime/teams/${encodeURIComponent(t.id)}`;

async function act(fn, message, done) {
  try {
    await fn();
  } catch (err) {
    if (err.status === 401) return; // api.js already flipped the page to signed-out
    toast(err.message, true);
    return;
  }
  toast(message);
  await done();
}

function manages(principal, team) {
  if (principal.role === "admin") return true;
  return (principal.teams || []).some((t) => t.id === team.id && t.role === "owner");
}

function addMemberForm(team, users, done) {
  // Admins pick from every user; owners (who cannot list users) enter the user's id.
  const who = users ? h("select", { name: "user" }, users.filter((u) => !u.disabled).map((u) => h("option", { value: u.id }, u.email)))
    : h("input", { name: "user", required: true, placeholder: "user id" });
  const form = h("form", { class: "inline", "data-testid": `add-member-${team.slug}`, onsubmit: (ev) => {
    ev.preventDefault();
    const d = new FormData(form);
    const id = String(d.get("user") || "").trim();
    return act(() => api.put(`${teamPath(team)}/members/${encodeURIComponent(id)}`, { role: d.get("role") }),
      "Member added", done);
  } }, h("label", {}, "User", who), h("label", {}, "Role", h("select", { name: "role" }, ROLES.map((r) => h("option", { value: r }, r)))),
  h("div", {}, h("button", { type: "submit" }, "Add member")));
  return form;
}

function newUserForm(team, done) {
  const form = h("form", { class: "inline", "data-testid": `team-user-${team.slug}`, onsubmit: (ev) => {
    ev.preventDefault();
    const d = new FormData(form);
    const body = { email: String(d.get("email")).trim(), password: String(d.get("password")), role: d.get("role") };
    return act(() => api.post(`${teamPath(team)}/users`, body), `User ${body.email} created in ${team.slug}`, done);
  } }, h("label", {}, "Email", h("input", { name: "email", type: "email", required: true, autocomplete: "off" })),
  h("label", {}, "Password (12+ characters)", h("input", { name: "password", type: "password", required: true, autocomplete: "new-password" })),
  h("label", {}, "Role", h("select", { name: "role" }, ROLES.map((r) => h("option", { value: r }, r)))),
  h("div", {}, h("button", { type: "submit" }, "Create user")));
  return form;
}

function teamPanel(team, members, principal, users, done) {
  const manager = manages(principal, team);
  const rows = members.status === "fulfilled" ? members.value.members || [] : null;
  const memberTable = rows === null ? errorBox(members.reason) : table([
    { label: "Email", value: (m) => m.email || m.user_id }, { label: "Role", value: (m) => badge(m.role, m.role === "owner" ? "warn" : "") },
    { label: "Since", value: (m) => when(m.created_at) },
    { label: "", value: (m) => (!manager ? "" : h("span", { class: "row" },
      h("button", { class: "secondary", "data-action": "role", onclick: () => {
        const role = m.role === "owner" ? "member" : "owner";
        return act(() => api.put(`${teamPath(team)}/members/${encodeURIComponent(m.user_id)}`, { role }),
          `${m.email} is now ${role}`, done);
      } }, m.role === "owner" ? "Make member" : "Make owner"),
      h("button", { class: "danger", "data-action": "remove", onclick: () => {
        if (!confirm(`Remove ${m.email} from ${team.slug}?`)) return undefined;
        return act(() => api.del(`${teamPath(team)}/members/${encodeURIComponent(m.user_id)}`), `${m.email} removed`, done);
      } }, "Remove"))) },
  ], rows, { empty: "No members.", testid: `members-${team.slug}` });
  return h("section", { class: "panel", "data-team": team.slug },
    h("div", { class: "toolbar" }, h("h2", {}, team.name || team.slug, " ", badge(team.namespace || "no namespace"))),
    memberTable,
    manager ? h("details", {}, h("summary", {}, "Add a member"), addMemberForm(team, users, done)) : null,
    manager ? h("details", {}, h("summary", {}, "Create a user in this team"), newUserForm(team, done)) : null);
}

export async function render(root, { principal, isAdmin }) {
  const done = () => render(root, { principal, isAdmin });
  const [teams, users] = await Promise.allSettled([api.get("/runtime/teams"), isAdmin ? api.get("/users") : Promise.resolve(null)]);
  if (teams.status === "rejected") throw teams.reason;
  const list = teams.value.teams || [];
  const members = await Promise.allSettled(list.map((t) => api.get(`${teamPath(t)}/members`)));
  for (const r of members) if (r.status === "rejected" && r.reason.status === 401) throw r.reason;
  const userList = users.status === "fulfilled" && users.value ? users.value.users || [] : null;
  mount(root, h("h1", {}, "Teams"),
    list.length ? list.map((t, i) => teamPanel(t, members[i], principal, userList, done))
      : h("div", { class: "empty panel" }, isAdmin ? "No teams yet: create one on the Platform tab." : "You are not in a team yet."));
}
