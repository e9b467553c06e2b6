/**
 * Reads one node's catalog in a single REPEATABLE READ, READ ONLY
 * transaction, so every part comes from the same snapshot. Nothing is
 * written; the caller owns the connection. The engine's own state is read
 * through the engine's typed calls (engine/queue-state.ts,
 * engine/subscription-state.ts, engine/engine-version.ts).
 */
import type pg from 'pg';
import type { ColumnInfo, EngineInfo, NodeCatalog, PrivilegeInfo, SchemaInfo, TableAccess, TableInfo } from './model.js';
import * as Q from './queries.js';
import { qualifiedName } from '../kernel/index.js';
import { readCapturedSequences, readCapturedTables, readConsumers, readEngineVersion, readQueues, readSubscriberTables, readSubscriptions } from '../engine/index.js';

export async function introspectNode(client: pg.Client): Promise<NodeCatalog> {
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    const catalog = await read(client);
    await client.query('COMMIT');
    return catalog;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

async function read(client: pg.Client): Promise<NodeCatalog> {
  const server = (await client.query(Q.SERVER_SQL)).rows[0];
  const versionNum = Number(server.version_num);
  const canSetReplicationRole = Boolean(server.superuser) || (await trySetReplicaRole(client, versionNum));

  const tableKey = (schema: string, name: string) => `${schema}\u0000${name}`;
  const tables = new Map<string, TableInfo>();
  for (const r of (await client.query(Q.TABLES_SQL)).rows) {
    tables.set(tableKey(r.schema, r.name), {
      schema: r.schema,
      name: r.name,
      kind: r.kind,
      partitionOf: r.partition_of ? qualifiedName(r.partition_of.schema, r.partition_of.name) : null,
      owner: r.owner,
      columns: [],
      primaryKey: [],
      uniqueNotNull: [],
      estimatedRows: r.estimated_rows === null ? null : Number(r.estimated_rows),
      bytes: Number(r.bytes),
      triggers: [],
      ...(r.inherits?.length ? { inherits: (r.inherits as Array<{ schema: string; name: string }>).map((p) => qualifiedName(p.schema, p.name)) } : {}),
    });
  }
  for (const r of (await client.query(Q.COLUMNS_SQL(versionNum >= 120000))).rows) {
    const column: ColumnInfo = { name: r.name, type: r.type, notNull: r.not_null, generated: r.generated, hasDefault: r.has_default, ...(r.identity ? { identity: r.identity } : {}) };
    tables.get(tableKey(r.schema, r.table))?.columns.push(column);
  }
  for (const r of (await client.query(Q.KEYS_SQL)).rows) {
    const t = tables.get(tableKey(r.schema, r.table));
    if (!t) continue;
    if (!r.immediate) {
      if (r.primary) t.deferrablePrimaryKey = r.columns;
      (t.deferrableUnique ??= []).push(r.columns);
    } else if (r.primary) t.primaryKey = r.columns;
    else if (r.all_not_null) t.uniqueNotNull.push(r.columns);
  }
  const rights = new Map<string, TableAccess>();
  for (const r of (await client.query(Q.RELATION_RIGHTS_SQL)).rows) {
    rights.set(tableKey(r.schema, r.name), { owner: r.owner, select: r.select, insert: r.insert, update: r.update, delete: r.delete, truncate: r.truncate, trigger: r.trigger });
  }
  for (const [key, t] of tables) t.access = rights.get(key);
  for (const r of (await client.query(Q.TRIGGERS_SQL)).rows) {
    const t = tables.get(tableKey(r.schema, r.table));
    if (!t) continue;
    t.triggers.push(r.name);
    (t.triggerModes ??= {})[r.name] = r.enabled;
    if (r.function) (t.triggerFunctions ??= {})[r.name] = r.function;
  }

  return {
    serverVersionNum: versionNum,
    serverVersion: server.version,
    database: server.database,
    identity: { databaseOid: Number(server.database_oid), systemIdentifier: server.system_identifier },
    privileges: await readPrivileges(client, server, versionNum, canSetReplicationRole),
    tables: [...tables.values()],
    sequences: (await client.query(Q.SEQUENCES_SQL)).rows.map((r) => ({ schema: r.schema, name: r.name, owner: r.owner, access: rights.get(tableKey(r.schema, r.name)) })),
    schemas: (await client.query(Q.SCHEMAS_SQL)).rows.map(
      (r): SchemaInfo => ({ name: r.name, owner: r.owner, usage: r.usage, create: r.create, createForAll: r.create_for_all, createBy: r.create_for_all ? [] : r.create_by }),
    ),
    materializedViews: (await client.query(Q.MATVIEWS_SQL)).rows.map((r) => ({ schema: r.schema, name: r.name })),
    roles: (await client.query(Q.ROLES_SQL)).rows.map((r) => ({
      name: r.name,
      canLogin: r.can_login,
      superuser: r.superuser,
      attributes: { inherit: r.inherit, createRole: r.create_role, createDb: r.create_db, replication: r.replication, bypassRls: r.bypass_rls, connectionLimit: r.connection_limit },
      memberOf: r.member_of,
    })),
    engine: await readEngine(client),
  };
}

/**
 * Whether the role may set session_replication_role, tried (and undone) in
 * a savepoint: superusers, `GRANT SET ON PARAMETER` from PG 15, and services
 * that allow it their own way (RDS lets rds_superuser set it on every
 * version) all show as they are. Within the read-only snapshot transaction.
 */
async function trySetReplicaRole(client: pg.Client, versionNum: number): Promise<boolean> {
  if (versionNum >= 150000 && (await client.query<{ ok: boolean }>(Q.CAN_SET_REPLICA_ROLE_SQL_15)).rows[0]!.ok) return true;
  await client.query('SAVEPOINT pgconvey_srr');
  try {
    await client.query('SET LOCAL session_replication_role = replica');
    return true;
  } catch (err) {
    if ((err as { code?: string }).code !== '42501') throw err;
    return false;
  } finally {
    await client.query('ROLLBACK TO SAVEPOINT pgconvey_srr');
  }
}

async function readPrivileges(client: pg.Client, server: Record<string, unknown>, versionNum: number, canSetReplicationRole: boolean): Promise<PrivilegeInfo> {
  const db = (await client.query(Q.DATABASE_RIGHTS_SQL)).rows[0];
  const superuser = Boolean(server.superuser);
  const memberships = superuser ? [] : (await client.query<{ name: string; usage: boolean; set: boolean }>(Q.MEMBERSHIPS_SQL(versionNum >= 160000))).rows;
  return {
    user: String(server.user),
    superuser,
    canCreateSchema: Boolean(server.can_create_schema),
    canSetReplicationRole,
    canAlterDatabase: superuser || Boolean(db?.can_alter),
    databaseOwner: db?.owner,
    canSignalBackends: superuser || Boolean(db?.can_signal),
    actsAs: memberships.filter((m) => m.usage).map((m) => m.name),
    canBecome: memberships.filter((m) => m.set).map((m) => m.name),
    canCreateRole: Boolean(server.can_create_role),
    captureRole: { name: String(server.capture_role), exists: Boolean(server.capture_role_exists) },
  };
}

async function readEngine(client: pg.Client): Promise<EngineInfo | null> {
  const installed = await readEngineVersion(client);
  if (installed === null) return null;
  const { version } = installed;
  const queues = await readQueues(client);
  const consumers = await readConsumers(client);
  const tables = await readCapturedTables(client);
  const sequences = version >= 3 ? await readCapturedSequences(client) : [];
  const subscriptions = version >= 2 ? await readSubscriptions(client) : [];
  const subscriberTables = version >= 2 ? await readSubscriberTables(client) : [];
  return {
    version,
    content: installed.content,
    queues: queues.map((q) => ({
      name: q.name,
      id: q.queueId,
      lastTick: q.lastTick,
      settings: q.settings,
      branchProvider: q.branchProvider,
      consumers: consumers.filter((c) => c.queueId === q.queueId).map((c) => ({ name: c.name, lastTick: c.lastTick })),
      tables: tables
        .filter((t) => t.queueId === q.queueId)
        .map((t) => ({ schema: t.table.schema, name: t.table.name, keyColumns: t.keyColumns, columns: t.columns, id: t.tableId })),
      sequences: sequences.filter((s) => s.queueId === q.queueId).map((s) => ({ schema: s.sequence.schema, name: s.sequence.name })),
    })),
    subscriptions: subscriptions.map((s) => ({
      queue: s.queue,
      consumer: s.consumer,
      completedTick: s.completedTick,
      tables: subscriberTables
        .filter((t) => t.queue === s.queue && t.consumer === s.consumer)
        .map((t) => ({ schema: t.table.schema, name: t.table.name, state: t.state, copyPin: t.copyPin, copyGeneration: t.copyGeneration })),
    })),
  };
}
