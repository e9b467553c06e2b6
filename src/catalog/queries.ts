/**
 * The catalog queries, named, each with one line saying what it reads. All
 * are schema-qualified, read-only and ordered, and skip system schemas and
 * pgconvey's own.
 */

/** Server version, database (with what identifies it: its oid and the cluster's system identifier, when readable) and the connecting role's rights that matter. */
export const SERVER_SQL = `
  SELECT current_setting('server_version_num')::int AS version_num,
         current_setting('server_version') AS version,
         current_database() AS database,
         current_user AS "user",
         r.rolsuper AS superuser,
         pg_catalog.has_database_privilege(current_database(), 'CREATE') AS can_create_schema,
         (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = current_database()) AS database_oid,
         CASE WHEN pg_catalog.has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')
              THEN (SELECT s.system_identifier::text FROM pg_catalog.pg_control_system() s) END AS system_identifier
    FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`;

/** Whether the role may SET session_replication_role: superuser, or GRANT SET (PG 15+). */
export const CAN_SET_REPLICA_ROLE_SQL_15 = `
  SELECT r.rolsuper OR pg_catalog.has_parameter_privilege('session_replication_role', 'SET') AS ok
    FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`;

/** Ordinary and partitioned tables of user schemas, with owner, size estimate and parent. */
export const TABLES_SQL = `
  SELECT n.nspname AS schema, c.relname AS name, c.relkind AS kind, pg_catalog.pg_get_userbyid(c.relowner) AS owner,
         CASE WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END AS estimated_rows,
         pg_catalog.pg_relation_size(c.oid) AS bytes,
         (SELECT pn.nspname || '.' || pc.relname FROM pg_catalog.pg_inherits i
            JOIN pg_catalog.pg_class pc ON pc.oid = i.inhparent JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
           WHERE i.inhrelid = c.oid AND c.relispartition LIMIT 1) AS partition_of
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgconvey') AND n.nspname NOT LIKE 'pg\\_%'
   ORDER BY 1, 2`;

/** Columns of those tables, in column order (generated: from PG 12). */
export const COLUMNS_SQL = (generated: boolean) => `
  SELECT n.nspname AS schema, c.relname AS table, a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
         a.attnotnull AS not_null, ${generated ? 'a.attgenerated::text' : "''"} AS generated, a.atthasdef AS has_default
    FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
     AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgconvey') AND n.nspname NOT LIKE 'pg\\_%'
   ORDER BY 1, 2, a.attnum`;

/** Primary keys and unique indexes (not partial, plain columns) with their columns in index order, and whether they are checked immediately (not DEFERRABLE). */
export const KEYS_SQL = `
  SELECT n.nspname AS schema, c.relname AS table, x.indisprimary AS primary, x.indimmediate AS immediate,
         array(SELECT a.attname::text FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum ORDER BY k.ord) AS columns,
         bool_and(a2.attnotnull) AS all_not_null
    FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class c ON c.oid = x.indrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_catalog.pg_attribute a2 ON a2.attrelid = x.indrelid AND a2.attnum = ANY (x.indkey)
   WHERE x.indisunique AND x.indpred IS NULL AND x.indexprs IS NULL
     AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgconvey') AND n.nspname NOT LIKE 'pg\\_%'
   GROUP BY n.nspname, c.relname, x.indexrelid, x.indisprimary, x.indimmediate, x.indkey, x.indrelid
   ORDER BY 1, 2, 3 DESC, 4`;

/** User triggers of those tables. */
export const TRIGGERS_SQL = `
  SELECT n.nspname AS schema, c.relname AS table, t.tgname AS name, t.tgenabled::text AS enabled
    FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE NOT t.tgisinternal AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgconvey') AND n.nspname NOT LIKE 'pg\\_%'
   ORDER BY 1, 2, 3`;

/** Materialized views of user schemas (not replicated: plan lists them, switchover refreshes them). */
export const MATVIEWS_SQL = `
  SELECT n.nspname AS schema, c.relname AS name
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind = 'm' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgconvey') AND n.nspname NOT LIKE 'pg\\_%'
   ORDER BY 1, 2`;

/** Sequences of user schemas. */
export const SEQUENCES_SQL = `
  SELECT n.nspname AS schema, c.relname AS name, pg_catalog.pg_get_userbyid(c.relowner) AS owner
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgconvey') AND n.nspname NOT LIKE 'pg\\_%'
   ORDER BY 1, 2`;

/** Roles other than the built-in pg_* ones, with their memberships. */
export const ROLES_SQL = `
  SELECT r.rolname AS name, r.rolcanlogin AS can_login, r.rolsuper AS superuser,
         r.rolinherit AS inherit, r.rolcreaterole AS create_role, r.rolcreatedb AS create_db,
         r.rolreplication AS replication, r.rolbypassrls AS bypass_rls, r.rolconnlimit AS connection_limit,
         array(SELECT g.rolname::text FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
                WHERE m.member = r.oid ORDER BY 1) AS member_of
    FROM pg_catalog.pg_roles r WHERE r.rolname NOT LIKE 'pg\\_%'
   ORDER BY 1`;

/** Whether the engine is installed, and its version: migration number and content (read through to_jsonb: engines installed before the content column lack it). */
export const ENGINE_PRESENT_SQL = `SELECT to_regclass('pgconvey.engine') IS NOT NULL AS present`;
export const ENGINE_VERSION_SQL = `SELECT e.version, pg_catalog.to_jsonb(e) OPERATOR(pg_catalog.->>) 'content' AS content FROM pgconvey.engine e`;

/** Queues with their latest tick. */
export const ENGINE_QUEUES_SQL = `
  SELECT q.queue_id, q.queue_name AS name, (SELECT max(t.tick_id) FROM pgconvey.tick t WHERE t.queue_id = q.queue_id)::text AS last_tick,
         q.ticker_max_count, (extract(epoch FROM q.ticker_max_lag) * 1000)::bigint AS ticker_max_lag_ms,
         (extract(epoch FROM q.ticker_idle_period) * 1000)::bigint AS ticker_idle_period_ms, q.rotation_txids,
         (extract(epoch FROM q.tick_retention) * 1000)::bigint AS tick_retention_ms
    FROM pgconvey.queue q ORDER BY 2`;

/** Consumers of every queue. */
export const ENGINE_CONSUMERS_SQL = `SELECT queue_id, consumer_name AS name, last_tick::text AS last_tick FROM pgconvey.consumer ORDER BY 1, 2`;

/** Captured tables of every queue. */
export const ENGINE_TABLES_SQL = `SELECT queue_id, table_schema AS schema, table_name AS name, key_columns, columns FROM pgconvey.captured_table ORDER BY 1, 2, 3`;

/** Sequences every queue carries (from engine version 3). */
export const ENGINE_SEQUENCES_SQL = `SELECT queue_id, seq_schema AS schema, seq_name AS name FROM pgconvey.captured_sequence ORDER BY 1, 2, 3`;

/** Subscriptions held in this database (as a subscriber), and their tables. */
export const ENGINE_SUBSCRIPTIONS_SQL = `SELECT queue_name AS queue, consumer_name AS consumer, completed_tick::text AS completed_tick FROM pgconvey.subscription ORDER BY 1, 2`;
/** Subscriber tables with the copy each state belongs to (copy_pin, copy_generation: engine version 7; NULL before). */
export const ENGINE_SUBSCRIBER_TABLES_SQL = `SELECT queue_name AS queue, consumer_name AS consumer, table_schema AS schema, table_name AS name, state,
         to_jsonb(t) ->> 'copy_pin' AS copy_pin, to_jsonb(t) ->> 'copy_generation' AS copy_generation
    FROM pgconvey.subscriber_table t ORDER BY 1, 2, 3, 4`;
