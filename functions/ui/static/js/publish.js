// "Publish a server": the form behind POST /api/runtime/servers (the API checks scope, quota and
// cooldown, and that an image or a URL is given; its refusal is shown as it comes). Tools are one
// per line: `name:sideEffect[:trust]`.
import { api } from "./api.js";
import { h, toast } from "./dom.js";

const EFFECTS = ["read", "write", "destructive"];
const TRUST = ["low", "medium", "high"];

export function parseTools(text) {
  return text.split(/\n/).map((l) => l.trim()).filter(Boolean).map((line, i) => {
    const [name, effect = "read", trust, extra] = line.split(":").map((p) => p.trim());
    if (!name || !EFFECTS.includes(effect) || extra !== undefined || (trust && !TRUST.includes(trust))) {
      throw new Error(`tool line ${i + 1} ("${line}") must be name, name:read|write|destructive or name:effect:low|medium|high`);
    }
    return trust ? { name, sideEffect: effect, requiredTrust: trust } : { name, sideEffect: effect };
  });
}

// Where the caller may publish: the shared catalog (admins) and the namespaces of their teams.
function targets(principal) {
  const out = principal.role === "admin" ? [{ value: "public|mcp-servers", label: "shared catalog (mcp-servers)" }] : [];
  for (const t of principal.teams || []) {
    if (t.namespace) out.push({ value: `tenant|${t.namespace}`, label: `team ${t.slug || t.id} (${t.namespace})` });
  }
  return out;
}

export function publishForm(principal, done) {
  const where = targets(principal);
  if (!where.length) {
    return h("p", { class: "muted" }, "You can publish once you belong to a team (an admin adds you).");
  }
  const form = h("form", { class: "inline", "data-testid": "publish-form", onsubmit: async (ev) => {
    ev.preventDefault();
    const d = new FormData(form);
    let tools;
    try { tools = parseTools(String(d.get("tools") || "")); } catch (err) { toast(err.message, true); return; }
    const [scope, namespace] = String(d.get("target")).split("|");
    const body = { name: String(d.get("name")).trim(), scope, namespace, image: String(d.get("image")).trim(),
      description: String(d.get("description") || ""), tools, gateway: { enabled: Boolean(d.get("gateway")) } };
    // A server already running elsewhere is registered by its URL (no image): only its gateway runs here.
    const upstream = String(d.get("upstreamURL") || "").trim();
    if (upstream) body.gateway.upstreamURL = upstream;
    if (d.get("port")) body.port = Number(d.get("port"));
    try {
      await api.post("/runtime/servers", body);
    } catch (err) {
      if (err.status === 401) return; // api.js already flipped the page to signed-out
      toast(`Not published: ${err.message}`, true);
      return;
    }
    toast(`Server ${body.name} published`);
    await done();
  } },
  h("label", {}, "Name", h("input", { name: "name", required: true, placeholder: "notes-server" })),
  h("label", {}, "Where", h("select", { name: "target" }, where.map((w) => h("option", { value: w.value }, w.label)))),
  h("label", {}, "Image", h("input", { name: "image", placeholder: "ghcr.io/acme/notes-mcp:1.0" })),
  h("label", {}, "or its URL (a running server)", h("input", { name: "upstreamURL", type: "url",
    placeholder: "https://mcp.example.com" })),
  h("label", {}, "Port (optional)", h("input", { name: "port", type: "number", min: 1, max: 65535 })),
  h("label", {}, "Description", h("input", { name: "description" })),
  h("label", {}, "Tools (one per line: name:read|write|destructive[:trust])",
    h("textarea", { name: "tools", placeholder: "search:read\ncreate_note:write:medium" })),
  h("div", {}, h("div", { class: "checks" }, h("label", {}, h("input", { type: "checkbox", name: "gateway", checked: true }),
    "Governed by the gateway")), h("button", { type: "submit" }, "Publish")));
  return form;
}
