"""/metrics is valid Prometheus text (promtool agrees) with the promised families and bounded
label values; /health answers; the process logs JSON lines."""
import json
import os
import re
import secrets
import subprocess
import unittest

from harness import ParleyServer, ParleyTestCase, http_request, require_environment

setUpModule = require_environment

PROMTOOL = "/usr/bin/promtool"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{family: {"type": str, "samples": [(name, {labels}, value)]}} from exposition text."""
    families, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(None, 3)
            types[name] = typ
            families.setdefault(name, {"type": typ, "samples": []})
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise AssertionError(f"unparsable metrics line: {line!r}")
        name, labels, value = m.group(1), dict(LABEL.findall(m.group(3) or "")), float(m.group(4))
        family = name
        for suffix in ("_bucket", "_sum", "_count", "_total"):
            base = name[: -len(suffix)] if name.endswith(suffix) else None
            if base and base in types and types[base] in ("histogram", "summary"):
                family = base
                break
        families.setdefault(family, {"type": types.get(family, "untyped"), "samples": []})
        families[family]["samples"].append((name, labels, value))
    return families


class ObservabilityTest(ParleyTestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server()
        srv = cls.server
        cls.tenant = srv.create_tenant()
        cls.key = srv.create_api_key(cls.tenant["id"])
        srv.create_channel(cls.tenant["id"])
        cls.noise = "nope-" + secrets.token_hex(6)
        # Some traffic of every kind: successes, client errors, unknown routes, tenant calls.
        for _ in range(3):
            srv.admin("GET", f"/v1/tenants/{cls.tenant['id']}")
            srv.admin("GET", "/v1/tenants?limit=2")
            srv.request("GET", "/v1/channels", token=cls.key["key"])
            srv.request("GET", f"/{cls.noise}")
            srv.request("POST", "/v1/tenants", {"name": "x"})
            srv.request("GET", "/health/live")
            srv.request("GET", "/health/ready")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def metrics(self):
        r = self.server.request("GET", "/metrics")
        self.assertStatus(r, 200, "/metrics")
        self.assertIn("text/plain", r.headers.get("Content-Type", ""))
        self.assertIsInstance(r.body, str)
        return r.body

    def test_promtool_accepts_metrics(self):
        if not os.access(PROMTOOL, os.X_OK):
            self.fail(f"{PROMTOOL} is missing: install the Debian package 'prometheus' "
                      "(make deps / deploy/local/install-deps.sh)")
        text = self.metrics()
        proc = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                              text=True, timeout=60)
        # promtool exits 1 for lint findings as well as errors; both are worth fixing.
        self.assertEqual(proc.returncode, 0,
                         f"promtool check metrics:\n{proc.stdout}{proc.stderr}\n---\n{text[:3000]}")

    def test_families_present(self):
        fams = parse_metrics(self.metrics())
        http = fams.get("parley_http_requests_total")
        self.assertIsNotNone(http, sorted(fams))
        self.assertEqual(http["type"], "counter")
        routes = {s[1].get("route") for s in http["samples"]}
        self.assertIn("/v1/tenants/{id}", routes, routes)
        self.assertIn("/v1/channels", routes, routes)
        for s in http["samples"]:
            self.assertIn("route", s[1], s)
            self.assertIn("status", s[1], s)
        statuses = {s[1]["status"] for s in http["samples"]}
        self.assertTrue({"200", "401", "404"} <= statuses, statuses)

        dur = fams.get("parley_http_request_duration_seconds")
        self.assertIsNotNone(dur, sorted(fams))
        self.assertEqual(dur["type"], "histogram")
        names = {s[0] for s in dur["samples"]}
        self.assertTrue({"parley_http_request_duration_seconds_bucket",
                         "parley_http_request_duration_seconds_sum",
                         "parley_http_request_duration_seconds_count"} <= names, names)
        self.assertTrue(any(s[1].get("le") == "+Inf" for s in dur["samples"]))

        for fam in ("parley_actors_alive", "parley_actor_mailbox_depth"):
            self.assertIn(fam, fams, sorted(fams))
            self.assertEqual(fams[fam]["type"], "gauge")
        alive = {s[1].get("kind"): s[2] for s in fams["parley_actors_alive"]["samples"]}
        self.assertGreaterEqual(alive.get("tenant", 0), 1, alive)
        self.assertGreaterEqual(alive.get("supervisor", 0), 1, alive)
        self.assertTrue("parley_db_batch_rows" in fams or "parley_db_commit_seconds" in fams,
                        sorted(fams))
        # Exported from start-up at 0: an alert on their increase must see the first one.
        for fam in ("parley_raw_events_left_total", "parley_raw_events_replayed_total",
                    "parley_db_writer_up"):
            self.assertIn(fam, fams, sorted(fams))

    def test_counters_count(self):
        def count(route, status):
            fams = parse_metrics(self.metrics())
            return sum(s[2] for s in fams["parley_http_requests_total"]["samples"]
                       if s[1].get("route") == route and s[1].get("status") == status)
        before = count("/v1/admin/actors", "200")
        for _ in range(4):
            self.assertStatus(self.server.admin("GET", "/v1/admin/actors"), 200, "actors")
        self.assertEqual(count("/v1/admin/actors", "200") - before, 4)

    def test_label_values_are_bounded(self):
        text = self.metrics()
        # Route templates, never raw paths: ids and unknown paths would explode cardinality.
        self.assertNotIn(self.tenant["id"], text)
        self.assertNotIn(self.noise, text)
        self.assertNotIn(self.key["key"], text)
        self.assertNotIn(self.server.admin_token, text)

    def test_health(self):
        r = http_request(self.server.port, "GET", "/health/live")
        self.assertStatus(r, 200, "live")
        self.assertIsInstance(r.body, dict)
        r = http_request(self.server.port, "GET", "/health/ready")
        self.assertStatus(r, 200, "ready")
        self.assertIsInstance(r.body, dict)
        self.assertTrue(r.headers.get("X-Request-Id"))

    def test_stderr_is_json_lines(self):
        lines = [l for l in self.server.stderr_lines if l.strip()]
        self.assertTrue(lines)
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                self.fail(f"stderr line is not JSON: {line!r}")
            self.assertIsInstance(rec, dict, line)
            for field in ("ts", "level", "msg"):
                self.assertIn(field, rec, line)
            self.assertRegex(rec["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
        self.assertTrue(any(json.loads(l).get("msg") == "listening" for l in lines))

    def test_stdout_has_no_plain_text_logs(self):
        self.assertStatus(self.server.admin("GET", "/v1/admin/actors"), 200, "actors")
        self.metrics()
        for line in self.server.stdout_lines:
            if line.strip():
                try:
                    json.loads(line)
                except ValueError:
                    self.fail(f"plain-text log line on stdout: {line!r}")


if __name__ == "__main__":
    unittest.main()
