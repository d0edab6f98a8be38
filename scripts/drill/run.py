"""Runs the fault drills and prints one result line per drill (see scripts/drills)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import traceback

import drills_core
import drills_faults
import drills_input

DRILLS = {
    "kill9": drills_core.kill9,
    "pg-restart": drills_core.pg_restart,
    "receiver-outage": drills_core.receiver_outage,
    "replicas": drills_core.replicas,
    "network": drills_faults.network,
    "slow-receiver": drills_faults.slow_receiver,
    "bad-input": drills_input.bad_input,
    "long-tx": drills_core.long_transaction,
}

# Hard limit per drill (seconds): a drill that runs past it fails and is torn down.
LIMIT_S = {"quick": 240, "full": 900}

KEYS = ("events", "deliveries", "missing", "duplicates")


def line(name: str, ok: bool, seconds: float, result: dict) -> str:
    head = f"{'PASS' if ok else 'FAIL'} {name:<16} {seconds:6.1f}s"
    main = " ".join(f"{k}={result[k]}" for k in KEYS if k in result)
    rest = " ".join(f"{k}={json.dumps(v) if isinstance(v, (list, dict)) else v}"
                    for k, v in result.items() if k not in KEYS)
    return " ".join(part for part in (head, main, rest) if part)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI (about 2-3 min)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--skip", action="append", default=[], metavar="DRILL",
                        help="leave this drill out (repeatable)")
    parser.add_argument("names", nargs="*", help=f"drills to run (default all): {' '.join(DRILLS)}")
    args = parser.parse_args()
    unknown = [n for n in args.names + args.skip if n not in DRILLS]
    if unknown:
        parser.error(f"unknown drill(s) {unknown}; known: {' '.join(DRILLS)}")
    # SIGTERM/SIGINT from the entry script's trap unwind the drill, whose context
    # manager stops everything it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    limit = LIMIT_S["quick" if args.quick else "full"]

    def overrun(*_):
        raise drills_core.DrillFailure(f"the drill ran past its {limit} s limit")

    signal.signal(signal.SIGALRM, overrun)
    failures, results = 0, []
    for name in [n for n in args.names or list(DRILLS) if n not in args.skip]:
        began = time.monotonic()
        signal.alarm(limit)
        try:
            result, ok = DRILLS[name](args.quick), True
        except Exception as error:  # noqa: BLE001 - report every drill, then fail
            result, ok = {"error": str(error)}, False
            if not isinstance(error, drills_core.DrillFailure):
                traceback.print_exc()
        signal.alarm(0)
        seconds = time.monotonic() - began
        failures += not ok
        print(line(name, ok, seconds, result), flush=True)
        results.append({"drill": name, "ok": ok, "seconds": round(seconds, 1), **result})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print(f"{len(results) - failures}/{len(results)} drills passed{' (quick)' if args.quick else ''}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
