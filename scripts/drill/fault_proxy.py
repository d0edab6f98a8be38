#!/usr/bin/env python3
"""A TCP fault proxy for the drills: forwards 127.0.0.1:<listen> to an upstream
and injects faults chosen at run time through a small HTTP control interface.

    fault_proxy.py --upstream 127.0.0.1:5432 [--port 0] [--control-port 0] [--port-file F]

The port file gets "<listen port> <control port>". Control (HTTP on 127.0.0.1):

    GET  /state                      the current faults and counters as JSON
    POST /faults?latency_ms=200&bandwidth_kbps=64&reset_after_bytes=4096&blackhole=1
                                     replaces the faults (absent parameters = off)
    POST /clear                      no faults
    POST /reset                      resets (RST) every open connection now

Faults:
  latency_ms         each chunk is held this long before it is forwarded (both ways)
  bandwidth_kbps     each direction of each connection is limited to this many KiB/s
  reset_after_bytes  a connection is reset (SO_LINGER 0, so the peer sees RST)
                     after it forwarded this many bytes
  blackhole          new connections are accepted and never answered, and open
                     connections stop forwarding: bytes are read and dropped; a
                     connection that was black-holed stays so after /clear

Standard library only; one thread per direction per connection.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CHUNK = 16384


class Faults:
    """The current fault settings and counters, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency_s = 0.0
        self.bandwidth_bps = 0.0
        self.reset_after = 0
        self.blackhole = False
        self.connections: set[socket.socket] = set()
        self.counters = {"accepted": 0, "resets": 0, "blackholed_bytes": 0, "forwarded_bytes": 0}

    def set(self, params: dict[str, str]) -> None:
        with self.lock:
            self.latency_s = float(params.get("latency_ms", 0)) / 1000
            self.bandwidth_bps = float(params.get("bandwidth_kbps", 0)) * 1024
            self.reset_after = int(params.get("reset_after_bytes", 0))
            self.blackhole = params.get("blackhole", "0") in ("1", "true")

    def state(self) -> dict:
        with self.lock:
            return {"latency_ms": self.latency_s * 1000, "bandwidth_kbps": self.bandwidth_bps / 1024,
                    "reset_after_bytes": self.reset_after, "blackhole": self.blackhole,
                    "open_connections": len(self.connections) // 2, **self.counters}

    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counters[key] += n


def hard_close(sock: socket.socket) -> None:
    """Closes with SO_LINGER 0, so the peer gets a RST rather than a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class Connection:
    """One client connection and its upstream, pumped by two threads."""

    def __init__(self, faults: Faults, client: socket.socket, upstream: tuple[str, int]) -> None:
        self.faults = faults
        self.client = client
        self.server: socket.socket | None = None
        self.upstream = upstream
        self.forwarded = 0
        self.closed = threading.Event()
        # Once black-holed, a connection stays so after the fault is cleared, like
        # a peer that vanished: only the client's own timeouts can free it.
        self.doomed = False

    def start(self) -> None:
        threading.Thread(target=self._open, daemon=True).start()

    def _open(self) -> None:
        if self.faults.blackhole:
            self._swallow(self.client)
            return
        try:
            self.server = socket.create_connection(self.upstream, timeout=10)
            self.server.settimeout(None)
        except OSError:
            hard_close(self.client)
            return
        with self.faults.lock:
            self.faults.connections.update((self.client, self.server))
        threading.Thread(target=self._pump, args=(self.client, self.server), daemon=True).start()
        self._pump(self.server, self.client)

    def _swallow(self, sock: socket.socket) -> None:
        """Black hole: read and drop until the peer gives up."""
        with self.faults.lock:
            self.faults.connections.add(sock)
        try:
            while True:
                data = sock.recv(CHUNK)
                if not data:
                    break
                self.faults.count("blackholed_bytes", len(data))
        except OSError:
            pass
        self._close()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self.closed.is_set():
                data = src.recv(CHUNK)
                if not data:
                    break
                f = self.faults
                if f.blackhole or self.doomed:
                    self.doomed = True
                    f.count("blackholed_bytes", len(data))
                    continue
                if f.latency_s:
                    time.sleep(f.latency_s)
                if f.bandwidth_bps:
                    time.sleep(len(data) / f.bandwidth_bps)
                dst.sendall(data)
                f.count("forwarded_bytes", len(data))
                self.forwarded += len(data)
                if f.reset_after and self.forwarded >= f.reset_after:
                    f.count("resets")
                    break
        except OSError:
            pass
        self._close()

    def _close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        with self.faults.lock:
            self.faults.connections.discard(self.client)
            if self.server:
                self.faults.connections.discard(self.server)
        hard_close(self.client)
        if self.server:
            hard_close(self.server)


def control_handler(faults: Faults):
    class Control(BaseHTTPRequestHandler):
        def _answer(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            if self.path == "/state":
                self._answer(200, faults.state())
            else:
                self._answer(404, {"error": "unknown path"})

        def do_POST(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            if url.path == "/faults":
                try:
                    faults.set({k: v[-1] for k, v in parse_qs(url.query).items()})
                except ValueError as e:
                    self._answer(400, {"error": str(e)})
                    return
            elif url.path == "/clear":
                faults.set({})
            elif url.path == "/reset":
                with faults.lock:
                    socks = list(faults.connections)
                    faults.counters["resets"] += len(socks) // 2
                for sock in socks:
                    hard_close(sock)
            else:
                self._answer(404, {"error": "unknown path"})
                return
            self._answer(200, faults.state())

        def log_message(self, *args) -> None:
            pass

    return Control


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True, help="host:port to forward to")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--port-file")
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    upstream = (host, int(port))
    faults = Faults()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(256)
    control = ThreadingHTTPServer(("127.0.0.1", args.control_port), control_handler(faults))
    control.daemon_threads = True
    threading.Thread(target=control.serve_forever, daemon=True).start()
    ports = f"{listener.getsockname()[1]} {control.server_address[1]}"
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(ports + "\n")
        os.replace(tmp, args.port_file)
    print(ports, flush=True)
    while True:
        client, _ = listener.accept()
        faults.count("accepted")
        Connection(faults, client, upstream).start()


if __name__ == "__main__":
    sys.exit(main())
