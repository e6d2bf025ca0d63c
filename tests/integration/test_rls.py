"""Row Level Security, the second wall between tenants (migration 0006): every tenant table has
RLS enabled and forced; the application role sees nothing without the per-transaction setting,
one tenant with it, and cannot switch the policies off; the node refuses a database role that
could bypass them."""
import subprocess
import unittest

from harness import (APP_ROLE, ParleyServer, ParleyTestCase, ScratchDatabase, as_role,
                     clean_env, require_environment)

setUpModule = require_environment

# Tables that hold tenant data, by their key column (tenants is keyed by id).
TENANT_TABLES_SQL = """
  SELECT c.relname FROM pg_class c
  WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
    AND (c.relname = 'tenants' OR EXISTS (
      SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
        AND NOT a.attisdropped))
  ORDER BY 1"""


def run_psql(url: str, script: str) -> subprocess.CompletedProcess:
    """Runs a psql script from stdin (unaligned, tuples only, stop on error)."""
    return subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url],
                          input=script, capture_output=True, text=True, timeout=30,
                          env=clean_env())


def key_column(table: str) -> str:
    return "id" if table == "tenants" else "tenant_id"


class RowLevelSecurityTest(ParleyTestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server()
        srv = cls.server
        cls.a = srv.create_tenant(name="Alpha")
        cls.b = srv.create_tenant(name="Bravo")
        for t in (cls.a, cls.b):
            srv.create_api_key(t["id"])
            chan = srv.create_channel(t["id"])["id"]
            # A user of the tenant (users; the admin changes above already filled audit_log).
            r = srv.admin("POST", f"/v1/tenants/{t['id']}/users",
                          {"email": f"rls-{t['id'][:8]}@example.com",
                           "password": "pw-not-secret-123", "role": "agent"})
            srv.expect(r, 201, "create user")
            # Rows in every inbound table, written as the owner (RLS does not bind superusers).
            srv.sql(f"""
              INSERT INTO contacts (tenant_id, wa_id) VALUES ('{t["id"]}', '15550001');
              WITH c AS (INSERT INTO conversations (tenant_id, channel_id, wa_id)
                         VALUES ('{t["id"]}', '{chan}', '15550001') RETURNING id)
              INSERT INTO messages (tenant_id, conversation_id, channel_id, direction, wamid, type,
                                    content, status)
                SELECT '{t["id"]}', id, '{chan}', 'inbound', 'wamid.{chan}', 'text', '{{}}',
                       'received' FROM c;
              INSERT INTO message_status_events (tenant_id, channel_id, wamid, status)
                VALUES ('{t["id"]}', '{chan}', 'wamid.{chan}', 'read');
              INSERT INTO tenant_usage (tenant_id, month, messages)
                VALUES ('{t["id"]}', '2020-01-01', 1);
              INSERT INTO delivery_attempts (outbox_id, attempt, tenant_id, channel_id, message_id,
                                             kind, outcome, started_at, latency_ms)
                SELECT -1 - (SELECT count(*) FROM delivery_attempts), 1, '{t["id"]}', '{chan}',
                       gen_random_uuid(), 'message', 'failed', now(), 1;""")
        cls.tables = srv.sql(TENANT_TABLES_SQL).split()
        cls.app_url = as_role(srv.db_url, APP_ROLE)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def as_app(self, script: str) -> subprocess.CompletedProcess:
        return run_psql(self.app_url, script)

    def test_every_tenant_table_has_rls_enabled_forced_and_keyed(self):
        for expected in ("tenants", "api_keys", "channels", "contacts", "conversations",
                         "messages", "message_status_events", "tenant_usage", "outbox",
                         "delivery_attempts", "users", "audit_log"):
            self.assertIn(expected, self.tables)
        for table in self.tables:
            row = self.server.sql(f"SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
                                  f"WHERE oid = 'public.{table}'::regclass")
            self.assertEqual(row, "t|t", f"{table}: RLS enabled|forced")
            policies = self.server.sql(f"SELECT string_agg(policyname, ',' ORDER BY policyname) "
                                       f"FROM pg_policies WHERE tablename = '{table}'")
            self.assertEqual(policies, "parley_platform,parley_tenant", table)

    def test_the_application_role_cannot_bypass(self):
        row = self.server.sql(f"SELECT rolsuper, rolbypassrls FROM pg_roles "
                              f"WHERE rolname = '{APP_ROLE}'")
        self.assertEqual(row, "f|f")
        for table in self.tables:
            owner = self.server.sql(f"SELECT pg_has_role('{APP_ROLE}', relowner, 'MEMBER') "
                                    f"FROM pg_class WHERE oid = 'public.{table}'::regclass")
            self.assertEqual(owner, "f", f"{APP_ROLE} must not own {table}")

    def test_without_the_setting_every_tenant_table_is_empty(self):
        for table in self.tables:
            # An outbox row would be sent by the channel's actor; its policies are checked above.
            if table != "outbox":
                self.assertNotEqual(self.server.sql(f"SELECT count(*) FROM {table}"), "0",
                                    f"{table} should hold rows for this test to mean anything")
            r = self.as_app(f"SELECT count(*) FROM {table};")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.strip(), "0", f"{table} visible without a tenant setting")
            # An empty setting is no tenant either.
            r = self.as_app(f"BEGIN;\n\\o /dev/null\nSELECT set_config('parley.tenant_id', '', "
                            f"true);\n\\o\nSELECT count(*) FROM {table};\nCOMMIT;")
            self.assertEqual(r.stdout.strip(), "0", f"{table} visible with an empty setting")

    def test_with_a_tenant_setting_only_that_tenant(self):
        for tenant, other in ((self.a, self.b), (self.b, self.a)):
            for table in self.tables:
                col = key_column(table)
                r = self.as_app(
                    f"BEGIN;\n\\o /dev/null\nSELECT set_config('parley.tenant_id', "
                    f"'{tenant['id']}', true);\n\\o\n"
                    f"SELECT DISTINCT {col} FROM {table};\nCOMMIT;")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout.split(), [] if table == "outbox" else [tenant["id"]],
                                 table)
            # Writing into the other tenant is refused by the policy's check.
            r = self.as_app(
                f"BEGIN;\nSELECT set_config('parley.tenant_id', '{tenant['id']}', true);\n"
                f"INSERT INTO contacts (tenant_id, wa_id) VALUES ('{other['id']}', '1999');\n"
                f"COMMIT;")
            self.assertNotEqual(r.returncode, 0, "wrote a row of another tenant")
            self.assertIn("row-level security", r.stderr)
            # ...and so is touching its rows: nothing matches.
            r = self.as_app(
                f"BEGIN;\n\\o /dev/null\nSELECT set_config('parley.tenant_id', '{tenant['id']}', "
                f"true);\n\\o\nWITH d AS (DELETE FROM contacts WHERE tenant_id = '{other['id']}' "
                f"RETURNING 1) SELECT count(*) FROM d;\nROLLBACK;")
            self.assertEqual(r.stdout.strip(), "0")

    def test_the_policies_cannot_be_switched_off(self):
        attempts = [
            "SET row_security = off; SELECT count(*) FROM channels;",
            "ALTER TABLE channels DISABLE ROW LEVEL SECURITY;",
            "ALTER TABLE channels NO FORCE ROW LEVEL SECURITY;",
            "DROP POLICY parley_tenant ON channels;",
            "CREATE POLICY open ON channels USING (true);",
            "SET ROLE postgres; SELECT count(*) FROM channels;",
        ]
        for sql in attempts:
            r = self.as_app(sql)
            self.assertNotEqual(r.returncode, 0, f"{sql!r} succeeded: {r.stdout}")
        # Still enforced afterwards.
        self.assertEqual(self.as_app("SELECT count(*) FROM channels;").stdout.strip(), "0")


class StartupRefusalTest(ParleyTestCase):
    """The node will not serve as a role that RLS does not bind, nor with a tenant table that
    lacks RLS, unless told to accept the risk explicitly."""

    def refused(self, srv: ParleyServer) -> str:
        """Starts `srv`, expecting it to exit non-zero; returns what it logged."""
        with self.assertRaises(AssertionError) as ctx:
            srv.start()
        self.assertNotEqual(srv.proc.wait(10), 0)
        return str(ctx.exception)

    def test_superuser_db_url_is_refused(self):
        logs = self.refused(ParleyServer(app_role=False))
        self.assertIn("refusing to start: db.url can bypass Row Level Security", logs)
        self.assertIn("superuser", logs)

    def test_explicit_bypass_starts_with_a_warning(self):
        with ParleyServer(app_role=False, env={"PARLEY_DB_ALLOW_RLS_BYPASS": "true"}) as srv:
            self.assertStatus(srv.request("GET", "/health/ready"), 200)
            self.assertIn("TENANT ISOLATION DEGRADED", srv.logs())

    def test_a_tenant_table_without_rls_is_refused(self):
        with ScratchDatabase() as db:
            with ParleyServer(db_url=db.url) as srv:
                self.assertStatus(srv.request("GET", "/health/ready"), 200)
            # A table added behind the migrations' back (they secure what they create).
            db.sql("CREATE TABLE sneaky (tenant_id uuid, secret text); "
                   f"GRANT SELECT ON sneaky TO {APP_ROLE}")
            logs = self.refused(ParleyServer(db_url=db.url))
            self.assertIn("tenant tables without Row Level Security", logs)
            self.assertIn("sneaky", logs)
            # The idempotent step `parley migrate` runs after applying migrations secures it.
            db.sql("SELECT parley_secure_tenant_tables()")
            with ParleyServer(db_url=db.url) as srv:
                self.assertStatus(srv.request("GET", "/health/ready"), 200)
            self.assertEqual(run_psql(as_role(db.url, APP_ROLE),
                                      "SELECT count(*) FROM sneaky;").stdout.strip(), "0")


if __name__ == "__main__":
    unittest.main()
