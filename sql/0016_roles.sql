-- outbox-relay schema, part 16: least privilege. Four NOLOGIN group roles, made
-- by `outbox-relay roles` (or by hand, see below) and granted to login users:
--
--   outbox_publisher  the application: INSERT into outbox.events, outbox.publish()
--   outbox_reader     a dashboard or a DBA: every SPEC §3 object, outbox.backlog,
--                     subscriptions through outbox.subscription_settings (0015:
--                     no secret, no URL userinfo, no credential-like header value)
--   outbox_operator   the CLI's management commands: the reader's rights, and
--                     subscriptions, replay, purge and API tokens, writing
--                     secrets but never reading one back
--   outbox_relay      `outbox-relay run`: claims, records, signs (so it alone
--                     reads the secrets), keeps the time partitions
--
-- The schema's owner stays the role that migrates; it owns every table, and what
-- a role needs beyond its grants runs as the owner in SECURITY DEFINER functions
-- with a pinned search_path, whose EXECUTE is granted, never PUBLIC's.
--
-- By hand (roles are cluster-wide; grants are per database):
--   CREATE ROLE outbox_publisher NOLOGIN;  -- and outbox_reader, outbox_operator, outbox_relay
--   SELECT outbox.grant_roles();           -- as the schema's owner, in each database
--   GRANT outbox_publisher TO app_user;
-- `outbox-relay migrate` calls outbox.grant_roles() after every run, so new
-- objects are granted as they come; after applying migrations with psql, call it.

-- Change a subscription's static headers: drop the names in `removed` and those
-- `added` replaces (any spelling: header names are case-insensitive), then add
-- `added`. Runs as the owner because it reads the values it keeps, which the
-- operator may not; it returns only whether the subscription exists.
-- SubscriptionUpdate (Sources/OutboxOperations) calls it for the CLI and the API.
CREATE OR REPLACE FUNCTION outbox.change_subscription_headers(subscription text, removed text[], added jsonb)
RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH changed AS (
        UPDATE outbox.subscriptions AS s
        SET headers = (SELECT coalesce(jsonb_object_agg(h.key, h.value), '{}'::jsonb)
                       FROM jsonb_each(s.headers) AS h
                       WHERE lower(h.key) <> ALL (SELECT lower(r) FROM unnest(change_subscription_headers.removed) AS r)
                         AND lower(h.key) <> ALL (SELECT lower(k) FROM jsonb_object_keys(coalesce(change_subscription_headers.added, '{}'::jsonb)) AS k))
                      || coalesce(change_subscription_headers.added, '{}'::jsonb)
        WHERE s.name = change_subscription_headers.subscription
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM changed)
$$;

-- The partitioned history tables, the only ones the relay's partition upkeep may
-- touch through the functions below.
CREATE OR REPLACE FUNCTION outbox.check_history_table(parent regclass) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF parent IS NULL OR parent NOT IN ('outbox.events'::regclass, 'outbox.attempts'::regclass) THEN
        RAISE EXCEPTION 'only outbox.events and outbox.attempts have time partitions kept by the relay, not %', coalesce(parent::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- The relay's partition upkeep (PartitionKeeper): outbox.create_time_partitions
-- and outbox.drop_time_partitions (sql/0012) run as the owner, so the partitions
-- belong to the owner like their parent, and the relay's role needs no CREATE on
-- the schema and owns no table. Reads and inserts go through the parent, whose
-- grants cover every partition.
CREATE OR REPLACE FUNCTION outbox.create_history_partitions(parent regclass, every interval, ahead interval)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM outbox.check_history_table(parent);
    RETURN outbox.create_time_partitions(parent, every, ahead);
END
$$;

CREATE OR REPLACE FUNCTION outbox.drop_history_partitions(parent regclass, retention interval)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM outbox.check_history_table(parent);
    RETURN outbox.drop_time_partitions(parent, retention);
END
$$;

-- Publishing runs as the caller: a SECURITY DEFINER outbox.publish would switch
-- the user and search_path on every call, 5-20% of a host transaction that
-- publishes. So that the publisher needs no SELECT on outbox.events to get its
-- event_id back, the trigger that gives an event its id (it runs as the owner)
-- hands a generated one to publish in a transaction-local setting. (Publish
-- choosing the id itself would cost more: a given id is looked for in every
-- partition, a generated one is not.) As in sql/0009_fan_out.sql, which
-- explains the wake-up, with the set_config line added.
CREATE OR REPLACE FUNCTION outbox.check_event() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.event_id IS NULL THEN
        NEW.event_id := gen_random_uuid()::text;
        PERFORM set_config('outbox.generated_event_id', NEW.event_id, true);
    -- Each partition's unique index refuses a duplicate within it (concurrent
    -- inserts included); this finds one in the other partitions.
    ELSIF EXISTS (SELECT 1 FROM outbox.events AS e WHERE e.event_id = NEW.event_id) THEN
        RAISE EXCEPTION 'duplicate key value violates unique constraint "events_event_id_key"'
            USING ERRCODE = 'unique_violation',
                  DETAIL = format('Key (event_id)=(%s) already exists.', NEW.event_id);
    END IF;
    -- Wake a sleeping relay, and only a sleeping one (sql/0009_fan_out.sql).
    IF NOT pg_try_advisory_xact_lock_shared(1868722809, 0) THEN
        PERFORM pg_notify('outbox_work', '');
    END IF;
    RETURN NEW;
END
$$;

-- Publish an event from SQL, inside the caller's transaction; returns its
-- event_id: the one given, or the one the trigger just generated. Same
-- signature and behaviour as in sql/0009_fan_out.sql, without RETURNING.
CREATE OR REPLACE FUNCTION outbox.publish(
    event_type   text,
    payload      jsonb,
    ordering_key text DEFAULT NULL,
    headers      jsonb DEFAULT NULL,
    event_id     text DEFAULT NULL
) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox.events (event_type, payload, ordering_key, headers, event_id)
    VALUES ($1, $2, $3, $4, $5);
    RETURN coalesce($5, current_setting('outbox.generated_event_id'));
END
$$;

-- Subscribing, rotating a secret, replaying and purging run as the owner: the
-- operator gets the new secret without reading any (outbox.subscribe and
-- outbox.rotate_secret of 0015 return it once), and replay and purge the queue
-- without holding rights on it. By name, whatever their signatures.
DO $definers$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure
        FROM pg_proc AS p
        WHERE p.pronamespace = 'outbox'::regnamespace
          AND p.proname IN ('subscribe', 'rotate_secret', 'replay', 'replay_dead_letters', 'purge_dead_letters')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, pg_temp', f);
    END LOOP;
END
$definers$;

-- The four group roles, created when missing; returns the ones it created.
-- Needs CREATEROLE (insufficient_privilege otherwise). Roles are cluster-wide, so
-- another session may create one meanwhile: that counts as present.
CREATE OR REPLACE FUNCTION outbox.create_roles() RETURNS SETOF text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    role text;
BEGIN
    FOREACH role IN ARRAY ARRAY['outbox_publisher', 'outbox_reader', 'outbox_operator', 'outbox_relay'] LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM pg_roles AS r WHERE r.rolname = role);
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', role);
            RETURN NEXT role;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END LOOP;
END
$$;

-- Grants each of the four roles that exists exactly its rights in this database,
-- and takes EXECUTE on every SECURITY DEFINER function from PUBLIC; returns the
-- roles it granted to. Run as the schema's owner (or a superuser). Running it
-- again changes nothing; `outbox-relay migrate` runs it after every migration so
-- new objects are covered. Each role's rights are revoked first, so what is
-- listed here is all it has.
CREATE OR REPLACE FUNCTION outbox.grant_roles() RETURNS SETOF text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    owner name := (SELECT n.nspowner::regrole::name FROM pg_namespace AS n WHERE n.nspname = 'outbox');
    -- The columns of outbox.subscriptions anyone but the relay may read: an allow
    -- list, so a column added later stays unreadable until it is named here.
    safe_columns constant text := 'id, name, event_types, enabled, disabled_reason, ordered, timeout, retry_schedule, '
                                  'max_in_flight, rate_limit, previous_secret_expires_at, created_at, updated_at';
    -- What a dashboard reads: the SPEC §3 objects and the tables behind them
    -- (the views' functions read those as the caller).
    readable constant text := 'outbox.events, outbox.attempts, outbox.delivery_queue, outbox.deliveries, '
                              'outbox.unread_deliveries, outbox.dead_letters, outbox.subscription_health, '
                              'outbox.subscription_state, outbox.subscription_cursors, outbox.subscription_periods, '
                              'outbox.subscription_settings, outbox.backlog';
    -- Made by `outbox-relay migrate`, not by the files (a DBA with psql has none).
    migrations_table constant text := to_regclass('outbox.schema_migrations')::text;
    readers constant text[] := ARRAY['outbox_reader', 'outbox_operator', 'outbox_relay'];
    f regprocedure;
    grant_row record;
    role text;
    objects text;
BEGIN
    IF NOT pg_has_role(current_user, owner, 'USAGE') THEN
        RAISE EXCEPTION 'granting the outbox roles needs the owner of schema outbox (%), which % is not: run it as the role that runs outbox-relay migrate, or as a superuser', owner, current_user
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- One at a time (replicas migrate together; GRANTs on one object at once fail
    -- with "tuple concurrently updated"): the lock of `outbox-relay migrate`,
    -- 0x6F7574626F786D67, which a migrating session already holds.
    PERFORM pg_advisory_xact_lock(8031453476610927975);
    -- Functions get EXECUTE for PUBLIC by default; one that runs as the owner
    -- must be granted by name. (Trigger functions cannot be called directly.)
    FOR f IN
        SELECT p.oid::regprocedure
        FROM pg_proc AS p
        WHERE p.pronamespace = 'outbox'::regnamespace
          AND p.prosecdef
          AND p.prorettype <> 'trigger'::regtype
        ORDER BY p.oid
    LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;

    FOREACH role IN ARRAY ARRAY['outbox_publisher', 'outbox_reader', 'outbox_operator', 'outbox_relay'] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_roles AS r WHERE r.rolname = role);
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA outbox FROM %I', role);
        EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA outbox FROM %I', role);
        EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA outbox FROM %I', role);
        EXECUTE format('GRANT USAGE ON SCHEMA outbox TO %I', role);
        RETURN NEXT role;
    END LOOP;

    FOR grant_row IN
        SELECT g.grantees, g.privileges, g.objects
        FROM (VALUES
            -- Publish: the INSERT (its id comes from the sequence) and the function.
            (ARRAY['outbox_publisher'], 'INSERT', 'TABLE outbox.events'),
            (ARRAY['outbox_publisher'], 'USAGE', 'SEQUENCE outbox.events_id_seq'),
            (ARRAY['outbox_publisher'], 'EXECUTE', 'FUNCTION publish'),
            -- Read.
            (readers, 'SELECT', 'TABLE ' || readable),
            (readers, 'SELECT (' || safe_columns || ')', 'TABLE outbox.subscriptions'),
            -- Manage: write subscriptions (a secret too, never read back), tokens by
            -- their hash (never the hash read back), replay and purge.
            (ARRAY['outbox_operator'], 'INSERT, UPDATE, DELETE', 'TABLE outbox.subscriptions'),
            (ARRAY['outbox_operator'], 'SELECT (id, name, scope, created_at, last_used_at, revoked_at)', 'TABLE outbox.api_tokens'),
            (ARRAY['outbox_operator'], 'INSERT (name, token_hash, scope), UPDATE (revoked_at)', 'TABLE outbox.api_tokens'),
            (ARRAY['outbox_operator'], 'EXECUTE',
             'FUNCTION subscribe, rotate_secret, change_subscription_headers, replay, replay_dead_letters, purge_dead_letters'),
            -- Relay: sign (the secrets), claim and record, disable a failing
            -- endpoint, keep partitions, check the schema, and the admin API's
            -- token check.
            (ARRAY['outbox_relay'], 'SELECT', 'TABLE outbox.subscriptions, outbox.api_tokens'),
            (ARRAY['outbox_relay'], 'SELECT', 'TABLE ' || migrations_table),
            (ARRAY['outbox_relay'], 'UPDATE (enabled, disabled_reason)', 'TABLE outbox.subscriptions'),
            (ARRAY['outbox_relay'], 'INSERT, UPDATE, DELETE', 'TABLE outbox.delivery_queue'),
            (ARRAY['outbox_relay'], 'INSERT, UPDATE', 'TABLE outbox.subscription_cursors, outbox.subscription_state'),
            (ARRAY['outbox_relay'], 'INSERT', 'TABLE outbox.attempts'),
            (ARRAY['outbox_relay'], 'UPDATE (last_used_at)', 'TABLE outbox.api_tokens'),
            (ARRAY['outbox_relay'], 'USAGE', 'SEQUENCE outbox.delivery_queue_id_seq, outbox.attempts_id_seq'),
            (ARRAY['outbox_relay'], 'EXECUTE', 'FUNCTION create_history_partitions, drop_history_partitions')
        ) AS g (grantees, privileges, objects)
    LOOP
        objects := grant_row.objects;
        CONTINUE WHEN objects IS NULL;
        IF objects LIKE 'FUNCTION %' THEN
            -- Functions by name: every signature of each.
            objects := 'FUNCTION ' || (
                SELECT string_agg(p.oid::regprocedure::text, ', ' ORDER BY p.oid)
                FROM pg_proc AS p
                WHERE p.pronamespace = 'outbox'::regnamespace
                  AND p.proname = ANY (string_to_array(substr(grant_row.objects, 10), ', ')));
        END IF;
        FOREACH role IN ARRAY grant_row.grantees LOOP
            CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_roles AS r WHERE r.rolname = role);
            EXECUTE format('GRANT %s ON %s TO %I', grant_row.privileges, objects, role);
        END LOOP;
    END LOOP;
END
$$;

SELECT outbox.grant_roles();
