#!/usr/bin/env python3
"""A real HTTP/1.1 webhook receiver for outbox-relay's tests, demo and benchmark.

Standard library only. Binds 127.0.0.1 (port 0 unless --port), writes the port to
--port-file (atomically) and prints it, and appends one JSON line per request to
--log:

    {"received_at_ms": <epoch ms float>, "path": ..., "method": ..., "headers":
     {<lowercased name>: <value>}, "body": <text>, "status": <what it answered>}

What it answers is chosen by the request path, so one receiver serves many
subscriptions:

    /ok, /ok/<anything>                 204
    /status/<code>                      <code> (302 adds Location: /redirected, 410 body "gone")
    /redirected                         200 (a redirect was followed: tests assert it never is)
    /fail-first/<n>/<anything>          500 "boom" for the first n requests per webhook-id, then 204
    /retry-after/<secs>/<anything>      429 + Retry-After: <secs> for the first request per webhook-id, then 204
    /sleep/<ms>/<anything>              sleeps <ms>, then 204
    /switch/<name>                      the status set for switch <name> (default 204)
    /switch-by/<header>/<anything>      the status of the switch named by that request header's value
    POST /_control/switch/<name>?status=<code>   sets a switch (not logged)
    /big/<bytes>                        200 with a body of <bytes> bytes
    GET /_health                        200 (not logged)
    anything else                       404

Per-webhook-id counters are kept per full path, so two subscriptions pointing at
different paths count separately. Each request is logged when it has been read and
its answer decided (before any sleep), so the log shows a request even when the
client gives up waiting for the answer.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_CHUNK = b"x" * 65536


class ReceiverState:
    """Everything shared between request threads, behind one lock."""

    def __init__(self, log_path: str | None, latency_ms: float) -> None:
        self.lock = threading.Lock()
        self.latency_s = latency_ms / 1000.0
        self.counts: dict[tuple[str, str], int] = {}
        self.switches: dict[str, int] = {}
        self.log_file = open(log_path, "a", encoding="utf-8") if log_path else None

    def next_count(self, path: str, webhook_id: str) -> int:
        """Returns how many requests for (path, webhook-id) arrived before this one."""
        with self.lock:
            key = (path, webhook_id)
            seen = self.counts.get(key, 0)
            self.counts[key] = seen + 1
            return seen

    def switch_status(self, name: str) -> int:
        with self.lock:
            return self.switches.get(name, 204)

    def set_switch(self, name: str, status: int) -> None:
        with self.lock:
            self.switches[name] = status

    def log(self, record: dict) -> None:
        if self.log_file is None:
            return
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self.lock:
            self.log_file.write(line)
            self.log_file.flush()


class Response:
    def __init__(self, status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None,
                 body_size: int | None = None, sleep_s: float = 0.0) -> None:
        self.status = status
        self.body = body
        self.headers = headers or []
        # /big streams its body instead of holding it in memory.
        self.body_size = len(body) if body_size is None else body_size
        self.sleep_s = sleep_s


def _int_segment(parts: list[str], index: int) -> int | None:
    try:
        return int(parts[index])
    except (IndexError, ValueError):
        return None


class WebhookHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "outbox-test-receiver"
    sys_version = ""
    # Headers and body go out in one write, and without Nagle's algorithm: a
    # keep-alive client would otherwise wait for delayed ACKs (~40 ms a request).
    disable_nagle_algorithm = True
    state: ReceiverState  # set on the subclass made in main()

    # --- plumbing -----------------------------------------------------------

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass  # no per-request noise

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # trailers, up to the empty line
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)  # CRLF after the chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, response: Response) -> None:
        status = response.status
        reason = self.responses.get(status, ("",))[0]
        head = [f"HTTP/1.1 {status} {reason}".rstrip(),
                f"Date: {formatdate(usegmt=True)}",
                f"Server: {self.server_version}"]
        head += [f"{name}: {value}" for name, value in response.headers]
        if status != 204 and not (100 <= status < 200):
            head.append(f"Content-Length: {response.body_size}")
            if response.body_size:
                head.append("Content-Type: text/plain")
        if self.close_connection:
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        send_body = self.command != "HEAD" and status != 204
        if send_body and len(response.body) == response.body_size:
            self.wfile.write(data + response.body)
            return
        self.wfile.write(data)
        if send_body:
            remaining = response.body_size
            while remaining > 0:
                piece = _CHUNK[: min(remaining, len(_CHUNK))]
                self.wfile.write(piece)
                remaining -= len(piece)

    def _handle(self) -> None:
        received_at_ms = time.time() * 1000.0
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._send(Response(400, b"bad request body"))
            return
        url = urlsplit(self.path)
        path = url.path

        if path == "/_health":
            self._send(Response(200, b"ok"))
            return
        if path.startswith("/_control/switch/"):
            self._control_switch(path[len("/_control/switch/"):], url.query)
            return

        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value

        response = self._decide(path, headers)
        try:
            body_text = body.decode("utf-8")
        except UnicodeDecodeError:
            body_text = body.decode("utf-8", errors="replace")
        self.state.log({
            "received_at_ms": received_at_ms,
            "path": self.path,
            "method": self.command,
            "headers": headers,
            "body": body_text,
            "status": response.status,
        })
        delay = self.state.latency_s + response.sleep_s
        if delay > 0:
            time.sleep(delay)
        try:
            self._send(response)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client stopped reading (a capped /big body)

    def _control_switch(self, name: str, query: str) -> None:
        values = parse_qs(query).get("status", [])
        if self.command != "POST" or not name or len(values) != 1 or not values[0].isdigit():
            self._send(Response(400, b"use POST /_control/switch/<name>?status=<code>"))
            return
        self.state.set_switch(name, int(values[0]))
        self._send(Response(200, b"ok"))

    # --- behaviour by path ----------------------------------------------------

    def _decide(self, path: str, headers: dict[str, str]) -> Response:
        webhook_id = headers.get("webhook-id", "")
        parts = path.strip("/").split("/")
        head = parts[0]
        if head == "ok":
            return Response(204)
        if head == "redirected":
            return Response(200, b"redirected")
        if head == "status":
            code = _int_segment(parts, 1)
            if code is None or not 100 <= code <= 999:
                return Response(400, b"use /status/<code>")
            if code == 302:
                return Response(302, b"", [("Location", "/redirected")])
            if code == 410:
                return Response(410, b"gone")
            return Response(code)
        if head == "fail-first":
            n = _int_segment(parts, 1)
            if n is None:
                return Response(400, b"use /fail-first/<n>/<anything>")
            if self.state.next_count(path, webhook_id) < n:
                return Response(500, b"boom")
            return Response(204)
        if head == "retry-after":
            secs = _int_segment(parts, 1)
            if secs is None:
                return Response(400, b"use /retry-after/<secs>/<anything>")
            if self.state.next_count(path, webhook_id) == 0:
                return Response(429, b"slow down", [("Retry-After", str(secs))])
            return Response(204)
        if head == "sleep":
            ms = _int_segment(parts, 1)
            if ms is None:
                return Response(400, b"use /sleep/<ms>/<anything>")
            return Response(204, sleep_s=ms / 1000.0)
        if head == "switch" and len(parts) >= 2 and parts[1]:
            return Response(self.state.switch_status(parts[1]))
        if head == "switch-by" and len(parts) >= 2 and parts[1]:
            return Response(self.state.switch_status(headers.get(parts[1].lower(), "")))
        if head == "big":
            size = _int_segment(parts, 1)
            if size is None or size < 0:
                return Response(400, b"use /big/<bytes>")
            return Response(200, body_size=size)
        return Response(404, b"no such behaviour")


class ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def _exit_when_orphaned(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--port-file", help="write the bound port here (atomically)")
    parser.add_argument("--log", help="append one JSON line per request to this file")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="fixed delay before every answer")
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="exit when the process that started this one dies (no orphans after a crashed test run)")
    args = parser.parse_args(argv)

    state = ReceiverState(args.log, args.latency_ms)
    handler = type("BoundWebhookHandler", (WebhookHandler,), {"state": state})
    server = ReceiverServer(("127.0.0.1", args.port), handler)
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    port = server.server_address[1]

    if args.port_file:
        tmp = f"{args.port_file}.tmp.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(port, flush=True)

    def stop(signum, frame):  # noqa: ARG001 - signal handler signature
        raise SystemExit(0)

    if args.exit_with_parent:
        threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # A child of a Swift test process inherits a signal mask that blocks almost
    # everything (Dispatch's worker threads block signals): unblock the ones we stop on.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        server.serve_forever(poll_interval=0.2)
    except SystemExit:
        pass
    finally:
        server.server_close()
        if state.log_file is not None:
            state.log_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
