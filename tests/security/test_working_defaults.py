"""No working defaults in production (issue 14, "Placeholder secrets work").

The kustomization is rendered for real (`kubectl kustomize`), completed with the operator's
generated Secrets, and every workload's resulting environment goes through the same start-up
check the process runs. Real processes are started without the local-development flag to show
they refuse placeholders, published local keys and short secrets.
"""

from __future__ import annotations

import json
import os
import shutil
import string
import subprocess
import sys
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.api.settings import ApiSettings
from functions.ui.context import UiContext
from functions.ui.ratelimit import LoginLimiter
from functions.ui.settings import UiSettings
from localstack.config import REPO_ROOT, StackConfig
from localstack.parts import api, ingest, processor, sidecars, ui, worker
from mcp_sentinel.client_address import client_address
from mcp_sentinel.gateway_credentials import GatewayBinding, verify
from mcp_sentinel.inventory_token import public_pem
from mcp_sentinel.secrets_check import (
    COMPONENT_SPECS,
    KNOWN_LOCAL_VALUES,
    LOCAL_DEV_FLAG,
    InsecureConfiguration,
    check_environment,
    secret_problem,
)
from mcp_sentinel.secrets_gen import generate, main, token

KUBECTL = shutil.which("kubectl")
# Workload (kind/name, container) -> the component whose start-up check it runs.
WORKLOADS = {
    ("Service", "mcp-sentinel-api", "api"): "api",
    ("Service", "mcp-sentinel-ui", "ui"): "ui",
    ("Service", "mcp-sentinel-ingest", "ingest"): "ingest",
    ("Service", "mcp-sentinel-processor", "processor"): "processor",
    ("Deployment", "mcp-sentinel-worker", "worker"): "worker",
    ("Deployment", "server-a", "mcp-gateway"): "sidecar",
}
DSN = "postgresql://sentinel:Zr8q-real-db-password@postgres.postgres.svc:5432/sentinel"
CH_URL = "http://sentinel:Xk2v-real-ch-password@clickhouse.clickhouse.svc:8123"


def rendered() -> list[dict[str, Any]]:
    """`kubectl kustomize knative/`: what `kubectl apply -k knative/` would send."""
    if KUBECTL is None:
        pytest.skip("kubectl is not installed (kustomize renders through it)")
    out = subprocess.run([KUBECTL, "kustomize", str(REPO_ROOT / "knative")], capture_output=True, text=True,
                         timeout=120, check=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def workload_envs(docs: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Each workload's container environment as Kubernetes would build it (component -> env)."""
    by_key = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs}
    out: dict[str, dict[str, str]] = {}
    for d in docs:
        spec = (d.get("spec") or {}).get("template", {}).get("spec")
        if not spec:
            continue
        ns = d["metadata"].get("namespace")
        for c in spec["containers"]:
            component = WORKLOADS.get((d["kind"], d["metadata"]["name"], c["name"]))
            if component is None:
                continue
            env: dict[str, str] = {}
            for src in c.get("envFrom", []):
                env.update(by_key[("ConfigMap", ns, src["configMapRef"]["name"])]["data"])
            for e in c.get("env", []):
                ref = e.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    secret = by_key.get(("Secret", ns, ref["secretKeyRef"]["name"]))
                    assert secret is not None, f"{component}: Secret {ref['secretKeyRef']['name']} not generated"
                    env[e["name"]] = secret["stringData"][ref["secretKeyRef"]["key"]]
                elif "configMapKeyRef" in ref:
                    env[e["name"]] = by_key[("ConfigMap", ns, ref["configMapKeyRef"]["name"])]["data"][
                        ref["configMapKeyRef"]["key"]]
                else:
                    env[e["name"]] = str(e.get("value", ""))
            out[component] = env
    return out


def _placeholders(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Secrets as the old template shipped them (every value CHANGE-ME)."""
    out = []
    for s in items:
        if s["kind"] != "Secret":
            out.append(s)
            continue
        s = json.loads(json.dumps(s))
        s["stringData"] = {k: ("CHANGE-ME" if v else v) for k, v in s["stringData"].items()}
        out.append(s)
    return out


def test_the_rendered_kustomization_starts_only_with_generated_secrets() -> None:
    docs = rendered()
    # The kustomization itself carries no Secret: nothing an operator forgets to replace can work.
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Secret"] == []
    generated = generate(DSN, CH_URL)["items"]
    envs = workload_envs(docs + generated)
    assert set(envs) == set(WORKLOADS.values())
    for component, env in envs.items():
        env.pop(LOCAL_DEV_FLAG, None)
        assert check_environment(env, component) == [], component
    # The same workloads with the template's values refuse to start, naming the variables.
    for component, env in workload_envs(docs + _placeholders(generated)).items():
        with pytest.raises(InsecureConfiguration) as exc:
            check_environment(env, component)
        assert "CHANGE-ME" not in str(exc.value)  # findings never echo secret values
        assert "placeholder" in str(exc.value), component


def test_generated_secrets_are_random_consistent_and_pass_the_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--postgres-dsn", DSN, "--clickhouse-url", CH_URL, "--gateway", "mcp-servers/server-a",
                 "--gateway", "team-a/search:team-a"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "List"
    by = {(s["metadata"]["namespace"], s["metadata"]["name"]): s.get("stringData") or s.get("data")
          for s in doc["items"]}
    platform = by[("mcp-sentinel", "mcp-sentinel-secrets")]
    # Each gateway's own credential is bound to its server and team, signed with the platform's secret.
    for ns, server, team in (("mcp-servers", "server-a", ""), ("team-a", "search", "team-a")):
        cred = by[(ns, f"{server}-ingest-credential")]["ANALYTICS_API_KEY"]
        assert verify([platform["INGEST_GATEWAY_SECRET"]], cred) == GatewayBinding(ns, server, team)
        assert "PUBLIC KEY" in by[(ns, "mcp-sentinel-inventory-public-keys")]["public.pem"]
    # The inventory key pair matches: what the API signs, the gateways verify.
    signing = by[("mcp-sentinel", "mcp-sentinel-inventory-signing-key")]["signing.pem"]
    private = load_pem_private_key(signing.encode(), password=None)
    assert public_pem(private).decode() == by[("mcp-servers", "mcp-sentinel-inventory-public-keys")]["public.pem"]
    assert "PRIVATE KEY" in by[("mcp-sentinel", "mcp-sentinel-agent-token-keys")]["k-2026-12.pem"]
    again = generate(DSN, CH_URL)["items"][0]["stringData"]
    assert again["ADMIN_API_KEYS"] != platform["ADMIN_API_KEYS"] and again["JWT_SECRET"] != platform["JWT_SECRET"]
    # Placeholder database URLs and malformed gateways are refused by the generator too.
    assert main(["--postgres-dsn", "postgresql://sentinel:CHANGE-ME@pg/s", "--clickhouse-url", CH_URL]) == 2
    assert "POSTGRES_DSN" in capsys.readouterr().err
    assert main(["--postgres-dsn", DSN, "--clickhouse-url", CH_URL, "--gateway", "server-a"]) == 2
    assert "namespace/server" in capsys.readouterr().err


PROCESS = {
    "api": ["-m", "functions.api"],
    "ui": ["-m", "functions.ui"],
    "ingest": ["-m", "functions.ingest"],
    "processor": ["-m", "functions.processor"],
    "sidecar": ["-m", "sidecar"],
    "worker": ["-m", "workflows"],
}
# One bad value per component, as a fresh install or a copied local stack would carry it.
BAD = {
    "api": {"ADMIN_API_KEYS": "CHANGE-ME", "JWT_SECRET": "CHANGE-ME-at-least-32-random-bytes"},
    "ui": {"ADMIN_API_KEYS": "sentinel-local-admin-key", "UI_SESSION_SECRET": "short"},
    "ingest": {"INGEST_API_KEYS": "CHANGE-ME", "KAFKA_BROKERS": "127.0.0.1:9"},
    "processor": {"CLICKHOUSE_URL": "http://sentinel:CHANGE-ME@127.0.0.1:9"},
    "sidecar": {"ANALYTICS_API_KEY": "sentinel-local-ingest-key", "UPSTREAM_URL": "http://127.0.0.1:9"},
    "worker": {"POSTGRES_DSN": "postgresql://sentinel:CHANGE-ME@127.0.0.1:9/s"},
}


@pytest.mark.parametrize("component", sorted(PROCESS))
def test_each_process_refuses_to_start_with_a_working_default(component: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != LOCAL_DEV_FLAG}
    env.update(BAD[component], PYTHONPATH=str(REPO_ROOT), PORT="0", METRICS_PORT="0")
    proc = subprocess.run([sys.executable, *PROCESS[component]], env=env, capture_output=True, text=True,
                          timeout=120, cwd=str(REPO_ROOT))
    assert proc.returncode == 2, (component, proc.stderr[-2000:])
    assert "refuses to start with working defaults" in proc.stderr
    for name, value in BAD[component].items():
        if name in {s.name for s in COMPONENT_SPECS[component]}:
            assert name in proc.stderr
            assert value not in proc.stderr or len(value) < 8  # the secret itself is never logged


def test_the_local_stack_keys_are_known_and_pass_only_under_the_dev_flag() -> None:
    cfg = StackConfig()
    for value in (cfg.admin_api_key, cfg.ingest_api_key, cfg.jwt_secret, cfg.ingest_gateway_secret,
                  cfg.processor_delivery_token):
        assert value in KNOWN_LOCAL_VALUES and secret_problem(value) is not None
    envs = {
        "api": api.api_env(cfg),
        "ui": ui.ui_env(cfg),
        "ingest": ingest.ingest_env(cfg),
        "processor": processor.processor_env(cfg),
        "sidecar": sidecars.sidecar_env(cfg, "server-a", "sidecar_a", "sidecar_a_metrics"),
        "worker": worker.worker_env(cfg),
    }
    refused = []
    for component, env in envs.items():
        assert env[LOCAL_DEV_FLAG] == "1", component  # every part sets the flag...
        check_environment(env, component)  # ...so the local stack starts with its keys
        try:
            check_environment({k: v for k, v in env.items() if k != LOCAL_DEV_FLAG}, component)
        except InsecureConfiguration:
            refused.append(component)
    # Without the flag, every component that holds one of the published keys refuses them. The local
    # sidecars hold their own credentials (signed with the published gateway secret, which ingest refuses).
    assert set(refused) == {"api", "ui", "ingest", "processor"}


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=0, max_size=200), st.sampled_from(["CHANGE-ME", "change_me", "ChangeMe", "<replace-me>",
                                                           "PLACEHOLDER"]))
def test_any_value_with_a_placeholder_is_refused(around: str, marker: str) -> None:
    cut = len(around) // 2
    assert secret_problem(around[:cut] + marker + around[cut:]) is not None


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.ascii_letters + string.digits + "-_", max_size=31))
def test_short_values_are_refused(value: str) -> None:
    assert secret_problem(value) is not None


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=string.printable.strip(), min_size=1, max_size=8), st.integers(min_value=2, max_value=40))
def test_repeated_patterns_are_refused(unit: str, times: int) -> None:
    assert secret_problem(unit * max(times, 32 // len(unit) + 1)) is not None


def test_generated_tokens_always_pass() -> None:
    assert all(secret_problem(token()) is None for _ in range(500))


# ---- throttling keyed on the real client in a cluster (issue 14, "Login throttling is global") --


def test_the_manifests_make_the_ui_limiter_and_api_lockout_see_the_real_client() -> None:
    envs = workload_envs(rendered() + generate(DSN, CH_URL)["items"])
    ui_settings = UiSettings.from_env(envs["ui"])
    # Key files are mounted in a pod, not here; they play no part in whom the API believes.
    mounted = ("MCP_INVENTORY_SIGNING_KEY_FILE", "AGENT_TOKEN_KEYS", "AGENT_TOKEN_ISSUER")
    api_settings = ApiSettings.from_env({k: v for k, v in envs["api"].items() if k not in mounted})
    assert ui_settings.trusted_proxies and api_settings.trusted_proxies
    # Browser → ingress-nginx (sets XFF to the client) → Knative gateway/activator (append the
    # hop they saw) → queue-proxy over loopback → the UI container.
    ctx = UiContext(settings=ui_settings, store=None, limiter=LoginLimiter(ui_settings.limits))  # type: ignore[arg-type]

    def ui_key(client: str) -> str:
        scope = {"type": "http", "client": ("127.0.0.1", 40000), "headers": [
            (b"x-forwarded-for", f"{client}, 10.12.0.5, 10.12.3.9".encode())]}
        from starlette.requests import Request

        return ctx.client_ip(Request(scope))

    assert ui_key("203.0.113.7") == "203.0.113.7" and ui_key("198.51.100.2") == "198.51.100.2"
    # Ten failed sign-ins from one client do not throttle another.
    limiter = ctx.limiter
    for _ in range(12):
        limiter.attempt(ui_key("203.0.113.7"))
        limiter.failure(ui_key("203.0.113.7"))
    assert limiter.attempt(ui_key("203.0.113.7")) > 0
    assert limiter.attempt(ui_key("198.51.100.2")) == 0
    # The UI names the client to the API; the API's queue-proxy and the activator add their hops.
    api_peer = client_address("127.0.0.1", "203.0.113.7, 10.12.0.8", api_settings.trusted_proxies)
    assert api_peer == "203.0.113.7"
    # A client outside the cluster cannot name someone else: its own address is the right-most
    # untrusted hop whatever it puts in X-Forwarded-For.
    forged = client_address("127.0.0.1", "198.51.100.2, 203.0.113.66, 10.12.0.8", api_settings.trusted_proxies)
    assert forged == "203.0.113.66"
