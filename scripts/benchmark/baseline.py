"""Phase baseline: today's relay (the commit before the storage rewrite, built by
scripts/bench) in the same session, so that before and after meet the same machine,
PostgreSQL and nginx. Its schema differs, so it runs in a database of its own in
the same cluster, migrated by the baseline binary itself.

W1 runs in pairs, this relay then the baseline, as many times as the run has
rounds; each keeps its best (noise only slows things down), and both had the same
chances. Also the baseline's per-delivery costs and instructions per delivery.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import callgrind
from common import BenchError, say

DATABASE = "bench_baseline"


def best(runs: list[dict]) -> dict:
    return max(runs, key=lambda r: r.get("rate") or 0)


def phase_baseline(bench) -> dict:
    cfg, binary = bench.cfg, bench.args.baseline
    bench.db.query(f"DROP DATABASE IF EXISTS {DATABASE}")
    bench.db.query(f"CREATE DATABASE {DATABASE}")
    url = urlsplit(bench.env["OUTBOX_DATABASE_URL"])
    env = dict(bench.env, PGDATABASE=DATABASE, OUTBOX_DATABASE_URL=urlunsplit(url._replace(path=f"/{DATABASE}")))
    code, out = bench._run([binary, "migrate"], "baseline-migrate", timeout=120, env=env)
    if code != 0:
        raise BenchError(f"the baseline's migrate failed: {out[-1500:]}")
    with bench.target(binary, env):
        bench.db.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    relay_runs, baseline_runs = [], []
    for rnd in range(1, cfg["rounds"] + 1):
        if rnd > 1 and bench.time_left() < cfg["reserve_s"]:
            break
        relay_runs.append(bench._throughput_phase(f"pairnew{rnd}", cfg["w1_events"], 1))
        with bench.target(binary, env):
            baseline_runs.append(bench._throughput_phase(f"pairbase{rnd}", cfg["w1_events"], 1))
    with bench.target(binary, env):
        instructions = callgrind.instructions_per_delivery(bench, "baseline")
    relay, baseline = best(relay_runs), best(baseline_runs)
    multiple = round(relay["rate"] / baseline["rate"], 3) if relay.get("rate") and baseline.get("rate") else None
    say(f"baseline: W1 {relay.get('rate')}/s with this relay, {baseline.get('rate')}/s with the baseline: x{multiple}")
    return {"binary": binary, "commit": bench.args.baseline_commit, "w1": baseline, "relay_w1": relay,
            "w1_rates": {"relay": [r.get("rate") for r in relay_runs],
                         "baseline": [r.get("rate") for r in baseline_runs]},
            "relay_vs_baseline": multiple, "callgrind": instructions}
