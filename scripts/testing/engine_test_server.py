#!/usr/bin/env python3
"""A small HTTP/1.1 receiver for HTTPDeliveryEngine's tests.

Binds 127.0.0.1 on a free port, prints the port on stdout, then serves until killed.
With --tls CERT KEY it serves HTTPS with that certificate.

  POST /echo            200, body: JSON {"headers": {lower-case name: value}, "body": request body text}
  POST /bytes/<n>       200, body: n bytes of "x"
  POST /redirect        302 to /target
  POST /target          200 (the redirect tests check it was never hit)
  POST /retry-after     503 with Retry-After: 120
  POST /never           reads the request, then never answers
  POST /hits/<path>     200, body: how many requests /<path> has had
"""

import http.server
import json
import signal
import ssl
import sys
import threading
import time
from collections import Counter

hits = Counter()
hits_lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        with hits_lock:
            hits[self.path] += 1

        if self.path == "/echo":
            headers = {name.lower(): value for name, value in self.headers.items()}
            self.reply(200, json.dumps({"headers": headers, "body": body.decode("utf-8")}).encode())
        elif self.path.startswith("/bytes/"):
            self.reply(200, b"x" * int(self.path[len("/bytes/"):]))
        elif self.path == "/redirect":
            self.reply(302, b"", [("Location", "/target")])
        elif self.path == "/target":
            self.reply(200, b"target")
        elif self.path == "/retry-after":
            self.reply(503, b"busy", [("Retry-After", "120")])
        elif self.path == "/never":
            while True:
                time.sleep(3600)
        elif self.path.startswith("/hits/"):
            with hits_lock:
                count = hits["/" + self.path[len("/hits/"):]]
            self.reply(200, str(count).encode())
        else:
            self.reply(404, b"no such test route")

    def reply(self, status, body, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the tests open hundreds of connections at once


def main():
    server = Server(("127.0.0.1", 0), Handler)
    if len(sys.argv) == 4 and sys.argv[1] == "--tls":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[2], sys.argv[3])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    # A parent that spawns us from a thread with signals blocked (Foundation's
    # Process inside a test runner does) would make us deaf to SIGTERM.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
