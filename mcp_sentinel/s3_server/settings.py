"""Settings of the local S3 server (environment, same style as every other component)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class S3ServerSettings:
    """Where the server listens, which folder holds the objects, and which buckets exist from the start."""

    host: str = "127.0.0.1"
    port: int = 9000
    directory: Path = Path("s3")
    buckets: tuple[str, ...] = ()
    access_log: bool = False  # one line per request on stderr: for debugging a client, costly under load

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> S3ServerSettings:
        """`S3_SERVER_LISTEN` (host:port), `S3_SERVER_DIR` (required), `S3_SERVER_BUCKETS` (comma list),
        `S3_SERVER_ACCESS_LOG` (1/true to log every request).

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
        return cls(host=host, port=int(port), directory=Path(directory), buckets=buckets, access_log=access_log)
