"""The relay's instructions per delivery, counted by valgrind's callgrind: a count of
instructions, not of seconds, so it hardly moves with the machine or its noise.

Two W1-like runs under callgrind (one subscription, a small and a larger backlog);
instructions per delivery = difference of the totals / difference of the
deliveries, so that start-up and shutdown cancel out. Each run is bounded in time.

valgrind 3.19 (Debian 12) needs two things of a Swift 6 binary: no DWARF 5 debug
information (it runs a copy made with objcopy --strip-debug: the same code) and
sigsuspend_copy.c preloaded (see there).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from common import BenchError, say

SHIM = Path(__file__).with_name("sigsuspend_copy.c")


def total_instructions(path: Path) -> int:
    """The `totals:` (or `summary:`) line of a callgrind output file."""
    text = path.read_text(errors="replace")
    match = re.search(r"^(?:totals|summary):\s+(\d+)", text, re.MULTILINE)
    if not match:
        raise BenchError(f"no instruction total in {path}")
    return int(match.group(1))


def prepare(bench, label: str) -> tuple[Path, Path]:
    """The stripped copy of the relay the bench points at, and the preload shim."""
    binary, shim = bench.work / f"outbox-relay-{label}-nodebug", bench.work / "sigsuspend_copy.so"
    subprocess.run(["objcopy", "--strip-debug", bench.relay_bin, str(binary)], check=True, timeout=120)
    if not shim.exists():
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(shim), str(SHIM)], check=True, timeout=120)
    return binary, shim


def count(bench, label: str, events: int, binary: Path, shim: Path) -> dict:
    name = f"cg{label}{events}"
    bench.reset_data()
    path = bench.subscribe(f"{name}-0", f"/{name}/0")
    bench.insert_events(events, f"bench.{name}")
    bench.settle()
    out = bench.work / f"callgrind-{name}.out"
    bench.start_relay(name, settings={"LD_PRELOAD": str(shim)},
                      command=["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", str(binary)])
    try:
        drained, _ = bench.wait_drained(bench.cfg["callgrind_timeout_s"])
    finally:
        # callgrind writes its file as the relay exits; a slow exit under valgrind is normal.
        stop = bench.stop_relay(grace=120)
    tally, _, _ = bench.account(f"/{name}/", [path], f"bench.{name}")
    if not drained or tally["missing"]:
        raise BenchError(f"callgrind run of {events} events did not drain ({tally})")
    return {"events": events, "instructions": total_instructions(out), **tally, "relay_stop": stop}


def instructions_per_delivery(bench, label: str) -> dict:
    """Both runs with the relay binary and database the bench points at now."""
    binary, shim = prepare(bench, label)
    runs = [count(bench, label, n, binary, shim) for n in bench.cfg["callgrind_events"]]
    small, large = runs
    per = (large["instructions"] - small["instructions"]) / max(1, large["delivered"] - small["delivered"])
    say(f"callgrind {label}: {per:,.0f} instructions per delivery "
        f"({small['instructions']:,} for {small['delivered']}, {large['instructions']:,} for {large['delivered']})")
    return {"runs": runs, "instructions_per_delivery": round(per)}


def phase_callgrind(bench) -> dict:
    return instructions_per_delivery(bench, "new")
