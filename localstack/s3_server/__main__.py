"""`python -m localstack.s3_server`: serve a folder as S3 on loopback (see `S3ServerSettings`)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

from aiohttp import web

from localstack.s3_server.app import create_app
from localstack.s3_server.settings import S3ServerSettings
from localstack.s3_server.store import FileStore, InvalidKey, adopt_s3rver_layout


def main(environ: Mapping[str, str] | None = None) -> int:
    """Run until SIGTERM/SIGINT; exit code 2 on bad configuration."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        settings = S3ServerSettings.from_env(os.environ if environ is None else environ)
        adopted = adopt_s3rver_layout(settings.directory)
        store = FileStore(settings.directory, settings.buckets)
    except (ValueError, InvalidKey, OSError) as exc:
        print(f"s3 server: {exc}", file=sys.stderr)  # noqa: T201 - configuration error before serving
        return 2
    log = logging.getLogger("localstack.s3_server")
    if adopted:
        log.info("s3 server: converted %d objects from the s3rver layout", adopted)
    log.info(
        "s3 server on %s:%d serving %s (buckets: %s)", settings.host, settings.port, settings.directory,
        ", ".join(store.buckets()) or "none")
    access_log = logging.getLogger("localstack.s3_server.access") if settings.access_log else None
    if settings.retention.enabled:
        log.info("s3 server: tansu retention %s ms / %s bytes per partition, swept every %.0fs (only below every "
                 "consumer group's committed offset)", settings.retention.retention_ms,
                 settings.retention.retention_bytes, settings.retention.interval)
    app = create_app(store, settings.retention, settings.buckets or ("tansu",))
    web.run_app(app, host=settings.host, port=settings.port, access_log=access_log, print=None,
                handle_signals=True, shutdown_timeout=2.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
