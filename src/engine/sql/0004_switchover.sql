-- Migration 0004: switchover state.
-- A subscription whose provider is not the one the desired-state file names
-- (the reverse replication a switchover sets up, new → old) records its
-- provider's database name; NULL means "as the file says". A subscriber that
-- has taken over as the writable node of its queue records when.

ALTER TABLE pgconvey.subscription
  ADD COLUMN IF NOT EXISTS provider_database  text,         -- desired-state name of the providing database; NULL = the file's root
  ADD COLUMN IF NOT EXISTS switched_over_at   timestamptz;  -- set on the subscriber while it is the writable node (its provider fenced)
