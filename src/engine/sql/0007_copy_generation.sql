-- Migration 0007: copies told apart. Every copy attempt (and every resync)
-- takes a new generation from a sequence; the copy's pin consumer on the
-- provider is named after it and recorded here, so the worker drops exactly
-- the pin of the copy it merged, and a pin no row names any more is known to
-- be stale. A failed copy records when it failed and how often, so the copier
-- retries it with backoff and `status` can say so.

CREATE SEQUENCE IF NOT EXISTS pgconvey.copy_generation_seq;

ALTER TABLE pgconvey.subscriber_table
  ADD COLUMN IF NOT EXISTS copy_generation  bigint NOT NULL DEFAULT 0,  -- the copy (or resync) this row's state belongs to
  ADD COLUMN IF NOT EXISTS copy_pin         text,                       -- the provider consumer holding the copy's events
  ADD COLUMN IF NOT EXISTS copy_failures    integer NOT NULL DEFAULT 0, -- failed attempts since the last successful copy
  ADD COLUMN IF NOT EXISTS last_error_at    timestamptz;

-- Copies of an older engine in progress keep the pin name they registered.
UPDATE pgconvey.subscriber_table
   SET copy_pin = 'copy:' || consumer_name || ':' || table_schema || '.' || table_name
 WHERE state IN ('copying', 'catching-up') AND copy_pin IS NULL;
