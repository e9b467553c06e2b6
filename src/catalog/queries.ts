/**
 * The catalog queries, named, each with one line saying what it reads. All
 * are schema-qualified, read-only and ordered, and skip system schemas and
 * pgconvey's own. The engine's tables are read by the engine's own calls
 * (src/engine: queue-state, subscription-state, engine-version).
 */

/** Server version, database (with what identifies it: its oid and the cluster's system identifier, when readable) and the connecting role's rights that matter. */
export const SERVER_SQL = `
  SELECT current_setting('server_version_num')::int AS version_num,
         current_setting('server_version') AS version,
         current_database() AS database,
         current_user AS "user",
         r.rolsuper AS superuser,
         pg_catalog.has_database_privilege(current_database(), 'CREATE') AS can_create_schema,
         r.rolsuper OR r.rolcreaterole AS can_create_role,
         (SELECT 'pgconvey_capture_' || d.oid::text FROM pg_catalog.pg_database d WHERE d.datname = current_database()) AS capture_role,
         EXISTS (SELECT FROM pg_catalog.pg_roles c, pg_catalog.pg_database d
                  WHERE d.datname = current_database() AND c.rolname = 'pgconvey_capture_' || d.oid::text) AS capture_role_exists,
         (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = current_database()) AS database_oid,
         CASE WHEN pg_catalog.has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')
              THEN (SELECT s.system_identifier::text FROM pg_catalog.pg_control_system() s) END AS system_identifier
    FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`;

/** Whether the role may SET session_replication_role: superuser, or GRANT SET (PG 15+). */
export const CAN_SET_REPLICA_ROLE_SQL_15 = `
  SELECT r.rolsuper OR pg_catalog.has_parameter_privilege('session_replication_role', 'SET') AS ok
    FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`;

/** The database's owner, and whether the connecting role has its rights (ALTER DATABASE) and may end other roles' sessions. */
export const DATABASE_RIGHTS_SQL = `
  SELECT pg_catalog.pg_get_userbyid(d.datdba) AS owner, pg_catalog.pg_has_role(d.datdba, 'USAGE') AS can_alter,
         pg_catalog.pg_has_role('pg_signal_backend', 'USAGE') AS can_signal
    FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()`;

/** Roles (not pg_*, not the connecting one) the connecting role is a member of: with their rights (USAGE), and may it SET ROLE to them (PG 16+: the SET option). */
export const MEMBERSHIPS_SQL = (setOption: boolean) => `
  SELECT r.rolname AS name, pg_catalog.pg_has_role(r.oid, 'USAGE') AS usage, pg_catalog.pg_has_role(r.oid, '${setOption ? 'SET' : 'MEMBER'}') AS set
    FROM pg_catalog.pg_roles r
   WHERE r.rolname NOT LIKE 'pg\\_%' AND r.rolname <> current_user AND pg_catalog.pg_has_role(r.oid, 'MEMBER')
   ORDER BY 1`;

/** The connecting role's rights on every table and sequence of user schemas. */
export const RELATION_RIGHTS_SQL = `
  SELECT n.nspname AS schema, c.relname AS name, c.relkind AS kind, pg_catalog.pg_has_role(c.relowner, 'USAGE') AS owner,
         pg_catalog.has_table_privilege(c.oid, 'SELECT') AS select,
         c.relkind <> 'S' AND pg_catalog.has_table_privilege(c.oid, 'INSERT') AS insert,
         pg_catalog.has_table_privilege(c.oid, 'UPDATE') AS update,
         c.relkind <> 'S' AND pg_catalog.has_table_privilege(c.oid, 'DELETE') AS delete,
         c.relkind <> 'S' AND pg_catalog.has_table_privilege(c.oid, 'TRUNCATE') AS truncate,
         c.relkind <> 'S' AND pg_catalog.has_table_privilege(c.oid, 'TRIGGER') AS trigger
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p', 'S') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgconvey') AND n.nspname NOT LIKE 'pg\\_%'
   ORDER BY 1, 2`;

/** User schemas: owner, the connecting role's USAGE and CREATE, and who else may create in them. */
export const SCHEMAS_SQL = `
  SELECT n.nspname AS name, pg_catalog.pg_get_userbyid(n.nspowner) AS owner,
         pg_catalog.has_schema_privilege(n.oid, 'USAGE') AS usage, pg_catalog.has_schema_privilege(n.oid, 'CREATE') AS create,
         EXISTS (SELECT 1 FROM pg_catalog.aclexplode(coalesce(n.nspacl, pg_catalog.acldefault('n', n.nspowner))) a
                  WHERE a.grantee = 0 AND a.privilege_type = 'CREATE') AS create_for_all,
         array(SELECT r.rolname::text FROM pg_catalog.pg_roles r
                WHERE r.rolname NOT LIKE 'pg\\_%' AND pg_catalog.has_schema_privilege(r.oid, n.oid, 'CREATE') ORDER BY 1) AS create_by
    FROM pg_catalog.pg_namespace n
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgconvey') AND n.nspname NOT LIKE 'pg\\_%'
   ORDER BY 1`;

/**
 * Ordinary and partitioned tables of user schemas, with owner, size estimate (a partitioned table's: the
 * sum over its partitions at every level), the parent it is a partition of, and the tables it inherits
 * from (INHERITS, not partitioning) — each name as a JSON {schema, name}, never joined into one string.
 */
export const TABLES_SQL = `
  WITH RECURSIVE tree(root, rel) AS (
    SELECT c.oid, c.oid FROM pg_catalog.pg_class c WHERE c.relkind = 'p'
    UNION ALL SELECT t.root, i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree t ON i.inhparent = t.rel)
  SELECT n.nspname AS schema, c.relname AS name, c.relkind AS kind, pg_catalog.pg_get_userbyid(c.relowner) AS owner,
         CASE WHEN c.relkind = 'p' THEN (SELECT coalesce(sum(greatest(x.reltuples, 0)), 0)::bigint FROM tree t JOIN pg_catalog.pg_class x ON x.oid = t.rel WHERE t.root = c.oid AND x.relkind = 'r')
              WHEN c.reltuples < 0 THEN NULL ELSE c.reltuples::bigint END AS estimated_rows,
         CASE WHEN c.relkind = 'p' THEN (SELECT coalesce(sum(pg_catalog.pg_relation_size(t.rel)), 0) FROM tree t WHERE t.root = c.oid)
              ELSE pg_catalog.pg_relation_size(c.oid) END AS bytes,
         (SELECT pg_catalog.json_build_object('schema', pn.nspname, 'name', pc.relname) FROM pg_catalog.pg_inherits i
            JOIN pg_catalog.pg_class pc ON pc.oid = i.inhparent JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
           WHERE i.inhrelid = c.oid AND c.relispartition LIMIT 1) AS partition_of,
         (SELECT pg_catalog.json_agg(pg_catalog.json_build_object('schema', pn.nspname, 'name', pc.relname) ORDER BY i.inhseqno) FROM pg_catalog.pg_inherits i
                 JOIN pg_catalog.pg_class pc ON pc.oid = i.inhparent JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
                WHERE i.inhrelid = c.oid AND NOT c.relispartition) AS inherits
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgconvey') AND n.nspname NOT LIKE 'pg\\_%'
   ORDER BY 1, 2`;

/** Columns of those tables, in column order (generated: from PG 12). */
export const COLUMNS_SQL = (generated: boolean) => `
  SELECT n.nspname AS schema, c.relname AS table, a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
         a.attnotnull AS not_null, ${generated ? 'a.attgenerated::text' : "''"} AS generated, a.atthasdef AS has_default, a.attidentity::text AS identity
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

/** User triggers of those tables, with the function of pgconvey's own (a partition's tell which captured table they belong to). */
export const TRIGGERS_SQL = `
  SELECT n.nspname AS schema, c.relname AS table, t.tgname AS name, t.tgenabled::text AS enabled,
         CASE WHEN t.tgname LIKE 'pgconvey\_%' THEN (SELECT p.proname::text FROM pg_catalog.pg_proc p WHERE p.oid = t.tgfoid) END AS function
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
                WHERE m.member = r.oid AND g.rolname !~ '^pgconvey_capture_[0-9]+$' ORDER BY 1) AS member_of
    FROM pg_catalog.pg_roles r WHERE r.rolname NOT LIKE 'pg\\_%' AND r.rolname !~ '^pgconvey_capture_[0-9]+$'
   ORDER BY 1`;
