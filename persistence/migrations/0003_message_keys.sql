-- messages reach tenants and channels through their conversation (which cascades from both), so
-- the direct foreign keys only cost a trigger per inserted row on the hottest table.
ALTER TABLE messages DROP CONSTRAINT messages_tenant_id_fkey;
ALTER TABLE messages DROP CONSTRAINT messages_channel_id_fkey;
