-- Migration 0008: fences and the state of `run`'s pieces.
--
-- A fenced database takes no application writes: `ALTER DATABASE … SET
-- default_transaction_read_only = on` (new sessions start read-only) and, on
-- every table pgconvey captures or applies there, a BEFORE INSERT/UPDATE/
-- DELETE/TRUNCATE trigger `pgconvey_fence` that raises SQLSTATE 25006 for any
-- session that is not in replica mode (so `SET default_transaction_read_only
-- = off` does not lift it; pgconvey's workers apply in replica mode). This row
-- says who fenced the database, when, and why:
--   purpose 'switchover': a switchover to `switchover_to` is in progress (or
--     stopped half way): finish or undo it;
--   purpose 'standby': a switchover finished and this node is not the
--     writable one (it stays fenced on purpose).
-- window_started_at is set on the node a switchover makes writable, when the
-- switchover's first fence is set: the write window is measured on one clock.

CREATE TABLE IF NOT EXISTS pgconvey.fence (
  singleton          boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  queue_name         text NOT NULL,
  node_name          text NOT NULL,          -- this database's node in that queue
  switchover_to      text NOT NULL,          -- the node that is (or becomes) writable
  purpose            text NOT NULL CHECK (purpose IN ('switchover', 'standby')),
  fenced_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
  window_started_at  timestamptz,
  fenced_by          text                    -- the pgconvey process that set it: application, pid, host
);

-- One row per piece of `run` (a ticker on its provider, a worker or copier on
-- its subscriber) and process: running, or backing off after an error, so
-- `status` can tell "not started" from "retrying" and name the process an
-- error belongs to. Rows of a process are removed when it stops cleanly.
CREATE TABLE IF NOT EXISTS pgconvey.process_state (
  piece          text NOT NULL,             -- e.g. 'worker:shop:new', 'ticker:shop'
  process        text NOT NULL,             -- '<host>:<pid>' of the pgconvey process
  application    text,
  state          text NOT NULL CHECK (state IN ('running', 'backing-off')),
  backend_pid    integer,                   -- while running: the backend holding the piece's lock
  last_error     text,
  last_error_at  timestamptz,
  retry_at       timestamptz,
  updated_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (piece, process)
);
