"""The durability promise of inbound webhooks: a 200 means the message is not lost, whatever
happens next. A concurrent signed load runs over keep-alive connections, the server is killed
(SIGKILL) in the middle of it, restarted on the same database, and after the start-up replay
every acknowledged wamid exists exactly once and every conversation's counters moved exactly once
per message. A clean SIGTERM followed by a restart replays nothing twice."""
import secrets
import signal
import subprocess
import threading
import time
import unittest

from harness import RestartTestCase, require_environment
from webhook_fixtures import (WEBHOOK_PATH, KeepAlivePoster, entry, envelope, messages_change,
                              metric, tenant_with_channel, text_body, text_message, unique_wamid,
                              unprocessed, wait_processed, wait_until)

setUpModule = require_environment

APP_SECRET = "platform-secret-" + secrets.token_hex(8)
THREADS = 8
CONTACTS_PER_THREAD = 3


class Load:
    """THREADS threads posting distinct signed messages until stopped or the server is gone.
    Records every wamid whose POST was answered 200 (and every wamid ever sent)."""

    def __init__(self, port: int, phone_number_id: str, channel_id: str):
        self.port = port
        self.pnid = phone_number_id
        self.channel_id = channel_id
        self.lock = threading.Lock()
        self.acked = []           # wamids in bodies answered 200
        self.acked_requests = 0
        self.sent = set()         # every wamid put on the wire
        self.other_statuses = {}  # status -> count (503 while draining, ...)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(THREADS)]

    def start(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def body(self, thread: int, n: int):
        wa = f"1555{thread:02d}{n % CONTACTS_PER_THREAD:06d}"
        if n % 5 == 4:  # some bodies carry two messages for two contacts
            msgs = [text_message(wa, f"t{thread} n{n} a", unique_wamid(f"c{thread}")),
                    text_message(f"1555{thread:02d}9{n % 2:05d}", f"t{thread} n{n} b",
                                 unique_wamid(f"c{thread}"))]
            return envelope(entry(messages_change(self.pnid, msgs))), [m["id"] for m in msgs]
        wamid = unique_wamid(f"c{thread}")
        return text_body(self.pnid, wa, f"t{thread} n{n}", wamid), [wamid]

    def run(self, thread: int) -> None:
        # Odd threads use the per-channel endpoint: its events are replayed with the channel
        # restriction they were stored with.
        path = f"{WEBHOOK_PATH}/{self.channel_id}" if thread % 2 else WEBHOOK_PATH
        poster = KeepAlivePoster(self.port, APP_SECRET, path, timeout=10)
        failures = 0
        n = 0
        while not self.stop.is_set():
            body, wamids = self.body(thread, n)
            n += 1
            with self.lock:
                self.sent.update(wamids)
            st = poster.post(body)
            if st == 200:
                with self.lock:
                    self.acked.extend(wamids)
                    self.acked_requests += 1
                failures = 0
                continue
            with self.lock:
                self.other_statuses[st] = self.other_statuses.get(st, 0) + 1
            failures += 1
            if failures >= 3:  # the server is gone: nothing more will be acknowledged
                break
            time.sleep(0.02)
        poster.close()

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


def values_list(wamids) -> str:
    return ",".join("('" + w.replace("'", "''") + "')" for w in wamids)


class CrashRecoveryTest(RestartTestCase):
    SERVER_ENV = {"PARLEY_WHATSAPP_APP_SECRET": APP_SECRET}

    def load_until(self, srv, tc, acks: int) -> Load:
        load = Load(srv.port, tc.phone_number_id, tc.channel_id).start()
        reached = wait_until(lambda: load.acked_count() >= acks, timeout=60, interval=0.005)
        if not reached:
            load.join()
            self.fail(f"the load got only {load.acked_count()} acknowledgements "
                      f"({load.other_statuses}){self._logs(srv)}")
        return load

    def check_every_ack_stored_once(self, srv, load: Load) -> None:
        acked = list(load.acked)
        self.assertEqual(len(acked), len(set(acked)), "a wamid was sent twice by the test")
        missing = srv.sql("SELECT count(*) FROM (VALUES " + values_list(acked) + ") AS a(w) "
                          "WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.wamid = a.w)")
        self.assertEqual(missing, "0", f"{missing} of {len(acked)} acknowledged messages were lost"
                                       + self._logs(srv))
        dup = srv.sql("SELECT count(*) FROM (SELECT channel_id, wamid FROM messages "
                      "GROUP BY 1, 2 HAVING count(*) > 1) d")
        self.assertEqual(dup, "0", "a message exists twice")
        stored = set(srv.sql("SELECT wamid FROM messages WHERE direction = 'inbound'").split())
        self.assertTrue(stored <= load.sent, "a message was stored that was never sent")
        # Counters moved once per stored message, replays included.
        bad = srv.sql("SELECT c.wa_id, c.unread_count, count(m.id) FROM conversations c "
                      "LEFT JOIN messages m ON m.conversation_id = c.id "
                      "GROUP BY c.id HAVING c.unread_count <> count(m.id)")
        self.assertEqual(bad, "", "unread_count differs from the number of messages "
                                  "(a replay counted a message twice)")
        self.assertEqual(unprocessed(srv), 0)
        outcomes = srv.sql("SELECT DISTINCT outcome FROM raw_webhook_events")
        self.assertEqual(outcomes, "accepted", "every event was routed, per-channel ones included")
        self.assertNotEqual(srv.sql("SELECT count(*) FROM raw_webhook_events "
                                    "WHERE channel_id IS NOT NULL"), "0")

    def replayed(self, srv) -> int:
        return sum(int(r.get("count", 0)) for r in srv.log_records()
                   if r.get("msg") == "replayed raw events")

    def crash_and_recover(self, acks_before_kill: int) -> None:
        srv = self.start()
        tc = tenant_with_channel(srv)[0]
        load = self.load_until(srv, tc, acks_before_kill)
        srv.signal(signal.SIGKILL)
        self.assertIsNotNone(srv.wait_exit(10), "SIGKILL did not end the server")
        load.join()
        left = unprocessed(self.db)
        raw_rows = int(self.db.sql("SELECT count(*) FROM raw_webhook_events"))
        self.assertGreaterEqual(len(load.acked), acks_before_kill)

        srv2 = self.start()
        wait_processed(srv2, timeout=60)
        if left:
            self.assertTrue(wait_until(lambda: self.replayed(srv2) >= left, timeout=10),
                            f"{left} unprocessed events at the crash, replay log says "
                            f"{self.replayed(srv2)}{self._logs(srv2)}")
        self.check_every_ack_stored_once(srv2, load)
        # Every acknowledged request is a stored raw event (some stored ones may have lost
        # their answer to the kill).
        self.assertGreaterEqual(raw_rows, load.acked_requests)
        # The restarted node serves traffic normally.
        wamid = unique_wamid("after")
        poster = KeepAlivePoster(srv2.port, APP_SECRET)
        st = poster.post(text_body(tc.phone_number_id, "15550009999", "after", wamid))
        self.assertEqual(st, 200)
        poster.close()
        wait_processed(srv2)
        self.assertEqual(srv2.sql(f"SELECT count(*) FROM messages WHERE wamid = '{wamid}'"), "1")
        srv2.stop()

    def test_sigkill_early_in_the_load(self):
        self.crash_and_recover(acks_before_kill=20)

    def test_sigkill_late_in_the_load(self):
        self.crash_and_recover(acks_before_kill=400)

    def test_clean_sigterm_then_restart_replays_nothing_twice(self):
        srv = self.start()
        tc = tenant_with_channel(srv)[0]
        load = self.load_until(srv, tc, 150)
        srv.signal(signal.SIGTERM)
        code = srv.wait_exit(30)
        load.join()
        self.assertEqual(code, 0, "SIGTERM must drain and exit 0" + self._logs(srv))
        # The drain finishes acknowledged events (regression: it once stopped the actors right
        # after the HTTP drain, cutting the ingest's work and leaving events for the next start).
        left = unprocessed(self.db)
        self.assertEqual(left, 0, "acknowledged events left unprocessed by a clean shutdown")
        stored_before = int(self.db.sql("SELECT count(*) FROM messages"))

        srv2 = self.start()
        wait_processed(srv2, timeout=60)
        time.sleep(0.3)  # a (wrong) replay would show in the log and metrics by now
        self.check_every_ack_stored_once(srv2, load)
        self.assertEqual(int(srv2.sql("SELECT count(*) FROM messages")), stored_before)
        self.assertEqual(self.replayed(srv2), 0, "the restart replayed processed events"
                         + self._logs(srv2))
        self.assertEqual(metric(srv2, "parley_inbound_messages_total"), 0)
        self.assertEqual(metric(srv2, "parley_inbound_duplicates_total"), 0,
                         "an event processed before the shutdown was processed again")
        srv2.stop()


class HeldLock:
    """A transaction holding `lock_sql` in its own psql session until close()."""

    def __init__(self, url: str, lock_sql: str):
        self.proc = subprocess.Popen(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                      "-d", url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.proc.stdin.write(f"BEGIN; {lock_sql}; SELECT 'locked';\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().strip()
        if line != "locked":
            raise AssertionError(f"could not take the lock: {line!r}")

    def close(self) -> None:
        self.proc.stdin.write("COMMIT;\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


class BacklogBeyondTheQueueTest(RestartTestCase):
    """Acknowledged webhooks arriving faster than they are processed, past what ingest keeps in
    memory (ingest.max_queued_mb): the rest wait in PostgreSQL only and are replayed from there
    once the queue has room. Nothing acknowledged is lost or stored twice. Processing is held
    still by a lock on messages while the load runs, so the queue fills whatever the machine's
    speed; acknowledgements do not need that table."""
    SERVER_ENV = {"PARLEY_WHATSAPP_APP_SECRET": APP_SECRET,
                  "PARLEY_INGEST_MAX_QUEUED_MB": "1",   # ~900 bodies of this test's size
                  "PARLEY_INGEST_MAX_IN_FLIGHT": "4",
                  # the writer's statement waits for the lock instead of timing out
                  "PARLEY_DB_STATEMENT_TIMEOUT_MS": "120000"}

    def test_events_past_the_queue_wait_in_the_database_and_are_all_processed(self):
        srv = self.start()
        tc = tenant_with_channel(srv)[0]
        lock = HeldLock(self.db.url, "LOCK TABLE messages IN SHARE MODE")
        try:
            load = CrashRecoveryTest.load_until(self, srv, tc, 2500)
            load.join()
            deferred = metric(srv, "parley_raw_events_deferred_total")
        finally:
            lock.close()
        self.assertGreater(deferred, 0, "the queue never filled: the test did not test anything"
                           + self._logs(srv))
        wait_processed(srv, timeout=120)
        self.assertTrue(wait_until(lambda: self.replayed(srv) >= deferred, timeout=10),
                        f"{deferred} events deferred, {self.replayed(srv)} replayed")
        # (A deferred event may be replayed just before its journal batch reaches ingest: then
        # it is recognised as a duplicate, which is what every step being idempotent is for.)
        CrashRecoveryTest.check_every_ack_stored_once(self, srv, load)
        srv.stop()

    def replayed(self, srv) -> int:
        return CrashRecoveryTest.replayed(self, srv)


class DeletedTenantSweepTest(RestartTestCase):
    """Rows of a deleted tenant that land after the delete (a write in flight at that moment:
    the hot tables have no foreign keys) are swept by the tenant registry, at start-up too, so a
    crash between the delete and its sweep leaves nothing behind."""

    def test_rows_landing_after_a_delete_are_swept_at_start_up(self):
        srv = self.start()
        t = srv.create_tenant()
        ch = srv.create_channel(t["id"])
        r = srv.admin("DELETE", f"/v1/tenants/{t['id']}")
        self.assertEqual(r.status, 204, r.describe())
        tid, cid = t["id"], ch["id"]
        # What a batch committed just after the delete would leave.
        self.db.sql(f"""
            WITH c AS (INSERT INTO conversations (tenant_id, channel_id, wa_id)
                       VALUES ('{tid}', '{cid}', '15550001') RETURNING id),
            k AS (INSERT INTO contacts (tenant_id, wa_id) VALUES ('{tid}', '15550001'))
            INSERT INTO messages (tenant_id, conversation_id, channel_id, direction, wamid, type,
                                  content, status)
            SELECT '{tid}', c.id, '{cid}', 'inbound', 'wamid.late', 'text', '{{}}', 'received'
            FROM c""")
        srv.signal(signal.SIGKILL)
        self.assertIsNotNone(srv.wait_exit(10), "SIGKILL did not end the server")

        left = (f"SELECT (SELECT count(*) FROM conversations WHERE tenant_id = '{tid}') + "
                f"(SELECT count(*) FROM contacts WHERE tenant_id = '{tid}') + "
                f"(SELECT count(*) FROM messages WHERE tenant_id = '{tid}')")
        self.assertEqual(self.db.sql(left), "3")
        srv2 = self.start()
        deadline = time.monotonic() + 30
        while self.db.sql(left) != "0" and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(self.db.sql(left), "0", srv2.logs(30))
        swept = [r for r in srv2.log_records() if r.get("msg") == "rows of deleted tenants swept"]
        self.assertTrue(swept and swept[0].get("rows") == 3, srv2.logs(30))
        self.assertEqual(self.db.sql(f"SELECT swept_rows FROM deleted_tenants WHERE id = '{tid}'"),
                         "3")
        srv2.stop()


class RawEventRetentionTest(RestartTestCase):
    """retention.raw_event_days (default 30): processed raw events older than that are pruned at
    start-up and at each sweep (unprocessed ones stay: tests/actors/raw_event_retention_test)."""

    def test_processed_events_past_retention_are_pruned_at_start_up(self):
        srv = self.start()
        old = self.db.sql("INSERT INTO raw_webhook_events (received_at, body, processed_at) "
                          "VALUES (now() - interval '31 days', '{}', now() - interval '31 days') "
                          "RETURNING id")
        recent = self.db.sql("INSERT INTO raw_webhook_events (received_at, body, processed_at) "
                             "VALUES (now() - interval '29 days', '{}', now()) RETURNING id")
        srv.stop()
        srv2 = self.start()
        deadline = time.monotonic() + 30
        gone = f"SELECT count(*) FROM raw_webhook_events WHERE id = {old}"
        while self.db.sql(gone) != "0" and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(self.db.sql(gone), "0", srv2.logs(30))
        self.assertEqual(self.db.sql(f"SELECT count(*) FROM raw_webhook_events WHERE id = {recent}"),
                         "1")
        pruned = [r for r in srv2.log_records() if r.get("msg") == "raw events pruned"]
        self.assertTrue(pruned and pruned[0].get("count") >= 1, srv2.logs(30))
        srv2.stop()


if __name__ == "__main__":
    unittest.main()
