// "Sign in with Google" in the sign-in dialog, through Google Identity Services (GIS).
// Google's script is requested only when config.js names a client id, and only once the dialog
// first opens; without a client id this module does nothing and nothing is fetched from Google.
import { h } from "./dom.js";

const GSI_SCRIPT = "https://accounts.google.com/gsi/client";
const GSI_STYLE = "https://accounts.google.com/gsi/style";
const LOAD_TIMEOUT_MS = 15000;

let loading = null; // promise of google.accounts.id while loading or once loaded

export function googleClientId() {
  const id = window.MCP_GOOGLE_CLIENT_ID;
  return typeof id === "string" ? id.trim() : "";
}

function loadGsi() {
  if (loading) return loading;
  loading = new Promise((resolve, reject) => {
    // GIS inserts its button styles as an inline <style> unless an element with this id exists.
    // The CSP refuses inline styles, so the same rules come from Google's stylesheet instead
    // (the one style source the CSP admits besides our own).
    if (!document.getElementById("googleidentityservice_button_styles")) {
      document.head.append(h("link", { id: "googleidentityservice_button_styles", rel: "stylesheet", href: GSI_STYLE }));
    }
    const script = h("script", { src: GSI_SCRIPT, async: true });
    const fail = (why) => {
      clearTimeout(timer);
      script.remove();
      reject(new Error(why));
    };
    // A blackholed network may never fire `error`: give up after a while instead of hanging.
    const timer = setTimeout(() => fail("Google did not answer in time"), LOAD_TIMEOUT_MS);
    script.addEventListener("error", () => fail("Google's sign-in script could not be loaded"));
    script.addEventListener("load", () => {
      clearTimeout(timer);
      const gsi = window.google && window.google.accounts && window.google.accounts.id;
      if (gsi && typeof gsi.initialize === "function" && typeof gsi.renderButton === "function") resolve(gsi);
      else fail("Google's sign-in script did not start");
    });
    document.head.append(script);
  });
  loading.catch(() => { loading = null; }); // the next opening of the dialog tries again
  return loading;
}

// Each rendering starts a sign-in at the UI (POST /auth/oidc/start): Google copies its `nonce`
// into the ID token, and the `state` goes back with the token, so the UI and the API can tell the
// answer belongs to this browser's sign-in (functions/ui/oidc_flow.py).
async function startSignIn() {
  const resp = await fetch("/auth/oidc/start", { method: "POST", credentials: "same-origin" });
  if (!resp.ok) throw new Error(`sign-in could not start (${resp.status})`);
  const body = await resp.json();
  if (typeof body.nonce !== "string" || typeof body.state !== "string") throw new Error("sign-in could not start");
  return body;
}

// Returns null without a client id; else {show, signedOut}. `onCredential(idToken, state)`
// receives the ID token (a JWT) Google hands back when the user picks an account and this
// sign-in's state; it resolves to true once signed in. After a failed attempt a fresh sign-in
// (new nonce and state) is started for the next one.
export function googleSignIn(onCredential) {
  const clientId = googleClientId();
  if (!clientId) return null;
  const box = document.getElementById("google-signin");
  const target = document.getElementById("google-signin-button");
  const status = document.getElementById("google-signin-status");
  box.hidden = false;
  let showing = null;

  async function render() {
    status.textContent = "";
    box.classList.remove("unavailable");
    try {
      const gsi = await loadGsi();
      const { nonce, state } = await startSignIn();
      gsi.initialize({
        client_id: clientId,
        nonce,
        callback: async (response) => {
          const ok = await onCredential(response && response.credential, state);
          // This nonce is spent (or its attempt failed): the next showing starts a fresh sign-in,
          // right away after a failure, else when the dialog opens again (sign-out, session end).
          showing = null;
          if (!ok) show();
        },
      });
      gsi.renderButton(target, { type: "standard", theme: "outline", size: "large", text: "signin_with",
        shape: "rectangular", logo_alignment: "left", width: 280 });
    } catch (err) {
      box.classList.add("unavailable");
      status.textContent = `Google sign-in is unavailable (${err.message}); email and API-key sign-in still work.`;
      throw err;
    }
  }

  // Loads Google's script and renders the button once; after a failure the next call retries.
  function show() {
    if (!showing) showing = render().catch(() => { showing = null; });
    return showing;
  }

  return {
    show,
    // Google's advice for sign-out: no automatic re-selection of the account just signed out.
    // The next sign-in needs a fresh nonce and state (the last ones were spent).
    signedOut() {
      const gsi = window.google && window.google.accounts && window.google.accounts.id;
      if (gsi && typeof gsi.disableAutoSelect === "function") gsi.disableAutoSelect();
      showing = null;
    },
  };
}
