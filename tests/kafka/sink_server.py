"""A real HTTP sink process for dispatcher tests (stdlib only).

Appends every request as a JSON line (headers, body, status returned) to SINK_LOG. Behaviour:
SINK_FAIL_FIRST=N answers 500 to the first N attempts of each ce-id; a payload with
`"poison": true` gets 400; SINK_DELAY_MS slows each answer.
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
        ce_id = self.headers.get("ce-id", "")
        with lock:
            attempts[ce_id] += 1
            n = attempts[ce_id]
        try:
            poison = json.loads(body).get("poison") is True
        except (ValueError, AttributeError):
            poison = False
        status = 400 if poison else (500 if n <= FAIL_FIRST else 200)
        if DELAY:
            time.sleep(DELAY)
        line = json.dumps({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body.decode(),
                           "status": status})
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
