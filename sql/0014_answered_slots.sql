-- outbox-relay schema, part 14: a claim may reuse the slots of max in flight
-- of its own requests that were answered and whose outcomes are not recorded yet.
--
-- Max in flight limits the requests sent at once (SPEC §5). The counters count a
-- claim as in flight until the recorder has written its outcome, so a delivery
-- held its slot for a claim, a request and a record. Now the claimer passes
-- `answered`: the ids of its deliveries whose responses have arrived and whose
-- outcomes it has not seen recorded. Those still delivering under its lease, read
-- in the same snapshot as the counters, are not in flight: their slots are free.
-- One whose record committed before that snapshot is no longer counted in flight
-- anyway; one whose lease was taken over is not this relay's to free. The limit
-- still holds over all replicas, and nothing is written for it. A half-open
-- circuit is the exception: its next probe waits for the last one's outcome.
-- (The relay names only requests that succeeded: a failure keeps its slot
-- until recorded, so a failing endpoint gets no more than the breaker has seen.)

DROP FUNCTION IF EXISTS outbox.claim_deliveries(integer, integer, text, interval);

-- As in 0010, and the answered requests are not counted in flight.
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
    claimed_ids bigint[] := '{}';
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
$$
SET jit = off
SET enable_seqscan = off;
