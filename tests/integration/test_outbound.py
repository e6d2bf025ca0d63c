"""Outbound WhatsApp (issue #4) end to end: POST /v1/messages on the real binary, with the fake
Graph API (tests/fakes/fake_graph.py) standing in for Meta. Every message type reaching Meta with
the right body, the 24-hour window, client_message_id idempotency, validation, channel
resolution, status webhooks moving sent messages forward, retries (throttling, 5xx, dropped
connections, Retry-After), permanent failures, exhausted attempts, an expired token pausing the
channel until a new one is PATCHed, mark-as-read, throughput, keep-alive reuse, health checks,
metrics, tenant isolation, and a SIGKILL in the middle of a 300-message burst.

Retries are made fast through the environment (backoff 20..200 ms, 4 attempts). Waits poll with a
deadline; the only bounded "nothing happens" observation (a paused channel sends nothing) is
documented where it is made."""
import http.client
import json
import re
import secrets
import signal
import sys
import threading
import time
import unittest
import uuid
from typing import NamedTuple, Optional

from harness import (ParleyServer, ParleyTestCase, RestartTestCase, http_request, import_fake,
                     require_environment)
from webhook_fixtures import (conversation_of, entry, envelope, message_by_wamid,
                              messages_change, metric, post_webhook, scrape, text_body,
                              text_message, unique_wamid, wait_processed, wait_until)

fake_graph = import_fake("fake_graph")
FakeGraph = fake_graph.FakeGraph
title_of = fake_graph.title_of

setUpModule = require_environment

APP_SECRET = "platform-secret-" + secrets.token_hex(8)
MAX_ATTEMPTS = 4
GRAPH_VERSION = "v21.0"  # the default of whatsapp.graph_version
SEND_TIMEOUT = 20.0
OUTBOUND_ENV = {
    "PARLEY_WHATSAPP_APP_SECRET": APP_SECRET,
    "PARLEY_OUTBOUND_BACKOFF_BASE_MS": "20",
    "PARLEY_OUTBOUND_BACKOFF_MAX_MS": "200",
    "PARLEY_OUTBOUND_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    # Meta's per-recipient pair limit (outbound.pair_burst, then one per pair_interval_ms) is
    # not what these tests measure; several send more than 10 messages to one contact.
    "PARLEY_OUTBOUND_PAIR_BURST": "1000",
}
METRIC_NAMES = ("parley_outbound_messages_total", "parley_outbound_attempts_total",
                "parley_outbound_retries_total", "parley_outbound_outbox_depth",
                "parley_channels", "parley_outbound_token_waits_total",
                "parley_graph_request_seconds", "parley_outbound_in_doubt_total")


class Chan(NamedTuple):
    tenant_id: str
    key: str
    channel_id: str
    pnid: str
    token: str


def new_wa_id() -> str:
    return "1555" + str(secrets.randbelow(10**8)).zfill(8)


def new_tag(prefix: str = "t") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def template(tag: str, name: str = "order_update") -> dict:
    """A template payload carrying `tag` in a body parameter (so the fake can find it)."""
    return {"name": name, "language": {"code": "en_US"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": tag}]}]}


def create_tenant(srv: ParleyServer, fake: FakeGraph, channels: int = 1, **fields) -> list:
    """A tenant, an API key and `channels` channels whose Graph API is `fake` (each with its own
    phone_number_id and token, registered with the fake)."""
    t = srv.create_tenant()
    key = srv.create_api_key(t["id"])["key"]
    out = []
    for _ in range(channels):
        pnid = str(secrets.randbelow(10**14) + 10**14)
        token = "EAAG-" + secrets.token_hex(20)
        body = {"phone_number_id": pnid, "access_token": token, "graph_base_url": fake.url}
        body.update(fields)
        ch = srv.create_channel(t["id"], **body)
        fake.set_token(pnid, token)
        out.append(Chan(t["id"], key, ch["id"], pnid, token))
    return out


class OutboundCase(ParleyTestCase):
    """One fake Graph API and one server per class; every test makes its own tenant/channels
    (faults are injected per phone_number_id, so tests never see each other's)."""

    env: dict = {}
    tls = False  # https fake, its CA trusted through whatsapp.graph_ca_file
    fake: FakeGraph

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeGraph(tls=cls.tls).start()
        cls.addClassCleanup(cls.fake.stop)
        env = dict(OUTBOUND_ENV)
        if cls.tls:
            env["PARLEY_WHATSAPP_GRAPH_CA_FILE"] = cls.fake.ca_file
        env.update(cls.env)
        cls.server = cls.start_server(env=env)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    # -- set-up

    def tenant(self, channels: int = 1, **fields) -> list:
        return create_tenant(self.server, self.fake, channels, **fields)

    def inbound(self, ch: Chan, wa: str, text: str = "hi, I need help",
                ts: Optional[int] = None) -> str:
        """A signed inbound text from `wa` on `ch`, processed; returns its wamid."""
        wamid = unique_wamid("in")
        r = post_webhook(self.server, text_body(ch.pnid, wa, text, wamid, ts), APP_SECRET)
        self.assertStatus(r, 200, "inbound webhook")
        wait_processed(self.server)
        return wamid

    # -- the API

    def send(self, ch: Chan, body: dict, key: Optional[str] = None, with_channel: bool = True,
             srv: Optional[ParleyServer] = None):
        body = dict(body)
        if with_channel:
            body.setdefault("channel_id", ch.channel_id)
        return (srv or self.server).request("POST", "/v1/messages", body, token=key or ch.key)

    def send_ok(self, ch: Chan, body: dict, status: int = 202, **kw) -> dict:
        r = self.send(ch, body, **kw)
        self.assertStatus(r, status, f"POST /v1/messages {json.dumps(body)[:300]}")
        self.assertIsInstance(r.body, dict, r.describe())
        return r.body

    def text(self, ch: Chan, wa: str, tag: str, **kw) -> dict:
        return self.send_ok(ch, {"to": wa, "type": "text", "text": {"body": f"msg {tag}"}}, **kw)

    def template_to(self, ch: Chan, wa: str, tag: str, **kw) -> dict:
        return self.send_ok(ch, {"to": wa, "type": "template", "template": template(tag)}, **kw)

    def get_message(self, ch: Chan, mid: str) -> dict:
        r = self.server.request("GET", f"/v1/messages/{mid}", token=ch.key)
        self.assertStatus(r, 200, f"GET /v1/messages/{mid}")
        return r.body

    def attempts(self, ch: Chan, mid: str) -> list:
        r = self.server.request("GET", f"/v1/messages/{mid}/attempts", token=ch.key)
        self.assertStatus(r, 200, f"GET /v1/messages/{mid}/attempts")
        self.assertIsNone(r.body.get("next_cursor"), r.body)
        return r.body["data"]

    def channel(self, ch: Chan) -> dict:
        r = self.server.request("GET", f"/v1/channels/{ch.channel_id}", token=ch.key)
        self.assertStatus(r, 200, "GET channel")
        return r.body

    def patch_channel(self, ch: Chan, body: dict, key: Optional[str] = None):
        return self.server.request("PATCH", f"/v1/channels/{ch.channel_id}", body,
                                   token=key or ch.key)

    # -- waiting

    def fake_summary(self, ch: Chan) -> str:
        rows = [(r["seq"], r["method"], r["endpoint"], r["status"], r["outcome"],
                 (r["body"] or {}).get("type") if isinstance(r["body"], dict) else None)
                for r in self.fake.requests(ch.pnid)]
        return f"fake Graph API saw for {ch.pnid}: {rows}"

    def wait_status(self, ch: Chan, mid: str, want, timeout: float = SEND_TIMEOUT) -> dict:
        """Polls GET /v1/messages/{id} until its status is `want` (a string or a set)."""
        want = {want} if isinstance(want, str) else set(want)
        last = {}

        def done():
            r = self.server.request("GET", f"/v1/messages/{mid}", token=ch.key)
            last["r"] = r.describe()
            if r.status != 200:
                return None
            if r.body.get("status") in want:
                return r.body
            # failed is terminal: no point waiting for anything else
            return {"unwanted": True} if r.body.get("status") == "failed" else None
        m = wait_until(done, timeout)
        if not m or m.get("unwanted"):
            r = self.server.request("GET", f"/v1/messages/{mid}/attempts", token=ch.key)
            self.fail(f"message {mid} not {sorted(want)} within {timeout} s; last {last.get('r')}"
                      f"\nattempts: {r.describe()}\n{self.fake_summary(ch)}{self._logs()}")
        return m

    def wait_channel(self, ch: Chan, pred, what: str, timeout: float = SEND_TIMEOUT) -> dict:
        last = {}

        def done():
            c = self.channel(ch)
            last["c"] = c
            return c if pred(c) else None
        c = wait_until(done, timeout)
        if not c:
            self.fail(f"channel {ch.channel_id}: {what} not reached within {timeout} s; last "
                      f"{last.get('c')}\n{self.fake_summary(ch)}{self._logs()}")
        return c

    def wait_fake(self, pred, what: str, ch: Chan, timeout: float = SEND_TIMEOUT):
        v = self.fake.wait_for(pred, timeout)
        if not v:
            self.fail(f"{what} within {timeout} s\n{self.fake_summary(ch)}{self._logs()}")
        return v

    def graph_sends(self, ch: Chan, tag: str) -> list:
        """Every message request (whatever the answer) carrying `tag`."""
        return self.fake.tagged(tag, ch.pnid, sent_only=False)

    def assertAttempts(self, atts: list, outcomes: list, what: str = "") -> None:
        ctx = f"{what}: {json.dumps(atts)}"
        self.assertEqual([a["outcome"] for a in atts], outcomes, ctx)
        self.assertEqual([a["attempt"] for a in atts], list(range(1, len(outcomes) + 1)), ctx)
        for a in atts:
            self.assertIsInstance(a["started_at"], str, ctx)
            self.assertIsInstance(a["latency_ms"], int, ctx)
            self.assertGreaterEqual(a["latency_ms"], 0, ctx)
            for k in ("http_status", "error_code", "error_title", "wamid"):
                self.assertIn(k, a, ctx)


class SendTest(OutboundCase):
    # -- every type

    def test_every_type_is_accepted_and_reaches_graph_with_the_right_body(self):
        ch = self.tenant()[0]
        wa = new_wa_id()
        in_wamid = self.inbound(ch, wa)
        in_msg = message_by_wamid(self.server, ch.key, in_wamid)
        tag = new_tag("types")
        # (type, what the client sends, what Meta must receive as <type>)
        cases = [
            ("text", {"body": f"text {tag}", "preview_url": False}, None),
            ("image", {"link": "https://example.com/cat.jpg", "caption": f"image {tag}"}, None),
            ("audio", {"id": "1013859600285441"}, None),
            ("video", {"link": "https://example.com/v.mp4", "caption": f"video {tag}"}, None),
            ("document", {"link": "https://example.com/a.pdf", "filename": "a.pdf",
                          "caption": f"doc {tag}"}, None),
            ("sticker", {"id": "2345678901234567"}, None),
            ("location", {"latitude": 52.52, "longitude": 13.405, "name": f"loc {tag}",
                          "address": "Alexanderplatz 1, Berlin"}, None),
            ("interactive", {"type": "button", "body": {"text": f"pick {tag}"},
                             "action": {"buttons": [
                                 {"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                                 {"type": "reply", "reply": {"id": "no", "title": "No"}}]}},
             None),
            # A reaction names the message by Parley id or by wamid; Meta gets the wamid.
            ("reaction", {"message_id": in_msg["id"], "emoji": "\U0001F44D"},
             {"message_id": in_wamid, "emoji": "\U0001F44D"}),
            ("reaction", {"message_id": in_wamid, "emoji": "\u2764\ufe0f"}, None),
            ("template", template(tag), None),
        ]
        sent = []
        for mtype, obj, expected in cases:
            with self.subTest(mtype):
                # The first one also checks that a leading '+' is accepted and normalised.
                to = "+" + wa if not sent else wa
                m = self.send_ok(ch, {"to": to, "type": mtype, mtype: obj})
                ctx = json.dumps(m)
                self.assertIsInstance(m["id"], str, ctx)
                self.assertEqual(m["direction"], "outbound", ctx)
                self.assertEqual(m["type"], mtype, ctx)
                self.assertEqual(m["status"], "pending", ctx)
                self.assertEqual(m["channel_id"], ch.channel_id, ctx)
                self.assertEqual(m["to"], wa, ctx)
                self.assertIsNone(m["wa_message_id"], ctx)
                self.assertEqual(m["attempts"], 0, ctx)
                self.assertEqual(m["conversation_id"], in_msg["conversation_id"],
                                 f"the message joins the contact's conversation: {ctx}")
                self.assertIsInstance(m["content"], dict, ctx)
                self.assertTrue(m["created_at"], ctx)
                sent.append((m, mtype, expected or obj))
        self.wait_fake(lambda f: len(f.sent_messages(ch.pnid)) >= len(cases),
                       f"{len(cases)} messages did not reach the Graph API", ch)
        records = self.fake.sent_messages(ch.pnid)
        self.assertEqual(len(records), len(cases), "each message reached Meta exactly once")
        for m, mtype, graph_obj in sent:
            with self.subTest(f"graph {mtype}"):
                match = [r for r in records if r["body"].get("type") == mtype
                         and r["body"].get(mtype) == graph_obj]
                self.assertEqual(len(match), 1, f"{mtype}: Meta should get {graph_obj}; got "
                                 f"{[r['body'] for r in records]}")
                r = match[0]
                self.assertEqual(r["body"], {"messaging_product": "whatsapp",
                                             "recipient_type": "individual", "to": wa,
                                             "type": mtype, mtype: graph_obj})
                self.assertEqual(r["path"], f"/{GRAPH_VERSION}/{ch.pnid}/messages")
                self.assertEqual(r["authorization"], f"Bearer {ch.token}")
                done = self.wait_status(ch, m["id"], "sent")
                self.assertEqual(done["wa_message_id"], r["wamid"], json.dumps(done))
                self.assertEqual(done["attempts"], 1, json.dumps(done))
                self.assertTrue(done["sent_at"], json.dumps(done))
                self.assertNotIn("error", done)
                atts = self.attempts(ch, m["id"])
                self.assertAttempts(atts, ["sent"], mtype)
                self.assertEqual((atts[0]["http_status"], atts[0]["wamid"], atts[0]["error_code"]),
                                 (200, r["wamid"], None))

    # -- the 24-hour window

    def test_free_form_needs_the_24_hour_window_and_templates_do_not(self):
        ch1, ch2 = self.tenant(channels=2)
        wa, wa2 = new_wa_id(), new_wa_id()
        for mtype, obj in (("text", {"body": "hello"}),
                           ("image", {"link": "https://example.com/a.jpg"})):
            r = self.send(ch1, {"to": wa, "type": mtype, mtype: obj})
            self.assertError(r, 422, "outside_window", mentions="template",
                             what=f"{mtype} to a contact who never wrote")
        # The window is per channel: writing to the tenant's other number opens nothing here.
        self.inbound(ch2, wa)
        self.assertError(self.send(ch1, {"to": wa, "type": "text", "text": {"body": "x"}}), 422,
                         "outside_window", what="contact wrote to the other channel")
        # A message older than 24 hours (delivered late) opens nothing either.
        self.inbound(ch1, wa, "old", ts=int(time.time()) - 25 * 3600)
        self.assertError(self.send(ch1, {"to": wa, "type": "text", "text": {"body": "x"}}), 422,
                         "outside_window", what="last inbound message 25 h old")
        self.inbound(ch1, wa, "fresh")
        tag = new_tag("win")
        m = self.text(ch1, wa, tag)
        self.wait_status(ch1, m["id"], "sent")
        # Templates are always allowed and create the conversation, but open no window.
        t = self.template_to(ch1, wa2, new_tag("tpl"))
        self.assertTrue(t["conversation_id"], t)
        conv = self.server.request("GET", f"/v1/conversations/{t['conversation_id']}",
                                   token=ch1.key)
        self.assertStatus(conv, 200, "the template's conversation")
        self.assertEqual(conv.body["contact"]["wa_id"], wa2)
        self.assertEqual(conv.body["channel_id"], ch1.channel_id)
        self.wait_status(ch1, t["id"], "sent")
        self.assertError(self.send(ch1, {"to": wa2, "type": "text", "text": {"body": "x"}}), 422,
                         "outside_window", what="after a template only")
        # What was refused never reached Meta.
        by_to = self.fake.count_by(lambda r: r["body"]["to"], ch1.pnid)
        self.assertEqual(by_to, {wa: 1, wa2: 1}, self.fake_summary(ch1))
        self.assertEqual(self.fake.requests(ch2.pnid, "messages"), [])

    # -- idempotency

    def test_client_message_id_makes_a_retry_return_the_same_message(self):
        ch = self.tenant()[0]
        wa, tag = new_wa_id(), new_tag("cmid")
        body = {"to": wa, "type": "template", "template": template(tag),
                "client_message_id": "order-" + tag}
        first = self.send_ok(ch, body, 202)
        self.assertEqual(first["client_message_id"], "order-" + tag)
        again = self.send_ok(ch, body, 200)
        self.assertEqual(again["id"], first["id"], again)
        self.wait_status(ch, first["id"], "sent")
        later = self.send_ok(ch, body, 200)
        self.assertEqual(later["id"], first["id"])
        self.assertEqual(later["status"], "sent", "the retry shows the message as it is now")
        self.assertEqual(len(self.graph_sends(ch, tag)), 1, "Meta got the message once")
        # The key is per tenant: another tenant's same key is another message.
        other = self.tenant()[0]
        theirs = self.send_ok(other, body, 202)
        self.assertNotEqual(theirs["id"], first["id"])
        self.wait_status(other, theirs["id"], "sent")

    def test_concurrent_retries_with_one_client_message_id_make_one_message(self):
        ch = self.tenant()[0]
        tag = new_tag("race")
        body = {"channel_id": ch.channel_id, "to": new_wa_id(), "type": "template",
                "template": template(tag), "client_message_id": tag}
        results, lock = [], threading.Lock()

        def post():
            r = self.server.request("POST", "/v1/messages", body, token=ch.key)
            with lock:
                results.append((r.status, r.body.get("id") if isinstance(r.body, dict) else r))
        threads = [threading.Thread(target=post) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        statuses = sorted(s for s, _ in results)
        self.assertEqual(statuses, [200] * 9 + [202], results)
        ids = {i for _, i in results}
        self.assertEqual(len(ids), 1, results)
        self.wait_status(ch, ids.pop(), "sent")
        self.assertEqual(len(self.graph_sends(ch, tag)), 1)

    # -- validation

    def test_invalid_requests_are_400_naming_the_field(self):
        ch = self.tenant()[0]
        wa = new_wa_id()
        self.inbound(ch, wa)
        text = lambda body: {"to": wa, "type": "text", "text": {"body": body}}  # noqa: E731
        cases = [
            ("text over 4096 characters", text("x" * 4097), "text.body"),
            ("text body missing", {"to": wa, "type": "text", "text": {}}, "text.body"),
            ("text body not a string", {"to": wa, "type": "text", "text": {"body": 5}},
             "text.body"),
            ("text object missing", {"to": wa, "type": "text"}, "text"),
            ("to missing", {"type": "text", "text": {"body": "x"}}, "to"),
            ("to letters", dict(text("x"), to="abc"), "to"),
            ("to empty", dict(text("x"), to=""), "to"),
            ("to mixed", dict(text("x"), to="1555abc1234"), "to"),
            ("to two pluses", dict(text("x"), to="++15550001111"), "to"),
            ("to a number", dict(text("x"), to=15550001111), "to"),
            ("type missing", {"to": wa}, "type"),
            ("type unsupported", {"to": wa, "type": "fax"}, "type"),
            ("template without name", {"to": wa, "type": "template",
                                       "template": {"language": {"code": "en_US"}}},
             "template.name"),
            ("channel_id not an id", dict(text("x"), channel_id="nope"), "channel_id"),
        ]
        for what, body, field in cases:
            with self.subTest(what):
                r = self.send(ch, body, with_channel="channel_id" not in body)
                self.assertError(r, 400, "invalid_request", what=what)
                self.assertRegex(r.body["error"]["message"],
                                 r"(?<![A-Za-z0-9_.])" + re.escape(field) + r"(?![A-Za-z0-9_])",
                                 f"{what}: the message names {field}")
        for what, raw in (("not JSON", b"{nope"), ("an array", b"[]")):
            with self.subTest(what):
                r = self.server.request("POST", "/v1/messages", raw=raw, token=ch.key)
                self.assertError(r, 400, "invalid_request", what=what)
        # 4096 characters are fine, counted as characters (these are 8192 bytes).
        ok = self.send_ok(ch, text("\u00e9" * 4096))
        self.wait_status(ch, ok["id"], "sent")
        self.assertEqual(len(self.fake.sent_messages(ch.pnid)), 1,
                         "nothing refused reached Meta")

    # -- channel resolution

    def test_unknown_or_other_tenants_channel_is_404(self):
        a = self.tenant()[0]
        b = self.tenant()[0]
        body = {"to": new_wa_id(), "type": "template", "template": template(new_tag("x"))}
        r = self.send(a, dict(body, channel_id=str(uuid.uuid4())), with_channel=False)
        self.assertError(r, 404, "not_found", what="unknown channel")
        r = self.send(a, dict(body, channel_id=b.channel_id), with_channel=False)
        self.assertError(r, 404, "not_found", what="another tenant's channel")
        self.assertEqual(self.fake.requests(b.pnid, "messages"), [])

    def test_channel_id_may_be_omitted_only_when_the_tenant_has_one_channel(self):
        one = self.tenant()[0]
        tag = new_tag("sole")
        m = self.send_ok(one, {"to": new_wa_id(), "type": "template", "template": template(tag)},
                         with_channel=False)
        self.assertEqual(m["channel_id"], one.channel_id)
        self.wait_status(one, m["id"], "sent")
        self.assertEqual(len(self.fake.tagged(tag, one.pnid)), 1)
        m = self.send_ok(one, {"channel_id": None, "to": new_wa_id(), "type": "template",
                               "template": template(new_tag("null"))}, with_channel=False)
        self.assertEqual(m["channel_id"], one.channel_id, "null counts as omitted")
        c1, c2 = self.tenant(channels=2)
        r = self.send(c1, {"to": new_wa_id(), "type": "template", "template": template("x")},
                      with_channel=False)
        self.assertError(r, 400, "invalid_request", mentions="channel_id",
                         what="two channels, none named")
        self.assertEqual(self.fake.requests(c1.pnid, "messages")
                         + self.fake.requests(c2.pnid, "messages"), [])

    # -- status webhooks

    def test_status_webhooks_move_a_sent_message_forward(self):
        ch = self.tenant()[0]
        wa = new_wa_id()
        self.inbound(ch, wa)
        tag = new_tag("st")
        m = self.text(ch, wa, tag)
        sent = self.wait_status(ch, m["id"], "sent")
        wamid = self.fake.tagged(tag, ch.pnid)[0]["wamid"]
        self.assertEqual(sent["wa_message_id"], wamid)
        now = int(time.time())

        def status(value, ts, **kw):
            body = self.fake.status_webhook_body(ch.pnid, wamid, value, wa, timestamp=ts, **kw)
            self.assertStatus(post_webhook(self.server, body, APP_SECRET), 200, value)
            wait_processed(self.server)
        # Out of order, as Meta delivers them: read before delivered, sent last.
        status("read", now + 3)
        self.assertEqual(self.get_message(ch, m["id"])["status"], "read")
        status("delivered", now + 2)
        status("sent", now + 1)
        got = self.get_message(ch, m["id"])
        self.assertEqual(got["status"], "read", got)
        self.assertTrue(got.get("delivered_at"), got)
        self.assertTrue(got.get("read_at"), got)
        self.assertEqual(got["wa_message_id"], wamid)
        # A failed report keeps Meta's code and title.
        tag2 = new_tag("st2")
        m2 = self.text(ch, wa, tag2)
        self.wait_status(ch, m2["id"], "sent")
        wamid = self.fake.tagged(tag2, ch.pnid)[0]["wamid"]
        status("failed", now + 5, errors=[131026])
        got = self.get_message(ch, m2["id"])
        self.assertEqual(got["status"], "failed", got)
        self.assertEqual(got["error"], {"code": 131026, "title": title_of(131026)}, got)
        self.assertTrue(got.get("failed_at"), got)

    # -- retries

    def test_throttled_twice_then_sent(self):
        ch = self.tenant()[0]
        wa = new_wa_id()
        self.inbound(ch, wa)
        before = scrape(self.server)
        self.fake.fail(ch.pnid, status=429, code=130429, times=2)
        tag = new_tag("429")
        m = self.text(ch, wa, tag)
        done = self.wait_status(ch, m["id"], "sent")
        wamid = self.fake.tagged(tag, ch.pnid)[0]["wamid"]
        self.assertEqual(done["wa_message_id"], wamid)
        self.assertEqual(done["attempts"], 3, done)
        atts = self.attempts(ch, m["id"])
        self.assertAttempts(atts, ["retry", "retry", "sent"], "429 twice")
        self.assertEqual([(a["http_status"], a["error_code"]) for a in atts],
                         [(429, 130429), (429, 130429), (200, None)])
        self.assertEqual(atts[0]["error_title"], title_of(130429))
        self.assertEqual(atts[2]["wamid"], wamid)
        self.assertEqual(len(self.graph_sends(ch, tag)), 3, "one Graph call per attempt")
        self.assertEqual(len(self.fake.tagged(tag, ch.pnid)), 1)
        after = scrape(self.server)
        self.assertGreaterEqual(metric(after, "parley_outbound_retries_total")
                                - metric(before, "parley_outbound_retries_total"), 2)
        self.assertGreaterEqual(metric(after, "parley_outbound_attempts_total", outcome="retry")
                                - metric(before, "parley_outbound_attempts_total",
                                         outcome="retry"), 2)

    def test_server_errors_then_sent(self):
        ch = self.tenant()[0]
        tag = new_tag("5xx")
        # A proxy's HTML 502 page, then Meta's own 500, then success.
        self.fake.fail(ch.pnid, status=502, raw="<html><body>502 Bad Gateway</body></html>")
        self.fake.fail(ch.pnid, status=500, code=131000)
        m = self.template_to(ch, new_wa_id(), tag)
        done = self.wait_status(ch, m["id"], "sent")
        atts = self.attempts(ch, m["id"])
        self.assertAttempts(atts, ["retry", "retry", "sent"], "502 then 500")
        self.assertEqual([(a["http_status"], a["error_code"]) for a in atts],
                         [(502, None), (500, 131000), (200, None)])
        self.assertEqual(atts[1]["error_title"], title_of(131000))
        self.assertEqual(done["attempts"], 3)
        self.assertEqual(len(self.graph_sends(ch, tag)), 3)

    def test_dropped_connections_then_sent(self):
        # A Graph API of its own, so every call this test makes is visible with its connection.
        graph = FakeGraph().start()
        self.addCleanup(graph.stop)
        ch = self.tenant(graph_base_url=graph.url)[0]
        graph.set_token(ch.pnid, ch.token)

        def expected_attempts(tag_calls):
            """Attempt rows for these Graph calls. A call dropped without any answer on a
            connection that served before is retried once, transparently, by the HTTP client
            (http/client.cpp: the race with a server closing an idle keep-alive connection),
            so it and the next call are one attempt. Any other call is an attempt of its own."""
            seen, folded = set(), 0
            mine = {r["seq"] for r in tag_calls}
            for r in graph.requests():
                if (r["seq"] in mine and r["outcome"].startswith("dropped")
                        and r["conn_id"] in seen):
                    folded += 1
                seen.add(r["conn_id"])
            return len(tag_calls) - folded

        for n, drops in enumerate(((False, True), (False,), (True,))):
            with self.subTest(drops=drops):
                before = {r["seq"] for r in graph.requests(ch.pnid, "messages")}
                for after_body in drops:
                    graph.drop(1, ch.pnid, after_body=after_body)
                tag = new_tag(f"drop{n}")
                m = self.template_to(ch, new_wa_id(), tag)
                done = self.wait_status(ch, m["id"], "sent")
                calls = [r for r in graph.requests(ch.pnid, "messages")
                         if r["seq"] not in before]
                self.assertEqual(len(calls), len(drops) + 1,
                                 f"each drop, then the successful call: {calls}")
                rows = expected_attempts(calls)
                atts = self.attempts(ch, m["id"])
                self.assertAttempts(atts, ["retry"] * (rows - 1) + ["sent"],
                                    f"drops {drops}, Graph calls on connections "
                                    f"{[(r['conn_id'], r['outcome']) for r in calls]}")
                self.assertEqual([a["http_status"] for a in atts], [None] * (rows - 1) + [200])
                self.assertEqual(done["attempts"], rows, done)
                self.assertEqual(done["wa_message_id"], graph.tagged(tag, ch.pnid)[0]["wamid"])

    def test_retry_after_header_delays_the_retry(self):
        """Not in the contract's text, but domain/retry_policy: a Retry-After longer than the
        backoff cap (200 ms here) is honoured."""
        ch = self.tenant()[0]
        tag = new_tag("ra")
        self.fake.fail(ch.pnid, status=429, code=130429, retry_after=1)
        m = self.template_to(ch, new_wa_id(), tag)
        self.wait_status(ch, m["id"], "sent")
        calls = self.graph_sends(ch, tag)
        self.assertEqual(len(calls), 2)
        self.assertGreaterEqual(calls[1]["time"] - calls[0]["time"], 0.95,
                                "the retry came before Retry-After: 1 had passed")

    # -- permanent failures

    def test_permanent_errors_fail_at_once_with_metas_code_and_title(self):
        ch = self.tenant()[0]
        wa = new_wa_id()
        self.inbound(ch, wa)
        tags = {}
        for code in (131047, 131026, 100):
            with self.subTest(code=code):
                self.fake.fail(ch.pnid, status=400, code=code)
                tag = new_tag(f"perm{code}")
                tags[code] = tag
                m = self.text(ch, wa, tag)
                done = self.wait_status(ch, m["id"], "failed")
                self.assertEqual(done["error"], {"code": code, "title": title_of(code)}, done)
                self.assertEqual(done["attempts"], 1, done)
                self.assertIsNone(done["wa_message_id"], done)
                self.assertTrue(done.get("failed_at"), done)
                atts = self.attempts(ch, m["id"])
                self.assertAttempts(atts, ["failed"], str(code))
                self.assertEqual((atts[0]["http_status"], atts[0]["error_code"],
                                  atts[0]["error_title"]), (400, code, title_of(code)))
        # A later message goes through; no failed one was tried again meanwhile.
        last = self.text(ch, wa, new_tag("after"))
        self.wait_status(ch, last["id"], "sent")
        for code, tag in tags.items():
            self.assertEqual(len(self.graph_sends(ch, tag)), 1, f"{code} was retried")

    def test_exhausted_attempts_fail_with_the_last_error(self):
        ch = self.tenant()[0]
        tag = new_tag("exh")
        self.fake.fail(ch.pnid, status=500, code=131000, always=True)
        m = self.template_to(ch, new_wa_id(), tag)
        done = self.wait_status(ch, m["id"], "failed")
        self.assertEqual(done["error"], {"code": 131000, "title": title_of(131000)}, done)
        self.assertEqual(done["attempts"], MAX_ATTEMPTS, done)
        atts = self.attempts(ch, m["id"])
        self.assertAttempts(atts, ["retry"] * (MAX_ATTEMPTS - 1) + ["failed"], "always 500")
        self.assertTrue(all(a["http_status"] == 500 for a in atts), atts)
        self.assertEqual(len(self.graph_sends(ch, tag)), MAX_ATTEMPTS)
        # Consecutive failures degrade the channel (domain/channel_health: 3 and more).
        self.wait_channel(ch, lambda c: c["state"] in ("degraded", "disconnected"),
                          "degraded after 4 consecutive failures")
        # Meta recovers: the next message is sent and the channel is connected again.
        self.fake.clear_faults(ch.pnid)
        m2 = self.template_to(ch, new_wa_id(), new_tag("rec"))
        self.wait_status(ch, m2["id"], "sent")
        self.wait_channel(ch, lambda c: c["state"] == "connected", "connected after recovery")

    # -- an expired token

    def test_expired_token_pauses_the_channel_until_a_new_one_is_patched(self):
        ch = self.tenant()[0]
        wa = new_wa_id()
        self.inbound(ch, wa)
        # A first message makes sure the session is up (and any start-up health check done), so
        # the 190 below is the answer to a send.
        warm = self.text(ch, wa, new_tag("warm"))
        self.wait_status(ch, warm["id"], "sent")
        self.fake.set_token(ch.pnid, "EAAG-rotated-" + secrets.token_hex(8))  # ours is dead
        t1, t2 = new_tag("tok1"), new_tag("tok2")
        m1 = self.text(ch, wa, t1)
        c = self.wait_channel(ch, lambda c: c["state"] == "token_invalid", "token_invalid")
        self.assertIsInstance(c.get("state_reason"), str, c)
        self.assertTrue(c["state_reason"], c)
        self.assertNotIn("access_token", c, "secrets are never echoed")
        got = self.get_message(ch, m1["id"])
        self.assertEqual(got["status"], "pending", f"190 does not fail the message: {got}")
        # The channel's state changes in memory when Meta answers; the attempt row commits with
        # the writer's next batch, a moment later.
        atts = wait_until(lambda: self.attempts(ch, m1["id"]) or None, 10.0)
        self.assertIsNotNone(atts, "no attempt recorded for the 190 answer")
        self.assertEqual(atts[0]["outcome"], "token_invalid", atts)
        self.assertEqual((atts[0]["http_status"], atts[0]["error_code"]), (401, 190), atts)
        # Still accepted while paused, and queued.
        m2 = self.text(ch, wa, t2)
        self.wait_channel(ch, lambda c: c["outbox_depth"] == 2, "outbox_depth 2")
        self.assertGreaterEqual(metric(self.server, "parley_channels", state="token_invalid"), 1)
        # Paused means paused. This is the one bounded observation of "nothing happens": one
        # second is five times the longest backoff configured here.
        calls = len(self.fake.requests(ch.pnid, "messages"))
        more = wait_until(lambda: len(self.fake.requests(ch.pnid, "messages")) > calls, 1.0)
        self.assertIsNone(more, f"the channel kept calling Meta\n{self.fake_summary(ch)}")
        # The operator stores the new token: sending resumes at once.
        new = "EAAG-new-" + secrets.token_hex(12)
        self.fake.set_token(ch.pnid, new)
        r = self.patch_channel(ch, {"access_token": new})
        self.assertStatus(r, 200, "PATCH access_token")
        self.assertEqual(r.body["id"], ch.channel_id)
        self.assertNotIn("access_token", r.body, "secrets are never echoed")
        self.assertNotIn(new, json.dumps(r.body))
        for m in (m1, m2):
            self.wait_status(ch, m["id"], "sent")
        self.wait_channel(ch, lambda c: c["state"] == "connected" and c["outbox_depth"] == 0,
                          "connected with an empty outbox")
        atts = self.attempts(ch, m1["id"])
        self.assertEqual(atts[-1]["outcome"], "sent", atts)
        self.assertTrue(all(a["outcome"] == "token_invalid" for a in atts[:-1]), atts)
        for tag in (t1, t2):
            sent = self.fake.tagged(tag, ch.pnid)
            self.assertEqual(len(sent), 1, tag)
            self.assertEqual(sent[0]["authorization"], f"Bearer {new}")

    def test_patch_channel(self):
        ch = self.tenant()[0]
        other = self.tenant()[0]
        r = self.patch_channel(ch, {"throughput_mps": 7})
        self.assertStatus(r, 200, "PATCH throughput_mps")
        self.assertEqual(r.body["throughput_mps"], 7)
        self.assertEqual(self.channel(ch)["throughput_mps"], 7)
        # Where the token goes is the platform administrator's decision (SSRF otherwise).
        r = self.patch_channel(ch, {"graph_base_url": self.fake.url})
        self.assertError(r, 403, "forbidden", mentions="graph_base_url")
        admin_path = f"/v1/tenants/{ch.tenant_id}/channels/{ch.channel_id}"
        r = self.server.admin("PATCH", admin_path, {"graph_base_url": "ftp://example.com"})
        self.assertError(r, 400, "invalid_request", mentions="graph_base_url")
        r = self.server.admin("PATCH", admin_path, {"graph_base_url": self.fake.url + "/"})
        self.assertStatus(r, 200, "admin PATCH graph_base_url")
        self.assertEqual(r.body["graph_base_url"], self.fake.url + "/")
        r = self.server.request("PATCH", admin_path, {"throughput_mps": 5}, token=ch.key)
        # A valid key whose role may not use the route: 403 (docs/security.md).
        self.assertError(r, 403, "forbidden", what="tenant key on the admin route")
        r = self.patch_channel(ch, {"throughput_mps": 0})
        self.assertError(r, 400, "invalid_request", mentions="throughput_mps")
        r = self.patch_channel(ch, {"access_token": "x"}, key=other.key)
        self.assertError(r, 404, "not_found", what="another tenant's channel")
        r = self.server.request("PATCH", f"/v1/channels/{uuid.uuid4()}", {"throughput_mps": 5},
                                token=ch.key)
        self.assertError(r, 404, "not_found", what="unknown channel")
        # The channel still sends with its own token.
        m = self.template_to(ch, new_wa_id(), new_tag("patched"))
        self.wait_status(ch, m["id"], "sent")

    # -- mark as read

    def test_mark_as_read_reaches_meta(self):
        ch = self.tenant()[0]
        wa = new_wa_id()
        w1 = self.inbound(ch, wa, "first")
        in1 = message_by_wamid(self.server, ch.key, w1)
        # By wamid, in the contract's minimal shape (no channel_id, no to).
        r = self.send(ch, {"type": "read", "read": {"message_id": w1}}, with_channel=False)
        self.assertStatus(r, 202, "read by wamid")
        self.assertEqual((r.body["id"], r.body["read_receipt"]), (in1["id"], "pending"), r.body)
        # By Parley id, for a message older than 24 hours (a receipt is not a message: no window).
        w2 = self.inbound(ch, wa, "old", ts=int(time.time()) - 30 * 3600)
        in2 = message_by_wamid(self.server, ch.key, w2)
        r = self.send(ch, {"type": "read", "read": {"message_id": in2["id"]}}, with_channel=False)
        self.assertStatus(r, 202, "read by Parley id")
        self.assertEqual((r.body["id"], r.body["read_receipt"]), (in2["id"], "pending"), r.body)
        self.wait_fake(lambda f: len(f.read_receipts(ch.pnid)) >= 2, "two read receipts", ch)
        receipts = self.fake.read_receipts(ch.pnid)
        self.assertEqual(sorted(json.dumps(x["body"], sort_keys=True) for x in receipts),
                         sorted(json.dumps({"messaging_product": "whatsapp", "status": "read",
                                            "message_id": w}, sort_keys=True) for w in (w1, w2)))
        self.assertTrue(all(x["authorization"] == f"Bearer {ch.token}" for x in receipts))
        self.assertEqual(self.fake.sent_messages(ch.pnid), [], "a receipt is not a message")
        # Unknown messages, and another tenant's, are not found.
        for what, mid in (("unknown id", str(uuid.uuid4())), ("unknown wamid", "wamid.nope"),):
            with self.subTest(what):
                r = self.send(ch, {"type": "read", "read": {"message_id": mid}},
                              with_channel=False)
                self.assertError(r, 404, "not_found", what=what)
        other = self.tenant()[0]
        r = self.send(other, {"type": "read", "read": {"message_id": in1["id"]}},
                      with_channel=False)
        self.assertError(r, 404, "not_found", what="another tenant's message")

    # A reply moves its conversation's last_message_at, a read receipt clears the unread count,
    # and a template to a new contact opens its conversation (all in the accept's transaction).
    def test_sends_keep_the_conversation_up_to_date(self):
        ch = self.tenant()[0]
        wa = new_wa_id()
        w1 = self.inbound(ch, wa, "first")
        self.inbound(ch, wa, "second")
        before = conversation_of(self.server, ch.key, wa)
        self.assertEqual(before["unread_count"], 2, before)
        time.sleep(0.05)
        self.text(ch, wa, new_tag("reply"))
        after = conversation_of(self.server, ch.key, wa)
        self.assertGreater(after["last_message_at"], before["last_message_at"], after)
        self.assertEqual(after["unread_count"], 2, "a reply is not a read receipt")
        self.send_ok(ch, {"type": "read", "read": {"message_id": w1}}, with_channel=False)
        self.assertEqual(conversation_of(self.server, ch.key, wa)["unread_count"], 0)
        fresh = new_wa_id()
        self.assertIsNone(conversation_of(self.server, ch.key, fresh))
        sent = self.template_to(ch, fresh, new_tag("open"))
        opened = conversation_of(self.server, ch.key, fresh)
        self.assertIsNotNone(opened, "a template did not open a conversation")
        self.assertEqual(sent["conversation_id"], opened["id"], sent)
        self.assertIsNotNone(opened["last_message_at"], opened)

    # -- isolation

    def test_another_tenant_cannot_see_the_message_or_its_attempts(self):
        a = self.tenant()[0]
        b = self.tenant()[0]
        m = self.template_to(a, new_wa_id(), new_tag("iso"))
        self.wait_status(a, m["id"], "sent")
        for path in (f"/v1/messages/{m['id']}", f"/v1/messages/{m['id']}/attempts",
                     f"/v1/channels/{a.channel_id}"):
            with self.subTest(path):
                self.assertError(self.server.request("GET", path, token=b.key), 404, "not_found",
                                 what=path)
        self.assertError(self.server.request("GET", f"/v1/messages/{uuid.uuid4()}/attempts",
                                             token=a.key), 404, "not_found", what="unknown")

    # -- connections and throughput

    def test_graph_connections_are_kept_alive(self):
        ch = self.tenant()[0]
        known = {r["conn_id"] for r in self.fake.requests()}
        for n in range(12):
            m = self.template_to(ch, new_wa_id(), new_tag(f"ka{n}"))
            self.wait_status(ch, m["id"], "sent")
        mine = {r["conn_id"] for r in self.fake.requests(ch.pnid, "messages")}
        new = mine - known
        self.assertLessEqual(len(new), 2, f"12 sequential sends opened {len(new)} new "
                                          f"connections: keep-alive is not used")

    def test_throughput_limit_per_channel(self):
        ch = self.tenant(throughput_mps=5)[0]
        self.assertEqual(self.channel(ch)["throughput_mps"], 5)
        before = metric(self.server, "parley_outbound_token_waits_total")
        ids = []
        for n in range(30):
            ids.append(self.template_to(ch, new_wa_id(), new_tag(f"tp{n}"))["id"])
        for mid in ids:
            self.wait_status(ch, mid, "sent", timeout=30)
        times = sorted(r["time"] for r in self.fake.sent_messages(ch.pnid))
        self.assertEqual(len(times), 30)
        # 30 messages at 5/s: at least (30 - burst) / 5 s; 2 s allows a burst of up to 20.
        self.assertGreaterEqual(times[-1] - times[0], 2.0,
                                "30 messages went out faster than 5 per second")
        self.assertGreater(metric(self.server, "parley_outbound_token_waits_total"), before)

    # -- metrics

    def test_metrics_of_the_contract(self):
        ch = self.tenant()[0]
        before = scrape(self.server)
        ok = self.template_to(ch, new_wa_id(), new_tag("mok"))
        self.wait_status(ch, ok["id"], "sent")
        self.fake.fail(ch.pnid, status=400, code=131026)
        bad = self.template_to(ch, new_wa_id(), new_tag("mbad"))
        self.wait_status(ch, bad["id"], "failed")
        text = self.server.request("GET", "/metrics").body
        for name in METRIC_NAMES:
            with self.subTest(name):
                self.assertRegex(text, rf"(?m)^{name}(_bucket|_count|_sum)?[{{ ]",
                                 f"{name} missing from /metrics")
        after = scrape(self.server)
        delta = lambda n, **l: metric(after, n, **l) - metric(before, n, **l)  # noqa: E731
        self.assertGreaterEqual(delta("parley_outbound_messages_total", outcome="sent",
                                      code="none"), 1)
        self.assertGreaterEqual(delta("parley_outbound_messages_total", outcome="failed",
                                      code="131026"), 1)
        self.assertGreaterEqual(delta("parley_outbound_attempts_total", outcome="sent"), 1)
        self.assertGreaterEqual(delta("parley_outbound_attempts_total", outcome="failed"), 1)
        self.assertGreaterEqual(delta("parley_graph_request_seconds_count"), 2)
        self.assertGreaterEqual(metric(after, "parley_channels", state="connected"), 1)


class HealthCheckTest(OutboundCase):
    """Health checks every second (outbound.health_interval_s = 1)."""

    env = {"PARLEY_OUTBOUND_HEALTH_INTERVAL_S": "1"}

    def test_health_checks_use_the_token_and_detect_a_revoked_one(self):
        ch = self.tenant()[0]
        self.wait_fake(lambda f: f.health_checks(ch.pnid), "no health check", ch, timeout=10)
        hc = self.fake.health_checks(ch.pnid)[0]
        self.assertEqual(hc["method"], "GET")
        self.assertEqual(hc["path"].split("?")[0], f"/{GRAPH_VERSION}/{ch.pnid}")
        self.assertEqual(hc["authorization"], f"Bearer {ch.token}")
        self.wait_channel(ch, lambda c: c["state"] == "connected", "connected", timeout=10)
        # Meta revokes the token: the next health check finds out, without any message sent.
        self.fake.set_token(ch.pnid, "EAAG-revoked-" + secrets.token_hex(6))
        self.wait_channel(ch, lambda c: c["state"] == "token_invalid", "token_invalid", 10)
        self.assertEqual(self.fake.requests(ch.pnid, "messages"), [])
        new = "EAAG-fresh-" + secrets.token_hex(6)
        self.fake.set_token(ch.pnid, new)
        self.assertStatus(self.patch_channel(ch, {"access_token": new}), 200, "PATCH token")
        self.wait_channel(ch, lambda c: c["state"] == "connected", "connected again", 10)
        m = self.template_to(ch, new_wa_id(), new_tag("hc"))
        self.wait_status(ch, m["id"], "sent")

    def test_failing_health_checks_do_not_invalidate_the_token(self):
        ch = self.tenant()[0]
        self.fake.fail(ch.pnid, status=503, code=2, always=True, endpoint="health")
        self.wait_fake(lambda f: len(f.health_checks(ch.pnid)) >= 2, "two health checks", ch,
                       timeout=10)
        self.assertNotEqual(self.channel(ch)["state"], "token_invalid")
        self.fake.clear_faults(ch.pnid)
        m = self.template_to(ch, new_wa_id(), new_tag("hc503"))
        self.wait_status(ch, m["id"], "sent")


class TlsTest(OutboundCase):
    """The Graph API over https: the fake's self-signed CA is trusted through
    whatsapp.graph_ca_file (PARLEY_WHATSAPP_GRAPH_CA_FILE), and only through it."""

    tls = True

    def test_sends_over_tls_with_the_configured_ca(self):
        self.assertTrue(self.fake.url.startswith("https://"))
        ch = self.tenant()[0]
        tags = [new_tag("tls") for _ in range(3)]
        for tag in tags:
            m = self.template_to(ch, new_wa_id(), tag)
            done = self.wait_status(ch, m["id"], "sent")
            self.assertEqual(done["wa_message_id"], self.fake.tagged(tag, ch.pnid)[0]["wamid"])
        self.assertEqual(self.fake.sent_messages(ch.pnid)[0]["authorization"],
                         f"Bearer {ch.token}")

    def test_a_certificate_nobody_trusts_is_never_used(self):
        stranger = FakeGraph(tls=True).start()  # another self-signed CA, not configured
        self.addCleanup(stranger.stop)
        ch = self.tenant(graph_base_url=stranger.url)[0]
        stranger.set_token(ch.pnid, ch.token)
        m = self.template_to(ch, new_wa_id(), new_tag("mitm"))
        done = self.wait_status(ch, m["id"], "failed")
        self.assertEqual(done["attempts"], MAX_ATTEMPTS, done)
        atts = self.attempts(ch, m["id"])
        self.assertAttempts(atts, ["retry"] * (MAX_ATTEMPTS - 1) + ["failed"], "untrusted")
        self.assertTrue(all(a["http_status"] is None for a in atts), atts)
        self.assertEqual(stranger.requests(), [], "a request went to an untrusted server")


class OutboundCrashTest(RestartTestCase):
    """SIGKILL in the middle of a concurrent burst of 300 messages, then a restart on the same
    database: every accepted message is sent (at least once); duplicates are possible only for
    calls in doubt, and the restarted node counts those."""

    MESSAGES = 300
    THREADS = 12
    CONTACTS = 30

    SERVER_ENV = OUTBOUND_ENV

    def setUp(self):
        super().setUp()
        self.fake = FakeGraph().start()
        self.addCleanup(self.fake.stop)

    def test_sigkill_mid_burst_then_every_accepted_message_is_sent(self):
        srv = self.start()
        ch = create_tenant(srv, self.fake)[0]
        contacts = [new_wa_id() for _ in range(self.CONTACTS)]
        body = envelope(entry(messages_change(ch.pnid, [text_message(wa, "hello")
                                                        for wa in contacts])))
        self.assertEqual(post_webhook(srv, body, APP_SECRET).status, 200)
        wait_processed(srv)
        # Meta's latency keeps calls in flight when the kill lands.
        self.fake.delay(5, ch.pnid, max_ms=40)
        run = secrets.token_hex(4)
        tags = [f"crash-{run}-{n:03d}" for n in range(self.MESSAGES)]
        accepted = {}  # tag -> message id (answered 202)
        other = []
        lock = threading.Lock()

        def worker(i):
            for n in range(i, self.MESSAGES, self.THREADS):
                msg = {"channel_id": ch.channel_id, "to": contacts[n % self.CONTACTS],
                       "type": "text", "text": {"body": f"burst {tags[n]}"},
                       "client_message_id": tags[n]}
                try:
                    r = http_request(srv.port, "POST", "/v1/messages", msg, token=ch.key,
                                     timeout=10)
                except (OSError, http.client.HTTPException):
                    return  # the server is gone (or went while answering)
                with lock:
                    if r.status == 202:
                        accepted[tags[n]] = r.body["id"]
                    else:
                        other.append(r.describe())
        threads = [threading.Thread(target=worker, args=(i,), daemon=True)
                   for i in range(self.THREADS)]
        for t in threads:
            t.start()
        mid_burst = wait_until(
            lambda: len(accepted) >= 100 and self.fake.sent_count(ch.pnid) >= 20,
            timeout=60, interval=0.005)
        srv.signal(signal.SIGKILL)
        self.assertIsNotNone(srv.wait_exit(10), "SIGKILL did not end the server")
        for t in threads:
            t.join(30)
        self.assertTrue(mid_burst, f"the burst never got going: {len(accepted)} accepted, "
                                   f"{self.fake.sent_count(ch.pnid)} sent, {other[:5]}"
                                   f"{self._logs(srv)}")
        self.assertEqual(other, [], "every answered POST was a 202")
        sent_at_kill = self.fake.sent_count(ch.pnid)

        srv2 = self.start()
        ids = sorted(accepted.values())
        id_list = ",".join(f"'{i}'" for i in ids)

        def not_sent():
            out = srv2.sql(f"SELECT id, status FROM messages WHERE id IN ({id_list}) "
                           "AND status <> 'sent'")
            return [line for line in out.splitlines() if line]
        all_sent = wait_until(lambda: not not_sent(), timeout=90, interval=0.2)
        if not all_sent:
            self.fail(f"{len(not_sent())} of {len(ids)} accepted messages not sent after the "
                      f"restart: {not_sent()[:10]}{self._logs(srv2)}")
        self.assertEqual(srv2.sql(f"SELECT count(*) FROM messages WHERE id IN ({id_list})"),
                         str(len(ids)), "an accepted message was lost")
        # Requests cut by the kill may or may not have been stored; whatever was stored is sent.
        self.assertTrue(wait_until(lambda: self.outbox_depth(srv2, ch) == 0, timeout=60),
                        f"outbox not empty: {self.outbox_depth(srv2, ch)}{self._logs(srv2)}")

        sent = self.fake.sent_messages(ch.pnid)
        by_tag = {}
        for r in sent:
            found = re.search(r"crash-[0-9a-f]+-\d{3}", r["body"]["text"]["body"])
            self.assertIsNotNone(found, r["body"])
            by_tag.setdefault(found.group(0), []).append(r["wamid"])
        missing = sorted(set(accepted) - set(by_tag))
        self.assertEqual(missing, [], f"{len(missing)} accepted messages never reached Meta")
        self.assertTrue(set(by_tag) <= set(tags), "Meta got a message nobody sent")
        stored = set(srv2.sql(f"SELECT client_message_id FROM messages WHERE client_message_id "
                              f"LIKE 'crash-{run}-%'").split())
        self.assertTrue(set(by_tag) <= stored, "Meta got a message Parley has no record of: "
                        f"{sorted(set(by_tag) - stored)[:5]}")
        wamids = dict(line.split("|") for line in srv2.sql(
            f"SELECT id, wamid FROM messages WHERE id IN ({id_list})").splitlines() if line)
        for tag, mid in accepted.items():
            self.assertIn(wamids[mid], by_tag[tag], f"{tag}: the stored wamid is not one Meta "
                                                    "issued for it")
        duplicates = sum(len(w) - 1 for w in by_tag.values())
        in_doubt = metric(srv2, "parley_outbound_in_doubt_total")
        print(f"\n[outbound crash] accepted {len(accepted)}/{self.MESSAGES}, sent before the kill "
              f"{sent_at_kill}, Meta received {len(sent)} sends of {len(by_tag)} messages, "
              f"duplicates {duplicates}, parley_outbound_in_doubt_total after restart "
              f"{in_doubt:g}", file=sys.stderr)
        self.assertLessEqual(duplicates, in_doubt,
                             "more duplicates than calls the restarted node found in doubt")
        srv2.stop()

    @staticmethod
    def outbox_depth(srv: ParleyServer, ch: Chan) -> int:
        r = srv.request("GET", f"/v1/channels/{ch.channel_id}", token=ch.key)
        return r.body.get("outbox_depth", -1) if r.status == 200 else -1


if __name__ == "__main__":
    unittest.main()
