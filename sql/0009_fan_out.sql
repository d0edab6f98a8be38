-- outbox-relay schema, part 9: publishing, and fan-out in the relay.
--
-- The host's INSERT runs one row trigger: give the event an id, refuse a
-- duplicate event_id, and notify a sleeping relay (the row is checked by the
-- constraint events_valid, 0008). Nothing in it grows with
-- the number of subscriptions. The relay then reads each subscription's new
-- events by snapshot (outbox.read_new_events) when it claims work.

-- Every new event, before it is stored: its id (a UUID when it has none; a
-- duplicate of an event kept is refused) and the wake-up of a sleeping relay.
-- The row's other columns are checked by the constraint events_valid (0008).
CREATE OR REPLACE FUNCTION outbox.check_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.event_id IS NULL THEN
        NEW.event_id := gen_random_uuid()::text;
    -- Each partition's unique index refuses a duplicate within it (concurrent
    -- inserts included); this finds one in the other partitions.
    ELSIF EXISTS (SELECT 1 FROM outbox.events AS e WHERE e.event_id = NEW.event_id) THEN
        RAISE EXCEPTION 'duplicate key value violates unique constraint "events_event_id_key"'
            USING ERRCODE = 'unique_violation',
                  DETAIL = format('Key (event_id)=(%s) already exists.', NEW.event_id);
    END IF;
    -- Wake a sleeping relay, and only a sleeping one: a NOTIFY makes commits
    -- queue on a global lock, and a busy relay finds the row on its next claim
    -- anyway. A sleeping relay holds the wake-up lock; otherwise this takes it
    -- shared until commit, which keeps a relay from falling asleep before the
    -- row is visible (outbox.prepare_to_sleep, 0010). PostgreSQL folds the
    -- identical notifications of one transaction into one.
    IF NOT pg_try_advisory_xact_lock_shared(1868722809, 0) THEN
        PERFORM pg_notify('outbox_work', '');
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS events_check ON outbox.events;
CREATE TRIGGER events_check
    BEFORE INSERT ON outbox.events
    FOR EACH ROW EXECUTE FUNCTION outbox.check_event();

-- Publish an event from SQL, inside the caller's transaction; returns its event_id.
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
    VALUES ($1, $2, $3, $4, $5)
    RETURNING e.event_id INTO published;
    RETURN published;
END
$$;

-- A subscription reads the events that commit after it was created (its cursor
-- starts at its creating statement's snapshot) while it is enabled and matches
-- (outbox.subscription_periods). A removed one takes its queue, cursor, periods
-- and state with it; its attempts stay in the history until retention.
CREATE OR REPLACE FUNCTION outbox.track_subscription() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO outbox.subscription_state (subscription_id) VALUES (NEW.id)
        ON CONFLICT (subscription_id) DO NOTHING;
        INSERT INTO outbox.subscription_cursors (subscription_id, lo, hi)
        VALUES (NEW.id, pg_current_snapshot(), pg_current_snapshot())
        ON CONFLICT (subscription_id) DO NOTHING;
        IF NEW.enabled THEN
            INSERT INTO outbox.subscription_periods (subscription_id, event_types, started)
            VALUES (NEW.id, NEW.event_types, pg_current_snapshot());
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF OLD.enabled AND (NOT NEW.enabled OR NEW.event_types IS DISTINCT FROM OLD.event_types) THEN
            UPDATE outbox.subscription_periods AS p
            SET ended = pg_current_snapshot()
            WHERE p.subscription_id = NEW.id
              AND p.ended IS NULL;
        END IF;
        IF NEW.enabled AND (NOT OLD.enabled OR NEW.event_types IS DISTINCT FROM OLD.event_types) THEN
            INSERT INTO outbox.subscription_periods (subscription_id, event_types, started)
            VALUES (NEW.id, NEW.event_types, pg_current_snapshot());
        END IF;
        RETURN NEW;
    END IF;
    DELETE FROM outbox.delivery_queue WHERE subscription_id = OLD.id;
    DELETE FROM outbox.subscription_cursors WHERE subscription_id = OLD.id;
    DELETE FROM outbox.subscription_periods WHERE subscription_id = OLD.id;
    DELETE FROM outbox.subscription_state WHERE subscription_id = OLD.id;
    RETURN OLD;
END
$$;

DROP TRIGGER IF EXISTS subscriptions_track ON outbox.subscriptions;
CREATE TRIGGER subscriptions_track
    AFTER INSERT OR DELETE OR UPDATE OF enabled, event_types ON outbox.subscriptions
    FOR EACH ROW EXECUTE FUNCTION outbox.track_subscription();

-- Does an event (by its writing transaction and type) belong to a subscription?
CREATE OR REPLACE FUNCTION outbox.event_belongs(subscription_id bigint, txid xid8, event_type text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1
        FROM outbox.subscription_periods AS p
        WHERE p.subscription_id = event_belongs.subscription_id
          AND NOT pg_visible_in_snapshot(event_belongs.txid, p.started)
          AND (p.ended IS NULL OR pg_visible_in_snapshot(event_belongs.txid, p.ended))
          AND outbox.event_type_matches(p.event_types, event_belongs.event_type))
$$;

-- A subscription's only period, when it has one and it is still open (the
-- common case): then whether an event belongs is one snapshot test and, unless
-- the patterns include '*', one pattern match, with no lookup per event.
CREATE OR REPLACE FUNCTION outbox.single_open_period(subscription_id bigint) RETURNS outbox.subscription_periods
LANGUAGE plpgsql STABLE AS $$
DECLARE
    period outbox.subscription_periods;
BEGIN
    -- PL/pgSQL keeps this plan for the session (a SQL function plans it per call).
    SELECT p.* INTO period
    FROM outbox.subscription_periods AS p
    WHERE p.subscription_id = single_open_period.subscription_id
      AND p.ended IS NULL
      AND NOT EXISTS (SELECT 1 FROM outbox.subscription_periods AS other
                      WHERE other.subscription_id = p.subscription_id AND other.ended IS NOT NULL);
    RETURN period;
END
$$;

-- Has a subscription's cursor read past this event (or is it before its time)?
CREATE OR REPLACE FUNCTION outbox.cursor_has_read(c outbox.subscription_cursors, txid xid8, id bigint) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT pg_visible_in_snapshot(txid, c.lo)
        OR (pg_visible_in_snapshot(txid, c.hi) AND (txid, id) <= (c.read_txid, c.read_id))
$$;

-- The next events of one subscription's stream, at most `max_events`, and the
-- cursor moved past them. With `claiming`, the events read and `claiming` more
-- count as claims made (subscription_cursors.claimed), in the same update. The current batch is read first; when it is done the
-- next one starts at a new snapshot (taken here, so it sees every commit so far)
-- and is read too. Batches are read in (txid, id) order through events_txid_idx:
-- the transactions the previous snapshot saw in progress, then the ones that
-- started after it. So a long transaction costs a look at its own events, never
-- a rescan of everything after it. The caller holds the subscription's claim lock.
CREATE OR REPLACE FUNCTION outbox.read_new_events(subscription_id bigint, max_events integer, claiming integer DEFAULT NULL)
RETURNS TABLE (event_seq bigint, event_created_at timestamptz, event_id text, ordering_key text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    c outbox.subscription_cursors;
    period outbox.subscription_periods := outbox.single_open_period(read_new_events.subscription_id);
    simple boolean := period.subscription_id IS NOT NULL;
    every_type boolean := coalesce('*' = ANY (period.event_types), false);
    seqs bigint[] := '{}';
    created timestamptz[] := '{}';
    ids text[] := '{}';
    keys text[] := '{}';
BEGIN
    SELECT * INTO c FROM outbox.subscription_cursors AS sc WHERE sc.subscription_id = read_new_events.subscription_id;
    IF NOT FOUND OR max_events <= 0 THEN
        RETURN;
    END IF;
    FOR batch IN 1..2 LOOP
        -- One statement per batch, not a step per event: set-based, arrays out.
        WITH taken AS (
            SELECT u.*
            FROM ((SELECT e.id, e.created_at, e.event_id, e.ordering_key, e.txid
                   FROM outbox.events AS e
                   WHERE e.txid = ANY (ARRAY(SELECT pg_snapshot_xip(c.lo)))
                     AND (e.txid, e.id) > (c.read_txid, c.read_id)
                     AND pg_visible_in_snapshot(e.txid, c.hi)
                     AND CASE WHEN simple
                              THEN NOT pg_visible_in_snapshot(e.txid, period.started)
                                   AND (every_type OR outbox.event_type_matches(period.event_types, e.event_type))
                              ELSE outbox.event_belongs(read_new_events.subscription_id, e.txid, e.event_type) END
                   ORDER BY e.txid, e.id
                   LIMIT max_events - cardinality(seqs))
                  UNION ALL
                  (SELECT e.id, e.created_at, e.event_id, e.ordering_key, e.txid
                   FROM outbox.events AS e
                   WHERE (e.txid, e.id) > (greatest(c.read_txid, pg_snapshot_xmax(c.lo)),
                                           CASE WHEN c.read_txid >= pg_snapshot_xmax(c.lo) THEN c.read_id ELSE -1 END)
                     AND e.txid < pg_snapshot_xmax(c.hi)
                     AND pg_visible_in_snapshot(e.txid, c.hi)
                     AND CASE WHEN simple
                              THEN NOT pg_visible_in_snapshot(e.txid, period.started)
                                   AND (every_type OR outbox.event_type_matches(period.event_types, e.event_type))
                              ELSE outbox.event_belongs(read_new_events.subscription_id, e.txid, e.event_type) END
                   ORDER BY e.txid, e.id
                   LIMIT max_events - cardinality(seqs))) AS u
            ORDER BY u.txid, u.id
            LIMIT max_events - cardinality(seqs)
        )
        SELECT seqs || coalesce(array_agg(t.id ORDER BY t.txid, t.id), '{}'),
               created || coalesce(array_agg(t.created_at ORDER BY t.txid, t.id), '{}'),
               ids || coalesce(array_agg(t.event_id ORDER BY t.txid, t.id), '{}'),
               keys || coalesce(array_agg(t.ordering_key ORDER BY t.txid, t.id), '{}'),
               coalesce((array_agg(t.txid ORDER BY t.txid DESC, t.id DESC))[1], c.read_txid),
               coalesce((array_agg(t.id ORDER BY t.txid DESC, t.id DESC))[1], c.read_id)
        INTO seqs, created, ids, keys, c.read_txid, c.read_id
        FROM taken AS t;
        EXIT WHEN cardinality(seqs) >= max_events;
        -- The batch is read: the next one runs from this one's end to now.
        c.lo := c.hi;
        c.hi := pg_current_snapshot();
        c.read_txid := '0';
        c.read_id := 0;
    END LOOP;
    -- Nothing read: the cursor stays where it was (the next call reads the same
    -- empty batches again, at no cost), so an idle relay writes nothing.
    IF cardinality(seqs) > 0 OR coalesce(claiming, 0) > 0 THEN
        UPDATE outbox.subscription_cursors AS sc
        SET lo = c.lo, hi = c.hi, read_txid = c.read_txid, read_id = c.read_id,
            claimed = sc.claimed + coalesce(claiming + cardinality(seqs), 0)
        WHERE sc.subscription_id = read_new_events.subscription_id;
    END IF;
    RETURN QUERY SELECT * FROM unnest(seqs, created, ids, keys);
END
$$;

-- Planned once per session and always in index order: planning anew per call
-- costs more than reading (the planner probes the index ends for its estimates),
-- and a guess that few rows qualify would sort a whole batch instead of reading
-- its first rows in order.
ALTER FUNCTION outbox.read_new_events(bigint, integer, integer) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION outbox.read_new_events(bigint, integer, integer) SET enable_sort = off;

-- Does a subscription have events its cursor has not read (matching or not)?
-- For a relay about to sleep: cheap, it looks only past the cursor.
CREATE OR REPLACE FUNCTION outbox.has_unread_events(c outbox.subscription_cursors) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
               SELECT 1 FROM outbox.events AS e
               WHERE e.txid = ANY (ARRAY(SELECT pg_snapshot_xip(c.lo)) || ARRAY(SELECT pg_snapshot_xip(c.hi)))
                 AND NOT outbox.cursor_has_read(c, e.txid, e.id))
        OR EXISTS (
               SELECT 1 FROM outbox.events AS e
               WHERE (e.txid, e.id) > (c.read_txid, c.read_id)
                 AND e.txid >= pg_snapshot_xmax(c.lo)
                 AND NOT outbox.cursor_has_read(c, e.txid, e.id))
$$;
