-- Inbound WhatsApp: raw webhook events (persist-first), contacts, conversations, messages and
-- the status history Meta reports.

-- Order of message statuses; failed is terminal and outranks everything (see domain/message_status).
CREATE FUNCTION parley_status_rank(s text) RETURNS int
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN CASE s WHEN 'pending' THEN 0 WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2
                WHEN 'read' THEN 3 WHEN 'played' THEN 4 WHEN 'deleted' THEN 5
                WHEN 'failed' THEN 100 ELSE -1 END;

-- Every signed POST, byte for byte, before it is acknowledged. processed_at is set once every
-- message and status in it is stored; start-up replays the rest.
CREATE TABLE raw_webhook_events (
  id            bigserial PRIMARY KEY,
  received_at   timestamptz NOT NULL DEFAULT now(),
  channel_id    uuid,               -- set when posted to /webhooks/whatsapp/{channel_id}
  request_id    text,
  body          bytea NOT NULL,
  outcome       text NOT NULL DEFAULT 'accepted'
                  CHECK (outcome IN ('accepted', 'unparsable', 'unknown_number', 'partial')),
  error         text,
  processed_at  timestamptz
);
CREATE INDEX raw_webhook_events_unprocessed ON raw_webhook_events (id) WHERE processed_at IS NULL;

CREATE TABLE contacts (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id     uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  wa_id         text NOT NULL,
  profile_name  text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, wa_id)
);

-- One conversation per (channel, contact); resolving it and receiving again reopens it.
CREATE TABLE conversations (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id          uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  channel_id         uuid NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
  wa_id              text NOT NULL,
  contact_name       text,
  status             text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
  mode               text NOT NULL DEFAULT 'human' CHECK (mode IN ('bot', 'human')),
  assignee           text,
  last_message_at    timestamptz,
  last_inbound_at    timestamptz,
  window_expires_at  timestamptz,
  unread_count       integer NOT NULL DEFAULT 0,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  UNIQUE (channel_id, wa_id)
);
CREATE INDEX conversations_tenant_recent ON conversations (tenant_id, created_at, id);

CREATE TABLE messages (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id        uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  conversation_id  uuid NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  channel_id       uuid NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
  direction        text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
  wamid            text,
  type             text NOT NULL,
  content          jsonb NOT NULL,
  raw              jsonb,
  context          jsonb,
  from_wa          text,
  to_wa            text,
  status           text NOT NULL,
  error_code       integer,
  error_title      text,
  meta_timestamp   timestamptz,
  raw_event_id     bigint,
  created_at       timestamptz NOT NULL DEFAULT now(),
  sent_at          timestamptz,
  delivered_at     timestamptz,
  read_at          timestamptz,
  failed_at        timestamptz
);
-- Meta's message id is the idempotency key of everything inbound (retries, replays).
CREATE UNIQUE INDEX messages_channel_wamid ON messages (channel_id, wamid) WHERE wamid IS NOT NULL;
CREATE INDEX messages_conversation ON messages (tenant_id, conversation_id, created_at, id);

-- Every status report once; messages.status is the forward-only fold of these.
CREATE TABLE message_status_events (
  tenant_id     uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  channel_id    uuid NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
  wamid         text NOT NULL,
  status        text NOT NULL,
  recipient_id  text,
  meta_timestamp timestamptz,
  error_code    integer,
  error_title   text,
  errors        jsonb,
  conversation  jsonb,
  pricing       jsonb,
  received_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (channel_id, wamid, status)
);
