"""knative/: every manifest validates offline and follows the deployment rules."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from mcp_sentinel.secrets_gen import generate
from sidecar.settings import SidecarSettings
from tests.helpers.manifests import (
    KAFKASOURCE_CRD,
    KNATIVE,
    documents,
    kustomize_resources,
    validate,
    validate_core,
    validate_kafkasource,
    validate_knative_service,
)

DOCS = list(documents())
# What `python -m mcp_sentinel.secrets_gen` prints for the operator (the kustomization has no Secret).
GENERATED_SECRETS = generate("postgresql://sentinel:pw@pg:5432/sentinel", "http://sentinel:pw@ch:8123")["items"]
FUNCTIONS = {"mcp-sentinel-ingest", "mcp-sentinel-processor", "mcp-sentinel-api", "mcp-sentinel-ui"}


def _find(kind: str, name: str, api_prefix: str = "") -> dict[str, Any]:
    for _, doc in DOCS:
        if doc["kind"] == kind and doc["metadata"]["name"] == name and doc["apiVersion"].startswith(api_prefix):
            return doc
    raise AssertionError(f"{kind} {name} not in the kustomization")


def _ksvc(name: str) -> dict[str, Any]:
    return _find("Service", name, "serving.knative.dev/")


def _pod_specs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for _, doc in DOCS:
        spec = doc.get("spec") or {}
        if doc["kind"] in {"Deployment", "DaemonSet", "StatefulSet"} or (
            doc["kind"] == "Service" and doc["apiVersion"].startswith("serving.knative.dev/")
        ):
            out.append((f"{doc['kind']}/{doc['metadata']['name']}", spec["template"]["spec"]))
    return out


def test_kustomization_resources_exist_and_parse() -> None:
    paths = kustomize_resources()
    assert len(paths) == len(set(paths))
    missing = [str(p) for p in paths if not p.is_file()]
    assert not missing
    listed = {p.resolve() for p in paths}
    # Every manifest we ship is part of the build (nothing silently left out).
    shipped = {p.resolve() for p in KNATIVE.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert shipped - listed == set(), sorted(str(p) for p in shipped - listed)


@pytest.mark.parametrize(
    ("path", "doc"), DOCS, ids=[f"{p.parent.name}/{p.name}:{d['kind']}/{d['metadata']['name']}" for p, d in DOCS]
)
def test_document_validates(path: Path, doc: dict[str, Any]) -> None:
    if doc["kind"] == "KafkaSource" and not KAFKASOURCE_CRD.exists():
        pytest.skip(f"KafkaSource CRD not found at {KAFKASOURCE_CRD} (the shared/ folder beside the checkout)")
    validate(doc)


def test_each_validator_is_exercised() -> None:
    have_crd = KAFKASOURCE_CRD.exists()
    used = {validate(doc) for _, doc in DOCS if have_crd or doc["kind"] != "KafkaSource"}
    expected = {"kubernetes-validate", "knative-serving", "kafkasink-schema"}
    if KAFKASOURCE_CRD.exists():
        expected.add("kafkasource-crd")
    assert expected <= used


# --- the validators really reject bad input --------------------------------------------------


def test_core_validator_rejects_wrong_types_and_unknown_fields() -> None:
    worker = copy.deepcopy(_find("Deployment", "mcp-sentinel-worker"))
    worker["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_core(worker)
    typo = copy.deepcopy(_find("Deployment", "mcp-sentinel-worker"))
    typo["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_core(typo)


def test_knative_validator_rejects_wrong_types_and_unknown_fields() -> None:
    bad = copy.deepcopy(_ksvc("mcp-sentinel-ingest"))
    bad["spec"]["template"]["spec"]["containerConcurrency"] = "ten"
    with pytest.raises(ValueError, match="containerConcurrency|container_concurrency"):
        validate_knative_service(bad)
    typo = copy.deepcopy(_ksvc("mcp-sentinel-ingest"))
    typo["spec"]["template"]["spec"]["timeoutSecond"] = 30
    with pytest.raises(ValueError, match="timeoutSecond"):
        validate_knative_service(typo)


@pytest.mark.skipif(not KAFKASOURCE_CRD.exists(), reason=f"KafkaSource CRD not found at {KAFKASOURCE_CRD}")
def test_kafkasource_validator_rejects_typos_and_missing_fields() -> None:
    source = _find("KafkaSource", "mcp-events-to-processor")
    typo = copy.deepcopy(source)
    typo["spec"]["delivery"]["retries"] = 3
    with pytest.raises(jsonschema.ValidationError, match="retries"):
        validate_kafkasource(typo)
    missing = copy.deepcopy(source)
    del missing["spec"]["topics"]
    with pytest.raises(jsonschema.ValidationError, match="topics"):
        validate_kafkasource(missing)


# --- deployment rules ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_functions_scale_to_zero_with_probes_and_limits(name: str) -> None:
    svc = _ksvc(name)
    ann = svc["spec"]["template"]["metadata"]["annotations"]
    assert ann["autoscaling.knative.dev/min-scale"] == "0"
    assert int(ann["autoscaling.knative.dev/target"]) > 0
    assert ann["autoscaling.knative.dev/scale-down-delay"].endswith("m")
    spec = svc["spec"]["template"]["spec"]
    assert 30 <= spec["timeoutSeconds"] <= 600  # Knative's default max-revision-timeout-seconds
    (container,) = spec["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] and container["livenessProbe"]["httpGet"]["path"]
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert spec["automountServiceAccountToken"] is (name == "mcp-sentinel-api")


def test_only_api_and_worker_get_service_account_tokens() -> None:
    with_token = {
        where for where, spec in _pod_specs()
        if spec.get("automountServiceAccountToken", True) and not where.startswith(("DaemonSet/promtail",))
    }
    # Prometheus needs the API for service discovery; promtail likewise (and is excluded above).
    assert with_token == {"Service/mcp-sentinel-api", "Deployment/mcp-sentinel-worker", "Deployment/prometheus"}


def test_every_container_is_non_root_with_read_only_root_fs() -> None:
    for where, spec in _pod_specs():
        pod_sc = spec.get("securityContext", {})
        for c in spec["containers"]:
            sc = c.get("securityContext", {})
            assert sc.get("readOnlyRootFilesystem") is True, f"{where}/{c['name']}"
            assert sc.get("allowPrivilegeEscalation") is False, f"{where}/{c['name']}"
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{where}/{c['name']}"
            if where == "DaemonSet/promtail":
                continue  # reads root-owned node logs, read-only, without capabilities
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, f"{where}/{c['name']}"


def test_sidecar_example_hardening() -> None:
    dep = _find("Deployment", "server-a")
    spec = dep["spec"]["template"]["spec"]
    gateway = next(c for c in spec["containers"] if c["name"] == "mcp-gateway")
    mounts = {m["mountPath"]: m for m in gateway["volumeMounts"]}
    policy = mounts["/var/run/mcp-runtime/policy"]
    assert policy["readOnly"] is True
    env = {e["name"]: e for e in gateway["env"]}
    assert env["POLICY_FILE"]["value"] == "/var/run/mcp-runtime/policy/policy.json"
    # The settings parse, and name the public host and the in-cluster service (issue 13, Origin/Host).
    parsed = SidecarSettings.from_env({k: e["value"] for k, e in env.items() if "value" in e})
    assert "sentinel.example.com" in parsed.allowed_hosts
    assert "server-a.mcp-servers.svc.cluster.local:*" in parsed.allowed_hosts
    assert parsed.allowed_origins == ("https://sentinel.example.com",)
    assert env["AUDIT_SPOOL_DIR"]["value"] in mounts
    assert "secretKeyRef" in env["ANALYTICS_API_KEY"]["valueFrom"]
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/.sentinel/ready"
    policy_volume = next(v for v in spec["volumes"] if v["name"] == policy["name"])
    cm = _find("ConfigMap", policy_volume["configMap"]["name"])
    assert "policy.json" in cm["data"]
    # Only the gateway and inventory ports are exposed (in-cluster); the MCP server stays on loopback behind them.
    svc = _find("Service", "server-a", "v1")
    assert [p["port"] for p in svc["spec"]["ports"]] == [8091, 8099]


def test_kafka_source_delivery() -> None:
    source = _find("KafkaSource", "mcp-events-to-processor")
    spec = source["spec"]
    assert spec["topics"] == ["mcp.events"]
    assert spec["consumerGroup"] == "mcp-sentinel-processor"
    delivery = spec["delivery"]
    assert delivery["retry"] >= 3 and delivery["backoffPolicy"] == "exponential"
    dls = delivery["deadLetterSink"]["ref"]
    _find(dls["kind"], dls["name"])
    assert spec["sink"]["ref"]["name"] == "mcp-sentinel-processor"


_API_ALLOWED = {"get", "list", "watch", "create", "update", "patch", "delete"}


@pytest.mark.parametrize("role", ["mcp-sentinel-api", "mcp-sentinel-worker", "mcp-sentinel-prometheus",
                                  "mcp-sentinel-promtail"])
def test_rbac_is_least_privilege(role: str) -> None:
    cr = _find("ClusterRole", role)
    for rule in cr["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        assert set(rule["verbs"]) <= _API_ALLOWED | ({"bind"} if rule.get("resourceNames") == ["admin"] else set())
        assert "secrets" not in rule["resources"], "no workload reads Secrets through the API"
    if role in {"mcp-sentinel-prometheus", "mcp-sentinel-promtail"}:
        assert all(set(r["verbs"]) <= {"get", "list", "watch"} for r in cr["rules"])


def test_network_policies_isolate_ingest_and_processor() -> None:
    ingest = _find("NetworkPolicy", "ingest-from-gateways")
    peers = [p for rule in ingest["spec"]["ingress"] for p in rule["from"]]
    gateway_peer = next(p for p in peers if "podSelector" in p and "namespaceSelector" in p
                        and p["namespaceSelector"]["matchLabels"].get("mcp-sentinel.io/mcp-servers") == "true")
    assert gateway_peer["podSelector"]["matchLabels"] == {"mcp-sentinel.io/gateway-injected": "true"}
    processor = _find("NetworkPolicy", "processor-from-kafka-source-only")
    sources = {
        p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
        for rule in processor["spec"]["ingress"] for p in rule["from"]
    }
    assert "ingress-nginx" not in sources and "kourier-system" not in sources
    # The sidecar pods carry the label the ingest policy admits.
    labels = _find("Deployment", "server-a")["spec"]["template"]["metadata"]["labels"]
    assert labels["mcp-sentinel.io/gateway-injected"] == "true"
    _find("NetworkPolicy", "default-deny-ingress")


def test_the_inventory_probe_has_its_own_port_and_no_shared_secret() -> None:
    """The live-inventory probe goes to the sidecar's inventory listener (never the public gateway port),
    signed by the API's private key (a Secret mounted into the API only); the gateways get the public
    key from a ConfigMap. Who may reach which port: tests/deploy/test_gateway_exposure.py."""
    crd = _find("CustomResourceDefinition", "mcpservers.mcpruntime.org")
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    inventory_port = props["gateway"]["properties"]["inventoryPort"]["default"]
    api = _ksvc("mcp-sentinel-api")["spec"]["template"]["spec"]
    api_env = {e["name"]: e for e in api["containers"][0]["env"]}
    assert "MCP_INVENTORY_TOKEN" not in api_env
    key_file = api_env["MCP_INVENTORY_SIGNING_KEY_FILE"]["value"]
    mount = next(m for m in api["containers"][0]["volumeMounts"] if key_file.startswith(m["mountPath"] + "/"))
    volume = next(v for v in api["volumes"] if v["name"] == mount["name"])
    assert mount["readOnly"] is True and volume["secret"]["secretName"] == "mcp-sentinel-inventory-signing-key"
    generated = {(d["kind"], d["metadata"]["name"]): d for d in GENERATED_SECRETS}
    signing = generated[("Secret", "mcp-sentinel-inventory-signing-key")]["stringData"]
    assert "PRIVATE KEY" in signing[key_file.rsplit("/", 1)[1]]
    pod = _find("Deployment", "server-a")["spec"]["template"]["spec"]
    sidecar = next(c for c in pod["containers"] if c["name"] == "mcp-gateway")
    env = {e["name"]: e for e in sidecar["env"]}
    assert "INVENTORY_TOKEN" not in env and int(env["INVENTORY_PORT"]["value"]) == inventory_port
    assert {"name": "inventory", "containerPort": inventory_port} in sidecar["ports"]
    keys_file = env["INVENTORY_PUBLIC_KEYS_FILE"]["value"]
    mount = next(m for m in sidecar["volumeMounts"] if keys_file.startswith(m["mountPath"] + "/"))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == "mcp-sentinel-inventory-public-keys"
    public_keys = generated[("ConfigMap", "mcp-sentinel-inventory-public-keys")]["data"]
    assert "PUBLIC KEY" in public_keys[keys_file.rsplit("/", 1)[1]]
    assert not [d for _, d in DOCS if d["metadata"]["name"] == "mcp-sentinel-gateway-inventory"]


def test_processor_and_ingest_are_not_public() -> None:
    for name in ("mcp-sentinel-processor", "mcp-sentinel-ingest", "mcp-sentinel-api"):
        assert _ksvc(name)["metadata"]["labels"]["networking.knative.dev/visibility"] == "cluster-local"
    backends = {
        path["backend"]["service"]["name"]
        for _, doc in DOCS if doc["kind"] == "Ingress"
        for rule in doc["spec"]["rules"] for path in rule["http"]["paths"]
    }
    assert backends == {"mcp-sentinel-ui", "grafana"}  # header-mode server-a is never public (test_gateway_exposure)
    grafana = _find("Ingress", "mcp-sentinel-grafana")
    assert grafana["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-url"].endswith("/auth/admin-check")


def test_the_kustomization_ships_no_secret_and_the_generator_covers_every_credential() -> None:
    # A Secret in the kustomization would be a template value that works (issue 14); the operator
    # generates them (mcp_sentinel/secrets_gen.py), so none is shipped.
    assert [d["metadata"]["name"] for _, d in DOCS if d["kind"] == "Secret"] == []
    generated = {d["metadata"]["name"]: d for d in GENERATED_SECRETS}
    data = generated["mcp-sentinel-secrets"]["stringData"]
    for key in ("API_KEYS", "ADMIN_API_KEYS", "INGEST_GATEWAY_SECRET", "JWT_SECRET", "CLICKHOUSE_URL", "POSTGRES_DSN"):
        assert data[key], key
    assert data["INGEST_API_KEYS"] == ""  # gateways write with their own bound credentials
    config = _find("ConfigMap", "mcp-sentinel-config")["data"]
    for key in ("KAFKA_BROKERS", "KAFKA_TOPIC", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "CLICKHOUSE_DB"):
        assert config[key], key


def test_every_secret_and_config_reference_resolves() -> None:
    secrets = {(d["metadata"].get("namespace"), d["metadata"]["name"]): d
               for d in GENERATED_SECRETS if d["kind"] == "Secret"}
    configs = {(d["metadata"].get("namespace"), d["metadata"]["name"]): d
               for d in [d for _, d in DOCS] + GENERATED_SECRETS if d["kind"] == "ConfigMap"}
    for _, doc in DOCS:
        if "template" not in (doc.get("spec") or {}):
            continue
        ns = doc["metadata"].get("namespace")
        for c in doc["spec"]["template"]["spec"]["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    s = secrets[(ns, ref["secretKeyRef"]["name"])]
                    assert ref["secretKeyRef"]["key"] in s["stringData"], (doc["metadata"]["name"], e["name"])
                if "configMapKeyRef" in ref:
                    cm = configs[(ns, ref["configMapKeyRef"]["name"])]
                    assert ref["configMapKeyRef"]["key"] in cm["data"], (doc["metadata"]["name"], e["name"])
            for src in c.get("envFrom", []):
                if "configMapRef" in src:
                    assert (ns, src["configMapRef"]["name"]) in configs


def test_prometheus_scrapes_what_the_workloads_annotate() -> None:
    cfg = yaml.safe_load(_find("ConfigMap", "prometheus-config")["data"]["prometheus.yml"])
    (job,) = cfg["scrape_configs"]
    # Team namespaces appear at runtime, so discovery is not limited to a fixed namespace list...
    assert "namespaces" not in job["kubernetes_sd_configs"][0]
    # ...and only opted-in pods are kept; every metrics-serving workload opts in on its metrics port.
    keep = job["relabel_configs"][0]
    assert keep["action"] == "keep" and keep["regex"] == "true"
    ports = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"].get("prometheus.io/port")
        for _, d in DOCS
        if "template" in (d.get("spec") or {}) and d["metadata"].get("namespace") in {"mcp-sentinel", "mcp-servers"}
    }
    assert ports == {"mcp-sentinel-ingest": "9091", "mcp-sentinel-processor": "9102", "mcp-sentinel-api": "9090",
                     "mcp-sentinel-ui": None, "mcp-sentinel-worker": "9105", "server-a": "9103"}
    assert cfg["rule_files"] == ["/etc/prometheus/rules/*.yaml"]


def test_worker_role_covers_every_kind_the_workflows_touch() -> None:
    from mcp_sentinel.kube.objects import KINDS

    cluster = _find("ClusterRole", "mcp-sentinel-worker")
    granted = {res for rule in cluster["rules"] for res in rule["resources"]}
    role = _find("Role", "mcp-sentinel-worker-restarts")
    granted |= {res for rule in role["rules"] for res in rule["resources"]}
    missing = {plural for plural, _ in KINDS.values()} - granted
    assert not missing, f"workflows touch kinds the worker may not: {missing}"


def test_api_role_has_no_workload_or_rbac_rights() -> None:
    api = _find("ClusterRole", "mcp-sentinel-api")
    resources = {res for rule in api["rules"] for res in rule["resources"]}
    assert resources == {"mcpservers", "mcpaccessgrants", "mcpagentsessions", "configmaps", "namespaces"}
    ns_rules = [rule for rule in api["rules"] if "namespaces" in rule["resources"]]
    assert [rule["verbs"] for rule in ns_rules] == [["get"]]  # read the team label, nothing more
    assert not [d for _, d in DOCS if d["kind"] in {"Role", "RoleBinding"}
                and d["metadata"]["name"].startswith("mcp-sentinel-api")]


def test_audit_writers_and_deliveries_carry_their_bindings() -> None:
    """Issue 14 item 4: each gateway has its own ingest credential; only the KafkaSource delivers."""
    sidecar = next(c for c in _find("Deployment", "server-a")["spec"]["template"]["spec"]["containers"]
                   if c["name"] == "mcp-gateway")
    env = {e["name"]: e for e in sidecar["env"]}
    ref = env["ANALYTICS_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == "server-a-ingest-credential"  # per server, never a shared key
    assert any(d["metadata"]["name"] == "server-a-ingest-credential" for d in GENERATED_SECRETS)
    def env_of(ksvc: str) -> dict[str, Any]:
        return {e["name"]: e for e in _ksvc(ksvc)["spec"]["template"]["spec"]["containers"][0]["env"]}

    ingest_env = env_of("mcp-sentinel-ingest")
    assert ingest_env["INGEST_GATEWAY_SECRET"]["valueFrom"]["secretKeyRef"]["key"] == "INGEST_GATEWAY_SECRET"
    source = _find("KafkaSource", "mcp-events-to-processor")
    proc_env = env_of("mcp-sentinel-processor")
    audience_key = proc_env["PROCESSOR_OIDC_AUDIENCE"]["valueFrom"]["configMapKeyRef"]["key"]
    config = _find("ConfigMap", "mcp-sentinel-config")["data"]
    assert source["spec"]["sink"]["audience"] == config[audience_key]
    for name in ("PROCESSOR_OIDC_JWKS_URL", "PROCESSOR_OIDC_ISSUER", "PROCESSOR_OIDC_SUBJECTS"):
        assert config[proc_env[name]["valueFrom"]["configMapKeyRef"]["key"]]
    processor = _find("NetworkPolicy", "processor-from-kafka-source-only")
    eventing = [p for rule in processor["spec"]["ingress"] for p in rule["from"]
                if p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                == "knative-eventing"]
    assert eventing and all(p.get("podSelector") for p in eventing)  # the dispatcher pods, not the namespace
