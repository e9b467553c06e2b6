-- Migration 0009: a split copy loads its ranges in several subscriber sessions,
-- so the secondary indexes it sets aside are dropped in a committed transaction
-- before the load. Their definitions are kept here until the copy has rebuilt
-- them (cleared with the state `catching-up`): a copy killed or failed between
-- leaves them on record, and the next attempt rebuilds them.

ALTER TABLE pgconvey.subscriber_table
  ADD COLUMN IF NOT EXISTS copy_indexes jsonb;  -- [{schema, name, def}] of indexes an unfinished copy set aside
