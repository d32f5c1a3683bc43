"""The processor accepts deliveries only from the event source (issue 14 item 4).

Before: anyone who could reach the processor stored whatever audit row they POSTed, bypassing
ingest's per-gateway bindings. Now a delivery needs the dispatcher's token or the KafkaSource's
OIDC sender-identity token; everything else is refused before the body is read, and counted.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest

from functions.processor.settings import ProcessorSettings
from localstack.config import StackConfig
from mcp_sentinel.storage.client import ClickHouseSettings
from tests.helpers.ingest import JWKS
from tests.helpers.processor import Proc, binary_headers, payload

TOKEN = StackConfig().processor_delivery_token


def _metric(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(name):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_unauthenticated_or_forged_deliveries_store_nothing(proc: Proc) -> None:
    prefix = f"forged-{uuid.uuid4()}"
    bad_headers: list[dict[str, str]] = [
        {},
        {"authorization": "Bearer wrong-token"},
        {"authorization": f"Basic {TOKEN}"},
        {"authorization": f"Bearer {TOKEN}x"},
        {"authorization": f"Bearer {TOKEN[:-1]}"},
        {"ce-deliverytoken": TOKEN},  # a credential anywhere else is not the credential
    ]
    for i, extra in enumerate(bad_headers):
        headers = {k: v for k, v in binary_headers(f"{prefix}-{i}").items() if k != "authorization"}
        r = httpx.post(proc.url + "/", headers={**headers, **extra}, content=json.dumps(payload()), timeout=30)
        assert r.status_code == 401 and r.json()["error"] == "unauthorized", (extra, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
    assert _metric(proc.url, 'processor_events_rejected_total{reason="unauthorized"}') >= len(bad_headers)
    ok = httpx.post(proc.url + "/", headers=binary_headers(f"{prefix}-ok"), content=json.dumps(payload()), timeout=30)
    assert ok.status_code == 200 and ok.json()["inserted"] == 1
    assert [r[0] for r in proc.rows(prefix)] == [f"{prefix}-ok"]


def test_settings_guard_tokens_and_oidc() -> None:
    s = ProcessorSettings.from_env({"PROCESSOR_DELIVERY_TOKEN": f"{TOKEN}, {TOKEN}-old"})
    assert s.delivery_tokens == (TOKEN, f"{TOKEN}-old") and not s.allow_unauthenticated
    with pytest.raises(ValueError, match="at least 32 bytes"):
        ProcessorSettings.from_env({"PROCESSOR_DELIVERY_TOKEN": "short"})
    with pytest.raises(ValueError, match="set together"):
        ProcessorSettings.from_env({"PROCESSOR_OIDC_JWKS_URL": "http://x/jwks"})
    with pytest.raises(ValueError, match="set together"):
        ProcessorSettings.from_env({"PROCESSOR_OIDC_AUDIENCE": "processor"})


async def _post(settings: ProcessorSettings, headers: dict[str, str]) -> httpx.Response:
    from functions.processor.app import create_app

    # Refusals answer before storage is touched; an accepted delivery reaches a closed port.
    settings = dataclasses.replace(settings, clickhouse=ClickHouseSettings(url="http://127.0.0.1:9"))
    app = create_app(settings)
    app.state.batcher.start()  # ASGITransport does not run the lifespan
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p") as c:
            no_auth = {k: v for k, v in binary_headers(str(uuid.uuid4())).items() if k != "authorization"}
            return await c.post("/", headers={**no_auth, **headers}, content=json.dumps(payload()), timeout=30)
    finally:
        await app.state.batcher.stop()


async def test_no_credential_configured_refuses_every_delivery() -> None:
    r = await _post(ProcessorSettings(), {})
    assert r.status_code == 503 and r.json()["error"] == "auth_not_configured"
    assert "PROCESSOR_ALLOW_UNAUTHENTICATED" in r.json()["message"]


@pytest.fixture(scope="module")
def sa_issuer() -> Any:
    j = JWKS()
    yield j
    j.server.shutdown()


def _sa_token(j: JWKS, **overrides: Any) -> str:
    claims = {"iss": "https://kubernetes.default.svc", "aud": "mcp-sentinel-processor",
              "sub": "system:serviceaccount:mcp-sentinel:mcp-events-to-processor-oidc-source",
              "exp": int(time.time() + 300), **overrides}
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, j.key, algorithm="RS256", headers={"kid": "k1"})


async def test_knative_sender_identity_token(sa_issuer: JWKS) -> None:
    settings = ProcessorSettings(
        oidc_jwks_url=sa_issuer.url, oidc_issuer="https://kubernetes.default.svc",
        oidc_audience="mcp-sentinel-processor",
        oidc_subjects=("system:serviceaccount:mcp-sentinel:mcp-events-to-processor-oidc-source",),
    )  # fmt: skip
    refused = {
        "wrong audience": (_sa_token(sa_issuer, aud="mcp-sentinel-ingest"), 401),
        "expired": (_sa_token(sa_issuer, exp=int(time.time() - 120)), 401),
        "other issuer": (_sa_token(sa_issuer, iss="https://evil"), 401),
        "no audience": (_sa_token(sa_issuer, aud=None), 401),
        "another service account": (_sa_token(sa_issuer, sub="system:serviceaccount:mcp-team-a:default"), 403),
        "unsigned": (jwt.encode({"aud": "mcp-sentinel-processor", "sub": "x", "exp": int(time.time() + 60)},
                                "k" * 32, algorithm="HS256"), 401),
    }
    for why, (token, status) in refused.items():
        r = await _post(settings, {"authorization": f"Bearer {token}"})
        assert r.status_code == status, (why, r.text)
    # An accepted token gets past authentication to storage (absent here: 503 storage_unavailable).
    r = await _post(settings, {"authorization": f"Bearer {_sa_token(sa_issuer)}"})
    assert r.json()["error"] == "storage_unavailable"


async def test_a_verified_sender_token_is_cached_only_under_the_bearer_scheme(sa_issuer: JWKS) -> None:
    from functions.processor.delivery_auth import DeliveryAuth

    settings = ProcessorSettings(oidc_jwks_url=sa_issuer.url, oidc_audience="mcp-sentinel-processor")
    auth = DeliveryAuth(settings)
    token = _sa_token(sa_issuer)
    assert (await auth.check_async({"authorization": f"Bearer {token}"})).ok
    assert (await auth.check_async({"authorization": f"bearer {token}"})).ok  # cached now
    assert not (await auth.check_async({"authorization": f"Basic {token}"})).ok
    assert not (await auth.check_async({})).ok
