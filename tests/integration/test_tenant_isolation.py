"""A tenant's API key sees its own tenant only: lists are disjoint and the other tenant's ids
answer 404, exactly as ids that never existed. The sweep calls every tenant-scoped endpoint with
the other tenant's credentials."""
import json
import unittest

from harness import ParleyServer, ParleyTestCase, require_environment

setUpModule = require_environment


class TenantIsolationTest(ParleyTestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server()
        srv = cls.server
        cls.a = srv.create_tenant(name="Alpha")
        cls.b = srv.create_tenant(name="Bravo")
        cls.key_a = srv.create_api_key(cls.a["id"], "alpha key")["key"]
        cls.key_b = srv.create_api_key(cls.b["id"], "bravo key")["key"]
        cls.chan_a = [srv.create_channel(cls.a["id"])["id"] for _ in range(3)]
        cls.chan_b = [srv.create_channel(cls.b["id"])["id"] for _ in range(2)]

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def list_all(self, key, limit=None):
        ids, cursor = [], None
        for _ in range(20):
            path = "/v1/channels"
            params = []
            if limit:
                params.append(f"limit={limit}")
            if cursor:
                params.append(f"cursor={cursor}")
            if params:
                path += "?" + "&".join(params)
            r = self.server.request("GET", path, token=key)
            self.assertStatus(r, 200, path)
            ids += [c["id"] for c in r.body["data"]]
            cursor = r.body["next_cursor"]
            if cursor is None:
                return ids
        self.fail("pagination does not end")

    def test_each_tenant_lists_only_its_channels(self):
        self.assertEqual(sorted(self.list_all(self.key_a)), sorted(self.chan_a))
        self.assertEqual(sorted(self.list_all(self.key_b)), sorted(self.chan_b))
        # Paging through small pages never leaks either.
        self.assertEqual(sorted(self.list_all(self.key_a, limit=1)), sorted(self.chan_a))
        self.assertEqual(sorted(self.list_all(self.key_b, limit=1)), sorted(self.chan_b))

    def test_channel_fields_belong_to_the_tenant(self):
        r = self.server.request("GET", "/v1/channels", token=self.key_a)
        for c in r.body["data"]:
            if "tenant_id" in c:
                self.assertEqual(c["tenant_id"], self.a["id"])

    def test_own_channel_by_id(self):
        for key, ids in ((self.key_a, self.chan_a), (self.key_b, self.chan_b)):
            for cid in ids:
                r = self.server.request("GET", f"/v1/channels/{cid}", token=key)
                self.assertStatus(r, 200, cid)
                self.assertEqual(r.body["id"], cid)

    def test_other_tenants_channel_is_404(self):
        never = "00000000-0000-0000-0000-000000000000"
        for key, foreign in ((self.key_a, self.chan_b), (self.key_b, self.chan_a)):
            for cid in foreign:
                r = self.server.request("GET", f"/v1/channels/{cid}", token=key)
                self.assertError(r, 404, "not_found", what=f"foreign channel {cid}")
                # Indistinguishable from an id that never existed.
                r2 = self.server.request("GET", f"/v1/channels/{never}", token=key)
                self.assertEqual(r.body["error"]["code"], r2.body["error"]["code"])
                self.assertEqual(r.body["error"]["message"].replace(cid, never),
                                 r2.body["error"]["message"])
                # Upper-casing the id does not get around the check.
                r3 = self.server.request("GET", f"/v1/channels/{cid.upper()}", token=key)
                self.assertError(r3, 404, "not_found", what="upper-case foreign id")

    def test_tenant_key_cannot_use_admin_routes(self):
        for path in ("/v1/tenants", f"/v1/tenants/{self.b['id']}", f"/v1/tenants/{self.a['id']}",
                     f"/v1/tenants/{self.b['id']}/channels", "/v1/admin/actors"):
            r = self.server.request("GET", path, token=self.key_a)
            self.assertIn(r.status, (401, 403), f"{path}: {r.describe()}")
        r = self.server.request("POST", f"/v1/tenants/{self.a['id']}/api-keys", {"name": "x"},
                                token=self.key_a)
        self.assertIn(r.status, (401, 403), r.describe())

    def test_admin_views_are_per_tenant(self):
        r = self.server.admin("GET", f"/v1/tenants/{self.a['id']}/channels")
        self.assertEqual(sorted(c["id"] for c in r.body["data"]), sorted(self.chan_a))
        r = self.server.admin("GET", f"/v1/tenants/{self.b['id']}/api-keys")
        rows = r.body["data"] if isinstance(r.body, dict) else r.body
        self.assertEqual([k["name"] for k in rows], ["bravo key"])

    def test_deleting_one_tenant_leaves_the_other(self):
        c = self.server.create_tenant()
        key_c = self.server.create_api_key(c["id"])["key"]
        chan_c = self.server.create_channel(c["id"])["id"]
        self.assertStatus(self.server.admin("DELETE", f"/v1/tenants/{c['id']}"), 204, "delete")
        r = self.server.request("GET", "/v1/channels", token=key_c)
        self.assertError(r, 401, what="key of a deleted tenant")
        r = self.server.request("GET", f"/v1/channels/{chan_c}", token=self.key_a)
        self.assertError(r, 404, "not_found")
        self.assertEqual(sorted(self.list_all(self.key_a)), sorted(self.chan_a))
        self.assertEqual(sorted(self.list_all(self.key_b)), sorted(self.chan_b))


def seed_conversation(srv, tenant_id: str, channel_id: str, wa_id: str) -> tuple:
    """A conversation with one inbound message, written as the owner; returns (conv, message)."""
    out = srv.sql(f"""
      WITH c AS (INSERT INTO conversations (tenant_id, channel_id, wa_id, last_message_at)
                 VALUES ('{tenant_id}', '{channel_id}', '{wa_id}', now()) RETURNING id),
           m AS (INSERT INTO messages (tenant_id, conversation_id, channel_id, direction, wamid,
                                       type, content, status, from_wa)
                 SELECT '{tenant_id}', id, '{channel_id}', 'inbound', 'wamid.' || id, 'text',
                        '{{"text":{{"body":"secret of {tenant_id}"}}}}', 'received', '{wa_id}'
                 FROM c RETURNING id, conversation_id)
      SELECT conversation_id || '|' || id FROM m""")
    return tuple(out.split("|"))


class EndpointSweepTest(ParleyTestCase):
    """Every tenant-scoped endpoint, called with tenant A's key on tenant B's objects, answers
    404 (or 401/403 for admin routes) and never shows B's data; lists never contain B's ids."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server()
        srv = cls.server
        cls.a = srv.create_tenant(name="Alpha")
        cls.b = srv.create_tenant(name="Bravo")
        cls.key_a = srv.create_api_key(cls.a["id"])["key"]
        cls.key_b = srv.create_api_key(cls.b["id"])["key"]
        cls.chan_a = srv.create_channel(cls.a["id"])["id"]
        cls.chan_b = srv.create_channel(cls.b["id"])["id"]
        cls.conv_a, cls.msg_a = seed_conversation(srv, cls.a["id"], cls.chan_a, "15550101")
        cls.conv_b, cls.msg_b = seed_conversation(srv, cls.b["id"], cls.chan_b, "15550202")
        cls.b_ids = {cls.b["id"], cls.chan_b, cls.conv_b, cls.msg_b}

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def assertNoLeak(self, r, what, asked=""):
        """Nothing of tenant B in the answer, except the id the caller asked for itself."""
        text = json.dumps(r.body) if not isinstance(r.body, str) else r.body
        for secret in self.b_ids - {asked} | {f"secret of {self.b['id']}"}:
            self.assertNotIn(secret, text, f"{what}: leaked {secret}: {r.describe()}")

    def test_foreign_objects_are_404(self):
        calls = [
            ("GET", f"/v1/channels/{self.chan_b}", None),
            ("GET", f"/v1/conversations/{self.conv_b}", None),
            ("PATCH", f"/v1/conversations/{self.conv_b}", {"status": "resolved"}),
            ("GET", f"/v1/conversations/{self.conv_b}/messages", None),
            ("GET", f"/v1/messages/{self.msg_b}", None),
            ("GET", f"/v1/messages/{self.msg_b}/attempts", None),
            ("PATCH", f"/v1/channels/{self.chan_b}", {"throughput_mps": 5}),
            ("POST", "/v1/messages", {"channel_id": self.chan_b, "to": "15550202",
                                      "type": "text", "text": {"body": "hi"}}),
        ]
        for method, path, body in calls:
            r = self.server.request(method, path, body, token=self.key_a)
            self.assertError(r, 404, "not_found", what=f"{method} {path}")
            asked = body["channel_id"] if body and "channel_id" in body else path.split("/")[3]
            self.assertNoLeak(r, f"{method} {path}", asked=asked)
        # The refused writes changed nothing.
        self.assertEqual(self.server.sql(f"SELECT status FROM conversations "
                                         f"WHERE id = '{self.conv_b}'"), "open")
        self.assertEqual(self.server.sql(f"SELECT throughput_mps FROM channels "
                                         f"WHERE id = '{self.chan_b}'"), "80")
        self.assertEqual(self.server.sql(f"SELECT count(*) FROM messages "
                                         f"WHERE tenant_id = '{self.b['id']}'"), "1")

    def test_lists_never_contain_foreign_ids(self):
        for path in ("/v1/channels", "/v1/conversations", "/v1/conversations?status=open",
                     f"/v1/conversations?channel_id={self.chan_b}",
                     f"/v1/conversations/{self.conv_a}/messages",
                     "/v1/conversations?order=asc&limit=1"):
            r = self.server.request("GET", path, token=self.key_a)
            self.assertStatus(r, 200, path)
            self.assertNoLeak(r, path)
        r = self.server.request("GET", f"/v1/conversations?channel_id={self.chan_b}",
                                token=self.key_a)
        self.assertEqual(r.body["data"], [])
        # The own objects are there (the sweep would prove nothing on empty answers).
        r = self.server.request("GET", "/v1/conversations", token=self.key_a)
        self.assertEqual([c["id"] for c in r.body["data"]], [self.conv_a])
        r = self.server.request("GET", f"/v1/messages/{self.msg_a}", token=self.key_a)
        self.assertStatus(r, 200)

    def test_admin_routes_refuse_tenant_keys(self):
        calls = [
            ("GET", "/v1/tenants", None),
            ("POST", "/v1/tenants", {"name": "x", "slug": "x-sweep"}),
            ("GET", f"/v1/tenants/{self.b['id']}", None),
            ("PATCH", f"/v1/tenants/{self.b['id']}", {"name": "pwned"}),
            ("DELETE", f"/v1/tenants/{self.b['id']}", None),
            ("POST", f"/v1/tenants/{self.b['id']}/api-keys", {"name": "x"}),
            ("GET", f"/v1/tenants/{self.b['id']}/api-keys", None),
            ("POST", f"/v1/tenants/{self.b['id']}/channels", {}),
            ("GET", f"/v1/tenants/{self.b['id']}/channels", None),
            ("GET", "/v1/admin/actors", None),
        ]
        for method, path, body in calls:
            r = self.server.request(method, path, body, token=self.key_a)
            self.assertIn(r.status, (401, 403), f"{method} {path}: {r.describe()}")
            self.assertIsNotNone(r.error_code(), f"{method} {path}: JSON error body")
            self.assertNoLeak(r, f"{method} {path}", asked=self.b["id"])
        self.assertEqual(self.server.sql(f"SELECT name FROM tenants WHERE id = '{self.b['id']}'"),
                         "Bravo")

    def test_missing_or_bad_credentials_are_401_with_a_json_body(self):
        for token in (None, "", "not-a-key", self.key_a + "x"):
            r = self.server.request("GET", f"/v1/conversations/{self.conv_b}", token=token)
            self.assertError(r, 401, "unauthorized", what=f"token {token!r}")
            self.assertNoLeak(r, "bad credentials", asked=self.conv_b)


if __name__ == "__main__":
    unittest.main()
