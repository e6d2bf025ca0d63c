"""Process life cycle: graceful drain on SIGTERM with a request in flight, and a database outage
(a private PostgreSQL cluster stopped and started under a running server)."""
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

from harness import (ParleyServer, ParleyTestCase, PrivatePostgres, clean_env,
                     port_is_closed, psql, require_environment)

setUpModule = require_environment

SLOW_ENV = {
    # The in-flight request waits on a table lock; nothing else may time it out first.
    "PARLEY_DB_STATEMENT_TIMEOUT_MS": "30000",
    "PARLEY_DB_REQUEST_TIMEOUT_MS": "30000",
    "PARLEY_HTTP_REQUEST_TIMEOUT_MS": "30000",
}


class TableLock:
    """Holds ACCESS EXCLUSIVE on a table from a separate psql session until release()."""

    def __init__(self, url, table):
        self.proc = subprocess.Popen(["psql", "-X", "-q", "-A", "-t", "-d", url],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=clean_env())
        self.proc.stdin.write(f"BEGIN;\nLOCK TABLE {table} IN ACCESS EXCLUSIVE MODE;\n"
                              "SELECT 'locked';\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if line.strip() != "locked":
            self.proc.kill()
            raise AssertionError(f"could not lock {table}: {line}")

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("COMMIT;\n\\q\n")
            self.proc.stdin.flush()
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        self.proc.stdout.close()


class DrainTest(ParleyTestCase):
    def test_sigterm_finishes_in_flight_request(self):
        with ParleyServer(env=SLOW_ENV) as srv:
            srv.create_tenant()
            self.assertStatus(srv.admin("GET", "/v1/tenants"), 200, "warm-up", srv)
            lock = TableLock(srv.db_url, "tenants")
            result = {}

            def slow_request():
                try:
                    result["r"] = srv.admin("GET", "/v1/tenants", timeout=60)
                except Exception as e:  # reported below
                    result["error"] = e
                result["at"] = time.monotonic()

            worker = threading.Thread(target=slow_request)
            try:
                worker.start()
                # The request is in flight once its query waits on our lock.
                dbname = srv.db_url.rsplit("/", 1)[1]
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    waiting = psql(srv.db_url, "SELECT count(*) FROM pg_stat_activity WHERE "
                                   f"datname = '{dbname}' AND wait_event_type = 'Lock'")
                    if waiting != "0":
                        break
                    time.sleep(0.05)
                else:
                    self.fail(f"the request never reached the database{self._logs(srv)}")
                self.assertNotIn("r", result, "the request finished despite the lock")

                sent = time.monotonic()
                srv.signal(signal.SIGTERM)
                self.assertTrue(srv.wait_for_log("draining", 10), srv.logs())
                # Draining: no new connections, the process waits for the request.
                deadline = time.monotonic() + 5
                while not port_is_closed(srv.port) and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.assertTrue(port_is_closed(srv.port),
                                "still accepting connections while draining")
                time.sleep(0.5)
                self.assertTrue(srv.alive(), f"exited with a request in flight\n{srv.logs()}")
                self.assertNotIn("r", result)
            finally:
                lock.release()
                worker.join(timeout=30)
            self.assertNotIn("error", result, f"in-flight request failed: {result.get('error')}"
                                              f"{self._logs(srv)}")
            self.assertStatus(result["r"], 200, "in-flight request", srv)
            self.assertEqual(len(result["r"].body["data"]), 1)
            self.assertGreater(result["at"], sent)
            code = srv.wait_exit(15)
            self.assertEqual(code, 0, f"exit code after drain{self._logs(srv)}")
            self.assertTrue(port_is_closed(srv.port))
            stopped = [r for r in srv.log_records() if r.get("msg") == "stopped"]
            self.assertTrue(stopped, srv.logs())

    def test_idle_sigterm_and_sigint(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(sig=sig.name):
                srv = ParleyServer().start()
                try:
                    port = srv.port
                    self.assertStatus(srv.request("GET", "/health/ready"), 200, "ready", srv)
                    started = time.monotonic()
                    srv.signal(sig)
                    code = srv.wait_exit(15)
                    self.assertEqual(code, 0, f"{sig.name}: exit code {code}{self._logs(srv)}")
                    self.assertLess(time.monotonic() - started, 15)
                    self.assertTrue(port_is_closed(port), "port still open after exit")
                finally:
                    srv.stop(check=False)


    def test_idle_keep_alive_connection_does_not_delay_shutdown(self):
        srv = ParleyServer().start()
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        try:
            conn.request("GET", "/health/live")
            resp = conn.getresponse()
            resp.read()
            self.assertEqual(resp.status, 200)
            self.assertFalse(resp.will_close, "expected a keep-alive connection")
            started = time.monotonic()
            srv.signal(signal.SIGTERM)
            code = srv.wait_exit(15)
            self.assertEqual(code, 0, srv.logs())
            # drain_timeout_ms is 10 s: an idle connection is not "in flight".
            self.assertLess(time.monotonic() - started, 5, "waited for an idle connection")
        finally:
            conn.close()
            srv.stop(check=False)


class TimeoutTest(ParleyTestCase):
    def test_slow_database_gives_503_not_a_hang(self):
        env = {"PARLEY_HTTP_REQUEST_TIMEOUT_MS": "1500", "PARLEY_DB_REQUEST_TIMEOUT_MS": "1000",
               "PARLEY_HTTP_READ_TIMEOUT_MS": "1000"}
        with ParleyServer(env=env) as srv:
            srv.create_tenant()
            lock = TableLock(srv.db_url, "tenants")
            try:
                t0 = time.monotonic()
                r = srv.admin("GET", "/v1/tenants", timeout=30)
                elapsed = time.monotonic() - t0
                self.assertError(r, 503, what="list while the table is locked", srv=srv)
                self.assertIn(r.error_code(), ("upstream_timeout", "storage_unavailable"),
                              r.describe())
                self.assertLess(elapsed, 5, "the request hung")
                self.assertStatus(srv.request("GET", "/health/live"), 200, "live", srv)
            finally:
                lock.release()
            # Once the lock is gone, the node works again (its blocked workers came back).
            deadline = time.monotonic() + 15
            while True:
                r = srv.admin("GET", "/v1/tenants")
                if r.status == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            self.assertStatus(r, 200, "list after the lock is released", srv)
            srv.create_tenant()

            # A client that connects and says nothing is disconnected after the read timeout.
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
                t0 = time.monotonic()
                try:
                    data = s.recv(1024)
                except OSError:
                    data = b""
                self.assertLess(time.monotonic() - t0, 8, "a silent client is never dropped")
                self.assertFalse(data.startswith(b"HTTP/1.1 5"), data)
            self.assertStatus(srv.request("GET", "/health/live"), 200, "live", srv)


class StartupRaceTest(ParleyTestCase):
    # Regression: requests right after "listening" once got 500 'target actor is not available'
    # because the supervisor filled the actor slots asynchronously; the bootstrap now waits for
    # them. It only showed under CPU contention, so this stress test is opt-in.
    @unittest.skipUnless(os.environ.get("PARLEY_TEST_STRESS"),
                         "stress test; set PARLEY_TEST_STRESS=1 to run")
    def test_first_requests_after_listening(self):
        seen = []
        for _ in range(3):
            burners = [subprocess.Popen([sys.executable, "-c", "import time\n"
                                         "t = time.time() + 8\nwhile time.time() < t: pass"])
                       for _ in range(3)]
            servers = [ParleyServer(wait_ready=False,
                                    env={"PARLEY_RUNTIME_SCHEDULER_THREADS": "1"})
                       for _ in range(4)]

            def first_request(srv):
                srv.start()
                r = srv.admin("GET", "/v1/tenants")
                seen.append((r.status, r.body))

            threads = [threading.Thread(target=first_request, args=(s,)) for s in servers]
            try:
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(timeout=60)
            finally:
                for s in servers:
                    s.stop(check=False)
                for b in burners:
                    b.kill()
                    b.wait()
        self.assertEqual(len(seen), 12)
        bad = [x for x in seen if x[0] not in (200, 503)]
        self.assertEqual(bad, [], "requests right after 'listening' failed")


class DatabaseOutageTest(ParleyTestCase):
    def wait_status(self, srv, path, status, within, **kw):
        """Polls until `path` answers `status`; every single answer must come back in time."""
        deadline = time.monotonic() + within
        last = None
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            last = srv.request("GET", path, timeout=within, **kw)
            self.assertLess(time.monotonic() - t0, 10, f"{path} took too long{self._logs(srv)}")
            if last.status == status:
                return last
            time.sleep(0.2)
        self.fail(f"{path} did not answer {status} within {within} s; last: "
                  f"{last.describe() if last else None}{self._logs(srv)}")

    def test_start_before_database(self):
        with PrivatePostgres() as pg:
            pg.stop("fast")
            starter = threading.Timer(2.0, pg.start)
            starter.start()
            srv = ParleyServer(db_url=pg.url)
            try:
                srv.start()
                starter.join()
                self.wait_status(srv, "/health/ready", 200, 10)
                srv.create_tenant()
                srv.stop()
            finally:
                starter.cancel()
                starter.join()
                srv.stop(check=False)

    def test_outage_and_recovery(self):
        with PrivatePostgres() as pg:
            srv = ParleyServer(db_url=pg.url)
            try:
                srv.start()
                self.wait_status(srv, "/health/ready", 200, 10)
                t = srv.create_tenant()
                key = srv.create_api_key(t["id"])["key"]
                self.assertStatus(srv.request("GET", "/v1/channels", token=key), 200, "key", srv)

                # ---- outage
                pg.stop("fast")
                r = self.wait_status(srv, "/health/ready", 503, 10)
                self.assertError(r, 503, what="ready during outage", srv=srv)
                t0 = time.monotonic()
                r = srv.admin("POST", "/v1/tenants", {"name": "during", "slug": "during-outage"},
                              timeout=30)
                elapsed = time.monotonic() - t0
                self.assertError(r, 503, "storage_unavailable", what="write during outage",
                                 srv=srv)
                self.assertLess(elapsed, 10, "the write hung instead of failing fast")
                for path, token in (("/v1/tenants", srv.admin_token),
                                    (f"/v1/tenants/{t['id']}/channels", srv.admin_token),
                                    ("/v1/channels", key)):
                    t0 = time.monotonic()
                    r = srv.request("GET", path, token=token, timeout=30)
                    self.assertLess(time.monotonic() - t0, 10, f"{path} hung")
                    # A database outage is never reported as bad credentials or a bug.
                    self.assertError(r, 503, what=f"GET {path} during outage", srv=srv)
                self.assertStatus(srv.request("GET", "/health/live"), 200, "live in outage", srv)
                r = srv.request("GET", "/metrics", timeout=30)
                self.assertStatus(r, 200, "metrics during outage", srv)
                self.assertTrue(srv.alive(), f"parley died during the outage\n{srv.logs()}")

                # ---- recovery on the same port
                pg.start()
                self.wait_status(srv, "/health/ready", 200, 30)
                for i in range(5):
                    r = srv.admin("POST", "/v1/tenants", {"name": f"after {i}",
                                                          "slug": f"after-outage-{i}"})
                    self.assertStatus(r, 201, f"write #{i} after recovery", srv)
                r = srv.request("GET", "/v1/channels", token=key)
                self.assertStatus(r, 200, "tenant key after recovery", srv)
                self.assertEqual(psql(pg.url, "SELECT count(*) FROM tenants WHERE slug LIKE "
                                              "'after-outage-%' OR slug = 'during-outage'"), "5")
                srv.stop()
            finally:
                srv.stop(check=False)


if __name__ == "__main__":
    unittest.main()
