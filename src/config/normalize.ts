/**
 * Turns raw data that passed both the schema and the semantic checks into a
 * DesiredState: connections parsed, durations in milliseconds, patterns
 * parsed, defaults filled in, everything in file order.
 */
import { parseDuration } from '../kernel/index.js';
import { describeConnection, parseDsn, type ConnectionSpec, type RawDatabase } from './connection.js';
import {
  DEFAULT_DAEMON_SETTINGS,
  type DaemonSettings,
  type DatabaseSpec,
  type DesiredState,
  type NodeSpec,
  type QueueSpec,
  type Selection,
  type SelectionEntry,
  type TableOptions,
} from './desired-state.js';
import { isNameProblem, parseNamePattern, type NamePattern } from './names.js';

/* Raw shapes as the schema guarantees them. */
interface RawSelection {
  include?: string[];
  exclude?: string[];
  entries?: Record<string, Record<string, unknown> | null>;
}
interface RawDaemons {
  ticker?: { max_events?: number; max_lag?: string; idle_period?: string; min_interval?: string };
  worker?: { poll_interval?: string; retry_delay?: string };
  copy?: { parallel?: number };
  maintenance?: { interval?: string; rotation_transactions?: number; tick_retention?: string };
}
export interface RawDesiredState {
  version: 1;
  databases: Record<string, RawDatabase>;
  queues: Record<string, { nodes: Record<string, { database: string; type: NodeSpec['type']; provider?: string }>; tables: RawSelection; sequences?: RawSelection; daemons?: RawDaemons }>;
  prepare?: { roles?: 'copy' | 'check'; schema?: 'copy' | 'check'; schema_objects?: 'tables' | 'all' };
  daemons?: RawDaemons;
}

export function normalize(file: string, raw: RawDesiredState): DesiredState {
  const daemons = mergeDaemons(DEFAULT_DAEMON_SETTINGS, raw.daemons);
  return {
    file,
    databases: Object.entries(raw.databases).map(([name, db]) => normalizeDatabase(name, db)),
    queues: Object.entries(raw.queues).map(([name, q]): QueueSpec => ({
      name,
      nodes: Object.entries(q.nodes).map(([nodeName, n]): NodeSpec => ({
        name: nodeName,
        database: n.database,
        type: n.type,
        ...(n.provider !== undefined ? { provider: n.provider } : {}),
      })),
      tables: normalizeSelection<TableOptions>(q.tables, (o) => (o && Array.isArray(o.key) ? { key: o.key as string[] } : {})),
      sequences: normalizeSelection<Record<string, never>>(q.sequences ?? {}, () => ({})),
      daemons: mergeDaemons(daemons, q.daemons),
    })),
    prepare: { roles: raw.prepare?.roles ?? 'check', schema: raw.prepare?.schema ?? 'check', schemaObjects: raw.prepare?.schema_objects ?? 'tables' },
    daemons,
  };
}

function normalizeDatabase(name: string, db: RawDatabase): DatabaseSpec {
  let connection: ConnectionSpec;
  if (typeof db === 'string') {
    connection = parseDsn(db);
  } else if (db.dsn !== undefined) {
    connection = parseDsn(db.dsn);
  } else {
    connection = {};
    if (db.host !== undefined) connection.host = db.host;
    if (db.port !== undefined) connection.port = Number(db.port);
    if (db.user !== undefined) connection.user = db.user;
    if (db.password !== undefined) connection.password = db.password;
    if (db.dbname !== undefined) connection.dbname = db.dbname;
  }
  if (typeof db !== 'string') {
    if (db.sslmode !== undefined) connection.sslmode = db.sslmode;
    if (db.application_name !== undefined) connection.application_name = db.application_name;
    if (db.connect_timeout !== undefined) connection.connect_timeout_ms = parseDuration(db.connect_timeout)!;
  }
  return { name, connection, display: describeConnection(connection) };
}

function pattern(text: string): NamePattern {
  const parsed = parseNamePattern(text);
  if (isNameProblem(parsed)) throw new Error(`internal: pattern "${text}" should have been rejected by validation`);
  return parsed;
}

function normalizeSelection<O>(raw: RawSelection, options: (o: Record<string, unknown> | null) => O): Selection<O> {
  return {
    include: (raw.include ?? []).map(pattern),
    exclude: (raw.exclude ?? []).map(pattern),
    entries: Object.entries(raw.entries ?? {}).map(([text, o]) => ({ pattern: pattern(text), options: options(o) }) as SelectionEntry<O>),
  };
}

function mergeDaemons(base: DaemonSettings, raw: RawDaemons | undefined): DaemonSettings {
  const ms = (text: string | undefined, fallback: number) => (text === undefined ? fallback : parseDuration(text)!);
  return {
    ticker: {
      maxEvents: raw?.ticker?.max_events ?? base.ticker.maxEvents,
      maxLagMs: ms(raw?.ticker?.max_lag, base.ticker.maxLagMs),
      idlePeriodMs: ms(raw?.ticker?.idle_period, base.ticker.idlePeriodMs),
      minIntervalMs: ms(raw?.ticker?.min_interval, base.ticker.minIntervalMs),
    },
    worker: {
      pollIntervalMs: ms(raw?.worker?.poll_interval, base.worker.pollIntervalMs),
      retryDelayMs: ms(raw?.worker?.retry_delay, base.worker.retryDelayMs),
    },
    copy: { parallel: raw?.copy?.parallel ?? base.copy.parallel },
    maintenance: {
      intervalMs: ms(raw?.maintenance?.interval, base.maintenance.intervalMs),
      rotationTransactions: raw?.maintenance?.rotation_transactions ?? base.maintenance.rotationTransactions,
      tickRetentionMs: ms(raw?.maintenance?.tick_retention, base.maintenance.tickRetentionMs),
    },
  };
}
