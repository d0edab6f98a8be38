-- outbox-relay schema, part 8: storage for the long run.
--
-- The host's transaction writes its event row and nothing else: fan-out moved to
-- the relay, which reads each subscription's new events by transaction snapshot
-- (PgQ's batches: an event belongs to the first snapshot that sees its writer
-- committed, so commit order never loses a row). History is append-only and
-- partitioned by time (events by created_at, attempts by started_at); retention
-- drops whole partitions (0011). What still has to happen lives in the small
-- outbox.delivery_queue: work in flight, waiting to retry, and dead letters.
--
-- On a database made by 0001-0007 this converts the old tables in place: the old
-- events and attempts become the first partition of the new tables, unfinished
-- deliveries move to the queue (in-flight ones pending again: stop the old
-- relays first), and a succeeded delivery lives on as its last attempt.
--
-- Advisory locks a DBA may meet in pg_locks (classid, objid as pg_locks shows
-- them for two-key locks):
--   1868722808, subscription id   claim: one replica claims a subscription at a time (0010)
--   1868722809, 0                 wake-up: held by a sleeping relay's session; publishers try it shared (0009, 0010)
--   1868722810, 0                 partition upkeep: one replica creates and drops partitions (0012)
--   0x6F7574626F786D67 (one key)  `outbox-relay migrate`

-- The old fan-out in the host's transaction, and row-by-row retention, go. (At
-- the top level, not in the conversion: a DBA who applies 0003 or 0006 again by
-- hand gets them back until this file is applied again.)
DROP TRIGGER IF EXISTS events_fan_out ON outbox.events;
DROP TRIGGER IF EXISTS events_forget ON outbox.events;
DROP FUNCTION IF EXISTS outbox.fan_out_events();
DROP FUNCTION IF EXISTS outbox.forget_events();
DROP FUNCTION IF EXISTS outbox.prune(interval, integer);
DROP INDEX IF EXISTS outbox.events_created_at_idx;
-- The old views read the old deliveries table; 0011 makes them anew.
DROP VIEW IF EXISTS outbox.subscription_health;
DROP VIEW IF EXISTS outbox.dead_letters;

-- Is an event's row well formed? Raises check_violation with a message that
-- names the problem, else true. The CHECK constraint events_valid calls it, so
-- it holds on INSERT and UPDATE alike, at a constraint's cost (no trigger).
CREATE OR REPLACE FUNCTION outbox.valid_event(
    event_type   text,
    event_id     text,
    payload      jsonb,
    ordering_key text,
    headers      jsonb
) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
    payload_bytes integer;
BEGIN
    IF event_type IS NULL OR event_type = '' THEN
        RAISE EXCEPTION 'outbox.events.event_type is empty: give a type such as ''order.created'''
            USING ERRCODE = 'check_violation';
    END IF;
    IF NOT outbox.is_valid_event_type(event_type) THEN
        RAISE EXCEPTION 'outbox.events.event_type "%" is malformed: it must start with a letter or digit, use only letters, digits and _ . : - and be at most 255 characters', left(event_type, 300)
            USING ERRCODE = 'check_violation';
    END IF;
    IF event_id IS NULL OR octet_length(event_id) > 255 OR event_id !~ '^[\x21-\x7e]+$' THEN
        RAISE EXCEPTION 'outbox.events.event_id must be 1 to 255 printable ASCII characters without spaces (it is sent as the webhook-id header)'
            USING ERRCODE = 'check_violation';
    END IF;
    payload_bytes := octet_length(payload::text);
    IF payload_bytes > outbox.max_payload_bytes() THEN
        RAISE EXCEPTION 'outbox.events.payload is % bytes, over the limit of % bytes', payload_bytes, outbox.max_payload_bytes()
            USING ERRCODE = 'check_violation',
                  HINT = 'Publish a reference to large data instead, or raise outbox.max_payload_bytes.';
    END IF;
    IF ordering_key IS NOT NULL AND (ordering_key = '' OR length(ordering_key) > 255) THEN
        RAISE EXCEPTION 'outbox.events.ordering_key must be 1 to 255 characters, got %', length(ordering_key)
            USING ERRCODE = 'check_violation';
    END IF;
    IF headers IS NOT NULL THEN
        PERFORM outbox.check_headers(headers, 'outbox.events.headers');
    END IF;
    RETURN true;
END
$$;

-- 1. Events: partitioned by created_at. txid is the writing transaction, which
--    places the event in the relay's snapshot batches. event_id is unique per
--    partition by a unique index (the relay creates one with each partition),
--    and across partitions by the check in outbox.check_event(). The other
--    columns are checked by the constraint events_valid.
DO $convert_events$
DECLARE
    upper_bound timestamptz;
    next_id bigint;
BEGIN
    IF (SELECT c.relkind FROM pg_class AS c WHERE c.oid = to_regclass('outbox.events')) IS DISTINCT FROM 'r' THEN
        RETURN;
    END IF;
    -- No event may commit between the old fan-out and the new cursors.
    LOCK TABLE outbox.events, outbox.deliveries, outbox.attempts, outbox.subscriptions IN ACCESS EXCLUSIVE MODE;
    DROP TRIGGER IF EXISTS events_check ON outbox.events;
    ALTER TABLE outbox.events RENAME TO events_before_partitioning;
    ALTER TABLE outbox.events_before_partitioning RENAME CONSTRAINT events_event_id_key TO events_before_partitioning_event_id_key;
    ALTER TABLE outbox.events_before_partitioning DROP CONSTRAINT events_pkey;
    SELECT coalesce(max(e.id), 0) + 1 INTO next_id FROM outbox.events_before_partitioning AS e;
    ALTER TABLE outbox.events_before_partitioning ALTER COLUMN id DROP IDENTITY;
    -- Fanned out by the old trigger already: a transaction id every snapshot sees.
    ALTER TABLE outbox.events_before_partitioning ADD COLUMN txid xid8 NOT NULL DEFAULT '3';
    ALTER TABLE outbox.events_before_partitioning ALTER COLUMN txid DROP DEFAULT;
    ALTER TABLE outbox.events_before_partitioning ALTER COLUMN event_id DROP DEFAULT;

    CREATE SEQUENCE outbox.events_id_seq;
    PERFORM setval('outbox.events_id_seq', next_id, false);
    CREATE TABLE outbox.events (
        id           bigint NOT NULL DEFAULT nextval('outbox.events_id_seq'),
        event_id     text NOT NULL,
        event_type   text NOT NULL,
        payload      jsonb NOT NULL,
        ordering_key text,
        headers      jsonb,
        created_at   timestamptz NOT NULL DEFAULT now(),
        txid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
        CONSTRAINT events_pkey PRIMARY KEY (id, created_at),
        CONSTRAINT events_valid CHECK (outbox.valid_event(event_type, event_id, payload, ordering_key, headers))
    ) PARTITION BY RANGE (created_at);
    ALTER SEQUENCE outbox.events_id_seq OWNED BY outbox.events.id;
    -- The relay reads each subscription's new events in (txid, id) order.
    CREATE INDEX events_txid_idx ON outbox.events (txid, id);

    -- The old rows become the partition of everything before now (none: no partition).
    SELECT max(e.created_at) + interval '1 microsecond' INTO upper_bound FROM outbox.events_before_partitioning AS e;
    IF upper_bound IS NULL THEN
        DROP TABLE outbox.events_before_partitioning;
    ELSE
        ALTER TABLE outbox.events_before_partitioning
            ADD CONSTRAINT events_valid CHECK (outbox.valid_event(event_type, event_id, payload, ordering_key, headers));
        EXECUTE format('ALTER TABLE outbox.events ATTACH PARTITION outbox.events_before_partitioning FOR VALUES FROM (MINVALUE) TO (%L)',
                       greatest(upper_bound, now()));
    END IF;
END
$convert_events$;

COMMENT ON TABLE outbox.events IS 'Published events, partitioned by created_at. event_id is the public id (webhook-id); id is the internal order; txid the writing transaction.';
COMMENT ON COLUMN outbox.events.event_id IS 'Generated (a UUID) when the insert leaves it NULL; unique among the events kept.';

-- Rows whose created_at no time partition covers yet (the relay creates them
-- ahead; this catches a clock far off or a relay down for long). The relay moves
-- them into their partition when it creates it, and it holds the events that
-- dead letters or unread deliveries keep after their partition was dropped.
CREATE TABLE IF NOT EXISTS outbox.events_default PARTITION OF outbox.events DEFAULT;
CREATE UNIQUE INDEX IF NOT EXISTS events_default_event_id_key ON outbox.events_default (event_id);

-- 2. Attempts: partitioned by started_at, one row per HTTP attempt. A delivery
--    that succeeded lives on as its last attempt (outcome 'succeeded'): finishing
--    it writes this one append-only row, nothing else that stays.
DO $convert_attempts$
DECLARE
    upper_bound timestamptz;
    next_id bigint;
BEGIN
    IF (SELECT c.relkind FROM pg_class AS c WHERE c.oid = to_regclass('outbox.attempts')) IS DISTINCT FROM 'r' THEN
        RETURN;
    END IF;
    ALTER TABLE outbox.attempts RENAME TO attempts_before_partitioning;
    ALTER TABLE outbox.attempts_before_partitioning DROP CONSTRAINT attempts_pkey;
    ALTER INDEX outbox.attempts_delivery_idx RENAME TO attempts_before_partitioning_delivery_idx;
    SELECT coalesce(max(a.id), 0) + 1 INTO next_id FROM outbox.attempts_before_partitioning AS a;
    ALTER TABLE outbox.attempts_before_partitioning ALTER COLUMN id DROP IDENTITY;
    ALTER TABLE outbox.attempts_before_partitioning
        ADD COLUMN subscription_id bigint,
        ADD COLUMN event_seq bigint,
        ADD COLUMN delivery_created_at timestamptz,
        ADD COLUMN outcome text;
    -- A succeeded delivery's last attempt now stands for it.
    UPDATE outbox.attempts_before_partitioning AS a
    SET outcome = 'succeeded',
        subscription_id = d.subscription_id,
        event_seq = d.event_seq,
        delivery_created_at = d.created_at
    FROM outbox.deliveries AS d
    WHERE d.status = 'succeeded'
      AND a.delivery_id = d.id
      AND a.attempt = d.attempts;

    CREATE SEQUENCE outbox.attempts_id_seq;
    PERFORM setval('outbox.attempts_id_seq', next_id, false);
    CREATE TABLE outbox.attempts (
        id                  bigint NOT NULL DEFAULT nextval('outbox.attempts_id_seq'),
        delivery_id         bigint NOT NULL,
        event_id            text NOT NULL,
        attempt             integer NOT NULL,
        started_at          timestamptz NOT NULL,
        duration_ms         double precision NOT NULL,
        status_code         integer,
        error               text,
        response_excerpt    text,
        subscription_id     bigint,
        event_seq           bigint,
        delivery_created_at timestamptz,
        -- 'succeeded', 'retry' or 'dead'; NULL when the relay no longer held the
        -- delivery's lease (another replica took it over).
        outcome             text
    ) PARTITION BY RANGE (started_at);
    ALTER SEQUENCE outbox.attempts_id_seq OWNED BY outbox.attempts.id;
    CREATE INDEX attempts_delivery_idx ON outbox.attempts (delivery_id, attempt);
    CREATE INDEX attempts_event_id_idx ON outbox.attempts (event_id);

    SELECT max(a.started_at) + interval '1 microsecond' INTO upper_bound FROM outbox.attempts_before_partitioning AS a;
    IF upper_bound IS NULL THEN
        DROP TABLE outbox.attempts_before_partitioning;
    ELSE
        EXECUTE format('ALTER TABLE outbox.attempts ATTACH PARTITION outbox.attempts_before_partitioning FOR VALUES FROM (MINVALUE) TO (%L)',
                       greatest(upper_bound, now()));
    END IF;
END
$convert_attempts$;

COMMENT ON TABLE outbox.attempts IS 'One row per HTTP attempt, partitioned by started_at. A succeeded delivery is its last attempt (outcome = succeeded).';

CREATE TABLE IF NOT EXISTS outbox.attempts_default PARTITION OF outbox.attempts DEFAULT;

-- 3. The delivery queue: one row per (event, subscription) that the relay has
--    reached and not finished — in flight, waiting to retry, or dead (a dead
--    letter, kept until replayed or purged). Its size is the backlog in flight
--    plus the retries plus the dead letters, never the history. A delivery
--    claimed for its first attempt is inserted already leased and deleted on
--    success: the common path updates no row here, and no index the claim
--    scans (the pending index) ever holds it. Lease renewal changes no indexed
--    column, and fillfactor leaves room on the page, so it is a HOT update.
CREATE TABLE IF NOT EXISTS outbox.delivery_queue (
    id               bigint PRIMARY KEY,
    event_id         text NOT NULL,
    event_seq        bigint NOT NULL,
    event_created_at timestamptz NOT NULL,
    subscription_id  bigint NOT NULL,
    ordering_key     text,
    status           text NOT NULL
        CONSTRAINT delivery_queue_status_check CHECK (status IN ('pending', 'delivering', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    retry_step       integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status_code integer,
    last_error       text,
    lease_owner      text,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL,
    completed_at     timestamptz
) WITH (fillfactor = 70);
COMMENT ON TABLE outbox.delivery_queue IS 'Deliveries in flight, waiting to retry, or dead. Read outbox.deliveries for every delivery.';
COMMENT ON COLUMN outbox.delivery_queue.event_created_at IS 'The event''s created_at: finds its partition.';

-- Delivery ids go on from the old table's.
CREATE SEQUENCE IF NOT EXISTS outbox.delivery_queue_id_seq OWNED BY outbox.delivery_queue.id;
ALTER TABLE outbox.delivery_queue ALTER COLUMN id SET DEFAULT nextval('outbox.delivery_queue_id_seq');

DO $convert_deliveries$
DECLARE
    next_id bigint;
BEGIN
    IF (SELECT c.relkind FROM pg_class AS c WHERE c.oid = to_regclass('outbox.deliveries')) IS DISTINCT FROM 'r' THEN
        RETURN;
    END IF;
    SELECT coalesce(max(d.id), 0) + 1 INTO next_id FROM outbox.deliveries AS d;
    PERFORM setval('outbox.delivery_queue_id_seq', next_id, false);
    INSERT INTO outbox.delivery_queue (
        id, event_id, event_seq, event_created_at, subscription_id, ordering_key, status, attempts, retry_step,
        next_attempt_at, last_status_code, last_error, created_at, completed_at)
    SELECT d.id, d.event_id, d.event_seq, e.created_at, d.subscription_id, d.ordering_key,
           CASE d.status WHEN 'delivering' THEN 'pending' ELSE d.status END,
           d.attempts, d.retry_step, d.next_attempt_at, d.last_status_code, d.last_error, d.created_at, d.completed_at
    FROM outbox.deliveries AS d
    JOIN outbox.events AS e ON e.id = d.event_seq
    WHERE d.status IN ('pending', 'delivering', 'dead');
    DROP TABLE outbox.deliveries;
END
$convert_deliveries$;

-- The claim of waiting work: due pending rows of one subscription, oldest first.
CREATE INDEX IF NOT EXISTS delivery_queue_pending_idx
    ON outbox.delivery_queue (subscription_id, next_attempt_at, id)
    WHERE status = 'pending';
-- Work in flight: lease renewal, the rescuer, release at shutdown.
CREATE INDEX IF NOT EXISTS delivery_queue_delivering_idx
    ON outbox.delivery_queue (lease_owner)
    WHERE status = 'delivering';
-- Ordered subscriptions: is an earlier event of this key still unfinished?
CREATE INDEX IF NOT EXISTS delivery_queue_ordering_idx
    ON outbox.delivery_queue (subscription_id, ordering_key, event_seq)
    WHERE ordering_key IS NOT NULL AND status <> 'dead';
-- "What happened to event X?" and retention's check for events still needed.
CREATE INDEX IF NOT EXISTS delivery_queue_event_id_idx
    ON outbox.delivery_queue (event_id);
-- Dead letters.
CREATE INDEX IF NOT EXISTS delivery_queue_dead_idx
    ON outbox.delivery_queue (subscription_id, completed_at)
    WHERE status = 'dead';

-- 4. Where each subscription stands in the event stream. Its current batch is the
--    events visible in snapshot `hi` and not in `lo`, read in (txid, id) order up
--    to `read_txid, read_id`; the next batch starts at a new snapshot. `claimed`
--    counts claims ever made, subscription_state.ended the claims that ended:
--    their difference is the work in flight, for max in flight across replicas,
--    without counting rows (which a held snapshot would make slow).
CREATE TABLE IF NOT EXISTS outbox.subscription_cursors (
    subscription_id bigint PRIMARY KEY,
    lo              pg_snapshot NOT NULL,
    hi              pg_snapshot NOT NULL,
    read_txid       xid8 NOT NULL DEFAULT '0',
    read_id         bigint NOT NULL DEFAULT 0,
    claimed         bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 50);
COMMENT ON TABLE outbox.subscription_cursors IS 'Each subscription''s position in outbox.events: the batch between snapshots lo and hi, read up to (read_txid, read_id).';

-- 5. When each subscription took events, in snapshot terms: an event belongs to a
--    period when the period's start snapshot does not see it (it committed after
--    the subscription was created or enabled) and its end snapshot, if any, does
--    (it committed before the subscription was disabled). event_types are the
--    patterns of that period.
CREATE TABLE IF NOT EXISTS outbox.subscription_periods (
    subscription_id bigint NOT NULL,
    event_types     text[] NOT NULL,
    started         pg_snapshot NOT NULL,
    ended           pg_snapshot
);
CREATE INDEX IF NOT EXISTS subscription_periods_subscription_idx
    ON outbox.subscription_periods (subscription_id);

ALTER TABLE outbox.subscription_state
    ADD COLUMN IF NOT EXISTS ended bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS succeeded bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN outbox.subscription_state.ended IS 'Claims that ended (recorded, released or rescued); subscription_cursors.claimed minus this is the work in flight.';
COMMENT ON COLUMN outbox.subscription_state.succeeded IS 'Deliveries that succeeded since the subscription was created.';

-- Existing subscriptions start reading at this moment: what committed before was
-- fanned out by the old trigger.
INSERT INTO outbox.subscription_cursors (subscription_id, lo, hi)
SELECT s.id, pg_current_snapshot(), pg_current_snapshot()
FROM outbox.subscriptions AS s
ON CONFLICT (subscription_id) DO NOTHING;
INSERT INTO outbox.subscription_periods (subscription_id, event_types, started)
SELECT s.id, s.event_types, pg_current_snapshot()
FROM outbox.subscriptions AS s
WHERE s.enabled
  AND NOT EXISTS (SELECT 1 FROM outbox.subscription_periods AS p WHERE p.subscription_id = s.id);

