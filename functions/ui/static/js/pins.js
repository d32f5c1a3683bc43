// Pinned tool definitions of one server (issue 18): which tools' live definitions still match the
// approved ones, the approved and live definitions side by side for a changed or new tool, and
// Approve (one action: pins the live definition whose digest is shown; the API refuses if the
// server serves something else by now). The gateway hides and denies a tool until it is approved.
import { api } from "./api.js";
import { h, mount, badge, toast } from "./dom.js";

const STATUS = {
  pinned: ["approved", "ok", "The live definition is the approved one"],
  changed: ["changed", "bad", "The live definition differs from the approved one: hidden and denied until approved"],
  new: ["not approved", "warn", "No approved definition yet: hidden and denied while pinning is on"],
  optedOut: ["not pinned", "", "Explicitly exempt from pinning"],
  missing: ["not served", "", "Approved before, not served now"],
  unknown: ["unknown", "warn", "The live definition could not be read"],
};

const path = (server) => `/runtime/tool-pins/${encodeURIComponent(server.namespace)}/${encodeURIComponent(server.name)}`;
// Keys sorted at every level, so the two sides line up whatever order the server sent.
const sorted = (v) => (Array.isArray(v) ? v.map(sorted) : v && typeof v === "object"
  ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])])) : v);
const pretty = (def) => (def ? JSON.stringify(sorted(def), null, 2) : "—");

function compare(server, tool) {
  return h("div", { class: "pin-compare", "data-testid": `pin-compare-${server.name}-${tool.name}` },
    h("div", {}, h("strong", {}, "Approved"),
      h("pre", { class: "code", "data-testid": `pin-old-${server.name}-${tool.name}` }, pretty(tool.pinned))),
    h("div", {}, h("strong", {}, "Live"),
      h("pre", { class: "code", "data-testid": `pin-new-${server.name}-${tool.name}` }, pretty(tool.live))));
}

async function act(server, holder, call, done) {
  try {
    await call();
  } catch (err) {
    if (err.status === 401) return;
    toast(`Not changed: ${err.message}`, true);
    return;
  }
  toast(done);
  await load(server, holder);
}

function toolRow(server, data, tool, holder) {
  const [text, kind, title] = STATUS[tool.status] || [tool.status, "", ""];
  const approvable = data.canApprove && (tool.status === "changed" || tool.status === "new") && tool.liveDigest;
  return h("div", { class: "pin-tool", "data-testid": `pin-${server.name}-${tool.name}` },
    h("p", {}, h("strong", {}, tool.name), " ", h("span", { class: `badge ${kind}`, title,
      "data-testid": `pin-status-${server.name}-${tool.name}` }, text), " ",
    approvable ? h("button", { type: "button", "data-testid": `approve-${server.name}-${tool.name}`,
      onclick: () => act(server, holder, () => api.post(`${path(server)}/tools/${encodeURIComponent(tool.name)}/approve`,
        { digest: tool.liveDigest }), `${tool.name}: definition approved`) }, "Approve") : null),
    tool.status === "changed" || tool.status === "new" ? compare(server, tool) : null);
}

async function load(server, holder) {
  let data;
  try {
    data = await api.get(path(server));
  } catch (err) {
    if (err.status === 401) return;
    mount(holder, h("p", { class: "muted" }, `Not available: ${err.message}`));
    return;
  }
  const record = data.canApprove ? h("button", { type: "button", class: "secondary",
    "data-testid": `pin-record-${server.name}`, onclick: () => act(server, holder,
      () => api.post(`${path(server)}/record`), "Current tool definitions pinned") }, "Pin current tools") : null;
  mount(holder,
    h("p", {}, data.active ? badge("pinning on", "ok") : badge("pinning off", "warn"), " ",
      h("span", { class: "muted small" }, data.liveError || "Tools are compared with their approved definitions"), " ",
      record),
    data.tools.map((t) => toolRow(server, data, t, holder)));
}

// A collapsed "Tool definitions" box; read from the API when opened.
export function pinsPanel(server) {
  const holder = h("div", { "data-testid": `pins-${server.name}` });
  return h("details", { "data-testid": `pins-box-${server.name}`, ontoggle: (ev) => {
    if (ev.target.open) load(server, holder);
  } }, h("summary", {}, "Tool definitions"), holder);
}
