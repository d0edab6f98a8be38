"""psql as the scripts call it against the throwaway PostgreSQL."""

from __future__ import annotations

# Unaligned, tuples only, tab-separated: what `rows` reads.
ROWS_FORMAT = ["-A", "-t", "-F", "\t"]


def psql_command(port: int | None = None, stop_on_error: bool = True) -> list[str]:
    """psql without ~/.psqlrc, quiet; with `port`, connected to 127.0.0.1:port as
    postgres to database outbox, else to what the PG* environment names."""
    argv = ["psql", "-X", "-q", "-v", f"ON_ERROR_STOP={1 if stop_on_error else 0}"]
    if port is not None:
        argv += ["-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "outbox"]
    return argv


def rows(lines) -> list[list[str]]:
    """Output lines in ROWS_FORMAT as rows of strings (blank lines skipped)."""
    return [line.split("\t") for line in lines if line]
