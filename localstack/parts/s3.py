"""The `s3` part: our file-backed S3 server (`localstack.s3_server`) under `<data>/s3`, bucket `tansu`.

It exists so the local Kafka broker (tansu) keeps topics, messages and committed offsets across
restarts. It replaced npm s3rver 3.7.1, which ignored `If-Match`/`If-None-Match` on PUT and
truncated an object before its new body arrived: a tansu killed mid-write left an empty
`watermark.json`, and a first write after a restart silently replaced stored records
(docs/decisions/localstack.md, "Local broker"). Objects are plain files `<data>/s3/<bucket>/<key>`.
"""

from __future__ import annotations

import os
import sys

from localstack.config import StackConfig
from localstack.supervisor import Component

BUCKET = "tansu"
# Kafka's retention.ms / retention.bytes for the local broker, enforced by the store (tansu 0.6 does
# not) and only below every consumer group's committed offset: see localstack/s3_server/retention.py.
# Short on purpose: tansu reads one batch per fetch and lists the partition's whole records/ folder
# for each, so every retained batch is paid for on every fetch (docs/decisions/localstack.md, "Broker store").
RETENTION_MS = "30000"  # 30 s of consumed batches kept for a replay
RETENTION_BYTES = str(64 * 1024 * 1024)  # per partition
RETENTION_INTERVAL = "2"  # seconds between sweeps
ACCESS_KEY = "local"  # the server does not check signatures; object_store still wants credentials
SECRET_KEY = "local"


def s3_env(cfg: StackConfig) -> dict[str, str]:
    """AWS_* variables that point an S3 client (tansu's object_store) at the local S3 server."""
    return {
        "AWS_ENDPOINT": f"http://{cfg.host}:{cfg.ports.s3}",
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def components(cfg: StackConfig) -> list[Component]:
    """The S3 server process."""
    directory = cfg.path("s3")
    return [
        Component(
            name="s3",
            argv=[sys.executable, "-m", "localstack.s3_server"],
            env={
                "S3_SERVER_LISTEN": f"{cfg.host}:{cfg.ports.s3}",
                "S3_SERVER_DIR": str(directory),
                "S3_SERVER_BUCKETS": BUCKET,
                "S3_SERVER_TANSU_RETENTION_MS": os.environ.get("SENTINEL_BROKER_RETENTION_MS", RETENTION_MS),
                "S3_SERVER_TANSU_RETENTION_BYTES": os.environ.get("SENTINEL_BROKER_RETENTION_BYTES", RETENTION_BYTES),
                "S3_SERVER_TANSU_RETENTION_INTERVAL": RETENTION_INTERVAL,
            },
            health_port=cfg.ports.s3,
            startup_timeout=30.0,
            description=f"(file-backed S3, {directory})",
        )
    ]
