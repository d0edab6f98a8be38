-- outbox-relay schema, part 7: admin API tokens (OUTBOX_API_LISTEN).
-- Bearer tokens for the JSON admin API. Only the SHA-256 of a token is stored
-- (hex); the token itself is printed once by `outbox-relay token create`.
-- 'read' may call GET endpoints, 'admin' may call everything.

CREATE TABLE IF NOT EXISTS outbox.api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL,
    token_hash   text NOT NULL,
    scope        text NOT NULL
        CONSTRAINT api_tokens_scope_check CHECK (scope IN ('read', 'admin')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    last_used_at timestamptz,
    CONSTRAINT api_tokens_name_key UNIQUE (name),
    CONSTRAINT api_tokens_token_hash_key UNIQUE (token_hash)
);
COMMENT ON TABLE outbox.api_tokens IS 'Admin API bearer tokens; token_hash is hex SHA-256 of the token, never the token.';
