#!/usr/bin/env python3
"""Hostile webhook endpoints for the slow-receiver drill (127.0.0.1, stdlib only).

    /trickle/<bytes>/<kbps>/<x>   200 with Content-Length <bytes>, sent at <kbps> KiB/s
    /endless/<x>                  200, chunked, an endless fast stream of bytes
    /hang/<x>                     reads the request, then never answers nor closes
    anything else                 204

Logs one JSON line per request (received_at_ms, path, headers, status) to --log,
like scripts/testing/webhook_receiver.py, and writes its port to --port-file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = b"x" * 65536
LOCK = threading.Lock()
LOG = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_request_line(self, status: int) -> None:
        record = {"received_at_ms": time.time() * 1000, "path": self.path, "method": self.command,
                  "headers": {k.lower(): v for k, v in self.headers.items()}, "status": status}
        with LOCK:
            LOG.write(json.dumps(record) + "\n")
            LOG.flush()

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        parts = self.path.strip("/").split("/")
        try:
            if parts[0] == "trickle":
                self.trickle(int(parts[1]), float(parts[2]))
            elif parts[0] == "endless":
                self.endless()
            elif parts[0] == "hang":
                self.log_request_line(0)
                threading.Event().wait()  # never answers; the socket stays open
            else:
                self.log_request_line(204)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()
        except OSError:
            pass  # the relay gave up: that is what the drill wants

    def trickle(self, total: int, kbps: float) -> None:
        self.log_request_line(200)
        self.send_response(200)
        self.send_header("Content-Length", str(total))
        self.end_headers()
        step = 8192
        pause = step / (kbps * 1024)
        sent = 0
        while sent < total:
            n = min(step, total - sent)
            self.wfile.write(CHUNK[:n])
            sent += n
            time.sleep(pause)

    def endless(self) -> None:
        self.log_request_line(200)
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        frame = b"%x\r\n" % len(CHUNK) + CHUNK + b"\r\n"
        while True:
            self.wfile.write(frame)

    def log_message(self, *args) -> None:
        pass


def main() -> int:
    global LOG
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    LOG = open(args.log, "a", encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(f"{server.server_address[1]}\n")
        os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
