// "Connect": copy-ready client configuration for one server.
//
// The first tab is the platform path: an `mcpServers` block for streamable-HTTP clients with a
// bearer token minted for the signed-in user (an agent session from the adapter, then a token for
// that session: both API calls check the user's grants, so the UI grants nothing itself). The
// second is the stdio bridge (`sentinel connect <server> --stdio`) for clients that cannot attach
// headers. The rest are the identity-header forms for servers in `header` mode.
import { api } from "./api.js";
import { h, toast, when } from "./dom.js";

export function frontDoor() {
  return (window.MCP_FRONT_DOOR_URL || location.origin).replace(/\/$/, "");
}

export function serverUrl(server) {
  return (server.status && server.status.url) || `${frontDoor()}/${server.name}/mcp`;
}

const TOKEN_PLACEHOLDER = "<press Get a token>";

export function tokenConfig(server, token = TOKEN_PLACEHOLDER, url = serverUrl(server)) {
  return JSON.stringify({ mcpServers: { [server.name]: {
    type: "http", url, headers: { Authorization: `Bearer ${token}` } } } }, null, 2);
}

export function stdioConfig(server) {
  return JSON.stringify({ mcpServers: { [server.name]: {
    command: "sentinel", args: ["connect", server.name, "--stdio"] } } }, null, 2);
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
    "Agent token (HTTP)": tokenConfig(server),
    "stdio (sentinel connect)": stdioConfig(server),
    "Claude Desktop (headers)": JSON.stringify({ mcpServers: { [server.name]: {
      command: "npx", args: ["mcp-remote", url, ...headerArgs] } } }, null, 2),
    "Cursor (headers)": JSON.stringify({ mcpServers: { [server.name]: { url, headers } } }, null, 2),
    "VS Code (headers)": JSON.stringify({ servers: { [server.name]: { type: "http", url, headers } } }, null, 2),
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

// An agent session for `agentID` on the server (bounded by the user's grants), then a token for it.
export async function mintToken(server, agentID) {
  const session = await api.post("/runtime/adapter/sessions",
    { serverName: server.name, namespace: server.namespace, agentID });
  return api.post("/agent-tokens", { namespace: session.namespace || server.namespace, session: session.name });
}

export function connectPanel(server, principal) {
  const configs = connectConfigs(server, principal);
  const names = Object.keys(configs);
  const pre = h("pre", { class: "code", "data-testid": `connect-${server.name}` }, configs[names[0]]);
  const tabs = h("div", { class: "tabs-inner" });
  const show = (n) => {
    pre.textContent = configs[n];
    for (const b of tabs.children) b.classList.toggle("active", b.textContent === n);
  };
  for (const n of names) tabs.append(h("button", { type: "button", onclick: () => show(n) }, n));
  tabs.firstChild.classList.add("active");
  const problem = h("p", { class: "error", role: "alert", "data-testid": `connect-error-${server.name}` });
  const note = h("p", { class: "muted small", "data-testid": `token-note-${server.name}` });
  const agent = h("input", { name: "agentID", value: "my-agent", "aria-label": "Agent ID", required: true });
  const mint = h("form", { class: "row", onsubmit: async (ev) => {
    ev.preventDefault();
    problem.textContent = "";
    const submit = mint.querySelector("button");
    submit.disabled = true;
    try {
      const tok = await mintToken(server, agent.value.trim());
      configs[names[0]] = tokenConfig(server, tok.access_token, tok.resource || serverUrl(server));
      note.textContent = `Token for agent "${agent.value.trim()}" on ${tok.resource}; expires ${when(tok.expires_at)}. `
        + "It is shown once: get a new one when it expires.";
      show(names[0]);
    } catch (err) {
      if (err.status === 401) return; // api.js already flipped the page to signed-out
      problem.textContent = `No token: ${err.message}`;
    } finally { submit.disabled = false; }
  } }, h("label", {}, "Agent ID", agent), h("button", { type: "submit", "data-testid": `mint-${server.name}` }, "Get a token"));
  const copy = h("button", { type: "button", class: "secondary", "data-testid": `copy-${server.name}`, onclick: async () => {
    try { await navigator.clipboard.writeText(pre.textContent); toast("Copied"); }
    catch { toast("Select the text and copy it manually", true); }
  } }, "Copy");
  return h("div", {}, mint, problem, note, tabs, pre, copy);
}
