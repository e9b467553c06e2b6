-- Migration 0001: the provider side of the queue.
-- Tables: engine (installed version), queue, tick, consumer, captured_table.
-- Per-queue objects (event sequence, three rotating event tables) are made by
-- pgconvey.create_queue(); capture triggers by pgconvey.add_table().

CREATE SCHEMA IF NOT EXISTS pgconvey;

-- The installed engine version (a single row).
CREATE TABLE IF NOT EXISTS pgconvey.engine (
  singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  version      integer NOT NULL,
  installed_at timestamptz NOT NULL DEFAULT now(),
  upgraded_at  timestamptz
);

-- A queue: its rotation state and ticker settings.
CREATE TABLE IF NOT EXISTS pgconvey.queue (
  queue_id            serial PRIMARY KEY,
  queue_name          text NOT NULL UNIQUE,
  -- Events of transaction id t go to event table (t / rotation_txids) % 3: a table takes the
  -- events of rotation_txids transaction ids, then the next one does.
  rotation_txids      bigint NOT NULL DEFAULT 100000 CHECK (rotation_txids > 0),
  rotations           bigint NOT NULL DEFAULT 0,    -- event tables emptied so far
  last_rotation       timestamptz,
  tick_retention      interval NOT NULL DEFAULT '1 hour',
  ticker_max_count    integer NOT NULL DEFAULT 500,
  ticker_max_lag      interval NOT NULL DEFAULT '100 milliseconds',
  ticker_idle_period  interval NOT NULL DEFAULT '30 seconds',
  created_at          timestamptz NOT NULL DEFAULT now()
);

-- Batch boundaries: a batch is every event whose transaction is visible in a
-- later tick's snapshot and not in an earlier one.
CREATE TABLE IF NOT EXISTS pgconvey.tick (
  queue_id        integer NOT NULL REFERENCES pgconvey.queue ON DELETE CASCADE,
  tick_id         bigint NOT NULL,
  tick_time       timestamptz NOT NULL DEFAULT now(),
  tick_snapshot   txid_snapshot NOT NULL DEFAULT txid_current_snapshot(),
  tick_event_seq  bigint NOT NULL,   -- the event sequence's value at the tick: event counts between ticks
  PRIMARY KEY (queue_id, tick_id)
);

-- A consumer's position: last_tick is the last finished tick; batch_end_tick
-- is set while a batch is open, so a crashed consumer gets the same batch again.
CREATE TABLE IF NOT EXISTS pgconvey.consumer (
  queue_id        integer NOT NULL REFERENCES pgconvey.queue ON DELETE CASCADE,
  consumer_name   text NOT NULL,
  last_tick       bigint NOT NULL,
  batch_end_tick  bigint,
  registered_at   timestamptz NOT NULL DEFAULT now(),
  active_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (queue_id, consumer_name)
);

-- Tables whose changes a queue captures.
CREATE TABLE IF NOT EXISTS pgconvey.captured_table (
  table_id      serial PRIMARY KEY,
  queue_id      integer NOT NULL REFERENCES pgconvey.queue ON DELETE CASCADE,
  table_schema  text NOT NULL,
  table_name    text NOT NULL,
  key_columns   text[] NOT NULL,
  columns       text[] NOT NULL,      -- the columns shipped (no generated or dropped ones)
  added_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (queue_id, table_schema, table_name)
);
