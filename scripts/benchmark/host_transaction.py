"""The host transaction of phases H and hostsubs: an application's own UPDATE and
INSERT (pgbench, 8 clients), with or without an outbox event, and one timed run
of it. The tables are the bench's own, in schema public."""

from __future__ import annotations

from common import PAYLOAD_SQL, BenchError, parse_pgbench, say

# The event's row with its columns, defaults, checks and indexes but none of the outbox's
# triggers: what any design that writes the event in the host transaction must pay at least.
PLAIN_COPY = "public.bench_event_rows"


def prepare(bench) -> None:
    """(Re)creates the host's tables and the plain copy of outbox.events."""
    db, accounts = bench.db, bench.cfg["h_accounts"]
    db.query("DROP TABLE IF EXISTS public.bench_accounts, public.bench_history")
    db.query("CREATE TABLE public.bench_accounts (aid integer PRIMARY KEY, balance bigint NOT NULL, "
             "updated_at timestamptz NOT NULL DEFAULT now()) WITH (fillfactor = 90)")
    db.query("CREATE TABLE public.bench_history (hid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
             "aid integer NOT NULL, delta integer NOT NULL, created_at timestamptz NOT NULL DEFAULT now())")
    db.query(f"INSERT INTO public.bench_accounts (aid, balance) SELECT g, 0 FROM generate_series(1, {accounts}) AS g")
    db.query(f"DROP TABLE IF EXISTS {PLAIN_COPY}")
    db.query(f"CREATE TABLE {PLAIN_COPY} (LIKE outbox.events INCLUDING ALL)")
    # outbox.events may fill event_id with a trigger instead of a default; the copy has no triggers.
    db.query(f"ALTER TABLE {PLAIN_COPY} ALTER COLUMN event_id SET DEFAULT gen_random_uuid()::text")
    triggers = int(db.value(f"SELECT count(*) FROM pg_trigger WHERE tgrelid = '{PLAIN_COPY}'::regclass"))
    if triggers:
        raise BenchError(f"{PLAIN_COPY} has {triggers} triggers; it must be a plain copy")
    db.query("VACUUM ANALYZE public.bench_accounts, public.bench_history")


def script(bench, event_table: str | None, event_type: str, extra: str = "") -> str:
    """The transaction as a pgbench script; with an event INSERT into `event_table`
    when given, and `extra` statements before the end."""
    text = f"""\\set aid random(1, {bench.cfg["h_accounts"]})
\\set delta random(-5000, 5000)
BEGIN;
UPDATE public.bench_accounts SET balance = balance + :delta, updated_at = now() WHERE aid = :aid;
INSERT INTO public.bench_history (aid, delta) VALUES (:aid, :delta);
"""
    if event_table:
        text += (f"INSERT INTO {event_table} (event_type, payload) VALUES ('{event_type}', "
                 + PAYLOAD_SQL.format(g=":aid::bigint") + ");\n")
    return text + extra + "END;\n"


def measure(bench, phase: str, kind: str, round_: int, text: str) -> dict:
    """One pgbench run of `text` after a quiet machine: TPS, CPU, what the sessions waited on."""
    cfg = bench.cfg
    path = bench.work / f"{phase}_{kind}.sql"
    path.write_text(text)
    quiet = bench.wait_quiet(f"{phase}/{kind}#{round_}")
    a = bench.snapshot()
    code, out, waits = bench._run_sampled(
        ["pgbench", "-n", "-M", "prepared", "-f", str(path), "-c", str(cfg["h_clients"]),
         "-j", "2", "-T", str(cfg["h_seconds"])], f"pgbench-{phase}-{kind}-{round_}", timeout=cfg["h_seconds"] + 60)
    usage = bench.usage_since(a)
    if code != 0:
        raise BenchError(f"pgbench host transaction failed: {out[-1500:]}")
    parsed = parse_pgbench(out)
    say(f"{phase}: {kind} #{round_}: {parsed.get('tps')} TPS, relay {usage['relay_cpu_cores']} cores, "
        f"PG {usage['postgres_cpu_cores']} cores; host sessions: "
        + ", ".join(f"{k} {100 * v:.0f}%" for k, v in list(waits.items())[:4]))
    return {"kind": kind, "round": round_, **parsed, "usage": usage, "quiet": quiet, "session_waits": waits}


def mean_tps(runs: list[dict], kind: str) -> float | None:
    values = [r["tps"] for r in runs if r["kind"] == kind and r.get("tps")]
    return round(sum(values) / len(values), 1) if values else None
