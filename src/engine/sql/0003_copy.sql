-- Migration 0003: initial copy and sequences.
-- subscriber_table gains the copy's snapshot and tick (for merging the copy
-- with the queue) and its progress; the provider registers the sequences a
-- queue carries forward.

ALTER TABLE pgconvey.subscriber_table
  ADD COLUMN IF NOT EXISTS copy_snapshot     text,         -- snapshot of the provider's COPY
  ADD COLUMN IF NOT EXISTS copy_tick         bigint,       -- events up to this tick are in the copy (or replayed)
  ADD COLUMN IF NOT EXISTS rows_copied       bigint NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS bytes_copied      bigint NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS rows_expected     bigint,
  ADD COLUMN IF NOT EXISTS copy_started_at   timestamptz,
  ADD COLUMN IF NOT EXISTS copy_finished_at  timestamptz,
  ADD COLUMN IF NOT EXISTS last_error        text;
ALTER TABLE pgconvey.subscriber_table ALTER COLUMN state SET DEFAULT 'pending';

-- Sequences a queue carries forward to its subscribers.
CREATE TABLE IF NOT EXISTS pgconvey.captured_sequence (
  queue_id    integer NOT NULL REFERENCES pgconvey.queue ON DELETE CASCADE,
  seq_schema  text NOT NULL,
  seq_name    text NOT NULL,
  added_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (queue_id, seq_schema, seq_name)
);
