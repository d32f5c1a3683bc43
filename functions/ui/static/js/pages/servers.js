// MCP server catalog: publish and retire servers, each server's reconciled status (Ready, URL,
// conditions; polled while not ready), copy-ready connect configs (connect.js), and its live
// inventory (what the running server serves) with drift badges against its declared tools.
import { api } from "../api.js";
import { h, mount, badge, filterBox, toast, when } from "../dom.js";
import { connectPanel, connectConfigs, frontDoor } from "../connect.js";
import { publishForm } from "../publish.js";
import { pinsPanel } from "../pins.js";
import { statusPanel, isReady } from "../server_status.js";

export { connectConfigs };
const POLL_MS = 3000;
const MAX_POLL_MS = 30000;
const statusBlocks = new WeakMap(); // server object -> its status element on the page

const spaced = (nodes) => nodes.flatMap((n) => [n, " "]);

// The drift summary: "in sync", or what the server serves undeclared and what it lacks.
function driftBadges(server) {
  const drift = server.inventoryDrift || { undeclared: [], missing: [] };
  if (!drift.undeclared.length && !drift.missing.length) {
    return [h("span", { class: "badge ok", "data-testid": `drift-ok-${server.name}`,
      title: "The running server serves exactly the declared tools" }, "in sync")];
  }
  return [
    drift.undeclared.length ? h("span", { class: "badge warn", "data-testid": `drift-undeclared-${server.name}`,
      title: "Served but not declared in the MCPServer: the gateway denies calls to them (side effect unknown)" },
    `undeclared: ${drift.undeclared.join(", ")}`) : null,
    drift.missing.length ? h("span", { class: "badge bad", "data-testid": `drift-missing-${server.name}`,
      title: "Declared in the MCPServer but not served by the running server" },
    `missing: ${drift.missing.join(", ")}`) : null,
  ].filter(Boolean);
}

function liveInventory(server) {
  if (!("liveInventory" in server)) return null; // the API was asked not to probe
  const testid = `live-${server.name}`;
  const live = server.liveInventory;
  if (!live) {
    return h("p", { "data-testid": testid }, h("strong", {}, "Live: "), badge("not available", "warn"), " ",
      h("span", { class: "muted small" }, server.liveInventoryError || ""));
  }
  const undeclared = new Set((server.inventoryDrift || {}).undeclared || []);
  const names = (items) => spaced(items.map((i) => h("span", { class: "badge", title: i.description || i.uri || "" }, i.name)));
  return h("div", { "data-testid": testid },
    h("p", {}, h("strong", {}, `Live: ${live.tools.length} tools `), spaced(driftBadges(server)),
      h("span", { class: "muted small" }, `probed ${when(live.probedAt)}${live.truncated ? " (list cut short)" : ""}`)),
    h("p", {}, spaced(live.tools.map((t) => h("span", { class: undeclared.has(t.name) ? "badge warn" : "badge",
      title: t.description || "" }, t.name)))),
    live.prompts.length ? h("p", {}, h("strong", {}, `${live.prompts.length} prompts: `), names(live.prompts)) : null,
    live.resources.length ? h("p", {}, h("strong", {}, `${live.resources.length} resources: `), names(live.resources)) : null);
}

// Declared prompts or resources (governed like tools: prompts/get and resources/read need a grant rule).
function declared(what, items) {
  if (!items || !items.length) return null;
  return h("p", { "data-declared": what }, h("strong", {}, `Declared: ${items.length} ${what}: `),
    spaced(items.map((x) => h("span", { class: "badge", title: [x.uri, x.description].filter(Boolean).join(" — ") },
      `${x.name} · ${x.sideEffect || "read"} · ${x.requiredTrust || "low"}`))));
}

// Whether to offer "Retire": admins, the server's creator, and members of its team namespace (the
// API decides; a refusal is shown).
function mayRetire(server, principal) {
  if (principal.role === "admin" || (server.createdBy && server.createdBy === principal.subject)) return true;
  return (principal.teams || []).some((t) => t.namespace === server.namespace);
}

async function retire(server, done) {
  if (!confirm(`Retire ${server.namespace}/${server.name}? Its gateway policy goes with it.`)) return;
  try {
    await api.del(`/runtime/servers/${encodeURIComponent(server.namespace)}/${encodeURIComponent(server.name)}`);
  } catch (err) {
    if (err.status === 401) return; // api.js already flipped the page to signed-out
    toast(`Not retired: ${err.message}`, true);
    return;
  }
  toast(`Server ${server.name} retired`);
  await done();
}

function serverCard(server, principal, done) {
  const tools = server.tools || [];
  const status = statusPanel(server);
  statusBlocks.set(server, status);
  const missing = new Set((server.inventoryDrift || {}).missing || []);
  return h("section", { class: "panel", "data-server": server.name, "data-namespace": server.namespace },
    h("div", { class: "toolbar" },
      h("h2", {}, server.name, " ", badge(server.namespace)),
      h("span", { class: "row" }, server.gateway && server.gateway.enabled ? badge("gateway on", "ok") : badge("no gateway", "warn"),
        mayRetire(server, principal) ? h("button", { type: "button", class: "danger", "data-testid": `retire-${server.name}`,
          onclick: () => retire(server, done) }, "Retire") : null)),
    server.description ? h("p", { class: "muted" }, server.description) : null,
    status,
    h("p", {}, h("strong", {}, `Declared: ${tools.length} tools: `),
      spaced(tools.map((t) => h("span", { class: missing.has(t.name) ? "badge bad" : "badge",
        title: missing.has(t.name) ? "Declared but not served" : t.description || "" },
      `${t.name} · ${t.sideEffect || t.side_effect || "?"} · ${t.requiredTrust || t.required_trust || "low"}`)))),
    declared("prompts", server.prompts), declared("resources", server.mcpResources),
    liveInventory(server),
    pinsPanel(server),
    h("details", { "data-testid": `connect-box-${server.name}` }, h("summary", {}, "Connect"), connectPanel(server, principal)));
}

// While a server is not Ready, re-read its status (without the live probe) and redraw only its
// status block: an open connect panel or a half-filled form is left alone. The pause grows while
// nothing changes (a stack without a reconciler never reports), and polling stops once every shown
// server is Ready or the page is no longer displayed.
function watchStatus(root, servers) {
  clearTimeout(root.statusTimer);
  let waiting = servers.filter((s) => !isReady(s));
  let delay = POLL_MS;
  const tick = async () => {
    if (!root.isConnected) return;
    let changed = false;
    for (const s of waiting) {
      try {
        const { server } = await api.get(`/runtime/servers/${encodeURIComponent(s.namespace)}/${encodeURIComponent(s.name)}?live=false`);
        if (JSON.stringify(server.status) === JSON.stringify(s.status)) continue;
        changed = true;
        s.status = server.status;
        const fresh = statusPanel(s);
        statusBlocks.get(s).replaceWith(fresh);
        statusBlocks.set(s, fresh);
      } catch (err) {
        if (err.status === 401) return;
        if (err.status === 404) s.gone = true; // retired elsewhere: the next full render drops it
      }
    }
    waiting = waiting.filter((s) => !s.gone && !isReady(s));
    delay = changed ? POLL_MS : Math.min(delay * 1.5, MAX_POLL_MS);
    if (waiting.length) root.statusTimer = setTimeout(tick, delay);
  };
  if (waiting.length) root.statusTimer = setTimeout(tick, delay);
}

export async function render(root, { principal }) {
  const done = () => render(root, { principal });
  const data = await api.get("/runtime/servers");
  const list = data.servers || [];
  const holder = h("div", {});
  const search = filterBox(() => null, "Search servers and tools…");
  search.addEventListener("input", () => {
    const q = search.value.trim().toLowerCase();
    for (const el of holder.children) el.hidden = q !== "" && !el.textContent.toLowerCase().includes(q);
  });
  mount(holder, list.length ? list.map((s) => serverCard(s, principal, done))
    : h("div", { class: "empty panel" }, "No MCP servers visible to you yet."));
  mount(root, h("div", { class: "toolbar" }, h("h1", {}, "MCP servers"),
    h("div", { class: "row" }, search, h("button", { type: "button", class: "secondary", onclick: done }, "Refresh"))),
    h("p", { class: "muted" }, `Front door: ${frontDoor()}/<server>/mcp — every call is checked against your grants and session.`),
    h("details", { class: "panel", "data-testid": "publish" }, h("summary", {}, "Publish a server"), publishForm(principal, done)),
    holder);
  watchStatus(root, list);
}
