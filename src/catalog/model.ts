/**
 * What the catalog of one node holds, as plain JSON-serialisable data: the
 * planner's view of a database. Names are unquoted (as in pg_catalog); lists
 * are sorted, so two snapshots of the same catalog are equal. A table's
 * state in a subscription is the engine's TableState (a type, nothing more is
 * taken from the engine).
 */
import type { TableState } from '../engine/table-state.js';
import type { QualifiedName } from '../kernel/index.js';

export interface ColumnInfo {
  name: string;
  /** format_type() with the modifier, e.g. `character varying(20)`. */
  type: string;
  notNull: boolean;
  /** 's' for a stored generated column (PG 12+), '' otherwise. */
  generated: string;
  hasDefault: boolean;
  /** 'a' GENERATED ALWAYS AS IDENTITY, 'd' BY DEFAULT; absent (or '') when not an identity column. */
  identity?: string;
}

export interface TableInfo {
  schema: string;
  name: string;
  /** 'r' ordinary, 'p' partitioned. */
  kind: 'r' | 'p';
  /** A partition of another table: its parent, else null. */
  partitionOf: QualifiedName | null;
  /** The tables it inherits from with INHERITS (not partitioning), in order; absent when none. */
  inherits?: QualifiedName[];
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
  /** Per pgconvey trigger (`pgconvey_*`) the name of the function it calls, e.g. `capture_truncate_7`; absent when none. */
  triggerFunctions?: Record<string, string>;
  /** What the connecting role may do with the table (absent in catalogs read before pgconvey read it: taken as everything). */
  access?: TableAccess;
}

/** The connecting role's rights on one table or sequence (has_table_privilege / has_sequence_privilege, pg_has_role). */
export interface TableAccess {
  /** It has the owner's rights (it is the owner, an inheriting member of it, or a superuser): DROP TRIGGER, ALTER TABLE need that. */
  owner: boolean;
  select: boolean;
  /** For a sequence: UPDATE (setval); the rest are false. */
  insert: boolean;
  update: boolean;
  delete: boolean;
  truncate: boolean;
  trigger: boolean;
}

/** A schema of the database, and who may create objects in it. */
export interface SchemaInfo {
  name: string;
  owner: string;
  /** The connecting role may use it / create in it. */
  usage: boolean;
  create: boolean;
  /** Everyone (PUBLIC) may create in it (the default of `public` before PostgreSQL 15). */
  createForAll: boolean;
  /** Other roles (not pg_*) that may create in it, when not everyone may; sorted. */
  createBy: string[];
}

export interface SequenceInfo {
  schema: string;
  name: string;
  owner: string;
  /** The connecting role's rights on it (select; update for setval; owner). */
  access?: TableAccess;
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
  /** May set session_replication_role (superuser before PG 15; GRANT SET from 15; tried, so a service that patches this in is seen). */
  canSetReplicationRole: boolean;
  /** May create roles (superuser or CREATEROLE): the engine then makes its capture role itself. */
  canCreateRole?: boolean;
  /** This database's capture role (`pgconvey_capture_<database oid>`, the owner of the capture functions) and whether it exists. */
  captureRole?: { name: string; exists: boolean };
  /** Has the database owner's rights (ALTER DATABASE … SET, which fencing a switchover needs); absent: not read, taken as yes. */
  canAlterDatabase?: boolean;
  /** The database's owner. */
  databaseOwner?: string;
  /** May end other roles' sessions (superuser, or a member of pg_signal_backend); absent: taken as yes. */
  canSignalBackends?: boolean;
  /** Roles (not pg_*) whose rights it has through inheriting membership (pg_has_role USAGE); sorted; empty for a superuser (it has all). */
  actsAs?: string[];
  /** Roles it may SET ROLE to (PG 16+: membership WITH SET; before: any membership), e.g. to ALTER … OWNER TO them; sorted; empty for a superuser. */
  canBecome?: string[];
}

export interface EngineQueueSettings {
  tickerMaxCount: number;
  tickerMaxLagMs: number;
  tickerIdlePeriodMs: number;
  tickerMinIntervalMs: number;
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
  /** A branch's queue (cascades): the provider node it follows; absent or null on a root's queue. */
  branchProvider?: string | null;
  consumers: Array<{ name: string; lastTick: string }>;
  /** id: captured_table.table_id, which names its capture functions (`capture_<id>`). */
  tables: Array<{ schema: string; name: string; keyColumns: string[]; columns: string[]; id?: number }>;
  sequences: Array<{ schema: string; name: string }>;
}

export interface EngineSubscriptionInfo {
  queue: string;
  consumer: string;
  completedTick: string | null;
  /** copyPin/copyGeneration: the copy the table's state belongs to (null before engine version 7). */
  tables: Array<{ schema: string; name: string; state: TableState; copyPin: string | null; copyGeneration: string | null }>;
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
  /** User schemas (absent in catalogs read before pgconvey read them). */
  schemas?: SchemaInfo[];
  /** Materialized views (absent in catalogs saved before pgconvey read them). */
  materializedViews?: Array<{ schema: string; name: string }>;
  roles: RoleInfo[];
  /** Null when the engine is not installed. */
  engine: EngineInfo | null;
}
