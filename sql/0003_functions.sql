-- outbox-relay schema, part 3: fan-out, the publishing and subscribing API,
-- replay, and the triggers that keep the tables consistent.

-- Fan-out: in the host's own transaction, one delivery per enabled subscription
-- whose patterns match each new event. Because deliveries are created with the
-- event, they exist if and only if the host commits, and the relay never needs
-- to track "the highest event seen" (which skips rows committed out of order).
-- The NOTIFY is only a wake-up hint (the relay also polls), sent only while a
-- relay sleeps (outbox.relay_sessions): a NOTIFY makes commits queue on a global
-- lock, and a busy relay finds the new rows on its next claim anyway. At most one
-- per transaction: PostgreSQL folds identical notifications. The shared lock,
-- held to commit, tells a relay about to sleep whether a publisher may have
-- looked before it announced its sleep (outbox.prepare_to_sleep). A sleeper
-- counts only while its session lives: a relay stopped or killed while asleep
-- must not leave every later commit paying for a NOTIFY nobody hears.
CREATE OR REPLACE FUNCTION outbox.fan_out_events() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    created bigint;
BEGIN
    INSERT INTO outbox.deliveries (event_id, event_seq, subscription_id, ordering_key)
    SELECT e.event_id, e.id, s.id, CASE WHEN s.ordered THEN e.ordering_key END
    FROM new_events AS e
    JOIN outbox.subscriptions AS s
      ON s.enabled
     AND outbox.event_type_matches(s.event_types, e.event_type);
    GET DIAGNOSTICS created = ROW_COUNT;
    IF created > 0 THEN
        PERFORM pg_advisory_xact_lock_shared(1868722809, 0);
        IF EXISTS (SELECT 1
                   FROM outbox.relay_sessions AS r
                   WHERE r.asleep
                     AND EXISTS (SELECT 1 FROM pg_stat_get_activity(r.pid))) THEN
            PERFORM pg_notify('outbox_work', '');
        END IF;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS events_fan_out ON outbox.events;
CREATE TRIGGER events_fan_out
    AFTER INSERT ON outbox.events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION outbox.fan_out_events();

-- Deleting events (retention, or by hand) removes their deliveries and attempts.
CREATE OR REPLACE FUNCTION outbox.forget_events() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    WITH gone AS (
        DELETE FROM outbox.deliveries AS d
        USING old_events AS e
        WHERE d.event_seq = e.id
        RETURNING d.id
    )
    DELETE FROM outbox.attempts AS a
    USING gone
    WHERE a.delivery_id = gone.id;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS events_forget ON outbox.events;
CREATE TRIGGER events_forget
    AFTER DELETE ON outbox.events
    REFERENCING OLD TABLE AS old_events
    FOR EACH STATEMENT EXECUTE FUNCTION outbox.forget_events();

-- A new subscription gets its runtime state row; a removed one takes its
-- deliveries, attempts and state with it.
CREATE OR REPLACE FUNCTION outbox.track_subscription() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO outbox.subscription_state (subscription_id) VALUES (NEW.id)
        ON CONFLICT (subscription_id) DO NOTHING;
        RETURN NEW;
    END IF;
    WITH gone AS (
        DELETE FROM outbox.deliveries WHERE subscription_id = OLD.id RETURNING id
    )
    DELETE FROM outbox.attempts AS a USING gone WHERE a.delivery_id = gone.id;
    DELETE FROM outbox.subscription_state WHERE subscription_id = OLD.id;
    RETURN OLD;
END
$$;

DROP TRIGGER IF EXISTS subscriptions_track ON outbox.subscriptions;
CREATE TRIGGER subscriptions_track
    AFTER INSERT OR DELETE ON outbox.subscriptions
    FOR EACH ROW EXECUTE FUNCTION outbox.track_subscription();

-- Re-enabling a subscription gives its endpoint a fresh start (the breaker's
-- failure count and disable clock restart, the circuit closes) and wakes the
-- relay for its waiting deliveries.
CREATE OR REPLACE FUNCTION outbox.wake_relay() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE outbox.subscription_state AS st
    SET consecutive_failures = 0,
        failing_since = NULL,
        circuit_state = 'closed',
        circuit_open_until = NULL,
        circuit_cooldown = NULL
    WHERE st.subscription_id = NEW.id;
    PERFORM pg_notify('outbox_work', '');
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS subscriptions_wake ON outbox.subscriptions;
CREATE TRIGGER subscriptions_wake
    AFTER UPDATE OF enabled ON outbox.subscriptions
    FOR EACH ROW WHEN (NEW.enabled AND NOT OLD.enabled)
    EXECUTE FUNCTION outbox.wake_relay();

-- Publish an event from SQL, inside the caller's transaction; returns its event_id.
-- PL/pgSQL keeps the INSERT's plan for the session (a SQL function would plan it
-- on every call, in every host transaction).
CREATE OR REPLACE FUNCTION outbox.publish(
    event_type   text,
    payload      jsonb,
    ordering_key text DEFAULT NULL,
    headers      jsonb DEFAULT NULL,
    event_id     text DEFAULT NULL
) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    published text;
BEGIN
    INSERT INTO outbox.events AS e (event_type, payload, ordering_key, headers, event_id)
    VALUES ($1, $2, $3, $4, coalesce($5, gen_random_uuid()::text))
    RETURNING e.event_id INTO published;
    RETURN published;
END
$$;

-- A new Standard Webhooks secret: whsec_ + base64 of 32 bytes from two random
-- UUIDs (244 random bits; no pgcrypto needed).
CREATE OR REPLACE FUNCTION outbox.generate_secret() RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT 'whsec_' || encode(decode(
        replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', ''),
        'hex'), 'base64')
$$;

-- Create a subscription from SQL; returns its signing secret (generated when
-- none is given).
CREATE OR REPLACE FUNCTION outbox.subscribe(
    name        text,
    url         text,
    event_types text[],
    secret      text DEFAULT NULL,
    ordered     boolean DEFAULT false
) RETURNS text
LANGUAGE sql AS $$
    INSERT INTO outbox.subscriptions (name, url, event_types, secret, ordered)
    VALUES ($1, $2, $3, coalesce($4, outbox.generate_secret()), $5)
    RETURNING secret
$$;

-- Put a dead (or succeeded) delivery back to pending, due now, with a fresh
-- retry schedule. outbox.attempts keeps the history; attempts number on.
CREATE OR REPLACE FUNCTION outbox.replay(delivery_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    current_status text;
BEGIN
    SELECT d.status INTO current_status
    FROM outbox.deliveries AS d
    WHERE d.id = replay.delivery_id
    FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'delivery % does not exist', replay.delivery_id
            USING ERRCODE = 'no_data_found';
    END IF;
    IF current_status NOT IN ('dead', 'succeeded') THEN
        RAISE EXCEPTION 'delivery % is %: only dead or succeeded deliveries can be replayed', replay.delivery_id, current_status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE outbox.deliveries AS d
    SET status = 'pending',
        next_attempt_at = now(),
        retry_step = 0,
        completed_at = NULL,
        lease_owner = NULL,
        lease_expires_at = NULL
    WHERE d.id = replay.delivery_id;
    PERFORM pg_notify('outbox_work', '');
END
$$;

-- Replay one batch of dead letters: the first `batch_size` after id `after`,
-- optionally of one subscription and completed in [since, until). Returns the
-- replayed ids in order; callers loop with the last one as the next `after`,
-- each batch its own transaction so locks stay short. The id cursor visits each
-- delivery once, so one that dies again meanwhile is not replayed twice.
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
        SELECT d.id
        FROM outbox.deliveries AS d
        WHERE d.status = 'dead'
          AND d.id > replay_dead_letters.after
          AND (replay_dead_letters.subscription_id IS NULL OR d.subscription_id = replay_dead_letters.subscription_id)
          AND (replay_dead_letters.since IS NULL OR d.completed_at >= replay_dead_letters.since)
          AND (replay_dead_letters.until IS NULL OR d.completed_at < replay_dead_letters.until)
        ORDER BY d.id
        LIMIT replay_dead_letters.batch_size
        FOR UPDATE OF d SKIP LOCKED
    LOOP
        PERFORM outbox.replay(replayed_id);
        RETURN NEXT replayed_id;
    END LOOP;
END
$$;
