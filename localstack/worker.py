"""`python -m localstack.worker`: the product's Temporal worker with the local stack's restart backend."""

from __future__ import annotations

import os
from pathlib import Path

from localstack.restarts import LocalRestarts
from workflows.__main__ import main

if __name__ == "__main__":
    main(restart_backend=LocalRestarts(Path(os.environ.get("SENTINEL_RUN_DIR", ".data/run"))))
