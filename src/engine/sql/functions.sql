-- pgconvey engine functions. Re-applied (CREATE OR REPLACE) by every install or
-- upgrade, after the migrations. PL/pgSQL and SQL only; works on PostgreSQL 10
-- to 18 (txid_* functions, no pg_current_snapshot()).

------------------------------------------------------------------------------
-- Function: pgconvey.event_table(queue_id, n) → the n-th event table of a queue.
CREATE OR REPLACE FUNCTION pgconvey.event_table(p_queue_id integer, p_n integer)
RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT format('pgconvey.%I', 'event_' || p_queue_id || '_' || p_n)
$$;

------------------------------------------------------------------------------
-- Function: pgconvey.event_seq_value(queue_id) → the last event id handed out
-- (without consuming one). The ticker compares it with the last tick's value.
-- Asked by every ticker call and worker poll: pg_sequence_last_value (PG 10+)
-- has no statement to parse and plan; it is NULL only before the sequence's
-- first value is taken, when the sequence row itself is read.
CREATE OR REPLACE FUNCTION pgconvey.event_seq_value(p_queue_id integer)
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_seq text := format('pgconvey.%I', 'event_' || p_queue_id || '_seq');
  v bigint;
BEGIN
  v := pg_sequence_last_value(v_seq::regclass);
  IF v IS NULL THEN
    EXECUTE 'SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM ' || v_seq INTO v;
  END IF;
  RETURN v;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.queue_readers(queue_id). (Re)creates the queue's own
-- reading functions, whose statements name its event tables so that plpgsql
-- keeps their plans for the session: a statement built per call (EXECUTE)
-- was parsed and planned at every call — its 3 or 6 scans of event tables
-- ~0.5 ms of the ~2 ms a small batch cost the provider, ~10 times what
-- running it took. From PG 12 the plans are generic (plan_cache_mode): they
-- look ranges of ev_txid up in its index whatever the values.
--   pgconvey.queue_<id>_events(lo, hi, end, late, tables, limit): the events
--     of the tables with these ids whose transaction is from lo to hi
--     (exclusive) and visible in the end snapshot, or in late, in event
--     order, at most `limit` (small_batch_events); late is also bounded by
--     its least and greatest id, so that the generic plan's estimate is a
--     range's (an index scan), not a whole array's;
--   pgconvey.queue_<id>_unseen(snapshot) → whether an event exists that the
--     snapshot does not see (ticker): one whose transaction is at or after
--     its xmax (the largest ev_txid, from the index's end), or running in
--     it (xip) — what `ev_txid >= xmin AND NOT txid_visible_in_snapshot()`
--     asks, in terms a generic plan looks up in the index (a generic range
--     from a parameter's xmin is a sequential scan).
-- create_queue makes them, drop_queue drops them, and every install or
-- upgrade makes them again for every queue (the end of this file).
CREATE OR REPLACE FUNCTION pgconvey.queue_readers(p_queue_id integer)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_generic text := CASE WHEN current_setting('server_version_num')::integer >= 120000 THEN ' SET plan_cache_mode = force_generic_plan' ELSE '' END;
  v_events text;
  v_unseen text;
  v_running text;
BEGIN
  SELECT string_agg(format('SELECT ev_id, ev_txid, ev_table, ev_op, ev_shape, ev_key, ev_data FROM %1$s'
                           ' WHERE ev_txid >= p_lo AND ev_txid < p_hi AND txid_visible_in_snapshot(ev_txid, p_end) AND ev_table = ANY (p_tables)'
                           ' UNION ALL SELECT ev_id, ev_txid, ev_table, ev_op, ev_shape, ev_key, ev_data FROM %1$s'
                           ' WHERE ev_txid >= v_late_min AND ev_txid <= v_late_max AND ev_txid = ANY (p_late) AND ev_table = ANY (p_tables)',
                           pgconvey.event_table(p_queue_id, n)), ' UNION ALL '),
         string_agg(format('(SELECT max(e.ev_txid) FROM %s e) >= txid_snapshot_xmax(p_snapshot)', pgconvey.event_table(p_queue_id, n)), ' OR '),
         string_agg(format('EXISTS (SELECT 1 FROM %s e WHERE e.ev_txid = v_txid)', pgconvey.event_table(p_queue_id, n)), ' OR ')
    INTO v_events, v_unseen, v_running FROM generate_series(0, 2) n;
  EXECUTE format('CREATE OR REPLACE FUNCTION pgconvey.%I(p_lo bigint, p_hi bigint, p_end txid_snapshot, p_late bigint[], p_tables integer[], p_limit bigint) '
                 'RETURNS TABLE (ev_txid bigint, ev_table integer, ev_op "char", ev_shape integer, ev_key text, ev_data text) '
                 'LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp%s AS %L',
                 'queue_' || p_queue_id || '_events', v_generic,
                 E'#variable_conflict use_column\nDECLARE\n  v_late_min bigint := (SELECT min(x) FROM unnest(p_late) x);\n  v_late_max bigint := (SELECT max(x) FROM unnest(p_late) x);\n'
                 || E'BEGIN\n  RETURN QUERY SELECT e.ev_txid, e.ev_table, e.ev_op, '
                 || 'CASE WHEN e.ev_shape IS NULL AND e.ev_op <> ''T'' THEN (pgconvey.legacy_event(e.ev_table, e.ev_op, e.ev_key, e.ev_data)).shape ELSE e.ev_shape END, '
                 || 'CASE WHEN e.ev_shape IS NULL AND e.ev_op <> ''T'' THEN (pgconvey.legacy_event(e.ev_table, e.ev_op, e.ev_key, e.ev_data)).key ELSE e.ev_key END, '
                 || 'CASE WHEN e.ev_shape IS NULL AND e.ev_op <> ''T'' THEN (pgconvey.legacy_event(e.ev_table, e.ev_op, e.ev_key, e.ev_data)).data ELSE e.ev_data END '
                 || 'FROM (' || v_events || E') e ORDER BY e.ev_id LIMIT p_limit;\nEND');
  EXECUTE format('CREATE OR REPLACE FUNCTION pgconvey.%I(p_snapshot txid_snapshot) RETURNS boolean '
                 'LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp%s AS %L',
                 'queue_' || p_queue_id || '_unseen', v_generic,
                 E'DECLARE\n  v_txid bigint;\nBEGIN\n  IF ' || v_unseen || E' THEN\n    RETURN true;\n  END IF;\n'
                 || E'  FOR v_txid IN SELECT txid_snapshot_xip(p_snapshot) LOOP\n    IF ' || v_running || E' THEN\n      RETURN true;\n    END IF;\n  END LOOP;\n'
                 || E'  RETURN false;\nEND');
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.create_queue(name) → queue_id. Idempotent: an existing
-- queue's id is returned unchanged. Creates the event sequence, three event
-- tables (insert-only, emptied by TRUNCATE, indexed on the transaction id) and
-- the first tick and its reading functions (queue_readers), and grants the
-- capture role INSERT on the event tables.
CREATE OR REPLACE FUNCTION pgconvey.create_queue(p_queue text)
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
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
      '  ev_data text,'
      '  ev_shape integer'
      ') WITH (fillfactor = 100, autovacuum_enabled = false, toast.autovacuum_enabled = false)',
      pgconvey.event_table(v_id, i), 'pgconvey.event_' || v_id || '_seq');
    EXECUTE format('CREATE INDEX %I ON %s (ev_txid)', 'event_' || v_id || '_' || i || '_txid', pgconvey.event_table(v_id, i));
  END LOOP;
  INSERT INTO pgconvey.tick (queue_id, tick_id, tick_event_seq) VALUES (v_id, 1, 0);
  PERFORM pgconvey.queue_readers(v_id);
  PERFORM pgconvey.ensure_capture_role();  -- its INSERT on the new event tables
  RETURN v_id;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.drop_queue(name) → true if it existed. Removes capture
-- triggers of its tables, its event tables, sequence and reading functions,
-- ticks and consumers.
CREATE OR REPLACE FUNCTION pgconvey.drop_queue(p_queue text)
RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
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
  EXECUTE format('DROP FUNCTION IF EXISTS pgconvey.%I(bigint, bigint, txid_snapshot, bigint[], integer[], bigint)', 'queue_' || v_id || '_events');
  EXECUTE format('DROP FUNCTION IF EXISTS pgconvey.%I(txid_snapshot)', 'queue_' || v_id || '_unseen');
  DELETE FROM pgconvey.queue WHERE queue_id = v_id;
  RETURN true;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.set_queue_config(name, param, value). Params:
-- ticker_max_count, ticker_max_lag, ticker_idle_period, ticker_min_interval,
-- rotation_txids, tick_retention. A new rotation_txids regenerates the queue's
-- capture functions.
CREATE OR REPLACE FUNCTION pgconvey.set_queue_config(p_queue text, p_param text, p_value text)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_count integer;
  t record;
BEGIN
  IF p_param NOT IN ('ticker_max_count', 'ticker_max_lag', 'ticker_idle_period', 'ticker_min_interval', 'rotation_txids', 'tick_retention') THEN
    RAISE EXCEPTION 'unknown queue setting "%"', p_param
      USING HINT = 'settable: ticker_max_count, ticker_max_lag, ticker_idle_period, ticker_min_interval, rotation_txids, tick_retention';
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
  -- A branch's queue has no capture functions (its captured_table rows mirror its provider's).
  IF p_param = 'rotation_txids' AND NOT EXISTS (SELECT 1 FROM pgconvey.queue WHERE queue_name = p_queue AND branch_provider IS NOT NULL) THEN
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
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_tick bigint;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'pgconvey ticks must be taken in a READ COMMITTED transaction';
  END IF;
  IF EXISTS (SELECT 1 FROM pgconvey.queue WHERE queue_id = p_queue_id AND branch_provider IS NOT NULL) THEN
    RAISE EXCEPTION 'a branch''s queue takes the ticks of its provider; it is not ticked here';
  END IF;
  -- The tick's time is when it is taken (its snapshot's statement), not when its transaction began: the
  -- worker's poll transaction may have waited in keep_up_tick before it (ticker_min_interval).
  INSERT INTO pgconvey.tick (queue_id, tick_id, tick_event_seq, tick_time)
  SELECT p_queue_id, max(tick_id) + 1, pgconvey.event_seq_value(p_queue_id), clock_timestamp()
    FROM pgconvey.tick WHERE queue_id = p_queue_id
  RETURNING tick_id INTO v_tick;
  PERFORM pg_notify('pgconvey_tick', p_queue_id::text);
  RETURN v_tick;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.ticker(name) → the new tick id, or NULL when no tick was
-- due. Ticks when ticker_max_count events wait, when events wait and
-- ticker_max_lag has passed since the last tick, or after ticker_idle_period;
-- and, to keep the lag low, as soon as events wait while a subscriber keeps up
-- (a consumer active within the last second has no open batch: it has applied
-- everything ticked so far) and the last tick is ticker_min_interval old (a
-- tick is a batch, whose costs do not depend on its size: a subscriber that
-- keeps up would otherwise take a batch of a few events as fast as it loops).
-- A consumer that is behind (batch open) or gone (inactive) gets the max_lag
-- rhythm, so its batches merge many events.
-- Whether a tick is due is asked first without a lock, so the ticker's frequent
-- calls that find none take no transaction id and write nothing (no WAL flush
-- at their commit); a tick due is asked again under the queue row lock.
CREATE OR REPLACE FUNCTION pgconvey.ticker(p_queue text)
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  q pgconvey.queue%ROWTYPE;
  v_last pgconvey.tick%ROWTYPE;
  v_new bigint;
  v_age interval;
  v_found boolean;
  v_locked boolean := false;
BEGIN
  LOOP
    IF v_locked THEN
      SELECT * INTO q FROM pgconvey.queue WHERE queue_name = p_queue FOR UPDATE;
    ELSE
      SELECT * INTO q FROM pgconvey.queue WHERE queue_name = p_queue;
    END IF;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'queue "%" does not exist', p_queue;
    END IF;
    IF q.branch_provider IS NOT NULL THEN
      RETURN NULL;  -- a branch's queue takes its provider's ticks (branch_tick), never its own
    END IF;
    SELECT * INTO v_last FROM pgconvey.tick WHERE queue_id = q.queue_id ORDER BY tick_id DESC LIMIT 1;
    v_new := pgconvey.event_seq_value(q.queue_id) - v_last.tick_event_seq;
    v_age := clock_timestamp() - v_last.tick_time;
    v_found := v_new >= q.ticker_max_count
               OR (v_new > 0 AND v_age >= q.ticker_max_lag)
               OR v_age >= q.ticker_idle_period
               OR (v_new > 0 AND v_age >= q.ticker_min_interval AND EXISTS (SELECT 1 FROM pgconvey.consumer c
                                          WHERE c.queue_id = q.queue_id AND c.batch_end_tick IS NULL
                                            AND left(c.consumer_name, 5) <> 'copy:'  -- copy pins (copier.ts) consume nothing
                                            AND left(c.consumer_name, 10) <> 'watermark:'  -- nor do subscriber watermarks (cascades)
                                            AND c.active_at >= clock_timestamp() - interval '1 second'));
    -- An event id taken before the last tick, by a transaction that committed after it, was counted by that
    -- tick but is not in its batch: no new id comes for it. So a tick is also due, after max_lag, when an event
    -- the last tick's snapshot does not see is visible now (committed). The event tables are indexed on
    -- ev_txid; only ids from the snapshot's xmin on are looked at (queue_<id>_unseen, see queue_readers).
    IF NOT v_found AND v_age >= q.ticker_max_lag THEN
      EXECUTE format('SELECT pgconvey.%I($1)', 'queue_' || q.queue_id || '_unseen') INTO v_found USING v_last.tick_snapshot;
    END IF;
    IF NOT v_found THEN
      RETURN NULL;
    END IF;
    IF v_locked THEN
      RETURN pgconvey.insert_tick(q.queue_id);
    END IF;
    -- Due: ask again under the lock (a forced tick may have come meanwhile); ticks are ordered by it (insert_tick).
    v_locked := true;
  END LOOP;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.keep_up_tick(queue, consumer, finishing) → the new tick
-- id, or NULL. The apply worker's own tick, asked in its poll transaction
-- before it finishes the batch ending at `finishing` (NULL: none) and takes
-- the next: ticks when events were written since the queue's last tick and
-- that tick is the consumer's position once `finishing` is finished — the
-- consumer has applied everything ticked, so the events written meanwhile
-- are its next batch at once, without waiting for the ticker's next call.
-- No sooner than ticker_min_interval after the last tick: a younger one is
-- waited out here (pg_sleep, at most that interval, only when events wait),
-- so that a subscriber that keeps up takes a batch every min interval with
-- one round trip each. A consumer with an other batch open, or behind (ticks
-- after its position wait), gets no tick; nor does a branch's queue (it takes
-- its provider's ticks). The queue row is locked only when a tick is due (as
-- ticker()), in an earlier statement than insert_tick's, so ticks stay
-- ordered; the queue row before the consumer row, as every function locking
-- both; and never waited for (SKIP LOCKED: no tick then), so that a removal
-- of the queue holding it and waiting for the locks of this transaction does
-- not deadlock with it.
CREATE OR REPLACE FUNCTION pgconvey.keep_up_tick(p_queue text, p_consumer text, p_finishing bigint)
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  q pgconvey.queue%ROWTYPE;
  c pgconvey.consumer%ROWTYPE;
  v_last pgconvey.tick%ROWTYPE;
  v_locked boolean := false;
  v_wait interval;
  v_waited boolean := false;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RETURN NULL;  -- ticks are taken in READ COMMITTED only (insert_tick); the ticker ticks instead
  END IF;
  LOOP
    IF v_locked THEN
      -- Not waited for: a queue row another session has locked (the ticker ticking, a removal, a new
      -- setting) means no tick here; the ticker's, or the next poll's, comes instead.
      SELECT * INTO q FROM pgconvey.queue WHERE queue_name = p_queue FOR UPDATE SKIP LOCKED;
    ELSE
      SELECT * INTO q FROM pgconvey.queue WHERE queue_name = p_queue;
    END IF;
    IF NOT FOUND OR q.branch_provider IS NOT NULL THEN
      RETURN NULL;
    END IF;
    SELECT * INTO c FROM pgconvey.consumer WHERE queue_id = q.queue_id AND consumer_name = p_consumer;
    IF NOT FOUND THEN
      RETURN NULL;
    END IF;
    SELECT * INTO v_last FROM pgconvey.tick WHERE queue_id = q.queue_id ORDER BY tick_id DESC LIMIT 1;
    IF v_last.tick_id IS DISTINCT FROM (CASE WHEN c.batch_end_tick IS NULL THEN c.last_tick
                                             WHEN c.batch_end_tick = p_finishing THEN p_finishing END) THEN
      RETURN NULL;
    END IF;
    v_wait := q.ticker_min_interval - (clock_timestamp() - v_last.tick_time);
    IF v_wait > interval '0' THEN
      IF v_waited THEN
        RETURN NULL;  -- waited once already (a clock set back): the ticker ticks
      END IF;
      -- Too soon after the last tick: wait out the min interval here, then ask again (a tick may have come
      -- meanwhile), whether or not anything was written yet — the worker is back right after its batch,
      -- before its writers' next events. Its next batch then still comes in this round trip; returning NULL
      -- instead cost it an empty poll and a wait for the ticker's NOTIFY or its own idle poll (up to 50 ms).
      -- No row or lock is held but the shared locks of the tables read so far (queue, consumer, tick).
      PERFORM pg_sleep(extract(epoch FROM v_wait));
      v_waited := true;
      v_locked := false;
      CONTINUE;
    END IF;
    IF pgconvey.event_seq_value(q.queue_id) <= v_last.tick_event_seq THEN
      RETURN NULL;  -- nothing written since the last tick
    END IF;
    IF v_locked THEN
      RETURN pgconvey.insert_tick(q.queue_id);
    END IF;
    v_locked := true;  -- due: asked again under the queue row lock (ticks are ordered by it)
  END LOOP;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.force_tick(name) → the new tick id, unconditionally (a
-- branch's queue: its last tick, unchanged).
-- Call it in its own transaction: the tick is taken in the caller's transaction.
CREATE OR REPLACE FUNCTION pgconvey.force_tick(p_queue text)
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_id integer;
BEGIN
  SELECT queue_id INTO v_id FROM pgconvey.queue WHERE queue_name = p_queue FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'queue "%" does not exist', p_queue;
  END IF;
  IF EXISTS (SELECT 1 FROM pgconvey.queue WHERE queue_id = v_id AND branch_provider IS NOT NULL) THEN
    -- A branch's queue ticks only with its provider: its last tick.
    RETURN (SELECT max(tick_id) FROM pgconvey.tick WHERE queue_id = v_id);
  END IF;
  RETURN pgconvey.insert_tick(v_id);
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.register_consumer(queue, consumer) → the consumer's
-- position (last finished tick). A new consumer starts at the latest tick; an
-- existing one keeps its position.
CREATE OR REPLACE FUNCTION pgconvey.register_consumer(p_queue text, p_consumer text)
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
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
RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
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
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
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
-- Function: pgconvey.small_batch_events(queue, consumer, tables, limit) → the
-- events of the consumer's open batch of the tables with these ids, in event
-- order, as src/engine/batch-reader.ts's batchEventsSql selects them (events
-- of transactions visible in the end tick's snapshot and not in the start
-- tick's), when the batch counts at most `limit` event ids; at most limit + 1
-- rows (more: the caller reads the batch by its cursor instead). No row when
-- the batch counts more, or none is open. The apply worker asks it in its poll
-- round trip, after next_batch, for a batch it then need not read apart.
CREATE OR REPLACE FUNCTION pgconvey.small_batch_events(p_queue text, p_consumer text, p_tables integer[], p_limit integer)
RETURNS TABLE (ev_txid bigint, ev_table integer, ev_op "char", ev_shape integer, ev_key text, ev_data text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c pgconvey.consumer%ROWTYPE;
  v_start pgconvey.tick%ROWTYPE;
  v_end pgconvey.tick%ROWTYPE;
BEGIN
  SELECT co.* INTO c FROM pgconvey.consumer co JOIN pgconvey.queue q USING (queue_id)
   WHERE q.queue_name = p_queue AND co.consumer_name = p_consumer;
  IF NOT FOUND OR c.batch_end_tick IS NULL THEN
    RETURN;
  END IF;
  SELECT * INTO v_start FROM pgconvey.tick t WHERE t.queue_id = c.queue_id AND t.tick_id = c.last_tick;
  SELECT * INTO v_end FROM pgconvey.tick t WHERE t.queue_id = c.queue_id AND t.tick_id = c.batch_end_tick;
  IF v_start.tick_id IS NULL OR v_end.tick_id IS NULL OR v_end.tick_event_seq - v_start.tick_event_seq > p_limit THEN
    RETURN;
  END IF;
  -- Per event table: the transactions from the start's xmax to the end's xmax visible at the end, and the
  -- ones running at the start that had finished by the end ($4); read by the queue's own function, whose
  -- plan the session keeps (queue_readers).
  RETURN QUERY EXECUTE format('SELECT * FROM pgconvey.%I($1, $2, $3, $4, $5, $6)', 'queue_' || c.queue_id || '_events')
    USING txid_snapshot_xmax(v_start.tick_snapshot), txid_snapshot_xmax(v_end.tick_snapshot), v_end.tick_snapshot,
          ARRAY(SELECT x FROM txid_snapshot_xip(v_start.tick_snapshot) x
                 WHERE x NOT IN (SELECT y FROM txid_snapshot_xip(v_end.tick_snapshot) y)),
          p_tables, p_limit + 1::bigint;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.finish_batch(queue, consumer, end_tick) → true when the
-- open batch ending at end_tick was closed (false when it was not open, e.g.
-- already finished before a crash).
CREATE OR REPLACE FUNCTION pgconvey.finish_batch(p_queue text, p_consumer text, p_end_tick bigint)
RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  UPDATE pgconvey.consumer co SET last_tick = co.batch_end_tick, batch_end_tick = NULL, active_at = now()
    FROM pgconvey.queue q
   WHERE q.queue_name = p_queue AND co.queue_id = q.queue_id AND co.consumer_name = p_consumer
     AND co.batch_end_tick = p_end_tick;
  RETURN FOUND;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.capture_settings_sql(table) → the SET clauses of the
-- table's capture function. A row travels as its type's text output
-- (record_out), and the text of a few types depends on a session setting:
-- date/time types on DateStyle (timestamptz also on TimeZone), interval on
-- IntervalStyle, floats and geometric types on extra_float_digits, bytea on
-- bytea_output, money on lc_monetary. The column types are walked through
-- domains, arrays, ranges, multiranges and composites down to their base
-- types; each setting one of them depends on is pinned to the value the
-- subscriber reads with (src/engine/session.ts), and a base type pgconvey
-- does not know (an extension's) pins them all. search_path is always pinned.
CREATE OR REPLACE FUNCTION pgconvey.capture_settings_sql(p_rel regclass)
RETURNS text LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  -- Base types whose text output depends on no setting.
  v_free oid[] := ARRAY['int2', 'int4', 'int8', 'numeric', 'text', 'varchar', 'bpchar', 'bool', 'uuid',
                        'json', 'jsonb', 'inet', 'cidr', 'macaddr', 'oid', 'name', 'char', 'bit', 'varbit', 'xml',
                        'tsvector', 'tsquery', 'pg_lsn', 'xid', 'cid', 'tid', 'regclass', 'regtype', 'regproc',
                        'regprocedure', 'regoper', 'regoperator', 'regconfig', 'regdictionary', 'txid_snapshot']::regtype[]::oid[];
  v_need text[] := ARRAY[]::text[];
  v_todo oid[];
  v_seen oid[] := ARRAY[]::oid[];
  v_t oid;
  ty record;
  v_multirange boolean := current_setting('server_version_num')::integer >= 140000;
  v_sub oid;
BEGIN
  SELECT array_agg(a.atttypid) INTO v_todo FROM pg_attribute a WHERE a.attrelid = p_rel AND a.attnum > 0 AND NOT a.attisdropped;
  WHILE coalesce(array_length(v_todo, 1), 0) > 0 LOOP
    v_t := v_todo[1];
    v_todo := v_todo[2:];
    CONTINUE WHEN v_t = ANY (v_seen);
    v_seen := v_seen || v_t;
    SELECT t.typtype, t.typbasetype, t.typelem, t.typlen, t.typrelid INTO ty FROM pg_type t WHERE t.oid = v_t;
    IF ty.typtype = 'd' THEN
      v_todo := v_todo || ty.typbasetype;
    ELSIF ty.typtype = 'e' THEN
      NULL;  -- enum labels
    ELSIF ty.typtype = 'c' THEN
      v_todo := v_todo || ARRAY(SELECT a.atttypid FROM pg_attribute a WHERE a.attrelid = ty.typrelid AND a.attnum > 0 AND NOT a.attisdropped);
    ELSIF ty.typtype = 'r' THEN
      v_todo := v_todo || (SELECT r.rngsubtype FROM pg_range r WHERE r.rngtypid = v_t);
    ELSIF ty.typtype = 'm' AND v_multirange THEN
      EXECUTE 'SELECT r.rngsubtype FROM pg_catalog.pg_range r WHERE r.rngmultitypid = $1' INTO v_sub USING v_t;
      v_todo := v_todo || v_sub;
    ELSIF ty.typelem <> 0 AND ty.typlen = -1 THEN
      v_todo := v_todo || ty.typelem;  -- an array
    ELSIF v_t = ANY (v_free) THEN
      NULL;
    ELSIF v_t IN ('date'::regtype, 'timestamp'::regtype, 'time'::regtype, 'timetz'::regtype) THEN
      v_need := v_need || 'DateStyle'::text;
    ELSIF v_t = 'timestamptz'::regtype THEN
      v_need := v_need || ARRAY['DateStyle', 'TimeZone'];
    ELSIF v_t = 'interval'::regtype THEN
      v_need := v_need || 'IntervalStyle'::text;
    ELSIF v_t IN ('float4'::regtype, 'float8'::regtype, 'point'::regtype, 'line'::regtype, 'lseg'::regtype,
                  'box'::regtype, 'path'::regtype, 'polygon'::regtype, 'circle'::regtype) THEN
      v_need := v_need || 'extra_float_digits'::text;
    ELSIF v_t = 'bytea'::regtype THEN
      v_need := v_need || 'bytea_output'::text;
    ELSIF v_t = 'money'::regtype THEN
      v_need := v_need || 'lc_monetary'::text;
    ELSE
      v_need := v_need || ARRAY['DateStyle', 'TimeZone', 'IntervalStyle', 'extra_float_digits', 'bytea_output', 'lc_monetary'];
    END IF;
  END LOOP;
  -- The values are those of src/engine/session.ts (EXACT_SETTINGS).
  RETURN ' SET search_path = pg_catalog, pg_temp'
      || CASE WHEN 'DateStyle' = ANY (v_need) THEN ' SET DateStyle = ''ISO, YMD''' ELSE '' END
      || CASE WHEN 'IntervalStyle' = ANY (v_need) THEN ' SET IntervalStyle = ''postgres''' ELSE '' END
      || CASE WHEN 'TimeZone' = ANY (v_need) THEN ' SET TimeZone = ''UTC''' ELSE '' END
      || CASE WHEN 'extra_float_digits' = ANY (v_need) THEN ' SET extra_float_digits = 3' ELSE '' END
      || CASE WHEN 'bytea_output' = ANY (v_need) THEN ' SET bytea_output = ''hex''' ELSE '' END
      || CASE WHEN 'lc_monetary' = ANY (v_need) THEN ' SET lc_monetary = ''C''' ELSE '' END;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.record_shape(table_id, baked_shape, rel) → the shape of
-- the rows relation rel (the captured table, or one of its partitions) has
-- now: its columns by number and name (generated ones marked) with the baked
-- shape's key, found among the table's recorded shapes or recorded anew. No
-- unique constraint: two writers recording the same new shape at once each
-- keep their own row rather than one waiting for the other's transaction.
CREATE OR REPLACE FUNCTION pgconvey.record_shape(p_table_id integer, p_baked integer, p_rel oid)
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_attnums smallint[];
  v_cols text[];
  v_keys text[];
  v_generated text[];
  v_shape integer;
BEGIN
  EXECUTE 'SELECT array_agg(a.attnum ORDER BY a.attnum), array_agg(a.attname::text ORDER BY a.attnum), '
       || CASE WHEN current_setting('server_version_num')::integer >= 120000
               THEN 'coalesce(array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attgenerated <> ''''), ''{}'')' ELSE '''{}''::text[]' END
       || ' FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped'
    INTO v_attnums, v_cols, v_generated USING p_rel;
  SELECT s.key_columns INTO v_keys FROM pgconvey.table_shape s WHERE s.shape_id = p_baked;
  SELECT s.shape_id INTO v_shape FROM pgconvey.table_shape s
   WHERE s.table_id = p_table_id AND s.attnums = v_attnums AND s.columns = v_cols AND s.key_columns = v_keys
   ORDER BY s.shape_id LIMIT 1;
  IF NOT FOUND THEN
    INSERT INTO pgconvey.table_shape (table_id, attnums, columns, key_columns, generated)
    VALUES (p_table_id, v_attnums, v_cols, v_keys, v_generated) RETURNING shape_id INTO v_shape;
  END IF;
  RETURN v_shape;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.capture_shape(table_id, baked_shape, rel, baked_attnums)
-- → the shape id of the rows this transaction captures from the table. The
-- capture function calls it when its inline probe finds the table's columns
-- changed (once per transaction and table; the answer is
-- kept in the session setting pgconvey.shape_<baked>, keyed by the
-- transaction id; a table's columns cannot change under a transaction that
-- has written it, except by that transaction's own DDL). When the table
-- still has the columns its capture function was made for, that is the baked
-- shape; after an ALTER TABLE that added or dropped columns (the capture not
-- yet made again) the table's current columns are recorded as a new shape, so
-- every row names the columns it really carries and no ALTER TABLE makes the
-- application's writes fail.
CREATE OR REPLACE FUNCTION pgconvey.capture_shape(p_table_id integer, p_baked integer, p_rel oid, p_attnums smallint[])
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_attnums smallint[];
  v_shape integer;
BEGIN
  SELECT array_agg(a.attnum ORDER BY a.attnum) INTO v_attnums
    FROM pg_attribute a WHERE a.attrelid = p_rel AND a.attnum > 0 AND NOT a.attisdropped;
  IF v_attnums = p_attnums THEN
    v_shape := p_baked;
  ELSE
    v_shape := pgconvey.record_shape(p_table_id, p_baked, p_rel);
  END IF;
  PERFORM set_config('pgconvey.shape_' || p_baked, txid_current() || ':' || v_shape, false);
  RETURN v_shape;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.capture_columns(rel) → the names of the columns a row of
-- rel carries now, in order (every column that is not dropped), read the way
-- the row itself is made: from the relation cache (the parse of (NULL::rel).*),
-- not from pg_attribute through the transaction's snapshot, which in a
-- REPEATABLE READ transaction may predate an ALTER TABLE committed since.
-- NULL when rel names no relation.
--
-- Declared IMMUTABLE on purpose, and called by a capture function with the
-- table's oid as a regclass constant: the planner evaluates it once when it
-- plans the capture's shape check, and a regclass constant makes that cached
-- plan depend on the table, so every change of the table's columns (ADD, DROP,
-- RENAME COLUMN, by any session or by the writing transaction itself, and
-- their rollback) invalidates the plan and the check is planned again, with
-- the columns the rows now have. The common case costs no catalog access at
-- all. Nothing else may call it (it is no function of its argument alone):
-- only the capture role may execute it. It runs as the engine's owner
-- (SECURITY DEFINER), who may name the table's row type (USAGE on its schema,
-- which the capture role lacks); it reads no data.
CREATE OR REPLACE FUNCTION pgconvey.capture_columns(p_rel regclass)
RETURNS text[] LANGUAGE plpgsql IMMUTABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v text[];
BEGIN
  IF p_rel::text ~ '^[0-9]+$' THEN
    RETURN NULL;  -- no relation of that oid (regclass output is then the number)
  END IF;
  -- r.* is the whole row even where a column is named r.
  EXECUTE format('SELECT pg_catalog.array_agg(k.k ORDER BY k.o) FROM (SELECT (NULL::%s).*) r, '
                 'pg_catalog.json_object_keys(pg_catalog.row_to_json(r.*)) WITH ORDINALITY AS k(k, o)', p_rel)
    INTO v;
  RETURN coalesce(v, '{}');
END $$;
REVOKE ALL ON FUNCTION pgconvey.capture_columns(regclass) FROM PUBLIC;

------------------------------------------------------------------------------
-- Function: pgconvey.record_shape(table_id, baked_shape, rel, columns) → the
-- shape of rows of the plain table rel whose columns are named columns (as
-- pgconvey.capture_columns reads them): the baked shape when the table has
-- the columns by number it was made for (a RENAME COLUMN keeps it until the
-- table is captured again), else the table's shape of those columns, found
-- among the recorded ones or recorded anew. When pg_attribute as this
-- transaction sees it has other columns than the rows (a REPEATABLE READ
-- snapshot older than an ALTER TABLE), the names are the rows' own and the
-- column numbers unknown ('{}'); generated ones are those pg_attribute marks.
CREATE OR REPLACE FUNCTION pgconvey.record_shape(p_table_id integer, p_baked integer, p_rel oid, p_columns text[])
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_attnums smallint[];
  v_cols text[];
  v_generated text[];
  v_keys text[];
  v_baked smallint[];
  v_shape integer;
BEGIN
  EXECUTE 'SELECT array_agg(a.attnum ORDER BY a.attnum), array_agg(a.attname::text ORDER BY a.attnum), '
       || CASE WHEN current_setting('server_version_num')::integer >= 120000
               THEN 'coalesce(array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attgenerated <> ''''), ''{}'')' ELSE '''{}''::text[]' END
       || ' FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped'
    INTO v_attnums, v_cols, v_generated USING p_rel;
  SELECT s.key_columns, s.attnums INTO v_keys, v_baked FROM pgconvey.table_shape s WHERE s.shape_id = p_baked;
  IF v_cols IS DISTINCT FROM p_columns THEN
    v_attnums := '{}';
    v_generated := ARRAY(SELECT c FROM unnest(p_columns) c WHERE c = ANY (v_generated));
  ELSIF v_attnums = v_baked THEN
    RETURN p_baked;
  END IF;
  SELECT s.shape_id INTO v_shape FROM pgconvey.table_shape s
   WHERE s.table_id = p_table_id AND s.attnums = v_attnums AND s.columns = p_columns AND s.key_columns = v_keys
   ORDER BY s.shape_id LIMIT 1;
  IF NOT FOUND THEN
    INSERT INTO pgconvey.table_shape (table_id, attnums, columns, key_columns, generated)
    VALUES (p_table_id, v_attnums, p_columns, v_keys, v_generated) RETURNING shape_id INTO v_shape;
  END IF;
  RETURN v_shape;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.capture_shape(table_id, baked_shape, rel, columns) → the
-- shape id of rows of the plain table rel that carry the columns named
-- columns. A capture function calls it only when its planned check found the
-- table's columns no longer the ones it was made for (after an ALTER TABLE,
-- until the table is captured again). The answer is kept for the transaction
-- in the session setting pgconvey.shape_<baked>, keyed by the transaction id
-- and the columns (an ALTER TABLE of the same transaction changes them).
CREATE OR REPLACE FUNCTION pgconvey.capture_shape(p_table_id integer, p_baked integer, p_rel oid, p_columns text[])
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_mark text := txid_current()::text || ':' || p_columns::text || ':';
  v_cached text := current_setting('pgconvey.shape_' || p_baked, true);
  v_shape integer;
BEGIN
  IF v_cached IS NOT NULL AND left(v_cached, length(v_mark)) = v_mark THEN
    RETURN substr(v_cached, length(v_mark) + 1)::integer;
  END IF;
  v_shape := pgconvey.record_shape(p_table_id, p_baked, p_rel, p_columns);
  PERFORM set_config('pgconvey.shape_' || p_baked, v_mark || v_shape, false);
  RETURN v_shape;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.capture_role_name() → the name of this database's capture
-- role: pgconvey_capture_<database oid> (roles belong to the server, so each
-- database with the engine has its own, and no other database's engine owner
-- is a member of it).
CREATE OR REPLACE FUNCTION pgconvey.capture_role_name()
RETURNS text LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT 'pgconvey_capture_' || d.oid::text FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()
$$;

------------------------------------------------------------------------------
-- Function: pgconvey.acl_holds(acl, role, privileges) → whether the access
-- list gives role every one of privileges itself (its own entry; no default
-- privileges, PUBLIC or membership counted).
CREATE OR REPLACE FUNCTION pgconvey.acl_holds(p_acl aclitem[], p_role oid, p_privileges text[])
RETURNS boolean LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT (SELECT count(DISTINCT a.privilege_type) FROM pg_catalog.aclexplode(p_acl) a
           WHERE a.grantee OPERATOR(pg_catalog.=) p_role AND a.privilege_type OPERATOR(pg_catalog.=) ANY (p_privileges))
         OPERATOR(pg_catalog.=) pg_catalog.cardinality(p_privileges)
$$;

------------------------------------------------------------------------------
-- Function: pgconvey.ensure_capture_role() → the capture role's name, or NULL
-- when there is none and the caller may not create it.
--
-- The capture functions run for every row any role writes to a captured
-- table, as their owner (SECURITY DEFINER). Their owner is this NOLOGIN role,
-- which holds exactly what capture needs and nothing else: USAGE on the
-- pgconvey schema, INSERT on the queues' event tables (and USAGE on their
-- sequences), SELECT and INSERT on table_shape. A hole in a capture function
-- would yield no more than writing events.
--
-- Created when missing if the caller is a superuser or has CREATEROLE;
-- otherwise the capture functions stay owned by the engine's owner (plan warns:
-- capture_owner_not_dedicated). A role of that name made by someone else is
-- accepted only when it has no attributes, is a member of no role, and every
-- role that may act as it could act as the caller already (a superuser, the
-- caller, a member of the caller, one with ADMIN on the caller, or — before
-- PostgreSQL 16, where CREATEROLE may grant any role — one with CREATEROLE).
-- The caller (when not a superuser) is made a member, which ALTER FUNCTION
-- … OWNER needs. The grants are checked every time (for new queues) and made
-- where the role lacks them.
CREATE OR REPLACE FUNCTION pgconvey.ensure_capture_role()
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_role text := pgconvey.capture_role_name();
  v_me record;
  r record;
  v_untrusted text;
  q record;
  i integer;
BEGIN
  SELECT u.oid, u.rolsuper, u.rolcreaterole INTO v_me FROM pg_roles u WHERE u.rolname = current_user;
  SELECT * INTO r FROM pg_roles u WHERE u.rolname = v_role;
  IF NOT FOUND THEN
    IF NOT (v_me.rolsuper OR v_me.rolcreaterole) THEN
      RETURN NULL;
    END IF;
    EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', v_role);
    SELECT * INTO r FROM pg_roles u WHERE u.rolname = v_role;
  END IF;
  IF r.rolcanlogin OR r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication OR r.rolbypassrls THEN
    RAISE EXCEPTION 'the capture role % exists with attributes it must not have (LOGIN, SUPERUSER, CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS)', v_role
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('pgconvey gives the capture functions to this role; make it NOLOGIN without attributes (ALTER ROLE %I NOLOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS), or drop it', v_role);
  END IF;
  IF EXISTS (SELECT FROM pg_auth_members m WHERE m.member = r.oid) THEN
    RAISE EXCEPTION 'the capture role % is a member of other roles, whose rights the capture functions would hold', v_role
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('revoke those memberships (SELECT roleid::regrole FROM pg_auth_members WHERE member = %L::regrole), or drop the role', v_role);
  END IF;
  SELECT string_agg(DISTINCT u.rolname, ', ') INTO v_untrusted
    FROM pg_auth_members m JOIN pg_roles u ON u.oid = m.member
   WHERE m.roleid = r.oid AND NOT u.rolsuper AND u.oid <> v_me.oid
     AND NOT pg_has_role(u.oid, v_me.oid, 'MEMBER')
     AND NOT EXISTS (SELECT FROM pg_auth_members a WHERE a.roleid = v_me.oid AND a.member = u.oid AND a.admin_option)
     AND NOT (u.rolcreaterole AND NOT v_me.rolsuper AND current_setting('server_version_num')::integer < 160000);
  IF v_untrusted IS NOT NULL THEN
    RAISE EXCEPTION 'role(s) % may act as the capture role %, and could then write events into every queue of this database', v_untrusted, v_role
      USING ERRCODE = 'insufficient_privilege',
            HINT = format('REVOKE %I FROM %s; only the engine''s owner (or a superuser) may be a member', v_role, v_untrusted);
  END IF;
  -- ALTER FUNCTION … OWNER needs the right to SET ROLE to it (from PG 16 an own privilege: a creator with
  -- CREATEROLE holds only ADMIN on the roles it creates).
  IF NOT v_me.rolsuper AND NOT pg_has_role(v_me.oid, r.oid, CASE WHEN current_setting('server_version_num')::integer >= 160000 THEN 'SET' ELSE 'MEMBER' END) THEN
    EXECUTE format('GRANT %I TO %I', v_role, current_user);
  END IF;
  -- Each grant is made only where the role's own entry lacks it: a GRANT rewrites the object's catalog row
  -- even when it changes nothing, and the schema's makes the session plan every cached statement again
  -- (once per transaction of apply's groups).
  IF NOT pgconvey.acl_holds((SELECT n.nspacl FROM pg_namespace n WHERE n.nspname = 'pgconvey'), r.oid, ARRAY['USAGE']) THEN
    EXECUTE format('GRANT USAGE ON SCHEMA pgconvey TO %I', v_role);
  END IF;
  -- A partition's capture asks whether its table is still in the captured tree (pgconvey.partition_member).
  IF (SELECT count(*) FROM pg_attribute t WHERE t.attrelid = 'pgconvey.captured_table'::regclass
         AND t.attname IN ('table_id', 'table_schema', 'table_name') AND pgconvey.acl_holds(t.attacl, r.oid, ARRAY['SELECT'])) < 3 THEN
    EXECUTE format('GRANT SELECT (table_id, table_schema, table_name) ON TABLE pgconvey.captured_table TO %I', v_role);
  END IF;
  IF to_regprocedure('pgconvey.capture_columns(regclass)') IS NOT NULL
     AND NOT pgconvey.acl_holds((SELECT p.proacl FROM pg_proc p WHERE p.oid = to_regprocedure('pgconvey.capture_columns(regclass)')), r.oid, ARRAY['EXECUTE']) THEN
    EXECUTE format('GRANT EXECUTE ON FUNCTION pgconvey.capture_columns(regclass) TO %I', v_role);
  END IF;
  IF to_regclass('pgconvey.table_shape') IS NOT NULL THEN  -- (an engine installed only up to an older migration, in tests)
    IF NOT pgconvey.acl_holds((SELECT c.relacl FROM pg_class c WHERE c.oid = to_regclass('pgconvey.table_shape')), r.oid, ARRAY['SELECT', 'INSERT']) THEN
      EXECUTE format('GRANT SELECT, INSERT ON TABLE pgconvey.table_shape TO %I', v_role);
    END IF;
    IF NOT pgconvey.acl_holds((SELECT c.relacl FROM pg_class c WHERE c.oid = pg_get_serial_sequence('pgconvey.table_shape', 'shape_id')::regclass), r.oid, ARRAY['USAGE']) THEN
      EXECUTE format('GRANT USAGE ON SEQUENCE %s TO %I', pg_get_serial_sequence('pgconvey.table_shape', 'shape_id'), v_role);
    END IF;
  END IF;
  FOR q IN SELECT queue_id FROM pgconvey.queue ORDER BY queue_id LOOP
    IF NOT pgconvey.acl_holds((SELECT c.relacl FROM pg_class c WHERE c.oid = to_regclass(format('pgconvey.%I', 'event_' || q.queue_id || '_seq'))), r.oid, ARRAY['USAGE']) THEN
      EXECUTE format('GRANT USAGE ON SEQUENCE pgconvey.%I TO %I', 'event_' || q.queue_id || '_seq', v_role);
    END IF;
    FOR i IN 0..2 LOOP
      IF NOT pgconvey.acl_holds((SELECT c.relacl FROM pg_class c WHERE c.oid = to_regclass(pgconvey.event_table(q.queue_id, i))), r.oid, ARRAY['INSERT']) THEN
        EXECUTE format('GRANT INSERT ON TABLE %s TO %I', pgconvey.event_table(q.queue_id, i), v_role);
      END IF;
    END LOOP;
  END LOOP;
  RETURN v_role;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.capture_owner() → who owns a capture function made now
-- by the caller: the capture role when it exists, else the caller (plan warns
-- when that is not the capture role).
CREATE OR REPLACE FUNCTION pgconvey.capture_owner()
RETURNS text LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce((SELECT u.rolname::text FROM pg_catalog.pg_roles u WHERE u.rolname = pgconvey.capture_role_name()), current_user::text)
$$;

------------------------------------------------------------------------------
-- Function: pgconvey.own_captures(table_ids) → the owner given to the tables'
-- capture functions (NULL for no tables): the capture role (see ensure_capture_role), else the
-- caller. Nobody else may execute them (a trigger fires without EXECUTE; only
-- attaching one to another table needs it). The capture role is checked and
-- granted (ensure_capture_role) once per transaction and caller: apply runs
-- many add_table calls in one transaction (src/executor/groups.ts); the
-- answer is kept in a session setting prefixed with the transaction id and
-- the caller (undone with the (sub)transaction that made it, if it aborts).
-- Many tables at once (pgconvey.add_tables) cost one GRANT and one REVOKE of
-- CREATE on the schema: each changes the schema's catalog row, which makes
-- the session plan every cached statement again (measured: about half of an
-- add_table's time when it was done per table).
CREATE OR REPLACE FUNCTION pgconvey.own_captures(p_table_ids integer[])
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_mark text := pg_catalog.txid_current()::text || ':' || current_user::pg_catalog.regrole::pg_catalog.oid::text || ':';
  v_cached text := pg_catalog.current_setting('pgconvey.capture_role_checked', true);
  v_role text;
  v_rows text[];
  v_current text[];
  v_given text[];
  f text;
BEGIN
  IF coalesce(array_length(p_table_ids, 1), 0) = 0 THEN
    RETURN NULL;  -- nothing to give
  END IF;
  IF v_cached IS NOT NULL AND pg_catalog.left(v_cached, pg_catalog.length(v_mark)) = v_mark THEN
    v_role := NULLIF(pg_catalog.substr(v_cached, pg_catalog.length(v_mark) + 1), '');
  ELSE
    v_role := pgconvey.ensure_capture_role();
    PERFORM pg_catalog.set_config('pgconvey.capture_role_checked', v_mark || coalesce(v_role, ''), false);
  END IF;
  -- capture_truncate_rows_<id> (a partitioned table's: a TRUNCATE of one partition is captured as deletes of
  -- its rows, which it reads) stays the engine owner's: the capture role reads no application table.
  -- capture_current_<id> (a plain table's: reads a row's current version by its key, see add_table) stays
  -- the engine owner's too; only the capture role (through the table's capture function) may call it.
  SELECT coalesce(array_agg(p.oid::regprocedure::text ORDER BY p.oid) FILTER (WHERE strpos(p.proname, 'capture_truncate_rows_') = 1), '{}'),
         coalesce(array_agg(p.oid::regprocedure::text ORDER BY p.oid) FILTER (WHERE strpos(p.proname, 'capture_current_') = 1), '{}')
    INTO v_rows, v_current
    FROM pg_proc p
   WHERE p.pronamespace = 'pgconvey'::regnamespace
     AND p.proname = ANY (ARRAY(SELECT x.pfx || i::text FROM unnest(p_table_ids) i,
                                 unnest(ARRAY['capture_truncate_rows_', 'capture_current_']) x(pfx)));
  -- Every table's capture_<id> and capture_truncate_<id> (an error when one is missing, as before).
  v_given := ARRAY(SELECT format('pgconvey.%I()', x.pfx || i::text) FROM unnest(p_table_ids) WITH ORDINALITY u(i, o),
                     unnest(ARRAY['capture_', 'capture_truncate_']) WITH ORDINALITY x(pfx, n) ORDER BY u.o, x.n);
  EXECUTE 'REVOKE ALL ON FUNCTION ' || array_to_string(v_rows || v_current || v_given, ', ') || ' FROM PUBLIC';
  IF v_role IS NOT NULL THEN
    IF array_length(v_current, 1) > 0 THEN
      EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', array_to_string(v_current, ', '), v_role);
    END IF;
    -- The new owner needs CREATE on the schema for ALTER … OWNER; it keeps it for these statements only.
    EXECUTE format('GRANT CREATE ON SCHEMA pgconvey TO %I', v_role);
    FOREACH f IN ARRAY v_given LOOP
      EXECUTE format('ALTER FUNCTION %s OWNER TO %I', f, v_role);
    END LOOP;
    EXECUTE format('REVOKE CREATE ON SCHEMA pgconvey FROM %I', v_role);
  END IF;
  RETURN coalesce(v_role, current_user::text);
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.own_capture(table_id) → pgconvey.own_captures of one table.
CREATE OR REPLACE FUNCTION pgconvey.own_capture(p_table_id integer)
RETURNS text LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  SELECT pgconvey.own_captures(ARRAY[p_table_id])
$$;

------------------------------------------------------------------------------
-- Function: pgconvey.key_equality(opclass) → the btree equality operator of
-- the index operator class opclass, as OPERATOR(schema.name), when both it
-- and the class's comparison support function are built-in or C functions
-- (none a non-superuser can define); else NULL. add_table's reading of a
-- row's current version by its key compares with it. Kept for the
-- transaction in the session setting pgconvey.key_eq_<opclass> (prefixed
-- with the transaction id): planning the catalog join was, per table, a
-- good part of an add_table's time.
CREATE OR REPLACE FUNCTION pgconvey.key_equality(p_opclass oid)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_name text := 'pgconvey.key_eq_' || p_opclass::text;
  v_mark text := pg_catalog.txid_current()::text || ':';
  v_cached text := pg_catalog.current_setting(v_name, true);
  v_op text;
BEGIN
  IF v_cached IS NOT NULL AND pg_catalog.left(v_cached, pg_catalog.length(v_mark)) = v_mark THEN
    RETURN NULLIF(pg_catalog.substr(v_cached, pg_catalog.length(v_mark) + 1), '');
  END IF;
  SELECT format('OPERATOR(%I.%s)', n.nspname, o.oprname) INTO v_op
    FROM pg_opclass c
    JOIN pg_amop ao ON ao.amopfamily = c.opcfamily AND ao.amopstrategy = 3 AND ao.amoplefttype = c.opcintype AND ao.amoprighttype = c.opcintype
    JOIN pg_operator o ON o.oid = ao.amopopr
    JOIN pg_namespace n ON n.oid = o.oprnamespace
    JOIN pg_proc po ON po.oid = o.oprcode JOIN pg_language lo ON lo.oid = po.prolang
    JOIN pg_amproc ap ON ap.amprocfamily = c.opcfamily AND ap.amprocnum = 1 AND ap.amproclefttype = c.opcintype AND ap.amprocrighttype = c.opcintype
    JOIN pg_proc pp ON pp.oid = ap.amproc JOIN pg_language lp ON lp.oid = pp.prolang
   WHERE c.oid = p_opclass AND lo.lanname IN ('internal', 'c') AND lp.lanname IN ('internal', 'c');
  PERFORM pg_catalog.set_config(v_name, v_mark || coalesce(v_op, ''), false);
  RETURN v_op;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.add_table(queue, schema, table, key_columns) → table_id.
-- Starts capturing the table's changes into the queue: records its row
-- shape, generates a capture function for exactly this table and creates its
-- row and TRUNCATE triggers. Without key_columns the primary key is used; a
-- table with neither, or whose primary key is DEFERRABLE, is refused.
-- Idempotent: running it again regenerates the function (e.g. after the
-- table's columns or key changed).
--
-- An event carries the row as the text output of the whole row
-- (record_out(NEW): every column that is not dropped, generated ones
-- included, each through its type's output function — what COPY does — under
-- the settings capture_settings_sql pins), the shape it has, and for a DELETE
-- the old key as the text of a row of the key columns. No cast and no
-- function a table owner could define is called. An UPDATE that changes the
-- key (compared by binary image) is captured as a DELETE of the old key and
-- an INSERT of the new row. The capture functions are SECURITY DEFINER
-- (writers need no rights on the queue), pin search_path, and name every
-- operator, function and type with its schema.
CREATE OR REPLACE FUNCTION pgconvey.add_table(p_queue text, p_schema text, p_table text, p_key_columns text[] DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_table_id integer := pgconvey.add_table_unowned(p_queue, p_schema, p_table, p_key_columns);
BEGIN
  PERFORM pgconvey.own_captures(ARRAY[v_table_id]);
  RETURN v_table_id;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.add_tables(queue, tables) → their table_ids, in order.
-- pgconvey.add_table of many tables in one call (apply's groups, see
-- src/executor/groups.ts): tables is a JSON array of {"schema", "table",
-- "key"} ("key" null or absent: the primary key). The capture functions of
-- them all are given to the capture role at the end (pgconvey.own_captures),
-- once. All or nothing: an error in any table fails the call.
CREATE OR REPLACE FUNCTION pgconvey.add_tables(p_queue text, p_tables jsonb)
RETURNS integer[] LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_ids integer[] := '{}';
  t jsonb;
BEGIN
  FOR t IN SELECT e FROM jsonb_array_elements(p_tables) WITH ORDINALITY AS x(e, o) ORDER BY o LOOP
    v_ids := v_ids || pgconvey.add_table_unowned(p_queue, t->>'schema', t->>'table',
                        CASE WHEN jsonb_typeof(t->'key') = 'array' THEN ARRAY(SELECT jsonb_array_elements_text(t->'key')) END);
  END LOOP;
  PERFORM pgconvey.own_captures(v_ids);
  RETURN v_ids;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.add_table_unowned(queue, schema, table, key_columns) →
-- table_id: all of pgconvey.add_table but giving the capture functions to
-- the capture role (its callers do that, pgconvey.own_captures). Nothing but
-- add_table and add_tables calls it. The functions it generates are compiled
-- when they are made (check_function_bodies pinned on, whatever the session
-- has, e.g. a schema copy's off): a body that would not compile fails the
-- apply, never the application's first write. From PG 12 it also runs with
-- generic plans (set by the DO block at the end of this file: the setting
-- does not exist before 12).
CREATE OR REPLACE FUNCTION pgconvey.add_table_unowned(p_queue text, p_schema text, p_table text, p_key_columns text[])
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET check_function_bodies = on AS $$
DECLARE
  v_queue_id integer;
  v_rel regclass;
  v_table_id integer;
  v_keys text[];
  v_cols text[];
  v_all text[];
  v_attnums smallint[];
  v_nullable text[];
  v_missing text[];
  v_deferrable boolean;
  v_shape integer;
  v_route_tpl text;
  v_pick text;
  v_oldkey text;
  v_body text;
  v_row constant text := 'pg_catalog.textin(pg_catalog.record_out(NEW))';
  v_partitioned boolean;
  v_clone boolean := current_setting('server_version_num')::integer >= 110000;
  v_shape_sql text;
  v_settings text;
  v_part record;
  v_trigger record;
  v_poids oid[];
  v_pbranches text[];
  v_index record;
  v_where text;
  v_argtypes text;
  v_trusted bigint;
  v_reader text;
  v_current text;
  v_nested_sql text;
BEGIN
  SELECT queue_id INTO v_queue_id FROM pgconvey.queue WHERE queue_name = p_queue;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'queue "%" does not exist', p_queue;
  END IF;
  IF EXISTS (SELECT 1 FROM pgconvey.queue WHERE queue_id = v_queue_id AND branch_provider IS NOT NULL) THEN
    RAISE EXCEPTION 'queue "%" here is a branch''s: its tables are captured on the root', p_queue;
  END IF;
  SELECT c.oid INTO v_rel FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = p_schema AND c.relname = p_table AND c.relkind IN ('r', 'p');
  IF NOT FOUND THEN
    RAISE EXCEPTION 'table %.% does not exist', quote_ident(p_schema), quote_ident(p_table)
      USING HINT = 'check the name; unquoted names are lower case';
  END IF;
  v_partitioned := (SELECT c.relkind = 'p' FROM pg_class c WHERE c.oid = v_rel);

  -- The row's columns (all not dropped), and those not generated (attgenerated exists from PG 12).
  EXECUTE 'SELECT array_agg(a.attname::text ORDER BY a.attnum), array_agg(a.attnum ORDER BY a.attnum),
                  array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE NOT g)
             FROM pg_catalog.pg_attribute a CROSS JOIN LATERAL (SELECT '
          || CASE WHEN current_setting('server_version_num')::integer >= 120000 THEN 'a.attgenerated <> ''''' ELSE 'false' END
          || ' AS g) x WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped'
    INTO v_all, v_attnums, v_cols USING v_rel;

  IF p_key_columns IS NULL THEN
    SELECT array_agg(a.attname::text ORDER BY k.ord), bool_or(NOT x.indimmediate) INTO v_keys, v_deferrable
      FROM pg_index x
      CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)
      JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
     WHERE x.indrelid = v_rel AND x.indisprimary;
    IF v_keys IS NULL THEN
      RAISE EXCEPTION 'table %.% has no primary key', quote_ident(p_schema), quote_ident(p_table)
        USING HINT = 'add a primary key, or give key columns that are NOT NULL and unique';
    END IF;
    IF v_deferrable THEN
      RAISE EXCEPTION 'table %.% has a deferrable primary key, which cannot be replicated exactly', quote_ident(p_schema), quote_ident(p_table)
        USING ERRCODE = 'feature_not_supported',
              HINT = 'make the key NOT DEFERRABLE, or give key columns that stay unique at every statement';
    END IF;
  ELSE
    v_keys := p_key_columns;
    SELECT array_agg(k) INTO v_missing FROM unnest(v_keys) k WHERE NOT (k = ANY (v_all));
    IF v_missing IS NOT NULL THEN
      RAISE EXCEPTION 'table %.% has no column(s) % for the key', quote_ident(p_schema), quote_ident(p_table), array_to_string(v_missing, ', ');
    END IF;
    SELECT array_agg(a.attname::text) INTO v_nullable FROM pg_attribute a
     WHERE a.attrelid = v_rel AND a.attname = ANY (v_keys) AND NOT a.attnotnull;
    IF v_nullable IS NOT NULL THEN
      RAISE EXCEPTION 'key column(s) % of %.% may be NULL', array_to_string(v_nullable, ', '), quote_ident(p_schema), quote_ident(p_table)
        USING HINT = 'key columns must be NOT NULL (ALTER TABLE ... ALTER COLUMN ... SET NOT NULL)';
    END IF;
    -- Key columns that only a DEFERRABLE constraint keeps unique may be shared by two rows mid-transaction.
    IF EXISTS (SELECT FROM pg_index x WHERE x.indrelid = v_rel AND x.indisunique AND NOT x.indimmediate
                  AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a
                        WHERE a.attrelid = v_rel AND a.attnum = ANY (x.indkey)) = (SELECT array_agg(k ORDER BY k) FROM unnest(v_keys) k))
       AND NOT EXISTS (SELECT FROM pg_index x WHERE x.indrelid = v_rel AND x.indisunique AND x.indimmediate AND x.indpred IS NULL
                  AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a
                        WHERE a.attrelid = v_rel AND a.attnum = ANY (x.indkey)) = (SELECT array_agg(k ORDER BY k) FROM unnest(v_keys) k)) THEN
      RAISE EXCEPTION 'the key (%) of %.% is kept unique only by a deferrable constraint, which cannot be replicated exactly',
                      array_to_string(v_keys, ', '), quote_ident(p_schema), quote_ident(p_table)
        USING ERRCODE = 'feature_not_supported',
              HINT = 'make the constraint NOT DEFERRABLE, or give key columns that stay unique at every statement';
    END IF;
  END IF;

  INSERT INTO pgconvey.captured_table (queue_id, table_schema, table_name, key_columns, columns)
  VALUES (v_queue_id, p_schema, p_table, v_keys, v_cols)
  ON CONFLICT (queue_id, table_schema, table_name)
  DO UPDATE SET key_columns = EXCLUDED.key_columns, columns = EXCLUDED.columns
  RETURNING table_id INTO v_table_id;

  -- The shape rows are captured with now.
  SELECT s.shape_id INTO v_shape FROM pgconvey.table_shape s
   WHERE s.table_id = v_table_id AND s.attnums = v_attnums AND s.columns = v_all AND s.key_columns = v_keys
   ORDER BY s.shape_id LIMIT 1;
  IF NOT FOUND THEN
    INSERT INTO pgconvey.table_shape (table_id, attnums, columns, key_columns, generated)
    VALUES (v_table_id, v_attnums, v_all, v_keys, coalesce((SELECT array_agg(c) FROM unnest(v_all) c WHERE NOT (c = ANY (v_cols))), '{}'))
    RETURNING shape_id INTO v_shape;
  END IF;
  UPDATE pgconvey.captured_table SET shape_id = v_shape WHERE table_id = v_table_id;

  -- The old key of a DELETE (or of an UPDATE that changes it), as the text of a row of the key columns.
  SELECT format('pg_catalog.textin(pg_catalog.record_out(ROW(%s)))', string_agg(format('OLD.%I', k), ', ' ORDER BY o))
    INTO v_oldkey FROM unnest(v_keys) WITH ORDINALITY AS u(k, o);
  -- The event table of this transaction: its id's range of rotation_txids ids, modulo 3.
  SELECT format('v_txid := pg_catalog.txid_current(); v_cur := (v_txid OPERATOR(pg_catalog./) %s) OPERATOR(pg_catalog.%%) 3; ', rotation_txids)
    INTO v_pick FROM pgconvey.queue WHERE queue_id = v_queue_id;
  -- Insert into that table ($OP, $KEY, $DATA are filled in). ev_txid is the v_txid computed above (the
  -- column's default, txid_current() again, would give the same value at a second call per row).
  v_route_tpl := format(
    'IF v_cur OPERATOR(pg_catalog.=) 0 THEN INSERT INTO %1$s (ev_txid, ev_table, ev_op, ev_shape, ev_key, ev_data) VALUES (v_txid, %4$s, $OP, v_shape, $KEY, $DATA);'
    ' ELSIF v_cur OPERATOR(pg_catalog.=) 1 THEN INSERT INTO %2$s (ev_txid, ev_table, ev_op, ev_shape, ev_key, ev_data) VALUES (v_txid, %4$s, $OP, v_shape, $KEY, $DATA);'
    ' ELSE INSERT INTO %3$s (ev_txid, ev_table, ev_op, ev_shape, ev_key, ev_data) VALUES (v_txid, %4$s, $OP, v_shape, $KEY, $DATA); END IF;',
    pgconvey.event_table(v_queue_id, 0), pgconvey.event_table(v_queue_id, 1), pgconvey.event_table(v_queue_id, 2), v_table_id);

  v_settings := pgconvey.capture_settings_sql(v_rel);

  -- A row's version superseded before its capture fires (a trigger fired by the statement, a foreign
  -- key's action, a trigger on another table: each writes through a nested statement, whose captures fire
  -- at its end, before the statement's own). A capture at trigger depth > 1 is such a nested one: it
  -- marks the transaction (session setting pgconvey.nested_<id>, value "<txid>:<deepest depth>"), and
  -- every later capture of the table in that transaction at a shallower depth ships the row's current
  -- version read by its key (capture_current_<id>; a D when the key no longer exists) instead of
  -- NEW/OLD, so the last event of each key is its state when that capture fires. The common case (no
  -- nested capture in the transaction) costs one session-setting read (the first capture after a
  -- marked transaction clears the mark). Plain tables only, whose key a
  -- unique index on exactly its columns keeps, compared with that index's btree equality when it is a
  -- built-in or C function (none a non-superuser can define).
  FOR v_part IN SELECT p.oid::regprocedure::text AS f FROM pg_proc p
                 WHERE p.pronamespace = 'pgconvey'::regnamespace AND p.proname = 'capture_current_' || v_table_id LOOP
    EXECUTE format('DROP FUNCTION %s', v_part.f);
  END LOOP;
  IF NOT v_partitioned THEN
    SELECT x.indnatts, x.indkey, x.indclass INTO v_index FROM pg_index x
     WHERE x.indrelid = v_rel AND x.indisunique AND x.indimmediate AND x.indisvalid AND x.indpred IS NULL AND x.indexprs IS NULL
       AND x.indnatts = array_length(v_keys, 1)
       AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a
             WHERE a.attrelid = v_rel AND a.attnum = ANY (x.indkey)) = (SELECT array_agg(k ORDER BY k) FROM unnest(v_keys) k)
     ORDER BY x.indisprimary DESC, x.indexrelid LIMIT 1;
    IF FOUND THEN
      SELECT string_agg(format('t.%I %s $%s', u.k, e.op, u.o), ' AND ' ORDER BY u.o),
             string_agg(format_type(a.atttypid, NULL), ', ' ORDER BY u.o),
             count(e.op)
        INTO v_where, v_argtypes, v_trusted
        FROM unnest(v_keys) WITH ORDINALITY AS u(k, o)
        JOIN pg_attribute a ON a.attrelid = v_rel AND a.attname = u.k
        JOIN generate_series(0, v_index.indnatts - 1) i ON v_index.indkey[i] = a.attnum
        CROSS JOIN LATERAL (SELECT pgconvey.key_equality(v_index.indclass[i]) AS op) e;
      IF v_trusted IS DISTINCT FROM array_length(v_keys, 1)::bigint THEN
        v_where := NULL;
      END IF;
    END IF;
    IF v_where IS NOT NULL THEN
      v_reader := 'capture_current_' || v_table_id;
      -- The engine owner's (the capture role reads no application table); row_security off: a policy
      -- (code a table owner defines) never runs as the engine owner: where one would apply, the read fails.
      EXECUTE format('CREATE FUNCTION pgconvey.%I(%s) RETURNS pg_catalog.text LANGUAGE plpgsql SECURITY DEFINER%s SET row_security = off AS %L',
                     v_reader, v_argtypes, v_settings,
                     format('BEGIN RETURN (SELECT pg_catalog.textin(pg_catalog.record_out(t.*)) FROM ONLY %s t WHERE %s); END', v_rel, v_where));
      -- The current state of the key of row r (OLD or NEW) is read into v_row (NULL: the key is gone).
      v_current := format('v_row := pgconvey.%I(%s); ', v_reader,
                          (SELECT string_agg(format('$REC.%I', k), ', ' ORDER BY o) FROM unnest(v_keys) WITH ORDINALITY AS u(k, o)));
    END IF;
    -- The nested path's events, up to two per row: first the OLD row's key (a DELETE, or an UPDATE that
    -- changes the key), then the NEW row's (not a DELETE). Reading (a deeper capture marked the
    -- transaction): each is the key's current state, U of the row read or D of the key. Nested (depth > 1):
    -- D of the old key, then U of NEW. One routing in a two-step loop: the rare path is written once (the
    -- capture function's body, compiled at every add_table, stays small); the common path below is as it was.
    v_nested_sql :=
         -- One expression in the common case: the setting unset (or cleared) and depth 1.
         format('IF pg_catalog.current_setting(%L, true) OPERATOR(pg_catalog.<>) '''' OR pg_catalog.pg_trigger_depth() OPERATOR(pg_catalog.>) 1 THEN ', 'pgconvey.nested_' || v_table_id)
      ||   format('v_cached := pg_catalog.current_setting(%L, true); ', 'pgconvey.nested_' || v_table_id)
      ||   'v_depth := pg_catalog.pg_trigger_depth(); v_mark := v_txid::pg_catalog.text OPERATOR(pg_catalog.||) '':''; v_deepest := 0; v_reading := false; '
      ||   'IF pg_catalog.left(v_cached, pg_catalog.length(v_mark)) OPERATOR(pg_catalog.=) v_mark THEN '
      ||     'v_deepest := pg_catalog.substr(v_cached, pg_catalog.length(v_mark) OPERATOR(pg_catalog.+) 1)::pg_catalog.int4; END IF; '
      ||   'IF v_depth OPERATOR(pg_catalog.>) v_deepest AND v_depth OPERATOR(pg_catalog.>) 1 THEN '
      ||     format('PERFORM pg_catalog.set_config(%L, v_mark OPERATOR(pg_catalog.||) v_depth::pg_catalog.text, false); ', 'pgconvey.nested_' || v_table_id)
      ||   'ELSIF v_deepest OPERATOR(pg_catalog.>) v_depth THEN '
      ||     CASE WHEN v_current IS NULL THEN 'NULL; ' ELSE 'v_reading := true; ' END
      ||   'ELSIF v_deepest OPERATOR(pg_catalog.=) 0 THEN '  -- another transaction's mark: cleared
      ||     format('PERFORM pg_catalog.set_config(%L, '''', false); ', 'pgconvey.nested_' || v_table_id)
      ||   'END IF; '
         -- A nested capture's row goes as U, never I: the key it inserts may still exist on the subscriber,
         -- its deletion (by the outer statement) not yet shipped; the apply's update inserts a row it does
         -- not find, where an I is a plain INSERT of a key taken as new.
      ||   'IF v_reading OR v_depth OPERATOR(pg_catalog.>) 1 THEN '
      ||     'v_moved := false; '
      ||     (SELECT format('IF TG_OP OPERATOR(pg_catalog.=) ''UPDATE'' THEN v_moved := ROW(%s)::pg_catalog.record OPERATOR(pg_catalog.*<>) ROW(%s)::pg_catalog.record; END IF; ',
                            string_agg(format('NEW.%I', k), ', '), string_agg(format('OLD.%I', k), ', ')) FROM unnest(v_keys) k)
      ||     'FOR v_i IN 1..2 LOOP '
      ||       'IF v_i OPERATOR(pg_catalog.=) 1 THEN '
      ||         'CONTINUE WHEN TG_OP OPERATOR(pg_catalog.=) ''INSERT'' OR (TG_OP OPERATOR(pg_catalog.=) ''UPDATE'' AND NOT v_moved); '
      ||         'v_key := ' || v_oldkey || '; v_row := NULL; '
      ||         CASE WHEN v_current IS NULL THEN '' ELSE 'IF v_reading THEN ' || replace(v_current, '$REC', 'OLD') || 'END IF; ' END
      ||       'ELSE '
      ||         'CONTINUE WHEN TG_OP OPERATOR(pg_catalog.=) ''DELETE''; '
      ||         CASE WHEN v_current IS NULL THEN 'v_row := ' || v_row || '; ' ELSE
                 'IF v_reading THEN '
              ||   (SELECT format('v_key := pg_catalog.textin(pg_catalog.record_out(ROW(%s))); ', string_agg(format('NEW.%I', k), ', ' ORDER BY o))
                      FROM unnest(v_keys) WITH ORDINALITY AS u(k, o))
              ||   replace(v_current, '$REC', 'NEW')
              || 'ELSE v_row := ' || v_row || '; END IF; ' END
      ||       'END IF; '
      ||       'IF v_row IS NULL THEN v_op := ''D''; ELSE v_op := ''U''; v_key := NULL; END IF; '
      ||       replace(replace(replace(v_route_tpl, '$OP', 'v_op'), '$KEY', 'v_key'), '$DATA', 'v_row')
      ||     ' END LOOP; RETURN NULL; '
      ||   'END IF; '
      || 'END IF; ';
  END IF;

  -- INSERT and UPDATE events carry no key: the reader takes it from the row.
  -- The key is compared by its binary image (*<> needs no operator lookup).
  -- A plain table's shape check is planned once per session and whenever the table's columns change
  -- (pgconvey.capture_columns, below): the condition is then a constant, no catalog access.
  -- A partitioned table's rows are captured on its partitions (whose columns may be in another order, or
  -- numbered otherwise), with one capture function for the tree: each partition known now has its own
  -- planned check (the same as a plain table's, on the partition: pgconvey.capture_columns of its oid,
  -- against its recorded shape), picked by TG_RELID. From PG 11 the row trigger is the parent's clone,
  -- gone from a partition detached; on PG 10 (a trigger per leaf, left on a detached table) and for a
  -- partition attached since the table was captured (until plan captures it again), partition_shape
  -- gives the shape from the partition's columns once per transaction and columns, and 0 for a table no
  -- longer in the tree.
  IF v_partitioned THEN
    SELECT coalesce(array_agg(l.rel ORDER BY l.rel), '{}'),
           coalesce(array_agg(CASE WHEN v_clone THEN
                    format('IF pgconvey.capture_columns(%L::pg_catalog.regclass) OPERATOR(pg_catalog.=) %L::pg_catalog.text[] THEN v_shape := %s; ',
                           l.rel::text, l.cols::text, l.shape)
                 || format('ELSE v_shape := pgconvey.partition_shape(%s, %s, TG_RELID, pgconvey.capture_columns(%L::pg_catalog.regclass), true); END IF;',
                           v_table_id, l.shape, l.rel::text)
                  ELSE format('v_shape := pgconvey.partition_shape(%s, %s, TG_RELID, pgconvey.capture_columns(%L::pg_catalog.regclass), true);',
                              v_table_id, l.shape, l.rel::text) END ORDER BY l.rel), '{}')
      INTO v_poids, v_pbranches
      FROM (SELECT r AS rel, c.cols, pgconvey.partition_columns_shape(v_table_id, v_shape, r, c.cols) AS shape
              FROM pgconvey.partition_tree(v_rel) r
              JOIN pg_class k ON k.oid = r AND k.relkind = 'r'
              CROSS JOIN LATERAL (SELECT pgconvey.capture_columns(r::regclass) AS cols) c) l;
    v_shape_sql := pgconvey.capture_partition_check(v_poids, v_pbranches,
                     format('v_shape := pgconvey.partition_shape(%s, %s, TG_RELID, pgconvey.capture_columns(TG_RELID::pg_catalog.regclass), false);',
                            v_table_id, v_shape))
      || 'IF v_shape OPERATOR(pg_catalog.=) 0 THEN RETURN NULL; END IF; ';
  END IF;
  SELECT 'DECLARE v_cur pg_catalog.int8; v_txid pg_catalog.int8; v_shape pg_catalog.int4; v_cached pg_catalog.text; v_mark pg_catalog.text;'
      || ' v_n pg_catalog.int8; v_max pg_catalog.int2; v_depth pg_catalog.int4; v_deepest pg_catalog.int4; v_row pg_catalog.text;'
      || ' v_key pg_catalog.text; v_op pg_catalog."char"; v_reading pg_catalog.bool; v_moved pg_catalog.bool; v_i pg_catalog.int4; BEGIN '
      || v_pick
      || coalesce(v_shape_sql, '')
      || CASE WHEN v_partitioned THEN '' ELSE
         -- Planned once per session and whenever the table's columns change (pgconvey.capture_columns): the
         -- condition is then a constant, and the common case costs no catalog access.
         format('IF pgconvey.capture_columns(%L::pg_catalog.regclass) OPERATOR(pg_catalog.=) %L::pg_catalog.text[] THEN v_shape := %s; ',
                v_rel::oid::text, v_all::text, v_shape)
      || format('ELSE v_shape := pgconvey.capture_shape(%s, %s, TG_RELID, pgconvey.capture_columns(%L::pg_catalog.regclass)); END IF; ',
                v_table_id, v_shape, v_rel::oid::text) END
      || coalesce(v_nested_sql, '')
      || 'IF TG_OP OPERATOR(pg_catalog.=) ''INSERT'' THEN '
      ||   replace(replace(replace(v_route_tpl, '$OP', '''I'''), '$KEY', 'NULL'), '$DATA', v_row)
      || ' ELSIF TG_OP OPERATOR(pg_catalog.=) ''UPDATE'' THEN '
      ||   format('IF ROW(%s)::pg_catalog.record OPERATOR(pg_catalog.*<>) ROW(%s)::pg_catalog.record THEN ',
                  string_agg(format('NEW.%I', k), ', '), string_agg(format('OLD.%I', k), ', '))
      ||     replace(replace(replace(v_route_tpl, '$OP', '''D'''), '$KEY', v_oldkey), '$DATA', 'NULL')
      ||     replace(replace(replace(v_route_tpl, '$OP', '''I'''), '$KEY', 'NULL'), '$DATA', v_row)
      ||   ' ELSE '
      ||     replace(replace(replace(v_route_tpl, '$OP', '''U'''), '$KEY', 'NULL'), '$DATA', v_row)
      ||   ' END IF;'
      || ' ELSE '
      ||   replace(replace(replace(v_route_tpl, '$OP', '''D'''), '$KEY', v_oldkey), '$DATA', 'NULL')
      || ' END IF; RETURN NULL; END'
    INTO v_body
    FROM unnest(v_keys) k;

  EXECUTE format('CREATE OR REPLACE FUNCTION pgconvey.%I() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER%s AS %L',
                 'capture_' || v_table_id, v_settings, v_body);
  IF NOT v_partitioned THEN
    EXECUTE format('CREATE OR REPLACE FUNCTION pgconvey.%I() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS %L',
                   'capture_truncate_' || v_table_id,
                   'DECLARE v_cur pg_catalog.int8; v_txid pg_catalog.int8; v_shape pg_catalog.int4; BEGIN '
                   || v_pick
                   || replace(replace(replace(v_route_tpl, '$OP', '''T'''), '$KEY', 'NULL'), '$DATA', 'NULL')
                   || ' RETURN NULL; END');
    -- The ones there already go first (dropped by name only where they exist: a new table costs no DROP).
    FOR v_trigger IN SELECT t.tgname FROM pg_trigger t WHERE t.tgrelid = v_rel AND NOT t.tgisinternal
                        AND t.tgname IN ('pgconvey_capture_' || v_queue_id, 'pgconvey_truncate_' || v_queue_id) LOOP
      EXECUTE format('DROP TRIGGER %I ON %s', v_trigger.tgname, v_rel);
    END LOOP;
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE PROCEDURE pgconvey.%I()',
                   'pgconvey_capture_' || v_queue_id, v_rel, 'capture_' || v_table_id);
    EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE PROCEDURE pgconvey.%I()',
                   'pgconvey_truncate_' || v_queue_id, v_rel, 'capture_truncate_' || v_table_id);
    RETURN v_table_id;
  END IF;

  -- A partitioned table: its rows live in its partitions (every level), and every event is the parent's
  -- (ev_table is its table_id; the subscriber applies through the parent, which routes each row).
  -- TRUNCATE of the parent is one T event (AFTER, capture_truncate_<id>); TRUNCATE of a partition (not
  -- as part of the parent's) is captured BEFORE it runs as a DELETE of each of its rows
  -- (capture_truncate_rows_<id>), so the subscriber loses only those rows, whatever its partition layout.
  -- A statement truncating the parent fires every partition's BEFORE trigger after the parent's, which
  -- marks the tree covered; one truncating a partition marks its subtree covered; the AFTER triggers
  -- clear the mark. The mark is a session setting prefixed with the transaction id (function SET clauses
  -- would undo a transaction-local one).
  EXECUTE format('CREATE OR REPLACE FUNCTION pgconvey.%I() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS %L',
                 'capture_truncate_' || v_table_id,
                 'DECLARE v_cur pg_catalog.int8; v_txid pg_catalog.int8; v_shape pg_catalog.int4; BEGIN '
                 || v_pick
                 || format('IF TG_TABLE_SCHEMA OPERATOR(pg_catalog.=) %L AND TG_TABLE_NAME OPERATOR(pg_catalog.=) %L THEN ', p_schema, p_table)
                 ||   replace(replace(replace(v_route_tpl, '$OP', '''T'''), '$KEY', 'NULL'), '$DATA', 'NULL')
                 || ' END IF; '
                 || format('PERFORM pg_catalog.set_config(%L, '''', false); ', 'pgconvey.truncating_' || v_table_id)
                 || 'RETURN NULL; END');
  EXECUTE format('CREATE OR REPLACE FUNCTION pgconvey.%I() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER%s AS %L',
                 'capture_truncate_rows_' || v_table_id, v_settings,
                 'DECLARE v_cur pg_catalog.int8; v_txid pg_catalog.int8; v_mark pg_catalog.text; v_cov pg_catalog.text; v_sub pg_catalog.text; BEGIN '
                 || v_pick
                 || 'v_mark := v_txid::pg_catalog.text OPERATOR(pg_catalog.||) '':''; '
                 || format('v_cov := pg_catalog.current_setting(%L, true); ', 'pgconvey.truncating_' || v_table_id)
                 || 'IF v_cov IS NULL OR pg_catalog.left(v_cov, pg_catalog.length(v_mark)) OPERATOR(pg_catalog.<>) v_mark THEN v_cov := v_mark OPERATOR(pg_catalog.||) '',''; END IF; '
                 || format('IF TG_TABLE_SCHEMA OPERATOR(pg_catalog.=) %L AND TG_TABLE_NAME OPERATOR(pg_catalog.=) %L THEN ', p_schema, p_table)
                 ||   format('PERFORM pg_catalog.set_config(%L, v_mark OPERATOR(pg_catalog.||) ''*'', false); RETURN NULL; END IF; ', 'pgconvey.truncating_' || v_table_id)
                 || 'IF v_cov OPERATOR(pg_catalog.=) (v_mark OPERATOR(pg_catalog.||) ''*'') '
                 ||   'OR pg_catalog.strpos(v_cov, '','' OPERATOR(pg_catalog.||) TG_RELID::pg_catalog.text OPERATOR(pg_catalog.||) '','') OPERATOR(pg_catalog.>) 0 '
                 ||   format('OR NOT pgconvey.partition_member(%s, TG_RELID) THEN RETURN NULL; END IF; ', v_table_id)
                 || format('EXECUTE pg_catalog.format(%L, pgconvey.event_table(%s, v_cur::pg_catalog.int4), TG_RELID::pg_catalog.regclass); ',
                           -- the template of the runtime format(): %s for the event table and the partition, every other % doubled
                           format('INSERT INTO %%s (ev_table, ev_op, ev_shape, ev_key, ev_data) SELECT %s, %L, %s, pg_catalog.textin(pg_catalog.record_out(ROW(%s))), NULL FROM %%s t',
                                  v_table_id, 'D', v_shape,
                                  replace((SELECT string_agg(format('t.%I', k), ', ' ORDER BY o) FROM unnest(v_keys) WITH ORDINALITY AS u(k, o)), '%', '%%')),
                           v_queue_id)
                 || 'WITH RECURSIVE down(rel) AS (SELECT TG_RELID UNION ALL SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN down d ON i.inhparent OPERATOR(pg_catalog.=) d.rel) '
                 ||   'SELECT pg_catalog.string_agg(rel::pg_catalog.text, '','') INTO v_sub FROM down; '
                 || format('PERFORM pg_catalog.set_config(%L, v_cov OPERATOR(pg_catalog.||) v_sub OPERATOR(pg_catalog.||) '','', false); ', 'pgconvey.truncating_' || v_table_id)
                 || 'RETURN NULL; END');

  -- A partition captured on its own by this queue gives way to its parent.
  FOR v_part IN SELECT n.nspname, c.relname FROM pgconvey.partition_tree(v_rel) r JOIN pg_class c ON c.oid = r
                  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE r <> v_rel LOOP
    IF EXISTS (SELECT FROM pgconvey.captured_table t WHERE t.queue_id = v_queue_id AND t.table_schema = v_part.nspname AND t.table_name = v_part.relname) THEN
      PERFORM pgconvey.remove_table(p_queue, v_part.nspname, v_part.relname);
    END IF;
  END LOOP;
  -- Triggers of this parent left on tables no longer in its tree (detached) go.
  FOR v_part IN SELECT t.tgrelid::regclass AS rel, t.tgname FROM pg_trigger t
                 WHERE t.tgfoid IN (SELECT p.oid FROM pg_proc p WHERE p.pronamespace = 'pgconvey'::regnamespace
                                       AND p.proname IN ('capture_' || v_table_id, 'capture_truncate_' || v_table_id, 'capture_truncate_rows_' || v_table_id))
                   AND NOT t.tgisinternal AND NOT (t.tgrelid IN (SELECT r FROM pgconvey.partition_tree(v_rel) r)) LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', v_part.tgname, v_part.rel);
  END LOOP;
  -- Rows: from PostgreSQL 11 a row trigger on the parent is cloned onto every partition, existing or
  -- future, at every level (and removed from one that is detached); PostgreSQL 10 has no row triggers on
  -- partitioned tables, so each leaf gets its own (a partition created later is captured by the next apply).
  IF v_clone THEN
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'pgconvey_capture_' || v_queue_id, v_rel);
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE PROCEDURE pgconvey.%I()',
                   'pgconvey_capture_' || v_queue_id, v_rel, 'capture_' || v_table_id);
  END IF;
  -- Statement triggers are never cloned: every table of the tree gets the TRUNCATE pair.
  FOR v_part IN SELECT r AS rel, c.relkind FROM pgconvey.partition_tree(v_rel) r JOIN pg_class c ON c.oid = r LOOP
    -- The ones there already go first (dropped by name only where they exist: no notice per partition).
    FOR v_trigger IN SELECT t.tgname FROM pg_trigger t WHERE t.tgrelid = v_part.rel AND NOT t.tgisinternal
                        AND (t.tgname IN ('pgconvey_truncate_' || v_queue_id, 'pgconvey_truncate_rows_' || v_queue_id)
                             OR (NOT v_clone AND t.tgname = 'pgconvey_capture_' || v_queue_id)) LOOP
      EXECUTE format('DROP TRIGGER %I ON %s', v_trigger.tgname, v_part.rel::regclass);
    END LOOP;
    IF NOT v_clone AND v_part.relkind = 'r' THEN
      EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE PROCEDURE pgconvey.%I()',
                     'pgconvey_capture_' || v_queue_id, v_part.rel::regclass, 'capture_' || v_table_id);
    END IF;
    EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE PROCEDURE pgconvey.%I()',
                   'pgconvey_truncate_' || v_queue_id, v_part.rel::regclass, 'capture_truncate_' || v_table_id);
    EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE PROCEDURE pgconvey.%I()',
                   'pgconvey_truncate_rows_' || v_queue_id, v_part.rel::regclass, 'capture_truncate_rows_' || v_table_id);
  END LOOP;
  RETURN v_table_id;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.partition_tree(rel) → the table and every partition under it, at every level.
CREATE OR REPLACE FUNCTION pgconvey.partition_tree(p_rel oid)
RETURNS SETOF oid LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  WITH RECURSIVE down(rel) AS (SELECT p_rel UNION ALL SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN down d ON i.inhparent = d.rel)
  SELECT rel FROM down
$$;

------------------------------------------------------------------------------
-- Function: pgconvey.partition_member(table_id, rel) → whether rel is the captured (partitioned) table
-- table_id or one of its partitions at any level now.
CREATE OR REPLACE FUNCTION pgconvey.partition_member(p_table_id integer, p_rel oid)
RETURNS boolean LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  WITH RECURSIVE up(rel) AS (SELECT p_rel UNION ALL SELECT i.inhparent FROM pg_catalog.pg_inherits i JOIN up u ON i.inhrelid = u.rel)
  SELECT EXISTS (SELECT FROM up u JOIN pgconvey.captured_table t ON t.table_id = p_table_id
                  WHERE u.rel = pg_catalog.to_regclass(pg_catalog.format('%I.%I', t.table_schema, t.table_name)))
$$;

------------------------------------------------------------------------------
-- Function: pgconvey.partition_shape(table_id, baked_shape, rel) → the shape of the rows this
-- transaction captures from partition rel of the partitioned table table_id, or 0 when rel is no longer
-- in its tree (their events are not the parent's). A partition's columns have the parent's names and
-- types but may be in another order or numbered otherwise (ATTACH of a table made on its own, columns
-- dropped before): the shape is the partition's own columns by name, under the parent's table_id and
-- with the baked shape's key. The answer is kept for the transaction in the session setting
-- pgconvey.pshape_<baked>_<rel>, and with the partition's column count and highest column number in
-- pgconvey.pknown_<baked>_<rel> (used from PG 11 by later transactions while those still match).
CREATE OR REPLACE FUNCTION pgconvey.partition_shape(p_table_id integer, p_baked integer, p_rel oid)
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_attnums smallint[];
  v_shape integer;
BEGIN
  IF NOT pgconvey.partition_member(p_table_id, p_rel) THEN
    v_shape := 0;
  ELSE
    SELECT array_agg(a.attnum ORDER BY a.attnum) INTO v_attnums
      FROM pg_attribute a WHERE a.attrelid = p_rel AND a.attnum > 0 AND NOT a.attisdropped;
    v_shape := pgconvey.record_shape(p_table_id, p_baked, p_rel);
  END IF;
  PERFORM set_config('pgconvey.pshape_' || p_baked || '_' || p_rel, txid_current() || ':' || v_shape, false);
  -- For later transactions of the session (PG 11+, see add_table): columns, highest column number, shape.
  IF v_shape <> 0 THEN
    PERFORM set_config('pgconvey.pknown_' || p_baked || '_' || p_rel, array_length(v_attnums, 1) || ':' || v_attnums[array_length(v_attnums, 1)] || ':' || v_shape, false);
  END IF;
  RETURN v_shape;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.partition_columns_shape(table_id, parent_shape, rel,
-- columns) → the shape of rows of partition rel of the partitioned table
-- table_id that carry the columns named columns: the table's shape of rel's
-- columns by number and by name (a partition's columns may be in another
-- order than the parent's, or numbered otherwise), found among the recorded
-- ones or recorded anew, with parent_shape's key. When pg_attribute as this
-- transaction sees it has other columns than the rows (a REPEATABLE READ
-- snapshot older than an ALTER TABLE), the column numbers are unknown ('{}').
CREATE OR REPLACE FUNCTION pgconvey.partition_columns_shape(p_table_id integer, p_baked integer, p_rel oid, p_columns text[])
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_attnums smallint[];
  v_cols text[];
  v_generated text[];
  v_keys text[];
  v_shape integer;
BEGIN
  EXECUTE 'SELECT array_agg(a.attnum ORDER BY a.attnum), array_agg(a.attname::text ORDER BY a.attnum), '
       || CASE WHEN current_setting('server_version_num')::integer >= 120000
               THEN 'coalesce(array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attgenerated <> ''''), ''{}'')' ELSE '''{}''::text[]' END
       || ' FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped'
    INTO v_attnums, v_cols, v_generated USING p_rel;
  IF v_cols IS DISTINCT FROM p_columns THEN  -- pg_attribute as this snapshot sees it is older than the rows
    v_attnums := '{}';
    v_generated := ARRAY(SELECT c FROM unnest(p_columns) c WHERE c = ANY (v_generated));
  END IF;
  SELECT s.key_columns INTO v_keys FROM pgconvey.table_shape s WHERE s.shape_id = p_baked;
  SELECT s.shape_id INTO v_shape FROM pgconvey.table_shape s
   WHERE s.table_id = p_table_id AND s.attnums = v_attnums AND s.columns = p_columns AND s.key_columns = v_keys
   ORDER BY s.shape_id LIMIT 1;
  IF NOT FOUND THEN
    INSERT INTO pgconvey.table_shape (table_id, attnums, columns, key_columns, generated)
    VALUES (p_table_id, v_attnums, p_columns, v_keys, v_generated) RETURNING shape_id INTO v_shape;
  END IF;
  RETURN v_shape;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.partition_shape(table_id, baked_shape, rel, columns,
-- known) → the shape of rows of partition rel of the partitioned table
-- table_id that carry the columns named columns (as pgconvey.capture_columns
-- reads them), or 0 when rel is no longer in its tree (their events are not
-- the parent's). known: baked_shape is rel's own shape, recorded when the
-- table was captured (its capture function checks each partition it knew
-- then), and rel's rows keep it as a plain table's keep theirs
-- (record_shape); else baked_shape is the parent's and rel a partition
-- attached since (partition_columns_shape).
-- The answer is kept for the transaction in the session setting
-- pgconvey.pcols_<baked>_<rel>, keyed by the transaction id and the columns
-- (an ALTER TABLE of the same transaction changes them).
CREATE OR REPLACE FUNCTION pgconvey.partition_shape(p_table_id integer, p_baked integer, p_rel oid, p_columns text[], p_known boolean)
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_mark text := txid_current()::text || ':' || p_columns::text || ':';
  v_name text := 'pgconvey.pcols_' || p_baked || '_' || p_rel;
  v_cached text := current_setting(v_name, true);
  v_shape integer;
BEGIN
  IF v_cached IS NOT NULL AND left(v_cached, length(v_mark)) = v_mark THEN
    RETURN substr(v_cached, length(v_mark) + 1)::integer;
  END IF;
  IF NOT pgconvey.partition_member(p_table_id, p_rel) THEN
    v_shape := 0;
  ELSIF p_known THEN
    v_shape := pgconvey.record_shape(p_table_id, p_baked, p_rel, p_columns);
  ELSE
    v_shape := pgconvey.partition_columns_shape(p_table_id, p_baked, p_rel, p_columns);
  END IF;
  PERFORM set_config(v_name, v_mark || v_shape, false);
  RETURN v_shape;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.capture_partition_check(oids, branches, otherwise) → the
-- plpgsql of a partitioned table's shape check: branches[i] runs for the
-- partition oids[i] (oids sorted), otherwise for any other; a binary search on
-- TG_RELID, so a row pays a few comparisons however many partitions there are.
CREATE OR REPLACE FUNCTION pgconvey.capture_partition_check(p_oids oid[], p_branches text[], p_otherwise text)
RETURNS text LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_n integer := coalesce(array_length(p_oids, 1), 0);
  v_mid integer;
  v text := '';
BEGIN
  IF v_n = 0 THEN
    RETURN p_otherwise;
  ELSIF v_n <= 4 THEN
    FOR i IN 1 .. v_n LOOP
      v := v || CASE WHEN i = 1 THEN 'IF ' ELSE ' ELSIF ' END
             || format('TG_RELID OPERATOR(pg_catalog.=) %s::pg_catalog.oid THEN ', p_oids[i]) || p_branches[i];
    END LOOP;
    RETURN v || ' ELSE ' || p_otherwise || ' END IF; ';
  END IF;
  v_mid := v_n / 2 + 1;
  RETURN format('IF TG_RELID OPERATOR(pg_catalog.<) %s::pg_catalog.oid THEN ', p_oids[v_mid])
      || pgconvey.capture_partition_check(p_oids[1:v_mid - 1], p_branches[1:v_mid - 1], p_otherwise)
      || ' ELSE '
      || pgconvey.capture_partition_check(p_oids[v_mid:v_n], p_branches[v_mid:v_n], p_otherwise)
      || ' END IF; ';
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.legacy_event(table_id, op, key, data) → (shape, key,
-- data) of an event written before engine migration 0006, whose row (I, U) or
-- old key (D) is JSON: read into the table's row type (json_populate_record,
-- which uses each type's input function) and written back as row text under
-- the exact settings, with the table's current shape. Only the events queued
-- while the engine was upgraded take this way.
CREATE OR REPLACE FUNCTION pgconvey.legacy_event(p_table_id integer, p_op "char", p_key text, p_data text,
                                                 OUT shape integer, OUT key text, OUT data text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C' AS $$
DECLARE
  t record;
BEGIN
  SELECT c.table_schema, c.table_name, c.shape_id, s.key_columns INTO t
    FROM pgconvey.captured_table c JOIN pgconvey.table_shape s ON s.shape_id = c.shape_id
   WHERE c.table_id = p_table_id;
  IF NOT FOUND THEN
    RETURN;  -- no longer captured: the reader skips the table's events
  END IF;
  shape := t.shape_id;
  IF p_op = 'D' THEN
    EXECUTE format('SELECT pg_catalog.textin(pg_catalog.record_out(ROW(%s))) FROM pg_catalog.json_populate_record(NULL::%I.%I, $1::pg_catalog.json) r',
                   (SELECT string_agg(format('r.%I', k), ', ' ORDER BY o) FROM unnest(t.key_columns) WITH ORDINALITY AS u(k, o)),
                   t.table_schema, t.table_name)
      INTO key USING p_key;
  ELSE
    EXECUTE format('SELECT pg_catalog.textin(pg_catalog.record_out(r)) FROM pg_catalog.json_populate_record(NULL::%I.%I, $1::pg_catalog.json) r',
                   t.table_schema, t.table_name)
      INTO data USING p_data;
  END IF;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.remove_table(queue, schema, table) → true if it was
-- captured. Drops its triggers and capture functions.
CREATE OR REPLACE FUNCTION pgconvey.remove_table(p_queue text, p_schema text, p_table text)
RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_queue_id integer;
  v_table_id integer;
  v_rel regclass;
  v_trigger record;
  v_functions text[];
BEGIN
  SELECT t.queue_id, t.table_id INTO v_queue_id, v_table_id
    FROM pgconvey.captured_table t JOIN pgconvey.queue q USING (queue_id)
   WHERE q.queue_name = p_queue AND t.table_schema = p_schema AND t.table_name = p_table;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  v_functions := ARRAY['capture_' || v_table_id, 'capture_truncate_' || v_table_id, 'capture_truncate_rows_' || v_table_id];
  SELECT c.oid INTO v_rel FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = p_schema AND c.relname = p_table;
  -- The table's own triggers first (on a partitioned table that drops the clones on its partitions), then
  -- every other trigger calling its capture functions (a partitioned table's partitions): never a trigger of
  -- another captured table, whatever its name.
  IF v_rel IS NOT NULL THEN
    FOR v_trigger IN SELECT t.tgname FROM pg_trigger t WHERE t.tgrelid = v_rel AND NOT t.tgisinternal
                        AND t.tgfoid IN (SELECT p.oid FROM pg_proc p WHERE p.pronamespace = 'pgconvey'::regnamespace AND p.proname = ANY (v_functions)) LOOP
      EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', v_trigger.tgname, v_rel);
    END LOOP;
  END IF;
  FOR v_trigger IN SELECT t.tgrelid::regclass AS rel, t.tgname FROM pg_trigger t WHERE NOT t.tgisinternal
                      AND t.tgfoid IN (SELECT p.oid FROM pg_proc p WHERE p.pronamespace = 'pgconvey'::regnamespace AND p.proname = ANY (v_functions)) LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', v_trigger.tgname, v_trigger.rel);
  END LOOP;
  EXECUTE format('DROP FUNCTION IF EXISTS pgconvey.%I()', 'capture_' || v_table_id);
  EXECUTE format('DROP FUNCTION IF EXISTS pgconvey.%I()', 'capture_truncate_' || v_table_id);
  EXECUTE format('DROP FUNCTION IF EXISTS pgconvey.%I()', 'capture_truncate_rows_' || v_table_id);
  FOR v_trigger IN SELECT p.oid::regprocedure::text AS f FROM pg_proc p
                    WHERE p.pronamespace = 'pgconvey'::regnamespace AND p.proname = 'capture_current_' || v_table_id LOOP
    EXECUTE format('DROP FUNCTION %s', v_trigger.f);
  END LOOP;
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
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
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
-- than tick_retention. Under the queue row lock: a consumer registered at an
-- older tick (register_consumer_at, set_subscriber_watermark) either comes
-- first and is counted, or finds its tick gone.
CREATE OR REPLACE FUNCTION pgconvey.maint_ticks(p_queue text)
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  q pgconvey.queue%ROWTYPE;
  v_keep bigint;
  v_count integer;
BEGIN
  SELECT * INTO q FROM pgconvey.queue WHERE queue_name = p_queue FOR UPDATE;
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
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
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
RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
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
RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
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
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
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
-- Function: pgconvey.captured_version(queue) → the version of the queue's
-- captured tables: the md5 of what the apply worker uses of every row, so
-- any committed change (add_table, remove_table, a new capture with other
-- columns or key) gives another value and the worker reads the rows again.
CREATE OR REPLACE FUNCTION pgconvey.captured_version(p_queue text)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN (SELECT md5(coalesce(string_agg(ROW(c.table_id, c.table_schema, c.table_name, c.key_columns, c.columns)::text, ',' ORDER BY c.table_id), ''))
            FROM pgconvey.captured_table c JOIN pgconvey.queue q USING (queue_id) WHERE q.queue_name = p_queue);
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.poll_state(queue, consumer) → one row while the consumer
-- has a batch open (none otherwise): the version of the queue's captured
-- tables (pgconvey.captured_version), whether copy pins of the consumer
-- exist (`copy:<consumer>:…`), and the queue's sequence values, as arrays in
-- (schema, name) order. The apply worker's poll asks it in its round trip; in
-- a function its statements are planned once per session, not every batch.
CREATE OR REPLACE FUNCTION pgconvey.poll_state(p_queue text, p_consumer text)
RETURNS TABLE (v text, pins boolean, seq_schema text[], seq_name text[], seq_value text[], seq_called boolean[])
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_queue integer;
BEGIN
  SELECT q.queue_id INTO v_queue FROM pgconvey.queue q WHERE q.queue_name = p_queue;
  IF NOT FOUND OR NOT EXISTS (SELECT FROM pgconvey.consumer co
                               WHERE co.queue_id = v_queue AND co.consumer_name = p_consumer AND co.batch_end_tick IS NOT NULL) THEN
    RETURN;
  END IF;
  v := pgconvey.captured_version(p_queue);
  pins := EXISTS (SELECT FROM pgconvey.consumer c
                   WHERE c.queue_id = v_queue AND left(c.consumer_name, length('copy:' || p_consumer || ':')) = 'copy:' || p_consumer || ':');
  SELECT coalesce(array_agg(x.seq_schema ORDER BY x.seq_schema, x.seq_name), '{}'),
         coalesce(array_agg(x.seq_name ORDER BY x.seq_schema, x.seq_name), '{}'),
         coalesce(array_agg(x.last_value::text ORDER BY x.seq_schema, x.seq_name), '{}'),
         coalesce(array_agg(x.is_called ORDER BY x.seq_schema, x.seq_name), '{}')
    INTO seq_schema, seq_name, seq_value, seq_called
    FROM pgconvey.sequence_values(p_queue) x;
  RETURN NEXT;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.advance_sequence(schema, name, value, is_called, margin)
-- → the sequence's value afterwards. Moves a subscriber's sequence forward
-- (in the direction of its increment) to the provider's value plus `margin`
-- increments — never backwards. Does nothing when the sequence is missing.
CREATE OR REPLACE FUNCTION pgconvey.advance_sequence(p_schema text, p_name text, p_value bigint, p_is_called boolean, p_margin bigint DEFAULT 0)
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
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
  -- A partitioned table's partitions (every level) too: a write to a partition does not fire the parent's statement triggers.
  SELECT DISTINCT r::regclass
    FROM (SELECT table_schema AS s, table_name AS n FROM pgconvey.captured_table
          UNION SELECT table_schema, table_name FROM pgconvey.subscriber_table) t
   CROSS JOIN LATERAL pgconvey.partition_tree(to_regclass(format('%I.%I', t.s, t.n))) r
   WHERE to_regclass(format('%I.%I', t.s, t.n)) IS NOT NULL
     AND (r = to_regclass(format('%I.%I', t.s, t.n)) OR (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = to_regclass(format('%I.%I', t.s, t.n))) = 'p')
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
  -- On PostgreSQL 10 a partitioned table's row trigger is on each leaf: the first leaf lacking it, or not firing normally, speaks.
  SELECT c.table_schema, c.table_name, k.kind, k.name,
         CASE WHEN k.kind = 'row' AND current_setting('server_version_num')::integer < 110000
                   AND (SELECT r.relkind FROM pg_catalog.pg_class r WHERE r.oid = to_regclass(format('%I.%I', c.table_schema, c.table_name))) = 'p'
              THEN coalesce((SELECT coalesce(t.tgenabled::text, 'missing')
                               FROM pgconvey.partition_tree(to_regclass(format('%I.%I', c.table_schema, c.table_name))) p
                               JOIN pg_catalog.pg_class l ON l.oid = p AND l.relkind = 'r'
                               LEFT JOIN pg_catalog.pg_trigger t ON t.tgrelid = p AND t.tgname = k.name
                              ORDER BY t.tgenabled IS NULL DESC, t.tgenabled = 'O' LIMIT 1), 'O')
              ELSE coalesce((SELECT t.tgenabled::text FROM pg_catalog.pg_trigger t
                              WHERE t.tgrelid = to_regclass(format('%I.%I', c.table_schema, c.table_name)) AND t.tgname = k.name), 'missing') END
    FROM pgconvey.captured_table c JOIN pgconvey.queue q USING (queue_id)
   CROSS JOIN LATERAL (VALUES ('row', 'pgconvey_capture_' || q.queue_id), ('truncate', 'pgconvey_truncate_' || q.queue_id)) k(kind, name)
   WHERE q.queue_name = p_queue
   ORDER BY 1, 2, 3
$$;

-- ===== end of fences =====

------------------------------------------------------------------------------
-- DDL in queue order (`pgconvey execute`, migration 0010). A script runs on
-- the root inside execute_script, which records it, checks what it did to the
-- queue's tables, captures the changed ones again and writes one event (table
-- 0, op 'X', shape 0; key: the script's name, checksum and search_path as
-- JSON; data: its text) at the end of its transaction: every event of another
-- transaction that wrote a table the script locked is before it or after it
-- in the queue exactly as its commit was. Subscribers run the same text with
-- apply_script at that position, in the batch's transaction. Both run the
-- script under the exact settings (TimeZone UTC, DateStyle ISO …) and the
-- given search_path. Errors carry SQLSTATEs of class PX (src/engine/ddl.ts).

-- Function: pgconvey.ddl_table_signature(rel) → the columns of a table as
-- text (number, name, type, modifier): two signatures differ when the
-- capture must be made again (the row's columns or a type's text output).
CREATE OR REPLACE FUNCTION pgconvey.ddl_table_signature(p_rel oid)
RETURNS text LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(string_agg(a.attnum || ':' || quote_ident(a.attname) || ':' || a.atttypid || ':' || a.atttypmod, ',' ORDER BY a.attnum), '')
    FROM pg_catalog.pg_attribute a WHERE a.attrelid = p_rel AND a.attnum > 0 AND NOT a.attisdropped
$$;

-- Function: pgconvey.ddl_primary_key(rel) → the primary key's columns in order, or NULL.
CREATE OR REPLACE FUNCTION pgconvey.ddl_primary_key(p_rel oid)
RETURNS text[] LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT array_agg(a.attname::text ORDER BY k.ord)
    FROM pg_catalog.pg_index x
    CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)
    JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
   WHERE x.indrelid = p_rel AND x.indisprimary
$$;

-- Function: pgconvey.execute_script(queue, name, checksum, sql, search_path)
-- → 'applied', or 'skipped' when this name and checksum ran before.
-- Refused (nothing done): a used name with another checksum (PX001); a
-- script that changes rows of the queue's tables (PX002: subscribers run the
-- script themselves, so its rows would arrive twice); one that drops or
-- renames a replicated table (PX003) or changes or drops its key (PX004).
-- The caller commits.
CREATE OR REPLACE FUNCTION pgconvey.execute_script(p_queue text, p_name text, p_checksum text, p_sql text, p_search_path text)
RETURNS text LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C' AS $$
DECLARE
  v_queue record;
  v_done text;
  v_txid bigint := pg_catalog.txid_current();
  v_before jsonb;
  v_rel oid;
  v_pk text[];
  v_rows bigint := 0;
  v_n bigint;
  t record;
  i integer;
BEGIN
  SELECT q.queue_id, q.rotation_txids INTO v_queue FROM pgconvey.queue q WHERE q.queue_name = p_queue;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'queue "%" does not exist on this database', p_queue USING ERRCODE = 'PX005', HINT = 'run execute against the queue''s root (--queue names the queue)';
  END IF;
  -- The name is taken by this transaction (a concurrent execute of the same name waits for it here).
  INSERT INTO pgconvey.ddl_script (queue_id, script_name, checksum) VALUES (v_queue.queue_id, p_name, p_checksum)
  ON CONFLICT (queue_id, script_name) DO NOTHING;
  IF NOT FOUND THEN
    SELECT s.checksum INTO v_done FROM pgconvey.ddl_script s WHERE s.queue_id = v_queue.queue_id AND s.script_name = p_name;
    IF v_done = p_checksum THEN
      RETURN 'skipped';
    END IF;
    RAISE EXCEPTION 'a different script named "%" was executed on queue "%" (checksum % there, % now)', p_name, p_queue, left(v_done, 12), left(p_checksum, 12)
      USING ERRCODE = 'PX001', HINT = 'a script runs once per name: give a changed script a new file name';
  END IF;

  SELECT coalesce(jsonb_object_agg(c.table_id::text, jsonb_build_object(
           'rel', r.rel, 'sig', pgconvey.ddl_table_signature(r.rel), 'pk', to_jsonb(pgconvey.ddl_primary_key(r.rel)))), '{}')
    INTO v_before
    FROM pgconvey.captured_table c CROSS JOIN LATERAL (SELECT to_regclass(format('%I.%I', c.table_schema, c.table_name))::oid AS rel) r
   WHERE c.queue_id = v_queue.queue_id;

  PERFORM pg_catalog.set_config('search_path', p_search_path, true);
  EXECUTE p_sql;
  PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);

  FOR i IN 0..2 LOOP
    EXECUTE format('SELECT count(*) FROM %s WHERE ev_txid = $1', pgconvey.event_table(v_queue.queue_id, i)) INTO v_n USING v_txid;
    v_rows := v_rows + v_n;
  END LOOP;
  IF v_rows > 0 THEN
    RAISE EXCEPTION 'script "%" changes rows of tables that queue "%" replicates (% row event(s))', p_name, p_queue, v_rows
      USING ERRCODE = 'PX002', HINT = 'execute runs schema changes, which each subscriber runs too; make data changes with ordinary statements after it (they replicate as rows)';
  END IF;

  FOR t IN SELECT c.table_id, c.table_schema, c.table_name, c.key_columns, b.value AS before
             FROM pgconvey.captured_table c JOIN jsonb_each(v_before) b ON b.key = c.table_id::text
            WHERE c.queue_id = v_queue.queue_id ORDER BY c.table_id LOOP
    v_rel := to_regclass(format('%I.%I', t.table_schema, t.table_name))::oid;
    IF v_rel IS NULL OR v_rel IS DISTINCT FROM (t.before ->> 'rel')::oid THEN
      RAISE EXCEPTION 'script "%" drops or renames %.%, which queue "%" replicates', p_name, quote_ident(t.table_schema), quote_ident(t.table_name), p_queue
        USING ERRCODE = 'PX003', HINT = 'take the table out of the file''s selection and `pgconvey apply` first; then run the script';
    END IF;
    v_pk := pgconvey.ddl_primary_key(v_rel);
    IF EXISTS (SELECT FROM unnest(t.key_columns) k
                WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = v_rel AND a.attname = k AND a.attnum > 0 AND NOT a.attisdropped))
       OR (t.before -> 'pk' = to_jsonb(t.key_columns) AND v_pk IS DISTINCT FROM t.key_columns) THEN
      RAISE EXCEPTION 'script "%" changes the key (%) of %.%, which queue "%" replicates by it', p_name, array_to_string(t.key_columns, ', '),
                      quote_ident(t.table_schema), quote_ident(t.table_name), p_queue
        USING ERRCODE = 'PX004', HINT = 'a key change is not replicated in queue order: take the table out of the selection, change it on both servers, and add it back (it is copied again)';
    END IF;
    IF pgconvey.ddl_table_signature(v_rel) IS DISTINCT FROM t.before ->> 'sig' THEN
      -- Captured again: the new column list, names and types' output settings, from the next row on.
      PERFORM pgconvey.add_table(p_queue, t.table_schema, t.table_name, t.key_columns);
    END IF;
  END LOOP;

  EXECUTE format('INSERT INTO %s (ev_table, ev_op, ev_shape, ev_key, ev_data) VALUES (0, ''X'', 0, $1, $2)',
                 pgconvey.event_table(v_queue.queue_id, ((v_txid / v_queue.rotation_txids) % 3)::integer))
    USING jsonb_build_object('name', p_name, 'checksum', p_checksum, 'search_path', p_search_path)::text, p_sql;
  RETURN 'applied';
END $$;

-- Function: pgconvey.apply_script(queue, consumer, name, checksum, sql,
-- search_path, end_tick) → 'applied', or 'skipped' when this subscriber has
-- it already (applied, or marked applied by hand). A different script of the
-- same name here: PX006. Runs in the caller's (the batch's) transaction.
CREATE OR REPLACE FUNCTION pgconvey.apply_script(p_queue text, p_consumer text, p_name text, p_checksum text, p_sql text, p_search_path text, p_end_tick bigint)
RETURNS text LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
SET extra_float_digits = 3 SET bytea_output = 'hex' SET lc_monetary = 'C' AS $$
DECLARE
  v_done text;
BEGIN
  SELECT a.checksum INTO v_done FROM pgconvey.ddl_applied a WHERE a.queue_name = p_queue AND a.consumer_name = p_consumer AND a.script_name = p_name;
  IF FOUND THEN
    IF v_done = p_checksum THEN
      RETURN 'skipped';
    END IF;
    RAISE EXCEPTION 'a different script named "%" is recorded as applied on this subscriber (checksum % here, % in the queue)', p_name, left(v_done, 12), left(p_checksum, 12)
      USING ERRCODE = 'PX006', HINT = 'see docs/operations.md, "DDL with pgconvey execute"';
  END IF;
  PERFORM pg_catalog.set_config('search_path', p_search_path, true);
  EXECUTE p_sql;
  PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
  INSERT INTO pgconvey.ddl_applied (queue_name, consumer_name, script_name, checksum, end_tick) VALUES (p_queue, p_consumer, p_name, p_checksum, p_end_tick);
  RETURN 'applied';
END $$;

------------------------------------------------------------------------------
-- Cascades (migration 0011). A branch queue mirrors its provider's queue: the
-- same tick ids, batch boundaries and event ids. Only the branch's worker
-- writes it, in the transaction that applies the provider's batch.

------------------------------------------------------------------------------
-- Function: pgconvey.create_branch_queue(queue, consumer, provider_node) →
-- queue_id. Makes the queue on a branch whose subscription `consumer` to
-- `queue` exists here, starting at the subscription's position: its first tick
-- has the id of the last tick applied here (so the first batch the worker
-- re-queues starts at it). Idempotent; refuses when a root's queue of that
-- name is here. Locks the subscription row: a batch being applied finishes
-- first, and the next one sees the queue.
CREATE OR REPLACE FUNCTION pgconvey.create_branch_queue(p_queue text, p_consumer text, p_provider text)
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_id integer;
  v_branch text;
  v_pos bigint;
BEGIN
  SELECT completed_tick INTO v_pos FROM pgconvey.subscription
   WHERE queue_name = p_queue AND consumer_name = p_consumer FOR UPDATE;
  IF NOT FOUND OR v_pos IS NULL THEN
    RAISE EXCEPTION 'this database has no subscription "%" to queue "%": a branch subscribes to its provider first', p_consumer, p_queue;
  END IF;
  SELECT queue_id, branch_provider INTO v_id, v_branch FROM pgconvey.queue WHERE queue_name = p_queue;
  IF FOUND THEN
    IF v_branch IS NULL THEN
      RAISE EXCEPTION 'queue "%" on this database is a root''s queue, not a branch''s', p_queue
        USING HINT = 'a database is either the root of a queue or a branch of it';
    END IF;
    UPDATE pgconvey.queue SET branch_provider = p_provider WHERE queue_id = v_id AND branch_provider IS DISTINCT FROM p_provider;
    RETURN v_id;
  END IF;
  v_id := pgconvey.create_queue(p_queue);
  UPDATE pgconvey.queue SET branch_provider = p_provider, branch_consumer = p_consumer WHERE queue_id = v_id;
  -- The first tick: the branch's position; a real snapshot, so the worker's next transaction is after it.
  DELETE FROM pgconvey.tick WHERE queue_id = v_id;
  INSERT INTO pgconvey.tick (queue_id, tick_id, tick_event_seq) VALUES (v_id, v_pos, 0);
  RETURN v_id;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.branch_requeue_target(queue, start_tick) → the event
-- table this transaction re-queues into, or NULL when the queue here is not a
-- branch's (a leaf: nothing to re-queue). Called by the branch's worker in its
-- batch transaction; locks the queue row; the branch's last tick must be the
-- batch's start tick (else the branch and its provider are out of step).
CREATE OR REPLACE FUNCTION pgconvey.branch_requeue_target(p_queue text, p_start_tick bigint)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  q pgconvey.queue%ROWTYPE;
  v_last bigint;
BEGIN
  SELECT * INTO q FROM pgconvey.queue WHERE queue_name = p_queue AND branch_provider IS NOT NULL FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  SELECT max(tick_id) INTO v_last FROM pgconvey.tick WHERE queue_id = q.queue_id;
  IF v_last IS DISTINCT FROM p_start_tick THEN
    RAISE EXCEPTION 'the branch queue "%" is at tick %, the batch it re-queues starts at tick %', p_queue, v_last, p_start_tick
      USING ERRCODE = 'PCB01', HINT = 'the branch queue and the branch''s position went apart; re-create the branch (docs/operations.md, "Cascades")';
  END IF;
  RETURN pgconvey.event_table(q.queue_id, ((txid_current() / q.rotation_txids) % 3)::integer);
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.branch_tick(queue, tick_id, tick_time, event_seq) → the
-- tick id. The branch's tick of the batch it re-queued, in the same
-- transaction: the provider's tick id, time and event count. Its snapshot
-- says "every transaction up to this one is visible": only the branch's
-- worker writes the queue, one batch per transaction, so the branch batch
-- (previous tick, this tick] holds exactly the events this transaction
-- re-queued. (txid_current_snapshot() taken here does not see the
-- transaction itself, whose id is at or above the snapshot's xmax.)
CREATE OR REPLACE FUNCTION pgconvey.branch_tick(p_queue text, p_tick bigint, p_time timestamptz, p_event_seq bigint)
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_id integer;
  v_next bigint := txid_current() + 1;
BEGIN
  SELECT queue_id INTO v_id FROM pgconvey.queue WHERE queue_name = p_queue AND branch_provider IS NOT NULL;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'queue "%" is not a branch''s queue here', p_queue;
  END IF;
  INSERT INTO pgconvey.tick (queue_id, tick_id, tick_time, tick_snapshot, tick_event_seq)
  VALUES (v_id, p_tick, p_time, (v_next || ':' || v_next || ':')::txid_snapshot, p_event_seq);
  -- The event sequence follows the provider's (counts between ticks); never backwards.
  IF p_event_seq > coalesce(pgconvey.event_seq_value(v_id), 0) THEN
    PERFORM setval(format('pgconvey.%I', 'event_' || v_id || '_seq'), p_event_seq);
  END IF;
  PERFORM pg_notify('pgconvey_tick', v_id::text);
  RETURN p_tick;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.branch_mirror(queue, tables, shapes, sequences) → rows
-- changed. Brings the branch's captured_table, table_shape and
-- captured_sequence rows of the queue to the provider's (json arrays of the
-- provider's rows, with its ids): events name tables and shapes by the
-- provider's ids. An id used here by another queue is refused (a database that
-- is a branch and captures for another queue of its own must not share ids).
CREATE OR REPLACE FUNCTION pgconvey.branch_mirror(p_queue text, p_tables jsonb, p_shapes jsonb, p_sequences jsonb)
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_id integer;
  v_clash text;
  v_n integer := 0;
  v_c integer;
BEGIN
  SELECT queue_id INTO v_id FROM pgconvey.queue WHERE queue_name = p_queue AND branch_provider IS NOT NULL;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'queue "%" is not a branch''s queue here', p_queue;
  END IF;
  IF p_tables IS NOT NULL THEN
    SELECT format('table id %s (%s.%s)', c.table_id, c.table_schema, c.table_name) INTO v_clash
      FROM pgconvey.captured_table c JOIN jsonb_to_recordset(p_tables) AS t(table_id integer) USING (table_id)
     WHERE c.queue_id <> v_id LIMIT 1;
    IF v_clash IS NOT NULL THEN
      RAISE EXCEPTION 'the provider''s % is used here by another queue', v_clash USING ERRCODE = 'PCB02';
    END IF;
    DELETE FROM pgconvey.captured_table c WHERE c.queue_id = v_id
       AND NOT EXISTS (SELECT 1 FROM jsonb_to_recordset(p_tables) AS t(table_id integer, table_schema text, table_name text)
                        WHERE t.table_id = c.table_id AND t.table_schema = c.table_schema AND t.table_name = c.table_name);
    GET DIAGNOSTICS v_c = ROW_COUNT;
    v_n := v_n + v_c;
    INSERT INTO pgconvey.captured_table (table_id, queue_id, table_schema, table_name, key_columns, columns, shape_id)
    SELECT t.table_id, v_id, t.table_schema, t.table_name, t.key_columns, t.columns, t.shape_id
      FROM jsonb_to_recordset(p_tables) AS t(table_id integer, table_schema text, table_name text, key_columns text[], columns text[], shape_id integer)
    ON CONFLICT (table_id) DO UPDATE SET key_columns = EXCLUDED.key_columns, columns = EXCLUDED.columns, shape_id = EXCLUDED.shape_id
     WHERE (pgconvey.captured_table.key_columns, pgconvey.captured_table.columns, pgconvey.captured_table.shape_id)
           IS DISTINCT FROM (EXCLUDED.key_columns, EXCLUDED.columns, EXCLUDED.shape_id);
    GET DIAGNOSTICS v_c = ROW_COUNT;
    v_n := v_n + v_c;
    PERFORM setval(pg_get_serial_sequence('pgconvey.captured_table', 'table_id'), m)
       FROM (SELECT max(table_id) AS m FROM pgconvey.captured_table) x
      WHERE m > (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM pgconvey.captured_table_table_id_seq);
    PERFORM pgconvey.branch_guard(p_queue);
  END IF;
  IF p_shapes IS NOT NULL THEN
    SELECT format('shape id %s', s.shape_id) INTO v_clash
      FROM pgconvey.table_shape s JOIN jsonb_to_recordset(p_shapes) AS x(shape_id integer, table_id integer, attnums smallint[], columns text[], key_columns text[], generated text[]) USING (shape_id)
     WHERE (s.table_id, s.attnums, s.columns, s.key_columns, s.generated) IS DISTINCT FROM (x.table_id, x.attnums, x.columns, x.key_columns, x.generated) LIMIT 1;
    IF v_clash IS NOT NULL THEN
      RAISE EXCEPTION 'the provider''s % is used here for another row shape', v_clash USING ERRCODE = 'PCB02';
    END IF;
    INSERT INTO pgconvey.table_shape (shape_id, table_id, attnums, columns, key_columns, generated)
    SELECT x.shape_id, x.table_id, x.attnums, x.columns, x.key_columns, x.generated
      FROM jsonb_to_recordset(p_shapes) AS x(shape_id integer, table_id integer, attnums smallint[], columns text[], key_columns text[], generated text[])
    ON CONFLICT (shape_id) DO NOTHING;
    GET DIAGNOSTICS v_c = ROW_COUNT;
    v_n := v_n + v_c;
    PERFORM setval(pg_get_serial_sequence('pgconvey.table_shape', 'shape_id'), m)
       FROM (SELECT max(shape_id) AS m FROM pgconvey.table_shape) x
      WHERE m > (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM pgconvey.table_shape_shape_id_seq);
  END IF;
  IF p_sequences IS NOT NULL THEN
    DELETE FROM pgconvey.captured_sequence c WHERE c.queue_id = v_id
       AND NOT EXISTS (SELECT 1 FROM jsonb_to_recordset(p_sequences) AS s(seq_schema text, seq_name text)
                        WHERE s.seq_schema = c.seq_schema AND s.seq_name = c.seq_name);
    GET DIAGNOSTICS v_c = ROW_COUNT;
    v_n := v_n + v_c;
    INSERT INTO pgconvey.captured_sequence (queue_id, seq_schema, seq_name)
    SELECT v_id, s.seq_schema, s.seq_name FROM jsonb_to_recordset(p_sequences) AS s(seq_schema text, seq_name text)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_c = ROW_COUNT;
    v_n := v_n + v_c;
  END IF;
  RETURN v_n;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.branch_refuse() — the trigger pgconvey_branch_guard on a
-- branch's replicated tables: the application's writes there would not be
-- captured and would diverge from the root (Londiste refuses them too). The
-- branch's worker and copies write in replica mode, where it does not fire.
CREATE OR REPLACE FUNCTION pgconvey.branch_refuse()
RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION 'cannot execute % on %.%: this database is a pgconvey branch, which takes this table''s rows from the root',
                  TG_OP, quote_ident(TG_TABLE_SCHEMA), quote_ident(TG_TABLE_NAME)
    USING ERRCODE = 'read_only_sql_transaction', HINT = 'write on the root of the queue; its changes reach this node';
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.branch_guard(queue) → tables guarded now. Puts the
-- statement trigger pgconvey_branch_guard (BEFORE INSERT, UPDATE, DELETE,
-- TRUNCATE; fires for ordinary sessions only) on each table of the branch's
-- queue that exists here and lacks it.
CREATE OR REPLACE FUNCTION pgconvey.branch_guard(p_queue text)
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_rel regclass;
  v_n integer := 0;
BEGIN
  FOR v_rel IN SELECT to_regclass(format('%I.%I', c.table_schema, c.table_name))
                 FROM pgconvey.captured_table c JOIN pgconvey.queue q USING (queue_id)
                WHERE q.queue_name = p_queue AND q.branch_provider IS NOT NULL ORDER BY c.table_id LOOP
    CONTINUE WHEN v_rel IS NULL OR EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = v_rel AND t.tgname = 'pgconvey_branch_guard');
    EXECUTE format('CREATE TRIGGER pgconvey_branch_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s FOR EACH STATEMENT EXECUTE PROCEDURE pgconvey.branch_refuse()', v_rel);
    v_n := v_n + 1;
  END LOOP;
  RETURN v_n;
END $$;

------------------------------------------------------------------------------
-- Cascades: retention across the cascade (as pgq_node's `.<node>.watermark`).
-- Every consumer of a queue at tick P holds the events after P and the ticks
-- from P on (maint_rotate, maint_ticks). A branch's worker publishes to its
-- provider, as the consumer `watermark:<node>`, its local watermark: the
-- lowest position it and the nodes below it still need. So a provider keeps
-- what every node below it needs, and any of them can be moved to it
-- (change_provider) at its own position. A consumer may only be registered at
-- an older tick when the queue still holds what follows that tick: some
-- consumer is at or before it (register_at_position).

------------------------------------------------------------------------------
-- Function: pgconvey.local_watermark(queue) → the lowest tick this branch and
-- the nodes below it still need: its own completed tick and every consumer of
-- its queue (its subscribers, their watermarks, copy pins). NULL when the
-- queue here is not a branch's.
CREATE OR REPLACE FUNCTION pgconvey.local_watermark(p_queue text)
RETURNS bigint LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT least(s.completed_tick, (SELECT min(c.last_tick) FROM pgconvey.consumer c WHERE c.queue_id = q.queue_id))
    FROM pgconvey.queue q JOIN pgconvey.subscription s ON s.queue_name = q.queue_name AND s.consumer_name = q.branch_consumer
   WHERE q.queue_name = p_queue AND q.branch_provider IS NOT NULL
$$;

------------------------------------------------------------------------------
-- Function: pgconvey.retained_from(queue_id) → the oldest tick from which the
-- queue holds every event: the lowest consumer position (NULL: no consumer,
-- only what follows the latest tick). The caller holds the queue row lock.
CREATE OR REPLACE FUNCTION pgconvey.retained_from(p_queue_id integer)
RETURNS bigint LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT min(c.last_tick) FROM pgconvey.consumer c
    JOIN pgconvey.tick t ON t.queue_id = c.queue_id AND t.tick_id = c.last_tick
   WHERE c.queue_id = p_queue_id
$$;

------------------------------------------------------------------------------
-- Function: pgconvey.set_subscriber_watermark(queue, node, tick) → the
-- position the provider now holds for `node` (consumer `watermark:<node>`),
-- or NULL when it holds nothing (no tick of the queue at or after `tick`).
-- Never moves backwards. A new watermark starts at `tick` when the queue
-- still holds what follows it, else at the oldest tick from which it does.
CREATE OR REPLACE FUNCTION pgconvey.set_subscriber_watermark(p_queue text, p_node text, p_tick bigint)
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_id integer;
  v_name text := 'watermark:' || p_node;
  v_from bigint;
  v_tick bigint;
  v_pos bigint;
BEGIN
  SELECT queue_id INTO v_id FROM pgconvey.queue WHERE queue_name = p_queue FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'queue "%" does not exist', p_queue;
  END IF;
  SELECT last_tick INTO v_pos FROM pgconvey.consumer WHERE queue_id = v_id AND consumer_name = v_name;
  IF v_pos IS NOT NULL AND v_pos >= p_tick THEN
    RETURN v_pos;
  END IF;
  IF v_pos IS NULL THEN
    v_from := coalesce(pgconvey.retained_from(v_id), (SELECT max(tick_id) FROM pgconvey.tick WHERE queue_id = v_id));
  ELSE
    v_from := v_pos;
  END IF;
  SELECT min(tick_id) INTO v_tick FROM pgconvey.tick WHERE queue_id = v_id AND tick_id >= greatest(p_tick, v_from);
  IF v_tick IS NULL THEN
    RETURN v_pos;
  END IF;
  INSERT INTO pgconvey.consumer (queue_id, consumer_name, last_tick) VALUES (v_id, v_name, v_tick)
  ON CONFLICT (queue_id, consumer_name) DO UPDATE SET last_tick = EXCLUDED.last_tick, active_at = now();
  RETURN v_tick;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.register_consumer_at(queue, consumer, tick) → the
-- consumer's position. change_provider: registers a node moved here at its
-- own completed tick, which this queue must have with every event after it
-- (SQLSTATE PCB03 otherwise). A consumer already registered at that tick is
-- left as it is; one at another position is refused (PCB04).
CREATE OR REPLACE FUNCTION pgconvey.register_consumer_at(p_queue text, p_consumer text, p_tick bigint)
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_id integer;
  v_pos bigint;
  v_from bigint;
BEGIN
  SELECT queue_id INTO v_id FROM pgconvey.queue WHERE queue_name = p_queue FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'queue "%" does not exist', p_queue;
  END IF;
  SELECT last_tick INTO v_pos FROM pgconvey.consumer WHERE queue_id = v_id AND consumer_name = p_consumer;
  IF FOUND THEN
    IF v_pos = p_tick THEN
      RETURN v_pos;
    END IF;
    RAISE EXCEPTION 'consumer "%" is registered on queue "%" at tick %, not at tick %', p_consumer, p_queue, v_pos, p_tick
      USING ERRCODE = 'PCB04';
  END IF;
  v_from := pgconvey.retained_from(v_id);
  IF NOT EXISTS (SELECT 1 FROM pgconvey.tick WHERE queue_id = v_id AND tick_id = p_tick)
     OR (v_from IS NULL AND p_tick <> (SELECT max(tick_id) FROM pgconvey.tick WHERE queue_id = v_id))
     OR p_tick < v_from THEN
    RAISE EXCEPTION 'queue "%" here no longer holds tick % and every event after it (it keeps them from tick %)', p_queue, p_tick, coalesce(v_from::text, 'none')
      USING ERRCODE = 'PCB03';
  END IF;
  INSERT INTO pgconvey.consumer (queue_id, consumer_name, last_tick) VALUES (v_id, p_consumer, p_tick);
  RETURN p_tick;
END $$;

------------------------------------------------------------------------------
-- Switchover inside a cascade (engine/cascade-switchover.ts). A branch that
-- takes over writes becomes the root of its own queue (promote_branch_queue),
-- with the tick ids it had from its provider: the nodes below it keep
-- following. The old root's queue stops ticking at the hand-over
-- (freeze_queue: branch_provider names the new root, branch_consumer stays
-- NULL — a frozen root, not a branch), so no tick id of it is ever another
-- event range than the new root's. The way back: the new root's queue goes
-- back to being a branch of the old root at a junction tick J that both
-- queues take (demote_queue on the new root, thaw_queue on the old one).

------------------------------------------------------------------------------
-- Function: pgconvey.freeze_queue(queue, follows) → the queue's last tick,
-- which is the last one it has from now on (ticker() and force_tick() tick a
-- queue with a branch_provider no more). Idempotent; a branch's queue (or one
-- frozen for another node) is refused.
CREATE OR REPLACE FUNCTION pgconvey.freeze_queue(p_queue text, p_follows text)
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  q pgconvey.queue%ROWTYPE;
BEGIN
  SELECT * INTO q FROM pgconvey.queue WHERE queue_name = p_queue FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'queue "%" does not exist', p_queue;
  END IF;
  IF q.branch_consumer IS NOT NULL OR (q.branch_provider IS NOT NULL AND q.branch_provider <> p_follows) THEN
    RAISE EXCEPTION 'queue "%" here follows "%" already', p_queue, q.branch_provider USING ERRCODE = 'PCS01';
  END IF;
  UPDATE pgconvey.queue SET branch_provider = p_follows WHERE queue_id = q.queue_id AND branch_provider IS NULL;
  RETURN (SELECT max(tick_id) FROM pgconvey.tick WHERE queue_id = q.queue_id);
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.thaw_queue(queue, tick, consumer) → the queue's last
-- tick. A frozen queue (freeze_queue) ticks again: with p_tick NULL as it was
-- (a switchover undone before its hand-over); else first the junction tick
-- p_tick (above every tick here; the queue must hold no event after its last
-- tick), and the consumer p_consumer (the node that rejoins as a branch, and
-- its watermark) moves from the last tick to it. Idempotent.
CREATE OR REPLACE FUNCTION pgconvey.thaw_queue(p_queue text, p_tick bigint, p_consumer text)
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  q pgconvey.queue%ROWTYPE;
  v_last pgconvey.tick%ROWTYPE;
  v_pending boolean;
  v_pos bigint;
BEGIN
  SELECT * INTO q FROM pgconvey.queue WHERE queue_name = p_queue FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'queue "%" does not exist', p_queue;
  END IF;
  IF q.branch_provider IS NULL THEN
    IF p_tick IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pgconvey.tick WHERE queue_id = q.queue_id AND tick_id = p_tick) THEN
      RAISE EXCEPTION 'queue "%" here ticks already, without the junction tick %', p_queue, p_tick USING ERRCODE = 'PCS02';
    END IF;
    RETURN (SELECT max(tick_id) FROM pgconvey.tick WHERE queue_id = q.queue_id);
  END IF;
  IF q.branch_consumer IS NOT NULL THEN
    RAISE EXCEPTION 'queue "%" here is a branch''s, not a frozen root''s', p_queue USING ERRCODE = 'PCS01';
  END IF;
  IF p_tick IS NOT NULL THEN
    SELECT * INTO v_last FROM pgconvey.tick WHERE queue_id = q.queue_id ORDER BY tick_id DESC LIMIT 1;
    IF p_tick <= v_last.tick_id THEN
      RAISE EXCEPTION 'the junction tick % of queue "%" is not above its last tick %', p_tick, p_queue, v_last.tick_id USING ERRCODE = 'PCS02';
    END IF;
    -- Nothing was captured since the last tick (the node is fenced): the junction batch is empty.
    EXECUTE (SELECT 'SELECT ' || string_agg(format('EXISTS (SELECT 1 FROM %s e WHERE e.ev_txid >= pg_catalog.txid_snapshot_xmin($1) AND NOT pg_catalog.txid_visible_in_snapshot(e.ev_txid, $1))',
                                                   pgconvey.event_table(q.queue_id, n)), ' OR ')
               FROM generate_series(0, 2) n)
      INTO v_pending USING v_last.tick_snapshot;
    IF v_pending THEN
      RAISE EXCEPTION 'queue "%" holds events after its last tick %', p_queue, v_last.tick_id USING ERRCODE = 'PCS02';
    END IF;
    SELECT last_tick INTO v_pos FROM pgconvey.consumer WHERE queue_id = q.queue_id AND consumer_name = p_consumer AND batch_end_tick IS NULL;
    IF v_pos IS DISTINCT FROM v_last.tick_id THEN
      RAISE EXCEPTION 'consumer "%" of queue "%" is at tick % (or in a batch), not at the last tick %', p_consumer, p_queue, coalesce(v_pos::text, 'none'), v_last.tick_id
        USING ERRCODE = 'PCS02';
    END IF;
    INSERT INTO pgconvey.tick (queue_id, tick_id, tick_event_seq) VALUES (q.queue_id, p_tick, pgconvey.event_seq_value(q.queue_id));
    UPDATE pgconvey.consumer SET last_tick = p_tick
     WHERE queue_id = q.queue_id AND consumer_name IN (p_consumer, 'watermark:' || p_consumer) AND batch_end_tick IS NULL AND last_tick <= p_tick;
  END IF;
  UPDATE pgconvey.queue SET branch_provider = NULL WHERE queue_id = q.queue_id;
  PERFORM pg_notify('pgconvey_tick', q.queue_id::text);
  RETURN (SELECT max(tick_id) FROM pgconvey.tick WHERE queue_id = q.queue_id);
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.promote_branch_queue(queue, consumer) → tables now
-- captured. The branch's queue (its subscription `consumer`) becomes a root's:
-- it ticks here from its last tick on, its tables lose the branch guard and
-- are captured into it with their mirrored table ids. Its last tick must be
-- the subscription's position (everything applied here is re-queued).
-- Idempotent (a root's queue: 0). Run in the hand-over's transaction.
CREATE OR REPLACE FUNCTION pgconvey.promote_branch_queue(p_queue text, p_consumer text)
RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  q pgconvey.queue%ROWTYPE;
  v_pos bigint;
  v_last bigint;
  t record;
  v_n integer := 0;
BEGIN
  SELECT * INTO q FROM pgconvey.queue WHERE queue_name = p_queue FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'queue "%" does not exist', p_queue;
  END IF;
  IF q.branch_provider IS NULL THEN
    RETURN 0;
  END IF;
  IF q.branch_consumer IS DISTINCT FROM p_consumer THEN
    RAISE EXCEPTION 'queue "%" here is not the branch queue of subscription "%"', p_queue, p_consumer USING ERRCODE = 'PCS01';
  END IF;
  SELECT completed_tick INTO v_pos FROM pgconvey.subscription WHERE queue_name = p_queue AND consumer_name = p_consumer FOR UPDATE;
  SELECT max(tick_id) INTO v_last FROM pgconvey.tick WHERE queue_id = q.queue_id;
  IF v_pos IS DISTINCT FROM v_last THEN
    RAISE EXCEPTION 'the branch queue "%" is at tick %, its subscription at tick %', p_queue, v_last, v_pos USING ERRCODE = 'PCB01';
  END IF;
  UPDATE pgconvey.queue SET branch_provider = NULL, branch_consumer = NULL WHERE queue_id = q.queue_id;
  FOR t IN SELECT c.table_schema, c.table_name, c.key_columns, to_regclass(format('%I.%I', c.table_schema, c.table_name)) AS rel
             FROM pgconvey.captured_table c WHERE c.queue_id = q.queue_id ORDER BY c.table_id LOOP
    IF t.rel IS NOT NULL THEN
      EXECUTE format('DROP TRIGGER IF EXISTS pgconvey_branch_guard ON %s', t.rel);
    END IF;
    PERFORM pgconvey.add_table(p_queue, t.table_schema, t.table_name, t.key_columns);
    v_n := v_n + 1;
  END LOOP;
  RETURN v_n;
END $$;

------------------------------------------------------------------------------
-- Function: pgconvey.demote_queue(queue, provider, consumer) → the junction
-- tick J. The way back of promote_branch_queue: a last tick of the queue here
-- (J, taken now: the node is fenced, so it holds every event captured here),
-- its tables' capture triggers dropped and the branch guard put back, the queue
-- a branch of `provider` again, and the subscription `consumer` at J (the
-- provider takes tick J too: thaw_queue). Idempotent (a branch of `provider`
-- already: its last tick).
CREATE OR REPLACE FUNCTION pgconvey.demote_queue(p_queue text, p_provider text, p_consumer text)
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  q pgconvey.queue%ROWTYPE;
  v_tick bigint;
  v_trigger record;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'pgconvey ticks must be taken in a READ COMMITTED transaction';
  END IF;
  SELECT * INTO q FROM pgconvey.queue WHERE queue_name = p_queue FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'queue "%" does not exist', p_queue;
  END IF;
  IF q.branch_provider IS NOT NULL THEN
    IF q.branch_provider = p_provider AND q.branch_consumer = p_consumer THEN
      RETURN (SELECT max(tick_id) FROM pgconvey.tick WHERE queue_id = q.queue_id);
    END IF;
    RAISE EXCEPTION 'queue "%" here follows "%" already', p_queue, q.branch_provider USING ERRCODE = 'PCS01';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pgconvey.subscription WHERE queue_name = p_queue AND consumer_name = p_consumer) THEN
    RAISE EXCEPTION 'this database has no subscription "%" to queue "%"', p_consumer, p_queue;
  END IF;
  v_tick := pgconvey.insert_tick(q.queue_id);
  FOR v_trigger IN SELECT t.tgrelid::regclass AS rel, t.tgname FROM pg_trigger t
                    WHERE NOT t.tgisinternal AND t.tgfoid IN (
                          SELECT p.oid FROM pg_proc p JOIN pgconvey.captured_table c
                              ON p.proname IN ('capture_' || c.table_id, 'capture_truncate_' || c.table_id, 'capture_truncate_rows_' || c.table_id)
                           WHERE p.pronamespace = 'pgconvey'::regnamespace AND c.queue_id = q.queue_id) LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', v_trigger.tgname, v_trigger.rel);
  END LOOP;
  UPDATE pgconvey.queue SET branch_provider = p_provider, branch_consumer = p_consumer WHERE queue_id = q.queue_id;
  PERFORM pgconvey.branch_guard(p_queue);
  UPDATE pgconvey.subscription SET completed_tick = v_tick WHERE queue_name = p_queue AND consumer_name = p_consumer;
  RETURN v_tick;
END $$;

-- add_table_unowned and what it calls plan their catalog queries once (PG 12+): with the default
-- plan_cache_mode each query with a parameter (the table's oid) was planned anew at every call, the
-- generic plan never chosen (about 1 ms of each add_table). plan_cache_mode does not exist before PG 12.
DO $$
BEGIN
  IF current_setting('server_version_num')::integer >= 120000 THEN
    ALTER FUNCTION pgconvey.add_table_unowned(text, text, text, text[]) SET plan_cache_mode = force_generic_plan;
  END IF;
END $$;

-- Every queue's reading functions, made again by every install or upgrade (queue_readers): queues made by
-- an engine before them get theirs, and a change of the statements reaches every queue.
DO $$
DECLARE
  v_id integer;
BEGIN
  FOR v_id IN SELECT queue_id FROM pgconvey.queue LOOP
    PERFORM pgconvey.queue_readers(v_id);
  END LOOP;
END $$;
