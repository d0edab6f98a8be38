"""Phase drain: one backlog drained freely, and again while a REPEATABLE READ
transaction that took its snapshot before the relay started stays open for the
whole drain (as a long report or a logical backup would: VACUUM may then remove
nothing the drain leaves behind). Also the pace of the free drain over time, and
W1's rate at two backlog sizes (the free drain is the large one).

Each drain is a W1 run (one subscription, rate from relay start to last receipt).
"""

from __future__ import annotations

import contextlib

from common import BenchError, say

WINDOW_S = 10


@contextlib.contextmanager
def held_snapshot(bench, report: dict):
    """A second session holds a snapshot from before the relay starts until the drain ends."""
    holder = bench.session()
    try:
        pid = holder.value("SELECT pg_backend_pid()")
        holder.query("BEGIN ISOLATION LEVEL REPEATABLE READ")
        report["events_in_snapshot"] = int(holder.value("SELECT count(*) FROM outbox.events"))
        say(f"drain: a snapshot is held by backend {pid} ({report['events_in_snapshot']} events in it)")
        yield
        # Still there at the end of the drain: idle in its transaction, holding back the xmin horizon.
        state = bench.db.query(f"SELECT state, backend_xmin IS NOT NULL FROM pg_stat_activity WHERE pid = {pid}")
        report["holder_at_end"] = state[0][0] if state else "gone"
        if not state or state[0] != ["idle in transaction", "t"]:
            raise BenchError(f"the snapshot holder was not holding its snapshot at the end: {state}")
        holder.query("ROLLBACK")
    finally:
        holder.close()


def windows(times: list[float], window_s: float) -> list[int]:
    """Receipts per full window, counted from the first receipt."""
    if len(times) < 2:
        return []
    first = times[0]
    full = int((times[-1] - first) / window_s + 1e-9)
    counts = [0] * full
    for t in times:
        i = int((t - first) / window_s)
        if i < full:
            counts[i] += 1
    return counts


def pace(bench) -> dict:
    """Deliveries per window of the free drain: 10 s, or a quarter of the drain when it
    lasts under 40 s (so that there are always four windows to compare)."""
    times = sorted(t for t, _, _ in bench.receipts("/drainfree/"))
    span = times[-1] - times[0] if times else 0
    window_s = WINDOW_S if span >= 4 * WINDOW_S else span / 4
    counts = windows(times, window_s) if window_s > 0 else []
    return {"window_seconds": round(window_s, 3), "deliveries_per_window": counts,
            "last_vs_first": round(counts[-1] / counts[0], 3) if len(counts) >= 2 and counts[0] else None}


def phase_drain(bench) -> dict:
    cfg = bench.cfg
    small = bench._throughput_phase("drainsmall", cfg["drain_w1_small_events"], 1)
    free = bench._throughput_phase("drainfree", cfg["drain_events"], 1)
    result = {"events": cfg["drain_events"], "w1_small": small, "free": free, "free_pace": pace(bench)}
    held_report: dict = {}
    held = bench._throughput_phase("drainheld", cfg["drain_events"], 1, during=held_snapshot(bench, held_report))
    held.update(held_report)
    result["held"] = held
    if free.get("rate") and held.get("rate"):
        result["held_vs_free"] = round(held["rate"] / free["rate"], 3)
    if free.get("rate") and small.get("rate"):
        result["w1_large_vs_small"] = round(free["rate"] / small["rate"], 3)
    say(f"drain: free {free.get('rate')}/s, held {held.get('rate')}/s (x{result.get('held_vs_free')}); "
        f"pace last/first window {result['free_pace']['last_vs_first']}; "
        f"W1 {cfg['drain_events']} vs {cfg['drain_w1_small_events']} events x{result.get('w1_large_vs_small')}")
    return result
