#!/usr/bin/env python3
"""The summary and the table of a scripts/bench run.

    python3 scripts/benchmark/report.py bench-results/bench-….json   # prints the table again

Targets come from the benchmark issue; they are reported, never enforced.
"""

from __future__ import annotations

import json
import sys

import report_phases

TARGETS = [
    # key, description, unit, limit, sense: "min" (value ≥ limit), "max" (≤) or "within" (|value - 1| ≤ limit)
    ("w1_ratio", "W1 deliveries/s ÷ combined ceiling", "%", 0.60, "min"),
    ("w2_ratio", "W2 deliveries/s ÷ combined ceiling", "%", 0.60, "min"),
    ("w3_p50_ms", "W3 latency p50", "ms", 5.0, "max"),
    ("w3_p99_ms", "W3 latency p99", "ms", 20.0, "max"),
    ("h_tps_cost", "H host TPS cost of publishing", "%", 0.15, "max"),
    ("idle_relay_cores", "Idle relay CPU", "% core", 0.01, "max"),
    ("w1_relay_peak_rss_mib", "W1 relay peak RSS", "MiB", 64.0, "max"),
    ("soak_rate_deviation", "Soak delivered vs offered, worst minute", "%", 0.01, "max"),
    ("soak_p99_growth", "Soak p99, last minute ÷ first", "x", 1.5, "max"),
    ("soak_size_growth", "Soak outbox size, late ÷ minute 5", "x", 1.2, "max"),
    ("drain_held_vs_free", "Drain rate, snapshot held ÷ free", "x", 0.8, "min"),
    ("drain_pace", "Free drain, last full window ÷ first", "x", 0.8, "min"),
    ("drain_w1_size", "W1 rate, large backlog ÷ small", "x", 0.2, "within"),
    ("hostsubs_50_vs_1", "Host TPS, 50 subscriptions ÷ 1", "x", 0.9, "min"),
    ("hostsubs_copy_vs_outbox", "Host TPS, plain copy ÷ outbox (1 sub)", "x", 1.25, "max"),
    ("peer_w1_multiple", "W1 rate, relay ÷ PgQueuer peer", "x", 3.0, "min"),
    ("peer_w2_multiple", "W2 rate, relay ÷ PgQueuer peer", "x", 3.0, "min"),
    ("baseline_w1_multiple", "W1 rate, relay ÷ baseline", "x", 1.5, "min"),
]


def _get(d, *keys):
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def add_summary(results: dict) -> None:
    """Adds results["summary"]: the ceiling, one row per workload, the targets."""
    phases = results.get("phases", {})
    ceiling = phases.get("ceiling", {})
    combined = ceiling.get("combined_rate")
    summary = {
        "ceiling": {
            "http_rate": _get(ceiling, "http_alone", "rate"),
            "db_rate": _get(ceiling, "db_alone", "rate"),
            "combined_rate": combined,
            "combined_source": ceiling.get("combined_source"),
            "model_rate": ceiling.get("model_rate"),
        },
        "rows": [],
    }
    values = {}
    for name in ("w1", "w2", "w3", "h", "idle"):
        phase = phases.get(name)
        if not phase:
            continue
        usage = phase.get("usage") or phase.get("usage_with_event") or {}
        row = {
            "workload": name,
            "expected": phase.get("expected"), "delivered": phase.get("delivered"),
            "missing": phase.get("missing"), "duplicates": phase.get("duplicates"),
            "relay_cpu_cores": usage.get("relay_cpu_cores"),
            "relay_peak_rss_mib": phase.get("relay_peak_rss_mib"),
            "postgres_cpu_cores": usage.get("postgres_cpu_cores"),
            "receiver_cpu_cores": usage.get("receiver_cpu_cores"),
            "load_tools_cpu_cores": usage.get("load_tools_cpu_cores"),
            "foreign_cpu_cores": usage.get("foreign_cpu_cores"),
        }
        quiet = phase.get("quiet") or _first_quiet(phase)
        if quiet:
            row["quiet"] = quiet.get("quiet")
            row["quiet_waited_s"] = quiet.get("waited_s")
        if name in ("w1", "w2"):
            row["rate"] = phase.get("rate")
            row["steady_rate"] = phase.get("steady_rate")
            if combined and phase.get("rate"):
                row["ratio"] = round(phase["rate"] / combined, 3)
                values[f"{name}_ratio"] = row["ratio"]
            if name == "w1":
                values["w1_relay_peak_rss_mib"] = phase.get("relay_peak_rss_mib")
        elif name == "w3":
            row["latency_ms"] = phase.get("latency_ms")
            row["producer_rate"] = phase.get("producer_rate")
            values["w3_p50_ms"] = _get(phase, "latency_ms", "p50")
            values["w3_p99_ms"] = _get(phase, "latency_ms", "p99")
        elif name == "h":
            row.update({k: phase.get(k) for k in ("tps_plain", "tps_with_event", "tps_cost")})
            values["h_tps_cost"] = phase.get("tps_cost")
        elif name == "idle":
            values["idle_relay_cores"] = usage.get("relay_cpu_cores")
        summary["rows"].append(row)
    _storage_rows(phases, summary["rows"], values)
    summary["targets"] = []
    for key, text, unit, limit, sense in TARGETS:
        value = values.get(key)
        met = None if value is None else {"min": lambda: value >= limit, "max": lambda: value <= limit,
                                          "within": lambda: abs(value - 1) <= limit}[sense]()
        summary["targets"].append({"key": key, "target": text, "unit": unit, "limit": limit,
                                   "sense": sense, "value": value, "met": met})
    results["summary"] = summary


def _run_row(workload: str, label: str, run: dict) -> dict:
    """A table row for one drain of a backlog (by the relay or the peer)."""
    usage = run.get("usage") or {}
    row = {"workload": workload, "label": label, "rate": run.get("rate"), "steady_rate": run.get("steady_rate")}
    row.update({k: run.get(k) for k in ("expected", "delivered", "missing", "duplicates", "relay_peak_rss_mib")})
    row.update({k: usage.get(k) for k in ("relay_cpu_cores", "postgres_cpu_cores", "receiver_cpu_cores",
                                          "load_tools_cpu_cores", "foreign_cpu_cores")})
    if run.get("quiet"):
        row["quiet"], row["quiet_waited_s"] = run["quiet"].get("quiet"), run["quiet"].get("waited_s")
    return row


def _ratio(a, b):
    return round(a / b, 3) if a and b else None


def _storage_rows(phases: dict, rows: list, values: dict) -> None:
    """Rows and target values of the phases added with the storage rewrite."""
    drain = phases.get("drain")
    if drain:
        n = drain["events"]
        rows.append(_run_row("drain_small", f"W1 {drain['w1_small']['events'] // 1000}k (drain)", drain["w1_small"]))
        rows.append(_run_row("drain_free", f"Drain {n // 1000}k free", drain["free"]))
        rows.append(_run_row("drain_held", f"Drain {n // 1000}k held", drain["held"]))
        values["drain_held_vs_free"] = drain.get("held_vs_free")
        values["drain_pace"] = drain["free_pace"].get("last_vs_first")
        values["drain_w1_size"] = drain.get("w1_large_vs_small")
    peer = phases.get("peer")
    if peer:
        for name in ("w1", "w2"):
            run = peer[name]
            rows.append(_run_row(f"peer_{name}", f"Peer {name.upper()} {run['events'] // 1000}k x {run['endpoints']}", run))
            values[f"peer_{name}_multiple"] = _ratio(_get(phases, name, "rate"), run.get("rate"))
    baseline = phases.get("baseline")
    if baseline:
        k = baseline["w1"]["events"] // 1000
        rows.append(_run_row("baseline_pair_relay", f"W1 {k}k beside base", baseline["relay_w1"]))
        rows.append(_run_row("baseline_w1", f"Base W1 {k}k", baseline["w1"]))
        values["baseline_w1_multiple"] = baseline.get("relay_vs_baseline")
    soak = phases.get("soak")
    if soak:
        row = _run_row("soak", f"Soak {soak['rate_target']}/s x {soak['minutes']}m", soak)
        row["per_minute"] = soak["per_minute"]
        rows.append(row)
        values["soak_rate_deviation"] = soak.get("rate_max_deviation")
        values["soak_p99_growth"] = soak.get("p99_last_vs_first")
        values["soak_size_growth"] = soak.get("size_late_vs_reference")
    hostsubs = phases.get("hostsubs")
    if hostsubs:
        values["hostsubs_50_vs_1"] = hostsubs.get("tps_50_vs_1")
        values["hostsubs_copy_vs_outbox"] = hostsubs.get("tps_copy_vs_outbox")


def _first_quiet(phase: dict):
    runs = phase.get("runs") or []
    return runs[0].get("quiet") if runs else None


def _n(value, digits=0) -> str:
    if value is None:
        return "-"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _pct(value, digits=0) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def _target_value(t: dict) -> str:
    v = t["value"]
    if v is None:
        return "-"
    if t["unit"] == "%":
        return _pct(v, 1)
    if t["unit"] == "% core":
        return f"{100 * v:.2f}% of a core"
    if t["unit"] == "x":
        return f"{v:.2f}x"
    return f"{v:.1f} {t['unit']}"


def _target_limit(t: dict) -> str:
    if t["sense"] == "within":
        return f"{1 - t['limit']:.2f}x to {1 + t['limit']:.2f}x"
    sign = "≥" if t["sense"] == "min" else "≤"
    if t["unit"] == "%":
        return f"{sign} {100 * t['limit']:.0f}%"
    if t["unit"] == "% core":
        return f"{sign} {100 * t['limit']:.0f}% of a core"
    if t["unit"] == "x":
        return f"{sign} {t['limit']:g}x"
    return f"{sign} {t['limit']:g} {t['unit']}"


def _classic_row(row: dict, p: dict) -> tuple[str, str]:
    """Name and result of a row of the first phases (ceiling to idle)."""
    name = {
        "w1": f"W1 {p.get('events', 0) // 1000}k x 1 sub",
        "w2": f"W2 {p.get('events', 0) // 1000}k x {p.get('subscriptions')} subs",
        "w3": f"W3 {p.get('rate_target')}/s x {p.get('seconds')}s",
        "h": f"H {p.get('clients')} clients",
        "idle": f"Idle {p.get('seconds')}s",
    }[row["workload"]]
    if row["workload"] in ("w1", "w2"):
        result = f"{_n(row.get('rate'))}/s = {_pct(row.get('ratio'))} of ceiling"
        if p.get("best_of_runs"):
            result += f" (best of {p['best_of_runs']})"
    elif row["workload"] == "w3":
        lat = row.get("latency_ms") or {}
        result = f"p50 {_n(lat.get('p50'), 1)} p99 {_n(lat.get('p99'), 1)} max {_n(lat.get('max'), 1)} ms"
    elif row["workload"] == "h":
        result = (f"TPS {_n(row.get('tps_plain'))} -> {_n(row.get('tps_with_event'))} "
                  f"(cost {_pct(row.get('tps_cost'), 1)})")
    else:
        result = f"relay {_n(100 * (row.get('relay_cpu_cores') or 0), 2)}% of a core"
    return name, result


def _storage_result(row: dict) -> str:
    if row["workload"] == "soak":
        minutes = row["per_minute"]
        return (f"p99 {_n(minutes[0].get('p99_ms'), 1)} -> {_n(minutes[-1].get('p99_ms'), 1)} ms, "
                f"{len(minutes)} minutes")
    return f"{_n(row.get('rate'))}/s (steady {_n(row.get('steady_rate'))}/s)"


def render(results: dict) -> str:
    add_summary(results)  # again: a file written by an older bench has an older summary
    env, settings, phases, summary = results["environment"], results["settings"], results["phases"], results["summary"]
    pg = env.get("postgres_settings", {})
    lines = []
    lines.append(f"outbox-relay benchmark ({results['mode']}) {results['started_at']}, {results.get('elapsed_seconds')} s")
    lines.append(f"  machine: {env['cores']} cores ({env['cpu_model']}), {env['memory_mib']} MiB; "
                 f"load average {env['loadavg_start'][0]} at start, {env.get('loadavg_end', ['-'])[0]} at end")
    lines.append(f"  PostgreSQL {env['postgres_version']}: fsync={pg.get('fsync')} synchronous_commit={pg.get('synchronous_commit')} "
                 f"full_page_writes={pg.get('full_page_writes')} track_commit_timestamp={pg.get('track_commit_timestamp')} "
                 f"shared_buffers={pg.get('shared_buffers')}")
    relay_env = settings.get("relay_env", {})
    lines.append(f"  relay: git {env.get('git_commit', '')[:10]}{' (dirty tree)' if env.get('git_dirty') else ''}, "
                 f"OUTBOX_MAX_IN_FLIGHT={relay_env.get('OUTBOX_MAX_IN_FLIGHT')}, "
                 f"OUTBOX_POLL_INTERVAL={relay_env.get('OUTBOX_POLL_INTERVAL')}; {env.get('nginx_version', '')}")

    c = phases.get("ceiling")
    s = summary["ceiling"]
    lines.append("")
    lines.append("Ceiling, measured in this run on the same machine (deliveries/s the parts around the relay sustain)")
    if c:
        http, db = c.get("http_alone", {}), c.get("db_alone", {})

        def others(run):
            return _n(_get(run, "usage", "foreign_cpu_cores"), 2)

        http_runs = c.get("http_runs", [http])
        rounds = c.get("rounds") or [{"db_alone": db, "combined_passes": c.get("combined_passes", [])}]
        lines.append(f"  receiver alone      wrk -t1 -c{http.get('connections')} keep-alive, {c.get('body_bytes')}-byte POST   "
                     f"{_n(s['http_rate']):>9} req/s   runs: "
                     + ", ".join(f"{_n(r.get('rate'))} (others {others(r)})" for r in http_runs))
        lines.append(f"  claim+record alone  pgbench -c{db.get('clients')}, batch {db.get('batch_size')}, relay's SQL       "
                     f"{_n(s['db_rate']):>9} /s      runs: "
                     + ", ".join(f"{_n(r['db_alone']['rate'])}{' DRY' if r['db_alone'].get('ran_dry') else ''}"
                                 f" (others {others(r['db_alone'])})" for r in rounds))
        for i, r in enumerate(rounds, 1):
            for j, p in enumerate(r.get("combined_passes", []), 1):
                lines.append(f"  both at once {i}.{j}    HTTP {_n(p['http_rate'])} + DB {_n(p['db_rate'])} "
                             f"(wrk -c{p['wrk_connections']})".ljust(54)
                             + f"{_n(p['combined']):>9} /s      (others {others(p)})")
        lines.append(f"  model 1/(1/http + 1/db), for comparison                {_n(s['model_rate']):>9} /s")
        lines.append(f"  COMBINED CEILING ({s['combined_source']}, best)                     {_n(s['combined_rate']):>9} /s")
        lines.append("  (others = CPU cores used by processes the bench did not start: noise slows a measurement down)")
    else:
        lines.append("  (not measured: " + results.get("errors", {}).get("ceiling", "?") + ")")

    lines.append("")
    header = (f"{'workload':<20}{'expected':>9}{'deliv.':>9}{'miss':>6}{'dups':>6}  {'result':<40}"
              f"{'relay CPU':>10}{'relay RSS':>10}{'PG CPU':>8}{'recv':>6}{'tools':>6}{'others':>7}  quiet")
    lines.append(header)
    lines.append("-" * len(header))
    for row in summary["rows"]:
        if row.get("label"):
            name, result = row["label"], _storage_result(row)
        else:
            name, result = _classic_row(row, phases[row["workload"]])
        quiet = "-" if row.get("quiet") is None else (
            f"{'yes' if row['quiet'] else 'NO'} ({_n(row.get('quiet_waited_s'))}s)")
        lines.append(
            f"{name:<20}{_n(row.get('expected')):>9}{_n(row.get('delivered')):>9}{_n(row.get('missing')):>6}"
            f"{_n(row.get('duplicates')):>6}  {result:<40}{_n(row.get('relay_cpu_cores'), 2):>10}"
            f"{_n(row.get('relay_peak_rss_mib'), 1):>10}{_n(row.get('postgres_cpu_cores'), 2):>8}"
            f"{_n(row.get('receiver_cpu_cores'), 2):>6}{_n(row.get('load_tools_cpu_cores'), 2):>6}"
            f"{_n(row.get('foreign_cpu_cores'), 2):>7}  {quiet}")
    if any((row.get("ratio") or 0) > 1 for row in summary["rows"]):
        lines.append("  NOTE: a ratio above 100% means the ceiling was measured under more noise than the workload"
                     " (compare the 'others' columns); treat both as lower bounds.")
    refs = _get(phases, "h", "reference_costs")
    if refs:
        lines.append(f"  H for scale: one more statement in the host transaction (SELECT 1) costs "
                     f"{_pct(refs.get('one_more_statement'), 1)}; the event's row alone (same columns, checks and "
                     f"indexes, no outbox triggers) {_pct(refs.get('event_row_alone'), 1)}; the outbox event with the "
                     f"relay stopped {_pct(refs.get('with_event_relay_stopped'), 1)}.")
    lines.append("  CPU columns are cores over the phase (W1/W2: relay start to all recorded; W3: the 30 s of load;"
                 " H: the with-event runs); RSS is the relay's peak in MiB;")
    lines.append("  tools = wrk/pgbench/psql; others = processes not started by the bench (noise); "
                 "quiet = machine quiet before the phase (seconds waited).")

    lines.append("")
    lines.append("Where the CPU goes (ms of CPU per delivery; PostgreSQL split by the client its backends serve, cores)")
    for name in ("w1", "w2", "w3"):
        p = phases.get(name)
        if not p or not p.get("cpu_ms_per_delivery"):
            continue
        per = p["cpu_ms_per_delivery"]
        split = ", ".join(f"{k} {v:.2f}" for k, v in list(p["usage"].get("postgres_cpu_cores_by_client", {}).items())[:5])
        lines.append(f"  {name.upper()}: relay {per.get('relay', 0):.3f}  PostgreSQL {per.get('postgres', 0):.3f} "
                     f"(relay's sessions {per.get('postgres_for_relay_sessions', 0):.3f})  receiver {per.get('receiver', 0):.3f}"
                     f"  | PG: {split}")
    h = phases.get("h")
    if h and h.get("usage_with_event"):
        split = ", ".join(f"{k} {v:.2f}" for k, v in list(h["usage_with_event"].get("postgres_cpu_cores_by_client", {}).items())[:5])
        lines.append(f"  H (with event): relay {_n(h['usage_with_event'].get('relay_cpu_cores'), 2)} cores, "
                     f"PostgreSQL {_n(h['usage_with_event'].get('postgres_cpu_cores'), 2)} cores | PG: {split}")
        split = ", ".join(f"{k} {v:.2f}" for k, v in list(h["usage_plain"].get("postgres_cpu_cores_by_client", {}).items())[:5])
        lines.append(f"  H (plain):      relay {_n(h['usage_plain'].get('relay_cpu_cores'), 2)} cores, "
                     f"PostgreSQL {_n(h['usage_plain'].get('postgres_cpu_cores'), 2)} cores | PG: {split}")
    waits = [("H host sessions, with event", _get(h, "session_waits_with_event")),
             ("H host sessions, plain", _get(h, "session_waits_plain")),
             ("W3 producer sessions", _get(phases, "w3", "producer", "session_waits"))]
    waits = [(label, w) for label, w in waits if w]
    if waits:
        lines.append("  What the load's PostgreSQL sessions were doing (share of samples; Lock:object = the NOTIFY commit lock):")
        for label, w in waits:
            top = sorted(w.items(), key=lambda kv: -(kv[1] or 0))[:5]
            lines.append(f"    {label:<30}" + ", ".join(f"{k} {100 * (v or 0):.0f}%" for k, v in top))
    lines += report_phases.sections(results)

    lines.append("")
    lines.append("Targets (reported, not enforced)")
    for t in summary["targets"]:
        met = {True: "met", False: "MISSED", None: "-"}[t["met"]]
        lines.append(f"  {t['target']:<40}{_target_value(t):>18}   target {_target_limit(t):<18} {met}")
    if results.get("skipped"):
        lines.append("")
        lines.append("Skipped for time: " + ", ".join(results["skipped"]))
    if results.get("errors"):
        lines.append("")
        lines.append("Errors")
        for name, error in results["errors"].items():
            lines.append(f"  {name}: {str(error).splitlines()[0][:200]}")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    with open(sys.argv[1]) as f:
        print(render(json.load(f)))
