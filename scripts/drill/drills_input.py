"""Drill 7: bad input through every entry point (SQL, outbox.publish, the CLI,
environment, subscription URLs) while a relay delivers good traffic: each case
gets a clear error, the relay keeps running, no other event is affected."""

from __future__ import annotations

import os
import subprocess

from harness import RELAY_BIN, Books, Drill, DrillFailure, Publisher, subscribe
from support.psql import psql_command

MIB = 1024 * 1024
SECRET = "sekret-pw-7f3a"


def _psql(pg, data: bytes) -> tuple[int, str]:
    proc = subprocess.run(psql_command(pg.port), input=data, capture_output=True, timeout=60)
    return proc.returncode, proc.stderr.decode("utf-8", "replace").strip()


def _cli(pg, *args: str, env: dict | None = None, timeout: float = 20) -> tuple[int, str]:
    full_env = dict(os.environ, OUTBOX_DATABASE_URL=pg.url, OUTBOX_LOG_FORMAT="text",
                    OUTBOX_ADMIN_LISTEN="127.0.0.1:0", OUTBOX_ALLOW_PRIVATE_NETWORKS="true")
    full_env.update(env or {})
    try:
        proc = subprocess.run([str(RELAY_BIN), *args], env=full_env, capture_output=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        return -1, ((e.stderr or b"") + (e.stdout or b"")).decode("utf-8", "replace")
    return proc.returncode, (proc.stderr + proc.stdout).decode("utf-8", "replace").strip()


def _sql_cases(rx_url: str) -> list[tuple[str, str]]:
    over = "x" * MIB
    return [
        ("sql: payload not JSON", "INSERT INTO outbox.events (event_type, payload) VALUES ('t.a', '{bad')"),
        ("sql: payload over 1 MiB",
         f"INSERT INTO outbox.events (event_type, payload) VALUES ('t.a', jsonb_build_object('x', repeat('a', {MIB})))"),
        ("sql: empty event_type", "INSERT INTO outbox.events (event_type, payload) VALUES ('', '{}')"),
        ("sql: NULL event_type", "INSERT INTO outbox.events (event_type, payload) VALUES (NULL, '{}')"),
        ("sql: event_type with spaces", "INSERT INTO outbox.events (event_type, payload) VALUES ('a b', '{}')"),
        ("sql: headers not an object", "INSERT INTO outbox.events (event_type, payload, headers) VALUES ('t.a', '{}', '[1]')"),
        ("sql: header value not a string",
         "INSERT INTO outbox.events (event_type, payload, headers) VALUES ('t.a', '{}', '{\"x-a\": 1}')"),
        ("sql: owned header content-type",
         "INSERT INTO outbox.events (event_type, payload, headers) VALUES ('t.a', '{}', '{\"Content-Type\": \"x\"}')"),
        ("sql: owned header webhook-id",
         "INSERT INTO outbox.events (event_type, payload, headers) VALUES ('t.a', '{}', '{\"webhook-id\": \"x\"}')"),
        ("sql: header CRLF injection",
         "INSERT INTO outbox.events (event_type, payload, headers) VALUES ('t.a', '{}', '{\"x-a\": \"b\\r\\nx-evil: 1\"}')"),
        ("sql: header name with space",
         "INSERT INTO outbox.events (event_type, payload, headers) VALUES ('t.a', '{}', '{\"bad name\": \"v\"}')"),
        ("sql: duplicate event_id",
         "INSERT INTO outbox.events (event_id, event_type, payload) VALUES ('dup-1', 't.a', '{}'), ('dup-1', 't.a', '{}')"),
        ("publish(): empty type", "SELECT outbox.publish('', '{}'::jsonb)"),
        ("publish(): payload over 1 MiB", f"SELECT outbox.publish('t.a', to_jsonb(repeat('a', {MIB})))"),
        ("publish(): NULL payload", "SELECT outbox.publish('t.a', NULL)"),
        ("subscribe(): ftp URL", "SELECT outbox.subscribe('bad1', 'ftp://127.0.0.1/x', ARRAY['*'])"),
        ("subscribe(): URL without host", "SELECT outbox.subscribe('bad2', 'http://', ARRAY['*'])"),
        ("subscribe(): not a URL", "SELECT outbox.subscribe('bad3', 'not a url', ARRAY['*'])"),
        ("subscribe(): javascript: URL", "SELECT outbox.subscribe('bad4', 'javascript:alert(1)', ARRAY['*'])"),
        ("subscribe(): URL with CRLF",
         "SELECT outbox.subscribe('bad5', E'http://127.0.0.1:1/a\\r\\nHost: evil', ARRAY['*'])"),
        ("subscribe(): empty pattern", f"SELECT outbox.subscribe('bad6', '{rx_url}', ARRAY[''])"),
        ("subscribe(): malformed pattern", f"SELECT outbox.subscribe('bad7', '{rx_url}', ARRAY['order.**'])"),
        ("subscribe(): duplicate name", f"SELECT outbox.subscribe('good', '{rx_url}', ARRAY['*'])"),
        ("subscriptions: max_in_flight 0", "UPDATE outbox.subscriptions SET max_in_flight = 0 WHERE name = 'good'"),
        ("subscriptions: negative timeout",
         "UPDATE outbox.subscriptions SET timeout = interval '-1 s' WHERE name = 'good'"),
    ]


def _cli_cases() -> list[tuple[str, tuple, dict]]:
    return [
        ("cli: publish data not JSON", ("publish", "--type", "t.a", "--data", "{nope"), {}),
        ("cli: publish empty type", ("publish", "--type", "", "--data", "{}"), {}),
        ("cli: publish without --type", ("publish", "--data", "{}"), {}),
        ("cli: publish owned header", ("publish", "--type", "t.a", "--data", "{}", "--header", "host=evil"), {}),
        ("cli: subscription bad URL", ("subscription", "add", "bad8", "--url", "gopher://x", "--events", "*"), {}),
        ("cli: unknown subcommand", ("frobnicate",), {}),
        ("env: OUTBOX_TIMEOUT=abc", ("run",), {"OUTBOX_TIMEOUT": "abc"}),
        ("env: OUTBOX_LEASE <= OUTBOX_TIMEOUT", ("run",), {"OUTBOX_TIMEOUT": "10s", "OUTBOX_LEASE": "5s"}),
        ("env: OUTBOX_RETRY_SCHEDULE=5x", ("run",), {"OUTBOX_RETRY_SCHEDULE": "5x,1m"}),
        ("env: OUTBOX_MAX_IN_FLIGHT=0", ("run",), {"OUTBOX_MAX_IN_FLIGHT": "0"}),
        ("env: OUTBOX_ADMIN_LISTEN=nonsense", ("run",), {"OUTBOX_ADMIN_LISTEN": "nonsense"}),
        ("env: OUTBOX_ALLOW_PRIVATE_NETWORKS=maybe", ("run",), {"OUTBOX_ALLOW_PRIVATE_NETWORKS": "maybe"}),
    ]


def bad_input(quick: bool) -> dict:
    good = 200 if quick else 2000
    with Drill("bad-input") as d:
        pg = d.postgres()
        rx = d.receiver()
        subscribe(pg, "good", rx.url("/ok/good"))
        relay = d.relay()
        pub = Publisher(pg, good, good / 10 if quick else good / 30, batch=10)
        pub.start()
        outcomes: list[tuple[str, bool, str]] = []
        for name, sql in _sql_cases(rx.url("/ok/bad")):
            code, err = _psql(pg, sql.encode())
            outcomes.append((name, code != 0 and "ERROR" in err, err.splitlines()[0] if err else "(accepted)"))
        # Invalid UTF-8 bytes, sent raw to the server.
        code, err = _psql(pg, b"INSERT INTO outbox.events (event_type, payload) VALUES ('t.a', '{\"x\": \"\xff\xfe\"}')")
        outcomes.append(("sql: invalid UTF-8 payload", code != 0, err.splitlines()[0] if err else "(accepted)"))
        code, err = _psql(pg, b"SELECT outbox.publish('t.\xc3', '{}'::jsonb)")
        outcomes.append(("publish(): invalid UTF-8 type", code != 0, err.splitlines()[0] if err else "(accepted)"))
        for name, args, env in _cli_cases():
            code, err = _cli(pg, *args, env=env)
            first = next((l for l in err.splitlines() if l.strip()), "(no message)")
            outcomes.append((name, code not in (0, -1) and bool(err), first[:160]))
        # A database URL with a password the relay cannot use: it must not echo it.
        code, err = _cli(pg, "publish", "--type", "t.a", "--data", "{}", timeout=20,
                         env={"OUTBOX_DATABASE_URL": f"postgresql://u:{SECRET}@127.0.0.1:1/x"})
        outcomes.append(("env: unreachable DB URL with password", code not in (0, -1) and SECRET not in err,
                         (err.splitlines() or ["(no message)"])[0][:160]))
        # Accepted edge cases: a payload of exactly 1 MiB of JSON text, and a 64 KiB
        # header value; both must be delivered (or fail visibly) without harm to others.
        at_limit = '"' + "a" * (MIB - 2) + '"'
        code, err = _psql(pg, f"INSERT INTO outbox.events (event_id, event_type, payload) VALUES "
                              f"('at-limit', 't.a', '{at_limit}')".encode())
        outcomes.append(("sql: payload of exactly 1 MiB accepted", code == 0, err or "accepted"))
        big_header = "v" * 65536
        code, err = _psql(pg, f"INSERT INTO outbox.events (event_id, event_type, payload, headers) VALUES "
                              f"('big-header', 't.a', '{{}}', '{{\"x-big\": \"{big_header}\"}}')".encode())
        big_header_accepted = code == 0
        pub.join()
        Books(pg, [rx]).wait_settled(120)
        _require_alive = relay.alive()
        good_books = Books(pg, [rx], where="e.event_type = 'drill.event'").check(good)
        at_limit_ok = any(r["headers"].get("webhook-id") == "at-limit" for r in rx.records())
        outcomes.append(("at-limit payload delivered", at_limit_ok, ""))
        big = pg.sql("SELECT status, last_status_code, coalesce(last_error, '') FROM outbox.deliveries "
                     "WHERE event_id = 'big-header'")
        if big_header_accepted:
            state = big[0] if big else ["(no delivery)", "", ""]
            outcomes.append(("64 KiB header value: accepted, finished visibly", state[0] in ("succeeded", "dead"),
                             f"status={state[0]} code={state[1]} {state[2][:80]}"))
        else:
            outcomes.append(("64 KiB header value: refused", True, err.splitlines()[0] if err else ""))
        crlf = [r for r in rx.records() if "x-evil" in r["headers"]]
        outcomes.append(("no injected header reached a receiver", not crlf, f"{len(crlf)} requests"))
        failed = [o for o in outcomes if not o[1]]
        with open(d.workdir.parent / "outbox-drill-bad-input.txt", "w") as f:
            for name, ok, msg in outcomes:
                f.write(f"{'ok  ' if ok else 'FAIL'} {name}: {msg}\n")
        if not _require_alive:
            raise DrillFailure("the relay exited")
        if good_books["missing"]:
            raise DrillFailure(f"{good_books['missing']} good events missing")
        if failed:
            raise DrillFailure(f"{len(failed)}/{len(outcomes)} cases failed: "
                               + "; ".join(f"{n} -> {m[:100]}" for n, _, m in failed))
        return {"cases": len(outcomes), "events": good_books["events"], "missing": good_books["missing"],
                "duplicates": good_books["duplicates"], "relay_alive": True,
                "details": "/tmp/outbox-drill-bad-input.txt"}
