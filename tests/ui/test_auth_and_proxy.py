"""UI routes against the real API: sign-in modes and errors, cookies, CSRF, headers, proxying."""

from __future__ import annotations

from functions.ui.ratelimit import client_address
from functions.ui.settings import RateLimits, UiSettings, parse_networks
from localstack.config import free_port
from tests.helpers.ui import ADMIN, USER, login

ORIGIN = "https://ui.test"


def test_health_and_config_js_carry_no_credentials(make_client, backend):
    c = make_client()
    assert c.get("/health").json() == {"ok": True}
    resp = c.get("/config.js")
    assert resp.headers["content-type"].startswith("application/javascript")
    body = resp.text
    assert 'window.MCP_API_BASE = "/api";' in body
    assert '"namespace":"mcp-servers"' in body and '"policyVersion":"v1"' in body
    assert backend.admin_api_key not in body and "key" not in body.lower()


def test_security_headers_and_strict_csp(make_client):
    c = make_client()
    for path in ("/", "/health", "/auth/status", "/nope"):
        h = c.get(path).headers
        assert h["x-content-type-options"] == "nosniff"
        assert h["referrer-policy"] == "strict-origin-when-cross-origin"
        assert "camera=()" in h["permissions-policy"]
        csp = h["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
        assert "http" not in csp.replace("'self'", "")  # no external origin at all
        assert h["strict-transport-security"].startswith("max-age=63072000")
    assert c.get("/auth/status").headers["cache-control"].startswith("no-store")
    assert c.get("/").headers["cross-origin-opener-policy"] == "same-origin"
    g = make_client(google_client_id="cid.apps.googleusercontent.com")
    h = g.get("/").headers
    # Exactly what Google Identity Services needs (its documented CSP), nothing else of Google.
    directives = dict(d.split(" ", 1) for d in h["content-security-policy"].split("; "))
    assert directives["script-src"] == "'self' https://accounts.google.com/gsi/client"
    assert directives["style-src"] == "'self' https://accounts.google.com/gsi/style"
    assert directives["connect-src"] == "'self' https://accounts.google.com/gsi/"
    assert directives["frame-src"] == "https://accounts.google.com/gsi/"
    assert directives["img-src"] == "'self' data:" and directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in h["content-security-policy"] and "apis.google.com" not in h["content-security-policy"]
    # Google's sign-in popup must reach back to its opener (COOP same-origin would sever it).
    assert h["cross-origin-opener-policy"] == "same-origin-allow-popups"


def test_password_login_sets_hardened_cookie_and_status(make_client):
    c = make_client()
    assert c.get("/auth/status").json() == {"authenticated": False}
    resp = c.post("/auth/login", json={"email": USER[0].upper(), "password": USER[1]})
    assert resp.status_code == 200, resp.text
    cookie = resp.headers["set-cookie"]
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
        assert flag.lower() in cookie.lower(), cookie
    body = resp.json()
    assert body["principal"]["email"] == USER[0] and body["principal"]["role"] == "user"
    assert body["principal"]["auth_type"] == "platform_jwt" and body["csrf_token"]
    status = c.get("/auth/status").json()
    assert status["authenticated"] and status["csrf_token"] == body["csrf_token"]
    # The session lives no longer than the API token behind it (15 min), not a blind 8 h.
    assert "max-age=" in cookie.lower() and int(cookie.lower().split("max-age=")[1].split(";")[0]) <= 900


def test_cookie_not_secure_when_https_disabled(make_client):
    c = make_client(require_https="false")
    resp = c.post("http://ui.test/auth/login", json={"email": USER[0], "password": USER[1]})
    assert resp.status_code == 200
    assert "secure" not in resp.headers["set-cookie"].lower()
    forced = make_client(require_https="false", force_secure_cookie=True)
    resp = forced.post("http://ui.test/auth/login", json={"email": USER[0], "password": USER[1]})
    assert "secure" in resp.headers["set-cookie"].lower()


def test_login_errors(make_client):
    c = make_client()
    wrong = c.post("/auth/login", json={"email": "wrong-pass@example.org", "password": "not-it"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
    assert "set-cookie" not in wrong.headers
    bad = c.post("/auth/login", content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"
    assert c.post("/auth/login", json=["x"]).json()["error"] == "invalid_request"
    missing = c.post("/auth/login", json={"email": USER[0]})
    assert missing.status_code == 400 and missing.json()["error"] == "missing_credentials"
    big = c.post("/auth/login", json={"api_key": "x" * 9000})
    assert big.status_code == 413 and big.json()["error"] == "request_too_large"
    key = c.post("/auth/login", json={"api_key": "mcpu_not-a-real-key"})
    assert key.status_code == 401 and key.json()["error"] == "unauthorized"
    for method in ("get", "put", "delete"):
        r = getattr(c, method)("/auth/login")
        assert r.status_code == 405 and r.json()["error"] == "method_not_allowed" and r.headers["allow"] == "POST"
    assert c.get("/auth/logout").status_code == 405
    cross = c.post("/auth/login", json={"email": USER[0], "password": USER[1]}, headers={"origin": "https://evil.example"})
    assert cross.status_code == 403 and cross.json()["error"] == "csrf_rejected"


def test_rate_limit_bucket_and_lockout(make_client):
    c = make_client(limits=RateLimits(capacity=3, refill_per_minute=1, failure_threshold=10))
    # Distinct unknown emails: the API's own per-account lockout must not be what answers here.
    for i in range(3):
        assert c.post("/auth/login", json={"email": f"nobody{i}@example.org", "password": "nope"}).status_code == 401
    # A spoofed X-Forwarded-For from an untrusted peer does not buy a fresh bucket.
    creds = {"email": USER[0], "password": USER[1]}
    blocked = c.post("/auth/login", json=creds, headers={"x-forwarded-for": "9.9.9.9"})
    assert blocked.status_code == 429 and blocked.json()["error"] == "too_many_requests"
    assert int(blocked.headers["retry-after"]) >= 1

    locked = make_client(limits=RateLimits(capacity=20, failure_threshold=2, lockout=300))
    for i in range(2):
        assert locked.post("/auth/login", json={"email": f"ghost{i}@example.org", "password": "x"}).status_code == 401
    right = locked.post("/auth/login", json={"email": USER[0], "password": USER[1]})
    assert right.status_code == 429 and 250 < int(right.headers["retry-after"]) <= 300


def test_client_address_trusts_only_configured_proxies():
    proxies = parse_networks("UI_TRUSTED_PROXIES", "10.0.0.0/8")
    assert client_address("203.0.113.5", "1.2.3.4", proxies) == "203.0.113.5"  # untrusted peer: XFF ignored
    assert client_address("10.1.1.1", "1.2.3.4, 198.51.100.7", proxies) == "198.51.100.7"  # right-most untrusted
    assert client_address("10.1.1.1", "1.2.3.4, 10.2.2.2", proxies) == "1.2.3.4"
    assert client_address("10.1.1.1", None, proxies) == "10.1.1.1"
    assert UiSettings.from_env({"UI_TRUSTED_PROXIES": "127.0.0.1"}).trusted_proxies


def test_proxy_injects_session_credential_and_enforces_csrf(make_client):
    c = make_client()
    assert c.get("/api/auth/me").status_code == 401  # no session: the API decides, and says no
    csrf = login(c)["csrf_token"]
    me = c.get("/api/auth/me")
    assert me.status_code == 200 and me.json()["principal"]["email"] == USER[0]
    assert me.headers["cache-control"].startswith("no-store")
    no_token = c.post("/api/user/api-keys", json={"name": "k1"})
    assert no_token.status_code == 403 and no_token.json()["error"] == "csrf_rejected"
    wrong = c.post("/api/user/api-keys", json={"name": "k1"}, headers={"x-csrf-token": "forged"})
    assert wrong.status_code == 403
    cross = c.post("/api/user/api-keys", json={"name": "k1"}, headers={"x-csrf-token": csrf, "origin": "https://evil.example"})
    assert cross.status_code == 403
    ok = c.post("/api/user/api-keys", json={"name": "k1"}, headers={"x-csrf-token": csrf, "origin": ORIGIN})
    assert ok.status_code == 200, ok.text
    raw = ok.json()["one_time_key"]
    assert any(k["name"] == "k1" for k in c.get("/api/user/api-keys").json()["keys"])
    # The new key signs a fresh browser in as the same user (the key itself is the upstream credential).
    other = make_client()
    body = other.post("/auth/login", json={"api_key": raw}).json()
    assert body["principal"]["email"] == USER[0] and body["principal"]["auth_type"] == "user_api_key"


def test_requests_with_their_own_credentials_pass_through(make_client, backend):
    c = make_client()
    csrf = login(c)["csrf_token"]
    raw = c.post("/api/user/api-keys", json={"name": "own"}, headers={"x-csrf-token": csrf, "origin": ORIGIN})
    fresh = make_client()
    # A user's own key passes through (no session, no CSRF token needed) and is that user.
    resp = fresh.get("/api/auth/me", headers={"x-api-key": raw.json()["api_key"]})
    assert resp.status_code == 200 and resp.json()["principal"]["email"] == USER[0]


def test_service_admin_keys_are_not_forwarded_from_the_public_side(make_client, backend):
    # Issue 14: the proxy forwarded any caller-supplied key, so the template's admin key was admin
    # from the internet. A service admin key is neither forwarded nor turned into a session.
    c = make_client()
    login(c)
    for method in ("GET", "POST", "DELETE"):
        resp = c.request(method, "/api/admin/audit", headers={"x-api-key": backend.admin_api_key})
        assert resp.status_code == 403 and resp.json()["error"] == "service_key_refused", method
    resp = make_client().post("/auth/login", json={"api_key": backend.admin_api_key})
    assert resp.status_code == 403 and resp.json()["error"] == "service_key_refused"
    assert backend.admin_api_key not in resp.text
    # Hiding the key behind a decoy in a repeated header does not get it forwarded either.
    for order in ([("x-api-key", "decoy"), ("x-api-key", backend.admin_api_key)],
                  [("x-api-key", backend.admin_api_key), ("x-api-key", "decoy")]):
        resp = c.request("GET", "/api/admin/audit", headers=order)
        assert resp.status_code == 400 and resp.json()["error"] == "ambiguous_credentials", order


def test_logout_requires_csrf_and_kills_the_session(make_client):
    c = make_client()
    csrf = login(c)["csrf_token"]
    assert c.post("/auth/logout").status_code == 403
    assert c.get("/auth/status").json()["authenticated"] is True
    out = c.post("/auth/logout", headers={"x-csrf-token": csrf})
    assert out.json() == {"authenticated": False}
    assert c.get("/auth/status").json() == {"authenticated": False}
    assert c.get("/api/auth/me").status_code == 401


def test_admin_check(make_client, backend):
    c = make_client()
    assert c.get("/auth/admin-check").status_code == 401
    assert c.get("/auth/admin-check", headers={"x-api-key": "wrong"}).status_code == 401
    assert c.get("/auth/admin-check", headers={"x-api-key": backend.admin_api_key}).status_code == 204
    login(c, USER)
    assert c.get("/auth/admin-check").status_code == 401
    a = make_client()
    assert a.post("/auth/login", json={"api_key": backend.admin_api_key}).status_code == 403  # not via the UI
    assert a.get("/auth/admin-check").status_code == 401
    b = make_client()
    login(b, ADMIN)
    assert b.get("/auth/admin-check").status_code == 204



def test_api_unreachable_is_502(make_client):
    c = make_client(api_upstream=f"http://127.0.0.1:{free_port()}")
    resp = c.get("/api/auth/me")
    assert resp.status_code == 502 and resp.json()["error"] == "api_unavailable"
    login_resp = c.post("/auth/login", json={"email": USER[0], "password": USER[1]})
    assert login_resp.status_code == 502 and login_resp.json()["error"] == "api_unavailable"


def test_forged_or_tampered_cookie_is_signed_out(make_client):
    c = make_client()
    login(c)
    good = c.cookies.get("mcp_ui_session")
    c.cookies.set("mcp_ui_session", good[:-2] + ("AA" if not good.endswith("AA") else "BB"), domain="ui.test")
    assert c.get("/auth/status").json() == {"authenticated": False}


def test_static_assets_and_cache_rules(make_client):
    c = make_client()
    index = c.get("/")
    assert index.status_code == 200 and "<title>mcp-sentinel</title>" in index.text
    assert index.headers["cache-control"] == "no-cache"
    assert c.get("/js/app.js").headers["cache-control"] == "max-age=60"
    assert c.get("/vendor/chart.umd.js").status_code == 200
    assert c.get("/vendor/chart.js.LICENSE.md").headers["cache-control"] == "max-age=300"
    assert c.get("/nope.html").status_code == 404
    assert c.get("/%2e%2e/settings.py").status_code == 404
    assert c.get("/js/../../app.py").status_code == 404


def test_https_redirect_rules(make_client):
    c = make_client()
    r = c.get("http://example.com/x?y=1", headers={"x-forwarded-proto": "http"}, follow_redirects=False)
    assert r.status_code == 308 and r.headers["location"] == "https://example.com/x?y=1"
    assert c.get("http://localhost/health", headers={"x-forwarded-proto": "http"}).status_code == 200
    assert c.get("http://example.com/auth/admin-check", headers={"x-forwarded-proto": "http"}).status_code == 401
    off = make_client(require_https="false")
    assert off.get("http://example.com/health", headers={"x-forwarded-proto": "http"}).status_code == 200


def test_settings_from_env_rejects_bad_values():
    import pytest

    from functions.ui.settings import SettingsError

    for env in ({"UI_REQUIRE_HTTPS": "maybe"}, {"API_UPSTREAM": "ftp://x"}, {"UI_LOGIN_RATE_CAPACITY": "-1"},
                {"UI_TRUSTED_PROXIES": "not-an-ip"}, {"UI_FORCE_SECURE_COOKIE": "sometimes"}, {"PORT": "x"}):
        with pytest.raises(SettingsError):
            UiSettings.from_env(env)
    s = UiSettings.from_env({"UI_REQUIRE_HTTPS": "off", "API_UPSTREAM": "http://api:8080/"})
    assert s.require_https == "false" and s.api_upstream == "http://api:8080" and not s.secure_cookies
