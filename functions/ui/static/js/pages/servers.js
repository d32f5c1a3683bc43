// MCP server catalog with copy-ready connect configs pointing at the front door, and each server's
// live inventory (what the running server serves) with drift badges against its declared tools.
import { api } from "../api.js";
import { h, mount, badge, filterBox, toast, when } from "../dom.js";

function frontDoor() {
  return (window.MCP_FRONT_DOOR_URL || location.origin).replace(/\/$/, "");
}

export function connectConfigs(server, principal) {
  const url = `${frontDoor()}/${server.name}/mcp`;
  const headers = {
    "X-MCP-Human-ID": principal.email || principal.subject || "<your-id>",
    "X-MCP-Agent-ID": "<agent-id>",
    "X-MCP-Agent-Session": "<session-name>",
  };
  const headerArgs = Object.entries(headers).flatMap(([k, v]) => ["--header", `${k}:${v}`]);
  return {
    "Claude Desktop": JSON.stringify({ mcpServers: { [server.name]: {
      command: "npx", args: ["mcp-remote", url, ...headerArgs] } } }, null, 2),
    Cursor: JSON.stringify({ mcpServers: { [server.name]: { url, headers } } }, null, 2),
    "VS Code": JSON.stringify({ servers: { [server.name]: { type: "http", url, headers } } }, null, 2),
    "Python (mcp)": [
      "import httpx",
      "from mcp import Client",
      "from mcp.client.streamable_http import streamable_http_client",
      "",
      `headers = ${JSON.stringify(headers, null, 4)}`,
      "http = httpx.AsyncClient(headers=headers)",
      `async with Client(streamable_http_client("${url}", http_client=http)) as client:`,
      "    print(await client.list_tools())",
    ].join("\n"),
  };
}

function connectPanel(server, principal) {
  const configs = connectConfigs(server, principal);
  const names = Object.keys(configs);
  const pre = h("pre", { class: "code", "data-testid": `connect-${server.name}` }, configs[names[0]]);
  const buttons = names.map((n, i) => h("button", { type: "button", class: i === 0 ? "active" : "", onclick: (ev) => {
    pre.textContent = configs[n];
    for (const b of ev.target.parentNode.children) b.classList.toggle("active", b === ev.target);
  } }, n));
  const copy = h("button", { type: "button", class: "secondary", onclick: async () => {
    try { await navigator.clipboard.writeText(pre.textContent); toast("Copied"); }
    catch { toast("Select the text and copy it manually", true); }
  } }, "Copy");
  return h("div", {}, h("div", { class: "tabs-inner" }, buttons), pre, copy);
}

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

function serverCard(server, principal) {
  const tools = server.tools || [];
  const missing = new Set((server.inventoryDrift || {}).missing || []);
  return h("section", { class: "panel", "data-server": server.name },
    h("div", { class: "toolbar" },
      h("h2", {}, server.name, " ", badge(server.namespace)),
      h("span", {}, server.gateway && server.gateway.enabled ? badge("gateway on", "ok") : badge("no gateway", "warn"))),
    server.description ? h("p", { class: "muted" }, server.description) : null,
    h("p", {}, h("strong", {}, `Declared: ${tools.length} tools: `),
      spaced(tools.map((t) => h("span", { class: missing.has(t.name) ? "badge bad" : "badge",
        title: missing.has(t.name) ? "Declared but not served" : t.description || "" },
      `${t.name} · ${t.sideEffect || t.side_effect || "?"} · ${t.requiredTrust || t.required_trust || "low"}`)))),
    declared("prompts", server.prompts), declared("resources", server.mcpResources),
    liveInventory(server),
    h("details", {}, h("summary", {}, "Connect"), connectPanel(server, principal)));
}

export async function render(root, { principal }) {
  const data = await api.get("/runtime/servers");
  const list = data.servers || [];
  const holder = h("div", {});
  const search = filterBox(() => null, "Search servers and tools…");
  search.addEventListener("input", () => {
    const q = search.value.trim().toLowerCase();
    for (const el of holder.children) el.hidden = q !== "" && !el.textContent.toLowerCase().includes(q);
  });
  mount(holder, list.length ? list.map((s) => serverCard(s, principal))
    : h("div", { class: "empty panel" }, "No MCP servers visible to you yet."));
  mount(root, h("div", { class: "toolbar" }, h("h1", {}, "MCP servers"), search),
    h("p", { class: "muted" }, `Front door: ${frontDoor()}/<server>/mcp — every call is checked against your grants and session.`),
    holder);
}
