-- outbox-relay schema, part 1: the tables and their indexes.
-- Idempotent: safe to apply again with `psql -f`. Applied in file-name order.

CREATE SCHEMA IF NOT EXISTS outbox;

-- One row per published event. Written by host applications inside their own
-- transactions; validated by outbox.check_event() (0002) before it is stored.
CREATE TABLE IF NOT EXISTS outbox.events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     text NOT NULL DEFAULT gen_random_uuid()::text,
    event_type   text NOT NULL,
    payload      jsonb NOT NULL,
    ordering_key text,
    headers      jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_event_id_key UNIQUE (event_id)
);
COMMENT ON TABLE outbox.events IS 'Published events. event_id is the public id (webhook-id); id is the internal order.';

-- Webhook endpoints. NULL settings mean "the relay's global default".
CREATE TABLE IF NOT EXISTS outbox.subscriptions (
    id                         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                       text NOT NULL,
    url                        text NOT NULL,
    event_types                text[] NOT NULL,
    enabled                    boolean NOT NULL DEFAULT true,
    disabled_reason            text,
    ordered                    boolean NOT NULL DEFAULT false,
    headers                    jsonb NOT NULL DEFAULT '{}'::jsonb,
    timeout                    interval,
    retry_schedule             interval[],
    max_in_flight              integer,
    rate_limit                 numeric,
    secret                     text NOT NULL,
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT subscriptions_name_key UNIQUE (name)
);
COMMENT ON COLUMN outbox.subscriptions.previous_secret IS 'Signs too until previous_secret_expires_at (secret rotation).';

-- What the relay learns about each endpoint while delivering (kept apart from
-- outbox.subscriptions so that recording outcomes never contends with the
-- host transactions that read subscriptions to fan out).
CREATE TABLE IF NOT EXISTS outbox.subscription_state (
    subscription_id      bigint PRIMARY KEY,
    consecutive_failures integer NOT NULL DEFAULT 0,
    failing_since        timestamptz,
    last_success_at      timestamptz,
    last_failure_at      timestamptz,
    circuit_state        text NOT NULL DEFAULT 'closed'
        CONSTRAINT subscription_state_circuit_state_check CHECK (circuit_state IN ('closed', 'open', 'half_open')),
    circuit_open_until   timestamptz,
    -- The breaker's current cool-down; it doubles each time a probe fails.
    circuit_cooldown     interval,
    -- Rate limit (subscriptions.rate_limit): a token bucket shared by all replicas.
    rate_tokens          double precision,
    rate_refilled_at     timestamptz
);

-- One row per (event, subscription), created by the fan-out trigger in the
-- host's own transaction. This is the relay's work queue.
-- No foreign keys on purpose: a FK check would lock the subscription row
-- FOR KEY SHARE in every host transaction (multixact contention); triggers in
-- 0002 remove a subscription's or an event's deliveries instead.
CREATE TABLE IF NOT EXISTS outbox.deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         text NOT NULL,
    event_seq        bigint NOT NULL,
    subscription_id  bigint NOT NULL,
    ordering_key     text,
    status           text NOT NULL DEFAULT 'pending'
        CONSTRAINT deliveries_status_check CHECK (status IN ('pending', 'delivering', 'succeeded', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    retry_step       integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status_code integer,
    last_error       text,
    lease_owner      text,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    CONSTRAINT deliveries_event_subscription_key UNIQUE (event_seq, subscription_id)
);
COMMENT ON COLUMN outbox.deliveries.event_seq IS 'Internal: outbox.events.id, the order of events.';
COMMENT ON COLUMN outbox.deliveries.ordering_key IS 'Set only for ordered subscriptions.';
COMMENT ON COLUMN outbox.deliveries.retry_step IS 'Failed attempts since the schedule last started (replay resets it).';

-- Indexes of the deliveries table, while it is one: 0008 turns it into a view
-- (this file may be applied again after that, by hand or by `migrate` adopting
-- a database set up with psql).
DO $deliveries_indexes$
BEGIN
    IF (SELECT c.relkind FROM pg_class AS c WHERE c.oid = to_regclass('outbox.deliveries')) = 'r' THEN
        -- The claim: due pending work of one subscription, oldest first (id breaks ties,
        -- so the scan needs no sort). Partial, so it holds only pending rows however
        -- large the history grows.
        CREATE INDEX IF NOT EXISTS deliveries_pending_idx
            ON outbox.deliveries (subscription_id, next_attempt_at, id)
            WHERE status = 'pending';
        -- In-flight work: lease renewal, the rescuer, max-in-flight counts.
        CREATE INDEX IF NOT EXISTS deliveries_delivering_idx
            ON outbox.deliveries (subscription_id, lease_expires_at)
            WHERE status = 'delivering';
        -- Ordered subscriptions: is an earlier event of this key still unfinished?
        CREATE INDEX IF NOT EXISTS deliveries_ordering_idx
            ON outbox.deliveries (subscription_id, ordering_key, event_seq)
            WHERE ordering_key IS NOT NULL AND status IN ('pending', 'delivering');
        -- "What happened to event X?"
        CREATE INDEX IF NOT EXISTS deliveries_event_id_idx
            ON outbox.deliveries (event_id);
        -- Dead letters and retention.
        CREATE INDEX IF NOT EXISTS deliveries_dead_idx
            ON outbox.deliveries (subscription_id, completed_at)
            WHERE status = 'dead';
        CREATE INDEX IF NOT EXISTS deliveries_succeeded_idx
            ON outbox.deliveries (completed_at)
            WHERE status = 'succeeded';
    END IF;
END
$deliveries_indexes$;

-- One row per HTTP attempt, written by the relay in batches.
CREATE TABLE IF NOT EXISTS outbox.attempts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id      bigint NOT NULL,
    event_id         text NOT NULL,
    attempt          integer NOT NULL,
    started_at       timestamptz NOT NULL,
    duration_ms      double precision NOT NULL,
    status_code      integer,
    error            text,
    response_excerpt text
);
CREATE INDEX IF NOT EXISTS attempts_delivery_idx
    ON outbox.attempts (delivery_id, attempt);

-- Relay sessions that found nothing to claim and sleep until a NOTIFY. The
-- fan-out trigger notifies only while one is asleep, so busy relays cost the
-- host's commits nothing (a NOTIFY serialises commits on a global lock).
-- Unlogged: rewritten at every busy/idle turn, and after a crash no relay is
-- asleep anyway. Rows of ended sessions are removed by the relays' upkeep.
CREATE UNLOGGED TABLE IF NOT EXISTS outbox.relay_sessions (
    pid           integer PRIMARY KEY,
    backend_start timestamptz NOT NULL,
    asleep        boolean NOT NULL
);
