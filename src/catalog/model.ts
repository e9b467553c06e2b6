/**
 * What the catalog of one node holds, as plain JSON-serialisable data: the
 * planner's view of a database. Names are unquoted (as in pg_catalog); lists
 * are sorted, so two snapshots of the same catalog are equal.
 */

export interface ColumnInfo {
  name: string;
  /** format_type() with the modifier, e.g. `character varying(20)`. */
  type: string;
  notNull: boolean;
  /** 's' for a stored generated column (PG 12+), '' otherwise. */
  generated: string;
  hasDefault: boolean;
}

export interface TableInfo {
  schema: string;
  name: string;
  /** 'r' ordinary, 'p' partitioned. */
  kind: 'r' | 'p';
  /** A partition of another table: its parent `schema.name`, else null. */
  partitionOf: string | null;
  owner: string;
  columns: ColumnInfo[];
  /** Primary key columns in key order; empty when there is none. */
  primaryKey: string[];
  /** Other unique indexes whose columns are all NOT NULL (candidate keys), each in index order. */
  uniqueNotNull: string[][];
  /** A DEFERRABLE primary key's columns (not used as the key: see table_key_deferrable); absent when none. */
  deferrablePrimaryKey?: string[];
  /** Columns of every DEFERRABLE unique index (primary key included); absent when none. */
  deferrableUnique?: string[][];
  /** Estimated rows (pg_class.reltuples, -1 unknown → null). */
  estimatedRows: number | null;
  bytes: number;
  /** Names of user triggers (not internal), pgconvey's included. */
  triggers: string[];
  /** Per trigger name its `pg_trigger.tgenabled`: 'O' fires in ordinary sessions, 'D' disabled, 'R' only in replica mode, 'A' always. */
  triggerModes?: Record<string, string>;
}

export interface SequenceInfo {
  schema: string;
  name: string;
  owner: string;
}

export interface RoleInfo {
  name: string;
  canLogin: boolean;
  superuser: boolean;
  /** The rest of what CREATE ROLE sets (passwords are not read: only a superuser may). */
  attributes: { inherit: boolean; createRole: boolean; createDb: boolean; replication: boolean; bypassRls: boolean; connectionLimit: number };
  /** Roles this role is a member of. */
  memberOf: string[];
}

export interface PrivilegeInfo {
  /** The connecting role. */
  user: string;
  superuser: boolean;
  /** May create schemas in the database (needed to install the engine). */
  canCreateSchema: boolean;
  /** May set session_replication_role (superuser before PG 15; GRANT SET from 15). */
  canSetReplicationRole: boolean;
}

export interface EngineQueueSettings {
  tickerMaxCount: number;
  tickerMaxLagMs: number;
  tickerIdlePeriodMs: number;
  rotationTxids: number;
  tickRetentionMs: number;
}

export interface EngineQueueInfo {
  name: string;
  /** pgconvey.queue.queue_id: the capture triggers are named after it (`pgconvey_capture_<id>`, `pgconvey_truncate_<id>`). */
  id?: number;
  lastTick: string;
  /** The ticker and rotation settings stored in the queue. */
  settings: EngineQueueSettings;
  consumers: Array<{ name: string; lastTick: string }>;
  tables: Array<{ schema: string; name: string; keyColumns: string[]; columns: string[] }>;
  sequences: Array<{ schema: string; name: string }>;
}

export interface EngineSubscriptionInfo {
  queue: string;
  consumer: string;
  completedTick: string | null;
  /** copyPin/copyGeneration: the copy the table's state belongs to (null before engine version 7). */
  tables: Array<{ schema: string; name: string; state: string; copyPin: string | null; copyGeneration: string | null }>;
}

export interface EngineInfo {
  /** The installed engine's newest migration. */
  version: number;
  /** Its content version (sha256 of the engine SQL that installed it); null when not recorded (installed before pgconvey recorded it). */
  content: string | null;
  queues: EngineQueueInfo[];
  subscriptions: EngineSubscriptionInfo[];
}

export interface NodeCatalog {
  /** e.g. 170010 */
  serverVersionNum: number;
  serverVersion: string;
  database: string;
  /** What tells this database apart from another of the same name: a saved plan is only applied where it was made. */
  identity: { databaseOid: number; systemIdentifier: string | null };
  privileges: PrivilegeInfo;
  tables: TableInfo[];
  sequences: SequenceInfo[];
  /** Materialized views (absent in catalogs saved before pgconvey read them). */
  materializedViews?: Array<{ schema: string; name: string }>;
  roles: RoleInfo[];
  /** Null when the engine is not installed. */
  engine: EngineInfo | null;
}
