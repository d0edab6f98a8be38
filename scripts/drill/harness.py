"""The pieces every fault drill is built from: a throwaway PostgreSQL, relays,
recording receivers, a steady publisher, and the books that check what arrived.

Everything started here is registered in `Processes` (scripts/support) and
stopped by PID when the drill ends (normally, by exception, or by SIGINT/SIGTERM
via the entry script's trap). Traffic only ever goes to 127.0.0.1. Standard library only.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from support import http_probe, waiting  # noqa: E402
from support.ports import free_port  # noqa: E402
from support.processes import Processes, stop  # noqa: E402
from support.psql import ROWS_FORMAT, psql_command, rows  # noqa: E402

RELAY_BIN = Path(os.environ.get("OUTBOX_RELAY_BIN", REPO / ".build-release/release/outbox-relay"))
RECEIVER = REPO / "scripts/testing/webhook_receiver.py"
PG_BIN = Path(os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin"))


class DrillFailure(Exception):
    """A drill's check did not hold; the message says which and by how much."""


def require(ok: bool, message: str) -> None:
    """Fails the drill with `message` unless `ok`."""
    if not ok:
        raise DrillFailure(message)


wait_until = functools.partial(waiting.wait_until, failure=DrillFailure)


class Postgres:
    """A throwaway server from scripts/dev-postgres (durable settings, so an
    immediate restart loses nothing that committed)."""

    def __init__(self, opts: str = "") -> None:
        env = dict(os.environ, OUTBOX_DEV_PG_OPTS=opts)
        env.pop("OUTBOX_DEV_PG_FAST", None)
        out = subprocess.run([str(REPO / "scripts/dev-postgres"), "start"], env=env, check=True,
                             capture_output=True, text=True).stdout
        self.env: dict[str, str] = {}
        for line in out.splitlines():
            if line.startswith("export "):
                key, _, value = line[len("export "):].partition("=")
                self.env[key] = value.strip("'\"")
        self.port = int(self.env["PGPORT"])
        self.dir = self.env["OUTBOX_DEV_PG_DIR"]
        self.url = self.env["OUTBOX_DATABASE_URL"]

    def url_via(self, port: int) -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/outbox"

    def sql(self, text: str, check: bool = True, timeout: float = 60) -> list[list[str]]:
        """Runs SQL with psql; returns rows as lists of strings (unaligned, tab-separated)."""
        proc = subprocess.run([*psql_command(self.port), *ROWS_FORMAT, "-c", text],
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise DrillFailure(f"psql failed: {proc.stderr.strip()[:400]}")
        return rows(proc.stdout.splitlines())

    def sql_error(self, text: str) -> str | None:
        """Runs SQL expected to fail; returns the error text, or None when it succeeded."""
        proc = subprocess.run([*psql_command(self.port), "-A", "-t"],
                              input=text, capture_output=True, text=True, timeout=60)
        return proc.stderr.strip() if proc.returncode != 0 else None

    def scalar(self, text: str) -> str:
        rows = self.sql(text)
        return rows[0][0] if rows else ""

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "--pgdata",
                        f"{self.dir}/data", "-w", "-t", "30", *args, "-o", f"-c port={self.port}",
                        "-l", f"{self.dir}/server.log"], cwd="/tmp", check=True, capture_output=True)

    def restart_immediate(self, down_s: float = 0.0) -> None:
        """`pg_ctl restart -m immediate` (a crash and recovery); with down_s, an
        immediate stop, down_s seconds down, then a start."""
        if down_s <= 0:
            self.pg_ctl("-m", "immediate", "restart")
            return
        self.pg_ctl("-m", "immediate", "stop")
        time.sleep(down_s)
        self.pg_ctl("start")

    def stop(self) -> None:
        subprocess.run([str(REPO / "scripts/dev-postgres"), "stop", self.dir], capture_output=True)


class Receiver:
    """scripts/testing/webhook_receiver.py on a fixed port, logging every request."""

    def __init__(self, procs: Processes, workdir: Path, name: str = "rx", port: int | None = None) -> None:
        self.procs = procs
        self.port = port or free_port()
        self.log = workdir / f"{name}.jsonl"
        self.proc: subprocess.Popen | None = None
        # The port subscriptions use, when something (a fault proxy) sits in front.
        self.public_port = self.port

    def start(self) -> None:
        self.proc = self.procs.start([sys.executable, str(RECEIVER), "--port", str(self.port), "--log",
                                      str(self.log), "--exit-with-parent"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.healthy, 10, what="receiver")

    def healthy(self) -> bool:
        return http_probe.http_status(f"http://127.0.0.1:{self.port}/_health") == 200

    def stop(self) -> None:
        if self.proc:
            stop(self.proc, signal.SIGKILL)
            self.proc = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.public_port}{path}"

    def records(self) -> list[dict]:
        if not self.log.exists():
            return []
        out = []
        with open(self.log, encoding="utf-8") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass  # a line torn by a SIGKILL of the receiver
        return out


class Relay:
    """One `outbox-relay run` process with its own admin port and JSON log."""

    def __init__(self, procs: Processes, workdir: Path, db_url: str, name: str = "relay", **settings) -> None:
        self.procs, self.name, self.db_url = procs, name, db_url
        self.admin_port = free_port()
        self.log = workdir / f"{name}.log"
        self.settings = {"OUTBOX_POLL_INTERVAL": "500ms", "OUTBOX_TIMEOUT": "5s", "OUTBOX_LEASE": "10s",
                         "OUTBOX_RETRY_SCHEDULE": "1s,1s,2s,2s,5s,5s,10s,10s,10s,10s",
                         "OUTBOX_SHUTDOWN_GRACE": "5s"}
        self.settings.update({k: str(v) for k, v in settings.items()})
        self.proc: subprocess.Popen | None = None
        self.peak_rss_kb = 0
        self.starts = 0

    def start(self, wait_ready: bool = True) -> None:
        env = dict(os.environ, OUTBOX_DATABASE_URL=self.db_url, OUTBOX_ALLOW_PRIVATE_NETWORKS="true",
                   OUTBOX_ADMIN_LISTEN=f"127.0.0.1:{self.admin_port}", OUTBOX_LOG_FORMAT="json",
                   **self.settings)
        log = open(self.log, "a")
        self.proc = self.procs.start([str(RELAY_BIN), "run"], env=env, stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        self.starts += 1
        if wait_ready:
            http_probe.wait_ready(self.admin_port, 20, what=f"{self.name} /readyz", failure=DrillFailure)

    def ready(self) -> int | None:
        return http_probe.readyz(self.admin_port)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def sample_rss(self) -> int:
        """Reads VmRSS (kB) and keeps the peak."""
        if not self.alive():
            return 0
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    kb = int(line.split()[1])
                    self.peak_rss_kb = max(self.peak_rss_kb, kb)
                    return kb
        except OSError:
            pass
        return 0

    def kill9(self) -> None:
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def terminate(self, grace: float = 15.0) -> int | None:
        if not self.alive():
            return self.proc.returncode if self.proc else None
        stop(self.proc, signal.SIGTERM, grace=grace)
        return self.proc.returncode


def migrate(pg: Postgres) -> None:
    subprocess.run([str(RELAY_BIN), "migrate"], env=dict(os.environ, OUTBOX_DATABASE_URL=pg.url),
                   check=True, capture_output=True)


def subscribe(pg: Postgres, name: str, url: str, patterns: str = "*", **settings) -> None:
    pg.sql(f"SELECT outbox.subscribe('{name}', '{url}', ARRAY['{patterns}'])")
    for column, value in settings.items():
        pg.sql(f"UPDATE outbox.subscriptions SET {column} = {value} WHERE name = '{name}'")


class Publisher(threading.Thread):
    """Publishes `total` events at `rate`/s in small transactions, retrying a batch
    whose connection failed (a batch whose COMMIT outcome is unknown may then exist
    twice under different event ids; the books count events from the table)."""

    def __init__(self, pg: Postgres, total: int, rate: float, event_type: str = "drill.event",
                 batch: int = 50) -> None:
        super().__init__(daemon=True)
        self.pg, self.total, self.rate, self.event_type, self.batch = pg, total, rate, event_type, batch
        self.sent = 0
        self.errors = 0
        self.stop_flag = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        while self.sent < self.total and not self.stop_flag.is_set():
            n = min(self.batch, self.total - self.sent)
            stmt = (f"INSERT INTO outbox.events (event_type, payload) SELECT '{self.event_type}', "
                    f"jsonb_build_object('n', g) FROM generate_series({self.sent + 1}, {self.sent + n}) g")
            try:
                self.pg.sql(stmt, timeout=30)
                self.sent += n
            except (DrillFailure, subprocess.TimeoutExpired):
                self.errors += 1
                time.sleep(0.2)
                continue
            due = start + self.sent / self.rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)


class Books:
    """Compares what should have arrived (every event x every matching subscription,
    from the database) with what the receivers logged."""

    def __init__(self, pg: Postgres, receivers: list[Receiver], where: str = "true") -> None:
        self.pg, self.receivers, self.where = pg, receivers, where

    def expected(self) -> set[tuple[str, str]]:
        # From events x subscriptions, not from outbox.deliveries, so an event the
        # relay never fanned out still counts as missing.
        rows = self.pg.sql("SELECT e.event_id, s.url FROM outbox.events e "
                           "JOIN outbox.subscriptions s ON s.created_at <= e.created_at "
                           f"WHERE {self.where}")
        return {(r[0], r[1]) for r in rows}

    def received(self) -> Counter:
        """(webhook-id, url) -> how many requests the receiver answered 2xx."""
        got: Counter = Counter()
        for rx in self.receivers:
            for rec in rx.records():
                if 200 <= int(rec.get("status", 0)) < 300:
                    got[(rec["headers"].get("webhook-id", ""), rx.url(rec["path"]))] += 1
        return got

    def check(self, expected_events: int | None = None) -> dict:
        expected = self.expected()
        got = self.received()
        events = int(self.pg.scalar("SELECT count(*) FROM outbox.events"))
        missing = [pair for pair in expected if got[pair] == 0]
        duplicates = sum(c - 1 for pair, c in got.items() if c > 1)
        stray = sum(1 for pair in got if pair not in expected)
        result = {"events": events, "deliveries": len(expected), "missing": len(missing),
                  "duplicates": duplicates, "stray": stray}
        if expected_events is not None and events < expected_events:
            result["unpublished"] = expected_events - events
        return result

    def wait_settled(self, timeout: float) -> None:
        """Waits until no delivery is pending or delivering."""
        wait_until(lambda: self.pg.scalar("SELECT count(*) FROM outbox.deliveries "
                                          "WHERE status IN ('pending','delivering')") == "0",
                   timeout, step=0.5, what="backlog to drain")


class RSSSampler(threading.Thread):
    """Samples the relays' RSS every 200 ms while a drill runs."""

    def __init__(self, relays: list[Relay]) -> None:
        super().__init__(daemon=True)
        self.relays = relays
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.wait(0.2):
            for relay in self.relays:
                relay.sample_rss()

    def peak_mb(self) -> float:
        return max((r.peak_rss_kb for r in self.relays), default=0) / 1024


class Drill:
    """Context shared by one drill: its processes, temp dir, database."""

    def __init__(self, name: str, keep: bool = False) -> None:
        self.name = name
        self.procs = Processes()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"outbox-drill-{name}-"))
        self.pg: Postgres | None = None
        self.keep = keep

    def __enter__(self) -> "Drill":
        return self

    def postgres(self, opts: str = "max_connections = 300") -> Postgres:
        self.pg = Postgres(opts)
        migrate(self.pg)
        return self.pg

    def receiver(self) -> Receiver:
        """A recording receiver on a free port, started."""
        rx = Receiver(self.procs, self.workdir)
        rx.start()
        return rx

    def relay(self, **settings) -> Relay:
        """A relay against this drill's database, started and ready by /readyz."""
        relay = Relay(self.procs, self.workdir, self.pg.url, **settings)
        relay.start()
        return relay

    def __exit__(self, *exc) -> None:
        # The drill's time limit (run.py's SIGALRM) must not cut the teardown short and
        # leave servers running; the teardown is bounded by its own grace periods.
        signal.alarm(0)
        self.procs.stop_all()
        if self.pg:
            self.pg.stop()
        if not self.keep and exc[0] is None:
            subprocess.run(["rm", "-rf", str(self.workdir)])
