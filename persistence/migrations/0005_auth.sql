-- Users, sign-in sessions and the audit log (issue #5). Platform admins have no tenant; every
-- other user belongs to exactly one. Deleted users are kept (audit entries point at them) but
-- free their email address.
CREATE TABLE users (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id      uuid REFERENCES tenants(id) ON DELETE CASCADE,
  email          text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
  name           text CHECK (name IS NULL OR length(name) BETWEEN 1 AND 200),
  role           text NOT NULL CHECK (role IN ('platform_admin', 'tenant_admin', 'agent')),
  password_hash  text NOT NULL,
  disabled       boolean NOT NULL DEFAULT false,
  failed_logins  integer NOT NULL DEFAULT 0,
  locked_until   timestamptz,
  last_login_at  timestamptz,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  deleted_at     timestamptz,
  -- Only platform admins live outside a tenant.
  CHECK ((role = 'platform_admin') = (tenant_id IS NULL))
);
-- Case-insensitive uniqueness among live users; sign-in looks users up the same way.
CREATE UNIQUE INDEX users_email ON users (lower(email)) WHERE deleted_at IS NULL;
CREATE INDEX users_tenant ON users (tenant_id, created_at, id);

-- Refresh tokens, stored as SHA-256. A family is every token descended from one sign-in; access
-- tokens name their family (claim "sid"), so revoking a family ends its access tokens too.
CREATE TABLE refresh_tokens (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  family_id     uuid NOT NULL,
  user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  token_hash    text NOT NULL UNIQUE,
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  revoked_at    timestamptz,
  revoke_reason text CHECK (revoke_reason IN ('rotated', 'logout', 'reuse', 'user_changed'))
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id) WHERE revoked_at IS NULL;
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id) WHERE revoked_at IS NULL;

-- Every administrative change: who (admin token, user or API key), in which tenant, what, when,
-- under which request id, and summaries of the object before and after (never secrets).
CREATE TABLE audit_log (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id    uuid,  -- no foreign key: the entries of a deleted tenant are kept
  actor_type   text NOT NULL CHECK (actor_type IN ('admin_token', 'user', 'api_key', 'system')),
  actor_id     uuid,
  action       text NOT NULL,
  object_type  text NOT NULL,
  object_id    text,
  request_id   text,
  before       jsonb,
  after        jsonb,
  at           timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, at DESC, id DESC);
CREATE INDEX audit_log_at ON audit_log (at DESC, id DESC);
