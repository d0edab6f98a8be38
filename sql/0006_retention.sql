-- outbox-relay schema, part 6: retention (SPEC §5).
-- Succeeded deliveries, their attempts, and events left without any delivery
-- are deleted once older than the retention period, a small batch per call.
-- Dead letters, and the events they point at, are kept until replayed or purged.

-- Retention finds old events oldest first. On a large existing outbox.events a
-- DBA may build it beforehand with CREATE INDEX CONCURRENTLY under this name
-- (migrations run in a transaction, where CONCURRENTLY is not allowed).
CREATE INDEX IF NOT EXISTS events_created_at_idx
    ON outbox.events (created_at);

-- Delete one batch of what the retention period has expired; returns how many
-- rows went from each table. Call it again while deliveries or events equals
-- batch_size. Rows are taken FOR UPDATE SKIP LOCKED, so concurrent callers
-- (other replicas) take disjoint batches, and neither they nor the relay ever
-- wait; the locks last one batch. Separate statements, so that each step sees
-- what the previous one deleted.
CREATE OR REPLACE FUNCTION outbox.prune(
    retention  interval,
    batch_size integer
) RETURNS TABLE (
    deliveries integer,
    attempts   integer,
    events     integer
)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    cutoff       timestamptz := now() - prune.retention;
    delivery_ids bigint[];
    event_seqs   bigint[];
    event_ids    bigint[] := '{}';
BEGIN
    IF prune.retention IS NULL OR prune.retention < interval '0' THEN
        RAISE EXCEPTION 'retention must be zero or more, got %', coalesce(prune.retention::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF prune.batch_size IS NULL OR prune.batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1, got %', coalesce(prune.batch_size::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- 1. Succeeded deliveries completed before the cutoff, oldest first
    --    (deliveries_succeeded_idx: completed_at WHERE status = 'succeeded').
    WITH expired AS (
        SELECT d.id
        FROM outbox.deliveries AS d
        WHERE d.status = 'succeeded'
          AND d.completed_at < cutoff
        ORDER BY d.completed_at
        LIMIT prune.batch_size
        FOR UPDATE SKIP LOCKED
    ),
    removed AS (
        DELETE FROM outbox.deliveries AS d
        USING expired
        WHERE d.id = expired.id
        RETURNING d.id, d.event_seq
    )
    SELECT array_agg(removed.id), array_agg(DISTINCT removed.event_seq)
    INTO delivery_ids, event_seqs
    FROM removed;
    prune.deliveries := coalesce(cardinality(delivery_ids), 0);

    -- 2. Their attempts (attempts_delivery_idx: delivery_id, attempt).
    prune.attempts := 0;
    IF delivery_ids IS NOT NULL THEN
        DELETE FROM outbox.attempts AS a
        WHERE a.delivery_id = ANY (delivery_ids);
        GET DIAGNOSTICS prune.attempts = ROW_COUNT;
    END IF;

    -- An event goes once it is older than the cutoff and has no delivery left at
    -- all (deliveries_event_subscription_key on (event_seq, subscription_id)
    -- answers that). A dead, pending or delivering delivery, or a succeeded one
    -- still within retention, keeps its event, so the events_forget trigger
    -- (0003) never finds a delivery to take with it. Steps 3 and 4 pick and lock
    -- the events, step 5 deletes them.

    -- 3. The events of the deliveries just deleted, when that was their last
    --    (events_pkey): the common case, at the cost of this batch only.
    IF event_seqs IS NOT NULL THEN
        SELECT coalesce(array_agg(finished.id), '{}')
        INTO event_ids
        FROM (
            SELECT e.id
            FROM outbox.events AS e
            WHERE e.id = ANY (event_seqs)
              AND e.created_at < cutoff
              AND NOT EXISTS (SELECT 1 FROM outbox.deliveries AS d WHERE d.event_seq = e.id)
            FOR UPDATE OF e SKIP LOCKED
        ) AS finished;
    END IF;

    -- 4. Once the succeeded backlog is through (a short batch): any other old
    --    event without deliveries, oldest first (events_created_at_idx): events
    --    no subscription matched, events whose dead letters were purged or whose
    --    subscription was removed, and events two concurrent callers each left
    --    behind. The scan passes over the old events that dead letters keep,
    --    once per round rather than once per batch.
    IF prune.deliveries < prune.batch_size AND cardinality(event_ids) < prune.batch_size THEN
        SELECT event_ids || coalesce(array_agg(finished.id), '{}')
        INTO event_ids
        FROM (
            SELECT e.id
            FROM outbox.events AS e
            WHERE e.created_at < cutoff
              AND e.id <> ALL (event_ids)
              AND NOT EXISTS (SELECT 1 FROM outbox.deliveries AS d WHERE d.event_seq = e.id)
            ORDER BY e.created_at
            LIMIT prune.batch_size - cardinality(event_ids)
            FOR UPDATE OF e SKIP LOCKED
        ) AS finished;
    END IF;

    -- 5. The events picked, locked since.
    prune.events := 0;
    IF cardinality(event_ids) > 0 THEN
        DELETE FROM outbox.events AS e
        WHERE e.id = ANY (event_ids);
        GET DIAGNOSTICS prune.events = ROW_COUNT;
    END IF;

    RETURN NEXT;
END
$$;
