-- Run by every install or upgrade after functions.sql: every captured table
-- whose capture function predates the current row format (no recorded
-- shape) or the planned shape check (plain and partitioned tables), or a
-- plain table's reading of superseded versions by key, gets
-- its capture function made again, so from this transaction on
-- its events are written in the current format. Events already queued in the
-- old format are read through pgconvey.legacy_event(). Then every capture
-- function is given to the capture role (pgconvey.own_capture), so an
-- upgrade takes the installer's rights out of the capture of installed
-- databases too.
DO $$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT q.queue_name, c.table_schema, c.table_name, c.key_columns
             FROM pgconvey.captured_table c JOIN pgconvey.queue q USING (queue_id)
            WHERE (c.shape_id IS NULL
                   -- a capture made before its shape check was planned (pgconvey.capture_columns)
                   OR EXISTS (SELECT FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_class r
                                ON r.oid = pg_catalog.to_regclass(pg_catalog.format('%I.%I', c.table_schema, c.table_name))
                               WHERE p.pronamespace = 'pgconvey'::pg_catalog.regnamespace AND p.proname = 'capture_' || c.table_id
                                 AND r.relkind IN ('r', 'p') AND pg_catalog.strpos(p.prosrc, 'pgconvey.capture_columns(') = 0)
                   -- a plain table's capture made before superseded versions were read by key (add_table)
                   OR EXISTS (SELECT FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_class r
                                ON r.oid = pg_catalog.to_regclass(pg_catalog.format('%I.%I', c.table_schema, c.table_name))
                               WHERE p.pronamespace = 'pgconvey'::pg_catalog.regnamespace AND p.proname = 'capture_' || c.table_id
                                 AND r.relkind = 'r' AND pg_catalog.strpos(p.prosrc, 'pgconvey.nested_') = 0))
              AND pg_catalog.to_regclass(pg_catalog.format('%I.%I', c.table_schema, c.table_name)) IS NOT NULL LOOP
    PERFORM pgconvey.add_table(t.queue_name, t.table_schema, t.table_name, t.key_columns);
  END LOOP;
END $$;

-- (All at once: one GRANT and REVOKE of CREATE on the schema, see pgconvey.own_captures.)
SELECT pgconvey.own_captures(ARRAY(
  SELECT c.table_id FROM pgconvey.captured_table c
   WHERE pg_catalog.to_regprocedure(pg_catalog.format('pgconvey.%I()', 'capture_' || c.table_id)) IS NOT NULL
     AND pg_catalog.to_regprocedure(pg_catalog.format('pgconvey.%I()', 'capture_truncate_' || c.table_id)) IS NOT NULL
   ORDER BY c.table_id));
