-- outbox-relay schema, part 15: the operator's operations, one definition each.
-- The CLI, the admin API and the console read and change subscriptions through
-- these objects (Sources/OutboxOperations), and a DBA can call them by hand.
-- Safe to apply again: every object is created or replaced.

-- 1. Event types and subscription patterns: no empty segment. `order.`, `.order`
--    and `order..paid` were accepted so far; a pattern `order..*` or `order.` could
--    never match a well-formed type. Existing rows are not checked again.
CREATE OR REPLACE FUNCTION outbox.is_valid_pattern(pattern text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT pattern = '*'
        OR (length(pattern) <= 255 AND pattern ~ '^[A-Za-z0-9][A-Za-z0-9_:-]*(\.[A-Za-z0-9_:-]+)*(\.\*)?$')
$$;

-- As in sql/0008_storage.sql, with the empty-segment check: the CHECK constraint
-- events_valid calls this function, so the new rule holds at once for every partition.
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
    -- Cheaper than a regular expression on every insert: the type starts with a
    -- letter or digit, so a trailing dot or two in a row is an empty segment.
    IF right(event_type, 1) = '.' OR strpos(event_type, '..') > 0 THEN
        RAISE EXCEPTION 'outbox.events.event_type "%" has an empty segment: dots separate non-empty parts, as in ''order.paid''', left(event_type, 300)
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

-- 2. What of a subscription anyone may read: no secret, the URL without its
--    userinfo, credential-like header values hidden (sql/0013_redaction.sql).
--    Every surface lists and shows subscriptions from this view only.
CREATE OR REPLACE VIEW outbox.subscription_settings AS
SELECT s.id,
       s.name,
       outbox.redacted_url(s.url)         AS url,
       s.event_types,
       s.enabled,
       s.disabled_reason,
       s.ordered,
       outbox.redacted_headers(s.headers) AS headers,
       s.timeout,
       s.retry_schedule,
       s.max_in_flight,
       s.rate_limit,
       s.previous_secret IS NOT NULL      AS has_previous_secret,
       s.previous_secret_expires_at,
       s.created_at,
       s.updated_at
FROM outbox.subscriptions AS s;
COMMENT ON VIEW outbox.subscription_settings IS 'Subscriptions as every surface shows them: no secret, no URL userinfo, no credential-like header value.';

-- The dead letters showed the raw URL; they show it as every other surface does.
CREATE OR REPLACE VIEW outbox.dead_letters AS
SELECT q.id                       AS delivery_id,
       q.event_id,
       e.event_type,
       e.payload,
       e.created_at               AS event_created_at,
       q.subscription_id,
       s.name                     AS subscription,
       outbox.redacted_url(s.url) AS url,
       q.attempts,
       q.last_status_code,
       q.last_error,
       q.completed_at             AS dead_at
FROM outbox.delivery_queue AS q
JOIN outbox.subscriptions AS s ON s.id = q.subscription_id
LEFT JOIN outbox.events AS e ON e.id = q.event_seq AND e.created_at = q.event_created_at
WHERE q.status = 'dead';

-- 3. The backlog, one definition: per subscription, what waits (pending: the
--    queue's waiting rows and the events its cursor has not read), what of it is
--    due, what is in flight over all replicas (counters, no scan), what is dead,
--    and how old the oldest waiting and the longest-overdue work are. `status`,
--    GET /api/v1/stats, the relay's backlog gauges and outbox.subscription_health
--    all read it. Reads the queue through its subscription index, never the history.
CREATE OR REPLACE VIEW outbox.backlog AS
SELECT s.id                                                        AS subscription_id,
       s.name                                                      AS subscription,
       coalesce(q.pending, 0) + coalesce(u.unread, 0)              AS pending,
       coalesce(q.due, 0) + coalesce(u.unread, 0)                  AS due,
       greatest(coalesce(c.claimed - st.ended, 0), 0)              AS delivering,
       coalesce(q.dead, 0)                                         AS dead,
       now() - least(q.oldest_pending, u.oldest)                   AS oldest_pending_age,
       -- An unread event is due from the moment it committed.
       now() - least(q.oldest_due, u.oldest)                       AS due_lag
FROM outbox.subscriptions AS s
LEFT JOIN outbox.subscription_state AS st ON st.subscription_id = s.id
LEFT JOIN outbox.subscription_cursors AS c ON c.subscription_id = s.id
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE d.status = 'pending')                               AS pending,
           count(*) FILTER (WHERE d.status = 'pending' AND d.next_attempt_at <= now()) AS due,
           count(*) FILTER (WHERE d.status = 'dead')                                  AS dead,
           min(d.created_at) FILTER (WHERE d.status = 'pending')                      AS oldest_pending,
           min(d.next_attempt_at) FILTER (WHERE d.status = 'pending' AND d.next_attempt_at <= now()) AS oldest_due
    FROM outbox.delivery_queue AS d
    WHERE d.subscription_id = s.id
      AND d.status IN ('pending', 'dead')
) AS q ON true
LEFT JOIN LATERAL outbox.unread_backlog(s.id) AS u ON true;
COMMENT ON VIEW outbox.backlog IS 'Per subscription: pending (due of them), delivering, dead, oldest pending age, due lag. The one definition of the backlog.';

-- The health view of SPEC §3 keeps its columns; its counts now come from outbox.backlog.
CREATE OR REPLACE VIEW outbox.subscription_health AS
SELECT s.name AS subscription,
       s.enabled,
       s.disabled_reason,
       b.pending,
       b.delivering,
       coalesce(st.succeeded, 0)             AS succeeded,
       b.dead,
       b.oldest_pending_age,
       st.last_success_at,
       coalesce(st.consecutive_failures, 0) AS consecutive_failures,
       coalesce(st.circuit_state, 'closed') AS circuit_state
FROM outbox.subscriptions AS s
JOIN outbox.backlog AS b ON b.subscription_id = s.id
LEFT JOIN outbox.subscription_state AS st ON st.subscription_id = s.id;

-- 4. Rotate a subscription's signing secret: `new_secret` (generated when NULL)
--    signs from now on, the current one keeps signing too for `grace`, so
--    receivers switch over without rejecting a request. Returns the new secret,
--    the one time it is shown; no row: no such subscription. sql/0016_roles.sql
--    makes it run as the owner, so the operator's role replaces a secret without
--    being able to read one.
CREATE OR REPLACE FUNCTION outbox.rotate_secret(
    subscription text,
    new_secret   text DEFAULT NULL,
    grace        interval DEFAULT interval '24 hours'
) RETURNS TABLE (secret text, previous_secret_expires_at timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
    IF grace IS NULL OR grace < interval '0' THEN
        RAISE EXCEPTION 'the grace period of a secret rotation must be zero or more, got %', coalesce(grace::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    UPDATE outbox.subscriptions AS s
    SET previous_secret = s.secret,
        secret = coalesce(rotate_secret.new_secret, outbox.generate_secret()),
        previous_secret_expires_at = now() + rotate_secret.grace,
        updated_at = now()
    WHERE s.name = rotate_secret.subscription
    RETURNING s.secret, s.previous_secret_expires_at;
END
$$;
