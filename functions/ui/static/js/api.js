// Same-origin calls to the UI's /api proxy and /auth routes. The session cookie is HttpOnly;
// state-changing calls carry the CSRF token the UI handed out at sign-in.
const state = { csrf: "" };
const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

export class ApiError extends Error {
  constructor(status, code, message, body = null) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.body = body; // the whole error body (e.g. per-component restart outcomes)
  }
}

export function setCsrf(token) { state.csrf = token || ""; }

async function request(url, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (UNSAFE.has(method) && state.csrf) headers["X-CSRF-Token"] = state.csrf;
  let resp;
  try {
    resp = await fetch(url, { method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, "network_error", "the dashboard server is not reachable");
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { message: text }; }
  if (!resp.ok) {
    const err = new ApiError(resp.status, data && data.error, data && (data.message || data.error), data);
    // Any 401 means the session (or its upstream token) is gone: flip to signed-out.
    if (resp.status === 401 && !url.startsWith("/auth/login")) {
      window.dispatchEvent(new CustomEvent("sentinel:signed-out", { detail: err }));
    }
    throw err;
  }
  return data;
}

const base = () => (window.MCP_API_BASE || "/api").replace(/\/$/, "");

export const api = {
  get: (path) => request(base() + path),
  post: (path, body = {}) => request(base() + path, { method: "POST", body }),
  put: (path, body = {}) => request(base() + path, { method: "PUT", body }),
  patch: (path, body = {}) => request(base() + path, { method: "PATCH", body }),
  del: (path) => request(base() + path, { method: "DELETE" }),
};

export const auth = {
  status: () => request("/auth/status"),
  login: (body) => request("/auth/login", { method: "POST", body }),
  logout: () => request("/auth/logout", { method: "POST", body: {} }),
};

export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}
