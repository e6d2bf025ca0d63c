-- Outbound WhatsApp: the outbox each channel actor drains, the record of every Graph API call,
-- idempotency keys of the send API and the health of each WhatsApp session (channel).

ALTER TABLE messages
  ADD COLUMN client_message_id text,
  ADD COLUMN attempts integer NOT NULL DEFAULT 0;
-- The send API's idempotency key: the same key of the same tenant is the same message.
CREATE UNIQUE INDEX messages_client_message_id ON messages (tenant_id, client_message_id)
  WHERE client_message_id IS NOT NULL;

ALTER TABLE channels
  ADD COLUMN state_reason text,
  ADD COLUMN state_changed_at timestamptz;

-- Work a channel still owes Meta: one row per outbound message (kind 'message') or read receipt
-- (kind 'read'), deleted in the transaction that records its final outcome. Narrow on purpose:
-- the hot path reads it in id order per channel.
-- (tenant_id has no foreign key of its own: the channel's cascades from the tenant, and each
-- foreign key costs a trigger per row on this hot table.)
CREATE TABLE outbox (
  id                  bigserial PRIMARY KEY,
  tenant_id           uuid NOT NULL,
  channel_id          uuid NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
  message_id          uuid NOT NULL,
  kind                text NOT NULL CHECK (kind IN ('message', 'read')),
  to_wa               text NOT NULL,
  payload             jsonb NOT NULL,          -- the Graph API request body
  attempts            integer NOT NULL DEFAULT 0,  -- calls made (numbering of delivery_attempts)
  failures            integer NOT NULL DEFAULT 0,  -- retryable failures (bounded by outbound.max_attempts)
  -- Set before each call (attempt number): a row whose call started but whose outcome was never
  -- recorded is "in doubt" after a crash - Meta may have it already.
  dispatched_attempt  integer NOT NULL DEFAULT 0,
  next_attempt_at     timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now()
) WITH (
  -- Every row is updated (dispatch mark) and deleted within seconds: leave room for in-page
  -- (HOT) updates and vacuum long before dead rows dominate the table.
  fillfactor = 70,
  autovacuum_vacuum_scale_factor = 0,
  autovacuum_vacuum_threshold = 1000,
  autovacuum_vacuum_cost_delay = 0
);
CREATE INDEX outbox_channel ON outbox (channel_id, id);
CREATE INDEX outbox_tenant ON outbox (tenant_id);

-- Every call to the Graph API for a message or read receipt, whatever its outcome. Insert-only;
-- deleting a tenant deletes its rows explicitly (no per-row foreign-key trigger).
CREATE TABLE delivery_attempts (
  outbox_id    bigint NOT NULL,
  attempt      integer NOT NULL,
  tenant_id    uuid NOT NULL,
  channel_id   uuid NOT NULL,
  message_id   uuid NOT NULL,
  kind         text NOT NULL,
  outcome      text NOT NULL CHECK (outcome IN ('sent', 'retry', 'failed', 'token_invalid')),
  http_status  integer,
  error_code   integer,
  error_title  text,
  wamid        text,
  started_at   timestamptz NOT NULL,
  latency_ms   integer NOT NULL,
  PRIMARY KEY (outbox_id, attempt)
);
CREATE INDEX delivery_attempts_message ON delivery_attempts (tenant_id, message_id, started_at);

-- Folds the stored status reports of one outbound message into its row, forward-only (as the
-- status webhook path does). Needed when Meta's status webhooks overtake the commit of the send's
-- own outcome, which is what tells us the wamid they refer to.
CREATE FUNCTION parley_fold_statuses(p_channel uuid, p_wamid text) RETURNS void
  LANGUAGE sql AS $$
  UPDATE messages m
  SET status = CASE WHEN m.status <> 'failed'
                     AND parley_status_rank(f.top) > parley_status_rank(m.status)
                    THEN f.top ELSE m.status END,
      sent_at = coalesce(m.sent_at, f.sent_at),
      delivered_at = coalesce(m.delivered_at, f.delivered_at),
      read_at = coalesce(m.read_at, f.read_at),
      failed_at = coalesce(m.failed_at, f.failed_at),
      error_code = coalesce(m.error_code, f.error_code),
      error_title = coalesce(m.error_title, f.error_title)
  FROM (
    SELECT (array_agg(status ORDER BY parley_status_rank(status) DESC))[1] AS top,
           min(meta_timestamp) FILTER (WHERE status = 'sent') AS sent_at,
           min(meta_timestamp) FILTER (WHERE status = 'delivered') AS delivered_at,
           min(meta_timestamp) FILTER (WHERE status = 'read') AS read_at,
           min(meta_timestamp) FILTER (WHERE status = 'failed') AS failed_at,
           max(error_code) FILTER (WHERE status = 'failed') AS error_code,
           max(error_title) FILTER (WHERE status = 'failed') AS error_title
    FROM message_status_events
    WHERE channel_id = p_channel AND wamid = p_wamid
    HAVING count(*) > 0) f
  WHERE m.channel_id = p_channel AND m.wamid = p_wamid AND m.direction = 'outbound'
$$;
