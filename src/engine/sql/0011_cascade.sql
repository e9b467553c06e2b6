-- Migration 0011: cascades (branch nodes, as in Londiste's pgq_node).
-- A branch is a subscriber that also holds a copy of its provider's queue for
-- its own subscribers: its worker re-queues every event of each batch it
-- applies (same ev_id, table id, shape id, row text) into the branch's queue
-- and, in the same transaction, inserts the tick of the same id. Such a queue
-- is never ticked by a ticker (ticker() answers NULL, force_tick() returns the
-- last tick): branch_provider names the node it follows; NULL on a root's queue.
-- The provider's captured_table, table_shape and captured_sequence rows are
-- mirrored into the branch with the provider's ids (events carry them).

ALTER TABLE pgconvey.queue ADD COLUMN IF NOT EXISTS branch_provider text;
ALTER TABLE pgconvey.queue ADD COLUMN IF NOT EXISTS branch_consumer text;  -- the branch's own subscription (consumer name)
