// The single-page dashboard: sign-in, tab routing (#/tab) and page rendering.
import { auth, setCsrf } from "./api.js";
import { h, mount, toast, errorBox } from "./dom.js";
import * as servers from "./pages/servers.js";
import * as activity from "./pages/activity.js";
import * as keys from "./pages/keys.js";
import * as analytics from "./pages/analytics.js";
import * as governance from "./pages/governance.js";
import * as operations from "./pages/operations.js";
import * as platform from "./pages/platform.js";

const TABS = [
  { id: "servers", label: "Servers", page: servers, show: () => true },
  { id: "activity", label: "My activity", page: activity, show: (p) => p.role !== "admin" },
  { id: "keys", label: "API keys", page: keys, show: (p) => Boolean(p.subject) },
  { id: "analytics", label: "Analytics", page: analytics, show: (p) => p.role === "admin" },
  { id: "governance", label: "Access control", page: governance, show: () => true },
  { id: "operations", label: "MCP operations", page: operations, show: (p) => p.role === "admin" },
  { id: "platform", label: "Platform", page: platform, show: (p) => p.role === "admin" },
];

const session = { principal: null };
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
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const body = mode === "api_key" ? { api_key: data.get("api_key") }
      : { email: data.get("email"), password: data.get("password") };
    const button = document.getElementById("signin-submit");
    button.disabled = true;
    try {
      signedIn(await auth.login(body));
      form.reset();
    } catch (err) {
      document.getElementById("signin-error").textContent =
        err.status === 401 ? "Wrong email, password or key." : err.message;
    } finally {
      button.disabled = false;
    }
  });
  document.getElementById("signout").addEventListener("click", async () => {
    try { await auth.logout(); } catch (err) { toast(err.message, true); }
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
