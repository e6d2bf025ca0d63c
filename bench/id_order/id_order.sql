-- Random (v4) vs time-ordered (v7) primary keys on a large table: time and WAL of 1,000
-- transactions of 30 inserts each right after a checkpoint (what a writer does all day).
-- Run against any scratch server (needs a superuser for CHECKPOINT):
--   psql postgresql://postgres@127.0.0.1:5432/postgres -f bench/id_order/id_order.sql
-- Prints the milliseconds and WAL bytes of each kind. See docs/performance.md.
\set ON_ERROR_STOP on
DROP DATABASE IF EXISTS parley_bench_id_order;
CREATE DATABASE parley_bench_id_order;
\c parley_bench_id_order
-- The migration itself supplies parley_uuid_v7(); it expects these tables to exist.
CREATE TABLE contacts (id uuid PRIMARY KEY);
CREATE TABLE conversations (id uuid PRIMARY KEY);
CREATE TABLE messages (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), pad text);
\ir ../../persistence/migrations/0008_time_ordered_ids.sql
CREATE TABLE random_ids (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), pad text);
\echo filling both tables with 3,000,000 rows ...
INSERT INTO random_ids (pad) SELECT 'x' FROM generate_series(1, 3000000);
INSERT INTO messages (pad) SELECT 'x' FROM generate_series(1, 3000000);
CREATE FUNCTION pg_temp.measure(tbl text) RETURNS TABLE (ids text, ms numeric, wal_bytes numeric)
LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; l0 pg_lsn;
BEGIN
  CHECKPOINT;
  t0 := clock_timestamp(); l0 := pg_current_wal_insert_lsn();
  FOR i IN 1..1000 LOOP
    EXECUTE format('INSERT INTO %I (pad) SELECT %L FROM generate_series(1, 30)', tbl, 'y');
  END LOOP;
  RETURN QUERY SELECT CASE tbl WHEN 'random_ids' THEN 'random (v4)' ELSE 'time-ordered (v7)' END,
    round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1000, 1),
    pg_wal_lsn_diff(pg_current_wal_insert_lsn(), l0);
END $$;
SELECT * FROM pg_temp.measure('random_ids')
UNION ALL SELECT * FROM pg_temp.measure('messages')
UNION ALL SELECT * FROM pg_temp.measure('random_ids')
UNION ALL SELECT * FROM pg_temp.measure('messages');
\c postgres
DROP DATABASE parley_bench_id_order;
