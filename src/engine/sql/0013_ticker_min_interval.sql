-- Migration 0013: the least time between two ticks taken for a subscriber
-- that keeps up. Every tick is a batch, and a batch costs its round trips and
-- bookkeeping on the provider and the subscriber whatever it holds: ticking
-- the moment events wait (keep_up_tick, and ticker()'s waiting-consumer rule)
-- gave a busy subscriber ~120 batches a second of ~8 row changes each at
-- 500 tps. Those two rules now wait until the last tick is this old; the
-- max_count, max_lag and idle rules are unchanged. Zero: tick as soon as
-- events wait (the behaviour before).
ALTER TABLE pgconvey.queue ADD COLUMN IF NOT EXISTS ticker_min_interval interval NOT NULL DEFAULT '20 milliseconds';
