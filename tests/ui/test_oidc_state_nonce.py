"""OIDC sign-in through the UI checks `state` and `nonce` (issue 14, "OIDC sign-in has no nonce check").

A real API process (real Postgres) trusts a local OIDC issuer; the UI in front of it is the app
under test. The ID token must carry the nonce of a sign-in this browser started, with its state.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from localstack.config import StackConfig, free_port
from localstack.parts import api
from localstack.supervisor import Supervisor
from tests.fixtures.oidc import Issuer

AUDIENCE = "sentinel-ui-oidc-test"



@pytest.fixture(scope="module")
def oidc_api(backend: StackConfig) -> Iterator[tuple[str, Issuer]]:
    """A second API process on the backend's Postgres that trusts a local issuer."""
    idp = Issuer(audience=AUDIENCE)
    (comp,) = api.components(backend)
    port, metrics = free_port(), free_port()
    comp = replace(
        comp,
        name="api-oidc",
        env={**comp.env, "PORT": str(port), "METRICS_PORT": str(metrics), "OIDC_ISSUER": idp.url,
             "OIDC_AUDIENCE": AUDIENCE},
        health_url=f"http://{backend.host}:{port}/ready",
    )
    try:
        with Supervisor(backend) as sup:
            sup.start(comp)
            yield f"http://{backend.host}:{port}", idp
    finally:
        idp.close()


def _start(client: Any) -> dict[str, str]:
    r = client.post("/auth/oidc/start")
    assert r.status_code == 200, r.text
    body: dict[str, str] = r.json()
    assert set(body) == {"state", "nonce"} and body["state"] != body["nonce"]
    return body


def _token(idp: Issuer, nonce: str | None, sub: str = "ui-oidc-user") -> str:
    claims: dict[str, Any] = {"sub": sub, "email": f"{sub}@corp.example", "email_verified": True}
    if nonce is not None:
        claims["nonce"] = nonce
    return idp.token(**claims)


def test_oidc_sign_in_needs_this_browsers_state_and_nonce(make_client: Any, oidc_api: tuple[str, Issuer]) -> None:
    upstream, idp = oidc_api
    c = make_client(api_upstream=upstream)
    started = _start(c)
    cookie = next(k for k in c.cookies.jar if k.name == "mcp_ui_oidc")
    assert cookie.path == "/auth" and cookie.has_nonstandard_attr("HttpOnly")
    # No state, a wrong state, or a state from another browser: refused before the API is asked.
    for state in ("", "forged", _start(make_client(api_upstream=upstream))["state"]):
        r = c.post("/auth/login", json={"id_token": _token(idp, started["nonce"]), "state": state})
        assert r.status_code == 400 and r.json()["error"] == "invalid_state", state
    # This browser's state, but an ID token minted for another sign-in (or none): the API refuses.
    for nonce in (None, "someone-elses-nonce"):
        r = c.post("/auth/login", json={"id_token": _token(idp, nonce), "state": started["state"]})
        assert r.status_code == 401, (nonce, r.text)
    r = c.post("/auth/login", json={"id_token": _token(idp, started["nonce"]), "state": started["state"]})
    assert r.status_code == 200, r.text
    assert r.json()["principal"]["email"] == "ui-oidc-user@corp.example"
    # The session holds the API's own token (the ID token was exchanged, never kept).
    me = c.get("/api/auth/me")
    assert me.status_code == 200 and me.json()["principal"]["authType"] == "platform_jwt"
    # The state and nonce are spent: the cookie is gone, and the same answer cannot sign in again.
    assert "mcp_ui_oidc" not in {k.name for k in c.cookies.jar}
    replay = make_client(api_upstream=upstream)
    again = _start(replay)
    r = replay.post("/auth/login", json={"id_token": _token(idp, started["nonce"]), "state": again["state"]})
    assert r.status_code == 401


def test_oidc_start_refuses_cross_site_callers(make_client: Any) -> None:
    c = make_client()
    r = c.post("/auth/oidc/start", headers={"origin": "https://evil.example"})
    assert r.status_code == 403 and "mcp_ui_oidc" not in {k.name for k in c.cookies.jar}
    assert c.get("/auth/oidc/start").status_code == 405


def test_without_oidc_the_raw_id_token_is_not_kept_as_a_credential(make_client: Any, oidc_api: Any) -> None:
    # Before: when the API answered that OIDC is not configured, the UI stored the raw ID token as the
    # session's bearer credential. Now the sign-in fails with the API's answer (404 not_configured).
    _, idp = oidc_api
    c = make_client()  # the default backend API has no OIDC settings
    started = _start(c)
    r = c.post("/auth/login", json={"id_token": _token(idp, started["nonce"]), "state": started["state"]})
    assert r.status_code == 404 and "mcp_ui_session" not in {k.name for k in c.cookies.jar}
    assert r.json()["error"] == "not_configured", r.text
