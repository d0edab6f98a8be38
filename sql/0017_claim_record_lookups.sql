-- outbox-relay schema, part 17: the claim and the record look each queue row up
-- once.
--
-- With nested statements tracked (pg_stat_statements.track = all), a claim of
-- 100 new events spent 40 % of its time and half its buffer touches after the
-- rows were claimed: its answer read every claimed queue row again by primary
-- key, once to find the claimed subscriptions and once for the row itself. The
-- record looked each held row up three times (to lock it, for its event's key,
-- to delete it). Now a subscription's claim returns the rows it claimed
-- (RETURNING), the claim answers per subscription from them and the
-- subscription row it already holds (in a statement after the claiming one,
-- whose snapshot sees every event the claim read), and the record locks each row once,
-- keeping its event's key and its tuple id, and deletes it by that id. And
-- record_results forwards its arguments by name, not by position.

-- Replaced by claim_subscription_rows below (a new name: 0010's definition,
-- applied again by hand, cannot change the return type of an existing function).
DROP FUNCTION IF EXISTS outbox.claim_subscription(bigint, boolean, integer, text, interval);

-- Claim one subscription's work, at most `room` deliveries, under the lease of
-- `owner`, and return the claimed rows. Waiting work first (retries, replays,
-- rescued work), then new events from the subscription's stream, inserted
-- leased. An ordered subscription queues its new events first and claims only
-- the oldest unfinished delivery of each ordering key. The caller holds the
-- claim lock.
CREATE OR REPLACE FUNCTION outbox.claim_subscription_rows(
    subscription_id bigint,
    ordered         boolean,
    room            integer,
    owner           text,
    lease           interval
) RETURNS TABLE (
    delivery_id      bigint,
    event_id         text,
    event_seq        bigint,
    event_created_at timestamptz,
    attempts         integer,
    retry_step       integer
)
-- At most a batch (200 by default), not the planner's default guess of 1000.
LANGUAGE plpgsql VOLATILE ROWS 200 AS $$
DECLARE
    waiting bigint[];
    taken integer := 0;
BEGIN
    IF ordered THEN
        PERFORM outbox.queue_new_events(claim_subscription_rows.subscription_id, room);
    END IF;
    waiting := ARRAY(
        SELECT q.id
        FROM outbox.delivery_queue AS q
        WHERE q.subscription_id = claim_subscription_rows.subscription_id
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
        RETURN QUERY
        UPDATE outbox.delivery_queue AS q
        SET status = 'delivering',
            lease_owner = owner,
            lease_expires_at = now() + lease
        WHERE q.id = ANY (waiting)
        RETURNING q.id, q.event_id, q.event_seq, q.event_created_at, q.attempts, q.retry_step;
        taken := cardinality(waiting);
    END IF;
    IF NOT ordered AND taken < room THEN
        RETURN QUERY
        INSERT INTO outbox.delivery_queue AS q (event_id, event_seq, event_created_at, subscription_id, status,
                                                next_attempt_at, lease_owner, lease_expires_at, created_at)
        SELECT n.event_id, n.event_seq, n.event_created_at, claim_subscription_rows.subscription_id, 'delivering',
               n.event_created_at, owner, now() + lease, n.event_created_at
        FROM outbox.read_new_events(claim_subscription_rows.subscription_id, room - taken, claiming => taken) AS n
        RETURNING q.id, q.event_id, q.event_seq, q.event_created_at, q.attempts, q.retry_step;
    ELSIF taken > 0 THEN
        -- (read_new_events counts the claims when it runs: one update of the cursor.)
        UPDATE outbox.subscription_cursors AS c
        SET claimed = c.claimed + taken
        WHERE c.subscription_id = claim_subscription_rows.subscription_id;
    END IF;
END
$$;

-- As in 0014 (max in flight over all replicas, this relay's answered requests
-- not counted, circuit, rate limit), answering from the claimed rows themselves.
CREATE OR REPLACE FUNCTION outbox.claim_deliveries(
    batch_size            integer,
    default_max_in_flight integer,
    owner                 text,
    lease                 interval,
    answered              bigint[] DEFAULT '{}'
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
    event_ids text[];
    seqs bigint[];
    created timestamptz[];
    tries integer[];
    steps integer[];
BEGIN
    FOR s IN
        WITH answered_open AS (
            -- By primary key only, as in record_attempts.
            SELECT q.subscription_id, count(*) AS requests
            FROM outbox.delivery_queue AS q
            WHERE q.id = ANY (answered)
              AND q.status || '' = 'delivering'
              AND q.lease_owner || '' = claim_deliveries.owner
            GROUP BY q.subscription_id
        )
        SELECT sub.id, sub.ordered, sub.rate_limit::double precision AS rate_limit,
               coalesce(sub.max_in_flight, default_max_in_flight) AS max_in_flight,
               st.circuit_state, st.circuit_open_until, st.rate_tokens, st.rate_refilled_at,
               c.claimed - st.ended AS in_flight, coalesce(a.requests, 0) AS answered_requests
        FROM outbox.subscriptions AS sub
        JOIN outbox.subscription_state AS st ON st.subscription_id = sub.id
        JOIN outbox.subscription_cursors AS c ON c.subscription_id = sub.id
        LEFT JOIN answered_open AS a ON a.subscription_id = sub.id
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
        -- A half-open circuit's next probe waits until the last one's outcome is recorded.
        room := least(batch_size,
                      CASE WHEN s.circuit_state = 'half_open' THEN 1 - s.in_flight
                           ELSE s.max_in_flight - (s.in_flight - s.answered_requests)::integer END);
        IF s.rate_limit IS NOT NULL AND room > 0 THEN
            -- Refill the bucket (at most one second's worth), then spend from it.
            tokens := least(greatest(s.rate_limit, 1),
                            coalesce(s.rate_tokens, greatest(s.rate_limit, 1))
                            + s.rate_limit * extract(epoch FROM now() - coalesce(s.rate_refilled_at, now())));
            room := least(room, floor(greatest(tokens, 0))::integer);
        END IF;
        CONTINUE WHEN room <= 0;
        -- Claimed first, answered in a statement of its own: the claim reads events that
        -- committed after a statement around it would have taken its snapshot.
        SELECT coalesce(array_agg(r.delivery_id), '{}'), coalesce(array_agg(r.event_id), '{}'),
               coalesce(array_agg(r.event_seq), '{}'), coalesce(array_agg(r.event_created_at), '{}'),
               coalesce(array_agg(r.attempts), '{}'), coalesce(array_agg(r.retry_step), '{}')
        INTO ids, event_ids, seqs, created, tries, steps
        FROM outbox.claim_subscription_rows(s.id, s.ordered, room, owner, lease) AS r;
        IF s.rate_limit IS NOT NULL THEN
            UPDATE outbox.subscription_state AS st
            SET rate_tokens = tokens - cardinality(ids),
                rate_refilled_at = now()
            WHERE st.subscription_id = s.id;
        END IF;
        CONTINUE WHEN cardinality(ids) = 0;
        -- The subscription's part of the answer is worked out once, not per delivery.
        RETURN QUERY
        WITH sub AS (
            SELECT ss.url, ss.headers::text AS headers, ss.secret, ss.name,
                   CASE WHEN ss.previous_secret_expires_at > now() THEN ss.previous_secret END AS previous_secret,
                   extract(epoch FROM ss.timeout)::double precision AS timeout_seconds,
                   (SELECT array_agg(extract(epoch FROM step)::double precision ORDER BY ordinality)
                    FROM unnest(ss.retry_schedule) WITH ORDINALITY AS step) AS retry_schedule_seconds
            FROM outbox.subscriptions AS ss
            WHERE ss.id = s.id
        )
        SELECT r.delivery_id, r.event_id, s.id, r.attempts, r.retry_step,
               e.event_type, e.payload::text, e.headers::text, e.created_at,
               to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               sub.url, sub.headers, sub.secret, sub.previous_secret, sub.timeout_seconds, sub.retry_schedule_seconds,
               sub.name
        FROM unnest(ids, event_ids, seqs, created, tries, steps)
            AS r(delivery_id, event_id, event_seq, event_created_at, attempts, retry_step)
        JOIN outbox.events AS e ON e.id = r.event_seq AND e.created_at = r.event_created_at
        CROSS JOIN sub;
    END LOOP;
END
$$
SET jit = off
SET enable_seqscan = off;

-- As in 0010, with each held row looked up once: its event's key and its tuple
-- id are kept from the lookup that locks it (a locked row keeps its tuple id
-- until this transaction changes it), so the attempt rows need no join and a
-- success is deleted by tuple id.
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
    held_tids tid[];
    held_seqs bigint[];
    held_created timestamptz[];
BEGIN
    -- By primary key only: the in-flight index (status = 'delivering', by owner)
    -- holds an entry of every delivery this owner finished that vacuum has not
    -- removed yet, and walking them on every record grows with each delivery.
    -- (Written so that the partial index cannot match the condition.)
    SELECT coalesce(array_agg(h.id ORDER BY h.id), '{}'), coalesce(array_agg(h.ctid ORDER BY h.id), '{}'),
           coalesce(array_agg(h.event_seq ORDER BY h.id), '{}'), coalesce(array_agg(h.created_at ORDER BY h.id), '{}')
    INTO held, held_tids, held_seqs, held_created
    FROM (SELECT q.id, q.ctid, q.event_seq, q.created_at
          FROM outbox.delivery_queue AS q
          WHERE q.id = ANY (delivery_ids)
            AND q.status || '' = 'delivering'
            AND q.lease_owner || '' = record_attempts.owner
          ORDER BY q.id
          FOR UPDATE OF q) AS h;

    -- A delivery no longer held (its lease was taken over) keeps its event's key
    -- from the queue row, if there still is one.
    INSERT INTO outbox.attempts (delivery_id, event_id, attempt, started_at, duration_ms, status_code, error,
                                 response_excerpt, subscription_id, event_seq, delivery_created_at, outcome)
    SELECT o.delivery_id, o.event_id, o.attempt, o.started_at, o.duration_ms, o.status_code, o.error, o.excerpt,
           o.subscription_id,
           coalesce(h.event_seq, (SELECT q.event_seq FROM outbox.delivery_queue AS q WHERE q.id = o.delivery_id)),
           coalesce(h.created_at, (SELECT q.created_at FROM outbox.delivery_queue AS q WHERE q.id = o.delivery_id)),
           CASE WHEN h.id IS NOT NULL THEN o.outcome END
    FROM unnest(delivery_ids, event_ids, subscription_ids, attempt_numbers, outcomes, status_codes, errors,
                started_ats, durations_ms, excerpts)
        AS o(delivery_id, event_id, subscription_id, attempt, outcome, status_code, error, started_at, duration_ms, excerpt)
    LEFT JOIN unnest(held, held_seqs, held_created) AS h(id, event_seq, created_at) ON h.id = o.delivery_id;

    -- A success leaves the queue; its attempt row stands for it.
    DELETE FROM outbox.delivery_queue AS q
    WHERE q.ctid = ANY (ARRAY(SELECT h.tid
                              FROM unnest(held, held_tids) AS h(id, tid)
                              JOIN unnest(delivery_ids, outcomes) AS o(delivery_id, outcome) ON o.delivery_id = h.id
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

-- As in 0010, forwarding its arguments by name, not by position. (Its settings
-- are restated: CREATE OR REPLACE resets what 0010's ALTER FUNCTION set.)
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
    PERFORM outbox.record_attempts(
        owner => record_results.owner,
        delivery_ids => record_results.delivery_ids,
        event_ids => record_results.event_ids,
        subscription_ids => record_results.subscription_ids,
        attempt_numbers => record_results.attempt_numbers,
        outcomes => record_results.outcomes,
        next_attempt_ats => record_results.next_attempt_ats,
        status_codes => record_results.status_codes,
        errors => record_results.errors,
        started_ats => record_results.started_ats,
        durations_ms => record_results.durations_ms,
        excerpts => record_results.excerpts);
    RETURN QUERY
    SELECT *
    FROM outbox.record_endpoint_results(
        subscription_ids => record_results.endpoint_ids,
        last_success_ats => record_results.last_success_ats,
        trailing_failures => record_results.trailing_failures,
        last_failure_ats => record_results.last_failure_ats,
        failure_threshold => record_results.failure_threshold,
        base_cooldown => record_results.base_cooldown,
        max_cooldown => record_results.max_cooldown,
        disable_after => record_results.disable_after);
    IF cardinality(record_results.gone_ids) > 0 THEN
        PERFORM outbox.disable_subscriptions(record_results.gone_ids, record_results.gone_reason);
    END IF;
END
$$
-- Statistics of a small or just-emptied queue must never make the record scan it.
SET enable_seqscan = off;
