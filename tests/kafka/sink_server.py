"""A real HTTP sink process for dispatcher tests (stdlib only).

Appends every request as a JSON line (headers, body, status returned) to SINK_LOG. Behaviour:
SINK_FAIL_FIRST=N answers 500 to the first N attempts of each ce-id; a payload with
`"poison": true` gets 400; SINK_DELAY_MS slows each answer. A CloudEvents batch
(`application/cloudevents-batch+json`) is answered as a whole: 400 if any element is poison, 500
while any element is within its first N attempts; its log line also lists the elements (`events`).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = os.environ["SINK_LOG"]
FAIL_FIRST = int(os.environ.get("SINK_FAIL_FIRST", "0"))
DELAY = int(os.environ.get("SINK_DELAY_MS", "0")) / 1000
attempts: Counter[str] = Counter()
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer(200)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.headers.get("content-type", "") == "application/cloudevents-batch+json":
            events = json.loads(body)
            ids = [e["id"] for e in events]
            datas = [e.get("data") for e in events]
        else:
            events = None
            ids = [self.headers.get("ce-id", "")]
            try:
                datas = [json.loads(body)]
            except ValueError:
                datas = [None]
        with lock:
            attempts.update(ids)
            n = min(attempts[i] for i in ids)
        poison = any(isinstance(d, dict) and d.get("poison") is True for d in datas)
        status = 400 if poison else (500 if n <= FAIL_FIRST else 200)
        if DELAY:
            time.sleep(DELAY)
        entry = {"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body.decode(), "status": status}
        if events is not None:
            entry["events"] = events
        line = json.dumps(entry)
        with lock, open(LOG, "a") as f:
            f.write(line + "\n")
        self._answer(status)

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
