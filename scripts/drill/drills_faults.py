"""Drills 5-6: network faults through our TCP fault proxy, and hostile slow
receivers. (Drill 7, bad input, is in drills_input.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from harness import (Books, Drill, DrillFailure, require, Publisher, Relay, RSSSampler, subscribe,
                     wait_until)

HERE = Path(__file__).resolve().parent


class FaultProxy:
    """scripts/drill/fault_proxy.py in front of one upstream port."""

    def __init__(self, d: Drill, upstream_port: int, name: str) -> None:
        port_file = d.workdir / f"{name}.ports"
        self.proc = d.procs.start([sys.executable, str(HERE / "fault_proxy.py"), "--upstream",
                                   f"127.0.0.1:{upstream_port}", "--port-file", str(port_file)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(port_file.exists, 10, what=f"{name} fault proxy")
        self.port, self.control = (int(x) for x in port_file.read_text().split())

    def post(self, path: str) -> dict:
        req = urllib.request.Request(f"http://127.0.0.1:{self.control}{path}", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def state(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.control}/state", timeout=5) as r:
            return json.loads(r.read())


def network(quick: bool) -> dict:
    """Drill 5: latency, bandwidth limits, resets and black holes between the relay
    and PostgreSQL and between the relay and the receiver."""
    phase_s, rate, recover_s = (3, 60, 40) if quick else (15, 100, 90)
    phases = [
        ("pg latency 100ms", "pg", "/faults?latency_ms=100"),
        ("rx 8KiB/s + 300ms", "rx", "/faults?bandwidth_kbps=8&latency_ms=300"),
        ("rx reset mid-request", "rx", "/faults?reset_after_bytes=300"),
        ("pg resets", "pg", "/faults?reset_after_bytes=20000"),
        ("rx black hole", "rx", "/faults?blackhole=1"),
        ("pg black hole", "pg", "/faults?blackhole=1"),
    ]
    total = int(rate * phase_s * (len(phases) + 1))
    with Drill("network") as d:
        pg = d.postgres()
        rx = d.receiver()
        pgp = FaultProxy(d, pg.port, "pg")
        rxp = FaultProxy(d, rx.port, "rx")
        proxies = {"pg": pgp, "rx": rxp}
        rx.public_port = rxp.port
        subscribe(pg, "a", rx.url("/ok/a"))
        relay = Relay(d.procs, d.workdir, pg.url_via(pgp.port), OUTBOX_TIMEOUT="2s", OUTBOX_LEASE="6s",
                      OUTBOX_MAX_IN_FLIGHT=16, OUTBOX_BREAKER_FAILURES=50, OUTBOX_BREAKER_COOLDOWN="2s",
                      OUTBOX_BREAKER_MAX_COOLDOWN="5s",
                      OUTBOX_RETRY_SCHEDULE="1s,2s,5s,10s,20s,30s,30s,30s")
        relay.start()
        # The relay "never hangs": its admin port answers throughout, within 2 s.
        admin_slow, stop = [], threading.Event()

        def watch() -> None:
            while not stop.wait(0.5):
                began = time.monotonic()
                code = relay.ready()
                if code is None or time.monotonic() - began > 2:
                    admin_slow.append(round(time.monotonic() - began, 1))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        pub = Publisher(pg, total, rate)
        pub.start()
        time.sleep(phase_s / 2)
        # After each phase the faults are cleared and a probe event must arrive: the
        # time it takes is that phase's recovery; a phase that never recovers stops
        # the drill (the relay is stuck) and is named in the failure.
        recovery: dict[str, float] = {}
        for label, target, faults in phases:
            proxies[target].post("/clear")
            proxies[target].post(faults)
            time.sleep(phase_s)
            proxies[target].post("/clear")
            cleared = time.monotonic()
            probe = pg.scalar("SELECT outbox.publish('drill.probe', '{}'::jsonb)")
            try:
                wait_until(lambda: any(r["headers"].get("webhook-id") == probe for r in rx.records()),
                           recover_s, step=0.25, what=f"a probe delivery after '{label}' was cleared")
            except DrillFailure as stuck:
                pub.stop_flag.set()
                raise DrillFailure(f"{stuck}: the relay is stuck (no lost events are counted; "
                                   f"recovered so far: {recovery}; pg proxy: {pgp.state()['open_connections']} connections open)")
            recovery[label] = round(time.monotonic() - cleared, 1)
        pub.join()
        Books(pg, [rx]).wait_settled(180)
        stop.set()
        watcher.join()
        timeouts = int(pg.scalar("SELECT count(*) FROM outbox.attempts WHERE status_code IS NULL"))
        result = Books(pg, [rx], where="true").check(total)
        require(result.get("unpublished", 0) == 0, "events failed to publish")
        require(relay.alive(), "the relay exited")
        require(not admin_slow, f"the admin port stalled {len(admin_slow)} times: {admin_slow[:5]}")
        stale = pg.scalar("SELECT count(*) FROM outbox.deliveries WHERE status = 'delivering'")
        require(stale == "0", f"{stale} leases still held after the drill")
        result.update(phases=len(phases), phase_s=phase_s, failed_attempts=timeouts,
                      recovery_s=list(recovery.values()), pg_proxy=pgp.state(), rx_proxy=rxp.state())
        for key in ("pg_proxy", "rx_proxy"):
            s = result[key]
            result[key] = f"accepted={s['accepted']},resets={s['resets']},blackholed={s['blackholed_bytes']}"
        require(result["missing"] == 0, f"{result['missing']} (event, subscription) pairs never arrived")
        return result


def slow_receiver(quick: bool) -> dict:
    """Drill 6: a receiver that trickles a 100 MB body, one that streams forever and
    one that never answers; memory stays bounded and every attempt times out and is
    recorded, while a healthy subscription keeps being served."""
    body = 100 * 1024 * 1024
    events = 10 if quick else 100
    with Drill("slow-receiver") as d:
        pg = d.postgres()
        log = d.workdir / "slow.jsonl"
        port_file = d.workdir / "slow.port"
        d.procs.start([sys.executable, str(HERE / "slow_receiver.py"), "--log", str(log), "--port-file",
                       str(port_file)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(port_file.exists, 10, what="slow receiver")
        sport = int(port_file.read_text())
        rx = d.receiver()
        hostile = {"trickle": f"/trickle/{body}/2048/x", "endless": "/endless/x", "hang": "/hang/x"}
        for name, path in hostile.items():
            subscribe(pg, name, f"http://127.0.0.1:{sport}{path}")
        subscribe(pg, "healthy", rx.url("/ok/healthy"))
        relay = d.relay(OUTBOX_TIMEOUT="3s", OUTBOX_LEASE="8s",
                        OUTBOX_RETRY_SCHEDULE="1s,1s", OUTBOX_BREAKER_FAILURES=1000, OUTBOX_MAX_IN_FLIGHT=20)
        rss = RSSSampler([relay])
        rss.start()
        pub = Publisher(pg, events, max(events / 10, 1), batch=5)
        pub.start()
        pub.join()
        Books(pg, [rx]).wait_settled(120)
        rss.stop_flag.set()
        healthy = Books(pg, [rx], where="s.name = 'healthy'").check(events)
        rows = pg.sql("SELECT s.name, count(*), count(*) FILTER (WHERE a.error IS NOT NULL), "
                      "max(a.duration_ms), string_agg(DISTINCT left(coalesce(a.error, ''), 60), ' | ') "
                      "FROM outbox.attempts a JOIN outbox.deliveries dl ON dl.id = a.delivery_id "
                      "JOIN outbox.subscriptions s ON s.id = dl.subscription_id GROUP BY s.name")
        per = {r[0]: {"attempts": int(r[1]), "errors": int(r[2]), "max_ms": r[3], "error": r[4]} for r in rows}
        dead = pg.sql("SELECT s.name, count(*) FROM outbox.deliveries dl JOIN outbox.subscriptions s "
                      "ON s.id = dl.subscription_id WHERE dl.status = 'dead' GROUP BY s.name")
        dead = {r[0]: int(r[1]) for r in dead}
        peak = rss.peak_mb()
        require(relay.alive(), "the relay exited")
        require(healthy["missing"] == 0, f"healthy subscription missed {healthy['missing']}")
        for name in hostile:
            p = per.get(name, {})
            require(p.get("attempts", 0) >= events,
                     f"{name}: {p.get('attempts', 0)} attempts recorded for {events} deliveries")
            if name == "hang":
                require(dead.get(name, 0) == events and p["errors"] == 3 * events,
                         f"hang: {dead.get(name, 0)} dead of {events}, {p['errors']} failed attempts")
            require(float(p.get("max_ms") or 0) < 3000 + 2000, f"{name}: an attempt took {p.get('max_ms')} ms")
        require(peak < 256, f"peak RSS {peak:.0f} MB")
        return {"events": events, "healthy_missing": healthy["missing"], "peak_rss_mb": round(peak, 1),
                **{f"{n}_attempts": per.get(n, {}).get("attempts") for n in hostile},
                **{f"{n}_max_ms": round(float(per.get(n, {}).get("max_ms") or 0)) for n in hostile},
                "dead": dead, "errors": {n: per.get(n, {}).get("error") for n in hostile}}
