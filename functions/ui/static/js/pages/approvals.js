// Approvals: calls that wait for a person. Owners of a server's team (and admins) see the pending
// requests for their servers, with the exact arguments, and approve or reject each. The caller's
// next identical call then goes through once (approved) or is refused (rejected). The API decides
// who may; everyone else sees an empty list.
import { api } from "../api.js";
import { h, mount, table, badge, toast, when } from "../dom.js";

const path = (a) => `/approvals/${encodeURIComponent(a.id)}`;

async function act(fn, message, done) {
  try {
    await fn();
  } catch (err) {
    if (err.status === 401) return; // api.js already flipped the page to signed-out
    toast(err.message, true);
    await done();
    return;
  }
  toast(message);
  await done();
}

function args(a) {
  const text = typeof a.arguments === "string" ? a.arguments : JSON.stringify(a.arguments, null, 2);
  return h("pre", { class: "args", "data-testid": `approval-args-${a.id}` }, text + (a.argumentsTruncated ? "\n…" : ""));
}

function actions(a, done) {
  if (a.status !== "pending") return badge("approved, waiting for the call", "ok");
  return h("span", { class: "row" },
    h("button", { "data-action": "approve", onclick: () => act(() => api.post(`${path(a)}/approve`),
      `Approved ${a.tool} for ${a.humanID || a.agentID}`, done) }, "Approve"),
    h("button", { class: "danger", "data-action": "reject", onclick: () => {
      const note = prompt(`Reject ${a.tool}? Reason (optional):`, "");
      if (note === null) return undefined;
      return act(() => api.post(`${path(a)}/reject`, { note }), `Rejected ${a.tool}`, done);
    } }, "Reject"));
}

export async function render(root) {
  const done = () => render(root);
  const body = await api.get("/approvals");
  const rows = body.approvals || [];
  mount(root, h("h1", {}, "Approvals"),
    h("p", { class: "muted" }, "Calls that a grant holds for a person's approval. Approving lets the same call, ",
      "with exactly these arguments, through once."),
    h("div", { class: "toolbar" }, h("button", { class: "secondary", onclick: done }, "Refresh")),
    table([
      { label: "Requested", value: (a) => when(a.requestedAt) },
      { label: "Server", value: (a) => `${a.namespace}/${a.server}` },
      { label: "Tool", value: (a) => h("span", {}, a.tool, " ", a.sideEffect ? badge(a.sideEffect, "warn") : "") },
      { label: "Caller", value: (a) => [a.humanID, a.agentID].filter(Boolean).join(" via ") },
      { label: "Arguments", value: args },
      { label: "Expires", value: (a) => when(a.expiresAt) },
      { label: "", value: (a) => actions(a, done) },
    ], rows, { empty: "Nothing waits for your approval.", testid: "approvals" }));
}
