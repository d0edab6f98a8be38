"""Phase soak: events published at a fixed rate for minutes while the relay runs with
short partitions and retention (OUTBOX_PARTITION_INTERVAL=1m, OUTBOX_RETENTION=3m),
so that partitions come and go under load. Per minute: the offered rate (events
committed), the delivered rate (first receipts at nginx), the p99 latency from
commit (pg_xact_commit_timestamp) to receipt of the events committed in it, the
size of the outbox schema and the relay's memory; at the end, the dead tuples of
every outbox table.

Events older than the retention are gone by the end, so their commit times are
read while the producer runs, every few seconds.
"""

from __future__ import annotations

import collections
import math
import subprocess
import time

from common import BenchError, percentile, say

RELAY_SETTINGS = {"OUTBOX_PARTITION_INTERVAL": "1m", "OUTBOX_RETENTION": "3m"}
EVENT_TYPE = "bench.soak"
MINUTE_S = 60
POLL_S = 10
# created_at is the transaction's start: read back this far so a transaction that
# started before the last row seen but committed after it is not missed.
OVERLAP_S = 5

# Every table of schema outbox and every partition under its partitioned tables, wherever it lives.
OUTBOX_RELATIONS = """SELECT c.oid AS relid FROM pg_class AS c
 WHERE c.relnamespace = 'outbox'::regnamespace AND c.relkind IN ('r', 'p')
UNION
SELECT tree.relid FROM pg_class AS c, pg_partition_tree(c.oid::regclass) AS tree
 WHERE c.relnamespace = 'outbox'::regnamespace AND c.relkind = 'p'"""


def schema_size(db) -> int:
    return int(db.value(f"SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM ({OUTBOX_RELATIONS}) AS r"))


def dead_tuples(db) -> dict:
    return {name: {"n_dead_tup": int(dead), "n_live_tup": int(live)} for name, dead, live in db.query(
        f"SELECT s.relid::regclass::text, s.n_dead_tup, s.n_live_tup FROM pg_stat_user_tables AS s "
        f"WHERE s.relid IN ({OUTBOX_RELATIONS}) ORDER BY 1")}


class CommitLog:
    """event_id -> commit time of every soak event, read before retention drops it."""

    def __init__(self, db):
        self.db = db
        self.commits: dict[str, float] = {}
        self.since = 0.0

    def poll(self) -> None:
        for event_id, committed, created in self.db.query(
                "SELECT event_id, extract(epoch FROM pg_xact_commit_timestamp(xmin)), extract(epoch FROM created_at) "
                f"FROM outbox.events WHERE event_type = '{EVENT_TYPE}' AND created_at > to_timestamp({self.since})"):
            self.commits[event_id] = float(committed)
            self.since = max(self.since, float(created) - OVERLAP_S)


def per_minute(t0: float, minutes: int, commits: dict, first_receipt: dict, path: str) -> list[dict]:
    """offered / delivered / p99 per minute from t0 (stragglers count in the last minute)."""
    def minute(t):
        return min(minutes - 1, max(0, int((t - t0) // MINUTE_S)))

    offered, delivered = collections.Counter(), collections.Counter()
    latencies = collections.defaultdict(list)
    for event_id, committed in commits.items():
        m = minute(committed)
        offered[m] += 1
        received = first_receipt.get((path, event_id))
        if received is not None:
            delivered[minute(received)] += 1
            latencies[m].append((received - committed) * 1000)
    rows = []
    for m in range(minutes):
        lat = sorted(latencies[m])
        rows.append({"minute": m + 1, "offered": offered[m], "delivered": delivered[m],
                     "offered_rate": round(offered[m] / MINUTE_S, 1), "delivered_rate": round(delivered[m] / MINUTE_S, 1),
                     "delivered_vs_offered": round(delivered[m] / offered[m], 4) if offered[m] else None,
                     "p99_ms": round(percentile(lat, 99), 2) if lat else None,
                     "p50_ms": round(percentile(lat, 50), 2) if lat else None})
    return rows


def verdicts(rows: list[dict]) -> dict:
    """The soak's three checks: every minute delivers what was offered; p99 of the last
    minute against the first; the size late in the run against the size at minute 5
    (or halfway, in a run shorter than 10 minutes)."""
    ratios = [r["delivered_vs_offered"] for r in rows if r["delivered_vs_offered"] is not None]
    out = {"rate_max_deviation": round(max(abs(1 - r) for r in ratios), 4) if ratios else None}
    if rows[0]["p99_ms"] and rows[-1]["p99_ms"]:
        out["p99_last_vs_first"] = round(rows[-1]["p99_ms"] / rows[0]["p99_ms"], 3)
    reference = min(5, math.ceil(len(rows) / 2))
    late = [r["schema_bytes"] for r in rows[reference:][-3:]]
    if late and rows[reference - 1]["schema_bytes"]:
        out["size_reference_minute"] = reference
        out["size_late_vs_reference"] = round(max(late) / rows[reference - 1]["schema_bytes"], 3)
    return out


def phase_soak(bench) -> dict:
    cfg, db = bench.cfg, bench.db
    rate, minutes = cfg["soak_rate"], cfg["soak_minutes"]
    seconds = minutes * MINUTE_S
    bench.reset_data()
    # The relay makes its partitions at OUTBOX_PARTITION_INTERVAL after the last one
    # that exists: start from none, or the soak would fill the bench's day partition.
    bench.db.query("DO $$ DECLARE p regclass; BEGIN "
                   "FOR p IN SELECT t.partition FROM unnest(ARRAY['outbox.events', 'outbox.attempts']) AS n, "
                   "LATERAL outbox.time_partitions(n::regclass) AS t LOOP EXECUTE format('DROP TABLE %s', p); "
                   "END LOOP; END $$")
    path = bench.subscribe("soak-0", "/soak/0")
    bench.settle()
    bench.start_relay("soak", settings=RELAY_SETTINGS)
    bench.wait_relay_ready()
    quiet = bench.wait_quiet("soak")
    bench.reset_relay_peak()
    script = bench.work / "soak.sql"
    bench._publish_script(script, EVENT_TYPE)
    log = CommitLog(db)
    samples = []
    a = bench.snapshot()
    t0 = time.time()
    with open(bench.work / "pgbench-soak.out", "w") as out:
        producer = bench._spawn(["pgbench", "-n", "-M", "prepared", "-f", str(script), "-c", str(cfg["w3_clients"]),
                                 "-j", "2", "--rate", str(rate), "-T", str(seconds)], "pgbench-soak",
                                stdout=out, stderr=subprocess.STDOUT)
    for m in range(1, minutes + 1):
        while (now := time.time()) < t0 + m * MINUTE_S:
            time.sleep(min(POLL_S, t0 + m * MINUTE_S - now))
            log.poll()
        samples.append({"schema_bytes": schema_size(db), **bench.relay_memory()})
        say(f"soak: minute {m}: {len(log.commits)} events so far, outbox schema "
            f"{samples[-1]['schema_bytes'] / 2**20:.1f} MiB, relay RSS {samples[-1].get('relay_rss_mib')} MiB")
    try:
        code = producer.wait(timeout=60)
    except subprocess.TimeoutExpired:
        raise BenchError("the soak's producer did not finish")
    if code != 0:
        raise BenchError("the soak's producer failed: " + (bench.work / "pgbench-soak.out").read_text()[-1500:])
    drained, _ = bench.wait_drained(60)
    usage = bench.usage_since(a)
    log.poll()
    dead = dead_tuples(db)
    memory = bench.relay_memory()
    stop = bench.stop_relay()
    tally, _, first_receipt = bench.account_ids("/soak/", [path], set(log.commits))
    rows = per_minute(t0, minutes, log.commits, first_receipt, path)
    for row, sample in zip(rows, samples):
        row.update(sample)
    result = {"rate_target": rate, "minutes": minutes, "relay_settings": RELAY_SETTINGS, "quiet": quiet,
              "drained": drained, **tally, "per_minute": rows, **verdicts(rows), "dead_tuples_at_end": dead,
              "usage": usage, **memory, "relay_stop": stop}
    say(f"soak: {tally['delivered']}/{tally['expected']} delivered; rate deviation {result['rate_max_deviation']}, "
        f"p99 last/first {result.get('p99_last_vs_first')}, size late/reference {result.get('size_late_vs_reference')}")
    return result
