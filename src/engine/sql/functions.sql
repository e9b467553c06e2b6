-- pgconvey engine functions. Re-applied (CREATE OR REPLACE) by every install or
-- upgrade, after the migrations. PL/pgSQL and SQL only; works on PostgreSQL 10
-- to 18 (txid_* functions, no pg_current_snapshot()).

------------------------------------------------------------------------------
-- Function: pgconvey.event_table(queue_id, n) → the n-th event table of a queue.
CREATE OR REPLACE FUNCTION pgconvey.event_table(p_queue_id integer, p_n integer)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT format('pgconvey.%I', 'event_' || p_queue_id || '_' || p_n)
$$;

------------------------------------------------------------------------------
-- Function: pgconvey.event_seq_value(queue_id) → the last event id handed out
-- (without consuming one). The ticker compares it with the last tick's value.
CREATE OR REPLACE FUNCTION pgconvey.event_seq_value(p_queue_id integer)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  v bigint;
BEGIN
  EXECUTE format('SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM pgconvey.%I',
                 'event_' || p_queue_id || '_seq') INTO v;
  RETURN v;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.create_queue(name) → queue_id. Idempotent: an existing
-- queue's id is returned unchanged. Creates the event sequence, three event
-- tables (insert-only, emptied by TRUNCATE, indexed on the transaction id) and
-- the first tick.
CREATE OR REPLACE FUNCTION pgconvey.create_queue(p_queue text)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  v_id integer;
  i integer;
BEGIN
  SELECT queue_id INTO v_id FROM pgconvey.queue WHERE queue_name = p_queue;
  IF FOUND THEN
    RETURN v_id;
  END IF;
  INSERT INTO pgconvey.queue (queue_name) VALUES (p_queue) RETURNING queue_id INTO v_id;
  EXECUTE format('CREATE SEQUENCE pgconvey.%I', 'event_' || v_id || '_seq');
  FOR i IN 0..2 LOOP
    EXECUTE format(
      'CREATE TABLE %s ('
      '  ev_id bigint NOT NULL DEFAULT nextval(%L),'
      '  ev_txid bigint NOT NULL DEFAULT txid_current(),'
      '  ev_table integer NOT NULL,'
      '  ev_op "char" NOT NULL,'
      '  ev_key text,'
      '  ev_data json'
      ') WITH (fillfactor = 100, autovacuum_enabled = false, toast.autovacuum_enabled = false)',
      pgconvey.event_table(v_id, i), 'pgconvey.event_' || v_id || '_seq');
    EXECUTE format('CREATE INDEX %I ON %s (ev_txid)', 'event_' || v_id || '_' || i || '_txid', pgconvey.event_table(v_id, i));
  END LOOP;
  INSERT INTO pgconvey.tick (queue_id, tick_id, tick_event_seq) VALUES (v_id, 1, 0);
  RETURN v_id;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.drop_queue(name) → true if it existed. Removes capture
-- triggers of its tables, its event tables and sequence, ticks and consumers.
CREATE OR REPLACE FUNCTION pgconvey.drop_queue(p_queue text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  v_id integer;
  t record;
  i integer;
BEGIN
  SELECT queue_id INTO v_id FROM pgconvey.queue WHERE queue_name = p_queue FOR UPDATE;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  FOR t IN SELECT table_schema, table_name FROM pgconvey.captured_table WHERE queue_id = v_id LOOP
    PERFORM pgconvey.remove_table(p_queue, t.table_schema, t.table_name);
  END LOOP;
  FOR i IN 0..2 LOOP
    EXECUTE 'DROP TABLE IF EXISTS ' || pgconvey.event_table(v_id, i);
  END LOOP;
  EXECUTE format('DROP SEQUENCE IF EXISTS pgconvey.%I', 'event_' || v_id || '_seq');
  DELETE FROM pgconvey.queue WHERE queue_id = v_id;
  RETURN true;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.set_queue_config(name, param, value). Params:
-- ticker_max_count, ticker_max_lag, ticker_idle_period, rotation_txids,
-- tick_retention. A new rotation_txids regenerates the queue's capture functions.
CREATE OR REPLACE FUNCTION pgconvey.set_queue_config(p_queue text, p_param text, p_value text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_count integer;
  t record;
BEGIN
  IF p_param NOT IN ('ticker_max_count', 'ticker_max_lag', 'ticker_idle_period', 'rotation_txids', 'tick_retention') THEN
    RAISE EXCEPTION 'unknown queue setting "%"', p_param
      USING HINT = 'settable: ticker_max_count, ticker_max_lag, ticker_idle_period, rotation_txids, tick_retention';
  END IF;
  EXECUTE format('UPDATE pgconvey.queue SET %I = $1::%s WHERE queue_name = $2 AND %I IS DISTINCT FROM $1::%s',
                 p_param, CASE WHEN p_param IN ('ticker_max_count', 'rotation_txids') THEN 'bigint' ELSE 'interval' END,
                 p_param, CASE WHEN p_param IN ('ticker_max_count', 'rotation_txids') THEN 'bigint' ELSE 'interval' END)
    USING p_value, p_queue;
  GET DIAGNOSTICS v_count = ROW_COUNT;  -- EXECUTE does not set FOUND
  IF v_count = 0 THEN
    IF NOT EXISTS (SELECT 1 FROM pgconvey.queue WHERE queue_name = p_queue) THEN
      RAISE EXCEPTION 'queue "%" does not exist', p_queue;
    END IF;
    RETURN;  -- unchanged
  END IF;
  IF p_param = 'rotation_txids' THEN
    FOR t IN SELECT c.table_schema, c.table_name, c.key_columns FROM pgconvey.captured_table c JOIN pgconvey.queue q USING (queue_id)
              WHERE q.queue_name = p_queue LOOP
      PERFORM pgconvey.add_table(p_queue, t.table_schema, t.table_name, t.key_columns);
    END LOOP;
  END IF;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.insert_tick(queue_id) → the new tick id. Callers hold the
-- queue row lock (FOR UPDATE), taken in an earlier statement, so this
-- statement's snapshot is newer than every earlier tick's: ticks are ordered.
CREATE OR REPLACE FUNCTION pgconvey.insert_tick(p_queue_id integer)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  v_tick bigint;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'pgconvey ticks must be taken in a READ COMMITTED transaction';
  END IF;
  INSERT INTO pgconvey.tick (queue_id, tick_id, tick_event_seq)
  SELECT p_queue_id, max(tick_id) + 1, pgconvey.event_seq_value(p_queue_id)
    FROM pgconvey.tick WHERE queue_id = p_queue_id
  RETURNING tick_id INTO v_tick;
  PERFORM pg_notify('pgconvey_tick', p_queue_id::text);
  RETURN v_tick;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.ticker(name) → the new tick id, or NULL when no tick was
-- due. Ticks when ticker_max_count events wait, when events wait and
-- ticker_max_lag has passed since the last tick, or after ticker_idle_period.
CREATE OR REPLACE FUNCTION pgconvey.ticker(p_queue text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  q pgconvey.queue%ROWTYPE;
  v_last pgconvey.tick%ROWTYPE;
  v_new bigint;
  v_age interval;
BEGIN
  SELECT * INTO q FROM pgconvey.queue WHERE queue_name = p_queue FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'queue "%" does not exist', p_queue;
  END IF;
  SELECT * INTO v_last FROM pgconvey.tick WHERE queue_id = q.queue_id ORDER BY tick_id DESC LIMIT 1;
  v_new := pgconvey.event_seq_value(q.queue_id) - v_last.tick_event_seq;
  v_age := clock_timestamp() - v_last.tick_time;
  IF v_new >= q.ticker_max_count
     OR (v_new > 0 AND v_age >= q.ticker_max_lag)
     OR v_age >= q.ticker_idle_period THEN
    RETURN pgconvey.insert_tick(q.queue_id);
  END IF;
  RETURN NULL;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.force_tick(name) → the new tick id, unconditionally.
-- Call it in its own transaction: the tick is taken in the caller's transaction.
CREATE OR REPLACE FUNCTION pgconvey.force_tick(p_queue text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  v_id integer;
BEGIN
  SELECT queue_id INTO v_id FROM pgconvey.queue WHERE queue_name = p_queue FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'queue "%" does not exist', p_queue;
  END IF;
  RETURN pgconvey.insert_tick(v_id);
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.register_consumer(queue, consumer) → the consumer's
-- position (last finished tick). A new consumer starts at the latest tick; an
-- existing one keeps its position.
CREATE OR REPLACE FUNCTION pgconvey.register_consumer(p_queue text, p_consumer text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  v_id integer;
  v_pos bigint;
BEGIN
  SELECT queue_id INTO v_id FROM pgconvey.queue WHERE queue_name = p_queue;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'queue "%" does not exist', p_queue;
  END IF;
  INSERT INTO pgconvey.consumer (queue_id, consumer_name, last_tick)
  SELECT v_id, p_consumer, max(tick_id) FROM pgconvey.tick WHERE queue_id = v_id
  ON CONFLICT (queue_id, consumer_name) DO NOTHING;
  SELECT last_tick INTO v_pos FROM pgconvey.consumer WHERE queue_id = v_id AND consumer_name = p_consumer;
  RETURN v_pos;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.unregister_consumer(queue, consumer) → true if it was
-- registered. Releases the events it held back from rotation.
CREATE OR REPLACE FUNCTION pgconvey.unregister_consumer(p_queue text, p_consumer text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM pgconvey.consumer c USING pgconvey.queue q
   WHERE q.queue_name = p_queue AND c.queue_id = q.queue_id AND c.consumer_name = p_consumer;
  RETURN FOUND;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.next_batch(queue, consumer, max_events) → the consumer's
-- next batch (no row when no new tick exists). An open batch is returned again
-- (after a crash). When the consumer is behind, several ticks are merged into
-- one batch of at most about max_events events (at least one tick).
CREATE OR REPLACE FUNCTION pgconvey.next_batch(p_queue text, p_consumer text, p_max_events bigint DEFAULT 50000)
RETURNS TABLE (queue_id integer, start_tick bigint, end_tick bigint,
               start_snapshot text, end_snapshot text,
               start_time timestamptz, end_time timestamptz, event_estimate bigint)
LANGUAGE plpgsql AS $$
DECLARE
  c pgconvey.consumer%ROWTYPE;
  v_start pgconvey.tick%ROWTYPE;
  v_end bigint;
  v_first bigint;
BEGIN
  SELECT co.* INTO c FROM pgconvey.consumer co JOIN pgconvey.queue q USING (queue_id)
   WHERE q.queue_name = p_queue AND co.consumer_name = p_consumer FOR UPDATE OF co;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'consumer "%" is not registered on queue "%"', p_consumer, p_queue;
  END IF;
  SELECT * INTO v_start FROM pgconvey.tick t WHERE t.queue_id = c.queue_id AND t.tick_id = c.last_tick;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'the position of consumer "%" (tick %) is gone from queue "%"', p_consumer, c.last_tick, p_queue;
  END IF;
  v_end := c.batch_end_tick;
  IF v_end IS NULL THEN
    SELECT min(t.tick_id) INTO v_first FROM pgconvey.tick t WHERE t.queue_id = c.queue_id AND t.tick_id > c.last_tick;
    IF v_first IS NULL THEN
      RETURN;
    END IF;
    SELECT max(t.tick_id) INTO v_end FROM pgconvey.tick t
     WHERE t.queue_id = c.queue_id AND t.tick_id > c.last_tick
       AND t.tick_event_seq - v_start.tick_event_seq <= p_max_events;
    v_end := greatest(v_first, coalesce(v_end, v_first));
    UPDATE pgconvey.consumer co SET batch_end_tick = v_end, active_at = now()
     WHERE co.queue_id = c.queue_id AND co.consumer_name = p_consumer;
  END IF;
  RETURN QUERY
    SELECT c.queue_id, v_start.tick_id, e.tick_id, v_start.tick_snapshot::text, e.tick_snapshot::text,
           v_start.tick_time, e.tick_time, e.tick_event_seq - v_start.tick_event_seq
      FROM pgconvey.tick e WHERE e.queue_id = c.queue_id AND e.tick_id = v_end;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.finish_batch(queue, consumer, end_tick) → true when the
-- open batch ending at end_tick was closed (false when it was not open, e.g.
-- already finished before a crash).
CREATE OR REPLACE FUNCTION pgconvey.finish_batch(p_queue text, p_consumer text, p_end_tick bigint)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  UPDATE pgconvey.consumer co SET last_tick = co.batch_end_tick, batch_end_tick = NULL, active_at = now()
    FROM pgconvey.queue q
   WHERE q.queue_name = p_queue AND co.queue_id = q.queue_id AND co.consumer_name = p_consumer
     AND co.batch_end_tick = p_end_tick;
  RETURN FOUND;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.capture_settings_sql(table) → SET clauses the capture
-- function needs for this table's column types. Rows are captured with
-- to_json(), which writes numbers, booleans, date/time values (ISO 8601),
-- arrays and composites independently of session settings; the text of a few
-- types still depends on one: intervals on IntervalStyle, floats on
-- extra_float_digits, ranges and other types on DateStyle. Tables of plain
-- types get no SET clause, so their capture stays cheap.
CREATE OR REPLACE FUNCTION pgconvey.capture_settings_sql(p_rel regclass)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
  -- Types whose JSON form depends on no setting.
  v_plain oid[] := ARRAY['int2', 'int4', 'int8', 'numeric', 'text', 'varchar', 'bpchar', 'bool', 'uuid',
                         'json', 'jsonb', 'bytea', 'inet', 'cidr', 'macaddr', 'oid', 'name', 'char', 'bit',
                         'varbit', 'xml', 'tsvector', 'tsquery', 'money', 'time', 'timetz',
                         'date', 'timestamp', 'timestamptz']::regtype[]::oid[];
  v_float boolean := false;
  v_interval boolean := false;
  v_other boolean := false;
  c record;
BEGIN
  FOR c IN
    SELECT CASE WHEN ty.typcategory = 'A' THEN ty.typelem ELSE ty.oid END AS base,
           CASE WHEN ty.typcategory = 'A' THEN el.typtype ELSE ty.typtype END AS basetyptype
      FROM pg_attribute a
      JOIN pg_type ty ON ty.oid = a.atttypid
      LEFT JOIN pg_type el ON el.oid = ty.typelem
     WHERE a.attrelid = p_rel AND a.attnum > 0 AND NOT a.attisdropped
  LOOP
    IF c.base = ANY (v_plain) OR c.basetyptype = 'e' THEN
      CONTINUE;
    ELSIF c.base IN ('float4'::regtype, 'float8'::regtype) THEN
      v_float := true;
    ELSIF c.base = 'interval'::regtype THEN
      v_interval := true;
    ELSE
      v_other := true;  -- composites, ranges, domains, other types: pin every setting
    END IF;
  END LOOP;
  RETURN CASE WHEN v_float OR v_other THEN ' SET extra_float_digits = 3' ELSE '' END
      || CASE WHEN v_interval OR v_other THEN ' SET IntervalStyle = ''postgres''' ELSE '' END
      || CASE WHEN v_other THEN ' SET DateStyle = ''ISO, MDY''' ELSE '' END;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.add_table(queue, schema, table, key_columns) → table_id.
-- Starts capturing the table's changes into the queue: generates a capture
-- function for exactly this table and creates its row and TRUNCATE triggers.
-- Without key_columns the primary key is used; a table with neither is
-- refused. Idempotent: running it again regenerates the function (e.g. after
-- the table gained a column or its key changed).
--
-- An event carries the row as to_json(NEW) (generated columns left out); a
-- DELETE carries the old key as a JSON object instead (the reader derives the
-- key of other events from the row). An UPDATE that changes the key is
-- captured as a DELETE of the old key and an INSERT of the new row. The capture functions
-- are SECURITY DEFINER (writers need no rights on the queue) and, as such,
-- name every operator, function and type with its schema.
CREATE OR REPLACE FUNCTION pgconvey.add_table(p_queue text, p_schema text, p_table text, p_key_columns text[] DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  v_queue_id integer;
  v_rel regclass;
  v_table_id integer;
  v_keys text[];
  v_cols text[];
  v_generated text[];
  v_nullable text[];
  v_missing text[];
  v_data text;
  v_parts text[];
  v_route_tpl text;
  v_pick text;
  v_oldkey text;
  v_body text;
  i integer;
BEGIN
  SELECT queue_id INTO v_queue_id FROM pgconvey.queue WHERE queue_name = p_queue;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'queue "%" does not exist', p_queue;
  END IF;
  SELECT c.oid INTO v_rel FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = p_schema AND c.relname = p_table AND c.relkind IN ('r', 'p');
  IF NOT FOUND THEN
    RAISE EXCEPTION 'table %.% does not exist', quote_ident(p_schema), quote_ident(p_table)
      USING HINT = 'check the name; unquoted names are lower case';
  END IF;

  -- Shipped columns: not dropped, not generated (attgenerated exists from PG 12).
  EXECUTE 'SELECT array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE NOT g),
                  array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE g)
             FROM pg_attribute a CROSS JOIN LATERAL (SELECT '
          || CASE WHEN current_setting('server_version_num')::integer >= 120000 THEN 'a.attgenerated <> ''''' ELSE 'false' END
          || ' AS g) x WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped'
    INTO v_cols, v_generated USING v_rel;

  IF p_key_columns IS NULL THEN
    SELECT array_agg(a.attname::text ORDER BY k.ord) INTO v_keys
      FROM pg_index x
      CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)
      JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
     WHERE x.indrelid = v_rel AND x.indisprimary;
    IF v_keys IS NULL THEN
      RAISE EXCEPTION 'table %.% has no primary key', quote_ident(p_schema), quote_ident(p_table)
        USING HINT = 'add a primary key, or give key columns that are NOT NULL and unique';
    END IF;
  ELSE
    v_keys := p_key_columns;
    SELECT array_agg(k) INTO v_missing FROM unnest(v_keys) k WHERE NOT (k = ANY (v_cols));
    IF v_missing IS NOT NULL THEN
      RAISE EXCEPTION 'table %.% has no column(s) % for the key', quote_ident(p_schema), quote_ident(p_table), array_to_string(v_missing, ', ');
    END IF;
    SELECT array_agg(a.attname::text) INTO v_nullable FROM pg_attribute a
     WHERE a.attrelid = v_rel AND a.attname = ANY (v_keys) AND NOT a.attnotnull;
    IF v_nullable IS NOT NULL THEN
      RAISE EXCEPTION 'key column(s) % of %.% may be NULL', array_to_string(v_nullable, ', '), quote_ident(p_schema), quote_ident(p_table)
        USING HINT = 'key columns must be NOT NULL (ALTER TABLE ... ALTER COLUMN ... SET NOT NULL)';
    END IF;
  END IF;

  INSERT INTO pgconvey.captured_table (queue_id, table_schema, table_name, key_columns, columns)
  VALUES (v_queue_id, p_schema, p_table, v_keys, v_cols)
  ON CONFLICT (queue_id, table_schema, table_name)
  DO UPDATE SET key_columns = EXCLUDED.key_columns, columns = EXCLUDED.columns
  RETURNING table_id INTO v_table_id;

  -- The row image: to_json(NEW), or, when the table has generated columns,
  -- json_build_object of the other columns in pieces of 50 (it takes at most
  -- 100 arguments) — the same JSON form either way.
  IF v_generated IS NULL THEN
    v_data := 'pg_catalog.to_json(NEW)';
  ELSE
    v_parts := ARRAY[]::text[];
    FOR i IN 1..array_length(v_cols, 1) LOOP
      IF (i - 1) % 50 = 0 THEN
        v_parts := v_parts || ''::text;
      ELSE
        v_parts[array_length(v_parts, 1)] := v_parts[array_length(v_parts, 1)] || ', ';
      END IF;
      v_parts[array_length(v_parts, 1)] := v_parts[array_length(v_parts, 1)] || format('%L::pg_catalog.text, NEW.%I', v_cols[i], v_cols[i]);
    END LOOP;
    IF array_length(v_parts, 1) = 1 THEN
      v_data := format('pg_catalog.json_build_object(%s)', v_parts[1]);
    ELSE
      SELECT '(' || string_agg(format('pg_catalog.json_build_object(%s)::pg_catalog.jsonb', p), ' OPERATOR(pg_catalog.||) ') || ')::pg_catalog.json'
        INTO v_data FROM unnest(v_parts) p;
    END IF;
  END IF;

  -- The old key of a DELETE (or of an UPDATE that changes it), as a JSON object.
  SELECT format('pg_catalog.json_build_object(%s)::pg_catalog.text', string_agg(format('%L::pg_catalog.text, OLD.%I', k, k), ', '))
    INTO v_oldkey FROM unnest(v_keys) k;
  -- The event table of this transaction: its id's range of rotation_txids ids, modulo 3.
  SELECT format('v_cur := (pg_catalog.txid_current() OPERATOR(pg_catalog./) %s) OPERATOR(pg_catalog.%%) 3; ', rotation_txids)
    INTO v_pick FROM pgconvey.queue WHERE queue_id = v_queue_id;
  -- Insert into that table ($OP, $KEY, $DATA are filled in).
  v_route_tpl := format(
    'IF v_cur OPERATOR(pg_catalog.=) 0 THEN INSERT INTO %1$s (ev_table, ev_op, ev_key, ev_data) VALUES (%4$s, $OP, $KEY, $DATA);'
    ' ELSIF v_cur OPERATOR(pg_catalog.=) 1 THEN INSERT INTO %2$s (ev_table, ev_op, ev_key, ev_data) VALUES (%4$s, $OP, $KEY, $DATA);'
    ' ELSE INSERT INTO %3$s (ev_table, ev_op, ev_key, ev_data) VALUES (%4$s, $OP, $KEY, $DATA); END IF;',
    pgconvey.event_table(v_queue_id, 0), pgconvey.event_table(v_queue_id, 1), pgconvey.event_table(v_queue_id, 2), v_table_id);

  -- INSERT and UPDATE events carry no key: the reader derives it from the row.
  -- The key is compared by its binary image (*<> needs no operator lookup).
  SELECT 'DECLARE v_cur pg_catalog.int8; BEGIN '
      || v_pick
      || 'IF TG_OP OPERATOR(pg_catalog.=) ''INSERT'' THEN '
      ||   replace(replace(replace(v_route_tpl, '$OP', '''I'''), '$KEY', 'NULL'), '$DATA', v_data)
      || ' ELSIF TG_OP OPERATOR(pg_catalog.=) ''UPDATE'' THEN '
      ||   format('IF ROW(%s)::pg_catalog.record OPERATOR(pg_catalog.*<>) ROW(%s)::pg_catalog.record THEN ',
                  string_agg(format('NEW.%I', k), ', '), string_agg(format('OLD.%I', k), ', '))
      ||     replace(replace(replace(v_route_tpl, '$OP', '''D'''), '$KEY', v_oldkey), '$DATA', 'NULL')
      ||     replace(replace(replace(v_route_tpl, '$OP', '''I'''), '$KEY', 'NULL'), '$DATA', v_data)
      ||   ' ELSE '
      ||     replace(replace(replace(v_route_tpl, '$OP', '''U'''), '$KEY', 'NULL'), '$DATA', v_data)
      ||   ' END IF;'
      || ' ELSE '
      ||   replace(replace(replace(v_route_tpl, '$OP', '''D'''), '$KEY', v_oldkey), '$DATA', 'NULL')
      || ' END IF; RETURN NULL; END'
    INTO v_body
    FROM unnest(v_keys) k;

  EXECUTE format('CREATE OR REPLACE FUNCTION pgconvey.%I() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER%s AS %L',
                 'capture_' || v_table_id, pgconvey.capture_settings_sql(v_rel), v_body);
  EXECUTE format('CREATE OR REPLACE FUNCTION pgconvey.%I() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS %L',
                 'capture_truncate_' || v_table_id,
                 'DECLARE v_cur pg_catalog.int8; BEGIN '
                 || v_pick
                 || replace(replace(replace(v_route_tpl, '$OP', '''T'''), '$KEY', 'NULL'), '$DATA', 'NULL')
                 || ' RETURN NULL; END');

  EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'pgconvey_capture_' || v_queue_id, v_rel);
  EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'pgconvey_truncate_' || v_queue_id, v_rel);
  EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE PROCEDURE pgconvey.%I()',
                 'pgconvey_capture_' || v_queue_id, v_rel, 'capture_' || v_table_id);
  EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE PROCEDURE pgconvey.%I()',
                 'pgconvey_truncate_' || v_queue_id, v_rel, 'capture_truncate_' || v_table_id);
  RETURN v_table_id;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.remove_table(queue, schema, table) → true if it was
-- captured. Drops its triggers and capture functions.
CREATE OR REPLACE FUNCTION pgconvey.remove_table(p_queue text, p_schema text, p_table text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  v_queue_id integer;
  v_table_id integer;
  v_rel regclass;
BEGIN
  SELECT t.queue_id, t.table_id INTO v_queue_id, v_table_id
    FROM pgconvey.captured_table t JOIN pgconvey.queue q USING (queue_id)
   WHERE q.queue_name = p_queue AND t.table_schema = p_schema AND t.table_name = p_table;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  SELECT c.oid INTO v_rel FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = p_schema AND c.relname = p_table;
  IF v_rel IS NOT NULL THEN
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'pgconvey_capture_' || v_queue_id, v_rel);
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'pgconvey_truncate_' || v_queue_id, v_rel);
  END IF;
  EXECUTE format('DROP FUNCTION IF EXISTS pgconvey.%I()', 'capture_' || v_table_id);
  EXECUTE format('DROP FUNCTION IF EXISTS pgconvey.%I()', 'capture_truncate_' || v_table_id);
  DELETE FROM pgconvey.captured_table WHERE table_id = v_table_id;
  RETURN true;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.maint_rotate(queue) → how many event tables were emptied.
-- Writers put a transaction's events in table (txid / rotation_txids) % 3, so
-- the tables take turns as transaction ids advance. Every table other than
-- the current one is emptied with TRUNCATE as soon as every consumer has all
-- of its events. The test runs with the table locked (NOWAIT: when a writer is
-- inside, try again later), so no transaction in progress has events in it;
-- then an event is read by a consumer exactly when its transaction is visible
-- in the snapshot of the consumer's position, which the txid index checks for
-- the few ids at or above that snapshot's xmin. Readers scan every table, so
-- a late writer that lands in an emptied table is still read; only truncation
-- could lose events, and this test prevents it. A stopped consumer holds its
-- events; dropping it releases them.
CREATE OR REPLACE FUNCTION pgconvey.maint_rotate(p_queue text)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  q pgconvey.queue%ROWTYPE;
  v_current integer;
  v_table text;
  v_unread boolean;
  v_done integer := 0;
  n integer;
  c record;
BEGIN
  SELECT * INTO q FROM pgconvey.queue WHERE queue_name = p_queue FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'queue "%" does not exist', p_queue;
  END IF;
  v_current := (txid_snapshot_xmax(txid_current_snapshot()) / q.rotation_txids) % 3;
  FOR n IN 0..2 LOOP
    CONTINUE WHEN n = v_current;
    v_table := pgconvey.event_table(q.queue_id, n);
    EXECUTE 'SELECT NOT EXISTS (SELECT 1 FROM ' || v_table || ')' INTO v_unread;
    CONTINUE WHEN v_unread;  -- already empty
    BEGIN
      EXECUTE 'LOCK TABLE ' || v_table || ' IN ACCESS EXCLUSIVE MODE NOWAIT';
    EXCEPTION WHEN lock_not_available THEN
      CONTINUE;
    END;
    v_unread := false;
    FOR c IN SELECT t.tick_snapshot FROM pgconvey.consumer co
               JOIN pgconvey.tick t ON t.queue_id = co.queue_id AND t.tick_id = co.last_tick
              WHERE co.queue_id = q.queue_id LOOP
      EXECUTE 'SELECT EXISTS (SELECT 1 FROM ' || v_table
           || ' WHERE ev_txid >= txid_snapshot_xmin($1) AND NOT txid_visible_in_snapshot(ev_txid, $1))'
        INTO v_unread USING c.tick_snapshot;
      EXIT WHEN v_unread;
    END LOOP;
    CONTINUE WHEN v_unread;
    EXECUTE 'TRUNCATE ' || v_table;
    v_done := v_done + 1;
  END LOOP;
  IF v_done > 0 THEN
    UPDATE pgconvey.queue SET rotations = rotations + v_done, last_rotation = clock_timestamp() WHERE queue_id = q.queue_id;
  END IF;
  RETURN v_done;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.maint_ticks(queue) → ticks deleted. Keeps the latest
-- tick, every consumer's position and what follows it, and anything younger
-- than tick_retention.
CREATE OR REPLACE FUNCTION pgconvey.maint_ticks(p_queue text)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  q pgconvey.queue%ROWTYPE;
  v_keep bigint;
  v_count integer;
BEGIN
  SELECT * INTO q FROM pgconvey.queue WHERE queue_name = p_queue;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'queue "%" does not exist', p_queue;
  END IF;
  SELECT least((SELECT min(last_tick) FROM pgconvey.consumer WHERE queue_id = q.queue_id),
               (SELECT max(tick_id) FROM pgconvey.tick WHERE queue_id = q.queue_id))
    INTO v_keep;
  DELETE FROM pgconvey.tick
   WHERE queue_id = q.queue_id AND tick_id < v_keep AND tick_time < clock_timestamp() - q.tick_retention;
  GET DIAGNOSTICS v_count = ROW_COUNT;
  RETURN v_count;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.queue_status(queue) → one row per consumer (or one row
-- with consumer NULL when there is none): the queue's last tick and pending
-- events, and each consumer's position and lag.
CREATE OR REPLACE FUNCTION pgconvey.queue_status(p_queue text)
RETURNS TABLE (queue_name text, last_tick bigint, last_tick_time timestamptz, events_since_tick bigint,
               consumer_name text, consumer_tick bigint, consumer_lag interval, consumer_pending_events bigint,
               batch_open boolean, consumer_active_at timestamptz)
LANGUAGE sql STABLE AS $$
  SELECT q.queue_name, lt.tick_id, lt.tick_time, pgconvey.event_seq_value(q.queue_id) - lt.tick_event_seq,
         c.consumer_name, c.last_tick, clock_timestamp() - ct.tick_time,
         pgconvey.event_seq_value(q.queue_id) - ct.tick_event_seq, c.batch_end_tick IS NOT NULL, c.active_at
    FROM pgconvey.queue q
    CROSS JOIN LATERAL (SELECT * FROM pgconvey.tick t WHERE t.queue_id = q.queue_id ORDER BY tick_id DESC LIMIT 1) lt
    LEFT JOIN pgconvey.consumer c ON c.queue_id = q.queue_id
    LEFT JOIN pgconvey.tick ct ON ct.queue_id = c.queue_id AND ct.tick_id = c.last_tick
   WHERE q.queue_name = p_queue
   ORDER BY c.consumer_name
$$;

------------------------------------------------------------------------------
-- Function: pgconvey.add_sequence(queue, schema, name) → true if newly added.
CREATE OR REPLACE FUNCTION pgconvey.add_sequence(p_queue text, p_schema text, p_name text)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  v_queue_id integer;
BEGIN
  SELECT queue_id INTO v_queue_id FROM pgconvey.queue WHERE queue_name = p_queue;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'queue "%" does not exist', p_queue;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = p_schema AND c.relname = p_name AND c.relkind = 'S') THEN
    RAISE EXCEPTION 'sequence %.% does not exist', quote_ident(p_schema), quote_ident(p_name);
  END IF;
  INSERT INTO pgconvey.captured_sequence (queue_id, seq_schema, seq_name) VALUES (v_queue_id, p_schema, p_name)
  ON CONFLICT DO NOTHING;
  RETURN FOUND;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.remove_sequence(queue, schema, name) → true if it was added.
CREATE OR REPLACE FUNCTION pgconvey.remove_sequence(p_queue text, p_schema text, p_name text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM pgconvey.captured_sequence s USING pgconvey.queue q
   WHERE q.queue_name = p_queue AND s.queue_id = q.queue_id AND s.seq_schema = p_schema AND s.seq_name = p_name;
  RETURN FOUND;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.sequence_values(queue) → the current value of every
-- sequence the queue carries (the value nextval() last gave, or would give
-- next when it was never called).
CREATE OR REPLACE FUNCTION pgconvey.sequence_values(p_queue text)
RETURNS TABLE (seq_schema text, seq_name text, last_value bigint, is_called boolean)
LANGUAGE plpgsql AS $$
DECLARE
  s record;
BEGIN
  FOR s IN SELECT c.seq_schema, c.seq_name FROM pgconvey.captured_sequence c JOIN pgconvey.queue q USING (queue_id)
            WHERE q.queue_name = p_queue ORDER BY 1, 2 LOOP
    IF to_regclass(format('%I.%I', s.seq_schema, s.seq_name)) IS NULL THEN
      CONTINUE;  -- dropped on the provider: nothing to carry
    END IF;
    seq_schema := s.seq_schema;
    seq_name := s.seq_name;
    EXECUTE format('SELECT last_value, is_called FROM %I.%I', s.seq_schema, s.seq_name) INTO last_value, is_called;
    RETURN NEXT;
  END LOOP;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.advance_sequence(schema, name, value, is_called, margin)
-- → the sequence's value afterwards. Moves a subscriber's sequence forward
-- (in the direction of its increment) to the provider's value plus `margin`
-- increments — never backwards. Does nothing when the sequence is missing.
CREATE OR REPLACE FUNCTION pgconvey.advance_sequence(p_schema text, p_name text, p_value bigint, p_is_called boolean, p_margin bigint DEFAULT 0)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  v_seq regclass := to_regclass(format('%I.%I', p_schema, p_name));
  v_inc bigint;
  v_cur bigint;
  v_called boolean;
  v_target bigint;
BEGIN
  IF v_seq IS NULL THEN
    RETURN NULL;
  END IF;
  SELECT seqincrement INTO v_inc FROM pg_sequence WHERE seqrelid = v_seq;
  EXECUTE format('SELECT last_value, is_called FROM %s', v_seq) INTO v_cur, v_called;
  -- The last value handed out on each side (one step back when nextval was never called).
  v_target := CASE WHEN p_is_called THEN p_value ELSE p_value - v_inc END + p_margin * v_inc;
  v_cur := CASE WHEN v_called THEN v_cur ELSE v_cur - v_inc END;
  IF (v_inc > 0 AND v_target > v_cur) OR (v_inc < 0 AND v_target < v_cur) THEN
    PERFORM setval(v_seq, v_target, true);
    RETURN v_target;
  END IF;
  RETURN v_cur;
END $$;

-- ===== fences (migration 0008; issue 11) — kept at the end of this file =====

-- The tables of this database that pgconvey captures or applies: the ones a fence covers.
CREATE OR REPLACE FUNCTION pgconvey.fence_tables()
RETURNS SETOF regclass LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
  SELECT DISTINCT to_regclass(format('%I.%I', t.s, t.n))
    FROM (SELECT table_schema AS s, table_name AS n FROM pgconvey.captured_table
          UNION SELECT table_schema, table_name FROM pgconvey.subscriber_table) t
   WHERE to_regclass(format('%I.%I', t.s, t.n)) IS NOT NULL
$$;

-- The fence trigger: refuses every write of a session that is not in replica mode.
CREATE OR REPLACE FUNCTION pgconvey.fence_refuse()
RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION 'cannot execute % on %.% in a read-only transaction: the database is fenced by a pgconvey switchover',
                  TG_OP, quote_ident(TG_TABLE_SCHEMA), quote_ident(TG_TABLE_NAME)
    USING ERRCODE = 'read_only_sql_transaction',
          HINT = 'write to the node that takes writes (see pgconvey status)';
END
$$;

-- Puts the fence trigger on every fence table that lacks it (or has it disabled); returns how many tables are fenced.
CREATE OR REPLACE FUNCTION pgconvey.install_fence_triggers()
RETURNS integer LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_rel regclass;
  v_enabled "char";
  v_n integer := 0;
BEGIN
  FOR v_rel IN SELECT r FROM pgconvey.fence_tables() r ORDER BY 1 LOOP
    SELECT t.tgenabled INTO v_enabled FROM pg_catalog.pg_trigger t WHERE t.tgrelid = v_rel AND t.tgname = 'pgconvey_fence';
    IF NOT FOUND THEN
      EXECUTE format('CREATE TRIGGER pgconvey_fence BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s FOR EACH STATEMENT EXECUTE PROCEDURE pgconvey.fence_refuse()', v_rel);
    ELSIF v_enabled <> 'O' THEN
      EXECUTE format('ALTER TABLE %s ENABLE TRIGGER pgconvey_fence', v_rel);
    END IF;
    v_n := v_n + 1;
  END LOOP;
  RETURN v_n;
END
$$;

-- Removes every fence trigger of this database; returns how many.
CREATE OR REPLACE FUNCTION pgconvey.remove_fence_triggers()
RETURNS integer LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_rel regclass;
  v_n integer := 0;
BEGIN
  FOR v_rel IN SELECT t.tgrelid::regclass FROM pg_catalog.pg_trigger t
                WHERE t.tgname = 'pgconvey_fence' AND t.tgfoid = 'pgconvey.fence_refuse()'::regprocedure ORDER BY 1 LOOP
    EXECUTE format('DROP TRIGGER pgconvey_fence ON %s', v_rel);
    v_n := v_n + 1;
  END LOOP;
  RETURN v_n;
END
$$;

-- The capture triggers of a queue's tables as they are: per captured table and trigger (row, truncate) its name and
-- tgenabled ('O' fires for ordinary sessions, as it must; 'D' disabled, 'R' replica only, 'A' always) or 'missing'.
CREATE OR REPLACE FUNCTION pgconvey.capture_trigger_state(p_queue text)
RETURNS TABLE (table_schema text, table_name text, trigger_kind text, trigger_name text, enabled text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
  SELECT c.table_schema, c.table_name, k.kind, k.name,
         coalesce((SELECT t.tgenabled::text FROM pg_catalog.pg_trigger t
                    WHERE t.tgrelid = to_regclass(format('%I.%I', c.table_schema, c.table_name)) AND t.tgname = k.name), 'missing')
    FROM pgconvey.captured_table c JOIN pgconvey.queue q USING (queue_id)
   CROSS JOIN LATERAL (VALUES ('row', 'pgconvey_capture_' || q.queue_id), ('truncate', 'pgconvey_truncate_' || q.queue_id)) k(kind, name)
   WHERE q.queue_name = p_queue
   ORDER BY 1, 2, 3
$$;

-- ===== end of fences =====
