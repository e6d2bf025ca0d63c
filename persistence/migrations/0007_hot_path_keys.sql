-- The tables every webhook and every send writes lose their per-row foreign keys. Each one cost a
-- trigger per inserted row that also locks the parent row (FOR KEY SHARE), so concurrent batches
-- of one tenant contended on the same tenants and channels rows: together about a third of the
-- PostgreSQL time of an inbound batch (EXPLAIN ANALYZE, docs/performance.md). Every row is still
-- written only by the persistence layer with the ids of a live tenant actor, and deleting a tenant
-- deletes these rows explicitly (tenant_store::remove) instead of by cascade. Rows of the cold
-- tables (api_keys, channels, users, tenant_usage) keep their foreign keys.
ALTER TABLE contacts DROP CONSTRAINT contacts_tenant_id_fkey;
ALTER TABLE conversations
  DROP CONSTRAINT conversations_tenant_id_fkey,
  DROP CONSTRAINT conversations_channel_id_fkey;
ALTER TABLE messages DROP CONSTRAINT messages_conversation_id_fkey;
ALTER TABLE message_status_events
  DROP CONSTRAINT message_status_events_tenant_id_fkey,
  DROP CONSTRAINT message_status_events_channel_id_fkey;
ALTER TABLE outbox DROP CONSTRAINT outbox_channel_id_fkey;
