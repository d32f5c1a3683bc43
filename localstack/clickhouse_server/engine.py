"""chdb sessions over one data folder, with per-request settings and database.

A real ClickHouse runs concurrent HTTP requests concurrently, and the API relies on that (a usage
view sends its independent list queries at once). One chdb connection runs one query at a time,
but several connections on the same folder share its data and run in parallel, each with its own
session (settings, `USE`). So the engine keeps a small pool of connections (`connections`,
default 4) and a request checks one out for its whole statement; the scoping below is per
connection.

chdb keeps `SET` values and `USE` on the session, so a request's settings would leak into the
next request. `Engine.execute` therefore brings the session to exactly "baseline + this
request's settings" before each statement: settings the previous request left behind are reset,
and settings already at the requested value are not sent again. Each `SET` is a full chdb query
(about a millisecond), and clients repeat the same settings on every request (clickhouse-connect
sends three with each insert), so applying only the difference turns 7 engine calls per insert
into 1 while keeping the per-request scoping a real ClickHouse HTTP server has.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CODE_RE = re.compile(r"Code: (\d+)\.")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SET_RE = re.compile(r"^\s*SET\s+(.*)$", re.IGNORECASE | re.DOTALL)
_SET_NAME_RE = re.compile(r"(?:^|,)\s*([A-Za-z_][A-Za-z0-9_]*)\s*=")


class EngineError(Exception):
    """A ClickHouse exception: `code` is the ClickHouse error code, `message` its full text."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Result:
    """Raw output bytes of one statement plus the counters ClickHouse reports in its summary."""

    data: bytes
    read_rows: int = 0
    read_bytes: int = 0
    written_rows: int = 0
    written_bytes: int = 0
    elapsed_ns: int = 0


def error_from(exc: BaseException) -> EngineError:
    """Map a chdb exception to the ClickHouse code/message pair (code 1000 when unknown)."""
    text = str(exc)
    start = text.find("Code: ")
    message = text[start:].strip() if start >= 0 else text.strip()
    match = _CODE_RE.search(message)
    code = int(match.group(1)) if match else 1000
    if not message.startswith("Code: "):
        message = f"Code: {code}. DB::Exception: {message}"
    return EngineError(code, message)


def quote_setting(value: str) -> str:
    """A setting value as an SQL literal (numbers bare, everything else quoted)."""
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class _Session:
    """One chdb connection and what its session currently differs from the baseline by."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.database = "default"
        # Settings currently differing from the baseline: name -> value (None = unknown, e.g.
        # after a bare `SET` statement; always reset before the next request).
        self.applied: dict[str, str | None] = {}


class Engine:
    """A pool of `connections` chdb connections owning `path`; a request holds one at a time."""

    def __init__(self, path: Path, *, tmp_dir: Path | None = None, connections: int = 4) -> None:
        import chdb  # imported here so importing the package stays cheap

        if connections < 1:
            raise ValueError("connections must be at least 1")
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        shm = Path("/dev/shm")
        self.tmp_dir = tmp_dir or (shm if shm.is_dir() and os.access(shm, os.W_OK) else path / "tmp_http")
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._sessions = [_Session(chdb.connect(str(path))) for _ in range(connections)]  # type: ignore[no-untyped-call]
        self._free: queue.SimpleQueue[_Session] = queue.SimpleQueue()
        for session in self._sessions:
            self._free.put(session)
        self._baseline_lock = threading.Lock()
        # Session defaults (value, changed) per setting, read once: requests only ever change
        # settings through `applied`, so the baseline never moves (the same for every session).
        self._baseline: dict[str, tuple[str, bool]] = {}

    def close(self) -> None:
        """Release the data directory (waits for running statements to return their connection)."""
        for _ in self._sessions:
            session = self._free.get()
            with contextlib.suppress(Exception):
                session.conn.close()

    @contextlib.contextmanager
    def _checkout(self) -> Iterator[_Session]:
        session = self._free.get()
        try:
            yield session
        finally:
            self._free.put(session)

    @staticmethod
    def _raw(session: _Session, sql: str, fmt: str = "TabSeparated", params: Mapping[str, str] | None = None) -> Any:
        try:
            return session.conn.query(sql, fmt, params=dict(params or {}))
        except Exception as exc:  # chdb raises a plain ChdbError/RuntimeError for every DB error
            raise error_from(exc) from exc

    def _baseline_of(self, session: _Session, names: list[str]) -> None:
        with self._baseline_lock:
            missing = [n for n in names if n not in self._baseline]
            if not missing:
                return
            rows = self._raw(
                session,
                "SELECT name, value, changed FROM system.settings WHERE name IN {names:Array(String)}",
                params={"names": "[" + ",".join(f"'{n}'" for n in missing) + "]"},  # names checked by _NAME_RE
            ).bytes()
            for line in rows.decode().splitlines():
                name, value, changed = line.split("\t")
                self._baseline[name] = (value, changed == "1")

    def _set(self, session: _Session, name: str, value: str) -> None:
        if not _NAME_RE.match(name):
            raise EngineError(115, f"Code: 115. DB::Exception: Unknown setting '{name}'. (UNKNOWN_SETTING)")
        self._raw(session, f"SET {name} = {quote_setting(value)}")

    def _restore(self, session: _Session, names: list[str]) -> None:
        for name in names:
            session.applied.pop(name, None)
            base = self._baseline.get(name)
            with contextlib.suppress(EngineError):
                if base is not None and base[1]:
                    self._raw(session, f"SET {name} = {quote_setting(base[0])}")
                else:
                    self._raw(session, f"SET {name} = DEFAULT")

    def _use(self, session: _Session, database: str) -> None:
        if database == session.database:
            return
        if not _NAME_RE.match(database):
            raise EngineError(81, f"Code: 81. DB::Exception: Database {database} does not exist. (UNKNOWN_DATABASE)")
        self._raw(session, f"USE {database}")
        session.database = database

    def execute(
        self,
        sql: str,
        *,
        fmt: str = "TabSeparated",
        params: Mapping[str, str] | None = None,
        settings: Mapping[str, str] | None = None,
        database: str = "default",
        insert_data: bytes | None = None,
    ) -> Result:
        """Run one statement with settings and database scoped to it.

        With `insert_data`, `sql` must be an `INSERT … FORMAT <fmt>` head; the data is fed through
        a temporary file because chdb has no other way to stream a client's data block.
        """
        settings = dict(settings or {})
        set_stmt = _SET_RE.match(sql)
        set_names = _SET_NAME_RE.findall(set_stmt.group(1)) if set_stmt else []
        with self._checkout() as session:
            self._baseline_of(session, [n for n in [*settings, *set_names] if _NAME_RE.match(n)])
            self._use(session, database)
            # Reset what an earlier request left that this one does not ask for.
            applied = session.applied
            self._restore(session, [n for n in applied if n not in settings or applied[n] != settings[n]])
            for name, value in settings.items():
                if name not in applied:
                    self._set(session, name, value)
                    applied[name] = value
            if set_stmt:
                # A SET without a session only lasts for its own request on a real server.
                applied.update(dict.fromkeys(n for n in set_names if _NAME_RE.match(n)))
            if insert_data is None:
                res = self._raw(session, sql, fmt, params)
            else:
                res = self._insert(session, sql, insert_data, params)
            return Result(
                data=res.bytes(),
                read_rows=int(res.rows_read()),
                read_bytes=int(res.bytes_read()),
                written_rows=int(res.rows_written()),
                written_bytes=int(res.bytes_written()),
                elapsed_ns=int(res.elapsed() * 1e9),
            )

    def _insert(self, session: _Session, head: str, data: bytes, params: Mapping[str, str] | None) -> Any:
        match = re.search(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*$", head, re.IGNORECASE)
        if match is None:
            msg = "Code: 62. DB::Exception: INSERT with data must end with FORMAT <name>. (SYNTAX_ERROR)"
            raise EngineError(62, msg)
        fmt = match.group(1)
        prefix = head[: match.start()].rstrip()
        settings_clause = ""
        smatch = re.search(r"\bSETTINGS\b", prefix, re.IGNORECASE)
        if smatch is not None:
            prefix, settings_clause = prefix[: smatch.start()].rstrip(), " " + prefix[smatch.start() :]
        fd, name = tempfile.mkstemp(prefix="ch-insert-", dir=self.tmp_dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            quoted = "'" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"
            sql = f"{prefix} FROM INFILE {quoted}{settings_clause} FORMAT {fmt}"
            return self._raw(session, sql, "TabSeparated", params)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
