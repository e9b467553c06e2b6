/**
 * The planner's plain-data scenario (test/fixtures/scenarios/shop.yaml): the
 * desired state, catalogs of a given major with given tables, and the
 * expected fresh-setup actions (shared with the twin-path test on real
 * catalogs).
 */
import { readFileSync } from 'node:fs';
import type { EngineQueueSettings, NodeCatalog, RoleInfo, TableInfo } from '../../../src/catalog/index.js';
import { queueSettings } from '../../../src/planner/index.js';
import { loadDesiredStateFromText, type DesiredState } from '../../../src/config/index.js';

/** The scenario's fresh-setup actions: the same on plain data and on real catalogs (twin path). */
export const FRESH_ACTIONS = JSON.parse(readFileSync('test/fixtures/scenarios/shop.fresh.actions.json', 'utf8')) as string[];

export const FILE = readFileSync('test/fixtures/scenarios/shop.yaml', 'utf8');
export const ENV = { PGCONVEY_OLD_DSN: 'host=old dbname=shop', PGCONVEY_NEW_DSN: 'host=new dbname=shop' };

export function state(text = FILE): DesiredState {
  const r = loadDesiredStateFromText('shop.yaml', text, ENV);
  if (!r.state) throw new Error(JSON.stringify(r.diagnostics));
  return r.state;
}

export function table(name: string, columns: string[], primaryKey: string[] = ['id'], extra: Partial<TableInfo> = {}): TableInfo {
  return {
    schema: 'public',
    name,
    kind: 'r',
    partitionOf: null,
    owner: 'app',
    columns: columns.map((c) => ({ name: c, type: c === 'id' || c === 'event_id' ? 'bigint' : 'text', notNull: c === 'id' || c === 'event_id', generated: '', hasDefault: false })),
    primaryKey,
    uniqueNotNull: [],
    estimatedRows: 0,
    bytes: 0,
    triggers: [],
    ...extra,
  };
}

export function role(name: string, extra: Partial<RoleInfo> = {}): RoleInfo {
  return {
    name,
    canLogin: true,
    superuser: false,
    attributes: { inherit: true, createRole: false, createDb: false, replication: false, bypassRls: false, connectionLimit: -1 },
    memberOf: [],
    ...extra,
  };
}

export function catalog(version: number, tables: TableInfo[], extra: Partial<NodeCatalog> = {}): NodeCatalog {
  return {
    serverVersionNum: version * 10000,
    serverVersion: `${version}.0`,
    database: 'shop',
    identity: { databaseOid: 16384, systemIdentifier: '7300000000000000001' },
    privileges: { user: 'postgres', superuser: true, canCreateSchema: true, canSetReplicationRole: true },
    tables: structuredClone(tables),
    sequences: [{ schema: 'public', name: 'orders_id_seq', owner: 'app' }],
    roles: [role('postgres', { superuser: true }), role('app')],
    engine: null,
    ...extra,
  };
}

export const TABLES = [table('orders', ['id', 'total']), table('customers', ['id', 'name']), table('audit', ['event_id', 'body'], []), table('tmp_scratch', ['id'])];

/** The queue settings the scenario's file asks for, as a converged engine stores them. */
export function shopSettings(): EngineQueueSettings {
  return queueSettings(state().queues[0]!);
}
