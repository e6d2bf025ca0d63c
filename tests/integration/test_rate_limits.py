"""API rate limits: token buckets per API key and per tenant from the tenant's plan (429 with
Retry-After and the JSON error body); per client IP for failed authentication only, so forged
credentials are refused cheaply while Meta's well-signed webhooks are never throttled; shared
across nodes through Redis, and still serving when Redis goes away."""
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import (ParleyServer, ParleyTestCase, ScratchDatabase, free_port, require_environment)
from webhook_fixtures import metric, post_webhook, text_body, wait_until

setUpModule = require_environment

APP_SECRET = "rate-limit-app-secret"
# Loopback is the trusted proxy, so each test picks its client address with X-Forwarded-For.
BASE_ENV = {
    "PARLEY_HTTP_TRUSTED_PROXIES": "127.0.0.1",
    "PARLEY_RATELIMIT_IP_FAILURE_BURST": "5",
    "PARLEY_RATELIMIT_IP_FAILURES_PER_MINUTE": "1",
    "PARLEY_WHATSAPP_APP_SECRET": APP_SECRET,
}


def from_ip(ip: str) -> dict:
    return {"X-Forwarded-For": ip}


class RateLimitTestCase(ParleyTestCase):
    def assertRateLimited(self, r, what=""):
        self.assertError(r, 429, "rate_limited", what=what)
        retry = r.headers.get("Retry-After")
        self.assertIsNotNone(retry, f"{what}: no Retry-After")
        self.assertTrue(retry.isdigit() and int(retry) >= 1, f"{what}: Retry-After {retry!r}")

    def tenant_with_key(self, srv, **limits):
        t = srv.create_tenant()
        if limits:
            r = srv.admin("PATCH", f"/v1/tenants/{t['id']}", {"limits": limits})
            self.assertStatus(r, 200, "set limits")
        return t, srv.create_api_key(t["id"])["key"]


class LocalRateLimitTest(RateLimitTestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(env=BASE_ENV)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_per_key_limit_then_429_and_other_tenants_unaffected(self):
        srv = self.server
        t, key = self.tenant_with_key(srv, api_rps=0.01, api_burst=3)
        _, other = self.tenant_with_key(srv)
        for i in range(3):
            self.assertStatus(srv.request("GET", "/v1/channels", token=key), 200, f"request {i}")
        r = srv.request("GET", "/v1/channels", token=key)
        self.assertRateLimited(r, "4th request of a 3-burst key")
        self.assertIn("rate limit", r.body["error"]["message"])
        # Another tenant has its own buckets.
        for i in range(5):
            self.assertStatus(srv.request("GET", "/v1/channels", token=other), 200, f"other {i}")
        # A second key of the limited tenant hits the tenant's bucket.
        key2 = srv.create_api_key(t["id"], "second")["key"]
        r = srv.request("GET", "/v1/channels", token=key2)
        self.assertRateLimited(r, "second key of an exhausted tenant")
        self.assertIn("tenant", r.body["error"]["message"])
        self.assertGreaterEqual(metric(srv, "parley_rate_limited_total", scope="api_key"), 1)
        self.assertGreaterEqual(metric(srv, "parley_rate_limited_total", scope="tenant"), 1)
        self.assertEqual(metric(srv, "parley_rate_limit_backend", backend="local"), 1)

    def test_signed_in_users_are_limited_like_keys(self):
        srv = self.server
        t, key = self.tenant_with_key(srv, api_rps=0.01, api_burst=2)
        email, password = f"rl-{secrets.token_hex(4)}@example.com", "pw-" + secrets.token_hex(10)
        r = srv.admin("POST", f"/v1/tenants/{t['id']}/users",
                      {"email": email, "password": password, "role": "agent"})
        self.assertStatus(r, 201, "create user")
        r = srv.request("POST", "/v1/auth/login", {"email": email, "password": password})
        self.assertStatus(r, 200, "login")
        jwt = r.body["access_token"]
        for i in range(2):
            self.assertStatus(srv.request("GET", "/v1/channels", token=jwt), 200, f"request {i}")
        self.assertRateLimited(srv.request("GET", "/v1/channels", token=jwt),
                               "3rd request of a signed-in user on a 2-burst plan")
        # The user drew from the tenant's bucket too: the tenant's key is refused now.
        self.assertRateLimited(srv.request("GET", "/v1/channels", token=key),
                               "the tenant's key after its user emptied the tenant bucket")

    def test_raising_the_limit_takes_effect(self):
        srv = self.server
        t, key = self.tenant_with_key(srv, api_rps=0.01, api_burst=1)
        self.assertStatus(srv.request("GET", "/v1/channels", token=key), 200)
        self.assertRateLimited(srv.request("GET", "/v1/channels", token=key))
        srv.admin("PATCH", f"/v1/tenants/{t['id']}", {"limits": {"api_rps": 1000, "api_burst": 1000}})
        self.assertTrue(wait_until(
            lambda: srv.request("GET", "/v1/channels", token=key).status == 200, timeout=5))

    def test_forged_keys_from_one_address_get_429_before_any_work(self):
        srv = self.server
        _, key = self.tenant_with_key(srv)
        attacker = "203.0.113.7"
        for i in range(5):
            r = srv.request("GET", "/v1/channels", token=f"forged-{i}", headers=from_ip(attacker))
            self.assertError(r, 401, "unauthorized", what=f"forged key {i}")
        r = srv.request("GET", "/v1/channels", token="forged-x", headers=from_ip(attacker))
        self.assertRateLimited(r, "6th forged key")
        # Blocked means blocked: even a valid key from that address waits (no database work).
        r = srv.request("GET", "/v1/channels", token=key, headers=from_ip(attacker))
        self.assertRateLimited(r, "valid key from a blocked address")
        # Bad admin tokens count too.
        r = srv.request("GET", "/v1/tenants", token="not-the-admin-token",
                        headers=from_ip(attacker))
        self.assertRateLimited(r, "admin route from a blocked address")
        # Other addresses are unaffected.
        r = srv.request("GET", "/v1/channels", token="forged-y", headers=from_ip("198.51.100.9"))
        self.assertError(r, 401, "unauthorized")
        self.assertStatus(srv.request("GET", "/v1/channels", token=key,
                                      headers=from_ip("198.51.100.9")), 200)
        self.assertGreaterEqual(metric(srv, "parley_rate_limited_total", scope="ip"), 2)

    def test_valid_webhooks_are_never_throttled_forged_ones_are(self):
        srv = self.server
        meta = "157.240.0.35"
        t = srv.create_tenant()
        pnid = srv.create_channel(t["id"])["phone_number_id"]
        # Bad signatures from an address exhaust its allowance...
        for i in range(5):
            r = post_webhook(srv, text_body(pnid, "15550002", f"x{i}"), "wrong-secret",
                             headers=from_ip(meta))
            self.assertError(r, 401, what=f"bad signature {i}")
        r = post_webhook(srv, text_body(pnid, "15550002", "x"), "wrong-secret",
                         headers=from_ip(meta))
        self.assertRateLimited(r, "bad signature over the allowance")
        # ...yet well-signed webhooks from the same address all get through, flood or not.
        for i in range(40):
            r = post_webhook(srv, text_body(pnid, "15550002", f"ok {i}"), APP_SECRET,
                             headers=from_ip(meta))
            self.assertStatus(r, 200, f"valid webhook {i}")

    def test_webhooks_carry_no_api_limits(self):
        srv = self.server
        t, _ = self.tenant_with_key(srv, api_rps=0.01, api_burst=1)
        pnid = srv.create_channel(t["id"])["phone_number_id"]
        for i in range(20):
            r = post_webhook(srv, text_body(pnid, "15550003", f"m{i}"), APP_SECRET)
            self.assertStatus(r, 200, f"webhook {i}")


class PrivateRedis:
    """A redis-server of our own, so a test may stop it under running nodes."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="parley-redis-")
        self.port = free_port()
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if subprocess.run(["redis-cli", "-p", str(self.port), "ping"],
                              capture_output=True, text=True).stdout.strip() == "PONG":
                return self
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@unittest.skipUnless(shutil.which("redis-server"), "redis-server is not installed")
class SharedRateLimitTest(RateLimitTestCase):
    def test_two_nodes_share_the_limit_and_survive_redis_loss(self):
        with PrivateRedis() as redis, ScratchDatabase() as db:
            env = dict(BASE_ENV, PARLEY_REDIS_URL=redis.url)
            one = ParleyServer(env=env, db_url=db.url).start()
            two = ParleyServer(env=env, db_url=db.url).start()
            try:
                for node in (one, two):
                    self.assertTrue(wait_until(
                        lambda n=node: metric(n, "parley_rate_limit_backend", backend="redis") == 1,
                        timeout=10), "node not using Redis")
                _, key = self.tenant_with_key(one, api_rps=0.01, api_burst=4)
                for node in (one, two, one, two):
                    self.assertStatus(node.request("GET", "/v1/channels", token=key), 200)
                # The burst is spent across both nodes.
                self.assertRateLimited(one.request("GET", "/v1/channels", token=key), "node one")
                self.assertRateLimited(two.request("GET", "/v1/channels", token=key), "node two")

                # Forged keys on one node block the address on the other node too (after its
                # next failure, which consults the shared bucket).
                for i in range(5):
                    self.assertError(one.request("GET", "/v1/channels", token=f"bad{i}",
                                                 headers=from_ip("203.0.113.50")), 401)
                self.assertRateLimited(two.request("GET", "/v1/channels", token="bad",
                                                   headers=from_ip("203.0.113.50")))

                redis.stop()
                _, fresh = self.tenant_with_key(one, api_rps=100, api_burst=100)
                # Still serving: decisions fall back to the node's own buckets.
                for node in (one, two):
                    for i in range(5):
                        self.assertStatus(node.request("GET", "/v1/channels", token=fresh), 200,
                                          f"with Redis down, request {i}")
                    self.assertTrue(wait_until(
                        lambda n=node: metric(n, "parley_rate_limit_backend", backend="local") == 1,
                        timeout=10))
                    self.assertTrue(node.wait_for_log(
                        "Redis unreachable: rate limits are per node until it is back"))
                # Limits still hold, per node.
                _, tight = self.tenant_with_key(one, api_rps=0.01, api_burst=1)
                self.assertStatus(one.request("GET", "/v1/channels", token=tight), 200)
                self.assertRateLimited(one.request("GET", "/v1/channels", token=tight))
            finally:
                codes = [one.stop(check=False), two.stop(check=False)]
            self.assertEqual(codes, [0, 0], one.logs() + two.logs())


if __name__ == "__main__":
    unittest.main()
