-- outbox-relay schema, part 12: time partitions of outbox.events and
-- outbox.attempts, created ahead and dropped by retention. The relays' upkeep
-- calls these under advisory lock (1868722810, 0), so one replica at a time does
-- it, on any PostgreSQL, with no extension. A DBA can call them by hand:
--   SELECT outbox.create_time_partitions('outbox.events', '1 day', '3 days');
--   SELECT outbox.drop_time_partitions('outbox.events', '7 days');
-- Partitions are named <table>_<UTC start, YYYYMMDD_HH24MI>.

-- The start of the partition that holds `at`: time cut in whole `every`s since
-- the Unix epoch (UTC midnight for days).
CREATE OR REPLACE FUNCTION outbox.partition_start(at timestamptz, every interval) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_timestamp(floor(extract(epoch FROM at) / extract(epoch FROM every)) * extract(epoch FROM every))
$$;

-- The time partitions of a table, with their bounds (lower NULL: from the start
-- of time). The default partition is not one of them.
CREATE OR REPLACE FUNCTION outbox.time_partitions(parent regclass)
RETURNS TABLE (partition regclass, lower_bound timestamptz, upper_bound timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT c.oid::regclass,
           CASE WHEN m[1] <> 'MINVALUE' THEN m[1]::timestamptz END,
           m[2]::timestamptz
    FROM pg_inherits AS i
    JOIN pg_class AS c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                    'FROM \(''?([^'')]+)''?\) TO \(''?([^'')]+)''?\)') AS m
    WHERE i.inhparent = parent
      AND m IS NOT NULL
$$;

-- Create the partitions of `parent` from now until now + `ahead`, `every` long
-- (at least a minute). Starts where the last one ends; a gap left by a long
-- outage becomes one partition. Rows that waited in the default partition for a
-- range move into its new partition. Each partition is made apart and then
-- attached, which locks the parent only against DDL, not against inserts: for a
-- range that starts later than a minute from now. A range inserts may be going
-- to the default partition for right now (the first start, or after an outage)
-- needs the parent locked against them for a moment, or an insert routed before
-- the attach would fail its partition check: it waits at most `lock_timeout`,
-- else it gives up until the next call. Returns how many it created.
CREATE OR REPLACE FUNCTION outbox.create_time_partitions(
    parent regclass, every interval, ahead interval, lock_timeout interval DEFAULT '100 milliseconds')
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    table_name text := (SELECT c.relname FROM pg_class AS c WHERE c.oid = parent);
    key text := (regexp_match(pg_get_partkeydef(parent), '\((\w+)\)'))[1];
    default_partition regclass := to_regclass(format('outbox.%I', table_name || '_default'));
    now_start timestamptz := outbox.partition_start(now(), every);
    lo timestamptz;
    hi timestamptz;
    name text;
    created integer := 0;
BEGIN
    IF every IS NULL OR every < interval '1 minute' THEN
        RAISE EXCEPTION 'a partition interval must be at least 1 minute, got %', coalesce(every::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT max(p.upper_bound) INTO lo FROM outbox.time_partitions(parent) AS p;
    lo := coalesce(lo, now_start);
    IF lo < now() + interval '1 minute' AND lo < now() + ahead THEN
        PERFORM set_config('lock_timeout', (extract(epoch FROM lock_timeout) * 1000)::bigint::text, true);
        EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', parent);
        PERFORM set_config('lock_timeout', '0', true);
    END IF;
    WHILE lo < now() + ahead LOOP
        hi := CASE WHEN lo < now_start THEN now_start
                   ELSE outbox.partition_start(lo, every) + every END;
        name := format('%s_%s', table_name, to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD"_"HH24MI'));
        EXECUTE format('CREATE TABLE outbox.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)',
                       name, parent);
        IF parent = 'outbox.events'::regclass THEN
            EXECUTE format('CREATE UNIQUE INDEX %I ON outbox.%I (event_id)', name || '_event_id_key', name);
        END IF;
        IF default_partition IS NOT NULL THEN
            EXECUTE format('WITH moved AS (DELETE FROM %s WHERE %I >= $1 AND %I < $2 RETURNING *) '
                           'INSERT INTO outbox.%I SELECT * FROM moved', default_partition, key, key, name)
                USING lo, hi;
        END IF;
        EXECUTE format('ALTER TABLE %s ATTACH PARTITION outbox.%I FOR VALUES FROM (%L) TO (%L)', parent, name, lo, hi);
        created := created + 1;
        lo := hi;
    END LOOP;
    RETURN created;
END
$$;

-- Is this event still needed after its partition goes: a delivery in the queue
-- (in flight, waiting, dead letter) or a subscription that has not read it yet?
CREATE OR REPLACE FUNCTION outbox.event_still_needed(id bigint, event_id text, txid xid8, event_type text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM outbox.delivery_queue AS q WHERE q.event_id = event_still_needed.event_id)
        OR EXISTS (SELECT 1
                   FROM outbox.subscription_cursors AS c
                   WHERE NOT outbox.cursor_has_read(c, event_still_needed.txid, event_still_needed.id)
                     AND outbox.event_belongs(c.subscription_id, event_still_needed.txid, event_still_needed.event_type))
$$;

-- Drop the partitions of `parent` that end before now - `retention`, whole.
-- Events still needed (outbox.event_still_needed) move to the default partition
-- first, so dead letters and unread deliveries keep their event whatever
-- partition it was in. Detaching locks the parent for a moment: at most
-- `lock_timeout` waiting (then it gives up until the next call), and the
-- needed events are found before, so the lock is held for milliseconds.
-- Rows in the default partition past retention that nothing needs are deleted.
-- Returns how many partitions it dropped.
CREATE OR REPLACE FUNCTION outbox.drop_time_partitions(parent regclass, retention interval, lock_timeout interval DEFAULT '100 milliseconds')
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    table_name text := (SELECT c.relname FROM pg_class AS c WHERE c.oid = parent);
    key text := (regexp_match(pg_get_partkeydef(parent), '\((\w+)\)'))[1];
    default_partition regclass := to_regclass(format('outbox.%I', table_name || '_default'));
    is_events boolean := parent = 'outbox.events'::regclass;
    p record;
    kept bigint[];
    dropped integer := 0;
BEGIN
    IF retention IS NULL OR retention < interval '0' THEN
        RAISE EXCEPTION 'retention must be zero or more, got %', coalesce(retention::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR p IN
        SELECT t.partition, t.lower_bound, t.upper_bound
        FROM outbox.time_partitions(parent) AS t
        WHERE t.upper_bound <= now() - retention
        ORDER BY t.upper_bound
    LOOP
        IF is_events THEN
            EXECUTE format('SELECT coalesce(array_agg(e.id), ''{}'') FROM %s AS e '
                           'WHERE outbox.event_still_needed(e.id, e.event_id, e.txid, e.event_type)', p.partition)
                INTO kept;
        END IF;
        PERFORM set_config('lock_timeout', (extract(epoch FROM lock_timeout) * 1000)::bigint::text, true);
        EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', parent, p.partition);
        PERFORM set_config('lock_timeout', '0', true);
        IF is_events AND cardinality(kept) > 0 THEN
            EXECUTE format('INSERT INTO outbox.events (id, event_id, event_type, payload, ordering_key, headers, created_at, txid) '
                           'SELECT e.id, e.event_id, e.event_type, e.payload, e.ordering_key, e.headers, e.created_at, e.txid '
                           'FROM %s AS e WHERE e.id = ANY ($1)', p.partition)
                USING kept;
        END IF;
        EXECUTE format('DROP TABLE %s', p.partition);
        dropped := dropped + 1;
    END LOOP;
    IF default_partition IS NOT NULL THEN
        IF is_events THEN
            EXECUTE format('DELETE FROM %s AS e WHERE e.created_at < $1 '
                           'AND NOT outbox.event_still_needed(e.id, e.event_id, e.txid, e.event_type)', default_partition)
                USING now() - retention;
        ELSE
            EXECUTE format('DELETE FROM %s AS a WHERE a.%I < $1', default_partition, key) USING now() - retention;
        END IF;
    END IF;
    RETURN dropped;
END
$$;
