/**
 * Exactness checks with no pgconvey code involved: reads a table on both
 * sides, column by column, as text under one pinned set of session settings
 * (floats by their float8send bits), and compares the rows as multisets;
 * plus a provider/subscriber pair wired with the engine's public API for
 * deterministic tests (write from several sessions, force ONE tick, step the
 * worker until idle — a worker that keeps failing on the same batch is
 * reported as stalled, with its error).
 */
import pg from 'pg';
import * as engine from '../../src/engine/index.js';
import { freshDatabase, type TestDatabase } from './databases.js';
import { drainThrough } from './drain.js';
import { sourceServer, targetServer } from './servers.js';

/** The settings both sides read values under (identical on both, whatever the writers used). */
export const PINNED_READ_SQL =
  "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; SET bytea_output = 'hex'; SET lc_monetary = 'C'";

export const ident = (name: string): string => `"${name.replace(/"/g, '""')}"`;
export const qualified = (schema: string, table: string): string => `${ident(schema)}.${ident(table)}`;

export interface ColumnInfo {
  name: string;
  /** The column's base type (through domains), e.g. float8, int4, json. */
  baseType: string;
}

/** The table's columns (not dropped), in attnum order. */
export async function columnsOf(client: pg.Client, schema: string, table: string): Promise<ColumnInfo[]> {
  const { rows } = await client.query<{ name: string; base: string }>(
    `SELECT a.attname AS name, coalesce(bt.typname, t.typname) AS base
       FROM pg_catalog.pg_attribute a
       JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
       LEFT JOIN pg_catalog.pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
      WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [schema, table],
  );
  return rows.map((r) => ({ name: r.name, baseType: r.base }));
}

/** A column as comparable text: floats by their bits, everything else by its type's text output. */
function valueExpr(c: ColumnInfo, alias = 't'): string {
  const col = `${alias}.${ident(c.name)}`;
  if (c.baseType === 'float4' || c.baseType === 'float8') return `pg_catalog.encode(pg_catalog.float8send(${col}::pg_catalog.float8), 'hex')`;
  return `${col}::pg_catalog.text`;
}

/**
 * Every row of the table as a JSON array of its columns' texts (SQL NULL as
 * null, so JSON null 'null' and SQL NULL differ), in `columns` order, sorted.
 * `ONLY`: an inheritance parent's own rows.
 */
export async function tableRows(client: pg.Client, schema: string, table: string, columns: ColumnInfo[]): Promise<string[]> {
  await client.query(PINNED_READ_SQL);
  const list = columns.length ? columns.map((c) => valueExpr(c)).join(', ') : 'NULL';
  const { rows } = await client.query<unknown[]>({ text: `SELECT ${list} FROM ONLY ${qualified(schema, table)} t`, rowMode: 'array' });
  return rows.map((r) => JSON.stringify(columns.length ? r : [])).sort();
}

export interface RowDiff {
  columns: string[];
  providerRows: number;
  subscriberRows: number;
  /** On the provider, not on the subscriber (first 5, cut to 400 characters). */
  missing: string[];
  /** On the subscriber, not on the provider. */
  extra: string[];
}

/** Multiset difference of two sorted row lists. */
export function diffRows(columns: string[], a: string[], b: string[]): RowDiff {
  const count = (xs: string[]) => xs.reduce((m, x) => m.set(x, (m.get(x) ?? 0) + 1), new Map<string, number>());
  const [ca, cb] = [count(a), count(b)];
  const missing: string[] = [];
  const extra: string[] = [];
  for (const [row, n] of ca) for (let i = cb.get(row) ?? 0; i < n; i++) missing.push(row);
  for (const [row, n] of cb) for (let i = ca.get(row) ?? 0; i < n; i++) extra.push(row);
  const cut = (xs: string[]) => xs.slice(0, 5).map((x) => (x.length > 400 ? `${x.slice(0, 400)}…` : x));
  return { columns, providerRows: a.length, subscriberRows: b.length, missing: cut(missing), extra: cut(extra) };
}

/**
 * Compares a table on both sides row by row. By default both must have the
 * same columns; `commonColumns` compares only the columns both sides have.
 */
export async function compareTable(provider: pg.Client, subscriber: pg.Client, schema: string, table: string, options: { commonColumns?: boolean } = {}): Promise<RowDiff> {
  const [pc, sc] = await Promise.all([columnsOf(provider, schema, table), columnsOf(subscriber, schema, table)]);
  if (pc.length === 0) throw new Error(`${qualified(schema, table)} does not exist on the provider`);
  if (sc.length === 0) throw new Error(`${qualified(schema, table)} does not exist on the subscriber`);
  const subNames = new Set(sc.map((c) => c.name));
  const common = pc.filter((c) => subNames.has(c.name));
  if (!options.commonColumns && (common.length !== pc.length || common.length !== sc.length)) {
    throw new Error(`${qualified(schema, table)} has other columns on the subscriber: ${pc.map((c) => c.name).join(',')} vs ${sc.map((c) => c.name).join(',')}`);
  }
  // Same column list on both sides (by name), each read with the provider's notion of its type.
  const [a, b] = await Promise.all([tableRows(provider, schema, table, common), tableRows(subscriber, schema, table, common)]);
  return diffRows(
    common.map((c) => c.name),
    a,
    b,
  );
}

/** A diff that says "equal" (for toEqual with a readable failure). */
export function equalDiff(d: RowDiff): RowDiff {
  return { ...d, missing: [], extra: [], subscriberRows: d.providerRows };
}

export interface PairTable {
  schema: string;
  table: string;
  /** Key columns for add_table (default: the primary key). */
  key?: string[];
}

export interface Pair {
  pdb: TestDatabase;
  sdb: TestDatabase;
  /** Provider session for the test's own statements (ticks, checks). */
  prov: pg.Client;
  sub: pg.Client;
  worker: engine.ApplyWorker;
  /** A new provider session with these settings applied (ended by close()). */
  session(settings?: string): Promise<pg.Client>;
  /** Forces ONE tick, then steps the worker until idle; a batch failing 3 times in a row throws "worker stalled: …". */
  sync(): Promise<void>;
  /** sync() until every table is `ok` (copied and merged). */
  syncUntilOk(): Promise<void>;
  /** Copies every `pending` table with copyTable, then syncUntilOk(). */
  copyAll(): Promise<void>;
  expectEqual(schema: string, table: string, options?: { commonColumns?: boolean }): Promise<RowDiff>;
  close(): Promise<void>;
}

export interface PairOptions {
  /** SQL run on both sides before anything else (schema). */
  schema: string;
  /** SQL run on the provider only, before the tables are captured (rows for the initial copy). */
  providerRows?: string;
  tables: PairTable[];
  /** Tables start `pending` and are copied by copyAll(); default: `ok` (both sides start equal). */
  copy?: boolean;
  /** The worker's maxBatchEvents (default: the worker's own). */
  maxBatchEvents?: number;
}

/** A fresh provider/subscriber pair (source and target servers) replicating `tables` through queue q, consumer s. */
export async function makePair(prefix: string, o: PairOptions): Promise<Pair> {
  const pdb = await freshDatabase(sourceServer(), `${prefix}_p`);
  const sdb = await freshDatabase(targetServer(), `${prefix}_s`);
  const clients: pg.Client[] = [];
  const open = async (db: TestDatabase) => {
    const c = await db.connect();
    c.on('error', () => undefined);
    clients.push(c);
    return c;
  };
  const prov = await open(pdb);
  const sub = await open(sdb);
  const workerProv = await open(pdb);
  const workerSub = await open(sdb);
  await prov.query(o.schema);
  await sub.query(o.schema);
  if (o.providerRows) await prov.query(o.providerRows);
  await engine.installEngine(prov);
  await engine.installEngine(sub);
  await engine.createQueue(prov, 'q');
  for (const t of o.tables) await engine.addTable(prov, 'q', t.schema, t.table, t.key);
  await engine.subscribe(prov, sub, 'q', 's');
  for (const t of o.tables) await engine.addSubscriberTable(sub, 'q', 's', t.schema, t.table, o.copy ? 'pending' : 'ok');
  const worker = new engine.ApplyWorker(workerProv, workerSub, { queue: 'q', consumer: 's', ...(o.maxBatchEvents ? { maxBatchEvents: o.maxBatchEvents } : {}) });
  await worker.start();

  const sync = async () => {
    await drainThrough(worker, await engine.forceTick(prov, 'q'));
  };
  const syncUntilOk = async () => {
    for (let round = 0; round < 10; round++) {
      await sync();
      const busy = await sub.query("SELECT table_schema, table_name, state FROM pgconvey.subscriber_table WHERE state <> 'ok'");
      if (busy.rowCount === 0) return;
    }
    const states = (await sub.query('SELECT table_name, state, last_error FROM pgconvey.subscriber_table')).rows;
    throw new Error(`tables not ok after 10 ticks: ${JSON.stringify(states)}`);
  };
  return {
    pdb,
    sdb,
    prov,
    sub,
    worker,
    async session(settings) {
      const c = await open(pdb);
      if (settings) await c.query(settings);
      return c;
    },
    sync,
    syncUntilOk,
    async copyAll() {
      for (const t of o.tables) {
        await engine.copyTable(
          () => pdb.connect(),
          () => sdb.connect(),
          { queue: 'q', consumer: 's', schema: t.schema, table: t.table },
        );
      }
      await syncUntilOk();
    },
    async expectEqual(schema, table, options) {
      const d = await compareTable(prov, sub, schema, table, options);
      if (d.missing.length || d.extra.length || d.providerRows !== d.subscriberRows) {
        throw new Error(`${qualified(schema, table)} differs: ${JSON.stringify(d, null, 1)}`);
      }
      return d;
    },
    async close() {
      await Promise.all(clients.splice(0).map((c) => c.end().catch(() => undefined)));
    },
  };
}

/** pg.Client config of a database, for sessions opened outside a Pair. */
export function clientFor(db: TestDatabase): pg.Client {
  return new pg.Client(db.config);
}
