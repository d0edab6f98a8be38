"""What every phase module of scripts/bench shares: the log line, the error,
the event payload, percentiles and pgbench's summary."""

from __future__ import annotations

import math
import re
import sys
import time

STARTED = time.time()

# A webhook-sized event: ~300 bytes of JSON; the relay's envelope makes the body ~380 bytes.
# {g} is a SQL expression for a number (a generate_series column or a pgbench variable).
PAYLOAD_SQL = (
    "jsonb_build_object('order_id', {g}, 'customer_id', 'cus_' || md5(({g})::text), 'status', 'paid', "
    "'currency', 'EUR', 'amount_cents', 1999 + ({g}) % 1000, 'items', jsonb_build_array("
    "jsonb_build_object('sku', 'SKU-' || (({g}) % 97), 'quantity', 1 + ({g}) % 3, 'price_cents', 999), "
    "jsonb_build_object('sku', 'SKU-' || (({g}) % 89), 'quantity', 1, 'price_cents', 1000)), "
    "'note', repeat('x', 40))"
)


class BenchError(Exception):
    pass


def say(message: str) -> None:
    print(f"bench [{time.time() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def parse_pgbench(text: str) -> dict:
    out: dict = {}
    if m := re.search(r"number of transactions actually processed: (\d+)", text):
        out["transactions"] = int(m.group(1))
    if m := re.search(r"number of failed transactions: (\d+)", text):
        out["failed"] = int(m.group(1))
    if m := re.search(r"tps = ([\d.]+) \(without initial connection time\)", text):
        out["tps"] = float(m.group(1))
    if m := re.search(r"latency average = ([\d.]+) ms", text):
        out["latency_avg_ms"] = float(m.group(1))
    if m := re.search(r"rate limit schedule lag: avg ([\d.]+) \(max ([\d.]+)\) ms", text):
        out["schedule_lag_avg_ms"], out["schedule_lag_max_ms"] = float(m.group(1)), float(m.group(2))
    return out
