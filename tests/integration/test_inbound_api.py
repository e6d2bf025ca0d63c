"""What inbound webhooks become in the tenant API: dedupe by wamid, several entries and changes
in one POST, forward-only statuses, conversation lists (filters, cursor pagination, resolve and
reopen), message order, tenant isolation, the 24-hour window and conversation passivation."""
import datetime
import json
import random
import secrets
import threading
import time
import unittest

from harness import ParleyTestCase, require_environment
from webhook_fixtures import (conversation_of, conversations, entry, envelope, is_processed_sql,
                              list_all, message_by_wamid, messages_change, messages_of, metric,
                              post_webhook, scrape, sql_quote, status, status_body,
                              statuses_change, tenant_with_channel, text_body, text_message,
                              unique_wamid, wait_processed, wait_until, wamid_rows)

setUpModule = require_environment

APP_SECRET = "platform-secret-" + secrets.token_hex(8)
NEVER = "00000000-0000-0000-0000-000000000000"


def parse_ts(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def new_wa_id() -> str:
    return "1555" + str(secrets.randbelow(10**8)).zfill(8)


class InboundBase(ParleyTestCase):
    env = {}

    @classmethod
    def setUpClass(cls):
        env = {"PARLEY_WHATSAPP_APP_SECRET": APP_SECRET}
        env.update(cls.env)
        cls.server = cls.start_server(env=env)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def post_ok(self, body, what="webhook"):
        r = post_webhook(self.server, body, APP_SECRET)
        self.assertStatus(r, 200, what)
        return r

    def deliver(self, body, what="webhook"):
        """Posts and waits until every raw event (this one included) is processed."""
        self.post_ok(body, what)
        wait_processed(self.server)

    def get(self, key, path, status=200):
        r = self.server.request("GET", path, token=key)
        self.assertStatus(r, status, path)
        return r.body

    def conv(self, key, conversation_id):
        return self.get(key, f"/v1/conversations/{conversation_id}")


class InboundApiTest(InboundBase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.a1, cls.a2 = tenant_with_channel(cls.server, channels=2)
        cls.b = tenant_with_channel(cls.server)[0]

    # -- dedupe

    def test_same_wamid_twice_is_one_message(self):
        wa, wamid = new_wa_id(), unique_wamid("dup")
        before = scrape(self.server)
        first = text_body(self.a1.phone_number_id, wa, "first", wamid)
        self.deliver(first, "first copy")
        # Meta's retry of the same body, twice, and another body reusing the wamid.
        self.deliver(first, "identical retry")
        self.deliver(first, "identical retry again")
        self.deliver(text_body(self.a1.phone_number_id, wa, "second text, same wamid", wamid),
                     "other body, same wamid")
        self.assertEqual(wamid_rows(self.server, wamid), 1)
        conv = conversation_of(self.server, self.a1.key, wa)
        self.assertIsNotNone(conv)
        self.assertEqual(conv["unread_count"], 1, conv)
        msgs = messages_of(self.server, self.a1.key, conv["id"])
        self.assertEqual(len(msgs), 1, msgs)
        self.assertEqual(msgs[0]["content"], {"kind": "text", "body": "first"})
        after = scrape(self.server)
        self.assertEqual(metric(after, "parley_inbound_duplicates_total")
                         - metric(before, "parley_inbound_duplicates_total"), 3)
        self.assertEqual(metric(after, "parley_inbound_messages_total")
                         - metric(before, "parley_inbound_messages_total"), 1)

    def test_single_part_webhooks_are_durable_when_acknowledged_and_marked_with_their_part(self):
        # The 200 means the raw event is committed (and owes its processing); the statement that
        # stores its only part marks it processed, so nothing is left for a replay and no
        # outcome had to be written to the wide raw row.
        wa, wamid = new_wa_id(), unique_wamid("one")
        self.deliver(text_body(self.a1.phone_number_id, wa, "warm-up"), "warm-up")
        latest = ("SELECT outcome, processed_at IS NULL, " + is_processed_sql() +
                  " FROM raw_webhook_events ORDER BY id DESC LIMIT 1")
        self.post_ok(text_body(self.a1.phone_number_id, wa, "one", wamid), "message")
        self.assertEqual(self.server.sql("SELECT count(*) FROM raw_webhook_events WHERE "
                                         "convert_from(body, 'UTF8') LIKE " +
                                         sql_quote("%" + wamid + "%")), "1")
        self.assertTrue(wait_until(lambda: wamid_rows(self.server, wamid) == 1, 15))
        wait_processed(self.server)
        self.assertEqual(self.server.sql(latest), "accepted|t|t")
        self.post_ok(status_body(self.a1.phone_number_id, [status(wamid, "read", wa)]), "status")
        self.assertTrue(wait_until(lambda: self.server.sql(
            f"SELECT count(*) FROM message_status_events WHERE wamid = {sql_quote(wamid)}") == "1",
            15))
        wait_processed(self.server)
        self.assertEqual(self.server.sql(latest), "accepted|t|t")

    def test_deleting_a_tenant_deletes_its_conversations_and_messages(self):
        # The hot tables have no foreign keys (migration 0007): deletion must reach them itself.
        tc = tenant_with_channel(self.server)[0]
        wa, wamid = new_wa_id(), unique_wamid("del")
        self.deliver(text_body(tc.phone_number_id, wa, "soon gone", wamid), "message")
        self.deliver(status_body(tc.phone_number_id, [status(wamid, "read", wa)]), "status")
        tables = ("contacts", "conversations", "messages", "outbox", "delivery_attempts")
        count = " + ".join(f"(SELECT count(*) FROM {t} WHERE tenant_id = '{tc.tenant_id}')"
                           for t in tables)
        count += (" + (SELECT count(*) FROM message_status_events WHERE channel_id = "
                  f"'{tc.channel_id}')")
        self.assertNotEqual(self.server.sql(f"SELECT {count}"), "0")
        self.assertStatus(self.server.admin("DELETE", f"/v1/tenants/{tc.tenant_id}"), 204, "delete")
        self.assertEqual(self.server.sql(f"SELECT {count}"), "0")

    def test_duplicates_inside_one_body(self):
        wa, wamid = new_wa_id(), unique_wamid("dup1")
        m = text_message(wa, "twice in one body", wamid)
        body = envelope(entry(messages_change(self.a1.phone_number_id, [m, dict(m)])),
                        entry(messages_change(self.a1.phone_number_id, [dict(m)])))
        self.deliver(body)
        self.assertEqual(wamid_rows(self.server, wamid), 1)
        self.assertEqual(conversation_of(self.server, self.a1.key, wa)["unread_count"], 1)

    def test_same_body_posted_concurrently_is_one_message(self):
        wa, wamid = new_wa_id(), unique_wamid("race")
        body = text_body(self.a1.phone_number_id, wa, "at once", wamid)
        results = []
        lock = threading.Lock()

        def post():
            st = post_webhook(self.server, body, APP_SECRET).status
            with lock:
                results.append(st)
        threads = [threading.Thread(target=post) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        self.assertEqual(results, [200] * 12)
        wait_processed(self.server)
        self.assertEqual(wamid_rows(self.server, wamid), 1)
        self.assertEqual(conversation_of(self.server, self.a1.key, wa)["unread_count"], 1)

    # -- several entries and changes

    def test_several_entries_and_changes_in_one_post(self):
        wa1, wa2, wa3 = new_wa_id(), new_wa_id(), new_wa_id()
        w = [unique_wamid("multi") for _ in range(5)]
        body = envelope(
            entry(messages_change(self.a1.phone_number_id,
                                  [text_message(wa1, "one", w[0]), text_message(wa2, "two", w[1])]),
                  messages_change(self.a2.phone_number_id, [text_message(wa3, "three", w[2])])),
            entry(messages_change(self.a1.phone_number_id, [text_message(wa1, "four", w[3])]),
                  statuses_change(self.a1.phone_number_id, [status(unique_wamid(), "sent", wa1)]),
                  {"field": "account_update", "value": {"event": "ACCOUNT_UPDATE"}}),
            entry(messages_change(self.b.phone_number_id, [text_message(wa1, "five", w[4])])))
        rid = "it-multi-" + secrets.token_hex(5)
        r = post_webhook(self.server, body, APP_SECRET, headers={"X-Request-Id": rid})
        self.assertStatus(r, 200)
        wait_processed(self.server)
        self.assertEqual(self.server.sql("SELECT outcome FROM raw_webhook_events "
                                         f"WHERE request_id = {sql_quote(rid)}"), "accepted")
        c1 = conversation_of(self.server, self.a1.key, wa1, self.a1.channel_id)
        c2 = conversation_of(self.server, self.a1.key, wa2, self.a1.channel_id)
        c3 = conversation_of(self.server, self.a1.key, wa3, self.a2.channel_id)
        cb = conversation_of(self.server, self.b.key, wa1, self.b.channel_id)
        for c in (c1, c2, c3, cb):
            self.assertIsNotNone(c)
        bodies = lambda key, c: [m["content"]["body"]  # noqa: E731
                                 for m in messages_of(self.server, key, c["id"])]
        self.assertEqual(bodies(self.a1.key, c1), ["one", "four"])
        self.assertEqual(c1["unread_count"], 2)
        self.assertEqual(c2["unread_count"], 1)
        self.assertEqual(c3["unread_count"], 1)
        self.assertEqual(bodies(self.b.key, cb), ["five"])
        # The same contact on another tenant's channel is another tenant's conversation.
        self.assertIsNone(conversation_of(self.server, self.a1.key, wa1, self.b.channel_id))

    def test_hundreds_of_messages_in_one_post(self):
        tc = tenant_with_channel(self.server)[0]
        contacts = [new_wa_id() for _ in range(50)]
        msgs = [text_message(contacts[i % 50], f"m{i}") for i in range(300)]
        self.deliver(envelope(entry(messages_change(tc.phone_number_id, msgs))))
        convs = conversations(self.server, tc.key)
        self.assertEqual(len(convs), 50)
        self.assertEqual(sorted(c["unread_count"] for c in convs), [6] * 50)
        one = conversation_of(self.server, tc.key, contacts[7])
        bodies = [m["content"]["body"] for m in messages_of(self.server, tc.key, one["id"])]
        self.assertEqual(bodies, [f"m{i}" for i in range(7, 300, 50)],
                         "the order within the body is kept")

    # -- statuses

    def outbound_message(self, tc, wa):
        """An outbound row (status sent) in a conversation with `wa`, inserted with psql, as the
        outbox would leave it; returns (message id, wamid)."""
        self.deliver(text_body(tc.phone_number_id, wa, "hi, I need help"))
        conv = conversation_of(self.server, tc.key, wa, tc.channel_id)
        wamid = unique_wamid("out")
        mid = self.server.sql(
            "INSERT INTO messages (tenant_id, conversation_id, channel_id, direction, wamid, type, "
            "content, to_wa, status, sent_at) VALUES "
            f"({sql_quote(tc.tenant_id)}, {sql_quote(conv['id'])}, {sql_quote(tc.channel_id)}, "
            f"'outbound', {sql_quote(wamid)}, 'text', '{{\"kind\":\"text\",\"body\":\"hello\"}}', "
            f"{sql_quote(wa)}, 'sent', now()) RETURNING id")
        return mid.splitlines()[0], wamid

    def message(self, tc, mid):
        return self.get(tc.key, f"/v1/messages/{mid}")

    def test_statuses_only_move_forward(self):
        tc, wa = self.a1, new_wa_id()
        mid, wamid = self.outbound_message(tc, wa)
        now = int(time.time())
        self.deliver(status_body(tc.phone_number_id, [status(wamid, "read", wa, now + 20)]), "read")
        m = self.message(tc, mid)
        self.assertEqual(m["status"], "read", m)
        self.assertEqual(m["direction"], "outbound")
        self.deliver(status_body(tc.phone_number_id, [status(wamid, "delivered", wa, now + 10)]),
                     "delivered after read")
        self.deliver(status_body(tc.phone_number_id, [status(wamid, "sent", wa, now + 5)]),
                     "sent after read")
        m = self.message(tc, mid)
        self.assertEqual(m["status"], "read", f"a late status moved the message back: {m}")
        self.assertTrue(m.get("read_at"), m)
        self.assertTrue(m.get("delivered_at"), f"the late delivered time is still recorded: {m}")
        self.assertEqual(parse_ts(m["read_at"]).timestamp(), now + 20)
        self.assertNotIn("error", m)
        events = self.server.sql("SELECT status FROM message_status_events WHERE wamid = "
                                 f"{sql_quote(wamid)} ORDER BY status")
        self.assertEqual(events.split(), ["delivered", "read", "sent"])

    def test_reversed_statuses_in_one_body(self):
        tc, wa = self.a1, new_wa_id()
        mid, wamid = self.outbound_message(tc, wa)
        now = int(time.time())
        self.deliver(status_body(tc.phone_number_id, [status(wamid, "read", wa, now + 2),
                                                      status(wamid, "delivered", wa, now + 1)]))
        self.assertEqual(self.message(tc, mid)["status"], "read")

    def test_failed_is_terminal_and_keeps_code_and_title(self):
        tc, wa = self.a1, new_wa_id()
        mid, wamid = self.outbound_message(tc, wa)
        now = int(time.time())
        errors = [{"code": 131026, "title": "Message undeliverable",
                   "message": "Message undeliverable",
                   "error_data": {"details": "Message Undeliverable."}}]
        self.deliver(status_body(tc.phone_number_id,
                                 [status(wamid, "failed", wa, now + 1, errors=errors)]), "failed")
        for later in ("sent", "delivered", "read"):
            self.deliver(status_body(tc.phone_number_id, [status(wamid, later, wa, now + 5)]),
                         f"{later} after failed")
        m = self.message(tc, mid)
        self.assertEqual(m["status"], "failed", m)
        self.assertEqual(m.get("error"), {"code": 131026, "title": "Message undeliverable"}, m)
        # A retried failed status changes nothing either.
        self.deliver(status_body(tc.phone_number_id, [status(
            wamid, "failed", wa, now + 9, errors=[{"code": 1, "title": "other"}])]))
        self.assertEqual(self.message(tc, mid).get("error"),
                         {"code": 131026, "title": "Message undeliverable"})

    def test_status_never_changes_an_inbound_message(self):
        tc, wa, wamid = self.a1, new_wa_id(), unique_wamid("in")
        self.deliver(text_body(tc.phone_number_id, wa, "inbound", wamid))
        self.deliver(status_body(tc.phone_number_id, [status(wamid, "read", wa)]))
        self.assertEqual(message_by_wamid(self.server, tc.key, wamid)["status"], "received")

    def test_status_for_another_tenants_message_changes_nothing(self):
        mid, wamid = self.outbound_message(self.a1, new_wa_id())
        # Tenant B's number reports a status for tenant A's wamid.
        self.deliver(status_body(self.b.phone_number_id, [status(wamid, "read", new_wa_id())]))
        self.assertEqual(self.message(self.a1, mid)["status"], "sent")

    # -- conversations

    def test_conversation_list_filters_pagination_resolve_reopen(self):
        srv = self.server
        ch1, ch2 = tenant_with_channel(srv, channels=2)
        key = ch1.key
        contacts = [new_wa_id() for _ in range(5)]
        for wa in contacts:
            self.deliver(text_body(ch1.phone_number_id, wa, f"hello from {wa}"))
        other = new_wa_id()
        self.deliver(text_body(ch2.phone_number_id, other, "other channel"))

        pages, cursor, ids = [], None, []
        for _ in range(10):
            path = "/v1/conversations?limit=2" + (f"&cursor={cursor}" if cursor else "")
            body = self.get(key, path)
            pages.append(len(body["data"]))
            ids += [c["id"] for c in body["data"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        self.assertEqual(pages, [2, 2, 2], "six conversations in pages of two")
        self.assertEqual(len(set(ids)), 6, "no conversation twice across pages")
        desc = [c["id"] for c in conversations(srv, key, "order=desc")]
        asc = [c["id"] for c in conversations(srv, key, "order=asc")]
        self.assertEqual(asc, list(reversed(desc)))
        self.assertEqual(ids, desc, "the default order is newest first")
        self.assertEqual(asc[0], conversation_of(srv, key, contacts[0])["id"])
        # Pagination in ascending order too.
        asc_paged = [c["id"] for c in list_all(srv, key, "/v1/conversations?order=asc", limit=2)]
        self.assertEqual(asc_paged, asc)

        only1 = conversations(srv, key, f"channel_id={ch1.channel_id}")
        self.assertEqual(sorted(c["contact"]["wa_id"] for c in only1), sorted(contacts))
        only2 = conversations(srv, key, f"channel_id={ch2.channel_id}")
        self.assertEqual([c["contact"]["wa_id"] for c in only2], [other])
        self.assertEqual(len(conversations(srv, key, "status=open")), 6)
        self.assertEqual(conversations(srv, key, "status=resolved"), [])
        self.assertEqual(conversations(srv, key, f"channel_id={self.a1.channel_id}"), [],
                         "another tenant's channel filters to nothing")

        target = conversation_of(srv, key, contacts[2])
        self.assertEqual(target["status"], "open")
        self.assertEqual(target["unread_count"], 1)
        self.assertEqual(target["contact"]["name"], f"Contact {contacts[2]}")
        r = srv.request("PATCH", f"/v1/conversations/{target['id']}", {"status": "resolved"},
                        token=key)
        self.assertStatus(r, 200, "resolve")
        self.assertEqual(r.body["status"], "resolved")
        self.assertEqual(r.body["unread_count"], 0)
        self.assertEqual([c["id"] for c in conversations(srv, key, "status=resolved")],
                         [target["id"]])
        self.assertEqual(len(conversations(srv, key, "status=open")), 5)
        resolved_filter = conversations(srv, key, f"status=resolved&channel_id={ch2.channel_id}")
        self.assertEqual(resolved_filter, [])

        r = srv.request("PATCH", f"/v1/conversations/{target['id']}",
                        {"mode": "bot", "assignee": "agent-7"}, token=key)
        self.assertStatus(r, 200, "mode and assignee")
        self.assertEqual((r.body["mode"], r.body["assignee"], r.body["status"]),
                         ("bot", "agent-7", "resolved"))
        r = srv.request("PATCH", f"/v1/conversations/{target['id']}", {"assignee": None}, token=key)
        self.assertStatus(r, 200, "clear assignee")
        self.assertIsNone(r.body["assignee"])
        self.assertEqual(r.body["mode"], "bot")

        # A new inbound message reopens it.
        self.deliver(text_body(ch1.phone_number_id, contacts[2], "me again"))
        again = self.conv(key, target["id"])
        self.assertEqual(again["status"], "open", again)
        self.assertEqual(again["unread_count"], 1, again)
        self.assertEqual(conversations(srv, key, "status=resolved"), [])
        self.assertEqual(len(messages_of(srv, key, target["id"])), 2)

    def test_conversation_query_and_patch_validation(self):
        key = self.a1.key
        for q in ("status=closed", "channel_id=nope", "limit=0", "limit=501", "limit=x",
                  "cursor=not-a-cursor", "order=sideways"):
            r = self.server.request("GET", f"/v1/conversations?{q}", token=key)
            self.assertError(r, 400, what=q)
        wa = new_wa_id()
        self.deliver(text_body(self.a1.phone_number_id, wa, "x"))
        cid = conversation_of(self.server, key, wa)["id"]
        for bad in ({"status": "closed"}, {"mode": "robot"}, {"assignee": 5}, {"unknown": 1},
                    {"status": 1}):
            r = self.server.request("PATCH", f"/v1/conversations/{cid}", bad, token=key)
            self.assertError(r, 400, what=json.dumps(bad))
        r = self.server.request("GET", f"/v1/conversations/{cid}/messages?order=up", token=key)
        self.assertError(r, 400, what="order=up")
        r = self.server.request("GET", f"/v1/conversations/{cid}")
        self.assertError(r, 401, what="no credentials")

    def test_messages_in_ascending_and_descending_order(self):
        tc, wa = self.a1, new_wa_id()
        now = int(time.time())
        wamids = [unique_wamid(f"o{i}") for i in range(4)]
        for i, w in enumerate(wamids):
            self.deliver(text_body(tc.phone_number_id, wa, f"m{i}", w, now + i))
        cid = conversation_of(self.server, tc.key, wa)["id"]
        asc = [m["wa_message_id"] for m in messages_of(self.server, tc.key, cid, "asc")]
        desc = [m["wa_message_id"] for m in messages_of(self.server, tc.key, cid, "desc")]
        self.assertEqual(asc, wamids)
        self.assertEqual(desc, list(reversed(wamids)))
        default = self.get(tc.key, f"/v1/conversations/{cid}/messages")["data"]
        self.assertEqual([m["wa_message_id"] for m in default], wamids, "default is ascending")
        paged = [m["wa_message_id"] for m in
                 list_all(self.server, tc.key, f"/v1/conversations/{cid}/messages?order=desc", 3)]
        self.assertEqual(paged, list(reversed(wamids)))
        first = self.get(tc.key, f"/v1/conversations/{cid}/messages?order=asc")["data"][0]
        self.assertEqual(first["conversation_id"], cid)
        self.assertEqual(first["from"], wa)
        self.assertEqual(first["direction"], "inbound")
        self.assertEqual(parse_ts(first["timestamp"]).timestamp(), now)

    # -- isolation

    def test_other_tenants_conversations_and_messages_are_404(self):
        srv = self.server
        wa, wamid = new_wa_id(), unique_wamid("iso")
        self.deliver(text_body(self.a1.phone_number_id, wa, "secret of A", wamid))
        conv = conversation_of(srv, self.a1.key, wa)
        msg = message_by_wamid(srv, self.a1.key, wamid)
        for path in (f"/v1/conversations/{conv['id']}", f"/v1/conversations/{conv['id']}/messages",
                     f"/v1/messages/{msg['id']}"):
            r = srv.request("GET", path, token=self.b.key)
            self.assertError(r, 404, "not_found", what=f"B reads {path}")
            never = srv.request("GET", path.replace(conv["id"], NEVER).replace(msg["id"], NEVER),
                                token=self.b.key)
            self.assertError(never, 404, "not_found", what=f"{path} never existed")
        for path in ("/v1/conversations/not-a-uuid", "/v1/conversations/not-a-uuid/messages",
                     "/v1/messages/not-a-uuid"):
            self.assertError(srv.request("GET", path, token=self.b.key), 404, "not_found",
                             what=path)
        r = srv.request("PATCH", f"/v1/conversations/{conv['id']}", {"status": "resolved"},
                        token=self.b.key)
        self.assertError(r, 404, "not_found", what="B patches A's conversation")
        self.assertEqual(self.conv(self.a1.key, conv["id"])["status"], "open")
        b_convs = conversations(srv, self.b.key)
        self.assertNotIn(conv["id"], [c["id"] for c in b_convs])
        self.assertNotIn(wa, [c["contact"]["wa_id"] for c in b_convs])
        for c in b_convs:
            self.assertEqual(c["channel_id"], self.b.channel_id)
            for m in messages_of(srv, self.b.key, c["id"]):
                self.assertNotEqual(m["wa_message_id"], wamid)
        r = srv.request("GET", f"/v1/conversations?channel_id={self.a1.channel_id}",
                        token=self.b.key)
        self.assertStatus(r, 200)
        self.assertEqual(r.body["data"], [])

    # -- the 24-hour window

    def test_window_expires_24h_after_the_last_inbound_message(self):
        tc, wa = self.a1, new_wa_id()
        t0 = int(time.time()) - 3600
        self.deliver(text_body(tc.phone_number_id, wa, "one", ts=t0))
        c = conversation_of(self.server, tc.key, wa)
        self.assertEqual(parse_ts(c["last_inbound_at"]).timestamp(), t0, c)
        self.assertEqual(parse_ts(c["window_expires_at"]) - parse_ts(c["last_inbound_at"]),
                         datetime.timedelta(hours=24), c)
        self.assertEqual(c["status"], "open")
        # A newer message moves the window; an older (late) one does not move it back.
        self.deliver(text_body(tc.phone_number_id, wa, "two", ts=t0 + 600))
        self.deliver(text_body(tc.phone_number_id, wa, "late", ts=t0 - 600))
        c = self.conv(tc.key, c["id"])
        self.assertEqual(parse_ts(c["last_inbound_at"]).timestamp(), t0 + 600, c)
        self.assertEqual(parse_ts(c["window_expires_at"]).timestamp(), t0 + 600 + 86400, c)
        self.assertEqual(c["unread_count"], 3)


class PassivationTest(InboundBase):
    env = {"PARLEY_RUNTIME_CONVERSATION_IDLE_TIMEOUT_S": "1"}

    def test_idle_conversation_is_passivated_and_reactivated(self):
        srv = self.server
        tc = tenant_with_channel(srv)[0]
        wa = new_wa_id()
        w1 = unique_wamid("p1")
        self.deliver(text_body(tc.phone_number_id, wa, "before", w1))
        first = conversation_of(srv, tc.key, wa)
        passivated = wait_until(
            lambda: metric(srv, "parley_conversation_actors_passivated_total") >= 1
            and metric(srv, "parley_conversation_actors_active") == 0, timeout=10)
        self.assertTrue(passivated, "no passivation within 10 s of a 1 s idle timeout:\n"
                        + "\n".join(l for l in srv.request("GET", "/metrics").body.splitlines()
                                    if "conversation_actors" in l) + self._logs())
        count = metric(srv, "parley_conversation_actors_passivated_total")
        # The next message is delivered to a new activation of the same conversation.
        self.deliver(text_body(tc.phone_number_id, wa, "after", unique_wamid("p2")))
        # So is a replay of the first one, still recognised as a duplicate.
        self.deliver(text_body(tc.phone_number_id, wa, "before", w1))
        again = conversation_of(srv, tc.key, wa)
        self.assertEqual(again["id"], first["id"])
        self.assertEqual(again["unread_count"], 2, again)
        self.assertEqual([m["content"]["body"] for m in messages_of(srv, tc.key, first["id"])],
                         ["before", "after"])
        self.assertEqual(len(conversations(srv, tc.key)), 1)
        self.assertTrue(wait_until(
            lambda: metric(srv, "parley_conversation_actors_passivated_total") > count, timeout=10),
            "the reactivated conversation was not passivated again")

    def test_messages_arriving_around_the_idle_timeout_all_land(self):
        """Messages sent about one idle timeout apart race the passivation tick; whichever wins,
        each message is stored once and counted once."""
        srv = self.server
        tc = tenant_with_channel(srv)[0]
        contacts = [new_wa_id() for _ in range(10)]
        rng = random.Random(7)
        before = metric(srv, "parley_conversation_actors_passivated_total")
        rounds = 4
        for n in range(rounds):
            for wa in contacts:
                self.post_ok(text_body(tc.phone_number_id, wa, f"round {n}"))
            time.sleep(rng.uniform(0.9, 1.15))
        wait_processed(srv)
        for wa in contacts:
            c = conversation_of(srv, tc.key, wa)
            self.assertIsNotNone(c, wa)
            bodies = [m["content"]["body"] for m in messages_of(srv, tc.key, c["id"])]
            self.assertEqual(bodies, [f"round {n}" for n in range(rounds)], wa)
            self.assertEqual(c["unread_count"], rounds, c)
        self.assertGreater(metric(srv, "parley_conversation_actors_passivated_total"), before,
                           "no conversation was passivated between rounds")


if __name__ == "__main__":
    unittest.main()
