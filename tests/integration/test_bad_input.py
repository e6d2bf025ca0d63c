"""A sweep of client mistakes over every route: each gets the right 4xx with an error body that
says what to fix, none gets a 5xx, and the server is still healthy afterwards."""
import http.client
import json
import unittest

from harness import (BAD, ParleyServer, ParleyTestCase, channel_body, http_request,
                     raw_exchange, require_environment)

setUpModule = require_environment

BODY_LIMIT = 4096
UNKNOWN = "00000000-0000-0000-0000-000000000000"


class BadInputTest(ParleyTestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(env={"PARLEY_HTTP_BODY_LIMIT": str(BODY_LIMIT)})
        srv = cls.server
        cls.tenant = srv.create_tenant()
        cls.key = srv.create_api_key(cls.tenant["id"])
        cls.channel = srv.create_channel(cls.tenant["id"])
        cls.statuses = []

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def setUp(self):
        self.assertTrue(self.server.alive(), f"parley died\n{self.server.logs()}")

    # -- helpers

    def routes(self):
        """(method, path, who, valid body or None) for every route with real ids in the path."""
        tid, kid, cid = self.tenant["id"], self.key["id"], self.channel["id"]
        return [
            ("POST", "/v1/tenants", "admin", {"name": "n", "slug": "never-created"}),
            ("GET", "/v1/tenants", "admin", None),
            ("GET", f"/v1/tenants/{tid}", "admin", None),
            ("PATCH", f"/v1/tenants/{tid}", "admin", {"name": "n"}),
            ("DELETE", f"/v1/tenants/{tid}", "admin", None),
            ("POST", f"/v1/tenants/{tid}/api-keys", "admin", {"name": "k"}),
            ("GET", f"/v1/tenants/{tid}/api-keys", "admin", None),
            ("DELETE", f"/v1/tenants/{tid}/api-keys/{kid}", "admin", None),
            ("POST", f"/v1/tenants/{tid}/channels", "admin", channel_body()),
            ("GET", f"/v1/tenants/{tid}/channels", "admin", None),
            ("GET", "/v1/admin/actors", "admin", None),
            ("GET", "/v1/channels", "tenant", None),
            ("GET", f"/v1/channels/{cid}", "tenant", None),
        ]

    def body_routes(self):
        return [r for r in self.routes() if r[3] is not None]

    def call(self, method, path, body=None, **kw):
        r = self.server.request(method, path, body, **kw)
        self.statuses.append((method, path, r.status))
        self.assertLess(r.status, 500, f"{method} {path}: a client mistake got {r.describe()}"
                                       f"{self._logs()}")
        return r

    # -- credentials

    def test_no_authorization(self):
        for method, path, _, body in self.routes():
            with self.subTest(method=method, path=path):
                r = self.call(method, path, body)
                self.assertError(r, 401, "unauthorized", mentions="authorization",
                                 what=f"{method} {path}")

    def test_wrong_token(self):
        for method, path, who, body in self.routes():
            for token in ("wrong-token-0123456789abcdef", "x", self.server.admin_token + "x",
                          self.server.admin_token[:-1]):
                with self.subTest(method=method, path=path, token=token):
                    r = self.call(method, path, body, token=token)
                    self.assertError(r, 401, "unauthorized", what=f"{method} {path}")

    def test_credentials_of_the_other_kind(self):
        for method, path, who, body in self.routes():
            token = self.key["key"] if who == "admin" else self.server.admin_token
            with self.subTest(method=method, path=path, who=who):
                r = self.call(method, path, body, token=token)
                self.assertIn(r.status, (401, 403), f"{method} {path}: {r.describe()}")
                self.assertError(r, r.status, what=f"{method} {path}")

    def test_malformed_authorization_header(self):
        for method, path, who, body in self.routes():
            good = self.server.admin_token if who == "admin" else self.key["key"]
            for header in (f"Basic {good}", "Bearer", "Bearer ", good, f"Token {good}"):
                with self.subTest(method=method, path=path, header=header):
                    r = self.call(method, path, body, headers={"Authorization": header})
                    self.assertError(r, 401, "unauthorized", what=f"{method} {path} {header!r}")

    # -- bodies

    def test_malformed_json(self):
        for method, path, _, _ in self.body_routes():
            # 1e400: valid JSON syntax, but no double holds it (nlohmann throws out_of_range,
            # not parse_error: it was a 500).
            for raw in (b'{"name":', b"{name: 1}", b"nul", b'{"a":1}}', b"\xff\xfe{}",
                        b'{"name":"\xff"}', b'{"name":"x",}', b'{"name":1e400}',
                        b'{"n":-1e999}'):
                with self.subTest(method=method, path=path, raw=raw):
                    r = self.call(method, path, raw=raw, token=self.server.admin_token)
                    self.assertError(r, 400, BAD, mentions="json", what=f"{method} {path}")

    def test_body_not_an_object(self):
        for method, path, _, _ in self.body_routes():
            for raw in (b"[]", b"[1,2]", b'"text"', b"42", b"null", b"true", b"",
                        b"[" * 2000 + b"]" * 2000):
                with self.subTest(method=method, path=path, raw=raw[:20]):
                    r = self.call(method, path, raw=raw, token=self.server.admin_token)
                    self.assertError(r, 400, BAD, what=f"{method} {path}")

    def test_non_json_content_type(self):
        for method, path, _, body in self.body_routes():
            data = json.dumps(body).encode()
            for ctype in ("text/plain", "application/x-www-form-urlencoded",
                          "multipart/form-data; boundary=x", "application/jsonp", None):
                with self.subTest(method=method, path=path, ctype=ctype):
                    r = self.call(method, path, raw=data, content_type=ctype,
                                  token=self.server.admin_token)
                    self.assertError(r, 415, "unsupported_media_type", mentions="json",
                                     what=f"{method} {path} {ctype}")
        # Parameters on the JSON type are fine.
        r = self.call("POST", f"/v1/tenants/{self.tenant['id']}/api-keys", raw=b'{"name":"k"}',
                      content_type="application/json; charset=utf-8",
                      token=self.server.admin_token)
        self.assertStatus(r, 201, "charset parameter")

    def test_body_over_limit(self):
        big = {"name": "x" * (BODY_LIMIT + 100)}
        for method, path, _, _ in self.body_routes():
            with self.subTest(method=method, path=path):
                r = self.call(method, path, big, token=self.server.admin_token)
                self.assertError(r, 413, "payload_too_large", what=f"{method} {path}")
        # Exactly at the limit is still read (and then judged on its content).
        at = b'{"name":"' + b"x" * (BODY_LIMIT - 11) + b'"}'
        self.assertEqual(len(at), BODY_LIMIT)
        r = self.call("POST", f"/v1/tenants/{self.tenant['id']}/api-keys", raw=at,
                      token=self.server.admin_token)
        self.assertError(r, 400, BAD, mentions="name", what="body at the limit, name too long")

    def test_body_over_limit_declared_but_not_sent(self):
        # The server must refuse on the Content-Length alone instead of waiting for the body.
        req = (f"POST /v1/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
               f"{self.server.admin_token}\r\nContent-Type: application/json\r\n"
               f"Content-Length: 100000000\r\n\r\n{{").encode()
        status, out = raw_exchange(self.server.port, req, timeout=8)
        self.assertEqual(status, 413, out[:300])
        self.assertIn(b"x-request-id:", out.lower(), out[:300])
        self.assertIn(b"payload_too_large", out, out[:300])

    def test_chunked_body_over_limit(self):
        chunk = b"x" * 1000
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(10)) + b"0\r\n\r\n"
        req = (f"POST /v1/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
               f"{self.server.admin_token}\r\nContent-Type: application/json\r\n"
               f"Transfer-Encoding: chunked\r\n\r\n").encode() + body
        status, out = raw_exchange(self.server.port, req, timeout=8)
        self.assertEqual(status, 413, out[:300])

    def test_wrong_field_types_and_missing_fields(self):
        tid = self.tenant["id"]
        cases = [
            ("POST", "/v1/tenants", {"name": 5, "slug": "ok-slug"}, "name"),
            ("POST", "/v1/tenants", {"name": "n", "slug": ["a"]}, "slug"),
            ("POST", "/v1/tenants", {"name": "n"}, "slug"),
            ("POST", "/v1/tenants", {"name": None, "slug": "x-y"}, "name"),
            ("POST", "/v1/tenants", {"name": "", "slug": "x-y"}, "name"),
            ("POST", "/v1/tenants", {"name": "n" * 201, "slug": "x-y"}, "name"),
            ("POST", "/v1/tenants", {"name": "n", "slug": "x-y", "id": UNKNOWN}, "id"),
            ("PATCH", f"/v1/tenants/{tid}", {"status": "deleted"}, "status"),
            ("PATCH", f"/v1/tenants/{tid}", {"status": 1}, "status"),
            ("PATCH", f"/v1/tenants/{tid}", {"slug": "new"}, "slug"),
            ("PATCH", f"/v1/tenants/{tid}", {"name": {"x": 1}}, "name"),
            ("POST", f"/v1/tenants/{tid}/api-keys", {"name": 1}, "name"),
            ("POST", f"/v1/tenants/{tid}/api-keys", {"label": "x"}, "label"),
            ("POST", f"/v1/tenants/{tid}/channels", channel_body(phone_number_id=123),
             "phone_number_id"),
            ("POST", f"/v1/tenants/{tid}/channels", channel_body(throughput_mps=1.5),
             "throughput_mps"),
            ("POST", f"/v1/tenants/{tid}/channels", channel_body(throughput_mps=10**30),
             "throughput_mps"),
            ("POST", f"/v1/tenants/{tid}/channels", channel_body(access_token=None),
             "access_token"),
            ("POST", f"/v1/tenants/{tid}/channels", channel_body(app_secret=7), "app_secret"),
            ("POST", f"/v1/tenants/{tid}/channels", channel_body(waba_id="1" * 40), "waba_id"),
        ]
        for method, path, body, field in cases:
            with self.subTest(method=method, path=path, field=field):
                r = self.call(method, path, body, token=self.server.admin_token)
                self.assertError(r, 400, BAD, mentions=field, what=f"{method} {path}")
        # None of those changed the tenant.
        r = self.server.admin("GET", f"/v1/tenants/{tid}")
        self.assertEqual(r.body["status"], "active")

    def test_bad_query_parameters(self):
        lists = [(p, who) for m, p, who, b in self.routes()
                 if m == "GET" and (p.endswith("/tenants") or p.endswith("channels")
                                    or p.endswith("api-keys"))]
        for path, who in lists:
            token = self.server.admin_token if who == "admin" else self.key["key"]
            for query in ("limit=0", "limit=501", "limit=-3", "limit=abc", "limit=1e3",
                          "limit=99999999999999999999", "cursor=%25%25", "cursor=bm90LWpzb24",
                          "cursor=eyJ0IjoxfQ"):
                if path.endswith("api-keys"):
                    continue  # not paginated
                with self.subTest(path=path, query=query):
                    r = self.call("GET", f"{path}?{query}", token=token)
                    self.assertError(r, 400, BAD, mentions=query.split("=")[0],
                                     what=f"GET {path}?{query}")
            with self.subTest(path=path, query="cursor=%%%"):
                r = self.call("GET", f"{path}?cursor=%%%", token=token)
                self.assertError(r, 400, BAD, mentions="percent", what=f"GET {path}?cursor=%%%")

    # -- ids, routes, methods

    def test_unknown_and_malformed_ids(self):
        tid, kid = self.tenant["id"], self.key["id"]
        admin_paths = [f"/v1/tenants/{UNKNOWN}", "/v1/tenants/abc",
                       f"/v1/tenants/{tid}/api-keys/{UNKNOWN}", f"/v1/tenants/{tid}/api-keys/zz",
                       f"/v1/tenants/{UNKNOWN}/api-keys/{kid}",
                       "/v1/tenants/" + "a" * 36, "/v1/tenants/%00"]
        for path in admin_paths:
            method = "DELETE" if "/api-keys/" in path else "GET"
            with self.subTest(path=path):
                r = self.call(method, path, token=self.server.admin_token)
                self.assertError(r, 404, "not_found", what=path)
        for path in (f"/v1/channels/{UNKNOWN}", "/v1/channels/xyz", f"/v1/channels/{tid}"):
            with self.subTest(path=path):
                r = self.call("GET", path, token=self.key["key"])
                self.assertError(r, 404, "not_found", what=path)

    def test_unknown_routes(self):
        for path in ("/", "/v1", "/v1/", "/v2/tenants", "/v1/tenant", "/v1/nope",
                     f"/v1/tenants/{self.tenant['id']}/nope", "/v1/channels/a/b",
                     "/health", "/metrics/x", "/v1/tenants/" + "x/" * 50,
                     "/" + "a" * 2000, "/v1/%2e%2e/admin"):
            for method in ("GET", "POST"):
                with self.subTest(path=path[:60], method=method):
                    r = self.call(method, path, token=self.server.admin_token)
                    self.assertError(r, 404, "not_found", what=f"{method} {path[:60]}")

    def test_wrong_methods(self):
        tid, kid, cid = self.tenant["id"], self.key["id"], self.channel["id"]
        allowed = {
            "/v1/tenants": {"GET", "POST"},
            f"/v1/tenants/{tid}": {"GET", "PATCH", "DELETE"},
            f"/v1/tenants/{tid}/api-keys": {"GET", "POST"},
            f"/v1/tenants/{tid}/api-keys/{kid}": {"DELETE"},
            f"/v1/tenants/{tid}/channels": {"GET", "POST"},
            "/v1/admin/actors": {"GET"},
            "/v1/channels": {"GET"},
            f"/v1/channels/{cid}": {"GET", "PATCH"},
            "/health/live": {"GET"},
            "/health/ready": {"GET"},
            "/metrics": {"GET"},
        }
        for path, ok in allowed.items():
            for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                if method in ok:
                    continue
                with self.subTest(path=path, method=method):
                    r = self.call(method, path, {"name": "x"}, token=self.server.admin_token)
                    self.assertError(r, 405, "method_not_allowed", mentions=method,
                                     what=f"{method} {path}")
                    allow = {m.strip() for m in (r.headers.get("Allow") or "").split(",")}
                    self.assertTrue(ok <= allow, f"Allow: {r.headers.get('Allow')} for {path}")

    def test_keep_alive_survives_client_errors(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        auth = {"Authorization": f"Bearer {self.server.admin_token}"}
        try:
            steps = [
                ("POST", "/v1/tenants", b'{"name":', dict(auth, **{"Content-Type":
                                                                   "application/json"}), 400),
                ("GET", "/v1/nothing-here", None, {}, 404),
                ("HEAD", "/v1/tenants", None, auth, 200),  # the GET route, headers only
                ("HEAD", "/v1/tenants", None, {}, 401),
                ("HEAD", f"/v1/tenants/{self.tenant['id']}/api-keys/x", None, auth, 405),
                ("PUT", "/v1/tenants", b"{}", dict(auth, **{"Content-Type": "text/plain"}), 405),
                ("POST", "/v1/tenants", b"{}", dict(auth, **{"Content-Type": "text/plain"}), 415),
                ("GET", "/v1/tenants", None, {"Authorization": "Bearer nope"}, 401),
                ("GET", "/health/live", None, {}, 200),
                ("GET", f"/v1/tenants/{self.tenant['id']}", None, auth, 200),
            ]
            for method, path, body, headers, status in steps:
                with self.subTest(method=method, path=path):
                    conn.request(method, path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.assertEqual(resp.status, status, data[:300])
                    if method == "HEAD":
                        self.assertEqual(data, b"", "a HEAD response carries no body")
        finally:
            conn.close()

    # -- transport-level garbage

    def test_oversized_headers(self):
        req = (b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n")
        status, out = raw_exchange(self.server.port, req, timeout=8)
        self.assertIn(status, (400, 431, None), out[:300])
        self.assertTrue(status is None or status < 500, out[:300])

    def test_garbage_on_the_socket(self):
        for data in (b"HELLO\r\n\r\n", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\0" * 64,
                     b"GET / HTTP/9.9\r\n\r\n", b"GET\r\n\r\n", b"\r\n\r\n\r\n",
                     b"GET /health/live HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                     b"GET /health/live HTTP/1.1\r\nBad Header\r\n\r\n"):
            with self.subTest(data=data[:30]):
                status, out = raw_exchange(self.server.port, data, timeout=8)
                self.assertTrue(status is None or 400 <= status < 500, out[:300])
        r = self.call("GET", "/health/live")
        self.assertStatus(r, 200, "live after garbage")

    def test_request_target_not_origin_form(self):
        status, out = raw_exchange(self.server.port, b"GET * HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(status is None or 400 <= status < 500, out[:300])

    def test_zz_still_healthy(self):
        """Runs last (alphabetical order): the sweep left the server healthy."""
        self.assertTrue(self.server.alive())
        r = http_request(self.server.port, "GET", "/health/live")
        self.assertStatus(r, 200, "live")
        r = http_request(self.server.port, "GET", "/health/ready")
        self.assertStatus(r, 200, "ready")
        r = self.server.admin("GET", f"/v1/tenants/{self.tenant['id']}")
        self.assertStatus(r, 200, "tenant still there")
        self.assertEqual(r.body["status"], "active")
        r = self.server.request("GET", f"/v1/channels/{self.channel['id']}", token=self.key["key"])
        self.assertStatus(r, 200, "key still works")
        five = [s for s in self.statuses if s[2] >= 500]
        self.assertEqual(five, [])


if __name__ == "__main__":
    unittest.main()


class DeepNestingTest(ParleyTestCase):
    """Regression: a JSON body nested 200,000 levels deep (well under the default 1 MiB limit)
    parsed fine and then crashed the server when it was copied (nlohmann recurses). Every JSON
    body is now measured before parsing."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server()
        srv = cls.server
        cls.tenant = srv.create_tenant()
        cls.key = srv.create_api_key(cls.tenant["id"])
        cls.channel = srv.create_channel(cls.tenant["id"])

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_deep_bodies_are_refused(self):
        depth = 200_000
        deep = "[" * depth + "]" * depth
        deep_objects = '{"a":' * (depth // 2) + "1" + "}" * (depth // 2)  # under 1 MiB
        key, admin = self.key["key"], self.server.admin_token
        cases = [
            ("POST", "/v1/messages", key,
             '{"to":"15550001234","type":"text","text":{"body":"x","extra":' + deep + "}}"),
            ("POST", "/v1/messages", key, deep),
            ("POST", "/v1/messages", key, deep_objects),
            ("POST", "/v1/tenants", admin, '{"name":' + deep + ',"slug":"x"}'),
            ("PATCH", f"/v1/channels/{self.channel['id']}", key, '{"access_token":' + deep + "}"),
        ]
        for method, path, token, body in cases:
            with self.subTest(method=method, path=path, body=body[:40]):
                r = self.server.request(method, path, raw=body.encode(), token=token)
                self.assertError(r, 400, BAD, mentions="deeper", what=f"{method} {path}")
                self.assertTrue(self.server.alive(), f"parley died\n{self.server.logs()}")
        r = self.server.request("GET", "/health/live")
        self.assertStatus(r, 200, "GET /health/live after deep bodies")
