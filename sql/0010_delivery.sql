-- outbox-relay schema, part 10: the relay's hot path over the new storage —
-- claim, record, leases, sleep — and replay and purge for operators.

DROP FUNCTION IF EXISTS outbox.claim_deliveries(integer, integer, text, interval);
DROP FUNCTION IF EXISTS outbox.record_results(text, bigint[], text[], timestamptz[], integer[], text[], timestamptz[],
    double precision[], text[], bigint[], timestamptz[], integer[], timestamptz[], integer, interval, interval, interval,
    bigint[], text);
DROP FUNCTION IF EXISTS outbox.record_attempts(text, bigint[], text[], timestamptz[], integer[], text[], timestamptz[],
    double precision[], text[]);

-- Store a subscription's next events (at most `max_events`) as pending
-- deliveries in the queue, as an ordered subscription's claim does first; returns
-- how many. The caller holds the claim lock (or is a test shaping the queue).
CREATE OR REPLACE FUNCTION outbox.queue_new_events(subscription_id bigint, max_events integer) RETURNS integer
LANGUAGE sql VOLATILE AS $$
    WITH queued AS (
        INSERT INTO outbox.delivery_queue (event_id, event_seq, event_created_at, subscription_id, ordering_key,
                                           status, next_attempt_at, created_at)
        SELECT n.event_id, n.event_seq, n.event_created_at, s.id, CASE WHEN s.ordered THEN n.ordering_key END,
               'pending', n.event_created_at, n.event_created_at
        FROM outbox.subscriptions AS s
        CROSS JOIN LATERAL outbox.read_new_events(s.id, max_events) AS n
        WHERE s.id = queue_new_events.subscription_id
        RETURNING 1
    )
    SELECT count(*)::integer FROM queued
$$;

-- Claim one subscription's work, at most `room` deliveries, under the lease of
-- `owner`; returns their ids. Waiting work first (retries, replays, rescued
-- work), then new events from the subscription's stream, inserted leased. An
-- ordered subscription queues its new events first and claims only the oldest
-- unfinished delivery of each ordering key. The caller holds the claim lock.
CREATE OR REPLACE FUNCTION outbox.claim_subscription(
    subscription_id bigint,
    ordered         boolean,
    room            integer,
    owner           text,
    lease           interval
) RETURNS bigint[]
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    waiting bigint[];
    fresh bigint[] := '{}';
BEGIN
    IF ordered THEN
        PERFORM outbox.queue_new_events(claim_subscription.subscription_id, room);
    END IF;
    waiting := ARRAY(
        SELECT q.id
        FROM outbox.delivery_queue AS q
        WHERE q.subscription_id = claim_subscription.subscription_id
          AND q.status = 'pending'
          AND q.next_attempt_at <= now()
          AND (q.ordering_key IS NULL OR NOT EXISTS (
                SELECT 1
                FROM outbox.delivery_queue AS earlier
                WHERE earlier.subscription_id = q.subscription_id
                  AND earlier.ordering_key = q.ordering_key
                  AND earlier.event_seq < q.event_seq
                  AND earlier.status <> 'dead'))
        ORDER BY q.next_attempt_at, q.id
        LIMIT room
        FOR UPDATE OF q SKIP LOCKED);
    IF cardinality(waiting) > 0 THEN
        UPDATE outbox.delivery_queue AS q
        SET status = 'delivering',
            lease_owner = owner,
            lease_expires_at = now() + lease
        WHERE q.id = ANY (waiting);
    END IF;
    IF NOT ordered AND cardinality(waiting) < room THEN
        WITH inserted AS (
            INSERT INTO outbox.delivery_queue AS q (event_id, event_seq, event_created_at, subscription_id, status,
                                                    next_attempt_at, lease_owner, lease_expires_at, created_at)
            SELECT n.event_id, n.event_seq, n.event_created_at, claim_subscription.subscription_id, 'delivering',
                   n.event_created_at, owner, now() + lease, n.event_created_at
            FROM outbox.read_new_events(claim_subscription.subscription_id, room - cardinality(waiting),
                                        claiming => cardinality(waiting)) AS n
            RETURNING q.id
        )
        SELECT coalesce(array_agg(inserted.id), '{}') INTO fresh FROM inserted;
    ELSIF cardinality(waiting) > 0 THEN
        -- (read_new_events counts the claims when it runs: one update of the cursor.)
        UPDATE outbox.subscription_cursors AS c
        SET claimed = c.claimed + cardinality(waiting)
        WHERE c.subscription_id = claim_subscription.subscription_id;
    END IF;
    RETURN waiting || fresh;
END
$$;

-- Claim due deliveries: per enabled subscription, at most `batch_size` and never
-- more than its max in flight counted over all replicas (claims made minus
-- claims ended). Replicas never wait for each other: a subscription another
-- replica is claiming right now is skipped (transaction-level advisory lock), and
-- waiting rows are taken FOR UPDATE SKIP LOCKED. An open circuit claims nothing
-- until its cool-down ends, then one probe (half open). A rate limit (requests/s)
-- spends tokens from a bucket in outbox.subscription_state that refills with
-- time, for all replicas together. Returns everything needed to send each one.
CREATE OR REPLACE FUNCTION outbox.claim_deliveries(
    batch_size            integer,
    default_max_in_flight integer,
    owner                 text,
    lease                 interval
) RETURNS TABLE (
    delivery_id            bigint,
    event_id               text,
    subscription_id        bigint,
    attempts               integer,
    retry_step             integer,
    event_type             text,
    payload                text,
    event_headers          text,
    event_created_at       timestamptz,
    event_timestamp        text,
    url                    text,
    subscription_headers   text,
    secret                 text,
    previous_secret        text,
    timeout_seconds        double precision,
    retry_schedule_seconds double precision[],
    subscription_name      text
)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    s record;
    room integer;
    tokens double precision;
    ids bigint[];
    claimed_ids bigint[] := '{}';
BEGIN
    FOR s IN
        SELECT sub.id, sub.ordered, sub.rate_limit::double precision AS rate_limit,
               coalesce(sub.max_in_flight, default_max_in_flight) AS max_in_flight,
               st.circuit_state, st.circuit_open_until, st.rate_tokens, st.rate_refilled_at,
               c.claimed - st.ended AS in_flight
        FROM outbox.subscriptions AS sub
        JOIN outbox.subscription_state AS st ON st.subscription_id = sub.id
        JOIN outbox.subscription_cursors AS c ON c.subscription_id = sub.id
        WHERE sub.enabled
          AND pg_try_advisory_xact_lock(1868722808, (sub.id & 2147483647)::integer)
        ORDER BY sub.id
    LOOP
        IF s.circuit_state = 'open' THEN
            CONTINUE WHEN s.circuit_open_until > now();
            -- A cool-down that ended lets one probe through.
            UPDATE outbox.subscription_state AS st SET circuit_state = 'half_open' WHERE st.subscription_id = s.id;
            s.circuit_state := 'half_open';
        END IF;
        room := least(batch_size,
                      CASE WHEN s.circuit_state = 'half_open' THEN 1 ELSE s.max_in_flight END - s.in_flight);
        IF s.rate_limit IS NOT NULL AND room > 0 THEN
            -- Refill the bucket (at most one second's worth), then spend from it.
            tokens := least(greatest(s.rate_limit, 1),
                            coalesce(s.rate_tokens, greatest(s.rate_limit, 1))
                            + s.rate_limit * extract(epoch FROM now() - coalesce(s.rate_refilled_at, now())));
            room := least(room, floor(greatest(tokens, 0))::integer);
        END IF;
        CONTINUE WHEN room <= 0;
        ids := outbox.claim_subscription(s.id, s.ordered, room, owner, lease);
        IF s.rate_limit IS NOT NULL THEN
            UPDATE outbox.subscription_state AS st
            SET rate_tokens = tokens - cardinality(ids),
                rate_refilled_at = now()
            WHERE st.subscription_id = s.id;
        END IF;
        claimed_ids := claimed_ids || ids;
    END LOOP;
    IF cardinality(claimed_ids) = 0 THEN
        RETURN;
    END IF;
    -- Each subscription's part of the answer is worked out once, not per delivery.
    RETURN QUERY
    WITH sub AS (
        SELECT ss.id, ss.url, ss.headers::text AS headers, ss.secret, ss.name,
               CASE WHEN ss.previous_secret_expires_at > now() THEN ss.previous_secret END AS previous_secret,
               extract(epoch FROM ss.timeout)::double precision AS timeout_seconds,
               (SELECT array_agg(extract(epoch FROM step)::double precision ORDER BY ordinality)
                FROM unnest(ss.retry_schedule) WITH ORDINALITY AS step) AS retry_schedule_seconds
        FROM outbox.subscriptions AS ss
        WHERE ss.id IN (SELECT DISTINCT q.subscription_id FROM outbox.delivery_queue AS q WHERE q.id = ANY (claimed_ids))
    )
    SELECT q.id, q.event_id, q.subscription_id, q.attempts, q.retry_step,
           e.event_type, e.payload::text, e.headers::text, e.created_at,
           to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           sub.url, sub.headers, sub.secret, sub.previous_secret, sub.timeout_seconds, sub.retry_schedule_seconds,
           sub.name
    FROM outbox.delivery_queue AS q
    JOIN outbox.events AS e ON e.id = q.event_seq AND e.created_at = q.event_created_at
    JOIN sub ON sub.id = q.subscription_id
    WHERE q.id = ANY (claimed_ids);
END
$$;

-- Planned once per call: JIT compilation would cost more than the claim itself.
ALTER FUNCTION outbox.claim_deliveries(integer, integer, text, interval) SET jit = off;

-- Record a batch of attempts: one outbox.attempts row each, and the delivery's
-- new state: 'succeeded' leaves the queue (its attempt row stands for it),
-- 'retry' waits in it until next_attempt_at, 'dead' stays as a dead letter. A
-- delivery whose lease this owner no longer holds (it expired and was rescued)
-- keeps its newer state; the attempt is still recorded, without an outcome.
-- `attempt_numbers` are the claims' attempts + 1.
CREATE OR REPLACE FUNCTION outbox.record_attempts(
    owner            text,
    delivery_ids     bigint[],
    event_ids        text[],
    subscription_ids bigint[],
    attempt_numbers  integer[],
    outcomes         text[],
    next_attempt_ats timestamptz[],
    status_codes     integer[],
    errors           text[],
    started_ats      timestamptz[],
    durations_ms     double precision[],
    excerpts         text[]
) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    held bigint[];
BEGIN
    -- By primary key only: the in-flight index (status = 'delivering', by owner)
    -- holds an entry of every delivery this owner finished that vacuum has not
    -- removed yet, and walking them on every record grows with each delivery.
    -- (Written so that the partial index cannot match the condition.)
    held := ARRAY(
        SELECT q.id
        FROM outbox.delivery_queue AS q
        WHERE q.id = ANY (delivery_ids)
          AND q.status || '' = 'delivering'
          AND q.lease_owner || '' = record_attempts.owner
        ORDER BY q.id
        FOR UPDATE OF q);

    INSERT INTO outbox.attempts (delivery_id, event_id, attempt, started_at, duration_ms, status_code, error,
                                 response_excerpt, subscription_id, event_seq, delivery_created_at, outcome)
    SELECT o.delivery_id, o.event_id, o.attempt, o.started_at, o.duration_ms, o.status_code, o.error, o.excerpt,
           o.subscription_id, q.event_seq, q.created_at,
           CASE WHEN o.delivery_id = ANY (held) THEN o.outcome END
    FROM unnest(delivery_ids, event_ids, subscription_ids, attempt_numbers, outcomes, status_codes, errors,
                started_ats, durations_ms, excerpts)
        AS o(delivery_id, event_id, subscription_id, attempt, outcome, status_code, error, started_at, duration_ms, excerpt)
    LEFT JOIN outbox.delivery_queue AS q ON q.id = o.delivery_id;

    -- A success leaves the queue; its attempt row stands for it.
    DELETE FROM outbox.delivery_queue AS q
    WHERE q.id = ANY (held)
      AND q.id = ANY (ARRAY(SELECT o.delivery_id
                            FROM unnest(delivery_ids, outcomes) AS o(delivery_id, outcome)
                            WHERE o.outcome = 'succeeded'));

    IF 'retry' = ANY (outcomes) OR 'dead' = ANY (outcomes) THEN
        UPDATE outbox.delivery_queue AS q
        SET status = CASE o.outcome WHEN 'retry' THEN 'pending' ELSE 'dead' END,
            attempts = o.attempt,
            retry_step = CASE WHEN o.outcome = 'retry' THEN q.retry_step + 1 ELSE q.retry_step END,
            next_attempt_at = coalesce(o.next_attempt_at, q.next_attempt_at),
            last_status_code = o.status_code,
            last_error = o.error,
            completed_at = CASE WHEN o.outcome = 'dead' THEN now() END,
            lease_owner = NULL,
            lease_expires_at = NULL
        FROM unnest(delivery_ids, attempt_numbers, outcomes, next_attempt_ats, status_codes, errors)
            AS o(delivery_id, attempt, outcome, next_attempt_at, status_code, error)
        WHERE q.id = o.delivery_id
          AND o.outcome IN ('retry', 'dead')
          AND q.id = ANY (held);
    END IF;

    -- The claims that ended, and the successes, per subscription: last, so the
    -- state rows are locked only for the rest of this transaction.
    UPDATE outbox.subscription_state AS st
    SET ended = st.ended + n.ended,
        succeeded = st.succeeded + n.succeeded
    FROM (SELECT o.subscription_id,
                 count(*) AS ended,
                 count(*) FILTER (WHERE o.outcome = 'succeeded') AS succeeded
          FROM unnest(delivery_ids, subscription_ids, outcomes) AS o(delivery_id, subscription_id, outcome)
          WHERE o.delivery_id = ANY (held)
          GROUP BY o.subscription_id) AS n
    WHERE st.subscription_id = n.subscription_id;
    RETURN cardinality(held);
END
$$;

-- The recorder's one statement per batch: the attempts and the deliveries' new
-- state (record_attempts), the endpoints' latest results (record_endpoint_results,
-- 0005) and the subscriptions that answered 410 Gone (disable_subscriptions).
-- One statement is one transaction that never waits on the network midway: a
-- connection lost during it cannot leave row locks held by a server session
-- whose client is gone.
CREATE OR REPLACE FUNCTION outbox.record_results(
    owner             text,
    delivery_ids      bigint[],
    event_ids         text[],
    subscription_ids  bigint[],
    attempt_numbers   integer[],
    outcomes          text[],
    next_attempt_ats  timestamptz[],
    status_codes      integer[],
    errors            text[],
    started_ats       timestamptz[],
    durations_ms      double precision[],
    excerpts          text[],
    endpoint_ids      bigint[],
    last_success_ats  timestamptz[],
    trailing_failures integer[],
    last_failure_ats  timestamptz[],
    failure_threshold integer,
    base_cooldown     interval,
    max_cooldown      interval,
    disable_after     interval,
    gone_ids          bigint[],
    gone_reason       text
) RETURNS TABLE (subscription_id bigint, circuit_state text, previous_circuit_state text, disabled boolean)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- Positional parameters: the names above would clash with the result columns.
    PERFORM outbox.record_attempts($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12);
    RETURN QUERY SELECT * FROM outbox.record_endpoint_results($13, $14, $15, $16, $17, $18, $19, $20);
    IF cardinality($21) > 0 THEN
        PERFORM outbox.disable_subscriptions($21, $22);
    END IF;
END
$$;

-- Claims that ended without an attempt (rescued, released) count as ended.
CREATE OR REPLACE FUNCTION outbox.end_claims(subscription_ids bigint[]) RETURNS void
LANGUAGE sql VOLATILE AS $$
    UPDATE outbox.subscription_state AS st
    SET ended = st.ended + n.ended
    FROM (SELECT x.id, count(*) AS ended FROM unnest(subscription_ids) AS x(id) GROUP BY x.id) AS n
    WHERE st.subscription_id = n.id
$$;

-- A live relay extends the leases of everything it has in flight. Rows the
-- recorder holds right now are skipped: they are being finished.
CREATE OR REPLACE FUNCTION outbox.renew_leases(owner text, lease interval) RETURNS integer
LANGUAGE sql VOLATILE AS $$
    WITH held AS (
        SELECT q.id
        FROM outbox.delivery_queue AS q
        WHERE q.status = 'delivering'
          AND q.lease_owner = renew_leases.owner
        FOR UPDATE SKIP LOCKED
    ),
    renewed AS (
        UPDATE outbox.delivery_queue AS q
        SET lease_expires_at = now() + lease
        WHERE q.id = ANY (ARRAY(SELECT held.id FROM held))
        RETURNING 1
    )
    SELECT count(*)::integer FROM renewed
$$;

-- Return work whose lease expired (its relay died) to pending, due now, not
-- charged an attempt. Then mend the in-flight counts: a claim whose row is gone
-- without being recorded (deleted or truncated by hand) would otherwise hold a
-- slot of max in flight for ever. Only upwards (claims that ended), under each
-- subscription's claim lock: a count that is only out of date can never let a
-- subscription exceed its max in flight.
CREATE OR REPLACE FUNCTION outbox.rescue_expired_leases() RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    rescued bigint[];
BEGIN
    WITH expired AS (
        SELECT q.id
        FROM outbox.delivery_queue AS q
        WHERE q.status = 'delivering'
          AND q.lease_expires_at < now()
        FOR UPDATE SKIP LOCKED
    ),
    returned AS (
        UPDATE outbox.delivery_queue AS q
        SET status = 'pending',
            next_attempt_at = now(),
            lease_owner = NULL,
            lease_expires_at = NULL
        WHERE q.id = ANY (ARRAY(SELECT expired.id FROM expired))
        RETURNING q.subscription_id
    )
    SELECT coalesce(array_agg(returned.subscription_id), '{}') INTO rescued FROM returned;
    PERFORM outbox.end_claims(rescued);

    UPDATE outbox.subscription_state AS st
    SET ended = c.claimed - coalesce(n.delivering, 0)
    FROM outbox.subscription_cursors AS c
    LEFT JOIN (SELECT q.subscription_id, count(*) AS delivering
               FROM outbox.delivery_queue AS q
               WHERE q.status = 'delivering'
               GROUP BY q.subscription_id) AS n ON n.subscription_id = c.subscription_id
    WHERE st.subscription_id = c.subscription_id
      AND c.claimed - coalesce(n.delivering, 0) > st.ended
      AND pg_try_advisory_xact_lock(1868722808, (c.subscription_id & 2147483647)::integer);
    RETURN cardinality(rescued);
END
$$;

-- Give back claimed work without charging an attempt (shutdown).
CREATE OR REPLACE FUNCTION outbox.release_deliveries(owner text, delivery_ids bigint[]) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    released bigint[];
BEGIN
    WITH returned AS (
        UPDATE outbox.delivery_queue AS q
        SET status = 'pending',
            lease_owner = NULL,
            lease_expires_at = NULL
        WHERE q.id = ANY (delivery_ids)
          AND q.status = 'delivering'
          AND q.lease_owner = release_deliveries.owner
        RETURNING q.subscription_id
    )
    SELECT coalesce(array_agg(returned.subscription_id), '{}') INTO released FROM returned;
    PERFORM outbox.end_claims(released);
    RETURN cardinality(released);
END
$$;

-- Sleeping relays are told by the wake-up lock now, not by a table: one that is
-- gone can no longer cost the publishers a NOTIFY.
DROP PROCEDURE IF EXISTS outbox.prepare_to_sleep(boolean);
DROP FUNCTION IF EXISTS outbox.forget_ended_relay_sessions();
DROP TABLE IF EXISTS outbox.relay_sessions;

-- A relay that found nothing to claim asks to sleep until a NOTIFY: it may
-- (true) when it gets the wake-up lock (1868722809, 0) for its session, which no
-- publisher then holds: every publisher takes it shared until its commit, and
-- one that cannot (a relay sleeps) notifies. So a publisher still committing
-- keeps the relay awake (it looks again soon), and while the relay sleeps,
-- holding the lock, every commit notifies it. It may not sleep either while due
-- work waits: waiting rows, or events a cursor has not read (another replica is
-- claiming them, or they wait for room: max in flight, an open circuit, a rate
-- limit). The lock goes with the session, so a relay stopped or killed while
-- asleep costs publishers nothing; outbox.stop_sleeping() gives it back when the
-- relay wakes. One relay sleeps at a time; other idle replicas look again every
-- 100 ms.
CREATE OR REPLACE FUNCTION outbox.prepare_to_sleep() RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM outbox.stop_sleeping();
    IF NOT pg_try_advisory_lock(1868722809, 0) THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1
               FROM outbox.subscriptions AS s
               JOIN outbox.subscription_cursors AS c ON c.subscription_id = s.id
               WHERE s.enabled
                 AND (outbox.has_unread_events(c)
                      OR EXISTS (SELECT 1
                                 FROM outbox.delivery_queue AS q
                                 WHERE q.subscription_id = s.id
                                   AND q.status = 'pending'
                                   AND q.next_attempt_at <= now()))) THEN
        PERFORM outbox.stop_sleeping();
        RETURN false;
    END IF;
    RETURN true;
END
$$;

-- A relay that wakes gives the wake-up lock back, so publishers stop notifying.
-- (The claim connection holds no other session-level advisory lock.)
CREATE OR REPLACE FUNCTION outbox.stop_sleeping() RETURNS void
LANGUAGE sql VOLATILE AS $$
    SELECT pg_advisory_unlock_all()
$$;

-- Put a dead (or succeeded) delivery back to pending, due now, with a fresh
-- retry schedule. outbox.attempts keeps the history; attempts number on.
CREATE OR REPLACE FUNCTION outbox.replay(delivery_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    current_status text;
    last_success outbox.attempts;
BEGIN
    SELECT q.status INTO current_status
    FROM outbox.delivery_queue AS q
    WHERE q.id = replay.delivery_id
    FOR UPDATE;
    IF FOUND THEN
        IF current_status <> 'dead' THEN
            RAISE EXCEPTION 'delivery % is %: only dead or succeeded deliveries can be replayed', replay.delivery_id, current_status
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        UPDATE outbox.delivery_queue AS q
        SET status = 'pending',
            next_attempt_at = now(),
            retry_step = 0,
            completed_at = NULL,
            lease_owner = NULL,
            lease_expires_at = NULL
        WHERE q.id = replay.delivery_id;
    ELSE
        SELECT a.* INTO last_success
        FROM outbox.attempts AS a
        WHERE a.delivery_id = replay.delivery_id
        ORDER BY a.attempt DESC, a.started_at DESC
        LIMIT 1;
        IF last_success.outcome IS DISTINCT FROM 'succeeded' THEN
            RAISE EXCEPTION 'delivery % does not exist', replay.delivery_id
                USING ERRCODE = 'no_data_found';
        END IF;
        INSERT INTO outbox.delivery_queue (id, event_id, event_seq, event_created_at, subscription_id, ordering_key,
                                           status, attempts, next_attempt_at, last_status_code, created_at)
        SELECT last_success.delivery_id, e.event_id, e.id, e.created_at, last_success.subscription_id,
               CASE WHEN s.ordered THEN e.ordering_key END,
               'pending', last_success.attempt, now(), last_success.status_code, last_success.delivery_created_at
        FROM outbox.events AS e
        JOIN outbox.subscriptions AS s ON s.id = last_success.subscription_id
        WHERE e.id = last_success.event_seq;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'delivery % can no longer be replayed: its event or subscription is gone', replay.delivery_id
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
    END IF;
    PERFORM pg_notify('outbox_work', '');
END
$$;

-- Replay one batch of dead letters: the first `batch_size` after id `after`,
-- optionally of one subscription and dead in [since, until). Returns the
-- replayed ids in order; callers loop with the last one as the next `after`,
-- each batch its own transaction so locks stay short.
CREATE OR REPLACE FUNCTION outbox.replay_dead_letters(
    after           bigint,
    batch_size      integer,
    subscription_id bigint DEFAULT NULL,
    since           timestamptz DEFAULT NULL,
    until           timestamptz DEFAULT NULL
) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
    replayed_id bigint;
BEGIN
    FOR replayed_id IN
        SELECT q.id
        FROM outbox.delivery_queue AS q
        WHERE q.status = 'dead'
          AND q.id > replay_dead_letters.after
          AND (replay_dead_letters.subscription_id IS NULL OR q.subscription_id = replay_dead_letters.subscription_id)
          AND (replay_dead_letters.since IS NULL OR q.completed_at >= replay_dead_letters.since)
          AND (replay_dead_letters.until IS NULL OR q.completed_at < replay_dead_letters.until)
        ORDER BY q.id
        LIMIT replay_dead_letters.batch_size
        FOR UPDATE OF q SKIP LOCKED
    LOOP
        PERFORM outbox.replay(replayed_id);
        RETURN NEXT replayed_id;
    END LOOP;
END
$$;

-- Delete dead letters, optionally of one subscription and dead before `before`;
-- returns how many. Their attempts stay in the history until retention.
CREATE OR REPLACE FUNCTION outbox.purge_dead_letters(
    subscription_id bigint DEFAULT NULL,
    before          timestamptz DEFAULT NULL
) RETURNS integer
LANGUAGE sql VOLATILE AS $$
    WITH purged AS (
        DELETE FROM outbox.delivery_queue AS q
        WHERE q.status = 'dead'
          AND (purge_dead_letters.subscription_id IS NULL OR q.subscription_id = purge_dead_letters.subscription_id)
          AND (purge_dead_letters.before IS NULL OR q.completed_at < purge_dead_letters.before)
        RETURNING 1
    )
    SELECT count(*)::integer FROM purged
$$;

-- The hot path looks rows up by key. Statistics taken while the queue was small
-- (or just after a TRUNCATE) can make a sequential scan look cheaper, and then
-- every call reads every dead row a held snapshot keeps: never a sequential scan
-- here (the small tables of subscriptions are read through their keys too).
ALTER FUNCTION outbox.claim_deliveries(integer, integer, text, interval) SET enable_seqscan = off;
ALTER FUNCTION outbox.record_results(text, bigint[], text[], bigint[], integer[], text[], timestamptz[], integer[], text[],
    timestamptz[], double precision[], text[], bigint[], timestamptz[], integer[], timestamptz[], integer, interval,
    interval, interval, bigint[], text) SET enable_seqscan = off;
ALTER FUNCTION outbox.renew_leases(text, interval) SET enable_seqscan = off;
ALTER FUNCTION outbox.release_deliveries(text, bigint[]) SET enable_seqscan = off;
