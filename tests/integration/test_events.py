"""GET /v1/events (Server-Sent Events, API.md) on the real binary: a tenant's stream carries
message.created for inbound webhooks and accepted sends, message.status for Meta's status reports
and for sends that reached the fake Graph API, conversation.updated for PATCHes and channel.state
for a token Meta refuses; a reconnect with Last-Event-ID gets what it missed, exactly once; an id
too old gets one stream.resync; a malformed one is 400; without credentials 401; and one tenant
never sees another's events. Streams end cleanly when the server drains (SIGTERM)."""
import base64
import hashlib
import hmac
import http.client
import json
import queue
import secrets
import socket
import threading
import time
import unittest
from typing import List, Optional, Tuple

from harness import ParleyTestCase, import_fake, require_environment
from webhook_fixtures import (metric, post_webhook, status, status_body, tenant_with_channel,
                              text_body, unique_wamid, wait_until)

fake_graph = import_fake("fake_graph")

setUpModule = require_environment

APP_SECRET = "platform-secret-" + secrets.token_hex(8)
WAIT = 15.0


def new_wa_id() -> str:
    return "1555" + str(secrets.randbelow(10**8)).zfill(8)


class EventStream:
    """One open GET /v1/events; a thread parses frames into a queue of (id, type, data)."""

    def __init__(self, port: int, key: Optional[str], last_event_id: Optional[str] = None,
                 query: str = ""):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
        headers = {"Accept": "text/event-stream"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.conn.request("GET", "/v1/events" + query, headers=headers)
        # getresponse() hands a Connection: close socket over to the response (conn.sock None).
        self.sock = self.conn.sock
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = self.resp.headers
        self.events: "queue.Queue[Tuple[str, str, object]]" = queue.Queue()
        self.comments = 0
        self.retry: Optional[int] = None
        self.ended = threading.Event()
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()
        else:
            self.body = self.resp.read()
            self.ended.set()

    def _read(self) -> None:
        frame = {}
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                line = line.decode().rstrip("\n")
                if line == "":
                    if "event" in frame:
                        self.events.put((frame.get("id"), frame["event"],
                                         json.loads(frame.get("data", "null"))))
                    frame = {}
                elif line.startswith(":"):
                    self.comments += 1
                else:
                    name, _, value = line.partition(": ")
                    if name == "retry":
                        self.retry = int(value)
                    else:
                        frame[name] = value
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            pass  # the connection ended (AttributeError: http.client after close())
        finally:
            self.ended.set()

    def next(self, etype: Optional[str] = None, timeout: float = WAIT) -> Tuple[str, str, object]:
        """The next event (of `etype` when given; others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {etype or 'event'} within {timeout} s")
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if etype is None or ev[1] == etype:
                return ev

    def drain_now(self) -> List[Tuple[str, str, object]]:
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        # shutdown() wakes the reader blocked in recv at once and sends the server our EOF;
        # closing the response first would wait for that read (the socket timeout).
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.ended.wait(WAIT)
        self.resp.close()
        self.conn.close()


class EventsCase(ParleyTestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = fake_graph.FakeGraph().start()
        cls.addClassCleanup(cls.fake.stop)
        cls.server = cls.start_server(env={"PARLEY_WHATSAPP_APP_SECRET": APP_SECRET,
                                           "PARLEY_OUTBOUND_BACKOFF_BASE_MS": "20",
                                           "PARLEY_OUTBOUND_BACKOFF_MAX_MS": "200"})

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def open(self, key: str, last_event_id: Optional[str] = None) -> EventStream:
        s = EventStream(self.server.port, key, last_event_id)
        self.addCleanup(s.close)
        return s

    def inbound(self, pnid: str, wa: str, text: str = "hello") -> str:
        wamid = unique_wamid("ev")
        r = post_webhook(self.server, text_body(pnid, wa, text, wamid), APP_SECRET)
        self.assertStatus(r, 200, "webhook")
        return wamid

    def subscribed(self, stream: EventStream) -> None:
        """The subscription is registered once the stream's first bytes (retry:) arrived."""
        wait_until(lambda: stream.retry is not None, WAIT)

    # -- the stream itself

    def test_stream_headers_and_inbound_message_created(self):
        t = tenant_with_channel(self.server)[0]
        s = self.open(t.key)
        self.assertEqual(s.status, 200)
        self.assertEqual(s.headers.get("Content-Type"), "text/event-stream")
        self.assertEqual(s.headers.get("Cache-Control"), "no-cache")
        self.subscribed(s)
        self.assertEqual(s.retry, 2000)
        wa = new_wa_id()
        wamid = self.inbound(t.phone_number_id, wa, "where is my order?")
        eid, etype, data = s.next("message.created")
        self.assertRegex(eid, r"^\d+-\d+$")
        self.assertEqual(data["wa_message_id"], wamid, data)
        self.assertEqual(data["direction"], "inbound")
        self.assertEqual(data["from"], wa)
        self.assertEqual(data["type"], "text")
        self.assertEqual(data["status"], "received")
        self.assertEqual(data["channel_id"], t.channel_id)
        self.assertEqual(data["content"]["body"], "where is my order?", data)
        # The ids are the ones the REST API knows.
        m = self.server.request("GET", f"/v1/messages/{data['id']}", token=t.key)
        self.assertStatus(m, 200)
        self.assertEqual(m.body["conversation_id"], data["conversation_id"])
        self.assertEqual(m.body["wa_message_id"], wamid)
        # Meta's retry of the same message is no new message.
        post_webhook(self.server, text_body(t.phone_number_id, wa, "where is my order?", wamid),
                     APP_SECRET)
        wamid2 = self.inbound(t.phone_number_id, wa, "second")
        _, _, data2 = s.next("message.created")
        self.assertEqual(data2["wa_message_id"], wamid2, "the duplicate made no event")
        self.assertGreaterEqual(metric(self.server, "parley_event_streams_open"), 1)

    def test_status_reports_and_conversation_patch(self):
        t = tenant_with_channel(self.server)[0]
        s = self.open(t.key)
        self.subscribed(s)
        wa = new_wa_id()
        self.inbound(t.phone_number_id, wa)
        _, _, created = s.next("message.created")
        wamid = "wamid.out-" + secrets.token_hex(6)
        r = post_webhook(self.server, status_body(t.phone_number_id,
                                                  [status(wamid, "delivered", wa)]), APP_SECRET)
        self.assertStatus(r, 200)
        _, _, st = s.next("message.status")
        self.assertEqual(st["wa_message_id"], wamid)
        self.assertEqual(st["status"], "delivered")
        self.assertEqual(st["recipient"], wa)
        conv = created["conversation_id"]
        p = self.server.request("PATCH", f"/v1/conversations/{conv}",
                                {"status": "resolved", "assignee": "ana"}, token=t.key)
        self.assertStatus(p, 200)
        _, _, up = s.next("conversation.updated")
        self.assertEqual(up["id"], conv)
        self.assertEqual(up["status"], "resolved")
        self.assertEqual(up["assignee"], "ana")
        self.assertEqual(up, p.body, "the event carries the conversation as the answer shows it")

    def test_outbound_send_created_then_sent_and_token_invalid_channel_state(self):
        t = self.server.create_tenant()
        key = self.server.create_api_key(t["id"])["key"]
        pnid = str(secrets.randbelow(10**14) + 10**14)
        token = "EAAG-" + secrets.token_hex(20)
        ch = self.server.create_channel(t["id"], phone_number_id=pnid, access_token=token,
                                        graph_base_url=self.fake.url)
        self.fake.set_token(pnid, token)
        s = self.open(key)
        self.subscribed(s)
        body = {"channel_id": ch["id"], "to": new_wa_id(), "type": "template",
                "template": {"name": "hello_world", "language": {"code": "en_US"}}}
        r = self.server.request("POST", "/v1/messages", body, token=key)
        self.assertStatus(r, 202)
        _, _, created = s.next("message.created")
        self.assertEqual(created["id"], r.body["id"])
        self.assertEqual(created["direction"], "outbound")
        self.assertEqual(created["status"], "pending")
        _, _, sent = s.next("message.status")
        self.assertEqual(sent["id"], r.body["id"])
        self.assertEqual(sent["status"], "sent")
        self.assertTrue(sent["wa_message_id"], sent)
        # Meta refuses the token: the channel's state change reaches the stream.
        self.fake.set_token(pnid, "EAAG-rotated-" + secrets.token_hex(8))
        body["to"] = new_wa_id()
        self.assertStatus(self.server.request("POST", "/v1/messages", body, token=key), 202)
        _, _, state = s.next("channel.state")
        self.assertEqual(state["id"], ch["id"])
        self.assertEqual(state["state"], "token_invalid")
        self.assertEqual(state["previous"], "connected")
        self.assertTrue(state["reason"], state)

    # -- Last-Event-ID

    def test_reconnect_with_last_event_id_gets_what_it_missed_once(self):
        t = tenant_with_channel(self.server)[0]
        s = self.open(t.key)
        self.subscribed(s)
        wa = new_wa_id()
        w1 = self.inbound(t.phone_number_id, wa, "one")
        first_id, _, d1 = s.next("message.created")
        self.assertEqual(d1["wa_message_id"], w1)
        s.close()
        self.assertTrue(s.ended.is_set())
        # While nobody listens: kept for the reconnect.
        w2 = self.inbound(t.phone_number_id, wa, "two")
        w3 = self.inbound(t.phone_number_id, wa, "three")
        wait_until(lambda: self.server.sql(
            f"SELECT count(*) FROM messages WHERE wamid IN ('{w2}', '{w3}')").strip() == "2", WAIT)
        again = self.open(t.key, last_event_id=first_id)
        self.assertEqual(again.status, 200)
        got = [again.next("message.created")[2]["wa_message_id"] for _ in range(2)]
        self.assertEqual(sorted(got), sorted([w2, w3]))
        w4 = self.inbound(t.phone_number_id, wa, "four")
        self.assertEqual(again.next("message.created")[2]["wa_message_id"], w4)
        time.sleep(0.3)  # a doubled replay would have arrived by now
        self.assertEqual([e for e in again.drain_now() if e[1] == "message.created"], [])

    def test_too_old_last_event_id_is_one_resync(self):
        t = tenant_with_channel(self.server)[0]
        s = self.open(t.key, last_event_id="1000-0")
        self.assertEqual(s.status, 200)
        eid, etype, data = s.next()
        self.assertEqual(etype, "stream.resync")
        self.assertEqual(data["last_event_id"], "1000-0")
        self.assertIn("REST API", data["message"])
        w = self.inbound(t.phone_number_id, new_wa_id())
        _, _, d = s.next("message.created")
        self.assertEqual(d["wa_message_id"], w)

    # -- bad requests and isolation

    def test_bad_requests(self):
        t = tenant_with_channel(self.server)[0]
        s = self.open(t.key, last_event_id="yesterday")
        self.assertEqual(s.status, 400)
        err = json.loads(s.body)["error"]
        self.assertEqual(err["code"], "invalid_request")
        self.assertIn("Last-Event-ID", err["message"])
        r = self.server.request("GET", "/v1/events")
        self.assertError(r, 401)
        r = self.server.request("GET", "/v1/events", token="pk_live_not-a-key")
        self.assertError(r, 401)
        r = self.server.request("POST", "/v1/events", {})
        self.assertError(r, 405)

    def test_tenants_never_see_each_others_events(self):
        a, b = tenant_with_channel(self.server)[0], tenant_with_channel(self.server)[0]
        sa, sb = self.open(a.key), self.open(b.key)
        self.subscribed(sa)
        self.subscribed(sb)
        wa_a = self.inbound(a.phone_number_id, new_wa_id(), "for a")
        wa_b = self.inbound(b.phone_number_id, new_wa_id(), "for b")
        self.assertEqual(sa.next("message.created")[2]["wa_message_id"], wa_a)
        self.assertEqual(sb.next("message.created")[2]["wa_message_id"], wa_b)
        time.sleep(0.3)
        self.assertEqual(sa.drain_now(), [])
        self.assertEqual(sb.drain_now(), [])


class StreamLimitCase(ParleyTestCase):
    def test_a_tenant_may_hold_the_configured_number_of_streams(self):
        srv = self.start_server(env={"PARLEY_WHATSAPP_APP_SECRET": APP_SECRET,
                                     "PARLEY_HTTP_MAX_EVENT_STREAMS_PER_TENANT": "2"})
        self.addCleanup(srv.stop)
        t, other = tenant_with_channel(srv)[0], tenant_with_channel(srv)[0]
        first, second = EventStream(srv.port, t.key), EventStream(srv.port, t.key)
        self.addCleanup(second.close)
        for s in (first, second):
            self.assertEqual(s.status, 200)
            wait_until(lambda s=s: s.retry is not None, WAIT)
        third = EventStream(srv.port, t.key)
        self.assertEqual(third.status, 429)
        err = json.loads(third.body)["error"]
        self.assertEqual(err["code"], "rate_limited")
        self.assertIn("max_event_streams_per_tenant", err["message"])
        third.close()
        mine = EventStream(srv.port, other.key)  # the limit is per tenant
        self.addCleanup(mine.close)
        self.assertEqual(mine.status, 200)
        first.close()
        wait_until(lambda: metric(srv, "parley_event_streams_open") == 2, WAIT)
        again = EventStream(srv.port, t.key)
        self.addCleanup(again.close)
        self.assertEqual(again.status, 200)


JWT_SECRET = "jwt-" + secrets.token_hex(24)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def resigned(token: str, **changes) -> str:
    """The access token `token` with `changes` to its claims, signed again with JWT_SECRET."""
    header, payload, _ = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    signing_input = header + "." + b64url(json.dumps(claims).encode())
    sig = hmac.new(JWT_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(sig)


CONSOLE = "https://console.example"


class BrowserStreamCase(ParleyTestCase):
    """EventSource cannot set headers: a user's access token may come as ?access_token=, and a
    stream opened with an access token ends when the token expires."""

    @classmethod
    def setUpClass(cls):
        cls.server = cls.start_server(env={"PARLEY_WHATSAPP_APP_SECRET": APP_SECRET,
                                           "PARLEY_SECURITY_JWT_SECRET": JWT_SECRET,
                                           "PARLEY_SECURITY_PASSWORD_SCRYPT_LOG_N": "12",
                                           "PARLEY_HTTP_EVENT_STREAM_RECHECK_S": "1",
                                           "PARLEY_HTTP_CORS_ALLOWED_ORIGINS": CONSOLE})
        cls.tc = tenant_with_channel(cls.server)[0]
        password = "pw-" + secrets.token_hex(12)
        email = f"agent-{secrets.token_hex(4)}@example.com"
        r = cls.server.request("POST", f"/v1/tenants/{cls.tc.tenant_id}/users",
                               {"email": email, "password": password, "role": "agent",
                                "name": "Agent"}, token=cls.server.admin_token)
        cls.server.expect(r, 201, "create user")
        cls.user = {"email": email, "password": password}

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def access_token(self) -> str:
        r = self.server.request("POST", "/v1/auth/login", self.user)
        self.assertStatus(r, 200, "login")
        return r.body["access_token"]

    def open_query(self, query: str, key: Optional[str] = None,
                   last_event_id: Optional[str] = None) -> EventStream:
        s = EventStream(self.server.port, key, last_event_id, query=query)
        self.addCleanup(s.close)
        return s

    def inbound(self) -> str:
        """A customer's text to the tenant's channel; its wamid."""
        wamid = unique_wamid("ev")
        r = post_webhook(self.server, text_body(self.tc.phone_number_id, new_wa_id(), "hi", wamid),
                         APP_SECRET)
        self.assertStatus(r, 200, "webhook")
        return wamid

    def test_access_token_in_the_query_opens_the_tenants_stream(self):
        s = self.open_query("?access_token=" + self.access_token())
        self.assertEqual(s.status, 200)
        wait_until(lambda: s.retry is not None, WAIT)
        wamid = self.inbound()
        self.assertEqual(s.next("message.created")[2]["wa_message_id"], wamid)

    def test_only_access_tokens_may_travel_in_the_query(self):
        s = self.open_query("?access_token=" + self.tc.key)  # an API key: never in a URL
        self.assertEqual(s.status, 401)
        err = json.loads(s.body)["error"]
        self.assertEqual(err["code"], "unauthorized")
        self.assertIn("Authorization header", err["message"])
        s = self.open_query("?access_token=" + self.server.admin_token)
        self.assertEqual(s.status, 401)
        s = self.open_query("?access_token=" + self.access_token(), key=self.tc.key)
        self.assertEqual(s.status, 400)
        err = json.loads(s.body)["error"]
        self.assertEqual(err["code"], "invalid_request")
        self.assertIn("not both", err["message"])
        # The token of a URL never reaches the logs (proxies are the operator's: docs/events.md).
        token = self.access_token()
        ok = self.open_query("?access_token=" + token)
        self.assertEqual(ok.status, 200)
        wait_until(lambda: ok.retry is not None, WAIT)
        ok.close()
        self.assertNotIn(token.split(".")[2], self.server.logs(tail=100000))
        forged = resigned(self.access_token())[:-4] + "AAAA"
        s = self.open_query("?access_token=" + forged)
        self.assertEqual(s.status, 401)
        expired = resigned(self.access_token(), exp=int(time.time()) - 60)
        s = self.open_query("?access_token=" + expired)
        self.assertEqual(s.status, 401)
        self.assertIn("expired", json.loads(s.body)["error"]["message"])

    def test_stream_ends_when_its_access_token_expires_and_resumes_without_a_gap(self):
        token = resigned(self.access_token(), exp=int(time.time()) + 3)
        s = self.open_query("?access_token=" + token)
        self.assertEqual(s.status, 200)
        wait_until(lambda: s.retry is not None, WAIT)
        first = self.inbound()
        eid, _, data = s.next("message.created")
        self.assertEqual(data["wa_message_id"], first)
        ident, etype, data = s.next("stream.expired", timeout=10)
        self.assertIsNone(ident)  # not an event of the tenant: Last-Event-ID stays put
        self.assertEqual(data["reason"], "credential_expired")
        self.assertTrue(s.ended.wait(5), "the stream did not end")
        # Meanwhile a message arrives; a new stream with a fresh token resumes after `eid`.
        second = self.inbound()
        again = self.open_query("?access_token=" + self.access_token() + "&last_event_id=" + eid)
        self.assertEqual(again.status, 200)
        self.assertEqual(again.next("message.created")[2]["wa_message_id"], second)

    def test_revoking_the_key_or_ending_the_session_ends_the_stream(self):
        key = self.server.create_api_key(self.tc.tenant_id, "to revoke")
        by_key = self.open_query("", key=key["key"])
        self.assertEqual(by_key.status, 200)
        r = self.server.request("POST", "/v1/auth/login", self.user)
        self.assertStatus(r, 200, "login")
        by_user = self.open_query("?access_token=" + r.body["access_token"])
        self.assertEqual(by_user.status, 200)
        for s in (by_key, by_user):
            wait_until(lambda s=s: s.retry is not None, WAIT)
        r2 = self.server.admin("DELETE", f"/v1/tenants/{self.tc.tenant_id}/api-keys/{key['id']}")
        self.assertIn(r2.status, (200, 204), r2.body)
        r3 = self.server.request("POST", "/v1/auth/logout",
                                 {"refresh_token": r.body["refresh_token"]})
        self.assertIn(r3.status, (200, 204), r3.body)
        for s in (by_key, by_user):
            ident, _, data = s.next("stream.expired", timeout=15)
            self.assertIsNone(ident)
            self.assertEqual(data["reason"], "credential_revoked")
            self.assertTrue(s.ended.wait(5), "the stream did not end")

    def test_a_console_on_another_origin_may_open_the_stream(self):
        """CORS (http.cors_allowed_origins): the browser's preflight and the stream's answer."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=WAIT)
        self.addCleanup(conn.close)
        conn.request("OPTIONS", "/v1/events", headers={
            "Origin": CONSOLE, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "last-event-id"})
        r = conn.getresponse()
        r.read()
        self.assertEqual(r.status, 204)
        self.assertEqual(r.getheader("Access-Control-Allow-Origin"), CONSOLE)
        self.assertIn("Last-Event-ID", r.getheader("Access-Control-Allow-Headers"))
        conn.request("OPTIONS", "/v1/events", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
        r = conn.getresponse()
        body = json.loads(r.read())
        self.assertEqual(r.status, 403)
        self.assertIn("cors_allowed_origins", body["error"]["message"])
        stream = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=WAIT)
        self.addCleanup(stream.close)
        stream.request("GET", "/v1/events?access_token=" + self.access_token(),
                       headers={"Origin": CONSOLE, "Accept": "text/event-stream"})
        r = stream.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("Access-Control-Allow-Origin"), CONSOLE)
        self.assertEqual(r.readline(), b"retry: 2000\n")

    def test_api_key_streams_do_not_expire(self):
        s = self.open_query("", key=self.tc.key)
        self.assertEqual(s.status, 200)
        wait_until(lambda: s.retry is not None, WAIT)
        self.assertFalse(s.ended.wait(2.5))  # rechecked twice meanwhile, still valid


class DrainCase(ParleyTestCase):
    def test_sigterm_ends_open_streams_and_exits_0(self):
        srv = self.start_server(env={"PARLEY_WHATSAPP_APP_SECRET": APP_SECRET})
        t = tenant_with_channel(srv)[0]
        s = EventStream(srv.port, t.key)
        self.addCleanup(s.close)
        wait_until(lambda: s.retry is not None, WAIT)
        self.assertEqual(srv.stop(), 0)
        self.assertTrue(s.ended.wait(WAIT), "the stream ended with the server")


if __name__ == "__main__":
    unittest.main()
