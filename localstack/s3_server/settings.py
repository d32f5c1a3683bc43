"""Settings of the local S3 server (environment, same style as every other component)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from localstack.s3_server.retention import RetentionPolicy
from mcp_sentinel.env import SettingsError, flag, integer, items, listen, number


@dataclass(frozen=True)
class S3ServerSettings:
    """Where the server listens, which folder holds the objects, and which buckets exist from the start."""

    host: str = "127.0.0.1"
    port: int = 9000
    directory: Path = Path("s3")
    buckets: tuple[str, ...] = ()
    access_log: bool = False  # one line per request on stderr: for debugging a client, costly under load
    retention: RetentionPolicy = RetentionPolicy()  # tansu batches (retention.py); off unless configured

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> S3ServerSettings:
        """`S3_SERVER_LISTEN` (host:port), `S3_SERVER_DIR` (required), `S3_SERVER_BUCKETS` (comma list),
        `S3_SERVER_ACCESS_LOG` (true to log every request), `S3_SERVER_TANSU_RETENTION_MS` and
        `S3_SERVER_TANSU_RETENTION_BYTES` (Kafka's retention.ms / retention.bytes per partition, -1 = none,
        the default), `S3_SERVER_TANSU_RETENTION_INTERVAL` (seconds between sweeps, default 30).

        Raises SettingsError naming the variable on a malformed or missing value.
        """
        host, port = listen(environ, "S3_SERVER_LISTEN", (cls.host, cls.port))
        directory = environ.get("S3_SERVER_DIR", "").strip()
        if not directory:
            raise SettingsError("S3_SERVER_DIR must name the folder that holds the objects")
        buckets = items(environ, "S3_SERVER_BUCKETS")
        access_log = flag(environ, "S3_SERVER_ACCESS_LOG")
        retention = RetentionPolicy(
            retention_ms=integer(environ, "S3_SERVER_TANSU_RETENTION_MS", -1, minimum=-1),
            retention_bytes=integer(environ, "S3_SERVER_TANSU_RETENTION_BYTES", -1, minimum=-1),
            interval=number(environ, "S3_SERVER_TANSU_RETENTION_INTERVAL", 30.0, positive=True, maximum=86400),
        )
        return cls(host=host, port=port, directory=Path(directory), buckets=buckets, access_log=access_log,
                   retention=retention)
