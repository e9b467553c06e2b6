-- Migration 0006: rows travel as their type's own text.
-- An event's row is the text output of the table's row (record_out, written
-- under pinned settings), and the event names the row shape it was written
-- with: table_shape records, per captured table, the columns a row carries in
-- order (every column that is not dropped, generated ones included) and the
-- key the capture used. ev_data becomes text; ev_shape is new. Events written
-- before this migration (JSON rows, no shape) are read through
-- pgconvey.legacy_event().

CREATE TABLE IF NOT EXISTS pgconvey.table_shape (
  shape_id     serial PRIMARY KEY,
  table_id     integer NOT NULL,
  attnums      smallint[] NOT NULL,   -- the row's columns by number, in order
  columns      text[] NOT NULL,       -- their names when the shape was recorded
  key_columns  text[] NOT NULL,       -- the key a DELETE's ev_key holds, in order
  generated    text[] NOT NULL DEFAULT '{}',  -- the generated ones among columns
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS table_shape_table_idx ON pgconvey.table_shape (table_id);

ALTER TABLE pgconvey.captured_table ADD COLUMN IF NOT EXISTS shape_id integer;

DO $$
DECLARE
  q record;
  i integer;
BEGIN
  FOR q IN SELECT queue_id FROM pgconvey.queue LOOP
    FOR i IN 0..2 LOOP
      EXECUTE format('ALTER TABLE pgconvey.%I ALTER COLUMN ev_data TYPE text, ADD COLUMN IF NOT EXISTS ev_shape integer',
                     'event_' || q.queue_id || '_' || i);
    END LOOP;
  END LOOP;
END $$;
