-- Migration 0005: the last error an apply worker met, kept on the subscriber
-- so `status` can show it next to the worker's liveness. It is shown while it
-- is newer than the last batch applied.

ALTER TABLE pgconvey.subscription
  ADD COLUMN IF NOT EXISTS last_error     text,
  ADD COLUMN IF NOT EXISTS last_error_at  timestamptz;
