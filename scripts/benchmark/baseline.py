"""Phase baseline: today's relay (the commit before the storage rewrite, built by
scripts/bench) in the same session, so that before and after meet the same machine,
PostgreSQL and nginx within minutes of each other. Its schema differs, so it runs in
a database of its own in the same cluster, migrated by the baseline binary itself:
W1 at the same size with its per-delivery costs, and its instructions per delivery.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import callgrind
from common import BenchError

DATABASE = "bench_baseline"


def phase_baseline(bench) -> dict:
    binary = bench.args.baseline
    bench.db.query(f"DROP DATABASE IF EXISTS {DATABASE}")
    bench.db.query(f"CREATE DATABASE {DATABASE}")
    url = urlsplit(bench.env["OUTBOX_DATABASE_URL"])
    env = dict(bench.env, PGDATABASE=DATABASE, OUTBOX_DATABASE_URL=urlunsplit(url._replace(path=f"/{DATABASE}")))
    code, out = bench._run([binary, "migrate"], "baseline-migrate", timeout=120, env=env)
    if code != 0:
        raise BenchError(f"the baseline's migrate failed: {out[-1500:]}")
    with bench.target(binary, env):
        bench.db.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        result = {"binary": binary, "commit": bench.args.baseline_commit,
                  "w1": bench._throughput_phase("baselinew1", bench.cfg["w1_events"], 1)}
        result["callgrind"] = callgrind.instructions_per_delivery(bench, "baseline")
    return result
