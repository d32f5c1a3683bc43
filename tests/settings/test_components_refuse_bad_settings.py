"""Every component reads its settings through mcp_sentinel/env.py: a typo stops it with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from functions.api.settings import ApiSettings
from functions.ingest.settings import IngestSettings
from functions.processor.settings import ProcessorSettings
from functions.ui.settings import UiSettings
from localstack.s3_server.settings import S3ServerSettings
from mcp_sentinel.env import SettingsError
from mcp_sentinel.secrets_check import check_environment
from sidecar.settings import SidecarSettings

REPO = Path(__file__).resolve().parents[2]
Reader = Callable[[Mapping[str, str]], object]
INGEST_BASE = {"INGEST_ALLOW_UNBOUND_KEYS": "true"}

# (reader, security- or behaviour-relevant boolean, base environment): each used to read a typo as false.
BOOLEANS: list[tuple[Reader, str, dict[str, str]]] = [
    (SidecarSettings.from_env, "FORWARD_BEARER_TOKEN", {}),
    (ApiSettings.from_env, "SIGNUP_ENABLED", {}),
    (ApiSettings.from_env, "PLATFORM_DEV_LOGIN_ENABLED", {}),
    (ProcessorSettings.from_env, "PROCESSOR_ALLOW_UNAUTHENTICATED", {}),
    (IngestSettings.from_env, "INGEST_ALLOW_UNAUTHENTICATED", INGEST_BASE),
    (IngestSettings.from_env, "KAFKA_ENABLE_IDEMPOTENCE", INGEST_BASE),
    (UiSettings.from_env, "UI_FORCE_SECURE_COOKIE", {}),
    (UiSettings.from_env, "UI_REQUIRE_HTTPS", {}),
    (S3ServerSettings.from_env, "S3_SERVER_ACCESS_LOG", {"S3_SERVER_DIR": "/tmp/s3"}),
]


@pytest.mark.parametrize(("read", "name", "base"), BOOLEANS, ids=[b[1] for b in BOOLEANS])
def test_a_typoed_boolean_is_an_error_naming_the_variable(read: Reader, name: str, base: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=f"{name} must be true or false"):
        read({**base, name: "ture"})
    read({**base, name: "off"})  # every spelling of a boolean still works


def test_the_dev_flag_and_the_dev_switches_do_not_read_a_typo_as_off() -> None:
    with pytest.raises(SettingsError, match="SENTINEL_LOCAL_DEV"):
        check_environment({"SENTINEL_LOCAL_DEV": "yess", "PLATFORM_DEV_LOGIN_ENABLED": "1"}, "api")
    with pytest.raises(ValueError, match="PLATFORM_DEV_LOGIN_ENABLED must be true or false"):
        check_environment({"PLATFORM_DEV_LOGIN_ENABLED": "ture"}, "api")


# One bad integer per process: each must exit 2 naming the variable, not crash with a traceback.
PROCESSES: dict[str, tuple[list[str], dict[str, str], str]] = {
    "sidecar": (["-m", "sidecar"], {"METRICS_PORT": "ninety"}, "sidecar: METRICS_PORT"),
    "api": (["-m", "functions.api"], {"METRICS_PORT": "ninety"}, "api: METRICS_PORT"),
    "processor": (["-m", "functions.processor"], {"METRICS_PORT": "ninety"}, "processor: METRICS_PORT"),
    "ui": (["-m", "functions.ui"], {"UI_FORCE_SECURE_COOKIE": "ture"}, "ui: UI_FORCE_SECURE_COOKIE"),
    "ingest": (["-m", "functions.ingest"], {"METRICS_PORT": "ninety"}, "ingest: METRICS_PORT"),
    "dispatcher": (["-m", "localstack.kafka_source"], {"SINK_URL": "http://127.0.0.1:1/", "DELIVERY_TIMEOUT": "30s"},
                   "dispatcher: DELIVERY_TIMEOUT"),
    "front door": (["-m", "localstack.front_door"], {"PORT": "ninety"}, "front door: PORT"),
    "s3": (["-m", "localstack.s3_server"], {"S3_SERVER_DIR": "/nonexistent", "S3_SERVER_ACCESS_LOG": "ture"},
           "s3 server: S3_SERVER_ACCESS_LOG"),
    "kafka gate": (["-m", "localstack.kafka_gate"], {"KAFKA_GATE_PARTITIONS": "many"},
                   "kafka gate: KAFKA_GATE_PARTITIONS"),
    "kube apiserver": (["-m", "localstack.kube_apiserver"], {"KUBE_APISERVER_PORT": "ninety"},
                       "kube apiserver: KUBE_APISERVER_PORT"),
    "worker": (["-m", "workflows"], {"METRICS_PORT": "ninety"}, "METRICS_PORT must be an integer"),
}


@pytest.mark.parametrize("component", sorted(PROCESSES))
def test_each_process_exits_2_with_the_variable_on_bad_settings(component: str) -> None:
    args, bad, message = PROCESSES[component]
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "SENTINEL_LOCAL_DEV": "1", **bad}
    proc = subprocess.run([sys.executable, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
