-- outbox-relay schema, part 11: the views a DBA reads, over the new storage.
-- None of them scans the history for its answer: a delivery by event_id is an
-- index lookup in each part, and backlog counts cost what the backlog costs.

DROP VIEW IF EXISTS outbox.subscription_health;
DROP VIEW IF EXISTS outbox.dead_letters;

-- Events a subscription's cursor has not read yet, that belong to it: its
-- deliveries the relay has not reached. The (txid, id) index starts the scan at
-- the cursor's batch.
CREATE OR REPLACE VIEW outbox.unread_deliveries AS
SELECT c.subscription_id,
       e.id AS event_seq,
       e.event_id,
       e.created_at,
       e.ordering_key
FROM outbox.subscription_cursors AS c
JOIN outbox.events AS e
  ON e.txid >= pg_snapshot_xmin(c.lo)
 AND NOT outbox.cursor_has_read(c, e.txid, e.id)
WHERE outbox.event_belongs(c.subscription_id, e.txid, e.event_type);
COMMENT ON VIEW outbox.unread_deliveries IS 'Deliveries the relay has not reached yet (computed from the events and the subscriptions'' cursors).';

-- How many deliveries of a subscription its cursor has not reached, and the
-- oldest one's created_at: one pass over the unread events (what the backlog
-- costs), with the single-period shortcut of outbox.read_new_events.
CREATE OR REPLACE FUNCTION outbox.unread_backlog(subscription_id bigint, OUT unread bigint, OUT oldest timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    c outbox.subscription_cursors;
    period outbox.subscription_periods := outbox.single_open_period(unread_backlog.subscription_id);
    simple boolean := period.subscription_id IS NOT NULL;
    every_type boolean := coalesce('*' = ANY (period.event_types), false);
BEGIN
    unread := 0;
    SELECT * INTO c FROM outbox.subscription_cursors AS sc WHERE sc.subscription_id = unread_backlog.subscription_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT count(*), min(e.created_at) INTO unread, oldest
    FROM outbox.events AS e
    WHERE e.txid >= pg_snapshot_xmin(c.lo)
      AND NOT outbox.cursor_has_read(c, e.txid, e.id)
      AND CASE WHEN simple
               THEN NOT pg_visible_in_snapshot(e.txid, period.started)
                    AND (every_type OR outbox.event_type_matches(period.event_types, e.event_type))
               ELSE outbox.event_belongs(unread_backlog.subscription_id, e.txid, e.event_type) END;
END
$$;

-- One row per (event, subscription) from the moment the event commits: the queue
-- (in flight, waiting to retry, dead), the history (a succeeded delivery is its
-- last attempt), and what the relay has not reached yet (pending, id NULL).
CREATE OR REPLACE VIEW outbox.deliveries AS
SELECT q.id,
       q.event_id,
       q.subscription_id,
       q.status,
       q.attempts,
       q.next_attempt_at,
       q.last_status_code,
       q.last_error,
       q.created_at,
       q.completed_at,
       q.event_seq,
       q.ordering_key,
       q.retry_step,
       q.lease_owner,
       q.lease_expires_at
FROM outbox.delivery_queue AS q
UNION ALL
SELECT a.delivery_id,
       a.event_id,
       a.subscription_id,
       'succeeded',
       a.attempt,
       a.started_at,
       a.status_code,
       a.error,
       a.delivery_created_at,
       a.started_at + a.duration_ms * interval '1 millisecond',
       a.event_seq,
       NULL,
       NULL,
       NULL,
       NULL
FROM outbox.attempts AS a
WHERE a.outcome = 'succeeded'
  AND NOT EXISTS (SELECT 1 FROM outbox.delivery_queue AS q WHERE q.id = a.delivery_id)
  AND NOT EXISTS (SELECT 1 FROM outbox.attempts AS later
                  WHERE later.delivery_id = a.delivery_id AND later.attempt > a.attempt)
UNION ALL
SELECT NULL::bigint,
       u.event_id,
       u.subscription_id,
       'pending',
       0,
       u.created_at,
       NULL::integer,
       NULL::text,
       u.created_at,
       NULL::timestamptz,
       u.event_seq,
       NULL::text,
       0,
       NULL::text,
       NULL::timestamptz
FROM outbox.unread_deliveries AS u;
COMMENT ON VIEW outbox.deliveries IS 'One row per (event, subscription): outbox.delivery_queue, succeeded attempts, and unread events (pending, id NULL).';
COMMENT ON COLUMN outbox.deliveries.event_seq IS 'Internal: outbox.events.id, the order of events.';
COMMENT ON COLUMN outbox.deliveries.ordering_key IS 'Set only for ordered subscriptions.';
COMMENT ON COLUMN outbox.deliveries.retry_step IS 'Failed attempts since the schedule last started (replay resets it).';

-- Deliveries that exhausted their retries, with their event and subscription.
CREATE VIEW outbox.dead_letters AS
SELECT q.id              AS delivery_id,
       q.event_id,
       e.event_type,
       e.payload,
       e.created_at      AS event_created_at,
       q.subscription_id,
       s.name            AS subscription,
       s.url,
       q.attempts,
       q.last_status_code,
       q.last_error,
       q.completed_at    AS dead_at
FROM outbox.delivery_queue AS q
JOIN outbox.subscriptions AS s ON s.id = q.subscription_id
LEFT JOIN outbox.events AS e ON e.id = q.event_seq AND e.created_at = q.event_created_at
WHERE q.status = 'dead';

-- One row per subscription: its backlog, outcomes and endpoint state. succeeded
-- counts since the subscription was created (a counter, not a scan).
CREATE VIEW outbox.subscription_health AS
SELECT s.name AS subscription,
       s.enabled,
       s.disabled_reason,
       coalesce(q.pending, 0) + coalesce(u.unread, 0)                 AS pending,
       greatest(coalesce(c.claimed - st.ended, 0), 0)                 AS delivering,
       coalesce(st.succeeded, 0)                                      AS succeeded,
       coalesce(q.dead, 0)                                            AS dead,
       now() - least(q.oldest_pending, u.oldest)                      AS oldest_pending_age,
       st.last_success_at,
       coalesce(st.consecutive_failures, 0)                           AS consecutive_failures,
       coalesce(st.circuit_state, 'closed')                           AS circuit_state
FROM outbox.subscriptions AS s
LEFT JOIN outbox.subscription_state AS st ON st.subscription_id = s.id
LEFT JOIN outbox.subscription_cursors AS c ON c.subscription_id = s.id
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE d.status = 'pending') AS pending,
           count(*) FILTER (WHERE d.status = 'dead')    AS dead,
           min(d.created_at) FILTER (WHERE d.status = 'pending') AS oldest_pending
    FROM outbox.delivery_queue AS d
    WHERE d.subscription_id = s.id
      AND d.status IN ('pending', 'dead')
) AS q ON true
LEFT JOIN LATERAL outbox.unread_backlog(s.id) AS u ON true;
