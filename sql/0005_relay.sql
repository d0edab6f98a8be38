-- outbox-relay schema, part 5: the statements the relay runs on its hot path,
-- as functions so a DBA can read them here and a benchmark can call them.
-- 0010 replaces them for the storage of 0008; bodies are checked when called, as
-- pg_dump does, so this file can be applied again after 0008 made
-- outbox.deliveries a view.
SET check_function_bodies = off;

-- Claim due deliveries: per enabled subscription, oldest due first, at most
-- `batch_size` each and never more than the subscription's max in flight counted
-- over all replicas. Claimed rows become 'delivering' under a lease owned by
-- `owner`. Replicas never wait for each other: rows are taken FOR UPDATE SKIP
-- LOCKED, and a subscription another replica is claiming right now is skipped
-- (transaction-level advisory lock), which also keeps the in-flight count exact.
-- For ordered subscriptions only the first unfinished delivery of each
-- ordering key is due. An open circuit claims nothing until its cool-down ends,
-- then one probe (half open). A rate limit (requests/s) spends tokens from a
-- bucket in outbox.subscription_state that refills with time, holding for all
-- replicas together.
CREATE OR REPLACE FUNCTION outbox.claim_deliveries(
    batch_size            integer,
    default_max_in_flight integer,
    owner                 text,
    lease                 interval
) RETURNS TABLE (
    delivery_id           bigint,
    event_id              text,
    subscription_id       bigint,
    attempts              integer,
    retry_step            integer,
    event_type            text,
    payload               text,
    event_headers         text,
    event_created_at      timestamptz,
    event_timestamp       text,
    url                   text,
    subscription_headers  text,
    secret                text,
    previous_secret       text,
    timeout_seconds       double precision,
    retry_schedule_seconds double precision[],
    subscription_name     text
)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    claimable bigint[];
    due bigint[];
BEGIN
    -- First statement: take the per-subscription claim locks.
    SELECT array_agg(s.id) INTO claimable
    FROM outbox.subscriptions AS s
    WHERE s.enabled
      AND pg_try_advisory_xact_lock(1868722808, (s.id & 2147483647)::integer);
    IF claimable IS NULL THEN
        RETURN;
    END IF;
    -- A cool-down that ended lets one probe through.
    UPDATE outbox.subscription_state AS st
    SET circuit_state = 'half_open'
    WHERE st.subscription_id = ANY (claimable)
      AND st.circuit_state = 'open'
      AND st.circuit_open_until <= now();
    -- Refill the rate limit buckets (at most one second's worth).
    UPDATE outbox.subscription_state AS st
    SET rate_tokens = least(greatest(s.rate_limit::double precision, 1),
                            coalesce(st.rate_tokens, greatest(s.rate_limit::double precision, 1))
                            + s.rate_limit::double precision
                              * extract(epoch FROM now() - coalesce(st.rate_refilled_at, now()))),
        rate_refilled_at = now()
    FROM outbox.subscriptions AS s
    WHERE st.subscription_id = s.id
      AND s.id = ANY (claimable)
      AND s.rate_limit IS NOT NULL;
    -- Then, with a snapshot taken after the locks: pick and lock the due rows ...
    WITH room AS (
        SELECT s.id,
               CASE
                   WHEN st.circuit_state = 'open' THEN 0
                   ELSE least(batch_size,
                              CASE WHEN st.circuit_state = 'half_open' THEN 1
                                   ELSE coalesce(s.max_in_flight, default_max_in_flight) END
                              - (SELECT count(*)
                                 FROM outbox.deliveries AS f
                                 WHERE f.subscription_id = s.id
                                   AND f.status = 'delivering'),
                              CASE WHEN s.rate_limit IS NULL THEN batch_size
                                   ELSE floor(greatest(st.rate_tokens, 0))::integer END)
               END::integer AS free
        FROM outbox.subscriptions AS s
        JOIN outbox.subscription_state AS st ON st.subscription_id = s.id
        WHERE s.id = ANY (claimable)
          AND s.enabled
    ),
    picked AS (
        SELECT candidate.id
        FROM room
        CROSS JOIN LATERAL (
            SELECT d.id
            FROM outbox.deliveries AS d
            WHERE d.subscription_id = room.id
              AND d.status = 'pending'
              AND d.next_attempt_at <= now()
              AND (d.ordering_key IS NULL OR NOT EXISTS (
                    SELECT 1
                    FROM outbox.deliveries AS earlier
                    WHERE earlier.subscription_id = d.subscription_id
                      AND earlier.ordering_key = d.ordering_key
                      AND earlier.event_seq < d.event_seq
                      AND earlier.status IN ('pending', 'delivering')))
            ORDER BY d.next_attempt_at, d.id
            LIMIT greatest(room.free, 0)
            FOR UPDATE OF d SKIP LOCKED
        ) AS candidate
    )
    SELECT array_agg(picked.id) INTO due
    FROM picked;
    IF due IS NULL THEN
        RETURN;
    END IF;
    -- A relay with work is awake: publishers stop notifying it.
    UPDATE outbox.relay_sessions AS r SET asleep = false WHERE r.pid = pg_backend_pid() AND r.asleep;
    -- ... and move them to delivering. An id array (not a join with the CTE) keeps
    -- this an index lookup per row however large the table is.
    RETURN QUERY
    WITH claimed AS (
    UPDATE outbox.deliveries AS d
    SET status = 'delivering',
        lease_owner = owner,
        lease_expires_at = now() + lease
    FROM outbox.events AS e, outbox.subscriptions AS s
    WHERE d.id = ANY (due)
      AND e.id = d.event_seq
      AND s.id = d.subscription_id
    RETURNING d.id AS c_delivery_id, d.event_id AS c_event_id, d.subscription_id AS c_subscription_id,
              d.attempts AS c_attempts, d.retry_step AS c_retry_step,
              e.event_type AS c_event_type, e.payload::text AS c_payload, e.headers::text AS c_event_headers,
              e.created_at AS c_event_created_at,
              to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS c_event_timestamp,
              s.url AS c_url, s.headers::text AS c_subscription_headers, s.secret AS c_secret,
              CASE WHEN s.previous_secret_expires_at > now() THEN s.previous_secret END AS c_previous_secret,
              extract(epoch FROM s.timeout)::double precision AS c_timeout_seconds,
              (SELECT array_agg(extract(epoch FROM step)::double precision ORDER BY ordinality)
               FROM unnest(s.retry_schedule) WITH ORDINALITY AS step) AS c_retry_schedule_seconds,
              s.name AS c_subscription_name,
              s.rate_limit IS NOT NULL AS c_rate_limited
    ),
    spent AS (
        UPDATE outbox.subscription_state AS st
        SET rate_tokens = st.rate_tokens - n.claimed
        FROM (SELECT c.c_subscription_id AS id, count(*) AS claimed
              FROM claimed AS c
              WHERE c.c_rate_limited
              GROUP BY c.c_subscription_id) AS n
        WHERE st.subscription_id = n.id
    )
    SELECT c.c_delivery_id, c.c_event_id, c.c_subscription_id, c.c_attempts, c.c_retry_step, c.c_event_type,
           c.c_payload, c.c_event_headers, c.c_event_created_at, c.c_event_timestamp, c.c_url,
           c.c_subscription_headers, c.c_secret, c.c_previous_secret, c.c_timeout_seconds,
           c.c_retry_schedule_seconds, c.c_subscription_name
    FROM claimed AS c;
END
$$;

-- Planned once per call on a possibly large backlog: JIT compilation would cost
-- more than the claim itself (about 10 ms per call seen at 150k pending rows).
ALTER FUNCTION outbox.claim_deliveries(integer, integer, text, interval) SET jit = off;

-- Record a batch of attempts: one outbox.attempts row each, and the delivery's
-- new state. `outcomes` are 'succeeded', 'retry' (pending again at
-- next_attempt_at) or 'dead'. A delivery whose lease this owner no longer holds
-- (it expired and was rescued) keeps its newer state; the attempt is still recorded.
-- PL/pgSQL, not SQL: it keeps its plan for the session, where a SQL function's
-- body is planned on every call (0.2 ms, more than a small batch's work).
CREATE OR REPLACE FUNCTION outbox.record_attempts(
    owner            text,
    delivery_ids     bigint[],
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
    recorded integer;
BEGIN

    WITH outcome AS (
        SELECT *
        FROM unnest(delivery_ids, outcomes, next_attempt_ats, status_codes, errors, started_ats, durations_ms, excerpts)
            AS o(delivery_id, outcome, next_attempt_at, status_code, error, started_at, duration_ms, excerpt)
    ),
    updated AS (
        UPDATE outbox.deliveries AS d
        SET status = CASE o.outcome WHEN 'retry' THEN 'pending' ELSE o.outcome END,
            attempts = d.attempts + 1,
            retry_step = CASE WHEN o.outcome = 'retry' THEN d.retry_step + 1 ELSE d.retry_step END,
            next_attempt_at = coalesce(o.next_attempt_at, d.next_attempt_at),
            last_status_code = o.status_code,
            last_error = o.error,
            completed_at = CASE WHEN o.outcome IN ('succeeded', 'dead') THEN now() END,
            lease_owner = NULL,
            lease_expires_at = NULL
        FROM outcome AS o
        WHERE d.id = o.delivery_id
          AND d.status = 'delivering'
          AND d.lease_owner = record_attempts.owner
        RETURNING d.id, d.attempts
    ),
    recorded AS (
        -- Every part of the statement sees the rows as they were before `updated`,
        -- so d.attempts + 1 is the number `updated` gave this attempt.
        INSERT INTO outbox.attempts (delivery_id, event_id, attempt, started_at, duration_ms, status_code, error, response_excerpt)
        SELECT o.delivery_id, d.event_id, d.attempts + 1,
               o.started_at, o.duration_ms, o.status_code, o.error, o.excerpt
        FROM outcome AS o
        JOIN outbox.deliveries AS d ON d.id = o.delivery_id
        RETURNING 1
    )
    SELECT count(*)::integer INTO recorded FROM updated;
    RETURN recorded;
END
$$;

-- Keep what a subscription's endpoint did lately (subscription_health) and run
-- its circuit breaker. Per subscription of a batch: the last success, the
-- failures after it, the last failure. `failure_threshold` consecutive failures
-- open the circuit for `base_cooldown`; a failed probe reopens it for twice the
-- last cool-down (at most `max_cooldown`); any success closes it. Failing
-- without a success for `disable_after` disables the subscription with a reason.
-- Steady success writes at most once a second per subscription, so replicas do
-- not queue behind one hot row. Returns the subscriptions whose circuit changed
-- or that were disabled, for the log.
CREATE OR REPLACE FUNCTION outbox.record_endpoint_results(
    subscription_ids  bigint[],
    last_success_ats  timestamptz[],
    trailing_failures integer[],
    last_failure_ats  timestamptz[],
    failure_threshold integer,
    base_cooldown     interval,
    max_cooldown      interval,
    disable_after     interval
) RETURNS TABLE (subscription_id bigint, circuit_state text, previous_circuit_state text, disabled boolean)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    r record;
    st outbox.subscription_state;
    failures integer;
    new_state text;
    cooldown interval;
BEGIN
    FOR r IN
        SELECT *
        FROM unnest(subscription_ids, last_success_ats, trailing_failures, last_failure_ats)
            AS x(id, last_success_at, trailing_failures, last_failure_at)
        ORDER BY x.id
    LOOP
        SELECT * INTO st
        FROM outbox.subscription_state AS s
        WHERE s.subscription_id = r.id
        FOR UPDATE;
        CONTINUE WHEN NOT FOUND;
        IF r.trailing_failures = 0 AND st.consecutive_failures = 0 AND st.circuit_state = 'closed'
           AND st.last_success_at >= r.last_success_at - interval '1 second' THEN
            CONTINUE;
        END IF;
        failures := CASE WHEN r.last_success_at IS NOT NULL THEN r.trailing_failures
                         ELSE st.consecutive_failures + r.trailing_failures END;
        new_state := st.circuit_state;
        cooldown := st.circuit_cooldown;
        IF r.last_success_at IS NOT NULL AND r.trailing_failures = 0 THEN
            new_state := 'closed';
            cooldown := NULL;
        ELSIF r.trailing_failures > 0 AND st.circuit_state = 'half_open' THEN
            new_state := 'open';
            cooldown := least(coalesce(st.circuit_cooldown * 2, base_cooldown), max_cooldown);
        ELSIF r.trailing_failures > 0 AND st.circuit_state = 'closed' AND failures >= failure_threshold THEN
            new_state := 'open';
            cooldown := base_cooldown;
        END IF;
        UPDATE outbox.subscription_state AS s
        SET consecutive_failures = failures,
            last_success_at = greatest(s.last_success_at, r.last_success_at),
            last_failure_at = greatest(s.last_failure_at, r.last_failure_at),
            failing_since = CASE WHEN failures = 0 THEN NULL
                                 WHEN r.last_success_at IS NOT NULL OR s.failing_since IS NULL THEN r.last_failure_at
                                 ELSE s.failing_since END,
            circuit_state = new_state,
            circuit_cooldown = cooldown,
            circuit_open_until = CASE WHEN new_state = 'open' AND st.circuit_state <> 'open' THEN now() + cooldown
                                      WHEN new_state = 'closed' THEN NULL
                                      ELSE s.circuit_open_until END
        WHERE s.subscription_id = r.id
        RETURNING s.failing_since INTO st.failing_since;
        disabled := false;
        IF st.failing_since IS NOT NULL AND st.failing_since < now() - disable_after THEN
            UPDATE outbox.subscriptions AS sub
            SET enabled = false,
                disabled_reason = format('failing continuously since %s (more than %s): disabled by the circuit breaker',
                                         st.failing_since, disable_after)
            WHERE sub.id = r.id
              AND sub.enabled;
            disabled := FOUND;
        END IF;
        IF new_state <> st.circuit_state OR disabled THEN
            subscription_id := r.id;
            circuit_state := new_state;
            previous_circuit_state := st.circuit_state;
            RETURN NEXT;
        END IF;
    END LOOP;
END
$$;

-- The recorder's one statement per batch: the attempts and the deliveries' new
-- state (record_attempts), the endpoints' latest results (record_endpoint_results)
-- and the subscriptions that answered 410 Gone (disable_subscriptions). One
-- statement is one transaction that never waits on the network midway: a
-- connection lost during it cannot leave the deliveries' row locks held by a
-- server session whose client is gone (found by the network drill).
CREATE OR REPLACE FUNCTION outbox.record_results(
    owner             text,
    delivery_ids      bigint[],
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
    PERFORM outbox.record_attempts($1, $2, $3, $4, $5, $6, $7, $8, $9);
    RETURN QUERY SELECT * FROM outbox.record_endpoint_results($10, $11, $12, $13, $14, $15, $16, $17);
    IF cardinality($18) > 0 THEN
        PERFORM outbox.disable_subscriptions($18, $19);
    END IF;
END
$$;

-- A relay that found nothing to claim announces its sleep, so publishers
-- notify it from now on, and returns whether it may wait for that NOTIFY
-- (`quiet`). It may not while a publisher holds the fan-out's shared lock (it
-- may have looked for sleepers before the announcement and be yet to commit),
-- nor while due work waits (another replica is claiming it, or it waits for
-- room: max in flight, an open circuit, a rate limit). Then the announcement is
-- withdrawn and the relay looks again soon; when quiet, it claims once more
-- (for what committed before) and sleeps. Call it outside a transaction block
-- (it commits).
CREATE OR REPLACE PROCEDURE outbox.prepare_to_sleep(INOUT quiet boolean DEFAULT NULL)
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE outbox.relay_sessions AS r SET asleep = true WHERE r.pid = pg_backend_pid();
    IF NOT FOUND THEN
        INSERT INTO outbox.relay_sessions (pid, backend_start, asleep)
        SELECT a.pid, a.backend_start, true FROM pg_stat_get_activity(pg_backend_pid()) AS a
        ON CONFLICT (pid) DO UPDATE SET backend_start = excluded.backend_start, asleep = true;
    END IF;
    COMMIT;
    quiet := pg_try_advisory_lock(1868722809, 0);
    IF quiet THEN
        PERFORM pg_advisory_unlock(1868722809, 0);
        quiet := NOT EXISTS (
            SELECT 1
            FROM outbox.subscriptions AS s
            WHERE s.enabled
              AND EXISTS (SELECT 1
                          FROM outbox.deliveries AS d
                          WHERE d.subscription_id = s.id
                            AND d.status = 'pending'
                            AND d.next_attempt_at <= now()));
    END IF;
    IF NOT quiet THEN
        UPDATE outbox.relay_sessions AS r SET asleep = false WHERE r.pid = pg_backend_pid();
    END IF;
END
$$;

-- Forget the sleep announcements of sessions that ended (a relay killed while
-- asleep would otherwise keep publishers notifying).
CREATE OR REPLACE FUNCTION outbox.forget_ended_relay_sessions() RETURNS integer
LANGUAGE sql VOLATILE AS $$
    WITH ended AS (
        DELETE FROM outbox.relay_sessions AS r
        WHERE NOT EXISTS (
            SELECT 1 FROM pg_stat_get_activity(r.pid) AS a WHERE a.backend_start = r.backend_start)
        RETURNING 1
    )
    SELECT count(*)::integer FROM ended
$$;

-- A live relay extends the leases of everything it has in flight.
-- Rows the recorder holds right now are skipped: they are being finished, and
-- waiting for them (or they for us) could deadlock.
CREATE OR REPLACE FUNCTION outbox.renew_leases(owner text, lease interval) RETURNS integer
LANGUAGE sql VOLATILE AS $$
    WITH held AS (
        SELECT d.id
        FROM outbox.deliveries AS d
        WHERE d.status = 'delivering'
          AND d.lease_owner = renew_leases.owner
        FOR UPDATE SKIP LOCKED
    ),
    renewed AS (
        UPDATE outbox.deliveries AS d
        SET lease_expires_at = now() + lease
        WHERE d.id = ANY (ARRAY(SELECT held.id FROM held))
        RETURNING 1
    )
    SELECT count(*)::integer FROM renewed
$$;

-- Return work whose lease expired (its relay died) to pending, due now, not
-- charged an attempt.
CREATE OR REPLACE FUNCTION outbox.rescue_expired_leases() RETURNS integer
LANGUAGE sql VOLATILE AS $$
    WITH expired AS (
        SELECT d.id
        FROM outbox.deliveries AS d
        WHERE d.status = 'delivering'
          AND d.lease_expires_at < now()
        FOR UPDATE SKIP LOCKED
    ),
    rescued AS (
        UPDATE outbox.deliveries AS d
        SET status = 'pending',
            next_attempt_at = now(),
            lease_owner = NULL,
            lease_expires_at = NULL
        WHERE d.id = ANY (ARRAY(SELECT expired.id FROM expired))
        RETURNING 1
    )
    SELECT count(*)::integer FROM rescued
$$;

-- Give back claimed work without charging an attempt (shutdown).
CREATE OR REPLACE FUNCTION outbox.release_deliveries(owner text, delivery_ids bigint[]) RETURNS integer
LANGUAGE sql VOLATILE AS $$
    WITH released AS (
        UPDATE outbox.deliveries AS d
        SET status = 'pending',
            lease_owner = NULL,
            lease_expires_at = NULL
        WHERE d.id = ANY (delivery_ids)
          AND d.status = 'delivering'
          AND d.lease_owner = release_deliveries.owner
        RETURNING 1
    )
    SELECT count(*)::integer FROM released
$$;

-- 410 Gone: the endpoint asked us to stop. Its pending deliveries wait.
CREATE OR REPLACE FUNCTION outbox.disable_subscriptions(subscription_ids bigint[], reason text) RETURNS integer
LANGUAGE sql VOLATILE AS $$
    WITH disabled AS (
        UPDATE outbox.subscriptions AS s
        SET enabled = false,
            disabled_reason = reason
        WHERE s.id = ANY (subscription_ids)
          AND s.enabled
        RETURNING 1
    )
    SELECT count(*)::integer FROM disabled
$$;

RESET check_function_bodies;
