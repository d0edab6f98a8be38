-- outbox-relay schema, part 2: bad input is refused at INSERT/UPDATE time with a
-- message that names the problem (SQLSTATE 23514 check_violation, or 22023
-- invalid_parameter_value for settings).

-- The largest payload accepted, in bytes of its JSON text. One place to change it:
--   ALTER DATABASE mydb SET outbox.max_payload_bytes = '2097152';
CREATE OR REPLACE FUNCTION outbox.max_payload_bytes() RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('outbox.max_payload_bytes', true), '')::integer, 1048576)
$$;

-- Event types: a letter or digit, then letters, digits and _ . : - ; at most 255 characters.
CREATE OR REPLACE FUNCTION outbox.is_valid_event_type(event_type text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    -- The length apart: a bounded repeat {0,254} makes PostgreSQL's regex engine many times slower.
    SELECT length(event_type) <= 255 AND event_type ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]*$'
$$;

-- Subscription patterns: '*', an exact event type, or a prefix ending in '.*'.
CREATE OR REPLACE FUNCTION outbox.is_valid_pattern(pattern text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT pattern = '*'
        OR (length(pattern) <= 255 AND pattern ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]*(\.\*)?$')
$$;

-- Does an event type match any of a subscription's patterns? Runs in every
-- host transaction (the fan-out), once per subscription: PL/pgSQL keeps its
-- plan for the session, where a SQL function with a subquery is planned anew
-- on every call (~10x slower).
CREATE OR REPLACE FUNCTION outbox.event_type_matches(patterns text[], event_type text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    pattern text;
BEGIN
    IF patterns IS NULL THEN
        RETURN false;
    END IF;
    FOREACH pattern IN ARRAY patterns LOOP
        IF pattern = '*'
           OR pattern = event_type
           OR (right(pattern, 2) = '.*' AND starts_with(event_type, left(pattern, -1))) THEN
            RETURN true;
        END IF;
    END LOOP;
    RETURN false;
END
$$;

-- Extra HTTP headers (events.headers, subscriptions.headers): a JSON object of
-- string values, header-safe, not naming a header the relay owns.
CREATE OR REPLACE FUNCTION outbox.check_headers(headers jsonb, what text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    header record;
BEGIN
    IF headers IS NULL THEN
        RETURN;
    END IF;
    IF jsonb_typeof(headers) <> 'object' THEN
        RAISE EXCEPTION '% must be a JSON object of header names to string values, got a JSON %', what, jsonb_typeof(headers)
            USING ERRCODE = 'check_violation';
    END IF;
    FOR header IN SELECT key, value FROM jsonb_each(headers) LOOP
        IF header.key !~ '^[A-Za-z0-9!#$%&''*+.^_`|~-]{1,128}$' THEN
            RAISE EXCEPTION '% has an invalid header name "%": use letters, digits and !#$%%&''*+.^_`|~- (at most 128)', what, left(header.key, 64)
                USING ERRCODE = 'check_violation';
        END IF;
        IF lower(header.key) IN ('content-type', 'content-length', 'host', 'user-agent', 'transfer-encoding', 'connection')
           OR lower(header.key) LIKE 'webhook-%' THEN
            RAISE EXCEPTION '% may not set header "%": the relay owns content-type, content-length, host, user-agent and webhook-*', what, header.key
                USING ERRCODE = 'check_violation';
        END IF;
        IF jsonb_typeof(header.value) <> 'string' THEN
            RAISE EXCEPTION '% header "%" must be a string, got a JSON %', what, header.key, jsonb_typeof(header.value)
                USING ERRCODE = 'check_violation';
        END IF;
        IF header.value #>> '{}' ~ '[\x01-\x08\x0a-\x1f\x7f]' THEN
            RAISE EXCEPTION '% header "%" contains a control character (line breaks are not allowed in HTTP headers)', what, header.key
                USING ERRCODE = 'check_violation';
        END IF;
        IF octet_length(header.value #>> '{}') > 8192 THEN
            RAISE EXCEPTION '% header "%" is % bytes, over the limit of 8192', what, header.key, octet_length(header.value #>> '{}')
                USING ERRCODE = 'check_violation';
        END IF;
    END LOOP;
END
$$;

-- Every event, before it is stored.
CREATE OR REPLACE FUNCTION outbox.check_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    payload_bytes integer;
BEGIN
    IF NEW.event_type IS NULL OR NEW.event_type = '' THEN
        RAISE EXCEPTION 'outbox.events.event_type is empty: give a type such as ''order.created'''
            USING ERRCODE = 'check_violation';
    END IF;
    IF NOT outbox.is_valid_event_type(NEW.event_type) THEN
        RAISE EXCEPTION 'outbox.events.event_type "%" is malformed: it must start with a letter or digit, use only letters, digits and _ . : - and be at most 255 characters', left(NEW.event_type, 300)
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.event_id IS NULL OR octet_length(NEW.event_id) > 255 OR NEW.event_id !~ '^[\x21-\x7e]+$' THEN
        RAISE EXCEPTION 'outbox.events.event_id must be 1 to 255 printable ASCII characters without spaces (it is sent as the webhook-id header)'
            USING ERRCODE = 'check_violation';
    END IF;
    payload_bytes := octet_length(NEW.payload::text);
    IF payload_bytes > outbox.max_payload_bytes() THEN
        RAISE EXCEPTION 'outbox.events.payload is % bytes, over the limit of % bytes', payload_bytes, outbox.max_payload_bytes()
            USING ERRCODE = 'check_violation',
                  HINT = 'Publish a reference to large data instead, or raise outbox.max_payload_bytes.';
    END IF;
    IF NEW.ordering_key IS NOT NULL AND (NEW.ordering_key = '' OR length(NEW.ordering_key) > 255) THEN
        RAISE EXCEPTION 'outbox.events.ordering_key must be 1 to 255 characters, got %', length(NEW.ordering_key)
            USING ERRCODE = 'check_violation';
    END IF;
    PERFORM outbox.check_headers(NEW.headers, 'outbox.events.headers');
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS events_check ON outbox.events;
CREATE TRIGGER events_check
    BEFORE INSERT OR UPDATE ON outbox.events
    FOR EACH ROW EXECUTE FUNCTION outbox.check_event();

-- Every subscription, at creation and on every change.
CREATE OR REPLACE FUNCTION outbox.check_subscription() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    pattern text;
    step interval;
BEGIN
    IF NEW.name IS NULL OR NEW.name !~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$' THEN
        RAISE EXCEPTION 'subscription name "%" is malformed: start with a letter or digit, then letters, digits and _ . : - (at most 128)', left(coalesce(NEW.name, ''), 200)
            USING ERRCODE = 'check_violation';
    END IF;
    -- Credentials in the URL are allowed but never echoed back.
    IF NEW.url IS NULL
       OR NEW.url !~* '^https?://([^/?#@[:space:]]*@)?(\[[0-9a-f:.]+\]|[^][/?#@:[:space:]]+)(:[0-9]{1,5})?([/?#][^[:space:]]*)?$' THEN
        RAISE EXCEPTION 'subscription "%": url must be an http:// or https:// URL with a host and no spaces', NEW.name
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.event_types IS NULL OR cardinality(NEW.event_types) = 0 THEN
        RAISE EXCEPTION 'subscription "%": event_types is empty: give at least one pattern such as ''order.created'', ''order.*'' or ''*''', NEW.name
            USING ERRCODE = 'check_violation';
    END IF;
    FOREACH pattern IN ARRAY NEW.event_types LOOP
        IF pattern IS NULL OR NOT outbox.is_valid_pattern(pattern) THEN
            RAISE EXCEPTION 'subscription "%": event type pattern "%" is malformed: use an exact type (order.created), a prefix (order.*) or *', NEW.name, coalesce(pattern, 'NULL')
                USING ERRCODE = 'check_violation';
        END IF;
    END LOOP;
    IF NEW.secret IS NULL OR NEW.secret !~ '^whsec_[A-Za-z0-9+/]{32,}={0,2}$' THEN
        RAISE EXCEPTION 'subscription "%": secret must be whsec_ followed by base64 of at least 24 bytes', NEW.name
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.previous_secret IS NOT NULL AND NEW.previous_secret !~ '^whsec_[A-Za-z0-9+/]{32,}={0,2}$' THEN
        RAISE EXCEPTION 'subscription "%": previous_secret must be whsec_ followed by base64 of at least 24 bytes', NEW.name
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.timeout IS NOT NULL AND NEW.timeout <= interval '0' THEN
        RAISE EXCEPTION 'subscription "%": timeout must be positive, got %', NEW.name, NEW.timeout
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NEW.max_in_flight IS NOT NULL AND NEW.max_in_flight <= 0 THEN
        RAISE EXCEPTION 'subscription "%": max_in_flight must be positive, got %', NEW.name, NEW.max_in_flight
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NEW.rate_limit IS NOT NULL AND (NEW.rate_limit <= 0 OR NEW.rate_limit IN ('NaN', 'Infinity')) THEN
        RAISE EXCEPTION 'subscription "%": rate_limit must be a positive, finite number (requests per second), got %', NEW.name, NEW.rate_limit
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NEW.retry_schedule IS NOT NULL THEN
        FOREACH step IN ARRAY NEW.retry_schedule LOOP
            IF step IS NULL OR step <= interval '0' THEN
                RAISE EXCEPTION 'subscription "%": every retry_schedule interval must be positive, got %', NEW.name, coalesce(step::text, 'NULL')
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
        END LOOP;
    END IF;
    PERFORM outbox.check_headers(NEW.headers, format('subscription "%s" headers', NEW.name));
    IF NEW.enabled THEN
        NEW.disabled_reason := NULL;
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS subscriptions_check ON outbox.subscriptions;
CREATE TRIGGER subscriptions_check
    BEFORE INSERT OR UPDATE ON outbox.subscriptions
    FOR EACH ROW EXECUTE FUNCTION outbox.check_subscription();
