-- outbox-relay schema, part 13: what of a subscription may be shown. URL
-- userinfo and the values of credential-like static headers are write-only, like
-- secrets: every surface (the CLI, the admin API and the console) shows a
-- subscription through these two functions, so they cannot drift apart.

-- The URL without credentials: https://user:password@host/path -> https://[redacted]@host/path.
CREATE OR REPLACE FUNCTION outbox.redacted_url(url text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT regexp_replace(url, '^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@', '\1[redacted]@')
$$;

-- Static headers with the values of credential-like names hidden (authorization,
-- x-api-key, cookies, tokens, secrets, passwords, signatures).
CREATE OR REPLACE FUNCTION outbox.redacted_headers(headers jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(jsonb_object_agg(
               h.key,
               CASE WHEN lower(h.key) ~ '(auth|cookie|token|secret|key|password|signature)'
                    THEN to_jsonb('[redacted]'::text) ELSE h.value END),
           '{}'::jsonb)
    FROM jsonb_each(headers) AS h
$$;
