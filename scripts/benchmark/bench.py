#!/usr/bin/env python3
"""The phases of scripts/bench (read its header for the method).

Started by scripts/bench, which has already built the relay, started a
throwaway PostgreSQL (PG* and OUTBOX_DATABASE_URL in the environment) and
migrated it. This starts nginx, the relay, wrk and pgbench itself, stops each of
them by PID (also on failure), prints the table and writes the JSON. The phases
from ceiling to idle live here; each later one has a file of its own
(hostsubs.py, drain.py, peer.py, callgrind.py, baseline.py, soak.py) that is
handed this Bench.

Only the standard library: psql, pgbench, wrk and nginx do the talking (the
PgQueuer peer runs as a process of its own).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import json
import math
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support import processes  # noqa: E402  (scripts/support)
from support.ports import free_port  # noqa: E402
from support.psql import ROWS_FORMAT, psql_command, rows  # noqa: E402
import report  # noqa: E402  (scripts/benchmark/report.py)
from common import PAYLOAD_SQL, STARTED, BenchError, parse_pgbench, percentile, say  # noqa: E402
import baseline  # noqa: E402
import callgrind  # noqa: E402
import drain  # noqa: E402
import host_transaction  # noqa: E402
import hostsubs  # noqa: E402
import peer  # noqa: E402
import soak  # noqa: E402
from costs import CostWindow  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1
MIB = 1024 * 1024

# Sizes and durations. QUICK is a smoke run (~5 min), FULL the real one (~25 min).
FULL = {
    "ceiling_seconds": 5, "ceiling_passes": 3, "rounds": 2, "ceiling_pool_rate": 35_000,
    "w1_events": 50_000, "w2_events": 10_000, "w2_subscriptions": 3,
    "w3_rate": 500, "w3_seconds": 30, "w3_warm_seconds": 3, "w3_clients": 4,
    "h_seconds": 10, "h_rounds": 2, "h_clients": 8, "h_accounts": 100_000,
    "idle_seconds": 30,
    "drain_events": 100_000, "drain_w1_small_events": 10_000,
    "callgrind_events": (2_000, 4_000), "callgrind_timeout_s": 300,
    "soak_rate": 1_000, "soak_minutes": 10,
    "quiet_cores": 0.25, "quiet_samples": 2, "quiet_max_wait_s": 45, "quiet_budget_s": 180,
    "drain_timeout_s": 120, "deadline_s": 2_400, "reserve_s": 150,
}
QUICK = dict(FULL, **{
    "ceiling_seconds": 2, "ceiling_passes": 1, "rounds": 1, "ceiling_pool_rate": 35_000,
    "w1_events": 10_000, "w2_events": 3_000,
    "w3_seconds": 5, "w3_warm_seconds": 1,
    "h_seconds": 3, "h_rounds": 1, "h_accounts": 10_000,
    "idle_seconds": 5,
    "drain_events": 10_000, "drain_w1_small_events": 2_000,
    "callgrind_events": (1_000, 2_000), "callgrind_timeout_s": 120,
    "soak_rate": 200, "soak_minutes": 2,
    "quiet_samples": 1, "quiet_max_wait_s": 5, "quiet_budget_s": 20,
    "drain_timeout_s": 60, "deadline_s": 360, "reserve_s": 40,
})


class Interrupted(BaseException):
    pass


def _on_signal(signum, _frame):
    raise Interrupted(f"signal {signum}")


# --------------------------------------------------------------------------
# CPU and memory from /proc


def _proc_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, utime+stime, cutime+cstime) in clock ticks, for every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                text = f.read()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        # fields[0] is field 3 (state): ppid=4, utime=14, stime=15, cutime=16, cstime=17
        table[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14]))
    return table


def _tree_ticks(table, root: int | None) -> int:
    """CPU of root and all its descendants, including children they already reaped."""
    if root is None or root not in table:
        return 0
    children = collections.defaultdict(list)
    for pid, (ppid, _, _) in table.items():
        children[ppid].append(pid)
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        _, own, reaped = table[pid]
        total += own + reaped
        stack.extend(children.get(pid, ()))
    return total


def _machine_ticks() -> tuple[int, int]:
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (parts + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def proc_status_kib(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Snapshot:
    """CPU counters of the machine and of each party at one instant."""

    def __init__(self, bench: "Bench"):
        table = _proc_table()
        self.t = time.time()
        self.busy, self.total = _machine_ticks()
        self.pg = _tree_ticks(table, bench.postmaster_pid)
        master = table.get(bench.postmaster_pid or -1)
        self.pg_master = master[1] + master[2] if master else 0
        self.pg_children = {pid: own + reaped for pid, (ppid, own, reaped) in table.items()
                            if ppid == bench.postmaster_pid}
        self.ours = _tree_ticks(table, os.getpid())
        self.relay = _tree_ticks(table, bench.relay.pid if bench.relay and bench.relay.poll() is None else None)
        self.nginx = _tree_ticks(table, bench.nginx.pid if bench.nginx and bench.nginx.poll() is None else None)

    @staticmethod
    def usage(a: "Snapshot", b: "Snapshot", roles: dict[int, str] | None = None) -> dict:
        """Cores each party used between a and b. With roles (PostgreSQL backend pid ->
        who it serves, read at b), PostgreSQL's CPU is split by client too."""
        dt = max(b.t - a.t, 1e-6)

        def cores(ticks):
            return round(ticks / HZ / dt, 3)

        relay = b.relay - a.relay if b.relay >= a.relay else None
        ours = b.ours - a.ours
        nginx = b.nginx - a.nginx
        machine = b.busy - a.busy
        return {
            "seconds": round(dt, 3),
            "relay_cpu_cores": cores(relay) if relay is not None else None,
            "postgres_cpu_cores": cores(b.pg - a.pg),
            "receiver_cpu_cores": cores(nginx),
            "load_tools_cpu_cores": cores(ours - nginx - (relay or 0)),
            "machine_busy_cores": cores(machine),
            "foreign_cpu_cores": cores(max(0, machine - ours - (b.pg - a.pg))),
            **({"postgres_cpu_cores_by_client": Snapshot._by_client(a, b, roles, cores)} if roles is not None else {}),
        }

    @staticmethod
    def _by_client(a: "Snapshot", b: "Snapshot", roles: dict[int, str], cores) -> dict:
        by: dict[str, int] = collections.defaultdict(int)
        ended = "ended sessions (load tools) + postmaster"
        for pid, ticks in b.pg_children.items():
            # A backend not in pg_stat_activity any more was ending when b was taken.
            by[roles.get(pid, ended)] += ticks - a.pg_children.get(pid, 0)
        gone = sum(ticks for pid, ticks in a.pg_children.items() if pid not in b.pg_children)
        by[ended] += b.pg_master - a.pg_master - gone
        return {k: cores(v) for k, v in sorted(by.items(), key=lambda kv: -kv[1]) if v > 0}


# --------------------------------------------------------------------------
# PostgreSQL through psql


class Psql:
    """One psql session fed through a pipe: one backend for all the bench's own queries."""

    def __init__(self, env: dict):
        self.proc = subprocess.Popen(
            [*psql_command(stop_on_error=False), *ROWS_FORMAT, "-P", "pager=off"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=env, bufsize=1)
        self.counter = 0
        self.query("SET client_min_messages = error")
        # The bench's own polling stays out of the per-delivery buffer counts (costs.py).
        self.query("SET pg_stat_statements.track = 'none'")

    def query(self, sql: str) -> list[list[str]]:
        self.counter += 1
        marker = f"__bench_done_{self.counter}__"
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(sql.strip().rstrip(";") + ";\n\\echo " + marker + "\n")
        self.proc.stdin.flush()
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise BenchError(f"psql ended while running: {sql[:200]}")
            line = line.rstrip("\n")
            if line == marker:
                break
            lines.append(line)
        errors = [x for x in lines if re.match(r"^(psql:|ERROR:|FATAL:)", x)]
        if errors:
            raise BenchError(f"SQL failed: {sql[:300]}\n" + "\n".join(lines))
        return rows(lines)

    def value(self, sql: str) -> str:
        rows = self.query(sql)
        return rows[0][0] if rows and rows[0] else ""

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin
                self.proc.stdin.write("\\q\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


# --------------------------------------------------------------------------


def parse_wrk(text: str) -> dict:
    out: dict = {}
    if m := re.search(r"(\d+) requests in ([\d.]+)(m?s)", text):
        seconds = float(m.group(2)) / (1000 if m.group(3) == "ms" else 1)
        out["requests"], out["seconds"] = int(m.group(1)), seconds
        out["rate"] = round(int(m.group(1)) / seconds, 1) if seconds else None
    if m := re.search(r"Latency\s+([\d.]+)(us|ms|s)", text):
        out["latency_avg_ms"] = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return out


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.cfg = dict(QUICK if self.quick else FULL)
        # Every phase runs the relay at its own defaults unless told otherwise.
        self.cfg["max_in_flight"] = os.environ.get("BENCH_MAX_IN_FLIGHT", "")
        self.cfg["poll_interval"] = os.environ.get("BENCH_POLL_INTERVAL", "")
        if os.environ.get("BENCH_DEADLINE_S"):  # for testing; scripts/bench's own time limit still applies
            self.cfg["deadline_s"] = float(os.environ["BENCH_DEADLINE_S"])
        if os.environ.get("BENCH_ROUNDS"):
            self.cfg["rounds"] = max(1, min(2, int(os.environ["BENCH_ROUNDS"])))
        if os.environ.get("BENCH_QUIET_CORES"):
            self.cfg["quiet_cores"] = float(os.environ["BENCH_QUIET_CORES"])
        if os.environ.get("BENCH_QUIET_MAX_WAIT"):
            self.cfg["quiet_max_wait_s"] = float(os.environ["BENCH_QUIET_MAX_WAIT"])
        self.deadline = STARTED + self.cfg["deadline_s"]
        self.quiet_budget = self.cfg["quiet_budget_s"]
        self.work = Path(args.workdir)
        self.relay_bin = args.relay
        self.env = dict(os.environ)
        self.pidfile = self.work / "pids"
        self.postmaster_pid = self._postmaster_pid()
        self.nginx: subprocess.Popen | None = None
        self.relay: subprocess.Popen | None = None
        self.relay_started_at = 0.0
        self.children: list[subprocess.Popen] = []
        self.port = 0
        self.db: Psql | None = None
        self.results: dict = {}

    # ---- process bookkeeping -------------------------------------------------

    def _postmaster_pid(self) -> int | None:
        pg_dir = os.environ.get("OUTBOX_DEV_PG_DIR")
        for name in ("data/postmaster.pid", "postmaster.pid.saved"):
            try:
                return int(Path(pg_dir, name).read_text().split()[0])
            except (OSError, ValueError, TypeError, IndexError):
                continue
        return None

    def _register(self, proc: subprocess.Popen, name: str) -> subprocess.Popen:
        self.children.append(proc)
        with open(self.pidfile, "a") as f:
            f.write(f"{proc.pid} {name}\n")
        return proc

    def _spawn(self, argv, name, **kwargs) -> subprocess.Popen:
        return self._register(subprocess.Popen(argv, env=kwargs.pop("env", self.env), **kwargs), name)

    def session(self) -> Psql:
        """Another psql session of the bench's own, stopped at cleanup if still open."""
        session = Psql(self.env)
        self._register(session.proc, "psql-session")
        return session

    @contextlib.contextmanager
    def target(self, relay_bin: str, env: dict):
        """Points the bench at another relay binary and database (baseline.py)."""
        saved = self.relay_bin, self.env, self.db
        self.relay_bin, self.env = relay_bin, env
        try:
            self.db = self.session()
            yield
        finally:
            if self.db is not saved[2]:
                self.db.close()
            self.relay_bin, self.env, self.db = saved

    def _run(self, argv, name, timeout, **kwargs) -> tuple[int, str]:
        """Runs a load tool to the end (bounded), returns (exit code, output)."""
        out_path = self.work / f"{name}.out"
        with open(out_path, "w") as out:
            proc = self._spawn(argv, name, stdout=out, stderr=subprocess.STDOUT, **kwargs)
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                processes.stop(proc, signal.SIGTERM, 5)
                raise BenchError(f"{name} did not finish within {timeout:.0f}s")
        return code, out_path.read_text()

    def _run_sampled(self, argv, name, timeout) -> tuple[int, str, dict]:
        """Like _run for pgbench, sampling what its PostgreSQL sessions wait on every
        0.2 s (pg_stat_activity): fractions of session samples per wait, 'CPU' when
        running, 'idle' when waiting for pgbench. "Lock:object" is the lock every
        NOTIFYing transaction takes at commit (one at a time, over its WAL flush)."""
        assert self.db
        out_path = self.work / f"{name}.out"
        counts: collections.Counter = collections.Counter()
        with open(out_path, "w") as out:
            proc = self._spawn(argv, name, stdout=out, stderr=subprocess.STDOUT)
            deadline = time.time() + timeout
            while proc.poll() is None:
                if time.time() > deadline:
                    processes.stop(proc, signal.SIGTERM, 5)
                    raise BenchError(f"{name} did not finish within {timeout:.0f}s")
                for label, n in self.db.query(
                        "SELECT CASE WHEN state LIKE 'idle%' THEN 'idle' WHEN wait_event IS NULL THEN 'CPU' "
                        "ELSE wait_event_type || ':' || wait_event END, count(*) FROM pg_stat_activity "
                        "WHERE application_name = 'pgbench' AND backend_type = 'client backend' GROUP BY 1"):
                    counts[label] += int(n)
                time.sleep(0.2)
        total = sum(counts.values())
        waits = {k: round(v / total, 3) for k, v in counts.most_common()} if total else {}
        return proc.returncode, out_path.read_text(), waits

    def stop_leftovers(self, since: int) -> None:
        """Stops what the last phase started and left running (the relay of w3 excepted):
        a phase that failed midway stops everything it started all the same."""
        for proc in self.children[since:]:
            if proc is not self.relay and proc.poll() is None:
                processes.stop(proc, signal.SIGTERM, 10)

    def time_needed(self, name: str) -> float:
        """Seconds a phase needs left before the deadline to be worth starting."""
        if name == "soak":
            return self.cfg["soak_minutes"] * 60 + 60
        return 60 if name.endswith("_again") or name in ("baseline", "callgrind") else 30

    def cleanup(self) -> None:
        if self.relay is not None:
            self.stop_relay()
        for proc in self.children:
            if proc.poll() is None:
                processes.stop(proc, signal.SIGTERM, 10)
        if self.db:
            self.db.close()

    # ---- quietness and time ----------------------------------------------------

    def time_left(self) -> float:
        return self.deadline - time.time()

    def wait_quiet(self, phase: str) -> dict:
        """Waits (bounded) until processes other than the bench's use < quiet_cores."""
        threshold = self.cfg["quiet_cores"]
        limit = max(0.0, min(self.cfg["quiet_max_wait_s"], self.quiet_budget, self.time_left() - self.cfg["reserve_s"]))
        start = time.time()
        samples: list[float] = []
        good = 0
        prev = Snapshot(self)
        while True:
            time.sleep(1.0)
            cur = Snapshot(self)
            foreign = Snapshot.usage(prev, cur)["foreign_cpu_cores"]
            prev = cur
            samples.append(foreign)
            good = good + 1 if foreign <= threshold else 0
            if good >= self.cfg["quiet_samples"]:
                quiet = True
                break
            if time.time() - start >= limit:
                quiet = False
                break
        waited = time.time() - start
        self.quiet_budget = max(0.0, self.quiet_budget - max(0.0, waited - self.cfg["quiet_samples"]))
        result = {
            "quiet": quiet, "waited_s": round(waited, 1), "threshold_cores": threshold,
            "foreign_cpu_cores_before": samples[-1], "loadavg_1m": round(os.getloadavg()[0], 2),
        }
        say(f"{phase}: machine {'quiet' if quiet else 'NOT quiet'} after {waited:.0f}s "
            f"(others use {samples[-1]:.2f} cores; load {result['loadavg_1m']})")
        return result

    # ---- nginx -----------------------------------------------------------------

    def start_nginx(self) -> None:
        ngx = self.work / "nginx"
        (ngx / "tmp").mkdir(parents=True, exist_ok=True)
        os.chmod(ngx / "tmp", 0o1777)
        self.receipts_log = ngx / "receipts.log"
        self.ceiling_log = ngx / "ceiling.log"
        for attempt in range(5):
            self.port = free_port()
            conf = ngx / "nginx.conf"
            conf.write_text(f"""# scripts/bench: the local webhook receiver. 204 for everything; logs
# receipt time (ms) and webhook-id. Relay traffic and wrk traffic log alike.
worker_processes 1;
daemon off;
pid {ngx}/nginx.pid;
error_log {ngx}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {ngx}/tmp/body;
    proxy_temp_path {ngx}/tmp/proxy;
    fastcgi_temp_path {ngx}/tmp/fastcgi;
    uwsgi_temp_path {ngx}/tmp/uwsgi;
    scgi_temp_path {ngx}/tmp/scgi;
    client_body_buffer_size 64k;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    log_format receipts '$msec $uri $http_webhook_id';
    server {{
        listen 127.0.0.1:{self.port} backlog=4096;
        location / {{
            access_log {self.receipts_log} receipts buffer=256k flush=1s;
            return 204;
        }}
        location /ceiling {{
            access_log {self.ceiling_log} receipts buffer=256k flush=1s;
            return 204;
        }}
    }}
}}
""")
            with open(ngx / "stderr.log", "a") as err:
                proc = self._spawn(["nginx", "-c", str(conf), "-p", str(ngx), "-e", str(ngx / "error.log")],
                                   "nginx", stdout=err, stderr=subprocess.STDOUT)
            deadline = time.time() + 10
            while time.time() < deadline:
                if proc.poll() is not None:
                    break
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                    self.nginx = proc
                    say(f"nginx (pid {proc.pid}) on 127.0.0.1:{self.port}")
                    return
                except OSError:
                    time.sleep(0.05)
            processes.stop(proc, signal.SIGTERM, 5)
        raise BenchError("nginx did not start: " + (ngx / "error.log").read_text()[-2000:])

    def flush_receipts(self) -> None:
        """Makes nginx write its buffered access logs (USR1 reopens, which flushes)."""
        time.sleep(0.3)
        if self.nginx and self.nginx.poll() is None:
            os.kill(self.nginx.pid, signal.SIGUSR1)
        time.sleep(0.7)

    def receipts(self, prefix: str) -> list[tuple[float, str, str]]:
        rows = []
        with open(self.receipts_log) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[1].startswith(prefix):
                    rows.append((float(parts[0]), parts[1], parts[2]))
        return rows

    # ---- the relay ------------------------------------------------------------

    def start_relay(self, name: str, settings: dict | None = None, command: list[str] | None = None) -> None:
        """Starts the relay; `settings` adds environment variables, `command` replaces
        the binary (callgrind.py runs a copy under valgrind)."""
        env = dict(self.env,
                   OUTBOX_ALLOW_PRIVATE_NETWORKS="true",
                   OUTBOX_ADMIN_LISTEN="127.0.0.1:0",
                   OUTBOX_LOG_FORMAT="json",
                   **(settings or {}))
        if self.cfg["max_in_flight"]:
            env["OUTBOX_MAX_IN_FLIGHT"] = self.cfg["max_in_flight"]
        if self.cfg["poll_interval"]:
            env["OUTBOX_POLL_INTERVAL"] = self.cfg["poll_interval"]
        self.relay_log = self.work / f"relay-{name}.log"
        with open(self.relay_log, "wb") as out:
            self.relay_started_at = time.time()
            self.relay = self._spawn([*(command or [self.relay_bin]), "run"], f"relay-{name}", env=env,
                                     stdout=out, stderr=subprocess.STDOUT)
        say(f"{name}: relay started (pid {self.relay.pid})")

    def wait_relay_ready(self, timeout: float = 20) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.relay
            if self.relay.poll() is not None:
                raise BenchError(f"the relay exited ({self.relay.returncode}): " + self.relay_log.read_text()[-2000:])
            if '"relay started"' in self.relay_log.read_text(errors="replace"):
                time.sleep(0.5)  # its LISTEN connection comes up right after
                return
            time.sleep(0.05)
        raise BenchError("the relay did not start: " + self.relay_log.read_text()[-2000:])

    def stop_relay(self, grace: float = 30) -> dict:
        proc, self.relay = self.relay, None
        if proc is None:
            return {}
        started = time.time()
        code = processes.stop(proc, signal.SIGTERM, grace)
        errors = [line for line in self.relay_log.read_text(errors="replace").splitlines()
                  if '"level":"error"' in line or '"level":"critical"' in line]
        return {"exit_code": code, "stop_seconds": round(time.time() - started, 2),
                "error_log_lines": len(errors), "first_errors": errors[:3]}

    def relay_memory(self) -> dict:
        pid = self.relay.pid if self.relay else None
        if pid is None:
            return {}
        hwm, rss = proc_status_kib(pid, "VmHWM"), proc_status_kib(pid, "VmRSS")
        return {"relay_peak_rss_mib": round(hwm / 1024, 1) if hwm else None,
                "relay_rss_mib": round(rss / 1024, 1) if rss else None}

    def reset_relay_peak(self) -> bool:
        """Resets VmHWM (Linux clear_refs 5) so a phase's peak is its own."""
        try:
            assert self.relay
            with open(f"/proc/{self.relay.pid}/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def pg_roles(self) -> dict[int, str]:
        """PostgreSQL process -> whom it serves (application_name) or what it is."""
        assert self.db
        roles = {}
        for pid, label in self.db.query(
                "SELECT pid, CASE WHEN backend_type = 'client backend' "
                "THEN coalesce(nullif(application_name, ''), 'client') ELSE backend_type END FROM pg_stat_activity"):
            roles[int(pid)] = "bench (psql)" if label == "psql" else label
        return roles

    def snapshot(self) -> Snapshot:
        return Snapshot(self)

    def usage_since(self, a: Snapshot, b: Snapshot | None = None) -> dict:
        return Snapshot.usage(a, b or Snapshot(self), self.pg_roles())

    # ---- data -------------------------------------------------------------------

    def outbox_tables(self) -> str:
        """The outbox's tables (partitioned parents, not their partitions), for VACUUM."""
        assert self.db
        return self.db.value("SELECT string_agg(c.oid::regclass::text, ', ') FROM pg_class AS c "
                             "WHERE c.relnamespace = 'outbox'::regnamespace AND c.relkind IN ('r', 'p') "
                             "AND NOT c.relispartition")

    def truncate_work(self) -> None:
        """Empties events, deliveries and attempts, in either storage: outbox.deliveries is
        a table, or a view over outbox.delivery_queue and the (partitioned) events."""
        assert self.db
        tables = self.db.value(
            "SELECT string_agg(c.oid::regclass::text, ', ') FROM pg_class AS c WHERE c.relkind IN ('r', 'p') AND c.oid "
            "IN (to_regclass('outbox.events'), to_regclass('outbox.attempts'), to_regclass('outbox.deliveries'), "
            "to_regclass('outbox.delivery_queue'))")
        self.db.query(f"TRUNCATE {tables}")

    def reset_data(self) -> None:
        assert self.db
        self.truncate_work()
        self.db.query("DELETE FROM outbox.subscriptions")
        self.db.query("VACUUM ANALYZE outbox.subscriptions, outbox.subscription_state")

    def subscribe(self, name: str, path: str, pattern: str = "*") -> str:
        assert self.db
        self.db.query(f"SELECT outbox.subscribe('{name}', 'http://127.0.0.1:{self.port}{path}', ARRAY['{pattern}'])")
        return path

    def insert_events(self, count: int, event_type: str, first: int = 1, sessions: int = 2) -> float:
        """Inserts `count` events in `sessions` parallel INSERT … SELECT statements."""
        started = time.time()
        procs = []
        step = math.ceil(count / sessions)
        for i in range(sessions):
            lo, hi = first + i * step, min(first + count - 1, first + (i + 1) * step - 1)
            if lo > hi:
                continue
            sql = (f"INSERT INTO outbox.events (event_type, payload) SELECT '{event_type}', "
                   f"{PAYLOAD_SQL.format(g='g')} FROM generate_series({lo}, {hi}) AS g")
            procs.append(self._spawn([*psql_command(), "-c", sql], "psql-insert",
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        for proc in procs:
            _, err = proc.communicate(timeout=max(60, self.time_left()))
            if proc.returncode != 0:
                raise BenchError(f"inserting events failed: {err.decode(errors='replace')}")
        return time.time() - started

    def settle(self) -> None:
        """Vacuum and checkpoint so no phase pays for the previous one's writes."""
        assert self.db
        self.db.query(f"VACUUM ANALYZE {self.outbox_tables()}")
        self.db.query("CHECKPOINT")

    def outstanding(self) -> int:
        assert self.db
        return int(self.db.value("SELECT count(*) FROM outbox.deliveries WHERE status IN ('pending', 'delivering')"))

    def wait_drained(self, timeout: float) -> tuple[bool, float]:
        """Waits until no delivery is pending or delivering; returns (drained, when).
        Counting can be dear (outbox.deliveries may be a view that computes the unread
        backlog), so it waits ten times as long as a count took, at least 0.2 s: the
        bench's polling takes at most a tenth of a core from the relay."""
        deadline = time.time() + max(5.0, min(timeout, self.time_left() - 30))
        while True:
            started = time.time()
            if self.outstanding() == 0:
                return True, time.time()
            if time.time() >= deadline:
                return False, time.time()
            if self.relay is not None and self.relay.poll() is not None:
                raise BenchError(f"the relay exited ({self.relay.returncode}): " + self.relay_log.read_text()[-2000:])
            time.sleep(max(0.2, 10 * (time.time() - started)))

    def status_counts(self) -> dict:
        assert self.db
        return {row[0]: int(row[1]) for row in self.db.query(
            "SELECT status, count(*) FROM outbox.deliveries GROUP BY status")}

    def account(self, prefix: str, paths: list[str], event_type: str) -> tuple[dict, list, dict]:
        """expected/delivered/missing/duplicates of this phase's `event_type` events at
        `paths`, from nginx's log and the DB. Receipts of other events in the database
        (a warm-up) are left out; receipts of ids that are not there are `unexpected`."""
        assert self.db
        events = self.db.query("SELECT event_id, event_type FROM outbox.events")
        ids = {event_id for event_id, kind in events if kind == event_type}
        known = {event_id for event_id, _ in events}
        tally, rows, first_receipt = self.account_ids(prefix, paths, ids, ignore=known - ids)
        status = self.status_counts()
        tally["db_succeeded"] = status.get("succeeded", 0)
        tally["db_not_succeeded"] = sum(v for k, v in status.items() if k != "succeeded")
        return tally, rows, first_receipt

    def account_ids(self, prefix: str, paths: list[str], ids: set[str],
                    ignore: set[str] = frozenset()) -> tuple[dict, list, dict]:
        """The tally of receipts under `prefix` against every (path, id): what arrived,
        what is missing, what arrived twice; receipts of ids in `ignore` are left out.
        Returns (tally, the expected receipts, first receipt time per (path, id))."""
        self.flush_receipts()
        expected = {(path, event_id) for path in paths for event_id in ids}

        def read():
            return [r for r in self.receipts(prefix) if r[2] not in ignore]

        rows = read()
        if len({(u, i) for _, u, i in rows} & expected) < len(expected):
            time.sleep(1.5)  # a last buffer may still be on its way
            self.flush_receipts()
            rows = read()
        counts = collections.Counter((u, i) for _, u, i in rows)
        seen = set(counts)
        first_receipt: dict = {}
        for t, u, i in rows:
            if (u, i) not in first_receipt or t < first_receipt[(u, i)]:
                first_receipt[(u, i)] = t
        tally = {
            "expected": len(expected),
            "delivered": len(seen & expected),
            "missing": len(expected - seen),
            "duplicates": sum(c - 1 for key, c in counts.items() if key in expected),
            "unexpected": sum(c for key, c in counts.items() if key not in expected),
        }
        return tally, [r for r in rows if (r[1], r[2]) in expected], first_receipt

    # ---- phases -------------------------------------------------------------------

    # ---- the ceiling ------------------------------------------------------------

    def _ceiling_scripts(self) -> None:
        """The wrk Lua script (a webhook-sized POST) and the pgbench claim/record loop."""
        assert self.db
        sample = self.db.value(f"SELECT ({PAYLOAD_SQL.format(g='g')})::text FROM (SELECT 424242 AS g) AS s")
        body = '{"type":"bench.ceiling","timestamp":"2026-01-01T00:00:00.000000Z","data":' + sample + "}"
        self.ceiling_body_bytes = len(body.encode())
        self.ceiling_lua = self.work / "post.lua"
        self.ceiling_lua.write_text(f"""-- A webhook-sized POST like the relay's (Standard Webhooks headers, JSON body).
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["content-type"] = "application/json"
wrk.headers["webhook-id"] = "0b6f5c1e-8d3a-4c2e-9f51-6a7d2e4b8c90"
wrk.headers["webhook-timestamp"] = "1767225600"
wrk.headers["webhook-signature"] = "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="
wrk.headers["user-agent"] = "outbox-relay/bench"
local pause = tonumber(os.getenv("BENCH_WRK_DELAY_MS") or "0")
if pause > 0 then
    function delay() return pause end
end
""")
        self.ceiling_sql = self.work / "claim_record.sql"
        n = ":n::integer"
        self.ceiling_sql.write_text(f"""-- The relay's hot path (sql/0010_delivery.sql): claim a batch (new events read
-- from the subscription's cursor, inserted into the queue leased), then record
-- every attempt as a 204 success with the endpoint results, in the relay's two
-- statements. Two clients: one claims while the other records. A claim that
-- finds nothing (the other client holds the subscription's claim lock) waits
-- 0.5 ms instead of spinning, as the relay waits for a wake-up.
SELECT coalesce(array_agg(delivery_id), '{{}}') AS ids, coalesce(array_agg(event_id), '{{}}') AS events,
       coalesce(array_agg(subscription_id), '{{}}') AS subs, coalesce(array_agg(attempts + 1), '{{}}') AS tries,
       count(*) AS n, coalesce(min(subscription_id), 0) AS sub
  FROM outbox.claim_deliveries(:batch, :max_in_flight, 'bench-ceiling', interval '30 seconds') \\gset
\\if :n = 0
\\sleep 500 us
\\else
SELECT * FROM outbox.record_results(
    owner => 'bench-ceiling', delivery_ids => :ids::bigint[], event_ids => :events::text[],
    subscription_ids => :subs::bigint[], attempt_numbers => :tries::integer[],
    outcomes => array_fill('succeeded'::text, ARRAY[{n}]), next_attempt_ats => array_fill(NULL::timestamptz, ARRAY[{n}]),
    status_codes => array_fill(204, ARRAY[{n}]), errors => array_fill(NULL::text, ARRAY[{n}]),
    started_ats => array_fill(now(), ARRAY[{n}]), durations_ms => array_fill(1.0::double precision, ARRAY[{n}]),
    excerpts => array_fill(NULL::text, ARRAY[{n}]),
    endpoint_ids => ARRAY[:sub::bigint], last_success_ats => ARRAY[now()], trailing_failures => ARRAY[0],
    last_failure_ats => ARRAY[NULL::timestamptz], failure_threshold => 10, base_cooldown => interval '30 seconds',
    max_cooldown => interval '10 minutes', disable_after => interval '5 days', gone_ids => '{{}}'::bigint[],
    gone_reason => '');
\\endif
""")

    CEILING_WRK_CONNECTIONS = 100
    CEILING_DB_CLIENTS = 2
    CEILING_BATCH = 200
    CEILING_PAUSE_MS = 10

    def _wrk(self, connections: int, delay_ms: int, name: str) -> tuple[subprocess.Popen, Path]:
        out_path = self.work / f"{name}.out"
        env = dict(self.env, BENCH_WRK_DELAY_MS=str(delay_ms))
        with open(out_path, "w") as out:
            proc = self._spawn(["wrk", "-t1", f"-c{connections}", f"-d{self.cfg['ceiling_seconds']}s", "--timeout", "5s",
                                "-s", str(self.ceiling_lua), f"http://127.0.0.1:{self.port}/ceiling"],
                               name, env=env, stdout=out, stderr=subprocess.STDOUT)
        return proc, out_path

    def _claim_loop(self, name: str) -> dict:
        assert self.db
        seconds = self.cfg["ceiling_seconds"]
        before = int(self.db.value("SELECT count(*) FROM outbox.deliveries WHERE status = 'succeeded'"))
        started = time.time()
        clients, batch = self.CEILING_DB_CLIENTS, self.CEILING_BATCH
        # jit off: with a backlog this size the claim's plan costs more than jit_above_cost
        # and PostgreSQL would JIT-compile it on every call (~10 ms), which a W1 backlog
        # of 50,000 does not trigger; see the report.
        code, out = self._run(["pgbench", "-n", "-M", "prepared", "-f", str(self.ceiling_sql), "-D", f"batch={batch}",
                               "-D", f"max_in_flight={batch * clients * 4}", "-c", str(clients),
                               "-j", str(clients), "-T", str(seconds)], name, timeout=seconds + 60,
                              env=dict(self.env, PGOPTIONS="-c jit=off"))
        elapsed = time.time() - started
        if code != 0:
            raise BenchError(f"pgbench claim/record failed: {out[-1500:]}")
        after = int(self.db.value("SELECT count(*) FROM outbox.deliveries WHERE status = 'succeeded'"))
        left = int(self.db.value("SELECT count(*) FROM outbox.deliveries WHERE status = 'pending'"))
        return {"rate": round((after - before) / elapsed, 1), "completed": after - before,
                "seconds": round(elapsed, 2), "ran_dry": left == 0, "pgbench": parse_pgbench(out)}

    def _fresh_pool(self, rate_guess: float) -> dict:
        """A fresh backlog for one claim/record run, as W1 starts from: empty tables,
        then 1.5 x what the loop could take at rate_guess, vacuumed and checkpointed."""
        self.reset_data()
        self.subscribe("ceiling", "/ceiling-db")
        need = int(rate_guess * self.cfg["ceiling_seconds"] * 1.5)
        seconds = self.insert_events(need, "bench.ceiling")
        self.settle()
        return {"inserted": need, "insert_seconds": round(seconds, 2)}

    def _http_alone(self, tag: str) -> dict:
        quiet = self.wait_quiet(f"{tag}/http")
        a = Snapshot(self)
        proc, out_path = self._wrk(self.CEILING_WRK_CONNECTIONS, 0, f"wrk-alone-{tag}")
        proc.wait(timeout=self.cfg["ceiling_seconds"] + 30)
        http = parse_wrk(out_path.read_text())
        http.update({"usage": self.usage_since(a), "connections": self.CEILING_WRK_CONNECTIONS, "quiet": quiet})
        open(self.ceiling_log, "w").close()
        say(f"{tag}: HTTP alone {http.get('rate')} req/s")
        return http

    def _ceiling_round(self, tag: str) -> dict:
        """The claim/record loop alone, then with wrk at the same time (throttled)."""
        cfg = self.cfg
        round_: dict = {"pool": [self._fresh_pool(cfg["ceiling_pool_rate"])]}
        quiet = self.wait_quiet(f"{tag}/db")
        a = Snapshot(self)
        dbr = self._claim_loop(f"pgbench-claim-alone-{tag}")
        dbr.update({"usage": self.usage_since(a), "quiet": quiet,
                    "clients": self.CEILING_DB_CLIENTS, "batch_size": self.CEILING_BATCH})
        round_["db_alone"] = dbr
        say(f"{tag}: claim/record alone {dbr['rate']} deliveries/s{' (ran dry!)' if dbr['ran_dry'] else ''}")

        # Both at once. wrk's rate ~ connections / (pause + round trip): aim it at the
        # DB's rate alone. If wrk fell short while the DB kept up, add connections
        # and try again at the same target; if the DB fell behind, aim between the
        # two. A few passes; the best min(HTTP, DB) of a pass is the combined rate.
        passes = []
        target = dbr["rate"]
        connections = max(1, math.ceil(target * (self.CEILING_PAUSE_MS + 1.5) / 1000))
        for i in range(cfg["ceiling_passes"]):
            if i > 0 and self.time_left() < cfg["reserve_s"]:
                break
            best = max([dbr["rate"]] + [p["db_rate"] for p in passes])
            round_["pool"].append(self._fresh_pool(max(best * 1.2, cfg["ceiling_pool_rate"] / 2)))
            quiet = self.wait_quiet(f"{tag}/combined#{i + 1}")
            a = Snapshot(self)
            wproc, wout = self._wrk(connections, self.CEILING_PAUSE_MS, f"wrk-combined-{tag}-{i + 1}")
            d = self._claim_loop(f"pgbench-claim-combined-{tag}-{i + 1}")
            wproc.wait(timeout=cfg["ceiling_seconds"] + 30)
            h = parse_wrk(wout.read_text())
            usage = self.usage_since(a)
            open(self.ceiling_log, "w").close()
            http_rate = h.get("rate") or 0
            combined = min(http_rate, d["rate"])
            passes.append({"target_rate": round(target, 1), "wrk_connections": connections,
                           "wrk_delay_ms": self.CEILING_PAUSE_MS, "http_rate": http_rate, "http": h,
                           "db_rate": d["rate"], "db": d, "combined": round(combined, 1), "usage": usage,
                           "quiet": quiet})
            say(f"{tag}: together HTTP {http_rate} req/s + claim/record {d['rate']}/s -> {combined:.0f}/s "
                f"(others used {usage['foreign_cpu_cores']} cores)")
            if not http_rate:
                break
            db_kept_up = d["rate"] >= 0.97 * http_rate
            if db_kept_up and http_rate >= 0.97 * target:
                break  # both sustained the DB's own rate: that is as high as it goes
            if not db_kept_up:
                target = (http_rate + d["rate"]) / 2
            connections = max(1, math.ceil(connections * target / http_rate))
        round_["combined_passes"] = passes
        return round_

    def phase_ceiling(self) -> dict:
        self._ceiling_scripts()
        result: dict = {
            "method": ("HTTP: wrk -t1 -c100 keep-alive, webhook-sized POST; DB: pgbench -c2 -M prepared looping "
                       "claim_deliveries(200) then record_results (two statements, like "
                       "the relay; jit off; each run on a fresh, vacuumed backlog); combined: both at once, wrk throttled (Lua delay) to about the DB's rate, "
                       "min of the two; each number is the best of its runs (noise only slows things down)"),
            "body_bytes": self.ceiling_body_bytes, "seconds_per_run": self.cfg["ceiling_seconds"],
            "http_runs": [self._http_alone("ceiling")], "rounds": [self._ceiling_round("ceiling")],
        }
        self._ceiling_totals(result)
        return result

    def phase_ceiling_again(self) -> dict:
        """A second ceiling round at the end of the run: on a noisy machine the best
        of two measurements far apart in time is the better estimate."""
        ceiling = self.results["phases"].get("ceiling")
        if not ceiling:
            raise BenchError("no first ceiling round to add to")
        ceiling["http_runs"].append(self._http_alone("ceiling-again"))
        ceiling["rounds"].append(self._ceiling_round("ceiling-again"))
        self._ceiling_totals(ceiling)
        return {"see": "phases.ceiling (round 2)"}

    @staticmethod
    def _ceiling_totals(result: dict) -> None:
        http_rate = max((r.get("rate") or 0 for r in result["http_runs"]), default=0)
        db_rate = max((r["db_alone"]["rate"] for r in result["rounds"]), default=0)
        passes = [p for r in result["rounds"] for p in r["combined_passes"]]
        result["http_alone"] = max(result["http_runs"], key=lambda r: r.get("rate") or 0)
        result["db_alone"] = max((r["db_alone"] for r in result["rounds"]), key=lambda r: r["rate"])
        result["combined_passes"] = passes
        result["model_rate"] = round(1 / (1 / http_rate + 1 / db_rate), 1) if http_rate and db_rate else None
        measured = max((p["combined"] for p in passes), default=None)
        result["combined_rate"] = measured if measured else result["model_rate"]
        result["combined_source"] = "measured" if measured else "model"

    def _throughput_phase(self, name: str, events: int, subscriptions: int, during=None) -> dict:
        """W1/W2: a backlog of `events` x `subscriptions`, then the relay from its start
        until all is recorded. `name` is also the URL path and the event type. `during`,
        a context manager, is entered once the backlog is in and left when it is drained
        (drain.py holds a snapshot open with it)."""
        assert self.db
        self.reset_data()
        paths = [self.subscribe(f"{name}-{i}", f"/{name}/{i}") for i in range(subscriptions)]
        insert_seconds = self.insert_events(events, f"bench.{name}")
        self.settle()
        expected = int(self.db.value("SELECT count(*) FROM outbox.deliveries"))
        quiet = self.wait_quiet(name)
        with during or contextlib.nullcontext():
            costs = CostWindow(self.db)
            a = Snapshot(self)
            self.start_relay(name)
            t0 = self.relay_started_at
            drained, done_at = self.wait_drained(self.cfg["drain_timeout_s"])
            usage = self.usage_since(a)
            memory = self.relay_memory()
            stop = self.stop_relay()
            costs.close()
        tally, rows, _ = self.account(f"/{name}/", paths, f"bench.{name}")
        times = sorted(t for t, _, _ in rows)
        result = {"events": events, "subscriptions": subscriptions, "insert_seconds": round(insert_seconds, 2),
                  "expected_deliveries_db": expected, "quiet": quiet, "drained": drained, **tally}
        if times:
            last, first = times[-1], times[0]
            result.update({
                "seconds_to_first_receipt": round(first - t0, 3),
                "seconds_to_last_receipt": round(last - t0, 3),
                "seconds_to_recorded": round(done_at - t0, 3),
                "rate": round(tally["delivered"] / max(last - t0, 1e-3), 1),
                "steady_rate": round((len(times) - 1) / (last - first), 1) if last > first else None,
            })
        result["usage"] = usage
        result["cpu_ms_per_delivery"] = self.cpu_per_delivery(usage, tally["delivered"])
        result["costs"] = costs.per_delivery(tally["delivered"])
        result.update(memory)
        result["relay_stop"] = stop
        say(f"{name}: {tally['delivered']}/{tally['expected']} delivered, {result.get('rate')} deliveries/s, "
            f"relay {result['usage']['relay_cpu_cores']} cores, PG {result['usage']['postgres_cpu_cores']} cores, "
            f"{result['costs']['buffer_touches_per_delivery']} buffers and "
            f"{result['costs']['wal_bytes_per_delivery']} WAL bytes per delivery")
        return result

    @staticmethod
    def cpu_per_delivery(usage: dict, delivered: int) -> dict:
        """CPU milliseconds per delivery, per party."""
        if not delivered:
            return {}
        seconds = usage["seconds"]
        out = {}
        for key, name in (("relay_cpu_cores", "relay"), ("postgres_cpu_cores", "postgres"),
                          ("receiver_cpu_cores", "receiver")):
            if usage.get(key) is not None:
                out[name] = round(usage[key] * seconds * 1000 / delivered, 4)
        by_client = usage.get("postgres_cpu_cores_by_client", {})
        if "outbox-relay" in by_client:
            out["postgres_for_relay_sessions"] = round(by_client["outbox-relay"] * seconds * 1000 / delivered, 4)
        return out

    def phase_w1(self) -> dict:
        return self._throughput_phase("w1", self.cfg["w1_events"], 1)

    def phase_w2(self) -> dict:
        return self._throughput_phase("w2", self.cfg["w2_events"], self.cfg["w2_subscriptions"])

    def _repeat_throughput(self, name: str, subscriptions: int) -> dict:
        """A second run of W1/W2 at the end, next to the second ceiling round: the
        phase keeps its best rate, as the ceiling does (noise only slows things
        down), and the counts of every run."""
        first = self.results["phases"].get(name)
        if not first:
            raise BenchError(f"no first {name} run to add to")
        again = self._throughput_phase(f"{name}r2", first["events"], subscriptions)
        runs = first.pop("runs", None) or [dict(first)]
        runs.append(again)
        best = dict(max(runs, key=lambda r: r.get("rate") or 0))
        best["runs"] = [{k: r.get(k) for k in ("rate", "steady_rate", "expected", "delivered", "missing", "duplicates",
                                                "unexpected", "relay_peak_rss_mib", "quiet", "usage", "costs")} for r in runs]
        for key in ("expected", "delivered", "missing", "duplicates", "unexpected"):
            best[key] = sum(r.get(key) or 0 for r in runs)
        best["relay_peak_rss_mib"] = max(r.get("relay_peak_rss_mib") or 0 for r in runs)
        best["best_of_runs"] = len(runs)
        self.results["phases"][name] = best
        return {"see": f"phases.{name} (run 2)"}

    def phase_w1_again(self) -> dict:
        return self._repeat_throughput("w1", 1)

    def phase_w2_again(self) -> dict:
        return self._repeat_throughput("w2", self.cfg["w2_subscriptions"])

    def _publish_script(self, path: Path, event_type: str) -> Path:
        path.write_text(f"""\\set oid random(1, 1000000000)
SELECT outbox.publish('{event_type}', {PAYLOAD_SQL.format(g=':oid::bigint')});
""")
        return path

    def phase_w3(self) -> dict:
        cfg, db = self.cfg, self.db
        assert db
        self.reset_data()
        paths = [self.subscribe("w3-0", "/w3/0")]
        self.settle()
        self.start_relay("w3")
        self.wait_relay_ready()
        quiet = self.wait_quiet("w3")
        rate, seconds, clients = cfg["w3_rate"], cfg["w3_seconds"], cfg["w3_clients"]

        def produce(event_type: str, duration: int, name: str) -> dict:
            script = self._publish_script(self.work / f"{name}.sql", event_type)
            code, out, waits = self._run_sampled(
                ["pgbench", "-n", "-M", "prepared", "-f", str(script), "-c", str(clients),
                 "-j", "2", "--rate", str(rate), "-T", str(duration)], name, timeout=duration + 60)
            if code != 0:
                raise BenchError(f"the producer failed: {out[-1500:]}")
            return {**parse_pgbench(out), "session_waits": waits}

        produce("bench.w3warm", cfg["w3_warm_seconds"], "pgbench-w3-warmup")
        self.wait_drained(30)
        peak_reset = self.reset_relay_peak()
        a = Snapshot(self)
        producer = produce("bench.w3", seconds, "pgbench-w3")
        usage = self.usage_since(a)
        drained, _ = self.wait_drained(min(cfg["drain_timeout_s"], 60))
        memory = self.relay_memory()
        tally, _, first_receipt = self.account("/w3/", paths, "bench.w3")
        commits = db.query("SELECT event_id, extract(epoch FROM pg_xact_commit_timestamp(xmin)) "
                           "FROM outbox.events WHERE event_type = 'bench.w3'")
        latencies = sorted((first_receipt[(paths[0], eid)] - float(ts)) * 1000
                           for eid, ts in commits if ts and (paths[0], eid) in first_receipt)
        produced = len(commits)
        result = {
            "rate_target": rate, "seconds": seconds, "producer_clients": clients, "events": produced,
            "producer_rate": round(produced / seconds, 1), "producer": producer, "quiet": quiet,
            "drained": drained, **tally, "latency_samples": len(latencies),
            "latency_ms": {
                "p50": percentile(latencies, 50), "p90": percentile(latencies, 90),
                "p99": percentile(latencies, 99), "p999": percentile(latencies, 99.9),
                "max": latencies[-1] if latencies else None,
                "min": latencies[0] if latencies else None,
                "mean": round(sum(latencies) / len(latencies), 2) if latencies else None,
            },
            "latency_note": "receipt time is nginx $msec (1 ms resolution) minus pg_xact_commit_timestamp(xmin)",
            "usage": usage, "cpu_ms_per_delivery": self.cpu_per_delivery(usage, produced),
            **memory, "peak_rss_reset": peak_reset,
        }
        for key, value in result["latency_ms"].items():
            if isinstance(value, float):
                result["latency_ms"][key] = round(value, 2)
        lat = result["latency_ms"]
        say(f"w3: {produced} events at {result['producer_rate']}/s, latency p50 {lat['p50']} p99 {lat['p99']} "
            f"max {lat['max']} ms, relay {result['usage']['relay_cpu_cores']} cores")
        return result

    def phase_h(self) -> dict:
        cfg = self.cfg
        assert self.relay
        self.reset_data()
        paths = [self.subscribe("h-0", "/h/0")]
        host_transaction.prepare(self)
        self.settle()
        scripts = {
            "plain": host_transaction.script(self, None, "bench.h"),
            # Reference points for the cost: one more round trip; the event's row alone; the event with the
            # relay stopped (what the host transaction itself pays, without the deliveries competing for the cores).
            "one_more_statement": host_transaction.script(self, None, "bench.h", extra="SELECT 1;\n"),
            "event_row_alone": host_transaction.script(self, host_transaction.PLAIN_COPY, "bench.h"),
            "with_event_relay_stopped": host_transaction.script(self, "outbox.events", "bench.h"),
            "with_event": host_transaction.script(self, "outbox.events", "bench.h"),
        }
        runs = []
        peak_reset = self.reset_relay_peak()
        for rnd in range(cfg["h_rounds"]):
            if rnd > 0 and self.time_left() < cfg["reserve_s"]:
                break
            for kind, text in scripts.items():
                if kind == "with_event_relay_stopped":
                    self.stop_relay()
                elif self.relay is None:
                    self.start_relay("h")
                    self.wait_relay_ready()
                    peak_reset = self.reset_relay_peak()
                self.wait_drained(30)
                runs.append(host_transaction.measure(self, "h", kind, rnd + 1, text))
        drained, _ = self.wait_drained(60)
        memory = self.relay_memory()
        tally, _, _ = self.account("/h/", paths, "bench.h")
        tps = {kind: host_transaction.mean_tps(runs, kind) for kind in scripts}
        tps_plain = tps["plain"]

        def cost(kind):
            return round(1 - tps[kind] / tps_plain, 4) if tps_plain and tps[kind] else None

        return {
            "clients": cfg["h_clients"], "seconds_per_run": cfg["h_seconds"], "runs": runs,
            "tps_plain": tps_plain, "tps_with_event": tps["with_event"], "tps_cost": cost("with_event"),
            "reference_costs": {kind: cost(kind) for kind in
                                ("one_more_statement", "event_row_alone", "with_event_relay_stopped")},
            "drained": drained, **tally, **memory, "peak_rss_reset": peak_reset,
            "session_waits_with_event": self._mean_usage([r["session_waits"] for r in runs if r["kind"] == "with_event"]),
            "session_waits_plain": self._mean_usage([r["session_waits"] for r in runs if r["kind"] == "plain"]),
            "usage_with_event": self._mean_usage([r["usage"] for r in runs if r["kind"] == "with_event"]),
            "usage_plain": self._mean_usage([r["usage"] for r in runs if r["kind"] == "plain"]),
        }

    @staticmethod
    def _mean_usage(usages: list[dict]) -> dict:
        if not usages:
            return {}
        out: dict = {}
        keys = list(dict.fromkeys(k for u in usages for k in u))
        for key in keys:
            if any(isinstance(u.get(key), dict) for u in usages):
                out[key] = Bench._mean_usage([u.get(key) or {} for u in usages])
                continue
            values = [u[key] for u in usages if u.get(key) is not None]
            out[key] = round(sum(values) / len(values), 3) if values else None
        return out

    def phase_idle(self) -> dict:
        assert self.relay
        seconds = self.cfg["idle_seconds"]
        self.wait_drained(30)
        quiet = self.wait_quiet("idle")
        peak_reset = self.reset_relay_peak()
        a = Snapshot(self)
        time.sleep(seconds)
        usage = self.usage_since(a)
        result = {"seconds": seconds, "quiet": quiet, "usage": usage, **self.relay_memory(),
                  "peak_rss_reset": peak_reset,
                  "relay_cpu_percent_of_core": round(100 * usage["relay_cpu_cores"], 2)
                  if usage["relay_cpu_cores"] is not None else None}
        say(f"idle: relay {result['relay_cpu_percent_of_core']} % of a core, "
            f"PG {usage['postgres_cpu_cores']} cores")
        return result

    # ---- the run ---------------------------------------------------------------

    def environment(self) -> dict:
        assert self.db
        settings = {row[0]: row[1] for row in self.db.query(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', "
            "'full_page_writes', 'track_commit_timestamp', 'shared_buffers', 'max_wal_size', 'wal_level', "
            "'max_connections', 'checkpoint_timeout', 'shared_preload_libraries')")}
        try:
            model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
        except (OSError, StopIteration):
            model = platform.processor()
        try:
            mem_kib = int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal")))
        except (OSError, StopIteration):
            mem_kib = 0

        def git(*argv):
            try:
                return subprocess.run(["git", *argv], capture_output=True, text=True, timeout=10).stdout.strip()
            except (OSError, subprocess.TimeoutExpired):
                return ""

        return {
            "cores": CORES, "cpu_model": model, "memory_mib": mem_kib // 1024, "kernel": platform.release(),
            "postgres_version": self.db.value("SHOW server_version"), "postgres_settings": settings,
            "nginx_version": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
            "git_commit": git("rev-parse", "HEAD"), "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
            "relay_binary": self.relay_bin, "build_seconds": float(os.environ.get("BENCH_BUILD_SECONDS") or 0) or None,
            "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        }

    def run(self) -> int:
        self.db = Psql(self.env)
        started = datetime.datetime.now(datetime.timezone.utc)
        self.results = {
            "schema": "outbox-relay-bench/2", "mode": "quick" if self.quick else "full",
            "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "environment": self.environment(),
            "settings": {**self.cfg, "relay_env": {
                "OUTBOX_MAX_IN_FLIGHT": self.cfg["max_in_flight"] or "default",
                "OUTBOX_POLL_INTERVAL": self.cfg["poll_interval"] or "default (1s)",
                "OUTBOX_ALLOW_PRIVATE_NETWORKS": "true", "OUTBOX_LOG_FORMAT": "json"}},
            "phases": {}, "errors": {}, "skipped": [], "notes": [],
        }
        say(f"{'QUICK' if self.quick else 'FULL'} run; {CORES} cores; load {os.getloadavg()[0]:.2f}")
        self.db.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        # The time partitions a running relay keeps ahead (at its default interval), made
        # now: otherwise the first phase's relay would start by moving that phase's
        # pre-inserted events out of the default partition, inside its timed window.
        self.db.query("DO $$ BEGIN IF to_regproc('outbox.create_time_partitions') IS NOT NULL THEN "
                      "PERFORM outbox.create_time_partitions(t::regclass, '1 day', '3 days') "
                      "FROM unnest(ARRAY['outbox.events', 'outbox.attempts']) AS t; END IF; END $$")
        self.start_nginx()
        phases = [("ceiling", self.phase_ceiling), ("w1", self.phase_w1), ("w2", self.phase_w2),
                  ("w3", self.phase_w3), ("h", self.phase_h), ("idle", self.phase_idle),
                  ("hostsubs", lambda: hostsubs.phase_hostsubs(self)), ("drain", lambda: drain.phase_drain(self)),
                  ("peer", lambda: peer.phase_peer(self)), ("callgrind", lambda: callgrind.phase_callgrind(self)),
                  ("baseline", lambda: baseline.phase_baseline(self)), ("soak", lambda: soak.phase_soak(self))]
        if self.cfg["rounds"] > 1:
            phases += [("ceiling_again", self.phase_ceiling_again), ("w1_again", self.phase_w1_again),
                       ("w2_again", self.phase_w2_again)]
        only = [n for n in os.environ.get("BENCH_PHASES", "").split(",") if n]  # for development: BENCH_PHASES=w3,h
        for name, phase in phases:
            if only and name not in only:
                self.results["skipped"].append(name)
                continue
            if name not in ("h", "idle") and self.relay is not None:
                self.results["relay_stop_after_idle"] = self.stop_relay()
            if name in ("h", "idle") and self.relay is None:
                self.results["errors"][name] = "skipped: needs the relay of w3"
                continue
            if name == "baseline" and not self.args.baseline:
                self.results["notes"].append("baseline skipped: " + ("a --quick run (CI) leaves it out to stay short"
                                                                     if self.quick else "no baseline binary"))
                continue
            if self.time_left() < self.time_needed(name):
                self.results["skipped"].append(name)
                say(f"{name}: skipped, out of time")
                continue
            started_children = len(self.children)
            try:
                self.results["phases"][name] = phase()
            except (BenchError, OSError, ValueError, KeyError, IndexError, subprocess.SubprocessError) as error:
                say(f"{name}: FAILED: {type(error).__name__}: {error}")
                self.results["errors"][name] = f"{type(error).__name__}: {error}"
                if self.relay is not None:
                    self.results["errors"][f"{name}_relay_stop"] = self.stop_relay()
            self.stop_leftovers(started_children)
        if self.relay is not None:
            self.results["relay_stop_after_idle"] = self.stop_relay()
        self.results["elapsed_seconds"] = round(time.time() - STARTED, 1)
        self.results["environment"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        report.add_summary(self.results)

        out_dir = Path(self.args.results_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        path = out_dir / f"bench-{stamp}{'-quick' if self.quick else ''}.json"
        path.write_text(json.dumps(self.results, indent=2) + "\n")
        print(report.render(self.results))
        print(f"\nJSON: {path}")
        return 1 if self.results["errors"] else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--relay", required=True, help="the release outbox-relay binary")
    parser.add_argument("--results-dir", default="bench-results")
    parser.add_argument("--baseline", help="the baseline outbox-relay binary (phase baseline)")
    parser.add_argument("--baseline-commit", default="", help="the commit it was built from")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    bench = Bench(args)
    try:
        return bench.run()
    except Interrupted as why:
        say(f"interrupted ({why}); stopping what the bench started")
        return 130
    finally:
        bench.cleanup()


if __name__ == "__main__":
    sys.exit(main())
