"""The sidecar manifest's QUOTA_REPLICAS matches its Deployment's replicas (quotas are split per replica)."""

from __future__ import annotations

from pathlib import Path

import yaml

from sidecar.settings import SidecarSettings

MANIFEST = Path(__file__).resolve().parents[2] / "knative" / "sidecar" / "server-a.yaml"


def test_quota_replicas_equals_the_deployment_replicas() -> None:
    (dep,) = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d and d.get("kind") == "Deployment"]
    (gateway,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "mcp-gateway"]
    env = {e["name"]: e["value"] for e in gateway["env"] if "value" in e}
    assert SidecarSettings.from_env(env).quota_replicas == dep["spec"]["replicas"]
