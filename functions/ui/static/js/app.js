// The single-page dashboard: sign-in, tab routing (#/tab) and page rendering.
import { auth, setCsrf } from "./api.js";
import { h, mount, toast, errorBox } from "./dom.js";
import { googleSignIn } from "./google.js";
import * as servers from "./pages/servers.js";
import * as activity from "./pages/activity.js";
import * as keys from "./pages/keys.js";
import * as analytics from "./pages/analytics.js";
import * as governance from "./pages/governance.js";
import * as operations from "./pages/operations.js";
import * as platform from "./pages/platform.js";
import * as teams from "./pages/teams.js";
import * as approvals from "./pages/approvals.js";

const TABS = [
  { id: "servers", label: "Servers", page: servers, show: () => true },
  { id: "activity", label: "My activity", page: activity, show: (p) => p.role !== "admin" },
  { id: "keys", label: "API keys", page: keys, show: (p) => Boolean(p.subject) },
  { id: "analytics", label: "Analytics", page: analytics, show: (p) => p.role === "admin" },
  { id: "governance", label: "Access control", page: governance, show: () => true },
  { id: "approvals", label: "Approvals", page: approvals, show: (p) => Boolean(p.subject) },
  { id: "teams", label: "Teams", page: teams, show: (p) => Boolean(p.subject) || p.role === "admin" },
  { id: "operations", label: "MCP operations", page: operations, show: (p) => p.role === "admin" },
  { id: "platform", label: "Platform", page: platform, show: (p) => p.role === "admin" },
];

const session = { principal: null };
let google = null; // the "Sign in with Google" button, when config.js names a Google client id
const page = document.getElementById("page");
const views = new Map();

function visibleTabs() {
  return session.principal ? TABS.filter((t) => t.show(session.principal)) : [];
}

function renderChrome() {
  const tabs = visibleTabs();
  const current = currentTab();
  mount(document.getElementById("tabs"), tabs.map((t) =>
    h("a", { href: `#/${t.id}`, class: t.id === current ? "active" : "", "data-tab": t.id }, t.label)));
  const p = session.principal;
  document.getElementById("who").textContent = p ? `${p.email || p.subject || "service key"} · ${p.role}` : "";
  document.getElementById("signout").hidden = !p;
}

function currentTab() {
  const id = location.hash.replace(/^#\/?/, "");
  const tabs = visibleTabs();
  return (tabs.find((t) => t.id === id) || tabs[0] || {}).id;
}

async function renderPage() {
  renderChrome();
  if (!session.principal) {
    mount(page, h("div", { class: "panel" }, h("h1", {}, "Signed out"),
      h("p", { class: "muted" }, "Sign in to manage MCP servers, access and audit.")));
    return;
  }
  const tab = TABS.find((t) => t.id === currentTab());
  page.dataset.page = tab.id;
  // Each tab renders into its own element: a slow render of a tab the user already left then
  // lands in that tab's detached element instead of over the page now shown. The element also
  // keeps the tab's own state (chosen namespace, window) across tab switches.
  if (!views.has(tab.id)) views.set(tab.id, h("div", { "data-view": tab.id }));
  const view = views.get(tab.id);
  mount(view, h("div", { class: "muted" }, "Loading…"));
  mount(page, view);
  try {
    await tab.page.render(view, { principal: session.principal, isAdmin: session.principal.role === "admin" });
  } catch (err) {
    if (err.status !== 401) mount(view, errorBox(err));
  }
}

function signedIn(body) {
  session.principal = body.principal;
  setCsrf(body.csrf_token);
  document.getElementById("signin").close();
  renderPage();
}

function signedOut(message) {
  session.principal = null;
  views.clear(); // the next user starts from fresh pages
  setCsrf("");
  renderPage();
  openSignIn(message);
}

function openSignIn(message = "") {
  const dlg = document.getElementById("signin");
  document.getElementById("signin-error").textContent = message;
  if (!dlg.open) dlg.showModal();
  if (google) google.show();
}

// Every sign-in method posts its body to /auth/login the same way: one error line, one success
// path, one attempt at a time (a second click while one is under way is ignored).
let signingIn = false;
async function submitLogin(body, describeError) {
  if (signingIn) return false;
  const form = document.getElementById("signin-form");
  const button = document.getElementById("signin-submit");
  const error = document.getElementById("signin-error");
  signingIn = true;
  button.disabled = true;
  error.textContent = "";
  try {
    signedIn(await auth.login(body));
    form.reset();
    return true;
  } catch (err) {
    error.textContent = describeError(err);
    return false;
  } finally {
    signingIn = false;
    button.disabled = false;
  }
}

function googleCredential(idToken, state) {
  if (!idToken) {
    document.getElementById("signin-error").textContent = "Google sign-in returned no credential; please try again.";
    return Promise.resolve(false);
  }
  // A rejected token shows the server's reason (e.g. "invalid ID token"), not a generic line.
  return submitLogin({ id_token: idToken, state }, (err) => `Google sign-in failed: ${err.message}`);
}

function setupSignIn() {
  const form = document.getElementById("signin-form");
  let mode = "password";
  for (const btn of form.querySelectorAll("[data-mode]")) {
    btn.addEventListener("click", () => {
      mode = btn.dataset.mode;
      for (const b of form.querySelectorAll("[data-mode]")) b.classList.toggle("active", b === btn);
      for (const f of form.querySelectorAll("[data-fields]")) f.hidden = f.dataset.fields !== mode;
    });
  }
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const body = mode === "api_key" ? { api_key: data.get("api_key") }
      : { email: data.get("email"), password: data.get("password") };
    submitLogin(body, (err) => (err.status === 401 ? "Wrong email, password or key." : err.message));
  });
  google = googleSignIn(googleCredential);
  document.getElementById("signout").addEventListener("click", async () => {
    try { await auth.logout(); } catch (err) { toast(err.message, true); }
    if (google) google.signedOut();
    signedOut("");
  });
}

window.addEventListener("sentinel:signed-out", () => {
  if (session.principal) signedOut("Your session has ended; please sign in again.");
});
window.addEventListener("hashchange", renderPage);

setupSignIn();
auth.status().then((s) => {
  if (s.authenticated) signedIn(s); else signedOut("");
}).catch((err) => signedOut(err.message));
