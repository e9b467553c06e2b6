-- Migration 0002: the subscriber side.
-- subscription holds the applied position, written in the same transaction as
-- the batch it records, which is what makes delivery exactly-once.

CREATE TABLE IF NOT EXISTS pgconvey.subscription (
  queue_name      text NOT NULL,
  consumer_name   text NOT NULL,
  completed_tick  bigint,            -- last tick whose batch is applied here
  applied_at      timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (queue_name, consumer_name)
);

-- Tables a subscriber applies, and their state ('ok' = applied with the batches).
CREATE TABLE IF NOT EXISTS pgconvey.subscriber_table (
  queue_name     text NOT NULL,
  consumer_name  text NOT NULL,
  table_schema   text NOT NULL,
  table_name     text NOT NULL,
  state          text NOT NULL DEFAULT 'ok',
  state_since    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (queue_name, consumer_name, table_schema, table_name),
  FOREIGN KEY (queue_name, consumer_name) REFERENCES pgconvey.subscription ON DELETE CASCADE
);
