import Hummingbird
import OutboxSQL

/// `GET /api/v1/stats`: backlog, throughput, success rate and latency
/// percentiles, overall and per subscription, with each circuit's state.
///
/// Never reads the history beyond five minutes: backlog counts cost what the
/// backlog costs (`outbox.backlog`: the queue and the unread events), and window figures
/// read the attempts of the last five minutes, which partition pruning finds.
struct APIStats: Sendable {
    let database: DatabaseClient

    /// Latency is commit to delivered (the end of a succeeded attempt minus the
    /// delivery's `created_at`); attempt duration is `outbox.attempts.duration_ms`.
    static let query = """
        WITH backlog_stats AS (
            -- The one definition of the backlog (sql/0015_operations.sql), summed for the overall row.
            SELECT subscription_id, grouping(subscription_id) AS overall,
                   sum(pending) AS pending, sum(delivering) AS delivering, sum(dead) AS dead
            FROM outbox.backlog
            GROUP BY GROUPING SETS ((subscription_id), ())
        ),
        finished AS (
            SELECT a.subscription_id,
                   a.started_at + a.duration_ms * interval '1 millisecond' AS completed_at,
                   extract(epoch FROM a.started_at - a.delivery_created_at) * 1000 + a.duration_ms AS latency_ms
            FROM outbox.attempts AS a
            WHERE a.outcome = 'succeeded'
              AND a.started_at >= now() - interval '5 minutes'
        ),
        died_stats AS (
            SELECT subscription_id, grouping(subscription_id) AS overall, count(*) AS dead_5m
            FROM outbox.deliveries
            WHERE status = 'dead'
              AND completed_at >= now() - interval '5 minutes'
            GROUP BY GROUPING SETS ((subscription_id), ())
        ),
        tried AS (
            SELECT a.subscription_id, a.status_code, a.duration_ms
            FROM outbox.attempts AS a
            WHERE a.started_at >= now() - interval '5 minutes'
        ),
        finished_stats AS (
            SELECT subscription_id, grouping(subscription_id) AS overall,
                   count(*) FILTER (WHERE completed_at >= now() - interval '1 minute') AS succeeded_1m,
                   count(*) AS succeeded_5m,
                   percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms) AS latency
            FROM finished
            GROUP BY GROUPING SETS ((subscription_id), ())
        ),
        tried_stats AS (
            SELECT subscription_id, grouping(subscription_id) AS overall,
                   count(*) AS attempts_5m,
                   count(*) FILTER (WHERE status_code BETWEEN 200 AND 299) AS ok_5m,
                   percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY duration_ms) AS duration
            FROM tried
            GROUP BY GROUPING SETS ((subscription_id), ())
        ),
        -- One JSON object of counts and rates; `f`, `t`, `b` are the rows above for one group.
        summary AS (
            SELECT g.subscription_id, g.overall,
                   json_build_object(
                       'pending', coalesce(b.pending, 0),
                       'delivering', coalesce(b.delivering, 0),
                       'dead', coalesce(b.dead, 0),
                       'succeeded_1m', coalesce(f.succeeded_1m, 0),
                       'succeeded_5m', coalesce(f.succeeded_5m, 0),
                       'dead_5m', coalesce(x.dead_5m, 0),
                       'deliveries_per_second_1m', round(coalesce(f.succeeded_1m, 0) / 60.0, 3)::float8,
                       'deliveries_per_second_5m', round(coalesce(f.succeeded_5m, 0) / 300.0, 3)::float8,
                       'attempts_5m', coalesce(t.attempts_5m, 0),
                       'success_rate_5m', round(t.ok_5m::numeric / nullif(t.attempts_5m, 0), 4)::float8,
                       'latency_ms_5m', CASE WHEN f.latency IS NULL THEN NULL ELSE json_build_object(
                           'p50', round(f.latency[1]::numeric, 1)::float8, 'p95', round(f.latency[2]::numeric, 1)::float8,
                           'p99', round(f.latency[3]::numeric, 1)::float8) END,
                       'attempt_duration_ms_5m', CASE WHEN t.duration IS NULL THEN NULL ELSE json_build_object(
                           'p50', round(t.duration[1]::numeric, 1)::float8, 'p95', round(t.duration[2]::numeric, 1)::float8,
                           'p99', round(t.duration[3]::numeric, 1)::float8) END) AS stats
            FROM (SELECT id AS subscription_id, 0 AS overall FROM outbox.subscriptions
                  UNION ALL
                  SELECT NULL, 1) AS g
            LEFT JOIN backlog_stats AS b ON b.overall = g.overall AND b.subscription_id IS NOT DISTINCT FROM g.subscription_id
            LEFT JOIN finished_stats AS f ON f.overall = g.overall AND f.subscription_id IS NOT DISTINCT FROM g.subscription_id
            LEFT JOIN died_stats AS x ON x.overall = g.overall AND x.subscription_id IS NOT DISTINCT FROM g.subscription_id
            LEFT JOIN tried_stats AS t ON t.overall = g.overall AND t.subscription_id IS NOT DISTINCT FROM g.subscription_id
        )
        SELECT json_build_object(
                   'generated_at', now(),
                   'overall', (SELECT stats FROM summary WHERE overall = 1),
                   'subscriptions', coalesce((
                       SELECT json_agg(stats::jsonb || jsonb_build_object(
                                  'name', s.name,
                                  'enabled', s.enabled,
                                  'disabled_reason', s.disabled_reason,
                                  'circuit_state', coalesce(st.circuit_state, 'closed'),
                                  'consecutive_failures', coalesce(st.consecutive_failures, 0),
                                  'last_success_at', st.last_success_at)
                              ORDER BY s.name)
                       FROM summary
                       JOIN outbox.subscriptions AS s ON s.id = summary.subscription_id
                       LEFT JOIN outbox.subscription_state AS st ON st.subscription_id = s.id
                       WHERE summary.overall = 0), '[]'))::text
        """

    func register(on routes: APIRoutes) {
        let database = self.database
        routes.add(.get, "/api/v1/stats") { request, _ in
            _ = try APIQuery(request, allowed: [])
            let text = try await database.run { connection in
                try connection.query(Self.query)[0].decode(String.self, at: 0)
            }
            return APIResponse.json(.ok, text: text)
        }
    }
}
