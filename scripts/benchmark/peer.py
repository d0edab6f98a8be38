"""Phase peer: the same deliveries by a minimal webhook relay built on PgQueuer
(peer_pgqueuer.py), against the same PostgreSQL and nginx in the same run: a
W1-like backlog (one endpoint) and a W2-like one (three endpoints: one job per
event and endpoint), timed like W1 from the peer's start to the last receipt,
checked like W1 (delivered / missing / duplicates from nginx's log), with the same
per-delivery costs. The summary puts the relay's W1 and W2 rates over the peer's.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import BenchError, say
from costs import CostWindow
from support import processes

PEER = Path(__file__).with_name("peer_pgqueuer.py")
CONCURRENCY = 100


def pgqueuer_version() -> str:
    from importlib.metadata import version
    return version("pgqueuer")


def install_schema(bench) -> None:
    """PgQueuer's tables, by its own installer (its CLI, reading the PG* variables)."""
    if bench.db.value("SELECT to_regclass('public.pgqueuer') IS NOT NULL") == "t":
        return
    code, out = bench._run([sys.executable, "-m", "pgqueuer", "install"], "pgqueuer-install", timeout=120)
    if code != 0:
        raise BenchError(f"pgqueuer install failed: {out[-1500:]}")


def wait_empty(bench, proc: subprocess.Popen, timeout: float) -> bool:
    """Until PgQueuer's queue table is empty (a finished job leaves it) or the peer exits."""
    deadline = time.time() + max(5.0, min(timeout, bench.time_left() - 30))
    while time.time() < deadline:
        if bench.db.value("SELECT count(*) FROM public.pgqueuer") == "0":
            return True
        if proc.poll() is not None:
            raise BenchError(f"the peer exited ({proc.returncode}) with jobs left")
        time.sleep(0.2)
    return False


def run_peer(bench, name: str, events: int, endpoints: int, secret: str) -> dict:
    db = bench.db
    db.query("TRUNCATE public.pgqueuer, public.pgqueuer_log")
    env = dict(bench.env, PEER_WEBHOOK_SECRET=secret)
    started = time.time()
    code, out = bench._run([sys.executable, str(PEER), "enqueue", "--name", name, "--events", str(events),
                            "--endpoints", str(endpoints), "--base-url", f"http://127.0.0.1:{bench.port}"],
                           f"peer-enqueue-{name}", timeout=300, env=env)
    if code != 0:
        raise BenchError(f"the peer's enqueue failed: {out[-1500:]}")
    enqueue_seconds = time.time() - started
    db.query("VACUUM ANALYZE public.pgqueuer")
    db.query("CHECKPOINT")
    quiet = bench.wait_quiet(name)
    costs = CostWindow(db)
    a = bench.snapshot()
    t0 = time.time()
    with open(bench.work / f"{name}.log", "w") as log:
        proc = bench._spawn([sys.executable, str(PEER), "run", "--concurrency", str(CONCURRENCY)], name, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        drained = wait_empty(bench, proc, bench.cfg["drain_timeout_s"])
        done_at = time.time()
        usage = bench.usage_since(a)
    finally:
        code = processes.stop(proc, signal.SIGTERM, 30)
    # 0: it stopped on SIGTERM, or ended by itself (drain mode) as the signal came.
    if code not in (0, -signal.SIGTERM):
        raise BenchError(f"the peer exited with {code}: " + (bench.work / f"{name}.log").read_text()[-1500:])
    costs.close()
    paths = [f"/{name}/{j}" for j in range(endpoints)]
    ids = {f"{name}-{i}" for i in range(1, events + 1)}
    tally, rows, _ = bench.account_ids(f"/{name}/", paths, ids)
    times = sorted(t for t, _, _ in rows)
    result = {"events": events, "endpoints": endpoints, "enqueue_seconds": round(enqueue_seconds, 2), "quiet": quiet,
              "drained": drained, **tally, "seconds_to_recorded": round(done_at - t0, 3)}
    if times:
        result.update({
            "seconds_to_first_receipt": round(times[0] - t0, 3),
            "seconds_to_last_receipt": round(times[-1] - t0, 3),
            "rate": round(tally["delivered"] / max(times[-1] - t0, 1e-3), 1),
            "steady_rate": round((len(times) - 1) / (times[-1] - times[0]), 1) if times[-1] > times[0] else None,
        })
    result["usage"] = usage
    result["costs"] = costs.per_delivery(tally["delivered"])
    say(f"{name}: {tally['delivered']}/{tally['expected']} delivered, {result.get('rate')} deliveries/s, "
        f"peer {usage['load_tools_cpu_cores']} cores, PG {usage['postgres_cpu_cores']} cores")
    return result


def phase_peer(bench) -> dict:
    cfg = bench.cfg
    install_schema(bench)
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    result = {
        "peer": f"pgqueuer {pgqueuer_version()} (scripts/benchmark/peer_pgqueuer.py)",
        "settings": f"PgQueuer defaults (batch size 10), at most {CONCURRENCY} jobs in flight, aiohttp, uvloop",
        "w1": run_peer(bench, "peerw1", cfg["w1_events"], 1, secret),
    }
    result["w2"] = run_peer(bench, "peerw2", cfg["w2_events"], cfg["w2_subscriptions"], secret)
    return result
