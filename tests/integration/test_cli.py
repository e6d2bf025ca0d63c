"""The command line: version, help, configuration errors (exit 2 naming the key), secret
redaction in the start-up log, and concurrent `parley migrate` on a fresh database."""
import json
import os
import secrets
import subprocess
import tempfile
import unittest

from harness import (ParleyServer, ScratchDatabase, clean_env, parley_bin,
                     require_environment)

setUpModule = require_environment

VALID = {
    "PARLEY_DB_URL": "postgresql://nobody@127.0.0.1:1/none",
    "PARLEY_ADMIN_TOKEN": "cli-admin-token-0123456789",
    "PARLEY_MASTER_KEY": "ab" * 32,
}


def run(args, env=None, timeout=60):
    return subprocess.run([parley_bin(), *args], env=clean_env(env), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


class CliTest(unittest.TestCase):
    def assertConfigError(self, proc, *words):
        out = f"stdout={proc.stdout!r} stderr={proc.stderr!r}"
        self.assertEqual(proc.returncode, 2, f"expected exit 2 for a configuration error; {out}")
        for w in words:
            self.assertIn(w, proc.stderr, f"stderr should name {w!r}; {out}")

    def test_version(self):
        proc = run(["--version"])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertRegex(proc.stdout.strip(), r"^parley \d+\.\d+\.\d+")

    def test_help(self):
        proc = run(["--help"])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        for word in ("serve", "migrate", "--version"):
            self.assertIn(word, proc.stdout)

    def test_no_subcommand_is_a_usage_error(self):
        proc = run([])
        self.assertNotEqual(proc.returncode, 0)
        self.assertTrue(proc.stderr.strip() or proc.stdout.strip())

    def test_missing_db_url(self):
        env = dict(VALID)
        del env["PARLEY_DB_URL"]
        for cmd in ("serve", "migrate"):
            with self.subTest(cmd=cmd):
                self.assertConfigError(run([cmd], env), "db.url", "PARLEY_DB_URL")

    def test_missing_admin_token_and_bad_master_key(self):
        env = dict(VALID)
        del env["PARLEY_ADMIN_TOKEN"]
        self.assertConfigError(run(["serve"], env), "admin.token")
        env = dict(VALID, PARLEY_ADMIN_TOKEN="short")
        self.assertConfigError(run(["serve"], env), "admin.token")
        env = dict(VALID, PARLEY_MASTER_KEY="zz" * 32)
        self.assertConfigError(run(["serve"], env), "master_key")
        env = dict(VALID, PARLEY_MASTER_KEY="ab" * 31)
        self.assertConfigError(run(["serve"], env), "master_key")

    def test_unknown_key_in_config_file(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"http": {"port": 0, "bogus_knob": 3}}, f)
            path = f.name
        try:
            proc = run(["serve", "--config", path], VALID)
            self.assertConfigError(proc, "bogus_knob")
        finally:
            os.unlink(path)

    def test_unknown_section_in_config_file(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"nonsense": {}}, f)
            path = f.name
        try:
            self.assertConfigError(run(["serve", "--config", path], VALID), "nonsense")
        finally:
            os.unlink(path)

    def test_unreadable_or_invalid_config_file(self):
        self.assertConfigError(run(["serve", "--config", "/nonexistent/parley.json"], VALID),
                               "--config")
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write("{ this is not json")
            path = f.name
        try:
            proc = run(["serve", "--config", path], VALID)
            self.assertEqual(proc.returncode, 2, proc.stderr)
        finally:
            os.unlink(path)

    def test_bad_http_port(self):
        for value in ("abc", "70000", "-1"):
            with self.subTest(value=value):
                self.assertConfigError(run(["serve"], dict(VALID, PARLEY_HTTP_PORT=value)),
                                       "PARLEY_HTTP_PORT")

    def test_bad_numeric_values_name_their_variable(self):
        for var, value in (("PARLEY_HTTP_BODY_LIMIT", "lots"),
                           ("PARLEY_DB_REQUEST_TIMEOUT_MS", "-5"),
                           ("PARLEY_LOG_LEVEL", "chatty")):
            with self.subTest(var=var):
                self.assertConfigError(run(["serve"], dict(VALID, **{var: value})), var)

    def test_unknown_environment_variable(self):
        self.assertConfigError(run(["serve"], dict(VALID, PARLEY_HTTP_PROT="1")),
                               "PARLEY_HTTP_PROT")

    def test_startup_log_is_redacted(self):
        token = "tok-" + secrets.token_hex(16)
        key = secrets.token_hex(32)
        app_secret = "appsecret-" + secrets.token_hex(8)
        verify = "verify-" + secrets.token_hex(8)
        db_password = "dbpw-" + secrets.token_hex(8)
        with ScratchDatabase() as db:
            # Trust auth ignores the password, so it can ride along in the URL harmlessly.
            parts = db.url.split("://", 1)
            userinfo, rest = parts[1].split("@", 1)
            url = f"{parts[0]}://{userinfo.split(':')[0]}:{db_password}@{rest}"
            srv = ParleyServer(db_url=url, admin_token=token, master_key=key,
                               env={"PARLEY_WHATSAPP_APP_SECRET": app_secret,
                                    "PARLEY_WHATSAPP_VERIFY_TOKEN": verify})
            with srv:
                r = srv.admin("GET", "/v1/tenants")
                self.assertEqual(r.status, 200, f"{r.describe()}\n{srv.logs()}")
            everything = "\n".join(srv.stderr_lines + srv.stdout_lines)
            starting = [r for r in srv.log_records() if r.get("msg") == "starting parley"]
            self.assertTrue(starting, f"no 'starting parley' line\n{srv.logs()}")
            cfg = starting[0].get("config", {})
            self.assertEqual(cfg.get("admin", {}).get("token"), "***", starting[0])
            self.assertEqual(cfg.get("security", {}).get("master_key"), "***", starting[0])
            for name, secret in (("admin token", token), ("master key", key),
                                 ("app secret", app_secret), ("verify token", verify),
                                 ("database password", db_password)):
                self.assertNotIn(secret, everything, f"the {name} appears in the logs")
                self.assertNotIn(secret.upper(), everything.upper(),
                                 f"the {name} appears in the logs (case-folded)")

    def test_concurrent_migrate_on_fresh_database(self):
        with ScratchDatabase() as db:
            env = dict(VALID, PARLEY_DB_URL=db.url)
            cmd = [parley_bin(), "migrate"]
            procs = [subprocess.Popen(cmd, env=clean_env(env), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for _ in range(2)]
            results = [p.communicate(timeout=90) for p in procs]
            for p, (out, err) in zip(procs, results):
                self.assertEqual(p.returncode, 0, f"migrate failed: {out}{err}")
            dupes = db.sql("SELECT version FROM schema_migrations GROUP BY version "
                           "HAVING count(*) > 1")
            self.assertEqual(dupes, "", "a migration version was recorded twice")
            versions = db.sql("SELECT count(*) FROM schema_migrations")
            self.assertGreaterEqual(int(versions), 1)
            # The schema really is there and a third run is a no-op.
            self.assertEqual(db.sql("SELECT to_regclass('public.tenants') IS NOT NULL"), "t")
            again = subprocess.run(cmd, env=clean_env(env), capture_output=True, text=True,
                                   timeout=60)
            self.assertEqual(again.returncode, 0, again.stderr)
            self.assertEqual(db.sql("SELECT count(*) FROM schema_migrations"), versions)

    def test_migrate_against_unreachable_database_fails_nonzero(self):
        # Nothing listens on port 1; migrate retries "database unavailable" for a while, so
        # only check it does not claim success quickly - bounded by a short timeout.
        env = dict(VALID, PARLEY_DB_URL="postgresql://postgres@127.0.0.1:1/none",
                   PARLEY_DB_CONNECT_TIMEOUT_MS="200")
        try:
            proc = subprocess.run([parley_bin(), "migrate"], env=clean_env(env),
                                  capture_output=True, text=True, timeout=3)
            self.assertNotEqual(proc.returncode, 0, proc.stderr)
        except subprocess.TimeoutExpired:
            pass  # still retrying: fine, it did not report success


if __name__ == "__main__":
    unittest.main()
