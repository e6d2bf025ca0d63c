"""Batch statements stay index look-ups as their tables grow.

The group-commit writers run prepared statements, and PostgreSQL may keep one generic plan per
statement and session for as long as the session lives. A generic plan made while a table was
nearly empty can scan the whole table (a sequential scan, or with the writers' index-only
settings a full index scan) - harmless on day one, a disaster at millions of rows. Found in the
inbound bench: the message statement's conversation-counter UPDATE walked every conversation of
every tenant on each batch (2 ms per message at 40,000 conversations).

These tests make the worst case happen on purpose: the database forces generic plans, the plans
are made while the table holds one row and statistics say so, the table then grows without a
new ANALYZE, and the statements must still read only the rows they touch (counted through
pg_stat_user_tables, not timed)."""
import secrets
import unittest

from harness import ParleyServer, ParleyTestCase, ScratchDatabase, require_environment
from webhook_fixtures import (post_webhook, sql_int, tenant_with_channel, text_body,
                              wait_processed, wait_until)

setUpModule = require_environment

APP_SECRET = "plan-secret-" + secrets.token_hex(8)
GROWTH = 5000  # conversations added behind the cached plans' back


def tuples_read(srv, table: str) -> int:
    """Rows and index entries read from `table` so far (all sessions, flushed statistics)."""
    return sql_int(srv, "SELECT coalesce((SELECT sum(idx_tup_read) FROM pg_stat_user_indexes "
                        f"WHERE relname = '{table}'), 0) + (SELECT coalesce(seq_tup_read, 0) "
                        f"FROM pg_stat_user_tables WHERE relname = '{table}')")


def two_messages(phone_number_id: str) -> dict:
    """One webhook carrying messages from two new customers (not the one-message fast path)."""
    body = text_body(phone_number_id, "4916" + str(secrets.randbelow(10**9)).zfill(9))
    other = text_body(phone_number_id, "4917" + str(secrets.randbelow(10**9)).zfill(9))
    body["entry"][0]["changes"][0]["value"]["messages"] += \
        other["entry"][0]["changes"][0]["value"]["messages"]
    return body


def updates(srv, table: str) -> int:
    return sql_int(srv, f"SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = '{table}'")


class GenericPlansOnGrownTables(ParleyTestCase):

    @classmethod
    def setUpClass(cls):
        cls.db = ScratchDatabase().create()
        # Every session of this database plans prepared statements once, generically.
        cls.db.sql(f'ALTER DATABASE "{cls.db.name}" SET plan_cache_mode = force_generic_plan')
        cls.server = cls.start_server(db_url=cls.db.url,
                                      env={"PARLEY_WHATSAPP_APP_SECRET": APP_SECRET,
                                           "PARLEY_DB_WRITERS": "1"})
        # No ANALYZE behind the test's back: the statistics stay those of the tiny table.
        for table in ("conversations", "contacts", "messages", "raw_webhook_events"):
            cls.server.sql(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.db.drop()

    def post_ok(self, body) -> None:
        r = post_webhook(self.server, body, APP_SECRET)
        self.assertStatus(r, 200)
        wait_processed(self.server)

    def test_a_message_to_an_existing_conversation_reads_only_that_conversation(self):
        srv = self.server
        ch = tenant_with_channel(srv)[0]
        wa_id = "4915" + str(secrets.randbelow(10**9)).zfill(9)
        # 1st message: the conversation exists. ANALYZE: statistics now say "one row".
        self.post_ok(text_body(ch.phone_number_id, wa_id, "first"))
        srv.sql("ANALYZE conversations; ANALYZE contacts; ANALYZE messages")
        # 2nd message to the same conversation: the statements are planned again (the ANALYZE
        # invalidated them) on a one-row table, and that generic plan is cached.
        self.post_ok(text_body(ch.phone_number_id, wa_id, "second"))
        # The table grows; no ANALYZE, so the cached plans stay.
        srv.sql("INSERT INTO conversations (tenant_id, channel_id, wa_id) "
                f"SELECT '{ch.tenant_id}', '{ch.channel_id}', 'grown-' || g "
                f"FROM generate_series(1, {GROWTH}) g")
        before_upd = updates(srv, "conversations")
        before = tuples_read(srv, "conversations")
        # 3rd message: moves the existing conversation's counters (the UPDATE under test).
        self.post_ok(text_body(ch.phone_number_id, wa_id, "third"))
        # Statistics reach the shared view when the writer's session goes idle (up to ~10 s).
        self.assertTrue(wait_until(lambda: updates(srv, "conversations") > before_upd, 20),
                        "the counter update never showed in pg_stat_user_tables")
        read = tuples_read(srv, "conversations") - before
        self.assertLess(read, 100, f"one message read {read} conversation rows or index entries "
                                   f"of {GROWTH + 1}: a statement scans the whole table")
        unread = sql_int(srv, "SELECT unread_count FROM conversations "
                              f"WHERE channel_id = '{ch.channel_id}' AND wa_id = '{wa_id}'")
        self.assertEqual(unread, 3)

    def test_marking_a_raw_event_processed_reads_only_that_event(self):
        # A webhook with two messages takes the general path: its raw event is committed alone,
        # then marked processed by an UPDATE of raw_webhook_events (the statement under test).
        srv = self.server
        ch = tenant_with_channel(srv)[0]
        self.post_ok(two_messages(ch.phone_number_id))
        srv.sql("ANALYZE raw_webhook_events")
        self.post_ok(two_messages(ch.phone_number_id))  # planned on the one-row statistics
        srv.sql("INSERT INTO raw_webhook_events (body, outcome, processed_at) "
                f"SELECT '\\x7b7d', 'accepted', now() FROM generate_series(1, {GROWTH})")
        before_upd = updates(srv, "raw_webhook_events")
        before = tuples_read(srv, "raw_webhook_events")
        self.post_ok(two_messages(ch.phone_number_id))
        self.assertTrue(wait_until(lambda: updates(srv, "raw_webhook_events") > before_upd, 20),
                        "the processed mark never showed in pg_stat_user_tables")
        read = tuples_read(srv, "raw_webhook_events") - before
        self.assertLess(read, 100, f"one webhook read {read} raw events or index entries of "
                                   f"{GROWTH + 2}: a statement scans the whole table")

if __name__ == "__main__":
    unittest.main()
