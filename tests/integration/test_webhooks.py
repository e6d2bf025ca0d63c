"""Inbound WhatsApp webhooks end to end against the real binary: the verification handshake, every
pywa fixture payload signed and posted (and then readable through the tenant API), signature
checks that store nothing, unparsable and unknown-number bodies, body limits, per-channel app
secrets, and a stream of garbage that must never produce a 5xx."""
import collections
import http.client
import json
import os
import random
import secrets
import socket
import urllib.parse
import unittest

from harness import ParleyTestCase, channel_body, require_environment
from webhook_fixtures import (FIXTURE_MESSAGE_PAYLOADS, FIXTURE_PAYLOADS, FIXTURE_STATUS_PAYLOADS,
                              is_processed_sql,
                              WEBHOOK_PATH, conversation_of, conversations, encode, entry, envelope,
                              load_fixtures, message_by_wamid, messages_change, messages_of,
                              metric, post_webhook, raw_event_count, rewrite, scrape, sign,
                              sql_quote, tenant_with_channel, text_body, text_message,
                              unique_wamid, wait_event, wait_processed, wait_until, wamid_rows)

setUpModule = require_environment

APP_SECRET = "platform-secret-" + secrets.token_hex(8)
VERIFY_TOKEN = "verify-" + secrets.token_hex(8)
BODY_LIMIT = 256 * 1024


class WebhookServerCase(ParleyTestCase):
    """One server per class, with the platform secret, a verify token and a small body limit."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(env={"PARLEY_WHATSAPP_APP_SECRET": APP_SECRET,
                                           "PARLEY_WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
                                           "PARLEY_HTTP_BODY_LIMIT": str(BODY_LIMIT)})

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    # -- helpers

    def post(self, body, secret=APP_SECRET, path=WEBHOOK_PATH, **kw):
        return post_webhook(self.server, body, secret, path, **kw)

    def post_ok(self, body, secret=APP_SECRET, path=WEBHOOK_PATH, what="webhook"):
        r = self.post(body, secret, path)
        self.assertStatus(r, 200, what)
        self.assertEqual(r.body, {"status": "received"}, what)
        return r

    def raw_row(self, request_id):
        """(outcome, processed?, channel_id) of the raw event stored for a request id."""
        out = self.server.sql("SELECT outcome, " + is_processed_sql() + ", "
                              "coalesce(channel_id::text, '') FROM raw_webhook_events "
                              f"WHERE request_id = {sql_quote(request_id)}")
        rows = [line.split("|") for line in out.splitlines() if line]
        return rows

    def processed_row(self, request_id, timeout=15.0):
        def done():
            rows = self.raw_row(request_id)
            return rows if rows and all(r[1] == "t" for r in rows) else None
        rows = wait_until(done, timeout)
        self.assertIsNotNone(rows, f"raw event of request {request_id} not processed: "
                                   f"{self.raw_row(request_id)}{self._logs()}")
        self.assertEqual(len(rows), 1, f"request {request_id} stored {len(rows)} times")
        return rows[0]


class WebhookTest(WebhookServerCase):
    # -- the verification handshake

    def test_verification_handshake(self):
        challenge = "challenge-" + secrets.token_hex(6)
        r = self.server.request("GET", f"{WEBHOOK_PATH}?hub.mode=subscribe&hub.verify_token="
                                       f"{VERIFY_TOKEN}&hub.challenge={challenge}")
        self.assertStatus(r, 200, "right verify token")
        self.assertEqual(r.body, challenge)
        self.assertTrue(r.headers.get("Content-Type", "").startswith("text/plain"),
                        r.headers.get("Content-Type"))
        r = self.server.request("GET", f"{WEBHOOK_PATH}?hub.mode=subscribe&hub.verify_token="
                                       f"wrong&hub.challenge={challenge}")
        self.assertError(r, 403, what="wrong verify token")
        self.assertNotIn(challenge, json.dumps(r.body))
        # Query values are percent-decoded before they are compared and echoed.
        token = urllib.parse.quote(VERIFY_TOKEN, safe="")
        r = self.server.request("GET", f"{WEBHOOK_PATH}?hub.mode=subscribe&hub.verify_token="
                                       f"{token}&hub.challenge=a%20b%26c")
        self.assertStatus(r, 200, "percent-encoded query")
        self.assertEqual(r.body, "a b&c")
        r = self.server.request("GET", f"{WEBHOOK_PATH}?hub.mode=subscribe&hub.challenge=1")
        self.assertError(r, 403, what="no verify token")
        r = self.server.request("GET", f"{WEBHOOK_PATH}?hub.mode=unsubscribe&hub.verify_token="
                                       f"{VERIFY_TOKEN}&hub.challenge=1")
        self.assertError(r, 400, what="hub.mode=unsubscribe")
        r = self.server.request("GET", f"{WEBHOOK_PATH}?hub.verify_token={VERIFY_TOKEN}"
                                       "&hub.challenge=1")
        self.assertError(r, 400, what="no hub.mode")

    # -- every fixture

    def test_every_fixture_payload_is_accepted_processed_and_readable(self):
        srv = self.server
        tc = tenant_with_channel(srv)[0]
        fixtures = load_fixtures()
        self.assertEqual(len(fixtures), FIXTURE_PAYLOADS, "the pywa fixture set changed")
        wait_processed(srv)  # earlier tests' events must not move the metrics compared below
        before = scrape(srv)
        first_id = int(srv.sql("SELECT coalesce(max(id), 0) FROM raw_webhook_events"))
        sent_messages = {}   # wamid -> (fixture, rewritten message)
        status_values = collections.Counter()
        other_fields = collections.Counter()
        for fx in fixtures:
            rw = rewrite(fx.body, tc.phone_number_id)
            for m in rw.messages:
                sent_messages[m["id"]] = (fx, m)
            for s in rw.statuses:
                if s.get("type", "message") == "message":
                    status_values[s["status"]] += 1
            for e in rw.body["entry"]:
                for c in e["changes"]:
                    if c["field"] != "messages":
                        other_fields[c["field"]] += 1
            self.post_ok(rw.body, what=fx.name)
        self.assertEqual(len(sent_messages), FIXTURE_MESSAGE_PAYLOADS)
        self.assertEqual(sum(status_values.values()), FIXTURE_STATUS_PAYLOADS)
        wait_processed(srv)
        rows = srv.sql(f"SELECT outcome, count(*) FROM raw_webhook_events WHERE id > {first_id} "
                       "GROUP BY outcome")
        self.assertEqual(rows, f"accepted|{FIXTURE_PAYLOADS}",
                         "every fixture is a known shape and names the channel's number")

        # Through the API: every message, with its type, in the tenant's conversations.
        seen = {}
        for conv in conversations(srv, tc.key):
            self.assertEqual(conv["channel_id"], tc.channel_id)
            for m in messages_of(srv, tc.key, conv["id"]):
                seen[m["wa_message_id"]] = m
        self.assertEqual(set(seen), set(sent_messages),
                         "every fixture message is readable through the API, and nothing else")
        # The original of each message is its raw event's body (messages.raw is not written).
        raws = json.loads(srv.sql(
            "SELECT json_object_agg(m.wamid, (SELECT x FROM jsonb_path_query("
            "convert_from(e.body, 'UTF8')::jsonb, "
            "'$.entry[*].changes[*].value.messages[*]') x WHERE x->>'id' = m.wamid LIMIT 1)) "
            "FROM messages m JOIN raw_webhook_events e ON e.id = m.raw_event_id "
            f"WHERE m.channel_id = {sql_quote(tc.channel_id)}"))
        for wamid, (fx, sent) in sent_messages.items():
            got = seen[wamid]
            ctx = f"{fx.name}: {json.dumps(got)[:400]}"
            self.assertEqual(got["type"], sent["type"], ctx)
            self.assertEqual(got["direction"], "inbound", ctx)
            self.assertEqual(got["status"], "received", ctx)
            self.assertEqual(got["channel_id"], tc.channel_id, ctx)
            self.assertEqual(got["from"], sent["from"], ctx)
            self.assertIsInstance(got["content"], dict, ctx)
            # The original is kept byte-for-byte equivalent.
            self.assertEqual(raws[wamid], sent, ctx)
            # The same row through GET /v1/messages/{id}.
            r = srv.request("GET", f"/v1/messages/{got['id']}", token=tc.key)
            self.assertStatus(r, 200, ctx)
            self.assertEqual(r.body["wa_message_id"], wamid, ctx)
            self.assertEqual(r.body["content"], got["content"], ctx)

        by_case = {fx.name: seen[w] for w, (fx, _) in sent_messages.items()}
        src = {fx.name: m for _, (fx, m) in sent_messages.items()}
        c = lambda name: by_case[name]["content"]  # noqa: E731
        self.assertEqual(c("message/text"), {"kind": "text", "body": "Body Text"})
        self.assertEqual(c("message/image")["media_id"], src["message/image"]["image"]["id"])
        self.assertEqual(c("message/image")["mime_type"], "image/jpeg")
        self.assertEqual(c("message/current_location")["latitude"],
                         src["message/current_location"]["location"]["latitude"])
        self.assertEqual(c("message/current_location")["longitude"],
                         src["message/current_location"]["location"]["longitude"])
        self.assertEqual(c("callback_button/button")["kind"], "button_reply")
        self.assertEqual(c("callback_button/button")["id"], "callback_data")
        self.assertEqual(c("callback_button/quick_reply")["kind"], "button")
        self.assertEqual(c("message/reaction")["emoji"],
                         src["message/reaction"]["reaction"]["emoji"])
        self.assertFalse(c("message/reaction")["removed"])
        self.assertTrue(c("message/unreaction_empty")["removed"])
        self.assertTrue(c("message/unreaction_no_emoji")["removed"])
        self.assertEqual(c("message/order")["product_items"],
                         src["message/order"]["order"]["product_items"])
        self.assertEqual(c("message/order")["catalog_id"], "354160437058781")
        self.assertEqual(c("system/phone_number_change")["body"],
                         src["system/phone_number_change"]["system"]["body"])
        self.assertEqual(c("message/unsupported")["errors"], src["message/unsupported"]["errors"])
        self.assertEqual(c("message/unsupported")["errors"][0]["code"], 131051)
        self.assertEqual(by_case["message/reply"]["context"]["message_id"], "wamid.xyzxyz==")
        self.assertTrue(by_case["message/forwarded"]["context"]["forwarded"])
        self.assertEqual(c("edited_message/image")["content"]["kind"], "image")
        self.assertEqual(c("callback_selection/description")["kind"], "list_reply")
        self.assertEqual(c("flow_completion/completion")["kind"], "flow_reply")
        self.assertEqual(c("message/voice")["voice"], True)

        # Metrics moved by exactly what was sent.
        after = scrape(srv)
        delta = lambda name, **l: metric(after, name, **l) - metric(before, name, **l)  # noqa: E731
        for field, n in other_fields.items():
            self.assertEqual(delta("parley_webhook_changes_total", field=field), n, field)
        types = collections.Counter(m["type"] for _, m in sent_messages.values())
        for t, n in types.items():
            self.assertEqual(delta("parley_inbound_messages_total", type=t), n, t)
        self.assertEqual(delta("parley_inbound_messages_total"), FIXTURE_MESSAGE_PAYLOADS)
        for st, n in status_values.items():
            self.assertEqual(delta("parley_inbound_statuses_total", status=st), n, st)
        self.assertEqual(delta("parley_webhooks_total", outcome="accepted"), FIXTURE_PAYLOADS)
        self.assertEqual(delta("parley_inbound_duplicates_total"), 0)
        self.assertEqual(delta("parley_webhook_ack_seconds_count"), FIXTURE_PAYLOADS)
        # The statuses are kept even though no outbound message matches them.
        n = srv.sql("SELECT count(*) FROM message_status_events WHERE channel_id = "
                    f"{sql_quote(tc.channel_id)}")
        self.assertEqual(int(n), FIXTURE_STATUS_PAYLOADS)

    # -- signatures

    def test_bad_or_missing_signature_is_401_and_stores_nothing(self):
        tc = tenant_with_channel(self.server)[0]
        body = text_body(tc.phone_number_id, "15550001111", "should never be stored")
        raw = encode(body)
        before_rows = raw_event_count(self.server)
        before = metric(self.server, "parley_webhooks_total", outcome="bad_signature")
        cases = {
            "missing": None,
            "empty": "",
            "wrong secret": sign("not-the-secret", raw),
            "other body": sign(APP_SECRET, raw + b" "),
            "no prefix": sign(APP_SECRET, raw)[len("sha256="):],
            "sha1 prefix": "sha1=" + sign(APP_SECRET, raw)[len("sha256="):],
            "upper-case hex of a wrong digest": "sha256=" + "AB" * 32,
            "truncated": sign(APP_SECRET, raw)[:-2],
            "not hex": "sha256=" + "zz" * 32,
            "too long": sign(APP_SECRET, raw) + "00",
        }
        for what, sig in cases.items():
            if sig is None:
                r = self.post(body, secret=None)
            else:
                r = self.post(body, signature=sig)
            self.assertError(r, 401, what=what)
        self.assertEqual(raw_event_count(self.server), before_rows, "a rejected webhook was stored")
        after = metric(self.server, "parley_webhooks_total", outcome="bad_signature")
        self.assertEqual(after - before, len(cases))
        # Not even a contact or conversation appears.
        self.assertEqual(conversations(self.server, tc.key), [])
        # A byte-identical body with the right signature is accepted.
        self.post_ok(body)
        wait_processed(self.server)

    def test_signed_non_json_is_stored_as_unparsable(self):
        for what, raw in (("not JSON", b"this is not json {"),
                          ("JSON of another shape", b'{"object":"page","entry":[]}'),
                          ("a JSON array", b"[1,2,3]"),
                          ("invalid UTF-8", b'{"object":"\xff\xfe"}'),
                          ("empty", b"")):
            rid = "it-unparsable-" + secrets.token_hex(6)
            r = self.post(raw, headers={"X-Request-Id": rid})
            self.assertStatus(r, 200, what)
            self.assertEqual(r.body, {"status": "received"}, what)
            outcome, _, _ = self.processed_row(rid)
            self.assertEqual(outcome, "unparsable", what)
            stored = self.server.sql("SELECT encode(body, 'hex') FROM raw_webhook_events "
                                     f"WHERE request_id = {sql_quote(rid)}")
            self.assertEqual(bytes.fromhex(stored), raw, f"{what}: stored byte for byte")
        self.assertGreaterEqual(
            metric(self.server, "parley_webhooks_total", outcome="unparsable"), 5)

    def test_unknown_phone_number_is_stored_but_seen_by_no_tenant(self):
        tc = tenant_with_channel(self.server)[0]
        nobody = "999" + str(secrets.randbelow(10**12))
        wa_id = "15557770000"
        wamid = unique_wamid("unknown")
        rid = "it-unknown-" + secrets.token_hex(6)
        r = self.post(text_body(nobody, wa_id, "to nobody", wamid), headers={"X-Request-Id": rid})
        self.assertStatus(r, 200, "unknown number")
        outcome, _, _ = self.processed_row(rid)
        self.assertEqual(outcome, "unknown_number")
        self.assertEqual(wamid_rows(self.server, wamid), 0)
        self.assertEqual(self.server.sql("SELECT count(*) FROM conversations "
                                         f"WHERE wa_id = {sql_quote(wa_id)}"), "0")
        self.assertEqual(conversations(self.server, tc.key), [])
        self.assertGreaterEqual(
            metric(self.server, "parley_webhooks_total", outcome="unknown_number"), 1)

        # One known and one unknown number in one body: the known part lands, outcome partial.
        known_wamid = unique_wamid("partial")
        body = envelope(entry(messages_change(tc.phone_number_id,
                                              [text_message("15557770001", "known", known_wamid)]),
                              messages_change(nobody, [text_message(wa_id, "unknown")])))
        rid = "it-partial-" + secrets.token_hex(6)
        self.assertStatus(self.post(body, headers={"X-Request-Id": rid}), 200, "partial")
        outcome, _, _ = self.processed_row(rid)
        self.assertEqual(outcome, "partial")
        self.assertIsNotNone(message_by_wamid(self.server, tc.key, known_wamid))
        self.assertEqual([c["contact"]["wa_id"] for c in conversations(self.server, tc.key)],
                         ["15557770001"])

    # -- size

    def test_oversized_body_is_413_and_not_stored(self):
        tc = tenant_with_channel(self.server)[0]
        before = raw_event_count(self.server)
        big = text_body(tc.phone_number_id, "15550002222", "x" * (BODY_LIMIT + 1024))
        raw = encode(big)
        try:
            r = self.post(raw)
            self.assertError(r, 413, what="body over http.body_limit")
        except (ConnectionResetError, BrokenPipeError):
            pass  # closing without reading the rest is also a refusal; nothing may be stored
        self.assertEqual(raw_event_count(self.server), before)
        # Just under the limit is accepted and processed.
        wamid = unique_wamid("big")
        ok = text_body(tc.phone_number_id, "15550002222", "y" * (BODY_LIMIT - 2048), wamid)
        self.assertLess(len(encode(ok)), BODY_LIMIT)
        self.post_ok(ok, what="body under the limit")
        self.assertTrue(wait_until(lambda: message_by_wamid(self.server, tc.key, wamid), 15),
                        "a large but allowed message was not stored" + self._logs())

    # -- per-channel endpoint

    def test_per_channel_endpoint_uses_the_channels_own_secret(self):
        srv = self.server
        own_secret = "chan-secret-" + secrets.token_hex(8)
        own = tenant_with_channel(srv, app_secret=own_secret)[0]
        plain = tenant_with_channel(srv)[0]
        own_path = f"{WEBHOOK_PATH}/{own.channel_id}"
        plain_path = f"{WEBHOOK_PATH}/{plain.channel_id}"

        # The channel's own secret: accepted and routed to that channel.
        w1 = unique_wamid("own")
        self.post_ok(text_body(own.phone_number_id, "15550003333", "own", w1), own_secret,
                     own_path, "own secret")
        self.assertTrue(wait_until(lambda: message_by_wamid(srv, own.key, w1), 15), self._logs())
        self.assertEqual(message_by_wamid(srv, own.key, w1)["channel_id"], own.channel_id)

        # The platform secret does not vouch for a channel that has its own.
        before = raw_event_count(srv)
        body = text_body(own.phone_number_id, "15550003333", "platform", unique_wamid())
        self.assertError(self.post(body, APP_SECRET, own_path), 401, what="platform secret")
        self.assertError(self.post(body, None, own_path), 401, what="unsigned")
        self.assertError(self.post(body, "guess", own_path), 401, what="wrong secret")
        self.assertEqual(raw_event_count(srv), before)

        # A channel without its own secret falls back to the platform secret.
        w2 = unique_wamid("plain")
        self.post_ok(text_body(plain.phone_number_id, "15550004444", "plain", w2), APP_SECRET,
                     plain_path, "platform secret on a channel without its own")
        self.assertTrue(wait_until(lambda: message_by_wamid(srv, plain.key, w2), 15), self._logs())
        self.assertError(self.post(body, own_secret, plain_path), 401,
                         what="another channel's secret")

        # A body signed with one channel's secret may not speak for another channel's number.
        w3 = unique_wamid("spoof")
        rid = "it-spoof-" + secrets.token_hex(6)
        r = self.post(text_body(plain.phone_number_id, "15550005555", "spoofed", w3), own_secret,
                      own_path, headers={"X-Request-Id": rid})
        self.assertStatus(r, 200, "signed for one channel, naming another")
        outcome, _, channel = self.processed_row(rid)
        self.assertEqual(channel, own.channel_id)
        self.assertEqual(outcome, "unknown_number")
        self.assertEqual(wamid_rows(srv, w3), 0)
        for tc in (own, plain):
            wa_ids = [c["contact"]["wa_id"] for c in conversations(srv, tc.key)]
            self.assertNotIn("15550005555", wa_ids)

        # Channels that do not exist (or ids that are not ids) store nothing and are no 5xx.
        before = raw_event_count(srv)
        for cid in ("00000000-0000-0000-0000-000000000000", "not-a-uuid", own.channel_id.upper()):
            r = self.post(body, APP_SECRET, f"{WEBHOOK_PATH}/{cid}")
            if cid == own.channel_id.upper():
                self.assertIn(r.status, (200, 401, 404), f"{cid}: {r.describe()}")
            else:
                self.assertIn(r.status, (401, 404), f"{cid}: {r.describe()}")
        if raw_event_count(srv) != before:
            # Only the upper-cased id of a real channel could be accepted, with its own secret.
            self.fail("a webhook for a channel that does not exist was stored")

    # -- garbage

    def test_garbage_stream_never_yields_5xx(self):
        srv = self.server
        tc = tenant_with_channel(srv)[0]
        rng = random.Random(20240611)
        statuses = collections.Counter()
        failures = []
        signed_garbage = 0
        before_rows = raw_event_count(srv)
        conn = [None]

        def keepalive(method, path, body, headers):
            for attempt in range(2):
                try:
                    if conn[0] is None:
                        conn[0] = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
                    conn[0].request(method, path, body=body, headers=headers)
                    resp = conn[0].getresponse()
                    resp.read()
                    if resp.will_close:
                        conn[0].close()
                        conn[0] = None
                    return resp.status
                except (OSError, http.client.HTTPException):
                    if conn[0] is not None:
                        conn[0].close()
                    conn[0] = None
                    if attempt == 1:
                        return None
            return None

        def raw_socket(data):
            """Writes `data`, half-closes, reads the answer: a status or None (closed)."""
            try:
                with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
                    try:
                        s.sendall(data)
                        s.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    out = b""
                    while True:
                        try:
                            chunk = s.recv(65536)
                        except OSError:
                            break
                        if not chunk:
                            break
                        out += chunk
            except OSError:
                return None
            if out.startswith(b"HTTP/1.") and len(out) > 12:
                try:
                    return int(out[9:12])
                except ValueError:
                    return -1
            return None if not out else -1

        def random_json():
            odd_change = {"field": "messages",
                          "value": {"metadata": {"phone_number_id": tc.phone_number_id},
                                    "messages": [{"id": 5}]}}
            return json.dumps({
                "object": rng.choice(["whatsapp_business_account", "page", 1, None]),
                "entry": rng.choice([[], {}, "x", [{"changes": [odd_change]}]])}).encode()

        kinds = ["random_bytes_socket", "bad_sig_json", "bad_sig_garbage", "no_sig",
                 "huge_header", "huge_sig", "signed_garbage", "bad_method", "bad_length",
                 "weird_path", "bad_content_type"]
        for i in range(500):
            kind = kinds[i % len(kinds)]
            status = None
            if kind == "random_bytes_socket":
                data = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 600)))
                if i % 2:
                    data = b"POST /webhooks/whatsapp HTTP/1.1\r\n" + data
                status = raw_socket(data + b"\r\n\r\n")
            elif kind == "bad_sig_json":
                body = random_json()
                status = keepalive("POST", WEBHOOK_PATH, body,
                                   {"X-Hub-Signature-256": "sha256=" + secrets.token_hex(32),
                                    "Content-Type": "application/json"})
            elif kind == "bad_sig_garbage":
                body = os.urandom(rng.randint(0, 3000))
                status = keepalive("POST", WEBHOOK_PATH, body,
                                   {"X-Hub-Signature-256": sign("nope", body)})
            elif kind == "no_sig":
                status = keepalive("POST", WEBHOOK_PATH, random_json(), {})
            elif kind == "huge_header":
                status = keepalive("POST", WEBHOOK_PATH, b"{}",
                                   {"X-Filler": "a" * rng.choice([20000, 70000]),
                                    "X-Hub-Signature-256": sign(APP_SECRET, b"{}")})
            elif kind == "huge_sig":
                status = keepalive("POST", WEBHOOK_PATH, b"{}",
                                   {"X-Hub-Signature-256": "sha256=" + "f" * 10000})
            elif kind == "signed_garbage":
                body = rng.choice([os.urandom(rng.randint(1, 2000)), random_json(),
                                   b'{"object":"whatsapp_business_account","entry":[' * 50,
                                   b"\x00" * 100])
                status = keepalive("POST", WEBHOOK_PATH, body,
                                   {"X-Hub-Signature-256": sign(APP_SECRET, body)})
                if status == 200:
                    signed_garbage += 1
            elif kind == "bad_method":
                status = keepalive(rng.choice(["PUT", "DELETE", "PATCH", "OPTIONS"]),
                                   WEBHOOK_PATH, b"{}", {})
            elif kind == "bad_length":
                status = raw_socket(b"POST /webhooks/whatsapp HTTP/1.1\r\nHost: x\r\n"
                                    + rng.choice([b"Content-Length: 100\r\n\r\nshort",
                                                  b"Content-Length: -1\r\n\r\n",
                                                  b"Content-Length: 99999999999999999999\r\n\r\n",
                                                  b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"]))
            elif kind == "weird_path":
                path = rng.choice([WEBHOOK_PATH + "/" + "a" * 3000, WEBHOOK_PATH + "/%00%ff",
                                   WEBHOOK_PATH + "?" + "&".join(["a=b"] * 500),
                                   WEBHOOK_PATH + "/../../v1/tenants",
                                   "/webhooks/whatsapp/" + secrets.token_hex(16)])
                status = keepalive("POST", path, b"{}",
                                   {"X-Hub-Signature-256": sign(APP_SECRET, b"{}")})
            elif kind == "bad_content_type":
                body = random_json()
                status = keepalive("POST", WEBHOOK_PATH, body,
                                   {"Content-Type": "text/xml",
                                    "X-Hub-Signature-256": "sha256=00"})
            statuses[(kind, status)] += 1
            if status is not None and status >= 500:
                failures.append((i, kind, status))
        if conn[0] is not None:
            conn[0].close()
        self.assertEqual(failures, [],
                         f"5xx answers: {failures[:20]}\n{dict(statuses)}{self._logs()}")
        self.assertTrue(srv.alive(), "the server died" + self._logs())
        self.assertEqual(srv.request("GET", "/health/ready").status, 200)
        # Only the correctly signed bodies were stored; each is processed (mostly unparsable).
        self.assertGreater(signed_garbage, 0)
        wait_processed(srv)
        # Every 200 in this stream is a well-signed POST, hence one stored row; nothing else is.
        acked = sum(n for (kind, st), n in statuses.items() if st == 200)
        self.assertEqual(raw_event_count(srv) - before_rows, acked,
                         f"stored rows != requests answered 200\n{dict(statuses)}")
        # And real traffic still flows.
        wamid = unique_wamid("after-garbage")
        self.post_ok(text_body(tc.phone_number_id, "15550006666", "still alive", wamid))
        self.assertTrue(wait_until(lambda: message_by_wamid(srv, tc.key, wamid), 15), self._logs())



class RoutingChangeAndPoisonTest(WebhookServerCase):
    """Routing changes under a running server, and payloads that once poisoned the ingest. A
    server of its own: should a regression leave events unprocessed, WebhookTest's checks that
    every raw event of its database gets processed stay unaffected."""

    # -- routing after channels and tenants change

    def post_with_id(self, body, what):
        rid = "it-" + what.replace(" ", "-") + "-" + secrets.token_hex(5)
        r = self.post(body, headers={"X-Request-Id": rid})
        self.assertStatus(r, 200, what)
        return rid

    # Regression: ingest's negative route cache (60 s) once outlived the channel's creation, so
    # the next webhooks were marked unknown_number and their messages dropped for good.
    def test_channel_created_after_an_unknown_number_webhook_gets_the_next_one(self):
        srv = self.server
        t = srv.create_tenant()
        key = srv.create_api_key(t["id"])["key"]
        pnid = str(secrets.randbelow(10**14) + 10**14)
        rid = self.post_with_id(text_body(pnid, "15550007001", "too early"), "early")
        self.assertEqual(wait_event(srv, rid)[0], "unknown_number")
        srv.create_channel(t["id"], phone_number_id=pnid)
        wamid = unique_wamid("late")
        rid = self.post_with_id(text_body(pnid, "15550007001", "channel exists now", wamid),
                                "after-channel")
        self.assertEqual(wait_event(srv, rid)[0], "accepted")
        self.assertIsNotNone(message_by_wamid(srv, key, wamid))

    # Regression: the route cache once kept a deleted tenant, and its number's events were
    # retried and left for the sweep forever ("tenant ... not found").
    def test_deleted_tenants_number_becomes_unknown(self):
        srv = self.server
        tc = tenant_with_channel(srv)[0]
        rid = self.post_with_id(text_body(tc.phone_number_id, "15550007002", "before"),
                                "before-delete")
        self.assertEqual(wait_event(srv, rid)[0], "accepted")
        self.assertStatus(srv.admin("DELETE", f"/v1/tenants/{tc.tenant_id}"), 204, "delete tenant")
        rid = self.post_with_id(text_body(tc.phone_number_id, "15550007002", "after"),
                                "after-delete")
        self.assertEqual(wait_event(srv, rid, timeout=10)[0], "unknown_number")

    # Regression: a number freed by a deleted tenant and registered by another one kept being
    # routed to the deleted tenant (stale route cache); the new tenant never saw its messages.
    def test_number_moved_to_another_tenant_reaches_the_new_tenant(self):
        srv = self.server
        old = tenant_with_channel(srv)[0]
        self.assertEqual(wait_event(srv, self.post_with_id(
            text_body(old.phone_number_id, "15550007003", "to the old tenant"), "old"))[0],
            "accepted")
        self.assertStatus(srv.admin("DELETE", f"/v1/tenants/{old.tenant_id}"), 204, "delete tenant")
        t2 = srv.create_tenant()
        key2 = srv.create_api_key(t2["id"])["key"]
        r = srv.admin("POST", f"/v1/tenants/{t2['id']}/channels",
                      channel_body(phone_number_id=old.phone_number_id))
        self.assertStatus(r, 201, "the freed number on another tenant")
        wamid = unique_wamid("moved")
        rid = self.post_with_id(text_body(old.phone_number_id, "15550007003", "to the new tenant",
                                          wamid), "moved")
        self.assertEqual(wait_event(srv, rid, timeout=10)[0], "accepted")
        msg = message_by_wamid(srv, key2, wamid)
        self.assertIsNotNone(msg)
        self.assertEqual(msg["channel_id"], r.body["id"])

    # -- payloads PostgreSQL cannot take as they are

    def test_poison_message_does_not_hold_up_others(self):
        srv = self.server
        tc = tenant_with_channel(srv)[0]
        self.post_with_id(text_body(tc.phone_number_id, "15550008001", "nul \u0000 inside"),
                          "poison")
        wamids = [unique_wamid("healthy") for _ in range(5)]
        for i, w in enumerate(wamids):
            self.post_ok(text_body(tc.phone_number_id, f"1555000810{i}", "healthy", w))
        for w in wamids:
            self.assertTrue(wait_until(lambda: message_by_wamid(srv, tc.key, w), 15),
                            f"{w} held up by a poison message" + self._logs())

    # A contact's later messages skip the contact and conversation upserts while the profile name
    # is the one already stored (the conversation actor remembers it); a new name still reaches
    # both rows, and the counters and window still move with every message.
    def test_known_contact_keeps_counting_and_a_new_profile_name_is_stored(self):
        srv = self.server
        tc = tenant_with_channel(srv)[0]
        wa_id = "15550008401"

        def send(text, name, ts):
            wamid = unique_wamid("known")
            msg = text_message(wa_id, text, wamid, ts)
            body = envelope(entry(messages_change(
                tc.phone_number_id, [msg],
                contacts=[{"profile": {"name": name}, "wa_id": wa_id}])))
            self.post_ok(body)
            self.assertTrue(wait_until(lambda: message_by_wamid(srv, tc.key, wamid), 15),
                            f"{wamid} not stored" + self._logs())

        def stored():
            c = conversation_of(srv, tc.key, wa_id)
            contact = srv.sql("SELECT profile_name FROM contacts "
                              f"WHERE wa_id = {sql_quote(wa_id)} AND tenant_id = "
                              f"(SELECT tenant_id FROM channels WHERE id = '{tc.channel_id}')")
            return c, contact

        def contact_xmax():
            # An upsert that changes nothing still locks the row, which sets xmax: unchanged
            # xmax means the known contact's messages did not touch its row at all.
            return srv.sql(f"SELECT xmax FROM contacts WHERE wa_id = {sql_quote(wa_id)}")

        t0 = 1_800_000_000
        send("first", "Ada", t0)
        untouched = contact_xmax()
        send("second", "Ada", t0 + 60)
        send("third", "Ada", t0 + 120)
        self.assertEqual(contact_xmax(), untouched, "a known contact's row was upserted again")
        c, contact = stored()
        self.assertEqual(c["unread_count"], 3, c)
        self.assertEqual(c["contact"]["name"], "Ada", c)
        self.assertEqual(contact, "Ada")
        self.assertTrue(c["last_inbound_at"].startswith("2027-01-15T08:02:00"), c)
        send("fourth", "Ada L.", t0 + 180)
        c, contact = stored()
        self.assertEqual(c["unread_count"], 4, c)
        self.assertEqual(c["contact"]["name"], "Ada L.", c)
        self.assertEqual(contact, "Ada L.")
        send("fifth", "Ada L.", t0 + 240)
        c, contact = stored()
        self.assertEqual(c["unread_count"], 5, c)
        self.assertEqual(c["contact"]["name"], "Ada L.", c)
        self.assertEqual(len(messages_of(srv, tc.key, c["id"])), 5)

    # A known contact whose rows vanished behind its conversation actor's back (deleted by hand
    # here): the first attempt fails without its conversation, the actor forgets what it knew,
    # and the retry upserts the rows again. Nothing acknowledged is lost.
    def test_known_contact_whose_rows_vanished_is_stored_again(self):
        srv = self.server
        tc = tenant_with_channel(srv)[0]
        wa_id = "15550008501"

        def send(text):
            wamid = unique_wamid("vanished")
            body = envelope(entry(messages_change(
                tc.phone_number_id, [text_message(wa_id, text, wamid)],
                contacts=[{"profile": {"name": "Grace"}, "wa_id": wa_id}])))
            self.post_ok(body)
            return wamid

        first = send("first")
        self.assertTrue(wait_until(lambda: message_by_wamid(srv, tc.key, first), 15))
        second = send("second")  # known now
        self.assertTrue(wait_until(lambda: message_by_wamid(srv, tc.key, second), 15))
        srv.sql("DELETE FROM messages WHERE from_wa = " + sql_quote(wa_id) + "; "
                "DELETE FROM conversations WHERE wa_id = " + sql_quote(wa_id) + "; "
                "DELETE FROM contacts WHERE wa_id = " + sql_quote(wa_id))
        third = send("third")
        self.assertTrue(wait_until(lambda: message_by_wamid(srv, tc.key, third), 20),
                        "the message of a known contact whose rows vanished was not stored"
                        + self._logs())
        c = conversation_of(srv, tc.key, wa_id)
        self.assertIsNotNone(c)
        self.assertEqual(c["contact"]["name"], "Grace", c)
        self.assertEqual(srv.sql("SELECT count(*) FROM contacts WHERE wa_id = "
                                 + sql_quote(wa_id)), "1")

    # Regression: jsonb cannot hold U+0000, so every insert of such a message failed ("unsupported
    # Unicode escape sequence") and the acknowledged event was retried forever, never stored.
    def test_nul_character_in_a_message_is_stored(self):
        srv = self.server
        tc = tenant_with_channel(srv)[0]
        bad, good = unique_wamid("nul"), unique_wamid("beside-nul")
        body = envelope(entry(messages_change(tc.phone_number_id, [
            text_message("15550008201", "before\u0000after", bad),
            text_message("15550008202", "healthy neighbour", good)])))
        rid = self.post_with_id(body, "nul")
        self.assertIn(wait_event(srv, rid, timeout=10)[0], ("accepted", "partial"))
        self.assertIsNotNone(message_by_wamid(srv, tc.key, good), "the healthy message was lost")
        stored = message_by_wamid(srv, tc.key, bad)
        self.assertIsNotNone(stored, "the NUL message was lost")
        self.assertNotIn("\x00", stored["content"]["body"])
        self.assertTrue(stored["content"]["body"].startswith("before"), stored)
        # The raw webhook keeps the original bytes.
        escaped_nul = b"\\u0000".hex()
        raw = srv.sql(f"SELECT position(decode('{escaped_nul}', 'hex') IN body) > 0 "
                      "FROM raw_webhook_events "
                      f"WHERE request_id = {sql_quote(rid)}")
        self.assertEqual(raw, "t")

    # Regression: a timestamp beyond PostgreSQL's range failed every insert ("timestamp out of
    # range") and the acknowledged event was retried forever, never stored.
    def test_out_of_range_timestamp_is_stored(self):
        srv = self.server
        tc = tenant_with_channel(srv)[0]
        wamid = unique_wamid("ts")
        rid = self.post_with_id(text_body(tc.phone_number_id, "15550008301", "far future", wamid,
                                          ts=10**15), "far-future")
        self.assertEqual(wait_event(srv, rid, timeout=10)[0], "accepted")
        self.assertIsNotNone(message_by_wamid(srv, tc.key, wamid))


if __name__ == "__main__":
    unittest.main()
