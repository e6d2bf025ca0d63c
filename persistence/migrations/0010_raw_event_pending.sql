-- Raw events that still owe work, as narrow rows of their own. The journal inserts an event's id
-- here in the transaction that stores the event; the statement that stores the event's only part
-- (a message or a status) deletes it, and raw_event_done does for the rest. Until now an event
-- was marked processed by an UPDATE of its wide row (the 1.2 KB body inline, and a partial index
-- on processed_at, so never a HOT update): about 20 us of PostgreSQL per webhook, a fifth of what
-- storing its message costs. An 8-byte row deleted costs a fraction of that.
-- raw_webhook_events.processed_at stays, set when ingest records an outcome other than a plain
-- 'accepted' (unparsable, unknown_number, partial) or an event of several parts; whether an
-- event is processed is whether its id is still here.
CREATE TABLE raw_webhook_events_pending (
  id bigint PRIMARY KEY
);
INSERT INTO raw_webhook_events_pending (id)
  SELECT id FROM raw_webhook_events WHERE processed_at IS NULL;
DROP INDEX raw_webhook_events_unprocessed;
