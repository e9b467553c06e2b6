-- Migration 0010: scripts run by `pgconvey execute` (DDL in queue order).
-- ddl_script, on a queue's root: every script executed there, by name, with
-- the checksum of its text (a different text under a used name is refused).
-- ddl_applied, on a subscriber: every script its worker applied (in the
-- batch's transaction), or that an operator marked as applied by hand.

CREATE TABLE IF NOT EXISTS pgconvey.ddl_script (
  queue_id     integer NOT NULL REFERENCES pgconvey.queue ON DELETE CASCADE,
  script_name  text NOT NULL,
  checksum     text NOT NULL,          -- sha256 of the script's text, hex
  executed_at  timestamptz NOT NULL DEFAULT now(),
  executed_by  text NOT NULL DEFAULT current_user,
  PRIMARY KEY (queue_id, script_name)
);

CREATE TABLE IF NOT EXISTS pgconvey.ddl_applied (
  queue_name     text NOT NULL,
  consumer_name  text NOT NULL,
  script_name    text NOT NULL,
  checksum       text NOT NULL,
  end_tick       bigint,               -- the batch it was applied in; NULL: marked applied by hand
  applied_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (queue_name, consumer_name, script_name),
  FOREIGN KEY (queue_name, consumer_name) REFERENCES pgconvey.subscription ON DELETE CASCADE
);
