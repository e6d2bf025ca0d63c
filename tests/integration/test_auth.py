"""Users, sign-in, roles, audit log and key rotation (issue #5, authentication half).

Runs the real binary: login / refresh / logout with rotation and reuse detection, forged and
expired tokens, role checks per endpoint, per-account lockout, audit entries with request ids,
no secrets in the server's logs, and `parley rotate-keys` across a restart."""
import base64
import hashlib
import hmac
import json
import secrets
import subprocess
import time
import unittest

from harness import (ParleyServer, ParleyTestCase, ScratchDatabase, channel_body, clean_env,
                     parley_bin, require_environment)

setUpModule = require_environment

JWT_SECRET = "jwt-" + secrets.token_hex(24)
# Small scrypt cost for speed; the production default (15) is measured in docs/security.md.
FAST_ENV = {"PARLEY_SECURITY_JWT_SECRET": JWT_SECRET,
            "PARLEY_SECURITY_PASSWORD_SCRYPT_LOG_N": "12",
            "PARLEY_SECURITY_LOGIN_MAX_FAILURES": "3"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims: dict, key: str = JWT_SECRET, header: dict = None, alg: str = "sha256") -> str:
    header = header or {"alg": "HS256", "typ": "JWT"}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    digest = getattr(hashlib, alg)
    sig = hmac.new(key.encode(), signing_input.encode(), digest).digest()
    return signing_input + "." + b64url(sig)


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def sign_webhook(secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


class AuthTest(ParleyTestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(env=FAST_ENV)
        cls.passwords = []       # every password and token used: none may appear in the logs
        cls.tenant_a = cls.server.create_tenant()
        cls.tenant_b = cls.server.create_tenant()
        cls.admin_a = cls.make_user(cls.tenant_a["id"], "tenant_admin")
        cls.agent_a = cls.make_user(cls.tenant_a["id"], "agent")
        cls.admin_b = cls.make_user(cls.tenant_b["id"], "tenant_admin")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    # -- helpers

    @classmethod
    def make_user(cls, tenant_id, role, token=None):
        email = f"user-{secrets.token_hex(4)}@Example.com"
        password = "pw-" + secrets.token_hex(12)
        cls.passwords.append(password)
        r = cls.server.request("POST", f"/v1/tenants/{tenant_id}/users",
                               {"email": email, "password": password, "role": role,
                                "name": "Test " + role},
                               token=token or cls.server.admin_token)
        cls.server.expect(r, 201, "create user")
        return {"id": r.body["id"], "email": email, "password": password, "tenant_id": tenant_id}

    def login(self, user, status=200):
        r = self.server.request("POST", "/v1/auth/login",
                                {"email": user["email"], "password": user["password"]})
        self.assertStatus(r, status, "login")
        if status == 200:
            self.passwords.extend([r.body["access_token"], r.body["refresh_token"]])
        return r

    def access(self, user):
        return self.login(user).body["access_token"]

    # -- sign-in

    def test_login_and_me(self):
        r = self.login(self.admin_a)
        self.assertEqual(set(r.body), {"access_token", "refresh_token", "expires_in", "token_type"})
        self.assertEqual(r.body["expires_in"], 900)
        claims = claims_of(r.body["access_token"])
        self.assertEqual(claims["sub"], self.admin_a["id"])
        self.assertEqual(claims["tid"], self.tenant_a["id"])
        self.assertEqual(claims["exp"] - claims["iat"], 900)
        me = self.server.request("GET", "/v1/me", token=r.body["access_token"])
        self.assertStatus(me, 200, "me")
        self.assertEqual(me.body["user"]["id"], self.admin_a["id"])
        self.assertEqual(me.body["user"]["email"], self.admin_a["email"])
        self.assertEqual(me.body["user"]["role"], "tenant_admin")
        self.assertEqual(me.body["tenant"]["id"], self.tenant_a["id"])
        self.assertNotIn("password_hash", json.dumps(me.body))
        # Emails are case-insensitive.
        r = self.server.request("POST", "/v1/auth/login", {"email": self.admin_a["email"].upper(),
                                                          "password": self.admin_a["password"]})
        self.assertStatus(r, 200, "upper-case email")
        # /v1/me is for users.
        r = self.server.admin("GET", "/v1/me")
        self.assertError(r, 403, "forbidden")

    def test_wrong_password_and_unknown_email_answer_the_same(self):
        user = self.make_user(self.tenant_a["id"], "agent")
        wrong = self.server.request("POST", "/v1/auth/login",
                                    {"email": user["email"], "password": "not-the-password"})
        unknown = self.server.request("POST", "/v1/auth/login",
                                      {"email": "nobody-" + secrets.token_hex(4) + "@example.com",
                                       "password": "not-the-password"})
        self.assertError(wrong, 401, "unauthorized")
        self.assertError(unknown, 401, "unauthorized")
        self.assertEqual(wrong.body, unknown.body)
        for body in ({}, {"email": "x@example.com"}, {"email": 5, "password": "x"},
                     {"email": "x@example.com", "password": "x", "extra": 1}):
            r = self.server.request("POST", "/v1/auth/login", body)
            self.assertError(r, 400, what=json.dumps(body))

    def test_refresh_rotates_and_reuse_revokes_the_family(self):
        first = self.login(self.agent_a).body
        r = self.server.request("POST", "/v1/auth/refresh", {"refresh_token": first["refresh_token"]})
        self.assertStatus(r, 200, "refresh")
        second = r.body
        self.passwords.extend([second["access_token"], second["refresh_token"]])
        self.assertNotEqual(second["refresh_token"], first["refresh_token"])
        self.assertStatus(self.server.request("GET", "/v1/me", token=second["access_token"]), 200)
        # The old token stops working; presenting it again is reuse: the family is revoked.
        r = self.server.request("POST", "/v1/auth/refresh", {"refresh_token": first["refresh_token"]})
        self.assertError(r, 401, "unauthorized")
        r = self.server.request("POST", "/v1/auth/refresh", {"refresh_token": second["refresh_token"]})
        self.assertError(r, 401, "unauthorized", what="descendant of a reused token")
        r = self.server.request("GET", "/v1/me", token=second["access_token"])
        self.assertError(r, 401, "unauthorized", what="access token of a revoked family")
        # Other sessions of the same user are untouched.
        self.assertStatus(self.server.request("GET", "/v1/me", token=self.access(self.agent_a)), 200)
        for token in ("", "rt_" + "x" * 43, "garbage"):
            r = self.server.request("POST", "/v1/auth/refresh", {"refresh_token": token})
            self.assertIn(r.status, (400, 401), r.describe())

    def test_logout_revokes(self):
        pair = self.login(self.agent_a).body
        r = self.server.request("POST", "/v1/auth/logout", {"refresh_token": pair["refresh_token"]})
        self.assertStatus(r, 204, "logout")
        r = self.server.request("POST", "/v1/auth/refresh", {"refresh_token": pair["refresh_token"]})
        self.assertError(r, 401, "unauthorized")
        r = self.server.request("GET", "/v1/me", token=pair["access_token"])
        self.assertError(r, 401, "unauthorized")
        # Logging out twice, or with an unknown token, is harmless.
        r = self.server.request("POST", "/v1/auth/logout", {"refresh_token": pair["refresh_token"]})
        self.assertStatus(r, 204, "second logout")

    # -- tokens

    def test_bad_access_tokens_are_401(self):
        good = self.access(self.admin_a)
        base = claims_of(good)
        now = int(time.time())
        cases = {
            "expired": make_jwt(dict(base, iat=now - 4000, nbf=now - 4000, exp=now - 3000)),
            "not yet valid": make_jwt(dict(base, nbf=now + 3600, exp=now + 7200)),
            "forged": make_jwt(base, key="not-the-server-secret-" + "x" * 20),
            "alg none": b64url(b'{"alg":"none","typ":"JWT"}') + "."
                        + b64url(json.dumps(base).encode()) + ".",
            "alg none with signature": make_jwt(base, header={"alg": "none"}),
            "HS512": make_jwt(base, header={"alg": "HS512", "typ": "JWT"}, alg="sha512"),
            "RS256 header": make_jwt(base, header={"alg": "RS256"}),
            "wrong issuer": make_jwt(dict(base, iss="evil")),
            "wrong audience": make_jwt(dict(base, aud="other")),
            "no exp": make_jwt({k: v for k, v in base.items() if k != "exp"}),
            "sub not a uuid": make_jwt(dict(base, sub="nope")),
            "unknown user": make_jwt(dict(base, sub="00000000-0000-4000-8000-000000000000")),
            "other tenant claim": make_jwt(dict(base, tid=self.tenant_b["id"])),
            "elevated role claim is ignored": make_jwt(dict(base, role="platform_admin")),
            "truncated": good[:-5],
            "two parts": ".".join(good.split(".")[:2]),
            "junk": "a.b.c",
            "dots": "...",
        }
        for name, token in cases.items():
            with self.subTest(case=name):
                r = self.server.request("GET", "/v1/users", token=token)
                if name == "elevated role claim is ignored":
                    # Valid signature, but the role comes from the database: still a tenant admin,
                    # so platform-only endpoints stay closed.
                    self.assertStatus(r, 200, name)
                    r = self.server.request("POST", "/v1/tenants", {"name": "x", "slug": "x-1"},
                                            token=token)
                    self.assertError(r, 403, "forbidden", what=name)
                    continue
                self.assertError(r, 401, "unauthorized", what=name)
        r = self.server.request("GET", "/v1/users", token=cases["expired"])
        self.assertIn("expired", r.body["error"]["message"])

    # -- roles

    def test_roles(self):
        tid_a, tid_b = self.tenant_a["id"], self.tenant_b["id"]
        agent = self.access(self.agent_a)
        admin_a = self.access(self.admin_a)
        new_user = {"email": f"n-{secrets.token_hex(4)}@example.com", "password": "pw-0123456789",
                    "role": "agent"}
        # Agents read conversations but manage nothing.
        self.assertStatus(self.server.request("GET", "/v1/conversations", token=agent), 200)
        self.assertStatus(self.server.request("GET", "/v1/channels", token=agent), 200)
        for method, path, body in (("POST", f"/v1/tenants/{tid_a}/users", new_user),
                                   ("GET", "/v1/users", None),
                                   ("GET", "/v1/audit-log", None),
                                   ("POST", f"/v1/tenants/{tid_a}/api-keys", {"name": "k"}),
                                   ("GET", f"/v1/tenants/{tid_a}", None),
                                   ("POST", "/v1/tenants", {"name": "x", "slug": "xx"}),
                                   ("GET", "/v1/admin/actors", None)):
            with self.subTest(who="agent", method=method, path=path):
                r = self.server.request(method, path, body, token=agent)
                self.assertError(r, 403, "forbidden", what=f"agent {method} {path}")
        # A tenant admin manages its own tenant ...
        self.assertStatus(self.server.request("GET", f"/v1/tenants/{tid_a}", token=admin_a), 200)
        r = self.server.request("POST", f"/v1/tenants/{tid_a}/api-keys", {"name": "ta key"},
                                token=admin_a)
        self.assertStatus(r, 201, "tenant admin creates a key")
        self.passwords.append(r.body["key"])
        self.assertStatus(self.server.request("GET", "/v1/conversations", token=admin_a), 200)
        users = self.server.request("GET", "/v1/users", token=admin_a)
        self.assertStatus(users, 200)
        self.assertTrue(users.body["data"])
        self.assertEqual({u["tenant_id"] for u in users.body["data"]}, {tid_a})
        # ... but not another tenant, nor the platform.
        for method, path, body in (("POST", f"/v1/tenants/{tid_b}/users", new_user),
                                   ("GET", f"/v1/tenants/{tid_b}/users", None),
                                   ("GET", f"/v1/tenants/{tid_b}", None),
                                   ("POST", f"/v1/tenants/{tid_b}/api-keys", {"name": "k"}),
                                   ("GET", f"/v1/tenants/{tid_b}/channels", None),
                                   ("GET", f"/v1/audit-log?tenant_id={tid_b}", None),
                                   ("POST", "/v1/tenants", {"name": "x", "slug": "xy"}),
                                   ("GET", "/v1/tenants", None),
                                   ("POST", "/v1/users", dict(new_user, role="platform_admin"))):
            with self.subTest(who="tenant admin A", method=method, path=path):
                r = self.server.request(method, path, body, token=admin_a)
                self.assertError(r, 403, "forbidden", what=f"tenant admin {method} {path}")
        for method in ("GET", "PATCH", "DELETE"):
            r = self.server.request(method, f"/v1/users/{self.admin_b['id']}",
                                    {"name": "hijack"} if method == "PATCH" else None,
                                    token=admin_a)
            self.assertError(r, 404, "not_found", what=f"{method} another tenant's user")
            self.assertNotIn(self.admin_b["email"], json.dumps(r.body))
        r = self.server.request("PATCH", f"/v1/users/{self.agent_a['id']}",
                                {"role": "platform_admin"}, token=admin_a)
        self.assertError(r, 403, "forbidden", what="tenant admin grants platform_admin")
        # An API key is the tenant API only.
        key = self.server.create_api_key(tid_a)["key"]
        self.passwords.append(key)
        self.assertStatus(self.server.request("GET", "/v1/conversations", token=key), 200)
        for path in ("/v1/users", "/v1/audit-log", f"/v1/tenants/{tid_a}/api-keys"):
            r = self.server.request("GET", path, token=key)
            self.assertError(r, 403, "forbidden", what=f"api key GET {path}")
        # The admin token has no tenant: the tenant API refuses it with 403.
        r = self.server.admin("GET", "/v1/conversations")
        self.assertError(r, 403, "forbidden")

    def test_platform_admin_user(self):
        password = "pw-" + secrets.token_hex(12)
        self.passwords.append(password)
        email = f"root-{secrets.token_hex(4)}@example.com"
        r = self.server.admin("POST", "/v1/users", {"email": email, "password": password,
                                                    "role": "platform_admin"})
        self.assertStatus(r, 201, "create platform admin")
        self.assertIsNone(r.body["tenant_id"])
        token = self.access({"email": email, "password": password})
        r = self.server.request("POST", "/v1/tenants",
                                {"name": "By user", "slug": "by-user-" + secrets.token_hex(3)},
                                token=token)
        self.assertStatus(r, 201, "platform admin user creates a tenant")
        self.assertStatus(self.server.request("GET", "/v1/admin/actors", token=token), 200)
        self.assertStatus(self.server.request("GET", "/v1/users", token=token), 200)
        r = self.server.request("GET", f"/v1/users?tenant_id={self.tenant_b['id']}", token=token)
        self.assertEqual({u["tenant_id"] for u in r.body["data"]}, {self.tenant_b["id"]})
        me = self.server.request("GET", "/v1/me", token=token)
        self.assertIsNone(me.body["tenant"])
        # Tenant admins never see platform admins.
        r = self.server.request("GET", f"/v1/users/{me.body['user']['id']}",
                                token=self.access(self.admin_a))
        self.assertError(r, 404, "not_found")

    def test_user_validation(self):
        tid = self.tenant_a["id"]
        base = {"email": f"v-{secrets.token_hex(4)}@example.com", "password": "pw-0123456789",
                "role": "agent"}
        for body, field in ((dict(base, password="short"), "password"),
                            (dict(base, email="not-an-email"), "email"),
                            (dict(base, role="platform_admin"), "role"),
                            (dict(base, role="owner"), "role"),
                            (dict(base, extra=1), "extra")):
            r = self.server.admin("POST", f"/v1/tenants/{tid}/users", body)
            self.assertError(r, 400, mentions=field, what=field)
        self.assertStatus(self.server.admin("POST", f"/v1/tenants/{tid}/users", base), 201)
        r = self.server.admin("POST", f"/v1/tenants/{self.tenant_b['id']}/users",
                              dict(base, email=base["email"].upper()))
        self.assertError(r, 409, "conflict", what="same email, other case, other tenant")
        r = self.server.admin("POST", "/v1/tenants/00000000-0000-4000-8000-000000000000/users", base)
        self.assertError(r, 404, "not_found")

    def test_disabling_and_deleting_end_sessions(self):
        user = self.make_user(self.tenant_a["id"], "agent")
        token = self.access(user)
        admin = self.access(self.admin_a)
        r = self.server.request("PATCH", f"/v1/users/{user['id']}", {"disabled": True}, token=admin)
        self.assertStatus(r, 200, "disable")
        self.assertTrue(r.body["disabled"])
        self.assertError(self.server.request("GET", "/v1/me", token=token), 401)
        self.login(user, status=401)
        r = self.server.request("PATCH", f"/v1/users/{user['id']}", {"disabled": False}, token=admin)
        self.assertStatus(r, 200, "enable")
        token = self.access(user)
        r = self.server.request("DELETE", f"/v1/users/{user['id']}", token=admin)
        self.assertStatus(r, 204, "delete")
        self.assertError(self.server.request("GET", "/v1/me", token=token), 401)
        self.login(user, status=401)
        r = self.server.request("PATCH", f"/v1/users/{self.admin_a['id']}", {"role": "agent"},
                                token=admin)
        self.assertError(r, 400, what="own role")

    def test_password_change_and_expired_refresh_token(self):
        user = self.make_user(self.tenant_a["id"], "agent")
        pair = self.login(user).body
        new_password = "pw-" + secrets.token_hex(12)
        self.passwords.append(new_password)
        r = self.server.request("PATCH", f"/v1/users/{user['id']}", {"password": new_password},
                                token=self.access(self.admin_a))
        self.assertStatus(r, 200, "password change")
        self.assertError(self.server.request("GET", "/v1/me", token=pair["access_token"]), 401)
        self.login(user, status=401)
        user = dict(user, password=new_password)
        pair = self.login(user).body
        self.server.sql("UPDATE refresh_tokens SET expires_at = now() - interval '1 second' "
                        f"WHERE user_id = '{user['id']}' AND revoked_at IS NULL")
        r = self.server.request("POST", "/v1/auth/refresh", {"refresh_token": pair["refresh_token"]})
        self.assertError(r, 401, "unauthorized", what="expired refresh token")

    def test_tenant_admin_manages_keys_and_channels(self):
        tid = self.tenant_a["id"]
        token = self.access(self.admin_a)
        rid = "ta-" + secrets.token_hex(6)
        r = self.server.request("POST", f"/v1/tenants/{tid}/channels", channel_body(), token=token,
                                headers={"X-Request-Id": rid})
        self.assertStatus(r, 201, "tenant admin creates a channel")
        channel = r.body
        # Changing a channel (its credentials) is administration: agents may not.
        r = self.server.request("PATCH", f"/v1/channels/{channel['id']}", {"throughput_mps": 5},
                                token=self.access(self.agent_a))
        self.assertError(r, 403, "forbidden", what="agent patches a channel")
        r = self.server.request("PATCH", f"/v1/channels/{channel['id']}", {"throughput_mps": 5},
                                token=token, headers={"X-Request-Id": rid})
        self.assertStatus(r, 200, "tenant admin patches its channel")
        r = self.server.request("PATCH", f"/v1/channels/{channel['id']}", {"throughput_mps": 6},
                                token=self.access(self.admin_b))
        self.assertError(r, 404, "not_found", what="another tenant's channel")
        key = self.server.request("POST", f"/v1/tenants/{tid}/api-keys", {"name": "k"}, token=token).body
        self.passwords.append(key["key"])
        r = self.server.request("DELETE", f"/v1/tenants/{tid}/api-keys/{key['id']}", token=token)
        self.assertStatus(r, 204, "tenant admin revokes its key")
        self.assertError(self.server.request("GET", "/v1/channels", token=key["key"]), 401)
        log = self.server.request("GET", "/v1/audit-log?limit=50", token=token).body["data"]
        created = [e for e in log if e["action"] == "channel.create" and e["request_id"] == rid]
        self.assertEqual(len(created), 1, log)
        self.assertEqual((created[0]["actor_type"], created[0]["actor_id"]),
                         ("user", self.admin_a["id"]))
        updated = [e for e in log if e["action"] == "channel.update" and e["request_id"] == rid]
        self.assertEqual(len(updated), 1, log)
        self.assertEqual((updated[0]["before"]["throughput_mps"], updated[0]["after"]["throughput_mps"]),
                         (80, 5))
        # A tenant admin may not change the tenant itself (suspend, rename, delete).
        for method, body in (("PATCH", {"status": "suspended"}), ("DELETE", None)):
            r = self.server.request(method, f"/v1/tenants/{tid}", body, token=token)
            self.assertError(r, 403, "forbidden", what=f"{method} own tenant")

    def test_lockout_after_repeated_failures(self):
        user = self.make_user(self.tenant_a["id"], "agent")
        wrong = dict(user, password="wrong-password-1")
        for _ in range(3):  # PARLEY_SECURITY_LOGIN_MAX_FAILURES=3
            self.login(wrong, status=401)
        # Locked: even the right password gets the same 401.
        r = self.login(user, status=401)
        self.assertEqual(r.body["error"]["message"], "wrong email or password")
        locked = self.server.sql(f"SELECT locked_until > now() FROM users WHERE id = '{user['id']}'")
        self.assertEqual(locked, "t")
        # The lock ends with its time (moved here instead of waiting), and success resets it.
        self.server.sql(f"UPDATE users SET locked_until = now() - interval '1 second' "
                        f"WHERE id = '{user['id']}'")
        self.login(user, status=200)
        self.assertEqual(self.server.sql(f"SELECT failed_logins FROM users WHERE id = '{user['id']}'"),
                         "0")
        # Another failure run locks for longer (30 s, then doubling).
        for _ in range(3):
            self.login(wrong, status=401)
        seconds = float(self.server.sql(
            f"SELECT extract(epoch FROM locked_until - now()) FROM users WHERE id = '{user['id']}'"))
        self.assertGreater(seconds, 20)

    # -- audit

    def test_audit_log_records_admin_changes(self):
        rid = "audit-" + secrets.token_hex(6)
        hdr = {"X-Request-Id": rid}
        t = self.server.admin("POST", "/v1/tenants", {"name": "Audited", "slug": "aud-" + secrets.token_hex(3)},
                              headers=hdr).body
        tid = t["id"]
        self.server.admin("PATCH", f"/v1/tenants/{tid}", {"name": "Audited 2"}, headers=hdr)
        key = self.server.admin("POST", f"/v1/tenants/{tid}/api-keys", {"name": "k"}, headers=hdr).body
        self.passwords.append(key["key"])
        self.server.admin("DELETE", f"/v1/tenants/{tid}/api-keys/{key['id']}", headers=hdr)
        ch = self.server.admin("POST", f"/v1/tenants/{tid}/channels",
                               channel_body(app_secret="app-secret-" + secrets.token_hex(8)),
                               headers=hdr).body
        password = "pw-" + secrets.token_hex(12)
        self.passwords.append(password)
        u = self.server.admin("POST", f"/v1/tenants/{tid}/users",
                              {"email": f"a-{secrets.token_hex(4)}@example.com", "password": password,
                               "role": "agent"}, headers=hdr).body
        ta_password = "pw-" + secrets.token_hex(12)
        self.passwords.append(ta_password)
        ta = self.server.admin("POST", f"/v1/tenants/{tid}/users",
                               {"email": f"ta-{secrets.token_hex(4)}@example.com",
                                "password": ta_password, "role": "tenant_admin"}, headers=hdr).body
        ta_token = self.access({"email": ta["email"], "password": ta_password})
        r = self.server.request("PATCH", f"/v1/users/{u['id']}", {"role": "tenant_admin"},
                                token=ta_token, headers=hdr)
        self.assertStatus(r, 200, "role change")
        r = self.server.request("DELETE", f"/v1/users/{u['id']}", token=ta_token, headers=hdr)
        self.assertStatus(r, 204, "delete user")

        r = self.server.admin("GET", f"/v1/audit-log?tenant_id={tid}&limit=500")
        self.assertStatus(r, 200, "audit log")
        entries = r.body["data"]
        by_action = {}
        for e in entries:
            by_action.setdefault(e["action"], []).append(e)
            self.assertEqual(e["tenant_id"], tid)
            self.assertEqual(e["request_id"], rid, e)
            self.assertTrue(e["at"].endswith("Z"))
        for action in ("tenant.create", "tenant.update", "api_key.create", "api_key.revoke",
                       "channel.create", "user.create", "user.role_change", "user.delete"):
            self.assertIn(action, by_action, f"no {action} entry in {json.dumps(entries)[:2000]}")
        upd = by_action["tenant.update"][0]
        self.assertEqual(upd["before"]["name"], "Audited")
        self.assertEqual(upd["after"]["name"], "Audited 2")
        self.assertEqual(upd["actor_type"], "admin_token")
        role = by_action["user.role_change"][0]
        self.assertEqual((role["before"]["role"], role["after"]["role"]), ("agent", "tenant_admin"))
        self.assertEqual(role["actor_type"], "user")
        self.assertEqual(role["actor_id"], ta["id"])
        self.assertIsNone(by_action["user.delete"][0]["after"])
        self.assertEqual(by_action["api_key.revoke"][0]["object_id"], key["id"])
        # The key as it was before the revoke (read alone, not found by scanning a list).
        self.assertEqual(by_action["api_key.revoke"][0]["before"]["id"], key["id"])
        self.assertIsNone(by_action["api_key.revoke"][0]["before"]["revoked_at"])
        self.assertEqual(by_action["channel.create"][0]["object_id"], ch["id"])
        text = json.dumps(entries)
        for secret in (password, ta_password, key["key"], "password_hash", "scrypt$", "access_token"):
            self.assertNotIn(secret, text)
        # Newest first, paginated like every list.
        page = self.server.admin("GET", f"/v1/audit-log?tenant_id={tid}&limit=2").body
        self.assertEqual(len(page["data"]), 2)
        self.assertTrue(page["next_cursor"])
        self.assertEqual([e["id"] for e in page["data"]], [e["id"] for e in entries[:2]])
        nxt = self.server.admin("GET", f"/v1/audit-log?tenant_id={tid}&limit=2&cursor={page['next_cursor']}").body
        self.assertEqual([e["id"] for e in nxt["data"]], [e["id"] for e in entries[2:4]])
        # The tenant admin reads its own tenant's log only; the deletion is recorded too.
        own = self.server.request("GET", "/v1/audit-log?limit=500", token=ta_token)
        self.assertStatus(own, 200)
        self.assertEqual({e["tenant_id"] for e in own.body["data"]}, {tid})
        self.server.admin("DELETE", f"/v1/tenants/{tid}", headers=hdr)
        r = self.server.admin("GET", f"/v1/audit-log?tenant_id={tid}&limit=1")
        self.assertEqual(r.body["data"][0]["action"], "tenant.delete")
        self.assertEqual(r.body["data"][0]["before"]["name"], "Audited 2")

    # -- secrets

    def test_zz_no_secrets_in_logs(self):
        # Runs last in the class (alphabetical): every password and token used so far.
        self.login({"email": self.agent_a["email"], "password": "wrong-" + secrets.token_hex(4)},
                   status=401)
        logs = self.server.logs(tail=100000)
        self.assertTrue(self.passwords)
        for secret in self.passwords + [self.server.admin_token, self.server.master_key, JWT_SECRET]:
            self.assertNotIn(secret, logs)
        self.assertIn("authentication failed", logs)


class KeyRotationTest(ParleyTestCase):
    """Channel secrets sealed under key v1 stay usable after rotating to v2."""

    def run_cli(self, db_url, env):
        base = {"PARLEY_DB_URL": db_url, "PARLEY_LOG_LEVEL": "warn"}
        base.update(env)
        return subprocess.run([parley_bin(), "rotate-keys"], env=clean_env(base),
                              capture_output=True, text=True, timeout=60)

    def webhook_ok(self, srv, channel_id, secret):
        raw = b'{"object":"whatsapp_business_account","entry":[]}'
        r = srv.request("POST", f"/webhooks/whatsapp/{channel_id}", raw=raw,
                        headers={"X-Hub-Signature-256": sign_webhook(secret, raw)})
        return r

    def test_rotate_keys(self):
        k1, k2, k3 = (secrets.token_hex(32) for _ in range(3))
        s1 = "app-secret-one-" + secrets.token_hex(8)
        s2 = "app-secret-two-" + secrets.token_hex(8)
        with ScratchDatabase() as db:
            with ParleyServer(db_url=db.url, master_key=k1) as srv:
                ch1 = srv.create_channel(srv.create_tenant()["id"], app_secret=s1)
                self.assertStatus(self.webhook_ok(srv, ch1["id"], s1), 200, "v1 secret", srv)
            self.assertEqual(db.sql("SELECT DISTINCT left(app_secret_enc, 3) FROM channels"), "v1:")
            # Version 2 is current, version 1 still opens: old channels keep working.
            v2_env = {"PARLEY_SECURITY_MASTER_KEY_VERSION": "2",
                      "PARLEY_SECURITY_PREVIOUS_MASTER_KEYS": f"v1:{k1}"}
            with ParleyServer(db_url=db.url, master_key=k2, env=v2_env) as srv:
                self.assertStatus(self.webhook_ok(srv, ch1["id"], s1), 200, "v1 under v2", srv)
                ch2 = srv.create_channel(srv.create_tenant()["id"], app_secret=s2)
                self.assertStatus(self.webhook_ok(srv, ch2["id"], s2), 200, "v2 secret", srv)
            prefixes = db.sql("SELECT string_agg(left(access_token_enc, 3), ',' ORDER BY created_at) "
                              "FROM channels")
            self.assertEqual(prefixes, "v1:,v2:")
            # Without a master key there is nothing to rotate to: a configuration error (exit 2).
            p = self.run_cli(db.url, {})
            self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
            self.assertIn("master_key", p.stderr)
            # Without the key of version 1, the rotation refuses and changes nothing.
            p = self.run_cli(db.url, {"PARLEY_MASTER_KEY": k3,
                                      "PARLEY_SECURITY_MASTER_KEY_VERSION": "3"})
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            self.assertIn(ch1["id"], p.stdout)
            self.assertEqual(db.sql("SELECT count(*) FROM channels WHERE access_token_enc LIKE 'v3:%'"), "0")
            # The rotation: everything under v2, counts reported; running it again changes nothing.
            env = dict(v2_env, PARLEY_MASTER_KEY=k2)
            p = self.run_cli(db.url, env)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            report = json.loads(p.stdout.strip().splitlines()[-1])
            self.assertEqual(report["channels"], 2)
            self.assertEqual(report["secrets_resealed"], 2)         # ch1: token + app secret
            self.assertEqual(report["secrets_already_current"], 2)  # ch2
            self.assertEqual(report["secrets_unreadable"], 0)
            p = self.run_cli(db.url, env)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertEqual(json.loads(p.stdout.strip().splitlines()[-1])["secrets_resealed"], 0)
            self.assertEqual(db.sql("SELECT DISTINCT left(access_token_enc, 3) || left(app_secret_enc, 3) "
                                    "FROM channels"), "v2:v2:")
            for secret in (k1, k2, s1, s2):
                self.assertNotIn(secret, p.stdout + p.stderr)
            # The old key can go: both channels still verify their webhooks.
            with ParleyServer(db_url=db.url, master_key=k2,
                              env={"PARLEY_SECURITY_MASTER_KEY_VERSION": "2"}) as srv:
                self.assertStatus(self.webhook_ok(srv, ch1["id"], s1), 200, "ch1 after rotation", srv)
                self.assertStatus(self.webhook_ok(srv, ch2["id"], s2), 200, "ch2 after rotation", srv)
                r = self.webhook_ok(srv, ch1["id"], "wrong-secret")
                self.assertEqual(r.status, 401, r.describe())


if __name__ == "__main__":
    unittest.main()
