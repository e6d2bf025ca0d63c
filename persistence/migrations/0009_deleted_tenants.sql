-- Tenants that were deleted. The hot tables have no foreign keys (migration 0007), so a write
-- already on its way when the tenant went (a batch in the writer, a request that resolved the
-- tenant just before) can still land after the delete and leave rows nobody owns. Deleting a
-- tenant records it here in the same transaction, and each node's tenant registry sweeps the
-- hot tables for recently deleted tenants on a timer (tenant_store::sweep_deleted). Only ids and
-- times: no tenant data, and no tenant_id column, so it is platform bookkeeping outside RLS.
CREATE TABLE deleted_tenants (
  id          uuid PRIMARY KEY,
  channel_ids uuid[] NOT NULL DEFAULT '{}', -- its channels at deletion (status reports are keyed by channel)
  deleted_at  timestamptz NOT NULL DEFAULT now(),
  swept_at    timestamptz,
  swept_rows  bigint NOT NULL DEFAULT 0
);
CREATE INDEX deleted_tenants_recent ON deleted_tenants (deleted_at);
