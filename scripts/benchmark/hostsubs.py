"""Phase hostsubs: what the host transaction pays for its outbox event as the
subscriptions matching it grow (1, 10, 50), with the relay stopped, next to the
same transaction writing its row to a plain copy of outbox.events.

With the relay stopped nothing competes with the host for the cores: this is the
cost inside the host's own transaction. Variants are interleaved and repeated, as
in phase H, so that machine noise hits all alike; each run starts from empty
tables. The backlog is removed afterwards so that no later phase drains it.
"""

from __future__ import annotations

import host_transaction
from host_transaction import PLAIN_COPY

# Variant -> subscriptions matching the event (the plain copy has no outbox event at all).
VARIANTS = {"subscriptions_1": 1, "subscriptions_10": 10, "subscriptions_50": 50, "plain_copy": 0}
EVENT_TYPE = "bench.hostsubs"


def phase_hostsubs(bench) -> dict:
    cfg, db = bench.cfg, bench.db
    host_transaction.prepare(bench)
    runs = []
    try:
        for rnd in range(cfg["h_rounds"]):
            if rnd > 0 and bench.time_left() < cfg["reserve_s"]:
                break
            for kind, subscriptions in VARIANTS.items():
                bench.reset_data()
                db.query(f"TRUNCATE {PLAIN_COPY}")
                for i in range(subscriptions):
                    bench.subscribe(f"hostsubs-{i}", f"/hostsubs/{i}", EVENT_TYPE)
                bench.settle()
                table = "outbox.events" if subscriptions else PLAIN_COPY
                runs.append(host_transaction.measure(bench, "hostsubs", kind, rnd + 1,
                                                     host_transaction.script(bench, table, EVENT_TYPE)))
    finally:
        bench.reset_data()
        db.query(f"TRUNCATE {PLAIN_COPY}")
    tps = {kind: host_transaction.mean_tps(runs, kind) for kind in VARIANTS}
    one = tps["subscriptions_1"]

    def ratio(kind):
        return round(tps[kind] / one, 3) if one and tps[kind] else None

    return {
        "clients": cfg["h_clients"], "seconds_per_run": cfg["h_seconds"], "runs": runs, "tps": tps,
        "tps_50_vs_1": ratio("subscriptions_50"), "tps_10_vs_1": ratio("subscriptions_10"),
        "tps_copy_vs_outbox": ratio("plain_copy"),
    }
