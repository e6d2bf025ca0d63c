"""The platform-admin API end to end: tenants, pagination, API keys, channels, secrets at rest,
request ids and the live actor tree."""
import re
import secrets
import threading
import time
import unittest
import uuid

from harness import BAD, ParleyServer, ParleyTestCase, channel_body, require_environment

setUpModule = require_environment

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


class AdminTest(ParleyTestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def post(self, path, body):
        return self.server.admin("POST", path, body)

    def test_tenant_crud(self):
        slug = "acme-" + secrets.token_hex(4)
        r = self.post("/v1/tenants", {"name": "Acme Corp", "slug": slug})
        self.assertStatus(r, 201, "create tenant")
        t = r.body
        for field in ("id", "name", "slug", "status", "created_at", "updated_at", "usage"):
            self.assertIn(field, t)
        self.assertRegex(t["id"], UUID)
        self.assertEqual((t["name"], t["slug"], t["status"]), ("Acme Corp", slug, "active"))
        self.assertRegex(t["created_at"], RFC3339)
        self.assertRegex(t["updated_at"], RFC3339)
        self.assertIsInstance(t["usage"], dict)

        r = self.server.admin("GET", f"/v1/tenants/{t['id']}")
        self.assertStatus(r, 200, "get tenant")
        self.assertEqual((r.body["id"], r.body["slug"], r.body["name"]),
                         (t["id"], slug, "Acme Corp"))
        # Upper-case uuid is the same tenant.
        r = self.server.admin("GET", f"/v1/tenants/{t['id'].upper()}")
        self.assertStatus(r, 200, "get tenant by upper-case id")
        self.assertEqual(r.body["id"], t["id"])

        r = self.server.admin("PATCH", f"/v1/tenants/{t['id']}", {"name": "Acme Inc"})
        self.assertStatus(r, 200, "rename")
        self.assertEqual((r.body["name"], r.body["status"]), ("Acme Inc", "active"))
        r = self.server.admin("PATCH", f"/v1/tenants/{t['id']}", {"status": "suspended"})
        self.assertStatus(r, 200, "suspend")
        self.assertEqual((r.body["name"], r.body["status"]), ("Acme Inc", "suspended"))
        r = self.server.admin("GET", f"/v1/tenants/{t['id']}")
        self.assertEqual((r.body["name"], r.body["status"]), ("Acme Inc", "suspended"))
        self.assertEqual(self.server.sql(f"SELECT name || '|' || status FROM tenants "
                                         f"WHERE id = '{t['id']}'"), "Acme Inc|suspended")
        r = self.server.admin("PATCH", f"/v1/tenants/{t['id']}", {"status": "active"})
        self.assertStatus(r, 200, "reactivate")
        self.assertEqual(r.body["status"], "active")

        r = self.server.admin("DELETE", f"/v1/tenants/{t['id']}")
        self.assertStatus(r, 204, "delete tenant")
        # 204 has no content: no Content-Type claiming JSON, no Content-Length (RFC 9110 8.6).
        self.assertIsNone(r.headers.get("Content-Type"), "204 with a Content-Type")
        self.assertIsNone(r.headers.get("Content-Length"), "204 with a Content-Length")
        self.assertEqual(r.body, "", "204 with a body")
        r = self.server.admin("GET", f"/v1/tenants/{t['id']}")
        self.assertError(r, 404, "not_found", what="get deleted tenant")
        r = self.server.admin("DELETE", f"/v1/tenants/{t['id']}")
        self.assertError(r, 404, "not_found", what="delete deleted tenant")
        r = self.server.admin("PATCH", f"/v1/tenants/{t['id']}", {"name": "zombie"})
        self.assertError(r, 404, "not_found", what="patch deleted tenant")

    def test_slug_rules_and_conflict(self):
        for bad in ("", "-lead", "Upper", "has space", "under_score", "a" * 64, "é", "a.b"):
            with self.subTest(slug=bad):
                r = self.post("/v1/tenants", {"name": "x", "slug": bad})
                self.assertError(r, 400, BAD, mentions="slug", what=repr(bad))
        ok = "9" + secrets.token_hex(31)[:62]
        self.assertEqual(len(ok), 63)
        self.assertStatus(self.post("/v1/tenants", {"name": "x", "slug": ok}), 201, "63-char slug")
        r = self.post("/v1/tenants", {"name": "other", "slug": ok})
        self.assertError(r, 409, "conflict", what="duplicate slug")
        r = self.post("/v1/tenants", {"name": "x", "slug": "s-" + secrets.token_hex(3),
                                      "plan": "gold"})
        self.assertError(r, 400, BAD, mentions="plan", what="unknown field")
        r = self.post("/v1/tenants", {"slug": "s-" + secrets.token_hex(3)})
        self.assertError(r, 400, BAD, mentions="name", what="missing name")

    def test_pagination(self):
        # Own server: pagination must see exactly these five tenants.
        with ParleyServer() as srv:
            ids = [srv.create_tenant(slug=f"page-{i}")["id"] for i in range(5)]
            seen, cursor, pages = [], None, 0
            while True:
                path = "/v1/tenants?limit=2" + (f"&cursor={cursor}" if cursor else "")
                r = srv.admin("GET", path)
                self.assertStatus(r, 200, path, srv)
                self.assertIn("data", r.body)
                self.assertIn("next_cursor", r.body)
                pages += 1
                self.assertLessEqual(len(r.body["data"]), 2)
                seen += [t["id"] for t in r.body["data"]]
                cursor = r.body["next_cursor"]
                if cursor is None:
                    break
                self.assertIsInstance(cursor, str)
                self.assertLess(pages, 10, "pagination does not end")
            self.assertEqual(pages, 3)
            self.assertEqual(sorted(seen), sorted(ids), "every tenant exactly once")
            self.assertEqual(len(seen), len(set(seen)))
            r = srv.admin("GET", "/v1/tenants")
            self.assertEqual(len(r.body["data"]), 5)
            self.assertIsNone(r.body["next_cursor"])
            r = srv.admin("GET", "/v1/tenants?limit=500")
            self.assertStatus(r, 200, "limit=500", srv)
            for bad in ("0", "501", "-1", "abc", "2.5", ""):
                with self.subTest(limit=bad):
                    r = srv.admin("GET", f"/v1/tenants?limit={bad}")
                    self.assertError(r, 400, BAD, mentions="limit", srv=srv)
            r = srv.admin("GET", "/v1/tenants?cursor=not-a-cursor")
            self.assertError(r, 400, BAD, mentions="cursor", srv=srv)

    # Regression: the actor activated for an unknown tenant ends at once; a request reaching it
    # just after it ended was answered 503 upstream_timeout (seen in a clean-clone CI run).
    def test_unknown_tenant_is_always_404(self):
        tid = str(uuid.uuid4())
        errors = []

        def hammer():
            for _ in range(40):
                r = self.server.admin("GET", f"/v1/tenants/{tid}")
                if r.status != 404:
                    errors.append(r.describe())

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [], "an unknown tenant was not always 404")

    def test_unknown_and_malformed_tenant_ids(self):
        for tid in ("00000000-0000-0000-0000-000000000000", "not-a-uuid", "123",
                    "00000000-0000-0000-0000-00000000000g"):
            for method, suffix, body in (("GET", "", None), ("PATCH", "", {"name": "n"}),
                                         ("DELETE", "", None), ("GET", "/api-keys", None),
                                         ("POST", "/api-keys", {"name": "k"}),
                                         ("POST", "/channels", channel_body())):
                with self.subTest(id=tid, method=method, suffix=suffix):
                    r = self.server.admin(method, f"/v1/tenants/{tid}{suffix}", body)
                    self.assertError(r, 404, "not_found")
        r = self.server.admin("GET", "/v1/tenants/not-a-uuid/channels")
        self.assertError(r, 404, "not_found")

    def test_channels_of_unknown_tenant_is_404(self):
        r = self.server.admin("GET", "/v1/tenants/00000000-0000-0000-0000-000000000000/channels")
        self.assertError(r, 404, "not_found")

    def test_api_keys(self):
        t = self.server.create_tenant()
        r = self.post(f"/v1/tenants/{t['id']}/api-keys", {"name": "ci"})
        self.assertStatus(r, 201, "create key")
        k = r.body
        for field in ("id", "name", "prefix", "created_at", "key"):
            self.assertIn(field, k)
        self.assertEqual(k["name"], "ci")
        self.assertTrue(k["key"].startswith(k["prefix"]), k)
        self.assertGreaterEqual(len(k["key"]), 24)
        self.assertLess(len(k["prefix"]), len(k["key"]))

        r = self.server.admin("GET", f"/v1/tenants/{t['id']}/api-keys")
        self.assertStatus(r, 200, "list keys")
        rows = r.body["data"] if isinstance(r.body, dict) else r.body
        self.assertEqual([x["id"] for x in rows], [k["id"]])
        self.assertNotIn("key", rows[0])
        self.assertNotIn(k["key"], str(r.body))
        self.assertNotIn("key_hash", rows[0])

        stored = self.server.sql(f"SELECT key_hash FROM api_keys WHERE id = '{k['id']}'")
        self.assertTrue(stored)
        self.assertNotEqual(stored, k["key"])
        self.assertNotIn(k["key"], stored)
        self.assertEqual(self.server.sql(f"SELECT count(*) FROM api_keys WHERE key_hash LIKE "
                                         f"'%{k['key']}%' OR prefix = '{k['key']}'"), "0")

        # The key works, then is revoked and stops working.
        r = self.server.request("GET", "/v1/channels", token=k["key"])
        self.assertStatus(r, 200, "key works")
        r = self.server.admin("DELETE", f"/v1/tenants/{t['id']}/api-keys/{k['id']}")
        self.assertStatus(r, 204, "revoke")
        r = self.server.request("GET", "/v1/channels", token=k["key"])
        self.assertError(r, 401, "unauthorized", what="revoked key")
        r = self.server.admin("DELETE", f"/v1/tenants/{t['id']}/api-keys/"
                                        "00000000-0000-0000-0000-000000000000")
        self.assertError(r, 404, "not_found", what="revoke unknown key")
        r = self.server.admin("DELETE", f"/v1/tenants/{t['id']}/api-keys/nope")
        self.assertError(r, 404, "not_found", what="revoke malformed key id")
        # Another tenant cannot revoke this tenant's key through its own path.
        k2 = self.server.create_api_key(t["id"], "second")
        other = self.server.create_tenant()
        r = self.server.admin("DELETE", f"/v1/tenants/{other['id']}/api-keys/{k2['id']}")
        self.assertError(r, 404, "not_found", what="revoke via another tenant")
        self.assertStatus(self.server.request("GET", "/v1/channels", token=k2["key"]), 200,
                          "key still valid")
        r = self.post(f"/v1/tenants/{t['id']}/api-keys", {})
        self.assertError(r, 400, BAD, mentions="name")

    def test_api_keys_are_listed_a_page_at_a_time(self):
        t = self.server.create_tenant()
        made = [self.server.create_api_key(t["id"], f"key-{n}")["id"] for n in range(5)]
        revoked = made[1]
        self.assertStatus(self.server.admin("DELETE", f"/v1/tenants/{t['id']}/api-keys/{revoked}"),
                          204, "revoke")
        other = self.server.create_tenant()
        self.server.create_api_key(other["id"], "other tenant's")
        seen, cursor = [], None
        for _ in range(5):
            path = f"/v1/tenants/{t['id']}/api-keys?limit=2"
            if cursor:
                path += f"&cursor={cursor}"
            r = self.server.admin("GET", path)
            self.assertStatus(r, 200, "page")
            self.assertLessEqual(len(r.body["data"]), 2)
            seen += r.body["data"]
            cursor = r.body["next_cursor"]
            if cursor is None:
                break
        # Oldest first, every key once, revoked ones included, no other tenant's, no secrets.
        self.assertEqual([k["id"] for k in seen], made)
        self.assertIsNotNone(next(k for k in seen if k["id"] == revoked)["revoked_at"])
        for k in seen:
            self.assertEqual(sorted(k), ["created_at", "id", "name", "prefix", "revoked_at"])
        r = self.server.admin("GET", f"/v1/tenants/{t['id']}/api-keys?limit=0")
        self.assertError(r, 400, BAD, mentions="limit")
        r = self.server.admin("GET", f"/v1/tenants/{t['id']}/api-keys?cursor=not-a-cursor")
        self.assertError(r, 400, BAD, mentions="cursor")

    def test_suspended_tenant_key_is_rejected(self):
        t = self.server.create_tenant()
        k = self.server.create_api_key(t["id"])
        self.assertStatus(self.server.request("GET", "/v1/channels", token=k["key"]), 200, "active")
        self.assertStatus(self.server.admin("PATCH", f"/v1/tenants/{t['id']}",
                                            {"status": "suspended"}), 200, "suspend")
        r = self.server.request("GET", "/v1/channels", token=k["key"])
        self.assertError(r, 401, what="suspended tenant's key")
        self.assertStatus(self.server.admin("PATCH", f"/v1/tenants/{t['id']}",
                                            {"status": "active"}), 200, "reactivate")
        self.assertStatus(self.server.request("GET", "/v1/channels", token=k["key"]), 200,
                          "reactivated")

    def test_channels_and_secrets_at_rest(self):
        t = self.server.create_tenant()
        token = "EAAG-plain-" + secrets.token_hex(20)
        app_secret = "appsecret-plain-" + secrets.token_hex(12)
        body = channel_body(access_token=token, app_secret=app_secret,
                            graph_base_url="http://127.0.0.1:9/graph", throughput_mps=20)
        r = self.post(f"/v1/tenants/{t['id']}/channels", body)
        self.assertStatus(r, 201, "create channel")
        ch = r.body
        self.assertRegex(ch["id"], UUID)
        for field in ("phone_number_id", "waba_id", "display_phone_number"):
            self.assertEqual(ch[field], body[field])
        self.assertEqual(ch.get("type"), "whatsapp_cloud")
        self.assertIs(ch.get("has_app_secret"), True)
        self.assertEqual(ch.get("throughput_mps"), 20)
        self.assertNotIn("access_token", ch)
        self.assertNotIn("app_secret", ch)
        for secret in (token, app_secret):
            self.assertNotIn(secret, r.body.__repr__())

        # Without app secret and with defaults.
        body2 = channel_body()
        r = self.post(f"/v1/tenants/{t['id']}/channels", body2)
        self.assertStatus(r, 201, "second channel")
        self.assertIs(r.body.get("has_app_secret"), False)
        ch2 = r.body

        # Duplicate phone_number_id, even for another tenant.
        other = self.server.create_tenant()
        r = self.post(f"/v1/tenants/{other['id']}/channels",
                      channel_body(phone_number_id=body["phone_number_id"]))
        self.assertError(r, 409, "conflict", what="duplicate phone_number_id")

        r = self.server.admin("GET", f"/v1/tenants/{t['id']}/channels")
        self.assertStatus(r, 200, "list channels")
        self.assertEqual(sorted(c["id"] for c in r.body["data"]), sorted([ch["id"], ch2["id"]]))
        for c in r.body["data"]:
            self.assertNotIn("access_token", c)
            self.assertNotIn("app_secret", c)
        self.assertNotIn(token, str(r.body))
        self.assertNotIn(app_secret, str(r.body))

        # The tenant's own view through an API key hides secrets too.
        k = self.server.create_api_key(t["id"])
        for path in ("/v1/channels", f"/v1/channels/{ch['id']}"):
            r = self.server.request("GET", path, token=k["key"])
            self.assertStatus(r, 200, path)
            self.assertNotIn(token, str(r.body))
            self.assertNotIn(app_secret, str(r.body))
        r = self.server.request("GET", f"/v1/channels/{ch['id']}", token=k["key"])
        self.assertIn(r.body.get("state"), ("connected", "degraded", "disconnected",
                                            "token_invalid"))

        row = self.server.sql(f"SELECT access_token_enc || '|' || app_secret_enc FROM channels "
                              f"WHERE id = '{ch['id']}'")
        tok_enc, sec_enc = row.split("|")
        for enc, plain in ((tok_enc, token), (sec_enc, app_secret)):
            self.assertTrue(enc.startswith("v1:"), enc)
            self.assertNotIn(plain, enc)
            self.assertGreater(len(enc), len("v1:") + 12 + 16)
        self.assertEqual(self.server.sql(
            f"SELECT count(*) FROM channels WHERE access_token_enc LIKE '%{token}%' "
            f"OR app_secret_enc LIKE '%{app_secret}%'"), "0")

        # Field validation.
        for bad, field in ((channel_body(phone_number_id="+1 555"), "phone_number_id"),
                           (channel_body(waba_id="waba-1"), "waba_id"),
                           (channel_body(type="twilio"), "type"),
                           (channel_body(throughput_mps=0), "throughput_mps"),
                           (channel_body(throughput_mps=1001), "throughput_mps"),
                           (channel_body(throughput_mps="80"), "throughput_mps"),
                           (channel_body(graph_base_url="ftp://x"), "graph_base_url"),
                           (channel_body(access_token=""), "access_token"),
                           (channel_body(display_phone_number=None), "display_phone_number"),
                           (dict(channel_body(), extra=1), "extra")):
            with self.subTest(field=field, body=bad):
                r = self.post(f"/v1/tenants/{t['id']}/channels", bad)
                self.assertError(r, 400, BAD, mentions=field)

        # Nor do the logs ever show them.
        logs = "\n".join(self.server.stderr_lines + self.server.stdout_lines)
        self.assertNotIn(token, logs)
        self.assertNotIn(app_secret, logs)
        self.assertNotIn(k["key"], logs)

        # Counts show up in the tenant's usage.
        r = self.server.admin("GET", f"/v1/tenants/{t['id']}")
        self.assertEqual(r.body["usage"].get("channels"), 2, r.body)
        self.assertEqual(r.body["usage"].get("api_keys"), 1, r.body)

    def test_concurrent_duplicates_conflict_cleanly(self):
        slug = "race-" + secrets.token_hex(4)
        phone = str(secrets.randbelow(10**15) + 10**14)
        t = self.server.create_tenant()
        results = {"tenant": [], "channel": []}

        def create_tenant():
            results["tenant"].append(self.post("/v1/tenants", {"name": "race", "slug": slug}))

        def create_channel():
            results["channel"].append(self.post(f"/v1/tenants/{t['id']}/channels",
                                                channel_body(phone_number_id=phone)))

        threads = [threading.Thread(target=f) for f in [create_tenant] * 8 + [create_channel] * 8]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=60)
        for kind, rs in results.items():
            statuses = sorted(r.status for r in rs)
            self.assertEqual(statuses, [201] + [409] * 7, f"{kind}: {[r.describe() for r in rs]}")
            for r in rs:
                if r.status == 409:
                    self.assertError(r, 409, "conflict", what=kind)
        self.assertEqual(self.server.sql(f"SELECT count(*) FROM tenants WHERE slug = '{slug}'"),
                         "1")

    def test_parallel_burst(self):
        t = self.server.create_tenant()
        k = self.server.create_api_key(t["id"])
        self.server.create_channel(t["id"])
        out = []

        def worker(i):
            for j in range(5):
                if (i + j) % 3 == 0:
                    out.append(self.server.admin("GET", f"/v1/tenants/{t['id']}"))
                elif (i + j) % 3 == 1:
                    out.append(self.server.request("GET", "/v1/channels", token=k["key"]))
                else:
                    out.append(self.server.admin("POST", "/v1/tenants",
                                                 {"name": "burst", "slug": f"b-{i}-{j}-"
                                                  + secrets.token_hex(3)}))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=120)
        self.assertEqual(len(out), 80)
        bad = [r.describe() for r in out if r.status not in (200, 201)]
        self.assertEqual(bad, [], self.server.logs(20))

    def test_delete_cascades_and_frees_names(self):
        t = self.server.create_tenant()
        ch = self.server.create_channel(t["id"])
        k = self.server.create_api_key(t["id"])
        self.assertStatus(self.server.admin("DELETE", f"/v1/tenants/{t['id']}"), 204, "delete")
        self.assertEqual(self.server.sql(
            f"SELECT (SELECT count(*) FROM channels WHERE tenant_id = '{t['id']}') + "
            f"(SELECT count(*) FROM api_keys WHERE tenant_id = '{t['id']}')"), "0")
        # Slug and phone number can be used again; the new tenant is a different one.
        t2 = self.server.create_tenant(slug=t["slug"])
        self.assertNotEqual(t2["id"], t["id"])
        self.server.create_channel(t2["id"], phone_number_id=ch["phone_number_id"])
        r = self.server.request("GET", "/v1/channels", token=k["key"])
        self.assertError(r, 401, "unauthorized", what="key of the deleted tenant")

    def test_unicode_round_trip(self):
        name = "Café Ünïcødé 🚀 \"quoted\" \\ back"
        t = self.server.create_tenant(name=name)
        self.assertEqual(t["name"], name)
        r = self.server.admin("GET", f"/v1/tenants/{t['id']}")
        self.assertEqual(r.body["name"], name)

    def test_name_limit_counts_characters(self):
        t = self.server.create_tenant()
        r = self.server.admin("PATCH", f"/v1/tenants/{t['id']}", {"name": "ж" * 200})
        self.assertStatus(r, 200, "200 characters of Cyrillic")
        self.assertEqual(r.body["name"], "ж" * 200)

    def test_request_id(self):
        r = self.server.admin("GET", "/v1/tenants", headers={"X-Request-Id": "it-req-42"})
        self.assertEqual(r.headers.get("X-Request-Id"), "it-req-42")
        r = self.server.request("GET", "/nope", headers={"X-Request-Id": "it-req-43"})
        self.assertEqual(r.status, 404)
        self.assertEqual(r.headers.get("X-Request-Id"), "it-req-43")
        r = self.server.request("POST", "/v1/tenants", {"name": "x"},
                                headers={"X-Request-Id": "it-req-44"})
        self.assertEqual(r.status, 401)
        self.assertEqual(r.headers.get("X-Request-Id"), "it-req-44")
        a = self.server.admin("GET", "/v1/tenants").headers.get("X-Request-Id")
        b = self.server.admin("GET", "/v1/tenants").headers.get("X-Request-Id")
        self.assertTrue(a and b)
        self.assertNotEqual(a, b, "generated request ids must differ")
        # Unsafe ids are replaced, never echoed into headers and logs.
        for unsafe in ("x" * 300, "has space", "tab\tchar"):
            with self.subTest(unsafe=unsafe[:20]):
                r = self.server.request("GET", "/health/live", headers={"X-Request-Id": unsafe})
                got = r.headers.get("X-Request-Id")
                self.assertTrue(got)
                self.assertNotEqual(got, unsafe)

    def test_actor_tree(self):
        r = self.server.admin("GET", "/v1/admin/actors")
        self.assertStatus(r, 200, "actors")
        self.assertIsInstance(r.body.get("count"), int)
        self.assertEqual(r.body["count"], len(r.body["actors"]))
        for a in r.body["actors"]:
            for field in ("kind", "id", "path", "parent", "state", "mailbox", "restarts",
                          "idle_ms", "uptime_s"):
                self.assertIn(field, a, a)
        paths = {a["path"] for a in r.body["actors"]}
        for a in r.body["actors"]:
            if a["parent"] is not None:
                self.assertIn(a["parent"], paths, f"parent of {a['path']} is not in the tree")
        self.assertTrue(any(a["parent"] is None for a in r.body["actors"]), "no root")

        t = self.server.create_tenant()
        self.assertStatus(self.server.admin("GET", f"/v1/tenants/{t['id']}"), 200, "touch")
        r = self.server.admin("GET", "/v1/admin/actors")
        tenants = [a for a in r.body["actors"] if a["kind"] == "tenant" and a["id"] == t["id"]]
        self.assertEqual(len(tenants), 1, r.body)
        self.assertEqual(tenants[0]["state"], "running", tenants[0])
        self.assertIn(tenants[0]["parent"], paths | {a["path"] for a in r.body["actors"]})
        # Deleting the tenant stops its actor.
        self.assertStatus(self.server.admin("DELETE", f"/v1/tenants/{t['id']}"), 204, "delete")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            r = self.server.admin("GET", "/v1/admin/actors")
            if not any(a["kind"] == "tenant" and a["id"] == t["id"] for a in r.body["actors"]):
                break
            time.sleep(0.05)
        else:
            self.fail(f"tenant actor {t['id']} still alive after DELETE: {r.body}")


if __name__ == "__main__":
    unittest.main()
