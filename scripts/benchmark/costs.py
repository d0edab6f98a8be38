"""Per-delivery costs that travel between machines: the buffers PostgreSQL touched
(pg_stat_statements) and the WAL it wrote, over a timed window.

Unlike seconds, these hardly depend on how fast or how busy the machine is. WAL
is the pg_current_wal_lsn() difference, so it includes autovacuum and any
checkpoint in the window, as the work caused them. The
bench's own session sets pg_stat_statements.track = none, so its polling is not
counted; every other statement of the cluster is (the relay's, a peer's).
Needs shared_preload_libraries = 'pg_stat_statements' (scripts/bench sets it) and
the extension in the database the window is read from.
"""

from __future__ import annotations


class CostWindow:
    """Open it just before the work starts; close it once the work's sessions have
    ended (a statement's buffers are counted when it finishes)."""

    def __init__(self, db):
        self.db = db
        db.query("SELECT pg_stat_statements_reset()")
        self.start_lsn = db.value("SELECT pg_current_wal_lsn()")
        self.buffers = self.wal = 0
        self.statements: list[dict] = []

    def close(self) -> None:
        self.buffers = int(self.db.value(
            "SELECT coalesce(sum(shared_blks_hit + shared_blks_read), 0) FROM pg_stat_statements"))
        self.wal = int(float(self.db.value(f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{self.start_lsn}')")))
        self.statements = self.db.query(
            "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 60), calls, rows,"
            " round(total_exec_time::numeric, 1), shared_blks_hit + shared_blks_read"
            " FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 8")

    def per_delivery(self, deliveries: int) -> dict:
        return {
            "deliveries": deliveries, "buffer_touches": self.buffers, "wal_bytes": self.wal,
            "buffer_touches_per_delivery": round(self.buffers / deliveries, 2) if deliveries else None,
            "wal_bytes_per_delivery": round(self.wal / deliveries, 1) if deliveries else None,
            "top_statements": [
                {"query": q, "calls": int(c), "rows": int(r), "total_ms": float(t), "buffers": int(b)}
                for q, c, r, t, b in self.statements],
        }
