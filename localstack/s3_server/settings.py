"""Settings of the local S3 server (environment, same style as every other component)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from localstack.s3_server.retention import RetentionPolicy


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
        `S3_SERVER_ACCESS_LOG` (1/true to log every request), `S3_SERVER_TANSU_RETENTION_MS` and
        `S3_SERVER_TANSU_RETENTION_BYTES` (Kafka's retention.ms / retention.bytes per partition, -1 = none,
        the default), `S3_SERVER_TANSU_RETENTION_INTERVAL` (seconds between sweeps, default 30).

        Raises ValueError naming the variable on a malformed or missing value.
        """
        listen = environ.get("S3_SERVER_LISTEN", f"{cls.host}:{cls.port}")
        host, sep, port = listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"S3_SERVER_LISTEN must be host:port, got {listen!r}")
        directory = environ.get("S3_SERVER_DIR", "")
        if not directory:
            raise ValueError("S3_SERVER_DIR must name the folder that holds the objects")
        buckets = tuple(b.strip() for b in environ.get("S3_SERVER_BUCKETS", "").split(",") if b.strip())
        access_log = environ.get("S3_SERVER_ACCESS_LOG", "").lower() in ("1", "true", "yes")
        retention = RetentionPolicy(
            retention_ms=_int(environ, "S3_SERVER_TANSU_RETENTION_MS", -1, minimum=-1),
            retention_bytes=_int(environ, "S3_SERVER_TANSU_RETENTION_BYTES", -1, minimum=-1),
            interval=_float(environ, "S3_SERVER_TANSU_RETENTION_INTERVAL", 30.0),
        )
        return cls(host=host, port=int(port), directory=Path(directory), buckets=buckets, access_log=access_log,
                   retention=retention)


def _int(environ: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0 < value <= 86400:
        raise ValueError(f"{name} must be between 0 and 86400 seconds, got {raw}")
    return value
