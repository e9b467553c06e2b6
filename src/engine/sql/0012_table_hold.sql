-- Migration 0012: a table held alone on a schema mismatch (#17 part 3).
-- When a table's rows carry columns the subscriber's table lacks (a schema
-- change made on the provider without pgconvey execute), the worker sets its
-- subscriber_table row to state 'held' from copy_tick (its events from there
-- are kept on the provider by the pin named in copy_pin) and goes on with the
-- other tables. hold_columns are the columns it waits for: once the
-- subscriber's table has them all, the table goes 'catching-up' from
-- copy_tick and the worker applies its held events (engine/table-hold.ts).

ALTER TABLE pgconvey.subscriber_table ADD COLUMN IF NOT EXISTS hold_columns text[];
