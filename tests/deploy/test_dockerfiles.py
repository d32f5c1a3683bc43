"""docker/: one build recipe per deployable; they cannot be built here (no Docker), so they are
parsed: stages, COPY sources, non-root USER, and a CMD module that exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from localstack.config import REPO_ROOT

DOCKER = REPO_ROOT / "docker"
DEPLOYABLES = {
    "sidecar": "sidecar",
    "ingest": "functions.ingest",
    "processor": "functions.processor",
    "api": "functions.api",
    "ui": "functions.ui",
    "worker": "workflows",
}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        lines.append(pending + raw)
        pending = ""
    out = []
    for line in lines:
        op, _, args = line.strip().partition(" ")
        out.append((op.upper(), args.strip()))
    return out


def module_exists(module: str) -> bool:
    """`python -m module` would find something to run in the repository."""
    base = REPO_ROOT.joinpath(*module.split("."))
    return (base / "__main__.py").is_file() or base.with_suffix(".py").is_file()


def test_every_deployable_has_a_dockerfile() -> None:
    assert {p.name.removesuffix(".Dockerfile") for p in DOCKER.glob("*.Dockerfile")} == set(DEPLOYABLES)


@pytest.mark.parametrize("name", sorted(DEPLOYABLES))
def test_dockerfile_shape(name: str) -> None:
    ins = instructions(DOCKER / f"{name}.Dockerfile")
    froms = [args for op, args in ins if op == "FROM"]
    assert len(froms) >= 2, "multi-stage: build tools stay out of the runtime image"
    stages = {a.split(" AS ")[1].strip() for a in froms if " AS " in a}
    final = len(ins) - 1 - [op for op, _ in ins][::-1].index("FROM")
    runtime = ins[final:]
    for op, args in ins:
        if op != "COPY":
            continue
        parts = args.split()
        if parts[0].startswith("--from="):
            assert parts[0].removeprefix("--from=") in stages
            continue
        for src in parts[:-1]:
            assert (REPO_ROOT / src).exists(), f"COPY source {src} is not in the repository"
    users = [args for op, args in runtime if op == "USER"]
    assert users, "the runtime stage must switch user"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"} and (not user.isdigit() or int(user) >= 1000)
    cmd = json.loads(next(args for op, args in runtime if op == "CMD"))
    assert cmd[:2] == ["python", "-m"], "exec form, so SIGTERM reaches Python"
    assert cmd[2] == DEPLOYABLES[name]
    assert module_exists(cmd[2]), f"{cmd[2]} has no __main__ in the repository"
    env = " ".join(args for op, args in runtime if op == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env, "read-only root filesystem: no .pyc writes at run time"
    # Manifests run the same uid, so runAsNonRoot holds.
    assert re.search(r"useradd .*--uid 10001", " ".join(a for o, a in runtime if o == "RUN"))


def test_sidecar_image_installs_only_the_hot_path_dependencies() -> None:
    run = " ".join(a for o, a in instructions(DOCKER / "sidecar.Dockerfile") if o == "RUN")
    assert "--no-deps ." in run
    wanted = (DOCKER / "requirements" / "sidecar.txt").read_text().lower()
    for heavy in ("fastapi", "temporalio", "kafka", "clickhouse", "chdb"):
        assert heavy not in run and heavy not in wanted


def test_parser_joins_continuations(tmp_path: Path) -> None:
    f = tmp_path / "x.Dockerfile"
    f.write_text("# c\nFROM a AS b\nRUN one \\\n    two\nCMD [\"python\", \"-m\", \"x\"]\n")
    assert instructions(f) == [("FROM", "a AS b"), ("RUN", "one      two"), ("CMD", '["python", "-m", "x"]')]


def test_module_check_can_fail() -> None:
    assert module_exists("functions.ingest")
    assert not module_exists("functions.does_not_exist")
