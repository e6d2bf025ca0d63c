"""Plan limits per tenant: plans (free, standard, enterprise) with per-tenant overrides, usage in
GET /v1/tenants/{id}, and a clear 403 `plan_limit_exceeded` naming the limit when a tenant would
go over it."""
import secrets
import unittest

from harness import BAD, ParleyTestCase, channel_body, import_fake, require_environment
from webhook_fixtures import post_webhook, text_body

setUpModule = require_environment


class PlanLimitsTest(ParleyTestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def tenant(self, **body):
        srv = self.server
        slug = "p-" + __import__("secrets").token_hex(5)
        r = srv.admin("POST", "/v1/tenants", dict({"name": "Plan test", "slug": slug}, **body))
        self.assertStatus(r, 201, "create tenant")
        return r.body

    def get(self, tid):
        r = self.server.admin("GET", f"/v1/tenants/{tid}")
        self.assertStatus(r, 200)
        return r.body

    def test_default_plan_limits_and_usage_are_shown(self):
        t = self.tenant()
        self.assertEqual(t["plan"], "standard")
        for key in ("channels", "messages_per_month", "users", "api_rps", "api_burst"):
            self.assertIn(key, t["limits"])
        self.assertEqual(t["limit_overrides"], {})
        self.assertEqual(t["usage"], {"channels": 0, "users": 0, "messages_this_month": 0,
                                      "api_keys": 0})
        self.server.create_channel(t["id"])
        self.server.create_api_key(t["id"])
        usage = self.get(t["id"])["usage"]
        self.assertEqual((usage["channels"], usage["api_keys"]), (1, 1))

    def test_channel_limit_is_enforced_with_a_clear_error(self):
        t = self.tenant(plan="free")
        self.assertEqual(t["plan"], "free")
        self.assertEqual(t["limits"]["channels"], 1)
        self.server.create_channel(t["id"])
        r = self.server.admin("POST", f"/v1/tenants/{t['id']}/channels", channel_body())
        self.assertError(r, 403, "plan_limit_exceeded", what="second channel on free")
        self.assertIn("'channels'", r.body["error"]["message"])
        self.assertIn("(1)", r.body["error"]["message"])
        self.assertEqual(self.get(t["id"])["usage"]["channels"], 1)
        # An override raises it for this tenant alone.
        r = self.server.admin("PATCH", f"/v1/tenants/{t['id']}", {"limits": {"channels": 2}})
        self.assertStatus(r, 200)
        self.assertEqual(r.body["limits"]["channels"], 2)
        self.assertEqual(r.body["limit_overrides"], {"channels": 2})
        self.server.create_channel(t["id"])
        r = self.server.admin("POST", f"/v1/tenants/{t['id']}/channels", channel_body())
        self.assertError(r, 403, "plan_limit_exceeded")
        # A bigger plan without overrides: unlimited (null).
        r = self.server.admin("PATCH", f"/v1/tenants/{t['id']}",
                              {"plan": "enterprise", "limits": None})
        self.assertStatus(r, 200)
        self.assertIsNone(r.body["limits"]["channels"])
        self.assertEqual(r.body["limit_overrides"], {})
        self.server.create_channel(t["id"])

    def test_user_limit_is_enforced_and_deleted_users_free_their_place(self):
        t = self.tenant(limits={"users": 1})

        def new_user():
            return self.server.admin("POST", f"/v1/tenants/{t['id']}/users",
                                     {"email": f"u-{secrets.token_hex(4)}@example.com",
                                      "password": "pw-" + secrets.token_hex(12),
                                      "role": "agent"})

        first = new_user()
        self.assertStatus(first, 201, "first user")
        r = new_user()
        self.assertError(r, 403, "plan_limit_exceeded", what="second user over users=1")
        self.assertIn("'users'", r.body["error"]["message"])
        self.assertEqual(self.get(t["id"])["usage"]["users"], 1)
        r = self.server.admin("DELETE", f"/v1/users/{first.body['id']}")
        self.assertIn(r.status, (200, 204), r.describe())
        self.assertEqual(self.get(t["id"])["usage"]["users"], 0)
        self.assertStatus(new_user(), 201, "a user in the freed place")

    def test_bad_plans_and_limits_are_400_naming_the_field(self):
        t = self.tenant()
        cases = [
            ({"plan": "platinum"}, "plan"),
            ({"limits": {"channels": -1}}, "limits.channels"),
            ({"limits": {"channelz": 1}}, "limits.channelz"),
            ({"limits": {"api_rps": 0}}, "limits.api_rps"),
            ({"limits": {"api_burst": 0.5}}, "limits.api_burst"),
            ({"limits": {"users": "many"}}, "limits.users"),
            ({"limits": [1]}, "limits"),
        ]
        for body, field in cases:
            r = self.server.admin("PATCH", f"/v1/tenants/{t['id']}", body)
            self.assertError(r, 400, BAD, what=str(body))
            self.assertIn(field, r.body["error"]["message"], str(body))
        r = self.server.admin("POST", "/v1/tenants", {"name": "x", "slug": "p-bad-plan",
                                                      "plan": "nope"})
        self.assertError(r, 400, BAD)
        self.assertIn("free, ", r.body["error"]["message"])  # lists the plans that exist

    def test_monthly_message_allowance(self):
        # POST /v1/messages takes from the allowance through parley_take_messages(); the
        # counter and its limit are checked here directly.
        t = self.tenant(limits={"messages_per_month": 3})
        take = lambda n: self.server.sql(f"SELECT parley_take_messages('{t['id']}', {n})")
        self.assertEqual(take(2), "t")
        self.assertEqual(take(2), "f")  # would make 4 > 3: nothing taken
        self.assertEqual(take(1), "t")
        self.assertEqual(take(1), "f")
        self.assertEqual(self.get(t["id"])["usage"]["messages_this_month"], 3)
        unlimited = self.tenant(plan="enterprise")
        self.assertEqual(self.server.sql(
            f"SELECT parley_take_messages('{unlimited['id']}', 1000000)"), "t")


class OutboundAllowanceTest(ParleyTestCase):
    """messages_per_month on POST /v1/messages against the fake Graph API."""

    APP_SECRET = "allowance-" + secrets.token_hex(6)

    @classmethod
    def setUpClass(cls):
        cls.fake = import_fake("fake_graph").FakeGraph().start()
        cls.addClassCleanup(cls.fake.stop)
        cls.server = cls.start_server(env={"PARLEY_WHATSAPP_APP_SECRET": cls.APP_SECRET})

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def template(self, key, channel_id, cmid=None):
        body = {"channel_id": channel_id, "to": "15550123", "type": "template",
                "template": {"name": "order_update", "language": {"code": "en_US"},
                             "components": [{"type": "body", "parameters": [
                                 {"type": "text", "text": "order 1"}]}]}}
        if cmid:
            body["client_message_id"] = cmid
        return self.server.request("POST", "/v1/messages", body, token=key)

    def test_the_monthly_allowance_refuses_outbound_and_never_inbound(self):
        srv = self.server
        t = srv.create_tenant()
        srv.admin("PATCH", f"/v1/tenants/{t['id']}", {"limits": {"messages_per_month": 2}})
        key = srv.create_api_key(t["id"])["key"]
        pnid = str(secrets.randbelow(10**14) + 10**14)
        token = "EAAG-" + secrets.token_hex(20)
        self.fake.set_token(pnid, token)
        chan = srv.create_channel(t["id"], phone_number_id=pnid, access_token=token,
                                  graph_base_url=self.fake.url)["id"]
        self.assertStatus(self.template(key, chan, "first"), 202)
        self.assertStatus(self.template(key, chan), 202)
        r = self.template(key, chan)
        self.assertError(r, 403, "plan_limit_exceeded", what="third message of 2")
        self.assertIn("messages_per_month", r.body["error"]["message"])
        # A retry of an accepted message is the same message, not a new one: still answered.
        self.assertStatus(self.template(key, chan, "first"), 200)
        usage = srv.admin("GET", f"/v1/tenants/{t['id']}").body["usage"]
        self.assertEqual(usage["messages_this_month"], 2)
        # Inbound is never limited.
        for i in range(3):
            r = post_webhook(srv, text_body(pnid, "15550123", f"in {i}"), self.APP_SECRET)
            self.assertStatus(r, 200, f"inbound {i}")
        # Raising the limit lets sending resume.
        srv.admin("PATCH", f"/v1/tenants/{t['id']}", {"limits": {"messages_per_month": 3}})
        self.assertStatus(self.template(key, chan), 202)


if __name__ == "__main__":
    unittest.main()
