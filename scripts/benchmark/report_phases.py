"""The report's sections for the phases added with the storage rewrite: soak,
drain, host cost by subscriptions, the PgQueuer peer, per-delivery costs and the
baseline (scripts/benchmark/report.py prints them after the workload table)."""

from __future__ import annotations

MIB = 1024 * 1024


def _n(value, digits=0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def soak(p: dict) -> list[str]:
    settings = ", ".join(f"{k}={v}" for k, v in p["relay_settings"].items())
    lines = [f"Soak: {p['rate_target']} events/s for {p['minutes']} min, relay with {settings}",
             f"  {'minute':>6}{'offered/s':>11}{'delivered/s':>13}{'deliv/offer':>13}{'p50 ms':>9}{'p99 ms':>9}"
             f"{'outbox MiB':>12}{'relay RSS':>11}"]
    for m in p["per_minute"]:
        lines.append(f"  {m['minute']:>6}{_n(m['offered_rate'], 1):>11}{_n(m['delivered_rate'], 1):>13}"
                     f"{_n(m['delivered_vs_offered'], 4):>13}{_n(m['p50_ms'], 1):>9}{_n(m['p99_ms'], 1):>9}"
                     f"{_n((m.get('schema_bytes') or 0) / MIB, 1):>12}{_n(m.get('relay_rss_mib'), 1):>11}")
    if p.get("size_reference_minute"):
        lines.append(f"  size: the largest of the last minutes ÷ minute {p['size_reference_minute']} = "
                     f"{_n(p.get('size_late_vs_reference'), 2)}; p99 last ÷ first minute = "
                     f"{_n(p.get('p99_last_vs_first'), 2)}; delivered vs offered at worst "
                     f"{_n(100 * (p.get('rate_max_deviation') or 0), 2)}% off")
    dead = p.get("dead_tuples_at_end") or {}
    lines.append("  dead tuples at the end: " + (", ".join(
        f"{name} {v['n_dead_tup']:,}" for name, v in sorted(dead.items(), key=lambda kv: -kv[1]["n_dead_tup"])
        if v["n_dead_tup"]) or "none"))
    return lines


def drain(p: dict) -> list[str]:
    free, held, small, pace = p["free"], p["held"], p["w1_small"], p["free_pace"]
    return [
        f"Drain: {p['events']:,} events, 1 subscription",
        f"  free {_n(free.get('rate'))}/s; with a REPEATABLE READ snapshot held from before the relay started to the"
        f" end ({held.get('events_in_snapshot'):,} events in it) {_n(held.get('rate'))}/s: held ÷ free "
        f"{_n(p.get('held_vs_free'), 2)}",
        f"  free drain, deliveries per {pace['window_seconds']} s window from the first receipt: "
        + ", ".join(f"{c:,}" for c in pace["deliveries_per_window"])
        + f" (last full ÷ first {_n(pace['last_vs_first'], 2)})",
        f"  W1 at {small['events']:,} events {_n(small.get('rate'))}/s, at {p['events']:,} (the free drain) "
        f"{_n(free.get('rate'))}/s: large ÷ small {_n(p.get('w1_large_vs_small'), 2)} (from the first receipt: "
        f"{_n(small.get('steady_rate'))}/s and {_n(free.get('steady_rate'))}/s)",
    ]


def hostsubs(p: dict) -> list[str]:
    tps = p["tps"]
    runs = sum(1 for r in p["runs"] if r["kind"] == "plain_copy")
    return [
        f"Host transaction with its event, relay stopped ({p['clients']} clients, {p['seconds_per_run']} s runs, "
        f"mean of {runs} each)",
        f"  TPS with 1 subscription {_n(tps['subscriptions_1'])}, 10: {_n(tps['subscriptions_10'])}, "
        f"50: {_n(tps['subscriptions_50'])} (50 ÷ 1 = {_n(p.get('tps_50_vs_1'), 2)}); the row in a plain copy of "
        f"outbox.events instead {_n(tps['plain_copy'])} (copy ÷ outbox = {_n(p.get('tps_copy_vs_outbox'), 2)})",
    ]


def peer(p: dict, phases: dict) -> list[str]:
    lines = [f"Peer: {p['peer']}; {p['settings']}"]
    for name in ("w1", "w2"):
        run, relay = p[name], phases.get(name) or {}
        multiple = relay.get("rate") / run["rate"] if relay.get("rate") and run.get("rate") else None
        lines.append(f"  {name.upper()}-like, {run['events']:,} events x {run['endpoints']} endpoint(s): "
                     f"{_n(run.get('rate'))}/s (steady {_n(run.get('steady_rate'))}/s, first receipt after "
                     f"{_n(run.get('seconds_to_first_receipt'), 1)} s); the relay's {name.upper()} "
                     f"{_n(relay.get('rate'))}/s = {_n(multiple, 1)}x")
    return lines


def costs(phases: dict) -> list[str]:
    """Buffers and WAL per delivery of every backlog drained, instructions per delivery."""
    runs = [("W1", phases.get("w1")), ("W2", phases.get("w2")),
            ("Drain free", (phases.get("drain") or {}).get("free")),
            ("Drain held", (phases.get("drain") or {}).get("held")),
            ("Baseline W1", (phases.get("baseline") or {}).get("w1")),
            ("Peer W1", (phases.get("peer") or {}).get("w1")), ("Peer W2", (phases.get("peer") or {}).get("w2"))]
    lines = ["Per-delivery costs that travel between machines, from relay start to drained (buffers: "
             "pg_stat_statements shared_blks_hit + read, every statement but the bench's; WAL: LSN difference;",
             "  a relay that fans out at publish time, as the baseline does, wrote its deliveries' rows before that)",
             f"  {'':<14}{'buffers':>10}{'WAL bytes':>11}"]
    for label, run in runs:
        if run and run.get("costs"):
            c = run["costs"]
            lines.append(f"  {label:<14}{_n(c['buffer_touches_per_delivery'], 1):>10}{_n(c['wal_bytes_per_delivery']):>11}")
    for label, cg in (("relay", phases.get("callgrind")), ("baseline", (phases.get("baseline") or {}).get("callgrind"))):
        if cg:
            sizes = " and ".join(f"{r['delivered']:,}" for r in cg["runs"])
            lines.append(f"  instructions per delivery, {label} (callgrind, runs of {sizes}): "
                         f"{_n(cg['instructions_per_delivery'])}")
    return lines


def baseline(p: dict) -> list[str]:
    rates = p["w1_rates"]
    return [f"Before / after: W1 in pairs, this relay then the baseline {p['commit']} ({p['binary']}, database "
            f"bench_baseline): this relay " + ", ".join(f"{_n(r)}/s" for r in rates["relay"])
            + "; the baseline " + ", ".join(f"{_n(r)}/s" for r in rates["baseline"])
            + f"; best ÷ best = {_n(p.get('relay_vs_baseline'), 2)}x"]


def sections(results: dict) -> list[str]:
    phases = results["phases"]
    lines: list[str] = []
    for name, render in (("soak", soak), ("drain", drain), ("hostsubs", hostsubs)):
        if phases.get(name):
            lines += [""] + render(phases[name])
    if phases.get("peer"):
        lines += [""] + peer(phases["peer"], phases)
    if phases.get("baseline"):
        lines += [""] + baseline(phases["baseline"])
    cost_lines = costs(phases)
    if len(cost_lines) > 3:
        lines += [""] + cost_lines
    for note in results.get("notes", []):
        lines.append(f"NOTE: {note}")
    return lines
