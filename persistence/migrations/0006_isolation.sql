-- Tenant isolation in depth and plan limits.
--
-- Row Level Security on every tenant table, keyed on two per-transaction settings the
-- persistence layer sets (never the client):
--   parley.tenant_id = '<uuid>'   a job acting for one tenant sees and writes only its rows;
--   parley.scope     = 'platform' the node's own cross-tenant work (webhook ingest, group-commit
--                                 batches mixing tenants, routing, API-key resolution, admin).
-- Neither set: no rows at all. The node connects as a role that is not the tables' owner, not a
-- superuser and not BYPASSRLS (the node checks this at start-up); FORCE makes the policies bind
-- the owner too. Application-level `WHERE tenant_id = $1` checks stay: this is the second wall.

-- The application's group role. Login roles join it (GRANT parley_app TO <login role>), or are it.
-- Roles are cluster-wide and several databases may migrate at once: creation tolerates a race.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'parley_app') THEN
    BEGIN
      CREATE ROLE parley_app NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;
    END;
  END IF;
END $$;

-- Plans and their limits; NULL = unlimited. Operators edit this table (or add plans) with SQL;
-- tenants may override single limits in tenants.limits.
CREATE TABLE plans (
  name                text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
  channels            integer CHECK (channels >= 0),
  messages_per_month  bigint CHECK (messages_per_month >= 0),
  users               integer CHECK (users >= 0),
  api_rps             double precision NOT NULL CHECK (api_rps > 0),
  api_burst           double precision NOT NULL CHECK (api_burst >= 1)
);
INSERT INTO plans (name, channels, messages_per_month, users, api_rps, api_burst) VALUES
  ('free',         1,    1000,     3,    5,    10),
  ('standard',     10,   100000,   50,   200,  1000),
  ('enterprise',   NULL, NULL,     NULL, 1000, 2000);

ALTER TABLE tenants
  ADD COLUMN plan text NOT NULL DEFAULT 'standard' REFERENCES plans(name),
  -- Per-tenant overrides of the plan: {"channels":N|null, "messages_per_month", "users",
  -- "api_rps", "api_burst"}; a key present (even null = unlimited) wins over the plan.
  ADD COLUMN limits jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(limits) = 'object');

-- Effective limits of a tenant: its overrides over its plan.
CREATE FUNCTION parley_tenant_limits(t tenants) RETURNS jsonb
  LANGUAGE sql STABLE
  RETURN (SELECT jsonb_build_object('channels', p.channels, 'messages_per_month', p.messages_per_month,
                                    'users', p.users, 'api_rps', p.api_rps, 'api_burst', p.api_burst)
                 || t.limits
          FROM plans p WHERE p.name = t.plan);

-- Outbound messages accepted per tenant and calendar month (UTC): one counter row instead of a
-- count(*) over messages on every send.
CREATE TABLE tenant_usage (
  tenant_id  uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
  month      date NOT NULL,
  messages   bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, month)
);

-- Takes `n` messages from the tenant's monthly allowance in the caller's transaction. Returns
-- false (and takes nothing) when that would exceed messages_per_month. The row lock on the
-- counter serialises concurrent senders of one tenant.
CREATE FUNCTION parley_take_messages(p_tenant uuid, n integer) RETURNS boolean
  LANGUAGE plpgsql AS $$
DECLARE
  lim   bigint;
  taken bigint;
  this_month date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
BEGIN
  SELECT (parley_tenant_limits(t) ->> 'messages_per_month')::bigint INTO lim
    FROM tenants t WHERE t.id = p_tenant;
  IF lim IS NOT NULL AND n > lim THEN
    RETURN false;
  END IF;
  INSERT INTO tenant_usage AS u (tenant_id, month, messages) VALUES (p_tenant, this_month, n)
  ON CONFLICT (tenant_id, month) DO UPDATE SET messages = u.messages + n
    WHERE lim IS NULL OR u.messages + n <= lim
  RETURNING u.messages INTO taken;
  RETURN taken IS NOT NULL;
END $$;

-- What a tenant uses of its limits, as GET /v1/tenants/{id} shows it. `users` counts the users
-- table when it exists (the authentication migration adds it).
CREATE FUNCTION parley_tenant_usage(p_tenant uuid) RETURNS jsonb
  LANGUAGE plpgsql STABLE AS $$
DECLARE
  n_users bigint := 0;
BEGIN
  IF to_regclass('public.users') IS NOT NULL THEN
    EXECUTE 'SELECT count(*) FROM users WHERE tenant_id = $1 AND deleted_at IS NULL' INTO n_users USING p_tenant;
  END IF;
  RETURN jsonb_build_object(
    'channels', (SELECT count(*) FROM channels WHERE tenant_id = p_tenant),
    'api_keys', (SELECT count(*) FROM api_keys WHERE tenant_id = p_tenant AND revoked_at IS NULL),
    'users', n_users,
    'messages_this_month',
      coalesce((SELECT messages FROM tenant_usage WHERE tenant_id = p_tenant
                  AND month = date_trunc('month', now() AT TIME ZONE 'UTC')::date), 0));
END $$;

-- Enables, forces and keys RLS on every table of schema public with a tenant_id column, plus
-- tenants itself (keyed on id). Idempotent: `parley migrate` calls it after every run, so a later
-- migration that adds a tenant table is covered even if its author forgot; the node's start-up
-- check refuses to serve if any tenant table is still uncovered.
CREATE FUNCTION parley_secure_tenant_tables() RETURNS integer
  LANGUAGE plpgsql AS $$
DECLARE
  r record;
  n integer := 0;
BEGIN
  FOR r IN
    SELECT c.relname, CASE WHEN c.relname = 'tenants' THEN 'id' ELSE 'tenant_id' END AS key
    FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
      AND (c.relname = 'tenants'
           OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                        AND a.attname = 'tenant_id' AND NOT a.attisdropped))
  LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', r.relname);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', r.relname);
    IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = 'public'
                     AND tablename = r.relname AND policyname = 'parley_tenant') THEN
      EXECUTE format('CREATE POLICY parley_tenant ON %I USING (%I = '
                     'nullif(current_setting(''parley.tenant_id'', true), '''')::uuid)', r.relname, r.key);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = 'public'
                     AND tablename = r.relname AND policyname = 'parley_platform') THEN
      EXECUTE format('CREATE POLICY parley_platform ON %I USING '
                     '(current_setting(''parley.scope'', true) = ''platform'')', r.relname);
    END IF;
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;
SELECT parley_secure_tenant_tables();

-- What the application role may do: data, not schema. Default privileges cover tables that
-- later migrations (run by the same owner) create.
GRANT USAGE ON SCHEMA public TO parley_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO parley_app;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO parley_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO parley_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO parley_app;
-- The node reads which migrations ran; only the owner records them. Plans are edited by operators.
REVOKE INSERT, UPDATE, DELETE ON schema_migrations, plans FROM parley_app;
REVOKE EXECUTE ON FUNCTION parley_secure_tenant_tables() FROM PUBLIC;
