"""Drills 1-4 and 8: crashes, PostgreSQL restarts, receiver outage, replicas and a
long host transaction. Each returns a result dict; a check that fails raises
DrillFailure with the numbers."""

from __future__ import annotations

import random
import subprocess
import threading
import time

from harness import (Books, Drill, DrillFailure, require, Publisher, Relay, RSSSampler, subscribe,
                     wait_until)
from support.psql import psql_command

MAX_IN_FLIGHT = 32


def _books_ok(result: dict) -> None:
    require(result["missing"] == 0, f"{result['missing']} (event, subscription) pairs never arrived")
    require(result.get("unpublished", 0) == 0, f"{result.get('unpublished')} events failed to publish")


def kill9(quick: bool) -> dict:
    """Drill 1: SIGKILL the relay at random moments under steady publishing."""
    total, rate, kills = (2000, 200, 3) if quick else (20000, 400, 10)
    with Drill("kill9") as d:
        pg = d.postgres()
        rx = d.receiver()
        subscribe(pg, "a", rx.url("/sleep/20/a"))
        relay = d.relay(OUTBOX_MAX_IN_FLIGHT=MAX_IN_FLIGHT)
        rss = RSSSampler([relay])
        rss.start()
        pub = Publisher(pg, total, rate)
        pub.start()
        window = total / rate
        moments = sorted(random.uniform(0.5, window) for _ in range(kills))
        began = time.monotonic()
        for at in moments:
            time.sleep(max(0.0, began + at - time.monotonic()))
            relay.kill9()
            time.sleep(random.uniform(0.05, 0.5))
            relay.start(wait_ready=False)
        pub.join()
        Books(pg, [rx]).wait_settled(120 if quick else 300)
        recovered = time.monotonic() - began - window
        result = Books(pg, [rx]).check(total)
        rss.stop_flag.set()
        _books_ok(result)
        bound = kills * MAX_IN_FLIGHT
        require(result["duplicates"] <= bound,
                 f"{result['duplicates']} duplicates > {bound} (kills x max in flight)")
        result.update(kills=kills, drain_after_publish_s=round(max(recovered, 0), 1),
                      peak_rss_mb=round(rss.peak_mb(), 1))
        return result


def pg_restart(quick: bool) -> dict:
    """Drill 2: `pg_ctl restart -m immediate` twice under load; the same relay
    process must recover by itself within 5 s, and /readyz must show the outage."""
    total, rate = (2000, 200) if quick else (10000, 300)
    with Drill("pg-restart") as d:
        pg = d.postgres()
        rx = d.receiver()
        subscribe(pg, "a", rx.url("/ok/a"))
        relay = d.relay(OUTBOX_MAX_IN_FLIGHT=MAX_IN_FLIGHT)
        pid = relay.proc.pid
        readyz: list[tuple[float, int | None]] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(0.1):
                readyz.append((time.monotonic(), relay.ready()))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        pub = Publisher(pg, total, rate)
        pub.start()
        t0 = time.monotonic()
        window = total / rate
        recoveries, outage_s = [], []
        # The first is a plain immediate restart (down well under a second, shorter
        # than the 2 s readiness check); the second stays down 4 s, which /readyz
        # must report.
        for fraction, down_s in ((0.3, 0.0), (0.65, 4.0)):
            time.sleep(max(0.0, t0 + window * fraction - time.monotonic()))
            restarted_at = time.monotonic()
            pg.restart_immediate(down_s)
            back_at = time.monotonic()
            # Recovered = ready again and a probe event published now is delivered.
            probe = pg.scalar("SELECT outbox.publish('drill.probe', '{}'::jsonb)")
            wait_until(lambda: any(r.get("headers", {}).get("webhook-id") == probe for r in rx.records()),
                       30, what="probe delivery after restart")
            delivered_at = time.monotonic()
            wait_until(lambda: relay.ready() == 200, 30, what="/readyz 200 after restart")
            recoveries.append(round(delivered_at - back_at, 2))
            outage_s.append(round(back_at - restarted_at, 2))
        pub.join()
        Books(pg, [rx]).wait_settled(120 if quick else 300)
        stop.set()
        watcher.join()
        result = Books(pg, [rx]).check()
        _books_ok(result)
        require(relay.alive() and relay.proc.pid == pid, "the relay process exited")
        saw_outage = sum(1 for _, code in readyz if code != 200)
        require(saw_outage > 0, "/readyz never reported the outage")
        require(max(recoveries) <= 5.0, f"recovery took {max(recoveries)} s (> 5 s)")
        result.update(restarts=2, pg_down_s=outage_s, recovery_s=recoveries, readyz_not_ready_samples=saw_outage)
        return result


def receiver_outage(quick: bool) -> dict:
    """Drill 3: the receiver is down for 60 s under load, then back."""
    total, rate, outage = (1200, 100, 10) if quick else (8000, 100, 60)
    with Drill("receiver-outage") as d:
        pg = d.postgres()
        rx = d.receiver()
        subscribe(pg, "a", rx.url("/ok/a"))
        relay = d.relay(OUTBOX_MAX_IN_FLIGHT=MAX_IN_FLIGHT,
                        OUTBOX_RETRY_SCHEDULE="1s,2s,5s,10s,30s,30s,30s,30s,60s",
                        OUTBOX_BREAKER_FAILURES=5, OUTBOX_BREAKER_COOLDOWN="2s",
                        OUTBOX_BREAKER_MAX_COOLDOWN="10s", OUTBOX_TIMEOUT="2s", OUTBOX_LEASE="10s")
        states: set[str] = set()
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(0.25):
                try:
                    states.add(pg.scalar("SELECT circuit_state FROM outbox.subscription_health "
                                         "WHERE subscription = 'a'"))
                except DrillFailure:
                    pass

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        pub = Publisher(pg, total, rate)
        pub.start()
        time.sleep(min(3, total / rate / 4))
        rx.stop()
        down_from = pg.scalar("SELECT now()")
        time.sleep(outage)
        down_to = pg.scalar("SELECT now()")
        rx.start()
        back = time.monotonic()
        pub.join()
        Books(pg, [rx]).wait_settled(240 if quick else 400)
        drained = time.monotonic() - back
        stop.set()
        watcher.join()
        attempts_during = int(pg.scalar(f"SELECT count(*) FROM outbox.attempts WHERE started_at "
                                        f"BETWEEN '{down_from}' AND '{down_to}'"))
        final_state = pg.scalar("SELECT circuit_state FROM outbox.subscription_health WHERE subscription = 'a'")
        result = Books(pg, [rx]).check(total)
        _books_ok(result)
        rate_during = attempts_during / outage
        require("open" in states, f"the breaker never opened (states seen: {sorted(states)})")
        require(final_state == "closed", f"breaker ended {final_state!r}, not closed")
        # Bounded: at most the probes plus one in-flight window per cool-down, far
        # below the publish rate that a retry storm would track.
        require(rate_during <= 5, f"{rate_during:.1f} attempts/s while the receiver was down")
        result.update(outage_s=outage, attempts_during_outage=attempts_during,
                      attempt_rate_during_outage=round(rate_during, 2), breaker_states=sorted(states),
                      drain_s=round(drained, 1))
        return result


def replicas(quick: bool) -> dict:
    """Drill 4: three relays share the work; one is SIGKILLed midway."""
    total, rate, lease = (3000, 300, "5s") if quick else (50000, 450, "10s")
    with Drill("replicas") as d:
        pg = d.postgres()
        rx = d.receiver()
        subscribe(pg, "a", rx.url("/sleep/50/a"))
        # Slow work (3 s answers) published just before the kill, so the victim is
        # sure to hold claims when it dies.
        subscribe(pg, "b", rx.url("/sleep/3000/b"), "drill.slow")
        relays = [Relay(d.procs, d.workdir, pg.url, name=f"relay{i}", OUTBOX_MAX_IN_FLIGHT=MAX_IN_FLIGHT,
                        OUTBOX_LEASE=lease, OUTBOX_TIMEOUT="4s") for i in range(3)]
        for relay in relays:
            relay.start()
        rss = RSSSampler(relays)
        rss.start()
        pub = Publisher(pg, total, rate)
        pub.start()
        time.sleep(total / rate / 2)
        pg.sql("INSERT INTO outbox.events (event_type, payload) SELECT 'drill.slow', '{}' "
               "FROM generate_series(1, 30)")
        time.sleep(1)
        victim = relays[1].proc.pid
        relays[1].kill9()
        killed_at = time.monotonic()
        # The victim's claims: lease_owner is host:pid:nonce.
        stranded_ids = [r[0] for r in pg.sql("SELECT id FROM outbox.deliveries WHERE status = 'delivering' "
                                             f"AND lease_owner LIKE '%:{victim}:%'")]
        if stranded_ids:
            ids = ",".join(stranded_ids)
            wait_until(lambda: pg.scalar(f"SELECT count(*) FROM outbox.deliveries WHERE id IN ({ids}) "
                                         "AND status = 'delivering'") == "0", 60, what="lease takeover")
        takeover = time.monotonic() - killed_at
        pub.join()
        Books(pg, [rx]).wait_settled(300 if quick else 600)
        rss.stop_flag.set()
        result = Books(pg, [rx], where="s.name = 'a' OR e.event_type = 'drill.slow'").check(total)
        _books_ok(result)
        # Steady state sends nothing twice: only the victim's claims may repeat.
        require(result["duplicates"] <= len(stranded_ids),
                 f"{result['duplicates']} duplicates > {len(stranded_ids)} claims the victim held")
        result.update(replicas=3, killed=1, lease=lease, takeover_s=round(takeover, 1) if stranded_ids else None,
                      victim_claims_at_kill=len(stranded_ids), peak_rss_mb=round(rss.peak_mb(), 1))
        return result


def long_transaction(quick: bool) -> dict:
    """Drill 8: an early event held in an open transaction while thousands commit after it."""
    held, later = (12, 1000) if quick else (60, 5000)
    with Drill("long-tx") as d:
        pg = d.postgres()
        rx = d.receiver()
        subscribe(pg, "a", rx.url("/ok/a"))
        relay = d.relay(OUTBOX_MAX_IN_FLIGHT=MAX_IN_FLIGHT)
        host = d.procs.start(
            [*psql_command(pg.port), "-c", "BEGIN", "-c",
             "INSERT INTO outbox.events (event_id, event_type, payload) VALUES ('drill-early', 'drill.early', '{}')",
             "-c", f"SELECT pg_sleep({held})", "-c", "COMMIT"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1)
        pub = Publisher(pg, later, later / (held * 0.6))
        pub.start()
        pub.join()
        # Everything committed after the early event must arrive while it is still open.
        wait_until(lambda: len({r["headers"].get("webhook-id") for r in rx.records()}) >= later,
                   held, step=0.5, what="later events delivered while the early transaction is open")
        require(host.poll() is None, "the host transaction ended early")
        delivered_while_open = len({r["headers"].get("webhook-id") for r in rx.records()})
        early_before = any(r["headers"].get("webhook-id") == "drill-early" for r in rx.records())
        host.wait(timeout=held + 30)
        require(host.returncode == 0, f"host transaction failed: {host.stderr.read().decode()[:300]}")
        committed = time.monotonic()
        wait_until(lambda: any(r["headers"].get("webhook-id") == "drill-early" for r in rx.records()),
                   30, what="the early event after its commit")
        early_latency = time.monotonic() - committed
        Books(pg, [rx]).wait_settled(60)
        result = Books(pg, [rx]).check(later + 1)
        _books_ok(result)
        require(not early_before, "the early event arrived before its transaction committed")
        result.update(held_open_s=held, delivered_while_open=delivered_while_open,
                      early_delivered_after_commit_s=round(early_latency, 2))
        return result
