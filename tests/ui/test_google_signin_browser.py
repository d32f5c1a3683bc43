""""Sign in with Google" in a real Chromium: UI → API `/api/auth/oidc` → a local OIDC issuer, for real.

Google cannot be reached from here, so every request to https://accounts.google.com is answered by
Playwright: `/gsi/client` with a stand-in for Google Identity Services that has the real library's
page-side footprint (stylesheet link, inline button styles unless GIS's marker element exists, a
button iframe and a fetch under `/gsi/`) and its API (`initialize`, `renderButton`,
`disableAutoSelect`). Its button hands the registered callback an ID token signed by a local issuer
that the API (real process, real Postgres) trusts through `OIDC_ISSUER`/`OIDC_AUDIENCE`, with the
Google client id as the audience, as Google's tokens have.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from localstack.config import Ports, StackConfig, free_port
from localstack.parts import api, postgres, ui
from localstack.supervisor import Component, Supervisor
from tests.fixtures.oidc import Issuer
from tests.helpers.browser import ARGS, CHROMIUM
from tests.helpers.ui import USER

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]
CLIENT_ID = "sentinel-test.apps.googleusercontent.com"
GOOGLE = "https://accounts.google.com"

STANDIN_GSI = r"""
(() => {
  const d = document;
  if (!d.getElementById("googleidentityservice")) {
    const link = d.createElement("link");
    link.id = "googleidentityservice"; link.rel = "stylesheet"; link.href = "https://accounts.google.com/gsi/style";
    d.head.append(link);
  }
  if (!d.getElementById("googleidentityservice_button_styles")) {  // what the real library does
    const style = d.createElement("style");
    style.id = "googleidentityservice_button_styles"; style.textContent = "[data-gsi-standin]{cursor:pointer}";
    d.head.append(style);
  }
  let config = null;
  window.google = { accounts: { id: {
    initialize(c) {
      config = c;
      window.__gsiInit = { client_id: c.client_id, callback: typeof c.callback, nonce: typeof c.nonce };
    },
    renderButton(parent, options) {
      window.__gsiButton = options;
      const button = d.createElement("div");
      button.setAttribute("role", "button"); button.dataset.gsiStandin = ""; button.textContent = "Sign in with Google";
      const frame = d.createElement("iframe");
      frame.title = "Sign in with Google Button";
      frame.src = "https://accounts.google.com/gsi/button?client_id=" + encodeURIComponent(config.client_id);
      button.addEventListener("click", async () => {
        // Google copies the nonce the page passed to initialize() into the ID token it mints.
        const r = await fetch("https://accounts.google.com/gsi/standin/credential?nonce="
          + encodeURIComponent(config.nonce || ""), { credentials: "omit" });
        const body = await r.json();
        config.callback({ credential: body.credential, select_by: "btn", clientId: config.client_id });
      });
      parent.replaceChildren(button, frame);
    },
    disableAutoSelect() { window.__gsiAutoSelectDisabled = true; },
  } } };
})();
"""
# Collected before any page script runs: every CSP violation, whatever the console says.
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(`${e.effectiveDirective} ${e.blockedURI}`));
"""


@dataclass
class GoogleStack:
    cfg: StackConfig
    ui_google: str  # UI with UI_GOOGLE_CLIENT_ID
    ui_plain: str  # the same UI without a client id
    trusted: Issuer
    untrusted: Issuer



def _ui(cfg: StackConfig, name: str, port: int, **env: str) -> Component:
    (comp,) = ui.components(cfg)
    url = f"http://{cfg.host}:{port}"
    env = {**comp.env, "PORT": str(port), "UI_SESSION_DIR": str(cfg.path(name, "sessions")), **env}
    return replace(comp, name=name, env=env, health_url=f"{url}/health")


@pytest.fixture(scope="module")
def gstack() -> Iterator[GoogleStack]:
    """Postgres + the API trusting a local OIDC issuer + two UIs (with and without a Google client id)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (/usr/bin/chromium)")
    trusted, untrusted = Issuer(audience=CLIENT_ID), Issuer(audience=CLIENT_ID)
    data = Path(tempfile.mkdtemp(prefix="sentinel-ui-google-"))
    data.chmod(0o755)  # the postgres part runs as the postgres user
    cfg = StackConfig(data_dir=data, ports=Ports.free())
    (api_comp,) = api.components(cfg)
    api_comp = replace(api_comp, env={**api_comp.env, "OIDC_ISSUER": trusted.url, "OIDC_AUDIENCE": CLIENT_ID})
    plain_port = free_port()
    try:
        with Supervisor(cfg) as sup:
            sup.start_all([
                *postgres.components(cfg),
                api_comp,
                _ui(cfg, "ui", cfg.ports.ui, UI_GOOGLE_CLIENT_ID=CLIENT_ID),
                _ui(cfg, "ui-plain", plain_port, UI_GOOGLE_CLIENT_ID="", GOOGLE_CLIENT_ID=""),
            ])
            yield GoogleStack(cfg, cfg.url("ui"), f"http://{cfg.host}:{plain_port}", trusted, untrusted)
    finally:
        trusted.close()
        untrusted.close()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(gstack: GoogleStack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


class FakeGoogle:
    """Answers every request to accounts.google.com in one browser context and records them."""

    def __init__(self, context: Any, issuer: Issuer | None, *, script: str = "standin") -> None:
        self.issuer = issuer
        self.script = script  # "standin" or "unreachable"
        self.requests: list[str] = []
        self.minted: list[str] = []
        self.nonces: list[str] = []
        context.route(f"{GOOGLE}/**", self._handle)

    def _handle(self, route: Any) -> None:
        url = route.request.url
        self.requests.append(url)
        path = url.split("?")[0].removeprefix(GOOGLE)
        if path == "/gsi/client":
            if self.script == "unreachable":
                route.abort("connectionrefused")
            else:
                route.fulfill(status=200, content_type="text/javascript", body=STANDIN_GSI)
        elif path == "/gsi/style":
            route.fulfill(status=200, content_type="text/css",
                          body="[data-gsi-standin] { outline: 3px solid rgb(1, 2, 3); }")
        elif path == "/gsi/button":
            route.fulfill(status=200, content_type="text/html", body="<!doctype html><p>stand-in button frame</p>")
        elif path == "/gsi/standin/credential" and self.issuer is not None:
            nonce = parse_qs(urlsplit(url).query).get("nonce", [""])[0]
            self.nonces.append(nonce)
            token = self.issuer.token(sub="google-user-7", email="Googler@Example.com", email_verified=True,
                                      nonce=nonce)
            self.minted.append(token)
            route.fulfill(status=200, content_type="application/json", body=json.dumps({"credential": token}),
                          headers={"access-control-allow-origin": "*"})
        else:
            route.fulfill(status=404, body="")


def _page(browser: Any, google: dict[str, Any]) -> tuple[Any, Any, FakeGoogle, list[str]]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.add_init_script(WATCH_CSP)
    fake = FakeGoogle(context, **google)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    return context, page, fake, errors


def _password_sign_in(page: Any) -> None:
    from playwright.sync_api import expect

    page.fill("input[name=email]", USER[0])
    page.fill("input[name=password]", USER[1])
    page.click("#signin-submit")
    expect(page.locator("#signin")).to_be_hidden()
    expect(page.get_by_test_id("who")).to_contain_text(USER[0])


def test_google_button_signs_in_through_the_api(gstack: GoogleStack, browser: Any) -> None:
    from playwright.sync_api import expect

    context, page, fake, errors = _page(browser, {"issuer": gstack.trusted})
    try:
        resp = page.goto(gstack.ui_google + "/")
        assert resp is not None and resp.headers["cross-origin-opener-policy"] == "same-origin-allow-popups"
        expect(page.locator("#signin")).to_be_visible()
        button = page.locator("#google-signin-button [data-gsi-standin]")
        expect(button).to_be_visible()
        assert page.evaluate("window.__gsiInit") == {"client_id": CLIENT_ID, "callback": "function", "nonce": "string"}
        assert page.evaluate("window.__gsiButton.text") == "signin_with"
        # The CSP admitted Google's stylesheet and button iframe (and nothing inline was needed).
        expect(button).to_have_css("outline-color", "rgb(1, 2, 3)")
        # A frame locator waits for the iframe to attach and load (page.frame() raced its navigation).
        frame = page.frame_locator('iframe[src^="https://accounts.google.com/gsi/button"]')
        expect(frame.locator("p")).to_have_text("stand-in button frame")

        with page.expect_response(lambda r: r.url.endswith("/auth/login")) as login:
            button.click()
        assert login.value.status == 200
        sent = login.value.request.post_data_json
        assert sent["id_token"] == fake.minted[-1] and set(sent) == {"id_token", "state"}  # the credential, as is
        assert fake.nonces[-1]  # the page started a sign-in and handed its nonce to Google
        expect(page.locator("#signin")).to_be_hidden()
        expect(page.get_by_test_id("who")).to_have_text("googler@example.com · user")
        cookie = next(c for c in context.cookies() if c["name"] == "mcp_ui_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        # The session carries the API's own token for that user (the ID token was exchanged).
        me = page.request.get(gstack.ui_google + "/api/auth/me")
        assert me.status == 200 and me.json()["principal"]["email"] == "googler@example.com"
        assert me.json()["principal"]["authType"] == "platform_jwt"
        assert sum(u == f"{GOOGLE}/gsi/client" for u in fake.requests) == 1

        page.click("#signout")  # Google's advice on sign-out: no automatic re-selection
        expect(page.locator("#signin")).to_be_visible()
        assert page.evaluate("window.__gsiAutoSelectDisabled") is True
        assert page.evaluate("window.__csp") == [] and errors == [], (page.evaluate("window.__csp"), errors)
    finally:
        context.close()


def test_token_from_an_untrusted_issuer_is_refused(gstack: GoogleStack, browser: Any) -> None:
    from playwright.sync_api import expect

    context, page, fake, errors = _page(browser, {"issuer": gstack.untrusted})
    try:
        page.goto(gstack.ui_google + "/")
        button = page.locator("#google-signin-button [data-gsi-standin]")
        with page.expect_response(lambda r: r.url.endswith("/auth/login")) as login:
            button.click()
        assert login.value.status == 401 and fake.minted
        # The server's own reason, not the password form's generic line.
        expect(page.locator("#signin-error")).to_have_text("Google sign-in failed: invalid ID token")
        expect(page.locator("#signin")).to_be_visible()
        expect(page.get_by_test_id("who")).to_have_text("")
        assert not [c for c in context.cookies() if c["name"] == "mcp_ui_session"]
        assert page.request.get(gstack.ui_google + "/auth/status").json() == {"authenticated": False}
        assert errors == []
    finally:
        context.close()


def test_unreachable_google_script_leaves_password_sign_in(gstack: GoogleStack, browser: Any) -> None:
    from playwright.sync_api import expect

    context, page, fake, errors = _page(browser, {"issuer": gstack.trusted, "script": "unreachable"})
    try:
        page.goto(gstack.ui_google + "/")
        expect(page.get_by_test_id("google-signin-status")).to_contain_text(
            "Google sign-in is unavailable (Google's sign-in script could not be loaded)")
        expect(page.locator("#google-signin-button")).to_be_empty()
        assert f"{GOOGLE}/gsi/client" in fake.requests
        assert page.evaluate("typeof window.google") == "undefined"
        _password_sign_in(page)
        # Google answers again: the next opening of the dialog retries and shows the button.
        fake.script = "standin"
        page.click("#signout")
        expect(page.locator("#google-signin-button [data-gsi-standin]")).to_be_visible()
        expect(page.get_by_test_id("google-signin-status")).to_have_text("")
        assert errors == []
    finally:
        context.close()


def test_without_a_client_id_nothing_of_google_loads(gstack: GoogleStack, browser: Any) -> None:
    from playwright.sync_api import expect

    context, page, fake, errors = _page(browser, {"issuer": gstack.trusted})
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    try:
        resp = page.goto(gstack.ui_plain + "/")
        assert resp is not None
        csp = resp.headers["content-security-policy"]
        assert "google" not in csp and resp.headers["cross-origin-opener-policy"] == "same-origin"
        expect(page.locator("#signin")).to_be_visible()
        page.wait_for_load_state("networkidle")
        expect(page.locator("#google-signin")).to_be_hidden()
        expect(page.locator("#google-signin-button")).to_be_empty()
        assert page.evaluate("window.MCP_GOOGLE_CLIENT_ID") == ""
        page.fill("input[name=email]", USER[0])
        page.fill("input[name=password]", "wrong-password")
        page.click("#signin-submit")
        expect(page.locator("#signin-error")).to_have_text("Wrong email, password or key.")
        _password_sign_in(page)
        assert fake.requests == [] and not [u for u in seen if "google.com" in u], seen
        assert page.evaluate("document.querySelector('link[href*=google], script[src*=google]')") is None
        assert page.evaluate("window.__csp") == [] and errors == []
    finally:
        context.close()


def test_config_js_names_the_client_id(gstack: GoogleStack) -> None:
    body = httpx.get(gstack.ui_google + "/config.js").text
    assert f'window.MCP_GOOGLE_CLIENT_ID = "{CLIENT_ID}";' in body
