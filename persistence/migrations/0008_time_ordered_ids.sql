-- New contacts, conversations and messages get time-ordered ids (UUID version 7, RFC 9562: 48 bits
-- of Unix milliseconds, then random bits; outbound_store draws accepted sends' ids from the same
-- function). A random (version 4) primary key sends every insert to
-- a random leaf of its index: as the table grows, each insert touches a page nobody touched
-- lately, and after every checkpoint that page goes to the WAL whole. Ids that grow with time
-- append to the right edge of the index instead. Ids stay opaque to clients (API.md): they are
-- still UUIDs, only their order changed; existing rows keep theirs.
CREATE FUNCTION parley_uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
  -- gen_random_uuid() supplies the random bits and the RFC variant; the first 6 bytes become the
  -- big-endian millisecond clock and the version nibble goes from 4 (0100) to 7 (0111): bits 52
  -- and 53 of the bytea (set_bit counts from the least significant bit of each byte).
  SELECT encode(
           set_bit(set_bit(
             overlay(uuid_send(gen_random_uuid())
                     PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)
                                       FROM 3)
                     FROM 1 FOR 6),
             52, 1), 53, 1),
           'hex')::uuid
$$;

ALTER TABLE contacts ALTER COLUMN id SET DEFAULT parley_uuid_v7();
ALTER TABLE conversations ALTER COLUMN id SET DEFAULT parley_uuid_v7();
ALTER TABLE messages ALTER COLUMN id SET DEFAULT parley_uuid_v7();
