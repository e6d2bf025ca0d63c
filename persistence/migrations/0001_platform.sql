-- RFC 3339 UTC text for timestamps, as the API shows them (millisecond precision).
CREATE FUNCTION parley_ts(t timestamptz) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');

-- Exact text for keyset pagination cursors (microseconds, so no two rows collapse).
CREATE FUNCTION parley_cursor_ts(t timestamptz) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');

-- Platform objects: tenants, their API keys and their WhatsApp channels.
CREATE TABLE tenants (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
  status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Keys are shown once; only a SHA-256 of the whole key is kept. The prefix lets an operator
-- recognise a key in a list without revealing it.
CREATE TABLE api_keys (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id   uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  name        text NOT NULL,
  prefix      text NOT NULL,
  key_hash    text NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- Secrets are AES-256-GCM ciphertexts ("v1:" + base64(nonce | ciphertext | tag)).
CREATE TABLE channels (
  id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id             uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  type                  text NOT NULL DEFAULT 'whatsapp_cloud' CHECK (type IN ('whatsapp_cloud')),
  phone_number_id       text NOT NULL UNIQUE,
  waba_id               text NOT NULL,
  display_phone_number  text NOT NULL,
  access_token_enc      text NOT NULL,
  app_secret_enc        text,
  graph_base_url        text,
  throughput_mps        integer NOT NULL DEFAULT 80 CHECK (throughput_mps BETWEEN 1 AND 1000),
  state                 text NOT NULL DEFAULT 'connected'
                          CHECK (state IN ('connected', 'degraded', 'disconnected', 'token_invalid')),
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX channels_tenant ON channels (tenant_id);
