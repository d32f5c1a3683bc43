"""The `s3` part: npm `s3rver`, a file-backed S3 server under `<data>/s3` holding bucket `tansu`.

It exists so the local Kafka broker (tansu) keeps topics, messages and committed offsets across
restarts. When npm/s3rver is absent the part is empty and the `kafka` part falls back to memory
storage with a warning.
"""

from __future__ import annotations

import shutil

from mcp_sentinel.stack.config import REPO_ROOT, StackConfig
from mcp_sentinel.stack.supervisor import Component

BUCKET = "tansu"
ACCESS_KEY = "S3RVER"  # s3rver's fixed local credentials
SECRET_KEY = "S3RVER"


def s3rver_binary() -> str | None:
    """The s3rver launcher from the repo's node_modules (or PATH), or None when npm packages are missing."""
    local = REPO_ROOT / "node_modules" / ".bin" / "s3rver"
    if local.exists() and shutil.which("node"):
        return str(local)
    return shutil.which("s3rver")


def s3_env(cfg: StackConfig) -> dict[str, str]:
    """AWS_* variables that point an S3 client (tansu's object_store) at the local s3rver."""
    return {
        "AWS_ENDPOINT": f"http://{cfg.host}:{cfg.ports.s3}",
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def components(cfg: StackConfig) -> list[Component]:
    """The s3rver process, or nothing when s3rver is not installed."""
    binary = s3rver_binary()
    if binary is None:
        return []
    directory = cfg.path("s3")
    directory.mkdir(parents=True, exist_ok=True)
    return [
        Component(
            name="s3",
            argv=[binary, "--directory", str(directory), "--address", cfg.host, "--port", str(cfg.ports.s3),
                  "--configure-bucket", BUCKET, "--silent"],
            health_port=cfg.ports.s3,
            startup_timeout=30.0,
            description=f"(s3rver, {directory})",
        )
    ]
