-- outbox-relay schema, part 4: views a DBA reads.

-- Deliveries that exhausted their retries, with their event and subscription.
CREATE OR REPLACE VIEW outbox.dead_letters AS
SELECT d.id              AS delivery_id,
       d.event_id,
       e.event_type,
       e.payload,
       e.created_at      AS event_created_at,
       d.subscription_id,
       s.name            AS subscription,
       s.url,
       d.attempts,
       d.last_status_code,
       d.last_error,
       d.completed_at    AS dead_at
FROM outbox.deliveries AS d
JOIN outbox.subscriptions AS s ON s.id = d.subscription_id
LEFT JOIN outbox.events AS e ON e.id = d.event_seq
WHERE d.status = 'dead';

-- One row per subscription: its backlog, outcomes and endpoint state.
CREATE OR REPLACE VIEW outbox.subscription_health AS
SELECT s.name AS subscription,
       s.enabled,
       s.disabled_reason,
       coalesce(c.pending, 0)     AS pending,
       coalesce(c.delivering, 0)  AS delivering,
       coalesce(c.succeeded, 0)   AS succeeded,
       coalesce(c.dead, 0)        AS dead,
       now() - c.oldest_pending   AS oldest_pending_age,
       st.last_success_at,
       coalesce(st.consecutive_failures, 0) AS consecutive_failures,
       coalesce(st.circuit_state, 'closed') AS circuit_state
FROM outbox.subscriptions AS s
LEFT JOIN outbox.subscription_state AS st ON st.subscription_id = s.id
LEFT JOIN LATERAL (
    SELECT count(*) FILTER (WHERE d.status = 'pending')    AS pending,
           count(*) FILTER (WHERE d.status = 'delivering') AS delivering,
           count(*) FILTER (WHERE d.status = 'succeeded')  AS succeeded,
           count(*) FILTER (WHERE d.status = 'dead')       AS dead,
           min(d.created_at) FILTER (WHERE d.status = 'pending') AS oldest_pending
    FROM outbox.deliveries AS d
    WHERE d.subscription_id = s.id
) AS c ON true;
