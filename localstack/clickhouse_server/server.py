"""The ClickHouse HTTP interface over an `Engine`, as far as clickhouse-connect and curl need it.

Covered: `/ping`, `/` (`Ok.`), queries in the `query` parameter and/or the body, `INSERT … FORMAT`
with the data in the body (identity, chunked, and `Content-Encoding` lz4 — every concatenated
frame — gzip or deflate), `param_*` bindings, `database`, `default_format`, `query_id`, any other
parameter as a per-request setting, and ClickHouse's error contract (HTTP 500,
`X-ClickHouse-Exception-Code`, `Code: N. DB::Exception: …` body).
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import uuid
import zlib
from email import policy as email_policy
from email.parser import BytesParser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from localstack.clickhouse_server.engine import Engine, EngineError, Result

log = logging.getLogger("localstack.clickhouse_server")

# Parameters that steer the HTTP exchange rather than the query; never applied as settings.
TRANSPORT_PARAMS = frozenset(
    {
        "query", "database", "default_format", "query_id", "session_id", "session_timeout", "session_check",
        "close_session", "user", "password", "quota_key", "buffer_size", "wait_end_of_query", "compress",
        "decompress", "stacktrace", "role", "client_protocol_version", "send_progress_in_http_headers",
        "http_headers_progress_interval_ms", "enable_http_compression", "http_zlib_compression_level",
        "query_plan_max_limit_for_lazy_materialization",
    }
)
_INSERT_HEAD_RE = re.compile(rb"^\s*INSERT\s.*?\bFORMAT\s+[A-Za-z0-9_]+", re.IGNORECASE | re.DOTALL)
_IS_INSERT_RE = re.compile(r"^\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*INSERT\s", re.IGNORECASE | re.DOTALL)
_FORMAT_TAIL_RE = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.IGNORECASE)
_CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "JSON": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
    "JSONCompact": "application/json; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent",
}


class UnsupportedEncoding(Exception):
    """A request body encoding this server cannot decode."""


def decode_body(data: bytes, encoding: str) -> bytes:
    """Decode a request body; lz4 bodies may hold many concatenated frames (one per block)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return data
    if encoding == "lz4":
        import lz4.frame  # type: ignore[import-untyped]

        out: list[bytes] = []
        rest = data
        while rest:
            dec = lz4.frame.LZ4FrameDecompressor()
            out.append(dec.decompress(rest))
            if not dec.eof:
                raise UnsupportedEncoding("truncated lz4 frame in request body")
            rest = dec.unused_data
        return b"".join(out)
    if encoding == "gzip":
        return gzip.decompress(data)
    if encoding == "deflate":
        return zlib.decompress(data)
    raise UnsupportedEncoding(f"Content-Encoding {encoding!r} is not supported by the embedded server")


def form_fields(content_type: str, body: bytes) -> dict[str, str]:
    """Fields of a multipart form body (external-data files are not supported)."""
    head = b"Content-Type: " + content_type.encode() + b"\r\n\r\n"
    msg = BytesParser(policy=email_policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        raise UnsupportedEncoding("malformed multipart/form-data body")
    fields: dict[str, str] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if part.get_param("filename", header="content-disposition") is not None:
            raise UnsupportedEncoding("external data tables are not supported by the embedded server")
        if isinstance(name, str):
            raw = part.get_payload(decode=True)
            fields[name] = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw or "")
    return fields


class ClickHouseHandler(BaseHTTPRequestHandler):
    """One HTTP exchange; the engine is attached to the server instance."""

    server: ClickHouseHTTPServer
    protocol_version = "HTTP/1.1"
    # One buffered write per response (headers + body): avoids the 40 ms Nagle/delayed-ACK stall.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    server_version = "mcp-sentinel-chdb"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:
        log.debug(format, *args)

    def do_GET(self) -> None:
        self._handle(b"")

    def do_POST(self) -> None:
        try:
            body = decode_body(self._read_body(), self.headers.get("Content-Encoding", ""))
        except (UnsupportedEncoding, OSError, ValueError, RuntimeError) as exc:
            self._error(EngineError(1000, f"Code: 1000. DB::Exception: cannot read request body: {exc}"))
            return
        self._handle(body)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self, body: bytes) -> None:
        url = urlsplit(self.path)
        if url.path == "/ping" or (url.path == "/" and not url.query and not body):
            self._send(HTTPStatus.OK, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
            return
        if url.path != "/":
            self._send(HTTPStatus.NOT_FOUND, b"There is no handle " + url.path.encode() + b"\n", {})
            return
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        ctype = self.headers.get("Content-Type", "")
        # Only multipart: curl and urllib label raw SQL bodies x-www-form-urlencoded, as ClickHouse tolerates.
        if ctype.startswith("multipart/form-data"):
            # clickhouse-connect moves the query and large `param_*` values into a form body.
            try:
                params.update(form_fields(ctype, body))
            except UnsupportedEncoding as exc:
                self._error(EngineError(1000, f"Code: 1000. DB::Exception: {exc}"))
                return
            body = b""
        query_id = params.get("query_id") or self.headers.get("X-ClickHouse-Query-Id") or str(uuid.uuid4())
        database = params.get("database") or self.headers.get("X-ClickHouse-Database") or "default"
        fmt = params.get("default_format") or self.headers.get("X-ClickHouse-Format") or "TabSeparated"
        binds = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        settings = {k: v for k, v in params.items() if k not in TRANSPORT_PARAMS and not k.startswith("param_")}
        head = params.get("query", "")
        data: bytes | None = None
        if head and _IS_INSERT_RE.match(head) and body:
            data = body
        elif head:
            head = head + ("\n" + body.decode("utf-8", "replace") if body else "")
        else:
            match = _INSERT_HEAD_RE.match(body)
            if match is not None and body[match.end() :].strip():
                head = body[: match.end()].decode("utf-8", "replace")
                rest = body[match.end() :]
                # ClickHouse skips the whitespace up to and including one line feed after FORMAT.
                rest = re.sub(rb"^[ \t]*\r?\n?", b"", rest, count=1)
                data = rest
            else:
                head = body.decode("utf-8", "replace")
        if not head.strip():
            self._error(EngineError(62, "Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)"), query_id)
            return
        tail = _FORMAT_TAIL_RE.search(head) if data is None else None
        out_fmt = tail.group(1) if tail else fmt
        try:
            result = self.server.engine.execute(
                head, fmt=fmt, params=binds, settings=settings, database=database, insert_data=data
            )
        except EngineError as exc:
            self._error(exc, query_id)
            return
        self._send(HTTPStatus.OK, result.data, self._result_headers(result, query_id, out_fmt))

    def _result_headers(self, result: Result, query_id: str, fmt: str) -> dict[str, str]:
        summary = {
            "read_rows": str(result.read_rows),
            "read_bytes": str(result.read_bytes),
            "written_rows": str(result.written_rows),
            "written_bytes": str(result.written_bytes),
            "total_rows_to_read": "0",
            "result_rows": "0",
            "result_bytes": str(len(result.data)),
            "elapsed_ns": str(result.elapsed_ns),
        }
        return {
            "Content-Type": _CONTENT_TYPES.get(fmt, "application/octet-stream"),
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Format": fmt,
            "X-ClickHouse-Timezone": self.server.timezone,
            "X-ClickHouse-Server-Display-Name": "chdb",
            "X-ClickHouse-Summary": json.dumps(summary, separators=(",", ":")),
        }

    def _error(self, exc: EngineError, query_id: str = "") -> None:
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-ClickHouse-Exception-Code": str(exc.code),
        }
        if query_id:
            headers["X-ClickHouse-Query-Id"] = query_id
        self._send(HTTPStatus.INTERNAL_SERVER_ERROR, (exc.message.rstrip() + "\n").encode(), headers)

    def _send(self, status: HTTPStatus, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ClickHouseHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server whose handlers share one engine."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], engine: Engine) -> None:
        super().__init__(address, ClickHouseHandler)
        self.engine = engine
        self.timezone = engine.execute("SELECT timezone()").data.decode().strip() or "UTC"


def create_server(engine: Engine, host: str = "127.0.0.1", port: int = 8123) -> ClickHouseHTTPServer:
    """A server bound to host:port (port 0 picks a free one; read `server_address`)."""
    return ClickHouseHTTPServer((host, port), engine)
